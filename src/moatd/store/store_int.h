/*
 * store_int.h - private interface between store.c (the public face) and the
 * store backends (store_sqlite.c today, a MongoDB backend later).
 *
 * store.c checks every argument a caller gives (collection known, field
 * declared, id well formed, document an object) and prepares what is
 * backend-independent (generated ids, timestamps, index values). A backend
 * receives only checked input and owns persistence, atomicity, revision
 * checks and unique-index enforcement. Adding a backend means one new
 * store_backend table and one line in store.c's scheme list; callers do not
 * change.
 */
#ifndef MOATD_STORE_INT_H
#define MOATD_STORE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"
#include "store/store.h"

/* RFC 3339 UTC with milliseconds: "2024-01-02T03:04:05.678Z" + NUL. */
#define STORE__TIME_LEN 25
#define STORE__ID_MAX 128

struct store_backend {
	const char *name;	/* for logs: "sqlite" */
	/* rest is the uri after the scheme; st->colls is set. Sets st->impl. */
	int (*open)(struct store *st, const char *rest);
	void (*close)(struct store *st);
	/* doc is a complete document: the store fields are already set in it
	 * (id, rev 1, created_at, updated_at). */
	int (*insert)(struct store *st, const struct store_collection *c,
	    const json_t *doc);
	int (*get)(struct store *st, const struct store_collection *c,
	    const char *id, json_t **out);
	/* field NULL: every document; field non-NULL is a declared index. */
	int (*list)(struct store *st, const struct store_collection *c,
	    const char *field, const char *value, const char *after,
	    size_t limit, json_t **out);
	/* doc holds the new content with "id", "rev" = the caller's
	 * expected revision, and "updated_at" already set to now. On success
	 * the backend sets "rev" and "created_at" in doc to the stored ones. */
	int (*update)(struct store *st, const struct store_collection *c,
	    json_t *doc);
	int (*del)(struct store *st, const struct store_collection *c,
	    const char *id, int64_t expected_rev);
	int (*transaction)(struct store *st, store_txn_fn fn, void *arg);
	int (*schema_version)(struct store *st);
	/* dest_path is a non-empty path (store_backup()). */
	int (*backup)(struct store *st, const char *dest_path);
};

struct store {
	const struct store_backend *be;
	const struct store_collection *colls;	/* borrowed from the opener */
	size_t ncolls;
	void *impl;				/* the backend's */
};

/* Shared helpers for backends (store.c). */

/* The index declaration for field in c, or NULL. */
const struct store_index *store__index(const struct store_collection *c,
    const char *field);

/* The index value of doc's top-level field: 0 and *out (a string, or a
 * decimal integer written into buf) when present, 1 when absent or null
 * (no index entry), MOAT_ERR_INVAL for any other type. */
int store__index_value(const json_t *doc, const char *field, char *buf,
    size_t buflen, const char **out);

/* Removes the store-managed fields (id, rev, created_at, updated_at) from a
 * copy of doc: the body a backend persists. New reference; NULL on ENOMEM. */
json_t *store__body(const json_t *doc);

/* True for the names the store manages itself. */
bool store__reserved_field(const char *name);

#endif
