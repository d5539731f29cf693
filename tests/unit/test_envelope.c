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

#include "secrets/envelope.h"
#include "secrets/keys.h"
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
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
