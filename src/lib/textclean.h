/*
 * textclean.h - text from an untrusted source (a workspace, a registry)
 * made safe to show in a terminal, a log or an event stream.
 *
 * Uses only libc, so the statically linked moat-agent shares it.
 */
#ifndef MOAT_TEXTCLEAN_H
#define MOAT_TEXTCLEAN_H

#include <stddef.h>

/*
 * Copies len bytes of untrusted text into out (outlen bytes, NUL added),
 * keeping printable ASCII, tab, newline and well-formed UTF-8 other than
 * C1 controls. Terminal escape sequences (CSI, OSC and the other string
 * sequences, two-byte escapes) are removed whole; every other control
 * character, DEL and malformed UTF-8 is dropped. Returns the length
 * written.
 */
size_t text_clean(const char *in, size_t len, char *out, size_t outlen);

#endif
