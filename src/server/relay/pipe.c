/*
 * The pipe (see pipe.h): the pump moves bytes until nothing moves, then
 * polls each socket for exactly what would let it move again: a full
 * buffer means its sender is not read (backpressure), and an SSL that
 * wants the other direction of I/O gets it. For proxied requests it also
 * rewrites the answer's head, tracks both messages' framing, and turns
 * failures into 502 and 504 in words.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>

#include "error.h"
#include "http_parse.h"
#include "ossl_words.h"
#include "magic.h"
#include "pipe.h"
#include "proxyproto.h"
#include "record.h"
#include "server.h"
#include "sockio.h"
#include "tls.h"
#include "trust.h"
#include "util.h"

static void http_fail(struct tg_pipe *p, int status, const char *why);
static void setup_failed(struct tg_pipe *p, int level, const char *why);


/* A close reason: OpenSSL's words and an address (connect, 300) fit whole. */
#define WORDS_LEN 600
#define WHY_LEN   (WORDS_LEN + 400)
/* ---- one side's I/O (sockio.c) ------------------------------------------------ */

static ssize_t
side_read(struct side *x, char *buf, size_t len)
{
	int wait = 0;
	ssize_t n = tg_io_read(x->fd, x->ssl, buf, len, &wait);

	x->read_wants_write = n == TG_IO_AGAIN && wait == UV_WRITABLE;
	return n;
}

ssize_t
tg_pipe_side_write(struct side *x, const char *buf, size_t len)
{
	int wait = 0;
	ssize_t n = tg_io_write(x->fd, x->ssl, buf, len, &wait);

	x->write_wants_read = n == TG_IO_AGAIN && wait == UV_READABLE;
	return n;
}

/* Moves bytes from one side to the other until nothing moves; passes an
 * end of stream on as a half-close once everything before it is written.
 * 1 progress, 0 none, -1 error. */
/* Counts n bytes just read against the message's framing; returns how many
 * of them belong to the message (the rest is extra), or -1 if malformed. */
ssize_t
tg_pipe_frame_feed(struct frame *f, const char *data, size_t n)
{
	if (f->left >= 0) {
		f->left -= (int64_t)n;   /* reads are capped at f->left */
		if (f->left == 0)
			f->done = 1;
		return (ssize_t)n;
	}
	if (f->left == -1) {
		char scratch[4096];
		size_t done = 0;
		/* the decoder works in place: run it on copies to find the end */
		while (done < n) {
			size_t k = n - done > sizeof(scratch) ? sizeof(scratch) : n - done, dl = k;
			ssize_t r;
			memcpy(scratch, data + done, k);
			r = tg_chunked_decode(&f->ch, scratch, &dl);
			if (r == -1)
				return -1;
			if (r >= 0) {   /* complete; r bytes of this piece followed the end */
				f->done = 1;
				f->extra = r > 0;
				return (ssize_t)(done + k - (size_t)r);
			}
			done += k;
		}
	}
	return (ssize_t)n;
}

static int
pump_dir(struct side *from, struct side *to, char *buf, size_t cap, size_t *off, size_t *len,
    uint64_t *count, struct frame *fr)
{
	int progress = 0;
	ssize_t n;

	for (;;) {
		if (*len > *off) {
			n = tg_pipe_side_write(to, buf + *off, *len - *off);
			if (n == TG_IO_FAIL)
				return -1;
			if (n > 0) {
				*off += (size_t)n;
				*count += (uint64_t)n;
				progress = 1;
				if (*off == *len)
					*off = *len = 0;
				continue;
			}
		}
		if (from->eof || *len == cap || (fr && fr->done))
			break;
		if (*off > 0) {   /* room at the end for the next read */
			memmove(buf, buf + *off, *len - *off);
			*len -= *off;
			*off = 0;
		}
		{
			size_t want = cap - *len;
			if (fr && fr->left >= 0 && (uint64_t)want > (uint64_t)fr->left)
				want = (size_t)fr->left;
			n = side_read(from, buf + *len, want);
		}
		if (n == TG_IO_FAIL)
			return -1;
		if (n == 0) {
			from->eof = 1;
			progress = 1;
			break;
		}
		if (n < 0)
			break;
		if (fr && (n = tg_pipe_frame_feed(fr, buf + *len, (size_t)n)) < 0)
			return -1;
		*len += (size_t)n;
		progress = 1;
	}
	/* a framed message that ended is not an end of stream: no half-close */
	if (from->eof && *len == *off && !to->shut) {
		/* half-close: the other end reads its end of stream, and may still
		 * answer (TLS: close_notify first, then FIN) */
		if (to->ssl)
			(void)SSL_shutdown(to->ssl);
		shutdown(to->fd, SHUT_WR);
		to->shut = 1;
		progress = 1;
	}
	return progress;
}

/* ---- the pipe's life ---------------------------------------------------------- */

static void
on_handle_closed(uv_handle_t *h)
{
	struct tg_pipe *p = h->data;

	TG_MAGIC_CHECK(p, TG_PIPE_MAGIC, "pipe");
	if (--p->handles == 0) {
		p->magic = 0;
		free(p);
	}
}

void
tg_pipe_close(struct tg_pipe *p, int level, const char *why)
{
	struct tg_tunnel *t;
	struct tg_server *s;

	TG_MAGIC_CHECK(p, TG_PIPE_MAGIC, "pipe");
	if (p->state == P_CLOSED)
		return;
	t = p->t;
	s = t->srv;
	if (why && t->http)
		tg_log(s, p->status && level < TG_LOG_INFO ? TG_LOG_INFO : level, "proxy %s: %s '%s' -> "
		    "%s %d%s%s (%llu bytes in, %llu out, %llu ms)", t->prefix, p->peer, p->what,
		    t->connect, p->status, p->status ? "" : ": ", p->status ? "" : why,
		    (unsigned long long)p->bytes_ab, (unsigned long long)p->bytes_ba,
		    (unsigned long long)(tg_now_ms() - p->t_start));
	else if (why)
		tg_log(s, level, "tunnel %zu: %s: %s (%llu bytes in, %llu out, %llu ms)", t->index,
		    p->peer, why, (unsigned long long)p->bytes_ab, (unsigned long long)p->bytes_ba,
		    (unsigned long long)(tg_now_ms() - p->t_start));
	if (p->state != P_PUMP && level >= TG_LOG_WARN)
		t->failed++;
	t->bytes_in += p->bytes_ab;
	t->bytes_out += p->bytes_ba;
	p->state = P_CLOSED;
	if (p->a.has_poll)
		uv_close((uv_handle_t *)&p->a.poll, on_handle_closed);
	if (p->b.has_poll)
		uv_close((uv_handle_t *)&p->b.poll, on_handle_closed);
	uv_close((uv_handle_t *)&p->timer, on_handle_closed);
	SSL_free(p->a.ssl);
	SSL_free(p->b.ssl);
	p->a.ssl = p->b.ssl = NULL;
	if (p->a.fd >= 0)
		close(p->a.fd);
	if (p->b.fd >= 0)
		close(p->b.fd);
	p->a.fd = p->b.fd = -1;
	if (p->prev)
		p->prev->next = p->next;
	else
		s->pipes = p->next;
	if (p->next)
		p->next->prev = p->prev;
	t->nconns--;
	s->nconns--;
	tg_server_conn_gone(s);
}

void
tg_pipe_on_timer(uv_timer_t *h)
{
	struct tg_pipe *p = h->data;
	char why[sizeof(p->t->connect) + 100];

	TG_MAGIC_CHECK(p, TG_PIPE_MAGIC, "pipe");
	if (p->state == P_CLOSED)
		return;

	if (p->t->http && p->state != P_PUMP) {
		snprintf(why, sizeof(why), "the upstream %s did not accept the connection within "
		    "connect_timeout", p->t->connect);
		http_fail(p, 502, why);
	} else if (p->t->http && !p->head_done) {
		snprintf(why, sizeof(why), "the upstream %s did not answer within first_byte_timeout",
		    p->t->connect);
		http_fail(p, p->bytes_ba ? 502 : 504, why);
	} else {
		tg_pipe_close(p, TG_LOG_INFO, p->state == P_PUMP ? "idle for the idle_timeout; closed" :
		    "not set up in time; closed");
	}
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct tg_pipe *p = h->data;

	TG_MAGIC_CHECK(p, TG_PIPE_MAGIC, "pipe");
	if (p->state == P_CLOSED)
		return;
	if (status < 0 && status != UV_EBADF) {
		tg_pipe_close(p, TG_LOG_DEBUG, "socket error");
		return;
	}
	tg_pipe_run(p);
}

static int
want(struct side *x, int events)
{
	if (!x->has_poll)
		return events ? -1 : 0;
	if (events == x->events)
		return 0;
	x->events = events;
	return events ? uv_poll_start(&x->poll, events, on_poll) : uv_poll_stop(&x->poll);
}

static int
arm(struct tg_pipe *p, int a_ev, int b_ev)
{
	return want(&p->a, a_ev) < 0 || want(&p->b, b_ev) < 0 ? -1 : 0;
}

/* What each socket is polled for while pumping. */
static void
arm_pump(struct tg_pipe *p)
{
	int a = 0, b = 0;

	if (!p->a.eof && p->ab_len < p->cap)
		a |= p->a.read_wants_write ? UV_WRITABLE : UV_READABLE;
	if (p->ab_len > p->ab_off)
		b |= p->b.write_wants_read ? UV_READABLE : UV_WRITABLE;
	if (!p->b.eof && p->ba_len < p->cap && (p->head_done || !p->t->http || p->ba_len < p->cap))
		b |= p->b.read_wants_write ? UV_WRITABLE : UV_READABLE;
	if (p->ba_len > p->ba_off)
		a |= p->a.write_wants_read ? UV_READABLE : UV_WRITABLE;
	if (arm(p, a, b) < 0)
		tg_pipe_close(p, TG_LOG_ERROR, "cannot poll");
}

/* What a handshake step that returned r waits for; 0 when it failed. */
static int
ssl_wait(SSL *ssl, int r)
{
	int wait = 0;

	return tg_io_ssl_result(ssl, r, &wait) == TG_IO_AGAIN ? wait : 0;
}

/* The upstream's certificate, judged by the tunnel's client trust rules
 * before a byte of the client's goes to it. */
static int
judge_upstream(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;
	struct tg_trust_verdict v;
	struct tg_err err;
	char id[320];

	tg_trust_server_identity(t->host, t->port, id, sizeof(id));
	if (tg_tls_client_judge(p->b.ssl, t->trust, id, t->http ? "add it to client.ca or the "
	    "route's ca" : "add it to client.ca or the tunnel's ca", &v, &err) < 0) {
		setup_failed(p, TG_LOG_ERROR, err.msg);
		return -1;
	}
	if (!v.accept) {
		char why[sizeof(id) + sizeof(v.reason) + 20];
		snprintf(why, sizeof(why), "upstream %s refused: %s", id, v.reason);
		setup_failed(p, TG_LOG_WARN, why);
		return -1;
	}
	if (v.warn)
		tg_log(t->srv, TG_LOG_WARN, "tunnel %zu: %s", t->index, v.reason);
	if (v.record)
		(void)tg_record_pin(t->srv, t->trust, &v, NULL);
	return 0;
}

void
tg_pipe_connect(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;
	int one = 1;

	p->b.fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->b.fd < 0) {
		tg_pipe_close(p, TG_LOG_ERROR, strerror(errno));
		return;
	}
	setsockopt(p->b.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (uv_poll_init(t->srv->loop, &p->b.poll, p->b.fd) != 0) {
		tg_pipe_close(p, TG_LOG_ERROR, "cannot poll the upstream socket");
		return;
	}
	p->b.poll.data = p;
	p->b.has_poll = 1;
	p->handles++;
	p->state = P_CONNECT_B;
	if (connect(p->b.fd, (struct sockaddr *)&t->addr, t->addrlen) < 0 && errno != EINPROGRESS) {
		char why[400];
		snprintf(why, sizeof(why), "cannot connect to %s: %s", t->connect, strerror(errno));
		setup_failed(p, TG_LOG_WARN, why);
		return;
	}
	if (arm(p, 0, UV_WRITABLE) < 0)
		tg_pipe_close(p, TG_LOG_ERROR, "cannot poll");
}

/* A proxied request that cannot reach its upstream gets a short answer in
 * words (502, or 504 when it is slow), and the reason goes to the log. */
static void
http_fail(struct tg_pipe *p, int status, const char *why)
{
	char resp[1400], line[1200];
	int n;

	snprintf(line, sizeof(line), "%s", why);
	n = snprintf(resp, sizeof(resp), "HTTP/1.1 %d %s\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s\n", status,
	    status == 504 ? "Gateway Timeout" : "Bad Gateway", strlen(line) + 1, line);
	if (n > 0 && (size_t)n < sizeof(resp))
		(void)tg_pipe_side_write(&p->a, resp, (size_t)n);   /* best effort: it is small */
	snprintf(resp, sizeof(resp), "%d: %s", status, why);
	tg_pipe_close(p, TG_LOG_WARN, resp);
}

static void
setup_failed(struct tg_pipe *p, int level, const char *why)
{
	if (p->t->http && p->state != P_CLOSED)
		http_fail(p, 502, why);
	else
		tg_pipe_close(p, level, why);
}

#define RESP_HEAD_MAX 16384       /* an upstream answer head larger than this is refused */
#define RESP_FIELDS   100

/* Reads until the upstream's answer head is whole: its length (parsed into
 * r), TG_HTTP_INCOMPLETE to wait for more (*progress: bytes came), or -1
 * when the pipe failed (answered 502). */
static ssize_t
read_response_head(struct tg_pipe *p, struct tg_http_resp *r, struct tg_http_header *h,
    int *progress)
{
	ssize_t hl, got;

	for (;;) {
		if (p->ba_len > 0) {
			r->headers = h;
			r->num_headers = RESP_FIELDS;
			if ((hl = tg_http_parse_response(p->ba, p->ba_len, r)) != TG_HTTP_INCOMPLETE)
				break;
		}
		if (p->ba_len >= RESP_HEAD_MAX) {
			hl = TG_HTTP_BAD;
			break;
		}
		got = side_read(&p->b, p->ba + p->ba_len, p->cap - p->ba_len);
		if (got == TG_IO_AGAIN)
			return TG_HTTP_INCOMPLETE;
		if (got <= 0) {
			http_fail(p, 502, got == 0 ? "the upstream closed without an answer" :
			    "the upstream connection failed");
			return -1;
		}
		p->ba_len += (size_t)got;
		*progress = 1;
	}
	if (hl < 0) {
		http_fail(p, 502, "the upstream's answer is not HTTP");
		return -1;
	}
	return hl;
}

#define HIS(hd, x) ((hd).name_len == sizeof(x) - 1 && !strncasecmp((hd).name, x, (hd).name_len))

/* How the answer's body is framed, which decides what can be kept
 * afterwards: the upstream connection (reuse_up) and the client's
 * (keep_client). */
static void
response_framing(struct tg_pipe *p, const struct tg_http_resp *r)
{
	int chunked = 0, has_len = 0;
	uint64_t clen = 0;
	size_t i;

	p->resp.left = -2;
	p->reuse_up = r->minor_version >= 1;
	for (i = 0; i < r->num_headers; i++) {
		const struct tg_http_header *h = &r->headers[i];
		if (HIS(*h, "Transfer-Encoding"))
			chunked = tg_http_has_token(h->value, h->value_len, "chunked");
		else if (HIS(*h, "Content-Length"))
			has_len = tg_http_content_length(h->value, h->value_len, &clen) == 0;
		else if (HIS(*h, "Connection") && tg_http_has_token(h->value, h->value_len, "close"))
			p->reuse_up = 0;
	}
	if (!strncmp(p->what, "HEAD ", 5) || r->status == 204 || r->status == 304 ||
	    (r->status >= 100 && r->status < 200 && r->status != 101))
		p->resp.left = 0;
	else if (chunked)
		p->resp.left = -1;
	else if (has_len && clen < INT64_MAX)
		p->resp.left = (int64_t)clen;
	if (r->status >= 100 && r->status < 200)   /* 1xx and upgrades: stream to the end */
		p->resp.left = -2;
	if (p->resp.left == 0)
		p->resp.done = 1;
	if (p->resp.left == -2)
		p->reuse_up = 0;
	p->keep_client = p->client_keep && p->resp.left != -2 && p->req.left != -2;
}

/* The head the client gets: hop-by-hop fields dropped, "Connection: close"
 * unless its connection is kept. Its length; >= cap when it does not fit. */
static size_t
rewrite_head(const struct tg_pipe *p, const struct tg_http_resp *r, char *head, size_t cap)
{
	size_t i, n;

	n = (size_t)snprintf(head, cap, "HTTP/1.1 %d %.*s\r\n", r->status, (int)r->reason_len,
	    r->reason);
	for (i = 0; i < r->num_headers && n < cap; i++) {
		const struct tg_http_header *h = &r->headers[i];
		if (HIS(*h, "Connection") || HIS(*h, "Keep-Alive") || HIS(*h, "Proxy-Connection"))
			continue;
		n += (size_t)snprintf(head + n, cap - n, "%.*s: %.*s\r\n", (int)h->name_len, h->name,
		    (int)h->value_len, h->value);
	}
	n += (size_t)snprintf(head + n, n < cap ? cap - n : 0, "%s\r\n", p->keep_client ? "" :
	    "Connection: close\r\n");
	return n;
}

#undef HIS

/* Reads the upstream's response head and rewrites it for the client in
 * place, the body bytes read with it counted against the framing. 1 done
 * or progress, 0 wait, -1 failed (answered). */
static int
response_head(struct tg_pipe *p)
{
	struct tg_http_header h[RESP_FIELDS];
	struct tg_http_resp r;
	size_t n, body, cap = RESP_HEAD_MAX + 64;
	ssize_t hl, keep;
	int progress = 0;
	char *head;

	if ((hl = read_response_head(p, &r, h, &progress)) == TG_HTTP_INCOMPLETE)
		return progress;
	if (hl < 0)
		return -1;
	if ((head = malloc(cap)) == NULL) {
		http_fail(p, 502, "out of memory");
		return -1;
	}
	response_framing(p, &r);
	n = rewrite_head(p, &r, head, cap);
	body = p->ba_len - (size_t)hl;
	if (n >= cap || n + body > p->cap) {
		free(head);
		http_fail(p, 502, "the upstream's answer head is too large");
		return -1;
	}
	if (p->resp.left >= 0 && (uint64_t)body > (uint64_t)p->resp.left) {
		body = (size_t)p->resp.left;   /* bytes past the answer: not forwarded */
		p->resp.extra = 1;
	}
	keep = p->resp.left == -2 || p->resp.done ? (ssize_t)body :
	    tg_pipe_frame_feed(&p->resp, p->ba + hl, body);
	if (keep < 0) {
		free(head);
		http_fail(p, 502, "the upstream's chunked answer is malformed");
		return -1;
	}
	if (p->resp.extra)
		p->reuse_up = 0;
	memmove(p->ba + n, p->ba + hl, (size_t)keep);
	memcpy(p->ba, head, n);
	p->ba_len = n + (size_t)keep;
	p->ba_off = 0;
	free(head);
	p->head_done = 1;
	p->status = r.status;
	return 1;
}

/* The client's TLS handshake (a tunnel that accepts TLS); when done, the
 * upstream is dialled. */
static void
handshake_a(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;
	const struct tg_trust_verdict *v;
	char words[WORDS_LEN], why[WHY_LEN];
	int r, w;

	ERR_clear_error();
	if ((r = SSL_do_handshake(p->a.ssl)) != 1) {
		if ((w = ssl_wait(p->a.ssl, r)) != 0) {
			if (arm(p, w, 0) < 0)
				tg_pipe_close(p, TG_LOG_ERROR, "cannot poll");
			return;
		}
		tg_ossl_words(words, sizeof(words));
		snprintf(why, sizeof(why), "TLS handshake %s: %s", tg_tls_noted(p->a.ssl)[0] ?
		    "refused" : "failed", tg_tls_noted(p->a.ssl)[0] ? tg_tls_noted(p->a.ssl) :
		    tg_tls_refusal(p->a.ssl)[0] ? tg_tls_refusal(p->a.ssl) : words[0] ? words :
		    "the client closed");
		tg_pipe_close(p, TG_LOG_WARN, why);
		return;
	}
	tg_upstream_count(t, p->a.ssl);
	/* the client certificate's verdict (mutual): record a new pin */
	v = tg_tls_verdict(p->a.ssl);
	if (v && v->warn)
		tg_log(t->srv, TG_LOG_WARN, "tunnel %zu: %s", t->index, v->reason);
	if (v && v->record && t->trust)
		(void)tg_record_pin(t->srv, t->trust, v, NULL);
	arm(p, 0, 0);
	tg_pipe_connect(p);
}

/* The setup is done: bytes may move, within the first-byte (proxy) or idle
 * timeout. */
static int
ready(struct tg_pipe *p)
{
	p->state = P_PUMP;
	uv_timer_start(&p->timer, tg_pipe_on_timer, p->t->http ? p->t->first_byte_ms :
	    p->t->idle_ms, 0);
	return 1;
}

/* A list offered to the upstream is a requirement: the client on the plain
 * side speaks one of those protocols (a gRPC client h2), and an upstream
 * that selects none of them would not understand it. (One that selects a
 * protocol not offered OpenSSL refuses itself.) */
static int
upstream_alpn(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;
	const unsigned char *sel = NULL;
	unsigned int n = 0;
	char ours[300], why[WHY_LEN];

	tg_upstream_count(t, p->b.ssl);
	SSL_get0_alpn_selected(p->b.ssl, &sel, &n);
	if (t->alpn.len == 0 || n != 0 || t->http)
		return 0;
	t->alpn_count[TG_ALPN_NONE]--;
	t->alpn_count[TG_ALPN_REFUSED]++;
	tg_alpn_text(t->alpn.wire, t->alpn.len, ours, sizeof(ours));
	snprintf(why, sizeof(why), "upstream %s selected no ALPN protocol; this tunnel offers %s "
	    "and needs one of them (tunnels.%zu.alpn)", t->connect, ours, t->index);
	setup_failed(p, TG_LOG_WARN, why);
	return -1;
}

/* The TLS handshake with the upstream, then its certificate judged. 1 when
 * the pipe may pump, 0 when it waits or ended. */
static int
handshake_b(struct tg_pipe *p)
{
	char words[WORDS_LEN], why[WHY_LEN];
	int r, w;

	ERR_clear_error();
	if ((r = SSL_do_handshake(p->b.ssl)) != 1) {
		if ((w = ssl_wait(p->b.ssl, r)) != 0) {
			if (arm(p, 0, w) < 0)
				tg_pipe_close(p, TG_LOG_ERROR, "cannot poll");
			return 0;
		}
		tg_ossl_words(words, sizeof(words));
		snprintf(why, sizeof(why), "TLS handshake with %s failed: %s", p->t->connect,
		    words[0] ? words : "the upstream closed");
		setup_failed(p, TG_LOG_WARN, why);
		return 0;
	}
	return upstream_alpn(p) < 0 || judge_upstream(p) < 0 ? 0 : ready(p);
}

/* proxy_protocol: the PROXY header goes first on the fresh connection,
 * before TLS out and before any byte of the client's. It is a few hundred
 * bytes on an empty socket buffer, so one send takes it whole; anything
 * less fails the connection rather than leave a cut header. */
static int
send_proxy_header(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;
	struct sockaddr_storage src, dst;
	socklen_t dl = sizeof(dst);
	unsigned char h[TG_PP_V2_MAX];
	char ident[320] = "";
	X509 *peer = p->a.ssl ? SSL_get0_peer_certificate(p->a.ssl) : NULL;
	size_t n;

	if (tg_pp_addr_parse(p->peer, &src) < 0 || getsockname(p->a.fd, (struct sockaddr *)&dst,
	    &dl) < 0) {
		setup_failed(p, TG_LOG_ERROR, "cannot tell the client's address for the PROXY header");
		return -1;
	}
	if (peer)
		tg_trust_client_identity(peer, ident, sizeof(ident));
	n = tg_pp_build(t->proxy_protocol, h, sizeof(h), &src, &dst, p->a.ssl, ident);
	if (n == 0 || send(p->b.fd, h, n, MSG_NOSIGNAL) != (ssize_t)n) {
		setup_failed(p, TG_LOG_WARN, "cannot send the PROXY header to the upstream");
		return -1;
	}
	return 0;
}

/* The upstream's connect finished (or failed); TLS out starts here. 1 when
 * the pipe may pump, 0 when it waits or ended. */
static int
connected_b(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;
	socklen_t el = sizeof(int);
	struct tg_err err;
	char why[WHY_LEN];
	int e = 0;

	if (getsockopt(p->b.fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e != 0) {
		snprintf(why, sizeof(why), "cannot connect to %s: %s", t->connect,
		    strerror(e ? e : errno));
		setup_failed(p, TG_LOG_WARN, why);
		return 0;
	}
	if (t->proxy_protocol && send_proxy_header(p) < 0)
		return 0;
	if (!t->tls_connect)
		return ready(p);
	if ((p->b.ssl = SSL_new(t->ctx)) == NULL || SSL_set_fd(p->b.ssl, p->b.fd) != 1) {
		tg_pipe_close(p, TG_LOG_ERROR, "cannot start TLS");
		return 0;
	}
	if (tg_tls_client_prepare(p->b.ssl, t->host, &err) < 0) {
		tg_pipe_close(p, TG_LOG_ERROR, err.msg);
		return 0;
	}
	SSL_set_connect_state(p->b.ssl);
	p->state = P_HANDSHAKE_B;
	return handshake_b(p);
}

/* Moves bytes both ways until nothing moves, then ends the pipe or the
 * exchange when both sides are done, or polls for what lets bytes move. */
static void
pump(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;
	int progress;

	do {
		int x = pump_dir(&p->a, &p->b, p->ab, p->cap, &p->ab_off, &p->ab_len, &p->bytes_ab,
		    t->http && p->req.left != -2 ? &p->req : NULL);
		int y = 0;
		if (x >= 0 && t->http && !p->head_done) {
			y = response_head(p);
			if (y < 0)
				return;   /* answered 502 and closed */
		}
		if (x >= 0 && (!t->http || p->head_done))
			y |= pump_dir(&p->b, &p->a, p->ba, p->cap, &p->ba_off, &p->ba_len, &p->bytes_ba,
			    t->http && p->resp.left != -2 ? &p->resp : NULL);
		if (x < 0 || y < 0) {
			tg_pipe_close(p, TG_LOG_DEBUG, "closed by an error on one side");
			return;
		}
		progress = x || y;
		/* before the answer starts, the first-byte timeout runs */
		if (progress && (!t->http || p->head_done))
			uv_timer_start(&p->timer, tg_pipe_on_timer, t->idle_ms, 0);
	} while (progress && !(p->a.eof && p->b.eof));
	if (p->a.eof && p->b.eof && p->ab_len == p->ab_off && p->ba_len == p->ba_off) {
		tg_pipe_close(p, TG_LOG_DEBUG, "both ends closed");
		return;
	}
	if (t->http && p->head_done && p->resp.done && p->ba_len == p->ba_off) {
		if (p->req.done && p->ab_len == p->ab_off)
			tg_pipe_finish(p);
		else   /* answered before the request was sent whole: nothing is kept */
			tg_pipe_close(p, TG_LOG_INFO, "answered");
		return;
	}
	if (t->http && p->head_done && p->b.eof && p->ba_len == p->ba_off) {
		/* the upstream answered and closed (Connection: close): done */
		tg_pipe_close(p, TG_LOG_DEBUG, "answered");
		return;
	}
	arm_pump(p);
}

void
tg_pipe_run(struct tg_pipe *p)
{
	switch (p->state) {
	case P_HANDSHAKE_A:
		handshake_a(p);
		return;
	case P_CONNECT_B:
		if (connected_b(p))
			pump(p);
		return;
	case P_HANDSHAKE_B:
		if (handshake_b(p))
			pump(p);
		return;
	case P_PUMP:
		pump(p);
		return;
	case P_CLOSED:
		return;
	}
}

/* A pipe for an accepted (or handed over) socket, counted and timed. */
struct tg_pipe *
tg_pipe_new(struct tg_tunnel *t, int fd, size_t cap)
{
	struct tg_server *s = t->srv;
	struct tg_pipe *p = calloc(1, sizeof(*p) + 2 * cap);
	uint64_t setup = t->setup_ms < t->idle_ms ? t->setup_ms : t->idle_ms;

	if (p == NULL)
		return NULL;
	p->magic = TG_PIPE_MAGIC;
	p->cap = cap;
	p->ab = p->mem;
	p->ba = p->mem + cap;
	t->accepted++;
	p->t = t;
	p->a.fd = fd;
	p->b.fd = -1;
	p->t_start = tg_now_ms();
	uv_timer_init(s->loop, &p->timer);
	p->timer.data = p;
	p->handles = 1;
	if (uv_poll_init(s->loop, &p->a.poll, fd) == 0) {
		/* without it, the first want() fails and the pipe closes */
		p->a.poll.data = p;
		p->a.has_poll = 1;
		p->handles++;
	}
	p->next = s->pipes;
	if (s->pipes)
		s->pipes->prev = p;
	s->pipes = p;
	t->nconns++;
	s->nconns++;
	uv_timer_start(&p->timer, tg_pipe_on_timer, setup, 0);
	return p;
}

/* Both messages ended cleanly: the upstream connection joins the pool when
 * it can be used again, the client's goes back to the HTTP side when it
 * asked to be kept; each as a fresh descriptor, so this pipe closes its own
 * as usual. */
void
tg_pipe_finish(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;
	int fd;

	if (p->upstream_kept && p->reuse_up && !p->b.eof && !p->b.shut && !p->resp.extra &&
	    (fd = fcntl(p->b.fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
		SSL *ssl = p->b.ssl;
		p->b.ssl = NULL;
		if (ssl && tg_tls_move_fd(ssl, fd) < 0) {
			SSL_free(ssl);
			close(fd);
		} else {
			p->upstream_kept(t, fd, ssl);
		}
	}
	if (p->client_back && p->keep_client && !p->a.eof && !p->a.shut && !p->req.extra &&
	    (fd = fcntl(p->a.fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
		SSL *ssl = p->a.ssl;
		p->a.ssl = NULL;
		if (ssl && tg_tls_move_fd(ssl, fd) < 0) {
			SSL_free(ssl);
			close(fd);
		} else {
			p->client_back(t->srv, fd, ssl, p->peer, p->ip);
		}
	}
	tg_pipe_close(p, TG_LOG_INFO, "answered");
}
