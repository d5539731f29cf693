/*
 * h_audit.c - GET /api/v1/audit: the most recent audit events, read from
 * the end of the hash-chained audit file (audit.h).
 *
 * Filters: type (exact, or a prefix when it ends in "." or ".*"), since (a
 * sequence number: events after it; or an RFC 3339 UTC time: events at or
 * after it), limit (1..1000, default 100). The file is read backwards in
 * chunks and the scan stops once limit events matched, an event older than
 * since was met, or AUDIT_SCAN_MAX bytes were read (then "truncated" is
 * true), so a request costs a bounded amount whatever the file's size. A
 * partial last line (being written) is skipped. Events come out oldest
 * first.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "app.h"
#include "audit.h"
#include "log.h"

#include "api/api.h"
#include "api/api_int.h"

#define AUDIT_CHUNK (64 * 1024)
#define AUDIT_SCAN_MAX (32 * 1024 * 1024)
#define AUDIT_LINE_MAX (4 * AUDIT_MAX_EVENT)
#define AUDIT_LIMIT_DEFAULT 100
#define AUDIT_LIMIT_MAX 1000

struct audit_filter {
	char type[128];
	bool prefix;
	bool by_seq, by_time;
	unsigned long long seq;
	int64_t sec;
	long nsec;
	size_t limit;
	/* Results. */
	json_t *found;		/* newest first */
	bool done;
};

/* "2026-12-03T16:02:25[.123456789]Z" -> seconds and nanoseconds. */
static int
audit_parse_time(const char *s, int64_t *sec, long *nsec)
{
	struct tm tm;
	int v[6];
	static const int pos[6] = { 0, 5, 8, 11, 14, 17 };
	static const int len[6] = { 4, 2, 2, 2, 2, 2 };
	static const char sep[6] = { '-', '-', 'T', ':', ':', '\0' };
	const char *p;
	long ns = 0;
	int digits = 0;

	if (strlen(s) < 20)
		return MOAT_ERR_INVAL;
	for (int i = 0; i < 6; i++) {
		v[i] = 0;
		for (int k = 0; k < len[i]; k++) {
			char ch = s[pos[i] + k];

			if (ch < '0' || ch > '9')
				return MOAT_ERR_INVAL;
			v[i] = v[i] * 10 + (ch - '0');
		}
		if (sep[i] != '\0' && s[pos[i] + len[i]] != sep[i] &&
		    !(sep[i] == 'T' && s[pos[i] + len[i]] == 't'))
			return MOAT_ERR_INVAL;
	}
	p = s + 19;
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			if (digits < 9) {
				ns = ns * 10 + (*p - '0');
				digits++;
			}
			p++;
		}
		if (digits == 0)
			return MOAT_ERR_INVAL;
		while (digits++ < 9)
			ns *= 10;
	}
	if ((*p != 'Z' && *p != 'z') || p[1] != '\0')
		return MOAT_ERR_INVAL;
	if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 ||
	    v[4] > 59 || v[5] > 60)
		return MOAT_ERR_INVAL;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = v[0] - 1900;
	tm.tm_mon = v[1] - 1;
	tm.tm_mday = v[2];
	tm.tm_hour = v[3];
	tm.tm_min = v[4];
	tm.tm_sec = v[5];
	*sec = (int64_t)timegm(&tm);
	*nsec = ns;
	return 0;
}

static int
audit_parse_query(struct api_call *c, struct audit_filter *f)
{
	char v[128];
	int r;

	memset(f, 0, sizeof(*f));
	f->limit = AUDIT_LIMIT_DEFAULT;
	if ((r = api__query(c->query, "type", f->type, sizeof(f->type))) < 0)
		goto bad_type;
	if (r == 1 && f->type[0] != '\0') {
		size_t n = strlen(f->type);

		if (n >= 2 && strcmp(f->type + n - 2, ".*") == 0) {
			f->type[n - 1] = '\0';
			f->prefix = true;
		} else if (f->type[n - 1] == '.') {
			f->prefix = true;
		}
	}
	if ((r = api__query(c->query, "limit", v, sizeof(v))) < 0)
		goto bad_limit;
	if (r == 1) {
		char *end;
		long n;

		errno = 0;
		n = strtol(v, &end, 10);
		if (errno != 0 || v[0] == '\0' || *end != '\0' || n < 1 ||
		    n > AUDIT_LIMIT_MAX)
			goto bad_limit;
		f->limit = (size_t)n;
	}
	if ((r = api__query(c->query, "since", v, sizeof(v))) < 0)
		goto bad_since;
	if (r == 1 && v[0] != '\0') {
		if (strspn(v, "0123456789") == strlen(v)) {
			char *end;

			errno = 0;
			f->seq = strtoull(v, &end, 10);
			if (errno != 0 || *end != '\0')
				goto bad_since;
			f->by_seq = true;
		} else if (audit_parse_time(v, &f->sec, &f->nsec) == 0) {
			f->by_time = true;
		} else {
			goto bad_since;
		}
	}
	return 0;
bad_type:
	api_error(c, 400, "invalid_request", "type is malformed or too long");
	return MOAT_ERR_INVAL;
bad_limit:
	api_error(c, 400, "invalid_request", "limit must be a number from 1 "
	    "to %d", AUDIT_LIMIT_MAX);
	return MOAT_ERR_INVAL;
bad_since:
	api_error(c, 400, "invalid_request", "since must be a sequence number "
	    "or an RFC 3339 UTC time (2026-12-03T16:02:25Z)");
	return MOAT_ERR_INVAL;
}

/* Looks at one complete line (newest first). */
static void
audit_line(struct audit_filter *f, const char *line, size_t len)
{
	json_t *ev;
	const char *type, *t;

	if (len == 0)
		return;
	if ((ev = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
		return;
	if (!json_is_object(ev))
		goto out;
	if (f->by_seq) {
		json_t *s = json_object_get(ev, "seq");

		if (json_is_integer(s) &&
		    (unsigned long long)json_integer_value(s) <= f->seq) {
			f->done = true;
			goto out;
		}
	}
	if (f->by_time && (t = json_get_str(ev, "time")) != NULL) {
		int64_t sec;
		long nsec;

		if (audit_parse_time(t, &sec, &nsec) == 0 &&
		    (sec < f->sec || (sec == f->sec && nsec < f->nsec))) {
			f->done = true;
			goto out;
		}
	}
	if (f->type[0] != '\0') {
		type = json_get_str(ev, "type");
		if (type == NULL)
			goto out;
		if (f->prefix ? strncmp(type, f->type, strlen(f->type)) != 0 :
		    strcmp(type, f->type) != 0)
			goto out;
	}
	json_array_append(f->found, ev);
	if (json_array_size(f->found) >= f->limit)
		f->done = true;
out:
	json_decref(ev);
}

/* Reads fd backwards; returns 0 or an error; *truncated when the scan
 * bound stopped it. */
static int
audit_scan(int fd, struct audit_filter *f, bool *truncated)
{
	struct stat sb;
	off_t pos;
	char *carry = NULL, *buf = NULL;
	size_t carry_len = 0, scanned = 0;
	bool skip_tail = true, skip_next = false;
	int r = MOAT_ERR_IO;

	*truncated = false;
	if (fstat(fd, &sb) != 0)
		return moat_err_from_errno(errno);
	pos = sb.st_size;
	while (pos > 0 && !f->done) {
		size_t n = pos > AUDIT_CHUNK ? AUDIT_CHUNK : (size_t)pos;
		size_t total, e;
		ssize_t got;

		if (scanned >= AUDIT_SCAN_MAX) {
			*truncated = true;
			break;
		}
		pos -= (off_t)n;
		scanned += n;
		if ((buf = malloc(n + carry_len)) == NULL) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
		got = pread(fd, buf, n, pos);
		if (got < 0 || (size_t)got != n) {
			r = got < 0 ? moat_err_from_errno(errno) : MOAT_ERR_IO;
			goto out;
		}
		if (carry_len > 0)
			memcpy(buf + n, carry, carry_len);
		total = n + carry_len;
		free(carry);
		carry = NULL;
		carry_len = 0;
		e = total;
		for (size_t i = total; i > 0 && !f->done; i--) {
			if (buf[i - 1] != '\n')
				continue;
			/* [i, e) is a complete line. */
			if (skip_tail)
				skip_tail = false;
			else if (skip_next)
				skip_next = false;
			else
				audit_line(f, buf + i, e - i);
			e = i - 1;
		}
		if (f->done)
			break;
		if (pos == 0) {
			if (!skip_tail && !skip_next)
				audit_line(f, buf, e);
			break;
		}
		if (e > AUDIT_LINE_MAX) {
			/* A line this long is not an event: skip it. */
			skip_next = !skip_tail;
		} else if (e > 0) {
			if ((carry = malloc(e)) == NULL) {
				r = MOAT_ERR_NOMEM;
				goto out;
			}
			memcpy(carry, buf, e);
			carry_len = e;
		}
		free(buf);
		buf = NULL;
	}
	r = 0;
out:
	free(buf);
	free(carry);
	return r;
}

void
h_audit_list(struct api_call *c)
{
	struct api_state *st = c->app->api;
	struct audit_filter f;
	char path[PATH_MAX];
	json_t *events = NULL;
	bool truncated = false;
	int fd = -1, r;

	if (audit_parse_query(c, &f) != 0)
		return;
	if (st->audit_path != NULL)
		snprintf(path, sizeof(path), "%s", st->audit_path);
	else if (snprintf(path, sizeof(path), "%s/audit/audit.log",
	    c->app->data_dir != NULL ? c->app->data_dir : ".") >=
	    (int)sizeof(path)) {
		api__fail(c, MOAT_ERR_TOOBIG, "audit file path");
		return;
	}
	if ((f.found = json_array()) == NULL || (events = json_array()) == NULL) {
		api__fail(c, MOAT_ERR_NOMEM, "audit events");
		goto out;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno != ENOENT) {
			api__fail(c, moat_err_from_errno(errno), "audit file");
			goto out;
		}
	} else if ((r = audit_scan(fd, &f, &truncated)) != 0) {
		api__fail(c, r, "audit file");
		goto out;
	}
	for (size_t i = json_array_size(f.found); i > 0; i--)
		json_array_append(events, json_array_get(f.found, i - 1));
	api_reply(c, 200, json_pack("{s:O,s:b}", "events", events,
	    "truncated", truncated));
out:
	if (fd >= 0)
		close(fd);
	json_decref(events);
	json_decref(f.found);
}
