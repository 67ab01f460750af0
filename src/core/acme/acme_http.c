/*
 * ACME's HTTP: libcurl with OpenSSL, the server's certificate verified with
 * the system roots plus tls.acme.ca_cert, nonces kept from every answer,
 * badNonce answered by one more try with the fresh nonce (RFC 8555 section
 * 6.5), Retry-After and Location remembered, bodies bounded.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "acme_http.h"
#include "acme_wire.h"
#include "error.h"
#include "pki.h"
#include "util.h"

#define MAX_BODY (1024 * 1024)

static void
global_init(void)
{
	static int done;
	/* the first call happens before any thread of ours talks to the CA */
	if (!done) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		done = 1;
	}
}

int
tg_acme_http_init(struct tg_acme_http *h, const char *ca_cert, struct tg_err *err)
{
	memset(h, 0, sizeof(h[0]));
	global_init();
	if ((h->curl = curl_easy_init()) == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "cannot start libcurl");
	snprintf(h->ca_cert, sizeof(h->ca_cert), "%s", ca_cert ? ca_cert : "");
	return 0;
}

void
tg_acme_http_free(struct tg_acme_http *h)
{
	if (h->curl)
		curl_easy_cleanup(h->curl);
	h->curl = NULL;
}

void
tg_acme_resp_clear(struct tg_acme_resp *r)
{
	free(r->body);
	memset(r, 0, sizeof(*r));
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct tg_acme_resp *r = arg;

	/* 0 aborts the transfer: no CA answer is a megabyte */
	return tg_buf_append(&r->body, &r->len, MAX_BODY, p, size * n) < 0 ? 0 : size * n;
}

static int
header_is(const char *line, size_t len, const char *name, const char **val, size_t *vlen)
{
	size_t nl = strlen(name);

	if (len <= nl || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
		return 0;
	line += nl + 1, len -= nl + 1;
	while (len && (*line == ' ' || *line == '\t'))
		line++, len--;
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n' || line[len - 1] == ' '))
		len--;
	*val = line;
	*vlen = len;
	return 1;
}

static int
parse_retry_after(const char *v, size_t len)
{
	char buf[64];
	struct tm tm;
	long n;
	char *end;

	snprintf(buf, sizeof(buf), "%.*s", (int)len, v);
	n = strtol(buf, &end, 10);
	if (end != buf && *end == '\0')
		return n < 0 ? 0 : n > 86400 ? 86400 : (int)n;
	memset(&tm, 0, sizeof(tm));
	if (strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm) != NULL) {
		time_t t = timegm(&tm) - time(NULL);
		return t < 0 ? 0 : t > 86400 ? 86400 : (int)t;
	}
	return 0;
}

struct hdr_ctx {
	struct tg_acme_http *h;
	struct tg_acme_resp *r;
};

static size_t
on_header(char *p, size_t size, size_t n, void *arg)
{
	struct hdr_ctx *x = arg;
	size_t len = size * n, vl;
	const char *v;

	if (header_is(p, len, "Replay-Nonce", &v, &vl) && vl < sizeof(x->h->nonce)) {
		size_t i;
		for (i = 0; i < vl; i++)   /* base64url, nothing else (RFC 8555 6.5.1) */
			if (!isalnum((unsigned char)v[i]) && v[i] != '-' && v[i] != '_')
				break;
		if (i == vl)
			snprintf(x->h->nonce, sizeof(x->h->nonce), "%.*s", (int)vl, v);
	} else if (header_is(p, len, "Location", &v, &vl) && vl < sizeof(x->r->location) &&
	    !memchr(v, '"', vl) && !memchr(v, '\\', vl)) {
		snprintf(x->r->location, sizeof(x->r->location), "%.*s", (int)vl, v);
	} else if (header_is(p, len, "Retry-After", &v, &vl)) {
		x->r->retry_after = parse_retry_after(v, vl);
	} else if (header_is(p, len, "Content-Type", &v, &vl)) {
		snprintf(x->r->content_type, sizeof(x->r->content_type), "%.*s", (int)vl, v);
	}
	return len;
}

/* Adds tls.acme.ca_cert to the system roots libcurl already loaded. */
static CURLcode
on_ssl_ctx(CURL *curl, void *ssl_ctx, void *arg)
{
	struct tg_acme_http *h = arg;
	struct tg_err err;

	if (h->ca_cert[0] &&
	    tg_trust_store_add(SSL_CTX_get_cert_store(ssl_ctx), h->ca_cert, NULL, &err) < 0) {
		snprintf(h->ca_error, sizeof(h->ca_error), "%s", err.msg);
		return CURLE_SSL_CACERT_BADFILE;
	}
	return CURLE_OK;
}

static int
perform(struct tg_acme_http *h, const char *method, const char *url, const char *body,
    const char *accept, struct tg_acme_resp *r, struct tg_err *err)
{
	struct curl_slist *hdrs = NULL;
	struct hdr_ctx x = { h, r };
	char ebuf[CURL_ERROR_SIZE] = "", ab[160];
	long code = 0;
	CURLcode rc;
	CURL *c = h->curl;

	tg_acme_resp_clear(r);
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(c, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, h);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "tlsgate/" TG_VERSION);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
	snprintf(ab, sizeof(ab), "Accept: %s", accept ? accept : "application/json");
	hdrs = curl_slist_append(hdrs, ab);
	if (!strcmp(method, "HEAD")) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(method, "POST")) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/jose+json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	h->ca_error[0] = '\0';
	rc = curl_easy_perform(c);
	curl_slist_free_all(hdrs);
	if (rc != CURLE_OK) {
		if (h->ca_error[0])
			return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.ca_cert: %s", h->ca_error);
		if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE)
			return tg_err_set(err, TG_E_TRUST, "the ACME server %s is not trusted: %s; for "
			    "a test CA give its root with tls.acme.ca_cert (--ca-cert)", url,
			    ebuf[0] ? ebuf : curl_easy_strerror(rc));
		return tg_err_set(err, TG_E_CONNECT, "cannot reach the ACME server at %s: %s", url,
		    ebuf[0] ? ebuf : curl_easy_strerror(rc));
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
	r->status = (int)code;
	return 0;
}

int
tg_acme_get(struct tg_acme_http *h, const char *url, struct tg_acme_resp *r,
    struct tg_err *err)
{
	return perform(h, "GET", url, NULL, NULL, r, err);
}

static int
fresh_nonce(struct tg_acme_http *h, struct tg_err *err)
{
	struct tg_acme_resp r;
	int rv;

	memset(&r, 0, sizeof(r));
	h->nonce[0] = '\0';
	rv = perform(h, "HEAD", h->new_nonce_url, NULL, NULL, &r, err);
	tg_acme_resp_clear(&r);
	if (rv == 0 && !h->nonce[0])
		rv = tg_err_set(err, TG_E_ACME, "the ACME server gave no Replay-Nonce at %s",
		    h->new_nonce_url);
	return rv;
}

static int
is_problem(const struct tg_acme_resp *r, const char *type)
{
	char pat[128];
	snprintf(pat, sizeof(pat), "urn:ietf:params:acme:error:%s\"", type);
	return r->body && strstr(r->content_type, "problem+json") && strstr(r->body, pat);
}

int
tg_acme_post(struct tg_acme_http *h, EVP_PKEY *key, const char *kid, const char *url,
    const char *payload, const char *accept, struct tg_acme_resp *r, struct tg_err *err)
{
	int tries;

	for (tries = 0; tries < 5; tries++) {
		char nonce[sizeof(h->nonce)], *jws;
		int rv;

		if (!h->nonce[0] && fresh_nonce(h, err) < 0)
			return -1;
		snprintf(nonce, sizeof(nonce), "%s", h->nonce);
		h->nonce[0] = '\0';   /* each nonce is used once */
		if ((jws = tg_acme_jws(key, kid, nonce, url, payload, err)) == NULL)
			return -1;
		rv = perform(h, "POST", url, jws, accept, r, err);
		free(jws);
		if (rv < 0)
			return -1;
		/* a stale nonce is not the user's problem: try with the new one */
		if (r->status == 400 && is_problem(r, "badNonce"))
			continue;
		return 0;
	}
	return tg_err_set(err, TG_E_ACME, "the ACME server at %s refused 5 fresh nonces in a "
	    "row (badNonce)", url);
}

void
tg_acme_resp_words(const struct tg_acme_resp *r, char *buf, size_t len)
{
	if (r->body && tg_acme_problem_words(r->body, r->len, buf, len) == 0 && buf[0])
		return;
	snprintf(buf, len, "HTTP %d%s%.200s", r->status, r->body && r->len ? ": " : "",
	    r->body && r->len ? r->body : "");
}
