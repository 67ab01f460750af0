/*
 * A TCP echo server and a checking client for the tunnel tests.
 *
 *   tcpecho serve PORT              echoes every connection; at the client's
 *                                   end of stream, flushes and half-closes
 *   tcpecho sink PORT               accepts and reads, never answers (a hung
 *                                   upstream)
 *   tcpecho blast HOST PORT N BYTES N connections at once, each sends BYTES
 *                                   of its own pseudo-random stream, then
 *                                   half-closes, and checks every echoed
 *                                   byte and the end of stream
 *
 * blast prints "ok N connections, TOTAL bytes each way, MB/s" and exits 0,
 * or names the first connection that failed and exits 1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536
#define MAXC 1024

static uint8_t
gen(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint8_t)(*s >> 24);
}

struct ec {
	int fd, eof;
	char buf[BUF];
	size_t off, len;
};

static int sink_mode;

static int
serve(int port)
{
	struct sockaddr_in a;
	struct pollfd pf[MAXC + 1];
	struct ec *c[MAXC + 1];
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1, n = 1, i;

	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 1024) < 0) {
		perror("tcpecho serve");
		return 1;
	}
	pf[0].fd = l;
	pf[0].events = POLLIN;
	c[0] = NULL;
	for (;;) {
		if (poll(pf, (nfds_t)n, -1) < 0)
			continue;
		if (pf[0].revents & POLLIN && n <= MAXC) {
			int fd = accept(l, NULL, NULL);
			if (fd >= 0) {
				fcntl(fd, F_SETFL, O_NONBLOCK);
				c[n] = calloc(1, sizeof(struct ec));
				c[n]->fd = fd;
				pf[n].fd = fd;
				n++;
			}
		}
		for (i = 1; i < n; i++) {
			struct ec *e = c[i];
			ssize_t r;
			if (e->len > e->off) {
				r = write(e->fd, e->buf + e->off, e->len - e->off);
				if (r > 0 && (e->off += (size_t)r) == e->len)
					e->off = e->len = 0;
				else if (r < 0 && errno != EAGAIN)
					e->eof = 2;
			}
			if (!e->eof && e->len == 0) {
				r = read(e->fd, e->buf, BUF);
				if (r > 0 && sink_mode)
					r = 1, e->len = 0;   /* swallowed */
				else if (r > 0)
					e->len = (size_t)r;
				else if (r == 0)
					e->eof = 1;
				else if (errno != EAGAIN)
					e->eof = 2;
			}
			if (e->eof && e->len == e->off) {
				if (e->eof == 1)
					shutdown(e->fd, SHUT_WR);
				close(e->fd);
				free(e);
				c[i] = c[n - 1];
				pf[i] = pf[n - 1];
				n--;
				i--;
				continue;
			}
			pf[i].events = (short)((e->len > e->off ? POLLOUT : 0) | (!e->eof && e->len == 0 ? POLLIN : 0));
		}
	}
}

struct bc {
	int fd, done, shut;
	uint64_t ss, rs;         /* generator states: what we send, what we expect */
	uint64_t sent, got;
};

static int
blast(const char *host, int port, int nc, uint64_t bytes)
{
	struct sockaddr_in a;
	struct pollfd pf[MAXC];
	struct bc b[MAXC];
	char buf[BUF];
	struct timespec t0, t1;
	int i, left = nc, one = 1;

	if (nc < 1 || nc > MAXC)
		return 2;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, host, &a.sin_addr);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < nc; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		b[i].ss = b[i].rs = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
		b[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(b[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(b[i].fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
			fprintf(stderr, "connection %d: connect: %s\n", i, strerror(errno));
			return 1;
		}
		fcntl(b[i].fd, F_SETFL, O_NONBLOCK);
		pf[i].fd = b[i].fd;
	}
	while (left > 0) {
		for (i = 0; i < nc; i++)
			pf[i].events = b[i].done ? 0 : (short)(POLLIN | (b[i].sent < bytes ? POLLOUT : 0));
		if (poll(pf, (nfds_t)nc, 30000) <= 0) {
			for (i = 0; i < nc && b[i].done; i++)
				;
			fprintf(stderr, "connection %d: stalled (sent %llu, got %llu of %llu)\n", i,
			    (unsigned long long)b[i].sent, (unsigned long long)b[i].got,
			    (unsigned long long)bytes);
			return 1;
		}
		for (i = 0; i < nc; i++) {
			struct bc *x = &b[i];
			ssize_t r, k;
			if (x->done)
				continue;
			if (pf[i].revents & POLLOUT && x->sent < bytes) {
				size_t want = bytes - x->sent > BUF ? BUF : (size_t)(bytes - x->sent);
				uint64_t save = x->ss;
				for (k = 0; k < (ssize_t)want; k++)
					buf[k] = (char)gen(&x->ss);
				r = write(x->fd, buf, want);
				if (r < 0)
					r = 0;
				/* rewind the generator past what was not taken */
				x->ss = save;
				for (k = 0; k < r; k++)
					gen(&x->ss);
				x->sent += (uint64_t)r;
			}
			if (x->sent == bytes && !x->shut) {
				shutdown(x->fd, SHUT_WR);
				x->shut = 1;
			}
			if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) {
				r = read(x->fd, buf, BUF);
				if (r < 0 && errno == EAGAIN)
					continue;
				if (r <= 0) {
					if (x->got != bytes) {
						fprintf(stderr, "connection %d: ended after %llu of %llu bytes (%s)\n",
						    i, (unsigned long long)x->got, (unsigned long long)bytes,
						    r < 0 ? strerror(errno) : "end of stream");
						return 1;
					}
					x->done = 1;
					left--;
					close(x->fd);
					continue;
				}
				for (k = 0; k < r; k++)
					if ((uint8_t)buf[k] != gen(&x->rs)) {
						fprintf(stderr, "connection %d: byte %llu differs\n", i,
						    (unsigned long long)(x->got + (uint64_t)k));
						return 1;
					}
				x->got += (uint64_t)r;
				if (x->got > bytes) {
					fprintf(stderr, "connection %d: more bytes than sent\n", i);
					return 1;
				}
			}
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	{
		double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		printf("ok %d connections, %llu bytes each way, %.1f MB/s each way\n", nc,
		    (unsigned long long)bytes * (unsigned long long)nc,
		    (double)bytes * nc / s / 1e6);
	}
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "serve"))
		return serve(atoi(argv[2]));
	if (argc == 3 && !strcmp(argv[1], "sink"))
		return sink_mode = 1, serve(atoi(argv[2]));
	if (argc == 6 && !strcmp(argv[1], "blast"))
		return blast(argv[2], atoi(argv[3]), atoi(argv[4]), strtoull(argv[5], NULL, 10));
	fprintf(stderr, "usage: tcpecho serve PORT | tcpecho blast HOST PORT CONNS BYTES\n");
	return 2;
}
