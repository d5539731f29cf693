/*
 * h_policies.c - egress policies (DESIGN.md section 5a) as stored entities
 * (collection "policies", id = the policy's name).
 *
 * A body is a policy document in JSON, or the same in YAML with
 * Content-Type application/yaml (api.c converts it). policy.c validates
 * and normalizes it; a refusal names the offending field's path. "default"
 * cannot be deleted, nor can a policy an organization uses as its
 * default_policy or a workspace template names as its egress_policy.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "identity/identity.h"
#include "policy.h"
#include "store/schema.h"
#include "store/store.h"

#include "api/api.h"
#include "api/api_int.h"

#define POLICIES "policies"

/* policy_normalize() of body, named name when the body does not say. */
static int
policies_normalize(const json_t *body, const char *name, json_t **out,
    char *err, size_t errlen)
{
	char path[128] = "", why[200] = "";
	json_t *doc = json_deep_copy(body);
	int r;

	*out = NULL;
	if (doc == NULL)
		return MOAT_ERR_NOMEM;
	if (json_object_get(doc, "name") == NULL)
		json_object_set_new(doc, "name", json_string(name));
	r = policy_normalize(doc, out, path, sizeof(path), why, sizeof(why));
	json_decref(doc);
	if (r != 0) {
		snprintf(err, errlen, "%s%s%s", path, path[0] != '\0' ? ": " : "",
		    why[0] != '\0' ? why : "invalid policy");
		return MOAT_ERR_INVAL;
	}
	return 0;
}

int
v_policy(const json_t *body, char *err, size_t errlen)
{
	json_t *out = NULL;
	int r = policies_normalize(body, "policy", &out, err, errlen);

	json_decref(out);
	return r;
}

static json_t *
policy_view(const json_t *doc)
{
	json_t *v = api__public(doc);

	if (v != NULL)
		json_object_del(v, "id");
	return v;
}

/* The name in the path, checked; answered 400 when bad. */
static const char *
policies_name(struct api_call *c)
{
	const char *name = api_param(c, "name");
	char why[160];

	api__target(c, "policy", "name", name);
	if (identity_check_name(name, false, why, sizeof(why)) != 0) {
		api_error(c, 400, "invalid_request", "name: %s", why);
		return NULL;
	}
	return name;
}

void
h_policies_list(struct api_call *c)
{
	json_t *list = NULL, *out, *p;
	size_t i;
	int r;

	if ((r = store_list(c->app->store, POLICIES, NULL, NULL, NULL, 0,
	    &list)) != 0) {
		api__fail(c, r, "policies");
		return;
	}
	if ((out = json_array()) == NULL) {
		json_decref(list);
		api__fail(c, MOAT_ERR_NOMEM, "policies");
		return;
	}
	json_array_foreach(list, i, p)
		json_array_append_new(out, policy_view(p));
	json_decref(list);
	api_reply(c, 200, json_pack("{s:o}", "policies", out));
}

void
h_policies_get(struct api_call *c)
{
	const char *name = api_param(c, "name");
	json_t *doc = NULL;
	int r;

	if (!store_valid_id(name)) {
		api__fail(c, MOAT_ERR_NOTFOUND, "policy");
		return;
	}
	if ((r = store_get(c->app->store, POLICIES, name, &doc)) != 0) {
		api__fail(c, r, "policy");
		return;
	}
	api_reply(c, 200, policy_view(doc));
	json_decref(doc);
}

void
h_policies_put(struct api_call *c)
{
	const char *name, *bname;
	json_t *norm = NULL, *cur = NULL;
	char err[300];
	int r;

	if ((name = policies_name(c)) == NULL)
		return;
	bname = json_get_str(c->body, "name");
	if (bname != NULL && strcmp(bname, name) != 0) {
		api_error(c, 400, "invalid_request",
		    "name: must match the name in the path");
		return;
	}
	if ((r = policies_normalize(c->body, name, &norm, err,
	    sizeof(err))) != 0) {
		if (r == MOAT_ERR_INVAL)
			api_error(c, 400, "invalid_request", "%s", err);
		else
			api__fail(c, r, "policy");
		goto out;
	}
	json_object_set_new(norm, "id", json_string(name));
	r = store_get(c->app->store, POLICIES, name, &cur);
	if (r == MOAT_ERR_NOTFOUND) {
		r = store_insert(c->app->store, POLICIES, norm);
		c->audit_details = json_pack("{s:b}", "created", 1);
	} else if (r == 0) {
		json_object_set(norm, "rev", json_object_get(cur, "rev"));
		json_object_set(norm, "created_at",
		    json_object_get(cur, "created_at"));
		r = store_update(c->app->store, POLICIES, norm);
		c->audit_details = json_pack("{s:b}", "created", 0);
	}
	if (r != 0) {
		api__fail(c, r, "policy");
		goto out;
	}
	json_object_set(c->audit_details, "policy", c->body);
	api_reply(c, cur == NULL ? 201 : 200, policy_view(norm));
out:
	json_decref(cur);
	json_decref(norm);
}

/* What keeps a policy from being deleted, checked in the transaction of
 * the delete: an organization's default_policy or a template naming it. */
struct pol_delete {
	const char *name;
	char msg[200];		/* set when refused (409) */
};

static int
pol_delete_txn(struct store *st, void *arg)
{
	struct pol_delete *d = arg;
	json_t *doc = NULL, *settings = NULL, *s, *tpls = NULL;
	size_t i;
	int r;

	if ((r = store_get(st, POLICIES, d->name, &doc)) != 0)
		goto out;
	if ((r = store_list(st, "settings", NULL, NULL, NULL, 0,
	    &settings)) != 0)
		goto out;
	json_array_foreach(settings, i, s) {
		const char *dp = json_get_str(s, "default_policy");

		if (dp != NULL && strcmp(dp, d->name) == 0) {
			snprintf(d->msg, sizeof(d->msg), "organization %s uses "
			    "this policy as its default_policy",
			    json_get_str(s, "id") != NULL ?
			    json_get_str(s, "id") : "?");
			r = MOAT_ERR_CONFLICT;
			goto out;
		}
	}
	if ((r = store_list(st, COLL_TEMPLATES, "egress_policy", d->name, NULL,
	    1, &tpls)) != 0)
		goto out;
	if (json_array_size(tpls) > 0) {
		snprintf(d->msg, sizeof(d->msg), "template %s names this policy "
		    "as its egress_policy", json_get_str(json_array_get(tpls,
		    0), "name") != NULL ? json_get_str(json_array_get(tpls, 0),
		    "name") : "?");
		r = MOAT_ERR_CONFLICT;
		goto out;
	}
	r = store_delete(st, POLICIES, d->name, json_get_int(doc, "rev", -1));
out:
	json_decref(tpls);
	json_decref(settings);
	json_decref(doc);
	return r;
}

void
h_policies_delete(struct api_call *c)
{
	struct pol_delete d = { 0 };
	int r;

	if ((d.name = policies_name(c)) == NULL)
		return;
	if (strcmp(d.name, "default") == 0) {
		api_error(c, 409, "conflict",
		    "the default policy cannot be deleted");
		return;
	}
	r = store_transaction(c->app->store, pol_delete_txn, &d);
	if (r != 0) {
		if (d.msg[0] != '\0')
			api_error(c, 409, "conflict", "%s", d.msg);
		else
			api__fail(c, r, "policy");
		return;
	}
	api_reply(c, 204, NULL);
}
