/*
 * test_events.c - unit tests for the workspace event rings (events.h) and
 * text_clean() (textclean.h): ids grow, readers resume after an id, the
 * ring keeps the last EVENTS_RING events, a closed workspace reports
 * closed once drained, and untrusted text loses escape sequences and
 * control characters but keeps UTF-8.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "orchestrator/events.h"
#include "textclean.h"

static void
clean_is(const char *in, size_t len, const char *want)
{
	char out[256];
	size_t n = text_clean(in, len, out, sizeof(out));

	assert_int_equal(n, strlen(want));
	assert_string_equal(out, want);
}

static void
test_clean(void **state)
{
	(void)state;
	clean_is("plain", 5, "plain");
	clean_is("a\tb\nc", 5, "a\tb\nc");
	clean_is("red\033[31mALERT\033[0m", 17, "redALERT");
	clean_is("x\033]0;title\007y", 12, "xy");
	clean_is("x\033]8;;u\033\\y", 10, "xy");
	clean_is("bell\007 del\177 cr\r", 15, "bell del cr");
	clean_is("\xc3\xa9t\xc3\xa9", 5, "\xc3\xa9t\xc3\xa9");
	clean_is("c1\xc2\x9b" "x", 5, "c1x");
	clean_is("bad\xc0\xaf\xff!", 7, "bad!");
	clean_is("surrogate\xed\xa0\x80.", 13, "surrogate.");
	clean_is("cut\033[12", 7, "cut");
	clean_is("nul\0byte", 8, "nulbyte");
	{
		char small[4];

		/* Truncation never splits a character. */
		assert_int_equal(text_clean("\xe2\x82\xac\xe2\x82\xac", 6, small,
		    sizeof(small)), 3);
		assert_string_equal(small, "\xe2\x82\xac");
		assert_int_equal(text_clean("abcdef", 6, small, sizeof(small)),
		    3);
	}
}

static void
test_ring(void **state)
{
	struct ws_events *e = NULL;
	json_t *list = NULL;
	bool closed = true;
	json_int_t first, last;

	(void)state;
	assert_int_equal(ws_events_new(&e), 0);
	assert_int_equal(ws_events_read(e, "w1", 0, 10, &list, &closed), 0);
	assert_int_equal(json_array_size(list), 0);
	assert_false(closed);
	json_decref(list);

	ws_events_publish(e, "w1", "state", json_pack("{s:s}", "state",
	    "pending"));
	ws_events_publish(e, "w2", "state", NULL);
	ws_events_publish(e, "w1", "output", json_pack("{s:s}", "text", "hi"));
	assert_int_equal(ws_events_read(e, "w1", 0, 10, &list, &closed), 0);
	assert_int_equal(json_array_size(list), 2);
	first = json_integer_value(json_object_get(json_array_get(list, 0),
	    "id"));
	last = json_integer_value(json_object_get(json_array_get(list, 1),
	    "id"));
	assert_true(last > first);
	assert_string_equal(json_string_value(json_object_get(
	    json_array_get(list, 1), "type")), "output");
	assert_non_null(strstr(json_string_value(json_object_get(
	    json_array_get(list, 1), "data")), "\"text\":\"hi\""));
	json_decref(list);
	/* Resume after the first: only the second. */
	assert_int_equal(ws_events_read(e, "w1", (uint64_t)first, 10, &list,
	    &closed), 0);
	assert_int_equal(json_array_size(list), 1);
	json_decref(list);

	/* The ring keeps the newest EVENTS_RING. */
	for (int i = 0; i < EVENTS_RING + 10; i++)
		ws_events_publish(e, "w1", "output", NULL);
	assert_int_equal(ws_events_read(e, "w1", 0, 1000, &list, &closed), 0);
	assert_int_equal(json_array_size(list), EVENTS_RING);
	json_decref(list);
	/* max bounds a read; closed only once nothing newer remains. */
	ws_events_close(e, "w1");
	ws_events_publish(e, "w1", "state", NULL);	/* after close: dropped */
	assert_int_equal(ws_events_read(e, "w1", 0, 5, &list, &closed), 0);
	assert_int_equal(json_array_size(list), 5);
	assert_false(closed);
	json_decref(list);
	assert_int_equal(ws_events_read(e, "w1", 0, 1000, &list, &closed), 0);
	assert_int_equal(json_array_size(list), EVENTS_RING);
	assert_true(closed);
	json_decref(list);
	ws_events_free(e);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean),
		cmocka_unit_test(test_ring),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
