/*
 * h_workspaces.c - the workspaces API (collection "workspaces"): create,
 * list, show, start, stop, restart, delete, events (Server-Sent Events),
 * logs and stats. Handlers only record desired state through the
 * orchestrator (orch.h); the reconciler does the work.
 *
 * Paths name a workspace by its owner's user name and its own name:
 * /api/v1/workspaces/{owner}/{name}. A caller reaches their own
 * workspaces with workspaces.own; anyone else's needs workspaces.all, and
 * without it someone else's workspace answers 404 (its existence is not
 * revealed). Creating a workspace for someone else needs workspaces.all
 * too (403).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "imageref.h"
#include "json.h"
#include "log.h"
#include "policy.h"
#include "store/schema.h"
#include "store/store.h"
#include "uri.h"

#include "orchestrator/orch.h"
#include "api/api.h"
#include "api/api_int.h"

#define WORKSPACES "workspaces"

/* Workspace names: a DNS label, [a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?. */
static bool
ws_name_ok(const char *s)
{
	return s != NULL && uri_dns_label(s, strlen(s));
}

int
v_workspace_create(const json_t *body, char *err, size_t errlen)
{
	if (!ws_name_ok(json_get_str(body, "name"))) {
		snprintf(err, errlen, "name must be 1 to 63 lower-case letters, "
		    "digits or '-', not starting or ending with '-'");
		return MOAT_ERR_INVAL;
	}
	return 0;
}

static bool
may_all(const struct api_call *c)
{
	return rbac_allows(c->who->roles, PERM_WORKSPACES_ALL);
}

static bool
ready(struct api_call *c)
{
	if (c->app->orch == NULL) {
		api_error(c, 503, "unavailable", "this moatd does not run "
		    "workspaces (no container runtime)");
		return false;
	}
	return true;
}

/* The workspace named by the path, when the caller may see it. 0 and
 * *out, or an answer already given. */
static int
ws_lookup(struct api_call *c, json_t **out)
{
	const char *owner = api_param(c, "owner");
	const char *name = api_param(c, "name");
	json_t *user = NULL;
	char key[160];
	int r;

	*out = NULL;
	api__target(c, "workspace", "name", name);
	if (c->audit_target != NULL)
		json_object_set_new(c->audit_target, "owner",
		    json_string(owner));
	if (strcmp(owner, c->who->username) != 0 && !may_all(c)) {
		api_error(c, 404, "not_found", "no such workspace");
		return MOAT_ERR_NOTFOUND;
	}
	if ((r = api__user_by_name(c->app, owner, &user)) != 0) {
		api_error(c, 404, "not_found", "no such workspace");
		return r;
	}
	snprintf(key, sizeof(key), "%s/%s", json_get_str(user, "id"), name);
	json_decref(user);
	if ((r = store_find_one(c->app->store, WORKSPACES, "owner_name", key,
	    out)) != 0) {
		if (r == MOAT_ERR_NOTFOUND)
			api_error(c, 404, "not_found", "no such workspace");
		else
			api__fail(c, r, "workspace");
		return r;
	}
	return 0;
}

/* The template's image must still come from an allowed registry (the
 * organization may have narrowed its list since the template was made). */
static int
image_allowed(struct api_call *c, const json_t *tmpl)
{
	json_t *settings = NULL;
	struct imageref ref;
	char err[200];
	bool ok;

	if (imageref_parse(json_get_str(tmpl, "image") ?
	    json_get_str(tmpl, "image") : "", &ref, err, sizeof(err)) != 0) {
		api_error(c, 400, "invalid_request", "the template's image "
		    "reference is invalid: %s", err);
		return MOAT_ERR_INVAL;
	}
	if (store_get(c->app->store, COLL_SETTINGS, c->who->org,
	    &settings) != 0)
		settings = settings_default();
	ok = imageref_registry_allowed(&ref, json_object_get(settings,
	    "registries"));
	json_decref(settings);
	if (!ok) {
		api_error(c, 400, "invalid_request", "the template's registry "
		    "%s is not on the organization's allow-list", ref.registry);
		return MOAT_ERR_PERM;
	}
	return 0;
}

void
h_workspaces_create(struct api_call *c)
{
	const char *name = json_get_str(c->body, "name");
	const char *tname = json_get_str(c->body, "template");
	const char *owner = json_get_str(c->body, "owner");
	json_t *user = NULL, *tmpl = NULL, *doc = NULL;
	char err[256] = "";
	int r;

	api__target(c, "workspace", "name", name);
	if (owner == NULL)
		owner = c->who->username;
	if (c->audit_target != NULL)
		json_object_set_new(c->audit_target, "owner",
		    json_string(owner));
	if (strcmp(owner, c->who->username) != 0 && !may_all(c)) {
		api_error(c, 403, "forbidden", "only an administrator may "
		    "create a workspace for someone else");
		return;
	}
	if ((r = api__user_by_name(c->app, owner, &user)) != 0) {
		if (r == MOAT_ERR_NOTFOUND)
			api_error(c, 400, "invalid_request", "no such user");
		else
			api__fail(c, r, "user");
		return;
	}
	if (json_is_true(json_object_get(user, "disabled"))) {
		api_error(c, 409, "conflict", "the user is disabled");
		goto out;
	}
	if ((r = store_find_one(c->app->store, COLL_TEMPLATES, "name", tname,
	    &tmpl)) != 0) {
		if (r == MOAT_ERR_NOTFOUND)
			api_error(c, 400, "invalid_request", "no such template");
		else
			api__fail(c, r, "template");
		goto out;
	}
	if (image_allowed(c, tmpl) != 0 || !ready(c))
		goto out;
	if ((r = orch_check_quota(c->app->orch, json_get_str(user, "id"),
	    false, err, sizeof(err))) != 0) {
		api_error(c, 409, "quota_exceeded", "%s", err);
		goto out;
	}
	if ((r = orch_create(c->app->orch, json_get_str(user, "id"), owner,
	    c->who->org, name, tmpl, &doc, err, sizeof(err))) != 0) {
		if (r == MOAT_ERR_EXISTS)
			api_error(c, 409, "conflict", "%s", err);
		else
			api__fail(c, r, "workspace");
		goto out;
	}
	json_object_set_new(c->audit_target, "id", json_string(json_get_str(doc,
	    "id")));
	api_reply(c, 201, orch_view(doc));
out:
	json_decref(doc);
	json_decref(tmpl);
	json_decref(user);
}

void
h_workspaces_list(struct api_call *c)
{
	char owner[80];
	json_t *list = NULL, *out = NULL, *d, *user = NULL;
	size_t i;
	int q, r;

	q = api__query(c->query, "owner", owner, sizeof(owner));
	if (q < 0) {
		api_error(c, 400, "invalid_request", "bad owner parameter");
		return;
	}
	if (q == 0)
		snprintf(owner, sizeof(owner), "%s", c->who->username);
	if (strcmp(owner, c->who->username) != 0 && !may_all(c)) {
		api_error(c, 403, "forbidden", "listing someone else's "
		    "workspaces needs the workspaces.all permission");
		return;
	}
	if (strcmp(owner, "*") == 0) {
		r = store_list(c->app->store, WORKSPACES, NULL, NULL, NULL, 0,
		    &list);
	} else {
		if ((r = api__user_by_name(c->app, owner, &user)) != 0) {
			api_reply(c, 200, json_pack("{s:[]}", "workspaces"));
			return;
		}
		r = store_list(c->app->store, WORKSPACES, "owner_id",
		    json_get_str(user, "id"), NULL, 0, &list);
	}
	if (r != 0) {
		api__fail(c, r, "workspaces");
		goto out;
	}
	if ((out = json_array()) == NULL)
		goto out;
	json_array_foreach(list, i, d)
		json_array_append_new(out, orch_view(d));
	api_reply(c, 200, json_pack("{s:o}", "workspaces", out));
out:
	json_decref(user);
	json_decref(list);
}

void
h_workspaces_get(struct api_call *c)
{
	json_t *doc = NULL;

	if (ws_lookup(c, &doc) != 0)
		return;
	api_reply(c, 200, orch_view(doc));
	json_decref(doc);
}

static void
ws_action(struct api_call *c, const char *what)
{
	json_t *doc = NULL, *after = NULL;
	char err[256];
	int r;

	if (ws_lookup(c, &doc) != 0)
		return;
	if (!ready(c))
		goto out;
	json_object_set_new(c->audit_target, "id", json_string(json_get_str(doc,
	    "id")));
	if ((strcmp(what, "running") == 0 || strcmp(what, "restart") == 0) &&
	    strcmp(json_get_str(doc, "desired"), "running") != 0 &&
	    (r = orch_check_quota(c->app->orch, json_get_str(doc, "owner_id"),
	    true, err, sizeof(err))) != 0) {
		api_error(c, 409, "quota_exceeded", "%s", err);
		goto out;
	}
	if ((r = orch_set_desired(c->app->orch, json_get_str(doc, "id"), what,
	    &after)) != 0) {
		if (r == MOAT_ERR_CONFLICT)
			api_error(c, 409, "conflict", "the workspace is being "
			    "deleted");
		else
			api__fail(c, r, "workspace");
		goto out;
	}
	api_reply(c, strcmp(what, "deleted") == 0 ? 202 : 200,
	    orch_view(after));
out:
	json_decref(after);
	json_decref(doc);
}

void
h_workspaces_start(struct api_call *c)
{
	ws_action(c, "running");
}

void
h_workspaces_stop(struct api_call *c)
{
	ws_action(c, "stopped");
}

void
h_workspaces_restart(struct api_call *c)
{
	ws_action(c, "restart");
}

void
h_workspaces_delete(struct api_call *c)
{
	ws_action(c, "deleted");
}

void
h_workspaces_logs(struct api_call *c)
{
	json_t *doc = NULL, *out = NULL;
	char off[24], err[256] = "";
	unsigned long long offset = 0;
	char *end;
	int r;

	if (ws_lookup(c, &doc) != 0)
		return;
	if (api__query(c->query, "offset", off, sizeof(off)) == 1) {
		offset = strtoull(off, &end, 10);
		if (end == off || *end != '\0') {
			api_error(c, 400, "invalid_request", "offset must be a "
			    "number");
			goto out;
		}
	}
	if (!ready(c))
		goto out;
	if (strcmp(json_get_str(doc, "state"), "running") != 0) {
		api_error(c, 409, "conflict", "the workspace is not running");
		goto out;
	}
	if ((r = orch_logs(c->app->orch, doc, offset, &out, err,
	    sizeof(err))) != 0) {
		api_error(c, 502, "agent_unavailable", "the workspace's agent "
		    "did not answer");
		goto out;
	}
	api_reply(c, 200, out);
out:
	json_decref(doc);
}

void
h_workspaces_stats(struct api_call *c)
{
	json_t *doc = NULL, *out = NULL;
	char err[256] = "";

	if (ws_lookup(c, &doc) != 0)
		return;
	if (!ready(c))
		goto out;
	if (strcmp(json_get_str(doc, "state"), "running") != 0) {
		api_error(c, 409, "conflict", "the workspace is not running");
		goto out;
	}
	if (orch_stats(c->app->orch, doc, &out, err, sizeof(err)) != 0) {
		api_error(c, 502, "runtime_unavailable", "the container runtime "
		    "did not answer");
		goto out;
	}
	api_reply(c, 200, out);
out:
	json_decref(doc);
}

struct ws_stream {
	char ws_id[80];
	uint64_t since;
};

static void
ws_stream_start(struct app *app, void *arg, struct bufferevent *bev,
    struct event_base *base)
{
	struct ws_stream *s = arg;

	orch_events_stream(app->orch, s->ws_id, s->since, bev, base);
	free(s);
}

void
h_workspaces_events(struct api_call *c)
{
	json_t *doc = NULL;
	struct ws_stream *s;
	char since[24] = "";
	const char *id;
	char *end;

	if (ws_lookup(c, &doc) != 0)
		return;
	if (!ready(c))
		goto out;
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		api__fail(c, MOAT_ERR_NOMEM, "events");
		goto out;
	}
	id = json_get_str(doc, "id");
	snprintf(s->ws_id, sizeof(s->ws_id), "%s", id);
	if (c->last_event_id != NULL)
		snprintf(since, sizeof(since), "%s", c->last_event_id);
	else if (api__query(c->query, "since", since, sizeof(since)) != 1)
		since[0] = '\0';
	if (since[0] != '\0') {
		s->since = strtoull(since, &end, 10);
		if (end == since || *end != '\0') {
			free(s);
			api_error(c, 400, "invalid_request", "the last event id "
			    "must be a number");
			goto out;
		}
	}
	c->stream_fn = ws_stream_start;
	c->stream_free = free;
	c->stream_arg = s;
out:
	json_decref(doc);
}
