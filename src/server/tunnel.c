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

#include "config_int.h"
#include "error.h"
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
	/* TLS in: how the context is built again when the certificate changes */
	char ca[4096], ca_origin[320];
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
	char ab[TUN_BUF], ba[TUN_BUF];
};

static void pipe_run(struct tg_pipe *p);

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
static int
pump_dir(struct side *from, struct side *to, char *buf, size_t *off, size_t *len,
    uint64_t *count)
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
		if (from->eof || *len == TUN_BUF)
			break;
		if (*off > 0) {   /* room at the end for the next read */
			memmove(buf, buf + *off, *len - *off);
			*len -= *off;
			*off = 0;
		}
		n = side_read(from, buf + *len, TUN_BUF - *len);
		if (n == -2)
			return -1;
		if (n == 0) {
			from->eof = 1;
			progress = 1;
			break;
		}
		if (n < 0)
			break;
		*len += (size_t)n;
		progress = 1;
	}
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
	if (why)
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

	pipe_close(p, TG_LOG_INFO, p->state == P_PUMP ? "idle for the tunnel's idle_timeout; "
	    "closed" : "not set up within 10 s; closed");
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

	if (!p->a.eof && p->ab_len < TUN_BUF)
		a |= p->a.read_wants_write ? UV_WRITABLE : UV_READABLE;
	if (p->ab_len > p->ab_off)
		b |= p->b.write_wants_read ? UV_READABLE : UV_WRITABLE;
	if (!p->b.eof && p->ba_len < TUN_BUF)
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
	if (tg_tls_client_judge(p->b.ssl, t->trust, id, &v, &err) < 0) {
		pipe_close(p, TG_LOG_ERROR, err.msg);
		return -1;
	}
	if (!v.accept) {
		char why[1400];
		snprintf(why, sizeof(why), "upstream %s refused: %s", id, v.reason);
		pipe_close(p, TG_LOG_WARN, why);
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
		pipe_close(p, TG_LOG_WARN, why);
		return;
	}
	if (arm(p, 0, UV_WRITABLE) < 0)
		pipe_close(p, TG_LOG_ERROR, "cannot poll");
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
			pipe_close(p, TG_LOG_WARN, why);
			return;
		}
		if (!t->tls_connect) {
			p->state = P_PUMP;
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
			pipe_close(p, TG_LOG_WARN, why);
			return;
		}
		if (judge_upstream(p) < 0)
			return;
		p->state = P_PUMP;
		break;
	case P_PUMP:
		break;
	case P_CLOSED:
		return;
	}
	/* pumping */
	do {
		int x = pump_dir(&p->a, &p->b, p->ab, &p->ab_off, &p->ab_len, &p->bytes_ab);
		int y = x < 0 ? -1 : pump_dir(&p->b, &p->a, p->ba, &p->ba_off, &p->ba_len,
		    &p->bytes_ba);
		if (x < 0 || y < 0) {
			pipe_close(p, TG_LOG_DEBUG, "closed by an error on one side");
			return;
		}
		progress = x || y;
		if (progress)
			uv_timer_start(&p->timer, on_timer, t->idle_ms, 0);
	} while (progress && !(p->a.eof && p->b.eof));
	if (p->a.eof && p->b.eof && p->ab_len == p->ab_off && p->ba_len == p->ba_off) {
		pipe_close(p, TG_LOG_DEBUG, "both ends closed");
		return;
	}
	arm_pump(p);
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
		if ((p = calloc(1, sizeof(*p))) == NULL) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
		    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
			snprintf(p->peer, sizeof(p->peer), ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
			    host, port);
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
		uv_timer_start(&p->timer, on_timer, TUN_SETUP_MS < t->idle_ms ? TUN_SETUP_MS : t->idle_ms, 0);
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
known_path(const struct tg_config *cfg, size_t i, const char *fallback_key, char *buf,
    size_t len)
{
	const char *k = tg_cfg_entry_str(cfg, "tunnels", i, "known");
	char sd[4096];

	if (!k[0]) {
		tg_cfg_path(cfg, fallback_key, buf, len);
		return;
	}
	tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, "state_dir"));
	tg_path_join(buf, len, sd, k);
}

static int
open_one(struct tg_server *s, const struct tg_config *cfg, size_t i, struct tg_tunnel *t,
    struct tg_err *err)
{
	const char *trust = tg_cfg_entry_str(cfg, "tunnels", i, "trust");
	struct addrinfo hints, *res = NULL;
	enum tg_trust_mode mode = TG_TRUST_CA;
	char known[4096], ps[16], sd[4096];
	int rc;

	t->srv = s;
	t->index = i;
	t->fd = -1;
	snprintf(t->listen, sizeof(t->listen), "%s", tg_cfg_entry_str(cfg, "tunnels", i, "listen"));
	snprintf(t->connect, sizeof(t->connect), "%s", tg_cfg_entry_str(cfg, "tunnels", i, "connect"));
	t->tls_connect = (int)tg_cfg_entry_num(cfg, "tunnels", i, "tls_connect");
	t->mutual = !strcmp(tg_cfg_entry_str(cfg, "tunnels", i, "mode"), "mutual");
	t->idle_ms = (uint64_t)tg_cfg_entry_num(cfg, "tunnels", i, "idle_timeout");
	t->max_conns = (size_t)tg_cfg_entry_num(cfg, "tunnels", i, "max_connections");
	if (tg_parse_hostport(t->connect, t->host, sizeof(t->host), &t->port) < 0 || !t->host[0])
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tunnels.%zu.connect (%s): '%s' needs a host",
		    i, tg_cfg_entry_origin(cfg, "tunnels", i, "connect"), t->connect);
	/* resolved once, at start: the loop never waits for DNS */
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	snprintf(ps, sizeof(ps), "%d", t->port);
	if ((rc = getaddrinfo(t->host, ps, &hints, &res)) != 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tunnels.%zu.connect (%s): cannot resolve "
		    "%s: %s", i, tg_cfg_entry_origin(cfg, "tunnels", i, "connect"), t->host,
		    gai_strerror(rc));
	memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
	t->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	if (t->tls_connect) {
		struct tg_client_opts o;
		char ca[4096] = "", local_ca[4096], cert[4096] = "", key[4096] = "";
		const char *sn = tg_cfg_entry_str(cfg, "tunnels", i, "server_name");

		if (!trust[0])
			trust = tg_cfg_str(cfg, "client.trust");
		tg_trust_mode_parse(trust, &mode);
		known_path(cfg, i, "client.known", known, sizeof(known));
		memset(&o, 0, sizeof(o));
		o.trust = trust;
		o.known = known;
		if (tg_cfg_entry_str(cfg, "tunnels", i, "ca")[0])
			snprintf(ca, sizeof(ca), "%s", tg_cfg_entry_str(cfg, "tunnels", i, "ca"));
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
		if (tg_cfg_entry_str(cfg, "tunnels", i, "cert")[0]) {
			snprintf(cert, sizeof(cert), "%s", tg_cfg_entry_str(cfg, "tunnels", i, "cert"));
			snprintf(key, sizeof(key), "%s", tg_cfg_entry_str(cfg, "tunnels", i, "key"));
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
	} else {
		if (!trust[0])
			trust = tg_cfg_str(cfg, "tls.clients.trust");
		tg_trust_mode_parse(trust, &mode);
		known_path(cfg, i, "tls.clients.known", known, sizeof(known));
		if (t->mutual && (t->trust = tg_trust_new(mode, known, "known-clients", NULL, 0,
		    err)) == NULL)
			goto prefix;
		if (tg_cfg_entry_str(cfg, "tunnels", i, "ca")[0]) {
			snprintf(t->ca, sizeof(t->ca), "%s", tg_cfg_entry_str(cfg, "tunnels", i, "ca"));
			snprintf(t->ca_origin, sizeof(t->ca_origin), "tunnels.%zu.ca, %s", i,
			    tg_cfg_entry_origin(cfg, "tunnels", i, "ca"));
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
	if ((t->fd = tg_listen_open(t->listen, err)) < 0)
		goto prefix;
	return 0;
prefix:
	{
		char m[sizeof(err->msg)];
		snprintf(m, sizeof(m), "%s", err->msg);
		tg_err_set(err, err->code, "tunnels.%zu (%s): %s", i,
		    tg_cfg_entry_origin(cfg, "tunnels", i, "listen"), m);
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
		if (open_one(s, cfg, i, &s->tunnels[i], err) < 0)
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
