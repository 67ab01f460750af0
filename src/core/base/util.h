/*
 * Small helpers shared by the core: parsing sizes and durations, paths,
 * and files written atomically.
 */
#ifndef TG_UTIL_H
#define TG_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <tlsgate/tlsgate.h>

/* "1GiB", "512KiB", "100" -> bytes; -1 on bad input. */
int tg_parse_size(const char *s, int64_t *out);
/* "30d", "10s", "5m", "2h" -> milliseconds; -1 on bad input. */
int tg_parse_duration(const char *s, int64_t *out_ms);
/* One hex digit's value, or -1. */
int tg_hexval(char c);
/* "[::]:8443", "127.0.0.1:80", ":80", "localhost:8443" -> host (may be ""),
 * port. host buffer gets the bare address without brackets. */
int tg_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

/* Joins dir and name unless name is absolute; expands a leading "~/". */
int tg_path_join(char *buf, size_t len, const char *dir, const char *name);
/* Formats a path into buf, refusing to cut it: a cut path names another
 * file. -1 with a message (err may be NULL) and buf "" when it does not
 * fit. Every path made with a format goes through this. */
int tg_path_fmt(char *buf, size_t len, struct tg_err *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int tg_path_expand(char *buf, size_t len, const char *path);
/* Folder part of a path ("." when none). */
void tg_path_dir(char *buf, size_t len, const char *path);
/* fsync(2) of the folder path lies in (after creating or renaming in it) */
int tg_fsync_parent(const char *path);
/* write(2) until all is written; -1 with errno set */
int tg_write_all(int fd, const void *data, size_t len);
/* mkdir -p with the given mode for each created folder. */
int tg_mkdirs(const char *path, mode_t mode, struct tg_err *err);

/* Writes data to path atomically: temp file in the same folder, fsync,
 * rename, fsync of the folder. secret: mode 0600 and O_EXCL temp. */
int tg_write_atomic(const char *path, const void *data, size_t len, int secret,
    struct tg_err *err);
/* Reads a whole (small) file; *out is NUL-terminated, malloc'ed. */
int tg_read_file(const char *path, unsigned char **out, size_t *len, size_t max,
    struct tg_err *err);
/* Frees a buffer that held secret material after zeroing it. */
/* Appends n bytes to the malloc'ed, NUL-terminated *buf of *len bytes
 * (what libcurl's write callbacks collect); -1, unchanged, when it would
 * pass max bytes or memory runs out. */
int tg_buf_append(char **buf, size_t *len, size_t max, const void *p, size_t n);

int tg_is_root(void);
/* Monotonic milliseconds. */
uint64_t tg_now_ms(void);

#endif
