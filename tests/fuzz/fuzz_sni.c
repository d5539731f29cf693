/*
 * fuzz_sni.c - libFuzzer target for sni_parse() (src/proxy/sni.c): the
 * TLS ClientHello a client sends first through a CONNECT tunnel. Checks
 * that a name it returns is a valid lower-case host name, and that every
 * shorter prefix of an input it accepted asks for more (never a different
 * answer), as the relay feeds it bytes as they arrive.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sni.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char sni[SNI_NAME_MAX];
	int r = sni_parse(data, size, sni, sizeof(sni));

	if (r != 0 && r != MOAT_ERR_AGAIN && r != MOAT_ERR_NOTFOUND &&
	    r != MOAT_ERR_PARSE && r != MOAT_ERR_TOOBIG)
		abort();
	if (r != 0)
		return 0;
	for (const char *p = sni; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.' || *p == '_'))
			abort();
	if (strlen(sni) > 253)
		abort();
	/* A few prefixes (all of them would be quadratic). */
	for (size_t cut = 1; cut < size; cut += 1 + size / 16) {
		char s2[SNI_NAME_MAX];
		uint8_t *p = malloc(cut);
		int r2;

		if (p == NULL)
			return 0;
		memcpy(p, data, cut);
		r2 = sni_parse(p, cut, s2, sizeof(s2));
		free(p);
		if (r2 != MOAT_ERR_AGAIN && r2 != 0)
			abort();
	}
	return 0;
}
