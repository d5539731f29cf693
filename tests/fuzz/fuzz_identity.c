/*
 * fuzz_identity.c - libFuzzer target for the parts of identity that read
 * untrusted strings before any lookup: the name rule, the password rules,
 * the shape check of an Authorization bearer or session cookie, and the
 * throttle key built from a login name and a client address.
 *
 * Input: "NAME\nSECOND" (SECOND may be absent). Checks the promises: an
 * accepted name matches the DESIGN.md rule exactly (re-checked here by a
 * second, independent reading), a refusal always says why, a bearer classified as a token or a JWT has that
 * exact shape, and a throttle key is bounded and case-folded.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity/identity.h"
#include "identity/identity_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* [a-z0-9]([a-z0-9-]{0,18}[a-z0-9])? without "--", read another way. */
static bool
name_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (n < 1 || n > 20)
		return false;
	for (i = 0; i < n; i++) {
		bool alnum = (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9');

		if (!alnum && !(s[i] == '-' && i > 0 && i < n - 1 &&
		    s[i - 1] != '-'))
			return false;
	}
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *second, err[256], key[IDENTITY_THROTTLE_KEY_MAX];
	enum identity_bearer_kind kind;
	size_t i, n;
	int r;

	if (size > 4096)
		return 0;
	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	second = strchr(buf, '\n');
	if (second != NULL)
		*second++ = '\0';

	/* Names. */
	err[0] = '\0';
	r = identity_check_name(buf, false, err, sizeof(err));
	if ((r == 0) != name_ok(buf) || (r != 0 && err[0] == '\0'))
		__builtin_trap();
	if (identity_check_name(buf, true, NULL, 0) == 0 && r != 0)
		__builtin_trap();	/* reserved only ever refuses more */

	/* Passwords: a refusal says why. */
	err[0] = '\0';
	r = identity_check_password(buf, second, err, sizeof(err));
	if (r != 0 && err[0] == '\0')
		__builtin_trap();
	if (r == 0 && strlen(buf) < 12)
		__builtin_trap();

	/* Bearer shapes, over the whole input (NULs included). */
	kind = identity__bearer_kind((const char *)data, size);
	if (kind == IDENTITY_BEARER_TOKEN &&
	    (size != IDENTITY_TOKEN_LEN || memcmp(data, "moat_", 5) != 0))
		__builtin_trap();
	if (kind == IDENTITY_BEARER_JWT) {
		for (i = 0, n = 0; i < size; i++) {
			if (data[i] == '.')
				n++;
			else if (data[i] == '\0' || data[i] == ' ')
				__builtin_trap();
		}
		if (n != 2 || data[0] == '.' || data[size - 1] == '.')
			__builtin_trap();
	}

	/* Throttle keys. */
	if (identity__throttle_key(buf, second, key, sizeof(key)) == 0) {
		if (strlen(key) >= sizeof(key) || strchr(key, '\n') == NULL)
			__builtin_trap();
		for (i = 0; key[i] != '\n'; i++)
			if (key[i] >= 'A' && key[i] <= 'Z')
				__builtin_trap();
	}
	free(buf);
	return 0;
}
