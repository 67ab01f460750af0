/*
 * Known files: parsing, lookup and locked, atomic updates through the
 * store (the file's folder is the store; the lock is the store's lock).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "error.h"
#include "pins.h"
#include "util.h"

#define MAX_KNOWN_BYTES (1u << 30)   /* a million identities take ~100 MB */
#define LOCK_WAIT_MS 10000
#define FP_LEN 32                     /* bytes before the covered end, compared */

#define NO_ENTRY UINT32_MAX

struct entry {
	const char *identity, *pin, *comment;   /* into the chunks */
	uint32_t line;               /* in its file */
	uint32_t next;               /* the identity's next entry, in file order */
	unsigned char journal;       /* from PATH.pins (a cluster's pins), not PATH */
};

/* The text entries point into: each parse or extension copies its bytes
 * once and cuts the fields in place (no allocation per entry). */
struct chunk {
	struct chunk *next;
	char text[];
};

/*
 * An index over the identities, built as lines are read (a read happens
 * when the file changes, not per handshake): open addressing on a hash
 * keyed with a per-process random value (identities come from peers: no one
 * may choose collisions), each slot the identity's first entry, its other
 * pins chained in file order. A lookup costs the same at ten identities as
 * at a million, and lines appended later are added to the same index
 * (tg_known_catch_up), so a first contact does not re-read the list.
 */
struct tg_known {
	struct entry *e;
	size_t n, cap;
	uint32_t *slots;
	size_t nslots;               /* a power of two, over twice n; 0 without index */
	struct chunk *chunks;
	/* the file later lines are appended to: PATH.pins when it exists
	 * (a cluster node's copy of the store's pins), else PATH itself */
	int tail_journal;
	dev_t tail_dev;
	ino_t tail_ino;              /* 0: the file did not exist */
	off_t tail_off;              /* covered up to here (just past a '\n') */
	struct timespec tail_mtime;
	unsigned char fp[FP_LEN];    /* the bytes just before tail_off */
	size_t fplen;
	unsigned char head[FP_LEN];  /* and the first ones */
	size_t headlen;
	size_t tail_lines;           /* lines before tail_off */
	struct stat base_st;         /* PATH, when the tail is the journal */
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

/* Links entry i at the end of its identity's chain. */
static void
index_link(struct tg_known *k, size_t i)
{
	size_t s = slot_of(k, k->e[i].identity), j;

	k->e[i].next = NO_ENTRY;
	if (k->slots[s] == NO_ENTRY) {
		k->slots[s] = (uint32_t)i;
		return;
	}
	for (j = k->slots[s]; k->e[j].next != NO_ENTRY; j = k->e[j].next)
		;
	k->e[j].next = (uint32_t)i;
}

/* Room in the index for one more entry: doubles and re-links when due. */
static int
index_room(struct tg_known *k)
{
	size_t ns = k->nslots ? k->nslots : 16, i;
	uint32_t *sl;

	pthread_once(&hash_once, hash_init);
	while (ns < (k->n + 1) * 2 + 1)
		ns <<= 1;
	if (ns == k->nslots)
		return 0;
	if (ns > (size_t)UINT32_MAX || (sl = malloc(ns * sizeof(*sl))) == NULL)
		return -1;
	for (i = 0; i < ns; i++)
		sl[i] = NO_ENTRY;
	free(k->slots);
	k->slots = sl;
	k->nslots = ns;
	for (i = 0; i < k->n; i++)
		index_link(k, i);
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
	struct chunk *c, *nc;

	if (k == NULL)
		return;
	for (c = k->chunks; c; c = nc) {
		nc = c->next;
		free(c);
	}
	free(k->e);
	free(k->slots);
	free(k);
}

size_t
tg_known_count(const struct tg_known *k)
{
	return k ? k->n : 0;
}

/* One line's fields, as offsets into it. */
struct fields {
	const char *id, *pin, *c;
	size_t il, pl, cl;
};

/* 1: an entry; 0: blank or comment; -1: not a line of a known file */
static int
parse_line(const char *p, const char *le, struct fields *f)
{
	const char *q = p;
	char pinbuf[64];

	memset(f, 0, sizeof(*f));
	while (q < le && (*q == ' ' || *q == '\t'))
		q++;
	if (q == le || *q == '#' || (*q == '\r' && q + 1 == le))
		return 0;
	f->id = q;
	while (q < le && *q != ' ' && *q != '\t')
		q++;
	f->il = (size_t)(q - f->id);
	while (q < le && (*q == ' ' || *q == '\t'))
		q++;
	f->pin = q;
	while (q < le && *q != ' ' && *q != '\t' && *q != '\r')
		q++;
	f->pl = (size_t)(q - f->pin);
	while (q < le && (*q == ' ' || *q == '\t'))
		q++;
	if (q < le && *q == '#') {
		f->c = q + 1;
		while (f->c < le && *f->c == ' ')
			f->c++;
		f->cl = (size_t)(le - f->c);
		if (f->cl && f->c[f->cl - 1] == '\r')
			f->cl--;
	} else if (q < le && !(*q == '\r' && q + 1 == le)) {
		return -1;
	}
	if (f->pl >= sizeof(pinbuf) || f->il == 0 || f->il > 1024)
		return -1;
	memcpy(pinbuf, f->pin, f->pl);
	pinbuf[f->pl] = '\0';
	if (!tg_pin_valid(pinbuf) || memchr(f->id, '#', f->il) || memchr(f->id, '\0', f->il) ||
	    (f->c && memchr(f->c, '\0', f->cl)))
		return -1;
	return 1;
}

/* Adds an entry unless its identity has that pin already (a line seen
 * twice: appended by this node and then copied by the follower). */
static int
add(struct tg_known *k, char *id, char *pin, char *comment, size_t line, int journal)
{
	struct entry *e;
	size_t i;

	if (k->nslots) {
		for (i = k->slots[slot_of(k, id)]; i != NO_ENTRY; i = k->e[i].next)
			if (strcmp(k->e[i].pin, pin) == 0)
				return 0;
	}
	if (k->n >= (size_t)UINT32_MAX - 1)
		return -1;
	if (k->n == k->cap) {
		size_t nc = k->cap ? k->cap * 2 : 16;
		struct entry *ne = realloc(k->e, nc * sizeof(*ne));
		if (ne == NULL)
			return -1;
		k->e = ne;
		k->cap = nc;
	}
	if (index_room(k) < 0)
		return -1;
	e = &k->e[k->n];
	e->identity = id;
	e->pin = pin;
	e->comment = comment;
	e->line = line > UINT32_MAX ? UINT32_MAX : (uint32_t)line;
	e->journal = (unsigned char)journal;
	index_link(k, k->n);
	k->n++;
	return 0;
}

/* Reads text's lines into k: all of them, or (a line that does not parse)
 * none. Line numbers go on from first_line. */
static int
extend(struct tg_known *k, const char *text, size_t len, const char *name, size_t first_line,
    int journal, struct tg_err *err)
{
	const char *p = text, *end = text + len;
	struct chunk *c;
	struct fields f;
	size_t line = first_line;

	/* first every line, so a bad one leaves k as it was */
	while (p < end) {
		const char *le = memchr(p, '\n', (size_t)(end - p));
		if (le == NULL)
			le = end;
		line++;
		if (parse_line(p, le, &f) < 0) {
			/* strict, the last line too: a typo must not make an
			 * identity unknown (and open to a first contact). A read
			 * that met an append half-way fails once, and the watch
			 * reads again when the write ends. */
			return tg_err_set(err, TG_E_CONFIG_SYNTAX, "%s:%zu: expected IDENTITY sha256:PIN "
			    "[# comment]; fix or remove that line", name, line);
		}
		p = le + 1;
	}
	if ((c = malloc(sizeof(*c) + len + 1)) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	memcpy(c->text, text, len);
	c->text[len] = '\0';
	c->next = k->chunks;
	k->chunks = c;
	p = c->text;
	end = c->text + len;
	line = first_line;
	while (p < end) {
		char *le = memchr(p, '\n', (size_t)(end - p)), *b = (char *)p;
		if (le == NULL)
			le = (char *)end;
		line++;
		if (parse_line(p, le, &f) == 1) {
			char *id = b + (f.id - p), *pin = b + (f.pin - p), *cm = f.c ? b + (f.c - p) : NULL;
			id[f.il] = '\0';
			pin[f.pl] = '\0';
			if (cm)
				cm[f.cl] = '\0';
			if (add(k, id, pin, cm, line, journal) < 0)
				return tg_err_set(err, TG_E_INTERNAL, "out of memory");
		}
		p = le + 1;
	}
	return 0;
}

struct tg_known *
tg_known_parse(const char *text, size_t len, const char *name, struct tg_err *err)
{
	struct tg_known *k = calloc(1, sizeof(*k));

	if (k == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		return NULL;
	}
	if (extend(k, text, len, name, 0, 0, err) < 0) {
		tg_known_free(k);
		return NULL;
	}
	return k;
}

static size_t
count_lines(const char *p, size_t len)
{
	size_t n = 0;
	const char *e = p + len;

	while (p < e && (p = memchr(p, '\n', (size_t)(e - p))) != NULL) {
		n++;
		p++;
	}
	return n;
}

/* Notes where the file appended to ends: the whole lines of text (the
 * file's bytes), so what is written after them can be read alone. */
static void
note_tail(struct tg_known *k, const struct stat *sb, const char *text, size_t len, size_t lines0)
{
	const char *nl = len ? memrchr(text, '\n', len) : NULL;
	size_t covered = nl ? (size_t)(nl - text) + 1 : 0;

	k->tail_dev = sb->st_dev;
	k->tail_ino = sb->st_ino;
	if (k->tail_off == 0 && covered > 0) {
		k->headlen = covered < FP_LEN ? covered : FP_LEN;
		memcpy(k->head, text, k->headlen);
	}
	k->tail_off += (off_t)covered;
	k->tail_mtime = sb->st_mtim;
	k->tail_lines = lines0 + count_lines(text, covered);
	if (covered >= FP_LEN) {
		memcpy(k->fp, text + covered - FP_LEN, FP_LEN);
		k->fplen = FP_LEN;
	} else if (covered > 0) {
		/* a short step: keep the end of the old fingerprint too */
		size_t keep = k->fplen + covered > FP_LEN ? FP_LEN - covered : k->fplen;
		memmove(k->fp, k->fp + k->fplen - keep, keep);
		memcpy(k->fp + keep, text, covered);
		k->fplen = keep + covered;
	}
}

static void
journal_path(char *buf, size_t len, const char *path)
{
	snprintf(buf, len, "%s.pins", path);
}

/* The file's bytes and its stat from one open file; 1 when it does not
 * exist (empty), -1 on an error. */
static int
read_stat(const char *path, unsigned char **text, size_t *len, struct stat *sb, struct tg_err *err)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	unsigned char *buf;
	size_t got = 0;

	*text = NULL;
	*len = 0;
	memset(sb, 0, sizeof(*sb));
	if (fd < 0) {
		if (errno == ENOENT)
			return 1;
		return tg_err_set(err, TG_E_IO, "cannot read %s: %s", path, strerror(errno));
	}
	if (fstat(fd, sb) < 0 || (uint64_t)sb->st_size > MAX_KNOWN_BYTES) {
		close(fd);
		return tg_err_set(err, TG_E_IO, "%s: %s", path, (uint64_t)sb->st_size > MAX_KNOWN_BYTES ?
		    "larger than 1 GiB; is it a known file?" : strerror(errno));
	}
	if ((buf = malloc((size_t)sb->st_size + 1)) == NULL) {
		close(fd);
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	}
	while (got < (size_t)sb->st_size) {
		ssize_t r = read(fd, buf + got, (size_t)sb->st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;   /* shorter than its stat: cut where it ends now */
		got += (size_t)r;
	}
	close(fd);
	*text = buf;
	*len = got;
	return 0;
}

struct tg_known *
tg_known_load(const char *path, struct tg_err *err)
{
	char jpath[PATH_MAX + 8];
	unsigned char *text, *jtext;
	size_t len, jlen;
	struct stat sb, jsb;
	struct tg_known *k;
	int r, jr;

	if ((r = read_stat(path, &text, &len, &sb, err)) < 0)
		return NULL;
	journal_path(jpath, sizeof(jpath), path);
	if ((jr = read_stat(jpath, &jtext, &jlen, &jsb, err)) < 0) {
		free(text);
		return NULL;
	}
	k = tg_known_parse(text ? (const char *)text : "", len, path, err);
	if (k && jr == 0 && extend(k, (const char *)jtext, jlen, jpath, 0, 1, err) < 0) {
		tg_known_free(k);
		k = NULL;
	}
	if (k && jr == 0) {
		k->tail_journal = 1;
		k->base_st = sb;
		note_tail(k, &jsb, (const char *)jtext, jlen, 0);
	} else if (k && r == 0) {
		note_tail(k, &sb, (const char *)text, len, 0);
	}
	free(text);
	free(jtext);
	return k;
}

static int
same_file(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_dev == b->st_dev && a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

struct tg_known_tail {
	char *text;
	size_t len;
	off_t from;
	struct stat sb;
	int journal;
};

void
tg_known_tail_free(struct tg_known_tail *t)
{
	if (t) {
		free(t->text);
		free(t);
	}
}

int
tg_known_catch_up(const struct tg_known *k, const char *path, struct tg_known_tail **out,
    struct tg_err *err)
{
	char jpath[PATH_MAX + 8];
	const char *tpath = path;
	struct stat bs, js, ts;
	struct tg_known_tail *t;
	unsigned char fp[FP_LEN];
	size_t want;
	ssize_t r;
	int fd;

	*out = NULL;
	if (k == NULL)
		return TG_KNOWN_RELOAD;
	journal_path(jpath, sizeof(jpath), path);
	if (stat(path, &bs) < 0)
		memset(&bs, 0, sizeof(bs));
	if (stat(jpath, &js) < 0)
		memset(&js, 0, sizeof(js));
	if (k->tail_journal) {
		if (!same_file(&bs, &k->base_st) || js.st_ino == 0)
			return TG_KNOWN_RELOAD;
		ts = js;
		tpath = jpath;
	} else {
		if (js.st_ino != 0)
			return TG_KNOWN_RELOAD;   /* a cluster's pins appeared */
		ts = bs;
	}
	if (ts.st_ino == 0 && k->tail_ino == 0)
		return TG_KNOWN_SAME;        /* still no file */
	if (ts.st_ino != k->tail_ino || ts.st_dev != k->tail_dev || ts.st_size < k->tail_off)
		return TG_KNOWN_RELOAD;      /* replaced or cut: read again */
	if (ts.st_size == k->tail_off) {
		/* as long as before: unchanged, unless rewritten in place */
		return ts.st_mtim.tv_sec == k->tail_mtime.tv_sec &&
		    ts.st_mtim.tv_nsec == k->tail_mtime.tv_nsec ? TG_KNOWN_SAME : TG_KNOWN_RELOAD;
	}
	if ((uint64_t)ts.st_size - (uint64_t)k->tail_off > MAX_KNOWN_BYTES)
		return TG_KNOWN_RELOAD;
	if ((fd = open(tpath, O_RDONLY | O_CLOEXEC)) < 0)
		return errno == ENOENT ? TG_KNOWN_RELOAD :
		    tg_err_set(err, TG_E_IO, "cannot read %s: %s", tpath, strerror(errno));
	/* what was covered must still begin and end as it did: else the file
	 * was rewritten in place (an editor), not appended to. (An edit in
	 * place that keeps both ends and adds lines is taken for an append;
	 * tlsgate trust and editors that save by rename replace the file.) */
	if ((k->fplen && (pread(fd, fp, k->fplen, k->tail_off - (off_t)k->fplen) !=
	    (ssize_t)k->fplen || memcmp(fp, k->fp, k->fplen) != 0)) ||
	    (k->headlen && (pread(fd, fp, k->headlen, 0) != (ssize_t)k->headlen ||
	    memcmp(fp, k->head, k->headlen) != 0))) {
		close(fd);
		return TG_KNOWN_RELOAD;
	}
	want = (size_t)(ts.st_size - k->tail_off);
	if ((t = calloc(1, sizeof(*t))) == NULL || (t->text = malloc(want + 1)) == NULL) {
		close(fd);
		free(t);
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	}
	r = pread(fd, t->text, want, k->tail_off);
	close(fd);
	if (r < 0) {
		tg_known_tail_free(t);
		return tg_err_set(err, TG_E_IO, "cannot read %s: %s", tpath, strerror(errno));
	}
	t->len = (size_t)r;
	t->text[t->len] = '\0';
	t->from = k->tail_off;
	t->sb = ts;
	t->journal = k->tail_journal;
	*out = t;
	return TG_KNOWN_GREW;
}

int
tg_known_apply_tail(struct tg_known *k, const struct tg_known_tail *t, const char *path,
    struct tg_err *err)
{
	const char *nl = t->len ? memrchr(t->text, '\n', t->len) : NULL;
	size_t covered = nl ? (size_t)(nl - t->text) + 1 : 0;
	char shown[PATH_MAX + 8];

	if (k->tail_off != t->from || k->tail_journal != t->journal)
		return 0;   /* someone else caught up meanwhile */
	if (covered == 0)
		return 0;   /* a line being written: later */
	if (t->journal)
		journal_path(shown, sizeof(shown), path);
	else
		snprintf(shown, sizeof(shown), "%s", path);
	if (extend(k, t->text, covered, shown, k->tail_lines, t->journal, err) < 0)
		return -1;
	note_tail(k, &t->sb, t->text, covered, k->tail_lines);
	return 0;
}

int
tg_known_add(struct tg_known *k, const char *identity, const char *pin)
{
	struct chunk *c;
	size_t il = strlen(identity), pl = strlen(pin);

	if ((c = malloc(sizeof(*c) + il + pl + 2)) == NULL)
		return -1;
	memcpy(c->text, identity, il + 1);
	memcpy(c->text + il + 1, pin, pl + 1);
	c->next = k->chunks;
	k->chunks = c;
	return add(k, c->text, c->text + il + 1, NULL, 0, 1);
}

static int
split_path(const char *path, char *dir, size_t dl, const char **base)
{
	const char *slash = strrchr(path, '/');

	tg_path_dir(dir, dl, path);
	*base = slash ? slash + 1 : path;
	return **base ? 0 : -1;
}

enum tg_pin_match
tg_known_lookup(const struct tg_known *k, const char *identity, const char *pin,
    size_t *line, char *expected, size_t elen)
{
	size_t i;
	int seen = 0;

	/* no index: an empty list */
	for (i = k->nslots ? k->slots[slot_of(k, identity)] : NO_ENTRY; i != NO_ENTRY;
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

int
tg_known_lock(const char *path, struct tg_known_lock *l, struct tg_err *err)
{
	char dir[PATH_MAX];
	const char *base;

	memset(l, 0, sizeof(*l));
	if (split_path(path, dir, sizeof(dir), &base) < 0)
		return tg_err_set(err, TG_E_USAGE, "%s: not a file name", path);
	snprintf(l->base, sizeof(l->base), "%s", base);
	if ((l->st = tg_store_fs_open(dir, err)) == NULL)
		return -1;
	if (tg_store_lock(l->st, l->base, LOCK_WAIT_MS, err) < 0) {
		tg_store_free(l->st);
		l->st = NULL;
		return -1;
	}
	return 0;
}

void
tg_known_unlock(struct tg_known_lock *l)
{
	if (l->st == NULL)
		return;
	tg_store_unlock(l->st, l->base);
	tg_store_free(l->st);
	l->st = NULL;
}

/* One line of the file. */
static int
format_line(char *buf, size_t len, const char *identity, const char *pin, const char *comment)
{
	int n = snprintf(buf, len, "%s %s%s%s\n", identity, pin, comment ? " # " : "",
	    comment ? comment : "");

	return n < 0 || (size_t)n >= len ? -1 : n;
}

int
tg_known_append(const char *path, const char *identity, const char *pin, const char *comment,
    struct tg_err *err)
{
	char line[2200], last = '\n';
	struct stat sb;
	int fd, n, created;
	size_t off = 0;

	if ((n = format_line(line + 1, sizeof(line) - 1, identity, pin, comment)) < 0)
		return tg_err_set(err, TG_E_USAGE, "%s: identity or comment too long", identity);
	created = access(path, F_OK) != 0;
	if ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0)
		return tg_err_set(err, TG_E_IO, "cannot write %s: %s", path, strerror(errno));
	if (fstat(fd, &sb) < 0) {
		int e = errno;
		close(fd);
		return tg_err_set(err, TG_E_IO, "cannot write %s: %s", path, strerror(e));
	}
	if (sb.st_size > 0) {
		int rfd = open(path, O_RDONLY | O_CLOEXEC);
		if (rfd < 0 || pread(rfd, &last, 1, sb.st_size - 1) != 1)
			last = '\n';
		if (rfd >= 0)
			close(rfd);
	}
	/* a last line without its newline (edited by hand) gets one first */
	line[0] = '\n';
	off = last == '\n';
	n += (int)!off;
	/* one write of a whole line, O_APPEND: a reader sees it all or none */
	if (tg_write_all(fd, line + off, (size_t)n) < 0 || fsync(fd) < 0) {
		int e = errno;
		/* what was written (all, some) is cut off again: the caller is
		 * told the pin is not recorded, so it must not be there */
		if (ftruncate(fd, sb.st_size) == 0)
			(void)fsync(fd);
		close(fd);
		return tg_err_set(err, TG_E_IO, "cannot write %s: %s%s", path,
		    strerror(e), e == ENOSPC ? " (the disk is full; free space, the pin was not "
		    "recorded)" : "");
	}
	if (close(fd) < 0)
		return tg_err_set(err, TG_E_IO, "cannot write %s: %s", path, strerror(errno));
	if (created)
		(void)tg_fsync_parent(path);
	return 0;
}

/* Locks the file, reads it, lets edit() change the text, writes it back
 * whole (a new file renamed over the old: a removal, which is rare). */
static int
locked_edit(const char *path, int (*edit)(char **text, size_t *len, void *arg), void *arg,
    struct tg_err *err)
{
	struct tg_known_lock l;
	unsigned char *cur = NULL;
	char *text = NULL;
	size_t len = 0;
	int rv = -1, r;

	if (tg_known_lock(path, &l, err) < 0)
		return -1;
	if (tg_store_get(l.st, l.base, &cur, &len, err) < 0) {
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
		struct tg_known *k = tg_known_parse(text, len, path, err);
		if (k == NULL)
			goto unlock;
		tg_known_free(k);
	}
	r = edit(&text, &len, arg);
	if (r < 0) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto unlock;
	}
	rv = r == 1 ? tg_store_put(l.st, l.base, text, len, 0, err) : 0;
unlock:
	tg_known_unlock(&l);
	OPENSSL_free(cur);
	free(text);
	return rv;
}

static int
record_args_ok(const char *identity, const char *pin, const char *comment, struct tg_err *err)
{
	if (!tg_identity_valid(identity))
		return tg_err_set(err, TG_E_USAGE, "'%s' is not a usable identity (no spaces or '#')",
		    identity);
	if (!tg_pin_valid(pin))
		return tg_err_set(err, TG_E_USAGE, "'%s' is not a pin (sha256:BASE64)", pin);
	if (comment && (strchr(comment, '\n') || strchr(comment, '\r')))
		return tg_err_set(err, TG_E_USAGE, "a comment must be one line");
	return 0;
}

int
tg_known_taken(const char *identity, const char *pin, const char *where, const char *expected,
    struct tg_err *err)
{
	return tg_err_set(err, TG_E_TRUST, "THE KEY OF %s HAS CHANGED: it presented %s, but %s "
	    "pins %s (another node or process recorded its first contact first); this key is not "
	    "recorded. Someone may be impersonating it, or its key was replaced. If the change is "
	    "expected: tlsgate trust remove %s", identity, pin, where, expected, identity);
}

int
tg_known_record(struct tg_store *st, const char *name, const char *path, const char *identity,
    const char *pin, const char *comment, int first, struct tg_err *err)
{
	struct tg_known_lock l;
	struct tg_known *k;
	enum tg_pin_match m;
	char expected[64] = "";
	int rv;

	if (record_args_ok(identity, pin, comment, err) < 0)
		return -1;
	if (st != NULL)
		return tg_known_etcd_record(st, name, identity, pin, comment, first, err);
	if (tg_known_lock(path, &l, err) < 0)
		return -1;
	/* read whole under the lock (the CLI; the server's judge keeps an index
	 * and appends through tg_known_append) */
	if ((k = tg_known_load(path, err)) == NULL) {
		tg_known_unlock(&l);
		return -1;
	}
	m = tg_known_lookup(k, identity, pin, NULL, expected, sizeof(expected));
	tg_known_free(k);
	if (m == TG_PIN_MATCH)
		rv = 0;
	else if (m == TG_PIN_MISMATCH && first)
		rv = tg_known_taken(identity, pin, path, expected, err);
	else
		rv = tg_known_append(path, identity, pin, comment, err);
	tg_known_unlock(&l);
	return rv;
}

struct rm_arg {
	const char *identity, *pin;
	size_t removed;
};

size_t
tg_known_drop(char *text, size_t *len, const char *identity, const char *pin)
{
	char *p = text, *end = text + *len, *w = text;
	size_t il = strlen(identity), removed = 0;

	while (p < end) {
		char *le = memchr(p, '\n', (size_t)(end - p));
		char *q = p;
		size_t ll;
		int drop = 0;
		le = le ? le + 1 : end;
		ll = (size_t)(le - p);
		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
		if ((size_t)(le - q) > il && !strncmp(q, identity, il) &&
		    (q[il] == ' ' || q[il] == '\t')) {
			char *pn = q + il;
			while (pn < le && (*pn == ' ' || *pn == '\t'))
				pn++;
			drop = pin == NULL || ((size_t)(le - pn) >= strlen(pin) &&
			    !strncmp(pn, pin, strlen(pin)));
		}
		if (drop)
			removed++;
		else {
			memmove(w, p, ll);
			w += ll;
		}
		p = le;
	}
	*len = (size_t)(w - text);
	return removed;
}

static int
rm_edit(char **text, size_t *len, void *varg)
{
	struct rm_arg *a = varg;

	a->removed = tg_known_drop(*text, len, a->identity, a->pin);
	return a->removed ? 1 : 0;
}

int
tg_known_remove(struct tg_store *st, const char *name, const char *path, const char *identity,
    const char *pin, size_t *removed, struct tg_err *err)
{
	struct rm_arg a = { identity, pin, 0 };
	int rv;

	if (st != NULL)
		return tg_known_etcd_remove(st, name, identity, pin, removed, err);
	{
		/* both files read before either is written: a removal is not
		 * left half done by a PATH.pins that does not parse */
		struct tg_known *k = tg_known_load(path, err);
		if (k == NULL)
			return -1;
		tg_known_free(k);
	}
	rv = locked_edit(path, rm_edit, &a, err);
	*removed = a.removed;
	if (rv == 0) {
		/* PATH.pins is read as part of the list (a cluster's pins left
		 * in a node's state_dir): what is removed goes from there too */
		char jpath[PATH_MAX + 8];
		struct rm_arg b = { identity, pin, 0 };
		journal_path(jpath, sizeof(jpath), path);
		if (access(jpath, F_OK) == 0 && (rv = locked_edit(jpath, rm_edit, &b, err)) == 0)
			*removed += b.removed;
	}
	return rv;
}

int
tg_known_in_journal(const struct tg_known *k, const char *identity)
{
	size_t i = k->nslots ? k->slots[slot_of(k, identity)] : NO_ENTRY;

	return i != NO_ENTRY && k->e[i].journal;
}
