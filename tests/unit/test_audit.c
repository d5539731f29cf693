/*
 * test_audit.c - unit tests of the audit chain: the writer (threads, reopen,
 * crash recovery, checkpoints, disk reserve), the collector socket, and the
 * verifier against edits, deletions, reordering, truncation and wrong keys.
 * Real files in a mkdtemp directory, real EC P-256 keys made with OpenSSL,
 * a real unix socket.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "audit.h"
#include "audit_int.h"
#include "log.h"

static char tmpdir[256];
static char key_priv[300], key_pub[300], other_pub[300];

/* --- Helpers. --- */

static void
path_in(char *out, size_t n, const char *name)
{
	assert_true(snprintf(out, n, "%s/%s", tmpdir, name) < (int)n);
}

static void
write_key(EVP_PKEY *k, const char *priv, const char *pub)
{
	FILE *f;

	if (priv != NULL) {
		assert_non_null(f = fopen(priv, "w"));
		assert_int_equal(PEM_write_PrivateKey(f, k, NULL, NULL, 0,
		    NULL, NULL), 1);
		fclose(f);
	}
	assert_non_null(f = fopen(pub, "w"));
	assert_int_equal(PEM_write_PUBKEY(f, k), 1);
	fclose(f);
}

static int
group_setup(void **state)
{
	EVP_PKEY *k1, *k2;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/moat-test-audit-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	path_in(key_priv, sizeof(key_priv), "ckpt.pem");
	path_in(key_pub, sizeof(key_pub), "ckpt.pub.pem");
	path_in(other_pub, sizeof(other_pub), "other.pub.pem");
	k1 = EVP_EC_gen("P-256");
	k2 = EVP_EC_gen("P-256");
	if (k1 == NULL || k2 == NULL)
		return -1;
	write_key(k1, key_priv, key_pub);
	write_key(k2, NULL, other_pub);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	log_set_level(LOG_WARN);
	return 0;
}

static int
group_teardown(void **state)
{
	DIR *d;
	struct dirent *de;
	char p[512];

	if ((d = opendir(tmpdir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", tmpdir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(tmpdir);
	return 0;
}

static struct audit_writer *
open_writer(const char *path, bool with_key, const char *collector)
{
	struct audit_writer_opts o = {
		.path = path,
		.checkpoint_key_file = with_key ? key_priv : NULL,
		.key_id = with_key ? "test-key-1" : NULL,
		.checkpoint_interval_ms = 3600 * 1000,
		.fsync_policy = AUDIT_FSYNC_NONE,
		.disk_reserve_bytes = 1,
		.collector_path = collector,
		.process_name = "moatd-test",
	};
	struct audit_writer *w = NULL;

	assert_int_equal(audit_writer_open(&w, &o), 0);
	assert_non_null(w);
	return w;
}

static void
emit_n(struct audit_writer *w, int first, int n)
{
	for (int i = first; i < first + n; i++) {
		json_t *ev = audit_event_new("test.event", "success");
		char note[32];

		snprintf(note, sizeof(note), "event-%05d", i);
		assert_non_null(ev);
		assert_int_equal(json_object_set_new(ev, "details",
		    json_pack("{s:s, s:i}", "note", note, "i", i)), 0);
		assert_int_equal(audit_emit(w, ev), 0);
	}
}

static uint8_t *
read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	assert_non_null(b = malloc((size_t)n + 1));
	assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
	b[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void
write_all_file(const char *path, const uint8_t *b, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(b, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Offset and length (without newline) of 1-based line k. */
static void
line_span(const uint8_t *b, size_t len, int k, size_t *off, size_t *n)
{
	size_t p = 0;

	for (int i = 1; i < k; i++) {
		const uint8_t *nl = memchr(b + p, '\n', len - p);
		assert_non_null(nl);
		p = (size_t)(nl - b) + 1;
	}
	const uint8_t *nl = memchr(b + p, '\n', len - p);
	assert_non_null(nl);
	*off = p;
	*n = (size_t)(nl - (b + p));
}

static json_t *
line_json(const uint8_t *b, size_t len, int k)
{
	size_t off, n;
	json_t *j;

	line_span(b, len, k, &off, &n);
	j = json_loadb((const char *)b + off, n, 0, NULL);
	assert_non_null(j);
	return j;
}

static int
count_lines(const uint8_t *b, size_t len)
{
	int n = 0;

	for (size_t i = 0; i < len; i++)
		n += b[i] == '\n';
	return n;
}

static void
remove_chain(const char *path)
{
	char p[600];

	unlink(path);
	snprintf(p, sizeof(p), "%s.checkpoint", path);
	unlink(p);
}

static EVP_PKEY *
pub_key(void)
{
	EVP_PKEY *k = audit_load_pubkey(key_pub);

	assert_non_null(k);
	return k;
}

/* A chain of n events with a checkpoint after `ckpt_after` events (0:
 * none) and the final one at close. */
static void
make_chain(const char *path, int n, int ckpt_after)
{
	struct audit_writer *w;

	remove_chain(path);
	w = open_writer(path, true, NULL);
	if (ckpt_after > 0) {
		emit_n(w, 1, ckpt_after);
		assert_int_equal(audit_writer_checkpoint(w), 0);
		emit_n(w, ckpt_after + 1, n - ckpt_after);
	} else {
		emit_n(w, 1, n);
	}
	assert_int_equal(audit_writer_flush(w), 0);
	audit_writer_close(w);
}

/* --- Tests. --- */

struct emitter {
	struct audit_writer *w;
	int first, n;
};

static void *
emitter_main(void *arg)
{
	struct emitter *e = arg;

	for (int i = e->first; i < e->first + e->n; i++) {
		json_t *ev = audit_event_new("test.thread", "success");
		json_object_set_new(ev, "workspace", json_integer(i));
		if (audit_emit(e->w, ev) != 0)
			return (void *)1;
	}
	return NULL;
}

static void
test_threads_contiguous(void **state)
{
	char path[512];
	struct audit_writer *w;
	struct audit_verify_result res;
	struct emitter e[4];
	pthread_t t[4];
	EVP_PKEY *pub = pub_key();
	uint8_t *b;
	size_t len;
	int lines, seen[800] = { 0 };

	path_in(path, sizeof(path), "threads.log");
	remove_chain(path);
	w = open_writer(path, true, NULL);
	for (int i = 0; i < 4; i++) {
		e[i] = (struct emitter){ .w = w, .first = i * 200, .n = 200 };
		assert_int_equal(pthread_create(&t[i], NULL, emitter_main,
		    &e[i]), 0);
	}
	assert_int_equal(audit_writer_checkpoint(w), 0);
	for (int i = 0; i < 4; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	assert_int_equal(audit_writer_flush(w), 0);
	assert_true(audit_writer_healthy(w));
	assert_int_equal(audit_writer_dropped(w), 0);
	audit_writer_close(w);

	assert_int_equal(audit_verify_file(path, pub, &res), 0);
	assert_true(res.ok);
	assert_true(res.signatures_checked);
	assert_true(res.head_checked);
	/* The checkpoint asked for mid-way, and the final one unless the
	 * first came after the last event. */
	assert_true(res.checkpoints == 1 || res.checkpoints == 2);
	assert_int_equal(res.records, 800 + res.checkpoints);
	assert_int_equal(res.last_checkpoint_seq, res.records);
	assert_int_equal(res.unsigned_tail, 0);

	/* Independently of the verifier: seq = line number, every event once,
	 * and the source is this process. */
	b = read_all(path, &len);
	lines = count_lines(b, len);
	assert_int_equal((uint64_t)lines, res.records);
	for (int k = 1; k <= lines; k++) {
		json_t *j = line_json(b, len, k), *ws;
		assert_int_equal(json_integer_value(json_object_get(j, "seq")),
		    k);
		assert_int_equal(json_integer_value(json_object_get(
		    json_object_get(j, "source"), "pid")), getpid());
		if ((ws = json_object_get(j, "workspace")) != NULL)
			seen[json_integer_value(ws)]++;
		json_decref(j);
	}
	for (int i = 0; i < 800; i++)
		assert_int_equal(seen[i], 1);
	free(b);
	EVP_PKEY_free(pub);
	remove_chain(path);
}

static void
test_reopen_continues(void **state)
{
	char path[512];
	struct audit_writer *w;
	struct audit_verify_result res;
	EVP_PKEY *pub = pub_key();
	uint8_t *b;
	size_t len;
	json_t *j6, *j7;

	path_in(path, sizeof(path), "reopen.log");
	make_chain(path, 5, 0);		/* 5 events + checkpoint = 6 */
	w = open_writer(path, true, NULL);
	emit_n(w, 6, 5);
	assert_int_equal(audit_writer_flush(w), 0);
	audit_writer_close(w);		/* 11 events + checkpoint = 12 */

	assert_int_equal(audit_verify_file(path, pub, &res), 0);
	assert_int_equal(res.records, 12);
	assert_int_equal(res.checkpoints, 2);
	b = read_all(path, &len);
	j6 = line_json(b, len, 6);
	j7 = line_json(b, len, 7);
	assert_int_equal(json_integer_value(json_object_get(j7, "seq")), 7);
	assert_string_equal(json_string_value(json_object_get(j7, "prev")),
	    json_string_value(json_object_get(j6, "hash")));
	json_decref(j6);
	json_decref(j7);
	free(b);
	EVP_PKEY_free(pub);
	remove_chain(path);
}

static void
test_edit_byte(void **state)
{
	char path[512];
	struct audit_verify_result res;
	uint8_t *b;
	size_t len, off, n;
	char *hit;

	path_in(path, sizeof(path), "edit.log");
	make_chain(path, 30, 10);	/* checkpoint at seq 11 */
	assert_int_equal(audit_verify_file(path, NULL, &res), 0);
	b = read_all(path, &len);
	line_span(b, len, 17, &off, &n);
	/* Line 17 is event 16 (one checkpoint before it). */
	hit = memmem(b + off, n, "event-00016", 11);
	assert_non_null(hit);
	hit[10] = '9';
	write_all_file(path, b, len);
	assert_int_equal(audit_verify_file(path, NULL, &res),
	    MOAT_ERR_CORRUPT);
	assert_false(res.ok);
	assert_int_equal(res.bad_line, 17);
	assert_int_equal(res.bad_seq, 17);
	assert_string_equal(res.reason,
	    "record 17: hash does not match its contents");
	free(b);
	remove_chain(path);
}

static void
test_delete_and_swap(void **state)
{
	char path[512];
	struct audit_verify_result res;
	uint8_t *b, *c;
	size_t len, o17, n17, o18, n18;

	path_in(path, sizeof(path), "delete.log");
	make_chain(path, 30, 10);
	b = read_all(path, &len);
	line_span(b, len, 17, &o17, &n17);
	line_span(b, len, 18, &o18, &n18);

	/* Delete record 17. */
	assert_non_null(c = malloc(len));
	memcpy(c, b, o17);
	memcpy(c + o17, b + o18, len - o18);
	write_all_file(path, c, len - (n17 + 1));
	assert_int_equal(audit_verify_file(path, NULL, &res),
	    MOAT_ERR_CORRUPT);
	assert_int_equal(res.bad_line, 17);
	assert_int_equal(res.bad_seq, 18);
	assert_string_equal(res.reason, "record 17: sequence 18 follows 16 "
	    "(records missing or reordered)");

	/* Swap records 17 and 18. */
	memcpy(c, b, len);
	memcpy(c + o17, b + o18, n18 + 1);
	memcpy(c + o17 + n18 + 1, b + o17, n17 + 1);
	write_all_file(path, c, len);
	assert_int_equal(audit_verify_file(path, NULL, &res),
	    MOAT_ERR_CORRUPT);
	assert_int_equal(res.bad_line, 17);
	assert_int_equal(res.bad_seq, 18);
	assert_non_null(strstr(res.reason, "follows 16"));

	free(b);
	free(c);
	remove_chain(path);
}

static void
test_truncate_past_checkpoint(void **state)
{
	char path[512];
	struct audit_verify_result res;
	struct audit_writer *w = NULL;
	struct audit_writer_opts o = { 0 };
	uint8_t *b;
	size_t len, off, n;

	path_in(path, sizeof(path), "trunc.log");
	make_chain(path, 20, 10);	/* checkpoints at 11 and 22 */
	b = read_all(path, &len);
	line_span(b, len, 15, &off, &n);
	write_all_file(path, b, off + n + 1);	/* keep 15 records */
	assert_int_equal(audit_verify_file(path, NULL, &res),
	    MOAT_ERR_CORRUPT);
	assert_string_equal(res.reason, "chain ends at seq 15 but the "
	    "checkpoint file covers seq 22: records were truncated");
	assert_int_equal(res.records, 15);

	/* The writer refuses to continue such a chain. */
	o.path = path;
	o.fsync_policy = AUDIT_FSYNC_NONE;
	o.disk_reserve_bytes = 1;
	assert_int_equal(audit_writer_open(&w, &o), MOAT_ERR_CORRUPT);
	assert_null(w);

	/* Put back, it verifies again, against the checkpoint file. */
	write_all_file(path, b, len);
	assert_int_equal(audit_verify_file(path, NULL, &res), 0);
	assert_true(res.head_checked);
	free(b);
	remove_chain(path);
}

static void
test_cut_last_line_recovered(void **state)
{
	char path[512], crash[512], head[600], crash_head[600];
	struct audit_writer *w;
	struct audit_verify_result res;
	EVP_PKEY *pub = pub_key();
	uint8_t *b;
	size_t len, off, n;
	json_t *j;

	path_in(path, sizeof(path), "live.log");
	path_in(crash, sizeof(crash), "crash.log");
	snprintf(head, sizeof(head), "%s.checkpoint", path);
	snprintf(crash_head, sizeof(crash_head), "%s.checkpoint", crash);
	remove_chain(path);
	remove_chain(crash);
	w = open_writer(path, true, NULL);
	emit_n(w, 1, 10);
	assert_int_equal(audit_writer_checkpoint(w), 0);
	emit_n(w, 11, 5);
	assert_int_equal(audit_writer_flush(w), 0);
	/* The disk image of a crash: 16 records, the last one half written. */
	b = read_all(head, &len);
	write_all_file(crash_head, b, len);
	free(b);
	b = read_all(path, &len);
	audit_writer_close(w);
	assert_int_equal(count_lines(b, len), 16);
	line_span(b, len, 16, &off, &n);
	write_all_file(crash, b, off + n / 2);

	assert_int_equal(audit_verify_file(crash, pub, &res),
	    MOAT_ERR_CORRUPT);
	assert_int_equal(res.bad_line, 16);
	assert_non_null(strstr(res.reason, "cut short"));

	w = open_writer(crash, true, NULL);
	emit_n(w, 100, 1);
	assert_int_equal(audit_writer_flush(w), 0);
	audit_writer_close(w);
	assert_int_equal(audit_verify_file(crash, pub, &res), 0);
	assert_int_equal(res.records, 18);	/* 15 + recovered + 1 + ckpt */
	free(b);
	b = read_all(crash, &len);
	j = line_json(b, len, 16);
	assert_string_equal(json_string_value(json_object_get(j, "type")),
	    "audit.recovered");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j,
	    "details"), "bytes_dropped")), n / 2);
	json_decref(j);
	free(b);
	EVP_PKEY_free(pub);
	remove_chain(path);
	remove_chain(crash);
}

static void
test_tampered_tail_refused(void **state)
{
	char path[512];
	struct audit_writer *w = NULL;
	struct audit_writer_opts o = { 0 };
	uint8_t *b;
	size_t len, off, n;
	char *hit;

	path_in(path, sizeof(path), "tail.log");
	remove_chain(path);
	w = open_writer(path, false, NULL);
	emit_n(w, 1, 3);
	audit_writer_close(w);
	b = read_all(path, &len);
	line_span(b, len, 3, &off, &n);
	assert_non_null(hit = memmem(b + off, n, "event-00003", 11));
	hit[10] = '4';
	write_all_file(path, b, len);
	o.path = path;
	o.disk_reserve_bytes = 1;
	w = NULL;
	assert_int_equal(audit_writer_open(&w, &o), MOAT_ERR_CORRUPT);
	assert_null(w);
	free(b);
	remove_chain(path);
}

static void
test_wrong_key(void **state)
{
	char path[512];
	struct audit_verify_result res;
	EVP_PKEY *other = audit_load_pubkey(other_pub);
	EVP_PKEY *mine = audit_load_pubkey(key_priv);	/* private: public half */

	assert_non_null(other);
	assert_non_null(mine);
	path_in(path, sizeof(path), "key.log");
	make_chain(path, 8, 4);
	assert_int_equal(audit_verify_file(path, other, &res),
	    MOAT_ERR_CORRUPT);
	assert_int_equal(res.bad_line, 5);
	assert_int_equal(res.bad_seq, 5);
	assert_non_null(strstr(res.reason, "checkpoint signature does not "
	    "verify"));
	assert_int_equal(audit_verify_file(path, mine, &res), 0);
	assert_true(res.signatures_checked);
	assert_int_equal(res.checkpoints, 2);
	assert_int_equal(audit_verify_file(path, NULL, &res), 0);
	assert_false(res.signatures_checked);
	EVP_PKEY_free(other);
	EVP_PKEY_free(mine);
	remove_chain(path);
}

static bool
wait_for(struct audit_writer *w, uint64_t written, uint64_t rejected)
{
	for (int i = 0; i < 500; i++) {
		if (audit_writer_written(w) >= written &&
		    audit_writer_rejected(w) >= rejected)
			return true;
		usleep(10000);
	}
	return false;
}

static void
send_raw(const char *sock, const void *msg, size_t len)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);

	assert_true(fd >= 0);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(send(fd, msg, len, 0), (ssize_t)len);
	close(fd);
}

static void
test_collector(void **state)
{
	char path[512], sock[512];
	struct audit_writer *w;
	struct audit_client *c = NULL;
	struct audit_verify_result res;
	json_t *ev, *j, *src;
	struct stat st;
	uint8_t *b, *big;
	size_t len;
	int lines, found = 0;

	path_in(path, sizeof(path), "collector.log");
	path_in(sock, sizeof(sock), "c.sock");
	remove_chain(path);
	unlink(sock);
	w = open_writer(path, false, sock);
	assert_int_equal(stat(sock, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0660);
	assert_int_equal(audit_client_connect(&c, sock), 0);

	/* Refused: the writer's fields, a reserved type, a bad outcome. */
	ev = json_pack("{s:s, s:s, s:i}", "type", "ssh.session", "outcome",
	    "success", "seq", 1);
	assert_int_equal(audit_client_send(c, ev), 0);
	json_decref(ev);
	ev = json_pack("{s:s, s:s, s:s}", "type", "ssh.session", "outcome",
	    "success", "hash", "00");
	assert_int_equal(audit_client_send(c, ev), 0);
	json_decref(ev);
	ev = json_pack("{s:s, s:s, s:{s:i}}", "type", "ssh.session",
	    "outcome", "success", "source", "pid", 1);
	assert_int_equal(audit_client_send(c, ev), 0);
	json_decref(ev);
	ev = json_pack("{s:s, s:s}", "type", "audit.checkpoint", "outcome",
	    "success");
	assert_int_equal(audit_client_send(c, ev), 0);
	json_decref(ev);
	ev = json_pack("{s:s, s:s}", "type", "ssh.session", "outcome", "maybe");
	assert_int_equal(audit_client_send(c, ev), 0);
	json_decref(ev);
	/* Accepted, with a claimed component. */
	ev = json_pack("{s:s, s:s, s:s, s:{s:s}}", "type", "ssh.session",
	    "outcome", "success", "component", "sshd-session", "actor",
	    "user", "alice");
	assert_int_equal(audit_client_send(c, ev), 0);
	json_decref(ev);
	/* Not JSON, and too large, on other connections. */
	send_raw(sock, "hello", 5);
	assert_non_null(big = malloc(AUDIT_MAX_EVENT + 10));
	memset(big, ' ', AUDIT_MAX_EVENT + 10);
	send_raw(sock, big, AUDIT_MAX_EVENT + 10);
	free(big);

	assert_true(wait_for(w, 1, 7));
	assert_int_equal(audit_writer_rejected(w), 7);
	assert_int_equal(audit_writer_flush(w), 0);
	audit_client_free(c);
	audit_writer_close(w);
	/* The socket is removed at close. */
	assert_int_not_equal(access(sock, F_OK), 0);

	assert_int_equal(audit_verify_file(path, NULL, &res), 0);
	b = read_all(path, &len);
	lines = count_lines(b, len);
	assert_int_equal(lines, 1);
	j = line_json(b, len, 1);
	assert_string_equal(json_string_value(json_object_get(j, "type")),
	    "ssh.session");
	assert_int_equal(json_integer_value(json_object_get(j, "seq")), 1);
	src = json_object_get(j, "source");
	assert_int_equal(json_integer_value(json_object_get(src, "pid")),
	    getpid());
	assert_int_equal(json_integer_value(json_object_get(src, "uid")),
	    getuid());
	assert_string_equal(json_string_value(json_object_get(src,
	    "claimed_process")), "sshd-session");
	assert_null(json_object_get(src, "process"));
	found = 1;
	json_decref(j);
	assert_int_equal(found, 1);
	free(b);
	remove_chain(path);
}

static void
test_collector_stale_socket(void **state)
{
	char path[512], sock[512];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct audit_writer *w = NULL;
	struct audit_writer_opts o = { 0 };
	struct audit_client *c = NULL;
	int fd;

	path_in(path, sizeof(path), "stale.log");
	path_in(sock, sizeof(sock), "stale.sock");
	remove_chain(path);
	unlink(sock);
	/* A socket file nobody listens on: removed and replaced. */
	fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	w = open_writer(path, false, sock);
	assert_int_equal(audit_client_connect(&c, sock), 0);
	audit_client_free(c);

	/* A second writer on a live socket is refused. */
	o.path = path;
	o.disk_reserve_bytes = 1;
	o.collector_path = sock;
	{
		struct audit_writer *w2 = NULL;
		char path2[512];
		path_in(path2, sizeof(path2), "stale2.log");
		o.path = path2;
		assert_int_equal(audit_writer_open(&w2, &o), MOAT_ERR_EXISTS);
		assert_null(w2);
		remove_chain(path2);
	}
	audit_writer_close(w);

	/* A regular file at the path is never removed. */
	write_all_file(sock, (const uint8_t *)"x", 1);
	o.path = path;
	assert_int_equal(audit_writer_open(&w, &o), MOAT_ERR_EXISTS);
	assert_int_equal(access(sock, F_OK), 0);
	unlink(sock);
	remove_chain(path);
}

static void
test_disk_reserve(void **state)
{
	char path[512], logpath[512];
	struct audit_writer_opts o = { 0 };
	struct audit_writer *w = NULL;
	struct audit_verify_result res;
	uint8_t *b;
	size_t len;
	int logfd, warns = 0;
	const char *p;

	path_in(path, sizeof(path), "full.log");
	path_in(logpath, sizeof(logpath), "full.stderr");
	remove_chain(path);
	logfd = open(logpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(logfd >= 0);
	log_set_fd(logfd);
	o.path = path;
	o.fsync_policy = AUDIT_FSYNC_BATCH;
	o.disk_reserve_bytes = UINT64_MAX / 2;
	assert_int_equal(audit_writer_open(&w, &o), 0);
	assert_false(audit_writer_healthy(w));
	for (int i = 0; i < 3; i++) {
		json_t *ev = audit_event_new("test.full", "denied");
		assert_int_equal(audit_emit(w, ev), MOAT_ERR_NOSPACE);
	}
	/* Still written while the disk can take it. */
	assert_int_equal(audit_writer_flush(w), 0);
	assert_int_equal(audit_writer_written(w), 3);
	assert_false(audit_writer_healthy(w));
	audit_writer_close(w);
	log_set_fd(2);
	close(logfd);
	b = read_all(logpath, &len);
	for (p = (const char *)b; (p = strstr(p, "below the reserve")) != NULL;
	    p++)
		warns++;
	assert_int_equal(warns, 1);
	free(b);
	unlink(logpath);
	assert_int_equal(audit_verify_file(path, NULL, &res), 0);
	assert_int_equal(res.records, 3);
	remove_chain(path);
}

static void
test_emit_refuses_bad_events(void **state)
{
	char path[512];
	struct audit_writer *w;

	path_in(path, sizeof(path), "bad.log");
	remove_chain(path);
	w = open_writer(path, false, NULL);
	assert_int_equal(audit_emit(w, NULL), MOAT_ERR_INVAL);
	assert_int_equal(audit_emit(w, json_integer(3)), MOAT_ERR_INVAL);
	assert_int_equal(audit_emit(w, audit_event_new("audit.checkpoint",
	    "success")), MOAT_ERR_INVAL);
	assert_int_equal(audit_emit(w, audit_event_new("Bad Type",
	    "success")), MOAT_ERR_INVAL);
	assert_int_equal(audit_emit(w, audit_event_new("ok.type", "yes")),
	    MOAT_ERR_INVAL);
	assert_int_equal(audit_writer_dropped(w), 5);
	assert_int_equal(audit_writer_checkpoint(w), MOAT_ERR_UNSUPPORTED);
	audit_writer_close(w);
	remove_chain(path);
}

static void
test_interval_checkpoint(void **state)
{
	char path[512];
	struct audit_writer_opts o = { 0 };
	struct audit_writer *w = NULL;
	struct audit_verify_result res;
	EVP_PKEY *pub = pub_key();

	path_in(path, sizeof(path), "interval.log");
	remove_chain(path);
	o.path = path;
	o.checkpoint_key_file = key_priv;
	o.checkpoint_interval_ms = 100;
	o.fsync_policy = AUDIT_FSYNC_ALWAYS;
	o.disk_reserve_bytes = 1;
	assert_int_equal(audit_writer_open(&w, &o), 0);
	emit_n(w, 1, 3);
	/* Three events, then the timer's checkpoint, without being asked. */
	assert_true(wait_for(w, 4, 0));
	assert_int_equal(audit_verify_file(path, pub, &res), 0);
	assert_true(res.checkpoints >= 1);
	assert_true(res.head_checked);
	assert_int_equal(audit_writer_flush(w), 0);
	audit_writer_close(w);
	assert_int_equal(audit_verify_file(path, pub, &res), 0);
	assert_int_equal(res.records, 3 + res.checkpoints);
	assert_int_equal(res.last_checkpoint_seq, res.records);
	EVP_PKEY_free(pub);
	remove_chain(path);
}

static void
test_verify_buf_edges(void **state)
{
	struct audit_verify_result res;
	const char *junk = "{\"seq\":1}\n";

	assert_int_equal(audit_verify_buf(NULL, 0, NULL, NULL, 0, &res), 0);
	assert_true(res.ok);
	assert_int_equal(res.records, 0);
	assert_int_equal(audit_verify_buf((const uint8_t *)junk, strlen(junk),
	    NULL, NULL, 0, &res), MOAT_ERR_CORRUPT);
	assert_int_equal(res.bad_line, 1);
	assert_string_equal(res.reason, "record 1: prev does not match the "
	    "hash of the record before it (records replaced or edited)");
	assert_int_equal(audit_verify_buf((const uint8_t *)"\n", 1, NULL,
	    NULL, 0, &res), MOAT_ERR_CORRUPT);
	assert_string_equal(res.reason, "record 1: not a JSON object");
	assert_int_equal(audit_verify_buf(NULL, 0, NULL,
	    (const uint8_t *)"{}", 2, &res), MOAT_ERR_CORRUPT);
	assert_string_equal(res.reason,
	    "the checkpoint file is not a valid checkpoint record");
}

/* The writer serializes a record once and adds "hash" in place: the line
 * must be byte for byte the canonical form of the record with the hash, for
 * keys sorting before, after and around "hash", nested values holding
 * braces, commas and quotes in strings, and the empty object. */
static void
test_canonical_add_matches_dump(void **state)
{
	static const char *const docs[] = {
		"{}",
		"{\"a\":1}",
		"{\"z\":1}",
		"{\"h\":1,\"has\":2,\"hasz\":3,\"hat\":4}",
		"{\"hash_x\":1,\"hasha\":2,\"ha\":3,\"i\":4,\"g\":5}",
		"{\"Hash\":\"x\",\"HASH\":[1,2,{\"hash\":\"inner\"}]}",
		"{\"actor\":{\"user\":\"a,b}\",\"q\":\"x\\\"y\"},\"component\":"
		    "\"moat-proxy\",\"details\":{\"url\":\"http://h/{}[],\","
		    "\"n\":[1,[2,{\"k\":[]}],{}],\"d\":0.125},\"outcome\":\"ok\","
		    "\"prev\":\"00\",\"seq\":7,\"source\":{\"pid\":1},\"target\":"
		    "{\"host\":\"h\"},\"time\":\"t\",\"type\":\"egress.allow\"}",
		"{\"details\":\"\\u00e9\\n\\\\\",\"zz\":null,\"aa\":true}",
	};
	const char *hex = "0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef";

	(void)state;
	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		json_error_t err;
		json_t *o = json_loads(docs[i], 0, &err);
		char *canon, *want, *got;
		size_t clen, wlen, glen = 0;

		assert_non_null(o);
		canon = audit__canonical(o, &clen);
		assert_non_null(canon);
		assert_int_equal(json_object_set_new(o, "hash", json_string(hex)), 0);
		want = audit__canonical(o, &wlen);
		got = audit__canonical_add(canon, clen, "hash", hex, &glen);
		assert_non_null(got);
		assert_string_equal(got, want);
		assert_int_equal(glen, wlen);
		/* Already a member: refused. */
		assert_null(audit__canonical_add(want, wlen, "hash", hex, NULL));
		free(canon);
		free(want);
		free(got);
		json_decref(o);
	}
	/* Not an object, or a top-level key with an escape: refused. */
	assert_null(audit__canonical_add("[1]", 3, "hash", "00", NULL));
	assert_null(audit__canonical_add("{\"a\\\"b\":1}", 10, "hash", "00",
	    NULL));
	assert_null(audit__canonical_add("{\"a\":1}", 7, "hash", "0\"", NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threads_contiguous),
		cmocka_unit_test(test_reopen_continues),
		cmocka_unit_test(test_edit_byte),
		cmocka_unit_test(test_delete_and_swap),
		cmocka_unit_test(test_truncate_past_checkpoint),
		cmocka_unit_test(test_cut_last_line_recovered),
		cmocka_unit_test(test_tampered_tail_refused),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_collector),
		cmocka_unit_test(test_collector_stale_socket),
		cmocka_unit_test(test_disk_reserve),
		cmocka_unit_test(test_emit_refuses_bad_events),
		cmocka_unit_test(test_interval_checkpoint),
		cmocka_unit_test(test_verify_buf_edges),
		cmocka_unit_test(test_canonical_add_matches_dump),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
