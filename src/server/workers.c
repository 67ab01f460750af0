/*
 * One process per worker (see workers.h). Processes, not threads: every
 * worker keeps the single-threaded server as it is (no lock on the hot
 * path), and a worker that crashes takes only its own connections with it.
 * What the workers must agree on is settled before the fork: the TLS
 * contexts and session ticket keys (tickets.c derives the same rotating keys
 * in every worker from the seed drawn before it), the sockets, the sandbox.
 */
#include <errno.h>
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

#include "error.h"
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
		if ((s->worker_fds[i] = tg_listen_open(s->listen, 1, err)) < 0)
			return -1;
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

static void add(struct tg_metrics *a, const struct tg_metrics *b);

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
	if (replacement) {
		/* the counters go on from where the dead worker left them, and
		 * the settings are read again if the others were reloaded since
		 * (the supervisor keeps the ones from the start) */
		add(&s->m, &s->slots[idx].m);
		s->reload_at_start = reloaded;
	}
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

int
tg_workers_run(struct tg_server *s, int *exit_status)
{
	sigset_t set, old;
	pid_t pids[TG_WORKERS_MAX];
	time_t born[TG_WORKERS_MAX];
	unsigned i, alive = 0, quick_deaths = 0;
	int stopping = 0, status = 0, reloaded = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &old);
	s->supervisor = getpid();
	for (i = 0; i < s->workers; i++) {
		if ((pids[i] = spawn(s, i, &old, 0, 0)) == 0)
			return 1;
		if (pids[i] < 0) {
			tg_log(s, TG_LOG_ERROR, "workers: cannot start worker %u: %s", i, strerror(errno));
			stopping = status = 1;
			break;
		}
		s->slots[i].pid = pids[i];
		born[i] = time(NULL);
		alive++;
	}
	if (!stopping)
		tg_log(s, TG_LOG_INFO, "workers: %u processes serve %s (SO_REUSEPORT)", s->workers,
		    s->listen);
	else
		tell_all(s, SIGTERM);
	while (alive > 0) {
		siginfo_t si;
		int sig = sigwaitinfo(&set, &si), ws;
		pid_t pid;

		if (sig == SIGTERM || sig == SIGINT) {
			stopping = 1;
			tell_all(s, sig);
			continue;
		}
		if (sig == SIGHUP) {
			tell_all(s, SIGHUP);
			reloaded = 1;
			continue;
		}
		if (sig != SIGCHLD)
			continue;
		while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
			for (i = 0; i < s->workers && pids[i] != pid; i++)
				;
			if (i == s->workers)
				continue;
			alive--;
			pids[i] = 0;
			s->slots[i].pid = 0;
			if (stopping)
				continue;
			if (WIFSIGNALED(ws))
				tg_log(s, TG_LOG_ERROR, "workers: worker %u (pid %d) died of signal %d; "
				    "starting it again", i, (int)pid, WTERMSIG(ws));
			else
				tg_log(s, TG_LOG_ERROR, "workers: worker %u (pid %d) exited with %d; "
				    "starting it again", i, (int)pid, WEXITSTATUS(ws));
			/* a worker that dies within 2 s of its start, five times
			 * running, will not get better by trying again */
			quick_deaths = time(NULL) - born[i] < 2 ? quick_deaths + 1 : 0;
			if (quick_deaths >= 5) {
				tg_log(s, TG_LOG_ERROR, "workers: workers keep dying at start; stopping");
				stopping = status = 1;
				tell_all(s, SIGTERM);
				continue;
			}
			if ((pids[i] = spawn(s, i, &old, 1, reloaded)) == 0)
				return 1;
			if (pids[i] < 0) {
				pids[i] = 0;
				stopping = status = 1;
				tell_all(s, SIGTERM);
				continue;
			}
			s->slots[i].pid = pids[i];
			born[i] = time(NULL);
			alive++;
		}
	}
	sigprocmask(SIG_SETMASK, &old, NULL);
	*exit_status = status;
	return 0;
}

void
tg_workers_publish(struct tg_server *s)
{
	struct tg_worker_slot *w;

	if (s->slots == NULL)
		return;
	w = &s->slots[s->worker_index];
	w->m = s->m;
	w->nconns = s->nconns;
}

static void
add(struct tg_metrics *a, const struct tg_metrics *b)
{
	size_t i;

	a->connections += b->connections;
	a->handshakes_ok += b->handshakes_ok;
	a->handshakes_refused += b->handshakes_refused;
	a->handshakes_failed += b->handshakes_failed;
	a->handshakes_resumed += b->handshakes_resumed;
	a->trust_accepted += b->trust_accepted;
	a->trust_recorded += b->trust_recorded;
	a->trust_rejected += b->trust_rejected;
	a->trust_warned += b->trust_warned;
	for (i = 0; i < 6; i++)
		a->requests[i] += b->requests[i];
	a->files_in += b->files_in;
	a->files_out += b->files_out;
	a->other_in += b->other_in;
	a->other_out += b->other_out;
	a->cert_swaps += b->cert_swaps;
	a->cert_swaps_refused += b->cert_swaps_refused;
}

void
tg_workers_sum(const struct tg_server *s, struct tg_metrics *sum, size_t *nconns)
{
	unsigned i;

	*sum = s->m;
	*nconns = s->nconns;
	if (s->slots == NULL)
		return;
	for (i = 0; i < s->workers; i++) {
		if (i == s->worker_index)
			continue;
		add(sum, &s->slots[i].m);
		*nconns += s->slots[i].nconns;
	}
}
