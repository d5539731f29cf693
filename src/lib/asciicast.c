/*
 * asciicast.c - the asciicast v2 encoder of session recordings (see
 * asciicast.h).
 *
 * Session bytes are decoded as UTF-8 with the "maximal subpart" rule of
 * the Unicode standard (section 3.9, as Python's and WHATWG's decoders
 * do): every ill-formed subsequence that is a prefix of a well-formed
 * character becomes one U+FFFD, every other ill-formed byte one U+FFFD.
 * A prefix cut by the end of a packet is held back (at most 3 bytes per
 * stream) until the next packet of the same stream completes or breaks
 * it, so the result does not depend on how the bytes were packetized.
 *
 * JSON escaping is done by hand: '"', '\\', every C0 control character
 * and DEL (\u00XX or the short forms), and U+2028/U+2029 (which older
 * JavaScript parsers refuse in strings) are escaped; all other
 * well-formed UTF-8 is copied as is.
 *
 * Bounds: one event carries at most ASCIICAST_EVENT_IN input bytes (a
 * larger packet becomes several events with the same time), so a line is
 * at most 6 * ASCIICAST_EVENT_IN plus a few dozen bytes. Every call
 * either appends all its lines to out or leaves out and the held-back
 * state unchanged.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "asciicast.h"
#include "textclean.h"

#define ASCIICAST_EVENT_IN 8192		/* input bytes per event */
#define ASCIICAST_ENV_MAX 128		/* TERM and SHELL, bytes */
#define ASCIICAST_DEFAULT_W 80
#define ASCIICAST_DEFAULT_H 24
#define ASCIICAST_DIM_MAX 10000

struct asciicast_stream {
	uint8_t held[4];
	size_t nheld;
};

struct asciicast {
	double start;
	struct asciicast_stream out;	/* 'o' */
	struct asciicast_stream in;	/* 'i' */
};

int
asciicast_new(struct asciicast **out, double start)
{
	struct asciicast *a;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return MOAT_ERR_NOMEM;
	a->start = start;
	*out = a;
	return 0;
}

void
asciicast_free(struct asciicast *a)
{
	if (a == NULL)
		return;
	explicit_bzero(a, sizeof(*a));
	free(a);
}

/* The number of bytes of the well-formed character starting at p[0..n), or
 * 0 when p[0..n) is a proper prefix of one (more bytes needed), or -k when
 * the first k bytes are a maximal ill-formed subpart (one U+FFFD). */
static int
asciicast_utf8_len(const uint8_t *p, size_t n)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 2;
	else if (c >= 0xe0 && c <= 0xef)
		need = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		need = 4;
	else
		return -1;
	/* The second byte's range depends on the lead (Table 3-7). */
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	for (i = 1; i < need; i++) {
		if (i >= n)
			return 0;
		if (p[i] < lo || p[i] > hi)
			return -(int)i;
		lo = 0x80;
		hi = 0xbf;
	}
	return (int)need;
}

/* Appends the JSON string body (no quotes) for one well-formed character
 * of len bytes at p. */
static int
asciicast_put_char(struct buf *b, const uint8_t *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	char esc[8];

	if (len == 1) {
		uint8_t c = p[0];

		switch (c) {
		case '"':
			return buf_append(b, "\\\"", 2);
		case '\\':
			return buf_append(b, "\\\\", 2);
		case '\n':
			return buf_append(b, "\\n", 2);
		case '\r':
			return buf_append(b, "\\r", 2);
		case '\t':
			return buf_append(b, "\\t", 2);
		case '\b':
			return buf_append(b, "\\b", 2);
		case '\f':
			return buf_append(b, "\\f", 2);
		default:
			break;
		}
		if (c < 0x20 || c == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			return buf_append(b, esc, 6);
		}
		return buf_append(b, p, 1);
	}
	/* U+2028 and U+2029: E2 80 A8/A9. */
	if (len == 3 && p[0] == 0xe2 && p[1] == 0x80 &&
	    (p[2] == 0xa8 || p[2] == 0xa9))
		return buf_append(b, p[2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
	return buf_append(b, p, len);
}

static int
asciicast_put_fffd(struct buf *b)
{
	return buf_append(b, "\xef\xbf\xbd", 3);
}

/* Escapes untrusted text that is already well-formed UTF-8 (or replaces
 * what is not), with no holding back. */
static int
asciicast_put_text(struct buf *b, const uint8_t *p, size_t n)
{
	size_t i = 0;
	int k, r;

	while (i < n) {
		k = asciicast_utf8_len(p + i, n - i);
		if (k > 0) {
			if ((r = asciicast_put_char(b, p + i, (size_t)k)) != 0)
				return r;
			i += (size_t)k;
		} else {
			if ((r = asciicast_put_fffd(b)) != 0)
				return r;
			i += k == 0 ? n - i : (size_t)-k;
		}
	}
	return 0;
}

/* "[T, " with T the seconds since start, 6 decimals, never negative.
 * Integer formatting: independent of the locale. */
static int
asciicast_put_time(const struct asciicast *a, struct buf *b, double now)
{
	double t = now - a->start;
	long long us;

	if (!(t > 0.0))		/* also NaN */
		t = 0.0;
	if (t > 1e12)
		t = 1e12;
	us = (long long)(t * 1e6 + 0.5);
	return buf_appendf(b, "[%lld.%06lld, ", us / 1000000, us % 1000000);
}

static struct asciicast_stream *
asciicast_stream(struct asciicast *a, char code)
{
	if (code == 'o')
		return &a->out;
	if (code == 'i')
		return &a->in;
	return NULL;
}

/* An event being written into tmp: opened at its first character, closed
 * after ASCIICAST_EVENT_IN input bytes or at the end. */
struct asciicast_ev {
	struct asciicast *a;
	struct buf *tmp;
	double now;
	char code;
	bool open;
	size_t in;
};

/* Appends one decoded unit: a character of k > 0 bytes at p, or (k < 0)
 * one U+FFFD for -k ill-formed bytes. */
static int
asciicast_ev_put(struct asciicast_ev *e, const uint8_t *p, int k)
{
	int r;

	if (!e->open) {
		if ((r = asciicast_put_time(e->a, e->tmp, e->now)) != 0 ||
		    (r = buf_appendf(e->tmp, "\"%c\", \"", e->code)) != 0)
			return r;
		e->open = true;
		e->in = 0;
	}
	r = k > 0 ? asciicast_put_char(e->tmp, p, (size_t)k) :
	    asciicast_put_fffd(e->tmp);
	if (r != 0)
		return r;
	e->in += k > 0 ? (size_t)k : (size_t)-k;
	if (e->in >= ASCIICAST_EVENT_IN) {
		if ((r = buf_append(e->tmp, "\"]\n", 3)) != 0)
			return r;
		e->open = false;
	}
	return 0;
}

/*
 * Encodes the held-back bytes of s followed by data[0..len) into whole
 * lines in tmp. The new held-back tail goes to held and *nheld (the
 * caller commits it once tmp reached out).
 */
static int
asciicast_encode(struct asciicast_ev *e, const struct asciicast_stream *s,
    const uint8_t *data, size_t len, uint8_t held[8], size_t *nheld)
{
	uint8_t join[8];
	size_t hn = s->nheld, i = 0, add, used;
	int k, r;

	*nheld = 0;
	memcpy(join, s->held, hn);
	/* The held bytes (a proper prefix of a character, at most 3) with
	 * just enough new ones to decide their fate: a character is at most
	 * 4 bytes. */
	while (hn > 0) {
		add = len < 4 ? len : 4;
		memcpy(join + hn, data, add);
		k = asciicast_utf8_len(join, hn + add);
		if (k == 0) {
			/* Still incomplete, so all of data is in join. */
			memcpy(held, join, hn + add);
			*nheld = hn + add;
			return 0;
		}
		if ((r = asciicast_ev_put(e, join, k)) != 0)
			return r;
		used = k > 0 ? (size_t)k : (size_t)-k;
		if (used >= hn) {
			i = used - hn;
			hn = 0;
		} else {
			memmove(join, join + used, hn - used);
			hn -= used;
		}
	}
	while (i < len) {
		k = asciicast_utf8_len(data + i, len - i);
		if (k == 0) {
			memcpy(held, data + i, len - i);
			*nheld = len - i;
			break;
		}
		if ((r = asciicast_ev_put(e, data + i, k)) != 0)
			return r;
		i += k > 0 ? (size_t)k : (size_t)-k;
	}
	if (e->open && (r = buf_append(e->tmp, "\"]\n", 3)) != 0)
		return r;
	e->open = false;
	return 0;
}

int
asciicast_data(struct asciicast *a, struct buf *out, double now, char code,
    const uint8_t *data, size_t len)
{
	struct asciicast_stream *s;
	struct asciicast_ev e = { 0 };
	struct buf tmp;
	uint8_t held[8];
	size_t nheld = 0;
	int r;

	if (a == NULL || out == NULL || (data == NULL && len > 0) ||
	    (s = asciicast_stream(a, code)) == NULL)
		return MOAT_ERR_INVAL;
	if (len > (SIZE_MAX - 64) / 8)
		return MOAT_ERR_TOOBIG;
	buf_init(&tmp, 8 * len + 64 + 64 * (len / ASCIICAST_EVENT_IN + 2));
	e.a = a;
	e.tmp = &tmp;
	e.now = now;
	e.code = code;
	if ((r = asciicast_encode(&e, s, data, len, held, &nheld)) != 0)
		goto out;
	if (tmp.len > 0 && (r = buf_append(out, tmp.data, tmp.len)) != 0)
		goto out;
	memcpy(s->held, held, nheld);
	s->nheld = nheld;
	r = 0;
out:
	buf_free_wipe(&tmp);
	return r;
}

int
asciicast_resize(struct asciicast *a, struct buf *out, double now,
    unsigned cols, unsigned rows)
{
	struct buf tmp;
	int r;

	if (a == NULL || out == NULL)
		return MOAT_ERR_INVAL;
	buf_init(&tmp, 128);
	if ((r = asciicast_put_time(a, &tmp, now)) != 0 ||
	    (r = buf_appendf(&tmp, "\"r\", \"%ux%u\"]\n", cols, rows)) != 0 ||
	    (r = buf_append(out, tmp.data, tmp.len)) != 0)
		goto out;
	r = 0;
out:
	buf_free(&tmp);
	return r;
}

int
asciicast_finish(struct asciicast *a, struct buf *out, double now)
{
	static const char codes[2] = { 'o', 'i' };
	struct buf tmp;
	int r;

	if (a == NULL || out == NULL)
		return MOAT_ERR_INVAL;
	buf_init(&tmp, 256);
	for (size_t i = 0; i < sizeof(codes); i++) {
		struct asciicast_stream *s = asciicast_stream(a, codes[i]);

		if (s->nheld == 0)
			continue;
		if ((r = asciicast_put_time(a, &tmp, now)) != 0 ||
		    (r = buf_appendf(&tmp, "\"%c\", \"", codes[i])) != 0 ||
		    (r = asciicast_put_fffd(&tmp)) != 0 ||
		    (r = buf_append(&tmp, "\"]\n", 3)) != 0)
			goto out;
	}
	if (tmp.len > 0 && (r = buf_append(out, tmp.data, tmp.len)) != 0)
		goto out;
	a->out.nheld = 0;
	a->in.nheld = 0;
	r = 0;
out:
	buf_free_wipe(&tmp);
	return r;
}

/* One env value: bounded, cleaned of control characters and escapes. */
static int
asciicast_put_env(struct buf *b, const char *name, const char *value,
    bool *first)
{
	char clean[ASCIICAST_ENV_MAX + 1];
	size_t n, cl;
	int r;

	if (value == NULL)
		return 0;
	n = strnlen(value, ASCIICAST_ENV_MAX);
	cl = text_clean(value, n, clean, sizeof(clean));
	/* text_clean keeps tab and newline: not wanted in a name. */
	for (size_t i = 0; i < cl; i++)
		if (clean[i] == '\t' || clean[i] == '\n')
			clean[i] = ' ';
	if ((r = buf_appendf(b, "%s\"%s\": \"", *first ? "" : ", ", name)) != 0 ||
	    (r = asciicast_put_text(b, (const uint8_t *)clean, cl)) != 0 ||
	    (r = buf_append(b, "\"", 1)) != 0)
		return r;
	*first = false;
	return 0;
}

int
asciicast_header(struct buf *out, unsigned width, unsigned height,
    time_t timestamp, const char *term, const char *shell)
{
	struct buf tmp;
	bool first = true;
	int r;

	if (out == NULL)
		return MOAT_ERR_INVAL;
	if (width == 0 || width > ASCIICAST_DIM_MAX)
		width = ASCIICAST_DEFAULT_W;
	if (height == 0 || height > ASCIICAST_DIM_MAX)
		height = ASCIICAST_DEFAULT_H;
	if (timestamp < 0)
		timestamp = 0;
	buf_init(&tmp, 1024);
	if ((r = buf_appendf(&tmp, "{\"version\": 2, \"width\": %u, "
	    "\"height\": %u, \"timestamp\": %lld, \"env\": {", width, height,
	    (long long)timestamp)) != 0 ||
	    (r = asciicast_put_env(&tmp, "TERM", term, &first)) != 0 ||
	    (r = asciicast_put_env(&tmp, "SHELL", shell, &first)) != 0 ||
	    (r = buf_append(&tmp, "}}\n", 3)) != 0 ||
	    (r = buf_append(out, tmp.data, tmp.len)) != 0)
		goto out;
	r = 0;
out:
	buf_free(&tmp);
	return r;
}
