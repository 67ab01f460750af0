/*
 * Known files: parsing, lookup and locked, atomic updates through the
 * store (the file's folder is the store; the lock is the store's lock).
 */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "error.h"
#include "pins.h"
#include "util.h"

#define MAX_KNOWN_BYTES (16 << 20)
#define LOCK_WAIT_MS 10000

#define NO_ENTRY ((size_t)-1)

struct entry {
	char *identity, *pin, *comment;
	size_t line;
	size_t next;                 /* the identity's next entry, in file order */
};

/*
 * An index over the identities, built once per parse (a parse happens when
 * the file changes, not per handshake): open addressing on a hash keyed
 * with a per-process random value (identities come from peers: no one may
 * choose collisions), each slot the identity's first entry, its other pins
 * chained in file order. A lookup costs the same at ten identities as at a
 * hundred thousand.
 */
struct tg_known {
	struct entry *e;
	size_t n, cap;
	size_t *slots, nslots;       /* nslots a power of two, over twice n */
};

static uint64_t hash_key[2];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void
hash_init(void)
{
	if (RAND_bytes((unsigned char *)hash_key, sizeof(hash_key)) != 1)
		hash_key[0] = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&hash_key, hash_key[1] = 1;
}

/* FNV-1a from a secret start, then a splitmix64 finish */
static uint64_t
hash_id(const char *s)
{
	uint64_t h = 1469598103934665603ull ^ hash_key[0];

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	h ^= hash_key[1];
	h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
	return h ^ (h >> 31);
}

static size_t
slot_of(const struct tg_known *k, const char *identity)
{
	size_t m = k->nslots - 1, i = (size_t)hash_id(identity) & m;

	while (k->slots[i] != NO_ENTRY && strcmp(k->e[k->slots[i]].identity, identity) != 0)
		i = (i + 1) & m;
	return i;
}

static int
index_build(struct tg_known *k)
{
	size_t ns = 16, i;

	pthread_once(&hash_once, hash_init);
	while (ns < k->n * 2 + 1)
		ns <<= 1;
	if ((k->slots = malloc(ns * sizeof(*k->slots))) == NULL)
		return -1;
	k->nslots = ns;
	for (i = 0; i < ns; i++)
		k->slots[i] = NO_ENTRY;
	for (i = 0; i < k->n; i++) {
		size_t s = slot_of(k, k->e[i].identity), j;
		k->e[i].next = NO_ENTRY;
		if (k->slots[s] == NO_ENTRY) {
			k->slots[s] = i;
			continue;
		}
		for (j = k->slots[s]; k->e[j].next != NO_ENTRY; j = k->e[j].next)
			;
		k->e[j].next = i;
	}
	return 0;
}

int
tg_pin_valid(const char *s)
{
	size_t i;

	if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + 44 || s[7 + 43] != '=')
		return 0;
	for (i = 7; i < 7 + 43; i++) {
		char c = s[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '+' || c == '/'))
			return 0;
	}
	return 1;
}

int
tg_identity_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 1024)
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || *s == '#' || *s == 0x7f)
			return 0;
	return 1;
}

void
tg_known_free(struct tg_known *k)
{
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i < k->n; i++) {
		free(k->e[i].identity);
		free(k->e[i].pin);
		free(k->e[i].comment);
	}
	free(k->e);
	free(k->slots);
	free(k);
}

static int
add(struct tg_known *k, const char *id, size_t il, const char *pin, size_t pl,
    const char *comment, size_t cl, size_t line)
{
	struct entry *e;

	if (k->n == k->cap) {
		size_t nc = k->cap ? k->cap * 2 : 16;
		struct entry *ne = realloc(k->e, nc * sizeof(*ne));
		if (ne == NULL)
			return -1;
		k->e = ne;
		k->cap = nc;
	}
	e = &k->e[k->n];
	e->identity = strndup(id, il);
	e->pin = strndup(pin, pl);
	e->comment = comment ? strndup(comment, cl) : NULL;
	e->line = line;
	if (!e->identity || !e->pin || (comment && !e->comment)) {
		free(e->identity);
		free(e->pin);
		free(e->comment);
		return -1;
	}
	k->n++;
	return 0;
}

struct tg_known *
tg_known_parse(const char *text, size_t len, const char *name, struct tg_err *err)
{
	struct tg_known *k = calloc(1, sizeof(*k));
	const char *p = text, *end = text + len;
	size_t line = 0;

	if (k == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		return NULL;
	}
	while (p < end) {
		const char *le = memchr(p, '\n', (size_t)(end - p)), *q, *id, *pin, *c = NULL;
		size_t il, pl, cl = 0;
		char pinbuf[64];

		if (le == NULL)
			le = end;
		line++;
		q = p;
		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
		if (q == le || *q == '#' || (*q == '\r' && q + 1 == le))
			goto next;   /* blank or comment line */
		id = q;
		while (q < le && *q != ' ' && *q != '\t')
			q++;
		il = (size_t)(q - id);
		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
		pin = q;
		while (q < le && *q != ' ' && *q != '\t' && *q != '\r')
			q++;
		pl = (size_t)(q - pin);
		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
		if (q < le && *q == '#') {
			c = q + 1;
			while (c < le && *c == ' ')
				c++;
			cl = (size_t)(le - c);
			if (cl && c[cl - 1] == '\r')
				cl--;
		} else if (q < le && !(*q == '\r' && q + 1 == le)) {
			goto bad;
		}
		if (pl >= sizeof(pinbuf) || il == 0 || il > 1024)
			goto bad;
		memcpy(pinbuf, pin, pl);
		pinbuf[pl] = '\0';
		if (!tg_pin_valid(pinbuf) || memchr(id, '#', il) ||
		    memchr(id, '\0', il) || memchr(c ? c : id, '\0', c ? cl : 0))
			goto bad;
		if (add(k, id, il, pin, pl, c, cl, line) < 0) {
			tg_err_set(err, TG_E_INTERNAL, "out of memory");
			goto fail;
		}
next:
		p = le + 1;
	}
	if (index_build(k) < 0) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto fail;
	}
	return k;
bad:
	tg_err_set(err, TG_E_CONFIG_SYNTAX, "%s:%zu: expected IDENTITY sha256:PIN [# comment]; "
	    "fix or remove that line", name, line);
fail:
	tg_known_free(k);
	return NULL;
}

static int
split_path(const char *path, char *dir, size_t dl, const char **base)
{
	const char *slash = strrchr(path, '/');

	tg_path_dir(dir, dl, path);
	*base = slash ? slash + 1 : path;
	return **base ? 0 : -1;
}

struct tg_known *
tg_known_load(const char *path, struct tg_err *err)
{
	unsigned char *text;
	size_t len;
	struct tg_known *k;

	if (tg_read_file(path, &text, &len, MAX_KNOWN_BYTES, err) < 0) {
		if (err->code == TG_E_NOT_FOUND)
			return calloc(1, sizeof(struct tg_known));
		return NULL;
	}
	k = tg_known_parse((const char *)text, len, path, err);
	OPENSSL_free(text);
	return k;
}

enum tg_pin_match
tg_known_lookup(const struct tg_known *k, const char *identity, const char *pin,
    size_t *line, char *expected, size_t elen)
{
	size_t i;
	int seen = 0;

	/* no index: the empty list of a file that does not exist */
	for (i = k->slots ? k->slots[slot_of(k, identity)] : NO_ENTRY; i != NO_ENTRY;
	    i = k->e[i].next) {
		if (strcmp(k->e[i].pin, pin) == 0)
			return TG_PIN_MATCH;
		if (!seen) {
			seen = 1;
			if (line)
				*line = k->e[i].line;
			if (expected)
				snprintf(expected, elen, "%s", k->e[i].pin);
		}
	}
	return seen ? TG_PIN_MISMATCH : TG_PIN_UNKNOWN;
}

int
tg_known_entry(const struct tg_known *k, size_t i, const char **identity, const char **pin,
    const char **comment, size_t *line)
{
	if (i >= k->n)
		return -1;
	*identity = k->e[i].identity;
	*pin = k->e[i].pin;
	*comment = k->e[i].comment;
	*line = k->e[i].line;
	return 0;
}

/* Locks the name, reads it, lets edit() change the text, writes it back. */
static int
locked_edit_in(struct tg_store *st, const char *base, const char *shown,
    int (*edit)(char **text, size_t *len, void *arg), void *arg, struct tg_err *err)
{
	unsigned char *cur = NULL;
	char *text = NULL;
	size_t len = 0;
	int rv = -1, r;

	if (tg_store_lock(st, base, LOCK_WAIT_MS, err) < 0)
		return -1;
	if (tg_store_get(st, base, &cur, &len, err) < 0) {
		if (err->code != TG_E_NOT_FOUND)
			goto unlock;
		len = 0;
	}
	text = malloc(len + 1);
	if (text == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto unlock;
	}
	if (len)
		memcpy(text, cur, len);
	text[len] = '\0';
	{
		/* a file that does not parse is never rewritten */
		struct tg_known *k = tg_known_parse(text, len, shown, err);
		if (k == NULL)
			goto unlock;
		tg_known_free(k);
	}
	r = edit(&text, &len, arg);
	if (r < 0) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto unlock;
	}
	/* 1: write; 0: nothing to write; 2: the edit declined (its arg says why) */
	rv = r == 1 ? tg_store_put(st, base, text, len, 0, err) : 0;
unlock:
	tg_store_unlock(st, base);
	OPENSSL_free(cur);
	free(text);
	return rv;
}

static int
locked_edit(struct tg_store *shared, const char *shared_name, const char *path,
    int (*edit)(char **text, size_t *len, void *arg), void *arg, struct tg_err *err)
{
	char dir[PATH_MAX];
	const char *base;
	struct tg_store *st;
	int rv;

	if (shared)
		return locked_edit_in(shared, shared_name, path, edit, arg, err);
	if (split_path(path, dir, sizeof(dir), &base) < 0)
		return tg_err_set(err, TG_E_USAGE, "%s: not a file name", path);
	if ((st = tg_store_fs_open(dir, err)) == NULL)
		return -1;
	rv = locked_edit_in(st, base, path, edit, arg, err);
	tg_store_free(st);
	return rv;
}

struct rec_arg {
	const char *identity, *pin, *comment;
	int first;                   /* a first contact: only if still unknown */
	int taken;                   /* the identity has another pin by now */
};

static int
rec_edit(char **text, size_t *len, void *varg)
{
	struct rec_arg *a = varg;
	struct tg_err err;
	struct tg_known *k = tg_known_parse(*text, *len, "known", &err);
	char line[2048];
	int n, found;
	char *nt;

	if (k == NULL)
		return -1;
	found = tg_known_lookup(k, a->identity, a->pin, NULL, NULL, 0);
	tg_known_free(k);
	if (found == TG_PIN_MATCH)
		return 0;   /* already there: nothing to write */
	if (found == TG_PIN_MISMATCH && a->first) {
		a->taken = 1;   /* another process pinned another key first */
		return 2;
	}
	n = snprintf(line, sizeof(line), "%s%s %s%s%s\n", *len && (*text)[*len - 1] != '\n' ? "\n" : "",
	    a->identity, a->pin, a->comment ? " # " : "", a->comment ? a->comment : "");
	nt = realloc(*text, *len + (size_t)n + 1);
	if (nt == NULL)
		return -1;
	memcpy(nt + *len, line, (size_t)n + 1);
	*text = nt;
	*len += (size_t)n;
	return 1;
}

int
tg_known_record(struct tg_store *st, const char *name, const char *path, const char *identity,
    const char *pin, const char *comment, int first, struct tg_err *err)
{
	struct rec_arg a = { identity, pin, comment, first, 0 };
	int rv;

	if (!tg_identity_valid(identity))
		return tg_err_set(err, TG_E_USAGE, "'%s' is not a usable identity (no spaces or '#')",
		    identity);
	if (!tg_pin_valid(pin))
		return tg_err_set(err, TG_E_USAGE, "'%s' is not a pin (sha256:BASE64)", pin);
	if (comment && (strchr(comment, '\n') || strchr(comment, '\r')))
		return tg_err_set(err, TG_E_USAGE, "a comment must be one line");
	if ((rv = locked_edit(st, name, path, rec_edit, &a, err)) == 0 && a.taken)
		return tg_err_set(err, TG_E_TRUST, "%s has another key in %s by now (another node or "
		    "process recorded its first contact first); this key is not recorded", identity,
		    path);
	return rv;
}

struct rm_arg {
	const char *identity, *pin;
	size_t removed;
};

static int
rm_edit(char **text, size_t *len, void *varg)
{
	struct rm_arg *a = varg;
	char *p = *text, *end = *text + *len, *w = *text;
	size_t il = strlen(a->identity);

	while (p < end) {
		char *le = memchr(p, '\n', (size_t)(end - p));
		char *q = p;
		size_t ll;
		int drop = 0;
		le = le ? le + 1 : end;
		ll = (size_t)(le - p);
		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
		if ((size_t)(le - q) > il && !strncmp(q, a->identity, il) &&
		    (q[il] == ' ' || q[il] == '\t')) {
			char *pin = q + il;
			while (pin < le && (*pin == ' ' || *pin == '\t'))
				pin++;
			drop = a->pin == NULL || ((size_t)(le - pin) >= strlen(a->pin) &&
			    !strncmp(pin, a->pin, strlen(a->pin)));
		}
		if (drop)
			a->removed++;
		else {
			memmove(w, p, ll);
			w += ll;
		}
		p = le;
	}
	*len = (size_t)(w - *text);
	return a->removed ? 1 : 0;
}

int
tg_known_remove(struct tg_store *st, const char *name, const char *path, const char *identity,
    const char *pin, size_t *removed,
    struct tg_err *err)
{
	struct rm_arg a = { identity, pin, 0 };
	int rv = locked_edit(st, name, path, rm_edit, &a, err);

	*removed = a.removed;
	return rv;
}
