/*
 * events_stream.c - Server-Sent Events for one workspace (orch.h,
 * orch_events_stream): a connection on an event loop that reads the
 * workspace's event ring (events.h) when woken by a publish (a watcher
 * activates the stream's wake event from the publishing thread; libevent
 * runs with pthreads locking, loop.c) and, as a fallback, every 200 ms,
 * and writes what is new as
 *   id: N / event: TYPE / data: JSON
 * frames, with a comment line every 15 s so proxies keep it open. The
 * stream ends after the workspace's "deleted" event, when the client goes
 * away, or when a slow client lets 1 MiB pile up unread.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"

#include "orchestrator/events.h"
#include "orchestrator/orch_int.h"

#define POLL_MS 200
#define PING_EVERY 75		/* polls: 15 s */
#define MAX_PENDING (1024 * 1024)
#define BATCH 64

struct sse {
	struct ws_events *events;
	char ws_id[80];
	uint64_t last;
	unsigned polls;
	bool closing;
	struct bufferevent *bev;
	struct event *timer;
	struct event *wake;		/* activated by the watcher */
	struct ws_events_watch *watch;
};

static void
sse_free(struct sse *s)
{
	if (s == NULL)
		return;
	/* First, so the publishing thread no longer touches s->wake. */
	ws_events_unwatch(s->events, s->watch);
	if (s->wake != NULL)
		event_free(s->wake);
	if (s->timer != NULL)
		event_free(s->timer);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
	free(s);
}

static void
sse_on_write(struct bufferevent *bev, void *arg)
{
	struct sse *s = arg;

	(void)bev;
	if (s->closing)
		sse_free(s);
}

static void
sse_on_read(struct bufferevent *bev, void *arg)
{
	(void)arg;
	evbuffer_drain(bufferevent_get_input(bev),
	    evbuffer_get_length(bufferevent_get_input(bev)));
}

static void
sse_on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	sse_free(arg);
}

/* Runs on the publishing thread, under the events' mutex. */
static void
sse_wake(void *arg)
{
	struct sse *s = arg;

	event_active(s->wake, EV_TIMEOUT, 0);
}

/* Writes what is new; tick: called by the timer (counts towards the
 * keep-alive comment). */
static void
sse_send(struct sse *s, bool tick)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	json_t *list = NULL, *e;
	bool closed = false;
	size_t i;

	if (s->closing)
		return;
	if (evbuffer_get_length(out) > MAX_PENDING) {
		sse_free(s);
		return;
	}
	if (ws_events_read(s->events, s->ws_id, s->last, BATCH, &list,
	    &closed) != 0)
		return;
	json_array_foreach(list, i, e) {
		evbuffer_add_printf(out, "id: %lld\nevent: %s\ndata: %s\n\n",
		    (long long)json_integer_value(json_object_get(e, "id")),
		    json_string_value(json_object_get(e, "type")),
		    json_string_value(json_object_get(e, "data")));
		s->last = (uint64_t)json_integer_value(json_object_get(e,
		    "id"));
	}
	json_decref(list);
	if (tick && ++s->polls % PING_EVERY == 0)
		evbuffer_add_printf(out, ": keep-alive\n\n");
	if (closed) {
		s->closing = true;
		event_del(s->timer);
		if (evbuffer_get_length(out) == 0)
			sse_free(s);
	}
}

static void
sse_poll(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sse_send(arg, true);
}

static void
sse_woken(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	sse_send(arg, false);
}

void
orch_events_stream(struct orch *o, const char *ws_id, uint64_t since,
    struct bufferevent *bev, struct event_base *base)
{
	struct timeval tv = { 0, POLL_MS * 1000 };
	struct sse *s = calloc(1, sizeof(*s));

	if (s == NULL || strlen(ws_id) >= sizeof(s->ws_id)) {
		free(s);
		bufferevent_free(bev);
		return;
	}
	s->events = o->events;
	memcpy(s->ws_id, ws_id, strlen(ws_id) + 1);
	s->last = since;
	s->bev = bev;
	bufferevent_setcb(bev, sse_on_read, sse_on_write, sse_on_event, s);
	if (bufferevent_enable(bev, EV_READ | EV_WRITE) != 0 ||
	    (s->timer = event_new(base, -1, EV_PERSIST, sse_poll, s)) == NULL ||
	    (s->wake = event_new(base, -1, 0, sse_woken, s)) == NULL ||
	    event_add(s->timer, &tv) != 0 ||
	    ws_events_watch(s->events, s->ws_id, sse_wake, s, &s->watch) != 0) {
		sse_free(s);
		return;
	}
	sse_send(s, false);
}
