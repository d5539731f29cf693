/*
 * test_http.c - unit tests for the HTTP core (http.c, http_parse.c,
 * http_route.c): a real server on 127.0.0.1 port 0, its event base run on
 * a thread, spoken to in raw HTTP over blocking sockets (and over TLS with
 * real OpenSSL and throwaway certificates from testcerts.h).
 *
 * Covers: keep-alive, pipelining, routing (exact, {param}, "*", 404, 405 +
 * Allow, HEAD), bodies with Content-Length, chunked and Expect, each
 * request-smuggling shape (400 and close), limits (414, 431, 413), header
 * and idle timeouts, HTTP/1.0, PROXY v1/v2 (accepted, refused peer,
 * missing header), take_conn with the bytes that follow, lend_conn and
 * give_back (pipelined next request, keep or close), asynchronous
 * answers (also pipelined), the access log and the observer, max_conns,
 * and TLS with X-Forwarded-For believed only from the named ingress.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/thread.h>
#include <openssl/err.h>

#include "http.h"
#include "http_int.h"
#include "log.h"
#include "testcerts.h"
#include "tls.h"

enum { L_PLAIN, L_PROXY, L_PROXY10, L_TLS, L_DUAL };

static struct {
	struct event_base *base;
	pthread_t thread;
	struct http_server *srv, *srv2;
	struct tls_server *tls;
	int port[5];
	int port2;
	char dir[64];
	char logpath[128];
	int logfd;
	SSL_CTX *cli_ingress, *cli_other;
	pthread_mutex_t mu;
	char last_route[128];
	int last_status;
	int observed;
} T;

/* --- handlers (run on the server thread) --- */

static void
h_text(struct http_request *req, void *arg)
{
	const char *s = arg;

	http_respond(req, 200, "text/plain", s, strlen(s));
}

static void
h_user(struct http_request *req, void *arg)
{
	char out[256];
	int n = snprintf(out, sizeof(out), "user:%s", http_req_param(req, "id"));

	http_respond(req, 200, "text/plain", out, (size_t)n);
}

static void
h_keys(struct http_request *req, void *arg)
{
	char out[256];
	int n = snprintf(out, sizeof(out), "%s/%s", http_req_param(req, "id"),
	    http_req_param(req, "key"));

	http_respond(req, 200, "text/plain", out, (size_t)n);
}

static void
h_files(struct http_request *req, void *arg)
{
	char out[512];
	int n = snprintf(out, sizeof(out), "files:%s?%s", http_req_path(req),
	    http_req_query(req));

	http_respond(req, 200, "text/plain", out, (size_t)n);
}

static void
h_echo(struct http_request *req, void *arg)
{
	size_t len;
	const uint8_t *b = http_req_body(req, &len);

	/* No cmocka asserts on the server thread: report in a header. */
	bool ok = http_resp_header(req, "X-Path", http_req_path(req)) == 0 &&
	    http_resp_header(req, "X-Bad", "a\r\nb") == MOAT_ERR_INVAL &&
	    http_resp_header(req, "Content-Length", "1") == MOAT_ERR_INVAL &&
	    http_resp_header(req, "Bad Name", "x") == MOAT_ERR_INVAL &&
	    http_resp_header(req, "X-Checks", "ok") == 0;

	if (!ok)
		len = 0;
	http_respond(req, 200, "application/octet-stream", b, len);
}

static void
h_client(struct http_request *req, void *arg)
{
	char out[512];
	const char *tn = http_req_tls_peer_name(req);
	int n = snprintf(out, sizeof(out), "%s %s %s", http_req_client_addr(req),
	    http_req_peer_addr(req), tn != NULL ? tn : "-");

	http_respond(req, 200, "text/plain", out, (size_t)n);
}

static void
h_hdr(struct http_request *req, void *arg)
{
	char out[512];
	const char *v = http_req_header(req, "x-TEST");
	const char *e = http_req_header(req, "X-Empty");
	int n = snprintf(out, sizeof(out), "[%s][%s][%s]", v != NULL ? v : "none",
	    e != NULL ? e : "none", http_req_target(req));

	http_respond(req, 200, "text/plain", out, (size_t)n);
}

static void
h_big(struct http_request *req, void *arg)
{
	static char big[60000];

	memset(big, 'z', sizeof(big));
	http_respond(req, 200, "text/plain", big, sizeof(big));
}

static void
h_json(struct http_request *req, void *arg)
{
	json_t *j = json_pack("{s:b}", "ok", 1);

	http_respond_json(req, 200, j);
	json_decref(j);
}

static void
async_done(evutil_socket_t fd, short what, void *arg)
{
	http_respond(arg, 200, "text/plain", "late", 4);
}

static void
h_async(struct http_request *req, void *arg)
{
	struct timeval tv = { 0, 50 * 1000 };

	if (event_base_once(http_req_base(req), -1, EV_TIMEOUT, async_done,
	    req, &tv) != 0)
		http_respond(req, 500, NULL, NULL, 0);
}

static void
upgrade_flushed(struct bufferevent *bev, void *arg)
{
	bufferevent_free(bev);
}

static void
h_upgrade(struct http_request *req, void *arg)
{
	static const char resp[] =
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\n"
	    "Connection: upgrade\r\n\r\nrest:";
	struct bufferevent *bev = http_req_take_conn(req);

	if (bev == NULL)
		return;
	bufferevent_write(bev, resp, sizeof(resp) - 1);
	bufferevent_write_buffer(bev, bufferevent_get_input(bev));
	bufferevent_setcb(bev, NULL, upgrade_flushed, NULL, NULL);
	bufferevent_enable(bev, EV_WRITE);
}

/* A lent connection: the answer is written by the handler itself, later,
 * then the connection is given back (kept unless the query is "close"). */
struct lent {
	struct http_conn *conn;
	struct bufferevent *bev;
	bool keep;
	char body[64];
};

static void
lend_done(evutil_socket_t fd, short what, void *arg)
{
	struct lent *l = arg;
	char head[256];
	int n;

	n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
	    "%s\r\n%s", strlen(l->body), l->keep ? "" : "Connection: close\r\n",
	    l->body);
	bufferevent_write(l->bev, head, (size_t)n);
	http_conn_give_back(l->conn, l->bev, l->keep, strlen(l->body));
	free(l);
}

static void
h_lend(struct http_request *req, void *arg)
{
	struct timeval tv = { 0, 20 * 1000 };
	struct lent *l = calloc(1, sizeof(*l));
	bool ka = http_req_keepalive(req);
	struct event_base *base = http_req_base(req);

	assert_non_null(l);
	snprintf(l->body, sizeof(l->body), "lent:%s:%d", http_req_query(req),
	    (int)ka);
	l->keep = ka && strcmp(http_req_query(req), "close") != 0;
	l->bev = http_req_lend_conn(req, 200, &l->conn);
	if (l->bev == NULL) {
		free(l);
		return;
	}
	if (event_base_once(base, -1, EV_TIMEOUT, lend_done, l, &tv) != 0) {
		http_conn_give_back(l->conn, l->bev, false, 0);
		free(l);
	}
}

static void
observer(const struct http_request *req, const char *route, int status,
    uint64_t duration_ns, void *arg)
{
	pthread_mutex_lock(&T.mu);
	snprintf(T.last_route, sizeof(T.last_route), "%s", route);
	T.last_status = status;
	T.observed++;
	pthread_mutex_unlock(&T.mu);
}

static void *
loop_thread(void *arg)
{
	event_base_loop(T.base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* --- client side --- */

struct cl {
	int fd;
	SSL *ssl;
	char buf[256 * 1024];
	size_t len;
};

struct resp {
	int status;
	char head[8192];
	char body[65536];
	size_t body_len;
};

static struct cl *
cl_open(int port)
{
	struct cl *c = calloc(1, sizeof(*c));
	struct sockaddr_in sin;
	struct timeval tv = { 3, 0 };

	assert_non_null(c);
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(c->fd >= 0);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return c;
}

static struct cl *
cl_open_tls(SSL_CTX *ctx)
{
	struct cl *c = cl_open(T.port[L_TLS]);

	assert_non_null(c->ssl = SSL_new(ctx));
	assert_int_equal(tls_client_set_expected_name(c->ssl, "localhost"), 0);
	SSL_set_fd(c->ssl, c->fd);
	if (SSL_connect(c->ssl) != 1) {
		ERR_print_errors_fp(stderr);
		fail_msg("TLS handshake failed");
	}
	return c;
}

static void
cl_close(struct cl *c)
{
	if (c == NULL)
		return;
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	close(c->fd);
	free(c);
}

static void
cl_send(struct cl *c, const void *p, size_t n)
{
	if (c->ssl != NULL) {
		assert_int_equal(SSL_write(c->ssl, p, (int)n), (int)n);
		return;
	}
	while (n > 0) {
		ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);

		assert_true(k > 0);
		p = (const char *)p + k;
		n -= (size_t)k;
	}
}

static void
cl_sends(struct cl *c, const char *s)
{
	cl_send(c, s, strlen(s));
}

/* Sends without checking: the server may have closed already. */
static void
raw_send(int fd, const char *s)
{
	(void)send(fd, s, strlen(s), MSG_NOSIGNAL);
}

/* Reads more bytes: >0, 0 at EOF, -1 on error or timeout. */
static ssize_t
cl_more(struct cl *c)
{
	ssize_t n;

	if (c->len == sizeof(c->buf))
		return -1;
	if (c->ssl != NULL) {
		int k = SSL_read(c->ssl, c->buf + c->len, (int)(sizeof(c->buf) - c->len));

		if (k <= 0) {
			int e = SSL_get_error(c->ssl, k);

			ERR_clear_error();
			return e == SSL_ERROR_ZERO_RETURN ||
			    (e == SSL_ERROR_SYSCALL && errno == 0) ? 0 : -1;
		}
		n = k;
	} else {
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n < 0)
			return -1;
	}
	c->len += (size_t)n;
	return n;
}

static const char *
find_header(const char *head, const char *name, char *out, size_t outlen)
{
	const char *p = head;
	size_t nl = strlen(name);

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1, *e;

			while (*v == ' ')
				v++;
			e = strstr(v, "\r\n");
			snprintf(out, outlen, "%.*s", (int)(e - v), v);
			return out;
		}
	}
	return NULL;
}

/* Reads one response (Content-Length framed). Returns 0, or -1 when the
 * connection ended first. */
static int
cl_resp(struct cl *c, struct resp *r)
{
	char *end;
	size_t hl, cl = 0;
	char v[64];

	memset(r, 0, sizeof(*r));
	for (;;) {
		c->buf[c->len < sizeof(c->buf) ? c->len : sizeof(c->buf) - 1] = '\0';
		if ((end = strstr(c->buf, "\r\n\r\n")) != NULL)
			break;
		if (cl_more(c) <= 0)
			return -1;
	}
	hl = (size_t)(end - c->buf) + 4;
	assert_true(hl < sizeof(r->head));
	memcpy(r->head, c->buf, hl);
	r->head[hl] = '\0';
	assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
	if (find_header(r->head, "Content-Length", v, sizeof(v)) != NULL)
		cl = strtoul(v, NULL, 10);
	if (strstr(r->head, "HTTP/1.1 304") == r->head || r->status < 200)
		cl = 0;
	while (c->len < hl + cl)
		if (cl_more(c) <= 0)
			return -1;
	assert_true(cl < sizeof(r->body));
	memcpy(r->body, c->buf + hl, cl);
	r->body[cl] = '\0';
	r->body_len = cl;
	memmove(c->buf, c->buf + hl + cl, c->len - hl - cl);
	c->len -= hl + cl;
	return 0;
}

/* Response to a HEAD request: the head only. */
static void
cl_resp_head(struct cl *c, struct resp *r)
{
	char *end;
	size_t hl;

	memset(r, 0, sizeof(*r));
	for (;;) {
		c->buf[c->len] = '\0';
		if ((end = strstr(c->buf, "\r\n\r\n")) != NULL)
			break;
		assert_true(cl_more(c) > 0);
	}
	hl = (size_t)(end - c->buf) + 4;
	memcpy(r->head, c->buf, hl);
	assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
	memmove(c->buf, c->buf + hl, c->len - hl);
	c->len -= hl;
}

/* The server must close (FIN, not a reset) with nothing more to read. */
static void
cl_expect_eof(struct cl *c)
{
	ssize_t n;

	while ((n = cl_more(c)) > 0)
		;
	if (n < 0)
		fail_msg("no clean close (errno %d)", errno);
	assert_int_equal(c->len, 0);
}

static void
get_ok(struct cl *c, const char *path, const char *want_body)
{
	char req[512];
	struct resp r;

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
	cl_sends(c, req);
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, want_body);
}

/* One request on a fresh connection; returns the status, closes after
 * checking that the server closed when close_expected. */
static int
one_shot(int port, const char *raw, bool close_expected, struct resp *r)
{
	struct cl *c = cl_open(port);
	int st;

	cl_send(c, raw, strlen(raw));
	assert_int_equal(cl_resp(c, r), 0);
	st = r->status;
	if (close_expected) {
		char v[32];

		assert_non_null(find_header(r->head, "Connection", v, sizeof(v)));
		assert_string_equal(v, "close");
		cl_expect_eof(c);
	}
	cl_close(c);
	return st;
}

/* --- fixtures --- */

static void
make_certs(void)
{
	struct testcert ca, s, ci, co;
	char crt[256], key[256], cafile[256];
	const char *const names[] = { "ingress.test", NULL };

	testcert_ca(&ca, "http test CA");
	testcert_leaf(&s, &ca, "localhost", "DNS:localhost,IP:127.0.0.1",
	    TESTCERT_SERVER, 2);
	testcert_leaf(&ci, &ca, "ingress.test", "DNS:ingress.test",
	    TESTCERT_CLIENT, 3);
	testcert_leaf(&co, &ca, "other.test", "DNS:other.test",
	    TESTCERT_CLIENT, 4);
	testcert_write(&ca, T.dir, "ca");
	testcert_write(&s, T.dir, "server");
	testcert_write(&ci, T.dir, "ingress");
	testcert_write(&co, T.dir, "other");
	snprintf(cafile, sizeof(cafile), "%s/ca.crt", T.dir);
	snprintf(crt, sizeof(crt), "%s/server.crt", T.dir);
	snprintf(key, sizeof(key), "%s/server.key", T.dir);
	struct tls_server_opts o = {
		.cert_file = crt, .key_file = key, .client_ca_file = cafile,
		.peer_names = NULL,
	};
	assert_int_equal(tls_server_new(&T.tls, &o), 0);
	(void)names;
	snprintf(crt, sizeof(crt), "%s/ingress.crt", T.dir);
	snprintf(key, sizeof(key), "%s/ingress.key", T.dir);
	assert_non_null(T.cli_ingress = tls_client_ctx_new(cafile, crt, key));
	snprintf(crt, sizeof(crt), "%s/other.crt", T.dir);
	snprintf(key, sizeof(key), "%s/other.key", T.dir);
	assert_non_null(T.cli_other = tls_client_ctx_new(cafile, crt, key));
	testcert_free(&ca);
	testcert_free(&s);
	testcert_free(&ci);
	testcert_free(&co);
}

static int
setup(void **state)
{
	struct http_limits lim;
	const char *const from_lo[] = { "127.0.0.1/32", "::1/128", NULL };
	const char *const from_ten[] = { "10.0.0.0/8", NULL };
	const char *const xff[] = { "ingress.test", NULL };
	struct http_listener_opts lo;

	pthread_mutex_init(&T.mu, NULL);
	assert_int_equal(evthread_use_pthreads(), 0);
	snprintf(T.dir, sizeof(T.dir), "/tmp/moat-http-XXXXXX");
	assert_non_null(mkdtemp(T.dir));
	snprintf(T.logpath, sizeof(T.logpath), "%s/log", T.dir);
	T.logfd = open(T.logpath, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	assert_true(T.logfd >= 0);
	log_set_fd(T.logfd);
	make_certs();

	assert_non_null(T.base = event_base_new());
	http_limits_default(&lim);
	lim.max_request_line = 1024;
	lim.max_header_bytes = 2048;
	lim.max_headers = 20;
	lim.max_body = 4096;
	lim.header_timeout_ms = 300;
	lim.body_timeout_ms = 300;
	lim.idle_timeout_ms = 600;
	lim.write_timeout_ms = 2000;
	assert_int_equal(http_server_new(&T.srv, &lim), 0);
#define ROUTE(m, p, f, a) assert_int_equal(http_server_route(T.srv, m, p, f, a), 0)
	ROUTE("GET", "/hello", h_text, "hello");
	ROUTE("GET", "/", h_text, "root");
	ROUTE("GET", "/users/me", h_text, "me");
	ROUTE("GET", "/users/{id}", h_user, NULL);
	ROUTE("PUT", "/users/{id}", h_user, NULL);
	ROUTE("GET", "/users/{id}/keys/{key}", h_keys, NULL);
	ROUTE("GET", "/files/*", h_files, NULL);
	ROUTE("POST", "/echo", h_echo, NULL);
	ROUTE("GET", "/client", h_client, NULL);
	ROUTE("GET", "/json", h_json, NULL);
	ROUTE("GET", "/async", h_async, NULL);
	ROUTE("GET", "/upgrade", h_upgrade, NULL);
	ROUTE("GET", "/lend", h_lend, NULL);
	ROUTE("GET", "/hdr", h_hdr, NULL);
	ROUTE("GET", "/big", h_big, NULL);
#undef ROUTE
	assert_int_equal(http_server_route(T.srv, "GET", "/hello", h_text, "x"),
	    MOAT_ERR_EXISTS);
	assert_int_equal(http_server_route(T.srv, "GET", "nope", h_text, "x"),
	    MOAT_ERR_INVAL);
	assert_int_equal(http_server_route(T.srv, "GET", "/a/*/b", h_text, "x"),
	    MOAT_ERR_INVAL);
	http_server_set_observer(T.srv, observer, NULL);

	memset(&lo, 0, sizeof(lo));
	lo.addr = "127.0.0.1:0";
	assert_int_equal(http_server_listen(T.srv, T.base, &lo), 0);
	lo.proxy_from = from_lo;
	assert_int_equal(http_server_listen(T.srv, T.base, &lo), 0);
	lo.proxy_from = from_ten;
	assert_int_equal(http_server_listen(T.srv, T.base, &lo), 0);
	lo.proxy_from = NULL;
	lo.tls = T.tls;
	lo.xff_from_names = xff;
	assert_int_equal(http_server_listen(T.srv, T.base, &lo), 0);
	for (int i = 0; i < 4; i++) {
		T.port[i] = http_server_bound_port(T.srv, i);
		assert_true(T.port[i] > 0);
	}
	assert_int_equal(http_server_bound_port(T.srv, 4), -1);
	/* Dual-stack: IPv4 peers arrive as ::ffff:a.b.c.d (skipped when the
	 * machine has no IPv6). */
	memset(&lo, 0, sizeof(lo));
	lo.addr = "[::]:0";
	lo.proxy_from = from_lo;
	if (http_server_listen(T.srv, T.base, &lo) == 0)
		T.port[L_DUAL] = http_server_bound_port(T.srv, 4);
	/* Bad networks are refused at listen time. */
	{
		const char *const bad[] = { "10.0.0.0/33", NULL };

		memset(&lo, 0, sizeof(lo));
		lo.addr = "127.0.0.1:0";
		lo.proxy_from = bad;
		assert_int_equal(http_server_listen(T.srv, T.base, &lo),
		    MOAT_ERR_INVAL);
	}

	http_limits_default(&lim);
	lim.max_conns = 1;
	assert_int_equal(http_server_new(&T.srv2, &lim), 0);
	assert_int_equal(http_server_route(T.srv2, "GET", "/hello", h_text,
	    "hello"), 0);
	memset(&lo, 0, sizeof(lo));
	lo.addr = "127.0.0.1:0";
	assert_int_equal(http_server_listen(T.srv2, T.base, &lo), 0);
	T.port2 = http_server_bound_port(T.srv2, 0);

	assert_int_equal(pthread_create(&T.thread, NULL, loop_thread, NULL), 0);
	return 0;
}

static int
teardown(void **state)
{
	char p[256];

	http_server_shutdown(T.srv);
	http_server_shutdown(T.srv2);
	event_base_loopbreak(T.base);
	pthread_join(T.thread, NULL);
	http_server_free(T.srv);
	http_server_free(T.srv2);
	event_base_free(T.base);
	tls_server_free(T.tls);
	SSL_CTX_free(T.cli_ingress);
	SSL_CTX_free(T.cli_other);
	log_set_fd(2);
	close(T.logfd);
	static const char *const files[] = {
		"log", "ca.crt", "ca.key", "server.crt", "server.key",
		"ingress.crt", "ingress.key", "other.crt", "other.key", NULL
	};
	for (size_t i = 0; files[i] != NULL; i++) {
		snprintf(p, sizeof(p), "%s/%s", T.dir, files[i]);
		unlink(p);
	}
	rmdir(T.dir);
	return 0;
}

/* --- tests --- */

static void
test_keepalive(void **state)
{
	struct cl *c = cl_open(T.port[L_PLAIN]);
	struct resp r;
	char v[128];

	cl_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello");
	assert_non_null(find_header(r.head, "Date", v, sizeof(v)));
	assert_true(strstr(v, " GMT") != NULL);
	assert_non_null(find_header(r.head, "X-Content-Type-Options", v, sizeof(v)));
	assert_string_equal(v, "nosniff");
	assert_non_null(find_header(r.head, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "text/plain");
	assert_null(find_header(r.head, "Connection", v, sizeof(v)));
	assert_null(find_header(r.head, "Cache-Control", v, sizeof(v)));
	get_ok(c, "/hello", "hello");
	get_ok(c, "/", "root");
	cl_close(c);
}

static void
test_pipelined(void **state)
{
	struct cl *c = cl_open(T.port[L_PLAIN]);
	struct resp r;

	cl_sends(c, "GET /users/1 HTTP/1.1\r\nHost: t\r\n\r\n"
	    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc"
	    "GET /users/2 HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "user:1");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "abc");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "user:2");
	cl_close(c);
}

static void
test_routing(void **state)
{
	struct cl *c = cl_open(T.port[L_PLAIN]);
	struct resp r;
	char v[128];

	get_ok(c, "/users/me", "me");
	get_ok(c, "/users/42", "user:42");
	get_ok(c, "/users/a%20b", "user:a b");
	get_ok(c, "/users/7/keys/k%41", "7/kA");
	get_ok(c, "/files/a/b/c?x=1", "files:/files/a/b/c?x=1");
	get_ok(c, "/files/", "files:/files/?");

	cl_sends(c, "GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 404);
	assert_string_equal(r.body,
	    "{\"error\":{\"code\":\"not_found\",\"message\":\"not found\"}}");
	assert_non_null(find_header(r.head, "Cache-Control", v, sizeof(v)));
	assert_string_equal(v, "no-store");
	assert_non_null(find_header(r.head, "Content-Type", v, sizeof(v)));
	assert_string_equal(v, "application/json");

	/* /files needs at least one segment after it. */
	cl_sends(c, "GET /files HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 404);

	cl_sends(c, "DELETE /users/5 HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 405);
	assert_non_null(find_header(r.head, "Allow", v, sizeof(v)));
	assert_true(strstr(v, "GET") != NULL && strstr(v, "PUT") != NULL);

	/* HEAD falls back to GET, without a body. */
	cl_sends(c, "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	cl_resp_head(c, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(find_header(r.head, "Content-Length", v, sizeof(v)));
	assert_string_equal(v, "5");

	cl_sends(c, "GET /json HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "{\"ok\":true}");
	assert_non_null(find_header(r.head, "Cache-Control", v, sizeof(v)));
	get_ok(c, "/hello", "hello");	/* still alive after all that */
	cl_close(c);

	pthread_mutex_lock(&T.mu);
	assert_string_equal(T.last_route, "/hello");
	assert_int_equal(T.last_status, 200);
	pthread_mutex_unlock(&T.mu);
	c = cl_open(T.port[L_PLAIN]);
	get_ok(c, "/users/9", "user:9");
	cl_close(c);
	pthread_mutex_lock(&T.mu);
	assert_string_equal(T.last_route, "/users/{id}");
	pthread_mutex_unlock(&T.mu);
}

static void
test_bad_paths(void **state)
{
	static const char *const paths[] = {
		"/users/a%2Fb", "/users/..", "/users/%2e%2E", "/users/%2e",
		"/users/./x", "/users/a%00", "/users/%zz", "/users/%4",
		"/../hello", "/hello#frag",
	};
	struct resp r;
	char raw[256];

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		snprintf(raw, sizeof(raw), "GET %s HTTP/1.1\r\nHost: t\r\n\r\n",
		    paths[i]);
		if (one_shot(T.port[L_PLAIN], raw, true, &r) != 400)
			fail_msg("%s: status %d", paths[i], r.status);
	}
}

static void
test_bodies(void **state)
{
	struct cl *c = cl_open(T.port[L_PLAIN]);
	struct resp r;
	char v[64];

	cl_sends(c, "POST /echo?q=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello world");
	assert_non_null(find_header(r.head, "X-Path", v, sizeof(v)));
	assert_string_equal(v, "/echo");
	assert_non_null(find_header(r.head, "X-Checks", v, sizeof(v)));

	/* Chunked, split over several writes, with an extension and a
	 * trailer. */
	cl_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: ChunKed\r\n\r\n5;x=y\r\nhel");
	usleep(20 * 1000);
	cl_sends(c, "lo\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "hello world");

	/* Expect: 100-continue gets an interim answer before the body. */
	cl_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 100);
	cl_sends(c, "body");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "body");

	/* An empty body. */
	cl_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 200);
	assert_int_equal(r.body_len, 0);
	cl_close(c);
}

static void
test_smuggling(void **state)
{
	static const char *const bad[] = {
		/* framing */
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0x3\r\n\r\nabc",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3 3\r\n\r\nabc",
		"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
		"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
		/* header syntax */
		"GET /hello HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: t\r\nX-A: b\r\n\tc\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: t\r\nX-A: b\r\n c: d\r\n\r\n",
		"POST /echo HTTP/1.1\r\nHost: t\r\nX-A: b\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET /hello HTTP/1.1\r\n Host: t\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost : t\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost\t: t\r\n\r\n",
		"GET /hello HTTP/1.1\r\nTransfer-Encoding : chunked\r\nHost: t\r\n\r\n",
		"GET /hello HTTP/1.1\nHost: t\n\n",
		"GET /hello HTTP/1.1\r\nHost: t\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: t\r\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: t\r\nX-A: a\x7f\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: t\r\n: empty\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: t\r\nX(A): 1\r\n\r\n",
		"\r\n\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
		"\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n",
		/* request line and target */
		"GET http://t/hello HTTP/1.1\r\nHost: t\r\n\r\n",
		"CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET * HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /hello\r\n\r\n",
		"GET /hello HTTP/2.0\r\nHost: t\r\n\r\n",
		"GET /hello HTTP/0.9\r\nHost: t\r\n\r\n",
		"GET /hello HTTP/1.2\r\nHost: t\r\n\r\n",
		"GET /hello  HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /h\x80llo HTTP/1.1\r\nHost: t\r\n\r\n",
		"GET /h\tllo HTTP/1.1\r\nHost: t\r\n\r\n",
		"BREW /hello HTTP/1.1\r\nHost: t\r\n\r\n",
		"get /hello HTTP/1.1\r\nHost: t\r\n\r\n",
		/* Host */
		"GET /hello HTTP/1.1\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: a b\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: a/b\r\n\r\n",
		"GET /hello HTTP/1.1\r\nHost: u@a\r\n\r\n",
	};
	struct resp r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = one_shot(T.port[L_PLAIN], bad[i], true, &r);

		if (st != 400)
			fail_msg("case %zu: status %d", i, st);
		assert_true(strstr(r.body, "\"code\":\"bad_request\"") != NULL);
	}
	/* A stray CRLF before the request line is skipped. */
	assert_int_equal(one_shot(T.port[L_PLAIN],
	    "\r\nGET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
	    true, &r), 200);
	/* HTTP/1.0 without Host is fine. */
	assert_int_equal(one_shot(T.port[L_PLAIN], "GET /hello HTTP/1.0\r\n\r\n",
	    true, &r), 200);
	/* A NUL in a header value. */
	{
		static const char raw[] = "GET /hello HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n";
		struct cl *c = cl_open(T.port[L_PLAIN]);

		cl_send(c, raw, sizeof(raw) - 1);
		assert_int_equal(cl_resp(c, &r), 0);
		assert_int_equal(r.status, 400);
		cl_expect_eof(c);
		cl_close(c);
	}
}

static void
test_limits(void **state)
{
	char *raw = malloc(16384);
	size_t n;
	struct resp r;

	assert_non_null(raw);
	/* Request line over 1024. */
	n = (size_t)snprintf(raw, 16384, "GET /");
	memset(raw + n, 'a', 1100);
	n += 1100;
	snprintf(raw + n, 16384 - n, " HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(one_shot(T.port[L_PLAIN], raw, true, &r), 414);
	assert_true(strstr(r.body, "uri_too_long") != NULL);
	/* Just under the limit is fine (404). */
	n = (size_t)snprintf(raw, 16384, "GET /");
	memset(raw + n, 'a', 1000);
	n += 1000;
	snprintf(raw + n, 16384 - n, " HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(one_shot(T.port[L_PLAIN], raw, false, &r), 404);

	/* 25 header fields (max 20). */
	n = (size_t)snprintf(raw, 16384, "GET /hello HTTP/1.1\r\nHost: t\r\n");
	for (int i = 0; i < 25; i++)
		n += (size_t)snprintf(raw + n, 16384 - n, "X-%d: v\r\n", i);
	snprintf(raw + n, 16384 - n, "\r\n");
	assert_int_equal(one_shot(T.port[L_PLAIN], raw, true, &r), 431);
	/* Header bytes over 2048. */
	n = (size_t)snprintf(raw, 16384, "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: ");
	memset(raw + n, 'b', 3000);
	n += 3000;
	snprintf(raw + n, 16384 - n, "\r\n\r\n");
	assert_int_equal(one_shot(T.port[L_PLAIN], raw, true, &r), 431);

	/* Content-Length over max_body: refused before the body. */
	assert_int_equal(one_shot(T.port[L_PLAIN],
	    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\nxx",
	    true, &r), 413);
	/* Chunked body growing past max_body. */
	n = (size_t)snprintf(raw, 16384,
	    "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n");
	for (int i = 0; i < 5; i++) {
		n += (size_t)snprintf(raw + n, 16384 - n, "400\r\n");
		memset(raw + n, 'c', 1024);
		n += 1024;
		n += (size_t)snprintf(raw + n, 16384 - n, "\r\n");
	}
	snprintf(raw + n, 16384 - n, "0\r\n\r\n");
	assert_int_equal(one_shot(T.port[L_PLAIN], raw, true, &r), 413);
	/* Exactly max_body is accepted. */
	n = (size_t)snprintf(raw, 16384,
	    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4096\r\n\r\n");
	memset(raw + n, 'd', 4096);
	raw[n + 4096] = '\0';
	assert_int_equal(one_shot(T.port[L_PLAIN], raw, false, &r), 200);
	assert_int_equal(r.body_len, 4096);
	free(raw);
}

static void
test_timeouts(void **state)
{
	struct cl *c;
	struct resp r;
	struct timespec t0, t1;
	double ms;

	/* Slow head: 408, then close. */
	c = cl_open(T.port[L_PLAIN]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cl_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_int_equal(r.status, 408);
	cl_expect_eof(c);
	cl_close(c);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 250 && ms < 2000);

	/* Slow body: 408. */
	c = cl_open(T.port[L_PLAIN]);
	cl_sends(c, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 408);
	cl_expect_eof(c);
	cl_close(c);

	/* A connection that never sends anything is closed silently. */
	c = cl_open(T.port[L_PLAIN]);
	cl_expect_eof(c);
	cl_close(c);

	/* Idle keep-alive: closed without an answer after ~600 ms. */
	c = cl_open(T.port[L_PLAIN]);
	get_ok(c, "/hello", "hello");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cl_expect_eof(c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 450 && ms < 2500);
	cl_close(c);
}

static void
test_http10(void **state)
{
	struct cl *c;
	struct resp r;
	char v[64];

	assert_int_equal(one_shot(T.port[L_PLAIN], "GET /hello HTTP/1.0\r\n\r\n",
	    true, &r), 200);
	c = cl_open(T.port[L_PLAIN]);
	cl_sends(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_non_null(find_header(r.head, "Connection", v, sizeof(v)));
	assert_string_equal(v, "keep-alive");
	get_ok(c, "/hello", "hello");
	/* And HTTP/1.1 with Connection: close. */
	cl_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_non_null(find_header(r.head, "Connection", v, sizeof(v)));
	assert_string_equal(v, "close");
	cl_expect_eof(c);
	cl_close(c);
}

static void
test_proxy_v1(void **state)
{
	struct cl *c = cl_open(T.port[L_PROXY]);

	cl_sends(c, "PROXY TCP4 203.0.113.5 127.0.0.1 5555 80\r\n");
	get_ok(c, "/client", "203.0.113.5 127.0.0.1 -");
	get_ok(c, "/client", "203.0.113.5 127.0.0.1 -");
	cl_close(c);
	/* Header and request in one segment; UNKNOWN keeps the peer. */
	c = cl_open(T.port[L_PROXY]);
	cl_sends(c, "PROXY UNKNOWN\r\n");
	get_ok(c, "/client", "127.0.0.1 127.0.0.1 -");
	cl_close(c);
	/* Byte by byte. */
	c = cl_open(T.port[L_PROXY]);
	for (const char *p = "PROXY TCP6 2001:db8::9 ::1 1 2\r\n"; *p != '\0'; p++) {
		cl_send(c, p, 1);
		usleep(2000);
	}
	get_ok(c, "/client", "2001:db8::9 127.0.0.1 -");
	cl_close(c);
}

static void
test_proxy_v2(void **state)
{
	static const uint8_t sig[12] = {
		0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
	};
	uint8_t h[64];
	struct cl *c;

	memcpy(h, sig, 12);
	h[12] = 0x21;
	h[13] = 0x11;
	h[14] = 0;
	h[15] = 12 + 4;
	memcpy(h + 16, (uint8_t[]){ 198, 51, 100, 77, 127, 0, 0, 1, 0x12, 0x34, 0, 80 }, 12);
	memcpy(h + 28, (uint8_t[]){ 0x04, 0x00, 0x01, 0x00 }, 4);	/* NOOP TLV */
	c = cl_open(T.port[L_PROXY]);
	cl_send(c, h, 32);
	get_ok(c, "/client", "198.51.100.77 127.0.0.1 -");
	cl_close(c);

	/* LOCAL: health check from the balancer itself. */
	h[12] = 0x20;
	h[13] = 0x00;
	h[15] = 0;
	c = cl_open(T.port[L_PROXY]);
	cl_send(c, h, 16);
	get_ok(c, "/client", "127.0.0.1 127.0.0.1 -");
	cl_close(c);
}

static void
test_proxy_refused(void **state)
{
	struct cl *c;
	char buf[64];

	/* Peer not in proxy_from (10.0.0.0/8). */
	c = cl_open(T.port[L_PROXY10]);
	raw_send(c->fd, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(recv(c->fd, buf, sizeof(buf), 0) <= 0);
	cl_close(c);
	/* No header on a PROXY listener. */
	c = cl_open(T.port[L_PROXY]);
	raw_send(c->fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(recv(c->fd, buf, sizeof(buf), 0) <= 0);
	cl_close(c);
	/* Broken header. */
	c = cl_open(T.port[L_PROXY]);
	raw_send(c->fd, "PROXY TCP4 1.2.3.999 5.6.7.8 1 2\r\n");
	assert_true(recv(c->fd, buf, sizeof(buf), 0) <= 0);
	cl_close(c);
	/* Header never completed: refused at the header timeout. */
	c = cl_open(T.port[L_PROXY]);
	raw_send(c->fd, "PROXY TCP4 1.2");
	assert_true(recv(c->fd, buf, sizeof(buf), 0) <= 0);
	cl_close(c);
	/* The plain listener does not take PROXY headers as HTTP. */
	c = cl_open(T.port[L_PLAIN]);
	raw_send(c->fd, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
	assert_true(recv(c->fd, buf, sizeof(buf), 0) > 0);
	assert_true(strncmp(buf, "HTTP/1.1 400", 12) == 0);
	cl_close(c);
}

static void
test_take_conn(void **state)
{
	struct cl *c = cl_open(T.port[L_PLAIN]);
	ssize_t n;

	cl_sends(c, "GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\nEXTRA BYTES");
	while ((n = cl_more(c)) > 0)
		;
	assert_int_equal(n, 0);
	c->buf[c->len] = '\0';
	assert_true(strncmp(c->buf, "HTTP/1.1 101 ", 13) == 0);
	assert_true(strstr(c->buf, "\r\n\r\nrest:EXTRA BYTES") != NULL);
	cl_close(c);
}

static void
test_lend_conn(void **state)
{
	struct cl *c = cl_open(T.port[L_PLAIN]);
	struct resp r;

	/* Lent and given back: the pipelined next request is answered on the
	 * same connection, in order. */
	cl_sends(c, "GET /lend?a HTTP/1.1\r\nHost: t\r\n\r\n"
	    "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.body, "lent:a:1");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "hello");
	pthread_mutex_lock(&T.mu);
	assert_string_equal(T.last_route, "/hello");
	pthread_mutex_unlock(&T.mu);
	get_ok(c, "/lend?b", "lent:b:1");
	pthread_mutex_lock(&T.mu);
	assert_string_equal(T.last_route, "/lend");
	assert_int_equal(T.last_status, 200);
	pthread_mutex_unlock(&T.mu);
	/* Given back without keep: answer, then a clean close. */
	cl_sends(c, "GET /lend?close HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "lent:close:1");
	cl_expect_eof(c);
	cl_close(c);

	/* A client that asked for close: http_req_keepalive says so. */
	c = cl_open(T.port[L_PLAIN]);
	cl_sends(c, "GET /lend?x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "lent:x:0");
	cl_expect_eof(c);
	cl_close(c);

	/* HTTP/1.0 with keep-alive. */
	c = cl_open(T.port[L_PLAIN]);
	cl_sends(c, "GET /lend?y HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "lent:y:1");
	get_ok(c, "/hello", "hello");
	cl_close(c);

	/* The client leaves while the answer is lent: giving back frees. */
	c = cl_open(T.port[L_PLAIN]);
	cl_sends(c, "GET /lend?gone HTTP/1.1\r\nHost: t\r\n\r\n");
	cl_close(c);
	usleep(100 * 1000);
	c = cl_open(T.port[L_PLAIN]);
	get_ok(c, "/hello", "hello");
	cl_close(c);
}

static void
test_async(void **state)
{
	struct cl *c = cl_open(T.port[L_PLAIN]);
	struct resp r;

	get_ok(c, "/async", "late");
	get_ok(c, "/hello", "hello");
	/* Pipelined behind an asynchronous answer: order kept. */
	cl_sends(c, "GET /async HTTP/1.1\r\nHost: t\r\n\r\nGET /users/3 HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "late");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "user:3");
	cl_close(c);

	/* The client leaves before the answer: the late answer only frees. */
	c = cl_open(T.port[L_PLAIN]);
	cl_sends(c, "GET /async HTTP/1.1\r\nHost: t\r\n\r\n");
	usleep(10 * 1000);
	{
		struct linger lg = { 1, 0 };

		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	}
	cl_close(c);	/* reset */
	usleep(150 * 1000);
	c = cl_open(T.port[L_PLAIN]);
	get_ok(c, "/hello", "hello");
	cl_close(c);
}

static void
test_access_log(void **state)
{
	struct cl *c = cl_open(T.port[L_PLAIN]);
	char buf[65536];
	ssize_t n;
	bool found = false;

	get_ok(c, "/users/logcheck?token=s3cr3tvalue", "user:logcheck");
	cl_close(c);
	usleep(50 * 1000);
	n = pread(T.logfd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_null(strstr(buf, "s3cr3tvalue"));
	for (char *line = buf, *nl; line != NULL; line = nl) {
		if ((nl = strchr(line, '\n')) != NULL)
			*nl++ = '\0';
		if (strstr(line, "\"path\":\"/users/logcheck\"") == NULL)
			continue;
		found = true;
		assert_non_null(strstr(line, "\"component\":\"access\""));
		assert_non_null(strstr(line, "\"method\":\"GET\""));
		assert_non_null(strstr(line, "\"status\":200"));
		assert_non_null(strstr(line, "\"bytes\":13"));
		assert_non_null(strstr(line, "\"duration_ms\":"));
		assert_non_null(strstr(line, "\"client\":\"127.0.0.1\""));
		assert_null(strstr(line, "\"peer\""));
		assert_non_null(strstr(line, "\"proto\":\"http\""));
	}
	assert_true(found);
}

static void
test_max_conns(void **state)
{
	struct cl *a = cl_open(T.port2), *b;
	char buf[16];

	get_ok(a, "/hello", "hello");
	assert_int_equal(http_server_open_conns(T.srv2), 1);
	b = cl_open(T.port2);
	raw_send(b->fd, "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_true(recv(b->fd, buf, sizeof(buf), 0) <= 0);
	cl_close(b);
	get_ok(a, "/hello", "hello");
	cl_close(a);
	usleep(100 * 1000);
	assert_int_equal(http_server_open_conns(T.srv2), 0);
	a = cl_open(T.port2);
	get_ok(a, "/hello", "hello");
	cl_close(a);
}

static void
test_tls(void **state)
{
	struct cl *c;
	struct resp r;

	/* Keep-alive over TLS; the ingress name makes XFF believed, and the
	 * last entry is the one used. */
	c = cl_open_tls(T.cli_ingress);
	get_ok(c, "/hello", "hello");
	get_ok(c, "/client", "127.0.0.1 127.0.0.1 ingress.test");
	cl_sends(c, "GET /client HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 6.6.6.6, 198.51.100.23\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "198.51.100.23 127.0.0.1 ingress.test");
	cl_sends(c, "GET /client HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 2001:db8::1\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "2001:db8::1 127.0.0.1 ingress.test");
	/* Garbage in the last entry: ignored. */
	cl_sends(c, "GET /client HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 1.2.3.4, evil\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "127.0.0.1 127.0.0.1 ingress.test");
	/* An error over TLS closes cleanly too. */
	cl_sends(c, "GET /hello HTTP/1.1\r\nHost: t\r\nHost: u\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_int_equal(r.status, 400);
	cl_expect_eof(c);
	cl_close(c);

	/* Another certificate of the same CA: XFF ignored. */
	c = cl_open_tls(T.cli_other);
	cl_sends(c, "GET /client HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 198.51.100.23\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "127.0.0.1 127.0.0.1 other.test");
	cl_close(c);

	/* Plain XFF is never believed. */
	c = cl_open(T.port[L_PLAIN]);
	cl_sends(c, "GET /client HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 198.51.100.23\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "127.0.0.1 127.0.0.1 -");
	cl_close(c);
}

static void
test_headers(void **state)
{
	struct cl *c = cl_open(T.port[L_PLAIN]);
	struct resp r;

	cl_sends(c, "GET /hdr?a=b HTTP/1.1\r\nHost: t\r\nX-Test:   v  w \t \r\nX-Empty:\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "[v  w][][/hdr?a=b]");
	cl_sends(c, "GET /hdr HTTP/1.1\r\nHost: t\r\nx-test: 1\r\nX-TEST: 2\r\nX-Empty: \r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "[1][][/hdr]");
	cl_sends(c, "GET /hdr HTTP/1.1\r\nHost: t\r\n\r\n");
	assert_int_equal(cl_resp(c, &r), 0);
	assert_string_equal(r.body, "[none][none][/hdr]");
	cl_close(c);
}

/* The head scanner on its own, whole and byte by byte: it must refuse
 * these even where http-parser would fold or tolerate them. */
static int
scan_all(const char *h, size_t step)
{
	struct http_limits lim;
	struct http_scan sc;
	size_t len = strlen(h), off = 0, used;
	int r = 0;

	http_limits_default(&lim);
	lim.max_headers = 4;
	memset(&sc, 0, sizeof(sc));
	while (off < len && r == 0) {
		size_t n = len - off < step ? len - off : step;

		r = http__scan(&sc, &lim, (const uint8_t *)h + off, n, &used);
		off += used;
	}
	if (r == 1 && off != len)
		return -1;	/* head ended early */
	return r;
}

static void
test_scanner(void **state)
{
	static const struct { const char *h; int want; } cases[] = {
		{ "GET / HTTP/1.1\r\nHost: t\r\nX: a b\t\r\n\r\n", 1 },
		{ "\r\nGET / HTTP/1.1\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nX: a\r\n c: d\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nX: a\r\n\tc\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nX : a\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\nX: a\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nX: a\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nX: a\r\n\n", 400 },
		{ "GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nX: \x1b\r\n\r\n", 400 },
		{ "GET  / HTTP/1.1\r\n\r\n", 400 },
		{ "GET / HTTP/1.1 \r\n\r\n", 400 },
		{ " GET / HTTP/1.1\r\n\r\n", 400 },
		{ "GET /\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n", 431 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int a = scan_all(cases[i].h, 4096), b = scan_all(cases[i].h, 1);

		if (a != cases[i].want || b != cases[i].want)
			fail_msg("case %zu: %d/%d, want %d", i, a, b, cases[i].want);
	}
}

static void
test_dual_stack(void **state)
{
	struct cl *c;

	if (T.port[L_DUAL] == 0)
		skip();
	c = cl_open(T.port[L_DUAL]);
	cl_sends(c, "PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n");
	get_ok(c, "/client", "203.0.113.9 127.0.0.1 -");
	cl_close(c);
}

static void
test_big_backpressure(void **state)
{
	/* 60 pipelined requests for 60 kB each while not reading: the
	 * server must stop parsing when its output backs up, then go on. */
	struct cl *c;
	struct resp r;
	int rcv = 4096;
	struct sockaddr_in sin;
	struct timeval tv = { 3, 0 };
	static const char one[] = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";

	assert_non_null(c = calloc(1, sizeof(*c)));
	c->fd = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)T.port[L_PLAIN]);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	for (int i = 0; i < 60; i++)
		cl_sends(c, one);
	usleep(100 * 1000);
	for (int i = 0; i < 60; i++) {
		assert_int_equal(cl_resp(c, &r), 0);
		assert_int_equal(r.status, 200);
		assert_int_equal(r.body_len, 60000);
	}
	get_ok(c, "/hello", "hello");
	cl_close(c);
}

static void
test_shutdown(void **state)
{
	struct cl *a = cl_open(T.port2), *b;
	char buf[16];

	get_ok(a, "/hello", "hello");
	http_server_shutdown(T.srv2);
	/* The idle keep-alive connection is closed, new ones refused. */
	cl_expect_eof(a);
	cl_close(a);
	b = calloc(1, sizeof(*b));
	assert_non_null(b);
	b->fd = socket(AF_INET, SOCK_STREAM, 0);
	{
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((uint16_t)T.port2);
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		assert_int_equal(connect(b->fd, (struct sockaddr *)&sin,
		    sizeof(sin)), -1);
		assert_int_equal(errno, ECONNREFUSED);
	}
	cl_close(b);
	(void)buf;
}

static void
test_output_backpressure(void **state)
{
	/* Many pipelined requests written before reading any answer. */
	struct cl *c = cl_open(T.port[L_PLAIN]);
	static const char one[] = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
	char *all = malloc(sizeof(one) * 3000);
	size_t n = 0;
	struct resp r;

	assert_non_null(all);
	for (int i = 0; i < 3000; i++) {
		memcpy(all + n, one, sizeof(one) - 1);
		n += sizeof(one) - 1;
	}
	cl_send(c, all, n);
	for (int i = 0; i < 3000; i++) {
		assert_int_equal(cl_resp(c, &r), 0);
		assert_string_equal(r.body, "hello");
	}
	free(all);
	cl_close(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keepalive),
		cmocka_unit_test(test_pipelined),
		cmocka_unit_test(test_routing),
		cmocka_unit_test(test_bad_paths),
		cmocka_unit_test(test_bodies),
		cmocka_unit_test(test_smuggling),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_timeouts),
		cmocka_unit_test(test_http10),
		cmocka_unit_test(test_proxy_v1),
		cmocka_unit_test(test_proxy_v2),
		cmocka_unit_test(test_proxy_refused),
		cmocka_unit_test(test_take_conn),
		cmocka_unit_test(test_lend_conn),
		cmocka_unit_test(test_async),
		cmocka_unit_test(test_access_log),
		cmocka_unit_test(test_max_conns),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_output_backpressure),
		cmocka_unit_test(test_headers),
		cmocka_unit_test(test_scanner),
		cmocka_unit_test(test_dual_stack),
		cmocka_unit_test(test_big_backpressure),
		cmocka_unit_test(test_shutdown),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
