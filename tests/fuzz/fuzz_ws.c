/*
 * fuzz_ws.c - libFuzzer target for the WebSocket connection code (ws.c).
 *
 * Includes ws.c itself (like wireguard-tools' fuzzers) so that its static
 * parts can be driven without an HTTP request: the upgrade checks on the
 * raw input (key, token lists, UTF-8), then a ws_conn attached to one end
 * of a bufferevent pair receives the input as client bytes (frames) and
 * echoes what it gets. Input byte 0 selects options (EOF after the bytes,
 * a close from the server, a tiny message limit); the rest is the stream.
 */
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>

#include "../../src/lib/ws.c"

struct fz_state {
	bool closed;
	bool close_on_msg;
};

static void
fz_message(struct ws_conn *ws, enum ws_opcode op, const uint8_t *data,
    size_t len, void *arg)
{
	struct fz_state *st = arg;

	if (st->close_on_msg) {
		ws_close(ws, 1000, "done");
		return;
	}
	if (ws_send(ws, op, data, len) != 0)
		return;
}

static void
fz_close(struct ws_conn *ws, uint16_t code, void *arg)
{
	struct fz_state *st = arg;

	st->closed = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct event_base *base;
	struct ws_callbacks cb = { fz_message, fz_close };
	struct fz_state st = { 0 };
	struct bufferevent *pair[2];
	struct ws_conn *ws = NULL;
	struct ws_opts o;
	char s[1025];
	size_t n;
	uint8_t mode;

	if (size < 1)
		return 0;
	if (base == NULL) {
		log_set_level(LOG_ERROR);
		if ((base = event_base_new()) == NULL)
			abort();
	}

	/* The header checks, on the input as a string. */
	n = size - 1 < sizeof(s) - 1 ? size - 1 : sizeof(s) - 1;
	memcpy(s, data + 1, n);
	s[n] = '\0';
	(void)ws_key_ok(s);
	(void)ws_has_token(s, "upgrade");
	(void)ws_utf8_ok(data + 1, size - 1);

	/* The stream. */
	mode = data[0];
	ws_opts_default(&o);
	o.ping_interval_ms = 0;
	o.max_message = (mode & 4) ? 16 : 4096;
	o.max_queued = (mode & 8) ? 64 : 16384;
	st.close_on_msg = (mode & 2) != 0;
	if (bufferevent_pair_new(base, 0, pair) != 0)
		abort();
	if (ws_new(&ws, base, &o, &cb, &st) != 0)
		abort();
	if (ws_start(ws, pair[0], "") != 0)
		abort();	/* ws_start freed ws and pair[0] */
	if (bufferevent_write(pair[1], data + 1, size - 1) != 0)
		abort();
	(void)event_base_loop(base, EVLOOP_NONBLOCK);
	if (mode & 1) {
		/* EOF from the client. */
		bufferevent_free(pair[1]);
		pair[1] = NULL;
	}
	(void)event_base_loop(base, EVLOOP_NONBLOCK);
	if (!st.closed) {
		ws_die(ws, WS_CODE_ABNORMAL);
		(void)event_base_loop(base, EVLOOP_NONBLOCK);
	}
	if (!st.closed)
		abort();	/* teardown must have happened */
	if (pair[1] != NULL)
		bufferevent_free(pair[1]);
	return 0;
}
