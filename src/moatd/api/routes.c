/*
 * routes.c - every route of the Core API v1 in one table: method, path,
 * the one permission it needs (rbac.h), the fields its JSON body may carry,
 * its audit event type, and its handler (h_*.c).
 *
 * The same routes are described in docs/api/openapi.yaml, each operation
 * with "x-moat-permission"; test_api checks the two agree, and the
 * permission-matrix test drives every route from that document.
 */
#include <stddef.h>

#include "api/api.h"
#include "api/api_int.h"

#define NF(a) (sizeof(a) / sizeof((a)[0]))
#define FIELDS(a) (a), NF(a)

/* Bodies. Strings are bounded here; their content is checked by the
 * route's validator and handler. */
static const struct json_field f_login[] = {
	{ "username", JF_STRING, true, 64, 0, 0 },
	{ "password", JF_STRING, true, 1024, 0, 0 },
	{ "totp", JF_STRING, false, 16, 0, 0 },
};
static const struct json_field f_password[] = {
	{ "current", JF_STRING, true, 1024, 0, 0 },
	{ "new", JF_STRING, true, 1024, 0, 0 },
};
static const struct json_field f_totp_code[] = {
	{ "code", JF_STRING, true, 16, 0, 0 },
};
static const struct json_field f_user_create[] = {
	{ "username", JF_STRING, true, 64, 0, 0 },
	{ "password", JF_STRING, true, 1024, 0, 0 },
	{ "role", JF_STRING, false, 32, 0, 0 },
};
static const struct json_field f_roles[] = {
	{ "roles", JF_ARRAY, true, 12, 0, 0 },
};
static const struct json_field f_org_create[] = {
	{ "name", JF_STRING, true, 64, 0, 0 },
};
static const struct json_field f_settings[] = {
	{ "default_policy", JF_STRING, false, 64, 0, 0 },
	{ "allow_sudo", JF_BOOL, false, 0, 0, 0 },
	{ "ssh", JF_OBJECT, false, 0, 0, 0 },
	{ "registries", JF_ARRAY, false, 64, 0, 0 },
};
static const struct json_field f_token_create[] = {
	{ "name", JF_STRING, true, 64, 0, 0 },
	{ "expires_in", JF_INT, false, 0, 60, 366LL * 86400 },
	{ "roles", JF_ARRAY, false, 12, 0, 0 },
};
static const struct json_field f_sshkey_create[] = {
	{ "name", JF_STRING, true, 64, 0, 0 },
	{ "public_key", JF_STRING, true, 16384, 0, 0 },
};
static const struct json_field f_secret_put[] = {
	{ "value", JF_STRING, true, 32768, 0, 0 },
	{ "env", JF_STRING, false, 128, 0, 0 },
};
static const struct json_field f_policy[] = {
	{ "name", JF_STRING, false, 64, 0, 0 },
	{ "mode", JF_STRING, false, 16, 0, 0 },
	{ "allow", JF_ARRAY, false, 1024, 0, 0 },
	{ "deny", JF_ARRAY, false, 1024, 0, 0 },
};

static const struct json_field f_workspace_create[] = {
	{ "name", JF_STRING, true, 63, 0, 0 },
	{ "template", JF_STRING, true, 64, 0, 0 },
	{ "owner", JF_STRING, false, 64, 0, 0 },
};
/* Workspace templates (h_templates.c; template.h has the rules). "image"
 * is bounded loosely so that imageref.c gives the precise reason. */
#define TEMPLATE_FIELDS(name_required) \
	{ "name", JF_STRING, name_required, 64, 0, 0 }, \
	{ "image", JF_STRING, true, 1024, 0, 0 }, \
	{ "cpu", JF_INT, false, 0, 100, 64000 }, \
	{ "memory_mb", JF_INT, false, 0, 64, 262144 }, \
	{ "disk_mb", JF_INT, false, 0, 64, 1048576 }, \
	{ "root_disk_mb", JF_INT, false, 0, 64, 1048576 }, \
	{ "env", JF_OBJECT, false, 0, 0, 0 }, \
	{ "startup_script", JF_STRING, false, 65536, 0, 0 }, \
	{ "egress_policy", JF_ANY, false, 0, 0, 0 }, \
	{ "idle_timeout", JF_INT, false, 0, 0, 604800 }, \
	{ "ports", JF_ARRAY, false, 32, 0, 0 }, \
	{ "forbid_sudo", JF_BOOL, false, 0, 0, 0 }
static const struct json_field f_template_create[] = {
	TEMPLATE_FIELDS(true),
};
static const struct json_field f_template_put[] = {
	TEMPLATE_FIELDS(false),
};

#define NOBODY NULL, 0

const struct api_route api_routes[] = {
	/* Public (rbac_public_routes). */
	{ "POST", "/api/v1/auth/login", PERM_PUBLIC, h_auth_login,
	  FIELDS(f_login), "auth.login", true,
	  "Log in with a password (and a TOTP code when enrolled)",
	  v_login, false },
	{ "GET", "/api/v1/jwks.json", PERM_PUBLIC, h_jwks, NOBODY, NULL,
	  false, "The public keys that verify session tokens", NULL, false },
	{ "GET", "/api/v1/openapi.json", PERM_PUBLIC, h_openapi, NOBODY,
	  NULL, false, "This API's OpenAPI 3 document", NULL, false },

	/* The caller's own session, profile and credentials. */
	{ "POST", "/api/v1/auth/logout", PERM_SELF, h_auth_logout, NOBODY,
	  "auth.logout", false, "End the current session", NULL, false },
	{ "GET", "/api/v1/users/me", PERM_SELF, h_me_get, NOBODY, NULL,
	  false, "The caller's profile and roles", NULL, false },
	{ "PUT", "/api/v1/users/me/password", PERM_SELF, h_me_password,
	  FIELDS(f_password), "user.password.change", true,
	  "Change the caller's password", NULL, false },
	{ "POST", "/api/v1/users/me/totp", PERM_SELF, h_me_totp_enroll,
	  NOBODY, "user.totp.enroll", false,
	  "Start TOTP enrollment: returns an otpauth:// URI", NULL, false },
	{ "POST", "/api/v1/users/me/totp/confirm", PERM_SELF,
	  h_me_totp_confirm, FIELDS(f_totp_code), "user.totp.confirm", false,
	  "Finish TOTP enrollment with a current code", v_totp_code, false },

	/* Users (administration). */
	{ "POST", "/api/v1/users", PERM_USERS_WRITE, h_users_create,
	  FIELDS(f_user_create), "user.create", true, "Create a user",
	  v_user_create, false },
	{ "GET", "/api/v1/users", PERM_USERS_READ, h_users_list, NOBODY,
	  NULL, false, "List users", NULL, false },
	{ "GET", "/api/v1/users/{username}", PERM_USERS_READ, h_users_get,
	  NOBODY, NULL, false, "One user", NULL, false },
	{ "POST", "/api/v1/users/{username}/disable", PERM_USERS_WRITE,
	  h_users_disable, NOBODY, "user.disable", false,
	  "Disable a user: ends every session and token at once", NULL,
	  false },
	{ "POST", "/api/v1/users/{username}/enable", PERM_USERS_WRITE,
	  h_users_enable, NOBODY, "user.enable", false, "Enable a user",
	  NULL, false },
	{ "PUT", "/api/v1/users/{username}/roles", PERM_USERS_WRITE,
	  h_users_roles, FIELDS(f_roles), "user.roles.set", false,
	  "Set a user's roles in the caller's organization", v_roles, false },

	/* Organizations, memberships, security settings. */
	{ "GET", "/api/v1/orgs", PERM_ORGS_READ, h_orgs_list, NOBODY, NULL,
	  false, "List organizations", NULL, false },
	{ "POST", "/api/v1/orgs", PERM_ORGS_WRITE, h_orgs_create,
	  FIELDS(f_org_create), "org.create", false,
	  "Create an organization", v_org_create, false },
	{ "GET", "/api/v1/orgs/{org}/members/{username}", PERM_ORGS_READ,
	  h_orgs_member_get, NOBODY, NULL, false,
	  "A user's roles in an organization", NULL, false },
	{ "PUT", "/api/v1/orgs/{org}/members/{username}", PERM_ORGS_WRITE,
	  h_orgs_member_put, FIELDS(f_roles), "org.member.set", false,
	  "Set a user's roles in an organization (empty: remove)", v_roles,
	  false },
	{ "GET", "/api/v1/orgs/{org}/settings", PERM_SETTINGS_READ,
	  h_settings_get, NOBODY, NULL, false,
	  "An organization's security settings", NULL, false },
	{ "PUT", "/api/v1/orgs/{org}/settings", PERM_SETTINGS_WRITE,
	  h_settings_put, FIELDS(f_settings), "settings.update", false,
	  "Replace an organization's security settings", v_settings, false },

	/* API tokens. */
	{ "POST", "/api/v1/tokens", PERM_SELF, h_tokens_create,
	  FIELDS(f_token_create), "token.create", false,
	  "Create an API token (shown once)", v_token_create, false },
	{ "GET", "/api/v1/tokens", PERM_SELF, h_tokens_list, NOBODY, NULL,
	  false, "The caller's API tokens (never their values)", NULL, false },
	{ "DELETE", "/api/v1/tokens/{id}", PERM_SELF, h_tokens_delete,
	  NOBODY, "token.revoke", false, "Revoke an API token", NULL, false },

	/* SSH public keys. */
	{ "POST", "/api/v1/ssh-keys", PERM_SELF, h_sshkeys_create,
	  FIELDS(f_sshkey_create), "sshkey.add", false,
	  "Register an OpenSSH public key", v_sshkey_create, false },
	{ "GET", "/api/v1/ssh-keys", PERM_SELF, h_sshkeys_list, NOBODY,
	  NULL, false, "The caller's SSH keys", NULL, false },
	{ "DELETE", "/api/v1/ssh-keys/{id}", PERM_SELF, h_sshkeys_delete,
	  NOBODY, "sshkey.delete", false, "Remove an SSH key", NULL, false },

	/* Personal secrets (values are write-only). */
	{ "PUT", "/api/v1/secrets/{name}", PERM_SELF, h_secrets_put,
	  FIELDS(f_secret_put), "secret.put", false,
	  "Store or replace a personal secret", v_secret_put, false },
	{ "GET", "/api/v1/secrets", PERM_SELF, h_secrets_list, NOBODY, NULL,
	  false, "The caller's secrets: names and times, never values", NULL,
	  false },
	{ "DELETE", "/api/v1/secrets/{name}", PERM_SELF, h_secrets_delete,
	  NOBODY, "secret.delete", false, "Delete a personal secret", NULL,
	  false },

	/* Audit. */
	{ "GET", "/api/v1/audit", PERM_AUDIT_READ, h_audit_list, NOBODY,
	  NULL, false, "Recent audit events (type, since, limit)", NULL,
	  false },

	/* Egress policies. */
	{ "GET", "/api/v1/policies", PERM_POLICIES_READ, h_policies_list,
	  NOBODY, NULL, false, "List egress policies", NULL, false },
	{ "GET", "/api/v1/policies/{name}", PERM_POLICIES_READ,
	  h_policies_get, NOBODY, NULL, false, "One egress policy", NULL,
	  false },
	{ "PUT", "/api/v1/policies/{name}", PERM_POLICIES_WRITE,
	  h_policies_put, FIELDS(f_policy), "policy.put", false,
	  "Create or replace an egress policy (JSON or YAML)", v_policy,
	  true },
	{ "DELETE", "/api/v1/policies/{name}", PERM_POLICIES_WRITE,
	  h_policies_delete, NOBODY, "policy.delete", false,
	  "Delete an egress policy (not \"default\", not one in use)", NULL,
	  false },

	/* Workspaces. */
	{ "POST", "/api/v1/workspaces", PERM_WORKSPACES_OWN,
	  h_workspaces_create, FIELDS(f_workspace_create),
	  "workspace.create", false,
	  "Create a workspace from a template (and start it)",
	  v_workspace_create, false },
	{ "GET", "/api/v1/workspaces", PERM_WORKSPACES_OWN,
	  h_workspaces_list, NOBODY, NULL, false,
	  "The caller's workspaces (?owner=NAME or * with workspaces:all)",
	  NULL, false },
	{ "GET", "/api/v1/workspaces/{owner}/{name}", PERM_WORKSPACES_OWN,
	  h_workspaces_get, NOBODY, NULL, false,
	  "One workspace with its state and reason", NULL, false },
	{ "POST", "/api/v1/workspaces/{owner}/{name}/start",
	  PERM_WORKSPACES_OWN, h_workspaces_start, NOBODY,
	  "workspace.start", false, "Start a workspace", NULL, false },
	{ "POST", "/api/v1/workspaces/{owner}/{name}/stop",
	  PERM_WORKSPACES_OWN, h_workspaces_stop, NOBODY, "workspace.stop",
	  false, "Stop a workspace (its home volume stays)", NULL, false },
	{ "POST", "/api/v1/workspaces/{owner}/{name}/restart",
	  PERM_WORKSPACES_OWN, h_workspaces_restart, NOBODY,
	  "workspace.restart", false, "Restart a workspace", NULL, false },
	{ "DELETE", "/api/v1/workspaces/{owner}/{name}", PERM_WORKSPACES_OWN,
	  h_workspaces_delete, NOBODY, "workspace.delete", false,
	  "Delete a workspace, its volume and its keys", NULL, false },
	{ "GET", "/api/v1/workspaces/{owner}/{name}/events",
	  PERM_WORKSPACES_OWN, h_workspaces_events, NOBODY, NULL, false,
	  "Server-Sent Events: state changes, pull progress, startup output",
	  NULL, false },
	{ "GET", "/api/v1/workspaces/{owner}/{name}/logs",
	  PERM_WORKSPACES_OWN, h_workspaces_logs, NOBODY, NULL, false,
	  "Startup script and agent log from an offset", NULL, false },
	{ "GET", "/api/v1/workspaces/{owner}/{name}/stats",
	  PERM_WORKSPACES_OWN, h_workspaces_stats, NOBODY, NULL, false,
	  "CPU, memory and disk use", NULL, false },
	/* Workspace templates. */
	{ "GET", "/api/v1/templates", PERM_TEMPLATES_READ, h_templates_list,
	  NOBODY, NULL, false, "List the organization's workspace templates",
	  NULL, false },
	{ "POST", "/api/v1/templates", PERM_TEMPLATES_WRITE,
	  h_templates_create, FIELDS(f_template_create), "template.create",
	  false, "Create a workspace template", v_template, false },
	{ "GET", "/api/v1/templates/{name}", PERM_TEMPLATES_READ,
	  h_templates_get, NOBODY, NULL, false, "One workspace template", NULL,
	  false },
	{ "PUT", "/api/v1/templates/{name}", PERM_TEMPLATES_WRITE,
	  h_templates_put, FIELDS(f_template_put), "template.update", false,
	  "Replace a workspace template", v_template, false },
	{ "DELETE", "/api/v1/templates/{name}", PERM_TEMPLATES_WRITE,
	  h_templates_delete, NOBODY, "template.delete", false,
	  "Delete a workspace template", NULL, false },
	/* Session recordings (reading one is audited by its handler). */
	{ "GET", "/api/v1/recordings", PERM_RECORDINGS_READ,
	  h_recordings_list, NOBODY, NULL, false,
	  "Session recordings, newest first (user, workspace, limit, after)",
	  NULL, false },
	{ "GET", "/api/v1/recordings/{id}", PERM_RECORDINGS_READ,
	  h_recordings_get, NOBODY, NULL, false,
	  "One session recording as asciicast v2 text", NULL, false },
	/* Where the SSH gateway is and its host keys (the CLI pins them). */
	{ "GET", "/api/v1/ssh/info", PERM_SELF, h_sshinfo, NOBODY, NULL,
	  false, "The SSH gateway's address and public host keys", NULL,
	  false },
	/* Live SSH sessions (gateway/gw.h). */
	{ "GET", "/api/v1/sessions", PERM_SESSIONS_ADMIN, h_sessions_list,
	  NOBODY, NULL, false, "Live SSH sessions", NULL, false },
	{ "DELETE", "/api/v1/sessions/{id}", PERM_SESSIONS_ADMIN,
	  h_sessions_delete, NOBODY, "ssh.session.end", false,
	  "End a live SSH session", NULL, false },
};

const size_t api_nroutes = NF(api_routes);

/* Bodies larger than API_MAX_BODY: a template's startup script alone may
 * be 64 KiB. */
const char *const api_large_body_routes[] = {
	"POST /api/v1/templates",
	"PUT /api/v1/templates/{name}",
	NULL
};

