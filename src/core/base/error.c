/*
 * Filling struct tg_err, and turning OpenSSL's error queue into words.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "error.h"
#include "ossl_words.h"

static const struct {
	const char *name;
	enum tg_category cat;
	const char *text;
} tg_codes[] = {
#define X(code, cat, text) [code] = { #code, TG_CAT_##cat, text },
	TG_ERRORS(X)
#undef X
};
_Static_assert(sizeof(tg_codes) / sizeof(tg_codes[0]) == TG_E_INTERNAL + 1,
    "the table has a row for every public code, the last one last");

const char *
tg_code_name(int code)
{
	if (code < 0 || (size_t)code >= sizeof(tg_codes) / sizeof(tg_codes[0]))
		return "TG_E_UNKNOWN";
	return tg_codes[code].name;
}

enum tg_category
tg_code_category(int code)
{
	if (code < 0 || (size_t)code >= sizeof(tg_codes) / sizeof(tg_codes[0]))
		return TG_CAT_INTERNAL;
	return tg_codes[code].cat;
}

void
tg_err_clear(struct tg_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

static void
err_vset(struct tg_err *err, int code, const char *fmt, va_list ap)
{
	err->code = code;
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
}

int
tg_err_set(struct tg_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	err_vset(err, code, fmt, ap);
	va_end(ap);
	return -1;
}

int
tg_err_ossl(struct tg_err *err, int code, const char *fmt, ...)
{
	va_list ap;
	char words[256];
	size_t n;

	tg_ossl_words(words, sizeof(words));
	if (err == NULL)
		return -1;
	va_start(ap, fmt);
	err_vset(err, code, fmt, ap);
	va_end(ap);
	n = strlen(err->msg);
	if (words[0] != '\0' && n + 3 < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s", words);
	return -1;
}
