/*
 * test_log.c - unit tests for log.c: lines captured through a pipe with
 * log_set_fd are parsed with jansson (one valid JSON object per line with
 * time, level, component, msg and typed fields); secrets never show their
 * value; control characters and invalid UTF-8 are escaped; level filtering;
 * very long input still gives one parsable, clearly truncated line; and
 * log_format behaves like snprintf.
 */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"

struct cap {
	int fds[2];
	char buf[65536];
};

static int
setup(void **state)
{
	struct cap *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	assert_int_equal(pipe(c->fds), 0);
	assert_int_equal(fcntl(c->fds[0], F_SETFL, O_NONBLOCK), 0);
	log_set_fd(c->fds[1]);
	log_set_level(LOG_INFO);
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct cap *c = *state;

	log_set_fd(2);
	log_set_level(LOG_INFO);
	close(c->fds[0]);
	close(c->fds[1]);
	free(c);
	return 0;
}

/* Everything written so far (possibly nothing). */
static const char *
drain(struct cap *c)
{
	ssize_t n = read(c->fds[0], c->buf, sizeof(c->buf) - 1);

	c->buf[n > 0 ? n : 0] = '\0';
	return c->buf;
}

/* Exactly one line, parsed. Caller decrefs. */
static json_t *
one_line(struct cap *c)
{
	const char *s = drain(c);
	size_t len = strlen(s);
	json_error_t jerr;
	json_t *v;

	assert_true(len > 0);
	assert_int_equal(s[len - 1], '\n');
	assert_ptr_equal(strchr(s, '\n'), s + len - 1);
	v = json_loadb(s, len, JSON_REJECT_DUPLICATES, &jerr);
	if (v == NULL)
		fail_msg("not JSON (%s): %.200s", jerr.text, s);
	assert_true(json_is_object(v));
	return v;
}

static const char *
str(json_t *v, const char *key)
{
	json_t *s = json_object_get(v, key);

	assert_true(json_is_string(s));
	return json_string_value(s);
}

static void
test_basic_line(void **state)
{
	struct cap *c = *state;
	json_t *v;
	const char *t;

	log_info("http", "listening", LF_STR("addr", "127.0.0.1"),
	    LF_INT("port", 8443), LF_BOOL("tls", 1), LF_DOUBLE("ratio", 0.25),
	    LF_STR("none", NULL), LF_INT("neg", -5));
	v = one_line(c);
	t = str(v, "time");
	/* 2024-01-02T03:04:05.123456Z */
	assert_int_equal(strlen(t), 27);
	assert_int_equal(t[10], 'T');
	assert_int_equal(t[19], '.');
	assert_int_equal(t[26], 'Z');
	assert_string_equal(str(v, "level"), "info");
	assert_string_equal(str(v, "component"), "http");
	assert_string_equal(str(v, "msg"), "listening");
	assert_string_equal(str(v, "addr"), "127.0.0.1");
	assert_int_equal(json_integer_value(json_object_get(v, "port")), 8443);
	assert_true(json_is_true(json_object_get(v, "tls")));
	assert_true(json_real_value(json_object_get(v, "ratio")) == 0.25);
	assert_true(json_is_null(json_object_get(v, "none")));
	assert_int_equal(json_integer_value(json_object_get(v, "neg")), -5);
	assert_null(json_object_get(v, "truncated"));
	json_decref(v);
}

static void
test_secret(void **state)
{
	struct cap *c = *state;
	json_t *v;

	log_warn("identity", "login failed", LF_STR("user", "ann"),
	    LF_SECRET("password"));
	v = one_line(c);
	assert_string_equal(str(v, "level"), "warn");
	assert_string_equal(str(v, "password"), "[secret]");
	json_decref(v);
	/* Even a secret field that carries a value by mistake. */
	log_error("identity", "x", ((struct log_field){ .key = "token",
	    .type = LOG_F_SECRET, .s = "hunter2" }));
	assert_null(strstr(drain(c), "hunter2"));
}

static void
test_escaping(void **state)
{
	struct cap *c = *state;
	json_t *v;

	log_info("c\"o\\mp", "tab\there\nnew\r\x01\x1f\x7f end",
	    LF_STR("k\"ey", "quote\" back\\ slash"));
	v = one_line(c);
	assert_string_equal(str(v, "component"), "c\"o\\mp");
	assert_string_equal(str(v, "msg"), "tab\there\nnew\r\x01\x1f\x7f end");
	assert_string_equal(str(v, "k\"ey"), "quote\" back\\ slash");
	json_decref(v);
}

static void
test_utf8(void **state)
{
	static const char *const bad[] = {
		"\xff", "\xc0\xaf", "\xc3", "\xe0\x80\xaf", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xf8\x88\x80\x80\x80",
		"a\xe2\x82", "\xf0\x9f\x98",
	};
	struct cap *c = *state;
	json_t *v;

	/* Valid multi-byte text passes through unchanged. */
	log_info("t", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	v = one_line(c);
	assert_string_equal(str(v, "msg"), "caf\xc3\xa9 \xe2\x82\xac "
	    "\xf0\x9f\x98\x80");
	json_decref(v);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		log_info("t", bad[i], LF_STR("f", bad[i]));
		v = one_line(c);	/* jansson refuses invalid UTF-8 */
		assert_non_null(strstr(str(v, "msg"), "\xef\xbf\xbd"));
		json_decref(v);
	}
}

static void
test_levels(void **state)
{
	struct cap *c = *state;
	json_t *v;

	log_debug("t", "hidden");
	assert_string_equal(drain(c), "");
	log_set_level(LOG_WARN);
	log_info("t", "hidden");
	assert_string_equal(drain(c), "");
	log_error("t", "shown");
	v = one_line(c);
	assert_string_equal(str(v, "level"), "error");
	json_decref(v);
	log_set_level(LOG_DEBUG);
	assert_int_equal(log_get_level(), LOG_DEBUG);
	log_debug("t", "shown");
	v = one_line(c);
	assert_string_equal(str(v, "level"), "debug");
	json_decref(v);
	assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
	assert_int_equal(log_level_parse("INFO"), LOG_INFO);
	assert_int_equal(log_level_parse("warning"), LOG_WARN);
	assert_int_equal(log_level_parse("error"), LOG_ERROR);
	assert_int_equal(log_level_parse("loud"), -1);
}

static void
test_doubles(void **state)
{
	struct cap *c = *state;
	json_t *v;

	log_info("t", "d", LF_DOUBLE("nan", NAN),
	    LF_DOUBLE("inf", INFINITY), LF_DOUBLE("tenth", 0.1),
	    LF_DOUBLE("big", 1e300));
	v = one_line(c);
	assert_true(json_is_null(json_object_get(v, "nan")));
	assert_true(json_is_null(json_object_get(v, "inf")));
	assert_true(json_real_value(json_object_get(v, "tenth")) == 0.1);
	assert_true(json_real_value(json_object_get(v, "big")) == 1e300);
	json_decref(v);
}

static void
test_long_message(void **state)
{
	struct cap *c = *state;
	size_t n = 100000;
	char *big = malloc(n + 1);
	json_t *v;
	const char *m;

	assert_non_null(big);
	/* Escaped characters (6 bytes out each) and multi-byte UTF-8, so the
	 * cut must land on a boundary. */
	for (size_t i = 0; i < n; i += 4)
		memcpy(big + i, i % 8 ? "\x01\xe2\x82\xac" : "ab\"\\", 4);
	big[n] = '\0';
	log_info("t", big, LF_STR("after", "x"), LF_INT("n", 1));
	v = one_line(c);
	m = str(v, "msg");
	assert_true(strlen(m) > 1000);
	assert_true(strlen(m) < 8192);
	assert_string_equal(m + strlen(m) - 3, "...");
	assert_true(json_is_true(json_object_get(v, "truncated")));
	assert_null(json_object_get(v, "after"));
	assert_true(strlen(drain(c)) == 0);
	json_decref(v);

	/* A long field value: earlier fields are kept, the value is cut. */
	log_info("t", "short", LF_INT("first", 1), LF_STR("path", big),
	    LF_INT("later", 2));
	v = one_line(c);
	assert_string_equal(str(v, "msg"), "short");
	assert_int_equal(json_integer_value(json_object_get(v, "first")), 1);
	assert_true(strlen(str(v, "path")) > 1000);
	assert_true(json_is_true(json_object_get(v, "truncated")));
	assert_null(json_object_get(v, "later"));
	json_decref(v);

	/* Many fields: the ones that fit are kept. */
	{
		static char names[400][16];
		struct log_field f[400];
		for (int i = 0; i < 399; i++) {
			snprintf(names[i], sizeof(names[i]), "field%d", i);
			f[i] = LF_STR(names[i],
			    "0123456789012345678901234567890123456789");
		}
		f[399] = LF_END;
		log_write(LOG_INFO, "t", "many", f);
		v = one_line(c);
		assert_non_null(json_object_get(v, "field0"));
		assert_non_null(json_object_get(v, "field100"));
		assert_null(json_object_get(v, "field398"));
		assert_true(json_is_true(json_object_get(v, "truncated")));
		json_decref(v);
	}
	free(big);
}

static void
test_format_like_snprintf(void **state)
{
	char line[256], small[120];
	size_t n, full;
	json_error_t jerr;
	json_t *v;

	(void)state;
	n = log_format(line, sizeof(line), LOG_INFO, "c", "m",
	    (const struct log_field[]){ LF_INT("i", 1), LF_END });
	assert_int_equal(n, strlen(line));
	assert_int_equal(log_format(NULL, 0, LOG_INFO, "c", "m",
	    (const struct log_field[]){ LF_INT("i", 1), LF_END }), n);
	/* Too small: NUL-terminated, still JSON, returns the full length. */
	full = log_format(small, sizeof(small), LOG_INFO, "c",
	    "a message that is a good deal longer than the small buffer can "
	    "hold, so it has to be cut", NULL);
	assert_true(full >= sizeof(small));
	assert_true(strlen(small) < sizeof(small));
	assert_int_equal(small[strlen(small) - 1], '\n');
	v = json_loads(small, 0, &jerr);
	assert_non_null(v);
	assert_true(json_is_true(json_object_get(v, "truncated")));
	json_decref(v);
	/* Tiny buffers: never overrun, always terminated. */
	for (size_t sz = 1; sz < 40; sz++) {
		memset(small, 'X', sizeof(small));
		log_format(small, sz, LOG_INFO, "c", "m", NULL);
		assert_int_equal(small[sz - 1], '\0');
		assert_int_equal(small[sz], 'X');
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_basic_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secret, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaping, setup, teardown),
		cmocka_unit_test_setup_teardown(test_utf8, setup, teardown),
		cmocka_unit_test_setup_teardown(test_levels, setup, teardown),
		cmocka_unit_test_setup_teardown(test_doubles, setup, teardown),
		cmocka_unit_test_setup_teardown(test_long_message, setup,
		    teardown),
		cmocka_unit_test(test_format_like_snprintf),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
