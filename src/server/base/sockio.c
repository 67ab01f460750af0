/* See sockio.h. */
#include <errno.h>
#include <sys/socket.h>

#include <openssl/err.h>
#include <uv.h>

#include "sockio.h"

int
tg_io_ssl_result(SSL *ssl, int r, int *wait)
{
	switch (SSL_get_error(ssl, r)) {
	case SSL_ERROR_WANT_READ:
		*wait = UV_READABLE;
		return TG_IO_AGAIN;
	case SSL_ERROR_WANT_WRITE:
		*wait = UV_WRITABLE;
		return TG_IO_AGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	default:
		return TG_IO_FAIL;
	}
}

/* A plain socket's outcome from errno. */
static ssize_t
plain_result(ssize_t n, int writable, int *wait)
{
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
		*wait = writable ? UV_WRITABLE : UV_READABLE;
		return TG_IO_AGAIN;
	}
	return TG_IO_FAIL;
}

ssize_t
tg_io_read(int fd, SSL *ssl, void *buf, size_t len, int *wait)
{
	size_t n = 0;
	int r;

	if (ssl == NULL)
		return plain_result(recv(fd, buf, len, 0), 0, wait);
	if (ERR_peek_error())   /* cheaper than clearing an empty queue */
		ERR_clear_error();
	if (SSL_read_ex(ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	r = tg_io_ssl_result(ssl, 0, wait);
	if (r == TG_IO_FAIL)
		ERR_clear_error();   /* said in the caller's words, not OpenSSL's */
	return r;
}

ssize_t
tg_io_write(int fd, SSL *ssl, const void *buf, size_t len, int *wait)
{
	size_t n = 0;
	int r;

	if (ssl == NULL)
		return plain_result(send(fd, buf, len, MSG_NOSIGNAL), 1, wait);
	if (ERR_peek_error())
		ERR_clear_error();
	if (SSL_write_ex(ssl, buf, len, &n) == 1)
		return (ssize_t)n;
	r = tg_io_ssl_result(ssl, 0, wait);
	if (r == TG_IO_AGAIN)
		return r;
	ERR_clear_error();
	return TG_IO_FAIL;
}
