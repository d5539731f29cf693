/*
 * h_sessions.c - live SSH sessions (gateway/gw.h):
 *
 *   GET    /api/v1/sessions       every open connection to the gateway
 *   DELETE /api/v1/sessions/{id}  ends one: the client is told why and
 *                                 the connection closes
 *
 * Both need sessions:admin (admins and owners). Without a gateway (ssh-listen
 * empty) the list is empty and every id is unknown.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"
#include "gateway/gw.h"

#include "api/api.h"
#include "api/api_int.h"

void
h_sessions_list(struct api_call *c)
{
	json_t *arr = c->app->gateway != NULL ? gw_sessions(c->app->gateway) :
	    json_array();

	if (arr == NULL) {
		api__fail(c, MOAT_ERR_NOMEM, "sessions");
		return;
	}
	api_reply(c, 200, json_pack("{s:o}", "sessions", arr));
}

void
h_sessions_delete(struct api_call *c)
{
	const char *id = api_param(c, "id");
	char why[160];

	api__target(c, "ssh_session", "id", id);
	snprintf(why, sizeof(why), "the session was ended by an administrator "
	    "(%s)", c->who->username);
	if (c->app->gateway == NULL || gw_session_end(c->app->gateway, id,
	    why) != 0) {
		api_error(c, 404, "not_found", "no such session");
		return;
	}
	api_reply(c, 204, NULL);
}
