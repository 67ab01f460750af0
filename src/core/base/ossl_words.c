/*
 * Translating OpenSSL errors and verify results into sentences. The table
 * maps the reasons users actually meet to what they mean and what to do;
 * anything else falls back to OpenSSL's own reason string, without codes.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ossl_words.h"

static const struct {
	int lib;
	int reason;
	const char *words;
} known[] = {
	{ ERR_LIB_SSL, SSL_R_WRONG_VERSION_NUMBER,
	  "the peer does not speak TLS (plain HTTP on this port?)" },
	{ ERR_LIB_SSL, SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED,
	  "the server requires a client certificate (give --cert and --key)" },
	{ ERR_LIB_SSL, SSL_R_SSLV3_ALERT_BAD_CERTIFICATE,
	  "the peer rejected our certificate (bad certificate)" },
	{ ERR_LIB_SSL, SSL_R_TLSV1_ALERT_UNKNOWN_CA,
	  "the peer does not trust the CA that issued our certificate" },
	{ ERR_LIB_SSL, SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED,
	  "the peer says our certificate has expired" },
	{ ERR_LIB_SSL, SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE,
	  "the peer rejected our certificate as unsuitable (wrong key usage?)" },
	{ ERR_LIB_SSL, SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE,
	  "the client sent no certificate, and this server requires one" },
	{ ERR_LIB_SSL, SSL_R_NO_SHARED_CIPHER,
	  "no cipher suite in common (the peer offers no AEAD/ECDHE suite)" },
	{ ERR_LIB_SSL, SSL_R_UNSUPPORTED_PROTOCOL,
	  "no TLS version in common (tlsgate needs TLS 1.2 or later)" },
	{ ERR_LIB_SSL, SSL_R_TLSV1_ALERT_PROTOCOL_VERSION,
	  "no TLS version in common (tlsgate needs TLS 1.2 or later)" },
	{ ERR_LIB_SSL, SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE,
	  "the peer aborted the handshake (no common parameters, or it requires something we did not send)" },
	{ ERR_LIB_SSL, SSL_R_UNEXPECTED_EOF_WHILE_READING,
	  "the peer closed the connection in the middle of TLS" },
	{ ERR_LIB_SSL, SSL_R_HTTP_REQUEST,
	  "the client spoke plain HTTP to a TLS port (use https://)" },
	{ ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH,
	  "the private key does not match the certificate" },
	{ ERR_LIB_PEM, PEM_R_NO_START_LINE,
	  "no PEM data found (expected -----BEGIN ...-----)" },
	{ ERR_LIB_PEM, PEM_R_BAD_PASSWORD_READ,
	  "the key is encrypted with a passphrase; tlsgate needs an unencrypted key" },
};

void
tg_ossl_words(char *buf, size_t len)
{
	unsigned long e, first = 0, last_ssl = 0;
	const char *r;
	size_t i;

	buf[0] = '\0';
	while ((e = ERR_get_error()) != 0) {
		if (first == 0)
			first = e;
		if (ERR_GET_LIB(e) == ERR_LIB_SSL && last_ssl == 0)
			last_ssl = e;
	}
	if (last_ssl != 0)
		first = last_ssl;
	if (first == 0)
		return;
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		if (ERR_GET_LIB(first) == known[i].lib &&
		    ERR_GET_REASON(first) == known[i].reason) {
			snprintf(buf, len, "%s", known[i].words);
			return;
		}
	}
	r = ERR_reason_error_string(first);
	snprintf(buf, len, "%s", r ? r : "unknown OpenSSL failure");
}

void
tg_asn1_date(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
		snprintf(buf, len, "(unknown date)");
		return;
	}
	snprintf(buf, len, "%04d-%02d-%02d %02d:%02d:%02d UTC", tm.tm_year + 1900,
	    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void
tg_x509_name_line(const X509_NAME *name, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p;
	long n;

	buf[0] = '\0';
	if (b == NULL)
		return;
	X509_NAME_print_ex(b, name, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
	n = BIO_get_mem_data(b, &p);
	snprintf(buf, len, "%.*s", (int)n, p);
	BIO_free(b);
	for (p = buf; (p = strstr(p, " = ")) != NULL;)
		memmove(p, p + 2, strlen(p + 2) + 1), *p = '=';
}

static void
append(char *buf, size_t len, const char *kind, const char *v, int vlen)
{
	size_t n = strlen(buf);

	if (n + 1 < len)
		snprintf(buf + n, len - n, "%s%s:%.*s", n ? ", " : "", kind, vlen, v);
}

void
tg_cert_sans(X509 *cert, char *buf, size_t len)
{
	GENERAL_NAMES *gens;
	int i;

	buf[0] = '\0';
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	if (gens == NULL)
		return;
	for (i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_DNS)
			append(buf, len, "dns", (const char *)ASN1_STRING_get0_data(g->d.dNSName),
			    ASN1_STRING_length(g->d.dNSName));
		else if (g->type == GEN_URI)
			append(buf, len, "uri",
			    (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
			    ASN1_STRING_length(g->d.uniformResourceIdentifier));
		else if (g->type == GEN_EMAIL)
			append(buf, len, "email", (const char *)ASN1_STRING_get0_data(g->d.rfc822Name),
			    ASN1_STRING_length(g->d.rfc822Name));
		else if (g->type == GEN_IPADD) {
			char ip[INET6_ADDRSTRLEN];
			int l = ASN1_STRING_length(g->d.iPAddress);
			const unsigned char *d = ASN1_STRING_get0_data(g->d.iPAddress);
			if ((l == 4 && inet_ntop(AF_INET, d, ip, sizeof(ip))) ||
			    (l == 16 && inet_ntop(AF_INET6, d, ip, sizeof(ip))))
				append(buf, len, "ip", ip, (int)strlen(ip));
		}
	}
	GENERAL_NAMES_free(gens);
}

int
tg_san_ip_text(const ASN1_OCTET_STRING *ip, char *buf, size_t len)
{
	char t[INET6_ADDRSTRLEN];
	int al = ip ? ASN1_STRING_length(ip) : 0;

	if ((al != 4 && al != 16) || inet_ntop(al == 4 ? AF_INET : AF_INET6,
	    ASN1_STRING_get0_data(ip), t, sizeof(t)) == NULL)
		return -1;
	snprintf(buf, len, "%s", t);
	return 0;
}

void
tg_cert_label(X509 *cert, char *buf, size_t len)
{
	GENERAL_NAMES *gens;
	int i, found = 0;

	buf[0] = '\0';
	if (cert == NULL) {
		snprintf(buf, len, "(no certificate)");
		return;
	}
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (i = 0; gens && i < sk_GENERAL_NAME_num(gens) && !found; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		if (g->type == GEN_DNS) {
			snprintf(buf, len, "%.*s", ASN1_STRING_length(g->d.dNSName),
			    (const char *)ASN1_STRING_get0_data(g->d.dNSName));
			found = 1;
		}
	}
	/* a certificate for addresses only (ACME IP identifiers) */
	for (i = 0; gens && i < sk_GENERAL_NAME_num(gens) && !found; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		found = g->type == GEN_IPADD && tg_san_ip_text(g->d.iPAddress, buf, len) == 0;
	}
	GENERAL_NAMES_free(gens);
	if (!found && X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
	    NID_commonName, buf, (int)len) < 0) {
		tg_x509_name_line(X509_get_subject_name(cert), buf, len);
	}
}

void
tg_verify_words(long result, X509 *cert, const char *host, char *buf, size_t len)
{
	char label[256], date[64], issuer[256], sans[512];

	tg_cert_label(cert, label, sizeof(label));
	issuer[0] = '\0';
	if (cert)
		tg_x509_name_line(X509_get_issuer_name(cert), issuer, sizeof(issuer));
	switch (result) {
	case X509_V_OK:
		snprintf(buf, len, "certificate for %s is valid", label);
		break;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		tg_asn1_date(cert ? X509_get0_notAfter(cert) : NULL, date, sizeof(date));
		snprintf(buf, len, "certificate for %s expired on %s", label, date);
		break;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		tg_asn1_date(cert ? X509_get0_notBefore(cert) : NULL, date, sizeof(date));
		snprintf(buf, len, "certificate for %s is not valid before %s (check the clocks)",
		    label, date);
		break;
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		if (cert)
			tg_cert_sans(cert, sans, sizeof(sans));
		else
			snprintf(sans, sizeof(sans), "none");
		snprintf(buf, len, "name %s is not in the certificate's names (%s); "
		    "use --server-name with one of them", host ? host : "?",
		    sans[0] ? sans : "no SANs");
		break;
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
		tg_x509_name_line(X509_get_subject_name(cert), issuer, sizeof(issuer));
		snprintf(buf, len, "the chain ends at the CA \"%s\", which is not a trusted CA",
		    issuer);
		break;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
		snprintf(buf, len, "certificate for %s is issued by \"%s\", which is not a "
		    "trusted CA", label, issuer);
		break;
	case X509_V_ERR_INVALID_PURPOSE:
		snprintf(buf, len, "certificate for %s is not meant for this use "
		    "(its extendedKeyUsage lacks serverAuth/clientAuth)", label);
		break;
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		snprintf(buf, len, "certificate for %s has a bad signature", label);
		break;
	default:
		snprintf(buf, len, "certificate for %s: %s", label,
		    X509_verify_cert_error_string(result));
		break;
	}
}
