/*
 * The ACME server of the local CA (RFC 8555, with RFC 8737 TLS-ALPN-01 and
 * RFC 8738 IP identifiers): directory, nonces, accounts (with external
 * account binding), orders, authorizations, challenges, finalize,
 * certificate download, revocation and key change. Certificates are signed
 * by a CA folder (ca.crt, ca.key); what the protocol remembers (accounts,
 * orders, authorizations, enrolments, issued certificates) goes through the
 * store seam under "acme-ca/", so a cluster's nodes share it.
 *
 * No event loop here: tg_acmeca_handle and tg_acmeca_validate block (the
 * store, signing, the network for a validation) and are meant for a thread
 * pool. Both may run on several threads at once: the CA object serializes
 * its store and nonces inside; a validation holds no lock while it waits on
 * the network.
 */
#ifndef TG_ACMECA_H
#define TG_ACMECA_H

#include <limits.h>
#include <stddef.h>

#include <tlsgate/tlsgate.h>

#include "store.h"

struct tg_acmeca;

#define TG_ACMECA_HTTP01    0x1
#define TG_ACMECA_TLSALPN01 0x2
#define TG_ACMECA_DNS01     0x4

struct tg_acmeca_conf {
	char ca_dir[PATH_MAX];        /* the CA that signs: ca.crt, ca.key */
	struct tg_store_conf store;   /* where the protocol's state lives */
	long lifetime_s;              /* ca.acme.lifetime: an enrolment may set its own */
	char allow[4096];             /* ca.acme.allow: accounts without EAB; "" = EAB required */
	int challenges;               /* TG_ACMECA_* offered */
	int http_port, tls_port;      /* where HTTP-01 and TLS-ALPN-01 are checked */
	char resolver[128];           /* DNS server for validations, IP[:port]; "" = the system's */
};

/* Reads ca.acme.* and the CA folder's place from a configuration. */
int tg_acmeca_conf_from(const struct tg_config *cfg, struct tg_acmeca_conf *c,
    struct tg_err *err);
/* Loads the CA (refused, in words, when it cannot sign) and opens the store.
 * Free with tg_acmeca_free once no call is running. */
struct tg_acmeca *tg_acmeca_new(const struct tg_acmeca_conf *c, struct tg_err *err);
void tg_acmeca_free(struct tg_acmeca *ca);

struct tg_acmeca_req {
	const char *method;           /* GET HEAD POST */
	const char *host;             /* the Host header: URLs are https://HOST/acme/... */
	const char *path;             /* starts with /acme/ */
	const char *body;
	size_t body_len;
};

struct tg_acmeca_resp {
	int status;
	char *body;                   /* malloc'ed; NULL none */
	size_t body_len;
	char headers[1000];           /* extra header lines, each ending in CRLF */
	/* a challenge the client asked to be checked: tg_acmeca_validate(authz, idx) */
	int validate;
	char account[64];             /* whose check it is */
	char authz[64];
	int chall;
	char log[600];                /* a line worth logging ("" none) */
	enum { TG_ACMECA_EV_NONE, TG_ACMECA_EV_ISSUED, TG_ACMECA_EV_REVOKED,
	    TG_ACMECA_EV_REFUSED } event;   /* what /metrics counts */
};

/* Answers one request. Blocking; any thread. */
void tg_acmeca_handle(struct tg_acmeca *ca, const struct tg_acmeca_req *req,
    struct tg_acmeca_resp *resp);
void tg_acmeca_resp_clear(struct tg_acmeca_resp *resp);
/* Checks challenge idx of authorization authz (HTTP-01, TLS-ALPN-01 or
 * DNS-01) and records the outcome: 1 valid, 0 invalid, -1 not checked
 * (gone, or the store failed); what happened lands in log. Blocks for
 * at most about 30 seconds; any thread. */
int tg_acmeca_validate(struct tg_acmeca *ca, const char *authz, int idx, char *log,
    size_t loglen);

/* ---- enrolment (tlsgate ca enroll) ---------------------------------------- */

struct tg_acmeca_enrolment {
	char name[128];               /* the device or group, for people */
	char allow[4096];             /* patterns: *.fleet.example, ip:10.0.0.0/8, uri:spiffe://x/... */
	long lifetime_s;              /* 0: the CA's ca.acme.lifetime */
	int max_accounts;             /* accounts the key may bind (1: one device) */
	char kid[64], hmac[64];       /* out: the key id and the base64url HMAC key */
};
/* Makes an external-account-binding key in the store; fills kid and hmac. */
int tg_acmeca_enroll(struct tg_store *st, struct tg_acmeca_enrolment *e, struct tg_err *err);
/* Checks a policy list; -1 naming the bad entry. */
int tg_acmeca_policy_check(const char *allow, struct tg_err *err);

#endif
