/*
 * log.c - JSON-lines logger (see log.h).
 *
 * Lines are formatted into a stack buffer and written with one write(2).
 * A line longer than the buffer is cut rather than split: long strings are
 * shortened at a character boundary (ending in "..."), fields that do not
 * fit are dropped, and the line is marked with "truncated": true; it is
 * still one valid JSON object. Text is escaped as JSON and invalid UTF-8
 * becomes U+FFFD.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define LOG_LINE_MAX 8192

static _Atomic int log_level = LOG_INFO;
static _Atomic int log_fd = 2;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
log_set_level(enum log_level level)
{
	atomic_store(&log_level, (int)level);
}

enum log_level
log_get_level(void)
{
	return (enum log_level)atomic_load(&log_level);
}

int
log_level_parse(const char *name)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(name, "warning") == 0)
		return LOG_WARN;
	return -1;
}

void
log_set_fd(int fd)
{
	atomic_store(&log_fd, fd);
}

/* A bounded writer: remembers how much would have been written. */
struct out {
	char *p;
	size_t cap, len;
};

static void
out_raw(struct out *o, const char *s, size_t n)
{
	if (o->len < o->cap) {
		size_t room = o->cap - o->len;
		memcpy(o->p + o->len, s, n < room ? n : room);
	}
	o->len += n;
}

static void
out_str(struct out *o, const char *s)
{
	out_raw(o, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at p (1 to 4), or 0 when p does not
 * start one (RFC 3629: no overlong forms, no surrogates, <= U+10FFFF). */
static size_t
utf8_seq(const unsigned char *p)
{
	unsigned char c = p[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return (p[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		unsigned char lo = c == 0xe0 ? 0xa0 : 0x80;
		unsigned char hi = c == 0xed ? 0x9f : 0xbf;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 ? 3 : 0;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		unsigned char lo = c == 0xf0 ? 0x90 : 0x80;
		unsigned char hi = c == 0xf4 ? 0x8f : 0xbf;
		return p[1] >= lo && p[1] <= hi && (p[2] & 0xc0) == 0x80 &&
		    (p[3] & 0xc0) == 0x80 ? 4 : 0;
	}
	return 0;
}

/*
 * Writes s as a JSON string, escaping quotes, backslashes and control
 * characters; bytes that are not valid UTF-8 become U+FFFD. When limit is
 * not 0 the string (quotes included) ends before o->len passes limit: it is
 * cut at a character boundary and ends with "...". Returns true when cut.
 */
static bool
out_json_str(struct out *o, const char *s, size_t limit)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	bool cut = false;

	out_raw(o, "\"", 1);
	while (*p != '\0') {
		unsigned char c = *p;
		char e[6];
		const char *chunk = e;
		size_t n, adv;

		if (c == '"' || c == '\\') {
			e[0] = '\\';
			e[1] = (char)c;
			n = 2;
			adv = 1;
		} else if (c == '\n' || c == '\r' || c == '\t') {
			e[0] = '\\';
			e[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
			n = 2;
			adv = 1;
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(e, "\\u00", 4);
			e[4] = hex[c >> 4];
			e[5] = hex[c & 15];
			n = 6;
			adv = 1;
		} else if ((adv = utf8_seq(p)) != 0) {
			chunk = (const char *)p;
			n = adv;
		} else {
			chunk = "\xef\xbf\xbd";
			n = 3;
			adv = 1;
		}
		/* Room for this chunk, "..." and the closing quote. */
		if (limit != 0 && o->len + n + 4 > limit) {
			out_raw(o, "...", 3);
			cut = true;
			break;
		}
		out_raw(o, chunk, n);
		p += adv;
	}
	out_raw(o, "\"", 1);
	return cut;
}

static void
out_value(struct out *o, const struct log_field *f, size_t limit, bool *cut)
{
	char num[64];

	switch (f->type) {
	case LOG_F_STR:
		if (f->s == NULL)
			out_str(o, "null");
		else if (out_json_str(o, f->s, limit))
			*cut = true;
		break;
	case LOG_F_INT:
		snprintf(num, sizeof(num), "%lld", f->i);
		out_str(o, num);
		break;
	case LOG_F_DOUBLE:
		/* JSON has no NaN or infinity. */
		if (!isfinite(f->d)) {
			snprintf(num, sizeof(num), "null");
		} else {
			snprintf(num, sizeof(num), "%.15g", f->d);
			if (strtod(num, NULL) != f->d)
				snprintf(num, sizeof(num), "%.17g", f->d);
		}
		out_str(o, num);
		break;
	case LOG_F_BOOL:
		out_str(o, f->i ? "true" : "false");
		break;
	case LOG_F_SECRET:
	default:
		out_str(o, "\"[secret]\"");
		break;
	}
}

#define LOG_TRUNC_TAIL ",\"truncated\":true}\n"
#define LOG_KEY_MAX 128		/* output bytes for a key or component */

/*
 * Writes the line. With limit 0 nothing is cut (used to measure). With a
 * limit (the usable buffer size, NUL excluded), strings are cut and fields
 * dropped so that the line, with ,"truncated":true, fits in it.
 */
static void
format_line(struct out *o, size_t limit, enum log_level level,
    const char *component, const char *msg, const struct log_field *fields)
{
	const size_t tail = sizeof(LOG_TRUNC_TAIL) - 1;
	size_t stop = limit > tail ? limit - tail : 1;	/* content ends here */
	struct timespec ts;
	struct tm tm;
	char tbuf[64], num[64];
	unsigned lv = (unsigned)level;
	bool cut = false;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
	out_str(o, "{\"time\":\"");
	out_str(o, tbuf);
	snprintf(num, sizeof(num), ".%06ldZ\",\"level\":\"", ts.tv_nsec / 1000);
	out_str(o, num);
	out_str(o, level_names[lv <= LOG_ERROR ? lv : LOG_ERROR]);
	out_str(o, "\",\"component\":");
	if (out_json_str(o, component, limit == 0 ? 0 :
	    o->len + LOG_KEY_MAX < stop ? o->len + LOG_KEY_MAX : stop))
		cut = true;
	out_str(o, ",\"msg\":");
	if (out_json_str(o, msg, limit == 0 ? 0 : stop))
		cut = true;
	for (const struct log_field *f = fields;
	    f != NULL && f->type != LOG_F_END; f++) {
		size_t before = o->len;
		out_raw(o, ",", 1);
		if (out_json_str(o, f->key, limit == 0 ? 0 :
		    o->len + LOG_KEY_MAX < stop ? o->len + LOG_KEY_MAX : stop))
			cut = true;
		out_raw(o, ":", 1);
		/* A string value is cut to fit; if even the key and "..."
		 * do not fit, or a number does not, the field is dropped and
		 * so are the rest. */
		if (limit != 0 && o->len + 6 > stop) {
			o->len = before;
			cut = true;
			break;
		}
		out_value(o, f, limit == 0 ? 0 : stop, &cut);
		if (limit != 0 && o->len > stop) {
			o->len = before;
			cut = true;
			break;
		}
	}
	if (cut)
		out_str(o, LOG_TRUNC_TAIL);
	else
		out_str(o, "}\n");
}

size_t
log_format(char *buf, size_t buflen, enum log_level level,
    const char *component, const char *msg, const struct log_field *fields)
{
	struct out o = { buf, buflen > 0 ? buflen - 1 : 0, 0 };
	size_t full;

	/* Usually the whole line fits and one pass is enough. */
	format_line(&o, 0, level, component, msg, fields);
	full = o.len;
	if (buflen == 0)
		return full;
	if (full <= o.cap) {
		buf[full] = '\0';
		return full;
	}
	o.len = 0;
	format_line(&o, o.cap, level, component, msg, fields);
	if (o.len > o.cap) {
		/* A buffer too small even for the fixed parts (never the case
		 * for log_write's): end it with a newline. */
		o.len = o.cap;
		if (o.cap > 0)
			buf[o.cap - 1] = '\n';
	}
	buf[o.len] = '\0';
	return full;
}

void
log_write(enum log_level level, const char *component, const char *msg,
    const struct log_field *fields)
{
	char line[LOG_LINE_MAX];
	size_t n;
	int saved = errno;

	if ((int)level < atomic_load(&log_level))
		return;
	n = log_format(line, sizeof(line), level, component, msg, fields);
	if (n >= sizeof(line))
		n = strlen(line);	/* truncated to fit */
	/* One write; a short write to a pipe/terminal is not retried so that
	 * lines are never interleaved with another writer's. */
	if (write(atomic_load(&log_fd), line, n) < 0) {
		/* Nowhere left to report it. */
	}
	errno = saved;
}
