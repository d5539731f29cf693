/*
 * fuzz_cli_sse.c - libFuzzer target for the moat CLI's Server-Sent Events
 * parser and its workspace event lines (src/cli/cli_sse.c), which read what
 * a server sends.
 *
 * The first input byte picks a chunk size (0: the whole rest at once); the
 * rest is the stream. It is parsed twice, whole and in those chunks, each
 * event turned into lines as `moat ws events` does, and the two transcripts
 * (events, lines, the final error) must be identical. Every line must start
 * with a known word and hold no control character but a tab, and no
 * transcript may exceed the parser's bounds.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "cli_sse.h"

#define LINE_MAX_T	2048
#define DATA_MAX_T	4096
#define TRANSCRIPT_MAX	(4 * 1024 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct run {
	struct cli_wsev ev;
	struct buf lines;	/* one event's lines */
	struct buf log;		/* the transcript */
};

static void
check_lines(const struct buf *b)
{
	const char *p = (const char *)b->data, *end;

	if (b->len == 0)
		return;
	end = p + b->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		if (nl == NULL)
			__builtin_trap();	/* every line is ended */
		if (!((nl - p >= 6 && memcmp(p, "STATE ", 6) == 0) ||
		    (nl - p >= 5 && memcmp(p, "PULL ", 5) == 0) ||
		    (nl - p >= 6 && memcmp(p, "OUTPUT", 6) == 0) ||
		    (nl - p >= 6 && memcmp(p, "EVENT ", 6) == 0)))
			__builtin_trap();
		for (const char *q = p; q < nl; q++) {
			unsigned char c = (unsigned char)*q;

			if ((c < 0x20 && c != '\t') || c == 0x7f)
				__builtin_trap();
		}
		p = nl + 1;
	}
}

static int
on_event(void *arg, const char *type, const char *id, const char *d,
    size_t len)
{
	struct run *r = arg;
	int e;

	if (strlen(type) >= CLI_SSE_FIELD_MAX || strlen(id) >=
	    CLI_SSE_FIELD_MAX || len > DATA_MAX_T || d[len] != '\0')
		__builtin_trap();
	buf_reset(&r->lines);
	e = cli_wsev_format(&r->ev, type, d, len, &r->lines);
	check_lines(&r->lines);
	if (buf_appendf(&r->log, "[%s|%s|%d]", type, id, e) != 0 ||
	    buf_append(&r->log, r->lines.data, r->lines.len) != 0)
		return 1;
	return 0;
}

static int
parse(const uint8_t *data, size_t size, size_t step, struct run *r)
{
	struct cli_sse s;
	int e = 0;

	cli_wsev_init(&r->ev);
	buf_init(&r->lines, 64 * 1024);
	buf_init(&r->log, TRANSCRIPT_MAX);
	cli_sse_init(&s, LINE_MAX_T, DATA_MAX_T, on_event, r);
	if (step == 0)
		step = size > 0 ? size : 1;
	for (size_t off = 0; off < size && e == 0; off += step)
		e = cli_sse_feed(&s, (const char *)data + off,
		    size - off < step ? size - off : step);
	if (e == 0) {
		buf_reset(&r->lines);
		e = cli_wsev_flush(&r->ev, &r->lines);
		check_lines(&r->lines);
		if (buf_append(&r->log, r->lines.data, r->lines.len) != 0)
			e = 1;
	}
	if (s.line.len > LINE_MAX_T || s.data.len > DATA_MAX_T + 1)
		__builtin_trap();
	(void)!buf_appendf(&r->log, "{%d|%s}", e, cli_sse_last_id(&s));
	cli_sse_free(&s);
	cli_wsev_free(&r->ev);
	buf_free(&r->lines);
	return e;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run a, b;
	size_t step;

	if (size < 1)
		return 0;
	step = data[0];
	parse(data + 1, size - 1, 0, &a);
	parse(data + 1, size - 1, step, &b);
	if (a.log.len != b.log.len || (a.log.len > 0 &&
	    memcmp(a.log.data, b.log.data, a.log.len) != 0))
		__builtin_trap();
	buf_free(&a.log);
	buf_free(&b.log);
	return 0;
}
