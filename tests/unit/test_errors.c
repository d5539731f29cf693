/*
 * test_errors.c - the error contract: every code has its own description,
 * and errno values map to the codes callers test for.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "errors.h"

static void
test_every_code_has_a_distinct_description(void **state)
{
	(void)state;
	for (int a = MOAT_OK; a > MOAT_ERR__LAST; a--) {
		const char *da = moat_strerror(a);

		assert_non_null(da);
		assert_string_not_equal(da, "unknown error");
		for (int b = a - 1; b > MOAT_ERR__LAST; b--)
			assert_string_not_equal(da, moat_strerror(b));
	}
	assert_string_equal(moat_strerror(MOAT_ERR__LAST), "unknown error");
	assert_string_equal(moat_strerror(12345), "unknown error");
}

static void
test_errno_mapping(void **state)
{
	(void)state;
	assert_int_equal(moat_err_from_errno(0), MOAT_OK);
	assert_int_equal(moat_err_from_errno(ENOENT), MOAT_ERR_NOTFOUND);
	assert_int_equal(moat_err_from_errno(EEXIST), MOAT_ERR_EXISTS);
	assert_int_equal(moat_err_from_errno(EACCES), MOAT_ERR_PERM);
	assert_int_equal(moat_err_from_errno(EPERM), MOAT_ERR_PERM);
	assert_int_equal(moat_err_from_errno(ENOSPC), MOAT_ERR_NOSPACE);
	assert_int_equal(moat_err_from_errno(ENOMEM), MOAT_ERR_NOMEM);
	assert_int_equal(moat_err_from_errno(ETIMEDOUT), MOAT_ERR_TIMEOUT);
	assert_int_equal(moat_err_from_errno(EPIPE), MOAT_ERR_CLOSED);
	assert_int_equal(moat_err_from_errno(EIO), MOAT_ERR_IO);
	/* Every mapping is negative: callers test r < 0. */
	for (int e = 1; e < 134; e++)
		assert_true(moat_err_from_errno(e) < 0);
}

static void
test_error_messages(void **state)
{
	char err[16];

	(void)state;
	moat_errf(err, sizeof(err), "field \"%s\" is required", "name");
	assert_string_equal(err, "field \"name\" is");	/* truncated, terminated */
	moat_errf(NULL, 0, "ignored %d", 1);
	assert_int_equal(moat_fail(MOAT_ERR_PERM, err, sizeof(err), "no %s", "way"),
	    MOAT_ERR_PERM);
	assert_string_equal(err, "no way");
	assert_int_equal(moat_fail(MOAT_ERR_INVAL, NULL, 0, "x"), MOAT_ERR_INVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_code_has_a_distinct_description),
		cmocka_unit_test(test_errno_mapping),
		cmocka_unit_test(test_error_messages),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
