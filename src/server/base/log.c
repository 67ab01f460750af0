/*
 * Log lines, text or JSON, on stderr: one per event and one per request.
 * Values that come from peers are escaped so a log line is always one line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "server.h"
#include "util.h"

static const char *const level_names[] = { "debug", "info", "warn", "error" };

static void
timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	    ts.tv_nsec / 1000000) >= (int)len)
		buf[0] = '\0';   /* not before the year 10000 */
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

void
tg_log_access(const struct tg_server *srv, const struct tg_access *a)
{
	char ts[40], target[1024], ident[512];

	if (TG_LOG_INFO < srv->log_level)
		return;
	timestamp(ts, sizeof(ts));
	escape(a->target, target, sizeof(target));
	escape(a->ident, ident, sizeof(ident));
	if (srv->log_json)
		fprintf(stderr, "{\"time\":\"%s\",\"level\":\"info\",\"peer\":\"%s\",\"identity\":\"%s\","
		    "\"trust\":\"%s\",\"service\":\"%s\",\"method\":\"%s\",\"path\":\"%s\","
		    "\"status\":%d,\"bytes_in\":%llu,\"bytes_out\":%llu,\"ms\":%llu}\n", ts, a->peer,
		    ident, a->trust, a->service, a->method, target, a->status,
		    (unsigned long long)a->bytes_in, (unsigned long long)a->bytes_out,
		    (unsigned long long)a->ms);
	else
		fprintf(stderr, "%s info %s id=%s trust=%s %s \"%s %s\" %d in=%llu out=%llu %llums\n", ts,
		    a->peer, ident, a->trust, a->service, a->method, target, a->status,
		    (unsigned long long)a->bytes_in, (unsigned long long)a->bytes_out,
		    (unsigned long long)a->ms);
}
