/*
 * Object magics, checked where an object can be reached late: a libuv
 * callback, a timer, a thread-pool completion. A freed or foreign object
 * there is a bug that would otherwise read or write freed memory quietly,
 * so the check stops the process at once with a line that names the object
 * and the place (an abort, so a core dump or the sanitizer shows the stack).
 */
#ifndef TG_MAGIC_H
#define TG_MAGIC_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define TG_UPLOAD_MAGIC 0x5447554cu   /* "TGUL" */
#define TG_PIPE_MAGIC   0x54475050u   /* "TGPP" */
#define TG_WATCH_MAGIC  0x54474b57u   /* "TGKW": a known-file watch */
#define TG_IDLE_MAGIC   0x5447494cu   /* "TGIL": an idle upstream connection */
#define TG_RECORD_MAGIC 0x54475052u   /* "TGPR": a pin being recorded */

__attribute__((noreturn, cold)) static inline void
tg_magic_fail(const char *what, const void *p, uint32_t seen, const char *where)
{
	fprintf(stderr, "tlsgate: internal error: %s %p reached in %s is freed or corrupt "
	    "(magic %08x); stopping before it does harm\n", what, p, where, (unsigned)seen);
	abort();
}

/* p must be a live object whose magic field holds m. */
#define TG_MAGIC_CHECK(p, m, what) do { \
	if ((p) == NULL) \
		tg_magic_fail(what, NULL, 0, __func__); \
	if ((p)->magic != (m)) \
		tg_magic_fail(what, (p), (p)->magic, __func__); \
} while (0)

#endif
