/*
 * Connections: accept, TLS handshake, HTTP/1.1 request heads and bodies,
 * responses, keep-alive. OpenSSL reads and writes the socket itself; libuv
 * only tells us when the descriptor is ready (uv_poll). conn_run() drives
 * the state machine until the connection would block, and every state has
 * a deadline on the connection's timer.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "conn.h"
#include "record.h"
#include "sockio.h"
#include "error.h"
#include "magic.h"
#include "peers.h"
#include "ossl_words.h"
#include "tls.h"
#include "trust.h"
#include "util.h"


static void conn_run(struct tg_conn_s *c);
static void conn_close(struct tg_conn_s *c);

/* The request ends early: the handler that took it lets go of it. */
static void
handler_abort(struct tg_conn_s *c)
{
	if (c->handler && c->handler->abort)
		c->handler->abort(c);
}

/* What target, content_type and range point at between requests. */
static char no_text[1];

/*
 * Idle connections hold no buffers, busy ones take them from a small stack
 * kept per thread: a keep-alive request then allocates nothing (the buffers
 * are 64 KiB, and glibc would hand back zeroed or fresh pages otherwise).
 */
#define KEEP_BUFS 32
static __thread char *spare_bufs[KEEP_BUFS];
static __thread int n_spare_bufs;
static __thread struct tg_request_text *spare_rt;

static char *
buf_take(void)
{
	/* page-aligned: the kernel copies whole pages into it */
	return n_spare_bufs > 0 ? spare_bufs[--n_spare_bufs] : aligned_alloc(4096, TG_IO_BUF);
}

static void
buf_give(char *b, size_t cap)
{
	if (b != NULL && cap == TG_IO_BUF && n_spare_bufs < KEEP_BUFS)
		spare_bufs[n_spare_bufs++] = b;
	else
		free(b);
}

static void
drop_request_text(struct tg_conn_s *c)
{
	if (spare_rt == NULL)
		spare_rt = c->rt;
	else
		free(c->rt);
	c->rt = NULL;
	c->target = c->content_type = c->range = no_text;
}

static int
take_request_text(struct tg_conn_s *c)
{
	if (c->rt == NULL) {
		if ((c->rt = spare_rt) != NULL)
			spare_rt = NULL;
		else if ((c->rt = malloc(sizeof(*c->rt))) == NULL)
			return -1;
		c->rt->target[0] = c->rt->content_type[0] = c->rt->range[0] = c->rt->host[0] = '\0';
	}
	c->target = c->rt->target;
	c->content_type = c->rt->content_type;
	c->range = c->rt->range;
	return 0;
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

/* ---- socket I/O through TLS or plain (sockio.c) ------------------------------- */

static ssize_t
io_read(struct tg_conn_s *c, char *buf, size_t len)
{
	int wait = 0;
	ssize_t r = tg_io_read(c->fd, c->ssl, buf, len, &wait);

	if (r == TG_IO_AGAIN)
		c->want_write = wait == UV_WRITABLE;
	return r;
}

static ssize_t
io_write(struct tg_conn_s *c, const char *buf, size_t len)
{
	int wait = 0;
	ssize_t r = tg_io_write(c->fd, c->ssl, buf, len, &wait);

	if (r == TG_IO_AGAIN)
		c->want_write = wait == UV_WRITABLE;
	return r;
}

/* A handshake step or SSL_sendfile that returned r <= 0. */
static int
ssl_outcome(struct tg_conn_s *c, int r)
{
	int wait = 0, o = tg_io_ssl_result(c->ssl, r, &wait);

	if (o == TG_IO_AGAIN)
		c->want_write = wait == UV_WRITABLE;
	return o;
}

/* ---- timers and readiness -------------------------------------------------- */

static void
on_timeout(uv_timer_t *t)
{
	struct tg_conn_s *c = t->data;

	TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
	if (c->state == CS_WAIT || c->state == CS_CLOSING)
		return;   /* the server's own work, not the client, is what we wait for */
	if ((c->state == CS_HEAD && c->in_len == 0) || c->state == CS_LINGER) {
		conn_close(c);   /* an idle keep-alive connection, or lingering done */
		return;
	}
	tg_log(c->srv, TG_LOG_INFO, "%s: timed out %s", c->peer,
	    c->state == CS_HANDSHAKE ? "during the TLS handshake" :
	    c->state == CS_HEAD ? "waiting for the request head" :
	    c->state == CS_BODY ? "waiting for the request body" : "sending the response");
	if (c->state == CS_HEAD || c->state == CS_BODY) {
		handler_abort(c);
		c->keep_alive = 0;
		tg_conn_respond(c, 408, NULL, "timed out waiting for the request");
		conn_run(c);
		return;
	}
	conn_close(c);
}

static void
deadline(struct tg_conn_s *c, uint64_t ms)
{
	uv_timer_start(&c->timer, on_timeout, ms, 0);
}

static void
on_poll(uv_poll_t *p, int status, int events)
{
	struct tg_conn_s *c = p->data;

	TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
	if (status < 0) {
		conn_close(c);
		return;
	}
	conn_run(c);
}

static void
wait_io(struct tg_conn_s *c)
{
	int ev = c->want_write ? UV_WRITABLE : UV_READABLE;

	if (c->polled == ev)
		return;   /* already watched for it: each restart costs an epoll_ctl */
	c->polled = ev;
	uv_poll_start(&c->poll, ev, on_poll);
}

/* ---- responses ------------------------------------------------------------- */

static int
out_reserve(struct tg_conn_s *c, size_t need)
{
	if (c->out_cap >= need)
		return 0;
	if (c->out == NULL && need <= TG_IO_BUF) {
		if ((c->out = buf_take()) == NULL)
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

void
tg_conn_respond_head(struct tg_conn_s *c, int status, const char *headers, uint64_t clen)
{
	char head[2048];
	size_t n;

	TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
	n = head_common(c, head, sizeof(head), status, headers, clen);
	if (out_reserve(c, n > TG_IO_BUF ? n : TG_IO_BUF) < 0) {
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
	tg_conn_respond_head(c, status, hdrs, bl + nl);
	if (head || bl == 0 || c->state != CS_RESP)
		return;
	if (out_reserve(c, c->out_len + bl + 1) < 0) {
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

/* ---- requests -------------------------------------------------------------- */

static void
reset_request(struct tg_conn_s *c)
{
	c->method[0] = '\0';
	drop_request_text(c);
	c->keep_alive = c->expect_continue = c->chunked = c->has_len = 0;
	c->content_length = c->body_left = 0;
	c->status = c->close_after = c->linger = 0;
	c->bytes_in = c->bytes_out = 0;
	memset(&c->chunk, 0, sizeof(c->chunk));
	c->handler = NULL;
	c->hreq = NULL;
}

static int
copy_hdr(const struct tg_http_header *h, char *dst, size_t len)
{
	if (h->value_len >= len)
		return -1;
	memcpy(dst, h->value, h->value_len);
	dst[h->value_len] = '\0';
	return 0;
}

/* Reads the framing headers; -1 with a response queued on bad framing. */
static int
read_headers(struct tg_conn_s *c, const struct tg_http_header *h, size_t n)
{
	size_t i;
	int have_host = 0;

	c->keep_alive = c->minor == 1;
	for (i = 0; i < n; i++) {
		const struct tg_http_header *x = &h[i];
#define IS(hn) (x->name_len == sizeof(hn) - 1 && !strncasecmp(x->name, hn, x->name_len))
		if (IS("Content-Length")) {
			uint64_t v;
			if (tg_http_content_length(x->value, x->value_len, &v) < 0 ||
			    (c->has_len && v != c->content_length))
				goto bad;
			c->has_len = 1;
			c->content_length = v;
		} else if (IS("Transfer-Encoding")) {
			if (c->chunked || x->value_len != 7 || strncasecmp(x->value, "chunked", 7)) {
				c->keep_alive = 0;
				tg_conn_respond(c, 501, NULL, "only Transfer-Encoding: chunked is supported");
				return -1;
			}
			c->chunked = 1;
		} else if (IS("Connection")) {
			if (tg_http_has_token(x->value, x->value_len, "close"))
				c->keep_alive = 0;
			else if (tg_http_has_token(x->value, x->value_len, "keep-alive"))
				c->keep_alive = 1;
		} else if (IS("Expect")) {
			if (x->value_len != 12 || strncasecmp(x->value, "100-continue", 12)) {
				c->keep_alive = 0;
				tg_conn_respond(c, 417, NULL, "only Expect: 100-continue is supported");
				return -1;
			}
			c->expect_continue = 1;
		} else if (IS("Content-Type")) {
			if (copy_hdr(x, c->content_type, sizeof(c->rt->content_type)) < 0)
				goto bad;
		} else if (IS("Range")) {
			if (copy_hdr(x, c->range, sizeof(c->rt->range)) < 0)
				c->range[0] = '\0';   /* too long to be sensible: ignore */
		} else if (IS("Host")) {
			if (have_host++)
				goto bad;
			if (copy_hdr(x, c->rt->host, sizeof(c->rt->host)) < 0)
				c->rt->host[0] = '\0';
		}
#undef IS
	}
	/* RFC 9112 §6.3: both framings at once is how smuggling starts */
	if (c->chunked && c->has_len)
		goto bad;
	if (c->minor == 1 && !have_host)
		goto bad;
	c->body_left = c->has_len ? c->content_length : 0;
	return 0;
bad:
	c->keep_alive = 0;
	c->body_left = 0;
	c->chunked = 0;
	tg_conn_respond(c, 400, NULL, "bad request framing or headers");
	return -1;
}

static void
body_complete(struct tg_conn_s *c)
{
	c->body_left = 0;
	c->chunked = 0;
	if (c->handler && c->handler->body_end)
		c->handler->body_end(c);
}

/* The handler wants the body: 100 Continue first if the client waits for
 * it (queued; step_body sends it), and an empty body ends at once. */
static void
expect_body(struct tg_conn_s *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	c->state = CS_BODY;
	if (c->expect_continue && (c->body_left || c->chunked) && out_reserve(c, TG_IO_BUF) == 0) {
		memcpy(c->out, cont, sizeof(cont) - 1);
		c->out_len = sizeof(cont) - 1;
		c->out_off = 0;
	}
	if (!c->body_left && !c->chunked)
		body_complete(c);
}

/* Offers the request to the listener's handlers in order. */
static void
dispatch(struct tg_conn_s *c, const struct tg_http_req *req)
{
	const struct tg_handler *const *hp;

	for (hp = c->srv->handlers[c->kind]; *hp; hp++) {
		enum tg_handled r;

		if ((*hp)->match && !(*hp)->match(*hp, c))
			continue;
		c->handler = *hp;
		r = (*hp)->begin(*hp, c, req);
		if (r == TG_H_BODY)
			expect_body(c);
		else if (r == TG_H_TAKE)
			c->state = CS_TAKE;
		return;
	}
	c->handler = NULL;
	tg_conn_respond(c, 404, NULL, "nothing is served at this path");
}

static void
begin_request(struct tg_conn_s *c, size_t head_len, const struct tg_http_req *req)
{
	const struct tg_server *s = c->srv;
	c->t_start = tg_now_ms();
	c->bytes_in = head_len;
	snprintf(c->method, sizeof(c->method), "%.*s", (int)req->method_len, req->method);
	if (take_request_text(c) < 0) {
		c->keep_alive = 0;
		tg_conn_respond(c, 503, NULL, "out of memory");
		return;
	}
	c->minor = req->minor_version;
	if (req->method_len >= sizeof(c->method)) {
		c->keep_alive = 0;
		tg_conn_respond(c, 501, NULL, "unknown method");
		return;
	}
	if (req->target_len >= sizeof(c->rt->target)) {
		snprintf(c->target, sizeof(c->rt->target), "%.200s...", req->target);
		c->keep_alive = 0;
		tg_conn_respond(c, 414, NULL, "the path is too long");
		return;
	}
	memcpy(c->target, req->target, req->target_len);
	c->target[req->target_len] = '\0';
	if (read_headers(c, req->headers, req->num_headers) < 0)
		return;
	deadline(c, s->t_body);
	dispatch(c, req);
}

/* Feeds the body bytes now in c->in to the handler. */
static void
feed_body(struct tg_conn_s *c)
{
	size_t n = c->in_len, rest = 0;
	ssize_t left;

	if (c->chunked) {
		left = tg_chunked_decode(&c->chunk, c->in, &n);
		if (left == TG_HTTP_BAD) {
			handler_abort(c);
			c->keep_alive = 0;
			c->chunked = 0;
			tg_conn_respond(c, 400, NULL, "malformed chunked body");
			c->in_len = 0;
			return;
		}
		rest = left >= 0 ? (size_t)left : 0;
	} else {
		if (n > c->body_left) {
			rest = n - (size_t)c->body_left;
			n = (size_t)c->body_left;
		}
		c->body_left -= n;
		left = c->body_left == 0 ? 0 : TG_HTTP_INCOMPLETE;
	}
	if (n && c->handler && c->handler->body && c->handler->body(c, c->in, n) < 0) {
		c->in_len = 0;
		return;   /* an error response is queued */
	}
	memmove(c->in, c->in + n, rest);   /* pipelined bytes of the next request */
	c->in_len = rest;
	if (left >= 0)
		body_complete(c);
}

/* The trust verdict on this connection's client, as "mode/verdict". */
static void
trust_word(const struct tg_conn_s *c, char *buf, size_t len)
{
	const struct tg_trust_verdict *v = c->ssl ? tg_tls_verdict(c->ssl) : NULL;
	const struct tg_trust *t = c->ssl ? tg_tls_trust(c->ssl) : NULL;

	if (v == NULL || t == NULL) {
		snprintf(buf, len, "-");
		return;
	}
	snprintf(buf, len, "%s/%s", tg_trust_mode_name(t->mode),
	    v->warn ? "accepted-unvalidated" : v->record ? "recorded" : "accepted");
}

/* Who answered, for the log and the counters: the handler that took the
 * request, or for one refused before a handler saw it, the handler it was
 * meant for; NULL for none ("other"). */
static const struct tg_handler *
answered_by(const struct tg_conn_s *c)
{
	const struct tg_handler *const *hp;

	if (c->handler)
		return c->handler;
	for (hp = c->srv->handlers[c->kind]; *hp; hp++)
		if ((*hp)->match == NULL || (*hp)->match(*hp, c))
			return *hp;
	return NULL;
}

static void
log_request(const struct tg_conn_s *c)
{
	char trust[64];
	struct tg_access a = { .peer = c->peer, .ident = c->ident, .trust = trust,
	    .service = answered_by(c) ? answered_by(c)->service : "other", .method = c->method,
	    .target = c->target, .status = c->status, .bytes_in = c->bytes_in,
	    .bytes_out = c->bytes_out, .ms = c->t_start ? tg_now_ms() - c->t_start : 0 };

	if (TG_LOG_INFO < c->srv->log_level)
		return;
	trust_word(c, trust, sizeof(trust));
	tg_log_access(c->srv, &a);
}

static void
count_request(struct tg_conn_s *c)
{
	struct tg_metrics *m = &c->srv->m;
	enum tg_counted how = answered_by(c) ? answered_by(c)->counted : TG_COUNT_OTHER;

	if (how == TG_COUNT_NONE)
		return;
	tg_metrics_status(m, c->status);
	if (how == TG_COUNT_FILES) {
		m->files_in += c->bytes_in;
		m->files_out += c->bytes_out;
	} else {
		m->other_in += c->bytes_in;
		m->other_out += c->bytes_out;
	}
}

static void
finish_request(struct tg_conn_s *c)
{
	log_request(c);
	count_request(c);
	c->requests++;
	if (c->close_after && c->linger) {
		/* The client may still be sending the body we refused. Closing now
		 * would make the kernel reset the connection, and the client would
		 * lose our answer: stop writing, drain its bytes for a while. */
		if (c->ssl) {
			ERR_clear_error();
			SSL_shutdown(c->ssl);
			ERR_clear_error();
		}
		shutdown(c->fd, SHUT_WR);
		c->state = CS_LINGER;
		deadline(c, 2000);
		return;
	}
	if (c->close_after) {
		conn_close(c);
		return;
	}
	reset_request(c);
	c->state = CS_HEAD;
	c->out_len = c->out_off = 0;
	/* an idle connection keeps no buffers */
	buf_give(c->out, c->out_cap);
	c->out = NULL;
	c->out_cap = 0;
	if (c->in_len == 0) {
		buf_give(c->in, TG_IO_BUF);
		c->in = NULL;
	}
	deadline(c, c->srv->t_keepalive);
}

/* ---- the state machine ----------------------------------------------------- */

/* The store decided a first contact the connection waited for (record.c):
 * go on to the request, or close. */
static void
pin_decided(void *arg, int ok)
{
	struct tg_conn_s *c = arg;

	TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
	if (c->handles_open == 0 || uv_is_closing((uv_handle_t *)&c->poll))
		return;   /* closed already */
	if (!ok) {
		conn_close(c);
		return;
	}
	c->state = CS_HEAD;
	deadline(c, c->srv->t_header);
	conn_run(c);
}

/* What the trust engine said about the client certificate, acted upon:
 * 1 when the connection must wait for the store to decide a first contact,
 * -1 when it must close. */
static int
after_verdict(struct tg_conn_s *c)
{
	const struct tg_trust_verdict *v = tg_tls_verdict(c->ssl);
	struct tg_trust *t = tg_tls_trust(c->ssl);

	if (v == NULL)
		return 0;
	c->srv->m.trust_accepted++;
	c->srv->m.trust_recorded += v->record != 0;
	c->srv->m.trust_warned += v->warn != 0;
	if (v->warn)
		tg_log(c->srv, TG_LOG_WARN, "%s: client %s accepted WITHOUT VALIDATION: %s", c->peer,
		    v->identity, v->reason);
	if (!v->record)
		return 0;
	if (v->first && t->share) {   /* the one that judged; the cluster decides */
		struct tg_record_waiter w = { pin_decided, c, c->peer, &c->record };
		return tg_record_pin(c->srv, t, v, &w) < 0 ? -1 : 1;
	}
	(void)tg_record_pin(c->srv, t, v, NULL);
	return 0;
}

static int
do_handshake(struct tg_conn_s *c)
{
	char words[300];
	X509 *peer;
	int r, wait;

	ERR_clear_error();
	r = SSL_do_handshake(c->ssl);
	if (r == 1) {
		int answered = c->srv->tls_answered ? c->srv->tls_answered(c->ssl) : 0;
		if (answered) {
			/* RFC 8737: the handshake was the answer; nothing follows */
			tg_log(c->srv, TG_LOG_INFO, "%s: answered a tls-alpn-01 challenge%s", c->peer,
			    answered == 2 ?
			    " with the answer another worker or node published" : "");
			return TG_IO_FAIL;
		}
		peer = SSL_get0_peer_certificate(c->ssl);
		if (peer)
			tg_trust_client_identity(peer, c->ident, sizeof(c->ident));
		wait = after_verdict(c);
		if (wait < 0)
			return TG_IO_FAIL;
		c->srv->m.handshakes_ok++;
		c->ktls = BIO_get_ktls_send(SSL_get_wbio(c->ssl)) > 0;
		if (SSL_session_reused(c->ssl))
			c->srv->m.handshakes_resumed++;
		c->state = CS_HEAD;
		if (wait)
			tg_conn_wait(c);   /* until pin_decided */
		else
			deadline(c, c->srv->t_header);
		return 0;
	}
	if (ssl_outcome(c, r) == TG_IO_AGAIN)
		return TG_IO_AGAIN;
	tg_ossl_words(words, sizeof(words));
	if (tg_tls_refusal(c->ssl)[0]) {
		c->srv->m.handshakes_refused++;
		c->srv->m.trust_rejected++;
	} else if (BIO_number_read(SSL_get_rbio(c->ssl)) != 0) {
		c->srv->m.handshakes_failed++;
	}
	if (SSL_CTX_get0_certificate(SSL_get_SSL_CTX(c->ssl)) == NULL &&
	    !(c->srv->tls_answered && c->srv->tls_answered(c->ssl)))
		tg_log(c->srv, TG_LOG_WARN, "%s: TLS handshake refused: no certificate yet (the ACME "
		    "order is in progress; see the acme: lines)", c->peer);
	else if (tg_tls_refusal(c->ssl)[0])
		tg_log(c->srv, TG_LOG_WARN, "%s: refused client certificate: %s%s", c->peer,
		    tg_tls_refusal(c->ssl), strstr(tg_tls_refusal(c->ssl), "not a trusted CA") ?
		    " (tls.clients.ca names the trusted ones)" : "");
	else if (BIO_number_read(SSL_get_rbio(c->ssl)) == 0)
		tg_log(c->srv, TG_LOG_DEBUG, "%s: closed before the TLS handshake", c->peer);
	else if (words[0])
		tg_log(c->srv, TG_LOG_WARN, "%s: TLS handshake failed: %s", c->peer, words);
	else
		tg_log(c->srv, TG_LOG_DEBUG, "%s: closed during the TLS handshake", c->peer);
	return TG_IO_FAIL;
}

static int
read_more(struct tg_conn_s *c, size_t limit)
{
	ssize_t r;

	if (c->in == NULL && (c->in = buf_take()) == NULL)
		return TG_IO_FAIL;
	r = io_read(c, c->in + c->in_len, limit - c->in_len);
	if (r > 0) {
		c->in_len += (size_t)r;
		c->bytes_in += (uint64_t)r;
	}
	return r == 0 ? TG_IO_FAIL : (int)(r < 0 ? r : 1);
}

/* A request its handler takes whole (a proxy route): the socket (a
 * duplicate, so this connection can close as usual) and its TLS state go
 * to the handler with the body bytes already read. */
static int
hand_over(struct tg_conn_s *c)
{
	int fd = fcntl(c->fd, F_DUPFD_CLOEXEC, 0);
	struct tg_handover ho;
	char what[200];

	if (fd < 0) {
		handler_abort(c);
		c->handler = NULL;
		c->keep_alive = 0;
		tg_conn_respond(c, 503, NULL, "out of resources");
		return 0;
	}
	snprintf(what, sizeof(what), "%s %.180s", c->method, c->target);
	ho = (struct tg_handover){ .fd = fd, .ssl = c->ssl, .peer = c->peer, .ip = c->ip,
	    .what = what, .body_read = c->in ? c->in : "", .body_read_len = c->in_len,
	    .body_len = c->chunked ? -1 : c->has_len ? (int64_t)c->content_length : 0,
	    .client_keep = c->keep_alive };
	c->ssl = NULL;   /* the taker's now */
	c->srv->m.requests_other++;
	if (c->handler->take(c, &ho) < 0) {
		SSL_free(ho.ssl);
		close(fd);
	}
	handler_abort(c);   /* whatever the taker left (abort is safe twice) */
	c->handler = NULL;
	conn_close(c);
	return TG_IO_FAIL;
}

static int
step_head(struct tg_conn_s *c)
{
	struct tg_http_header hdrs[128];
	struct tg_http_req req;
	size_t limit = c->srv->max_header_bytes;
	ssize_t r = TG_HTTP_INCOMPLETE;
	int rr, was_empty = c->in_len == 0;

	if (c->in_len) {
		req.headers = hdrs;
		req.num_headers = c->srv->max_headers < 128 ? c->srv->max_headers : 128;
		r = tg_http_parse_request(c->in, c->in_len, &req);
	}
	if (r > 0) {
		size_t hl = (size_t)r;
		begin_request(c, hl, &req);
		memmove(c->in, c->in + hl, c->in_len - hl);
		c->in_len -= hl;
		return 0;
	}
	if (r == TG_HTTP_BAD || c->in_len >= limit) {
		int too_big = r != TG_HTTP_BAD;
		c->keep_alive = 0;
		snprintf(c->method, sizeof(c->method), "-");
		tg_conn_respond(c, too_big ? 431 : 400, NULL, too_big ?
		    "the request head is too large (limits.max_header_bytes)" :
		    "malformed request head (or too many header fields)");
		c->in_len = 0;
		return 0;
	}
	rr = read_more(c, limit);
	if (rr == TG_IO_AGAIN && c->in_len == 0 && c->in) {
		buf_give(c->in, TG_IO_BUF);   /* idle: give the buffer back */
		c->in = NULL;
	}
	if (rr > 0 && was_empty && c->requests > 0)
		deadline(c, c->srv->t_header);   /* a new request head is arriving */
	return rr > 0 ? 0 : rr;
}

static int
flush_out(struct tg_conn_s *c)
{
	while (c->out_off < c->out_len) {
		ssize_t w = io_write(c, c->out + c->out_off, c->out_len - c->out_off);
		if (w < 0)
			return (int)w;
		c->out_off += (size_t)w;
		c->bytes_out += (uint64_t)w;
		deadline(c, c->srv->t_body);
	}
	c->out_len = c->out_off = 0;
	return 0;
}

static int
step_body(struct tg_conn_s *c)
{
	int r;

	if (c->out_off < c->out_len && (r = flush_out(c)) < 0)   /* 100 Continue */
		return r;
	if (c->in_len) {
		feed_body(c);
		return 0;
	}
	r = read_more(c, TG_IO_BUF);
	if (r > 0)
		deadline(c, c->srv->t_body);
	return r > 0 ? 0 : r;
}

static int
step_resp(struct tg_conn_s *c)
{
	int r;
	ssize_t n;
	size_t want;

	/* kTLS: the kernel encrypts straight from the page cache; the head
	 * goes first through OpenSSL, which writes it through the kernel too */
	if (c->file_fd >= 0 && c->file_left > 0 && c->ssl && c->ktls) {
		if ((r = flush_out(c)) < 0)
			return r;
		want = c->file_left < (1u << 20) ? (size_t)c->file_left : (1u << 20);
		if (ERR_peek_error())
			ERR_clear_error();
		n = SSL_sendfile(c->ssl, c->file_fd, (off_t)c->file_off, want, 0);
		if (n <= 0) {
			r = ssl_outcome(c, (int)n);
			return r == TG_IO_AGAIN ? TG_IO_AGAIN : TG_IO_FAIL;
		}
		c->file_off += (uint64_t)n;
		c->file_left -= (uint64_t)n;
		c->bytes_out += (uint64_t)n;
		deadline(c, c->srv->t_body);
		if (c->file_left > 0)
			return 0;
	}
	/* file bytes go after what is queued (the head, for the first piece),
	 * so a small file leaves in the same TLS record as its head */
	if (c->file_fd >= 0 && c->file_left > 0 && c->out_off == 0 && c->out_len < TG_IO_BUF) {
		if (out_reserve(c, TG_IO_BUF) < 0)
			return TG_IO_FAIL;
		want = c->out_cap - c->out_len;
		if (c->file_left < want)
			want = (size_t)c->file_left;
		else if (c->out_len > 0 && want > 4096)
			want &= ~(size_t)4095;   /* later reads then start on page boundaries */
		n = pread(c->file_fd, c->out + c->out_len, want, (off_t)c->file_off);
		if (n <= 0)
			return TG_IO_FAIL;   /* the file shrank: the response cannot be completed */
		c->out_len += (size_t)n;
		c->file_off += (uint64_t)n;
		c->file_left -= (uint64_t)n;
	}
	if ((r = flush_out(c)) < 0)
		return r;
	if (c->file_fd >= 0 && c->file_left > 0)
		return 0;
	if (c->file_fd >= 0) {
		close(c->file_fd);
		c->file_fd = -1;
	}
	finish_request(c);
	return 0;
}

static int
step_linger(struct tg_conn_s *c)
{
	char buf[16384];
	int wait = 0;
	ssize_t n;

	for (;;) {
		/* the socket itself: TLS was shut down, what comes is dropped */
		n = tg_io_read(c->fd, NULL, buf, sizeof(buf), &wait);
		if (n == TG_IO_AGAIN) {
			c->want_write = 0;
			return TG_IO_AGAIN;
		}
		if (n <= 0 || (c->lingered += (uint64_t)n) > (64u << 20))
			return TG_IO_FAIL;   /* done (or enough): close */
	}
}

static void
conn_run(struct tg_conn_s *c)
{
	int r = 0;

	while (r == 0) {
		switch (c->state) {
		case CS_HANDSHAKE:
			r = do_handshake(c);
			break;
		case CS_HEAD:
			r = step_head(c);
			break;
		case CS_BODY:
			r = step_body(c);
			break;
		case CS_RESP:
			r = step_resp(c);
			break;
		case CS_LINGER:
			r = step_linger(c);
			break;
		case CS_TAKE:
			r = hand_over(c);
			break;
		case CS_WAIT:
			uv_poll_stop(&c->poll);
			c->polled = 0;
			return;
		case CS_CLOSING:
			conn_close(c);
			return;
		}
	}
	if (r == TG_IO_AGAIN)
		wait_io(c);
	else
		conn_close(c);
}

void
tg_conn_wait(struct tg_conn_s *c)
{
	TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
	/* neither the client's bytes nor its deadline matter until the work
	 * is done: a slow disk is not the client's timeout */
	c->state = CS_WAIT;
	uv_timer_stop(&c->timer);
}

void
tg_conn_resume(struct tg_conn_s *c)
{
	TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
	if (c->handles_open == 0 || uv_is_closing((uv_handle_t *)&c->poll))
		return;   /* closed already */
	/* CS_CLOSING here (the response could not be allocated) is closed by
	 * conn_run: nothing else would, the poll and the timer being stopped */
	deadline(c, c->srv->t_body);   /* the response must move within this */
	conn_run(c);
}

/* ---- life and death -------------------------------------------------------- */

static void
on_handle_closed(uv_handle_t *h)
{
	struct tg_conn_s *c = h->data;

	TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
	if (--c->handles_open > 0)
		return;
	close(c->fd);
	c->magic = 0;
	free(c);
}

static void
conn_close(struct tg_conn_s *c)
{
	struct tg_server *s = c->srv;

	if (c->handles_open == 0 || uv_is_closing((uv_handle_t *)&c->poll))
		return;
	if (c->state == CS_HEAD && c->in_len > 0)
		tg_log(s, TG_LOG_DEBUG, "%s: closed with a partial request head", c->peer);
	if (c->state == CS_BODY && c->handler)
		tg_log(s, TG_LOG_WARN, "%s: %s %s: the client went away during the upload; "
		    "nothing was stored", c->peer, c->method, c->target);
	c->state = CS_CLOSING;
	handler_abort(c);
	c->handler = NULL;
	tg_record_abort(&c->record);
	if (c->file_fd >= 0)
		close(c->file_fd);
	c->file_fd = -1;
	if (c->ssl) {
		ERR_clear_error();
		if (SSL_is_init_finished(c->ssl) && !c->linger)
			SSL_shutdown(c->ssl);   /* one try; we do not wait for the peer */
		ERR_clear_error();
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	buf_give(c->in, TG_IO_BUF);
	buf_give(c->out, c->out_cap);
	c->in = c->out = NULL;
	c->out_cap = 0;
	drop_request_text(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	tg_peers_release(s->peers, c->ip);
	tg_server_conn_gone(s);
	uv_poll_stop(&c->poll);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->poll, on_handle_closed);
	uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

void
tg_conn_close_all(struct tg_server *s)
{
	while (s->conns)
		conn_close(s->conns);
}

void
tg_conn_close_idle(struct tg_server *s)
{
	struct tg_conn_s *c = s->conns, *next;

	for (; c; c = next) {
		next = c->next;
		/* idle keep-alive, or a handshake that has asked for nothing yet */
		if ((c->state == CS_HEAD && c->in_len == 0) || c->state == CS_HANDSHAKE)
			conn_close(c);
	}
}

static void
peer_name(int fd, char *buf, size_t len, char *ip, size_t iplen)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];   /* numeric: the longest an address is */

	buf[0] = '\0';
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0) {
		snprintf(buf, len, "?");
		snprintf(ip, iplen, "?");
		return;
	}
	if (ss.ss_family == AF_INET6 && !strncmp(host, "::ffff:", 7))
		memmove(host, host + 7, strlen(host + 7) + 1);
	snprintf(ip, iplen, "%s", host);
	snprintf(buf, len, strchr(host, ':') ? "[%s]:%u" : "%s:%u", host,
	    ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
	    ((struct sockaddr_in *)&ss)->sin_port));
}

/* At most one "limit reached" line every ten seconds: a flood must not
 * become a log flood. */
static void
limit_note(struct tg_server *s, const char *what)
{
	uint64_t now = tg_now_ms();

	if (now - s->refused_logged_ms >= 10000 || s->refused_logged_ms == 0) {
		s->refused_logged_ms = now;
		tg_log(s, TG_LOG_WARN, "%s", what);
	}
}

/* A connection object for an open socket, counted and polled. */
static struct tg_conn_s *
conn_new(struct tg_server *s, int fd, const char *peer, const char *ip)
{
	struct tg_conn_s *c;
	int one = 1;

	if (tg_peers_take(s->peers, ip, s->max_per_ip) < 0) {
		limit_note(s, "limits.max_connections_per_ip reached for a client address; "
		    "refusing its new connections");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		tg_peers_release(s->peers, ip);
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->magic = TG_CONN_MAGIC;
	c->srv = s;
	c->target = c->content_type = c->range = no_text;
	c->fd = fd;
	c->file_fd = -1;
	snprintf(c->ident, sizeof(c->ident), "-");
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	if (uv_poll_init(s->loop, &c->poll, fd) != 0) {
		tg_peers_release(s->peers, ip);
		free(c);
		return NULL;
	}
	uv_timer_init(s->loop, &c->timer);
	c->poll.data = c->timer.data = c;
	c->handles_open = 2;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	s->nconns++;
	return c;
}

void
tg_conn_accept(struct tg_server *s, int fd, int kind)
{
	struct tg_conn_s *c;
	char peer[64], ip[48];

	if (s->nconns >= s->max_connections || s->stopping) {
		limit_note(s, "limits.max_connections reached; refusing new connections");
		close(fd);
		return;
	}
	peer_name(fd, peer, sizeof(peer), ip, sizeof(ip));
	if ((c = conn_new(s, fd, peer, ip)) == NULL) {
		close(fd);
		return;
	}
	c->kind = kind;
	s->m.connections++;
	if (s->ssl_ctx && kind == TG_LISTENER_MAIN) {
		c->ssl = SSL_new(s->ssl_ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
			conn_close(c);
			return;
		}
		SSL_set_accept_state(c->ssl);
		c->state = CS_HANDSHAKE;
		deadline(c, s->t_handshake);
	} else {
		c->state = CS_HEAD;
		deadline(c, s->t_header);
	}
	conn_run(c);
}

void
tg_conn_adopt(struct tg_server *s, int fd, SSL *ssl, const char *peer, const char *ip)
{
	struct tg_conn_s *c;

	if (s->stopping || (c = conn_new(s, fd, peer, ip)) == NULL) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	c->ssl = ssl;
	c->kind = TG_LISTENER_MAIN;   /* a proxied exchange came from the main listener */
	c->state = CS_HEAD;
	c->requests = 1;
	deadline(c, s->t_keepalive);
	conn_run(c);
}
