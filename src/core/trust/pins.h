/*
 * The known-clients / known-servers files: one "IDENTITY PIN [# comment]" a
 * line, '#' comment lines kept, several pins per identity allowed. A pin is
 * "sha256:" + base64 of SHA-256 over the SubjectPublicKeyInfo.
 *
 * A first contact appends one line under the file's lock (never a rewrite),
 * and a reader that holds the list catches up by reading only what was
 * appended: a million identities cost a first contact and a handshake what
 * ten do. A removal rewrites the file (rare; readers then read it again).
 *
 * In a cluster (store.backend etcd) each identity is one key in the store,
 * created in a transaction (pins_etcd.c); the node's follower appends new
 * ones to PATH.pins, which is read as part of PATH.
 */
#ifndef TG_PINS_H
#define TG_PINS_H

#include <stddef.h>

#include <tlsgate/tlsgate.h>

struct tg_known;

/* Parses a known file's text; name is used in messages ("known-servers:3"). */
struct tg_known *tg_known_parse(const char *text, size_t len, const char *name,
    struct tg_err *err);
/* Loads a file and its PATH.pins (a missing file is an empty list). */
struct tg_known *tg_known_load(const char *path, struct tg_err *err);
void tg_known_free(struct tg_known *k);
size_t tg_known_count(const struct tg_known *k);

/* Catching up with appends, in two steps so the reading happens outside
 * the lock that guards k: tg_known_catch_up reads what was appended to
 * PATH (or PATH.pins) since k was read, tg_known_apply_tail adds it to k.
 * catch_up reads only k's record of the file (offset, fingerprints), which
 * only apply_tail changes: a caller serialises catch_up/apply_tail pairs
 * (trust.c: refresh_lock), while lookups and tg_known_add (which leave
 * that record alone) take the lock that guards the entries. */
enum { TG_KNOWN_SAME, TG_KNOWN_GREW, TG_KNOWN_RELOAD };
struct tg_known_tail;
/* TG_KNOWN_GREW with *tail set, _SAME, _RELOAD (rewritten: load it
 * again), or -1 (err set). */
int tg_known_catch_up(const struct tg_known *k, const char *path, struct tg_known_tail **tail,
    struct tg_err *err);
/* Adds the tail's whole lines; a no-op if k moved on meanwhile. -1: a line
 * that does not parse (k unchanged). */
int tg_known_apply_tail(struct tg_known *k, const struct tg_known_tail *tail, const char *path,
    struct tg_err *err);
void tg_known_tail_free(struct tg_known_tail *tail);
/* Adds one pin to k itself (a pin just recorded in the cluster, before the
 * follower copies it); a no-op when k has it. */
int tg_known_add(struct tg_known *k, const char *identity, const char *pin);

enum tg_pin_match { TG_PIN_UNKNOWN, TG_PIN_MATCH, TG_PIN_MISMATCH };
/* Looks identity up; on a mismatch *line and expected tell the first known
 * pin of that identity. */
enum tg_pin_match tg_known_lookup(const struct tg_known *k, const char *identity,
    const char *pin, size_t *line, char *expected, size_t elen);

/* Is identity's first pin from PATH.pins (the cluster's pins)? */
int tg_known_in_journal(const struct tg_known *k, const char *identity);

/* Iteration for `trust list`: the i-th entry, or -1 past the end. */
int tg_known_entry(const struct tg_known *k, size_t i, const char **identity,
    const char **pin, const char **comment, size_t *line);

/* Adds identity+pin to the file (no-op if present). first: a first contact,
 * refused (TG_E_TRUST) if the identity has another pin by now. st NULL: the file at
 * path, locked with flock; otherwise the name in st (a cluster's store,
 * locked there), path only naming it in messages. */
int tg_known_record(struct tg_store *st, const char *name, const char *path,
    const char *identity, const char *pin, const char *comment, int first, struct tg_err *err);
/* Removes identity's lines (only the one pin when pin is given); *removed
 * counts them. st, name, path as for tg_known_record. */
int tg_known_remove(struct tg_store *st, const char *name, const char *path,
    const char *identity, const char *pin, size_t *removed, struct tg_err *err);

/* The lock of a known file (a flock in its folder's .locks), which every
 * writer takes: tlsgate trust, the server, other processes. */
struct tg_known_lock {
	struct tg_store *st;
	char base[256];
};
int tg_known_lock(const char *path, struct tg_known_lock *l, struct tg_err *err);
void tg_known_unlock(struct tg_known_lock *l);
/* Appends one line (lock held): one write, then fsync. */
int tg_known_append(const char *path, const char *identity, const char *pin,
    const char *comment, struct tg_err *err);
/* The error of a first contact that lost the race to another key (pin
 * presented, expected the one where holds). */
int tg_known_taken(const char *identity, const char *pin, const char *where,
    const char *expected, struct tg_err *err);
/* Drops identity's lines (only the one pin when pin is given) from text;
 * returns how many. */
size_t tg_known_drop(char *text, size_t *len, const char *identity, const char *pin);

/* ---- the cluster's pins (pins_etcd.c): st an etcd store ---------------- */

/* Creates pins/NAME/IDENTITY if absent (first: refused, TG_E_TRUST, when
 * it holds another key), else adds the pin to it: transactions, no lock. */
int tg_known_etcd_record(struct tg_store *st, const char *name, const char *identity,
    const char *pin, const char *comment, int first, struct tg_err *err);
/* Removes identity from NAME (the copied file) and pins/NAME/IDENTITY in
 * one transaction. */
int tg_known_etcd_remove(struct tg_store *st, const char *name, const char *identity,
    const char *pin, size_t *removed, struct tg_err *err);
/* NAME's whole list: the file's text, then every pin key's lines
 * (malloc'ed; *text NULL and *len 0 when there is none; without pin keys
 * exactly the file's bytes). */
int tg_known_etcd_text(struct tg_store *st, const char *name, char **text, size_t *len,
    struct tg_err *err);
/* Only the pin keys' lines, and the revision they were read at. */
int tg_known_etcd_pins(struct tg_store *st, const char *name, char **text, size_t *len,
    long long *rev, struct tg_err *err);
/* The key part of an identity (percent-encoded: no '/', '%', spaces). */
void tg_known_etcd_idkey(char *buf, size_t len, const char *identity);

/* Is s a well-formed pin ("sha256:" + 44 base64 characters)? */
int tg_pin_valid(const char *s);
/* Is s a well-formed identity (no spaces, no '#', printable)? */
int tg_identity_valid(const char *s);

#endif
