/* Session ticket keys: a ticket sealed under the current key opens, an
 * unknown key name means a full handshake, and a forked worker derives the
 * same key (so any worker opens any worker's tickets). */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "check.h"
#include "tls.h"

static int
call(unsigned char name[16], unsigned char iv[16], int enc)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *h = EVP_MAC_CTX_new(mac);
	int rv = tg_tickets_cb(NULL, name, iv, c, h, enc);

	EVP_MAC_CTX_free(h);
	EVP_MAC_free(mac);
	EVP_CIPHER_CTX_free(c);
	return rv;
}

int
main(void)
{
	unsigned char name[16], iv[16], other[16], again[16], child[16];
	int fd[2], st = 0;
	pid_t pid;

	CHECK(tg_tickets_ready() == 0, "keys made");
	CHECK(call(name, iv, 1) == 1, "a ticket is sealed");
	memcpy(again, name, sizeof(name));
	CHECK(call(again, iv, 0) == 1, "its key opens it");
	CHECK(call(again, iv, 1) == 1 && memcmp(again, name, 16) == 0, "the same key names the next ticket");
	RAND_bytes(other, sizeof(other));
	CHECK(call(other, iv, 0) == 0, "an unknown key name: a full handshake, not an error");

	CHECK(pipe(fd) == 0, "pipe");
	if ((pid = fork()) == 0) {
		unsigned char n[16], v[16];
		int ok = call(n, v, 1) == 1 && write(fd[1], n, 16) == 16;
		_exit(ok ? 0 : 1);
	}
	CHECK(read(fd[0], child, 16) == 16, "the worker's key name");
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the worker sealed a ticket");
	CHECK(memcmp(child, name, 16) == 0, "a forked worker uses the same key");
	return check_done("test_tickets");
}
