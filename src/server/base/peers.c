/*
 * Connections per client address, for limits.max_connections_per_ip: a
 * fixed open-addressing table keyed by the address text. Slots whose count
 * drops to zero stay as reusable for the same address; when the table is
 * mostly such slots it is compacted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peers.h"

#define SLOTS 16384   /* a power of two, above limits.max_connections' default */

struct slot {
	char ip[48];
	uint32_t n;
};

struct tg_peers {
	struct slot *s;
	size_t used;   /* slots with a key */
};

static uint32_t
hash(const char *k)
{
	uint32_t h = 2166136261u;
	while (*k)
		h = (h ^ (uint8_t)*k++) * 16777619u;
	return h;
}

struct tg_peers *
tg_peers_new(void)
{
	struct tg_peers *p = calloc(1, sizeof(*p));
	if (p && (p->s = calloc(SLOTS, sizeof(*p->s))) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

void
tg_peers_free(struct tg_peers *p)
{
	if (p) {
		free(p->s);
		free(p);
	}
}

static void
compact(struct tg_peers *p)
{
	struct slot *old = p->s, *nw = calloc(SLOTS, sizeof(*nw));
	size_t i;

	if (nw == NULL)
		return;
	p->s = nw;
	p->used = 0;
	for (i = 0; i < SLOTS; i++) {
		if (old[i].n) {
			uint32_t h = hash(old[i].ip) & (SLOTS - 1);
			while (p->s[h].ip[0])
				h = (h + 1) & (SLOTS - 1);
			p->s[h] = old[i];
			p->used++;
		}
	}
	free(old);
}

static struct slot *
find(struct tg_peers *p, const char *ip, int create)
{
	uint32_t h = hash(ip) & (SLOTS - 1), i;

	for (i = 0; i < SLOTS; i++, h = (h + 1) & (SLOTS - 1)) {
		if (p->s[h].ip[0] == '\0') {
			if (!create)
				return NULL;
			if (p->used > SLOTS * 3 / 4) {
				compact(p);
				return p->used > SLOTS * 3 / 4 ? NULL : find(p, ip, 1);
			}
			strncpy(p->s[h].ip, ip, sizeof(p->s[h].ip) - 1);
			p->used++;
			return &p->s[h];
		}
		if (strcmp(p->s[h].ip, ip) == 0)
			return &p->s[h];
	}
	return NULL;
}

int
tg_peers_take(struct tg_peers *p, const char *ip, uint32_t limit)
{
	struct slot *s = find(p, ip, 1);

	if (s == NULL)
		return -1;   /* table full of live addresses: refuse rather than grow */
	if (limit && s->n >= limit)
		return -1;
	s->n++;
	return 0;
}

void
tg_peers_release(struct tg_peers *p, const char *ip)
{
	struct slot *s = find(p, ip, 0);

	if (s && s->n)
		s->n--;
}
