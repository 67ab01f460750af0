/*
 * The streaming multipart reader: the same file comes out whatever way the
 * body is cut into pieces; malformed bodies are refused.
 */
#include <string.h>

#include "check.h"
#include "multipart.h"

struct sink {
	char buf[4096];
	size_t len;
};

static int
emit(void *arg, const char *d, size_t n)
{
	struct sink *s = arg;
	if (s->len + n > sizeof(s->buf))
		return -2;
	memcpy(s->buf + s->len, d, n);
	s->len += n;
	return 0;
}

static const char *CT = "multipart/form-data; boundary=------------------------abc123";

static const struct {
	const char *ct;
	const char *body;
	int want;            /* 1 file found, -1 malformed */
	const char *file;
} cases[] = {
	{ NULL, "--------------------------abc123\r\n"
	  "Content-Disposition: form-data; name=\"file\"; filename=\"x.txt\"\r\n"
	  "Content-Type: text/plain\r\n\r\n"
	  "hello\r\n--world\r\n"
	  "\r\n--------------------------abc123--\r\n", 1, "hello\r\n--world\r\n" },
	{ NULL, "preamble\r\n--------------------------abc123\r\n"
	  "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
	  "first\r\n--------------------------abc123\r\n"
	  "Content-Disposition: form-data; name=\"file\"; filename=\"y\"\r\n\r\n"
	  "DATA\r\n--------------------------abc123--\r\n", 1, "DATA" },
	{ NULL, "--------------------------abc123\r\n"
	  "Content-Disposition: form-data; name=\"file\"; filename=\"e\"\r\n\r\n"
	  "\r\n--------------------------abc123--\r\n", 1, "" },
	{ NULL, "--------------------------abc123\r\n"
	  "Content-Disposition: form-data; name=\"note\"\r\n\r\n"
	  "x\r\n--------------------------abc123--\r\n", -1, NULL },
	{ "multipart/form-data; boundary=\"q q\"", "--q q\r\nContent-Disposition: form-data; "
	  "name=f; filename=a\r\n\r\nZ\r\n--q q--", 1, "Z" },
	{ NULL, "--------------------------abc123X\r\n", -1, NULL },
};

int
main(void)
{
	size_t i, split;

	CHECK(tg_multipart_new("text/plain", 10) == NULL, "not multipart");
	CHECK(tg_multipart_new("multipart/form-data", 19) == NULL, "no boundary");
	CHECK(tg_multipart_new("multipart/form-data; boundary=", 30) == NULL, "empty boundary");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *ct = cases[i].ct ? cases[i].ct : CT;
		size_t n = strlen(cases[i].body);
		for (split = 0; split <= n; split++) {
			struct tg_multipart *m = tg_multipart_new(ct, strlen(ct));
			struct sink s = { .len = 0 };
			int r;
			CHECK(m != NULL, "case %zu: new", i);
			if (m == NULL)
				break;
			r = tg_multipart_feed(m, cases[i].body, split, emit, &s);
			if (r == 0)
				r = tg_multipart_feed(m, cases[i].body + split, n - split, emit, &s);
			if (cases[i].want == 1) {
				CHECK(r == 1 && tg_multipart_complete(m), "case %zu split %zu: r %d", i, split, r);
				CHECK(s.len == strlen(cases[i].file) && !memcmp(s.buf, cases[i].file, s.len),
				    "case %zu split %zu: file (%zu bytes)", i, split, s.len);
			} else {
				CHECK(r == -1 || (r == 0 && !tg_multipart_complete(m)),
				    "case %zu split %zu: r %d", i, split, r);
			}
			tg_multipart_free(m);
		}
	}
	return check_done("test_multipart");
}
