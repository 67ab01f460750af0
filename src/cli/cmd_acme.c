/*
 * tlsgate acme issue|renew|show: one ACME order from the command line, the
 * challenge answered by tlsgate itself on --listen (or by the DNS hook),
 * and what the store holds.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/pem.h>

#include "acme.h"
#include "acme_agent.h"
#include "acme_answers.h"
#include "cli.h"
#include "config_int.h"
#include "error.h"
#include "ossl_words.h"
#include "pki.h"
#include "util.h"

static const char acme_usage[] =
"usage: tlsgate acme issue --name H[,H...] --out PREFIX [options]\n"
"       tlsgate acme renew --name H[,H...] --out PREFIX [options] [--force]\n"
"       tlsgate acme show\n"
"\n"
"issue orders a certificate from an ACME CA (Let's Encrypt by default) and writes\n"
"PREFIX.crt (leaf then chain) and PREFIX.key (mode 0600). tlsgate answers the\n"
"challenge itself on --listen; the account key stays in state_dir/acme.\n"
"renew does the same when PREFIX.crt is due (tls.acme.renew_before or a third of\n"
"its lifetime left, or the CA's renewal window), or at once with --force.\n"
"show lists the accounts and certificates in state_dir/acme.\n"
"  --name H[,H...]      DNS names or IP addresses (tls.acme.names)\n"
"  --out PREFIX         where the certificate and key go\n"
"  --directory URL      the CA's ACME directory (tls.acme.directory)\n"
"  --ca-cert FILE       extra trust for the CA's own HTTPS, for test CAs (tls.acme.ca_cert)\n"
"  --email E            account contact (tls.acme.email)\n"
"  --challenge C        http-01 (default), tls-alpn-01 or dns-01 (tls.acme.challenge)\n"
"  --profile P          the CA's certificate profile, one its directory lists\n"
"                       (tls.acme.profile; e.g. Let's Encrypt's tlsserver, shortlived)\n"
"  --listen ADDR        where the answer is served (default :80 for http-01, :443 for\n"
"                       tls-alpn-01)\n"
"  --dns-hook PROGRAM   dns-01: run as PROGRAM add|remove _acme-challenge.NAME VALUE\n"
"  --agree-terms        accept the CA's terms of service (tls.acme.agree_terms)\n"
"  --force              renew: order even when not due\n"
"  --verbose            each step of the order on stderr (the default on a terminal)\n"
"  --config, --set, --state-dir as everywhere\n";

static int verbose;

static void
progress(void *arg, const char *line)
{
	if (verbose)
		fprintf(stderr, "tlsgate: acme: %s\n", line);
}

static int
write_result(const char *prefix, const struct tg_acme_result *res, struct tg_err *err)
{
	char crt[PATH_MAX], key[PATH_MAX];

	snprintf(crt, sizeof(crt), "%s.crt", prefix);
	snprintf(key, sizeof(key), "%s.key", prefix);
	if (tg_write_atomic(key, res->key_pem, res->key_len, 1, err) < 0)
		return -1;
	return tg_write_atomic(crt, res->chain_pem, strlen(res->chain_pem), 0, err);
}

static void
summary(const char *prefix, const struct tg_acme_settings *s)
{
	char crt[PATH_MAX], date[64], sans[2048];
	STACK_OF(X509) *sk;
	struct tg_err err;
	int days = 0;

	snprintf(crt, sizeof(crt), "%s.crt", prefix);
	if ((sk = tg_certs_read(crt, &err)) == NULL)
		return;
	tg_cert_sans(sk_X509_value(sk, 0), sans, sizeof(sans));
	tg_asn1_date(X509_get0_notAfter(sk_X509_value(sk, 0)), date, sizeof(date));
	tg_cert_days_left(sk_X509_value(sk, 0), &days);
	printf("certificate: %s\n  names:   %s\n  expires: %s (%d days)\n  key:     %s.key "
	    "(0600)\n  from:    %s\n", crt, sans, date, days, prefix, s->directory);
	sk_X509_pop_free(sk, X509_free);
}

/* Is PREFIX.crt due? 1 due (why says so), 0 not, -1 no usable file. */
static int
is_due(const char *prefix, const struct tg_acme_settings *s, struct tg_acme_opts *o,
    char *id, size_t idlen, char *why, size_t whylen)
{
	char crt[PATH_MAX];
	STACK_OF(X509) *sk;
	struct tg_acme_ari ari;
	struct tg_err err;
	time_t when;
	int due, have_ari;

	snprintf(crt, sizeof(crt), "%s.crt", prefix);
	if ((sk = tg_certs_read(crt, &err)) == NULL) {
		if (snprintf(why, whylen, "%s", err.msg) >= (int)whylen && whylen > 4)
			memcpy(why + whylen - 4, "...", 4);   /* a message, cut visibly */
		return -1;
	}
	have_ari = tg_acme_fetch_ari(o, sk_X509_value(sk, 0), &ari, &err) == 0;
	due = tg_acme_due(sk_X509_value(sk, 0), s->renew_before_s, have_ari ? &ari : NULL,
	    time(NULL), &when, why, whylen);
	if (!have_ari || tg_acme_cert_id(sk_X509_value(sk, 0), id, idlen) < 0)
		id[0] = '\0';
	sk_X509_pop_free(sk, X509_free);
	return due;
}

static int
order(const struct tg_acme_settings *s, const char *listen, const char *prefix,
    const char *replaces)
{
	struct tg_answers *answers = NULL;
	struct tg_responder *resp = NULL;
	struct tg_acme_opts o;
	struct tg_acme_result res;
	struct tg_store *st = NULL;
	struct tg_err err;
	uint64_t t0 = tg_now_ms();
	int rv = 1;

	memset(&o, 0, sizeof(o));
	memset(&res, 0, sizeof(res));
	if (tg_mkdirs(s->state_dir, 0700, &err) < 0 || (st = tg_store_fs_open(s->state_dir, &err)) == NULL)
		goto out;
	if (s->challenge != TG_ACME_DNS01) {
		if ((answers = tg_answers_new()) == NULL ||
		    (resp = tg_responder_start(answers, listen, s->challenge == TG_ACME_TLSALPN01,
		    &err)) == NULL) {
			char m[sizeof(err.msg)];
			snprintf(m, sizeof(m), "%s", answers ? err.msg : "out of memory");
			tg_err_set(&err, TG_E_IO, "--listen %s: %s", listen, m);
			goto out;
		}
		if (verbose)
			fprintf(stderr, "tlsgate: acme: answering %s on %s\n",
		    tg_acme_challenge_name(s->challenge), listen);
		o.solver = tg_answers_solver(answers);
	}
	{
		struct tg_acme_solver sv = o.solver;
		tg_acme_settings_opts(s, &o);
		o.solver = sv;
	}
	o.replaces = replaces && replaces[0] ? replaces : NULL;
	o.progress = progress;
	if (tg_acme_obtain(st, &o, &res, &err) < 0 || write_result(prefix, &res, &err) < 0)
		goto out;
	if (verbose)
		fprintf(stderr, "tlsgate: acme: done in %.1f s\n", (double)(tg_now_ms() - t0) / 1000.0);
	summary(prefix, s);
	rv = 0;
out:
	if (rv)
		cli_fail_err(&err);
	tg_responder_stop(resp);
	tg_answers_free(answers);
	tg_acme_result_clear(&res);
	tg_store_free(st);
	return rv;
}

static int
show(const struct tg_acme_settings *s)
{
	struct tg_store *st;
	struct tg_err err;
	char **dirs, **certs, name[600];
	size_t i, j;
	int found = 0;

	if ((st = tg_store_fs_open(s->state_dir, &err)) == NULL)
		return cli_fail_err(&err);
	if ((dirs = tg_store_list(st, "acme", &err)) == NULL) {
		tg_store_free(st);
		return cli_fail_err(&err);
	}
	for (i = 0; dirs[i]; i++) {
		unsigned char *data = NULL;
		size_t len;
		json_t *doc;

		snprintf(name, sizeof(name), "acme/%s/account.json", dirs[i]);
		if (tg_store_get(st, name, &data, &len, &err) < 0)
			continue;
		found = 1;
		doc = json_loadb((const char *)data, len, 0, NULL);
		OPENSSL_free(data);
		printf("account %s\n  directory: %s\n",
		    json_string_value(json_object_get(doc, "url")) ?
		    json_string_value(json_object_get(doc, "url")) : "(unreadable)",
		    json_string_value(json_object_get(doc, "directory")) ?
		    json_string_value(json_object_get(doc, "directory")) : "(unreadable)");
		json_decref(doc);
		snprintf(name, sizeof(name), "acme/%s/certs", dirs[i]);
		if ((certs = tg_store_list(st, name, &err)) == NULL)
			continue;
		for (j = 0; certs[j]; j++) {
			char path[PATH_MAX], date[64], why[400], sans[1024];
			STACK_OF(X509) *sk;
			time_t when;
			int days = 0;

			if (strlen(certs[j]) < 5 || strcmp(certs[j] + strlen(certs[j]) - 4, ".crt"))
				continue;
			snprintf(path, sizeof(path), "%s/acme/%s/certs/%s", tg_store_path(st), dirs[i],
			    certs[j]);
			if ((sk = tg_certs_read(path, &err)) == NULL) {
				printf("  certificate %s: unreadable (%s); the server orders a new one\n",
				    path, err.msg);
				continue;
			}
			tg_cert_sans(sk_X509_value(sk, 0), sans, sizeof(sans));
			tg_asn1_date(X509_get0_notAfter(sk_X509_value(sk, 0)), date, sizeof(date));
			tg_cert_days_left(sk_X509_value(sk, 0), &days);
			tg_acme_due(sk_X509_value(sk, 0), s->renew_before_s, NULL, time(NULL), &when,
			    why, sizeof(why));
			printf("  certificate %s\n    names:   %s\n    expires: %s (%d days)\n"
			    "    renewal: %s\n", path, sans, date, days, why);
			sk_X509_pop_free(sk, X509_free);
		}
		for (j = 0; certs[j]; j++)
			free(certs[j]);
		free(certs);
	}
	for (i = 0; dirs[i]; i++)
		free(dirs[i]);
	free(dirs);
	tg_store_free(st);
	if (!found)
		printf("no ACME account in %s/acme yet\n", s->state_dir);
	return 0;
}

/* What `acme issue|renew|show` was given. */
struct acme_args {
	struct cli_cfg_flags f;
	const char *out, *listen;
	int force;
	char bufs[8][2048];          /* KEY=VALUE of the flags that set keys */
	int nb;
};

/* The flags after the subcommand. 0 to go on, 1 when --help was printed,
 * -1 when a bad flag was said. */
static int
parse_args(int argc, char **argv, const char *sub, struct acme_args *a)
{
	static const struct { const char *flag, *key; } map[] = {
		{ "--name", "tls.acme.names" }, { "--directory", "tls.acme.directory" },
		{ "--ca-cert", "tls.acme.ca_cert" }, { "--email", "tls.acme.email" },
		{ "--challenge", "tls.acme.challenge" }, { "--dns-hook", "tls.acme.dns_hook" },
		{ "--profile", "tls.acme.profile" },
	};
	const char *v;
	int i, r, missing = 0;
	size_t k;

	for (i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(acme_usage, stdout);
			return 1;
		}
		if ((v = cli_flag(argc, argv, &i, "--out", &missing)) != NULL) {
			a->out = v;
			continue;
		}
		if ((v = cli_flag(argc, argv, &i, "--listen", &missing)) != NULL) {
			a->listen = v;
			continue;
		}
		if (!strcmp(argv[i], "--force")) {
			a->force = 1;
			continue;
		}
		if (!strcmp(argv[i], "--verbose") || !strcmp(argv[i], "-v")) {
			verbose = 1;
			continue;
		}
		for (k = 0; k < sizeof(map) / sizeof(map[0]) && !missing; k++) {
			if ((v = cli_flag(argc, argv, &i, map[k].flag, &missing)) == NULL)
				continue;
			if (a->nb == 8 || a->f.nsets >= 64)
				return cli_fail("acme: too many flags"), -1;
			snprintf(a->bufs[a->nb], sizeof(a->bufs[0]), "%s=%s", map[k].key, v);
			a->f.sets[a->f.nsets] = a->bufs[a->nb++];
			a->f.origins[a->f.nsets++] = map[k].flag;
			break;
		}
		if (missing)
			return cli_fail("acme: %s needs a value", argv[i]), -1;
		if (k < sizeof(map) / sizeof(map[0]))
			continue;
		if ((r = cli_cfg_flag(&a->f, argc, argv, &i)) < 0)
			return -1;
		if (r == 0)
			return cli_fail("acme %s: unknown argument %s; see `tlsgate acme --help`", sub,
			    argv[i]), -1;
	}
	return 0;
}

/* `acme renew`: an order only when the certificate is due (or --force),
 * replacing it by its ARI id when the CA speaks ARI. */
static int
renew(const struct tg_acme_settings *s, const char *listen, const char *out, int force)
{
	struct tg_acme_opts o;
	char why[400], id[300];
	int due;

	tg_acme_settings_opts(s, &o);
	due = is_due(out, s, &o, id, sizeof(id), why, sizeof(why));
	if (due == 0 && !force) {
		printf("%s.crt: %s; nothing to do (--force renews now)\n", out, why);
		return 0;
	}
	if (verbose)
		fprintf(stderr, "tlsgate: acme: %s.crt: %s\n", out, force ?
		    "renewing now (--force)" : why);
	return order(s, listen, out, due >= 0 ? id : NULL);
}

int
cmd_acme(int argc, char **argv)
{
	static struct acme_args a;   /* its strings outlive the configuration */
	struct tg_acme_settings s;
	struct tg_config *cfg;
	struct tg_err err;
	char listen[2048];
	const char *sub;
	int r;

	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(acme_usage, argc < 2 ? stderr : stdout);
		return argc < 2;
	}
	sub = argv[1];
	if (strcmp(sub, "issue") && strcmp(sub, "renew") && strcmp(sub, "show"))
		return cli_fail("acme: unknown command %s; see `tlsgate acme --help`", sub);
	memset(&a, 0, sizeof(a));
	verbose = isatty(2);   /* each step on a terminal; --verbose elsewhere */
	if ((r = parse_args(argc, argv, sub, &a)) != 0)
		return r < 0;
	if ((cfg = cli_load_config(&a.f, &err)) == NULL)
		return cli_fail_err(&err);
	if (!strcmp(sub, "show")) {
		/* show needs no names: borrow one so the settings load */
		if (tg_cfg_list(cfg, TG_CFG_TLS_ACME_NAMES, NULL) == 0 &&
		    tg_cfg_list(cfg, TG_CFG_TLS_NAMES, NULL) == 0)
			tg_config_set(cfg, "tls.acme.names", "-", "acme show", &err);
		r = tg_acme_settings_from(cfg, &s, &err) < 0 ? cli_fail_err(&err) : show(&s);
		tg_config_free(cfg);
		return r;
	}
	if (a.out == NULL)
		r = cli_fail("acme %s: --out PREFIX is needed (writes PREFIX.crt and PREFIX.key)",
		    sub);
	else if (tg_cfg_list(cfg, TG_CFG_TLS_ACME_NAMES, NULL) == 0)
		r = cli_fail("acme %s: --name is needed (the names to order)", sub);
	else if (tg_acme_settings_from(cfg, &s, &err) < 0)
		r = cli_fail_err(&err);
	else
		r = 0;
	if (r == 0)
		snprintf(listen, sizeof(listen), "%s", a.listen ? a.listen :
		    s.challenge == TG_ACME_TLSALPN01 ? ":443" :
		    tg_cfg_str(cfg, TG_CFG_TLS_ACME_HTTP_LISTEN));
	tg_config_free(cfg);
	if (r != 0)
		return r;
	if (s.challenge == TG_ACME_DNS01 && !s.dns_hook[0])
		return cli_fail("acme %s: dns-01 needs --dns-hook PROGRAM", sub);
	if (!strcmp(sub, "renew"))
		return renew(&s, listen, a.out, a.force);
	return order(&s, listen, a.out, NULL);
}
