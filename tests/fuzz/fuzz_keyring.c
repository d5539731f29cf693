/*
 * fuzz_keyring.c - libFuzzer target for keyring.json parsing
 * (keyring_parse in secrets/keys.c): any input either yields a snapshot
 * whose primary KEK exists with 16 or 32 bytes, or an error message that
 * starts with "keyring.json: ".
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "secrets/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keyset *ks = NULL;
	const uint8_t *k;
	const char *primary;
	char err[256];
	size_t len = 0;

	err[0] = '\0';
	if (keyring_parse(data, size, &ks, err, sizeof(err)) != 0) {
		if (ks != NULL || strncmp(err, "keyring.json: ", 14) != 0)
			__builtin_trap();
		return 0;
	}
	primary = keyset_primary_kek_id(ks);
	if (primary == NULL || !keys_id_valid(primary))
		__builtin_trap();
	k = keyset_kek(ks, primary, &len);
	if (k == NULL || (len != 16 && len != 32))
		__builtin_trap();
	if (keyset_jwt_signing_key(ks) != NULL || keyset_jwks_json(ks) != NULL)
		__builtin_trap();
	keyset_unref(ks);
	return 0;
}
