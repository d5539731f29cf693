/*
 * addr.h - IP addresses as the egress proxy sees them: literal parsing in
 * every spelling, and the special-purpose address check.
 *
 * A workspace may name a destination as an IP literal, and a literal may be
 * spelled many ways: "127.0.0.1", "127.1", "2130706433", "0x7f000001",
 * "0177.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[fe80::1%25eth0]". Every
 * spelling that some resolver or library would take as an address is
 * normalized here before any decision; a host that looks numeric but is
 * not a valid address in any spelling is refused rather than handed to DNS.
 *
 * The special-purpose check covers the IANA IPv4 and IPv6 Special-Purpose
 * Address Registries in full (this network, private, CGNAT, loopback,
 * link-local with cloud metadata 169.254.169.254, IETF protocol
 * assignments, documentation, benchmarking, multicast, reserved, broadcast;
 * IPv6 unspecified, loopback, IPv4-mapped and -translated, NAT64 64:ff9b::/96
 * and 64:ff9b:1::/48, discard, Teredo, ORCHID, documentation, 6to4
 * 2002::/16, unique local (with fd00:ec2::254), link-local, site-local,
 * multicast), and looks inside IPv4-embedding forms (mapped, NAT64, 6to4,
 * Teredo) at the IPv4 address they carry.
 *
 * Untrusted input: fuzz target.
 */
#ifndef MOAT_PROXY_ADDR_H
#define MOAT_PROXY_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "errors.h"

struct addr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t b[16];		/* network order; 4 bytes used for AF_INET */
};

/* host: as it appears in a request target or Host/CONNECT authority,
 * without port, with or without IPv6 brackets.
 *   0                  a literal, *out filled (IPv4-mapped IPv6 stays IPv6)
 *   MOAT_ERR_NOTFOUND  not a literal: a name, to be decided and resolved
 *   MOAT_ERR_PARSE     numeric-looking but invalid, or an IPv6 zone id:
 *                      refuse the request */
int addr_parse_host(const char *host, struct addr *out) MOAT_MUST_CHECK;

/* True when a lies in a special-purpose range; *range names it
 * ("loopback 127.0.0.0/8", "cloud metadata 169.254.169.254/32"). */
bool addr_is_special(const struct addr *a, const char **range);

/* CIDR text ("10.0.0.0/8", "2001:db8::/32") to network + prefix. */
int addr_parse_cidr(const char *cidr, struct addr *net, unsigned *prefix)
    MOAT_MUST_CHECK;
bool addr_in_net(const struct addr *a, const struct addr *net, unsigned prefix);

/* Canonical text: "1.2.3.4", "2001:db8::1" (no brackets). */
void addr_format(const struct addr *a, char *out, size_t outlen);

/* To and from sockaddr, with a port (host order). */
socklen_t addr_to_sockaddr(const struct addr *a, uint16_t port,
    struct sockaddr_storage *ss);
int addr_from_sockaddr(const struct sockaddr *sa, struct addr *out,
    uint16_t *port) MOAT_MUST_CHECK;

#endif
