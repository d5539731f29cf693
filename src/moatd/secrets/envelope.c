/*
 * envelope.c - envelope encryption of sensitive values with AES-GCM over
 * OpenSSL EVP (see envelope.h for the scheme and the sealed form).
 *
 * Sealed string, parsed strictly and within ENVELOPE_MAX_SEALED bytes:
 *   "v1" "." kek-id "." wrapped "." wrap-nonce "." nonce "." ciphertext
 * Every part after the id is unpadded canonical base64url of an exact length
 * (wrapped: 32-byte DEK + 16-byte tag; nonces: 12 bytes; ciphertext: value +
 * 16-byte tag). KEK ids may contain '.', so the id is what lies between the
 * "v1." prefix and the last four parts.
 *
 * The DEK is AES-256-GCM; the KEK wraps it with AES-128-GCM or AES-256-GCM
 * depending on its length. DEKs and decrypted values are wiped after use.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "secrets/envelope.h"

#define ENV_DEK_LEN	32
#define ENV_TAG_LEN	16
#define ENV_NONCE_LEN	12
#define ENV_WRAP_LEN	(ENV_DEK_LEN + ENV_TAG_LEN)
#define ENV_B64V	sodium_base64_VARIANT_URLSAFE_NO_PADDING
/* Unpadded base64url lengths of the fixed parts. */
#define ENV_WRAP_B64	64
#define ENV_NONCE_B64	16
#define ENV_AAD_PREFIX	"moat-v1"

/* A parsed sealed value. Pointers into the sealed string are borrowed. */
struct env_parts {
	char kek[KEYS_ID_MAX + 1];
	uint8_t wrapped[ENV_WRAP_LEN];
	uint8_t wnonce[ENV_NONCE_LEN];
	uint8_t nonce[ENV_NONCE_LEN];
	const char *tail;	/* "<nonce>.<ciphertext>" in the string */
	size_t tail_len;
	uint8_t *ct;		/* ciphertext + tag, owned */
	size_t ct_len;
};

static void
env_parts_free(struct env_parts *p)
{
	free(p->ct);
	p->ct = NULL;
}

/* Decodes exactly want bytes of canonical unpadded base64url. */
static int
env_b64_exact(const char *s, size_t slen, uint8_t *out, size_t want)
{
	size_t n = 0;

	if (slen != sodium_base64_ENCODED_LEN(want, ENV_B64V) - 1)
		return MOAT_ERR_PARSE;
	if (sodium_base642bin(out, want, s, slen, NULL, &n, NULL, ENV_B64V)
	    != 0 || n != want)
		return MOAT_ERR_PARSE;
	return 0;
}

/* Finds the last '.' in s[0..len), or NULL. */
static const char *
env_last_dot(const char *s, size_t len)
{
	while (len > 0) {
		len--;
		if (s[len] == '.')
			return s + len;
	}
	return NULL;
}

static int
env_parse(const char *sealed, struct env_parts *p)
{
	const char *end, *dots[4], *kek;
	size_t n, klen, ctb64, i;
	int r = MOAT_ERR_PARSE;

	memset(p, 0, sizeof(*p));
	if (sealed == NULL)
		goto out;
	n = strnlen(sealed, ENVELOPE_MAX_SEALED + 1);
	if (n > ENVELOPE_MAX_SEALED || n < 3 || memcmp(sealed, "v1.", 3) != 0)
		goto out;
	end = sealed + n;
	/* dots[0] is the last '.', dots[3] the one after the id. */
	for (i = 0; i < 4; i++) {
		dots[i] = env_last_dot(sealed + 3, (size_t)((i == 0 ? end :
		    dots[i - 1]) - (sealed + 3)));
		if (dots[i] == NULL)
			goto out;
	}
	kek = sealed + 3;
	klen = (size_t)(dots[3] - kek);
	if (klen == 0 || klen > KEYS_ID_MAX)
		goto out;
	memcpy(p->kek, kek, klen);
	p->kek[klen] = '\0';
	if (!keys_id_valid(p->kek))
		goto out;
	if (env_b64_exact(dots[3] + 1, (size_t)(dots[2] - dots[3] - 1),
	    p->wrapped, ENV_WRAP_LEN) != 0 ||
	    env_b64_exact(dots[2] + 1, (size_t)(dots[1] - dots[2] - 1),
	    p->wnonce, ENV_NONCE_LEN) != 0 ||
	    env_b64_exact(dots[1] + 1, (size_t)(dots[0] - dots[1] - 1),
	    p->nonce, ENV_NONCE_LEN) != 0)
		goto out;
	ctb64 = (size_t)(end - dots[0] - 1);
	/* At least the tag; b64 of k bytes is never 1 mod 4 in length. */
	if (ctb64 < sodium_base64_ENCODED_LEN(ENV_TAG_LEN, ENV_B64V) - 1 ||
	    ctb64 % 4 == 1)
		goto out;
	p->ct_len = ctb64 / 4 * 3 + (ctb64 % 4 == 0 ? 0 : ctb64 % 4 - 1);
	r = MOAT_ERR_NOMEM;
	if ((p->ct = malloc(p->ct_len)) == NULL)
		goto out;
	r = MOAT_ERR_PARSE;
	if (env_b64_exact(dots[0] + 1, ctb64, p->ct, p->ct_len) != 0)
		goto out;
	p->tail = dots[1] + 1;
	p->tail_len = (size_t)(end - p->tail);
	r = 0;
out:
	if (r != 0)
		env_parts_free(p);
	return r;
}

static const EVP_CIPHER *
env_cipher(size_t keylen)
{
	if (keylen == 16)
		return EVP_aes_128_gcm();
	if (keylen == 32)
		return EVP_aes_256_gcm();
	return NULL;
}

/* AES-GCM: out receives len bytes of ciphertext then the 16-byte tag. */
static int
env_gcm_seal(const uint8_t *key, size_t keylen,
    const uint8_t nonce[ENV_NONCE_LEN], const uint8_t *aad, size_t aadlen,
    const uint8_t *in, size_t len, uint8_t *out)
{
	const EVP_CIPHER *c = env_cipher(keylen);
	EVP_CIPHER_CTX *ctx = NULL;
	int n, r = MOAT_ERR_CRYPTO;

	if (c == NULL || len > INT_MAX || aadlen > INT_MAX)
		goto out;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(ctx, c, NULL, key, nonce) != 1)
		goto out;
	if (aadlen > 0 &&
	    EVP_EncryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto out;
	if (len > 0 && (EVP_EncryptUpdate(ctx, out, &n, in, (int)len) != 1 ||
	    (size_t)n != len))
		goto out;
	if (EVP_EncryptFinal_ex(ctx, out + len, &n) != 1 || n != 0)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, ENV_TAG_LEN,
	    out + len) != 1)
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (r != 0)
		ERR_clear_error();
	return r;
}

/* AES-GCM open of in[0..len) (ciphertext + tag) into out (len - 16 bytes);
 * MOAT_ERR_CRYPTO when the tag does not verify. */
static int
env_gcm_open(const uint8_t *key, size_t keylen,
    const uint8_t nonce[ENV_NONCE_LEN], const uint8_t *aad, size_t aadlen,
    const uint8_t *in, size_t len, uint8_t *out)
{
	const EVP_CIPHER *c = env_cipher(keylen);
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t tag[ENV_TAG_LEN];
	size_t clen;
	int n, r = MOAT_ERR_CRYPTO;

	if (c == NULL || len < ENV_TAG_LEN || len > INT_MAX ||
	    aadlen > INT_MAX)
		goto out;
	clen = len - ENV_TAG_LEN;
	memcpy(tag, in + clen, ENV_TAG_LEN);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(ctx, c, NULL, key, nonce) != 1)
		goto out;
	if (aadlen > 0 &&
	    EVP_DecryptUpdate(ctx, NULL, &n, aad, (int)aadlen) != 1)
		goto out;
	if (clen > 0 && (EVP_DecryptUpdate(ctx, out, &n, in, (int)clen) != 1 ||
	    (size_t)n != clen))
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, ENV_TAG_LEN, tag)
	    != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, out + clen, &n) != 1)
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	if (r != 0) {
		OPENSSL_cleanse(out, len >= ENV_TAG_LEN ? len - ENV_TAG_LEN : 0);
		ERR_clear_error();
	}
	return r;
}

/* "moat-v1\0" coll "\0" id "\0" field; caller frees. */
static uint8_t *
env_aad(const char *coll, const char *id, const char *field, size_t *len)
{
	size_t pl = sizeof(ENV_AAD_PREFIX), cl = strlen(coll) + 1;
	size_t il = strlen(id) + 1, fl = strlen(field);
	uint8_t *a;

	if ((a = malloc(pl + cl + il + fl + 1)) == NULL)
		return NULL;
	memcpy(a, ENV_AAD_PREFIX, pl);
	memcpy(a + pl, coll, cl);
	memcpy(a + pl + cl, id, il);
	memcpy(a + pl + cl + il, field, fl);
	*len = pl + cl + il + fl;
	return a;
}

/* Appends "<b64url of data>" to out at *off (space checked by callers). */
static void
env_put_b64(char *out, size_t outlen, size_t *off, const uint8_t *data,
    size_t len)
{
	sodium_bin2base64(out + *off, outlen - *off, data, len, ENV_B64V);
	*off += strlen(out + *off);
}

static void
env_put(char *out, size_t *off, const char *s, size_t len)
{
	memcpy(out + *off, s, len);
	*off += len;
}

/* Wraps dek under the primary KEK and writes the sealed string, its last
 * two parts being tail (already encoded) or nonce + ct. Caller frees *out. */
static int
env_compose(const struct keyset *ks, const uint8_t dek[ENV_DEK_LEN],
    const char *tail, size_t tail_len, const uint8_t *nonce,
    const uint8_t *ct, size_t ct_len, char **out)
{
	const char *kid = keyset_primary_kek_id(ks);
	const uint8_t *kek;
	uint8_t wrapped[ENV_WRAP_LEN], wnonce[ENV_NONCE_LEN];
	size_t klen = 0, total, off = 0;
	char *s = NULL;
	int r = MOAT_ERR_NOTFOUND;

	*out = NULL;
	if (kid == NULL || (kek = keyset_kek(ks, kid, &klen)) == NULL)
		goto out;
	r = MOAT_ERR_CRYPTO;
	if (RAND_bytes(wnonce, sizeof(wnonce)) != 1)
		goto out;
	if ((r = env_gcm_seal(kek, klen, wnonce, (const uint8_t *)kid,
	    strlen(kid), dek, ENV_DEK_LEN, wrapped)) != 0)
		goto out;
	total = 3 + strlen(kid) + 1 + ENV_WRAP_B64 + 1 + ENV_NONCE_B64 + 1;
	total += tail != NULL ? tail_len : ENV_NONCE_B64 + 1 +
	    sodium_base64_ENCODED_LEN(ct_len, ENV_B64V) - 1;
	r = MOAT_ERR_TOOBIG;
	if (total > ENVELOPE_MAX_SEALED)
		goto out;
	r = MOAT_ERR_NOMEM;
	if ((s = malloc(total + 1)) == NULL)
		goto out;
	env_put(s, &off, "v1.", 3);
	env_put(s, &off, kid, strlen(kid));
	env_put(s, &off, ".", 1);
	env_put_b64(s, total + 1, &off, wrapped, sizeof(wrapped));
	env_put(s, &off, ".", 1);
	env_put_b64(s, total + 1, &off, wnonce, sizeof(wnonce));
	env_put(s, &off, ".", 1);
	if (tail != NULL)
		env_put(s, &off, tail, tail_len);
	else {
		env_put_b64(s, total + 1, &off, nonce, ENV_NONCE_LEN);
		env_put(s, &off, ".", 1);
		env_put_b64(s, total + 1, &off, ct, ct_len);
	}
	s[off] = '\0';
	r = off == total ? 0 : MOAT_ERR_CRYPTO;
	if (r == 0) {
		*out = s;
		s = NULL;
	}
out:
	free(s);
	return r;
}

int
envelope_seal(const struct keyset *ks, const char *coll, const char *id,
    const char *field, const uint8_t *plain, size_t len, char **out)
{
	uint8_t dek[ENV_DEK_LEN], nonce[ENV_NONCE_LEN];
	uint8_t *aad = NULL, *ct = NULL;
	size_t aadlen = 0;
	int r = MOAT_ERR_INVAL;

	if (out != NULL)
		*out = NULL;
	if (ks == NULL || coll == NULL || id == NULL || field == NULL ||
	    out == NULL || (plain == NULL && len > 0))
		return MOAT_ERR_INVAL;
	if (len > ENVELOPE_MAX_PLAIN)
		return MOAT_ERR_TOOBIG;
	r = MOAT_ERR_CRYPTO;
	if (RAND_bytes(dek, sizeof(dek)) != 1 ||
	    RAND_bytes(nonce, sizeof(nonce)) != 1)
		goto out;
	r = MOAT_ERR_NOMEM;
	if ((aad = env_aad(coll, id, field, &aadlen)) == NULL ||
	    (ct = malloc(len + ENV_TAG_LEN)) == NULL)
		goto out;
	if ((r = env_gcm_seal(dek, sizeof(dek), nonce, aad, aadlen, plain, len,
	    ct)) != 0)
		goto out;
	r = env_compose(ks, dek, NULL, 0, nonce, ct, len + ENV_TAG_LEN, out);
out:
	OPENSSL_cleanse(dek, sizeof(dek));
	free(aad);
	free(ct);
	return r;
}

/* Unwraps p's DEK into dek with the KEK it names. */
static int
env_unwrap(const struct keyset *ks, const struct env_parts *p,
    uint8_t dek[ENV_DEK_LEN])
{
	const uint8_t *kek;
	size_t klen = 0;

	if ((kek = keyset_kek(ks, p->kek, &klen)) == NULL)
		return MOAT_ERR_NOTFOUND;
	return env_gcm_open(kek, klen, p->wnonce, (const uint8_t *)p->kek,
	    strlen(p->kek), p->wrapped, sizeof(p->wrapped), dek);
}

int
envelope_open(const struct keyset *ks, const char *coll, const char *id,
    const char *field, const char *sealed, uint8_t **plain, size_t *len)
{
	struct env_parts p;
	uint8_t dek[ENV_DEK_LEN], *aad = NULL, *pt = NULL;
	size_t aadlen = 0, ptlen = 0;
	int r = MOAT_ERR_INVAL;

	memset(&p, 0, sizeof(p));
	if (plain != NULL)
		*plain = NULL;
	if (len != NULL)
		*len = 0;
	if (ks == NULL || coll == NULL || id == NULL || field == NULL ||
	    plain == NULL || len == NULL)
		goto out;
	if ((r = env_parse(sealed, &p)) != 0)
		goto out;
	if ((r = env_unwrap(ks, &p, dek)) != 0)
		goto out;
	ptlen = p.ct_len - ENV_TAG_LEN;
	r = MOAT_ERR_NOMEM;
	if ((aad = env_aad(coll, id, field, &aadlen)) == NULL ||
	    (pt = malloc(ptlen + 1)) == NULL)
		goto out;
	if ((r = env_gcm_open(dek, sizeof(dek), p.nonce, aad, aadlen, p.ct,
	    p.ct_len, pt)) != 0)
		goto out;
	pt[ptlen] = '\0';
	*plain = pt;
	*len = ptlen;
	pt = NULL;
	r = 0;
out:
	OPENSSL_cleanse(dek, sizeof(dek));
	if (pt != NULL)
		envelope_free(pt, ptlen);
	free(aad);
	env_parts_free(&p);
	return r;
}

int
envelope_rewrap(const struct keyset *ks, const char *sealed, char **out)
{
	struct env_parts p;
	uint8_t dek[ENV_DEK_LEN];
	const char *primary;
	int r = MOAT_ERR_INVAL;

	memset(&p, 0, sizeof(p));
	if (out != NULL)
		*out = NULL;
	if (ks == NULL || out == NULL ||
	    (primary = keyset_primary_kek_id(ks)) == NULL)
		goto out;
	if ((r = env_parse(sealed, &p)) != 0)
		goto out;
	if (strcmp(p.kek, primary) == 0) {
		r = 0;		/* already under the primary */
		goto out;
	}
	if ((r = env_unwrap(ks, &p, dek)) != 0)
		goto out;
	r = env_compose(ks, dek, p.tail, p.tail_len, NULL, NULL, 0, out);
out:
	OPENSSL_cleanse(dek, sizeof(dek));
	env_parts_free(&p);
	return r;
}

int
envelope_kek_id(const char *sealed, char *out, size_t outlen)
{
	struct env_parts p;
	size_t n;
	int r;

	if (out == NULL || outlen == 0)
		return MOAT_ERR_INVAL;
	out[0] = '\0';
	if ((r = env_parse(sealed, &p)) != 0)
		return r;
	n = strlen(p.kek);
	env_parts_free(&p);
	if (n + 1 > outlen)
		return MOAT_ERR_TOOBIG;
	memcpy(out, p.kek, n + 1);
	return 0;
}

void
envelope_free(uint8_t *plain, size_t len)
{
	if (plain == NULL)
		return;
	OPENSSL_cleanse(plain, len + 1);
	free(plain);
}
