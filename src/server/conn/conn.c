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
#include "conn_int.h"
#include "record.h"
#include "sockio.h"
#include "error.h"
#include "magic.h"
#include "peers.h"
#include "proxyproto.h"
#include "ossl_words.h"
#include "tls.h"
#include "trust.h"
#include "util.h"


static void conn_run(struct tg_conn_s *c);
static void conn_close(struct tg_conn_s *c);

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
	    c->state == CS_PROXY ? "waiting for the PROXY header" :
	    c->state == CS_HANDSHAKE ? "during the TLS handshake" :
	    c->state == CS_HEAD ? "waiting for the request head" :
	    c->state == CS_BODY ? "waiting for the request body" : "sending the response");
	if (c->state == CS_HEAD || c->state == CS_BODY) {
		tg_conn_handler_abort(c);
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

void
tg_conn_deadline(struct tg_conn_s *c, uint64_t ms)
{
	deadline(c, ms);
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

static void
finish_request(struct tg_conn_s *c)
{
	tg_conn_request_ended(c);
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
	tg_conn_reset_request(c);
	c->state = CS_HEAD;
	c->out_len = c->out_off = 0;
	/* an idle connection keeps no buffers */
	tg_conn_buf_give(c->out, c->out_cap);
	c->out = NULL;
	c->out_cap = 0;
	if (c->in_len == 0) {
		tg_conn_buf_give(c->in, TG_IO_BUF);
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

/* /metrics: the ALPN protocol and the key-exchange group a handshake
 * settled on. */
static void
count_protocols(struct tg_conn_s *c)
{
	struct tg_metrics *m = &c->srv->m;
	const unsigned char *p = NULL;
	unsigned int n = 0;

	SSL_get0_alpn_selected(c->ssl, &p, &n);
	if (n == 0)
		m->alpn_none++;
	else if (n == 8 && !memcmp(p, "http/1.1", 8))
		m->alpn_http11++;
	else
		m->alpn_http10++;   /* the listener selects nothing else (https_alpn) */
	tg_metrics_group(m, tg_tls_group_kind(c->ssl));
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
			c->srv->m.alpn_acme++;
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
		count_protocols(c);
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
	else if (tg_tls_noted(c->ssl)[0]) {   /* only the ALPN callback notes here */
		c->srv->m.alpn_refused++;
		tg_log(c->srv, TG_LOG_WARN, "%s: TLS handshake refused: %s", c->peer,
		    tg_tls_noted(c->ssl));
	}
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

	if (c->in == NULL && (c->in = tg_conn_buf_take()) == NULL)
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
		tg_conn_handler_abort(c);
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
	tg_conn_handler_abort(c);   /* whatever the taker left (abort is safe twice) */
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
		if (tg_conn_parse_request(c, hl, &req) == 0) {
			deadline(c, c->srv->t_body);   /* before a handler may stop it */
			tg_conn_dispatch(c, &req);
		}
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
		tg_conn_buf_give(c->in, TG_IO_BUF);   /* idle: give the buffer back */
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
		tg_conn_feed_body(c);
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
		if (tg_conn_out_reserve(c, TG_IO_BUF) < 0)
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
		case CS_PROXY:
			r = tg_conn_step_proxy(c);
			if (r == TG_IO_AGAIN)
				c->want_write = 0;
			break;
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
	tg_conn_handler_abort(c);
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
	tg_conn_buf_give(c->in, TG_IO_BUF);
	tg_conn_buf_give(c->out, c->out_cap);
	c->in = c->out = NULL;
	c->out_cap = 0;
	tg_conn_text_drop(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	if (c->ip_counted)
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
		if ((c->state == CS_HEAD && c->in_len == 0) || c->state == CS_HANDSHAKE ||
		    c->state == CS_PROXY)
			conn_close(c);
	}
}

static void
peer_name(int fd, char *buf, size_t len, char *ip, size_t iplen, struct sockaddr_storage *out)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN];   /* numeric: the longest an address is */

	buf[0] = '\0';
	memset(out, 0, sizeof(*out));
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), NULL, 0, NI_NUMERICHOST) != 0) {
		snprintf(buf, len, "?");
		snprintf(ip, iplen, "?");
		return;
	}
	*out = ss;
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
conn_new(struct tg_server *s, int fd, const char *peer, const char *ip, int count_ip)
{
	struct tg_conn_s *c;
	int one = 1;

	if (count_ip && tg_peers_take(s->peers, ip, s->max_per_ip) < 0) {
		limit_note(s, "limits.max_connections_per_ip reached for a client address; "
		    "refusing its new connections");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		if (count_ip)
			tg_peers_release(s->peers, ip);
		return NULL;
	}
	c->ip_counted = count_ip;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->magic = TG_CONN_MAGIC;
	c->srv = s;
	tg_conn_text_drop(c);   /* target, content_type and range: "" */
	c->fd = fd;
	c->file_fd = -1;
	snprintf(c->ident, sizeof(c->ident), "-");
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	snprintf(c->ip, sizeof(c->ip), "%s", ip);
	if (uv_poll_init(s->loop, &c->poll, fd) != 0) {
		if (count_ip)
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
	struct sockaddr_storage ss;
	char peer[64], ip[48];
	int lb;

	if (s->nconns >= s->max_connections || s->stopping) {
		limit_note(s, "limits.max_connections reached; refusing new connections");
		close(fd);
		return;
	}
	peer_name(fd, peer, sizeof(peer), ip, sizeof(ip), &ss);
	/* a load balancer's connections are counted by the client its PROXY
	 * header names, not by its own address */
	lb = kind == TG_LISTENER_MAIN && s->npp_nets && tg_pp_nets_match(s->pp_nets, s->npp_nets, &ss);
	if ((c = conn_new(s, fd, peer, ip, !lb)) == NULL) {
		close(fd);
		return;
	}
	c->kind = kind;
	s->m.connections++;
	if (s->ssl_ctx && (kind == TG_LISTENER_MAIN || kind == TG_LISTENER_CA)) {
		c->ssl = SSL_new(s->ssl_ctx);
		if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
			conn_close(c);
			return;
		}
		/* ACME clients come without a certificate, to get one: the CA's
		 * listener asks for none, and its sessions carry another context,
		 * so that none resumes on a listener that wants one */
		if (kind == TG_LISTENER_CA && (SSL_set_session_id_context(c->ssl,
		    (const unsigned char *)"tlsgate-acme-ca", 15) != 1 ||
		    (SSL_set_verify(c->ssl, SSL_VERIFY_NONE, NULL), 0))) {
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
	if (kind == TG_LISTENER_MAIN && s->npp_nets) {
		c->after_proxy = c->state;
		c->state = CS_PROXY;
		c->pp_trusted = lb;
		deadline(c, s->t_handshake);
	}
	conn_run(c);
}

void
tg_conn_adopt(struct tg_server *s, int fd, SSL *ssl, const char *peer, const char *ip)
{
	struct tg_conn_s *c;

	if (s->stopping || (c = conn_new(s, fd, peer, ip, 1)) == NULL) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	c->ssl = ssl;
	c->ktls = ssl && BIO_get_ktls_send(SSL_get_wbio(ssl)) > 0;   /* kept by tg_tls_move_fd */
	c->kind = TG_LISTENER_MAIN;   /* a proxied exchange came from the main listener */
	c->state = CS_HEAD;
	c->requests = 1;
	deadline(c, s->t_keepalive);
	conn_run(c);
}
