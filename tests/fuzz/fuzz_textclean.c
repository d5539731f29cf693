/*
 * fuzz_textclean.c - libFuzzer target for text_clean() (textclean.h),
 * which every byte of workspace output and registry progress passes
 * through before it reaches an event stream, a log or a terminal.
 *
 * Checks on the output: NUL-terminated within the buffer, never longer
 * than the input, no ESC or other C0 control but tab and newline, no DEL,
 * no C1 control, well-formed UTF-8 throughout (so jansson takes it), and
 * cleaning it again changes nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "textclean.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t outlen = size + 1, n, m;
	char *out = malloc(outlen), *again = malloc(outlen);
	json_t *s;

	if (out == NULL || again == NULL)
		goto done;
	n = text_clean((const char *)data, size, out, outlen);
	if (n > size || out[n] != '\0' || strlen(out) != n)
		__builtin_trap();
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7f)
			__builtin_trap();
		if (c == 0xc2 && i + 1 < n &&
		    (unsigned char)out[i + 1] >= 0x80 &&
		    (unsigned char)out[i + 1] < 0xa0)
			__builtin_trap();
	}
	if ((s = json_stringn(out, n)) == NULL)
		__builtin_trap();	/* not valid UTF-8 */
	json_decref(s);
	m = text_clean(out, n, again, outlen);
	if (m != n || memcmp(out, again, n) != 0)
		__builtin_trap();
	/* A small buffer truncates at a character boundary. */
	if (size > 4) {
		char small[5];

		n = text_clean((const char *)data, size, small, sizeof(small));
		if (n >= sizeof(small) || small[n] != '\0' ||
		    (s = json_stringn(small, n)) == NULL)
			__builtin_trap();
		json_decref(s);
	}
done:
	free(out);
	free(again);
	return 0;
}
