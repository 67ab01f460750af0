/* See listen.h. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "listen.h"
#include "systemd.h"
#include "util.h"

int
tg_listen_open(const char *spec, int reuseport, struct tg_err *err)
{
	return tg_listen_open_as(NULL, spec, reuseport, err);
}

int
tg_listen_open_as(const char *name, const char *spec, int reuseport, struct tg_err *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	char host[256], ps[8];
	int port, fd = -1, one = 1, zero = 0, rc, e = 0;

	/* a socket systemd opened for us (socket activation) comes first */
	if ((fd = tg_sd_take(name, spec)) >= 0)
		return fd;
	if (tg_parse_hostport(spec, host, sizeof(host), &port) < 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "listen: '%s' is not HOST:PORT", spec);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(ps, sizeof(ps), "%d", port);
	/* an empty host means every address: IPv6 with IPv4 mapped, else IPv4 */
	rc = getaddrinfo(host[0] ? host : "::", ps, &hints, &res);
	if (rc != 0 && !host[0])
		rc = getaddrinfo("0.0.0.0", ps, &hints, &res);
	if (rc != 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "listen %s: cannot resolve: %s", spec,
		    gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
			e = errno;
			close(fd);
			fd = -1;
			continue;
		}
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 1024) == 0)
			break;
		e = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd >= 0)
		return fd;
	if (e == EADDRINUSE)
		return tg_err_set(err, TG_E_IO, "listen %s: the port is in use by another program; "
		    "stop it or choose another address with --listen", spec);
	if (e == EACCES)
		return tg_err_set(err, TG_E_IO, "listen %s: ports below 1024 need root or "
		    "CAP_NET_BIND_SERVICE (setcap cap_net_bind_service=+ep $(which tlsgate))", spec);
	return tg_err_set(err, TG_E_IO, "listen %s: %s", spec, strerror(e));
}

int
tg_listen_address(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[NI_MAXHOST], port[NI_MAXSERV];

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 ||
	    getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
	    NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return -1;
	snprintf(buf, len, strchr(host, ':') ? "[%s]:%s" : "%s:%s", host, port);
	return 0;
}
