/*
 * Recording a new pin (trust on first use) from the event loop: writing the
 * known file is disk (or store) work, so it runs on libuv's thread pool,
 * and the outcome is logged either way. Used by client connections and
 * tunnels.
 *
 * In a cluster a first contact is decided by the store, not by this node's
 * copy: the connection waits with its handshake done and no request read
 * until the pin is in the store, then goes on, or is closed when the store
 * refused it (another node pinned another key first, or the store is
 * down). Loop thread only.
 */
#ifndef TG_RECORD_H
#define TG_RECORD_H

#include "server.h"
#include "trust.h"

struct tg_record_job;

/* Who waits for the outcome: decided(arg, ok) is called on the loop when
 * the pin is in the store (ok 1) or not (ok 0), unless tg_record_abort
 * came first. peer names the waiter in the log (copied). */
struct tg_record_waiter {
	void (*decided)(void *arg, int ok);
	void *arg;
	const char *peer;
	struct tg_record_job **slot;   /* holds the job while it runs, for abort */
};

/* The job holds a reference to t (tg_trust_ref) until it is done. w may be
 * NULL (nothing waits). -1 (logged) when it could not be queued: then
 * nothing is called back. */
int tg_record_pin(struct tg_server *s, struct tg_trust *t, const struct tg_trust_verdict *v,
    const struct tg_record_waiter *w);
/* The waiter ends while its record runs (*slot set): the record goes on
 * without it, and *slot is cleared. */
void tg_record_abort(struct tg_record_job **slot);

#endif
