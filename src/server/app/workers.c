/*
 * One process per worker (see workers.h). Processes, not threads: every
 * worker keeps the single-threaded server as it is (no lock on the hot
 * path), and a worker that crashes takes only its own connections with it.
 * What the workers must agree on is settled before the fork: the TLS
 * contexts and session ticket keys (tickets.c derives the same rotating keys
 * in every worker from the seed drawn before it), the sockets, the sandbox.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "listen.h"
#include "error.h"
#include "chain_cache.h"
#include "systemd.h"
#include "util.h"
#include "workers.h"

unsigned
tg_workers_auto(void)
{
	cpu_set_t set;
	int n;

	if (sched_getaffinity(0, sizeof(set), &set) == 0 && (n = CPU_COUNT(&set)) > 0)
		return n > TG_WORKERS_MAX ? TG_WORKERS_MAX : (unsigned)n;
	n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (n > TG_WORKERS_MAX ? TG_WORKERS_MAX : (unsigned)n) : 1;
}

int
tg_workers_prepare(struct tg_server *s, struct tg_err *err)
{
	unsigned i;
	size_t len = s->workers * sizeof(struct tg_worker_slot);

	s->worker_fds[0] = s->listen_fd;
	for (i = 1; i < s->workers; i++) {
		/* a socket from systemd is one queue: the workers share it */
		if (s->listen_inherited) {
			if ((s->worker_fds[i] = fcntl(s->listen_fd, F_DUPFD_CLOEXEC, 0)) < 0)
				return tg_err_set(err, TG_E_IO, "workers: %s", strerror(errno));
		} else if ((s->worker_fds[i] = tg_listen_open(s->listen, 1, err)) < 0) {
			return -1;
		}
	}
	s->slots = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (s->slots == MAP_FAILED) {
		s->slots = NULL;
		return tg_err_set(err, TG_E_INTERNAL, "workers: cannot map shared counters: %s",
		    strerror(errno));
	}
	memset(s->slots, 0, len);
	return 0;
}

static int add_slot(struct tg_metrics *a, size_t *nconns, struct tg_worker_slot *w);

/* replacement: a worker started again after one died */
static pid_t
spawn(struct tg_server *s, unsigned idx, const sigset_t *old, int replacement, int reloaded)
{
	pid_t pid = fork();
	unsigned i;

	if (pid != 0)
		return pid;
	/* the worker: its own socket, its own loop, dies with the supervisor */
	sigprocmask(SIG_SETMASK, old, NULL);
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != s->supervisor)
		_exit(1);   /* the supervisor died before the line above */
	s->worker_index = idx;
	s->listen_fd = s->worker_fds[idx];
	for (i = 0; i < s->workers; i++)
		if (i != idx)
			close(s->worker_fds[i]);
	if (idx != 0 && s->admin_fd >= 0) {
		close(s->admin_fd);
		s->admin_fd = -1;
	}
	/* ACME: the first worker orders and answers HTTP-01; the others take
	 * the certificate from the store when it lands (server.c) */
	if (idx != 0 && s->acme_fd >= 0) {
		close(s->acme_fd);
		s->acme_fd = -1;
	}
	/* the ACME CA answers in the first worker only: its nonces are that
	 * process's */
	if (idx != 0 && s->ca_fd >= 0) {
		close(s->ca_fd);
		s->ca_fd = -1;
	}
	if (replacement) {
		/* the counters go on from where the dead worker left them, and
		 * the settings are read again if the others were reloaded since
		 * (the supervisor keeps the ones from the start) */
		if (add_slot(&s->m, NULL, &s->slots[idx]) < 0)
			fprintf(stderr, "tlsgate: worker %u died while publishing its counters; its "
			    "replacement starts them again\n", idx);
		s->slots[idx].seq = 0;   /* a writer that died mid-write left it odd */
		s->reload_at_start = reloaded;
	}
	/* the chain cache counts in the core start at 0 in this process: they
	 * go on from what a dead worker had published */
	s->chain_base[0] = s->m.chain_hits;
	s->chain_base[1] = s->m.chain_misses;
	uv_loop_fork(s->loop);
	return 0;
}

static void
tell_all(struct tg_server *s, int sig)
{
	unsigned i;

	for (i = 0; i < s->workers; i++)
		if (s->slots[i].pid > 0)
			kill(s->slots[i].pid, sig);
}

/* The supervisor's view of its workers. */
struct supervisor {
	pid_t pids[TG_WORKERS_MAX];
	time_t born[TG_WORKERS_MAX];
	uint32_t seq[TG_WORKERS_MAX];      /* each worker's last published seq, */
	uint64_t moved_ms[TG_WORKERS_MAX]; /* and when it last moved (the watchdog) */
	unsigned alive, quick_deaths;
	int stopping, status, reloaded;
	sigset_t old;                /* the mask a worker gets back */
};

/* Starts worker i (again, when again). 1 in the new worker (it returns
 * to serve), 0 in the supervisor, -1 (logged) when it could not. */
static int
start_one(struct tg_server *s, struct supervisor *sv, unsigned i, int again)
{
	pid_t pid = spawn(s, i, &sv->old, again, again && sv->reloaded);

	if (pid == 0)
		return 1;
	if (pid < 0) {
		tg_log(s, TG_LOG_ERROR, "workers: cannot start worker %u: %s", i, strerror(errno));
		sv->pids[i] = 0;
		return -1;
	}
	sv->pids[i] = s->slots[i].pid = pid;
	sv->born[i] = time(NULL);
	sv->moved_ms[i] = tg_now_ms();
	sv->alive++;
	return 0;
}

/* WatchdogSec with workers: the supervisor's WATCHDOG=1 vouches for every
 * worker's loop. Each publishes its counters every second (its seq moves);
 * one whose seq has not moved for 3 s is hung, and the pings stop until it
 * moves again, so systemd restarts the service. */
static int
workers_responsive(struct tg_server *s, struct supervisor *sv)
{
	uint64_t now = tg_now_ms();
	unsigned i;
	int ok = 1;

	for (i = 0; i < s->workers; i++) {
		uint32_t q;
		if (sv->pids[i] <= 0)
			continue;
		q = __atomic_load_n(&s->slots[i].seq, __ATOMIC_ACQUIRE);
		if (q != sv->seq[i]) {
			sv->seq[i] = q;
			sv->moved_ms[i] = now;
		} else if (now - sv->moved_ms[i] > 3000) {
			ok = 0;
		}
	}
	return ok;
}

/* A worker ended: said, and started again unless stopping or unless
 * workers keep dying at start. 1 in a new worker. */
static int
reap(struct tg_server *s, struct supervisor *sv, pid_t pid, int ws)
{
	unsigned i;
	int r;

	for (i = 0; i < s->workers && sv->pids[i] != pid; i++)
		;
	if (i == s->workers)
		return 0;
	sv->alive--;
	sv->pids[i] = 0;
	s->slots[i].pid = 0;
	if (sv->stopping)
		return 0;
	if (WIFSIGNALED(ws))
		tg_log(s, TG_LOG_ERROR, "workers: worker %u (pid %d) died of signal %d; "
		    "starting it again", i, (int)pid, WTERMSIG(ws));
	else
		tg_log(s, TG_LOG_ERROR, "workers: worker %u (pid %d) exited with %d; "
		    "starting it again", i, (int)pid, WEXITSTATUS(ws));
	/* a worker that dies within 2 s of its start, five times running,
	 * will not get better by trying again */
	sv->quick_deaths = time(NULL) - sv->born[i] < 2 ? sv->quick_deaths + 1 : 0;
	if (sv->quick_deaths >= 5)
		tg_log(s, TG_LOG_ERROR, "workers: workers keep dying at start; stopping");
	else if ((r = start_one(s, sv, i, 1)) >= 0)
		return r;
	sv->stopping = sv->status = 1;
	tell_all(s, SIGTERM);
	return 0;
}

int
tg_workers_run(struct tg_server *s, int *exit_status)
{
	struct supervisor sv;
	sigset_t set;
	uint64_t wd_ms;
	unsigned i;
	int r;

	memset(&sv, 0, sizeof(sv));
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &sv.old);
	s->supervisor = getpid();
	for (i = 0; i < s->workers && !sv.stopping; i++) {
		if ((r = start_one(s, &sv, i, 0)) > 0)
			return 1;   /* the new worker */
		if (r < 0)
			sv.stopping = sv.status = 1;
	}
	if (!sv.stopping) {
		tg_log(s, TG_LOG_INFO, "workers: %u processes serve %s (%s)", s->workers,
		    s->listen, s->listen_inherited ? "sharing the socket from systemd" :
		    "SO_REUSEPORT");
		tg_sd_notify("READY=1\nSTATUS=%u workers serve %s", s->workers, s->listen);
	} else {
		tell_all(s, SIGTERM);
	}
	wd_ms = tg_sd_watchdog_ms();
	while (sv.alive > 0) {
		siginfo_t si;
		struct timespec ts = { (time_t)(wd_ms / 1000), (long)(wd_ms % 1000) * 1000000L };
		int sig = wd_ms ? sigtimedwait(&set, &si, &ts) : sigwaitinfo(&set, &si), ws;
		pid_t pid;

		if (wd_ms && !sv.stopping && workers_responsive(s, &sv))
			tg_sd_notify("WATCHDOG=1");
		if (sig == SIGTERM || sig == SIGINT) {
			if (!sv.stopping)
				tg_sd_notify("STOPPING=1");
			sv.stopping = 1;
			tell_all(s, sig);
		} else if (sig == SIGHUP) {
			/* each worker reloads on its own; the supervisor has nothing
			 * to wait for */
			tg_sd_reloading();
			tell_all(s, SIGHUP);
			sv.reloaded = 1;
			tg_sd_notify("READY=1");
		} else if (sig == SIGCHLD) {
			while ((pid = waitpid(-1, &ws, WNOHANG)) > 0)
				if (reap(s, &sv, pid, ws) > 0)
					return 1;
		}
	}
	sigprocmask(SIG_SETMASK, &sv.old, NULL);
	*exit_status = sv.status;
	return 0;
}

/* Every counter of metrics.h is summed across workers (the gauges are
 * the worker's own). */
#define TG_SUMMED_COUNTERS(X) TG_METRIC_COUNTERS(X)

/* The verified-chain cache's counts (the core's, per process), on top of
 * what this worker's predecessor had counted. */
static void
chain_counts(const struct tg_server *s, struct tg_metrics *m)
{
	uint64_t hits, misses;

	tg_chain_cache_counts(&hits, &misses);
	m->chain_hits = s->chain_base[0] + hits;
	m->chain_misses = s->chain_base[1] + misses;
}

void
tg_workers_publish(struct tg_server *s)
{
	struct tg_worker_slot *w;
	uint32_t seq;

	if (s->slots == NULL)
		return;
	w = &s->slots[s->worker_index];
	/* the chain cache counts in the core, per process */
	chain_counts(s, &s->m);
	seq = __atomic_load_n(&w->seq, __ATOMIC_RELAXED) | 1u;
	__atomic_store_n(&w->seq, seq, __ATOMIC_RELAXED);   /* odd: writing */
	/* release stores (plain moves on x86): none moves before the odd seq */
#define PUT(f, fam, lab, help) __atomic_store_n(&w->m.f, s->m.f, __ATOMIC_RELEASE);
	TG_SUMMED_COUNTERS(PUT)
#undef PUT
	__atomic_store_n(&w->nconns, (uint64_t)s->nconns, __ATOMIC_RELEASE);
	__atomic_store_n(&w->seq, seq + 1u, __ATOMIC_RELEASE);   /* even: done */
}

/* Adds a worker's published counters to a (and its connections to
 * *nconns); 0, or -1 when no consistent copy could be had (it is writing,
 * or died while writing). */
static int
add_slot(struct tg_metrics *a, size_t *nconns, struct tg_worker_slot *w)
{
	struct tg_metrics m;
	uint64_t n;
	uint32_t s1, s2;
	int tries;

	for (tries = 0; tries < 100; tries++) {
		s1 = __atomic_load_n(&w->seq, __ATOMIC_ACQUIRE);
		if (s1 & 1u)
			continue;
		/* acquire loads: the second look at seq cannot move before them */
#define GET(f, fam, lab, help) m.f = __atomic_load_n(&w->m.f, __ATOMIC_ACQUIRE);
		TG_SUMMED_COUNTERS(GET)
#undef GET
		n = __atomic_load_n(&w->nconns, __ATOMIC_ACQUIRE);
		s2 = __atomic_load_n(&w->seq, __ATOMIC_RELAXED);
		if (s1 != s2)
			continue;
#define ADD(f, fam, lab, help) a->f += m.f;
		TG_SUMMED_COUNTERS(ADD)
#undef ADD
		if (nconns)
			*nconns += (size_t)n;
		return 0;
	}
	return -1;
}

void
tg_workers_sum(const struct tg_server *s, struct tg_metrics *sum, size_t *nconns)
{
	unsigned i;

	*sum = s->m;
	chain_counts(s, sum);
	*nconns = s->nconns;
	if (s->slots == NULL)
		return;
	for (i = 0; i < s->workers; i++) {
		if (i == s->worker_index)
			continue;
		add_slot(sum, nconns, &s->slots[i]);   /* a worker mid-write: the next scrape */
	}
}
