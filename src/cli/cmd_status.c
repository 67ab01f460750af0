/*
 * tlsgate status: what a running server says on its admin listener's
 * /status, for a person (--json for the raw document).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "client.h"
#include "config_int.h"

static const char status_usage[] =
"usage: tlsgate status [--admin ADDR] [--json] [--config FILE] [--set KEY=VALUE]\n"
"Asks the running server at admin.listen (or ADDR) for its status: listeners,\n"
"certificates with days left, known files, connections.\n";

static void
ymd(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d", &tm);
}

static void
print_status(json_t *j)
{
	json_t *v;
	size_t i;
	char d[32];
	long long up = (long long)time(NULL) - json_integer_value(json_object_get(j, "started"));

	printf("tlsgate %s, up %lldh%02lldm%02llds\n", json_string_value(json_object_get(j, "version")),
	    up / 3600, up / 60 % 60, up % 60);
	json_array_foreach(json_object_get(j, "listeners"), i, v)
		printf("listener:      %s (%s)\n", json_string_value(json_object_get(v, "address")),
		    json_object_get(v, "tls") ? json_string_value(json_object_get(v, "tls")) : "admin");
	json_array_foreach(json_object_get(j, "certificates"), i, v) {
		ymd(json_integer_value(json_object_get(v, "not_after")), d, sizeof(d));
		printf("certificate:   %s, expires %s (%lld days left), %s\n",
		    json_string_value(json_object_get(v, "name")), d,
		    (long long)json_integer_value(json_object_get(v, "days_left")),
		    json_string_value(json_object_get(v, "source")));
	}
	json_array_foreach(json_object_get(j, "known_files"), i, v)
		printf("%-14s %s, %lld entries (trust %s)\n", json_string_value(json_object_get(v, "store")),
		    json_string_value(json_object_get(v, "path")),
		    (long long)json_integer_value(json_object_get(v, "entries")),
		    json_string_value(json_object_get(v, "trust")));
	v = json_object_get(j, "store");
	if (json_is_object(v) && !strcmp(json_string_value(json_object_get(v, "backend")) ?
	    json_string_value(json_object_get(v, "backend")) : "", "etcd")) {
		long long lag = (long long)json_integer_value(json_object_get(v, "lag_seconds"));
		const char *eps = json_string_value(json_object_get(v, "endpoints"));
		char copy[64] = "current";
		if (lag > 0)
			snprintf(copy, sizeof(copy), "%lld s behind", lag);
		printf("store:         etcd %s, %s, %.0f ms; this node's copy %s\n", eps ? eps : "?",
		    json_is_true(json_object_get(v, "up")) ? "up" : "DOWN (writes refused)",
		    json_number_value(json_object_get(v, "latency_ms")), copy);
		if (json_string_length(json_object_get(v, "last_error")))
			printf("store error:   %s\n", json_string_value(json_object_get(v, "last_error")));
	}
	v = json_object_get(j, "acme");
	if (json_is_object(v)) {
		char nc[32];
		ymd(json_integer_value(json_object_get(v, "next_check")), nc, sizeof(nc));
		printf("acme:          %s, %lld obtained, %lld renewed, %lld failed; next check %s\n",
		    json_string_value(json_object_get(v, "state")),
		    (long long)json_integer_value(json_object_get(v, "orders_ok")),
		    (long long)json_integer_value(json_object_get(v, "renewals_ok")),
		    (long long)json_integer_value(json_object_get(v, "failures")), nc);
		if (json_string_length(json_object_get(v, "last_error")))
			printf("acme error:    %s\n", json_string_value(json_object_get(v, "last_error")));
	}
	v = json_object_get(j, "connections");
	printf("connections:   %lld open, %lld since start\n",
	    (long long)json_integer_value(json_object_get(v, "open")),
	    (long long)json_integer_value(json_object_get(v, "total")));
}

int
cmd_status(int argc, char **argv)
{
	struct cli_client cl;
	struct tg_client_opts o;
	struct tg_err err;
	const char *admin = NULL, *v;
	char url[400], addr[300];
	int i, r, missing = 0, raw = 0, status = 0, fd;
	FILE *f;
	json_t *j;
	json_error_t jerr;

	memset(&cl, 0, sizeof(cl));
	for (i = 1; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(status_usage, stdout);
			return 0;
		}
		if ((v = cli_flag(argc, argv, &i, "--admin", &missing))) {
			admin = v;
		} else if (!strcmp(argv[i], "--json")) {
			raw = 1;
		} else if (missing) {
			return cli_fail("--admin needs an address");
		} else if ((r = cli_client_flag(&cl, argc, argv, &i)) <= 0) {
			return r < 0 ? 1 : cli_fail("status: unknown argument %s", argv[i]);
		}
	}
	if (cli_client_opts(&cl, &o, &err) < 0)
		return cli_fail_err(&err);
	if (admin == NULL) {
		struct tg_config *cfg = cli_load_config(&cl.cfg, &err);
		if (cfg == NULL)
			return cli_fail_err(&err);
		snprintf(addr, sizeof(addr), "%s", tg_cfg_str(cfg, TG_CFG_ADMIN_LISTEN));
		tg_config_free(cfg);
		admin = addr;
	}
	if (!strcmp(admin, "off"))
		return cli_fail("admin.listen is off: the server has no status to ask for");
	snprintf(url, sizeof(url), "http://%s%s/status", admin[0] == ':' ? "127.0.0.1" : "", admin);
	if ((f = tmpfile()) == NULL)
		return cli_fail("cannot make a temporary file");
	fd = fileno(f);
	if (tg_http_fetch("GET", url, &o, cl.store, -1, 0, fd, &status, &err) < 0) {
		fclose(f);
		return cli_fail("%s (is tlsgate serve running with admin.listen %s?)", err.msg, admin);
	}
	rewind(f);
	j = json_loadf(f, 0, &jerr);
	fclose(f);
	if (j == NULL)
		return cli_fail("%s: not a status document (%s)", url, jerr.text);
	if (raw) {
		json_dumpf(j, stdout, JSON_INDENT(2));
		putchar('\n');
	} else {
		print_status(j);
	}
	json_decref(j);
	return 0;
}
