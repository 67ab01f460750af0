/*
 * The whole server on arbitrary byte streams: a real tlsgate server (plain
 * HTTP, file service, a proxy route to an upstream on the same loop, the
 * admin listener) gets each input as one client connection over a
 * socketpair, written in pieces whose sizes the input chooses, with the
 * loop run between pieces, then ended the way the input chooses (half
 * close, or a hard close mid-exchange). Heads, bodies, chunked, multipart,
 * pipelining and early close all reach conn.c, files.c, multipart.c,
 * proxy.c and pipe.c as they do in service, with the thread pool's commits
 * and the timers live.
 *
 * Input: byte 0 picks the listener (bit 0: admin) and the ending (bit 1:
 * close without a half close first); then records of [n][n bytes], n from
 * 0 to 255, each written as one piece. Seeds: fuzz/corpus/server, made from
 * the integration tests' requests by fuzz/make_server_seeds.py.
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "certs.h"
#include "conn.h"
#include "pipe.h"
#include "daemon.h"
#include "server.h"

static struct tg_server *srv;
static uv_tcp_t upstream;

/* ---- an upstream on the same loop: answers every request with 200 ---------- */

struct up_conn {
	uv_tcp_t h;
	char buf[4096];
	char tail[3];                /* the last bytes of the previous read */
};

static void
up_closed(uv_handle_t *h)
{
	free(h->data);
}

static void
up_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
	struct up_conn *u = h->data;
	*b = uv_buf_init(u->buf, sizeof(u->buf));
}

static void
up_written(uv_write_t *w, int status)
{
	free(w);
}

static void
up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	static const char answer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
	struct up_conn *u = s->data;

	if (n < 0) {
		uv_close((uv_handle_t *)s, up_closed);
		return;
	}
	/* one answer per request head (the pool reuses the connection) */
	for (ssize_t i = 0; i < n; i++) {
		char c = b->base[i];
		if (c == '\n' && u->tail[0] == '\r' && u->tail[1] == '\n' && u->tail[2] == '\r') {
			uv_write_t *w = malloc(sizeof(*w));
			uv_buf_t out = uv_buf_init((char *)answer, sizeof(answer) - 1);
			if (w && uv_write(w, s, &out, 1, up_written) != 0)
				free(w);
		}
		u->tail[0] = u->tail[1];
		u->tail[1] = u->tail[2];
		u->tail[2] = c;
	}
}

static void
up_accept(uv_stream_t *l, int status)
{
	struct up_conn *u = calloc(1, sizeof(*u));

	if (u == NULL)
		return;
	uv_tcp_init(l->loop, &u->h);
	u->h.data = u;
	if (uv_accept(l, (uv_stream_t *)&u->h) != 0) {
		uv_close((uv_handle_t *)&u->h, up_closed);
		return;
	}
	uv_read_start((uv_stream_t *)&u->h, up_alloc, up_read);
}

/* ---- the server ------------------------------------------------------------- */

static int
free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &l) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static void
die(const char *what, const struct tg_err *err)
{
	fprintf(stderr, "fuzz_server: %s: %s\n", what, err ? err->msg : strerror(errno));
	abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/tlsgate-fuzz-server.XXXXXX", yaml[4200], path[256], spec[64];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct tg_config *cfg;
	struct tg_keypair kp;
	struct tg_err err;
	FILE *f;

	signal(SIGPIPE, SIG_IGN);   /* as tg_server_run does: peers vanish */
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", NULL);
	/* the upstream first: the route names its port */
	uv_tcp_init(uv_default_loop(), &upstream);
	if (uv_tcp_bind(&upstream, (struct sockaddr *)&a, 0) != 0 ||
	    uv_listen((uv_stream_t *)&upstream, 64, up_accept) != 0)
		die("upstream", NULL);
	{
		struct sockaddr_in b;
		int l = sizeof(b);
		uv_tcp_getsockname(&upstream, (struct sockaddr *)&b, &l);
		snprintf(spec, sizeof(spec), "127.0.0.1:%d", ntohs(b.sin_port));
	}
	snprintf(yaml, sizeof(yaml),
	    "listen: 127.0.0.1:%d\nstate_dir: %s/state\nlog:\n  level: %s\n"
	    "admin:\n  listen: 127.0.0.1:%d\n"
	    "tls:\n  mode: \"off\"\nfiles:\n  max_upload: 64KiB\n"
	    "timeouts:\n  header: 2s\n  body: 2s\n  keepalive: 2s\n"
	    "proxy:\n  - prefix: /up/\n    upstream: http://%s/base/\n    connect_timeout: 1s\n"
	    "    first_byte_timeout: 1s\n    idle_timeout: 2s\n    headers:\n      X-Fuzz: yes\n",
	    free_port(), dir, getenv("FUZZ_SERVER_LOG") ? getenv("FUZZ_SERVER_LOG") : "error",
	    free_port(), spec);
	snprintf(path, sizeof(path), "%s/tlsgate.yaml", dir);
	if ((f = fopen(path, "w")) == NULL || fputs(yaml, f) < 0 || fclose(f) != 0)
		die("config file", NULL);
	if ((cfg = tg_config_new()) == NULL || tg_config_load_file(cfg, path, 1, &err) < 0 ||
	    tg_config_validate(cfg, &err) < 0)
		die("config", &err);
	if ((srv = tg_server_new(cfg, &kp, &err)) == NULL)
		die("server", &err);
	tg_config_free(cfg);
	return 0;
}

/* Moves what the server wrote out of the way, so it never waits on us. */
static void
drain(int fd)
{
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static void
spin(int fd, int rounds)
{
	while (rounds-- > 0) {
		uv_run(srv->loop, UV_RUN_NOWAIT);
		drain(fd);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int sv[2], kind, hard, i;
	size_t off = 1;

	if (size < 1)
		return 0;
	kind = data[0] & 1 ? TG_LISTENER_ADMIN : TG_LISTENER_MAIN;
	hard = data[0] & 2;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	tg_conn_accept(srv, sv[0], kind);
	while (off < size) {
		size_t n = data[off++];
		if (n > size - off)
			n = size - off;
		for (size_t w = 0; w < n;) {
			ssize_t r = send(sv[1], data + off + w, n - w, MSG_NOSIGNAL);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN) {
					spin(sv[1], 1);
					continue;
				}
				goto end;   /* the server closed: the rest is not read */
			}
			w += (size_t)r;
		}
		off += n;
		spin(sv[1], 2);
	}
end:
	if (!hard) {
		shutdown(sv[1], SHUT_WR);
		spin(sv[1], 4);
	}
	close(sv[1]);
	/* until the connection is gone, and any upload commit and upstream
	 * exchange with it; bounded so a stuck state shows as a timeout */
	for (i = 0; i < 100000 && (srv->nconns > 0 || uv_loop_alive(srv->loop)); i++) {
		uv_run(srv->loop, UV_RUN_NOWAIT);
		if (srv->nconns == 0 && i > 50)
			break;
		if (i > 1000)
			usleep(100);
	}
	if (srv->nconns != 0) {
		fprintf(stderr, "fuzz_server: a connection outlived its closed client (%zu open:%s%s)\n",
		    srv->nconns, srv->conns ? " a client connection" : "", srv->pipes ? " a pipe" : "");
		for (struct tg_pipe *p = srv->pipes; p; p = p->next)
			fprintf(stderr, "  pipe in state %d (a: eof %d shut %d, b: fd %d eof %d shut %d), "
			    "head_done %d, status %d\n", (int)p->state, p->a.eof, p->a.shut, p->b.fd,
			    p->b.eof, p->b.shut, p->head_done, p->status);
		for (struct tg_conn_s *c = srv->conns; c; c = c->next)
			fprintf(stderr, "  connection in state %d, %zu bytes unread\n", (int)c->state, c->in_len);
		abort();
	}
	return 0;
}
