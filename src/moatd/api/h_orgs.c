/*
 * h_orgs.c - organizations, memberships and each organization's security
 * settings (DESIGN.md section 5a).
 *
 * A caller's roles belong to one organization (principal.org). Routes that
 * name another organization answer 404 unless the caller may manage
 * organizations (orgs:write), so nobody learns which organizations exist
 * through them.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "identity/identity.h"
#include "policy.h"
#include "store/store.h"

#include "api/api.h"
#include "api/api_int.h"

int
v_org_create(const json_t *body, char *err, size_t errlen)
{
	char why[160];

	if (identity_check_name(json_get_str(body, "name"), false, why,
	    sizeof(why)) != 0) {
		snprintf(err, errlen, "name: %s", why);
		return MOAT_ERR_INVAL;
	}
	return 0;
}

/* 0 when org exists and the caller may see it; otherwise answered 404. */
static int
orgs_visible(struct api_call *c, const char *org)
{
	json_t *doc = NULL;
	int r;

	if (strcmp(org, c->who->org) != 0 &&
	    !rbac_allows(c->who->roles, PERM_ORGS_WRITE)) {
		api_error(c, 404, "not_found", "organization not found");
		return MOAT_ERR_NOTFOUND;
	}
	if (strcmp(org, c->app->default_org) == 0)
		return 0;
	if ((r = store_get(c->app->store, "orgs", org, &doc)) != 0) {
		api__fail(c, r, "organization");
		return r;
	}
	json_decref(doc);
	return 0;
}

void
h_orgs_list(struct api_call *c)
{
	json_t *list = NULL, *out, *o;
	bool have_default = false;
	size_t i;
	int r;

	if ((r = store_list(c->app->store, "orgs", NULL, NULL, NULL, 1000,
	    &list)) != 0) {
		api__fail(c, r, "organizations");
		return;
	}
	if ((out = json_array()) == NULL) {
		json_decref(list);
		api__fail(c, MOAT_ERR_NOMEM, "organizations");
		return;
	}
	json_array_foreach(list, i, o) {
		const char *name = json_get_str(o, "id");

		if (name == NULL)
			continue;
		if (strcmp(name, c->app->default_org) == 0)
			have_default = true;
		json_array_append_new(out, json_pack("{s:s,s:s?}", "name", name,
		    "created_at", json_get_str(o, "created_at")));
	}
	if (!have_default)
		json_array_insert_new(out, 0, json_pack("{s:s}", "name",
		    c->app->default_org));
	json_decref(list);
	api_reply(c, 200, json_pack("{s:o}", "orgs", out));
}

void
h_orgs_create(struct api_call *c)
{
	const char *name = json_get_str(c->body, "name");
	json_t *doc;
	int r;

	api__target(c, "org", "name", name);
	if (strcmp(name, c->app->default_org) == 0) {
		api_error(c, 409, "exists", "organization already exists");
		return;
	}
	if ((doc = json_pack("{s:s}", "id", name)) == NULL) {
		api__fail(c, MOAT_ERR_NOMEM, "organization");
		return;
	}
	if ((r = store_insert(c->app->store, "orgs", doc)) != 0) {
		api__fail(c, r, "organization");
	} else {
		api_reply(c, 201, json_pack("{s:s,s:s?}", "name", name,
		    "created_at", json_get_str(doc, "created_at")));
	}
	json_decref(doc);
}

void
h_orgs_member_get(struct api_call *c)
{
	const char *org = api_param(c, "org");
	const char *name = api_param(c, "username");
	json_t *user = NULL;
	role_mask roles = 0;
	int r;

	if (orgs_visible(c, org) != 0)
		return;
	if ((r = api__user_by_name(c->app, name, &user)) != 0) {
		api__fail(c, r, "user");
		return;
	}
	r = api__membership(c->app, json_get_str(user, "id"), org, &roles, NULL);
	json_decref(user);
	if (r != 0) {
		api__fail(c, r, "membership");
		return;
	}
	if (roles == 0) {
		api_error(c, 404, "not_found", "membership not found");
		return;
	}
	api_reply(c, 200, json_pack("{s:s,s:s,s:o}", "username", name, "org",
	    org, "roles", api__roles_json(roles)));
}

void
h_orgs_member_put(struct api_call *c)
{
	const char *org = api_param(c, "org");
	const char *name = api_param(c, "username");

	api__target(c, "user", "name", name);
	if (orgs_visible(c, org) != 0)
		return;
	(void)api__set_roles(c, org, name);
}

/* --- security settings --- */

int
v_settings(const json_t *body, char *err, size_t errlen)
{
	char path[128] = "", why[200] = "";
	json_t *out = NULL;
	int r = settings_normalize(body, &out, path, sizeof(path), why,
	    sizeof(why));

	json_decref(out);
	if (r != 0) {
		snprintf(err, errlen, "%s%s%s", path, path[0] != '\0' ? ": " : "",
		    why[0] != '\0' ? why : "invalid settings");
		return MOAT_ERR_INVAL;
	}
	return 0;
}

/* The stored settings document of org, or the defaults. New reference. */
static json_t *
settings_view(const json_t *stored)
{
	static const char *const drop[] = { "id", "rev", NULL };
	json_t *v = json_deep_copy(stored);

	for (size_t i = 0; v != NULL && drop[i] != NULL; i++)
		json_object_del(v, drop[i]);
	return v;
}

void
h_settings_get(struct api_call *c)
{
	const char *org = api_param(c, "org");
	json_t *doc = NULL;
	int r;

	if (orgs_visible(c, org) != 0)
		return;
	r = store_get(c->app->store, "settings", org, &doc);
	if (r == MOAT_ERR_NOTFOUND) {
		api_reply(c, 200, settings_default());
		return;
	}
	if (r != 0) {
		api__fail(c, r, "settings");
		return;
	}
	api_reply(c, 200, settings_view(doc));
	json_decref(doc);
}

void
h_settings_put(struct api_call *c)
{
	const char *org = api_param(c, "org");
	json_t *norm = NULL, *cur = NULL, *pol = NULL;
	char path[128] = "", why[200] = "";
	const char *dp;
	int r;

	api__target(c, "org", "name", org);
	if (orgs_visible(c, org) != 0)
		return;
	if (settings_normalize(c->body, &norm, path, sizeof(path), why,
	    sizeof(why)) != 0) {
		api_error(c, 400, "invalid_request", "%s: %s", path, why);
		return;
	}
	if ((dp = json_get_str(norm, "default_policy")) != NULL) {
		r = store_get(c->app->store, "policies", dp, &pol);
		json_decref(pol);
		if (r == MOAT_ERR_NOTFOUND) {
			api_error(c, 400, "invalid_request",
			    "default_policy: no policy has that name");
			goto out;
		} else if (r != 0) {
			api__fail(c, r, "policy");
			goto out;
		}
	}
	r = store_get(c->app->store, "settings", org, &cur);
	json_object_set_new(norm, "id", json_string(org));
	if (r == MOAT_ERR_NOTFOUND) {
		r = store_insert(c->app->store, "settings", norm);
	} else if (r == 0) {
		json_object_set(norm, "rev", json_object_get(cur, "rev"));
		r = store_update(c->app->store, "settings", norm);
	}
	if (r != 0) {
		api__fail(c, r, "settings");
		goto out;
	}
	c->audit_details = json_deep_copy(c->body);
	api_reply(c, 200, settings_view(norm));
out:
	json_decref(cur);
	json_decref(norm);
}
