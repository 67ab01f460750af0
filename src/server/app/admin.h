/* The admin listener: GET /metrics (Prometheus) and GET /status (JSON). */
#ifndef TG_ADMIN_H
#define TG_ADMIN_H

#include "handler.h"

/* Answers every request on the admin listener. */
extern const struct tg_handler tg_admin_handler;

#endif
