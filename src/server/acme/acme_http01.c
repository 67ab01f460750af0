/*
 * The plain-HTTP listener of tls.acme.http_listen: HTTP-01 answers at
 * /.well-known/acme-challenge/TOKEN (RFC 8555 section 8.3), and for every
 * other path a permanent redirect to the same path over HTTPS, so port 80
 * never serves content in the clear.
 */
#include <stdio.h>
#include <string.h>

#include "acme_answers.h"
#include "acme_http01.h"
#include "conn.h"
#include "util.h"

#define PREFIX "/.well-known/acme-challenge/"

/* The HTTPS port clients should use: the main listener's, left out when
 * it is 443. */
static int
https_port(const struct tg_server *s)
{
	char host[256];
	int port = 443;

	if (tg_parse_hostport(s->listen, host, sizeof(host), &port) < 0)
		return 443;
	return port;
}

static void
respond(struct tg_conn_s *c)
{
	const struct tg_server *s = c->srv;
	size_t pl = strlen(PREFIX);
	char ka[400], hdr[4600], host[256];
	int port, found = -1;

	c->keep_alive = 0;
	if (!strncmp(c->target, PREFIX, pl)) {
		if ((strcmp(c->method, "GET") && strcmp(c->method, "HEAD")) || s->answers == NULL ||
		    (found = tg_answers_http01(s->answers, c->target + pl, ka, sizeof(ka))) < 0) {
			tg_conn_respond(c, 404, NULL, "no such challenge");
			return;
		}
		tg_log(s, TG_LOG_INFO, "%s: answered an http-01 challenge%s", c->peer, found == 1 ?
		    " with the answer another worker or node published" : "");
		/* the key authorization, byte for byte: no newline added */
		tg_conn_respond_exact(c, 200, "Content-Type: application/octet-stream\r\n", ka,
		    strlen(ka), 0);
		return;
	}
	/* the Host header without its port, if it is a sane name */
	snprintf(host, sizeof(host), "%s", c->rt ? c->rt->host : "");
	if (host[0] == '[')
		host[strcspn(host, "]") + (strchr(host, ']') ? 1 : 0)] = '\0';
	else
		host[strcspn(host, ":")] = '\0';
	if (!host[0] || strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789.-[]:") != strlen(host) || c->target[0] != '/' ||
	    strpbrk(c->target, "\r\n")) {
		tg_conn_respond(c, 400, NULL, "this port only redirects to HTTPS; send a Host header");
		return;
	}
	port = https_port(s);
	if (port == 443)
		snprintf(hdr, sizeof(hdr), "Location: https://%s%s\r\n", host, c->target);
	else
		snprintf(hdr, sizeof(hdr), "Location: https://%s:%d%s\r\n", host, port, c->target);
	tg_conn_respond(c, 308, hdr, "moved to HTTPS");
}

static enum tg_handled
http01_begin(const struct tg_handler *h, struct tg_conn_s *c, const struct tg_http_req *req)
{
	respond(c);
	return TG_H_DONE;
}

const struct tg_handler tg_acme_http01_handler = {
	.service = "acme-http", .counted = TG_COUNT_OTHER, .begin = http01_begin,
};
