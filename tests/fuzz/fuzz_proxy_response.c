/*
 * fuzz_proxy_response.c - libFuzzer target for respframe.c, the framing of
 * an upstream's response as moat-proxy forwards it.
 *
 * Input: a flags byte (bit 0: the request was HEAD; bit 1: the client
 * speaks HTTP/1.0; bit 2: the client asked for keep-alive; bit 3: the
 * upstream never closes), a split byte (feed the rest in pieces of that
 * many bytes; 0: at once), then the upstream's bytes.
 *
 * The oracle is the point of the framing: whatever the upstream sends, what
 * the client gets must parse, with an independent http-parser, as interim
 * heads and then exactly one final response that ends exactly where the
 * output ends (or, when the connection is not kept, at the close), with no
 * hop-by-hop field and at most one framing field. Otherwise a hostile
 * origin could make the client read a second, forged response on a kept
 * connection.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <http_parser.h>

#include "respframe.h"

struct fz_check {
	bool head_request;
	int finals;
	int messages;
	bool complete;		/* the last message completed */
	int ncl, nte;
	const char *field;	/* last field name */
	size_t field_len;
};

static int
fz_on_message_begin(http_parser *p)
{
	struct fz_check *k = p->data;

	k->complete = false;
	k->ncl = k->nte = 0;
	return 0;
}

static int
fz_on_header_field(http_parser *p, const char *at, size_t len)
{
	struct fz_check *k = p->data;

	/* Field names arrive in one piece here (one execute call). */
	if (respframe_hop_by_hop(at, len) && !(len == 10 &&
	    strncasecmp(at, "connection", 10) == 0))
		abort();
	if (len == 14 && strncasecmp(at, "content-length", 14) == 0)
		k->ncl++;
	if (len == 17 && strncasecmp(at, "transfer-encoding", 17) == 0)
		k->nte++;
	k->field = at;
	k->field_len = len;
	return 0;
}

static int
fz_on_header_value(http_parser *p, const char *at, size_t len)
{
	struct fz_check *k = p->data;

	/* The only Connection values the proxy writes. */
	if (k->field_len == 10 && strncasecmp(k->field, "connection", 10) == 0 &&
	    !(len == 5 && strncmp(at, "close", 5) == 0) &&
	    !(len == 10 && strncmp(at, "keep-alive", 10) == 0))
		abort();
	return 0;
}

static int
fz_on_headers_complete(http_parser *p)
{
	struct fz_check *k = p->data;

	if (k->ncl > 1 || k->nte > 1 || (k->ncl > 0 && k->nte > 0))
		abort();
	if (p->status_code < 200 || p->status_code == 204 ||
	    p->status_code == 304 || k->head_request)
		return 1;
	return 0;
}

static int
fz_on_message_complete(http_parser *p)
{
	struct fz_check *k = p->data;

	k->messages++;
	k->complete = true;
	if (p->status_code >= 200)
		k->finals++;
	return 0;
}

static const http_parser_settings fz_settings = {
	.on_message_begin = fz_on_message_begin,
	.on_header_field = fz_on_header_field,
	.on_header_value = fz_on_header_value,
	.on_headers_complete = fz_on_headers_complete,
	.on_message_complete = fz_on_message_complete,
};

/* Checks what the client got after a complete response. */
static void
fz_check_output(const uint8_t *out, size_t n, bool head_request, bool kept)
{
	struct fz_check k;
	http_parser p;
	size_t used;

	memset(&k, 0, sizeof(k));
	k.head_request = head_request;
	http_parser_init(&p, HTTP_RESPONSE);
	p.data = &k;
	used = http_parser_execute(&p, &fz_settings, (const char *)out, n);
	if (HTTP_PARSER_ERRNO(&p) != HPE_OK || used != n)
		abort();
	if (!kept) {
		/* Delimited by the close. */
		(void)http_parser_execute(&p, &fz_settings, NULL, 0);
		if (HTTP_PARSER_ERRNO(&p) != HPE_OK)
			abort();
	}
	if (k.finals != 1 || !k.complete)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct respframe_opts o;
	struct respframe *f = NULL;
	struct evbuffer *in = NULL, *out = NULL;
	size_t off = 2, step;
	bool never_eof;
	int r = MOAT_ERR_AGAIN;

	if (size < 2)
		return 0;
	memset(&o, 0, sizeof(o));
	o.head_request = (data[0] & 1) != 0;
	o.client_http10 = (data[0] & 2) != 0;
	o.client_keep = (data[0] & 4) != 0;
	never_eof = (data[0] & 8) != 0;
	o.max_head = 4096;
	step = data[1] != 0 ? data[1] : size;
	if (respframe_new(&f, &o) != 0 || (in = evbuffer_new()) == NULL ||
	    (out = evbuffer_new()) == NULL)
		goto out;
	do {
		size_t k = size - off < step ? size - off : step;
		bool eof;

		if (evbuffer_add(in, data + off, k) != 0)
			goto out;
		off += k;
		eof = off == size && !never_eof;
		r = respframe_feed(f, in, out, eof);
	} while (r == MOAT_ERR_AGAIN && off < size);
	if (r == 0) {
		size_t n = evbuffer_get_length(out);
		const uint8_t *p = evbuffer_pullup(out, (ssize_t)n);

		if (respframe_status(f) < 200 || !respframe_head_sent(f))
			abort();
		if (respframe_client_keep(f) && !o.client_keep)
			abort();
		fz_check_output(p, n, o.head_request, respframe_client_keep(f));
		/* Done is final. */
		if (respframe_feed(f, in, out, true) != 0)
			abort();
	} else if (r != MOAT_ERR_AGAIN && respframe_feed(f, in, out, true) != r) {
		abort();	/* errors are final */
	}
out:
	respframe_free(f);
	if (in != NULL)
		evbuffer_free(in);
	if (out != NULL)
		evbuffer_free(out);
	return 0;
}
