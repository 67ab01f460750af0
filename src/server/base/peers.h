/* Open connections per client address (limits.max_connections_per_ip). */
#ifndef TG_PEERS_H
#define TG_PEERS_H

#include <stdint.h>

struct tg_peers;

struct tg_peers *tg_peers_new(void);
void tg_peers_free(struct tg_peers *p);
/* Counts a connection from ip; -1 when ip is at its limit (0 = no limit). */
int tg_peers_take(struct tg_peers *p, const char *ip, uint32_t limit);
void tg_peers_release(struct tg_peers *p, const char *ip);

#endif
