/*
 * test_json.c - unit tests for json.c: strict body parsing (size, syntax,
 * duplicates, depth, NUL, root type), field checks and their error texts
 * (which must never echo values), typed getters and the canonical form.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

static const struct json_field fields[] = {
	{ "name", JF_STRING, true, 20, 0, 0 },
	{ "n", JF_INT, false, 0, 1, 10 },
	{ "on", JF_BOOL, false, 0, 0, 0 },
	{ "tags", JF_ARRAY, false, 3, 0, 0 },
	{ "meta", JF_OBJECT, false, 0, 0, 0 },
	{ "ratio", JF_NUMBER, false, 0, 0, 0 },
	{ "extra", JF_ANY, false, 0, 0, 0 },
	{ "big", JF_INT, false, 0, 0, 0 },
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

static int
req(const char *body, json_t **out, char *err, size_t errlen)
{
	return json_parse_request((const uint8_t *)body, strlen(body), 4096,
	    fields, NFIELDS, out, err, errlen);
}

static void
expect_err(const char *body, int code, const char *want)
{
	char err[256] = "";
	json_t *v = (json_t *)1;
	int r = req(body, &v, err, sizeof(err));

	if (r != code || strcmp(err, want) != 0)
		fail_msg("body %s: got %d \"%s\", want %d \"%s\"", body, r, err,
		    code, want);
	assert_null(v);
}

static void
test_valid_request(void **state)
{
	json_t *v = NULL;
	char err[256];

	(void)state;
	assert_int_equal(req("{\"name\":\"ws-1\",\"n\":3,\"on\":true,"
	    "\"tags\":[1,2],\"meta\":{\"a\":{}},\"ratio\":0.5,\"extra\":null,"
	    "\"big\":-9223372036854775808}  \n", &v, err, sizeof(err)), 0);
	assert_non_null(v);
	assert_string_equal(json_get_str(v, "name"), "ws-1");
	assert_int_equal(json_get_int(v, "n", 0), 3);
	assert_true(json_get_bool(v, "on", false));
	assert_int_equal(json_get_int(v, "big", 0), INT64_MIN);
	/* Absent or of another type: NULL / the default. */
	assert_null(json_get_str(v, "n"));
	assert_null(json_get_str(v, "missing"));
	assert_int_equal(json_get_int(v, "name", 42), 42);
	assert_int_equal(json_get_int(v, "ratio", 42), 42);
	assert_false(json_get_bool(v, "n", false));
	assert_true(json_get_bool(v, "missing", true));
	assert_null(json_get_str(NULL, "name"));
	json_decref(v);
	/* Optional fields may be absent; a UTF-8 name of 20 bytes fits. */
	assert_int_equal(req("{\"name\":\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\"}", &v, err,
	    sizeof(err)), 0);
	json_decref(v);
}

static void
test_parse_errors(void **state)
{
	(void)state;
	expect_err("{\"name\": x}", MOAT_ERR_PARSE,
	    "body is not valid JSON (line 1, column 10)");
	expect_err("", MOAT_ERR_PARSE, "body is empty; a JSON object is required");
	expect_err("{\"name\":\"a\"} {}", MOAT_ERR_PARSE,
	    "body is not valid JSON (line 1, column 14)");
	expect_err("{\"name\":\"a\"", MOAT_ERR_PARSE,
	    "body is not valid JSON (line 1, column 11)");
	expect_err("[1,2]", MOAT_ERR_PARSE, "body must be a JSON object");
	expect_err("\"str\"", MOAT_ERR_PARSE, "body must be a JSON object");
	expect_err("42", MOAT_ERR_PARSE, "body must be a JSON object");
	expect_err("{\"name\":\"a\",\"name\":\"b\"}", MOAT_ERR_PARSE,
	    "body has a duplicate key (line 1, column 18)");
	expect_err("{\"name\":\"a\\u0000b\"}", MOAT_ERR_PARSE,
	    "body has a string with a NUL character (line 1, column 18)");
	expect_err("{\"name\":\"\xff\"}", MOAT_ERR_PARSE,
	    "body is not valid UTF-8");
	expect_err("{\"n\":99999999999999999999}", MOAT_ERR_PARSE,
	    "body is not valid JSON (line 1, column 25)");
}

static void
test_raw_nul_and_size(void **state)
{
	static const uint8_t body[] = "{\"name\":\"a\"}\0{}";
	char err[256];
	json_t *v = (json_t *)1;

	(void)state;
	assert_int_equal(json_parse_object(body, sizeof(body) - 1, 4096, &v,
	    err, sizeof(err)), MOAT_ERR_PARSE);
	assert_null(v);
	assert_int_equal(json_parse_object(body, 12, 11, &v, err, sizeof(err)),
	    MOAT_ERR_TOOBIG);
	assert_string_equal(err, "body is larger than 11 bytes");
	assert_int_equal(json_parse_object(body, 12, 12, &v, err, sizeof(err)),
	    0);
	json_decref(v);
}

static char *
nested(int depth, int extra_keys)
{
	size_t cap = (size_t)depth * 8 + 64;
	char *s = malloc(cap);
	size_t o = 0;

	assert_non_null(s);
	/* {"a":{"a":...{}...}} with depth objects. */
	for (int i = 0; i < depth; i++) {
		if (i == depth - 1) {
			memcpy(s + o, "{", 1);
			o += 1;
		} else {
			memcpy(s + o, i == 0 && extra_keys ? "{\"extra\":" :
			    "{\"a\":", i == 0 && extra_keys ? 9 : 5);
			o += i == 0 && extra_keys ? 9 : 5;
		}
	}
	for (int i = 0; i < depth; i++)
		s[o++] = '}';
	s[o] = '\0';
	return s;
}

static void
test_depth(void **state)
{
	char err[256];
	json_t *v = NULL;
	char *s;

	(void)state;
	s = nested(JSON_MAX_DEPTH, 0);
	assert_int_equal(json_parse_object((uint8_t *)s, strlen(s), 1 << 20, &v,
	    err, sizeof(err)), 0);
	json_decref(v);
	free(s);
	s = nested(JSON_MAX_DEPTH + 1, 0);
	assert_int_equal(json_parse_object((uint8_t *)s, strlen(s), 1 << 20, &v,
	    err, sizeof(err)), MOAT_ERR_PARSE);
	assert_string_equal(err, "body is nested deeper than 32 levels");
	free(s);
	/* Past jansson's own limit (2048). */
	s = nested(5000, 0);
	assert_int_equal(json_parse_object((uint8_t *)s, strlen(s), 1 << 20, &v,
	    err, sizeof(err)), MOAT_ERR_PARSE);
	assert_string_equal(err, "body is nested deeper than 32 levels");
	free(s);
	/* Arrays count too. */
	{
		char arr[200];
		size_t o = 0;
		arr[o++] = '{';
		memcpy(arr + o, "\"extra\":", 8);
		o += 8;
		for (int i = 0; i < JSON_MAX_DEPTH; i++)
			arr[o++] = '[';
		for (int i = 0; i < JSON_MAX_DEPTH; i++)
			arr[o++] = ']';
		arr[o++] = '}';
		arr[o] = '\0';
		assert_int_equal(req(arr, &v, err, sizeof(err)), MOAT_ERR_PARSE);
		assert_null(v);
	}
}

static void
test_field_errors(void **state)
{
	(void)state;
	expect_err("{}", MOAT_ERR_INVAL, "field \"name\" is required");
	expect_err("{\"name\":5}", MOAT_ERR_INVAL,
	    "field \"name\" must be a string");
	expect_err("{\"name\":null}", MOAT_ERR_INVAL,
	    "field \"name\" must be a string");
	expect_err("{\"name\":\"123456789012345678901\"}", MOAT_ERR_INVAL,
	    "field \"name\" is longer than 20 bytes");
	expect_err("{\"nmae\":\"x\"}", MOAT_ERR_INVAL, "unknown field \"nmae\"");
	expect_err("{\"name\":\"x\",\"n\":0}", MOAT_ERR_INVAL,
	    "field \"n\" must be between 1 and 10");
	expect_err("{\"name\":\"x\",\"n\":11}", MOAT_ERR_INVAL,
	    "field \"n\" must be between 1 and 10");
	expect_err("{\"name\":\"x\",\"n\":1.0}", MOAT_ERR_INVAL,
	    "field \"n\" must be an integer");
	expect_err("{\"name\":\"x\",\"on\":1}", MOAT_ERR_INVAL,
	    "field \"on\" must be true or false");
	expect_err("{\"name\":\"x\",\"tags\":{}}", MOAT_ERR_INVAL,
	    "field \"tags\" must be an array");
	expect_err("{\"name\":\"x\",\"tags\":[1,2,3,4]}", MOAT_ERR_INVAL,
	    "field \"tags\" has more than 3 items");
	expect_err("{\"name\":\"x\",\"meta\":[]}", MOAT_ERR_INVAL,
	    "field \"meta\" must be an object");
	expect_err("{\"name\":\"x\",\"ratio\":\"1\"}", MOAT_ERR_INVAL,
	    "field \"ratio\" must be a number");
	/* Hostile field names are printed safely and shortly. */
	expect_err("{\"a\\\"b\\n\\u00e9\":1}", MOAT_ERR_INVAL,
	    "unknown field \"a?b???\"");
}

static void
test_values_never_echoed(void **state)
{
	static const char *const bodies[] = {
		"{\"name\":\"hunter2-hunter2-hunter2\"}",
		"{\"name\":\"x\",\"n\":\"hunter2\"}",
		"{\"name\":hunter2}",
		"{\"name\":\"hunter2\" hunter2}",
		"{\"name\":\"x\",\"on\":\"hunter2\"}",
	};
	char err[256];
	json_t *v;

	(void)state;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_not_equal(req(bodies[i], &v, err, sizeof(err)), 0);
		if (strstr(err, "hunter") != NULL)
			fail_msg("error echoes a value: %s", err);
	}
}

static void
test_check_fields_direct(void **state)
{
	char err[256];
	json_t *arr = json_array(), *obj = json_object();

	(void)state;
	assert_int_equal(json_check_fields(arr, fields, NFIELDS, err,
	    sizeof(err)), MOAT_ERR_INVAL);
	assert_string_equal(err, "body must be a JSON object");
	/* A string with a NUL built in memory is refused. */
	assert_int_equal(json_object_set_new(obj, "name",
	    json_stringn("a\0b", 3)), 0);
	assert_int_equal(json_check_fields(obj, fields, NFIELDS, err,
	    sizeof(err)), MOAT_ERR_INVAL);
	assert_string_equal(err, "field \"name\" must not contain a NUL "
	    "character");
	json_decref(arr);
	json_decref(obj);
}

static void
test_canonical(void **state)
{
	json_t *v = NULL;
	char err[256], *s;
	size_t len = 0;
	const char *body =
	    "{ \"b\" : [1, {\"z\":1,\"a\":\"\xc3\xa9\"}], \"a\" : true }";

	assert_int_equal(json_parse_object((const uint8_t *)body, strlen(body),
	    4096, &v, err, sizeof(err)), 0);
	(void)state;
	s = json_canonical(v, &len);
	assert_non_null(s);
	assert_string_equal(s, "{\"a\":true,\"b\":[1,{\"a\":\"\xc3\xa9\",\"z\":1}]}");
	assert_int_equal(len, strlen(s));
	free(s);
	json_decref(v);
	v = json_integer(5);
	s = json_canonical(v, NULL);
	assert_string_equal(s, "5");
	free(s);
	json_decref(v);
	assert_null(json_canonical(NULL, &len));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_request),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_raw_nul_and_size),
		cmocka_unit_test(test_depth),
		cmocka_unit_test(test_field_errors),
		cmocka_unit_test(test_values_never_echoed),
		cmocka_unit_test(test_check_fields_direct),
		cmocka_unit_test(test_canonical),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
