/*
 * relay.h - moving bytes both ways between a client and an upstream
 * connection, with bounded memory.
 *
 * Both ends are bufferevents on one event base (the loop thread that owns
 * the client). Bytes already waiting in either input buffer are forwarded
 * first (for the client, what it sent after its CONNECT head). Per
 * direction at most high_water bytes wait in the destination's output:
 * past that, the source is not read until the destination drains to half
 * (so memory per tunnel is bounded, and an idle tunnel holds no buffer
 * chains at all). EOF from one side is passed on as a half-close
 * (shutdown(SHUT_WR)) once everything before it was written; the relay ends
 * when both directions are finished, on an error, or after idle_timeout_ms
 * without a byte either way.
 *
 * Filters: before a direction relays raw bytes, an optional filter sees its
 * input and may consume it and write to the destination (moat-proxy checks
 * the TLS ClientHello of a tunnel). One-way mode relays upstream to client
 * only and discards whatever the client sends.
 *
 * Implementation: bufferevents write; plain sockets are read by the relay
 * itself (up to 128 KiB per read(2): libevent 2.1 reads 4 KiB at a time)
 * into evbuffers whose chains move to the other side without copying.
 * A direction between two plain sockets, once its filter is done and its
 * buffers are empty, moves bytes with splice(2) through a pipe made for it
 * (bounded like the buffers: at most high_water, or the pipe's default
 * size when the kernel refuses more, waits in it); when no pipe can be
 * made or the sockets do not support splice it stays buffered. TLS
 * bufferevents are read through libevent.
 */
#ifndef MOAT_PROXY_RELAY_H
#define MOAT_PROXY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "errors.h"

struct relay;

/* Looks at src (the direction's input, borrowed) and may drain it and add
 * to dst (the other side's output). Returns 0 when done (from now on the
 * direction is relayed raw, starting with what is left in src),
 * MOAT_ERR_AGAIN to be called again when more input arrives, or another
 * negative code to end the relay with that code. eof: no more input will
 * come. */
typedef int (*relay_filter_fn)(struct evbuffer *src, struct evbuffer *dst,
    bool eof, void *arg);

struct relay_opts {
	unsigned idle_timeout_ms;	/* 0: none */
	size_t high_water;		/* per direction; 0: 256 KiB */
	bool one_way;			/* upstream to client only */
	relay_filter_fn filter_up;	/* client to upstream; NULL: none */
	relay_filter_fn filter_down;	/* upstream to client; NULL: none */
	void *filter_arg;
	size_t filter_max;		/* input a filter may hold; 0: 64 KiB */
};

struct relay_stats {
	uint64_t bytes_up;		/* read from the client (not one-way) */
	uint64_t bytes_down;		/* read from the upstream */
	uint64_t bytes_spliced;		/* of both, moved with splice(2) */
	uint64_t duration_ns;		/* relay_start to the end */
	/* 0: both sides finished; MOAT_ERR_TIMEOUT: idle; MOAT_ERR_IO: a
	 * socket error or reset; MOAT_ERR_CLOSED: relay_abort; a filter's
	 * code; MOAT_ERR_TOOBIG: a filter held filter_max bytes. */
	int err;
};

/* Called once when the relay ends, after both bufferevents were freed; the
 * relay itself is freed right after the call returns. */
typedef void (*relay_done_fn)(const struct relay_stats *st, void *arg);

/* Takes ownership of client and upstream (connected bufferevents on base)
 * in every case: on failure they are freed and done is not called. *out
 * (may be NULL) is valid until done runs. */
int relay_start(struct event_base *base, struct bufferevent *client,
    struct bufferevent *upstream, const struct relay_opts *opts,
    relay_done_fn done, void *arg, struct relay **out) MOAT_MUST_CHECK;

/* Ends the relay now (done runs with MOAT_ERR_CLOSED before this returns).
 * Owning thread only. */
void relay_abort(struct relay *r);

#endif
