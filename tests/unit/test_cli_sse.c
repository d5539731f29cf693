/*
 * test_cli_sse.c - unit tests for the moat CLI's Server-Sent Events parser
 * and the lines it prints for workspace events (src/cli/cli_sse.c): every
 * line ending (also split across chunks), byte-at-a-time feeding giving the
 * same events as one chunk, data lines joined, comments, fields without a
 * colon or value, the byte order mark, id persistence and ids with NUL,
 * retry, default and reset event types, the bounds (line, data, type, id)
 * with sticky errors, a callback stopping the parser; and the STATE, PULL,
 * OUTPUT and EVENT lines, output lines split across events, escape
 * sequences and control characters from the server removed, data that is
 * not a JSON object skipped, a full output buffer refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli_sse.h"

#define MAXEV 16

struct got {
	size_t n;
	char type[MAXEV][CLI_SSE_FIELD_MAX];
	char id[MAXEV][CLI_SSE_FIELD_MAX];
	char data[MAXEV][256];
	size_t len[MAXEV];
	int stop_at;		/* return 7 at this event (1-based), 0 never */
};

static int
on_ev(void *arg, const char *type, const char *id, const char *data,
    size_t len)
{
	struct got *g = arg;

	if (g->n < MAXEV) {
		snprintf(g->type[g->n], sizeof(g->type[0]), "%s", type);
		snprintf(g->id[g->n], sizeof(g->id[0]), "%s", id);
		memcpy(g->data[g->n], data, len < 255 ? len : 255);
		g->data[g->n][len < 255 ? len : 255] = '\0';
		g->len[g->n] = len;
		/* The data is NUL-terminated after len. */
		assert_int_equal(data[len], '\0');
	}
	g->n++;
	if (g->stop_at != 0 && (int)g->n == g->stop_at)
		return 7;
	return 0;
}

/* Feeds text whole (step 0) or in chunks of step bytes. */
static int
feed(struct got *g, const char *text, size_t len, size_t step,
    size_t max_line, size_t max_data)
{
	struct cli_sse s;
	int r = 0;

	memset(g->type, 0, sizeof(g->type));
	g->n = 0;
	cli_sse_init(&s, max_line, max_data, on_ev, g);
	if (step == 0)
		step = len;
	for (size_t off = 0; off < len && r == 0; off += step)
		r = cli_sse_feed(&s, text + off, len - off < step ? len - off :
		    step);
	cli_sse_free(&s);
	return r;
}

static const char stream[] =
    "\xef\xbb\xbf: hello\n"
    "id: 1\r\n"
    "event: state\r"
    "data: {\"state\":\"pending\"}\r\n"
    "\r\n"
    "event: output\n"
    "data:line one\n"
    "data:  two\n"
    "data\n"
    "\n"
    "id: 3\n"
    "data: x\n"
    "retry: 2500\n"
    "unknown: field\n"
    "\n"
    "event: ignored\n"
    "\n"
    "data: plain\n"
    "\n"
    "id: a\0b\n"
    "data: last\n"
    "\n"
    "data: unfinished\n";

static void
check_stream(const struct got *g)
{
	assert_int_equal(g->n, 5);
	assert_string_equal(g->type[0], "state");
	assert_string_equal(g->id[0], "1");
	assert_string_equal(g->data[0], "{\"state\":\"pending\"}");
	assert_string_equal(g->type[1], "output");
	assert_string_equal(g->id[1], "1");		/* kept */
	assert_string_equal(g->data[1], "line one\n two\n");
	assert_string_equal(g->type[2], "message");
	assert_string_equal(g->id[2], "3");
	assert_string_equal(g->data[2], "x");
	/* "event: ignored" had no data: nothing dispatched, type reset. */
	assert_string_equal(g->type[3], "message");
	assert_string_equal(g->data[3], "plain");
	/* An id holding a NUL is ignored. */
	assert_string_equal(g->id[4], "3");
	assert_string_equal(g->data[4], "last");
}

static void
test_framing(void **state)
{
	struct got g = { 0 };
	size_t len = sizeof(stream) - 1;

	(void)state;
	assert_int_equal(feed(&g, stream, len, 0, 1024, 1024), 0);
	check_stream(&g);
	/* Every chunk size gives the same events (CR LF split included). */
	for (size_t step = 1; step < 40; step++) {
		assert_int_equal(feed(&g, stream, len, step, 1024, 1024), 0);
		check_stream(&g);
	}
}

static void
test_cr_lf_across_chunks(void **state)
{
	struct got g = { 0 };
	struct cli_sse s;

	(void)state;
	g.n = 0;
	cli_sse_init(&s, 64, 64, on_ev, &g);
	assert_int_equal(cli_sse_feed(&s, "data: a\r", 8), 0);
	/* The LF completes the CR: not an empty line (no early dispatch). */
	assert_int_equal(cli_sse_feed(&s, "\ndata: b\r", 9), 0);
	assert_int_equal(g.n, 0);
	assert_int_equal(cli_sse_feed(&s, "\r", 1), 0);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.data[0], "a\nb");
	assert_int_equal(cli_sse_feed(&s, "retry: 12x\n", 11), 0);
	assert_int_equal(s.retry_ms, 0);
	assert_int_equal(cli_sse_feed(&s, "retry:300\n", 10), 0);
	assert_int_equal(s.retry_ms, 300);
	assert_int_equal(cli_sse_feed(&s, "id: 42\n", 7), 0);
	assert_string_equal(cli_sse_last_id(&s), "42");
	/* A BOM after the first line is part of a field name: ignored. */
	assert_int_equal(cli_sse_feed(&s, "\xef\xbb\xbf" "data: z\n\n", 12), 0);
	assert_int_equal(g.n, 1);
	cli_sse_free(&s);
	cli_sse_free(NULL);
}

static void
test_bounds(void **state)
{
	struct got g = { 0 };
	struct cli_sse s;
	char big[200];

	(void)state;
	/* A line of exactly max_line bytes is fine, one more is not,
	 * whether it arrives whole or in pieces. */
	assert_int_equal(feed(&g, "data: 0123456789\n\n", 18, 0, 16, 64), 0);
	assert_int_equal(g.n, 1);
	assert_int_equal(feed(&g, "data: 0123456789A\n\n", 19, 0, 16, 64),
	    MOAT_ERR_TOOBIG);
	assert_int_equal(feed(&g, "data: 0123456789A\n\n", 19, 3, 16, 64),
	    MOAT_ERR_TOOBIG);
	/* A line with no end grows only to the bound. */
	memset(big, 'x', sizeof(big));
	assert_int_equal(feed(&g, big, sizeof(big), 7, 64, 64),
	    MOAT_ERR_TOOBIG);
	/* Data: max_data bytes in all. */
	assert_int_equal(feed(&g, "data: 12345\ndata: 67\n\n", 22, 0, 64, 8),
	    0);
	assert_string_equal(g.data[0], "12345\n67");
	assert_int_equal(feed(&g, "data: 12345\ndata: 678\n\n", 23, 0, 64,
	    8), MOAT_ERR_TOOBIG);
	assert_int_equal(g.n, 0);
	/* Event types and ids of CLI_SSE_FIELD_MAX bytes are refused. */
	memset(big, 'e', sizeof(big));
	memcpy(big, "event: ", 7);
	big[7 + CLI_SSE_FIELD_MAX] = '\n';
	assert_int_equal(feed(&g, big, 8 + CLI_SSE_FIELD_MAX, 0, 1024, 64),
	    MOAT_ERR_PARSE);
	memcpy(big, "id:    ", 7);
	assert_int_equal(feed(&g, big, 8 + CLI_SSE_FIELD_MAX, 0, 1024, 64),
	    MOAT_ERR_PARSE);
	/* Errors are sticky. */
	cli_sse_init(&s, 8, 8, on_ev, &g);
	assert_int_equal(cli_sse_feed(&s, "data: 123456789\n", 16),
	    MOAT_ERR_TOOBIG);
	assert_int_equal(cli_sse_feed(&s, "\n", 1), MOAT_ERR_TOOBIG);
	cli_sse_free(&s);
}

static void
test_callback_stops(void **state)
{
	struct got g = { 0 };
	static const char two[] = "data: a\n\ndata: b\n\ndata: c\n\n";

	(void)state;
	g.stop_at = 2;
	assert_int_equal(feed(&g, two, sizeof(two) - 1, 0, 64, 64), 7);
	assert_int_equal(g.n, 2);
	g.stop_at = 0;
}

/* ---- workspace events ---- */

static const char *
fmt(struct cli_wsev *w, struct buf *out, const char *type, const char *data)
{
	buf_reset(out);
	assert_int_equal(cli_wsev_format(w, type, data, strlen(data), out), 0);
	return buf_cstr(out);
}

static void
test_wsev_lines(void **state)
{
	struct cli_wsev w;
	struct buf out;

	(void)state;
	cli_wsev_init(&w);
	buf_init(&out, 4096);
	assert_string_equal(fmt(&w, &out, "state",
	    "{\"type\":\"state\",\"state\":\"pending\",\"reason\":\"\"}"),
	    "STATE pending\n");
	assert_string_equal(w.state, "pending");
	assert_int_equal(w.states, 1);
	assert_string_equal(fmt(&w, &out, "pull",
	    "{\"status\":\"Copying blob\",\"current\":512,\"total\":1024}"),
	    "PULL Copying blob 512 B/1.0 KiB\n");
	assert_string_equal(fmt(&w, &out, "pull",
	    "{\"status\":\"Pulling\",\"current\":3145728,\"total\":0}"),
	    "PULL Pulling 3.0 MiB\n");
	assert_string_equal(fmt(&w, &out, "pull", "{\"status\":\"Done\"}"),
	    "PULL Done\n");
	/* Output: lines, a partial one carried to the next event. */
	assert_string_equal(fmt(&w, &out, "output",
	    "{\"text\":\"hello\\nwor\"}"), "OUTPUT hello\n");
	assert_string_equal(fmt(&w, &out, "output", "{\"text\":\"ld\\n\\n\"}"),
	    "OUTPUT world\nOUTPUT\n");
	/* Escape sequences go whole, other controls are dropped. */
	assert_string_equal(fmt(&w, &out, "output", "{\"text\":\"red\\u001b"
	    "[31mALERT\\u001b[0m bell\\u0007 done\\r\\n\"}"),
	    "OUTPUT redALERT bell done\n");
	assert_string_equal(fmt(&w, &out, "output", "{\"text\":\"tail\"}"),
	    "");
	/* Any other event ends the pending line first. */
	assert_string_equal(fmt(&w, &out, "state",
	    "{\"state\":\"failed\",\"reason\":\"no \\u001b]0;pwned\\u0007"
	    "image\\nhere\"}"),
	    "OUTPUT tail\nSTATE failed: no image here\n");
	assert_string_equal(w.state, "failed");
	assert_string_equal(w.reason, "no image here");
	assert_int_equal(w.states, 2);
	/* A state that is not a string is empty; the line still shows. */
	assert_string_equal(fmt(&w, &out, "state", "{\"state\":7}"),
	    "STATE \n");
	assert_string_equal(fmt(&w, &out, "frob", "{}"), "EVENT frob\n");
	assert_string_equal(fmt(&w, &out, "fr\x1b[1mob", "{}"),
	    "EVENT frob\n");
	/* Not JSON objects: skipped. */
	assert_string_equal(fmt(&w, &out, "state", "[1]"), "");
	assert_string_equal(fmt(&w, &out, "state", "nope"), "");
	assert_string_equal(fmt(&w, &out, "output", "{\"text\":5}"), "");
	assert_int_equal(w.states, 3);
	buf_reset(&out);
	assert_int_equal(cli_wsev_flush(&w, &out), 0);
	assert_string_equal(buf_cstr(&out), "");
	buf_free(&out);
	cli_wsev_free(&w);
	cli_wsev_free(NULL);
}

static void
test_wsev_bounds(void **state)
{
	struct cli_wsev w;
	struct buf out;
	char *text;
	size_t n = CLI_WSEV_PENDING_MAX + 10;

	(void)state;
	cli_wsev_init(&w);
	buf_init(&out, 1 << 20);
	/* An endless line is cut at CLI_WSEV_PENDING_MAX bytes. */
	text = malloc(n + 16);
	assert_non_null(text);
	memcpy(text, "{\"text\":\"", 9);
	memset(text + 9, 'a', n);
	memcpy(text + 9 + n, "\"}", 3);
	assert_int_equal(cli_wsev_format(&w, "output", text, strlen(text),
	    &out), 0);
	assert_int_equal(out.len, 7 + CLI_WSEV_PENDING_MAX + 1);
	assert_int_equal(w.pending.len, 10);
	free(text);
	/* A full output buffer is an error, not an overflow. */
	buf_free(&out);
	buf_init(&out, 8);
	assert_int_equal(cli_wsev_format(&w, "state", "{\"state\":\"running\"}",
	    19, &out), MOAT_ERR_TOOBIG);
	buf_free(&out);
	cli_wsev_free(&w);
}

static void
test_bytes(void **state)
{
	char b[32];

	(void)state;
	assert_string_equal(cli_bytes(0, b, sizeof(b)), "0 B");
	assert_string_equal(cli_bytes(1023, b, sizeof(b)), "1023 B");
	assert_string_equal(cli_bytes(1024, b, sizeof(b)), "1.0 KiB");
	assert_string_equal(cli_bytes(2048ULL << 20, b, sizeof(b)), "2.0 GiB");
	assert_string_equal(cli_bytes(UINT64_MAX, b, sizeof(b)), "16.0 EiB");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_cr_lf_across_chunks),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_callback_stops),
		cmocka_unit_test(test_wsev_lines),
		cmocka_unit_test(test_wsev_bounds),
		cmocka_unit_test(test_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
