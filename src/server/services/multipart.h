/*
 * A streaming multipart/form-data reader (RFC 7578) that finds the first
 * part carrying a file (Content-Disposition with filename=) and hands its
 * bytes on as they arrive, holding back only what could be the start of
 * the next boundary. Memory is fixed: one buffer per upload.
 */
#ifndef TG_MULTIPART_H
#define TG_MULTIPART_H

#include <stddef.h>

struct tg_multipart;

/* NULL when content_type is not multipart/form-data with a usable boundary. */
struct tg_multipart *tg_multipart_new(const char *content_type, size_t ct_len);
void tg_multipart_free(struct tg_multipart *m);

typedef int (*tg_multipart_emit)(void *arg, const char *data, size_t len);

/*
 * Feeds body bytes (at most TG_MULTIPART_CHUNK at a time). Returns 0 to go
 * on, 1 once the file part is complete (later bytes are ignored), -1 for a
 * malformed body, or what emit returned when that was negative.
 */
#define TG_MULTIPART_CHUNK (64 * 1024)
int tg_multipart_feed(struct tg_multipart *m, const char *data, size_t len,
    tg_multipart_emit emit, void *arg);
/* 1 when the file part was seen to its end. */
int tg_multipart_complete(const struct tg_multipart *m);

#endif
