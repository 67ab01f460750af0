/* The admin listener: GET /metrics (Prometheus) and GET /status (JSON). */
#ifndef TG_ADMIN_H
#define TG_ADMIN_H

struct tg_conn_s;

/* Answers a request that arrived on the admin listener. */
void tg_admin_respond(struct tg_conn_s *c);

#endif
