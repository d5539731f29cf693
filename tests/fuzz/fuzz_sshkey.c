/*
 * fuzz_sshkey.c - libFuzzer target for OpenSSH public key lines: feeds
 * sshkey_parse with the raw input. On refusal the error text must be
 * filled and nothing allocated; on success the canonical line must parse
 * again to the same type, size and fingerprint, and the fingerprint and
 * comment must be bounded, NUL-terminated text.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity/sshkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sshkey_info a, b;
	char err[256];
	int r;

	err[0] = '\0';
	r = sshkey_parse((const char *)data, size, &a, err, sizeof(err));
	if (r != 0) {
		if (a.canonical != NULL || err[0] == '\0')
			__builtin_trap();
		return 0;
	}
	if (a.canonical == NULL || strncmp(a.fingerprint, "SHA256:", 7) != 0 ||
	    strlen(a.fingerprint) != 50 ||
	    strnlen(a.comment, sizeof(a.comment)) == sizeof(a.comment) ||
	    a.bits < 256)
		__builtin_trap();
	if (sshkey_parse(a.canonical, strlen(a.canonical), &b, err,
	    sizeof(err)) != 0)
		__builtin_trap();
	if (strcmp(a.type, b.type) != 0 || a.bits != b.bits ||
	    strcmp(a.fingerprint, b.fingerprint) != 0 ||
	    strcmp(a.canonical, b.canonical) != 0 || b.comment[0] != '\0')
		__builtin_trap();
	free(a.canonical);
	free(b.canonical);
	return 0;
}
