/*
 * textclean.c - untrusted text made safe to show (textclean.h). libc
 * only: moat-agent links it too.
 */
#include <stdint.h>
#include <string.h>

#include "textclean.h"

/* Length of a well-formed UTF-8 sequence at s (1..4), or 0. Overlongs,
 * surrogates and code points above U+10FFFF are malformed. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* Index just past the escape sequence starting with ESC at s[i]: CSI
 * (ESC [ parameters intermediates final), OSC and other strings (ESC ] P X
 * ^ _ ... up to BEL or ESC \\), or ESC plus one byte. A sequence cut off
 * at the end of the text is dropped whole. */
static size_t
skip_escape(const unsigned char *s, size_t len, size_t i)
{
	i++;
	if (i >= len)
		return len;
	if (s[i] == '[') {
		for (i++; i < len && s[i] >= 0x20 && s[i] <= 0x3f; i++)
			;
		return i < len && s[i] >= 0x40 && s[i] <= 0x7e ? i + 1 : i;
	}
	if (s[i] == ']' || s[i] == 'P' || s[i] == 'X' || s[i] == '^' ||
	    s[i] == '_') {
		for (i++; i < len; i++) {
			if (s[i] == 0x07)
				return i + 1;
			if (s[i] == 0x1b && i + 1 < len && s[i + 1] == '\\')
				return i + 2;
		}
		return len;
	}
	return i + 1;
}

size_t
text_clean(const char *in, size_t len, char *out, size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t o = 0, i = 0;

	if (outlen == 0)
		return 0;
	while (i < len) {
		size_t l;

		if (s[i] == 0x1b) {		/* a terminal escape sequence */
			i = skip_escape(s, len, i);
			continue;
		}
		l = utf8_seq(s + i, len - i);

		if (l == 0) {
			i++;
			continue;
		}
		if (l == 1) {
			unsigned char ch = s[i];

			if (!((ch >= 0x20 && ch < 0x7f) || ch == '\n' ||
			    ch == '\t')) {
				i++;
				continue;
			}
		} else if (l == 2 && s[i] == 0xc2 && s[i + 1] < 0xa0) {
			i += 2;		/* C1 control U+0080..U+009F */
			continue;
		}
		if (o + l >= outlen)
			break;
		memcpy(out + o, s + i, l);
		o += l;
		i += l;
	}
	out[o] = '\0';
	return o;
}
