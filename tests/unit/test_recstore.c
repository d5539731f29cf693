/*
 * test_recstore.c - unit tests for the recordings store
 * (recordings/recstore.c) on a real data directory made by
 * moatd_init_dir() (real keyring, real SQLite store): a round trip with
 * its metadata, chunking at RECSTORE_CHUNK_MAX, the flush timer and a
 * crash (a child process that never calls recstore_end), tampered,
 * swapped, moved and missing chunks, file modes, no plaintext in any
 * file, newest-first ids, and several recordings written at once from
 * threads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "app.h"
#include "asciicast.h"
#include "buf.h"
#include "identity/bootstrap.h"
#include "recordings/recstore.h"
#include "secrets/init.h"
#include "secrets/keys.h"
#include "store/schema.h"
#include "store/store.h"

#define MARK "S3CRET-0utput-marker"
#define HEADER "{\"version\": 2, \"width\": 80, \"height\": 24, " \
    "\"timestamp\": 1767225600, \"env\": {\"TERM\": \"xterm\"}}\n"

struct env {
	char root[64];
	char dir[128];
	struct keys *keys;
	struct store *st;
	struct app app;
	struct recstore *rs;
};

static struct env *E;

static int
rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void __attribute__((format(printf, 3, 4)))
pathf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < outlen);
}

/* Opens keys, store and recstore on E->dir into e. */
static void
env_open(struct env *e)
{
	char sec[256];

	pathf(sec, sizeof(sec), "%s/secrets", e->dir);
	assert_int_equal(keys_open(&e->keys, sec), 0);
	assert_int_equal(identity_store_open_local(e->dir, &e->st), 0);
	memset(&e->app, 0, sizeof(e->app));
	e->app.data_dir = e->dir;
	e->app.store = e->st;
	e->app.keys = e->keys;
	e->app.default_org = "default";
	assert_int_equal(recstore_open(&e->rs, &e->app), 0);
}

static void
env_close(struct env *e)
{
	recstore_free(e->rs);
	store_close(e->st);
	keys_free(e->keys);
	e->rs = NULL;
	e->st = NULL;
	e->keys = NULL;
}

static int
group_setup(void **state)
{
	char err[256] = "";
	struct moatd_init_opts o = { .err = err, .errlen = sizeof(err) };
	struct env *e = calloc(1, sizeof(*e));

	assert_non_null(e);
	pathf(e->root, sizeof(e->root), "/tmp/test_recstore.XXXXXX");
	assert_non_null(mkdtemp(e->root));
	pathf(e->dir, sizeof(e->dir), "%s/data", e->root);
	if (moatd_init_dir(e->dir, &o) != 0)
		fail_msg("moatd_init_dir: %s", err);
	env_open(e);
	E = e;
	*state = e;
	return 0;
}

static int
group_teardown(void **state)
{
	struct env *e = *state;

	env_close(e);
	nftw(e->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(e);
	return 0;
}

static json_t *
meta(const char *user, const char *ws)
{
	json_t *m = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}",
	    "session_id", "sess-1", "user", user, "user_id", "uid-1",
	    "workspace", ws, "workspace_id", "wsid-1", "owner", user,
	    "client_addr", "127.0.0.1", "org", "default");

	assert_non_null(m);
	return m;
}

static char *
rec_dir(const char *id)
{
	static char p[PATH_MAX];

	pathf(p, sizeof(p), "%s/recordings/%s", E->dir, id);
	return p;
}

static char *
chunk_path(const char *id, unsigned n)
{
	static char p[PATH_MAX];

	pathf(p, sizeof(p), "%s/recordings/%s/%u.chunk", E->dir, id, n);
	return p;
}

static int
count_chunks(const char *id)
{
	int n = 0;
	struct stat st;

	while (stat(chunk_path(id, (unsigned)n), &st) == 0)
		n++;
	return n;
}

static int
read_rec(const char *id, char **text, size_t *len)
{
	return recstore_read(E->rs, id, text, len);
}

static void
test_round_trip(void **state)
{
	struct recording *r = NULL;
	char id[33], *text = NULL;
	size_t len = 0;
	json_t *m = meta("alice", "dev"), *doc = NULL;
	static const char lines[] = "[0.1, \"o\", \"hello " MARK "\"]\n"
	    "[0.2, \"r\", \"100x40\"]\n";
	static const char more[] = "[0.3, \"o\", \"bye\"]\n";
	struct stat st;

	(void)state;
	/* Reserved fields in the caller's meta are not taken. */
	json_object_set_new(m, "id", json_string("not-this"));
	json_object_set_new(m, "sealed", json_pack("{s:s}", "x", "y"));
	json_object_set_new(m, "bytes", json_integer(999));
	assert_int_equal(recstore_begin(E->rs, m, HEADER, strlen(HEADER), &r,
	    id), 0);
	assert_non_null(r);
	assert_true(recstore_valid_id(id));
	/* The header is on disk at once. */
	assert_int_equal(count_chunks(id), 1);
	assert_int_equal(recstore_append(r, lines, strlen(lines)), 0);
	assert_int_equal(recstore_append(r, more, strlen(more)), 0);
	/* Less than RECSTORE_FLUSH_MS since the header: nothing written. */
	assert_int_equal(recstore_tick(r), 0);
	assert_int_equal(count_chunks(id), 1);
	/* A live recording reads up to its last chunk. */
	assert_int_equal(read_rec(id, &text, &len), 0);
	assert_string_equal(text, HEADER);
	free(text);
	assert_int_equal(recstore_end(r, 12.3456), 0);
	assert_int_equal(count_chunks(id), 2);

	assert_int_equal(read_rec(id, &text, &len), 0);
	assert_int_equal(len, strlen(HEADER) + strlen(lines) + strlen(more));
	assert_memory_equal(text, HEADER, strlen(HEADER));
	assert_memory_equal(text + strlen(HEADER), lines, strlen(lines));
	assert_memory_equal(text + strlen(HEADER) + strlen(lines), more,
	    strlen(more));
	assert_int_equal(text[len], '\0');
	free(text);

	assert_int_equal(store_get(E->st, COLL_RECORDINGS, id, &doc), 0);
	assert_string_equal(json_string_value(json_object_get(doc, "id")), id);
	assert_string_equal(json_string_value(json_object_get(doc, "user")),
	    "alice");
	assert_string_equal(json_string_value(json_object_get(doc,
	    "workspace_id")), "wsid-1");
	assert_null(json_object_get(doc, "sealed"));
	assert_non_null(json_object_get(doc, "started_at"));
	assert_non_null(json_object_get(doc, "ended_at"));
	assert_int_equal(json_integer_value(json_object_get(doc, "bytes")),
	    (json_int_t)(strlen(HEADER) + strlen(lines) + strlen(more)));
	assert_int_equal(json_integer_value(json_object_get(doc, "chunks")), 2);
	assert_true(json_real_value(json_object_get(doc, "duration")) > 12.34 &&
	    json_real_value(json_object_get(doc, "duration")) < 12.35);
	json_decref(doc);
	doc = NULL;
	/* Found by its indexes. */
	assert_int_equal(store_list(E->st, COLL_RECORDINGS, "session_id",
	    "sess-1", NULL, 0, &doc), 0);
	assert_true(json_array_size(doc) >= 1);
	json_decref(doc);

	/* Modes: the directory 0700, chunks 0600. */
	assert_int_equal(stat(rec_dir(id), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_int_equal(stat(chunk_path(id, 0), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	json_decref(m);

	/* Unknown and malformed ids. */
	assert_int_equal(read_rec("0123456789abcdef0123456789abcdef", &text,
	    &len), MOAT_ERR_NOTFOUND);
	assert_null(text);
	assert_int_equal(read_rec("../../secrets", &text, &len),
	    MOAT_ERR_NOTFOUND);
	assert_int_equal(read_rec("0123456789ABCDEF0123456789ABCDEF", &text,
	    &len), MOAT_ERR_NOTFOUND);
	/* Bad arguments. */
	assert_int_equal(recstore_begin(E->rs, NULL, "", 0, &r, id),
	    MOAT_ERR_INVAL);
	assert_null(r);
	assert_int_equal(recstore_append(NULL, "x", 1), MOAT_ERR_INVAL);
	assert_int_equal(recstore_end(NULL, 0), MOAT_ERR_INVAL);
}

/* Real asciicast text, more than several chunks' worth, read back. */
static void
test_chunks(void **state)
{
	struct recording *r = NULL;
	struct asciicast *a = NULL;
	struct buf all, line;
	char id[33], *text = NULL;
	size_t len = 0;
	json_t *m = meta("bob", "big");
	int n;

	(void)state;
	buf_init(&all, 1 << 24);
	buf_init(&line, 1 << 20);
	assert_int_equal(asciicast_header(&line, 80, 24, 1767225600, "xterm",
	    "/bin/bash"), 0);
	assert_int_equal(buf_append(&all, line.data, line.len), 0);
	assert_int_equal(recstore_begin(E->rs, m, (const char *)line.data,
	    line.len, &r, id), 0);
	assert_int_equal(asciicast_new(&a, 0), 0);
	for (int i = 0; i < 3000; i++) {
		char out[128];

		snprintf(out, sizeof(out), "line %d \xe2\x82\xac " MARK
		    " \x1b[1m%064d\x1b[0m\r\n", i, i);
		buf_reset(&line);
		assert_int_equal(asciicast_data(a, &line, i * 0.01, 'o',
		    (const uint8_t *)out, strlen(out)), 0);
		assert_int_equal(recstore_append(r, (const char *)line.data,
		    line.len), 0);
		assert_int_equal(buf_append(&all, line.data, line.len), 0);
	}
	/* Several lines in one call, too. */
	assert_int_equal(recstore_append(r, "[31, \"o\", \"a\"]\n"
	    "[32, \"o\", \"b\"]\n", 30), 0);
	assert_int_equal(buf_append(&all, "[31, \"o\", \"a\"]\n"
	    "[32, \"o\", \"b\"]\n", 30), 0);
	n = count_chunks(id);
	/* ~400 KB of text: chunks of at most RECSTORE_CHUNK_MAX. */
	assert_true(n >= (int)(all.len / RECSTORE_CHUNK_MAX));
	assert_int_equal(recstore_end(r, 30), 0);
	assert_int_equal(read_rec(id, &text, &len), 0);
	assert_int_equal(len, all.len);
	assert_memory_equal(text, all.data, len);
	free(text);
	for (int i = 0; i < count_chunks(id); i++) {
		struct stat st;

		assert_int_equal(stat(chunk_path(id, (unsigned)i), &st), 0);
		/* Sealed text: base64 of at most a chunk plus one line. */
		assert_true(st.st_size < RECSTORE_CHUNK_MAX * 2);
	}
	asciicast_free(a);
	buf_free(&all);
	buf_free(&line);
	json_decref(m);
}

/* A session process that dies: what it flushed is readable, the rest is
 * lost, and the recording stays "not ended". */
static void
test_crash(void **state)
{
	char id[33] = "", *text = NULL;
	size_t len = 0;
	int pipefd[2], status;
	pid_t pid;
	json_t *doc = NULL;
	static const char first[] = "[0.5, \"o\", \"before the tick\"]\n";
	static const char lost[] = "[2.5, \"o\", \"after the tick\"]\n";

	(void)state;
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct env child;
		struct recording *r = NULL;
		struct timespec ts = { 2, 100 * 1000 * 1000 };
		json_t *m = meta("carol", "crashy");

		close(pipefd[0]);
		memset(&child, 0, sizeof(child));
		memcpy(child.dir, E->dir, sizeof(child.dir));
		env_open(&child);
		if (recstore_begin(child.rs, m, HEADER, strlen(HEADER), &r,
		    id) != 0 || write(pipefd[1], id, 33) != 33 ||
		    recstore_append(r, first, strlen(first)) != 0)
			_exit(1);
		nanosleep(&ts, NULL);
		/* RECSTORE_FLUSH_MS passed: the tick writes a chunk. */
		if (recstore_tick(r) != 0 || recstore_append(r, lost,
		    strlen(lost)) != 0)
			_exit(2);
		_exit(0);	/* no recstore_end: a crash */
	}
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], id, 33), 33);
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_true(recstore_valid_id(id));
	assert_int_equal(read_rec(id, &text, &len), 0);
	assert_int_equal(len, strlen(HEADER) + strlen(first));
	assert_memory_equal(text + strlen(HEADER), first, strlen(first));
	assert_null(strstr(text, "after the tick"));
	free(text);
	assert_int_equal(store_get(E->st, COLL_RECORDINGS, id, &doc), 0);
	assert_null(json_object_get(doc, "ended_at"));
	json_decref(doc);

	/* A half-written chunk left by a crash (n.tmp) is ignored. */
	{
		char tmp[PATH_MAX];
		FILE *f;

		pathf(tmp, sizeof(tmp), "%s/2.tmp", rec_dir(id));
		assert_non_null(f = fopen(tmp, "w"));
		fputs("v1.k1.garbage", f);
		fclose(f);
		assert_int_equal(read_rec(id, &text, &len), 0);
		assert_int_equal(len, strlen(HEADER) + strlen(first));
		free(text);
	}
}

static void
write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_TRUNC);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	p[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return p;
}

/* A recording of four chunks (header + 3), ended. */
static void
make_four(char id[33])
{
	struct recording *r = NULL;
	json_t *m = meta("dave", "tamper");

	assert_int_equal(recstore_begin(E->rs, m, HEADER, strlen(HEADER), &r,
	    id), 0);
	for (int i = 0; i < 3; i++) {
		char line[64];

		snprintf(line, sizeof(line), "[%d, \"o\", \"chunk %d\"]\n", i, i);
		assert_int_equal(recstore_append(r, line, strlen(line)), 0);
		assert_int_equal(recstore_flush(r), 0);
	}
	assert_int_equal(recstore_end(r, 3), 0);
	assert_int_equal(count_chunks(id), 4);
	json_decref(m);
}

static void
test_tampering(void **state)
{
	char id[33], id2[33], *text = NULL, *orig, *orig2, *other,
	    p1[PATH_MAX], p2[PATH_MAX];
	size_t len = 0, olen, o2len, xlen;
	char saved;

	(void)state;
	make_four(id);
	assert_int_equal(read_rec(id, &text, &len), 0);
	free(text);

	/* One character changed. */
	orig = slurp(chunk_path(id, 1), &olen);
	saved = orig[olen - 5];
	orig[olen - 5] = saved == 'A' ? 'B' : 'A';
	write_file(chunk_path(id, 1), orig, olen);
	assert_int_equal(read_rec(id, &text, &len), MOAT_ERR_CORRUPT);
	assert_null(text);
	orig[olen - 5] = saved;
	write_file(chunk_path(id, 1), orig, olen);
	assert_int_equal(read_rec(id, &text, &len), 0);
	free(text);

	/* Two chunks swapped. */
	pathf(p1, sizeof(p1), "%s", chunk_path(id, 1));
	pathf(p2, sizeof(p2), "%s", chunk_path(id, 2));
	assert_int_equal(rename(p1, "/tmp/test_recstore_swap"), 0);
	assert_int_equal(rename(p2, p1), 0);
	assert_int_equal(rename("/tmp/test_recstore_swap", p2), 0);
	assert_int_equal(read_rec(id, &text, &len), MOAT_ERR_CORRUPT);
	assert_int_equal(rename(p1, "/tmp/test_recstore_swap"), 0);
	assert_int_equal(rename(p2, p1), 0);
	assert_int_equal(rename("/tmp/test_recstore_swap", p2), 0);
	assert_int_equal(read_rec(id, &text, &len), 0);
	free(text);

	/* A chunk from another recording, at the same position. */
	make_four(id2);
	orig2 = slurp(chunk_path(id, 2), &o2len);
	other = slurp(chunk_path(id2, 2), &xlen);
	write_file(chunk_path(id, 2), other, xlen);
	assert_int_equal(read_rec(id, &text, &len), MOAT_ERR_CORRUPT);
	free(other);
	write_file(chunk_path(id, 2), orig2, o2len);
	free(orig2);
	assert_int_equal(read_rec(id, &text, &len), 0);
	free(text);
	text = NULL;

	/* The last chunk of an ended recording removed. */
	assert_int_equal(unlink(chunk_path(id2, 3)), 0);
	assert_int_equal(read_rec(id2, &text, &len), MOAT_ERR_CORRUPT);
	/* A chunk removed from the middle. */
	assert_int_equal(unlink(chunk_path(id2, 1)), 0);
	assert_int_equal(read_rec(id2, &text, &len), MOAT_ERR_CORRUPT);
	/* A stranger in the directory. */
	{
		char x[PATH_MAX];
		FILE *f;

		pathf(x, sizeof(x), "%s/notes.txt", rec_dir(id));
		assert_non_null(f = fopen(x, "w"));
		fclose(f);
		assert_int_equal(read_rec(id, &text, &len), MOAT_ERR_CORRUPT);
		assert_int_equal(unlink(x), 0);
	}
	/* An empty chunk. */
	write_file(chunk_path(id, 3), "", 0);
	assert_int_equal(read_rec(id, &text, &len), MOAT_ERR_CORRUPT);
	assert_null(text);
	free(orig);
}

/* No file under the data directory holds the session text. */
static int
no_mark_cb(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_F && S_ISREG(st->st_mode) && st->st_size > 0) {
		size_t len;
		char *p = slurp(path, &len);

		if (memmem(p, len, MARK, strlen(MARK)) != NULL ||
		    memmem(p, len, "hello", 5) != NULL ||
		    memmem(p, len, "chunk 1", 7) != NULL)
			fail_msg("plaintext in %s", path);
		free(p);
	}
	return 0;
}

static void
test_no_plaintext(void **state)
{
	char p[PATH_MAX];

	(void)state;
	/* The earlier tests wrote recordings with MARK in them. */
	pathf(p, sizeof(p), "%s/recordings", E->dir);
	assert_int_equal(nftw(p, no_mark_cb, 16, FTW_PHYS), 0);
	assert_int_equal(nftw(E->dir, no_mark_cb, 16, FTW_PHYS), 0);
}

static void
test_newest_first(void **state)
{
	struct recording *r = NULL;
	char a[33], b[33];
	json_t *m = meta("erin", "order"), *list = NULL;
	struct timespec ts = { 0, 5 * 1000 * 1000 };

	(void)state;
	assert_int_equal(recstore_begin(E->rs, m, HEADER, strlen(HEADER), &r,
	    a), 0);
	assert_int_equal(recstore_end(r, 0), 0);
	nanosleep(&ts, NULL);
	assert_int_equal(recstore_begin(E->rs, m, HEADER, strlen(HEADER), &r,
	    b), 0);
	assert_int_equal(recstore_end(r, 0), 0);
	assert_true(strcmp(b, a) < 0);
	assert_int_equal(store_list(E->st, COLL_RECORDINGS, NULL, NULL, NULL,
	    1, &list), 0);
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(list, 0), "id")), b);
	json_decref(list);
	json_decref(m);
}

struct writer {
	pthread_t t;
	int n;
	char id[33];
	struct buf all;
	int rc;
};

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct recording *r = NULL;
	json_t *m = meta("frank", "threads");

	w->rc = recstore_begin(E->rs, m, HEADER, strlen(HEADER), &r, w->id);
	json_decref(m);
	if (w->rc != 0)
		return NULL;
	if ((w->rc = buf_append(&w->all, HEADER, strlen(HEADER))) != 0)
		return NULL;
	for (int i = 0; i < 400 && w->rc == 0; i++) {
		char line[200];

		snprintf(line, sizeof(line), "[%d.0, \"o\", \"writer %d line "
		    "%d %0100d\"]\n", i, w->n, i, i);
		if ((w->rc = recstore_append(r, line, strlen(line))) == 0)
			w->rc = buf_append(&w->all, line, strlen(line));
		if (w->rc == 0 && i % 50 == 0)
			w->rc = recstore_tick(r);
	}
	if (w->rc == 0)
		w->rc = recstore_end(r, 1);
	return NULL;
}

static void
test_threads(void **state)
{
	struct writer w[4];

	(void)state;
	for (int i = 0; i < 4; i++) {
		memset(&w[i], 0, sizeof(w[i]));
		w[i].n = i;
		buf_init(&w[i].all, 1 << 22);
		assert_int_equal(pthread_create(&w[i].t, NULL, writer_main,
		    &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		char *text = NULL;
		size_t len = 0;

		assert_int_equal(pthread_join(w[i].t, NULL), 0);
		assert_int_equal(w[i].rc, 0);
		assert_int_equal(read_rec(w[i].id, &text, &len), 0);
		assert_int_equal(len, w[i].all.len);
		assert_memory_equal(text, w[i].all.data, len);
		free(text);
		buf_free(&w[i].all);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_chunks),
		cmocka_unit_test(test_crash),
		cmocka_unit_test(test_tampering),
		cmocka_unit_test(test_newest_first),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_no_plaintext),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
