/*
 * The plain-HTTP listener of tls.acme.http_listen: HTTP-01 answers, and a
 * redirect to HTTPS for every other path.
 */
#ifndef TG_ACME_HTTP01_H
#define TG_ACME_HTTP01_H

#include "handler.h"

/* Answers every request on that listener. */
extern const struct tg_handler tg_acme_http01_handler;

#endif
