/*
 * Files the server reads while serving, watched with inotify (libuv's
 * fs_event on the file's folder) instead of a stat() per handshake or per
 * request. Known files (known-clients, known-servers): a change in the file's folder that names the
 * file queues a re-read on the thread pool, and the trust object swaps its
 * cache in when the read is whole. A recorded pin refreshes the cache
 * itself (tg_trust_record), so the client's next handshake knows it.
 */
#ifndef TG_WATCH_H
#define TG_WATCH_H

#include "server.h"

struct tg_trust;

/* Watches t's known file for the server's loop (nothing for trust ca or no
 * file). Holds a reference to t until stopped. On failure (no inotify
 * watch left) t stays unwatched, judged with a stat() as before, and a
 * warning says so. Loop thread. */
void tg_known_watch_start(struct tg_server *s, struct tg_trust *t);
/* Stops the watch of t (a reload replaced it). Loop thread. */
void tg_known_watch_stop(struct tg_server *s, struct tg_trust *t);
/* Calls changed(arg) on the loop whenever the file at path may have
 * changed (written, replaced, removed). 0, or -1 when it cannot be watched
 * (logged; the caller keeps checking by itself). arg must live until
 * tg_known_watch_stop_all. Loop thread. */
int tg_file_watch_start(struct tg_server *s, const char *path, void (*changed)(void *),
    void *arg);
/* What tells a file changed: device, inode, size, mtime, ctime (a file
 * replaced or edited changes one); a missing file is all zeros. */
void tg_file_sig_of(const char *path, struct tg_file_sig *sig);
/* Stops every watch (the server stops). */
void tg_known_watch_stop_all(struct tg_server *s);

#endif
