/*
 * Recording a new pin (trust on first use) from the event loop: writing the
 * known file is disk work, so it runs on libuv's thread pool, and the
 * outcome is logged either way. Used by client connections and tunnels.
 */
#ifndef TG_RECORD_H
#define TG_RECORD_H

#include "server.h"
#include "trust.h"

/* t must outlive the job: the server keeps every trust object (current,
 * retired by a reload, a tunnel's) until it is freed. */
void tg_record_pin(struct tg_server *s, struct tg_trust *t, const struct tg_trust_verdict *v);

#endif
