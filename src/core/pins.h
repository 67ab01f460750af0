/*
 * The known-clients / known-servers files: one "IDENTITY PIN [# comment]" a
 * line, '#' comment lines kept, several pins per identity allowed. A pin is
 * "sha256:" + base64 of SHA-256 over the SubjectPublicKeyInfo. Updates go
 * through the store: locked, re-read under the lock, written atomically, so
 * two processes recording at once lose nothing.
 */
#ifndef TG_PINS_H
#define TG_PINS_H

#include <stddef.h>

#include <tlsgate/tlsgate.h>

struct tg_known;

/* Parses a known file's text; name is used in messages ("known-servers:3"). */
struct tg_known *tg_known_parse(const char *text, size_t len, const char *name,
    struct tg_err *err);
/* Loads a file (a missing file is an empty list). */
struct tg_known *tg_known_load(const char *path, struct tg_err *err);
void tg_known_free(struct tg_known *k);

enum tg_pin_match { TG_PIN_UNKNOWN, TG_PIN_MATCH, TG_PIN_MISMATCH };
/* Looks identity up; on a mismatch *line and expected tell the first known
 * pin of that identity. */
enum tg_pin_match tg_known_lookup(const struct tg_known *k, const char *identity,
    const char *pin, size_t *line, char *expected, size_t elen);

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

/* Is s a well-formed pin ("sha256:" + 44 base64 characters)? */
int tg_pin_valid(const char *s);
/* Is s a well-formed identity (no spaces, no '#', printable)? */
int tg_identity_valid(const char *s);

#endif
