/*
 * A connection's responses: the head every response shares (Date, HSTS,
 * nosniff, keep-alive or close), complete short responses, a head for a
 * body that follows from a file, and the buffers they are built in. Used by
 * conn.c and by services through conn.h; calls nothing in conn.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "conn_int.h"
#include "magic.h"

/*
 * Idle connections hold no buffers, busy ones take them from a small stack
 * kept per thread: a keep-alive request then allocates nothing (the buffers
 * are 64 KiB, and glibc would hand back zeroed or fresh pages otherwise).
 */
#define KEEP_BUFS 32
static __thread char *spare_bufs[KEEP_BUFS];
static __thread int n_spare_bufs;

char *
tg_conn_buf_take(void)
{
	/* page-aligned: the kernel copies whole pages into it */
	return n_spare_bufs > 0 ? spare_bufs[--n_spare_bufs] : aligned_alloc(4096, TG_IO_BUF);
}

void
tg_conn_buf_give(char *b, size_t cap)
{
	if (b != NULL && cap == TG_IO_BUF && n_spare_bufs < KEEP_BUFS)
		spare_bufs[n_spare_bufs++] = b;
	else
		free(b);
}

const char *
tg_http_status_text(int s)
{
	switch (s) {
	case 100: return "Continue";
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	default: return "Unknown";
	}
}

int
tg_conn_out_reserve(struct tg_conn_s *c, size_t need)
{
	if (c->out_cap >= need)
		return 0;
	if (c->out == NULL && need <= TG_IO_BUF) {
		if ((c->out = tg_conn_buf_take()) == NULL)
			return -1;
		c->out_cap = TG_IO_BUF;
		return 0;
	}
	char *nb = realloc(c->out, need);
	if (nb == NULL)
		return -1;
	c->out = nb;
	c->out_cap = need;
	return 0;
}

static size_t
head_common(struct tg_conn_s *c, char *buf, size_t len, int status, const char *extra,
    uint64_t clen)
{
	static __thread char date[64];
	static __thread time_t date_at;
	time_t now = time(NULL);

	if (now != date_at) {   /* formatted once a second, not per response */
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
		date_at = now;
	}
	if (c->body_left || c->chunked)   /* an unread body: the stream is lost */
		c->close_after = c->linger = 1;
	if (!c->keep_alive || c->srv->stopping)
		c->close_after = 1;
	/* over HTTPS, browsers are told to stay on HTTPS (HSTS); every response
	 * forbids MIME sniffing, since stored files are served as they are */
	return (size_t)snprintf(buf, len, "HTTP/1.1 %d %s\r\nServer: tlsgate\r\nDate: %s\r\n"
	    "Content-Length: %llu\r\n%sX-Content-Type-Options: nosniff\r\n%s%s\r\n", status,
	    tg_http_status_text(status), date, (unsigned long long)clen,
	    c->ssl ? "Strict-Transport-Security: max-age=31536000\r\n" : "", extra ? extra : "",
	    c->close_after ? "Connection: close\r\n" : "");
}

static void
respond_head(struct tg_conn_s *c, int status, const char *headers, uint64_t clen)
{
	char head[2048];
	size_t n;

	TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
	n = head_common(c, head, sizeof(head), status, headers, clen);
	if (tg_conn_out_reserve(c, n > TG_IO_BUF ? n : TG_IO_BUF) < 0) {
		c->close_after = 1;
		c->state = CS_CLOSING;
		return;
	}
	memcpy(c->out, head, n);
	c->out_len = n;
	c->out_off = 0;
	c->status = status;
	c->state = CS_RESP;
}

void
tg_conn_respond_file(struct tg_conn_s *c, int status, const char *headers, int fd,
    uint64_t off, uint64_t len, int head_only)
{
	TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
	respond_head(c, status, headers, len);
	if (head_only || len == 0 || c->state != CS_RESP) {
		close(fd);   /* nothing to send from it, or no response to send it in */
		c->file_left = 0;
		return;
	}
	c->file_fd = fd;
	c->file_off = off;
	c->file_left = len;
}

void
tg_conn_respond_exact(struct tg_conn_s *c, int status, const char *extra, const char *body,
    size_t bl, int add_newline)
{
	char hdrs[1024];
	size_t nl = add_newline && bl && body[bl - 1] != '\n';
	int head;

	TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
	head = !strcmp(c->method, "HEAD");
	if (c->file_fd >= 0) {
		close(c->file_fd);
		c->file_fd = -1;
		c->file_left = 0;
	}
	snprintf(hdrs, sizeof(hdrs), "%s%s", extra ? extra : "",
	    body && (!extra || !strcasestr(extra, "Content-Type:")) ?
	    "Content-Type: text/plain; charset=utf-8\r\n" : "");
	respond_head(c, status, hdrs, bl + nl);
	if (head || bl == 0 || c->state != CS_RESP)
		return;
	if (tg_conn_out_reserve(c, c->out_len + bl + 1) < 0) {
		c->state = CS_CLOSING;
		return;
	}
	memcpy(c->out + c->out_len, body, bl);
	c->out_len += bl;
	if (nl)
		c->out[c->out_len++] = '\n';
}

void
tg_conn_respond(struct tg_conn_s *c, int status, const char *extra, const char *body)
{
	tg_conn_respond_exact(c, status, extra, body, body ? strlen(body) : 0, 1);
}
