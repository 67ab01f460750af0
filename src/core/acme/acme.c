/*
 * One ACME order from start to certificate (RFC 8555 section 7): directory,
 * account (created once per directory and kept in the store), order,
 * authorizations, the chosen challenge, finalize with a fresh key, download.
 * It blocks; the daemon runs it on its own thread and the CLI in main.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "acme.h"
#include "acme_http.h"
#include "error.h"
#include "pki.h"
#include "util.h"

extern char **environ;

int
tg_acme_challenge_parse(const char *s, enum tg_acme_challenge *out)
{
	if (!strcmp(s, "http-01"))
		*out = TG_ACME_HTTP01;
	else if (!strcmp(s, "tls-alpn-01"))
		*out = TG_ACME_TLSALPN01;
	else if (!strcmp(s, "dns-01"))
		*out = TG_ACME_DNS01;
	else
		return -1;
	return 0;
}

const char *
tg_acme_challenge_name(enum tg_acme_challenge c)
{
	return c == TG_ACME_HTTP01 ? "http-01" : c == TG_ACME_TLSALPN01 ? "tls-alpn-01" : "dns-01";
}

void
tg_acme_result_clear(struct tg_acme_result *r)
{
	free(r->chain_pem);
	if (r->key_pem)
		OPENSSL_clear_free(r->key_pem, r->key_len);
	memset(r, 0, sizeof(*r));
}

void
tg_acme_store_prefix(const char *directory, char *buf, size_t len)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char host[128];
	const char *p = strstr(directory, "://");
	size_t i, n;

	p = p ? p + 3 : directory;
	n = strcspn(p, "/?#");
	if (n >= sizeof(host))
		n = sizeof(host) - 1;
	for (i = 0; i < n; i++)   /* a folder name, whatever the URL holds */
		host[i] = (char)(isalnum((unsigned char)p[i]) || p[i] == '.' || p[i] == '-' ?
		    p[i] : '_');
	host[n] = '\0';
	SHA256((const unsigned char *)directory, strlen(directory), md);
	snprintf(buf, len, "acme/%s-%02x%02x%02x%02x", host, md[0], md[1], md[2], md[3]);
}

struct run {
	const struct tg_acme_opts *o;
	struct tg_acme_http h;
	struct tg_acme_dir dir;
	EVP_PKEY *akey;
	char kid[512];
	char thumb[64];
};

static void
say(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
say(struct run *r, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (r->o->progress == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	r->o->progress(r->o->progress_arg, line);
}

static EVP_PKEY *
key_from_pem(const unsigned char *pem, size_t len)
{
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"") : NULL;

	BIO_free(b);
	ERR_clear_error();
	return k;
}

static int
key_to_pem(EVP_PKEY *k, char **out, size_t *len, struct tg_err *err)
{
	BIO *b = BIO_new(BIO_s_secmem());
	char *p;
	long n;

	*out = NULL;
	if (b == NULL || PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL) != 1) {
		BIO_free(b);
		return tg_err_ossl(err, TG_E_PKI, "cannot encode a key");
	}
	n = BIO_get_mem_data(b, &p);
	if ((*out = OPENSSL_secure_malloc((size_t)n + 1)) != NULL) {
		memcpy(*out, p, (size_t)n);
		(*out)[n] = '\0';
		*len = (size_t)n;
	}
	BIO_free(b);
	return *out ? 0 : tg_err_set(err, TG_E_INTERNAL, "out of memory");
}

/* The account key of this directory: loaded, or made and stored. */
static int
account_key(struct tg_store *st, const char *prefix, struct run *r, struct tg_err *err)
{
	char name[300];
	unsigned char *pem = NULL;
	size_t len = 0;
	char *out;

	snprintf(name, sizeof(name), "%s/account.key", prefix);
	if (tg_store_get(st, name, &pem, &len, err) == 0) {
		r->akey = key_from_pem(pem, len);
		tg_free_secret(pem, len);
		if (r->akey && EVP_PKEY_get_base_id(r->akey) == EVP_PKEY_EC &&
		    EVP_PKEY_get_bits(r->akey) == 256)
			return 0;
		EVP_PKEY_free(r->akey);
		say(r, "account key %s/%s is unreadable; registering a new account",
		    tg_store_path(st), name);
	} else if (err->code != TG_E_NOT_FOUND) {
		return -1;
	}
	if ((r->akey = tg_key_generate(TG_KEY_EC_P256, err)) == NULL ||
	    key_to_pem(r->akey, &out, &len, err) < 0)
		return -1;
	if (tg_store_put(st, name, out, len, TG_STORE_SECRET, err) < 0) {
		OPENSSL_clear_free(out, len);
		return -1;
	}
	OPENSSL_clear_free(out, len);
	return 0;
}

static int
refused(struct run *r, const struct tg_acme_resp *resp, const char *what, struct tg_err *err)
{
	char words[700];

	tg_acme_resp_words(resp, words, sizeof(words));
	return tg_err_set(err, TG_E_ACME, "the ACME server refused %s: %s", what, words);
}

static int
json_str_ok(const char *s)
{
	return s && !strpbrk(s, "\"\\\r\n") && strlen(s) < 256;
}

static int
account(struct tg_store *st, const char *prefix, struct run *r, int *created,
    struct tg_err *err)
{
	char payload[2048], contact[400] = "", *eab = NULL, name[300];
	struct tg_acme_resp resp;
	const struct tg_acme_opts *o = r->o;
	int rv = -1;

	memset(&resp, 0, sizeof(resp));
	if (r->dir.terms[0] && !o->agree_terms)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "the ACME CA asks you to accept its terms "
		    "of service (%s): read them, then set tls.acme.agree_terms: true "
		    "(--agree-terms)", r->dir.terms);
	if (r->dir.eab_required && !(o->eab_kid && o->eab_kid[0]))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "the ACME CA requires external account "
		    "binding: set tls.acme.eab_kid and tls.acme.eab_hmac_key to what the CA gave you");
	if (account_key(st, prefix, r, err) < 0)
		return -1;
	if (tg_acme_thumbprint(r->akey, r->thumb, sizeof(r->thumb)) < 0)
		return tg_err_set(err, TG_E_ACME, "cannot compute the account key's thumbprint");
	if (o->email && o->email[0]) {
		if (!json_str_ok(o->email) || !strchr(o->email, '@'))
			return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.email: '%s' is not an "
			    "e-mail address", o->email);
		snprintf(contact, sizeof(contact), ",\"contact\":[\"mailto:%s\"]", o->email);
	}
	if (o->eab_kid && o->eab_kid[0] &&
	    (eab = tg_acme_eab(r->akey, o->eab_kid, o->eab_hmac_key ? o->eab_hmac_key : "",
	    r->dir.new_account, err)) == NULL)
		return -1;
	snprintf(payload, sizeof(payload), "{\"termsOfServiceAgreed\":%s%s%s%s}",
	    o->agree_terms ? "true" : "false", contact, eab ? ",\"externalAccountBinding\":" : "",
	    eab ? eab : "");
	free(eab);
	/* with a known key this finds the existing account (200) instead of
	 * making another (201): one account per directory and key */
	if (tg_acme_post(&r->h, r->akey, NULL, r->dir.new_account, payload, NULL, &resp, err) < 0)
		goto out;
	if ((resp.status != 200 && resp.status != 201) || !resp.location[0]) {
		refused(r, &resp, "to register the account", err);
		goto out;
	}
	snprintf(r->kid, sizeof(r->kid), "%s", resp.location);
	*created = resp.status == 201;
	say(r, "account %s: %s", r->kid, *created ? "registered" : "reused");
	snprintf(name, sizeof(name), "%s/account.json", prefix);
	snprintf(payload, sizeof(payload), "{\"directory\":\"%s\",\"url\":\"%s\"}\n",
	    o->directory, r->kid);
	if (json_str_ok(o->directory))
		(void)tg_store_put(st, name, payload, strlen(payload), 0, err);
	rv = 0;
out:
	tg_acme_resp_clear(&resp);
	return rv;
}

static int
is_ip(const char *s)
{
	unsigned char b[16];
	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static int
new_order(struct run *r, const char *replaces, struct tg_acme_order *ord, char *url,
    size_t urllen, int *retry_after, struct tg_err *err)
{
	const struct tg_acme_opts *o = r->o;
	struct tg_acme_resp resp;
	char *payload;
	size_t i, n = 0, cap = 64 + o->nnames * 300 + 300;
	int rv = -1;

	memset(&resp, 0, sizeof(resp));
	if ((payload = malloc(cap)) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	n += (size_t)snprintf(payload + n, cap - n, "{\"identifiers\":[");
	for (i = 0; i < o->nnames; i++)
		n += (size_t)snprintf(payload + n, cap - n, "%s{\"type\":\"%s\",\"value\":\"%s\"}",
		    i ? "," : "", is_ip(o->names[i]) ? "ip" : "dns", o->names[i]);
	n += (size_t)snprintf(payload + n, cap - n, "]");
	if (replaces && replaces[0])
		n += (size_t)snprintf(payload + n, cap - n, ",\"replaces\":\"%s\"", replaces);
	if (o->profile && o->profile[0])   /* checked against the directory's list first */
		n += (size_t)snprintf(payload + n, cap - n, ",\"profile\":\"%s\"", o->profile);
	snprintf(payload + n, cap - n, "}");
	if (tg_acme_post(&r->h, r->akey, r->kid, r->dir.new_order, payload, NULL, &resp, err) < 0)
		goto out;
	*retry_after = resp.retry_after;
	if (resp.status != 201 || !resp.location[0]) {
		refused(r, &resp, "the order", err);
		goto out;
	}
	snprintf(url, urllen, "%s", resp.location);
	rv = tg_acme_parse_order(resp.body ? resp.body : "", resp.len, ord, err);
out:
	free(payload);
	tg_acme_resp_clear(&resp);
	return rv;
}

/* Runs the dns-01 hook: HOOK add|remove NAME VALUE, bounded in time. */
static int
run_hook(const char *hook, const char *op, const char *name, const char *value,
    struct tg_err *err)
{
	char *argv[] = { (char *)hook, (char *)op, (char *)name, (char *)value, NULL };
	pid_t pid;
	int st = 0, i, rc;

	if ((rc = posix_spawnp(&pid, hook, NULL, NULL, argv, environ)) != 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.dns_hook %s: cannot run it: %s",
		    hook, strerror(rc));
	for (i = 0; i < 3000; i++) {   /* 300 s: DNS providers can be slow */
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR)
			return tg_err_set(err, TG_E_INTERNAL, "dns_hook: waitpid: %s", strerror(errno));
		usleep(100 * 1000);
	}
	if (i == 3000) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return tg_err_set(err, TG_E_ACME, "tls.acme.dns_hook %s %s %s did not finish within "
		    "300 s", hook, op, name);
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return tg_err_set(err, TG_E_ACME, "tls.acme.dns_hook %s %s %s failed (%s %d); run it "
		    "by hand to see why", hook, op, name, WIFEXITED(st) ? "exit status" : "signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
	return 0;
}

/* Waits before asking again: what the CA asked for (Retry-After, capped at
 * 10 s), else 250 ms doubling to 2 s, since validation is usually quick.
 * Returns -1 when the caller cancelled meanwhile. */
static int
pause_for(const struct tg_acme_opts *o, int retry_after, int *step, int *waited_ms,
    struct tg_err *err)
{
	int ms = retry_after > 0 ? (retry_after > 10 ? 10 : retry_after) * 1000 :
	    250 << (*step < 3 ? *step : 3), slept;

	(*step)++;
	for (slept = 0; slept < ms; slept += 50) {
		if (o->cancelled && o->cancelled(o->cancel_arg))
			return tg_err_set(err, TG_E_ACME, "the order was stopped (tlsgate is stopping)");
		usleep(50 * 1000);
	}
	*waited_ms += ms;
	return 0;
}

/* POST-as-GET of an authorization, read; resp keeps Retry-After. */
static int
fetch_authz(struct run *r, const char *url, struct tg_acme_resp *resp, struct tg_acme_authz *a,
    struct tg_err *err)
{
	tg_acme_resp_clear(resp);
	if (tg_acme_post(&r->h, r->akey, r->kid, url, NULL, NULL, resp, err) < 0)
		return -1;
	if (resp->status != 200)
		return refused(r, resp, "to show an authorization", err);
	return tg_acme_parse_authz(resp->body ? resp->body : "", resp->len, a, err);
}

/* A challenge's answer, as published and withdrawn. */
struct answer {
	char keyauth[400];           /* the key authorization */
	char what[300];              /* HTTP-01: the token; TLS-ALPN-01: the name */
	char value[64], dnsname[300];   /* DNS-01: the TXT record */
};

/* Publishes the answer to ch: a TXT record through the DNS hook, or the
 * solver's (the daemon's event loop, or the one-shot responder). */
static int
publish(struct run *r, const struct tg_acme_authz *a, const struct tg_acme_chall *ch,
    struct answer *an, struct tg_err *err)
{
	const struct tg_acme_opts *o = r->o;
	unsigned char md[SHA256_DIGEST_LENGTH];

	snprintf(an->keyauth, sizeof(an->keyauth), "%s.%s", ch->token, r->thumb);
	say(r, "%s: answering %s", a->id_value, tg_acme_challenge_name(o->challenge));
	if (o->challenge == TG_ACME_DNS01) {
		SHA256((const unsigned char *)an->keyauth, strlen(an->keyauth), md);
		tg_b64url(md, sizeof(md), an->value, sizeof(an->value));
		snprintf(an->dnsname, sizeof(an->dnsname), "_acme-challenge.%s", a->id_value);
		if (!o->dns_hook || !o->dns_hook[0])
			return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.challenge is dns-01 but "
			    "tls.acme.dns_hook is empty: name a program that sets TXT records");
		return run_hook(o->dns_hook, "add", an->dnsname, an->value, err);
	}
	snprintf(an->what, sizeof(an->what), "%s", o->challenge == TG_ACME_HTTP01 ? ch->token :
	    a->id_value);
	if (o->solver.publish == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "no one answers %s here",
		    tg_acme_challenge_name(o->challenge));
	return o->solver.publish(o->solver.arg, o->challenge, an->what, an->keyauth, err);
}

static void
withdraw(struct run *r, const struct answer *an)
{
	const struct tg_acme_opts *o = r->o;
	struct tg_err e2;

	if (o->challenge == TG_ACME_DNS01)
		(void)run_hook(o->dns_hook, "remove", an->dnsname, an->value, &e2);
	else
		o->solver.withdraw(o->solver.arg, o->challenge, an->what);
}

/* Polls the authorization until the CA has made up its mind (or the
 * timeout): 0 valid, -1 invalid or not in time, in words. */
static int
wait_valid(struct run *r, const char *url, struct tg_acme_resp *resp, struct tg_acme_authz *a,
    struct tg_err *err)
{
	const struct tg_acme_opts *o = r->o;
	const char *want = tg_acme_challenge_name(o->challenge), *why;
	int waited = 0, step = 0, limit = (o->timeout_s ? o->timeout_s : 120) * 1000;
	size_t i;

	for (;;) {
		if (fetch_authz(r, url, resp, a, err) < 0)
			return -1;
		if (!strcmp(a->status, "valid")) {
			say(r, "%s: validated by %s", a->id_value, want);
			return 0;
		}
		if (strcmp(a->status, "pending") != 0 && strcmp(a->status, "processing") != 0) {
			why = "";
			for (i = 0; i < a->nchall; i++)
				if (!strcmp(a->chall[i].type, want) && a->chall[i].error[0])
					why = a->chall[i].error;
			return tg_err_set(err, TG_E_ACME, "the ACME server could not validate %s by "
			    "%s: %s", a->id_value, want, why[0] ? why : a->status);
		}
		if (waited >= limit)
			return tg_err_set(err, TG_E_ACME, "the ACME server did not validate %s by %s "
			    "within %d s", a->id_value, want, limit / 1000);
		if (pause_for(o, resp->retry_after, &step, &waited, err) < 0)
			return -1;
	}
}

/* Answers one authorization with the chosen challenge and waits until the
 * CA has made up its mind; the answer is withdrawn either way. */
static int
authorize(struct run *r, const char *url, struct tg_err *err)
{
	const char *want = tg_acme_challenge_name(r->o->challenge);
	struct tg_acme_authz a;
	struct tg_acme_resp resp;
	struct tg_acme_chall *ch = NULL;
	struct answer an;
	int published = 0, rv = -1;
	size_t i;

	memset(&resp, 0, sizeof(resp));
	memset(&an, 0, sizeof(an));
	if (fetch_authz(r, url, &resp, &a, err) < 0)
		goto out;
	if (!strcmp(a.status, "valid")) {
		say(r, "%s: already authorized", a.id_value);
		rv = 0;
		goto out;
	}
	if (strcmp(a.status, "pending") != 0) {
		tg_err_set(err, TG_E_ACME, "the ACME server says the authorization for %s is %s",
		    a.id_value, a.status);
		goto out;
	}
	for (i = 0; i < a.nchall; i++)
		if (!strcmp(a.chall[i].type, want))
			ch = &a.chall[i];
	if (ch == NULL || !ch->token[0]) {
		tg_err_set(err, TG_E_ACME, "the ACME server offers no %s challenge for %s; choose "
		    "another with tls.acme.challenge%s", want, a.id_value,
		    a.wildcard ? " (wildcard names need dns-01)" : "");
		goto out;
	}
	if (publish(r, &a, ch, &an, err) < 0)
		goto out;
	published = 1;
	tg_acme_resp_clear(&resp);
	if (tg_acme_post(&r->h, r->akey, r->kid, ch->url, "{}", NULL, &resp, err) < 0)
		goto out;
	if (resp.status != 200) {
		refused(r, &resp, "the challenge answer", err);
		goto out;
	}
	rv = wait_valid(r, url, &resp, &a, err);
out:
	if (published)
		withdraw(r, &an);
	tg_acme_resp_clear(&resp);
	return rv;
}

/* A CSR in DER for names with key, base64url for the finalize request. */
static int
csr_b64(const struct tg_acme_opts *o, EVP_PKEY *k, char **out, struct tg_err *err)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *nm = X509_NAME_new();
	STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
	X509_EXTENSION *ex = NULL;
	unsigned char *der = NULL;
	char *conf = NULL;
	size_t i, n = 0, cap = o->nnames * 300 + 1;
	int dl, rv = -1;

	*out = NULL;
	if (!req || !nm || !exts || (conf = malloc(cap)) == NULL)
		goto ossl;
	for (i = 0; i < o->nnames; i++)
		n += (size_t)snprintf(conf + n, cap - n, "%s%s:%s", i ? "," : "",
		    is_ip(o->names[i]) ? "IP" : "DNS", o->names[i]);
	if ((!is_ip(o->names[0]) && strlen(o->names[0]) <= 64 &&
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)o->names[0],
	    -1, -1, 0) != 1) || X509_REQ_set_subject_name(req, nm) != 1 ||
	    X509_REQ_set_pubkey(req, k) != 1 ||
	    (ex = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, conf)) == NULL ||
	    !sk_X509_EXTENSION_push(exts, ex))
		goto ossl;
	ex = NULL;
	if (X509_REQ_add_extensions(req, exts) != 1 || X509_REQ_sign(req, k, EVP_sha256()) <= 0 ||
	    (dl = i2d_X509_REQ(req, &der)) <= 0)
		goto ossl;
	if ((*out = malloc((size_t)dl * 4 / 3 + 8)) == NULL ||
	    tg_b64url(der, (size_t)dl, *out, (size_t)dl * 4 / 3 + 8) < 0)
		goto ossl;
	rv = 0;
	goto out;
ossl:
	free(*out);
	*out = NULL;
	tg_err_ossl(err, TG_E_PKI, "cannot make the certificate request for the ACME order");
out:
	OPENSSL_free(der);
	free(conf);
	X509_EXTENSION_free(ex);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_NAME_free(nm);
	X509_REQ_free(req);
	return rv;
}

/* Polls the order until it leaves the states in `while_in`. */
static int
poll_order(struct run *r, const char *url, struct tg_acme_order *ord, const char *while_in,
    struct tg_err *err)
{
	struct tg_acme_resp resp;
	int waited = 0, step = 0, ra = 0, limit = (r->o->timeout_s ? r->o->timeout_s : 120) * 1000;

	memset(&resp, 0, sizeof(resp));
	for (;;) {
		tg_acme_order_clear(ord);
		if (tg_acme_post(&r->h, r->akey, r->kid, url, NULL, NULL, &resp, err) < 0)
			return -1;
		ra = resp.retry_after;
		if (resp.status != 200) {
			refused(r, &resp, "to show the order", err);
			tg_acme_resp_clear(&resp);
			return -1;
		}
		if (tg_acme_parse_order(resp.body ? resp.body : "", resp.len, ord, err) < 0) {
			tg_acme_resp_clear(&resp);
			return -1;
		}
		tg_acme_resp_clear(&resp);
		if (!strstr(while_in, ord->status))
			return 0;
		if (waited >= limit)
			return tg_err_set(err, TG_E_ACME, "the ACME order stayed %s for %d s",
			    ord->status, limit / 1000);
		if (pause_for(r->o, ra, &step, &waited, err) < 0)
			return -1;
	}
}

/* The chain must start with a certificate for our key that names every
 * name we asked for. */
static int
check_chain(const struct tg_acme_opts *o, const char *pem, EVP_PKEY *k, struct tg_err *err)
{
	STACK_OF(X509) *sk = tg_certs_parse((const unsigned char *)pem, strlen(pem),
	    "the ACME certificate", err);
	X509 *leaf;
	size_t i;
	int rv = -1;

	if (sk == NULL)
		return -1;
	leaf = sk_X509_value(sk, 0);
	if (X509_check_private_key(leaf, k) != 1) {
		tg_err_set(err, TG_E_ACME, "the ACME server sent a certificate for another key");
		goto out;
	}
	for (i = 0; i < o->nnames; i++) {
		int ok = is_ip(o->names[i]) ? X509_check_ip_asc(leaf, o->names[i], 0) == 1 :
		    X509_check_host(leaf, o->names[i], 0, X509_CHECK_FLAG_NEVER_CHECK_SUBJECT,
		    NULL) == 1;
		if (!ok) {
			tg_err_set(err, TG_E_ACME, "the ACME server's certificate does not name %s",
			    o->names[i]);
			goto out;
		}
	}
	rv = 0;
out:
	ERR_clear_error();
	sk_X509_pop_free(sk, X509_free);
	return rv;
}

int
tg_acme_probe(const char *directory, const char *ca_cert, struct tg_acme_dir *d,
    struct tg_err *err)
{
	struct tg_acme_http h;
	struct tg_acme_resp resp;
	int rv = -1;

	memset(&resp, 0, sizeof(resp));
	if (tg_acme_http_init(&h, ca_cert, err) < 0)
		return -1;
	if (tg_acme_get(&h, directory, &resp, err) == 0) {
		if (resp.status != 200)
			tg_err_set(err, TG_E_ACME, "the ACME directory %s answered HTTP %d", directory,
			    resp.status);
		else
			rv = tg_acme_parse_directory(resp.body ? resp.body : "", resp.len, d, err);
	}
	tg_acme_resp_clear(&resp);
	tg_acme_http_free(&h);
	return rv;
}

/* The directory read and the account made sure of (one per CA, its key in
 * the store). */
static int
open_account(struct tg_store *st, struct run *r, struct tg_acme_resp *resp,
    struct tg_acme_result *res, struct tg_err *err)
{
	const struct tg_acme_opts *o = r->o;
	char prefix[200];
	size_t i;

	if (o->nnames == 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "no names to order: set tls.acme.names "
		    "(--name)");
	for (i = 0; i < o->nnames; i++)
		if (!json_str_ok(o->names[i]) || !o->names[i][0] || strchr(o->names[i], '/'))
			return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.names: '%s' is not a "
			    "name", o->names[i]);
	if (tg_acme_http_init(&r->h, o->ca_cert, err) < 0)
		return -1;
	tg_acme_store_prefix(o->directory, prefix, sizeof(prefix));
	if (tg_acme_get(&r->h, o->directory, resp, err) < 0)
		return -1;
	if (resp->status != 200)
		return tg_err_set(err, TG_E_ACME, "the ACME directory %s answered HTTP %d; check "
		    "tls.acme.directory", o->directory, resp->status);
	if (tg_acme_parse_directory(resp->body ? resp->body : "", resp->len, &r->dir, err) < 0)
		return -1;
	snprintf(r->h.new_nonce_url, sizeof(r->h.new_nonce_url), "%s", r->dir.new_nonce);
	say(r, "directory %s", o->directory);
	if (o->profile && o->profile[0] && !tg_acme_is_profile(&r->dir, o->profile)) {
		if (!r->dir.profiles[0])
			return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.profile %s: the ACME CA at "
			    "%s offers no profiles (its directory lists none); remove the setting to "
			    "get its default certificate", o->profile, o->directory);
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.profile %s: the ACME CA at %s "
		    "does not offer it; it offers: %s", o->profile, o->directory, r->dir.profiles);
	}
	if (o->profile && o->profile[0])
		say(r, "profile %s", o->profile);
	return account(st, prefix, r, &res->account_created, err);
}

/* The order placed (as a replacement when the CA speaks ARI and takes it)
 * and each authorization answered, until the order is ready. */
static int
place_order(struct run *r, struct tg_acme_order *ord, char *order_url, size_t url_len,
    struct tg_acme_result *res, struct tg_err *err)
{
	const struct tg_acme_opts *o = r->o;
	size_t i;

	if (new_order(r, o->replaces, ord, order_url, url_len, &res->retry_after, err) < 0) {
		/* a CA that does not take this "replaces" still gets to renew */
		if (!(o->replaces && o->replaces[0]))
			return -1;
		say(r, "the CA refused the order as a replacement (%s); ordering anew", err->msg);
		if (new_order(r, NULL, ord, order_url, url_len, &res->retry_after, err) < 0)
			return -1;
	}
	say(r, "order %s: %zu authorization(s)", order_url, ord->nauthz);
	for (i = 0; i < ord->nauthz; i++) {
		if (o->cancelled && o->cancelled(o->cancel_arg))
			return tg_err_set(err, TG_E_ACME, "the order was stopped (tlsgate is stopping)");
		if (authorize(r, ord->authz[i], err) < 0)
			return -1;
	}
	if (poll_order(r, order_url, ord, "pending", err) < 0)
		return -1;
	if (strcmp(ord->status, "ready") != 0)
		return tg_err_set(err, TG_E_ACME, "the ACME order is %s, not ready: %s", ord->status,
		    ord->error[0] ? ord->error : "no reason given");
	return 0;
}

/* The order finalized with a CSR for a new key *ck, until it is valid. */
static int
finalize(struct run *r, struct tg_acme_order *ord, const char *order_url, EVP_PKEY **ck,
    struct tg_acme_resp *resp, struct tg_err *err)
{
	char *csr = NULL, *payload = NULL;
	int rv = -1;

	say(r, "finalizing with a new EC P-256 key");
	if ((*ck = tg_key_generate(TG_KEY_EC_P256, err)) == NULL ||
	    csr_b64(r->o, *ck, &csr, err) < 0)
		goto out;
	/* a CSR for many names is larger than any fixed buffer worth having */
	if ((payload = malloc(strlen(csr) + 16)) == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto out;
	}
	snprintf(payload, strlen(csr) + 16, "{\"csr\":\"%s\"}", csr);
	if (tg_acme_post(&r->h, r->akey, r->kid, ord->finalize, payload, NULL, resp, err) < 0)
		goto out;
	if (resp->status != 200) {
		refused(r, resp, "to finalize the order", err);
		goto out;
	}
	if (poll_order(r, order_url, ord, "ready processing", err) < 0)
		goto out;
	if (strcmp(ord->status, "valid") != 0 || !ord->certificate[0]) {
		tg_err_set(err, TG_E_ACME, "the ACME order ended %s: %s", ord->status,
		    ord->error[0] ? ord->error : "no reason given");
		goto out;
	}
	rv = 0;
out:
	free(payload);
	free(csr);
	return rv;
}

int
tg_acme_obtain(struct tg_store *st, const struct tg_acme_opts *o,
    struct tg_acme_result *res, struct tg_err *err)
{
	struct run r;
	struct tg_acme_resp resp;
	struct tg_acme_order ord;
	char order_url[512];
	EVP_PKEY *ck = NULL;
	int rv = -1, ra;

	memset(&r, 0, sizeof(r));
	memset(&resp, 0, sizeof(resp));
	memset(&ord, 0, sizeof(ord));
	memset(res, 0, sizeof(*res));
	r.o = o;
	if (open_account(st, &r, &resp, res, err) < 0 ||
	    place_order(&r, &ord, order_url, sizeof(order_url), res, err) < 0 ||
	    finalize(&r, &ord, order_url, &ck, &resp, err) < 0)
		goto out;
	tg_acme_resp_clear(&resp);
	if (tg_acme_post(&r.h, r.akey, r.kid, ord.certificate, NULL,
	    "application/pem-certificate-chain", &resp, err) < 0)
		goto out;
	if (resp.status != 200 || resp.body == NULL) {
		refused(&r, &resp, "to send the certificate", err);
		goto out;
	}
	if (check_chain(o, resp.body, ck, err) < 0 ||
	    key_to_pem(ck, &res->key_pem, &res->key_len, err) < 0)
		goto out;
	res->chain_pem = resp.body;
	resp.body = NULL;
	say(&r, "certificate issued");
	rv = 0;
out:
	ra = res->retry_after ? res->retry_after : resp.retry_after;
	EVP_PKEY_free(ck);
	EVP_PKEY_free(r.akey);
	tg_acme_order_clear(&ord);
	tg_acme_resp_clear(&resp);
	tg_acme_http_free(&r.h);
	if (rv < 0) {
		tg_acme_result_clear(res);
		res->retry_after = ra;
	}
	return rv;
}
