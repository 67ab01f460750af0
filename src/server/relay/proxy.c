/*
 * Proxy routes (see tunnel.h): which route a request takes, the head it is
 * sent upstream with, extra headers (values or files), and the idle pool of
 * upstream connections kept between requests.
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

#include "conn.h"
#include "error.h"
#include "http_parse.h"
#include "magic.h"
#include "pipe.h"
#include "upstream.h"
#include "server.h"
#include "tls.h"
#include "trust.h"
#include "proxy.h"
#include "util.h"
#include "watch.h"

/* ---- the idle pool of upstream connections ----------------------------------- */

/* An upstream connection kept between proxied requests. */
struct idle_up {
	uint32_t magic;              /* TG_IDLE_MAGIC while it lives (magic.h) */
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


static void
idle_closed(uv_handle_t *h)
{
	struct idle_up *u = h->data;

	TG_MAGIC_CHECK(u, TG_IDLE_MAGIC, "idle upstream connection");
	if (--u->handles > 0)
		return;
	SSL_free(u->ssl);
	if (u->fd >= 0)
		close(u->fd);
	u->magic = 0;
	free(u);
}

static void
idle_drop(struct idle_up *u)
{
	struct idle_up **pp;

	TG_MAGIC_CHECK(u, TG_IDLE_MAGIC, "idle upstream connection");
	if (uv_is_closing((uv_handle_t *)&u->timer))
		return;   /* dropped already */
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

	/* a connection judged under a context since replaced (a new CRL) is
	 * not kept for another request */
	if (t->nidle >= POOL_MAX || t->srv->stopping || (ssl && SSL_get_SSL_CTX(ssl) != t->ctx) ||
	    (u = calloc(1, sizeof(*u))) == NULL) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	if (uv_poll_init(t->srv->loop, &u->poll, fd) != 0) {
		free(u);
		SSL_free(ssl);
		close(fd);
		return;
	}
	u->magic = TG_IDLE_MAGIC;
	u->t = t;
	u->fd = fd;
	u->ssl = ssl;
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

		/* closed, bytes nobody asked for, or judged under a context the
		 * route has since replaced (a new CRL): dropped, not reused */
		if (r == 0 || r > 0 || errno != EAGAIN ||
		    (u->ssl && SSL_get_SSL_CTX(u->ssl) != t->ctx) ||
		    (fd = fcntl(u->fd, F_DUPFD_CLOEXEC, 0)) < 0) {
			idle_drop(u);
			continue;
		}
		p->b.ssl = u->ssl;
		u->ssl = NULL;
		idle_drop(u);
		p->b.fd = fd;
		if ((p->b.ssl && tg_tls_move_fd(p->b.ssl, fd) < 0) ||
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
		uv_timer_start(&p->timer, tg_pipe_on_timer, t->first_byte_ms, 0);
		tg_pipe_run(p);
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


/* Reads a header's file into its value; "" when it cannot be read (logged,
 * once per change of the file when watched). */
static void
header_load(struct tg_tunnel *t, struct proxy_header *h, const struct stat *sb)
{
	unsigned char *data = NULL;
	size_t len = 0;
	struct tg_err err;

	h->loaded = 1;
	h->mtime = sb->st_mtim;
	if (tg_read_file(h->file, &data, &len, sizeof(h->value) - 1, &err) < 0) {
		tg_log(t->srv, TG_LOG_ERROR, "proxy %s: header %s: %s; sent without it", t->prefix,
		    h->name, err.msg);
		h->value[0] = '\0';
		return;
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
}

static void
header_changed(void *arg)
{
	struct proxy_header *h = arg;
	struct stat sb;

	if (stat(h->file, &sb) < 0)
		memset(&sb, 0, sizeof(sb));
	/* on a change event, read it: mtime alone can miss two writes within
	 * one clock tick */
	header_load(h->t, h, &sb);
}

/* The value of a header: from the route, or its file as last read. A
 * watched file is read when it changes, never per request; an unwatched
 * one (no inotify watch could be had) is checked with stat(). */
static const char *
header_value(struct tg_tunnel *t, struct proxy_header *h)
{
	struct stat sb;

	if (!h->file[0] || (h->watched && h->loaded))
		return h->value;
	if (stat(h->file, &sb) < 0)
		memset(&sb, 0, sizeof(sb));
	if (!h->loaded || sb.st_mtim.tv_sec != h->mtime.tv_sec ||
	    sb.st_mtim.tv_nsec != h->mtime.tv_nsec || !h->value[0])
		header_load(t, h, &sb);
	return h->value;
}

/* Watches the files of the routes' headers and reads each once (loop
 * thread, at start). */
void
tg_proxy_watch_headers(struct tg_server *s)
{
	size_t i, j;

	for (i = 0; i < s->nroutes; i++) {
		struct tg_tunnel *t = &s->routes[i];
		for (j = 0; j < t->nheaders; j++) {
			struct proxy_header *h = &t->headers[j];
			if (!h->file[0])
				continue;
			h->t = t;
			h->watched = tg_file_watch_start(s, h->file, header_changed, h) == 0;
			header_changed(h);
		}
	}
}

int
tg_proxy_open(struct tg_server *s, const struct tg_config *cfg, struct tg_err *err)
{
	return tg_upstream_open_all(s, cfg, "proxy", &s->routes, &s->nroutes, err);
}

static int
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

static char *
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
		tg_upstream_release(&s->routes[i]);
	}
	free(s->routes);
	s->routes = NULL;
	s->nroutes = 0;
}

/* ---- the handler (handler.h) ---------------------------------------------- */

/* A request for a route, between its head and the hand-over. */
struct proxy_req {
	int route, expect;
	char *head;
	size_t len;
};

static int
proxy_match(const struct tg_handler *h, const struct tg_conn_s *c)
{
	return c->srv->nroutes && tg_proxy_match(c->srv, c->target) >= 0;
}

static enum tg_handled
proxy_begin(const struct tg_handler *h, struct tg_conn_s *c, const struct tg_http_req *req)
{
	struct tg_server *s = c->srv;
	int ri = tg_proxy_match(s, c->target);
	struct proxy_req *r;

	if ((r = calloc(1, sizeof(*r))) == NULL) {
		c->keep_alive = 0;
		tg_conn_respond(c, 503, NULL, "out of memory");
		return TG_H_DONE;
	}
	r->route = ri;
	r->head = tg_proxy_head(s, ri, c->method, c->target, req->headers, req->num_headers, c->ip,
	    c->ssl != NULL, &r->expect, &r->len);
	if (r->head == NULL) {
		free(r);
		c->keep_alive = 0;
		tg_conn_respond(c, 431, NULL, "the request head is too large to forward");
		return TG_H_DONE;
	}
	c->hreq = r;
	return TG_H_TAKE;
}

static void
proxy_abort(struct tg_conn_s *c)
{
	struct proxy_req *r = c->hreq;

	if (r == NULL)
		return;
	free(r->head);
	free(r);
	c->hreq = NULL;
}

/* The request's framing on the pipe: the part of the body already read
 * counts; bytes past its end are a pipelined next request, not forwarded
 * (and the client's connection is then not kept). -1: a malformed body. */
static int
frame_request(struct tg_pipe *p, const struct tg_handover *ho, size_t *body)
{
	int64_t body_len = ho->body_len;

	p->client_keep = ho->client_keep;
	p->req.left = body_len;
	if (body_len >= 0 && (uint64_t)*body > (uint64_t)body_len) {
		*body = (size_t)body_len;
		p->req.extra = 1;
	}
	if (body_len == 0 || (body_len > 0 && *body == (size_t)body_len)) {
		p->req.left = 0;
		p->req.done = 1;
	} else if (body_len > 0) {
		p->req.left -= (int64_t)*body;
	} else if (*body > 0) {
		/* chunked: only what belongs to this body goes on; a request
		 * pipelined after it was never rewritten for the route */
		ssize_t k = tg_pipe_frame_feed(&p->req, ho->body_read, *body);
		if (k < 0)
			return -1;
		*body = (size_t)k;
	}
	if (p->req.extra)
		p->client_keep = 0;
	return 0;
}

/* Takes the client's socket (and its SSL, now on ho->fd) onto a pipe with
 * the rewritten head and the body bytes already read; the pipe connects to
 * the upstream (or a kept connection of the route's pool) and streams the
 * rest both ways. */
static int
proxy_take_conn(struct tg_conn_s *c, const struct tg_handover *ho)
{
	struct proxy_req *r = c->hreq;
	struct tg_tunnel *t = &c->srv->routes[r->route];
	size_t body = ho->body_read_len, len = r->len + body;
	struct tg_pipe *p = tg_pipe_new(t, ho->fd, len > TUN_BUF ? len : TUN_BUF);

	if (p == NULL) {
		proxy_abort(c);
		return -1;
	}
	snprintf(p->peer, sizeof(p->peer), "%s", ho->peer);
	snprintf(p->ip, sizeof(p->ip), "%s", ho->ip);
	snprintf(p->what, sizeof(p->what), "%s", ho->what);
	p->upstream_kept = pool_put;
	p->client_back = tg_conn_adopt;
	p->a.ssl = ho->ssl;
	if (ho->ssl && tg_tls_move_fd(ho->ssl, ho->fd) < 0) {
		proxy_abort(c);
		tg_pipe_close(p, TG_LOG_ERROR, "cannot hand the connection over");
		return 0;
	}
	if (r->expect) {
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		(void)tg_pipe_side_write(&p->a, cont, sizeof(cont) - 1);
	}
	if (frame_request(p, ho, &body) < 0) {
		proxy_abort(c);
		tg_pipe_close(p, TG_LOG_WARN, "malformed chunked request body");
		return 0;
	}
	memcpy(p->ab, r->head, r->len);
	memcpy(p->ab + r->len, ho->body_read, body);
	p->ab_len = r->len + body;
	proxy_abort(c);   /* the head is on the pipe now */
	/* a PROXY header names one client: such a connection is that
	 * client's alone, never taken from or given to the pool */
	if (t->proxy_protocol)
		p->upstream_kept = NULL;
	if (t->proxy_protocol || pool_take(p) != 0)
		tg_pipe_connect(p);
	return 0;
}

const struct tg_handler tg_proxy_handler = {
	.service = "other", .counted = TG_COUNT_OTHER, .match = proxy_match, .begin = proxy_begin,
	.abort = proxy_abort, .take = proxy_take_conn,
};
