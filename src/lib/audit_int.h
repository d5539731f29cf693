/*
 * audit_int.h - internals shared by the audit module's files (audit.c,
 * audit_writer.c, audit_collector.c, audit_verify.c). Not for other modules.
 *
 * What the chain and the checkpoints are made of lives here, so that the
 * writer and the verifier cannot disagree about it:
 *   - canonical JSON (compact, sorted keys),
 *   - a record's hash: SHA-256(prev hash bytes || canonical(record - "hash")),
 *   - the checkpoint payload that the ES256 signature covers,
 *   - base64url and hex codecs, and the event-field rules.
 */
#ifndef MOAT_AUDIT_INT_H
#define MOAT_AUDIT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "audit.h"

/* Longest line of the chain (a record with the writer's fields added). */
#define AUDIT_MAX_LINE		(AUDIT_MAX_EVENT * 2)
#define AUDIT_HASH_LEN		32
#define AUDIT_HASH_HEX		(AUDIT_HASH_LEN * 2)
#define AUDIT_SIG_LEN		64	/* raw r || s, P-256 */
#define AUDIT_SIG_B64		86	/* base64url of 64 bytes, no padding */
#define AUDIT_KEY_ID_MAX	64
#define AUDIT_TYPE_MAX		64
#define AUDIT_CHECKPOINT_TYPE	"audit.checkpoint"
#define AUDIT_RECOVERED_TYPE	"audit.recovered"
/* Domain separation for the checkpoint signature (see audit__ckpt_payload). */
#define AUDIT_CKPT_VERSION	"moat-audit-checkpoint-1"

/* Compact JSON with sorted keys (the chain's canonical form), that is
 * json_canonical(): json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS). Changing
 * that output would break every existing chain. Caller frees; NULL on
 * failure. */
char *audit__canonical(const json_t *v, size_t *len_out);

/* Lower-case hex of n bytes into out (2n + 1 bytes with the NUL). */
void audit__hex(const uint8_t *in, size_t n, char *out);
/* Parses exactly 2n lower-case hex digits; false otherwise. */
bool audit__unhex(const char *hex, size_t hexlen, uint8_t *out, size_t n);

/* base64url without padding. out must hold 4 * ceil(n / 3) + 1 bytes. */
void audit__b64url_encode(const uint8_t *in, size_t n, char *out);
/* Decodes exactly outlen bytes from a string of exactly the right length. */
bool audit__b64url_decode(const char *in, size_t inlen, uint8_t *out,
    size_t outlen);

/* The hash of rec, which must not contain "hash" (its "prev" must already
 * be set to the hex of prev). out: 32 bytes. */
int audit__record_hash(const json_t *rec, const uint8_t prev[AUDIT_HASH_LEN],
    uint8_t out[AUDIT_HASH_LEN]) MOAT_MUST_CHECK;

/* The same hash from rec's canonical form (len bytes), already made. */
int audit__record_hash_canon(const char *canon, size_t len,
    const uint8_t prev[AUDIT_HASH_LEN], uint8_t out[AUDIT_HASH_LEN])
    MOAT_MUST_CHECK;

/* The canonical form of an object with one more top-level member, made
 * from the object's canonical form (canon, len bytes) without serializing
 * it again: key (a plain ASCII name, not already a member) with the string
 * value value (characters that need no escaping only), inserted at its
 * sorted place. The result is byte for byte what audit__canonical gives
 * for the object with the member set. NULL when canon is not a form this
 * can handle safely (a top-level key with an escape, say), or out of
 * memory: the caller then serializes the object again. Caller frees. */
char *audit__canonical_add(const char *canon, size_t len, const char *key,
    const char *value, size_t *len_out);

/* The exact bytes a checkpoint signature covers: the canonical JSON
 *   {"hash":"<hex of the covered record's hash>","key_id":"<key_id>",
 *    "seq":<the covered record's seq>,"v":"moat-audit-checkpoint-1"}
 * where the covered record is the one just before the checkpoint record
 * (seq 0 and 64 zeros when the checkpoint is the chain's first record).
 * ES256 = ECDSA P-256 over SHA-256 of these bytes. Caller frees. */
char *audit__ckpt_payload(uint64_t seq, const char *hash_hex,
    const char *key_id, size_t *len_out);

/* Signs / verifies a payload with ES256; sig is raw r || s. */
int audit__es256_sign(EVP_PKEY *key, const uint8_t *msg, size_t len,
    uint8_t sig[AUDIT_SIG_LEN]) MOAT_MUST_CHECK;
int audit__es256_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len,
    const uint8_t sig[AUDIT_SIG_LEN]) MOAT_MUST_CHECK;

/* True when key is an EC key on P-256. */
bool audit__key_is_p256(EVP_PKEY *key);

/* Key id derived from a key: "sha256:" + first 16 hex digits of the SHA-256
 * of its DER SubjectPublicKeyInfo. out: at least 24 bytes. */
int audit__key_id(EVP_PKEY *key, char *out, size_t outlen) MOAT_MUST_CHECK;

/* Field rules. An event type: 1..64 bytes of [a-z0-9._-] starting with a
 * letter. A key id: 1..64 bytes of [A-Za-z0-9._:-]. */
bool audit__valid_type(const char *s);
bool audit__valid_key_id(const char *s);
bool audit__valid_outcome(const char *s);

/* Checks an event received from another process (untrusted): an object
 * with a valid "type" not in the reserved "audit." namespace, a valid
 * "outcome", no writer-owned field (seq, prev, hash, source, sig, key_id),
 * sane key names, bounded nesting and string sizes. why: a short reason for
 * the log (never echoes values). */
bool audit__check_remote(const json_t *ev, char *why, size_t whylen);

/* RFC 3339 UTC with nanoseconds: "2026-12-03T16:02:25.123456789Z".
 * out: at least 32 bytes. */
void audit__now_rfc3339(char *out, size_t outlen);

/* --- Shared between the writer and the collector. --- */

/* Queues ev (takes ownership). remote: the event came through the collector
 * and already carries its "source". wait: block while the queue is full
 * (the collector's thread only) instead of dropping. */
int audit__enqueue(struct audit_writer *w, json_t *ev, bool remote, bool wait)
    MOAT_MUST_CHECK;

struct audit_collector;
int audit__collector_start(struct audit_collector **out,
    struct audit_writer *w, const char *path) MOAT_MUST_CHECK;
/* Stops the thread, closes the socket, removes its path, frees. */
void audit__collector_stop(struct audit_collector *c);
uint64_t audit__collector_rejected(const struct audit_collector *c);

#endif
