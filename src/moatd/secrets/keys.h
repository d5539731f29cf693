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

/* Parses keyring.json text (untrusted). Exposed for tests and the fuzzer. */
int keyring_parse(const uint8_t *data, size_t len, struct keyset **out,
    char *err, size_t errlen) MOAT_MUST_CHECK;

#endif
