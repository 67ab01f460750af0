/*
 * The TLS-ALPN-01 answer (RFC 8737 section 3): a self-signed certificate
 * for exactly the name being validated, carrying the critical
 * id-pe-acmeIdentifier extension whose value is the DER OCTET STRING of
 * SHA-256(key authorization). It is shown only to clients that offer ALPN
 * "acme-tls/1" for that name.
 */
#include <arpa/inet.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "acme.h"
#include "error.h"
#include "pki.h"

#define OID_ACME_IDENTIFIER "1.3.6.1.5.5.7.1.31"

int
tg_acme_alpn_cert(const char *name, const char *key_auth, X509 **cert, EVP_PKEY **key,
    struct tg_err *err)
{
	unsigned char md[SHA256_DIGEST_LENGTH], der[2 + SHA256_DIGEST_LENGTH], ipb[16];
	ASN1_OBJECT *oid = NULL;
	ASN1_OCTET_STRING *val = NULL;
	X509_EXTENSION *ex = NULL;
	GENERAL_NAMES *gens = NULL;
	GENERAL_NAME *gn = NULL;
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	int iplen = 0, rv = -1;

	*cert = NULL;
	*key = NULL;
	SHA256((const unsigned char *)key_auth, strlen(key_auth), md);
	der[0] = 0x04;   /* OCTET STRING, 32 bytes */
	der[1] = SHA256_DIGEST_LENGTH;
	memcpy(der + 2, md, sizeof(md));
	if (inet_pton(AF_INET, name, ipb) == 1)
		iplen = 4;
	else if (inet_pton(AF_INET6, name, ipb) == 1)
		iplen = 16;
	if ((k = tg_key_generate(TG_KEY_EC_P256, err)) == NULL)
		return -1;
	if ((x = X509_new()) == NULL || X509_set_version(x, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(x), 1) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 7 * 24 * 3600) == NULL ||
	    X509_set_pubkey(x, k) != 1)
		goto ossl;
	/* the SAN: the one name (or address) being validated */
	if ((gens = GENERAL_NAMES_new()) == NULL || (gn = GENERAL_NAME_new()) == NULL)
		goto ossl;
	if (iplen) {
		ASN1_OCTET_STRING *ip = ASN1_OCTET_STRING_new();
		if (ip == NULL || ASN1_OCTET_STRING_set(ip, ipb, iplen) != 1) {
			ASN1_OCTET_STRING_free(ip);
			goto ossl;
		}
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
	} else {
		ASN1_IA5STRING *dns = ASN1_IA5STRING_new();
		if (dns == NULL || ASN1_STRING_set(dns, name, (int)strlen(name)) != 1) {
			ASN1_IA5STRING_free(dns);
			goto ossl;
		}
		GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
	}
	if (!sk_GENERAL_NAME_push(gens, gn))
		goto ossl;
	gn = NULL;
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0) != 1)
		goto ossl;
	/* the acmeIdentifier, critical as the RFC demands */
	if ((oid = OBJ_txt2obj(OID_ACME_IDENTIFIER, 1)) == NULL ||
	    (val = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(val, der, sizeof(der)) != 1 ||
	    (ex = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, val)) == NULL ||
	    X509_add_ext(x, ex, -1) != 1)
		goto ossl;
	if (X509_sign(x, k, EVP_sha256()) <= 0)
		goto ossl;
	*cert = x;
	*key = k;
	x = NULL;
	k = NULL;
	rv = 0;
	goto out;
ossl:
	tg_err_ossl(err, TG_E_PKI, "cannot build the tls-alpn-01 certificate for %s", name);
out:
	X509_EXTENSION_free(ex);
	ASN1_OCTET_STRING_free(val);
	ASN1_OBJECT_free(oid);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(gens);
	X509_free(x);
	EVP_PKEY_free(k);
	return rv;
}
