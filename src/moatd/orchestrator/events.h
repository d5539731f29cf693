/*
 * events.h - recent events of each workspace, in memory, for the
 * Server-Sent Events endpoint: state changes, image pull progress, startup
 * script output.
 *
 * Every event gets an id from one counter (monotonic for the process), so
 * a client reconnecting with Last-Event-ID resumes where it left off as
 * long as the event is still in its workspace's ring (the last
 * EVENTS_RING). Text that came from a workspace or a registry is passed
 * through events_clean() first: no control characters reach a terminal.
 *
 * Thread-safe: the reconciler publishes, loop threads read (woken by a
 * watcher as soon as something is published).
 */
#ifndef MOATD_EVENTS_H
#define MOATD_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"
#include "textclean.h"

#define EVENTS_RING 256

struct ws_events;

int ws_events_new(struct ws_events **out) MOAT_MUST_CHECK;
void ws_events_free(struct ws_events *e);

/* Appends {"type": type, ...data} for ws_id; steals data (an object; NULL
 * is an empty one). Drops the event when out of memory (logged). */
void ws_events_publish(struct ws_events *e, const char *ws_id,
    const char *type, json_t *data);

/* Marks ws_id finished (deleted): readers get what is left, then
 * *closed. The ring is dropped once read or after a while. */
void ws_events_close(struct ws_events *e, const char *ws_id);

/*
 * Events of ws_id with id > since, oldest first, at most max: *out is a
 * new JSON array of {"id": n, "type": t, "data": text}, where text is the
 * event serialized as JSON. *closed is true when the workspace is finished
 * and nothing newer remains.
 */
int ws_events_read(struct ws_events *e, const char *ws_id, uint64_t since,
    size_t max, json_t **out, bool *closed) MOAT_MUST_CHECK;

/*
 * Watchers: fn(arg) is called, with the events' mutex held, each time an
 * event is published for ws_id (or the workspace is closed), so a reader
 * can wake up at once instead of polling. fn must be short and must not
 * call back into ws_events (event_active() on a libevent event with
 * threading enabled is the intended use). After ws_events_unwatch returns,
 * fn is not running and will not be called again for that handle.
 */
struct ws_events_watch;
int ws_events_watch(struct ws_events *e, const char *ws_id,
    void (*fn)(void *arg), void *arg, struct ws_events_watch **out)
    MOAT_MUST_CHECK;
/* NULL is fine. */
void ws_events_unwatch(struct ws_events *e, struct ws_events_watch *w);

/* Untrusted text for an event: text_clean() (textclean.h). */
#define events_clean text_clean

#endif
