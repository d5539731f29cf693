/*
 * auditfwd.h - moat-proxy's audit events sent to moatd's collector socket
 * (audit.h's audit_client) instead of a local chain.
 *
 * The loops never block on it: auditfwd_emit() queues (bounded) and one
 * thread of its own sends, connecting (and reconnecting, with a short
 * back-off) to the collector. While moatd is away events wait in the
 * queue; when the queue is full auditfwd_emit() refuses with
 * MOAT_ERR_AGAIN, and the proxy refuses the action the event describes
 * (nothing leaves unaudited).
 */
#ifndef MOAT_PROXY_AUDITFWD_H
#define MOAT_PROXY_AUDITFWD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

struct auditfwd;

/* path: the collector socket (copied). max_queue: 0 means 65536. Starts
 * the thread; the first connect happens there. */
int auditfwd_new(struct auditfwd **out, const char *path, size_t max_queue)
    MOAT_MUST_CHECK;

/* Queues ev (takes it, also on error). Any thread, never blocks.
 * MOAT_ERR_AGAIN when the queue is full (ev dropped and counted). */
int auditfwd_emit(struct auditfwd *f, json_t *ev) MOAT_MUST_CHECK;

/* The same as a proxy_opts.emit function (arg is the struct auditfwd). */
int auditfwd_emit_fn(void *arg, json_t *ev);

/* Events sent and dropped so far. */
uint64_t auditfwd_sent(struct auditfwd *f);
uint64_t auditfwd_dropped(struct auditfwd *f);

/* Tries for up to wait_ms to send what is queued, then stops the thread
 * and frees (events still queued are counted as dropped and logged).
 * NULL is fine. */
void auditfwd_free(struct auditfwd *f, unsigned wait_ms);

#endif
