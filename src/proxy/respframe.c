/*
 * respframe.c - an upstream response's framing for plain-HTTP forwarding
 * (see respframe.h): strict head checks, http-parser, the rewritten head,
 * Content-Length bodies counted, chunked bodies decoded and encoded again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "respframe.h"

#define RF_HEAD_MAX_DEFAULT (64 * 1024)
#define RF_MAX_INTERIM 16
#define RF_MAX_CONN_FIELDS 16
/* Room for the lines the proxy adds to a head. */
#define RF_HEAD_EXTRA 96

enum rf_state { RF_HEAD, RF_LENGTH, RF_CHUNKED, RF_EOF, RF_DONE, RF_FAILED };

struct respframe {
	struct respframe_opts o;
	enum rf_state st;
	int err;			/* RF_FAILED: the code */
	http_parser hp;
	struct evbuffer *out;		/* during a feed (callbacks) */
	size_t scanned;			/* input searched for the head's end */
	unsigned interim;
	int status;
	uint64_t remaining;		/* RF_LENGTH */
	bool head_sent;
	bool skip_body;			/* this head has no body */
	bool rechunk;			/* RF_CHUNKED: encode again */
	bool complete;			/* http-parser: message complete */
	bool client_keep, upstream_keep;
	int cb_err;
};

/* --- header helpers --- */

bool
respframe_hop_by_hop(const char *name, size_t nlen)
{
	static const char *const hop[] = { "connection", "keep-alive",
	    "proxy-connection", "te", "trailer", "upgrade",
	    "proxy-authorization", "proxy-authenticate", NULL };

	for (size_t i = 0; hop[i] != NULL; i++)
		if (strlen(hop[i]) == nlen && strncasecmp(name, hop[i], nlen) == 0)
			return true;
	return false;
}

bool
respframe_conn_names(const char *list, size_t listlen, const char *name,
    size_t nlen)
{
	const char *p = list, *end = list + listlen;

	while (p < end) {
		const char *s, *e;

		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		s = p;
		while (p < end && *p != ',')
			p++;
		e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if ((size_t)(e - s) == nlen && nlen > 0 &&
		    strncasecmp(s, name, nlen) == 0)
			return true;
	}
	return false;
}

static bool
tchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static bool
name_is(const char *l, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(l, want, n) == 0;
}

/* --- http-parser glue --- */

static int
on_headers_complete(http_parser *p)
{
	struct respframe *f = p->data;

	return f->skip_body ? 1 : 0;
}

static int
on_body(http_parser *p, const char *at, size_t len)
{
	struct respframe *f = p->data;
	char hdr[24];
	int n;

	if (f->rechunk) {
		n = snprintf(hdr, sizeof(hdr), "%zx\r\n", len);
		if (n <= 0 || evbuffer_add(f->out, hdr, (size_t)n) != 0 ||
		    evbuffer_add(f->out, at, len) != 0 ||
		    evbuffer_add(f->out, "\r\n", 2) != 0) {
			f->cb_err = MOAT_ERR_NOMEM;
			return -1;
		}
		return 0;
	}
	if (evbuffer_add(f->out, at, len) != 0) {
		f->cb_err = MOAT_ERR_NOMEM;
		return -1;
	}
	return 0;
}

static int
on_message_complete(http_parser *p)
{
	struct respframe *f = p->data;

	f->complete = true;
	http_parser_pause(p, 1);
	return 0;
}

static const http_parser_settings rf_settings = {
	.on_headers_complete = on_headers_complete,
	.on_body = on_body,
	.on_message_complete = on_message_complete,
};

/* --- heads --- */

struct rf_head {
	int code;
	int ncl, nte;
	uint64_t cl;
	/* Connection values as (offset, length) in the head. */
	size_t conn_off[RF_MAX_CONN_FIELDS], conn_len[RF_MAX_CONN_FIELDS];
	size_t nconn;
};

/* Content-Length: 1 to 18 digits, nothing else. */
static bool
cl_value(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (n == 0 || n > 18)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return true;
}

/* A field value without its surrounding whitespace. */
static void
trim(const char **v, size_t *n)
{
	while (*n > 0 && (**v == ' ' || **v == '\t')) {
		(*v)++;
		(*n)--;
	}
	while (*n > 0 && ((*v)[*n - 1] == ' ' || (*v)[*n - 1] == '\t'))
		(*n)--;
}

/* The strict check of a head (ending in CRLFCRLF). */
static int
head_check(const char *head, size_t len, struct rf_head *h)
{
	const char *p = head, *end = head + len, *eol;

	memset(h, 0, sizeof(*h));
	if (len < 16 || memcmp(end - 4, "\r\n\r\n", 4) != 0)
		return MOAT_ERR_PARSE;
	/* Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF */
	eol = memmem(p, len, "\r\n", 2);
	if ((size_t)(eol - p) < 12 || memcmp(p, "HTTP/1.", 7) != 0 ||
	    (p[7] != '0' && p[7] != '1') || p[8] != ' ' ||
	    p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' ||
	    p[11] < '0' || p[11] > '9' || (eol - p > 12 && p[12] != ' '))
		return MOAT_ERR_PARSE;
	for (const char *c = p; c < eol; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
			return MOAT_ERR_PARSE;
	h->code = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	for (const char *l = eol + 2; l < end - 2; ) {
		const char *le = memmem(l, (size_t)(end - l), "\r\n", 2);
		const char *colon, *v;
		size_t nlen, vlen;

		if (le == NULL)
			return MOAT_ERR_PARSE;
		colon = memchr(l, ':', (size_t)(le - l));
		if (colon == NULL || colon == l)
			return MOAT_ERR_PARSE;	/* also obs-fold: starts with SP */
		for (const char *c = l; c < colon; c++)
			if (!tchar((unsigned char)*c))
				return MOAT_ERR_PARSE;
		for (const char *c = colon + 1; c < le; c++)
			if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
				return MOAT_ERR_PARSE;
		nlen = (size_t)(colon - l);
		v = colon + 1;
		vlen = (size_t)(le - v);
		trim(&v, &vlen);
		if (name_is(l, nlen, "content-length")) {
			if (++h->ncl > 1 || !cl_value(v, vlen, &h->cl))
				return MOAT_ERR_PARSE;
		} else if (name_is(l, nlen, "transfer-encoding")) {
			if (++h->nte > 1 || vlen != 7 || strncasecmp(v, "chunked", 7) != 0)
				return MOAT_ERR_PARSE;
		} else if (name_is(l, nlen, "connection")) {
			if (h->nconn == RF_MAX_CONN_FIELDS)
				return MOAT_ERR_PARSE;
			h->conn_off[h->nconn] = (size_t)(v - head);
			h->conn_len[h->nconn++] = vlen;
		}
		l = le + 2;
	}
	if (h->ncl > 0 && h->nte > 0)
		return MOAT_ERR_PARSE;
	return 0;
}

/* Copies the status line and the fields that stay into w (at least len
 * bytes), without the final CRLF. Returns the length written. */
static size_t
head_copy(const char *head, size_t len, const struct rf_head *h, char *w)
{
	const char *end = head + len, *eol = memmem(head, len, "\r\n", 2);
	size_t n = (size_t)(eol + 2 - head);

	memcpy(w, head, n);
	for (const char *l = eol + 2; l < end - 2; ) {
		const char *le = memmem(l, (size_t)(end - l), "\r\n", 2);
		const char *colon = memchr(l, ':', (size_t)(le - l));
		size_t nlen = (size_t)(colon - l);
		bool drop = respframe_hop_by_hop(l, nlen) ||
		    name_is(l, nlen, "content-length") ||
		    name_is(l, nlen, "transfer-encoding");

		for (size_t i = 0; !drop && i < h->nconn; i++)
			drop = respframe_conn_names(head + h->conn_off[i],
			    h->conn_len[i], l, nlen);
		if (!drop) {
			memcpy(w + n, l, (size_t)(le + 2 - l));
			n += (size_t)(le + 2 - l);
		}
		l = le + 2;
	}
	return n;
}

/* Appends a line to w at *n (room was reserved). */
static void
add_line(char *w, size_t *n, const char *line)
{
	size_t k = strlen(line);

	memcpy(w + *n, line, k);
	*n += k;
}

/* One complete head: checked, parsed, rewritten into out. */
static int
head_take(struct respframe *f, const char *head, size_t len,
    struct evbuffer *out)
{
	struct rf_head h;
	char stack[4096], line[64], *w = stack;
	size_t n, cap = len + RF_HEAD_EXTRA;
	enum http_errno e;
	bool interim, chunked, known;
	int r;

	if ((r = head_check(head, len, &h)) != 0)
		return r;
	if (h.code == 101)
		return MOAT_ERR_PARSE;		/* we never ask to upgrade */
	interim = h.code < 200;
	chunked = h.nte > 0;
	f->skip_body = interim || h.code == 204 || h.code == 304 ||
	    f->o.head_request;
	http_parser_init(&f->hp, HTTP_RESPONSE);
	f->hp.data = f;
	f->complete = false;
	f->cb_err = 0;
	n = http_parser_execute(&f->hp, &rf_settings, head, len);
	e = HTTP_PARSER_ERRNO(&f->hp);
	if ((e != HPE_OK && e != HPE_PAUSED) || n != len ||
	    f->hp.status_code != (unsigned)h.code || f->hp.http_major != 1 ||
	    f->hp.upgrade || (f->skip_body && !f->complete) ||
	    (!f->skip_body && f->complete && !(h.ncl > 0 && h.cl == 0)) ||
	    (h.ncl > 0 && f->hp.content_length != h.cl && !f->skip_body) ||
	    ((f->hp.flags & F_CHUNKED) != 0) != chunked)
		return MOAT_ERR_PARSE;
	if (interim) {
		if (++f->interim > RF_MAX_INTERIM)
			return MOAT_ERR_PARSE;
		if (f->o.client_http10)
			return 0;	/* HTTP/1.0 clients get no 1xx */
	}
	if (cap > sizeof(stack) && (w = malloc(cap)) == NULL)
		return MOAT_ERR_NOMEM;
	n = head_copy(head, len, &h, w);
	if (interim) {
		add_line(w, &n, "\r\n");
		r = evbuffer_add(out, w, n) != 0 ? MOAT_ERR_NOMEM : 0;
		if (r == 0)
			f->head_sent = true;
		goto out;
	}
	f->status = h.code;
	known = true;
	if (f->skip_body) {
		/* Informational framing fields of HEAD and 304 answers. */
		if (h.code != 204 && h.ncl > 0) {
			snprintf(line, sizeof(line), "Content-Length: %llu\r\n",
			    (unsigned long long)h.cl);
			add_line(w, &n, line);
		}
		if (h.code != 204 && chunked && !f->o.client_http10)
			add_line(w, &n, "Transfer-Encoding: chunked\r\n");
		f->st = RF_DONE;
	} else if (chunked) {
		f->rechunk = !f->o.client_http10;
		known = f->rechunk;
		if (f->rechunk)
			add_line(w, &n, "Transfer-Encoding: chunked\r\n");
		f->st = RF_CHUNKED;
	} else if (h.ncl > 0) {
		snprintf(line, sizeof(line), "Content-Length: %llu\r\n",
		    (unsigned long long)h.cl);
		add_line(w, &n, line);
		f->remaining = h.cl;
		f->st = h.cl > 0 ? RF_LENGTH : RF_DONE;
	} else {
		known = false;
		f->st = RF_EOF;
	}
	f->client_keep = f->o.client_keep && known;
	f->upstream_keep = f->st != RF_EOF && http_should_keep_alive(&f->hp);
	if (!f->client_keep)
		add_line(w, &n, "Connection: close\r\n");
	else if (f->o.client_http10)
		add_line(w, &n, "Connection: keep-alive\r\n");
	add_line(w, &n, "\r\n");
	r = evbuffer_add(out, w, n) != 0 ? MOAT_ERR_NOMEM : 0;
	if (r == 0)
		f->head_sent = true;
	if (f->st == RF_CHUNKED) {
		/* The parser goes on with the body. */
		f->complete = false;
	}
out:
	if (w != stack)
		free(w);
	return r;
}

/* Looks for a complete head in in. 0: one was taken (state may have
 * changed), or an error / MOAT_ERR_AGAIN. */
static int
head_step(struct respframe *f, struct evbuffer *in, struct evbuffer *out,
    bool eof)
{
	struct evbuffer_ptr start, pos;
	size_t len = evbuffer_get_length(in), hlen;
	const char *h;
	int r;

	if (f->scanned > 3) {
		if (evbuffer_ptr_set(in, &start, f->scanned - 3,
		    EVBUFFER_PTR_SET) != 0)
			return MOAT_ERR_PARSE;
		pos = evbuffer_search(in, "\r\n\r\n", 4, &start);
	} else {
		pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	}
	if (pos.pos < 0) {
		f->scanned = len;
		if (len > f->o.max_head)
			return MOAT_ERR_TOOBIG;
		if (eof)
			return len == 0 ? MOAT_ERR_CLOSED : MOAT_ERR_PARSE;
		return MOAT_ERR_AGAIN;
	}
	hlen = (size_t)pos.pos + 4;
	if (hlen > f->o.max_head)
		return MOAT_ERR_TOOBIG;
	if ((h = (const char *)evbuffer_pullup(in, (ssize_t)hlen)) == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = head_take(f, h, hlen, out)) != 0)
		return r;
	evbuffer_drain(in, hlen);
	f->scanned = 0;
	return 0;
}

/* --- bodies --- */

static int
chunked_step(struct respframe *f, struct evbuffer *in, bool eof)
{
	while (!f->complete) {
		struct evbuffer_iovec v;
		enum http_errno e;
		size_t n;

		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1 || v.iov_len == 0)
			return eof ? MOAT_ERR_CLOSED : MOAT_ERR_AGAIN;
		n = http_parser_execute(&f->hp, &rf_settings, v.iov_base,
		    v.iov_len);
		e = HTTP_PARSER_ERRNO(&f->hp);
		if (f->cb_err != 0)
			return f->cb_err;
		if ((e != HPE_OK && e != HPE_PAUSED) ||
		    (n != v.iov_len && !f->complete))
			return MOAT_ERR_PARSE;
		evbuffer_drain(in, n);
	}
	if (f->rechunk && evbuffer_add(f->out, "0\r\n\r\n", 5) != 0)
		return MOAT_ERR_NOMEM;
	f->st = RF_DONE;
	return 0;
}

static int
length_step(struct respframe *f, struct evbuffer *in, struct evbuffer *out,
    bool eof)
{
	size_t n = evbuffer_get_length(in);

	if (n > f->remaining)
		n = (size_t)f->remaining;
	if (n > (size_t)1 << 30)
		n = (size_t)1 << 30;
	if (n > 0) {
		if (evbuffer_remove_buffer(in, out, n) != (int)n)
			return MOAT_ERR_NOMEM;
		f->remaining -= n;
	}
	if (f->remaining == 0) {
		f->st = RF_DONE;
		return 0;
	}
	if (evbuffer_get_length(in) > 0)
		return 0;		/* the rest next round */
	return eof ? MOAT_ERR_CLOSED : MOAT_ERR_AGAIN;
}

/* --- public --- */

int
respframe_new(struct respframe **out, const struct respframe_opts *o)
{
	struct respframe *f;

	*out = NULL;
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return MOAT_ERR_NOMEM;
	f->o = *o;
	if (f->o.max_head == 0)
		f->o.max_head = RF_HEAD_MAX_DEFAULT;
	f->st = RF_HEAD;
	*out = f;
	return 0;
}

void
respframe_free(struct respframe *f)
{
	free(f);
}

int
respframe_feed(struct respframe *f, struct evbuffer *in, struct evbuffer *out,
    bool eof)
{
	int r = 0;

	f->out = out;
	for (;;) {
		switch (f->st) {
		case RF_HEAD:
			r = head_step(f, in, out, eof);
			break;
		case RF_LENGTH:
			r = length_step(f, in, out, eof);
			break;
		case RF_CHUNKED:
			r = chunked_step(f, in, eof);
			break;
		case RF_EOF:
			if (evbuffer_add_buffer(out, in) != 0) {
				r = MOAT_ERR_NOMEM;
				break;
			}
			if (!eof) {
				r = MOAT_ERR_AGAIN;
				break;
			}
			f->st = RF_DONE;
			continue;
		case RF_DONE:
			f->out = NULL;
			return 0;
		case RF_FAILED:
			f->out = NULL;
			return f->err;
		}
		if (r == MOAT_ERR_AGAIN) {
			f->out = NULL;
			return r;
		}
		if (r != 0) {
			f->st = RF_FAILED;
			f->err = r;
		}
	}
}

bool
respframe_head_sent(const struct respframe *f)
{
	return f->head_sent;
}

int
respframe_status(const struct respframe *f)
{
	return f->status;
}

bool
respframe_client_keep(const struct respframe *f)
{
	return f->client_keep;
}

bool
respframe_upstream_keep(const struct respframe *f)
{
	return f->upstream_keep;
}
