/*
 * test_buf.c - unit tests for buf.c: the hard cap (and an unchanged buffer
 * when it is hit), NUL termination, appendf, consume, steal, reset and
 * appending a buffer's own bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"

static void
test_empty(void **state)
{
	struct buf b;
	size_t len = 99;
	char *s;

	(void)state;
	buf_init(&b, 16);
	assert_null(b.data);
	assert_string_equal(buf_cstr(&b), "");
	buf_consume(&b, 5);
	buf_reset(&b);
	assert_int_equal(buf_append(&b, NULL, 0), 0);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	buf_free(&b);
	buf_init(&b, 16);
	s = buf_steal(&b, &len);
	assert_non_null(s);
	assert_int_equal(len, 0);
	assert_string_equal(s, "");
	free(s);
	buf_free(&b);
	buf_free_wipe(&b);
}

static void
test_append_and_nul(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1024);
	assert_int_equal(buf_append(&b, "abc", 3), 0);
	assert_int_equal(b.len, 3);
	assert_int_equal(b.data[3], '\0');
	assert_int_equal(buf_append_str(&b, "def"), 0);
	assert_string_equal(buf_cstr(&b), "abcdef");
	/* Growth past the first allocation keeps the contents. */
	for (int i = 0; i < 100; i++)
		assert_int_equal(buf_append(&b, "0123456789", 10), 0);
	assert_int_equal(b.len, 1006);
	assert_int_equal(strlen(buf_cstr(&b)), 1006);
	assert_memory_equal(b.data + 6, "0123456789", 10);
	assert_memory_equal(b.data + 996, "0123456789", 10);
	/* Binary data with NULs. */
	buf_reset(&b);
	assert_int_equal(buf_append(&b, "a\0b", 3), 0);
	assert_int_equal(b.len, 3);
	assert_memory_equal(b.data, "a\0b\0", 4);
	buf_free(&b);
}

static void
test_cap(void **state)
{
	struct buf b;
	uint8_t *before;

	(void)state;
	buf_init(&b, 8);
	assert_int_equal(buf_append(&b, "12345", 5), 0);
	before = b.data;
	assert_int_equal(buf_append(&b, "6789", 4), MOAT_ERR_TOOBIG);
	assert_int_equal(b.len, 5);
	assert_ptr_equal(b.data, before);
	assert_string_equal(buf_cstr(&b), "12345");
	assert_int_equal(buf_appendf(&b, "%s", "6789"), MOAT_ERR_TOOBIG);
	assert_string_equal(buf_cstr(&b), "12345");
	assert_int_equal(buf_append(&b, "678", 3), 0);	/* exactly max */
	assert_string_equal(buf_cstr(&b), "12345678");
	assert_int_equal(buf_append(&b, "9", 1), MOAT_ERR_TOOBIG);
	assert_int_equal(buf_append(&b, "", 0), 0);
	assert_int_equal(buf_append(&b, "x", SIZE_MAX), MOAT_ERR_TOOBIG);
	assert_int_equal(b.len, 8);
	buf_free(&b);
	/* A cap of 0 takes nothing. */
	buf_init(&b, 0);
	assert_int_equal(buf_append(&b, "x", 1), MOAT_ERR_TOOBIG);
	assert_int_equal(buf_append(&b, "", 0), 0);
	buf_free(&b);
	/* SIZE_MAX as the cap: a length that leaves no room for the NUL
	 * must not wrap around. */
	buf_init(&b, SIZE_MAX);
	assert_int_equal(buf_append(&b, "ab", 2), 0);
	assert_int_equal(buf_append(&b, "x", SIZE_MAX - 2), MOAT_ERR_TOOBIG);
	assert_string_equal(buf_cstr(&b), "ab");
	buf_free(&b);
}

static void
test_appendf(void **state)
{
	struct buf b;
	char big[300];

	(void)state;
	buf_init(&b, 4096);
	assert_int_equal(buf_appendf(&b, "%d-%s", 42, "x"), 0);
	assert_int_equal(buf_appendf(&b, "%s", ""), 0);
	assert_int_equal(buf_appendf(&b, "|%05.1f", 2.5), 0);
	assert_string_equal(buf_cstr(&b), "42-x|002.5");
	assert_int_equal(b.len, 10);
	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(buf_appendf(&b, "%s", big), 0);
	assert_int_equal(b.len, 10 + 299);
	assert_int_equal(b.data[b.len], '\0');
	buf_free(&b);
}

static void
test_consume(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 64);
	assert_int_equal(buf_append_str(&b, "hello world"), 0);
	buf_consume(&b, 6);
	assert_string_equal(buf_cstr(&b), "world");
	assert_int_equal(b.len, 5);
	buf_consume(&b, 0);
	assert_string_equal(buf_cstr(&b), "world");
	buf_consume(&b, 100);
	assert_int_equal(b.len, 0);
	assert_string_equal(buf_cstr(&b), "");
	/* The cap counts bytes held, not bytes ever appended. */
	for (int i = 0; i < 100; i++) {
		assert_int_equal(buf_append(&b, "0123456789", 10), 0);
		buf_consume(&b, 10);
	}
	buf_free(&b);
}

static void
test_steal(void **state)
{
	struct buf b;
	size_t len;
	char *s;

	(void)state;
	buf_init(&b, 64);
	assert_int_equal(buf_append_str(&b, "token"), 0);
	s = buf_steal(&b, &len);
	assert_string_equal(s, "token");
	assert_int_equal(len, 5);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(s);
	/* Usable again, with the same cap. */
	assert_int_equal(buf_append_str(&b, "again"), 0);
	assert_int_equal(buf_append(&b, "0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789", 80), MOAT_ERR_TOOBIG);
	assert_string_equal(buf_cstr(&b), "again");
	buf_free_wipe(&b);
	assert_null(b.data);
}

static void
test_self_append(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 1 << 20);
	assert_int_equal(buf_append_str(&b, "ab"), 0);
	/* Doubling repeatedly forces realloc to move the data. */
	for (int i = 0; i < 12; i++)
		assert_int_equal(buf_append(&b, b.data, b.len), 0);
	assert_int_equal(b.len, 2 << 12);
	for (size_t i = 0; i < b.len; i += 2)
		assert_memory_equal(b.data + i, "ab", 2);
	buf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_append_and_nul),
		cmocka_unit_test(test_cap),
		cmocka_unit_test(test_appendf),
		cmocka_unit_test(test_consume),
		cmocka_unit_test(test_steal),
		cmocka_unit_test(test_self_append),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
