/*
 * test_relay.c - unit tests for relay.c over real socketpairs: bytes both
 * ways (with bytes already buffered before the start), half-close in each
 * direction, bounded buffers against a reader that stops, the idle
 * timeout, filters (refusing and passing), one-way mode (client bytes
 * never reach the upstream) and a reset; bulk transfers both ways over
 * TCP on loopback and over unix sockets, which the relay splices (the
 * bytes checked whole and in order, splice's share reported).
 */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "relay.h"

struct fx {
	struct event_base *base;
	int cli[2], ups[2];		/* [0] in the relay, [1] the test's end */
	struct bufferevent *cbev, *ubev;
	struct relay *r;
	bool done;
	struct relay_stats st;
};

static void
on_done(const struct relay_stats *st, void *arg)
{
	struct fx *f = arg;

	f->done = true;
	f->st = *st;
	f->r = NULL;
}

static void
nonblock(int fd)
{
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
}

/* A connected TCP pair on 127.0.0.1. */
static void
tcp_pair(int sv[2])
{
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	int ls = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(ls >= 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(ls, 1), 0);
	assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &al), 0);
	sv[1] = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(sv[1] >= 0);
	assert_int_equal(connect(sv[1], (struct sockaddr *)&a, sizeof(a)), 0);
	sv[0] = accept(ls, NULL, NULL);
	assert_true(sv[0] >= 0);
	close(ls);
}

static void
fx_start_on(struct fx *f, const struct relay_opts *o, bool tcp)
{
	memset(f, 0, sizeof(*f));
	f->base = event_base_new();
	assert_non_null(f->base);
	if (tcp) {
		tcp_pair(f->cli);
		tcp_pair(f->ups);
	} else {
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->cli), 0);
		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, f->ups), 0);
	}
	for (int i = 0; i < 2; i++) {
		nonblock(f->cli[i]);
		nonblock(f->ups[i]);
	}
	f->cbev = bufferevent_socket_new(f->base, f->cli[0], BEV_OPT_CLOSE_ON_FREE);
	f->ubev = bufferevent_socket_new(f->base, f->ups[0], BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(f->cbev);
	assert_non_null(f->ubev);
	/* What a client sent after its CONNECT head. */
	/* (A bufferevent's input end is frozen outside its own reads.) */
	evbuffer_unfreeze(bufferevent_get_input(f->cbev), 0);
	assert_int_equal(evbuffer_add(bufferevent_get_input(f->cbev), "pre:", 4), 0);
	evbuffer_freeze(bufferevent_get_input(f->cbev), 0);
	assert_int_equal(relay_start(f->base, f->cbev, f->ubev, o, on_done, f,
	    &f->r), 0);
}

static void
fx_start(struct fx *f, const struct relay_opts *o)
{
	fx_start_on(f, o, false);
}

static void
fx_end(struct fx *f)
{
	if (f->r != NULL)
		relay_abort(f->r);
	assert_true(f->done);
	close(f->cli[1]);
	close(f->ups[1]);
	event_base_free(f->base);
}

static void
turn(struct fx *f)
{
	(void)event_base_loop(f->base, EVLOOP_NONBLOCK);
	(void)event_base_loop(f->base, EVLOOP_NONBLOCK);
}

/* Reads from fd (the test's end) until want bytes or EOF, driving the loop.
 * Returns bytes read; *eof set when EOF was seen. 3 s at most. */
static size_t
read_some(struct fx *f, int fd, char *out, size_t want, bool *eof)
{
	size_t got = 0;

	*eof = false;
	for (int i = 0; i < 3000 && got < want && !*eof; i++) {
		ssize_t k = read(fd, out + got, want - got);

		if (k > 0) {
			got += (size_t)k;
			continue;
		}
		if (k == 0) {
			*eof = true;
			break;
		}
		assert_true(errno == EAGAIN);
		turn(f);
		usleep(1000);
	}
	return got;
}

static void
wait_done(struct fx *f, int ms)
{
	for (int i = 0; i < ms && !f->done; i++) {
		turn(f);
		usleep(1000);
	}
}

static void
test_both_ways_and_half_close(void **state)
{
	struct relay_opts o = { .idle_timeout_ms = 5000 };
	struct fx f;
	char buf[64];
	bool eof;

	(void)state;
	fx_start(&f, &o);
	assert_int_equal(write(f.cli[1], "hello", 5), 5);
	assert_int_equal(read_some(&f, f.ups[1], buf, 9, &eof), 9);
	assert_memory_equal(buf, "pre:hello", 9);
	assert_int_equal(write(f.ups[1], "world", 5), 5);
	assert_int_equal(read_some(&f, f.cli[1], buf, 5, &eof), 5);
	assert_memory_equal(buf, "world", 5);

	/* Client half-closes: the upstream sees EOF, and can still answer. */
	assert_int_equal(shutdown(f.cli[1], SHUT_WR), 0);
	assert_int_equal(read_some(&f, f.ups[1], buf, sizeof(buf), &eof), 0);
	assert_true(eof);
	assert_false(f.done);
	assert_int_equal(write(f.ups[1], "late", 4), 4);
	assert_int_equal(read_some(&f, f.cli[1], buf, 4, &eof), 4);
	assert_memory_equal(buf, "late", 4);
	assert_int_equal(shutdown(f.ups[1], SHUT_WR), 0);
	assert_int_equal(read_some(&f, f.cli[1], buf, sizeof(buf), &eof), 0);
	assert_true(eof);
	wait_done(&f, 1000);
	assert_true(f.done);
	assert_int_equal(f.st.err, 0);
	assert_int_equal(f.st.bytes_up, 9);
	assert_int_equal(f.st.bytes_down, 9);
	fx_end(&f);
}

static void
test_upstream_half_close_first(void **state)
{
	struct relay_opts o = { 0 };
	struct fx f;
	char buf[64];
	bool eof;

	(void)state;
	fx_start(&f, &o);
	assert_int_equal(write(f.ups[1], "banner", 6), 6);
	assert_int_equal(shutdown(f.ups[1], SHUT_WR), 0);
	assert_int_equal(read_some(&f, f.cli[1], buf, sizeof(buf), &eof), 6);
	assert_true(eof || read_some(&f, f.cli[1], buf, sizeof(buf), &eof) == 0);
	assert_true(eof);
	assert_int_equal(write(f.cli[1], "bye", 3), 3);
	assert_int_equal(read_some(&f, f.ups[1], buf, 7, &eof), 7);
	assert_memory_equal(buf, "pre:bye", 7);
	close(f.cli[1]);
	f.cli[1] = -1;
	wait_done(&f, 1000);
	assert_true(f.done);
	fx_end(&f);
}

static void
test_bounded_buffers(void **state)
{
	struct relay_opts o = { .high_water = 64 * 1024, .filter_max = 1024 };
	struct fx f;
	size_t total = 8 * 1024 * 1024, sent = 0, got = 0, max_out = 0;
	char *chunk = malloc(65536), *rb = malloc(65536);
	bool eof;

	(void)state;
	assert_non_null(chunk);
	assert_non_null(rb);
	for (size_t i = 0; i < 65536; i++)
		chunk[i] = (char)(i * 7);
	fx_start(&f, &o);
	/* The upstream does not read: the client can only fill the relay's
	 * bounded buffers and the sockets' own. */
	for (int i = 0; i < 2000 && sent < total; i++) {
		ssize_t k = write(f.cli[1], chunk + sent % 65536,
		    65536 - sent % 65536);

		if (k > 0)
			sent += (size_t)k;
		turn(&f);
		if (evbuffer_get_length(bufferevent_get_output(f.ubev)) > max_out)
			max_out = evbuffer_get_length(bufferevent_get_output(f.ubev));
		assert_true(evbuffer_get_length(bufferevent_get_input(f.cbev)) <=
		    o.high_water + 65536);
	}
	assert_true(sent < total);		/* back-pressure reached the client */
	assert_true(max_out <= o.high_water);
	/* Now drain everything and check it arrived whole. */
	got = read_some(&f, f.ups[1], rb, 4, &eof);
	assert_int_equal(got, 4);
	assert_memory_equal(rb, "pre:", 4);
	got = 0;
	eof = false;
	for (int i = 0; i < 100000 && !eof; i++) {
		ssize_t k = read(f.ups[1], rb, 65536);

		if (k == 0)
			eof = true;
		if (k > 0) {
			for (ssize_t j = 0; j < k; j++)
				assert_int_equal(rb[j], (char)((got + (size_t)j) % 65536 * 7));
			got += (size_t)k;
		}
		/* Keep the client side sending the rest, then EOF. */
		if (sent < total) {
			ssize_t w = write(f.cli[1], chunk + sent % 65536,
			    65536 - sent % 65536);

			if (w > 0)
				sent += (size_t)w;
			if (sent == total)
				assert_int_equal(shutdown(f.cli[1], SHUT_WR), 0);
		}
		turn(&f);
		assert_true(evbuffer_get_length(bufferevent_get_output(f.ubev)) <=
		    o.high_water);
	}
	assert_true(eof);
	assert_int_equal(sent, total);
	assert_int_equal(got, sent);
	free(chunk);
	free(rb);
	fx_end(&f);
}

static void
test_idle_timeout(void **state)
{
	struct relay_opts o = { .idle_timeout_ms = 100 };
	struct fx f;
	char buf[8];
	bool eof;
	struct timespec a, b;

	(void)state;
	fx_start(&f, &o);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(read_some(&f, f.ups[1], buf, 4, &eof), 4);
	wait_done(&f, 2000);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_true(f.done);
	assert_int_equal(f.st.err, MOAT_ERR_TIMEOUT);
	assert_true((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 >= 90);
	/* Both ends were closed. */
	assert_int_equal(read_some(&f, f.cli[1], buf, sizeof(buf), &eof), 0);
	assert_true(eof);
	fx_end(&f);
}

static int
need_ok(struct evbuffer *src, struct evbuffer *dst, bool eof, void *arg)
{
	unsigned char *p;

	(void)dst;
	(void)eof;
	(*(int *)arg)++;
	if (evbuffer_get_length(src) < 6)
		return MOAT_ERR_AGAIN;
	p = evbuffer_pullup(src, 6);
	return memcmp(p, "pre:OK", 6) == 0 ? 0 : MOAT_ERR_PERM;
}

static void
test_filters(void **state)
{
	int calls = 0;
	struct relay_opts o = { .filter_up = need_ok, .filter_arg = &calls };
	struct fx f;
	char buf[32];
	bool eof;

	(void)state;
	/* Refused: nothing reaches the upstream, both ends close. */
	fx_start(&f, &o);
	assert_int_equal(write(f.cli[1], "NO", 2), 2);
	wait_done(&f, 1000);
	assert_true(f.done);
	assert_int_equal(f.st.err, MOAT_ERR_PERM);
	assert_int_equal(read_some(&f, f.ups[1], buf, sizeof(buf), &eof), 0);
	assert_true(eof);
	fx_end(&f);

	/* Passed in two pieces: everything goes through, filter first. */
	fx_start(&f, &o);
	assert_int_equal(write(f.cli[1], "O", 1), 1);
	turn(&f);
	assert_int_equal(write(f.cli[1], "K rest", 6), 6);
	assert_int_equal(read_some(&f, f.ups[1], buf, 11, &eof), 11);
	assert_memory_equal(buf, "pre:OK rest", 11);
	assert_true(calls >= 2);
	fx_end(&f);
	assert_int_equal(f.st.err, MOAT_ERR_CLOSED);
}

static void
test_one_way(void **state)
{
	struct relay_opts o = { .one_way = true };
	struct fx f;
	char buf[64];
	bool eof;
	ssize_t k;

	(void)state;
	fx_start(&f, &o);
	/* A pipelined second request must never reach the upstream. */
	assert_int_equal(write(f.cli[1], "GET http://other/ HTTP/1.1\r\n\r\n", 30), 30);
	assert_int_equal(write(f.ups[1], "response", 8), 8);
	assert_int_equal(shutdown(f.ups[1], SHUT_WR), 0);
	assert_int_equal(read_some(&f, f.cli[1], buf, 8, &eof), 8);
	assert_memory_equal(buf, "response", 8);
	assert_int_equal(read_some(&f, f.cli[1], buf, sizeof(buf), &eof), 0);
	assert_true(eof);
	close(f.cli[1]);
	f.cli[1] = -1;
	wait_done(&f, 1000);
	assert_true(f.done);
	assert_int_equal(f.st.err, 0);
	assert_int_equal(f.st.bytes_up, 0);
	k = read(f.ups[1], buf, sizeof(buf));
	assert_int_equal(k, 0);		/* closed, nothing was written */
	fx_end(&f);
}

static void
test_reset_ends_relay(void **state)
{
	struct relay_opts o = { 0 };
	struct fx f;
	char buf[8];
	bool eof;

	(void)state;
	fx_start(&f, &o);
	assert_int_equal(read_some(&f, f.ups[1], buf, 4, &eof), 4);
	close(f.ups[1]);
	f.ups[1] = -1;
	assert_int_equal(write(f.cli[1], "more data", 9), 9);
	wait_done(&f, 1000);
	assert_true(f.done);
	fx_end(&f);
}

/* The byte at offset i of a bulk stream (dir 0 or 1). */
static char
pat(size_t i, int dir)
{
	return (char)((i * 31 + i / 4093 + (size_t)dir * 7) & 0xff);
}

/* 8 MiB down and 1 MiB up at once, the test's ends reading slowly at
 * times, then half-closes both ways: every byte arrives in order, the
 * relay ends cleanly, and (plain sockets) most bytes went by splice. */
static void
bulk(bool tcp)
{
	struct relay_opts o = { .idle_timeout_ms = 10000 };
	const size_t down_total = 8u << 20, up_total = 1u << 20;
	size_t down_sent = 0, down_got = 0, up_sent = 0, up_got = 0;
	char *wb = malloc(65536), *rb = malloc(65536);
	bool down_eof = false, up_eof = false;
	struct fx f;

	assert_non_null(wb);
	assert_non_null(rb);
	fx_start_on(&f, &o, tcp);
	for (int i = 0; i < 200000 && (!down_eof || !up_eof); i++) {
		ssize_t k;

		if (down_sent < down_total) {
			size_t n = down_total - down_sent < 65536 ?
			    down_total - down_sent : 65536;

			for (size_t j = 0; j < n; j++)
				wb[j] = pat(down_sent + j, 0);
			if ((k = write(f.ups[1], wb, n)) > 0)
				down_sent += (size_t)k;
			if (down_sent == down_total)
				assert_int_equal(shutdown(f.ups[1], SHUT_WR), 0);
		}
		if (up_sent < up_total) {
			size_t n = up_total - up_sent < 65536 ?
			    up_total - up_sent : 65536;

			for (size_t j = 0; j < n; j++)
				wb[j] = pat(up_sent + j, 1);
			if ((k = write(f.cli[1], wb, n)) > 0)
				up_sent += (size_t)k;
			if (up_sent == up_total)
				assert_int_equal(shutdown(f.cli[1], SHUT_WR), 0);
		}
		turn(&f);
		/* Every seventh round the client does not read: back-pressure. */
		if (i % 7 != 0 && !down_eof) {
			k = read(f.cli[1], rb, 65536);
			if (k == 0)
				down_eof = true;
			for (ssize_t j = 0; j < k; j++)
				assert_int_equal(rb[j], pat(down_got + (size_t)j, 0));
			if (k > 0)
				down_got += (size_t)k;
		}
		if (!up_eof) {
			k = read(f.ups[1], rb, 65536);
			if (k == 0)
				up_eof = true;
			/* The client's "pre:" came first, through the buffers. */
			for (ssize_t j = 0; j < k; j++) {
				size_t at = up_got + (size_t)j;

				assert_int_equal(rb[j], at < 4 ? "pre:"[at] :
				    pat(at - 4, 1));
			}
			if (k > 0)
				up_got += (size_t)k;
		}
		assert_true(evbuffer_get_length(bufferevent_get_output(f.cbev)) <=
		    256 * 1024);
	}
	assert_true(down_eof);
	assert_true(up_eof);
	assert_int_equal(down_got, down_total);
	assert_int_equal(up_got, up_total + 4);
	wait_done(&f, 2000);
	assert_true(f.done);
	assert_int_equal(f.st.err, 0);
	assert_int_equal(f.st.bytes_down, down_total);
	assert_int_equal(f.st.bytes_up, up_total + 4);
	/* Most went by splice: only reads made while the "pre:" (or the
	 * first bytes) still waited in the buffers went the buffered way. */
	assert_true(f.st.bytes_spliced >= (down_total + up_total) / 2);
	free(wb);
	free(rb);
	fx_end(&f);
}

static void
test_bulk_tcp_spliced(void **state)
{
	(void)state;
	bulk(true);
}

static void
test_bulk_unix_spliced(void **state)
{
	(void)state;
	bulk(false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_both_ways_and_half_close),
		cmocka_unit_test(test_upstream_half_close_first),
		cmocka_unit_test(test_bounded_buffers),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_filters),
		cmocka_unit_test(test_one_way),
		cmocka_unit_test(test_reset_ends_relay),
		cmocka_unit_test(test_bulk_tcp_spliced),
		cmocka_unit_test(test_bulk_unix_spliced),
	};

	signal(SIGPIPE, SIG_IGN);	/* as loop_group_run does */

	return cmocka_run_group_tests(tests, NULL, NULL);
}
