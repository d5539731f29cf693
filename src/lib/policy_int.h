/*
 * policy_int.h - helpers shared by the policy module's files (policy.c,
 * policy_host.c, settings.c); not part of the module's face.
 *
 * The normalizers take one untrusted string and either write its canonical
 * form into a caller-supplied buffer or fill err with a short English reason
 * (never quoting the input) and return MOAT_ERR_INVAL.
 */
#ifndef MOATD_POLICY_INT_H
#define MOATD_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "errors.h"

#define POLICY_HOST_MAX 253	/* bytes in a host name, without "*." */
#define POLICY_URL_MAX 2048	/* bytes in a url rule, input and output */
#define POLICY_PATH_MAX 192	/* bytes of a JSON path in an error */

/* Fills path and err (each may be NULL) and returns MOAT_ERR_INVAL. */
int policy__fail(char *path, size_t pathlen, const char *where, char *err,
    size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Writes "base.key" (or "key" when base is empty) into out, with the key
 * made printable ASCII and cut to 64 bytes. */
void policy__path_key(char *out, size_t outlen, const char *base,
    const char *key);

/* True when s follows the name rule of DESIGN.md section 3:
 * [a-z0-9]([a-z0-9-]{0,18}[a-z0-9])? without "--". */
bool policy__name_ok(const char *s, size_t len);

/* A host name: lower-cased, trailing dot removed, non-ASCII labels turned
 * into punycode (IDNA2008 with UTS #46 non-transitional mapping), then
 * checked as LDH labels of 1..63 bytes, at most 253 in all. A leading "*."
 * is kept when wildcard is true and refused otherwise; IP literals and
 * names that end in a numeric label are refused. out needs
 * POLICY_HOST_MAX + 3 bytes. */
int policy__host(const char *in, size_t len, bool wildcard, char *out,
    size_t outlen, char *err, size_t errlen) MOAT_MUST_CHECK;

/* "ADDR/PREFIX" (or a bare address, taken as one host) for IPv4 or IPv6,
 * written back as inet_ntop text with its prefix. Host bits must be zero;
 * IPv4-mapped IPv6 ranges are refused in favour of the IPv4 form. */
int policy__cidr(const char *in, size_t len, char *out, size_t outlen,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* An "http://HOST[:PORT]/PATH" prefix, normalized: scheme and host lower
 * case, port 80 removed, path percent-encoding made canonical, dot
 * segments resolved. Query, fragment, user information, backslashes and
 * the encodings %2e, %2f, %5c are refused. out needs POLICY_URL_MAX + 1. */
int policy__url(const char *in, size_t len, char *out, size_t outlen,
    char *err, size_t errlen) MOAT_MUST_CHECK;

#endif
