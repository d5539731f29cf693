/*
 * test_events_watch.c - workspace event rings (orchestrator/events.h): ids,
 * reading from an id, closing, and the watchers that wake a Server-Sent
 * Events stream as soon as something is published, including from another
 * thread into a libevent loop that has no timer of its own.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "orchestrator/events.h"

static void
counter(void *arg)
{
	(*(int *)arg)++;
}

static void
test_publish_read_close(void **state)
{
	struct ws_events *e = NULL;
	json_t *list = NULL;
	bool closed = true;
	json_int_t first;

	(void)state;
	assert_int_equal(ws_events_new(&e), 0);
	ws_events_publish(e, "ws1", "state", json_pack("{s:s}", "state",
	    "pending"));
	ws_events_publish(e, "ws2", "state", NULL);
	ws_events_publish(e, "ws1", "output", json_pack("{s:s}", "text", "hi"));
	assert_int_equal(ws_events_read(e, "ws1", 0, 10, &list, &closed), 0);
	assert_false(closed);
	assert_int_equal(json_array_size(list), 2);
	/* Ids start at the wall clock in microseconds (they keep growing
	 * across a restart of moatd). */
	first = json_integer_value(json_object_get(json_array_get(list, 0),
	    "id"));
	assert_true(first > (json_int_t)1600000000 * 1000000);
	assert_true(first < ((json_int_t)1 << 53));
	assert_string_equal(json_string_value(json_object_get(json_array_get(
	    list, 1), "type")), "output");
	assert_non_null(strstr(json_string_value(json_object_get(
	    json_array_get(list, 1), "data")), "\"text\":\"hi\""));
	json_decref(list);
	/* From an id: only what is newer. */
	assert_int_equal(ws_events_read(e, "ws1", (uint64_t)first, 10, &list,
	    &closed), 0);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);
	ws_events_close(e, "ws1");
	ws_events_publish(e, "ws1", "state", NULL);	/* dropped */
	assert_int_equal(ws_events_read(e, "ws1", (uint64_t)first + 2, 10,
	    &list, &closed), 0);
	assert_int_equal(json_array_size(list), 0);
	assert_true(closed);
	json_decref(list);
	ws_events_free(e);
}

static void
test_watchers_fire_for_their_workspace_only(void **state)
{
	struct ws_events *e = NULL;
	struct ws_events_watch *w1 = NULL, *w1b = NULL, *w2 = NULL;
	int n1 = 0, n1b = 0, n2 = 0;
	char longid[200];

	(void)state;
	assert_int_equal(ws_events_new(&e), 0);
	assert_int_equal(ws_events_watch(e, "ws1", counter, &n1, &w1), 0);
	assert_int_equal(ws_events_watch(e, "ws1", counter, &n1b, &w1b), 0);
	assert_int_equal(ws_events_watch(e, "ws2", counter, &n2, &w2), 0);
	ws_events_publish(e, "ws1", "state", NULL);
	assert_int_equal(n1, 1);
	assert_int_equal(n1b, 1);
	assert_int_equal(n2, 0);
	ws_events_publish(e, "ws3", "state", NULL);
	assert_int_equal(n1 + n1b + n2, 2);
	/* Unwatched: no more calls; the other watcher of ws1 stays. */
	ws_events_unwatch(e, w1);
	ws_events_publish(e, "ws1", "state", NULL);
	assert_int_equal(n1, 1);
	assert_int_equal(n1b, 2);
	/* Closing wakes readers too (they then see *closed). */
	ws_events_close(e, "ws2");
	assert_int_equal(n2, 1);
	ws_events_close(e, "ws2");	/* already closed: no second call */
	assert_int_equal(n2, 1);
	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = '\0';
	assert_int_equal(ws_events_watch(e, longid, counter, &n1, &w1),
	    MOAT_ERR_INVAL);
	assert_null(w1);
	ws_events_unwatch(e, NULL);
	ws_events_unwatch(e, w2);
	/* w1b is still registered: ws_events_free releases it. */
	ws_events_free(e);
}

/* --- cross-thread wake-up of a loop, the way events_stream.c uses it --- */

struct wake_ctx {
	struct ws_events *events;
	struct event *wake;
	struct event_base *base;
	int woken;
	bool timed_out;
};

static void
wake_activate(void *arg)
{
	struct wake_ctx *c = arg;

	event_active(c->wake, EV_TIMEOUT, 0);
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
	struct wake_ctx *c = arg;

	(void)fd;
	(void)what;
	c->woken++;
	event_base_loopbreak(c->base);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct wake_ctx *c = arg;

	(void)fd;
	(void)what;
	c->timed_out = true;
	event_base_loopbreak(c->base);
}

static void *
publisher(void *arg)
{
	struct wake_ctx *c = arg;

	ws_events_publish(c->events, "ws1", "state", json_pack("{s:s}",
	    "state", "running"));
	return NULL;
}

static void
test_watcher_wakes_a_loop_from_another_thread(void **state)
{
	struct wake_ctx c;
	struct ws_events_watch *w = NULL;
	struct event *guard;
	struct timeval five = { 5, 0 };
	pthread_t th;

	(void)state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(evthread_use_pthreads(), 0);
	assert_non_null(c.base = event_base_new());
	assert_int_equal(ws_events_new(&c.events), 0);
	assert_non_null(c.wake = event_new(c.base, -1, 0, on_wake, &c));
	/* Only a failure guard: the loop has nothing else to wake it. */
	assert_non_null(guard = event_new(c.base, -1, 0, on_timeout, &c));
	assert_int_equal(event_add(guard, &five), 0);
	assert_int_equal(ws_events_watch(c.events, "ws1", wake_activate, &c,
	    &w), 0);
	assert_int_equal(pthread_create(&th, NULL, publisher, &c), 0);
	assert_int_equal(event_base_dispatch(c.base), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_false(c.timed_out);
	assert_int_equal(c.woken, 1);
	ws_events_unwatch(c.events, w);
	event_free(guard);
	event_free(c.wake);
	ws_events_free(c.events);
	event_base_free(c.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_publish_read_close),
		cmocka_unit_test(test_watchers_fire_for_their_workspace_only),
		cmocka_unit_test(test_watcher_wakes_a_loop_from_another_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
