/*
 * respframe.h - the framing of an upstream's HTTP/1.x response as
 * moat-proxy forwards it to its client (plain-HTTP forwarding), without
 * sockets: the upstream's bytes go in, the client's bytes come out.
 *
 * Heads: each is checked strictly (status line "HTTP/1.0" or "HTTP/1.1",
 * three digits; field names are tokens; no obsolete line folding, no
 * control characters, no bare LF; at most one Content-Length, digits only;
 * at most one Transfer-Encoding, exactly "chunked"; not both) and by
 * http-parser, then rewritten: hop-by-hop fields (Connection and the fields
 * it names, Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade,
 * Proxy-Authenticate, Proxy-Authorization), Content-Length and
 * Transfer-Encoding are removed, and the proxy writes its own framing and
 * Connection fields. Interim 1xx heads are passed on (dropped for an
 * HTTP/1.0 client; at most 16); 101 is refused (never asked for).
 *
 * Bodies: none after HEAD, 1xx, 204 and 304, whatever the head says;
 * Content-Length bodies pass unchanged and are counted to their end;
 * chunked bodies are decoded by http-parser and encoded again (chunk
 * extensions and trailers dropped), so the client sees exactly the framing
 * the proxy parsed (decoded and delimited by the close for an HTTP/1.0
 * client); a body with neither is delimited by the upstream's close.
 *
 * The client connection may carry a next request only when the response's
 * length was known (the head then says so); otherwise its head says
 * "Connection: close". Bytes after the end of the response stay in the
 * input: the caller must then not reuse the upstream connection.
 */
#ifndef MOAT_PROXY_RESPFRAME_H
#define MOAT_PROXY_RESPFRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/buffer.h>

#include "errors.h"

struct respframe;

struct respframe_opts {
	bool head_request;	/* the request was HEAD: no body */
	bool client_http10;	/* the client spoke HTTP/1.0 */
	bool client_keep;	/* the client's connection may be kept */
	size_t max_head;	/* one head, bytes; 0: 64 KiB */
};

int respframe_new(struct respframe **out, const struct respframe_opts *o)
    MOAT_MUST_CHECK;
void respframe_free(struct respframe *f);

/* Consumes what it can of in (drained as consumed) and appends the
 * client's bytes to out. eof: in holds the last bytes the upstream will
 * send. Returns MOAT_ERR_AGAIN (more input needed), 0 (the final response
 * is complete; what is left in in came after it), MOAT_ERR_PARSE (a
 * malformed or refused head or chunked body), MOAT_ERR_TOOBIG (a head over
 * max_head), MOAT_ERR_CLOSED (eof before the response was complete) or
 * MOAT_ERR_NOMEM. Errors are final: later calls return the same. */
int respframe_feed(struct respframe *f, struct evbuffer *in,
    struct evbuffer *out, bool eof) MOAT_MUST_CHECK;

/* A head (interim or final) went to out. */
bool respframe_head_sent(const struct respframe *f);

/* The final response's status, 0 before its head. */
int respframe_status(const struct respframe *f);

/* After the final head: the client connection may carry a next request
 * once the response is complete (its head said so). */
bool respframe_client_keep(const struct respframe *f);

/* After the final head: the upstream allows its connection to be reused
 * and the response's length is known. The caller also checks that nothing
 * followed the response. */
bool respframe_upstream_keep(const struct respframe *f);

/* Header helpers shared with the request side. */

/* Is the field name (nlen bytes, any case) hop-by-hop: never forwarded? */
bool respframe_hop_by_hop(const char *name, size_t nlen);

/* Does a Connection field value (list, listlen bytes: comma-separated
 * tokens) name the field name? */
bool respframe_conn_names(const char *list, size_t listlen, const char *name,
    size_t nlen);

#endif
