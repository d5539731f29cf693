/*
 * fuzz_envelope.c - libFuzzer target for sealed values (secrets/envelope.c):
 * the input, as a string, is opened, its KEK id read and re-wrapped with a
 * fixed keyring (k1: 16 bytes, k2: 32 bytes and primary, "2026.01": 32
 * bytes). Checks that the three agree on what is well-formed, that a
 * re-wrapped value names the primary and opens to the same plaintext, and
 * that nothing opens under a record other than ("c", "i", "f").
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "secrets/envelope.h"
#include "secrets/keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char keyring[] =
    "{\"primary\": \"k2\", \"keys\": ["
    "{\"id\": \"k1\", \"key\": \"AQEBAQEBAQEBAQEBAQEBAQ==\"},"
    "{\"id\": \"k2\", \"key\": \"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\"},"
    "{\"id\": \"2026.01\", \"key\": "
    "\"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\"}]}";

static struct keyset *
fixed_keyset(void)
{
	static struct keyset *ks;	/* built once, kept for the run */
	char err[256];

	if (ks == NULL && keyring_parse((const uint8_t *)keyring,
	    strlen(keyring), &ks, err, sizeof(err)) != 0)
		__builtin_trap();
	return ks;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keyset *ks = fixed_keyset();
	uint8_t *p1 = NULL, *p2 = NULL, *p3 = NULL;
	size_t l1 = 0, l2 = 0, l3 = 0;
	char *s, *w = NULL, kid[80];
	int ro, rk, rw;

	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	ro = envelope_open(ks, "c", "i", "f", s, &p1, &l1);
	rk = envelope_kek_id(s, kid, sizeof(kid));
	rw = envelope_rewrap(ks, s, &w);
	if (ro != 0 && p1 != NULL)
		__builtin_trap();
	/* Well-formed for one means well-formed for all. */
	if ((ro == MOAT_ERR_PARSE) != (rk == MOAT_ERR_PARSE) ||
	    (rk == MOAT_ERR_PARSE) != (rw == MOAT_ERR_PARSE))
		__builtin_trap();
	if (ro == 0) {
		if (p1[l1] != '\0')
			__builtin_trap();
		/* Bound to its record. */
		if (envelope_open(ks, "c", "i", "g", s, &p3, &l3) == 0)
			__builtin_trap();
	}
	if (rw == 0 && w != NULL) {
		if (envelope_kek_id(w, kid, sizeof(kid)) != 0 ||
		    strcmp(kid, "k2") != 0)
			__builtin_trap();
		/* Same plaintext before and after, or both refused. */
		if ((envelope_open(ks, "c", "i", "f", w, &p2, &l2) == 0) !=
		    (ro == 0))
			__builtin_trap();
		if (ro == 0 && (l1 != l2 || memcmp(p1, p2, l1) != 0))
			__builtin_trap();
	}
	envelope_free(p1, l1);
	envelope_free(p2, l2);
	envelope_free(p3, l3);
	free(w);
	free(s);
	return 0;
}
