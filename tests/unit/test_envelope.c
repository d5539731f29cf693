/*
 * test_envelope.c - unit tests for envelope encryption (secrets/envelope.c):
 * round trips under 16- and 32-byte KEKs, tampering with every character
 * of a sealed value, values moved to another record or field, unknown KEKs,
 * malformed strings, and re-wrapping under a new primary KEK.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "log.h"
#include "secrets/envelope.h"
#include "secrets/keys.h"
#include "secrets/rotate.h"
#include "store/schema.h"
#include "store/store.h"
#include "testkeys.h"

static struct keyset *
keyring(const char *primary, const char *const *ids, const size_t *lens,
    size_t n)
{
	char *json = tk_keyring_json(primary, ids, lens, n), err[256];
	struct keyset *ks = NULL;

	if (keyring_parse((const uint8_t *)json, strlen(json), &ks, err,
	    sizeof(err)) != 0)
		fail_msg("keyring: %s", err);
	free(json);
	return ks;
}

static char *
seal(const struct keyset *ks, const char *coll, const char *id,
    const char *field, const char *value)
{
	char *s = NULL;

	assert_int_equal(envelope_seal(ks, coll, id, field,
	    (const uint8_t *)value, strlen(value), &s), 0);
	assert_non_null(s);
	return s;
}

static int
open_cmp(const struct keyset *ks, const char *coll, const char *id,
    const char *field, const char *sealed, const char *want)
{
	uint8_t *p = (uint8_t *)1;
	size_t len = 99;
	int r = envelope_open(ks, coll, id, field, sealed, &p, &len);

	if (r == 0) {
		assert_int_equal(len, strlen(want));
		assert_memory_equal(p, want, len);
		assert_int_equal(p[len], '\0');
		envelope_free(p, len);
	} else {
		assert_null(p);
		assert_int_equal(len, 0);
	}
	return r;
}

static size_t
count_char(const char *s, char c)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		n += *s == c;
	return n;
}

static void
test_round_trip(void **state)
{
	static const char *const ids[] = { "k1", "k16" };
	static const size_t lens32[] = { 32, 16 };
	struct keyset *ks32 = keyring("k1", ids, lens32, 2);
	struct keyset *ks16 = keyring("k16", ids, lens32, 2);
	struct keyset *both[2] = { ks32, ks16 };
	static const char *const values[] = { "hunter2", "", "x",
	    "a longer value with \"quotes\" and unicode é" };
	size_t i, j;

	(void)state;
	for (j = 0; j < 2; j++)
		for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
			char *s = seal(both[j], "secrets", "u1:db", "value",
			    values[i]);
			char kid[65];

			assert_int_equal(count_char(s, '.'), 5);
			assert_int_equal(strncmp(s, j == 0 ? "v1.k1." :
			    "v1.k16.", j == 0 ? 6 : 7), 0);
			/* Never the plaintext. */
			if (strlen(values[i]) > 2)
				assert_null(strstr(s, values[i]));
			assert_int_equal(envelope_kek_id(s, kid, sizeof(kid)),
			    0);
			assert_string_equal(kid, j == 0 ? "k1" : "k16");
			assert_int_equal(open_cmp(both[j], "secrets", "u1:db",
			    "value", s, values[i]), 0);
			/* Either keyset opens both: it holds both KEKs. */
			assert_int_equal(open_cmp(both[1 - j], "secrets",
			    "u1:db", "value", s, values[i]), 0);
			free(s);
		}

	/* Binary, with NUL bytes, and large. */
	{
		size_t n = 200000;
		uint8_t *v = malloc(n), *p = NULL;
		char *s = NULL;
		size_t len = 0;

		for (i = 0; i < n; i++)
			v[i] = (uint8_t)(i * 7);
		assert_int_equal(envelope_seal(ks16, "c", "i", "f", v, n, &s),
		    0);
		assert_int_equal(envelope_open(ks16, "c", "i", "f", s, &p,
		    &len), 0);
		assert_int_equal(len, n);
		assert_memory_equal(p, v, n);
		envelope_free(p, len);
		free(s);
		free(v);
	}
	/* Two seals of one value differ (fresh DEK and nonces). */
	{
		char *a = seal(ks32, "c", "i", "f", "same");
		char *b = seal(ks32, "c", "i", "f", "same");

		assert_string_not_equal(a, b);
		free(a);
		free(b);
	}
	keyset_unref(ks32);
	keyset_unref(ks16);
}

static void
test_limits_and_args(void **state)
{
	static const char *const ids[] = { "k1" };
	static const size_t lens[] = { 32 };
	struct keyset *ks = keyring("k1", ids, lens, 1);
	uint8_t *big = calloc(1, ENVELOPE_MAX_PLAIN + 1), *p;
	char *s = (char *)1, kid[4];
	size_t len;

	(void)state;
	assert_non_null(big);
	assert_int_equal(envelope_seal(ks, "c", "i", "f", big,
	    ENVELOPE_MAX_PLAIN + 1, &s), MOAT_ERR_TOOBIG);
	assert_null(s);
	assert_int_equal(envelope_seal(ks, "c", "i", "f", big,
	    ENVELOPE_MAX_PLAIN, &s), 0);
	assert_true(strlen(s) <= ENVELOPE_MAX_SEALED);
	assert_int_equal(envelope_open(ks, "c", "i", "f", s, &p, &len), 0);
	assert_int_equal(len, ENVELOPE_MAX_PLAIN);
	envelope_free(p, len);
	free(s);
	assert_int_equal(envelope_seal(ks, NULL, "i", "f", big, 1, &s),
	    MOAT_ERR_INVAL);
	assert_int_equal(envelope_seal(ks, "c", "i", "f", NULL, 1, &s),
	    MOAT_ERR_INVAL);
	s = seal(ks, "c", "i", "f", "v");
	assert_int_equal(envelope_kek_id(s, kid, 2), MOAT_ERR_TOOBIG);
	assert_int_equal(envelope_kek_id(s, kid, 3), 0);
	assert_string_equal(kid, "k1");
	free(s);
	envelope_free(NULL, 0);
	free(big);
	keyset_unref(ks);
}

/* Every one-character change of the sealed string is refused. */
static void
test_tamper_every_char(void **state)
{
	static const char *const ids[] = { "k1", "k2" };
	static const size_t lens[] = { 16, 32 };
	struct keyset *ks = keyring("k1", ids, lens, 2);
	char *s = seal(ks, "secrets", "u1", "value", "attack at dawn");
	size_t n = strlen(s), i, id_end = strlen("v1.k1");
	static const char repl[] = { 'A', 'B', 'g', '_', '-', '0', '.', '=' };

	(void)state;
	for (i = 0; i < n; i++) {
		size_t j;

		for (j = 0; j < sizeof(repl); j++) {
			char *t;
			int r;

			if (s[i] == repl[j])
				continue;
			t = strdup(s);
			t[i] = repl[j];
			r = open_cmp(ks, "secrets", "u1", "value", t,
			    "attack at dawn");
			if (i >= 3 && i < id_end && strncmp(t, "v1.k2.", 6)
			    == 0) {
				/* The other KEK of the ring: wrong key. */
				assert_int_equal(r, MOAT_ERR_CRYPTO);
			} else if (i < id_end) {
				if (r != MOAT_ERR_PARSE && r != MOAT_ERR_NOTFOUND)
					fail_msg("pos %zu '%c': %d", i,
					    repl[j], r);
			} else if (r != MOAT_ERR_CRYPTO && r != MOAT_ERR_PARSE) {
				fail_msg("pos %zu '%c': %d", i, repl[j], r);
			}
			free(t);
		}
	}
	free(s);
	keyset_unref(ks);
}

static void
test_malformed(void **state)
{
	static const char *const ids[] = { "k1" };
	static const size_t lens[] = { 32 };
	struct keyset *ks = keyring("k1", ids, lens, 1);
	char *s = seal(ks, "c", "i", "f", "value"), *t;
	size_t n = strlen(s), i;
	char kid[65];

	(void)state;
	/* Every truncation. */
	for (i = 0; i < n; i++) {
		t = strndup(s, i);
		if (open_cmp(ks, "c", "i", "f", t, "value") != MOAT_ERR_PARSE &&
		    open_cmp(ks, "c", "i", "f", t, "value") != MOAT_ERR_CRYPTO)
			fail_msg("truncated to %zu opened", i);
		free(t);
	}
	{
		static const char *const bad[] = {
			"", "v1", "v1.", "v1......", "v2.k1.a.b.c.d",
			"V1.k1.AAAA.AAAA.AAAA.AAAA", "garbage", ".....",
		};
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			assert_int_equal(open_cmp(ks, "c", "i", "f", bad[i],
			    "value"), MOAT_ERR_PARSE);
			assert_int_equal(envelope_kek_id(bad[i], kid,
			    sizeof(kid)), MOAT_ERR_PARSE);
		}
	}
	assert_int_equal(open_cmp(ks, "c", "i", "f", NULL, "value"),
	    MOAT_ERR_PARSE);
	/* An extra part, padding, trailing bytes, a version change. */
	{
		char buf[1024];

		snprintf(buf, sizeof(buf), "%s.AAAA", s);
		assert_true(open_cmp(ks, "c", "i", "f", buf, "value") != 0);
		snprintf(buf, sizeof(buf), "%s=", s);
		assert_int_equal(open_cmp(ks, "c", "i", "f", buf, "value"),
		    MOAT_ERR_PARSE);
		snprintf(buf, sizeof(buf), "%s\n", s);
		assert_int_equal(open_cmp(ks, "c", "i", "f", buf, "value"),
		    MOAT_ERR_PARSE);
		snprintf(buf, sizeof(buf), "v2%s", s + 2);
		assert_int_equal(open_cmp(ks, "c", "i", "f", buf, "value"),
		    MOAT_ERR_PARSE);
		/* A KEK id with a character outside the rule. */
		snprintf(buf, sizeof(buf), "v1.k/%s", s + 4);
		assert_int_equal(open_cmp(ks, "c", "i", "f", buf, "value"),
		    MOAT_ERR_PARSE);
	}
	/* Longer than the limit. */
	t = malloc(ENVELOPE_MAX_SEALED + 2);
	memset(t, 'A', ENVELOPE_MAX_SEALED + 1);
	memcpy(t, s, n);
	t[ENVELOPE_MAX_SEALED + 1] = '\0';
	assert_int_equal(open_cmp(ks, "c", "i", "f", t, "value"),
	    MOAT_ERR_PARSE);
	free(t);
	free(s);
	keyset_unref(ks);
}

/* Parts of two sealed values swapped: nothing opens. */
static void
test_splice(void **state)
{
	static const char *const ids[] = { "k1" };
	static const size_t lens[] = { 32 };
	struct keyset *ks = keyring("k1", ids, lens, 1);
	char *a = seal(ks, "c", "i", "f", "value-a");
	char *b = seal(ks, "c", "i", "f", "value-b");
	char buf[1024];
	const char *a_tail = strrchr(a, '.'), *b_tail = strrchr(b, '.');
	const char *a_nonce, *b_nonce;

	(void)state;
	/* a's wrapped DEK and nonces with b's ciphertext. */
	snprintf(buf, sizeof(buf), "%.*s%s", (int)(a_tail - a), a, b_tail);
	assert_int_equal(open_cmp(ks, "c", "i", "f", buf, "value-b"),
	    MOAT_ERR_CRYPTO);
	/* b's nonce in a. */
	a_nonce = a_tail - 1;
	while (*a_nonce != '.')
		a_nonce--;
	b_nonce = b_tail - 1;
	while (*b_nonce != '.')
		b_nonce--;
	snprintf(buf, sizeof(buf), "%.*s%.*s%s", (int)(a_nonce - a), a,
	    (int)(b_tail - b_nonce), b_nonce, a_tail);
	assert_int_equal(open_cmp(ks, "c", "i", "f", buf, "value-a"),
	    MOAT_ERR_CRYPTO);
	free(a);
	free(b);
	keyset_unref(ks);
}

static void
test_moved(void **state)
{
	static const char *const ids[] = { "k1" };
	static const size_t lens[] = { 32 };
	struct keyset *ks = keyring("k1", ids, lens, 1);
	char *s = seal(ks, "secrets", "alice:token", "value", "v"), *t;

	(void)state;
	assert_int_equal(open_cmp(ks, "secrets", "alice:token", "value", s,
	    "v"), 0);
	assert_int_equal(open_cmp(ks, "users", "alice:token", "value", s,
	    "v"), MOAT_ERR_CRYPTO);
	assert_int_equal(open_cmp(ks, "secrets", "bob:token", "value", s,
	    "v"), MOAT_ERR_CRYPTO);
	assert_int_equal(open_cmp(ks, "secrets", "alice:token", "totp", s,
	    "v"), MOAT_ERR_CRYPTO);
	assert_int_equal(open_cmp(ks, "secrets", "alice:token", "", s, "v"),
	    MOAT_ERR_CRYPTO);
	/* The boundaries between the parts count. */
	t = seal(ks, "ab", "c", "d", "v");
	assert_int_equal(open_cmp(ks, "a", "bc", "d", t, "v"),
	    MOAT_ERR_CRYPTO);
	assert_int_equal(open_cmp(ks, "ab", "cd", "", t, "v"),
	    MOAT_ERR_CRYPTO);
	assert_int_equal(open_cmp(ks, "ab", "c", "d", t, "v"), 0);
	free(t);
	free(s);
	keyset_unref(ks);
}

static void
test_unknown_and_wrong_kek(void **state)
{
	static const char *const ids1[] = { "k1" }, *const ids2[] = { "k2" };
	static const size_t lens[] = { 32 }, lens16[] = { 16 };
	struct keyset *a = keyring("k1", ids1, lens, 1);
	struct keyset *b = keyring("k2", ids2, lens, 1);
	/* Same id, other bytes (fill 1 for 16 bytes vs 32 bytes). */
	struct keyset *c = keyring("k1", ids1, lens16, 1);
	char *s = seal(a, "c", "i", "f", "v"), *out = (char *)1;

	(void)state;
	assert_int_equal(open_cmp(b, "c", "i", "f", s, "v"), MOAT_ERR_NOTFOUND);
	assert_int_equal(open_cmp(c, "c", "i", "f", s, "v"), MOAT_ERR_CRYPTO);
	assert_int_equal(envelope_rewrap(b, s, &out), MOAT_ERR_NOTFOUND);
	assert_null(out);
	free(s);
	keyset_unref(a);
	keyset_unref(b);
	keyset_unref(c);
}

static void
test_kek_id_with_dots(void **state)
{
	static const char *const ids[] = { "2026.01.k-1_a" };
	static const size_t lens[] = { 16 };
	struct keyset *ks = keyring("2026.01.k-1_a", ids, lens, 1);
	char *s = seal(ks, "c", "i", "f", "dotted"), kid[65];

	(void)state;
	assert_int_equal(count_char(s, '.'), 7);
	assert_int_equal(envelope_kek_id(s, kid, sizeof(kid)), 0);
	assert_string_equal(kid, "2026.01.k-1_a");
	assert_int_equal(open_cmp(ks, "c", "i", "f", s, "dotted"), 0);
	free(s);
	keyset_unref(ks);
}

/* The part of s after its third '.' from the end (nonce + ciphertext). */
static const char *
tail2(const char *s)
{
	const char *p = s + strlen(s);
	int dots = 0;

	while (p > s) {
		p--;
		if (*p == '.' && ++dots == 2)
			return p + 1;
	}
	return NULL;
}

static void
test_rewrap(void **state)
{
	static const char *const ids1[] = { "k1" }, *const ids12[] = { "k1",
	    "k2" }, *const ids2[] = { "k2" };
	static const size_t l1[] = { 16 }, l12[] = { 16, 32 };
	struct keyset *old = keyring("k1", ids1, l1, 1);
	struct keyset *both = keyring("k2", ids12, l12, 2);
	/* Only k2, with the same bytes as in "both" (fill 2, 32 bytes). */
	char *json = strdup("{\"primary\": \"k2\", \"keys\": [{\"id\": \"k2\", "
	    "\"key\": \"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\"}]}");
	struct keyset *only2 = NULL;
	char err[256], *s, *w = NULL, *w2 = (char *)1, kid[65];

	(void)state;
	assert_int_equal(keyring_parse((const uint8_t *)json, strlen(json),
	    &only2, err, sizeof(err)), 0);
	free(json);
	(void)ids2;
	s = seal(old, "secrets", "u1:x", "value", "rotate me");
	assert_int_equal(envelope_rewrap(both, s, &w), 0);
	assert_non_null(w);
	assert_int_equal(envelope_kek_id(w, kid, sizeof(kid)), 0);
	assert_string_equal(kid, "k2");
	/* Only the wrap changed: nonce and ciphertext are the same text. */
	assert_string_equal(tail2(w), tail2(s));
	assert_int_not_equal(strncmp(w + 6, s + 6, 64), 0);
	/* Old KEK removed: the rewrapped value opens, the original not. */
	assert_int_equal(open_cmp(only2, "secrets", "u1:x", "value", w,
	    "rotate me"), 0);
	assert_int_equal(open_cmp(only2, "secrets", "u1:x", "value", s,
	    "rotate me"), MOAT_ERR_NOTFOUND);
	/* Still bound to its record. */
	assert_int_equal(open_cmp(only2, "secrets", "u2:x", "value", w,
	    "rotate me"), MOAT_ERR_CRYPTO);
	/* Already under the primary: nothing to do. */
	assert_int_equal(envelope_rewrap(only2, w, &w2), 0);
	assert_null(w2);
	/* A tampered wrap is not re-wrapped. */
	{
		char *t = strdup(s);

		t[10] = t[10] == 'A' ? 'B' : 'A';
		w2 = (char *)1;
		assert_int_equal(envelope_rewrap(both, t, &w2),
		    MOAT_ERR_CRYPTO);
		assert_null(w2);
		free(t);
	}
	assert_int_equal(envelope_rewrap(both, "v1.junk", &w2),
	    MOAT_ERR_PARSE);
	free(s);
	free(w);
	keyset_unref(old);
	keyset_unref(both);
	keyset_unref(only2);
}


/* --- rotation over the store (secrets/rotate.c) --- */

#define NSECRETS 105	/* more than one page of the walk */

static int
rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

/* Publishes DIR/secrets with keyring text kr and a fresh JWT key. */
static void
publish_keys(const char *data, const char *kr)
{
	char secrets[256], *pem = NULL;
	size_t pemlen = 0;
	EVP_PKEY *pk = tk_ec_key(&pem, &pemlen);
	struct moatd_secret_file files[3] = {
		{ "keyring.json", kr, strlen(kr) },
		{ "jwt-signing.pem", pem, pemlen },
		{ "jwt-signing.kid", "j1", 2 },
	};

	snprintf(secrets, sizeof(secrets), "%s/secrets", data);
	(void)mkdir(secrets, 0700);
	assert_int_equal(moatd_secrets_swap(secrets, files, 3, 0), 0);
	pki_secret_free(pem, pemlen);
	EVP_PKEY_free(pk);
}

/* Runs the subcommand; its stdout goes to out. */
static int
run_rotate(const char *data, char *out, size_t outlen)
{
	char *argv[] = { "rotate-keys", "--data-dir", (char *)data, NULL };
	char path[256];
	int fd, saved, status;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/stdout", data);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	fflush(stdout);
	saved = dup(1);
	dup2(fd, 1);
	log_set_fd(-1);		/* its warnings are expected here */
	status = moatd_rotate_keys_main(3, argv);
	fflush(stdout);
	dup2(saved, 1);
	close(saved);
	log_set_fd(2);
	n = pread(fd, out, outlen - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return status;
}

static void
test_rotate_store(void **state)
{
	static const char *const ids1[] = { "k1" }, *const ids12[] = { "k1",
	    "k2" };
	static const size_t l1[] = { 16 }, l12[] = { 16, 32 };
	struct keyset *ks1 = keyring("k1", ids1, l1, 1), *only2 = NULL, *ks0;
	char root[64] = "/tmp/test_envelope.XXXXXX", uri[128], out[512];
	char *kr, err[256], id[32], val[64];
	struct store *st = NULL;
	json_t *doc, *got;
	size_t i;

	(void)state;
	assert_non_null(mkdtemp(root));
	kr = tk_keyring_json("k1", ids1, l1, 1);
	publish_keys(root, kr);
	free(kr);
	snprintf(uri, sizeof(uri), "sqlite:%s/moatd.db", root);
	assert_int_equal(store_open(&st, uri, moatd_collections,
	    moatd_ncollections), 0);

	/* Values sealed under k1: personal secrets, a user's TOTP seed and
	 * a second sealed field, and a user without sealed values. */
	for (i = 0; i < NSECRETS; i++) {
		char *s;

		snprintf(id, sizeof(id), "s%03zu", i);
		snprintf(val, sizeof(val), "secret value %zu", i);
		s = seal(ks1, COLL_SECRETS, id, "value", val);
		doc = json_pack("{s:s, s:s, s:s, s:{s:s}}", "id", id,
		    "user_id", "u1", "user_name", id, "sealed", "value", s);
		assert_int_equal(store_insert(st, COLL_SECRETS, doc), 0);
		json_decref(doc);
		free(s);
	}
	{
		char *a = seal(ks1, COLL_USERS, "u1", "totp_seed", "JBSWY3DP");
		char *b = seal(ks1, COLL_USERS, "u1", "recovery", "r-123");

		doc = json_pack("{s:s, s:s, s:{s:s, s:s}}", "id", "u1",
		    "username", "alice", "sealed", "totp_seed", a, "recovery",
		    b);
		assert_int_equal(store_insert(st, COLL_USERS, doc), 0);
		json_decref(doc);
		doc = json_pack("{s:s, s:s}", "id", "u2", "username", "bob");
		assert_int_equal(store_insert(st, COLL_USERS, doc), 0);
		json_decref(doc);
		free(a);
		free(b);
	}
	store_close(st);
	st = NULL;

	/* k2 becomes primary, k1 still listed: rotate, with an audit
	 * collector listening as a running moatd's would. */
	kr = tk_keyring_json("k2", ids12, l12, 2);
	publish_keys(root, kr);
	free(kr);
	{
		char run[128], sock[160], key[128], logp[128], *pem = NULL;
		size_t pemlen = 0;
		EVP_PKEY *ak = tk_ec_key(&pem, &pemlen);
		struct audit_writer *aw = NULL;
		struct audit_writer_opts ao = { 0 };
		FILE *fp;
		int tries;

		snprintf(run, sizeof(run), "%s/run", root);
		snprintf(sock, sizeof(sock), "%s/audit.sock", run);
		snprintf(key, sizeof(key), "%s/audit-key.pem", root);
		snprintf(logp, sizeof(logp), "%s/audit.log", root);
		assert_int_equal(mkdir(run, 0700), 0);
		fp = fopen(key, "w");
		fwrite(pem, 1, pemlen, fp);
		fclose(fp);
		pki_secret_free(pem, pemlen);
		EVP_PKEY_free(ak);
		ao.path = logp;
		ao.checkpoint_key_file = key;
		ao.key_id = "a1";
		ao.fsync_policy = AUDIT_FSYNC_NONE;
		ao.collector_path = sock;
		ao.process_name = "moatd";
		assert_int_equal(audit_writer_open(&aw, &ao), 0);
		assert_int_equal(run_rotate(root, out, sizeof(out)), 0);
		snprintf(err, sizeof(err), "re-wrapped %d values in %d "
		    "documents; 0 left under other keys\n", NSECRETS + 2,
		    NSECRETS + 1);
		assert_string_equal(out, err);
		for (tries = 0; tries < 300 && audit_writer_written(aw) == 0;
		    tries++)
			usleep(10000);
		assert_int_equal(audit_writer_flush(aw), 0);
		audit_writer_close(aw);
		{
			char *text = calloc(1, 1 << 16);
			char want[64];
			size_t nread;

			fp = fopen(logp, "r");
			assert_non_null(fp);
			nread = fread(text, 1, (1 << 16) - 1, fp);
			fclose(fp);
			if (nread == 0)
				free(text);
			assert_true(nread > 0);
			assert_non_null(strstr(text, "\"type\":\"keys.rotate\""));
			assert_non_null(strstr(text, "\"outcome\":\"success\""));
			snprintf(want, sizeof(want), "\"values_rewrapped\":%d",
			    NSECRETS + 2);
			assert_non_null(strstr(text, want));
			/* No value, sealed or plain, in the audit. */
			assert_null(strstr(text, "v1.k"));
			assert_null(strstr(text, "secret value"));
			free(text);
		}
	}
	/* Again: nothing left to do. */
	assert_int_equal(run_rotate(root, out, sizeof(out)), 0);
	assert_string_equal(out, "re-wrapped 0 values in 0 documents; 0 left "
	    "under other keys\n");

	/* A keyset with only k2 opens every value, each still bound to its
	 * record. */
	kr = strdup("{\"primary\": \"k2\", \"keys\": [{\"id\": \"k2\", "
	    "\"key\": \"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\"}]}");
	assert_int_equal(keyring_parse((const uint8_t *)kr, strlen(kr), &only2,
	    err, sizeof(err)), 0);
	free(kr);
	assert_int_equal(store_open(&st, uri, moatd_collections,
	    moatd_ncollections), 0);
	for (i = 0; i < NSECRETS; i++) {
		const char *s;

		snprintf(id, sizeof(id), "s%03zu", i);
		snprintf(val, sizeof(val), "secret value %zu", i);
		assert_int_equal(store_get(st, COLL_SECRETS, id, &got), 0);
		assert_int_equal(json_integer_value(json_object_get(got, "rev")),
		    2);
		s = json_string_value(json_object_get(json_object_get(got,
		    "sealed"), "value"));
		assert_int_equal(strncmp(s, "v1.k2.", 6), 0);
		assert_int_equal(open_cmp(only2, COLL_SECRETS, id, "value", s,
		    val), 0);
		json_decref(got);
	}
	assert_int_equal(store_get(st, COLL_USERS, "u1", &got), 0);
	assert_int_equal(open_cmp(only2, COLL_USERS, "u1", "totp_seed",
	    json_string_value(json_object_get(json_object_get(got, "sealed"),
	    "totp_seed")), "JBSWY3DP"), 0);
	assert_int_equal(open_cmp(only2, COLL_USERS, "u1", "recovery",
	    json_string_value(json_object_get(json_object_get(got, "sealed"),
	    "recovery")), "r-123"), 0);
	json_decref(got);
	assert_int_equal(store_get(st, COLL_USERS, "u2", &got), 0);
	assert_int_equal(json_integer_value(json_object_get(got, "rev")), 1);
	json_decref(got);

	/* A value under a KEK the keyring does not have, and a string that
	 * is not a sealed value: left, counted, exit status 1. */
	{
		static const char *const ids0[] = { "k0" };
		static const size_t l0[] = { 32 };
		char *s;

		ks0 = keyring("k0", ids0, l0, 1);
		s = seal(ks0, COLL_SECRETS, "x1", "value", "orphan");
		doc = json_pack("{s:s, s:s, s:s, s:{s:s, s:s}}", "id", "x1",
		    "user_id", "u1", "user_name", "x1", "sealed", "value", s,
		    "junk", "not sealed");
		assert_int_equal(store_insert(st, COLL_SECRETS, doc), 0);
		json_decref(doc);
		free(s);
		keyset_unref(ks0);
	}
	store_close(st);
	st = NULL;
	assert_int_equal(run_rotate(root, out, sizeof(out)), 1);
	assert_string_equal(out, "re-wrapped 0 values in 0 documents; 2 left "
	    "under other keys\n");

	/* Usage errors. */
	{
		char *a1[] = { "rotate-keys", NULL };
		char *a2[] = { "rotate-keys", "--bogus", NULL };

		assert_int_equal(moatd_rotate_keys_main(1, a1), 2);
		assert_int_equal(moatd_rotate_keys_main(2, a2), 2);
	}
	keyset_unref(only2);
	keyset_unref(ks1);
	nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_limits_and_args),
		cmocka_unit_test(test_tamper_every_char),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_splice),
		cmocka_unit_test(test_moved),
		cmocka_unit_test(test_unknown_and_wrong_kek),
		cmocka_unit_test(test_kek_id_with_dots),
		cmocka_unit_test(test_rewrap),
		cmocka_unit_test(test_rotate_store),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
