/*
 * rbac.h - roles and permissions: the one table that says who may do what.
 *
 * Roles are held per organization (memberships). A route declares exactly
 * one permission; a caller passes when any of its roles in the route's
 * organization grants it. PERM_NONE means "not declared": the API refuses
 * to register such a route. PERM_PUBLIC marks the few unauthenticated
 * routes, which must also appear in rbac_public_routes (DESIGN.md section 8,
 * invariant 1). PERM_SELF is any authenticated user acting on their own
 * things (profile, password, tokens, SSH keys, personal secrets).
 *
 * The table lives in rbac.c and nowhere else.
 */
#ifndef MOATD_RBAC_H
#define MOATD_RBAC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum role {
	ROLE_OWNER = 0,
	ROLE_ADMIN,
	ROLE_TEMPLATE_ADMIN,
	ROLE_AUDITOR,
	ROLE_SECURITY_OFFICER,
	ROLE_MEMBER,
	ROLE__COUNT
};

enum perm {
	PERM_NONE = 0,		/* undeclared: never registered */
	PERM_PUBLIC,		/* no authentication (the public list only) */
	PERM_SELF,		/* any authenticated user, own resources */
	PERM_USERS_READ,
	PERM_USERS_WRITE,	/* create, disable, set roles */
	PERM_ORGS_READ,
	PERM_ORGS_WRITE,	/* organizations and memberships */
	PERM_AUDIT_READ,
	PERM_SETTINGS_READ,	/* organization security settings */
	PERM_SETTINGS_WRITE,
	PERM_POLICIES_READ,	/* egress policies */
	PERM_POLICIES_WRITE,
	PERM_TEMPLATES_READ,
	PERM_TEMPLATES_WRITE,
	PERM_WORKSPACES_OWN,	/* create and use one's own workspaces */
	PERM_WORKSPACES_ALL,	/* act on anyone's workspaces */
	PERM_RECORDINGS_READ,	/* session recordings (they hold output) */
	PERM_SESSIONS_ADMIN,	/* list and end live SSH sessions */
	PERM__COUNT
};

typedef uint32_t role_mask;	/* bit (1u << enum role) */

/* True when any role in roles grants perm. PERM_NONE: always false.
 * PERM_PUBLIC and PERM_SELF: true for any authenticated caller, even one
 * with no roles. */
bool rbac_allows(role_mask roles, enum perm p);

const char *rbac_role_name(enum role r);	/* "template-admin" */
int rbac_role_parse(const char *name);		/* enum role, or -1 */
const char *rbac_perm_name(enum perm p);	/* "users:write" */

/* Roles as a JSON-friendly list; parse a list of names into a mask
 * (MOAT_ERR_INVAL naming the bad one in err). */
int rbac_mask_parse(const char *const *names, size_t n, role_mask *out,
    char *err, size_t errlen);

/* The unauthenticated routes, "METHOD PATTERN", NULL-terminated. */
extern const char *const rbac_public_routes[];
bool rbac_route_is_public(const char *method, const char *pattern);

#endif
