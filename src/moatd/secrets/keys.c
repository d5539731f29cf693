/*
 * keys.c - moatd's live key material: the KEK keyring and the JWT keys read
 * from the secrets directory, held as reference-counted immutable snapshots
 * and reloaded when the directory changes (see keys.h).
 *
 * Loading reads every file through one directory descriptor opened on
 * "..data" (when the directory has one), so a version is read whole even if
 * the kubelet swaps "..data" half-way: the files all come from the version
 * the descriptor points at. Change detection compares a fingerprint: the
 * "..data" target plus the identity (device, inode, size, mtime) of every
 * file that matters, which also covers directories without the Kubernetes
 * layout. The fingerprint's "..data" target is read before the descriptor is
 * opened, so a swap between the two can only cause one extra reload, never a
 * missed one.
 *
 * Key bytes live in sodium_malloc() memory (locked, guarded, wiped when
 * freed); file contents that held keys are wiped before they are freed.
 * Errors name the file and the reason, never key bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "secrets/keys.h"
#include "secrets/keys_int.h"
#include "secrets/secretdir.h"

#define KEYS_KID_FILE_MAX	128
#define KEYS_FP_MAX		(64 * 1024)
#define KEYS_VERIFY_PREFIX	"jwt-verify-"
#define KEYS_VERIFY_SUFFIX	".pem"

struct keyset_kek {
	char id[KEYS_ID_MAX + 1];
	size_t len;			/* 16 or 32 */
	uint8_t key[32];
};

struct keyset_jwt {
	char kid[KEYS_ID_MAX + 1];
	EVP_PKEY *pub;			/* public half only */
	cjose_jwk_t *jwk;		/* public JWK */
};

struct keyset {
	atomic_int refs;
	struct keyset_kek *keks;	/* sodium_malloc'd, nkeks entries */
	size_t nkeks;
	size_t primary;			/* index into keks */
	EVP_PKEY *sign;			/* NULL in a keyring-only snapshot */
	cjose_jwk_t *sign_jwk;
	struct keyset_jwt *jwts;	/* jwts[0] is the signing key's */
	size_t njwts;
	char *jwks;			/* public JWK Set text */
};

struct keys {
	char *dir;
	pthread_mutex_t mu;		/* guards cur */
	pthread_mutex_t reload_mu;	/* one reload at a time; guards below */
	struct keyset *cur;
	char *fp;			/* fingerprint of cur's version */
	char *failed_fp;		/* last refused version (logged once) */
	int failed_err;
};

bool
keys_id_valid(const char *s)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i >= KEYS_ID_MAX)
			return false;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return i > 0;
}

/* --- snapshots --- */

static struct keyset *
keyset_new(void)
{
	struct keyset *ks = calloc(1, sizeof(*ks));

	if (ks != NULL)
		atomic_init(&ks->refs, 1);
	return ks;
}

static void
keyset_free(struct keyset *ks)
{
	size_t i;

	if (ks == NULL)
		return;
	if (ks->keks != NULL)
		sodium_free(ks->keks);	/* wipes */
	EVP_PKEY_free(ks->sign);
	if (ks->sign_jwk != NULL)
		cjose_jwk_release(ks->sign_jwk);
	for (i = 0; i < ks->njwts; i++) {
		EVP_PKEY_free(ks->jwts[i].pub);
		if (ks->jwts[i].jwk != NULL)
			cjose_jwk_release(ks->jwts[i].jwk);
	}
	free(ks->jwts);
	free(ks->jwks);
	free(ks);
}

void
keyset_unref(struct keyset *ks)
{
	if (ks == NULL)
		return;
	if (atomic_fetch_sub_explicit(&ks->refs, 1, memory_order_acq_rel) == 1)
		keyset_free(ks);
}

static struct keyset *
keyset_ref(struct keyset *ks)
{
	atomic_fetch_add_explicit(&ks->refs, 1, memory_order_relaxed);
	return ks;
}

const char *
keyset_primary_kek_id(const struct keyset *ks)
{
	if (ks == NULL || ks->nkeks == 0)
		return NULL;
	return ks->keks[ks->primary].id;
}

const uint8_t *
keyset_kek(const struct keyset *ks, const char *id, size_t *len)
{
	size_t i;

	if (ks == NULL || id == NULL)
		return NULL;
	for (i = 0; i < ks->nkeks; i++)
		if (strcmp(ks->keks[i].id, id) == 0) {
			if (len != NULL)
				*len = ks->keks[i].len;
			return ks->keks[i].key;
		}
	return NULL;
}

const char *
keyset_jwt_kid(const struct keyset *ks)
{
	if (ks == NULL || ks->sign == NULL || ks->njwts == 0)
		return NULL;
	return ks->jwts[0].kid;
}

EVP_PKEY *
keyset_jwt_signing_key(const struct keyset *ks)
{
	return ks != NULL ? ks->sign : NULL;
}

static const struct keyset_jwt *
keyset_find_jwt(const struct keyset *ks, const char *kid)
{
	size_t i;

	if (ks == NULL || kid == NULL)
		return NULL;
	for (i = 0; i < ks->njwts; i++)
		if (strcmp(ks->jwts[i].kid, kid) == 0)
			return &ks->jwts[i];
	return NULL;
}

EVP_PKEY *
keyset_jwt_verify_key(const struct keyset *ks, const char *kid)
{
	const struct keyset_jwt *j = keyset_find_jwt(ks, kid);

	return j != NULL ? j->pub : NULL;
}

const char *
keyset_jwks_json(const struct keyset *ks)
{
	return ks != NULL ? ks->jwks : NULL;
}

const cjose_jwk_t *
keyset__jwt_sign_jwk(const struct keyset *ks)
{
	return ks != NULL ? ks->sign_jwk : NULL;
}

const cjose_jwk_t *
keyset__jwt_verify_jwk(const struct keyset *ks, const char *kid)
{
	const struct keyset_jwt *j = keyset_find_jwt(ks, kid);

	return j != NULL ? j->jwk : NULL;
}

/* --- keyring.json --- */

/* Decodes standard base64 (with padding, canonical, no white space) of
 * exactly 16 or 32 bytes into out. */
static int
keys_b64_key(const char *s, size_t slen, uint8_t out[32], size_t *len)
{
	size_t n = 0;

	if (slen != 24 && slen != 44)
		return MOAT_ERR_PARSE;
	if (sodium_base642bin(out, 32, s, slen, NULL, &n, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 || (n != 16 && n != 32)) {
		sodium_memzero(out, 32);
		return MOAT_ERR_PARSE;
	}
	*len = n;
	return 0;
}

/* Overwrites the bytes of a jansson string in place (it held key text). */
static void
keys_wipe_jstr(json_t *v)
{
	if (json_is_string(v) && json_string_length(v) > 0)
		OPENSSL_cleanse((char *)(uintptr_t)json_string_value(v),
		    json_string_length(v));
}

int
keyring_parse(const uint8_t *data, size_t len, struct keyset **out,
    char *err, size_t errlen)
{
	static const struct json_field top[] = {
		{ "primary", JF_STRING, true, KEYS_ID_MAX, 0, 0 },
		{ "keys", JF_ARRAY, true, KEYS_MAX_KEKS, 0, 0 },
	};
	static const struct json_field entry[] = {
		{ "id", JF_STRING, true, KEYS_ID_MAX, 0, 0 },
		{ "key", JF_STRING, true, 64, 0, 0 },
		{ "created", JF_STRING, false, 64, 0, 0 },
	};
	struct keyset *ks = NULL;
	json_t *root = NULL, *keys, *e;
	const char *primary;
	char jerr[160];
	size_t i, j, n;
	bool have_primary = false;
	int r = MOAT_ERR_PARSE;

	*out = NULL;
	moat_errf(err, errlen, "keyring.json: invalid");
	if (data == NULL) {
		moat_errf(err, errlen, "keyring.json: empty");
		goto out;
	}
	if ((r = json_parse_object(data, len, KEYS_KEYRING_MAX, &root, jerr,
	    sizeof(jerr))) != 0) {
		moat_errf(err, errlen, "keyring.json: %s", jerr);
		goto out;
	}
	r = MOAT_ERR_PARSE;
	if (json_check_fields(root, top, 2, jerr, sizeof(jerr)) != 0) {
		moat_errf(err, errlen, "keyring.json: %s", jerr);
		goto out;
	}
	primary = json_get_str(root, "primary");
	keys = json_object_get(root, "keys");
	n = json_array_size(keys);
	if (!keys_id_valid(primary)) {
		moat_errf(err, errlen, "keyring.json: \"primary\" must be 1 to "
		    "%d characters of A-Z a-z 0-9 . _ -", KEYS_ID_MAX);
		goto out;
	}
	if (n == 0) {
		moat_errf(err, errlen, "keyring.json: \"keys\" is empty");
		goto out;
	}
	r = MOAT_ERR_NOMEM;
	if (sodium_init() < 0 || (ks = keyset_new()) == NULL ||
	    (ks->keks = sodium_malloc(n * sizeof(*ks->keks))) == NULL) {
		moat_errf(err, errlen, "keyring.json: out of memory");
		goto out;
	}
	sodium_memzero(ks->keks, n * sizeof(*ks->keks));
	r = MOAT_ERR_PARSE;
	json_array_foreach(keys, i, e) {
		struct keyset_kek *kk = &ks->keks[i];
		const char *id, *key;

		if (!json_is_object(e)) {
			moat_errf(err, errlen, "keyring.json: keys[%zu] must "
			    "be an object", i);
			goto out;
		}
		if (json_check_fields(e, entry, 3, jerr, sizeof(jerr)) != 0) {
			moat_errf(err, errlen, "keyring.json: keys[%zu]: %s",
			    i, jerr);
			goto out;
		}
		id = json_get_str(e, "id");
		key = json_get_str(e, "key");
		if (!keys_id_valid(id)) {
			moat_errf(err, errlen, "keyring.json: keys[%zu]: \"id\" "
			    "must be 1 to %d characters of A-Z a-z 0-9 . _ -",
			    i, KEYS_ID_MAX);
			goto out;
		}
		for (j = 0; j < i; j++)
			if (strcmp(ks->keks[j].id, id) == 0) {
				moat_errf(err, errlen, "keyring.json: keys[%zu]:"
				    " duplicate id \"%s\"", i, id);
				goto out;
			}
		memcpy(kk->id, id, strlen(id) + 1);
		if (keys_b64_key(key, json_string_length(json_object_get(e,
		    "key")), kk->key, &kk->len) != 0) {
			moat_errf(err, errlen, "keyring.json: key \"%s\": \"key\""
			    " must be standard base64 of exactly 16 or 32 bytes",
			    id);
			goto out;
		}
		ks->nkeks = i + 1;
		if (strcmp(id, primary) == 0) {
			ks->primary = i;
			have_primary = true;
		}
	}
	if (!have_primary) {
		moat_errf(err, errlen, "keyring.json: primary key \"%s\" is not "
		    "in \"keys\"", primary);
		goto out;
	}
	*out = ks;
	ks = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	r = 0;
out:
	if (root != NULL) {
		json_array_foreach(json_object_get(root, "keys"), i, e)
			keys_wipe_jstr(json_object_get(e, "key"));
		json_decref(root);
	}
	keyset_unref(ks);
	OPENSSL_cleanse(jerr, sizeof(jerr));
	return r;
}

/* --- JWT keys --- */

static int
keys_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static bool
keys_is_p256(EVP_PKEY *pk)
{
	char grp[64];
	size_t glen = 0;

	if (!EVP_PKEY_is_a(pk, "EC"))
		return false;
	if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, grp,
	    sizeof(grp), &glen) != 1)
		return false;
	return strcmp(grp, "prime256v1") == 0 || strcmp(grp, "P-256") == 0;
}

/* A PEM private key (or, when allow_pub, a public key). */
static EVP_PKEY *
keys_pem_key(const void *data, size_t len, bool allow_pub, bool *is_priv)
{
	EVP_PKEY *pk = NULL;
	BIO *b;

	*is_priv = false;
	if (len == 0 || len > KEYS_PEM_MAX)
		return NULL;
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL)
		return NULL;
	pk = PEM_read_bio_PrivateKey(b, NULL, keys_no_passphrase, NULL);
	if (pk != NULL)
		*is_priv = true;
	else if (allow_pub) {
		(void)BIO_reset(b);
		pk = PEM_read_bio_PUBKEY(b, NULL, keys_no_passphrase, NULL);
	}
	BIO_free(b);
	ERR_clear_error();	/* leave no parse errors for the next user */
	return pk;
}

/* A copy of pk with its public half only. */
static EVP_PKEY *
keys_public_only(EVP_PKEY *pk)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	EVP_PKEY *pub = NULL;
	int n;

	n = i2d_PUBKEY(pk, &der);
	if (n <= 0)
		return NULL;
	p = der;
	pub = d2i_PUBKEY(NULL, &p, n);
	OPENSSL_free(der);
	return pub;
}

static int
keys_bn_param(EVP_PKEY *pk, const char *name, uint8_t out[32])
{
	BIGNUM *bn = NULL;
	int r = MOAT_ERR_CRYPTO;

	if (EVP_PKEY_get_bn_param(pk, name, &bn) != 1)
		goto out;
	if (BN_bn2binpad(bn, out, 32) != 32)
		goto out;
	r = 0;
out:
	BN_clear_free(bn);
	return r;
}

/* Builds the cjose JWK of pk (with the private scalar when priv). */
static cjose_jwk_t *
keys_cjose_jwk(EVP_PKEY *pk, bool priv, const char *kid)
{
	uint8_t x[32], y[32], d[32];
	cjose_jwk_ec_keyspec spec;
	cjose_jwk_t *jwk = NULL;
	cjose_err cerr;

	memset(&spec, 0, sizeof(spec));
	if (keys_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, x) != 0 ||
	    keys_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, y) != 0)
		goto out;
	if (priv && keys_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, d) != 0)
		goto out;
	spec.crv = CJOSE_JWK_EC_P_256;
	spec.x = x;
	spec.xlen = sizeof(x);
	spec.y = y;
	spec.ylen = sizeof(y);
	if (priv) {
		spec.d = d;
		spec.dlen = sizeof(d);
	}
	jwk = cjose_jwk_create_EC_spec(&spec, &cerr);
	if (jwk != NULL && !cjose_jwk_set_kid(jwk, kid, strlen(kid), &cerr)) {
		cjose_jwk_release(jwk);
		jwk = NULL;
	}
out:
	OPENSSL_cleanse(d, sizeof(d));
	return jwk;
}

/* Adds pk (public half) under kid to ks->jwts. */
static int
keys_add_jwt(struct keyset *ks, EVP_PKEY *pk, const char *kid)
{
	struct keyset_jwt *j;

	j = &ks->jwts[ks->njwts];
	memset(j, 0, sizeof(*j));
	memcpy(j->kid, kid, strlen(kid) + 1);
	if ((j->pub = keys_public_only(pk)) == NULL)
		return MOAT_ERR_CRYPTO;
	if ((j->jwk = keys_cjose_jwk(j->pub, false, kid)) == NULL) {
		EVP_PKEY_free(j->pub);
		j->pub = NULL;
		return MOAT_ERR_CRYPTO;
	}
	ks->njwts++;
	return 0;
}

static int
keys_build_jwks(struct keyset *ks)
{
	json_t *root = NULL, *arr, *k;
	uint8_t x[32], y[32];
	char xs[sodium_base64_ENCODED_LEN(32,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char ys[sizeof(xs)];
	size_t i;
	int r = MOAT_ERR_NOMEM;

	if ((root = json_object()) == NULL || (arr = json_array()) == NULL ||
	    json_object_set_new(root, "keys", arr) != 0)
		goto out;
	for (i = 0; i < ks->njwts; i++) {
		r = MOAT_ERR_CRYPTO;
		if (keys_bn_param(ks->jwts[i].pub, OSSL_PKEY_PARAM_EC_PUB_X,
		    x) != 0 || keys_bn_param(ks->jwts[i].pub,
		    OSSL_PKEY_PARAM_EC_PUB_Y, y) != 0)
			goto out;
		sodium_bin2base64(xs, sizeof(xs), x, sizeof(x),
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		sodium_bin2base64(ys, sizeof(ys), y, sizeof(y),
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		r = MOAT_ERR_NOMEM;
		k = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
		    "kty", "EC", "crv", "P-256", "x", xs, "y", ys,
		    "kid", ks->jwts[i].kid, "alg", "ES256", "use", "sig");
		if (k == NULL || json_array_append_new(arr, k) != 0)
			goto out;
	}
	if ((ks->jwks = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER))
	    == NULL)
		goto out;
	r = 0;
out:
	json_decref(root);
	return r;
}

static const struct moatd_secret_file *
keys_file(const struct moatd_secret_file *files, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (files[i].name != NULL && strcmp(files[i].name, name) == 0)
			return &files[i];
	return NULL;
}

/* The kid in a "jwt-verify-KID.pem" name, copied into kid; false when the
 * name is not one (true with kid[0] == '\0' when the kid is invalid). */
static bool
keys_verify_name(const char *name, char kid[KEYS_ID_MAX + 1])
{
	size_t pl = strlen(KEYS_VERIFY_PREFIX), sl = strlen(KEYS_VERIFY_SUFFIX);
	size_t n = strlen(name), kl;

	kid[0] = '\0';
	if (n <= pl + sl || strncmp(name, KEYS_VERIFY_PREFIX, pl) != 0 ||
	    strcmp(name + n - sl, KEYS_VERIFY_SUFFIX) != 0)
		return false;
	kl = n - pl - sl;
	if (kl > KEYS_ID_MAX)
		return true;
	memcpy(kid, name + pl, kl);
	kid[kl] = '\0';
	if (!keys_id_valid(kid))
		kid[0] = '\0';
	return true;
}

/* The kid file's text without trailing white space, validated. */
static int
keys_kid_text(const struct moatd_secret_file *f, char kid[KEYS_ID_MAX + 1])
{
	const char *p = f->data;
	size_t n = f->len;

	while (n > 0 && (p[n - 1] == '\n' || p[n - 1] == '\r' ||
	    p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	if (n == 0 || n > KEYS_ID_MAX)
		return MOAT_ERR_PARSE;
	memcpy(kid, p, n);
	kid[n] = '\0';
	if (strlen(kid) != n || !keys_id_valid(kid))
		return MOAT_ERR_PARSE;
	return 0;
}

int
keyset_from_files(const struct moatd_secret_file *files, size_t n,
    struct keyset **out, char *err, size_t errlen)
{
	const struct moatd_secret_file *kr, *sp, *sk;
	struct keyset *ks = NULL;
	EVP_PKEY *pk = NULL;
	char kid[KEYS_ID_MAX + 1];
	size_t i, nverify = 0;
	bool priv;
	int r = MOAT_ERR_NOTFOUND;

	*out = NULL;
	if ((kr = keys_file(files, n, "keyring.json")) == NULL) {
		moat_errf(err, errlen, "keyring.json: missing");
		goto out;
	}
	if ((sp = keys_file(files, n, "jwt-signing.pem")) == NULL) {
		moat_errf(err, errlen, "jwt-signing.pem: missing");
		goto out;
	}
	if ((sk = keys_file(files, n, "jwt-signing.kid")) == NULL) {
		moat_errf(err, errlen, "jwt-signing.kid: missing");
		goto out;
	}
	if ((r = keyring_parse(kr->data, kr->len, &ks, err, errlen)) != 0)
		goto out;
	for (i = 0; i < n; i++)
		if (files[i].name != NULL && keys_verify_name(files[i].name,
		    kid))
			nverify++;
	r = MOAT_ERR_TOOBIG;
	if (nverify > KEYS_MAX_VERIFY) {
		moat_errf(err, errlen, "jwt-verify-*.pem: more than %d files",
		    KEYS_MAX_VERIFY);
		goto out;
	}
	r = MOAT_ERR_NOMEM;
	if ((ks->jwts = calloc(nverify + 1, sizeof(*ks->jwts))) == NULL) {
		moat_errf(err, errlen, "out of memory");
		goto out;
	}

	r = MOAT_ERR_PARSE;
	if (keys_kid_text(sk, kid) != 0) {
		moat_errf(err, errlen, "jwt-signing.kid: must hold 1 to %d "
		    "characters of A-Z a-z 0-9 . _ -", KEYS_ID_MAX);
		goto out;
	}
	ks->sign = keys_pem_key(sp->data, sp->len, false, &priv);
	if (ks->sign == NULL) {
		moat_errf(err, errlen, "jwt-signing.pem: not a PEM private key "
		    "(unencrypted, at most %d bytes)", KEYS_PEM_MAX);
		goto out;
	}
	if (!keys_is_p256(ks->sign)) {
		moat_errf(err, errlen, "jwt-signing.pem: not an EC P-256 key");
		goto out;
	}
	r = MOAT_ERR_CRYPTO;
	if ((ks->sign_jwk = keys_cjose_jwk(ks->sign, true, kid)) == NULL ||
	    keys_add_jwt(ks, ks->sign, kid) != 0) {
		moat_errf(err, errlen, "jwt-signing.pem: cannot use the key");
		goto out;
	}

	for (i = 0; i < n; i++) {
		const struct keyset_jwt *dup;

		if (files[i].name == NULL || !keys_verify_name(files[i].name,
		    kid))
			continue;
		r = MOAT_ERR_PARSE;
		if (kid[0] == '\0') {
			moat_errf(err, errlen, "%s: the key id after "
			    "\"jwt-verify-\" must be 1 to %d characters of "
			    "A-Z a-z 0-9 . _ -", files[i].name, KEYS_ID_MAX);
			goto out;
		}
		EVP_PKEY_free(pk);
		pk = keys_pem_key(files[i].data, files[i].len, true, &priv);
		if (pk == NULL || !keys_is_p256(pk)) {
			moat_errf(err, errlen, "%s: not a PEM EC P-256 public or "
			    "private key", files[i].name);
			goto out;
		}
		if ((dup = keyset_find_jwt(ks, kid)) != NULL) {
			/* The same key under the same kid twice is harmless
			 * (a rotation left the file); two keys are not. */
			if (EVP_PKEY_eq(dup->pub, pk) == 1)
				continue;
			moat_errf(err, errlen, "%s: key id \"%s\" names another "
			    "key already", files[i].name, kid);
			goto out;
		}
		r = MOAT_ERR_CRYPTO;
		if (keys_add_jwt(ks, pk, kid) != 0) {
			moat_errf(err, errlen, "%s: cannot use the key",
			    files[i].name);
			goto out;
		}
	}
	if ((r = keys_build_jwks(ks)) != 0) {
		moat_errf(err, errlen, "cannot build the JWK Set");
		goto out;
	}
	*out = ks;
	ks = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	r = 0;
out:
	EVP_PKEY_free(pk);
	keyset_unref(ks);
	return r;
}

/* --- the directory --- */

struct keys_file_data {
	char name[256];
	uint8_t *data;
	size_t len;
};

struct keys_scan {
	int vfd;			/* the version's directory */
	struct buf fp;			/* fingerprint text */
	struct keys_file_data files[3 + KEYS_MAX_VERIFY];
	size_t nfiles;
};

static void
keys_scan_free(struct keys_scan *s)
{
	size_t i;

	if (s->vfd >= 0)
		close(s->vfd);
	s->vfd = -1;
	buf_free(&s->fp);
	for (i = 0; i < s->nfiles; i++)
		if (s->files[i].data != NULL) {
			OPENSSL_cleanse(s->files[i].data, s->files[i].len);
			free(s->files[i].data);
			s->files[i].data = NULL;
		}
	s->nfiles = 0;
}

static int
keys_name_cmp(const void *a, const void *b)
{
	return strcmp(((const struct keys_file_data *)a)->name,
	    ((const struct keys_file_data *)b)->name);
}

/* Reads one file of the version (regular, at most max bytes). */
static int
keys_read(int vfd, struct keys_file_data *f, size_t max, char *err,
    size_t errlen)
{
	struct stat st;
	ssize_t got;
	size_t off = 0;
	int fd, r;

	fd = openat(vfd, f->name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = moat_err_from_errno(errno);
		moat_errf(err, errlen, "%s: cannot open: %s", f->name,
		    strerror(errno));
		return r;
	}
	r = MOAT_ERR_INVAL;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		moat_errf(err, errlen, "%s: not a regular file", f->name);
		goto out;
	}
	r = MOAT_ERR_TOOBIG;
	if ((uint64_t)st.st_size > max) {
		moat_errf(err, errlen, "%s: larger than %zu bytes", f->name,
		    max);
		goto out;
	}
	r = MOAT_ERR_NOMEM;
	if ((f->data = malloc(max + 1)) == NULL) {
		moat_errf(err, errlen, "%s: out of memory", f->name);
		goto out;
	}
	for (;;) {
		got = read(fd, f->data + off, max + 1 - off);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = moat_err_from_errno(errno);
			moat_errf(err, errlen, "%s: read failed: %s", f->name,
			    strerror(errno));
			goto out;
		}
		if (got == 0)
			break;
		off += (size_t)got;
		if (off > max) {
			r = MOAT_ERR_TOOBIG;
			moat_errf(err, errlen, "%s: larger than %zu bytes",
			    f->name, max);
			goto out;
		}
	}
	f->len = off;
	r = 0;
out:
	close(fd);
	return r;
}

/*
 * Opens the current version of dir and fingerprints it; with read, also
 * reads the files that matter into s->files.
 */
static int
keys_scan_dir(const char *dir, struct keys_scan *s, bool read, char *err,
    size_t errlen)
{
	static const char *const fixed[] = {
		"keyring.json", "jwt-signing.pem", "jwt-signing.kid",
	};
	struct keys_file_data names[3 + KEYS_MAX_VERIFY];
	char target[256], kid[KEYS_ID_MAX + 1];
	struct dirent *de;
	struct stat st;
	DIR *d = NULL;
	ssize_t tl;
	size_t i, nn = 0;
	int dfd = -1, fd2, r;

	memset(s->files, 0, sizeof(s->files));
	s->nfiles = 0;
	s->vfd = -1;
	buf_init(&s->fp, KEYS_FP_MAX);
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = moat_err_from_errno(errno);
		moat_errf(err, errlen, "%s: cannot open: %s", dir,
		    strerror(errno));
		goto out;
	}
	/* The target first, then the descriptor (see the top comment). */
	tl = readlinkat(dfd, "..data", target, sizeof(target) - 1);
	if (tl >= 0) {
		target[tl] = '\0';
		s->vfd = openat(dfd, "..data", O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC);
	} else if (errno == ENOENT || errno == EINVAL) {
		target[0] = '\0';
		s->vfd = dup(dfd);
	} else {
		r = moat_err_from_errno(errno);
		moat_errf(err, errlen, "%s/..data: %s", dir, strerror(errno));
		goto out;
	}
	if (s->vfd < 0) {
		r = moat_err_from_errno(errno);
		moat_errf(err, errlen, "%s/..data: cannot open: %s", dir,
		    strerror(errno));
		goto out;
	}

	for (i = 0; i < 3; i++) {
		memcpy(names[nn].name, fixed[i], strlen(fixed[i]) + 1);
		nn++;
	}
	if ((fd2 = dup(s->vfd)) < 0 || (d = fdopendir(fd2)) == NULL) {
		r = moat_err_from_errno(errno);
		if (fd2 >= 0)
			close(fd2);
		moat_errf(err, errlen, "%s: cannot list: %s", dir,
		    strerror(errno));
		goto out;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (!keys_verify_name(de->d_name, kid))
			continue;
		r = MOAT_ERR_TOOBIG;
		if (nn >= 3 + KEYS_MAX_VERIFY ||
		    strlen(de->d_name) >= sizeof(names[0].name)) {
			moat_errf(err, errlen, "jwt-verify-*.pem: more than %d "
			    "files or a name too long", KEYS_MAX_VERIFY);
			goto out;
		}
		memcpy(names[nn].name, de->d_name, strlen(de->d_name) + 1);
		nn++;
	}
	qsort(names + 3, nn - 3, sizeof(names[0]), keys_name_cmp);

	r = MOAT_ERR_NOMEM;
	if (buf_appendf(&s->fp, "..data=%s\n", target) != 0)
		goto out;
	for (i = 0; i < nn; i++) {
		if (fstatat(s->vfd, names[i].name, &st, 0) != 0) {
			r = moat_err_from_errno(errno);
			if (errno == ENOENT && i >= 3)
				continue;	/* vanished: not part of it */
			moat_errf(err, errlen, "%s: %s", names[i].name,
			    strerror(errno));
			goto out;
		}
		r = MOAT_ERR_NOMEM;
		if (buf_appendf(&s->fp, "%s %llu %llu %lld %lld.%09ld\n",
		    names[i].name, (unsigned long long)st.st_dev,
		    (unsigned long long)st.st_ino, (long long)st.st_size,
		    (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec) != 0)
			goto out;
		if (!read)
			continue;
		s->files[s->nfiles] = names[i];
		s->files[s->nfiles].data = NULL;
		s->files[s->nfiles].len = 0;
		s->nfiles++;
		if ((r = keys_read(s->vfd, &s->files[s->nfiles - 1],
		    i == 0 ? KEYS_KEYRING_MAX : i == 2 ? KEYS_KID_FILE_MAX :
		    KEYS_PEM_MAX, err, errlen)) != 0)
			goto out;
	}
	r = 0;
out:
	if (d != NULL)
		closedir(d);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/* Loads dir: a new snapshot and its fingerprint (caller frees *fp). */
static int
keys_load(const char *dir, struct keyset **out, char **fp, char *err,
    size_t errlen)
{
	struct moatd_secret_file files[3 + KEYS_MAX_VERIFY];
	struct keys_scan s;
	size_t i;
	int r;

	*out = NULL;
	*fp = NULL;
	r = keys_scan_dir(dir, &s, true, err, errlen);
	if (r != 0)
		goto out;
	for (i = 0; i < s.nfiles; i++) {
		files[i].name = s.files[i].name;
		files[i].data = s.files[i].data;
		files[i].len = s.files[i].len;
	}
	if ((r = keyset_from_files(files, s.nfiles, out, err, errlen)) != 0)
		goto out;
	*fp = buf_steal(&s.fp, NULL);
	if (*fp == NULL && (*fp = strdup("")) == NULL) {
		keyset_unref(*out);
		*out = NULL;
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	r = 0;
out:
	keys_scan_free(&s);
	return r;
}

int
keys_open(struct keys **out, const char *secrets_dir)
{
	struct keys *k = NULL;
	char err[256];
	int r = MOAT_ERR_NOMEM;

	*out = NULL;
	if (secrets_dir == NULL)
		return MOAT_ERR_INVAL;
	if ((k = calloc(1, sizeof(*k))) == NULL ||
	    (k->dir = strdup(secrets_dir)) == NULL)
		goto out;
	pthread_mutex_init(&k->mu, NULL);
	pthread_mutex_init(&k->reload_mu, NULL);
	err[0] = '\0';
	if ((r = keys_load(k->dir, &k->cur, &k->fp, err, sizeof(err))) != 0) {
		log_error("keys", "cannot load keys", LF_STR("dir", secrets_dir),
		    LF_STR("reason", err));
		goto out;
	}
	log_info("keys", "keys loaded", LF_STR("dir", secrets_dir),
	    LF_STR("kek_primary", keyset_primary_kek_id(k->cur)),
	    LF_INT("keks", k->cur->nkeks), LF_STR("jwt_kid",
	    keyset_jwt_kid(k->cur)), LF_INT("jwt_verify_keys", k->cur->njwts));
	*out = k;
	k = NULL;
	r = 0;
out:
	keys_free(k);
	return r;
}

int
keys_reload_if_changed(struct keys *k)
{
	struct keyset *ks = NULL, *old;
	struct keys_scan s, s2;
	char err[256], *fp = NULL, *seen = NULL;
	int r;

	if (k == NULL)
		return MOAT_ERR_INVAL;
	pthread_mutex_lock(&k->reload_mu);
	err[0] = '\0';
	/* The cheap check first: the fingerprint alone. */
	r = keys_scan_dir(k->dir, &s, false, err, sizeof(err));
	if (r == 0) {
		if ((seen = buf_steal(&s.fp, NULL)) == NULL)
			seen = strdup("");
		if (seen == NULL)
			r = MOAT_ERR_NOMEM;
	}
	keys_scan_free(&s);
	if (r != 0) {
		log_warn("keys", "cannot read the secrets directory; keeping "
		    "the current keys", LF_STR("dir", k->dir),
		    LF_STR("reason", err));
		goto out;
	}
	if (strcmp(seen, k->fp) == 0)
		goto out;	/* r == 0: unchanged */
	if (k->failed_fp != NULL && strcmp(seen, k->failed_fp) == 0) {
		r = k->failed_err;	/* refused before; logged then */
		goto out;
	}
	if ((r = keys_load(k->dir, &ks, &fp, err, sizeof(err))) != 0) {
		/* Remember a refused version so that it is logged once, but
		 * only when the directory did not change during the attempt
		 * (a swap in progress is simply retried next time). */
		if (keys_scan_dir(k->dir, &s2, false, NULL, 0) == 0 &&
		    strcmp(buf_cstr(&s2.fp), seen) == 0) {
			free(k->failed_fp);
			k->failed_fp = seen;
			seen = NULL;
			k->failed_err = r;
		}
		keys_scan_free(&s2);
		log_warn("keys", "new secrets version refused; keeping the "
		    "current keys", LF_STR("dir", k->dir),
		    LF_STR("reason", err), LF_STR("error", moat_strerror(r)));
		goto out;
	}
	if (strcmp(fp, k->fp) == 0) {
		r = 0;	/* swapped back and forth: nothing new */
		goto out;
	}
	pthread_mutex_lock(&k->mu);
	old = k->cur;
	k->cur = ks;
	pthread_mutex_unlock(&k->mu);
	log_info("keys", "keys reloaded", LF_STR("dir", k->dir),
	    LF_STR("kek_primary", keyset_primary_kek_id(ks)),
	    LF_INT("keks", ks->nkeks), LF_STR("jwt_kid", keyset_jwt_kid(ks)),
	    LF_INT("jwt_verify_keys", ks->njwts));
	ks = NULL;
	keyset_unref(old);
	free(k->fp);
	k->fp = fp;
	fp = NULL;
	free(k->failed_fp);
	k->failed_fp = NULL;
	r = 1;
out:
	pthread_mutex_unlock(&k->reload_mu);
	keyset_unref(ks);
	free(fp);
	free(seen);
	return r;
}

struct keyset *
keys_current(struct keys *k)
{
	struct keyset *ks;

	if (k == NULL)
		return NULL;
	pthread_mutex_lock(&k->mu);
	ks = keyset_ref(k->cur);
	pthread_mutex_unlock(&k->mu);
	return ks;
}

void
keys_free(struct keys *k)
{
	if (k == NULL)
		return;
	if (k->dir != NULL) {
		pthread_mutex_destroy(&k->mu);
		pthread_mutex_destroy(&k->reload_mu);
	}
	keyset_unref(k->cur);
	free(k->fp);
	free(k->failed_fp);
	free(k->dir);
	free(k);
}
