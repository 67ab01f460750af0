/*
 * A client connection: socket, TLS, the request being served and the
 * buffers for it. Its life is a state machine (handshake -> head -> body ->
 * response -> head again or close), every state bounded in time and bytes.
 */
#ifndef TG_CONN_H
#define TG_CONN_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "handler.h"
#include "http_parse.h"
#include "server.h"

#define TG_CONN_MAGIC 0x54474e43u   /* "TGNC" */
#define TG_IO_BUF     (64 * 1024)

enum conn_state { CS_PROXY, CS_HANDSHAKE, CS_HEAD, CS_BODY, CS_WAIT, CS_RESP, CS_LINGER, CS_TAKE,
    CS_CLOSING };


/* The request's longer strings, allocated only while a request is being
 * served, so that an idle connection stays small. */
struct tg_request_text {
	char target[4096];
	char content_type[512];
	char range[128];
	char host[256];
};

struct tg_record_job;

struct tg_conn_s {
	uint32_t magic;
	struct tg_server *srv;
	struct tg_conn_s *next, *prev;
	int fd;
	SSL *ssl;
	uv_poll_t poll;
	uv_timer_t timer;
	int handles_open;
	enum conn_state state;
	int want_write;              /* the last I/O wanted POLLOUT */
	int polled;                  /* the events c->poll watches now, 0 if stopped */
	int ktls;                    /* the kernel encrypts what we send: SSL_sendfile */
	int kind;                    /* the listener: TG_LISTENER_* */
	char peer[64];
	char ip[48];                 /* the peer's address, counted in srv->peers */
	int ip_counted;              /* ip holds a count in srv->peers */
	int pp_trusted;              /* CS_PROXY: from a load balancer that must send one */
	enum conn_state after_proxy; /* CS_PROXY: where the connection goes next */
	char ident[256];             /* client certificate identity, or "-" */
	/* input: the head, then body bytes */
	char *in;
	size_t in_len;
	/* output: response head and small bodies */
	char *out;
	size_t out_len, out_off, out_cap;
	/* the request */
	char method[16];
	struct tg_request_text *rt;
	char *target, *content_type, *range;   /* into rt, or "" between requests */
	int minor, keep_alive, expect_continue, chunked, has_len;
	uint64_t content_length, body_left;
	struct tg_chunked chunk;
	struct tg_record_job *record;  /* a cluster's first contact being decided */
	/* the response */
	int status, close_after, linger;
	uint64_t lingered;
	int file_fd;
	uint64_t file_off, file_left;
	uint64_t bytes_in, bytes_out;
	uint64_t t_start;
	unsigned requests;
	/* the handler that took the request (handler.h), NULL before one did
	 * or when none did, and what it keeps for the request */
	const struct tg_handler *handler;
	void *hreq;
};

/* Queues a complete response with a short text body (or none for HEAD). */
void tg_conn_respond(struct tg_conn_s *c, int status, const char *extra_headers,
    const char *body);
/* The same with exactly bl bytes of body (add_newline: end it with one). */
void tg_conn_respond_exact(struct tg_conn_s *c, int status, const char *extra_headers,
    const char *body, size_t bl, int add_newline);
/* Queues a response head, and its body of len bytes from fd at off
 * (head_only: none, HEAD). The connection owns fd from the call on and
 * closes it when the body is sent or the connection ends. */
void tg_conn_respond_file(struct tg_conn_s *c, int status, const char *headers, int fd,
    uint64_t off, uint64_t len, int head_only);
/* The handler queued work off the loop (the thread pool): the connection
 * stops reading and its deadline stops until tg_conn_resume. If the
 * connection ends meanwhile (drain, second signal), the handler's abort()
 * detaches the work from it; the work's completion must not touch it then. */
void tg_conn_wait(struct tg_conn_s *c);
/* The handler finished work off the loop and queued a response: resume. */
void tg_conn_resume(struct tg_conn_s *c);
const char *tg_http_status_text(int status);
/* Takes back a keep-alive connection whose proxied exchange ended (the
 * socket and its finished TLS session), waiting for its next request. */
void tg_conn_adopt(struct tg_server *srv, int fd, SSL *ssl, const char *peer, const char *ip);
/* Takes over an accepted socket. */
void tg_conn_accept(struct tg_server *srv, int fd, int kind);   /* TG_LISTENER_* */
/* Closes every connection (shutdown). */
void tg_conn_close_all(struct tg_server *srv);
/* Closes the connections that are between requests (graceful stop). */
void tg_conn_close_idle(struct tg_server *srv);

#endif
