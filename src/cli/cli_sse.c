/*
 * cli_sse.c - the bounded Server-Sent Events parser of the moat CLI and the
 * lines it prints for a workspace's events (see cli_sse.h).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli_sse.h"
#include "textclean.h"

void
cli_sse_init(struct cli_sse *s, size_t max_line, size_t max_data,
    cli_sse_fn fn, void *arg)
{
	memset(s, 0, sizeof(*s));
	buf_init(&s->line, max_line > 0 ? max_line : 1);
	/* Each data line adds a '\n', the last one removed at dispatch. */
	buf_init(&s->data, (max_data > 0 ? max_data : 1) + 1);
	s->fn = fn;
	s->arg = arg;
}

void
cli_sse_free(struct cli_sse *s)
{
	if (s == NULL)
		return;
	buf_free(&s->line);
	buf_free(&s->data);
}

const char *
cli_sse_last_id(const struct cli_sse *s)
{
	return s->id;
}

static int
sse_dispatch(struct cli_sse *s)
{
	size_t len;
	int r;

	if (s->data.len == 0) {
		s->type[0] = '\0';
		return 0;
	}
	len = s->data.len - 1;		/* the last '\n' */
	s->data.data[len] = '\0';
	r = s->fn(s->arg, s->type[0] != '\0' ? s->type : "message", s->id,
	    (const char *)s->data.data, len);
	buf_reset(&s->data);
	s->type[0] = '\0';
	return r;
}

static bool
field_is(const char *f, size_t n, const char *name)
{
	return strlen(name) == n && memcmp(f, name, n) == 0;
}

/* One complete line (without its end). */
static int
sse_line(struct cli_sse *s, const char *l, size_t n)
{
	const char *colon, *val = "";
	size_t flen = n, vlen = 0;
	int r;

	if (!s->started) {
		s->started = true;
		if (n >= 3 && memcmp(l, "\xef\xbb\xbf", 3) == 0) {
			l += 3;
			n -= 3;
			flen = n;
		}
	}
	if (n == 0)
		return sse_dispatch(s);
	if (l[0] == ':')
		return 0;		/* a comment (keep-alive) */
	if ((colon = memchr(l, ':', n)) != NULL) {
		flen = (size_t)(colon - l);
		val = colon + 1;
		vlen = n - flen - 1;
		if (vlen > 0 && val[0] == ' ') {
			val++;
			vlen--;
		}
	}
	if (field_is(l, flen, "data")) {
		if ((r = buf_append(&s->data, val, vlen)) != 0 ||
		    (r = buf_append(&s->data, "\n", 1)) != 0)
			return r;
	} else if (field_is(l, flen, "event")) {
		if (vlen >= sizeof(s->type) || memchr(val, '\0', vlen) != NULL)
			return MOAT_ERR_PARSE;
		memcpy(s->type, val, vlen);
		s->type[vlen] = '\0';
	} else if (field_is(l, flen, "id")) {
		if (memchr(val, '\0', vlen) != NULL)
			return 0;	/* ignored, as the standard says */
		if (vlen >= sizeof(s->id))
			return MOAT_ERR_PARSE;
		memcpy(s->id, val, vlen);
		s->id[vlen] = '\0';
	} else if (field_is(l, flen, "retry")) {
		uint64_t v = 0;
		size_t i;

		for (i = 0; i < vlen && val[i] >= '0' && val[i] <= '9'; i++)
			if (v < UINT64_MAX / 100)
				v = v * 10 + (uint64_t)(val[i] - '0');
		if (vlen > 0 && i == vlen)
			s->retry_ms = v;
	}
	return 0;
}

/* The first CR or LF in p[0..n), or NULL. */
static const char *
line_end(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] == '\n' || p[i] == '\r')
			return p + i;
	return NULL;
}

int
cli_sse_feed(struct cli_sse *s, const char *p, size_t n)
{
	int r = 0;

	if (s->error != 0)
		return s->error;
	while (n > 0 && r == 0) {
		const char *e;
		size_t len;

		if (s->cr) {
			/* CR LF across chunks (or within one) is one end. */
			s->cr = false;
			if (*p == '\n') {
				p++;
				n--;
				continue;
			}
		}
		if ((e = line_end(p, n)) == NULL) {
			r = buf_append(&s->line, p, n);
			break;
		}
		len = (size_t)(e - p);
		if (s->line.len == 0) {
			/* The whole line is here: no copy, same bound. */
			r = len > s->line.max ? MOAT_ERR_TOOBIG :
			    sse_line(s, p, len);
		} else if ((r = buf_append(&s->line, p, len)) == 0) {
			r = sse_line(s, (const char *)s->line.data,
			    s->line.len);
			buf_reset(&s->line);
		}
		s->cr = *e == '\r';
		n -= len + 1;
		p = e + 1;
	}
	if (r != 0)
		s->error = r;
	return r;
}

/* ---- workspace events ---- */

void
cli_wsev_init(struct cli_wsev *w)
{
	memset(w, 0, sizeof(*w));
	buf_init(&w->pending, CLI_WSEV_PENDING_MAX);
}

void
cli_wsev_free(struct cli_wsev *w)
{
	if (w == NULL)
		return;
	buf_free(&w->pending);
}

const char *
cli_bytes(uint64_t n, char *out, size_t outlen)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB",
	    "PiB", "EiB" };
	double v = (double)n;
	size_t i = 0;

	if (n < 1024) {
		snprintf(out, outlen, "%" PRIu64 " B", n);
		return out;
	}
	v /= 1024;
	while (v >= 1024 && i + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024;
		i++;
	}
	snprintf(out, outlen, "%.1f %s", v, unit[i]);
	return out;
}

/* Untrusted text on one line: escape sequences and control characters
 * removed (text_clean), then tabs and newlines as spaces. */
static const char *
one_line(const char *in, char *out, size_t outlen)
{
	size_t n;

	if (in == NULL)
		in = "";
	n = text_clean(in, strlen(in), out, outlen);
	for (size_t i = 0; i < n; i++)
		if (out[i] == '\n' || out[i] == '\t')
			out[i] = ' ';
	return out;
}

int
cli_wsev_flush(struct cli_wsev *w, struct buf *out)
{
	int r;

	if (w->pending.len == 0)
		return 0;
	if ((r = buf_append_str(out, "OUTPUT ")) != 0 ||
	    (r = buf_append(out, w->pending.data, w->pending.len)) != 0 ||
	    (r = buf_append(out, "\n", 1)) != 0)
		return r;
	buf_reset(&w->pending);
	return 0;
}

static int
format_output(struct cli_wsev *w, const char *text, struct buf *out)
{
	size_t n = strlen(text), len;
	char *clean = malloc(n + 1);
	int r = 0;

	if (clean == NULL)
		return MOAT_ERR_NOMEM;
	len = text_clean(text, n, clean, n + 1);
	for (size_t i = 0; i < len && r == 0; i++) {
		if (clean[i] == '\n') {
			/* An empty line still shows as one. */
			if (w->pending.len == 0)
				r = buf_append_str(out, "OUTPUT\n");
			else
				r = cli_wsev_flush(w, out);
			continue;
		}
		if (w->pending.len == w->pending.max &&
		    (r = cli_wsev_flush(w, out)) != 0)
			break;
		r = buf_append(&w->pending, &clean[i], 1);
	}
	free(clean);
	return r;
}

static int
format_pull(const json_t *o, struct buf *out)
{
	const json_t *cur = json_object_get(o, "current");
	const json_t *tot = json_object_get(o, "total");
	char status[256], a[32], b[32];
	json_int_t c = json_integer_value(cur), t = json_integer_value(tot);

	one_line(json_string_value(json_object_get(o, "status")), status,
	    sizeof(status));
	if (t > 0 && c >= 0 && c <= t)
		return buf_appendf(out, "PULL %s %s/%s\n", status,
		    cli_bytes((uint64_t)c, a, sizeof(a)),
		    cli_bytes((uint64_t)t, b, sizeof(b)));
	if (c > 0)
		return buf_appendf(out, "PULL %s %s\n", status,
		    cli_bytes((uint64_t)c, a, sizeof(a)));
	return buf_appendf(out, "PULL %s\n", status);
}

int
cli_wsev_format(struct cli_wsev *w, const char *type, const char *data,
    size_t len, struct buf *out)
{
	json_t *o = json_loadb(data, len, 0, NULL);
	int r = 0;

	if (!json_is_object(o))
		goto out;		/* not ours to show */
	if (strcmp(type, "output") == 0) {
		const char *text = json_string_value(json_object_get(o,
		    "text"));

		if (text != NULL)
			r = format_output(w, text, out);
		goto out;
	}
	if ((r = cli_wsev_flush(w, out)) != 0)
		goto out;
	if (strcmp(type, "state") == 0) {
		one_line(json_string_value(json_object_get(o, "state")),
		    w->state, sizeof(w->state));
		one_line(json_string_value(json_object_get(o, "reason")),
		    w->reason, sizeof(w->reason));
		w->states++;
		if (w->reason[0] != '\0')
			r = buf_appendf(out, "STATE %s: %s\n", w->state,
			    w->reason);
		else
			r = buf_appendf(out, "STATE %s\n", w->state);
	} else if (strcmp(type, "pull") == 0) {
		r = format_pull(o, out);
	} else {
		char t[CLI_SSE_FIELD_MAX];

		r = buf_appendf(out, "EVENT %s\n", one_line(type, t,
		    sizeof(t)));
	}
out:
	json_decref(o);
	return r;
}
