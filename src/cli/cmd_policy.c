/*
 * cmd_policy.c - "moat policy": egress policies (policies:read to look,
 * policies:write to change: owners, admins, security officers).
 *
 *   moat policy list [--json]
 *   moat policy get NAME                  (prints the policy as JSON)
 *   moat policy set NAME FILE             (YAML or JSON; - for stdin)
 *   moat policy delete NAME [--yes]
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_cmd.h"
#include "cli_http.h"
#include "cli_out.h"

#define POLICY_FILE_MAX (1024 * 1024)

void
cmd_policy_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat policy list [--json]\n"
	    "       moat policy get NAME\n"
	    "       moat policy set NAME FILE\n"
	    "       moat policy delete NAME [--yes]\n\n"
	    "Egress policies say which hosts, networks and URLs workspaces may\n"
	    "reach. set creates or replaces NAME from FILE, YAML or JSON (by\n"
	    "its .json/.yaml/.yml extension, else by its first character; -\n"
	    "reads stdin), for example:\n\n"
	    "  mode: enforce\n"
	    "  allow:\n"
	    "    - host: git.example.com\n"
	    "      ports: [443]\n\n"
	    "get prints a policy as JSON. delete asks for confirmation on a\n"
	    "terminal; --yes skips it (and is required without a terminal).\n");
}

static void
policy_row(const struct cli_conn *c, const json_t *p, const char **row,
    char cell[][CLI_CELL_MAX])
{
	(void)c;
	snprintf(cell[2], CLI_CELL_MAX, "%zu", json_array_size(
	    json_object_get(p, "allow")));
	snprintf(cell[3], CLI_CELL_MAX, "%zu", json_array_size(
	    json_object_get(p, "deny")));
	row[0] = cli_str(p, "name");
	row[1] = cli_str(p, "mode");
	row[2] = cell[2];
	row[3] = cell[3];
	row[4] = cli_time(json_string_value(json_object_get(p, "updated_at")),
	    cell[4], CLI_CELL_MAX);
}

static int
policy_list(int argc, char **argv)
{
	static const char *const head[] = { "NAME", "MODE", "ALLOW", "DENY",
	    "UPDATED" };
	static const struct cli_list_cmd cmd = {
		"moat policy list", cmd_policy_usage, "/api/v1/policies",
		"policies", false, 5, head, policy_row,
		NULL, 0, NULL, NULL,
	};

	return cli_run_list(&cmd, argc, argv);
}

static int
policy_get(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1];
	json_t *out = NULL;
	char path[256];
	size_t npos;
	int r, status;
	bool json = false;	/* accepted for symmetry: get prints JSON */
	const struct cli_opt opts[] = {
		{ "--json", NULL, CLI_OPT_FLAG, &json },
	};

	if ((r = cli_parse("moat policy get", argc, argv, opts, 1, pos, 1, 1,
	    &npos, cmd_policy_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_path(path, sizeof(path), "/api/v1/policies/", pos[0], NULL) !=
	    0)
		return CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	if ((status = cli_api(c, "GET", path, NULL, &out)) == 0)
		cli_print_json(out);
	json_decref(out);
	cli_conn_free(c);
	return status;
}

/* The content type of a policy file: by extension, else by its first
 * non-blank character ('{' is JSON). */
static const char *
policy_type(const char *file, const char *data)
{
	const char *dot = strrchr(file, '.');

	if (dot != NULL && strcmp(dot, ".json") == 0)
		return "application/json";
	if (dot != NULL && (strcmp(dot, ".yaml") == 0 ||
	    strcmp(dot, ".yml") == 0))
		return "application/yaml";
	data += strspn(data, " \t\r\n");
	return *data == '{' ? "application/json" : "application/yaml";
}

static int
policy_set(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[2];
	char path[256], chunk[4096];
	struct buf b;
	FILE *f = NULL;
	size_t npos, n;
	int r, status = CLI_FAILED;

	if ((r = cli_parse("moat policy set", argc, argv, NULL, 0, pos, 2, 2,
	    &npos, cmd_policy_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_path(path, sizeof(path), "/api/v1/policies/", pos[0], NULL) !=
	    0)
		return CLI_USAGE;
	buf_init(&b, POLICY_FILE_MAX);
	if (strcmp(pos[1], "-") == 0) {
		f = stdin;
	} else if ((f = fopen(pos[1], "re")) == NULL) {
		fprintf(stderr, "moat policy set: cannot open %s: %s\n", pos[1],
		    strerror(errno));
		goto out;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(&b, chunk, n) != 0) {
			fprintf(stderr, "moat policy set: %s is larger than %d "
			    "bytes\n", pos[1], POLICY_FILE_MAX);
			goto out;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "moat policy set: cannot read %s\n", pos[1]);
		goto out;
	}
	if (b.len == 0) {
		fprintf(stderr, "moat policy set: %s is empty\n", pos[1]);
		status = CLI_USAGE;
		goto out;
	}
	if ((status = cli_conn_open(&c)) != 0)
		goto out;
	if ((status = cli_api_raw(c, "PUT", path, policy_type(pos[1],
	    buf_cstr(&b)), b.data, b.len, NULL)) != 0)
		goto out;
	printf("Stored policy %s\n", pos[0]);
out:
	if (f != NULL && f != stdin)
		fclose(f);
	buf_free(&b);
	cli_conn_free(c);
	return status;
}

static int
policy_delete(int argc, char **argv)
{
	return cli_run_delete("moat policy delete", cmd_policy_usage,
	    "/api/v1/policies/", "policy", argc, argv);
}

static const struct cli_command subs[] = {
	{ "list", policy_list, NULL, NULL },
	{ "ls", policy_list, NULL, NULL },
	{ "get", policy_get, NULL, NULL },
	{ "show", policy_get, NULL, NULL },
	{ "set", policy_set, NULL, NULL },
	{ "delete", policy_delete, NULL, NULL },
	{ "rm", policy_delete, NULL, NULL },
};

int
cmd_policy(int argc, char **argv)
{
	return cli_dispatch("policy", argc, argv, subs,
	    sizeof(subs) / sizeof(subs[0]), cmd_policy_usage);
}
