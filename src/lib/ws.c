/*
 * ws.c - WebSocket server connections (RFC 6455) over wslay (see ws.h).
 *
 * ws_accept() checks the upgrade request, writes the 101 answer itself and
 * takes the bufferevent from the HTTP core. From then on the connection is
 * driven by its bufferevent callbacks: input bytes go through wslay (which
 * joins fragments, answers pings and enforces max_message with close code
 * 1009), frames wslay produces are appended to the bufferevent's output.
 *
 * Bounds: a message is at most max_message bytes (wslay keeps at most that
 * much per message); input is read only while wslay wants it; output is
 * counted (wslay's queue plus the bufferevent's output) and a ws_send()
 * that would pass max_queued drops the connection (a slow reader must not
 * make us hold unbounded memory).
 *
 * Lifetime: a ws_conn is never freed inside one of its own callbacks or a
 * caller's ws_* call. Teardown is requested (ws->dead) and done from a
 * deferred event, which calls on_close exactly once and then frees.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include "log.h"
#include "ws.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_DEFAULT_MAX_MESSAGE (1024 * 1024)
#define WS_DEFAULT_MAX_QUEUED (4 * 1024 * 1024)
#define WS_DEFAULT_PING_MS 30000
#define WS_CLOSE_WAIT_MS 5000	/* our close sent, waiting for theirs */
#define WS_HDR_MAX 1024		/* longest header value we look at */

/* Close codes (RFC 6455 section 7.4.1). */
#define WS_CODE_GOING_AWAY 1001
#define WS_CODE_ABNORMAL 1006	/* reported only, never sent */
#define WS_CODE_BAD_DATA 1007
#define WS_CODE_INTERNAL 1011

struct ws_conn {
	struct bufferevent *bev;	/* owned */
	struct event_base *base;	/* borrowed */
	wslay_event_context_ptr ctx;	/* owned */
	struct ws_callbacks cb;
	void *arg;
	size_t max_queued;
	unsigned ping_ms;
	struct event *defer_ev;		/* kick / teardown; owned */
	struct event *ping_ev;		/* owned; NULL without pings */
	struct event *close_ev;		/* close-handshake timeout; owned */
	bool alive;			/* bytes seen since the last ping */
	bool dead;			/* teardown requested */
	bool flushing;			/* closing: waiting for output drain */
	bool in_recv;			/* inside wslay_event_recv() */
	uint16_t dead_code;		/* code reported when dead */
};

void
ws_opts_default(struct ws_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_message = WS_DEFAULT_MAX_MESSAGE;
	o->max_queued = WS_DEFAULT_MAX_QUEUED;
	o->ping_interval_ms = WS_DEFAULT_PING_MS;
}

int
ws_accept_key(const char *key, char out[29])
{
	unsigned char md[SHA_DIGEST_LENGTH];
	unsigned char in[64];
	size_t klen;

	if (key == NULL)
		return MOAT_ERR_INVAL;
	klen = strlen(key);
	if (klen + sizeof(WS_GUID) - 1 > sizeof(in))
		return MOAT_ERR_INVAL;
	memcpy(in, key, klen);
	memcpy(in + klen, WS_GUID, sizeof(WS_GUID) - 1);
	if (SHA1(in, klen + sizeof(WS_GUID) - 1, md) == NULL)
		return MOAT_ERR_CRYPTO;
	/* 20 bytes -> 28 base64 characters and a NUL. */
	if (EVP_EncodeBlock((unsigned char *)out, md, sizeof(md)) != 28)
		return MOAT_ERR_CRYPTO;
	return 0;
}

/* --- Upgrade request checks (pure, on header values) ------------------ */

static bool
ws_is_b64(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* True when key is the canonical base64 form of exactly 16 bytes:
 * 22 characters, the last carrying 2 bits (so 4 zero bits), then "==". */
static bool
ws_key_ok(const char *key)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char *p;

	if (key == NULL || strlen(key) != 24)
		return false;
	for (int i = 0; i < 22; i++)
		if (!ws_is_b64((unsigned char)key[i]))
			return false;
	if (key[22] != '=' || key[23] != '=')
		return false;
	p = strchr(b64, key[21]);
	return p != NULL && ((p - b64) & 0x0f) == 0;
}

/* True when the comma-separated list has token (case-insensitive),
 * ignoring optional whitespace around elements. */
static bool
ws_has_token(const char *list, const char *token)
{
	size_t tlen = strlen(token);
	const char *p = list;

	if (list == NULL || strlen(list) > WS_HDR_MAX)
		return false;
	while (*p != '\0') {
		const char *s, *e;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		s = p;
		while (*p != '\0' && *p != ',')
			p++;
		e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == tlen && strncasecmp(s, token, tlen) == 0)
			return true;
	}
	return false;
}

/* Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static bool
ws_utf8_ok(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = s[i];
		size_t len;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* Checks the upgrade request; on failure *why says what was wrong (a
 * static string, safe for the client). */
static int
ws_check_request(struct http_request *req, const struct ws_opts *o,
    const char **why)
{
	const char *v;

	if (strcmp(http_req_method(req), "GET") != 0) {
		*why = "WebSocket upgrade must use GET";
		return MOAT_ERR_INVAL;
	}
	/* HTTP/1.1 requires Host; an HTTP/1.0 request rarely has one. */
	if (http_req_header(req, "Host") == NULL) {
		*why = "missing Host header";
		return MOAT_ERR_INVAL;
	}
	if (!ws_has_token(http_req_header(req, "Upgrade"), "websocket")) {
		*why = "missing Upgrade: websocket";
		return MOAT_ERR_INVAL;
	}
	if (!ws_has_token(http_req_header(req, "Connection"), "upgrade")) {
		*why = "missing Connection: upgrade";
		return MOAT_ERR_INVAL;
	}
	v = http_req_header(req, "Sec-WebSocket-Version");
	if (v == NULL || strcmp(v, "13") != 0) {
		*why = "unsupported Sec-WebSocket-Version (want 13)";
		return MOAT_ERR_UNSUPPORTED;
	}
	if (!ws_key_ok(http_req_header(req, "Sec-WebSocket-Key"))) {
		*why = "invalid Sec-WebSocket-Key";
		return MOAT_ERR_INVAL;
	}
	if (o->allowed_origins != NULL) {
		bool ok = false;

		v = http_req_header(req, "Origin");
		for (size_t i = 0; v != NULL && o->allowed_origins[i]; i++)
			if (strcasecmp(v, o->allowed_origins[i]) == 0)
				ok = true;
		if (!ok) {
			*why = "Origin not allowed";
			return MOAT_ERR_PERM;
		}
	}
	return 0;
}

/* --- Connection ------------------------------------------------------- */

static void ws_progress(struct ws_conn *ws);
static void ws_flush(struct ws_conn *ws);

/* Requests teardown with code (the first request wins). */
static void
ws_die(struct ws_conn *ws, uint16_t code)
{
	if (ws->dead)
		return;
	ws->dead = true;
	ws->dead_code = code;
	bufferevent_disable(ws->bev, EV_READ | EV_WRITE);
	event_active(ws->defer_ev, EV_WRITE, 0);
}

/* The code on_close reports once the closing handshake is over. */
static uint16_t
ws_final_code(struct ws_conn *ws)
{
	if (wslay_event_get_close_received(ws->ctx))
		return wslay_event_get_status_code_received(ws->ctx);
	if (wslay_event_get_close_sent(ws->ctx))
		return wslay_event_get_status_code_sent(ws->ctx);
	return WS_CODE_ABNORMAL;
}

static void
ws_free(struct ws_conn *ws)
{
	if (ws == NULL)
		return;
	if (ws->ping_ev != NULL)
		event_free(ws->ping_ev);
	if (ws->close_ev != NULL)
		event_free(ws->close_ev);
	if (ws->defer_ev != NULL)
		event_free(ws->defer_ev);
	if (ws->ctx != NULL)
		wslay_event_context_free(ws->ctx);
	if (ws->bev != NULL)
		bufferevent_free(ws->bev);
	free(ws);
}

/* Deferred: either the first look at bytes that came with the request,
 * or the teardown. */
static void
ws_defer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ws_conn *ws = arg;

	if (!ws->dead) {
		ws_progress(ws);
		if (!ws->dead)
			return;
	}
	/* A teardown requested from inside ws_progress is already active
	 * again; doing it now is equivalent and simpler. */
	if (ws->cb.on_close != NULL)
		ws->cb.on_close(ws, ws->dead_code, ws->arg);
	ws_free(ws);
}

static ssize_t
ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
    void *user)
{
	struct ws_conn *ws = user;
	int n = evbuffer_remove(bufferevent_get_input(ws->bev), buf, len);

	if (n < 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	if (n == 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	ws->alive = true;
	return n;
}

static ssize_t
ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
    int flags, void *user)
{
	struct ws_conn *ws = user;

	if (evbuffer_add(bufferevent_get_output(ws->bev), data, len) != 0) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static void
ws_msg_cb(wslay_event_context_ptr ctx,
    const struct wslay_event_on_msg_recv_arg *m, void *user)
{
	struct ws_conn *ws = user;

	if (ws->dead)
		return;
	if (m->opcode == WSLAY_TEXT_FRAME &&
	    !ws_utf8_ok(m->msg, m->msg_length)) {
		wslay_event_shutdown_read(ctx);
		(void)wslay_event_queue_close(ctx, WS_CODE_BAD_DATA, NULL, 0);
		return;
	}
	if ((m->opcode == WSLAY_TEXT_FRAME ||
	    m->opcode == WSLAY_BINARY_FRAME) && ws->cb.on_message != NULL)
		ws->cb.on_message(ws,
		    m->opcode == WSLAY_TEXT_FRAME ? WS_TEXT : WS_BINARY,
		    m->msg, m->msg_length, ws->arg);
	/* Close and ping are answered by wslay; pongs only prove life. */
}

static void
ws_close_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ws_conn *ws = arg;

	ws_die(ws, ws_final_code(ws));
}

static void
ws_arm_close_timer(struct ws_conn *ws)
{
	const struct timeval tv = { WS_CLOSE_WAIT_MS / 1000,
	    (WS_CLOSE_WAIT_MS % 1000) * 1000 };

	if (!event_pending(ws->close_ev, EV_TIMEOUT, NULL))
		event_add(ws->close_ev, &tv);
}

/* Hands queued frames to the bufferevent and works out whether the
 * connection is over. Not while wslay_event_recv() runs (it is not
 * reentrant; ws_progress() flushes after it). */
static void
ws_flush(struct ws_conn *ws)
{
	struct evbuffer *in = bufferevent_get_input(ws->bev);

	if (ws->dead || ws->in_recv)
		return;
	if (wslay_event_want_write(ws->ctx) &&
	    wslay_event_send(ws->ctx) != 0) {
		ws_die(ws, WS_CODE_ABNORMAL);
		return;
	}
	if (!wslay_event_want_read(ws->ctx)) {
		/* Nothing more will be read: do not buffer what comes. */
		bufferevent_disable(ws->bev, EV_READ);
		evbuffer_drain(in, evbuffer_get_length(in));
		if (!wslay_event_want_write(ws->ctx)) {
			/* Closing handshake over (or failed): flush, go. */
			if (evbuffer_get_length(
			    bufferevent_get_output(ws->bev)) == 0) {
				ws_die(ws, ws_final_code(ws));
				return;
			}
			ws->flushing = true;
			ws_arm_close_timer(ws);
			return;
		}
	}
	if (wslay_event_get_close_sent(ws->ctx))
		ws_arm_close_timer(ws);
}

/* Feeds the input to wslay, then flushes. */
static void
ws_progress(struct ws_conn *ws)
{
	int rv;

	if (ws->dead)
		return;
	if (wslay_event_want_read(ws->ctx)) {
		ws->in_recv = true;
		rv = wslay_event_recv(ws->ctx);
		ws->in_recv = false;
		if (rv != 0) {
			ws_die(ws, WS_CODE_ABNORMAL);
			return;
		}
	}
	ws_flush(ws);
}

static void
ws_read_cb(struct bufferevent *bev, void *arg)
{
	ws_progress(arg);
}

static void
ws_write_cb(struct bufferevent *bev, void *arg)
{
	struct ws_conn *ws = arg;

	if (ws->flushing && !ws->dead &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		ws_die(ws, ws_final_code(ws));
}

static void
ws_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ws_conn *ws = arg;

	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		/* Bytes that arrived with the EOF still count. */
		if ((what & BEV_EVENT_EOF) && wslay_event_want_read(ws->ctx)) {
			ws->in_recv = true;
			(void)wslay_event_recv(ws->ctx);
			ws->in_recv = false;
		}
		ws_die(ws, ws_final_code(ws));
	}
}

static void
ws_ping_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ws_conn *ws = arg;
	struct wslay_event_msg ping = { WSLAY_PING, NULL, 0 };

	if (ws->dead)
		return;
	if (!ws->alive) {
		log_info("ws", "peer did not answer ping, closing");
		ws_die(ws, WS_CODE_ABNORMAL);
		return;
	}
	ws->alive = false;
	if (wslay_event_queue_msg(ws->ctx, &ping) == 0)
		ws_flush(ws);
}

/* Allocates a connection that is not yet attached to a socket (so that an
 * allocation failure can still be answered over HTTP). Caller frees with
 * ws_free() or hands it to ws_start(). */
static int
ws_new(struct ws_conn **out, struct event_base *base, const struct ws_opts *o,
    const struct ws_callbacks *cb, void *arg)
{
	static const struct wslay_event_callbacks wcb = {
		.recv_callback = ws_recv_cb,
		.send_callback = ws_send_cb,
		.on_msg_recv_callback = ws_msg_cb,
	};
	struct ws_conn *ws;

	if ((ws = calloc(1, sizeof(*ws))) == NULL)
		return MOAT_ERR_NOMEM;
	ws->cb = *cb;
	ws->arg = arg;
	ws->max_queued = o->max_queued;
	ws->ping_ms = o->ping_interval_ms;
	ws->alive = true;
	ws->base = base;
	if (wslay_event_context_server_init(&ws->ctx, &wcb, ws) != 0 ||
	    (ws->defer_ev = event_new(base, -1, 0, ws_defer_cb, ws)) == NULL ||
	    (ws->close_ev = evtimer_new(base, ws_close_timeout_cb,
	    ws)) == NULL ||
	    (ws->ping_ms != 0 && (ws->ping_ev = event_new(base, -1,
	    EV_PERSIST, ws_ping_cb, ws)) == NULL)) {
		ws_free(ws);
		return MOAT_ERR_NOMEM;
	}
	wslay_event_config_set_max_recv_msg_length(ws->ctx, o->max_message);
	*out = ws;
	return 0;
}

/* Attaches ws to bev (taken over: freed with ws, or here on failure),
 * writes head (the 101 answer) and starts reading. On failure ws is freed
 * too, without on_close. */
static int
ws_start(struct ws_conn *ws, struct bufferevent *bev, const char *head)
{
	ws->bev = bev;
	if (bufferevent_write(bev, head, strlen(head)) != 0)
		goto fail;
	bufferevent_setcb(bev, ws_read_cb, ws_write_cb, ws_event_cb, ws);
	bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
	if (bufferevent_enable(bev, EV_READ | EV_WRITE) != 0)
		goto fail;
	if (ws->ping_ev != NULL) {
		const struct timeval tv = { ws->ping_ms / 1000,
		    (ws->ping_ms % 1000) * 1000 };
		if (event_add(ws->ping_ev, &tv) != 0)
			goto fail;
	}
	/* Frames that came with the request are handled after we return,
	 * so that the caller has its pointer before any callback. */
	if (evbuffer_get_length(bufferevent_get_input(bev)) > 0)
		event_active(ws->defer_ev, EV_READ, 0);
	return 0;
fail:
	ws_free(ws);
	return MOAT_ERR_IO;
}

int
ws_accept(struct ws_conn **out, struct http_request *req,
    const struct ws_opts *opts, const struct ws_callbacks *cb, void *arg)
{
	struct ws_opts o;
	struct ws_conn *ws = NULL;
	struct bufferevent *bev;
	const char *why = NULL, *proto = NULL;
	char accept[29], head[512];
	int r, n;

	if (out == NULL || req == NULL || cb == NULL)
		return MOAT_ERR_INVAL;
	if (opts != NULL)
		o = *opts;
	else
		ws_opts_default(&o);
	if (o.max_message == 0)
		o.max_message = WS_DEFAULT_MAX_MESSAGE;
	if (o.max_queued == 0)
		o.max_queued = WS_DEFAULT_MAX_QUEUED;

	if ((r = ws_check_request(req, &o, &why)) != 0) {
		log_info("ws", "upgrade refused", LF_STR("reason", why),
		    LF_STR("peer", http_req_client_addr(req)));
		/* Without the hint the answer is still a valid refusal. */
		if (r == MOAT_ERR_UNSUPPORTED &&
		    http_resp_header(req, "Sec-WebSocket-Version", "13") != 0)
			log_warn("ws", "cannot add version header");
		http_respond_error(req, r == MOAT_ERR_PERM ? 403 : 400,
		    r == MOAT_ERR_PERM ? "forbidden" : "bad_request", why);
		return r;
	}
	if (o.subprotocol != NULL &&
	    ws_has_token(http_req_header(req, "Sec-WebSocket-Protocol"),
	    o.subprotocol))
		proto = o.subprotocol;
	if ((r = ws_accept_key(http_req_header(req, "Sec-WebSocket-Key"),
	    accept)) != 0 ||
	    (n = snprintf(head, sizeof(head),
	    "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n", accept,
	    proto ? "Sec-WebSocket-Protocol: " : "", proto ? proto : "",
	    proto ? "\r\n" : "")) < 0 || (size_t)n >= sizeof(head)) {
		http_respond_error(req, 500, "internal",
		    "cannot build the upgrade answer");
		return r != 0 ? r : MOAT_ERR_INVAL;
	}
	if ((r = ws_new(&ws, http_req_base(req), &o, cb, arg)) != 0) {
		http_respond_error(req, 503, "unavailable", "out of memory");
		return r;
	}
	/* From here on req is gone, whatever happens. */
	if ((bev = http_req_take_conn(req)) == NULL) {
		ws_free(ws);
		return MOAT_ERR_CLOSED;
	}
	if ((r = ws_start(ws, bev, head)) != 0)
		return r;
	*out = ws;
	return 0;
}

int
ws_send(struct ws_conn *ws, enum ws_opcode op, const void *data, size_t len)
{
	struct wslay_event_msg m;
	size_t queued;

	if (ws == NULL || (op != WS_TEXT && op != WS_BINARY) ||
	    (data == NULL && len > 0))
		return MOAT_ERR_INVAL;
	if (ws->dead || wslay_event_get_close_sent(ws->ctx))
		return MOAT_ERR_CLOSED;
	queued = wslay_event_get_queued_msg_length(ws->ctx) +
	    evbuffer_get_length(bufferevent_get_output(ws->bev));
	if (len > ws->max_queued || queued > ws->max_queued - len) {
		log_warn("ws", "slow reader, dropping connection",
		    LF_INT("queued", queued));
		ws_die(ws, WS_CODE_ABNORMAL);
		return MOAT_ERR_TOOBIG;
	}
	m.opcode = op == WS_TEXT ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME;
	m.msg = data;
	m.msg_length = len;
	if (wslay_event_queue_msg(ws->ctx, &m) != 0)
		return MOAT_ERR_NOMEM;
	ws_flush(ws);
	return ws->dead ? MOAT_ERR_CLOSED : 0;
}

void
ws_close(struct ws_conn *ws, uint16_t code, const char *reason)
{
	size_t rlen = reason != NULL ? strlen(reason) : 0;

	if (ws == NULL || ws->dead)
		return;
	if (rlen > 123)
		rlen = 0;	/* a close payload is at most 125 bytes */
	if (wslay_event_get_close_sent(ws->ctx))
		return;
	if (wslay_event_queue_close(ws->ctx, code ? code : WS_CODE_GOING_AWAY,
	    (const uint8_t *)reason, rlen) != 0) {
		ws_die(ws, code);
		return;
	}
	ws_flush(ws);
}
