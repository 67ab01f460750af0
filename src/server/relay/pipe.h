/*
 * The pipe that carries a tunnelled or proxied connection (used by
 * tunnel.c and proxy.c, knowing neither): two sides, the accepted one (a)
 * and the upstream one (b), each a socket with an optional SSL that
 * OpenSSL reads and writes directly, and two bounded buffers. What happens
 * to the sockets of a proxied exchange that ended cleanly is the owner's
 * business: the pipe hands them to its callbacks.
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
#include "upstream.h"

#define TUN_BUF       (32 * 1024)

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
	/* http, set by the owner: where the sockets of a clean end go (each
	 * a duplicate the callee owns, its SSL moved onto it); NULL: closed */
	void (*upstream_kept)(struct tg_tunnel *t, int fd, SSL *ssl);
	void (*client_back)(struct tg_server *s, int fd, SSL *ssl, const char *peer,
	    const char *ip);
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

#endif
