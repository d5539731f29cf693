/*
 * auditfwd.c - moat-proxy's audit events to moatd's collector (see
 * auditfwd.h): a bounded ring of events and one sender thread.
 *
 * The thread takes the oldest event, sends it with audit_client_send()
 * (a blocking SOCK_SEQPACKET send, which is fine here and slows nothing
 * but this thread), and drops it only once sent: after a failed send it
 * reconnects (every 200 ms while the collector is away) and sends the
 * same event again.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "auditfwd.h"
#include "log.h"

#define COMPONENT "moat-proxy"
#define RETRY_MS 200

struct auditfwd {
	char *path;
	pthread_mutex_t mu;
	pthread_cond_t cond;		/* work queued, or stop */
	pthread_cond_t idle;		/* queue drained */
	json_t **ring;
	size_t cap, head, len;		/* under mu */
	bool stop;			/* under mu */
	bool sending;			/* the thread holds an event (under mu) */
	uint64_t sent, dropped;		/* under mu */
	pthread_t thread;
	bool started;
};

static void
deadline_in(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *
fwd_thread(void *arg)
{
	struct auditfwd *f = arg;
	struct audit_client *cl = NULL;
	bool warned = false;

	for (;;) {
		json_t *ev;
		struct timespec dl;
		int r;

		pthread_mutex_lock(&f->mu);
		while (f->len == 0 && !f->stop) {
			f->sending = false;
			pthread_cond_broadcast(&f->idle);
			pthread_cond_wait(&f->cond, &f->mu);
		}
		if (f->len == 0 && f->stop) {
			f->sending = false;
			pthread_cond_broadcast(&f->idle);
			pthread_mutex_unlock(&f->mu);
			break;
		}
		ev = f->ring[f->head];
		f->sending = true;
		pthread_mutex_unlock(&f->mu);

		if (cl == NULL && (r = audit_client_connect(&cl, f->path)) != 0)
			cl = NULL;
		r = cl != NULL ? audit_client_send(cl, ev) : MOAT_ERR_CLOSED;
		if (r == MOAT_ERR_TOOBIG || r == MOAT_ERR_INVAL ||
		    r == MOAT_ERR_NOMEM) {
			/* This one can never go: drop it, keep the others. */
			log_error(COMPONENT, "audit event cannot be sent",
			    LF_STR("error", moat_strerror(r)));
			pthread_mutex_lock(&f->mu);
			f->ring[f->head] = NULL;
			f->head = (f->head + 1) % f->cap;
			f->len--;
			f->dropped++;
			pthread_mutex_unlock(&f->mu);
			json_decref(ev);
			continue;
		}
		if (r != 0) {
			if (!warned)
				log_warn(COMPONENT, "audit collector unreachable; "
				    "queueing events", LF_STR("path", f->path),
				    LF_STR("error", moat_strerror(r)));
			warned = true;
			audit_client_free(cl);
			cl = NULL;
			pthread_mutex_lock(&f->mu);
			deadline_in(&dl, RETRY_MS);
			if (!f->stop)
				(void)pthread_cond_timedwait(&f->cond, &f->mu, &dl);
			if (f->stop) {
				f->sending = false;
				pthread_cond_broadcast(&f->idle);
				pthread_mutex_unlock(&f->mu);
				break;
			}
			pthread_mutex_unlock(&f->mu);
			continue;
		}
		if (warned)
			log_info(COMPONENT, "audit collector reachable again",
			    LF_STR("path", f->path));
		warned = false;
		pthread_mutex_lock(&f->mu);
		f->ring[f->head] = NULL;
		f->head = (f->head + 1) % f->cap;
		f->len--;
		f->sent++;
		pthread_mutex_unlock(&f->mu);
		json_decref(ev);
	}
	audit_client_free(cl);
	return NULL;
}

int
auditfwd_new(struct auditfwd **out, const char *path, size_t max_queue)
{
	struct auditfwd *f;
	pthread_condattr_t ca;
	int r = MOAT_ERR_NOMEM;

	*out = NULL;
	if (path == NULL || path[0] == '\0')
		return MOAT_ERR_INVAL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return MOAT_ERR_NOMEM;
	f->cap = max_queue > 0 ? max_queue : 65536;
	pthread_mutex_init(&f->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&f->cond, &ca);
	pthread_cond_init(&f->idle, &ca);
	pthread_condattr_destroy(&ca);
	if ((f->path = strdup(path)) == NULL ||
	    (f->ring = calloc(f->cap, sizeof(*f->ring))) == NULL)
		goto fail;
	if (pthread_create(&f->thread, NULL, fwd_thread, f) != 0) {
		r = MOAT_ERR_IO;
		goto fail;
	}
	f->started = true;
	*out = f;
	return 0;
fail:
	auditfwd_free(f, 0);
	return r;
}

int
auditfwd_emit(struct auditfwd *f, json_t *ev)
{
	int r = 0;

	if (f == NULL || ev == NULL) {
		json_decref(ev);
		return MOAT_ERR_INVAL;
	}
	pthread_mutex_lock(&f->mu);
	if (f->len == f->cap || f->stop) {
		f->dropped++;
		r = MOAT_ERR_AGAIN;
	} else {
		f->ring[(f->head + f->len) % f->cap] = ev;
		f->len++;
		ev = NULL;
		pthread_cond_signal(&f->cond);
	}
	pthread_mutex_unlock(&f->mu);
	json_decref(ev);
	return r;
}

int
auditfwd_emit_fn(void *arg, json_t *ev)
{
	return auditfwd_emit(arg, ev);
}

uint64_t
auditfwd_sent(struct auditfwd *f)
{
	uint64_t v;

	pthread_mutex_lock(&f->mu);
	v = f->sent;
	pthread_mutex_unlock(&f->mu);
	return v;
}

uint64_t
auditfwd_dropped(struct auditfwd *f)
{
	uint64_t v;

	pthread_mutex_lock(&f->mu);
	v = f->dropped;
	pthread_mutex_unlock(&f->mu);
	return v;
}

void
auditfwd_free(struct auditfwd *f, unsigned wait_ms)
{
	size_t left;

	if (f == NULL)
		return;
	if (f->started) {
		struct timespec dl;

		pthread_mutex_lock(&f->mu);
		deadline_in(&dl, wait_ms);
		while ((f->len > 0 || f->sending) &&
		    pthread_cond_timedwait(&f->idle, &f->mu, &dl) == 0)
			;
		f->stop = true;
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->mu);
		pthread_join(f->thread, NULL);
	}
	left = f->len;
	for (size_t i = 0; f->ring != NULL && i < f->len; i++)
		json_decref(f->ring[(f->head + i) % f->cap]);
	if (left > 0)
		log_error(COMPONENT, "audit events not delivered at shutdown",
		    LF_INT("count", left), LF_STR("path", f->path));
	free(f->ring);
	free(f->path);
	pthread_cond_destroy(&f->cond);
	pthread_cond_destroy(&f->idle);
	pthread_mutex_destroy(&f->mu);
	free(f);
}
