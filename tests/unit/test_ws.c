/*
 * test_ws.c - unit tests for ws.c: the RFC 6455 accept key, then a real
 * HTTP server (http.c) on 127.0.0.1 with WebSocket routes, driven by a
 * raw-socket client written here (so the framing on the wire is checked
 * byte by byte): echo of masked text and fragmented binary messages, bytes
 * sent with the handshake, ping/pong, closing handshakes both ways, refused
 * upgrades (400/403), oversized messages (1009), invalid UTF-8 (1007),
 * unmasked frames (1002), and server pings with a silent peer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "http.h"
#include "loop.h"
#include "ws.h"

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

static void
test_accept_key(void **state)
{
	char out[29];

	assert_int_equal(ws_accept_key(RFC_KEY, out), 0);
	assert_string_equal(out, RFC_ACCEPT);
	assert_int_equal(ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out), 0);
	assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
	assert_int_equal(ws_accept_key(NULL, out), MOAT_ERR_INVAL);
}

/* --- server side ---------------------------------------------------- */

struct srv_state {
	pthread_mutex_t mu;
	int closes;
	uint16_t last_code;
	int accept_fails;
	int flood_sent, flood_rc;
};

struct route_cfg {
	struct ws_opts opts;
	struct srv_state *st;
	const char *const *origins;
};

static void
echo_message(struct ws_conn *ws, enum ws_opcode op, const uint8_t *data,
    size_t len, void *arg)
{
	struct srv_state *st = arg;

	if (len == 3 && memcmp(data, "bye", 3) == 0) {
		ws_close(ws, 1000, "bye");
		return;
	}
	if (len == 5 && memcmp(data, "flood", 5) == 0) {
		/* 16 KiB messages until the output bound says no. */
		static uint8_t chunk[16384];
		int rc = 0, n = 0;

		while (n < 1000 &&
		    (rc = ws_send(ws, WS_BINARY, chunk, sizeof(chunk))) == 0)
			n++;
		pthread_mutex_lock(&st->mu);
		st->flood_sent = n;
		st->flood_rc = rc;
		pthread_mutex_unlock(&st->mu);
		return;
	}
	if (ws_send(ws, op, data, len) != 0)
		return;	/* closing; on_close follows */
}

static void
echo_close(struct ws_conn *ws, uint16_t code, void *arg)
{
	struct srv_state *st = arg;

	pthread_mutex_lock(&st->mu);
	st->closes++;
	st->last_code = code;
	pthread_mutex_unlock(&st->mu);
}

static void
ws_handler(struct http_request *req, void *arg)
{
	struct route_cfg *rc = arg;
	struct ws_callbacks cb = { echo_message, echo_close };
	struct ws_conn *ws = NULL;

	if (ws_accept(&ws, req, &rc->opts, &cb, rc->st) != 0) {
		pthread_mutex_lock(&rc->st->mu);
		rc->st->accept_fails++;
		pthread_mutex_unlock(&rc->st->mu);
	}
}

struct fixture {
	struct event_base *base;
	struct http_server *srv;
	pthread_t thread;
	int port;
	struct srv_state st;
	struct route_cfg echo, small, origin, ping, proto, flood;
};

static const char *const origins[] = { "https://moat.example", NULL };

static void *
loop_main(void *arg)
{
	struct fixture *f = arg;

	event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct http_limits lim;
	struct http_listener_opts lo = { .addr = "127.0.0.1:0" };

	if (f == NULL || loop_global_init() != 0)
		return -1;
	pthread_mutex_init(&f->st.mu, NULL);
	if ((f->base = event_base_new()) == NULL)
		return -1;
	http_limits_default(&lim);
	if (http_server_new(&f->srv, &lim) != 0)
		return -1;
	http_server_set_access_log(f->srv, NULL);

	ws_opts_default(&f->echo.opts);
	f->echo.opts.ping_interval_ms = 0;
	f->echo.st = &f->st;
	f->small = f->echo;
	f->small.opts.max_message = 1024;
	f->origin = f->echo;
	f->origin.opts.allowed_origins = origins;
	f->ping = f->echo;
	f->ping.opts.ping_interval_ms = 100;
	f->flood = f->echo;
	f->flood.opts.max_queued = 64 * 1024;
	f->proto = f->echo;
	f->proto.opts.subprotocol = "moat.v1";
	if (http_server_route(f->srv, "GET", "/ws", ws_handler, &f->echo) ||
	    http_server_route(f->srv, "*", "/post", ws_handler, &f->echo) ||
	    http_server_route(f->srv, "GET", "/small", ws_handler, &f->small) ||
	    http_server_route(f->srv, "GET", "/origin", ws_handler,
	    &f->origin) ||
	    http_server_route(f->srv, "GET", "/ping", ws_handler, &f->ping) ||
	    http_server_route(f->srv, "GET", "/flood", ws_handler,
	    &f->flood) ||
	    http_server_route(f->srv, "GET", "/proto", ws_handler, &f->proto))
		return -1;
	if (http_server_listen(f->srv, f->base, &lo) != 0)
		return -1;
	f->port = http_server_bound_port(f->srv, 0);
	if (f->port <= 0)
		return -1;
	if (pthread_create(&f->thread, NULL, loop_main, f) != 0)
		return -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	if (f == NULL)
		return 0;
	event_base_loopbreak(f->base);
	pthread_join(f->thread, NULL);
	http_server_free(f->srv);
	event_base_free(f->base);
	pthread_mutex_destroy(&f->st.mu);
	free(f);
	return 0;
}

/* --- raw client ----------------------------------------------------- */

static int
cli_connect(struct fixture *f)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	struct timeval tv = { 3, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sin.sin_port = htons((uint16_t)f->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)), 0);
	return fd;
}

static void
send_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
		assert_true(k > 0);
		b += k;
		n -= (size_t)k;
	}
}

/* Reads exactly n bytes; false on EOF/timeout. */
static bool
recv_all(int fd, void *p, size_t n)
{
	uint8_t *b = p;

	while (n > 0) {
		ssize_t k = recv(fd, b, n, 0);
		if (k <= 0)
			return false;
		b += k;
		n -= (size_t)k;
	}
	return true;
}

/* Reads a response head (byte by byte, so no frame byte is eaten). */
static void
read_head(int fd, char *out, size_t outlen)
{
	size_t n = 0;

	while (n + 1 < outlen) {
		assert_true(recv_all(fd, out + n, 1));
		n++;
		out[n] = '\0';
		if (n >= 4 && memcmp(out + n - 4, "\r\n\r\n", 4) == 0)
			return;
	}
	fail_msg("response head too long");
}

/* Reads the body of a response whose head is in head (Content-Length). */
static void
read_body(int fd, const char *head, char *out, size_t outlen)
{
	const char *cl = strcasestr(head, "\r\nContent-Length:");
	unsigned long n;
	char *end;

	assert_non_null(cl);
	n = strtoul(cl + 17, &end, 10);
	assert_true(end != cl + 17 && n < outlen);
	assert_true(recv_all(fd, out, n));
	out[n] = '\0';
}

/* Builds a client frame (masked unless mask is false) into out. */
static size_t
frame(uint8_t *out, bool fin, uint8_t op, const void *payload, size_t len,
    bool mask)
{
	static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };
	size_t n = 0;

	out[n++] = (uint8_t)((fin ? 0x80 : 0) | op);
	if (len < 126) {
		out[n++] = (uint8_t)((mask ? 0x80 : 0) | len);
	} else if (len < 65536) {
		out[n++] = (uint8_t)((mask ? 0x80 : 0) | 126);
		out[n++] = (uint8_t)(len >> 8);
		out[n++] = (uint8_t)len;
	} else {
		out[n++] = (uint8_t)((mask ? 0x80 : 0) | 127);
		for (int i = 7; i >= 0; i--)
			out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	if (mask) {
		memcpy(out + n, key, 4);
		n += 4;
	}
	for (size_t i = 0; i < len; i++)
		out[n + i] = ((const uint8_t *)payload)[i] ^
		    (mask ? key[i % 4] : 0);
	return n + len;
}

static void
send_frame(int fd, bool fin, uint8_t op, const void *payload, size_t len)
{
	uint8_t *buf = malloc(len + 14);

	assert_non_null(buf);
	send_all(fd, buf, frame(buf, fin, op, payload, len, true));
	free(buf);
}

struct rframe {
	uint8_t op;
	bool fin, masked;
	size_t len;
	uint8_t data[4096];
};

/* Reads one server frame; false on EOF/timeout. */
static bool
read_frame(int fd, struct rframe *fr)
{
	uint8_t h[2], ext[8];
	uint64_t len;

	if (!recv_all(fd, h, 2))
		return false;
	fr->fin = (h[0] & 0x80) != 0;
	fr->op = h[0] & 0x0f;
	fr->masked = (h[1] & 0x80) != 0;
	len = h[1] & 0x7f;
	if (len == 126) {
		assert_true(recv_all(fd, ext, 2));
		len = ((uint64_t)ext[0] << 8) | ext[1];
	} else if (len == 127) {
		assert_true(recv_all(fd, ext, 8));
		len = 0;
		for (int i = 0; i < 8; i++)
			len = (len << 8) | ext[i];
	}
	assert_true(len <= sizeof(fr->data));
	fr->len = (size_t)len;
	return recv_all(fd, fr->data, fr->len);
}

static uint16_t
close_code(const struct rframe *fr)
{
	assert_int_equal(fr->op, 0x8);
	assert_true(fr->len >= 2);
	return (uint16_t)((fr->data[0] << 8) | fr->data[1]);
}

/* True when the server closed the TCP connection. */
static bool
at_eof(int fd)
{
	char c;

	return recv(fd, &c, 1, 0) == 0;
}

/* Connects and upgrades; extra (may be NULL) is sent in the same write
 * as the request. Returns the fd after a checked 101. */
static int
upgrade(struct fixture *f, const char *path, const char *extra_hdrs,
    const uint8_t *extra, size_t extra_len, char *head, size_t headlen)
{
	char req[2048];
	uint8_t all[4096];
	int fd = cli_connect(f);
	int n = snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
	    "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: " RFC_KEY
	    "\r\nSec-WebSocket-Version: 13\r\n%s\r\n", path,
	    extra_hdrs ? extra_hdrs : "");

	assert_true(n > 0 && (size_t)n < sizeof(req));
	assert_true((size_t)n + extra_len <= sizeof(all));
	memcpy(all, req, (size_t)n);
	if (extra_len > 0)
		memcpy(all + n, extra, extra_len);
	send_all(fd, all, (size_t)n + extra_len);
	read_head(fd, head, headlen);
	assert_memory_equal(head, "HTTP/1.1 101 ", 13);
	return fd;
}

static void
wait_closes(struct fixture *f, int want)
{
	for (int i = 0; i < 300; i++) {
		pthread_mutex_lock(&f->st.mu);
		int n = f->st.closes;
		pthread_mutex_unlock(&f->st.mu);
		if (n >= want)
			return;
		usleep(10 * 1000);
	}
	fail_msg("on_close not called");
}

static int
closes(struct fixture *f, uint16_t *code)
{
	int n;

	pthread_mutex_lock(&f->st.mu);
	n = f->st.closes;
	if (code != NULL)
		*code = f->st.last_code;
	pthread_mutex_unlock(&f->st.mu);
	return n;
}

/* --- tests ---------------------------------------------------------- */

static void
test_echo_and_close(void **state)
{
	struct fixture *f = *state;
	char head[1024];
	uint8_t first[64];
	struct rframe fr;
	uint16_t code;
	int before = closes(f, NULL), fd;

	/* A frame in the same packet as the request must not be lost. */
	size_t fl = frame(first, true, 0x1, "early", 5, true);
	fd = upgrade(f, "/ws", NULL, first, fl, head, sizeof(head));
	assert_non_null(strstr(head, "Sec-WebSocket-Accept: " RFC_ACCEPT
	    "\r\n"));
	assert_non_null(strcasestr(head, "\r\nUpgrade: websocket\r\n"));
	assert_non_null(strcasestr(head, "\r\nConnection: Upgrade\r\n"));
	assert_null(strcasestr(head, "Sec-WebSocket-Protocol"));
	assert_true(read_frame(fd, &fr));
	assert_int_equal(fr.op, 0x1);
	assert_false(fr.masked);
	assert_int_equal(fr.len, 5);
	assert_memory_equal(fr.data, "early", 5);

	send_frame(fd, true, 0x1, "hello", 5);
	assert_true(read_frame(fd, &fr));
	assert_true(fr.fin);
	assert_int_equal(fr.op, 0x1);
	assert_int_equal(fr.len, 5);
	assert_memory_equal(fr.data, "hello", 5);

	/* Fragmented binary, a ping in between: pong first, then the
	 * joined message. */
	send_frame(fd, false, 0x2, "\x00\x01", 2);
	send_frame(fd, true, 0x9, "pp", 2);
	send_frame(fd, true, 0x0, "\x02\xff", 2);
	assert_true(read_frame(fd, &fr));
	assert_int_equal(fr.op, 0xA);
	assert_int_equal(fr.len, 2);
	assert_memory_equal(fr.data, "pp", 2);
	assert_true(read_frame(fd, &fr));
	assert_int_equal(fr.op, 0x2);
	assert_int_equal(fr.len, 4);
	assert_memory_equal(fr.data, "\x00\x01\x02\xff", 4);

	/* A 300-byte message uses the 16-bit length. */
	uint8_t big[300];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)i;
	send_frame(fd, true, 0x2, big, sizeof(big));
	assert_true(read_frame(fd, &fr));
	assert_int_equal(fr.len, sizeof(big));
	assert_memory_equal(fr.data, big, sizeof(big));

	/* Client closes: the server answers 1000 and hangs up. */
	send_frame(fd, true, 0x8, "\x03\xe8", 2);
	assert_true(read_frame(fd, &fr));
	assert_int_equal(close_code(&fr), 1000);
	assert_true(at_eof(fd));
	close(fd);
	wait_closes(f, before + 1);
	assert_int_equal(closes(f, &code), before + 1);
	assert_int_equal(code, 1000);
}

static void
test_server_close(void **state)
{
	struct fixture *f = *state;
	char head[1024];
	struct rframe fr;
	uint16_t code;
	int before = closes(f, NULL);
	int fd = upgrade(f, "/ws", NULL, NULL, 0, head, sizeof(head));

	send_frame(fd, true, 0x1, "bye", 3);
	assert_true(read_frame(fd, &fr));
	assert_int_equal(close_code(&fr), 1000);
	assert_int_equal(fr.len, 5);
	assert_memory_equal(fr.data + 2, "bye", 3);
	/* We answer; the server then closes the connection. */
	send_frame(fd, true, 0x8, "\x03\xe8", 2);
	assert_true(at_eof(fd));
	close(fd);
	wait_closes(f, before + 1);
	(void)closes(f, &code);
	assert_int_equal(code, 1000);
}

static void
test_peer_vanishes(void **state)
{
	struct fixture *f = *state;
	char head[1024];
	uint16_t code;
	int before = closes(f, NULL);
	int fd = upgrade(f, "/ws", NULL, NULL, 0, head, sizeof(head));

	close(fd);
	wait_closes(f, before + 1);
	(void)closes(f, &code);
	assert_int_equal(code, 1006);
}

static void
test_subprotocol(void **state)
{
	struct fixture *f = *state;
	char head[1024];
	int fd = upgrade(f, "/proto",
	    "Sec-WebSocket-Protocol: chat, moat.v1\r\n", NULL, 0, head,
	    sizeof(head));

	assert_non_null(strstr(head, "\r\nSec-WebSocket-Protocol: moat.v1\r\n"));
	close(fd);
}

/* Sends a raw request and returns the status code of the answer. */
static int
status_of(struct fixture *f, const char *request, char *resp, size_t rlen)
{
	int fd = cli_connect(f), st = 0;

	send_all(fd, request, strlen(request));
	read_head(fd, resp, rlen);
	assert_int_equal(sscanf(resp, "HTTP/1.1 %d", &st), 1);
	close(fd);
	return st;
}

static void
test_bad_upgrades(void **state)
{
	struct fixture *f = *state;
	char resp[2048];
	static const char *const bad[] = {
		/* no key */
		"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
		/* key of 15 bytes */
		"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=\r\n\r\n",
		/* key of 17 bytes */
		"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQAA\r\n\r\n",
		/* not canonical base64 (stray low bits) */
		"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n\r\n",
		/* no Upgrade */
		"GET /ws HTTP/1.1\r\nHost: x\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
		"Sec-WebSocket-Key: " RFC_KEY "\r\n\r\n",
		/* Connection without the upgrade token */
		"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		"Connection: keep-alive, upgrades\r\n"
		"Sec-WebSocket-Version: 13\r\n"
		"Sec-WebSocket-Key: " RFC_KEY "\r\n\r\n",
		/* POST */
		"POST /post HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
		"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
		"Content-Length: 0\r\n"
		"Sec-WebSocket-Key: " RFC_KEY "\r\n\r\n",
		NULL
	};
	int fails, before = closes(f, NULL);

	pthread_mutex_lock(&f->st.mu);
	fails = f->st.accept_fails;
	pthread_mutex_unlock(&f->st.mu);
	for (int i = 0; bad[i] != NULL; i++) {
		assert_int_equal(status_of(f, bad[i], resp, sizeof(resp)), 400);
		assert_null(strstr(resp, "Sec-WebSocket-Accept"));
	}

	/* Wrong version: 400 that names the version we speak. */
	assert_int_equal(status_of(f,
	    "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
	    "Sec-WebSocket-Key: " RFC_KEY "\r\n\r\n", resp, sizeof(resp)), 400);
	assert_non_null(strcasestr(resp, "\r\nSec-WebSocket-Version: 13\r\n"));

	/* Origin checks. */
	assert_int_equal(status_of(f,
	    "GET /origin HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	    "Origin: https://evil.example\r\n"
	    "Sec-WebSocket-Key: " RFC_KEY "\r\n\r\n", resp, sizeof(resp)), 403);
	assert_int_equal(status_of(f,
	    "GET /origin HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	    "Sec-WebSocket-Key: " RFC_KEY "\r\n\r\n", resp, sizeof(resp)), 403);
	assert_int_equal(status_of(f,
	    "GET /origin HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
	    "Origin: https://moat.example\r\n"
	    "Sec-WebSocket-Key: " RFC_KEY "\r\n\r\n", resp, sizeof(resp)), 101);

	pthread_mutex_lock(&f->st.mu);
	assert_int_equal(f->st.accept_fails - fails, 10);
	pthread_mutex_unlock(&f->st.mu);

	/* The error body has the platform's error shape. */
	int fd = cli_connect(f);
	send_all(fd, bad[0], strlen(bad[0]));
	read_head(fd, resp, sizeof(resp));
	char body[1024];
	read_body(fd, resp, body, sizeof(body));
	assert_non_null(strstr(body, "{\"error\":{\"code\":\"bad_request\""));
	close(fd);
	/* The one accepted connection (Origin allowed) is gone too. */
	wait_closes(f, before + 1);
}

static void
test_too_big(void **state)
{
	struct fixture *f = *state;
	char head[1024];
	uint8_t big[2000];
	struct rframe fr;
	uint16_t code;
	int before = closes(f, NULL);
	int fd = upgrade(f, "/small", NULL, NULL, 0, head, sizeof(head));

	/* At the limit: fine. */
	memset(big, 'a', sizeof(big));
	send_frame(fd, true, 0x2, big, 1024);
	assert_true(read_frame(fd, &fr));
	assert_int_equal(fr.len, 1024);

	/* Over it, in two fragments: close 1009. */
	send_frame(fd, false, 0x2, big, 1000);
	send_frame(fd, true, 0x0, big, 1000);
	assert_true(read_frame(fd, &fr));
	assert_int_equal(close_code(&fr), 1009);
	assert_true(at_eof(fd));
	close(fd);
	wait_closes(f, before + 1);
	(void)closes(f, &code);
	assert_int_equal(code, 1009);
}

static void
test_protocol_errors(void **state)
{
	struct fixture *f = *state;
	char head[1024];
	uint8_t buf[64];
	struct rframe fr;
	int fd;

	/* Text that is not UTF-8 (an overlong NUL). */
	fd = upgrade(f, "/ws", NULL, NULL, 0, head, sizeof(head));
	send_frame(fd, true, 0x1, "ok\xc0\x80", 4);
	assert_true(read_frame(fd, &fr));
	assert_int_equal(close_code(&fr), 1007);
	assert_true(at_eof(fd));
	close(fd);

	/* An unmasked client frame. */
	fd = upgrade(f, "/ws", NULL, NULL, 0, head, sizeof(head));
	send_all(fd, buf, frame(buf, true, 0x1, "hi", 2, false));
	assert_true(read_frame(fd, &fr));
	assert_int_equal(close_code(&fr), 1002);
	assert_true(at_eof(fd));
	close(fd);
}

static void
test_slow_reader(void **state)
{
	struct fixture *f = *state;
	char head[1024];
	uint16_t code;
	int before = closes(f, NULL), sent, rc;
	int fd = upgrade(f, "/flood", NULL, NULL, 0, head, sizeof(head));

	/* The server queues at most 64 KiB of payload: four 16 KiB messages
	 * fit, the fifth would pass it, so the connection is dropped. */
	send_frame(fd, true, 0x1, "flood", 5);
	wait_closes(f, before + 1);
	pthread_mutex_lock(&f->st.mu);
	sent = f->st.flood_sent;
	rc = f->st.flood_rc;
	pthread_mutex_unlock(&f->st.mu);
	assert_int_equal(rc, MOAT_ERR_TOOBIG);
	assert_int_equal(sent, 4);
	(void)closes(f, &code);
	assert_int_equal(code, 1006);
	close(fd);
}

static void
test_server_pings(void **state)
{
	struct fixture *f = *state;
	char head[1024];
	struct rframe fr;
	uint16_t code;
	int before = closes(f, NULL);
	int fd = upgrade(f, "/ping", NULL, NULL, 0, head, sizeof(head));

	/* Answering pings keeps the connection. */
	for (int i = 0; i < 3; i++) {
		assert_true(read_frame(fd, &fr));
		assert_int_equal(fr.op, 0x9);
		send_frame(fd, true, 0xA, fr.data, fr.len);
	}
	assert_int_equal(closes(f, NULL), before);
	/* Going silent: dropped after the next ping goes unanswered. */
	assert_true(read_frame(fd, &fr));
	assert_int_equal(fr.op, 0x9);
	assert_false(read_frame(fd, &fr));
	close(fd);
	wait_closes(f, before + 1);
	(void)closes(f, &code);
	assert_int_equal(code, 1006);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accept_key),
		cmocka_unit_test(test_echo_and_close),
		cmocka_unit_test(test_server_close),
		cmocka_unit_test(test_peer_vanishes),
		cmocka_unit_test(test_subprotocol),
		cmocka_unit_test(test_bad_upgrades),
		cmocka_unit_test(test_too_big),
		cmocka_unit_test(test_protocol_errors),
		cmocka_unit_test(test_slow_reader),
		cmocka_unit_test(test_server_pings),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
