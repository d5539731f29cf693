/*
 * http.h - the HTTP/1.1 server core shared by moatd and moat-proxy.
 *
 * Built on libevent bufferevents (plain or TLS, see tls.h) and http-parser.
 * One struct http_server holds the routing table, limits and hooks; it can
 * listen on several addresses and on several event bases (one per loop
 * thread, with SO_REUSEPORT), and is only read after the first listen, so
 * threads share it without locks.
 *
 * Per connection: keep-alive; pipelined requests are parsed one at a time
 * (the next is not read until the current one is answered); limits on the
 * request line, header bytes and count, and body size; a header timeout
 * (slowloris), a body timeout and an idle timeout between requests; chunked
 * request bodies; every request produces one access-log line (component
 * "access") and one observer call (metrics).
 *
 * Client address: optionally a listener expects the PROXY protocol (v1 or
 * v2) from a list of balancer networks. Such a listener refuses a
 * connection without a header, and refuses a header from any peer outside
 * the list. X-Forwarded-For is believed only when the connection's verified
 * client certificate carries one of the listener's trusted forwarder names.
 * http_req_client_addr() gives the resulting address.
 *
 * Errors are answered in the shape of DESIGN.md section 3:
 *   {"error": {"code": "...", "message": "..."}}
 * Malformed requests get 400, oversized ones 413/414/431, timeouts 408;
 * after such an error the connection is closed.
 *
 * Threading: a request and its connection belong to the loop thread that
 * accepted it; every http_req_* call must be made on that thread.
 */
#ifndef MOAT_HTTP_H
#define MOAT_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "errors.h"
#include "tls.h"

struct http_server;
struct http_request;

struct http_limits {
	size_t max_request_line;	/* method + target + version; 8 KiB */
	size_t max_header_bytes;	/* all header lines; 16 KiB */
	size_t max_headers;		/* header count; 100 */
	size_t max_body;		/* decoded body; 1 MiB */
	unsigned header_timeout_ms;	/* first byte to end of head; 10 s */
	unsigned body_timeout_ms;	/* end of head to end of body; 30 s */
	unsigned idle_timeout_ms;	/* between keep-alive requests; 60 s */
	unsigned write_timeout_ms;	/* response stalled; 30 s */
	size_t max_conns;		/* per server, all listeners; 10000 */
};

/* Fills l with the defaults shown above. */
void http_limits_default(struct http_limits *l);

struct http_listener_opts {
	const char *addr;		/* "127.0.0.1:8443", "[::1]:8443" */
	struct tls_server *tls;		/* borrowed; NULL for plain HTTP */
	/* NULL-terminated CIDR list ("10.0.0.0/8", "::1/128"). When set, every
	 * connection must start with a PROXY v1 or v2 header, and only peers
	 * inside these networks may send one. Copied. */
	const char *const *proxy_from;
	/* NULL-terminated client certificate names whose X-Forwarded-For is
	 * believed (the ingress). NULL: never believed. Copied. */
	const char *const *xff_from_names;
	bool reuseport;			/* SO_REUSEPORT, for one listener per thread */
};

typedef void (*http_handler_fn)(struct http_request *req, void *arg);

/* Called once per finished request (after the response was queued, or when
 * the connection died), on the loop thread. route is the matched pattern,
 * or "" when none matched. Keep it cheap: it runs on every request. */
typedef void (*http_observer_fn)(const struct http_request *req,
    const char *route, int status, uint64_t duration_ns, void *arg);

/* limits NULL: the defaults; a zero field also means its default. */
int http_server_new(struct http_server **out, const struct http_limits *limits)
    MOAT_MUST_CHECK;

/* Adds a route. method is "GET", "POST", ... or "*"; pattern is an absolute
 * path whose segments may be "{name}" (one segment, read back with
 * http_req_param) or end in a "*" segment (any rest, at least one
 * segment). Exact segments win over parameters, which win over "*". A path
 * that matches a pattern only with another method gets 405 and an Allow
 * header; HEAD falls back to a GET route. The pattern "*" alone receives
 * requests whose target is not in origin form (CONNECT, absolute URLs);
 * without such a route they get 400. MOAT_ERR_EXISTS for a duplicate.
 * Routes must be added before listening (MOAT_ERR_INVAL after). */
int http_server_route(struct http_server *srv, const char *method,
    const char *pattern, http_handler_fn fn, void *arg) MOAT_MUST_CHECK;

/* Per-request observer (metrics). */
void http_server_set_observer(struct http_server *srv, http_observer_fn fn,
    void *arg);

/* Counters for /metrics (all listeners, all threads). */
uint64_t http_server_open_conns(const struct http_server *srv);

/* Component name used in access-log lines; default "access". NULL turns
 * the access log off. */
void http_server_set_access_log(struct http_server *srv, const char *component);

/* Binds and starts accepting on base. May be called several times (other
 * addresses, or the same address on other bases with reuseport). */
int http_server_listen(struct http_server *srv, struct event_base *base,
    const struct http_listener_opts *opts) MOAT_MUST_CHECK;

/* The port a listener bound to (the first one on that address), for ":0". */
int http_server_bound_port(const struct http_server *srv, int index);

/* --- Adopted connections: stream sockets the caller accepted itself (a
 * unix socket whose peer it checked with SO_PEERCRED, say) served like
 * those of a listener, in plain HTTP. --- */

struct http_adopt_opts {
	const char *client;		/* shown as the client address (and
					 * the peer); copied, at most 63 bytes */
	void *conn_arg;			/* read back by http_req_conn_arg() */
	/* Called once, on base's thread, when the core lets go of the
	 * connection (closed, or taken by http_req_take_conn). */
	void (*on_close)(void *conn_arg);
};

/* Prepares base for adopted connections. Before serving, like listen. */
int http_server_attach(struct http_server *srv, struct event_base *base)
    MOAT_MUST_CHECK;

/* Serves fd (connected; made non-blocking here) on base as if a listener
 * had accepted it. Call on base's thread. Takes fd: on failure it is
 * closed and on_close is not called (MOAT_ERR_AGAIN at max_conns,
 * MOAT_ERR_CLOSED after shutdown, MOAT_ERR_INVAL when base was not
 * attached). */
int http_server_adopt(struct http_server *srv, struct event_base *base,
    int fd, const struct http_adopt_opts *o) MOAT_MUST_CHECK;

/* The conn_arg of an adopted connection's request, or NULL (listener
 * connections, or a connection already closed). */
void *http_req_conn_arg(const struct http_request *req);

/* Stops accepting new connections; open connections finish their current
 * request and close. Safe to call on any thread once. */
void http_server_shutdown(struct http_server *srv);

/* Frees the server; every base it listened on must have stopped. */
void http_server_free(struct http_server *srv);

/* --- Request accessors (borrowed strings, valid until the response). --- */
const char *http_req_method(const struct http_request *req);
const char *http_req_path(const struct http_request *req);   /* no query */
const char *http_req_query(const struct http_request *req);  /* "" if none */
const char *http_req_target(const struct http_request *req); /* as sent */
/* First value of a header (case-insensitive name), or NULL. */
const char *http_req_header(const struct http_request *req, const char *name);
/* The i-th header field in the order received (0-based): false past the
 * last. name and value borrowed like the others (moat-proxy forwards them). */
bool http_req_header_at(const struct http_request *req, size_t i,
    const char **name, const char **value);
/* Value of a "{name}" route segment, percent-decoded, or NULL. */
const char *http_req_param(const struct http_request *req, const char *name);
/* Decoded body (chunked bodies already joined); *len may be 0. */
const uint8_t *http_req_body(const struct http_request *req, size_t *len);
/* The client as the platform sees it: the PROXY protocol source, a trusted
 * X-Forwarded-For, or the TCP peer. */
const char *http_req_client_addr(const struct http_request *req);
/* The TCP peer, whatever the headers say. */
const char *http_req_peer_addr(const struct http_request *req);
/* The verified client certificate's name, or NULL. */
const char *http_req_tls_peer_name(const struct http_request *req);
/* The event base of the loop thread that owns this request. */
struct event_base *http_req_base(const struct http_request *req);

/* --- Responding: exactly one respond call per request. It may come later,
 * from the owning loop thread (after worker-pool work). If the client went
 * away first, the respond call just frees the request. --- */

/* Adds a response header (copied). Must precede the respond call. */
int http_resp_header(struct http_request *req, const char *name,
    const char *value) MOAT_MUST_CHECK;
/* Sends status with body (copied). content_type may be NULL when len==0. */
void http_respond(struct http_request *req, int status,
    const char *content_type, const void *body, size_t len);
/* Sends body as application/json (borrowed; caller keeps its reference). */
void http_respond_json(struct http_request *req, int status, const json_t *body);
/* Sends the error shape of DESIGN.md section 3. */
void http_respond_error(struct http_request *req, int status,
    const char *code, const char *message);

/* Takes the connection away from the HTTP core after Upgrade or CONNECT:
 * returns its bufferevent (plain or TLS; caller owns and frees it) with any
 * bytes the client sent after the request head still in its input buffer,
 * and frees the request. The caller writes the response (101, 200) itself.
 * Callbacks, timeouts and watermarks of the bufferevent are cleared. NULL
 * (and the request freed) when the client already went away. */
struct bufferevent *http_req_take_conn(struct http_request *req);

/* Whether the core would keep the connection open after answering this
 * request: the client asked for keep-alive (HTTP/1.1 without "Connection:
 * close", HTTP/1.0 with "Connection: keep-alive"), no error forces a
 * close, the client has not closed its side, the server is not shutting
 * down. */
bool http_req_keepalive(const struct http_request *req);

/* The request's HTTP minor version: 0 (HTTP/1.0) or 1. */
int http_req_http_minor(const struct http_request *req);

/* --- Lending a connection for an answer the handler streams itself
 * (moat-proxy forwarding an upstream response), then taking it back for the
 * next request. --- */

struct http_conn;

/* Like http_req_take_conn, but the core keeps the connection: it stays
 * counted against max_conns, keeps its addresses, TLS peer name and
 * conn_arg, and on_close does not run. The bufferevent returned (callbacks,
 * timeouts and watermarks cleared, reading disabled so that a pipelined
 * next request is not read) is the caller's until it calls
 * http_conn_give_back() exactly once, on the connection's thread. The
 * caller writes the whole answer (head included) itself and must not use
 * the request after this call. status: the answer's code for the access
 * log and the observer. NULL, with *conn NULL: when the client already
 * went away (the request is freed), or when the connection is not waiting
 * for this request's answer (a caller's bug; the request stays the
 * connection's, freed with it). */
struct bufferevent *http_req_lend_conn(struct http_request *req, int status,
    struct http_conn **conn);

/* Ends a lent answer. bev: the bufferevent lent (its output may still hold
 * the end of the answer; bytes the client sent after the request are still
 * in its input or socket), or NULL when the caller freed it. keep true: the
 * core reads the next request from it (only when http_req_keepalive held
 * and the server is not shutting down; the answer's head must have said
 * so); false: it flushes the output, shuts the write side and closes the
 * connection. bytes: the answer's size for the access log. Every lent
 * connection must be given back before http_server_free. */
void http_conn_give_back(struct http_conn *conn, struct bufferevent *bev,
    bool keep, uint64_t bytes);

/* Reason phrase for a status code ("Not Found"). */
const char *http_status_text(int status);

#endif
