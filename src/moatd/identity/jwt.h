/*
 * jwt.h - ES256 JSON Web Tokens (RFC 7519) over cjose.
 *
 * Signing uses the keyset's current JWT key and puts its id in "kid".
 * Verification is strict and takes untrusted input (fuzz target): the
 * header must be {"alg":"ES256","typ":"JWT","kid":...} with a kid the
 * keyset knows ("none", HS256, RS256 and any other alg are refused, as is
 * a missing or unknown kid); the signature must verify; "exp" must be in the
 * future, "nbf" and "iat" (when present) not in the future, with
 * JWT_LEEWAY_S seconds of clock skew; "iss" must be "moat". Size-bounded
 * before parsing.
 */
#ifndef MOATD_JWT_H
#define MOATD_JWT_H

#include <stdint.h>

#include <jansson.h>

#include "errors.h"
#include "secrets/keys.h"

#define JWT_MAX_LEN 4096
#define JWT_LEEWAY_S 30

/* Signs claims (borrowed; "iss" and "iat" are added). *out: caller frees. */
int jwt_sign(const struct keyset *ks, const json_t *claims, int64_t now,
    char **out) MOAT_MUST_CHECK;

/* Verifies token at time now; *claims is a new reference. MOAT_ERR_PERM
 * for every reason a token is not acceptable (reason in err, for logs). */
int jwt_verify(const struct keyset *ks, const char *token, int64_t now,
    json_t **claims, char *err, size_t errlen) MOAT_MUST_CHECK;

#endif
