/*
 * sni.h - the server_name a TLS ClientHello asks for, read from the first
 * bytes a client sends through a CONNECT tunnel.
 *
 * moat-proxy compares it with the host named in the CONNECT, so that a
 * tunnel opened to an allowed name cannot carry a TLS session for another
 * name (domain fronting on a shared front end). Parsing is strict: a
 * ClientHello that some server might read differently from us (duplicate
 * extensions, several host names, trailing bytes, a bad host name) is
 * malformed and the tunnel is refused. A ClientHello split over several
 * handshake records is reassembled.
 *
 * Untrusted input: fuzz target tests/fuzz/fuzz_sni.c.
 */
#ifndef MOAT_PROXY_SNI_H
#define MOAT_PROXY_SNI_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/* The most bytes sni_parse() will wait for before giving up. */
#define SNI_MAX_HELLO (16 * 1024)
/* A host name (at most 253 characters) and its NUL. */
#define SNI_NAME_MAX 256

/* data, len: the first bytes a client sent (borrowed).
 *   0                  a ClientHello: sni (caller's buffer of snilen bytes)
 *                      holds its host_name lower-cased, or "" when it has
 *                      no server_name extension
 *   MOAT_ERR_AGAIN     the start of a ClientHello: call again with more
 *   MOAT_ERR_NOTFOUND  not a TLS handshake record: some other protocol
 *   MOAT_ERR_PARSE     a malformed ClientHello or host name
 *   MOAT_ERR_TOOBIG    it would not be complete within SNI_MAX_HELLO bytes
 *   MOAT_ERR_INVAL     snilen < SNI_NAME_MAX */
int sni_parse(const uint8_t *data, size_t len, char *sni, size_t snilen)
    MOAT_MUST_CHECK;

#endif
