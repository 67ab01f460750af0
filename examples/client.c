/*
 * A client connection judged by a trust mode: dial HOST:PORT, say why the
 * server is trusted, send one HTTP request, print the status line.
 *
 *   cc client.c $(pkg-config --cflags --libs tlsgate) -o client
 *   ./client HOST PORT ca CAFILE
 *   ./client HOST PORT tofu KNOWNFILE      (pins the server on first contact)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tlsgate/tlsgate.h>

int
main(int argc, char **argv)
{
	struct tg_client_opts o;
	struct tg_client *c;
	struct tg_err err;
	const char *verdict;
	char req[512], buf[4096];
	ssize_t n;
	int trusted = 0;

	if (argc != 5) {
		fprintf(stderr, "usage: client HOST PORT ca CAFILE | tofu KNOWNFILE\n");
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.trust = argv[3];
	if (!strcmp(argv[3], "ca"))
		o.ca = argv[4];
	else
		o.known = argv[4];
	o.timeout_ms = 5000;
	if (tg_client_open(argv[1], atoi(argv[2]), &o, &c, &err) < 0) {
		fprintf(stderr, "%s [%s]\n", err.msg, tg_code_name(err.code));
		return 1;
	}
	verdict = tg_client_verdict(c, &trusted);
	printf("%s\n%s (trusted: %d)\n", tg_client_protocol(c), verdict, trusted);
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
	    argv[1]);
	if (tg_client_write(c, req, strlen(req), &err) < 0 ||
	    (n = tg_client_read(c, buf, sizeof(buf) - 1, &err)) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		tg_client_close(c);
		return 1;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	printf("%s\n", buf);
	tg_client_close(c);
	return 0;
}
