/*
 * test_proxy.c - unit tests for proxy.c: the proxy in-process (its event
 * base on a thread, the real HTTP core, addr.c, decide.c and the resolver
 * with a hosts file), origins on 127.0.0.2 (a plain HTTP server and an
 * echo server, blocking threads), and raw HTTP spoken by the test over
 * blocking sockets. Every destination is on 127.0.0.0/8; the policy allows
 * only 127.0.0.2 (cidr) and the resolver asks no one but 127.0.0.1:1.
 *
 * Covers: allowed absolute-form GET (origin-form upstream, hop-by-hop
 * headers and Proxy-Authorization stripped, Connection: close both ways),
 * a name from the hosts file, denials (403 one-line text naming host,
 * policy and reason; the client connection stays open and the next request
 * is decided on its own), origin-form 400, bad targets (https://,
 * userinfo, Host disagreeing, zone id), Upgrade refused, each smuggling
 * shape 400, CONNECT relaying, SNI matching and mismatching (tunnel closed
 * before a byte reaches the origin), a ClientHello without SNI, connection
 * refused 502, a policy swap, the connection cap and the audit events.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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
#include <event2/event.h>
#include <openssl/ssl.h>

#include "audit.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "policy.h"
#include "proxy.h"

/* --- origins on 127.0.0.2 --- */

struct origin {
	int lfd;
	int port;
	bool echo;			/* echo server (CONNECT), else HTTP */
	bool script;			/* scripted answers by path, keep-alive */
	int requests;			/* script: requests answered */
	pthread_t th;
	pthread_mutex_t mu;
	char last[8192];		/* last request head / bytes received */
	size_t last_len;
	int conns;
	int live;			/* script: connection threads running */
};

struct script_arg {
	struct origin *o;
	int fd, id;
};

static int
listen_on(const char *ip, int *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	assert_true(fd >= 0);
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 16), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

/* Scripted answers (by the request path), for the framing tests. close:
 * the origin closes after it. */
static const struct {
	const char *path, *resp;
	bool close;
} script[] = {
	{ "/keep", "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nkeep", false },
	{ "/eof", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
	  true },
	{ "/smuggle", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	  "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged", false },
	{ "/chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
	  "5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n"
	  "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nforged", false },
	{ "/truncated", "HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", true },
	{ "/bad", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false },
	{ "/head", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", false },
};

/* One connection of the scripted origin: request heads (no bodies) in,
 * scripted answers out, until the client or the script closes. */
static void
script_conn(struct origin *o, int fd, int id)
{
	char buf[8192];
	size_t n = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char *e, path[256];
		ssize_t k;
		size_t hl;
		bool close_after = true;
		const char *resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

		buf[n] = '\0';
		if ((e = strstr(buf, "\r\n\r\n")) == NULL) {
			if (poll(&p, 1, 3000) <= 0 || n >= sizeof(buf) - 1)
				return;
			if ((k = read(fd, buf + n, sizeof(buf) - 1 - n)) <= 0)
				return;
			n += (size_t)k;
			continue;
		}
		hl = (size_t)(e + 4 - buf);
		if (sscanf(buf, "%*s %255s", path) != 1)
			return;
		for (size_t i = 0; i < sizeof(script) / sizeof(script[0]); i++)
			if (strcmp(path, script[i].path) == 0) {
				resp = script[i].resp;
				close_after = script[i].close;
			}
		pthread_mutex_lock(&o->mu);
		o->requests++;
		memcpy(o->last, buf, hl);
		o->last[hl] = '\0';
		o->last_len = hl;
		pthread_mutex_unlock(&o->mu);
		{
			/* Each answer names its connection: X-Conn. */
			const char *eol = strstr(resp, "\r\n") + 2;
			char tag[32];
			int tl = snprintf(tag, sizeof(tag), "X-Conn: %d\r\n", id);

			(void)!write(fd, resp, (size_t)(eol - resp));
			(void)!write(fd, tag, (size_t)tl);
			(void)!write(fd, eol, strlen(eol));
		}
		if (close_after)
			return;
		memmove(buf, buf + hl, n - hl);
		n -= hl;
	}
}

static void *
script_thread(void *arg)
{
	struct script_arg *a = arg;

	script_conn(a->o, a->fd, a->id);
	close(a->fd);
	pthread_mutex_lock(&a->o->mu);
	a->o->live--;
	pthread_mutex_unlock(&a->o->mu);
	free(a);
	return NULL;
}

static void *
origin_main(void *arg)
{
	struct origin *o = arg;
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "Connection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\n"
	    "X-Hop: secret\r\nProxy-Authenticate: Basic\r\nX-Origin: yes\r\n\r\nhello";

	for (;;) {
		int fd = accept(o->lfd, NULL, NULL);
		char buf[8192];
		size_t n = 0;

		if (fd < 0)
			return NULL;
		pthread_mutex_lock(&o->mu);
		o->conns++;
		pthread_mutex_unlock(&o->mu);
		if (o->script) {
			/* A thread per connection: the proxy keeps some idle. */
			struct script_arg *a = calloc(1, sizeof(*a));
			pthread_t th;

			assert_non_null(a);
			a->o = o;
			a->fd = fd;
			pthread_mutex_lock(&o->mu);
			a->id = o->conns;
			o->live++;
			pthread_mutex_unlock(&o->mu);
			assert_int_equal(pthread_create(&th, NULL, script_thread, a), 0);
			pthread_detach(th);
			continue;
		}
		for (;;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			ssize_t k;

			if (poll(&p, 1, 2000) <= 0)
				break;
			k = read(fd, buf + n, sizeof(buf) - 1 - n);
			if (k <= 0)
				break;
			if (o->echo) {
				(void)!write(fd, buf + n, (size_t)k);
				n += (size_t)k;
				if (n >= sizeof(buf) - 1)
					n = 0;
				pthread_mutex_lock(&o->mu);
				memcpy(o->last, buf, n);
				o->last_len = n;
				pthread_mutex_unlock(&o->mu);
				continue;
			}
			n += (size_t)k;
			buf[n] = '\0';
			if (strstr(buf, "\r\n\r\n") != NULL) {
				pthread_mutex_lock(&o->mu);
				memcpy(o->last, buf, n + 1);
				o->last_len = n;
				pthread_mutex_unlock(&o->mu);
				(void)!write(fd, resp, sizeof(resp) - 1);
				break;
			}
		}
		close(fd);
	}
}

static void
origin_start(struct origin *o, bool echo)
{
	memset(o, 0, sizeof(*o));
	o->echo = echo;
	o->script = false;
	pthread_mutex_init(&o->mu, NULL);
	o->lfd = listen_on("127.0.0.2", &o->port);
	assert_int_equal(pthread_create(&o->th, NULL, origin_main, o), 0);
}

static void
origin_stop(struct origin *o)
{
	shutdown(o->lfd, SHUT_RDWR);
	close(o->lfd);
	pthread_join(o->th, NULL);
	for (int i = 0; i < 500; i++) {
		int live;

		pthread_mutex_lock(&o->mu);
		live = o->live;
		pthread_mutex_unlock(&o->mu);
		if (live == 0)
			break;
		usleep(10000);
	}
	pthread_mutex_destroy(&o->mu);
}

static void
origin_last(struct origin *o, char *out, size_t outlen, size_t *len)
{
	pthread_mutex_lock(&o->mu);
	*len = o->last_len < outlen - 1 ? o->last_len : outlen - 1;
	memcpy(out, o->last, *len);
	out[*len] = '\0';
	o->last_len = 0;
	o->last[0] = '\0';
	pthread_mutex_unlock(&o->mu);
}

/* --- the proxy --- */

static struct {
	char dir[64];
	char hosts[128], audit_path[128];
	struct event_base *base;
	struct http_server *srv;
	struct proxy *proxy;
	struct audit_writer *audit;
	pthread_t th;
	int port;
	struct origin web, echo, scr;
	int closed_port;
} T;

static void *
loop_main(void *arg)
{
	(void)arg;
	(void)event_base_dispatch(T.base);
	return NULL;
}

static json_t *
make_policy(const char *name, int p1, int p2, int p3, int p4)
{
	json_t *doc, *out = NULL;
	char path[128], err[256];

	doc = json_pack("{s:s,s:s,s:[{s:s,s:[i,i,i,i]}],s:[{s:s}]}", "name", name,
	    "mode", "enforce", "allow", "cidr", "127.0.0.2/32", "ports", p1, p2,
	    p3, p4, "deny", "host", "evil.example");
	assert_non_null(doc);
	assert_int_equal(policy_normalize(doc, &out, path, sizeof(path), err,
	    sizeof(err)), 0);
	json_decref(doc);
	return out;
}

static int
setup(void **state)
{
	struct http_listener_opts lo = { .addr = "127.0.0.1:0" };
	struct audit_writer_opts ao = { 0 };
	struct proxy_opts po = { 0 };
	json_t *pol;
	FILE *f;
	int cfd;

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	assert_int_equal(loop_global_init(), 0);
	snprintf(T.dir, sizeof(T.dir), "/tmp/test_proxy.XXXXXX");
	assert_non_null(mkdtemp(T.dir));
	snprintf(T.hosts, sizeof(T.hosts), "%s/hosts", T.dir);
	snprintf(T.audit_path, sizeof(T.audit_path), "%s/audit.log", T.dir);
	f = fopen(T.hosts, "w");
	assert_non_null(f);
	fprintf(f, "127.0.0.2 origin.test\n127.0.0.2 other.test\n");
	fclose(f);
	origin_start(&T.web, false);
	origin_start(&T.echo, true);
	memset(&T.scr, 0, sizeof(T.scr));
	T.scr.script = true;
	pthread_mutex_init(&T.scr.mu, NULL);
	T.scr.lfd = listen_on("127.0.0.2", &T.scr.port);
	assert_int_equal(pthread_create(&T.scr.th, NULL, origin_main, &T.scr), 0);
	cfd = listen_on("127.0.0.2", &T.closed_port);
	close(cfd);		/* a port where nothing listens */

	ao.path = T.audit_path;
	ao.fsync_policy = AUDIT_FSYNC_NONE;
	ao.process_name = "moat-proxy";
	assert_int_equal(audit_writer_open(&T.audit, &ao), 0);
	T.base = event_base_new();
	assert_non_null(T.base);
	po.connect_timeout_ms = 2000;
	po.idle_timeout_ms = 3000;
	po.dns_timeout_ms = 1000;
	po.max_conns = 8;
	po.nameserver = "127.0.0.1:1";
	po.hosts_file = T.hosts;
	po.audit = T.audit;
	assert_int_equal(proxy_new(&T.proxy, &po), 0);
	pol = make_policy("test", T.web.port, T.echo.port, T.closed_port,
	    T.scr.port);
	proxy_set_policy(T.proxy, pol);
	json_decref(pol);
	assert_int_equal(http_server_new(&T.srv, NULL), 0);
	http_server_set_access_log(T.srv, NULL);
	assert_int_equal(proxy_routes(T.proxy, T.srv), 0);
	assert_int_equal(proxy_add_base(T.proxy, T.base), 0);
	assert_int_equal(http_server_listen(T.srv, T.base, &lo), 0);
	T.port = http_server_bound_port(T.srv, 0);
	assert_int_equal(pthread_create(&T.th, NULL, loop_main, NULL), 0);
	return 0;
}

static int
teardown(void **state)
{
	char path[192];

	(void)state;
	http_server_shutdown(T.srv);
	proxy_shutdown(T.proxy);
	usleep(50000);
	event_base_loopbreak(T.base);
	pthread_join(T.th, NULL);
	proxy_free(T.proxy);
	http_server_free(T.srv);
	event_base_free(T.base);
	audit_writer_close(T.audit);
	origin_stop(&T.web);
	origin_stop(&T.echo);
	origin_stop(&T.scr);
	unlink(T.hosts);
	unlink(T.audit_path);
	snprintf(path, sizeof(path), "%s.checkpoint", T.audit_path);
	unlink(path);
	rmdir(T.dir);
	return 0;
}

/* --- client helpers --- */

static int
client(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
	    .sin_port = htons((uint16_t)T.port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void
send_all(int fd, const void *p, size_t n)
{
	assert_int_equal(write(fd, p, n), (ssize_t)n);
}

static void
send_str(int fd, const char *s)
{
	send_all(fd, s, strlen(s));
}

/* Reads one response (head + Content-Length body), or until EOF when
 * there is no Content-Length. Returns its length; out is NUL-terminated. */
static size_t
read_resp(int fd, char *out, size_t outlen)
{
	size_t n = 0;
	char *e, *cl;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;

		out[n] = '\0';
		if ((e = strstr(out, "\r\n\r\n")) != NULL &&
		    (cl = strcasestr(out, "\r\nContent-Length: ")) != NULL && cl < e) {
			size_t want = (size_t)strtoul(cl + 18, NULL, 10);

			if (n >= (size_t)(e + 4 - out) + want)
				return n;
		}
		if (poll(&p, 1, 3000) <= 0)
			return n;
		k = read(fd, out + n, outlen - 1 - n);
		if (k <= 0)
			return n;
		n += (size_t)k;
	}
}

/* Is the connection closed by the proxy (EOF within a second)? */
static bool
closed_soon(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, 1000) <= 0)
		return false;
	return read(fd, &c, 1) <= 0;
}

static int
status_of(const char *resp)
{
	if (strncmp(resp, "HTTP/1.1 ", 9) != 0)
		return -1;
	return (int)strtol(resp + 9, NULL, 10);
}

static const char *
body_of(const char *resp)
{
	const char *e = strstr(resp, "\r\n\r\n");

	return e != NULL ? e + 4 : "";
}

/* One request on a fresh connection: status, body copied into out. */
static int
roundtrip(const char *req, char *out, size_t outlen)
{
	int fd = client(), st;

	send_str(fd, req);
	(void)read_resp(fd, out, outlen);
	close(fd);
	st = status_of(out);
	return st;
}

/* --- tests --- */

static void
test_allowed_get_strips_hop_by_hop(void **state)
{
	char req[512], resp[4096], seen[8192];
	size_t n;

	(void)state;
	snprintf(req, sizeof(req), "GET http://127.0.0.2:%d/a/b?q=1 HTTP/1.1\r\n"
	    "Host: 127.0.0.2:%d\r\nProxy-Authorization: Basic c2VjcmV0\r\n"
	    "Proxy-Connection: keep-alive\r\nConnection: keep-alive, X-Secret\r\n"
	    "X-Secret: 1\r\nTE: trailers\r\nX-Keep: kept\r\n\r\n",
	    T.web.port, T.web.port);
	assert_int_equal(roundtrip(req, resp, sizeof(resp)), 200);
	assert_string_equal(body_of(resp), "hello");
	assert_non_null(strstr(resp, "X-Origin: yes"));
	assert_null(strstr(resp, "Connection:"));	/* kept: HTTP/1.1 */
	assert_null(strstr(resp, "Keep-Alive"));
	assert_null(strstr(resp, "X-Hop"));
	assert_null(strstr(resp, "Proxy-Authenticate"));
	origin_last(&T.web, seen, sizeof(seen), &n);
	assert_true(strncmp(seen, "GET /a/b?q=1 HTTP/1.1\r\n", 23) == 0);
	snprintf(req, sizeof(req), "Host: 127.0.0.2:%d\r\n", T.web.port);
	assert_non_null(strstr(seen, req));
	assert_non_null(strstr(seen, "X-Keep: kept\r\n"));
	assert_null(strcasestr(seen, "\r\nConnection:"));
	assert_null(strcasestr(seen, "proxy-authorization"));
	assert_null(strcasestr(seen, "proxy-connection"));
	assert_null(strcasestr(seen, "x-secret"));
	assert_null(strcasestr(seen, "\r\nTE:"));
}

static void
test_name_from_hosts_file_and_body(void **state)
{
	char req[512], resp[4096], seen[8192];
	size_t n;

	(void)state;
	snprintf(req, sizeof(req), "POST http://Origin.TEST.:%d/up HTTP/1.1\r\n"
	    "Host: origin.test:%d\r\nContent-Length: 4\r\n\r\nbody",
	    T.web.port, T.web.port);
	assert_int_equal(roundtrip(req, resp, sizeof(resp)), 200);
	origin_last(&T.web, seen, sizeof(seen), &n);
	assert_true(strncmp(seen, "POST /up HTTP/1.1\r\n", 19) == 0);
	snprintf(req, sizeof(req), "Host: origin.test:%d\r\n", T.web.port);
	assert_non_null(strstr(seen, req));
	assert_non_null(strstr(seen, "Content-Length: 4\r\n"));
}

static void
test_denials_keep_connection_and_decide_each(void **state)
{
	char req[512], resp[4096];
	int fd = client();

	(void)state;
	/* A port the policy does not allow. */
	send_str(fd, "GET http://127.0.0.2:9/x HTTP/1.1\r\nHost: 127.0.0.2:9\r\n\r\n");
	(void)read_resp(fd, resp, sizeof(resp));
	assert_int_equal(status_of(resp), 403);
	assert_non_null(strstr(resp, "Content-Type: text/plain"));
	assert_non_null(strstr(body_of(resp), "127.0.0.2:9"));
	assert_non_null(strstr(body_of(resp), "policy \"test\""));
	assert_true(strncmp(body_of(resp), "moat-proxy: GET to 127.0.0.2:9 denied", 36) == 0);
	assert_int_equal(strchr(body_of(resp), '\n') - body_of(resp) + 1,
	    (long)strlen(body_of(resp)));	/* one line */
	/* Same connection, an allowed request: decided on its own. */
	snprintf(req, sizeof(req), "GET http://127.0.0.2:%d/ HTTP/1.1\r\n"
	    "Host: 127.0.0.2:%d\r\n\r\n", T.web.port, T.web.port);
	send_str(fd, req);
	(void)read_resp(fd, resp, sizeof(resp));
	assert_int_equal(status_of(resp), 200);
	/* Kept after a forwarded answer; the next denial is decided anew. */
	send_str(fd, "GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n");
	(void)read_resp(fd, resp, sizeof(resp));
	assert_int_equal(status_of(resp), 403);
	close(fd);

	/* Denied by name before any lookup, CONNECT, never 407. */
	assert_int_equal(roundtrip("CONNECT evil.example:443 HTTP/1.1\r\n"
	    "Host: evil.example:443\r\n\r\n", resp, sizeof(resp)), 403);
	assert_non_null(strstr(body_of(resp),
	    "moat-proxy: CONNECT to evil.example:443 denied by policy \"test\""));
	/* Loopback outside the cidr rule (special-purpose). */
	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/ HTTP/1.1\r\n"
	    "Host: 127.0.0.1:%d\r\n\r\n", T.web.port, T.web.port);
	assert_int_equal(roundtrip(req, resp, sizeof(resp)), 403);
	/* An IP spelling of 127.0.0.2: normalized, then allowed. */
	snprintf(req, sizeof(req), "GET http://0x7f000002:%d/ HTTP/1.0\r\n\r\n",
	    T.web.port);
	assert_int_equal(roundtrip(req, resp, sizeof(resp)), 200);
}

/* The tables below are printf formats with the origin port. */
#pragma GCC diagnostic ignored "-Wformat-nonliteral"

static void
test_bad_requests(void **state)
{
	char req[512], resp[4096];
	const char *bad[] = {
		"GET https://127.0.0.2:%d/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://user:pw@127.0.0.2:%d/ HTTP/1.1\r\nHost: 127.0.0.2\r\n\r\n",
		"GET http://127.0.0.2:%d/ HTTP/1.1\r\nHost: other.test\r\n\r\n",
		"GET http://[fe80::1%%25eth0]:%d/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET ftp://127.0.0.2:%d/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://127.0.0.2:%d0000/ HTTP/1.1\r\nHost: x\r\n\r\n",
		"CONNECT 127.0.0.2 HTTP/1.1\r\nHost: x%d\r\n\r\n",
		"GET http://127.0.0.2:%d/a/%%2e%%2e/b HTTP/1.0\r\n\r\n",
	};

	(void)state;
	assert_int_equal(roundtrip("GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n",
	    resp, sizeof(resp)), 400);
	assert_non_null(strstr(body_of(resp), "this is a proxy"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(req, sizeof(req), bad[i], T.web.port);
		assert_int_equal(roundtrip(req, resp, sizeof(resp)), 400);
	}
	/* Upgrade in plain-HTTP forwarding. */
	snprintf(req, sizeof(req), "GET http://127.0.0.2:%d/ws HTTP/1.1\r\n"
	    "Host: 127.0.0.2:%d\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
	    T.web.port, T.web.port);
	assert_int_equal(roundtrip(req, resp, sizeof(resp)), 403);
	assert_non_null(strstr(body_of(resp), "Upgrade"));
}

static void
test_smuggling_shapes(void **state)
{
	char req[512], resp[4096];
	const char *shapes[] = {
		"POST http://127.0.0.2:%d/ HTTP/1.1\r\nHost: 127.0.0.2\r\n"
		"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"POST http://127.0.0.2:%d/ HTTP/1.1\r\nHost: 127.0.0.2\r\n"
		"Content-Length: 4\r\nContent-Length: 5\r\n\r\nbody",
		"POST http://127.0.0.2:%d/ HTTP/1.1\r\nHost: 127.0.0.2\r\n"
		"Content-Length: +4\r\n\r\nbody",
		"GET http://127.0.0.2:%d/ HTTP/1.1\r\nHost: 127.0.0.2\r\n"
		"X-A: a\r\n folded\r\n\r\n",
		"GET http://127.0.0.2:%d/ HTTP/1.1\nHost: 127.0.0.2\n\n",
		"GET http://127.0.0.2:%d/ HTTP/1.1\r\nHost : 127.0.0.2\r\n\r\n",
		"POST http://127.0.0.2:%d/ HTTP/1.1\r\nHost: 127.0.0.2\r\n"
		"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
		"POST http://127.0.0.2:%d/ HTTP/1.1\r\nHost: 127.0.0.2\r\n"
		"Transfer-Encoding: CHUNKED\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		snprintf(req, sizeof(req), shapes[i], T.web.port);
		assert_int_equal(roundtrip(req, resp, sizeof(resp)), 400);
	}
}

/* A real ClientHello naming sni (NULL: none). */
static size_t
client_hello(const char *sni, uint8_t *out, size_t outlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(ctx);
	BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
	int n;

	SSL_set_bio(ssl, rb, wb);
	if (sni != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(ssl, sni), 1);
	SSL_set_connect_state(ssl);
	(void)SSL_do_handshake(ssl);
	n = BIO_read(wb, out, (int)outlen);
	assert_true(n > 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return (size_t)n;
}

/* Opens a CONNECT tunnel to host:echo port; returns the fd after 200. */
static int
tunnel(const char *host)
{
	char req[256], resp[1024];
	int fd = client();
	size_t n = 0;

	snprintf(req, sizeof(req), "CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n",
	    host, T.echo.port, host, T.echo.port);
	send_str(fd, req);
	while (n < 39) {
		ssize_t k = read(fd, resp + n, 39 - n);

		assert_true(k > 0);
		n += (size_t)k;
	}
	resp[n] = '\0';
	assert_string_equal(resp, "HTTP/1.1 200 Connection established\r\n\r\n");
	return fd;
}

static size_t
read_n(int fd, uint8_t *out, size_t want)
{
	size_t n = 0;

	while (n < want) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;

		if (poll(&p, 1, 3000) <= 0)
			break;
		if ((k = read(fd, out + n, want - n)) <= 0)
			break;
		n += (size_t)k;
	}
	return n;
}

static void
test_connect_tunnels_and_sni(void **state)
{
	uint8_t hello[4096], back[4096];
	char seen[8192];
	size_t n, m;
	int fd;

	(void)state;
	/* Not TLS: relayed both ways. */
	fd = tunnel("127.0.0.2");
	send_str(fd, "ping");
	assert_int_equal(read_n(fd, back, 4), 4);
	assert_memory_equal(back, "ping", 4);
	close(fd);

	/* SNI equal to the CONNECT host (any case): relayed. */
	n = client_hello("ORIGIN.test", hello, sizeof(hello));
	fd = tunnel("origin.test");
	send_all(fd, hello, n);
	assert_int_equal(read_n(fd, back, n), n);
	assert_memory_equal(back, hello, n);
	close(fd);

	/* SNI for another (also allowed) name: refused, nothing reaches
	 * the origin. */
	usleep(100000);
	origin_last(&T.echo, seen, sizeof(seen), &m);
	n = client_hello("other.test", hello, sizeof(hello));
	fd = tunnel("origin.test");
	send_all(fd, hello, n);
	assert_true(closed_soon(fd));
	close(fd);
	usleep(100000);
	origin_last(&T.echo, seen, sizeof(seen), &m);
	assert_int_equal(m, 0);

	/* No SNI: refused to a name, allowed to a literal. */
	n = client_hello(NULL, hello, sizeof(hello));
	fd = tunnel("origin.test");
	send_all(fd, hello, n);
	assert_true(closed_soon(fd));
	close(fd);
	fd = tunnel("127.0.0.2");
	send_all(fd, hello, n);
	assert_int_equal(read_n(fd, back, n), n);
	close(fd);

	/* The ClientHello in two pieces, the SNI check waits for the rest. */
	n = client_hello("origin.test", hello, sizeof(hello));
	fd = tunnel("origin.test");
	send_all(fd, hello, 10);
	usleep(50000);
	send_all(fd, hello + 10, n - 10);
	assert_int_equal(read_n(fd, back, n), n);
	close(fd);
}

static void
test_connect_refused_502(void **state)
{
	char req[256], resp[2048];

	(void)state;
	snprintf(req, sizeof(req), "CONNECT 127.0.0.2:%d HTTP/1.1\r\n"
	    "Host: 127.0.0.2\r\n\r\n", T.closed_port);
	assert_int_equal(roundtrip(req, resp, sizeof(resp)), 502);
	assert_non_null(strstr(body_of(resp), "cannot connect"));
	/* A name that resolves nowhere (the resolver asks only a closed
	 * loopback port): 502 or 504, never a connection elsewhere. */
	snprintf(req, sizeof(req), "CONNECT nowhere.invalid:%d HTTP/1.1\r\n"
	    "Host: x\r\n\r\n", T.echo.port);
	{
		int st = roundtrip(req, resp, sizeof(resp));

		assert_true(st == 502 || st == 504 || st == 403);
	}
}

static void
test_policy_swap(void **state)
{
	char req[256], resp[2048];
	json_t *pol;

	(void)state;
	snprintf(req, sizeof(req), "GET http://127.0.0.2:%d/ HTTP/1.1\r\n"
	    "Host: 127.0.0.2:%d\r\n\r\n", T.web.port, T.web.port);
	assert_int_equal(roundtrip(req, resp, sizeof(resp)), 200);
	pol = make_policy("locked", 1, 2, 3, 4);
	proxy_set_policy(T.proxy, pol);
	json_decref(pol);
	assert_int_equal(roundtrip(req, resp, sizeof(resp)), 403);
	assert_non_null(strstr(body_of(resp), "policy \"locked\""));
	pol = make_policy("test", T.web.port, T.echo.port, T.closed_port,
	    T.scr.port);
	proxy_set_policy(T.proxy, pol);
	json_decref(pol);
	assert_int_equal(roundtrip(req, resp, sizeof(resp)), 200);
}

static void
test_connection_cap(void **state)
{
	int fds[8];
	char resp[2048];

	(void)state;
	for (int i = 0; i < 8; i++)
		fds[i] = tunnel("127.0.0.2");
	assert_int_equal(proxy_active(T.proxy), 8);
	assert_int_equal(roundtrip("CONNECT 127.0.0.2:1 HTTP/1.1\r\nHost: x\r\n\r\n",
	    resp, sizeof(resp)), 503);
	for (int i = 0; i < 8; i++)
		close(fds[i]);
	for (int i = 0; i < 100 && proxy_active(T.proxy) > 0; i++)
		usleep(10000);
	assert_int_equal(proxy_active(T.proxy), 0);
}

static int
origin_count(struct origin *o, bool conns)
{
	int n;

	pthread_mutex_lock(&o->mu);
	n = conns ? o->conns : o->requests;
	pthread_mutex_unlock(&o->mu);
	return n;
}

/* A scripted GET (or HEAD) on fd through the proxy. */
static void
script_get(int fd, const char *method, const char *path)
{
	char req[512];

	snprintf(req, sizeof(req), "%s http://127.0.0.2:%d%s HTTP/1.1\r\n"
	    "Host: 127.0.0.2:%d\r\n\r\n", method, T.scr.port, path, T.scr.port);
	send_str(fd, req);
}

/* Reads until the bytes end with suffix (or EOF / timeout). */
static size_t
read_until(int fd, char *out, size_t outlen, const char *suffix)
{
	size_t n = 0, sl = strlen(suffix);

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t k;

		out[n] = '\0';
		if (n >= sl && memcmp(out + n - sl, suffix, sl) == 0)
			return n;
		if (poll(&p, 1, 3000) <= 0)
			return n;
		if ((k = read(fd, out + n, outlen - 1 - n)) <= 0)
			return n;
		n += (size_t)k;
	}
}

static void
test_keepalive_decides_each_request(void **state)
{
	char resp[4096], req[1024];
	int fd, conns0 = origin_count(&T.scr, true);
	int reqs0 = origin_count(&T.scr, false);

	(void)state;
	fd = client();
	script_get(fd, "GET", "/keep");
	(void)read_resp(fd, resp, sizeof(resp));
	assert_int_equal(status_of(resp), 200);
	assert_string_equal(body_of(resp), "keep");
	/* Same client connection, a denied host: 403, decided on its own. */
	send_str(fd, "GET http://evil.example/x HTTP/1.1\r\nHost: evil.example\r\n\r\n");
	(void)read_resp(fd, resp, sizeof(resp));
	assert_int_equal(status_of(resp), 403);
	assert_non_null(strstr(body_of(resp), "evil.example"));
	script_get(fd, "GET", "/keep");
	(void)read_resp(fd, resp, sizeof(resp));
	assert_int_equal(status_of(resp), 200);
	/* Pipelined allowed, denied (a port not allowed), allowed: each
	 * answered in order, the denied one never forwarded. */
	snprintf(req, sizeof(req), "GET http://127.0.0.2:%d/keep HTTP/1.1\r\n"
	    "Host: 127.0.0.2:%d\r\n\r\nGET http://127.0.0.2:9/keep HTTP/1.1\r\n"
	    "Host: 127.0.0.2:9\r\n\r\nGET http://127.0.0.2:%d/keep HTTP/1.1\r\n"
	    "Host: 127.0.0.2:%d\r\n\r\n", T.scr.port, T.scr.port, T.scr.port,
	    T.scr.port);
	send_str(fd, req);
	{
		char all[8192], *p = all;
		size_t n = 0;
		int st[3];

		/* Three answers, Content-Length framed, maybe in one read. */
		for (int i = 0; i < 3; i++) {
			char *e, *cl;
			size_t want;

			for (;;) {
				all[n] = '\0';
				if ((e = strstr(p, "\r\n\r\n")) != NULL &&
				    (cl = strcasestr(p, "\r\nContent-Length: ")) != NULL &&
				    cl < e && (size_t)(e + 4 - all) +
				    (want = strtoul(cl + 18, NULL, 10)) <= n)
					break;
				n += read_n(fd, (uint8_t *)all + n, 1);
				assert_true(n < sizeof(all) - 1);
			}
			st[i] = status_of(p);
			p = e + 4 + want;
		}
		assert_int_equal(st[0], 200);
		assert_int_equal(st[1], 403);
		assert_int_equal(st[2], 200);
	}
	close(fd);
	assert_int_equal(origin_count(&T.scr, false) - reqs0, 4);
	/* One upstream connection carried all four (the pool). */
	assert_int_equal(origin_count(&T.scr, true) - conns0, 1);

	/* A POST takes a fresh upstream connection. */
	fd = client();
	snprintf(req, sizeof(req), "POST http://127.0.0.2:%d/keep HTTP/1.1\r\n"
	    "Host: 127.0.0.2:%d\r\nContent-Length: 0\r\n\r\n", T.scr.port,
	    T.scr.port);
	send_str(fd, req);
	(void)read_resp(fd, resp, sizeof(resp));
	assert_int_equal(status_of(resp), 200);
	close(fd);
	assert_int_equal(origin_count(&T.scr, true) - conns0, 2);
}

/* The scripted origin's connection number in an answer (X-Conn), or 0. */
static int
conn_of(const char *resp)
{
	const char *x = strstr(resp, "\r\nX-Conn: ");

	return x != NULL ? (int)strtol(x + 10, NULL, 10) : 0;
}

static void
test_response_framing(void **state)
{
	char resp[4096];
	size_t n;
	int fd, conn0;

	(void)state;
	fd = client();
	/* A second response smuggled after the first one's body: the client
	 * gets the first only, and its next request a true answer on a new
	 * upstream connection. */
	script_get(fd, "GET", "/smuggle");
	(void)read_resp(fd, resp, sizeof(resp));
	assert_int_equal(status_of(resp), 200);
	assert_string_equal(body_of(resp), "hello");
	conn0 = conn_of(resp);
	script_get(fd, "GET", "/keep");
	(void)read_resp(fd, resp, sizeof(resp));
	assert_int_equal(status_of(resp), 200);
	assert_string_equal(body_of(resp), "keep");
	assert_true(conn_of(resp) > 0 && conn_of(resp) != conn0);
	/* ...which is reused in turn. */
	conn0 = conn_of(resp);
	script_get(fd, "GET", "/keep");
	(void)read_resp(fd, resp, sizeof(resp));
	assert_int_equal(conn_of(resp), conn0);
	/* The same after a chunked body: encoded again, the rest dropped. */
	script_get(fd, "GET", "/chunked");
	n = read_until(fd, resp, sizeof(resp), "0\r\n\r\n");
	assert_true(n > 0);
	assert_int_equal(status_of(resp), 200);
	assert_non_null(strstr(resp, "Transfer-Encoding: chunked\r\n"));
	assert_string_equal(body_of(resp), "5\r\nhello\r\n0\r\n\r\n");
	conn0 = conn_of(resp);
	script_get(fd, "GET", "/keep");
	(void)read_resp(fd, resp, sizeof(resp));
	assert_string_equal(body_of(resp), "keep");
	assert_true(conn_of(resp) > 0 && conn_of(resp) != conn0);
	/* HEAD: the head only, whatever its Content-Length says. */
	script_get(fd, "HEAD", "/head");
	n = read_until(fd, resp, sizeof(resp), "\r\n\r\n");
	assert_int_equal(status_of(resp), 200);
	assert_non_null(strstr(resp, "Content-Length: 100\r\n"));
	script_get(fd, "GET", "/keep");
	(void)read_resp(fd, resp, sizeof(resp));
	assert_string_equal(body_of(resp), "keep");
	/* No framing: delimited by the close, and the client connection
	 * closes after it. */
	script_get(fd, "GET", "/eof");
	n = read_resp(fd, resp, sizeof(resp));
	assert_int_equal(status_of(resp), 200);
	assert_non_null(strstr(resp, "Connection: close\r\n"));
	assert_string_equal(body_of(resp), "until close");
	assert_true(closed_soon(fd));
	close(fd);

	/* A truncated body: the client connection closes short of it. */
	fd = client();
	script_get(fd, "GET", "/truncated");
	n = read_until(fd, resp, sizeof(resp), "never");
	assert_int_equal(status_of(resp), 200);
	assert_string_equal(body_of(resp), "short");
	close(fd);
	/* Content-Length and Transfer-Encoding together: 502 before a byte of
	 * it reaches the client. */
	fd = client();
	script_get(fd, "GET", "/bad");
	(void)read_resp(fd, resp, sizeof(resp));
	assert_int_equal(status_of(resp), 502);
	assert_non_null(strstr(body_of(resp), "invalid response"));
	close(fd);
}

/* The web origin closes after each answer although it says keep-alive:
 * a pooled connection found closed is never an error for the client. */
static void
test_stale_pooled_connections(void **state)
{
	char req[512], resp[4096];
	int fd = client();

	(void)state;
	snprintf(req, sizeof(req), "GET http://127.0.0.2:%d/s HTTP/1.1\r\n"
	    "Host: 127.0.0.2:%d\r\n\r\n", T.web.port, T.web.port);
	for (int i = 0; i < 20; i++) {
		send_str(fd, req);
		(void)read_resp(fd, resp, sizeof(resp));
		assert_int_equal(status_of(resp), 200);
		assert_string_equal(body_of(resp), "hello");
		if (i % 2 == 0)
			usleep(2000);
	}
	close(fd);
}

static void
test_audit_events(void **state)
{
	FILE *f;
	char line[8192];
	int allow = 0, deny = 0, close_ev = 0, sni = 0;

	(void)state;
	assert_int_equal(audit_writer_flush(T.audit), 0);
	f = fopen(T.audit_path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		json_t *ev = json_loads(line, 0, NULL);
		const char *type;

		assert_non_null(ev);
		type = json_string_value(json_object_get(ev, "type"));
		if (strcmp(type, "egress.allow") == 0) {
			allow++;
			assert_string_equal(json_string_value(json_object_get(
			    json_object_get(ev, "target"), "address")), "127.0.0.2");
			assert_non_null(json_object_get(json_object_get(ev,
			    "details"), "rule"));
		} else if (strcmp(type, "egress.deny") == 0) {
			const char *r = json_string_value(json_object_get(
			    json_object_get(ev, "details"), "reason"));

			deny++;
			if (r != NULL && strstr(r, "does not match the CONNECT host") != NULL)
				sni++;
			/* "failure" when the name did not resolve */
			assert_true(strcmp(json_string_value(json_object_get(ev,
			    "outcome")), "denied") == 0 || (r != NULL &&
			    strstr(r, "DNS") != NULL) || (r != NULL &&
			    strstr(r, "no such name") != NULL));
		} else if (strcmp(type, "egress.close") == 0) {
			json_t *d = json_object_get(ev, "details");

			close_ev++;
			assert_true(json_is_integer(json_object_get(d, "bytes_up")));
			assert_true(json_is_integer(json_object_get(d, "bytes_down")));
			assert_true(json_is_real(json_object_get(d, "duration_s")));
		}
		assert_string_equal(json_string_value(json_object_get(
		    json_object_get(ev, "actor"), "addr")), "127.0.0.1");
		json_decref(ev);
	}
	fclose(f);
	assert_true(allow >= 5);
	assert_true(deny >= 5);
	assert_int_equal(sni, 1);
	assert_true(close_ev >= allow);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_allowed_get_strips_hop_by_hop),
		cmocka_unit_test(test_name_from_hosts_file_and_body),
		cmocka_unit_test(test_denials_keep_connection_and_decide_each),
		cmocka_unit_test(test_bad_requests),
		cmocka_unit_test(test_smuggling_shapes),
		cmocka_unit_test(test_connect_tunnels_and_sni),
		cmocka_unit_test(test_connect_refused_502),
		cmocka_unit_test(test_policy_swap),
		cmocka_unit_test(test_connection_cap),
		cmocka_unit_test(test_keepalive_decides_each_request),
		cmocka_unit_test(test_response_framing),
		cmocka_unit_test(test_stale_pooled_connections),
		cmocka_unit_test(test_audit_events),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
