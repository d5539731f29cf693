/*
 * test_addr.c - unit tests for src/proxy/addr.c: IP literals in every
 * spelling (inet_aton forms, bracketed IPv6, zone ids, trailing dot),
 * numeric-looking hosts refused rather than resolved, names passed on, the
 * special-purpose registries (IPv4, IPv6, and the IPv4 address inside
 * mapped, NAT64, 6to4 and Teredo forms), CIDR parsing and matching, and
 * sockaddr conversion.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "addr.h"

struct spell {
	const char *host;
	int want;		/* 0, MOAT_ERR_NOTFOUND, MOAT_ERR_PARSE */
	const char *text;	/* canonical form when 0 */
};

static const struct spell spells[] = {
	/* loopback, every spelling */
	{ "127.0.0.1", 0, "127.0.0.1" },
	{ "127.0.0.1.", 0, "127.0.0.1" },
	{ "127.1", 0, "127.0.0.1" },
	{ "127.0.1", 0, "127.0.0.1" },
	{ "2130706433", 0, "127.0.0.1" },
	{ "0x7f000001", 0, "127.0.0.1" },
	{ "0X7F000001", 0, "127.0.0.1" },
	{ "017700000001", 0, "127.0.0.1" },
	{ "0177.0.0.1", 0, "127.0.0.1" },
	{ "0177.0000.0000.0001", 0, "127.0.0.1" },
	{ "0x7f.0.0.1", 0, "127.0.0.1" },
	{ "0x7f.0x0.0x0.0x1", 0, "127.0.0.1" },
	{ "0x7f.1", 0, "127.0.0.1" },
	{ "127.0x1", 0, "127.0.0.1" },
	{ "[::1]", 0, "::1" },
	{ "::1", 0, "::1" },
	{ "[0:0:0:0:0:0:0:1]", 0, "::1" },
	{ "[::ffff:127.0.0.1]", 0, "::ffff:127.0.0.1" },
	{ "[::ffff:7f00:1]", 0, "::ffff:127.0.0.1" },
	{ "[64:ff9b::127.0.0.1]", 0, "64:ff9b::7f00:1" },
	/* metadata */
	{ "169.254.169.254", 0, "169.254.169.254" },
	{ "2852039166", 0, "169.254.169.254" },
	{ "0xa9fea9fe", 0, "169.254.169.254" },
	{ "0251.0376.0251.0376", 0, "169.254.169.254" },
	{ "169.254.43518", 0, "169.254.169.254" },
	{ "169.16689662", 0, "169.254.169.254" },
	{ "[fd00:ec2::254]", 0, "fd00:ec2::254" },
	{ "[::ffff:169.254.169.254]", 0, "::ffff:169.254.169.254" },
	{ "0.0.0.0", 0, "0.0.0.0" },
	{ "0", 0, "0.0.0.0" },
	{ "1.2.3.4", 0, "1.2.3.4" },
	{ "255.255.255.255", 0, "255.255.255.255" },
	{ "4294967295", 0, "255.255.255.255" },
	/* refused */
	{ "[fe80::1%25eth0]", MOAT_ERR_PARSE, NULL },
	{ "[fe80::1%eth0]", MOAT_ERR_PARSE, NULL },
	{ "fe80::1%eth0", MOAT_ERR_PARSE, NULL },
	{ "4294967296", MOAT_ERR_PARSE, NULL },
	{ "1.2.3.256", MOAT_ERR_PARSE, NULL },
	{ "256.1.1.1", MOAT_ERR_PARSE, NULL },
	{ "1.2.65536", MOAT_ERR_PARSE, NULL },
	{ "1.16777216", MOAT_ERR_PARSE, NULL },
	{ "1.2.3.4.5", MOAT_ERR_PARSE, NULL },
	{ "1..2.3", MOAT_ERR_PARSE, NULL },
	{ ".1.2.3", MOAT_ERR_PARSE, NULL },
	{ "127.0.0.1..", MOAT_ERR_PARSE, NULL },
	{ "08.0.0.1", MOAT_ERR_PARSE, NULL },
	{ "0x", MOAT_ERR_PARSE, NULL },
		{ "0x100000000", MOAT_ERR_PARSE, NULL },
	{ "1.2.3.abc", MOAT_ERR_PARSE, NULL },
	{ "example.0x10", MOAT_ERR_PARSE, NULL },
	{ "example.123", MOAT_ERR_PARSE, NULL },
	{ "127.0.0.1 foo", MOAT_ERR_PARSE, NULL },
	{ "127.0.0.1%00", MOAT_ERR_PARSE, NULL },
	{ "[127.0.0.1]", MOAT_ERR_PARSE, NULL },
	{ "[::1", MOAT_ERR_PARSE, NULL },
	{ "::1]", MOAT_ERR_PARSE, NULL },
	{ "[]", MOAT_ERR_PARSE, NULL },
	{ "[::ffff:0177.0.0.1]", MOAT_ERR_PARSE, NULL },
	{ "1:2", MOAT_ERR_PARSE, NULL },
	{ "", MOAT_ERR_PARSE, NULL },
	{ ".", MOAT_ERR_PARSE, NULL },
	/* names */
	{ "example.com", MOAT_ERR_NOTFOUND, NULL },
	{ "example.com.", MOAT_ERR_NOTFOUND, NULL },
	{ "cafe.de", MOAT_ERR_NOTFOUND, NULL },
	{ "127.0.0.1.nip.io", MOAT_ERR_NOTFOUND, NULL },
	{ "1e100.net", MOAT_ERR_NOTFOUND, NULL },
	{ "localhost", MOAT_ERR_NOTFOUND, NULL },
	{ "0x7f.example", MOAT_ERR_NOTFOUND, NULL },
	{ "0xg1", MOAT_ERR_NOTFOUND, NULL },	/* no resolver reads a number */
};

static void
test_spellings(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(spells) / sizeof(spells[0]); i++) {
		struct addr a, again;
		char text[64];
		int r = addr_parse_host(spells[i].host, &a);

		if (r != spells[i].want)
			fail_msg("%s: got %d, want %d", spells[i].host, r,
			    spells[i].want);
		if (r != 0)
			continue;
		addr_format(&a, text, sizeof(text));
		if (strcmp(text, spells[i].text) != 0)
			fail_msg("%s: formatted %s, want %s", spells[i].host,
			    text, spells[i].text);
		assert_int_equal(addr_parse_host(text, &again), 0);
		assert_memory_equal(&a, &again, sizeof(a));
	}
}

static void
test_too_long(void **state)
{
	char host[400];
	struct addr a;

	(void)state;
	memset(host, 'a', sizeof(host) - 1);
	host[sizeof(host) - 1] = '\0';
	assert_int_equal(addr_parse_host(host, &a), MOAT_ERR_PARSE);
	assert_int_equal(addr_parse_host(NULL, &a), MOAT_ERR_PARSE);
}

struct sp {
	const char *addr;
	const char *range;	/* substring of the range name; NULL: global */
};

static const struct sp specials[] = {
	{ "0.0.0.0", "this network" },
	{ "0.255.1.2", "0.0.0.0/8" },
	{ "10.1.2.3", "10.0.0.0/8" },
	{ "100.64.0.1", "CGNAT" },
	{ "100.127.255.255", "CGNAT" },
	{ "127.0.0.1", "loopback" },
	{ "127.255.255.254", "loopback" },
	{ "169.254.169.254", "cloud metadata" },
	{ "169.254.1.1", "link-local" },
	{ "172.16.0.1", "172.16.0.0/12" },
	{ "172.31.255.255", "172.16.0.0/12" },
	{ "192.0.0.8", "192.0.0.0/24" },
	{ "192.0.2.1", "TEST-NET-1" },
	{ "192.88.99.1", "6to4 relay" },
	{ "192.168.1.1", "192.168.0.0/16" },
	{ "198.18.0.1", "benchmarking" },
	{ "198.19.255.255", "benchmarking" },
	{ "198.51.100.7", "TEST-NET-2" },
	{ "203.0.113.9", "TEST-NET-3" },
	{ "224.0.0.1", "multicast" },
	{ "239.255.255.255", "multicast" },
	{ "240.0.0.1", "reserved" },
	{ "255.255.255.255", "limited broadcast" },
	{ "1.1.1.1", NULL },
	{ "100.63.255.255", NULL },
	{ "100.128.0.0", NULL },
	{ "172.15.255.255", NULL },
	{ "172.32.0.0", NULL },
	{ "198.17.255.255", NULL },
	{ "198.20.0.0", NULL },
	{ "223.255.255.255", NULL },
	{ "::", "unspecified" },
	{ "::1", "loopback ::1" },
	{ "::ffff:1.2.3.4", "IPv4-mapped" },
	{ "::ffff:127.0.0.1", "loopback 127" },
	{ "::ffff:169.254.169.254", "cloud metadata 169" },
	{ "64:ff9b::1.2.3.4", "NAT64" },
	{ "64:ff9b::a9fe:a9fe", "cloud metadata 169" },
	{ "64:ff9b:1::1", "local-use" },
	{ "100::1", "discard" },
	/* Teredo client 8.8.8.8, inverted */
	{ "2001::f7f7:f7f7", "Teredo" },
	{ "2001::1", "" },
	/* Teredo client 127.0.0.1 is carried inverted: ~7f000001 */
	{ "2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback 127" },
	{ "2001:2::1", "benchmarking" },
	{ "2001:10::1", "ORCHID" },
	{ "2001:20::1", "ORCHIDv2" },
	{ "2001:100::1", "2001::/23" },
	{ "2001:db8::1", "documentation 2001:db8" },
	{ "2002:0102:0304::1", "6to4" },
	{ "2002:7f00:0001::1", "loopback 127" },
	{ "2002:c0a8:0101::1", "192.168" },
	{ "3fff::1", "3fff::/20" },
	{ "5f00::1", "5f00::/16" },
	{ "fd00:ec2::254", "cloud metadata fd00" },
	{ "fd12:3456::1", "unique local" },
	{ "fc00::1", "unique local" },
	{ "fe80::1", "link-local" },
	{ "febf::1", "link-local" },
	{ "fec0::1", "site-local" },
	{ "ff02::1", "multicast" },
	{ "::7f00:1", "outside global unicast" },
	{ "4000::1", "outside global unicast" },
	{ "2606:4700::1111", NULL },
	{ "2a00:1450::1", NULL },
	{ "2001:200::1", NULL },
	{ "2003::1", NULL },
};

static void
test_special(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(specials) / sizeof(specials[0]); i++) {
		struct addr a;
		const char *range = "x";
		bool sp;

		assert_int_equal(addr_parse_host(specials[i].addr, &a), 0);
		sp = addr_is_special(&a, &range);
		if (specials[i].range == NULL) {
			if (sp || range != NULL)
				fail_msg("%s: special (%s), want global",
				    specials[i].addr, range);
			continue;
		}
		if (!sp || range == NULL ||
		    strstr(range, specials[i].range) == NULL)
			fail_msg("%s: range %s, want %s", specials[i].addr,
			    range != NULL ? range : "(none)",
			    specials[i].range);
	}
}

static void
test_cidr(void **state)
{
	struct addr net, a;
	unsigned prefix;

	(void)state;
	assert_int_equal(addr_parse_cidr("10.0.0.0/8", &net, &prefix), 0);
	assert_int_equal(net.family, AF_INET);
	assert_int_equal(prefix, 8);
	assert_int_equal(addr_parse_host("10.255.0.1", &a), 0);
	assert_true(addr_in_net(&a, &net, prefix));
	assert_int_equal(addr_parse_host("11.0.0.1", &a), 0);
	assert_false(addr_in_net(&a, &net, prefix));
	/* a mapped address is its IPv4 address for an IPv4 range */
	assert_int_equal(addr_parse_host("[::ffff:10.1.2.3]", &a), 0);
	assert_true(addr_in_net(&a, &net, prefix));
	assert_int_equal(addr_parse_host("[64:ff9b::10.1.2.3]", &a), 0);
	assert_false(addr_in_net(&a, &net, prefix));

	assert_int_equal(addr_parse_cidr("127.0.0.2/32", &net, &prefix), 0);
	assert_int_equal(addr_parse_host("127.0.0.2", &a), 0);
	assert_true(addr_in_net(&a, &net, prefix));
	assert_int_equal(addr_parse_host("127.0.0.3", &a), 0);
	assert_false(addr_in_net(&a, &net, prefix));

	assert_int_equal(addr_parse_cidr("172.16.0.0/12", &net, &prefix), 0);
	assert_int_equal(addr_parse_host("172.31.1.1", &a), 0);
	assert_true(addr_in_net(&a, &net, prefix));
	assert_int_equal(addr_parse_host("172.32.1.1", &a), 0);
	assert_false(addr_in_net(&a, &net, prefix));

	assert_int_equal(addr_parse_cidr("2001:db8::/32", &net, &prefix), 0);
	assert_int_equal(net.family, AF_INET6);
	assert_int_equal(addr_parse_host("2001:db8:ffff::1", &a), 0);
	assert_true(addr_in_net(&a, &net, prefix));
	assert_int_equal(addr_parse_host("2001:db9::1", &a), 0);
	assert_false(addr_in_net(&a, &net, prefix));
	assert_int_equal(addr_parse_host("10.0.0.1", &a), 0);
	assert_false(addr_in_net(&a, &net, prefix));

	assert_int_equal(addr_parse_cidr("0.0.0.0/0", &net, &prefix), 0);
	assert_int_equal(addr_parse_host("8.8.8.8", &a), 0);
	assert_true(addr_in_net(&a, &net, prefix));
	assert_int_equal(addr_parse_cidr("1.2.3.4", &net, &prefix), 0);
	assert_int_equal(prefix, 32);
	/* host bits are cleared */
	assert_int_equal(addr_parse_cidr("10.1.2.3/8", &net, &prefix), 0);
	assert_int_equal(net.b[1], 0);

	assert_int_equal(addr_parse_cidr("10.0.0.0/33", &net, &prefix),
	    MOAT_ERR_PARSE);
	assert_int_equal(addr_parse_cidr("10.0.0.0/", &net, &prefix),
	    MOAT_ERR_PARSE);
	assert_int_equal(addr_parse_cidr("10.0.0.0/08", &net, &prefix),
	    MOAT_ERR_PARSE);
	assert_int_equal(addr_parse_cidr("10.0.0/8", &net, &prefix),
	    MOAT_ERR_PARSE);
	assert_int_equal(addr_parse_cidr("::/129", &net, &prefix),
	    MOAT_ERR_PARSE);
	assert_int_equal(addr_parse_cidr("/8", &net, &prefix), MOAT_ERR_PARSE);
	assert_int_equal(addr_parse_cidr("x/8", &net, &prefix), MOAT_ERR_PARSE);
}

static void
test_sockaddr(void **state)
{
	struct sockaddr_storage ss;
	struct addr a, b;
	uint16_t port = 0;
	socklen_t len;

	(void)state;
	assert_int_equal(addr_parse_host("127.0.0.2", &a), 0);
	len = addr_to_sockaddr(&a, 8080, &ss);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(((struct sockaddr_in *)&ss)->sin_port, htons(8080));
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, &b, &port),
	    0);
	assert_int_equal(port, 8080);
	assert_memory_equal(&a, &b, sizeof(a));

	assert_int_equal(addr_parse_host("[2001:db8::5]", &a), 0);
	len = addr_to_sockaddr(&a, 443, &ss);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, &b, &port),
	    0);
	assert_int_equal(port, 443);
	assert_memory_equal(&a, &b, sizeof(a));

	ss.ss_family = AF_UNIX;
	assert_int_equal(addr_from_sockaddr((struct sockaddr *)&ss, &b, &port),
	    MOAT_ERR_INVAL);
}

static void
test_format_small(void **state)
{
	struct addr a;
	char out[4] = "zzz";

	(void)state;
	assert_int_equal(addr_parse_host("10.0.0.1", &a), 0);
	addr_format(&a, out, sizeof(out));
	assert_string_equal(out, "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_spellings),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_special),
		cmocka_unit_test(test_cidr),
		cmocka_unit_test(test_sockaddr),
		cmocka_unit_test(test_format_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
