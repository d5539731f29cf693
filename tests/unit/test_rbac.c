/*
 * test_rbac.c - unit tests for the role table (rbac.c): what each role may
 * do, written out here independently of the table so a change to it must
 * change this test too; the special permissions (none, public, self);
 * names of roles and permissions; parsing role lists; the public route
 * list and its matching.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"
#include "rbac/rbac.h"

#define R(x) (1u << (x))

/* The expected grants, from ISSUE 3 point 6 and the API brief. */
static bool
expected(enum role r, enum perm p)
{
	switch (r) {
	case ROLE_OWNER:
	case ROLE_ADMIN:
		return p != PERM_NONE;
	case ROLE_TEMPLATE_ADMIN:
		return p == PERM_PUBLIC || p == PERM_SELF ||
		    p == PERM_TEMPLATES_READ || p == PERM_TEMPLATES_WRITE ||
		    p == PERM_POLICIES_READ;
	case ROLE_AUDITOR:
		return p == PERM_PUBLIC || p == PERM_SELF ||
		    p == PERM_AUDIT_READ || p == PERM_RECORDINGS_READ;
	case ROLE_SECURITY_OFFICER:
		return p == PERM_PUBLIC || p == PERM_SELF ||
		    p == PERM_SETTINGS_READ || p == PERM_SETTINGS_WRITE ||
		    p == PERM_POLICIES_READ || p == PERM_POLICIES_WRITE ||
		    p == PERM_AUDIT_READ || p == PERM_RECORDINGS_READ;
	case ROLE_MEMBER:
		return p == PERM_PUBLIC || p == PERM_SELF ||
		    p == PERM_TEMPLATES_READ || p == PERM_WORKSPACES_OWN;
	default:
		return false;
	}
}

static void
test_each_role(void **state)
{
	(void)state;
	for (int r = 0; r < ROLE__COUNT; r++)
		for (int p = 0; p < PERM__COUNT; p++)
			if (rbac_allows(R(r), (enum perm)p) != expected(r, p))
				fail_msg("role %s, permission %s: got %d",
				    rbac_role_name(r), rbac_perm_name(p),
				    rbac_allows(R(r), (enum perm)p));
}

static void
test_special_perms(void **state)
{
	(void)state;
	/* Undeclared: nobody, not even an owner. */
	assert_false(rbac_allows(~0u, PERM_NONE));
	assert_false(rbac_allows(R(ROLE_OWNER), PERM_NONE));
	/* Any authenticated caller, even without roles. */
	assert_true(rbac_allows(0, PERM_SELF));
	assert_true(rbac_allows(0, PERM_PUBLIC));
	assert_false(rbac_allows(0, PERM_USERS_READ));
	assert_false(rbac_allows(0, PERM_AUDIT_READ));
	/* Out of range. */
	assert_false(rbac_allows(~0u, PERM__COUNT));
	assert_false(rbac_allows(~0u, (enum perm)-1));
	assert_false(rbac_allows(~0u, (enum perm)1000));
	/* Bits beyond the known roles grant nothing. */
	assert_false(rbac_allows(R(ROLE__COUNT) | R(31), PERM_USERS_WRITE));
}

static void
test_combined_roles(void **state)
{
	role_mask m = R(ROLE_AUDITOR) | R(ROLE_MEMBER);

	(void)state;
	assert_true(rbac_allows(m, PERM_AUDIT_READ));
	assert_true(rbac_allows(m, PERM_WORKSPACES_OWN));
	assert_false(rbac_allows(m, PERM_USERS_WRITE));
	assert_false(rbac_allows(m, PERM_POLICIES_WRITE));
	m = R(ROLE_TEMPLATE_ADMIN) | R(ROLE_SECURITY_OFFICER);
	assert_true(rbac_allows(m, PERM_TEMPLATES_WRITE));
	assert_true(rbac_allows(m, PERM_POLICIES_WRITE));
	assert_false(rbac_allows(m, PERM_WORKSPACES_ALL));
	assert_false(rbac_allows(m, PERM_ORGS_WRITE));
}

static void
test_names(void **state)
{
	static const char *const roles[] = { "owner", "admin", "template-admin",
	    "auditor", "security-officer", "member" };

	(void)state;
	assert_int_equal(ROLE__COUNT, 6);
	for (int r = 0; r < ROLE__COUNT; r++) {
		assert_string_equal(rbac_role_name(r), roles[r]);
		assert_int_equal(rbac_role_parse(roles[r]), r);
	}
	assert_int_equal(rbac_role_parse("Owner"), -1);
	assert_int_equal(rbac_role_parse("owner "), -1);
	assert_int_equal(rbac_role_parse(""), -1);
	assert_int_equal(rbac_role_parse(NULL), -1);
	assert_int_equal(rbac_role_parse("root"), -1);
	assert_string_equal(rbac_role_name(ROLE__COUNT), "unknown");

	/* Permission names: distinct, and "area:verb" for real ones. */
	for (int p = 0; p < PERM__COUNT; p++) {
		const char *n = rbac_perm_name(p);

		assert_non_null(n);
		if (p > PERM_SELF)
			assert_non_null(strchr(n, ':'));
		for (int q = 0; q < p; q++)
			assert_string_not_equal(n, rbac_perm_name(q));
	}
	assert_string_equal(rbac_perm_name(PERM_USERS_WRITE), "users:write");
	assert_string_equal(rbac_perm_name(PERM_AUDIT_READ), "audit:read");
	assert_string_equal(rbac_perm_name(PERM__COUNT), "unknown");
}

static void
test_mask_parse(void **state)
{
	const char *ok[] = { "member", "auditor", "member" };
	const char *bad[] = { "member", "superuser" };
	const char *null_item[] = { "member", NULL };
	role_mask m = 12345;
	char err[200];

	(void)state;
	assert_int_equal(rbac_mask_parse(ok, 3, &m, err, sizeof(err)), 0);
	assert_int_equal(m, R(ROLE_MEMBER) | R(ROLE_AUDITOR));
	assert_int_equal(rbac_mask_parse(ok, 0, &m, err, sizeof(err)), 0);
	assert_int_equal(m, 0);
	m = 7;
	err[0] = '\0';
	assert_int_equal(rbac_mask_parse(bad, 2, &m, err, sizeof(err)),
	    MOAT_ERR_INVAL);
	assert_non_null(strstr(err, "roles[1]"));
	/* The bad value is not echoed. */
	assert_null(strstr(err, "superuser"));
	assert_int_equal(m, 7);
	assert_int_equal(rbac_mask_parse(null_item, 2, &m, err, sizeof(err)),
	    MOAT_ERR_INVAL);
	assert_int_equal(rbac_mask_parse(bad, 2, &m, NULL, 0), MOAT_ERR_INVAL);
}

static void
test_public_routes(void **state)
{
	size_t n = 0;

	(void)state;
	while (rbac_public_routes[n] != NULL)
		n++;
	assert_int_equal(n, 5);
	assert_true(rbac_route_is_public("POST", "/api/v1/auth/login"));
	assert_true(rbac_route_is_public("GET", "/healthz"));
	assert_true(rbac_route_is_public("GET", "/readyz"));
	assert_true(rbac_route_is_public("GET", "/api/v1/jwks.json"));
	assert_true(rbac_route_is_public("GET", "/api/v1/openapi.json"));

	assert_false(rbac_route_is_public("GET", "/api/v1/auth/login"));
	assert_false(rbac_route_is_public("post", "/api/v1/auth/login"));
	assert_false(rbac_route_is_public("POS", "/api/v1/auth/login"));
	assert_false(rbac_route_is_public("POST", "/api/v1/auth/login/"));
	assert_false(rbac_route_is_public("POST", "/api/v1/auth/logi"));
	assert_false(rbac_route_is_public("POST", "/api/v1/auth/logout"));
	assert_false(rbac_route_is_public("GET", "/api/v1/users/me"));
	assert_false(rbac_route_is_public("GET", "/api/v1/audit"));
	assert_false(rbac_route_is_public("GET", ""));
	assert_false(rbac_route_is_public("", "/healthz"));
	assert_false(rbac_route_is_public(NULL, "/healthz"));
	assert_false(rbac_route_is_public("GET", NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_role),
		cmocka_unit_test(test_special_perms),
		cmocka_unit_test(test_combined_roles),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_mask_parse),
		cmocka_unit_test(test_public_routes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
