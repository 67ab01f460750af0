/*
 * The YAML layer of the configuration: walks libyaml's event stream and
 * hands each scalar to the setter with its "file:line" origin. Nested
 * mappings become dotted keys; sequences of scalars become lists. Anything
 * the key table does not know is an error that names the line.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "config_int.h"
#include "error.h"
#include "util.h"

#define MAX_DEPTH 8
#define MAX_CONFIG_BYTES (1 << 20)

struct frame {
	int is_seq;
	char prefix[128];    /* MAP: "tls." ; SEQ: the list key */
	char pending[128];   /* MAP: key waiting for its value */
	int have_pending;
	char *items;         /* SEQ: joined items */
	size_t line;
	int entries;         /* SEQ of mappings (tunnels): how many so far */
};

struct walk {
	struct tg_config *cfg;
	const char *name, *basedir;
	struct frame st[MAX_DEPTH];
	int depth;
	struct tg_err *err;
};

static int
full_key(struct frame *f, char *buf, size_t len)
{
	return snprintf(buf, len, "%s%s", f->prefix, f->pending) >= (int)len ? -1 : 0;
}

static int
kerr(struct walk *w, const char *key, size_t line, const char *what)
{
	return tg_err_set(w->err, TG_E_CONFIG_KEY, "%s (%s:%zu): %s", key, w->name, line, what);
}

static int
on_open(struct walk *w, int is_seq, size_t line)
{
	struct frame *top, *nf;
	char key[256];
	int known;

	if (w->depth == 0) {
		if (is_seq)
			return tg_err_set(w->err, TG_E_CONFIG_SYNTAX, "%s:%zu: the file must be a "
			    "mapping of keys (key: value), not a list", w->name, line);
		memset(&w->st[0], 0, sizeof(w->st[0]));
		w->depth = 1;
		return 0;
	}
	top = &w->st[w->depth - 1];
	if (top->is_seq && tg_config_key_known(top->prefix) == 4) {
		/* one entry of a list of entries: its keys are LIST.N.FIELD */
		if (is_seq)
			return kerr(w, top->prefix, line, "each entry is a mapping (listen: ..., "
			    "connect: ...), not a list");
		if (w->depth >= MAX_DEPTH)
			return tg_err_set(w->err, TG_E_CONFIG_SYNTAX, "%s:%zu: nested too deeply",
			    w->name, line);
		snprintf(key, sizeof(key), "%s.%d.", top->prefix, top->entries++);
		nf = &w->st[w->depth++];
		memset(nf, 0, sizeof(*nf));
		nf->line = line;
		if (snprintf(nf->prefix, sizeof(nf->prefix), "%s", key) >= (int)sizeof(nf->prefix))
			return kerr(w, key, line, "is too long to be a key");
		return 0;
	}
	if (top->is_seq || !top->have_pending)
		return tg_err_set(w->err, TG_E_CONFIG_SYNTAX, "%s:%zu: a list or mapping is "
		    "not allowed here", w->name, line);
	if (w->depth >= MAX_DEPTH || full_key(top, key, sizeof(key)) < 0)
		return tg_err_set(w->err, TG_E_CONFIG_SYNTAX, "%s:%zu: nested too deeply",
		    w->name, line);
	known = tg_config_key_known(key);
	if (known == 0)
		return kerr(w, key, line, "unknown key; see `tlsgate config list` for the known ones");
	if (is_seq && known == 1 && !tg_config_key_is_list(key))
		return kerr(w, key, line, "takes a single value, not a list");
	if (!is_seq && known == 4)
		return kerr(w, key, line, "is a list: write each entry as \"- listen: ...\"");
	if (!is_seq && known != 2)
		return kerr(w, key, line, "takes a value, not a mapping");
	if (is_seq && known == 2)
		return kerr(w, key, line, "is a section (a mapping of keys), not a list");
	nf = &w->st[w->depth++];
	memset(nf, 0, sizeof(*nf));
	nf->is_seq = is_seq;
	nf->line = line;
	if (snprintf(nf->prefix, sizeof(nf->prefix), is_seq ? "%s" : "%s.", key) >=
	    (int)sizeof(nf->prefix))
		return kerr(w, key, line, "is too long to be a key");
	return 0;
}

static int
set_value(struct walk *w, const char *key, const char *value, size_t line)
{
	char origin[PATH_MAX + 32];
	const char *old = tg_config_origin(w->cfg, key);
	size_t nl = strlen(w->name);

	/* the same key twice in one file is a mistake, not an override */
	if (tg_config_key_known(key) == 1 && strncmp(old, w->name, nl) == 0 && old[nl] == ':')
		return tg_err_set(w->err, TG_E_CONFIG_KEY, "%s (%s:%zu): set twice in this file "
		    "(first at %s)", key, w->name, line, old);
	snprintf(origin, sizeof(origin), "%s:%zu", w->name, line);
	return tg_config_set_from(w->cfg, key, value, origin, w->basedir, w->err);
}

static int
on_close(struct walk *w)
{
	struct frame *f = &w->st[w->depth - 1];
	int rv = 0;

	if (f->is_seq && tg_config_key_known(f->prefix) != 4)
		rv = set_value(w, f->prefix, f->items ? f->items : "", f->line);
	free(f->items);
	f->items = NULL;
	w->depth--;
	if (w->depth > 0)
		w->st[w->depth - 1].have_pending = 0;
	return rv;
}

static int
on_scalar(struct walk *w, yaml_event_t *ev)
{
	struct frame *f = &w->st[w->depth - 1];
	const char *v = (const char *)ev->data.scalar.value;
	size_t line = ev->start_mark.line + 1;
	char key[256];

	if (w->depth == 0)
		return tg_err_set(w->err, TG_E_CONFIG_SYNTAX, "%s:%zu: the file must be a "
		    "mapping of keys (key: value)", w->name, line);
	/* a plain ~, null or nothing means empty */
	if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
	    (!strcmp(v, "~") || !strcmp(v, "null") || !strcmp(v, "")))
		v = "";
	if (f->is_seq) {
		size_t old = f->items ? strlen(f->items) : 0;
		char *n;
		if (strchr(v, ',') != NULL)
			return tg_err_set(w->err, TG_E_CONFIG_VALUE, "%s (%s:%zu): list items "
			    "cannot contain ','", f->prefix, w->name, line);
		if (tg_config_key_known(f->prefix) == 4)
			return kerr(w, f->prefix, line, "each entry is a mapping (listen: ..., "
			    "connect: ...), not a single value");
		n = realloc(f->items, old + strlen(v) + 2);
		if (n == NULL)
			return tg_err_set(w->err, TG_E_INTERNAL, "out of memory");
		f->items = n;
		sprintf(n + old, "%s%s", old ? "," : "", v);
		return 0;
	}
	if (!f->have_pending) {
		if (snprintf(f->pending, sizeof(f->pending), "%s", v) >= (int)sizeof(f->pending))
			return tg_err_set(w->err, TG_E_CONFIG_KEY, "%s:%zu: key too long",
			    w->name, line);
		f->have_pending = 1;
		return 0;
	}
	f->have_pending = 0;
	if (full_key(f, key, sizeof(key)) < 0)
		return tg_err_set(w->err, TG_E_CONFIG_KEY, "%s:%zu: key too long", w->name, line);
	if (tg_config_key_known(key) == 2 && v[0] == '\0')
		return 0;   /* "tls:" with nothing under it */
	return set_value(w, key, v, line);
}

int
tg_config_load_yaml(struct tg_config *cfg, const unsigned char *text, size_t len,
    const char *name, const char *basedir, struct tg_err *err)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct walk w;
	int done = 0, rv = -1, docs = 0;

	memset(&w, 0, sizeof(w));
	w.cfg = cfg;
	w.name = name;
	w.basedir = basedir;
	w.err = err;
	if (!yaml_parser_initialize(&parser))
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	yaml_parser_set_input_string(&parser, text, len);
	while (!done) {
		if (!yaml_parser_parse(&parser, &ev)) {
			tg_err_set(err, TG_E_CONFIG_SYNTAX, "%s:%zu: YAML syntax error: %s%s%s",
			    name, parser.problem_mark.line + 1,
			    parser.problem ? parser.problem : "unreadable",
			    parser.context ? " " : "", parser.context ? parser.context : "");
			goto out;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				tg_err_set(err, TG_E_CONFIG_SYNTAX, "%s:%zu: only one YAML document "
				    "is allowed", name, ev.start_mark.line + 1);
				yaml_event_delete(&ev);
				goto out;
			}
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT:
			if (on_open(&w, ev.type == YAML_SEQUENCE_START_EVENT,
			    ev.start_mark.line + 1) < 0) {
				yaml_event_delete(&ev);
				goto out;
			}
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			if (w.depth > 0 && on_close(&w) < 0) {
				yaml_event_delete(&ev);
				goto out;
			}
			break;
		case YAML_SCALAR_EVENT:
			if (on_scalar(&w, &ev) < 0) {
				yaml_event_delete(&ev);
				goto out;
			}
			break;
		case YAML_ALIAS_EVENT:
			tg_err_set(err, TG_E_CONFIG_SYNTAX, "%s:%zu: YAML aliases (*name) are not "
			    "supported; write the value out", name, ev.start_mark.line + 1);
			yaml_event_delete(&ev);
			goto out;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	rv = 0;
out:
	while (w.depth > 0) {
		free(w.st[w.depth - 1].items);
		w.depth--;
	}
	yaml_parser_delete(&parser);
	return rv;
}

int
tg_config_load_file(struct tg_config *cfg, const char *path, int must_exist,
    struct tg_err *err)
{
	unsigned char *text;
	char dir[PATH_MAX];
	size_t len;
	int rv;

	if (tg_read_file(path, &text, &len, MAX_CONFIG_BYTES, err) < 0) {
		if (err && err->code == TG_E_NOT_FOUND) {
			if (!must_exist)
				return 0;
			return tg_err_set(err, TG_E_NOT_FOUND, "configuration file %s does not "
			    "exist (named by --config or TLSGATE_CONFIG)", path);
		}
		return -1;
	}
	tg_path_dir(dir, sizeof(dir), path);
	tg_config_note_file(cfg, path);
	rv = tg_config_load_yaml(cfg, text, len, path, dir, err);
	/* the file may hold secrets such as eab_hmac_key */
	tg_free_secret(text, len);
	return rv;
}
