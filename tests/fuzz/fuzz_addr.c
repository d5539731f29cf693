/*
 * fuzz_addr.c - libFuzzer target for the IP literal normalizer
 * (src/proxy/addr.c). The input is a host as a request would carry it.
 * Invariants: a literal formats to canonical text that parses back to the
 * same address; the special-purpose check names a range exactly when it
 * says special; a refused or name result leaves no address behind. The
 * input is also read as a CIDR and checked against itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct addr a, again, net;
	struct sockaddr_storage ss;
	const char *range = NULL;
	char host[512], text[64];
	unsigned prefix;
	uint16_t port = 0;
	int r;

	if (size >= sizeof(host))
		return 0;
	memcpy(host, data, size);
	host[size] = '\0';
	r = addr_parse_host(host, &a);
	if (r != 0) {
		if (r != MOAT_ERR_NOTFOUND && r != MOAT_ERR_PARSE)
			abort();
		if (a.family != 0)
			abort();
	} else {
		if (a.family != AF_INET && a.family != AF_INET6)
			abort();
		if (addr_is_special(&a, &range) != (range != NULL))
			abort();
		addr_format(&a, text, sizeof(text));
		if (text[0] == '\0')
			abort();
		if (addr_parse_host(text, &again) != 0 ||
		    memcmp(&a, &again, sizeof(a)) != 0)
			abort();
		if (addr_to_sockaddr(&a, 443, &ss) == 0 ||
		    addr_from_sockaddr((struct sockaddr *)&ss, &again,
		    &port) != 0 || port != 443 ||
		    memcmp(&a, &again, sizeof(a)) != 0)
			abort();
		if (!addr_in_net(&a, &a, a.family == AF_INET ? 32 : 128))
			abort();
	}
	if (addr_parse_cidr(host, &net, &prefix) == 0) {
		if (prefix > (net.family == AF_INET ? 32u : 128u))
			abort();
		if (!addr_in_net(&net, &net, prefix))
			abort();
		(void)addr_is_special(&net, &range);
	}
	return 0;
}
