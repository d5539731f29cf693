/*
 * proxy.h - moat-proxy's request handling on the shared HTTP core: the
 * forward proxy for absolute-form requests and CONNECT tunnels.
 *
 * proxy_routes() registers the "*" route (absolute-form and CONNECT
 * targets) and answers origin-form requests 400 ("this is a proxy"). Per
 * request: strict target parsing (http:// only, no userinfo, host
 * normalized, IP literals in any spelling through addr_parse_host, a Host
 * header that must agree with an absolute-form target), then
 * decide_before_dns -> asynchronous resolve -> decide_after_dns on each
 * address -> non-blocking connect to the address that was checked (never
 * resolved twice) with a timeout. One audit event per decision
 * (egress.allow / egress.deny / egress.monitor) and one egress.close with
 * bytes and duration.
 *
 * Plain HTTP: the request goes upstream in origin form with hop-by-hop
 * headers stripped (Connection and what it names, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Upgrade, Proxy-Authorization,
 * Proxy-Authenticate; Expect is handled here). The response is framed by
 * respframe.h (strict heads, hop-by-hop fields stripped, Content-Length
 * counted, chunked decoded and encoded again) and streamed to the client on
 * the connection the HTTP core lends (http_req_lend_conn); when it is
 * complete and its length was known, the connection goes back to the core
 * for the client's next request, which is parsed and decided on its own
 * (never read before: pipelined bytes wait). Otherwise the client
 * connection closes. Denials (403) keep it open. Upgrade is refused (403).
 *
 * Upstream keep-alive: a connection whose response ended cleanly (length
 * known, the upstream allows reuse, nothing after it) is kept idle in a
 * small pool per loop thread (proxy_opts.pool_max, pool_idle_ms), keyed by
 * who asks (the workspace, or in standalone mode the client address) and
 * the address and port that were checked. Only GET, HEAD and OPTIONS take
 * one, after their own decision and only for the very address it checked
 * (never resolved again); if the origin closed it meanwhile, the request is
 * sent once more on a fresh connection to the same address. An idle
 * connection that sends anything or closes is dropped.
 *
 * CONNECT: "200 Connection established", then, when the client's first
 * bytes are a TLS ClientHello, its SNI must equal the CONNECT host
 * (without SNI: allowed to an IP literal, refused to a name); a mismatch
 * ends the tunnel and is audited as egress.deny (egress.monitor in a
 * monitor-mode policy, which lets it through).
 *
 * Answers: 403 one-line text naming host, policy and reason; 400 for bad
 * targets; 502 resolution or connection failure; 504 timeouts; 503 at the
 * connection cap or when the audit writer refuses events. Never 407.
 *
 * Control mode (proxy_opts.ident_get): a request on a workspace's socket
 * runs under that workspace's policies, looked up per request (so a policy
 * change applies to the next request), and its audit events carry the
 * workspace, owner and organization.
 *
 * Threading: the policy may be replaced from any thread (a reference is
 * taken per request); everything else of a request happens on the loop
 * thread that accepted it.
 */
#ifndef MOAT_PROXY_PROXY_H
#define MOAT_PROXY_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <jansson.h>

#include "addr.h"
#include "audit.h"
#include "errors.h"
#include "http.h"
#include "metrics.h"

struct proxy;

/* Control mode: who a request on a workspace's socket runs as, and under
 * which policies (the organization's, then the template's when set: a
 * destination must be allowed by all). Filled by proxy_opts.ident_get,
 * given back with ident_put. npols 0 means "deny everything" with
 * deny_reason. */
struct proxy_ident {
	json_t *pols[2];		/* references */
	size_t npols;
	char workspace[64];
	char owner[128];
	char org[128];
	char deny_reason[160];		/* when npols is 0 */
	void *ref;			/* ident_get's own */
};

struct proxy_opts {
	unsigned connect_timeout_ms;	/* 0: 10 s */
	unsigned idle_timeout_ms;	/* tunnels and responses; 0: 300 s */
	unsigned dns_timeout_ms;	/* 0: 5 s */
	size_t max_conns;		/* requests and tunnels in flight; 0: none */
	int pool_max;			/* idle upstream connections kept per
					 * loop thread; 0: 256, < 0: none */
	unsigned pool_idle_ms;		/* and for how long; 0: 30 s */
	const char *nameserver;		/* "127.0.0.1:5353"; NULL: the system's */
	const char *hosts_file;		/* NULL: none */
	struct audit_writer *audit;	/* borrowed; NULL: no audit */
	/* Instead of audit: takes ev, non-blocking, nonzero when the event
	 * is lost (the proxy then refuses the action it describes). */
	int (*emit)(void *arg, json_t *ev);
	void *emit_arg;
	struct metrics *metrics;	/* borrowed; NULL: no metrics */
	/* Control mode: requests on adopted connections (a workspace's
	 * socket: http_req_conn_arg() non-NULL) get their identity and
	 * policies here. 0, MOAT_ERR_NOTFOUND (the workspace is gone: 403)
	 * or MOAT_ERR_AGAIN (its cap of requests in flight: 503). Any
	 * thread. */
	int (*ident_get)(void *arg, void *conn_arg, struct proxy_ident *out);
	void (*ident_put)(void *arg, struct proxy_ident *id);
	void *ident_arg;
};

int proxy_new(struct proxy **out, const struct proxy_opts *o) MOAT_MUST_CHECK;

/* Adds a loop thread's base (with its resolver). Before serving. */
int proxy_add_base(struct proxy *p, struct event_base *base) MOAT_MUST_CHECK;

/* Registers the routes on srv. */
int proxy_routes(struct proxy *p, struct http_server *srv) MOAT_MUST_CHECK;

/* Replaces the policy (a normalized document; a reference is taken) for
 * requests that start from now on. Thread-safe. */
void proxy_set_policy(struct proxy *p, json_t *policy);

/* Reads a policy file (YAML or JSON, at most 1 MiB) and normalizes it.
 * *out: new reference. err: what is wrong, naming the field. */
int proxy_load_policy_file(const char *path, json_t **out, char *err,
    size_t errlen) MOAT_MUST_CHECK;

/* Sets proxy_opts.ident_arg (before serving). */
void proxy_set_ident_arg(struct proxy *p, void *arg);

/* Emits an audit event through the configured sink (takes ev). 0 when
 * there is no sink. */
int proxy_emit(struct proxy *p, json_t *ev) MOAT_MUST_CHECK;

/* Requests and tunnels in flight. */
uint64_t proxy_active(const struct proxy *p);

/* Ends every tunnel and pending request (from each base's own thread).
 * Any thread. */
void proxy_shutdown(struct proxy *p);

/* Frees the proxy once no loop runs (before the HTTP server is freed). */
void proxy_free(struct proxy *p);

/* --- Target parsing, shared with the fuzz target. --- */

#define PROXY_HOST_MAX 256

struct proxy_target {
	bool connect;
	char host[PROXY_HOST_MAX];	/* lower-case, no trailing dot; a
					 * literal canonical, no brackets */
	bool is_literal;
	struct addr lit;
	uint16_t port;
	char *path;			/* absolute form: "/..." (owned) */
	char *query;			/* absolute form: after '?', or NULL */
};

/* Parses an absolute-form (http:// only) or CONNECT (host:port) target.
 * MOAT_ERR_PARSE with *why (static English) on anything refused. Free with
 * proxy_target_clear() in every case. */
int proxy_parse_target(bool connect, const char *target,
    struct proxy_target *t, const char **why) MOAT_MUST_CHECK;
void proxy_target_clear(struct proxy_target *t);

/* Checks that a Host header value names the same host and port as t
 * (absolute form; a missing port means 80). */
int proxy_check_host_header(const struct proxy_target *t, const char *value,
    const char **why) MOAT_MUST_CHECK;

#endif
