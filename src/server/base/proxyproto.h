/*
 * The PROXY protocol (haproxy's spec, versions 1 and 2): the header a
 * layer-4 proxy puts before a connection's bytes to say who the client
 * was. Built for backends (tunnels and proxy routes with proxy_protocol),
 * with the TLS TLVs of v2 saying what tlsgate verified; parsed on the main
 * listener from the load balancers of tls.accept_proxy_from. Pure
 * functions: no I/O, no allocation.
 */
#ifndef TG_PROXYPROTO_H
#define TG_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#define TG_PP_V2_MAX   (16 + 2048)     /* the longest v2 header accepted */
#define TG_PP_V1_MAX   107             /* the spec's longest v1 line */

struct tg_pp_info {
	int version;                       /* 1 or 2 */
	int local;                         /* LOCAL, UNKNOWN or a family without addresses:
	                                      the connection's own addresses stand */
	struct sockaddr_storage src, dst;  /* the client and where it connected (!local) */
};

/* Do these first bytes start like a PROXY header (either version)? With
 * fewer than 6 bytes: whether they could. */
int tg_pp_looks_like(const unsigned char *b, size_t len);
/* The header at the start of b: its length (consume exactly that), 0 when
 * more bytes are needed, -1 when it is not a valid header (why, in words). */
int tg_pp_parse(const unsigned char *b, size_t len, struct tg_pp_info *pi, char *why,
    size_t wlen);

/* A header for a backend: version 1 or 2, the client src and the address
 * it reached dst (IPv4-mapped IPv6 written as IPv4; a mix as IPv6). v2
 * with ssl (the client's TLS, NULL for plain) adds the TLVs: ALPN, SNI as
 * authority, and PP2_TYPE_SSL with the version, cipher, signature and key
 * algorithms and, when the client gave a certificate tlsgate verified,
 * identity as its CN. The length, or 0 when cap is too small. */
size_t tg_pp_build(int version, unsigned char *out, size_t cap, const struct sockaddr_storage *src,
    const struct sockaddr_storage *dst, SSL *ssl, const char *identity);

/* "1.2.3.4:56" or "[::1]:56" (how the server names peers) into an address;
 * -1 when it is not one. */
int tg_pp_addr_parse(const char *peer, struct sockaddr_storage *ss);

/* The trusted senders of proxy_protocol.accept_from. */
struct tg_pp_net {
	int family;                        /* AF_INET or AF_INET6 */
	unsigned char addr[16];
	int bits;
};
/* items (addresses or CIDRs) into *out (calloc'ed, free()), -1 in words. */
int tg_pp_nets_parse(const char *const *items, size_t n, struct tg_pp_net **out, size_t *nout,
    char *why, size_t wlen);
/* Is ss (IPv4-mapped IPv6 counts as IPv4) in one of the nets? */
int tg_pp_nets_match(const struct tg_pp_net *nets, size_t n, const struct sockaddr_storage *ss);

#endif
