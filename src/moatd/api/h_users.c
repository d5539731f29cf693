/*
 * h_users.c - users: the caller's own profile, password and TOTP, and the
 * administration routes (create, list, show, disable, enable, set roles).
 *
 * Separation of powers kept here, beyond the route permissions: only an
 * owner grants, removes or disables the owner role or an owner, and nobody
 * disables themselves or drops their own owner role, so an organization
 * always keeps an owner who can act.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "identity/identity.h"
#include "log.h"
#include "store/store.h"

#include "orchestrator/orch.h"
#include "api/api.h"
#include "api/api_int.h"

#define COMPONENT "api"
#define LIST_DEFAULT 100
#define LIST_MAX 1000

/* --- shared lookups --- */

int
api__user_by_name(struct app *app, const char *username, json_t **out)
{
	*out = NULL;
	if (username == NULL || username[0] == '\0' || strlen(username) > 64)
		return MOAT_ERR_NOTFOUND;
	return identity_user_find(app->identity, username, out);
}

int
api__membership(struct app *app, const char *user_id, const char *org,
    role_mask *roles, json_t **out)
{
	char key[160];
	json_t *m = NULL, *v;
	size_t k;
	int r;

	*roles = 0;
	if (out != NULL)
		*out = NULL;
	if (snprintf(key, sizeof(key), "%s/%s", user_id, org) >= (int)sizeof(key))
		return MOAT_ERR_NOTFOUND;
	r = store_find_one(app->store, "memberships", "user_org", key, &m);
	if (r == MOAT_ERR_NOTFOUND)
		return 0;
	if (r != 0)
		return r;
	json_array_foreach(json_object_get(m, "roles"), k, v) {
		int role = rbac_role_parse(json_string_value(v));

		if (role >= 0)
			*roles |= 1u << role;
	}
	if (out != NULL)
		*out = m;
	else
		json_decref(m);
	return 0;
}

/* The public view of user with its roles in org. New reference. */
static json_t *
users_view(struct app *app, const json_t *user, const char *org)
{
	json_t *v = identity_user_public(user);
	role_mask roles = 0;

	if (v == NULL)
		return NULL;
	if (api__membership(app, json_get_str(user, "id"), org, &roles,
	    NULL) != 0)
		roles = 0;
	json_object_del(v, "rev");
	json_object_set_new(v, "org", json_string(org));
	json_object_set_new(v, "roles", api__roles_json(roles));
	json_object_set_new(v, "totp_enabled",
	    json_boolean(identity_totp_enabled(user)));
	if (json_object_get(v, "disabled") == NULL)
		json_object_set_new(v, "disabled", json_false());
	return v;
}

static bool
is_owner(const struct principal *p)
{
	return (p->roles & (1u << ROLE_OWNER)) != 0;
}

/* --- the caller --- */

void
h_me_get(struct api_call *c)
{
	json_t *user = NULL, *v;
	int r;

	if ((r = identity_user_get(c->app->identity, c->who->user_id,
	    &user)) != 0) {
		api__fail(c, r, "user");
		return;
	}
	v = users_view(c->app, user, c->who->org);
	json_decref(user);
	if (v == NULL) {
		api__fail(c, MOAT_ERR_NOMEM, "user");
		return;
	}
	/* The roles this credential carries (a token may narrow them). */
	json_object_set_new(v, "roles", api__roles_json(c->who->roles));
	json_object_set_new(v, "auth", json_string(
	    c->who->token_id[0] != '\0' ? "token" : "session"));
	api_reply(c, 200, v);
}

void
h_me_password(struct api_call *c)
{
	struct identity *id = c->app->identity;
	const char *cur = json_get_str(c->body, "current");
	const char *new = json_get_str(c->body, "new");
	json_t *user = NULL;
	char hash[128], err[200];
	int r, retry = 1;

	api__target(c, "user", "name", c->who->username);
	/* Guessing the current password through a stolen session is
	 * throttled like a login. */
	if (identity_throttle_check(id, c->who->username, c->client_addr,
	    &retry) == MOAT_ERR_AGAIN) {
		char ra[16];

		snprintf(ra, sizeof(ra), "%d", retry > 0 ? retry : 1);
		if (api_add_header(c, "Retry-After", ra) != 0)
			log_warn(COMPONENT, "Retry-After header dropped");
		api_error(c, 429, "throttled", "too many failed attempts");
		goto out;
	}
	if ((r = identity_user_get(id, c->who->user_id, &user)) != 0) {
		api__fail(c, r, "user");
		goto out;
	}
	if (!identity_password_verify(json_get_str(user, "password_hash"), cur)) {
		identity_throttle_report(id, c->who->username, c->client_addr,
		    false);
		api_error(c, 403, "invalid_credentials",
		    "the current password is wrong");
		goto out;
	}
	identity_throttle_report(id, c->who->username, c->client_addr, true);
	if (identity_check_password(new, c->who->username, err,
	    sizeof(err)) != 0) {
		api_error(c, 400, "weak_password", "%s", err);
		goto out;
	}
	if ((r = identity_password_hash(new, hash)) != 0) {
		api__fail(c, r, "password hash");
		goto out;
	}
	/* Every other session of the user ends; this one goes on. */
	r = identity_password_set(id, c->who->user_id, hash,
	    c->who->session_id[0] != '\0' ? c->who->session_id : NULL);
	explicit_bzero(hash, sizeof(hash));
	if (r != 0) {
		api__fail(c, r, "user");
		goto out;
	}
	api_reply(c, 204, NULL);
out:
	json_decref(user);
}

void
h_me_totp_enroll(struct api_call *c)
{
	char *uri = NULL;
	int r;

	api__target(c, "user", "name", c->who->username);
	if ((r = identity_totp_enroll(c->app->identity, c->who->user_id,
	    &uri)) != 0) {
		if (r == MOAT_ERR_EXISTS)
			api_error(c, 409, "exists", "TOTP is already enabled");
		else
			api__fail(c, r, "TOTP enrollment");
		return;
	}
	api_reply(c, 200, json_pack("{s:s}", "otpauth_uri", uri));
	explicit_bzero(uri, strlen(uri));
	free(uri);
}

int
v_totp_code(const json_t *body, char *err, size_t errlen)
{
	const char *code = json_get_str(body, "code");
	size_t n = code != NULL ? strlen(code) : 0;

	if (n != 6 || strspn(code, "0123456789") != 6) {
		snprintf(err, errlen, "code must be 6 digits");
		return MOAT_ERR_INVAL;
	}
	return 0;
}

void
h_me_totp_confirm(struct api_call *c)
{
	json_t *user = NULL;
	int r;

	api__target(c, "user", "name", c->who->username);
	if ((r = identity_user_get(c->app->identity, c->who->user_id,
	    &user)) != 0) {
		api__fail(c, r, "user");
		return;
	}
	if (identity_totp_enabled(user)) {
		json_decref(user);
		api_error(c, 409, "conflict", "TOTP is already enabled");
		return;
	}
	/* On a pending enrollment a valid code confirms it. */
	r = identity_totp_verify(c->app->identity, user,
	    json_get_str(c->body, "code"));
	json_decref(user);
	if (r == MOAT_ERR_PERM || r == MOAT_ERR_CRYPTO) {
		api_error(c, 400, "invalid_code", "the code is not valid");
		return;
	}
	if (r == MOAT_ERR_NOTFOUND) {
		api_error(c, 409, "conflict", "no TOTP enrollment is pending");
		return;
	}
	if (r != 0) {
		api__fail(c, r, "TOTP enrollment");
		return;
	}
	api_reply(c, 200, json_pack("{s:b}", "totp_enabled", 1));
}

/* --- administration --- */

int
v_user_create(const json_t *body, char *err, size_t errlen)
{
	const char *u = json_get_str(body, "username");
	const char *role = json_get_str(body, "role");
	char why[160];

	if (identity_check_name(u, true, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "username: %s", why);
		return MOAT_ERR_INVAL;
	}
	if (role != NULL && rbac_role_parse(role) < 0) {
		snprintf(err, errlen, "role is not a known role (owner, admin, "
		    "template-admin, auditor, security-officer, member)");
		return MOAT_ERR_INVAL;
	}
	if (identity_check_password(json_get_str(body, "password"), u, why,
	    sizeof(why)) != 0) {
		snprintf(err, errlen, "password: %s", why);
		return MOAT_ERR_INVAL;
	}
	return 0;
}

void
h_users_create(struct api_call *c)
{
	const char *username = json_get_str(c->body, "username");
	const char *role = json_get_str(c->body, "role");
	json_t *doc = NULL;
	char hash[128], err[200] = "";
	int r;

	if (role == NULL)
		role = "member";
	api__target(c, "user", "name", username);
	c->audit_details = json_pack("{s:s}", "role", role);
	if (rbac_role_parse(role) == ROLE_OWNER && !is_owner(c->who)) {
		api_error(c, 403, "forbidden", "only an owner can create an owner");
		return;
	}
	if ((r = identity_password_hash(json_get_str(c->body, "password"),
	    hash)) != 0) {
		api__fail(c, r, "password hash");
		return;
	}
	r = identity_user_create(c->app->identity, username, hash, role, &doc,
	    err, sizeof(err));
	explicit_bzero(hash, sizeof(hash));
	if (r == MOAT_ERR_EXISTS) {
		api_error(c, 409, "exists", "a user with that name already exists");
		goto out;
	}
	if (r == MOAT_ERR_INVAL) {
		api_error(c, 400, "invalid_request", "%s",
		    err[0] != '\0' ? err : "invalid user");
		goto out;
	}
	if (r != 0) {
		api__fail(c, r, "user");
		goto out;
	}
	api_reply(c, 201, users_view(c->app, doc, c->app->default_org));
out:
	json_decref(doc);
}

static int
list_params(struct api_call *c, size_t *limit, char *after, size_t afterlen)
{
	char v[32];
	int r;

	*limit = LIST_DEFAULT;
	after[0] = '\0';
	if ((r = api__query(c->query, "limit", v, sizeof(v))) == 1) {
		char *end;
		long n = strtol(v, &end, 10);

		if (*end != '\0' || v[0] == '\0' || n < 1 || n > LIST_MAX) {
			api_error(c, 400, "invalid_request",
			    "limit must be a number from 1 to %d", LIST_MAX);
			return MOAT_ERR_INVAL;
		}
		*limit = (size_t)n;
	} else if (r < 0) {
		api_error(c, 400, "invalid_request", "limit is malformed");
		return MOAT_ERR_INVAL;
	}
	if (api__query(c->query, "after", after, afterlen) < 0) {
		api_error(c, 400, "invalid_request", "after is malformed");
		return MOAT_ERR_INVAL;
	}
	return 0;
}

void
h_users_list(struct api_call *c)
{
	json_t *list = NULL, *out = NULL, *u;
	char after[80];
	size_t limit, i;
	int r;

	if (list_params(c, &limit, after, sizeof(after)) != 0)
		return;
	if ((r = store_list(c->app->store, "users", NULL, NULL,
	    after[0] != '\0' ? after : NULL, limit, &list)) != 0) {
		api__fail(c, r, "users");
		return;
	}
	if ((out = json_array()) == NULL) {
		api__fail(c, MOAT_ERR_NOMEM, "users");
		goto done;
	}
	json_array_foreach(list, i, u)
		json_array_append_new(out, users_view(c->app, u, c->who->org));
	api_reply(c, 200, json_pack("{s:o,s:O*}", "users", out, "next",
	    json_array_size(list) == limit ? json_object_get(
	    json_array_get(list, limit - 1), "id") : NULL));
done:
	json_decref(list);
}

void
h_users_get(struct api_call *c)
{
	json_t *user = NULL;
	int r;

	if ((r = api__user_by_name(c->app, api_param(c, "username"), &user)) != 0) {
		api__fail(c, r, "user");
		return;
	}
	api_reply(c, 200, users_view(c->app, user, c->who->org));
	json_decref(user);
}

static void
users_set_disabled(struct api_call *c, bool disabled)
{
	const char *name = api_param(c, "username");
	json_t *user = NULL;
	role_mask roles = 0;
	int r;

	api__target(c, "user", "name", name);
	if ((r = api__user_by_name(c->app, name, &user)) != 0) {
		api__fail(c, r, "user");
		return;
	}
	if (strcmp(json_get_str(user, "id"), c->who->user_id) == 0) {
		api_error(c, 409, "conflict", "you cannot disable or enable "
		    "yourself");
		goto out;
	}
	if ((r = api__membership(c->app, json_get_str(user, "id"), c->who->org,
	    &roles, NULL)) != 0) {
		api__fail(c, r, "membership");
		goto out;
	}
	if ((roles & (1u << ROLE_OWNER)) != 0 && !is_owner(c->who)) {
		api_error(c, 403, "forbidden", "only an owner can disable or "
		    "enable an owner");
		goto out;
	}
	if ((r = identity_user_set_disabled(c->app->identity,
	    json_get_str(user, "id"), disabled)) != 0) {
		api__fail(c, r, "user");
		goto out;
	}
	/* A disabled user's workspaces stop (their sessions already ended). */
	if (disabled && c->app->orch != NULL &&
	    (r = orch_stop_user(c->app->orch, json_get_str(user, "id"))) != 0)
		log_warn("api", "cannot stop a disabled user's workspaces",
		    LF_STR("user", name), LF_STR("error", moat_strerror(r)));
	json_decref(user);
	user = NULL;
	if ((r = api__user_by_name(c->app, name, &user)) != 0) {
		api__fail(c, r, "user");
		return;
	}
	api_reply(c, 200, users_view(c->app, user, c->who->org));
out:
	json_decref(user);
}

void
h_users_disable(struct api_call *c)
{
	users_set_disabled(c, true);
}

void
h_users_enable(struct api_call *c)
{
	users_set_disabled(c, false);
}

int
v_roles(const json_t *body, char *err, size_t errlen)
{
	const json_t *arr = json_object_get(body, "roles");
	const json_t *v;
	size_t i;

	json_array_foreach(arr, i, v) {
		if (!json_is_string(v) || rbac_role_parse(json_string_value(v)) < 0) {
			snprintf(err, errlen, "roles[%zu] is not a known role "
			    "(owner, admin, template-admin, auditor, "
			    "security-officer, member)", i);
			return MOAT_ERR_INVAL;
		}
	}
	return 0;
}

/* Shared by PUT users/{u}/roles and PUT orgs/{org}/members/{u}. */
int
api__set_roles(struct api_call *c, const char *org, const char *username)
{
	json_t *user = NULL;
	role_mask want, have = 0;
	const role_mask owner = 1u << ROLE_OWNER;
	int r;

	if (api__roles_from_json(c, json_object_get(c->body, "roles"), &want) != 0)
		return MOAT_ERR_INVAL;
	c->audit_details = json_pack("{s:s,s:o}", "org", org, "roles",
	    api__roles_json(want));
	if ((r = api__user_by_name(c->app, username, &user)) != 0) {
		api__fail(c, r, "user");
		return r;
	}
	if ((r = api__membership(c->app, json_get_str(user, "id"), org, &have,
	    NULL)) != 0) {
		api__fail(c, r, "membership");
		goto out;
	}
	if (((want ^ have) & owner) != 0 && !is_owner(c->who)) {
		api_error(c, 403, "forbidden",
		    "only an owner can grant or remove the owner role");
		r = MOAT_ERR_PERM;
		goto out;
	}
	if (strcmp(json_get_str(user, "id"), c->who->user_id) == 0 &&
	    (have & owner) != 0 && (want & owner) == 0) {
		api_error(c, 409, "conflict",
		    "you cannot remove your own owner role");
		r = MOAT_ERR_CONFLICT;
		goto out;
	}
	if ((r = identity_user_set_roles(c->app->identity,
	    json_get_str(user, "id"), org, want)) != 0) {
		api__fail(c, r, "membership");
		goto out;
	}
	api_reply(c, 200, json_pack("{s:s,s:s,s:o}", "username", username,
	    "org", org, "roles", api__roles_json(want)));
out:
	json_decref(user);
	return r;
}

void
h_users_roles(struct api_call *c)
{
	const char *name = api_param(c, "username");

	api__target(c, "user", "name", name);
	(void)api__set_roles(c, c->who->org, name);
}
