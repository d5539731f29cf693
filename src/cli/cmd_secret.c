/*
 * cmd_secret.c - "moat secret": the caller's personal secrets, mounted in
 * their workspaces at /run/secrets/NAME (and as $VAR with --env). Values
 * are write-only: read from stdin (never from argv, where other users
 * could see them in ps), never shown again.
 *
 *   moat secret set NAME [--env VAR]
 *   moat secret list [--json]
 *   moat secret rm NAME [--yes]
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_cmd.h"
#include "cli_http.h"
#include "cli_out.h"

#define SECRET_MAX 32768

void
cmd_secret_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat secret set NAME [--env VAR]\n"
	    "       moat secret list [--json]\n"
	    "       moat secret rm NAME [--yes]\n\n"
	    "set stores or replaces a personal secret. Its value is read from\n"
	    "stdin (moat secret set NAME < file), or asked without echo when\n"
	    "stdin is a terminal; trailing newlines are removed. It is never\n"
	    "taken from the command line. --env also exposes it as the\n"
	    "environment variable VAR in workspaces. list shows names, never\n"
	    "values. rm asks for confirmation on a terminal; --yes skips it\n"
	    "(and is required without a terminal).\n");
}

static int
secret_set(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1], *env = NULL;
	char *value = NULL, path[256], prompt[128];
	json_t *body = NULL;
	size_t npos, len = 0;
	int r, status = CLI_FAILED;
	const struct cli_opt opts[] = {
		{ "--env", NULL, CLI_OPT_STR, &env },
	};

	if ((r = cli_parse("moat secret set", argc, argv, opts, 1, pos, 1, 1,
	    &npos, cmd_secret_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_path(path, sizeof(path), "/api/v1/secrets/", pos[0], NULL) != 0)
		return CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	status = CLI_FAILED;
	if (isatty(STDIN_FILENO) == 1) {
		char buf[SECRET_MAX + 1];

		snprintf(prompt, sizeof(prompt), "Value of %s: ", pos[0]);
		r = cli_prompt(prompt, true, buf, sizeof(buf));
		if (r == 0)
			value = strdup(buf);
		explicit_bzero(buf, sizeof(buf));
		if (value == NULL) {
			fprintf(stderr, "moat secret set: no value read\n");
			goto out;
		}
		len = strlen(value);
	} else if (cli_read_stdin(SECRET_MAX, false, &value, &len) != 0) {
		fprintf(stderr, "moat secret set: cannot read a value of at "
		    "most %d bytes from stdin\n", SECRET_MAX);
		goto out;
	}
	while (len > 0 && (value[len - 1] == '\n' || value[len - 1] == '\r'))
		value[--len] = '\0';
	if (len == 0 || strlen(value) != len) {
		fprintf(stderr, "moat secret set: the value is empty or holds a "
		    "NUL byte\n");
		status = CLI_USAGE;
		goto out;
	}
	if ((body = json_pack("{s:s}", "value", value)) == NULL) {
		fprintf(stderr, "moat secret set: the value is not UTF-8 "
		    "text\n");
		status = CLI_USAGE;
		goto out;
	}
	if (env != NULL)
		json_object_set_new(body, "env", json_string(env));
	if ((status = cli_api(c, "PUT", path, body, NULL)) != 0)
		goto out;
	printf("Stored secret %s\n", pos[0]);
out:
	if (body != NULL) {
		const char *s = json_string_value(json_object_get(body,
		    "value"));

		if (s != NULL)
			explicit_bzero((char *)s, strlen(s));
	}
	json_decref(body);
	if (value != NULL) {
		explicit_bzero(value, len);
		free(value);
	}
	cli_conn_free(c);
	return status;
}

static void
secret_row(const struct cli_conn *c, const json_t *k, const char **row,
    char cell[][CLI_CELL_MAX])
{
	(void)c;
	row[0] = cli_str(k, "name");
	row[1] = cli_str(k, "env");
	row[2] = cli_time(json_string_value(json_object_get(k, "created_at")),
	    cell[2], CLI_CELL_MAX);
	row[3] = cli_time(json_string_value(json_object_get(k, "updated_at")),
	    cell[3], CLI_CELL_MAX);
}

static int
secret_list(int argc, char **argv)
{
	static const char *const head[] = { "NAME", "ENV", "CREATED",
	    "UPDATED" };
	static const struct cli_list_cmd cmd = {
		"moat secret list", cmd_secret_usage, "/api/v1/secrets",
		"secrets", false, 4, head, secret_row,
		NULL, 0, NULL, NULL,
	};

	return cli_run_list(&cmd, argc, argv);
}

static int
secret_rm(int argc, char **argv)
{
	return cli_run_delete("moat secret rm", cmd_secret_usage,
	    "/api/v1/secrets/", "secret", argc, argv);
}

static const struct cli_command subs[] = {
	{ "set", secret_set, NULL, NULL },
	{ "list", secret_list, NULL, NULL },
	{ "ls", secret_list, NULL, NULL },
	{ "rm", secret_rm, NULL, NULL },
	{ "delete", secret_rm, NULL, NULL },
};

int
cmd_secret(int argc, char **argv)
{
	return cli_dispatch("secret", argc, argv, subs,
	    sizeof(subs) / sizeof(subs[0]), cmd_secret_usage);
}
