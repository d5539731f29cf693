/*
 * resolve.c - asynchronous A/AAAA lookups over libevent's evdns (contract
 * in resolve.h).
 *
 * One evdns base per resolver. The nameserver is --resolver, or those of
 * /etc/resolv.conf; from resolv.conf only the nameservers and options are
 * taken, never the search list (a search domain would make the name looked
 * up differ from the name the policy decided on) nor the system's hosts
 * file. A --hosts-file is loaded into evdns, which answers from it before
 * asking DNS.
 *
 * Lifetime of a request. evdns_getaddrinfo() either answers at once (from
 * the hosts file: its callback has already run when it returns NULL) or
 * later, exactly once, even after evdns_getaddrinfo_cancel() (then with
 * EVUTIL_EAI_CANCEL, from a deferred callback). So:
 *   - an answer that arrives inside resolve_start() is delivered from an
 *     event made active there, never inside the call;
 *   - our own timer bounds the whole lookup; evdns's per-attempt timeout,
 *     retransmissions and A/AAAA skew are set so that evdns never gives up
 *     before it. On expiry the caller gets MOAT_ERR_TIMEOUT and the evdns
 *     request is cancelled. (A consequence: a server that answers A but
 *     drops AAAA queries makes lookups time out rather than return the A
 *     records alone. evdns's skew path would answer early but leave a
 *     deferred evdns callback behind, which must not outlive the evdns
 *     base.)
 *   - a request's memory is released only once the caller has been
 *     answered or has cancelled, and evdns has called back for the last
 *     time; the evdns base is freed only when no request is left.
 * resolver_free() cancels what is pending, then runs the loop without
 * blocking until evdns has called back for every cancelled lookup. Called
 * from inside the loop, where that is not possible (libevent refuses a
 * nested loop with a warning), it leaves the last callback to free the
 * resolver from a zero timer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "log.h"
#include "resolve.h"

struct resolver {
	struct event_base *base;
	struct evdns_base *dns;
	struct timeval timeout;
	struct resolve_req *reqs;	/* live requests, doubly linked */
	bool closing;			/* resolver_free() was called */
	bool spinning;			/* resolver_free() runs the loop */
};

struct resolve_req {
	struct resolver *r;
	struct resolve_req *next, *prev;
	resolve_cb cb;			/* NULL once answered or cancelled */
	void *arg;
	struct evdns_getaddrinfo_request *gai;
	bool gai_pending;		/* evdns has not called back yet */
	bool guard;			/* inside resolve_start() or an evdns
					 * cancel: on_gai must not answer or
					 * free */
	bool busy;			/* inside the caller's callback */
	struct event *timer;		/* deadline */
	struct event *deliver;		/* deferred answer */
	int err;
	size_t n;
	struct addr addrs[RESOLVE_MAX_ADDRS];
};

static void resolver_destroy(struct resolver *r);

static void
free_later_cb(evutil_socket_t fd, short what, void *arg)
{
	resolver_destroy(arg);
}

static void
req_unlink_free(struct resolve_req *q)
{
	struct resolver *r = q->r;

	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		r->reqs = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	if (q->timer != NULL)
		event_free(q->timer);
	if (q->deliver != NULL)
		event_free(q->deliver);
	free(q);
}

/* Frees q once nobody needs it: answered or cancelled, evdns done, not
 * inside the caller's callback. The last request of a closing resolver
 * frees the resolver, from a zero timer (we may be inside evdns). */
static void
req_release(struct resolve_req *q)
{
	struct resolver *r = q->r;

	if (q->cb != NULL || q->gai_pending || q->busy || q->guard)
		return;
	req_unlink_free(q);
	if (r->closing && !r->spinning && r->reqs == NULL)
		(void)event_base_once(r->base, -1, EV_TIMEOUT, free_later_cb, r,
		    NULL);
}

static void
req_cancel_gai(struct resolve_req *q)
{
	if (!q->gai_pending || q->gai == NULL)
		return;
	q->guard = true;
	evdns_getaddrinfo_cancel(q->gai);
	q->guard = false;
}

/* Hands the answer to the caller (once), then frees what can be. */
static void
req_answer(struct resolve_req *q, int err)
{
	resolve_cb cb = q->cb;

	q->cb = NULL;
	event_del(q->timer);
	event_del(q->deliver);
	if (cb != NULL) {
		q->busy = true;
		cb(err, err == 0 ? q->addrs : NULL, err == 0 ? q->n : 0,
		    q->arg);
		q->busy = false;
	}
	req_cancel_gai(q);	/* the lookup still runs after a timeout */
	req_release(q);
}

static int
gai_err(int result)
{
	switch (result) {
	case 0:
		return 0;
	case EVUTIL_EAI_NONAME:		/* NXDOMAIN */
	case EVUTIL_EAI_NODATA:
	case EVUTIL_EAI_ADDRFAMILY:
		return MOAT_ERR_NOTFOUND;
	case EVUTIL_EAI_MEMORY:
		return MOAT_ERR_NOMEM;
	default:
		/* evdns reports an answer without records (NODATA) as
		 * EVUTIL_EAI_FAIL, like SERVFAIL: both become
		 * MOAT_ERR_IO (the proxy answers 502 to either). */
		return MOAT_ERR_IO;
	}
}

static void
on_gai(int result, struct evutil_addrinfo *res, void *arg)
{
	struct resolve_req *q = arg;
	struct evutil_addrinfo *ai;

	q->gai_pending = false;
	q->gai = NULL;
	if (result == 0) {
		for (ai = res; ai != NULL && q->n < RESOLVE_MAX_ADDRS;
		    ai = ai->ai_next) {
			struct addr a;
			size_t i;

			if (ai->ai_addr == NULL ||
			    addr_from_sockaddr(ai->ai_addr, &a, NULL) != 0)
				continue;
			for (i = 0; i < q->n; i++)
				if (memcmp(&q->addrs[i], &a, sizeof(a)) == 0)
					break;
			if (i == q->n)
				q->addrs[q->n++] = a;
		}
	}
	if (res != NULL)
		evutil_freeaddrinfo(res);
	q->err = result == EVUTIL_EAI_CANCEL ? MOAT_ERR_CLOSED :
	    gai_err(result);
	if (q->err == 0 && q->n == 0)
		q->err = MOAT_ERR_NOTFOUND;
	if (q->guard) {
		/* Inside resolve_start() (never call back there) or inside
		 * evdns_getaddrinfo_cancel(): whoever holds the guard
		 * cleans up. */
		if (q->cb != NULL)
			event_active(q->deliver, EV_READ, 1);
		return;
	}
	if (q->cb != NULL)
		req_answer(q, q->err);
	else
		req_release(q);	/* answered already (timeout), or cancelled */
}

static void
on_deliver(evutil_socket_t fd, short what, void *arg)
{
	struct resolve_req *q = arg;

	req_answer(q, q->err);
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct resolve_req *q = arg;

	req_answer(q, MOAT_ERR_TIMEOUT);
}

int
resolver_new(struct resolver **out, struct event_base *base,
    const struct resolver_opts *opts)
{
	struct resolver *r = NULL;
	unsigned ms;
	char val[32];
	int rc = MOAT_ERR_NOMEM;

	*out = NULL;
	if (base == NULL)
		return MOAT_ERR_INVAL;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		goto out;
	r->base = base;
	/* DISABLE_WHEN_INACTIVE: an idle resolver keeps no loop alive, so a
	 * shutdown with nothing in flight ends at once. */
	if ((r->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL)
		goto out;
	ms = opts != NULL && opts->timeout_ms != 0 ? opts->timeout_ms : 5000;
	r->timeout.tv_sec = ms / 1000;
	r->timeout.tv_usec = (long)(ms % 1000) * 1000;
	if (opts != NULL && opts->nameserver != NULL) {
		if (evdns_base_nameserver_ip_add(r->dns, opts->nameserver) !=
		    0) {
			log_warn("resolve", "bad resolver address",
			    LF_STR("resolver", opts->nameserver));
			rc = MOAT_ERR_INVAL;
			goto out;
		}
	} else {
		int e = evdns_base_resolv_conf_parse(r->dns,
		    DNS_OPTION_NAMESERVERS | DNS_OPTION_MISC,
		    "/etc/resolv.conf");

		if (e != 0)
			log_warn("resolve", "reading /etc/resolv.conf failed "
			    "(evdns falls back to 127.0.0.1)",
			    LF_INT("code", e));
		if (evdns_base_count_nameservers(r->dns) == 0) {
			rc = MOAT_ERR_IO;
			goto out;
		}
	}
	evdns_base_search_clear(r->dns);
	if (opts != NULL && opts->hosts_file != NULL &&
	    evdns_base_load_hosts(r->dns, opts->hosts_file) != 0) {
		log_warn("resolve", "cannot read the hosts file",
		    LF_STR("path", opts->hosts_file));
		rc = MOAT_ERR_IO;
		goto out;
	}
	/* Three attempts of half the deadline each: evdns keeps trying
	 * until our own timer has fired. */
	snprintf(val, sizeof(val), "%u.%03u", ms / 2000, (ms / 2) % 1000);
	if (evdns_base_set_option(r->dns, "timeout:", val) != 0 ||
	    evdns_base_set_option(r->dns, "attempts:", "3") != 0 ||
	    evdns_base_set_option(r->dns, "max-timeouts:", "255") != 0) {
		rc = MOAT_ERR_INVAL;
		goto out;
	}
	snprintf(val, sizeof(val), "%u.%03u", ms / 500, (ms * 2) % 1000);
	if (evdns_base_set_option(r->dns, "getaddrinfo-allow-skew:", val) !=
	    0) {
		rc = MOAT_ERR_INVAL;
		goto out;
	}
	*out = r;
	r = NULL;
	rc = 0;
out:
	if (r != NULL) {
		if (r->dns != NULL)
			evdns_base_free(r->dns, 0);
		free(r);
	}
	return rc;
}

static void
resolver_destroy(struct resolver *r)
{
	if (r->dns != NULL)
		evdns_base_free(r->dns, 0);
	free(r);
}

void
resolver_free(struct resolver *r)
{
	struct resolve_req *q, *next;
	int spins;

	if (r == NULL)
		return;
	r->closing = true;
	for (q = r->reqs; q != NULL; q = next) {
		next = q->next;
		q->cb = NULL;
		event_del(q->timer);
		event_del(q->deliver);
		req_cancel_gai(q);
		req_release(q);
	}
	/* Let evdns call back for the cancelled lookups now; inside the
	 * loop (a nested loop returns -1) the last callback frees r. */
	r->spinning = true;
	for (spins = 0; r->reqs != NULL && spins < 100; spins++)
		if (event_base_loop(r->base, EVLOOP_NONBLOCK) < 0)
			break;
	r->spinning = false;
	if (r->reqs == NULL)
		resolver_destroy(r);
}

int
resolve_start(struct resolver *r, const char *name, resolve_cb cb,
    void *arg, struct resolve_req **out)
{
	struct evutil_addrinfo hints;
	struct resolve_req *q;
	struct evdns_getaddrinfo_request *gai;

	if (out != NULL)
		*out = NULL;
	if (r == NULL || name == NULL || cb == NULL || r->closing)
		return MOAT_ERR_INVAL;
	if (name[0] == '\0' || strlen(name) > 253)
		return MOAT_ERR_INVAL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return MOAT_ERR_NOMEM;
	q->r = r;
	q->cb = cb;
	q->arg = arg;
	q->timer = evtimer_new(r->base, on_timeout, q);
	q->deliver = event_new(r->base, -1, 0, on_deliver, q);
	q->next = r->reqs;
	if (r->reqs != NULL)
		r->reqs->prev = q;
	r->reqs = q;
	if (q->timer == NULL || q->deliver == NULL) {
		q->cb = NULL;
		req_unlink_free(q);
		return MOAT_ERR_NOMEM;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	q->guard = true;
	q->gai_pending = true;
	gai = evdns_getaddrinfo(r->dns, name, NULL, &hints, on_gai, q);
	q->guard = false;
	if (q->gai_pending) {
		if (gai == NULL) {
			/* neither an answer nor a request: should not be */
			q->gai_pending = false;
			q->cb = NULL;
			req_unlink_free(q);
			return MOAT_ERR_IO;
		}
		q->gai = gai;
		if (evtimer_add(q->timer, &r->timeout) != 0) {
			q->cb = NULL;
			req_cancel_gai(q);
			req_release(q);
			return MOAT_ERR_IO;
		}
	}
	if (out != NULL)
		*out = q;
	return 0;
}

void
resolve_cancel(struct resolve_req *q)
{
	if (q == NULL || q->cb == NULL)
		return;
	q->cb = NULL;
	event_del(q->timer);
	event_del(q->deliver);
	req_cancel_gai(q);
	req_release(q);
}
