/*
 * TCP tunnels (see tunnel.h): a listener per tunnel, each accepted socket
 * handed to a pipe. The set-up shared with proxy routes is upstream.c.
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

#include "watch.h"
#include "pipe.h"
#include "upstream.h"
#include "server.h"
#include "trust.h"
#include "tunnel.h"
#include "util.h"

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
		if ((p = tg_pipe_new(t, fd, TUN_BUF)) == NULL) {
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
				tg_pipe_close(p, TG_LOG_ERROR, "cannot start TLS");
				continue;
			}
			SSL_set_accept_state(p->a.ssl);
			p->state = P_HANDSHAKE_A;
			tg_pipe_run(p);
		} else {
			tg_pipe_connect(p);
		}
	}
}

int
tg_tunnels_open(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err)
{
	return tg_upstream_open_all(s, cfg, "tunnels", &s->tunnels, &s->ntunnels, err);
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
tg_tunnels_watch_known(struct tg_server *s)
{
	size_t i;

	for (i = 0; i < s->nroutes; i++)
		tg_known_watch_start(s, s->routes[i].trust);
	for (i = 0; s->worker_index == 0 && i < s->ntunnels; i++)
		tg_known_watch_start(s, s->tunnels[i].trust);
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
		tg_pipe_close(s->pipes, TG_LOG_INFO, "closed by the stop");
}

void
tg_tunnels_cert_changed(struct tg_server *s)
{
	size_t i;
	struct tg_err err;

	for (i = 0; i < s->ntunnels; i++) {
		struct tg_tunnel *t = &s->tunnels[i];
		if (!t->tls_connect && tg_upstream_tls_in_ctx(t, &err) < 0)
			tg_log(s, TG_LOG_ERROR, "tunnel %zu keeps its old certificate: %s", i, err.msg);
	}
}

/* Every 2 s (the certificate watch's tick): tunnels and proxy routes whose
 * CRL file changed build their context again; connections in flight keep
 * the old one. */
void
tg_tunnels_crl_tick(struct tg_server *s)
{
	struct tg_err err;
	size_t i, k;

	for (k = 0; k < 2; k++) {
		struct tg_tunnel *list = k ? s->routes : s->tunnels;
		size_t n = k ? s->nroutes : s->ntunnels;
		if (!k && s->worker_index != 0)
			continue;   /* tunnels are served by the first worker */
		for (i = 0; i < n; i++) {
			int r = tg_upstream_own_cert_check(&list[i], &err);
			if (r > 0)
				tg_log(s, TG_LOG_INFO, "%s %zu: presents the node's new certificate to "
				    "its upstream from now on", k ? "proxy route" : "tunnel", i);
			else if (r < 0)
				tg_log(s, TG_LOG_ERROR, "%s %zu: the node's new certificate was refused "
				    "as its client certificate, the old one stays: %s", k ? "proxy route" :
				    "tunnel", i, err.msg);
			r = tg_upstream_crl_check(&list[i], &err);
			if (r > 0)
				tg_log(s, TG_LOG_INFO, "%s %zu: its CRL changed on disk: new connections "
				    "are checked against it", k ? "proxy route" : "tunnel", i);
			else if (r < 0)
				tg_log(s, TG_LOG_ERROR, "%s %zu: its CRL changed on disk but was refused, "
				    "the old one stays: %s", k ? "proxy route" : "tunnel", i, err.msg);
		}
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
		tg_upstream_release(t);
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
	st->alpn = &t->alpn;
	st->alpn_count = t->alpn_count;
	st->group_count = t->group_count;
	return 0;
}
