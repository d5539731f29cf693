/*
 * events.c - per-workspace rings of recent events (events.h).
 *
 * A small list of rings, one per workspace that had an event, each a
 * fixed array of EVENTS_RING serialized events, and a list of watchers
 * woken on publish. One mutex guards it all: publishing and reading are
 * short copies.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#include "orchestrator/events.h"

#define COMPONENT "orchestrator"
#define CLOSED_TTL_S 300	/* a finished ring is dropped after this */

struct ev_item {
	uint64_t id;
	char type[16];
	char *text;		/* serialized JSON, owned */
};

struct ev_ring {
	char ws_id[80];
	struct ev_item items[EVENTS_RING];
	size_t head;		/* next slot to write */
	size_t count;
	bool closed;
	time_t closed_at;
	struct ev_ring *next;
};

struct ws_events_watch {
	char ws_id[80];
	void (*fn)(void *arg);
	void *arg;
	struct ws_events_watch *next;
};

struct ws_events {
	pthread_mutex_t mu;
	uint64_t last_id;
	struct ev_ring *rings;
	struct ws_events_watch *watchers;
};

int
ws_events_new(struct ws_events **out)
{
	struct ws_events *e = calloc(1, sizeof(*e));

	*out = NULL;
	if (e == NULL)
		return MOAT_ERR_NOMEM;
	pthread_mutex_init(&e->mu, NULL);
	/* Ids start at this start's wall-clock microseconds, so a client that
	 * resumes with Last-Event-ID after moatd restarted still gets every
	 * new event (ids stay below 2^53: exact in JSON). */
	e->last_id = (uint64_t)time(NULL) * 1000000u;
	*out = e;
	return 0;
}

static void
ring_free(struct ev_ring *r)
{
	for (size_t i = 0; i < EVENTS_RING; i++)
		free(r->items[i].text);
	free(r);
}

void
ws_events_free(struct ws_events *e)
{
	if (e == NULL)
		return;
	while (e->watchers != NULL) {
		struct ws_events_watch *n = e->watchers->next;

		free(e->watchers);
		e->watchers = n;
	}
	while (e->rings != NULL) {
		struct ev_ring *n = e->rings->next;

		ring_free(e->rings);
		e->rings = n;
	}
	pthread_mutex_destroy(&e->mu);
	free(e);
}

/* Finds ws_id's ring (creating it when create); drops stale closed rings
 * on the way. Caller holds the mutex. */
static struct ev_ring *
ring_find(struct ws_events *e, const char *ws_id, bool create)
{
	struct ev_ring **pp = &e->rings, *r;
	time_t now = time(NULL);

	while ((r = *pp) != NULL) {
		if (strcmp(r->ws_id, ws_id) == 0)
			return r;
		if (r->closed && now - r->closed_at > CLOSED_TTL_S) {
			*pp = r->next;
			ring_free(r);
			continue;
		}
		pp = &r->next;
	}
	if (!create || strlen(ws_id) >= sizeof(r->ws_id) ||
	    (r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	memcpy(r->ws_id, ws_id, strlen(ws_id) + 1);
	r->next = e->rings;
	e->rings = r;
	return r;
}

/* Wakes ws_id's watchers. Caller holds the mutex. */
static void
notify(struct ws_events *e, const char *ws_id)
{
	for (struct ws_events_watch *w = e->watchers; w != NULL; w = w->next)
		if (strcmp(w->ws_id, ws_id) == 0)
			w->fn(w->arg);
}

int
ws_events_watch(struct ws_events *e, const char *ws_id,
    void (*fn)(void *arg), void *arg, struct ws_events_watch **out)
{
	struct ws_events_watch *w;

	*out = NULL;
	if (strlen(ws_id) >= sizeof(w->ws_id))
		return MOAT_ERR_INVAL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return MOAT_ERR_NOMEM;
	memcpy(w->ws_id, ws_id, strlen(ws_id) + 1);
	w->fn = fn;
	w->arg = arg;
	pthread_mutex_lock(&e->mu);
	w->next = e->watchers;
	e->watchers = w;
	pthread_mutex_unlock(&e->mu);
	*out = w;
	return 0;
}

void
ws_events_unwatch(struct ws_events *e, struct ws_events_watch *w)
{
	struct ws_events_watch **pp;

	if (w == NULL)
		return;
	pthread_mutex_lock(&e->mu);
	for (pp = &e->watchers; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	pthread_mutex_unlock(&e->mu);
	free(w);
}

void
ws_events_publish(struct ws_events *e, const char *ws_id, const char *type,
    json_t *data)
{
	struct ev_ring *r;
	struct ev_item *it;
	char *text;

	if (data == NULL)
		data = json_object();
	if (data == NULL || json_object_set_new(data, "type",
	    json_string(type)) != 0 ||
	    (text = json_dumps(data, JSON_COMPACT)) == NULL) {
		json_decref(data);
		log_warn(COMPONENT, "workspace event dropped (out of memory)");
		return;
	}
	json_decref(data);
	pthread_mutex_lock(&e->mu);
	if ((r = ring_find(e, ws_id, true)) == NULL || r->closed) {
		pthread_mutex_unlock(&e->mu);
		free(text);
		return;
	}
	it = &r->items[r->head];
	free(it->text);
	it->text = text;
	it->id = ++e->last_id;
	snprintf(it->type, sizeof(it->type), "%s", type);
	r->head = (r->head + 1) % EVENTS_RING;
	if (r->count < EVENTS_RING)
		r->count++;
	notify(e, ws_id);
	pthread_mutex_unlock(&e->mu);
}

void
ws_events_close(struct ws_events *e, const char *ws_id)
{
	struct ev_ring *r;

	pthread_mutex_lock(&e->mu);
	if ((r = ring_find(e, ws_id, true)) != NULL && !r->closed) {
		r->closed = true;
		r->closed_at = time(NULL);
		notify(e, ws_id);
	}
	pthread_mutex_unlock(&e->mu);
}

int
ws_events_read(struct ws_events *e, const char *ws_id, uint64_t since,
    size_t max, json_t **out, bool *closed)
{
	struct ev_ring *r;
	json_t *arr = json_array();
	size_t first, n = 0;
	bool more = false;

	*out = NULL;
	*closed = false;
	if (arr == NULL)
		return MOAT_ERR_NOMEM;
	pthread_mutex_lock(&e->mu);
	if ((r = ring_find(e, ws_id, false)) != NULL) {
		first = (r->head + EVENTS_RING - r->count) % EVENTS_RING;
		for (size_t i = 0; i < r->count; i++) {
			struct ev_item *it = &r->items[(first + i) % EVENTS_RING];

			if (it->id <= since)
				continue;
			if (n == max) {
				more = true;
				break;
			}
			if (json_array_append_new(arr, json_pack("{s:I,s:s,s:s}",
			    "id", (json_int_t)it->id, "type", it->type, "data",
			    it->text)) != 0)
				break;
			n++;
		}
		*closed = r->closed && !more;
	}
	pthread_mutex_unlock(&e->mu);
	*out = arr;
	return 0;
}
