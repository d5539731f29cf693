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

static int
token_list(int argc, char **argv)
{
	static const char *const head[] = { "ID", "NAME", "ROLES", "CREATED",
	    "EXPIRES", "LAST USED" };
	struct cli_conn *c = NULL;
	struct cli_table *t = NULL;
	const char *pos[1];
	json_t *out = NULL, *list, *k;
	bool json = false;
	size_t npos, i;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--json", NULL, CLI_OPT_FLAG, &json },
	};

	if ((r = cli_parse("moat token list", argc, argv, opts, 1, pos, 0, 0,
	    &npos, cmd_token_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	if ((status = cli_api(c, "GET", "/api/v1/tokens", NULL, &out)) != 0)
		goto out;
	list = json_object_get(out, "tokens");
	if (json) {
		cli_print_json(json_is_array(list) ? list : json_array());
		goto out;
	}
	status = CLI_FAILED;
	if ((t = cli_table_new(6, head)) == NULL)
		goto out;
	json_array_foreach(list, i, k) {
		char name[128], roles[256], cr[32], ex[32], lu[32];
		const json_t *scope = json_object_get(k, "scope");
		const char *id = json_string_value(json_object_get(k, "id"));
		const char *row[6];

		snprintf(name, sizeof(name), "%s%s", json_string_value(
		    json_object_get(k, "name")) ? json_string_value(
		    json_object_get(k, "name")) : "-", id != NULL &&
		    c->token_id != NULL && strcmp(id, c->token_id) == 0 ?
		    " (this CLI)" : "");
		row[0] = id;
		row[1] = name;
		row[2] = json_is_array(scope) ? cli_join(scope, roles,
		    sizeof(roles)) : "all of yours";
		row[3] = cli_time(json_string_value(json_object_get(k,
		    "created_at")), cr, sizeof(cr));
		row[4] = cli_epoch(json_integer_value(json_object_get(k,
		    "expires_at")), ex, sizeof(ex));
		row[5] = cli_epoch(json_integer_value(json_object_get(k,
		    "last_used_at")), lu, sizeof(lu));
		if (cli_table_add(t, row) != 0)
			goto out;
	}
	cli_table_print(t, stdout);
	status = CLI_OK;
out:
	cli_table_free(t);
	json_decref(out);
	cli_conn_free(c);
	return status;
}

static int
token_revoke(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1], *id = NULL, *name = NULL;
	json_t *out = NULL, *k;
	bool yes = false;
	char path[256], q[256];
	size_t npos, i;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--yes", "-y", CLI_OPT_FLAG, &yes },
	};

	if ((r = cli_parse("moat token revoke", argc, argv, opts, 1, pos, 1, 1,
	    &npos, cmd_token_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	/* Accept the id or the name of one of the caller's tokens. */
	if ((status = cli_api(c, "GET", "/api/v1/tokens", NULL, &out)) != 0)
		goto out;
	json_array_foreach(json_object_get(out, "tokens"), i, k) {
		const char *kid = json_string_value(json_object_get(k, "id"));
		const char *kn = json_string_value(json_object_get(k, "name"));

		if (kid != NULL && (strcmp(kid, pos[0]) == 0 ||
		    (kn != NULL && strcmp(kn, pos[0]) == 0))) {
			id = kid;
			name = kn;
			break;
		}
	}
	status = CLI_FAILED;
	if (id == NULL) {
		fprintf(stderr, "moat token revoke: you have no token with id "
		    "or name '%s'\n", pos[0]);
		goto out;
	}
	snprintf(q, sizeof(q), "Revoke token %s (%s)%s?", name ? name : "-",
	    id, c->token_id != NULL && strcmp(id, c->token_id) == 0 ?
	    ", the one this CLI uses" : "");
	if ((status = cli_confirm_or_yes("moat token revoke", q, yes)) != 0)
		goto out;
	if (cli_path(path, sizeof(path), "/api/v1/tokens/", id, NULL) != 0) {
		status = CLI_USAGE;
		goto out;
	}
	if ((status = cli_api(c, "DELETE", path, NULL, NULL)) != 0)
		goto out;
	printf("Revoked token %s\n", id);
out:
	json_decref(out);
	cli_conn_free(c);
	return status;
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
