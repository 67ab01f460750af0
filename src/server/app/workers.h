/*
 * workers: N processes, each with its own event loop and its own
 * SO_REUSEPORT listening socket, so the kernel spreads new connections over
 * the cores. The first process supervises: it forwards SIGHUP, SIGTERM and
 * SIGINT, restarts a worker that dies, and stops everything when workers
 * keep dying at start. Counters are published to shared memory so the
 * admin listener (in worker 0) reports the sum.
 */
#ifndef TG_WORKERS_H
#define TG_WORKERS_H

#include <sys/types.h>

#include "server.h"

#define TG_WORKERS_MAX 64

/* A worker's counters in shared memory: one writer (the worker, each
 * second), readers in other processes (worker 0's /metrics, the supervisor
 * when it starts a replacement). seq is a seqlock: odd while the worker
 * writes; every field is copied with atomic loads and stores. */
struct tg_worker_slot {
	uint32_t seq;
	struct tg_metrics m;
	uint64_t nconns;
	pid_t pid;
};

/* The number of workers `workers: auto` means here: the CPUs this
 * process may run on. */
unsigned tg_workers_auto(void);

/* Before any fork: opens the other workers' listening sockets and the
 * shared counters. s->listen_fd must already be bound with SO_REUSEPORT. */
int tg_workers_prepare(struct tg_server *s, struct tg_err *err);

/* Forks the workers and supervises them. Returns 1 in a worker (which then
 * runs tg_server_run), and 0 in the supervisor once every worker has ended,
 * with *exit_status 0, or 1 when the workers could not be kept running. */
int tg_workers_run(struct tg_server *s, int *exit_status);

/* In a worker: copies its counters to its shared slot (each second). */
void tg_workers_publish(struct tg_server *s);

/* Sums every worker's counters into *sum (the caller's own are live). */
void tg_workers_sum(const struct tg_server *s, struct tg_metrics *sum, size_t *nconns);

#endif
