/*
 * The connection module's own parts, shared by its files and nobody else:
 * conn.c (sockets, timers, the state machine, life and death) calls
 * request.c (framing, dispatch to handlers, the access line) and
 * response.c (response heads, buffers); those two never call conn.c.
 * Loop thread only.
 */
#ifndef TG_CONN_INT_H
#define TG_CONN_INT_H

#include <stddef.h>
#include <stdint.h>

struct tg_conn_s;
struct tg_http_req;

/* response.c: 64 KiB I/O buffers, kept on a small per-thread stack so a
 * keep-alive request allocates nothing */
char *tg_conn_buf_take(void);
void tg_conn_buf_give(char *b, size_t cap);
/* Room for need bytes in c->out; -1 when memory ran out. */
int tg_conn_out_reserve(struct tg_conn_s *c, size_t need);

/* conn.c: (re)starts the connection's one timer. */
void tg_conn_deadline(struct tg_conn_s *c, uint64_t ms);

/* accept_proxy.c: reads the PROXY header of a connection in CS_PROXY (or
 * checks there is none from an unlisted address); TG_IO_* or 0 when it
 * moved on to c->after_proxy. */
int tg_conn_step_proxy(struct tg_conn_s *c);

/* request.c */
/* Reads a parsed head into c: 0 when a handler is to be chosen, -1 when a
 * response (an error) is queued instead. */
int tg_conn_parse_request(struct tg_conn_s *c, size_t head_len, const struct tg_http_req *req);
/* Offers the request to the listener's handlers; 404 when none takes it. */
void tg_conn_dispatch(struct tg_conn_s *c, const struct tg_http_req *req);
/* Feeds the body bytes in c->in to the handler that took the request. */
void tg_conn_feed_body(struct tg_conn_s *c);
/* The request ends early: its handler lets go of it (safe twice). */
void tg_conn_handler_abort(struct tg_conn_s *c);
/* Between requests: the request's fields cleared, its text given back. */
void tg_conn_reset_request(struct tg_conn_s *c);
void tg_conn_text_drop(struct tg_conn_s *c);
/* A request ended: its access line and counters. */
void tg_conn_request_ended(struct tg_conn_s *c);

#endif
