/*
 * The file service. Paths are percent-decoded, then every segment is
 * checked ("..", ".", empty, control bytes, our temp names are refused),
 * then resolved beneath the root with openat2(RESOLVE_BENEATH) where the
 * kernel has it, or component by component with O_NOFOLLOW where not.
 * Uploads go to a temp file in the target's folder; only a complete body
 * is fsynced and renamed over the name, off the event loop.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "error.h"
#include "files.h"
#include "magic.h"
#include "multipart.h"
#include "util.h"

#define TMP_PREFIX ".tlsgate-upload-"

struct tg_upload {
	uint32_t magic;              /* TG_UPLOAD_MAGIC while it lives */
	int pfd, fd;
	char tmp[64], name[NAME_MAX + 1];
	char rel[PATH_MAX];
	uint64_t written;
	int existed;
	struct tg_multipart *mp;
	struct tg_conn_s *conn;      /* NULL once the connection is gone */
	struct tg_server *srv;
	int committing;              /* commit_work queued: the thread pool owns it */
	int dir_unsynced;            /* renamed, but the folder's fsync failed */
	uv_work_t work;
	int work_errno;
};

int
tg_files_clean_path(const char *raw, size_t len, char *out, size_t outlen)
{
	size_t i, n = 0, seg = 0;

	for (i = 0; i < len && raw[i] != '?'; i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c == '%') {
			int h, l;
			if (i + 2 >= len)
				return -1;
			h = tg_hexval(raw[i + 1]);
			l = tg_hexval(raw[i + 2]);
			if (h < 0 || l < 0)
				return -1;
			c = (unsigned char)(h * 16 + l);
			i += 2;
		}
		if (c < 0x20 || c == 0x7f || c == '\\')
			return -1;
		if (n + 1 >= outlen)
			return -1;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	/* every segment must be a plain name */
	for (i = 0; i <= n; i++) {
		if (i == n || out[i] == '/') {
			size_t sl = i - seg;
			const char *s = out + seg;
			if (i == n && sl == 0 && n > 0 && out[n - 1] == '/')
				break;   /* a trailing slash names a folder */
			if (sl == 0 && n > 0)
				return -1;
			if ((sl == 1 && s[0] == '.') || (sl == 2 && s[0] == '.' && s[1] == '.'))
				return -1;
			if (sl > NAME_MAX)
				return -1;
			if (sl >= sizeof(TMP_PREFIX) - 1 && !strncmp(s, TMP_PREFIX, sizeof(TMP_PREFIX) - 1))
				return -1;
			seg = i + 1;
		}
	}
	return 0;
}

int
tg_files_open_root(struct tg_server *srv, struct tg_err *err)
{
	if (tg_mkdirs(srv->files_root, 0755, err) < 0)
		return -1;
	srv->files_root_fd = open(srv->files_root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (srv->files_root_fd < 0)
		return tg_err_set(err, TG_E_IO, "files.root %s: %s", srv->files_root, strerror(errno));
	return 0;
}

static void
sweep_dir(int dfd, int depth)
{
	DIR *d;
	struct dirent *de;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (!strncmp(de->d_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1)) {
			unlinkat(dirfd(d), de->d_name, 0);
		} else if (de->d_type == DT_DIR && de->d_name[0] != '.' && depth < 32) {
			int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub >= 0) {
				sweep_dir(sub, depth + 1);
				close(sub);
			}
		}
	}
	closedir(d);
}

void
tg_files_sweep(struct tg_server *srv)
{
	int fd = openat(srv->files_root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		sweep_dir(fd, 0);
		close(fd);
	}
}

/* Opens rel (a file or folder) beneath the root for reading. */
static int
open_beneath(int rootfd, const char *rel, int flags)
{
	struct open_how how;
	char tmp[PATH_MAX], *p, *slash;
	int fd, next;

	memset(&how, 0, sizeof(how));
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	fd = (int)syscall(SYS_openat2, rootfd, rel[0] ? rel : ".", &how, sizeof(how));
	if (fd >= 0 || errno != ENOSYS)
		return fd;
	/* no openat2: walk, following no symlink at all */
	snprintf(tmp, sizeof(tmp), "%s", rel);
	fd = openat(rootfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	for (p = tmp; fd >= 0 && (slash = strchr(p, '/')) != NULL; p = slash + 1) {
		*slash = '\0';
		next = openat(fd, p, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
	}
	if (fd < 0 || *p == '\0')
		return fd;
	next = openat(fd, p, flags | O_NOFOLLOW | O_CLOEXEC);
	close(fd);
	return next;
}

/* Opens the folder that holds rel, creating missing folders (never through
 * a symlink); *name points at the last segment. */
static int
open_parent(int rootfd, char *rel, const char **name)
{
	char *p = rel, *slash;
	int fd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), next;

	/* O_RDONLY, not O_PATH: the last folder is fsynced after the rename */
	while (fd >= 0 && (slash = strchr(p, '/')) != NULL) {
		*slash = '\0';
		if (mkdirat(fd, p, 0755) < 0 && errno != EEXIST) {
			close(fd);
			*slash = '/';
			return -1;
		}
		next = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		*slash = '/';
		fd = next;
		p = slash + 1;
	}
	*name = p;
	return fd;
}

static int
errno_status(int e)
{
	switch (e) {
	case ENOENT:
		return 404;
	case EXDEV: case ELOOP: case ENOTDIR: case EACCES: case EPERM:
		return 403;
	case EISDIR: case ENOTEMPTY: case EEXIST:
		return 409;
	case ENOSPC: case EDQUOT:
		return 507;
	case ENAMETOOLONG:
		return 414;
	default:
		return 500;
	}
}

static const char *
errno_reason(int e)
{
	switch (errno_status(e)) {
	case 404: return "no such file";
	case 403: return "path leaves the file root or crosses a symlink";
	case 409: return "a folder is in the way (or the folder is not empty)";
	case 507: return "no space left on the server";
	default: return strerror(e);
	}
}

static void
http_date(time_t t, char *buf, size_t len)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* "bytes=a-b" for a file of size n -> [*from, *to]; 0 ok, 1 ignore, -1 416. */
static int
parse_range(const char *r, uint64_t n, uint64_t *from, uint64_t *to)
{
	char *end;
	unsigned long long a, b;

	if (strncmp(r, "bytes=", 6) != 0 || strchr(r, ','))
		return 1;   /* other units and multiple ranges: send it all */
	r += 6;
	if (*r == '-') {
		b = strtoull(r + 1, &end, 10);
		if (end == r + 1 || *end)
			return 1;
		if (b == 0)
			return -1;
		*from = b >= n ? 0 : n - b;
		*to = n ? n - 1 : 0;
		return n ? 0 : -1;
	}
	if (*r < '0' || *r > '9')
		return 1;
	a = strtoull(r, &end, 10);
	if (*end != '-')
		return 1;
	if (end[1] == '\0') {
		b = n ? n - 1 : 0;
	} else {
		char *e2;
		b = strtoull(end + 1, &e2, 10);
		if (*e2 || b < a)
			return 1;
		if (b >= n)
			b = n ? n - 1 : 0;
	}
	if (a >= n)
		return -1;
	*from = a;
	*to = b;
	return 0;
}

static void
serve_listing(struct tg_conn_s *c, int dfd)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	char *body = NULL;
	size_t len = 0, cap = 0;

	if (d == NULL) {
		close(dfd);
		tg_conn_respond(c, 500, NULL, "cannot list the folder");
		return;
	}
	while ((de = readdir(d)) != NULL && len < (1 << 20)) {
		size_t nl = strlen(de->d_name);
		if (de->d_name[0] == '.' && (nl <= 2 || !strncmp(de->d_name, TMP_PREFIX, sizeof(TMP_PREFIX) - 1)))
			continue;
		if (len + nl + 3 > cap) {
			char *nb = realloc(body, cap = (cap + nl + 3) * 2);
			if (nb == NULL)
				break;
			body = nb;
		}
		len += (size_t)sprintf(body + len, "%s%s\n", de->d_name, de->d_type == DT_DIR ? "/" : "");
	}
	closedir(d);
	tg_conn_respond(c, 200, "Content-Type: text/plain; charset=utf-8\r\n", body ? body : "");
	free(body);
}

static void
serve_read(struct tg_conn_s *c, const char *rel, int head)
{
	char hdrs[512], date[64];
	struct stat sb;
	uint64_t from = 0, to = 0;
	int fd, r = 1, n;

	fd = open_beneath(c->srv->files_root_fd, rel, O_RDONLY);
	if (fd < 0) {
		tg_conn_respond(c, errno_status(errno), NULL, errno_reason(errno));
		return;
	}
	if (fstat(fd, &sb) < 0) {
		close(fd);
		tg_conn_respond(c, 500, NULL, strerror(errno));
		return;
	}
	if (S_ISDIR(sb.st_mode)) {
		if (head) {
			close(fd);
			tg_conn_respond(c, 200, "Content-Type: text/plain; charset=utf-8\r\n", "");
			return;
		}
		serve_listing(c, fd);
		return;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		tg_conn_respond(c, 403, NULL, "not a regular file");
		return;
	}
	http_date(sb.st_mtime, date, sizeof(date));
	if (c->range[0])
		r = parse_range(c->range, (uint64_t)sb.st_size, &from, &to);
	if (r < 0) {
		close(fd);
		snprintf(hdrs, sizeof(hdrs), "Content-Range: bytes */%llu\r\n",
		    (unsigned long long)sb.st_size);
		tg_conn_respond(c, 416, hdrs, "range not satisfiable");
		return;
	}
	n = snprintf(hdrs, sizeof(hdrs), "Content-Type: application/octet-stream\r\n"
	    "Accept-Ranges: bytes\r\nLast-Modified: %s\r\n", date);
	if (r == 0) {
		snprintf(hdrs + n, sizeof(hdrs) - (size_t)n, "Content-Range: bytes %llu-%llu/%llu\r\n",
		    (unsigned long long)from, (unsigned long long)to, (unsigned long long)sb.st_size);
	} else {
		from = 0;
		to = (uint64_t)sb.st_size - 1;   /* an empty file: len 0 below */
	}
	tg_conn_respond_file(c, r == 0 ? 206 : 200, hdrs, fd, from,
	    sb.st_size == 0 ? 0 : to - from + 1, head);
}

static void
serve_delete(struct tg_conn_s *c, char *rel)
{
	const char *name;
	int pfd;

	if (rel[0] == '\0') {
		tg_conn_respond(c, 403, NULL, "the file root itself cannot be removed");
		return;
	}
	if (rel[strlen(rel) - 1] == '/')
		rel[strlen(rel) - 1] = '\0';
	{
		/* resolve the parent beneath the root, creating nothing */
		char parent[PATH_MAX];
		char *slash = strrchr(rel, '/');
		snprintf(parent, sizeof(parent), "%.*s", slash ? (int)(slash - rel) : 0, rel);
		name = slash ? slash + 1 : rel;
		pfd = open_beneath(c->srv->files_root_fd, parent, O_RDONLY | O_DIRECTORY);
	}
	if (pfd < 0) {
		tg_conn_respond(c, errno_status(errno), NULL, errno_reason(errno));
		return;
	}
	{
		struct stat sb;
		if (fstatat(pfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(sb.st_mode)) {
			close(pfd);
			tg_conn_respond(c, 403, NULL, "the name is a symbolic link");
			return;
		}
	}
	if (unlinkat(pfd, name, 0) < 0 && (errno != EISDIR || unlinkat(pfd, name, AT_REMOVEDIR) < 0)) {
		int e = errno;
		close(pfd);
		tg_conn_respond(c, errno_status(e), NULL, errno_reason(e));
		return;
	}
	fsync(pfd);
	close(pfd);
	tg_conn_respond(c, 204, NULL, NULL);
}

/* An upload that cannot start: what it holds let go, the refusal queued. */
static int
upload_refused(struct tg_conn_s *c, struct tg_upload *up, int status, const char *why)
{
	if (up->pfd >= 0)
		close(up->pfd);
	tg_multipart_free(up->mp);
	free(up);
	tg_conn_respond(c, status, NULL, why);
	return 0;
}

/* A PUT: the parent folder opened beneath the root, the name checked (no
 * link, no folder), a temp file made beside it. 1 when the body can come,
 * 0 when a refusal is queued. */
static int
start_upload(struct tg_conn_s *c, char *rel)
{
	struct tg_upload *up;
	unsigned char rnd[8];
	const char *name;
	struct stat sb;
	size_t rl = strlen(rel);
	int e;

	if (rl == 0 || rel[rl - 1] == '/') {
		tg_conn_respond(c, 400, NULL, "name a file to store, not a folder");
		return 0;
	}
	if (c->has_len && c->content_length > c->srv->max_upload) {
		tg_conn_respond(c, 413, NULL, "the body is larger than files.max_upload");
		return 0;
	}
	if ((up = calloc(1, sizeof(*up))) == NULL) {
		tg_conn_respond(c, 503, NULL, "out of memory");
		return 0;
	}
	up->magic = TG_UPLOAD_MAGIC;
	up->srv = c->srv;
	up->fd = -1;
	snprintf(up->rel, sizeof(up->rel), "%s", rel);
	if ((up->pfd = open_parent(c->srv->files_root_fd, rel, &name)) < 0) {
		e = errno;
		return upload_refused(c, up, errno_status(e), errno_reason(e));
	}
	snprintf(up->name, sizeof(up->name), "%s", name);
	if (fstatat(up->pfd, up->name, &sb, AT_SYMLINK_NOFOLLOW) == 0) {
		/* links are the operator's; clients neither follow nor replace them */
		if (S_ISLNK(sb.st_mode))
			return upload_refused(c, up, 403, "the name is a symbolic link");
		if (S_ISDIR(sb.st_mode))
			return upload_refused(c, up, 409, "a folder of that name exists");
		up->existed = 1;
	}
	if (c->content_type[0] && (up->mp = tg_multipart_new(c->content_type,
	    strlen(c->content_type))) == NULL && !strncasecmp(c->content_type, "multipart/", 10))
		return upload_refused(c, up, 400, "multipart body without a usable boundary");
	RAND_bytes(rnd, sizeof(rnd));
	snprintf(up->tmp, sizeof(up->tmp), TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x",
	    rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7]);
	up->fd = openat(up->pfd, up->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (up->fd < 0) {
		e = errno;
		return upload_refused(c, up, errno_status(e), errno_reason(e));
	}
	c->hreq = up;
	return 1;
}

static int
tg_files_begin(struct tg_conn_s *c, const char *raw, size_t len)
{
	char rel[PATH_MAX];

	if (tg_files_clean_path(raw, len, rel, sizeof(rel)) < 0) {
		tg_conn_respond(c, 400, NULL, "bad file path (.., empty or upload-temp segments, "
		    "names over 255 bytes, control characters or bad %-encoding)");
		return 0;
	}
	if (!strcmp(c->method, "GET") || !strcmp(c->method, "HEAD")) {
		serve_read(c, rel, c->method[0] == 'H');
		return 0;
	}
	if (!strcmp(c->method, "DELETE")) {
		serve_delete(c, rel);
		return 0;
	}
	if (!strcmp(c->method, "PUT") || !strcmp(c->method, "POST"))
		return start_upload(c, rel);
	tg_conn_respond(c, 405, "Allow: GET, HEAD, PUT, POST, DELETE\r\n", "method not allowed");
	return 0;
}

static int
write_out(void *arg, const char *data, size_t len)
{
	struct tg_conn_s *c = arg;
	struct tg_upload *up = c->hreq;

	if (up->written + len > c->srv->max_upload) {
		errno = EFBIG;
		return -1;
	}
	while (len > 0) {
		ssize_t w = write(up->fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		data += w;
		len -= (size_t)w;
		up->written += (uint64_t)w;
	}
	return 0;
}

/* Frees an upload that no thread works on: the temp file goes too. */
static void
upload_free(struct tg_upload *up)
{
	if (up->fd >= 0) {
		close(up->fd);
		unlinkat(up->pfd, up->tmp, 0);
	}
	close(up->pfd);
	tg_multipart_free(up->mp);
	up->magic = 0;
	free(up);
}

static void
drop_upload(struct tg_conn_s *c)
{
	struct tg_upload *up = c->hreq;

	if (up == NULL)
		return;
	TG_MAGIC_CHECK(up, TG_UPLOAD_MAGIC, "upload");
	if (up->committing)
		tg_magic_fail("upload (commit in flight)", up, up->magic, __func__);
	c->hreq = NULL;
	upload_free(up);
}

static int
tg_files_body(struct tg_conn_s *c, char *data, size_t len)
{
	struct tg_upload *up = c->hreq;
	int r;

	if (up == NULL)
		return 0;   /* the body of a request that is already answered */
	r = up->mp ? tg_multipart_feed(up->mp, data, len, write_out, c) : write_out(c, data, len);
	if (r == -1 && errno == EFBIG) {
		drop_upload(c);
		tg_conn_respond(c, 413, NULL, "the body is larger than files.max_upload");
		return -1;
	}
	if (r < 0) {
		/* read before drop_upload frees up */
		int e = errno, malformed = up->mp != NULL && r == -1;
		drop_upload(c);
		if (malformed)
			tg_conn_respond(c, 400, NULL, "malformed multipart body");
		else
			tg_conn_respond(c, errno_status(e), NULL, errno_reason(e));
		return -1;
	}
	return 0;
}

/* Runs on libuv's thread pool: fsync and rename are disk waits. */
static void
commit_work(uv_work_t *w)
{
	struct tg_upload *up = w->data;
	int e = 0;

	TG_MAGIC_CHECK(up, TG_UPLOAD_MAGIC, "upload");
	if (fsync(up->fd) < 0)
		e = errno;
	if (close(up->fd) < 0 && e == 0 && errno != EINTR)
		e = errno;
	up->fd = -1;
	if (e == 0 && renameat(up->pfd, up->tmp, up->pfd, up->name) < 0)
		e = errno;
	if (e) {
		/* nothing visible changed: the old version (if any) stays */
		unlinkat(up->pfd, up->tmp, 0);
		up->work_errno = e;
		return;
	}
	/* the new name is in place; without this the rename may not survive
	 * a crash, so the client is not told it was stored */
	if (fsync(up->pfd) < 0) {
		up->work_errno = errno;
		up->dir_unsynced = 1;
	}
}

static void
commit_done(uv_work_t *w, int status)
{
	struct tg_upload *up = w->data;
	struct tg_conn_s *c;
	char body[PATH_MAX + 64];
	int e, st;

	TG_MAGIC_CHECK(up, TG_UPLOAD_MAGIC, "upload");
	up->committing = 0;
	c = up->conn;
	e = status == UV_ECANCELED ? ECANCELED : up->work_errno;
	if (e) {
		st = errno_status(e) == 507 ? 507 : 500;
		snprintf(body, sizeof(body), "%s%s", up->dir_unsynced ? "the file is in place but "
		    "its folder could not be synced to disk: " : "", errno_reason(e));
		tg_log(up->srv, TG_LOG_ERROR, "%s: cannot store %s: %s%s", c ? c->peer : "-", up->rel,
		    strerror(e), up->dir_unsynced ? " (folder fsync after the rename; the new "
		    "version is visible but may not survive a crash)" : "; nothing was changed, "
		    "the old version (if any) stays");
	} else {
		st = up->existed ? 200 : 201;
		snprintf(body, sizeof(body), "stored %s (%llu bytes)", up->rel,
		    (unsigned long long)up->written);
		if (c == NULL)
			tg_log(up->srv, TG_LOG_INFO, "stored %s (%llu bytes); its client had gone",
			    up->rel, (unsigned long long)up->written);
	}
	upload_free(up);
	if (c == NULL)
		return;   /* the connection ended while the commit ran */
	TG_MAGIC_CHECK(c, TG_CONN_MAGIC, "connection");
	c->hreq = NULL;
	tg_conn_respond(c, st, NULL, body);
	tg_conn_resume(c);
}

static void
tg_files_body_end(struct tg_conn_s *c)
{
	struct tg_upload *up = c->hreq;

	TG_MAGIC_CHECK(up, TG_UPLOAD_MAGIC, "upload");
	if (up->mp && !tg_multipart_complete(up->mp)) {
		drop_upload(c);
		tg_conn_respond(c, 400, NULL, "multipart body has no complete file part");
		return;
	}
	up->work.data = up;
	up->conn = c;
	up->committing = 1;
	if (uv_queue_work(c->srv->loop, &up->work, commit_work, commit_done) != 0) {
		up->committing = 0;
		drop_upload(c);
		tg_conn_respond(c, 500, NULL, "cannot queue the upload's completion");
		return;
	}
	tg_conn_wait(c);
}

static void
tg_files_abort(struct tg_conn_s *c)
{
	struct tg_upload *up = c->hreq;

	if (up == NULL)
		return;
	TG_MAGIC_CHECK(up, TG_UPLOAD_MAGIC, "upload");
	if (up->committing) {
		/* The thread pool owns it until commit_done, which finds no
		 * connection to answer: the whole body arrived, so the file is
		 * still made durable and visible (or left as it was). */
		up->conn = NULL;
		c->hreq = NULL;
		return;
	}
	drop_upload(c);
}

/* ---- the handler (handler.h) ---------------------------------------------- */

static int
files_match(const struct tg_handler *h, const struct tg_conn_s *c)
{
	const struct tg_server *s = c->srv;

	return s->files_enabled && !strncmp(c->target, s->files_prefix, s->files_prefix_len);
}

static enum tg_handled
files_begin(const struct tg_handler *h, struct tg_conn_s *c, const struct tg_http_req *req)
{
	const struct tg_server *s = c->srv;
	size_t tl = strlen(c->target);

	return tg_files_begin(c, c->target + s->files_prefix_len, tl - s->files_prefix_len) == 1 ?
	    TG_H_BODY : TG_H_DONE;
}

static void
files_body_end(struct tg_conn_s *c)
{
	if (c->hreq)
		tg_files_body_end(c);
}

const struct tg_handler tg_files_handler = {
	.service = "files", .counted = TG_COUNT_FILES, .match = files_match, .begin = files_begin,
	.body = tg_files_body, .body_end = files_body_end, .abort = tg_files_abort,
};
