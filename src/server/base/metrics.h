/*
 * The counters of /metrics, listed once. Each row is a field of struct
 * tg_metrics, a sample in the exposition (admin.c) and a sum across
 * workers (workers.c), so a counter cannot be counted and then forgotten
 * by one of them.
 *
 *   X(field, family, labels, help)
 *
 * Rows of one family stand together (the exposition writes HELP and TYPE
 * once per family). The trust rows get a mode="..." label in front of
 * theirs, and are shown only when client certificates are asked for.
 */
#ifndef TG_METRICS_H
#define TG_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "tls.h"

#define TG_FAMILY_TRUST "tlsgate_trust_decisions_total"

#define TG_METRIC_COUNTERS(X) \
	X(cert_swaps, "tlsgate_cert_swaps_total", "result=\"ok\"", \
	    "Certificates swapped in while running, by result.") \
	X(cert_swaps_refused, "tlsgate_cert_swaps_total", "result=\"refused\"", "") \
	X(connections, "tlsgate_connections_total", "", "Client connections accepted.") \
	X(handshakes_ok, "tlsgate_handshakes_total", "result=\"ok\"", "TLS handshakes by result.") \
	X(handshakes_refused, "tlsgate_handshakes_total", "result=\"refused_certificate\"", "") \
	X(handshakes_failed, "tlsgate_handshakes_total", "result=\"failed\"", "") \
	X(handshakes_resumed, "tlsgate_handshakes_resumed_total", "", \
	    "Handshakes that resumed a session (ticket).") \
	X(alpn_http11, "tlsgate_alpn_total", "listener=\"https\",protocol=\"http/1.1\"", \
	    "TLS handshakes by the ALPN protocol selected (none: the client offered none; " \
	    "refused: it offered none this listener speaks).") \
	X(alpn_http10, "tlsgate_alpn_total", "listener=\"https\",protocol=\"http/1.0\"", "") \
	X(alpn_acme, "tlsgate_alpn_total", "listener=\"https\",protocol=\"acme-tls/1\"", "") \
	X(alpn_none, "tlsgate_alpn_total", "listener=\"https\",protocol=\"none\"", "") \
	X(alpn_refused, "tlsgate_alpn_total", "listener=\"https\",protocol=\"refused\"", "") \
	/* one row per kind of tls.h's TG_TLS_GROUP_KINDS (tg_metrics_group) */ \
	X(group_mlkem, "tlsgate_tls_groups_total", "listener=\"https\",group=\"X25519MLKEM768\"", \
	    "TLS handshakes by the key-exchange group negotiated.") \
	X(group_x25519, "tlsgate_tls_groups_total", "listener=\"https\",group=\"x25519\"", "") \
	X(group_p256, "tlsgate_tls_groups_total", "listener=\"https\",group=\"secp256r1\"", "") \
	X(group_p384, "tlsgate_tls_groups_total", "listener=\"https\",group=\"secp384r1\"", "") \
	X(group_p521, "tlsgate_tls_groups_total", "listener=\"https\",group=\"secp521r1\"", "") \
	X(group_x448, "tlsgate_tls_groups_total", "listener=\"https\",group=\"x448\"", "") \
	X(group_other, "tlsgate_tls_groups_total", "listener=\"https\",group=\"other\"", "") \
	X(group_none, "tlsgate_tls_groups_total", "listener=\"https\",group=\"none\"", "") \
	X(proxy_accepted, "tlsgate_proxy_headers_total", "result=\"accepted\"", \
	    "PROXY headers on the main listener: accepted from proxy_protocol.accept_from, " \
	    "refused (malformed, missing, or from another address).") \
	X(proxy_refused, "tlsgate_proxy_headers_total", "result=\"refused\"", "") \
	X(acmeca_issued, "tlsgate_acme_ca_events_total", "event=\"issued\"", \
	    "The ACME CA (ca.acme.listen): certificates issued and revoked, challenges found " \
	    "valid and invalid, requests refused (a problem document).") \
	X(acmeca_revoked, "tlsgate_acme_ca_events_total", "event=\"revoked\"", "") \
	X(acmeca_valid, "tlsgate_acme_ca_events_total", "event=\"challenge_valid\"", "") \
	X(acmeca_invalid, "tlsgate_acme_ca_events_total", "event=\"challenge_invalid\"", "") \
	X(acmeca_refused, "tlsgate_acme_ca_events_total", "event=\"refused\"", "") \
	X(chain_hits, "tlsgate_chain_cache_lookups_total", "result=\"hit\"", \
	    "Client chains looked up in the verified-chain cache.") \
	X(chain_misses, "tlsgate_chain_cache_lookups_total", "result=\"miss\"", "") \
	X(trust_accepted, TG_FAMILY_TRUST, "verdict=\"accepted\"", \
	    "Client certificates judged, by mode and verdict.") \
	X(trust_recorded, TG_FAMILY_TRUST, "verdict=\"recorded\"", "") \
	X(trust_rejected, TG_FAMILY_TRUST, "verdict=\"rejected\"", "") \
	X(trust_warned, TG_FAMILY_TRUST, "verdict=\"accepted_unvalidated\"", "") \
	X(requests_other, "tlsgate_requests_total", "code=\"other\"", \
	    "HTTP requests answered, by status class.") \
	X(requests_1xx, "tlsgate_requests_total", "code=\"1xx\"", "") \
	X(requests_2xx, "tlsgate_requests_total", "code=\"2xx\"", "") \
	X(requests_3xx, "tlsgate_requests_total", "code=\"3xx\"", "") \
	X(requests_4xx, "tlsgate_requests_total", "code=\"4xx\"", "") \
	X(requests_5xx, "tlsgate_requests_total", "code=\"5xx\"", "") \
	X(files_in, "tlsgate_bytes_total", "service=\"files\",direction=\"in\"", \
	    "Bytes of HTTP traffic, by service and direction.") \
	X(files_out, "tlsgate_bytes_total", "service=\"files\",direction=\"out\"", "") \
	X(other_in, "tlsgate_bytes_total", "service=\"other\",direction=\"in\"", "") \
	X(other_out, "tlsgate_bytes_total", "service=\"other\",direction=\"out\"", "")

struct tg_metrics {
#define TG_METRIC_FIELD(f, family, labels, help) uint64_t f;
	TG_METRIC_COUNTERS(TG_METRIC_FIELD)
#undef TG_METRIC_FIELD
	/* gauges: the worker's own, not summed */
	int64_t cert_not_after;        /* the served certificate, unix seconds */
	char cert_name[256], cert_source[320];
	time_t started;
};

/* A finished handshake's key-exchange group, by kind (tg_tls_group_kind). */
static inline void
tg_metrics_group(struct tg_metrics *m, int kind)
{
	switch (kind) {
	case TG_GROUP_X25519MLKEM768: m->group_mlkem++; break;
	case TG_GROUP_X25519: m->group_x25519++; break;
	case TG_GROUP_P256: m->group_p256++; break;
	case TG_GROUP_P384: m->group_p384++; break;
	case TG_GROUP_P521: m->group_p521++; break;
	case TG_GROUP_X448: m->group_x448++; break;
	case TG_GROUP_NONE: m->group_none++; break;
	default: m->group_other++; break;
	}
}

/* One answered request, by the class of its status. */
static inline void
tg_metrics_status(struct tg_metrics *m, int status)
{
	switch (status >= 100 && status < 600 ? status / 100 : 0) {
	case 1: m->requests_1xx++; break;
	case 2: m->requests_2xx++; break;
	case 3: m->requests_3xx++; break;
	case 4: m->requests_4xx++; break;
	case 5: m->requests_5xx++; break;
	default: m->requests_other++; break;
	}
}

#endif
