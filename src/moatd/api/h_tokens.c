/*
 * h_tokens.c - the caller's API tokens: create (the value is shown once),
 * list (never a value or its hash), revoke.
 *
 * A token carries at most the roles of the caller who makes it: asking for
 * more is refused, so a token can narrow a user's power, never widen it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "identity/identity.h"
#include "store/store.h"

#include "api/api.h"
#include "api/api_int.h"

/* Display names of tokens and SSH keys: 1 to 64 printable characters from
 * a small set, so they are safe in tables, logs and file names. */
int
api__check_label(const char *s, char *err, size_t errlen)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n > 64) {
		snprintf(err, errlen, "must be 1 to 64 characters");
		return MOAT_ERR_INVAL;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.' || ch == '@' || (ch == ' ' && i > 0 && i + 1 < n))) {
			snprintf(err, errlen, "may hold letters, digits and "
			    "\"-_.@\" (spaces inside)");
			return MOAT_ERR_INVAL;
		}
	}
	return 0;
}

int
v_token_create(const json_t *body, char *err, size_t errlen)
{
	char why[128];
	const json_t *roles = json_object_get(body, "roles");
	const json_t *v;
	size_t i;

	if (api__check_label(json_get_str(body, "name"), why, sizeof(why)) != 0) {
		snprintf(err, errlen, "name %s", why);
		return MOAT_ERR_INVAL;
	}
	json_array_foreach(roles, i, v) {
		if (rbac_role_parse(json_string_value(v)) < 0) {
			snprintf(err, errlen, "roles[%zu] is not a known role", i);
			return MOAT_ERR_INVAL;
		}
	}
	return 0;
}

/* The caller's tokens as public documents (new array), or NULL with the
 * call answered. */
static json_t *
tokens_of(struct api_call *c)
{
	json_t *list = NULL;
	int r;

	if ((r = identity_token_list(c->app->identity, c->who, NULL,
	    &list)) != 0) {
		api__fail(c, r, "tokens");
		return NULL;
	}
	return list;
}

void
h_tokens_create(struct api_call *c)
{
	const char *name = json_get_str(c->body, "name");
	const json_t *roles = json_object_get(c->body, "roles");
	long long expires_in = json_get_int(c->body, "expires_in", 0);
	json_t *doc = NULL, *list, *t, *v;
	role_mask scope = 0;
	char *token = NULL;
	size_t i;
	int r;

	api__target(c, "token", "name", name);
	if (roles != NULL) {
		if (api__roles_from_json(c, roles, &scope) != 0)
			return;
		if ((scope & ~c->who->roles) != 0) {
			api_error(c, 403, "forbidden",
			    "a token cannot carry roles its maker does not have");
			return;
		}
	}
	if ((list = tokens_of(c)) == NULL)
		return;
	json_array_foreach(list, i, t) {
		const char *n = json_get_str(t, "name");

		if (n != NULL && strcmp(n, name) == 0 &&
		    !json_get_bool(t, "revoked", false)) {
			json_decref(list);
			api_error(c, 409, "exists",
			    "you already have a token with that name");
			return;
		}
	}
	json_decref(list);
	if ((r = identity_token_create(c->app->identity, c->who, name,
	    expires_in, roles != NULL ? &scope : NULL, &token, &doc)) != 0) {
		api__fail(c, r, "token");
		return;
	}
	if ((v = json_deep_copy(doc)) == NULL) {
		api__fail(c, MOAT_ERR_NOMEM, "token");
		goto out;
	}
	json_object_set_new(v, "token", json_string(token));
	api__target(c, "token", "id", json_get_str(doc, "id"));
	c->audit_details = json_pack("{s:s}", "name", name);
	api_reply(c, 201, v);
out:
	explicit_bzero(token, strlen(token));
	free(token);
	json_decref(doc);
}

void
h_tokens_list(struct api_call *c)
{
	json_t *list, *out, *t;
	size_t i;

	if ((list = tokens_of(c)) == NULL)
		return;
	if ((out = json_array()) == NULL) {
		json_decref(list);
		api__fail(c, MOAT_ERR_NOMEM, "tokens");
		return;
	}
	json_array_foreach(list, i, t) {
		if (json_get_bool(t, "revoked", false))
			continue;
		json_array_append(out, t);
	}
	json_decref(list);
	api_reply(c, 200, json_pack("{s:o}", "tokens", out));
}

void
h_tokens_delete(struct api_call *c)
{
	const char *tid = api_param(c, "id");
	int r;

	api__target(c, "token", "id", tid);
	if ((r = identity_token_revoke(c->app->identity, c->who, tid)) != 0) {
		/* Someone else's token is "not found" too. */
		api__fail(c, r == MOAT_ERR_PERM ? MOAT_ERR_NOTFOUND : r, "token");
		return;
	}
	api_reply(c, 204, NULL);
}
