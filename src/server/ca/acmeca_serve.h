/* The ACME CA on a listener: requests under /acme/ answered on the thread
 * pool (src/core/acmeca), validations queued there after the answer. */
#ifndef TG_ACMECA_SERVE_H
#define TG_ACMECA_SERVE_H

#include "handler.h"

/* Takes every request on the CA listener, and /acme/ on the main listener
 * when the CA shares it (srv->ca_on_main). */
extern const struct tg_handler tg_acmeca_handler;

#endif
