/*
 * digest.h - SHA-256 as lowercase hex, for the places that name content by
 * its hash (API token hashes, the state moatd pushes to moat-proxy and the
 * digest both sides compare).
 */
#ifndef MOAT_DIGEST_H
#define MOAT_DIGEST_H

#include <stddef.h>

#include "errors.h"

/* out gets 64 hex digits and a NUL: 0, or MOAT_ERR_CRYPTO with out "" if
 * OpenSSL failed (out of memory). */
int sha256_hex(const void *p, size_t len, char out[65]) MOAT_MUST_CHECK;

#endif
