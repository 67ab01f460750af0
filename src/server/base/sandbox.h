/*
 * Giving up privileges the server no longer needs once it is set up. The
 * Linux implementation is sandbox_linux.c.
 */
#ifndef TG_SANDBOX_H
#define TG_SANDBOX_H

#include <stddef.h>

#include <tlsgate/tlsgate.h>

/* As root with user set: hands the paths in own to user:group (recursively),
 * then switches to them for good. No-op when user is empty. */
int tg_sandbox_drop(const char *user, const char *group, const char *const *own, size_t nown,
    struct tg_err *err);
/* Limits file access to rw (read-write), ro (read-only) and rx (read and
 * execute) paths; returns 1 when the kernel has no landlock (nothing done),
 * 0 when applied. */
int tg_sandbox_landlock(const char *const *rw, size_t nrw, const char *const *ro, size_t nro,
    const char *const *rx, size_t nrx, struct tg_err *err);

#endif
