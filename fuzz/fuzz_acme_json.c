/* The ACME server's JSON: the first byte picks the document (directory,
 * order, authorization, renewal information, problem), the rest is the
 * document. Parsed results must hold what the parsers promise. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_err err;
	struct tg_acme_dir d;
	struct tg_acme_order o;
	struct tg_acme_authz a;
	struct tg_acme_ari r;
	char words[300];
	const char *json = (const char *)data + 1;
	size_t i, n = size ? size - 1 : 0;

	if (size == 0)
		return 0;
	switch (data[0] % 5) {
	case 0:
		if (tg_acme_parse_directory(json, n, &d, &err) == 0 &&
		    (strncmp(d.new_nonce, "http", 4) || strncmp(d.new_order, "http", 4)))
			abort();
		break;
	case 1:
		if (tg_acme_parse_order(json, n, &o, &err) == 0) {
			for (i = 0; i < o.nauthz; i++)
				if (strncmp(o.authz[i], "http", 4) || strpbrk(o.authz[i], "\"\\ "))
					abort();
			tg_acme_order_clear(&o);
		}
		break;
	case 2:
		if (tg_acme_parse_authz(json, n, &a, &err) == 0) {
			if (a.nchall > sizeof(a.chall) / sizeof(a.chall[0]))
				abort();
			for (i = 0; i < a.nchall; i++)
				if (strspn(a.chall[i].token, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				    "0123456789-_") != strlen(a.chall[i].token))
					abort();
		}
		break;
	case 3:
		if (tg_acme_parse_ari(json, n, &r, &err) == 0 && r.end < r.start)
			abort();
		break;
	default:
		if (tg_acme_problem_words(json, n, words, sizeof(words)) == 0 &&
		    strlen(words) >= sizeof(words))
			abort();
		break;
	}
	return 0;
}
