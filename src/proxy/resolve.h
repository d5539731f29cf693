/*
 * resolve.h - asynchronous name resolution for the egress proxy.
 *
 * Over libevent's evdns on the loop thread that asks: never a blocking
 * getaddrinfo. The DNS server is --resolver ADDR:PORT or, by default, the
 * system's (/etc/resolv.conf); a --hosts-file serves split-horizon names
 * first. Every lookup has a timeout. Answers are A and AAAA records; the
 * caller decides on each address and connects to the one it checked, so a
 * name is never resolved twice for one request (DNS rebinding).
 */
#ifndef MOAT_PROXY_RESOLVE_H
#define MOAT_PROXY_RESOLVE_H

#include <stddef.h>

#include <event2/event.h>

#include "addr.h"
#include "errors.h"

#define RESOLVE_MAX_ADDRS 16

struct resolver;
struct resolve_req;

struct resolver_opts {
	const char *nameserver;	/* "127.0.0.1:5353"; NULL: /etc/resolv.conf */
	const char *hosts_file;	/* NULL: none */
	unsigned timeout_ms;	/* per lookup; default 5000 */
};

/* One resolver per event base (loop thread). */
int resolver_new(struct resolver **out, struct event_base *base,
    const struct resolver_opts *opts) MOAT_MUST_CHECK;
void resolver_free(struct resolver *r);

/* err: 0, MOAT_ERR_NOTFOUND (no such name / no records),
 * MOAT_ERR_TIMEOUT, MOAT_ERR_IO. addrs borrowed for the call. */
typedef void (*resolve_cb)(int err, const struct addr *addrs, size_t n,
    void *arg);

/* Starts a lookup; cb runs later on the same thread (never inside this
 * call). *out may be passed to resolve_cancel() until cb runs. */
int resolve_start(struct resolver *r, const char *name, resolve_cb cb,
    void *arg, struct resolve_req **out) MOAT_MUST_CHECK;
void resolve_cancel(struct resolve_req *req);

#endif
