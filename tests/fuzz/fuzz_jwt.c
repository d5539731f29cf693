/*
 * fuzz_jwt.c - libFuzzer target for JWT verification (identity/jwt.c) with
 * a fixed key set (a fixed test key, kid "fz") at a fixed time.
 *
 * Two modes, chosen by the first byte:
 *   0x01  the rest is "HEADER\nPAYLOAD" (JSON texts); the target signs them
 *         with the fixed key (ES256, as a forger with the key would) and
 *         verifies the token, which drives the header and claim checks
 *         past the signature;
 *   else  the whole input is a token.
 * An accepted token must have exactly the properties jwt.h promises.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <sodium.h>

#include "identity/jwt.h"
#include "secrets/keys.h"
#include "secrets/secretdir.h"

#define FZ_NOW 1800000000LL
#define FZ_B64 sodium_base64_VARIANT_URLSAFE_NO_PADDING

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A test key, used only here. */
static const char fz_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgm67JD1uFmuY9OH4c\n"
    "eDM1qDdtdOXPPUQc5Wv/WuglLXKhRANCAAQ1epiG4/EAJyLSMCQynx0hzFnd+gge\n"
    "ZD/5sV04y3f3A9MLOYcyiejvVE6ohq0RnPMsKmAbub38hbcTCsp1v/td\n"
    "-----END PRIVATE KEY-----\n";
static const char fz_keyring[] = "{\"primary\": \"k1\", \"keys\": [{\"id\": "
    "\"k1\", \"key\": \"AQEBAQEBAQEBAQEBAQEBAQ==\"}]}";

static struct keyset *
fz_keyset(void)
{
	static struct keyset *ks;	/* built once, kept for the run */
	const struct moatd_secret_file files[] = {
		{ "keyring.json", fz_keyring, sizeof(fz_keyring) - 1 },
		{ "jwt-signing.pem", fz_pem, sizeof(fz_pem) - 1 },
		{ "jwt-signing.kid", "fz", 2 },
	};
	char err[256];

	if (ks == NULL && keyset_from_files(files, 3, &ks, err,
	    sizeof(err)) != 0)
		__builtin_trap();
	return ks;
}

static int
fz_b64(char **p, size_t *off, size_t cap, const void *d, size_t n)
{
	if (*off + sodium_base64_ENCODED_LEN(n, FZ_B64) > cap)
		return -1;
	sodium_bin2base64(*p + *off, cap - *off, d, n, FZ_B64);
	*off += strlen(*p + *off);
	return 0;
}

/* header.payload.signature, signed with the fixed key; caller frees. */
static char *
fz_sign(const uint8_t *hdr, size_t hl, const uint8_t *pl, size_t pll)
{
	EVP_PKEY *key = keyset_jwt_signing_key(fz_keyset());
	size_t cap = 2 * (hl + pll) + 256, off = 0, dlen;
	unsigned char der[80], raw[64];
	const unsigned char *dp = der;
	const BIGNUM *r, *s;
	EVP_MD_CTX *md = NULL;
	ECDSA_SIG *sig = NULL;
	char *t = malloc(cap);

	if (t == NULL)
		return NULL;
	if (fz_b64(&t, &off, cap, hdr, hl) != 0)
		goto fail;
	t[off++] = '.';
	if (fz_b64(&t, &off, cap, pl, pll) != 0)
		goto fail;
	dlen = sizeof(der);
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(md, der, &dlen, (unsigned char *)t, off) != 1 ||
	    (sig = d2i_ECDSA_SIG(NULL, &dp, (long)dlen)) == NULL)
		goto fail;
	ECDSA_SIG_get0(sig, &r, &s);
	if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32)
	    != 32)
		goto fail;
	t[off++] = '.';
	if (fz_b64(&t, &off, cap, raw, sizeof(raw)) != 0)
		goto fail;
	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(sig);
	return t;
fail:
	EVP_MD_CTX_free(md);
	ECDSA_SIG_free(sig);
	free(t);
	return NULL;
}

static void
fz_check_accepted(const json_t *c)
{
	json_t *v;

	if (!json_is_object(c))
		__builtin_trap();
	v = json_object_get(c, "exp");
	if (!json_is_integer(v) || json_integer_value(v) <= FZ_NOW -
	    JWT_LEEWAY_S)
		__builtin_trap();
	if ((v = json_object_get(c, "nbf")) != NULL && (!json_is_integer(v) ||
	    json_integer_value(v) > FZ_NOW + JWT_LEEWAY_S))
		__builtin_trap();
	if ((v = json_object_get(c, "iat")) != NULL && (!json_is_integer(v) ||
	    json_integer_value(v) > FZ_NOW + JWT_LEEWAY_S))
		__builtin_trap();
	if (!json_is_string(json_object_get(c, "iss")) ||
	    strcmp(json_string_value(json_object_get(c, "iss")), "moat") != 0)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keyset *ks = fz_keyset();
	json_t *claims = NULL;
	char err[256], *tok = NULL;
	int r;

	if (size > 0 && data[0] == 0x01) {
		const uint8_t *nl = memchr(data + 1, '\n', size - 1);

		if (nl == NULL || size > 2 * JWT_MAX_LEN)
			return 0;
		tok = fz_sign(data + 1, (size_t)(nl - data - 1), nl + 1,
		    size - (size_t)(nl + 1 - data));
	} else {
		if ((tok = malloc(size + 1)) != NULL) {
			memcpy(tok, data, size);
			tok[size] = '\0';
		}
	}
	if (tok == NULL)
		return 0;
	err[0] = '\0';
	r = jwt_verify(ks, tok, FZ_NOW, &claims, err, sizeof(err));
	if (r == 0) {
		fz_check_accepted(claims);
		/* The header must have been exactly what jwt.h says. */
		if (strlen(tok) > JWT_MAX_LEN)
			__builtin_trap();
	} else if (r != MOAT_ERR_PERM || claims != NULL || err[0] == '\0') {
		__builtin_trap();
	}
	json_decref(claims);
	free(tok);
	return 0;
}
