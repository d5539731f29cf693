/*
 * test_asciicast.c - unit tests for the asciicast v2 encoder (asciicast.c):
 * the header (size, timestamp, only TERM and SHELL, cleaned), event times,
 * control characters escaped, UTF-8 characters split across packets at
 * every position, invalid bytes replaced by U+FFFD, held-back bytes
 * flushed at the end, resize events, large packets split into bounded
 * events, and a full output buffer leaving everything unchanged.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "asciicast.h"
#include "buf.h"

/* Parses every line after the header (or all lines when header is
 * false), checks each is a [time, code, string] array, and returns the
 * concatenated data of code's events (caller frees; *n its length). */
static char *
events_data(const struct buf *b, bool header, char code, size_t *n,
    size_t *nevents)
{
	const char *p = buf_cstr(b), *end = p + b->len;
	struct buf acc;

	buf_init(&acc, 1 << 24);
	*nevents = 0;
	if (header) {
		p = memchr(p, '\n', (size_t)(end - p));
		assert_non_null(p);
		p++;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		json_error_t jerr;
		json_t *v;
		const char *c;

		assert_non_null(nl);
		v = json_loadb(p, (size_t)(nl - p), JSON_ALLOW_NUL, &jerr);
		if (v == NULL)
			fail_msg("line does not parse: %s: %.*s", jerr.text,
			    (int)(nl - p), p);
		assert_true(json_is_array(v));
		assert_int_equal(json_array_size(v), 3);
		assert_true(json_is_real(json_array_get(v, 0)));
		c = json_string_value(json_array_get(v, 1));
		assert_non_null(c);
		assert_true(json_is_string(json_array_get(v, 2)));
		if (c[0] == code && c[1] == '\0') {
			assert_int_equal(buf_append(&acc,
			    json_string_value(json_array_get(v, 2)),
			    json_string_length(json_array_get(v, 2))), 0);
			(*nevents)++;
		}
		json_decref(v);
		p = nl + 1;
	}
	return buf_steal(&acc, n);
}

static void
test_header(void **state)
{
	struct buf b;
	json_t *v;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(asciicast_header(&b, 120, 40, 1767225600,
	    "xterm-256color", "/bin/bash"), 0);
	assert_string_equal(buf_cstr(&b), "{\"version\": 2, \"width\": 120, "
	    "\"height\": 40, \"timestamp\": 1767225600, \"env\": {\"TERM\": "
	    "\"xterm-256color\", \"SHELL\": \"/bin/bash\"}}\n");
	buf_reset(&b);

	/* Absent values are omitted; a zero size gets the defaults. */
	assert_int_equal(asciicast_header(&b, 0, 0, 5, NULL, "/bin/sh"), 0);
	assert_string_equal(buf_cstr(&b), "{\"version\": 2, \"width\": 80, "
	    "\"height\": 24, \"timestamp\": 5, \"env\": {\"SHELL\": "
	    "\"/bin/sh\"}}\n");
	buf_reset(&b);
	assert_int_equal(asciicast_header(&b, 80, 24, 5, NULL, NULL), 0);
	assert_string_equal(buf_cstr(&b), "{\"version\": 2, \"width\": 80, "
	    "\"height\": 24, \"timestamp\": 5, \"env\": {}}\n");
	buf_reset(&b);

	/* Untrusted values: escapes and control characters removed, quotes
	 * escaped, invalid UTF-8 dropped, length bounded. */
	{
		char longv[600];

		memset(longv, 'x', sizeof(longv) - 1);
		longv[sizeof(longv) - 1] = '\0';
		assert_int_equal(asciicast_header(&b, 80, 24, 5,
		    "x\x1b[31mte\"r\\m\x07\n\xff", longv), 0);
		v = json_loads(buf_cstr(&b), 0, NULL);
		assert_non_null(v);
		assert_string_equal(json_string_value(json_object_get(
		    json_object_get(v, "env"), "TERM")), "xte\"r\\m ");
		assert_true(strlen(json_string_value(json_object_get(
		    json_object_get(v, "env"), "SHELL"))) <= 128);
		assert_int_equal(json_object_size(json_object_get(v, "env")),
		    2);
		assert_int_equal(json_integer_value(json_object_get(v,
		    "version")), 2);
		json_decref(v);
	}
	/* One line only. */
	assert_int_equal(strchr(buf_cstr(&b), '\n') - buf_cstr(&b),
	    (long)b.len - 1);
	buf_free(&b);
}

static void
test_events_and_times(void **state)
{
	struct asciicast *a = NULL;
	struct buf b;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(asciicast_new(&a, 100.0), 0);
	assert_int_equal(asciicast_data(a, &b, 101.2345678, 'o',
	    (const uint8_t *)"hello", 5), 0);
	assert_string_equal(buf_cstr(&b), "[1.234568, \"o\", \"hello\"]\n");
	buf_reset(&b);
	/* A time before the start is 0. */
	assert_int_equal(asciicast_data(a, &b, 99.0, 'i',
	    (const uint8_t *)"ls\r", 3), 0);
	assert_string_equal(buf_cstr(&b), "[0.000000, \"i\", \"ls\\r\"]\n");
	buf_reset(&b);
	assert_int_equal(asciicast_resize(a, &b, 3723.5, 100, 40), 0);
	assert_string_equal(buf_cstr(&b),
	    "[3623.500000, \"r\", \"100x40\"]\n");
	buf_reset(&b);
	/* Nothing for an empty packet; unknown codes refused. */
	assert_int_equal(asciicast_data(a, &b, 101.0, 'o', NULL, 0), 0);
	assert_int_equal(b.len, 0);
	assert_int_equal(asciicast_data(a, &b, 101.0, 'x',
	    (const uint8_t *)"x", 1), MOAT_ERR_INVAL);
	assert_int_equal(asciicast_data(a, &b, 101.0, 'r',
	    (const uint8_t *)"x", 1), MOAT_ERR_INVAL);
	assert_int_equal(b.len, 0);
	asciicast_free(a);
	asciicast_free(NULL);
	buf_free(&b);
}

static void
test_control_escaped(void **state)
{
	static const uint8_t in[] = "\x1b[1mA\x00\x07\"\\\n\r\t\b\f\x7f"
	    "\xe2\x80\xa8\xc3\xa9";
	struct asciicast *a = NULL;
	struct buf b;
	char *d;
	size_t n, ne;

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(asciicast_new(&a, 0), 0);
	assert_int_equal(asciicast_data(a, &b, 0.5, 'o', in,
	    sizeof(in) - 1), 0);
	assert_string_equal(buf_cstr(&b), "[0.500000, \"o\", "
	    "\"\\u001b[1mA\\u0000\\u0007\\\"\\\\\\n\\r\\t\\b\\f\\u007f"
	    "\\u2028\xc3\xa9\"]\n");
	/* No raw control byte in the line but its final newline. */
	for (size_t i = 0; i + 1 < b.len; i++)
		assert_true(b.data[i] >= 0x20 && b.data[i] != 0x7f);
	d = events_data(&b, false, 'o', &n, &ne);
	assert_int_equal(n, sizeof(in) - 1);
	assert_memory_equal(d, in, n);
	free(d);
	asciicast_free(a);
	buf_free(&b);
}

/* Every split of text into two packets gives the same data, and the
 * first packet of a split character appends nothing when it is all that
 * is new. */
static void
test_split_characters(void **state)
{
	static const char text[] = "a\xc3\xa9z\xe2\x82\xac\xf0\x9f\x98\x80"
	    "\xe4\xb8\xad!";
	size_t tl = sizeof(text) - 1;

	(void)state;
	for (size_t cut = 0; cut <= tl; cut++) {
		struct asciicast *a = NULL;
		struct buf b;
		char *d;
		size_t n, ne;

		buf_init(&b, 4096);
		assert_int_equal(asciicast_new(&a, 0), 0);
		assert_int_equal(asciicast_data(a, &b, 1, 'o',
		    (const uint8_t *)text, cut), 0);
		assert_int_equal(asciicast_data(a, &b, 2, 'o',
		    (const uint8_t *)text + cut, tl - cut), 0);
		assert_int_equal(asciicast_finish(a, &b, 3), 0);
		d = events_data(&b, false, 'o', &n, &ne);
		assert_int_equal(n, tl);
		assert_memory_equal(d, text, tl);
		free(d);
		asciicast_free(a);
		buf_free(&b);
	}
	/* Byte by byte, with input packets interleaved: the streams hold
	 * back separately. */
	{
		struct asciicast *a = NULL;
		struct buf b;
		char *d;
		size_t n, ne;

		buf_init(&b, 1 << 16);
		assert_int_equal(asciicast_new(&a, 0), 0);
		for (size_t i = 0; i < tl; i++) {
			size_t before = b.len;

			assert_int_equal(asciicast_data(a, &b, 1, 'o',
			    (const uint8_t *)text + i, 1), 0);
			assert_int_equal(asciicast_data(a, &b, 1, 'i',
			    (const uint8_t *)"\xe2\x82", i == 3 ? 2 : 0), 0);
			/* The euro sign's first two bytes: nothing yet. */
			if (i == 4 || i == 5)
				assert_int_equal(b.len, before);
		}
		d = events_data(&b, false, 'o', &n, &ne);
		assert_int_equal(n, tl);
		assert_memory_equal(d, text, tl);
		free(d);
		/* The input stream's held bytes come out as U+FFFD. */
		assert_int_equal(asciicast_finish(a, &b, 2), 0);
		d = events_data(&b, false, 'i', &n, &ne);
		assert_string_equal(d, "\xef\xbf\xbd");
		free(d);
		/* And only once. */
		buf_reset(&b);
		assert_int_equal(asciicast_finish(a, &b, 2), 0);
		assert_int_equal(b.len, 0);
		asciicast_free(a);
		buf_free(&b);
	}
}

struct invalid_case {
	const char *in;
	size_t len;
	const char *want;
};

#define FFFD "\xef\xbf\xbd"

static void
test_invalid_bytes(void **state)
{
	/* Expected results are Python's bytes.decode("utf-8", "replace"). */
	static const struct invalid_case cases[] = {
		{ "\xff", 1, FFFD },
		{ "a\x80" "b", 3, "a" FFFD "b" },
		{ "\xc0\xaf", 2, FFFD FFFD },			/* overlong */
		{ "\xe0\x80\xaf", 3, FFFD FFFD FFFD },		/* overlong */
		{ "\xed\xa0\x80", 3, FFFD FFFD FFFD },		/* surrogate */
		{ "\xf4\x90\x80\x80", 4, FFFD FFFD FFFD FFFD },	/* > U+10FFFF */
		{ "\xe2\x28\xa1", 3, FFFD "(" FFFD },
		{ "\xe2\x82" "x", 3, FFFD "x" },		/* truncated */
		{ "\xf0\x9f\x98" "\xf0\x9f\x98\x80", 7, FFFD "\xf0\x9f\x98\x80" },
		{ "\xf5\xf8\xfe", 3, FFFD FFFD FFFD },
		{ "\xc3", 1, FFFD },				/* at the end */
	};

	(void)state;
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		/* Whole, and split at every position. */
		for (size_t cut = 0; cut <= cases[c].len; cut++) {
			struct asciicast *a = NULL;
			struct buf b;
			char *d;
			size_t n, ne;

			buf_init(&b, 4096);
			assert_int_equal(asciicast_new(&a, 0), 0);
			assert_int_equal(asciicast_data(a, &b, 1, 'o',
			    (const uint8_t *)cases[c].in, cut), 0);
			assert_int_equal(asciicast_data(a, &b, 1, 'o',
			    (const uint8_t *)cases[c].in + cut,
			    cases[c].len - cut), 0);
			assert_int_equal(asciicast_finish(a, &b, 1), 0);
			d = events_data(&b, false, 'o', &n, &ne);
			if (strcmp(d, cases[c].want) != 0)
				fail_msg("case %zu cut %zu: got %s", c, cut, d);
			free(d);
			asciicast_free(a);
			buf_free(&b);
		}
	}
}

static void
test_large_packet_bounded(void **state)
{
	size_t len = 20000;
	uint8_t *in = malloc(len);
	struct asciicast *a = NULL;
	struct buf b;
	char *d;
	size_t n, ne, longest = 0;
	const char *p, *nl;

	(void)state;
	assert_non_null(in);
	for (size_t i = 0; i < len; i++)
		in[i] = (uint8_t)(i % 3 == 0 ? 0x1b : 'a' + i % 26);
	buf_init(&b, 1 << 20);
	assert_int_equal(asciicast_new(&a, 0), 0);
	assert_int_equal(asciicast_data(a, &b, 1, 'o', in, len), 0);
	d = events_data(&b, false, 'o', &n, &ne);
	assert_int_equal(n, len);
	assert_memory_equal(d, in, len);
	assert_int_equal(ne, 3);	/* 8192 + 8192 + 3616 */
	for (p = buf_cstr(&b); (nl = strchr(p, '\n')) != NULL; p = nl + 1)
		if ((size_t)(nl - p) > longest)
			longest = (size_t)(nl - p);
	assert_true(longest <= 6 * 8192 + 64);
	free(d);

	/* An output buffer that cannot take the line: nothing appended,
	 * nothing held back changed. */
	{
		struct buf small;

		buf_init(&small, 16);
		assert_int_equal(asciicast_data(a, &small, 1, 'o',
		    (const uint8_t *)"\xe2\x82", 2), 0);
		assert_int_equal(small.len, 0);
		assert_int_equal(asciicast_data(a, &small, 1, 'o',
		    (const uint8_t *)"\xac and more than sixteen", 23),
		    MOAT_ERR_TOOBIG);
		assert_int_equal(small.len, 0);
		buf_free(&small);
		buf_reset(&b);
		/* The euro sign is still pending. */
		assert_int_equal(asciicast_data(a, &b, 1, 'o',
		    (const uint8_t *)"\xac", 1), 0);
		assert_string_equal(buf_cstr(&b),
		    "[1.000000, \"o\", \"\xe2\x82\xac\"]\n");
	}
	asciicast_free(a);
	buf_free(&b);
	free(in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header),
		cmocka_unit_test(test_events_and_times),
		cmocka_unit_test(test_control_escaped),
		cmocka_unit_test(test_split_characters),
		cmocka_unit_test(test_invalid_bytes),
		cmocka_unit_test(test_large_packet_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
