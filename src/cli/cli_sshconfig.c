/*
 * cli_sshconfig.c - the managed block of ~/.ssh/config and moat's
 * known_hosts file (see cli_sshconfig.h): the text editors, the checks on
 * what the server sends before it reaches a file or a command line, and
 * the careful file reading and atomic writing.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "fdio.h"
#include "cli_out.h"
#include "cli_sshconfig.h"
#include "uri.h"

#define KNOWN_HOSTS_MAX (1024 * 1024)

/* ---- lines ---- */

/* One line of text: [start, start+len) without its "\n" (or "\r\n"),
 * next: where the following line starts. */
struct line {
	const char *p;
	size_t len;		/* without the line ending */
	size_t full;		/* with it */
};

static bool
next_line(const char *text, size_t len, size_t *off, struct line *l)
{
	const char *s, *nl;

	if (*off >= len)
		return false;
	s = text + *off;
	nl = memchr(s, '\n', len - *off);
	l->p = s;
	l->full = nl != NULL ? (size_t)(nl - s) + 1 : len - *off;
	l->len = nl != NULL ? (size_t)(nl - s) : l->full;
	if (l->len > 0 && s[l->len - 1] == '\r')
		l->len--;
	*off += l->full;
	return true;
}

/* True when the line, after leading blanks, starts with prefix. */
static bool
line_starts(const struct line *l, const char *prefix)
{
	size_t i = 0, n = strlen(prefix);

	while (i < l->len && (l->p[i] == ' ' || l->p[i] == '\t'))
		i++;
	return l->len - i >= n && memcmp(l->p + i, prefix, n) == 0;
}

/* True for a "Host ..." or "Match ..." line (keyword case-insensitive,
 * followed by a blank or '='). */
static bool
line_is_section(const struct line *l)
{
	static const char *const kw[] = { "host", "match" };
	size_t i = 0;

	while (i < l->len && (l->p[i] == ' ' || l->p[i] == '\t'))
		i++;
	for (size_t k = 0; k < 2; k++) {
		size_t n = strlen(kw[k]);

		if (l->len - i > n && strncasecmp(l->p + i, kw[k], n) == 0 &&
		    (l->p[i + n] == ' ' || l->p[i + n] == '\t' ||
		    l->p[i + n] == '='))
			return true;
	}
	return false;
}

/* The managed block's place: [*b0, *b1) are its bytes with both markers;
 * *bodyoff and *bodylen the lines between them. Returns 1 found, 0 none (then
 * *b0 is where a new block goes: before the first Host/Match line, or
 * len), MOAT_ERR_CORRUPT. */
static int
find_block(const char *text, size_t len, size_t *b0, size_t *b1,
    size_t *bodyoff, size_t *bodylen, char *err, size_t errlen)
{
	struct line l;
	size_t off = 0, start, lineno = 0, begin_line = 0;
	size_t section = len;
	bool have_section = false, in = false, found = false;

	*b0 = *b1 = *bodyoff = *bodylen = 0;
	while (start = off, next_line(text, len, &off, &l)) {
		lineno++;
		if (line_starts(&l, "# --- BEGIN moat")) {
			if (in || found) {
				snprintf(err, errlen, "line %zu: a second moat "
				    "BEGIN marker (the one on line %zu is "
				    "already open or closed)", lineno,
				    begin_line);
				return MOAT_ERR_CORRUPT;
			}
			in = true;
			begin_line = lineno;
			*b0 = start;
			*bodyoff = off;
		} else if (line_starts(&l, "# --- END moat")) {
			if (!in) {
				snprintf(err, errlen, "line %zu: a moat END "
				    "marker without a BEGIN marker before it",
				    lineno);
				return MOAT_ERR_CORRUPT;
			}
			in = false;
			found = true;
			*bodylen = start - *bodyoff;
			*b1 = off;
		} else if (!in && !have_section && line_is_section(&l)) {
			have_section = true;
			section = start;
		}
	}
	if (in) {
		snprintf(err, errlen, "line %zu: a moat BEGIN marker without "
		    "an END marker", begin_line);
		return MOAT_ERR_CORRUPT;
	}
	if (!found)
		*b0 = *b1 = section;
	return found ? 1 : 0;
}

/* Appends s with its "\n" line endings as eol. */
static int
append_eol(struct buf *b, const char *s, const char *eol)
{
	const char *nl;
	int r;

	while ((nl = strchr(s, '\n')) != NULL) {
		if ((r = buf_append(b, s, (size_t)(nl - s))) != 0 ||
		    (r = buf_append_str(b, eol)) != 0)
			return r;
		s = nl + 1;
	}
	return buf_append_str(b, s);
}

/* "\r\n" when the file's first line ends so, else "\n". */
static const char *
file_eol(const char *text, size_t len)
{
	const char *nl = text != NULL ? memchr(text, '\n', len) : NULL;

	return nl != NULL && nl > text && nl[-1] == '\r' ? "\r\n" : "\n";
}

int
cli_sshcfg_edit(const char *text, size_t len, const char *body, char **out,
    size_t *outlen, char *err, size_t errlen)
{
	struct buf b;
	size_t b0, b1, bo, bl;
	const char *eol;
	int r, found;

	*out = NULL;
	*outlen = 0;
	if (text == NULL)
		len = 0;
	if ((found = find_block(text, len, &b0, &b1, &bo, &bl, err,
	    errlen)) < 0)
		return found;
	/* The block keeps its own line endings once written (so that a
	 * newline added to a last line never changes them on the next run);
	 * a new block takes the file's. */
	if (found)
		eol = bo >= 2 && text[bo - 2] == '\r' && text[bo - 1] == '\n' ?
		    "\r\n" : "\n";
	else
		eol = file_eol(text, len);
	buf_init(&b, len + (body != NULL ? 2 * strlen(body) : 0) + 256);
	if ((r = buf_append(&b, text != NULL ? text : "", b0)) != 0)
		goto out;
	if (body != NULL) {
		/* At the end of a file whose last line has no newline. */
		if (b0 > 0 && text[b0 - 1] != '\n' &&
		    (r = buf_append_str(&b, eol)) != 0)
			goto out;
		if ((r = append_eol(&b, CLI_SSHCFG_BEGIN "\n", eol)) != 0 ||
		    (r = append_eol(&b, body, eol)) != 0 ||
		    (r = append_eol(&b, CLI_SSHCFG_END "\n", eol)) != 0)
			goto out;
	}
	if (len > b1 && (r = buf_append(&b, text + b1, len - b1)) != 0)
		goto out;
	if ((*out = buf_steal(&b, outlen)) == NULL)
		r = MOAT_ERR_NOMEM;
out:
	if (r == MOAT_ERR_NOMEM || r == MOAT_ERR_TOOBIG)
		snprintf(err, errlen, "out of memory");
	buf_free(&b);
	return r;
}

int
cli_sshcfg_block(const char *text, size_t len, struct buf *out)
{
	size_t b0, b1, bo, bl;
	char err[160];
	int found;

	buf_reset(out);
	if ((found = find_block(text, len, &b0, &b1, &bo, &bl, err,
	    sizeof(err))) <= 0)
		return found;
	/* Lines with "\n" endings, whatever the file uses. */
	{
		struct line l;
		size_t off = 0;

		while (next_line(text + bo, bl, &off, &l))
			if (buf_append(out, l.p, l.len) != 0 ||
			    buf_append_str(out, "\n") != 0)
				return MOAT_ERR_NOMEM;
	}
	return 1;
}

/* ---- files ---- */

/* The rules for a file moat edits (fd open on path). */
static int
check_file(int fd, const char *path, size_t max, struct stat *st, char *err,
    size_t errlen)
{
	if (fstat(fd, st) != 0) {
		snprintf(err, errlen, "cannot read %s: %s", path,
		    strerror(errno));
		return MOAT_ERR_IO;
	}
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "%s is not a regular file; moat left it "
		    "unchanged", path);
		return MOAT_ERR_INVAL;
	}
	if (st->st_uid != getuid() && st->st_uid != 0) {
		snprintf(err, errlen, "%s belongs to another user (uid %u); "
		    "moat left it unchanged", path, (unsigned)st->st_uid);
		return MOAT_ERR_PERM;
	}
	if ((st->st_mode & 022) != 0) {
		snprintf(err, errlen, "%s is writable by group or others (mode "
		    "%04o), so OpenSSH would refuse it and someone else may "
		    "have changed it; check it and run 'chmod go-w %s' (moat "
		    "left it unchanged)", path, (unsigned)(st->st_mode & 07777),
		    path);
		return MOAT_ERR_PERM;
	}
	if ((size_t)st->st_size > max) {
		snprintf(err, errlen, "%s is larger than %zu bytes; moat left it "
		    "unchanged", path, max);
		return MOAT_ERR_TOOBIG;
	}
	return 0;
}

int
cli_sshcfg_read_file(const char *path, size_t max, char **text, size_t *len,
    unsigned *mode, char *err, size_t errlen)
{
	struct stat st;
	struct buf b;
	char chunk[8192];
	int fd, r;

	*text = NULL;
	*len = 0;
	*mode = 0600;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK);
	if (fd < 0 && errno == ENOENT) {
		if ((*text = calloc(1, 1)) == NULL)
			return MOAT_ERR_NOMEM;
		return 0;
	}
	if (fd < 0 && errno == ELOOP) {
		snprintf(err, errlen, "%s is a symbolic link; moat does not "
		    "write through links (left it unchanged): edit the file it "
		    "points to with --ssh-config FILE", path);
		return MOAT_ERR_PERM;
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path,
		    strerror(errno));
		return MOAT_ERR_IO;
	}
	if ((r = check_file(fd, path, max, &st, err, errlen)) != 0)
		goto out;
	buf_init(&b, max);
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot read %s: %s", path,
			    strerror(errno));
			r = MOAT_ERR_IO;
			break;
		}
		if (n == 0)
			break;
		if ((r = buf_append(&b, chunk, (size_t)n)) != 0) {
			snprintf(err, errlen, "%s is larger than %zu bytes; "
			    "moat left it unchanged", path, max);
			break;
		}
	}
	if (r == 0 && (*text = buf_steal(&b, len)) == NULL)
		r = MOAT_ERR_NOMEM;
	buf_free(&b);
	*mode = (unsigned)(st.st_mode & 0777);
out:
	close(fd);
	return r;
}


int
cli_sshcfg_write_file(const char *path, const char *text, size_t len,
    unsigned mode, char *err, size_t errlen)
{
	char dir[4096], tmp[4200], base[256];
	size_t n = strlen(path);
	bool created = false;
	int fd = -1, dfd = -1, r = MOAT_ERR_IO;

	if (n >= sizeof(dir)) {
		snprintf(err, errlen, "path too long: %s", path);
		return MOAT_ERR_TOOBIG;
	}
	memcpy(dir, path, n + 1);
	snprintf(base, sizeof(base), "%s", basename(dir));
	memcpy(dir, path, n + 1);
	dirname(dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		snprintf(err, errlen, "cannot create %s: %s", dir,
		    strerror(errno));
		return MOAT_ERR_IO;
	}
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.moat-XXXXXX", dir, base) >=
	    (int)sizeof(tmp)) {
		snprintf(err, errlen, "path too long: %s", path);
		return MOAT_ERR_TOOBIG;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "cannot create a file in %s: %s", dir,
		    strerror(errno));
		goto out;
	}
	created = true;
	if (fchmod(fd, (mode_t)(mode & 0755)) != 0 ||
	    fd_write_all(fd, text, len) != 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		snprintf(err, errlen, "cannot write %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot replace %s: %s", path,
		    strerror(errno));
		goto out;
	}
	created = false;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
		(void)fsync(dfd);
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	if (dfd >= 0)
		close(dfd);
	return r;
}

int
cli_sshcfg_update(const char *path, const char *body, bool *changed,
    char *err, size_t errlen)
{
	char *old = NULL, *text = NULL;
	size_t oldlen = 0, len = 0;
	unsigned mode = 0600;
	int r;

	*changed = false;
	if ((r = cli_sshcfg_read_file(path, CLI_SSHCFG_MAX, &old, &oldlen,
	    &mode, err, errlen)) != 0)
		goto out;
	if ((r = cli_sshcfg_edit(old, oldlen, body, &text, &len, err,
	    errlen)) != 0) {
		if (r == MOAT_ERR_CORRUPT) {
			char why[512];

			snprintf(why, sizeof(why), "%s", err);
			snprintf(err, errlen, "%s: %s; fix the markers by hand "
			    "(moat left the file unchanged)", path, why);
		}
		goto out;
	}
	if (len == oldlen && memcmp(text, old, len) == 0)
		goto out;	/* nothing to do: the file stays as it is */
	if ((r = cli_sshcfg_write_file(path, text, len, mode, err, errlen)) !=
	    0)
		goto out;
	*changed = true;
out:
	free(old);
	free(text);
	return r;
}

/* ---- what goes into the files ---- */

bool
cli_ssh_host_ok(const char *h)
{
	size_t n = h != NULL ? strlen(h) : 0;

	if (n == 0 || n >= CLI_SSH_HOST_MAX || h[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' &&
		    h[i] <= 'Z') || (h[i] >= '0' && h[i] <= '9') ||
		    h[i] == '.' || h[i] == ':' || h[i] == '-' || h[i] == '_'))
			return false;
	return true;
}

bool
cli_ssh_key_ok(const char *k)
{
	const char *sp = k != NULL ? strchr(k, ' ') : NULL;
	size_t i;

	if (sp == NULL || sp == k || sp[1] == '\0' || strlen(k) > 16384)
		return false;
	for (i = 0; k + i < sp; i++)
		if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= '0' &&
		    k[i] <= '9') || k[i] == '@' || k[i] == '.' || k[i] == '-'))
			return false;
	for (const char *p = sp + 1; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '+' || *p == '/' ||
		    *p == '='))
			return false;
	return true;
}

bool
cli_ssh_label_ok(const char *s)
{
	return s != NULL && uri_dns_label(s, strlen(s));
}

int
cli_ssh_hostpat(const char *host, long port, char *out, size_t outlen)
{
	int n = port == 22 ? snprintf(out, outlen, "%s", host) :
	    snprintf(out, outlen, "[%s]:%ld", host, port);

	return n < 0 || (size_t)n >= outlen ? MOAT_ERR_TOOBIG : 0;
}

int
cli_ssh_quote_path(const char *path, char *out, size_t outlen)
{
	size_t o = 0;

	if (path[0] != '/' || strstr(path, "${") != NULL)
		return MOAT_ERR_INVAL;
	if (outlen < 3)
		return MOAT_ERR_TOOBIG;
	out[o++] = '"';
	for (const char *p = path; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c < 0x20 || c == 0x7f || c == '"')
			return MOAT_ERR_INVAL;
		if (o + 4 > outlen)
			return MOAT_ERR_TOOBIG;
		if (c == '%')
			out[o++] = '%';
		out[o++] = (char)c;
	}
	out[o++] = '"';
	out[o] = '\0';
	return 0;
}

int
cli_known_hosts_edit(const char *text, size_t len, const char *hostpat,
    const char *const *keys, size_t nkeys, char **out, size_t *outlen)
{
	struct buf b;
	struct line l;
	size_t off = 0, hl = strlen(hostpat);
	int r = 0;

	*out = NULL;
	*outlen = 0;
	if (text == NULL)
		len = 0;
	buf_init(&b, len + 64 * 1024);
	while (r == 0 && next_line(text, len, &off, &l)) {
		/* A line for hostpat: "HOSTPAT KEY...". */
		if (l.len > hl && memcmp(l.p, hostpat, hl) == 0 &&
		    (l.p[hl] == ' ' || l.p[hl] == '\t'))
			continue;
		if ((r = buf_append(&b, l.p, l.len)) == 0)
			r = buf_append_str(&b, "\n");
	}
	for (size_t i = 0; r == 0 && i < nkeys; i++)
		r = buf_appendf(&b, "%s %s\n", hostpat, keys[i]);
	if (r == 0 && (*out = buf_steal(&b, outlen)) == NULL)
		r = MOAT_ERR_NOMEM;
	buf_free(&b);
	return r;
}

int
cli_known_hosts_update(const char *path, const char *hostpat,
    const char *const *keys, size_t nkeys, char *err, size_t errlen)
{
	char *old = NULL, *text = NULL;
	size_t oldlen = 0, len = 0;
	unsigned mode;
	int r;

	if ((r = cli_sshcfg_read_file(path, KNOWN_HOSTS_MAX, &old, &oldlen,
	    &mode, err, errlen)) != 0)
		goto out;
	if ((r = cli_known_hosts_edit(old, oldlen, hostpat, keys, nkeys, &text,
	    &len)) != 0) {
		snprintf(err, errlen, "%s: %s", path, moat_strerror(r));
		goto out;
	}
	if (len == oldlen && memcmp(text, old, len) == 0)
		goto out;
	r = cli_sshcfg_write_file(path, text, len, 0600, err, errlen);
out:
	free(old);
	free(text);
	return r;
}

int
cli_sshcfg_render(const char *about, const char *host, long port,
    const char *known_hosts, const struct cli_sshcfg_host *hosts, size_t n,
    struct buf *out)
{
	char kh[4200], clean[512];
	int r;

	if (!cli_ssh_host_ok(host) || port < 1 || port > 65535)
		return MOAT_ERR_INVAL;
	if ((r = cli_ssh_quote_path(known_hosts, kh, sizeof(kh))) != 0)
		return r;
	if (about != NULL && (r = buf_appendf(out, "# %s\n", cli_clean(about,
	    clean, sizeof(clean)))) != 0)
		return r;
	if (n == 0 && (r = buf_append_str(out, "# (no workspaces yet: run "
	    "moat config-ssh again after moat ws create)\n")) != 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		/* Names from the server: only what the gateway accepts. */
		if (!cli_ssh_host_ok(hosts[i].alias) ||
		    !cli_ssh_host_ok(hosts[i].user))
			return MOAT_ERR_INVAL;
		if ((r = buf_appendf(out, "Host %s\n"
		    "  HostName %s\n"
		    "  Port %ld\n"
		    "  User %s\n"
		    "  UserKnownHostsFile %s\n"
		    "  GlobalKnownHostsFile /dev/null\n"
		    "  StrictHostKeyChecking yes\n"
		    "  UpdateHostKeys no\n",
		    hosts[i].alias, host, port, hosts[i].user, kh)) != 0)
			return r;
	}
	return 0;
}
