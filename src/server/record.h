/*
 * Recording a new pin (trust on first use) from the event loop: writing the
 * known file is disk work, so it runs on libuv's thread pool, and the
 * outcome is logged either way. Used by client connections and tunnels.
 */
#ifndef TG_RECORD_H
#define TG_RECORD_H

#include "server.h"
#include "trust.h"

/* The job holds a reference to t (tg_trust_ref) until it is done. */
void tg_record_pin(struct tg_server *s, struct tg_trust *t, const struct tg_trust_verdict *v);

#endif
