/*
 * A connection's requests: the head's framing fields read and checked
 * (RFC 9112: one framing, a Host for HTTP/1.1), the request offered to the
 * listener's handlers (handler.h), body bytes fed to the one that took it,
 * and the access line and counters when it ends. Used by conn.c; calls
 * nothing in conn.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "conn_int.h"
#include "handler.h"
#include "tls.h"
#include "trust.h"
#include "util.h"

/* The request ends early: the handler that took it lets go of it. */
void
tg_conn_handler_abort(struct tg_conn_s *c)
{
	if (c->handler && c->handler->abort)
		c->handler->abort(c);
}

/* What target, content_type and range point at between requests. */
static char no_text[1];
/* one request text kept per thread for the next request */
static __thread struct tg_request_text *spare_rt;

void
tg_conn_text_drop(struct tg_conn_s *c)
{
	if (spare_rt == NULL)
		spare_rt = c->rt;
	else
		free(c->rt);
	c->rt = NULL;
	c->target = c->content_type = c->range = no_text;
}

static int
text_take(struct tg_conn_s *c)
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

void
tg_conn_reset_request(struct tg_conn_s *c)
{
	c->method[0] = '\0';
	tg_conn_text_drop(c);
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
	if (c->expect_continue && (c->body_left || c->chunked) && tg_conn_out_reserve(c, TG_IO_BUF) == 0) {
		memcpy(c->out, cont, sizeof(cont) - 1);
		c->out_len = sizeof(cont) - 1;
		c->out_off = 0;
	}
	if (!c->body_left && !c->chunked)
		body_complete(c);
}

/* Offers the request to the listener's handlers in order. */
void
tg_conn_dispatch(struct tg_conn_s *c, const struct tg_http_req *req)
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

int
tg_conn_parse_request(struct tg_conn_s *c, size_t head_len, const struct tg_http_req *req)
{
	c->t_start = tg_now_ms();
	c->bytes_in = head_len;
	snprintf(c->method, sizeof(c->method), "%.*s", (int)req->method_len, req->method);
	if (text_take(c) < 0) {
		c->keep_alive = 0;
		tg_conn_respond(c, 503, NULL, "out of memory");
		return -1;
	}
	c->minor = req->minor_version;
	if (req->method_len >= sizeof(c->method)) {
		c->keep_alive = 0;
		tg_conn_respond(c, 501, NULL, "unknown method");
		return -1;
	}
	if (req->target_len >= sizeof(c->rt->target)) {
		snprintf(c->target, sizeof(c->rt->target), "%.200s...", req->target);
		c->keep_alive = 0;
		tg_conn_respond(c, 414, NULL, "the path is too long");
		return -1;
	}
	memcpy(c->target, req->target, req->target_len);
	c->target[req->target_len] = '\0';
	return read_headers(c, req->headers, req->num_headers);
}

/* Feeds the body bytes now in c->in to the handler. */
void
tg_conn_feed_body(struct tg_conn_s *c)
{
	size_t n = c->in_len, rest = 0;
	ssize_t left;

	if (c->chunked) {
		left = tg_chunked_decode(&c->chunk, c->in, &n);
		if (left == TG_HTTP_BAD) {
			tg_conn_handler_abort(c);
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

void
tg_conn_request_ended(struct tg_conn_s *c)
{
	const struct tg_handler *h = answered_by(c);   /* looked up once */
	enum tg_counted how = h ? h->counted : TG_COUNT_OTHER;
	struct tg_metrics *m = &c->srv->m;
	char trust[64];

	if (TG_LOG_INFO >= c->srv->log_level) {
		struct tg_access a = { .peer = c->peer, .ident = c->ident, .trust = trust,
		    .service = h ? h->service : "other", .method = c->method,
		    .target = c->target, .status = c->status, .bytes_in = c->bytes_in,
		    .bytes_out = c->bytes_out, .ms = c->t_start ? tg_now_ms() - c->t_start : 0 };
		trust_word(c, trust, sizeof(trust));
		tg_log_access(c->srv, &a);
	}
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
