/*
 * One socket, with or without TLS, read and written the same way by client
 * connections (conn.c) and pipes (pipe.c). OpenSSL reads and writes the
 * descriptor itself; the caller polls it (uv_poll) for what the last call
 * needs and calls again. Non-blocking sockets only; any thread, one call
 * at a time per socket.
 */
#ifndef TG_SOCKIO_H
#define TG_SOCKIO_H

#include <stddef.h>
#include <sys/types.h>

#include <openssl/ssl.h>

/* The results that are not a byte count. */
enum tg_io {
	TG_IO_AGAIN = -1,   /* would block: poll for *wait, then call again */
	TG_IO_FAIL = -2,    /* failed or reset: close the connection */
};

/* >0 bytes read; 0 the peer ended the stream (close_notify, or FIN on a
 * plain socket); TG_IO_AGAIN with *wait UV_READABLE or UV_WRITABLE (TLS
 * may need to write to read); TG_IO_FAIL. ssl NULL: plain. */
ssize_t tg_io_read(int fd, SSL *ssl, void *buf, size_t len, int *wait);
/* >0 bytes written (maybe fewer than len); TG_IO_AGAIN with *wait;
 * TG_IO_FAIL (an end of stream met while writing is a failure too). */
ssize_t tg_io_write(int fd, SSL *ssl, const void *buf, size_t len, int *wait);
/* What an SSL call that returned r <= 0 (a handshake step, SSL_sendfile)
 * means: TG_IO_AGAIN with *wait, 0 a clean end (close_notify), or
 * TG_IO_FAIL. The error queue is left for the caller to put in words. */
int tg_io_ssl_result(SSL *ssl, int r, int *wait);

#endif
