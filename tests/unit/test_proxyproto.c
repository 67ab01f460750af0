/*
 * The PROXY protocol: headers built for backends parse back to the same
 * addresses; every prefix of a header asks for more, never less; malformed
 * headers and a header longer than the cap are refused; CIDR matching.
 * Also the ALPN list reader and picker.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "check.h"
#include "error.h"
#include "proxyproto.h"
#include "tls.h"

static void
addr4(struct sockaddr_storage *ss, const char *a, int port)
{
	struct sockaddr_in *s = (struct sockaddr_in *)ss;
	memset(ss, 0, sizeof(*ss));
	s->sin_family = AF_INET;
	s->sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, a, &s->sin_addr);
}

static void
addr6(struct sockaddr_storage *ss, const char *a, int port)
{
	struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;
	memset(ss, 0, sizeof(*ss));
	s->sin6_family = AF_INET6;
	s->sin6_port = htons((uint16_t)port);
	inet_pton(AF_INET6, a, &s->sin6_addr);
}

static int
same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return !memcmp(&((struct sockaddr_in *)a)->sin_addr, &((struct sockaddr_in *)b)->sin_addr, 4) &&
		    ((struct sockaddr_in *)a)->sin_port == ((struct sockaddr_in *)b)->sin_port;
	return !memcmp(&((struct sockaddr_in6 *)a)->sin6_addr, &((struct sockaddr_in6 *)b)->sin6_addr, 16) &&
	    ((struct sockaddr_in6 *)a)->sin6_port == ((struct sockaddr_in6 *)b)->sin6_port;
}

static void
roundtrip(int version, const struct sockaddr_storage *src, const struct sockaddr_storage *dst)
{
	unsigned char h[TG_PP_V2_MAX];
	struct tg_pp_info pi;
	char why[160];
	size_t n = tg_pp_build(version, h, sizeof(h), src, dst, NULL, NULL), i;

	CHECK(n > 0, "v%d build", version);
	CHECK(tg_pp_parse(h, n, &pi, why, sizeof(why)) == (int)n, "v%d parse: %s", version, why);
	CHECK(!pi.local && same(&pi.src, src) && same(&pi.dst, dst), "v%d addresses", version);
	for (i = 0; i < n; i++)
		CHECK(tg_pp_parse(h, i, &pi, why, sizeof(why)) == 0, "v%d prefix of %zu asks for more: %s",
		    version, i, why);
	CHECK(tg_pp_build(version, h, 10, src, dst, NULL, NULL) == 0, "v%d: too small a buffer", version);
}

static const char *const bad[] = {
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",            /* LF alone */
	"PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
	"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
	"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
	"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
	"GET / HTTP/1.1\r\n",
	"\x16\x03\x01\x02\x00",
};

int
main(void)
{
	struct sockaddr_storage a, b;
	struct tg_pp_info pi;
	struct tg_pp_net *nets;
	size_t nn, i;
	char why[160];
	unsigned char v2[TG_PP_V2_MAX + 32];

	addr4(&a, "192.0.2.7", 51234);
	addr4(&b, "10.1.2.3", 443);
	roundtrip(1, &a, &b);
	roundtrip(2, &a, &b);
	addr6(&a, "2001:db8::7", 51234);
	addr6(&b, "2001:db8::1", 443);
	roundtrip(1, &a, &b);
	roundtrip(2, &a, &b);

	CHECK(tg_pp_parse((const unsigned char *)"PROXY UNKNOWN\r\nGET", 18, &pi, why, sizeof(why)) == 15 &&
	    pi.local, "v1 UNKNOWN: the connection's own address");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(tg_pp_parse((const unsigned char *)bad[i], strlen(bad[i]), &pi, why, sizeof(why)) < 0 &&
		    why[0], "refused: %s", bad[i]);
	memset(v2, 'A', sizeof(v2));
	CHECK(tg_pp_parse(v2, 108, &pi, why, sizeof(why)) < 0, "no header at all");
	memcpy(v2, "PROXY ", 6);
	CHECK(tg_pp_parse(v2, 108, &pi, why, sizeof(why)) < 0, "a v1 line with no end");
	memcpy(v2, "\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff", 16);
	CHECK(tg_pp_parse(v2, 16, &pi, why, sizeof(why)) < 0, "a v2 length past the cap");
	memcpy(v2, "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04", 16);
	CHECK(tg_pp_parse(v2, 20, &pi, why, sizeof(why)) < 0, "v2 IPv4 with 4 bytes of addresses");
	memcpy(v2, "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00", 16);
	CHECK(tg_pp_parse(v2, 16, &pi, why, sizeof(why)) == 16 && pi.local, "v2 LOCAL");
	memcpy(v2, "\r\n\r\n\0\r\nQUIT\n\x21\x12\x00\x0c", 16);
	CHECK(tg_pp_parse(v2, 28, &pi, why, sizeof(why)) < 0, "v2 UDP on a TCP listener");
	memcpy(v2, "\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c", 16);
	CHECK(tg_pp_parse(v2, 28, &pi, why, sizeof(why)) < 0, "version 3");
	CHECK(tg_pp_looks_like((const unsigned char *)"PROXY TCP4", 10) &&
	    tg_pp_looks_like((const unsigned char *)"\r\n\r\n\0\r\nQUIT\n", 12) &&
	    !tg_pp_looks_like((const unsigned char *)"\x16\x03\x01\x00", 4) &&
	    !tg_pp_looks_like((const unsigned char *)"POST /", 6), "looks like");

	CHECK(tg_pp_addr_parse("[2001:db8::7]:51234", &b) == 0 && same(&a, &b), "[v6]:port");
	addr4(&a, "192.0.2.7", 80);
	CHECK(tg_pp_addr_parse("192.0.2.7:80", &b) == 0 && same(&a, &b), "v4:port");
	CHECK(tg_pp_addr_parse("?", &b) < 0 && tg_pp_addr_parse("1.2.3.4:99999", &b) < 0, "bad peers");

	{
		const char *items[] = { "10.0.0.0/8", "192.0.2.7", "2001:db8::/32" };
		CHECK(tg_pp_nets_parse(items, 3, &nets, &nn, why, sizeof(why)) == 0, "nets: %s", why);
		addr4(&a, "10.200.1.1", 1);
		CHECK(tg_pp_nets_match(nets, nn, &a), "10/8");
		addr4(&a, "11.0.0.1", 1);
		CHECK(!tg_pp_nets_match(nets, nn, &a), "not 10/8");
		addr6(&a, "::ffff:192.0.2.7", 1);
		CHECK(tg_pp_nets_match(nets, nn, &a), "mapped IPv4 matches an IPv4 entry");
		addr6(&a, "2001:db9::1", 1);
		CHECK(!tg_pp_nets_match(nets, nn, &a), "outside 2001:db8::/32");
		free(nets);
	}
	{
		const char *items[] = { "10.0.0.0/33" };
		CHECK(tg_pp_nets_parse(items, 1, &nets, &nn, why, sizeof(why)) < 0 && strstr(why, "10.0.0.0/33"),
		    "a bad prefix length is named");
	}
	{
		struct tg_alpn al;
		struct tg_err err;
		const unsigned char *sel;
		unsigned char sl;
		static const unsigned char offer[] = "\x08http/1.1\x02h2";
		char name[32];
		CHECK(tg_alpn_parse("h2, http/1.1", &al, "alpn", &err) == 0 && al.n == 2, "two names");
		CHECK(tg_alpn_pick(&al, offer, sizeof(offer) - 1, &sel, &sl) == 0 && sl == 2 &&
		    !memcmp(sel, "h2", 2), "server order decides");
		tg_alpn_name(&al, 1, name, sizeof(name));
		CHECK(!strcmp(name, "http/1.1"), "name 1: %s", name);
		CHECK(tg_alpn_parse("h2:http/1.1", &al, "alpn", &err) == 0 && al.n == 2, "hitch's form");
		CHECK(tg_alpn_parse("h\x01", &al, "alpn", &err) < 0, "a control byte refused");
		CHECK(tg_alpn_pick(&al, (const unsigned char *)"\x09http/1.1", 9, &sel, &sl) < 0,
		    "a malformed offer picks nothing");
	}
	return check_done("proxyproto");
}
