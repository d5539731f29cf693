/*
 * cmd_session.c - "moat session": live SSH sessions on the gateway
 * (sessions:admin: admins and owners).
 *
 *   moat session list [--json]
 *   moat session end ID [--yes]
 *
 * end disconnects the client at once: the client is told an administrator
 * ended the session, and the session process is killed within a second.
 */
#include <inttypes.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_cmd.h"
#include "cli_http.h"
#include "cli_out.h"
#include "cli_sse.h"

void
cmd_session_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat session list [--json]\n"
	    "       moat session end ID [--yes]\n\n"
	    "list shows every open connection to the SSH gateway: who, which\n"
	    "workspace, from where, since when, bytes each way and open port\n"
	    "forwards (USER is '-' until the client has authenticated). end\n"
	    "disconnects one (the client is told why); it asks for\n"
	    "confirmation on a terminal, --yes skips it (and is required\n"
	    "without a terminal). Administrators only.\n");
}

static void
session_row(const struct cli_conn *c, const json_t *s, const char **row,
    char cell[][CLI_CELL_MAX])
{
	json_int_t in = json_integer_value(json_object_get(s, "bytes_in"));
	json_int_t out = json_integer_value(json_object_get(s, "bytes_out"));

	(void)c;
	row[0] = cli_str(s, "id");
	row[1] = cli_str(s, "user");
	if (json_object_get(s, "workspace") != NULL) {
		snprintf(cell[2], CLI_CELL_MAX, "%s/%s", cli_str(s, "owner"),
		    cli_str(s, "workspace"));
		row[2] = cell[2];
	} else {
		row[2] = "-";
	}
	row[3] = cli_str(s, "client_addr");
	row[4] = cli_time(json_string_value(json_object_get(s, "started_at")),
	    cell[4], CLI_CELL_MAX);
	row[5] = cli_bytes(in > 0 ? (uint64_t)in : 0, cell[5], CLI_CELL_MAX);
	row[6] = cli_bytes(out > 0 ? (uint64_t)out : 0, cell[6], CLI_CELL_MAX);
	snprintf(cell[7], CLI_CELL_MAX, "%" JSON_INTEGER_FORMAT,
	    json_integer_value(json_object_get(s, "forwards")));
	row[7] = cell[7];
}

static int
session_list(int argc, char **argv)
{
	static const char *const head[] = { "ID", "USER", "WORKSPACE",
	    "CLIENT", "STARTED", "IN", "OUT", "FORWARDS" };
	const struct cli_list_cmd cmd = {
		"moat session list", cmd_session_usage, "/api/v1/sessions",
		"sessions", false, 8, head, session_row, NULL, 0, NULL, NULL,
	};

	return cli_run_list(&cmd, argc, argv);
}

static int
session_end(int argc, char **argv)
{
	static const char prog[] = "moat session end";
	struct cli_conn *c = NULL;
	const char *pos[1];
	json_t *list = NULL, *s, *found = NULL;
	bool yes = false;
	char path[512], q[1024], who[160], where[300];
	size_t npos, i;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--yes", "-y", CLI_OPT_FLAG, &yes },
	};

	if ((r = cli_parse(prog, argc, argv, opts, 1, pos, 1, 1, &npos,
	    cmd_session_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_path(path, sizeof(path), "/api/v1/sessions/", pos[0], NULL) !=
	    0)
		return CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	/* Name the session in the question (and refuse an unknown id before
	 * asking anything). */
	if ((status = cli_api(c, "GET", "/api/v1/sessions", NULL, &list)) != 0)
		goto out;
	json_array_foreach(json_object_get(list, "sessions"), i, s) {
		const char *id = json_string_value(json_object_get(s, "id"));

		if (id != NULL && strcmp(id, pos[0]) == 0) {
			found = s;
			break;
		}
	}
	if (found == NULL) {
		fprintf(stderr, "%s: no live session %s (see moat session "
		    "list)\n", prog, pos[0]);
		status = CLI_FAILED;
		goto out;
	}
	cli_clean(cli_str(found, "user"), who, sizeof(who));
	{
		char o[128], w[128];

		snprintf(where, sizeof(where), "%s/%s", cli_clean(cli_str(found,
		    "owner"), o, sizeof(o)), cli_clean(cli_str(found,
		    "workspace"), w, sizeof(w)));
	}
	snprintf(q, sizeof(q), "End SSH session %.64s of %s on %s (the client is "
	    "disconnected)?", pos[0], who, where);
	if ((status = cli_confirm_or_yes(prog, q, yes)) != 0)
		goto out;
	if ((status = cli_api(c, "DELETE", path, NULL, NULL)) != 0)
		goto out;
	printf("Ended session %s (%s on %s)\n", pos[0], who, where);
out:
	json_decref(list);
	cli_conn_free(c);
	return status;
}

static const struct cli_command subs[] = {
	{ "list", session_list, NULL, NULL },
	{ "ls", session_list, NULL, NULL },
	{ "end", session_end, NULL, NULL },
};

int
cmd_session(int argc, char **argv)
{
	return cli_dispatch("session", argc, argv, subs,
	    sizeof(subs) / sizeof(subs[0]), cmd_session_usage);
}
