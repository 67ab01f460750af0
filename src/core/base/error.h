/*
 * The error table (one X-macro: code, category, short text) and the helpers
 * that fill a struct tg_err. Messages are one line: what is wrong, where it
 * came from, and what to do.
 */
#ifndef TG_ERROR_H
#define TG_ERROR_H

#include <tlsgate/tlsgate.h>

#define TG_ERRORS(X) \
	X(TG_E_OK,              INTERNAL, "no error") \
	X(TG_E_USAGE,           USAGE,    "bad command line") \
	X(TG_E_CONFIG_KEY,      CONFIG,   "unknown configuration key") \
	X(TG_E_CONFIG_VALUE,    CONFIG,   "bad configuration value") \
	X(TG_E_CONFIG_SYNTAX,   CONFIG,   "configuration file syntax error") \
	X(TG_E_NOT_FOUND,       IO,       "not found") \
	X(TG_E_EXISTS,          IO,       "already exists") \
	X(TG_E_IO,              IO,       "input/output error") \
	X(TG_E_PERM,            IO,       "unsafe permissions") \
	X(TG_E_LOCKED,          IO,       "locked by another process") \
	X(TG_E_PEM,             PKI,      "not a valid PEM or DER object") \
	X(TG_E_KEY_MISMATCH,    PKI,      "key does not match certificate") \
	X(TG_E_CERT_EXPIRED,    PKI,      "certificate expired") \
	X(TG_E_PKI,             PKI,      "certificate operation failed") \
	X(TG_E_TLS,             TLS,      "TLS failure") \
	X(TG_E_CONNECT,         IO,       "connection failed") \
	X(TG_E_TRUST,           TRUST,    "peer not trusted") \
	X(TG_E_HTTP,            IO,       "HTTP failure") \
	X(TG_E_ACME,            ACME,     "the ACME server refused or failed") \
	X(TG_E_INTERNAL,        INTERNAL, "internal error")

/* enum tg_code itself is public (tlsgate.h), numbered there for good; this
 * table gives each code its category and text (error.c checks it covers
 * them all). */

/* Sets err (which may be NULL) and returns -1, so callers write
 * `return tg_err_set(err, TG_E_IO, "...")`. */
int tg_err_set(struct tg_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Like tg_err_set, appending ": " and the oldest OpenSSL error in words. */
int tg_err_ossl(struct tg_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tg_err_clear(struct tg_err *err);

#endif
