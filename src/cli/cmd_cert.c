/*
 * tlsgate cert issue|csr|sign|show|check: the PKI toolkit on the command
 * line. show and check take a file or a live HOST:PORT.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "cli.h"
#include "error.h"
#include "client.h"
#include "ossl_words.h"
#include "pki.h"
#include "store.h"
#include "util.h"

static const char cert_usage[] =
"usage: tlsgate cert issue (--server|--client) [--name CN] [--san LIST] [--ca DIR]\n"
"                          --out PREFIX [--days N] [--key TYPE] [--no-cn]\n"
"       tlsgate cert csr   (--key FILE | --new-key TYPE) [--name CN]\n"
"                          [--san LIST] --out FILE.csr\n"
"       tlsgate cert sign  (--server|--client) --csr FILE [--ca DIR] --out FILE.crt [--days N]\n"
"       tlsgate cert show  FILE | HOST:PORT [client flags]\n"
"       tlsgate cert check FILE | HOST:PORT [--days N] [client flags]\n"
"       tlsgate cert revoke FILE | SERIAL [--ca DIR] [--reason REASON]\n"
"\n"
"  --san LIST   dns:NAME,ip:ADDR,uri:URI,email:ADDR (bare names are DNS or IP)\n"
"  --ca DIR     CA folder with ca.crt and ca.key (default: state_dir/ca)\n"
"  --out PREFIX writes PREFIX.crt (leaf, then CA) and PREFIX.key (mode 0600)\n"
"  --key TYPE   ec-p256 (default), ec-p384, rsa-2048, rsa-3072, ed25519\n"
"  --new-key TYPE  csr: make a new key of TYPE, written beside the CSR (X.csr -> X.key)\n"
"  --days N     validity (default 397); for check: days that must remain (default 30)\n"
"  --no-cn      issue: no CN in the subject, the SANs name it (an etcd client\n"
"               certificate when etcd auth is on: its JSON gateway refuses CNs)\n"
"client flags: --ca-cert FILE|DIR --server-name NAME --cert FILE --key FILE\n"
"revoke: the CA that issued it lists it in its CRL (DIR/crl.pem and crl.der,\n"
"signed again at once); REASON: unspecified (default), keyCompromise,\n"
"affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn.\n"
"It reads --config FILE, --set KEY=VALUE, --state-dir DIR: with store.backend\n"
"etcd, a revocation by the cluster's CA (state_dir/ca) reaches every node.\n"
"check exits 0 when the certificate is valid (and, for HOST:PORT, trusted) for at\n"
"least N more days, 1 otherwise: for cron and monitoring.\n";

struct cert_args {
	struct tg_cert_req req;
	int have_kind;
	const char *ca, *out, *csr, *key, *new_key, *target;
	int check_days;
	struct cli_client client;
};

static int
bad_key_type(const char *v)
{
	cli_fail("'%s' is not a key type; use ec-p256, ec-p384, rsa-2048, rsa-3072 or ed25519", v);
	return -1;
}

static int
parse_args(int argc, char **argv, struct cert_args *a, int client_flags)
{
	const char *v;
	int i, missing = 0, r;

	for (i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(cert_usage, stdout);
			exit(0);
		}
		if (client_flags && (r = cli_client_flag(&a->client, argc, argv, &i)) != 0) {
			if (r < 0)
				return -1;
			continue;
		}
		if (!strcmp(argv[i], "--server")) {
			a->req.kind = TG_CERT_SERVER, a->have_kind = 1;
		} else if (!strcmp(argv[i], "--no-cn")) {
			a->req.no_cn = 1;
		} else if (!strcmp(argv[i], "--client")) {
			a->req.kind = TG_CERT_CLIENT, a->have_kind = 1;
		} else if ((v = cli_flag(argc, argv, &i, "--name", &missing))) {
			a->req.name = v;
		} else if ((v = cli_flag(argc, argv, &i, "--san", &missing))) {
			a->req.sans = v;
		} else if ((v = cli_flag(argc, argv, &i, "--ca", &missing))) {
			a->ca = v;
		} else if ((v = cli_flag(argc, argv, &i, "--out", &missing))) {
			a->out = v;
		} else if ((v = cli_flag(argc, argv, &i, "--csr", &missing))) {
			a->csr = v;
		} else if ((v = cli_flag(argc, argv, &i, "--new-key", &missing))) {
			a->new_key = v;
		} else if ((v = cli_flag(argc, argv, &i, "--new-key", &missing))) {
			if (tg_key_type_parse(v, &a->req.key_type) < 0)
				return bad_key_type(v);
			a->new_key = v;
		} else if ((v = cli_flag(argc, argv, &i, "--key", &missing))) {
			if (!strcmp(argv[1], "csr"))
				a->key = v;
			else if (tg_key_type_parse(v, &a->req.key_type) < 0)
				return bad_key_type(v);
		} else if ((v = cli_flag(argc, argv, &i, "--days", &missing))) {
			char *end;
			long d = strtol(v, &end, 10);
			if (*end || d <= 0 || d > 36500)
				return cli_fail("--days %s: give a number of days from 1 to 36500", v), -1;
			a->req.days = (int)d;
			a->check_days = (int)d;
		} else if (missing) {
			return cli_fail("%s needs a value", argv[i]), -1;
		} else if (argv[i][0] != '-' && a->target == NULL) {
			a->target = argv[i];
		} else {
			return cli_fail("cert %s: unknown argument %s; see `tlsgate cert --help`",
			    argv[1], argv[i]), -1;
		}
	}
	return 0;
}

static const char *
ca_dir(struct cert_args *a, char *buf, size_t len)
{
	if (a->ca)
		return a->ca;
	return cli_default_ca_dir(buf, len) < 0 ? NULL : buf;
}

static int
cert_issue(struct cert_args *a)
{
	char dbuf[PATH_MAX];
	const char *dir;
	struct tg_err err;

	if (!a->have_kind)
		return cli_fail("cert issue: say --server or --client");
	if (a->out == NULL)
		return cli_fail("cert issue: --out PREFIX is required (writes PREFIX.crt and PREFIX.key)");
	if ((dir = ca_dir(a, dbuf, sizeof(dbuf))) == NULL)
		return 1;
	if (tg_cert_issue(dir, &a->req, a->out, &err) < 0)
		return cli_fail_err(&err);
	printf("issued %s certificate: %s.crt (with the CA), key %s.key (mode 0600)\n",
	    a->req.kind == TG_CERT_SERVER ? "server" : "client", a->out, a->out);
	return 0;
}

static int
cert_csr(struct cert_args *a)
{
	struct tg_err err;
	char keyp[PATH_MAX];
	size_t n;

	if ((a->key == NULL) == (a->new_key == NULL))
		return cli_fail("cert csr: give --key FILE (an existing key) or --new-key TYPE");
	if (a->out == NULL)
		return cli_fail("cert csr: --out FILE.csr is required");
	if (a->new_key) {
		/* the new key goes beside the CSR: node.csr -> node.key */
		n = strlen(a->out);
		if (n > 4 && !strcmp(a->out + n - 4, ".csr"))
			n -= 4;
		snprintf(keyp, sizeof(keyp), "%.*s.key", (int)n, a->out);
	}
	if (tg_cert_csr(a->key ? a->key : keyp, a->new_key != NULL, &a->req, a->out, &err) < 0)
		return cli_fail_err(&err);
	printf("wrote %s%s%s\n", a->out, a->new_key ? " and its new key " : "",
	    a->new_key ? keyp : "");
	return 0;
}

static int
cert_sign(struct cert_args *a)
{
	char dbuf[PATH_MAX];
	const char *dir;
	struct tg_err err;

	if (!a->have_kind)
		return cli_fail("cert sign: say --server or --client");
	if (a->csr == NULL || a->out == NULL)
		return cli_fail("cert sign: --csr FILE and --out FILE.crt are required");
	if ((dir = ca_dir(a, dbuf, sizeof(dbuf))) == NULL)
		return 1;
	if (tg_cert_sign(dir, a->csr, &a->req, a->out, &err) < 0)
		return cli_fail_err(&err);
	printf("signed %s: %s\n", a->csr, a->out);
	return 0;
}

static void
print_eku(X509 *x)
{
	uint32_t xku = X509_get_extended_key_usage(x);
	int bc = X509_check_ca(x);

	printf("  usage:   %s%s%s%s\n", bc ? "CA " : "",
	    (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) == 0 ? "any" : "",
	    (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) && (xku & XKU_SSL_SERVER) ? "serverAuth " : "",
	    (X509_get_extension_flags(x) & EXFLAG_XKUSAGE) && (xku & XKU_SSL_CLIENT) ? "clientAuth" : "");
}

static void
print_cert(X509 *x, int idx, int n)
{
	char line[1024], a[64], b[64], pin[80], key[64];
	EVP_PKEY *pk = X509_get0_pubkey(x);
	int days = 0;
	ASN1_INTEGER *ser = X509_get_serialNumber(x);
	BIGNUM *bn = ASN1_INTEGER_to_BN(ser, NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;

	printf("certificate %d of %d%s\n", idx + 1, n, idx == 0 ? " (leaf)" : "");
	tg_x509_name_line(X509_get_subject_name(x), line, sizeof(line));
	printf("  subject: %s\n", line);
	tg_cert_sans(x, line, sizeof(line));
	printf("  names:   %s\n", line[0] ? line : "(no SANs)");
	tg_x509_name_line(X509_get_issuer_name(x), line, sizeof(line));
	printf("  issuer:  %s\n", line);
	tg_asn1_date(X509_get0_notBefore(x), a, sizeof(a));
	tg_asn1_date(X509_get0_notAfter(x), b, sizeof(b));
	tg_cert_days_left(x, &days);
	printf("  valid:   %s to %s (%s%d days %s)\n", a, b, days < 0 ? "expired " : "",
	    days < 0 ? -days : days, days < 0 ? "ago" : "left");
	if (pk)
		tg_key_describe(pk, key, sizeof(key));
	printf("  key:     %s\n", pk ? key : "?");
	print_eku(x);
	if (tg_spki_pin(x, pin, sizeof(pin)) == 0)
		printf("  pin:     %s\n", pin);
	printf("  serial:  %s\n", hex ? hex : "?");
	OPENSSL_free(hex);
	BN_free(bn);
}

/* Verifies a chain read from a file against the client trust settings. */
static int
file_verdict(STACK_OF(X509) *sk, const struct tg_client_opts *o, char *buf, size_t len)
{
	X509_STORE *st = NULL;
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	STACK_OF(X509) *rest = sk_X509_dup(sk);
	X509 *leaf = sk_X509_value(sk, 0);
	struct tg_err err;
	struct stat sb;
	int ok = 0;

	if (o->ca && o->ca[0])
		st = tg_trust_store_load(o->ca, NULL, &err);
	else if ((st = X509_STORE_new()) != NULL) {
		X509_STORE_set_default_paths(st);
		if (o->local_ca && stat(o->local_ca, &sb) == 0)
			tg_trust_store_add(st, o->local_ca, NULL, &err);
	}
	if (st == NULL || xs == NULL || rest == NULL) {
		snprintf(buf, len, "cannot check the chain: %s", st ? "out of memory" : err.msg);
		goto out;
	}
	(void)sk_X509_shift(rest);
	if (X509_STORE_CTX_init(xs, st, leaf, rest) == 1) {
		ok = X509_verify_cert(xs) == 1;
		tg_verify_words(ok ? X509_V_OK : X509_STORE_CTX_get_error(xs),
		    ok ? leaf : X509_STORE_CTX_get_current_cert(xs), NULL, buf, len);
		if (ok)
			snprintf(buf + strlen(buf), len - strlen(buf), " and chains to a trusted CA");
	}
out:
	sk_X509_free(rest);
	X509_STORE_CTX_free(xs);
	X509_STORE_free(st);
	return ok;
}

static int
is_live_target(const char *t, char *host, size_t hl, int *port)
{
	struct stat sb;
	return stat(t, &sb) != 0 && tg_parse_hostport(t, host, hl, port) == 0 && host[0];
}

static int
cert_show_check(struct cert_args *a, int check)
{
	struct tg_client_opts o;
	struct tg_client *c = NULL;
	STACK_OF(X509) *sk = NULL, *owned = NULL;
	struct tg_err err;
	char host[256], verdict[800];
	int port, trusted = 0, i, rc = 1, days = 0, want = a->check_days ? a->check_days : 30;

	if (a->target == NULL)
		return cli_fail("cert %s: name a certificate file or HOST:PORT", check ? "check" : "show");
	if (cli_client_opts(&a->client, &o, &err) < 0)
		return cli_fail_err(&err);
	if (is_live_target(a->target, host, sizeof(host), &port)) {
		if (tg_client_dial(host, port, 1, &o, a->client.store, 0, &c, &err) < 0)
			goto fail;
		sk = tg_client_chain(c);
		snprintf(verdict, sizeof(verdict), "%s", tg_client_verdict(c, &trusted));
	} else {
		owned = sk = tg_certs_read(a->target, &err);
		if (sk == NULL)
			goto fail;
		trusted = file_verdict(sk, &o, verdict, sizeof(verdict));
	}
	if (sk == NULL || sk_X509_num(sk) == 0) {
		tg_err_set(&err, 0, "%s: no certificate", a->target);
		goto fail;
	}
	if (!check) {
		if (c)
			printf("connection: %s\n", tg_client_protocol(c));
		for (i = 0; i < sk_X509_num(sk); i++)
			print_cert(sk_X509_value(sk, i), i, sk_X509_num(sk));
		printf("verdict: %s%s\n", trusted ? "trusted: " : "NOT TRUSTED: ", verdict);
		rc = 0;
		goto out;
	}
	{
		X509 *leaf = sk_X509_value(sk, 0);
		char label[256], date[64];
		tg_cert_label(leaf, label, sizeof(label));
		tg_asn1_date(X509_get0_notAfter(leaf), date, sizeof(date));
		tg_cert_days_left(leaf, &days);
		if (c && !trusted)
			printf("FAIL %s: %s\n", a->target, verdict);
		else if (X509_cmp_current_time(X509_get0_notBefore(leaf)) > 0)
			printf("FAIL %s: certificate for %s is not valid yet\n", a->target, label);
		else if (days < 0 || X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0)
			printf("FAIL %s: certificate for %s expired on %s\n", a->target, label, date);
		else if (days < want)
			printf("FAIL %s: certificate for %s expires on %s, in %d days (fewer than %d)\n",
			    a->target, label, date, days, want);
		else {
			printf("OK %s: certificate for %s expires on %s, in %d days\n", a->target,
			    label, date, days);
			rc = 0;
		}
	}
	goto out;
fail:
	rc = cli_fail_err(&err);
out:
	sk_X509_pop_free(owned, X509_free);
	tg_client_close(c);
	return rc;
}

/* tlsgate cert revoke FILE|SERIAL [--ca DIR] [--reason R] */
static int
cert_revoke(int argc, char **argv)
{
	const char *what = NULL, *ca = NULL, *v;
	char dbuf[PATH_MAX], serial[130];
	struct cli_cfg_flags f;
	struct tg_store_conf *sc = NULL;
	struct tg_err err;
	int i, r, rc, missing = 0, reason = 0, count = 0;

	memset(&f, 0, sizeof(f));

	for (i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(cert_usage, stdout);
			return 0;
		} else if ((v = cli_flag(argc, argv, &i, "--ca", &missing))) {
			ca = v;
		} else if ((v = cli_flag(argc, argv, &i, "--reason", &missing))) {
			if ((reason = tg_crl_reason_code(v)) < 0)
				return cli_fail("--reason %s: use unspecified, keyCompromise, "
				    "affiliationChanged, superseded, cessationOfOperation or "
				    "privilegeWithdrawn", v);
		} else if (!missing && (r = cli_store_flag(&f, argc, argv, &i)) != 0) {
			if (r < 0)
				return 1;
		} else if (missing || argv[i][0] == '-' || what) {
			return cli_fail(missing ? "%s needs a value" : "cert revoke: unexpected %s; "
			    "see `tlsgate cert --help`", argv[i]);
		} else {
			what = argv[i];
		}
	}
	if (what == NULL)
		return cli_fail("cert revoke: name the certificate file or its serial number");
	if (cli_ca_where(&f, ca, dbuf, sizeof(dbuf), &sc) < 0)
		return 1;
	ca = dbuf;
	rc = tg_ca_revoke(ca, sc, what, reason, 0, serial, sizeof(serial), &count, &err);
	free(sc);
	if (rc < 0)
		return cli_fail_err(&err);
	printf("revoked serial %s (%s)\n  CRL: %s/crl.pem and %s/crl.der, %d revoked, valid %d "
	    "days (signed again by `tlsgate ca crl` or a serving node before then)\n", serial,
	    tg_crl_reason_words(reason), ca, ca, count, TG_CRL_DAYS);
	return 0;
}

int
cmd_cert(int argc, char **argv)
{
	struct cert_args a;

	memset(&a, 0, sizeof(a));
	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(cert_usage, argc < 2 ? stderr : stdout);
		return argc < 2;
	}
	if (!strcmp(argv[1], "revoke"))
		return cert_revoke(argc, argv);
	if (parse_args(argc, argv, &a, !strcmp(argv[1], "show") || !strcmp(argv[1], "check")) < 0)
		return 1;
	if (!strcmp(argv[1], "issue"))
		return cert_issue(&a);
	if (!strcmp(argv[1], "csr"))
		return cert_csr(&a);
	if (!strcmp(argv[1], "sign"))
		return cert_sign(&a);
	if (!strcmp(argv[1], "show"))
		return cert_show_check(&a, 0);
	if (!strcmp(argv[1], "check"))
		return cert_show_check(&a, 1);
	return cli_fail("cert %s: unknown subcommand; see `tlsgate cert --help`", argv[1]);
}
