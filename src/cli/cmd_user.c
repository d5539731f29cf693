/*
 * cmd_user.c - "moat user": user administration (needs the users:read or
 * users:write permission: owners and admins).
 *
 *   moat user create NAME [--role R] [--password-stdin]
 *   moat user list [--json]
 *   moat user show NAME [--json]
 *   moat user disable NAME [--yes]
 *   moat user enable NAME
 *   moat user roles NAME ROLE...
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_cmd.h"
#include "cli_http.h"
#include "cli_out.h"

#define PASSWORD_MAX 1024

void
cmd_user_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat user create NAME [--role ROLE] [--password-stdin]\n"
	    "       moat user list [--json]\n"
	    "       moat user show NAME [--json]\n"
	    "       moat user disable NAME [--yes]\n"
	    "       moat user enable NAME\n"
	    "       moat user roles NAME ROLE...\n\n"
	    "Roles: owner, admin, template-admin, auditor, security-officer,\n"
	    "member. create asks for the new user's password twice on the\n"
	    "terminal, or reads it from stdin with --password-stdin. disable\n"
	    "ends every session and token of the user within seconds; it asks\n"
	    "for confirmation on a terminal, --yes skips it (and is required\n"
	    "without a terminal). roles replaces the user's roles in your\n"
	    "organization.\n");
}

static int
user_create(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1], *role = NULL;
	char *pw = NULL, a[PASSWORD_MAX + 1], b[PASSWORD_MAX + 1];
	json_t *body = NULL, *out = NULL;
	bool from_stdin = false;
	size_t npos, len;
	int r, status = CLI_FAILED;
	const struct cli_opt opts[] = {
		{ "--role", NULL, CLI_OPT_STR, &role },
		{ "--password-stdin", NULL, CLI_OPT_FLAG, &from_stdin },
	};

	if ((r = cli_parse("moat user create", argc, argv, opts, 2, pos, 1, 1,
	    &npos, cmd_user_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	status = CLI_FAILED;
	if (from_stdin) {
		if (cli_read_stdin(PASSWORD_MAX, true, &pw, &len) != 0) {
			fprintf(stderr, "moat user create: cannot read a "
			    "password of at most %d bytes from stdin\n",
			    PASSWORD_MAX);
			goto out;
		}
	} else {
		r = cli_prompt("New user's password: ", true, a, sizeof(a));
		if (r == MOAT_ERR_UNSUPPORTED) {
			fprintf(stderr, "moat user create: no terminal to ask "
			    "for the password: use --password-stdin\n");
			status = CLI_USAGE;
			goto out;
		}
		if (r != 0 || cli_prompt("Again: ", true, b, sizeof(b)) != 0) {
			fprintf(stderr, "moat user create: no password read\n");
			goto out;
		}
		if (strcmp(a, b) != 0) {
			fprintf(stderr, "moat user create: the passwords do "
			    "not match\n");
			goto out;
		}
		if ((pw = strdup(a)) == NULL)
			goto out;
	}
	body = json_pack("{s:s,s:s}", "username", pos[0], "password", pw);
	if (body == NULL)
		goto out;
	if (role != NULL)
		json_object_set_new(body, "role", json_string(role));
	if ((status = cli_api(c, "POST", "/api/v1/users", body, &out)) != 0)
		goto out;
	{
		char n[64], rl[256];

		printf("Created user %s (roles %s)\n", cli_clean(cli_str(out,
		    "username"), n, sizeof(n)), cli_join(json_object_get(out,
		    "roles"), rl, sizeof(rl)));
	}
out:
	explicit_bzero(a, sizeof(a));
	explicit_bzero(b, sizeof(b));
	if (body != NULL) {
		/* jansson keeps its own copy of the password. */
		json_t *p = json_object_get(body, "password");
		const char *s = json_string_value(p);

		if (s != NULL)
			explicit_bzero((char *)s, strlen(s));
	}
	json_decref(body);
	json_decref(out);
	cli_wipe_free(pw);
	cli_conn_free(c);
	return status;
}

static void
user_row(const struct cli_conn *c, const json_t *u, const char **row,
    char cell[][CLI_CELL_MAX])
{
	(void)c;
	row[0] = cli_str(u, "username");
	row[1] = cli_str(u, "org");
	row[2] = cli_join(json_object_get(u, "roles"), cell[2], CLI_CELL_MAX);
	row[3] = json_is_true(json_object_get(u, "disabled")) ? "disabled" :
	    "active";
	row[4] = json_is_true(json_object_get(u, "totp_enabled")) ? "yes" :
	    "no";
	row[5] = cli_time(json_string_value(json_object_get(u, "created_at")),
	    cell[5], CLI_CELL_MAX);
}

/* Every page, following the "next" cursor. */
static int
user_list(int argc, char **argv)
{
	static const char *const head[] = { "NAME", "ORG", "ROLES", "STATUS",
	    "TOTP", "CREATED" };
	static const struct cli_list_cmd cmd = {
		"moat user list", cmd_user_usage, "/api/v1/users", "users",
		true, 6, head, user_row,
		NULL, 0, NULL, NULL,
	};

	return cli_run_list(&cmd, argc, argv);
}

static int
user_show(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1];
	json_t *u = NULL;
	bool json = false;
	char path[256], a[128], b[256], d[64], e[64];
	size_t npos;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--json", NULL, CLI_OPT_FLAG, &json },
	};

	if ((r = cli_parse("moat user show", argc, argv, opts, 1, pos, 1, 1,
	    &npos, cmd_user_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_path(path, sizeof(path), "/api/v1/users/", pos[0], NULL) != 0)
		return CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	if ((status = cli_api(c, "GET", path, NULL, &u)) != 0)
		goto out;
	if (json) {
		cli_print_json(u);
		goto out;
	}
	printf("name:         %s\n", cli_clean(cli_str(u, "username"), a,
	    sizeof(a)));
	printf("id:           %s\n", cli_clean(cli_str(u, "id"), a,
	    sizeof(a)));
	printf("organization: %s\n", cli_clean(cli_str(u, "org"), a,
	    sizeof(a)));
	printf("roles:        %s\n", cli_clean(cli_join(json_object_get(u,
	    "roles"), b, sizeof(b)), a, sizeof(a)));
	printf("status:       %s\n", json_is_true(json_object_get(u,
	    "disabled")) ? "disabled" : "active");
	printf("totp:         %s\n", json_is_true(json_object_get(u,
	    "totp_enabled")) ? "enabled" : "not enabled");
	printf("created:      %s\n", cli_time(json_string_value(
	    json_object_get(u, "created_at")), d, sizeof(d)));
	printf("updated:      %s\n", cli_time(json_string_value(
	    json_object_get(u, "updated_at")), e, sizeof(e)));
out:
	json_decref(u);
	cli_conn_free(c);
	return status;
}

/* disable and enable. */
static int
user_switch(int argc, char **argv, bool disable)
{
	struct cli_conn *c = NULL;
	const char *pos[1];
	const char *cmd = disable ? "moat user disable" : "moat user enable";
	bool yes = false;
	char path[256], q[160];
	size_t npos;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--yes", "-y", CLI_OPT_FLAG, &yes },
	};

	if ((r = cli_parse(cmd, argc, argv, opts, disable ? 1 : 0, pos, 1, 1,
	    &npos, cmd_user_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_path(path, sizeof(path), "/api/v1/users/", pos[0], disable ?
	    "/disable" : "/enable") != 0)
		return CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	if (disable) {
		snprintf(q, sizeof(q), "Disable user %s (their sessions and "
		    "tokens stop working)?", pos[0]);
		if ((status = cli_confirm_or_yes(cmd, q, yes)) != 0)
			goto out;
	}
	if ((status = cli_api(c, "POST", path, NULL, NULL)) != 0)
		goto out;
	printf("%s user %s\n", disable ? "Disabled" : "Enabled", pos[0]);
out:
	cli_conn_free(c);
	return status;
}

static int
user_disable(int argc, char **argv)
{
	return user_switch(argc, argv, true);
}

static int
user_enable(int argc, char **argv)
{
	return user_switch(argc, argv, false);
}

static int
user_roles(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1 + CLI_LIST_MAX];
	json_t *body = NULL, *arr;
	char path[256];
	size_t npos;
	int r, status = CLI_FAILED;

	if ((r = cli_parse("moat user roles", argc, argv, NULL, 0, pos, 2,
	    1 + CLI_LIST_MAX, &npos, cmd_user_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_path(path, sizeof(path), "/api/v1/users/", pos[0], "/roles") !=
	    0)
		return CLI_USAGE;
	if ((arr = json_array()) == NULL ||
	    (body = json_pack("{s:o}", "roles", arr)) == NULL)
		return CLI_FAILED;
	for (size_t i = 1; i < npos; i++)
		json_array_append_new(arr, json_string(pos[i]));
	if ((status = cli_conn_open(&c)) != 0)
		goto out;
	if ((status = cli_api(c, "PUT", path, body, NULL)) != 0)
		goto out;
	printf("Roles of %s set\n", pos[0]);
out:
	json_decref(body);
	cli_conn_free(c);
	return status;
}

static const struct cli_command subs[] = {
	{ "create", user_create, NULL, NULL },
	{ "list", user_list, NULL, NULL },
	{ "ls", user_list, NULL, NULL },
	{ "show", user_show, NULL, NULL },
	{ "disable", user_disable, NULL, NULL },
	{ "enable", user_enable, NULL, NULL },
	{ "roles", user_roles, NULL, NULL },
};

int
cmd_user(int argc, char **argv)
{
	return cli_dispatch("user", argc, argv, subs,
	    sizeof(subs) / sizeof(subs[0]), cmd_user_usage);
}
