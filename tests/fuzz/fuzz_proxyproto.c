/*
 * fuzz_proxyproto.c - libFuzzer target for proxyproto_parse(): any input
 * must give 0 (with a header length within the input and the maximum, and
 * addresses of a known family), MOAT_ERR_AGAIN (only below the maximum) or
 * MOAT_ERR_PARSE. Every prefix of an accepted header must ask for more.
 */
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "proxyproto.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxyproto_result res, res2;
	int r = proxyproto_parse(data, size, &res);

	if (r == 0) {
		if (res.header_len == 0 || res.header_len > size ||
		    res.header_len > PROXYPROTO_MAX_HEADER)
			abort();
		if (res.version != 1 && res.version != 2)
			abort();
		if (!res.local && ((res.src.ss_family != AF_INET &&
		    res.src.ss_family != AF_INET6) ||
		    res.src.ss_family != res.dst.ss_family))
			abort();
		/* The header alone parses the same; a byte less is not enough. */
		if (proxyproto_parse(data, res.header_len, &res2) != 0 ||
		    res2.header_len != res.header_len)
			abort();
		if (proxyproto_parse(data, res.header_len - 1, &res2) !=
		    MOAT_ERR_AGAIN)
			abort();
	} else if (r == MOAT_ERR_AGAIN) {
		if (size >= PROXYPROTO_MAX_HEADER)
			abort();
	} else if (r != MOAT_ERR_PARSE) {
		abort();
	}
	return 0;
}
