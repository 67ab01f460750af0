/*
 * The admin listener's two pages: /metrics in the Prometheus text format
 * and /status as JSON. Plain HTTP, meant for loopback (admin.listen).
 */
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acme_agent.h"
#include "follow.h"
#include "chain_cache.h"
#include "admin.h"
#include "tunnel.h"
#include "upstream.h"
#include "workers.h"
#include "conn.h"
#include "pins.h"
#include "trust.h"

struct text {
	char *p;
	size_t len, cap;
};

static void
add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
add(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		size_t room = t->cap - t->len;
		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, t->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (t->p && (size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		char *np = realloc(t->p, t->cap = (t->cap + (size_t)n + 1) * 2);
		if (np == NULL) {
			t->cap = t->len = 0;
			free(t->p);
			t->p = NULL;
			return;
		}
		t->p = np;
	}
}

/* Prometheus label values and JSON strings escape the same three ways
 * that matter here: backslash, quote, newline (and no control bytes). */
static void
esc(const char *in, char *out, size_t len)
{
	size_t n = 0;

	for (; *in && n + 3 < len; in++) {
		if (*in == '\\' || *in == '"')
			out[n++] = '\\', out[n++] = *in;
		else if (*in == '\n')
			out[n++] = '\\', out[n++] = 'n';
		else if ((unsigned char)*in >= 0x20)
			out[n++] = *in;
	}
	out[n] = '\0';
}

/* The server's own list when it keeps one (a million identities are not
 * read again for a status page), else the file. */
static size_t
known_entries(struct tg_trust *t)
{
	const char *path = t->known;
	size_t n = tg_trust_count(t);
	struct tg_err err;
	struct tg_known *k;
	const char *a, *b, *c;
	size_t i = 0, line;

	if (n != (size_t)-1)
		return n;
	k = tg_known_load(path, &err);
	while (k && tg_known_entry(k, i, &a, &b, &c, &line) == 0)
		i++;
	tg_known_free(k);
	return i;
}

/* The counters of metrics.h, each family with its HELP and TYPE once;
 * trust_mode NULL: no client certificates, no trust family. */
static void
counters(struct text *t, const struct tg_metrics *m, const char *trust_mode)
{
	static const struct {
		const char *family, *labels, *help;
		size_t off;
	} rows[] = {
#define ROW(f, family, labels, help) { family, labels, help, offsetof(struct tg_metrics, f) },
		TG_METRIC_COUNTERS(ROW)
#undef ROW
	};
	const char *prev = "";
	size_t i;

	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		uint64_t v;
		int trust = !strcmp(rows[i].family, TG_FAMILY_TRUST);
		if (trust && trust_mode == NULL)
			continue;
		memcpy(&v, (const char *)m + rows[i].off, sizeof(v));
		if (strcmp(rows[i].family, prev) != 0)
			add(t, "# HELP %s %s\n# TYPE %s counter\n", rows[i].family, rows[i].help,
			    rows[i].family);
		prev = rows[i].family;
		if (trust)
			add(t, "%s{mode=\"%s\",%s} %llu\n", rows[i].family, trust_mode, rows[i].labels,
			    (unsigned long long)v);
		else
			add(t, "%s%s%s%s %llu\n", rows[i].family, rows[i].labels[0] ? "{" : "",
			    rows[i].labels, rows[i].labels[0] ? "}" : "", (unsigned long long)v);
	}
}

/* The served certificate's expiry (0 while ACME has none yet). */
static void
metrics_cert(struct text *t, const struct tg_server *s, const struct tg_metrics *m)
{
	char name[300], src[400];

	add(t, "# HELP tlsgate_cert_not_after_seconds When the served certificate expires (unix time).\n"
	    "# TYPE tlsgate_cert_not_after_seconds gauge\n");
	if (s->ssl_ctx) {
		esc(m->cert_name, name, sizeof(name));
		esc(m->cert_source, src, sizeof(src));
		add(t, "tlsgate_cert_not_after_seconds{name=\"%s\",source=\"%s\"} %lld\n", name, src,
		    (long long)m->cert_not_after);
	}
	if (s->ssl_ctx && m->cert_not_after == 0)   /* ACME: none yet */
		add(t, "tlsgate_cert_not_after_seconds{name=\"\",source=\"%s\"} 0\n",
		    (esc(m->cert_source, src, sizeof(src)), src));
}

/* The ACME agent's orders and renewals. */
static void
metrics_acme(struct text *t, const struct tg_server *s)
{
	struct tg_acme_stats st;

	tg_acme_agent_stats(s->acme, &st);
	add(t, "# HELP tlsgate_acme_orders_total First ACME orders (no certificate yet), by result.\n"
	    "# TYPE tlsgate_acme_orders_total counter\n"
	    "tlsgate_acme_orders_total{result=\"ok\"} %llu\n"
	    "tlsgate_acme_orders_total{result=\"failed\"} %llu\n"
	    "# HELP tlsgate_acme_renewals_total ACME renewals, by result.\n"
	    "# TYPE tlsgate_acme_renewals_total counter\n"
	    "tlsgate_acme_renewals_total{result=\"ok\"} %llu\n"
	    "tlsgate_acme_renewals_total{result=\"failed\"} %llu\n"
	    "# HELP tlsgate_acme_next_check_seconds When the ACME agent looks next (unix time).\n"
	    "# TYPE tlsgate_acme_next_check_seconds gauge\ntlsgate_acme_next_check_seconds %lld\n",
	    (unsigned long long)st.orders_ok, (unsigned long long)st.orders_failed,
	    (unsigned long long)st.renewals_ok, (unsigned long long)st.renewals_failed,
	    (long long)st.next_check);
}

/* Each tunnel's TLS side: the ALPN protocol selected (by its position in
 * the tunnel's list, none, refused) and the key-exchange group. */
static void
metrics_tunnel_protocols(struct text *t, const struct tg_server *s)
{
	struct tg_tunnel_stats ts;
	size_t i, j;
	char name[256];

	add(t, "# HELP tlsgate_tunnel_alpn_total TLS handshakes of tunnels by the ALPN protocol "
	    "selected (none: none offered or selected; refused: no protocol in common).\n"
	    "# TYPE tlsgate_tunnel_alpn_total counter\n");
	for (i = 0; tg_tunnel_stats(s, i, &ts) == 0; i++) {
		for (j = 0; j < ts.alpn->n; j++) {
			tg_alpn_name(ts.alpn, j, name, sizeof(name));
			add(t, "tlsgate_tunnel_alpn_total{tunnel=\"%zu\",protocol=\"%s\"} %llu\n", i,
			    name, (unsigned long long)ts.alpn_count[j]);
		}
		add(t, "tlsgate_tunnel_alpn_total{tunnel=\"%zu\",protocol=\"none\"} %llu\n"
		    "tlsgate_tunnel_alpn_total{tunnel=\"%zu\",protocol=\"refused\"} %llu\n", i,
		    (unsigned long long)ts.alpn_count[TG_ALPN_NONE], i,
		    (unsigned long long)ts.alpn_count[TG_ALPN_REFUSED]);
	}
	add(t, "# HELP tlsgate_tunnel_tls_groups_total TLS handshakes of tunnels by the "
	    "key-exchange group negotiated.\n# TYPE tlsgate_tunnel_tls_groups_total counter\n");
	for (i = 0; tg_tunnel_stats(s, i, &ts) == 0; i++)
		for (j = 0; j < TG_GROUP_KINDS; j++)
			add(t, "tlsgate_tunnel_tls_groups_total{tunnel=\"%zu\",group=\"%s\"} %llu\n", i,
			    tg_tls_group_label((int)j), (unsigned long long)ts.group_count[j]);
}

/* Each tunnel's connections and bytes. */
static void
metrics_tunnels(struct text *t, const struct tg_server *s)
{
	struct tg_tunnel_stats ts;
	size_t i;

	add(t, "# HELP tlsgate_tunnel_connections_total Tunnel connections, by tunnel and "
	    "outcome (accepted; refused at the limit; failed to connect, hand shake or be trusted).\n"
	    "# TYPE tlsgate_tunnel_connections_total counter\n");
	for (i = 0; tg_tunnel_stats(s, i, &ts) == 0; i++)
		add(t, "tlsgate_tunnel_connections_total{tunnel=\"%zu\",result=\"accepted\"} %llu\n"
		    "tlsgate_tunnel_connections_total{tunnel=\"%zu\",result=\"refused\"} %llu\n"
		    "tlsgate_tunnel_connections_total{tunnel=\"%zu\",result=\"failed\"} %llu\n",
		    i, (unsigned long long)ts.accepted, i, (unsigned long long)ts.refused, i,
		    (unsigned long long)ts.failed);
	add(t, "# HELP tlsgate_tunnel_connections_open Tunnel connections open now.\n"
	    "# TYPE tlsgate_tunnel_connections_open gauge\n");
	for (i = 0; tg_tunnel_stats(s, i, &ts) == 0; i++)
		add(t, "tlsgate_tunnel_connections_open{tunnel=\"%zu\"} %zu\n", i, ts.open);
	add(t, "# HELP tlsgate_tunnel_bytes_total Bytes through tunnels (in: from the accepted "
	    "side), of connections that ended.\n# TYPE tlsgate_tunnel_bytes_total counter\n");
	for (i = 0; tg_tunnel_stats(s, i, &ts) == 0; i++)
		add(t, "tlsgate_tunnel_bytes_total{tunnel=\"%zu\",direction=\"in\"} %llu\n"
		    "tlsgate_tunnel_bytes_total{tunnel=\"%zu\",direction=\"out\"} %llu\n", i,
		    (unsigned long long)ts.bytes_in, i, (unsigned long long)ts.bytes_out);
	metrics_tunnel_protocols(t, s);
}

/* The cluster's store: the probe, and the watch of the process that keeps
 * the copy. */
static void
metrics_store(struct text *t, const struct tg_server *s)
{
	struct tg_store_health h;

	tg_store_follow_health(s->follow, &h);
	add(t, "# HELP tlsgate_store_up The cluster's store (etcd) answered the last probe "
	    "with its quorum.\n# TYPE tlsgate_store_up gauge\ntlsgate_store_up %d\n"
	    "# HELP tlsgate_store_request_seconds How long the last probe of the store took.\n"
	    "# TYPE tlsgate_store_request_seconds gauge\ntlsgate_store_request_seconds %.3f\n"
	    "# HELP tlsgate_store_probes_total Probes of the store, by result.\n"
	    "# TYPE tlsgate_store_probes_total counter\n"
	    "tlsgate_store_probes_total{result=\"ok\"} %llu\n"
	    "tlsgate_store_probes_total{result=\"failed\"} %llu\n", h.up, h.latency_ms / 1000.0,
	    h.probes - h.failures, h.failures);
	if (h.watching)
		add(t, "# HELP tlsgate_store_watch_events_total Changes of the store copied into "
		    "state_dir by the watch.\n# TYPE tlsgate_store_watch_events_total counter\n"
		    "tlsgate_store_watch_events_total %llu\n"
		    "# HELP tlsgate_store_watch_lag_seconds How long this node's copy has lagged "
		    "the store (0: up to date).\n# TYPE tlsgate_store_watch_lag_seconds gauge\n"
		    "tlsgate_store_watch_lag_seconds %lld\n"
		    "# HELP tlsgate_store_watch_restarts_total Watch streams opened again (a member "
		    "gone, the network cut).\n# TYPE tlsgate_store_watch_restarts_total counter\n"
		    "tlsgate_store_watch_restarts_total %llu\n", h.events,
		    h.behind_since ? (long long)(time(NULL) - h.behind_since) : 0LL,
		    h.watch_restarts);
}

static void
metrics(struct tg_conn_s *c)
{
	const struct tg_server *s = c->srv;
	struct text t = { NULL, 0, 0 };
	struct tg_metrics m;
	size_t nconns;

	tg_workers_sum(s, &m, &nconns);   /* every worker's counters */
	metrics_cert(&t, s, &m);
	if (s->acme)
		metrics_acme(&t, s);
	if (s->ntunnels)
		metrics_tunnels(&t, s);
	add(&t, "# HELP tlsgate_connections_open Client connections open now.\n"
	    "# TYPE tlsgate_connections_open gauge\ntlsgate_connections_open %zu\n", nconns);
	add(&t, "# HELP tlsgate_trust_objects Trust objects alive in the worker that answers (the "
	    "current one, and older ones while connections made before a reload remain).\n"
	    "# TYPE tlsgate_trust_objects gauge\ntlsgate_trust_objects %ld\n", tg_trust_live());
	if (s->follow)
		metrics_store(&t, s);
	add(&t, "# HELP tlsgate_workers Processes serving the listener.\n"
	    "# TYPE tlsgate_workers gauge\ntlsgate_workers %u\n", s->workers);
	counters(&t, &m, s->clients ? tg_trust_mode_name(s->clients->mode) : NULL);
	add(&t, "# HELP tlsgate_start_time_seconds When this server started (unix time).\n"
	    "# TYPE tlsgate_start_time_seconds gauge\ntlsgate_start_time_seconds %lld\n",
	    (long long)m.started);
	tg_conn_respond(c, t.p ? 200 : 500, "Content-Type: text/plain; version=0.0.4\r\n",
	    t.p ? t.p : "out of memory");
	free(t.p);
}

/* /status: the store, the cluster's (etcd) or the folder. */
static void
status_store(struct text *t, const struct tg_server *s)
{
	char a[4200], eps[4200];
	struct tg_store_health h;

	if (s->follow == NULL) {
		esc(s->state_dir, a, sizeof(a));
		add(t, "{\"backend\":\"folder\",\"path\":\"%s\",\"up\":true}", a);
		return;
	}
	tg_store_follow_health(s->follow, &h);
	esc(h.last_error, a, sizeof(a));
	esc(s->store->endpoints, eps, sizeof(eps));
	add(t, "{\"backend\":\"etcd\",\"endpoints\":\"%s\",\"up\":%s,\"since\":%lld,"
	    "\"latency_ms\":%.1f,\"revision\":%lld,\"applied\":%lld,\"lag_seconds\":%lld,"
	    "\"last_error\":\"%s\"}", eps, h.up ? "true" : "false", (long long)h.since,
	    h.latency_ms, h.revision, h.applied,
	    h.behind_since ? (long long)(time(NULL) - h.behind_since) : 0LL, a);
}

/* /status: the ACME agent, or null. */
static void
status_acme(struct text *t, const struct tg_server *s)
{
	struct tg_acme_stats st;
	char names[1200] = "", one[300], a[4200], b[400];
	size_t i;

	if (s->acme == NULL || s->acme_set == NULL) {
		add(t, "null");
		return;
	}
	tg_acme_agent_stats(s->acme, &st);
	for (i = 0; i < s->acme_set->nnames; i++) {
		esc(s->acme_set->names[i], one, sizeof(one));
		snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s\"%s\"",
		    i ? "," : "", one);
	}
	esc(s->acme_set->directory, a, sizeof(a));
	esc(st.last_error, b, sizeof(b));
	add(t, "{\"directory\":\"%s\",\"names\":[%s],\"state\":\"%s\",\"next_check\":%lld,"
	    "\"last_success\":%lld,\"last_error\":\"%s\",\"orders_ok\":%llu,"
	    "\"renewals_ok\":%llu,\"failures\":%llu}", a, names, st.state,
	    (long long)st.next_check, (long long)st.last_success, b,
	    (unsigned long long)st.orders_ok, (unsigned long long)st.renewals_ok,
	    (unsigned long long)(st.orders_failed + st.renewals_failed));
}

static void
status(struct tg_conn_s *c)
{
	const struct tg_server *s = c->srv;
	struct text t = { NULL, 0, 0 };
	struct tg_metrics m;
	char a[4200], b[400];
	size_t nconns;

	tg_workers_sum(s, &m, &nconns);
	esc(s->listen, a, sizeof(a));
	add(&t, "{\"version\":\"%s\",\"started\":%lld,\"listeners\":[{\"address\":\"%s\",\"tls\":\"%s\"}",
	    tg_version(), (long long)m.started, a,
	    !s->ssl_ctx ? "off" : s->mutual ? "mutual" : "server");
	esc(s->admin_listen, a, sizeof(a));
	add(&t, ",{\"address\":\"%s\",\"service\":\"admin\"}],\"certificates\":[", a);
	if (s->ssl_ctx) {
		esc(m.cert_name, a, sizeof(a));
		esc(m.cert_source, b, sizeof(b));
		add(&t, "{\"name\":\"%s\",\"source\":\"%s\",\"not_after\":%lld,\"days_left\":%lld}",
		    a, b, (long long)m.cert_not_after,
		    (long long)(m.cert_not_after - (long long)time(NULL)) / 86400);
	}
	add(&t, "],\"known_files\":[");
	if (s->clients) {
		esc(s->clients->known, a, sizeof(a));
		add(&t, "{\"store\":\"known-clients\",\"path\":\"%s\",\"entries\":%zu,\"trust\":\"%s\"}",
		    a, known_entries(s->clients), tg_trust_mode_name(s->clients->mode));
	}
	add(&t, "],\"store\":");
	status_store(&t, s);
	esc(s->files_prefix, a, sizeof(a));
	add(&t, ",\"connections\":{\"open\":%zu,\"total\":%llu},\"files\":{\"enabled\":%s,"
	    "\"prefix\":\"%s\"},\"acme\":", nconns, (unsigned long long)m.connections,
	    s->files_enabled ? "true" : "false", a);
	status_acme(&t, s);
	add(&t, "}\n");
	tg_conn_respond(c, t.p ? 200 : 500, "Content-Type: application/json\r\n",
	    t.p ? t.p : "out of memory");
	free(t.p);
}

/* The local CA's CRL: DER at /crl (what a CRL distribution point names,
 * RFC 5280 §4.2.1.13), PEM at /crl.pem. */
static void
crl(struct tg_conn_s *c, int pem, int head)
{
	const struct tg_server *s = c->srv;
	char p[PATH_MAX + 16];
	struct stat sb;
	int fd;

	snprintf(p, sizeof(p), "%s/ca/crl.%s", s->state_dir, pem ? "pem" : "der");
	if ((fd = open(p, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &sb) < 0) {
		if (fd >= 0)
			close(fd);
		tg_conn_respond(c, 404, NULL, "no CRL yet: the local CA makes one with its first "
		    "`tlsgate cert revoke`, or `tlsgate ca crl`");
		return;
	}
	tg_conn_respond_file(c, 200, pem ? "Content-Type: application/x-pem-file\r\n" :
	    "Content-Type: application/pkix-crl\r\n", fd, 0, (uint64_t)sb.st_size, head);
}

static enum tg_handled
admin_begin(const struct tg_handler *h, struct tg_conn_s *c, const struct tg_http_req *req)
{
	int get = !strcmp(c->method, "GET") || !strcmp(c->method, "HEAD");

	if (get && !strcmp(c->target, "/metrics"))
		metrics(c);
	else if (get && !strcmp(c->target, "/status"))
		status(c);
	else if (get && (!strcmp(c->target, "/crl") || !strcmp(c->target, "/crl.pem")))
		crl(c, !strcmp(c->target, "/crl.pem"), !strcmp(c->method, "HEAD"));
	else
		tg_conn_respond(c, 404, NULL, "the admin listener serves GET /metrics, /status and "
		    "/crl (the local CA's CRL)");
	return TG_H_DONE;
}

/* Its requests are not counted in the metrics they read. */
const struct tg_handler tg_admin_handler = {
	.service = "admin", .counted = TG_COUNT_NONE, .begin = admin_begin,
};
