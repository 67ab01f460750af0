/* Paths below files.prefix: what is accepted and what it decodes to. */
#include <string.h>

#include "check.h"
#include "files.h"

static const struct {
	const char *raw;
	const char *want;   /* NULL: refused */
} cases[] = {
	{ "a.txt", "a.txt" },
	{ "dir/a.txt", "dir/a.txt" },
	{ "x%20y", "x y" },
	{ "dir/", "dir/" },
	{ "", "" },
	{ "a.txt?x=1", "a.txt" },
	{ "..", NULL },
	{ "../etc/passwd", NULL },
	{ "a/../../b", NULL },
	{ "%2e%2e/x", NULL },
	{ "%2E%2E%2Fx", NULL },
	{ "..%2fx", NULL },
	{ "/etc/passwd", NULL },
	{ "%2fetc/passwd", NULL },
	{ "a//b", NULL },
	{ "./a", NULL },
	{ "a/.", NULL },
	{ "a%00b", NULL },
	{ "a%0ab", NULL },
	{ "a\\b", NULL },
	{ "a%5c..%5cb", NULL },
	{ "%zz", NULL },
	{ "%4", NULL },
	{ "a%", NULL },
	{ ".tlsgate-upload-123", NULL },
	{ "d/.tlsgate-upload-x", NULL },
	{ ".hidden", ".hidden" },
};

int
main(void)
{
	size_t i;
	char out[256];

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int r = tg_files_clean_path(cases[i].raw, strlen(cases[i].raw), out, sizeof(out));
		if (cases[i].want == NULL)
			CHECK(r < 0, "case %zu (%s): accepted as %s", i, cases[i].raw, out);
		else
			CHECK(r == 0 && !strcmp(out, cases[i].want), "case %zu (%s): got %s", i,
			    cases[i].raw, r == 0 ? out : "(refused)");
	}
	/* too long for the buffer */
	CHECK(tg_files_clean_path("aaaaaaaaaa", 10, out, 5) < 0, "overlong");
	return check_done("test_files_path");
}
