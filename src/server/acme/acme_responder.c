/*
 * The challenge responder of the one-shot `tlsgate acme issue`: one thread,
 * one listener, one connection at a time with short timeouts. The daemon
 * does not use it (its event loop answers); this keeps the CLI free of the
 * daemon's settings while answering exactly like it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "listen.h"
#include "acme_answers.h"
#include "error.h"
#include "http_parse.h"
#include "server.h"

#define PREFIX "/.well-known/acme-challenge/"

struct tg_responder {
	pthread_t th;
	int fd, tls, stop;
	SSL_CTX *ctx;
	struct tg_answers *a;
	pthread_mutex_t mu;
};

static void
answer_http(struct tg_responder *r, int fd)
{
	char buf[4096], resp[700], ka[400], tok[300];
	struct tg_http_header h[32];
	struct tg_http_req req;
	size_t len = 0;
	ssize_t n, p = TG_HTTP_INCOMPLETE;

	while (len < sizeof(buf) && p == TG_HTTP_INCOMPLETE) {
		if ((n = read(fd, buf + len, sizeof(buf) - len)) <= 0)
			return;
		len += (size_t)n;
		req.headers = h;
		req.num_headers = 32;
		p = tg_http_parse_request(buf, len, &req);
	}
	if (p < 0)
		return;
	if (req.target_len > strlen(PREFIX) && req.target_len - strlen(PREFIX) < sizeof(tok) &&
	    !strncmp(req.target, PREFIX, strlen(PREFIX))) {
		snprintf(tok, sizeof(tok), "%.*s", (int)(req.target_len - strlen(PREFIX)),
		    req.target + strlen(PREFIX));
		if (tg_answers_http01(r->a, tok, ka, sizeof(ka)) == 0) {
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
			    "Content-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(ka), ka);
			(void)!write(fd, resp, (size_t)n);
			return;
		}
	}
	n = snprintf(resp, sizeof(resp), "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n");
	(void)!write(fd, resp, (size_t)n);
}

static void
answer_tls(struct tg_responder *r, int fd)
{
	SSL *ssl = SSL_new(r->ctx);

	if (ssl && SSL_set_fd(ssl, fd) == 1 && SSL_accept(ssl) == 1)
		SSL_shutdown(ssl);
	SSL_free(ssl);
	ERR_clear_error();
}

static void *
run(void *arg)
{
	struct tg_responder *r = arg;
	struct pollfd pfd = { r->fd, POLLIN, 0 };
	struct timeval tv = { 5, 0 };

	for (;;) {
		int fd, stop;
		pthread_mutex_lock(&r->mu);
		stop = r->stop;
		pthread_mutex_unlock(&r->mu);
		if (stop)
			break;
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		if ((fd = accept(r->fd, NULL, NULL)) < 0)
			continue;
		/* blocking, but never for long: a stuck peer costs 5 s at most */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (r->tls)
			answer_tls(r, fd);
		else
			answer_http(r, fd);
		close(fd);
	}
	return NULL;
}

struct tg_responder *
tg_responder_start(struct tg_answers *a, const char *addr, int tls, struct tg_err *err)
{
	struct tg_responder *r = calloc(1, sizeof(*r));

	if (r == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		return NULL;
	}
	r->a = a;
	r->tls = tls;
	pthread_mutex_init(&r->mu, NULL);
	if ((r->fd = tg_listen_open(addr, 0, err)) < 0) {
		free(r);
		return NULL;
	}
	/* the socket was made non-blocking for the loop; here accept blocks */
	if (tls) {
		if ((r->ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
		    SSL_CTX_set_min_proto_version(r->ctx, TLS1_2_VERSION) != 1) {
			tg_err_ossl(err, TG_E_TLS, "cannot create a TLS context");
			goto fail;
		}
		tg_answers_hook_ctx(r->ctx, a);
	}
	if (pthread_create(&r->th, NULL, run, r) != 0) {
		tg_err_set(err, TG_E_INTERNAL, "cannot start the challenge responder");
		goto fail;
	}
	return r;
fail:
	SSL_CTX_free(r->ctx);
	close(r->fd);
	free(r);
	return NULL;
}

void
tg_responder_stop(struct tg_responder *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->th, NULL);
	SSL_CTX_free(r->ctx);
	close(r->fd);
	pthread_mutex_destroy(&r->mu);
	free(r);
}
