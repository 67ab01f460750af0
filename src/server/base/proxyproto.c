/* See proxyproto.h. The spec: haproxy's doc/proxy-protocol.txt. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "proxyproto.h"
#include "tls.h"

static const unsigned char v2sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

enum {
	PP2_TYPE_ALPN = 0x01, PP2_TYPE_AUTHORITY = 0x02, PP2_TYPE_SSL = 0x20,
	PP2_SUBTYPE_SSL_VERSION = 0x21, PP2_SUBTYPE_SSL_CN = 0x22, PP2_SUBTYPE_SSL_CIPHER = 0x23,
	PP2_SUBTYPE_SSL_SIG_ALG = 0x24, PP2_SUBTYPE_SSL_KEY_ALG = 0x25,
	PP2_CLIENT_SSL = 0x01, PP2_CLIENT_CERT_CONN = 0x02, PP2_CLIENT_CERT_SESS = 0x04,
};

int
tg_pp_looks_like(const unsigned char *b, size_t len)
{
	size_t n = len < sizeof(v2sig) ? len : sizeof(v2sig);

	if (memcmp(b, v2sig, n) == 0)
		return 1;
	n = len < 6 ? len : 6;
	return memcmp(b, "PROXY ", n) == 0;
}

/* ---- parsing ------------------------------------------------------------------------ */

static int
why_set(char *why, size_t wlen, const char *what)
{
	snprintf(why, wlen, "%s", what);
	return -1;
}

/* A v1 port: 0..65535 in digits, no leading zero (the spec's form). */
static int
v1_port(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (!isdigit((unsigned char)s[0]) || (s[0] == '0' && s[1]))
		return -1;
	v = strtoul(s, &end, 10);
	if (*end || v > 65535)
		return -1;
	*port = htons((uint16_t)v);
	return 0;
}

static int
parse_v1(const unsigned char *b, size_t len, struct tg_pp_info *pi, char *why, size_t wlen)
{
	char line[TG_PP_V1_MAX + 1], *f[6], *save = NULL, *tok;
	const unsigned char *crlf;
	size_t n, nf = 0;
	int af;

	crlf = memchr(b, '\n', len < TG_PP_V1_MAX ? len : TG_PP_V1_MAX);
	if (crlf == NULL)
		return len >= TG_PP_V1_MAX ? why_set(why, wlen, "a PROXY v1 line longer than 107 "
		    "bytes") : 0;
	n = (size_t)(crlf - b) + 1;
	if (n < 2 || b[n - 2] != '\r')
		return why_set(why, wlen, "a PROXY v1 line not ended by CRLF");
	memcpy(line, b, n - 2);
	line[n - 2] = '\0';
	for (tok = strtok_r(line, " ", &save); tok && nf < 6; tok = strtok_r(NULL, " ", &save))
		f[nf++] = tok;
	pi->version = 1;
	if (nf >= 2 && !strcmp(f[1], "UNKNOWN")) {
		pi->local = 1;
		return (int)n;
	}
	if (nf != 6 || tok != NULL || strcmp(f[0], "PROXY") != 0)   /* tok: a 7th field */
		return why_set(why, wlen, "a PROXY v1 line without its six fields");
	memset(&pi->src, 0, sizeof(pi->src));
	memset(&pi->dst, 0, sizeof(pi->dst));
	af = !strcmp(f[1], "TCP4") ? AF_INET : !strcmp(f[1], "TCP6") ? AF_INET6 : -1;
	if (af == AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&pi->src, *d = (struct sockaddr_in *)&pi->dst;
		s->sin_family = d->sin_family = AF_INET;
		if (inet_pton(AF_INET, f[2], &s->sin_addr) != 1 ||
		    inet_pton(AF_INET, f[3], &d->sin_addr) != 1 ||
		    v1_port(f[4], &s->sin_port) < 0 || v1_port(f[5], &d->sin_port) < 0)
			return why_set(why, wlen, "a PROXY v1 TCP4 line with a bad address or port");
	} else if (af == AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&pi->src,
		    *d = (struct sockaddr_in6 *)&pi->dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		if (inet_pton(AF_INET6, f[2], &s->sin6_addr) != 1 ||
		    inet_pton(AF_INET6, f[3], &d->sin6_addr) != 1 ||
		    v1_port(f[4], &s->sin6_port) < 0 || v1_port(f[5], &d->sin6_port) < 0)
			return why_set(why, wlen, "a PROXY v1 TCP6 line with a bad address or port");
	} else {
		return why_set(why, wlen, "a PROXY v1 line with a protocol other than TCP4, TCP6 "
		    "or UNKNOWN");
	}
	pi->local = 0;
	return (int)n;
}

static int
parse_v2(const unsigned char *b, size_t len, struct tg_pp_info *pi, char *why, size_t wlen)
{
	size_t body, total;
	int cmd, fam;

	if (len < 16)
		return 0;
	if ((b[12] & 0xf0) != 0x20)
		return why_set(why, wlen, "a PROXY v2 header of an unknown version");
	cmd = b[12] & 0x0f;
	fam = b[13];
	body = ((size_t)b[14] << 8) | b[15];
	total = 16 + body;
	if (total > TG_PP_V2_MAX)
		return why_set(why, wlen, "a PROXY v2 header longer than 2 KiB");
	if (len < total)
		return 0;
	pi->version = 2;
	if (cmd == 0x0) {   /* LOCAL: the proxy's own connection (a health check) */
		pi->local = 1;
		return (int)total;
	}
	if (cmd != 0x1)
		return why_set(why, wlen, "a PROXY v2 header with an unknown command");
	memset(&pi->src, 0, sizeof(pi->src));
	memset(&pi->dst, 0, sizeof(pi->dst));
	if (fam == 0x11) {          /* TCP over IPv4 */
		struct sockaddr_in *s = (struct sockaddr_in *)&pi->src, *d = (struct sockaddr_in *)&pi->dst;
		if (body < 12)
			return why_set(why, wlen, "a PROXY v2 header too short for its IPv4 addresses");
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, b + 16, 4);
		memcpy(&d->sin_addr, b + 20, 4);
		memcpy(&s->sin_port, b + 24, 2);
		memcpy(&d->sin_port, b + 26, 2);
	} else if (fam == 0x21) {   /* TCP over IPv6 */
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&pi->src,
		    *d = (struct sockaddr_in6 *)&pi->dst;
		if (body < 36)
			return why_set(why, wlen, "a PROXY v2 header too short for its IPv6 addresses");
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, b + 16, 16);
		memcpy(&d->sin6_addr, b + 32, 16);
		memcpy(&s->sin6_port, b + 48, 2);
		memcpy(&d->sin6_port, b + 50, 2);
	} else if (fam == 0x00 || fam == 0x31) {   /* unspecified, unix: no address to take */
		pi->local = 1;
		return (int)total;
	} else {
		return why_set(why, wlen, "a PROXY v2 header for a datagram or unknown family on a "
		    "TCP listener");
	}
	pi->local = 0;
	return (int)total;
}

int
tg_pp_parse(const unsigned char *b, size_t len, struct tg_pp_info *pi, char *why, size_t wlen)
{
	why[0] = '\0';
	memset(pi, 0, sizeof(*pi));
	if (len == 0)
		return 0;
	if (!tg_pp_looks_like(b, len))
		return why_set(why, wlen, "no PROXY header where one is required");
	if (len >= 12 && memcmp(b, v2sig, 12) == 0)
		return parse_v2(b, len, pi, why, wlen);
	if (len >= 6 && memcmp(b, "PROXY ", 6) == 0)
		return parse_v1(b, len, pi, why, wlen);
	return 0;   /* a prefix of either: more bytes decide */
}

/* ---- building ----------------------------------------------------------------------- */

/* IPv4-mapped IPv6 as IPv4. */
static void
unmap(const struct sockaddr_storage *in, struct sockaddr_storage *out)
{
	const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)in;

	*out = *in;
	if (in->ss_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)out;
		in_port_t port = s6->sin6_port;
		struct in_addr a;
		memcpy(&a, s6->sin6_addr.s6_addr + 12, 4);
		memset(out, 0, sizeof(*out));
		s4->sin_family = AF_INET;
		s4->sin_port = port;
		s4->sin_addr = a;
	}
}

/* IPv4 as IPv4-mapped IPv6 (for a header whose other address is IPv6). */
static void
map6(const struct sockaddr_storage *in, struct sockaddr_in6 *out)
{
	memset(out, 0, sizeof(*out));
	out->sin6_family = AF_INET6;
	if (in->ss_family == AF_INET6) {
		*out = *(const struct sockaddr_in6 *)in;
		return;
	}
	out->sin6_port = ((const struct sockaddr_in *)in)->sin_port;
	out->sin6_addr.s6_addr[10] = out->sin6_addr.s6_addr[11] = 0xff;
	memcpy(out->sin6_addr.s6_addr + 12, &((const struct sockaddr_in *)in)->sin_addr, 4);
}

struct buf {
	unsigned char *p;
	size_t cap, n;
	int full;
};

static void
put(struct buf *b, const void *d, size_t len)
{
	if (b->full || b->n + len > b->cap) {
		b->full = 1;
		return;
	}
	memcpy(b->p + b->n, d, len);
	b->n += len;
}

static void
put_tlv(struct buf *b, unsigned char type, const void *d, size_t len)
{
	unsigned char h[3] = { type, (unsigned char)(len >> 8), (unsigned char)len };

	if (len > 0xffff) {
		b->full = 1;
		return;
	}
	put(b, h, 3);
	put(b, d, len);
}

static void
put_str(struct buf *b, unsigned char type, const char *s)
{
	if (s && s[0])
		put_tlv(b, type, s, strlen(s));
}

/* The PP2_TYPE_SSL value: client flags, verify result, sub-TLVs. */
static void
ssl_tlv(struct buf *out, SSL *ssl, const char *identity)
{
	unsigned char v[1024], client = PP2_CLIENT_SSL;
	struct buf b = { v, sizeof(v), 0, 0 };
	X509 *peer = SSL_get0_peer_certificate(ssl), *own = SSL_get_certificate(ssl);
	const struct tg_trust_verdict *vd;
	uint32_t verify;
	char alg[64];

	if (peer)
		client |= SSL_session_reused(ssl) ? PP2_CLIENT_CERT_SESS :
		    PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS;
	/* zero: a certificate was presented and tlsgate's trust engine
	 * accepted it (a pin counts; insecure-no-validation does not) */
	verify = htonl(peer && ((vd = tg_tls_verdict(ssl)) != NULL ? vd->accept && !vd->warn :
	    SSL_get_verify_result(ssl) == X509_V_OK) ? 0u : 1u);
	put(&b, &client, 1);
	put(&b, &verify, 4);
	put_str(&b, PP2_SUBTYPE_SSL_VERSION, SSL_get_version(ssl));
	if (peer)
		put_str(&b, PP2_SUBTYPE_SSL_CN, identity);
	put_str(&b, PP2_SUBTYPE_SSL_CIPHER, SSL_get_cipher_name(ssl));
	if (own) {
		EVP_PKEY *pk = X509_get0_pubkey(own);
		put_str(&b, PP2_SUBTYPE_SSL_SIG_ALG, OBJ_nid2sn(X509_get_signature_nid(own)));
		if (pk) {
			snprintf(alg, sizeof(alg), "%s%d", EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA ?
			    "RSA" : EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC ? "EC" :
			    OBJ_nid2sn(EVP_PKEY_get_base_id(pk)), EVP_PKEY_get_bits(pk));
			put_str(&b, PP2_SUBTYPE_SSL_KEY_ALG, alg);
		}
	}
	if (b.full)
		return;   /* an identity too long for a TLV: the TLV is left out, not cut */
	put_tlv(out, PP2_TYPE_SSL, v, b.n);
}

static size_t
build_v1(char *out, size_t cap, const struct sockaddr_storage *src,
    const struct sockaddr_storage *dst)
{
	char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
	int n;

	if (src->ss_family == AF_INET && dst->ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;
		inet_ntop(AF_INET, &s->sin_addr, sa, sizeof(sa));
		inet_ntop(AF_INET, &d->sin_addr, da, sizeof(da));
		n = snprintf(out, cap, "PROXY TCP4 %s %s %u %u\r\n", sa, da, ntohs(s->sin_port),
		    ntohs(d->sin_port));
	} else {
		struct sockaddr_in6 s, d;
		map6(src, &s);
		map6(dst, &d);
		inet_ntop(AF_INET6, &s.sin6_addr, sa, sizeof(sa));
		inet_ntop(AF_INET6, &d.sin6_addr, da, sizeof(da));
		n = snprintf(out, cap, "PROXY TCP6 %s %s %u %u\r\n", sa, da, ntohs(s.sin6_port),
		    ntohs(d.sin6_port));
	}
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t
tg_pp_build(int version, unsigned char *out, size_t cap, const struct sockaddr_storage *src0,
    const struct sockaddr_storage *dst0, SSL *ssl, const char *identity)
{
	struct sockaddr_storage src, dst;
	struct buf b = { out, cap, 0, 0 };
	unsigned char head[16] = { 0 };
	size_t len;

	if (cap < 16)
		return 0;
	unmap(src0, &src);
	unmap(dst0, &dst);
	if (version == 1)
		return build_v1((char *)out, cap, &src, &dst);
	memcpy(head, v2sig, 12);
	head[12] = 0x21;   /* version 2, PROXY */
	put(&b, head, 16);
	if (src.ss_family == AF_INET && dst.ss_family == AF_INET) {
		const struct sockaddr_in *s = (const void *)&src, *d = (const void *)&dst;
		out[13] = 0x11;
		put(&b, &s->sin_addr, 4);
		put(&b, &d->sin_addr, 4);
		put(&b, &s->sin_port, 2);
		put(&b, &d->sin_port, 2);
	} else {
		struct sockaddr_in6 s, d;
		map6(&src, &s);
		map6(&dst, &d);
		out[13] = 0x21;
		put(&b, &s.sin6_addr, 16);
		put(&b, &d.sin6_addr, 16);
		put(&b, &s.sin6_port, 2);
		put(&b, &d.sin6_port, 2);
	}
	if (ssl) {
		const unsigned char *alpn = NULL;
		unsigned int alen = 0;
		SSL_get0_alpn_selected(ssl, &alpn, &alen);
		if (alen)
			put_tlv(&b, PP2_TYPE_ALPN, alpn, alen);
		put_str(&b, PP2_TYPE_AUTHORITY, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
		ssl_tlv(&b, ssl, identity);
	}
	if (b.full)
		return 0;
	len = b.n - 16;
	out[14] = (unsigned char)(len >> 8);
	out[15] = (unsigned char)len;
	return b.n;
}

int
tg_pp_addr_parse(const char *peer, struct sockaddr_storage *ss)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	unsigned long port;
	char *end;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (peer[0] == '[') {
		const char *rb = strchr(peer, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		hl = (size_t)(rb - peer - 1);
		colon = rb + 1;
		peer++;
	} else {
		if ((colon = strrchr(peer, ':')) == NULL)
			return -1;
		hl = (size_t)(colon - peer);
	}
	if (hl >= sizeof(host))
		return -1;
	memcpy(host, peer, hl);
	host[hl] = '\0';
	port = strtoul(colon + 1, &end, 10);
	if (*end || port > 65535 || colon[1] == '\0')
		return -1;
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		return 0;
	}
	return -1;
}

int
tg_pp_nets_parse(const char *const *items, size_t n, struct tg_pp_net **out, size_t *nout,
    char *why, size_t wlen)
{
	struct tg_pp_net *nets;
	size_t i;

	*out = NULL;
	*nout = 0;
	if (n == 0)
		return 0;
	if ((nets = calloc(n, sizeof(*nets))) == NULL)
		return why_set(why, wlen, "out of memory");
	for (i = 0; i < n; i++) {
		char host[INET6_ADDRSTRLEN + 1], *end;
		const char *slash = strchr(items[i], '/');
		size_t hl = slash ? (size_t)(slash - items[i]) : strlen(items[i]);
		long bits;
		if (hl >= sizeof(host))
			goto bad;
		memcpy(host, items[i], hl);
		host[hl] = '\0';
		if (inet_pton(AF_INET, host, nets[i].addr) == 1)
			nets[i].family = AF_INET;
		else if (inet_pton(AF_INET6, host, nets[i].addr) == 1)
			nets[i].family = AF_INET6;
		else
			goto bad;
		bits = nets[i].family == AF_INET ? 32 : 128;
		if (slash) {
			long b = strtol(slash + 1, &end, 10);
			if (!slash[1] || *end || b < 0 || b > bits)
				goto bad;
			bits = b;
		}
		nets[i].bits = (int)bits;
	}
	*out = nets;
	*nout = n;
	return 0;
bad:
	snprintf(why, wlen, "'%s' is not an address or CIDR (192.0.2.10, 10.0.0.0/8, "
	    "2001:db8::/32)", items[i]);
	free(nets);
	return -1;
}

static int
prefix_match(const unsigned char *a, const unsigned char *net, int bits)
{
	int full = bits / 8, rest = bits % 8;

	if (memcmp(a, net, (size_t)full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	return ((a[full] ^ net[full]) & (0xff << (8 - rest))) == 0;
}

int
tg_pp_nets_match(const struct tg_pp_net *nets, size_t n, const struct sockaddr_storage *ss0)
{
	struct sockaddr_storage ss;
	const unsigned char *a;
	size_t i;

	unmap(ss0, &ss);
	a = ss.ss_family == AF_INET ? (const unsigned char *)&((struct sockaddr_in *)&ss)->sin_addr :
	    (const unsigned char *)&((struct sockaddr_in6 *)&ss)->sin6_addr;
	for (i = 0; i < n; i++)
		if (nets[i].family == ss.ss_family && prefix_match(a, nets[i].addr, nets[i].bits))
			return 1;
	return 0;
}
