/*
 * store_sqlite.c - the SQLite backend of moatd's document store
 * ("sqlite:PATH", store_int.h).
 *
 * Layout (schema version SQ_SCHEMA_VERSION, migrations below):
 *   meta(key, value)            "schema_version"
 *   docs(coll, id, rev, body, created_at, updated_at)   PRIMARY KEY(coll, id)
 *                               body is the caller's fields as canonical
 *                               JSON; the store fields live in columns
 *   idx(coll, field, value, id, uniq)   one row per indexed field of a
 *                               document; UNIQUE(coll, field, value) where
 *                               uniq = 1; rows go with their document
 *                               (foreign key, ON DELETE CASCADE)
 *   idx_decl(coll, field, uniq) the index declarations the idx rows were
 *                               built for; when moatd's declarations change
 *                               the collection is re-indexed at open
 *
 * Durability: journal_mode=WAL with synchronous=NORMAL. A commit is
 * atomic and the database always consistent; a power loss may lose the last
 * transactions before the next WAL sync (checkpoint), never corrupt the
 * file. That is the usual trade for a WAL database and enough here: what a
 * lost last write means to moatd (a login session, a token just created)
 * is recoverable by the user, and every sensitive write checkpoints (syncs)
 * right away anyway.
 *
 * Deleted values: secure_delete=ON zeroes freed content in the database
 * pages; after each committed write to a sensitive collection the WAL is
 * checkpointed and truncated (PRAGMA wal_checkpoint(TRUNCATE)), so the old
 * page images that still held a replaced or deleted sealed value leave the
 * WAL too. temp_store=MEMORY keeps sort spills out of temporary files.
 *
 * Connections: SQLite connections must not be shared by threads at once,
 * so the store keeps a pool. Every call takes a connection from the pool
 * for its duration (opening one when none is idle, at most SQ_OPEN_MAX at
 * once; callers wait beyond that) and gives it back; at most SQ_IDLE_MAX
 * idle ones are kept. store_transaction() binds the connection to the
 * calling thread (a pthread key per store) until it returns, so every store
 * call fn makes on that thread runs on it, inside the transaction. Nested
 * store_transaction() calls and every single write use SAVEPOINTs inside an
 * outer transaction, so a failing inner part is undone alone and a failed
 * write never leaves half its rows. Outer transactions are BEGIN IMMEDIATE
 * (the write lock is taken up front, so two writers never deadlock on a
 * lock upgrade) and SQLITE_BUSY is retried within SQ_BUSY_TIMEOUT_MS.
 * A transaction holds the write lock until it returns, so fn must not wait
 * for another thread that writes to the same store (that writer would time
 * out with MOAT_ERR_AGAIN after SQ_BUSY_TIMEOUT_MS). Readers on other
 * threads are never blocked (WAL) and see the state before the
 * transaction until it commits.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "json.h"
#include "log.h"
#include "store/store_int.h"

#define COMPONENT "store"

#define SQ_SCHEMA_VERSION 2
#define SQ_BUSY_TIMEOUT_MS 5000
#define SQ_IDLE_MAX 16
#define SQ_OPEN_MAX 64

/* Migrations: SQL for going from version i to i + 1. Constant DDL only. */
static const char *const migrations[SQ_SCHEMA_VERSION] = {
	/* 0 -> 1: documents and their secondary index entries. */
	"CREATE TABLE docs ("
	"  coll TEXT NOT NULL, id TEXT NOT NULL, rev INTEGER NOT NULL,"
	"  body TEXT NOT NULL, created_at TEXT NOT NULL,"
	"  updated_at TEXT NOT NULL, PRIMARY KEY (coll, id));"
	"CREATE TABLE idx ("
	"  coll TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,"
	"  id TEXT NOT NULL, uniq INTEGER NOT NULL,"
	"  PRIMARY KEY (coll, id, field),"
	"  FOREIGN KEY (coll, id) REFERENCES docs (coll, id)"
	"    ON DELETE CASCADE) WITHOUT ROWID;"
	"CREATE UNIQUE INDEX idx_unique ON idx (coll, field, value)"
	"  WHERE uniq = 1;"
	"CREATE INDEX idx_lookup ON idx (coll, field, value, id);",
	/* 1 -> 2: which index declarations the idx rows were built for. */
	"CREATE TABLE idx_decl ("
	"  coll TEXT NOT NULL, field TEXT NOT NULL, uniq INTEGER NOT NULL,"
	"  PRIMARY KEY (coll, field)) WITHOUT ROWID;",
};

enum sq_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_GET,
	ST_INS_DOC,
	ST_SEL_REV,
	ST_UPD_DOC,
	ST_DEL_DOC,
	ST_DEL_IDX,
	ST_INS_IDX,
	ST_LIST_ALL,
	ST_LIST_FIELD,
	ST__N
};

#define DOC_COLS "d.id, d.rev, d.body, d.created_at, d.updated_at"

static const char *const stmt_sql[ST__N] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT s",
	[ST_RELEASE] = "RELEASE s",
	[ST_ROLLBACK_TO] = "ROLLBACK TO s",
	[ST_GET] = "SELECT " DOC_COLS " FROM docs d"
	    " WHERE d.coll = ?1 AND d.id = ?2",
	[ST_INS_DOC] = "INSERT INTO docs (coll, id, rev, body, created_at,"
	    " updated_at) VALUES (?1, ?2, 1, ?3, ?4, ?5)",
	[ST_SEL_REV] = "SELECT rev, created_at FROM docs"
	    " WHERE coll = ?1 AND id = ?2",
	[ST_UPD_DOC] = "UPDATE docs SET rev = rev + 1, body = ?3,"
	    " updated_at = ?4 WHERE coll = ?1 AND id = ?2 AND rev = ?5",
	[ST_DEL_DOC] = "DELETE FROM docs WHERE coll = ?1 AND id = ?2",
	[ST_DEL_IDX] = "DELETE FROM idx WHERE coll = ?1 AND id = ?2",
	[ST_INS_IDX] = "INSERT INTO idx (coll, field, value, id, uniq)"
	    " VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_LIST_ALL] = "SELECT " DOC_COLS " FROM docs d"
	    " WHERE d.coll = ?1 AND d.id > ?2 ORDER BY d.id LIMIT ?3",
	[ST_LIST_FIELD] = "SELECT " DOC_COLS " FROM idx i JOIN docs d"
	    " ON d.coll = i.coll AND d.id = i.id"
	    " WHERE i.coll = ?1 AND i.field = ?2 AND i.value = ?3"
	    " AND i.id > ?4 ORDER BY i.id LIMIT ?5",
};

struct sq_conn {
	sqlite3 *db;
	sqlite3_stmt *stmts[ST__N];	/* prepared on first use */
	int depth;		/* transaction nesting: 0 none, 1 BEGIN, >1 SAVEPOINT */
	bool aborted;		/* SQLite rolled the transaction back itself */
	bool sensitive_dirty;	/* a sensitive collection was written */
	struct sq_conn *next;	/* idle list */
};

struct sq {
	char *path;
	int version;
	pthread_key_t key;	/* the connection of this thread's transaction */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sq_conn *idle;	/* guarded by mu */
	size_t nidle, nopen;	/* guarded by mu */
	bool purge_pending;	/* guarded by mu: a WAL purge did not finish */
};

static int
sq_err(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return MOAT_ERR_AGAIN;
	case SQLITE_NOMEM:
		return MOAT_ERR_NOMEM;
	case SQLITE_FULL:
		return MOAT_ERR_NOSPACE;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return MOAT_ERR_CORRUPT;
	case SQLITE_CONSTRAINT:
		return MOAT_ERR_EXISTS;
	case SQLITE_PERM:
	case SQLITE_READONLY:
	case SQLITE_AUTH:
		return MOAT_ERR_PERM;
	case SQLITE_TOOBIG:
		return MOAT_ERR_TOOBIG;
	default:
		return MOAT_ERR_IO;
	}
}

/* Logs a failed SQLite call (the message names tables and columns, never
 * bound values) and returns the moat error for rc. */
static int
sq_fail(sqlite3 *db, int rc, const char *what)
{
	int r = sq_err(rc);

	if (r != MOAT_ERR_EXISTS)
		log_error(COMPONENT, "sqlite error", LF_STR("op", what),
		    LF_INT("rc", rc),
		    LF_STR("error", db != NULL ? sqlite3_errmsg(db) :
		    sqlite3_errstr(rc)));
	return r;
}

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* Cached prepared statement s of c, reset and unbound when handed out. */
static int
stmt(struct sq_conn *c, enum sq_stmt s, sqlite3_stmt **out)
{
	int rc;

	if (c->stmts[s] == NULL) {
		rc = sqlite3_prepare_v3(c->db, stmt_sql[s], -1,
		    SQLITE_PREPARE_PERSISTENT, &c->stmts[s], NULL);
		if (rc != SQLITE_OK)
			return sq_fail(c->db, rc, "prepare");
	}
	*out = c->stmts[s];
	return 0;
}

static void
stmt_done(sqlite3_stmt *s)
{
	if (s != NULL) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
}

/* Steps s once, retrying SQLITE_BUSY within the busy timeout (on top of
 * SQLite's own busy handler, which some lock states bypass, e.g. WAL
 * recovery by another connection). Only for the first step of a statement
 * whose effect is all-or-nothing. */
static int
step_retry(sqlite3 *db, sqlite3_stmt *s)
{
	int64_t deadline = mono_ms() + SQ_BUSY_TIMEOUT_MS;
	int rc;

	for (;;) {
		rc = sqlite3_step(s);
		if ((rc & 0xff) != SQLITE_BUSY || mono_ms() >= deadline)
			return rc;
		sqlite3_reset(s);
		sleep_ms(2);
	}
}

/* Runs a statement without result rows; SQLITE_DONE expected. */
static int
exec_stmt(struct sq_conn *c, enum sq_stmt which, const char *what)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	if ((r = stmt(c, which, &s)) != 0)
		return r;
	rc = step_retry(c->db, s);
	r = rc == SQLITE_DONE ? 0 : sq_fail(c->db, rc, what);
	stmt_done(s);
	return r;
}

static void
conn_close(struct sq_conn *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < ST__N; i++)
		sqlite3_finalize(c->stmts[i]);
	if (sqlite3_close(c->db) != SQLITE_OK)
		log_error(COMPONENT, "sqlite close failed",
		    LF_STR("error", sqlite3_errmsg(c->db)));
	free(c);
}

/* Collects the single result row of PRAGMA journal_mode. */
static int
journal_mode_cb(void *arg, int n, char **vals, char **names)
{
	char *mode = arg;

	(void)names;
	if (n >= 1 && vals[0] != NULL)
		snprintf(mode, 16, "%s", vals[0]);
	return 0;
}

static int
conn_open(struct sq *sq, struct sq_conn **out)
{
	struct sq_conn *c = NULL;
	char mode[16] = "";
	int rc, r = MOAT_ERR_NOMEM;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto out;
	rc = sqlite3_open_v2(sq->path, &c->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
	    SQLITE_OPEN_PRIVATECACHE | SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		r = sq_fail(c->db, rc, "open");
		goto out;
	}
	sqlite3_busy_timeout(c->db, SQ_BUSY_TIMEOUT_MS);
	/* Defensive: no writable_schema tricks, no double-quoted strings as
	 * identifiers, no triggers or views doing surprising things. */
	sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(c->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(c->db, SQLITE_DBCONFIG_DQS_DML, 0, NULL);
	sqlite3_db_config(c->db, SQLITE_DBCONFIG_DQS_DDL, 0, NULL);
	rc = sqlite3_exec(c->db, "PRAGMA journal_mode=WAL", journal_mode_cb,
	    mode, NULL);
	if (rc != SQLITE_OK) {
		r = sq_fail(c->db, rc, "journal_mode");
		goto out;
	}
	if (strcmp(mode, "wal") != 0) {
		log_error(COMPONENT, "sqlite refused WAL journal mode",
		    LF_STR("mode", mode));
		r = MOAT_ERR_UNSUPPORTED;
		goto out;
	}
	rc = sqlite3_exec(c->db,
	    "PRAGMA synchronous=NORMAL;"
	    "PRAGMA secure_delete=ON;"
	    "PRAGMA foreign_keys=ON;"
	    "PRAGMA temp_store=MEMORY;"
	    "PRAGMA journal_size_limit=67108864;"
	    "PRAGMA cell_size_check=ON;", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = sq_fail(c->db, rc, "pragmas");
		goto out;
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	conn_close(c);
	return r;
}

/* A connection from the pool, or a new one. */
static int
pool_get(struct sq *sq, struct sq_conn **out)
{
	struct sq_conn *c;
	int r;

	pthread_mutex_lock(&sq->mu);
	while (sq->idle == NULL && sq->nopen >= SQ_OPEN_MAX)
		pthread_cond_wait(&sq->cv, &sq->mu);
	if ((c = sq->idle) != NULL) {
		sq->idle = c->next;
		sq->nidle--;
		c->next = NULL;
		pthread_mutex_unlock(&sq->mu);
		*out = c;
		return 0;
	}
	sq->nopen++;
	pthread_mutex_unlock(&sq->mu);
	if ((r = conn_open(sq, out)) != 0) {
		pthread_mutex_lock(&sq->mu);
		sq->nopen--;
		pthread_cond_signal(&sq->cv);
		pthread_mutex_unlock(&sq->mu);
	}
	return r;
}

/* Returns c to the pool; a connection left inside a transaction (a failed
 * rollback) or beyond SQ_IDLE_MAX is closed instead. */
static void
pool_put(struct sq *sq, struct sq_conn *c)
{
	bool keep;

	if (c == NULL)
		return;
	keep = c->depth == 0 && sqlite3_get_autocommit(c->db);
	c->aborted = false;
	c->sensitive_dirty = false;
	pthread_mutex_lock(&sq->mu);
	if (keep && sq->nidle < SQ_IDLE_MAX) {
		c->next = sq->idle;
		sq->idle = c;
		sq->nidle++;
		c = NULL;
	} else {
		sq->nopen--;
	}
	pthread_cond_signal(&sq->cv);
	pthread_mutex_unlock(&sq->mu);
	conn_close(c);
}

/* The connection for one store call: the thread's transaction connection
 * when there is one (*own false), else one from the pool (*own true). */
static int
conn_get(struct sq *sq, struct sq_conn **out, bool *own)
{
	struct sq_conn *c = pthread_getspecific(sq->key);

	if (c != NULL) {
		*own = false;
		*out = c;
		/* SQLite rolled the transaction back after an error: every
		 * further call in it fails until the outer one returns. */
		return c->aborted ? MOAT_ERR_IO : 0;
	}
	*own = true;
	return pool_get(sq, out);
}

static void
conn_put(struct sq *sq, struct sq_conn *c, bool own)
{
	if (own)
		pool_put(sq, c);
}

/* Empties the WAL into the database and truncates it to zero bytes. */
static void
purge_wal(struct sq *sq, struct sq_conn *c)
{
	int log_frames = 0, ckpt = 0;
	int rc = sqlite3_wal_checkpoint_v2(c->db, NULL,
	    SQLITE_CHECKPOINT_TRUNCATE, &log_frames, &ckpt);

	pthread_mutex_lock(&sq->mu);
	sq->purge_pending = rc != SQLITE_OK;
	pthread_mutex_unlock(&sq->mu);
	if (rc != SQLITE_OK)
		log_warn(COMPONENT, "WAL purge after a sensitive write did not "
		    "complete; retried after the next write",
		    LF_INT("rc", rc), LF_STR("error", sqlite3_errmsg(c->db)));
}

static int
txn_begin(struct sq_conn *c)
{
	int r;

	if (c->depth == 0) {
		if ((r = exec_stmt(c, ST_BEGIN, "begin")) != 0)
			return r;
		c->aborted = false;
	} else if ((r = exec_stmt(c, ST_SAVEPOINT, "savepoint")) != 0) {
		return r;
	}
	c->depth++;
	return 0;
}

/* Ends the innermost transaction level: committed (released) when r is 0,
 * rolled back otherwise. Returns r, or the commit's error. */
static int
txn_end(struct sq *sq, struct sq_conn *c, int r)
{
	bool purge = false;
	int r2;

	c->depth--;
	if (sqlite3_get_autocommit(c->db)) {
		/* SQLite already rolled everything back (I/O error, full
		 * disk, out of memory): so does every outer level. */
		c->aborted = c->depth > 0;
		if (r == 0)
			r = MOAT_ERR_IO;
		if (c->depth == 0)
			purge = c->sensitive_dirty;
		goto out;
	}
	if (c->depth > 0) {
		if (r != 0 && (r2 = exec_stmt(c, ST_ROLLBACK_TO,
		    "rollback to savepoint")) != 0)
			c->aborted = true;
		if ((r2 = exec_stmt(c, ST_RELEASE, "release savepoint")) != 0) {
			c->aborted = true;
			if (r == 0)
				r = r2;
		}
		goto out;
	}
	if (r == 0 && (r = exec_stmt(c, ST_COMMIT, "commit")) == 0) {
		purge = c->sensitive_dirty;
		goto out;
	}
	if (!sqlite3_get_autocommit(c->db))
		(void)exec_stmt(c, ST_ROLLBACK, "rollback");
	purge = c->sensitive_dirty;
out:
	if (c->depth == 0) {
		c->sensitive_dirty = false;
		pthread_mutex_lock(&sq->mu);
		purge = purge || sq->purge_pending;
		pthread_mutex_unlock(&sq->mu);
		if (purge)
			purge_wal(sq, c);
	}
	return r;
}

/* Builds a document from a row (id, rev, body, created_at, updated_at). A
 * body that is not a JSON object is MOAT_ERR_CORRUPT. */
static int
row_doc(sqlite3_stmt *s, const char *coll, json_t **out)
{
	const char *id = (const char *)sqlite3_column_text(s, 0);
	const char *body, *created, *updated;
	json_t *doc = NULL;
	json_error_t jerr;
	int blen, r = MOAT_ERR_CORRUPT;

	*out = NULL;
	if (id == NULL || sqlite3_column_type(s, 1) != SQLITE_INTEGER ||
	    sqlite3_column_type(s, 2) != SQLITE_TEXT)
		goto bad;
	body = (const char *)sqlite3_column_text(s, 2);
	blen = sqlite3_column_bytes(s, 2);
	created = (const char *)sqlite3_column_text(s, 3);
	updated = (const char *)sqlite3_column_text(s, 4);
	if (body == NULL || created == NULL || updated == NULL)
		goto bad;
	doc = json_loadb(body, (size_t)blen, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(doc))
		goto bad;
	r = MOAT_ERR_NOMEM;
	if (json_object_set_new(doc, "id", json_string(id)) != 0 ||
	    json_object_set_new(doc, "rev",
	    json_integer(sqlite3_column_int64(s, 1))) != 0 ||
	    json_object_set_new(doc, "created_at", json_string(created)) != 0 ||
	    json_object_set_new(doc, "updated_at", json_string(updated)) != 0)
		goto out;
	*out = doc;
	doc = NULL;
	r = 0;
	goto out;
bad:
	log_error(COMPONENT, "stored document is not a valid JSON object",
	    LF_STR("collection", coll), LF_STR("id", id != NULL ? id : ""));
out:
	json_decref(doc);
	return r;
}

static int
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	return sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/* Writes the idx rows of doc (its declared, present index fields). */
static int
insert_idx(struct sq_conn *c, const struct store_collection *coll,
    const char *id, const json_t *doc)
{
	sqlite3_stmt *s = NULL;
	char buf[32];
	const char *v;
	int r, rc;

	for (size_t i = 0; i < coll->nindexes; i++) {
		const struct store_index *ix = &coll->indexes[i];

		if ((r = store__index_value(doc, ix->field, buf, sizeof(buf),
		    &v)) < 0)
			return r;
		if (r == 1)
			continue;
		if ((r = stmt(c, ST_INS_IDX, &s)) != 0)
			return r;
		bind_text(s, 1, coll->name);
		bind_text(s, 2, ix->field);
		bind_text(s, 3, v);
		bind_text(s, 4, id);
		sqlite3_bind_int(s, 5, ix->unique ? 1 : 0);
		rc = sqlite3_step(s);
		r = rc == SQLITE_DONE ? 0 : sq_fail(c->db, rc, "insert index");
		stmt_done(s);
		if (r != 0)
			return r;
	}
	return 0;
}

static int
delete_idx(struct sq_conn *c, const char *coll, const char *id)
{
	sqlite3_stmt *s = NULL;
	int r, rc;

	if ((r = stmt(c, ST_DEL_IDX, &s)) != 0)
		return r;
	bind_text(s, 1, coll);
	bind_text(s, 2, id);
	rc = sqlite3_step(s);
	r = rc == SQLITE_DONE ? 0 : sq_fail(c->db, rc, "delete index");
	stmt_done(s);
	return r;
}

/* The current revision and created_at (copied into created) of id. */
static int
current_rev(struct sq_conn *c, const char *coll, const char *id,
    int64_t *rev, char *created, size_t createdlen)
{
	sqlite3_stmt *s = NULL;
	const char *ca;
	int r, rc;

	if ((r = stmt(c, ST_SEL_REV, &s)) != 0)
		return r;
	bind_text(s, 1, coll);
	bind_text(s, 2, id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*rev = sqlite3_column_int64(s, 0);
		ca = (const char *)sqlite3_column_text(s, 1);
		if (created != NULL)
			snprintf(created, createdlen, "%s", ca != NULL ? ca : "");
		r = 0;
	} else if (rc == SQLITE_DONE) {
		r = MOAT_ERR_NOTFOUND;
	} else {
		r = sq_fail(c->db, rc, "select revision");
	}
	stmt_done(s);
	return r;
}

/* The body a document is persisted as: canonical JSON without the store
 * fields. Caller frees. */
static int
doc_body(const json_t *doc, char **out)
{
	json_t *body = store__body(doc);

	*out = body != NULL ? json_canonical(body, NULL) : NULL;
	json_decref(body);
	return *out != NULL ? 0 : MOAT_ERR_NOMEM;
}

static int
sq_insert(struct store *st, const struct store_collection *coll,
    const json_t *doc)
{
	struct sq *sq = st->impl;
	struct sq_conn *c = NULL;
	sqlite3_stmt *s = NULL;
	const char *id = json_string_value(json_object_get(doc, "id"));
	char *body = NULL;
	bool own = false, began = false;
	int r, rc;

	if ((r = doc_body(doc, &body)) != 0)
		goto out;
	if ((r = conn_get(sq, &c, &own)) != 0)
		goto out;
	if ((r = txn_begin(c)) != 0)
		goto out;
	began = true;
	if (coll->sensitive)
		c->sensitive_dirty = true;
	if ((r = stmt(c, ST_INS_DOC, &s)) != 0)
		goto out;
	bind_text(s, 1, coll->name);
	bind_text(s, 2, id);
	bind_text(s, 3, body);
	bind_text(s, 4, json_string_value(json_object_get(doc, "created_at")));
	bind_text(s, 5, json_string_value(json_object_get(doc, "updated_at")));
	rc = sqlite3_step(s);
	r = rc == SQLITE_DONE ? 0 : sq_fail(c->db, rc, "insert");
	stmt_done(s);
	if (r != 0)
		goto out;
	r = insert_idx(c, coll, id, doc);
out:
	if (began)
		r = txn_end(sq, c, r);
	conn_put(sq, c, own);
	free(body);
	return r;
}

static int
sq_get(struct store *st, const struct store_collection *coll, const char *id,
    json_t **out)
{
	struct sq *sq = st->impl;
	struct sq_conn *c = NULL;
	sqlite3_stmt *s = NULL;
	bool own = false;
	int r, rc;

	if ((r = conn_get(sq, &c, &own)) != 0)
		goto out;
	if ((r = stmt(c, ST_GET, &s)) != 0)
		goto out;
	bind_text(s, 1, coll->name);
	bind_text(s, 2, id);
	rc = step_retry(c->db, s);
	if (rc == SQLITE_ROW)
		r = row_doc(s, coll->name, out);
	else if (rc == SQLITE_DONE)
		r = MOAT_ERR_NOTFOUND;
	else
		r = sq_fail(c->db, rc, "get");
out:
	stmt_done(s);
	conn_put(sq, c, own);
	return r;
}

static int
sq_list(struct store *st, const struct store_collection *coll,
    const char *field, const char *value, const char *after, size_t limit,
    json_t **out)
{
	struct sq *sq = st->impl;
	struct sq_conn *c = NULL;
	sqlite3_stmt *s = NULL;
	json_t *arr = NULL, *doc;
	int64_t lim = limit == 0 || limit > INT64_MAX ? -1 : (int64_t)limit;
	bool own = false, first = true;
	int r, rc;

	if ((arr = json_array()) == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = conn_get(sq, &c, &own)) != 0)
		goto out;
	if (field == NULL) {
		if ((r = stmt(c, ST_LIST_ALL, &s)) != 0)
			goto out;
		bind_text(s, 1, coll->name);
		bind_text(s, 2, after != NULL ? after : "");
		sqlite3_bind_int64(s, 3, lim);
	} else {
		if ((r = stmt(c, ST_LIST_FIELD, &s)) != 0)
			goto out;
		bind_text(s, 1, coll->name);
		bind_text(s, 2, field);
		bind_text(s, 3, value);
		bind_text(s, 4, after != NULL ? after : "");
		sqlite3_bind_int64(s, 5, lim);
	}
	for (;;) {
		rc = first ? step_retry(c->db, s) : sqlite3_step(s);
		first = false;
		if (rc == SQLITE_DONE)
			break;
		if (rc != SQLITE_ROW) {
			r = sq_fail(c->db, rc, "list");
			goto out;
		}
		if ((r = row_doc(s, coll->name, &doc)) != 0)
			goto out;
		if (json_array_append_new(arr, doc) != 0) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
	}
	*out = arr;
	arr = NULL;
	r = 0;
out:
	stmt_done(s);
	conn_put(sq, c, own);
	json_decref(arr);
	return r;
}

static int
sq_update(struct store *st, const struct store_collection *coll, json_t *doc)
{
	struct sq *sq = st->impl;
	struct sq_conn *c = NULL;
	sqlite3_stmt *s = NULL;
	const char *id = json_string_value(json_object_get(doc, "id"));
	int64_t want = json_integer_value(json_object_get(doc, "rev")), cur;
	char created[STORE__TIME_LEN + 8];
	char *body = NULL;
	bool own = false, began = false;
	int r, rc;

	if ((r = doc_body(doc, &body)) != 0)
		goto out;
	if ((r = conn_get(sq, &c, &own)) != 0)
		goto out;
	if ((r = txn_begin(c)) != 0)
		goto out;
	began = true;
	if (coll->sensitive)
		c->sensitive_dirty = true;
	if ((r = current_rev(c, coll->name, id, &cur, created,
	    sizeof(created))) != 0)
		goto out;
	if (cur != want) {
		r = MOAT_ERR_CONFLICT;
		goto out;
	}
	if ((r = stmt(c, ST_UPD_DOC, &s)) != 0)
		goto out;
	bind_text(s, 1, coll->name);
	bind_text(s, 2, id);
	bind_text(s, 3, body);
	bind_text(s, 4, json_string_value(json_object_get(doc, "updated_at")));
	sqlite3_bind_int64(s, 5, want);
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		r = sq_fail(c->db, rc, "update");
	else if (sqlite3_changes(c->db) != 1)
		r = MOAT_ERR_CONFLICT;	/* cannot happen under the write lock */
	stmt_done(s);
	if (r != 0)
		goto out;
	if ((r = delete_idx(c, coll->name, id)) != 0 ||
	    (r = insert_idx(c, coll, id, doc)) != 0)
		goto out;
	r = MOAT_ERR_NOMEM;
	if (json_object_set_new(doc, "rev", json_integer(want + 1)) != 0 ||
	    json_object_set_new(doc, "created_at", json_string(created)) != 0)
		goto out;
	r = 0;
out:
	if (began)
		r = txn_end(sq, c, r);
	conn_put(sq, c, own);
	free(body);
	return r;
}

static int
sq_delete(struct store *st, const struct store_collection *coll,
    const char *id, int64_t expected_rev)
{
	struct sq *sq = st->impl;
	struct sq_conn *c = NULL;
	sqlite3_stmt *s = NULL;
	int64_t cur;
	bool own = false, began = false;
	int r, rc;

	if ((r = conn_get(sq, &c, &own)) != 0)
		goto out;
	if ((r = txn_begin(c)) != 0)
		goto out;
	began = true;
	if (coll->sensitive)
		c->sensitive_dirty = true;
	if ((r = current_rev(c, coll->name, id, &cur, NULL, 0)) != 0)
		goto out;
	if (expected_rev != -1 && cur != expected_rev) {
		r = MOAT_ERR_CONFLICT;
		goto out;
	}
	if ((r = delete_idx(c, coll->name, id)) != 0)
		goto out;
	if ((r = stmt(c, ST_DEL_DOC, &s)) != 0)
		goto out;
	bind_text(s, 1, coll->name);
	bind_text(s, 2, id);
	rc = sqlite3_step(s);
	r = rc == SQLITE_DONE ? 0 : sq_fail(c->db, rc, "delete");
	stmt_done(s);
out:
	if (began)
		r = txn_end(sq, c, r);
	conn_put(sq, c, own);
	return r;
}

static int
sq_transaction(struct store *st, store_txn_fn fn, void *arg)
{
	struct sq *sq = st->impl;
	struct sq_conn *c = NULL;
	bool own = false;
	int r;

	if ((r = conn_get(sq, &c, &own)) != 0)
		goto out;
	if ((r = txn_begin(c)) != 0)
		goto out;
	if (own && pthread_setspecific(sq->key, c) != 0) {
		r = txn_end(sq, c, MOAT_ERR_NOMEM);
		goto out;
	}
	r = fn(st, arg);
	r = txn_end(sq, c, r);
	if (own)
		pthread_setspecific(sq->key, NULL);
out:
	conn_put(sq, c, own);
	return r;
}

static int
sq_schema_version(struct store *st)
{
	return ((struct sq *)st->impl)->version;
}

/* ---- online backup ---- */

/*
 * Copies the database with SQLite's backup API from a pool connection (never
 * the thread's transaction connection, so the copy holds only committed
 * state). sqlite3_backup_step(-1) copies every page under one read snapshot:
 * in WAL mode writers on other connections and processes carry on meanwhile
 * and the copy is the state at the snapshot. SQLITE_BUSY/LOCKED (a writer
 * holding the lock at the moment the snapshot is taken) is retried within
 * SQ_BUSY_TIMEOUT_MS.
 */
static int
sq_backup(struct store *st, const char *dest_path)
{
	struct sq *sq = st->impl;
	struct sq_conn *c = NULL;
	sqlite3 *dst = NULL;
	sqlite3_backup *b = NULL;
	int64_t deadline = mono_ms() + SQ_BUSY_TIMEOUT_MS;
	bool created = false;
	int fd, rc, r = MOAT_ERR_IO;

	fd = open(dest_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd < 0) {
		r = moat_err_from_errno(errno);
		log_error(COMPONENT, "cannot create backup file",
		    LF_STR("path", dest_path), LF_STR("error", strerror(errno)));
		goto out;
	}
	created = true;
	close(fd);
	if ((r = pool_get(sq, &c)) != 0)
		goto out;
	rc = sqlite3_open_v2(dest_path, &dst, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE |
	    SQLITE_OPEN_NOFOLLOW, NULL);
	if (rc != SQLITE_OK) {
		r = sq_fail(dst, rc, "backup open");
		goto out;
	}
	if ((b = sqlite3_backup_init(dst, "main", c->db, "main")) == NULL) {
		r = sq_fail(dst, sqlite3_errcode(dst), "backup init");
		goto out;
	}
	for (;;) {
		rc = sqlite3_backup_step(b, -1);
		if (rc == SQLITE_DONE)
			break;
		if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) &&
		    mono_ms() < deadline) {
			sleep_ms(10);
			continue;
		}
		r = sq_fail(c->db, rc, "backup step");
		goto out;
	}
	rc = sqlite3_backup_finish(b);
	b = NULL;
	if (rc != SQLITE_OK) {
		r = sq_fail(dst, rc, "backup finish");
		goto out;
	}
	rc = sqlite3_close(dst);
	dst = NULL;
	if (rc != SQLITE_OK) {
		r = sq_fail(NULL, rc, "backup close");
		goto out;
	}
	/* Durable before it is reported done. */
	if ((fd = open(dest_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fsync(fd) != 0) {
		r = moat_err_from_errno(errno);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	close(fd);
	log_info(COMPONENT, "store backed up", LF_STR("path", dest_path));
	r = 0;
out:
	if (b != NULL)
		sqlite3_backup_finish(b);
	if (dst != NULL)
		sqlite3_close(dst);
	pool_put(sq, c);
	if (r != 0 && created) {
		char side[PATH_MAX];

		unlink(dest_path);
		/* A journal the failed copy may have left. */
		if (snprintf(side, sizeof(side), "%s-journal", dest_path) <
		    (int)sizeof(side))
			unlink(side);
	}
	return r;
}

/* ---- opening: file mode, migrations, re-indexing ---- */

/* Creates the database file 0600 (SQLite then gives its -wal and -shm
 * files the same mode) and tightens an existing one that is wider. */
static int
prepare_file(const char *path)
{
	struct stat sb;
	int fd, r = 0;

	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = moat_err_from_errno(errno);
		log_error(COMPONENT, "cannot open database file",
		    LF_STR("path", path), LF_STR("error", strerror(errno)));
		return r;
	}
	if (fstat(fd, &sb) == 0 && (sb.st_mode & 077) != 0) {
		log_warn(COMPONENT, "database file was readable by others; "
		    "mode set to 0600", LF_STR("path", path));
		if (fchmod(fd, 0600) != 0)
			r = moat_err_from_errno(errno);
	}
	close(fd);
	return r;
}

static int
read_version(sqlite3 *db, int *out)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	rc = sqlite3_prepare_v2(db,
	    "SELECT value FROM meta WHERE key = 'schema_version'", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(db, rc, "read schema version");
	rc = sqlite3_step(s);
	if (rc == SQLITE_DONE) {
		*out = 0;
		r = 0;
	} else if (rc == SQLITE_ROW) {
		sqlite3_int64 v = sqlite3_column_int64(s, 0);

		if (sqlite3_column_type(s, 0) != SQLITE_INTEGER || v < 0 ||
		    v > 1000000) {
			log_error(COMPONENT, "database schema version is "
			    "not a valid number");
			r = MOAT_ERR_CORRUPT;
		} else {
			*out = (int)v;
			r = 0;
		}
	} else {
		r = sq_fail(db, rc, "read schema version");
	}
	sqlite3_finalize(s);
	return r;
}

static int
write_version(sqlite3 *db, int v)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	rc = sqlite3_prepare_v2(db,
	    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)"
	    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	    -1, &s, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(db, rc, "write schema version");
	sqlite3_bind_int(s, 1, v);
	rc = sqlite3_step(s);
	r = rc == SQLITE_DONE ? 0 : sq_fail(db, rc, "write schema version");
	sqlite3_finalize(s);
	return r;
}

/* True when idx_decl already records exactly c's index declarations. */
static int
decl_matches(sqlite3 *db, const struct store_collection *c, bool *match)
{
	sqlite3_stmt *s = NULL;
	size_t n = 0;
	int rc, r = 0;

	*match = true;
	rc = sqlite3_prepare_v2(db,
	    "SELECT field, uniq FROM idx_decl WHERE coll = ?1", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return sq_fail(db, rc, "read index declarations");
	bind_text(s, 1, c->name);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *f = (const char *)sqlite3_column_text(s, 0);
		const struct store_index *ix = f != NULL ?
		    store__index(c, f) : NULL;

		n++;
		if (ix == NULL || (sqlite3_column_int(s, 1) != 0) != ix->unique)
			*match = false;
	}
	if (rc != SQLITE_DONE)
		r = sq_fail(db, rc, "read index declarations");
	if (n != c->nindexes)
		*match = false;
	sqlite3_finalize(s);
	return r;
}

/* Rebuilds every idx row of collection c from its documents and records
 * c's declarations. Runs inside the open transaction on conn. */
static int
reindex(struct sq_conn *conn, const struct store_collection *c)
{
	sqlite3 *db = conn->db;
	sqlite3_stmt *s = NULL, *ins = NULL;
	json_t *doc = NULL;
	size_t ndocs = 0;
	int rc, r;

	rc = sqlite3_prepare_v2(db, "DELETE FROM idx WHERE coll = ?1", -1, &s,
	    NULL);
	if (rc == SQLITE_OK) {
		bind_text(s, 1, c->name);
		rc = sqlite3_step(s);
	}
	sqlite3_finalize(s);
	s = NULL;
	if (rc != SQLITE_DONE && rc != SQLITE_OK)
		return sq_fail(db, rc, "reindex");
	rc = sqlite3_prepare_v2(db, "DELETE FROM idx_decl WHERE coll = ?1", -1,
	    &s, NULL);
	if (rc == SQLITE_OK) {
		bind_text(s, 1, c->name);
		rc = sqlite3_step(s);
	}
	sqlite3_finalize(s);
	s = NULL;
	if (rc != SQLITE_DONE && rc != SQLITE_OK)
		return sq_fail(db, rc, "reindex");
	rc = sqlite3_prepare_v2(db, "INSERT INTO idx_decl (coll, field, uniq)"
	    " VALUES (?1, ?2, ?3)", -1, &ins, NULL);
	if (rc != SQLITE_OK) {
		r = sq_fail(db, rc, "reindex");
		goto out;
	}
	for (size_t i = 0; i < c->nindexes; i++) {
		bind_text(ins, 1, c->name);
		bind_text(ins, 2, c->indexes[i].field);
		sqlite3_bind_int(ins, 3, c->indexes[i].unique ? 1 : 0);
		rc = sqlite3_step(ins);
		sqlite3_reset(ins);
		if (rc != SQLITE_DONE) {
			r = sq_fail(db, rc, "reindex");
			goto out;
		}
	}
	rc = sqlite3_prepare_v2(db, "SELECT " DOC_COLS " FROM docs d"
	    " WHERE d.coll = ?1 ORDER BY d.id", -1, &s, NULL);
	if (rc != SQLITE_OK) {
		r = sq_fail(db, rc, "reindex");
		goto out;
	}
	bind_text(s, 1, c->name);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(s, 0);

		if ((r = row_doc(s, c->name, &doc)) != 0)
			goto out;
		/* A field of a type an index cannot hold (declared after the
		 * document was written) gets no entry rather than failing. */
		for (size_t i = 0; i < c->nindexes; i++) {
			char buf[32];
			const char *v;

			if (store__index_value(doc, c->indexes[i].field, buf,
			    sizeof(buf), &v) < 0) {
				log_warn(COMPONENT, "indexed field has a type "
				    "an index cannot hold; not indexed",
				    LF_STR("collection", c->name),
				    LF_STR("id", id),
				    LF_STR("field", c->indexes[i].field));
				json_object_del(doc, c->indexes[i].field);
			}
		}
		if ((r = insert_idx(conn, c, id, doc)) != 0) {
			if (r == MOAT_ERR_EXISTS)
				log_error(COMPONENT, "existing documents "
				    "violate a unique index",
				    LF_STR("collection", c->name),
				    LF_STR("id", id));
			goto out;
		}
		json_decref(doc);
		doc = NULL;
		ndocs++;
	}
	if (rc != SQLITE_DONE) {
		r = sq_fail(db, rc, "reindex");
		goto out;
	}
	if (ndocs > 0)
		log_info(COMPONENT, "collection indexes rebuilt",
		    LF_STR("collection", c->name), LF_INT("documents", ndocs));
	r = 0;
out:
	json_decref(doc);
	sqlite3_finalize(s);
	sqlite3_finalize(ins);
	return r;
}

/* Brings the database to SQ_SCHEMA_VERSION and the index tables in line
 * with st's collections, in one transaction on c. */
static int
migrate(struct store *st, struct sq_conn *c)
{
	struct sq *sq = st->impl;
	int v = 0, r, rc;
	bool match;

	if ((r = txn_begin(c)) != 0)
		return r;
	rc = sqlite3_exec(c->db, "CREATE TABLE IF NOT EXISTS meta ("
	    " key TEXT PRIMARY KEY NOT NULL, value NOT NULL)", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = sq_fail(c->db, rc, "create meta");
		goto out;
	}
	if ((r = read_version(c->db, &v)) != 0)
		goto out;
	if (v > SQ_SCHEMA_VERSION) {
		char msg[160];

		snprintf(msg, sizeof(msg), "database schema version %d is newer "
		    "than this moatd (%d): downgrade refused", v,
		    SQ_SCHEMA_VERSION);
		log_error(COMPONENT, msg, LF_STR("path", sq->path),
		    LF_INT("db_version", v),
		    LF_INT("supported_version", SQ_SCHEMA_VERSION));
		r = MOAT_ERR_UNSUPPORTED;
		goto out;
	}
	for (int i = v; i < SQ_SCHEMA_VERSION; i++) {
		rc = sqlite3_exec(c->db, migrations[i], NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			r = sq_fail(c->db, rc, "migration");
			log_error(COMPONENT, "schema migration failed",
			    LF_INT("from", i), LF_INT("to", i + 1));
			goto out;
		}
	}
	if (v != SQ_SCHEMA_VERSION) {
		if ((r = write_version(c->db, SQ_SCHEMA_VERSION)) != 0)
			goto out;
		log_info(COMPONENT, "database schema migrated",
		    LF_INT("from", v), LF_INT("to", SQ_SCHEMA_VERSION));
	}
	for (size_t i = 0; i < st->ncolls; i++) {
		if ((r = decl_matches(c->db, &st->colls[i], &match)) != 0)
			goto out;
		if (!match && (r = reindex(c, &st->colls[i])) != 0)
			goto out;
	}
	sq->version = SQ_SCHEMA_VERSION;
	r = 0;
out:
	return txn_end(sq, c, r);
}

static void
sq_close(struct store *st)
{
	struct sq *sq;
	struct sq_conn *c;

	if (st == NULL || (sq = st->impl) == NULL)
		return;
	pthread_mutex_lock(&sq->mu);
	if (sq->nopen != sq->nidle)
		log_error(COMPONENT, "store closed with connections in use",
		    LF_INT("in_use", sq->nopen - sq->nidle));
	while ((c = sq->idle) != NULL) {
		sq->idle = c->next;
		/* The last connection to close checkpoints the WAL and
		 * removes it. */
		conn_close(c);
	}
	sq->nidle = sq->nopen = 0;
	pthread_mutex_unlock(&sq->mu);
	pthread_key_delete(sq->key);
	pthread_cond_destroy(&sq->cv);
	pthread_mutex_destroy(&sq->mu);
	free(sq->path);
	free(sq);
	st->impl = NULL;
}

static int
sq_open(struct store *st, const char *path)
{
	struct sq *sq = NULL;
	struct sq_conn *c = NULL;
	int r = MOAT_ERR_INVAL;

	if (path == NULL || *path == '\0' || *path == ':') {
		log_error(COMPONENT, "sqlite store needs a file path");
		goto out;
	}
	if (!sqlite3_threadsafe()) {
		log_error(COMPONENT, "sqlite library built without threads");
		r = MOAT_ERR_UNSUPPORTED;
		goto out;
	}
	r = MOAT_ERR_NOMEM;
	if ((sq = calloc(1, sizeof(*sq))) == NULL ||
	    (sq->path = strdup(path)) == NULL)
		goto out;
	if (pthread_key_create(&sq->key, NULL) != 0) {
		free(sq->path);
		free(sq);
		sq = NULL;
		goto out;
	}
	pthread_mutex_init(&sq->mu, NULL);
	pthread_cond_init(&sq->cv, NULL);
	st->impl = sq;
	if ((r = prepare_file(path)) != 0)
		goto out;
	if ((r = pool_get(sq, &c)) != 0)
		goto out;
	r = migrate(st, c);
	pool_put(sq, c);
	if (r != 0)
		goto out;
	log_info(COMPONENT, "store opened", LF_STR("backend", "sqlite"),
	    LF_STR("path", path), LF_INT("schema_version", sq->version));
	r = 0;
out:
	if (r != 0 && sq != NULL) {
		sq_close(st);
	} else if (r != 0) {
		st->impl = NULL;
	}
	return r;
}

const struct store_backend store__sqlite_backend = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.insert = sq_insert,
	.get = sq_get,
	.list = sq_list,
	.update = sq_update,
	.del = sq_delete,
	.transaction = sq_transaction,
	.schema_version = sq_schema_version,
	.backup = sq_backup,
};
