/*
 * ssl_conn_mem: how much heap OpenSSL itself keeps per idle TLS 1.3
 * connection on the server side, the floor under W6 for any server built
 * on it. N handshakes over in-memory BIO pairs with the harness's
 * certificate (one session ticket, released buffers, as tlsgate and nginx
 * configure it); the client side is freed after each handshake, the
 * server SSL objects are kept. Prints bytes per connection from glibc's
 * mallinfo2 (allocated bytes, not RSS).
 *   cc -O2 -o ssl_conn_mem ssl_conn_mem.c -lssl -lcrypto
 *   ./ssl_conn_mem CERT KEY [N=2000]
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

static int
pump(SSL *c, SSL *s)
{
	int i, rc, rs;

	for (i = 0; i < 100; i++) {
		rc = SSL_do_handshake(c);
		rs = SSL_do_handshake(s);
		if (rc == 1 && rs == 1)
			return 0;
	}
	return -1;
}

int
main(int argc, char **argv)
{
	int n = argc > 3 ? atoi(argv[3]) : 2000, i;
	SSL_CTX *sc, *cc;
	SSL **keep;
	size_t before = 0, after, fresh;


	if (argc < 3) {
		fprintf(stderr, "usage: ssl_conn_mem CERT KEY [N]\n");
		return 2;
	}
	sc = SSL_CTX_new(TLS_server_method());
	cc = SSL_CTX_new(TLS_client_method());
	if (!sc || !cc || SSL_CTX_use_certificate_chain_file(sc, argv[1]) != 1 ||
	    SSL_CTX_use_PrivateKey_file(sc, argv[2], SSL_FILETYPE_PEM) != 1) {
		ERR_print_errors_fp(stderr);
		return 1;
	}
	SSL_CTX_set_min_proto_version(sc, TLS1_3_VERSION);
	SSL_CTX_set_num_tickets(sc, 1);
	SSL_CTX_set_mode(sc, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(sc, SSL_SESS_CACHE_OFF);
	keep = calloc((size_t)n, sizeof(*keep));
	{   /* an SSL object before any handshake, for comparison */
		SSL *x = SSL_new(sc);
		SSL_free(x);
		before = mallinfo2().uordblks;
		for (i = 0; i < n; i++)
			keep[i] = SSL_new(sc);
		fresh = mallinfo2().uordblks - before;
		for (i = 0; i < n; i++)
			SSL_free(keep[i]);
	}
	for (i = -50; i < n; i++) {   /* 50 warm-up handshakes: lazy fetches */
		SSL *s = SSL_new(sc), *c = SSL_new(cc);
		int sv[2];
		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0) {
			perror("socketpair");
			return 1;
		}
		SSL_set_fd(c, sv[0]);
		SSL_set_fd(s, sv[1]);
		SSL_set_connect_state(c);
		SSL_set_accept_state(s);
		if (pump(c, s) < 0) {
			fprintf(stderr, "handshake failed\n");
			ERR_print_errors_fp(stderr);
			return 1;
		}
		{
			char x;   /* let the client read the ticket, as a real one would */
			SSL_read(c, &x, 1);
		}
		SSL_free(c);
		close(sv[0]);
		if (i < 0) {
			SSL_free(s);
			close(sv[1]);
			continue;
		}
		if (i == 0)
			before = mallinfo2().uordblks;
		keep[i] = s;
	}
	after = mallinfo2().uordblks;
	printf("openssl_server_bytes_per_idle_conn=%.0f ssl_new_bytes=%.0f n=%d (%s)\n",
	    (double)(after - before) / (n - 1), (double)fresh / n, n,
	    OpenSSL_version(OPENSSL_VERSION));
	return 0;
}
