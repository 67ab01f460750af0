/*
 * A slowloris for tests: opens N connections to 127.0.0.1:PORT from source
 * addresses 127.0.0.2..127.0.0.(1+SOURCES), sends the start of a request
 * head (or nothing, with -s: a silent TLS client), holds them for SECONDS,
 * and prints how many were open at the end of the hold.
 *   slowclients PORT N SECONDS [SOURCES] [-s]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	int port, n, secs, sources = 8, silent = 0, i, open_n = 0, *fds;
	static const char part[] = "GET /files/ HTTP/1.1\r\nHost: slow\r\n";
	struct timespec t = { 0, 0 };

	if (argc < 4) {
		fprintf(stderr, "usage: slowclients PORT N SECONDS [SOURCES] [-s]\n");
		return 2;
	}
	port = atoi(argv[1]);
	n = atoi(argv[2]);
	secs = atoi(argv[3]);
	if (argc > 4)
		sources = atoi(argv[4]);
	silent = argc > 5 && !strcmp(argv[5], "-s");
	fds = calloc((size_t)n, sizeof(*fds));
	for (i = 0; i < n; i++) {
		struct sockaddr_in src = { .sin_family = AF_INET }, dst = { .sin_family = AF_INET };
		int one = 1;
		src.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(i % sources));
		dst.sin_addr.s_addr = htonl(0x7f000001u);
		dst.sin_port = htons((uint16_t)port);
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		setsockopt(fds[i], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&src, sizeof(src)) < 0 ||
		    connect(fds[i], (struct sockaddr *)&dst, sizeof(dst)) < 0) {
			perror("connect");
			if (fds[i] >= 0)
				close(fds[i]);
			fds[i] = -1;
			continue;
		}
		if (!silent)
			(void)!write(fds[i], part, sizeof(part) - 1);
	}
	t.tv_sec = secs;
	nanosleep(&t, NULL);
	for (i = 0; i < n; i++) {
		struct pollfd p = { fds[i], POLLIN, 0 };
		char b[256];
		if (fds[i] < 0)
			continue;
		/* still open: no data and no EOF waiting */
		if (poll(&p, 1, 0) == 0 || (read(fds[i], b, sizeof(b)) < 0 && errno == EAGAIN))
			open_n++;
		close(fds[i]);
	}
	free(fds);
	printf("%d\n", open_n);
	return 0;
}
