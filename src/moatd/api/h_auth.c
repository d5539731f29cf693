/*
 * h_auth.c - the public edge of the API: log in, log out, the JWKS and the
 * OpenAPI document.
 *
 * Login runs on the hasher pool (argon2id). It gives one answer for an
 * unknown user, a disabled user and a wrong password, and spends the same
 * hashing time on each, so neither the answer nor its timing says which
 * names exist. Throttling is by (account, client address) in identity.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "identity/identity.h"
#include "identity/jwt.h"
#include "log.h"
#include "secrets/keys.h"
#include "store/store.h"

#include "api/api.h"
#include "api/api_int.h"

#define COMPONENT "api"

int
v_login(const json_t *body, char *err, size_t errlen)
{
	const char *u = json_get_str(body, "username");
	const char *p = json_get_str(body, "password");

	if (u == NULL || u[0] == '\0' || p == NULL || p[0] == '\0') {
		snprintf(err, errlen, "username and password must not be empty");
		return MOAT_ERR_INVAL;
	}
	return 0;
}

static void
login_fail(struct api_call *c, const char *reason)
{
	json_decref(c->audit_details);
	c->audit_details = json_pack("{s:s}", "reason", reason);
	api_error(c, 401, "invalid_credentials",
	    "invalid user name or password");
}

void
h_auth_login(struct api_call *c)
{
	struct identity *id = c->app->identity;
	const char *username = json_get_str(c->body, "username");
	const char *password = json_get_str(c->body, "password");
	const char *totp = json_get_str(c->body, "totp");
	json_t *user = NULL;
	char *jwt = NULL, cookie[JWT_MAX_LEN + 160], exp[32], ra[16];
	int64_t expires_at = 0;
	int retry = 1, r;
	bool ok;

	/* The attempted name is recorded only once it names a real user: a
	 * password typed into the name field must not reach the audit log. */
	api__target(c, "user", "name", "");
	r = identity_throttle_check(id, username, c->client_addr, &retry);
	if (r == MOAT_ERR_AGAIN) {
		snprintf(ra, sizeof(ra), "%d", retry > 0 ? retry : 1);
		if (api_add_header(c, "Retry-After", ra) != 0)
			log_warn(COMPONENT, "Retry-After header dropped");
		c->audit_details = json_pack("{s:s}", "reason", "throttled");
		api_error(c, 429, "throttled",
		    "too many failed logins; retry in %s seconds", ra);
		goto out;
	}
	r = api__user_by_name(c->app, username, &user);
	if (r != 0 && r != MOAT_ERR_NOTFOUND) {
		api__fail(c, r, "user");
		goto out;
	}
	if (user == NULL) {
		/* Spends the time of a real check: timing tells nothing. */
		(void)identity_password_verify(NULL, password);
		identity_throttle_report(id, username, c->client_addr, false);
		login_fail(c, "unknown user");
		goto out;
	}
	api__target(c, "user", "name", json_get_str(user, "username"));
	ok = identity_password_verify(json_get_str(user, "password_hash"),
	    password);
	if (!ok) {
		identity_throttle_report(id, username, c->client_addr, false);
		login_fail(c, "wrong password");
		goto out;
	}
	if (json_get_bool(user, "disabled", false)) {
		identity_throttle_report(id, username, c->client_addr, false);
		login_fail(c, "user disabled");
		goto out;
	}
	if (identity_totp_enabled(user)) {
		if (totp == NULL || totp[0] == '\0') {
			c->audit_details = json_pack("{s:s}", "reason",
			    "totp required");
			api_error(c, 401, "totp_required",
			    "this account needs a TOTP code (field \"totp\")");
			goto out;
		}
		if (identity_totp_verify(id, user, totp) != 0) {
			identity_throttle_report(id, username, c->client_addr,
			    false);
			c->audit_details = json_pack("{s:s}", "reason",
			    "wrong totp code");
			api_error(c, 401, "invalid_credentials",
			    "invalid user name, password or TOTP code");
			goto out;
		}
	}
	identity_throttle_report(id, username, c->client_addr, true);
	if ((r = identity_session_create(id, user, c->client_addr, &jwt,
	    &expires_at)) != 0) {
		api__fail(c, r, "session");
		goto out;
	}
	if (snprintf(cookie, sizeof(cookie),
	    "moat_session=%s; HttpOnly; Secure; SameSite=Strict; Path=/; "
	    "Max-Age=%d", jwt, IDENTITY_SESSION_TTL_S) >= (int)sizeof(cookie) ||
	    api_add_header(c, "Set-Cookie", cookie) != 0) {
		api__fail(c, MOAT_ERR_TOOBIG, "session cookie");
		goto out;
	}
	api__rfc3339(expires_at, exp);
	api_reply(c, 200, json_pack("{s:s,s:s,s:s}", "token", jwt,
	    "expires_at", exp, "username", json_get_str(user, "username")));
out:
	explicit_bzero(cookie, sizeof(cookie));
	if (jwt != NULL) {
		explicit_bzero(jwt, strlen(jwt));
		free(jwt);
	}
	json_decref(user);
}

void
h_auth_logout(struct api_call *c)
{
	int r;

	if (c->who->session_id[0] != '\0') {
		api__target(c, "session", "id", c->who->session_id);
		if ((r = identity_session_revoke(c->app->identity,
		    c->who->session_id)) != 0 && r != MOAT_ERR_NOTFOUND) {
			api__fail(c, r, "session");
			return;
		}
	} else {
		api__target(c, "token", "id", c->who->token_id);
	}
	if (api_add_header(c, "Set-Cookie", "moat_session=; HttpOnly; Secure; "
	    "SameSite=Strict; Path=/; Max-Age=0") != 0)
		log_warn(COMPONENT, "could not clear the session cookie");
	api_reply(c, 204, NULL);
}

void
h_jwks(struct api_call *c)
{
	struct keyset *ks = c->app->keys != NULL ? keys_current(c->app->keys) :
	    NULL;
	const char *text = ks != NULL ? keyset_jwks_json(ks) : NULL;
	json_t *v = text != NULL ? json_loads(text, 0, NULL) : NULL;

	if (ks != NULL)
		keyset_unref(ks);
	if (v == NULL) {
		api__fail(c, MOAT_ERR_IO, "key set");
		return;
	}
	api_reply(c, 200, v);
}

void
h_openapi(struct api_call *c)
{
	json_t *v = NULL;
	int r;

	if ((r = api__openapi_prepare(c->app)) != 0) {
		api__fail(c, r, "OpenAPI document");
		return;
	}
	v = json_loadb(c->app->api->openapi, c->app->api->openapi_len, 0, NULL);
	if (v == NULL) {
		api__fail(c, MOAT_ERR_NOMEM, "OpenAPI document");
		return;
	}
	api_reply(c, 200, v);
}
