/*
 * A fault-injection shim for tests (LD_PRELOAD): makes chosen calls to
 * fsync, fdatasync, write, rename, open, accept or malloc fail with an
 * errno, or slow them down, so the server's unlucky paths can be driven on
 * purpose: a full disk, a failing fsync or rename, no descriptors left, no
 * memory.
 *
 * Rules, separated by ';' or new lines:
 *
 *     OP[@SUBSTR]:WHEN:ACTION
 *
 *   OP      fsync fdatasync write rename open accept malloc
 *           (rename covers rename/renameat/renameat2, open covers
 *           open/openat, their 64 forms and syscall(SYS_openat2), accept
 *           covers accept4, malloc covers calloc, realloc, aligned_alloc
 *           and posix_memalign)
 *   SUBSTR  only calls whose file path contains it (for fd calls the path
 *           of /proc/self/fd/N; for rename either name); for malloc, only
 *           allocations of exactly that many bytes
 *   WHEN    N (the Nth matching call only), N+ (the Nth and every later
 *           one) or * (every one)
 *   ACTION  an errno name (EIO ENOSPC EMFILE ENFILE ENOMEM EDQUOT EACCES
 *           EINTR) or sleep=MS (wait, then do the call)
 *
 * The rules come from TG_FAULT at start, and from the file TG_FAULT_ARM
 * whenever that file changes (looked at every 20 ms at most): a test can
 * arm and disarm faults in a running server, and each change of the file
 * starts the counts again. Every fault done is appended as one line to
 * TG_FAULT_LOG, so a test can prove the fault was met.
 *
 * Under ASan, preload the sanitizer's runtime first
 * (LD_PRELOAD=libasan.so:faultshim.so); malloc faults then reach only a
 * build without ASan, whose allocator the shim wraps.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum op { OP_FSYNC, OP_FDATASYNC, OP_WRITE, OP_RENAME, OP_OPEN, OP_ACCEPT, OP_MALLOC, OP_N };
static const char *const op_names[OP_N] = {
	"fsync", "fdatasync", "write", "rename", "open", "accept", "malloc"
};

#define MAX_RULES 16
struct rule {
	enum op op;
	char sub[128];
	unsigned long nth;     /* 0 = every call */
	int and_later;
	int err;               /* 0 = sleep */
	unsigned sleep_ms;
	atomic_ulong seen;
};

static struct rule rules[MAX_RULES];
static atomic_int nrules;
static atomic_int ops_armed[OP_N];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int inside;          /* the shim's own calls are never faulted */
static struct timespec arm_checked;
static struct stat arm_sig;

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);

static int
errno_of(const char *s)
{
	static const struct { const char *n; int e; } t[] = {
		{ "EIO", EIO }, { "ENOSPC", ENOSPC }, { "EMFILE", EMFILE }, { "ENFILE", ENFILE },
		{ "ENOMEM", ENOMEM }, { "EDQUOT", EDQUOT }, { "EACCES", EACCES }, { "EINTR", EINTR },
	};
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(s, t[i].n))
			return t[i].e;
	return -1;
}

/* Parses the rule text (modified in place); rules take effect at once. */
static void
parse_rules(char *text)
{
	char *save = NULL, *r;
	int n = 0, o;

	atomic_store(&nrules, 0);
	for (o = 0; o < OP_N; o++)
		atomic_store(&ops_armed[o], 0);
	for (r = strtok_r(text, ";\n", &save); r && n < MAX_RULES; r = strtok_r(NULL, ";\n", &save)) {
		struct rule *x = &rules[n];
		char *when = strchr(r, ':'), *act, *at;
		while (*r == ' ')
			r++;
		if (when == NULL || (act = strchr(when + 1, ':')) == NULL)
			continue;
		*when++ = '\0';
		*act++ = '\0';
		x->sub[0] = '\0';
		if ((at = strchr(r, '@')) != NULL) {
			*at = '\0';
			snprintf(x->sub, sizeof(x->sub), "%s", at + 1);
		}
		for (o = 0; o < OP_N && strcmp(r, op_names[o]); o++)
			;
		if (o == OP_N)
			continue;
		x->op = (enum op)o;
		x->nth = *when == '*' ? 0 : strtoul(when, NULL, 10);
		x->and_later = strchr(when, '+') != NULL;
		if (!strncmp(act, "sleep=", 6)) {
			x->err = 0;
			x->sleep_ms = (unsigned)strtoul(act + 6, NULL, 10);
		} else if ((x->err = errno_of(act)) < 0) {
			continue;
		}
		atomic_store(&x->seen, 0);
		atomic_store(&ops_armed[o], 1);
		n++;
	}
	atomic_store(&nrules, n);
}

/* Reads TG_FAULT_ARM again when it changed (or went away). */
static void
check_arm(void)
{
	const char *path = getenv("TG_FAULT_ARM");
	struct timespec now;
	struct stat sb;
	char buf[2048];
	int fd;
	ssize_t n;

	if (path == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
	if ((now.tv_sec - arm_checked.tv_sec) * 1000 + (now.tv_nsec - arm_checked.tv_nsec) / 1000000 < 20)
		return;
	pthread_mutex_lock(&lock);
	arm_checked = now;
	if (stat(path, &sb) < 0) {
		if (arm_sig.st_ino != 0) {
			memset(&arm_sig, 0, sizeof(arm_sig));
			buf[0] = '\0';
			parse_rules(buf);   /* no rules: disarmed */
		}
		pthread_mutex_unlock(&lock);
		return;
	}
	if (sb.st_ino != arm_sig.st_ino || sb.st_mtim.tv_nsec != arm_sig.st_mtim.tv_nsec ||
	    sb.st_mtim.tv_sec != arm_sig.st_mtim.tv_sec || sb.st_size != arm_sig.st_size) {
		arm_sig = sb;
		fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
		n = fd >= 0 ? syscall(SYS_read, fd, buf, sizeof(buf) - 1) : -1;
		if (fd >= 0)
			syscall(SYS_close, fd);
		buf[n > 0 ? n : 0] = '\0';
		parse_rules(buf);
	}
	pthread_mutex_unlock(&lock);
}

static void
note(enum op op, const char *path, const struct rule *x)
{
	const char *logp = getenv("TG_FAULT_LOG");
	char line[600];
	int fd, n;

	if (logp == NULL)
		return;
	if (x->err)
		n = snprintf(line, sizeof(line), "fault: %s %s -> %s\n", op_names[op], path, strerror(x->err));
	else
		n = snprintf(line, sizeof(line), "fault: %s %s -> slept %u ms\n", op_names[op], path,
		    x->sleep_ms);
	fd = (int)syscall(SYS_openat, AT_FDCWD, logp, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		syscall(SYS_write, fd, line, (size_t)n);
		syscall(SYS_close, fd);
	}
}

/* 0: do the call; otherwise the errno to fail it with. Sleeps here. */
static int
fault(enum op op, const char *path)
{
	int i, n;
	int saved = errno;   /* a call that goes on must see the errno it had */

	if (inside)
		return 0;
	inside = 1;
	check_arm();
	errno = saved;
	if (!atomic_load(&ops_armed[op])) {
		inside = 0;
		return 0;
	}
	n = atomic_load(&nrules);
	for (i = 0; i < n; i++) {
		struct rule *x = &rules[i];
		unsigned long k;
		if (x->op != op || (x->sub[0] && (path == NULL || (op == OP_MALLOC ?
		    strcmp(path, x->sub) : !strstr(path, x->sub) ? 1 : 0))))
			continue;
		k = atomic_fetch_add(&x->seen, 1) + 1;
		if (x->nth && (x->and_later ? k < x->nth : k != x->nth))
			continue;
		note(op, path ? path : "-", x);
		if (x->err == 0) {
			struct timespec ts = { x->sleep_ms / 1000, (long)(x->sleep_ms % 1000) * 1000000L };
			nanosleep(&ts, NULL);
			continue;
		}
		inside = 0;
		return x->err;
	}
	inside = 0;
	errno = saved;
	return 0;
}

/* The path behind a descriptor, or behind dirfd/name. */
static const char *
fd_path(int fd, char *buf, size_t len)
{
	char l[64];
	ssize_t n;

	snprintf(l, sizeof(l), "/proc/self/fd/%d", fd);
	n = syscall(SYS_readlinkat, AT_FDCWD, l, buf, len - 1);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static const char *
at_path(int dfd, const char *name, char *buf, size_t len)
{
	if (name[0] == '/' || dfd == AT_FDCWD) {
		snprintf(buf, len, "%s", name);
		return buf;
	}
	fd_path(dfd, buf, len);
	snprintf(buf + strlen(buf), len - strlen(buf), "/%s", name);
	return buf;
}

#define NEXT(ret, name, ...) \
	static ret (*real)(__VA_ARGS__); \
	if (real == NULL) \
		real = (ret (*)(__VA_ARGS__))dlsym(RTLD_NEXT, name)

#define FD_CALL(op, fd) \
	char p_[512]; \
	int e_ = atomic_load(&ops_armed[op]) || getenv("TG_FAULT_ARM") ? \
	    fault(op, inside ? NULL : fd_path(fd, p_, sizeof(p_))) : 0; \
	if (e_) { errno = e_; return -1; }

int
fsync(int fd)
{
	NEXT(int, "fsync", int);
	FD_CALL(OP_FSYNC, fd);
	return real(fd);
}

int
fdatasync(int fd)
{
	NEXT(int, "fdatasync", int);
	FD_CALL(OP_FDATASYNC, fd);
	return real(fd);
}

ssize_t
write(int fd, const void *b, size_t n)
{
	NEXT(ssize_t, "write", int, const void *, size_t);
	if (fd > 2) {   /* never the log */
		FD_CALL(OP_WRITE, fd);
	}
	return real(fd, b, n);
}

static int
rename_fault(int od, const char *o, int nd, const char *nn)
{
	char a[512], b[512], both[1100];

	if (!atomic_load(&ops_armed[OP_RENAME]) && getenv("TG_FAULT_ARM") == NULL)
		return 0;
	at_path(od, o, a, sizeof(a));
	at_path(nd, nn, b, sizeof(b));
	snprintf(both, sizeof(both), "%s -> %s", a, b);
	return fault(OP_RENAME, both);
}

int
rename(const char *o, const char *n)
{
	NEXT(int, "rename", const char *, const char *);
	int e = rename_fault(AT_FDCWD, o, AT_FDCWD, n);
	if (e) { errno = e; return -1; }
	return real(o, n);
}

int
renameat(int od, const char *o, int nd, const char *n)
{
	NEXT(int, "renameat", int, const char *, int, const char *);
	int e = rename_fault(od, o, nd, n);
	if (e) { errno = e; return -1; }
	return real(od, o, nd, n);
}

int
renameat2(int od, const char *o, int nd, const char *n, unsigned fl)
{
	NEXT(int, "renameat2", int, const char *, int, const char *, unsigned);
	int e = rename_fault(od, o, nd, n);
	if (e) { errno = e; return -1; }
	return real(od, o, nd, n, fl);
}

static int
open_fault(int dfd, const char *path)
{
	char p[512];

	if (!atomic_load(&ops_armed[OP_OPEN]) && getenv("TG_FAULT_ARM") == NULL)
		return 0;
	return fault(OP_OPEN, inside ? NULL : at_path(dfd, path, p, sizeof(p)));
}

#define OPEN_MODE(flags) \
	mode_t mode = 0; \
	if (((flags) & O_CREAT) || ((flags) & O_TMPFILE) == O_TMPFILE) { \
		va_list ap; va_start(ap, flags); mode = (mode_t)va_arg(ap, int); va_end(ap); \
	}

int
open(const char *path, int flags, ...)
{
	NEXT(int, "open", const char *, int, ...);
	OPEN_MODE(flags);
	int e = open_fault(AT_FDCWD, path);
	if (e) { errno = e; return -1; }
	return real(path, flags, mode);
}

int
open64(const char *path, int flags, ...)
{
	NEXT(int, "open64", const char *, int, ...);
	OPEN_MODE(flags);
	int e = open_fault(AT_FDCWD, path);
	if (e) { errno = e; return -1; }
	return real(path, flags, mode);
}

int
openat(int dfd, const char *path, int flags, ...)
{
	NEXT(int, "openat", int, const char *, int, ...);
	OPEN_MODE(flags);
	int e = open_fault(dfd, path);
	if (e) { errno = e; return -1; }
	return real(dfd, path, flags, mode);
}

int
openat64(int dfd, const char *path, int flags, ...)
{
	NEXT(int, "openat64", int, const char *, int, ...);
	OPEN_MODE(flags);
	int e = open_fault(dfd, path);
	if (e) { errno = e; return -1; }
	return real(dfd, path, flags, mode);
}

/* openat2 has no libc wrapper: callers use syscall(SYS_openat2, ...). */
long
syscall(long n, ...)
{
	NEXT(long, "syscall", long, ...);
	va_list ap;
	long a[6];
	int i, e;

	va_start(ap, n);
	for (i = 0; i < 6; i++)
		a[i] = va_arg(ap, long);
	va_end(ap);
	if (n == SYS_openat2 && (e = open_fault((int)a[0], (const char *)a[1])) != 0) {
		errno = e;
		return -1;
	}
	return real(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

int
accept(int fd, struct sockaddr *a, socklen_t *l)
{
	NEXT(int, "accept", int, struct sockaddr *, socklen_t *);
	int e = fault(OP_ACCEPT, NULL);
	if (e) { errno = e; return -1; }
	return real(fd, a, l);
}

int
accept4(int fd, struct sockaddr *a, socklen_t *l, int fl)
{
	NEXT(int, "accept4", int, struct sockaddr *, socklen_t *, int);
	int e = fault(OP_ACCEPT, NULL);
	if (e) { errno = e; return -1; }
	return real(fd, a, l, fl);
}

/* The size of an allocation as a rule's SUBSTR matches it. */
static int
malloc_fault(size_t n)
{
	char sz[24];

	if (!atomic_load(&ops_armed[OP_MALLOC]))
		return 0;
	snprintf(sz, sizeof(sz), "%zu", n);
	return fault(OP_MALLOC, sz) != 0;
}

/* malloc: glibc's own entry points, so dlsym's allocations do not recurse. */
void *
malloc(size_t n)
{
	if (malloc_fault(n)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_malloc(n);
}

void *
calloc(size_t a, size_t b)
{
	if (malloc_fault(a * b)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_calloc(a, b);
}

extern void *__libc_memalign(size_t, size_t);

void *
aligned_alloc(size_t al, size_t n)
{
	if (malloc_fault(n)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_memalign(al, n);
}

int
posix_memalign(void **p, size_t al, size_t n)
{
	if (malloc_fault(n))
		return ENOMEM;
	*p = __libc_memalign(al, n);
	return *p ? 0 : ENOMEM;
}

void *
realloc(void *p, size_t n)
{
	if (n && malloc_fault(n)) {
		errno = ENOMEM;
		return NULL;
	}
	return __libc_realloc(p, n);
}

__attribute__((constructor)) static void
init(void)
{
	static char text[2048];
	const char *r = getenv("TG_FAULT");

	inside = 1;
	if (r) {
		snprintf(text, sizeof(text), "%s", r);
		parse_rules(text);
	}
	inside = 0;
}
