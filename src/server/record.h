/*
 * Recording a new pin (trust on first use) from the event loop: writing the
 * known file is disk (or store) work, so it runs on libuv's thread pool,
 * and the outcome is logged either way. Used by client connections and
 * tunnels.
 *
 * In a cluster a first contact is decided by the store, not by this node's
 * copy: the connection (c) waits with its handshake done and no request
 * read until the pin is in the store, then goes on, or is closed when the
 * store refused it (another node pinned another key first, or the store is
 * down). Loop thread only.
 */
#ifndef TG_RECORD_H
#define TG_RECORD_H

#include "server.h"
#include "trust.h"

struct tg_conn_s;

/* The job holds a reference to t (tg_trust_ref) until it is done. c may
 * be NULL (nothing waits); otherwise the job tells tg_conn_pin_decided.
 * -1 (logged) when it could not be queued: then nothing is called back. */
int tg_record_pin(struct tg_server *s, struct tg_trust *t, const struct tg_trust_verdict *v,
    struct tg_conn_s *c);
/* c ends while its record runs: the record goes on without it. */
void tg_record_abort(struct tg_conn_s *c);

#endif
