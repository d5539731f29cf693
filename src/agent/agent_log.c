/*
 * agent_log.c - moat-agent's log: a ring holding the last AGENT_LOG_CAP
 * bytes of the agent's own events and its children's output (sshd, the
 * startup script), addressed by absolute offsets so that moatd's LOG
 * requests can follow it; every line is mirrored to stderr (the
 * container's log). Lines carry a UTC timestamp and a source. Events never
 * contain secrets: callers pass names, never values.
 *
 * The ring is this module's own state; the agent is single-threaded.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "textclean.h"

#define LOG_LINE_MAX 1024

static uint8_t *log_ring;
static uint64_t log_end;	/* bytes ever written */

struct agent_logsrc {
	char prefix[32];
	char line[LOG_LINE_MAX];
	size_t len;
};

int
agent_log_init(void)
{
	if (log_ring == NULL)
		log_ring = malloc(AGENT_LOG_CAP);
	return log_ring == NULL ? MOAT_ERR_NOMEM : 0;
}

static void
log_append(const uint8_t *p, size_t n)
{
	size_t done = 0;

	while (n > 0 && done < n) {
		ssize_t w = write(2, p + done, n - done);

		if (w <= 0)
			break;
		done += (size_t)w;
	}
	if (log_ring == NULL)
		return;
	if (n > AGENT_LOG_CAP) {
		log_end += n - AGENT_LOG_CAP;
		p += n - AGENT_LOG_CAP;
		n = AGENT_LOG_CAP;
	}
	while (n > 0) {
		size_t at = (size_t)(log_end % AGENT_LOG_CAP);
		size_t k = AGENT_LOG_CAP - at < n ? AGENT_LOG_CAP - at : n;

		memcpy(log_ring + at, p, k);
		log_end += k;
		p += k;
		n -= k;
	}
}

/* Writes "TIMESTAMP SOURCE: " then text (cleaned by text_clean(): no
 * escape sequences or control characters) and a newline, as one line. */
static void
log_line(const char *source, const char *text, size_t tlen)
{
	char buf[LOG_LINE_MAX + 96];
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ ", &tm);
	n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s: ", source);
	if (tlen > LOG_LINE_MAX)
		tlen = LOG_LINE_MAX;
	n += text_clean(text, tlen, buf + n, sizeof(buf) - n - 1);
	/* A line break inside one line would let text forge log lines. */
	for (size_t i = 0; i < n; i++)
		if (buf[i] == '\n')
			buf[i] = ' ';
	buf[n++] = '\n';
	log_append((const uint8_t *)buf, n);
}

void
agent_log(const char *fmt, ...)
{
	char msg[LOG_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	log_line("moat-agent", msg, strnlen(msg, sizeof(msg)));
}

struct agent_logsrc *
agent_logsrc_new(const char *prefix)
{
	struct agent_logsrc *s = calloc(1, sizeof(*s));

	if (s != NULL)
		snprintf(s->prefix, sizeof(s->prefix), "%s", prefix);
	return s;
}

void
agent_logsrc_feed(struct agent_logsrc *s, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n' || s->len == sizeof(s->line)) {
			log_line(s->prefix, s->line, s->len);
			s->len = 0;
			if (p[i] == '\n')
				continue;
		}
		if (p[i] != '\r')
			s->line[s->len++] = (char)p[i];
	}
}

void
agent_logsrc_free(struct agent_logsrc *s)
{
	if (s == NULL)
		return;
	if (s->len > 0)
		log_line(s->prefix, s->line, s->len);
	free(s);
}

size_t
agent_log_read(uint64_t off, uint8_t *out, size_t max, uint64_t *at,
    uint64_t *end)
{
	uint64_t start = log_end > AGENT_LOG_CAP ? log_end - AGENT_LOG_CAP : 0;
	size_t n, done = 0;

	if (off < start)
		off = start;
	if (off > log_end)
		off = log_end;
	*at = off;
	*end = log_end;
	n = log_end - off < max ? (size_t)(log_end - off) : max;
	if (log_ring == NULL)
		return 0;
	while (done < n) {
		size_t pos = (size_t)((off + done) % AGENT_LOG_CAP);
		size_t k = AGENT_LOG_CAP - pos < n - done ?
		    AGENT_LOG_CAP - pos : n - done;

		memcpy(out + done, log_ring + pos, k);
		done += k;
	}
	return n;
}
