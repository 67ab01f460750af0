/*
 * Typed access to configuration values for the core and the server. The
 * public header only deals in text; these helpers return the parsed value
 * of a key named by its id (config_keys.h), so a key that does not exist
 * does not build. The returned text lives until the key is set again or
 * the configuration is freed.
 */
#ifndef TG_CONFIG_INT_H
#define TG_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#include <tlsgate/tlsgate.h>

#include "config_keys.h"

const char *tg_cfg_str(const struct tg_config *cfg, enum tg_cfg_key key);
int64_t tg_cfg_num(const struct tg_config *cfg, enum tg_cfg_key key); /* int, bool, size, ms */
/* List values: count and items (valid until the key is set again). */
size_t tg_cfg_list(const struct tg_config *cfg, enum tg_cfg_key key, const char *const **items);
/* A path key resolved: state-relative keys against state_dir. */
int tg_cfg_path(const struct tg_config *cfg, enum tg_cfg_key key, char *buf, size_t len);
/* The file the configuration was read from, or NULL. */
const char *tg_cfg_file(const struct tg_config *cfg);

/* Editing a YAML file in place, keeping comments and the rest of it. */
int tg_config_edit(const char *path, const char *key, const char *value,
    struct tg_err *err);   /* value NULL = unset */

/* The setter behind tg_config_set: basedir resolves relative paths. */
int tg_config_set_from(struct tg_config *cfg, const char *key, const char *value,
    const char *origin, const char *basedir, struct tg_err *err);
void tg_config_note_file(struct tg_config *cfg, const char *path);
/* Parses YAML text (name is used in messages, basedir for paths). */
int tg_config_load_yaml(struct tg_config *cfg, const unsigned char *text, size_t len,
    const char *name, const char *basedir, struct tg_err *err);

/* Key table queries shared by the loader and the editor. */
/* 1 leaf, 2 section, 4 list of entries, 0 unknown (3 is no longer used) */
int tg_config_key_known(const char *key);
int tg_config_key_is_list(const char *key);

/* Lists of entries (tunnels): LIST.N.FIELD. */
size_t tg_cfg_entries(const struct tg_config *cfg, const char *list);   /* highest N + 1 */
const char *tg_cfg_entry_str(const struct tg_config *cfg, const char *list, size_t i,
    enum tg_cfg_field field);                  /* the value, or the field's default */
int64_t tg_cfg_entry_num(const struct tg_config *cfg, const char *list, size_t i,
    enum tg_cfg_field field);
const char *tg_cfg_entry_origin(const struct tg_config *cfg, const char *list, size_t i,
    enum tg_cfg_field field);
/* The i-th entry key that was set ("tunnels.0.listen"), NULL past the end. */
const char *tg_config_entry_key(const struct tg_config *cfg, size_t i);

#endif
