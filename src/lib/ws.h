/*
 * ws.h - WebSocket server side (RFC 6455) over wslay.
 *
 * ws_accept() validates an HTTP Upgrade request (GET, Upgrade: websocket,
 * Connection: upgrade, Sec-WebSocket-Version: 13, a 16-byte base64 key, and
 * an Origin allowed by the caller), answers 101 with Sec-WebSocket-Accept,
 * takes the connection from the HTTP core and frames with wslay. A request
 * that is not a valid upgrade gets a 400 and nothing is taken over.
 *
 * Messages larger than max_message are refused with close code 1009; output
 * queued beyond max_queued bytes closes the connection (slow reader).
 * All calls on the loop thread that owned the request.
 */
#ifndef MOAT_WS_H
#define MOAT_WS_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "http.h"

struct ws_conn;

enum ws_opcode { WS_TEXT = 1, WS_BINARY = 2 };

struct ws_callbacks {
	/* A whole message (fragments joined). data is borrowed. */
	void (*on_message)(struct ws_conn *ws, enum ws_opcode op,
	    const uint8_t *data, size_t len, void *arg);
	/* The connection is gone (close frame, error, timeout); ws is freed
	 * right after this returns. */
	void (*on_close)(struct ws_conn *ws, uint16_t code, void *arg);
};

struct ws_opts {
	size_t max_message;		/* default 1 MiB */
	size_t max_queued;		/* default 4 MiB */
	unsigned ping_interval_ms;	/* 0: no pings; default 30 s */
	/* NULL-terminated allowed Origin values; NULL allows any (non-browser). */
	const char *const *allowed_origins;
	const char *subprotocol;	/* echoed when the client offers it; NULL none */
};
void ws_opts_default(struct ws_opts *o);

/* Computes Sec-WebSocket-Accept for key into out (29 bytes with NUL). */
int ws_accept_key(const char *key, char out[29]) MOAT_MUST_CHECK;

/* Upgrades req. On success *out is the connection and req is consumed; on
 * failure req has been answered with an error and is consumed too. */
int ws_accept(struct ws_conn **out, struct http_request *req,
    const struct ws_opts *opts, const struct ws_callbacks *cb, void *arg)
    MOAT_MUST_CHECK;

int ws_send(struct ws_conn *ws, enum ws_opcode op, const void *data, size_t len)
    MOAT_MUST_CHECK;
/* Starts the closing handshake; on_close follows. */
void ws_close(struct ws_conn *ws, uint16_t code, const char *reason);

#endif
