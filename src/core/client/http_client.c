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

int
tg_http_fetch(const char *method, const char *url, const struct tg_client_opts *o,
    const struct tg_store_conf *store, int body_fd, uint64_t body_len, int out_fd, int *status,
    struct tg_err *err)
{
	struct tg_url u;
	struct tg_client *c = NULL;
	struct tg_http_header hdrs[100];
	struct tg_http_resp resp;
	const struct tg_http_header *h;
	struct tg_chunked ch;
	char *buf = NULL, host_hdr[300], errtext[200];
	size_t have = 0, etl = 0;
	uint64_t clen = 0, got = 0;
	int chunked = 0, has_len = 0, ok2xx, rv = -1;
	ssize_t hl = TG_HTTP_INCOMPLETE;
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
	while (hl == TG_HTTP_INCOMPLETE) {
		ssize_t r;
		if (have == HEAD_MAX) {
			tg_err_set(err, TG_E_HTTP, "%s: the response head is too large", url);
			goto out;
		}
		r = tg_client_read(c, buf + have, HEAD_MAX - have, err);
		if (r < 0)
			goto out;
		if (r == 0) {
			tg_err_set(err, TG_E_HTTP, "%s: the server closed the connection without "
			    "an answer", url);
			goto out;
		}
		have += (size_t)r;
		resp.headers = hdrs;
		resp.num_headers = sizeof(hdrs) / sizeof(hdrs[0]);
		hl = tg_http_parse_response(buf, have, &resp);
		if (hl == TG_HTTP_BAD) {
			tg_err_set(err, TG_E_HTTP, "%s: the server's answer is not valid HTTP/1.1", url);
			goto out;
		}
		/* 1xx interim answers (100 Continue) are skipped */
		if (hl > 0 && resp.status < 200) {
			memmove(buf, buf + hl, have - (size_t)hl);
			have -= (size_t)hl;
			hl = have ? TG_HTTP_INCOMPLETE : TG_HTTP_INCOMPLETE;
			if (have) {
				resp.num_headers = sizeof(hdrs) / sizeof(hdrs[0]);
				hl = tg_http_parse_response(buf, have, &resp);
				if (hl == TG_HTTP_BAD) {
					tg_err_set(err, TG_E_HTTP, "%s: bad answer from the server", url);
					goto out;
				}
			}
		}
	}
	*status = resp.status;
	ok2xx = resp.status >= 200 && resp.status < 300;
	if ((h = tg_http_find(hdrs, resp.num_headers, "Transfer-Encoding")) != NULL)
		chunked = tg_http_has_token(h->value, h->value_len, "chunked");
	else if ((h = tg_http_find(hdrs, resp.num_headers, "Content-Length")) != NULL) {
		if (tg_http_content_length(h->value, h->value_len, &clen) < 0) {
			tg_err_set(err, TG_E_HTTP, "%s: bad Content-Length in the answer", url);
			goto out;
		}
		has_len = 1;
	}
	if (!strcmp(method, "HEAD") || resp.status == 204 || resp.status == 304)
		has_len = 1, clen = 0, chunked = 0;
	memset(&ch, 0, sizeof(ch));
	memmove(buf, buf + hl, have - (size_t)hl);
	have -= (size_t)hl;
	errtext[0] = '\0';
	for (;;) {
		size_t n = have;
		ssize_t r, left = TG_HTTP_INCOMPLETE;
		if (chunked) {
			left = tg_chunked_decode(&ch, buf, &n);
			if (left == TG_HTTP_BAD) {
				tg_err_set(err, TG_E_HTTP, "%s: bad chunked encoding in the answer", url);
				goto out;
			}
		} else if (has_len && got + n > clen) {
			n = (size_t)(clen - got);
		}
		if (ok2xx && n && out_fd >= 0 && write_all(out_fd, buf, n, err) < 0)
			goto out;
		if (!ok2xx && etl + 1 < sizeof(errtext)) {
			size_t t = n < sizeof(errtext) - 1 - etl ? n : sizeof(errtext) - 1 - etl;
			memcpy(errtext + etl, buf, t);
			errtext[etl += t] = '\0';
		}
		got += n;
		if ((chunked && left >= 0) || (has_len && got >= clen))
			break;
		r = tg_client_read(c, buf, IO_CHUNK, err);
		if (r < 0)
			goto out;
		if (r == 0) {
			if (chunked || has_len) {
				tg_err_set(err, TG_E_HTTP, "%s: the connection ended before the whole "
				    "answer arrived (%llu bytes)", url, (unsigned long long)got);
				goto out;
			}
			break;
		}
		have = (size_t)r;
	}
	if (!ok2xx) {
		errtext[strcspn(errtext, "\r\n")] = '\0';
		tg_err_set(err, TG_E_HTTP, "%s: the server answered %d %.*s%s%s", url, resp.status,
		    (int)resp.reason_len, resp.reason, errtext[0] ? ": " : "", errtext);
		goto out;
	}
	rv = 0;
out:
	free(buf);
	tg_client_close(c);
	return rv;
}
