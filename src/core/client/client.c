/*
 * Blocking client connections: resolve, connect with a timeout, TLS
 * handshake, and the trust verdict on the server's certificate, decided
 * before any byte of ours is sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "client.h"
#include "error.h"
#include "ossl_words.h"
#include "tls.h"
#include "store.h"
#include "trust.h"

#define TG_CLIENT_MAGIC 0x5447434cu   /* "TGCL": a live connection */

struct tg_client {
	uint32_t magic;     /* a freed or foreign pointer from the caller is refused */
	int fd;
	int have_cert;      /* we offered a client certificate */
	SSL_CTX *ctx;
	SSL *ssl;
	int trusted, warn;
	char verdict[1300];
	char peer[300];
	char proto[128];
	char alpn[256];     /* the protocol the server selected; "" none */
};

/*
 * SIGPIPE, raised when we write to a peer that has gone (OpenSSL's socket
 * BIO sends without MSG_NOSIGNAL), would end the program that embeds the
 * library: it is blocked in this thread around each call that may write,
 * and one raised meanwhile is taken back, so the call just fails (EPIPE).
 */
struct no_sigpipe {
	sigset_t old;
	int was_pending;
};

static void
sigpipe_hold(struct no_sigpipe *h)
{
	sigset_t pipe, pending;

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	sigpending(&pending);
	h->was_pending = sigismember(&pending, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe, &h->old);
}

static void
sigpipe_release(struct no_sigpipe *h)
{
	struct timespec zero = { 0, 0 };
	sigset_t pipe, pending;
	int e = errno;   /* the caller reads what the call left */

	sigemptyset(&pipe);
	sigaddset(&pipe, SIGPIPE);
	sigpending(&pending);
	if (!h->was_pending && sigismember(&pending, SIGPIPE))
		while (sigtimedwait(&pipe, NULL, &zero) < 0 && errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &h->old, NULL);
	errno = e;
}

static int
connect_timeout(int fd, const struct sockaddr *sa, socklen_t sl, int ms)
{
	struct pollfd p = { fd, POLLOUT, 0 };
	int fl = fcntl(fd, F_GETFL), e = 0;
	socklen_t el = sizeof(e);

	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	if (connect(fd, sa, sl) < 0) {
		if (errno != EINPROGRESS)
			return -1;
		if (poll(&p, 1, ms) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e != 0) {
			errno = e ? e : EIO;
			return -1;
		}
	}
	fcntl(fd, F_SETFL, fl);
	return 0;
}

static int
dial(const char *host, int port, int ms, struct tg_err *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	char ps[8];
	int fd = -1, rc, saved = 0, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_ADDRCONFIG;
	snprintf(ps, sizeof(ps), "%d", port);
	rc = getaddrinfo(host, ps, &hints, &res);
	if (rc != 0)
		return tg_err_set(err, TG_E_CONNECT, "cannot resolve %s: %s", host, gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
		if (fd < 0)
			continue;
		if (connect_timeout(fd, ai->ai_addr, ai->ai_addrlen, ms) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return tg_err_set(err, TG_E_CONNECT, "cannot connect to %s port %d: %s", host,
		    port, strerror(saved ? saved : EHOSTUNREACH));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* The TLS handshake on c's socket, verifying name; a failure in words. */
static int
handshake(struct tg_client *c, const struct tg_client_opts *o, const char *name,
    struct tg_err *err)
{
	struct no_sigpipe np;
	struct tg_alpn offer;
	const unsigned char *sel = NULL;
	unsigned int sellen = 0;
	const char *why;
	char words[300];
	int ok;

	memset(&offer, 0, sizeof(offer));
	if ((c->ctx = tg_tls_client_ctx(o, err)) == NULL)
		return -1;
	if ((c->ssl = SSL_new(c->ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		return tg_err_ossl(err, TG_E_TLS, "cannot set up TLS");
	if (tg_tls_client_prepare(c->ssl, name, err) < 0)
		return -1;
	if (o->alpn && o->alpn[0]) {
		if (tg_alpn_parse(o->alpn, &offer, "ALPN", err) < 0)
			return -1;
		if (offer.len && SSL_set_alpn_protos(c->ssl, offer.wire, (unsigned int)offer.len) != 0)
			return tg_err_ossl(err, TG_E_TLS, "cannot offer ALPN");
	}
	c->have_cert = o->cert && o->cert[0];
	ERR_clear_error();
	sigpipe_hold(&np);
	ok = SSL_connect(c->ssl) == 1;
	sigpipe_release(&np);
	if (!ok) {
		why = tg_tls_refusal(c->ssl);
		tg_ossl_words(words, sizeof(words));
		if (words[0] == '\0')
			snprintf(words, sizeof(words), "%s", errno == EAGAIN ?
			    "timed out" : "the connection was closed during the handshake");
		return tg_err_set(err, TG_E_TLS, "TLS handshake with %s failed: %s%s%s", c->peer,
		    words, why[0] ? "; " : "", why);
	}
	snprintf(c->proto, sizeof(c->proto), "%s %s", SSL_get_version(c->ssl),
	    SSL_get_cipher_name(c->ssl));
	/* OpenSSL already refuses a protocol we did not offer; this is the
	 * same check said in words, should a library let one through */
	SSL_get0_alpn_selected(c->ssl, &sel, &sellen);
	if (sellen && tg_alpn_index(&offer, sel, sellen) < 0) {
		char offered[300];
		tg_alpn_text(offer.wire, offer.len, offered, sizeof(offered));
		return tg_err_set(err, TG_E_TLS, "%s selected the protocol %.*s, which was not "
		    "offered (%s)", c->peer, (int)sellen, (const char *)sel, offered);
	}
	snprintf(c->alpn, sizeof(c->alpn), "%.*s", (int)sellen, sel ? (const char *)sel : "");
	return 0;
}

/* The server judged by the trust mode; its identity is the name we dialled
 * (or asked for) and the port. A first contact of a pinning mode is
 * recorded. The verdict lands in c. */
static int
judge(struct tg_client *c, const struct tg_client_opts *o, enum tg_trust_mode mode,
    const struct tg_store_conf *store, const char *name, int port, struct tg_err *err)
{
	struct tg_trust *t;
	struct tg_trust_verdict v;
	char id[320], nm[256];
	int rv = -1;

	tg_trust_server_identity(name, port, id, sizeof(id));
	if ((t = tg_trust_new(mode, o->known, "known-servers", NULL, 0, err)) == NULL)
		return -1;
	/* a file in a cluster node's state_dir is the cluster's copy: pins go
	 * through the store (the follower would overwrite a local write); one
	 * the user keeps elsewhere stays a plain file */
	if (store && tg_store_name_of(store, o->known, nm, sizeof(nm)) == 0 &&
	    tg_trust_share(t, store, err) < 0)
		goto out;
	if (tg_tls_client_judge(c->ssl, t, id, "give its certificate with --ca-cert", &v, err) < 0 ||
	    (v.accept && v.record && tg_trust_record(t, &v, err) < 0))
		goto out;
	c->trusted = v.accept;
	c->warn = v.warn;
	snprintf(c->verdict, sizeof(c->verdict), "%s", v.reason);
	rv = 0;
out:
	tg_trust_free(t);
	return rv;
}

int
tg_client_dial(const char *host, int port, int use_tls, const struct tg_client_opts *o,
    const struct tg_store_conf *store, int enforce, struct tg_client **out, struct tg_err *err)
{
	const char *name = o->server_name && o->server_name[0] ? o->server_name : host;
	int ms = o->timeout_ms > 0 ? o->timeout_ms : 30000;
	enum tg_trust_mode mode = TG_TRUST_CA;
	struct tg_client *c;

	*out = NULL;
	if (use_tls && o->trust && o->trust[0] && tg_trust_mode_parse(o->trust, &mode) < 0)
		return tg_err_set(err, TG_E_USAGE, "trust mode '%s': use ca, tofu, whitelist, "
		    "ca-or-tofu or insecure-no-validation", o->trust);
	if (use_tls && mode != TG_TRUST_CA && !(o->known && o->known[0]))
		return tg_err_set(err, TG_E_USAGE, "trust mode %s needs a known-servers file "
		    "(--known-servers or client.known)", o->trust);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	c->magic = TG_CLIENT_MAGIC;
	c->fd = -1;
	snprintf(c->peer, sizeof(c->peer), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
	if ((c->fd = dial(host, port, ms, err)) < 0 ||
	    (use_tls && (handshake(c, o, name, err) < 0 ||
	    judge(c, o, mode, store, name, port, err) < 0)))
		goto fail;
	if (c->warn && o->warn) {
		char w[sizeof(c->peer) + sizeof(c->verdict) + 2];
		snprintf(w, sizeof(w), "%s: %s", c->peer, c->verdict);
		o->warn(w);
	}
	if (use_tls && enforce && !c->trusted) {
		tg_err_set(err, TG_E_TRUST, "%s is not trusted: %s", c->peer, c->verdict);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	tg_client_close(c);
	return -1;
}

int
tg_client_open(const char *host, int port, const struct tg_client_opts *o,
    struct tg_client **out, struct tg_err *err)
{
	static const struct tg_client_opts defaults;

	if (out == NULL || host == NULL || !host[0] || port <= 0 || port > 65535) {
		if (out)
			*out = NULL;
		return tg_err_set(err, TG_E_USAGE, "tg_client_open: give a host, a port from 1 "
		    "to 65535 and where to put the connection");
	}
	return tg_client_dial(host, port, 1, o ? o : &defaults, NULL, 1, out, err);
}

const char *
tg_client_verdict(const struct tg_client *c, int *trusted)
{
	if (trusted)
		*trusted = c && c->magic == TG_CLIENT_MAGIC ? c->trusted : 0;
	return c && c->magic == TG_CLIENT_MAGIC ? c->verdict : "";
}

const char *
tg_client_warning(struct tg_client *c)
{
	return c && c->magic == TG_CLIENT_MAGIC && c->warn ? c->verdict : NULL;
}

STACK_OF(X509) *
tg_client_chain(struct tg_client *c)
{
	return c && c->magic == TG_CLIENT_MAGIC && c->ssl ? SSL_get_peer_cert_chain(c->ssl) : NULL;
}

const char *
tg_client_protocol(const struct tg_client *c)
{
	return c && c->magic == TG_CLIENT_MAGIC ? c->proto : "";
}

const char *
tg_client_alpn(const struct tg_client *c)
{
	return c && c->magic == TG_CLIENT_MAGIC ? c->alpn : "";
}

/*
 * In TLS 1.3 a server refuses a missing client certificate after the
 * client's handshake is done, so the refusal shows up as a failed read or
 * write. When the server asked for a certificate and we had none, say so.
 */
static int
io_error(struct tg_client *c, const char *what, const char *detail, struct tg_err *err)
{
	STACK_OF(X509_NAME) *asked = c->ssl ? SSL_get_client_CA_list(c->ssl) : NULL;

	if (!c->have_cert && asked && sk_X509_NAME_num(asked) > 0)
		return tg_err_set(err, TG_E_TLS, "%s %s: the server requires a client certificate "
		    "(give --cert and --key)", what, c->peer);
	return tg_err_set(err, TG_E_IO, "%s %s: %s", what, c->peer, detail);
}

ssize_t
tg_client_read(struct tg_client *c, void *buf, size_t len, struct tg_err *err)
{
	struct no_sigpipe np;
	size_t got = 0;
	ssize_t n;
	int ok;

	if (c == NULL || c->magic != TG_CLIENT_MAGIC)
		return tg_err_set(err, TG_E_USAGE, "tg_client_read: not an open connection "
		    "(closed already?)");

	if (c->ssl == NULL) {
		do
			n = read(c->fd, buf, len);
		while (n < 0 && errno == EINTR);
		if (n < 0)
			return tg_err_set(err, TG_E_IO, "reading from %s: %s", c->peer,
			    errno == EAGAIN ? "timed out" : strerror(errno));
		return n;
	}
	do {   /* a signal that interrupted the read (EINTR) is not a timeout */
		ERR_clear_error();   /* the caller's own OpenSSL errors are not ours */
		sigpipe_hold(&np);
		ok = SSL_read_ex(c->ssl, buf, len, &got) == 1;
		sigpipe_release(&np);
	} while (!ok && errno == EINTR && SSL_get_error(c->ssl, 0) == SSL_ERROR_WANT_READ);
	if (ok)
		return (ssize_t)got;
	switch (SSL_get_error(c->ssl, 0)) {
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_WANT_READ:    /* SO_RCVTIMEO ran out: OpenSSL says "again" */
	case SSL_ERROR_WANT_WRITE:
		return tg_err_set(err, TG_E_IO, "reading from %s: timed out", c->peer);
	case SSL_ERROR_SYSCALL:
		if (errno == EAGAIN)
			return tg_err_set(err, TG_E_IO, "reading from %s: timed out", c->peer);
		/* fall through */
	default: {
		char w[256];
		tg_ossl_words(w, sizeof(w));
		if (strstr(w, "client certificate"))
			return tg_err_set(err, TG_E_TLS, "reading from %s: %s", c->peer, w);
		return io_error(c, "reading from", w[0] ? w : "the connection was cut", err);
	}
	}
}

int
tg_client_write(struct tg_client *c, const void *buf, size_t len, struct tg_err *err)
{
	const char *p = buf;
	struct no_sigpipe np;
	size_t done = 0, n;

	if (c == NULL || c->magic != TG_CLIENT_MAGIC)
		return tg_err_set(err, TG_E_USAGE, "tg_client_write: not an open connection "
		    "(closed already?)");
	while (done < len) {
		if (c->ssl == NULL) {
			ssize_t w = send(c->fd, p + done, len - done, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0)
				return tg_err_set(err, TG_E_IO, "writing to %s: %s", c->peer,
				    errno == EAGAIN ? "timed out" : strerror(errno));
			done += (size_t)w;
		} else {
			int ok;
			ERR_clear_error();
			sigpipe_hold(&np);
			ok = SSL_write_ex(c->ssl, p + done, len - done, &n) == 1;
			sigpipe_release(&np);
			if (!ok) {
				char w[256];
				int e = errno;
				tg_ossl_words(w, sizeof(w));
				if (strstr(w, "client certificate"))
					return tg_err_set(err, TG_E_TLS, "writing to %s: %s", c->peer, w);
				return io_error(c, "writing to", w[0] ? w : e == EAGAIN ? "timed out" :
				    strerror(e), err);
			}
			done += n;
		}
	}
	return 0;
}

void
tg_client_close(struct tg_client *c)
{
	struct no_sigpipe np;

	if (c == NULL || c->magic != TG_CLIENT_MAGIC)
		return;   /* not a live connection (a freed one, while its memory is unused) */
	c->magic = 0;
	if (c->ssl) {
		sigpipe_hold(&np);
		SSL_shutdown(c->ssl);
		sigpipe_release(&np);
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	ERR_clear_error();
	free(c);
}
