/*
 * `tlsgate config set|unset`: edits one key of a YAML file in place and
 * keeps everything else byte for byte (comments, order, blank lines).
 * libyaml's event marks locate the value to replace, or the end of the
 * deepest existing section to append under; the result is parsed again
 * before it replaces the file, so an edit can never leave a broken file.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <yaml.h>

#include "config_int.h"
#include "error.h"
#include "util.h"

#define MAX_DEPTH 8

struct eframe {
	char path[128];        /* dotted path of this mapping ("" for root) */
	char pending[128];
	int have_pending, is_seq, flow;
	size_t key_start;      /* index where the pending key starts */
	long child_col;        /* column of this mapping's keys, -1 unknown */
	size_t line;
};

struct found {
	int have_value;
	size_t key_line_start, val_start, val_end;
	int val_is_null;
	/* deepest existing section that is a prefix of the target */
	char sec_path[128];
	long sec_col;
	size_t sec_end;
	int sec_flow, sec_null;
	size_t sec_line;
};

struct escan {
	const char *target;
	struct eframe st[MAX_DEPTH];
	int depth;
	size_t last_end;       /* end of the last scalar or flow collection */
	size_t seq_start;
	struct found f;
};

static int
is_prefix_section(const char *sec, const char *target)
{
	size_t n = strlen(sec);
	return n == 0 || (strncmp(sec, target, n) == 0 && target[n] == '.');
}

/* The dotted path of the key waiting in fr; "" when it would not fit (no
 * known key is that long, so it matches nothing). */
static void
child_path(const struct eframe *fr, char *buf, size_t len)
{
	int n = fr->path[0] ? snprintf(buf, len, "%s.%s", fr->path, fr->pending) :
	    snprintf(buf, len, "%s", fr->pending);

	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0';
}

static void
line_start(const char *text, size_t *idx)
{
	while (*idx > 0 && text[*idx - 1] != '\n')
		(*idx)--;
}

static int
scan(struct escan *s, const unsigned char *text, size_t len, const char *name,
    struct tg_err *err)
{
	yaml_parser_t p;
	yaml_event_t ev;
	int done = 0, rv = -1;
	char key[256];

	if (!yaml_parser_initialize(&p))
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	yaml_parser_set_input_string(&p, text, len);
	while (!done) {
		struct eframe *top;
		if (!yaml_parser_parse(&p, &ev)) {
			tg_err_set(err, TG_E_CONFIG_SYNTAX, "%s:%zu: YAML syntax error: %s; fix "
			    "the file before editing it", name, p.problem_mark.line + 1,
			    p.problem ? p.problem : "unreadable");
			goto out;
		}
		top = s->depth ? &s->st[s->depth - 1] : NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_MAPPING_START_EVENT:
		case YAML_SEQUENCE_START_EVENT: {
			int seq = ev.type == YAML_SEQUENCE_START_EVENT;
			struct eframe *nf;
			if (s->depth >= MAX_DEPTH)
				break;
			nf = &s->st[s->depth];
			memset(nf, 0, sizeof(*nf));
			nf->is_seq = seq;
			nf->child_col = -1;
			nf->line = ev.start_mark.line + 1;
			nf->flow = seq ? ev.data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE
			    : ev.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE;
			if (top && top->have_pending) {
				child_path(top, nf->path, sizeof(nf->path));
				if (seq && strcmp(nf->path, s->target) == 0) {
					s->seq_start = ev.start_mark.index;
					s->f.key_line_start = top->key_start;
					line_start((const char *)text, &s->f.key_line_start);
				}
			}
			s->depth++;
			break;
		}
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT: {
			struct eframe *fr = top;
			if (fr == NULL)
				break;
			if (fr->flow)
				s->last_end = ev.end_mark.index;
			if (fr->is_seq && strcmp(fr->path, s->target) == 0) {
				s->f.have_value = 1;
				s->f.val_start = s->seq_start;
				s->f.val_end = s->last_end;
			}
			if (!fr->is_seq && is_prefix_section(fr->path, s->target) &&
			    strlen(fr->path) >= strlen(s->f.sec_path) &&
			    (s->f.sec_line == 0 || fr->path[0])) {
				snprintf(s->f.sec_path, sizeof(s->f.sec_path), "%s", fr->path);
				s->f.sec_col = fr->child_col;
				s->f.sec_end = s->last_end;
				s->f.sec_flow = fr->flow;
				s->f.sec_line = fr->line;
				s->f.sec_null = 0;
			}
			s->depth--;
			if (s->depth > 0)
				s->st[s->depth - 1].have_pending = 0;
			break;
		}
		case YAML_SCALAR_EVENT:
			if (top == NULL || top->is_seq) {
				s->last_end = ev.end_mark.index;
				break;
			}
			if (!top->have_pending) {
				snprintf(top->pending, sizeof(top->pending), "%s",
				    (const char *)ev.data.scalar.value);
				top->have_pending = 1;
				top->key_start = ev.start_mark.index;
				if (top->child_col < 0)
					top->child_col = (long)ev.start_mark.column;
				break;
			}
			child_path(top, key, sizeof(key));
			top->have_pending = 0;
			if (strcmp(key, s->target) == 0) {
				s->f.have_value = 1;
				s->f.key_line_start = top->key_start;
				line_start((const char *)text, &s->f.key_line_start);
				s->f.val_start = ev.start_mark.index;
				s->f.val_end = ev.end_mark.index;
				s->f.val_is_null = ev.start_mark.index == ev.end_mark.index;
			} else if (ev.start_mark.index == ev.end_mark.index &&
			    is_prefix_section(key, s->target)) {
				/* "tls:" with nothing under it */
				if (snprintf(s->f.sec_path, sizeof(s->f.sec_path), "%s", key) >=
				    (int)sizeof(s->f.sec_path))
					s->f.sec_path[0] = '\0';   /* longer than any section */
				s->f.sec_null = 1;
				s->f.sec_line = ev.start_mark.line + 1;
				s->f.sec_end = ev.end_mark.index;
				s->f.sec_col = top->child_col + 2;
			}
			s->last_end = ev.end_mark.index;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}
	rv = 0;
out:
	yaml_parser_delete(&p);
	return rv;
}

/* Quotes a scalar unless it is plainly safe. */
static void
format_scalar(const char *v, char *buf, size_t len)
{
	const char *safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./@+-";
	size_t n = 0;

	if (v[0] && strspn(v, safe) == strlen(v) && v[0] != '-' && v[0] != '.') {
		snprintf(buf, len, "%s", v);
		return;
	}
	buf[n++] = '"';
	for (; *v && n + 3 < len; v++) {
		if (*v == '"' || *v == '\\')
			buf[n++] = '\\';
		buf[n++] = *v;
	}
	buf[n++] = '"';
	buf[n] = '\0';
}

static void
format_value(const char *key, const char *value, char *buf, size_t len)
{
	char item[512];
	const char *p = value;
	size_t n;

	if (!tg_config_key_is_list(key)) {
		format_scalar(value, buf, len);
		return;
	}
	n = (size_t)snprintf(buf, len, "[");
	while (*p && n < len) {
		const char *e = strchr(p, ',');
		char one[512];
		snprintf(one, sizeof(one), "%.*s", (int)(e ? (size_t)(e - p) : strlen(p)), p);
		format_scalar(one, item, sizeof(item));
		n += (size_t)snprintf(buf + n, len - n, "%s%s", n > 1 ? ", " : "", item);
		p = e ? e + 1 : p + strlen(p);
	}
	if (n < len)
		snprintf(buf + n, len - n, "]");
}

static char *
splice(const char *text, size_t len, size_t from, size_t to, const char *ins)
{
	size_t il = strlen(ins);
	char *out = malloc(len - (to - from) + il + 2);

	if (out == NULL)
		return NULL;
	memcpy(out, text, from);
	memcpy(out + from, ins, il);
	memcpy(out + from + il, text + to, len - to);
	out[len - (to - from) + il] = '\0';
	return out;
}

/* Lines that create the missing part of `rest` (a dotted key) at column col. */
static void
nested_lines(const char *rest, long col, const char *val, char *buf, size_t len)
{
	size_t n = 0;
	long depth = 0;
	const char *p = rest;

	while (*p && n < len) {
		const char *dot = strchr(p, '.');
		size_t pl = dot ? (size_t)(dot - p) : strlen(p);
		n += (size_t)snprintf(buf + n, len - n, "\n%*s%.*s:%s%s",
		    (int)(col + 2 * depth), "", (int)pl, p, dot ? "" : " ", dot ? "" : val);
		depth++;
		p = dot ? dot + 1 : p + pl;
	}
}

int
tg_config_edit(const char *path, const char *key, const char *value, struct tg_err *err)
{
	struct tg_config *check = NULL;
	struct escan s;
	unsigned char *text = NULL;
	char *out = NULL, vbuf[2048], ins[4096];
	size_t len = 0;
	struct stat sb;
	int secret = 0, rv = -1, known = tg_config_key_known(key);

	if (known != 1)
		return tg_err_set(err, TG_E_CONFIG_KEY, "%s: %s; see `tlsgate config list`", key,
		    known == 2 ? "is a section, not a value" : "unknown key");
	/* validate the value on a scratch model before touching the file */
	check = tg_config_new();
	if (check == NULL)
		return tg_err_set(err, TG_E_INTERNAL, "out of memory");
	if (value && tg_config_set(check, key, value, "command line", err) < 0)
		goto out;
	if (tg_read_file(path, &text, &len, 1 << 20, err) < 0) {
		if (err->code != TG_E_NOT_FOUND || value == NULL) {
			if (err->code == TG_E_NOT_FOUND)
				rv = 0;   /* unset in a missing file: nothing to do */
			goto out;
		}
		text = (unsigned char *)OPENSSL_strdup("");
		len = 0;
		if (text == NULL)
			goto out;
	}
	if (stat(path, &sb) == 0 && (sb.st_mode & 077) == 0)
		secret = 1;
	memset(&s, 0, sizeof(s));
	s.target = key;
	if (scan(&s, text, len, path, err) < 0)
		goto out;
	if (value)
		format_value(key, value, vbuf, sizeof(vbuf));
	if (s.f.have_value && value) {
		if (s.f.val_is_null)
			snprintf(ins, sizeof(ins), " %s", vbuf);
		else
			snprintf(ins, sizeof(ins), "%s", vbuf);
		out = splice((char *)text, len, s.f.val_start, s.f.val_end, ins);
	} else if (s.f.have_value) {
		size_t end = s.f.val_end;
		while (end < len && text[end] != '\n')
			end++;
		if (end < len)
			end++;
		out = splice((char *)text, len, s.f.key_line_start, end, "");
	} else if (value == NULL) {
		rv = 0;   /* not in the file: nothing to unset */
		goto out;
	} else if (s.f.sec_flow) {
		tg_err_set(err, TG_E_CONFIG_SYNTAX, "%s:%zu: %s is written in flow style "
		    "({ ... }); edit that line by hand", path, s.f.sec_line, s.f.sec_path);
		goto out;
	} else {
		const char *rest = key + (s.f.sec_path[0] ? strlen(s.f.sec_path) + 1 : 0);
		size_t at = s.f.sec_end;
		long col = s.f.sec_col < 0 ? 0 : s.f.sec_col;
		if (!s.f.sec_path[0] && !s.f.sec_null) {
			/* top level: append at the end of the file */
			col = 0;
			at = len;
			while (at > 0 && (text[at - 1] == '\n'))
				at--;
		}
		nested_lines(rest, col, vbuf, ins, sizeof(ins));
		if (at == 0)
			memmove(ins, ins + 1, strlen(ins));   /* no leading newline */
		out = splice((char *)text, len, at, at, ins);
		if (out && at == 0 && len == 0) {
			char *o2 = realloc(out, strlen(out) + 2);
			if (o2)
				strcat(out = o2, "\n");
		}
	}
	if (out == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto out;
	}
	/* the edited text must load cleanly before it replaces the file */
	tg_config_free(check);
	if ((check = tg_config_new()) == NULL) {
		tg_err_set(err, TG_E_INTERNAL, "out of memory");
		goto out;
	}
	if (tg_config_load_yaml(check, (unsigned char *)out, strlen(out), path, ".", err) < 0)
		goto out;
	{
		char dir[PATH_MAX];
		tg_path_dir(dir, sizeof(dir), path);
		if (tg_mkdirs(dir, 0755, err) < 0)
			goto out;
	}
	rv = tg_write_atomic(path, out, strlen(out), secret, err);
out:
	tg_config_free(check);
	if (text)
		tg_free_secret(text, len);
	free(out);
	return rv;
}
