/*
 * tlsgate ca install|uninstall: the local CA in the system trust store, so
 * every client on the machine trusts it (as mkcert does for developers).
 * Debian and Ubuntu: /usr/local/share/ca-certificates + update-ca-certificates;
 * Fedora and RHEL: /etc/pki/ca-trust/source/anchors + update-ca-trust.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "cli.h"
#include "error.h"
#include "pki.h"
#include "util.h"

struct family {
	const char *dir, *ext, *tool, *args;
};

static const struct family families[] = {
	{ "/usr/local/share/ca-certificates", "crt", "/usr/sbin/update-ca-certificates", "" },
	{ "/etc/pki/ca-trust/source/anchors", "pem", "/usr/bin/update-ca-trust", "extract" },
};

static const struct family *
detect(void)
{
	size_t i;

	for (i = 0; i < sizeof(families) / sizeof(families[0]); i++)
		if (access(families[i].tool, X_OK) == 0)
			return &families[i];
	return NULL;
}

/* tlsgate-<first 16 hex digits of the certificate's SHA-256>: stable per CA. */
static int
file_name(const char *ca, const struct family *f, char *buf, size_t len, struct tg_err *err)
{
	STACK_OF(X509) *sk = tg_certs_read(ca, err);
	unsigned char md[32];
	unsigned int mdl = 0;
	char hex[17];
	int i;

	if (sk == NULL)
		return -1;
	X509_digest(sk_X509_value(sk, 0), EVP_sha256(), md, &mdl);
	sk_X509_pop_free(sk, X509_free);
	for (i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	snprintf(buf, len, "%s/tlsgate-%s.%s", f->dir, hex, f->ext);
	return 0;
}

static int
run_tool(const struct family *f)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0)
			dup2(null, 1);
		if (f->args[0])
			execl(f->tool, f->tool, f->args, (char *)NULL);
		else
			execl(f->tool, f->tool, (char *)NULL);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int
cli_ca_install(const char *ca, int install)
{
	const struct family *f = detect();
	char dst[PATH_MAX];
	unsigned char *pem;
	size_t len;
	struct tg_err err;

	if (f == NULL)
		return cli_fail("no system trust store tool found (update-ca-certificates or "
		    "update-ca-trust); give clients %s with --cacert instead", ca);
	if (file_name(ca, f, dst, sizeof(dst), &err) < 0)
		return cli_fail_err(&err);
	if (geteuid() != 0) {
		if (install)
			return cli_fail("changing the system trust store needs root; run: sudo cp %s %s "
			    "&& sudo %s %s", ca, dst, f->tool, f->args);
		return cli_fail("changing the system trust store needs root; run: sudo rm %s && "
		    "sudo %s %s", dst, f->tool, f->args);
	}
	if (install) {
		if (tg_read_file(ca, &pem, &len, 1 << 20, &err) < 0)
			return cli_fail_err(&err);
		if (tg_mkdirs(f->dir, 0755, &err) < 0 || tg_write_atomic(dst, pem, len, 0, &err) < 0) {
			OPENSSL_free(pem);
			return cli_fail_err(&err);
		}
		OPENSSL_free(pem);
	} else if (unlink(dst) < 0) {
		return cli_fail("%s: %s (was this CA installed?)", dst, strerror(errno));
	}
	if (run_tool(f) < 0)
		return cli_fail("%s %s failed; the trust store may not show the change yet", f->tool, f->args);
	printf("%s %s %s the system trust store (%s)\n", install ? "added" : "removed", ca,
	    install ? "to" : "from", dst);
	return 0;
}
