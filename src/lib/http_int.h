/*
 * http_int.h - private layout of the HTTP core (see http.h), shared by its
 * files only:
 *   http.c        server, listeners, PROXY phase, connections, responses
 *   http_parse.c  request head scanner, http-parser glue, request state
 *                 machine (also driven without sockets by the fuzz target)
 *   http_route.c  routing table and request path checks
 * Nothing outside these files may include it, except their tests (the fuzz
 * target and test_http.c).
 */
#ifndef MOAT_HTTP_INT_H
#define MOAT_HTTP_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <http_parser.h>

#include "buf.h"
#include "http.h"

#define HTTP_MAX_SEGMENTS 256	/* path segments of one request */
#define HTTP_MAX_PARAMS 16	/* "{name}" segments of one pattern */
#define HTTP_ADDR_MAX 64	/* a printed IPv4/IPv6 address */
#define HTTP_NAME_MAX 256	/* a TLS peer name */
#define HTTP_IN_HIGH (64 * 1024)	/* read watermark while not parsing */
#define HTTP_OUT_HIGH (256 * 1024)	/* stop parsing while this much waits */
#define HTTP_LINGER_MS 2000	/* drain after the last response */
#define HTTP_LINGER_BYTES (256 * 1024)

/* One (method, handler) at the end of a pattern. */
struct http_endpoint {
	struct http_endpoint *next;
	char *method;			/* "GET", ... or "*"; owned */
	char *pattern;			/* as registered; owned */
	http_handler_fn fn;
	void *arg;
	char *params[HTTP_MAX_PARAMS];	/* "{name}" names in order; owned */
	size_t nparams;
};

/* A node of the routing trie: one path segment. */
struct http_rnode {
	char *seg;			/* literal segment; NULL for root/param */
	size_t seg_len;
	struct http_rnode *next;	/* sibling in the parent's exact list */
	struct http_rnode *exact;	/* literal children */
	struct http_rnode *param;	/* the "{name}" child */
	struct http_endpoint *eps;	/* patterns ending here */
	struct http_endpoint *wild;	/* patterns ending here in a "*" segment */
};

struct http_cidr {
	int family;			/* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned bits;
};

/* Per event base: the connections it owns (touched only on its thread). */
struct http_conn;
struct http_base_ctx {
	struct http_base_ctx *next;
	struct http_server *srv;
	struct event_base *base;
	const struct timeval *tv_header, *tv_body, *tv_idle;
	struct timeval tv_write;
	TAILQ_HEAD(http_conn_list, http_conn) conns;
	struct http_listener *adopt;	/* pseudo-listener of adopted
					 * connections (http_server_attach) */
};

struct http_listener {
	struct http_listener *next;
	struct http_server *srv;
	struct http_base_ctx *ctx;
	struct evconnlistener *lev;
	struct event *retry_ev;		/* re-enables accepting after EMFILE */
	struct tls_server *tls;		/* borrowed */
	struct http_cidr *proxy_from;	/* owned; NULL when no PROXY */
	size_t nproxy;
	char **xff_names;		/* owned, NULL-terminated; or NULL */
	char *addr;			/* as given to listen; owned */
	bool reuseport;
	int port;
};

struct http_server {
	struct http_limits lim;
	struct http_rnode root;
	struct http_endpoint *any_target;	/* pattern "*" */
	http_observer_fn observer;
	void *observer_arg;
	char *access_component;		/* owned; NULL: no access log */
	struct http_listener *listeners;
	struct http_base_ctx *ctxs;
	_Atomic uint64_t open_conns;
	atomic_bool shutting_down;
};

/* Head scanner state (see http__scan). */
struct http_scan {
	int state;
	size_t line_len;		/* request line bytes so far */
	unsigned spaces;		/* separators seen in the request line */
	unsigned empty_lines;		/* CRLFs before the request line */
	bool after_space;
	size_t hdr_bytes;		/* header section bytes so far */
	size_t nhdrs;
};

/* A header field: offsets into the request's head buffer, where name and
 * value are NUL-terminated once the head is complete (http__hdr_name,
 * http__hdr_value). Offsets keep the per-connection table small. */
struct http_hdr {
	uint32_t name_off, name_len, value_off, value_len;
	bool has_value;
};

enum http_conn_state {
	HC_PROXY,	/* waiting for the PROXY header */
	HC_HEAD,	/* reading a request head */
	HC_BODY,	/* reading a request body */
	HC_PENDING,	/* handler has the request */
	HC_CLOSING,	/* last response queued; flush, then linger */
	HC_LINGER,	/* write side shut; discarding input until EOF */
	HC_LENT		/* bufferevent lent to the handler (http_req_lend_conn) */
};

struct http_request {
	struct http_server *srv;
	struct http_conn *conn;		/* NULL once orphaned */
	struct event_base *base;
	http_parser parser;

	/* Head as received; names, values and target are NUL-terminated
	 * in place once the head is complete. */
	struct buf head;
	struct http_scan scan;
	struct http_hdr *hdrs;		/* owned, max_headers entries */
	size_t nhdrs;
	int cb_last;			/* 1: field, 2: value, 0: none */
	size_t url_off, url_len;
	bool have_url;

	bool started;			/* first byte of this request seen */
	bool headers_done;
	bool complete;			/* message complete */
	bool keepalive;
	bool close_after;		/* core error: close after the answer */
	bool is_head;
	bool expect_continue;
	bool has_body;
	int err_status;			/* set by callbacks before failing */
	const char *err_code, *err_msg;

	const char *method, *target, *path, *query;
	struct buf strs;		/* path copy and decoded params */
	struct buf body;		/* decoded body */
	const struct http_endpoint *ep;
	int route_status;		/* 0, 404 or 405 when ep is NULL */
	const char *params[HTTP_MAX_PARAMS];
	size_t param_seg[HTTP_MAX_PARAMS];

	struct buf resp_hdrs;		/* extra response header lines */
	bool resp_cache_control;	/* handler set Cache-Control */
	uint64_t start_ns;

	/* Per connection, kept here so an orphaned request still has them. */
	char peer[HTTP_ADDR_MAX];	/* TCP peer */
	char conn_client[HTTP_ADDR_MAX];	/* PROXY source or peer */
	char xff_client[HTTP_ADDR_MAX];
	const char *client;		/* conn_client or xff_client */
	char tls_name[HTTP_NAME_MAX];
	bool has_tls_name;
	bool tls;
	bool xff_trusted;
	bool orphaned;
};

struct http_conn {
	TAILQ_ENTRY(http_conn) link;
	struct http_server *srv;
	struct http_listener *lst;	/* NULL without sockets (fuzzing) */
	struct http_base_ctx *ctx;	/* NULL without sockets */
	struct event_base *base;
	evutil_socket_t fd;
	struct bufferevent *bev;	/* NULL before the PROXY header */
	struct evbuffer *in, *out;	/* the bufferevent's, or standalone */
	struct http_request *req;	/* owned */
	struct event *timer;
	struct event *resume_ev;
	struct event *raw_ev;		/* PROXY read, then linger */
	struct buf pp;			/* PROXY header bytes consumed so far */
	enum http_conn_state state;
	bool in_dispatch;
	bool taken;
	bool peer_eof;
	bool write_blocked;
	bool first;			/* no request finished yet */
	bool counted;			/* included in srv->open_conns */
	size_t linger_bytes;
	int lent_status;		/* HC_LENT: the answer's status */
	void *conn_arg;			/* adopted: http_req_conn_arg() */
	void (*on_close)(void *conn_arg);	/* adopted: at free */
};

static inline const char *
http__hdr_name(const struct http_request *req, const struct http_hdr *h)
{
	return (const char *)req->head.data + h->name_off;
}

static inline const char *
http__hdr_value(const struct http_request *req, const struct http_hdr *h)
{
	return h->has_value ? (const char *)req->head.data + h->value_off : "";
}

/* http_parse.c */
int http__scan(struct http_scan *s, const struct http_limits *lim,
    const uint8_t *p, size_t n, size_t *used);
/* Runs the request state machine over conn->in. Returns 0 while the
 * connection lives, -1 when it was freed (the caller must not touch it). */
int http__conn_process(struct http_conn *c);
int http__req_init(struct http_request *req, struct http_server *srv);
void http__req_reset(struct http_request *req);
void http__req_free(struct http_request *req);

/* http.c */
void http__conn_arm(struct http_conn *c, int which);
#define HTTP_TIMER_NONE 0
#define HTTP_TIMER_HEADER 1
#define HTTP_TIMER_BODY 2
#define HTTP_TIMER_IDLE 3
void http__conn_free(struct http_conn *c);
void http__conn_close_after_flush(struct http_conn *c);
void http__core_error(struct http_conn *c, int status, const char *code,
    const char *msg);
uint64_t http__now_ns(void);
int http__set_client(struct http_request *req);

/* http_route.c */
int http__route_add(struct http_server *srv, const char *method,
    const char *pattern, http_handler_fn fn, void *arg);
void http__route_free(struct http_server *srv);
/* Splits and checks the path (the first path_len bytes of req->target, or
 * "" for targets not in origin form), sets req->path and finds the
 * endpoint: 0 with req->ep set,
 * or with req->ep NULL and req->route_status 404/405; or an HTTP status
 * (400) when the path is not acceptable. */
int http__route_match(struct http_server *srv, struct http_request *req,
    size_t path_len);
/* Appends "Allow: ...\r\n" for the current path to req->resp_hdrs. */
int http__route_allow(struct http_server *srv, struct http_request *req);

/* Test entry point: runs the same scanning, parsing, validation, routing
 * and response code the server uses over data, without sockets, feeding
 * it chunk bytes at a time (0: all at once). Handlers must answer
 * synchronously. Returns 0, or -1 when out of memory. */
int http__parse_for_fuzz(struct http_server *srv, const uint8_t *data,
    size_t len, size_t chunk);

#endif
