/*
 * recstore.c - session recordings at rest (see recstore.h): asciicast
 * text sealed in chunk files with the keyring, metadata in the store.
 *
 * Ids: 12 hex digits of (2^48 - 1 - the start in Unix milliseconds), then
 * 20 random hex digits. The store lists by id, so ascending ids are
 * newest first and a page's last id is the cursor for the next one.
 *
 * Chunk n of recording ID is DATA-DIR/recordings/ID/n.chunk, the text of
 * envelope_seal(coll "recordings", id ID, field "chunk-n"): a chunk copied
 * to another position or another recording fails to open. Each chunk is
 * written to n.tmp (O_EXCL|O_NOFOLLOW, 0600), fsynced, linked to n.chunk
 * (which fails if it exists) and the directory fsynced, so a reader (an
 * auditor reading a live session) never sees a partial chunk and a crash
 * leaves at most a stray .tmp file, which readers ignore. The first chunk
 * (the header line) is written before the metadata is inserted, so a
 * listed recording always has one.
 *
 * Reading checks that the chunks are numbered 0..N-1 without a gap and,
 * for a recording that ended, that N is the count the metadata recorded:
 * a chunk removed from the middle or the end is MOAT_ERR_CORRUPT like a
 * tampered one. A recording cut short by a crash (no "ended_at") reads up
 * to its last chunk.
 *
 * Threads: struct recstore is immutable after recstore_open() (the store
 * and keys are thread-safe), so any number of recordings run at once on
 * different threads; each struct recording has a mutex, so a timer thread
 * may call recstore_tick() while another appends (never after
 * recstore_end(), which frees it).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "buf.h"
#include "fdio.h"
#include "json.h"
#include "log.h"
#include "secrets/envelope.h"
#include "secrets/keys.h"
#include "store/store.h"

#include "recordings/recstore.h"

#define COMPONENT "recordings"
#define RECSTORE_READ_MAX ((size_t)256 * 1024 * 1024)
#define RECSTORE_MAX_CHUNKS 1000000u

struct recstore {
	struct app *app;	/* borrowed: store and keys */
	int dirfd;		/* DATA-DIR/recordings */
};

struct recording {
	struct recstore *rs;
	pthread_mutex_t mu;
	char id[33];
	int dirfd;		/* DATA-DIR/recordings/ID */
	unsigned seq;		/* the next chunk's number */
	struct buf pending;	/* lines not yet in a chunk */
	struct timespec last;	/* the last chunk's time (monotonic) */
	unsigned long long bytes;	/* asciicast text so far */
};

/* Fields the store or this file sets; a caller's meta may not. */
static const char *const rec_reserved[] = { "id", "rev", "created_at",
    "updated_at", "sealed", "started_at", "ended_at", "duration", "bytes",
    "chunks", NULL };

static double
rec_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - t->tv_sec) +
	    (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* RFC 3339 UTC with milliseconds. */
static void
rec_now_rfc3339(char out[40], int64_t *ms_out)
{
	struct timespec ts;
	struct tm tm;
	time_t s;

	clock_gettime(CLOCK_REALTIME, &ts);
	s = ts.tv_sec;
	*ms_out = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	if (gmtime_r(&s, &tm) == NULL ||
	    strftime(out, 24, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
		snprintf(out, 40, "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(out + strlen(out), 40 - strlen(out), ".%03ldZ",
	    ts.tv_nsec / 1000000);
}

static bool
rec_valid_id(const char *id)
{
	size_t i;

	if (id == NULL)
		return false;
	for (i = 0; id[i] != '\0'; i++)
		if (!((id[i] >= '0' && id[i] <= '9') ||
		    (id[i] >= 'a' && id[i] <= 'f')) || i >= 32)
			return false;
	return i == 32;
}

bool
recstore_valid_id(const char *id)
{
	return rec_valid_id(id);
}

int
recstore_open(struct recstore **out, struct app *app)
{
	struct recstore *rs = NULL;
	char path[PATH_MAX];
	struct stat st;
	int r = MOAT_ERR_INVAL;

	*out = NULL;
	if (app == NULL || app->data_dir == NULL || app->store == NULL ||
	    app->keys == NULL)
		goto out;
	r = MOAT_ERR_TOOBIG;
	if (snprintf(path, sizeof(path), "%s/recordings", app->data_dir) >=
	    (int)sizeof(path))
		goto out;
	r = MOAT_ERR_NOMEM;
	if ((rs = calloc(1, sizeof(*rs))) == NULL)
		goto out;
	rs->app = app;
	rs->dirfd = -1;
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		r = moat_err_from_errno(errno);
		log_error(COMPONENT, "cannot create the recordings directory",
		    LF_STR("dir", path), LF_STR("error", strerror(errno)));
		goto out;
	}
	if ((rs->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0) {
		r = moat_err_from_errno(errno);
		log_error(COMPONENT, "cannot open the recordings directory",
		    LF_STR("dir", path), LF_STR("error", strerror(errno)));
		goto out;
	}
	if (fstat(rs->dirfd, &st) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	if ((st.st_mode & 077) != 0 && fchmod(rs->dirfd, 0700) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	*out = rs;
	rs = NULL;
	r = 0;
out:
	recstore_free(rs);
	return r;
}

void
recstore_free(struct recstore *rs)
{
	if (rs == NULL)
		return;
	if (rs->dirfd >= 0)
		close(rs->dirfd);
	free(rs);
}

/* A new id ordered newest first (see the top of the file). */
static int
rec_new_id(int64_t ms, char out[33])
{
	char rnd[STORE_ID_GEN_LEN];
	uint64_t inv;
	int r;

	if ((r = store_new_id(rnd, sizeof(rnd))) != 0)
		return r;
	if (ms < 0)
		ms = 0;
	inv = ((UINT64_C(1) << 48) - 1) - ((uint64_t)ms & ((UINT64_C(1) << 48)
	    - 1));
	snprintf(out, 33, "%012llx%.20s", (unsigned long long)inv, rnd);
	return 0;
}


/* Seals pending as chunk r->seq and writes it (see the top of the file).
 * On success pending is emptied and seq advanced; on failure nothing
 * changes and no file is left behind. Caller holds r->mu. */
static int
rec_flush(struct recording *r)
{
	struct keyset *ks = NULL;
	char field[32], tmp[32], name[32], *sealed = NULL;
	bool created = false, linked = false;
	int fd = -1, rc;

	if (r->pending.len == 0)
		return 0;
	rc = MOAT_ERR_TOOBIG;
	if (r->seq >= RECSTORE_MAX_CHUNKS)
		goto out;
	snprintf(field, sizeof(field), "chunk-%u", r->seq);
	snprintf(tmp, sizeof(tmp), "%u.tmp", r->seq);
	snprintf(name, sizeof(name), "%u.chunk", r->seq);
	rc = MOAT_ERR_CRYPTO;
	if ((ks = keys_current(r->rs->app->keys)) == NULL)
		goto out;
	if ((rc = envelope_seal(ks, COLL_RECORDINGS, r->id, field,
	    r->pending.data, r->pending.len, &sealed)) != 0)
		goto out;
	/* A stray n.tmp from a crashed write is ours to replace. */
	if (unlinkat(r->dirfd, tmp, 0) != 0 && errno != ENOENT) {
		rc = moat_err_from_errno(errno);
		goto out;
	}
	if ((fd = openat(r->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) < 0) {
		rc = moat_err_from_errno(errno);
		goto out;
	}
	created = true;
	if ((rc = fd_write_all(fd, sealed, strlen(sealed))) != 0)
		goto out;
	if (fsync(fd) != 0) {
		rc = moat_err_from_errno(errno);
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		rc = moat_err_from_errno(errno);
		goto out;
	}
	fd = -1;
	if (linkat(r->dirfd, tmp, r->dirfd, name, 0) != 0) {
		rc = moat_err_from_errno(errno);
		goto out;
	}
	linked = true;
	if (unlinkat(r->dirfd, tmp, 0) != 0 || fsync(r->dirfd) != 0) {
		rc = moat_err_from_errno(errno);
		goto out;
	}
	created = false;
	r->seq++;
	buf_reset(&r->pending);
	clock_gettime(CLOCK_MONOTONIC, &r->last);
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	if (rc != 0) {
		if (linked)
			(void)unlinkat(r->dirfd, name, 0);
		if (created)
			(void)unlinkat(r->dirfd, tmp, 0);
		log_error(COMPONENT, "cannot write a recording chunk",
		    LF_STR("recording", r->id), LF_INT("chunk", r->seq),
		    LF_STR("error", moat_strerror(rc)));
	}
	free(sealed);
	keyset_unref(ks);
	return rc;
}

static void
rec_free(struct recording *r)
{
	if (r == NULL)
		return;
	if (r->dirfd >= 0)
		close(r->dirfd);
	buf_free_wipe(&r->pending);
	pthread_mutex_destroy(&r->mu);
	free(r);
}

/* Removes what recstore_begin made when it fails after the mkdir. */
static void
rec_unmake(struct recstore *rs, struct recording *r)
{
	char name[32];

	for (unsigned i = 0; i < r->seq; i++) {
		snprintf(name, sizeof(name), "%u.chunk", i);
		(void)unlinkat(r->dirfd, name, 0);
	}
	(void)unlinkat(rs->dirfd, r->id, AT_REMOVEDIR);
}

int
recstore_begin(struct recstore *rs, const json_t *meta,
    const char *header_line, size_t header_len, struct recording **out,
    char id_out[33])
{
	struct recording *r = NULL;
	json_t *doc = NULL;
	char started[40];
	int64_t ms;
	bool made = false;
	int rc = MOAT_ERR_INVAL;

	*out = NULL;
	if (id_out != NULL)
		id_out[0] = '\0';
	if (rs == NULL || (meta != NULL && !json_is_object(meta)) ||
	    header_line == NULL || header_len == 0 ||
	    header_len > RECSTORE_CHUNK_MAX)
		goto out;
	rc = MOAT_ERR_NOMEM;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		goto out;
	r->rs = rs;
	r->dirfd = -1;
	pthread_mutex_init(&r->mu, NULL);
	buf_init(&r->pending, ENVELOPE_MAX_PLAIN);
	rec_now_rfc3339(started, &ms);
	if ((rc = rec_new_id(ms, r->id)) != 0)
		goto out;
	doc = meta != NULL ? json_deep_copy(meta) : json_object();
	rc = MOAT_ERR_NOMEM;
	if (doc == NULL)
		goto out;
	for (size_t i = 0; rec_reserved[i] != NULL; i++)
		json_object_del(doc, rec_reserved[i]);
	if (json_object_set_new(doc, "id", json_string(r->id)) != 0 ||
	    json_object_set_new(doc, "started_at", json_string(started)) != 0 ||
	    json_object_set_new(doc, "bytes", json_integer(0)) != 0)
		goto out;
	if (mkdirat(rs->dirfd, r->id, 0700) != 0) {
		rc = moat_err_from_errno(errno);
		goto out;
	}
	made = true;
	if ((r->dirfd = openat(rs->dirfd, r->id, O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC)) < 0) {
		rc = moat_err_from_errno(errno);
		goto out;
	}
	if (fsync(rs->dirfd) != 0) {
		rc = moat_err_from_errno(errno);
		goto out;
	}
	/* The header is chunk 0, on disk before the recording is listed. */
	if ((rc = buf_append(&r->pending, header_line, header_len)) != 0 ||
	    (header_line[header_len - 1] != '\n' &&
	    (rc = buf_append(&r->pending, "\n", 1)) != 0))
		goto out;
	r->bytes = r->pending.len;
	if ((rc = rec_flush(r)) != 0)
		goto out;
	if ((rc = store_insert(rs->app->store, COLL_RECORDINGS, doc)) != 0) {
		log_error(COMPONENT, "cannot record a recording's metadata",
		    LF_STR("recording", r->id), LF_STR("error",
		    moat_strerror(rc)));
		goto out;
	}
	if (id_out != NULL)
		memcpy(id_out, r->id, 33);
	*out = r;
	r = NULL;
	rc = 0;
out:
	if (r != NULL) {
		if (made)
			rec_unmake(rs, r);
		rec_free(r);
	}
	json_decref(doc);
	return rc;
}

/* Appends one line (or a final piece without a newline); caller holds
 * r->mu. */
static int
rec_append_line(struct recording *r, const char *p, size_t n)
{
	int rc;

	if (n > ENVELOPE_MAX_PLAIN)
		return MOAT_ERR_TOOBIG;
	if (r->pending.len > 0 && r->pending.len + n > RECSTORE_CHUNK_MAX &&
	    (rc = rec_flush(r)) != 0)
		return rc;
	if ((rc = buf_append(&r->pending, p, n)) != 0)
		return rc;
	r->bytes += n;
	return 0;
}

int
recstore_append(struct recording *r, const char *lines, size_t len)
{
	const char *p = lines, *end = lines + len;
	int rc = MOAT_ERR_INVAL;

	if (r == NULL || (lines == NULL && len > 0))
		return MOAT_ERR_INVAL;
	pthread_mutex_lock(&r->mu);
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl != NULL ? (size_t)(nl - p) + 1 : (size_t)(end - p);

		if ((rc = rec_append_line(r, p, n)) != 0)
			goto out;
		p += n;
	}
	if (r->pending.len >= RECSTORE_CHUNK_MAX ||
	    (r->pending.len > 0 &&
	    rec_since(&r->last) * 1000.0 >= RECSTORE_FLUSH_MS)) {
		if ((rc = rec_flush(r)) != 0)
			goto out;
	}
	rc = 0;
out:
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int
recstore_tick(struct recording *r)
{
	int rc = 0;

	if (r == NULL)
		return MOAT_ERR_INVAL;
	pthread_mutex_lock(&r->mu);
	if (r->pending.len > 0 &&
	    rec_since(&r->last) * 1000.0 >= RECSTORE_FLUSH_MS)
		rc = rec_flush(r);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int
recstore_flush(struct recording *r)
{
	int rc;

	if (r == NULL)
		return MOAT_ERR_INVAL;
	pthread_mutex_lock(&r->mu);
	rc = rec_flush(r);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

int
recstore_end(struct recording *r, double duration)
{
	struct store *st;
	json_t *doc = NULL;
	char ended[40];
	int64_t ms;
	int rc, ru;

	if (r == NULL)
		return MOAT_ERR_INVAL;
	st = r->rs->app->store;
	pthread_mutex_lock(&r->mu);
	rc = rec_flush(r);
	pthread_mutex_unlock(&r->mu);
	if (!(duration >= 0.0))		/* also NaN */
		duration = 0.0;
	rec_now_rfc3339(ended, &ms);
	/* Only this recording writes its document, but retry once on a
	 * conflict all the same. */
	for (int attempt = 0; attempt < 2; attempt++) {
		json_decref(doc);
		doc = NULL;
		if ((ru = store_get(st, COLL_RECORDINGS, r->id, &doc)) != 0)
			break;
		ru = MOAT_ERR_NOMEM;
		if (json_object_set_new(doc, "ended_at", json_string(ended)) ||
		    json_object_set_new(doc, "duration", json_real(
		    (double)(long long)(duration * 1000.0) / 1000.0)) ||
		    json_object_set_new(doc, "bytes", json_integer(
		    (json_int_t)r->bytes)) ||
		    json_object_set_new(doc, "chunks", json_integer(r->seq)))
			break;
		if ((ru = store_update(st, COLL_RECORDINGS, doc)) !=
		    MOAT_ERR_CONFLICT)
			break;
	}
	if (ru != 0)
		log_error(COMPONENT, "cannot record a recording's end",
		    LF_STR("recording", r->id), LF_STR("error",
		    moat_strerror(ru)));
	json_decref(doc);
	rec_free(r);
	return rc != 0 ? rc : ru;
}

/* "N.chunk" with N canonical decimal -> N; -1 for anything else. */
static long
rec_chunk_number(const char *name)
{
	char *end;
	unsigned long v;

	if (name[0] < '0' || name[0] > '9' || (name[0] == '0' &&
	    name[1] != '.'))
		return -1;
	errno = 0;
	v = strtoul(name, &end, 10);
	if (errno != 0 || strcmp(end, ".chunk") != 0 ||
	    v >= RECSTORE_MAX_CHUNKS)
		return -1;
	return (long)v;
}

/* True for a leftover of a crashed chunk write ("N.tmp"). */
static bool
rec_is_tmp(const char *name)
{
	size_t n = strlen(name), i;

	if (n < 5 || strcmp(name + n - 4, ".tmp") != 0)
		return false;
	for (i = 0; i < n - 4; i++)
		if (name[i] < '0' || name[i] > '9')
			return false;
	return true;
}

/* Counts the chunks in the recording directory: they must be 0..N-1. */
static int
rec_count_chunks(int dirfd, const char *id, unsigned *count)
{
	DIR *d = NULL;
	struct dirent *e;
	unsigned long n = 0;
	long max = -1, v;
	int fd, rc = MOAT_ERR_CORRUPT;

	*count = 0;
	if ((fd = dup(dirfd)) < 0)
		return moat_err_from_errno(errno);
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return moat_err_from_errno(errno);
	}
	rewinddir(d);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    rec_is_tmp(e->d_name))
			continue;
		if ((v = rec_chunk_number(e->d_name)) < 0) {
			log_error(COMPONENT, "unexpected file in a recording",
			    LF_STR("recording", id));
			goto out;
		}
		n++;
		if (v > max)
			max = v;
	}
	if (n == 0 || (unsigned long)(max + 1) != n) {
		log_error(COMPONENT, "a recording's chunks are not contiguous",
		    LF_STR("recording", id), LF_INT("chunks", n),
		    LF_INT("highest", max));
		goto out;
	}
	*count = (unsigned)n;
	rc = 0;
out:
	closedir(d);
	return rc;
}

/* Reads and opens chunk seq, appending its text to out. */
static int
rec_read_chunk(struct recstore *rs, const struct keyset *ks, int dirfd,
    const char *id, unsigned seq, struct buf *out)
{
	char name[32], field[32], *sealed = NULL;
	uint8_t *plain = NULL;
	size_t plen = 0, got = 0;
	struct stat st;
	int fd = -1, rc = MOAT_ERR_CORRUPT;

	(void)rs;
	snprintf(name, sizeof(name), "%u.chunk", seq);
	snprintf(field, sizeof(field), "chunk-%u", seq);
	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		goto out;	/* gone since the count: a gap */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > ENVELOPE_MAX_SEALED)
		goto out;
	rc = MOAT_ERR_NOMEM;
	if ((sealed = malloc((size_t)st.st_size + 1)) == NULL)
		goto out;
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, sealed + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? moat_err_from_errno(errno) : MOAT_ERR_CORRUPT;
			goto out;
		}
		got += (size_t)n;
	}
	sealed[got] = '\0';
	if ((rc = envelope_open(ks, COLL_RECORDINGS, id, field, sealed, &plain,
	    &plen)) != 0) {
		log_error(COMPONENT, "a recording chunk does not open",
		    LF_STR("recording", id), LF_INT("chunk", seq),
		    LF_STR("error", moat_strerror(rc)));
		rc = MOAT_ERR_CORRUPT;
		goto out;
	}
	if ((rc = buf_append(out, plain, plen)) != 0)
		goto out;
	rc = 0;
out:
	if (fd >= 0)
		close(fd);
	envelope_free(plain, plen);
	free(sealed);
	return rc;
}

int
recstore_read(struct recstore *rs, const char *id, char **out, size_t *len)
{
	struct keyset *ks = NULL;
	json_t *doc = NULL;
	struct buf b;
	unsigned count = 0;
	int dirfd = -1, rc = MOAT_ERR_INVAL;

	*out = NULL;
	*len = 0;
	buf_init(&b, RECSTORE_READ_MAX);
	if (rs == NULL)
		goto out;
	rc = MOAT_ERR_NOTFOUND;
	if (!rec_valid_id(id))
		goto out;
	if ((rc = store_get(rs->app->store, COLL_RECORDINGS, id, &doc)) != 0)
		goto out;
	if ((dirfd = openat(rs->dirfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0) {
		rc = errno == ENOENT ? MOAT_ERR_CORRUPT :
		    moat_err_from_errno(errno);
		log_error(COMPONENT, "a listed recording has no directory",
		    LF_STR("recording", id));
		goto out;
	}
	if ((rc = rec_count_chunks(dirfd, id, &count)) != 0)
		goto out;
	if (json_object_get(doc, "ended_at") != NULL &&
	    json_get_int(doc, "chunks", -1) != (long long)count) {
		log_error(COMPONENT, "a recording lost chunks",
		    LF_STR("recording", id), LF_INT("chunks", count),
		    LF_INT("recorded", json_get_int(doc, "chunks", -1)));
		rc = MOAT_ERR_CORRUPT;
		goto out;
	}
	rc = MOAT_ERR_CRYPTO;
	if ((ks = keys_current(rs->app->keys)) == NULL)
		goto out;
	for (unsigned i = 0; i < count; i++)
		if ((rc = rec_read_chunk(rs, ks, dirfd, id, i, &b)) != 0)
			goto out;
	*out = buf_steal(&b, len);
	if (*out == NULL && (*out = strdup("")) == NULL) {
		rc = MOAT_ERR_NOMEM;
		goto out;
	}
	rc = 0;
out:
	if (dirfd >= 0)
		close(dirfd);
	keyset_unref(ks);
	json_decref(doc);
	buf_free_wipe(&b);
	return rc;
}
