/*
 * TCP tunnels (see tunnel.h). A tunnelled connection is two sides, the
 * accepted one (a) and the upstream one (b), each a socket with an
 * optional SSL that OpenSSL reads and writes directly, and two bounded
 * buffers. The pump moves bytes until nothing moves, then polls each
 * socket for exactly what would let it move again: a full buffer means its
 * sender is not read (backpressure), and an SSL that wants the other
 * direction of I/O gets it.
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

#include "client.h"
#include "config_int.h"
#include "conn.h"
#include "error.h"
#include "http_parse.h"
#include "ossl_words.h"
#include "server.h"
#include "tls.h"
#include "trust.h"
#include "tunnel.h"
#include "util.h"

#define TUN_BUF       (32 * 1024)
#define TUN_SETUP_MS  10000          /* connect and handshakes must finish within */

struct tg_tunnel {
	struct tg_server *srv;
	size_t index;
	char listen[300], connect[300];
	int tls_connect, mutual;
	SSL_CTX *ctx;
	struct tg_trust *trust;      /* TLS in (mutual): clients; TLS out: the server */
	char host[256];              /* TLS out: the name verified and sent in SNI */
	int port;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint64_t idle_ms;
	size_t max_conns, nconns;
	int fd;
	uv_poll_t poll;
	uint64_t refused_logged_ms;
	uint64_t accepted, refused, failed, bytes_in, bytes_out;
	uint64_t setup_ms;           /* connect and handshakes within */
	/* proxy routes (http): the request goes to up_host + up_path */
	int http;
	char prefix[256], up_path[2048], up_host[300];
	uint64_t first_byte_ms;
	struct proxy_header *headers;
	size_t nheaders;
	struct idle_up *idle;        /* kept upstream connections, newest first */
	size_t nidle;
	/* TLS in: how the context is built again when the certificate changes */
	char ca[4096], ca_origin[320];
};

/* An upstream connection kept between proxied requests. */
struct idle_up {
	struct tg_tunnel *t;
	struct idle_up *next;
	int fd;
	SSL *ssl;
	uv_poll_t poll;
	uv_timer_t timer;
	int handles;
};

#define POOL_MAX      16         /* idle upstream connections kept per route */
#define POOL_IDLE_MS  30000      /* and for how long */

/* An extra request header of a proxy route: a value, or a file's content
 * read again when the file changes. */
struct proxy_header {
	char name[128];
	char value[4096];
	char file[4096];
	struct timespec mtime;
};

/* How much of an HTTP message is still to come on one side. */
struct frame {
	int64_t left;                /* bytes still to read; -1 chunked; -2 until end of stream */
	struct tg_chunked ch;
	int done;                    /* the message ended */
	int extra;                   /* bytes came after its end (not forwarded) */
};

struct side {
	int fd;
	SSL *ssl;
	uv_poll_t poll;
	int has_poll, events;
	int eof, shut;
	int read_wants_write, write_wants_read;
};

enum pstate { P_HANDSHAKE_A, P_CONNECT_B, P_HANDSHAKE_B, P_PUMP, P_CLOSED };

struct tg_pipe {
	struct tg_tunnel *t;
	struct tg_pipe *next, *prev;
	struct side a, b;
	enum pstate state;
	uv_timer_t timer;
	int handles;
	char peer[64];
	size_t ab_off, ab_len, ba_off, ba_len;
	uint64_t bytes_ab, bytes_ba, t_start;
	int head_done;               /* http: the response head was rewritten */
	struct frame req, resp;      /* http: what is left of the request and response */
	int client_keep;             /* http: the client wants its connection kept */
	int keep_client, reuse_up;   /* http: what happens when the exchange ends */
	char ip[48];                 /* http: the client's address (per-address limits) */
	int status;                  /* http: the upstream's status */
	char what[200];              /* http: "METHOD /path" of the client's request */
	size_t cap;                  /* size of each buffer */
	char *ab, *ba;               /* both in mem */
	char mem[];
};

static void pipe_run(struct tg_pipe *p);
static int pool_take(struct tg_pipe *p);
static void finish_exchange(struct tg_pipe *p);
static void http_fail(struct tg_pipe *p, int status, const char *why);
static void setup_failed(struct tg_pipe *p, int level, const char *why);
static int proxy_headers(struct tg_tunnel *t, const struct tg_config *cfg, size_t i,
    struct tg_err *err);

/* ---- one side's I/O: >0 bytes, 0 end, -1 again, -2 error ------------------- */

static ssize_t
side_read(struct side *x, char *buf, size_t len)
{
	ssize_t n;
	int r;

	x->read_wants_write = 0;
	if (x->ssl) {
		ERR_clear_error();
		r = SSL_read(x->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
		if (r > 0)
			return r;
		switch (SSL_get_error(x->ssl, r)) {
		case SSL_ERROR_WANT_READ:
			return -1;
		case SSL_ERROR_WANT_WRITE:
			x->read_wants_write = 1;
			return -1;
		case SSL_ERROR_ZERO_RETURN:
			return 0;
		default:
			return -2;
		}
	}
	n = read(x->fd, buf, len);
	if (n >= 0)
		return n;
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
}

static ssize_t
side_write(struct side *x, const char *buf, size_t len)
{
	ssize_t n;
	int r;

	x->write_wants_read = 0;
	if (x->ssl) {
		ERR_clear_error();
		r = SSL_write(x->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
		if (r > 0)
			return r;
		switch (SSL_get_error(x->ssl, r)) {
		case SSL_ERROR_WANT_WRITE:
			return -1;
		case SSL_ERROR_WANT_READ:
			x->write_wants_read = 1;
			return -1;
		default:
			return -2;
		}
	}
	n = send(x->fd, buf, len, MSG_NOSIGNAL);
	if (n >= 0)
		return n;
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? -1 : -2;
}

/* Moves bytes from one side to the other until nothing moves; passes an
 * end of stream on as a half-close once everything before it is written.
 * 1 progress, 0 none, -1 error. */
/* Counts n bytes just read against the message's framing; returns how many
 * of them belong to the message (the rest is extra), or -1 if malformed. */
static ssize_t
frame_feed(struct frame *f, const char *data, size_t n)
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
			n = side_write(to, buf + *off, *len - *off);
			if (n == -2)
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
		if (n == -2)
			return -1;
		if (n == 0) {
			from->eof = 1;
			progress = 1;
			break;
		}
		if (n < 0)
			break;
		if (fr && (n = frame_feed(fr, buf + *len, (size_t)n)) < 0)
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

	if (--p->handles == 0)
		free(p);
}

static void
pipe_close(struct tg_pipe *p, int level, const char *why)
{
	struct tg_tunnel *t = p->t;
	struct tg_server *s = t->srv;

	if (p->state == P_CLOSED)
		return;
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
	if (p->a.fd >= 0)
		close(p->a.fd);
	if (p->b.fd >= 0)
		close(p->b.fd);
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

static void
on_timer(uv_timer_t *h)
{
	struct tg_pipe *p = h->data;

	char why[200];

	if (p->t->http && p->state != P_PUMP) {
		snprintf(why, sizeof(why), "the upstream %s did not accept the connection within "
		    "connect_timeout", p->t->connect);
		http_fail(p, 502, why);
	} else if (p->t->http && !p->head_done) {
		snprintf(why, sizeof(why), "the upstream %s did not answer within first_byte_timeout",
		    p->t->connect);
		http_fail(p, p->bytes_ba ? 502 : 504, why);
	} else {
		pipe_close(p, TG_LOG_INFO, p->state == P_PUMP ? "idle for the idle_timeout; closed" :
		    "not set up in time; closed");
	}
}

static void
on_poll(uv_poll_t *h, int status, int events)
{
	struct tg_pipe *p = h->data;

	if (status < 0 && status != UV_EBADF) {
		pipe_close(p, TG_LOG_DEBUG, "socket error");
		return;
	}
	pipe_run(p);
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
		pipe_close(p, TG_LOG_ERROR, "cannot poll");
}

static int
ssl_wait(SSL *ssl, int r)
{
	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return UV_READABLE;
	case SSL_ERROR_WANT_WRITE:
		return UV_WRITABLE;
	default:
		return 0;
	}
}

struct record_job {
	uv_work_t w;                 /* first: the job is its work request */
	struct tg_trust *t;
	struct tg_trust_verdict v;
};

static void
record_work(uv_work_t *w)
{
	struct record_job *j = (struct record_job *)w;
	struct tg_err err;
	(void)tg_trust_record(j->t, &j->v, &err);
}

static void
record_done(uv_work_t *w, int status)
{
	free(w);
}

/* A new pin goes to the known file on the thread pool: the loop never
 * waits for the disk. */
static void
queue_record(struct tg_tunnel *t, const struct tg_trust_verdict *v)
{
	struct record_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return;
	j->t = t->trust;
	j->v = *v;
	if (uv_queue_work(t->srv->loop, &j->w, record_work, record_done) != 0)
		free(j);
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
		char why[1400];
		snprintf(why, sizeof(why), "upstream %s refused: %s", id, v.reason);
		setup_failed(p, TG_LOG_WARN, why);
		return -1;
	}
	if (v.warn)
		tg_log(t->srv, TG_LOG_WARN, "tunnel %zu: %s", t->index, v.reason);
	if (v.record)
		queue_record(t, &v);
	return 0;
}

static void
start_connect(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;
	int one = 1;

	p->b.fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->b.fd < 0) {
		pipe_close(p, TG_LOG_ERROR, strerror(errno));
		return;
	}
	setsockopt(p->b.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (uv_poll_init(t->srv->loop, &p->b.poll, p->b.fd) != 0) {
		pipe_close(p, TG_LOG_ERROR, "cannot poll the upstream socket");
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
		pipe_close(p, TG_LOG_ERROR, "cannot poll");
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
		(void)side_write(&p->a, resp, (size_t)n);   /* best effort: it is small */
	snprintf(resp, sizeof(resp), "%d: %s", status, why);
	pipe_close(p, TG_LOG_WARN, resp);
}

static void
setup_failed(struct tg_pipe *p, int level, const char *why)
{
	if (p->t->http && p->state != P_CLOSED)
		http_fail(p, 502, why);
	else
		pipe_close(p, level, why);
}

/* Reads the upstream's response head and rewrites it for the client:
 * hop-by-hop fields dropped, "Connection: close" added (each proxied
 * exchange has its own upstream connection). 1 done or progress, 0 wait,
 * -1 failed (answered). */
static int
response_head(struct tg_pipe *p)
{
	struct tg_http_header h[100];
	struct tg_http_resp r;
	char *head;
	size_t i, n = 0, cap = 16384 + 64;
	ssize_t hl = TG_HTTP_INCOMPLETE, got;
	int progress = 0;

	for (;;) {
		if (p->ba_len > 0) {
			r.headers = h;
			r.num_headers = 100;
			hl = tg_http_parse_response(p->ba, p->ba_len, &r);
			if (hl != TG_HTTP_INCOMPLETE)
				break;
		}
		if (p->ba_len >= 16384) {
			hl = TG_HTTP_BAD;
			break;
		}
		got = side_read(&p->b, p->ba + p->ba_len, p->cap - p->ba_len);
		if (got == -1)
			return progress;
		if (got <= 0) {
			http_fail(p, 502, got == 0 ? "the upstream closed without an answer" :
			    "the upstream connection failed");
			return -1;
		}
		p->ba_len += (size_t)got;
		progress = 1;
	}
	if (hl < 0) {
		http_fail(p, 502, "the upstream's answer is not HTTP");
		return -1;
	}
	if ((head = malloc(cap)) == NULL) {
		http_fail(p, 502, "out of memory");
		return -1;
	}
	/* how the answer's body is framed decides what can be kept afterwards */
	p->resp.left = -2;
	p->reuse_up = r.minor_version >= 1;
	{
		int chunked = 0, has_len = 0;
		uint64_t clen = 0;
		for (i = 0; i < r.num_headers; i++) {
#define HIS(x) (h[i].name_len == sizeof(x) - 1 && !strncasecmp(h[i].name, x, h[i].name_len))
			if (HIS("Transfer-Encoding"))
				chunked = tg_http_has_token(h[i].value, h[i].value_len, "chunked");
			else if (HIS("Content-Length"))
				has_len = tg_http_content_length(h[i].value, h[i].value_len, &clen) == 0;
			else if (HIS("Connection") &&
			    tg_http_has_token(h[i].value, h[i].value_len, "close"))
				p->reuse_up = 0;
#undef HIS
		}
		if (!strncmp(p->what, "HEAD ", 5) || r.status == 204 || r.status == 304 ||
		    (r.status >= 100 && r.status < 200 && r.status != 101))
			p->resp.left = 0;
		else if (chunked)
			p->resp.left = -1;
		else if (has_len && clen < INT64_MAX)
			p->resp.left = (int64_t)clen;
		if (r.status >= 100 && r.status < 200)   /* 1xx and upgrades: stream to the end */
			p->resp.left = -2;
		if (p->resp.left == 0)
			p->resp.done = 1;
	}
	if (p->resp.left == -2)
		p->reuse_up = 0;
	p->keep_client = p->client_keep && p->resp.left != -2 && p->req.left != -2;
	n = (size_t)snprintf(head, cap, "HTTP/1.1 %d %.*s\r\n", r.status, (int)r.reason_len, r.reason);
	for (i = 0; i < r.num_headers && n < cap; i++) {
#define HIS(x) (h[i].name_len == sizeof(x) - 1 && !strncasecmp(h[i].name, x, h[i].name_len))
		if (HIS("Connection") || HIS("Keep-Alive") || HIS("Proxy-Connection"))
			continue;
#undef HIS
		n += (size_t)snprintf(head + n, cap - n, "%.*s: %.*s\r\n", (int)h[i].name_len,
		    h[i].name, (int)h[i].value_len, h[i].value);
	}
	n += (size_t)snprintf(head + n, n < cap ? cap - n : 0, "%s\r\n", p->keep_client ? "" :
	    "Connection: close\r\n");
	if (n >= cap || n + (p->ba_len - (size_t)hl) > p->cap) {
		free(head);
		http_fail(p, 502, "the upstream's answer head is too large");
		return -1;
	}
	{
		/* body bytes read with the head count against the framing */
		size_t body = p->ba_len - (size_t)hl;
		ssize_t keep;
		if (p->resp.left >= 0 && (uint64_t)body > (uint64_t)p->resp.left) {
			body = (size_t)p->resp.left;
			p->resp.extra = 1;
			p->reuse_up = 0;
		}
		keep = p->resp.left == -2 || p->resp.done ? (ssize_t)body :
		    frame_feed(&p->resp, p->ba + hl, body);
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
	}
	p->ba_off = 0;
	free(head);
	p->head_done = 1;
	p->status = r.status;
	return 1;
}

static void
pipe_run(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;
	char words[600], why[900];
	int r, e = 0, progress;
	socklen_t el = sizeof(e);

	switch (p->state) {
	case P_HANDSHAKE_A:
		ERR_clear_error();
		r = SSL_do_handshake(p->a.ssl);
		if (r != 1) {
			int w = ssl_wait(p->a.ssl, r);
			if (w) {
				if (arm(p, w, 0) < 0)
					pipe_close(p, TG_LOG_ERROR, "cannot poll");
				return;
			}
			tg_ossl_words(words, sizeof(words));
			snprintf(why, sizeof(why), "TLS handshake failed: %s", tg_tls_refusal(p->a.ssl)[0] ?
			    tg_tls_refusal(p->a.ssl) : words[0] ? words : "the client closed");
			pipe_close(p, TG_LOG_WARN, why);
			return;
		}
		{
			/* the client certificate's verdict (mutual): record a new pin */
			const struct tg_trust_verdict *v = tg_tls_verdict(p->a.ssl);
			if (v && v->warn)
				tg_log(t->srv, TG_LOG_WARN, "tunnel %zu: %s", t->index, v->reason);
			if (v && v->record && t->trust)
				queue_record(t, v);
		}
		arm(p, 0, 0);
		start_connect(p);
		return;
	case P_CONNECT_B:
		if (getsockopt(p->b.fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e != 0) {
			snprintf(why, sizeof(why), "cannot connect to %s: %s", t->connect,
			    strerror(e ? e : errno));
			setup_failed(p, TG_LOG_WARN, why);
			return;
		}
		if (!t->tls_connect) {
			p->state = P_PUMP;
			uv_timer_start(&p->timer, on_timer, t->http ? t->first_byte_ms : t->idle_ms, 0);
			break;
		}
		if ((p->b.ssl = SSL_new(t->ctx)) == NULL || SSL_set_fd(p->b.ssl, p->b.fd) != 1) {
			pipe_close(p, TG_LOG_ERROR, "cannot start TLS");
			return;
		}
		{
			struct tg_err err;
			if (tg_tls_client_prepare(p->b.ssl, t->host, &err) < 0) {
				pipe_close(p, TG_LOG_ERROR, err.msg);
				return;
			}
		}
		SSL_set_connect_state(p->b.ssl);
		p->state = P_HANDSHAKE_B;
		/* fall through */
	case P_HANDSHAKE_B:
		ERR_clear_error();
		r = SSL_do_handshake(p->b.ssl);
		if (r != 1) {
			int w = ssl_wait(p->b.ssl, r);
			if (w) {
				if (arm(p, 0, w) < 0)
					pipe_close(p, TG_LOG_ERROR, "cannot poll");
				return;
			}
			tg_ossl_words(words, sizeof(words));
			snprintf(why, sizeof(why), "TLS handshake with %s failed: %s", t->connect,
			    words[0] ? words : "the upstream closed");
			setup_failed(p, TG_LOG_WARN, why);
			return;
		}
		if (judge_upstream(p) < 0)
			return;
		p->state = P_PUMP;
		uv_timer_start(&p->timer, on_timer, t->http ? t->first_byte_ms : t->idle_ms, 0);
		break;
	case P_PUMP:
		break;
	case P_CLOSED:
		return;
	}
	/* pumping */
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
			pipe_close(p, TG_LOG_DEBUG, "closed by an error on one side");
			return;
		}
		progress = x || y;
		/* before the answer starts, the first-byte timeout runs */
		if (progress && (!t->http || p->head_done))
			uv_timer_start(&p->timer, on_timer, t->idle_ms, 0);
	} while (progress && !(p->a.eof && p->b.eof));
	if (p->a.eof && p->b.eof && p->ab_len == p->ab_off && p->ba_len == p->ba_off) {
		pipe_close(p, TG_LOG_DEBUG, "both ends closed");
		return;
	}
	if (t->http && p->head_done && p->resp.done && p->ba_len == p->ba_off) {
		if (p->req.done && p->ab_len == p->ab_off)
			finish_exchange(p);
		else   /* answered before the request was sent whole: nothing is kept */
			pipe_close(p, TG_LOG_INFO, "answered");
		return;
	}
	if (t->http && p->head_done && p->b.eof && p->ba_len == p->ba_off) {
		/* the upstream answered and closed (Connection: close): done */
		pipe_close(p, TG_LOG_DEBUG, "answered");
		return;
	}
	arm_pump(p);
}

/* A pipe for an accepted (or handed over) socket, counted and timed. */
static struct tg_pipe *
new_pipe(struct tg_tunnel *t, int fd, size_t cap)
{
	struct tg_server *s = t->srv;
	struct tg_pipe *p = calloc(1, sizeof(*p) + 2 * cap);
	uint64_t setup = t->setup_ms < t->idle_ms ? t->setup_ms : t->idle_ms;

	if (p == NULL)
		return NULL;
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
	uv_poll_init(s->loop, &p->a.poll, fd);
	p->a.poll.data = p;
	p->a.has_poll = 1;
	p->handles++;
	p->next = s->pipes;
	if (s->pipes)
		s->pipes->prev = p;
	s->pipes = p;
	t->nconns++;
	s->nconns++;
	uv_timer_start(&p->timer, on_timer, setup, 0);
	return p;
}

static void
limit_note(struct tg_tunnel *t, const char *what)
{
	uint64_t now = tg_now_ms();

	if (now - t->refused_logged_ms < 10000)
		return;
	t->refused_logged_ms = now;
	tg_log(t->srv, TG_LOG_WARN, "tunnel %zu: %s; refusing new connections", t->index, what);
}

static void
on_accept(uv_poll_t *h, int status, int events)
{
	struct tg_tunnel *t = h->data;
	struct tg_server *s = t->srv;
	struct sockaddr_storage ss;
	socklen_t sl;
	int i, fd, one = 1;

	if (status < 0)
		return;
	for (i = 0; i < 64; i++) {
		struct tg_pipe *p;
		char host[64], port[16];

		sl = sizeof(ss);
		if ((fd = accept4(t->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0)
			return;
		if (t->nconns >= t->max_conns || s->nconns >= s->max_connections || s->stopping) {
			t->refused++;
			limit_note(t, t->nconns >= t->max_conns ? "its max_connections is reached" :
			    "limits.max_connections is reached");
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		host[0] = '\0';
		if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
		    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
			snprintf(host + strlen(host), sizeof(host) - strlen(host), "|%s", port);
		if ((p = new_pipe(t, fd, TUN_BUF)) == NULL) {
			close(fd);
			continue;
		}
		{
			char *bar = strchr(host, '|');
			if (bar) {
				*bar = '\0';
				snprintf(p->peer, sizeof(p->peer), ss.ss_family == AF_INET6 ? "[%s]:%s" :
				    "%s:%s", host, bar + 1);
			}
		}
		if (!t->tls_connect) {
			if ((p->a.ssl = SSL_new(t->ctx)) == NULL || SSL_set_fd(p->a.ssl, fd) != 1) {
				pipe_close(p, TG_LOG_ERROR, "cannot start TLS");
				continue;
			}
			SSL_set_accept_state(p->a.ssl);
			p->state = P_HANDSHAKE_A;
			pipe_run(p);
		} else {
			start_connect(p);
		}
	}
}

/* ---- set-up -------------------------------------------------------------------- */

static int
tls_in_ctx(struct tg_tunnel *t, struct tg_err *err)
{
	struct tg_server *s = t->srv;
	struct tg_server_tls st;
	SSL_CTX *ctx;

	memset(&st, 0, sizeof(st));
	st.cert = s->tls.cert;
	st.key = s->tls.key;
	st.cert_origin = s->tls.cert_origin;
	st.key_origin = s->tls.key_origin;
	st.min_version = s->tls.min_version ? s->tls.min_version : TLS1_2_VERSION;
	st.mutual = t->mutual;
	st.clients_ca = t->ca;
	st.clients_ca_origin = t->ca_origin;
	st.clients = t->trust;
	if ((ctx = tg_tls_server_ctx(&st, err)) == NULL)
		return -1;
	SSL_CTX_free(t->ctx);
	t->ctx = ctx;
	return 0;
}

static void
known_path(const struct tg_config *cfg, const char *list, size_t i, const char *fallback_key,
    char *buf, size_t len)
{
	const char *k = tg_cfg_entry_str(cfg, list, i, "known");
	char sd[4096];

	if (!k[0]) {
		tg_cfg_path(cfg, fallback_key, buf, len);
		return;
	}
	tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, "state_dir"));
	tg_path_join(buf, len, sd, k);
}

static int
open_one(struct tg_server *s, const struct tg_config *cfg, const char *list, size_t i,
    struct tg_tunnel *t, struct tg_err *err)
{
	const char *trust = tg_cfg_entry_str(cfg, list, i, "trust");
	int proxy = !strcmp(list, "proxy");
	struct addrinfo hints, *res = NULL;
	enum tg_trust_mode mode = TG_TRUST_CA;
	char known[4096], ps[16], sd[4096];
	int rc;

	t->srv = s;
	t->index = i;
	t->fd = -1;
	t->idle_ms = (uint64_t)tg_cfg_entry_num(cfg, list, i, "idle_timeout");
	if (proxy) {
		struct tg_url u;
		const char *up = tg_cfg_entry_str(cfg, list, i, "upstream");
		if (tg_url_parse(up, &u, err) < 0)
			return tg_err_set(err, TG_E_CONFIG_VALUE, "proxy.%zu.upstream (%s): %s", i,
			    tg_cfg_entry_origin(cfg, list, i, "upstream"), err->msg);
		t->http = 1;
		t->tls_connect = u.tls;
		snprintf(t->host, sizeof(t->host), "%s", u.host);
		t->port = u.port;
		snprintf(t->connect, sizeof(t->connect), strchr(u.host, ':') ? "[%s]:%d" : "%s:%d",
		    u.host, u.port);
		snprintf(t->listen, sizeof(t->listen), "%s", tg_cfg_entry_str(cfg, list, i, "prefix"));
		snprintf(t->prefix, sizeof(t->prefix), "%s", t->listen);
		snprintf(t->up_path, sizeof(t->up_path), "%s", u.path);
		/* the Host header: the port only when it is not the scheme's */
		if ((u.tls && u.port == 443) || (!u.tls && u.port == 80))
			snprintf(t->up_host, sizeof(t->up_host), strchr(u.host, ':') ? "[%s]" : "%s", u.host);
		else
			snprintf(t->up_host, sizeof(t->up_host), "%s", t->connect);
		t->setup_ms = (uint64_t)tg_cfg_entry_num(cfg, list, i, "connect_timeout");
		t->first_byte_ms = (uint64_t)tg_cfg_entry_num(cfg, list, i, "first_byte_timeout");
		t->max_conns = SIZE_MAX;
		if (proxy_headers(t, cfg, i, err) < 0)
			return -1;
	} else {
		snprintf(t->listen, sizeof(t->listen), "%s", tg_cfg_entry_str(cfg, list, i, "listen"));
		snprintf(t->connect, sizeof(t->connect), "%s", tg_cfg_entry_str(cfg, list, i, "connect"));
		t->tls_connect = (int)tg_cfg_entry_num(cfg, list, i, "tls_connect");
		t->mutual = !strcmp(tg_cfg_entry_str(cfg, list, i, "mode"), "mutual");
		t->max_conns = (size_t)tg_cfg_entry_num(cfg, list, i, "max_connections");
		t->setup_ms = TUN_SETUP_MS;
		if (tg_parse_hostport(t->connect, t->host, sizeof(t->host), &t->port) < 0 || !t->host[0])
			return tg_err_set(err, TG_E_CONFIG_VALUE, "tunnels.%zu.connect (%s): '%s' needs a "
			    "host", i, tg_cfg_entry_origin(cfg, list, i, "connect"), t->connect);
	}
	/* resolved once, at start: the loop never waits for DNS */
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof(ps), "%d", t->port);
	if ((rc = getaddrinfo(t->host, ps, &hints, &res)) != 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s.%zu.%s (%s): cannot resolve "
		    "%s: %s", list, i, proxy ? "upstream" : "connect",
		    tg_cfg_entry_origin(cfg, list, i, proxy ? "upstream" : "connect"), t->host,
		    gai_strerror(rc));
	memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
	t->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	if (t->tls_connect) {
		struct tg_client_opts o;
		char ca[4096] = "", local_ca[4096], cert[4096] = "", key[4096] = "";
		const char *sn = tg_cfg_entry_str(cfg, list, i, "server_name");

		if (!trust[0])
			trust = tg_cfg_str(cfg, "client.trust");
		tg_trust_mode_parse(trust, &mode);
		known_path(cfg, list, i, "client.known", known, sizeof(known));
		memset(&o, 0, sizeof(o));
		o.trust = trust;
		o.known = known;
		if (tg_cfg_entry_str(cfg, list, i, "ca")[0])
			snprintf(ca, sizeof(ca), "%s", tg_cfg_entry_str(cfg, list, i, "ca"));
		else if (tg_cfg_str(cfg, "client.ca")[0])
			tg_cfg_path(cfg, "client.ca", ca, sizeof(ca));
		o.ca = ca[0] ? ca : NULL;
		tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, "state_dir"));
		snprintf(local_ca, sizeof(local_ca), "%s/ca/ca.crt", sd);
		o.local_ca = local_ca;
		if (!sn[0])
			sn = tg_cfg_str(cfg, "client.server_name");
		if (sn[0])
			snprintf(t->host, sizeof(t->host), "%s", sn);
		if (tg_cfg_entry_str(cfg, list, i, "cert")[0]) {
			snprintf(cert, sizeof(cert), "%s", tg_cfg_entry_str(cfg, list, i, "cert"));
			snprintf(key, sizeof(key), "%s", tg_cfg_entry_str(cfg, list, i, "key"));
		} else if (tg_cfg_str(cfg, "client.cert")[0]) {
			tg_cfg_path(cfg, "client.cert", cert, sizeof(cert));
			tg_cfg_path(cfg, "client.key", key, sizeof(key));
		} else {
			/* the node's own client certificate (made in mutual mode), as
			 * tlsgate get/put use it */
			struct stat sb;
			snprintf(cert, sizeof(cert), "%s/certs/client.crt", sd);
			snprintf(key, sizeof(key), "%s/certs/client.key", sd);
			if (stat(cert, &sb) != 0 || stat(key, &sb) != 0)
				cert[0] = key[0] = '\0';
		}
		o.cert = cert;
		o.key = key;
		if ((t->ctx = tg_tls_client_ctx(&o, err)) == NULL)
			goto prefix;
		SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
		if ((t->trust = tg_trust_new(mode, known, "known-servers", NULL, 0, err)) == NULL)
			goto prefix;
	} else if (!proxy) {
		if (!trust[0])
			trust = tg_cfg_str(cfg, "tls.clients.trust");
		tg_trust_mode_parse(trust, &mode);
		known_path(cfg, list, i, "tls.clients.known", known, sizeof(known));
		if (t->mutual && (t->trust = tg_trust_new(mode, known, "known-clients", NULL, 0,
		    err)) == NULL)
			goto prefix;
		if (tg_cfg_entry_str(cfg, list, i, "ca")[0]) {
			snprintf(t->ca, sizeof(t->ca), "%s", tg_cfg_entry_str(cfg, list, i, "ca"));
			snprintf(t->ca_origin, sizeof(t->ca_origin), "tunnels.%zu.ca, %s", i,
			    tg_cfg_entry_origin(cfg, list, i, "ca"));
		} else if (tg_cfg_str(cfg, "tls.clients.ca")[0]) {
			tg_cfg_path(cfg, "tls.clients.ca", t->ca, sizeof(t->ca));
			snprintf(t->ca_origin, sizeof(t->ca_origin), "%s",
			    tg_config_origin(cfg, "tls.clients.ca"));
		} else if (mode == TG_TRUST_CA || mode == TG_TRUST_CA_OR_TOFU) {
			tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, "state_dir"));
			snprintf(t->ca, sizeof(t->ca), "%s/ca/ca.crt", sd);
			snprintf(t->ca_origin, sizeof(t->ca_origin), "default: the local CA");
		}
		if (tls_in_ctx(t, err) < 0)
			goto prefix;
		SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	}
	if (!proxy && (t->fd = tg_listen_open(t->listen, err)) < 0)
		goto prefix;
	return 0;
prefix:
	{
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		tg_err_set(err, err->code, "%s.%zu (%s): %s", list, i,
		    tg_cfg_entry_origin(cfg, list, i, proxy ? "prefix" : "listen"), m);
	}
	return -1;
}

int
tg_tunnels_open(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err)
{
	size_t i, n = tg_cfg_entries(cfg, "tunnels");

	if (n == 0)
		return 0;
	if ((s->tunnels = calloc(n, sizeof(*s->tunnels))) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	s->ntunnels = n;
	for (i = 0; i < n; i++)
		s->tunnels[i].fd = -1;
	for (i = 0; i < n; i++)
		if (open_one(s, cfg, "tunnels", i, &s->tunnels[i], err) < 0)
			return -1;
	return 0;
}

void
tg_tunnels_start(struct tg_server *s)
{
	size_t i;

	for (i = 0; i < s->ntunnels; i++) {
		struct tg_tunnel *t = &s->tunnels[i];
		uv_poll_init(s->loop, &t->poll, t->fd);
		t->poll.data = t;
		uv_poll_start(&t->poll, UV_READABLE, on_accept);
		tg_log(s, TG_LOG_INFO, "tunnel %zu: %s %s -> %s %s", i, t->tls_connect ? "plain" : t->mutual ?
		    "TLS (client certificates required)" : "TLS", t->listen, t->tls_connect ? "TLS" : "plain",
		    t->connect);
	}
}

void
tg_tunnels_stop_accepting(struct tg_server *s)
{
	size_t i;

	for (i = 0; i < s->ntunnels; i++)
		if (!uv_is_closing((uv_handle_t *)&s->tunnels[i].poll))
			uv_close((uv_handle_t *)&s->tunnels[i].poll, NULL);
}

void
tg_tunnels_close_all(struct tg_server *s)
{
	while (s->pipes)
		pipe_close(s->pipes, TG_LOG_INFO, "closed by the stop");
}

void
tg_tunnels_cert_changed(struct tg_server *s)
{
	size_t i;
	struct tg_err err;

	for (i = 0; i < s->ntunnels; i++) {
		struct tg_tunnel *t = &s->tunnels[i];
		if (!t->tls_connect && tls_in_ctx(t, &err) < 0)
			tg_log(s, TG_LOG_ERROR, "tunnel %zu keeps its old certificate: %s", i, err.msg);
	}
}

void
tg_tunnels_free(struct tg_server *s)
{
	size_t i;

	for (i = 0; i < s->ntunnels; i++) {
		struct tg_tunnel *t = &s->tunnels[i];
		if (t->fd >= 0)
			close(t->fd);
		SSL_CTX_free(t->ctx);
		tg_trust_free(t->trust);
	}
	free(s->tunnels);
	s->tunnels = NULL;
	s->ntunnels = 0;
}

int
tg_tunnel_stats(const struct tg_server *s, size_t i, struct tg_tunnel_stats *st)
{
	const struct tg_tunnel *t;

	if (i >= s->ntunnels)
		return -1;
	t = &s->tunnels[i];
	st->listen = t->listen;
	st->connect = t->connect;
	st->tls_connect = t->tls_connect;
	st->open = t->nconns;
	st->accepted = t->accepted;
	st->refused = t->refused;
	st->failed = t->failed;
	st->bytes_in = t->bytes_in;
	st->bytes_out = t->bytes_out;
	return 0;
}

/* ---- the idle pool of upstream connections ----------------------------------- */

static void
idle_closed(uv_handle_t *h)
{
	struct idle_up *u = h->data;

	if (--u->handles > 0)
		return;
	SSL_free(u->ssl);
	if (u->fd >= 0)
		close(u->fd);
	free(u);
}

static void
idle_drop(struct idle_up *u)
{
	struct idle_up **pp;

	for (pp = &u->t->idle; *pp; pp = &(*pp)->next)
		if (*pp == u) {
			*pp = u->next;
			u->t->nidle--;
			break;
		}
	uv_close((uv_handle_t *)&u->poll, idle_closed);
	uv_close((uv_handle_t *)&u->timer, idle_closed);
}

/* Readable while idle: the upstream closed it (or talks out of turn). */
static void
idle_event(uv_poll_t *h, int status, int events)
{
	idle_drop(h->data);
}

static void
idle_timeout(uv_timer_t *h)
{
	idle_drop(h->data);
}

static void
pool_put(struct tg_tunnel *t, int fd, SSL *ssl)
{
	struct idle_up *u;

	if (t->nidle >= POOL_MAX || t->srv->stopping || (u = calloc(1, sizeof(*u))) == NULL) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	u->t = t;
	u->fd = fd;
	u->ssl = ssl;
	uv_poll_init(t->srv->loop, &u->poll, fd);
	uv_timer_init(t->srv->loop, &u->timer);
	u->poll.data = u->timer.data = u;
	u->handles = 2;
	uv_poll_start(&u->poll, UV_READABLE, idle_event);
	uv_timer_start(&u->timer, idle_timeout, POOL_IDLE_MS, 0);
	u->next = t->idle;
	t->idle = u;
	t->nidle++;
}

/* Gives the pipe a kept upstream connection, if one is still alive:
 * 0 when it did (the exchange is under way), -1 to connect anew. */
static int
pool_take(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;

	while (t->idle) {
		struct idle_up *u = t->idle;
		char b;
		ssize_t r = recv(u->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		int fd;

		if (r == 0 || r > 0 || errno != EAGAIN ||
		    (fd = fcntl(u->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			idle_drop(u);   /* closed, or bytes nobody asked for */
			continue;
		}
		p->b.ssl = u->ssl;
		u->ssl = NULL;
		idle_drop(u);
		p->b.fd = fd;
		if ((p->b.ssl && SSL_set_fd(p->b.ssl, fd) != 1) ||
		    uv_poll_init(t->srv->loop, &p->b.poll, fd) != 0) {
			SSL_free(p->b.ssl);
			p->b.ssl = NULL;
			close(fd);
			p->b.fd = -1;
			return -1;
		}
		p->b.poll.data = p;
		p->b.has_poll = 1;
		p->handles++;
		p->state = P_PUMP;
		uv_timer_start(&p->timer, on_timer, t->first_byte_ms, 0);
		pipe_run(p);
		return 0;
	}
	return -1;
}

void
tg_proxy_pool_close(struct tg_server *s)
{
	size_t i;

	for (i = 0; i < s->nroutes; i++)
		while (s->routes[i].idle)
			idle_drop(s->routes[i].idle);
}

/* Both messages ended cleanly: the upstream connection joins the pool when
 * it can be used again, the client's goes back to the HTTP side when it
 * asked to be kept; each as a fresh descriptor, so this pipe closes its own
 * as usual. */
static void
finish_exchange(struct tg_pipe *p)
{
	struct tg_tunnel *t = p->t;
	int fd;

	if (p->reuse_up && !p->b.eof && !p->b.shut && !p->resp.extra &&
	    (fd = fcntl(p->b.fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
		SSL *ssl = p->b.ssl;
		p->b.ssl = NULL;
		if (ssl && SSL_set_fd(ssl, fd) != 1) {
			SSL_free(ssl);
			close(fd);
		} else {
			pool_put(t, fd, ssl);
		}
	}
	if (p->keep_client && !p->a.eof && !p->a.shut && !p->req.extra &&
	    (fd = fcntl(p->a.fd, F_DUPFD_CLOEXEC, 0)) >= 0) {
		SSL *ssl = p->a.ssl;
		p->a.ssl = NULL;
		if (ssl && SSL_set_fd(ssl, fd) != 1) {
			SSL_free(ssl);
			close(fd);
		} else {
			tg_conn_adopt(t->srv, fd, ssl, p->peer, p->ip);
		}
	}
	pipe_close(p, TG_LOG_INFO, "answered");
}

/* ---- proxy routes: requests handed over by the HTTP side --------------------- */

static int
proxy_headers(struct tg_tunnel *t, const struct tg_config *cfg, size_t i, struct tg_err *err)
{
	char pre[64];
	const char *k;
	size_t j, pl;

	pl = (size_t)snprintf(pre, sizeof(pre), "proxy.%zu.headers.", i);
	for (j = 0; (k = tg_config_entry_key(cfg, j)) != NULL; j++) {
		struct proxy_header *h, *n;
		const char *v;
		if (strncmp(k, pre, pl) != 0)
			continue;
		if ((n = realloc(t->headers, (t->nheaders + 1) * sizeof(*n))) == NULL)
			return tg_err_set(err, TG_E_INTERNAL, "out of memory");
		t->headers = n;
		h = &n[t->nheaders++];
		memset(h, 0, sizeof(*h));
		snprintf(h->name, sizeof(h->name), "%s", k + pl);
		v = tg_config_get(cfg, k);
		if (strspn(h->name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") !=
		    strlen(h->name))
			return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): '%s' is not a header name", k,
			    tg_config_origin(cfg, k), h->name);
		if (v[0] == '@') {
			/* relative to the config file's folder, like other paths */
			const char *f = tg_cfg_file(cfg);
			char dir[4096] = "";
			if (f && v[1] != '/')
				tg_path_dir(dir, sizeof(dir), f);
			tg_path_join(h->file, sizeof(h->file), dir[0] ? dir : NULL, v + 1);
		} else if (strpbrk(v, "\r\n")) {
			return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): a header value cannot hold a "
			    "line break", k, tg_config_origin(cfg, k));
		} else {
			snprintf(h->value, sizeof(h->value), "%s", v);
		}
	}
	return 0;
}

/* The value of a header read from a file, read again when the file
 * changes; "" when it cannot be read (logged). */
static const char *
header_value(struct tg_tunnel *t, struct proxy_header *h)
{
	struct stat sb;
	unsigned char *data = NULL;
	size_t len = 0;
	struct tg_err err;

	if (!h->file[0])
		return h->value;
	if (stat(h->file, &sb) == 0 && sb.st_mtim.tv_sec == h->mtime.tv_sec &&
	    sb.st_mtim.tv_nsec == h->mtime.tv_nsec && h->value[0])
		return h->value;
	if (tg_read_file(h->file, &data, &len, sizeof(h->value) - 1, &err) < 0) {
		tg_log(t->srv, TG_LOG_ERROR, "proxy %s: header %s: %s; sent without it", t->prefix,
		    h->name, err.msg);
		h->value[0] = '\0';
		return h->value;
	}
	while (len && (data[len - 1] == '\n' || data[len - 1] == '\r' || data[len - 1] == ' '))
		len--;
	if (memchr(data, '\n', len) || memchr(data, '\r', len)) {
		tg_log(t->srv, TG_LOG_ERROR, "proxy %s: header %s: %s holds a line break; sent without "
		    "it", t->prefix, h->name, h->file);
		len = 0;
	}
	memcpy(h->value, data, len);
	h->value[len] = '\0';
	tg_free_secret(data, len);
	h->mtime = sb.st_mtim;
	return h->value;
}

int
tg_proxy_open(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err)
{
	size_t i, n = tg_cfg_entries(cfg, "proxy");

	if (n == 0)
		return 0;
	if ((s->routes = calloc(n, sizeof(*s->routes))) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	s->nroutes = n;
	for (i = 0; i < n; i++)
		s->routes[i].fd = -1;
	for (i = 0; i < n; i++)
		if (open_one(s, cfg, "proxy", i, &s->routes[i], err) < 0)
			return -1;
	return 0;
}

int
tg_proxy_match(const struct tg_server *s, const char *target)
{
	size_t i, best_len = 0;
	int best = -1;

	for (i = 0; i < s->nroutes; i++) {
		size_t l = strlen(s->routes[i].prefix);
		if (l > best_len && !strncmp(target, s->routes[i].prefix, l)) {
			best = (int)i;
			best_len = l;
		}
	}
	return best;
}

static int
hdr_is(const struct tg_http_header *h, const char *name)
{
	return h->name_len == strlen(name) && !strncasecmp(h->name, name, h->name_len);
}

char *
tg_proxy_head(struct tg_server *s, int route, const char *method, const char *target,
    const struct tg_http_header *h, size_t nh, const char *client_ip, int tls, int *expect,
    size_t *len)
{
	struct tg_tunnel *t = &s->routes[route];
	size_t cap = 32768, n = 0, i, j, pl = strlen(t->prefix);
	const char *rest = target + pl, *host = "", *xff = NULL;
	size_t host_len = 0, xff_len = 0;
	char *out = malloc(cap);

	*expect = 0;
	if (out == NULL)
		return NULL;
	/* the upstream path: its own path, then what followed the prefix */
	n += (size_t)snprintf(out + n, cap - n, "%s %s%s%s HTTP/1.1\r\nHost: %s\r\n", method,
	    t->up_path, t->up_path[strlen(t->up_path) - 1] == '/' || !rest[0] || rest[0] == '/' ||
	    rest[0] == '?' ? "" : "/", t->up_path[strlen(t->up_path) - 1] == '/' && rest[0] == '/' ?
	    rest + 1 : rest, t->up_host);
	for (i = 0; i < nh && n < cap; i++) {
		int skip = 0;
		if (hdr_is(&h[i], "Host")) {
			host = h[i].value, host_len = h[i].value_len;
			continue;
		}
		if (hdr_is(&h[i], "X-Forwarded-For")) {
			xff = h[i].value, xff_len = h[i].value_len;
			continue;
		}
		if (hdr_is(&h[i], "Expect")) {
			*expect = 1;   /* answered by us: the upstream gets the body at once */
			continue;
		}
		if (hdr_is(&h[i], "Connection") || hdr_is(&h[i], "Keep-Alive") ||
		    hdr_is(&h[i], "Proxy-Connection") || hdr_is(&h[i], "TE") ||
		    hdr_is(&h[i], "Upgrade") || hdr_is(&h[i], "X-Forwarded-Proto") ||
		    hdr_is(&h[i], "X-Forwarded-Host"))
			continue;
		for (j = 0; j < t->nheaders && !skip; j++)
			skip = hdr_is(&h[i], t->headers[j].name);   /* the route's value wins */
		if (skip)
			continue;
		n += (size_t)snprintf(out + n, cap - n, "%.*s: %.*s\r\n", (int)h[i].name_len, h[i].name,
		    (int)h[i].value_len, h[i].value);
	}
	if (n < cap)
		n += (size_t)snprintf(out + n, cap - n, "X-Forwarded-For: %.*s%s%s\r\n"
		    "X-Forwarded-Proto: %s\r\nX-Forwarded-Host: %.*s\r\n", (int)xff_len, xff ? xff : "",
		    xff ? ", " : "", client_ip, tls ? "https" : "http", (int)host_len, host);
	for (j = 0; j < t->nheaders && n < cap; j++) {
		const char *v = header_value(t, &t->headers[j]);
		if (v[0])
			n += (size_t)snprintf(out + n, cap - n, "%s: %s\r\n", t->headers[j].name, v);
	}
	if (n < cap)   /* HTTP/1.1: the upstream connection may be kept for the next request */
		n += (size_t)snprintf(out + n, cap - n, "\r\n");
	if (n >= cap) {
		free(out);
		return NULL;
	}
	*len = n;
	return out;
}

int
tg_proxy_take(struct tg_server *s, int route, int fd, SSL *ssl, const char *peer,
    const char *ip, const char *what, const char *head, size_t head_len, const char *body_read,
    size_t body, int64_t body_len, int client_keep, int expect)
{
	struct tg_tunnel *t = &s->routes[route];
	size_t len = head_len + body;
	struct tg_pipe *p = new_pipe(t, fd, len > TUN_BUF ? len : TUN_BUF);

	if (p == NULL)
		return -1;
	snprintf(p->peer, sizeof(p->peer), "%s", peer);
	snprintf(p->ip, sizeof(p->ip), "%s", ip);
	snprintf(p->what, sizeof(p->what), "%s", what);
	p->a.ssl = ssl;
	if (ssl && SSL_set_fd(ssl, fd) != 1) {
		pipe_close(p, TG_LOG_ERROR, "cannot hand the connection over");
		return 0;
	}
	if (expect) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		(void)side_write(&p->a, cont, sizeof(cont) - 1);
	}
	/* the request's framing: the part of the body already read counts */
	p->client_keep = client_keep;
	p->req.left = body_len;
	if (body_len >= 0 && (uint64_t)body > (uint64_t)body_len) {
		body = (size_t)body_len;   /* a pipelined next request: not kept */
		p->req.extra = 1;
		p->client_keep = 0;
	}
	if (body_len == 0 || (body_len > 0 && body == (size_t)body_len)) {
		p->req.left = 0;
		p->req.done = 1;
	} else if (body_len > 0) {
		p->req.left -= (int64_t)body;
	} else if (body > 0 && frame_feed(&p->req, body_read, body) < 0) {
		pipe_close(p, TG_LOG_WARN, "malformed chunked request body");
		return 0;
	}
	if (p->req.extra)
		p->client_keep = 0;
	memcpy(p->ab, head, head_len);
	memcpy(p->ab + head_len, body_read, body);
	p->ab_len = head_len + body;
	if (pool_take(p) == 0)
		return 0;
	start_connect(p);
	return 0;
}

void
tg_proxy_free(struct tg_server *s)
{
	size_t i;

	for (i = 0; i < s->nroutes; i++) {
		struct idle_up *u;
		while ((u = s->routes[i].idle) != NULL) {   /* the loop has ended: no handles */
			s->routes[i].idle = u->next;
			SSL_free(u->ssl);
			close(u->fd);
			free(u);
		}
		SSL_CTX_free(s->routes[i].ctx);
		tg_trust_free(s->routes[i].trust);
		free(s->routes[i].headers);
	}
	free(s->routes);
	s->routes = NULL;
	s->nroutes = 0;
}
