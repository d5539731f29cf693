/*
 * test_store.c - unit tests for moatd's document store (store/store.h) on
 * its SQLite backend: CRUD, ids, revisions and races, unique indexes,
 * listing, transactions, migrations, secure deletion, corrupt rows and
 * concurrency. Every test works on a real database file in a mkdtemp
 * directory and, where it checks what is on disk, reads it with SQLite or
 * as raw bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "json.h"
#include "log.h"
#include "store/schema.h"
#include "store/store.h"

static const struct store_index people_ix[] = {
	{ .field = "name", .unique = true },
	{ .field = "team", .unique = false },
	{ .field = "age", .unique = false },
};
static const struct store_index vault_ix[] = {
	{ .field = "owner", .unique = false },
};
static const struct store_collection colls[] = {
	{ "people", people_ix, 3, false },
	{ "vault", vault_ix, 1, true },
	{ "plain", NULL, 0, false },
};
#define NCOLLS (sizeof(colls) / sizeof(colls[0]))

struct fixture {
	char dir[64];
	char path[128];		/* dir/t.db */
	char uri[160];		/* "sqlite:" path */
	struct store *st;
};

static int
rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/t.db", f->dir);
	snprintf(f->uri, sizeof(f->uri), "sqlite:%s", f->path);
	assert_int_equal(store_open(&f->st, f->uri, colls, NCOLLS), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	store_close(f->st);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static json_t *
J(const char *text)
{
	json_error_t err;
	json_t *v = json_loads(text, 0, &err);

	assert_non_null(v);
	return v;
}

static json_t *
insert(struct store *st, const char *coll, const char *text)
{
	json_t *doc = J(text);

	assert_int_equal(store_insert(st, coll, doc), 0);
	return doc;
}

static size_t
count(struct store *st, const char *coll)
{
	json_t *arr = NULL;
	size_t n;

	assert_int_equal(store_list(st, coll, NULL, NULL, NULL, 0, &arr), 0);
	n = json_array_size(arr);
	json_decref(arr);
	return n;
}

static bool
is_rfc3339_ms(const char *s)
{
	/* 2024-01-02T03:04:05.678Z */
	static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";

	if (s == NULL || strlen(s) != sizeof(pat) - 1)
		return false;
	for (size_t i = 0; pat[i] != '\0'; i++)
		if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
			return false;
	return true;
}

/* Raw SQL on the database file, as a second process would. */
static void
raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("raw sql failed: %s", err);
	sqlite3_close(db);
}

static long long
raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	long long v = -1;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

/* ---- CRUD and ids ---- */

static void
test_crud(void **state)
{
	struct fixture *f = *state;
	json_t *doc, *got = NULL, *upd;
	const char *id;
	char idcopy[64];

	doc = insert(f->st, "people", "{\"name\":\"ann\",\"team\":\"a\","
	    "\"age\":30,\"tags\":[1,2]}");
	id = json_get_str(doc, "id");
	assert_non_null(id);
	assert_int_equal(strlen(id), 32);
	assert_int_equal(strspn(id, "0123456789abcdef"), 32);
	snprintf(idcopy, sizeof(idcopy), "%s", id);
	assert_int_equal(json_get_int(doc, "rev", 0), 1);
	assert_true(is_rfc3339_ms(json_get_str(doc, "created_at")));
	assert_string_equal(json_get_str(doc, "created_at"),
	    json_get_str(doc, "updated_at"));

	assert_int_equal(store_get(f->st, "people", idcopy, &got), 0);
	assert_true(json_equal(got, doc));
	json_decref(got);
	got = NULL;

	assert_int_equal(store_find_one(f->st, "people", "name", "ann", &got), 0);
	assert_string_equal(json_get_str(got, "id"), idcopy);
	/* Integer index values are found by their decimal text. */
	json_decref(got);
	got = NULL;
	assert_int_equal(store_find_one(f->st, "people", "age", "30", &got), 0);
	json_decref(got);
	got = NULL;

	upd = json_deep_copy(doc);
	json_object_set_new(upd, "name", json_string("anna"));
	json_object_set_new(upd, "created_at", json_string("forged"));
	usleep(2000);
	assert_int_equal(store_update(f->st, "people", upd), 0);
	assert_int_equal(json_get_int(upd, "rev", 0), 2);
	assert_string_equal(json_get_str(upd, "created_at"),
	    json_get_str(doc, "created_at"));
	assert_string_not_equal(json_get_str(upd, "updated_at"),
	    json_get_str(doc, "updated_at"));
	assert_int_equal(store_find_one(f->st, "people", "name", "ann", &got),
	    MOAT_ERR_NOTFOUND);
	assert_null(got);
	assert_int_equal(store_find_one(f->st, "people", "name", "anna", &got), 0);
	assert_true(json_equal(got, upd));
	json_decref(got);
	got = NULL;

	assert_int_equal(store_delete(f->st, "people", idcopy, 2), 0);
	assert_int_equal(store_get(f->st, "people", idcopy, &got),
	    MOAT_ERR_NOTFOUND);
	assert_int_equal(store_delete(f->st, "people", idcopy, -1),
	    MOAT_ERR_NOTFOUND);
	assert_int_equal(store_find_one(f->st, "people", "name", "anna", &got),
	    MOAT_ERR_NOTFOUND);
	/* The index rows went with the document. */
	assert_int_equal(raw_int(f->path, "SELECT count(*) FROM idx"), 0);

	/* Unknown collection, bad arguments. */
	assert_int_equal(store_get(f->st, "nope", idcopy, &got), MOAT_ERR_INVAL);
	assert_int_equal(store_insert(f->st, "nope", doc), MOAT_ERR_INVAL);
	assert_int_equal(store_get(NULL, "people", idcopy, &got), MOAT_ERR_INVAL);
	json_decref(upd);
	json_decref(doc);
	upd = J("[1]");
	assert_int_equal(store_insert(f->st, "people", upd), MOAT_ERR_INVAL);
	json_decref(upd);
	assert_int_equal(store_schema_version(f->st), 2);
}

static void
test_ids(void **state)
{
	struct fixture *f = *state;
	static const char *const bad[] = { "", "a/b", "a b", "tab\there",
	    "nl\n", "\x7f", "caf\xc3\xa9" };
	char longid[200], gen1[STORE_ID_GEN_LEN], gen2[STORE_ID_GEN_LEN];
	json_t *doc, *got = NULL;

	doc = insert(f->st, "plain", "{\"id\":\"user-1.x_Y~\",\"v\":1}");
	assert_string_equal(json_get_str(doc, "id"), "user-1.x_Y~");
	json_decref(doc);
	/* Same id again: refused, nothing changed. */
	doc = J("{\"id\":\"user-1.x_Y~\",\"v\":2}");
	assert_int_equal(store_insert(f->st, "plain", doc), MOAT_ERR_EXISTS);
	assert_null(json_object_get(doc, "rev"));
	json_decref(doc);
	assert_int_equal(store_get(f->st, "plain", "user-1.x_Y~", &got), 0);
	assert_int_equal(json_get_int(got, "v", 0), 1);
	json_decref(got);

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		doc = json_pack("{ss}", "id", bad[i]);
		assert_int_equal(store_insert(f->st, "plain", doc),
		    MOAT_ERR_INVAL);
		json_decref(doc);
		assert_false(store_valid_id(bad[i]));
	}
	doc = J("{\"id\":42}");
	assert_int_equal(store_insert(f->st, "plain", doc), MOAT_ERR_INVAL);
	json_decref(doc);

	memset(longid, 'x', sizeof(longid));
	longid[128] = '\0';
	assert_true(store_valid_id(longid));
	doc = json_pack("{ss}", "id", longid);
	assert_int_equal(store_insert(f->st, "plain", doc), 0);
	json_decref(doc);
	longid[128] = 'x';
	longid[129] = '\0';
	assert_false(store_valid_id(longid));
	doc = json_pack("{ss}", "id", longid);
	assert_int_equal(store_insert(f->st, "plain", doc), MOAT_ERR_INVAL);
	json_decref(doc);
	assert_int_equal(store_get(f->st, "plain", longid, &got),
	    MOAT_ERR_NOTFOUND);

	assert_int_equal(store_new_id(gen1, sizeof(gen1)), 0);
	assert_int_equal(store_new_id(gen2, sizeof(gen2)), 0);
	assert_int_equal(strlen(gen1), 32);
	assert_string_not_equal(gen1, gen2);
	assert_int_equal(store_new_id(gen1, 32), MOAT_ERR_INVAL);
	assert_int_equal(count(f->st, "plain"), 2);
}

/* ---- revisions ---- */

static void
test_stale_revision(void **state)
{
	struct fixture *f = *state;
	json_t *doc, *v2, *stale, *got = NULL;
	const char *id;

	doc = insert(f->st, "people", "{\"name\":\"bo\",\"team\":\"t\"}");
	id = json_get_str(doc, "id");
	v2 = json_deep_copy(doc);
	json_object_set_new(v2, "team", json_string("u"));
	assert_int_equal(store_update(f->st, "people", v2), 0);

	stale = json_deep_copy(doc);		/* rev 1 */
	json_object_set_new(stale, "team", json_string("w"));
	json_object_set_new(stale, "name", json_string("bob"));
	assert_int_equal(store_update(f->st, "people", stale),
	    MOAT_ERR_CONFLICT);
	assert_int_equal(json_get_int(stale, "rev", 0), 1);
	assert_int_equal(store_delete(f->st, "people", id, 1),
	    MOAT_ERR_CONFLICT);
	assert_int_equal(store_delete(f->st, "people", id, 3),
	    MOAT_ERR_CONFLICT);

	/* Nothing changed: content, revision and indexes are version 2. */
	assert_int_equal(store_get(f->st, "people", id, &got), 0);
	assert_true(json_equal(got, v2));
	json_decref(got);
	got = NULL;
	assert_int_equal(store_find_one(f->st, "people", "name", "bob", &got),
	    MOAT_ERR_NOTFOUND);
	assert_int_equal(store_find_one(f->st, "people", "team", "u", &got), 0);
	json_decref(got);
	got = NULL;

	/* Bad update shapes. */
	json_object_del(stale, "rev");
	assert_int_equal(store_update(f->st, "people", stale), MOAT_ERR_INVAL);
	json_object_set_new(stale, "rev", json_string("2"));
	assert_int_equal(store_update(f->st, "people", stale), MOAT_ERR_INVAL);
	json_object_set_new(stale, "rev", json_integer(1));
	json_object_set_new(stale, "id", json_string("missing"));
	assert_int_equal(store_update(f->st, "people", stale),
	    MOAT_ERR_NOTFOUND);
	assert_int_equal(store_delete(f->st, "people", id, 0), MOAT_ERR_INVAL);

	assert_int_equal(store_delete(f->st, "people", id, -1), 0);
	json_decref(stale);
	json_decref(v2);
	json_decref(doc);
}

struct racer {
	struct store *st;
	json_t *doc;
	pthread_barrier_t *bar;
	int r;
};

static void *
race_update(void *arg)
{
	struct racer *rc = arg;

	pthread_barrier_wait(rc->bar);
	rc->r = store_update(rc->st, "people", rc->doc);
	return NULL;
}

static void
test_update_race(void **state)
{
	struct fixture *f = *state;
	struct store *other = NULL;
	pthread_barrier_t bar;

	/* A second handle on the same file stands in for a second moatd
	 * process sharing the store. */
	assert_int_equal(store_open(&other, f->uri, colls, NCOLLS), 0);
	for (int round = 0; round < 20; round++) {
		struct racer rc[2];
		pthread_t th[2];
		json_t *doc, *got = NULL;
		int wins = 0, conflicts = 0;
		char name[32];

		snprintf(name, sizeof(name), "racer%d", round);
		doc = json_pack("{ss}", "name", name);
		assert_int_equal(store_insert(f->st, "people", doc), 0);
		pthread_barrier_init(&bar, NULL, 2);
		for (int i = 0; i < 2; i++) {
			rc[i].st = i == 1 && round % 2 == 1 ? other : f->st;
			rc[i].doc = json_deep_copy(doc);
			json_object_set_new(rc[i].doc, "team",
			    json_integer(i));
			rc[i].bar = &bar;
			pthread_create(&th[i], NULL, race_update, &rc[i]);
		}
		for (int i = 0; i < 2; i++) {
			pthread_join(th[i], NULL);
			if (rc[i].r == 0)
				wins++;
			else if (rc[i].r == MOAT_ERR_CONFLICT)
				conflicts++;
		}
		assert_int_equal(wins, 1);
		assert_int_equal(conflicts, 1);
		assert_int_equal(store_get(f->st, "people",
		    json_get_str(doc, "id"), &got), 0);
		assert_int_equal(json_get_int(got, "rev", 0), 2);
		/* The stored content is the winner's. */
		for (int i = 0; i < 2; i++)
			if (rc[i].r == 0)
				assert_true(json_equal(got, rc[i].doc));
		json_decref(got);
		for (int i = 0; i < 2; i++)
			json_decref(rc[i].doc);
		json_decref(doc);
		pthread_barrier_destroy(&bar);
	}
	store_close(other);
}

/* ---- indexes and listing ---- */

static void
test_unique_index(void **state)
{
	struct fixture *f = *state;
	json_t *a, *b, *dup, *got = NULL;

	a = insert(f->st, "people", "{\"name\":\"cy\",\"team\":\"x\"}");
	b = insert(f->st, "people", "{\"name\":\"di\",\"team\":\"x\"}");
	dup = J("{\"name\":\"cy\",\"team\":\"y\"}");
	assert_int_equal(store_insert(f->st, "people", dup), MOAT_ERR_EXISTS);
	assert_null(json_object_get(dup, "id"));
	assert_int_equal(count(f->st, "people"), 2);
	assert_int_equal(raw_int(f->path,
	    "SELECT count(*) FROM idx WHERE value = 'y'"), 0);

	/* An update onto a taken unique value: refused, nothing changed. */
	json_object_set_new(b, "name", json_string("cy"));
	json_object_set_new(b, "team", json_string("z"));
	assert_int_equal(store_update(f->st, "people", b), MOAT_ERR_EXISTS);
	assert_int_equal(json_get_int(b, "rev", 0), 1);
	assert_int_equal(store_find_one(f->st, "people", "name", "di", &got), 0);
	assert_int_equal(json_get_int(got, "rev", 0), 1);
	assert_string_equal(json_get_str(got, "team"), "x");
	json_decref(got);
	got = NULL;
	assert_int_equal(store_find_one(f->st, "people", "team", "z", &got),
	    MOAT_ERR_NOTFOUND);

	/* A freed unique value can be taken again. */
	assert_int_equal(store_delete(f->st, "people", json_get_str(a, "id"), 1),
	    0);
	assert_int_equal(store_insert(f->st, "people", dup), 0);

	/* An index field of a type an index cannot hold. */
	json_decref(dup);
	dup = J("{\"name\":true}");
	assert_int_equal(store_insert(f->st, "people", dup), MOAT_ERR_INVAL);
	json_decref(dup);
	dup = J("{\"name\":\"ok\",\"age\":1.5}");
	assert_int_equal(store_insert(f->st, "people", dup), MOAT_ERR_INVAL);
	json_decref(dup);
	/* Absent and null index fields are simply not indexed. */
	dup = json_pack("{ss#}", "name", "a\0b", (size_t)3);
	assert_int_equal(store_insert(f->st, "people", dup), MOAT_ERR_INVAL);
	json_decref(dup);
	dup = J("{\"team\":null}");
	assert_int_equal(store_insert(f->st, "people", dup), 0);
	json_decref(dup);
	dup = J("{}");
	assert_int_equal(store_insert(f->st, "people", dup), 0);
	json_decref(dup);
	json_decref(a);
	json_decref(b);
}

static void
expect_ids(json_t *arr, const char *const *ids, size_t n)
{
	assert_int_equal(json_array_size(arr), n);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(json_get_str(json_array_get(arr, i), "id"),
		    ids[i]);
}

static void
test_list(void **state)
{
	struct fixture *f = *state;
	json_t *arr = NULL, *doc;
	char id[8], name[8];

	/* Insert out of order: listing is by id. */
	for (int k = 0; k < 10; k++) {
		int i = (k * 7) % 10;

		snprintf(id, sizeof(id), "d%02d", i);
		snprintf(name, sizeof(name), "n%d", i);
		doc = json_pack("{sssssssi}", "id", id, "name", name, "team",
		    i % 2 == 0 ? "a" : "b", "age", 20 + i % 3);
		assert_int_equal(store_insert(f->st, "people", doc), 0);
		json_decref(doc);
	}
	assert_int_equal(store_list(f->st, "people", NULL, NULL, NULL, 0,
	    &arr), 0);
	assert_int_equal(json_array_size(arr), 10);
	for (size_t i = 1; i < 10; i++)
		assert_true(strcmp(json_get_str(json_array_get(arr, i - 1), "id"),
		    json_get_str(json_array_get(arr, i), "id")) < 0);
	json_decref(arr);

	assert_int_equal(store_list(f->st, "people", NULL, NULL, NULL, 3, &arr), 0);
	expect_ids(arr, (const char *[]){ "d00", "d01", "d02" }, 3);
	json_decref(arr);
	assert_int_equal(store_list(f->st, "people", NULL, NULL, "d02", 3,
	    &arr), 0);
	expect_ids(arr, (const char *[]){ "d03", "d04", "d05" }, 3);
	json_decref(arr);
	assert_int_equal(store_list(f->st, "people", NULL, NULL, "d08", 3,
	    &arr), 0);
	expect_ids(arr, (const char *[]){ "d09" }, 1);
	json_decref(arr);
	assert_int_equal(store_list(f->st, "people", NULL, NULL, "d09", 0,
	    &arr), 0);
	expect_ids(arr, NULL, 0);
	json_decref(arr);

	assert_int_equal(store_list(f->st, "people", "team", "a", NULL, 0,
	    &arr), 0);
	expect_ids(arr, (const char *[]){ "d00", "d02", "d04", "d06", "d08" },
	    5);
	json_decref(arr);
	assert_int_equal(store_list(f->st, "people", "team", "a", "d04", 2,
	    &arr), 0);
	expect_ids(arr, (const char *[]){ "d06", "d08" }, 2);
	json_decref(arr);
	assert_int_equal(store_list(f->st, "people", "age", "21", NULL, 0,
	    &arr), 0);
	expect_ids(arr, (const char *[]){ "d01", "d04", "d07" }, 3);
	json_decref(arr);
	assert_int_equal(store_list(f->st, "people", "team", "none", NULL, 0,
	    &arr), 0);
	expect_ids(arr, NULL, 0);
	json_decref(arr);
	assert_int_equal(store_list(f->st, "people", "id", "d03", NULL, 0,
	    &arr), 0);
	expect_ids(arr, (const char *[]){ "d03" }, 1);
	json_decref(arr);
	arr = NULL;

	/* A field without a value, and other collections stay apart. */
	assert_int_equal(store_list(f->st, "people", "team", NULL, NULL, 0,
	    &arr), MOAT_ERR_INVAL);
	assert_null(arr);
	assert_int_equal(count(f->st, "plain"), 0);
}

static void
test_undeclared_field(void **state)
{
	struct fixture *f = *state;
	json_t *doc, *out = NULL;

	doc = insert(f->st, "people", "{\"name\":\"ed\",\"email\":\"e@x\"}");
	assert_int_equal(store_find_one(f->st, "people", "email", "e@x", &out),
	    MOAT_ERR_INVAL);
	assert_null(out);
	assert_int_equal(store_list(f->st, "people", "email", "e@x", NULL, 0,
	    &out), MOAT_ERR_INVAL);
	assert_int_equal(store_find_one(f->st, "plain", "name", "ed", &out),
	    MOAT_ERR_INVAL);
	/* owner is declared on vault, not on people. */
	assert_int_equal(store_find_one(f->st, "people", "owner", "ed", &out),
	    MOAT_ERR_INVAL);
	assert_int_equal(store_find_one(f->st, "people", "id",
	    json_get_str(doc, "id"), &out), 0);
	json_decref(out);
	json_decref(doc);
}

/* ---- transactions ---- */

struct txn_arg {
	int fail_at;		/* 0: succeed */
	int inner_fail;		/* nested: the inner call fails */
	int inner_r;
	int seen_own_write;
	int other_thread_r;
};

static void *
peek_thread(void *arg)
{
	void **a = arg;
	json_t *got = NULL;

	*(int *)a[1] = store_get(a[0], "plain", "t1", &got);
	json_decref(got);
	return NULL;
}

static int
txn_inner(struct store *st, void *arg)
{
	struct txn_arg *ta = arg;
	json_t *doc = J("{\"id\":\"t2\"}");
	int r = store_insert(st, "plain", doc);

	json_decref(doc);
	if (r != 0)
		return r;
	return ta->inner_fail ? MOAT_ERR_PERM : 0;
}

static int
txn_outer(struct store *st, void *arg)
{
	struct txn_arg *ta = arg;
	json_t *doc = J("{\"id\":\"t1\",\"name\":\"tx\"}"), *got = NULL;
	pthread_t th;
	void *targ[2] = { st, &ta->other_thread_r };
	int r;

	r = store_insert(st, "people", doc);
	json_object_set_new(doc, "rev", json_integer(1));
	if (r == 0)
		r = store_insert(st, "plain", doc);
	json_decref(doc);
	if (r != 0)
		return r;
	/* Own writes are visible inside; another thread sees none yet. */
	ta->seen_own_write = store_get(st, "plain", "t1", &got) == 0;
	json_decref(got);
	pthread_create(&th, NULL, peek_thread, targ);
	pthread_join(th, NULL);
	if (ta->fail_at == 1)
		return MOAT_ERR_INVAL;
	ta->inner_r = store_transaction(st, txn_inner, ta);
	doc = J("{\"id\":\"t3\"}");
	r = store_insert(st, "plain", doc);
	json_decref(doc);
	if (r != 0)
		return r;
	if (ta->fail_at == 2) {
		/* A failing write (unique conflict) the fn passes up. */
		doc = J("{\"name\":\"tx\"}");
		r = store_insert(st, "people", doc);
		json_decref(doc);
		return r;
	}
	return 0;
}

/* A write that fails inside a transaction whose fn carries on: the
 * failed write leaves none of its rows (document or index entries). */
static int
txn_swallow(struct store *st, void *arg)
{
	json_t *doc = J("{\"id\":\"half\",\"name\":\"taken\",\"team\":\"q\"}");

	*(int *)arg = store_insert(st, "people", doc);
	json_decref(doc);
	doc = J("{\"id\":\"after\"}");
	if (store_insert(st, "plain", doc) != 0)
		*(int *)arg = 1;
	json_decref(doc);
	return 0;
}

static void
test_transaction(void **state)
{
	struct fixture *f = *state;
	struct txn_arg ta;
	json_t *got = NULL;

	/* Failing fn: nothing stays, its result comes back. */
	memset(&ta, 0, sizeof(ta));
	ta.fail_at = 1;
	assert_int_equal(store_transaction(f->st, txn_outer, &ta),
	    MOAT_ERR_INVAL);
	assert_true(ta.seen_own_write);
	assert_int_equal(ta.other_thread_r, MOAT_ERR_NOTFOUND);
	assert_int_equal(count(f->st, "plain"), 0);
	assert_int_equal(count(f->st, "people"), 0);

	/* A failing write late in the fn rolls back the earlier ones and the
	 * nested transaction's too. */
	memset(&ta, 0, sizeof(ta));
	ta.fail_at = 2;
	assert_int_equal(store_transaction(f->st, txn_outer, &ta),
	    MOAT_ERR_EXISTS);
	assert_int_equal(ta.inner_r, 0);
	assert_int_equal(count(f->st, "plain"), 0);
	assert_int_equal(count(f->st, "people"), 0);

	/* A failing nested transaction is undone alone; the outer one
	 * commits the rest. */
	memset(&ta, 0, sizeof(ta));
	ta.inner_fail = 1;
	assert_int_equal(store_transaction(f->st, txn_outer, &ta), 0);
	assert_int_equal(ta.inner_r, MOAT_ERR_PERM);
	assert_int_equal(store_get(f->st, "plain", "t1", &got), 0);
	json_decref(got);
	assert_int_equal(store_get(f->st, "plain", "t2", &got),
	    MOAT_ERR_NOTFOUND);
	assert_int_equal(store_get(f->st, "plain", "t3", &got), 0);
	json_decref(got);
	assert_int_equal(count(f->st, "people"), 1);

	/* Everything commits together. */
	assert_int_equal(store_delete(f->st, "plain", "t1", -1), 0);
	assert_int_equal(store_delete(f->st, "plain", "t3", -1), 0);
	assert_int_equal(store_delete(f->st, "people", "t1", -1), 0);
	memset(&ta, 0, sizeof(ta));
	assert_int_equal(store_transaction(f->st, txn_outer, &ta), 0);
	assert_int_equal(ta.inner_r, 0);
	assert_int_equal(count(f->st, "plain"), 3);
	assert_int_equal(count(f->st, "people"), 1);
	assert_int_equal(store_transaction(f->st, NULL, NULL), MOAT_ERR_INVAL);

	{
		json_t *doc = insert(f->st, "people", "{\"name\":\"taken\"}");
		int r = 0;

		json_decref(doc);
		assert_int_equal(store_transaction(f->st, txn_swallow, &r), 0);
		assert_int_equal(r, MOAT_ERR_EXISTS);
		assert_int_equal(store_get(f->st, "people", "half", &got),
		    MOAT_ERR_NOTFOUND);
		assert_int_equal(raw_int(f->path, "SELECT count(*) FROM idx "
		    "WHERE id = 'half'"), 0);
		assert_int_equal(store_get(f->st, "plain", "after", &got), 0);
		json_decref(got);
	}
}

/* ---- migrations ---- */

static const char v1_schema[] =
	"CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value NOT NULL);"
	"INSERT INTO meta VALUES ('schema_version', 1);"
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
	"CREATE INDEX idx_lookup ON idx (coll, field, value, id);"
	"INSERT INTO docs VALUES ('people', 'old1', 4,"
	"  '{\"name\":\"olga\",\"team\":\"v1\"}',"
	"  '2020-01-01T00:00:00.000Z', '2021-01-01T00:00:00.000Z');";

static void
test_migration_from_v1(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	json_t *got = NULL;
	char path[160], uri[200];

	snprintf(path, sizeof(path), "%s/v1.db", f->dir);
	snprintf(uri, sizeof(uri), "sqlite:%s", path);
	raw_exec(path, v1_schema);
	assert_int_equal(raw_int(path, "SELECT count(*) FROM sqlite_master "
	    "WHERE name = 'idx_decl'"), 0);

	assert_int_equal(store_open(&st, uri, colls, NCOLLS), 0);
	assert_int_equal(store_schema_version(st), 2);
	/* The old document is intact and now reachable by its indexes. */
	assert_int_equal(store_get(st, "people", "old1", &got), 0);
	assert_int_equal(json_get_int(got, "rev", 0), 4);
	assert_string_equal(json_get_str(got, "created_at"),
	    "2020-01-01T00:00:00.000Z");
	json_decref(got);
	assert_int_equal(store_find_one(st, "people", "name", "olga", &got), 0);
	json_decref(got);
	assert_int_equal(store_find_one(st, "people", "team", "v1", &got), 0);
	json_decref(got);
	store_close(st);
	assert_int_equal(raw_int(path, "SELECT value FROM meta WHERE key = "
	    "'schema_version'"), 2);
	assert_int_equal(raw_int(path, "SELECT count(*) FROM idx_decl"), 4);

	/* Reopening migrates nothing and keeps the data. */
	assert_int_equal(store_open(&st, uri, colls, NCOLLS), 0);
	assert_int_equal(store_find_one(st, "people", "name", "olga", &got), 0);
	json_decref(got);
	store_close(st);
}

static void
test_migration_from_v0(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	json_t *doc;
	char path[160], uri[200];

	/* A database holding only an empty meta table: version 0. */
	snprintf(path, sizeof(path), "%s/v0.db", f->dir);
	snprintf(uri, sizeof(uri), "sqlite:%s", path);
	raw_exec(path, "CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL,"
	    " value NOT NULL);");
	assert_int_equal(store_open(&st, uri, colls, NCOLLS), 0);
	assert_int_equal(store_schema_version(st), 2);
	doc = insert(st, "people", "{\"name\":\"new\"}");
	json_decref(doc);
	store_close(st);
	assert_int_equal(raw_int(path, "SELECT count(*) FROM docs"), 1);
}

static void
test_newer_version_refused(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	char logpath[160], buf[4096];
	ssize_t n;
	int fd;

	store_close(f->st);
	f->st = NULL;
	raw_exec(f->path, "UPDATE meta SET value = 3 WHERE key = "
	    "'schema_version'");
	snprintf(logpath, sizeof(logpath), "%s/log", f->dir);
	fd = open(logpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	log_set_fd(fd);
	assert_int_equal(store_open(&st, f->uri, colls, NCOLLS),
	    MOAT_ERR_UNSUPPORTED);
	log_set_fd(2);
	assert_null(st);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_non_null(strstr(buf, "database schema version 3 is newer than "
	    "this moatd (2): downgrade refused"));
	/* Nothing was changed by the refused open. */
	assert_int_equal(raw_int(f->path, "SELECT value FROM meta WHERE key = "
	    "'schema_version'"), 3);
}

static void
test_index_declarations_change(void **state)
{
	struct fixture *f = *state;
	static const struct store_index more_ix[] = {
		{ .field = "color", .unique = false },
		{ .field = "serial", .unique = true },
	};
	const struct store_collection more[] = {
		colls[0], colls[1], { "plain", more_ix, 2, false },
	};
	struct store *st = NULL;
	json_t *doc, *got = NULL;

	doc = insert(f->st, "plain", "{\"color\":\"red\",\"serial\":7}");
	json_decref(doc);
	doc = insert(f->st, "plain", "{\"color\":true,\"serial\":8}");
	json_decref(doc);
	store_close(f->st);
	f->st = NULL;

	/* plain now declares indexes: its documents are indexed at open
	 * (a value of a type no index holds is left out). */
	assert_int_equal(store_open(&st, f->uri, more, 3), 0);
	assert_int_equal(store_find_one(st, "plain", "color", "red", &got), 0);
	json_decref(got);
	assert_int_equal(store_find_one(st, "plain", "serial", "8", &got), 0);
	json_decref(got);
	doc = J("{\"serial\":7}");
	assert_int_equal(store_insert(st, "plain", doc), MOAT_ERR_EXISTS);
	json_decref(doc);
	/* Two people share a team (a non-unique index). */
	doc = insert(st, "people", "{\"name\":\"p1\",\"team\":\"same\"}");
	json_decref(doc);
	doc = insert(st, "people", "{\"name\":\"p2\",\"team\":\"same\"}");
	json_decref(doc);
	store_close(st);

	/* Making team unique while two documents share it is refused. */
	{
		static const struct store_index uteam[] = {
			{ .field = "name", .unique = true },
			{ .field = "team", .unique = true },
		};
		const struct store_collection bad[] = {
			{ "people", uteam, 2, false },
		};

		assert_int_equal(store_open(&st, f->uri, bad, 1),
		    MOAT_ERR_EXISTS);
		assert_null(st);
	}
	/* And the database is untouched by that refusal. */
	assert_int_equal(store_open(&f->st, f->uri, more, 3), 0);
	assert_int_equal(store_find_one(f->st, "people", "team", "same", &got),
	    0);
	json_decref(got);
}

/* ---- secure deletion ---- */

static bool
file_contains(const char *path, const char *needle)
{
	size_t nl = strlen(needle), len = 0, cap = 0;
	char *data = NULL;
	bool found = false;
	FILE *fp = fopen(path, "rb");

	if (fp == NULL)
		return false;	/* a WAL that is gone holds nothing */
	for (;;) {
		size_t n;

		if (len == cap) {
			cap = cap ? cap * 2 : 65536;
			data = realloc(data, cap);
			assert_non_null(data);
		}
		n = fread(data + len, 1, cap - len, fp);
		if (n == 0)
			break;
		len += n;
	}
	fclose(fp);
	for (size_t i = 0; i + nl <= len && !found; i++)
		found = memcmp(data + i, needle, nl) == 0;
	free(data);
	return found;
}

static bool
on_disk(const struct fixture *f, const char *needle)
{
	char wal[160];

	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	return file_contains(f->path, needle) || file_contains(wal, needle);
}

static int
txn_delete_tx(struct store *st, void *arg)
{
	json_t *doc = J("{\"n\":1}");
	int r;

	(void)arg;
	r = store_delete(st, "vault", "tx", 1);
	if (r == 0)
		r = store_insert(st, "plain", doc);
	json_decref(doc);
	return r;
}

static void
test_secure_delete(void **state)
{
	struct fixture *f = *state;
	const char *m1 = "MARKER-deleted-5f2a9c1e", *m2 = "MARKER-replaced-77c0d4";
	const char *m3 = "MARKER-plain-0a1b2c", *m4 = "MARKER-txn-9e8d7c";
	json_t *doc;
	char wal[160];

	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	/* Some bulk so the marker shares pages with other rows. */
	for (int i = 0; i < 20; i++) {
		doc = json_pack("{sssss{ss}}", "owner", "u", "note", "filler",
		    "sealed", "v", "v1.k1.AAAA.BBBB.CCCC.DDDD");
		assert_int_equal(store_insert(f->st, "vault", doc), 0);
		json_decref(doc);
	}

	doc = json_pack("{sss{ss}}", "owner", "u", "sealed", "v", m1);
	assert_int_equal(store_insert(f->st, "vault", doc), 0);
	/* The sensitive write was checkpointed: the marker is in the main
	 * file now (so the test can see it), and the WAL is empty. */
	assert_true(file_contains(f->path, m1));
	assert_false(file_contains(wal, m1));
	assert_int_equal(store_delete(f->st, "vault", json_get_str(doc, "id"),
	    1), 0);
	json_decref(doc);
	assert_false(on_disk(f, m1));

	/* Replacing a value leaves no copy either. */
	doc = json_pack("{sss{ss}}", "owner", "u", "sealed", "v", m2);
	assert_int_equal(store_insert(f->st, "vault", doc), 0);
	assert_true(on_disk(f, m2));
	json_object_set_new(doc, "sealed", json_pack("{ss}", "v", "other"));
	assert_int_equal(store_update(f->st, "vault", doc), 0);
	json_decref(doc);
	assert_false(on_disk(f, m2));

	/* Inside a transaction the purge follows the commit. */
	doc = json_pack("{sssss{ss}}", "id", "tx", "owner", "u", "sealed", "v",
	    m4);
	assert_int_equal(store_insert(f->st, "vault", doc), 0);
	json_decref(doc);
	assert_true(file_contains(f->path, m4));
	assert_int_equal(store_transaction(f->st, txn_delete_tx, NULL), 0);
	assert_false(on_disk(f, m4));

	/* Not sensitive: no checkpoint; the old page image may stay in the
	 * WAL until SQLite's own checkpoint. Shown, not asserted. */
	doc = json_pack("{ss}", "secretish", m3);
	assert_int_equal(store_insert(f->st, "plain", doc), 0);
	assert_int_equal(store_delete(f->st, "plain", json_get_str(doc, "id"),
	    -1), 0);
	json_decref(doc);
	print_message("    non-sensitive delete: marker %s in the WAL\n",
	    file_contains(wal, m3) ? "still" : "not");

	store_close(f->st);
	f->st = NULL;
	assert_false(on_disk(f, m1));
	assert_false(on_disk(f, m2));
	assert_false(on_disk(f, m4));
}

static void
test_file_modes(void **state)
{
	struct fixture *f = *state;
	struct stat sb;
	char wal[160];
	json_t *doc = insert(f->st, "plain", "{}");

	json_decref(doc);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* An existing database readable by others is tightened at open. */
	store_close(f->st);
	f->st = NULL;
	assert_int_equal(chmod(f->path, 0644), 0);
	assert_int_equal(store_open(&f->st, f->uri, colls, NCOLLS), 0);
	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
}

/* ---- corrupt rows ---- */

static void
test_corrupt_body(void **state)
{
	struct fixture *f = *state;
	static const char *const bodies[] = {
		"UPDATE docs SET body = '{not json' WHERE id = 'c1'",
		"UPDATE docs SET body = '[1,2]' WHERE id = 'c1'",
		"UPDATE docs SET body = '{\"a\":1,\"a\":2}' WHERE id = 'c1'",
		"UPDATE docs SET body = '' WHERE id = 'c1'",
		"UPDATE docs SET body = x'7b00' WHERE id = 'c1'",
		"UPDATE docs SET body = '{}', rev = 'x' WHERE id = 'c1'",
	};
	json_t *doc, *got = NULL;

	doc = insert(f->st, "plain", "{\"id\":\"c0\"}");
	json_decref(doc);
	doc = insert(f->st, "plain", "{\"id\":\"c1\"}");
	json_decref(doc);
	for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
		raw_exec(f->path, bodies[i]);
		assert_int_equal(store_get(f->st, "plain", "c1", &got),
		    MOAT_ERR_CORRUPT);
		assert_null(got);
		assert_int_equal(store_list(f->st, "plain", NULL, NULL, NULL, 0,
		    &got), MOAT_ERR_CORRUPT);
		assert_null(got);
		/* Other documents stay readable. */
		assert_int_equal(store_get(f->st, "plain", "c0", &got), 0);
		json_decref(got);
		got = NULL;
		raw_exec(f->path, "UPDATE docs SET rev = 1 WHERE id = 'c1'");
	}
}

/* ---- concurrency ---- */

#define NTHREADS 8
#define PER_THREAD 40

struct worker {
	struct store *st;
	int n;
	int failures;
};

static void *
insert_worker(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < PER_THREAD; i++) {
		char name[32];
		json_t *doc, *got = NULL;

		snprintf(name, sizeof(name), "w%d-%d", w->n, i);
		doc = json_pack("{sssi}", "name", name, "age", w->n);
		if (store_insert(w->st, "people", doc) != 0 ||
		    store_get(w->st, "people", json_get_str(doc, "id"),
		    &got) != 0 || !json_equal(doc, got))
			w->failures++;
		json_decref(got);
		json_decref(doc);
		if (i % 10 == 0) {
			doc = json_pack("{si}", "n", i);
			if (store_insert(w->st, "vault", doc) != 0)
				w->failures++;
			json_decref(doc);
		}
	}
	return NULL;
}

static void
test_concurrent_inserts(void **state)
{
	struct fixture *f = *state;
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];
	json_t *arr = NULL;

	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct worker){ .st = f->st, .n = i };
		assert_int_equal(pthread_create(&th[i], NULL, insert_worker,
		    &w[i]), 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failures, 0);
	}
	assert_int_equal(count(f->st, "people"), NTHREADS * PER_THREAD);
	assert_int_equal(count(f->st, "vault"), NTHREADS * 4);
	assert_int_equal(store_list(f->st, "people", "age", "3", NULL, 0, &arr),
	    0);
	assert_int_equal(json_array_size(arr), PER_THREAD);
	json_decref(arr);
}

/* ---- online backup ---- */

struct backup_writer {
	struct store *st;
	atomic_int stop;
	atomic_int committed;	/* documents whose insert returned 0 */
	int failures;
};

static void *
backup_writer_fn(void *arg)
{
	struct backup_writer *w = arg;

	while (!atomic_load(&w->stop)) {
		char id[32];
		json_t *doc;

		int n = atomic_load(&w->committed);

		snprintf(id, sizeof(id), "bw%06d", n);
		doc = json_pack("{sssi}", "id", id, "n", n);
		if (store_insert(w->st, "plain", doc) == 0)
			atomic_fetch_add(&w->committed, 1);
		else
			w->failures++;
		json_decref(doc);
	}
	return NULL;
}

static void
test_backup_while_writing(void **state)
{
	struct fixture *f = *state;
	struct backup_writer w = { .st = f->st };
	struct store *copy = NULL;
	pthread_t th;
	char dest[192], uri[224];
	struct stat sb;
	json_t *doc;
	int before, i;

	doc = insert(f->st, "vault", "{\"id\":\"k1\",\"v\":\"x\"}");
	json_decref(doc);
	assert_int_equal(pthread_create(&th, NULL, backup_writer_fn, &w), 0);
	while (atomic_load(&w.committed) < 50)
		usleep(1000);
	/* Every insert that returned before the backup started. */
	before = atomic_load(&w.committed);
	snprintf(dest, sizeof(dest), "%s/copy.db", f->dir);
	assert_int_equal(store_backup(f->st, dest), 0);
	usleep(20000);
	atomic_store(&w.stop, 1);
	pthread_join(th, NULL);
	assert_int_equal(w.failures, 0);
	assert_true(atomic_load(&w.committed) > before);

	assert_int_equal(stat(dest, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* An existing destination is refused and left alone. */
	assert_int_equal(store_backup(f->st, dest), MOAT_ERR_EXISTS);

	snprintf(uri, sizeof(uri), "sqlite:%s", dest);
	assert_int_equal(store_open(&copy, uri, colls, NCOLLS), 0);
	assert_int_equal(store_schema_version(copy),
	    store_schema_version(f->st));
	/* A snapshot: a prefix of the writer's sequence, at least every
	 * document committed before the call, and ids contiguous. */
	size_t n = count(copy, "plain");
	assert_true(n >= (size_t)before);
	assert_true(n <= (size_t)atomic_load(&w.committed));
	for (i = 0; i < (int)n; i++) {
		char id[32];
		json_t *got = NULL;

		snprintf(id, sizeof(id), "bw%06d", i);
		assert_int_equal(store_get(copy, "plain", id, &got), 0);
		assert_int_equal(json_integer_value(json_object_get(got, "n")),
		    i);
		json_decref(got);
	}
	assert_int_equal(count(copy, "vault"), 1);
	/* The copy is a working store: writable, indexes intact. */
	doc = insert(copy, "people", "{\"name\":\"after\",\"age\":1}");
	json_decref(doc);
	store_close(copy);
}

/* ---- opening ---- */

static void
test_open_errors(void **state)
{
	struct fixture *f = *state;
	static const struct store_collection badname[] = {
		{ "Users", NULL, 0, false },
	};
	static const struct store_collection dash[] = {
		{ "a-b", NULL, 0, false },
	};
	static const struct store_collection dup[] = {
		{ "a", NULL, 0, false }, { "a", NULL, 0, false },
	};
	static const struct store_index rev_ix[] = { { "rev", false } };
	static const struct store_collection revix[] = {
		{ "a", rev_ix, 1, false },
	};
	struct store *st = (struct store *)&st;
	char uri[200];

	assert_int_equal(store_open(&st, "mongodb://u:p@h/db", colls, NCOLLS),
	    MOAT_ERR_UNSUPPORTED);
	assert_null(st);
	assert_int_equal(store_open(&st, "bogus:x", colls, NCOLLS),
	    MOAT_ERR_INVAL);
	assert_int_equal(store_open(&st, "sqlite:", colls, NCOLLS),
	    MOAT_ERR_INVAL);
	assert_int_equal(store_open(&st, "sqlite::memory:", colls, NCOLLS),
	    MOAT_ERR_INVAL);
	assert_int_equal(store_open(&st, NULL, colls, NCOLLS), MOAT_ERR_INVAL);
	snprintf(uri, sizeof(uri), "sqlite:%s/other.db", f->dir);
	assert_int_equal(store_open(&st, uri, badname, 1), MOAT_ERR_INVAL);
	assert_int_equal(store_open(&st, uri, dash, 1), MOAT_ERR_INVAL);
	assert_int_equal(store_open(&st, uri, dup, 2), MOAT_ERR_INVAL);
	assert_int_equal(store_open(&st, uri, revix, 1), MOAT_ERR_INVAL);
	snprintf(uri, sizeof(uri), "sqlite:%s/no/such/dir.db", f->dir);
	assert_int_equal(store_open(&st, uri, colls, NCOLLS),
	    MOAT_ERR_NOTFOUND);
	/* Not a database at all. */
	snprintf(uri, sizeof(uri), "%s/junk.db", f->dir);
	{
		FILE *fp = fopen(uri, "w");

		assert_non_null(fp);
		for (int i = 0; i < 512; i++)
			fputs("this is not an sqlite database\n", fp);
		fclose(fp);
	}
	snprintf(uri, sizeof(uri), "sqlite:%s/junk.db", f->dir);
	assert_int_equal(store_open(&st, uri, colls, NCOLLS),
	    MOAT_ERR_CORRUPT);
	assert_null(st);
	store_close(NULL);
}

static void
test_moatd_collections(void **state)
{
	struct fixture *f = *state;
	struct store *st = NULL;
	json_t *doc, *got = NULL;
	char uri[200];
	bool users = false, secrets = false, settings = false;

	for (size_t i = 0; i < moatd_ncollections; i++) {
		const struct store_collection *c = &moatd_collections[i];

		assert_true(strspn(c->name, "abcdefghijklmnopqrstuvwxyz_") ==
		    strlen(c->name));
		if (strcmp(c->name, "users") == 0)
			users = c->sensitive;
		if (strcmp(c->name, "secrets") == 0)
			secrets = c->sensitive;
		if (strcmp(c->name, "settings") == 0)
			settings = !c->sensitive;
	}
	assert_true(users && secrets && settings);

	snprintf(uri, sizeof(uri), "sqlite:%s/moatd.db", f->dir);
	assert_int_equal(store_open(&st, uri, moatd_collections,
	    moatd_ncollections), 0);
	doc = insert(st, COLL_MEMBERSHIPS, "{\"user_id\":\"u1\",\"org\":"
	    "\"default\",\"user_org\":\"u1/default\",\"roles\":[\"owner\"]}");
	json_decref(doc);
	doc = J("{\"user_id\":\"u1\",\"org\":\"default\","
	    "\"user_org\":\"u1/default\",\"roles\":[\"member\"]}");
	assert_int_equal(store_insert(st, COLL_MEMBERSHIPS, doc),
	    MOAT_ERR_EXISTS);
	json_decref(doc);
	doc = insert(st, COLL_USERS, "{\"username\":\"admin\"}");
	json_decref(doc);
	doc = J("{\"username\":\"admin\"}");
	assert_int_equal(store_insert(st, COLL_USERS, doc), MOAT_ERR_EXISTS);
	json_decref(doc);
	doc = insert(st, COLL_SETTINGS, "{\"id\":\"default\",\"x\":1}");
	json_decref(doc);
	assert_int_equal(store_find_one(st, COLL_TOKENS, "hash", "00", &got),
	    MOAT_ERR_NOTFOUND);
	assert_int_equal(store_find_one(st, COLL_SECRETS, "user_name", "u1/x",
	    &got), MOAT_ERR_NOTFOUND);
	assert_int_equal(store_find_one(st, COLL_SSH_KEYS, "fingerprint",
	    "SHA256:x", &got), MOAT_ERR_NOTFOUND);
	assert_int_equal(store_find_one(st, COLL_POLICIES, "name", "default",
	    &got), MOAT_ERR_NOTFOUND);
	assert_int_equal(store_list(st, COLL_SESSIONS, "user_id", "u1", NULL, 0,
	    &got), 0);
	json_decref(got);
	store_close(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_crud, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_revision, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_update_race, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_unique_index, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_list, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undeclared_field, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_transaction, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_migration_from_v1, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_migration_from_v0, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_newer_version_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_index_declarations_change,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_secure_delete, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_file_modes, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_body, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_inserts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_backup_while_writing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_moatd_collections, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
