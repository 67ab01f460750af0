/* PEM and DER input as `cert show FILE` reads it, and what show prints. */
#include <stdint.h>
#include <string.h>

#include <openssl/err.h>

#include "ossl_words.h"
#include "pki.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tg_err err;
	STACK_OF(X509) *sk = tg_certs_parse(data, size, "fuzz", &err);
	char buf[1024];
	int i, days;

	for (i = 0; sk && i < sk_X509_num(sk); i++) {
		X509 *x = sk_X509_value(sk, i);
		tg_cert_label(x, buf, sizeof(buf));
		tg_cert_sans(x, buf, sizeof(buf));
		tg_x509_name_line(X509_get_subject_name(x), buf, sizeof(buf));
		tg_spki_pin(x, buf, sizeof(buf));
		tg_cert_days_left(x, &days);
		tg_verify_words(X509_V_ERR_CERT_HAS_EXPIRED, x, "h", buf, sizeof(buf));
		tg_verify_words(X509_V_ERR_HOSTNAME_MISMATCH, x, "h", buf, sizeof(buf));
	}
	sk_X509_pop_free(sk, X509_free);
	ERR_clear_error();
	return 0;
}
