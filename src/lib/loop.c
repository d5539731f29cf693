/*
 * loop.c - event loop threads, signals, graceful shutdown and the worker
 * pool (see loop.h).
 *
 * Each loop thread runs its base with EVLOOP_NO_EXIT_ON_EMPTY until a
 * shutdown starts. Shutdown happens on thread 0: the shutdown hook runs (it
 * typically closes listeners and asks connections to finish), the signal
 * events are removed, and every thread is woken to switch to "drain" mode:
 * event_base_loop(base, 0), which returns once the base has no more pending
 * events, that is, when the work the hook left (open connections, worker
 * jobs) is done. A watchdog thread breaks every loop when the grace period
 * ends first. Wake-ups go through an event made active on each base rather
 * than event_base_loopbreak() from a foreign thread, so that a wake-up sent
 * just before a thread enters its loop is never lost.
 *
 * After the first SIGINT/SIGTERM the signal events are gone and the default
 * disposition is back, so a second signal ends the process at once.
 *
 * The worker pool keeps, for every submitted job, an event on the reply
 * base with a long timeout: it keeps that base from counting as empty while
 * the job runs (so draining waits for it), and the worker makes it active
 * when the job is done, which runs the completion on the base's thread.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/thread.h>

#include "log.h"
#include "loop.h"

#define LOOP_DEFAULT_GRACE 10	/* seconds */
#define WP_KEEPALIVE_SEC 3600	/* re-armed while a job runs */

/* --- Global init ---------------------------------------------------- */

static pthread_once_t loop_once = PTHREAD_ONCE_INIT;
static int loop_once_result = MOAT_ERR_IO;	/* written once, under once */

static void
loop_do_global_init(void)
{
	loop_once_result = evthread_use_pthreads() == 0 ? 0 : MOAT_ERR_IO;
}

int
loop_global_init(void)
{
	pthread_once(&loop_once, loop_do_global_init);
	return loop_once_result;
}

/* --- Loop group ------------------------------------------------------ */

/* Per loop thread. */
struct loop_thr {
	struct loop_group *g;
	int i;
	struct event *wake;	/* owned; activated, never added */
	bool in_drain;		/* touched by thread i only */
};

struct loop_group {
	int n;
	struct event_base **bases;	/* owned, n */
	struct loop_thr *thr;		/* owned, n */
	pthread_t *threads;		/* threads[0] unused */
	struct event *stop_ev;		/* on base 0; activated by stop() */
	struct event *sig[3];		/* SIGINT, SIGTERM, SIGHUP on base 0 */
	void (*on_shutdown)(void *);
	void (*on_reload)(void *);
	void *hook_arg;
	unsigned grace;

	atomic_bool draining;		/* shutdown started: run until empty */
	atomic_bool forced;		/* grace over: stop now */
	bool shutdown_done;		/* thread 0 only */

	pthread_mutex_t wd_mu;		/* watchdog */
	pthread_cond_t wd_cond;
	bool wd_started, wd_finish;
	pthread_t wd_thread;
};

static const int loop_signals[3] = { SIGINT, SIGTERM, SIGHUP };

/* Runs on the base's own thread: leave the current event_base_loop so the
 * thread re-reads draining/forced. A wake-up that arrives once the thread
 * is already draining only counts when the grace period is over. */
static void
loop_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct loop_thr *t = arg;

	if (!t->in_drain || atomic_load(&t->g->forced))
		event_base_loopbreak(t->g->bases[t->i]);
}

static void
loop_wake_all(struct loop_group *g)
{
	for (int i = 0; i < g->n; i++)
		event_active(g->thr[i].wake, EV_READ, 0);
}

static void
loop_force(struct loop_group *g)
{
	atomic_store(&g->forced, true);
	loop_wake_all(g);
}

static void *
loop_watchdog(void *arg)
{
	struct loop_group *g = arg;
	struct timespec deadline;
	bool fire;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += g->grace;
	pthread_mutex_lock(&g->wd_mu);
	while (!g->wd_finish) {
		if (pthread_cond_timedwait(&g->wd_cond, &g->wd_mu,
		    &deadline) == ETIMEDOUT)
			break;
	}
	fire = !g->wd_finish;
	pthread_mutex_unlock(&g->wd_mu);
	if (fire) {
		log_warn("loop", "grace period over, stopping loops",
		    LF_INT("grace_s", g->grace));
		loop_force(g);
	}
	return NULL;
}

static void
loop_del_signals(struct loop_group *g)
{
	for (int i = 0; i < 3; i++)
		if (g->sig[i] != NULL)
			event_del(g->sig[i]);
}

/* On thread 0: hook, then drain every base, bounded by the grace period. */
static void
loop_begin_shutdown(struct loop_group *g)
{
	if (g->shutdown_done)
		return;
	g->shutdown_done = true;
	log_info("loop", "shutting down", LF_INT("grace_s", g->grace));
	if (g->on_shutdown != NULL)
		g->on_shutdown(g->hook_arg);
	loop_del_signals(g);
	atomic_store(&g->draining, true);
	pthread_mutex_lock(&g->wd_mu);
	if (!g->wd_started) {
		if (pthread_create(&g->wd_thread, NULL, loop_watchdog, g) == 0)
			g->wd_started = true;
	}
	pthread_mutex_unlock(&g->wd_mu);
	if (!g->wd_started) {
		log_error("loop", "cannot start shutdown watchdog");
		loop_force(g);
		return;
	}
	loop_wake_all(g);
}

static void
loop_stop_cb(evutil_socket_t fd, short what, void *arg)
{
	loop_begin_shutdown(arg);
}

static void
loop_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct loop_group *g = arg;

	if (sig == SIGHUP) {
		log_info("loop", "SIGHUP: reload");
		if (g->on_reload != NULL)
			g->on_reload(g->hook_arg);
		return;
	}
	log_info("loop", "signal received",
	    LF_STR("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"));
	loop_begin_shutdown(g);
}

int
loop_group_new(struct loop_group **out, int nthreads)
{
	return loop_group_new_flags(out, nthreads, 0);
}

/* A base for a loop thread, with the group's flags. */
static struct event_base *
loop_base_new(unsigned flags)
{
	struct event_config *cfg;
	struct event_base *b;

	if ((flags & LOOP_EPOLL_CHANGELIST) == 0)
		return event_base_new();
	if ((cfg = event_config_new()) == NULL)
		return NULL;
	if (event_config_set_flag(cfg,
	    EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) != 0) {
		event_config_free(cfg);
		return NULL;
	}
	b = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return b;
}

int
loop_group_new_flags(struct loop_group **out, int nthreads, unsigned flags)
{
	struct loop_group *g = NULL;
	int r;

	if (out == NULL || nthreads < 1 || nthreads > 1024)
		return MOAT_ERR_INVAL;
	if ((r = loop_global_init()) != 0)
		return r;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return MOAT_ERR_NOMEM;
	g->n = nthreads;
	g->grace = LOOP_DEFAULT_GRACE;
	atomic_init(&g->draining, false);
	atomic_init(&g->forced, false);
	r = MOAT_ERR_NOMEM;
	if (pthread_mutex_init(&g->wd_mu, NULL) != 0) {
		free(g);
		return MOAT_ERR_NOMEM;
	}
	{
		pthread_condattr_t ca;

		if (pthread_condattr_init(&ca) != 0 ||
		    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
		    pthread_cond_init(&g->wd_cond, &ca) != 0) {
			pthread_mutex_destroy(&g->wd_mu);
			free(g);
			return MOAT_ERR_NOMEM;
		}
		pthread_condattr_destroy(&ca);
	}
	if ((g->bases = calloc((size_t)nthreads, sizeof(*g->bases))) == NULL ||
	    (g->thr = calloc((size_t)nthreads, sizeof(*g->thr))) == NULL ||
	    (g->threads = calloc((size_t)nthreads, sizeof(*g->threads))) == NULL)
		goto out;
	for (int i = 0; i < nthreads; i++) {
		if ((g->bases[i] = loop_base_new(flags)) == NULL)
			goto out;
		g->thr[i].g = g;
		g->thr[i].i = i;
		if ((g->thr[i].wake = event_new(g->bases[i], -1, 0,
		    loop_wake_cb, &g->thr[i])) == NULL)
			goto out;
	}
	if ((g->stop_ev = event_new(g->bases[0], -1, 0, loop_stop_cb,
	    g)) == NULL)
		goto out;
	for (int i = 0; i < 3; i++) {
		if ((g->sig[i] = evsignal_new(g->bases[0], loop_signals[i],
		    loop_signal_cb, g)) == NULL)
			goto out;
	}
	*out = g;
	g = NULL;
	r = 0;
out:
	if (g != NULL)
		log_error("loop", "cannot create event bases",
		    LF_INT("threads", nthreads));
	loop_group_free(g);
	return r;
}

int
loop_group_size(const struct loop_group *g)
{
	return g->n;
}

struct event_base *
loop_group_base(struct loop_group *g, int i)
{
	if (g == NULL || i < 0 || i >= g->n)
		return NULL;
	return g->bases[i];
}

void
loop_group_set_hooks(struct loop_group *g, void (*on_shutdown)(void *arg),
    void (*on_reload)(void *arg), void *arg)
{
	g->on_shutdown = on_shutdown;
	g->on_reload = on_reload;
	g->hook_arg = arg;
}

void
loop_group_set_grace(struct loop_group *g, unsigned seconds)
{
	g->grace = seconds;
}

/* The life of one loop thread (thread 0 included). Returns -1 when the
 * base failed. */
static int
loop_thread_run(struct loop_group *g, int i)
{
	struct event_base *b = g->bases[i];

	while (!atomic_load(&g->draining) && !atomic_load(&g->forced)) {
		if (event_base_loop(b, EVLOOP_NO_EXIT_ON_EMPTY) < 0)
			return -1;
	}
	g->thr[i].in_drain = true;
	/* Until nothing is pending, or a forced break. */
	if (!atomic_load(&g->forced) && event_base_loop(b, 0) < 0)
		return -1;
	return 0;
}

static void *
loop_thread_main(void *p)
{
	struct loop_thr *t = p;
	struct loop_group *g = t->g;
	int i = t->i;

	if (loop_thread_run(g, i) < 0) {
		log_error("loop", "event loop failed", LF_INT("thread", i));
		loop_force(g);
	}
	return NULL;
}

int
loop_group_run(struct loop_group *g)
{
	struct sigaction sa;
	int started = 1, r = MOAT_ERR_IO;

	if (g == NULL)
		return MOAT_ERR_INVAL;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return moat_err_from_errno(errno);
	for (int i = 0; i < 3; i++) {
		if (event_add(g->sig[i], NULL) != 0) {
			log_error("loop", "cannot install signal handler");
			loop_del_signals(g);
			return MOAT_ERR_IO;
		}
	}
	for (; started < g->n; started++) {
		if (pthread_create(&g->threads[started], NULL,
		    loop_thread_main, &g->thr[started]) != 0)
			break;
	}
	if (started < g->n) {
		log_error("loop", "cannot start loop threads",
		    LF_INT("threads", g->n));
		loop_force(g);
		r = MOAT_ERR_NOMEM;
	} else if (loop_thread_run(g, 0) < 0) {
		log_error("loop", "event loop failed", LF_INT("thread", 0));
		loop_force(g);
	} else {
		r = 0;
	}
	for (int i = 1; i < started; i++)
		pthread_join(g->threads[i], NULL);
	loop_del_signals(g);
	pthread_mutex_lock(&g->wd_mu);
	g->wd_finish = true;
	pthread_cond_signal(&g->wd_cond);
	pthread_mutex_unlock(&g->wd_mu);
	if (g->wd_started) {
		pthread_join(g->wd_thread, NULL);
		g->wd_started = false;
	}
	if (r == 0)
		log_info("loop", "all loops stopped");
	return r;
}

void
loop_group_stop(struct loop_group *g)
{
	if (g != NULL)
		event_active(g->stop_ev, EV_READ, 0);
}

void
loop_group_free(struct loop_group *g)
{
	if (g == NULL)
		return;
	for (int i = 0; i < 3; i++)
		if (g->sig[i] != NULL)
			event_free(g->sig[i]);
	if (g->stop_ev != NULL)
		event_free(g->stop_ev);
	for (int i = 0; i < g->n; i++) {
		if (g->thr != NULL && g->thr[i].wake != NULL)
			event_free(g->thr[i].wake);
		if (g->bases != NULL && g->bases[i] != NULL)
			event_base_free(g->bases[i]);
	}
	free(g->thr);
	free(g->bases);
	free(g->threads);
	pthread_cond_destroy(&g->wd_cond);
	pthread_mutex_destroy(&g->wd_mu);
	free(g);
}

/* --- Worker pool ----------------------------------------------------- */

struct wp_job {
	void (*work)(void *);
	void (*done)(void *);
	void *arg;
	struct event *ev;	/* on the reply base; owned */
	struct workpool *pool;
	bool finished;		/* under pool->mu */
	struct wp_job *next;	/* waiting queue */
	struct wp_job *lprev, *lnext; /* all jobs not yet delivered */
};

struct workpool {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t *threads;
	int nthreads;		/* started */
	size_t max_queue;
	size_t queued;
	struct wp_job *head, *tail;	/* waiting, FIFO */
	struct wp_job *live;		/* submitted, not delivered */
	bool stopping;
};

static void
wp_unlink(struct workpool *p, struct wp_job *j)
{
	if (j->lprev != NULL)
		j->lprev->lnext = j->lnext;
	else
		p->live = j->lnext;
	if (j->lnext != NULL)
		j->lnext->lprev = j->lprev;
	j->lprev = j->lnext = NULL;
}

/* On the reply base's thread: either the keep-alive timer (job still
 * running: re-arm) or the worker's activation (deliver). */
static void
wp_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct wp_job *j = arg;
	struct workpool *p = j->pool;
	const struct timeval keep = { WP_KEEPALIVE_SEC, 0 };
	bool finished;

	pthread_mutex_lock(&p->mu);
	finished = j->finished;
	if (finished)
		wp_unlink(p, j);
	pthread_mutex_unlock(&p->mu);
	if (!finished) {
		if (event_add(j->ev, &keep) != 0)
			log_error("workpool", "cannot re-arm job event");
		return;
	}
	event_free(j->ev);
	if (j->done != NULL)
		j->done(j->arg);
	free(j);
}

static void *
wp_worker(void *arg)
{
	struct workpool *p = arg;
	struct wp_job *j;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (!p->stopping && p->head == NULL)
			pthread_cond_wait(&p->cond, &p->mu);
		if (p->stopping)
			break;
		j = p->head;
		p->head = j->next;
		if (p->head == NULL)
			p->tail = NULL;
		p->queued--;
		pthread_mutex_unlock(&p->mu);

		j->work(j->arg);

		pthread_mutex_lock(&p->mu);
		j->finished = true;
		/* After this the loop thread may free j at any time. */
		event_active(j->ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

static void
wp_destroy(struct workpool *p)
{
	struct wp_job *j;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	/* Queued jobs are dropped; finished ones whose base no longer runs
	 * are never delivered. Neither gets its done call. */
	while ((j = p->live) != NULL) {
		wp_unlink(p, j);
		event_free(j->ev);
		free(j);
	}
	free(p->threads);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int
workpool_new(struct workpool **out, int nthreads, size_t max_queue)
{
	struct workpool *p;
	int r = MOAT_ERR_NOMEM;

	if (out == NULL || nthreads < 1 || nthreads > 1024 || max_queue < 1)
		return MOAT_ERR_INVAL;
	if ((r = loop_global_init()) != 0)
		return r;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return MOAT_ERR_NOMEM;
	if (pthread_mutex_init(&p->mu, NULL) != 0) {
		free(p);
		return MOAT_ERR_NOMEM;
	}
	if (pthread_cond_init(&p->cond, NULL) != 0) {
		pthread_mutex_destroy(&p->mu);
		free(p);
		return MOAT_ERR_NOMEM;
	}
	p->max_queue = max_queue;
	r = MOAT_ERR_NOMEM;
	if ((p->threads = calloc((size_t)nthreads, sizeof(*p->threads))) == NULL)
		goto out;
	for (; p->nthreads < nthreads; p->nthreads++) {
		if (pthread_create(&p->threads[p->nthreads], NULL, wp_worker,
		    p) != 0) {
			log_error("workpool", "cannot start worker threads",
			    LF_INT("threads", nthreads));
			goto out;
		}
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	wp_destroy(p);
	return r;
}

int
workpool_submit(struct workpool *p, struct event_base *reply_base,
    void (*work)(void *arg), void (*done)(void *arg), void *arg)
{
	const struct timeval keep = { WP_KEEPALIVE_SEC, 0 };
	struct wp_job *j = NULL;
	int r = MOAT_ERR_INVAL;

	if (p == NULL || reply_base == NULL || work == NULL)
		return MOAT_ERR_INVAL;
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return MOAT_ERR_NOMEM;
	j->work = work;
	j->done = done;
	j->arg = arg;
	j->pool = p;
	r = MOAT_ERR_NOMEM;
	if ((j->ev = event_new(reply_base, -1, 0, wp_deliver, j)) == NULL)
		goto out;
	pthread_mutex_lock(&p->mu);
	if (p->stopping || p->queued >= p->max_queue) {
		pthread_mutex_unlock(&p->mu);
		r = MOAT_ERR_AGAIN;
		goto out;
	}
	/* Armed before a worker can see the job, so the activation always
	 * finds a fully set-up event. */
	if (event_add(j->ev, &keep) != 0) {
		pthread_mutex_unlock(&p->mu);
		r = MOAT_ERR_IO;
		goto out;
	}
	if (p->tail != NULL)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	p->queued++;
	j->lnext = p->live;
	if (p->live != NULL)
		p->live->lprev = j;
	p->live = j;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->mu);
	j = NULL;
	r = 0;
out:
	if (j != NULL) {
		if (j->ev != NULL)
			event_free(j->ev);
		free(j);
	}
	return r;
}

size_t
workpool_queued(struct workpool *p)
{
	size_t n;

	pthread_mutex_lock(&p->mu);
	n = p->queued;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void
workpool_free(struct workpool *p)
{
	wp_destroy(p);
}

int
loop_default_threads(long configured)
{
	long n = configured;

	if (n <= 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		if (n < 1)
			n = 1;
		if (n > 8)
			n = 8;
	}
	return (int)n;
}
