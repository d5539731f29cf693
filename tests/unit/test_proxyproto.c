/*
 * test_proxyproto.c - unit tests for proxyproto.c: PROXY v1 lines (TCP4,
 * TCP6, UNKNOWN) and v2 headers (PROXY and LOCAL, IPv4 and IPv6, TLVs),
 * partial input (AGAIN, at every cut), garbage, oversize headers, broken
 * lengths and TLV framing, bad addresses and out-of-range ports.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxyproto.h"

static const uint8_t sig[12] = {
	0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

static int
parse_str(const char *s, struct proxyproto_result *res)
{
	return proxyproto_parse((const uint8_t *)s, strlen(s), res);
}

static void
assert_v4(const struct sockaddr_storage *ss, const char *addr, int port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	char buf[INET_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET);
	assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
	assert_string_equal(buf, addr);
	assert_int_equal(ntohs(sin->sin_port), port);
}

static void
assert_v6(const struct sockaddr_storage *ss, const char *addr, int port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
	char buf[INET6_ADDRSTRLEN];

	assert_int_equal(ss->ss_family, AF_INET6);
	assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
	assert_string_equal(buf, addr);
	assert_int_equal(ntohs(sin6->sin6_port), port);
}

/* Every strict prefix of a valid header must ask for more bytes. */
static void
assert_prefixes_again(const uint8_t *h, size_t len)
{
	struct proxyproto_result res;

	for (size_t i = 0; i < len; i++)
		assert_int_equal(proxyproto_parse(h, i, &res), MOAT_ERR_AGAIN);
}

static void
test_v1_tcp4(void **state)
{
	const char *h = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
	struct proxyproto_result res;

	assert_int_equal(parse_str(h, &res), 0);
	assert_int_equal(res.version, 1);
	assert_false(res.local);
	assert_int_equal(res.header_len, strlen("PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\n"));
	assert_v4(&res.src, "192.0.2.7", 56324);
	assert_v4(&res.dst, "198.51.100.1", 443);
	assert_prefixes_again((const uint8_t *)h, res.header_len);
}

static void
test_v1_tcp6(void **state)
{
	const char *h = "PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n";
	struct proxyproto_result res;

	assert_int_equal(parse_str(h, &res), 0);
	assert_int_equal(res.header_len, strlen(h));
	assert_v6(&res.src, "2001:db8::1", 65535);
	assert_v6(&res.dst, "2001:db8::2", 0);
}

static void
test_v1_unknown(void **state)
{
	struct proxyproto_result res;

	assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &res), 0);
	assert_true(res.local);
	assert_int_equal(res.header_len, 15);
	assert_int_equal(parse_str("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nxyz", &res), 0);
	assert_true(res.local);
	assert_int_equal(res.header_len, 35);
}

static void
test_v1_bad(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP4 999.1.1.1 1.2.3.4 1 2\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 1 65536\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 99999 1\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 -1 1\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 01 1\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 1 2 \r\n",
		"PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n",
		"PROXY TCP4 ::1 ::1 1 2\r\n",
		"PROXY TCP6 1.2.3.4 1.2.3.4 1 2\r\n",
		"PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n",
		"PROXY tcp4 1.2.3.4 1.2.3.4 1 2\r\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\n",
		"PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX",
		"PROXY TCP4 1.2.3.4\t1.2.3.4 1 2\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n",
		"GET / HTTP/1.1\r\n",
		"\x16\x03\x01\x02\x00",
		"PROXX",
		"X",
	};
	struct proxyproto_result res;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = parse_str(bad[i], &res);

		if (r != MOAT_ERR_PARSE)
			fail_msg("accepted or wanted more: case %zu (%d)", i, r);
	}
	/* NUL inside the line. */
	assert_int_equal(proxyproto_parse((const uint8_t *)"PROXY TCP4 \0", 12, &res),
	    MOAT_ERR_PARSE);
}

static void
test_v1_oversize(void **state)
{
	uint8_t h[200];
	struct proxyproto_result res;

	memcpy(h, "PROXY UNKNOWN ", 14);
	memset(h + 14, 'a', sizeof(h) - 14);
	/* No CRLF within 107 bytes: refused, not "more please". */
	assert_int_equal(proxyproto_parse(h, 106, &res), MOAT_ERR_AGAIN);
	assert_int_equal(proxyproto_parse(h, 107, &res), MOAT_ERR_PARSE);
	assert_int_equal(proxyproto_parse(h, sizeof(h), &res), MOAT_ERR_PARSE);
	/* Exactly 107 with CRLF at the end is the maximum and fine. */
	h[105] = '\r';
	h[106] = '\n';
	assert_int_equal(proxyproto_parse(h, 107, &res), 0);
	assert_int_equal(res.header_len, 107);
	/* One more and it is too long. */
	h[105] = 'a';
	h[106] = '\r';
	h[107] = '\n';
	assert_int_equal(proxyproto_parse(h, 108, &res), MOAT_ERR_PARSE);
}

/* Builds a v2 header: ver_cmd, fam, address block, then extra bytes. */
static size_t
v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *blk,
    size_t blen, size_t announced)
{
	memcpy(out, sig, 12);
	out[12] = ver_cmd;
	out[13] = fam;
	out[14] = (uint8_t)(announced >> 8);
	out[15] = (uint8_t)announced;
	memcpy(out + 16, blk, blen);
	return 16 + blen;
}

static void
test_v2_proxy_v4_tlv(void **state)
{
	uint8_t blk[12 + 7 + 3], h[64];
	struct proxyproto_result res;
	size_t n;

	memcpy(blk, (uint8_t[]){ 192, 0, 2, 9, 10, 0, 0, 1, 0xdb, 0xfe, 0x01, 0xbb }, 12);
	/* PP2_TYPE_AUTHORITY "host" and a NOOP with an empty value. */
	memcpy(blk + 12, (uint8_t[]){ 0x02, 0x00, 0x04, 'h', 'o', 's', 't' }, 7);
	memcpy(blk + 19, (uint8_t[]){ 0x04, 0x00, 0x00 }, 3);
	n = v2(h, 0x21, 0x11, blk, sizeof(blk), sizeof(blk));
	h[n] = 'G';
	assert_int_equal(proxyproto_parse(h, n + 1, &res), 0);
	assert_int_equal(res.version, 2);
	assert_false(res.local);
	assert_int_equal(res.header_len, n);
	assert_v4(&res.src, "192.0.2.9", 0xdbfe);
	assert_v4(&res.dst, "10.0.0.1", 443);
	assert_prefixes_again(h, n);
}

static void
test_v2_proxy_v6(void **state)
{
	uint8_t blk[36], h[64];
	struct proxyproto_result res;
	size_t n;

	memset(blk, 0, sizeof(blk));
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::5", blk), 1);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::6", blk + 16), 1);
	blk[32] = 0x30; blk[33] = 0x39;	/* 12345 */
	blk[34] = 0x20; blk[35] = 0xfb;	/* 8443 */
	n = v2(h, 0x21, 0x21, blk, sizeof(blk), sizeof(blk));
	assert_int_equal(proxyproto_parse(h, n, &res), 0);
	assert_v6(&res.src, "2001:db8::5", 12345);
	assert_v6(&res.dst, "2001:db8::6", 8443);
	assert_prefixes_again(h, n);
}

static void
test_v2_local(void **state)
{
	uint8_t h[64], blk[12] = { 0 };
	struct proxyproto_result res;
	size_t n;

	n = v2(h, 0x20, 0x00, blk, 0, 0);
	assert_int_equal(proxyproto_parse(h, n, &res), 0);
	assert_true(res.local);
	assert_int_equal(res.header_len, 16);
	/* LOCAL ignores whatever block follows. */
	n = v2(h, 0x20, 0x11, blk, sizeof(blk), sizeof(blk));
	assert_int_equal(proxyproto_parse(h, n, &res), 0);
	assert_true(res.local);
	assert_int_equal(res.header_len, 28);
	/* PROXY over AF_UNSPEC: keep the peer too. */
	n = v2(h, 0x21, 0x00, blk, 0, 0);
	assert_int_equal(proxyproto_parse(h, n, &res), 0);
	assert_true(res.local);
}

static void
test_v2_bad(void **state)
{
	uint8_t h[PROXYPROTO_MAX_HEADER + 64], blk[64];
	struct proxyproto_result res;
	size_t n;

	memset(blk, 0, sizeof(blk));
	/* Version 1 in the binary format; unknown command. */
	n = v2(h, 0x11, 0x11, blk, 12, 12);
	assert_int_equal(proxyproto_parse(h, n, &res), MOAT_ERR_PARSE);
	assert_int_equal(proxyproto_parse(h, 13, &res), MOAT_ERR_PARSE);
	n = v2(h, 0x22, 0x11, blk, 12, 12);
	assert_int_equal(proxyproto_parse(h, n, &res), MOAT_ERR_PARSE);
	/* Address block shorter than the family needs. */
	n = v2(h, 0x21, 0x11, blk, 11, 11);
	assert_int_equal(proxyproto_parse(h, n, &res), MOAT_ERR_PARSE);
	n = v2(h, 0x21, 0x21, blk, 35, 35);
	assert_int_equal(proxyproto_parse(h, n, &res), MOAT_ERR_PARSE);
	/* UDP and unix sockets are refused. */
	n = v2(h, 0x21, 0x12, blk, 12, 12);
	assert_int_equal(proxyproto_parse(h, n, &res), MOAT_ERR_PARSE);
	n = v2(h, 0x21, 0x31, blk, 64, 64);
	assert_int_equal(proxyproto_parse(h, n, &res), MOAT_ERR_PARSE);
	/* TLV that runs past the block; a truncated TLV header. */
	blk[12] = 0x02; blk[13] = 0x00; blk[14] = 0x05;
	n = v2(h, 0x21, 0x11, blk, 16, 16);
	assert_int_equal(proxyproto_parse(h, n, &res), MOAT_ERR_PARSE);
	n = v2(h, 0x21, 0x11, blk, 14, 14);
	assert_int_equal(proxyproto_parse(h, n, &res), MOAT_ERR_PARSE);
	/* Announced length beyond the maximum. */
	n = v2(h, 0x21, 0x11, blk, 12, PROXYPROTO_MAX_HEADER);
	assert_int_equal(proxyproto_parse(h, n, &res), MOAT_ERR_PARSE);
	n = v2(h, 0x21, 0x11, blk, 12, 0xffff);
	assert_int_equal(proxyproto_parse(h, n, &res), MOAT_ERR_PARSE);
	/* The largest allowed header: whole, and one byte short. */
	memset(h, 0, sizeof(h));
	n = v2(h, 0x20, 0x00, blk, 0, PROXYPROTO_MAX_HEADER - 16);
	assert_int_equal(proxyproto_parse(h, PROXYPROTO_MAX_HEADER, &res), 0);
	assert_int_equal(res.header_len, PROXYPROTO_MAX_HEADER);
	assert_int_equal(proxyproto_parse(h, PROXYPROTO_MAX_HEADER - 1, &res),
	    MOAT_ERR_AGAIN);
	/* Signature broken in its middle. */
	memcpy(h, sig, 12);
	h[6] = 'X';
	assert_int_equal(proxyproto_parse(h, 7, &res), MOAT_ERR_PARSE);
	/* Nothing yet. */
	assert_int_equal(proxyproto_parse(h, 0, &res), MOAT_ERR_AGAIN);
	(void)n;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_v1_tcp4),
		cmocka_unit_test(test_v1_tcp6),
		cmocka_unit_test(test_v1_unknown),
		cmocka_unit_test(test_v1_bad),
		cmocka_unit_test(test_v1_oversize),
		cmocka_unit_test(test_v2_proxy_v4_tlv),
		cmocka_unit_test(test_v2_proxy_v6),
		cmocka_unit_test(test_v2_local),
		cmocka_unit_test(test_v2_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
