/*
 * cmd_token.c - "moat token": the caller's API tokens.
 *
 *   moat token create NAME [--expires-in 30d] [--role R]... [--json]
 *   moat token list [--json]
 *   moat token revoke ID|NAME [--yes]
 *
 * A token's value is printed once, by create, and never again (the server
 * keeps only its hash).
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_cmd.h"
#include "cli_http.h"
#include "cli_out.h"

void
cmd_token_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat token create NAME [--expires-in DURATION] [--role R]...\n"
	    "                              [--json]\n"
	    "       moat token list [--json]\n"
	    "       moat token revoke ID|NAME [--yes]\n\n"
	    "API tokens act as you from scripts and tools. create prints the\n"
	    "new token once (only the token when stdout is not a terminal):\n"
	    "store it then. --role limits the token to some of your roles;\n"
	    "--expires-in takes 3600, 90m, 12h, 30d or 2w. revoke asks for\n"
	    "confirmation on a terminal; --yes skips it (and is required\n"
	    "without a terminal).\n");
}

static int
token_create(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	struct cli_list roles = { .n = 0 };
	const char *pos[1], *expires = NULL;
	json_t *body = NULL, *out = NULL, *arr;
	bool json = false;
	int64_t secs = 0;
	size_t npos;
	int r, status = CLI_FAILED;
	const struct cli_opt opts[] = {
		{ "--expires-in", NULL, CLI_OPT_STR, &expires },
		{ "--role", NULL, CLI_OPT_LIST, &roles },
		{ "--json", NULL, CLI_OPT_FLAG, &json },
	};

	if ((r = cli_parse("moat token create", argc, argv, opts, 3, pos, 1, 1,
	    &npos, cmd_token_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (expires != NULL && cli_parse_duration(expires, &secs) != 0) {
		fprintf(stderr, "moat token create: --expires-in wants a "
		    "duration like 30d, 12h or 3600\n");
		return CLI_USAGE;
	}
	if ((body = json_pack("{s:s}", "name", pos[0])) == NULL)
		goto out;
	if (secs > 0)
		json_object_set_new(body, "expires_in", json_integer(secs));
	if (roles.n > 0) {
		arr = json_array();
		for (size_t i = 0; i < roles.n; i++)
			json_array_append_new(arr, json_string(roles.v[i]));
		json_object_set_new(body, "roles", arr);
	}
	if ((status = cli_conn_open(&c)) != 0)
		goto out;
	if ((status = cli_api(c, "POST", "/api/v1/tokens", body, &out)) != 0)
		goto out;
	if (json) {
		cli_print_json(out);
	} else if (cli_stdout_tty()) {
		printf("token %s (id %s):\n%s\n", pos[0], cli_str(out, "id"),
		    cli_str(out, "token"));
		fprintf(stderr, "This is the only time the token is shown: "
		    "store it now.\n");
	} else {
		printf("%s\n", cli_str(out, "token"));
	}
out:
	json_decref(body);
	json_decref(out);
	cli_conn_free(c);
	return status;
}

static void
token_row(const struct cli_conn *c, const json_t *k, const char **row,
    char cell[][CLI_CELL_MAX])
{
	const json_t *scope = json_object_get(k, "scope");
	const char *id = json_string_value(json_object_get(k, "id"));
	const char *name = json_string_value(json_object_get(k, "name"));

	snprintf(cell[1], CLI_CELL_MAX, "%s%s", name != NULL ? name : "-",
	    id != NULL && c->token_id != NULL && strcmp(id, c->token_id) == 0 ?
	    " (this CLI)" : "");
	row[0] = id;
	row[1] = cell[1];
	row[2] = json_is_array(scope) ? cli_join(scope, cell[2], CLI_CELL_MAX) :
	    "all of yours";
	row[3] = cli_time(json_string_value(json_object_get(k, "created_at")),
	    cell[3], CLI_CELL_MAX);
	row[4] = cli_epoch(json_integer_value(json_object_get(k, "expires_at")),
	    cell[4], CLI_CELL_MAX);
	row[5] = cli_epoch(json_integer_value(json_object_get(k,
	    "last_used_at")), cell[5], CLI_CELL_MAX);
}

static int
token_list(int argc, char **argv)
{
	static const char *const head[] = { "ID", "NAME", "ROLES", "CREATED",
	    "EXPIRES", "LAST USED" };
	static const struct cli_list_cmd cmd = {
		"moat token list", cmd_token_usage, "/api/v1/tokens", "tokens",
		false, 6, head, token_row,
		NULL, 0, NULL, NULL,
	};

	return cli_run_list(&cmd, argc, argv);
}

static void
token_question(const struct cli_conn *c, const char *id, const char *name,
    char *q, size_t qlen)
{
	snprintf(q, qlen, "Revoke token %s (%s)%s?", name ? name : "-", id,
	    c->token_id != NULL && strcmp(id, c->token_id) == 0 ?
	    ", the one this CLI uses" : "");
}

static int
token_revoke(int argc, char **argv)
{
	static const struct cli_remove_cmd cmd = {
		"moat token revoke", cmd_token_usage, "/api/v1/tokens",
		"tokens", "token", "Revoked", token_question,
	};

	return cli_run_remove(&cmd, argc, argv);
}

static const struct cli_command subs[] = {
	{ "create", token_create, NULL, NULL },
	{ "list", token_list, NULL, NULL },
	{ "ls", token_list, NULL, NULL },
	{ "revoke", token_revoke, NULL, NULL },
};

int
cmd_token(int argc, char **argv)
{
	return cli_dispatch("token", argc, argv, subs,
	    sizeof(subs) / sizeof(subs[0]), cmd_token_usage);
}
