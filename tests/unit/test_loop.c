/*
 * test_loop.c - unit tests for loop.c: loop threads, stop from another
 * thread, signals (SIGTERM, SIGHUP raised at ourselves), draining bounded by
 * the grace period, and the worker pool (off-loop work, on-loop completion,
 * queue full, drop on free); bases with the epoll changelist when a
 * descriptor is closed and its number reused between two waits.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct hooks {
	atomic_int shutdowns, reloads;
	pthread_t shutdown_thread, reload_thread;
	struct loop_group *g;
};

static void
on_shutdown(void *arg)
{
	struct hooks *h = arg;

	h->shutdown_thread = pthread_self();
	atomic_fetch_add(&h->shutdowns, 1);
}

static void
on_reload(void *arg)
{
	struct hooks *h = arg;

	h->reload_thread = pthread_self();
	atomic_fetch_add(&h->reloads, 1);
}

/* --- loop group ---------------------------------------------------- */

struct seen {
	struct loop_group *g;
	pthread_t tid[4];
	atomic_int count;
	int n;
};

struct seen_slot {
	struct seen *s;
	int i;
};

static void
record_thread(evutil_socket_t fd, short what, void *arg)
{
	struct seen_slot *sl = arg;

	sl->s->tid[sl->i] = pthread_self();
	if (atomic_fetch_add(&sl->s->count, 1) + 1 == sl->s->n)
		loop_group_stop(sl->s->g);
}

static void
test_threads_run_their_base(void **state)
{
	struct loop_group *g = NULL;
	struct hooks h = { 0 };
	struct seen s = { 0 };
	struct seen_slot sl[4];

	assert_int_equal(loop_global_init(), 0);
	assert_int_equal(loop_global_init(), 0);
	assert_int_equal(loop_group_new(&g, 4), 0);
	assert_int_equal(loop_group_size(g), 4);
	assert_null(loop_group_base(g, 4));
	loop_group_set_hooks(g, on_shutdown, NULL, &h);
	s.g = g;
	s.n = 4;
	for (int i = 0; i < 4; i++) {
		sl[i].s = &s;
		sl[i].i = i;
		assert_non_null(loop_group_base(g, i));
		assert_int_equal(event_base_once(loop_group_base(g, i), -1,
		    EV_TIMEOUT, record_thread, &sl[i], NULL), 0);
	}
	assert_int_equal(loop_group_run(g), 0);
	assert_int_equal(atomic_load(&s.count), 4);
	assert_true(pthread_equal(s.tid[0], pthread_self()));
	for (int i = 1; i < 4; i++) {
		assert_false(pthread_equal(s.tid[i], pthread_self()));
		for (int k = 1; k < i; k++)
			assert_false(pthread_equal(s.tid[i], s.tid[k]));
	}
	assert_int_equal(atomic_load(&h.shutdowns), 1);
	assert_true(pthread_equal(h.shutdown_thread, pthread_self()));
	loop_group_free(g);
	loop_group_free(NULL);
}

static void *
stopper(void *arg)
{
	usleep(50 * 1000);
	loop_group_stop(arg);
	loop_group_stop(arg);	/* twice is fine */
	return NULL;
}

static void
test_stop_from_other_thread(void **state)
{
	struct loop_group *g = NULL;
	struct hooks h = { 0 };
	pthread_t t;
	double t0;

	assert_int_equal(loop_group_new(&g, 2), 0);
	loop_group_set_hooks(g, on_shutdown, on_reload, &h);
	assert_int_equal(pthread_create(&t, NULL, stopper, g), 0);
	t0 = now_s();
	assert_int_equal(loop_group_run(g), 0);
	assert_true(now_s() - t0 < 2.0);
	pthread_join(t, NULL);
	assert_int_equal(atomic_load(&h.shutdowns), 1);
	assert_int_equal(atomic_load(&h.reloads), 0);
	loop_group_free(g);
}

static void
test_stop_before_run(void **state)
{
	struct loop_group *g = NULL;
	struct hooks h = { 0 };

	assert_int_equal(loop_group_new(&g, 3), 0);
	loop_group_set_hooks(g, on_shutdown, NULL, &h);
	loop_group_stop(g);
	assert_int_equal(loop_group_run(g), 0);
	assert_int_equal(atomic_load(&h.shutdowns), 1);
	loop_group_free(g);
}

static void
raise_cb(evutil_socket_t fd, short what, void *arg)
{
	raise((int)(intptr_t)arg);
}

static void
test_signals(void **state)
{
	struct loop_group *g = NULL;
	struct hooks h = { 0 };
	const struct timeval hup_at = { 0, 20 * 1000 };
	const struct timeval term_at = { 0, 80 * 1000 };
	struct sigaction old;

	assert_int_equal(loop_group_new(&g, 2), 0);
	loop_group_set_hooks(g, on_shutdown, on_reload, &h);
	/* SIGHUP from another loop thread, SIGTERM from thread 0. */
	assert_int_equal(event_base_once(loop_group_base(g, 1), -1,
	    EV_TIMEOUT, raise_cb, (void *)(intptr_t)SIGHUP, &hup_at), 0);
	assert_int_equal(event_base_once(loop_group_base(g, 0), -1,
	    EV_TIMEOUT, raise_cb, (void *)(intptr_t)SIGTERM, &term_at), 0);
	assert_int_equal(loop_group_run(g), 0);
	assert_int_equal(atomic_load(&h.reloads), 1);
	assert_int_equal(atomic_load(&h.shutdowns), 1);
	assert_true(pthread_equal(h.reload_thread, pthread_self()));
	assert_true(pthread_equal(h.shutdown_thread, pthread_self()));
	/* SIGPIPE is ignored from now on. */
	assert_int_equal(sigaction(SIGPIPE, NULL, &old), 0);
	assert_ptr_equal(old.sa_handler, SIG_IGN);
	loop_group_free(g);
}

/* Work left after the hook: a timer on thread 1. */
static void
noop_cb(evutil_socket_t fd, short what, void *arg)
{
	atomic_int *fired = arg;

	atomic_fetch_add(fired, 1);
}

static void
test_drain_waits_for_work(void **state)
{
	struct loop_group *g = NULL;
	struct hooks h = { 0 };
	const struct timeval later = { 0, 300 * 1000 };
	atomic_int fired = 0;
	double t0, dt;

	/* Pending work (300 ms) is finished before the loops stop, well
	 * within the grace period. */
	assert_int_equal(loop_group_new(&g, 2), 0);
	loop_group_set_hooks(g, on_shutdown, NULL, &h);
	loop_group_set_grace(g, 5);
	assert_int_equal(event_base_once(loop_group_base(g, 1), -1,
	    EV_TIMEOUT, noop_cb, &fired, &later), 0);
	loop_group_stop(g);
	t0 = now_s();
	assert_int_equal(loop_group_run(g), 0);
	dt = now_s() - t0;
	assert_int_equal(atomic_load(&fired), 1);
	assert_true(dt >= 0.25);
	assert_true(dt < 3.0);
	loop_group_free(g);
}

static void
test_grace_bounds_drain(void **state)
{
	struct loop_group *g = NULL;
	struct event *ev;
	const struct timeval far = { 60, 0 };
	atomic_int fired = 0;
	double t0, dt;

	/* Work that would take a minute is cut at the 1 s grace period. */
	assert_int_equal(loop_group_new(&g, 2), 0);
	loop_group_set_grace(g, 1);
	ev = event_new(loop_group_base(g, 1), -1, 0, noop_cb, &fired);
	assert_non_null(ev);
	assert_int_equal(event_add(ev, &far), 0);
	loop_group_stop(g);
	t0 = now_s();
	assert_int_equal(loop_group_run(g), 0);
	dt = now_s() - t0;
	assert_int_equal(atomic_load(&fired), 0);
	assert_true(dt >= 0.9);
	assert_true(dt < 3.0);
	event_free(ev);
	loop_group_free(g);
}

static void
test_bad_args(void **state)
{
	struct loop_group *g = NULL;
	struct workpool *p = NULL;

	assert_int_equal(loop_group_new(&g, 0), MOAT_ERR_INVAL);
	assert_int_equal(loop_group_new(NULL, 1), MOAT_ERR_INVAL);
	assert_int_equal(workpool_new(&p, 0, 4), MOAT_ERR_INVAL);
	assert_int_equal(workpool_new(&p, 1, 0), MOAT_ERR_INVAL);
	assert_null(g);
	assert_null(p);
	workpool_free(NULL);
}

/* --- worker pool --------------------------------------------------- */

struct job {
	pthread_t work_tid, done_tid;
	atomic_int *done_count;
	int want;
	struct event_base *base;
	bool worked, done;
	pthread_mutex_t *gate_mu;	/* when set, work waits for open */
	pthread_cond_t *gate_cond;
	bool *gate_open;
	atomic_int *running;
};

static void
job_work(void *arg)
{
	struct job *j = arg;

	j->work_tid = pthread_self();
	j->worked = true;
	if (j->running != NULL)
		atomic_fetch_add(j->running, 1);
	if (j->gate_mu != NULL) {
		pthread_mutex_lock(j->gate_mu);
		while (!*j->gate_open)
			pthread_cond_wait(j->gate_cond, j->gate_mu);
		pthread_mutex_unlock(j->gate_mu);
	}
	usleep(1000);
}

static void
job_done(void *arg)
{
	struct job *j = arg;

	j->done_tid = pthread_self();
	j->done = true;
	atomic_fetch_add(j->done_count, 1);
}

static void
test_workpool_threads(void **state)
{
	struct workpool *p = NULL;
	struct event_base *base;
	struct job jobs[16];
	atomic_int done = 0;

	assert_int_equal(loop_global_init(), 0);
	assert_non_null(base = event_base_new());
	assert_int_equal(workpool_new(&p, 3, 16), 0);
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 16; i++) {
		jobs[i].done_count = &done;
		assert_int_equal(workpool_submit(p, base, job_work, job_done,
		    &jobs[i]), 0);
	}
	/* Nothing else is registered on base: the loop returns once every
	 * job is delivered, because each job keeps the base busy. */
	assert_true(event_base_loop(base, 0) >= 0);
	assert_int_equal(atomic_load(&done), 16);
	for (int i = 0; i < 16; i++) {
		assert_true(jobs[i].worked);
		assert_true(jobs[i].done);
		assert_false(pthread_equal(jobs[i].work_tid, pthread_self()));
		assert_true(pthread_equal(jobs[i].done_tid, pthread_self()));
	}
	workpool_free(p);
	event_base_free(base);
}

static void
test_workpool_queue_full(void **state)
{
	struct workpool *p = NULL;
	struct event_base *base;
	struct job jobs[4];
	atomic_int done = 0, running = 0;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	bool open = false;

	assert_non_null(base = event_base_new());
	assert_int_equal(workpool_new(&p, 1, 2), 0);
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 4; i++) {
		jobs[i].done_count = &done;
		jobs[i].gate_mu = &mu;
		jobs[i].gate_cond = &cond;
		jobs[i].gate_open = &open;
		jobs[i].running = &running;
	}
	/* Job 0 occupies the only worker... */
	assert_int_equal(workpool_submit(p, base, job_work, job_done,
	    &jobs[0]), 0);
	for (int i = 0; i < 2000 && atomic_load(&running) == 0; i++)
		usleep(1000);
	assert_int_equal(atomic_load(&running), 1);
	assert_int_equal(workpool_queued(p), 0);
	/* ...two wait, the third is refused. */
	assert_int_equal(workpool_submit(p, base, job_work, job_done,
	    &jobs[1]), 0);
	assert_int_equal(workpool_submit(p, base, job_work, job_done,
	    &jobs[2]), 0);
	assert_int_equal(workpool_queued(p), 2);
	assert_int_equal(workpool_submit(p, base, job_work, job_done,
	    &jobs[3]), MOAT_ERR_AGAIN);
	assert_int_equal(workpool_queued(p), 2);

	pthread_mutex_lock(&mu);
	open = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&mu);
	assert_true(event_base_loop(base, 0) >= 0);
	assert_int_equal(atomic_load(&done), 3);
	assert_false(jobs[3].worked);
	assert_int_equal(workpool_queued(p), 0);
	workpool_free(p);
	event_base_free(base);
}

static void
test_workpool_free_drops_queued(void **state)
{
	struct workpool *p = NULL;
	struct event_base *base;
	struct job jobs[3];
	atomic_int done = 0, running = 0;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	bool open = false;

	assert_non_null(base = event_base_new());
	assert_int_equal(workpool_new(&p, 1, 8), 0);
	memset(jobs, 0, sizeof(jobs));
	for (int i = 0; i < 3; i++) {
		jobs[i].done_count = &done;
		jobs[i].gate_mu = &mu;
		jobs[i].gate_cond = &cond;
		jobs[i].gate_open = &open;
		jobs[i].running = &running;
		assert_int_equal(workpool_submit(p, base, job_work, job_done,
		    &jobs[i]), 0);
	}
	for (int i = 0; i < 2000 && atomic_load(&running) == 0; i++)
		usleep(1000);
	pthread_mutex_lock(&mu);
	open = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&mu);
	/* The running job finishes; the queued ones are dropped; nothing
	 * is delivered since the base is not running (and ASan checks that
	 * nothing leaks). */
	workpool_free(p);
	assert_true(jobs[0].worked);
	assert_int_equal(atomic_load(&done), 0);
	event_base_free(base);
}

/* Submitting from a loop thread of a group: done comes back there, and a
 * draining group waits for the job. */
struct group_job {
	struct workpool *p;
	struct loop_group *g;
	struct job j;
	atomic_int done;
	pthread_t submit_tid;
	int submit_rc;
};

static void
slow_work(void *arg)
{
	struct group_job *gj = arg;

	gj->j.work_tid = pthread_self();
	usleep(200 * 1000);
}

static void
group_done(void *arg)
{
	struct group_job *gj = arg;

	gj->j.done_tid = pthread_self();
	atomic_fetch_add(&gj->done, 1);
}

static void
submit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct group_job *gj = arg;

	/* No cmocka assert here: this is not the test's thread. */
	gj->submit_tid = pthread_self();
	gj->submit_rc = workpool_submit(gj->p, loop_group_base(gj->g, 1),
	    slow_work, group_done, gj);
	loop_group_stop(gj->g);
}

static void
test_workpool_with_group(void **state)
{
	struct group_job gj;

	memset(&gj, 0, sizeof(gj));
	assert_int_equal(loop_group_new(&gj.g, 2), 0);
	assert_int_equal(workpool_new(&gj.p, 2, 4), 0);
	loop_group_set_grace(gj.g, 5);
	assert_int_equal(event_base_once(loop_group_base(gj.g, 1), -1,
	    EV_TIMEOUT, submit_cb, &gj, NULL), 0);
	assert_int_equal(loop_group_run(gj.g), 0);
	/* Stop was asked right after submitting; the drain waited. */
	assert_int_equal(gj.submit_rc, 0);
	assert_int_equal(atomic_load(&gj.done), 1);
	assert_true(pthread_equal(gj.j.done_tid, gj.submit_tid));
	assert_false(pthread_equal(gj.j.work_tid, gj.submit_tid));
	assert_false(pthread_equal(gj.submit_tid, pthread_self()));
	workpool_free(gj.p);
	loop_group_free(gj.g);
}

static void
count_read(evutil_socket_t fd, short what, void *arg)
{
	char b[16];

	(void)what;
	(void)read(fd, b, sizeof(b));
	(*(int *)arg)++;
}

/* With LOOP_EPOLL_CHANGELIST, interest changes are applied at the next
 * wait: an event deleted, its descriptor closed and the number reused by a
 * new socket, whose event is added, deleted and added again, all between
 * two waits, must still fire for the new socket. */
static void
test_changelist_fd_reuse(void **state)
{
	struct loop_group *g = NULL;
	struct event_base *b;
	struct event *e1, *e2;
	int sp1[2], sp2[2], n1 = 0, n2 = 0;

	(void)state;
	assert_int_equal(loop_group_new_flags(&g, 1, LOOP_EPOLL_CHANGELIST), 0);
	b = loop_group_base(g, 0);
	assert_non_null(b);
	assert_string_equal(event_base_get_method(b), "epoll (with changelist)");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp1), 0);
	e1 = event_new(b, sp1[0], EV_READ | EV_PERSIST, count_read, &n1);
	assert_non_null(e1);
	assert_int_equal(event_add(e1, NULL), 0);
	assert_int_equal(write(sp1[1], "a", 1), 1);
	for (int i = 0; i < 5 && n1 == 0; i++)
		(void)event_base_loop(b, EVLOOP_NONBLOCK);
	assert_int_equal(n1, 1);

	event_free(e1);
	close(sp1[0]);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp2), 0);
	assert_int_equal(sp2[0], sp1[0]);	/* the number is reused */
	e2 = event_new(b, sp2[0], EV_READ | EV_PERSIST, count_read, &n2);
	assert_non_null(e2);
	assert_int_equal(event_add(e2, NULL), 0);
	assert_int_equal(event_del(e2), 0);
	assert_int_equal(event_add(e2, NULL), 0);
	assert_int_equal(write(sp2[1], "b", 1), 1);
	for (int i = 0; i < 50 && n2 == 0; i++) {
		(void)event_base_loop(b, EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_int_equal(n2, 1);
	assert_int_equal(n1, 1);
	event_free(e2);
	close(sp1[1]);
	close(sp2[0]);
	close(sp2[1]);
	loop_group_free(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_run_their_base),
		cmocka_unit_test(test_stop_from_other_thread),
		cmocka_unit_test(test_stop_before_run),
		cmocka_unit_test(test_signals),
		cmocka_unit_test(test_drain_waits_for_work),
		cmocka_unit_test(test_grace_bounds_drain),
		cmocka_unit_test(test_bad_args),
		cmocka_unit_test(test_changelist_fd_reuse),
		cmocka_unit_test(test_workpool_threads),
		cmocka_unit_test(test_workpool_queue_full),
		cmocka_unit_test(test_workpool_free_drops_queued),
		cmocka_unit_test(test_workpool_with_group),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
