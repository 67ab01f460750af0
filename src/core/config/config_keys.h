/*
 * The configuration's keys, listed once (an X-macro): the key table in
 * config.c (name, type, default, choices, doc) and the ids the core and the
 * server read values by. A key read by id is checked by the compiler: a
 * typo does not build. docs/configuration.md is generated from this list
 * (scripts/config-doc.sh).
 */
#ifndef TG_CONFIG_KEYS_H
#define TG_CONFIG_KEYS_H

/* X(ID, "name", type, default (NULL: computed), choices (enum), doc) */
#define TG_CONFIG_KEYS(X) \
	X(TG_CFG_STATE_DIR, "state_dir", K_PATH, NULL, NULL, "CA, auto certificates, known files, file-service root") \
	X(TG_CFG_STORE_BACKEND, "store.backend", K_ENUM, "folder", "folder|etcd", "where shared state lives: folder (state_dir) or etcd (a v3 cluster)") \
	X(TG_CFG_STORE_ENDPOINTS, "store.endpoints", K_LIST, "", NULL, "etcd client URLs, https://HOST:2379 (a list or a,b,c)") \
	X(TG_CFG_STORE_PREFIX, "store.prefix", K_STR, "/tlsgate/", NULL, "key prefix in etcd; nodes that share it share their state") \
	X(TG_CFG_STORE_CA, "store.ca", K_PATH, "", NULL, "CA file that signed the etcd members' certificates") \
	X(TG_CFG_STORE_CERT, "store.cert", K_PATH, "", NULL, "client certificate for etcd (tlsgate cert issue --client)") \
	X(TG_CFG_STORE_KEY, "store.key", K_PATH, "", NULL, "its key") \
	X(TG_CFG_STORE_TIMEOUT, "store.timeout", K_DUR, "5s", NULL, "one etcd request must be answered within") \
	X(TG_CFG_STORE_USER, "store.user", K_STR, "", NULL, "etcd user, when etcd auth (RBAC) is on; empty: none") \
	X(TG_CFG_STORE_PASSWORD_FILE, "store.password_file", K_PATH, "", NULL, "file holding that user's password (mode 0600)") \
	X(TG_CFG_LISTEN, "listen", K_ADDR, "[::]:8443", NULL, "address the server listens on") \
	X(TG_CFG_USER, "user", K_STR, "", NULL, "as root: the user to switch to after binding (state_dir is given to it)") \
	X(TG_CFG_GROUP, "group", K_STR, "", NULL, "the group to switch to; default: the user's group") \
	X(TG_CFG_LANDLOCK, "landlock", K_BOOL, "true", NULL, "limit file access to what serving needs, where the kernel has landlock") \
	X(TG_CFG_LOG_LEVEL, "log.level", K_ENUM, "info", "debug|info|warn|error", "least severity logged") \
	X(TG_CFG_LOG_FORMAT, "log.format", K_ENUM, "text", "text|json", "log line format") \
	X(TG_CFG_TLS_MODE, "tls.mode", K_ENUM, "server", "off|server|mutual", "plain HTTP, HTTPS, or HTTPS with client certificates") \
	X(TG_CFG_TLS_CERT, "tls.cert", K_PATH, "", NULL, "certificate chain (PEM, leaf first); empty = tls.auto") \
	X(TG_CFG_TLS_KEY, "tls.key", K_PATH, "", NULL, "private key of tls.cert (PEM, mode 0600)") \
	X(TG_CFG_TLS_AUTO, "tls.auto", K_ENUM, "local-ca", "local-ca|self-signed|acme|none", "where a certificate comes from when tls.cert is empty") \
	X(TG_CFG_TLS_NAMES, "tls.names", K_LIST, "", NULL, "names for auto certificates; default localhost, hostname, local IPs") \
	X(TG_CFG_TLS_ALLOW_INSECURE_KEY_PERMISSIONS, "tls.allow_insecure_key_permissions", K_BOOL, "false", NULL, "read private keys that group or others can read") \
	X(TG_CFG_TLS_MIN_VERSION, "tls.min_version", K_ENUM, "1.2", "1.2|1.3", "lowest TLS version accepted") \
	X(TG_CFG_TLS_GROUPS, "tls.groups", K_LIST, "", NULL, "key-exchange groups, preferred first; default X25519MLKEM768 (where OpenSSL has it), X25519, P-256, P-384") \
	X(TG_CFG_PROXY_PROTOCOL_ACCEPT_FROM, "proxy_protocol.accept_from", K_LIST, "", NULL, "addresses or CIDRs (10.0.0.0/8) of load balancers in front of the listener; each must send a PROXY v1 or v2 header, whose client address is then used; others may not") \
	X(TG_CFG_TLS_ACME_DIRECTORY, "tls.acme.directory", K_STR, "https://acme-v02.api.letsencrypt.org/directory", NULL, "ACME directory URL") \
	X(TG_CFG_TLS_ACME_EMAIL, "tls.acme.email", K_STR, "", NULL, "ACME account contact") \
	X(TG_CFG_TLS_ACME_NAMES, "tls.acme.names", K_LIST, "", NULL, "names to order; default tls.names") \
	X(TG_CFG_TLS_ACME_CHALLENGE, "tls.acme.challenge", K_ENUM, "http-01", "http-01|tls-alpn-01|dns-01", "ACME challenge type") \
	X(TG_CFG_TLS_ACME_HTTP_LISTEN, "tls.acme.http_listen", K_ADDR, ":80", NULL, "where HTTP-01 answers are served") \
	X(TG_CFG_TLS_ACME_DNS_HOOK, "tls.acme.dns_hook", K_STR, "", NULL, "dns-01 hook: HOOK add|remove NAME VALUE") \
	X(TG_CFG_TLS_ACME_RENEW_BEFORE, "tls.acme.renew_before", K_DUR, "0s", NULL, "renew this long before expiry; 0: when a third of the lifetime is left (half under 10 days), or in the CA's renewal window") \
	X(TG_CFG_TLS_ACME_PROFILE, "tls.acme.profile", K_STR, "", NULL, "ACME profile to order (classic, tlsserver, shortlived, ...); must be one the CA's directory lists") \
	X(TG_CFG_TLS_ACME_CA_CERT, "tls.acme.ca_cert", K_PATH, "", NULL, "extra trust for the ACME server") \
	X(TG_CFG_TLS_ACME_EAB_KID, "tls.acme.eab_kid", K_STR, "", NULL, "external account binding key id") \
	X(TG_CFG_TLS_ACME_EAB_HMAC_KEY, "tls.acme.eab_hmac_key", K_STR, "", NULL, "external account binding HMAC key") \
	X(TG_CFG_TLS_ACME_AGREE_TERMS, "tls.acme.agree_terms", K_BOOL, "false", NULL, "you accept the ACME CA's terms of service") \
	X(TG_CFG_TLS_ACME_CHECK_INTERVAL, "tls.acme.check_interval", K_DUR, "60m", NULL, "renewal checks at random times between half this and this") \
	X(TG_CFG_TLS_CLIENTS_TRUST, "tls.clients.trust", K_ENUM, "ca", "ca|tofu|whitelist|ca-or-tofu|insecure-no-validation", "how client certificates are judged (mutual mode)") \
	X(TG_CFG_TLS_CLIENTS_CA, "tls.clients.ca", K_PATH, "", NULL, "CA file or folder of PEM files for client certificates") \
	X(TG_CFG_TLS_CLIENTS_KNOWN, "tls.clients.known", K_SPATH, "known-clients", NULL, "client fingerprint store") \
	X(TG_CFG_TLS_CLIENTS_CRL, "tls.clients.crl", K_PATH, "", NULL, "CRLs (a PEM or DER file, or a folder) client certificates are checked against; reloaded when it changes") \
	X(TG_CFG_TLS_CLIENTS_CRL_POLICY, "tls.clients.crl_policy", K_ENUM, "hard", "hard|soft", "hard: no current CRL for a client's CA refuses it; soft: lets it pass (a listed revocation always refuses)") \
	X(TG_CFG_TLS_CLIENTS_ALLOW, "tls.clients.allow", K_LIST, "", NULL, "identity allow-list: cn:, dns:, uri: patterns") \
	X(TG_CFG_CLIENT_TRUST, "client.trust", K_ENUM, "ca", "ca|tofu|whitelist|ca-or-tofu|insecure-no-validation", "how servers are judged when connecting out") \
	X(TG_CFG_CLIENT_CA, "client.ca", K_PATH, "", NULL, "CA file or folder; default system roots plus the local CA") \
	X(TG_CFG_CLIENT_KNOWN, "client.known", K_SPATH, "known-servers", NULL, "server fingerprint store") \
	X(TG_CFG_CLIENT_SERVER_NAME, "client.server_name", K_STR, "", NULL, "name to verify and send in SNI") \
	X(TG_CFG_CLIENT_CERT, "client.cert", K_PATH, "", NULL, "client certificate for servers that require one") \
	X(TG_CFG_CLIENT_KEY, "client.key", K_PATH, "", NULL, "key of client.cert") \
	X(TG_CFG_CLIENT_CRL, "client.crl", K_PATH, "", NULL, "CRLs servers' certificates are checked against when connecting out (tunnels, proxy, get/put)") \
	X(TG_CFG_CLIENT_CRL_POLICY, "client.crl_policy", K_ENUM, "hard", "hard|soft", "as tls.clients.crl_policy, for client.crl") \
	X(TG_CFG_CLIENT_GROUPS, "client.groups", K_LIST, "", NULL, "key-exchange groups offered when connecting out; default as tls.groups") \
	X(TG_CFG_FILES_ENABLED, "files.enabled", K_BOOL, "true", NULL, "serve the file transfer service") \
	X(TG_CFG_FILES_PREFIX, "files.prefix", K_STR, "/files/", NULL, "URL prefix of the file service") \
	X(TG_CFG_FILES_ROOT, "files.root", K_SPATH, "files", NULL, "folder the file service stores into") \
	X(TG_CFG_FILES_MAX_UPLOAD, "files.max_upload", K_SIZE, "1GiB", NULL, "largest upload accepted (413 above)") \
	X(TG_CFG_ADMIN_LISTEN, "admin.listen", K_ADDR, "127.0.0.1:9090", NULL, "plain-HTTP listener for /metrics and /status; off to disable") \
	X(TG_CFG_CA_ACME_LISTEN, "ca.acme.listen", K_ADDR, "off", NULL, "HTTPS listener of the ACME CA (tlsgate ca serve); the directory is https://HOST:PORT/acme/directory; off: none") \
	X(TG_CFG_CA_ACME_CA_DIR, "ca.acme.ca_dir", K_PATH, "", NULL, "the CA it signs with (ca.crt, ca.key); default state_dir/ca") \
	X(TG_CFG_CA_ACME_LIFETIME, "ca.acme.lifetime", K_DUR, "24h", NULL, "lifetime of the certificates it issues (an enrolment may set its own)") \
	X(TG_CFG_CA_ACME_ALLOW, "ca.acme.allow", K_LIST, "", NULL, "names accounts without external account binding may get (*.fleet.example, ip:10.0.0.0/8); empty: every account needs a key from tlsgate ca enroll") \
	X(TG_CFG_CA_ACME_CHALLENGES, "ca.acme.challenges", K_LIST, "http-01,tls-alpn-01,dns-01", NULL, "challenges offered") \
	X(TG_CFG_CA_ACME_HTTP_PORT, "ca.acme.http_port", K_INT, "80", NULL, "port HTTP-01 is checked on") \
	X(TG_CFG_CA_ACME_TLS_PORT, "ca.acme.tls_port", K_INT, "443", NULL, "port TLS-ALPN-01 is checked on") \
	X(TG_CFG_CA_ACME_RESOLVER, "ca.acme.resolver", K_STR, "", NULL, "DNS server (IPv4[:PORT]) names are resolved with for validations and DNS-01; empty: the system's") \
	X(TG_CFG_TIMEOUTS_HANDSHAKE, "timeouts.handshake", K_DUR, "10s", NULL, "TLS handshake must finish within") \
	X(TG_CFG_TIMEOUTS_HEADER, "timeouts.header", K_DUR, "30s", NULL, "request head must arrive within") \
	X(TG_CFG_TIMEOUTS_BODY, "timeouts.body", K_DUR, "60s", NULL, "longest pause while a body is sent or received") \
	X(TG_CFG_TIMEOUTS_KEEPALIVE, "timeouts.keepalive", K_DUR, "60s", NULL, "idle keep-alive connections closed after") \
	X(TG_CFG_TIMEOUTS_SHUTDOWN, "timeouts.shutdown", K_DUR, "30s", NULL, "on SIGTERM, requests in flight may finish within") \
	X(TG_CFG_WORKERS, "workers", K_STR, "1", NULL, "processes serving the listener (SO_REUSEPORT): a number up to 64, or auto (one per CPU)") \
	X(TG_CFG_LIMITS_MAX_CONNECTIONS, "limits.max_connections", K_INT, "10000", NULL, "open connections at most") \
	X(TG_CFG_LIMITS_MAX_CONNECTIONS_PER_IP, "limits.max_connections_per_ip", K_INT, "256", NULL, "open connections from one address at most (0: no limit)") \
	X(TG_CFG_LIMITS_MAX_HEADER_BYTES, "limits.max_header_bytes", K_SIZE, "16KiB", NULL, "largest request head") \
	X(TG_CFG_LIMITS_MAX_HEADERS, "limits.max_headers", K_INT, "64", NULL, "most header fields in a request")

enum tg_cfg_key {
#define TG_CFG_KEY_ID(id, name, type, def, choices, doc) id,
	TG_CONFIG_KEYS(TG_CFG_KEY_ID)
#undef TG_CFG_KEY_ID
	TG_CFG_NKEYS
};

/* The fields of a list's entries (tunnels.N.FIELD, proxy.N.FIELD), read by
 * tg_cfg_entry_*; a field the list does not have reads as unset. */
#define TG_CONFIG_FIELDS(X) \
	X(TG_FIELD_LISTEN, "listen") \
	X(TG_FIELD_CONNECT, "connect") \
	X(TG_FIELD_TLS_CONNECT, "tls_connect") \
	X(TG_FIELD_MODE, "mode") \
	X(TG_FIELD_TRUST, "trust") \
	X(TG_FIELD_CA, "ca") \
	X(TG_FIELD_KNOWN, "known") \
	X(TG_FIELD_SERVER_NAME, "server_name") \
	X(TG_FIELD_CERT, "cert") \
	X(TG_FIELD_KEY, "key") \
	X(TG_FIELD_IDLE_TIMEOUT, "idle_timeout") \
	X(TG_FIELD_MAX_CONNECTIONS, "max_connections") \
	X(TG_FIELD_PREFIX, "prefix") \
	X(TG_FIELD_UPSTREAM, "upstream") \
	X(TG_FIELD_CONNECT_TIMEOUT, "connect_timeout") \
	X(TG_FIELD_FIRST_BYTE_TIMEOUT, "first_byte_timeout") \
	X(TG_FIELD_ALPN, "alpn") \
	X(TG_FIELD_GROUPS, "groups") \
	X(TG_FIELD_PROXY_PROTOCOL, "proxy_protocol") \
	X(TG_FIELD_CRL, "crl")

enum tg_cfg_field {
#define TG_CFG_FIELD_ID(id, name) id,
	TG_CONFIG_FIELDS(TG_CFG_FIELD_ID)
#undef TG_CFG_FIELD_ID
	TG_CFG_NFIELDS
};

#endif
