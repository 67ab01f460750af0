/*
 * The PROXY header on the main listener (proxy_protocol.accept_from): a
 * connection from a listed load balancer must start with one (v1 or v2),
 * read before TLS or HTTP, and from then on the client it names is the
 * connection's peer: in the log, in the per-address limit, in
 * X-Forwarded-For. A connection from anyone else that starts with a PROXY
 * header is refused and logged: a client cannot choose its own address.
 *
 * Bytes are peeked first and only the header's own consumed, so what
 * follows stays in the socket for OpenSSL (which reads it directly).
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "conn.h"
#include "conn_int.h"
#include "peers.h"
#include "proxyproto.h"
#include "server.h"
#include "sockio.h"

/* The client the header names becomes the connection's peer, counted
 * against its own per-address limit (the balancer's is not). */
static int
take_client(struct tg_conn_s *c, const struct tg_pp_info *pi)
{
	struct tg_server *s = c->srv;
	char host[INET6_ADDRSTRLEN], port[8];
	struct sockaddr_storage src = pi->src;
	socklen_t sl = src.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
	    sizeof(struct sockaddr_in);

	if (!pi->local) {
		if (getnameinfo((struct sockaddr *)&src, sl, host, sizeof(host), port, sizeof(port),
		    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
			return -1;
		if (!strncmp(host, "::ffff:", 7))
			memmove(host, host + 7, strlen(host + 7) + 1);
		snprintf(c->ip, sizeof(c->ip), "%s", host);
		snprintf(c->peer, sizeof(c->peer), strchr(host, ':') ? "[%s]:%s" : "%s:%s", host,
		    port);
	}
	if (tg_peers_take(s->peers, c->ip, s->max_per_ip) < 0) {
		tg_log(s, TG_LOG_WARN, "%s: limits.max_connections_per_ip reached for this client "
		    "(named by a PROXY header); refused", c->peer);
		return -1;
	}
	c->ip_counted = 1;
	return 0;
}

int
tg_conn_step_proxy(struct tg_conn_s *c)
{
	struct tg_server *s = c->srv;
	struct tg_pp_info pi;
	char why[160];
	ssize_t n;
	int r;

	if (!c->pp_trusted) {
		/* six bytes tell "PROXY " and twelve the v2 signature from the
		 * start of a TLS or HTTP request; nothing is consumed */
		unsigned char first[12];
		n = recv(c->fd, first, sizeof(first), MSG_PEEK);
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ?
			    TG_IO_AGAIN : TG_IO_FAIL;
		if (n == 0)
			return TG_IO_FAIL;
		if ((size_t)n >= 6 && tg_pp_looks_like(first, (size_t)n)) {
			s->m.proxy_refused++;
			tg_log(s, TG_LOG_WARN, "%s: refused: a PROXY header from an address "
			    "proxy_protocol.accept_from does not list (only the load balancers "
			    "there may name another client)", c->peer);
			return TG_IO_FAIL;
		}
		c->state = c->after_proxy;
		if (c->state == CS_HEAD)
			tg_conn_deadline(c, s->t_header);
		return 0;
	}
	if (c->in == NULL && (c->in = tg_conn_buf_take()) == NULL)
		return TG_IO_FAIL;
	/* look at what is there (after what of the header was taken already) */
	n = recv(c->fd, c->in + c->in_len, TG_PP_V2_MAX - c->in_len, MSG_PEEK);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? TG_IO_AGAIN :
		    TG_IO_FAIL;
	if (n == 0)
		return TG_IO_FAIL;
	r = tg_pp_parse((unsigned char *)c->in, c->in_len + (size_t)n, &pi, why, sizeof(why));
	if (r < 0) {
		s->m.proxy_refused++;
		tg_log(s, TG_LOG_WARN, "%s: refused: %s (this address is in "
		    "proxy_protocol.accept_from, so its connections must start with a PROXY "
		    "v1 or v2 header)", c->peer, why);
		return TG_IO_FAIL;
	}
	/* consume the header's bytes only: all that was peeked when it is not
	 * whole yet (every one of them is the header's), else up to its end */
	n = r > 0 ? (ssize_t)((size_t)r - c->in_len) : n;
	if (recv(c->fd, c->in + c->in_len, (size_t)n, 0) != n)
		return TG_IO_FAIL;
	c->in_len += (size_t)n;
	if (r == 0)
		return TG_IO_AGAIN;   /* more of the header is to come */
	/* the buffer goes back until the request head needs one */
	c->in_len = 0;
	tg_conn_buf_give(c->in, TG_IO_BUF);
	c->in = NULL;
	if (take_client(c, &pi) < 0)
		return TG_IO_FAIL;
	s->m.proxy_accepted++;
	c->state = c->after_proxy;
	if (c->state == CS_HEAD)   /* plain HTTP: the head's own time from here */
		tg_conn_deadline(c, s->t_header);
	return 0;
}
