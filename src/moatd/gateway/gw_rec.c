/*
 * gw_rec.c - what the gateway does with a session's recordings and audit
 * reports, in the order the session process sent them: one worker job at
 * a time per session drains the session's queue (recording chunks go to
 * the recording store, which blocks on disk; a channel's session.end
 * audit event gets the id of the recording that channel made). While a
 * session's queue holds more than GW_RECQ_MAX bytes the parent stops
 * reading that session's control socket, which in turn stops the session
 * process: nothing is buffered without bound.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "app.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "recordings/recstore.h"

#include "gateway/gw_int.h"
#include "gateway/gwctl.h"

#define GW_RECQ_MAX (4u * 1024 * 1024)

/* Kinds of queued operations: 0 begin, 1 append, 2 end, 3 audit event,
 * 4 tick. */

/* --- the recording store (recordings/recstore.h) --- */

static int
store_begin(struct gw_sess *s, const char *header, size_t len,
    struct recording **r, char id[33])
{
	json_t *meta;
	int rc;

	*r = NULL;
	id[0] = '\0';
	if (s->g->app->recstore == NULL)
		return MOAT_ERR_UNSUPPORTED;
	meta = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "session_id",
	    s->id, "user", s->username, "user_id", s->user_id, "workspace",
	    s->ws_name, "workspace_id", s->ws_id, "owner", s->owner,
	    "client_addr", s->client, "org", s->org);
	if (meta == NULL)
		return MOAT_ERR_NOMEM;
	rc = recstore_begin(s->g->app->recstore, meta, header, len, r, id);
	json_decref(meta);
	return rc;
}

static int
store_append(struct recording *r, const char *lines, size_t len)
{
	return recstore_append(r, lines, len);
}

static int
store_end(struct recording *r, double duration)
{
	return recstore_end(r, duration);
}

/* --- per-session ordered queue --- */

static struct gw_rec *
rec_slot(struct gw_sess *s, int ch)
{
	for (int i = 0; i < GW_MAX_RECS; i++)
		if (s->recs[i].ch == ch)
			return &s->recs[i];
	return NULL;
}

static void
apply(struct gw_sess *s, struct gw_recop *op)
{
	struct gw_rec *slot;
	int r;

	switch (op->kind) {
	case 0:	/* begin */
		pthread_mutex_lock(&s->rec_mu);
		slot = rec_slot(s, -1);
		if (slot != NULL && rec_slot(s, op->ch) == NULL) {
			slot->ch = op->ch;
			slot->ended = false;
		} else {
			slot = NULL;
		}
		pthread_mutex_unlock(&s->rec_mu);
		if (slot == NULL)
			break;
		r = store_begin(s, op->text, op->len, &slot->r, slot->id);
		if (r != 0 && r != MOAT_ERR_UNSUPPORTED)
			log_warn(GW_COMPONENT, "cannot start a recording",
			    LF_STR("session", s->id), LF_STR("error",
			    moat_strerror(r)));
		break;
	case 1:	/* append */
		slot = rec_slot(s, op->ch);
		if (slot != NULL && slot->r != NULL &&
		    (r = store_append(slot->r, op->text, op->len)) != 0)
			log_warn(GW_COMPONENT, "recording chunk lost",
			    LF_STR("session", s->id), LF_STR("error",
			    moat_strerror(r)));
		break;
	case 2:	/* end */
		slot = rec_slot(s, op->ch);
		if (slot != NULL && slot->r != NULL) {
			if ((r = store_end(slot->r, op->duration)) != 0)
				log_warn(GW_COMPONENT, "recording end lost",
				    LF_STR("session", s->id));
			slot->r = NULL;
		}
		if (slot != NULL)
			slot->ended = true;
		break;
	case 4:	/* tick: write what waited long enough */
		for (int i = 0; i < GW_MAX_RECS; i++)
			if (s->recs[i].ch >= 0 && s->recs[i].r != NULL &&
			    (r = recstore_tick(s->recs[i].r)) != 0)
				log_warn(GW_COMPONENT, "recording chunk lost",
				    LF_STR("session", s->id), LF_STR("error",
				    moat_strerror(r)));
		break;
	case 3: {	/* an audit event from the session process */
		json_t *w = NULL, *d;
		char err[128];

		if (json_parse_object((const uint8_t *)op->text, op->len,
		    GWCTL_MAX_MSG, &w, err, sizeof(err)) != 0)
			break;
		d = json_incref(json_object_get(w, "details"));
		slot = op->ch >= 0 ? rec_slot(s, op->ch) : NULL;
		if (slot != NULL && slot->id[0] != '\0' && d != NULL)
			json_object_set_new(d, "recording_id",
			    json_string(slot->id));
		gw__audit(s, json_get_str(w, "type"), json_get_str(w, "outcome"),
		    NULL, d);
		/* A channel's slot is free again after its session.end. */
		if (slot != NULL && slot->ended && json_get_str(w, "type") !=
		    NULL && strcmp(json_get_str(w, "type"), "session.end") == 0) {
			pthread_mutex_lock(&s->rec_mu);
			slot->ch = -1;
			slot->id[0] = '\0';
			pthread_mutex_unlock(&s->rec_mu);
		}
		json_decref(w);
		break;
	}
	default:
		break;
	}
}

static void
rec_work(void *arg)
{
	struct gw_sess *s = arg;

	for (;;) {
		struct gw_recop *op;

		pthread_mutex_lock(&s->rec_mu);
		op = s->recq;
		if (op != NULL) {
			s->recq = op->next;
			if (s->recq == NULL)
				s->recq_tail = NULL;
			s->recq_bytes -= op->len;
		}
		pthread_mutex_unlock(&s->rec_mu);
		if (op == NULL)
			break;
		apply(s, op);
		free(op->text);
		free(op);
	}
}

static void rec_kick(struct gw_sess *s);

static void
rec_done(void *arg)
{
	struct gw_sess *s = arg;
	bool more;

	pthread_mutex_lock(&s->rec_mu);
	s->rec_job = false;
	more = s->recq != NULL;
	pthread_mutex_unlock(&s->rec_mu);
	if (s->reading_paused && !s->dead && s->ctl_ev != NULL) {
		s->reading_paused = false;
		event_add(s->ctl_ev, NULL);
	}
	if (more)
		rec_kick(s);
	gw__sess_unref(s);
}

static void
rec_kick(struct gw_sess *s)
{
	bool start;

	pthread_mutex_lock(&s->rec_mu);
	start = !s->rec_job && s->recq != NULL;
	if (start)
		s->rec_job = true;
	pthread_mutex_unlock(&s->rec_mu);
	if (!start)
		return;
	gw__sess_ref(s);
	if (workpool_submit(s->g->app->workers, s->g->base, rec_work, rec_done,
	    s) != 0) {
		/* Busy: the next message or tick tries again. */
		pthread_mutex_lock(&s->rec_mu);
		s->rec_job = false;
		pthread_mutex_unlock(&s->rec_mu);
		gw__sess_unref(s);
	}
}

void
gw__rec_queue(struct gw_sess *s, int kind, int ch, const char *text,
    size_t len, double duration)
{
	struct gw_recop *op = calloc(1, sizeof(*op));
	bool full;

	if (op == NULL)
		return;
	op->kind = kind;
	op->ch = ch;
	op->duration = duration;
	if (text != NULL && len > 0) {
		if ((op->text = malloc(len + 1)) == NULL) {
			free(op);
			return;
		}
		memcpy(op->text, text, len);
		op->text[len] = '\0';
		op->len = len;
	}
	pthread_mutex_lock(&s->rec_mu);
	if (s->recq_tail != NULL)
		s->recq_tail->next = op;
	else
		s->recq = op;
	s->recq_tail = op;
	s->recq_bytes += op->len;
	full = s->recq_bytes > GW_RECQ_MAX;
	pthread_mutex_unlock(&s->rec_mu);
	if (full && !s->reading_paused && s->ctl_ev != NULL) {
		s->reading_paused = true;
		event_del(s->ctl_ev);
	}
	if (!s->dead)
		rec_kick(s);
}

void
gw__rec_id(struct gw_sess *s, int ch, char out[33])
{
	struct gw_rec *slot;

	pthread_mutex_lock(&s->rec_mu);
	slot = rec_slot(s, ch);
	snprintf(out, 33, "%s", slot != NULL ? slot->id : "");
	pthread_mutex_unlock(&s->rec_mu);
}

void
gw__rec_close_all(struct gw_sess *s)
{
	/* Ends what the child could not: queue an end for each open
	 * recording; the queue's worker writes them in order. */
	int chs[GW_MAX_RECS];
	int n = 0;

	pthread_mutex_lock(&s->rec_mu);
	for (int i = 0; i < GW_MAX_RECS; i++)
		if (s->recs[i].ch >= 0 && !s->recs[i].ended)
			chs[n++] = s->recs[i].ch;
	pthread_mutex_unlock(&s->rec_mu);
	for (int i = 0; i < n; i++)
		gw__rec_queue(s, 2, chs[i], NULL, 0, 0);
	if (s->dead) {
		/* The gateway is going away: write them now, on this thread. */
		rec_work(s);
	}
}
