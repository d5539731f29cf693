/*
 * h_secrets.c - personal secrets (collection "secrets", sensitive): values
 * go in and never come out through the API.
 *
 * Each value is sealed by envelope.c under its own data key, bound to its
 * record ("secrets", id, "value"), and kept as doc.sealed.value; the
 * plaintext is wiped from the request once sealed. Listing shows names,
 * the optional environment variable name and times. Document: {"id",
 * "user_id", "name", "user_name" (user_id "/" name, unique), "env"?,
 * "sealed": {"value": "v1...."}}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "identity/identity.h"
#include "secrets/envelope.h"
#include "secrets/keys.h"
#include "store/schema.h"
#include "store/store.h"

#include "orchestrator/orch.h"
#include "api/api.h"
#include "api/api_int.h"

#define SECRETS COLL_SECRETS

/* Environment variable names: [A-Za-z_][A-Za-z0-9_]*, at most 128. */
static bool
secrets_env_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 128 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '_'))
			return false;
	}
	return true;
}

int
v_secret_put(const json_t *body, char *err, size_t errlen)
{
	const char *env = json_get_str(body, "env");

	if (env != NULL && !secrets_env_ok(env)) {
		snprintf(err, errlen, "env must be an environment variable name "
		    "([A-Za-z_][A-Za-z0-9_]*, at most 128 characters)");
		return MOAT_ERR_INVAL;
	}
	return 0;
}

static json_t *
secret_view(const json_t *doc)
{
	return json_pack("{s:s?,s:s*,s:s?,s:s?}", "name",
	    json_get_str(doc, "name"), "env", json_get_str(doc, "env"),
	    "created_at", json_get_str(doc, "created_at"), "updated_at",
	    json_get_str(doc, "updated_at"));
}

/* The name in the path: the name rule of DESIGN.md section 3. */
static int
secrets_name(struct api_call *c, const char **name, char *user_name,
    size_t len)
{
	char why[160];

	*name = api_param(c, "name");
	api__target(c, "secret", "name", *name);
	if (identity_check_name(*name, false, why, sizeof(why)) != 0) {
		api_error(c, 400, "invalid_request", "name: %s", why);
		return MOAT_ERR_INVAL;
	}
	snprintf(user_name, len, "%s/%s", c->who->user_id, *name);
	return 0;
}

void
h_secrets_put(struct api_call *c)
{
	const char *name, *value = json_get_str(c->body, "value");
	const char *env = json_get_str(c->body, "env");
	char user_name[160], idbuf[STORE_ID_GEN_LEN];
	const char *id;
	struct keyset *ks = NULL;
	json_t *doc = NULL;
	char *sealed = NULL;
	bool created = false;
	int r;

	if (secrets_name(c, &name, user_name, sizeof(user_name)) != 0)
		goto out;
	r = store_find_one(c->app->store, SECRETS, "user_name", user_name, &doc);
	if (r == MOAT_ERR_NOTFOUND) {
		if ((r = store_new_id(idbuf, sizeof(idbuf))) != 0 ||
		    (doc = json_pack("{s:s,s:s,s:s,s:s}", "id", idbuf,
		    "user_id", c->who->user_id, "name", name, "user_name",
		    user_name)) == NULL) {
			api__fail(c, r != 0 ? r : MOAT_ERR_NOMEM, "secret");
			goto out;
		}
		created = true;
	} else if (r != 0) {
		api__fail(c, r, "secret");
		goto out;
	}
	id = json_get_str(doc, "id");
	if (c->app->keys == NULL || (ks = keys_current(c->app->keys)) == NULL) {
		api__fail(c, MOAT_ERR_CRYPTO, "key set");
		goto out;
	}
	if ((r = envelope_seal(ks, SECRETS, id, "value", (const uint8_t *)value,
	    strlen(value), &sealed)) != 0) {
		api__fail(c, r, "secret sealing");
		goto out;
	}
	json_object_set_new(doc, "sealed", json_pack("{s:s}", "value", sealed));
	if (env != NULL)
		json_object_set_new(doc, "env", json_string(env));
	else
		json_object_del(doc, "env");
	r = created ? store_insert(c->app->store, SECRETS, doc) :
	    store_update(c->app->store, SECRETS, doc);
	if (r != 0) {
		api__fail(c, r, "secret");
		goto out;
	}
	c->audit_details = json_pack("{s:b}", "created", created);
	/* Running workspaces of this user get the new value now. */
	orch_secrets_changed(c->app->orch, c->who->user_id);
	api_reply(c, created ? 201 : 200, secret_view(doc));
out:
	/* The plaintext leaves memory with the request. */
	if (value != NULL)
		explicit_bzero((char *)value, strlen(value));
	free(sealed);
	if (ks != NULL)
		keyset_unref(ks);
	json_decref(doc);
}

void
h_secrets_list(struct api_call *c)
{
	json_t *list = NULL, *out, *s;
	size_t i;
	int r;

	if ((r = store_list(c->app->store, SECRETS, "user_id", c->who->user_id,
	    NULL, 0, &list)) != 0) {
		api__fail(c, r, "secrets");
		return;
	}
	if ((out = json_array()) == NULL) {
		json_decref(list);
		api__fail(c, MOAT_ERR_NOMEM, "secrets");
		return;
	}
	json_array_foreach(list, i, s)
		json_array_append_new(out, secret_view(s));
	json_decref(list);
	api_reply(c, 200, json_pack("{s:o}", "secrets", out));
}

void
h_secrets_delete(struct api_call *c)
{
	const char *name;
	char user_name[160];
	json_t *doc = NULL;
	int r;

	if (secrets_name(c, &name, user_name, sizeof(user_name)) != 0)
		return;
	if ((r = store_find_one(c->app->store, SECRETS, "user_name", user_name,
	    &doc)) != 0) {
		api__fail(c, r, "secret");
		return;
	}
	if ((r = store_delete(c->app->store, SECRETS, json_get_str(doc, "id"),
	    json_get_int(doc, "rev", -1))) != 0)
		api__fail(c, r, "secret");
	else {
		orch_secrets_changed(c->app->orch, c->who->user_id);
		api_reply(c, 204, NULL);
	}
	json_decref(doc);
}
