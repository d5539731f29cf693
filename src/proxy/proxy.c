/*
 * proxy.c - moat-proxy's request handling (see proxy.h): target parsing,
 * the decision path, upstream connects, plain-HTTP forwarding, CONNECT
 * tunnels with the SNI check, audit events and metrics.
 *
 * A request's life (struct pctx, on the loop thread that accepted it):
 *   handler: parse, decide_before_dns ... -> resolve (DNS) -> decide on
 *   each address -> connect -> take the connection from the HTTP core ->
 *   relay -> egress.close.
 * Every pctx is on its base's list so that shutdown can end it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "buf.h"
#include "decide.h"
#include "log.h"
#include "policy.h"
#include "proxy.h"
#include "relay.h"
#include "resolve.h"
#include "respframe.h"
#include "sni.h"

#define COMPONENT "proxy"
#define PROXY_MAX_BASES 64
#define POLICY_FILE_MAX (1024 * 1024)
#define URL_MAX 8192

#define POOL_MAX_DEFAULT 256	/* idle upstream connections per loop */
#define POOL_IDLE_DEFAULT_MS 30000
#define FWD_HIGH (256 * 1024)	/* client output bound while forwarding */
#define IDENT_MAX 80

struct pctx;

/* An idle upstream connection kept for reuse (plain HTTP): only for the
 * same identity and the same checked address and port. */
struct pool_ent {
	TAILQ_ENTRY(pool_ent) link;
	struct proxy_base *pb;
	struct bufferevent *bev;
	struct addr dst;
	uint16_t port;
	char ident[IDENT_MAX];
};

struct proxy_base {
	struct proxy *p;
	struct event_base *base;
	struct resolver *res;
	TAILQ_HEAD(pctx_list, pctx) ctxs;
	TAILQ_HEAD(pool_list, pool_ent) pool;	/* most recent first */
	size_t npool;
};

struct proxy {
	struct proxy_opts o;
	pthread_mutex_t mu;		/* guards policy */
	json_t *policy;
	struct proxy_base bases[PROXY_MAX_BASES];
	size_t nbases;
	_Atomic uint64_t active;
	_Atomic uint64_t next_id;
	struct metric *m_decisions, *m_tunnels, *m_bytes, *m_dns, *m_connect;
	struct metric_series *s_up, *s_down, *s_tunnels;
};

enum pctx_state { PS_DECIDING, PS_RESOLVING, PS_CONNECTING, PS_WAITING,
	PS_STREAM, PS_RELAY };

struct pctx {
	TAILQ_ENTRY(pctx) link;
	struct proxy *p;
	struct proxy_base *pb;
	struct http_request *req;	/* until answered or taken */
	json_t *pols[2];		/* references: the effective policy */
	size_t npols;
	struct proxy_ident ident;	/* control mode */
	bool has_ident;
	enum pctx_state state;
	uint64_t id;
	char method[16];
	char client[64];
	struct proxy_target t;
	char *url;			/* plain HTTP: normalized URL */
	char *npath;			/* plain HTTP: normalized path */
	struct decide_req dreq;
	struct decision d;
	bool monitored;
	struct addr dst;
	char dst_text[64];
	struct resolve_req *rr;
	struct bufferevent *up;
	struct relay *relay;
	uint64_t start_ns, phase_ns;
	uint64_t req_bytes;		/* plain HTTP: request bytes we sent */
	bool tunnel_counted;
	/* Plain HTTP forwarding (PS_WAITING, PS_STREAM). */
	char pool_key[IDENT_MAX];	/* who asks, for the upstream pool */
	struct respframe *rf;
	struct evbuffer *staged;	/* for the client, before lending */
	struct bufferevent *cli;	/* the lent client connection */
	struct http_conn *hc;		/* its HTTP core side */
	uint64_t down_bytes;		/* response bytes forwarded */
	bool reused;			/* upstream came from the pool */
	bool retried;
	bool got_bytes;			/* the upstream sent something */
	bool up_eof;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- target parsing --- */

static bool
name_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	    c == '.' || c == '_';
}

/* Normalizes a host (without port) into t->host / t->is_literal / t->lit. */
static int
host_norm(const char *s, size_t n, char *out, bool *is_literal,
    struct addr *lit, const char **why)
{
	char tmp[PROXY_HOST_MAX];
	size_t label = 0;
	int r;

	*is_literal = false;
	if (n == 0) {
		*why = "empty host";
		return MOAT_ERR_PARSE;
	}
	if (n >= sizeof(tmp)) {
		*why = "host name too long";
		return MOAT_ERR_PARSE;
	}
	if (s[0] == '[') {
		memcpy(tmp, s, n);
		tmp[n] = '\0';
		if (n < 3 || s[n - 1] != ']' || addr_parse_host(tmp, lit) != 0) {
			*why = "invalid IPv6 literal (zone identifiers are refused)";
			return MOAT_ERR_PARSE;
		}
		*is_literal = true;
		addr_format(lit, out, PROXY_HOST_MAX);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (!name_char(c)) {
			*why = "invalid character in host";
			return MOAT_ERR_PARSE;
		}
		tmp[i] = (char)c;
	}
	if (tmp[n - 1] == '.')
		n--;			/* one trailing dot */
	tmp[n] = '\0';
	if (n == 0 || n > 253) {
		*why = "invalid host name length";
		return MOAT_ERR_PARSE;
	}
	for (size_t i = 0; i <= n; i++) {
		if (i == n || tmp[i] == '.') {
			if (label == 0 || label > 63) {
				*why = "invalid host name label";
				return MOAT_ERR_PARSE;
			}
			label = 0;
		} else {
			label++;
		}
	}
	r = addr_parse_host(tmp, lit);
	if (r == 0) {
		*is_literal = true;
		addr_format(lit, out, PROXY_HOST_MAX);
		return 0;
	}
	if (r != MOAT_ERR_NOTFOUND) {
		*why = "invalid IP address literal";
		return MOAT_ERR_PARSE;
	}
	memcpy(out, tmp, n + 1);
	return 0;
}

static int
port_parse(const char *s, size_t n, uint16_t *port)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return MOAT_ERR_PARSE;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return MOAT_ERR_PARSE;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v == 0 || v > 65535)
		return MOAT_ERR_PARSE;
	*port = (uint16_t)v;
	return 0;
}

/* host[:port] or [v6][:port]; port_required for CONNECT. */
static int
authority_parse(const char *s, size_t n, bool port_required, uint16_t defport,
    char *host, bool *is_literal, struct addr *lit, uint16_t *port,
    const char **why)
{
	size_t hlen;
	const char *colon = NULL;

	if (memchr(s, '@', n) != NULL) {
		*why = "userinfo in the target is refused";
		return MOAT_ERR_PARSE;
	}
	if (n > 0 && s[0] == '[') {
		const char *rb = memchr(s, ']', n);

		if (rb == NULL) {
			*why = "unterminated IPv6 literal";
			return MOAT_ERR_PARSE;
		}
		hlen = (size_t)(rb - s) + 1;
		if (hlen < n) {
			if (s[hlen] != ':') {
				*why = "invalid authority";
				return MOAT_ERR_PARSE;
			}
			colon = s + hlen;
		}
	} else {
		colon = memchr(s, ':', n);
		hlen = colon != NULL ? (size_t)(colon - s) : n;
		if (colon != NULL && memchr(colon + 1, ':', n - hlen - 1) != NULL) {
			*why = "IPv6 literals must be in brackets";
			return MOAT_ERR_PARSE;
		}
	}
	if (host_norm(s, hlen, host, is_literal, lit, why) != 0)
		return MOAT_ERR_PARSE;
	if (colon == NULL) {
		if (port_required) {
			*why = "CONNECT needs host:port";
			return MOAT_ERR_PARSE;
		}
		*port = defport;
		return 0;
	}
	if (port_parse(colon + 1, n - hlen - 1, port) != 0) {
		*why = "invalid port";
		return MOAT_ERR_PARSE;
	}
	return 0;
}

void
proxy_target_clear(struct proxy_target *t)
{
	if (t == NULL)
		return;
	free(t->path);
	free(t->query);
	t->path = NULL;
	t->query = NULL;
}

int
proxy_parse_target(bool connect, const char *target, struct proxy_target *t,
    const char **why)
{
	const char *a, *e, *q;
	size_t n;

	memset(t, 0, sizeof(*t));
	t->connect = connect;
	*why = "invalid target";
	if (target == NULL)
		return MOAT_ERR_PARSE;
	n = strlen(target);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)target[i] <= 0x20 ||
		    (unsigned char)target[i] >= 0x7f) {
			*why = "invalid character in target";
			return MOAT_ERR_PARSE;
		}
	if (connect)
		return authority_parse(target, n, true, 0, t->host,
		    &t->is_literal, &t->lit, &t->port, why);
	if (strncasecmp(target, "https://", 8) == 0) {
		*why = "https:// in absolute form is refused: use CONNECT";
		return MOAT_ERR_PARSE;
	}
	if (strncasecmp(target, "http://", 7) != 0) {
		*why = "only http:// absolute-form targets and CONNECT are proxied";
		return MOAT_ERR_PARSE;
	}
	if (strchr(target, '#') != NULL) {
		*why = "fragment in target";
		return MOAT_ERR_PARSE;
	}
	a = target + 7;
	e = a + strcspn(a, "/?");
	if (authority_parse(a, (size_t)(e - a), false, 80, t->host,
	    &t->is_literal, &t->lit, &t->port, why) != 0)
		return MOAT_ERR_PARSE;
	q = strchr(e, '?');
	if (*e == '/')
		t->path = strndup(e, q != NULL ? (size_t)(q - e) : strlen(e));
	else
		t->path = strdup("/");
	if (t->path == NULL) {
		*why = "out of memory";
		return MOAT_ERR_NOMEM;
	}
	if (q != NULL && (t->query = strdup(q + 1)) == NULL) {
		*why = "out of memory";
		return MOAT_ERR_NOMEM;
	}
	return 0;
}

int
proxy_check_host_header(const struct proxy_target *t, const char *value,
    const char **why)
{
	char host[PROXY_HOST_MAX];
	struct addr lit;
	bool is_lit;
	uint16_t port;

	if (authority_parse(value, strlen(value), false, 80, host, &is_lit,
	    &lit, &port, why) != 0) {
		*why = "invalid Host header";
		return MOAT_ERR_PARSE;
	}
	if (strcmp(host, t->host) != 0 || port != t->port) {
		*why = "the Host header disagrees with the target";
		return MOAT_ERR_PARSE;
	}
	return 0;
}

/* --- metrics and audit --- */

/* A bounded label from a decision's rule text: its first word. */
static void
reason_label(const char *rule, char *out, size_t outlen)
{
	size_t n = 0;

	while (rule[n] != '\0' && n + 1 < outlen && n < 24 &&
	    ((rule[n] >= 'a' && rule[n] <= 'z') || rule[n] == '_'))
		n++;
	if (n == 0) {
		snprintf(out, outlen, "other");
		return;
	}
	memcpy(out, rule, n);
	out[n] = '\0';
}

static void
count_decision(struct proxy *p, const char *result, const char *reason)
{
	const char *lv[2] = { result, reason };

	metric_add(p->m_decisions, lv, 1);
}

/* The policy of c named name, else the first. */
static json_t *
pol_named(const struct pctx *c, const char *name)
{
	for (size_t i = 0; name != NULL && name[0] != '\0' && i < c->npols; i++) {
		const char *n = json_string_value(json_object_get(c->pols[i],
		    "name"));

		if (n != NULL && strcmp(n, name) == 0)
			return c->pols[i];
	}
	return c->npols > 0 ? c->pols[0] : NULL;
}

/* The mode of the deciding policy. */
static const char *
policy_mode(const struct pctx *c)
{
	json_t *m = json_object_get(pol_named(c, c->d.policy), "mode");

	return json_is_string(m) ? json_string_value(m) : "enforce";
}

/* True when every policy is in monitor mode (a check outside the rules,
 * like the TLS server name, is then only recorded). */
static bool
all_monitor(const struct pctx *c)
{
	for (size_t i = 0; i < c->npols; i++) {
		const char *m = json_string_value(json_object_get(c->pols[i],
		    "mode"));

		if (m == NULL || strcmp(m, "monitor") != 0)
			return false;
	}
	return c->npols > 0;
}

static const char *
policy_name(const struct pctx *c)
{
	json_t *n;

	if (c->d.policy[0] != '\0')
		return c->d.policy;
	n = json_object_get(pol_named(c, NULL), "name");
	return json_is_string(n) ? json_string_value(n) : "";
}

static void
set_str(json_t *o, const char *k, const char *v)
{
	if (v != NULL && v[0] != '\0')
		json_object_set_new(o, k, json_string(v));
}

void
proxy_set_ident_arg(struct proxy *p, void *arg)
{
	p->o.ident_arg = arg;
}

int
proxy_emit(struct proxy *p, json_t *ev)
{
	if (p->o.emit != NULL)
		return p->o.emit(p->o.emit_arg, ev);
	if (p->o.audit != NULL)
		return audit_emit(p->o.audit, ev);
	json_decref(ev);
	return 0;
}

static bool
auditing(const struct proxy *p)
{
	return p->o.emit != NULL || p->o.audit != NULL;
}

/* actor (client address; in control mode the workspace's owner and
 * organization) and the top-level workspace field. */
static void
set_actor(const struct pctx *c, json_t *ev)
{
	json_t *actor = json_pack("{s:s}", "addr", c->client);

	if (c->has_ident && actor != NULL) {
		set_str(actor, "user", c->ident.owner);
		set_str(actor, "org", c->ident.org);
		set_str(ev, "workspace", c->ident.workspace);
	}
	json_object_set_new(ev, "actor", actor);
}

/* Emits one decision event. type: "egress.allow" ... Returns the emit
 * result (nonzero: the caller refuses the action). */
static int
audit_decision(struct pctx *c, const char *type, const char *outcome,
    const char *rule, const char *reason, const char *sni)
{
	json_t *ev, *target, *details;

	if (!auditing(c->p))
		return 0;
	if ((ev = audit_event_new(type, outcome)) == NULL)
		return MOAT_ERR_NOMEM;
	set_actor(c, ev);
	target = json_object();
	set_str(target, "host", c->t.host);
	json_object_set_new(target, "port", json_integer(c->t.port));
	set_str(target, "address", c->dst_text);
	json_object_set_new(ev, "target", target);
	details = json_object();
	json_object_set_new(details, "conn_id", json_integer((json_int_t)c->id));
	set_str(details, "method", c->method);
	set_str(details, "url", c->url);
	set_str(details, "policy", policy_name(c));
	set_str(details, "mode", policy_mode(c));
	set_str(details, "rule", rule);
	set_str(details, "reason", reason);
	set_str(details, "sni", sni);
	if (c->npols > 1) {
		json_t *names = json_array();

		for (size_t i = 0; names != NULL && i < c->npols; i++)
			json_array_append(names, json_object_get(c->pols[i],
			    "name"));
		json_object_set_new(details, "policies", names);
	}
	json_object_set_new(ev, "details", details);
	return proxy_emit(c->p, ev);
}

static void
audit_close(struct pctx *c, const struct relay_stats *st, const char *error)
{
	json_t *ev, *details;

	if (!auditing(c->p))
		return;
	if ((ev = audit_event_new("egress.close", error != NULL ? "failure" :
	    "success")) == NULL)
		return;
	set_actor(c, ev);
	json_object_set_new(ev, "target", json_pack("{s:s,s:i,s:s}", "host",
	    c->t.host, "port", (int)c->t.port, "address", c->dst_text));
	details = json_pack("{s:I,s:s,s:s,s:I,s:I,s:f}", "conn_id",
	    (json_int_t)c->id, "method", c->method, "policy", policy_name(c),
	    "bytes_up", (json_int_t)(c->req_bytes + (st != NULL ? st->bytes_up : 0)),
	    "bytes_down", (json_int_t)(st != NULL ? st->bytes_down : 0),
	    "duration_s", (double)(now_ns() - c->start_ns) / 1e9);
	if (details != NULL)
		set_str(details, "error", error);
	json_object_set_new(ev, "details", details);
	if (proxy_emit(c->p, ev) != 0)
		log_warn(COMPONENT, "audit event dropped", LF_STR("type", "egress.close"));
}

/* --- request context --- */

static void
ctx_free(struct pctx *c)
{
	if (c == NULL)
		return;
	TAILQ_REMOVE(&c->pb->ctxs, c, link);
	if (c->rr != NULL)
		resolve_cancel(c->rr);
	if (c->up != NULL)
		bufferevent_free(c->up);
	if (c->hc != NULL)		/* an answer cut short: close */
		http_conn_give_back(c->hc, c->cli, false, c->down_bytes);
	respframe_free(c->rf);
	if (c->staged != NULL)
		evbuffer_free(c->staged);
	if (c->tunnel_counted)
		metric_series_gauge_add(c->p->s_tunnels, -1);
	proxy_target_clear(&c->t);
	free(c->url);
	free(c->npath);
	for (size_t i = 0; i < c->npols; i++)
		json_decref(c->pols[i]);
	if (c->has_ident && c->p->o.ident_put != NULL)
		c->p->o.ident_put(c->p->o.ident_arg, &c->ident);
	atomic_fetch_sub(&c->p->active, 1);
	free(c);
}

static void
respond_text(struct pctx *c, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Answers the request with a one-line text body and frees the context. */
static void
respond_text(struct pctx *c, int status, const char *fmt, ...)
{
	char body[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof(body) - 2)
		n = (int)sizeof(body) - 2;
	body[n++] = '\n';
	if (c->req != NULL)
		http_respond(c->req, status, "text/plain; charset=utf-8", body,
		    (size_t)n);
	c->req = NULL;
	ctx_free(c);
}

/* host:port as shown to people (IPv6 in brackets). */
static void
hostport(const struct pctx *c, char *out, size_t outlen)
{
	if (c->t.is_literal && c->t.lit.family == AF_INET6)
		snprintf(out, outlen, "[%s]:%u", c->t.host, (unsigned)c->t.port);
	else
		snprintf(out, outlen, "%s:%u", c->t.host, (unsigned)c->t.port);
}

static void
deny(struct pctx *c, const char *rule_label, const char *rule,
    const char *reason)
{
	char hp[PROXY_HOST_MAX + 16], lbl[32];

	reason_label(rule_label, lbl, sizeof(lbl));
	count_decision(c->p, "deny", lbl);
	if (audit_decision(c, "egress.deny", "denied", rule, reason, NULL) != 0)
		log_warn(COMPONENT, "audit event dropped", LF_STR("type", "egress.deny"));
	hostport(c, hp, sizeof(hp));
	log_info(COMPONENT, "denied", LF_STR("client", c->client),
	    LF_STR("method", c->method), LF_STR("dest", hp),
	    LF_STR("policy", policy_name(c)), LF_STR("rule", rule),
	    LF_STR("reason", reason));
	respond_text(c, 403, "moat-proxy: %s to %s denied by policy \"%s\" (%s)",
	    c->method, hp, policy_name(c), reason != NULL && reason[0] != '\0' ?
	    reason : rule);
}

static void
bad_request(struct pctx *c, const char *why)
{
	count_decision(c->p, "deny", "bad_request");
	if (audit_decision(c, "egress.deny", "denied", "bad request", why,
	    NULL) != 0)
		log_warn(COMPONENT, "audit event dropped", LF_STR("type", "egress.deny"));
	respond_text(c, 400, "moat-proxy: bad request: %s", why);
}

/* --- the relay stage --- */

static void
on_relay_done(const struct relay_stats *st, void *arg)
{
	struct pctx *c = arg;
	const char *err = NULL;

	c->relay = NULL;
	c->up = NULL;		/* freed by the relay */
	metric_series_add(c->p->s_up, c->req_bytes + st->bytes_up);
	metric_series_add(c->p->s_down, st->bytes_down);
	if (st->err == MOAT_ERR_TIMEOUT)
		err = "idle timeout";
	else if (st->err == MOAT_ERR_PERM)
		err = "refused by the TLS check";
	else if (st->err == MOAT_ERR_CLOSED)
		err = "ended early";
	else if (st->err != 0 && st->err != MOAT_ERR_IO)
		err = moat_strerror(st->err);
	audit_close(c, st, err);
	ctx_free(c);
}

/* The CONNECT tunnel's first client bytes: a ClientHello's SNI must name
 * the CONNECT host. */
static int
sni_filter(struct evbuffer *src, struct evbuffer *dst, bool eof, void *arg)
{
	struct pctx *c = arg;
	char sni[SNI_NAME_MAX], why[SNI_NAME_MAX + PROXY_HOST_MAX + 64];
	size_t n = evbuffer_get_length(src);
	const uint8_t *data;
	bool monitor;
	int r;

	(void)dst;
	if (n == 0)
		return eof ? 0 : MOAT_ERR_AGAIN;
	if (n > SNI_MAX_HELLO)
		n = SNI_MAX_HELLO;
	if ((data = evbuffer_pullup(src, (ssize_t)n)) == NULL)
		return MOAT_ERR_NOMEM;
	r = sni_parse(data, n, sni, sizeof(sni));
	if (r == MOAT_ERR_AGAIN)
		return MOAT_ERR_AGAIN;
	if (r == MOAT_ERR_NOTFOUND)
		return 0;	/* not TLS: the policy allowed host:port */
	if (r != 0)
		snprintf(why, sizeof(why), "malformed TLS ClientHello");
	else if (sni[0] == '\0' && c->t.is_literal)
		return 0;
	else if (sni[0] == '\0')
		snprintf(why, sizeof(why),
		    "TLS ClientHello without server name to a named host");
	else if (strcmp(sni, c->t.host) == 0)
		return 0;
	else
		snprintf(why, sizeof(why),
		    "TLS server name %s does not match the CONNECT host %s",
		    sni, c->t.host);
	monitor = all_monitor(c);
	count_decision(c->p, monitor ? "monitor" : "deny", "sni_mismatch");
	if (audit_decision(c, monitor ? "egress.monitor" : "egress.deny",
	    monitor ? "success" : "denied", "tls server name check", why,
	    r == 0 ? sni : NULL) != 0 && !monitor)
		log_warn(COMPONENT, "audit event dropped", LF_STR("type", "egress.deny"));
	log_info(COMPONENT, monitor ? "tunnel would be refused (monitor)" :
	    "tunnel refused", LF_STR("client", c->client),
	    LF_STR("host", c->t.host), LF_STR("reason", why));
	return monitor ? 0 : MOAT_ERR_PERM;
}

static void
start_relay(struct pctx *c, struct bufferevent *client)
{
	struct relay_opts ro;
	struct bufferevent *up = c->up;
	int r;

	memset(&ro, 0, sizeof(ro));
	ro.idle_timeout_ms = c->p->o.idle_timeout_ms;
	ro.filter_arg = c;
	ro.filter_up = sni_filter;
	ro.filter_max = SNI_MAX_HELLO;
	c->up = NULL;
	c->state = PS_RELAY;
	metric_series_gauge_add(c->p->s_tunnels, 1);
	c->tunnel_counted = true;
	if ((r = relay_start(c->pb->base, client, up, &ro, on_relay_done, c,
	    &c->relay)) != 0) {
		audit_close(c, NULL, moat_strerror(r));
		ctx_free(c);
	}
}

/* Builds the upstream request of a plain-HTTP request into out. */
static int
build_request(struct pctx *c, struct evbuffer *out)
{
	const char *name, *value, *conn = http_req_header(c->req, "connection");
	const uint8_t *body;
	size_t blen = 0, i;
	int r = MOAT_ERR_NOMEM;

	body = http_req_body(c->req, &blen);
	if (evbuffer_add_printf(out, "%s %s%s%s HTTP/1.1\r\n", c->method,
	    c->npath, c->t.query != NULL ? "?" : "",
	    c->t.query != NULL ? c->t.query : "") < 0)
		goto out;
	if (c->t.is_literal && c->t.lit.family == AF_INET6) {
		if (evbuffer_add_printf(out, "Host: [%s]", c->t.host) < 0)
			goto out;
	} else if (evbuffer_add_printf(out, "Host: %s", c->t.host) < 0) {
		goto out;
	}
	if (c->t.port != 80 && evbuffer_add_printf(out, ":%u", (unsigned)c->t.port) < 0)
		goto out;
	if (evbuffer_add(out, "\r\n", 2) != 0)
		goto out;
	for (i = 0; http_req_header_at(c->req, i, &name, &value); i++) {
		if (respframe_hop_by_hop(name, strlen(name)) ||
		    strcasecmp(name, "host") == 0 ||
		    strcasecmp(name, "content-length") == 0 ||
		    strcasecmp(name, "transfer-encoding") == 0 ||
		    strcasecmp(name, "expect") == 0 ||
		    (conn != NULL && respframe_conn_names(conn, strlen(conn), name,
		    strlen(name))))
			continue;
		if (evbuffer_add_printf(out, "%s: %s\r\n", name, value) < 0)
			goto out;
	}
	if ((blen > 0 || http_req_header(c->req, "content-length") != NULL ||
	    http_req_header(c->req, "transfer-encoding") != NULL) &&
	    evbuffer_add_printf(out, "Content-Length: %zu\r\n", blen) < 0)
		goto out;
	if (evbuffer_add(out, "\r\n", 2) != 0)
		goto out;
	if (blen > 0 && evbuffer_add(out, body, blen) != 0)
		goto out;
	r = 0;
out:
	return r;
}

/* --- plain HTTP: the upstream pool --- */

static void
pool_drop(struct pool_ent *e)
{
	TAILQ_REMOVE(&e->pb->pool, e, link);
	e->pb->npool--;
	bufferevent_free(e->bev);
	free(e);
}

/* An idle pooled connection that speaks (unsolicited bytes), closes, fails
 * or idles too long is closed: it is never a next answer. */
static void
pool_on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	pool_drop(arg);
}

static void
pool_on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	pool_drop(arg);
}

static void
pool_flush(struct proxy_base *pb)
{
	struct pool_ent *e;

	while ((e = TAILQ_FIRST(&pb->pool)) != NULL)
		pool_drop(e);
}

static unsigned
pool_max(const struct proxy *p)
{
	if (p->o.pool_max < 0)
		return 0;
	return p->o.pool_max == 0 ? POOL_MAX_DEFAULT : (unsigned)p->o.pool_max;
}

/* Keeps c->up for reuse (or frees it). */
static void
pool_put(struct pctx *c)
{
	struct proxy_base *pb = c->pb;
	struct bufferevent *bev = c->up;
	unsigned max = pool_max(c->p), ms = c->p->o.pool_idle_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	struct pool_ent *e, *oldest = NULL;
	size_t mine = 0;

	c->up = NULL;
	if (max == 0) {
		bufferevent_free(bev);
		return;
	}
	/* One identity keeps at most a quarter of the pool. */
	TAILQ_FOREACH(e, &pb->pool, link)
		if (strcmp(e->ident, c->pool_key) == 0) {
			mine++;
			oldest = e;
		}
	if (oldest != NULL && mine >= (max + 3) / 4)
		pool_drop(oldest);
	else if (pb->npool >= max && (e = TAILQ_LAST(&pb->pool, pool_list)) != NULL)
		pool_drop(e);
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		bufferevent_free(bev);
		return;
	}
	e->pb = pb;
	e->bev = bev;
	e->dst = c->dst;
	e->port = c->t.port;
	memcpy(e->ident, c->pool_key, sizeof(e->ident));
	bufferevent_setcb(bev, pool_on_read, NULL, pool_on_event, e);
	bufferevent_set_timeouts(bev, &tv, NULL);
	bufferevent_setwatermark(bev, EV_READ, 0, 0);
	if (bufferevent_enable(bev, EV_READ) != 0) {
		bufferevent_free(bev);
		free(e);
		return;
	}
	TAILQ_INSERT_HEAD(&pb->pool, e, link);
	pb->npool++;
}

/* An idle connection of the same identity to the address that was checked
 * for this request (never another address of the name), or NULL. */
static struct bufferevent *
pool_take(struct pctx *c)
{
	struct pool_ent *e, *next;

	for (e = TAILQ_FIRST(&c->pb->pool); e != NULL; e = next) {
		struct bufferevent *bev;
		evutil_socket_t fd;
		char b;
		ssize_t n;

		next = TAILQ_NEXT(e, link);
		if (e->port != c->t.port || e->dst.family != c->dst.family ||
		    memcmp(e->dst.b, c->dst.b, sizeof(e->dst.b)) != 0 ||
		    strcmp(e->ident, c->pool_key) != 0)
			continue;
		/* Closed or speaking since its last event: not usable. */
		fd = bufferevent_getfd(e->bev);
		n = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
		if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK) ||
		    evbuffer_get_length(bufferevent_get_input(e->bev)) > 0) {
			pool_drop(e);
			continue;
		}
		bev = e->bev;
		TAILQ_REMOVE(&c->pb->pool, e, link);
		c->pb->npool--;
		free(e);
		bufferevent_disable(bev, EV_READ);
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		bufferevent_set_timeouts(bev, NULL, NULL);
		return bev;
	}
	return NULL;
}

/* --- plain HTTP: forwarding one request and its response --- */

static void connect_upstream(struct pctx *c);
static void fwd_process(struct pctx *c);

static bool
idempotent(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
	    strcmp(method, "OPTIONS") == 0;
}

/* The response ended (ok: completely) or was cut short (err). */
static void
fwd_finish(struct pctx *c, bool ok, const char *err)
{
	struct relay_stats st;
	bool keep = ok && respframe_client_keep(c->rf);

	if (ok && c->up != NULL && respframe_upstream_keep(c->rf) && !c->up_eof &&
	    evbuffer_get_length(bufferevent_get_input(c->up)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(c->up)) == 0)
		pool_put(c);
	memset(&st, 0, sizeof(st));
	st.bytes_down = c->down_bytes;
	metric_series_add(c->p->s_up, c->req_bytes);
	metric_series_add(c->p->s_down, c->down_bytes);
	audit_close(c, &st, err);
	if (c->hc != NULL) {
		struct http_conn *hc = c->hc;

		c->hc = NULL;
		http_conn_give_back(hc, c->cli, keep, c->down_bytes);
		c->cli = NULL;
	}
	ctx_free(c);
}

/* Before anything went to the client: answer with an error instead. */
static void
fwd_fail_early(struct pctx *c, int r)
{
	char hp[PROXY_HOST_MAX + 16];

	hostport(c, hp, sizeof(hp));
	if (r == MOAT_ERR_CLOSED && c->reused && !c->got_bytes && !c->retried) {
		/* The pooled connection was closed under us (the origin's
		 * keep-alive timeout): once more on a fresh one, to the same
		 * checked address. Only idempotent requests are pooled. */
		bufferevent_free(c->up);
		c->up = NULL;
		respframe_free(c->rf);
		c->rf = NULL;
		evbuffer_drain(c->staged, evbuffer_get_length(c->staged));
		c->reused = false;
		c->retried = true;
		c->up_eof = false;
		c->down_bytes = 0;
		connect_upstream(c);
		return;
	}
	audit_close(c, NULL, r == MOAT_ERR_TIMEOUT ? "response timeout" :
	    r == MOAT_ERR_CLOSED ? "upstream closed without a complete answer" :
	    "invalid response");
	if (r == MOAT_ERR_TIMEOUT)
		respond_text(c, 504, "moat-proxy: %s (%s) did not answer in time",
		    hp, c->dst_text);
	else if (r == MOAT_ERR_CLOSED)
		respond_text(c, 502, "moat-proxy: %s (%s) closed the connection "
		    "without an answer", hp, c->dst_text);
	else
		respond_text(c, 502, "moat-proxy: invalid response from %s (%s)",
		    hp, c->dst_text);
}

static void
on_cli_write(struct bufferevent *bev, void *arg)
{
	struct pctx *c = arg;

	(void)bev;
	if (c->up != NULL && !c->up_eof)
		bufferevent_enable(c->up, EV_READ);
}

static void
on_cli_event(struct bufferevent *bev, short what, void *arg)
{
	struct pctx *c = arg;

	(void)bev;
	fwd_finish(c, false, (what & BEV_EVENT_TIMEOUT) ? "client timeout" :
	    "client went away");
}

/* The final head is in c->staged: lend the client connection. */
static int
fwd_lend(struct pctx *c)
{
	struct timeval tv = { c->p->o.idle_timeout_ms / 1000,
	    (c->p->o.idle_timeout_ms % 1000) * 1000 };

	c->cli = http_req_lend_conn(c->req, respframe_status(c->rf), &c->hc);
	c->req = NULL;
	if (c->cli == NULL) {
		fwd_finish(c, false, "client went away");
		return -1;
	}
	c->state = PS_STREAM;
	metric_series_gauge_add(c->p->s_tunnels, 1);
	c->tunnel_counted = true;
	bufferevent_setcb(c->cli, NULL, on_cli_write, on_cli_event, c);
	bufferevent_set_timeouts(c->cli, NULL, &tv);
	bufferevent_setwatermark(c->cli, EV_WRITE, FWD_HIGH / 2, 0);
	if (evbuffer_add_buffer(bufferevent_get_output(c->cli), c->staged) != 0 ||
	    bufferevent_enable(c->cli, EV_WRITE) != 0) {
		fwd_finish(c, false, "out of memory");
		return -1;
	}
	evbuffer_free(c->staged);
	c->staged = NULL;
	return 0;
}

/* Runs the response framing over what the upstream sent. */
static void
fwd_process(struct pctx *c)
{
	struct evbuffer *in = bufferevent_get_input(c->up), *out;
	size_t before = evbuffer_get_length(in);
	int r;

	if (before > 0)
		c->got_bytes = true;
	out = c->cli != NULL ? bufferevent_get_output(c->cli) : c->staged;
	r = respframe_feed(c->rf, in, out, c->up_eof);
	c->down_bytes += before - evbuffer_get_length(in);
	if (c->cli == NULL) {
		if (r != 0 && r != MOAT_ERR_AGAIN) {
			fwd_fail_early(c, r);
			return;
		}
		if (respframe_status(c->rf) == 0)
			return;		/* no final head yet */
		if (fwd_lend(c) != 0)
			return;
	}
	if (r == 0) {
		fwd_finish(c, true, NULL);
		return;
	}
	if (r != MOAT_ERR_AGAIN) {
		fwd_finish(c, false, r == MOAT_ERR_CLOSED ?
		    "upstream closed before the end of the answer" :
		    "invalid response");
		return;
	}
	/* Bounded: stop reading the upstream while the client lags. */
	if (evbuffer_get_length(bufferevent_get_output(c->cli)) >= FWD_HIGH)
		bufferevent_disable(c->up, EV_READ);
}

static void
on_fwd_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	fwd_process(arg);
}

static void
on_fwd_event(struct bufferevent *bev, short what, void *arg)
{
	struct pctx *c = arg;

	(void)bev;
	if ((what & BEV_EVENT_TIMEOUT) != 0) {
		if (c->cli == NULL)
			fwd_fail_early(c, MOAT_ERR_TIMEOUT);
		else
			fwd_finish(c, false, "upstream timeout");
		return;
	}
	if ((what & BEV_EVENT_EOF) == 0) {
		/* An error (a reset): nothing is complete after it. */
		c->up_eof = true;
		if (c->cli == NULL)
			fwd_fail_early(c, MOAT_ERR_CLOSED);
		else
			fwd_finish(c, false, "upstream connection failed");
		return;
	}
	c->up_eof = true;
	bufferevent_disable(c->up, EV_READ | EV_WRITE);
	fwd_process(c);
}

/* The upstream connection is ready (new or pooled): send the request and
 * wait for the answer. */
static void
send_request(struct pctx *c)
{
	struct respframe_opts fo;
	struct evbuffer *o = bufferevent_get_output(c->up);
	size_t before = evbuffer_get_length(o);
	unsigned ms = c->p->o.idle_timeout_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	memset(&fo, 0, sizeof(fo));
	fo.head_request = strcmp(c->method, "HEAD") == 0;
	fo.client_http10 = http_req_http_minor(c->req) == 0;
	fo.client_keep = http_req_keepalive(c->req);
	if (c->staged == NULL && (c->staged = evbuffer_new()) == NULL) {
		respond_text(c, 500, "moat-proxy: out of memory");
		return;
	}
	if (respframe_new(&c->rf, &fo) != 0 || build_request(c, o) != 0) {
		respond_text(c, 500, "moat-proxy: out of memory");
		return;
	}
	c->req_bytes = evbuffer_get_length(o) - before;
	c->state = PS_WAITING;
	bufferevent_setcb(c->up, on_fwd_read, NULL, on_fwd_event, c);
	bufferevent_set_timeouts(c->up, &tv, &tv);
	bufferevent_setwatermark(c->up, EV_READ, 0, 0);
	if (bufferevent_enable(c->up, EV_READ | EV_WRITE) != 0)
		respond_text(c, 500, "moat-proxy: cannot wait for the answer");
}

static void
on_up_event(struct bufferevent *bev, short what, void *arg)
{
	struct pctx *c = arg;
	struct bufferevent *client;
	const char *lv[1] = { NULL };
	char hp[PROXY_HOST_MAX + 16];
	static const char est[] = "HTTP/1.1 200 Connection established\r\n\r\n";
	int err;

	(void)bev;
	hostport(c, hp, sizeof(hp));
	if (what & BEV_EVENT_CONNECTED) {
		metric_observe(c->p->m_connect, lv,
		    (double)(now_ns() - c->phase_ns) / 1e9);
		bufferevent_set_timeouts(c->up, NULL, NULL);
		if (!c->t.connect) {
			send_request(c);
			return;
		}
		client = http_req_take_conn(c->req);
		c->req = NULL;
		if (client == NULL) {
			audit_close(c, NULL, "client went away");
			ctx_free(c);
			return;
		}
		if (evbuffer_add(bufferevent_get_output(client), est,
		    sizeof(est) - 1) != 0) {
			bufferevent_free(client);
			audit_close(c, NULL, "out of memory");
			ctx_free(c);
			return;
		}
		start_relay(c, client);
		return;
	}
	err = EVUTIL_SOCKET_ERROR();
	audit_close(c, NULL, (what & BEV_EVENT_TIMEOUT) ? "connect timeout" :
	    "connect failed");
	if (what & BEV_EVENT_TIMEOUT) {
		respond_text(c, 504, "moat-proxy: timed out connecting to %s (%s)",
		    hp, c->dst_text);
		return;
	}
	respond_text(c, 502, "moat-proxy: cannot connect to %s (%s): %s", hp,
	    c->dst_text, err != 0 ? evutil_socket_error_to_string(err) :
	    "connection failed");
}

static void
connect_upstream(struct pctx *c)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	struct timeval tv;
	unsigned ms = c->p->o.connect_timeout_ms;
	char hp[PROXY_HOST_MAX + 16];

	hostport(c, hp, sizeof(hp));
	c->state = PS_CONNECTING;
	c->phase_ns = now_ns();
	sl = addr_to_sockaddr(&c->dst, c->t.port, &ss);
	c->up = bufferevent_socket_new(c->pb->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (c->up == NULL || sl == 0) {
		respond_text(c, 500, "moat-proxy: out of memory");
		return;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	bufferevent_setcb(c->up, NULL, NULL, on_up_event, c);
	bufferevent_set_timeouts(c->up, NULL, &tv);
	if (bufferevent_socket_connect(c->up, (struct sockaddr *)&ss, (int)sl) != 0) {
		int err = EVUTIL_SOCKET_ERROR();

		audit_close(c, NULL, "connect failed");
		respond_text(c, 502, "moat-proxy: cannot connect to %s (%s): %s",
		    hp, c->dst_text, evutil_socket_error_to_string(err));
	}
}

/* The decision is final (allowed, possibly monitored): audit, connect. */
static void
allowed(struct pctx *c)
{
	char lbl[32];
	const char *type = c->monitored ? "egress.monitor" : "egress.allow";

	addr_format(&c->dst, c->dst_text, sizeof(c->dst_text));
	reason_label(c->d.rule, lbl, sizeof(lbl));
	count_decision(c->p, c->monitored ? "monitor" : "allow", lbl);
	if (audit_decision(c, type, "success", c->d.rule, c->d.reason, NULL) != 0) {
		/* Nothing leaves unaudited. */
		respond_text(c, 503, "moat-proxy: audit is unavailable; refusing");
		return;
	}
	log_debug(COMPONENT, c->monitored ? "allowed (monitor)" : "allowed",
	    LF_STR("client", c->client), LF_STR("method", c->method),
	    LF_STR("host", c->t.host), LF_INT("port", c->t.port),
	    LF_STR("address", c->dst_text), LF_STR("rule", c->d.rule));
	if (!c->t.connect && idempotent(c->method) &&
	    (c->up = pool_take(c)) != NULL) {
		c->reused = true;
		send_request(c);
		return;
	}
	connect_upstream(c);
}

static void
on_resolved(int err, const struct addr *addrs, size_t n, void *arg)
{
	struct pctx *c = arg;
	const char *lv[1] = { NULL };
	struct decision d;
	char hp[PROXY_HOST_MAX + 16];

	c->rr = NULL;
	metric_observe(c->p->m_dns, lv, (double)(now_ns() - c->phase_ns) / 1e9);
	hostport(c, hp, sizeof(hp));
	if (err != 0 || n == 0) {
		const char *why = err == MOAT_ERR_TIMEOUT ? "DNS timeout" :
		    err == MOAT_ERR_NOTFOUND || n == 0 ? "no such name" :
		    "DNS failure";

		count_decision(c->p, "error", "resolve");
		if (audit_decision(c, "egress.deny", "failure", "resolution",
		    why, NULL) != 0)
			log_warn(COMPONENT, "audit event dropped");
		if (err == MOAT_ERR_TIMEOUT)
			respond_text(c, 504, "moat-proxy: cannot resolve %s: %s",
			    c->t.host, why);
		else
			respond_text(c, 502, "moat-proxy: cannot resolve %s: %s",
			    c->t.host, why);
		return;
	}
	memset(&d, 0, sizeof(d));
	for (size_t i = 0; i < n; i++) {
		decide_after_dns(c->pols, c->npols, &c->dreq, &addrs[i], &d);
		if (d.verdict == DECIDE_ALLOW) {
			c->dst = addrs[i];
			c->monitored = c->monitored || d.monitored;
			c->d = d;
			allowed(c);
			return;
		}
	}
	/* None passed: report the last refusal, with its address. */
	c->d = d;
	addr_format(&addrs[n - 1], c->dst_text, sizeof(c->dst_text));
	deny(c, d.rule, d.rule, d.reason);
}

/* --- handlers --- */

static struct proxy_base *
base_of(struct proxy *p, struct event_base *base)
{
	for (size_t i = 0; i < p->nbases; i++)
		if (p->bases[i].base == base)
			return &p->bases[i];
	return NULL;
}

static void
handle_origin_form(struct http_request *req, void *arg)
{
	static const char msg[] = "moat-proxy: this is a proxy; send absolute-form "
	    "requests (GET http://host/path) or CONNECT host:port\n";

	(void)arg;
	http_respond(req, 400, "text/plain; charset=utf-8", msg, sizeof(msg) - 1);
}

static void
handle_proxy(struct http_request *req, void *arg)
{
	struct proxy *p = arg;
	struct proxy_base *pb = base_of(p, http_req_base(req));
	struct pctx *c;
	void *carg;
	const char *why = NULL, *hosthdr;
	bool connect = strcmp(http_req_method(req), "CONNECT") == 0;
	int r;

	if (pb == NULL) {
		http_respond(req, 500, "text/plain", "moat-proxy: no loop\n", 20);
		return;
	}
	if (p->o.max_conns > 0 && atomic_load(&p->active) >= p->o.max_conns) {
		static const char busy[] = "moat-proxy: too many connections\n";

		count_decision(p, "error", "conn_cap");
		http_respond(req, 503, "text/plain; charset=utf-8", busy,
		    sizeof(busy) - 1);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		http_respond(req, 500, "text/plain", "moat-proxy: out of memory\n", 26);
		return;
	}
	atomic_fetch_add(&p->active, 1);
	c->p = p;
	c->pb = pb;
	c->req = req;
	c->id = atomic_fetch_add(&p->next_id, 1) + 1;
	c->start_ns = now_ns();
	TAILQ_INSERT_TAIL(&pb->ctxs, c, link);
	snprintf(c->method, sizeof(c->method), "%s", http_req_method(req));
	snprintf(c->client, sizeof(c->client), "%s", http_req_client_addr(req));
	if (p->o.ident_get != NULL && (carg = http_req_conn_arg(req)) != NULL) {
		r = p->o.ident_get(p->o.ident_arg, carg, &c->ident);
		if (r == MOAT_ERR_AGAIN) {
			count_decision(p, "error", "conn_cap");
			respond_text(c, 503, "moat-proxy: too many connections "
			    "from this workspace");
			return;
		}
		if (r != 0) {
			respond_text(c, 403, "moat-proxy: this workspace is not "
			    "running");
			return;
		}
		c->has_ident = true;
		for (size_t i = 0; i < c->ident.npols && i < 2; i++)
			c->pols[c->npols++] = json_incref(c->ident.pols[i]);
	} else {
		pthread_mutex_lock(&p->mu);
		if (p->policy != NULL)
			c->pols[c->npols++] = json_incref(p->policy);
		pthread_mutex_unlock(&p->mu);
		if (c->npols == 0) {
			respond_text(c, 503, "moat-proxy: no policy loaded");
			return;
		}
	}

	if (c->has_ident)
		snprintf(c->pool_key, sizeof(c->pool_key), "w:%s",
		    c->ident.workspace);
	else
		snprintf(c->pool_key, sizeof(c->pool_key), "a:%s", c->client);
	r = proxy_parse_target(connect, http_req_target(req), &c->t, &why);
	if (r == MOAT_ERR_NOMEM) {
		respond_text(c, 500, "moat-proxy: out of memory");
		return;
	}
	if (r != 0) {
		bad_request(c, why);
		return;
	}
	if (!connect) {
		char np[URL_MAX];
		size_t ul;

		hosthdr = http_req_header(req, "host");
		if (hosthdr != NULL &&
		    proxy_check_host_header(&c->t, hosthdr, &why) != 0) {
			bad_request(c, why);
			return;
		}
		if (http_req_header(req, "upgrade") != NULL) {
			deny(c, "upgrade", "upgrade",
			    "Upgrade is refused in plain-HTTP forwarding; use CONNECT");
			return;
		}
		if (decide_normalize_path(c->t.path, np, sizeof(np)) != 0) {
			bad_request(c, "ambiguous or invalid path");
			return;
		}
		ul = strlen(c->t.host) + strlen(np) + 32;
		if ((c->npath = strdup(np)) == NULL ||
		    (c->url = malloc(ul)) == NULL) {
			respond_text(c, 500, "moat-proxy: out of memory");
			return;
		}
		if (c->t.port != 80)
			snprintf(c->url, ul, c->t.is_literal &&
			    c->t.lit.family == AF_INET6 ? "http://[%s]:%u%s" :
			    "http://%s:%u%s", c->t.host, (unsigned)c->t.port, np);
		else
			snprintf(c->url, ul, c->t.is_literal &&
			    c->t.lit.family == AF_INET6 ? "http://[%s]%s" :
			    "http://%s%s", c->t.host, np);
	}
	c->dreq.host = c->t.host;
	c->dreq.is_literal = c->t.is_literal;
	c->dreq.lit = c->t.lit;
	c->dreq.port = c->t.port;
	c->dreq.connect = connect;
	c->dreq.url = c->url;
	if (c->npols == 0) {
		/* A workspace whose policy is unknown: nothing leaves. */
		if (c->t.is_literal)
			addr_format(&c->t.lit, c->dst_text, sizeof(c->dst_text));
		deny(c, "no_policy", "no policy", c->ident.deny_reason[0] != '\0' ?
		    c->ident.deny_reason : "the workspace has no policy");
		return;
	}
	decide_before_dns(c->pols, c->npols, &c->dreq, &c->d);
	c->monitored = c->d.monitored;
	switch (c->d.verdict) {
	case DECIDE_DENY:
		if (c->t.is_literal)
			addr_format(&c->t.lit, c->dst_text, sizeof(c->dst_text));
		deny(c, c->d.rule, c->d.rule, c->d.reason);
		return;
	case DECIDE_ALLOW:
		if (!c->t.is_literal) {
			respond_text(c, 500, "moat-proxy: internal error");
			return;
		}
		c->dst = c->t.lit;
		allowed(c);
		return;
	case DECIDE_RESOLVE:
		break;
	}
	c->state = PS_RESOLVING;
	c->phase_ns = now_ns();
	if ((r = resolve_start(pb->res, c->t.host, on_resolved, c, &c->rr)) != 0) {
		c->rr = NULL;
		respond_text(c, 502, "moat-proxy: cannot resolve %s: %s",
		    c->t.host, moat_strerror(r));
		return;
	}
}

/* --- life cycle --- */

static int64_t
gauge_active(void *arg)
{
	return (int64_t)proxy_active(arg);
}

int
proxy_new(struct proxy **out, const struct proxy_opts *o)
{
	static const char *const l_dec[] = { "result", "reason", NULL };
	static const char *const l_dir[] = { "direction", NULL };
	static const double lat[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
	    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
	struct proxy *p;
	int r = MOAT_ERR_NOMEM;

	*out = NULL;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return MOAT_ERR_NOMEM;
	p->o = *o;
	if (p->o.connect_timeout_ms == 0)
		p->o.connect_timeout_ms = 10000;
	if (p->o.idle_timeout_ms == 0)
		p->o.idle_timeout_ms = 300000;
	if (p->o.dns_timeout_ms == 0)
		p->o.dns_timeout_ms = 5000;
	if (p->o.pool_idle_ms == 0)
		p->o.pool_idle_ms = POOL_IDLE_DEFAULT_MS;
	pthread_mutex_init(&p->mu, NULL);
	if (o->metrics != NULL) {
		const char *lv[1];

		p->m_decisions = metrics_counter(o->metrics,
		    "moat_proxy_decisions_total",
		    "Egress decisions by result and reason.", l_dec);
		p->m_tunnels = metrics_gauge(o->metrics,
		    "moat_proxy_active_tunnels",
		    "CONNECT tunnels and forwarded responses being relayed.", NULL);
		p->m_bytes = metrics_counter(o->metrics, "moat_proxy_bytes_total",
		    "Bytes relayed, up (client to destination) and down.", l_dir);
		p->m_dns = metrics_histogram(o->metrics, "moat_proxy_dns_seconds",
		    "DNS lookup latency.", NULL, lat, sizeof(lat) / sizeof(lat[0]));
		p->m_connect = metrics_histogram(o->metrics,
		    "moat_proxy_connect_seconds", "Upstream connect latency.",
		    NULL, lat, sizeof(lat) / sizeof(lat[0]));
		if (p->m_decisions == NULL || p->m_tunnels == NULL ||
		    p->m_bytes == NULL || p->m_dns == NULL || p->m_connect == NULL)
			goto fail;
		if (metrics_gauge_fn(o->metrics, "moat_proxy_requests_in_flight",
		    "Proxied requests and tunnels in flight.", gauge_active, p) != 0)
			goto fail;
		p->s_tunnels = metric_series_get(p->m_tunnels, NULL);
		lv[0] = "up";
		p->s_up = metric_series_get(p->m_bytes, lv);
		lv[0] = "down";
		p->s_down = metric_series_get(p->m_bytes, lv);
	}
	*out = p;
	return 0;
fail:
	pthread_mutex_destroy(&p->mu);
	free(p);
	return r;
}

int
proxy_add_base(struct proxy *p, struct event_base *base)
{
	struct proxy_base *pb;
	struct resolver_opts ro;
	int r;

	if (p->nbases == PROXY_MAX_BASES)
		return MOAT_ERR_TOOBIG;
	pb = &p->bases[p->nbases];
	memset(pb, 0, sizeof(*pb));
	pb->p = p;
	pb->base = base;
	TAILQ_INIT(&pb->ctxs);
	TAILQ_INIT(&pb->pool);
	memset(&ro, 0, sizeof(ro));
	ro.nameserver = p->o.nameserver;
	ro.hosts_file = p->o.hosts_file;
	ro.timeout_ms = p->o.dns_timeout_ms;
	if ((r = resolver_new(&pb->res, base, &ro)) != 0)
		return r;
	p->nbases++;
	return 0;
}

int
proxy_routes(struct proxy *p, struct http_server *srv)
{
	int r;

	if ((r = http_server_route(srv, "*", "*", handle_proxy, p)) != 0 ||
	    (r = http_server_route(srv, "*", "/", handle_origin_form, p)) != 0 ||
	    (r = http_server_route(srv, "*", "/*", handle_origin_form, p)) != 0)
		return r;
	return 0;
}

void
proxy_set_policy(struct proxy *p, json_t *policy)
{
	json_t *old;

	json_incref(policy);
	pthread_mutex_lock(&p->mu);
	old = p->policy;
	p->policy = policy;
	pthread_mutex_unlock(&p->mu);
	json_decref(old);
}

int
proxy_load_policy_file(const char *path, json_t **out, char *err,
    size_t errlen)
{
	FILE *f = NULL;
	char *data = NULL, jpath[256], jerr[256];
	size_t n = 0;
	json_t *doc = NULL;
	int r = MOAT_ERR_IO;

	*out = NULL;
	if ((f = fopen(path, "re")) == NULL) {
		r = moat_err_from_errno(errno);
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((data = malloc(POLICY_FILE_MAX + 1)) == NULL) {
		r = MOAT_ERR_NOMEM;
		snprintf(err, errlen, "%s: out of memory", path);
		goto out;
	}
	n = fread(data, 1, POLICY_FILE_MAX + 1, f);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error", path);
		goto out;
	}
	if (n > POLICY_FILE_MAX) {
		r = MOAT_ERR_TOOBIG;
		snprintf(err, errlen, "%s: larger than 1 MiB", path);
		goto out;
	}
	data[n] = '\0';
	if ((r = policy_yaml_to_json(data, n, &doc, jerr, sizeof(jerr))) != 0) {
		snprintf(err, errlen, "%s: %s", path, jerr);
		goto out;
	}
	jpath[0] = jerr[0] = '\0';
	if ((r = policy_normalize(doc, out, jpath, sizeof(jpath), jerr,
	    sizeof(jerr))) != 0) {
		snprintf(err, errlen, "%s: %s%s%s", path, jpath,
		    jpath[0] != '\0' ? ": " : "", jerr);
		goto out;
	}
	r = 0;
out:
	json_decref(doc);
	free(data);
	if (f != NULL)
		fclose(f);
	return r;
}

uint64_t
proxy_active(const struct proxy *p)
{
	return atomic_load(&((struct proxy *)p)->active);
}

/* Ends whatever is in flight on this base. Its own thread (or no loop). */
static void
close_base(struct proxy_base *pb)
{
	struct pctx *c;

	while ((c = TAILQ_FIRST(&pb->ctxs)) != NULL) {
		if (c->relay != NULL) {
			relay_abort(c->relay);	/* frees c */
		} else {
			audit_close(c, NULL, "proxy shutting down");
			respond_text(c, 503, "moat-proxy: shutting down");
		}
	}
	pool_flush(pb);
}

static void
close_base_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	close_base(arg);
}

void
proxy_shutdown(struct proxy *p)
{
	struct timeval zero = { 0, 0 };

	if (p == NULL)
		return;
	for (size_t i = 0; i < p->nbases; i++)
		if (event_base_once(p->bases[i].base, -1, EV_TIMEOUT,
		    close_base_cb, &p->bases[i], &zero) != 0)
			log_warn(COMPONENT, "cannot schedule shutdown on a loop");
}

void
proxy_free(struct proxy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->nbases; i++) {
		close_base(&p->bases[i]);
		resolver_free(p->bases[i].res);
	}
	json_decref(p->policy);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
