/*
 * HTTP/1.1 message heads (RFC 9112) parsed strictly: CRLF line ends only,
 * tokens checked character by character, no whitespace before a colon, no
 * obsolete line folding. Strictness here is what keeps request smuggling
 * out. Nothing is allocated; results point into the caller's buffer.
 */
#include <string.h>
#include <strings.h>

#include "http_parse.h"
#include "util.h"

static int
is_tchar(unsigned char c)
{
	/* RFC 9110 §5.6.2 token characters */
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return 1;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
is_vchar_or_obs(unsigned char c)
{
	return (c >= 0x21 && c <= 0x7e) || c >= 0x80;
}

/* Finds the CRLF that ends a line starting at p; NULL if not yet there.
 * A bare CR or LF is an error, reported through *bad. */
static const char *
line_end(const char *p, const char *end, int *bad)
{
	for (; p < end; p++) {
		if (*p == '\r') {
			if (p + 1 == end)
				return NULL;
			if (p[1] != '\n') {
				*bad = 1;
				return NULL;
			}
			return p;
		}
		if (*p == '\n') {
			*bad = 1;
			return NULL;
		}
	}
	return NULL;
}

static ssize_t
parse_headers(const char *p, const char *end, const char *start,
    struct tg_http_header *h, size_t *num)
{
	size_t cap = *num, n = 0;
	int bad = 0;

	for (;;) {
		const char *le = line_end(p, end, &bad), *colon, *v, *ve;
		if (le == NULL)
			return bad ? TG_HTTP_BAD : TG_HTTP_INCOMPLETE;
		if (le == p) {   /* empty line: end of head */
			*num = n;
			return (le + 2) - start;
		}
		if (n == cap)
			return TG_HTTP_BAD;   /* too many header fields */
		for (colon = p; colon < le && is_tchar((unsigned char)*colon); colon++)
			;
		if (colon == p || colon == le || *colon != ':')
			return TG_HTTP_BAD;   /* also rejects "Name :" and folded lines */
		v = colon + 1;
		while (v < le && (*v == ' ' || *v == '\t'))
			v++;
		ve = le;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *q = v; q < ve; q++)
			if (!is_vchar_or_obs((unsigned char)*q) && *q != ' ' && *q != '\t')
				return TG_HTTP_BAD;
		h[n].name = p;
		h[n].name_len = (size_t)(colon - p);
		h[n].value = v;
		h[n].value_len = (size_t)(ve - v);
		n++;
		p = le + 2;
	}
}

static int
parse_version(const char *p, const char *end, int *minor)
{
	if (end - p != 8 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
		return -1;
	*minor = p[7] - '0';
	return 0;
}

ssize_t
tg_http_parse_request(const char *buf, size_t len, struct tg_http_req *req)
{
	const char *p = buf, *end = buf + len, *le, *sp1, *sp2;
	ssize_t r;
	int bad = 0;

	/* RFC 9112 §2.2: ignore at least one empty line before a request */
	if (len >= 2 && p[0] == '\r' && p[1] == '\n')
		p += 2;
	le = line_end(p, end, &bad);
	if (le == NULL)
		return bad ? TG_HTTP_BAD : TG_HTTP_INCOMPLETE;
	for (sp1 = p; sp1 < le && is_tchar((unsigned char)*sp1); sp1++)
		;
	if (sp1 == p || sp1 == le || *sp1 != ' ')
		return TG_HTTP_BAD;
	for (sp2 = sp1 + 1; sp2 < le && (unsigned char)*sp2 > 0x20 && (unsigned char)*sp2 < 0x7f; sp2++)
		;
	if (sp2 == sp1 + 1 || sp2 == le || *sp2 != ' ')
		return TG_HTTP_BAD;
	if (parse_version(sp2 + 1, le, &req->minor_version) < 0)
		return TG_HTTP_BAD;
	req->method = p;
	req->method_len = (size_t)(sp1 - p);
	req->target = sp1 + 1;
	req->target_len = (size_t)(sp2 - sp1 - 1);
	r = parse_headers(le + 2, end, buf, req->headers, &req->num_headers);
	return r;
}

ssize_t
tg_http_parse_response(const char *buf, size_t len, struct tg_http_resp *resp)
{
	const char *p = buf, *end = buf + len, *le;
	int bad = 0;

	le = line_end(p, end, &bad);
	if (le == NULL)
		return bad ? TG_HTTP_BAD : TG_HTTP_INCOMPLETE;
	if (le - p < 12 || parse_version(p, p + 8, &resp->minor_version) < 0 || p[8] != ' ')
		return TG_HTTP_BAD;
	if (p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9')
		return TG_HTTP_BAD;
	resp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	if (le - p > 12 && p[12] != ' ')
		return TG_HTTP_BAD;
	resp->reason = le - p > 12 ? p + 13 : le;
	resp->reason_len = (size_t)(le - resp->reason);
	return parse_headers(le + 2, end, buf, resp->headers, &resp->num_headers);
}

const struct tg_http_header *
tg_http_find(const struct tg_http_header *h, size_t n, const char *name)
{
	size_t i, nl = strlen(name);

	for (i = 0; i < n; i++)
		if (h[i].name_len == nl && strncasecmp(h[i].name, name, nl) == 0)
			return &h[i];
	return NULL;
}

int
tg_http_has_token(const char *value, size_t len, const char *token)
{
	size_t tl = strlen(token), i = 0;

	while (i < len) {
		size_t s, e;
		while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
			i++;
		s = i;
		while (i < len && value[i] != ',')
			i++;
		e = i;
		while (e > s && (value[e - 1] == ' ' || value[e - 1] == '\t'))
			e--;
		if (e - s == tl && strncasecmp(value + s, token, tl) == 0)
			return 1;
	}
	return 0;
}

int
tg_http_content_length(const char *value, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 18)
		return -1;
	for (i = 0; i < len; i++) {
		if (value[i] < '0' || value[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(value[i] - '0');
	}
	*out = v;
	return 0;
}

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF,
	CH_TRAILER_START, CH_TRAILER, CH_TRAILER_LF, CH_END_LF };

#define MAX_TRAILER 8192

ssize_t
tg_chunked_decode(struct tg_chunked *d, char *buf, size_t *len)
{
	size_t in = 0, out = 0, n = *len;

	while (in < n) {
		char c = buf[in];
		switch (d->state) {
		case CH_SIZE:
			if (tg_hexval(c) >= 0) {
				if (++d->hex_digits > 15)
					return TG_HTTP_BAD;
				d->remaining = d->remaining * 16 + (uint64_t)tg_hexval(c);
				in++;
			} else if (d->hex_digits == 0) {
				return TG_HTTP_BAD;
			} else if (c == ';') {
				d->state = CH_EXT;
				in++;
			} else if (c == '\r') {
				d->state = CH_SIZE_LF;
				in++;
			} else {
				return TG_HTTP_BAD;
			}
			break;
		case CH_EXT:   /* chunk extensions are ignored, but bounded */
			if (c == '\r')
				d->state = CH_SIZE_LF;
			else if (c == '\n' || ++d->trailer_bytes > MAX_TRAILER)
				return TG_HTTP_BAD;
			in++;
			break;
		case CH_SIZE_LF:
			if (c != '\n')
				return TG_HTTP_BAD;
			in++;
			d->hex_digits = 0;
			d->state = d->remaining ? CH_DATA : CH_TRAILER_START;
			break;
		case CH_DATA: {
			size_t take = n - in;
			if (take > d->remaining)
				take = (size_t)d->remaining;
			memmove(buf + out, buf + in, take);
			out += take;
			in += take;
			d->remaining -= take;
			if (d->remaining == 0)
				d->state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
			if (c != '\r')
				return TG_HTTP_BAD;
			d->state = CH_DATA_LF;
			in++;
			break;
		case CH_DATA_LF:
			if (c != '\n')
				return TG_HTTP_BAD;
			d->state = CH_SIZE;
			in++;
			break;
		case CH_TRAILER_START:
			if (c == '\r') {
				d->state = CH_END_LF;
			} else {
				d->state = CH_TRAILER;
				if (++d->trailer_bytes > MAX_TRAILER)
					return TG_HTTP_BAD;
			}
			in++;
			break;
		case CH_TRAILER:
			if (c == '\r')
				d->state = CH_TRAILER_LF;
			else if (c == '\n' || ++d->trailer_bytes > MAX_TRAILER)
				return TG_HTTP_BAD;
			in++;
			break;
		case CH_TRAILER_LF:
			if (c != '\n')
				return TG_HTTP_BAD;
			d->state = CH_TRAILER_START;
			in++;
			break;
		case CH_END_LF:
			if (c != '\n')
				return TG_HTTP_BAD;
			in++;
			memmove(buf + out, buf + in, n - in);
			*len = out;
			d->state = CH_SIZE;
			d->remaining = 0;
			return (ssize_t)(n - in);
		}
	}
	*len = out;
	return TG_HTTP_INCOMPLETE;
}
