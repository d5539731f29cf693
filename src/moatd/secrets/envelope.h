/*
 * envelope.h - application-layer encryption of sensitive values.
 *
 * Each value gets its own random 256-bit data key (DEK). The value is
 * encrypted with AES-256-GCM under the DEK, with the record it belongs to as
 * associated data ("moat-v1\0" collection "\0" id "\0" field), so a
 * ciphertext copied into another record or field fails to decrypt. The DEK
 * is wrapped with AES-GCM under the keyring's primary key-encryption key
 * (16- or 32-byte KEK), with the KEK id as associated data.
 *
 * Sealed form, a printable string safe in JSON:
 *   v1.<kek-id>.<b64url wrapped DEK+tag>.<b64url wrap nonce>.<b64url nonce>.<b64url ciphertext+tag>
 * Parsing it is parsing untrusted bytes (a database can be tampered with):
 * it has a fuzz target.
 *
 * Rotation: envelope_rewrap() unwraps the DEK with whichever KEK the value
 * names and wraps it again under the primary, leaving the ciphertext as is.
 */
#ifndef MOATD_ENVELOPE_H
#define MOATD_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "secrets/keys.h"

/* Limits: a sealed string longer than ENVELOPE_MAX_SEALED is malformed;
 * envelope_seal refuses values over ENVELOPE_MAX_PLAIN (MOAT_ERR_TOOBIG). */
#define ENVELOPE_MAX_SEALED	(1024 * 1024)
#define ENVELOPE_MAX_PLAIN	(512 * 1024)

/* *out is a NUL-terminated string the caller frees. */
int envelope_seal(const struct keyset *ks, const char *coll, const char *id,
    const char *field, const uint8_t *plain, size_t len, char **out)
    MOAT_MUST_CHECK;

/* MOAT_ERR_PARSE for a malformed string, MOAT_ERR_NOTFOUND for an unknown
 * KEK id, MOAT_ERR_CRYPTO when authentication fails (tampered, moved, wrong
 * key). *plain (NUL-terminated beyond *len) is freed with envelope_free(). */
int envelope_open(const struct keyset *ks, const char *coll, const char *id,
    const char *field, const char *sealed, uint8_t **plain, size_t *len)
    MOAT_MUST_CHECK;

/* Re-wraps under the primary KEK. *out is NULL (nothing to do) when the
 * value already names the primary. */
int envelope_rewrap(const struct keyset *ks, const char *sealed, char **out)
    MOAT_MUST_CHECK;

/* The KEK id a sealed value names, copied into out; MOAT_ERR_PARSE. */
int envelope_kek_id(const char *sealed, char *out, size_t outlen)
    MOAT_MUST_CHECK;

/* Wipes and frees a plaintext returned by envelope_open (NULL is fine). */
void envelope_free(uint8_t *plain, size_t len);

#endif
