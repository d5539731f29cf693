/*
 * test_agentproto.c - unit tests for agentproto.c: round trips of every
 * message type, the exact wire bytes of a request, partial frames (every
 * cut asks for more), oversized and empty frames, unknown types, unknown
 * and unused tags skipped, repeated and wrong-width fields, bad names, env
 * names and reasons, too many and duplicate secrets, log chunks beyond the
 * log's end, and encoder refusals (small buffers, out-of-range fields).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agentproto.h"

static uint8_t fbuf[4 + AGENTPROTO_MAX_FRAME + 16];
static struct agentproto_msg dm;

/* Builds a frame in fbuf from a type and raw field bytes. */
static size_t
mkframe(int type, const uint8_t *body, size_t blen)
{
	uint32_t n = (uint32_t)(1 + blen);

	fbuf[0] = (uint8_t)(n >> 24);
	fbuf[1] = (uint8_t)(n >> 16);
	fbuf[2] = (uint8_t)(n >> 8);
	fbuf[3] = (uint8_t)n;
	fbuf[4] = (uint8_t)type;
	if (blen > 0)
		memcpy(fbuf + 5, body, blen);
	return 5 + blen;
}

static long
dec(size_t len, char *err)
{
	return agentproto_decode(fbuf, len, &dm, err, 128);
}

static void
roundtrip(const struct agentproto_msg *m)
{
	static uint8_t out[4 + AGENTPROTO_MAX_FRAME];
	char err[128];
	long n = agentproto_encode(m, out, sizeof(out));

	assert_true(n > 4);
	assert_int_equal(agentproto_decode(out, (size_t)n, &dm, err,
	    sizeof(err)), n);
	/* Every cut of the frame asks for more. */
	for (long i = 0; i < n; i++)
		assert_int_equal(agentproto_decode(out, (size_t)i, &dm, NULL,
		    0), 0);
	assert_int_equal(agentproto_decode(out, (size_t)n, &dm, NULL, 0), n);
}

static void
test_wire_bytes(void **state)
{
	struct agentproto_msg m = { .type = AGENTPROTO_DIAL, .port = 22 };
	uint8_t out[32];
	const uint8_t want[] = { 0, 0, 0, 6, 3, 2, 0, 2, 0, 22 };

	(void)state;
	assert_int_equal(agentproto_encode(&m, out, sizeof(out)),
	    sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	/* Too small a buffer is refused, whatever the cut. */
	for (size_t i = 0; i < sizeof(want); i++)
		assert_int_equal(agentproto_encode(&m, out, i), -1);
}

static void
test_roundtrip_all(void **state)
{
	static struct agentproto_msg m;
	static const uint8_t logdata[] = "line one\nline two\n";
	static uint8_t big[AGENTPROTO_MAX_LOG_CHUNK];

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = AGENTPROTO_STATUS;
	roundtrip(&m);
	assert_int_equal(dm.type, AGENTPROTO_STATUS);
	m.type = AGENTPROTO_ACTIVITY;
	roundtrip(&m);
	m.type = AGENTPROTO_OK;
	roundtrip(&m);

	memset(&m, 0, sizeof(m));
	m.type = AGENTPROTO_DIAL;
	m.port = 65535;
	roundtrip(&m);
	assert_int_equal(dm.port, 65535);

	memset(&m, 0, sizeof(m));
	m.type = AGENTPROTO_LOG;
	m.offset = UINT64_C(0x0102030405060708);
	roundtrip(&m);
	assert_true(dm.offset == UINT64_C(0x0102030405060708));

	memset(&m, 0, sizeof(m));
	m.type = AGENTPROTO_ERR;
	snprintf(m.reason, sizeof(m.reason), "connection refused: port 22");
	roundtrip(&m);
	assert_string_equal(dm.reason, "connection refused: port 22");

	memset(&m, 0, sizeof(m));
	m.type = AGENTPROTO_STATUS_REPLY;
	m.version = AGENTPROTO_VERSION;
	m.sshd_up = true;
	m.idle_seconds = 4000000000u;
	m.connections = 7;
	m.startup = AGENTPROTO_STARTUP_FAILED;
	m.startup_exit = -15;
	roundtrip(&m);
	assert_int_equal(dm.version, AGENTPROTO_VERSION);
	assert_true(dm.sshd_up);
	assert_true(dm.idle_seconds == 4000000000u);
	assert_int_equal(dm.connections, 7);
	assert_int_equal(dm.startup, AGENTPROTO_STARTUP_FAILED);
	assert_int_equal(dm.startup_exit, -15);

	memset(&m, 0, sizeof(m));
	m.type = AGENTPROTO_LOG_REPLY;
	m.offset = 100;
	m.data = logdata;
	m.data_len = sizeof(logdata) - 1;
	m.log_end = 200;
	roundtrip(&m);
	assert_int_equal(dm.offset, 100);
	assert_int_equal(dm.log_end, 200);
	assert_int_equal(dm.data_len, sizeof(logdata) - 1);
	assert_memory_equal(dm.data, logdata, dm.data_len);

	/* The largest log chunk fits; one byte more does not encode. */
	memset(big, 'x', sizeof(big));
	m.offset = 0;
	m.data = big;
	m.data_len = sizeof(big);
	m.log_end = sizeof(big);
	roundtrip(&m);
	m.data_len = sizeof(big) + 1;
	m.log_end = sizeof(big) + 1;
	assert_int_equal(agentproto_encode(&m, fbuf, sizeof(fbuf)), -1);
	/* A chunk beyond the log's end does not encode either. */
	m.data_len = 10;
	m.log_end = 5;
	assert_int_equal(agentproto_encode(&m, fbuf, sizeof(fbuf)), -1);
}

static void
test_secrets(void **state)
{
	static struct agentproto_msg m;
	static const uint8_t v1[] = "ghp_secretvalue";
	static const uint8_t bin[] = { 0, 1, 2, 0xff, '\n' };

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = AGENTPROTO_SECRETS;
	roundtrip(&m);
	assert_int_equal(dm.nsecrets, 0);

	snprintf(m.secrets[0].name, sizeof(m.secrets[0].name), "gh-token");
	snprintf(m.secrets[0].env, sizeof(m.secrets[0].env), "GITHUB_TOKEN");
	m.secrets[0].value = v1;
	m.secrets[0].value_len = sizeof(v1) - 1;
	snprintf(m.secrets[1].name, sizeof(m.secrets[1].name), "bin.key");
	m.secrets[1].value = bin;
	m.secrets[1].value_len = sizeof(bin);
	snprintf(m.secrets[2].name, sizeof(m.secrets[2].name), "empty");
	m.nsecrets = 3;
	roundtrip(&m);
	assert_int_equal(dm.nsecrets, 3);
	assert_string_equal(dm.secrets[0].name, "gh-token");
	assert_string_equal(dm.secrets[0].env, "GITHUB_TOKEN");
	assert_memory_equal(dm.secrets[0].value, v1, sizeof(v1) - 1);
	assert_string_equal(dm.secrets[1].env, "");
	assert_int_equal(dm.secrets[1].value_len, sizeof(bin));
	assert_memory_equal(dm.secrets[1].value, bin, sizeof(bin));
	assert_int_equal(dm.secrets[2].value_len, 0);

	/* The maximum number encodes; names must be valid. */
	for (size_t i = 0; i < AGENTPROTO_MAX_SECRETS; i++) {
		snprintf(m.secrets[i].name, sizeof(m.secrets[i].name), "s%zu",
		    i);
		m.secrets[i].env[0] = '\0';
		m.secrets[i].value = v1;
		m.secrets[i].value_len = 3;
	}
	m.nsecrets = AGENTPROTO_MAX_SECRETS;
	roundtrip(&m);
	assert_int_equal(dm.nsecrets, AGENTPROTO_MAX_SECRETS);
	m.nsecrets = AGENTPROTO_MAX_SECRETS + 1;
	assert_int_equal(agentproto_encode(&m, fbuf, sizeof(fbuf)), -1);
	m.nsecrets = 1;
	snprintf(m.secrets[0].name, sizeof(m.secrets[0].name), "..");
	assert_int_equal(agentproto_encode(&m, fbuf, sizeof(fbuf)), -1);
	snprintf(m.secrets[0].name, sizeof(m.secrets[0].name), "a/b");
	assert_int_equal(agentproto_encode(&m, fbuf, sizeof(fbuf)), -1);
	snprintf(m.secrets[0].name, sizeof(m.secrets[0].name), "ok");
	snprintf(m.secrets[0].env, sizeof(m.secrets[0].env), "9BAD");
	assert_int_equal(agentproto_encode(&m, fbuf, sizeof(fbuf)), -1);
	snprintf(m.secrets[0].env, sizeof(m.secrets[0].env), "A=B");
	assert_int_equal(agentproto_encode(&m, fbuf, sizeof(fbuf)), -1);
}

static void
test_partial_and_sizes(void **state)
{
	char err[128];
	const uint8_t hdr_big[] = { 0, 1, 0, 1 };	/* 65537 > max */
	const uint8_t hdr_zero[] = { 0, 0, 0, 0, 1 };

	(void)state;
	assert_int_equal(agentproto_decode(NULL, 0, &dm, err, sizeof(err)), 0);
	memcpy(fbuf, hdr_big, 4);
	/* Refused on the header alone: nothing is buffered for it. */
	assert_int_equal(dec(4, err), -1);
	assert_non_null(strstr(err, "too large"));
	memcpy(fbuf, hdr_zero, 5);
	assert_int_equal(dec(5, err), -1);
	assert_non_null(strstr(err, "empty"));

	/* The largest frame decodes; trailing bytes are left alone. */
	{
		size_t blen = AGENTPROTO_MAX_FRAME - 1;
		uint8_t *body = calloc(1, blen);

		assert_non_null(body);
		body[0] = 200;	/* unknown tag spanning the frame */
		body[1] = (uint8_t)((blen - 3) >> 8);
		body[2] = (uint8_t)(blen - 3);
		assert_int_equal(mkframe(AGENTPROTO_STATUS, body, blen),
		    4 + AGENTPROTO_MAX_FRAME);
		free(body);
		assert_int_equal(dec(4 + AGENTPROTO_MAX_FRAME + 5, err),
		    4 + AGENTPROTO_MAX_FRAME);
		assert_int_equal(dec(4 + AGENTPROTO_MAX_FRAME - 1, err), 0);
	}
}

static void
test_malformed(void **state)
{
	char err[128];
	size_t n;

	(void)state;
	n = mkframe(99, NULL, 0);
	assert_int_equal(dec(n, err), -1);
	assert_non_null(strstr(err, "type"));
	n = mkframe(0, NULL, 0);
	assert_int_equal(dec(n, err), -1);

	/* DIAL: port missing, port 0, wrong width, repeated. */
	n = mkframe(AGENTPROTO_DIAL, NULL, 0);
	assert_int_equal(dec(n, err), -1);
	n = mkframe(AGENTPROTO_DIAL, (const uint8_t *)"\x02\x00\x02\x00\x00",
	    5);
	assert_int_equal(dec(n, err), -1);
	n = mkframe(AGENTPROTO_DIAL, (const uint8_t *)"\x02\x00\x03\x00\x00\x16",
	    6);
	assert_int_equal(dec(n, err), -1);
	assert_non_null(strstr(err, "width"));
	n = mkframe(AGENTPROTO_DIAL,
	    (const uint8_t *)"\x02\x00\x02\x00\x16\x02\x00\x02\x00\x17", 10);
	assert_int_equal(dec(n, err), -1);
	assert_non_null(strstr(err, "repeated"));

	/* Field header cut, field running past the frame. */
	n = mkframe(AGENTPROTO_DIAL, (const uint8_t *)"\x02\x00", 2);
	assert_int_equal(dec(n, err), -1);
	n = mkframe(AGENTPROTO_DIAL, (const uint8_t *)"\x02\x00\x05\x00\x16",
	    5);
	assert_int_equal(dec(n, err), -1);
	assert_non_null(strstr(err, "past"));

	/* Unknown tags and tags of other types are skipped. */
	n = mkframe(AGENTPROTO_DIAL,
	    (const uint8_t *)"\xc8\x00\x01z\x0b\x00\x01\x01\x02\x00\x02\x00\x16",
	    13);
	assert_int_equal(dec(n, err), (long)n);
	assert_int_equal(dm.port, 22);
	assert_string_equal(dm.reason, "");

	/* Reason with a control character; sshd_up not 0/1; startup 4. */
	n = mkframe(AGENTPROTO_ERR, (const uint8_t *)"\x0b\x00\x02o\n", 5);
	assert_int_equal(dec(n, err), -1);
	n = mkframe(AGENTPROTO_STATUS_REPLY, (const uint8_t *)"\x06\x00\x01\x02",
	    4);
	assert_int_equal(dec(n, err), -1);
	n = mkframe(AGENTPROTO_STATUS_REPLY, (const uint8_t *)"\x09\x00\x01\x04",
	    4);
	assert_int_equal(dec(n, err), -1);

	/* LOG_REPLY: data beyond log_end (absent log_end means 0). */
	n = mkframe(AGENTPROTO_LOG_REPLY, (const uint8_t *)"\x04\x00\x02hi",
	    5);
	assert_int_equal(dec(n, err), -1);
	assert_non_null(strstr(err, "end"));
}

static void
test_bad_secrets(void **state)
{
	char err[128];
	uint8_t body[4096];
	size_t n, bl;

	(void)state;
	/* name ".." */
	n = mkframe(AGENTPROTO_SECRETS,
	    (const uint8_t *)"\x0c\x00\x04\x02..\x00", 7);
	assert_int_equal(dec(n, err), -1);
	/* name with a slash */
	n = mkframe(AGENTPROTO_SECRETS,
	    (const uint8_t *)"\x0c\x00\x05\x03" "a/b\x00", 8);
	assert_int_equal(dec(n, err), -1);
	/* empty name */
	n = mkframe(AGENTPROTO_SECRETS, (const uint8_t *)"\x0c\x00\x02\x00\x00",
	    5);
	assert_int_equal(dec(n, err), -1);
	/* name length beyond the field */
	n = mkframe(AGENTPROTO_SECRETS,
	    (const uint8_t *)"\x0c\x00\x03\x09" "ab", 6);
	assert_int_equal(dec(n, err), -1);
	/* env name starting with a digit */
	n = mkframe(AGENTPROTO_SECRETS,
	    (const uint8_t *)"\x0c\x00\x05\x01" "a\x02" "1Av", 8);
	assert_int_equal(dec(n, err), -1);
	/* duplicate names, then duplicate env names */
	n = mkframe(AGENTPROTO_SECRETS,
	    (const uint8_t *)"\x0c\x00\x03\x01" "a\x00\x0c\x00\x03\x01" "a\x00",
	    12);
	assert_int_equal(dec(n, err), -1);
	assert_non_null(strstr(err, "repeated"));
	n = mkframe(AGENTPROTO_SECRETS,
	    (const uint8_t *)"\x0c\x00\x04\x01" "a\x01X\x0c\x00\x04\x01" "b\x01X",
	    14);
	assert_int_equal(dec(n, err), -1);
	/* 65 secrets */
	bl = 0;
	for (int i = 0; i <= AGENTPROTO_MAX_SECRETS; i++) {
		body[bl++] = 12;
		body[bl++] = 0;
		body[bl++] = 4;
		body[bl++] = 2;
		body[bl++] = (uint8_t)('a' + i / 26);
		body[bl++] = (uint8_t)('a' + i % 26);
		body[bl++] = 0;
	}
	n = mkframe(AGENTPROTO_SECRETS, body, bl);
	assert_int_equal(dec(n, err), -1);
	assert_non_null(strstr(err, "too many"));
	n = mkframe(AGENTPROTO_SECRETS, body, bl - 7);
	assert_int_equal(dec(n, err), (long)n);
	assert_int_equal(dm.nsecrets, AGENTPROTO_MAX_SECRETS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_bytes),
		cmocka_unit_test(test_roundtrip_all),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_partial_and_sizes),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_bad_secrets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
