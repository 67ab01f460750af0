/*
 * systemd, without libsystemd (the two protocols are a few lines each):
 * socket activation (sd_listen_fds(3): LISTEN_PID, LISTEN_FDS,
 * LISTEN_FDNAMES), so port 443 needs neither root nor setcap, and
 * sd_notify(3) readiness: READY=1, RELOADING=1 with MONOTONIC_USEC,
 * STOPPING=1, WATCHDOG=1. Outside systemd every call does nothing.
 * Loop thread (or the supervisor) only.
 */
#ifndef TG_SYSTEMD_H
#define TG_SYSTEMD_H

#include <stddef.h>
#include <stdint.h>

/* Once at start, before any listener opens: takes the sockets systemd
 * passed this process (and clears the variables, so no child misreads
 * them). Notifications go out from this process only. */
void tg_sd_init(void);
/* An inherited socket for a listener: the one named name (FileDescriptor
 * Name=, or systemd-socket-activate --fdname), else the one bound to spec
 * (HOST:PORT); -1 when none. Each is handed out once. */
int tg_sd_take(const char *name, const char *spec);
/* Was fd handed out by tg_sd_take? */
int tg_sd_inherited(int fd);
/* The i-th inherited socket no listener took (closed by this call, name
 * and address told in buf); -1 past the last. */
int tg_sd_leftover(size_t i, char *buf, size_t len);
/* One notification ("READY=1", "STATUS=..."); ignored without
 * NOTIFY_SOCKET or in another process than tg_sd_init's. */
void tg_sd_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* RELOADING=1 with the MONOTONIC_USEC systemd wants with it. */
void tg_sd_reloading(void);
/* How often to send WATCHDOG=1 (half of WatchdogSec), 0 when not asked. */
uint64_t tg_sd_watchdog_ms(void);

#endif
