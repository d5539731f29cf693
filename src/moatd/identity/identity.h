/*
 * identity.h - who is calling: local users, passwords, TOTP, login
 * throttling, sessions and API tokens.
 *
 * Users (collection "users"): {"id", "username" (unique; DESIGN.md section 3
 * name rule, reserved names refused), "password_hash" (argon2id, libsodium's
 * crypto_pwhash_str), "disabled", "sealed": {"totp_seed": ...} when TOTP is
 * on}. Roles are per organization in "memberships" {"id", "user_id", "org",
 * "roles": [...]}; organizations in "orgs" {"id" = name}.
 *
 * Sessions (collection "sessions"): a login creates one and returns an ES256
 * JWT (identity/jwt.h) carrying its id ("sid"), the user id ("sub") and a
 * short expiry. Every authenticated request checks that the session is
 * still live; the answer is cached for IDENTITY_LIVE_CACHE_MS so a hot path
 * does not hit the store, which bounds how long a revoked session or a
 * disabled user keeps working.
 *
 * API tokens (collection "tokens"): "moat_" + 43 characters of base64url
 * (256 random bits), shown once; stored as the SHA-256 hex of the whole
 * string (unique index), with a name, the owner, optional expiry, and an
 * optional narrower role set. Disabling a user revokes all their sessions
 * and tokens at once.
 *
 * Login throttling is keyed by (account, client address): past
 * IDENTITY_FREE_FAILURES failures, further attempts for that pair get
 * MOAT_ERR_AGAIN with a growing retry-after, while the same account from
 * another address is unaffected. Every failure is an audit event.
 *
 * Threads: every function here may block (store, hashing); call them from
 * worker threads. Password hashing is done by the caller on the hasher
 * pool (app.h): identity_password_* are the blocking primitives.
 */
#ifndef MOATD_IDENTITY_H
#define MOATD_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"
#include "rbac/rbac.h"

struct app;
struct identity;

#define IDENTITY_LIVE_CACHE_MS 3000
#define IDENTITY_FREE_FAILURES 5
#define IDENTITY_SESSION_TTL_S (12 * 3600)

/* The authenticated caller of one request. */
struct principal {
	char user_id[64];
	char username[32];
	char org[32];		/* the organization the roles apply to */
	role_mask roles;	/* already narrowed by a token's scope */
	char session_id[64];	/* set for a session (JWT or cookie) */
	char token_id[64];	/* set for an API token */
};

int identity_new(struct identity **out, struct app *app) MOAT_MUST_CHECK;
void identity_free(struct identity *id);

/* Name rule of DESIGN.md section 3 (also used for workspaces, templates):
 * 0 or MOAT_ERR_INVAL with a reason in err. reserved: also refuse the
 * system account names (for user names). */
int identity_check_name(const char *name, bool reserved, char *err,
    size_t errlen) MOAT_MUST_CHECK;
/* Password rules: MOAT_ERR_INVAL with a readable reason. */
int identity_check_password(const char *password, const char *username,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* argon2id primitives (slow, memory-hard: hasher pool only).
 * identity_password_verify(NULL, pw) spends the time of a real check and
 * returns false: call it for an unknown user so that timing does not tell
 * which names exist. */
int identity_password_hash(const char *password, char out[128]) MOAT_MUST_CHECK;
bool identity_password_verify(const char *hash, const char *password);

/* Users. role: one role name in the default organization. */
int identity_user_create(struct identity *id, const char *username,
    const char *password_hash, const char *role, json_t **out, char *err,
    size_t errlen) MOAT_MUST_CHECK;
/* Public view of a user (no hash, no sealed fields): a new reference. */
json_t *identity_user_public(const json_t *user);

/* Throttling: before checking a password, identity_throttle_check() says
 * whether (username, addr) may try (0) or must wait (MOAT_ERR_AGAIN,
 * *retry_after_s set); after, report the outcome. In memory, per process. */
int identity_throttle_check(struct identity *id, const char *username,
    const char *addr, int *retry_after_s);
void identity_throttle_report(struct identity *id, const char *username,
    const char *addr, bool success);

/* TOTP (RFC 6238, 6 digits, 30 s, SHA-1, +-1 step) via liboath. */
int identity_totp_enroll(struct identity *id, const char *user_id,
    char **otpauth_uri) MOAT_MUST_CHECK;
int identity_totp_verify(struct identity *id, const json_t *user,
    const char *code) MOAT_MUST_CHECK;

/* Sessions: creates one for user and signs its JWT (caller frees *jwt). */
int identity_session_create(struct identity *id, const json_t *user,
    const char *addr, char **jwt, int64_t *expires_at) MOAT_MUST_CHECK;
int identity_session_revoke(struct identity *id, const char *session_id)
    MOAT_MUST_CHECK;

/* API tokens: *token (caller frees, shown once) and the stored document. */
int identity_token_create(struct identity *id, const struct principal *p,
    const char *name, int64_t expires_in_s, const role_mask *scope,
    char **token, json_t **doc) MOAT_MUST_CHECK;
int identity_token_revoke(struct identity *id, const struct principal *p,
    const char *token_id) MOAT_MUST_CHECK;

/* Authenticates "Authorization: Bearer X" (a JWT or an API token) or a
 * session cookie value. MOAT_ERR_PERM when not valid (expired, revoked,
 * disabled user, bad signature ...); never says which. */
int identity_authenticate(struct identity *id, const char *bearer,
    const char *cookie, struct principal *out) MOAT_MUST_CHECK;

/* Disables (or enables) a user: revokes every session and token. */
int identity_user_set_disabled(struct identity *id, const char *user_id,
    bool disabled) MOAT_MUST_CHECK;

/* --- Additions (identity branch). --- */

/* identity_authenticate(): a store failure while checking (not a refusal)
 * keeps its own code (MOAT_ERR_IO ...), for a 503 rather than a 401. A
 * bearer is a JWT when it has three dot-separated base64url parts, an API
 * token when it is "moat_" + 43 base64url characters; the cookie must be a
 * JWT. A successful check is cached (see IDENTITY_LIVE_CACHE_MS) under the
 * SHA-256 of the credential; revocations, disabling and role changes made
 * through this module drop the affected entries at once. */

/* The authentication cache window in milliseconds (default
 * IDENTITY_LIVE_CACHE_MS; 0 turns the cache off). For tests. */
void identity_set_cache_ms(struct identity *id, unsigned ms);

/* The stored user document (new reference; it holds the password hash:
 * never send it, use identity_user_public). MOAT_ERR_NOTFOUND. */
int identity_user_find(struct identity *id, const char *username,
    json_t **out) MOAT_MUST_CHECK;
int identity_user_get(struct identity *id, const char *user_id,
    json_t **out) MOAT_MUST_CHECK;

/* The user's roles in the default organization (0 without a membership). */
int identity_user_roles(struct identity *id, const char *user_id,
    role_mask *out) MOAT_MUST_CHECK;
/* Replaces the user's roles in org (NULL: the default organization),
 * creating the membership when missing. Takes effect at once here. */
int identity_user_set_roles(struct identity *id, const char *user_id,
    const char *org, role_mask roles) MOAT_MUST_CHECK;

/* Self-service password change: stores a new hash (from
 * identity_password_hash) and revokes every session of the user but
 * keep_session_id (NULL: all). The API checks the old password first. */
int identity_password_set(struct identity *id, const char *user_id,
    const char *password_hash, const char *keep_session_id) MOAT_MUST_CHECK;

/* TOTP state of a user document: true once an enrollment was confirmed
 * (login must then ask for a code). identity_totp_verify() on a user with
 * only a pending enrollment checks the code against it and, when valid,
 * confirms the enrollment; on a user with neither it returns
 * MOAT_ERR_NOTFOUND. A code is accepted once (replays: MOAT_ERR_PERM).
 * identity_totp_enroll() refuses an enrolled user (MOAT_ERR_EXISTS):
 * identity_totp_disable() first. */
bool identity_totp_enabled(const json_t *user);
int identity_totp_disable(struct identity *id, const char *user_id)
    MOAT_MUST_CHECK;

/* API tokens of user_id (NULL: the caller's own) as public documents (no
 * hash), a new array. Another user's need PERM_USERS_READ (else
 * MOAT_ERR_PERM). identity_token_revoke() revokes the caller's own token,
 * or anyone's when the caller's roles grant PERM_USERS_WRITE; any other
 * id is MOAT_ERR_NOTFOUND. identity_token_create() returns in *doc this
 * public form too. */
int identity_token_list(struct identity *id, const struct principal *p,
    const char *user_id, json_t **out) MOAT_MUST_CHECK;
json_t *identity_token_public(const json_t *doc);

#endif
