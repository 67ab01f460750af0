/*
 * The file transfer service: PUT (raw or multipart) stores, GET (with
 * Range) and HEAD read, DELETE removes, all confined beneath files.root.
 */
#ifndef TG_FILES_H
#define TG_FILES_H

#include <stddef.h>

#include "conn.h"

/* Opens files.root (creating it) for the server; -1 with a message. */
int tg_files_open_root(struct tg_server *srv, struct tg_err *err);
/* Removes upload temp files a crash may have left. */
void tg_files_sweep(struct tg_server *srv);

/* Starts a request whose path is below files.prefix. Returns 0 when a
 * response is queued, 1 when a body is expected (tg_files_body follows). */
int tg_files_begin(struct tg_conn_s *c, const char *rel, size_t rel_len);
/* Body bytes; -1 when a response (error) was queued and the body must stop. */
int tg_files_body(struct tg_conn_s *c, char *data, size_t len);
/* The whole body arrived: make the file visible off the loop, then respond. */
void tg_files_body_end(struct tg_conn_s *c);
/* The connection went away mid-upload: drop the temp file. */
void tg_files_abort(struct tg_conn_s *c);

/* Decodes and checks a path below the prefix (exposed for tests and fuzzing):
 * writes the relative path to out; -1 when it is not acceptable. */
int tg_files_clean_path(const char *raw, size_t len, char *out, size_t outlen);

#endif
