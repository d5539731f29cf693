/*
 * audit_writer.c - the hash-chained audit sink: one writer thread appends
 * every event to the chain file, writes signed checkpoints, and watches the
 * free disk space (see audit.h for the contract, audit_int.h for the shared
 * definitions of hashes and checkpoints).
 *
 * Threads: callers (audit_emit) and the collector thread push events into a
 * bounded ring under w->mu. The writer thread moves everything waiting into
 * its own array ("local"), numbers, hashes and serializes the records,
 * writes them in chunks, fsyncs per policy, and only then tells flush
 * waiters. The chain state (fd, next seq, prev hash, size) belongs to the
 * writer thread alone after audit_writer_open() returns.
 *
 * When a write fails, the file is cut back to the last good size, the chain
 * state is rolled back, the records stay in "local" and are retried every
 * second; the writer is unhealthy meanwhile. A checkpoint record is always
 * fsynced before PATH.checkpoint names it, so the head file never gets ahead
 * of the chain on disk.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>

#include "audit_int.h"
#include "buf.h"
#include "fdio.h"
#include "log.h"

#define DEF_INTERVAL_MS		60000u
#define DEF_RESERVE		(64ull * 1024 * 1024)
#define DEF_MAX_QUEUE		65536u
#define CHUNK_BYTES		(1024 * 1024)
#define SPACE_CHECK_MS		1000u
#define RETRY_MS		1000u
/* --audit-fsync batch: after an fsync the writer gathers what arrives for
 * this long before the next write and fsync (group commit), unless someone
 * waits for it (flush, a checkpoint, a queue half full, shutdown). Under a
 * busy proxy this turns thousands of small write+fsync rounds a second into
 * a few hundred; at rest an event is written at once. */
#define GROUP_MS		5u

struct qitem {
	json_t *ev;		/* owned */
	bool remote;		/* came through the collector: "source" set */
};

struct audit_writer {
	/* Set at open, read-only afterwards. */
	char *path;
	char *head_path;	/* PATH.checkpoint */
	char *head_tmp;		/* PATH.checkpoint.tmp */
	char *dir;		/* directory of path, for fsync after rename */
	char *process_name;
	char key_id[AUDIT_KEY_ID_MAX + 1];
	EVP_PKEY *key;		/* owned; NULL: no checkpoints */
	unsigned interval_ms;
	enum audit_fsync fsync_policy;
	uint64_t reserve;
	size_t max_queue;
	long long pid, uid;

	/* The writer thread's own (and open()'s, before it starts). */
	int fd;
	uint64_t next_seq;		/* seq of the next record */
	uint8_t prev[AUDIT_HASH_LEN];	/* hash of the last record */
	char prev_hex[AUDIT_HASH_HEX + 1];
	uint64_t tail;			/* records after the last checkpoint */
	off_t size;			/* bytes known good on disk */
	struct qitem *local;		/* drained, not yet written */
	size_t nlocal;
	struct buf out;
	bool low_space, write_failed;

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t wake;		/* to the writer (monotonic clock) */
	pthread_cond_t done;		/* from the writer */
	struct qitem *ring;
	size_t ring_head, ring_count;
	uint64_t enq_total, done_total;
	uint64_t ckpt_req, ckpt_done;
	int ckpt_err, write_err;
	bool failing;			/* the last write failed */
	bool closing, stop;
	bool holding;			/* writer gathering (GROUP_MS) */
	unsigned flush_waiters;		/* audit_writer_flush callers */

	atomic_bool healthy;
	atomic_uint_fast64_t written, dropped;

	pthread_t thread;
	bool thread_started, sync_init;
	struct audit_collector *collector;
};

static uint64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char *
xstrdup_cat(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s;

	if ((s = malloc(la + lb + 1)) == NULL)
		return NULL;
	memcpy(s, a, la);
	memcpy(s + la, b, lb + 1);
	return s;
}


static int
fsync_dir(const char *dir)
{
	int fd, r = 0;

	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return moat_err_from_errno(errno);
	if (fsync(fd) != 0)
		r = moat_err_from_errno(errno);
	close(fd);
	return r;
}

/* --- Health. --- */

static void
update_health(struct audit_writer *w)
{
	atomic_store(&w->healthy, !w->low_space && !w->write_failed);
}

/* Compares the free space of the chain's file system with the reserve and
 * logs each transition once. Writer thread (or open) only. */
static void
check_space(struct audit_writer *w)
{
	struct statvfs sv;
	uint64_t avail;
	bool low;

	if (fstatvfs(w->fd, &sv) != 0) {
		log_warn("audit", "cannot read free disk space",
		    LF_STR("path", w->path), LF_STR("error", strerror(errno)));
		return;
	}
	if (__builtin_mul_overflow((uint64_t)sv.f_bavail,
	    (uint64_t)sv.f_frsize, &avail))
		avail = UINT64_MAX;
	low = avail < w->reserve;
	if (low && !w->low_space)
		log_warn("audit", "free disk space below the reserve: "
		    "refusing new work", LF_STR("path", w->path),
		    LF_INT("free_bytes", avail > LLONG_MAX ? LLONG_MAX : avail),
		    LF_INT("reserve_bytes", w->reserve > LLONG_MAX ? LLONG_MAX :
		    w->reserve));
	else if (!low && w->low_space)
		log_info("audit", "free disk space back above the reserve",
		    LF_STR("path", w->path));
	w->low_space = low;
	update_health(w);
}

static void
set_write_result(struct audit_writer *w, int r)
{
	bool failed = r != 0;

	if (failed && !w->write_failed)
		log_error("audit", "cannot write the audit chain; retrying",
		    LF_STR("path", w->path), LF_STR("error", moat_strerror(r)));
	else if (!failed && w->write_failed)
		log_info("audit", "audit chain writes work again",
		    LF_STR("path", w->path));
	w->write_failed = failed;
	update_health(w);
	pthread_mutex_lock(&w->mu);
	w->failing = failed;
	w->write_err = r;
	pthread_cond_broadcast(&w->done);
	pthread_mutex_unlock(&w->mu);
}

/* --- Records. --- */

static int
set_new(json_t *obj, const char *key, json_t *v)
{
	if (v == NULL)
		return MOAT_ERR_NOMEM;
	return json_object_set_new(obj, key, v) == 0 ? 0 : MOAT_ERR_NOMEM;
}

/* Replaces an event too large for a chain line by a small one that says so. */
static json_t *
shrink_event(json_t *ev, size_t bytes)
{
	json_t *small;
	const char *type = json_string_value(json_object_get(ev, "type"));
	const char *outcome = json_string_value(json_object_get(ev,
	    "outcome"));

	small = json_pack("{s:s, s:s, s:{s:I, s:s}}",
	    "type", audit__valid_type(type) ? type : "audit.invalid",
	    "outcome", audit__valid_outcome(outcome) ? outcome : "failure",
	    "details", "oversize_bytes", (json_int_t)bytes,
	    "note", "event larger than the audit line limit; contents dropped");
	if (small != NULL) {
		json_t *src = json_object_get(ev, "source");
		if (src != NULL)
			json_object_set(small, "source", src);
	}
	json_decref(ev);
	return small;
}

/* Fills the writer's fields of ev, hashes it and appends its line to
 * w->out; advances the chain state on success. ev stays owned by the
 * caller (*evp may be replaced when the event was too large). */
static int
append_record(struct audit_writer *w, json_t **evp, bool remote)
{
	char tbuf[40], hhex[AUDIT_HASH_HEX + 1];
	uint8_t h[AUDIT_HASH_LEN];
	char *line = NULL, *nl, *canon = NULL;
	size_t len = 0, clen = 0;
	json_t *ev = *evp;
	int r;

	for (int attempt = 0; attempt < 2; attempt++) {
		r = MOAT_ERR_NOMEM;
		json_object_del(ev, "hash");
		if (!json_is_string(json_object_get(ev, "time"))) {
			audit__now_rfc3339(tbuf, sizeof(tbuf));
			if ((r = set_new(ev, "time", json_string(tbuf))) != 0)
				goto out;
		}
		if (!remote) {
			if ((r = set_new(ev, "source", json_pack("{s:s, s:I, s:I}",
			    "process", w->process_name, "pid",
			    (json_int_t)w->pid, "uid", (json_int_t)w->uid))) != 0)
				goto out;
			if (!json_is_string(json_object_get(ev, "component")) &&
			    (r = set_new(ev, "component",
			    json_string(w->process_name))) != 0)
				goto out;
		}
		if ((r = set_new(ev, "seq",
		    json_integer((json_int_t)w->next_seq))) != 0 ||
		    (r = set_new(ev, "prev", json_string(w->prev_hex))) != 0)
			goto out;
		/* One serialization: the line is the hashed form with the
		 * hash added in place (the second serialization only when
		 * that is not possible). */
		r = MOAT_ERR_NOMEM;
		if ((canon = audit__canonical(ev, &clen)) == NULL)
			goto out;
		if ((r = audit__record_hash_canon(canon, clen, w->prev, h)) != 0)
			goto out;
		audit__hex(h, sizeof(h), hhex);
		if ((r = set_new(ev, "hash", json_string(hhex))) != 0)
			goto out;
		r = MOAT_ERR_NOMEM;
		line = audit__canonical_add(canon, clen, "hash", hhex, &len);
		free(canon);
		canon = NULL;
		if (line == NULL && (line = audit__canonical(ev, &len)) == NULL)
			goto out;
		if (len < AUDIT_MAX_LINE)
			break;
		/* Too long for a line: record that it happened instead. */
		log_warn("audit", "event too large for the chain; recorded "
		    "without its contents", LF_INT("bytes", len));
		free(line);
		line = NULL;
		if (attempt > 0 || (ev = *evp = shrink_event(ev, len)) == NULL)
			goto out;
	}
	if (line == NULL) {
		r = MOAT_ERR_TOOBIG;
		goto out;
	}
	/* Line and newline in one append, so a failure leaves no half. */
	r = MOAT_ERR_NOMEM;
	if ((nl = realloc(line, len + 2)) == NULL)
		goto out;
	line = nl;
	line[len] = '\n';
	line[len + 1] = '\0';
	if ((r = buf_append(&w->out, line, len + 1)) != 0)
		goto out;
	w->next_seq++;
	memcpy(w->prev, h, sizeof(h));
	memcpy(w->prev_hex, hhex, sizeof(hhex));
	r = 0;
out:
	free(canon);
	free(line);
	return r;
}

/* Writes w->out at the end of the chain; on failure cuts the file back so
 * that the chain on disk ends with a complete record. */
static int
commit_out(struct audit_writer *w)
{
	int r;

	if ((r = fd_write_all(w->fd, w->out.data, w->out.len)) != 0) {
		if (ftruncate(w->fd, w->size) != 0)
			log_error("audit", "cannot cut back a failed write",
			    LF_STR("path", w->path),
			    LF_STR("error", strerror(errno)));
		return r;
	}
	w->size += (off_t)w->out.len;
	return 0;
}

static void
finish_items(struct audit_writer *w, size_t n, size_t ndropped)
{
	atomic_fetch_add(&w->written, n - ndropped);
	atomic_fetch_add(&w->dropped, ndropped);
	pthread_mutex_lock(&w->mu);
	w->done_total += n;
	pthread_cond_broadcast(&w->done);
	pthread_mutex_unlock(&w->mu);
}

/* Writes every drained event. On a write failure the unwritten ones stay at
 * the start of w->local and the chain state is rolled back. */
static int
write_local(struct audit_writer *w)
{
	size_t i = 0, j, nd;
	int r = 0;

	while (i < w->nlocal) {
		uint64_t seq0 = w->next_seq, tail0 = w->tail;
		uint8_t prev0[AUDIT_HASH_LEN];
		char prevhex0[AUDIT_HASH_HEX + 1];

		memcpy(prev0, w->prev, sizeof(prev0));
		memcpy(prevhex0, w->prev_hex, sizeof(prevhex0));
		buf_reset(&w->out);
		nd = 0;
		for (j = i; j < w->nlocal && w->out.len < CHUNK_BYTES; j++) {
			struct qitem *q = &w->local[j];
			if (append_record(w, &q->ev, q->remote) != 0) {
				/* Only memory can fail here: drop this one. */
				log_error("audit", "cannot serialize an event; "
				    "dropped");
				json_decref(q->ev);
				q->ev = NULL;
				nd++;
			} else {
				w->tail++;
			}
			if (w->fsync_policy == AUDIT_FSYNC_ALWAYS) {
				j++;
				break;
			}
		}
		if ((r = commit_out(w)) == 0 &&
		    w->fsync_policy == AUDIT_FSYNC_ALWAYS &&
		    fdatasync(w->fd) != 0)
			r = moat_err_from_errno(errno);
		if (r != 0) {
			w->next_seq = seq0;
			w->tail = tail0;
			memcpy(w->prev, prev0, sizeof(prev0));
			memcpy(w->prev_hex, prevhex0, sizeof(prevhex0));
			/* Dropped ones are gone; keep the rest for a retry. */
			size_t k = 0;
			for (size_t m = i; m < w->nlocal; m++)
				if (w->local[m].ev != NULL)
					w->local[k++] = w->local[m];
			finish_items(w, nd, nd);
			w->nlocal = k;
			return r;
		}
		for (size_t m = i; m < j; m++) {
			json_decref(w->local[m].ev);
			w->local[m].ev = NULL;
		}
		finish_items(w, j - i, nd);
		i = j;
	}
	w->nlocal = 0;
	if (w->fsync_policy == AUDIT_FSYNC_BATCH && fdatasync(w->fd) != 0)
		r = moat_err_from_errno(errno);
	return r;
}

/* Gives up on the events the writer could not write (at close). */
static void
drop_local(struct audit_writer *w)
{
	for (size_t i = 0; i < w->nlocal; i++)
		json_decref(w->local[i].ev);
	if (w->nlocal > 0)
		log_error("audit", "audit events lost at close: the chain "
		    "cannot be written", LF_INT("events", w->nlocal));
	finish_items(w, w->nlocal, w->nlocal);
	w->nlocal = 0;
}

/* Replaces PATH.checkpoint with line: temp file, fsync, rename, fsync dir. */
static int
write_head(struct audit_writer *w, const uint8_t *line, size_t len)
{
	int fd, r;

	fd = open(w->head_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd < 0)
		return moat_err_from_errno(errno);
	if ((r = fd_write_all(fd, line, len)) == 0 && fsync(fd) != 0)
		r = moat_err_from_errno(errno);
	if (close(fd) != 0 && r == 0)
		r = moat_err_from_errno(errno);
	if (r == 0 && rename(w->head_tmp, w->head_path) != 0)
		r = moat_err_from_errno(errno);
	if (r != 0) {
		unlink(w->head_tmp);
		return r;
	}
	return fsync_dir(w->dir);
}

/* Appends a checkpoint record signing the last record's seq and hash (see
 * audit__ckpt_payload for the exact bytes), fsyncs the chain, then writes
 * PATH.checkpoint. */
static int
write_checkpoint(struct audit_writer *w)
{
	uint8_t sig[AUDIT_SIG_LEN];
	char sigb64[AUDIT_SIG_B64 + 1];
	char *payload = NULL;
	size_t plen;
	json_t *rec = NULL;
	uint64_t seq0 = w->next_seq;
	uint8_t prev0[AUDIT_HASH_LEN];
	char prevhex0[AUDIT_HASH_HEX + 1];
	int r = MOAT_ERR_UNSUPPORTED;

	memcpy(prev0, w->prev, sizeof(prev0));
	memcpy(prevhex0, w->prev_hex, sizeof(prevhex0));
	if (w->key == NULL)
		goto out;
	r = MOAT_ERR_NOMEM;
	if ((payload = audit__ckpt_payload(w->next_seq - 1, w->prev_hex,
	    w->key_id, &plen)) == NULL)
		goto out;
	if ((r = audit__es256_sign(w->key, (const uint8_t *)payload, plen,
	    sig)) != 0)
		goto out;
	audit__b64url_encode(sig, sizeof(sig), sigb64);
	r = MOAT_ERR_NOMEM;
	if ((rec = json_pack("{s:s, s:s, s:s, s:s}", "type",
	    AUDIT_CHECKPOINT_TYPE, "outcome", "success", "key_id", w->key_id,
	    "sig", sigb64)) == NULL)
		goto out;
	buf_reset(&w->out);
	if ((r = append_record(w, &rec, false)) != 0)
		goto out;
	if ((r = commit_out(w)) != 0)
		goto rollback;
	/* Always synced, whatever the policy: the head must not lead. */
	if (fdatasync(w->fd) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	w->tail = 0;
	r = write_head(w, w->out.data, w->out.len);
	/* Counted after the head, so that a waiter sees both. */
	atomic_fetch_add(&w->written, 1);
	if (r != 0) {
		log_error("audit", "cannot write the checkpoint file",
		    LF_STR("path", w->head_path),
		    LF_STR("error", moat_strerror(r)));
		goto out;
	}
	r = 0;
	goto out;
rollback:
	w->next_seq = seq0;
	memcpy(w->prev, prev0, sizeof(prev0));
	memcpy(w->prev_hex, prevhex0, sizeof(prevhex0));
out:
	json_decref(rec);
	free(payload);
	return r;
}

/* --- The writer thread. --- */

static void
timespec_at(struct timespec *ts, uint64_t at_ms)
{
	ts->tv_sec = (time_t)(at_ms / 1000);
	ts->tv_nsec = (long)(at_ms % 1000) * 1000000;
}

/* Moves everything queued into w->local. Called with mu held. */
static void
drain(struct audit_writer *w)
{
	while (w->ring_count > 0) {
		w->local[w->nlocal++] = w->ring[w->ring_head];
		w->ring[w->ring_head].ev = NULL;
		w->ring_head = (w->ring_head + 1) % w->max_queue;
		w->ring_count--;
	}
	pthread_cond_broadcast(&w->done);	/* room in the queue */
}

static void *
writer_main(void *arg)
{
	struct audit_writer *w = arg;
	uint64_t now = mono_ms();
	uint64_t next_ckpt = now + w->interval_ms, next_space = now +
	    SPACE_CHECK_MS, retry_at = 0;
	uint64_t want, ckpt_done = 0, last_sync = 0;
	bool stop, empty;
	int r;

	for (;;) {
		pthread_mutex_lock(&w->mu);
		for (;;) {
			uint64_t deadline = next_space;
			struct timespec ts;

			now = mono_ms();
			w->holding = false;
			if (w->nlocal == 0 && w->ring_count > 0) {
				if (w->fsync_policy != AUDIT_FSYNC_BATCH ||
				    now >= last_sync + GROUP_MS || w->stop ||
				    w->flush_waiters > 0 ||
				    w->ckpt_req > ckpt_done ||
				    w->ring_count >= w->max_queue / 2) {
					drain(w);
					break;
				}
				/* Group commit: let more events join. */
				w->holding = true;
				timespec_at(&ts, last_sync + GROUP_MS);
				pthread_cond_timedwait(&w->wake, &w->mu, &ts);
				continue;
			}
			if (w->nlocal > 0 && (now >= retry_at || w->stop))
				break;
			if (w->nlocal == 0 && w->ckpt_req > ckpt_done)
				break;
			if (w->stop || now >= next_space ||
			    (w->key != NULL && now >= next_ckpt))
				break;
			if (w->key != NULL && next_ckpt < deadline)
				deadline = next_ckpt;
			if (w->nlocal > 0 && retry_at < deadline)
				deadline = retry_at;
			timespec_at(&ts, deadline);
			pthread_cond_timedwait(&w->wake, &w->mu, &ts);
		}
		stop = w->stop;
		want = w->ckpt_req;
		empty = w->ring_count == 0;
		pthread_mutex_unlock(&w->mu);

		if (w->nlocal > 0) {
			last_sync = mono_ms();
			r = write_local(w);
			set_write_result(w, r);
			if (r != 0) {
				retry_at = mono_ms() + RETRY_MS;
				if (stop)
					drop_local(w);
			}
			check_space(w);
			next_space = mono_ms() + SPACE_CHECK_MS;
		}
		now = mono_ms();
		if (now >= next_space) {
			check_space(w);
			next_space = now + SPACE_CHECK_MS;
		}
		if (w->nlocal == 0 && (want > ckpt_done ||
		    (w->key != NULL && now >= next_ckpt))) {
			r = 0;
			if (want > ckpt_done || w->tail > 0)
				r = write_checkpoint(w);
			if (r != 0 && r != MOAT_ERR_UNSUPPORTED)
				set_write_result(w, r);
			next_ckpt = now + w->interval_ms;
			if (want > ckpt_done) {
				pthread_mutex_lock(&w->mu);
				w->ckpt_done = ckpt_done = want;
				w->ckpt_err = r;
				pthread_cond_broadcast(&w->done);
				pthread_mutex_unlock(&w->mu);
			}
		}
		if (stop && empty && w->nlocal == 0) {
			if (w->key != NULL && w->tail > 0 &&
			    (r = write_checkpoint(w)) != 0)
				log_error("audit", "cannot write the final "
				    "checkpoint", LF_STR("error",
				    moat_strerror(r)));
			break;
		}
	}
	return NULL;
}

/* --- Opening: the tail of an existing chain. --- */

/* Checks one complete line of the chain on its own: a JSON object whose
 * hash matches its contents and its prev. Fills the chain state from it. */
static int
adopt_last_line(struct audit_writer *w, const uint8_t *line, size_t len)
{
	json_t *rec = NULL, *seqv;
	const char *hash, *prevhex, *type;
	uint8_t prev[AUDIT_HASH_LEN], want[AUDIT_HASH_LEN], got[AUDIT_HASH_LEN];
	int r = MOAT_ERR_CORRUPT;

	if ((rec = json_loadb((const char *)line, len, JSON_REJECT_DUPLICATES,
	    NULL)) == NULL || !json_is_object(rec))
		goto out;
	seqv = json_object_get(rec, "seq");
	hash = json_string_value(json_object_get(rec, "hash"));
	prevhex = json_string_value(json_object_get(rec, "prev"));
	if (!json_is_integer(seqv) || json_integer_value(seqv) < 1 ||
	    json_integer_value(seqv) == INT64_MAX || hash == NULL || prevhex == NULL ||
	    !audit__unhex(hash, strlen(hash), want, sizeof(want)) ||
	    !audit__unhex(prevhex, strlen(prevhex), prev, sizeof(prev)))
		goto out;
	json_object_del(rec, "hash");
	if ((r = audit__record_hash(rec, prev, got)) != 0)
		goto out;
	r = MOAT_ERR_CORRUPT;
	if (memcmp(got, want, sizeof(got)) != 0)
		goto out;
	w->next_seq = (uint64_t)json_integer_value(seqv) + 1;
	memcpy(w->prev, want, sizeof(want));
	audit__hex(want, sizeof(want), w->prev_hex);
	type = json_string_value(json_object_get(rec, "type"));
	w->tail = type != NULL && strcmp(type, AUDIT_CHECKPOINT_TYPE) == 0 ?
	    0 : 1;
	r = 0;
out:
	json_decref(rec);
	return r;
}

/* Reads the end of the chain: cuts a partial last line (*dropped: bytes
 * cut), verifies the last complete record and continues from it. */
static int
recover_tail(struct audit_writer *w, uint64_t *dropped)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t win, end, start;
	off_t base;
	ssize_t k;
	int r;

	*dropped = 0;
	if (fstat(w->fd, &st) != 0)
		return moat_err_from_errno(errno);
	if (!S_ISREG(st.st_mode))
		return MOAT_ERR_INVAL;
	w->size = st.st_size;
	if (w->size == 0)
		return 0;
	win = (size_t)w->size < 2 * (AUDIT_MAX_LINE + 1) ? (size_t)w->size :
	    2 * (AUDIT_MAX_LINE + 1);
	base = w->size - (off_t)win;
	if ((buf = malloc(win)) == NULL)
		return MOAT_ERR_NOMEM;
	r = MOAT_ERR_IO;
	for (size_t got = 0; got < win; got += (size_t)k) {
		k = pread(w->fd, buf + got, win - got, base + (off_t)got);
		if (k < 0 && errno == EINTR) {
			k = 0;
			continue;
		}
		if (k <= 0)
			goto out;
	}
	end = win;
	if (buf[win - 1] != '\n') {
		const uint8_t *nl = NULL;
		for (size_t i = win; i > 0; i--)
			if (buf[i - 1] == '\n') {
				nl = buf + i - 1;
				break;
			}
		r = MOAT_ERR_CORRUPT;
		if (nl == NULL && base != 0) {
			log_error("audit", "the chain ends with a line longer "
			    "than the limit", LF_STR("path", w->path));
			goto out;
		}
		end = nl == NULL ? 0 : (size_t)(nl - buf) + 1;
		*dropped = (uint64_t)(win - end);
		if (ftruncate(w->fd, base + (off_t)end) != 0 ||
		    fdatasync(w->fd) != 0) {
			r = moat_err_from_errno(errno);
			goto out;
		}
		w->size = base + (off_t)end;
		log_warn("audit", "cut a partial last record left by a crash",
		    LF_STR("path", w->path), LF_INT("bytes_dropped", *dropped));
		if (end == 0) {
			r = 0;
			goto out;
		}
	}
	/* buf[end - 1] is the newline ending the last complete line. */
	for (start = end - 1; start > 0 && buf[start - 1] != '\n'; start--)
		;
	r = MOAT_ERR_CORRUPT;
	if (start == 0 && base != 0) {
		log_error("audit", "the chain's last record is longer than the "
		    "limit", LF_STR("path", w->path));
		goto out;
	}
	if ((r = adopt_last_line(w, buf + start, end - 1 - start)) != 0) {
		if (r == MOAT_ERR_CORRUPT)
			log_error("audit", "the chain's last record does not "
			    "verify; refusing to append (run moat audit verify)",
			    LF_STR("path", w->path));
		goto out;
	}
	r = 0;
out:
	free(buf);
	return r;
}

/* Refuses a chain shorter than what PATH.checkpoint says it covers. */
static int
check_head(struct audit_writer *w)
{
	json_t *head = NULL;
	json_t *seqv;
	int r = 0;

	if (access(w->head_path, F_OK) != 0)
		return 0;
	if ((head = json_load_file(w->head_path, JSON_REJECT_DUPLICATES,
	    NULL)) == NULL) {
		log_warn("audit", "cannot read the checkpoint file; it will be "
		    "replaced at the next checkpoint",
		    LF_STR("path", w->head_path));
		return 0;
	}
	seqv = json_object_get(head, "seq");
	if (json_is_integer(seqv) &&
	    (uint64_t)json_integer_value(seqv) >= w->next_seq) {
		log_error("audit", "the chain is shorter than its checkpoint "
		    "file says: records were truncated (run moat audit verify)",
		    LF_STR("path", w->path),
		    LF_INT("checkpoint_seq", json_integer_value(seqv)),
		    LF_INT("chain_seq", w->next_seq - 1));
		r = MOAT_ERR_CORRUPT;
	}
	json_decref(head);
	return r;
}

static int
load_key(struct audit_writer *w, const struct audit_writer_opts *o)
{
	FILE *f;

	if ((f = fopen(o->checkpoint_key_file, "re")) == NULL) {
		log_error("audit", "cannot open the checkpoint key",
		    LF_STR("file", o->checkpoint_key_file),
		    LF_STR("error", strerror(errno)));
		return moat_err_from_errno(errno);
	}
	w->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (w->key == NULL || !audit__key_is_p256(w->key)) {
		log_error("audit", "the checkpoint key is not a PEM EC P-256 "
		    "private key", LF_STR("file", o->checkpoint_key_file));
		return MOAT_ERR_CRYPTO;
	}
	if (o->key_id != NULL) {
		if (!audit__valid_key_id(o->key_id)) {
			log_error("audit", "invalid checkpoint key id");
			return MOAT_ERR_INVAL;
		}
		memcpy(w->key_id, o->key_id, strlen(o->key_id) + 1);
		return 0;
	}
	return audit__key_id(w->key, w->key_id, sizeof(w->key_id));
}

static void
writer_free(struct audit_writer *w)
{
	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->ring != NULL)
		for (size_t i = 0; i < w->ring_count; i++)
			json_decref(w->ring[(w->ring_head + i) %
			    w->max_queue].ev);
	for (size_t i = 0; i < w->nlocal; i++)
		json_decref(w->local[i].ev);
	if (w->sync_init) {
		pthread_mutex_destroy(&w->mu);
		pthread_cond_destroy(&w->wake);
		pthread_cond_destroy(&w->done);
	}
	EVP_PKEY_free(w->key);
	buf_free(&w->out);
	free(w->ring);
	free(w->local);
	free(w->path);
	free(w->head_path);
	free(w->head_tmp);
	free(w->dir);
	free(w->process_name);
	free(w);
}

int
audit_writer_open(struct audit_writer **out,
    const struct audit_writer_opts *opts)
{
	struct audit_writer *w = NULL;
	pthread_condattr_t ca;
	uint64_t dropped = 0;
	json_t *ev;
	char *slash;
	bool created;
	int r = MOAT_ERR_INVAL;

	*out = NULL;
	if (opts == NULL || opts->path == NULL || opts->path[0] == '\0')
		goto out;
	r = MOAT_ERR_NOMEM;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		goto out;
	w->fd = -1;
	buf_init(&w->out, CHUNK_BYTES + AUDIT_MAX_LINE + 2);
	w->interval_ms = opts->checkpoint_interval_ms ?
	    opts->checkpoint_interval_ms : DEF_INTERVAL_MS;
	w->fsync_policy = opts->fsync_policy;
	w->reserve = opts->disk_reserve_bytes ? opts->disk_reserve_bytes :
	    DEF_RESERVE;
	w->max_queue = opts->max_queue ? opts->max_queue : DEF_MAX_QUEUE;
	w->pid = (long long)getpid();
	w->uid = (long long)getuid();
	w->next_seq = 1;
	memset(w->prev, 0, sizeof(w->prev));
	audit__hex(w->prev, sizeof(w->prev), w->prev_hex);
	atomic_init(&w->healthy, true);
	atomic_init(&w->written, 0);
	atomic_init(&w->dropped, 0);
	if ((w->path = strdup(opts->path)) == NULL ||
	    (w->head_path = xstrdup_cat(opts->path, ".checkpoint")) == NULL ||
	    (w->head_tmp = xstrdup_cat(opts->path, ".checkpoint.tmp")) == NULL ||
	    (w->dir = strdup(opts->path)) == NULL ||
	    (w->process_name = strdup(opts->process_name ?
	    opts->process_name : "moatd")) == NULL)
		goto out;
	if ((slash = strrchr(w->dir, '/')) == NULL) {
		free(w->dir);
		if ((w->dir = strdup(".")) == NULL)
			goto out;
	} else {
		slash[slash == w->dir ? 1 : 0] = '\0';
	}
	if ((w->ring = calloc(w->max_queue, sizeof(*w->ring))) == NULL ||
	    (w->local = calloc(w->max_queue, sizeof(*w->local))) == NULL)
		goto out;
	if (opts->checkpoint_key_file != NULL && (r = load_key(w, opts)) != 0)
		goto out;

	created = access(w->path, F_OK) != 0;
	if ((w->fd = open(w->path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0) {
		r = moat_err_from_errno(errno);
		log_error("audit", "cannot open the audit chain",
		    LF_STR("path", w->path), LF_STR("error", strerror(errno)));
		goto out;
	}
	if (created && (r = fsync_dir(w->dir)) != 0)
		goto out;
	if ((r = recover_tail(w, &dropped)) != 0 || (r = check_head(w)) != 0)
		goto out;
	check_space(w);

	r = MOAT_ERR_NOMEM;
	if (pthread_mutex_init(&w->mu, NULL) != 0)
		goto out;
	if (pthread_condattr_init(&ca) != 0) {
		pthread_mutex_destroy(&w->mu);
		goto out;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_cond_init(&w->wake, &ca) != 0) {
		pthread_condattr_destroy(&ca);
		pthread_mutex_destroy(&w->mu);
		goto out;
	}
	pthread_condattr_destroy(&ca);
	if (pthread_cond_init(&w->done, NULL) != 0) {
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->mu);
		goto out;
	}
	w->sync_init = true;

	if (dropped > 0) {
		ev = json_pack("{s:s, s:s, s:{s:I, s:s}}", "type",
		    AUDIT_RECOVERED_TYPE, "outcome", "success", "details",
		    "bytes_dropped", (json_int_t)dropped, "reason",
		    "a partial last record left by a crash was cut off");
		if ((r = audit__enqueue(w, ev, false, false)) != 0)
			goto out;
	}
	if (opts->collector_path != NULL && (r = audit__collector_start(
	    &w->collector, w, opts->collector_path)) != 0)
		goto out;
	if (pthread_create(&w->thread, NULL, writer_main, w) != 0) {
		r = MOAT_ERR_NOMEM;
		audit__collector_stop(w->collector);
		w->collector = NULL;
		goto out;
	}
	w->thread_started = true;
	log_info("audit", "audit chain open", LF_STR("path", w->path),
	    LF_INT("next_seq", w->next_seq),
	    LF_BOOL("checkpoints", w->key != NULL));
	*out = w;
	w = NULL;
	r = 0;
out:
	writer_free(w);
	return r;
}

/* --- The API. --- */

int
audit__enqueue(struct audit_writer *w, json_t *ev, bool remote, bool wait)
{
	int r = MOAT_ERR_NOMEM;

	if (ev == NULL) {
		atomic_fetch_add(&w->dropped, 1);
		return r;
	}
	pthread_mutex_lock(&w->mu);
	while (wait && w->ring_count >= w->max_queue && !w->closing)
		pthread_cond_wait(&w->done, &w->mu);
	if (w->stop) {
		r = MOAT_ERR_CLOSED;
	} else if (w->ring_count >= w->max_queue) {
		r = MOAT_ERR_AGAIN;
	} else {
		size_t at = (w->ring_head + w->ring_count) % w->max_queue;
		w->ring[at].ev = ev;
		w->ring[at].remote = remote;
		w->ring_count++;
		w->enq_total++;
		ev = NULL;
		if (!w->holding || w->ring_count >= w->max_queue / 2)
			pthread_cond_signal(&w->wake);
		r = 0;
	}
	pthread_mutex_unlock(&w->mu);
	if (ev != NULL) {
		json_decref(ev);
		atomic_fetch_add(&w->dropped, 1);
		return r;
	}
	return atomic_load(&w->healthy) ? 0 : MOAT_ERR_NOSPACE;
}

int
audit_emit(struct audit_writer *w, json_t *ev)
{
	const char *type;

	if (w == NULL || !json_is_object(ev)) {
		json_decref(ev);
		if (w != NULL)
			atomic_fetch_add(&w->dropped, 1);
		return MOAT_ERR_INVAL;
	}
	type = json_string_value(json_object_get(ev, "type"));
	/* The "audit." namespace is the writer's own (checkpoints). */
	if (!audit__valid_type(type) || strncmp(type, "audit.", 6) == 0 ||
	    !audit__valid_outcome(json_string_value(json_object_get(ev,
	    "outcome")))) {
		log_warn("audit", "invalid audit event refused (bad type or "
		    "outcome)");
		json_decref(ev);
		atomic_fetch_add(&w->dropped, 1);
		return MOAT_ERR_INVAL;
	}
	return audit__enqueue(w, ev, false, false);
}

bool
audit_writer_healthy(struct audit_writer *w)
{
	return w != NULL && atomic_load(&w->healthy);
}

int
audit_writer_checkpoint(struct audit_writer *w)
{
	uint64_t target;
	int r;

	if (w == NULL)
		return MOAT_ERR_INVAL;
	if (w->key == NULL)
		return MOAT_ERR_UNSUPPORTED;
	pthread_mutex_lock(&w->mu);
	target = ++w->ckpt_req;
	pthread_cond_signal(&w->wake);
	while (w->ckpt_done < target && !w->failing)
		pthread_cond_wait(&w->done, &w->mu);
	r = w->ckpt_done >= target ? w->ckpt_err : w->write_err;
	pthread_mutex_unlock(&w->mu);
	return r;
}

int
audit_writer_flush(struct audit_writer *w)
{
	uint64_t target;
	int r;

	if (w == NULL)
		return MOAT_ERR_INVAL;
	pthread_mutex_lock(&w->mu);
	target = w->enq_total;
	w->flush_waiters++;
	pthread_cond_signal(&w->wake);	/* no group-commit wait for us */
	while (w->done_total < target && !w->failing)
		pthread_cond_wait(&w->done, &w->mu);
	w->flush_waiters--;
	r = w->done_total >= target ? 0 : w->write_err;
	pthread_mutex_unlock(&w->mu);
	return r;
}

uint64_t
audit_writer_written(struct audit_writer *w)
{
	return w == NULL ? 0 : atomic_load(&w->written);
}

uint64_t
audit_writer_dropped(struct audit_writer *w)
{
	return w == NULL ? 0 : atomic_load(&w->dropped);
}

uint64_t
audit_writer_rejected(struct audit_writer *w)
{
	return w == NULL ? 0 : audit__collector_rejected(w->collector);
}

void
audit_writer_close(struct audit_writer *w)
{
	if (w == NULL)
		return;
	/* The collector first, so that every event it accepted is queued. */
	pthread_mutex_lock(&w->mu);
	w->closing = true;
	pthread_cond_broadcast(&w->done);
	pthread_mutex_unlock(&w->mu);
	audit__collector_stop(w->collector);
	w->collector = NULL;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->mu);
	if (w->thread_started)
		pthread_join(w->thread, NULL);
	if (fsync(w->fd) != 0)
		log_error("audit", "cannot sync the audit chain at close",
		    LF_STR("path", w->path), LF_STR("error", strerror(errno)));
	log_info("audit", "audit chain closed", LF_STR("path", w->path),
	    LF_INT("last_seq", w->next_seq - 1));
	writer_free(w);
}
