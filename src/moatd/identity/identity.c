/*
 * identity.c - the identity module's state, users and their roles.
 *
 * Users live in "users" ({"username", "password_hash", "disabled",
 * "sealed": {"totp_seed"}}), roles in "memberships" ({"user_id", "org",
 * "roles"}). Creating a user writes both in one transaction; disabling one
 * revokes every session and token in one transaction and drops the user's
 * cached authentications, so the change holds at once in this process and
 * within IDENTITY_LIVE_CACHE_MS in any other sharing the store.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "identity/identity_int.h"
#include "log.h"
#include "store/store.h"

#define UPDATE_RETRIES 8

int
identity_new(struct identity **out, struct app *app)
{
	struct identity *id = NULL;
	int r;

	*out = NULL;
	if (app == NULL || app->store == NULL)
		return MOAT_ERR_INVAL;
	if ((r = identity__global_init()) != 0)
		return r;
	if ((id = calloc(1, sizeof(*id))) == NULL)
		return MOAT_ERR_NOMEM;
	id->app = app;
	id->store = app->store;
	id->keys = app->keys;
	id->org = app->default_org != NULL ? app->default_org : "default";
	id->cache_ms = IDENTITY_LIVE_CACHE_MS;
	id->cache = calloc((size_t)IDENTITY_CACHE_SETS * IDENTITY_CACHE_WAYS,
	    sizeof(*id->cache));
	if (id->cache == NULL) {
		free(id);
		return MOAT_ERR_NOMEM;
	}
	if (pthread_mutex_init(&id->lock, NULL) != 0) {
		free(id->cache);
		free(id);
		return MOAT_ERR_NOMEM;
	}
	if ((r = identity__throttle_init(&id->throttle)) != 0) {
		pthread_mutex_destroy(&id->lock);
		free(id->cache);
		free(id);
		return r;
	}
	*out = id;
	return 0;
}

void
identity_free(struct identity *id)
{
	if (id == NULL)
		return;
	identity__throttle_free(&id->throttle);
	pthread_mutex_destroy(&id->lock);
	/* Cached principals hold no secrets, but wipe them anyway. */
	memset(id->cache, 0, (size_t)IDENTITY_CACHE_SETS * IDENTITY_CACHE_WAYS *
	    sizeof(*id->cache));
	free(id->cache);
	free(id);
}

void
identity_set_cache_ms(struct identity *id, unsigned ms)
{
	pthread_mutex_lock(&id->lock);
	id->cache_ms = ms;
	pthread_mutex_unlock(&id->lock);
}

int
identity__update(struct store *st, const char *coll, const char *id,
    identity_mutate_fn fn, void *arg, json_t **out)
{
	json_t *doc = NULL;
	int r = MOAT_ERR_CONFLICT, i;

	if (out != NULL)
		*out = NULL;
	for (i = 0; i < UPDATE_RETRIES && r == MOAT_ERR_CONFLICT; i++) {
		json_decref(doc);
		doc = NULL;
		if ((r = store_get(st, coll, id, &doc)) != 0)
			break;
		if ((r = fn(doc, arg)) < 0)
			break;
		if (r == 1) {
			r = 0;
			break;
		}
		r = store_update(st, coll, doc);
	}
	if (r == 0 && out != NULL) {
		*out = doc;
		doc = NULL;
	}
	json_decref(doc);
	return r;
}

role_mask
identity__roles_from_json(const json_t *arr)
{
	role_mask m = 0;
	size_t i;
	json_t *v;

	if (!json_is_array(arr))
		return 0;
	json_array_foreach(arr, i, v) {
		int role = json_is_string(v) ? rbac_role_parse(json_string_value(v))
		    : -1;

		if (role >= 0 && role < ROLE__COUNT)
			m |= 1u << role;
	}
	return m;
}

json_t *
identity__roles_to_json(role_mask m)
{
	json_t *arr = json_array();
	int role;

	if (arr == NULL)
		return NULL;
	for (role = 0; role < ROLE__COUNT; role++) {
		if ((m & (1u << role)) == 0)
			continue;
		if (json_array_append_new(arr,
		    json_string(rbac_role_name((enum role)role))) != 0) {
			json_decref(arr);
			return NULL;
		}
	}
	return arr;
}

/* The membership key (store/schema.h): user_id "/" org. */
static int
membership_key(char *out, size_t outlen, const char *user_id, const char *org)
{
	int n = snprintf(out, outlen, "%s/%s", user_id, org);

	return n < 0 || (size_t)n >= outlen ? MOAT_ERR_INVAL : 0;
}

/* A new membership document (new reference) or NULL. */
static json_t *
membership_new(const char *user_id, const char *org, role_mask roles)
{
	char key[160];
	json_t *r = identity__roles_to_json(roles), *m;

	if (r == NULL || membership_key(key, sizeof(key), user_id, org) != 0) {
		json_decref(r);
		return NULL;
	}
	m = json_pack("{s:s, s:s, s:s, s:o}", "user_id", user_id, "org", org,
	    "user_org", key, "roles", r);
	return m;
}

/* The membership document of user_id in org (new reference), or
 * MOAT_ERR_NOTFOUND. */
static int
find_membership(struct store *st, const char *user_id, const char *org,
    json_t **out)
{
	char key[160];

	*out = NULL;
	if (membership_key(key, sizeof(key), user_id, org) != 0)
		return MOAT_ERR_NOTFOUND;
	return store_find_one(st, IDENTITY_MEMBERSHIPS, "user_org", key, out);
}

int
identity__user_roles(struct store *st, const char *user_id, const char *org,
    role_mask *out)
{
	json_t *m = NULL;
	int r;

	*out = 0;
	r = find_membership(st, user_id, org, &m);
	if (r == MOAT_ERR_NOTFOUND)
		return 0;
	if (r != 0)
		return r;
	*out = identity__roles_from_json(json_object_get(m, "roles"));
	json_decref(m);
	return 0;
}

int
identity_user_find(struct identity *id, const char *username, json_t **out)
{
	*out = NULL;
	if (username == NULL || username[0] == '\0' ||
	    strnlen(username, 64) >= 64)
		return MOAT_ERR_NOTFOUND;
	return store_find_one(id->store, IDENTITY_USERS, "username", username, out);
}

int
identity_user_get(struct identity *id, const char *user_id, json_t **out)
{
	*out = NULL;
	if (user_id == NULL || user_id[0] == '\0')
		return MOAT_ERR_NOTFOUND;
	return store_get(id->store, IDENTITY_USERS, user_id, out);
}

struct user_create_ctx {
	const char *username, *hash, *org;
	enum role role;
	json_t *user;		/* out */
};

static int
user_create_txn(struct store *st, void *arg)
{
	struct user_create_ctx *c = arg;
	json_t *user = NULL, *m = NULL;
	int r;

	user = json_pack("{s:s, s:s, s:b}", "username", c->username,
	    "password_hash", c->hash, "disabled", 0);
	if (user == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((r = store_insert(st, IDENTITY_USERS, user)) != 0)
		goto out;
	m = membership_new(json_string_value(json_object_get(user, "id")),
	    c->org, 1u << c->role);
	if (m == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((r = store_insert(st, IDENTITY_MEMBERSHIPS, m)) != 0)
		goto out;
	c->user = user;
	user = NULL;
	r = 0;
out:
	json_decref(user);
	json_decref(m);
	return r;
}

/* The user-create step shared with bootstrap: no store-independent
 * checks beyond the hash shape. */
int
identity__user_insert(struct store *st, const char *username, const char *hash,
    const char *org, enum role role, json_t **out)
{
	struct user_create_ctx c = { .username = username, .hash = hash,
	    .org = org, .role = role };
	int r;

	*out = NULL;
	if ((r = store_transaction(st, user_create_txn, &c)) != 0) {
		json_decref(c.user);
		return r;
	}
	*out = c.user;
	return 0;
}

int
identity_user_create(struct identity *id, const char *username,
    const char *password_hash, const char *role, json_t **out, char *err,
    size_t errlen)
{
	json_t *existing = NULL;
	int r, rl;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((r = identity_check_name(username, true, err, errlen)) != 0)
		return r;
	if (role == NULL)
		role = "member";
	if ((rl = rbac_role_parse(role)) < 0) {
		if (err != NULL)
			snprintf(err, errlen, "unknown role \"%.32s\"", role);
		return MOAT_ERR_INVAL;
	}
	if (password_hash == NULL || strncmp(password_hash, "$argon2id$", 10) ||
	    strnlen(password_hash, 128) >= 128) {
		if (err != NULL)
			snprintf(err, errlen, "not an argon2id password hash");
		return MOAT_ERR_INVAL;
	}
	r = store_find_one(id->store, IDENTITY_USERS, "username", username,
	    &existing);
	json_decref(existing);
	if (r == 0) {
		if (err != NULL)
			snprintf(err, errlen, "a user named \"%s\" exists already",
			    username);
		return MOAT_ERR_EXISTS;
	}
	if (r != MOAT_ERR_NOTFOUND)
		return r;
	r = identity__user_insert(id->store, username, password_hash, id->org,
	    (enum role)rl, out);
	if (r == MOAT_ERR_EXISTS && err != NULL)
		snprintf(err, errlen, "a user named \"%s\" exists already",
		    username);
	return r;
}

json_t *
identity_user_public(const json_t *user)
{
	json_t *v, *sealed;
	bool totp;

	if (!json_is_object(user))
		return NULL;
	if ((v = json_deep_copy(user)) == NULL)
		return NULL;
	sealed = json_object_get(user, "sealed");
	totp = json_is_object(sealed) &&
	    json_object_get(sealed, "totp_seed") != NULL;
	json_object_del(v, "password_hash");
	json_object_del(v, "sealed");
	json_object_del(v, "totp_last_step");
	if (json_object_set_new(v, "totp_enabled", json_boolean(totp)) != 0) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* --- Roles. --- */

struct set_roles_ctx {
	const char *user_id, *org;
	role_mask roles;
};

static int
set_roles_mutate(json_t *doc, void *arg)
{
	struct set_roles_ctx *c = arg;
	json_t *roles = identity__roles_to_json(c->roles);

	if (roles == NULL)
		return MOAT_ERR_NOMEM;
	return json_object_set_new(doc, "roles", roles) == 0 ? 0 :
	    MOAT_ERR_NOMEM;
}

static int
set_roles_txn(struct store *st, void *arg)
{
	struct set_roles_ctx *c = arg;
	json_t *m = NULL, *user = NULL;
	int r;

	if ((r = store_get(st, IDENTITY_USERS, c->user_id, &user)) != 0)
		goto out;
	r = find_membership(st, c->user_id, c->org, &m);
	if (r == 0) {
		r = identity__update(st, IDENTITY_MEMBERSHIPS,
		    json_string_value(json_object_get(m, "id")),
		    set_roles_mutate, c, NULL);
		goto out;
	}
	if (r != MOAT_ERR_NOTFOUND)
		goto out;
	if ((m = membership_new(c->user_id, c->org, c->roles)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	r = store_insert(st, IDENTITY_MEMBERSHIPS, m);
out:
	json_decref(m);
	json_decref(user);
	return r;
}

int
identity_user_set_roles(struct identity *id, const char *user_id,
    const char *org, role_mask roles)
{
	struct set_roles_ctx c = { .user_id = user_id,
	    .org = org != NULL ? org : id->org,
	    .roles = roles & ((1u << ROLE__COUNT) - 1) };
	int r;

	if (user_id == NULL)
		return MOAT_ERR_INVAL;
	r = store_transaction(id->store, set_roles_txn, &c);
	identity__cache_drop(id, user_id, NULL, NULL);
	return r;
}

int
identity_user_roles(struct identity *id, const char *user_id, role_mask *out)
{
	return identity__user_roles(id->store, user_id, id->org, out);
}

/* --- Revocation and disabling. --- */

int
identity__revoke_mutate(json_t *doc, void *arg)
{
	(void)arg;
	if (json_is_true(json_object_get(doc, "revoked")))
		return 1;
	return json_object_set_new(doc, "revoked", json_true()) == 0 ? 0 :
	    MOAT_ERR_NOMEM;
}

/* Sets "revoked" on every document of coll owned by user_id (but keep). */
static int
revoke_all(struct store *st, const char *coll, const char *user_id,
    const char *keep, int *n)
{
	json_t *list = NULL, *d;
	size_t i;
	int r;

	if (n != NULL)
		*n = 0;
	if ((r = store_list(st, coll, "user_id", user_id, NULL, 0, &list)) != 0)
		return r;
	json_array_foreach(list, i, d) {
		const char *did = json_string_value(json_object_get(d, "id"));

		if (did == NULL || json_is_true(json_object_get(d, "revoked")))
			continue;
		if (keep != NULL && strcmp(did, keep) == 0)
			continue;
		if ((r = identity__update(st, coll, did, identity__revoke_mutate, NULL,
		    NULL)) != 0 && r != MOAT_ERR_NOTFOUND)
			break;
		r = 0;
		if (n != NULL)
			(*n)++;
	}
	json_decref(list);
	return r;
}

int
identity__revoke_user_sessions(struct store *st, const char *user_id,
    const char *keep_sid, int *n)
{
	return revoke_all(st, IDENTITY_SESSIONS, user_id, keep_sid, n);
}

int
identity__revoke_user_tokens(struct store *st, const char *user_id, int *n)
{
	return revoke_all(st, IDENTITY_TOKENS, user_id, NULL, n);
}

struct disable_ctx {
	const char *user_id;
	bool disabled;
};

static int
disable_mutate(json_t *doc, void *arg)
{
	struct disable_ctx *c = arg;

	return json_object_set_new(doc, "disabled", json_boolean(c->disabled))
	    == 0 ? 0 : MOAT_ERR_NOMEM;
}

static int
disable_txn(struct store *st, void *arg)
{
	struct disable_ctx *c = arg;
	int r;

	if ((r = identity__update(st, IDENTITY_USERS, c->user_id, disable_mutate, c,
	    NULL)) != 0)
		return r;
	if (!c->disabled)
		return 0;
	if ((r = identity__revoke_user_sessions(st, c->user_id, NULL, NULL)) != 0)
		return r;
	return identity__revoke_user_tokens(st, c->user_id, NULL);
}

int
identity_user_set_disabled(struct identity *id, const char *user_id,
    bool disabled)
{
	struct disable_ctx c = { .user_id = user_id, .disabled = disabled };
	int r;

	if (user_id == NULL)
		return MOAT_ERR_INVAL;
	r = store_transaction(id->store, disable_txn, &c);
	/* Also after a failure: a partly applied change must not linger in
	 * the cache longer than in the store. */
	identity__cache_drop(id, user_id, NULL, NULL);
	if (r == 0)
		log_info(IDENTITY_COMPONENT, disabled ? "user disabled" :
		    "user enabled", LF_STR("user_id", user_id));
	return r;
}

/* --- Passwords. --- */

struct set_password_ctx {
	const char *hash;
	bool clear_totp;
};

static int
set_password_mutate(json_t *doc, void *arg)
{
	struct set_password_ctx *c = arg;

	if (json_object_set_new(doc, "password_hash", json_string(c->hash)) != 0)
		return MOAT_ERR_NOMEM;
	if (c->clear_totp)
		identity__clear_totp(doc);
	return 0;
}

int
identity__set_password(struct store *st, const char *user_id, const char *hash,
    bool clear_totp)
{
	struct set_password_ctx c = { .hash = hash, .clear_totp = clear_totp };

	if (hash == NULL || strncmp(hash, "$argon2id$", 10) != 0 ||
	    strnlen(hash, 128) >= 128)
		return MOAT_ERR_INVAL;
	return identity__update(st, IDENTITY_USERS, user_id, set_password_mutate, &c,
	    NULL);
}

struct password_txn_ctx {
	const char *user_id, *hash, *keep_sid;
};

static int
password_txn(struct store *st, void *arg)
{
	struct password_txn_ctx *c = arg;
	int r;

	if ((r = identity__set_password(st, c->user_id, c->hash, false)) != 0)
		return r;
	return identity__revoke_user_sessions(st, c->user_id, c->keep_sid, NULL);
}

int
identity_password_set(struct identity *id, const char *user_id,
    const char *password_hash, const char *keep_session_id)
{
	struct password_txn_ctx c = { .user_id = user_id,
	    .hash = password_hash, .keep_sid = keep_session_id };
	int r;

	if (user_id == NULL || password_hash == NULL)
		return MOAT_ERR_INVAL;
	r = store_transaction(id->store, password_txn, &c);
	identity__cache_drop(id, user_id, NULL, NULL);
	return r;
}
