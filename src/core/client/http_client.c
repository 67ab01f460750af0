/*
 * A small HTTP/1.1 client for `tlsgate get` and `put`: one request per
 * connection, bodies streamed from and to file descriptors, responses
 * framed by Content-Length, chunked encoding or the end of the connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "error.h"
#include "http_parse.h"

#define HEAD_MAX  (64 * 1024)
#define IO_CHUNK  (64 * 1024)

int
tg_url_parse(const char *url, struct tg_url *u, struct tg_err *err)
{
	const char *p, *hs, *he, *ps;
	size_t hl;

	memset(u, 0, sizeof(*u));
	if (!strncmp(url, "https://", 8)) {
		u->tls = 1, u->port = 443, p = url + 8;
	} else if (!strncmp(url, "http://", 7)) {
		u->tls = 0, u->port = 80, p = url + 7;
	} else {
		return tg_err_set(err, TG_E_USAGE, "%s: URLs start with https:// or http://", url);
	}
	hs = p;
	if (*p == '[') {
		he = strchr(p, ']');
		if (he == NULL)
			return tg_err_set(err, TG_E_USAGE, "%s: missing ']' after the IPv6 address", url);
		hs = p + 1;
		p = he + 1;
	} else {
		p += strcspn(p, ":/?#");
		he = p;
	}
	hl = (size_t)(he - hs);
	if (hl == 0 || hl >= sizeof(u->host))
		return tg_err_set(err, TG_E_USAGE, "%s: no host name", url);
	memcpy(u->host, hs, hl);
	if (*p == ':') {
		char *end;
		long port = strtol(p + 1, &end, 10);
		if (end == p + 1 || port <= 0 || port > 65535)
			return tg_err_set(err, TG_E_USAGE, "%s: bad port", url);
		u->port = (int)port;
		p = end;
	}
	if (*p != '\0' && *p != '/' && *p != '?')
		return tg_err_set(err, TG_E_USAGE, "%s: unexpected '%c' after the host", url, *p);
	ps = *p == '/' ? p : "/";
	snprintf(u->path, sizeof(u->path), "%s%s", ps, *p == '?' ? p : "");
	u->path[strcspn(u->path, "#")] = '\0';
	for (p = u->path; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return tg_err_set(err, TG_E_USAGE, "%s: spaces and control characters "
			    "must be percent-encoded", url);
	return 0;
}

static int
write_all(int fd, const char *p, size_t n, struct tg_err *err)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return tg_err_set(err, TG_E_IO, "cannot write the output: %s", strerror(errno));
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Sends the request head and body. */
static int
send_request(struct tg_client *c, const char *method, const struct tg_url *u,
    const char *host_hdr, int body_fd, uint64_t body_len, struct tg_err *err)
{
	char head[8192], *buf;
	uint64_t sent = 0;
	int n, rv = -1;

	n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tlsgate/%s\r\n"
	    "Accept: */*\r\nConnection: close\r\n", method, u->path, host_hdr, tg_version());
	if (body_fd >= 0)
		n += snprintf(head + n, sizeof(head) - (size_t)n, "Content-Length: %llu\r\n",
		    (unsigned long long)body_len);
	n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
	if (tg_client_write(c, head, (size_t)n, err) < 0)
		return -1;
	if (body_fd < 0)
		return 0;
	if ((buf = malloc(IO_CHUNK)) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	while (sent < body_len) {
		ssize_t r = read(body_fd, buf, IO_CHUNK);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			tg_err_set(err, TG_E_IO, "reading the file to send: %s",
			    r == 0 ? "it became shorter while being sent" : strerror(errno));
			goto out;
		}
		if (tg_client_write(c, buf, (size_t)r, err) < 0)
			goto out;
		sent += (uint64_t)r;
	}
	rv = 0;
out:
	free(buf);
	return rv;
}

/* Reads the answer's head into buf (HEAD_MAX bytes), skipping 1xx interim
 * answers (100 Continue): its length, *have the bytes in buf; -1 (err). */
static ssize_t
read_head(struct tg_client *c, const char *url, char *buf, size_t *have,
    struct tg_http_resp *resp, struct tg_http_header *hdrs, size_t nhdrs, struct tg_err *err)
{
	ssize_t hl = TG_HTTP_INCOMPLETE, r;

	for (;;) {
		if (*have > 0) {
			resp->headers = hdrs;
			resp->num_headers = nhdrs;
			hl = tg_http_parse_response(buf, *have, resp);
		}
		if (hl == TG_HTTP_BAD)
			return tg_err_set(err, TG_E_HTTP, "%s: the server's answer is not valid "
			    "HTTP/1.1", url);
		if (hl > 0 && resp->status >= 200)
			return hl;
		if (hl > 0) {   /* an interim answer: the real one follows */
			memmove(buf, buf + hl, *have - (size_t)hl);
			*have -= (size_t)hl;
			hl = TG_HTTP_INCOMPLETE;
			continue;
		}
		if (*have == HEAD_MAX)
			return tg_err_set(err, TG_E_HTTP, "%s: the response head is too large", url);
		if ((r = tg_client_read(c, buf + *have, HEAD_MAX - *have, err)) < 0)
			return -1;
		if (r == 0)
			return tg_err_set(err, TG_E_HTTP, "%s: the server closed the connection "
			    "without an answer", url);
		*have += (size_t)r;
	}
}

/* How the answer's body is framed, and what of it is kept. */
struct body {
	int ok2xx, chunked, has_len;
	uint64_t clen, got;
	struct tg_chunked ch;
	char errtext[200];           /* the start of a refusal's body, for the message */
	size_t etl;
};

static int
body_framing(const char *method, const char *url, const struct tg_http_resp *resp,
    struct body *b, struct tg_err *err)
{
	const struct tg_http_header *h;

	memset(b, 0, sizeof(*b));
	b->ok2xx = resp->status >= 200 && resp->status < 300;
	if ((h = tg_http_find(resp->headers, resp->num_headers, "Transfer-Encoding")) != NULL) {
		b->chunked = tg_http_has_token(h->value, h->value_len, "chunked");
	} else if ((h = tg_http_find(resp->headers, resp->num_headers, "Content-Length")) != NULL) {
		if (tg_http_content_length(h->value, h->value_len, &b->clen) < 0)
			return tg_err_set(err, TG_E_HTTP, "%s: bad Content-Length in the answer", url);
		b->has_len = 1;
	}
	if (!strcmp(method, "HEAD") || resp->status == 204 || resp->status == 304) {
		b->has_len = 1;
		b->clen = 0;
		b->chunked = 0;
	}
	return 0;
}

/* The body: a 2xx one to out_fd, the start of another kept for the
 * message. buf holds have bytes already read (IO_CHUNK room). */
static int
read_body(struct tg_client *c, const char *url, struct body *b, char *buf, size_t have,
    int out_fd, struct tg_err *err)
{
	for (;;) {
		size_t n = have;
		ssize_t r, left = TG_HTTP_INCOMPLETE;
		if (b->chunked) {
			if ((left = tg_chunked_decode(&b->ch, buf, &n)) == TG_HTTP_BAD)
				return tg_err_set(err, TG_E_HTTP, "%s: bad chunked encoding in the "
				    "answer", url);
		} else if (b->has_len && b->got + n > b->clen) {
			n = (size_t)(b->clen - b->got);
		}
		if (b->ok2xx && n && out_fd >= 0 && write_all(out_fd, buf, n, err) < 0)
			return -1;
		if (!b->ok2xx && b->etl + 1 < sizeof(b->errtext)) {
			size_t t = n < sizeof(b->errtext) - 1 - b->etl ? n :
			    sizeof(b->errtext) - 1 - b->etl;
			memcpy(b->errtext + b->etl, buf, t);
			b->errtext[b->etl += t] = '\0';
		}
		b->got += n;
		if ((b->chunked && left >= 0) || (b->has_len && b->got >= b->clen))
			return 0;
		if ((r = tg_client_read(c, buf, IO_CHUNK, err)) < 0)
			return -1;
		if (r == 0 && (b->chunked || b->has_len))
			return tg_err_set(err, TG_E_HTTP, "%s: the connection ended before the whole "
			    "answer arrived (%llu bytes)", url, (unsigned long long)b->got);
		if (r == 0)
			return 0;
		have = (size_t)r;
	}
}

int
tg_http_fetch(const char *method, const char *url, const struct tg_client_opts *o,
    const struct tg_store_conf *store, int body_fd, uint64_t body_len, int out_fd, int *status,
    struct tg_err *err)
{
	struct tg_url u;
	struct tg_client *c = NULL;
	struct tg_http_header hdrs[100];
	struct tg_http_resp resp;
	struct body b;
	char *buf = NULL, host_hdr[300], reason[100];
	size_t have = 0;
	ssize_t hl;
	int rv = -1;
	const char *name;

	if (tg_url_parse(url, &u, err) < 0)
		return -1;
	name = o->server_name && o->server_name[0] ? o->server_name : u.host;
	snprintf(host_hdr, sizeof(host_hdr), strchr(name, ':') ? "[%s]" : "%s", name);
	if (u.port != (u.tls ? 443 : 80))
		snprintf(host_hdr + strlen(host_hdr), sizeof(host_hdr) - strlen(host_hdr), ":%d", u.port);
	if (tg_client_dial(u.host, u.port, u.tls, o, store, 1, &c, err) < 0)
		return -1;
	if (send_request(c, method, &u, host_hdr, body_fd, body_len, err) < 0)
		goto out;
	if ((buf = malloc(HEAD_MAX)) == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto out;
	}
	if ((hl = read_head(c, url, buf, &have, &resp, hdrs, sizeof(hdrs) / sizeof(hdrs[0]),
	    err)) < 0)
		goto out;
	*status = resp.status;
	/* the reason phrase points into buf, which the body overwrites */
	snprintf(reason, sizeof(reason), "%.*s", (int)resp.reason_len, resp.reason);
	if (body_framing(method, url, &resp, &b, err) < 0)
		goto out;
	memmove(buf, buf + hl, have - (size_t)hl);
	if (read_body(c, url, &b, buf, have - (size_t)hl, out_fd, err) < 0)
		goto out;
	if (!b.ok2xx) {
		b.errtext[strcspn(b.errtext, "\r\n")] = '\0';
		tg_err_set(err, TG_E_HTTP, "%s: the server answered %d %s%s%s", url, resp.status,
		    reason, b.errtext[0] ? ": " : "", b.errtext);
		goto out;
	}
	rv = 0;
out:
	free(buf);
	tg_client_close(c);
	return rv;
}
