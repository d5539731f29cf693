/*
 * uri.h - character classes of RFC 3986 shared by every URL and path
 * parser in moat (the HTTP router, policy URL rules, the egress proxy's
 * path normalizer, the CLI, the audit chain's hex fields).
 */
#ifndef MOAT_URI_H
#define MOAT_URI_H

#include <stdbool.h>
#include <stddef.h>

/* The value of one hexadecimal digit (either case), or -1. */
int uri_hexval(int c);

/* RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
bool uri_unreserved(int c);

/* A character kept as it is in a URL path: pchar (unreserved, sub-delims,
 * ":" and "@") or "/". Everything else is percent-encoded. */
bool uri_path_char(int c);

/* A lower-case DNS label (RFC 1123): 1 to 63 of [a-z0-9-], not starting or
 * ending with '-'. Workspace and user names in URLs, SSH logins and host
 * aliases are such labels. */
bool uri_dns_label(const char *s, size_t n);

#endif
