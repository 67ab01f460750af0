/*
 * tlsgate get URL [-o FILE] and tlsgate put URL FILE: an HTTPS client that
 * judges servers by tlsgate's trust rules (client.* settings and flags).
 * A download to a file appears only when complete.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "client.h"
#include "error.h"

static const char client_usage[] =
"usage: tlsgate get URL [-o FILE] [client flags]\n"
"       tlsgate put URL FILE [client flags]\n"
"client flags:\n"
"  --ca-cert FILE|DIR   trust these CAs (default: system roots plus the local CA)\n"
"  --server-name NAME   verify NAME (and send it in SNI) instead of the URL's host\n"
"  --cert FILE --key FILE   present a client certificate\n"
"  --crl FILE|DIR       refuse a server whose certificate these CRLs revoke\n"
"                       (client.crl; client.crl_policy soft lets a missing CRL pass)\n"
"  --timeout DURATION   connect and I/O timeout (default 30s)\n"
"  --config FILE, --set client.KEY=VALUE\n";

static int
parse(int argc, char **argv, struct cli_client *cl, const char **pos, int npos,
    const char **out)
{
	int i, n = 0, r, missing = 0;
	const char *v;

	for (i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(client_usage, stdout);
			exit(0);
		}
		if ((r = cli_client_flag(cl, argc, argv, &i)) < 0)
			return -1;
		if (r)
			continue;
		if (out && ((v = cli_flag(argc, argv, &i, "-o", &missing)) ||
		    (v = cli_flag(argc, argv, &i, "--output", &missing)))) {
			*out = v;
			continue;
		}
		if (missing || (argv[i][0] == '-' && argv[i][1] != '\0'))
			return cli_fail("%s: %s", argv[i], missing ? "needs a value" :
			    "unknown option; see `tlsgate get --help`"), -1;
		if (n == npos)
			return cli_fail("too many arguments: %s", argv[i]), -1;
		pos[n++] = argv[i];
	}
	if (n != npos)
		return cli_fail("%s", npos == 1 ? "usage: tlsgate get URL [-o FILE]" :
		    "usage: tlsgate put URL FILE"), -1;
	return 0;
}

int
cmd_get(int argc, char **argv)
{
	struct cli_client cl;
	struct tg_client_opts o;
	struct tg_err err;
	const char *pos[1], *out = NULL;
	char tmp[PATH_MAX];
	int fd = 1, status = 0, rc;

	memset(&cl, 0, sizeof(cl));
	if (parse(argc, argv, &cl, pos, 1, &out) < 0)
		return 1;
	if (cli_client_opts(&cl, &o, &err) < 0)
		return cli_fail_err(&err);
	if (out && strcmp(out, "-") != 0) {
		snprintf(tmp, sizeof(tmp), "%s.tlsgate-partial-XXXXXX", out);
		if ((fd = mkstemp(tmp)) < 0)
			return cli_fail("-o %s: cannot create: %s", out, strerror(errno));
		fchmod(fd, 0644 & ~umask(022));
	}
	rc = tg_http_fetch("GET", pos[0], &o, cl.store, -1, 0, fd, &status, &err);
	if (fd != 1) {
		if (rc == 0 && (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, out) < 0)) {
			tg_err_set(&err, TG_E_IO, "-o %s: %s", out, strerror(errno));
			rc = -1;
			unlink(tmp);
		} else if (rc < 0) {
			close(fd);
			unlink(tmp);
		}
	}
	return rc < 0 ? cli_fail_err(&err) : 0;
}

int
cmd_put(int argc, char **argv)
{
	struct cli_client cl;
	struct tg_client_opts o;
	struct tg_err err;
	const char *pos[2];
	struct stat sb;
	int fd, status = 0, rc;

	memset(&cl, 0, sizeof(cl));
	if (parse(argc, argv, &cl, pos, 2, NULL) < 0)
		return 1;
	if (cli_client_opts(&cl, &o, &err) < 0)
		return cli_fail_err(&err);
	if ((fd = open(pos[1], O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) < 0)
		return cli_fail("%s: cannot read: %s", pos[1], strerror(errno));
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		return cli_fail("%s: not a regular file", pos[1]);
	}
	rc = tg_http_fetch("PUT", pos[0], &o, cl.store, fd, (uint64_t)sb.st_size, -1, &status, &err);
	close(fd);
	if (rc < 0)
		return cli_fail_err(&err);
	fprintf(stderr, "uploaded %s (%lld bytes): %d\n", pos[1], (long long)sb.st_size, status);
	return 0;
}
