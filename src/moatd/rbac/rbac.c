/*
 * rbac.c - the one table of roles and permissions (see rbac.h), and the one
 * list of routes that need no authentication (DESIGN.md section 8,
 * invariants 1 and 2).
 *
 * Nothing else in moatd decides who may do what: routes name a permission
 * (api/routes.c), and this file says which roles grant it.
 */
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "rbac/rbac.h"

#define P(x) (1u << (x))

/* Permissions granted by each role. PERM_PUBLIC and PERM_SELF are granted to
 * every authenticated caller by rbac_allows() itself, so they appear here
 * only for readability. */
static const uint32_t rbac_grants[ROLE__COUNT] = {
	[ROLE_OWNER] = ~0u & ~P(PERM_NONE),
	[ROLE_ADMIN] = ~0u & ~P(PERM_NONE),
	[ROLE_TEMPLATE_ADMIN] = P(PERM_SELF) | P(PERM_TEMPLATES_READ) |
	    P(PERM_TEMPLATES_WRITE) | P(PERM_POLICIES_READ),
	[ROLE_AUDITOR] = P(PERM_SELF) | P(PERM_AUDIT_READ) |
	    P(PERM_RECORDINGS_READ),
	[ROLE_SECURITY_OFFICER] = P(PERM_SELF) | P(PERM_SETTINGS_READ) |
	    P(PERM_SETTINGS_WRITE) | P(PERM_POLICIES_READ) |
	    P(PERM_POLICIES_WRITE) | P(PERM_AUDIT_READ) |
	    P(PERM_RECORDINGS_READ),
	[ROLE_MEMBER] = P(PERM_SELF) | P(PERM_TEMPLATES_READ) |
	    P(PERM_WORKSPACES_OWN),
};

static const char *const rbac_role_names[ROLE__COUNT] = {
	[ROLE_OWNER] = "owner",
	[ROLE_ADMIN] = "admin",
	[ROLE_TEMPLATE_ADMIN] = "template-admin",
	[ROLE_AUDITOR] = "auditor",
	[ROLE_SECURITY_OFFICER] = "security-officer",
	[ROLE_MEMBER] = "member",
};

static const char *const rbac_perm_names[PERM__COUNT] = {
	[PERM_NONE] = "none",
	[PERM_PUBLIC] = "public",
	[PERM_SELF] = "self",
	[PERM_USERS_READ] = "users:read",
	[PERM_USERS_WRITE] = "users:write",
	[PERM_ORGS_READ] = "orgs:read",
	[PERM_ORGS_WRITE] = "orgs:write",
	[PERM_AUDIT_READ] = "audit:read",
	[PERM_SETTINGS_READ] = "settings:read",
	[PERM_SETTINGS_WRITE] = "settings:write",
	[PERM_POLICIES_READ] = "policies:read",
	[PERM_POLICIES_WRITE] = "policies:write",
	[PERM_TEMPLATES_READ] = "templates:read",
	[PERM_TEMPLATES_WRITE] = "templates:write",
	[PERM_WORKSPACES_OWN] = "workspaces:own",
	[PERM_WORKSPACES_ALL] = "workspaces:all",
	[PERM_RECORDINGS_READ] = "recordings:read",
	[PERM_SESSIONS_ADMIN] = "sessions:admin",
};

/* The unauthenticated routes. Adding a line here is a security decision:
 * the route answers anyone on the network. */
const char *const rbac_public_routes[] = {
	"POST /api/v1/auth/login",
	"GET /healthz",
	"GET /readyz",
	"GET /api/v1/jwks.json",
	"GET /api/v1/openapi.json",
	NULL
};

bool
rbac_allows(role_mask roles, enum perm p)
{
	if ((int)p <= PERM_NONE || p >= PERM__COUNT)
		return false;
	if (p == PERM_PUBLIC || p == PERM_SELF)
		return true;
	for (int r = 0; r < ROLE__COUNT; r++)
		if ((roles & (1u << r)) != 0 && (rbac_grants[r] & P(p)) != 0)
			return true;
	return false;
}

const char *
rbac_role_name(enum role r)
{
	if ((int)r < 0 || r >= ROLE__COUNT)
		return "unknown";
	return rbac_role_names[r];
}

int
rbac_role_parse(const char *name)
{
	if (name == NULL)
		return -1;
	for (int r = 0; r < ROLE__COUNT; r++)
		if (strcmp(name, rbac_role_names[r]) == 0)
			return r;
	return -1;
}

const char *
rbac_perm_name(enum perm p)
{
	if ((int)p < 0 || p >= PERM__COUNT)
		return "unknown";
	return rbac_perm_names[p];
}

int
rbac_mask_parse(const char *const *names, size_t n, role_mask *out,
    char *err, size_t errlen)
{
	role_mask m = 0;

	for (size_t i = 0; i < n; i++) {
		int r = names[i] != NULL ? rbac_role_parse(names[i]) : -1;

		if (r < 0) {
			if (err != NULL && errlen > 0)
				snprintf(err, errlen,
				    "roles[%zu] is not a known role (owner, admin, "
				    "template-admin, auditor, security-officer, "
				    "member)", i);
			return MOAT_ERR_INVAL;
		}
		m |= 1u << r;
	}
	*out = m;
	return 0;
}

bool
rbac_route_is_public(const char *method, const char *pattern)
{
	size_t ml;

	if (method == NULL || pattern == NULL)
		return false;
	ml = strlen(method);
	for (size_t i = 0; rbac_public_routes[i] != NULL; i++) {
		const char *e = rbac_public_routes[i];

		if (strncmp(e, method, ml) == 0 && e[ml] == ' ' &&
		    strcmp(e + ml + 1, pattern) == 0)
			return true;
	}
	return false;
}
