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

/* Requests whose path is below files.prefix: GET, HEAD, PUT, DELETE. */
extern const struct tg_handler tg_files_handler;

/* Decodes and checks a path below the prefix (exposed for tests and fuzzing):
 * writes the relative path to out; -1 when it is not acceptable. */
int tg_files_clean_path(const char *raw, size_t len, char *out, size_t outlen);

#endif
