/*
 * asciicast.h - the asciicast v2 format of session recordings
 * (REFERENCE.md: newline-delimited JSON; a header object, then
 * [seconds, code, data] events with "o" output, "i" input, "r" resize
 * "COLSxROWS"). asciinema play and the web UI replay it.
 *
 * Session bytes are untrusted and arrive in arbitrary packets: a UTF-8
 * character split across two packets is held back until it is whole, and
 * bytes that are not UTF-8 become U+FFFD, so every event is valid JSON
 * text. One struct asciicast per recorded channel.
 */
#ifndef MOAT_ASCIICAST_H
#define MOAT_ASCIICAST_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "buf.h"
#include "errors.h"

struct asciicast;

/* start: the session's start (CLOCK_MONOTONIC seconds) for event times. */
int asciicast_new(struct asciicast **out, double start) MOAT_MUST_CHECK;
void asciicast_free(struct asciicast *a);

/* Appends the header line ({"version":2,"width":W,"height":H,
 * "timestamp":TS,"env":{"TERM":...,"SHELL":...}} and "\n") to out. term
 * and shell may be NULL (omitted); they are untrusted text (bounded,
 * cleaned). */
int asciicast_header(struct buf *out, unsigned width, unsigned height,
    time_t timestamp, const char *term, const char *shell) MOAT_MUST_CHECK;

/* Appends one event line for len bytes of stream code ('o' or 'i') at
 * time now (CLOCK_MONOTONIC seconds), holding back an incomplete UTF-8
 * tail for the next call of the same code. Nothing is appended when only
 * held-back bytes remain. */
int asciicast_data(struct asciicast *a, struct buf *out, double now,
    char code, const uint8_t *data, size_t len) MOAT_MUST_CHECK;

/* Appends a resize event "COLSxROWS". */
int asciicast_resize(struct asciicast *a, struct buf *out, double now,
    unsigned cols, unsigned rows) MOAT_MUST_CHECK;

/* Flushes held-back bytes (as U+FFFD) at the end of a session. */
int asciicast_finish(struct asciicast *a, struct buf *out, double now)
    MOAT_MUST_CHECK;

#endif
