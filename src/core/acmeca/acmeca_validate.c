/*
 * The ACME CA checking a challenge (RFC 8555 section 8, RFC 8737 for
 * TLS-ALPN-01, RFC 8738 for IP addresses): HTTP-01 fetches the key
 * authorization over plain HTTP, TLS-ALPN-01 reads the acmeIdentifier of the
 * certificate a server presents for "acme-tls/1", DNS-01 looks up the TXT
 * record. Names are resolved by the system, or by the DNS server
 * ca.acme.resolver names (what a fleet's internal DNS or a test uses).
 * Blocking, every wait bounded; any thread (res_nquery has its own state).
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "acme_wire.h"
#include "acmeca.h"
#include "acmeca_int.h"

#define WAIT_S 10

/* One DNS question to the configured server (or the system's): the answers'
 * rdata of type, each handed to fn. 0, or -1 with why. */
static int
dns_ask(const char *resolver, const char *name, int type,
    void (*fn)(const unsigned char *rd, size_t len, void *arg), void *arg, char *why, size_t wl)
{
	struct __res_state st;
	unsigned char ans[4096];
	ns_msg msg;
	ns_rr rr;
	int n, i, count;

	memset(&st, 0, sizeof(st));
	if (res_ninit(&st) != 0) {
		snprintf(why, wl, "cannot set up the DNS resolver");
		return -1;
	}
	if (resolver && *resolver) {
		char host[64];
		const char *colon = strrchr(resolver, ':');
		size_t hl = colon ? (size_t)(colon - resolver) : strlen(resolver);
		struct sockaddr_in sa;

		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		sa.sin_port = htons(colon ? (uint16_t)atoi(colon + 1) : 53);
		if (hl >= sizeof(host)) {
			res_nclose(&st);
			snprintf(why, wl, "ca.acme.resolver %s is not IPv4[:PORT]", resolver);
			return -1;
		}
		memcpy(host, resolver, hl);
		host[hl] = '\0';
		if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
			res_nclose(&st);
			snprintf(why, wl, "ca.acme.resolver %s is not IPv4[:PORT]", resolver);
			return -1;
		}
		st.nsaddr_list[0] = sa;
		st.nscount = 1;
	}
	st.retrans = 2;
	st.retry = 2;
	st.options &= ~(unsigned long)RES_DNSRCH;
	n = res_nquery(&st, name, ns_c_in, type, ans, sizeof(ans));
	res_nclose(&st);
	if (n < 0) {
		snprintf(why, wl, "DNS has no %s record for %s%s%s", type == ns_t_txt ? "TXT" :
		    type == ns_t_a ? "A" : "AAAA", name, resolver && *resolver ? " (asked " : "",
		    resolver && *resolver ? resolver : "");
		if (resolver && *resolver)
			snprintf(why + strlen(why), wl - strlen(why), ")");
		return -1;
	}
	if (ns_initparse(ans, n, &msg) < 0) {
		snprintf(why, wl, "the DNS answer for %s is malformed", name);
		return -1;
	}
	count = ns_msg_count(msg, ns_s_an);
	for (i = 0; i < count; i++) {
		if (ns_parserr(&msg, ns_s_an, i, &rr) < 0)
			break;
		if ((int)ns_rr_type(rr) == type)
			fn(ns_rr_rdata(rr), ns_rr_rdlen(rr), arg);
	}
	return 0;
}

struct addr_out { char ip[INET6_ADDRSTRLEN]; int af; };

static void
on_addr(const unsigned char *rd, size_t len, void *arg)
{
	struct addr_out *o = arg;

	if (o->ip[0])
		return;
	if (len == 4)
		inet_ntop(AF_INET, rd, o->ip, sizeof(o->ip)), o->af = AF_INET;
	else if (len == 16)
		inet_ntop(AF_INET6, rd, o->ip, sizeof(o->ip)), o->af = AF_INET6;
}

/* The address a validation connects to: the identifier itself, or the
 * name resolved (IPv4 first). */
static int
address_of(const struct tg_acmeca_check *k, struct addr_out *o, char *why, size_t wl)
{
	struct addrinfo hints, *res = NULL, *r;
	int e;

	memset(o, 0, sizeof(*o));
	if (!strcmp(k->id_type, "ip")) {
		if (snprintf(o->ip, sizeof(o->ip), "%s", k->id_value) >= (int)sizeof(o->ip))
			return snprintf(why, wl, "%s is not an address", k->id_value), -1;
		o->af = strchr(k->id_value, ':') ? AF_INET6 : AF_INET;
		return 0;
	}
	if (k->resolver && *k->resolver) {
		char w2[300];
		if (dns_ask(k->resolver, k->id_value, ns_t_a, on_addr, o, why, wl) < 0 || !o->ip[0])
			if (dns_ask(k->resolver, k->id_value, ns_t_aaaa, on_addr, o, w2, sizeof(w2)) < 0)
				return -1;
		if (!o->ip[0]) {
			snprintf(why, wl, "DNS (%s) has no address for %s", k->resolver, k->id_value);
			return -1;
		}
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(k->id_value, NULL, &hints, &res)) != 0) {
		snprintf(why, wl, "cannot resolve %s: %s", k->id_value, gai_strerror(e));
		return -1;
	}
	for (r = res; r; r = r->ai_next)
		if (r->ai_family == AF_INET || (r->ai_family == AF_INET6 && !o->ip[0])) {
			const void *a = r->ai_family == AF_INET ?
			    (const void *)&((struct sockaddr_in *)r->ai_addr)->sin_addr :
			    (const void *)&((struct sockaddr_in6 *)r->ai_addr)->sin6_addr;
			inet_ntop(r->ai_family, a, o->ip, sizeof(o->ip));
			o->af = r->ai_family;
			if (r->ai_family == AF_INET)
				break;
		}
	freeaddrinfo(res);
	if (!o->ip[0]) {
		snprintf(why, wl, "%s has no address", k->id_value);
		return -1;
	}
	return 0;
}

/* Addresses no device answers on: link-local (cloud metadata lives there),
 * unspecified, multicast, broadcast. Loopback stays allowed: a CA and its
 * devices on one machine is a real setup (and the tests'). */
static int
address_refused(const struct addr_out *a, char *why, size_t wl)
{
	unsigned char b[16];

	if (a->af == AF_INET && inet_pton(AF_INET, a->ip, b) == 1) {
		if ((b[0] == 169 && b[1] == 254) || b[0] == 0 || b[0] >= 224)
			goto refuse;
	} else if (a->af == AF_INET6 && inet_pton(AF_INET6, a->ip, b) == 1) {
		static const unsigned char zero[16];
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		static const unsigned char nat64[12] = { 0, 0x64, 0xff, 0x9b };
		if ((b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || b[0] == 0xff || !memcmp(b, zero, 16))
			goto refuse;
		/* an IPv4 address written as IPv6 (::ffff:a.b.c.d, 64:ff9b::a.b.c.d)
		 * reaches that IPv4 address: judged as one */
		if (!memcmp(b, mapped, 12) || !memcmp(b, nat64, 12)) {
			unsigned char *v4 = b + 12;
			if ((v4[0] == 169 && v4[1] == 254) || v4[0] == 0 || v4[0] >= 224)
				goto refuse;
		}
	}
	return 0;
refuse:
	snprintf(why, wl, "the address %s is link-local, multicast or unspecified: no challenge "
	    "is checked there", a->ip);
	return -1;
}

/* ---- HTTP-01 ------------------------------------------------------------- */

struct body { char buf[4096]; size_t len; };

static size_t
on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct body *b = arg;
	size_t len = sz * n;

	if (len > sizeof(b->buf) - 1 - b->len)
		return 0;   /* a key authorization is short: more is not one */
	memcpy(b->buf + b->len, p, len);
	b->len += len;
	return len;
}

static int
http01(const struct tg_acmeca_check *k, char *why, size_t wl)
{
	struct addr_out a;
	struct body *b;
	char url[700], pin[600], host[300];
	struct curl_slist *resolve = NULL;
	CURL *h;
	CURLcode rc;
	long code = 0;
	size_t s, e;
	int ok = -1;

	if (address_of(k, &a, why, wl) < 0 || address_refused(&a, why, wl) < 0)
		return -1;
	if (!strcmp(k->id_type, "ip"))
		snprintf(host, sizeof(host), a.af == AF_INET6 ? "[%s]" : "%s", a.ip);
	else
		snprintf(host, sizeof(host), "%s", k->id_value);
	snprintf(url, sizeof(url), "http://%s:%d/.well-known/acme-challenge/%s", host,
	    k->http_port, k->token);
	if ((b = calloc(1, sizeof(*b))) == NULL || (h = curl_easy_init()) == NULL) {
		free(b);
		snprintf(why, wl, "out of memory");
		return -1;
	}
	if (strcmp(k->id_type, "ip") != 0) {
		snprintf(pin, sizeof(pin), a.af == AF_INET6 ? "%s:%d:[%s]" : "%s:%d:%s",
		    k->id_value, k->http_port, a.ip);
		resolve = curl_slist_append(NULL, pin);
		curl_easy_setopt(h, CURLOPT_RESOLVE, resolve);
	}
	curl_easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
#endif
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)WAIT_S);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)WAIT_S);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "tlsgate-acme-ca");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK) {
		snprintf(why, wl, "HTTP-01: cannot fetch %s (at %s): %s", url, a.ip,
		    rc == CURLE_WRITE_ERROR ? "the answer is longer than a key authorization" :
		    curl_easy_strerror(rc));
	} else if (code != 200) {
		snprintf(why, wl, "HTTP-01: %s answered %ld, not 200 with the key authorization",
		    url, code);
	} else {
		b->buf[b->len] = '\0';
		s = 0, e = b->len;
		while (s < e && isspace((unsigned char)b->buf[s]))
			s++;
		while (e > s && isspace((unsigned char)b->buf[e - 1]))
			e--;
		b->buf[e] = '\0';
		/* what it answered is not repeated: the CA must not be a way to
		 * read what an internal server says */
		if (strcmp(b->buf + s, k->key_auth) == 0)
			ok = 0;
		else
			snprintf(why, wl, "HTTP-01: %s answered %zu bytes that are not the key "
			    "authorization \"%s\"", url, e - s, k->key_auth);
	}
	curl_slist_free_all(resolve);
	curl_easy_cleanup(h);
	free(b);
	return ok;
}

/* ---- TLS-ALPN-01 ----------------------------------------------------------- */

/* RFC 8738 section 6: the SNI of an address is its reverse-DNS name. */
static void
reverse_name(const char *ip, char *out, size_t len)
{
	unsigned char a[16];
	size_t o = 0;
	int i;

	out[0] = '\0';
	if (inet_pton(AF_INET, ip, a) == 1) {
		snprintf(out, len, "%u.%u.%u.%u.in-addr.arpa", a[3], a[2], a[1], a[0]);
		return;
	}
	if (inet_pton(AF_INET6, ip, a) != 1)
		return;
	for (i = 15; i >= 0 && o + 4 < len; i--)
		o += (size_t)snprintf(out + o, len - o, "%x.%x.", a[i] & 15, a[i] >> 4);
	snprintf(out + o, len - o, "ip6.arpa");
}

/* Milliseconds left until deadline (tg clock: CLOCK_MONOTONIC), at least 0. */
static int
left_ms(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
}

/* Waits for events on fd until the deadline: 1 ready, 0 timed out. */
static int
wait_fd(int fd, short events, const struct timespec *deadline)
{
	struct pollfd p = { fd, events, 0 };
	int r;

	do
		r = poll(&p, 1, left_ms(deadline));
	while (r < 0 && errno == EINTR);
	return r > 0;
}

/* A non-blocking connection: the whole check (connect and handshake) has
 * one deadline, so a peer that trickles bytes cannot hold a thread. */
static int
connect_to(const struct addr_out *a, int port, const struct timespec *deadline, char *why,
    size_t wl)
{
	struct sockaddr_storage ss;
	socklen_t sl, el = sizeof(int);
	int fd, e = 0;

	memset(&ss, 0, sizeof(ss));
	if (a->af == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, a->ip, &s4->sin_addr);
		sl = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, a->ip, &s6->sin6_addr);
		sl = sizeof(*s6);
	}
	if ((fd = socket(a->af, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0) {
		snprintf(why, wl, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) < 0) {
		if (errno != EINPROGRESS)
			e = errno;
		else if (!wait_fd(fd, POLLOUT, deadline))
			e = ETIMEDOUT;
		else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
			e = errno;
	}
	if (e) {
		snprintf(why, wl, "TLS-ALPN-01: cannot connect to %s port %d: %s", a->ip, port,
		    strerror(e));
		close(fd);
		return -1;
	}
	return fd;
}

/* Does the one SAN of x name the identifier? */
static int
san_is(X509 *x, const struct tg_acmeca_check *k)
{
	GENERAL_NAMES *g = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const GENERAL_NAME *n;
	int ok = 0;

	if (g == NULL)
		return 0;
	if (sk_GENERAL_NAME_num(g) == 1) {
		n = sk_GENERAL_NAME_value(g, 0);
		if (n->type == GEN_DNS && !strcmp(k->id_type, "dns")) {
			const ASN1_IA5STRING *s = n->d.dNSName;
			ok = (size_t)s->length == strlen(k->id_value) &&
			    !strncasecmp((const char *)s->data, k->id_value, (size_t)s->length);
		} else if (n->type == GEN_IPADD && !strcmp(k->id_type, "ip")) {
			unsigned char a[16];
			int al = strchr(k->id_value, ':') ? 16 : 4;
			ok = inet_pton(al == 16 ? AF_INET6 : AF_INET, k->id_value, a) == 1 &&
			    n->d.iPAddress->length == al && !memcmp(n->d.iPAddress->data, a, (size_t)al);
		}
	}
	GENERAL_NAMES_free(g);
	return ok;
}

static int
tlsalpn01(const struct tg_acmeca_check *k, char *why, size_t wl)
{
	static const unsigned char alpn[] = "\x0a" "acme-tls/1";
	unsigned char want[SHA256_DIGEST_LENGTH];
	struct addr_out a;
	SSL_CTX *ctx = NULL;
	SSL *ssl = NULL;
	X509 *x = NULL;
	ASN1_OBJECT *oid = NULL;
	char sni[300];
	const unsigned char *sel = NULL;
	unsigned int sl = 0;
	int fd = -1, ok = -1, idx;
	struct timespec deadline;

	if (address_of(k, &a, why, wl) < 0 || address_refused(&a, why, wl) < 0)
		return -1;
	if (!strcmp(k->id_type, "ip"))
		reverse_name(k->id_value, sni, sizeof(sni));
	else
		snprintf(sni, sizeof(sni), "%s", k->id_value);
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += WAIT_S;
	if ((fd = connect_to(&a, k->tls_port, &deadline, why, wl)) < 0)
		return -1;
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0 ||
	    (ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(ssl, sni) != 1) {
		snprintf(why, wl, "TLS-ALPN-01: cannot set up TLS");
		goto out;
	}
	/* the certificate is self-signed by design: judged below, not by a chain */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	for (;;) {
		int r = SSL_connect(ssl), w;
		if (r == 1)
			break;
		w = SSL_get_error(ssl, r);
		if ((w == SSL_ERROR_WANT_READ || w == SSL_ERROR_WANT_WRITE) &&
		    wait_fd(fd, w == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, &deadline))
			continue;
		if (w == SSL_ERROR_WANT_READ || w == SSL_ERROR_WANT_WRITE) {
			snprintf(why, wl, "TLS-ALPN-01: the TLS handshake with %s port %d did not "
			    "finish within %d s", a.ip, k->tls_port, WAIT_S);
		} else {
			unsigned long e = ERR_peek_last_error();
			const char *rs = e ? ERR_reason_error_string(e) : NULL;
			snprintf(why, wl, "TLS-ALPN-01: the TLS handshake with %s port %d (SNI %s, "
			    "ALPN acme-tls/1) failed: %s", a.ip, k->tls_port, sni,
			    rs ? rs : "the connection ended");
		}
		goto out;
	}
	SSL_get0_alpn_selected(ssl, &sel, &sl);
	if (sl != 10 || memcmp(sel, "acme-tls/1", 10) != 0) {
		snprintf(why, wl, "TLS-ALPN-01: %s port %d did not select ALPN acme-tls/1", a.ip,
		    k->tls_port);
		goto out;
	}
	if ((x = SSL_get1_peer_certificate(ssl)) == NULL || !san_is(x, k)) {
		snprintf(why, wl, "TLS-ALPN-01: the certificate from %s port %d does not name "
		    "exactly %s", a.ip, k->tls_port, k->id_value);
		goto out;
	}
	SHA256((const unsigned char *)k->key_auth, strlen(k->key_auth), want);
	oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
	idx = oid ? X509_get_ext_by_OBJ(x, oid, -1) : -1;
	if (idx < 0) {
		snprintf(why, wl, "TLS-ALPN-01: the certificate from %s port %d has no "
		    "acmeIdentifier extension", a.ip, k->tls_port);
		goto out;
	} else {
		X509_EXTENSION *ext = X509_get_ext(x, idx);
		const ASN1_OCTET_STRING *d = X509_EXTENSION_get_data(ext);
		/* the extension's value is the DER of an OCTET STRING of 32 bytes */
		if (!X509_EXTENSION_get_critical(ext) || d->length != 34 || d->data[0] != 0x04 ||
		    d->data[1] != 32 || CRYPTO_memcmp(d->data + 2, want, 32) != 0) {
			snprintf(why, wl, "TLS-ALPN-01: the acmeIdentifier of the certificate from %s "
			    "port %d is not the key authorization's digest (or not critical)", a.ip,
			    k->tls_port);
			goto out;
		}
	}
	ok = 0;
out:
	ASN1_OBJECT_free(oid);
	X509_free(x);
	if (ssl)
		SSL_free(ssl);
	SSL_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	ERR_clear_error();
	return ok;
}

/* ---- DNS-01 ------------------------------------------------------------------ */

struct txt_want { const char *want; int found; char seen[200]; };

static void
on_txt(const unsigned char *rd, size_t len, void *arg)
{
	struct txt_want *t = arg;
	char v[1024];
	size_t i = 0, o = 0;

	while (i < len) {   /* the record's strings, joined */
		size_t n = rd[i++];
		if (n > len - i || o + n >= sizeof(v))
			return;
		memcpy(v + o, rd + i, n);
		o += n;
		i += n;
	}
	v[o] = '\0';
	if (!strcmp(v, t->want))
		t->found = 1;
	else if (!t->seen[0])
		snprintf(t->seen, sizeof(t->seen), "%.100s", v);
}

static int
dns01(const struct tg_acmeca_check *k, char *why, size_t wl)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char want[64], name[300];
	struct txt_want t;
	const char *base = k->id_value;

	if (!strncmp(base, "*.", 2))
		base += 2;
	SHA256((const unsigned char *)k->key_auth, strlen(k->key_auth), md);
	tg_b64url(md, sizeof(md), want, sizeof(want));
	snprintf(name, sizeof(name), "_acme-challenge.%s", base);
	memset(&t, 0, sizeof(t));
	t.want = want;
	if (dns_ask(k->resolver, name, ns_t_txt, on_txt, &t, why, wl) < 0)
		return -1;
	if (t.found)
		return 0;
	snprintf(why, wl, "DNS-01: the TXT record of %s is %s%s%s, not %s", name,
	    t.seen[0] ? "\"" : "", t.seen[0] ? t.seen : "missing", t.seen[0] ? "\"" : "", want);
	return -1;
}

int
tg_acmeca_check(const struct tg_acmeca_check *k, char *why, size_t wl)
{
	switch (k->type) {
	case TG_ACMECA_HTTP01:
		return http01(k, why, wl);
	case TG_ACMECA_TLSALPN01:
		return tlsalpn01(k, why, wl);
	case TG_ACMECA_DNS01:
		return dns01(k, why, wl);
	}
	snprintf(why, wl, "unknown challenge type");
	return -1;
}
