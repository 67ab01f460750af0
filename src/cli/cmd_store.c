/*
 * tlsgate store: where the state lives, seen and moved.
 *
 *   store copy --from folder:PATH|etcd://... --to folder:PATH|etcd://... [--force]
 *   store list [--from ...]     every name, one a line
 *   store check [--from ...]    can the store be read and written, and locked
 *
 * A side is "folder:PATH" (a state_dir) or "etcd://HOST:PORT[,HOST:PORT]"
 * (https to each; store.prefix, store.ca, store.cert and store.key from the
 * configuration, --config or --set as everywhere); no side at all means the
 * store the configuration names. Copies are byte for byte and refuse to
 * overwrite a name that exists with other bytes unless --force.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "config_int.h"
#include "error.h"
#include "pins.h"
#include "store.h"
#include "store_etcd.h"
#include "util.h"

static const char store_usage[] =
"usage: tlsgate store copy --from SIDE --to SIDE [--force] [--config FILE] [--set K=V]\n"
"       tlsgate store list [--from SIDE]\n"
"       tlsgate store check [--from SIDE]\n"
"\n"
"SIDE is folder:PATH (a state_dir) or etcd://HOST:PORT[,HOST:PORT...]; etcd is\n"
"reached over https with store.ca, store.cert, store.key and store.prefix from\n"
"the configuration. Without --from, the store the configuration names\n"
"(store.backend). copy moves every name byte for byte and refuses to replace a\n"
"name that holds other bytes unless --force; it never deletes.\n";

static struct tg_store *
open_side(const char *side, const struct tg_config *cfg, struct tg_err *err)
{
	char eps[2048] = "", path[PATH_MAX];
	const char *p;
	size_t n = 0;

	if (side == NULL)
		return tg_store_open(cfg, err);
	if (!strncmp(side, "folder:", 7)) {
		if (tg_path_expand(path, sizeof(path), side + 7) < 0)
			return tg_err_set(err, TG_E_USAGE, "%s: path too long", side), NULL;
		return tg_store_fs_open(path, err);
	}
	if (strncmp(side, "etcd://", 7) != 0)
		return tg_err_set(err, TG_E_USAGE, "'%s' is neither folder:PATH nor etcd://HOST:PORT",
		    side), NULL;
	for (p = side + 7; *p;) {
		size_t l = strcspn(p, ",");
		if (l > 0 && n + l + 10 >= sizeof(eps))
			return tg_err_set(err, TG_E_USAGE, "%s: too many endpoints", side), NULL;
		if (l > 0)
			n += (size_t)snprintf(eps + n, sizeof(eps) - n, "%shttps://%.*s", n ? "," : "",
			    (int)l, p);
		p += l + (p[l] == ',');
	}
	{
		struct tg_store_conf sc;
		tg_store_conf_from(cfg, &sc);
		snprintf(sc.endpoints, sizeof(sc.endpoints), "%s", eps);
		return tg_store_etcd_open_conf(&sc, err);
	}
}

/* A top-level name left out: the file service's root inside state_dir
 * holds users' files, not tlsgate's state. */
static char skip_top[256];

/* Calls fn for every name below prefix, depth first; a listed name that
 * lists names of its own is a folder. */
static int
walk(struct tg_store *st, const char *prefix, int depth,
    int (*fn)(const char *name, void *arg), void *arg, struct tg_err *err)
{
	char **names = tg_store_list(st, prefix, err), **sub, full[1024];
	size_t i, j;
	int rv = 0;

	if (names == NULL)
		return -1;
	for (i = 0; names[i] && rv == 0; i++) {
		unsigned char *b;
		size_t bl;
		int got;
		if (depth == 0 && skip_top[0] && !strcmp(names[i], skip_top))
			continue;
		/* a cluster's pins (one key an identity) go into their known
		 * file (copy_one); a node's copy of them (NAME.pins) likewise */
		if (depth == 0 && tg_store_is_etcd(st) && !strcmp(names[i], "pins"))
			continue;
		if (!tg_store_is_etcd(st) && strlen(names[i]) > 5 &&
		    !strcmp(names[i] + strlen(names[i]) - 5, ".pins"))
			continue;
		if (snprintf(full, sizeof(full), "%s%s%s", prefix, prefix[0] ? "/" : "",
		    names[i]) >= (int)sizeof(full)) {
			rv = tg_err_set(err, TG_E_IO, "%s/%s: name too long", prefix, names[i]);
			break;
		}
		/* a value, a folder, or (etcd) both; anything else stops the walk:
		 * a name silently left out would be state lost */
		got = tg_store_get(st, full, &b, &bl, err) == 0;
		if (got) {
			tg_free_secret(b, bl);
			rv = fn(full, arg);
		} else if (err->code != TG_E_NOT_FOUND) {
			rv = -1;
			break;
		}
		if (rv == 0 && (sub = tg_store_list(st, full, err)) != NULL) {
			int folder = sub[0] != NULL;
			for (j = 0; sub[j]; j++)
				free(sub[j]);
			free(sub);
			if (folder && depth >= 16)
				rv = tg_err_set(err, TG_E_IO, "%s: folders nested too deep", full);
			else if (folder)
				rv = walk(st, full, depth + 1, fn, arg, err);
		} else if (rv == 0) {
			rv = -1;
		}
	}
	for (i = 0; names[i]; i++)
		free(names[i]);
	free(names);
	return rv;
}

struct copy_arg {
	struct tg_store *from, *to;
	int force;
	size_t copied, same;
	struct tg_err *err;
};

/* Names that hold keys: secret on the other side too. */
static int
is_secret(const char *name)
{
	size_t l = strlen(name);
	return l > 4 && !strcmp(name + l - 4, ".key");
}

/* A name's bytes; a known file with its pins: from etcd the identities'
 * keys after the file, from a cluster node's state_dir its NAME.pins after
 * it. Without pins, exactly the value: a copy and back is byte-identical. */
static int
read_whole(struct tg_store *st, const char *name, unsigned char **b, size_t *bl,
    struct tg_err *err)
{
	char jname[1100], *pins = NULL;
	unsigned char *j = NULL, *nb;
	size_t jl = 0, l = strlen(name);
	struct tg_err e2;

	if (tg_store_get(st, name, b, bl, err) < 0)
		return -1;
	if (l > 4 && !strcmp(name + l - 4, ".key"))
		return 0;   /* a key is never a known file */
	if (tg_store_is_etcd(st)) {
		if (tg_known_etcd_pins(st, name, &pins, &jl, NULL, err) < 0) {
			tg_free_secret(*b, *bl);
			return -1;
		}
		j = (unsigned char *)pins;
	} else {
		snprintf(jname, sizeof(jname), "%s.pins", name);
		if (tg_store_get(st, jname, &j, &jl, &e2) < 0)
			return 0;
	}
	if (jl == 0) {
		free(pins);
		if (!pins)
			OPENSSL_free(j);
		return 0;
	}
	if ((nb = OPENSSL_malloc(*bl + jl + 2)) == NULL) {
		tg_free_secret(*b, *bl);
		if (pins)
			free(pins);
		else
			OPENSSL_free(j);
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	}
	memcpy(nb, *b, *bl);
	l = *bl;
	if (l && nb[l - 1] != '\n')
		nb[l++] = '\n';
	memcpy(nb + l, j, jl);
	l += jl;
	nb[l] = '\0';
	tg_free_secret(*b, *bl);
	if (pins)
		free(pins);
	else
		OPENSSL_free(j);
	*b = nb;
	*bl = l;
	return 0;
}

static int
copy_one(const char *name, void *arg)
{
	struct copy_arg *a = arg;
	unsigned char *b = NULL, *old = NULL;
	size_t bl = 0, ol = 0;
	struct tg_err e2;
	int rv = -1;

	if (read_whole(a->from, name, &b, &bl, a->err) < 0)
		return -1;
	if (tg_store_get(a->to, name, &old, &ol, &e2) == 0) {
		int same = ol == bl && memcmp(old, b, bl) == 0;
		tg_free_secret(old, ol);
		if (same) {
			a->same++;
			rv = 0;
			goto out;
		}
		if (!a->force) {
			tg_err_set(a->err, TG_E_EXISTS, "%s exists on the target with other bytes; "
			    "nothing after it was copied (--force replaces)", name);
			goto out;
		}
	} else if (e2.code != TG_E_NOT_FOUND) {
		*a->err = e2;
		goto out;
	}
	if (tg_store_put(a->to, name, b, bl, is_secret(name) ? TG_STORE_SECRET : 0, a->err) < 0)
		goto out;
	a->copied++;
	rv = 0;
out:
	tg_free_secret(b, bl);
	return rv;
}

static int
print_one(const char *name, void *arg)
{
	printf("%s\n", name);
	return 0;
}

int
cmd_store(int argc, char **argv)
{
	struct cli_cfg_flags f;
	struct tg_config *cfg;
	struct tg_store *from = NULL, *to = NULL;
	struct tg_err err;
	const char *sfrom = NULL, *sto = NULL, *v, *what;
	int i, miss = 0, force = 0, r, rc = 1;

	if (argc < 2 || cli_is_help(argv[1])) {
		fputs(store_usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	what = argv[1];
	memset(&f, 0, sizeof(f));
	for (i = 2; i < argc; i++) {
		if (cli_is_help(argv[i])) {
			fputs(store_usage, stdout);
			return 0;
		}
		if ((v = cli_flag(argc, argv, &i, "--from", &miss)) != NULL)
			sfrom = v;
		else if ((v = cli_flag(argc, argv, &i, "--to", &miss)) != NULL)
			sto = v;
		else if (!strcmp(argv[i], "--force"))
			force = 1;
		else if (!miss && (r = cli_cfg_flag(&f, argc, argv, &i)) != 0) {
			if (r < 0)
				return 1;
		} else
			return cli_fail("store: %s %s; see `tlsgate store --help`", miss ?
			    "missing value for" : "unknown argument", argv[i]);
		if (miss)
			return cli_fail("store: missing value for %s", argv[i]);
	}
	if ((cfg = cli_load_config(&f, &err)) == NULL)
		return cli_fail_err(&err);
	if (!strchr(tg_cfg_str(cfg, TG_CFG_FILES_ROOT), '/'))
		snprintf(skip_top, sizeof(skip_top), "%s", tg_cfg_str(cfg, TG_CFG_FILES_ROOT));
	if ((from = open_side(sfrom, cfg, &err)) == NULL)
		goto fail;
	if (!strcmp(what, "list")) {
		if (walk(from, "", 0, print_one, NULL, &err) < 0)
			goto fail;
		rc = 0;
	} else if (!strcmp(what, "check")) {
		static const char probe[] = ".check";
		unsigned char *b;
		size_t bl;
		if (tg_store_lock(from, "check", 5000, &err) < 0 ||
		    tg_store_put(from, "check-probe", probe, sizeof(probe) - 1, 0, &err) < 0 ||
		    tg_store_get(from, "check-probe", &b, &bl, &err) < 0)
			goto fail;
		r = bl != sizeof(probe) - 1 || memcmp(b, probe, bl) != 0;
		tg_free_secret(b, bl);
		if (tg_store_delete(from, "check-probe", &err) < 0)
			goto fail;
		if (r) {
			cli_fail("store %s: what was read back is not what was written", tg_store_path(from));
			goto out;
		}
		tg_store_unlock(from, "check");
		printf("store %s: reachable, writable, lockable\n", tg_store_path(from));
		rc = 0;
	} else if (!strcmp(what, "copy")) {
		struct copy_arg a = { .force = force, .err = &err };
		if (sto == NULL) {
			cli_fail("store copy: --to is missing (folder:PATH or etcd://HOST:PORT)");
			goto out;
		}
		if ((to = open_side(sto, cfg, &err)) == NULL)
			goto fail;
		a.from = from;
		a.to = to;
		if (walk(from, "", 0, copy_one, &a, &err) < 0) {
			fprintf(stderr, "tlsgate: store copy: %s (%zu copied before)\n", err.msg, a.copied);
			goto out;
		}
		printf("copied %zu names from %s to %s (%zu already there, identical)\n", a.copied,
		    tg_store_path(from), tg_store_path(to), a.same);
		rc = 0;
	} else {
		cli_fail("store: unknown command %s; see `tlsgate store --help`", what);
	}
	goto out;
fail:
	cli_fail_err(&err);
out:
	tg_store_free(from);
	tg_store_free(to);
	tg_config_free(cfg);
	return rc;
}
