/*
 * cli_sse.h - a bounded parser for Server-Sent Events (the text/event-stream
 * framing of the WHATWG HTML standard, section 9.2), and the turning of a
 * workspace's events into the lines `moat ws events` prints.
 *
 * The stream comes from the server, so it is untrusted input: bytes are fed
 * in whatever chunks the network delivers; a line longer than max_line or
 * an event whose data is longer than max_data stops the parser with
 * MOAT_ERR_TOOBIG, an event type or id longer than CLI_SSE_FIELD_MAX - 1
 * bytes with MOAT_ERR_PARSE. Nothing is allocated beyond those bounds.
 *
 * Framing: lines end in CRLF, LF or CR (also across chunks); a leading
 * UTF-8 byte order mark is skipped; ":" starts a comment; "field: value"
 * (one space after the colon removed; a line without a colon is a field
 * with an empty value); "data" lines are joined with "\n"; an empty line
 * dispatches the event when it has data; "event" sets its type (default
 * "message"), "id" the last event id (kept across events, ignored when it
 * holds a NUL), "retry" the reconnection time (digits only); other fields
 * are ignored; an unfinished event at the end of the stream is dropped.
 */
#ifndef MOAT_CLI_SSE_H
#define MOAT_CLI_SSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "errors.h"

#define CLI_SSE_FIELD_MAX 64

/* One dispatched event: type and id are NUL-terminated; data is len bytes
 * (followed by a NUL not counted, and possibly holding NULs). All
 * borrowed for the call. Return 0 to go on; anything else stops the
 * parser, and cli_sse_feed returns it. */
typedef int (*cli_sse_fn)(void *arg, const char *type, const char *id,
    const char *data, size_t len);

struct cli_sse {
	struct buf line;		/* the line being read */
	struct buf data;		/* the event's data so far */
	char type[CLI_SSE_FIELD_MAX];	/* "" until an "event" field */
	char id[CLI_SSE_FIELD_MAX];	/* the last event id */
	uint64_t retry_ms;		/* the last valid "retry", 0 if none */
	bool cr;			/* the last line ended with CR */
	bool started;			/* past the first line (BOM check) */
	int error;			/* sticky: a failed parser stays failed */
	cli_sse_fn fn;
	void *arg;
};

/* Prepares s; max_line and max_data bound the buffers (at least 1). */
void cli_sse_init(struct cli_sse *s, size_t max_line, size_t max_data,
    cli_sse_fn fn, void *arg);

/* Parses n more bytes. 0, or the first error (sticky): MOAT_ERR_TOOBIG,
 * MOAT_ERR_PARSE, MOAT_ERR_NOMEM, or the callback's non-zero result. */
int cli_sse_feed(struct cli_sse *s, const char *p, size_t n)
    MOAT_MUST_CHECK;

/* The last event id seen ("" when none). Borrowed. */
const char *cli_sse_last_id(const struct cli_sse *s);

/* Releases the buffers. Accepts NULL. */
void cli_sse_free(struct cli_sse *s);

/* ---- workspace events as lines ---- */

/*
 * What a workspace's event stream said so far, and its output text not yet
 * ended by a newline. Events (type, JSON data) become lines appended to
 * out, with every control character and escape sequence from the server
 * removed:
 *   state   {"state": S, "reason": R}   "STATE S" or "STATE S: R"
 *   pull    {"status", "current", "total"}
 *                                       "PULL status" (+ " 3.1 MiB/10.0 MiB")
 *   output  {"text": T}                 "OUTPUT line" for each line of T
 *   other                               "EVENT type"
 * Output text is split at newlines; a partial last line waits for the next
 * output event (up to CLI_WSEV_PENDING_MAX bytes), and is ended by any
 * other event or cli_wsev_flush. Data that is not a JSON object is skipped.
 */
#define CLI_WSEV_STATE_MAX	32
#define CLI_WSEV_REASON_MAX	512
#define CLI_WSEV_PENDING_MAX	4096

struct cli_wsev {
	char state[CLI_WSEV_STATE_MAX];		/* the last state, "" none */
	char reason[CLI_WSEV_REASON_MAX];	/* its reason */
	unsigned states;			/* state events seen */
	struct buf pending;			/* a partial output line */
};

void cli_wsev_init(struct cli_wsev *w);
void cli_wsev_free(struct cli_wsev *w);

/* Appends the lines for one event to out (a bounded buffer: MOAT_ERR_TOOBIG
 * when they do not fit) and updates w. */
int cli_wsev_format(struct cli_wsev *w, const char *type, const char *data,
    size_t len, struct buf *out) MOAT_MUST_CHECK;

/* Ends a pending partial output line into out. */
int cli_wsev_flush(struct cli_wsev *w, struct buf *out) MOAT_MUST_CHECK;

/* "123 B", "4.0 KiB", "3.1 MiB", "2.0 GiB", ... into out. */
const char *cli_bytes(uint64_t n, char *out, size_t outlen);

#endif
