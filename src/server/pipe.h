/*
 * The insides shared by the tunnels (tunnel.c), the proxy routes (proxy.c)
 * and the pipe that carries both (pipe.c): a tunnelled or proxied
 * connection is two sides, the accepted one (a) and the upstream one (b),
 * each a socket with an optional SSL that OpenSSL reads and writes
 * directly, and two bounded buffers.
 */
#ifndef TG_PIPE_H
#define TG_PIPE_H

#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "http_parse.h"
#include "server.h"
#include "trust.h"

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

/* An extra request header of a proxy route: a value, or a file's content
 * read again when the file changes. */
struct proxy_header {
	char name[128];
	char value[4096];
	char file[4096];
	struct timespec mtime;
	int loaded;                  /* value holds what the file had when last read */
	int watched;                 /* a watch re-reads it on change: no stat per request */
	struct tg_tunnel *t;         /* the route (for the watch's callback) */
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
	uint32_t magic;              /* TG_PIPE_MAGIC while it lives (magic.h) */
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

/* pipe.c */
struct tg_pipe *tg_pipe_new(struct tg_tunnel *t, int fd, size_t cap);
void tg_pipe_connect(struct tg_pipe *p);        /* to the upstream, then pump */
void tg_pipe_run(struct tg_pipe *p);            /* one step of the state machine */
void tg_pipe_close(struct tg_pipe *p, int level, const char *why);
void tg_pipe_finish(struct tg_pipe *p);         /* a clean end of a proxied exchange */
void tg_pipe_on_timer(uv_timer_t *h);
ssize_t tg_pipe_side_write(struct side *x, const char *buf, size_t len);
ssize_t tg_pipe_frame_feed(struct frame *f, const char *data, size_t n);

/* tunnel.c: every entry of list ("tunnels" or "proxy") from the
 * configuration, each a listener or route, into *out */
int tg_tunnel_open_all(struct tg_server *s, const struct tg_config *cfg, const char *list,
    struct tg_tunnel **out, size_t *nout, struct tg_err *err);

/* proxy.c */
int tg_proxy_headers_load(struct tg_tunnel *t, const struct tg_config *cfg, size_t i,
    struct tg_err *err);
int tg_proxy_pool_take(struct tg_pipe *p);      /* 0: a kept connection is in use */
void tg_proxy_pool_put(struct tg_tunnel *t, int fd, SSL *ssl);

#endif
