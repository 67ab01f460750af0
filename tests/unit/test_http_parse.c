/*
 * The HTTP head parser and chunked decoder: tables of inputs with the
 * expected result, every prefix of valid input must say "incomplete", and
 * inputs end against a PROT_NONE page so a read past the end crashes.
 */
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "check.h"
#include "http_parse.h"

/* Copies s so that its last byte is the last byte before a PROT_NONE page. */
static char *
guarded(const char *s, size_t n, char **base, size_t *maplen)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE), pages = (n + pg - 1) / pg + 1;
	char *m = mmap(NULL, pages * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	mprotect(m + (pages - 1) * pg, pg, PROT_NONE);
	*base = m;
	*maplen = pages * pg;
	memcpy(m + (pages - 1) * pg - n, s, n);
	return m + (pages - 1) * pg - n;
}

static const struct {
	const char *in;
	int want;          /* >0: consumed == strlen(in); -1 bad; -2 incomplete */
	size_t headers;
	const char *target;
} req_cases[] = {
	{ "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, 1, "/" },
	{ "PUT /files/x%20y HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", 1, 2, "/files/x%20y" },
	{ "GET / HTTP/1.0\r\n\r\n", 1, 0, "/" },
	{ "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 1, 1, "/" },
	{ "GET / HTTP/1.1\r\nHost:a\r\nX:  v  \r\n\r\n", 1, 2, "/" },
	{ "GET / HTTP/1.1\r\nHost: a\r\n", -2, 0, NULL },
	{ "GET / HTTP/1.1\r\nHost: a\r\n\r", -2, 0, NULL },
	{ "GET", -2, 0, NULL },
	{ "GET / HTTP/1.1\nHost: a\n\n", -1, 0, NULL },            /* bare LF */
	{ "GET / HTTP/1.1\r\nHost : a\r\n\r\n", -1, 0, NULL },     /* space before colon */
	{ "GET / HTTP/1.1\r\n Host: a\r\n\r\n", -1, 0, NULL },     /* folding */
	{ "GET / HTTP/2.0\r\n\r\n", -1, 0, NULL },
	{ "GET  / HTTP/1.1\r\n\r\n", -1, 0, NULL },
	{ "GET /a b HTTP/1.1\r\n\r\n", -1, 0, NULL },
	{ "G@T / HTTP/1.1\r\n\r\n", -1, 0, NULL },
	{ "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", -1, 0, NULL },
	{ "GET / HTTP/1.1\r\nHo\001st: a\r\n\r\n", -1, 0, NULL },
	{ "GET / HTTP/1.1\r\nX: \001\r\n\r\n", -1, 0, NULL },
	{ "GET / HTTP/1.1\r\n: a\r\n\r\n", -1, 0, NULL },
	{ "GET /\r\n\r\n", -1, 0, NULL },
};

static void
test_requests(void)
{
	size_t i, k;

	for (i = 0; i < sizeof(req_cases) / sizeof(req_cases[0]); i++) {
		struct tg_http_header h[8];
		struct tg_http_req r;
		size_t n = strlen(req_cases[i].in), ml;
		char *base, *p = guarded(req_cases[i].in, n, &base, &ml);
		ssize_t rv;

		r.headers = h;
		r.num_headers = 8;
		rv = tg_http_parse_request(p, n, &r);
		if (req_cases[i].want > 0) {
			CHECK(rv == (ssize_t)n, "case %zu: rv %zd", i, rv);
			CHECK(r.num_headers == req_cases[i].headers, "case %zu: %zu headers", i, r.num_headers);
			CHECK(r.target_len == strlen(req_cases[i].target) &&
			    !memcmp(r.target, req_cases[i].target, r.target_len), "case %zu: target", i);
			/* every strict prefix is incomplete, never an error */
			for (k = 1; k < n; k++) {
				char *b2, *q = guarded(req_cases[i].in, k, &b2, &ml);
				r.num_headers = 8;
				rv = tg_http_parse_request(q, k, &r);
				CHECK(rv == TG_HTTP_INCOMPLETE || (k >= 2 && rv == TG_HTTP_INCOMPLETE),
				    "case %zu prefix %zu: rv %zd", i, k, rv);
				munmap(b2, ml);
			}
		} else {
			CHECK(rv == req_cases[i].want, "case %zu: rv %zd want %d", i, rv, req_cases[i].want);
		}
		munmap(base, ml);
	}
}

static void
test_too_many_headers(void)
{
	struct tg_http_header h[2];
	struct tg_http_req r = { .headers = h, .num_headers = 2 };
	const char *s = "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";

	CHECK(tg_http_parse_request(s, strlen(s), &r) == TG_HTTP_BAD, "three headers fit in two");
}

static void
test_response(void)
{
	struct tg_http_header h[4];
	struct tg_http_resp r = { .headers = h, .num_headers = 4 };
	const char *ok = "HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nabc";

	CHECK(tg_http_parse_response(ok, strlen(ok), &r) == (ssize_t)strlen(ok) - 3, "response");
	CHECK(r.status == 404 && r.reason_len == 9, "status %d", r.status);
	r.num_headers = 4;
	CHECK(tg_http_parse_response("HTTP/1.1 99 x\r\n\r\n", 17, &r) == TG_HTTP_BAD, "status 099");
	r.num_headers = 4;
	CHECK(tg_http_parse_response("HTTP/1.1 200\r\n\r\n", 16, &r) == 16, "no reason");
}

static void
test_helpers(void)
{
	uint64_t v;

	CHECK(tg_http_content_length("123", 3, &v) == 0 && v == 123, "cl");
	CHECK(tg_http_content_length("-1", 2, &v) < 0, "negative cl");
	CHECK(tg_http_content_length("1 2", 3, &v) < 0, "cl with space");
	CHECK(tg_http_content_length("99999999999999999999", 20, &v) < 0, "cl overflow");
	CHECK(tg_http_has_token("keep-alive, Close", 17, "close"), "token");
	CHECK(!tg_http_has_token("closed", 6, "close"), "token prefix");
}

static const struct {
	const char *in;
	int want_done;        /* 1 complete, 0 incomplete, -1 bad */
	const char *body;
	const char *rest;
} chunk_cases[] = {
	{ "5\r\nhello\r\n0\r\n\r\n", 1, "hello", "" },
	{ "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", 1, "hello world", "NEXT" },
	{ "A\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n", 1, "0123456789", "" },
	{ "5\r\nhel", 0, "hel", "" },
	{ "x\r\n", -1, "", "" },
	{ "5\r\nhelloXX0\r\n\r\n", -1, "", "" },
	{ "1111111111111111\r\n", -1, "", "" },
	{ "\r\n", -1, "", "" },
};

static void
test_chunked(void)
{
	size_t i, split;

	for (i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
		size_t n = strlen(chunk_cases[i].in);
		/* feed in two pieces at every split point: the same result */
		for (split = 0; split <= n; split++) {
			struct tg_chunked d;
			char buf[256], body[256];
			size_t bl = 0, a = split, b = n - split;
			ssize_t r1, r2 = TG_HTTP_INCOMPLETE;

			memset(&d, 0, sizeof(d));
			memcpy(buf, chunk_cases[i].in, a);
			r1 = tg_chunked_decode(&d, buf, &a);
			if (r1 == TG_HTTP_BAD) {
				CHECK(chunk_cases[i].want_done == -1, "case %zu split %zu: bad early", i, split);
				continue;
			}
			memcpy(body, buf, a);
			bl = a;
			if (r1 >= 0) {
				CHECK(chunk_cases[i].want_done == 1, "case %zu split %zu", i, split);
				continue;
			}
			memcpy(buf, chunk_cases[i].in + split, b);
			r2 = tg_chunked_decode(&d, buf, &b);
			if (chunk_cases[i].want_done == -1) {
				CHECK(r2 == TG_HTTP_BAD, "case %zu split %zu: want bad, got %zd", i, split, r2);
				continue;
			}
			memcpy(body + bl, buf, b);
			bl += b;
			CHECK(bl == strlen(chunk_cases[i].body) && !memcmp(body, chunk_cases[i].body, bl),
			    "case %zu split %zu: body", i, split);
			if (chunk_cases[i].want_done == 1) {
				CHECK(r2 == (ssize_t)strlen(chunk_cases[i].rest) &&
				    !memcmp(buf + b, chunk_cases[i].rest, (size_t)r2), "case %zu split %zu: rest",
				    i, split);
			} else {
				CHECK(r2 == TG_HTTP_INCOMPLETE, "case %zu split %zu: want incomplete", i, split);
			}
		}
	}
}

int
main(void)
{
	test_requests();
	test_too_many_headers();
	test_response();
	test_helpers();
	test_chunked();
	return check_done("test_http_parse");
}
