/*
 * ALPN lists (RFC 7301): a configured list read into the wire form OpenSSL
 * takes, and the server's choice from a client's offer. The server's order
 * decides (as nginx, haproxy and hitch do): the operator lists what the
 * backend speaks best first.
 */
#include <stdio.h>
#include <string.h>

#include "error.h"
#include "tls.h"

int
tg_alpn_parse(const char *list, struct tg_alpn *a, const char *what, struct tg_err *err)
{
	const char *p = list ? list : "";

	memset(a, 0, sizeof(*a));
	while (*p) {
		size_t len, i;
		p += strspn(p, ", :\t");
		len = strcspn(p, ", \t");   /* ':' is not a separator inside: none has it */
		if (len == 0)
			break;
		/* "h2:http/1.1" (hitch's form): split at ':' too */
		if (memchr(p, ':', len))
			len = (size_t)((const char *)memchr(p, ':', len) - p);
		if (len > 255 || a->len + 1 + len > sizeof(a->wire) || a->n == TG_ALPN_MAX)
			return tg_err_set(err, TG_E_CONFIG_VALUE, "%s: the list '%.200s' is too long "
			    "(at most %d names of 255 bytes, %zu bytes in all)", what, list, TG_ALPN_MAX,
			    sizeof(a->wire));
		for (i = 0; i < len; i++)
			if ((unsigned char)p[i] <= 0x20 || (unsigned char)p[i] >= 0x7f ||
			    p[i] == '"' || p[i] == '\\')
				return tg_err_set(err, TG_E_CONFIG_VALUE, "%s: '%.*s' is not a protocol "
				    "name (printable ASCII, e.g. h2 or http/1.1)", what, (int)len, p);
		a->wire[a->len++] = (unsigned char)len;
		memcpy(a->wire + a->len, p, len);
		a->len += len;
		a->n++;
		p += len;
	}
	return 0;
}

int
tg_alpn_index(const struct tg_alpn *a, const unsigned char *proto, unsigned int len)
{
	size_t off = 0;
	int i = 0;

	while (off < a->len) {
		size_t l = a->wire[off];
		if (l == len && memcmp(a->wire + off + 1, proto, len) == 0)
			return i;
		off += 1 + l;
		i++;
	}
	return -1;
}

int
tg_alpn_pick(const struct tg_alpn *a, const unsigned char *offer, unsigned int offerlen,
    const unsigned char **sel, unsigned char *sellen)
{
	size_t off = 0;
	int i = 0;

	while (off < a->len) {
		size_t l = a->wire[off];
		unsigned int j = 0;
		while (j < offerlen) {
			unsigned int ol = offer[j];
			if (j + 1u + ol > offerlen)
				break;   /* a malformed offer: OpenSSL checks it first anyway */
			if (ol == l && memcmp(offer + j + 1, a->wire + off + 1, l) == 0) {
				*sel = offer + j + 1;
				*sellen = (unsigned char)ol;
				return i;
			}
			j += 1u + ol;
		}
		off += 1 + l;
		i++;
	}
	return -1;
}

void
tg_alpn_name(const struct tg_alpn *a, size_t i, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	while (off < a->len) {
		size_t l = a->wire[off];
		if (i-- == 0) {
			snprintf(buf, len, "%.*s", (int)l, (const char *)a->wire + off + 1);
			return;
		}
		off += 1 + l;
	}
}

void
tg_alpn_text(const unsigned char *wire, size_t len, char *buf, size_t cap)
{
	size_t off = 0, n = 0;

	buf[0] = '\0';
	while (off < len && n < cap) {
		size_t l = wire[off];
		if (off + 1 + l > len)
			break;
		n += (size_t)snprintf(buf + n, cap - n, "%s%.*s", n ? ", " : "", (int)l,
		    (const char *)wire + off + 1);
		off += 1 + l;
	}
	if (!buf[0])
		snprintf(buf, cap, "nothing");
}
