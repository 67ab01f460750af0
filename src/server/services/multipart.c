/*
 * multipart/form-data, streamed. The body is searched for the delimiter
 * "\r\n--BOUNDARY"; a virtual "\r\n" before the first byte lets the first
 * boundary match the same way. Part headers are bounded (8 KiB); only the
 * first part with a filename is emitted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"

#define MAX_BOUNDARY 70      /* RFC 2046 §5.1.1 */
#define MAX_PART_HEAD 8192

enum mp_phase { MP_PREAMBLE, MP_AFTER_DELIM, MP_HEADERS, MP_DATA, MP_SKIP, MP_DONE };

struct tg_multipart {
	enum mp_phase phase;
	char delim[4 + MAX_BOUNDARY + 1];   /* "\r\n--" boundary */
	size_t dlen;
	char *buf;                          /* holdback + current chunk */
	size_t len;
	int complete;
};

static size_t
param_boundary(const char *ct, size_t n, char *out, size_t outlen)
{
	const char *p = ct, *end = ct + n;
	size_t l = 0;

	while (p < end) {
		const char *semi = memchr(p, ';', (size_t)(end - p));
		if (semi == NULL)
			return 0;
		p = semi + 1;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if ((size_t)(end - p) > 9 && strncasecmp(p, "boundary=", 9) == 0) {
			p += 9;
			if (p < end && *p == '"') {
				const char *q = memchr(p + 1, '"', (size_t)(end - p - 1));
				if (q == NULL)
					return 0;
				l = (size_t)(q - p - 1);
				p++;
			} else {
				/* bounded: the header value need not be NUL-terminated */
				while (p + l < end && p[l] != ';' && p[l] != ' ' && p[l] != '\t')
					l++;
			}
			if (l == 0 || l >= outlen)
				return 0;
			memcpy(out, p, l);
			out[l] = '\0';
			return l;
		}
	}
	return 0;
}

struct tg_multipart *
tg_multipart_new(const char *ct, size_t n)
{
	struct tg_multipart *m;
	char b[MAX_BOUNDARY + 2];
	size_t bl;

	if (n < 19 || strncasecmp(ct, "multipart/form-data", 19) != 0)
		return NULL;
	bl = param_boundary(ct + 19, n - 19, b, sizeof(b));
	if (bl == 0 || bl > MAX_BOUNDARY)
		return NULL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	m->buf = malloc(TG_MULTIPART_CHUNK + MAX_PART_HEAD + sizeof(m->delim));
	if (m->buf == NULL) {
		free(m);
		return NULL;
	}
	m->dlen = (size_t)snprintf(m->delim, sizeof(m->delim), "\r\n--%s", b);
	memcpy(m->buf, "\r\n", 2);   /* so the first boundary needs no special case */
	m->len = 2;
	return m;
}

void
tg_multipart_free(struct tg_multipart *m)
{
	if (m) {
		free(m->buf);
		free(m);
	}
}

int
tg_multipart_complete(const struct tg_multipart *m)
{
	return m->complete;
}

static void
consume(struct tg_multipart *m, size_t n)
{
	memmove(m->buf, m->buf + n, m->len - n);
	m->len -= n;
}

static int
is_file_part(const char *h, size_t n)
{
	const char *p = h, *end = h + n;

	while (p < end) {
		const char *le = memmem(p, (size_t)(end - p), "\r\n", 2);
		size_t l = le ? (size_t)(le - p) : (size_t)(end - p);
		if (l > 20 && strncasecmp(p, "Content-Disposition:", 20) == 0 &&
		    (memmem(p, l, "filename=", 9) || memmem(p, l, "filename*=", 10)))
			return 1;
		p = le ? le + 2 : end;
	}
	return 0;
}

int
tg_multipart_feed(struct tg_multipart *m, const char *data, size_t len,
    tg_multipart_emit emit, void *arg)
{
	if (m->phase == MP_DONE)
		return 1;
	if (len > TG_MULTIPART_CHUNK)
		return -1;
	memcpy(m->buf + m->len, data, len);
	m->len += len;
	for (;;) {
		char *d;
		int r;
		switch (m->phase) {
		case MP_PREAMBLE:
		case MP_DATA:
		case MP_SKIP:
			d = memmem(m->buf, m->len, m->delim, m->dlen);
			if (d == NULL) {
				/* keep what could be the start of a delimiter */
				size_t keep = m->dlen - 1 < m->len ? m->dlen - 1 : m->len;
				size_t out = m->len - keep;
				if (m->phase == MP_DATA && out && (r = emit(arg, m->buf, out)) < 0)
					return r;
				consume(m, out);
				return 0;
			}
			if (m->phase == MP_DATA) {
				if (d > m->buf && (r = emit(arg, m->buf, (size_t)(d - m->buf))) < 0)
					return r;
				m->phase = MP_DONE;
				m->complete = 1;
				return 1;
			}
			consume(m, (size_t)(d - m->buf) + m->dlen);
			m->phase = MP_AFTER_DELIM;
			break;
		case MP_AFTER_DELIM:
			if (m->len < 2)
				return 0;
			if (m->buf[0] == '-' && m->buf[1] == '-')
				return -1;   /* closing delimiter, and no file part was seen */
			if (m->buf[0] != '\r' || m->buf[1] != '\n') {
				/* transport padding (RFC 2046): spaces before the CRLF */
				if (m->buf[0] == ' ' || m->buf[0] == '\t') {
					consume(m, 1);
					break;
				}
				return -1;
			}
			consume(m, 2);
			m->phase = MP_HEADERS;
			break;
		case MP_HEADERS:
			if (m->len >= 2 && m->buf[0] == '\r' && m->buf[1] == '\n') {
				d = m->buf;   /* a part with no headers */
			} else {
				d = memmem(m->buf, m->len, "\r\n\r\n", 4);
				if (d == NULL)
					return m->len > MAX_PART_HEAD ? -1 : 0;
				d += 2;
			}
			m->phase = is_file_part(m->buf, (size_t)(d - m->buf)) ? MP_DATA : MP_SKIP;
			consume(m, (size_t)(d - m->buf) + 2);
			/* the content's own end is "\r\n--boundary": an empty part
			 * matches the delimiter at once */
			break;
		case MP_DONE:
			return 1;
		}
	}
}
