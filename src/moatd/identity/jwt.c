/*
 * jwt.c - ES256 JSON Web Tokens over cjose (see jwt.h).
 *
 * cjose signs and verifies the signature; everything else about an incoming
 * token is checked here first, on our own strict decoding, because cjose
 * 0.6 is lenient where a verifier must not be:
 *   - it parses the header with jansson's defaults (duplicate keys allowed,
 *     the last one wins) and accepts any header field;
 *   - its ES256 check splits the signature in two halves of whatever length
 *     it has, so an r||s padded with leading zeros (66, 68... bytes) still
 *     verifies: a second encoding of the same token;
 *   - cjose_jws_import() leaks the JWS when the header has no "alg".
 * So before cjose sees a token: at most JWT_MAX_LEN bytes, exactly three
 * canonical unpadded base64url parts; a header that is a JSON object without
 * duplicate keys holding only "alg" (exactly "ES256"), "typ" (exactly "JWT"
 * when present) and "kid" (a key id the snapshot knows); a signature of
 * exactly 64 bytes. Only then is the signature verified, and only then are
 * the claims parsed (again strictly) and checked.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>
#include <sodium.h>

#include "identity/jwt.h"
#include "secrets/keys_int.h"

#define JWT_B64V	sodium_base64_VARIANT_URLSAFE_NO_PADDING
#define JWT_SIG_LEN	64
#define JWT_ISSUER	"moat"

int
jwt_sign(const struct keyset *ks, const json_t *claims, int64_t now,
    char **out)
{
	const cjose_jwk_t *jwk;
	const char *kid, *ser = NULL;
	cjose_header_t *hdr = NULL;
	cjose_jws_t *jws = NULL;
	cjose_err cerr;
	json_t *c = NULL;
	char *payload = NULL;
	int r = MOAT_ERR_INVAL;

	if (out != NULL)
		*out = NULL;
	if (ks == NULL || out == NULL || !json_is_object(claims) ||
	    !json_is_integer(json_object_get(claims, "exp")))
		goto out;
	r = MOAT_ERR_NOTFOUND;
	if ((jwk = keyset__jwt_sign_jwk(ks)) == NULL ||
	    (kid = keyset_jwt_kid(ks)) == NULL)
		goto out;
	r = MOAT_ERR_NOMEM;
	if ((c = json_deep_copy(claims)) == NULL ||
	    json_object_set_new(c, "iss", json_string(JWT_ISSUER)) != 0 ||
	    json_object_set_new(c, "iat", json_integer(now)) != 0 ||
	    (payload = json_dumps(c, JSON_COMPACT)) == NULL)
		goto out;
	if ((hdr = cjose_header_new(&cerr)) == NULL ||
	    !cjose_header_set(hdr, CJOSE_HDR_ALG, CJOSE_HDR_ALG_ES256, &cerr) ||
	    !cjose_header_set(hdr, "typ", "JWT", &cerr) ||
	    !cjose_header_set(hdr, CJOSE_HDR_KID, kid, &cerr))
		goto out;
	r = MOAT_ERR_CRYPTO;
	if ((jws = cjose_jws_sign(jwk, hdr, (const uint8_t *)payload,
	    strlen(payload), &cerr)) == NULL ||
	    !cjose_jws_export(jws, &ser, &cerr) || ser == NULL)
		goto out;
	r = MOAT_ERR_TOOBIG;
	if (strlen(ser) > JWT_MAX_LEN)
		goto out;
	r = MOAT_ERR_NOMEM;
	if ((*out = strdup(ser)) == NULL)
		goto out;
	r = 0;
out:
	cjose_jws_release(jws);
	cjose_header_release(hdr);
	json_decref(c);
	free(payload);
	return r;
}

/* Decodes one part strictly into a new buffer (caller frees). */
static uint8_t *
jwt_b64(const char *s, size_t len, size_t *out_len)
{
	size_t max = len / 4 * 3 + 3, n = 0;
	uint8_t *b;

	if (len % 4 == 1 || (b = malloc(max + 1)) == NULL)
		return NULL;
	if (sodium_base642bin(b, max, s, len, NULL, &n, NULL, JWT_B64V) != 0) {
		free(b);
		return NULL;
	}
	b[n] = '\0';
	*out_len = n;
	return b;
}

/* Parses a decoded part as one JSON object, strictly. */
static json_t *
jwt_json(const uint8_t *b, size_t len)
{
	json_t *v = json_loadb((const char *)b, len, JSON_REJECT_DUPLICATES,
	    NULL);

	if (v != NULL && !json_is_object(v)) {
		json_decref(v);
		v = NULL;
	}
	return v;
}

/* Checks the header; *jwk is the key its kid names. */
static int
jwt_check_header(const struct keyset *ks, const json_t *h,
    const cjose_jwk_t **jwk, char *err, size_t errlen)
{
	const char *key, *alg, *typ, *kid;
	json_t *v;

	json_object_foreach((json_t *)h, key, v) {
		if (strcmp(key, "alg") != 0 && strcmp(key, "typ") != 0 &&
		    strcmp(key, "kid") != 0)
			return moat_fail(MOAT_ERR_PERM, err, errlen, "header has a field other "
			    "than alg, typ and kid");
	}
	v = json_object_get(h, "alg");
	if (v == NULL)
		return moat_fail(MOAT_ERR_PERM, err, errlen, "header has no alg");
	alg = json_string_value(v);
	if (alg == NULL || json_string_length(v) != 5 ||
	    strcmp(alg, "ES256") != 0)
		return moat_fail(MOAT_ERR_PERM, err, errlen, "alg is not ES256");
	v = json_object_get(h, "typ");
	if (v != NULL && ((typ = json_string_value(v)) == NULL ||
	    json_string_length(v) != 3 || strcmp(typ, "JWT") != 0))
		return moat_fail(MOAT_ERR_PERM, err, errlen, "typ is not JWT");
	v = json_object_get(h, "kid");
	if (v == NULL)
		return moat_fail(MOAT_ERR_PERM, err, errlen, "header has no kid");
	kid = json_string_value(v);
	if (kid == NULL || strlen(kid) != json_string_length(v) ||
	    !keys_id_valid(kid))
		return moat_fail(MOAT_ERR_PERM, err, errlen, "kid is malformed");
	if ((*jwk = keyset__jwt_verify_jwk(ks, kid)) == NULL)
		return moat_fail(MOAT_ERR_PERM, err, errlen, "kid %s is not a known key", kid);
	return 0;
}

/* An integer claim into *v: 1 present, 0 absent, -1 of another type. */
static int
jwt_int_claim(const json_t *c, const char *name, long long *v)
{
	json_t *j = json_object_get(c, name);

	if (j == NULL)
		return 0;
	if (!json_is_integer(j))
		return -1;
	*v = json_integer_value(j);
	return 1;
}

static int
jwt_check_claims(const json_t *c, int64_t now, char *err, size_t errlen)
{
	const char *iss;
	long long exp = 0, nbf = 0, iat = 0;
	int p;

	if ((p = jwt_int_claim(c, "exp", &exp)) < 0)
		return moat_fail(MOAT_ERR_PERM, err, errlen, "exp is not an integer");
	if (p == 0)
		return moat_fail(MOAT_ERR_PERM, err, errlen, "token has no exp");
	if (now - JWT_LEEWAY_S >= exp)
		return moat_fail(MOAT_ERR_PERM, err, errlen, "token expired");
	if ((p = jwt_int_claim(c, "nbf", &nbf)) < 0)
		return moat_fail(MOAT_ERR_PERM, err, errlen, "nbf is not an integer");
	if (p > 0 && nbf > now + JWT_LEEWAY_S)
		return moat_fail(MOAT_ERR_PERM, err, errlen, "token not valid yet (nbf)");
	if ((p = jwt_int_claim(c, "iat", &iat)) < 0)
		return moat_fail(MOAT_ERR_PERM, err, errlen, "iat is not an integer");
	if (p > 0 && iat > now + JWT_LEEWAY_S)
		return moat_fail(MOAT_ERR_PERM, err, errlen, "token issued in the future (iat)");
	iss = json_string_value(json_object_get(c, "iss"));
	if (iss == NULL || strcmp(iss, JWT_ISSUER) != 0 ||
	    json_string_length(json_object_get(c, "iss")) != strlen(JWT_ISSUER))
		return moat_fail(MOAT_ERR_PERM, err, errlen, "iss is not moat");
	return 0;
}

int
jwt_verify(const struct keyset *ks, const char *token, int64_t now,
    json_t **claims, char *err, size_t errlen)
{
	const cjose_jwk_t *jwk = NULL;
	const char *d1, *d2;
	uint8_t *hb = NULL, *pb = NULL, *sb = NULL, *plain = NULL;
	size_t n, i, hl = 0, pl = 0, sl = 0, plain_len = 0;
	cjose_jws_t *jws = NULL;
	cjose_err cerr;
	json_t *h = NULL, *c = NULL;
	int r = MOAT_ERR_PERM, dots = 0;

	if (claims != NULL)
		*claims = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (ks == NULL || claims == NULL) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen, "no key set");
		goto out;
	}
	if (token == NULL) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen, "no token");
		goto out;
	}
	n = strnlen(token, JWT_MAX_LEN + 1);
	if (n > JWT_MAX_LEN) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen, "token longer than %d bytes",
		    JWT_MAX_LEN);
		goto out;
	}
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)token[i];
		if (ch == '.')
			dots++;
		else if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')
		    || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_')) {
			r = moat_fail(MOAT_ERR_PERM, err, errlen, "token has a character "
			    "outside base64url");
			goto out;
		}
	}
	if (dots != 2) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen, "token is not three parts");
		goto out;
	}
	d1 = strchr(token, '.');
	d2 = strchr(d1 + 1, '.');
	if ((hb = jwt_b64(token, (size_t)(d1 - token), &hl)) == NULL ||
	    (pb = jwt_b64(d1 + 1, (size_t)(d2 - d1 - 1), &pl)) == NULL ||
	    (sb = jwt_b64(d2 + 1, n - (size_t)(d2 + 1 - token), &sl)) == NULL) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen, "token part is not canonical "
		    "base64url");
		goto out;
	}
	if ((h = jwt_json(hb, hl)) == NULL) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen, "header is not a JSON object");
		goto out;
	}
	if ((r = jwt_check_header(ks, h, &jwk, err, errlen)) != 0)
		goto out;
	if (sl != JWT_SIG_LEN) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen, "signature is not 64 bytes");
		goto out;
	}
	/* The header passed: now cjose verifies the signature. */
	if ((jws = cjose_jws_import(token, n, &cerr)) == NULL) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen, "token refused by the JWS parser");
		goto out;
	}
	if (!cjose_jws_verify(jws, jwk, &cerr)) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen, "bad signature");
		goto out;
	}
	if (!cjose_jws_get_plaintext(jws, &plain, &plain_len, &cerr) ||
	    plain_len != pl || memcmp(plain, pb, pl) != 0) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen, "payload mismatch");
		goto out;
	}
	if ((c = jwt_json(pb, pl)) == NULL) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen, "claims are not a JSON object");
		goto out;
	}
	if ((r = jwt_check_claims(c, now, err, errlen)) != 0)
		goto out;
	*claims = c;
	c = NULL;
	r = 0;
out:
	cjose_jws_release(jws);
	json_decref(h);
	json_decref(c);
	free(hb);
	free(pb);
	free(sb);
	return r;
}
