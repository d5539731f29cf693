/*
 * http_parse.c - request parsing of the HTTP core (see http.h, http_int.h).
 *
 * A request head is first run through a strict byte scanner (http__scan)
 * while it is moved from the connection's input into the request's head
 * buffer. The scanner enforces the size limits as bytes arrive (414, 431)
 * and refuses what http-parser would tolerate but a strict server must
 * not: bare LF or CR, obsolete line folding, whitespace before a colon,
 * control characters in header values, non-ASCII in the request line.
 * Only a complete head goes to http-parser, in one call, so its callbacks
 * see contiguous slices of the head buffer that are NUL-terminated in
 * place afterwards (no copies). The framing checks (Content-Length,
 * Transfer-Encoding, Host, version) run when the head is complete. The
 * body is then fed to the same parser straight from the input buffer (it
 * decodes chunked bodies), and the parser is paused at the end of the
 * message, so the bytes of a pipelined next request stay in the input
 * until the current one is answered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_int.h"
#include "log.h"

enum {
	SC_LINE,	/* request line */
	SC_LINE_CR,
	SC_LSTART,	/* start of a header line */
	SC_NAME,
	SC_VALUE,
	SC_VALUE_CR,
	SC_END_CR,
	SC_DONE
};

static const uint8_t scan_tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
	['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
	['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
	['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
	['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

/*
 * Scans n more bytes of a request head. Returns 0 when all n were taken
 * and the head is not complete, 1 when the head ends within them (*used
 * says where), or the HTTP status to refuse the request with (400, 414,
 * 431). Up to two empty lines (CRLF) before the request line are skipped,
 * as RFC 9112 asks; more are refused.
 */
int
http__scan(struct http_scan *s, const struct http_limits *lim,
    const uint8_t *p, size_t n, size_t *used)
{
	size_t i;
	int st = s->state;

	for (i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (st >= SC_LSTART && ++s->hdr_bytes > lim->max_header_bytes)
			goto toobig;
		switch (st) {
		case SC_LINE:
			if (c == '\r') {
				st = SC_LINE_CR;
				break;
			}
			if (c == ' ') {
				/* method SP target SP version: exactly two
				 * single separators. */
				if (s->line_len == 0 || s->after_space ||
				    ++s->spaces > 2)
					goto bad;
				s->after_space = true;
			} else if (c < 0x20 || c >= 0x7f) {
				goto bad;
			} else {
				s->after_space = false;
			}
			if (++s->line_len > lim->max_request_line) {
				*used = i;
				s->state = st;
				return 414;
			}
			break;
		case SC_LINE_CR:
			if (c != '\n')
				goto bad;
			if (s->line_len == 0 && ++s->empty_lines <= 2) {
				/* RFC 9112 2.2: ignore a stray CRLF before
				 * the request line (http-parser skips it). */
				st = SC_LINE;
				break;
			}
			if (s->spaces != 2 || s->after_space)
				goto bad;
			st = SC_LSTART;
			break;
		case SC_LSTART:
			if (c == '\r') {
				st = SC_END_CR;
				break;
			}
			if (!scan_tchar[c])	/* folding, empty name, junk */
				goto bad;
			if (++s->nhdrs > lim->max_headers)
				goto toobig;
			st = SC_NAME;
			break;
		case SC_NAME:
			if (c == ':')
				st = SC_VALUE;
			else if (!scan_tchar[c])	/* also space before ':' */
				goto bad;
			break;
		case SC_VALUE:
			if (c == '\r')
				st = SC_VALUE_CR;
			else if ((c < 0x20 && c != '\t') || c == 0x7f)
				goto bad;
			break;
		case SC_VALUE_CR:
			if (c != '\n')
				goto bad;
			st = SC_LSTART;
			break;
		case SC_END_CR:
			if (c != '\n')
				goto bad;
			s->state = SC_DONE;
			*used = i + 1;
			return 1;
		default:
			goto bad;
		}
	}
	s->state = st;
	*used = n;
	return 0;
bad:
	s->state = st;
	*used = i;
	return 400;
toobig:
	s->state = st;
	*used = i;
	return 431;
}

/* --- http-parser callbacks (parser->data is the request) --- */

static int
parse_fail(struct http_request *req, int status, const char *code,
    const char *msg)
{
	req->err_status = status;
	req->err_code = code;
	req->err_msg = msg;
	return -1;
}

static int
on_url(http_parser *p, const char *at, size_t len)
{
	struct http_request *req = p->data;
	size_t off = (size_t)((const uint8_t *)at - req->head.data);

	if (req->headers_done)
		return 0;
	if (!req->have_url) {
		req->url_off = off;
		req->url_len = len;
		req->have_url = true;
	} else if (off == req->url_off + req->url_len) {
		req->url_len += len;
	} else {
		return parse_fail(req, 400, "bad_request", "malformed request line");
	}
	return 0;
}

static int
on_header_field(http_parser *p, const char *at, size_t len)
{
	struct http_request *req = p->data;
	struct http_hdr *h;
	size_t off;

	if (req->headers_done)
		return 0;	/* trailers of a chunked body: ignored */
	off = (size_t)((const uint8_t *)at - req->head.data);
	if (req->cb_last == 1 && req->nhdrs > 0) {
		h = &req->hdrs[req->nhdrs - 1];
		if (off != h->name_off + h->name_len)
			return parse_fail(req, 400, "bad_request", "malformed header");
		h->name_len += (uint32_t)len;
		return 0;
	}
	if (req->nhdrs == req->srv->lim.max_headers)
		return parse_fail(req, 431, "headers_too_large",
		    "too many header fields");
	h = &req->hdrs[req->nhdrs++];
	memset(h, 0, sizeof(*h));
	h->name_off = (uint32_t)off;
	h->name_len = (uint32_t)len;
	req->cb_last = 1;
	return 0;
}

static int
on_header_value(http_parser *p, const char *at, size_t len)
{
	struct http_request *req = p->data;
	struct http_hdr *h;
	size_t off;

	if (req->headers_done)
		return 0;
	if (req->nhdrs == 0)
		return parse_fail(req, 400, "bad_request", "malformed header");
	off = (size_t)((const uint8_t *)at - req->head.data);
	h = &req->hdrs[req->nhdrs - 1];
	if (req->cb_last == 2) {
		if (off != h->value_off + h->value_len)
			return parse_fail(req, 400, "bad_request", "malformed header");
		h->value_len += (uint32_t)len;
		return 0;
	}
	h->value_off = (uint32_t)off;
	h->value_len = (uint32_t)len;
	h->has_value = true;
	req->cb_last = 2;
	return 0;
}

/* Content-Length: 1 to 18 digits, nothing else (no sign, no list). */
static bool
parse_content_length(const char *v, uint64_t *out)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; v[i] != '\0'; i++) {
		if (v[i] < '0' || v[i] > '9' || i == 18)
			return false;
		n = n * 10 + (uint64_t)(v[i] - '0');
	}
	if (i == 0)
		return false;
	*out = n;
	return true;
}

/* Host: reg-name / IP literal with an optional port; no spaces, no
 * userinfo, no path. */
static bool
host_ok(const char *v)
{
	if (*v == '\0')
		return false;
	for (; *v != '\0'; v++) {
		unsigned char c = (unsigned char)*v;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-._~%!$&'()*+,;=:[]", c) != NULL))
			return false;
	}
	return true;
}

static int
on_headers_complete(http_parser *p)
{
	struct http_request *req = p->data;
	struct http_server *srv = req->srv;
	char *head = (char *)req->head.data;
	size_t ncl = 0, nte = 0, nhost = 0, path_len;
	uint64_t cl = 0;
	const char *q;
	int r;

	req->headers_done = true;
	if (p->http_major != 1 || p->http_minor > 1)
		return parse_fail(req, 400, "bad_request",
		    "unsupported HTTP version");
	if (!req->have_url || req->url_len == 0)
		return parse_fail(req, 400, "bad_request", "missing request target");

	/* The parser is past every byte written to here. */
	head[req->url_off + req->url_len] = '\0';
	req->target = head + req->url_off;
	req->method = http_method_str((enum http_method)p->method);
	req->is_head = p->method == HTTP_HEAD;
	for (size_t i = 0; i < req->nhdrs; i++) {
		struct http_hdr *h = &req->hdrs[i];
		char *v = head + h->value_off;
		size_t vl = h->value_len;
		const char *name, *value;

		if (head[h->name_off + h->name_len] != ':' || h->name_len == 0)
			return parse_fail(req, 400, "bad_request", "malformed header");
		head[h->name_off + h->name_len] = '\0';
		name = head + h->name_off;
		if (h->has_value) {
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			v[vl] = '\0';
			h->value_len = (uint32_t)vl;
		}
		value = http__hdr_value(req, h);

		if (strcasecmp(name, "content-length") == 0) {
			if (++ncl > 1 || !parse_content_length(value, &cl))
				return parse_fail(req, 400, "bad_request",
				    "invalid Content-Length");
		} else if (strcasecmp(name, "transfer-encoding") == 0) {
			if (++nte > 1 || strcasecmp(value, "chunked") != 0)
				return parse_fail(req, 400, "bad_request",
				    "unsupported Transfer-Encoding");
		} else if (strcasecmp(name, "host") == 0) {
			if (++nhost > 1 || !host_ok(value))
				return parse_fail(req, 400, "bad_request",
				    "invalid Host");
		} else if (strcasecmp(name, "expect") == 0) {
			if (strcasecmp(value, "100-continue") == 0)
				req->expect_continue = true;
		}
	}
	if (ncl > 0 && nte > 0)
		return parse_fail(req, 400, "bad_request",
		    "both Content-Length and Transfer-Encoding");
	if (nte > 0 && p->http_minor == 0)
		return parse_fail(req, 400, "bad_request",
		    "Transfer-Encoding in an HTTP/1.0 request");
	if (nte > 0 && !(p->flags & F_CHUNKED))
		return parse_fail(req, 400, "bad_request",
		    "unsupported Transfer-Encoding");
	if (nhost == 0 && p->http_minor == 1)
		return parse_fail(req, 400, "bad_request", "missing Host");
	if (cl > srv->lim.max_body)
		return parse_fail(req, 413, "payload_too_large",
		    "request body too large");
	req->has_body = nte > 0 || cl > 0;
	if (!req->has_body)
		req->expect_continue = false;
	req->keepalive = http_should_keep_alive(p) != 0;

	/* Request target: origin form for everyone; other forms only for a
	 * "*" route (which http__route_match looks for). */
	if (p->method == HTTP_CONNECT) {
		path_len = 0;
	} else if (req->target[0] == '/') {
		if (strchr(req->target, '#') != NULL)
			return parse_fail(req, 400, "bad_request",
			    "fragment in request target");
		q = strchr(req->target, '?');
		path_len = q != NULL ? (size_t)(q - req->target) : strlen(req->target);
		req->query = q != NULL ? q + 1 : "";
	} else if (strcmp(req->target, "*") == 0) {
		if (p->method != HTTP_OPTIONS)
			return parse_fail(req, 400, "bad_request",
			    "invalid request target");
		path_len = 0;
	} else {
		path_len = 0;	/* absolute form */
	}
	r = http__route_match(srv, req, path_len);
	if (r == 500)
		return parse_fail(req, 500, "internal", "out of memory");
	if (r != 0)
		return parse_fail(req, 400, "bad_request", "invalid request target");
	return 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct http_request *req = p->data;
	int r;

	if ((r = buf_append(&req->body, at, len)) != 0) {
		if (r == MOAT_ERR_TOOBIG)
			return parse_fail(req, 413, "payload_too_large",
			    "request body too large");
		return parse_fail(req, 500, "internal", "out of memory");
	}
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct http_request *req = p->data;

	req->complete = true;
	/* Stop right after this message: the next one stays in the input. */
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings parse_settings = {
	.on_url = on_url,
	.on_header_field = on_header_field,
	.on_header_value = on_header_value,
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* --- request objects --- */

int
http__req_init(struct http_request *req, struct http_server *srv)
{
	const struct http_limits *l = &srv->lim;

	memset(req, 0, sizeof(*req));
	req->srv = srv;
	buf_init(&req->head, l->max_request_line + l->max_header_bytes + 8);
	buf_init(&req->strs, 2 * (l->max_request_line + 8));
	buf_init(&req->body, l->max_body);
	buf_init(&req->resp_hdrs, 64 * 1024);
	if ((req->hdrs = calloc(l->max_headers > 0 ? l->max_headers : 1,
	    sizeof(*req->hdrs))) == NULL)
		return MOAT_ERR_NOMEM;
	req->client = req->conn_client;
	http__req_reset(req);
	return 0;
}

/* Forgets the previous request; buffers keep their memory. */
void
http__req_reset(struct http_request *req)
{
	buf_reset(&req->head);
	buf_reset(&req->strs);
	buf_reset(&req->body);
	buf_reset(&req->resp_hdrs);
	memset(&req->scan, 0, sizeof(req->scan));
	http_parser_init(&req->parser, HTTP_REQUEST);
	req->parser.data = req;
	req->nhdrs = 0;
	req->cb_last = 0;
	req->have_url = false;
	req->url_off = req->url_len = 0;
	req->started = req->headers_done = req->complete = false;
	req->keepalive = req->close_after = req->is_head = false;
	req->expect_continue = req->has_body = false;
	req->err_status = 0;
	req->err_code = req->err_msg = NULL;
	req->method = req->target = req->path = req->query = NULL;
	req->ep = NULL;
	req->route_status = 0;
	req->resp_cache_control = false;
	req->client = req->conn_client;
}

void
http__req_free(struct http_request *req)
{
	if (req == NULL)
		return;
	buf_free(&req->head);
	buf_free(&req->strs);
	buf_free(&req->body);
	buf_free(&req->resp_hdrs);
	free(req->hdrs);
	free(req);
}

/* --- the per-connection state machine --- */

/* Answers a parse failure recorded by a callback, or a plain 400. */
static void
parse_error(struct http_conn *c)
{
	struct http_request *req = c->req;
	enum http_errno e = HTTP_PARSER_ERRNO(&req->parser);

	if (req->err_status != 0)
		http__core_error(c, req->err_status, req->err_code, req->err_msg);
	else if (e == HPE_HEADER_OVERFLOW)
		http__core_error(c, 431, "headers_too_large",
		    "request head too large");
	else
		http__core_error(c, 400, "bad_request", "malformed request");
}

/* Moves head bytes from the input into the head buffer. Returns 0 when
 * more are needed, 1 when the head is complete, -1 after an error answer. */
static int
head_step(struct http_conn *c)
{
	struct http_request *req = c->req;
	struct evbuffer_iovec v;
	size_t used;
	int r;

	for (;;) {
		if (evbuffer_peek(c->in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return 0;
		r = http__scan(&req->scan, &c->srv->lim, v.iov_base, v.iov_len,
		    &used);
		if (buf_append(&req->head, v.iov_base, used) != 0) {
			http__core_error(c, 431, "headers_too_large",
			    "request head too large");
			return -1;
		}
		evbuffer_drain(c->in, used);
		if (r == 1)
			return 1;
		if (r == 414) {
			http__core_error(c, 414, "uri_too_long",
			    "request line too long");
			return -1;
		}
		if (r == 431) {
			http__core_error(c, 431, "headers_too_large",
			    "request header fields too large");
			return -1;
		}
		if (r != 0) {
			http__core_error(c, 400, "bad_request",
			    "malformed request head");
			return -1;
		}
	}
}

/* Feeds the complete head to http-parser. 0 or -1 after an error answer. */
static int
head_parse(struct http_conn *c)
{
	struct http_request *req = c->req;
	enum http_errno e;
	size_t n;

	n = http_parser_execute(&req->parser, &parse_settings,
	    (const char *)req->head.data, req->head.len);
	e = HTTP_PARSER_ERRNO(&req->parser);
	if ((e != HPE_OK && e != HPE_PAUSED) || !req->headers_done ||
	    (n != req->head.len && !req->parser.upgrade)) {
		parse_error(c);
		return -1;
	}
	return 0;
}

/* Feeds body bytes from the input. 0 (complete or waiting), -1 after an
 * error answer. */
static int
body_step(struct http_conn *c)
{
	struct http_request *req = c->req;
	struct evbuffer_iovec v;
	enum http_errno e;
	size_t n;

	while (!req->complete) {
		if (evbuffer_peek(c->in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return 0;
		n = http_parser_execute(&req->parser, &parse_settings,
		    v.iov_base, v.iov_len);
		e = HTTP_PARSER_ERRNO(&req->parser);
		if ((e != HPE_OK && e != HPE_PAUSED) ||
		    (n != v.iov_len && !req->complete)) {
			parse_error(c);
			return -1;
		}
		evbuffer_drain(c->in, n);
	}
	return 0;
}

static void
send_continue(struct http_conn *c)
{
	static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";

	(void)evbuffer_add(c->out, cont, sizeof(cont) - 1);
}

/* Hands a complete request to its handler. Returns 0 when the connection
 * can go on (answered, or pending), -1 when it was taken or freed. */
static int
dispatch(struct http_conn *c)
{
	struct http_request *req = c->req;
	const struct http_endpoint *ep = req->ep;

	c->state = HC_PENDING;
	http__conn_arm(c, HTTP_TIMER_NONE);
	(void)http__set_client(req);
	c->in_dispatch = true;
	if (ep != NULL) {
		ep->fn(req, ep->arg);
	} else if (req->route_status == 405) {
		if (http__route_allow(c->srv, req) != 0)
			http_respond_error(req, 500, "internal", "out of memory");
		else
			http_respond_error(req, 405, "method_not_allowed",
			    "method not allowed");
	} else {
		http_respond_error(req, 404, "not_found", "not found");
	}
	c->in_dispatch = false;
	if (c->taken) {
		http__conn_free(c);
		return -1;
	}
	return 0;
}

int
http__conn_process(struct http_conn *c)
{
	struct http_request *req;
	int r;

	while (c->state == HC_HEAD || c->state == HC_BODY) {
		req = c->req;
		if (c->state == HC_HEAD) {
			if (!req->started) {
				if (evbuffer_get_length(c->in) == 0) {
					if (c->peer_eof)
						http__conn_close_after_flush(c);
					else if (!c->first)
						http__conn_arm(c, HTTP_TIMER_IDLE);
					return 0;
				}
				if (evbuffer_get_length(c->out) >= HTTP_OUT_HIGH) {
					/* The client is not reading its
					 * answers: wait for the write side. */
					c->write_blocked = true;
					return 0;
				}
				req->started = true;
				req->start_ns = http__now_ns();
				if (!c->first)
					http__conn_arm(c, HTTP_TIMER_HEADER);
			}
			r = head_step(c);
			if (r < 0)
				return 0;
			if (r == 0) {
				if (c->peer_eof) {
					http__conn_free(c);
					return -1;
				}
				return 0;
			}
			if (head_parse(c) != 0)
				return 0;
			if (!req->complete) {
				c->state = HC_BODY;
				http__conn_arm(c, HTTP_TIMER_BODY);
				if (req->expect_continue)
					send_continue(c);
			}
		}
		if (c->state == HC_BODY) {
			if (body_step(c) != 0)
				return 0;
			if (!req->complete) {
				if (c->peer_eof) {
					http__conn_free(c);
					return -1;
				}
				return 0;
			}
		}
		if (dispatch(c) != 0)
			return -1;
	}
	return 0;
}

/* --- fuzzing entry --- */

int
http__parse_for_fuzz(struct http_server *srv, const uint8_t *data,
    size_t len, size_t chunk)
{
	struct http_conn *c = NULL;
	size_t off = 0;
	int r = -1;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->srv = srv;
	c->fd = -1;
	c->first = true;
	c->state = HC_HEAD;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	if (c->in == NULL || c->out == NULL ||
	    (c->req = calloc(1, sizeof(*c->req))) == NULL)
		goto out;
	if (http__req_init(c->req, srv) != 0)
		goto out;
	c->req->conn = c;
	snprintf(c->req->peer, sizeof(c->req->peer), "192.0.2.1");
	snprintf(c->req->conn_client, sizeof(c->req->conn_client), "192.0.2.1");
	if (chunk == 0)
		chunk = len;
	while (off < len && (c->state == HC_HEAD || c->state == HC_BODY)) {
		size_t n = len - off < chunk ? len - off : chunk;

		if (evbuffer_add(c->in, data + off, n) != 0)
			break;
		off += n;
		(void)http__conn_process(c);
		/* Answers are not sent anywhere; drop them so that the
		 * output limit does not stall the pipeline. */
		evbuffer_drain(c->out, evbuffer_get_length(c->out));
	}
	r = 0;
out:
	if (c->req != NULL) {
		if (c->state == HC_PENDING)
			abort();	/* fuzz handlers answer synchronously */
		http__req_free(c->req);
	}
	if (c->in != NULL)
		evbuffer_free(c->in);
	if (c->out != NULL)
		evbuffer_free(c->out);
	free(c);
	return r;
}
