/*
 * identity_int.h - what the identity module's files share (private; callers
 * use identity.h).
 *
 * The module is split by concern: rules.c (name and password rules,
 * argon2id), throttle.c (login throttling), identity.c (users, roles,
 * the struct itself), sessions.c (sessions, authentication and its cache),
 * tokens.c (API tokens), totp.c (TOTP), bootstrap.c and reset.c (the
 * `moatd init` and `moatd reset-password` host commands), audit_local.c
 * (audit events from those host commands).
 */
#ifndef MOATD_IDENTITY_INT_H
#define MOATD_IDENTITY_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "identity/identity.h"
#include "store/schema.h"

struct store;
struct keys;

#define IDENTITY_COMPONENT "identity"

/* Collections this module reads and writes (store/schema.h). */
#define IDENTITY_USERS COLL_USERS
#define IDENTITY_ORGS COLL_ORGS
#define IDENTITY_MEMBERSHIPS COLL_MEMBERSHIPS
#define IDENTITY_SESSIONS COLL_SESSIONS
#define IDENTITY_TOKENS COLL_TOKENS

/* Authentication cache: direct-mapped by the SHA-256 of the credential,
 * two ways per set, so its memory is fixed (calloc'd: pages are only
 * touched when used). */
#define IDENTITY_CACHE_SETS 2048
#define IDENTITY_CACHE_WAYS 2

/* Throttle table: bounded; the least recently seen pair is replaced when
 * full. A pair is forgotten IDENTITY_THROTTLE_FORGET_S after its last failure
 * once no delay is pending. */
#define IDENTITY_THROTTLE_SLOTS 4096
#define IDENTITY_THROTTLE_KEY_MAX 128
#define IDENTITY_THROTTLE_MAX_DELAY_S 900
#define IDENTITY_THROTTLE_FORGET_S 3600

/* API tokens: "moat_" + 43 base64url characters (32 random bytes). */
#define IDENTITY_TOKEN_PREFIX "moat_"
#define IDENTITY_TOKEN_LEN (5 + 43)

/* How often a token's last_used_at is written (seconds). */
#define IDENTITY_LAST_USED_EVERY_S 60

struct identity_cache_entry {
	uint8_t key[32];	/* SHA-256 of the bearer or cookie value */
	bool used;
	int64_t not_after;	/* wall clock, seconds: credential's expiry */
	int64_t checked_ms;	/* monotonic ms of the last full check */
	struct principal p;
};

struct identity_throttle_entry {
	char key[IDENTITY_THROTTLE_KEY_MAX];	/* "user\naddr"; "" when free */
	uint64_t hash;
	unsigned failures;
	int64_t last_failure_ms;	/* monotonic */
	int64_t last_seen_ms;		/* monotonic, for replacement */
};

struct identity_throttle {
	pthread_mutex_t lock;
	struct identity_throttle_entry *slots;	/* IDENTITY_THROTTLE_SLOTS */
};

struct identity {
	struct app *app;		/* borrowed */
	struct store *store;		/* borrowed (app->store) */
	struct keys *keys;		/* borrowed (app->keys), may be NULL */
	const char *org;		/* default organization */

	pthread_mutex_t lock;		/* guards cache and cache_ms */
	int64_t cache_ms;
	struct identity_cache_entry *cache; /* SETS * WAYS */

	struct identity_throttle throttle;
};

/* Once per process: sodium_init and oath_init. */
int identity__global_init(void) MOAT_MUST_CHECK;

/* Clocks. */
int64_t identity__now_s(void);		/* wall clock, seconds */
int64_t identity__mono_ms(void);		/* monotonic, milliseconds */

/* n random bytes from OpenSSL's CSPRNG. */
int identity__random(void *out, size_t n) MOAT_MUST_CHECK;

/* A random password of len characters (len + 1 bytes in out) from an
 * alphabet without look-alike characters. */
int identity__random_password(char *out, size_t len) MOAT_MUST_CHECK;

/* Copies at most outlen - 1 bytes and NUL-terminates; MOAT_ERR_TOOBIG when
 * s does not fit (out is then ""). */
int identity__copy(char *out, size_t outlen, const char *s) MOAT_MUST_CHECK;

/* Reads a document, lets fn change it, writes it back; retries a few times
 * on a revision conflict. fn returns 0 to write, 1 to leave the document
 * as it is, or a negative error. *out (may be NULL) gets the written
 * document (new reference). */
typedef int (*identity_mutate_fn)(json_t *doc, void *arg);
int identity__update(struct store *st, const char *coll, const char *id,
    identity_mutate_fn fn, void *arg, json_t **out) MOAT_MUST_CHECK;
/* Removes the TOTP seed, a pending enrollment and the last used step from
 * a user document (password reset, TOTP disable). */
void identity__clear_totp(json_t *doc);
/* An identity_mutate_fn that marks a session or token "revoked". */
int identity__revoke_mutate(json_t *doc, void *arg);

/* Inserts a user and its membership (role in org) in one transaction;
 * *out is the user document. No checks beyond the store's. */
int identity__user_insert(struct store *st, const char *username,
    const char *hash, const char *org, enum role role, json_t **out)
    MOAT_MUST_CHECK;

/* Roles of user_id in org from its membership (0 when none). */
int identity__user_roles(struct store *st, const char *user_id, const char *org,
    role_mask *out) MOAT_MUST_CHECK;
/* A mask from a JSON array of role names; unknown names are skipped. */
role_mask identity__roles_from_json(const json_t *arr);
/* A JSON array of the role names in mask (new reference). */
json_t *identity__roles_to_json(role_mask m);

/* Revokes every live session (and, when tokens, every token) of user_id;
 * *n (may be NULL) counts what changed. Joins an outer transaction. */
int identity__revoke_user_sessions(struct store *st, const char *user_id,
    const char *keep_sid, int *n) MOAT_MUST_CHECK;
int identity__revoke_user_tokens(struct store *st, const char *user_id, int *n)
    MOAT_MUST_CHECK;

/* Sets a user's password hash; clear_totp also removes the TOTP seed,
 * any pending enrollment and the replay counter. */
int identity__set_password(struct store *st, const char *user_id,
    const char *hash, bool clear_totp) MOAT_MUST_CHECK;

/* Drops cached authentications of a user, a session or a token (any may
 * be NULL). */
void identity__cache_drop(struct identity *id, const char *user_id,
    const char *session_id, const char *token_id);

/* What a bearer value looks like, without any lookup. */
enum identity_bearer_kind {
	IDENTITY_BEARER_INVALID = 0,
	IDENTITY_BEARER_JWT,		/* three dot-separated parts */
	IDENTITY_BEARER_TOKEN		/* moat_ + 43 base64url characters */
};
enum identity_bearer_kind identity__bearer_kind(const char *s, size_t len);

/* The throttle key "lower(user)\naddr" with an IPv6 address reduced to its
 * /64 and an IPv4-mapped one to IPv4. MOAT_ERR_INVAL when too long. */
int identity__throttle_key(const char *username, const char *addr, char *out,
    size_t outlen) MOAT_MUST_CHECK;

int identity__throttle_init(struct identity_throttle *t) MOAT_MUST_CHECK;
void identity__throttle_free(struct identity_throttle *t);

/* Audit from a host command (bootstrap, reset-password): through the
 * collector socket DATA/run/audit.sock when moatd runs, else by opening the
 * chain DATA/audit/audit.log itself. Open before acting, so that an action
 * that cannot be audited is not taken. */
struct identity_audit;
int identity__audit_open(struct identity_audit **out, const char *data_dir)
    MOAT_MUST_CHECK;
/* Takes ownership of ev. */
int identity__audit_emit(struct identity_audit *a, json_t *ev) MOAT_MUST_CHECK;
/* Waits until what was emitted is written, then closes. */
int identity__audit_close(struct identity_audit *a);

#endif
