/*
 * h_templates.c - workspace templates as API entities (collection
 * "templates", id generated, "name" unique; DESIGN.md section 5 and
 * templates/template.h for the document).
 *
 * Template admins (and admins) write them; every member reads them, to
 * choose one for a workspace. A caller sees the templates of its own
 * organization only (others answer 404). The shape of a body is checked
 * on the CPU by the route's validator (v_template, template_normalize());
 * the handlers add what needs the store, inside one transaction with the
 * write so that a concurrent change cannot slip between check and write:
 * the image's registry must be on the organization's allow-list
 * (settings "registries"), and a named egress policy must exist. A policy
 * that a template names cannot be deleted (h_policies.c).
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "imageref.h"
#include "policy.h"
#include "store/schema.h"
#include "store/store.h"
#include "templates/template.h"

#include "api/api.h"
#include "api/api_int.h"

int
v_template(const json_t *body, char *err, size_t errlen)
{
	json_t *out = NULL;
	const char *name = json_get_str(body, "name");
	int r;

	/* PUT may leave the name to the path: any valid name stands in. */
	r = template_normalize(body, name != NULL ? NULL : "template", "org",
	    &out, err, errlen);
	json_decref(out);
	return r == 0 ? 0 : MOAT_ERR_INVAL;
}

static json_t *
template_view(const json_t *doc)
{
	return api__public(doc);
}

/* A write, its checks and its outcome, run inside store_transaction(). */
struct tpl_write {
	const char *org;
	const char *name;
	json_t *doc;		/* normalized; borrowed */
	bool create;
	/* out */
	int status;		/* 400, 404, 409 when refused */
	const char *code;
	char msg[256];
};

static int
tpl_refuse(struct tpl_write *w, int status, const char *code, int r)
{
	w->status = status;
	w->code = code;
	return r;
}

/* The organization's registries allow-list and the named policy. */
static int
tpl_check(struct store *st, struct tpl_write *w)
{
	struct imageref ref;
	json_t *set = NULL, *pol = NULL, *regs;
	const char *pname = json_get_str(w->doc, "egress_policy");
	char why[160];
	int r;

	if (imageref_parse(json_get_str(w->doc, "image"), &ref, why,
	    sizeof(why)) != 0) {
		snprintf(w->msg, sizeof(w->msg), "image: %s", why);
		return tpl_refuse(w, 400, "invalid_request", MOAT_ERR_INVAL);
	}
	r = store_get(st, COLL_SETTINGS, w->org, &set);
	if (r == MOAT_ERR_NOTFOUND) {
		set = settings_default();
		r = set != NULL ? 0 : MOAT_ERR_NOMEM;
	}
	if (r != 0)
		goto out;
	regs = json_object_get(set, "registries");
	if (!imageref_registry_allowed(&ref, regs)) {
		snprintf(w->msg, sizeof(w->msg), "image: the registry %.160s is "
		    "not on the organization's allow-list (settings: "
		    "registries)", ref.registry);
		r = tpl_refuse(w, 400, "invalid_request", MOAT_ERR_INVAL);
		goto out;
	}
	if (pname != NULL) {
		r = store_get(st, COLL_POLICIES, pname, &pol);
		if (r == MOAT_ERR_NOTFOUND) {
			snprintf(w->msg, sizeof(w->msg), "egress_policy: no "
			    "policy has that name");
			r = tpl_refuse(w, 400, "invalid_request", MOAT_ERR_INVAL);
			goto out;
		}
		if (r != 0)
			goto out;
	}
	r = 0;
out:
	json_decref(set);
	json_decref(pol);
	return r;
}

static int
tpl_write_txn(struct store *st, void *arg)
{
	struct tpl_write *w = arg;
	json_t *cur = NULL;
	const char *corg;
	int r;

	if ((r = tpl_check(st, w)) != 0)
		return r;
	if (w->create) {
		r = store_insert(st, COLL_TEMPLATES, w->doc);
		if (r == MOAT_ERR_EXISTS) {
			snprintf(w->msg, sizeof(w->msg), "a template with that "
			    "name exists already");
			return tpl_refuse(w, 409, "exists", r);
		}
		return r;
	}
	r = store_find_one(st, COLL_TEMPLATES, "name", w->name, &cur);
	corg = json_get_str(cur, "org");
	if (r == MOAT_ERR_NOTFOUND ||
	    (r == 0 && (corg == NULL || strcmp(corg, w->org) != 0))) {
		snprintf(w->msg, sizeof(w->msg), "template not found");
		r = tpl_refuse(w, 404, "not_found", MOAT_ERR_NOTFOUND);
		goto out;
	}
	if (r != 0)
		goto out;
	r = MOAT_ERR_NOMEM;
	if (json_object_set(w->doc, "id", json_object_get(cur, "id")) != 0 ||
	    json_object_set(w->doc, "rev", json_object_get(cur, "rev")) != 0 ||
	    json_object_set(w->doc, "created_at",
	    json_object_get(cur, "created_at")) != 0)
		goto out;
	r = store_update(st, COLL_TEMPLATES, w->doc);
out:
	json_decref(cur);
	return r;
}

/* POST (create) and PUT (replace) share everything but the name's source
 * and what an existing or missing template means. */
static void
templates_write(struct api_call *c, const char *name, bool create)
{
	struct tpl_write w = { 0 };
	json_t *doc = NULL;
	char err[256];
	int r;

	if (name != NULL)
		api__target(c, "template", "name", name);
	if ((r = template_normalize(c->body, name, c->who->org, &doc, err,
	    sizeof(err))) != 0) {
		if (r == MOAT_ERR_INVAL)
			api_error(c, 400, "invalid_request", "%s", err);
		else
			api__fail(c, r, "template");
		return;
	}
	name = json_get_str(doc, "name");
	api__target(c, "template", "name", name);
	w.org = c->who->org;
	w.name = name;
	w.doc = doc;
	w.create = create;
	r = store_transaction(c->app->store, tpl_write_txn, &w);
	c->audit_details = json_pack("{s:b, s:O, s:O}", "created", create,
	    "image", json_object_get(doc, "image"), "egress_policy",
	    json_object_get(doc, "egress_policy"));
	if (r != 0) {
		if (w.status != 0)
			api_error(c, w.status, w.code, "%s", w.msg);
		else
			api__fail(c, r, "template");
		goto out;
	}
	api_reply(c, create ? 201 : 200, template_view(doc));
out:
	json_decref(doc);
}

void
h_templates_create(struct api_call *c)
{
	templates_write(c, NULL, true);
}

void
h_templates_put(struct api_call *c)
{
	templates_write(c, api_param(c, "name"), false);
}

void
h_templates_list(struct api_call *c)
{
	json_t *list = NULL, *out, *t;
	size_t i;
	int r;

	if ((r = store_list(c->app->store, COLL_TEMPLATES, "org", c->who->org,
	    NULL, 0, &list)) != 0) {
		api__fail(c, r, "templates");
		return;
	}
	if ((out = json_array()) == NULL) {
		json_decref(list);
		api__fail(c, MOAT_ERR_NOMEM, "templates");
		return;
	}
	json_array_foreach(list, i, t)
		json_array_append_new(out, template_view(t));
	json_decref(list);
	api_reply(c, 200, json_pack("{s:o}", "templates", out));
}

/* The caller's organization's template named in the path, or answered
 * 404 (also for a name that breaks the name rule: nothing has it). */
static json_t *
templates_find(struct api_call *c)
{
	const char *name = api_param(c, "name");
	const char *org;
	json_t *doc = NULL;
	char why[160];
	int r;

	api__target(c, "template", "name", name);
	if (identity_check_name(name, false, why, sizeof(why)) != 0) {
		api__fail(c, MOAT_ERR_NOTFOUND, "template");
		return NULL;
	}
	r = store_find_one(c->app->store, COLL_TEMPLATES, "name", name, &doc);
	if (r == 0 && ((org = json_get_str(doc, "org")) == NULL ||
	    strcmp(org, c->who->org) != 0))
		r = MOAT_ERR_NOTFOUND;
	if (r != 0) {
		json_decref(doc);
		api__fail(c, r, "template");
		return NULL;
	}
	return doc;
}

void
h_templates_get(struct api_call *c)
{
	json_t *doc = templates_find(c);

	if (doc == NULL)
		return;
	api_reply(c, 200, template_view(doc));
	json_decref(doc);
}

void
h_templates_delete(struct api_call *c)
{
	json_t *doc = templates_find(c);
	int r;

	if (doc == NULL)
		return;
	/* Workspaces keep a snapshot of their template (orch.h): deleting
	 * one changes no existing workspace. */
	if ((r = store_delete(c->app->store, COLL_TEMPLATES,
	    json_get_str(doc, "id"), json_get_int(doc, "rev", -1))) != 0) {
		api__fail(c, r, "template");
		goto out;
	}
	c->audit_details = json_pack("{s:O}", "image",
	    json_object_get(doc, "image"));
	api_reply(c, 204, NULL);
out:
	json_decref(doc);
}
