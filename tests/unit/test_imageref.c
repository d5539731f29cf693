/*
 * test_imageref.c - unit tests for image references (imageref.h): the
 * canonical form of accepted references (default registry, "library/",
 * ":latest", ports, digests), every refusal of the strict grammar with a
 * reason that does not echo the input, the length limits at their edges,
 * and the registry allow-list check (host and port both must match).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "imageref.h"

#define HEX64 "0123456789abcdef0123456789abcdef" \
	"0123456789abcdef0123456789abcdef"

static void
good(const char *in, const char *registry, const char *path,
    const char *tag, const char *digest, const char *canonical)
{
	struct imageref ref, again;
	char err[160] = "x";

	if (imageref_parse(in, &ref, err, sizeof(err)) != 0)
		fail_msg("refused \"%s\": %s", in, err);
	assert_string_equal(ref.registry, registry);
	assert_string_equal(ref.path, path);
	assert_string_equal(ref.tag, tag);
	assert_string_equal(ref.digest, digest);
	assert_string_equal(ref.canonical, canonical);
	/* The canonical form is a fixed point. */
	assert_int_equal(imageref_parse(ref.canonical, &again, err,
	    sizeof(err)), 0);
	assert_string_equal(again.canonical, ref.canonical);
}

static void
bad(const char *in, const char *reason_part)
{
	struct imageref ref;
	char err[200] = "";

	memset(&ref, 0x5a, sizeof(ref));
	if (imageref_parse(in, &ref, err, sizeof(err)) != MOAT_ERR_INVAL)
		fail_msg("accepted \"%s\"", in);
	if (strstr(err, reason_part) == NULL)
		fail_msg("\"%s\": reason \"%s\" lacks \"%s\"", in, err,
		    reason_part);
	/* out is left alone on refusal */
	assert_int_equal(((unsigned char *)&ref)[0], 0x5a);
	/* never the input itself */
	if (strlen(in) >= 6 && strstr(err, in) != NULL)
		fail_msg("\"%s\": the reason echoes the input", in);
}

static void
test_canonical(void **state)
{
	(void)state;
	good("debian", "docker.io", "library/debian", "latest", "",
	    "docker.io/library/debian:latest");
	good("debian:12", "docker.io", "library/debian", "12", "",
	    "docker.io/library/debian:12");
	good("library/debian:bookworm-slim", "docker.io", "library/debian",
	    "bookworm-slim", "", "docker.io/library/debian:bookworm-slim");
	good("docker.io/debian", "docker.io", "library/debian", "latest", "",
	    "docker.io/library/debian:latest");
	good("someone/tool", "docker.io", "someone/tool", "latest", "",
	    "docker.io/someone/tool:latest");
	good("localhost/moat/base:latest", "localhost", "moat/base", "latest",
	    "", "localhost/moat/base:latest");
	good("localhost/moat/base", "localhost", "moat/base", "latest", "",
	    "localhost/moat/base:latest");
	good("localhost:5000/moat/test:v1.2_3-x", "localhost:5000",
	    "moat/test", "v1.2_3-x", "", "localhost:5000/moat/test:v1.2_3-x");
	good("127.0.0.1:5000/a", "127.0.0.1:5000", "a", "latest", "",
	    "127.0.0.1:5000/a:latest");
	good("registry.example.com/team/sub/img:Tag_1", "registry.example.com",
	    "team/sub/img", "Tag_1", "",
	    "registry.example.com/team/sub/img:Tag_1");
	good("my-reg.example:443/a.b/c__d/e---f/g_h", "my-reg.example:443",
	    "a.b/c__d/e---f/g_h", "latest", "",
	    "my-reg.example:443/a.b/c__d/e---f/g_h:latest");
	/* digest only: no tag added */
	good("debian@sha256:" HEX64, "docker.io", "library/debian", "",
	    "sha256:" HEX64, "docker.io/library/debian@sha256:" HEX64);
	good("localhost/x:1@sha256:" HEX64, "localhost", "x", "1",
	    "sha256:" HEX64, "localhost/x:1@sha256:" HEX64);
	/* "localhost:5000" without a path is an image and a tag (Docker) */
	good("localhost:5000", "docker.io", "library/localhost", "5000", "",
	    "docker.io/library/localhost:5000");
	/* a first component without '.', ':' or "localhost" is a path */
	good("moat/base", "docker.io", "moat/base", "latest", "",
	    "docker.io/moat/base:latest");
}

static void
test_refusals(void **state)
{
	(void)state;
	bad("", "empty");
	bad("Debian", "lower case");
	bad("library/Debian", "lower case");
	bad("LOCALHOST/moat/base", "lower case");
	bad("Registry.example.com/a", "registry host must be lower case");
	bad("deb ian", "spaces");
	bad(" debian", "spaces");
	bad("debian\t", "spaces");
	bad("debian\n", "spaces");
	bad("deb\x7fian", "control");
	bad("d\xc3\xa9" "bian", "non-ASCII");
	bad("a..b", "each part");
	bad("a/../b", "each part");
	bad("../etc", "label");	/* "..": a registry host, with empty labels */
	bad("a/./b", "each part");
	bad("a//b", "each part");
	bad("/a", "each part");
	bad("a/", "each part");
	bad("-a", "each part");
	bad("a-", "each part");
	bad("a.", "each part");
	bad("_a", "each part");
	bad("a___b", "each part");
	bad("a._b", "each part");
	bad("a.-b", "each part");
	bad("a+b", "each part");
	bad("a%2fb", "each part");
	bad("a:", "tag");
	bad("a:-x", "tag");
	bad("a:.x", "tag");
	bad("a:x/y", "port");	/* ':' in the first component: a registry */
	bad("a:b:c", "tag");
	bad("a:t@g", "digest");
	bad("a:t!g", "tag");
	bad(":tag", "missing");
	bad("localhost/", "missing");
	bad("localhost/:1", "missing");
	bad("a@", "digest");
	bad("a@sha256:", "digest");
	bad("a@sha256:" HEX64 "0", "digest");
	bad("a@sha256:0123456789abcdef", "digest");
	bad("a@sha256:0123456789ABCDEF0123456789abcdef"
	    "0123456789abcdef0123456789abcdef", "digest");
	bad("a@sha512:" HEX64, "digest");
	bad("a@sha256:" HEX64 "@sha256:" HEX64, "digest");
	bad("a@sha256:g123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef", "digest");
	bad("@sha256:" HEX64, "missing");
	bad("reg.example:0/a", "port");
	bad("reg.example:65536/a", "port");
	bad("reg.example:05000/a", "port");
	bad("reg.example:/a", "port");
	bad("reg.example:50x0/a", "port");
	bad("reg.example:1:2/a", "port");
	bad("-reg.example/a", "start or end");
	bad("reg-.example/a", "start or end");
	bad("reg..example/a", "label");
	bad(".example/a", "label");
	bad("reg.example./a", "label");
	bad("reg_x.example/a", "registry host may hold");
	bad("user@reg.example/a", "digest");
	bad("http://reg.example/a", "port");
}

static void
test_lengths(void **state)
{
	char s[IMAGEREF_MAX + 64], tag[140], label[70];
	struct imageref ref;
	char err[160];

	(void)state;
	/* 255 bytes: accepted; 256: refused */
	memcpy(s, "localhost/", 10);
	memset(s + 10, 'a', IMAGEREF_MAX - 10);
	s[IMAGEREF_MAX] = '\0';
	assert_int_equal(imageref_parse(s, &ref, err, sizeof(err)), 0);
	assert_int_equal(strlen(ref.path), IMAGEREF_MAX - 10);
	assert_int_equal(strlen(ref.canonical), IMAGEREF_MAX +
	    strlen(":latest"));
	s[IMAGEREF_MAX] = 'a';
	s[IMAGEREF_MAX + 1] = '\0';
	bad(s, "longer than 255");
	/* "library/" must fit in the path too */
	memset(s, 'a', 247);
	s[247] = '\0';
	assert_int_equal(imageref_parse(s, &ref, err, sizeof(err)), 0);
	assert_int_equal(strlen(ref.path), 255);
	s[247] = 'a';
	s[248] = '\0';
	bad(s, "too long");
	/* a tag of 128 characters, then 129 */
	memset(tag, 'T', 128);
	tag[128] = '\0';
	snprintf(s, sizeof(s), "a:%s", tag);
	assert_int_equal(imageref_parse(s, &ref, err, sizeof(err)), 0);
	assert_string_equal(ref.tag, tag);
	snprintf(s, sizeof(s), "a:%sT", tag);
	bad(s, "tag");
	/* a host label of 63 characters, then 64 */
	memset(label, 'r', 63);
	label[63] = '\0';
	snprintf(s, sizeof(s), "%s.example/a", label);
	assert_int_equal(imageref_parse(s, &ref, err, sizeof(err)), 0);
	snprintf(s, sizeof(s), "r%s.example/a", label);
	bad(s, "label");
	/* NULL arguments */
	assert_int_equal(imageref_parse(NULL, &ref, err, sizeof(err)),
	    MOAT_ERR_INVAL);
	assert_int_equal(imageref_parse("a", NULL, err, sizeof(err)),
	    MOAT_ERR_INVAL);
	/* err may be NULL */
	assert_int_equal(imageref_parse("A", &ref, NULL, 0), MOAT_ERR_INVAL);
}

static void
test_registry_allowed(void **state)
{
	json_t *list = json_pack("[s,s,s]", "localhost", "docker.io",
	    "reg.example:5000");
	struct imageref ref;
	char err[160];

	(void)state;
	assert_non_null(list);
	assert_int_equal(imageref_parse("localhost/moat/base", &ref, err,
	    sizeof(err)), 0);
	assert_true(imageref_registry_allowed(&ref, list));
	assert_int_equal(imageref_parse("debian", &ref, err, sizeof(err)), 0);
	assert_true(imageref_registry_allowed(&ref, list));
	assert_int_equal(imageref_parse("reg.example:5000/a", &ref, err,
	    sizeof(err)), 0);
	assert_true(imageref_registry_allowed(&ref, list));
	/* host and port must both match */
	assert_int_equal(imageref_parse("localhost:5000/a", &ref, err,
	    sizeof(err)), 0);
	assert_false(imageref_registry_allowed(&ref, list));
	assert_int_equal(imageref_parse("reg.example/a", &ref, err,
	    sizeof(err)), 0);
	assert_false(imageref_registry_allowed(&ref, list));
	assert_int_equal(imageref_parse("reg.example:5001/a", &ref, err,
	    sizeof(err)), 0);
	assert_false(imageref_registry_allowed(&ref, list));
	assert_int_equal(imageref_parse("quay.io/a/b", &ref, err,
	    sizeof(err)), 0);
	assert_false(imageref_registry_allowed(&ref, list));
	/* a suffix or prefix is not a match */
	assert_int_equal(imageref_parse("evil.docker.io/a", &ref, err,
	    sizeof(err)), 0);
	assert_false(imageref_registry_allowed(&ref, list));
	/* empty, not an array, NULL */
	json_decref(list);
	list = json_array();
	assert_false(imageref_registry_allowed(&ref, list));
	assert_false(imageref_registry_allowed(&ref, NULL));
	assert_false(imageref_registry_allowed(NULL, list));
	json_decref(list);
	list = json_pack("{s:s}", "quay.io", "quay.io");
	assert_false(imageref_registry_allowed(&ref, list));
	json_decref(list);
	list = json_pack("[i,s]", 5, "quay.io");
	assert_int_equal(imageref_parse("quay.io/a/b", &ref, err,
	    sizeof(err)), 0);
	assert_true(imageref_registry_allowed(&ref, list));
	json_decref(list);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_lengths),
		cmocka_unit_test(test_registry_allowed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
