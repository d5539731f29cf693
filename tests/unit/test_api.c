/*
 * test_api.c - unit tests for the Core API framework (api.c) with a table
 * of fake routes, over a real HTTP server on 127.0.0.1 port 0 with real
 * worker pools and a real audit chain in a temporary directory; the
 * caller is authenticated by a fake authenticator ("Bearer admin",
 * "Bearer member", cookie moat_session=admin).
 *
 * Covers: registration refusals (no permission, a public route not on the
 * public list, a write without audit type, a read with a body) and that a
 * refused table registers nothing; 401 and 403 with the error shape and an
 * "access.denied" audit event; body verdicts given only after
 * authentication and authorization; 400 naming the field (malformed JSON,
 * unknown field, wrong type, missing field, the route's own validator),
 * 413, 415, a body on a route without fields; audit of writes (success and
 * failure) with the actor; 500 "internal" without detail; path parameters
 * (percent-decoded) and query helpers; 429 with Retry-After when the
 * hasher queue is full; and that the real route table registers and
 * agrees with docs/api/openapi.yaml (every route documented with its
 * permission, and nothing documented that is not routed).
 */
#include <arpa/inet.h>
#include <dirent.h>
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
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "app.h"
#include "audit.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "policy.h"

#include "api/api.h"
#include "api/api_int.h"

static struct {
	char dir[64];
	char audit_path[128];
	struct app app;
	struct event_base *base;
	pthread_t thread;
	struct http_server *srv;
	int port;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool release;		/* lets h_block finish */
	int blocked;		/* h_block calls waiting */
	int logfd;
} T;

/* --- fake authentication --- */

static int
fake_auth(struct app *app, const char *bearer, const char *cookie,
    struct principal *out)
{
	const char *who = bearer != NULL ? bearer : cookie;

	(void)app;
	memset(out, 0, sizeof(*out));
	if (who == NULL)
		return MOAT_ERR_PERM;
	if (strcmp(who, "admin") == 0)
		out->roles = 1u << ROLE_ADMIN;
	else if (strcmp(who, "member") == 0)
		out->roles = 1u << ROLE_MEMBER;
	else
		return MOAT_ERR_PERM;
	snprintf(out->username, sizeof(out->username), "%s", who);
	snprintf(out->user_id, sizeof(out->user_id), "id-%s", who);
	snprintf(out->org, sizeof(out->org), "default");
	snprintf(out->session_id, sizeof(out->session_id), "s-%s", who);
	return 0;
}

/* --- fake handlers (worker threads) --- */

static void
h_public(struct api_call *c)
{
	api_reply(c, 200, json_pack("{s:b}", "anonymous", c->who == NULL));
}

static void
h_self(struct api_call *c)
{
	api_reply(c, 200, json_pack("{s:s,s:s,s:s}", "user", c->who->username,
	    "addr", c->client_addr, "query", c->query));
}

static void
h_write(struct api_call *c)
{
	const char *name = json_get_str(c->body, "name");

	c->audit_target = json_pack("{s:s,s:s}", "type", "thing", "name", name);
	c->audit_details = json_pack("{s:s}", "note", "no secrets here");
	if (api_add_header(c, "X-Test", "yes") != 0)
		fail();
	api_reply(c, 201, json_pack("{s:s,s:I}", "name", name, "n",
	    (json_int_t)json_get_int(c->body, "n", -1)));
}

static void
h_item(struct api_call *c)
{
	api_reply(c, 200, json_pack("{s:s}", "id", api_param(c, "id")));
}

static void
h_fail(struct api_call *c)
{
	api__fail(c, MOAT_ERR_IO, "disk");
}

static void
h_refuse(struct api_call *c)
{
	api_error(c, 409, "conflict", "no, %d times", 3);
}

static void
h_empty(struct api_call *c)
{
	(void)c;	/* status 200 and no body: 204 */
}

static void
h_block(struct api_call *c)
{
	pthread_mutex_lock(&T.mu);
	T.blocked++;
	pthread_cond_broadcast(&T.cond);
	while (!T.release)
		pthread_cond_wait(&T.cond, &T.mu);
	pthread_mutex_unlock(&T.mu);
	api_reply(c, 200, json_pack("{s:b}", "done", 1));
}

static int
v_not_bad(const json_t *body, char *err, size_t errlen)
{
	const char *n = json_get_str(body, "name");

	if (n != NULL && strcmp(n, "bad") == 0) {
		snprintf(err, errlen, "name must not be bad");
		return MOAT_ERR_INVAL;
	}
	return 0;
}

static const struct json_field f_write[] = {
	{ "name", JF_STRING, true, 8, 0, 0 },
	{ "n", JF_INT, false, 0, 1, 10 },
};
static const struct json_field f_opt[] = {
	{ "x", JF_STRING, false, 8, 0, 0 },
};

static const struct api_route fake_routes[] = {
	{ "GET", "/healthz", PERM_PUBLIC, h_public, NULL, 0, NULL, false,
	  "public", NULL, false },
	{ "GET", "/t/self", PERM_SELF, h_self, NULL, 0, NULL, false, "self",
	  NULL, false },
	{ "POST", "/t/write", PERM_USERS_WRITE, h_write, f_write, 2,
	  "test.write", false, "write", v_not_bad, false },
	{ "POST", "/t/opt", PERM_SELF, h_empty, f_opt, 1, "test.opt", false,
	  "optional body", NULL, false },
	{ "GET", "/t/item/{id}", PERM_SELF, h_item, NULL, 0, NULL, false,
	  "item", NULL, false },
	{ "DELETE", "/t/item/{id}", PERM_USERS_WRITE, h_fail, NULL, 0,
	  "test.fail", false, "fails", NULL, false },
	{ "POST", "/t/refuse", PERM_SELF, h_refuse, NULL, 0, "test.refuse",
	  false, "refuses", NULL, false },
	{ "POST", "/t/heavy", PERM_SELF, h_block, NULL, 0, "test.heavy", true,
	  "blocks on the hasher pool", NULL, false },
};

/* --- client --- */

struct resp {
	int status;
	char head[4096];
	char body[16384];
	json_t *json;
};

static int
connect_port(int port)
{
	struct sockaddr_in sin;
	struct timeval tv = { 5, 0 };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

static void
send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);

		assert_true(k > 0);
		p += k;
		n -= (size_t)k;
	}
}

/* Sends method path with headers (CRLF-terminated lines, may be "") and
 * body; returns the fd for read_resp. */
static int
start_req(const char *method, const char *path, const char *headers,
    const char *body, size_t blen)
{
	char head[2048];
	int fd = connect_port(T.port);
	int n;

	if (body == NULL)
		blen = 0;
	n = snprintf(head, sizeof(head), "%s %s HTTP/1.1\r\nHost: t\r\n"
	    "Connection: close\r\n%sContent-Length: %zu\r\n\r\n", method, path,
	    headers, blen);
	assert_true(n > 0 && (size_t)n < sizeof(head));
	send_all(fd, head, (size_t)n);
	if (blen > 0)
		send_all(fd, body, blen);
	return fd;
}

static void
read_resp(int fd, struct resp *r)
{
	static char buf[256 * 1024];
	size_t len = 0;
	ssize_t k;
	char *end;

	memset(r, 0, sizeof(*r));
	while ((k = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) > 0)
		len += (size_t)k;
	close(fd);
	buf[len] = '\0';
	assert_int_equal(sscanf(buf, "HTTP/1.1 %d", &r->status), 1);
	assert_non_null(end = strstr(buf, "\r\n\r\n"));
	assert_true((size_t)(end - buf) < sizeof(r->head));
	memcpy(r->head, buf, (size_t)(end - buf));
	snprintf(r->body, sizeof(r->body), "%s", end + 4);
	if (r->body[0] != '\0')
		r->json = json_loads(r->body, 0, NULL);
}

static void
req(const char *method, const char *path, const char *headers,
    const char *body, struct resp *r)
{
	read_resp(start_req(method, path, headers, body,
	    body != NULL ? strlen(body) : 0), r);
}

static void
resp_free(struct resp *r)
{
	json_decref(r->json);
	r->json = NULL;
}

static bool
has_header(const struct resp *r, const char *line)
{
	const char *p = r->head;
	size_t n = strlen(line);

	while ((p = strstr(p, "\r\n")) != NULL) {
		p += 2;
		if (strncasecmp(p, line, n) == 0)
			return true;
	}
	return false;
}

/* Asserts the error shape and code. */
static void
expect_error(struct resp *r, int status, const char *code)
{
	json_t *e;

	if (r->status != status)
		fail_msg("status %d, wanted %d: %s", r->status, status, r->body);
	assert_non_null(r->json);
	assert_non_null(e = json_object_get(r->json, "error"));
	assert_string_equal(json_string_value(json_object_get(e, "code")), code);
	assert_non_null(json_string_value(json_object_get(e, "message")));
}

#define AUTH_ADMIN "Authorization: Bearer admin\r\n"
#define AUTH_MEMBER "Authorization: Bearer member\r\n"
#define CT_JSON "Content-Type: application/json\r\n"

/* --- audit --- */

/* The audit events written so far whose type is type (new array). */
static json_t *
audit_events(const char *type)
{
	FILE *f;
	char line[65536];
	json_t *out = json_array();

	assert_int_equal(audit_writer_flush(T.app.audit), 0);
	assert_non_null(f = fopen(T.audit_path, "r"));
	while (fgets(line, sizeof(line), f) != NULL) {
		json_t *ev = json_loads(line, 0, NULL);

		if (ev != NULL && strcmp(json_string_value(json_object_get(ev,
		    "type")), type) == 0)
			json_array_append(out, ev);
		json_decref(ev);
	}
	fclose(f);
	return out;
}

static json_t *
last_event(const char *type)
{
	json_t *all = audit_events(type);
	json_t *ev;

	assert_true(json_array_size(all) > 0);
	ev = json_incref(json_array_get(all, json_array_size(all) - 1));
	json_decref(all);
	return ev;
}

/* --- fixtures --- */

static void *
loop_thread(void *arg)
{
	(void)arg;
	event_base_loop(T.base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static int
setup(void **state)
{
	struct audit_writer_opts ao = { 0 };
	struct http_listener_opts lo = { 0 };
	char logpath[128];

	(void)state;
	pthread_mutex_init(&T.mu, NULL);
	pthread_cond_init(&T.cond, NULL);
	assert_int_equal(evthread_use_pthreads(), 0);
	snprintf(T.dir, sizeof(T.dir), "/tmp/moat-api-XXXXXX");
	assert_non_null(mkdtemp(T.dir));
	snprintf(logpath, sizeof(logpath), "%s/log", T.dir);
	T.logfd = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	assert_true(T.logfd >= 0);
	log_set_fd(T.logfd);
	snprintf(T.audit_path, sizeof(T.audit_path), "%s/audit.log", T.dir);
	ao.path = T.audit_path;
	ao.checkpoint_interval_ms = 3600 * 1000;
	ao.fsync_policy = AUDIT_FSYNC_NONE;
	ao.disk_reserve_bytes = 1;
	ao.process_name = "moatd-test";
	assert_int_equal(audit_writer_open(&T.app.audit, &ao), 0);
	T.app.data_dir = T.dir;
	T.app.default_org = "default";
	assert_int_equal(workpool_new(&T.app.workers, 2, 64), 0);
	assert_int_equal(workpool_new(&T.app.hashers, 1, 1), 0);
	assert_non_null(T.base = event_base_new());
	assert_int_equal(http_server_new(&T.srv, NULL), 0);
	assert_int_equal(api_set_authenticator(&T.app, fake_auth), 0);
	assert_int_equal(api_register(&T.app, T.srv, fake_routes,
	    sizeof(fake_routes) / sizeof(fake_routes[0])), 0);
	lo.addr = "127.0.0.1:0";
	assert_int_equal(http_server_listen(T.srv, T.base, &lo), 0);
	T.port = http_server_bound_port(T.srv, 0);
	assert_true(T.port > 0);
	assert_int_equal(pthread_create(&T.thread, NULL, loop_thread, NULL), 0);
	return 0;
}

static int
teardown(void **state)
{
	char p[512];
	DIR *d;
	struct dirent *de;

	(void)state;
	pthread_mutex_lock(&T.mu);
	T.release = true;
	pthread_cond_broadcast(&T.cond);
	pthread_mutex_unlock(&T.mu);
	event_base_loopbreak(T.base);
	pthread_join(T.thread, NULL);
	workpool_free(T.app.workers);
	workpool_free(T.app.hashers);
	http_server_free(T.srv);
	event_base_free(T.base);
	audit_writer_close(T.app.audit);
	api_free(&T.app);
	log_set_fd(2);
	close(T.logfd);
	if ((d = opendir(T.dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", T.dir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(T.dir);
	return 0;
}

/* --- registration --- */

static void
noop(struct api_call *c)
{
	(void)c;
}

static void
http_noop(struct http_request *req, void *arg)
{
	(void)arg;
	http_respond(req, 204, NULL, NULL, 0);
}

static void
test_register_refusals(void **state)
{
	struct app app = { 0 };
	struct http_server *srv;
	const struct api_route no_perm[] = {
		{ "GET", "/ok", PERM_SELF, noop, NULL, 0, NULL, false, "", NULL,
		  false },
		{ "GET", "/undeclared", PERM_NONE, noop, NULL, 0, NULL, false,
		  "", NULL, false },
	};
	const struct api_route not_public[] = {
		{ "GET", "/api/v1/users", PERM_PUBLIC, noop, NULL, 0, NULL,
		  false, "", NULL, false },
	};
	const struct api_route public_wrong_method[] = {
		{ "GET", "/api/v1/auth/login", PERM_PUBLIC, noop, NULL, 0, NULL,
		  false, "", NULL, false },
	};
	const struct api_route write_unaudited[] = {
		{ "POST", "/w", PERM_SELF, noop, NULL, 0, NULL, false, "", NULL,
		  false },
	};
	const struct api_route read_with_body[] = {
		{ "GET", "/r", PERM_SELF, noop, f_opt, 1, NULL, false, "", NULL,
		  false },
	};
	const struct api_route bad_perm[] = {
		{ "GET", "/p", PERM__COUNT, noop, NULL, 0, NULL, false, "", NULL,
		  false },
	};
	const struct api_route no_handler[] = {
		{ "GET", "/h", PERM_SELF, NULL, NULL, 0, NULL, false, "", NULL,
		  false },
	};
	const struct api_route too_many_params[] = {
		{ "GET", "/{a}/{b}/{c}/{d}/{e}", PERM_SELF, noop, NULL, 0, NULL,
		  false, "", NULL, false },
	};

	(void)state;
	assert_int_equal(http_server_new(&srv, NULL), 0);
	assert_int_equal(api_register(&app, srv, no_perm, 2), MOAT_ERR_INVAL);
	/* Nothing of the refused table was registered: /ok is still free. */
	assert_int_equal(http_server_route(srv, "GET", "/ok", http_noop, NULL), 0);
	assert_int_equal(api_register(&app, srv, not_public, 1), MOAT_ERR_INVAL);
	assert_int_equal(api_register(&app, srv, public_wrong_method, 1),
	    MOAT_ERR_INVAL);
	assert_int_equal(api_register(&app, srv, write_unaudited, 1),
	    MOAT_ERR_INVAL);
	assert_int_equal(api_register(&app, srv, read_with_body, 1),
	    MOAT_ERR_INVAL);
	assert_int_equal(api_register(&app, srv, bad_perm, 1), MOAT_ERR_INVAL);
	assert_int_equal(api_register(&app, srv, no_handler, 1), MOAT_ERR_INVAL);
	assert_int_equal(api_register(&app, srv, too_many_params, 1),
	    MOAT_ERR_INVAL);
	/* The public list's own routes register. */
	assert_int_equal(api_register(&app, srv, public_wrong_method, 0), 0);
	http_server_free(srv);
	api_free(&app);
}

/* The real table: registers, every route documented with its permission,
 * and every documented operation routed. */
static void
test_real_table_and_openapi(void **state)
{
	struct app app = { 0 };
	struct http_server *srv;
	json_t *doc = NULL, *paths, *ops, *op;
	char err[256];
	const char *path, *method;
	size_t documented = 0;

	(void)state;
	assert_int_equal(http_server_new(&srv, NULL), 0);
	assert_int_equal(api_register(&app, srv, api_routes, api_nroutes), 0);
	http_server_free(srv);
	api_free(&app);

	if (policy_yaml_to_json(api_openapi_yaml, api_openapi_yaml_len, &doc,
	    err, sizeof(err)) != 0)
		fail_msg("openapi.yaml: %s", err);
	assert_string_equal(json_string_value(json_object_get(doc, "openapi")),
	    "3.0.3");
	assert_non_null(paths = json_object_get(doc, "paths"));
	for (size_t i = 0; i < api_nroutes; i++) {
		const struct api_route *rt = &api_routes[i];
		char m[16];
		size_t k;

		for (k = 0; rt->method[k] != '\0' && k + 1 < sizeof(m); k++)
			m[k] = (char)(rt->method[k] - 'A' + 'a');
		m[k] = '\0';
		op = json_object_get(json_object_get(paths, rt->pattern), m);
		if (op == NULL)
			fail_msg("%s %s is not in docs/api/openapi.yaml",
			    rt->method, rt->pattern);
		if (strcmp(json_string_value(json_object_get(op,
		    "x-moat-permission")), rbac_perm_name(rt->perm)) != 0)
			fail_msg("%s %s: x-moat-permission is not %s", rt->method,
			    rt->pattern, rbac_perm_name(rt->perm));
		assert_true(rt->perm != PERM_NONE);
		if (strcmp(rt->method, "GET") != 0)
			assert_non_null(rt->audit_type);
		assert_non_null(rt->summary);
	}
	json_object_foreach(paths, path, ops) {
		json_object_foreach(ops, method, op) {
			bool found = false;

			if (strcmp(method, "parameters") == 0)
				continue;
			documented++;
			for (size_t i = 0; i < api_nroutes && !found; i++)
				found = strcmp(api_routes[i].pattern, path) == 0 &&
				    strcasecmp(api_routes[i].method, method) == 0;
			if (!found)
				fail_msg("documented %s %s is not routed", method,
				    path);
		}
	}
	assert_int_equal(documented, api_nroutes);
	json_decref(doc);
}

/* --- requests --- */

static void
test_public_and_self(void **state)
{
	struct resp r;
	json_t *ev;

	(void)state;
	req("GET", "/healthz", "", NULL, &r);
	assert_int_equal(r.status, 200);
	assert_true(json_is_true(json_object_get(r.json, "anonymous")));
	assert_true(has_header(&r, "Cache-Control: no-store"));
	resp_free(&r);

	req("GET", "/t/self?x=1", AUTH_MEMBER, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "user")),
	    "member");
	assert_string_equal(json_string_value(json_object_get(r.json, "addr")),
	    "127.0.0.1");
	assert_string_equal(json_string_value(json_object_get(r.json, "query")),
	    "x=1");
	resp_free(&r);

	/* The session cookie, among others. */
	req("GET", "/t/self", "Cookie: a=b; moat_session=admin; c=d\r\n", NULL,
	    &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "user")),
	    "admin");
	resp_free(&r);

	/* No credentials, a wrong one, another scheme: 401 + audit. */
	req("GET", "/t/self", "", NULL, &r);
	expect_error(&r, 401, "unauthenticated");
	assert_true(has_header(&r, "WWW-Authenticate: Bearer"));
	resp_free(&r);
	req("GET", "/t/self", "Authorization: Bearer nobody\r\n", NULL, &r);
	expect_error(&r, 401, "unauthenticated");
	resp_free(&r);
	req("GET", "/t/self", "Authorization: Basic YWRtaW46eA==\r\n", NULL, &r);
	expect_error(&r, 401, "unauthenticated");
	resp_free(&r);
	req("GET", "/t/self", "Cookie: moat_sessionx=admin\r\n", NULL, &r);
	expect_error(&r, 401, "unauthenticated");
	resp_free(&r);
	ev = last_event("access.denied");
	assert_string_equal(json_string_value(json_object_get(ev, "outcome")),
	    "denied");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    ev, "details"), "reason")), "unauthenticated");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    ev, "actor"), "addr")), "127.0.0.1");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    ev, "target"), "path")), "/t/self");
	json_decref(ev);
}

static void
test_forbidden(void **state)
{
	struct resp r;
	json_t *before = audit_events("test.write"), *after, *ev;

	(void)state;
	req("POST", "/t/write", AUTH_MEMBER CT_JSON, "{\"name\":\"x\"}", &r);
	expect_error(&r, 403, "forbidden");
	assert_non_null(strstr(r.body, "users:write"));
	resp_free(&r);
	ev = last_event("access.denied");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    ev, "details"), "permission")), "users:write");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    ev, "details"), "reason")), "forbidden");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    ev, "actor"), "user")), "member");
	json_decref(ev);

	/* A bad body is not judged for a caller who may not use the route. */
	req("POST", "/t/write", AUTH_MEMBER CT_JSON, "{nope", &r);
	expect_error(&r, 403, "forbidden");
	resp_free(&r);
	req("POST", "/t/write", CT_JSON, "{nope", &r);
	expect_error(&r, 401, "unauthenticated");
	resp_free(&r);
	req("POST", "/t/write", "Content-Type: text/plain\r\n", "x", &r);
	expect_error(&r, 401, "unauthenticated");
	resp_free(&r);

	/* Denials are not writes: no test.write event. */
	after = audit_events("test.write");
	assert_int_equal(json_array_size(after), json_array_size(before));
	json_decref(before);
	json_decref(after);
}

static void
test_bodies(void **state)
{
	static char big[API_MAX_BODY + 64];
	struct resp r;
	json_t *before = audit_events("test.write"), *after;

	(void)state;
	req("POST", "/t/write", AUTH_ADMIN CT_JSON, "{\"name\":", &r);
	expect_error(&r, 400, "invalid_request");
	resp_free(&r);
	req("POST", "/t/write", AUTH_ADMIN CT_JSON,
	    "{\"name\":\"x\",\"extra\":1}", &r);
	expect_error(&r, 400, "invalid_request");
	assert_non_null(strstr(r.body, "extra"));
	resp_free(&r);
	req("POST", "/t/write", AUTH_ADMIN CT_JSON, "{\"name\":5}", &r);
	expect_error(&r, 400, "invalid_request");
	assert_non_null(strstr(r.body, "name"));
	resp_free(&r);
	req("POST", "/t/write", AUTH_ADMIN CT_JSON, "{\"n\":5}", &r);
	expect_error(&r, 400, "invalid_request");
	assert_non_null(strstr(r.body, "name"));
	resp_free(&r);
	req("POST", "/t/write", AUTH_ADMIN CT_JSON, "{\"name\":\"x\",\"n\":50}",
	    &r);
	expect_error(&r, 400, "invalid_request");
	resp_free(&r);
	req("POST", "/t/write", AUTH_ADMIN CT_JSON,
	    "{\"name\":\"x\",\"name\":\"y\"}", &r);
	expect_error(&r, 400, "invalid_request");
	resp_free(&r);
	req("POST", "/t/write", AUTH_ADMIN CT_JSON, "[1,2]", &r);
	expect_error(&r, 400, "invalid_request");
	resp_free(&r);
	req("POST", "/t/write", AUTH_ADMIN CT_JSON, "{\"name\":\"123456789\"}",
	    &r);
	expect_error(&r, 400, "invalid_request");
	resp_free(&r);
	/* The route's own validator. */
	req("POST", "/t/write", AUTH_ADMIN CT_JSON, "{\"name\":\"bad\"}", &r);
	expect_error(&r, 400, "invalid_request");
	assert_non_null(strstr(r.body, "must not be bad"));
	resp_free(&r);
	/* No body where one is required. */
	req("POST", "/t/write", AUTH_ADMIN, NULL, &r);
	expect_error(&r, 400, "invalid_request");
	resp_free(&r);
	/* Media types. */
	req("POST", "/t/write", AUTH_ADMIN, "{\"name\":\"x\"}", &r);
	expect_error(&r, 415, "unsupported_media_type");
	resp_free(&r);
	req("POST", "/t/write", AUTH_ADMIN "Content-Type: application/yaml\r\n",
	    "name: x\n", &r);
	expect_error(&r, 415, "unsupported_media_type");
	resp_free(&r);
	/* Too large for the API (the HTTP layer allows more). */
	memset(big, ' ', sizeof(big));
	big[0] = '{';
	big[sizeof(big) - 2] = '}';
	big[sizeof(big) - 1] = '\0';
	req("POST", "/t/write", AUTH_ADMIN CT_JSON, big, &r);
	expect_error(&r, 413, "too_large");
	resp_free(&r);
	/* A body on a route that takes none. */
	req("POST", "/t/refuse", AUTH_ADMIN CT_JSON, "{}", &r);
	expect_error(&r, 400, "invalid_request");
	resp_free(&r);
	req("GET", "/t/self", AUTH_ADMIN CT_JSON, "{}", &r);
	expect_error(&r, 400, "invalid_request");
	resp_free(&r);

	/* Nothing reached the handler. */
	after = audit_events("test.write");
	assert_int_equal(json_array_size(after), json_array_size(before));
	json_decref(before);
	json_decref(after);

	/* Optional fields only: no body is an empty object; 204. */
	req("POST", "/t/opt", AUTH_MEMBER, NULL, &r);
	assert_int_equal(r.status, 204);
	assert_string_equal(r.body, "");
	resp_free(&r);
	req("POST", "/t/opt", AUTH_MEMBER "Content-Type: Application/JSON; "
	    "charset=utf-8\r\n", "{\"x\":\"y\"}", &r);
	assert_int_equal(r.status, 204);
	resp_free(&r);
}

static void
test_write_audited(void **state)
{
	struct resp r;
	json_t *ev, *roles;

	(void)state;
	req("POST", "/t/write", AUTH_ADMIN CT_JSON, "{\"name\":\"thing1\",\"n\":3}",
	    &r);
	assert_int_equal(r.status, 201);
	assert_string_equal(json_string_value(json_object_get(r.json, "name")),
	    "thing1");
	assert_int_equal(json_integer_value(json_object_get(r.json, "n")), 3);
	assert_true(has_header(&r, "X-Test: yes"));
	resp_free(&r);
	ev = last_event("test.write");
	assert_string_equal(json_string_value(json_object_get(ev, "outcome")),
	    "success");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    ev, "actor"), "user")), "admin");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    ev, "actor"), "addr")), "127.0.0.1");
	roles = json_object_get(json_object_get(ev, "actor"), "roles");
	assert_string_equal(json_string_value(json_array_get(roles, 0)), "admin");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    ev, "target"), "name")), "thing1");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(
	    ev, "details"), "status")), 201);
	json_decref(ev);

	/* A handler's refusal is audited as a failure with its code. */
	req("POST", "/t/refuse", AUTH_MEMBER, NULL, &r);
	expect_error(&r, 409, "conflict");
	assert_non_null(strstr(r.body, "no, 3 times"));
	resp_free(&r);
	ev = last_event("test.refuse");
	assert_string_equal(json_string_value(json_object_get(ev, "outcome")),
	    "failure");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    ev, "details"), "error")), "conflict");
	json_decref(ev);
}

static void
test_internal_and_params(void **state)
{
	struct resp r;
	json_t *ev;

	(void)state;
	req("DELETE", "/t/item/x", AUTH_ADMIN, NULL, &r);
	expect_error(&r, 500, "internal");
	assert_string_equal(json_string_value(json_object_get(json_object_get(
	    r.json, "error"), "message")), "internal error");
	resp_free(&r);
	ev = last_event("test.fail");
	assert_string_equal(json_string_value(json_object_get(ev, "outcome")),
	    "failure");
	json_decref(ev);

	req("GET", "/t/item/a%20b%2Bc", AUTH_MEMBER, NULL, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(json_string_value(json_object_get(r.json, "id")),
	    "a b+c");
	resp_free(&r);
}

static void
test_query_and_helpers(void **state)
{
	char v[16], t[32];

	(void)state;
	assert_int_equal(api__query("a=1&type=auth.login&b=", "type", v,
	    sizeof(v)), 1);
	assert_string_equal(v, "auth.login");
	assert_int_equal(api__query("a=1&b=", "b", v, sizeof(v)), 1);
	assert_string_equal(v, "");
	assert_int_equal(api__query("a=1&b", "b", v, sizeof(v)), 1);
	assert_int_equal(api__query("ab=1", "a", v, sizeof(v)), 0);
	assert_int_equal(api__query("", "a", v, sizeof(v)), 0);
	assert_int_equal(api__query("a=x%41+y", "a", v, sizeof(v)), 1);
	assert_string_equal(v, "xA y");
	assert_int_equal(api__query("a=%4", "a", v, sizeof(v)), MOAT_ERR_INVAL);
	assert_int_equal(api__query("a=%zz", "a", v, sizeof(v)), MOAT_ERR_INVAL);
	assert_int_equal(api__query("a=%00", "a", v, sizeof(v)), MOAT_ERR_INVAL);
	assert_int_equal(api__query("a=0123456789abcdefg", "a", v, sizeof(v)),
	    MOAT_ERR_INVAL);
	api__rfc3339(0, t);
	assert_string_equal(t, "1970-01-01T00:00:00Z");
	api__rfc3339(1796313745, t);
	assert_string_equal(t, "2026-12-03T16:02:25Z");
}

/* Blocks the single hasher thread and fills its one-slot queue: the next
 * heavy request is refused at once with 429 and Retry-After. */
static void
test_hasher_queue_full(void **state)
{
	struct resp r;
	int fd1, fd2;

	(void)state;
	pthread_mutex_lock(&T.mu);
	T.release = false;
	T.blocked = 0;
	pthread_mutex_unlock(&T.mu);
	fd1 = start_req("POST", "/t/heavy", AUTH_MEMBER, NULL, 0);
	pthread_mutex_lock(&T.mu);
	while (T.blocked < 1)
		pthread_cond_wait(&T.cond, &T.mu);
	pthread_mutex_unlock(&T.mu);
	fd2 = start_req("POST", "/t/heavy", AUTH_MEMBER, NULL, 0);
	/* fd2 sits in the queue; give the loop time to queue it. */
	for (int i = 0; i < 200 && workpool_queued(T.app.hashers) < 1; i++)
		usleep(5000);
	assert_int_equal(workpool_queued(T.app.hashers), 1);
	req("POST", "/t/heavy", AUTH_MEMBER, NULL, &r);
	expect_error(&r, 429, "busy");
	assert_true(has_header(&r, "Retry-After: 1"));
	resp_free(&r);
	pthread_mutex_lock(&T.mu);
	T.release = true;
	pthread_cond_broadcast(&T.cond);
	pthread_mutex_unlock(&T.mu);
	read_resp(fd1, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
	read_resp(fd2, &r);
	assert_int_equal(r.status, 200);
	resp_free(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_register_refusals),
		cmocka_unit_test(test_real_table_and_openapi),
		cmocka_unit_test(test_public_and_self),
		cmocka_unit_test(test_forbidden),
		cmocka_unit_test(test_bodies),
		cmocka_unit_test(test_write_audited),
		cmocka_unit_test(test_internal_and_params),
		cmocka_unit_test(test_query_and_helpers),
		cmocka_unit_test(test_hasher_queue_full),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
