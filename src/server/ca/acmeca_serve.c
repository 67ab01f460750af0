/*
 * The ACME CA's requests on the loop: the head and body are read by the
 * connection (at most 64 KiB, what an ACME request can need), the answer
 * is made on the thread pool (the store, signing: tg_acmeca_handle) and
 * queued back on the connection. A challenge the client asked for is then
 * checked on the thread pool too, apart from any connection. If the client
 * leaves while its request is on the pool, abort() detaches it: the work
 * finishes, its answer is dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acmeca.h"
#include "acmeca_serve.h"
#include "conn.h"
#include "magic.h"
#include "server.h"

#define JOB_MAGIC 0x43414a42u   /* "CAJB" */
#define CHECK_MAGIC 0x43414348u /* "CACH" */
#define MAX_BODY (64 * 1024)

/*
 * libuv's pool (4 threads) is shared with uploads, pin records and
 * reloads: the CA takes one request at a time (its mutex would make the
 * others wait on a thread anyway), and at most CHECKS_MAX checks, each up
 * to ~10 s on the network. More waits here, in order: up to WAIT_MAX
 * checks, ACCOUNT_MAX of them one account's, each (authorization,
 * challenge) once; a check beyond that is not made (the client may ask
 * again after a while, acmeca.c STALE_CHECK).
 */
#define CHECKS_MAX 2
#define WAIT_MAX 64
#define ACCOUNT_MAX 20

struct tg_ca_req {
	uint32_t magic;
	uv_work_t work;
	struct tg_server *srv;
	struct tg_conn_s *conn;      /* NULL once the connection ended */
	struct tg_ca_req *next;      /* waiting in srv->ca_req_wait */
	int waiting, running;
	char method[16], host[300], path[1024];
	char *body;
	size_t len;
	struct tg_acmeca_resp resp;
};

struct tg_ca_check {
	uint32_t magic;
	struct tg_ca_check *next;    /* in srv->ca_checks */
	int running;
	uv_work_t work;
	struct tg_server *srv;
	char account[64], authz[64];
	int idx;
	int outcome;                 /* tg_acmeca_validate's: 1 valid, 0 invalid, -1 not checked */
	char log[1000];
};

static void
job_free(struct tg_ca_req *j)
{
	TG_MAGIC_CHECK(j, JOB_MAGIC, "ACME CA request");
	free(j->body);
	tg_acmeca_resp_clear(&j->resp);
	j->magic = 0;
	free(j);
}

/* ---- checks ----------------------------------------------------------------------- */

static void checks_start(struct tg_server *s);

static void
val_work(uv_work_t *w)
{
	struct tg_ca_check *v = w->data;

	TG_MAGIC_CHECK(v, CHECK_MAGIC, "ACME CA validation");
	v->outcome = tg_acmeca_validate(v->srv->acmeca, v->authz, v->idx, v->log, sizeof(v->log));
}

static void
check_unlink(struct tg_server *s, struct tg_ca_check *v)
{
	struct tg_ca_check **pp;

	for (pp = &s->ca_checks; *pp; pp = &(*pp)->next)
		if (*pp == v) {
			*pp = v->next;
			break;
		}
	v->next = NULL;
}

static void
val_done(uv_work_t *w, int status)
{
	struct tg_ca_check *v = w->data;
	struct tg_server *s;

	TG_MAGIC_CHECK(v, CHECK_MAGIC, "ACME CA validation");
	s = v->srv;
	s->ca_checking--;
	check_unlink(s, v);
	if (status == 0 && v->outcome >= 0)
		(*(v->outcome ? &s->m.acmeca_valid : &s->m.acmeca_invalid))++;
	if (v->log[0])
		tg_log(s, status == 0 && v->outcome == 1 ? TG_LOG_INFO : TG_LOG_WARN, "%s", v->log);
	v->magic = 0;
	free(v);
	checks_start(s);
}

/* Starts waiting checks, oldest first, while fewer than CHECKS_MAX run; a
 * stopping server starts none and drops what waits. */
static void
checks_start(struct tg_server *s)
{
	struct tg_ca_check *v, *next;

	for (v = s->ca_checks; v; v = next) {
		next = v->next;
		if (v->running)
			continue;
		if (s->stopping) {
			check_unlink(s, v);
			s->ca_waiting--;
			v->magic = 0;
			free(v);
			continue;
		}
		if (s->ca_checking >= CHECKS_MAX)
			break;
		v->work.data = v;
		s->ca_waiting--;
		if (uv_queue_work(s->loop, &v->work, val_work, val_done) != 0) {
			tg_log(s, TG_LOG_ERROR, "ACME CA: cannot queue the check of %s/%d; the client "
			    "may ask again after a minute", v->authz, v->idx);
			check_unlink(s, v);
			v->magic = 0;
			free(v);
			continue;
		}
		v->running = 1;
		s->ca_checking++;
	}
}

static void
validate_later(struct tg_server *s, const struct tg_acmeca_resp *r)
{
	struct tg_ca_check *v, **tail;
	unsigned mine = 0;

	for (tail = &s->ca_checks; *tail; tail = &(*tail)->next) {
		v = *tail;
		if (!strcmp(v->authz, r->authz) && v->idx == r->chall)
			return;   /* already waiting or running */
		mine += !v->running && !strcmp(v->account, r->account);
	}
	if (s->ca_waiting >= WAIT_MAX || mine >= ACCOUNT_MAX) {
		tg_log(s, TG_LOG_WARN, "ACME CA: %s checks wait; challenge %s/%d of account %s is "
		    "not checked now (it may be asked for again after a minute)", mine >= ACCOUNT_MAX ?
		    "that account's" : "too many", r->authz, r->chall, r->account);
		return;
	}
	if ((v = calloc(1, sizeof(*v))) == NULL) {
		tg_log(s, TG_LOG_ERROR, "ACME CA: out of memory; challenge %s/%d is not checked now",
		    r->authz, r->chall);
		return;
	}
	v->magic = CHECK_MAGIC;
	v->srv = s;
	snprintf(v->account, sizeof(v->account), "%s", r->account);
	snprintf(v->authz, sizeof(v->authz), "%s", r->authz);
	v->idx = r->chall;
	*tail = v;
	s->ca_waiting++;
	checks_start(s);
}

/* ---- requests ------------------------------------------------------------------------ */

static void requests_start(struct tg_server *s, struct tg_conn_s *self);

static void
req_work(uv_work_t *w)
{
	struct tg_ca_req *j = w->data;
	struct tg_acmeca_req req;

	TG_MAGIC_CHECK(j, JOB_MAGIC, "ACME CA request");
	req.method = j->method;
	req.host = j->host;
	req.path = j->path;
	req.body = j->body ? j->body : "";
	req.body_len = j->len;
	tg_acmeca_handle(j->srv->acmeca, &req, &j->resp);
}

static void
req_done(uv_work_t *w, int status)
{
	struct tg_ca_req *j = w->data;
	struct tg_conn_s *c;
	struct tg_server *s;
	int cancelled = status == UV_ECANCELED;

	TG_MAGIC_CHECK(j, JOB_MAGIC, "ACME CA request");
	s = j->srv;
	s->ca_req_running--;
	c = j->conn;
	if (cancelled)
		j->resp.validate = 0;
	if (j->resp.log[0])
		tg_log(s, TG_LOG_INFO, "%s", j->resp.log);
	if (status == 0) {
		s->m.acmeca_issued += j->resp.event == TG_ACMECA_EV_ISSUED;
		s->m.acmeca_revoked += j->resp.event == TG_ACMECA_EV_REVOKED;
		s->m.acmeca_refused += j->resp.event == TG_ACMECA_EV_REFUSED;
	}
	/* the challenge is checked even when its client has gone: it asked */
	if (j->resp.validate && !s->stopping)
		validate_later(s, &j->resp);
	if (c != NULL) {
		TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
		c->hreq = NULL;
		if (cancelled)   /* the CA's own 503s (a busy store) keep their problem document */
			tg_conn_respond(c, 503, "Retry-After: 5\r\n", "the ACME CA is stopping");
		else
			tg_conn_respond_exact(c, j->resp.status, j->resp.headers, j->resp.body,
			    j->resp.body_len, 0);
		tg_conn_resume(c);
	}
	job_free(j);
	requests_start(s, NULL);
}

/* Starts the oldest waiting request when none runs. self: the connection
 * whose handler is calling (its request is being begun): answered without
 * a resume, which its own conn_run does when the handler returns. */
static void
requests_start(struct tg_server *s, struct tg_conn_s *self)
{
	while (s->ca_req_running == 0 && s->ca_req_wait) {
		struct tg_ca_req *j = s->ca_req_wait;
		struct tg_conn_s *c = j->conn;
		s->ca_req_wait = j->next;
		j->next = NULL;
		j->waiting = 0;
		j->work.data = j;
		if (uv_queue_work(s->loop, &j->work, req_work, req_done) != 0) {
			c->hreq = NULL;
			job_free(j);
			tg_conn_respond(c, 503, "Retry-After: 5\r\n", "cannot queue the ACME request");
			if (c != self)
				tg_conn_resume(c);
			continue;
		}
		j->running = 1;
		s->ca_req_running++;
	}
}

/* The request is whole: it waits its turn (the connection waits with it). */
static void
queue(struct tg_conn_s *c, struct tg_ca_req *j)
{
	struct tg_server *s = c->srv;
	struct tg_ca_req **tail;

	for (tail = &s->ca_req_wait; *tail; tail = &(*tail)->next)
		;
	*tail = j;
	j->waiting = 1;
	requests_start(s, c);
	if (c->hreq == j)   /* running or waiting: the connection waits with it */
		tg_conn_wait(c);
}

static int
ca_match(const struct tg_handler *h, const struct tg_conn_s *c)
{
	(void)h;
	if (c->kind == TG_LISTENER_CA)
		return 1;
	return c->srv->ca_on_main && c->srv->acmeca && !strncmp(c->target, "/acme/", 6);
}

static enum tg_handled
ca_begin(const struct tg_handler *h, struct tg_conn_s *c, const struct tg_http_req *req)
{
	struct tg_ca_req *j;
	int post = !strcmp(c->method, "POST");

	(void)h;
	(void)req;
	if (c->srv->acmeca == NULL || strncmp(c->target, "/acme/", 6) != 0) {
		tg_conn_respond(c, 404, NULL, "this listener serves the ACME CA: "
		    "/acme/directory");
		return TG_H_DONE;
	}
	if (!post && strcmp(c->method, "GET") && strcmp(c->method, "HEAD")) {
		tg_conn_respond(c, 405, "Allow: GET, HEAD, POST\r\n", "ACME uses GET, HEAD and POST");
		return TG_H_DONE;
	}
	if (post && (c->chunked || !c->has_len || c->content_length > MAX_BODY)) {
		tg_conn_respond(c, c->chunked || !c->has_len ? 411 : 413, NULL,
		    "an ACME request is a JWS of at most 64 KiB with a Content-Length");
		return TG_H_DONE;
	}
	if (strlen(c->target) >= sizeof(j->path) || strlen(c->rt->host) >= sizeof(j->host) ||
	    (j = calloc(1, sizeof(*j))) == NULL) {
		tg_conn_respond(c, 414, NULL, "the URL or host is too long");
		return TG_H_DONE;
	}
	j->magic = JOB_MAGIC;
	j->srv = c->srv;
	j->conn = c;
	snprintf(j->method, sizeof(j->method), "%s", c->method);
	snprintf(j->host, sizeof(j->host), "%s", c->rt->host);
	snprintf(j->path, sizeof(j->path), "%s", c->target);
	c->hreq = j;
	if (!post || c->content_length == 0) {
		queue(c, j);
		return TG_H_DONE;
	}
	if ((j->body = malloc(c->content_length + 1)) == NULL) {
		c->hreq = NULL;
		job_free(j);
		tg_conn_respond(c, 503, NULL, "out of memory");
		return TG_H_DONE;
	}
	return TG_H_BODY;
}

static int
ca_body(struct tg_conn_s *c, char *data, size_t len)
{
	struct tg_ca_req *j = c->hreq;

	if (j == NULL)
		return 0;
	TG_MAGIC_CHECK(j, JOB_MAGIC, "ACME CA request");
	if (len > c->content_length - j->len) {   /* conn.c stops at Content-Length */
		c->hreq = NULL;
		job_free(j);
		tg_conn_respond(c, 413, NULL, "more body than Content-Length");
		return -1;
	}
	memcpy(j->body + j->len, data, len);
	j->len += len;
	return 0;
}

static void
ca_body_end(struct tg_conn_s *c)
{
	struct tg_ca_req *j = c->hreq;

	if (j == NULL)
		return;
	TG_MAGIC_CHECK(j, JOB_MAGIC, "ACME CA request");
	j->body[j->len] = '\0';
	queue(c, j);
}

static void
ca_abort(struct tg_conn_s *c)
{
	struct tg_ca_req *j = c->hreq;

	if (j == NULL)
		return;
	TG_MAGIC_CHECK(j, JOB_MAGIC, "ACME CA request");
	c->hreq = NULL;
	if (j->running) {
		j->conn = NULL;   /* the pool owns it until req_done */
		return;
	}
	if (j->waiting) {   /* not started: out of the line, and gone */
		struct tg_ca_req **pp;
		for (pp = &c->srv->ca_req_wait; *pp; pp = &(*pp)->next)
			if (*pp == j) {
				*pp = j->next;
				break;
			}
	}
	job_free(j);
}

const struct tg_handler tg_acmeca_handler = {
	.service = "acme-ca", .counted = TG_COUNT_OTHER, .match = ca_match, .begin = ca_begin,
	.body = ca_body, .body_end = ca_body_end, .abort = ca_abort,
};
