/*
 * The local CA's CRL signed again by a serving node before it expires
 * (crl_life.c). Loop thread; the signing runs on the thread pool.
 */
#ifndef TG_CRL_LIFE_H
#define TG_CRL_LIFE_H

struct tg_server;

void tg_crl_life_start(struct tg_server *s);   /* the first worker only */
void tg_crl_life_stop(struct tg_server *s);    /* at a stop */

#endif
