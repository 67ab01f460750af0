/* See systemd.h. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "systemd.h"
#include "util.h"

#define SD_LISTEN_FDS_START 3
#define SD_MAX 64

static struct inherited {
	int fd;
	int taken;
	char name[64];
} inh[SD_MAX];
static size_t ninh;
static pid_t main_pid;

void
tg_sd_init(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	const char *names = getenv("LISTEN_FDNAMES");
	long n, i;

	main_pid = getpid();
	if (pid && fds && strtol(pid, NULL, 10) == (long)main_pid &&
	    (n = strtol(fds, NULL, 10)) > 0) {
		const char *p = names ? names : "";
		for (i = 0; i < n && i < SD_MAX; i++) {
			int fd = SD_LISTEN_FDS_START + (int)i, fl;
			size_t len = strcspn(p, ":");
			inh[ninh].fd = fd;
			snprintf(inh[ninh].name, sizeof(inh[ninh].name), "%.*s", (int)len, p);
			p += len + (p[len] == ':');
			/* our sockets are close-on-exec and non-blocking, like our own */
			fcntl(fd, F_SETFD, FD_CLOEXEC);
			if ((fl = fcntl(fd, F_GETFL)) >= 0)
				fcntl(fd, F_SETFL, fl | O_NONBLOCK);
			ninh++;
		}
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
}

/* Is a (a bound socket's address) what spec asks for? Wildcards match
 * wildcards of either family: systemd binds [::]:443 for ListenStream=443. */
static int
bound_to(int fd, const char *spec)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	struct addrinfo hints, *res = NULL, *ai;
	char host[256], ps[8];
	int port, any, match = 0, listening = 0;
	socklen_t ol = sizeof(listening);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ol) < 0 || !listening ||
	    tg_parse_hostport(spec, host, sizeof(host), &port) < 0)
		return 0;
	if (ss.ss_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		if (ntohs(s4->sin_port) != port)
			return 0;
		any = s4->sin_addr.s_addr == htonl(INADDR_ANY);
	} else if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		if (ntohs(s6->sin6_port) != port)
			return 0;
		any = IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr);
	} else {
		return 0;
	}
	if (!host[0] || !strcmp(host, "::") || !strcmp(host, "0.0.0.0") || !strcmp(host, "*"))
		return any;
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICHOST;
	snprintf(ps, sizeof(ps), "%d", port);
	if (getaddrinfo(host, ps, &hints, &res) != 0)
		return 0;
	for (ai = res; ai && !match; ai = ai->ai_next)
		match = ai->ai_family == ss.ss_family && ai->ai_addrlen <= sizeof(ss) &&
		    (ai->ai_family == AF_INET ?
		    !memcmp(&((struct sockaddr_in *)ai->ai_addr)->sin_addr,
		    &((struct sockaddr_in *)&ss)->sin_addr, 4) :
		    !memcmp(&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
		    &((struct sockaddr_in6 *)&ss)->sin6_addr, 16));
	freeaddrinfo(res);
	return match;
}

int
tg_sd_take(const char *name, const char *spec)
{
	size_t i;

	for (i = 0; name && i < ninh; i++) {
		if (!inh[i].taken && !strcmp(inh[i].name, name)) {
			inh[i].taken = 1;
			return inh[i].fd;
		}
	}
	for (i = 0; spec && i < ninh; i++) {
		if (!inh[i].taken && bound_to(inh[i].fd, spec)) {
			inh[i].taken = 1;
			return inh[i].fd;
		}
	}
	return -1;
}

int
tg_sd_inherited(int fd)
{
	size_t i;

	for (i = 0; i < ninh; i++)
		if (inh[i].fd == fd && inh[i].taken)
			return 1;
	return 0;
}

int
tg_sd_leftover(size_t i, char *buf, size_t len)
{
	size_t k, seen = 0;

	for (k = 0; k < ninh; k++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
		if (inh[k].taken || seen++ != i)
			continue;
		if (getsockname(inh[k].fd, (struct sockaddr *)&ss, &sl) == 0)
			getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
			    NI_NUMERICHOST | NI_NUMERICSERV);
		snprintf(buf, len, "%s (%s:%s)", inh[k].name[0] ? inh[k].name : "unnamed", host, port);
		close(inh[k].fd);
		inh[k].taken = 1;   /* told once */
		return 0;
	}
	return -1;
}

void
tg_sd_notify(const char *fmt, ...)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa;
	socklen_t sl;
	char msg[512];
	va_list ap;
	size_t pl;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') || getpid() != main_pid ||
	    (pl = strlen(path)) >= sizeof(sa.sun_path))
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, pl);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';   /* an abstract socket */
	sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + pl);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		return;
	/* a lost notification must not stop the server: errors are ignored */
	(void)sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, sl);
	close(fd);
}

void
tg_sd_reloading(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	tg_sd_notify("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL);
}

uint64_t
tg_sd_watchdog_ms(void)
{
	const char *us = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	unsigned long long v;

	if (us == NULL || (pid && strtol(pid, NULL, 10) != (long)main_pid))
		return 0;
	v = strtoull(us, NULL, 10);
	return v >= 2000 ? (uint64_t)(v / 2000) : 0;   /* half the period, in ms */
}
