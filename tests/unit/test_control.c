/*
 * test_control.c - unit tests for control.c (moat-proxy's control mode):
 * the state document's validation, the per-workspace unix sockets (made,
 * kept, replaced, removed; owner and mode), the peer-uid check, the
 * connection cap, the effective policy (organization's and template's,
 * both must allow), a policy swap taking effect on the next request, an
 * undefined policy denying everything, and the audit events carrying the
 * workspace.
 *
 * The proxy runs in-process on one event base (a thread) with the real
 * HTTP core, whose connections are adopted from the workspace sockets.
 * Clients are forked children that take a workspace's uid (setresuid) and
 * speak raw HTTP; the only origin is a small HTTP server on 127.0.0.2 and
 * the resolver asks no one but 127.0.0.1:1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "audit.h"
#include "control.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "proxy.h"

#define UID1 4000u
#define UID2 5000u

/* --- the origin: answers every connection "200 hello" --- */

static struct {
	int lfd, port;
	pthread_t th;
} O;

static void *
origin_main(void *arg)
{
	static const char resp[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	    "Connection: close\r\n\r\nhello";

	(void)arg;
	for (;;) {
		char buf[4096];
		int fd = accept(O.lfd, NULL, NULL);
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (fd < 0)
			return NULL;
		if (poll(&p, 1, 2000) > 0 && read(fd, buf, sizeof(buf)) > 0)
			(void)!write(fd, resp, sizeof(resp) - 1);
		close(fd);
	}
}

/* --- the proxy in control mode --- */

static struct {
	char dir[64], d1[96], d2[96], d3[96];
	struct event_base *base;
	struct http_server *srv;
	struct proxy *proxy;
	struct control *ctl;
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	json_t *events;			/* audit events (under mu) */
	/* control_apply on the loop: */
	const json_t *doc;
	json_t *answer;
	int result;
	bool done;
	char err[512];
} T;

static int
collect(void *arg, json_t *ev)
{
	(void)arg;
	pthread_mutex_lock(&T.mu);
	json_array_append_new(T.events, ev);
	pthread_mutex_unlock(&T.mu);
	return 0;
}

static void *
loop_main(void *arg)
{
	(void)arg;
	(void)event_base_loop(T.base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void
apply_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	T.result = control_apply(T.ctl, T.doc, &T.answer, T.err,
	    sizeof(T.err));
	pthread_mutex_lock(&T.mu);
	T.done = true;
	pthread_cond_broadcast(&T.cond);
	pthread_mutex_unlock(&T.mu);
}

/* Applies doc on the loop thread (control_apply's thread); *answer is
 * the PUT answer (new reference) or NULL. */
static int
apply(json_t *doc, json_t **answer)
{
	struct timeval zero = { 0, 0 };

	T.doc = doc;
	T.answer = NULL;
	T.done = false;
	assert_int_equal(event_base_once(T.base, -1, EV_TIMEOUT, apply_cb,
	    NULL, &zero), 0);
	pthread_mutex_lock(&T.mu);
	while (!T.done)
		pthread_cond_wait(&T.cond, &T.mu);
	pthread_mutex_unlock(&T.mu);
	json_decref(doc);
	if (answer != NULL)
		*answer = T.answer;
	else
		json_decref(T.answer);
	return T.result;
}

static json_t *
policy(const char *name, int port)
{
	if (port == 0)
		return json_pack("{s:s,s:[]}", "name", name, "allow");
	return json_pack("{s:s,s:[{s:s,s:[i]}]}", "name", name, "allow",
	    "cidr", "127.0.0.2/32", "ports", port);
}

static json_t *
ws(const char *id, const char *owner, const char *pol, const char *tpol,
    const char *dir, unsigned uid)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s,s:i,s:i}", "id", id,
	    "owner", owner, "org", "acme", "policy", pol, "template_policy",
	    tpol, "socket_dir", dir, "uid_base", (int)uid, "uid_count", 10);
}

/* Both workspaces: ws1 (org policy "org" only), ws2 (template "tight"
 * that allows nothing). org_port: what "org" allows (0: nothing). */
static json_t *
state_two(int org_port)
{
	return json_pack("{s:{s:o,s:o},s:[o,o]}", "policies", "org",
	    policy("org", org_port), "tight", policy("tight", 0), "workspaces",
	    ws("ws1", "alice", "org", NULL, T.d1, UID1),
	    ws("ws2", "bob", "org", "tight", T.d2, UID2));
}

static int
setup(void **state)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	struct proxy_opts po = { 0 };
	struct control_opts co = { 0 };
	struct event_base *bases[1];

	(void)state;
	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_ERROR);
	assert_int_equal(loop_global_init(), 0);
	pthread_mutex_init(&T.mu, NULL);
	pthread_cond_init(&T.cond, NULL);
	T.events = json_array();
	snprintf(T.dir, sizeof(T.dir), "/tmp/test_control.XXXXXX");
	assert_non_null(mkdtemp(T.dir));
	assert_int_equal(chmod(T.dir, 0755), 0);
	snprintf(T.d1, sizeof(T.d1), "%s/ws1", T.dir);
	snprintf(T.d2, sizeof(T.d2), "%s/ws2", T.dir);
	snprintf(T.d3, sizeof(T.d3), "%s/ws3", T.dir);
	assert_int_equal(mkdir(T.d1, 0755), 0);
	assert_int_equal(mkdir(T.d2, 0755), 0);
	assert_int_equal(mkdir(T.d3, 0755), 0);

	O.lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(O.lfd >= 0);
	assert_int_equal(inet_pton(AF_INET, "127.0.0.2", &sa.sin_addr), 1);
	assert_int_equal(bind(O.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(O.lfd, 16), 0);
	assert_int_equal(getsockname(O.lfd, (struct sockaddr *)&sa, &sl), 0);
	O.port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&O.th, NULL, origin_main, NULL), 0);

	T.base = event_base_new();
	assert_non_null(T.base);
	po.connect_timeout_ms = 2000;
	po.idle_timeout_ms = 3000;
	po.dns_timeout_ms = 500;
	po.nameserver = "127.0.0.1:1";
	po.emit = collect;
	po.ident_get = control_ident_get;
	po.ident_put = control_ident_put;
	assert_int_equal(proxy_new(&T.proxy, &po), 0);
	assert_int_equal(http_server_new(&T.srv, NULL), 0);
	http_server_set_access_log(T.srv, NULL);
	assert_int_equal(proxy_routes(T.proxy, T.srv), 0);
	assert_int_equal(proxy_add_base(T.proxy, T.base), 0);
	assert_int_equal(http_server_attach(T.srv, T.base), 0);
	bases[0] = T.base;
	co.proxy_srv = T.srv;
	co.base = T.base;
	co.bases = bases;
	co.nbases = 1;
	co.max_conns = 3;
	co.emit = collect;
	assert_int_equal(control_new(&T.ctl, &co), 0);
	proxy_set_ident_arg(T.proxy, T.ctl);
	assert_int_equal(pthread_create(&T.th, NULL, loop_main, NULL), 0);
	return 0;
}

static void
rm_sock(const char *dir)
{
	char p[160];

	snprintf(p, sizeof(p), "%s/egress.sock", dir);
	(void)unlink(p);
	rmdir(dir);
}

static int
teardown(void **state)
{
	(void)state;
	http_server_shutdown(T.srv);
	proxy_shutdown(T.proxy);
	usleep(50000);
	event_base_loopbreak(T.base);
	pthread_join(T.th, NULL);
	control_free(T.ctl);
	proxy_free(T.proxy);
	http_server_free(T.srv);
	event_base_free(T.base);
	shutdown(O.lfd, SHUT_RDWR);
	close(O.lfd);
	pthread_join(O.th, NULL);
	rm_sock(T.d1);
	rm_sock(T.d2);
	rm_sock(T.d3);
	rmdir(T.dir);
	json_decref(T.events);
	pthread_cond_destroy(&T.cond);
	pthread_mutex_destroy(&T.mu);
	return 0;
}

/* --- clients --- */

/* In a child as uid (0: stay root): connect to dir/egress.sock, send req
 * (NULL: nothing), read the answer into out. Returns the child's verdict:
 * 0 answered, 1 connect refused by permissions, 2 connect failed
 * otherwise, 3 closed without a byte. */
static int
ask_as(unsigned uid, const char *dir, const char *req, char *out,
    size_t outlen)
{
	int pfd[2], status = 0;
	pid_t pid;
	ssize_t n;
	size_t got = 0;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char buf[8192];
		size_t have = 0;
		int fd;

		close(pfd[0]);
		if (uid != 0 && (setresgid(uid, uid, uid) != 0 ||
		    setresuid(uid, uid, uid) != 0))
			_exit(9);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/egress.sock",
		    dir);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
			_exit(errno == EACCES ? 1 : 2);
		if (req != NULL)
			(void)!write(fd, req, strlen(req));
		for (;;) {
			struct pollfd p = { .fd = fd, .events = POLLIN };
			ssize_t k;

			if (poll(&p, 1, 5000) <= 0)
				break;
			k = read(fd, buf + have, sizeof(buf) - 1 - have);
			if (k <= 0)
				break;
			have += (size_t)k;
			if (have >= sizeof(buf) - 1)
				break;
		}
		(void)!write(pfd[1], buf, have);
		_exit(have == 0 ? 3 : 0);
	}
	close(pfd[1]);
	while (got + 1 < outlen && (n = read(pfd[0], out + got,
	    outlen - 1 - got)) > 0)
		got += (size_t)n;
	out[got] = '\0';
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static int
get_as(unsigned uid, const char *dir, int port, char *out, size_t outlen)
{
	char req[256];

	snprintf(req, sizeof(req), "GET http://127.0.0.2:%d/ HTTP/1.1\r\n"
	    "Host: 127.0.0.2:%d\r\nConnection: close\r\n\r\n", port, port);
	return ask_as(uid, dir, req, out, outlen);
}

static bool
has_event(const char *type, const char *workspace, const char *field,
    const char *value)
{
	size_t i;
	json_t *ev;
	bool found = false;

	pthread_mutex_lock(&T.mu);
	json_array_foreach(T.events, i, ev) {
		const char *t = json_string_value(json_object_get(ev, "type"));
		const char *w = json_string_value(json_object_get(ev,
		    "workspace"));
		char *dump;

		if (t == NULL || strcmp(t, type) != 0 || w == NULL ||
		    strcmp(w, workspace) != 0)
			continue;
		if (field == NULL) {
			found = true;
			break;
		}
		dump = json_dumps(ev, JSON_COMPACT);
		found = dump != NULL && strstr(dump, field) != NULL &&
		    strstr(dump, value) != NULL;
		free(dump);
		if (found)
			break;
	}
	pthread_mutex_unlock(&T.mu);
	return found;
}

static void
sock_stat(const char *dir, struct stat *st)
{
	char p[160];

	snprintf(p, sizeof(p), "%s/egress.sock", dir);
	assert_int_equal(lstat(p, st), 0);
}

/* --- tests --- */

static void
test_state_validation(void **state)
{
	static const char *const bad[] = {
		"[]",
		"{\"policies\": {}}",
		"{\"policies\": {}, \"workspaces\": [], \"extra\": 1}",
		"{\"policies\": {\"p\": {\"name\": \"q\"}}, \"workspaces\": []}",
		"{\"policies\": {\"p\": {\"allow\": [{\"host\": \"a b\"}]}}, "
		"\"workspaces\": []}",
		"{\"policies\": {}, \"workspaces\": [{\"id\": \"a/b\", \"owner\": "
		"\"o\", \"org\": \"g\", \"policy\": \"p\", \"socket_dir\": \"/x\", "
		"\"uid_base\": 1, \"uid_count\": 1}]}",
		"{\"policies\": {}, \"workspaces\": [{\"id\": \"a\", \"owner\": "
		"\"o\", \"org\": \"g\", \"policy\": \"p\", \"socket_dir\": \"x\", "
		"\"uid_base\": 1, \"uid_count\": 1}]}",
		"{\"policies\": {}, \"workspaces\": [{\"id\": \"a\", \"owner\": "
		"\"o\", \"org\": \"g\", \"policy\": \"p\", \"socket_dir\": "
		"\"/x/../y\", \"uid_base\": 1, \"uid_count\": 1}]}",
		"{\"policies\": {}, \"workspaces\": [{\"id\": \"a\", \"owner\": "
		"\"o\", \"org\": \"g\", \"policy\": \"p\", \"socket_dir\": \"/x\", "
		"\"uid_base\": 0, \"uid_count\": 1}]}",
		"{\"policies\": {}, \"workspaces\": [{\"id\": \"a\", \"owner\": "
		"\"o\", \"org\": \"g\", \"policy\": \"p\", \"socket_dir\": \"/x\", "
		"\"uid_base\": 4294967295, \"uid_count\": 2}]}",
		"{\"policies\": {}, \"workspaces\": [{\"id\": \"a\", \"owner\": "
		"\"o\", \"org\": \"g\", \"policy\": \"p\", \"socket_dir\": \"/x\", "
		"\"uid_base\": 1, \"uid_count\": 1, \"template_policy\": 3}]}",
		"{\"policies\": {}, \"workspaces\": [{\"id\": \"a\", \"owner\": "
		"\"o\", \"org\": \"g\", \"policy\": \"p\", \"socket_dir\": \"/x\", "
		"\"uid_base\": 1, \"uid_count\": 1}, {\"id\": \"a\", \"owner\": "
		"\"o\", \"org\": \"g\", \"policy\": \"p\", \"socket_dir\": \"/y\", "
		"\"uid_base\": 1, \"uid_count\": 1}]}",
		"{\"policies\": {}, \"workspaces\": [{\"id\": \"a\", \"owner\": "
		"\"o\", \"org\": \"g\", \"policy\": \"p\", \"socket_dir\": \"/x\", "
		"\"uid_base\": 1, \"uid_count\": 1}, {\"id\": \"b\", \"owner\": "
		"\"o\", \"org\": \"g\", \"policy\": \"p\", \"socket_dir\": \"/x\", "
		"\"uid_base\": 1, \"uid_count\": 1}]}",
		"{\"policies\": {}, \"workspaces\": [{\"id\": \"a\", \"owner\": "
		"\"o\\n\", \"org\": \"g\", \"policy\": \"p\", \"socket_dir\": "
		"\"/x\", \"uid_base\": 1, \"uid_count\": 1}]}",
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_t *doc = json_loads(bad[i], 0, NULL);

		assert_non_null(doc);
		err[0] = '\0';
		if (control_check_state(doc, err, sizeof(err)) != MOAT_ERR_INVAL)
			fail_msg("accepted: %s", bad[i]);
		assert_true(err[0] != '\0');
		json_decref(doc);
	}
	{
		json_t *doc = json_loads("{\"policies\": {\"p\": {\"allow\": "
		    "[{\"cidr\": \"127.0.0.2/32\"}]}}, \"workspaces\": [{\"id\": "
		    "\"a-1\", \"owner\": \"o\", \"org\": \"g\", \"policy\": \"p\", "
		    "\"template_policy\": null, \"socket_dir\": \"/x/y\", "
		    "\"uid_base\": 1, \"uid_count\": 65536}]}", 0, NULL);

		assert_int_equal(control_check_state(doc, err, sizeof(err)), 0);
		json_decref(doc);
	}
}

static void
test_sockets_identity_and_policies(void **state)
{
	char out[8192];
	struct stat st1, st2, again;
	json_t *answer = NULL;

	(void)state;
	assert_int_equal(apply(state_two(O.port), &answer), 0);
	assert_int_equal(json_array_size(json_object_get(answer, "errors")), 0);
	assert_int_equal(strlen(json_string_value(json_object_get(answer,
	    "digest"))), 64);
	json_decref(answer);
	sock_stat(T.d1, &st1);
	sock_stat(T.d2, &st2);
	assert_true(S_ISSOCK(st1.st_mode));
	assert_int_equal(st1.st_mode & 0777, 0660);
	assert_int_equal(st1.st_uid, UID1);
	assert_int_equal(st2.st_uid, UID2);

	/* ws1's root: allowed by the organization's policy. */
	assert_int_equal(get_as(UID1, T.d1, O.port, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "200 OK"));
	assert_non_null(strstr(out, "hello"));
	/* Only the workspace's root (the agent) may open the socket; other
	 * uids of its range are kept out by the mode already. */
	assert_int_equal(get_as(UID1 + 9, T.d1, O.port, out, sizeof(out)), 1);
	/* ws2: the template's policy allows nothing; both must allow. */
	assert_int_equal(get_as(UID2, T.d2, O.port, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "403"));
	assert_non_null(strstr(out, "\"tight\""));
	/* ws1's uid cannot open ws2's socket (owner and mode). */
	assert_int_equal(get_as(UID1, T.d2, O.port, out, sizeof(out)), 1);
	/* Root can, but is outside the range: closed without an answer. */
	assert_int_equal(get_as(0, T.d1, O.port, out, sizeof(out)), 3);

	assert_true(has_event("egress.allow", "ws1", "\"user\":\"alice\"",
	    "\"org\":\"acme\""));
	assert_true(has_event("egress.deny", "ws2", "\"policy\":\"tight\"",
	    "\"user\":\"bob\""));
	assert_true(has_event("egress.deny", "ws1", "\"uid\":0",
	    "outside the workspace's range"));

	/* The same state again: the same sockets. */
	assert_int_equal(apply(state_two(O.port), NULL), 0);
	sock_stat(T.d1, &again);
	assert_int_equal(again.st_ino, st1.st_ino);

	/* A policy swap applies to the next request. */
	assert_int_equal(apply(state_two(0), NULL), 0);
	assert_int_equal(get_as(UID1, T.d1, O.port, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "403"));
	assert_int_equal(apply(state_two(O.port), NULL), 0);
	assert_int_equal(get_as(UID1, T.d1, O.port, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "200 OK"));
}

static void
test_removed_replaced_and_broken(void **state)
{
	char out[8192], p[160];
	struct stat st;
	json_t *answer = NULL, *doc;
	int fd;

	(void)state;
	assert_int_equal(apply(state_two(O.port), NULL), 0);
	/* ws2 no longer listed: its socket goes. */
	doc = json_pack("{s:{s:o},s:[o]}", "policies", "org",
	    policy("org", O.port), "workspaces",
	    ws("ws1", "alice", "org", NULL, T.d1, UID1));
	assert_int_equal(apply(doc, NULL), 0);
	snprintf(p, sizeof(p), "%s/egress.sock", T.d2);
	assert_int_equal(lstat(p, &st), -1);
	/* Someone removed ws1's socket (a new run directory): the periodic
	 * check makes it again. */
	snprintf(p, sizeof(p), "%s/egress.sock", T.d1);
	assert_int_equal(unlink(p), 0);
	for (int i = 0; i < 40 && lstat(p, &st) != 0; i++)
		usleep(100000);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(get_as(UID1, T.d1, O.port, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "200 OK"));
	/* A file that is not a socket is left alone and reported. */
	snprintf(p, sizeof(p), "%s/egress.sock", T.d3);
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	doc = json_pack("{s:{s:o},s:[o,o]}", "policies", "org",
	    policy("org", O.port), "workspaces",
	    ws("ws1", "alice", "org", NULL, T.d1, UID1),
	    ws("ws3", "carol", "org", NULL, T.d3, UID2));
	assert_int_equal(apply(doc, &answer), 0);
	assert_int_equal(json_array_size(json_object_get(answer, "errors")), 1);
	assert_string_equal(json_string_value(json_object_get(answer,
	    "digest")), "");
	json_decref(answer);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(unlink(p), 0);
	/* A policy nobody defined: everything is denied, with the reason. */
	doc = json_pack("{s:{},s:[o]}", "policies", "workspaces",
	    ws("ws1", "alice", "nope", NULL, T.d1, UID1));
	assert_int_equal(apply(doc, NULL), 0);
	assert_int_equal(get_as(UID1, T.d1, O.port, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "403"));
	assert_non_null(strstr(out, "not defined"));
}

static void
test_connection_cap(void **state)
{
	int pfd[2], status = 0;
	char out[512] = "";
	ssize_t n;
	pid_t pid;

	(void)state;
	assert_int_equal(apply(state_two(O.port), NULL), 0);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		char buf[512];
		int fds[4];
		ssize_t k = 0;

		close(pfd[0]);
		if (setresgid(UID1, UID1, UID1) != 0 ||
		    setresuid(UID1, UID1, UID1) != 0)
			_exit(9);
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/egress.sock",
		    T.d1);
		for (int i = 0; i < 4; i++) {
			fds[i] = socket(AF_UNIX, SOCK_STREAM, 0);
			if (connect(fds[i], (struct sockaddr *)&sa,
			    sizeof(sa)) != 0)
				_exit(2);
			usleep(50000);
		}
		{
			struct pollfd p = { .fd = fds[3], .events = POLLIN };

			if (poll(&p, 1, 3000) > 0)
				k = read(fds[3], buf, sizeof(buf) - 1);
		}
		if (k > 0)
			(void)!write(pfd[1], buf, (size_t)k);
		_exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], out, sizeof(out) - 1);
	out[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_non_null(strstr(out, "503"));
	assert_true(has_event("egress.deny", "ws1", "reason",
	    "connection cap reached"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_state_validation),
		cmocka_unit_test(test_sockets_identity_and_policies),
		cmocka_unit_test(test_removed_replaced_and_broken),
		cmocka_unit_test(test_connection_cap),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
