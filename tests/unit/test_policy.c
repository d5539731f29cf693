/*
 * test_policy.c - unit tests for the policy module: egress policy
 * validation and normalization (the DESIGN.md 5a example as YAML and JSON,
 * every kind of bad field with its exact path, hosts and IDN, CIDR, URL
 * normalization, limits), the YAML reader's refusals and typing, and the
 * organization security settings.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "policy.h"

/* The example of DESIGN.md section 5a, verbatim. */
static const char design_yaml[] =
    "name: default\n"
    "mode: enforce            # or monitor: allow, and record what enforce "
    "would deny\n"
    "allow:\n"
    "  - host: \"*.example.com\"   # subdomains only; \"example.com\" is the "
    "apex alone\n"
    "    ports: [443]            # default [443] for CONNECT, [80] for plain "
    "HTTP\n"
    "  - host: git.example.org\n"
    "  - cidr: 127.0.0.2/32      # explicit address ranges: also the only way "
    "to reach a special-purpose range\n"
    "    ports: [80, 443]\n"
    "  - url: \"http://mirror.example.net/debian/\"   # plain-HTTP URL "
    "prefix, matched after path normalization\n"
    "deny:\n"
    "  - host: \"paste.example.com\"\n";

static const char design_json[] =
    "{\"name\": \"default\", \"mode\": \"enforce\", \"allow\": ["
    "{\"host\": \"*.example.com\", \"ports\": [443]},"
    "{\"host\": \"git.example.org\"},"
    "{\"cidr\": \"127.0.0.2/32\", \"ports\": [80, 443]},"
    "{\"url\": \"http://mirror.example.net/debian/\"}],"
    "\"deny\": [{\"host\": \"paste.example.com\"}]}";

static json_t *
load(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
	    &je);

	if (v == NULL)
		fail_msg("bad test JSON %s: %s", text, je.text);
	return v;
}

/* Normalizes a JSON policy text; fails the test unless it is accepted. */
static json_t *
norm_ok(const char *text)
{
	char path[256] = "", err[256] = "";
	json_t *doc = load(text), *out = NULL;
	int r = policy_normalize(doc, &out, path, sizeof(path), err,
	    sizeof(err));

	json_decref(doc);
	if (r != 0)
		fail_msg("%s: refused at \"%s\": %s", text, path, err);
	assert_non_null(out);
	return out;
}

/* A policy text must be refused at exactly want_path with a reason that
 * contains want_reason. */
static void
norm_bad(const char *text, const char *want_path, const char *want_reason)
{
	char path[256] = "?", err[256] = "";
	json_t *doc = load(text), *out = (json_t *)1;
	int r = policy_normalize(doc, &out, path, sizeof(path), err,
	    sizeof(err));

	json_decref(doc);
	if (r != MOAT_ERR_INVAL || strcmp(path, want_path) != 0 ||
	    strstr(err, want_reason) == NULL)
		fail_msg("%s: got %d at \"%s\" (%s), want \"%s\" (%s)", text, r,
		    path, err, want_path, want_reason);
	assert_null(out);
}

/* One rule in allow[0]: its normalized form must equal want (JSON). */
static void
rule_is(const char *rule, const char *want)
{
	char text[4096];
	json_t *out, *exp;

	snprintf(text, sizeof(text), "{\"name\":\"p\",\"allow\":[%s]}", rule);
	out = norm_ok(text);
	exp = load(want);
	if (!json_equal(json_array_get(json_object_get(out, "allow"), 0),
	    exp)) {
		char *got = json_dumps(out, JSON_COMPACT);

		fail_msg("rule %s: got %s, want %s", rule, got, want);
	}
	json_decref(exp);
	json_decref(out);
}

/* One rule in allow[0] must be refused at want_path. */
static void
rule_bad(const char *rule, const char *want_path, const char *want_reason)
{
	char text[4096];

	snprintf(text, sizeof(text), "{\"name\":\"p\",\"allow\":[%s]}", rule);
	norm_bad(text, want_path, want_reason);
}

static void
test_design_example(void **state)
{
	char err[256] = "", path[256] = "";
	json_t *fromyaml = NULL, *fromjson, *a, *b = NULL, *want;

	(void)state;
	assert_int_equal(policy_yaml_to_json(design_yaml, strlen(design_yaml),
	    &fromyaml, err, sizeof(err)), 0);
	fromjson = load(design_json);
	assert_true(json_equal(fromyaml, fromjson));
	a = norm_ok(design_json);
	assert_int_equal(policy_normalize(fromyaml, &b, path, sizeof(path),
	    err, sizeof(err)), 0);
	assert_true(json_equal(a, b));
	/* Normalizing the normal form changes nothing. */
	want = load(design_json);	/* already canonical */
	assert_true(json_equal(a, want));
	json_decref(b);
	assert_int_equal(policy_normalize(a, &b, path, sizeof(path), err,
	    sizeof(err)), 0);
	assert_true(json_equal(a, b));
	json_decref(want);
	json_decref(a);
	json_decref(b);
	json_decref(fromjson);
	json_decref(fromyaml);
}

static void
test_defaults_and_minimal(void **state)
{
	json_t *out, *want;

	(void)state;
	out = norm_ok("{\"name\":\"default\"}");
	want = load("{\"name\":\"default\",\"mode\":\"enforce\",\"allow\":[],"
	    "\"deny\":[]}");
	assert_true(json_equal(out, want));
	json_decref(out);
	json_decref(want);
	out = norm_ok("{\"name\":\"m\",\"mode\":\"monitor\",\"deny\":[]}");
	assert_string_equal(json_string_value(json_object_get(out, "mode")),
	    "monitor");
	json_decref(out);
	/* ports sorted, repeats dropped; duplicate rules kept */
	out = norm_ok("{\"name\":\"p\",\"allow\":[{\"host\":\"a.example\","
	    "\"ports\":[8443,443,8443,80]},{\"host\":\"a.example\"},"
	    "{\"host\":\"a.example\"}]}");
	want = load("[{\"host\":\"a.example\",\"ports\":[80,443,8443]},"
	    "{\"host\":\"a.example\"},{\"host\":\"a.example\"}]");
	assert_true(json_equal(json_object_get(out, "allow"), want));
	json_decref(out);
	json_decref(want);
}

static void
test_bad_fields(void **state)
{
	(void)state;
	norm_bad("[]", "", "must be a mapping");
	norm_bad("{\"name\":\"p\",\"color\":1}", "color", "unknown field");
	norm_bad("{\"allow\":[]}", "name", "is required");
	norm_bad("{\"name\":7}", "name", "must be a string");
	norm_bad("{\"name\":\"Default\"}", "name", "lower-case");
	norm_bad("{\"name\":\"a--b\"}", "name", "lower-case");
	norm_bad("{\"name\":\"-ab\"}", "name", "lower-case");
	norm_bad("{\"name\":\"abcdefghijklmnopqrstu\"}", "name", "lower-case");
	norm_bad("{\"name\":\"\"}", "name", "lower-case");
	norm_bad("{\"name\":\"p\",\"mode\":\"audit\"}", "mode", "enforce");
	norm_bad("{\"name\":\"p\",\"mode\":true}", "mode", "enforce");
	norm_bad("{\"name\":\"p\",\"allow\":{}}", "allow", "list of rules");
	norm_bad("{\"name\":\"p\",\"deny\":null}", "deny", "list of rules");
	norm_bad("{\"name\":\"p\",\"deny\":[\"x.example\"]}", "deny[0]",
	    "must be a mapping");
	rule_bad("{}", "allow[0]", "needs one of host, cidr or url");
	rule_bad("{\"ports\":[443]}", "allow[0]", "needs one of");
	rule_bad("{\"host\":\"a.example\",\"cidr\":\"10.0.0.0/8\"}", "allow[0]",
	    "only one of");
	rule_bad("{\"host\":\"a.example\",\"url\":\"http://a.example/\"}",
	    "allow[0]", "only one of");
	rule_bad("{\"host\":\"a.example\",\"port\":443}", "allow[0].port",
	    "unknown field");
	rule_bad("{\"host\":\"a.example\",\"we\\\"ird\\u00e9\":1}",
	    "allow[0].we?ird??", "unknown field");
	rule_bad("{\"host\":5}", "allow[0].host", "must be a string");
	rule_bad("{\"cidr\":[\"10.0.0.0/8\"]}", "allow[0].cidr",
	    "must be a string");
	rule_bad("{\"host\":\"a.example\",\"ports\":443}", "allow[0].ports",
	    "list of port numbers");
	rule_bad("{\"host\":\"a.example\",\"ports\":[]}", "allow[0].ports",
	    "must not be empty");
	rule_bad("{\"host\":\"a.example\",\"ports\":[443,0]}",
	    "allow[0].ports[1]", "from 1 to 65535");
	rule_bad("{\"host\":\"a.example\",\"ports\":[65536]}",
	    "allow[0].ports[0]", "from 1 to 65535");
	rule_bad("{\"host\":\"a.example\",\"ports\":[-1]}",
	    "allow[0].ports[0]", "from 1 to 65535");
	rule_bad("{\"host\":\"a.example\",\"ports\":[\"443\"]}",
	    "allow[0].ports[0]", "must be an integer");
	rule_bad("{\"host\":\"a.example\",\"ports\":[443.0]}",
	    "allow[0].ports[0]", "must be an integer");
	rule_bad("{\"host\":\"a.example\",\"ports\":[true]}",
	    "allow[0].ports[0]", "must be an integer");
	rule_bad("{\"url\":\"http://a.example/\",\"ports\":[80]}",
	    "allow[0].ports", "not allowed in a url rule");
	/* the first fault is the one reported, in a later list too */
	norm_bad("{\"name\":\"p\",\"allow\":[{\"host\":\"ok.example\"}],"
	    "\"deny\":[{\"host\":\"ok.example\"},{\"host\":\"b..example\"},"
	    "{\"cidr\":\"x\"}]}", "deny[1].host", "empty label");
}

static void
test_hosts(void **state)
{
	(void)state;
	rule_is("{\"host\":\"Git.Example.ORG.\"}",
	    "{\"host\":\"git.example.org\"}");
	rule_is("{\"host\":\"*.Example.com\"}", "{\"host\":\"*.example.com\"}");
	rule_is("{\"host\":\"*.a.b.example.com.\"}",
	    "{\"host\":\"*.a.b.example.com\"}");
	rule_is("{\"host\":\"localhost\"}", "{\"host\":\"localhost\"}");
	rule_is("{\"host\":\"a-1.x2\"}", "{\"host\":\"a-1.x2\"}");
	rule_is("{\"host\":\"xn--bcher-kva.example\"}",
	    "{\"host\":\"xn--bcher-kva.example\"}");
	rule_bad("{\"host\":\"\"}", "allow[0].host", "must not be empty");
	rule_bad("{\"host\":\".\"}", "allow[0].host", "must not be empty");
	rule_bad("{\"host\":\"a..b\"}", "allow[0].host", "empty label");
	rule_bad("{\"host\":\".a.b\"}", "allow[0].host", "empty label");
	rule_bad("{\"host\":\"a.b..\"}", "allow[0].host", "empty label");
	rule_bad("{\"host\":\"-a.example\"}", "allow[0].host", "begin or end");
	rule_bad("{\"host\":\"a-.example\"}", "allow[0].host", "begin or end");
	rule_bad("{\"host\":\"a_b.example\"}", "allow[0].host", "letters");
	rule_bad("{\"host\":\"a b.example\"}", "allow[0].host", "letters");
	rule_bad("{\"host\":\"a.example/x\"}", "allow[0].host", "letters");
	rule_bad("{\"host\":\"*\"}", "allow[0].host", "leading");
	rule_bad("{\"host\":\"*.com\"}", "allow[0].host", "at least two");
	rule_bad("{\"host\":\"*.com.\"}", "allow[0].host", "at least two");
	rule_bad("{\"host\":\"*example.com\"}", "allow[0].host", "leading");
	rule_bad("{\"host\":\"a.*.example.com\"}", "allow[0].host", "leading");
	rule_bad("{\"host\":\"*.*.example.com\"}", "allow[0].host", "leading");
	rule_bad("{\"host\":\"10.0.0.1\"}", "allow[0].host", "use a cidr");
	rule_bad("{\"host\":\"127.1\"}", "allow[0].host", "use a cidr");
	rule_bad("{\"host\":\"0x7f000001\"}", "allow[0].host", "use a cidr");
	rule_bad("{\"host\":\"foo.0x7F\"}", "allow[0].host", "use a cidr");
	rule_bad("{\"host\":\"::1\"}", "allow[0].host", "use a cidr");
	rule_bad("{\"host\":\"[::1]\"}", "allow[0].host", "use a cidr");
	rule_bad("{\"host\":\"a.example:443\"}", "allow[0].host", "use a cidr");
	/* 63-byte label fine, 64 not; 253 bytes in all fine, 254 not */
	rule_is("{\"host\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaa.example\"}", "{\"host\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaa.example\"}");
	rule_bad("{\"host\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaa.example\"}", "allow[0].host", "longer than 63");
	{
		char rule[600], want[600], lbl[64];
		size_t o;

		memset(lbl, 'a', 62);
		lbl[62] = '\0';
		/* 4 x 62 + 3 dots = 251, + ".b" = 253 */
		o = (size_t)snprintf(rule, sizeof(rule), "{\"host\":\"%s.%s.%s.%s"
		    ".b\"}", lbl, lbl, lbl, lbl);
		assert_true(o < sizeof(rule));
		snprintf(want, sizeof(want), "%s", rule);
		rule_is(rule, want);
		snprintf(rule, sizeof(rule), "{\"host\":\"%s.%s.%s.%s.bc\"}",
		    lbl, lbl, lbl, lbl);
		rule_bad(rule, "allow[0].host", "longer than 253");
		snprintf(rule, sizeof(rule), "{\"host\":\"*.%s.%s.%s.%s.b\"}",
		    lbl, lbl, lbl, lbl);
		snprintf(want, sizeof(want), "%s", rule);
		rule_is(rule, want);
	}
}

static void
test_idn(void **state)
{
	(void)state;
	rule_is("{\"host\":\"b\xc3\xbc" "cher.example\"}",
	    "{\"host\":\"xn--bcher-kva.example\"}");
	/* upper case, trailing dot and wildcard around a Unicode name */
	rule_is("{\"host\":\"*.B\xc3\x9c" "CHER.Example.\"}",
	    "{\"host\":\"*.xn--bcher-kva.example\"}");
	/* non-transitional: German sharp s stays, not "ss" */
	rule_is("{\"host\":\"stra\xc3\x9f" "e.example\"}",
	    "{\"host\":\"xn--strae-oqa.example\"}");
	/* a Unicode name in a url rule too */
	rule_is("{\"url\":\"http://b\xc3\xbc" "cher.example/x\"}",
	    "{\"url\":\"http://xn--bcher-kva.example/x\"}");
	/* not a valid IDN: a symbol IDNA2008 does not allow */
	rule_bad("{\"host\":\"\xe2\x98\x83.example\"}", "allow[0].host",
	    "internationalized");
	/* a fullwidth dot would make a different name: resolved as a dot by
	 * UTS #46 mapping, then checked like any other name */
	rule_is("{\"host\":\"b\xc3\xbc" "cher\xef\xbc\x8e" "example\"}",
	    "{\"host\":\"xn--bcher-kva.example\"}");
}

static void
test_cidr(void **state)
{
	(void)state;
	rule_is("{\"cidr\":\"10.0.0.0/8\"}", "{\"cidr\":\"10.0.0.0/8\"}");
	rule_is("{\"cidr\":\"127.0.0.2\"}", "{\"cidr\":\"127.0.0.2/32\"}");
	rule_is("{\"cidr\":\"0.0.0.0/0\"}", "{\"cidr\":\"0.0.0.0/0\"}");
	rule_is("{\"cidr\":\"2001:DB8:0:0::/32\"}",
	    "{\"cidr\":\"2001:db8::/32\"}");
	rule_is("{\"cidr\":\"::1\"}", "{\"cidr\":\"::1/128\"}");
	rule_is("{\"cidr\":\"fe80::/10\",\"ports\":[22]}",
	    "{\"cidr\":\"fe80::/10\",\"ports\":[22]}");
	rule_bad("{\"cidr\":\"10.0.0.1/8\"}", "allow[0].cidr",
	    "the range is 10.0.0.0/8");
	rule_bad("{\"cidr\":\"2001:db8::1/32\"}", "allow[0].cidr",
	    "the range is 2001:db8::/32");
	rule_bad("{\"cidr\":\"10.0.0.0/33\"}", "allow[0].cidr", "0 to 32");
	rule_bad("{\"cidr\":\"::/129\"}", "allow[0].cidr", "0 to 128");
	rule_bad("{\"cidr\":\"10.0.0.0/08\"}", "allow[0].cidr", "0 to 32");
	rule_bad("{\"cidr\":\"10.0.0.0/\"}", "allow[0].cidr", "0 to 32");
	rule_bad("{\"cidr\":\"10.0.0.0/-1\"}", "allow[0].cidr", "0 to 32");
	rule_bad("{\"cidr\":\"10.0.0.0/ 8\"}", "allow[0].cidr", "0 to 32");
	rule_bad("{\"cidr\":\"10.0.0/24\"}", "allow[0].cidr", "IPv4 or IPv6");
	rule_bad("{\"cidr\":\"010.0.0.0/8\"}", "allow[0].cidr", "IPv4 or IPv6");
	rule_bad("{\"cidr\":\"a.example/8\"}", "allow[0].cidr", "IPv4 or IPv6");
	rule_bad("{\"cidr\":\"/8\"}", "allow[0].cidr", "IPv4 or IPv6");
	rule_bad("{\"cidr\":\"fe80::1%eth0/128\"}", "allow[0].cidr",
	    "IPv4 or IPv6");
	rule_bad("{\"cidr\":\"::ffff:10.0.0.0/104\"}", "allow[0].cidr",
	    "write it as IPv4");
	rule_bad("{\"cidr\":\"\"}", "allow[0].cidr", "must not be empty");
}

static void
test_urls(void **state)
{
	(void)state;
	rule_is("{\"url\":\"HTTP://Mirror.Example.NET/debian/\"}",
	    "{\"url\":\"http://mirror.example.net/debian/\"}");
	rule_is("{\"url\":\"http://a.example:80/x\"}",
	    "{\"url\":\"http://a.example/x\"}");
	rule_is("{\"url\":\"http://a.example:8080/x\"}",
	    "{\"url\":\"http://a.example:8080/x\"}");
	rule_is("{\"url\":\"http://a.example\"}",
	    "{\"url\":\"http://a.example/\"}");
	rule_is("{\"url\":\"http://a.example./a/./b/../c/\"}",
	    "{\"url\":\"http://a.example/a/c/\"}");
	rule_is("{\"url\":\"http://a.example/../../x\"}",
	    "{\"url\":\"http://a.example/x\"}");
	rule_is("{\"url\":\"http://a.example/a/..\"}",
	    "{\"url\":\"http://a.example/\"}");
	rule_is("{\"url\":\"http://a.example/a/.\"}",
	    "{\"url\":\"http://a.example/a/\"}");
	rule_is("{\"url\":\"http://a.example/a//b\"}",
	    "{\"url\":\"http://a.example/a//b\"}");
	rule_is("{\"url\":\"http://a.example/%7euser/%41%3a%e2%82%ac\"}",
	    "{\"url\":\"http://a.example/~user/A%3A%E2%82%AC\"}");
	rule_is("{\"url\":\"http://a.example/caf\xc3\xa9 x\"}",
	    "{\"url\":\"http://a.example/caf%C3%A9%20x\"}");
	rule_bad("{\"url\":\"https://a.example/\"}", "allow[0].url",
	    "must be http://");
	rule_bad("{\"url\":\"ftp://a.example/\"}", "allow[0].url",
	    "must start with http://");
	rule_bad("{\"url\":\"a.example/x\"}", "allow[0].url",
	    "must start with http://");
	rule_bad("{\"url\":\"http:///x\"}", "allow[0].url", "must not be empty");
	rule_bad("{\"url\":\"http://u:p@a.example/\"}", "allow[0].url",
	    "user information");
	rule_bad("{\"url\":\"http://a.example:0/\"}", "allow[0].url",
	    "1 to 65535");
	rule_bad("{\"url\":\"http://a.example:65536/\"}", "allow[0].url",
	    "1 to 65535");
	rule_bad("{\"url\":\"http://a.example:/\"}", "allow[0].url",
	    "1 to 65535");
	rule_bad("{\"url\":\"http://a.example:08/\"}", "allow[0].url",
	    "1 to 65535");
	rule_bad("{\"url\":\"http://10.0.0.1/\"}", "allow[0].url",
	    "use a cidr");
	rule_bad("{\"url\":\"http://[::1]/\"}", "allow[0].url", "use a cidr");
	rule_bad("{\"url\":\"http://*.a.example/\"}", "allow[0].url",
	    "wildcard");
	rule_bad("{\"url\":\"http://a.example/x?y=1\"}", "allow[0].url",
	    "query or fragment");
	rule_bad("{\"url\":\"http://a.example?y=1\"}", "allow[0].url",
	    "query or fragment");
	rule_bad("{\"url\":\"http://a.example/x#f\"}", "allow[0].url",
	    "query or fragment");
	rule_bad("{\"url\":\"http://a.example/a%2e%2e/\"}", "allow[0].url",
	    "ambiguous");
	rule_bad("{\"url\":\"http://a.example/a%2Fb\"}", "allow[0].url",
	    "ambiguous");
	rule_bad("{\"url\":\"http://a.example/a%5cb\"}", "allow[0].url",
	    "ambiguous");
	rule_bad("{\"url\":\"http://a.example/a\\\\b\"}", "allow[0].url",
	    "backslash");
	rule_bad("{\"url\":\"http://a.example\\\\b\"}", "allow[0].url",
	    "backslash");
	rule_bad("{\"url\":\"http://a.example/%zz\"}", "allow[0].url",
	    "invalid % escape");
	rule_bad("{\"url\":\"http://a.example/%4\"}", "allow[0].url",
	    "invalid % escape");
	rule_bad("{\"url\":\"http://a.example/%00\"}", "allow[0].url",
	    "control");
	rule_bad("{\"url\":\"http://a.example/a\\tb\"}", "allow[0].url",
	    "control");
	{
		char rule[2300], path[2100];

		memset(path, 'a', 2040);
		path[2040] = '\0';
		snprintf(rule, sizeof(rule), "{\"url\":\"http://a.example/%s\"}",
		    path);
		rule_bad(rule, "allow[0].url", "longer than 2048");
	}
}

static void
test_limits(void **state)
{
	struct buf b;
	json_t *out;
	size_t i;

	(void)state;
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_append_str(&b, "{\"name\":\"p\",\"deny\":["), 0);
	for (i = 0; i < 1024; i++)
		assert_int_equal(buf_appendf(&b, "%s{\"host\":\"h%zu.example\"}",
		    i ? "," : "", i), 0);
	assert_int_equal(buf_append_str(&b, "]}"), 0);
	out = norm_ok(buf_cstr(&b));
	assert_int_equal(json_array_size(json_object_get(out, "deny")), 1024);
	json_decref(out);
	b.len -= 2;
	assert_int_equal(buf_append_str(&b, ",{\"host\":\"x.example\"}]}"), 0);
	norm_bad(buf_cstr(&b), "deny", "more than 1024 rules");
	buf_reset(&b);
	assert_int_equal(buf_append_str(&b, "{\"host\":\"a.example\","
	    "\"ports\":["), 0);
	for (i = 1; i <= 32; i++)
		assert_int_equal(buf_appendf(&b, "%s%zu", i > 1 ? "," : "",
		    i), 0);
	assert_int_equal(buf_append_str(&b, "]}"), 0);
	{
		char text[1024];

		snprintf(text, sizeof(text), "{\"name\":\"p\",\"allow\":[%s]}",
		    buf_cstr(&b));
		out = norm_ok(text);
		assert_int_equal(json_array_size(json_object_get(json_array_get(
		    json_object_get(out, "allow"), 0), "ports")), 32);
		json_decref(out);
	}
	b.len -= 2;
	assert_int_equal(buf_append_str(&b, ",33]}"), 0);
	rule_bad(buf_cstr(&b), "allow[0].ports", "more than 32 ports");
	buf_free(&b);
}

/* YAML text that must be refused with a reason containing want. */
static void
yaml_bad(const char *text, size_t len, int code, const char *want)
{
	char err[256] = "";
	json_t *out = (json_t *)1;
	int r = policy_yaml_to_json(text, len, &out, err, sizeof(err));

	if (r != code || strstr(err, want) == NULL)
		fail_msg("YAML %.60s: got %d (%s), want %d (%s)", text, r, err,
		    code, want);
	assert_null(out);
}

static void
yaml_is(const char *text, const char *want_json)
{
	char err[256] = "";
	json_t *out = NULL, *want = load(want_json);

	if (policy_yaml_to_json(text, strlen(text), &out, err,
	    sizeof(err)) != 0)
		fail_msg("YAML %s refused: %s", text, err);
	if (!json_equal(out, want)) {
		char *got = json_dumps(out, JSON_COMPACT | JSON_ENCODE_ANY);

		fail_msg("YAML %s: got %s, want %s", text, got, want_json);
	}
	json_decref(out);
	json_decref(want);
}

#define YBAD(t, code, want) yaml_bad((t), strlen(t), (code), (want))

static void
test_yaml_refusals(void **state)
{
	char *big, deep[128];
	size_t i;

	(void)state;
	YBAD("a: &x 1\nb: *x\n", MOAT_ERR_PARSE, "anchors");
	YBAD("a: [1]\nb: *x\n", MOAT_ERR_PARSE, "line 2: YAML aliases");
	YBAD("- &a [1, 2]\n", MOAT_ERR_PARSE, "anchors");
	YBAD("a: !!str 1\n", MOAT_ERR_PARSE, "tags");
	YBAD("a: !custom {b: 1}\n", MOAT_ERR_PARSE, "tags");
	YBAD("!!map {a: 1}\n", MOAT_ERR_PARSE, "tags");
	YBAD("%TAG !e! tag:example.com,2000:\n---\na: 1\n", MOAT_ERR_PARSE,
	    "directives");
	YBAD("%YAML 1.1\n---\na: 1\n", MOAT_ERR_PARSE, "directives");
	YBAD("name: a\nname: b\n", MOAT_ERR_PARSE, "line 2: duplicate "
	    "mapping key");
	YBAD("{a: 1, \"a\": 2}\n", MOAT_ERR_PARSE, "duplicate");
	YBAD("? [a]\n: 1\n", MOAT_ERR_PARSE, "must be a scalar");
	YBAD("a: 1\n---\nb: 2\n", MOAT_ERR_PARSE, "only one YAML document");
	YBAD("", MOAT_ERR_PARSE, "no document");
	YBAD("# only a comment\n", MOAT_ERR_PARSE, "no document");
	YBAD("a: [1, 2\n", MOAT_ERR_PARSE, "invalid YAML at line");
	YBAD("a: \"x\\0y\"\n", MOAT_ERR_PARSE, "NUL");
	YBAD("a: .inf\n", MOAT_ERR_PARSE, "infinity");
	YBAD("a: 99999999999999999999\n", MOAT_ERR_PARSE, "out of range");
	YBAD("a: 1e999\n", MOAT_ERR_PARSE, "out of range");
	yaml_bad("a: 1\n\0b: 2\n", 10, MOAT_ERR_PARSE, "invalid YAML");
	yaml_bad("a: \xff\n", 5, MOAT_ERR_PARSE, "invalid YAML");
	/* depth: 16 nested flow lists are fine, 17 are not */
	for (i = 0; i < 16; i++)
		deep[i] = '[';
	for (i = 0; i < 16; i++)
		deep[16 + i] = ']';
	deep[32] = '\0';
	yaml_is(deep, "[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]");
	memmove(deep + 1, deep, 33);
	deep[0] = '[';
	memcpy(deep + 33, "]", 2);
	YBAD(deep, MOAT_ERR_PARSE, "nesting deeper than 16");
	YBAD("a:\n b:\n  c:\n   d:\n    e:\n     f:\n      g:\n       h:\n"
	    "        i:\n         j:\n          k:\n           l:\n"
	    "            m:\n             n:\n              o:\n"
	    "               p:\n                q: 1\n", MOAT_ERR_PARSE,
	    "nesting deeper");
	/* size cap: 256 KiB of comment */
	big = malloc(256 * 1024 + 2);
	assert_non_null(big);
	memset(big, '#', 256 * 1024 + 1);
	big[256 * 1024 + 1] = '\0';
	yaml_bad(big, 256 * 1024 + 1, MOAT_ERR_TOOBIG, "larger than 256 KiB");
	big[0] = 'a';
	big[1] = ':';
	big[2] = ' ';
	big[3] = '1';
	big[4] = '\n';
	{
		json_t *out = NULL;
		char err[128];

		assert_int_equal(policy_yaml_to_json(big, 256 * 1024, &out, err,
		    sizeof(err)), 0);
		json_decref(out);
	}
	free(big);
}

static void
test_yaml_typing(void **state)
{
	(void)state;
	yaml_is("a: 443\nb: \"443\"\nc: '443'\nd: -7\ne: +8\nf: 0443\n",
	    "{\"a\":443,\"b\":\"443\",\"c\":\"443\",\"d\":-7,\"e\":8,\"f\":443}");
	yaml_is("a: true\nb: False\nc: TRUE\nd: yes\ne: on\nf: \"true\"\n",
	    "{\"a\":true,\"b\":false,\"c\":true,\"d\":\"yes\",\"e\":\"on\","
	    "\"f\":\"true\"}");
	yaml_is("a: null\nb: ~\nc:\nd: Null\ne: 'null'\n",
	    "{\"a\":null,\"b\":null,\"c\":null,\"d\":null,\"e\":\"null\"}");
	yaml_is("a: 1.5\nb: -.5e1\nc: 1.\nd: 0x1f\ne: 1_000\nf: 1e3\n",
	    "{\"a\":1.5,\"b\":-5.0,\"c\":1.0,\"d\":\"0x1f\",\"e\":\"1_000\","
	    "\"f\":1000.0}");
	yaml_is("a: |\n  x\n  y\nb: >\n  p\n  q\n",
	    "{\"a\":\"x\\ny\\n\",\"b\":\"p q\\n\"}");
	yaml_is("- 1\n- [a, {b: c}]\n- {}\n", "[1,[\"a\",{\"b\":\"c\"}],{}]");
	yaml_is("---\nplain\n...\n", "\"plain\"");
	yaml_is("true: 1\n1: 2\n", "{\"true\":1,\"1\":2}");
	yaml_is("\xef\xbb\xbf" "a: b\xc3\xbc\n", "{\"a\":\"b\\u00fc\"}");
}

/* A YAML policy whose port is quoted gets the path of the string. */
static void
test_yaml_policy_paths(void **state)
{
	static const char doc[] =
	    "name: p\n"
	    "allow:\n"
	    "  - host: a.example\n"
	    "  - host: b.example\n"
	    "    ports: [443, \"8443\"]\n";
	char err[256] = "", path[256] = "";
	json_t *v = NULL, *out = (json_t *)1;

	(void)state;
	assert_int_equal(policy_yaml_to_json(doc, strlen(doc), &v, err,
	    sizeof(err)), 0);
	assert_int_equal(policy_normalize(v, &out, path, sizeof(path), err,
	    sizeof(err)), MOAT_ERR_INVAL);
	assert_string_equal(path, "allow[1].ports[1]");
	assert_string_equal(err, "must be an integer");
	assert_null(out);
	json_decref(v);
}

/* ---- settings ---- */

static void
settings_bad(const char *text, const char *want_path, const char *want)
{
	char path[256] = "?", err[256] = "";
	json_t *doc = load(text), *out = (json_t *)1;
	int r = settings_normalize(doc, &out, path, sizeof(path), err,
	    sizeof(err));

	json_decref(doc);
	if (r != MOAT_ERR_INVAL || strcmp(path, want_path) != 0 ||
	    strstr(err, want) == NULL)
		fail_msg("%s: got %d at \"%s\" (%s), want \"%s\" (%s)", text, r,
		    path, err, want_path, want);
	assert_null(out);
}

static json_t *
settings_ok(const char *text)
{
	char path[256] = "", err[256] = "";
	json_t *doc = load(text), *out = NULL;

	if (settings_normalize(doc, &out, path, sizeof(path), err,
	    sizeof(err)) != 0)
		fail_msg("%s: refused at %s: %s", text, path, err);
	json_decref(doc);
	return out;
}

static void
test_settings(void **state)
{
	json_t *d = settings_default(), *out, *want;

	(void)state;
	want = load("{\"default_policy\":\"default\",\"allow_sudo\":false,"
	    "\"ssh\":{\"port_forwarding\":true,\"file_transfer\":true,"
	    "\"agent_forwarding\":false,\"record_input\":false},"
	    "\"registries\":[]}");
	assert_true(json_equal(d, want));
	out = settings_ok("{}");
	assert_true(json_equal(out, want));
	json_decref(out);
	/* the default normalizes to itself */
	out = settings_ok("{\"default_policy\":\"default\",\"allow_sudo\":false,"
	    "\"ssh\":{\"port_forwarding\":true,\"file_transfer\":true,"
	    "\"agent_forwarding\":false,\"record_input\":false},"
	    "\"registries\":[]}");
	assert_true(json_equal(out, want));
	json_decref(out);
	json_decref(want);
	json_decref(d);
	/* a partial document is completed from the defaults */
	out = settings_ok("{\"allow_sudo\":true,\"ssh\":{\"record_input\":true},"
	    "\"default_policy\":\"strict-1\",\"registries\":[\"LocalHost:5000\","
	    "\"docker.io\",\"docker.io.\",\"127.0.0.1:5000\",\"[::1]:5000\","
	    "\"[0:0::1]\",\"b\xc3\xbc" "cher.example\"]}");
	want = load("{\"default_policy\":\"strict-1\",\"allow_sudo\":true,"
	    "\"ssh\":{\"port_forwarding\":true,\"file_transfer\":true,"
	    "\"agent_forwarding\":false,\"record_input\":true},"
	    "\"registries\":[\"localhost:5000\",\"docker.io\",\"127.0.0.1:5000\","
	    "\"[::1]:5000\",\"[::1]\",\"xn--bcher-kva.example\"]}");
	if (!json_equal(out, want))
		fail_msg("got %s", json_dumps(out, JSON_COMPACT));
	json_decref(out);
	json_decref(want);
	settings_bad("null", "", "must be a mapping");
	settings_bad("{\"sudo\":true}", "sudo", "unknown field");
	settings_bad("{\"allow_sudo\":\"yes\"}", "allow_sudo", "true or false");
	settings_bad("{\"allow_sudo\":1}", "allow_sudo", "true or false");
	settings_bad("{\"default_policy\":\"No\"}", "default_policy",
	    "policy name");
	settings_bad("{\"default_policy\":3}", "default_policy", "policy name");
	settings_bad("{\"ssh\":true}", "ssh", "must be a mapping");
	settings_bad("{\"ssh\":{\"x11\":true}}", "ssh.x11", "unknown field");
	settings_bad("{\"ssh\":{\"file_transfer\":\"no\"}}",
	    "ssh.file_transfer", "true or false");
	settings_bad("{\"registries\":\"docker.io\"}", "registries",
	    "host[:port]");
	settings_bad("{\"registries\":[\"docker.io\",7]}", "registries[1]",
	    "must be a string");
	settings_bad("{\"registries\":[\"https://docker.io\"]}",
	    "registries[0]", "without scheme");
	settings_bad("{\"registries\":[\"docker.io/library\"]}",
	    "registries[0]", "without scheme");
	settings_bad("{\"registries\":[\"a.example:0\"]}", "registries[0]",
	    "1 to 65535");
	settings_bad("{\"registries\":[\"a.example:99999\"]}", "registries[0]",
	    "1 to 65535");
	settings_bad("{\"registries\":[\"*.example.com\"]}", "registries[0]",
	    "wildcard");
	settings_bad("{\"registries\":[\"\"]}", "registries[0]", "empty");
	settings_bad("{\"registries\":[\"[::1\"]}", "registries[0]", "IPv6");
	settings_bad("{\"registries\":[\"[::1]x\"]}", "registries[0]",
	    "host[:port]");
	settings_bad("{\"registries\":[\"127.1:5000\"]}", "registries[0]",
	    "dotted IPv4");
	settings_bad("{\"registries\":[\"::1\"]}", "registries[0]",
	    "bracketed IPv6");
	{
		struct buf b;
		size_t i;

		buf_init(&b, 1 << 16);
		assert_int_equal(buf_append_str(&b, "{\"registries\":["), 0);
		for (i = 0; i < 65; i++)
			assert_int_equal(buf_appendf(&b, "%s\"r%zu.example\"",
			    i ? "," : "", i), 0);
		assert_int_equal(buf_append_str(&b, "]}"), 0);
		settings_bad(buf_cstr(&b), "registries", "more than 64");
		buf_free(&b);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_design_example),
		cmocka_unit_test(test_defaults_and_minimal),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_hosts),
		cmocka_unit_test(test_idn),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_yaml_refusals),
		cmocka_unit_test(test_yaml_typing),
		cmocka_unit_test(test_yaml_policy_paths),
		cmocka_unit_test(test_settings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
