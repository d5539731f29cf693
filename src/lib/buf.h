/*
 * buf.h - a growable byte buffer with a hard size cap.
 *
 * Untrusted bytes are collected in a struct buf whose maximum is set when it
 * is created; an append that would pass the maximum fails with
 * MOAT_ERR_TOOBIG and leaves the buffer unchanged. The data is always
 * followed by a NUL byte (not counted in len), so text can be read as a C
 * string. The struct is public so a buffer can live inside another struct;
 * touch its fields only through these functions.
 */
#ifndef MOAT_BUF_H
#define MOAT_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct buf {
	uint8_t *data;	/* owned; NULL until the first append */
	size_t len;	/* bytes in use */
	size_t cap;	/* bytes allocated */
	size_t max;	/* hard cap on len */
};

/* Prepares an empty buffer that will never hold more than max bytes. */
void buf_init(struct buf *b, size_t max);

/* Appends n bytes; MOAT_ERR_TOOBIG past the cap, MOAT_ERR_NOMEM. */
int buf_append(struct buf *b, const void *p, size_t n) MOAT_MUST_CHECK;
int buf_append_str(struct buf *b, const char *s) MOAT_MUST_CHECK;
int buf_appendf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3))) MOAT_MUST_CHECK;

/* Removes the first n bytes (all of them if n >= len). */
void buf_consume(struct buf *b, size_t n);

/* Empties the buffer and keeps its memory. */
void buf_reset(struct buf *b);

/* Contents as a NUL-terminated string (borrowed; "" when empty). */
const char *buf_cstr(const struct buf *b);

/* Hands the data to the caller (caller frees) and empties the buffer. */
char *buf_steal(struct buf *b, size_t *len_out);

/* Releases the memory; buf_free_wipe() overwrites it first (secrets). */
void buf_free(struct buf *b);
void buf_free_wipe(struct buf *b);

/* Copies s[0..n) into out[outlen] as a NUL-terminated string:
 * MOAT_ERR_TOOBIG (out untouched) when it does not fit. */
int str_copyn(char *out, size_t outlen, const char *s, size_t n)
    MOAT_MUST_CHECK;

#endif
