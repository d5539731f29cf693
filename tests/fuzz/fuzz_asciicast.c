/*
 * fuzz_asciicast.c - libFuzzer target for the asciicast v2 encoder
 * (asciicast.h), which every byte of a recorded SSH session passes
 * through.
 *
 * Input: byte 0 gives n (0..15), bytes 1..n are the chunking script (each
 * a packet size 1..128; bit 7 also inserts a resize event before the
 * packet), the rest is the session output, sent in packets cycling
 * through the script (one packet when the script is empty), then
 * asciicast_finish(). The bytes are also sent to the 'i' stream in
 * packets of a fixed size, interleaved.
 *
 * Checks: every line is one JSON array [number, string, string] (jansson
 * validates UTF-8), no raw control byte inside a line, and the data of
 * the "o" events (and of the "i" events) concatenated equals the input
 * decoded by an independent reference decoder that replaces each
 * maximal ill-formed subpart with U+FFFD.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "asciicast.h"
#include "buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* True when the m bytes at p (1 <= m <= L, the length the lead byte
 * announces) can begin a well-formed UTF-8 sequence of length L: the code
 * points reachable by completing them with continuation bytes form an
 * interval, which must meet the valid range for L outside the
 * surrogates. */
static bool
ref_prefix_ok(const uint8_t *p, size_t m, size_t L)
{
	static const uint32_t minv[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	static const uint32_t maxv[5] = { 0, 0x7f, 0x7ff, 0xffff, 0x10ffff };
	uint32_t lo, hi;

	for (size_t i = 1; i < m; i++)
		if ((p[i] & 0xc0) != 0x80)
			return false;
	lo = hi = L == 2 ? (p[0] & 0x1fu) : L == 3 ? (p[0] & 0x0fu) :
	    (p[0] & 0x07u);
	for (size_t i = 1; i < L; i++) {
		uint32_t b = i < m ? (p[i] & 0x3fu) : 0;

		lo = (lo << 6) | b;
		hi = (hi << 6) | (i < m ? b : 0x3fu);
	}
	if (hi < minv[L] || lo > maxv[L])
		return false;
	/* Only surrogates inside [lo, hi]? */
	if (lo >= 0xd800 && hi <= 0xdfff)
		return false;
	return true;
}

/* The reference decoder: appends the replaced text of p[0..n) to out. */
static void
ref_decode(const uint8_t *p, size_t n, struct buf *out)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		size_t L, m;

		if (c < 0x80) {
			if (buf_append(out, p + i, 1) != 0)
				abort();
			i++;
			continue;
		}
		L = (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 :
		    (c & 0xf8) == 0xf0 ? 4 : 0;
		/* The longest prefix that can still become a character. */
		m = 0;
		if (L != 0)
			for (size_t k = 1; k <= L && i + k <= n; k++)
				if (ref_prefix_ok(p + i, k, L))
					m = k;
		if (m == L && L != 0) {
			if (buf_append(out, p + i, L) != 0)
				abort();
			i += L;
		} else {
			if (buf_append(out, "\xef\xbf\xbd", 3) != 0)
				abort();
			i += m > 0 ? m : 1;
		}
	}
}

/* Checks every line of b and collects the data of 'o' and 'i' events. */
static void
check_lines(const struct buf *b, struct buf *o, struct buf *in)
{
	const char *p = (const char *)b->data, *end;

	if (b->len == 0)
		return;
	end = p + b->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		json_t *v, *d;
		const char *code;

		if (nl == NULL)
			__builtin_trap();	/* a line without its end */
		for (const char *q = p; q < nl; q++)
			if ((unsigned char)*q < 0x20)
				__builtin_trap();
		v = json_loadb(p, (size_t)(nl - p), JSON_ALLOW_NUL, NULL);
		if (v == NULL || !json_is_array(v) || json_array_size(v) != 3 ||
		    !json_is_number(json_array_get(v, 0)) ||
		    (code = json_string_value(json_array_get(v, 1))) == NULL ||
		    !json_is_string(d = json_array_get(v, 2)))
			__builtin_trap();
		if (strcmp(code, "o") == 0) {
			if (buf_append(o, json_string_value(d),
			    json_string_length(d)) != 0)
				abort();
		} else if (strcmp(code, "i") == 0) {
			if (buf_append(in, json_string_value(d),
			    json_string_length(d)) != 0)
				abort();
		} else if (strcmp(code, "r") != 0) {
			__builtin_trap();
		}
		json_decref(v);
		p = nl + 1;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct asciicast *a = NULL;
	struct buf out, got_o, got_i, want;
	const uint8_t *script, *payload;
	size_t ns, plen, off = 0, ioff = 0, k = 0;
	double t = 1.0;

	if (size == 0)
		return 0;
	ns = data[0] % 16;
	if (ns > size - 1)
		ns = size - 1;
	script = data + 1;
	payload = data + 1 + ns;
	plen = size - 1 - ns;
	buf_init(&out, 64 * size + 4096);
	buf_init(&got_o, 4 * size + 64);
	buf_init(&got_i, 4 * size + 64);
	buf_init(&want, 4 * size + 64);
	if (asciicast_new(&a, 0.5) != 0)
		goto done;
	while (off < plen) {
		size_t n = ns == 0 ? plen : (size_t)(script[k % ns] & 0x7f) + 1;

		if (ns > 0 && (script[k % ns] & 0x80) != 0 &&
		    asciicast_resize(a, &out, t, 80 + (unsigned)k % 50,
		    24 + (unsigned)k % 10) != 0)
			__builtin_trap();
		if (n > plen - off)
			n = plen - off;
		if (asciicast_data(a, &out, t, 'o', payload + off, n) != 0)
			__builtin_trap();
		off += n;
		/* The input stream: 3 bytes at a time. */
		if (ioff < plen) {
			size_t m = plen - ioff < 3 ? plen - ioff : 3;

			if (asciicast_data(a, &out, t, 'i', payload + ioff,
			    m) != 0)
				__builtin_trap();
			ioff += m;
		}
		k++;
		t += 0.001;
	}
	if (ioff < plen && asciicast_data(a, &out, t, 'i', payload + ioff,
	    plen - ioff) != 0)
		__builtin_trap();
	if (asciicast_finish(a, &out, t) != 0)
		__builtin_trap();
	check_lines(&out, &got_o, &got_i);
	ref_decode(payload, plen, &want);
	if (got_o.len != want.len ||
	    (want.len > 0 && memcmp(got_o.data, want.data, want.len) != 0))
		__builtin_trap();
	if (got_i.len != want.len ||
	    (want.len > 0 && memcmp(got_i.data, want.data, want.len) != 0))
		__builtin_trap();
done:
	asciicast_free(a);
	buf_free(&out);
	buf_free(&got_o);
	buf_free(&got_i);
	buf_free(&want);
	return 0;
}
