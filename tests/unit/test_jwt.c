/*
 * test_jwt.c - unit tests for ES256 JWTs (identity/jwt.c): a round trip,
 * then each attack a verifier must refuse, with tokens forged here with
 * OpenSSL directly: alg "none", HS256 keyed with the public key, other
 * algs, missing/unknown kid, a token signed by another key under a known
 * kid, expired and not-yet-valid tokens, a bad or re-encoded signature,
 * duplicate header keys, garbage and oversized input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sodium.h>

#include "identity/jwt.h"
#include "secrets/keys.h"
#include "secrets/keys_int.h"
#include "testkeys.h"

#define NOW 1800000000LL
#define B64V sodium_base64_VARIANT_URLSAFE_NO_PADDING

struct fx {
	EVP_PKEY *k1, *k2, *other;	/* k1 signs (kid j1); k2 older (j0) */
	struct keyset *ks;
};

static int
setup(void **state)
{
	static const char *const ids[] = { "k1" };
	static const size_t lens[] = { 32 };
	struct fx *f = calloc(1, sizeof(*f));
	char *pem = NULL, *kr;
	size_t len = 0;

	f->k1 = tk_ec_key(&pem, &len);
	pki_secret_free(pem, len);
	f->k2 = tk_ec_key(&pem, &len);
	pki_secret_free(pem, len);
	f->other = tk_ec_key(&pem, &len);
	pki_secret_free(pem, len);
	kr = tk_keyring_json("k1", ids, lens, 1);
	f->ks = tk_keyset(kr, f->k1, "j1", f->k2, "j0");
	free(kr);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	keyset_unref(f->ks);
	EVP_PKEY_free(f->k1);
	EVP_PKEY_free(f->k2);
	EVP_PKEY_free(f->other);
	free(f);
	return 0;
}

static void
b64(struct buf *b, const void *p, size_t n)
{
	char *s = malloc(sodium_base64_ENCODED_LEN(n, B64V));

	sodium_bin2base64(s, sodium_base64_ENCODED_LEN(n, B64V), p, n, B64V);
	assert_int_equal(buf_append_str(b, s), 0);
	free(s);
}

/* header.payload, both given as JSON text. */
static void
signing_input(struct buf *b, const char *hdr, const char *payload)
{
	buf_init(b, 1 << 20);
	b64(b, hdr, strlen(hdr));
	assert_int_equal(buf_append_str(b, "."), 0);
	b64(b, payload, strlen(payload));
}

/* An ES256 token signed by key with OpenSSL; r and s are each written on
 * 32 + pad bytes (pad > 0: a non-canonical, zero-padded encoding). */
static char *
forge(EVP_PKEY *key, const char *hdr, const char *payload, int pad)
{
	struct buf b;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char der[128], raw[2 * (32 + 8)];
	const unsigned char *p = der;
	size_t dlen = sizeof(der), half = 32 + (size_t)pad;
	const BIGNUM *r, *s;
	ECDSA_SIG *sig;

	signing_input(&b, hdr, payload);
	assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key),
	    1);
	assert_int_equal(EVP_DigestSign(md, der, &dlen, b.data, b.len), 1);
	EVP_MD_CTX_free(md);
	sig = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
	assert_non_null(sig);
	ECDSA_SIG_get0(sig, &r, &s);
	assert_int_equal(BN_bn2binpad(r, raw, (int)half), (int)half);
	assert_int_equal(BN_bn2binpad(s, raw + half, (int)half), (int)half);
	ECDSA_SIG_free(sig);
	assert_int_equal(buf_append_str(&b, "."), 0);
	b64(&b, raw, 2 * half);
	return buf_steal(&b, NULL);
}

/* An HS256 token keyed with secret. */
static char *
forge_hs256(const void *secret, size_t slen, const char *hdr,
    const char *payload)
{
	struct buf b;
	unsigned char mac[32];
	unsigned int mlen = 0;

	signing_input(&b, hdr, payload);
	assert_non_null(HMAC(EVP_sha256(), secret, (int)slen, b.data, b.len,
	    mac, &mlen));
	assert_int_equal(buf_append_str(&b, "."), 0);
	b64(&b, mac, mlen);
	return buf_steal(&b, NULL);
}

static char *
payload_exp(long long exp)
{
	char *p = malloc(128);

	snprintf(p, 128, "{\"sub\":\"u1\",\"iss\":\"moat\",\"exp\":%lld}", exp);
	return p;
}

#define HDR_OK "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"j1\"}"

/* Verifies and expects a refusal. */
static void
refused(const struct keyset *ks, const char *tok, const char *why)
{
	json_t *c = (json_t *)1;
	char err[256] = "";
	int r = jwt_verify(ks, tok, NOW, &c, err, sizeof(err));

	if (r != MOAT_ERR_PERM)
		fail_msg("%s: accepted (r=%d)", why, r);
	assert_null(c);
	assert_true(err[0] != '\0');
}

static void
accepted(const struct keyset *ks, const char *tok, const char *why)
{
	json_t *c = NULL;
	char err[256] = "";

	if (jwt_verify(ks, tok, NOW, &c, err, sizeof(err)) != 0)
		fail_msg("%s: refused: %s", why, err);
	assert_true(json_is_object(c));
	json_decref(c);
}

static void
test_round_trip(void **state)
{
	struct fx *f = *state;
	json_t *claims = json_pack("{s:s, s:s, s:I}", "sub", "u1", "sid", "s1",
	    "exp", (json_int_t)(NOW + 300)), *got = NULL, *h;
	char *tok = NULL, err[256] = "", *hdr;
	size_t hl = 0;

	assert_int_equal(jwt_sign(f->ks, claims, NOW, &tok), 0);
	assert_true(strlen(tok) <= JWT_MAX_LEN);
	assert_int_equal(jwt_verify(f->ks, tok, NOW, &got, err, sizeof(err)),
	    0);
	assert_string_equal(json_string_value(json_object_get(got, "sub")),
	    "u1");
	assert_string_equal(json_string_value(json_object_get(got, "sid")),
	    "s1");
	assert_string_equal(json_string_value(json_object_get(got, "iss")),
	    "moat");
	assert_int_equal(json_integer_value(json_object_get(got, "iat")), NOW);
	json_decref(got);
	/* The header is exactly alg, typ, kid. */
	hdr = malloc(strlen(tok));
	assert_int_equal(sodium_base642bin((unsigned char *)hdr, strlen(tok),
	    tok, (size_t)(strchr(tok, '.') - tok), NULL, &hl, NULL, B64V), 0);
	h = json_loadb(hdr, hl, 0, NULL);
	assert_non_null(h);
	assert_int_equal(json_object_size(h), 3);
	assert_string_equal(json_string_value(json_object_get(h, "alg")),
	    "ES256");
	assert_string_equal(json_string_value(json_object_get(h, "typ")),
	    "JWT");
	assert_string_equal(json_string_value(json_object_get(h, "kid")),
	    "j1");
	json_decref(h);
	free(hdr);
	/* Verifiable with the public key as OpenSSL sees it. */
	{
		const char *d2 = strrchr(tok, '.');
		unsigned char raw[64], der[80], *dp = der;
		size_t rl = 0;
		ECDSA_SIG *sig = ECDSA_SIG_new();
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		int dl;

		assert_int_equal(sodium_base642bin(raw, sizeof(raw), d2 + 1,
		    strlen(d2 + 1), NULL, &rl, NULL, B64V), 0);
		assert_int_equal(rl, 64);
		ECDSA_SIG_set0(sig, BN_bin2bn(raw, 32, NULL),
		    BN_bin2bn(raw + 32, 32, NULL));
		dl = i2d_ECDSA_SIG(sig, &dp);
		assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(),
		    NULL, f->k1), 1);
		assert_int_equal(EVP_DigestVerify(md, der, (size_t)dl,
		    (const unsigned char *)tok, (size_t)(d2 - tok)), 1);
		EVP_MD_CTX_free(md);
		ECDSA_SIG_free(sig);
	}
	free(tok);
	/* exp is required when signing; claims must be an object. */
	json_object_del(claims, "exp");
	assert_int_equal(jwt_sign(f->ks, claims, NOW, &tok), MOAT_ERR_INVAL);
	assert_null(tok);
	json_decref(claims);
}

static void
test_forged_ok(void **state)
{
	struct fx *f = *state;
	char *p = payload_exp(NOW + 60), *t;

	/* Our forging helper makes tokens the verifier accepts ... */
	t = forge(f->k1, HDR_OK, p, 0);
	accepted(f->ks, t, "forged with k1");
	free(t);
	/* ... without typ ... */
	t = forge(f->k1, "{\"alg\":\"ES256\",\"kid\":\"j1\"}", p, 0);
	accepted(f->ks, t, "no typ");
	free(t);
	/* ... and signed by the older key under its own kid. */
	t = forge(f->k2, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"j0\"}", p,
	    0);
	accepted(f->ks, t, "older key j0");
	free(t);
	free(p);
}

static void
test_alg_attacks(void **state)
{
	struct fx *f = *state;
	static const char *const bad_hdrs[] = {
		"{\"alg\":\"none\",\"typ\":\"JWT\",\"kid\":\"j1\"}",
		"{\"alg\":\"None\",\"typ\":\"JWT\",\"kid\":\"j1\"}",
		"{\"alg\":\"HS256\",\"typ\":\"JWT\",\"kid\":\"j1\"}",
		"{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"j1\"}",
		"{\"alg\":\"ES384\",\"typ\":\"JWT\",\"kid\":\"j1\"}",
		"{\"alg\":\"es256\",\"typ\":\"JWT\",\"kid\":\"j1\"}",
		"{\"alg\":\"ES256 \",\"typ\":\"JWT\",\"kid\":\"j1\"}",
		"{\"alg\":[\"ES256\"],\"typ\":\"JWT\",\"kid\":\"j1\"}",
		"{\"typ\":\"JWT\",\"kid\":\"j1\"}",
		"{\"alg\":\"ES256\",\"typ\":\"jwt\",\"kid\":\"j1\"}",
		"{\"alg\":\"ES256\",\"typ\":1,\"kid\":\"j1\"}",
		/* kid problems */
		"{\"alg\":\"ES256\",\"typ\":\"JWT\"}",
		"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"j9\"}",
		"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"\"}",
		"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":1}",
		"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"k1\"}",
		/* duplicate keys: cjose alone would take the last */
		"{\"alg\":\"none\",\"alg\":\"ES256\",\"typ\":\"JWT\","
		    "\"kid\":\"j1\"}",
		"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"j9\","
		    "\"kid\":\"j1\"}",
		/* extra fields (key URLs, embedded keys, crit) */
		"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"j1\","
		    "\"jku\":\"https://evil.example/jwks\"}",
		"{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"j1\","
		    "\"crit\":[\"exp\"]}",
		"[\"ES256\"]",
		"not json",
	};
	char *p = payload_exp(NOW + 60), *t;
	size_t i;

	/* Every bad header, validly signed by the real key. */
	for (i = 0; i < sizeof(bad_hdrs) / sizeof(bad_hdrs[0]); i++) {
		t = forge(f->k1, bad_hdrs[i], p, 0);
		refused(f->ks, t, bad_hdrs[i]);
		free(t);
	}
	/* alg none with an empty signature. */
	{
		struct buf b;

		signing_input(&b, "{\"alg\":\"none\",\"typ\":\"JWT\","
		    "\"kid\":\"j1\"}", p);
		assert_int_equal(buf_append_str(&b, "."), 0);
		refused(f->ks, buf_cstr(&b), "alg none, empty signature");
		buf_free(&b);
	}
	/* HS256 keyed with the public key (PEM, and the raw point). */
	{
		struct buf pub;
		uint8_t point[65];
		size_t pl = 0;

		buf_init(&pub, 1 << 16);
		assert_int_equal(pki_pubkey_pem(f->k1, &pub), 0);
		t = forge_hs256(pub.data, pub.len, "{\"alg\":\"HS256\","
		    "\"typ\":\"JWT\",\"kid\":\"j1\"}", p);
		refused(f->ks, t, "HS256 with the PEM public key");
		free(t);
		assert_int_equal(EVP_PKEY_get_octet_string_param(f->k1,
		    OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point), &pl), 1);
		t = forge_hs256(point, pl, "{\"alg\":\"HS256\","
		    "\"typ\":\"JWT\",\"kid\":\"j1\"}", p);
		refused(f->ks, t, "HS256 with the raw public key");
		free(t);
		/* Same MAC, but the header claims ES256. */
		t = forge_hs256(pub.data, pub.len, HDR_OK, p);
		refused(f->ks, t, "HMAC under an ES256 header");
		free(t);
		buf_free(&pub);
	}
	free(p);
}

static void
test_wrong_key(void **state)
{
	struct fx *f = *state;
	char *p = payload_exp(NOW + 60), *t;

	/* Another key claiming the signing kid, or the older one's. */
	t = forge(f->other, HDR_OK, p, 0);
	refused(f->ks, t, "other key, kid j1");
	free(t);
	t = forge(f->other, "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":"
	    "\"j0\"}", p, 0);
	refused(f->ks, t, "other key, kid j0");
	free(t);
	/* The older key under the signing key's kid. */
	t = forge(f->k2, HDR_OK, p, 0);
	refused(f->ks, t, "k2 under kid j1");
	free(t);
	free(p);
}

static void
test_time_claims(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *payload;
		bool ok;
	} cases[] = {
		{ "{\"iss\":\"moat\",\"exp\":1800000060}", true },
		{ "{\"iss\":\"moat\",\"exp\":1799999990}", true },  /* leeway */
		{ "{\"iss\":\"moat\",\"exp\":1799999970}", false }, /* expired */
		{ "{\"iss\":\"moat\",\"exp\":1000}", false },
		{ "{\"iss\":\"moat\"}", false },			/* no exp */
		{ "{\"iss\":\"moat\",\"exp\":\"1800000060\"}", false },
		{ "{\"iss\":\"moat\",\"exp\":1800000060.5}", false },
		{ "{\"iss\":\"moat\",\"exp\":-9223372036854775808}", false },
		{ "{\"iss\":\"moat\",\"exp\":9223372036854775807}", true },
		{ "{\"iss\":\"moat\",\"exp\":1800000060,\"nbf\":1800000010}",
		    true },
		{ "{\"iss\":\"moat\",\"exp\":1800000060,\"nbf\":1800000031}",
		    false },
		{ "{\"iss\":\"moat\",\"exp\":1800000060,\"nbf\":\"0\"}", false },
		{ "{\"iss\":\"moat\",\"exp\":1800000060,\"iat\":1800000031}",
		    false },
		{ "{\"iss\":\"moat\",\"exp\":1800000060,\"iat\":1799999000}",
		    true },
		{ "{\"iss\":\"other\",\"exp\":1800000060}", false },
		{ "{\"iss\":\"moat \",\"exp\":1800000060}", false },
		{ "{\"exp\":1800000060}", false },			/* no iss */
		{ "{\"iss\":\"moat\",\"exp\":1800000060,\"exp\":1800000060}",
		    false },
		{ "[1800000060]", false },
		{ "", false },
		{ "{\"iss\":\"moat\",\"exp\":1800000060} x", false },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *t = forge(f->k1, HDR_OK, cases[i].payload, 0);

		if (cases[i].ok)
			accepted(f->ks, t, cases[i].payload);
		else
			refused(f->ks, t, cases[i].payload);
		free(t);
	}
}

static void
test_signature_encoding(void **state)
{
	struct fx *f = *state;
	char *p = payload_exp(NOW + 60), *t, *u;
	size_t n;

	/* r||s zero-padded to 33 bytes each: the same signature, encoded
	 * otherwise. Refused by us ... */
	t = forge(f->k1, HDR_OK, p, 1);
	refused(f->ks, t, "66-byte signature");
	/* ... while cjose alone accepts it: the reason for our checks. */
	{
		cjose_jws_t *jws = cjose_jws_import(t, strlen(t), NULL);

		assert_non_null(jws);
		assert_true(cjose_jws_verify(jws,
		    keyset__jwt_verify_jwk(f->ks, "j1"), NULL));
		cjose_jws_release(jws);
	}
	free(t);
	/* Every change of the signature part is refused. */
	t = forge(f->k1, HDR_OK, p, 0);
	accepted(f->ks, t, "forged");
	n = strlen(t);
	for (size_t i = (size_t)(strrchr(t, '.') - t) + 1; i < n; i++) {
		u = strdup(t);
		u[i] = u[i] == 'A' ? 'B' : 'A';
		refused(f->ks, u, "flipped signature");
		free(u);
	}
	/* Truncated, extended, padded. */
	u = strndup(t, n - 1);
	refused(f->ks, u, "truncated");
	free(u);
	u = malloc(n + 3);
	snprintf(u, n + 3, "%s==", t);
	refused(f->ks, u, "padding");
	snprintf(u, n + 3, "%sAA", t);
	refused(f->ks, u, "longer signature");
	free(u);
	/* A flipped payload byte. */
	u = strdup(t);
	u[strchr(t, '.') - t + 3] ^= 1;
	refused(f->ks, u, "flipped payload");
	free(u);
	free(t);
	free(p);
}

static void
test_garbage(void **state)
{
	struct fx *f = *state;
	static const char *const junk[] = {
		"", ".", "..", "...", "a", "a.b", "a.b.c", "a.b.c.d",
		"eyJhbGciOiJFUzI1NiJ9", "Bearer x.y.z", "e30.e30.",
		"eyJhbGciOiJFUzI1NiJ9.e30.\n", "e30 .e30.e30",
	};
	char *big, *p = payload_exp(NOW + 60), *t;
	size_t i;

	for (i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		refused(f->ks, junk[i], junk[i]);
	refused(f->ks, NULL, "NULL");
	/* Oversized, even when otherwise valid. */
	big = malloc(JWT_MAX_LEN + 100);
	snprintf(big, JWT_MAX_LEN + 100, "{\"iss\":\"moat\",\"exp\":%lld,"
	    "\"pad\":\"%0*d\"}", NOW + 60, JWT_MAX_LEN, 0);
	t = forge(f->k1, HDR_OK, big, 0);
	assert_true(strlen(t) > JWT_MAX_LEN);
	{
		json_t *c = NULL;
		char err[256] = "";

		assert_int_equal(jwt_verify(f->ks, t, NOW, &c, err,
		    sizeof(err)), MOAT_ERR_PERM);
		assert_non_null(strstr(err, "longer"));
	}
	free(t);
	free(big);
	/* A keyring-only snapshot signs and verifies nothing. */
	{
		static const char *const ids[] = { "k1" };
		static const size_t lens[] = { 16 };
		char *kr = tk_keyring_json("k1", ids, lens, 1), err[256];
		struct keyset *ko = NULL;
		json_t *cl = json_pack("{s:I}", "exp", (json_int_t)NOW);
		char *tok = NULL;

		assert_int_equal(keyring_parse((const uint8_t *)kr, strlen(kr),
		    &ko, err, sizeof(err)), 0);
		t = forge(f->k1, HDR_OK, p, 0);
		refused(ko, t, "no JWT keys");
		free(t);
		assert_int_equal(jwt_sign(ko, cl, NOW, &tok), MOAT_ERR_NOTFOUND);
		json_decref(cl);
		keyset_unref(ko);
		free(kr);
	}
	free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_forged_ok, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_alg_attacks, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_time_claims, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_signature_encoding, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_garbage, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
