/*
 * tlsgate doctor: checks a configuration before it is used and says, one
 * line a finding, what is wrong and how to fix it. Exit 0 when nothing is
 * wrong, 1 otherwise.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "certs.h"
#include "acme.h"
#include "acme_agent.h"
#include "cli.h"
#include "config_int.h"
#include "error.h"
#include "ossl_words.h"
#include "pki.h"
#include "store.h"
#include "tls.h"
#include "util.h"

static const char doctor_usage[] =
"usage: tlsgate doctor [--config FILE] [--set KEY=VALUE]... [serve flags]\n"
"Checks the configuration serve would use: certificate and key (match, chain\n"
"order and completeness, names, expiry, file permissions), ports that need\n"
"privileges, client CAs in mutual mode, insecure trust modes, ACME. One line\n"
"a finding; exit 0 when nothing is wrong.\n";

static int problems;

static void
problem(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
problem(const char *fmt, ...)
{
	va_list ap;

	problems++;
	fputs("problem: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void
ok(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
ok(const char *fmt, ...)
{
	va_list ap;

	fputs("ok: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static void
check_key_file(const char *what, const char *path)
{
	struct stat sb;

	if (stat(path, &sb) < 0) {
		problem("%s %s: cannot read it (%s)", what, path, strerror(errno));
		return;
	}
	if (sb.st_mode & 077)
		problem("%s %s: mode %03o lets other users read the private key; fix: chmod 600 %s",
		    what, path, (unsigned)(sb.st_mode & 0777), path);
}

/* Chain order, completeness and trust, names, expiry. */
static void
check_chain(const struct tg_config *cfg, STACK_OF(X509) *sk, const char *path)
{
	X509 *leaf = sk_X509_value(sk, 0);
	X509_STORE *st = X509_STORE_new();
	X509_STORE_CTX *xs = X509_STORE_CTX_new();
	STACK_OF(X509) *rest = sk_X509_dup(sk);
	const char *const *names;
	char label[256], date[64], sub[300], iss[300], local_ca[PATH_MAX], sd[PATH_MAX];
	size_t n = tg_cfg_list(cfg, TG_CFG_TLS_NAMES, &names), i;
	int days, in_order = 1;
	struct tg_err err;

	tg_cert_label(leaf, label, sizeof(label));
	for (i = 0; i + 1 < (size_t)sk_X509_num(sk); i++) {
		if (X509_check_issued(sk_X509_value(sk, (int)i + 1), sk_X509_value(sk, (int)i)) != X509_V_OK) {
			tg_x509_name_line(X509_get_subject_name(sk_X509_value(sk, (int)i + 1)), sub, sizeof(sub));
			problem("tls.cert %s: out of order: certificate %zu (%s) did not issue certificate "
			    "%zu; fix: leaf first, then each issuer in turn", path, i + 2, sub, i + 1);
			in_order = 0;
			break;
		}
	}
	/* complete: the file plus the system roots and the local CA reach a root */
	if (tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR)) < 0 ||
	    tg_path_fmt(local_ca, sizeof(local_ca), NULL, "%s/ca/ca.crt", sd) < 0)
		local_ca[0] = '\0';   /* state_dir too long: said by its own check */
	if (st && xs && rest) {
		X509_STORE_set_default_paths(st);
		if (access(local_ca, R_OK) == 0)
			tg_trust_store_add(st, local_ca, NULL, &err);
		(void)sk_X509_shift(rest);
		if (X509_STORE_CTX_init(xs, st, leaf, rest) == 1 && X509_verify_cert(xs) != 1) {
			int e = X509_STORE_CTX_get_error(xs);
			X509 *at = X509_STORE_CTX_get_current_cert(xs);
			if (at == NULL)
				at = leaf;
			tg_x509_name_line(X509_get_issuer_name(at), iss, sizeof(iss));
			if (e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY ||
			    e == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT)
				problem("tls.cert %s: chain incomplete: the issuer \"%s\" is neither in the file "
				    "nor a trusted root; fix: append the intermediate CA certificate(s)", path, iss);
			else if (e != X509_V_ERR_CERT_HAS_EXPIRED && in_order) {
				char words[600];
				tg_verify_words(e, at, NULL, words, sizeof(words));
				problem("tls.cert %s: clients will not trust it: %s (fine for clients given "
				    "your CA with --cacert)", path, words);
			}
		} else {
			ok("tls.cert %s: the chain is complete and in order", path);
		}
	}
	ERR_clear_error();
	/* names */
	{
		GENERAL_NAMES *g = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
		if (g == NULL)
			problem("tls.cert %s: no subjectAltName: clients ignore the CN and will refuse it; "
			    "fix: reissue with --san", path);
		GENERAL_NAMES_free(g);
	}
	for (i = 0; i < n; i++) {
		const char *nm = names[i];
		int hit;
		if (!strncmp(nm, "dns:", 4) || !strncmp(nm, "ip:", 3))
			nm = strchr(nm, ':') + 1;
		hit = X509_check_host(leaf, nm, 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL) == 1 ||
		    X509_check_ip_asc(leaf, nm, 0) == 1;
		if (!hit) {
			char sans[512];
			tg_cert_sans(leaf, sans, sizeof(sans));
			problem("tls.names has %s, but the certificate names only %s; fix: reissue with "
			    "--san dns:%s (or drop it from tls.names)", nm, sans[0] ? sans : "nothing", nm);
		}
	}
	/* dates */
	tg_asn1_date(X509_get0_notAfter(leaf), date, sizeof(date));
	if (tg_cert_days_left(leaf, &days) == 0) {
		if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0)
			problem("tls.cert %s: certificate for %s expired on %s; fix: renew it", path, label, date);
		else if (days < 30)
			problem("tls.cert %s: certificate for %s expires on %s, in %d days; fix: renew it soon",
			    path, label, date, days);
		else
			ok("certificate for %s is valid until %s (%d days)", label, date, days);
	}
	sk_X509_free(rest);
	X509_STORE_CTX_free(xs);
	X509_STORE_free(st);
}

static void
check_files_pair(const struct tg_config *cfg)
{
	char crt[PATH_MAX], key[PATH_MAX];
	STACK_OF(X509) *sk;
	EVP_PKEY *pk = NULL;
	struct tg_err err;

	tg_cfg_path(cfg, TG_CFG_TLS_CERT, crt, sizeof(crt));
	tg_cfg_path(cfg, TG_CFG_TLS_KEY, key, sizeof(key));
	if ((sk = tg_certs_read(crt, &err)) == NULL) {
		problem("tls.cert (%s): %s", tg_config_origin(cfg, "tls.cert"), err.msg);
		return;
	}
	check_key_file("tls.key", key);
	tg_pki_allow_insecure_key_permissions(1);   /* reported above; still check the match */
	if ((pk = tg_key_read(key, &err)) == NULL) {
		problem("tls.key (%s): %s", tg_config_origin(cfg, "tls.key"), err.msg);
	} else {
		int i, at = -1;
		for (i = 0; i < sk_X509_num(sk) && at < 0; i++)
			if (X509_check_private_key(sk_X509_value(sk, i), pk) == 1)
				at = i;
		ERR_clear_error();
		if (at < 0) {
			problem("tls.key %s does not match tls.cert %s: the key belongs to another "
			    "certificate; fix: point tls.key at the key the certificate was issued for",
			    key, crt);
		} else if (at > 0) {
			problem("tls.cert %s: out of order: the key's certificate is number %d in the "
			    "file; fix: leaf first, then each issuer in turn", crt, at + 1);
			EVP_PKEY_free(pk);
			sk_X509_pop_free(sk, X509_free);
			return;
		} else {
			ok("tls.key matches tls.cert");
		}
	}
	ERR_clear_error();
	EVP_PKEY_free(pk);
	check_chain(cfg, sk, crt);
	sk_X509_pop_free(sk, X509_free);
}

static void
check_port(const char *key, const char *addr)
{
	char host[256];
	int port;
	FILE *f;
	char line[256];
	unsigned long long cap = 0;

	if (!strcmp(addr, "off") || tg_parse_hostport(addr, host, sizeof(host), &port) < 0 || port >= 1024 ||
	    port == 0 || geteuid() == 0)
		return;
	if ((f = fopen("/proc/self/status", "r")) != NULL) {
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "CapEff:", 7))
				cap = strtoull(line + 7, NULL, 16);
		fclose(f);
	}
	if (cap & (1ULL << 10))   /* CAP_NET_BIND_SERVICE */
		return;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	self[n > 0 ? n : 0] = '\0';
	problem("%s %s: ports below 1024 need root or CAP_NET_BIND_SERVICE; fix: sudo setcap "
	    "cap_net_bind_service=+ep %s (or run it as the systemd unit)", key, addr, self[0] ? self : "tlsgate");
}

/* ACME: the directory answers, its terms are accepted, HTTP-01's port can
 * be bound. */
/* tls.acme.renew_before against the lifetime of the certificate the CA
 * last issued: not shorter than it means a renewal at every check. */
static void
check_renew_before(const struct tg_config *cfg)
{
	struct tg_acme_settings *set = calloc(1, sizeof(*set));
	char crt[600], key[600], path[PATH_MAX];
	STACK_OF(X509) *sk = NULL;
	struct tg_err err;
	int64_t life;

	if (set == NULL || tg_acme_settings_from(cfg, set, &err) < 0 || set->renew_before_s <= 0)
		goto out;
	tg_acme_settings_files(set, crt, sizeof(crt), key, sizeof(key));
	if (snprintf(path, sizeof(path), "%s/%s", set->state_dir, crt) >= (int)sizeof(path) ||
	    (sk = tg_certs_read(path, &err)) == NULL)
		goto out;   /* none issued yet: nothing to compare with */
	{
		const ASN1_TIME *nb = X509_get0_notBefore(sk_X509_value(sk, 0));
		const ASN1_TIME *na = X509_get0_notAfter(sk_X509_value(sk, 0));
		int days = 0, secs = 0;
		if (ASN1_TIME_diff(&days, &secs, nb, na) != 1)
			goto out;
		life = (int64_t)days * 86400 + secs;
	}
	if (set->renew_before_s >= life)
		problem("tls.acme.renew_before (%s) is %lld hours, not shorter than the %lld-hour "
		    "lifetime of the certificate the CA issues (%s): every check would renew; fix: "
		    "remove it (renewal comes at a third of the lifetime, half under 10 days)",
		    tg_config_origin(cfg, "tls.acme.renew_before"),
		    (long long)(set->renew_before_s / 3600), (long long)(life / 3600), path);
	else
		ok("tls.acme.renew_before (%lld hours) is shorter than the certificate's lifetime "
		    "(%lld hours)", (long long)(set->renew_before_s / 3600), (long long)(life / 3600));
out:
	sk_X509_pop_free(sk, X509_free);
	free(set);
}

/* Trust anchors that are intermediates: issuers rotate them (Let's Encrypt
 * yearly), and peers whose chains move to the next one are refused the
 * day it happens. Retired (expired) or retiring within 30 days is a
 * problem; an intermediate still current is said. */
static void
check_anchor_file(const char *what, const char *origin, const char *path)
{
	STACK_OF(X509) *sk;
	struct tg_err err;
	char name[300], date[64];
	int i, n = 0;
	time_t soon = time(NULL) + 30 * 86400;

	if ((sk = tg_certs_read(path, &err)) == NULL)
		return;   /* a folder or a bad file: the other checks say */
	for (i = 0; i < sk_X509_num(sk); i++) {
		X509 *x = sk_X509_value(sk, i);
		const ASN1_TIME *na = X509_get0_notAfter(x);
		struct tm tm;
		if (!X509_check_ca(x) || X509_check_issued(x, x) == X509_V_OK)
			continue;   /* a leaf (pinned directly) or a root */
		n++;
		X509_NAME_oneline(X509_get_subject_name(x), name, sizeof(name));
		memset(&tm, 0, sizeof(tm));
		if (ASN1_TIME_to_tm(na, &tm) == 1)
			strftime(date, sizeof(date), "%Y-%m-%d", &tm);
		else
			snprintf(date, sizeof(date), "?");
		if (X509_cmp_time(na, NULL) < 0)
			problem("%s %s (%s) trusts the intermediate %s, retired (it ended on %s): peers "
			    "whose chains still reach it are refused, and its successor is not trusted; "
			    "fix: trust the root that issued it", what, path, origin, name, date);
		else if (X509_cmp_time(na, &soon) < 0)
			problem("%s %s (%s) trusts the intermediate %s, which ends on %s: its issuer is "
			    "moving peers to another one; fix: trust the root that issued it", what, path,
			    origin, name, date);
		else
			ok("%s %s trusts the intermediate %s (until %s): when its issuer rotates it, "
			    "trust the root instead", what, path, name, date);
	}
	(void)n;
	ERR_clear_error();
	sk_X509_pop_free(sk, X509_free);
}

static void
check_anchors(const struct tg_config *cfg)
{
	static const struct { enum tg_cfg_key key; const char *name; } keys[] = {
		{ TG_CFG_TLS_CLIENTS_CA, "tls.clients.ca" }, { TG_CFG_CLIENT_CA, "client.ca" },
		{ TG_CFG_TLS_ACME_CA_CERT, "tls.acme.ca_cert" }, { TG_CFG_STORE_CA, "store.ca" } };
	static const char *const lists[] = { "tunnels", "proxy" };
	char path[PATH_MAX], what[64];
	size_t i, k, n;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (!tg_cfg_str(cfg, keys[i].key)[0])
			continue;
		tg_cfg_path(cfg, keys[i].key, path, sizeof(path));
		check_anchor_file(keys[i].name, tg_config_origin(cfg, keys[i].name), path);
	}
	for (k = 0; k < 2; k++) {
		n = tg_cfg_entries(cfg, lists[k]);
		for (i = 0; i < n; i++) {
			const char *ca = tg_cfg_entry_str(cfg, lists[k], i, TG_FIELD_CA);
			if (!ca[0])
				continue;
			snprintf(what, sizeof(what), "%s.%zu.ca", lists[k], i);
			check_anchor_file(what, tg_cfg_entry_origin(cfg, lists[k], i, TG_FIELD_CA), ca);
		}
	}
}

static void
check_acme(const struct tg_config *cfg)
{
	const char *url = tg_cfg_str(cfg, TG_CFG_TLS_ACME_DIRECTORY);
	char ca[PATH_MAX] = "";
	struct tg_acme_dir d;
	struct tg_err err;

	check_renew_before(cfg);   /* from what is cached: with the CA down too */
	if (tg_cfg_str(cfg, TG_CFG_TLS_ACME_CA_CERT)[0])
		tg_cfg_path(cfg, TG_CFG_TLS_ACME_CA_CERT, ca, sizeof(ca));
	if (tg_acme_probe(url, ca, &d, &err) < 0) {
		problem("tls.acme.directory (%s): %s", tg_config_origin(cfg, "tls.acme.directory"),
		    err.msg);
		return;
	}
	if (d.terms[0] && !tg_cfg_num(cfg, TG_CFG_TLS_ACME_AGREE_TERMS))
		problem("tls.acme.agree_terms is false (%s): the CA wants its terms (%s) accepted "
		    "before it issues; read them, then set it to true",
		    tg_config_origin(cfg, "tls.acme.agree_terms"), d.terms);
	else if (d.eab_required && !tg_cfg_str(cfg, TG_CFG_TLS_ACME_EAB_KID)[0])
		problem("tls.acme.eab_kid is empty: the CA at %s requires external account binding; "
		    "fix: set tls.acme.eab_kid and tls.acme.eab_hmac_key", url);
	else
		ok("ACME directory %s answers%s", url, d.renewal_info[0] ?
		    " and offers renewal information (ARI)" : "");
	if (tg_cfg_str(cfg, TG_CFG_TLS_ACME_PROFILE)[0] && !tg_acme_is_profile(&d,
	    tg_cfg_str(cfg, TG_CFG_TLS_ACME_PROFILE)))
		problem("tls.acme.profile %s (%s): the CA at %s %s%s; fix: choose one it lists or "
		    "remove the setting", tg_cfg_str(cfg, TG_CFG_TLS_ACME_PROFILE),
		    tg_config_origin(cfg, "tls.acme.profile"), url, d.profiles[0] ?
		    "offers only " : "offers no profiles", d.profiles);
	if (!strcmp(tg_cfg_str(cfg, TG_CFG_TLS_ACME_CHALLENGE), "http-01"))
		check_port("tls.acme.http_listen", tg_cfg_str(cfg, TG_CFG_TLS_ACME_HTTP_LISTEN));
}

/* store.backend etcd: the cluster answers, takes a write and a lock, and
 * the known files are where the cluster shares them. */
static void
check_store(const struct tg_config *cfg)
{
	struct tg_store_conf *sc = malloc(sizeof(*sc));
	struct tg_store *st;
	struct tg_err err;
	unsigned char *back = NULL;
	size_t blen = 0;
	char key[PATH_MAX], known[PATH_MAX], name[256];
	uint64_t t0 = tg_now_ms();

	if (sc == NULL)
		return;
	tg_store_conf_from(cfg, sc);
	if (sc->key[0]) {
		tg_cfg_path(cfg, TG_CFG_STORE_KEY, key, sizeof(key));
		check_key_file("store.key", key);
	}
	if ((st = tg_store_open_conf(sc, 0, &err)) == NULL) {
		problem("store (%s): %s", tg_config_origin(cfg, "store.backend"), err.msg);
		free(sc);
		return;
	}
	if (tg_store_lock(st, "doctor", 5000, &err) < 0 ||
	    tg_store_put(st, "doctor-probe", "ok", 2, 0, &err) < 0 ||
	    tg_store_get(st, "doctor-probe", &back, &blen, &err) < 0 ||
	    tg_store_delete(st, "doctor-probe", &err) < 0)
		problem("store %s: %s", tg_store_path(st), err.msg);
	else
		ok("store %s: reachable, writable, lockable (%llu ms)", tg_store_path(st),
		    (unsigned long long)(tg_now_ms() - t0));
	OPENSSL_free(back);
	tg_store_unlock(st, "doctor");
	tg_store_free(st);
	tg_cfg_path(cfg, TG_CFG_TLS_CLIENTS_KNOWN, known, sizeof(known));
	if (!strcmp(tg_cfg_str(cfg, TG_CFG_TLS_MODE), "mutual") &&
	    tg_store_name_of(sc, known, name, sizeof(name)) < 0)
		problem("tls.clients.known (%s) lies outside state_dir: its pins stay this node's own, "
		    "not the cluster's; fix: keep it in state_dir", known);
	free(sc);
}

/* client.cert: a certificate servers that require client certificates
 * accept needs clientAuth in its extendedKeyUsage; public CAs stopped
 * issuing those in 2026 (Let's Encrypt: classic lost it on 2026-02-11). */
static void
check_client_cert(const struct tg_config *cfg)
{
	char crt[PATH_MAX];
	STACK_OF(X509) *sk;
	struct tg_err err;
	X509 *x;

	if (!tg_cfg_str(cfg, TG_CFG_CLIENT_CERT)[0])
		return;
	tg_cfg_path(cfg, TG_CFG_CLIENT_CERT, crt, sizeof(crt));
	if ((sk = tg_certs_read(crt, &err)) == NULL) {
		problem("client.cert (%s): %s", tg_config_origin(cfg, "client.cert"), err.msg);
		return;
	}
	x = sk_X509_value(sk, 0);
	if ((X509_get_extension_flags(x) & EXFLAG_XKUSAGE) &&
	    !(X509_get_extended_key_usage(x) & XKU_SSL_CLIENT))
		problem("client.cert %s (%s) has no clientAuth in its extendedKeyUsage: servers that "
		    "require client certificates refuse it (public CAs no longer issue clientAuth); "
		    "fix: issue it from a private CA (tlsgate cert issue --client)", crt,
		    tg_config_origin(cfg, "client.cert"));
	else
		ok("client.cert %s may be used as a client certificate (clientAuth)", crt);
	sk_X509_pop_free(sk, X509_free);
}

/* The key-exchange groups of both directions: known to this OpenSSL, and
 * whether the exchange is post-quantum (and why not). */
static void
check_groups(const struct tg_config *cfg)
{
	static const struct { enum tg_cfg_key key; const char *name; } sets[] = {
		{ TG_CFG_TLS_GROUPS, "tls.groups" }, { TG_CFG_CLIENT_GROUPS, "client.groups" },
	};
	SSL_CTX *ctx = SSL_CTX_new(TLS_method());
	struct tg_err err;
	char words[400];
	size_t i;

	for (i = 0; ctx && i < sizeof(sets) / sizeof(sets[0]); i++) {
		const char *list = tg_cfg_str(cfg, sets[i].key);
		if (tg_tls_set_groups(ctx, list, sets[i].name, &err) < 0) {
			problem("%s (%s)", err.msg, tg_config_origin(cfg, sets[i].name));
			continue;
		}
		tg_tls_groups_words(list, words, sizeof(words));
		ok("%s: %s", sets[i].name, words);
	}
	SSL_CTX_free(ctx);
}

int
cmd_doctor(int argc, char **argv)
{
	struct cli_cfg_flags f;
	struct tg_config *cfg;
	struct tg_err err;
	const char *mode;
	int i, r;

	memset(&f, 0, sizeof(f));
	f.no_validate = 1;
	for (i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(doctor_usage, stdout);
			return 0;
		}
		if ((r = cli_cfg_flag(&f, argc, argv, &i)) <= 0)
			return r < 0 ? 1 : cli_fail("doctor: unknown argument %s", argv[i]);
	}
	if ((cfg = cli_load_config(&f, &err)) == NULL) {
		problem("%s", err.msg);
		return 1;
	}
	if (tg_config_validate(cfg, &err) < 0)
		problem("%s", err.msg);
	mode = tg_cfg_str(cfg, TG_CFG_TLS_MODE);
	if (!strcmp(mode, "off"))
		problem("tls.mode is off (%s): everything is sent in the clear; fix: tls.mode server",
		    tg_config_origin(cfg, "tls.mode"));
	else if (tg_cfg_str(cfg, TG_CFG_TLS_CERT)[0] && tg_cfg_str(cfg, TG_CFG_TLS_KEY)[0])
		check_files_pair(cfg);
	else if (!strcmp(tg_cfg_str(cfg, TG_CFG_TLS_AUTO), "acme"))
		check_acme(cfg);
	else
		ok("certificates come from tls.auto %s and are made at start", tg_cfg_str(cfg,
		    TG_CFG_TLS_AUTO));
	if (!strcmp(tg_cfg_str(cfg, TG_CFG_STORE_BACKEND), "etcd"))
		check_store(cfg);
	if (!strcmp(mode, "mutual") && tg_cfg_str(cfg, TG_CFG_TLS_CLIENTS_CA)[0]) {
		char ca[PATH_MAX];
		X509_STORE *st;
		tg_cfg_path(cfg, TG_CFG_TLS_CLIENTS_CA, ca, sizeof(ca));
		if ((st = tg_trust_store_load(ca, NULL, &err)) == NULL)
			problem("tls.clients.ca (%s): %s", tg_config_origin(cfg, "tls.clients.ca"), err.msg);
		X509_STORE_free(st);
	}
	if (!strcmp(tg_cfg_str(cfg, TG_CFG_TLS_CLIENTS_TRUST),
	    "insecure-no-validation") && !strcmp(mode, "mutual"))
		problem("tls.clients.trust is insecure-no-validation (%s): any client gets in; fix: "
		    "whitelist once known-clients holds your clients", tg_config_origin(cfg, "tls.clients.trust"));
	if (!strcmp(tg_cfg_str(cfg, TG_CFG_CLIENT_TRUST), "insecure-no-validation"))
		problem("client.trust is insecure-no-validation (%s): any server is believed; fix: "
		    "whitelist once known-servers holds your servers", tg_config_origin(cfg, "client.trust"));
	if (tg_cfg_str(cfg, TG_CFG_CLIENT_KEY)[0]) {
		char key[PATH_MAX];
		tg_cfg_path(cfg, TG_CFG_CLIENT_KEY, key, sizeof(key));
		check_key_file("client.key", key);
	}
	if (tg_cfg_num(cfg, TG_CFG_TLS_ALLOW_INSECURE_KEY_PERMISSIONS))
		problem("tls.allow_insecure_key_permissions is on (%s): keys others can read are used; "
		    "fix: chmod 600 the keys and turn it off", tg_config_origin(cfg, "tls.allow_insecure_key_permissions"));
	check_groups(cfg);
	check_client_cert(cfg);
	check_anchors(cfg);
	check_port("listen", tg_cfg_str(cfg, TG_CFG_LISTEN));
	check_port("admin.listen", tg_cfg_str(cfg, TG_CFG_ADMIN_LISTEN));
	tg_config_free(cfg);
	if (problems)
		printf("%d problem%s found\n", problems, problems == 1 ? "" : "s");
	else
		printf("no problems found\n");
	return problems ? 1 : 0;
}
