/*
 * tokens.c - API tokens for the CLI and automation.
 *
 * A token is "moat_" followed by 43 base64url characters (256 random
 * bits). It is shown once; the store keeps only the SHA-256 hex of the whole
 * string ("hash", a unique index), the owner, a name (name rule, unique
 * among the owner's live tokens), the expiry (0: never), whether it is
 * revoked, and its scope: null to follow the owner's roles as they change,
 * or a list of role names that can only narrow them (the roles a request
 * gets are the owner's current roles in the organization intersected with
 * the scope). A token can never be created with a role its creator does
 * not hold, and a token made by a token inherits that token's limits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "identity/identity_int.h"
#include "digest.h"
#include "log.h"
#include "store/store.h"

#define TOKEN_RANDOM_BYTES 32
/* Expiry is bounded so that now + expires_in never overflows. */
#define TOKEN_MAX_LIFETIME_S ((int64_t)100 * 366 * 24 * 3600)

json_t *
identity_token_public(const json_t *doc)
{
	json_t *v;

	if (!json_is_object(doc) || (v = json_deep_copy(doc)) == NULL)
		return NULL;
	json_object_del(v, "hash");
	return v;
}

struct token_insert_ctx {
	json_t *doc;		/* borrowed */
	const char *user_id, *name;
};

static int
token_insert_txn(struct store *st, void *arg)
{
	struct token_insert_ctx *c = arg;
	json_t *list = NULL, *t;
	size_t i;
	int r;

	if ((r = store_list(st, IDENTITY_TOKENS, "user_id", c->user_id, NULL, 0,
	    &list)) != 0)
		return r;
	json_array_foreach(list, i, t) {
		const char *n = json_string_value(json_object_get(t, "name"));

		if (n != NULL && strcmp(n, c->name) == 0 &&
		    !json_is_true(json_object_get(t, "revoked"))) {
			json_decref(list);
			return MOAT_ERR_EXISTS;
		}
	}
	json_decref(list);
	return store_insert(st, IDENTITY_TOKENS, c->doc);
}

int
identity_token_create(struct identity *id, const struct principal *p,
    const char *name, int64_t expires_in_s, const role_mask *scope,
    char **token, json_t **doc)
{
	unsigned char rnd[TOKEN_RANDOM_BYTES];
	char b64[sodium_base64_ENCODED_LEN(TOKEN_RANDOM_BYTES,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
	char hex[65], *tok = NULL;
	json_t *d = NULL, *scope_json = NULL;
	struct token_insert_ctx c;
	role_mask narrowed;
	int64_t expires_at = 0;
	int r;

	*token = NULL;
	if (doc != NULL)
		*doc = NULL;
	if (p == NULL || p->user_id[0] == '\0')
		return MOAT_ERR_PERM;
	if (identity_check_name(name, false, NULL, 0) != 0 || expires_in_s < 0 ||
	    expires_in_s > TOKEN_MAX_LIFETIME_S)
		return MOAT_ERR_INVAL;
	if (expires_in_s > 0)
		expires_at = identity__now_s() + expires_in_s;
	/* The scope: never wider than what the caller holds now. */
	if (scope != NULL) {
		if ((*scope & ~p->roles) != 0)
			return MOAT_ERR_PERM;
		narrowed = *scope;
		scope_json = identity__roles_to_json(narrowed);
	} else if (p->token_id[0] != '\0') {
		scope_json = identity__roles_to_json(p->roles);
	} else {
		scope_json = json_null();
	}
	if (scope_json == NULL)
		return MOAT_ERR_NOMEM;

	if ((r = identity__random(rnd, sizeof(rnd))) != 0)
		goto out;
	sodium_bin2base64(b64, sizeof(b64), rnd, sizeof(rnd),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if ((tok = malloc(IDENTITY_TOKEN_LEN + 1)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if (strlen(b64) != IDENTITY_TOKEN_LEN - 5) {
		r = MOAT_ERR_CRYPTO;
		goto out;
	}
	memcpy(tok, IDENTITY_TOKEN_PREFIX, 5);
	memcpy(tok + 5, b64, IDENTITY_TOKEN_LEN - 5 + 1);
	if ((r = sha256_hex(tok, IDENTITY_TOKEN_LEN, hex)) != 0)
		goto out;

	d = json_pack("{s:s, s:s, s:s, s:O, s:I, s:b, s:I}", "user_id",
	    p->user_id, "name", name, "hash", hex, "scope", scope_json,
	    "expires_at", (json_int_t)expires_at, "revoked", 0, "last_used_at",
	    (json_int_t)0);
	if (d == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	c.doc = d;
	c.user_id = p->user_id;
	c.name = name;
	if ((r = store_transaction(id->store, token_insert_txn, &c)) != 0)
		goto out;
	if (doc != NULL && (*doc = identity_token_public(d)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	*token = tok;
	tok = NULL;
	r = 0;
out:
	sodium_memzero(rnd, sizeof(rnd));
	sodium_memzero(b64, sizeof(b64));
	if (tok != NULL) {
		sodium_memzero(tok, IDENTITY_TOKEN_LEN + 1);
		free(tok);
	}
	json_decref(d);
	json_decref(scope_json);
	return r;
}

int
identity_token_revoke(struct identity *id, const struct principal *p,
    const char *token_id)
{
	json_t *t = NULL;
	const char *owner;
	int r;

	if (p == NULL || token_id == NULL || token_id[0] == '\0')
		return MOAT_ERR_NOTFOUND;
	if ((r = store_get(id->store, IDENTITY_TOKENS, token_id, &t)) != 0)
		return r;
	owner = json_string_value(json_object_get(t, "user_id"));
	/* Someone else's token is "not found" unless the caller may manage
	 * users: its existence is not theirs to learn. */
	if (owner == NULL || (strcmp(owner, p->user_id) != 0 &&
	    !rbac_allows(p->roles, PERM_USERS_WRITE))) {
		json_decref(t);
		return MOAT_ERR_NOTFOUND;
	}
	json_decref(t);
	r = identity__update(id->store, IDENTITY_TOKENS, token_id, identity__revoke_mutate, NULL,
	    NULL);
	identity__cache_drop(id, NULL, NULL, token_id);
	return r;
}

int
identity_token_list(struct identity *id, const struct principal *p,
    const char *user_id, json_t **out)
{
	json_t *list = NULL, *res = NULL, *t;
	size_t i;
	int r;

	*out = NULL;
	if (p == NULL || p->user_id[0] == '\0')
		return MOAT_ERR_PERM;
	if (user_id == NULL)
		user_id = p->user_id;
	if (strcmp(user_id, p->user_id) != 0 &&
	    !rbac_allows(p->roles, PERM_USERS_READ))
		return MOAT_ERR_PERM;
	if ((r = store_list(id->store, IDENTITY_TOKENS, "user_id", user_id, NULL, 0,
	    &list)) != 0)
		return r;
	if ((res = json_array()) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	json_array_foreach(list, i, t) {
		if (json_array_append_new(res, identity_token_public(t)) != 0) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
	}
	*out = res;
	res = NULL;
	r = 0;
out:
	json_decref(list);
	json_decref(res);
	return r;
}
