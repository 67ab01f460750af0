/*
 * The configuration model: one table of every key drives defaults,
 * validation, environment names, `config list` and error messages. Values
 * are validated when set (the defaults go through the same setter), and
 * each remembers its origin so that a bad value is reported where the user
 * wrote it.
 */
#include <ctype.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_int.h"
#include "error.h"
#include "util.h"

enum ktype { K_STR, K_PATH, K_SPATH, K_BOOL, K_INT, K_SIZE, K_DUR, K_ENUM, K_LIST, K_ADDR };

struct keydef {
	const char *name;
	enum ktype type;
	const char *def;        /* NULL: computed (state_dir) */
	const char *choices;    /* K_ENUM: "a|b|c" */
	const char *doc;
};

static const struct keydef keys[] = {
#define KEYDEF(id, name, type, def, choices, doc) [id] = { name, type, def, choices, doc },
	TG_CONFIG_KEYS(KEYDEF)
#undef KEYDEF
};
_Static_assert(sizeof(keys) / sizeof(keys[0]) == TG_CFG_NKEYS, "every key id has a row");

static const char *const field_names[] = {
#define FIELD_NAME(id, name) [id] = name,
	TG_CONFIG_FIELDS(FIELD_NAME)
#undef FIELD_NAME
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))


/* Lists of entries (tunnels): keys LIST.N.FIELD, N counted from 0, each
 * field typed like a key above. "" as a default means "not set". */
static const char *const entry_lists[] = { "tunnels", "proxy" };
#define MAX_ENTRIES 64

static const struct keydef entry_keys[] = {
	{ "tunnels.listen", K_ADDR, "", NULL, "where the tunnel accepts connections" },
	{ "tunnels.connect", K_ADDR, "", NULL, "where it connects for each of them" },
	{ "tunnels.tls_connect", K_BOOL, "false", NULL, "false: accept TLS, connect plain; true: accept plain, connect with TLS" },
	{ "tunnels.mode", K_ENUM, "server", "server|mutual", "accepting TLS: require client certificates (mutual) or not" },
	{ "tunnels.trust", K_ENUM, "", "|ca|tofu|whitelist|ca-or-tofu|insecure-no-validation", "how the TLS peer is judged; default tls.clients.trust / client.trust" },
	{ "tunnels.ca", K_PATH, "", NULL, "CA file or folder for the TLS peer; default tls.clients.ca / client.ca" },
	{ "tunnels.known", K_STR, "", NULL, "known file for the pinning modes; default known-clients / known-servers" },
	{ "tunnels.server_name", K_STR, "", NULL, "tls_connect: the name to verify and send in SNI" },
	{ "tunnels.cert", K_PATH, "", NULL, "tls_connect: client certificate; default client.cert" },
	{ "tunnels.key", K_PATH, "", NULL, "tls_connect: its key; default client.key" },
	{ "tunnels.idle_timeout", K_DUR, "5m", NULL, "a connection with no bytes either way is closed after" },
	{ "tunnels.max_connections", K_INT, "1000", NULL, "connections through this tunnel at most" },
	{ "tunnels.alpn", K_LIST, "", NULL, "ALPN protocols, preferred first (h2, http/1.1); accepting TLS: the ones selected, others refused; tls_connect: the ones offered, the upstream must select one; default none (docs/tunnels.md)" },
	{ "tunnels.crl", K_PATH, "", NULL, "CRLs the TLS peer's certificate is checked against; default tls.clients.crl / client.crl (and their policy)" },
	{ "tunnels.groups", K_LIST, "", NULL, "key-exchange groups of the TLS side; default tls.groups / client.groups" },
	{ "tunnels.proxy_protocol", K_ENUM, "off", "off|v1|v2", "send a PROXY header to the upstream first: the client's address (v2: and what TLS verified)" },
	{ "proxy.prefix", K_STR, "", NULL, "requests whose path starts with this go to the upstream" },
	{ "proxy.upstream", K_STR, "", NULL, "http:// or https:// URL; the prefix is replaced by its path" },
	{ "proxy.headers.*", K_STR, "", NULL, "extra request header NAME: value, or @FILE (read again when it changes)" },
	{ "proxy.connect_timeout", K_DUR, "5s", NULL, "connect and TLS handshake to the upstream within (else 502)" },
	{ "proxy.first_byte_timeout", K_DUR, "60s", NULL, "the upstream's answer must start within (else 504)" },
	{ "proxy.idle_timeout", K_DUR, "60s", NULL, "a transfer with no bytes either way is cut after" },
	{ "proxy.trust", K_ENUM, "", "|ca|tofu|whitelist|ca-or-tofu|insecure-no-validation", "how the upstream is judged; default client.trust" },
	{ "proxy.ca", K_PATH, "", NULL, "CA file or folder for the upstream; default client.ca" },
	{ "proxy.known", K_STR, "", NULL, "known file for the pinning modes; default known-servers" },
	{ "proxy.server_name", K_STR, "", NULL, "name to verify and send in SNI; default the URL's host" },
	{ "proxy.cert", K_PATH, "", NULL, "client certificate for the upstream; default client.cert" },
	{ "proxy.key", K_PATH, "", NULL, "its key; default client.key" },
	{ "proxy.proxy_protocol", K_ENUM, "off", "off|v1|v2", "send a PROXY header on each upstream connection (they are then not reused across clients)" },
};
#define NENTRY_KEYS (sizeof(entry_keys) / sizeof(entry_keys[0]))

struct value {
	char *text;             /* normalised text; lists joined by "," */
	int64_t num;
	char **items;           /* K_LIST */
	size_t nitems;
	char origin[320];
};

struct entry_value {
	char key[96];           /* "tunnels.0.listen" */
	size_t def;             /* index in entry_keys */
	struct value v;
};

struct tg_config {
	struct value v[NKEYS];
	struct entry_value *ev;
	size_t nev;
	char file[PATH_MAX];
};

/* "tunnels.3.listen" -> its definition, the list and the index. */
static const struct keydef *
find_entry_key(const char *key, size_t *def, size_t *index)
{
	size_t i, j, ln;
	char *end;
	unsigned long n;

	for (i = 0; i < sizeof(entry_lists) / sizeof(entry_lists[0]); i++) {
		ln = strlen(entry_lists[i]);
		if (strncmp(key, entry_lists[i], ln) != 0 || key[ln] != '.' ||
		    !isdigit((unsigned char)key[ln + 1]))
			continue;
		n = strtoul(key + ln + 1, &end, 10);
		if (*end != '.' || n >= MAX_ENTRIES || (key[ln + 1] == '0' && end != key + ln + 2))
			return NULL;
		for (j = 0; j < NENTRY_KEYS; j++) {
			const char *f = entry_keys[j].name + ln + 1;
			size_t fl = strlen(f);
			int wild = fl > 2 && !strcmp(f + fl - 2, ".*");
			if (strncmp(entry_keys[j].name, key, ln + 1) != 0)
				continue;
			/* "headers.*": any header name after "headers." */
			if (wild ? !strncmp(f, end + 1, fl - 1) && end[fl] != '\0' &&
			    !strchr(end + fl, '.') : !strcmp(f, end + 1)) {
				if (def)
					*def = j;
				if (index)
					*index = n;
				return &entry_keys[j];
			}
		}
		return NULL;
	}
	return NULL;
}

static const struct keydef *
find_key(const char *name, size_t *idx)
{
	size_t i;

	for (i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			if (idx)
				*idx = i;
			return &keys[i];
		}
	}
	return NULL;
}

int
tg_config_key_known(const char *key)
{
	size_t i, n = strlen(key);

	if (find_key(key, NULL))
		return 1;
	for (i = 0; i < NKEYS; i++)
		if (strncmp(keys[i].name, key, n) == 0 && keys[i].name[n] == '.')
			return 2;
	for (i = 0; i < sizeof(entry_lists) / sizeof(entry_lists[0]); i++)
		if (strcmp(key, entry_lists[i]) == 0)
			return 4;
	if (find_entry_key(key, NULL, NULL))
		return 1;
	if (n > 8 && !strcmp(key + n - 8, ".headers")) {
		char probe[128];
		snprintf(probe, sizeof(probe), "%s.X", key);
		if (find_entry_key(probe, NULL, NULL))
			return 2;
	}
	return 0;
}

int
tg_config_key_is_list(const char *key)
{
	const struct keydef *k = find_key(key, NULL);

	if (k == NULL)
		k = find_entry_key(key, NULL, NULL);
	return k && k->type == K_LIST;
}

const char *
tg_config_key(size_t i, const char **doc)
{
	if (i >= NKEYS)
		return NULL;
	if (doc)
		*doc = keys[i].doc;
	return keys[i].name;
}

static void
value_clear(struct value *v)
{
	size_t i;

	for (i = 0; i < v->nitems; i++)
		free(v->items[i]);
	free(v->items);
	free(v->text);
	memset(v, 0, sizeof(*v));
}

static int
set_list(struct value *v, const char *text)
{
	const char *p = text;
	char *joined;
	size_t cap = 0;

	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		while (n && isspace((unsigned char)*p))
			p++, n--;
		while (n && isspace((unsigned char)p[n - 1]))
			n--;
		if (n) {
			if (v->nitems == cap) {
				char **ni = realloc(v->items, (cap = cap ? cap * 2 : 4) * sizeof(*ni));
				if (ni == NULL)
					return -1;
				v->items = ni;
			}
			if ((v->items[v->nitems] = strndup(p, n)) == NULL)
				return -1;
			v->nitems++;
		}
		if (e == NULL)
			break;
		p = e + 1;
	}
	/* normalised text: items joined by "," */
	joined = calloc(1, strlen(text) + 1);
	if (joined == NULL)
		return -1;
	for (cap = 0; cap < v->nitems; cap++) {
		if (cap)
			strcat(joined, ",");
		strcat(joined, v->items[cap]);
	}
	v->text = joined;
	return 0;
}

static int
enum_ok(const char *choices, const char *val)
{
	size_t n = strlen(val);
	const char *p = choices;

	while (p) {
		const char *e = strchr(p, '|');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l == n && strncmp(p, val, n) == 0)
			return 1;
		p = e ? e + 1 : NULL;
	}
	return 0;
}

/* The stored value of an entry key, made empty when new. */
static struct value *
entry_slot(struct tg_config *cfg, const char *key, size_t def)
{
	struct entry_value *n;
	size_t i;

	for (i = 0; i < cfg->nev; i++)
		if (!strcmp(cfg->ev[i].key, key))
			return &cfg->ev[i].v;
	if ((n = realloc(cfg->ev, (cfg->nev + 1) * sizeof(*n))) == NULL)
		return NULL;
	cfg->ev = n;
	memset(&n[cfg->nev], 0, sizeof(n[0]));
	snprintf(n[cfg->nev].key, sizeof(n[0].key), "%s", key);
	n[cfg->nev].def = def;
	return &n[cfg->nev++].v;
}

/* A key that is in neither table: said in the words that help (a list
 * set whole, a section set as a value, a typo); 0 for an empty list. */
static int
unknown_key(const char *key, const char *value, const char *origin, struct tg_err *err)
{
	if (tg_config_key_known(key) == 4 && value[0] == '\0')
		return 0;   /* "tunnels: []" */
	if (tg_config_key_known(key) == 4)
		return tg_err_set(err, TG_E_CONFIG_KEY, "%s (%s): is a list of entries; in the "
		    "file write one mapping per entry, with flags --set %s.0.%s=...", key,
		    origin, key, strcmp(key, "proxy") ? "listen" : "prefix");
	if (tg_config_key_known(key) == 2)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): is a section, "
		    "not a value; set one of its keys (tlsgate config list)", key, origin);
	return tg_err_set(err, TG_E_CONFIG_KEY, "%s (%s): unknown key; "
	    "see `tlsgate config list` for the known ones", key, origin);
}

/* A value its key's type does not take, in words that say what would do. */
static int
bad_value(const struct keydef *k, const char *key, const char *value, const char *origin,
    struct tg_err *err)
{
	switch (k->type) {
	case K_BOOL:
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): '%s' is not a boolean; "
		    "use true or false", key, origin, value);
	case K_INT:
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): '%s' is not a whole number",
		    key, origin, value);
	case K_SIZE:
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): '%s' is not a size; use "
		    "bytes or a number with KiB, MiB or GiB", key, origin, value);
	case K_DUR:
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): '%s' is not a duration; "
		    "use a number with s, m, h or d (e.g. 30s, 30d)", key, origin, value);
	case K_ENUM:
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): '%s' is not one of %s",
		    key, origin, value, k->choices);
	case K_ADDR:
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): '%s' is not an address; "
		    "use HOST:PORT, [IPv6]:PORT or :PORT", key, origin, value);
	default:
		return tg_err_set(err, TG_E_CONFIG_VALUE, "%s (%s): bad value '%s'",
		    key, origin, value);
	}
}

/* Checks and normalises *value for its key's type: *num its number, paths
 * resolved into path (PATH_MAX); -1 when the type does not take it. */
static int
parse_value(const struct keydef *k, const char *key, const char **value, int64_t *num,
    const char *basedir, char *path)
{
	const char *v = *value;
	char host[256], *end;
	long long n;
	int port;

	switch (k->type) {
	case K_BOOL:
		if (!strcmp(v, "true") || !strcmp(v, "yes") || !strcmp(v, "on") || !strcmp(v, "1"))
			*num = 1, *value = "true";
		else if (!strcmp(v, "false") || !strcmp(v, "no") || !strcmp(v, "off") ||
		    !strcmp(v, "0"))
			*num = 0, *value = "false";
		else
			return -1;
		return 0;
	case K_INT:
		n = strtoll(v, &end, 10);
		if (v[0] == '\0' || *end != '\0' || n < 0 || n > INT_MAX)
			return -1;
		*num = n;
		return 0;
	case K_SIZE:
		return tg_parse_size(v, num);
	case K_DUR:
		return tg_parse_duration(v, num);
	case K_ENUM:
		return enum_ok(k->choices, v) ? 0 : -1;
	case K_ADDR:
		if ((!strcmp(key, "admin.listen") || !strcmp(key, "ca.acme.listen")) && !strcmp(v, "off"))
			return 0;
		if (tg_parse_hostport(v, host, sizeof(host), &port) < 0)
			return -1;
		*num = port;
		return 0;
	case K_PATH:
		if (v[0] != '\0') {
			if (tg_path_join(path, PATH_MAX, basedir, v) < 0)
				return -1;
			*value = path;
		}
		return 0;
	case K_SPATH:
		if (v[0] != '\0' && tg_path_expand(path, PATH_MAX, v) == 0)
			*value = path;
		return (*value)[0] == '\0' ? -1 : 0;
	case K_STR:
	case K_LIST:
		return 0;
	}
	return -1;
}

/*
 * The one setter: one key (a plain key or a list entry's field), its value
 * replaced only when the new one is whole. basedir resolves relative
 * K_PATH values (the config file's folder); NULL keeps them as written
 * (relative to the working directory).
 */
int
tg_config_set_from(struct tg_config *cfg, const char *key, const char *value,
    const char *origin, const char *basedir, struct tg_err *err)
{
	const struct keydef *k;
	struct value nv, *slot = NULL;
	char path[PATH_MAX];
	size_t idx, edef = 0;
	int64_t num = 0;

	memset(&nv, 0, sizeof(nv));
	if ((k = find_key(key, &idx)) != NULL)
		slot = &cfg->v[idx];
	else if ((k = find_entry_key(key, &edef, NULL)) == NULL)
		return unknown_key(key, value, origin, err);
	else if ((slot = entry_slot(cfg, key, edef)) == NULL)
		goto oom;
	if (parse_value(k, key, &value, &num, basedir, path) < 0)
		return bad_value(k, key, value, origin, err);
	if (k->type == K_LIST) {
		if (set_list(&nv, value) < 0)
			goto oom;
	} else if ((nv.text = strdup(value)) == NULL) {
		goto oom;
	}
	nv.num = num;
	snprintf(nv.origin, sizeof(nv.origin), "%s", origin);
	value_clear(slot);
	*slot = nv;
	return 0;
oom:
	value_clear(&nv);
	return tg_err_set(err, TG_E_INTERNAL, "out of memory");
}

int
tg_config_set(struct tg_config *cfg, const char *key, const char *value,
    const char *origin, struct tg_err *err)
{
	return tg_config_set_from(cfg, key, value, origin, NULL, err);
}

struct tg_config *
tg_config_new(void)
{
	struct tg_config *cfg = calloc(1, sizeof(*cfg));
	struct tg_err err;
	size_t i;

	if (cfg == NULL)
		return NULL;
	for (i = 0; i < NKEYS; i++) {
		const char *def = keys[i].def;
		if (def == NULL)   /* state_dir */
			def = tg_is_root() ? "/var/lib/tlsgate" : "~/.local/state/tlsgate";
		if (tg_config_set_from(cfg, keys[i].name, def, "default", NULL, &err) < 0) {
			/* a default that fails its own validator is a bug, caught by
			 * test_config; out of memory is the other way here */
			tg_config_free(cfg);
			return NULL;
		}
	}
	return cfg;
}

void
tg_config_free(struct tg_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < NKEYS; i++)
		value_clear(&cfg->v[i]);
	for (i = 0; i < cfg->nev; i++)
		value_clear(&cfg->ev[i].v);
	free(cfg->ev);
	free(cfg);
}

static void
env_name(const char *key, char *buf, size_t len)
{
	size_t i, n = (size_t)snprintf(buf, len, "TLSGATE_");

	for (i = 0; key[i] && n + 1 < len; i++, n++)
		buf[n] = key[i] == '.' ? '_' : (char)toupper((unsigned char)key[i]);
	buf[n] = '\0';
}

int
tg_config_load_env(struct tg_config *cfg, char *const *envp, struct tg_err *err)
{
	char name[128], origin[160];
	size_t i, j;

	for (i = 0; envp && envp[i]; i++) {
		const char *eq = strchr(envp[i], '=');
		size_t nl;
		int found = 0;

		if (strncmp(envp[i], "TLSGATE_", 8) != 0 || eq == NULL)
			continue;
		nl = (size_t)(eq - envp[i]);
		if (nl == strlen("TLSGATE_CONFIG") && !strncmp(envp[i], "TLSGATE_CONFIG", nl))
			continue;
		for (j = 0; j < NKEYS && !found; j++) {
			env_name(keys[j].name, name, sizeof(name));
			if (strlen(name) == nl && strncmp(name, envp[i], nl) == 0) {
				snprintf(origin, sizeof(origin), "env %s", name);
				if (tg_config_set(cfg, keys[j].name, eq + 1, origin, err) < 0)
					return -1;
				found = 1;
			}
		}
		if (!found)
			return tg_err_set(err, TG_E_CONFIG_KEY, "%.*s (environment): no such "
			    "setting; unset it, or see `tlsgate config list`", (int)nl, envp[i]);
	}
	return 0;
}

const char *
tg_config_get(const struct tg_config *cfg, const char *key)
{
	size_t idx;

	if (find_key(key, &idx) == NULL) {
		for (idx = 0; idx < cfg->nev; idx++)
			if (!strcmp(cfg->ev[idx].key, key))
				return cfg->ev[idx].v.text;
		return NULL;
	}
	return cfg->v[idx].text;
}

const char *
tg_config_origin(const struct tg_config *cfg, const char *key)
{
	size_t idx;

	if (find_key(key, &idx) == NULL) {
		for (idx = 0; idx < cfg->nev; idx++)
			if (!strcmp(cfg->ev[idx].key, key))
				return cfg->ev[idx].v.origin;
		return "default";
	}
	return cfg->v[idx].origin;
}

/* ---- entries (tunnels) ---------------------------------------------------- */

size_t
tg_cfg_entries(const struct tg_config *cfg, const char *list)
{
	size_t i, n = 0, ln = strlen(list), idx;

	for (i = 0; i < cfg->nev; i++)
		if (!strncmp(cfg->ev[i].key, list, ln) && cfg->ev[i].key[ln] == '.' &&
		    find_entry_key(cfg->ev[i].key, NULL, &idx) && idx + 1 > n)
			n = idx + 1;
	return n;
}

/* A field no entry of the list can have reads as unset (no row). */
static const struct keydef no_field = { "", K_STR, "", NULL, "" };

static const struct entry_value *
entry_find(const struct tg_config *cfg, const char *list, size_t i, enum tg_cfg_field field,
    const struct keydef **def)
{
	char key[96];
	size_t j, d;

	snprintf(key, sizeof(key), "%s.%zu.%s", list, i, field_names[field]);
	if ((*def = find_entry_key(key, &d, NULL)) == NULL) {
		*def = &no_field;
		return NULL;
	}
	for (j = 0; j < cfg->nev; j++)
		if (!strcmp(cfg->ev[j].key, key))
			return &cfg->ev[j];
	return NULL;
}

const char *
tg_cfg_entry_str(const struct tg_config *cfg, const char *list, size_t i,
    enum tg_cfg_field field)
{
	const struct keydef *k;
	const struct entry_value *e = entry_find(cfg, list, i, field, &k);

	return e ? e->v.text : k->def;
}

int64_t
tg_cfg_entry_num(const struct tg_config *cfg, const char *list, size_t i,
    enum tg_cfg_field field)
{
	const struct keydef *k;
	const struct entry_value *e = entry_find(cfg, list, i, field, &k);
	int64_t n = 0;

	if (e)
		return e->v.num;
	if (k->type == K_DUR)
		tg_parse_duration(k->def, &n);
	else if (k->type == K_BOOL)
		n = !strcmp(k->def, "true");
	else
		n = strtoll(k->def, NULL, 10);
	return n;
}

const char *
tg_cfg_entry_origin(const struct tg_config *cfg, const char *list, size_t i,
    enum tg_cfg_field field)
{
	const struct keydef *k;
	const struct entry_value *e = entry_find(cfg, list, i, field, &k);

	return e ? e->v.origin : "default";
}

const char *
tg_config_entry_key(const struct tg_config *cfg, size_t i)
{
	return i < cfg->nev ? cfg->ev[i].key : NULL;
}

const char *
tg_cfg_str(const struct tg_config *cfg, enum tg_cfg_key key)
{
	return cfg->v[key].text;
}

int64_t
tg_cfg_num(const struct tg_config *cfg, enum tg_cfg_key key)
{
	return cfg->v[key].num;
}

size_t
tg_cfg_list(const struct tg_config *cfg, enum tg_cfg_key key, const char *const **items)
{
	const struct value *v = &cfg->v[key];

	if (items)
		*items = (const char *const *)v->items;
	return v->nitems;
}

int
tg_cfg_path(const struct tg_config *cfg, enum tg_cfg_key key, char *buf, size_t len)
{
	size_t idx = key;
	char sd[PATH_MAX];

	if (keys[idx].type == K_SPATH) {
		if (tg_path_expand(sd, sizeof(sd), tg_cfg_str(cfg, TG_CFG_STATE_DIR)) < 0)
			return -1;
		return tg_path_join(buf, len, sd, cfg->v[idx].text);
	}
	return tg_path_expand(buf, len, cfg->v[idx].text);
}

const char *
tg_cfg_file(const struct tg_config *cfg)
{
	return cfg->file[0] ? cfg->file : NULL;
}

void
tg_config_note_file(struct tg_config *cfg, const char *path)
{
	snprintf(cfg->file, sizeof(cfg->file), "%s", path);
}

const char *
tg_config_default_path(void)
{
	static _Thread_local char buf[PATH_MAX];
	const char *env = getenv("TLSGATE_CONFIG");

	if (env && env[0])
		return env;
	if (tg_is_root())
		return "/etc/tlsgate/tlsgate.yaml";
	if (tg_path_expand(buf, sizeof(buf), "~/.config/tlsgate/tlsgate.yaml") < 0)
		return "tlsgate.yaml";
	return buf;
}

/* Each proxy route has a prefix starting with '/' and an http(s) upstream. */
static int
validate_proxy(struct tg_config *cfg, struct tg_err *err)
{
	size_t i;

	for (i = 0; i < tg_cfg_entries(cfg, "proxy"); i++) {
		const char *pf = tg_cfg_entry_str(cfg, "proxy", i, TG_FIELD_PREFIX);
		const char *up = tg_cfg_entry_str(cfg, "proxy", i, TG_FIELD_UPSTREAM);
		if (!pf[0] || !up[0])
			return tg_err_set(err, TG_E_CONFIG_VALUE, "proxy.%zu (%s): %s is missing; each "
			    "route needs prefix and upstream", i,
			    tg_cfg_entry_origin(cfg, "proxy", i,
			    pf[0] ? TG_FIELD_PREFIX : TG_FIELD_UPSTREAM),
			    pf[0] ? "upstream" : "prefix");
		if (pf[0] != '/')
			return tg_err_set(err, TG_E_CONFIG_VALUE, "proxy.%zu.prefix (%s): '%s' must start "
			    "with '/'", i, tg_cfg_entry_origin(cfg, "proxy", i, TG_FIELD_PREFIX),
			    pf);
		if (strncmp(up, "http://", 7) && strncmp(up, "https://", 8))
			return tg_err_set(err, TG_E_CONFIG_VALUE, "proxy.%zu.upstream (%s): '%s' must be "
			    "an http:// or https:// URL", i, tg_cfg_entry_origin(cfg, "proxy", i,
			    TG_FIELD_UPSTREAM), up);
	}
	return 0;
}

/* Each tunnel has listen and connect; one that accepts TLS needs it on. */
static int
validate_tunnels(struct tg_config *cfg, struct tg_err *err)
{
	size_t i;

	for (i = 0; i < tg_cfg_entries(cfg, "tunnels"); i++) {
		const char *l = tg_cfg_entry_str(cfg, "tunnels", i, TG_FIELD_LISTEN);
		const char *c = tg_cfg_entry_str(cfg, "tunnels", i, TG_FIELD_CONNECT);
		if (!l[0] || !c[0])
			return tg_err_set(err, TG_E_CONFIG_VALUE, "tunnels.%zu (%s): %s is missing; each "
			    "tunnel needs listen and connect", i,
			    tg_cfg_entry_origin(cfg, "tunnels", i,
			    l[0] ? TG_FIELD_LISTEN : TG_FIELD_CONNECT),
			    l[0] ? "connect" : "listen");
		if (!tg_cfg_entry_num(cfg, "tunnels", i, TG_FIELD_TLS_CONNECT) &&
		    !strcmp(tg_cfg_str(cfg, TG_CFG_TLS_MODE), "off"))
			return tg_err_set(err, TG_E_CONFIG_VALUE, "tunnels.%zu (%s) accepts TLS but "
			    "tls.mode is off (%s): set tls.mode server, or tls_connect: true for a "
			    "tunnel that connects with TLS", i, tg_cfg_entry_origin(cfg, "tunnels", i,
			    TG_FIELD_LISTEN), tg_config_origin(cfg, "tls.mode"));
	}
	return 0;
}

/* tls.auto acme: names, TLS on, a DNS hook for dns-01, an https directory,
 * a sane check interval. */
static int
validate_acme(struct tg_config *cfg, struct tg_err *err)
{
	const char *const *names;
	if (tg_cfg_list(cfg, TG_CFG_TLS_ACME_NAMES, &names) == 0 &&
	    tg_cfg_list(cfg, TG_CFG_TLS_NAMES, &names) == 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.auto is acme (%s) but no names "
		    "are given: set tls.acme.names (or --autocert NAME)",
		    tg_config_origin(cfg, "tls.auto"));
	if (!strcmp(tg_cfg_str(cfg, TG_CFG_TLS_MODE), "off"))
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.auto is acme but tls.mode is off "
		    "(%s): ACME certificates need TLS; set tls.mode server or mutual",
		    tg_config_origin(cfg, "tls.mode"));
	if (!strcmp(tg_cfg_str(cfg, TG_CFG_TLS_ACME_CHALLENGE), "dns-01") &&
	    !tg_cfg_str(cfg, TG_CFG_TLS_ACME_DNS_HOOK)[0])
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.challenge is dns-01 (%s) but "
		    "tls.acme.dns_hook is empty: name a program run as HOOK add|remove NAME VALUE",
		    tg_config_origin(cfg, "tls.acme.challenge"));
	if (strncmp(tg_cfg_str(cfg, TG_CFG_TLS_ACME_DIRECTORY), "https://", 8) != 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.directory (%s): '%s' must be "
		    "an https:// URL", tg_config_origin(cfg, "tls.acme.directory"),
		    tg_cfg_str(cfg, TG_CFG_TLS_ACME_DIRECTORY));
	if (tg_cfg_num(cfg, TG_CFG_TLS_ACME_CHECK_INTERVAL) < 1000)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.acme.check_interval (%s) must be "
		    "at least 1s", tg_config_origin(cfg, "tls.acme.check_interval"));
	return 0;
}

int
tg_config_validate(struct tg_config *cfg, struct tg_err *err)
{
	const char *cert = tg_cfg_str(cfg, TG_CFG_TLS_CERT), *key = tg_cfg_str(cfg, TG_CFG_TLS_KEY);
	const char *prefix = tg_cfg_str(cfg, TG_CFG_FILES_PREFIX);
	size_t i;

	if (cert[0] && !key[0])
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.key is empty but tls.cert is set "
		    "(%s); give the certificate's private key too", tg_config_origin(cfg, "tls.cert"));
	if (key[0] && !cert[0])
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.cert is empty but tls.key is set "
		    "(%s); give the certificate chain too", tg_config_origin(cfg, "tls.key"));
	if (prefix[0] != '/' || prefix[strlen(prefix) - 1] != '/')
		return tg_err_set(err, TG_E_CONFIG_VALUE, "files.prefix (%s): '%s' must start "
		    "and end with '/'", tg_config_origin(cfg, "files.prefix"), prefix);
	if (validate_proxy(cfg, err) < 0 || validate_tunnels(cfg, err) < 0 ||
	    (!strcmp(tg_cfg_str(cfg, TG_CFG_TLS_AUTO), "acme") && !cert[0] &&
	    validate_acme(cfg, err) < 0))
		return -1;
	{
		const char *w = tg_cfg_str(cfg, TG_CFG_WORKERS);
		char *end;
		long n = strtol(w, &end, 10);
		if (strcmp(w, "auto") != 0 && (end == w || *end || n < 1 || n > 64))
			return tg_err_set(err, TG_E_CONFIG_VALUE, "workers (%s): '%s' must be a number "
			    "from 1 to 64, or auto", tg_config_origin(cfg, "workers"), w);
	}
	{
		const char *const *allow;
		size_t n = tg_cfg_list(cfg, TG_CFG_TLS_CLIENTS_ALLOW, &allow);
		for (i = 0; i < n; i++)
			if (strncmp(allow[i], "cn:", 3) && strncmp(allow[i], "dns:", 4) &&
			    strncmp(allow[i], "uri:", 4))
				return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.clients.allow (%s): '%s' "
				    "must start with cn:, dns: or uri: (e.g. cn:node-*)",
				    tg_config_origin(cfg, "tls.clients.allow"), allow[i]);
	}
	if (strcmp(tg_cfg_str(cfg, TG_CFG_TLS_MODE), "off") != 0 && !cert[0] &&
	    strcmp(tg_cfg_str(cfg, TG_CFG_TLS_AUTO), "none") == 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.auto is none (%s) and tls.cert is "
		    "empty: give tls.cert and tls.key, pick an auto source, or set tls.mode off",
		    tg_config_origin(cfg, "tls.auto"));
	if (strcmp(tg_cfg_str(cfg, TG_CFG_TLS_MODE), "mutual") == 0 &&
	    !tg_cfg_str(cfg, TG_CFG_TLS_CLIENTS_CA)[0] &&
	    (!strcmp(tg_cfg_str(cfg, TG_CFG_TLS_CLIENTS_TRUST), "ca") ||
	    !strcmp(tg_cfg_str(cfg, TG_CFG_TLS_CLIENTS_TRUST), "ca-or-tofu")) &&
	    strcmp(tg_cfg_str(cfg, TG_CFG_TLS_AUTO), "local-ca") != 0)
		return tg_err_set(err, TG_E_CONFIG_VALUE, "tls.clients.ca is empty and tls.mode is "
		    "mutual with trust %s (%s): name the CA file or folder that issues client "
		    "certificates", tg_cfg_str(cfg, TG_CFG_TLS_CLIENTS_TRUST),
		    tg_config_origin(cfg, "tls.mode"));
	return 0;
}
