/*
 * Log lines, text or JSON, on stderr: one per event and one per request.
 * Values that come from peers are escaped so a log line is always one line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "server.h"
#include "tls.h"
#include "trust.h"
#include "util.h"

static const char *const level_names[] = { "debug", "info", "warn", "error" };

static void
timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
	    tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

/* Escapes for JSON strings; also keeps text lines free of control bytes. */
static void
escape(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (; *in && n + 7 < len; in++) {
		unsigned char ch = (unsigned char)*in;
		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			n += (size_t)snprintf(out + n, len - n, "\\u%04x", ch);
		} else {
			out[n++] = (char)ch;
		}
	}
	out[n] = '\0';
}

void
tg_log(const struct tg_server *srv, int level, const char *fmt, ...)
{
	char ts[40], msg[1024], esc[2048];
	va_list ap;

	if (srv && level < srv->log_level)
		return;
	timestamp(ts, sizeof(ts));
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	escape(msg, esc, sizeof(esc));
	if (srv && srv->log_json)
		fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
		    level_names[level], esc);
	else
		fprintf(stderr, "%s %s %s\n", ts, level_names[level], esc);
}

/* The trust verdict on this connection's client, as "mode/verdict". */
static void
trust_word(const struct tg_server *srv, const struct tg_conn_s *c, char *buf, size_t len)
{
	const struct tg_trust_verdict *v = c->ssl ? tg_tls_verdict(c->ssl) : NULL;
	const struct tg_trust *t = c->ssl ? tg_tls_trust(c->ssl) : NULL;

	if (v == NULL || t == NULL) {
		snprintf(buf, len, "-");
		return;
	}
	snprintf(buf, len, "%s/%s", tg_trust_mode_name(t->mode),
	    v->warn ? "accepted-unvalidated" : v->record ? "recorded" : "accepted");
}

void
tg_log_request(const struct tg_server *srv, const struct tg_conn_s *c)
{
	char ts[40], target[1024], ident[512], trust[64];
	const char *service = c->admin ? "admin" : c->acme_http ? "acme-http" : srv->files_enabled &&
	    !strncmp(c->target, srv->files_prefix, srv->files_prefix_len) ? "files" : "other";
	unsigned long long ms = c->t_start ? tg_now_ms() - c->t_start : 0;

	if (TG_LOG_INFO < srv->log_level)
		return;
	timestamp(ts, sizeof(ts));
	escape(c->target, target, sizeof(target));
	escape(c->ident, ident, sizeof(ident));
	trust_word(srv, c, trust, sizeof(trust));
	if (srv->log_json)
		fprintf(stderr, "{\"time\":\"%s\",\"level\":\"info\",\"peer\":\"%s\",\"identity\":\"%s\","
		    "\"trust\":\"%s\",\"service\":\"%s\",\"method\":\"%s\",\"path\":\"%s\","
		    "\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"ms\":%llu}\n", ts, c->peer,
		    ident, trust, service, c->method, target, c->status,
		    (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out, ms);
	else
		fprintf(stderr, "%s info %s id=%s trust=%s %s \"%s %s\" %d in=%llu out=%llu %llums\n", ts,
		    c->peer, ident, trust, service, c->method, target, c->status,
		    (unsigned long long)c->bytes_in, (unsigned long long)c->bytes_out, ms);
}
