/*
 * The trust table, row by row: every mode against an unknown identity, a
 * known identity with the same key, and one with another key, with and
 * without a valid chain.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "check.h"
#include "pins.h"
#include "pki.h"
#include "trust.h"

enum situation { UNKNOWN, SAME, OTHER };

static const struct {
	enum tg_trust_mode mode;
	enum situation sit;
	int chain_ok;
	int accept, record, warn;
} rows[] = {
	{ TG_TRUST_CA, UNKNOWN, 1, 1, 0, 0 },
	{ TG_TRUST_CA, UNKNOWN, 0, 0, 0, 0 },
	{ TG_TRUST_CA, OTHER, 1, 1, 0, 0 },
	{ TG_TRUST_CA, SAME, 0, 0, 0, 0 },
	{ TG_TRUST_TOFU, UNKNOWN, 0, 1, 1, 0 },
	{ TG_TRUST_TOFU, SAME, 0, 1, 0, 0 },
	{ TG_TRUST_TOFU, OTHER, 0, 0, 0, 0 },
	{ TG_TRUST_TOFU, OTHER, 1, 0, 0, 0 },
	{ TG_TRUST_WHITELIST, UNKNOWN, 1, 0, 0, 0 },
	{ TG_TRUST_WHITELIST, SAME, 0, 1, 0, 0 },
	{ TG_TRUST_WHITELIST, OTHER, 1, 0, 0, 0 },
	{ TG_TRUST_CA_OR_TOFU, UNKNOWN, 1, 1, 1, 0 },
	{ TG_TRUST_CA_OR_TOFU, UNKNOWN, 0, 1, 1, 0 },
	{ TG_TRUST_CA_OR_TOFU, SAME, 0, 1, 0, 0 },
	{ TG_TRUST_CA_OR_TOFU, OTHER, 1, 1, 1, 0 },
	{ TG_TRUST_CA_OR_TOFU, OTHER, 0, 0, 0, 0 },
	{ TG_TRUST_INSECURE_NO_VALIDATION, UNKNOWN, 0, 1, 1, 1 },
	{ TG_TRUST_INSECURE_NO_VALIDATION, SAME, 0, 1, 0, 0 },
	{ TG_TRUST_INSECURE_NO_VALIDATION, OTHER, 0, 1, 1, 1 },
};

int
main(void)
{
	char dir[] = "/tmp/tg-trust-XXXXXX", known[256], pin_other[64], cmd[300];
	struct tg_err err;
	EVP_PKEY *k1 = tg_key_generate(TG_KEY_EC_P256, &err), *k2 = tg_key_generate(TG_KEY_EC_P256, &err);
	X509 *leaf = tg_cert_build(TG_BUILD_SELF, "peer", "dns:peer", 30, k1, NULL, &err);
	X509 *other = tg_cert_build(TG_BUILD_SELF, "peer", "dns:peer", 30, k2, NULL, &err);
	size_t i;

	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	CHECK(leaf && other, "certificates");
	tg_spki_pin(other, pin_other, sizeof(pin_other));
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct tg_trust *t;
		struct tg_trust_verdict v;
		char pin[64];

		snprintf(known, sizeof(known), "%s/known-%zu", dir, i);
		tg_spki_pin(leaf, pin, sizeof(pin));
		if (rows[i].sit != UNKNOWN)
			CHECK(tg_known_record(NULL, NULL, known, "peer:443", rows[i].sit == SAME ? pin : pin_other,
			    NULL, 0, &err) == 0, "row %zu: record: %s", i, err.msg);
		t = tg_trust_new(rows[i].mode, known, "known-servers", NULL, 0, &err);
		CHECK(tg_trust_judge(t, leaf, "peer:443", rows[i].chain_ok, "chain words", &v, &err) == 0,
		    "row %zu: judge", i);
		CHECK(v.accept == rows[i].accept && v.record == rows[i].record && v.warn == rows[i].warn,
		    "row %zu (%s): accept %d record %d warn %d: %s", i, tg_trust_mode_name(rows[i].mode),
		    v.accept, v.record, v.warn, v.reason);
		if (rows[i].sit == OTHER && !v.accept)
			CHECK(strstr(v.reason, "HAS CHANGED") && strstr(v.reason, pin_other) &&
			    strstr(v.reason, "tlsgate trust remove --store known-servers peer:443"),
			    "row %zu: the mismatch message: %s", i, v.reason);
		if (v.record) {
			CHECK(tg_trust_record(t, &v, &err) == 0, "row %zu: record", i);
			CHECK(tg_trust_judge(t, leaf, "peer:443", 0, "", &v, &err) == 0 &&
			    (v.accept || rows[i].mode == TG_TRUST_CA), "row %zu: accepted once recorded", i);
		}
		tg_trust_free(t);
	}
	/* a list that changed and cannot be read fails closed: a pin removed
	 * by an edit that left a typo must not stay trusted */
	{
		struct tg_trust *t;
		struct tg_trust_verdict v;
		char pin[64];
		FILE *f;

		snprintf(known, sizeof(known), "%s/known-broken", dir);
		tg_spki_pin(leaf, pin, sizeof(pin));
		CHECK(tg_known_record(NULL, NULL, known, "peer:443", pin, NULL, 0, &err) == 0, "pinned");
		t = tg_trust_new(TG_TRUST_TOFU, known, "known-servers", NULL, 0, &err);
		CHECK(tg_trust_judge(t, leaf, "peer:443", 0, "", &v, &err) == 0 && v.accept, "known");
		CHECK((f = fopen(known, "w")) && fputs("peer:443 sha256:typo\n", f) >= 0 &&
		    fclose(f) == 0, "an edit with a typo");
		CHECK(tg_trust_judge(t, leaf, "peer:443", 0, "", &v, &err) < 0 &&
		    strstr(err.msg, "known-broken:1"), "refused, naming the line: %s", err.msg);
		CHECK((f = fopen(known, "w")) && fprintf(f, "peer:443 %s\n", pin) > 0 && fclose(f) == 0,
		    "fixed");
		CHECK(tg_trust_judge(t, leaf, "peer:443", 0, "", &v, &err) == 0 && v.accept,
		    "accepted again once it reads");
		tg_trust_free(t);
	}
	X509_free(leaf);
	X509_free(other);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	CHECK(system(cmd) == 0, "cleanup");
	/* the index: 100,000 identities, one with three pins (first line wins
	 * the message), lookups right at both ends */
	{
		const char *pa = "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
		const char *pb = "sha256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=";
		const char *pc = "sha256:CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC=";
		size_t cap = 100000 * 64, len = 0, line = 0;
		char *text = malloc(cap), exp[64];
		struct tg_known *k;

		CHECK(text != NULL, "memory");
		for (i = 0; i < 100000; i++)
			len += (size_t)snprintf(text + len, cap - len, "dev%zu %s\n", i, i % 2 ? pa : pb);
		len += (size_t)snprintf(text + len, cap - len, "dev7 %s # second\ndev7 %s\n", pc, pa);
		k = tg_known_parse(text, len, "big", &err);
		CHECK(k != NULL, "100,000 identities parse: %s", k ? "" : err.msg);
		CHECK(tg_known_lookup(k, "dev0", pb, NULL, NULL, 0) == TG_PIN_MATCH, "first identity");
		CHECK(tg_known_lookup(k, "dev99999", pa, NULL, NULL, 0) == TG_PIN_MATCH, "last identity");
		CHECK(tg_known_lookup(k, "dev99999", pb, &line, exp, sizeof(exp)) == TG_PIN_MISMATCH &&
		    line == 100000 && !strcmp(exp, pa), "a mismatch names the first pin's line");
		CHECK(tg_known_lookup(k, "dev100000", pa, NULL, NULL, 0) == TG_PIN_UNKNOWN, "unknown");
		CHECK(tg_known_lookup(k, "dev7", pc, NULL, NULL, 0) == TG_PIN_MATCH, "a second pin");
		CHECK(tg_known_lookup(k, "dev7", pb, &line, exp, sizeof(exp)) == TG_PIN_MISMATCH &&
		    line == 8 && !strcmp(exp, pa), "its first line is the one named");
		tg_known_free(k);
		free(text);
	}
	/* appends are read alone; a rewrite, a cut or a new PATH.pins is read
	 * whole; a half-written line waits for its newline */
	{
		const char *pa = "sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
		const char *pb = "sha256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=";
		char path[] = "/tmp/tg-known-tail-XXXXXX", jp[64], cmd2[128];
		struct tg_known_tail *tail = NULL;
		struct tg_known *k;
		struct stat sb0, sb1;
		FILE *f;
		int fd = mkstemp(path);

		CHECK(fd >= 0 && write(fd, "a1 ", 3) == 3 && write(fd, pa, 51) == 51 &&
		    write(fd, "\n", 1) == 1 && close(fd) == 0, "a known file");
		snprintf(jp, sizeof(jp), "%s.pins", path);
		k = tg_known_load(path, &err);
		CHECK(k && tg_known_count(k) == 1, "loaded");
		CHECK(tg_known_catch_up(k, path, &tail, &err) == TG_KNOWN_SAME, "unchanged");
		CHECK(stat(path, &sb0) == 0, "stat");
		CHECK(tg_known_append(path, "a2", pb, "first contact", &err) == 0, "appended");
		CHECK(stat(path, &sb1) == 0 && sb1.st_ino == sb0.st_ino, "in place, not rewritten");
		CHECK(tg_known_catch_up(k, path, &tail, &err) == TG_KNOWN_GREW && tail, "it grew");
		CHECK(tg_known_apply_tail(k, tail, path, &err) == 0 && tg_known_count(k) == 2 &&
		    tg_known_lookup(k, "a2", pb, NULL, NULL, 0) == TG_PIN_MATCH, "only the new line read");
		tg_known_tail_free(tail);
		tail = NULL;
		/* a line being written: not read until its newline comes */
		CHECK((f = fopen(path, "a")) && fputs("a3 sha256:BBBB", f) >= 0 && fclose(f) == 0, "half");
		CHECK(tg_known_catch_up(k, path, &tail, &err) == TG_KNOWN_GREW, "half a line");
		CHECK(tg_known_apply_tail(k, tail, path, &err) == 0 && tg_known_count(k) == 2,
		    "half a line waits");
		tg_known_tail_free(tail);
		tail = NULL;
		CHECK((f = fopen(path, "a")) && fputs("BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB=\n", f) >= 0 &&
		    fclose(f) == 0, "rest");
		CHECK(tg_known_catch_up(k, path, &tail, &err) == TG_KNOWN_GREW &&
		    tg_known_apply_tail(k, tail, path, &err) == 0 &&
		    tg_known_lookup(k, "a3", pb, NULL, NULL, 0) == TG_PIN_MATCH, "then it is read");
		tg_known_tail_free(tail);
		tail = NULL;
		/* the same pin twice (this node's own record, then the copy) is one */
		CHECK(tg_known_add(k, "a3", pb) == 0 && tg_known_count(k) == 3, "no duplicate");
		/* rewritten in place with other bytes, same length and longer */
		CHECK((f = fopen(path, "r+")) && fputs("b1", f) >= 0 && fseek(f, 0, SEEK_END) == 0 &&
		    fputs("a4 sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", f) >= 0 &&
		    fclose(f) == 0, "edited");
		CHECK(tg_known_catch_up(k, path, &tail, &err) == TG_KNOWN_RELOAD && tail == NULL,
		    "an edit in place is read whole");
		tg_known_free(k);
		k = tg_known_load(path, &err);
		CHECK(k && tg_known_lookup(k, "b1", pa, NULL, NULL, 0) == TG_PIN_MATCH, "reloaded");
		/* a cluster's pins appear: read whole, then followed */
		CHECK((f = fopen(jp, "w")) && fprintf(f, "c1 %s\n", pb) > 0 && fclose(f) == 0, "pins");
		CHECK(tg_known_catch_up(k, path, &tail, &err) == TG_KNOWN_RELOAD, "PATH.pins appeared");
		tg_known_free(k);
		k = tg_known_load(path, &err);
		CHECK(k && tg_known_lookup(k, "c1", pb, NULL, NULL, 0) == TG_PIN_MATCH &&
		    tg_known_in_journal(k, "c1") && !tg_known_in_journal(k, "b1"), "both read");
		CHECK((f = fopen(jp, "a")) && fprintf(f, "c2 %s\n", pa) > 0 && fclose(f) == 0, "pins");
		CHECK(tg_known_catch_up(k, path, &tail, &err) == TG_KNOWN_GREW &&
		    tg_known_apply_tail(k, tail, path, &err) == 0 &&
		    tg_known_lookup(k, "c2", pa, NULL, NULL, 0) == TG_PIN_MATCH, "PATH.pins followed");
		tg_known_tail_free(tail);
		tail = NULL;
		/* a bad appended line: refused, the list unchanged */
		CHECK((f = fopen(jp, "a")) && fputs("c3 notapin\n", f) >= 0 && fclose(f) == 0, "bad");
		CHECK(tg_known_catch_up(k, path, &tail, &err) == TG_KNOWN_GREW &&
		    tg_known_apply_tail(k, tail, path, &err) < 0 && strstr(err.msg, ".pins:3"),
		    "a bad line is named: %s", err.msg);
		tg_known_tail_free(tail);
		tg_known_free(k);
		snprintf(cmd2, sizeof(cmd2), "rm -f %s %s", path, jp);
		CHECK(system(cmd2) == 0, "cleanup");
	}
	return check_done("test_trust");
}
