/* Session ticket keys: a ticket sealed under the current key opens, an
 * unknown key name means a full handshake, and a forked worker derives the
 * same key (so any worker opens any worker's tickets). In a cluster the
 * keys come from the store's file: two files alike give the same key name,
 * another file another name, and hours past the file's end are derived
 * alike by every node. */
#include <stdio.h>
#include <time.h>
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

	/* cluster mode: the keys of the file decide */
	{
		const char *path = "/tmp/tg-test-ticket-keys";
		long h = (long)(time(NULL) / TG_TICKET_PERIOD), fe;
		unsigned char k[3][32], a[32], b[32], fromfile[16];
		char text[400];
		size_t i, j, n;
		FILE *f;

		RAND_bytes((unsigned char *)k, sizeof(k));
		n = (size_t)snprintf(text, sizeof(text), "tlsgate-ticket-keys v2 %ld", h);
		for (i = 0; i < 3; i++) {
			n += (size_t)snprintf(text + n, sizeof(text) - n, " ");
			for (j = 0; j < 32; j++)
				n += (size_t)snprintf(text + n, sizeof(text) - n, "%02x", k[i][j]);
		}
		CHECK(tg_tickets_parse(text, &fe, k) == 0 && fe == h, "the file's text parses");
		CHECK(tg_tickets_parse("tlsgate-ticket-keys v2 5 00", &fe, k) < 0, "a cut file does not");
		CHECK((f = fopen(path, "w")) != NULL && fputs(text, f) >= 0 && fclose(f) == 0, "file");
		CHECK(tg_tickets_use_file(path) == 0, "cluster keys taken");
		CHECK(call(fromfile, iv, 1) == 1, "a ticket under the file's key");
		CHECK(memcmp(fromfile, name, 16) != 0, "the file's key is not the process's own");
		memcpy(again, fromfile, 16);
		CHECK(call(again, iv, 0) == 1, "and it opens");
		CHECK(call(name, iv, 0) == 0, "the process's own key is gone (full handshake)");
		CHECK(tg_tickets_key_of(h, (const unsigned char (*)[32])k, h + 3, a) == 0 &&
		    tg_tickets_key_of(h, (const unsigned char (*)[32])k, h + 3, b) == 0 &&
		    memcmp(a, b, 32) == 0 && memcmp(a, k[2], 32) != 0, "hours past the file: derived alike");
		CHECK(tg_tickets_key_of(h, (const unsigned char (*)[32])k, h - 2, a) < 0,
		    "no key before the file's first hour");
		CHECK(tg_tickets_key_of(h, (const unsigned char (*)[32])k, h + TG_TICKET_STEP_MAX, a) == 0 &&
		    tg_tickets_key_of(h, (const unsigned char (*)[32])k, h + TG_TICKET_STEP_MAX + 1, a) < 0,
		    "a file days old is not stepped on (the node's own ring serves)");
		unlink(path);
	}
	return check_done("test_tickets");
}
