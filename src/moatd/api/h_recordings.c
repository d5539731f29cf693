/*
 * h_recordings.c - session recordings (recordings/recstore.h):
 *
 *   GET /api/v1/recordings        metadata, newest first; filters
 *                                 ?user=NAME, ?workspace=OWNER/NAME or a
 *                                 workspace id; ?limit=1..500 (50);
 *                                 ?after=ID continues from "next"
 *   GET /api/v1/recordings/{id}   the plain asciicast v2 text
 *                                 (application/x-asciicast)
 *
 * Both need recordings:read (auditors, security officers, admins,
 * owners). Recordings hold whatever the session printed, so reading one
 * is itself an audit event ("recording.read", outcome success or failure,
 * the recording named); when that event cannot be recorded the text is
 * not sent (503). A recording whose metadata names another organization
 * than the caller's is invisible (404 / not listed).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "json.h"
#include "log.h"
#include "recordings/recstore.h"
#include "store/schema.h"
#include "store/store.h"

#include "api/api.h"
#include "api/api_int.h"

#define REC_LIMIT_DEFAULT 50
#define REC_LIMIT_MAX 500
#define REC_SCAN_PAGES 20	/* pages read to fill one filtered answer */

/* True when the caller's organization may see doc. */
static bool
rec_visible(const struct api_call *c, const json_t *doc)
{
	const char *org = json_get_str(doc, "org");

	return org == NULL || strcmp(org, c->who->org) == 0;
}

/* Resolves ?workspace= into a workspace id: "OWNER/NAME" through the
 * workspaces, anything else taken as an id. 0, or MOAT_ERR_NOTFOUND
 * (no match: an empty answer), or an error answered. */
static int
rec_workspace_id(struct api_call *c, const char *w, char *out, size_t outlen)
{
	const char *slash = strchr(w, '/');
	json_t *user = NULL, *ws = NULL;
	char owner[80], key[200];
	int r;

	if (slash == NULL) {
		if (!store_valid_id(w)) {
			api_error(c, 400, "invalid_request",
			    "workspace must be OWNER/NAME or a workspace id");
			return MOAT_ERR_INVAL;
		}
		snprintf(out, outlen, "%s", w);
		return 0;
	}
	if ((size_t)(slash - w) >= sizeof(owner) || slash[1] == '\0' ||
	    strchr(slash + 1, '/') != NULL) {
		api_error(c, 400, "invalid_request",
		    "workspace must be OWNER/NAME or a workspace id");
		return MOAT_ERR_INVAL;
	}
	memcpy(owner, w, (size_t)(slash - w));
	owner[slash - w] = '\0';
	if ((r = api__user_by_name(c->app, owner, &user)) != 0)
		goto out;
	if (snprintf(key, sizeof(key), "%s/%s", json_get_str(user, "id"),
	    slash + 1) >= (int)sizeof(key)) {
		r = MOAT_ERR_NOTFOUND;
		goto out;
	}
	if ((r = store_find_one(c->app->store, COLL_WORKSPACES, "owner_name",
	    key, &ws)) != 0)
		goto out;
	snprintf(out, outlen, "%s", json_get_str(ws, "id"));
	r = 0;
out:
	if (r != 0 && r != MOAT_ERR_NOTFOUND)
		api__fail(c, r, "workspace");
	json_decref(user);
	json_decref(ws);
	return r;
}

/* The public view of a recording's metadata. */
static json_t *
rec_view(const json_t *doc)
{
	json_t *v = api__public(doc);

	if (v != NULL)
		json_object_del(v, "updated_at");
	return v;
}

void
h_recordings_list(struct api_call *c)
{
	char user[80], ws[200], lim[16], after[40], user_id[64] = "",
	    ws_id[200] = "", cursor[40] = "";
	const char *field = NULL, *value = NULL;
	json_t *out = NULL, *page = NULL, *u = NULL, *d;
	bool has_user, has_ws, more = false;
	long long limit = REC_LIMIT_DEFAULT;
	size_t i;
	int q, r;

	if ((q = api__query(c->query, "user", user, sizeof(user))) < 0)
		goto bad;
	has_user = q == 1 && user[0] != '\0';
	if ((q = api__query(c->query, "workspace", ws, sizeof(ws))) < 0)
		goto bad;
	has_ws = q == 1 && ws[0] != '\0';
	if ((q = api__query(c->query, "limit", lim, sizeof(lim))) < 0)
		goto bad;
	if (q == 1) {
		char *end;

		limit = strtoll(lim, &end, 10);
		if (lim[0] == '\0' || *end != '\0' || limit < 1 ||
		    limit > REC_LIMIT_MAX) {
			api_error(c, 400, "invalid_request",
			    "limit must be 1..%d", REC_LIMIT_MAX);
			return;
		}
	}
	if ((q = api__query(c->query, "after", after, sizeof(after))) < 0)
		goto bad;
	if (q == 1) {
		if (!recstore_valid_id(after)) {
			api_error(c, 400, "invalid_request",
			    "after must be a recording id");
			return;
		}
		snprintf(cursor, sizeof(cursor), "%s", after);
	}
	if ((out = json_array()) == NULL) {
		api__fail(c, MOAT_ERR_NOMEM, "recordings");
		return;
	}
	if (has_user) {
		if ((r = api__user_by_name(c->app, user, &u)) != 0) {
			if (r != MOAT_ERR_NOTFOUND) {
				api__fail(c, r, "user");
				goto out;
			}
			goto reply;	/* no such user: nothing */
		}
		snprintf(user_id, sizeof(user_id), "%s", json_get_str(u, "id"));
		field = "user_id";
		value = user_id;
	}
	if (has_ws) {
		if ((r = rec_workspace_id(c, ws, ws_id, sizeof(ws_id))) != 0) {
			if (r == MOAT_ERR_NOTFOUND)
				goto reply;
			goto out;
		}
		field = "workspace_id";
		value = ws_id;
	}
	/* Pages from the store (ids sort newest first), filtered by what
	 * the index did not: the user when both filters are set, and the
	 * organization. */
	for (int pg = 0; pg < REC_SCAN_PAGES &&
	    json_array_size(out) < (size_t)limit; pg++) {
		json_decref(page);
		page = NULL;
		if ((r = store_list(c->app->store, COLL_RECORDINGS, field, value,
		    cursor[0] != '\0' ? cursor : NULL, (size_t)limit,
		    &page)) != 0) {
			api__fail(c, r, "recordings");
			goto out;
		}
		more = json_array_size(page) == (size_t)limit;
		json_array_foreach(page, i, d) {
			snprintf(cursor, sizeof(cursor), "%s",
			    json_get_str(d, "id") != NULL ?
			    json_get_str(d, "id") : "");
			if (!rec_visible(c, d) || (has_user && has_ws &&
			    strcmp(json_get_str(d, "user_id") != NULL ?
			    json_get_str(d, "user_id") : "", user_id) != 0))
				continue;
			json_array_append_new(out, rec_view(d));
			if (json_array_size(out) == (size_t)limit) {
				more = more || i + 1 < json_array_size(page);
				break;
			}
		}
		if (!more)
			break;
	}
reply:
	{
		json_t *resp = json_pack("{s:O}", "recordings", out);

		if (resp != NULL && more && cursor[0] != '\0')
			json_object_set_new(resp, "next", json_string(cursor));
		api_reply(c, 200, resp);
	}
	goto out;
bad:
	api_error(c, 400, "invalid_request", "malformed query parameter");
out:
	json_decref(page);
	json_decref(out);
	json_decref(u);
}

void
h_recordings_get(struct api_call *c)
{
	const char *id = api_param(c, "id");
	json_t *doc = NULL;
	char *text = NULL;
	size_t len = 0;
	int r, ra;

	if (c->app->recstore == NULL) {
		api_error(c, 503, "unavailable", "recordings are not available");
		return;
	}
	if (!recstore_valid_id(id)) {
		api_error(c, 404, "not_found", "recording not found");
		return;
	}
	if ((r = store_get(c->app->store, COLL_RECORDINGS, id, &doc)) != 0) {
		api__fail(c, r, "recording");
		return;
	}
	if (!rec_visible(c, doc)) {
		api_error(c, 404, "not_found", "recording not found");
		goto out;
	}
	r = recstore_read(c->app->recstore, id, &text, &len);
	ra = api__audit(c, "recording.read", r == 0 ? "success" : "failure",
	    json_pack("{s:s,s:s}", "type", "recording", "id", id),
	    json_pack("{s:s?,s:s?,s:s?,s:s?,s:s?}", "user",
	    json_get_str(doc, "user"), "workspace", json_get_str(doc,
	    "workspace"), "owner", json_get_str(doc, "owner"), "session_id",
	    json_get_str(doc, "session_id"), "error", r == 0 ? NULL :
	    moat_strerror(r)));
	if (ra != 0) {
		api_error(c, 503, "unavailable",
		    "the audit log cannot take events; try again later");
		if (api_add_header(c, "Retry-After", "5") != 0)
			log_warn("api", "Retry-After header dropped");
		goto out;
	}
	if (r == MOAT_ERR_CORRUPT) {
		api_error(c, 500, "corrupt",
		    "the recording failed its integrity check");
		goto out;
	}
	if (r != 0) {
		api__fail(c, r, "recording");
		goto out;
	}
	api_reply_raw(c, 200, "application/x-asciicast", text, len);
	text = NULL;
out:
	if (text != NULL) {
		explicit_bzero(text, len);
		free(text);
	}
	json_decref(doc);
}
