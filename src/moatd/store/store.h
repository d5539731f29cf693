/*
 * store.h - moatd's document store.
 *
 * Collections of JSON documents. Every stored document is a JSON object
 * with these fields set by the store:
 *   "id"          string, caller-chosen (a name rule applies upstream) or,
 *                 when absent at insert, 32 random hex characters
 *   "rev"         integer, 1 at insert and +1 at every update
 *   "created_at", "updated_at"   RFC 3339 UTC with milliseconds
 * Everything else is the caller's. Values that are secret are never stored
 * in plaintext: callers seal them first (secrets/envelope.h) and keep them
 * under the top-level object "sealed" ({"field": "v1:..."}), which is where
 * key rotation finds them.
 *
 * Secondary indexes are declared per collection on top-level string or
 * integer fields; a unique index refuses a second document with the same
 * value (MOAT_ERR_EXISTS). Lookups by an undeclared field are refused
 * (MOAT_ERR_INVAL): every query a caller makes is one the backend can
 * answer from an index. "id" is always indexed. Lookup values are text: an
 * integer field matches its decimal form ("42"). A document whose indexed
 * field is absent or null has no entry for it; any other type (or a string
 * holding a NUL) is refused with MOAT_ERR_INVAL. Composite keys are fields
 * the caller fills in (e.g. "user_org": user_id + "/" + org).
 *
 * Optimistic concurrency: store_update() and store_delete() take the
 * revision the caller read; a different current revision fails with
 * MOAT_ERR_CONFLICT and changes nothing, so two moatd processes sharing one
 * store never both win.
 *
 * Transactions: store_transaction() runs a function with every store call
 * it makes on this thread inside one transaction, committed when it returns
 * 0 and rolled back otherwise.
 *
 * Backends: "sqlite:PATH" (WAL, busy_timeout, versioned migrations at open,
 * secure_delete; the WAL is checkpointed and truncated after every write to
 * a collection marked sensitive, so a deleted value leaves no copy in the
 * files). A MongoDB backend ("mongodb://...") fits the same interface.
 *
 * Threads: a struct store may be used from any number of threads at once.
 * Every call blocks on disk: call it from worker threads (loop.h workpool),
 * never from an event-loop thread.
 */
#ifndef MOATD_STORE_H
#define MOATD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

struct store;

struct store_index {
	const char *field;
	bool unique;
};

struct store_collection {
	const char *name;		/* [a-z_]+ */
	const struct store_index *indexes;
	size_t nindexes;
	bool sensitive;			/* holds sealed values: purge WAL after writes */
};

/* Opens the store at uri and runs pending migrations. colls is borrowed
 * and must outlive the store. A database written by a newer moatd (a
 * schema version above this binary's) is refused with MOAT_ERR_UNSUPPORTED
 * and a log line saying so. */
int store_open(struct store **out, const char *uri,
    const struct store_collection *colls, size_t ncolls) MOAT_MUST_CHECK;
void store_close(struct store *st);

/* Inserts doc (borrowed; on success the store's fields are set in it, on
 * failure it is unchanged). MOAT_ERR_EXISTS: the id or a unique index value
 * is taken; MOAT_ERR_INVAL: not an object, bad id, unknown collection. */
int store_insert(struct store *st, const char *coll, json_t *doc)
    MOAT_MUST_CHECK;

/* *out is a new reference the caller decrefs. MOAT_ERR_NOTFOUND.
 * store_find_one() gives the first match by id (on a unique index, the
 * match). A stored body that is not a JSON object is MOAT_ERR_CORRUPT. */
int store_get(struct store *st, const char *coll, const char *id, json_t **out)
    MOAT_MUST_CHECK;
int store_find_one(struct store *st, const char *coll, const char *field,
    const char *value, json_t **out) MOAT_MUST_CHECK;

/* Documents whose field equals value (field NULL: all), ordered by id, at
 * most limit (0: no limit) after the id `after` (NULL: from the start).
 * *out is a new JSON array. */
int store_list(struct store *st, const char *coll, const char *field,
    const char *value, const char *after, size_t limit, json_t **out)
    MOAT_MUST_CHECK;

/* Replaces the document with doc's "id" when its current revision equals
 * doc's "rev"; on success doc's rev and updated_at are advanced. */
int store_update(struct store *st, const char *coll, json_t *doc)
    MOAT_MUST_CHECK;

/* Deletes id when its revision equals expected_rev (-1: any revision). */
int store_delete(struct store *st, const char *coll, const char *id,
    int64_t expected_rev) MOAT_MUST_CHECK;

typedef int (*store_txn_fn)(struct store *st, void *arg);
/* Runs fn(st, arg) in one transaction (see above); returns fn's result, or
 * a store error when the commit fails. Nested calls join the outer one. */
int store_transaction(struct store *st, store_txn_fn fn, void *arg)
    MOAT_MUST_CHECK;

/* The schema version the database is at (after migrations). */
int store_schema_version(struct store *st);

/* Writes a consistent copy of the whole store to the new file dest_path
 * (created 0600 with O_EXCL|O_NOFOLLOW: MOAT_ERR_EXISTS when it exists),
 * while other threads and processes keep reading and writing: the copy
 * holds exactly the transactions committed when it started (SQLite's online
 * backup API, one read snapshot). The copy is fsynced and opens with
 * store_open(). On failure nothing is left at dest_path. Must not be called
 * inside store_transaction(). */
int store_backup(struct store *st, const char *dest_path) MOAT_MUST_CHECK;

/* Writes a fresh random document id (32 lowercase hex characters and a
 * NUL; outlen >= STORE_ID_GEN_LEN) into out, for callers that need the id
 * before the insert, e.g. to seal a value bound to its record. */
#define STORE_ID_GEN_LEN 33
int store_new_id(char *out, size_t outlen) MOAT_MUST_CHECK;

/* True when id is acceptable as a document id: 1..128 bytes of printable
 * ASCII other than space and '/' (0x21..0x7e without 0x2f). */
bool store_valid_id(const char *id);

#endif
