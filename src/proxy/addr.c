/*
 * addr.c - IP literal parsing in every spelling, the special-purpose
 * address check, CIDR matching and sockaddr conversion (contract in addr.h).
 *
 * Which hosts are literals. A host is an IP literal, a name, or refused:
 *   - "[...]", or anything holding ':', is IPv6 (inet_pton after the
 *     brackets are stripped); a zone id ('%') or anything inet_pton refuses
 *     is refused.
 *   - A host whose last dot-separated label is a number (decimal digits, or
 *     "0x" followed by hex digits; one trailing dot ignored, as resolvers
 *     do) is IPv4 in inet_aton's spellings (1 to 4 parts, each decimal,
 *     octal with a leading 0, or hex with 0x; a.b.c.d, a.b.c with c 16 bits,
 *     a.b with b 24 bits, a as 32 bits), and is refused when it is not a
 *     valid one ("1.2.3.4.5", "1.2.3.256", "08.1", "foo.0x10"). This is the
 *     WHATWG URL rule: no top-level domain is numeric.
 *   - In addition, a host made only of digits, dots, 'x'/'X' and hex
 *     letters that begins with a digit ("1.2.3.abc", "0x7f.0x0.0x0.0xq"
 *     aside) and is not a valid literal is refused, never resolved: some
 *     resolver somewhere might read it as a number.
 *   - Control characters, whitespace (glibc's inet_aton stops at a space
 *     and ignores what follows) and '%' (percent-encoding or a zone id) are
 *     refused anywhere in a host.
 * Everything else is a name (MOAT_ERR_NOTFOUND): it is decided by name and
 * its resolved addresses are checked.
 *
 * The special-purpose tables follow the IANA IPv4 and IPv6 Special-Purpose
 * Address Registries; in IPv6 anything outside global unicast 2000::/3 is
 * special too (unassigned or reserved by the IETF). The IPv4-embedding
 * forms are special in themselves; the IPv4 address they carry is looked at
 * only to name the range more usefully (metadata behind NAT64, say).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "addr.h"

#define ADDR_HOST_MAX 256	/* longer hosts are names, never literals */

/* Where an IPv6 form carries an IPv4 address. */
enum embed { EMB_NONE = 0, EMB_LOW32, EMB_6TO4, EMB_TEREDO };

struct special {
	uint8_t net[16];
	unsigned prefix;
	const char *name;
	enum embed embed;
};

/* Most specific first: the first match names the range. */
#define N EMB_NONE
static const struct special special4[] = {
	{ { 0, 0, 0, 0 }, 8, "this network 0.0.0.0/8", N },
	{ { 10, 0, 0, 0 }, 8, "private 10.0.0.0/8", N },
	{ { 100, 64, 0, 0 }, 10, "shared address space (CGNAT) 100.64.0.0/10",
	    N },
	{ { 127, 0, 0, 0 }, 8, "loopback 127.0.0.0/8", N },
	{ { 169, 254, 169, 254 }, 32, "cloud metadata 169.254.169.254/32", N },
	{ { 169, 254, 0, 0 }, 16, "link-local 169.254.0.0/16", N },
	{ { 172, 16, 0, 0 }, 12, "private 172.16.0.0/12", N },
	{ { 192, 0, 0, 0 }, 24, "IETF protocol assignments 192.0.0.0/24", N },
	{ { 192, 0, 2, 0 }, 24, "documentation (TEST-NET-1) 192.0.2.0/24", N },
	{ { 192, 88, 99, 0 }, 24, "6to4 relay anycast 192.88.99.0/24", N },
	{ { 192, 168, 0, 0 }, 16, "private 192.168.0.0/16", N },
	{ { 198, 18, 0, 0 }, 15, "benchmarking 198.18.0.0/15", N },
	{ { 198, 51, 100, 0 }, 24,
	    "documentation (TEST-NET-2) 198.51.100.0/24", N },
	{ { 203, 0, 113, 0 }, 24,
	    "documentation (TEST-NET-3) 203.0.113.0/24", N },
	{ { 224, 0, 0, 0 }, 4, "multicast 224.0.0.0/4", N },
	{ { 255, 255, 255, 255 }, 32, "limited broadcast 255.255.255.255/32",
	    N },
	{ { 240, 0, 0, 0 }, 4, "reserved 240.0.0.0/4", N },
};

static const struct special special6[] = {
	{ { 0 }, 128, "unspecified ::/128", N },
	{ { [15] = 1 }, 128, "loopback ::1/128", N },
	{ { [10] = 0xff, [11] = 0xff }, 96, "IPv4-mapped ::ffff:0:0/96",
	    EMB_LOW32 },
	{ { 0, 0x64, 0xff, 0x9b }, 96, "NAT64 64:ff9b::/96", EMB_LOW32 },
	{ { 0, 0x64, 0xff, 0x9b, 0, 1 }, 48,
	    "local-use IPv4/IPv6 translation 64:ff9b:1::/48", N },
	{ { 0x01, 0x00 }, 64, "discard-only 100::/64", N },
	{ { 0x20, 0x01, 0x00, 0x00 }, 32, "Teredo 2001::/32", EMB_TEREDO },
	{ { 0x20, 0x01, 0x00, 0x02 }, 48, "benchmarking 2001:2::/48", N },
	{ { 0x20, 0x01, 0x00, 0x10 }, 28, "ORCHID 2001:10::/28", N },
	{ { 0x20, 0x01, 0x00, 0x20 }, 28, "ORCHIDv2 2001:20::/28", N },
	{ { 0x20, 0x01 }, 23, "IETF protocol assignments 2001::/23", N },
	{ { 0x20, 0x01, 0x0d, 0xb8 }, 32, "documentation 2001:db8::/32", N },
	{ { 0x20, 0x02 }, 16, "6to4 2002::/16", EMB_6TO4 },
	{ { 0x3f, 0xff }, 20, "documentation 3fff::/20", N },
	{ { 0x5f, 0x00 }, 16, "segment routing SIDs 5f00::/16", N },
	{ { 0xfd, 0x00, 0x0e, 0xc2, [14] = 0x02, [15] = 0x54 }, 128,
	    "cloud metadata fd00:ec2::254/128", N },
	{ { 0xfc }, 7, "unique local fc00::/7", N },
	{ { 0xfe, 0x80 }, 10, "link-local fe80::/10", N },
	{ { 0xfe, 0xc0 }, 10, "site-local fec0::/10", N },
	{ { 0xff }, 8, "multicast ff00::/8", N },
};
#undef N

static bool
prefix_eq(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;

	if (memcmp(a, net, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((a[full] ^ net[full]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

static const char *
special_v4(const uint8_t *b)
{
	size_t i;

	for (i = 0; i < sizeof(special4) / sizeof(special4[0]); i++)
		if (prefix_eq(b, special4[i].net, special4[i].prefix))
			return special4[i].name;
	return NULL;
}

bool
addr_is_special(const struct addr *a, const char **range)
{
	const char *name = NULL, *inner;
	uint8_t v4[4];
	size_t i;

	if (range != NULL)
		*range = NULL;
	if (a == NULL)
		return true;
	if (a->family == AF_INET) {
		name = special_v4(a->b);
	} else if (a->family == AF_INET6) {
		for (i = 0; i < sizeof(special6) / sizeof(special6[0]); i++) {
			if (prefix_eq(a->b, special6[i].net,
			    special6[i].prefix)) {
				name = special6[i].name;
				break;
			}
		}
		if (name == NULL && (a->b[0] & 0xe0) != 0x20)
			name = "reserved (outside global unicast 2000::/3)";
		/* The IPv4 address carried by the embedding forms (for
		 * Teredo, the client's, inverted, in the last 32 bits). */
		inner = NULL;
		if (i < sizeof(special6) / sizeof(special6[0])) {
			switch (special6[i].embed) {
			case EMB_LOW32:
				memcpy(v4, a->b + 12, 4);
				inner = special_v4(v4);
				break;
			case EMB_6TO4:
				memcpy(v4, a->b + 2, 4);
				inner = special_v4(v4);
				break;
			case EMB_TEREDO:
				for (size_t k = 0; k < 4; k++)
					v4[k] = (uint8_t)~a->b[12 + k];
				inner = special_v4(v4);
				break;
			case EMB_NONE:
				break;
			}
		}
		if (inner != NULL)
			name = inner;
	} else {
		name = "not an IP address";
	}
	if (range != NULL)
		*range = name;
	return name != NULL;
}

/* One inet_aton part: decimal, octal with a leading 0, hex with 0x. */
static int
parse_part(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	unsigned base = 10;
	size_t i = 0;

	if (n == 0)
		return -1;
	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
		if (n == 2)
			return -1;	/* "0x" alone: refused */
	} else if (n >= 2 && s[0] == '0') {
		base = 8;
		i = 1;
	}
	for (; i < n; i++) {
		unsigned d;
		char c = s[i];

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a') + 10;
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A') + 10;
		else
			return -1;
		if (d >= base)
			return -1;
		v = v * base + d;
		if (v > 0xffffffffu)
			return -1;
	}
	*out = v;
	return 0;
}

/* s[0..n): IPv4 in inet_aton spelling, no trailing dot. */
static int
parse_v4(const char *s, size_t n, uint8_t b[4])
{
	uint64_t parts[4], v;
	size_t np = 0, i, start = 0;
	static const uint64_t lastmax[4] = { 0xffffffffu, 0xffffffu, 0xffffu,
	    0xffu };

	for (i = 0; i <= n; i++) {
		if (i < n && s[i] != '.')
			continue;
		if (np == 4)
			return -1;
		if (parse_part(s + start, i - start, &parts[np]) != 0)
			return -1;
		np++;
		start = i + 1;
	}
	for (i = 0; i + 1 < np; i++)
		if (parts[i] > 0xff)
			return -1;
	if (parts[np - 1] > lastmax[np - 1])
		return -1;
	v = parts[np - 1];
	for (i = 0; i + 1 < np; i++)
		v |= parts[i] << (24 - 8 * i);
	b[0] = (uint8_t)(v >> 24);
	b[1] = (uint8_t)(v >> 16);
	b[2] = (uint8_t)(v >> 8);
	b[3] = (uint8_t)v;
	return 0;
}

/* "123", "0x7f", "0X": a label inet_aton or a URL parser reads as a number. */
static bool
numeric_label(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0)
		return false;
	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (i = 2; i < n; i++)
			if (!((s[i] >= '0' && s[i] <= '9') ||
			    (s[i] >= 'a' && s[i] <= 'f') ||
			    (s[i] >= 'A' && s[i] <= 'F')))
				return false;
		return true;
	}
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool
hexish(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F') || c == 'x' || c == 'X' || c == '.'))
			return false;
	}
	return true;
}

int
addr_parse_host(const char *host, struct addr *out)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	const char *last;
	size_t n, i;

	memset(out, 0, sizeof(*out));
	if (host == NULL)
		return MOAT_ERR_PARSE;
	n = strnlen(host, ADDR_HOST_MAX + 1);
	if (n == 0 || n > ADDR_HOST_MAX)
		return MOAT_ERR_PARSE;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)host[i];

		if (c <= 0x20 || c == 0x7f || c == '%')
			return MOAT_ERR_PARSE;
	}
	if (host[0] == '[' || memchr(host, ':', n) != NULL ||
	    memchr(host, ']', n) != NULL) {
		const char *s = host;
		size_t sn = n;

		if (host[0] == '[') {
			if (n < 3 || host[n - 1] != ']')
				return MOAT_ERR_PARSE;
			s = host + 1;
			sn = n - 2;
		}
		if (sn >= sizeof(tmp) || memchr(s, '[', sn) != NULL ||
		    memchr(s, ']', sn) != NULL)
			return MOAT_ERR_PARSE;
		memcpy(tmp, s, sn);
		tmp[sn] = '\0';
		if (inet_pton(AF_INET6, tmp, out->b) != 1) {
			memset(out, 0, sizeof(*out));
			return MOAT_ERR_PARSE;
		}
		out->family = AF_INET6;
		return 0;
	}
	/* One trailing dot belongs to the literal ("127.0.0.1."). */
	if (host[n - 1] == '.')
		n--;
	if (n == 0)
		return MOAT_ERR_PARSE;
	last = memrchr(host, '.', n);
	last = last != NULL ? last + 1 : host;
	if (numeric_label(last, (size_t)(host + n - last)) ||
	    (host[0] >= '0' && host[0] <= '9' && hexish(host, n))) {
		if (parse_v4(host, n, out->b) != 0) {
			memset(out, 0, sizeof(*out));
			return MOAT_ERR_PARSE;
		}
		out->family = AF_INET;
		return 0;
	}
	return MOAT_ERR_NOTFOUND;
}

int
addr_parse_cidr(const char *cidr, struct addr *net, unsigned *prefix)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	const char *slash;
	size_t alen, i;
	unsigned max, p;

	memset(net, 0, sizeof(*net));
	*prefix = 0;
	if (cidr == NULL)
		return MOAT_ERR_PARSE;
	slash = strchr(cidr, '/');
	alen = slash != NULL ? (size_t)(slash - cidr) : strlen(cidr);
	if (alen == 0 || alen >= sizeof(tmp))
		return MOAT_ERR_PARSE;
	memcpy(tmp, cidr, alen);
	tmp[alen] = '\0';
	net->family = memchr(tmp, ':', alen) != NULL ? AF_INET6 : AF_INET;
	if (inet_pton(net->family, tmp, net->b) != 1) {
		memset(net, 0, sizeof(*net));
		return MOAT_ERR_PARSE;
	}
	max = net->family == AF_INET6 ? 128 : 32;
	p = max;
	if (slash != NULL) {
		const char *d = slash + 1;

		if (*d == '\0' || strlen(d) > 3 || (d[0] == '0' && d[1] != '\0'))
			goto bad;
		for (p = 0; *d != '\0'; d++) {
			if (*d < '0' || *d > '9')
				goto bad;
			p = p * 10 + (unsigned)(*d - '0');
		}
		if (p > max)
			goto bad;
	}
	/* Host bits past the prefix are cleared. */
	for (i = 0; i < max / 8; i++) {
		unsigned bits = p >= (i + 1) * 8 ? 8 :
		    p > i * 8 ? p - (unsigned)i * 8 : 0;

		net->b[i] &= (uint8_t)(bits == 0 ? 0 : 0xff << (8 - bits));
	}
	*prefix = p;
	return 0;
bad:
	memset(net, 0, sizeof(*net));
	return MOAT_ERR_PARSE;
}

/* An IPv4-mapped IPv6 address is the IPv4 address it carries as far as an
 * IPv4 range is concerned: policies write such ranges as IPv4 (policy.c
 * refuses mapped ranges), and connecting to ::ffff:a.b.c.d reaches a.b.c.d. */
bool
addr_in_net(const struct addr *a, const struct addr *net, unsigned prefix)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (a == NULL || net == NULL)
		return false;
	if (a->family == AF_INET && net->family == AF_INET)
		return prefix <= 32 && prefix_eq(a->b, net->b, prefix);
	if (a->family == AF_INET6 && net->family == AF_INET6)
		return prefix <= 128 && prefix_eq(a->b, net->b, prefix);
	if (a->family == AF_INET6 && net->family == AF_INET &&
	    memcmp(a->b, mapped, sizeof(mapped)) == 0)
		return prefix <= 32 && prefix_eq(a->b + 12, net->b, prefix);
	return false;
}

void
addr_format(const struct addr *a, char *out, size_t outlen)
{
	char tmp[INET6_ADDRSTRLEN];

	if (out == NULL || outlen == 0)
		return;
	out[0] = '\0';
	if (a == NULL || (a->family != AF_INET && a->family != AF_INET6))
		return;
	if (inet_ntop(a->family, a->b, tmp, sizeof(tmp)) == NULL)
		return;
	if (strlen(tmp) < outlen)
		memcpy(out, tmp, strlen(tmp) + 1);
}

socklen_t
addr_to_sockaddr(const struct addr *a, uint16_t port,
    struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a->b, 4);
		return sizeof(*sin);
	}
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		memcpy(&sin6->sin6_addr, a->b, 16);
		return sizeof(*sin6);
	}
	return 0;
}

int
addr_from_sockaddr(const struct sockaddr *sa, struct addr *out,
    uint16_t *port)
{
	memset(out, 0, sizeof(*out));
	if (sa == NULL)
		return MOAT_ERR_INVAL;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		out->family = AF_INET;
		memcpy(out->b, &sin->sin_addr, 4);
		if (port != NULL)
			*port = ntohs(sin->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)sa;

		out->family = AF_INET6;
		memcpy(out->b, &sin6->sin6_addr, 16);
		if (port != NULL)
			*port = ntohs(sin6->sin6_port);
		return 0;
	}
	return MOAT_ERR_INVAL;
}
