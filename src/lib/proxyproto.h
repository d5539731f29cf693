/*
 * proxyproto.h - parser for the PROXY protocol, versions 1 and 2.
 *
 * A load balancer that does not terminate TLS prepends one PROXY header to a
 * TCP connection to say who the client really is. This module only parses:
 * which peers may send a header is decided by the caller (http.c). It takes
 * untrusted bytes and has a fuzz target.
 */
#ifndef MOAT_PROXYPROTO_H
#define MOAT_PROXYPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "errors.h"

struct proxyproto_result {
	int version;			/* 1 or 2 */
	bool local;			/* v2 LOCAL or v1 UNKNOWN: keep the peer address */
	struct sockaddr_storage src;	/* the client, valid unless local */
	struct sockaddr_storage dst;
	size_t header_len;		/* bytes to consume */
};

/* Parses the start of data. Returns 0 and fills *res when a complete header
 * is there, MOAT_ERR_AGAIN when more bytes are needed (no more than
 * PROXYPROTO_MAX_HEADER, larger headers are refused), MOAT_ERR_PARSE when the bytes are not a valid
 * header (connection must be refused). */
#define PROXYPROTO_MAX_HEADER 4096	/* v2 with TLVs; v1 is at most 107 */
int proxyproto_parse(const uint8_t *data, size_t len,
    struct proxyproto_result *res) MOAT_MUST_CHECK;

#endif
