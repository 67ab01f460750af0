/*
 * Parsing of sizes, durations and addresses; paths; atomic file writes.
 * Nothing here knows about TLS.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "error.h"
#include "util.h"

static int
parse_num_unit(const char *s, int64_t *num, const char **unit)
{
	char *end;
	long long v;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || v < 0)
		return -1;
	while (isspace((unsigned char)*end))
		end++;
	*num = v;
	*unit = end;
	return 0;
}

struct unit {
	const char *u;
	int64_t m;
};

/* NUMBER UNIT with the unit from the table; no overflow. */
static int
parse_with_units(const char *s, const struct unit *units, size_t n, int64_t *out)
{
	int64_t v;
	const char *u;
	size_t i;

	if (parse_num_unit(s, &v, &u) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (strcmp(u, units[i].u) == 0) {
			if (v > INT64_MAX / units[i].m)
				return -1;
			*out = v * units[i].m;
			return 0;
		}
	}
	return -1;
}

int
tg_parse_size(const char *s, int64_t *out)
{
	static const struct unit units[] = {
		{ "", 1 }, { "B", 1 }, { "KiB", 1LL << 10 }, { "MiB", 1LL << 20 },
		{ "GiB", 1LL << 30 }, { "TiB", 1LL << 40 },
		{ "KB", 1000 }, { "MB", 1000000 }, { "GB", 1000000000 },
	};
	return parse_with_units(s, units, sizeof(units) / sizeof(units[0]), out);
}

int
tg_parse_duration(const char *s, int64_t *out_ms)
{
	static const struct unit units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 }, { "d", 86400000 },
	};
	return parse_with_units(s, units, sizeof(units) / sizeof(units[0]), out_ms);
}

int
tg_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
tg_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon, *h;
	size_t hl;
	char *end;
	long p;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
			return -1;
		h = s;
		hl = (size_t)(colon - s);
	}
	if (hl >= hostlen)
		return -1;
	errno = 0;
	p = strtol(colon + 1, &end, 10);
	if (errno || *end != '\0' || colon[1] == '\0' || p < 0 || p > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

int
tg_path_expand(char *buf, size_t len, const char *path)
{
	const char *home;
	int n;

	if (path[0] == '~' && (path[1] == '/' || path[1] == '\0')) {
		home = getenv("HOME");
		if (home == NULL || home[0] == '\0')
			home = "/";
		n = snprintf(buf, len, "%s%s", home, path + 1);
	} else {
		n = snprintf(buf, len, "%s", path);
	}
	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

int
tg_path_join(char *buf, size_t len, const char *dir, const char *name)
{
	char tmp[PATH_MAX];
	int n;

	if (tg_path_expand(tmp, sizeof(tmp), name) < 0)
		return -1;
	if (tmp[0] == '/' || dir == NULL || dir[0] == '\0' || tmp[0] == '\0' || !strcmp(dir, "."))
		n = snprintf(buf, len, "%s", tmp);
	else
		n = snprintf(buf, len, "%s/%s", dir, tmp);
	return (n < 0 || (size_t)n >= len) ? -1 : 0;
}

int
tg_path_fmt(char *buf, size_t len, struct tg_err *err, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < len)
		return 0;
	tg_err_set(err, TG_E_USAGE, "a path would be longer than %zu bytes (%.120s...); "
	    "choose a shorter folder (state_dir, files.root)", len ? len - 1 : 0, len ? buf : "");
	if (len > 0)
		buf[0] = '\0';
	return -1;
}

void
tg_path_dir(char *buf, size_t len, const char *path)
{
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		snprintf(buf, len, ".");
	else if (slash == path)
		snprintf(buf, len, "/");
	else
		snprintf(buf, len, "%.*s", (int)(slash - path), path);
}

int
tg_mkdirs(const char *path, mode_t mode, struct tg_err *err)
{
	char tmp[PATH_MAX];
	char *p;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return tg_err_set(err, TG_E_IO, "%s: path too long", path);
	for (p = tmp + 1; ; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;
			*p = '\0';
			if (mkdir(tmp, mode) < 0 && errno != EEXIST)
				return tg_err_set(err, TG_E_IO, "cannot create folder %s: %s",
				    tmp, strerror(errno));
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

static int
fsync_dir(const char *path)
{
	char dir[PATH_MAX];
	int fd, rv;

	tg_path_dir(dir, sizeof(dir), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	rv = fsync(fd);
	close(fd);
	return rv;
}

int
tg_fsync_parent(const char *path)
{
	return fsync_dir(path);
}

int
tg_write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t off = 0;

	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

int
tg_write_atomic(const char *path, const void *data, size_t len, int secret,
    struct tg_err *err)
{
	char tmp[PATH_MAX];
	unsigned char rnd[6];
	const unsigned char *p = data;
	size_t off = 0;
	int fd;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return tg_err_set(err, TG_E_INTERNAL, "no randomness available");
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%02x%02x%02x%02x%02x%02x", path, rnd[0],
	    rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]) >= (int)sizeof(tmp))
		return tg_err_set(err, TG_E_IO, "%s: path too long", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, secret ? 0600 : 0644);
	if (fd < 0)
		return tg_err_set(err, TG_E_IO, "cannot write %s: %s", path, strerror(errno));
	if (secret)
		(void)fchmod(fd, 0600);   /* whatever the umask said */
	while (off < len) {
		ssize_t n = write(fd, p + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto fail;
	(void)fsync_dir(path);
	return 0;
fail:
	tg_err_set(err, TG_E_IO, "cannot write %s: %s", path, strerror(errno));
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	return -1;
}

int
tg_read_file(const char *path, unsigned char **out, size_t *len, size_t max,
    struct tg_err *err)
{
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0;
	int fd;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tg_err_set(err, errno == ENOENT ? TG_E_NOT_FOUND : TG_E_IO,
		    "cannot read %s: %s", path, strerror(errno));
	for (;;) {
		ssize_t r;
		if (n + 1 >= cap) {
			size_t ncap = cap ? cap * 2 : 4096;
			unsigned char *nb;
			if (ncap > max + 1)
				ncap = max + 1;
			if (n + 1 >= ncap) {
				tg_err_set(err, TG_E_IO, "%s: file larger than %zu bytes", path, max);
				goto fail;
			}
			/* grow by copying so a secret never sits in freed memory */
			nb = OPENSSL_malloc(ncap);
			if (nb == NULL)
				goto fail;
			if (buf) {
				memcpy(nb, buf, n);
				OPENSSL_clear_free(buf, cap);
			}
			buf = nb;
			cap = ncap;
		}
		r = read(fd, buf + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			tg_err_set(err, TG_E_IO, "cannot read %s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
fail:
	close(fd);
	OPENSSL_clear_free(buf, cap);
	return -1;
}

int
tg_buf_append(char **buf, size_t *len, size_t max, const void *p, size_t n)
{
	char *nb;

	if (*len + n > max || (nb = realloc(*buf, *len + n + 1)) == NULL)
		return -1;
	*buf = nb;
	memcpy(nb + *len, p, n);
	*len += n;
	nb[*len] = '\0';
	return 0;
}

void
tg_free(void *p)
{
	OPENSSL_free(p);
}

void
tg_free_secret(void *p, size_t len)
{
	if (p)
		OPENSSL_cleanse(p, len);
	OPENSSL_free(p);
}

int
tg_is_root(void)
{
	return geteuid() == 0;
}

uint64_t
tg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}
