/*
 * test_gwctl.c - unit tests for the SSH gateway's control protocol
 * (gateway/gwctl.c): every child message accepted with its fields, and
 * refused when framed wrong, of a parent-only or unknown type, with an
 * audit type off the allow-list, a bad outcome, recording text that is
 * not whole lines or holds a NUL, a channel out of range, unknown or
 * missing fields, duplicate keys, oversized strings; real sends over a
 * SOCK_SEQPACKET pair with descriptors (SCM_RIGHTS), a truncated packet,
 * a closed peer and an empty non-blocking socket.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "gateway/gwctl.h"

static uint8_t pkt[GWCTL_MAX_MSG + 64];

/* Frames text as one packet in pkt; returns its length. */
static size_t
frame(const char *text)
{
	size_t n = strlen(text);

	pkt[0] = (uint8_t)(n >> 24);
	pkt[1] = (uint8_t)(n >> 16);
	pkt[2] = (uint8_t)(n >> 8);
	pkt[3] = (uint8_t)n;
	memcpy(pkt + 4, text, n);
	return n + 4;
}

static int
parse(const char *text, struct gwctl_msg *m)
{
	char err[128] = "";
	int r = gwctl_parse_child(pkt, frame(text), m, err, sizeof(err));

	if (r != 0)
		assert_true(err[0] != '\0');
	return r;
}

static void
refused(const char *text)
{
	struct gwctl_msg m;

	if (parse(text, &m) == 0)
		fail_msg("accepted: %s", text);
	assert_null(m.obj);
}

static void
test_accepts(void **state)
{
	struct gwctl_msg m;

	(void)state;
	assert_int_equal(parse("{\"t\":\"auth\",\"login\":\"bob.ws\",\"key\":"
	    "\"ssh-ed25519 AAAA\",\"signed\":true}", &m), 0);
	assert_int_equal(m.type, GWCTL_AUTH);
	assert_string_equal(m.login, "bob.ws");
	assert_string_equal(m.key, "ssh-ed25519 AAAA");
	assert_true(m.is_signed);
	gwctl_msg_clear(&m);
	assert_null(m.obj);

	assert_int_equal(parse("{\"t\":\"rec\",\"ch\":7,\"data\":"
	    "\"[1.0, \\\"o\\\", \\\"x\\\"]\\n\"}", &m), 0);
	assert_int_equal(m.type, GWCTL_REC);
	assert_int_equal(m.ch, 7);
	assert_int_equal(m.text_len, strlen("[1.0, \"o\", \"x\"]\n"));
	gwctl_msg_clear(&m);

	assert_int_equal(parse("{\"t\":\"rec_end\",\"ch\":0,\"duration\":2}",
	    &m), 0);
	assert_true(m.duration == 2.0);
	gwctl_msg_clear(&m);

	assert_int_equal(parse("{\"t\":\"audit\",\"type\":\"session.end\","
	    "\"outcome\":\"success\",\"details\":{\"channel\":1,\"bytes_in\":5}}",
	    &m), 0);
	assert_string_equal(m.audit_type, "session.end");
	assert_string_equal(m.outcome, "success");
	assert_int_equal(json_integer_value(json_object_get(m.details,
	    "bytes_in")), 5);
	gwctl_msg_clear(&m);

	assert_int_equal(parse("{\"t\":\"activity\",\"in\":1,\"out\":2,"
	    "\"forwards\":3}", &m), 0);
	assert_int_equal(m.bytes_in, 1);
	assert_int_equal(m.bytes_out, 2);
	assert_int_equal(m.forwards, 3);
	gwctl_msg_clear(&m);
}

static void
test_refuses(void **state)
{
	struct gwctl_msg m;
	char err[64];
	char *big;
	size_t n;

	(void)state;
	/* framing */
	assert_int_equal(gwctl_parse_child(pkt, 3, &m, err, sizeof(err)),
	    MOAT_ERR_PARSE);
	n = frame("{\"t\":\"activity\",\"in\":1,\"out\":2,\"forwards\":3}");
	pkt[3]++;
	assert_int_equal(gwctl_parse_child(pkt, n, &m, err, sizeof(err)),
	    MOAT_ERR_PARSE);
	assert_int_equal(gwctl_parse_child(pkt, GWCTL_MAX_MSG + 1, &m, err,
	    sizeof(err)), MOAT_ERR_TOOBIG);
	/* types */
	refused("{\"t\":\"upstream\",\"host_pub\":\"x\",\"user\":\"u\"}");
	refused("{\"t\":\"auth_result\",\"ok\":true,\"message\":\"\"}");
	refused("{\"t\":\"nope\"}");
	refused("{\"x\":1}");
	refused("[1,2]");
	refused("{\"t\":\"activity\",\"t\":\"activity\",\"in\":1,\"out\":2,"
	    "\"forwards\":3}");
	/* fields */
	refused("{\"t\":\"auth\",\"login\":\"ws\",\"key\":\"k\"}");
	refused("{\"t\":\"auth\",\"login\":\"ws\",\"key\":\"k\",\"signed\":1}");
	refused("{\"t\":\"auth\",\"login\":\"w\\u0000s\",\"key\":\"k\","
	    "\"signed\":true}");
	refused("{\"t\":\"auth\",\"login\":\"ws\",\"key\":\"k\",\"signed\":true,"
	    "\"extra\":1}");
	refused("{\"t\":\"rec\",\"ch\":1,\"data\":\"no newline\"}");
	refused("{\"t\":\"rec\",\"ch\":1,\"data\":\"\"}");
	refused("{\"t\":\"rec\",\"ch\":1,\"data\":\"a\\u0000b\\n\"}");
	refused("{\"t\":\"rec\",\"ch\":1024,\"data\":\"x\\n\"}");
	refused("{\"t\":\"rec\",\"ch\":-1,\"data\":\"x\\n\"}");
	refused("{\"t\":\"rec_end\",\"ch\":1,\"duration\":-1}");
	refused("{\"t\":\"audit\",\"type\":\"user.delete\",\"outcome\":"
	    "\"success\",\"details\":{}}");
	refused("{\"t\":\"audit\",\"type\":\"session.end\",\"outcome\":"
	    "\"maybe\",\"details\":{}}");
	refused("{\"t\":\"audit\",\"type\":\"session.end\",\"outcome\":"
	    "\"success\",\"details\":[]}");
	refused("{\"t\":\"activity\",\"in\":-1,\"out\":2,\"forwards\":3}");
	/* an oversized login */
	big = malloc(300);
	assert_non_null(big);
	memset(big, 'a', 299);
	big[299] = '\0';
	{
		char text[512];

		snprintf(text, sizeof(text), "{\"t\":\"auth\",\"login\":\"%s\","
		    "\"key\":\"k\",\"signed\":true}", big);
		refused(text);
	}
	free(big);
}

static void
test_socket_roundtrip(void **state)
{
	int sv[2], fds[2], got[GWCTL_MAX_FDS], pfd[2];
	uint8_t buf[GWCTL_MAX_MSG];
	size_t len, nfds;
	json_t *o;
	struct gwctl_msg m;
	char err[64], c = 0;
	struct stat a, b;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0,
	    sv), 0);
	assert_int_equal(pipe(pfd), 0);
	fds[0] = pfd[0];
	fds[1] = pfd[1];
	o = json_pack("{s:s,s:s}", "t", "progress", "text", "starting");
	assert_int_equal(gwctl_send(sv[0], o, fds, 2), 0);
	json_decref(o);
	assert_int_equal(gwctl_recv(sv[1], buf, sizeof(buf), &len, got, &nfds),
	    0);
	assert_int_equal(nfds, 2);
	assert_true((fcntl(got[0], F_GETFD) & FD_CLOEXEC) != 0);
	assert_int_equal(fstat(got[0], &a), 0);
	assert_int_equal(fstat(pfd[0], &b), 0);
	assert_true(a.st_ino == b.st_ino);
	/* The descriptors work: write on the received end, read the pipe. */
	assert_int_equal(write(got[1], "z", 1), 1);
	assert_int_equal(read(pfd[0], &c, 1), 1);
	assert_int_equal(c, 'z');
	close(got[0]);
	close(got[1]);
	assert_int_equal(gwctl_parse_parent(buf, len, &m, err, sizeof(err)), 0);
	assert_int_equal(m.type, GWCTL_PROGRESS);
	assert_string_equal(m.text, "starting");
	gwctl_msg_clear(&m);
	/* The parent's parser refuses what only a parent sends. */
	assert_int_not_equal(gwctl_parse_child(buf, len, &m, err,
	    sizeof(err)), 0);

	/* Nothing there on a non-blocking socket. */
	assert_int_equal(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
	assert_int_equal(gwctl_recv(sv[1], buf, sizeof(buf), &len, got, &nfds),
	    MOAT_ERR_AGAIN);
	/* A packet larger than the buffer is refused, not cut. */
	o = json_pack("{s:s,s:s}", "t", "progress", "text",
	    "0123456789012345678901234567890123456789");
	assert_int_equal(gwctl_send(sv[0], o, NULL, 0), 0);
	json_decref(o);
	assert_int_equal(gwctl_recv(sv[1], buf, 16, &len, got, &nfds),
	    MOAT_ERR_TOOBIG);
	/* The peer gone. */
	close(sv[0]);
	assert_int_equal(gwctl_recv(sv[1], buf, sizeof(buf), &len, got, &nfds),
	    MOAT_ERR_CLOSED);
	close(sv[1]);
	close(pfd[0]);
	close(pfd[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_refuses),
		cmocka_unit_test(test_socket_roundtrip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
