/*
 * cmd_ws.c - "moat ws": workspaces (workspaces:own for one's own; someone
 * else's need workspaces:all: admins and owners).
 *
 *   moat ws create NAME [--template T] [--owner USER] [--wait]
 *   moat ws list [--owner USER | --all] [--json]
 *   moat ws show [OWNER/]NAME [--json]
 *   moat ws start|stop|restart [OWNER/]NAME [--wait]
 *   moat ws delete [OWNER/]NAME [--wait] [--yes]
 *   moat ws logs [OWNER/]NAME [--follow]
 *   moat ws events [OWNER/]NAME
 *   moat ws stats [OWNER/]NAME [--json]
 *
 * A workspace is named OWNER/NAME; NAME alone is the logged-in user's.
 *
 * Waiting. The server's event stream (GET .../events, Server-Sent Events)
 * replays the workspace's recent events before the new ones, and gives no
 * way to start "from now". So before asking for a change, --wait reads that
 * backlog once, until the stream has been quiet for a moment, and keeps the
 * last event id; after the change it follows the stream from that id,
 * printing each event as a line, until the state is the target or
 * "failed". Every 10 s without an answer, and whenever the stream ends,
 * the workspace itself is read (GET) in case events were missed (after a
 * moatd restart, say). A new workspace (create --wait) has no backlog to
 * skip.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_cmd.h"
#include "cli_http.h"
#include "cli_out.h"
#include "cli_sse.h"
#include "textclean.h"

#define WS_PART_MAX	128	/* bytes of an owner or a name */
#define SSE_LINE_MAX	(256 * 1024)
#define SSE_DATA_MAX	(256 * 1024)
#define LINES_MAX	(1024 * 1024)
#define PROBE_QUIET_MS	600	/* backlog read: quiet this long = done */
#define PROBE_EMPTY_MS	2000	/* ... or nothing at all for this long */
#define PROBE_MAX_MS	5000
#define CHECK_MS	10000	/* read the workspace this often */
#define MIB		(1024ULL * 1024)

void
cmd_ws_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat ws create NAME [--template T] [--owner USER] [--wait]\n"
	    "       moat ws list [--owner USER | --all] [--json]\n"
	    "       moat ws show [OWNER/]NAME [--json]\n"
	    "       moat ws start [OWNER/]NAME [--wait]\n"
	    "       moat ws stop [OWNER/]NAME [--wait]\n"
	    "       moat ws restart [OWNER/]NAME [--wait]\n"
	    "       moat ws delete [OWNER/]NAME [--wait] [--yes]\n"
	    "       moat ws logs [OWNER/]NAME [--follow]\n"
	    "       moat ws events [OWNER/]NAME\n"
	    "       moat ws stats [OWNER/]NAME [--json]\n\n"
	    "A workspace is named OWNER/NAME; NAME alone means yours.\n"
	    "create makes a workspace from a template (default base) and\n"
	    "starts it; --owner makes it for someone else (administrators).\n"
	    "list shows yours, --owner USER someone's, --all everyone's.\n"
	    "--wait follows the workspace's events, printed as lines (STATE,\n"
	    "PULL, OUTPUT), until it is running (create, start, restart),\n"
	    "stopped (stop) or gone (delete); a failure exits with status 1\n"
	    "and its reason. delete destroys the home volume and its keys: it\n"
	    "asks for confirmation on a terminal, --yes skips it (and is\n"
	    "required without a terminal).\n"
	    "logs prints the startup script's output and the agent's log;\n"
	    "--follow (-f) keeps printing new output. events prints the event\n"
	    "stream until the workspace is deleted (Ctrl-C to stop).\n");
}

/* ---- names and paths ---- */

int
cli_ws_ref(const char *ref, const char *me, char *owner, size_t ownerlen,
    char *name, size_t namelen)
{
	const char *slash = strchr(ref, '/'), *n = ref;
	size_t olen = 0;

	if (slash != NULL) {
		olen = (size_t)(slash - ref);
		n = slash + 1;
		if (olen == 0 || strchr(n, '/') != NULL)
			return MOAT_ERR_INVAL;
	}
	if (*n == '\0' || strlen(n) >= namelen || olen >= ownerlen)
		return MOAT_ERR_INVAL;
	if (slash != NULL) {
		memcpy(owner, ref, olen);
		owner[olen] = '\0';
	} else if (me != NULL) {
		if (strlen(me) >= ownerlen)
			return MOAT_ERR_INVAL;
		memcpy(owner, me, strlen(me) + 1);
	} else {
		owner[0] = '\0';
	}
	memcpy(name, n, strlen(n) + 1);
	return 0;
}

/* Checks ref's syntax (before anything is opened): CLI_OK or CLI_USAGE
 * after one line. */
static int
check_ref(const char *prog, const char *ref)
{
	char o[WS_PART_MAX], n[WS_PART_MAX];

	if (cli_ws_ref(ref, NULL, o, sizeof(o), n, sizeof(n)) != 0) {
		fprintf(stderr, "%s: '%s' is not a workspace: use NAME or "
		    "OWNER/NAME\n", prog, ref);
		return CLI_USAGE;
	}
	return CLI_OK;
}

/* "/api/v1/workspaces/OWNER/NAME" + suffix (escaped) into out. */
static int
ws_path(char *out, size_t outlen, const char *owner, const char *name,
    const char *suffix)
{
	char *eo = cli_escape(owner), *en = cli_escape(name);
	int n = -1;

	if (eo != NULL && en != NULL)
		n = snprintf(out, outlen, "/api/v1/workspaces/%s/%s%s", eo, en,
		    suffix != NULL ? suffix : "");
	free(eo);
	free(en);
	return n < 0 || (size_t)n >= outlen ? MOAT_ERR_TOOBIG : 0;
}

/* A parsed and resolved [OWNER/]NAME of the current user. */
struct ws_ref {
	char owner[WS_PART_MAX];
	char name[WS_PART_MAX];
	char path[1024];	/* /api/v1/workspaces/OWNER/NAME */
};

static int
resolve(const char *prog, const struct cli_conn *c, const char *arg,
    struct ws_ref *w)
{
	if (cli_ws_ref(arg, c->username != NULL ? c->username : "",
	    w->owner, sizeof(w->owner), w->name, sizeof(w->name)) != 0 ||
	    w->owner[0] == '\0' || ws_path(w->path, sizeof(w->path), w->owner,
	    w->name, NULL) != 0) {
		fprintf(stderr, "%s: '%s' is not a workspace: use NAME or "
		    "OWNER/NAME\n", prog, arg);
		return CLI_USAGE;
	}
	return CLI_OK;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- following the event stream ---- */

enum follow_result {
	FOLLOW_GOING = 0,
	FOLLOW_REACHED,
	FOLLOW_FAILED,
	FOLLOW_BROKEN		/* the stream was malformed */
};

/* Stops the SSE parser from a callback (any non-zero value). */
#define FOLLOW_STOP 1

struct follow {
	struct cli_sse sse;
	struct cli_wsev ev;		/* across reconnections */
	struct buf out;			/* lines to print */
	const char *target;		/* running, stopped, gone; NULL none */
	bool probe;			/* only read the backlog's ids */
	bool restart;			/* running must follow another state */
	bool seen_other;		/* a state other than target came */
	bool stale_failed;		/* "failed" was the state before */
	enum follow_result result;
	char why[CLI_WSEV_REASON_MAX + 64];
	uint64_t start_ms, data_ms;	/* data_ms: 0 until bytes came */
	uint64_t max_id;		/* the greatest numeric event id */
	unsigned target_checks;		/* restart: GETs that saw running */
	int sse_err;
};

static void
follow_print(struct follow *f)
{
	if (f->out.len > 0) {
		fwrite(f->out.data, 1, f->out.len, stdout);
		fflush(stdout);
	}
	buf_reset(&f->out);
}

/* A state (from an event or a GET) against the target. */
static void
follow_state(struct follow *f, const char *state, const char *reason)
{
	if (f->target == NULL)
		return;
	if (strcmp(state, "deleted") == 0) {
		if (strcmp(f->target, "gone") == 0) {
			f->result = FOLLOW_REACHED;
		} else {
			f->result = FOLLOW_FAILED;
			snprintf(f->why, sizeof(f->why), "it was deleted");
		}
		return;
	}
	if (strcmp(state, f->target) == 0 && (!f->restart || f->seen_other)) {
		f->result = FOLLOW_REACHED;
		return;
	}
	if (strcmp(state, "failed") == 0 && !f->stale_failed) {
		f->result = FOLLOW_FAILED;
		snprintf(f->why, sizeof(f->why), "%s", reason[0] != '\0' ?
		    reason : "no reason given");
		return;
	}
	if (strcmp(state, f->target) != 0) {
		f->seen_other = true;
		f->stale_failed = false;
	}
}

static int
on_event(void *arg, const char *type, const char *id, const char *data,
    size_t len)
{
	struct follow *f = arg;
	uint64_t n;
	unsigned before = f->ev.states;

	if (cli_parse_uint(id, UINT64_MAX, &n) == 0 && n > f->max_id)
		f->max_id = n;
	if (f->probe)
		return 0;
	if (cli_wsev_format(&f->ev, type, data, len, &f->out) != 0) {
		/* Too much at once: show what fits, go on. */
		buf_reset(&f->out);
		if (buf_append_str(&f->out, "EVENT (too large to show)\n") != 0)
			return FOLLOW_STOP;
	}
	follow_print(f);
	if (f->ev.states != before)
		follow_state(f, f->ev.state, f->ev.reason);
	return f->result != FOLLOW_GOING ? FOLLOW_STOP : 0;
}

static int
on_data(void *arg, const char *p, size_t n)
{
	struct follow *f = arg;
	int r;

	f->data_ms = now_ms();
	if ((r = cli_sse_feed(&f->sse, p, n)) == 0)
		return 0;
	if (f->result == FOLLOW_GOING) {
		f->result = FOLLOW_BROKEN;
		f->sse_err = r;
	}
	return 1;
}

static int
on_tick(void *arg)
{
	struct follow *f = arg;
	uint64_t now = now_ms();

	if (f->probe)
		return (f->data_ms != 0 && now - f->data_ms >= PROBE_QUIET_MS) ||
		    (f->data_ms == 0 && now - f->start_ms >= PROBE_EMPTY_MS) ||
		    now - f->start_ms >= PROBE_MAX_MS;
	return f->target != NULL && now - f->start_ms >= CHECK_MS;
}

/* One connection to the stream from event id since. CLI_OK (see
 * f->result, st->broken), or CLI_FAILED after a line; a 404 is left to the
 * caller (*status). */
static int
follow_once(struct cli_conn *c, const struct ws_ref *w, struct follow *f,
    uint64_t since, long *status)
{
	struct cli_stream st = { on_data, on_tick, f, NULL, 404, 0, false,
	    false };
	char suffix[64], path[1200];
	int r;

	snprintf(suffix, sizeof(suffix), "/events?since=%" PRIu64, since);
	if (ws_path(path, sizeof(path), w->owner, w->name, suffix) != 0)
		return CLI_FAILED;
	cli_sse_init(&f->sse, SSE_LINE_MAX, SSE_DATA_MAX, on_event, f);
	f->start_ms = now_ms();
	f->data_ms = 0;
	r = cli_api_stream(c, path, &st);
	*status = st.status;
	cli_sse_free(&f->sse);
	return r;
}

static void
follow_init(struct follow *f, const char *target)
{
	memset(f, 0, sizeof(*f));
	cli_wsev_init(&f->ev);
	buf_init(&f->out, LINES_MAX);
	f->target = target;
}

static void
follow_free(struct follow *f)
{
	cli_wsev_free(&f->ev);
	buf_free(&f->out);
}

/* The last event id of the workspace's backlog (0 when it has none), read
 * before a change so that --wait shows and judges only what follows. */
static int
backlog_end(const char *prog, struct cli_conn *c, const struct ws_ref *w,
    uint64_t *out)
{
	struct follow f;
	long st = 0;
	int status;

	follow_init(&f, NULL);
	f.probe = true;
	status = follow_once(c, w, &f, 0, &st);
	if (status != CLI_OK && st == 404)
		fprintf(stderr, "%s: no workspace %s/%s\n", prog, w->owner,
		    w->name);
	*out = f.max_id;
	follow_free(&f);
	return status;
}

/* Reads the workspace (the check behind the stream). */
static int
check_now(struct cli_conn *c, const struct ws_ref *w, struct follow *f)
{
	json_t *doc = NULL;
	long st = 0;
	int status;

	status = cli_api_quiet(c, "GET", w->path, 404, &doc, &st);
	if (st == 404) {
		if (f->target != NULL && strcmp(f->target, "gone") == 0) {
			f->result = FOLLOW_REACHED;
		} else {
			f->result = FOLLOW_FAILED;
			snprintf(f->why, sizeof(f->why), "it does not exist "
			    "(any more)");
		}
		return CLI_OK;
	}
	if (status == CLI_OK) {
		char s[CLI_WSEV_STATE_MAX], why[CLI_WSEV_REASON_MAX];
		const char *state = cli_clean(cli_str(doc, "state"), s,
		    sizeof(s));

		cli_clean(json_string_value(json_object_get(doc, "reason")),
		    why, sizeof(why));
		if (strcmp(state, f->ev.state) != 0) {
			/* A change the stream did not tell. */
			printf("STATE %s\n", state);
			fflush(stdout);
			snprintf(f->ev.state, sizeof(f->ev.state), "%s", state);
		}
		/* A restart whose events were all missed (a moatd restart
		 * empties the backlog): running, read three times, will do. */
		if (f->restart && f->target != NULL &&
		    strcmp(state, f->target) == 0 && ++f->target_checks >= 3)
			f->seen_other = true;
		follow_state(f, state, why);
	}
	json_decref(doc);
	return status;
}

/*
 * Follows the events of w from id since until the target state (or failed,
 * or deleted). S0 is the state the change's answer reported. Prints the
 * final line. Exit status.
 */
static int
ws_wait(const char *prog, struct cli_conn *c, const struct ws_ref *w,
    const char *target, bool restart, const char *s0, uint64_t since)
{
	struct follow f;
	long st;
	int status = CLI_FAILED;

	follow_init(&f, target);
	f.restart = restart;
	f.stale_failed = s0 != NULL && strcmp(s0, "failed") == 0 &&
	    strcmp(target, "stopped") == 0;
	f.max_id = since;
	/* Nothing will happen for a change that is no change. */
	if (s0 != NULL && !restart && strcmp(s0, target) == 0) {
		f.result = FOLLOW_REACHED;
		snprintf(f.ev.state, sizeof(f.ev.state), "%s", s0);
	}
	while (f.result == FOLLOW_GOING) {
		uint64_t began = now_ms();

		status = follow_once(c, w, &f, f.max_id, &st);
		if (status != CLI_OK && st != 404)
			goto out;
		if (f.result != FOLLOW_GOING)
			break;
		if (cli_wsev_flush(&f.ev, &f.out) == 0)
			follow_print(&f);
		/* The stream ended, broke or timed out: look for ourselves. */
		if ((status = check_now(c, w, &f)) != CLI_OK)
			goto out;
		if (f.result != FOLLOW_GOING)
			break;
		/* A stream that keeps ending at once: do not spin. */
		if (now_ms() - began < 1000)
			sleep(1);
	}
	if (cli_wsev_flush(&f.ev, &f.out) == 0)
		follow_print(&f);
	status = CLI_FAILED;
	if (f.result == FOLLOW_BROKEN) {
		fprintf(stderr, "%s: the server's event stream is malformed "
		    "(%s)\n", prog, moat_strerror(f.sse_err));
	} else if (f.result == FOLLOW_FAILED) {
		char why[sizeof(f.why)];

		fprintf(stderr, "%s: workspace %s/%s failed: %s\n", prog,
		    w->owner, w->name, cli_clean(f.why, why, sizeof(why)));
	} else if (strcmp(target, "gone") == 0) {
		printf("Deleted workspace %s/%s\n", w->owner, w->name);
		status = CLI_OK;
	} else {
		printf("Workspace %s/%s is %s\n", w->owner, w->name, target);
		status = CLI_OK;
	}
out:
	follow_free(&f);
	return status;
}

/* ---- the subcommands ---- */

static int
ws_create(int argc, char **argv)
{
	static const char prog[] = "moat ws create";
	struct cli_conn *c = NULL;
	const char *pos[1], *tmpl = "base", *owner = NULL;
	struct ws_ref w;
	json_t *body = NULL, *out = NULL;
	bool do_wait = false;
	size_t npos;
	int r, status = CLI_FAILED;
	const struct cli_opt opts[] = {
		{ "--template", "-t", CLI_OPT_STR, &tmpl },
		{ "--owner", NULL, CLI_OPT_STR, &owner },
		{ "--wait", "-w", CLI_OPT_FLAG, &do_wait },
	};

	if ((r = cli_parse(prog, argc, argv, opts, 3, pos, 1, 1, &npos,
	    cmd_ws_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (strchr(pos[0], '/') != NULL) {
		fprintf(stderr, "%s: give the name alone and the owner with "
		    "--owner\n", prog);
		return CLI_USAGE;
	}
	if ((body = json_pack("{s:s,s:s}", "name", pos[0], "template",
	    tmpl)) == NULL) {
		fprintf(stderr, "%s: the name or template is not UTF-8 text\n",
		    prog);
		return CLI_USAGE;
	}
	if (owner != NULL && json_object_set_new(body, "owner",
	    json_string(owner)) != 0) {
		fprintf(stderr, "%s: the owner is not UTF-8 text\n", prog);
		status = CLI_USAGE;
		goto out;
	}
	if ((status = cli_conn_open(&c)) != 0)
		goto out;
	if ((status = cli_api(c, "POST", "/api/v1/workspaces", body, &out)) !=
	    0)
		goto out;
	{
		char o[WS_PART_MAX], n[WS_PART_MAX], t[WS_PART_MAX];
		char s[CLI_WSEV_STATE_MAX];

		cli_clean(cli_str(out, "owner"), o, sizeof(o));
		cli_clean(cli_str(out, "name"), n, sizeof(n));
		printf("Created workspace %s/%s (template %s, state %s)\n", o, n,
		    cli_clean(cli_str(out, "template"), t, sizeof(t)),
		    cli_clean(cli_str(out, "state"), s, sizeof(s)));
		fflush(stdout);
		if (!do_wait)
			goto out;
		if (cli_ws_ref(n, o, w.owner, sizeof(w.owner), w.name,
		    sizeof(w.name)) != 0 || ws_path(w.path, sizeof(w.path),
		    w.owner, w.name, NULL) != 0) {
			status = CLI_FAILED;
			goto out;
		}
	}
	/* A new workspace: its whole stream is news. */
	status = ws_wait(prog, c, &w, "running", false, NULL, 0);
out:
	json_decref(body);
	json_decref(out);
	cli_conn_free(c);
	return status;
}

struct list_ctx {
	const char *owner;
	bool all;
};

static int
list_path(void *arg, char *out, size_t outlen)
{
	struct list_ctx *x = arg;

	if (x->owner != NULL && x->all) {
		fprintf(stderr, "moat ws list: --owner and --all do not go "
		    "together\n");
		return CLI_USAGE;
	}
	if (x->all)
		return cli_path(out, outlen, "/api/v1/workspaces?owner=", "*",
		    NULL) == 0 ? 0 : CLI_USAGE;
	if (x->owner != NULL)
		return cli_path(out, outlen, "/api/v1/workspaces?owner=",
		    x->owner, NULL) == 0 ? 0 : CLI_USAGE;
	snprintf(out, outlen, "/api/v1/workspaces");
	return 0;
}

static void
ws_row(const struct cli_conn *c, const json_t *w, const char **row,
    char cell[][CLI_CELL_MAX])
{
	const char *reason = json_string_value(json_object_get(w, "reason"));

	(void)c;
	row[0] = cli_str(w, "name");
	row[1] = cli_str(w, "owner");
	row[2] = cli_str(w, "template");
	row[3] = cli_str(w, "state");
	row[4] = cli_str(w, "desired");
	row[5] = reason != NULL && reason[0] != '\0' ? reason : "-";
	row[6] = cli_time(json_string_value(json_object_get(w, "created_at")),
	    cell[6], CLI_CELL_MAX);
}

static int
ws_list(int argc, char **argv)
{
	static const char *const head[] = { "NAME", "OWNER", "TEMPLATE",
	    "STATE", "DESIRED", "REASON", "CREATED" };
	struct list_ctx x = { NULL, false };
	const struct cli_opt opts[] = {
		{ "--owner", NULL, CLI_OPT_STR, &x.owner },
		{ "--all", "-a", CLI_OPT_FLAG, &x.all },
	};
	const struct cli_list_cmd cmd = {
		"moat ws list", cmd_ws_usage, "/api/v1/workspaces",
		"workspaces", false, 7, head, ws_row,
		opts, 2, list_path, &x,
	};

	return cli_run_list(&cmd, argc, argv);
}

static void
print_ws(const json_t *w)
{
	const json_t *spec = json_object_get(w, "spec");
	const char *reason = json_string_value(json_object_get(w, "reason"));
	char a[1024], b[64], m[32], d[32], rd[32];
	json_int_t cpu = json_integer_value(json_object_get(spec, "cpu"));
	json_int_t mem = json_integer_value(json_object_get(spec,
	    "memory_mb"));
	json_int_t disk = json_integer_value(json_object_get(spec, "disk_mb"));
	json_int_t root = json_integer_value(json_object_get(spec,
	    "root_disk_mb"));

	printf("name:      %s\n", cli_clean(cli_str(w, "name"), a, sizeof(a)));
	printf("owner:     %s\n", cli_clean(cli_str(w, "owner"), a,
	    sizeof(a)));
	printf("id:        %s\n", cli_clean(cli_str(w, "id"), a, sizeof(a)));
	printf("template:  %s\n", cli_clean(cli_str(w, "template"), a,
	    sizeof(a)));
	printf("image:     %s\n", cli_clean(cli_str(spec, "image"), a,
	    sizeof(a)));
	printf("state:     %s", cli_clean(cli_str(w, "state"), a, sizeof(a)));
	printf(" (desired %s)\n", cli_clean(cli_str(w, "desired"), a,
	    sizeof(a)));
	printf("reason:    %s\n", cli_clean(reason != NULL && reason[0] !=
	    '\0' ? reason : "-", a, sizeof(a)));
	if (spec != NULL && cpu > 0 && mem > 0 && disk > 0 && root > 0)
		printf("resources: %" JSON_INTEGER_FORMAT "m CPU, %s memory, "
		    "%s home, %s root\n", cpu,
		    cli_bytes((uint64_t)mem * MIB, m, sizeof(m)),
		    cli_bytes((uint64_t)disk * MIB, d, sizeof(d)),
		    cli_bytes((uint64_t)root * MIB, rd, sizeof(rd)));
	printf("host key:  %s\n", cli_clean(cli_str(w, "host_pub"), a,
	    sizeof(a)));
	printf("created:   %s\n", cli_time(json_string_value(json_object_get(w,
	    "created_at")), b, sizeof(b)));
	printf("updated:   %s\n", cli_time(json_string_value(json_object_get(w,
	    "updated_at")), b, sizeof(b)));
}

/* The shape of show, logs, events and stats: parse, open, resolve. */
struct one {
	const char *prog;
	const char *pos[1];
	struct cli_conn *c;
	struct ws_ref w;
};

static int
one_open(struct one *o, int argc, char **argv, const struct cli_opt *opts,
    size_t nopts)
{
	size_t npos;
	int r, status;

	o->c = NULL;
	if ((r = cli_parse(o->prog, argc, argv, opts, nopts, o->pos, 1, 1,
	    &npos, cmd_ws_usage)) != 0)
		return r == CLI_PARSE_HELP ? -1 : CLI_USAGE;
	if ((status = check_ref(o->prog, o->pos[0])) != 0)
		return status;
	if ((status = cli_conn_open(&o->c)) != 0)
		return status;
	if ((status = resolve(o->prog, o->c, o->pos[0], &o->w)) != 0) {
		cli_conn_free(o->c);
		o->c = NULL;
	}
	return status;
}

/* one_open's status as the exit status (-1 was --help). */
static int
one_status(int r)
{
	return r < 0 ? CLI_OK : r;
}

static int
ws_show(int argc, char **argv)
{
	struct one o = { "moat ws show", { NULL }, NULL, { "", "", "" } };
	json_t *doc = NULL;
	bool json = false;
	int status;
	const struct cli_opt opts[] = {
		{ "--json", NULL, CLI_OPT_FLAG, &json },
	};

	if ((status = one_open(&o, argc, argv, opts, 1)) != 0)
		return one_status(status);
	if ((status = cli_api(o.c, "GET", o.w.path, NULL, &doc)) == 0) {
		if (json)
			cli_print_json(doc);
		else
			print_ws(doc);
	}
	json_decref(doc);
	cli_conn_free(o.c);
	return status;
}

/* start, stop, restart and delete. */
static int
ws_change(int argc, char **argv, const char *prog, const char *method,
    const char *suffix, const char *target, const char *doing)
{
	struct one o = { prog, { NULL }, NULL, { "", "", "" } };
	json_t *doc = NULL;
	bool do_wait = false, yes = false;
	bool del = strcmp(method, "DELETE") == 0;
	char path[1200], q[512], s0[CLI_WSEV_STATE_MAX];
	uint64_t since = 0;
	int status;
	const struct cli_opt opts[] = {
		{ "--wait", "-w", CLI_OPT_FLAG, &do_wait },
		{ "--yes", "-y", CLI_OPT_FLAG, &yes },
	};

	if ((status = one_open(&o, argc, argv, opts, del ? 2 : 1)) != 0)
		return one_status(status);
	if (ws_path(path, sizeof(path), o.w.owner, o.w.name, suffix) != 0) {
		status = CLI_USAGE;
		goto out;
	}
	if (del) {
		snprintf(q, sizeof(q), "Delete workspace %s/%s (its home volume "
		    "and keys are destroyed)?", o.w.owner, o.w.name);
		if ((status = cli_confirm_or_yes(prog, q, yes)) != 0)
			goto out;
	}
	if (do_wait && (status = backlog_end(prog, o.c, &o.w, &since)) != 0)
		goto out;
	if ((status = cli_api(o.c, method, path, NULL, &doc)) != 0)
		goto out;
	cli_clean(cli_str(doc, "state"), s0, sizeof(s0));
	printf("%s workspace %s/%s\n", doing, o.w.owner, o.w.name);
	fflush(stdout);
	if (do_wait)
		status = ws_wait(prog, o.c, &o.w, target, strcmp(suffix,
		    "/restart") == 0, s0, since);
out:
	json_decref(doc);
	cli_conn_free(o.c);
	return status;
}

static int
ws_start(int argc, char **argv)
{
	return ws_change(argc, argv, "moat ws start", "POST", "/start",
	    "running", "Starting");
}

static int
ws_stop(int argc, char **argv)
{
	return ws_change(argc, argv, "moat ws stop", "POST", "/stop",
	    "stopped", "Stopping");
}

static int
ws_restart(int argc, char **argv)
{
	return ws_change(argc, argv, "moat ws restart", "POST", "/restart",
	    "running", "Restarting");
}

static int
ws_delete(int argc, char **argv)
{
	return ws_change(argc, argv, "moat ws delete", "DELETE", "",
	    "gone", "Deleting");
}

/* Log text for the terminal: escape sequences and control characters
 * other than newline and tab removed (the server did it too). */
static void
print_text(const char *s)
{
	size_t n = strlen(s);
	char *clean = malloc(n + 1);

	if (clean == NULL)
		return;
	n = text_clean(s, n, clean, n + 1);
	fwrite(clean, 1, n, stdout);
	fflush(stdout);
	free(clean);
}

static int
ws_logs(int argc, char **argv)
{
	struct one o = { "moat ws logs", { NULL }, NULL, { "", "", "" } };
	json_t *out = NULL;
	bool follow = false;
	uint64_t offset = 0;
	int status;
	const struct cli_opt opts[] = {
		{ "--follow", "-f", CLI_OPT_FLAG, &follow },
	};

	if ((status = one_open(&o, argc, argv, opts, 1)) != 0)
		return one_status(status);
	for (;;) {
		char path[1200], suffix[64];
		const char *data;
		json_int_t next, size;
		bool progress;

		snprintf(suffix, sizeof(suffix), "/logs?offset=%" PRIu64,
		    offset);
		if (ws_path(path, sizeof(path), o.w.owner, o.w.name,
		    suffix) != 0) {
			status = CLI_FAILED;
			break;
		}
		if ((status = cli_api(o.c, "GET", path, NULL, &out)) != 0)
			break;
		data = json_string_value(json_object_get(out, "data"));
		next = json_integer_value(json_object_get(out, "next"));
		size = json_integer_value(json_object_get(out, "size"));
		if (data != NULL)
			print_text(data);
		/* Only forward: a server going back would loop forever. */
		progress = next > 0 && (uint64_t)next > offset;
		if (progress)
			offset = (uint64_t)next;
		json_decref(out);
		out = NULL;
		if (progress && (size < 0 || offset < (uint64_t)size))
			continue;	/* more is there already */
		if (!follow)
			break;
		sleep(1);
	}
	json_decref(out);
	cli_conn_free(o.c);
	return status;
}

static int
ws_events(int argc, char **argv)
{
	struct one o = { "moat ws events", { NULL }, NULL, { "", "", "" } };
	struct follow f;
	long st = 0;
	int status, failures = 0;

	if ((status = one_open(&o, argc, argv, NULL, 0)) != 0)
		return one_status(status);
	follow_init(&f, NULL);
	for (;;) {
		status = follow_once(o.c, &o.w, &f, f.max_id, &st);
		if (status != CLI_OK) {
			if (st == 404)
				fprintf(stderr, "moat ws events: no workspace "
				    "%s/%s\n", o.w.owner, o.w.name);
			break;
		}
		if (f.result == FOLLOW_BROKEN) {
			fprintf(stderr, "moat ws events: the server's event "
			    "stream is malformed (%s)\n",
			    moat_strerror(f.sse_err));
			status = CLI_FAILED;
			break;
		}
		if (f.data_ms == 0 && ++failures > 5) {
			fprintf(stderr, "moat ws events: the event stream keeps "
			    "breaking\n");
			status = CLI_FAILED;
			break;
		}
		if (f.data_ms != 0)
			failures = 0;
		/* The server ends the stream after the workspace's deletion;
		 * any other end is a broken connection: resume after the last
		 * event seen. */
		if (strcmp(f.ev.state, "deleted") == 0)
			break;
		sleep(1);
	}
	if (cli_wsev_flush(&f.ev, &f.out) == 0)
		follow_print(&f);
	follow_free(&f);
	cli_conn_free(o.c);
	return status;
}

static int
ws_stats(int argc, char **argv)
{
	struct one o = { "moat ws stats", { NULL }, NULL, { "", "", "" } };
	json_t *s = NULL;
	bool json = false;
	char path[1200], a[32], b[32];
	int status;
	const struct cli_opt opts[] = {
		{ "--json", NULL, CLI_OPT_FLAG, &json },
	};

	if ((status = one_open(&o, argc, argv, opts, 1)) != 0)
		return one_status(status);
	if (ws_path(path, sizeof(path), o.w.owner, o.w.name, "/stats") != 0) {
		status = CLI_USAGE;
		goto out;
	}
	if ((status = cli_api(o.c, "GET", path, NULL, &s)) != 0)
		goto out;
	if (json) {
		cli_print_json(s);
		goto out;
	}
#define U(k) ((uint64_t)(json_integer_value(json_object_get(s, k)) > 0 ? \
	json_integer_value(json_object_get(s, k)) : 0))
	printf("cpu time:  %.2f s\n", (double)U("cpu_ns") / 1e9);
	printf("memory:    %s", cli_bytes(U("memory_bytes"), a, sizeof(a)));
	if (U("memory_limit") > 0)
		printf(" of %s", cli_bytes(U("memory_limit"), b, sizeof(b)));
	printf("\nprocesses: %" PRIu64 "\n", U("pids"));
	printf("home disk: %s used", cli_bytes(U("disk_used"), a, sizeof(a)));
	if (U("disk_total") > 0)
		printf(" of %s", cli_bytes(U("disk_total"), b, sizeof(b)));
	printf("\n");
#undef U
out:
	json_decref(s);
	cli_conn_free(o.c);
	return status;
}

static const struct cli_command subs[] = {
	{ "create", ws_create, NULL, NULL },
	{ "list", ws_list, NULL, NULL },
	{ "ls", ws_list, NULL, NULL },
	{ "show", ws_show, NULL, NULL },
	{ "start", ws_start, NULL, NULL },
	{ "stop", ws_stop, NULL, NULL },
	{ "restart", ws_restart, NULL, NULL },
	{ "delete", ws_delete, NULL, NULL },
	{ "rm", ws_delete, NULL, NULL },
	{ "logs", ws_logs, NULL, NULL },
	{ "events", ws_events, NULL, NULL },
	{ "stats", ws_stats, NULL, NULL },
};

int
cmd_ws(int argc, char **argv)
{
	return cli_dispatch("ws", argc, argv, subs,
	    sizeof(subs) / sizeof(subs[0]), cmd_ws_usage);
}
