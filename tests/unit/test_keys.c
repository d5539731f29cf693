/*
 * test_keys.c - unit tests for the live key material (secrets/keys.c):
 * strict keyring.json parsing with a named error for each mistake, loading
 * a secrets directory (also one written by `moatd init`), the public JWK
 * Set, and reloads on a Kubernetes-style "..data" swap, where a bad new
 * version keeps the old keys. Real files in mkdtemp directories, real
 * OpenSSL keys.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "log.h"
#include "secrets/init.h"
#include "secrets/keys.h"
#include "secrets/pki.h"
#include "secrets/secretdir.h"
#include "testkeys.h"

struct fixture {
	char root[64];
	char dir[128];		/* root/secrets */
};

static int
rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_keys.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof(f->dir), "%s/secrets", f->root);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* --- keyring.json --- */

static void
test_keyring_ok(void **state)
{
	static const char *const ids[] = { "k1", "old.key_2-x" };
	static const size_t lens[] = { 32, 16 };
	char *json = tk_keyring_json("old.key_2-x", ids, lens, 2);
	struct keyset *ks = NULL;
	const uint8_t *k;
	uint8_t want[32];
	size_t len = 0;
	char err[256];

	(void)state;
	assert_int_equal(keyring_parse((const uint8_t *)json, strlen(json),
	    &ks, err, sizeof(err)), 0);
	assert_string_equal(keyset_primary_kek_id(ks), "old.key_2-x");
	k = keyset_kek(ks, "k1", &len);
	assert_non_null(k);
	assert_int_equal(len, 32);
	memset(want, 1, sizeof(want));
	assert_memory_equal(k, want, 32);
	k = keyset_kek(ks, "old.key_2-x", &len);
	assert_non_null(k);
	assert_int_equal(len, 16);
	memset(want, 2, sizeof(want));
	assert_memory_equal(k, want, 16);
	assert_null(keyset_kek(ks, "k3", &len));
	assert_null(keyset_kek(ks, "K1", &len));
	/* A keyring-only snapshot has no JWT keys. */
	assert_null(keyset_jwt_kid(ks));
	assert_null(keyset_jwt_signing_key(ks));
	assert_null(keyset_jwt_verify_key(ks, "k1"));
	keyset_unref(ks);
	free(json);
}

struct bad_keyring {
	const char *text;
	const char *msg;	/* expected in err */
};

static void
test_keyring_errors(void **state)
{
	/* AAAA... is 32 zero bytes, the "key" in most entries. */
#define K32 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
#define K16 "AAAAAAAAAAAAAAAAAAAAAA=="
	static const struct bad_keyring cases[] = {
		{ "", "empty" },
		{ "not json", "not valid JSON" },
		{ "[1]", "must be a JSON object" },
		{ "{\"primary\": \"k1\"}", "\"keys\" is required" },
		{ "{\"keys\": [{\"id\": \"k1\", \"key\": \"" K32 "\"}]}",
		    "\"primary\" is required" },
		{ "{\"primary\": 1, \"keys\": []}", "\"primary\" must be" },
		{ "{\"primary\": \"k1\", \"keys\": {}}", "\"keys\" must be" },
		{ "{\"primary\": \"k1\", \"keys\": [], \"extra\": 1}",
		    "unknown field \"extra\"" },
		{ "{\"primary\": \"k1\", \"primary\": \"k2\", \"keys\": []}",
		    "duplicate key" },
		{ "{\"primary\": \"k1\", \"keys\": []}", "\"keys\" is empty" },
		{ "{\"primary\": \"k 1\", \"keys\": [{\"id\": \"k 1\", "
		    "\"key\": \"" K32 "\"}]}", "\"primary\" must be 1 to 64" },
		{ "{\"primary\": \"k1\", \"keys\": [\"k1\"]}",
		    "keys[0] must be an object" },
		{ "{\"primary\": \"k1\", \"keys\": [{\"key\": \"" K32 "\"}]}",
		    "keys[0]: field \"id\" is required" },
		{ "{\"primary\": \"k1\", \"keys\": [{\"id\": \"k1\"}]}",
		    "keys[0]: field \"key\" is required" },
		{ "{\"primary\": \"k1\", \"keys\": [{\"id\": \"k1\", \"key\": \""
		    K32 "\", \"bits\": 256}]}", "keys[0]: unknown field" },
		{ "{\"primary\": \"k1\", \"keys\": [{\"id\": \"k/1\", \"key\": \""
		    K32 "\"}]}", "keys[0]: \"id\" must be 1 to 64" },
		{ "{\"primary\": \"k1\", \"keys\": [{\"id\": \"\", \"key\": \""
		    K32 "\"}]}", "keys[0]: \"id\" must be" },
		{ "{\"primary\": \"k1\", \"keys\": [{\"id\": \"k1\", \"key\": \""
		    K32 "\"}, {\"id\": \"k1\", \"key\": \"" K16 "\"}]}",
		    "keys[1]: duplicate id \"k1\"" },
		{ "{\"primary\": \"k2\", \"keys\": [{\"id\": \"k1\", \"key\": \""
		    K32 "\"}]}", "primary key \"k2\" is not in \"keys\"" },
		/* 24 bytes: neither 16 nor 32. */
		{ "{\"primary\": \"k1\", \"keys\": [{\"id\": \"k1\", \"key\": "
		    "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}]}",
		    "exactly 16 or 32 bytes" },
		/* No padding, URL alphabet, white space, non-canonical. */
		{ "{\"primary\": \"k1\", \"keys\": [{\"id\": \"k1\", \"key\": "
		    "\"AAAAAAAAAAAAAAAAAAAAAA\"}]}", "exactly 16 or 32 bytes" },
		{ "{\"primary\": \"k1\", \"keys\": [{\"id\": \"k1\", \"key\": "
		    "\"-_AAAAAAAAAAAAAAAAAAAA==\"}]}", "exactly 16 or 32 bytes" },
		{ "{\"primary\": \"k1\", \"keys\": [{\"id\": \"k1\", \"key\": "
		    "\"AAAAAAAAAAAA AAAAAAAAA==\"}]}", "exactly 16 or 32 bytes" },
		{ "{\"primary\": \"k1\", \"keys\": [{\"id\": \"k1\", \"key\": "
		    "\"AAAAAAAAAAAAAAAAAAAAAB==\"}]}", "exactly 16 or 32 bytes" },
		{ "{\"primary\": \"k1\", \"keys\": [{\"id\": \"k1\", \"key\": "
		    "32}]}", "field \"key\" must be" },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct keyset *ks = (struct keyset *)1;
		char err[256] = "";
		int r = keyring_parse((const uint8_t *)cases[i].text,
		    strlen(cases[i].text), &ks, err, sizeof(err));

		if (r == 0 || strstr(err, cases[i].msg) == NULL ||
		    strncmp(err, "keyring.json: ", 14) != 0)
			fail_msg("case %zu: r=%d err=\"%s\", want \"%s\"", i, r,
			    err, cases[i].msg);
		assert_null(ks);
		/* Never the key text. */
		assert_null(strstr(err, "AAAAAAAA"));
	}
}

static void
test_keyring_limits(void **state)
{
	const char *ids[65];
	size_t lens[65], i;
	char names[65][8], *json, err[256];
	struct keyset *ks = NULL;

	(void)state;
	for (i = 0; i < 65; i++) {
		snprintf(names[i], sizeof(names[i]), "k%zu", i);
		ids[i] = names[i];
		lens[i] = 32;
	}
	json = tk_keyring_json("k0", ids, lens, 64);
	assert_int_equal(keyring_parse((const uint8_t *)json, strlen(json),
	    &ks, err, sizeof(err)), 0);
	assert_non_null(keyset_kek(ks, "k63", NULL));
	keyset_unref(ks);
	free(json);
	json = tk_keyring_json("k0", ids, lens, 65);
	assert_int_not_equal(keyring_parse((const uint8_t *)json, strlen(json),
	    &ks, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "more than 64 items"));
	free(json);
	/* An id of 64 characters is fine, 65 is not. */
	{
		char id[66];
		const char *one[1] = { id };
		size_t l32[1] = { 32 };

		memset(id, 'a', 64);
		id[64] = '\0';
		json = tk_keyring_json(id, one, l32, 1);
		assert_int_equal(keyring_parse((const uint8_t *)json,
		    strlen(json), &ks, err, sizeof(err)), 0);
		keyset_unref(ks);
		free(json);
		id[64] = 'a';
		id[65] = '\0';
		json = tk_keyring_json(id, one, l32, 1);
		assert_int_not_equal(keyring_parse((const uint8_t *)json,
		    strlen(json), &ks, err, sizeof(err)), 0);
		free(json);
	}
	/* Over the size limit. */
	{
		size_t big = KEYS_KEYRING_MAX + 1;
		char *b = malloc(big);

		assert_non_null(b);
		memset(b, ' ', big);
		b[0] = '{';
		b[big - 1] = '}';
		assert_int_equal(keyring_parse((const uint8_t *)b, big, &ks,
		    err, sizeof(err)), MOAT_ERR_TOOBIG);
		free(b);
	}
	assert_true(keys_id_valid("a"));
	assert_false(keys_id_valid(""));
	assert_false(keys_id_valid(NULL));
	assert_false(keys_id_valid("a b"));
	assert_false(keys_id_valid("é"));
}

/* --- the secrets directory --- */

/* Publishes a version: keyring text, signing key (+ kid), optional older
 * verification key. */
static void
publish(const char *dir, const char *keyring, EVP_PKEY *sign, const char *kid,
    EVP_PKEY *old, const char *old_kid)
{
	struct moatd_secret_file files[5];
	struct buf oldpem;
	char *pem = NULL, name[128];
	size_t pemlen = 0, n = 0;

	buf_init(&oldpem, 1 << 16);
	assert_int_equal(pki_key_pem(sign, &pem, &pemlen), 0);
	files[n++] = (struct moatd_secret_file){ "keyring.json", keyring,
	    strlen(keyring) };
	files[n++] = (struct moatd_secret_file){ "jwt-signing.pem", pem,
	    pemlen };
	files[n++] = (struct moatd_secret_file){ "jwt-signing.kid", kid,
	    strlen(kid) };
	files[n++] = (struct moatd_secret_file){ "tls.crt", "x", 1 };
	if (old != NULL) {
		assert_int_equal(pki_pubkey_pem(old, &oldpem), 0);
		snprintf(name, sizeof(name), "jwt-verify-%s.pem", old_kid);
		files[n++] = (struct moatd_secret_file){ name, oldpem.data,
		    oldpem.len };
	}
	assert_int_equal(moatd_secrets_swap(dir, files, n, 0), 0);
	pki_secret_free(pem, pemlen);
	buf_free(&oldpem);
}

/* Checks one JWK against key. */
static void
check_jwk(json_t *jwk, EVP_PKEY *key, const char *kid)
{
	uint8_t x[32], y[32], got[64];
	BIGNUM *bx = NULL, *by = NULL;
	size_t n = 0;
	const char *key_name;
	json_t *v;

	assert_true(json_is_object(jwk));
	assert_int_equal(json_object_size(jwk), 7);
	assert_string_equal(json_string_value(json_object_get(jwk, "kty")),
	    "EC");
	assert_string_equal(json_string_value(json_object_get(jwk, "crv")),
	    "P-256");
	assert_string_equal(json_string_value(json_object_get(jwk, "alg")),
	    "ES256");
	assert_string_equal(json_string_value(json_object_get(jwk, "use")),
	    "sig");
	assert_string_equal(json_string_value(json_object_get(jwk, "kid")),
	    kid);
	json_object_foreach(jwk, key_name, v)
		assert_string_not_equal(key_name, "d");
	assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X,
	    &bx), 1);
	assert_int_equal(EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y,
	    &by), 1);
	assert_int_equal(BN_bn2binpad(bx, x, 32), 32);
	assert_int_equal(BN_bn2binpad(by, y, 32), 32);
	/* 32 bytes: 43 characters, no padding. */
	v = json_object_get(jwk, "x");
	assert_int_equal(json_string_length(v), 43);
	assert_int_equal(sodium_base642bin(got, sizeof(got),
	    json_string_value(v), 43, NULL, &n, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	assert_int_equal(n, 32);
	assert_memory_equal(got, x, 32);
	v = json_object_get(jwk, "y");
	assert_int_equal(sodium_base642bin(got, sizeof(got),
	    json_string_value(v), json_string_length(v), NULL, &n, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING), 0);
	assert_int_equal(n, 32);
	assert_memory_equal(got, y, 32);
	BN_free(bx);
	BN_free(by);
}

static void
test_open_and_jwks(void **state)
{
	struct fixture *f = *state;
	static const char *const ids[] = { "k1" };
	static const size_t lens[] = { 32 };
	char *kr = tk_keyring_json("k1", ids, lens, 1), *pem = NULL;
	size_t pemlen = 0;
	EVP_PKEY *sign, *old;
	struct keys *k = NULL;
	struct keyset *ks;
	json_t *jwks, *arr;
	json_error_t jerr;

	sign = tk_ec_key(&pem, &pemlen);
	pki_secret_free(pem, pemlen);
	old = tk_ec_key(&pem, &pemlen);
	pki_secret_free(pem, pemlen);
	publish(f->dir, kr, sign, "sig-1\n", old, "sig-0");
	assert_int_equal(keys_open(&k, f->dir), 0);
	ks = keys_current(k);
	assert_string_equal(keyset_primary_kek_id(ks), "k1");
	assert_string_equal(keyset_jwt_kid(ks), "sig-1");
	assert_non_null(keyset_jwt_signing_key(ks));
	assert_int_equal(EVP_PKEY_eq(keyset_jwt_signing_key(ks), sign), 1);
	assert_int_equal(EVP_PKEY_eq(keyset_jwt_verify_key(ks, "sig-1"), sign),
	    1);
	assert_int_equal(EVP_PKEY_eq(keyset_jwt_verify_key(ks, "sig-0"), old),
	    1);
	assert_null(keyset_jwt_verify_key(ks, "sig-2"));
	jwks = json_loads(keyset_jwks_json(ks), JSON_REJECT_DUPLICATES, &jerr);
	assert_non_null(jwks);
	assert_int_equal(json_object_size(jwks), 1);
	arr = json_object_get(jwks, "keys");
	assert_int_equal(json_array_size(arr), 2);
	check_jwk(json_array_get(arr, 0), sign, "sig-1");
	check_jwk(json_array_get(arr, 1), old, "sig-0");
	json_decref(jwks);
	/* Unchanged: nothing to do. */
	assert_int_equal(keys_reload_if_changed(k), 0);
	keyset_unref(ks);
	keys_free(k);
	EVP_PKEY_free(sign);
	EVP_PKEY_free(old);
	free(kr);
}

static void
test_open_init_dir(void **state)
{
	struct fixture *f = *state;
	char data[160], secrets[192], err[256] = "";
	struct moatd_init_opts o = { .err = err, .errlen = sizeof(err) };
	struct keys *k = NULL;
	struct keyset *ks;
	json_t *jwks;

	snprintf(data, sizeof(data), "%s/data", f->root);
	assert_int_equal(moatd_init_dir(data, &o), 0);
	snprintf(secrets, sizeof(secrets), "%s/secrets", data);
	assert_int_equal(keys_open(&k, secrets), 0);
	ks = keys_current(k);
	assert_string_equal(keyset_primary_kek_id(ks), "k1");
	assert_non_null(keyset_kek(ks, "k1", NULL));
	assert_int_equal(strlen(keyset_jwt_kid(ks)), PKI_KID_LEN);
	jwks = json_loads(keyset_jwks_json(ks), 0, NULL);
	assert_int_equal(json_array_size(json_object_get(jwks, "keys")), 1);
	json_decref(jwks);
	keyset_unref(ks);
	keys_free(k);
}

static void
test_open_missing(void **state)
{
	struct fixture *f = *state;
	struct moatd_secret_file one = { "keyring.json", "{}", 2 };
	struct keys *k = (struct keys *)1;
	log_set_fd(-1);		/* the errors are expected */
	/* Empty directory: no keyring.json. */
	assert_int_equal(keys_open(&k, f->dir), MOAT_ERR_NOTFOUND);
	assert_null(k);
	assert_int_not_equal(keys_open(&k, "/nonexistent/moat-test"), 0);
	assert_int_equal(moatd_secrets_swap(f->dir, &one, 1, 0), 0);
	assert_int_not_equal(keys_open(&k, f->dir), 0);
	assert_null(k);
	log_set_fd(2);
}

static void
test_from_files_errors(void **state)
{
	static const char *const ids[] = { "k1" };
	static const size_t lens[] = { 16 };
	char *kr = tk_keyring_json("k1", ids, lens, 1), *pem = NULL, err[256];
	size_t pemlen = 0;
	EVP_PKEY *sign = tk_ec_key(&pem, &pemlen);
	struct keyset *ks = NULL;
	struct moatd_secret_file files[4] = {
		{ "keyring.json", kr, strlen(kr) },
		{ "jwt-signing.pem", pem, pemlen },
		{ "jwt-signing.kid", "a b", 3 },
		{ "jwt-verify-x.pem", "junk", 4 },
	};

	(void)state;
	assert_int_not_equal(keyset_from_files(files, 3, &ks, err,
	    sizeof(err)), 0);
	assert_non_null(strstr(err, "jwt-signing.kid"));
	files[2].data = "good";
	files[2].len = 4;
	assert_int_not_equal(keyset_from_files(files, 4, &ks, err,
	    sizeof(err)), 0);
	assert_non_null(strstr(err, "jwt-verify-x.pem"));
	files[1].data = "-----BEGIN PRIVATE KEY-----\nAAAA\n"
	    "-----END PRIVATE KEY-----\n";
	files[1].len = strlen(files[1].data);
	assert_int_not_equal(keyset_from_files(files, 3, &ks, err,
	    sizeof(err)), 0);
	assert_non_null(strstr(err, "jwt-signing.pem"));
	assert_int_not_equal(keyset_from_files(files, 1, &ks, err,
	    sizeof(err)), 0);
	assert_non_null(strstr(err, "jwt-signing.pem: missing"));
	assert_null(ks);
	pki_secret_free(pem, pemlen);
	EVP_PKEY_free(sign);
	free(kr);
}

static void
test_reload_swap(void **state)
{
	struct fixture *f = *state;
	static const char *const ids1[] = { "k1" }, *const ids2[] = { "k1",
	    "k2" };
	static const size_t lens1[] = { 32 }, lens2[] = { 32, 16 };
	char *kr1 = tk_keyring_json("k1", ids1, lens1, 1);
	char *kr2 = tk_keyring_json("k2", ids2, lens2, 2);
	char *pem = NULL;
	size_t pemlen = 0;
	EVP_PKEY *s1 = tk_ec_key(&pem, &pemlen), *s2;
	struct keys *k = NULL;
	struct keyset *old, *cur;

	pki_secret_free(pem, pemlen);
	s2 = tk_ec_key(&pem, &pemlen);
	pki_secret_free(pem, pemlen);
	publish(f->dir, kr1, s1, "j1", NULL, NULL);
	assert_int_equal(keys_open(&k, f->dir), 0);
	old = keys_current(k);

	/* A new version: new primary KEK, signing key rotated with the old
	 * one kept for verification. */
	publish(f->dir, kr2, s2, "j2", s1, "j1");
	assert_int_equal(keys_reload_if_changed(k), 1);
	assert_int_equal(keys_reload_if_changed(k), 0);
	cur = keys_current(k);
	assert_string_equal(keyset_primary_kek_id(cur), "k2");
	assert_string_equal(keyset_jwt_kid(cur), "j2");
	assert_non_null(keyset_jwt_verify_key(cur, "j1"));
	assert_non_null(keyset_kek(cur, "k1", NULL));
	/* The snapshot taken before is unchanged and still usable. */
	assert_string_equal(keyset_primary_kek_id(old), "k1");
	assert_null(keyset_kek(old, "k2", NULL));
	assert_string_equal(keyset_jwt_kid(old), "j1");
	keyset_unref(old);
	keyset_unref(cur);

	/* A bad version (broken keyring) keeps the current keys, and says
	 * so every time it is asked without reloading. */
	{
		const char *bad = "{\"primary\": \"k9\", \"keys\": []}";
		struct moatd_secret_file fb = { "keyring.json", bad,
		    strlen(bad) };
		assert_int_equal(moatd_secrets_swap(f->dir, &fb, 1,
		    MOATD_SECRETS_KEEP), 0);
	}
	log_set_fd(-1);		/* quiet: the warning is expected */
	assert_true(keys_reload_if_changed(k) < 0);
	assert_true(keys_reload_if_changed(k) < 0);
	log_set_fd(2);
	cur = keys_current(k);
	assert_string_equal(keyset_primary_kek_id(cur), "k2");
	assert_string_equal(keyset_jwt_kid(cur), "j2");
	keyset_unref(cur);

	/* A bad signing key: also refused. */
	{
		struct moatd_secret_file fb[2] = {
			{ "keyring.json", kr1, strlen(kr1) },
			{ "jwt-signing.pem", "nope", 4 },
		};
		assert_int_equal(moatd_secrets_swap(f->dir, fb, 2,
		    MOATD_SECRETS_KEEP), 0);
	}
	log_set_fd(-1);
	assert_true(keys_reload_if_changed(k) < 0);
	log_set_fd(2);
	cur = keys_current(k);
	assert_string_equal(keyset_primary_kek_id(cur), "k2");
	keyset_unref(cur);

	/* Fixed: picked up. */
	publish(f->dir, kr1, s1, "j1", NULL, NULL);
	assert_int_equal(keys_reload_if_changed(k), 1);
	cur = keys_current(k);
	assert_string_equal(keyset_primary_kek_id(cur), "k1");
	assert_null(keyset_kek(cur, "k2", NULL));
	assert_string_equal(keyset_jwt_kid(cur), "j1");
	assert_null(keyset_jwt_verify_key(cur, "j2"));
	keyset_unref(cur);
	keys_free(k);
	EVP_PKEY_free(s1);
	EVP_PKEY_free(s2);
	free(kr1);
	free(kr2);
}

/* A directory without the Kubernetes layout: plain files, edited in
 * place (renamed over), are noticed by their identity. */
static void
test_reload_plain_dir(void **state)
{
	struct fixture *f = *state;
	static const char *const ids[] = { "a", "b" };
	static const size_t lens[] = { 16, 32 };
	char *kr1 = tk_keyring_json("a", ids, lens, 2);
	char *kr2 = tk_keyring_json("b", ids, lens, 2);
	char *pem = NULL, path[256], tmp[256];
	size_t pemlen = 0;
	EVP_PKEY *s = tk_ec_key(&pem, &pemlen);
	struct keys *k = NULL;
	struct keyset *cur;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/jwt-signing.pem", f->dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fwrite(pem, 1, pemlen, fp);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/jwt-signing.kid", f->dir);
	fp = fopen(path, "w");
	fputs("plain\n", fp);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/keyring.json", f->dir);
	fp = fopen(path, "w");
	fputs(kr1, fp);
	fclose(fp);
	assert_int_equal(keys_open(&k, f->dir), 0);
	assert_int_equal(keys_reload_if_changed(k), 0);
	snprintf(tmp, sizeof(tmp), "%s/keyring.json.new", f->dir);
	fp = fopen(tmp, "w");
	fputs(kr2, fp);
	fclose(fp);
	assert_int_equal(rename(tmp, path), 0);
	assert_int_equal(keys_reload_if_changed(k), 1);
	cur = keys_current(k);
	assert_string_equal(keyset_primary_kek_id(cur), "b");
	keyset_unref(cur);
	keys_free(k);
	pki_secret_free(pem, pemlen);
	EVP_PKEY_free(s);
	free(kr1);
	free(kr2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keyring_ok),
		cmocka_unit_test(test_keyring_errors),
		cmocka_unit_test(test_keyring_limits),
		cmocka_unit_test(test_from_files_errors),
		cmocka_unit_test_setup_teardown(test_open_and_jwks, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_init_dir, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_open_missing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reload_swap, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reload_plain_dir, setup,
		    teardown),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
