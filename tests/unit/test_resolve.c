/*
 * test_resolve.c - unit tests for src/proxy/resolve.c against a tiny DNS
 * server run inside the test (libevent's evdns server port on a UDP socket
 * bound to 127.0.0.1, port chosen by the kernel): A and AAAA answers, a
 * name with only AAAA, more records than RESOLVE_MAX_ADDRS, NXDOMAIN, a
 * name never answered (timeout), a hosts file (answered without DNS, but
 * never inside resolve_start()), cancellation, and freeing a resolver with
 * lookups in flight.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cmocka.h>
#include <event2/dns.h>
#include <event2/dns_struct.h>
#include <event2/event.h>

#include "resolve.h"

struct dnsd {
	struct event_base *base;
	struct evdns_server_port *port;
	evutil_socket_t fd;
	char addr[64];		/* "127.0.0.1:PORT" */
	int queries;
};

static void
dnsd_cb(struct evdns_server_request *req, void *arg)
{
	struct dnsd *d = arg;
	int i;

	d->queries++;
	for (i = 0; i < req->nquestions; i++) {
		const struct evdns_server_question *q = req->questions[i];
		const char *name = q->name;	/* case may be randomized */

		if (strcasecmp(name, "slow.test") == 0) {
			evdns_server_request_drop(req);
			return;
		}
		if (strcasecmp(name, "gone.test") == 0) {
			evdns_server_request_respond(req, DNS_ERR_NOTEXIST);
			return;
		}
		if (q->type == EVDNS_TYPE_A) {
			uint8_t a[4] = { 127, 0, 0, 7 };

			if (strcasecmp(name, "a.test") == 0 ||
			    strcasecmp(name, "both.test") == 0)
				evdns_server_request_add_a_reply(req, name, 1,
				    a, 60);
			if (strcasecmp(name, "many.test") == 0) {
				uint8_t many[20][4];
				int k;

				for (k = 0; k < 20; k++) {
					many[k][0] = 198;
					many[k][1] = 51;
					many[k][2] = 100;
					many[k][3] = (uint8_t)(k + 1);
				}
				evdns_server_request_add_a_reply(req, name, 20,
				    many, 60);
			}
		} else if (q->type == EVDNS_TYPE_AAAA) {
			struct in6_addr six;

			inet_pton(AF_INET6, "fd00::8", &six);
			if (strcasecmp(name, "six.test") == 0 ||
			    strcasecmp(name, "both.test") == 0)
				evdns_server_request_add_aaaa_reply(req, name,
				    1, &six, 60);
		}
	}
	evdns_server_request_respond(req, 0);
}

static void
dnsd_start(struct dnsd *d, struct event_base *base)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(d, 0, sizeof(*d));
	d->base = base;
	d->fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_true(d->fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(d->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(d->fd, (struct sockaddr *)&sin, &len), 0);
	assert_int_equal(evutil_make_socket_nonblocking(d->fd), 0);
	snprintf(d->addr, sizeof(d->addr), "127.0.0.1:%u",
	    (unsigned)ntohs(sin.sin_port));
	d->port = evdns_add_server_port_with_base(base, d->fd, 0, dnsd_cb, d);
	assert_non_null(d->port);
}

static void
dnsd_stop(struct dnsd *d)
{
	evdns_close_server_port(d->port);
	close(d->fd);
}

struct result {
	int calls;
	int err;
	size_t n;
	struct addr addrs[RESOLVE_MAX_ADDRS];
	bool in_start;		/* set around resolve_start() */
	bool called_inside;
	struct event_base *base;
};

static void
on_result(int err, const struct addr *addrs, size_t n, void *arg)
{
	struct result *res = arg;

	res->calls++;
	res->err = err;
	res->n = n;
	if (res->in_start)
		res->called_inside = true;
	if (n > 0)
		memcpy(res->addrs, addrs, n * sizeof(addrs[0]));
	event_base_loopbreak(res->base);
}

struct ctx {
	struct event_base *base;
	struct dnsd dnsd;
	struct resolver *r;
	char dir[64];
	char hosts[96];
};

static int
setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct resolver_opts o;
	FILE *f;

	assert_non_null(c);
	c->base = event_base_new();
	assert_non_null(c->base);
	dnsd_start(&c->dnsd, c->base);
	snprintf(c->dir, sizeof(c->dir), "/tmp/moat-resolve-XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	snprintf(c->hosts, sizeof(c->hosts), "%s/hosts", c->dir);
	f = fopen(c->hosts, "w");
	assert_non_null(f);
	fputs("# split horizon\n127.0.0.9 split.internal\n"
	    "fd00::9 split.internal\n127.0.0.10 a.test\n", f);
	fclose(f);
	memset(&o, 0, sizeof(o));
	o.nameserver = c->dnsd.addr;
	o.hosts_file = c->hosts;
	o.timeout_ms = 400;
	assert_int_equal(resolver_new(&c->r, c->base, &o), 0);
	*state = c;
	return 0;
}

static int
teardown(void **state)
{
	struct ctx *c = *state;

	resolver_free(c->r);
	dnsd_stop(&c->dnsd);
	event_base_free(c->base);
	unlink(c->hosts);
	rmdir(c->dir);
	free(c);
	return 0;
}

/* Starts a lookup and runs the loop until its callback (or 3 s). */
static void
lookup(struct ctx *c, const char *name, struct result *res)
{
	struct resolve_req *q = NULL;
	struct timeval tv = { 3, 0 };

	memset(res, 0, sizeof(*res));
	res->base = c->base;
	res->in_start = true;
	assert_int_equal(resolve_start(c->r, name, on_result, res, &q), 0);
	res->in_start = false;
	assert_non_null(q);
	assert_int_equal(res->calls, 0);
	event_base_loopexit(c->base, &tv);
	event_base_dispatch(c->base);
	assert_int_equal(res->calls, 1);
	assert_false(res->called_inside);
}

static bool
has(const struct result *res, const char *text)
{
	struct addr a;
	size_t i;

	if (addr_parse_host(text, &a) != 0)
		return false;
	for (i = 0; i < res->n; i++)
		if (memcmp(&res->addrs[i], &a, sizeof(a)) == 0)
			return true;
	return false;
}

static void
test_answers(void **state)
{
	struct ctx *c = *state;
	struct result res;

	lookup(c, "both.test", &res);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.n, 2);
	assert_true(has(&res, "127.0.0.7"));
	assert_true(has(&res, "fd00::8"));

	lookup(c, "six.test", &res);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.n, 1);
	assert_true(has(&res, "fd00::8"));

	lookup(c, "many.test", &res);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.n, RESOLVE_MAX_ADDRS);
	assert_true(has(&res, "198.51.100.1"));

	lookup(c, "gone.test", &res);
	assert_int_equal(res.err, MOAT_ERR_NOTFOUND);
	assert_int_equal(res.n, 0);

	/* an answer without records: evdns cannot tell it from SERVFAIL */
	lookup(c, "empty.test", &res);
	assert_true(res.err == MOAT_ERR_NOTFOUND || res.err == MOAT_ERR_IO);
	assert_int_equal(res.n, 0);
}

static void
test_timeout(void **state)
{
	struct ctx *c = *state;
	struct result res;
	struct timeval t0, t1;
	long ms;

	gettimeofday(&t0, NULL);
	lookup(c, "slow.test", &res);
	gettimeofday(&t1, NULL);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_usec - t0.tv_usec) / 1000;
	assert_int_equal(res.err, MOAT_ERR_TIMEOUT);
	assert_true(ms >= 350 && ms < 2000);
	/* the resolver still works afterwards */
	lookup(c, "six.test", &res);
	assert_int_equal(res.err, 0);
}

static void
test_hosts_file(void **state)
{
	struct ctx *c = *state;
	struct result res;
	int before = c->dnsd.queries;

	lookup(c, "split.internal", &res);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.n, 2);
	assert_true(has(&res, "127.0.0.9"));
	assert_true(has(&res, "fd00::9"));
	/* the hosts file wins over DNS, and no query went out */
	lookup(c, "a.test", &res);
	assert_int_equal(res.err, 0);
	assert_int_equal(res.n, 1);
	assert_true(has(&res, "127.0.0.10"));
	assert_int_equal(c->dnsd.queries, before);
}

static void
test_cancel(void **state)
{
	struct ctx *c = *state;
	struct resolve_req *q1 = NULL, *q2 = NULL, *q3 = NULL;
	struct result r1, r2, r3, r4;
	struct timeval tv = { 0, 700000 };

	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	memset(&r3, 0, sizeof(r3));
	r1.base = r2.base = r3.base = c->base;
	/* in flight over DNS, answered from the hosts file (pending
	 * delivery), and one never answered */
	assert_int_equal(resolve_start(c->r, "both.test", on_result, &r1, &q1),
	    0);
	assert_int_equal(resolve_start(c->r, "split.internal", on_result, &r2,
	    &q2), 0);
	assert_int_equal(resolve_start(c->r, "slow.test", on_result, &r3, &q3),
	    0);
	resolve_cancel(q1);
	resolve_cancel(q2);
	resolve_cancel(q3);
	resolve_cancel(NULL);
	event_base_loopexit(c->base, &tv);
	event_base_dispatch(c->base);
	assert_int_equal(r1.calls + r2.calls + r3.calls, 0);
	lookup(c, "a.test", &r4);
	assert_int_equal(r4.err, 0);
}

/* Freeing a resolver with lookups in flight: no callback, no leak. */
static void
test_free_pending(void **state)
{
	struct ctx *c = *state;
	struct resolver_opts o;
	struct resolver *r = NULL;
	struct resolve_req *q = NULL;
	struct result r1, r2;
	struct timeval tv = { 0, 200000 };

	memset(&o, 0, sizeof(o));
	o.nameserver = c->dnsd.addr;
	o.hosts_file = c->hosts;
	o.timeout_ms = 1000;
	assert_int_equal(resolver_new(&r, c->base, &o), 0);
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	r1.base = r2.base = c->base;
	assert_int_equal(resolve_start(r, "slow.test", on_result, &r1, &q), 0);
	assert_int_equal(resolve_start(r, "split.internal", on_result, &r2,
	    &q), 0);
	resolver_free(r);
	resolver_free(NULL);
	event_base_loopexit(c->base, &tv);
	event_base_dispatch(c->base);
	assert_int_equal(r1.calls + r2.calls, 0);
}

static struct resolver *free_me;

static void
on_result_free(int err, const struct addr *addrs, size_t n, void *arg)
{
	on_result(err, addrs, n, arg);
	resolver_free(free_me);
	free_me = NULL;
}

/* Freeing the resolver from inside a callback, with another lookup in
 * flight: the resolver goes once evdns has let go of it. */
static void
test_free_in_callback(void **state)
{
	struct ctx *c = *state;
	struct resolver_opts o;
	struct resolve_req *q = NULL;
	struct result r1, r2;
	struct timeval tv = { 0, 300000 };

	memset(&o, 0, sizeof(o));
	o.nameserver = c->dnsd.addr;
	o.timeout_ms = 1000;
	assert_int_equal(resolver_new(&free_me, c->base, &o), 0);
	memset(&r1, 0, sizeof(r1));
	memset(&r2, 0, sizeof(r2));
	r1.base = r2.base = c->base;
	assert_int_equal(resolve_start(free_me, "slow.test", on_result, &r2,
	    &q), 0);
	assert_int_equal(resolve_start(free_me, "both.test", on_result_free,
	    &r1, &q), 0);
	event_base_loopexit(c->base, &tv);
	event_base_dispatch(c->base);
	assert_int_equal(r1.calls, 1);
	assert_int_equal(r1.err, 0);
	assert_int_equal(r2.calls, 0);
	assert_null(free_me);
	/* let the deferred free run */
	tv.tv_usec = 100000;
	event_base_loopexit(c->base, &tv);
	event_base_dispatch(c->base);
}

static void
test_bad_args(void **state)
{
	struct ctx *c = *state;
	struct resolver_opts o;
	struct resolver *r = NULL;
	struct resolve_req *q = NULL;
	struct result res;
	char longname[300];

	memset(&o, 0, sizeof(o));
	o.nameserver = "not an address";
	assert_int_not_equal(resolver_new(&r, c->base, &o), 0);
	assert_null(r);
	o.nameserver = c->dnsd.addr;
	o.hosts_file = "/nonexistent/moat/hosts";
	assert_int_not_equal(resolver_new(&r, c->base, &o), 0);
	assert_null(r);
	memset(&res, 0, sizeof(res));
	assert_int_equal(resolve_start(c->r, "", on_result, &res, &q),
	    MOAT_ERR_INVAL);
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(resolve_start(c->r, longname, on_result, &res, &q),
	    MOAT_ERR_INVAL);
	assert_int_equal(resolve_start(c->r, "a.test", NULL, &res, &q),
	    MOAT_ERR_INVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answers),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_hosts_file),
		cmocka_unit_test(test_cancel),
		cmocka_unit_test(test_free_pending),
		cmocka_unit_test(test_free_in_callback),
		cmocka_unit_test(test_bad_args),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
