/*
 * digest.c - SHA-256 as lowercase hex (digest.h).
 */
#include <openssl/evp.h>

#include "digest.h"

int
sha256_hex(const void *p, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[32];
	unsigned int mdlen = 0;

	out[0] = '\0';
	if (EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != sizeof(md))
		return MOAT_ERR_CRYPTO;
	for (size_t i = 0; i < sizeof(md); i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	return 0;
}
