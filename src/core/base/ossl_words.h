/*
 * OpenSSL's failures in words a user understands: "certificate for
 * node1.lan expired on 2026-01-02", not "error:0A000086".
 */
#ifndef TG_OSSL_WORDS_H
#define TG_OSSL_WORDS_H

#include <stddef.h>
#include <openssl/x509.h>

/* Drains the error queue into one phrase (empty if the queue was empty). */
void tg_ossl_words(char *buf, size_t len);
/* Explains a chain verification result about cert (may be NULL); host is
 * the name that was checked, or NULL. */
void tg_verify_words(long result, X509 *cert, const char *host, char *buf, size_t len);
/* "2026-01-02" for an ASN1_TIME. */
void tg_asn1_date(const ASN1_TIME *t, char *buf, size_t len);
/* The name people know a certificate by: first DNS SAN, else IP SAN, else CN. */
void tg_cert_label(X509 *cert, char *buf, size_t len);
/* An iPAddress name (4 or 16 bytes) as text; 0, or -1 when it is none. */
int tg_san_ip_text(const ASN1_OCTET_STRING *ip, char *buf, size_t len);
/* One-line subject and issuer as "CN=x, O=y". */
void tg_x509_name_line(const X509_NAME *name, char *buf, size_t len);
/* Comma-separated SANs as "dns:a, ip:1.2.3.4, uri:x". */
void tg_cert_sans(X509 *cert, char *buf, size_t len);

#endif
