/*
 * Where the server's certificate comes from: the files the user named, or
 * one made and kept in state_dir (tls.auto: local-ca or self-signed), reused
 * while it is valid for the wanted names and renewed when it is not.
 */
#ifndef TG_CERTS_H
#define TG_CERTS_H

#include <limits.h>

#include <tlsgate/tlsgate.h>

struct tg_keypair {
	char cert[PATH_MAX], key[PATH_MAX];
	char cert_origin[320], key_origin[320];
	char local_ca[PATH_MAX];   /* the local CA certificate, "" if none */
	int made_ca, made_cert;
	char names[2048];          /* the auto certificate's names */
	char warning[900];         /* for the operator's log, "" if none: the
	                            * library writes no log of its own */
};

int tg_certs_prepare(const struct tg_config *cfg, struct tg_keypair *kp, struct tg_err *err);
/* The node's own client certificate (state_dir/certs/client.crt), made
 * from the local CA or self-signed like the server's; named by the first of
 * tls.names, else the host name. */
int tg_certs_client_prepare(const struct tg_config *cfg, struct tg_err *err);
/* localhost, the host name, and this machine's addresses, as a SAN list. */
int tg_certs_default_names(char *buf, size_t len);

#endif
