/*
 * store.c - the public face of moatd's document store (store.h).
 *
 * Checks every argument, prepares what does not depend on the backend
 * (document ids, timestamps, which fields are indexed) and dispatches on the
 * uri scheme to a backend through the table in store_int.h. Backends see
 * only checked input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "log.h"
#include "store/store.h"
#include "store/store_int.h"

#define COMPONENT "store"

extern const struct store_backend store__sqlite_backend;

static const struct {
	const char *prefix;
	const struct store_backend *be;
} schemes[] = {
	{ "sqlite:", &store__sqlite_backend },
};

static const char *const reserved_fields[] = {
	"id", "rev", "created_at", "updated_at",
};

bool
store__reserved_field(const char *name)
{
	for (size_t i = 0; i < sizeof(reserved_fields) / sizeof(*reserved_fields); i++)
		if (strcmp(name, reserved_fields[i]) == 0)
			return true;
	return false;
}

bool
store_valid_id(const char *id)
{
	size_t n;

	if (id == NULL)
		return false;
	for (n = 0; id[n] != '\0'; n++) {
		unsigned char ch = (unsigned char)id[n];

		if (n >= STORE__ID_MAX || ch < 0x21 || ch > 0x7e || ch == '/')
			return false;
	}
	return n > 0;
}

int
store_new_id(char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char raw[16];

	if (out == NULL || outlen < STORE_ID_GEN_LEN)
		return MOAT_ERR_INVAL;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return MOAT_ERR_CRYPTO;
	for (size_t i = 0; i < sizeof(raw); i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[2 * sizeof(raw)] = '\0';
	return 0;
}

/* now as RFC 3339 UTC with milliseconds ("2024-01-02T03:04:05.678Z"). */
static void
now_rfc3339(char out[STORE__TIME_LEN])
{
	struct timespec ts;
	struct tm tm;
	long ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if (strftime(out, STORE__TIME_LEN, "%Y-%m-%dT%H:%M:%S", &tm) != 19) {
		/* A year beyond 9999: not a clock moatd runs on. */
		snprintf(out, STORE__TIME_LEN, "9999-12-31T23:59:59.999Z");
		return;
	}
	ms = ts.tv_nsec / 1000000L;
	out[19] = '.';
	out[20] = (char)('0' + ms / 100);
	out[21] = (char)('0' + ms / 10 % 10);
	out[22] = (char)('0' + ms % 10);
	out[23] = 'Z';
	out[24] = '\0';
}

static bool
valid_coll_name(const char *name)
{
	if (name == NULL || *name == '\0')
		return false;
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || *p == '_'))
			return false;
	return true;
}

/* Refuses a collection table the store cannot serve: bad or duplicate
 * names, empty or duplicate index fields, indexes on store fields. */
static int
check_colls(const struct store_collection *colls, size_t ncolls)
{
	if (colls == NULL && ncolls > 0)
		return MOAT_ERR_INVAL;
	for (size_t i = 0; i < ncolls; i++) {
		const struct store_collection *c = &colls[i];

		if (!valid_coll_name(c->name) ||
		    (c->indexes == NULL && c->nindexes > 0)) {
			log_error(COMPONENT, "invalid collection declaration",
			    LF_INT("index", i));
			return MOAT_ERR_INVAL;
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(colls[j].name, c->name) == 0) {
				log_error(COMPONENT, "duplicate collection",
				    LF_STR("collection", c->name));
				return MOAT_ERR_INVAL;
			}
		for (size_t k = 0; k < c->nindexes; k++) {
			const char *f = c->indexes[k].field;

			if (f == NULL || *f == '\0' || store__reserved_field(f) ||
			    store__index(c, f) != &c->indexes[k]) {
				log_error(COMPONENT, "invalid index declaration",
				    LF_STR("collection", c->name),
				    LF_STR("field", f != NULL ? f : ""));
				return MOAT_ERR_INVAL;
			}
		}
	}
	return 0;
}

int
store_open(struct store **out, const char *uri,
    const struct store_collection *colls, size_t ncolls)
{
	struct store *st = NULL;
	const struct store_backend *be = NULL;
	const char *rest = NULL;
	int r = MOAT_ERR_INVAL;

	if (out == NULL)
		return MOAT_ERR_INVAL;
	*out = NULL;
	if (uri == NULL)
		goto out;
	if ((r = check_colls(colls, ncolls)) != 0)
		goto out;
	for (size_t i = 0; i < sizeof(schemes) / sizeof(*schemes); i++) {
		size_t n = strlen(schemes[i].prefix);

		if (strncmp(uri, schemes[i].prefix, n) == 0) {
			be = schemes[i].be;
			rest = uri + n;
			break;
		}
	}
	if (be == NULL) {
		/* Never log the uri itself: a MongoDB uri may hold a password. */
		if (strncmp(uri, "mongodb:", 8) == 0 ||
		    strncmp(uri, "mongodb+srv:", 12) == 0) {
			log_error(COMPONENT, "the MongoDB store backend is not "
			    "built into this moatd");
			r = MOAT_ERR_UNSUPPORTED;
		} else {
			log_error(COMPONENT, "unknown store uri scheme");
			r = MOAT_ERR_INVAL;
		}
		goto out;
	}
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	st->be = be;
	st->colls = colls;
	st->ncolls = ncolls;
	if ((r = be->open(st, rest)) != 0) {
		free(st);
		st = NULL;
		goto out;
	}
	*out = st;
	r = 0;
out:
	return r;
}

void
store_close(struct store *st)
{
	if (st == NULL)
		return;
	st->be->close(st);
	free(st);
}

static const struct store_collection *
find_coll(const struct store *st, const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < st->ncolls; i++)
		if (strcmp(st->colls[i].name, name) == 0)
			return &st->colls[i];
	return NULL;
}

const struct store_index *
store__index(const struct store_collection *c, const char *field)
{
	for (size_t i = 0; i < c->nindexes; i++)
		if (strcmp(c->indexes[i].field, field) == 0)
			return &c->indexes[i];
	return NULL;
}

int
store__index_value(const json_t *doc, const char *field, char *buf,
    size_t buflen, const char **out)
{
	const json_t *v = json_object_get(doc, field);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 1;
	if (json_is_string(v)) {
		/* An embedded NUL would make two values compare equal. */
		if (strlen(json_string_value(v)) != json_string_length(v))
			return MOAT_ERR_INVAL;
		*out = json_string_value(v);
		return 0;
	}
	if (json_is_integer(v)) {
		snprintf(buf, buflen, "%lld", (long long)json_integer_value(v));
		*out = buf;
		return 0;
	}
	return MOAT_ERR_INVAL;
}

json_t *
store__body(const json_t *doc)
{
	json_t *body = json_copy((json_t *)doc);

	if (body == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(reserved_fields) / sizeof(*reserved_fields); i++)
		json_object_del(body, reserved_fields[i]);
	return body;
}

/* Checks that every declared index field of doc has an indexable type. */
static int
check_index_types(const struct store_collection *c, const json_t *doc)
{
	char buf[32];
	const char *v;

	for (size_t i = 0; i < c->nindexes; i++)
		if (store__index_value(doc, c->indexes[i].field, buf,
		    sizeof(buf), &v) < 0)
			return MOAT_ERR_INVAL;
	return 0;
}

int
store_insert(struct store *st, const char *coll, json_t *doc)
{
	const struct store_collection *c;
	json_t *work = NULL;
	const json_t *idv;
	char id[STORE_ID_GEN_LEN], now[STORE__TIME_LEN];
	const char *use_id;
	int r = MOAT_ERR_INVAL;

	if (st == NULL || (c = find_coll(st, coll)) == NULL ||
	    !json_is_object(doc))
		goto out;
	if ((idv = json_object_get(doc, "id")) != NULL) {
		if (!json_is_string(idv) ||
		    !store_valid_id(json_string_value(idv)))
			goto out;
		use_id = json_string_value(idv);
	} else {
		if ((r = store_new_id(id, sizeof(id))) != 0)
			goto out;
		use_id = id;
	}
	if ((r = check_index_types(c, doc)) != 0)
		goto out;
	/* Work on a copy so that doc changes only on success. */
	now_rfc3339(now);
	r = MOAT_ERR_NOMEM;
	if ((work = json_copy(doc)) == NULL ||
	    json_object_set_new(work, "id", json_string(use_id)) != 0 ||
	    json_object_set_new(work, "rev", json_integer(1)) != 0 ||
	    json_object_set_new(work, "created_at", json_string(now)) != 0 ||
	    json_object_set_new(work, "updated_at", json_string(now)) != 0)
		goto out;
	if ((r = st->be->insert(st, c, work)) != 0)
		goto out;
	r = MOAT_ERR_NOMEM;
	if (json_object_update(doc, work) != 0)
		goto out;
	r = 0;
out:
	json_decref(work);
	return r;
}

int
store_get(struct store *st, const char *coll, const char *id, json_t **out)
{
	const struct store_collection *c;

	if (out != NULL)
		*out = NULL;
	if (st == NULL || out == NULL || (c = find_coll(st, coll)) == NULL ||
	    id == NULL)
		return MOAT_ERR_INVAL;
	if (!store_valid_id(id))
		return MOAT_ERR_NOTFOUND;
	return st->be->get(st, c, id, out);
}

int
store_list(struct store *st, const char *coll, const char *field,
    const char *value, const char *after, size_t limit, json_t **out)
{
	const struct store_collection *c;
	json_t *doc = NULL, *arr = NULL;
	int r = MOAT_ERR_INVAL;

	if (out != NULL)
		*out = NULL;
	if (st == NULL || out == NULL || (c = find_coll(st, coll)) == NULL)
		goto out;
	if (field != NULL && value == NULL)
		goto out;
	if (field != NULL && strcmp(field, "id") == 0) {
		/* The primary key is always an index: at most one document. */
		if ((arr = json_array()) == NULL) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
		r = store_valid_id(value) ? st->be->get(st, c, value, &doc) :
		    MOAT_ERR_NOTFOUND;
		if (r == MOAT_ERR_NOTFOUND)
			r = 0;
		else if (r != 0)
			goto out;
		else if ((after == NULL || strcmp(value, after) > 0) &&
		    json_array_append(arr, doc) != 0) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
		*out = arr;
		arr = NULL;
		r = 0;
		goto out;
	}
	if (field != NULL && store__index(c, field) == NULL) {
		log_warn(COMPONENT, "lookup by an undeclared field refused",
		    LF_STR("collection", c->name), LF_STR("field", field));
		goto out;
	}
	r = st->be->list(st, c, field, value, after, limit, out);
out:
	json_decref(doc);
	json_decref(arr);
	return r;
}

int
store_find_one(struct store *st, const char *coll, const char *field,
    const char *value, json_t **out)
{
	json_t *arr = NULL;
	int r;

	if (out != NULL)
		*out = NULL;
	if (out == NULL || field == NULL || value == NULL)
		return MOAT_ERR_INVAL;
	if ((r = store_list(st, coll, field, value, NULL, 1, &arr)) != 0)
		return r;
	if (json_array_size(arr) == 0) {
		r = MOAT_ERR_NOTFOUND;
	} else {
		*out = json_incref(json_array_get(arr, 0));
		r = 0;
	}
	json_decref(arr);
	return r;
}

int
store_update(struct store *st, const char *coll, json_t *doc)
{
	const struct store_collection *c;
	const json_t *idv, *revv;
	json_t *work = NULL;
	char now[STORE__TIME_LEN];
	int r = MOAT_ERR_INVAL;

	if (st == NULL || (c = find_coll(st, coll)) == NULL ||
	    !json_is_object(doc))
		goto out;
	idv = json_object_get(doc, "id");
	revv = json_object_get(doc, "rev");
	if (!json_is_string(idv) || !json_is_integer(revv) ||
	    json_integer_value(revv) < 1)
		goto out;
	if (!store_valid_id(json_string_value(idv))) {
		r = MOAT_ERR_NOTFOUND;
		goto out;
	}
	if ((r = check_index_types(c, doc)) != 0)
		goto out;
	now_rfc3339(now);
	r = MOAT_ERR_NOMEM;
	if ((work = json_copy(doc)) == NULL ||
	    json_object_set_new(work, "updated_at", json_string(now)) != 0)
		goto out;
	if ((r = st->be->update(st, c, work)) != 0)
		goto out;
	r = MOAT_ERR_NOMEM;
	if (json_object_update(doc, work) != 0)
		goto out;
	r = 0;
out:
	json_decref(work);
	return r;
}

int
store_delete(struct store *st, const char *coll, const char *id,
    int64_t expected_rev)
{
	const struct store_collection *c;

	if (st == NULL || (c = find_coll(st, coll)) == NULL || id == NULL ||
	    (expected_rev < 1 && expected_rev != -1))
		return MOAT_ERR_INVAL;
	if (!store_valid_id(id))
		return MOAT_ERR_NOTFOUND;
	return st->be->del(st, c, id, expected_rev);
}

int
store_transaction(struct store *st, store_txn_fn fn, void *arg)
{
	if (st == NULL || fn == NULL)
		return MOAT_ERR_INVAL;
	return st->be->transaction(st, fn, arg);
}

int
store_schema_version(struct store *st)
{
	if (st == NULL)
		return MOAT_ERR_INVAL;
	return st->be->schema_version(st);
}

int
store_backup(struct store *st, const char *dest_path)
{
	if (st == NULL || dest_path == NULL || dest_path[0] == '\0')
		return MOAT_ERR_INVAL;
	if (st->be->backup == NULL)
		return MOAT_ERR_UNSUPPORTED;
	return st->be->backup(st, dest_path);
}
