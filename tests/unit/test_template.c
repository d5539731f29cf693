/*
 * test_template.c - unit tests for workspace template validation
 * (templates/template.h): the defaults of a minimal template, a full one
 * kept as given with its image made canonical, the name taken from the
 * path or the body, and every refusal with the field it names (bounds at
 * their edges, env names and reserved variables, ports, the script's
 * size, policy names, unknown and store-owned fields).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "templates/template.h"

static json_t *
load(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_REJECT_DUPLICATES, &je);

	if (v == NULL)
		fail_msg("bad test JSON %s: %s", text, je.text);
	return v;
}

static json_t *
ok(const char *text, const char *name)
{
	json_t *body = load(text), *out = NULL;
	char err[256] = "";

	if (template_normalize(body, name, "default", &out, err,
	    sizeof(err)) != 0)
		fail_msg("refused %s: %s", text, err);
	json_decref(body);
	return out;
}

static void
bad_body(json_t *body, const char *name, const char *reason_part)
{
	json_t *out = (json_t *)1;
	char err[256] = "";

	assert_int_equal(template_normalize(body, name, "default", &out, err,
	    sizeof(err)), MOAT_ERR_INVAL);
	assert_null(out);
	if (strstr(err, reason_part) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\"", err, reason_part);
}

static void
bad(const char *text, const char *reason_part)
{
	json_t *body = load(text);

	bad_body(body, NULL, reason_part);
	json_decref(body);
}

static long long
iv(const json_t *o, const char *k)
{
	return json_integer_value(json_object_get(o, k));
}

static void
test_defaults(void **state)
{
	json_t *t = ok("{\"name\":\"base\",\"image\":\"localhost/moat/base\"}",
	    NULL);

	(void)state;
	assert_string_equal(json_string_value(json_object_get(t, "name")),
	    "base");
	assert_string_equal(json_string_value(json_object_get(t, "org")),
	    "default");
	assert_string_equal(json_string_value(json_object_get(t, "image")),
	    "localhost/moat/base:latest");
	assert_int_equal(iv(t, "cpu"), 2000);
	assert_int_equal(iv(t, "memory_mb"), 2048);
	assert_int_equal(iv(t, "disk_mb"), 4096);
	assert_int_equal(iv(t, "root_disk_mb"), 2048);
	assert_int_equal(iv(t, "idle_timeout"), 3600);
	assert_int_equal(json_object_size(json_object_get(t, "env")), 0);
	assert_int_equal(json_array_size(json_object_get(t, "ports")), 0);
	assert_string_equal(json_string_value(json_object_get(t,
	    "startup_script")), "");
	assert_true(json_is_null(json_object_get(t, "egress_policy")));
	assert_true(json_is_false(json_object_get(t, "forbid_sudo")));
	assert_int_equal(json_object_size(t), 13);
	json_decref(t);
}

static void
test_full(void **state)
{
	json_t *t = ok("{\"image\":\"debian:12\",\"cpu\":64000,"
	    "\"memory_mb\":64,\"disk_mb\":1048576,\"root_disk_mb\":64,"
	    "\"env\":{\"EDITOR\":\"vim\",\"_x1\":\"\",\"Lang\":\"C.UTF-8\"},"
	    "\"startup_script\":\"#!/bin/sh\\necho hi\\n\","
	    "\"egress_policy\":\"web-only\",\"idle_timeout\":0,"
	    "\"ports\":[8080,3000,65535,1],\"forbid_sudo\":true}", "dev-box");

	(void)state;
	assert_string_equal(json_string_value(json_object_get(t, "name")),
	    "dev-box");
	assert_string_equal(json_string_value(json_object_get(t, "image")),
	    "docker.io/library/debian:12");
	assert_int_equal(iv(t, "cpu"), 64000);
	assert_int_equal(iv(t, "memory_mb"), 64);
	assert_int_equal(iv(t, "disk_mb"), 1048576);
	assert_int_equal(iv(t, "root_disk_mb"), 64);
	assert_int_equal(iv(t, "idle_timeout"), 0);
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    t, "env"), "Lang")), "C.UTF-8");
	assert_int_equal(json_array_size(json_object_get(t, "ports")), 4);
	assert_string_equal(json_string_value(json_object_get(t,
	    "egress_policy")), "web-only");
	assert_true(json_is_true(json_object_get(t, "forbid_sudo")));
	json_decref(t);
	/* idle_timeout at its edges; the name in the body matching */
	t = ok("{\"name\":\"a\",\"image\":\"a\",\"idle_timeout\":60}", "a");
	json_decref(t);
	t = ok("{\"image\":\"a\",\"idle_timeout\":604800,"
	    "\"egress_policy\":null}", "a");
	json_decref(t);
}

static void
test_refusals(void **state)
{
	char big[TEMPLATE_SCRIPT_MAX + 64], *p;
	json_t *body;
	int i;

	(void)state;
	bad("{\"image\":\"a\"}", "name: is required");
	bad("{\"name\":\"Base\",\"image\":\"a\"}", "name:");
	bad("{\"name\":\"a--b\",\"image\":\"a\"}", "name:");
	bad("{\"name\":7,\"image\":\"a\"}", "name:");
	bad("{\"name\":\"a\"}", "image: is required");
	bad("{\"name\":\"a\",\"image\":\"A\"}", "image: ");
	bad("{\"name\":\"a\",\"image\":\"a b\"}", "image: ");
	bad("{\"name\":\"a\",\"image\":\"a..b\"}", "image: ");
	bad("{\"name\":\"a\",\"image\":\"a:-x\"}", "image: the tag");
	bad("{\"name\":\"a\",\"image\":\"a@sha256:12\"}", "image: the digest");
	bad("{\"name\":\"a\",\"image\":\"a\",\"cpu\":99}", "cpu: must be "
	    "between 100 and 64000");
	bad("{\"name\":\"a\",\"image\":\"a\",\"cpu\":64001}", "cpu:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"cpu\":1.5}", "cpu: must be an "
	    "integer");
	bad("{\"name\":\"a\",\"image\":\"a\",\"memory_mb\":63}", "memory_mb:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"memory_mb\":262145}",
	    "memory_mb:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"disk_mb\":1048577}", "disk_mb:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"root_disk_mb\":0}",
	    "root_disk_mb:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"idle_timeout\":59}",
	    "idle_timeout: must be 0 (never)");
	bad("{\"name\":\"a\",\"image\":\"a\",\"idle_timeout\":-1}",
	    "idle_timeout:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"idle_timeout\":604801}",
	    "idle_timeout:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"env\":[]}", "env: must be");
	bad("{\"name\":\"a\",\"image\":\"a\",\"env\":{\"1X\":\"v\"}}",
	    "env: a variable name");
	bad("{\"name\":\"a\",\"image\":\"a\",\"env\":{\"A-B\":\"v\"}}",
	    "env: a variable name");
	bad("{\"name\":\"a\",\"image\":\"a\",\"env\":{\"\":\"v\"}}",
	    "env: a variable name");
	bad("{\"name\":\"a\",\"image\":\"a\",\"env\":{\"A B\":\"v\"}}",
	    "env: a variable name");
	bad("{\"name\":\"a\",\"image\":\"a\",\"env\":{\"HTTP_PROXY\":\"v\"}}",
	    "env.HTTP_PROXY: the proxy variables");
	bad("{\"name\":\"a\",\"image\":\"a\",\"env\":{\"https_proxy\":\"v\"}}",
	    "env.https_proxy:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"env\":{\"No_Proxy\":\"v\"}}",
	    "env.No_Proxy:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"env\":{\"MOAT_TOKEN\":\"v\"}}",
	    "env.MOAT_TOKEN: names starting with MOAT_");
	bad("{\"name\":\"a\",\"image\":\"a\",\"env\":{\"A\":1}}",
	    "env.A: must be a string");
	bad("{\"name\":\"a\",\"image\":\"a\",\"ports\":[0]}", "ports[0]:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"ports\":[22,65536]}",
	    "ports[1]:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"ports\":[\"22\"]}", "ports[0]:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"ports\":[22,80,22]}",
	    "ports[2]: repeats ports[0]");
	bad("{\"name\":\"a\",\"image\":\"a\",\"ports\":22}", "ports: must be");
	bad("{\"name\":\"a\",\"image\":\"a\",\"startup_script\":5}",
	    "startup_script: must be a string");
	bad("{\"name\":\"a\",\"image\":\"a\",\"egress_policy\":5}",
	    "egress_policy:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"egress_policy\":\"Web\"}",
	    "egress_policy:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"egress_policy\":\"\"}",
	    "egress_policy:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"forbid_sudo\":\"yes\"}",
	    "forbid_sudo:");
	bad("{\"name\":\"a\",\"image\":\"a\",\"shell\":\"zsh\"}",
	    "unknown field");
	bad("{\"name\":\"a\",\"image\":\"a\",\"id\":\"x\"}", "unknown field");
	bad("{\"name\":\"a\",\"image\":\"a\",\"rev\":3}", "unknown field");
	bad("{\"name\":\"a\",\"image\":\"a\",\"org\":\"other\"}",
	    "unknown field");
	bad("[1]", "must be a JSON object");
	/* the path's name against the body's */
	body = load("{\"name\":\"a\",\"image\":\"a\"}");
	bad_body(body, "b", "must match the name in the path");
	json_decref(body);

	/* env: 64 variables, then 65; a value of 4096 bytes, then 4097 */
	body = load("{\"name\":\"a\",\"image\":\"a\"}");
	json_object_set_new(body, "env", json_object());
	for (i = 0; i < TEMPLATE_ENV_MAX; i++) {
		char k[16];

		snprintf(k, sizeof(k), "V%d", i);
		json_object_set_new(json_object_get(body, "env"), k,
		    json_string("x"));
	}
	{
		json_t *out = NULL;
		char err[256];

		assert_int_equal(template_normalize(body, NULL, "default", &out,
		    err, sizeof(err)), 0);
		json_decref(out);
	}
	json_object_set_new(json_object_get(body, "env"), "V64",
	    json_string("x"));
	bad_body(body, NULL, "env: more than 64");
	json_object_set_new(body, "env", json_object());
	memset(big, 'v', TEMPLATE_ENV_VALUE_MAX + 1);
	big[TEMPLATE_ENV_VALUE_MAX + 1] = '\0';
	json_object_set_new(json_object_get(body, "env"), "BIG",
	    json_string(big));
	bad_body(body, NULL, "env.BIG: longer than 4096");
	json_object_set_new(json_object_get(body, "env"), "BIG",
	    json_stringn("a\0b", 3));
	bad_body(body, NULL, "env.BIG: must not contain control characters");
	json_object_del(body, "env");

	/* startup_script: 64 KiB, then one more byte; a NUL */
	memset(big, 's', TEMPLATE_SCRIPT_MAX);
	big[TEMPLATE_SCRIPT_MAX] = '\0';
	json_object_set_new(body, "startup_script", json_string(big));
	{
		json_t *out = NULL;
		char err[256];

		assert_int_equal(template_normalize(body, NULL, "default", &out,
		    err, sizeof(err)), 0);
		json_decref(out);
	}
	p = big + TEMPLATE_SCRIPT_MAX;
	p[0] = 's';
	p[1] = '\0';
	json_object_set_new(body, "startup_script", json_string(big));
	bad_body(body, NULL, "startup_script: longer than 65536");
	json_object_set_new(body, "startup_script", json_stringn("a\0b", 3));
	bad_body(body, NULL, "startup_script: must not contain a NUL");
	/* org is required */
	{
		json_t *out = NULL;
		char err[256];

		json_object_del(body, "startup_script");
		assert_int_equal(template_normalize(body, NULL, "", &out, err,
		    sizeof(err)), MOAT_ERR_INVAL);
		assert_int_equal(template_normalize(body, NULL, NULL, &out, err,
		    sizeof(err)), MOAT_ERR_INVAL);
	}
	json_decref(body);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
