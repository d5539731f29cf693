/*
 * testkeys.h - helpers shared by the key, envelope and JWT unit tests:
 * keyring.json texts with known keys, fresh EC P-256 keys as PEM, and
 * snapshots built from them with keyset_from_files(). Header-only (static
 * functions), included by test files only.
 */
#ifndef MOAT_TESTKEYS_H
#define MOAT_TESTKEYS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "buf.h"
#include "secrets/keys.h"
#include "secrets/pki.h"
#include "secrets/secretdir.h"

/* Standard base64 of len bytes all equal to fill (len <= 32). */
static inline void
tk_key_b64(unsigned char fill, size_t len, char out[64])
{
	unsigned char k[32];

	memset(k, fill, sizeof(k));
	EVP_EncodeBlock((unsigned char *)out, k, (int)len);
}

/* keyring.json with keys ids[i] (fill i + 1, length lens[i]). Caller frees. */
static inline char *
tk_keyring_json(const char *primary, const char *const *ids,
    const size_t *lens, size_t n)
{
	struct buf b;
	char k[64];
	size_t i;

	buf_init(&b, 1 << 20);
	if (buf_appendf(&b, "{\"primary\": \"%s\", \"keys\": [", primary) != 0)
		abort();
	for (i = 0; i < n; i++) {
		tk_key_b64((unsigned char)(i + 1), lens[i], k);
		if (buf_appendf(&b, "%s{\"id\": \"%s\", \"key\": \"%s\", "
		    "\"created\": \"2026-01-01T00:00:00Z\"}", i ? ", " : "",
		    ids[i], k) != 0)
			abort();
	}
	if (buf_append_str(&b, "]}\n") != 0)
		abort();
	return buf_steal(&b, NULL);
}

/* A new P-256 key and its PKCS#8 PEM (free with pki_secret_free). */
static inline EVP_PKEY *
tk_ec_key(char **pem, size_t *len)
{
	EVP_PKEY *pk = NULL;

	if (pki_key_new(&pk) != 0 || pki_key_pem(pk, pem, len) != 0)
		abort();
	return pk;
}

/* A snapshot from a keyring text, a signing key and an optional older
 * verification key (public PEM). */
static inline struct keyset *
tk_keyset(const char *keyring, EVP_PKEY *sign, const char *kid,
    EVP_PKEY *old, const char *old_kid)
{
	struct moatd_secret_file files[4];
	struct keyset *ks = NULL;
	struct buf oldpem;
	char *pem = NULL, name[128], err[256];
	size_t pemlen = 0, n = 0;

	buf_init(&oldpem, 1 << 16);
	if (pki_key_pem(sign, &pem, &pemlen) != 0)
		abort();
	files[n++] = (struct moatd_secret_file){ "keyring.json", keyring,
	    strlen(keyring) };
	files[n++] = (struct moatd_secret_file){ "jwt-signing.pem", pem,
	    pemlen };
	files[n++] = (struct moatd_secret_file){ "jwt-signing.kid", kid,
	    strlen(kid) };
	if (old != NULL) {
		if (pki_pubkey_pem(old, &oldpem) != 0)
			abort();
		snprintf(name, sizeof(name), "jwt-verify-%s.pem", old_kid);
		files[n++] = (struct moatd_secret_file){ name, oldpem.data,
		    oldpem.len };
	}
	if (keyset_from_files(files, n, &ks, err, sizeof(err)) != 0) {
		fprintf(stderr, "tk_keyset: %s\n", err);
		abort();
	}
	pki_secret_free(pem, pemlen);
	buf_free(&oldpem);
	return ks;
}

#endif
