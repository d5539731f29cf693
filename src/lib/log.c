/*
 * log.c - JSON-lines logger (see log.h).
 *
 * Lines are formatted into a stack buffer and written with one write(2).
 * A line longer than the buffer is truncated at a field boundary and marked
 * with "truncated": true rather than split.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
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

/* Writes s as a JSON string, escaping quotes, backslashes and control
 * characters. Bytes >= 0x80 are passed through unless they do not form
 * valid UTF-8, in which case they become U+FFFD. */
static void
out_json_str(struct out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");

	out_raw(o, "\"", 1);
	while (*p != '\0') {
		unsigned char c = *p;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			out_raw(o, e, 2);
			p++;
		} else if (c == '\n') {
			out_raw(o, "\\n", 2); p++;
		} else if (c == '\r') {
			out_raw(o, "\\r", 2); p++;
		} else if (c == '\t') {
			out_raw(o, "\\t", 2); p++;
		} else if (c < 0x20 || c == 0x7f) {
			char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			out_raw(o, e, 6);
			p++;
		} else if (c < 0x80) {
			out_raw(o, (const char *)p, 1);
			p++;
		} else {
			/* Validate one UTF-8 sequence. */
			size_t n = c >= 0xf0 && c <= 0xf4 ? 4 :
			    c >= 0xe0 ? 3 : c >= 0xc2 && c <= 0xdf ? 2 : 0;
			size_t k;
			for (k = 1; n != 0 && k < n; k++)
				if ((p[k] & 0xc0) != 0x80)
					break;
			if (n == 0 || k != n) {
				out_str(o, "\xef\xbf\xbd");
				p++;
			} else {
				out_raw(o, (const char *)p, n);
				p += n;
			}
		}
	}
	out_raw(o, "\"", 1);
}

size_t
log_format(char *buf, size_t buflen, enum log_level level,
    const char *component, const char *msg, const struct log_field *fields)
{
	struct out o = { buf, buflen, 0 };
	struct timespec ts;
	struct tm tm;
	char tbuf[64], num[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
	out_str(&o, "{\"time\":\"");
	out_str(&o, tbuf);
	snprintf(num, sizeof(num), ".%06ldZ\",\"level\":\"", ts.tv_nsec / 1000);
	out_str(&o, num);
	out_str(&o, level_names[level <= LOG_ERROR ? level : LOG_ERROR]);
	out_str(&o, "\",\"component\":");
	out_json_str(&o, component);
	out_str(&o, ",\"msg\":");
	out_json_str(&o, msg);
	for (const struct log_field *f = fields; f != NULL && f->type != LOG_F_END; f++) {
		size_t before = o.len;
		out_raw(&o, ",", 1);
		out_json_str(&o, f->key);
		out_raw(&o, ":", 1);
		switch (f->type) {
		case LOG_F_STR:
			if (f->s == NULL)
				out_str(&o, "null");
			else
				out_json_str(&o, f->s);
			break;
		case LOG_F_INT:
			snprintf(num, sizeof(num), "%lld", f->i);
			out_str(&o, num);
			break;
		case LOG_F_DOUBLE:
			snprintf(num, sizeof(num), "%.6g", f->d);
			out_str(&o, num);
			break;
		case LOG_F_BOOL:
			out_str(&o, f->i ? "true" : "false");
			break;
		case LOG_F_SECRET:
		default:
			out_str(&o, "\"[secret]\"");
			break;
		}
		/* Keep room for the closing marker: drop a field that overflows. */
		if (o.len + 24 > o.cap && o.cap != 0) {
			o.len = before;
			out_str(&o, ",\"truncated\":true");
			break;
		}
	}
	out_str(&o, "}\n");
	if (o.cap > 0 && o.len >= o.cap) {
		/* Still too long (huge msg): end the buffer cleanly. */
		buf[o.cap - 1] = '\n';
	}
	return o.len;
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
	if (n > sizeof(line))
		n = sizeof(line);
	/* One write; a short write to a pipe/terminal is not retried so that
	 * lines are never interleaved with another writer's. */
	if (write(atomic_load(&log_fd), line, n) < 0) {
		/* Nowhere left to report it. */
	}
	errno = saved;
}
