/*
 * keys.h - the live key material moatd reads from its secrets directory.
 *
 * The secrets directory (secretdir.h) holds, among TLS files:
 *   keyring.json       {"primary": "k1", "keys": [{"id": "k1",
 *                       "key": "<base64 of 16 or 32 bytes>", "created": ...}]}
 *                      AES-GCM key-encryption keys; one is primary
 *   jwt-signing.pem    ES256 private key; jwt-signing.kid its key id
 *   jwt-verify-*.pem   optional older ES256 public or private keys that
 *                      still verify tokens during a rotation (kid: the
 *                      part of the name after "jwt-verify-")
 *
 * keys_open() loads them; keys_reload_if_changed() notices an atomic
 * "..data" swap (the symlink's target changes) and loads the new version,
 * keeping the old one when the new files are bad. Readers take a snapshot
 * (reference-counted, immutable) so a reload never changes keys under a
 * running request. keyring.json is parsed as untrusted input (fuzz target).
 *
 * Thread-safe. keys_reload_if_changed() reads files: call it on a worker.
 */
#ifndef MOATD_KEYS_H
#define MOATD_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "errors.h"

struct keys;		/* the watcher */
struct keyset;		/* one immutable snapshot */

int keys_open(struct keys **out, const char *secrets_dir) MOAT_MUST_CHECK;
/* 1 reloaded, 0 unchanged, negative: new version unusable (old kept). */
int keys_reload_if_changed(struct keys *k);
void keys_free(struct keys *k);

/* The current snapshot; caller releases it with keyset_unref(). */
struct keyset *keys_current(struct keys *k);
void keyset_unref(struct keyset *ks);

/* Keyring. Borrowed pointers valid while the snapshot is held. */
const char *keyset_primary_kek_id(const struct keyset *ks);
/* The KEK named id, or NULL; *len is 16 or 32. */
const uint8_t *keyset_kek(const struct keyset *ks, const char *id, size_t *len);

/* JWT keys. */
const char *keyset_jwt_kid(const struct keyset *ks);
EVP_PKEY *keyset_jwt_signing_key(const struct keyset *ks);	/* borrowed */
/* The verification key for kid (signing or older), or NULL. */
EVP_PKEY *keyset_jwt_verify_key(const struct keyset *ks, const char *kid);
/* The public JWK Set of every verification key, as JSON text (borrowed). */
const char *keyset_jwks_json(const struct keyset *ks);

/* Parses keyring.json text (untrusted). Exposed for tests and the fuzzer.
 * The snapshot has the keyring only (no JWT keys). Caller unrefs *out. */
int keyring_parse(const uint8_t *data, size_t len, struct keyset **out,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* Builds a full snapshot from in-memory files named as in the secrets
 * directory (keyring.json, jwt-signing.pem, jwt-signing.kid required;
 * jwt-verify-KID.pem optional; other names ignored). What keys_open() does
 * after reading the files; exposed for tests and the fuzzers. err names the
 * file and the reason, never key bytes. Caller unrefs *out. */
struct moatd_secret_file;
int keyset_from_files(const struct moatd_secret_file *files, size_t n,
    struct keyset **out, char *err, size_t errlen) MOAT_MUST_CHECK;

/* Limits. */
#define KEYS_MAX_KEKS		64	/* keys in keyring.json */
#define KEYS_MAX_VERIFY		16	/* jwt-verify-*.pem files */
#define KEYS_ID_MAX		64	/* KEK ids and JWT kids: [A-Za-z0-9._-] */
#define KEYS_KEYRING_MAX	(64 * 1024)
#define KEYS_PEM_MAX		(16 * 1024)

/* True when s is a valid KEK id / kid: 1 to 64 of [A-Za-z0-9._-]. */
bool keys_id_valid(const char *s);

#endif
