/*
 * sessions.c - login sessions and the authentication of every request.
 *
 * A session is a document in "sessions" ({"user_id", "expires_at",
 * "revoked", "addr"}); its JWT carries {"sub": user id, "sid": session id,
 * "exp", "nbf", "iat", "iss"}. A bearer with three dot-separated parts is
 * such a JWT (the session cookie carries the same); one of the form
 * "moat_..." is an API token, looked up by the SHA-256 of the whole string.
 *
 * The cache. A full check costs an ES256 verify or a hash lookup, then the
 * session or token, the user and the membership from the store. Its result
 * (the principal) is kept under the SHA-256 of the credential for
 * cache_ms (IDENTITY_LIVE_CACHE_MS), never past the credential's own
 * expiry, so the hot path is one SHA-256, a mutex and a copy. After the
 * window the full check runs again, signature included, so a key removed
 * from the keyset, a revoked session, a disabled user or changed roles take
 * effect within the window even when another process (moatd
 * reset-password) made the change. Changes made through this module also
 * drop the affected entries at once. Only successful checks are cached: a
 * stream of bad credentials cannot push good ones out.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "identity/identity_int.h"
#include "identity/jwt.h"
#include "log.h"
#include "secrets/keys.h"
#include "store/store.h"

static void
principal_clear(struct principal *p)
{
	memset(p, 0, sizeof(*p));
}

/* --- The cache. --- */

static struct identity_cache_entry *
cache_set(struct identity *id, const uint8_t key[32])
{
	uint32_t h;

	memcpy(&h, key, sizeof(h));
	return &id->cache[(size_t)(h % IDENTITY_CACHE_SETS) * IDENTITY_CACHE_WAYS];
}

/* Copies a fresh cached principal for key into out; true on a hit. */
static bool
cache_get(struct identity *id, const uint8_t key[32], struct principal *out)
{
	struct identity_cache_entry *set = cache_set(id, key);
	int64_t mono = identity__mono_ms(), now = identity__now_s();
	bool hit = false;
	int w;

	pthread_mutex_lock(&id->lock);
	for (w = 0; w < IDENTITY_CACHE_WAYS; w++) {
		struct identity_cache_entry *e = &set[w];

		if (!e->used || memcmp(e->key, key, 32) != 0)
			continue;
		if (mono - e->checked_ms < id->cache_ms && now < e->not_after) {
			*out = e->p;
			hit = true;
		} else {
			e->used = false;
		}
		break;
	}
	pthread_mutex_unlock(&id->lock);
	return hit;
}

static void
cache_put(struct identity *id, const uint8_t key[32],
    const struct principal *p, int64_t not_after)
{
	struct identity_cache_entry *set = cache_set(id, key), *e = NULL;
	int w;

	pthread_mutex_lock(&id->lock);
	if (id->cache_ms <= 0)
		goto out;
	for (w = 0; w < IDENTITY_CACHE_WAYS && e == NULL; w++)
		if (set[w].used && memcmp(set[w].key, key, 32) == 0)
			e = &set[w];
	for (w = 0; w < IDENTITY_CACHE_WAYS && e == NULL; w++)
		if (!set[w].used)
			e = &set[w];
	if (e == NULL) {
		e = &set[0];
		for (w = 1; w < IDENTITY_CACHE_WAYS; w++)
			if (set[w].checked_ms < e->checked_ms)
				e = &set[w];
	}
	memcpy(e->key, key, 32);
	e->used = true;
	e->p = *p;
	e->not_after = not_after;
	e->checked_ms = identity__mono_ms();
out:
	pthread_mutex_unlock(&id->lock);
}

void
identity__cache_drop(struct identity *id, const char *user_id,
    const char *session_id, const char *token_id)
{
	size_t i, n = (size_t)IDENTITY_CACHE_SETS * IDENTITY_CACHE_WAYS;

	pthread_mutex_lock(&id->lock);
	for (i = 0; i < n; i++) {
		struct identity_cache_entry *e = &id->cache[i];

		if (!e->used)
			continue;
		if ((user_id != NULL && strcmp(e->p.user_id, user_id) == 0) ||
		    (session_id != NULL && e->p.session_id[0] != '\0' &&
		    strcmp(e->p.session_id, session_id) == 0) ||
		    (token_id != NULL && e->p.token_id[0] != '\0' &&
		    strcmp(e->p.token_id, token_id) == 0))
			memset(e, 0, sizeof(*e));
	}
	pthread_mutex_unlock(&id->lock);
}

/* --- Full checks. --- */

/* Fills the user part of p from user_id: MOAT_ERR_PERM when the user is
 * gone or disabled. */
static int
principal_user(struct identity *id, const char *user_id, struct principal *p)
{
	json_t *user = NULL;
	const char *name;
	int r;

	r = store_get(id->store, IDENTITY_USERS, user_id, &user);
	if (r == MOAT_ERR_NOTFOUND) {
		r = MOAT_ERR_PERM;
		goto out;
	}
	if (r != 0)
		goto out;
	name = json_string_value(json_object_get(user, "username"));
	if (name == NULL || json_is_true(json_object_get(user, "disabled"))) {
		r = MOAT_ERR_PERM;
		goto out;
	}
	if (identity__copy(p->user_id, sizeof(p->user_id), user_id) != 0 ||
	    identity__copy(p->username, sizeof(p->username), name) != 0 ||
	    identity__copy(p->org, sizeof(p->org), id->org) != 0) {
		r = MOAT_ERR_PERM;
		goto out;
	}
	r = identity__user_roles(id->store, user_id, id->org, &p->roles);
out:
	json_decref(user);
	return r;
}

static int
check_jwt(struct identity *id, const char *jwt, struct principal *p,
    int64_t *not_after)
{
	struct keyset *ks = NULL;
	json_t *claims = NULL, *sess = NULL;
	const char *sub, *sid, *owner;
	int64_t now = identity__now_s(), exp, sexp;
	char err[128];
	int r = MOAT_ERR_PERM;

	if (id->keys == NULL || (ks = keys_current(id->keys)) == NULL)
		goto out;
	if (jwt_verify(ks, jwt, now, &claims, err, sizeof(err)) != 0) {
		log_debug(IDENTITY_COMPONENT, "JWT refused", LF_STR("reason", err));
		r = MOAT_ERR_PERM;
		goto out;
	}
	sub = json_string_value(json_object_get(claims, "sub"));
	sid = json_string_value(json_object_get(claims, "sid"));
	exp = json_integer_value(json_object_get(claims, "exp"));
	if (sub == NULL || sid == NULL || exp <= now ||
	    identity__copy(p->session_id, sizeof(p->session_id), sid) != 0) {
		r = MOAT_ERR_PERM;
		goto out;
	}
	r = store_get(id->store, IDENTITY_SESSIONS, sid, &sess);
	if (r == MOAT_ERR_NOTFOUND)
		r = MOAT_ERR_PERM;
	if (r != 0)
		goto out;
	owner = json_string_value(json_object_get(sess, "user_id"));
	sexp = json_integer_value(json_object_get(sess, "expires_at"));
	if (owner == NULL || strcmp(owner, sub) != 0 || sexp <= now ||
	    json_is_true(json_object_get(sess, "revoked"))) {
		r = MOAT_ERR_PERM;
		goto out;
	}
	if ((r = principal_user(id, sub, p)) != 0)
		goto out;
	*not_after = exp < sexp ? exp : sexp;
	r = 0;
out:
	if (ks != NULL)
		keyset_unref(ks);
	json_decref(claims);
	json_decref(sess);
	return r;
}

static int
touch_mutate(json_t *doc, void *arg)
{
	return json_object_set_new(doc, "last_used_at",
	    json_integer(*(const int64_t *)arg)) == 0 ? 0 : MOAT_ERR_NOMEM;
}

static int
check_token(struct identity *id, const char *hash_hex, struct principal *p,
    int64_t *not_after)
{
	json_t *tok = NULL, *scope;
	const char *tid, *owner;
	int64_t now = identity__now_s(), exp, used;
	int r;

	r = store_find_one(id->store, IDENTITY_TOKENS, "hash", hash_hex, &tok);
	if (r == MOAT_ERR_NOTFOUND)
		r = MOAT_ERR_PERM;
	if (r != 0)
		goto out;
	tid = json_string_value(json_object_get(tok, "id"));
	owner = json_string_value(json_object_get(tok, "user_id"));
	exp = json_integer_value(json_object_get(tok, "expires_at"));
	if (tid == NULL || owner == NULL ||
	    json_is_true(json_object_get(tok, "revoked")) ||
	    (exp != 0 && exp <= now) ||
	    identity__copy(p->token_id, sizeof(p->token_id), tid) != 0) {
		r = MOAT_ERR_PERM;
		goto out;
	}
	if ((r = principal_user(id, owner, p)) != 0)
		goto out;
	scope = json_object_get(tok, "scope");
	if (json_is_array(scope))
		p->roles &= identity__roles_from_json(scope);
	*not_after = exp != 0 ? exp : INT64_MAX;
	/* Best effort, and rarely: a write per use would cost the hot path. */
	used = json_integer_value(json_object_get(tok, "last_used_at"));
	if (now - used >= IDENTITY_LAST_USED_EVERY_S &&
	    identity__update(id->store, IDENTITY_TOKENS, tid, touch_mutate, &now,
	    NULL) != 0)
		log_debug(IDENTITY_COMPONENT, "could not record a token's use",
		    LF_STR("token_id", tid));
	r = 0;
out:
	json_decref(tok);
	return r;
}

int
identity_authenticate(struct identity *id, const char *bearer,
    const char *cookie, struct principal *out)
{
	const char *cred = bearer != NULL ? bearer : cookie;
	unsigned char key[crypto_hash_sha256_BYTES];
	enum identity_bearer_kind kind;
	char hex[65];
	int64_t not_after = 0;
	size_t len;
	int r;

	principal_clear(out);
	if (cred == NULL)
		return MOAT_ERR_PERM;
	len = strnlen(cred, JWT_MAX_LEN + 1);
	kind = identity__bearer_kind(cred, len);
	/* The cookie only ever carries a session JWT. */
	if (kind == IDENTITY_BEARER_INVALID ||
	    (bearer == NULL && kind != IDENTITY_BEARER_JWT))
		return MOAT_ERR_PERM;
	crypto_hash_sha256(key, (const unsigned char *)cred, len);
	if (cache_get(id, key, out))
		return 0;
	if (kind == IDENTITY_BEARER_JWT) {
		r = check_jwt(id, cred, out, &not_after);
	} else {
		sodium_bin2hex(hex, sizeof(hex), key, sizeof(key));
		r = check_token(id, hex, out, &not_after);
	}
	if (r != 0) {
		principal_clear(out);
		/* Every refusal looks the same to the caller; a store failure
		 * is not a refusal and keeps its code. */
		return r == MOAT_ERR_PERM || r == MOAT_ERR_INVAL ||
		    r == MOAT_ERR_PARSE ? MOAT_ERR_PERM : r;
	}
	cache_put(id, key, out, not_after);
	return 0;
}

/* --- Sessions. --- */

/* Deletes the user's sessions that expired (best effort): logins are the
 * only writers, so this keeps the collection from growing forever. */
static void
prune_sessions(struct identity *id, const char *user_id, int64_t now)
{
	json_t *list = NULL, *s;
	size_t i;

	if (store_list(id->store, IDENTITY_SESSIONS, "user_id", user_id, NULL, 0,
	    &list) != 0)
		return;
	json_array_foreach(list, i, s) {
		const char *sid = json_string_value(json_object_get(s, "id"));

		if (sid != NULL &&
		    json_integer_value(json_object_get(s, "expires_at")) <= now &&
		    store_delete(id->store, IDENTITY_SESSIONS, sid, -1) != 0)
			log_debug(IDENTITY_COMPONENT, "could not prune a session",
			    LF_STR("session_id", sid));
	}
	json_decref(list);
}

int
identity_session_create(struct identity *id, const json_t *user,
    const char *addr, char **jwt, int64_t *expires_at)
{
	struct keyset *ks = NULL;
	json_t *sess = NULL, *claims = NULL;
	const char *uid = json_string_value(json_object_get(user, "id"));
	const char *sid;
	int64_t now = identity__now_s(), exp = now + IDENTITY_SESSION_TTL_S;
	int r;

	*jwt = NULL;
	if (expires_at != NULL)
		*expires_at = 0;
	if (uid == NULL || json_is_true(json_object_get(user, "disabled")))
		return MOAT_ERR_PERM;
	if (id->keys == NULL || (ks = keys_current(id->keys)) == NULL)
		return MOAT_ERR_CRYPTO;
	prune_sessions(id, uid, now);
	sess = json_pack("{s:s, s:I, s:b, s:s}", "user_id", uid, "expires_at",
	    (json_int_t)exp, "revoked", 0, "addr", addr != NULL ? addr : "");
	if (sess == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((r = store_insert(id->store, IDENTITY_SESSIONS, sess)) != 0)
		goto out;
	sid = json_string_value(json_object_get(sess, "id"));
	claims = json_pack("{s:s, s:s, s:I, s:I}", "sub", uid, "sid",
	    sid != NULL ? sid : "", "exp", (json_int_t)exp, "nbf",
	    (json_int_t)now);
	if (sid == NULL || claims == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((r = jwt_sign(ks, claims, now, jwt)) != 0) {
		/* A session nobody can use: do not leave it behind. */
		if (store_delete(id->store, IDENTITY_SESSIONS, sid, -1) != 0)
			log_warn(IDENTITY_COMPONENT, "could not remove a session "
			    "whose token failed", LF_STR("session_id", sid));
		goto out;
	}
	if (expires_at != NULL)
		*expires_at = exp;
	r = 0;
out:
	if (ks != NULL)
		keyset_unref(ks);
	json_decref(sess);
	json_decref(claims);
	return r;
}

int
identity_session_revoke(struct identity *id, const char *session_id)
{
	int r;

	if (session_id == NULL || session_id[0] == '\0')
		return MOAT_ERR_NOTFOUND;
	r = identity__update(id->store, IDENTITY_SESSIONS, session_id, identity__revoke_mutate,
	    NULL, NULL);
	identity__cache_drop(id, NULL, session_id, NULL);
	return r;
}
