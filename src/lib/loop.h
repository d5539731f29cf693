/*
 * loop.h - event loops, signals, graceful shutdown and the worker pool.
 *
 * A struct loop_group owns N libevent bases, one per thread; thread 0 is the
 * thread that calls loop_group_run(). Nothing blocks a loop thread: blocking
 * work (disk, password hashing, DNS through libc, container API calls) goes to
 * a struct workpool, whose threads run it and then deliver the completion
 * callback back on the event base that submitted it.
 *
 * Shutdown: SIGINT and SIGTERM (or loop_group_stop() from any thread) call
 * the registered shutdown hooks on thread 0, then every loop stops after at
 * most the grace period. SIGHUP calls the reload hook on thread 0. SIGPIPE is
 * ignored.
 */
#ifndef MOAT_LOOP_H
#define MOAT_LOOP_H

#include <stddef.h>

#include <event2/event.h>

#include "errors.h"

struct loop_group;
struct workpool;

/* Enables libevent's pthread locking; call once before creating any base.
 * Idempotent. */
int loop_global_init(void) MOAT_MUST_CHECK;

/* The number of event-loop threads for a "threads" setting: configured
 * when it is 1 or more, else one per online CPU, at most 8 (at least 1). */
int loop_default_threads(long configured);

/* nthreads >= 1 bases; thread 0 runs on the caller of loop_group_run(). */
int loop_group_new(struct loop_group **out, int nthreads) MOAT_MUST_CHECK;

/* Flags for loop_group_new_flags(). */
enum {
	/* libevent's epoll changelist: the interest changes a callback makes
	 * (a bufferevent disabled then enabled again, say) are merged and
	 * applied once before the next wait, instead of one epoll_ctl(2)
	 * each. libevent's caveat: never with a descriptor dup()ed while
	 * another copy is registered on a base. moat-proxy uses it (about
	 * 10% less CPU per forwarded request, measured). */
	LOOP_EPOLL_CHANGELIST = 1 << 0,
};

/* loop_group_new with flags (LOOP_*). */
int loop_group_new_flags(struct loop_group **out, int nthreads,
    unsigned flags) MOAT_MUST_CHECK;
int loop_group_size(const struct loop_group *g);
struct event_base *loop_group_base(struct loop_group *g, int i); /* borrowed */

/* Hooks run on thread 0's base. on_shutdown: SIGINT/SIGTERM/loop_group_stop;
 * on_reload: SIGHUP. Either may be NULL. */
void loop_group_set_hooks(struct loop_group *g,
    void (*on_shutdown)(void *arg), void (*on_reload)(void *arg), void *arg);

/* Seconds after a shutdown request before every loop is forced to stop. */
void loop_group_set_grace(struct loop_group *g, unsigned seconds);

/* Installs signal handling and runs all loops until shutdown completes. */
int loop_group_run(struct loop_group *g) MOAT_MUST_CHECK;

/* Requests a graceful shutdown; safe from any thread. */
void loop_group_stop(struct loop_group *g);

/* Frees the group after loop_group_run() returned (NULL is fine). */
void loop_group_free(struct loop_group *g);

/* A pool of nthreads workers with at most max_queue waiting jobs. */
int workpool_new(struct workpool **out, int nthreads, size_t max_queue)
    MOAT_MUST_CHECK;

/* Queues work(arg) on a worker; then done(arg) runs on reply_base's thread
 * (done may be NULL). Until then the job holds a pending event on
 * reply_base, so a draining loop waits for it.
 * Returns MOAT_ERR_AGAIN without queuing when the queue is full, so callers
 * can answer "busy" instead of piling up work. */
int workpool_submit(struct workpool *p, struct event_base *reply_base,
    void (*work)(void *arg), void (*done)(void *arg), void *arg)
    MOAT_MUST_CHECK;

/* Jobs waiting (not yet running). */
size_t workpool_queued(struct workpool *p);

/* Finishes running jobs, drops queued ones (their done is not called),
 * joins threads and frees (NULL is fine). Call it once the reply bases no
 * longer run (after loop_group_run() returned) and before they are freed:
 * completions still pending are dropped with the queued jobs. */
void workpool_free(struct workpool *p);

#endif
