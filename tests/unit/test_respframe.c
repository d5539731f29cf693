/*
 * test_respframe.c - unit tests for respframe.c, an upstream response's
 * framing as moat-proxy forwards it: a table of upstream byte streams, each
 * fed whole and byte by byte, with the exact bytes the client must get, the
 * result, whether the client and upstream connections may be kept and what
 * is left after the response (a smuggled second response stays behind).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "respframe.h"

enum { F_HEAD = 1, F_10 = 2, F_KEEP = 4, F_OPEN = 8 };

struct rcase {
	const char *name;
	int flags;
	const char *in;
	int result;
	const char *out;		/* NULL: not checked */
	bool client_keep, upstream_keep;
	size_t left;			/* bytes left in the input */
};

#define KA "Connection: keep-alive\r\n"
#define CC "Connection: close\r\n"

static const struct rcase cases[] = {
	{ "cl, hop-by-hop stripped", F_KEEP,
	  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\n"
	  "X-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\n"
	  "X-Origin: yes\r\n\r\nhello",
	  0, "HTTP/1.1 200 OK\r\nX-Origin: yes\r\nContent-Length: 5\r\n\r\nhello",
	  true, true, 0 },
	{ "cl, client wants close", 0,
	  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	  0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" CC "\r\nok", false, true, 0 },
	{ "cl, smuggled second response stays behind", F_KEEP,
	  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	  "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
	  0, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", true, true, 44 },
	{ "chunked re-encoded, extensions and trailers dropped", F_KEEP,
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n"
	  "0\r\nX-T: 1\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged",
	  0, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
	  "0\r\n\r\n", true, true, 44 },
	{ "chunked to an HTTP/1.0 client: decoded, close-delimited",
	  F_KEEP | F_10,
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	  0, "HTTP/1.1 200 OK\r\n" CC "\r\nhello", false, true, 0 },
	{ "HTTP/1.0 client keeps with Content-Length", F_KEEP | F_10,
	  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	  0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" KA "\r\nok", true, true, 0 },
	{ "no framing: until the close, never kept", F_KEEP,
	  "HTTP/1.1 200 OK\r\nX-A: b\r\n\r\nuntil the close",
	  0, "HTTP/1.1 200 OK\r\nX-A: b\r\n" CC "\r\nuntil the close", false, false, 0 },
	{ "no framing, connection still open", F_KEEP | F_OPEN,
	  "HTTP/1.1 200 OK\r\n\r\npart", MOAT_ERR_AGAIN, NULL, false, false, 0 },
	{ "HEAD: no body whatever the head says", F_KEEP | F_HEAD,
	  "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP/1.1 200 OK\r\n",
	  0, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", true, true, 17 },
	{ "304 with a length has no body", F_KEEP,
	  "HTTP/1.1 304 Not Modified\r\nContent-Length: 50\r\nETag: \"x\"\r\n\r\n",
	  0, "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 50\r\n\r\n",
	  true, true, 0 },
	{ "204 with a length has no body; the rest stays behind", F_KEEP,
	  "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
	  0, "HTTP/1.1 204 No Content\r\n\r\n", true, true, 5 },
	{ "interim heads passed on", F_KEEP,
	  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
	  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	  0, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
	  "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, true, 0 },
	{ "interim heads dropped for HTTP/1.0", F_10,
	  "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
	  0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" CC "\r\nok", false, true, 0 },
	{ "upstream says close", F_KEEP,
	  "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
	  0, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true, false, 0 },
	{ "HTTP/1.0 upstream without keep-alive", F_KEEP,
	  "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc",
	  0, "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc", true, false, 0 },
	{ "101 refused", F_KEEP,
	  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
	  MOAT_ERR_PARSE, NULL, false, false, 0 },
	{ "Content-Length and Transfer-Encoding", F_KEEP,
	  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "0\r\n\r\n", MOAT_ERR_PARSE, NULL, false, false, 0 },
	{ "two Content-Length", F_KEEP,
	  "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
	  MOAT_ERR_PARSE, NULL, false, false, 0 },
	{ "Content-Length list", F_KEEP,
	  "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\nhello",
	  MOAT_ERR_PARSE, NULL, false, false, 0 },
	{ "Content-Length with a sign", F_KEEP,
	  "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
	  MOAT_ERR_PARSE, NULL, false, false, 0 },
	{ "Transfer-Encoding other than chunked", F_KEEP,
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
	  MOAT_ERR_PARSE, NULL, false, false, 0 },
	{ "obsolete line folding", F_KEEP,
	  "HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n",
	  MOAT_ERR_PARSE, NULL, false, false, 0 },
	{ "whitespace before the colon", F_KEEP,
	  "HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
	  MOAT_ERR_PARSE, NULL, false, false, 0 },
	{ "bare LF", F_KEEP, "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
	  MOAT_ERR_PARSE, NULL, false, false, 0 },
	{ "invalid chunk size", F_KEEP,
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
	  MOAT_ERR_PARSE, NULL, false, false, 0 },
	{ "truncated body", F_KEEP,
	  "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort",
	  MOAT_ERR_CLOSED, NULL, false, false, 0 },
	{ "truncated chunked body", F_KEEP,
	  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
	  MOAT_ERR_CLOSED, NULL, false, false, 0 },
	{ "closed before a byte", F_KEEP, "", MOAT_ERR_CLOSED, NULL, false, false, 0 },
	{ "HTTP/2 status line", F_KEEP, "HTTP/2 200 OK\r\n\r\n",
	  MOAT_ERR_PARSE, NULL, false, false, 0 },
};

static void
run_case(const struct rcase *c, size_t step)
{
	struct respframe_opts o = { 0 };
	struct respframe *f;
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	size_t n = strlen(c->in), off = 0;
	int r = MOAT_ERR_AGAIN;

	o.head_request = (c->flags & F_HEAD) != 0;
	o.client_http10 = (c->flags & F_10) != 0;
	o.client_keep = (c->flags & F_KEEP) != 0;
	assert_int_equal(respframe_new(&f, &o), 0);
	do {
		size_t k = n - off < step ? n - off : step;

		assert_int_equal(evbuffer_add(in, c->in + off, k), 0);
		off += k;
		r = respframe_feed(f, in, out, off == n && !(c->flags & F_OPEN));
	} while (r == MOAT_ERR_AGAIN && off < n);
	if (r != c->result)
		fail_msg("%s (step %zu): result %d, want %d", c->name, step, r,
		    c->result);
	/* Split input gives the same bytes, except that a chunked body is
	 * encoded again in the pieces it arrived in. */
	if (c->out != NULL && (step == (size_t)-1 ||
	    strstr(c->in, "chunked\r\n\r\n") == NULL)) {
		size_t ol = evbuffer_get_length(out);
		char *p = (char *)evbuffer_pullup(out, (ssize_t)ol);

		if (ol != strlen(c->out) || memcmp(p, c->out, ol) != 0)
			fail_msg("%s (step %zu): client got\n%.*s\nwant\n%s", c->name,
			    step, (int)ol, p, c->out);
	}
	if (r == 0) {
		/* What came after the response stays in the input. */
		assert_int_equal(evbuffer_add(in, c->in + off, n - off), 0);
		assert_int_equal(respframe_feed(f, in, out, true), 0);
		if (respframe_client_keep(f) != c->client_keep ||
		    respframe_upstream_keep(f) != c->upstream_keep ||
		    evbuffer_get_length(in) != c->left)
			fail_msg("%s (step %zu): keep %d/%d, left %zu", c->name,
			    step, (int)respframe_client_keep(f),
			    (int)respframe_upstream_keep(f),
			    evbuffer_get_length(in));
		assert_true(respframe_head_sent(f));
		assert_true(respframe_status(f) >= 200);
	} else if (r != MOAT_ERR_AGAIN) {
		/* Errors are final. */
		assert_int_equal(respframe_feed(f, in, out, true), r);
	}
	respframe_free(f);
	evbuffer_free(in);
	evbuffer_free(out);
}

static void
test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run_case(&cases[i], (size_t)-1);
		run_case(&cases[i], 1);
		run_case(&cases[i], 7);
	}
}

static void
test_head_too_large(void **state)
{
	struct respframe_opts o = { .client_keep = true, .max_head = 256 };
	struct respframe *f;
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	char big[512];

	(void)state;
	memset(big, 'a', sizeof(big));
	assert_int_equal(respframe_new(&f, &o), 0);
	assert_int_equal(evbuffer_add_printf(in, "HTTP/1.1 200 OK\r\nX: "), 20);
	assert_int_equal(respframe_feed(f, in, out, false), MOAT_ERR_AGAIN);
	assert_int_equal(evbuffer_add(in, big, sizeof(big)), 0);
	assert_int_equal(respframe_feed(f, in, out, false), MOAT_ERR_TOOBIG);
	assert_int_equal(evbuffer_get_length(out), 0);
	assert_false(respframe_head_sent(f));
	respframe_free(f);
	evbuffer_free(in);
	evbuffer_free(out);
}

/* A large Content-Length body passes in pieces, counted to its end. */
static void
test_large_body_in_pieces(void **state)
{
	struct respframe_opts o = { .client_keep = true };
	struct respframe *f;
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	static char piece[65536];
	size_t total = 0;
	int r;

	(void)state;
	memset(piece, 'z', sizeof(piece));
	assert_int_equal(respframe_new(&f, &o), 0);
	evbuffer_add_printf(in, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n",
	    20 * 65536);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(evbuffer_add(in, piece, sizeof(piece)), 0);
		r = respframe_feed(f, in, out, false);
		assert_int_equal(r, i == 19 ? 0 : MOAT_ERR_AGAIN);
		total += evbuffer_get_length(out);
		evbuffer_drain(out, evbuffer_get_length(out));
	}
	assert_int_equal(total, 20 * 65536 + strlen("HTTP/1.1 200 OK\r\n"
	    "Content-Length: 1310720\r\n\r\n"));
	assert_true(respframe_client_keep(f));
	respframe_free(f);
	evbuffer_free(in);
	evbuffer_free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_head_too_large),
		cmocka_unit_test(test_large_body_in_pieces),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
