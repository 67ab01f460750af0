/*
 * The PKI toolkit: a CA in DIR/ca, and a server certificate for localhost
 * from it in DIR/server.crt and DIR/server.key.
 *
 *   cc pki.c $(pkg-config --cflags --libs tlsgate) -o pki
 *   ./pki DIR
 */
#include <stdio.h>

#include <tlsgate/tlsgate.h>

int
main(int argc, char **argv)
{
	struct tg_cert_req req = { .kind = TG_CERT_SERVER, .name = "localhost",
	    .sans = "dns:localhost,ip:127.0.0.1", .days = 30, .key_type = TG_KEY_EC_P256 };
	struct tg_err err;
	char ca[4096], prefix[4096];

	if (argc != 2) {
		fprintf(stderr, "usage: pki DIR\n");
		return 2;
	}
	snprintf(ca, sizeof(ca), "%s/ca", argv[1]);
	snprintf(prefix, sizeof(prefix), "%s/server", argv[1]);
	if (tg_ca_init(ca, "example CA", TG_KEY_EC_P256, 365, &err) < 0 ||
	    tg_cert_issue(ca, &req, prefix, &err) < 0) {
		fprintf(stderr, "%s [%s]\n", err.msg, tg_code_name(err.code));
		return 1;
	}
	printf("CA in %s, certificate in %s.crt, key in %s.key\n", ca, prefix, prefix);
	/* a second CA in the same place is refused, not overwritten */
	if (tg_ca_init(ca, "example CA", TG_KEY_EC_P256, 365, &err) < 0)
		printf("again: %s\n", tg_code_name(err.code));
	return 0;
}
