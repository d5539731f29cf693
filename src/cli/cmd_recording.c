/*
 * cmd_recording.c - "moat recording": SSH session recordings
 * (recordings:read: auditors, security officers, admins, owners).
 *
 *   moat recording list [--user U] [--workspace [OWNER/]NAME] [--limit N]
 *                       [--json]
 *   moat recording get ID [-o FILE]
 *
 * get writes the asciicast v2 text as the server sends it (the API streams
 * it; moat does not hold it all in memory), to stdout or to FILE (mode
 * 0600: a recording holds whatever the session printed; written to a
 * temporary file beside it and renamed once complete, so FILE is never
 * left half-written). Reading a recording is an audit event on the
 * server.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_cmd.h"
#include "cli_http.h"
#include "cli_out.h"
#include "cli_sse.h"

void
cmd_recording_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat recording list [--user USER] [--workspace "
	    "[OWNER/]NAME]\n"
	    "                           [--limit N] [--json]\n"
	    "       moat recording get ID [-o FILE]\n\n"
	    "list shows recorded SSH sessions, newest first (default the last\n"
	    "50; --limit 1 to 500), of one user or one workspace (NAME alone\n"
	    "is yours). get prints one recording as asciicast v2 text, or\n"
	    "writes it to FILE (mode 0600); replay it with 'asciinema play\n"
	    "FILE' or 'asciinema cat FILE'. Needs the recordings:read\n"
	    "permission (auditors, security officers, admins, owners);\n"
	    "every read is audited.\n");
}

struct list_ctx {
	const char *user;
	const char *workspace;
	const char *limit;
	const char *me;		/* for a workspace without OWNER/ */
};

/* Appends "&name=escaped(value)" (or '?' first) to out. */
static int
add_query(char *out, size_t outlen, const char *name, const char *value)
{
	char *e = cli_escape(value);
	size_t n = strlen(out);
	int w = -1;

	if (e != NULL)
		w = snprintf(out + n, outlen - n, "%s%s=%s",
		    strchr(out, '?') != NULL ? "&" : "?", name, e);
	free(e);
	return w < 0 || (size_t)w >= outlen - n ? MOAT_ERR_TOOBIG : 0;
}

static int
list_path(void *arg, char *out, size_t outlen)
{
	struct list_ctx *x = arg;
	uint64_t n;

	snprintf(out, outlen, "/api/v1/recordings");
	if (x->limit != NULL && (cli_parse_uint(x->limit, 500, &n) != 0 ||
	    n == 0)) {
		fprintf(stderr, "moat recording list: --limit takes a number "
		    "from 1 to 500\n");
		return CLI_USAGE;
	}
	if (x->user != NULL && add_query(out, outlen, "user", x->user) != 0)
		return CLI_USAGE;
	if (x->workspace != NULL) {
		char owner[128], name[128], ref[260];

		/* NAME alone is the caller's, as everywhere in moat; the
		 * server takes OWNER/NAME (or an id: 32 hex digits). */
		if (strchr(x->workspace, '/') == NULL &&
		    strlen(x->workspace) == 32 &&
		    strspn(x->workspace, "0123456789abcdef") == 32) {
			snprintf(ref, sizeof(ref), "%s", x->workspace);
		} else if (cli_ws_ref(x->workspace, "", owner, sizeof(owner),
		    name, sizeof(name)) != 0) {
			fprintf(stderr, "moat recording list: '%s' is not a "
			    "workspace: use NAME or OWNER/NAME\n",
			    x->workspace);
			return CLI_USAGE;
		} else {
			snprintf(ref, sizeof(ref), "%s/%s", owner[0] != '\0' ?
			    owner : x->me, name);
		}
		if (add_query(out, outlen, "workspace", ref) != 0)
			return CLI_USAGE;
	}
	if (x->limit != NULL && add_query(out, outlen, "limit", x->limit) != 0)
		return CLI_USAGE;
	return 0;
}

static void
rec_row(const struct cli_conn *c, const json_t *r, const char **row,
    char cell[][CLI_CELL_MAX])
{
	const json_t *d = json_object_get(r, "duration");
	json_int_t bytes = json_integer_value(json_object_get(r, "bytes"));

	(void)c;
	row[0] = cli_str(r, "id");
	row[1] = cli_str(r, "user");
	snprintf(cell[2], CLI_CELL_MAX, "%s/%s", cli_str(r, "owner"),
	    cli_str(r, "workspace"));
	row[2] = cell[2];
	row[3] = cli_str(r, "client_addr");
	row[4] = cli_time(json_string_value(json_object_get(r, "started_at")),
	    cell[4], CLI_CELL_MAX);
	if (json_object_get(r, "ended_at") == NULL) {
		row[5] = "unfinished";
	} else if (json_is_number(d)) {
		double s = json_number_value(d);

		if (s < 60)
			snprintf(cell[5], CLI_CELL_MAX, "%.1fs", s);
		else
			snprintf(cell[5], CLI_CELL_MAX, "%dm%02ds",
			    (int)(s / 60), (int)s % 60);
		row[5] = cell[5];
	} else {
		row[5] = "-";
	}
	row[6] = cli_bytes(bytes > 0 ? (uint64_t)bytes : 0, cell[6],
	    CLI_CELL_MAX);
}

static int
rec_list(int argc, char **argv)
{
	static const char *const head[] = { "ID", "USER", "WORKSPACE",
	    "CLIENT", "STARTED", "DURATION", "SIZE" };
	struct list_ctx x = { NULL, NULL, NULL, "" };
	const struct cli_opt opts[] = {
		{ "--user", "-u", CLI_OPT_STR, &x.user },
		{ "--workspace", "-w", CLI_OPT_STR, &x.workspace },
		{ "--limit", "-n", CLI_OPT_STR, &x.limit },
	};
	struct cli_list_cmd cmd = {
		"moat recording list", cmd_recording_usage,
		"/api/v1/recordings", "recordings", false, 7, head, rec_row,
		opts, 3, list_path, &x,
	};
	struct cli_conn *c = NULL;
	int status;

	/* A workspace named without its owner is the caller's: that needs
	 * the user name before the list command opens its connection. */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--") == 0)
			break;
		else if (strncmp(argv[i], "--workspace", 11) == 0 ||
		    strcmp(argv[i], "-w") == 0) {
			if (cli_conn_open(&c) != 0)
				return CLI_FAILED;
			break;
		}
	if (c != NULL && c->username != NULL)
		x.me = c->username;
	status = cli_run_list(&cmd, argc, argv);
	cli_conn_free(c);
	return status;
}

/* ---- get ---- */

struct dl {
	int fd;
	bool failed;
	int err;
};

static int
on_data(void *arg, const char *p, size_t n)
{
	struct dl *d = arg;

	while (n > 0) {
		ssize_t w = write(d->fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			d->failed = true;
			d->err = errno;
			return 1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
rec_get(int argc, char **argv)
{
	static const char prog[] = "moat recording get";
	struct cli_conn *c = NULL;
	struct dl d = { STDOUT_FILENO, false, 0 };
	struct cli_stream st;
	const char *pos[1], *file = NULL;
	char path[1200], tmp[PATH_MAX + 32], dir[PATH_MAX], base[NAME_MAX + 1];
	bool created = false;
	size_t npos;
	int r, status = CLI_FAILED;
	const struct cli_opt opts[] = {
		{ "--output", "-o", CLI_OPT_STR, &file },
	};

	if ((r = cli_parse(prog, argc, argv, opts, 1, pos, 1, 1, &npos,
	    cmd_recording_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (strspn(pos[0], "0123456789abcdef") != strlen(pos[0]) ||
	    strlen(pos[0]) == 0 || strlen(pos[0]) > 64) {
		fprintf(stderr, "%s: '%s' is not a recording id (hex digits, "
		    "see moat recording list)\n", prog, pos[0]);
		return CLI_USAGE;
	}
	if (cli_path(path, sizeof(path), "/api/v1/recordings/", pos[0],
	    NULL) != 0)
		return CLI_USAGE;
	if (file != NULL && (file[0] == '\0' || strlen(file) >= PATH_MAX)) {
		fprintf(stderr, "%s: -o needs a file name\n", prog);
		return CLI_USAGE;
	}
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	status = CLI_FAILED;
	if (file != NULL && strcmp(file, "-") != 0) {
		snprintf(dir, sizeof(dir), "%s", file);
		snprintf(base, sizeof(base), "%s", basename(dir));
		snprintf(dir, sizeof(dir), "%s", file);
		snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dirname(dir), base);
		if ((d.fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
			fprintf(stderr, "%s: cannot create a file beside %s: "
			    "%s\n", prog, file, strerror(errno));
			goto out;
		}
		created = true;
	}
	memset(&st, 0, sizeof(st));
	st.on_data = on_data;
	st.arg = &d;
	if ((status = cli_api_stream(c, path, &st)) != 0)
		goto out;
	status = CLI_FAILED;
	if (d.failed) {
		fprintf(stderr, "%s: cannot write %s: %s\n", prog, file != NULL ?
		    file : "the output", strerror(d.err));
		goto out;
	}
	if (st.broken) {
		fprintf(stderr, "%s: the connection broke during the "
		    "download\n", prog);
		goto out;
	}
	if (created) {
		if (fsync(d.fd) != 0 || close(d.fd) != 0) {
			d.fd = -1;
			fprintf(stderr, "%s: cannot write %s: %s\n", prog, tmp,
			    strerror(errno));
			goto out;
		}
		d.fd = -1;
		if (rename(tmp, file) != 0) {
			fprintf(stderr, "%s: cannot write %s: %s\n", prog, file,
			    strerror(errno));
			goto out;
		}
		created = false;
		fprintf(stderr, "Wrote recording %s to %s\n", pos[0], file);
	}
	status = CLI_OK;
out:
	if (created) {
		if (d.fd >= 0)
			close(d.fd);
		unlink(tmp);
	}
	cli_conn_free(c);
	return status;
}

static const struct cli_command subs[] = {
	{ "list", rec_list, NULL, NULL },
	{ "ls", rec_list, NULL, NULL },
	{ "get", rec_get, NULL, NULL },
};

int
cmd_recording(int argc, char **argv)
{
	return cli_dispatch("recording", argc, argv, subs,
	    sizeof(subs) / sizeof(subs[0]), cmd_recording_usage);
}
