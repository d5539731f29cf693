/*
 * api_int.h - what the Core API's own files share (api.c, routes.c and the
 * handler files h_*.c): the framework's state, small helpers for handlers,
 * the store collections the API's entities live in, and the handlers and
 * body validators that routes.c puts in the route table.
 *
 * Nothing outside src/moatd/api/ and src/moatd/server/serve_api.c (which
 * starts it) includes this file.
 */
#ifndef MOATD_API_INT_H
#define MOATD_API_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/api.h"
#include "store/store.h"

/* One registered route: what the HTTP callback gets as its argument. */
struct api__binding {
	struct app *app;
	const struct api_route *route;
	const char *param_names[API_MAX_PARAMS];	/* into names */
	char names[API_MAX_PARAMS][32];
	size_t nparams;
	size_t max_body;		/* api_max_body(route) */
};

struct api__bindings {
	struct api__binding *b;
	size_t n;
	struct api__bindings *next;
};

struct api_state {
	api_auth_fn auth;
	char *audit_path;		/* NULL: DATA_DIR/audit/audit.log */
	struct api__bindings *regs;
	pthread_mutex_t mu;		/* guards openapi */
	char *openapi;			/* the document as JSON text */
	size_t openapi_len;
};

/* The embedded docs/api/openapi.yaml (generated at build time). */
extern const char api_openapi_yaml[];
extern const size_t api_openapi_yaml_len;

/* Converts the embedded YAML once (thread-safe); 0 or an error, logged. */
int api__openapi_prepare(struct app *app) MOAT_MUST_CHECK;

/* The state of app, created on first use; NULL only when out of memory. */
struct api_state *api__state(struct app *app);

/* --- helpers for handlers --- */

/* Maps a store or identity error to an answer: NOTFOUND 404, EXISTS and
 * CONFLICT 409, INVAL 400, PERM 403, AGAIN 429; anything else is an
 * internal failure: 500 "internal", logged with what (never the detail to
 * the client). */
void api__fail(struct api_call *c, int r, const char *what);

/* A copy of doc without stored secrets: "sealed", "password_hash",
 * "hash", "token_hash" and "rev" removed. New reference (NULL: no memory). */
json_t *api__public(const json_t *doc);

/* Roles as a JSON array of names (new reference). */
json_t *api__roles_json(role_mask roles);
/* Parses a JSON array of role names into a mask; 400 answered on error. */
int api__roles_from_json(struct api_call *c, const json_t *arr, role_mask *out);

/* Value of name in the query string, percent-decoded, into out.
 * 1 found, 0 absent, MOAT_ERR_INVAL malformed or too long. */
int api__query(const char *query, const char *name, char *out, size_t outlen);

/* Sets c->audit_target to {"type": type, "id"/"name": value}. */
void api__target(struct api_call *c, const char *type, const char *key,
    const char *value);

/* Emits one audit event for a read that must itself be audited (reading
 * a recording): actor from the call, target and details stolen (NULL:
 * none). 0 when recorded (or when moatd has no audit log, as in unit
 * tests); MOAT_ERR_NOSPACE when the audit writer cannot take events, or
 * another error: the caller then refuses to answer with the data. */
int api__audit(struct api_call *c, const char *type, const char *outcome,
    json_t *target, json_t *details) MOAT_MUST_CHECK;

/* Unix seconds as RFC 3339 UTC ("2026-12-03T16:02:25Z") into out[32]. */
void api__rfc3339(int64_t t, char out[32]);

/* Looks a user up by name (the stored document, with its hash: never
 * send it): 0 and *out, or an error (MOAT_ERR_NOTFOUND). */
int api__user_by_name(struct app *app, const char *username, json_t **out)
    MOAT_MUST_CHECK;
/* The user's roles in org (0 when no membership), and the membership
 * document when out is not NULL. */
int api__membership(struct app *app, const char *user_id, const char *org,
    role_mask *roles, json_t **out) MOAT_MUST_CHECK;

/* Sets username's roles in org from the body's "roles" (owner rules
 * applied); answers the call either way. */
int api__set_roles(struct api_call *c, const char *org, const char *username);

/* Display names of tokens and SSH keys (h_tokens.c): 0 or MOAT_ERR_INVAL
 * with the rule in err. */
int api__check_label(const char *s, char *err, size_t errlen);

/* --- handlers (h_*.c) --- */
void h_auth_login(struct api_call *c);
void h_auth_logout(struct api_call *c);
void h_jwks(struct api_call *c);
void h_openapi(struct api_call *c);

void h_me_get(struct api_call *c);
void h_me_password(struct api_call *c);
void h_me_totp_enroll(struct api_call *c);
void h_me_totp_confirm(struct api_call *c);
void h_users_create(struct api_call *c);
void h_users_list(struct api_call *c);
void h_users_get(struct api_call *c);
void h_users_disable(struct api_call *c);
void h_users_enable(struct api_call *c);
void h_users_roles(struct api_call *c);

void h_orgs_list(struct api_call *c);
void h_orgs_create(struct api_call *c);
void h_orgs_member_get(struct api_call *c);
void h_orgs_member_put(struct api_call *c);
void h_settings_get(struct api_call *c);
void h_settings_put(struct api_call *c);

void h_tokens_create(struct api_call *c);
void h_tokens_list(struct api_call *c);
void h_tokens_delete(struct api_call *c);

void h_sshkeys_create(struct api_call *c);
void h_sshkeys_list(struct api_call *c);
void h_sshkeys_delete(struct api_call *c);

void h_secrets_put(struct api_call *c);
void h_secrets_list(struct api_call *c);
void h_secrets_delete(struct api_call *c);

void h_audit_list(struct api_call *c);

void h_policies_list(struct api_call *c);
void h_policies_get(struct api_call *c);
void h_policies_put(struct api_call *c);
void h_policies_delete(struct api_call *c);

void h_workspaces_create(struct api_call *c);
void h_workspaces_list(struct api_call *c);
void h_workspaces_get(struct api_call *c);
void h_workspaces_start(struct api_call *c);
void h_workspaces_stop(struct api_call *c);
void h_workspaces_restart(struct api_call *c);
void h_workspaces_delete(struct api_call *c);
void h_workspaces_events(struct api_call *c);
void h_workspaces_logs(struct api_call *c);
void h_workspaces_stats(struct api_call *c);
/* Workspace templates (h_templates.c). */
void h_templates_list(struct api_call *c);
void h_templates_create(struct api_call *c);
void h_templates_get(struct api_call *c);
void h_templates_put(struct api_call *c);
void h_templates_delete(struct api_call *c);
/* Session recordings (h_recordings.c). */
void h_recordings_list(struct api_call *c);
void h_recordings_get(struct api_call *c);

/* The SSH gateway's address and host keys (h_sshinfo.c). */
void h_sshinfo(struct api_call *c);

/* Live SSH sessions (h_sessions.c). */
void h_sessions_list(struct api_call *c);
void h_sessions_delete(struct api_call *c);

/* --- body validators (route.validate) --- */
int v_login(const json_t *body, char *err, size_t errlen);
int v_user_create(const json_t *body, char *err, size_t errlen);
int v_roles(const json_t *body, char *err, size_t errlen);
int v_org_create(const json_t *body, char *err, size_t errlen);
int v_settings(const json_t *body, char *err, size_t errlen);
int v_token_create(const json_t *body, char *err, size_t errlen);
int v_sshkey_create(const json_t *body, char *err, size_t errlen);
int v_secret_put(const json_t *body, char *err, size_t errlen);
int v_policy(const json_t *body, char *err, size_t errlen);
int v_totp_code(const json_t *body, char *err, size_t errlen);
int v_workspace_create(const json_t *body, char *err, size_t errlen);
int v_template(const json_t *body, char *err, size_t errlen);

#endif
