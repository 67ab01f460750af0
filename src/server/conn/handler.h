/*
 * What a service offers the connection layer. conn.c reads request heads
 * and bodies and knows no service: it offers each request to the handlers
 * the composition root registered for the listener (struct tg_server's
 * handlers[kind], in order): the first whose match() says yes owns the
 * request until its response is queued or the connection ends.
 *
 * All calls happen on the connection's loop thread.
 */
#ifndef TG_HANDLER_H
#define TG_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "http_parse.h"

struct tg_conn_s;

/* What begin() did with the request. */
enum tg_handled {
	TG_H_DONE,   /* a response is queued (or tg_conn_wait was called) */
	TG_H_BODY,   /* the body follows: body() for each piece, then body_end() */
	TG_H_TAKE,   /* the connection itself is handed to take() after the head */
};

/* Where a request's bytes are counted in /metrics. */
enum tg_counted { TG_COUNT_OTHER, TG_COUNT_FILES, TG_COUNT_NONE };

/* A connection handed over (TG_H_TAKE): the socket is a duplicate the
 * taker owns from the call on, with the TLS session moved onto it. */
struct tg_handover {
	int fd;
	SSL *ssl;                 /* NULL on a plain listener */
	const char *peer, *ip;    /* for the taker's log lines; copy them */
	const char *what;         /* "METHOD /path", for the log */
	const char *body_read;    /* body bytes already read after the head */
	size_t body_read_len;
	int64_t body_len;         /* Content-Length, 0 without a body, -1 chunked */
	int client_keep;          /* the client asked to keep the connection */
};

struct tg_handler {
	const char *service;      /* the access log's service word */
	enum tg_counted counted;
	void *ctx;                /* the handler's own */
	/* Is the request this handler's? NULL: every request is. Also asked
	 * for a request refused before any handler saw it (bad framing), to
	 * log and count it where it was meant to go. */
	int (*match)(const struct tg_handler *h, const struct tg_conn_s *c);
	/* Required. The request head is parsed; c->method, c->target and the
	 * header fields conn.c reads are set, the body deadline started. */
	enum tg_handled (*begin)(const struct tg_handler *h, struct tg_conn_s *c,
	    const struct tg_http_req *req);
	/* TG_H_BODY: body bytes; -1 when a response (an error) was queued
	 * and the body must stop. */
	int (*body)(struct tg_conn_s *c, char *data, size_t len);
	/* TG_H_BODY: the whole body arrived. */
	void (*body_end)(struct tg_conn_s *c);
	/* The request ends early (timeout, bad body, the client left): drop
	 * what the handler holds for it. May be called when it holds nothing. */
	void (*abort)(struct tg_conn_s *c);
	/* TG_H_TAKE: 0 when the taker owns ho->fd and ho->ssl, -1 when it
	 * refused them (the caller closes both). Either way the client's
	 * connection object closes right after. */
	int (*take)(struct tg_conn_s *c, const struct tg_handover *ho);
};

#endif
