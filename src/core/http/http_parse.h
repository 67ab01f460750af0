/*
 * A strict HTTP/1.1 message head parser and chunked-body decoder that never
 * allocate (picohttpparser's contract): each returns the bytes consumed,
 * -2 when more input is needed, or -1 for a malformed message. Shared by
 * the server (requests) and the client (responses).
 */
#ifndef TG_HTTP_PARSE_H
#define TG_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct tg_http_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

struct tg_http_req {
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	int minor_version;
	struct tg_http_header *headers;
	size_t num_headers;   /* in: capacity; out: count */
};

struct tg_http_resp {
	int minor_version;
	int status;
	const char *reason;
	size_t reason_len;
	struct tg_http_header *headers;
	size_t num_headers;   /* in: capacity; out: count */
};

#define TG_HTTP_INCOMPLETE (-2)
#define TG_HTTP_BAD        (-1)

ssize_t tg_http_parse_request(const char *buf, size_t len, struct tg_http_req *req);
ssize_t tg_http_parse_response(const char *buf, size_t len, struct tg_http_resp *resp);

/* Case-insensitive header lookup; NULL when absent. */
const struct tg_http_header *tg_http_find(const struct tg_http_header *h, size_t n,
    const char *name);
/* Does a comma-separated header value list contain token (case-insensitive)? */
int tg_http_has_token(const char *value, size_t len, const char *token);
/* Content-Length: digits only, no overflow; -1 when malformed. */
int tg_http_content_length(const char *value, size_t len, uint64_t *out);

struct tg_chunked {
	int state;
	uint64_t remaining;   /* bytes left in the current chunk */
	size_t hex_digits;
	size_t trailer_bytes;
};

/*
 * Decodes chunked data in place. On return *len is the number of decoded
 * body bytes now at the front of buf. Returns -1 for malformed input, -2
 * when the body continues, or (body complete) the number of bytes that
 * followed the final chunk, moved to just after the decoded bytes.
 */
ssize_t tg_chunked_decode(struct tg_chunked *d, char *buf, size_t *len);

#endif
