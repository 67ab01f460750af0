/*
 * The five trust modes as one table (SPEC "Trust modes"):
 *
 *   mode          chain              unknown         known, same key   known, other key
 *   ca            required           accept          accept            accept if chain valid
 *   tofu          not checked        accept+record   accept            reject
 *   whitelist     not checked        reject          accept            reject
 *   ca-or-tofu    valid: accept+rec  invalid: tofu   accept            valid: accept; else reject
 *   insecure-...  not checked        accept+record   accept            accept, record, warn
 *
 * Pins are SPKI hashes, so a renewed certificate with the same key stays
 * trusted. Rejections explain themselves the way OpenSSH does.
 */
#include <arpa/inet.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/x509v3.h>

#include "error.h"
#include "ossl_words.h"
#include "pins.h"
#include "pki.h"
#include "trust.h"
#include "util.h"

static const char *const mode_names[] = {
	[TG_TRUST_CA] = "ca",
	[TG_TRUST_TOFU] = "tofu",
	[TG_TRUST_WHITELIST] = "whitelist",
	[TG_TRUST_CA_OR_TOFU] = "ca-or-tofu",
	[TG_TRUST_INSECURE_NO_VALIDATION] = "insecure-no-validation",
};

int
tg_trust_mode_parse(const char *s, enum tg_trust_mode *out)
{
	size_t i;

	for (i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
		if (strcmp(s, mode_names[i]) == 0) {
			*out = (enum tg_trust_mode)i;
			return 0;
		}
	}
	return -1;
}

const char *
tg_trust_mode_name(enum tg_trust_mode m)
{
	return (size_t)m < sizeof(mode_names) / sizeof(mode_names[0]) ? mode_names[m] : "?";
}

static _Atomic long live;

long
tg_trust_live(void)
{
	return live;
}

struct tg_trust *
tg_trust_ref(struct tg_trust *t)
{
	if (t)
		t->refs++;
	return t;
}

struct tg_trust *
tg_trust_new(enum tg_trust_mode mode, const char *known_path, const char *store_name,
    const char *const *allow, size_t nallow, struct tg_err *err)
{
	struct tg_trust *t = calloc(1, sizeof(*t));
	size_t i;

	if (t == NULL || (nallow && (t->allow = calloc(nallow + 1, sizeof(char *))) == NULL)) {
		free(t);
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		return NULL;
	}
	t->refs = 1;
	live++;
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->refresh_lock, NULL);
	pthread_mutex_init(&t->share_lock, NULL);
	t->mode = mode;
	snprintf(t->known, sizeof(t->known), "%s", known_path ? known_path : "");
	t->store_name = store_name;
	for (i = 0; i < nallow; i++) {
		if ((t->allow[i] = strdup(allow[i])) == NULL) {
			tg_trust_free(t);
			tg_err_set(err, TG_E_INTERNAL, "out of memory");
			return NULL;
		}
	}
	return t;
}

void
tg_trust_free(struct tg_trust *t)
{
	size_t i;

	if (t == NULL || --t->refs > 0)
		return;
	live--;
	for (i = 0; t->allow && t->allow[i]; i++)
		free(t->allow[i]);
	free(t->allow);
	tg_known_free(t->cache);
	for (i = 0; i < TG_TRUST_STORES; i++)
		tg_store_free(t->share_st[i]);
	free(t->share);
	pthread_mutex_destroy(&t->share_lock);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->refresh_lock);
	free(t);
}

void
tg_trust_client_identity(X509 *leaf, char *buf, size_t len)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	int i;

	buf[0] = '\0';
	for (i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_DNS) {
			snprintf(buf, len, "%.*s", ASN1_STRING_length(g->d.dNSName),
			    (const char *)ASN1_STRING_get0_data(g->d.dNSName));
			break;
		}
	}
	if (buf[0] == '\0' && X509_NAME_get_text_by_NID(X509_get_subject_name(leaf),
	    NID_commonName, buf, (int)len) < 0)
		buf[0] = '\0';
	/* no DNS name and no CN: a URI (a SPIFFE ID), else an address, as
	 * certificates of an ACME CA for devices name them */
	for (i = 0; buf[0] == '\0' && gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		/* never one with a NUL inside: "%.*s" would cut it to another name */
		if (g->type == GEN_URI && memchr(ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
		    0, (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier)) == NULL)
			snprintf(buf, len, "%.*s", ASN1_STRING_length(g->d.uniformResourceIdentifier),
			    (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier));
	}
	for (i = 0; buf[0] == '\0' && gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_IPADD && tg_san_ip_text(g->d.iPAddress, buf, len) < 0)
			buf[0] = '\0';
	}
	GENERAL_NAMES_free(gens);
	if (buf[0] == '\0')
		snprintf(buf, len, "(unnamed)");
	/* identities are one token in the known file */
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == '#' || *p == 0x7f)
			*p = '_';
}

void
tg_trust_server_identity(const char *host, int port, char *buf, size_t len)
{
	snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
}

/*
 * Brings the cached list up to date with the file: nothing when it did not
 * change, only the appended lines when it grew (a first contact here or
 * elsewhere, the follower copying the cluster's pins), a whole read when it
 * was rewritten (a removal, an edit). The reading happens outside t->lock,
 * so handshakes judge on with the list they have; refresh_lock keeps one
 * refresh at a time, so an older read never replaces a newer one.
 */
/* An unwatched list that failed to read: is its file another one now (an
 * edit) than the one that failed? t->lock held. A stat, not a read: a
 * handshake does not parse a broken file again until it changed or a
 * second went by. */
static int
broken_file_changed(const struct tg_trust *t)
{
	struct stat sb;

	if (stat(t->known, &sb) < 0)
		memset(&sb, 0, sizeof(sb));
	return sb.st_ino != t->broken_st.st_ino || sb.st_size != t->broken_st.st_size ||
	    sb.st_mtim.tv_sec != t->broken_st.st_mtim.tv_sec ||
	    sb.st_mtim.tv_nsec != t->broken_st.st_mtim.tv_nsec;
}

static int
refresh(struct tg_trust *t, int try, struct tg_err *err)
{
	struct tg_known *k, *old = NULL;
	struct tg_known_tail *tail = NULL;
	int r, rv = 0;

	if (t->mode == TG_TRUST_CA || t->known[0] == '\0')
		return 0;
	if (try) {
		if (pthread_mutex_trylock(&t->refresh_lock) != 0)
			return 0;   /* a refresh is under way (the watcher's): it will do */
	} else {
		pthread_mutex_lock(&t->refresh_lock);
	}
	/* only refreshers change the cache, and only under refresh_lock: it
	 * may be read here without t->lock */
	r = t->have_cache ? tg_known_catch_up(t->cache, t->known, &tail, err) : TG_KNOWN_RELOAD;
	if (r == TG_KNOWN_GREW) {
		pthread_mutex_lock(&t->lock);
		if ((rv = tg_known_apply_tail(t->cache, tail, t->known, err)) == 0)
			t->checked_ms = tg_now_ms();
		pthread_mutex_unlock(&t->lock);
		tg_known_tail_free(tail);
	} else if (r == TG_KNOWN_RELOAD) {
		if ((k = tg_known_load(t->known, err)) == NULL) {
			rv = -1;
		} else {
			pthread_mutex_lock(&t->lock);
			old = t->cache;
			t->cache = k;
			t->have_cache = 1;
			t->checked_ms = tg_now_ms();
			pthread_mutex_unlock(&t->lock);
		}
	} else if (r == TG_KNOWN_SAME) {
		pthread_mutex_lock(&t->lock);
		t->checked_ms = tg_now_ms();
		pthread_mutex_unlock(&t->lock);
	} else {
		rv = -1;
	}
	/* a list that changed and cannot be read is broken until it can be:
	 * the judge refuses meanwhile (a removed pin must not stay trusted)
	 * and looks again once a second, not at every handshake */
	{
		struct stat sb;
		if (rv < 0 && stat(t->known, &sb) < 0)
			memset(&sb, 0, sizeof(sb));
		pthread_mutex_lock(&t->lock);
		t->broken = rv < 0;
		if (rv < 0) {
			snprintf(t->broken_msg, sizeof(t->broken_msg), "%s", err->msg);
			t->checked_ms = tg_now_ms();
			t->broken_st = sb;
		}
		pthread_mutex_unlock(&t->lock);
	}
	pthread_mutex_unlock(&t->refresh_lock);
	tg_known_free(old);
	return rv;
}

int
tg_trust_refresh(struct tg_trust *t, struct tg_err *err)
{
	return refresh(t, 0, err);
}

size_t
tg_trust_count(struct tg_trust *t)
{
	size_t n;

	pthread_mutex_lock(&t->lock);
	n = t->have_cache ? tg_known_count(t->cache) : (size_t)-1;
	pthread_mutex_unlock(&t->lock);
	return n;
}

static void
set_reason(struct tg_trust_verdict *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_reason(struct tg_trust_verdict *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
}

/*
 * The list made current before a verdict: a watched list is current (its
 * watcher refreshes it on change; a look every 10 s covers what inotify
 * cannot see: a symlink's target swapped, an overflowed event queue); an
 * unwatched one (the CLI) is compared with its file each time. -1 (err)
 * while the file cannot be read: every verdict fails closed until it can.
 */
static int
make_current(struct tg_trust *t, struct tg_err *err)
{
	uint64_t now = tg_now_ms();
	int due, watched, have, broken;

	pthread_mutex_lock(&t->lock);
	have = t->have_cache;
	watched = have && t->watched;
	due = !have || now - t->checked_ms >= (t->broken ? 1000u : 10000u) ||
	    (!t->watched && (!t->broken || broken_file_changed(t)));
	pthread_mutex_unlock(&t->lock);
	/* a watched list is not read on the handshake's thread while its
	 * watcher reads it */
	if (due)
		(void)refresh(t, watched, err);
	pthread_mutex_lock(&t->lock);
	broken = t->broken || (!t->have_cache && t->known[0]);
	if (broken)
		tg_err_set(err, TG_E_CONFIG_SYNTAX, "%s", t->broken_msg[0] ? t->broken_msg :
		    "the known file cannot be read");
	pthread_mutex_unlock(&t->lock);
	return broken ? -1 : 0;
}

/* An identity the list does not have: a first contact, recorded unless
 * the mode is whitelist, or refused while a cluster's store cannot record
 * it for every node. */
static void
first_contact(const struct tg_trust *t, const char *identity, struct tg_trust_verdict *v)
{
	const char *mode = tg_trust_mode_name(t->mode);

	if (t->share && t->mode != TG_TRUST_WHITELIST && !tg_store_up()) {
		/* a pin this node cannot record would bind this node alone: the
		 * same identity could pin another key on the next node */
		set_reason(v, "first contact of %s (key %s) refused: the cluster's store is "
		    "unreachable or has lost its quorum, so its pin cannot be recorded for every "
		    "node; known identities are still served, and first contacts are accepted "
		    "again when the store is back", identity, v->pin);
		return;
	}
	if (t->mode == TG_TRUST_WHITELIST) {
		set_reason(v, "%s is not in %s (trust whitelist; its key is %s). To let it in: "
		    "tlsgate trust add --store %s %s %s", identity, t->known, v->pin,
		    t->store_name, identity, v->pin);
		return;
	}
	v->accept = v->record = 1;
	v->warn = t->mode == TG_TRUST_INSECURE_NO_VALIDATION;
	v->first = !v->warn;   /* insecure-no-validation records any key anyway */
	set_reason(v, "first contact: key %s recorded in %s (trust %s)", v->pin, t->known, mode);
}

int
tg_trust_judge(struct tg_trust *t, X509 *leaf, const char *identity, int chain_ok,
    const char *chain_words, struct tg_trust_verdict *v, struct tg_err *err)
{
	enum tg_pin_match m = TG_PIN_UNKNOWN;
	char expected[64] = "";
	size_t line = 0;
	int in_journal = 0;
	const char *mode = tg_trust_mode_name(t->mode);

	memset(v, 0, sizeof(*v));
	snprintf(v->identity, sizeof(v->identity), "%s", identity);
	if (tg_spki_pin(leaf, v->pin, sizeof(v->pin)) < 0)
		return tg_err_set(err, TG_E_INTERNAL, "cannot hash the peer's key");
	if (t->mode == TG_TRUST_CA) {
		v->accept = chain_ok;
		if (!chain_ok)
			set_reason(v, "%s", chain_words && chain_words[0] ? chain_words :
			    "the certificate chain did not verify");
		else
			set_reason(v, "chain verified (trust ca)");
		return 0;
	}
	if (make_current(t, err) < 0)
		return -1;
	pthread_mutex_lock(&t->lock);
	m = t->cache ? tg_known_lookup(t->cache, identity, v->pin, &line, expected,
	    sizeof(expected)) : TG_PIN_UNKNOWN;
	in_journal = m == TG_PIN_MISMATCH && tg_known_in_journal(t->cache, identity);
	pthread_mutex_unlock(&t->lock);

	if (m == TG_PIN_MATCH) {
		v->accept = 1;
		set_reason(v, "key known in %s (trust %s)", t->known, mode);
	} else if (t->mode == TG_TRUST_CA_OR_TOFU && chain_ok) {
		v->accept = v->record = 1;
		set_reason(v, "chain verified; key recorded in %s (trust %s)", t->known, mode);
	} else if (m == TG_PIN_UNKNOWN) {
		first_contact(t, identity, v);
	} else if (t->mode == TG_TRUST_INSECURE_NO_VALIDATION) {   /* known, another key */
		v->accept = v->record = v->warn = 1;
		set_reason(v, "the key of %s CHANGED (was %s at %s%s:%zu, now %s); accepted and "
		    "recorded because trust is insecure-no-validation", identity, expected, t->known,
		    in_journal ? ".pins" : "", line, v->pin);
	} else {
		set_reason(v, "THE KEY OF %s HAS CHANGED: it presented %s, but %s%s:%zu expects %s. "
		    "Someone may be impersonating it, or its key was replaced. If the change is "
		    "expected: tlsgate trust remove --store %s %s", identity, v->pin, t->known,
		    in_journal ? ".pins" : "", line, expected, t->store_name, identity);
	}
	return 0;
}

/* The cluster's store for pins: one connection kept for the next record
 * (a first contact must not pay a TLS handshake with etcd), any other
 * thread that records meanwhile opens its own. */
static struct tg_store *
share_take(struct tg_trust *t, struct tg_err *err)
{
	struct tg_store *st = NULL;
	size_t i;

	pthread_mutex_lock(&t->share_lock);
	for (i = 0; i < TG_TRUST_STORES && st == NULL; i++)
		if (t->share_st[i])
			st = t->share_st[i], t->share_st[i] = NULL;
	pthread_mutex_unlock(&t->share_lock);
	return st ? st : tg_store_open_conf(t->share, 0, err);
}

/* Kept for the next record (as many as the thread pool records at once:
 * each opened store is one TLS session and, with an etcd user, one login). */
static void
share_give(struct tg_trust *t, struct tg_store *st)
{
	size_t i;

	pthread_mutex_lock(&t->share_lock);
	for (i = 0; i < TG_TRUST_STORES && st != NULL; i++)
		if (t->share_st[i] == NULL)
			t->share_st[i] = st, st = NULL;
	pthread_mutex_unlock(&t->share_lock);
	tg_store_free(st);
}

/* A folder's file: under its lock, catch up with it, decide, append. */
static int
record_file(struct tg_trust *t, const struct tg_trust_verdict *v, const char *comment,
    struct tg_err *err)
{
	struct tg_known_lock l;
	enum tg_pin_match m;
	char expected[64] = "";
	int rv;

	if (tg_known_lock(t->known, &l, err) < 0)
		return -1;
	if (tg_trust_refresh(t, err) < 0) {
		tg_known_unlock(&l);
		return -1;
	}
	pthread_mutex_lock(&t->lock);
	m = t->cache ? tg_known_lookup(t->cache, v->identity, v->pin, NULL, expected,
	    sizeof(expected)) : TG_PIN_UNKNOWN;
	pthread_mutex_unlock(&t->lock);
	if (m == TG_PIN_MATCH)
		rv = 0;
	else if (m == TG_PIN_MISMATCH && v->first)
		rv = tg_known_taken(v->identity, v->pin, t->known, expected, err);
	else if ((rv = tg_known_append(t->known, v->identity, v->pin, comment, err)) == 0) {
		struct tg_err e2;
		/* the next judgement sees it; if the list cannot be read now, the
		 * pin is recorded all the same and the next look reports why */
		(void)tg_trust_refresh(t, &e2);
	}
	tg_known_unlock(&l);
	return rv;
}

int
tg_trust_record(struct tg_trust *t, const struct tg_trust_verdict *v, struct tg_err *err)
{
	char comment[64];
	time_t now = time(NULL);
	struct tm tm;
	struct tg_store *st;
	int r;

	if (!v->record)
		return 0;
	gmtime_r(&now, &tm);
	strftime(comment, sizeof(comment), "recorded %Y-%m-%d", &tm);
	if (!t->share)
		return record_file(t, v, comment, err);
	if ((st = share_take(t, err)) == NULL)
		return -1;
	r = tg_known_record(st, t->share_name, t->known, v->identity, v->pin, comment, v->first,
	    err);
	share_give(t, st);
	if (r < 0)
		return -1;
	/* the next judgement must see it before the follower copies it */
	pthread_mutex_lock(&t->lock);
	if (t->cache)   /* without memory, the follower's copy brings it soon */
		(void)tg_known_add(t->cache, v->identity, v->pin);
	pthread_mutex_unlock(&t->lock);
	return 0;
}

int
tg_trust_share(struct tg_trust *t, const struct tg_store_conf *sc, struct tg_err *err)
{
	if (!sc->etcd || t->mode == TG_TRUST_CA)
		return 0;
	if (tg_store_name_of(sc, t->known, t->share_name, sizeof(t->share_name)) < 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s lies outside state_dir (%s): with "
		    "store.backend etcd its pins would bind this node alone; keep the known files "
		    "in state_dir (the default)", t->known, sc->state_dir);
	if ((t->share = malloc(sizeof(*t->share))) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	*t->share = *sc;
	return 1;
}

/* Does one allow pattern (cn:node-*, dns:x.lan, uri:spiffe://a/...) match? */
static int
pattern_matches(const char *pat, X509 *leaf)
{
	GENERAL_NAMES *gens;
	char cn[256];
	int i, hit = 0, type;

	if (!strncmp(pat, "cn:", 3))
		return X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn,
		    sizeof(cn)) >= 0 && fnmatch(pat + 3, cn, 0) == 0;
	if (!strncmp(pat, "dns:", 4))
		type = GEN_DNS, pat += 4;
	else if (!strncmp(pat, "uri:", 4))
		type = GEN_URI, pat += 4;
	else
		return 0;
	gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens && i < sk_GENERAL_NAME_num(gens) && !hit; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_STRING *s = g->type == GEN_DNS ? g->d.dNSName :
		    g->type == GEN_URI ? g->d.uniformResourceIdentifier : NULL;
		char val[512];
		if (g->type != type || s == NULL || ASN1_STRING_length(s) >= (int)sizeof(val))
			continue;
		snprintf(val, sizeof(val), "%.*s", ASN1_STRING_length(s),
		    (const char *)ASN1_STRING_get0_data(s));
		if (strlen(val) == (size_t)ASN1_STRING_length(s))   /* no embedded NUL */
			hit = fnmatch(pat, val, 0) == 0;
	}
	GENERAL_NAMES_free(gens);
	return hit;
}

int
tg_trust_allowed(const struct tg_trust *t, X509 *leaf, struct tg_trust_verdict *v)
{
	char list[600] = "";
	size_t i, n = 0;

	if (t->allow == NULL || t->allow[0] == NULL)
		return 0;
	for (i = 0; t->allow[i]; i++) {
		if (pattern_matches(t->allow[i], leaf))
			return 0;
		n += (size_t)snprintf(list + n, n < sizeof(list) ? sizeof(list) - n : 0, "%s%s",
		    i ? ", " : "", t->allow[i]);
	}
	v->accept = 0;
	v->record = 0;
	set_reason(v, "%s is trusted but not allowed: it matches none of tls.clients.allow (%s)",
	    v->identity, list);
	return -1;
}
