/*
 * cmd_template.c - "moat template": workspace templates (templates:read to
 * look, every member; templates:write to change: template admins, admins,
 * owners). See docs/templates.md for the fields and their rules, which the
 * server checks.
 *
 *   moat template list [--json]
 *   moat template show NAME [--json]
 *   moat template create NAME --image REF [--cpu M] [--memory MB]
 *       [--disk MB] [--root-disk MB] [--env K=V]... [--startup-script FILE]
 *       [--egress-policy NAME] [--idle-timeout SECONDS] [--port N]...
 *       [--forbid-sudo]
 *   moat template delete NAME [--yes]
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_cmd.h"
#include "cli_http.h"
#include "cli_out.h"
#include "cli_sse.h"

#define SCRIPT_MAX (64 * 1024)
#define MIB (1024ULL * 1024)

void
cmd_template_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat template list [--json]\n"
	    "       moat template show NAME [--json]\n"
	    "       moat template create NAME --image REF [--cpu MILLICORES]\n"
	    "                [--memory MB] [--disk MB] [--root-disk MB]\n"
	    "                [--env K=V]... [--startup-script FILE]\n"
	    "                [--egress-policy NAME] [--idle-timeout SECONDS]\n"
	    "                [--port N]... [--forbid-sudo]\n"
	    "       moat template delete NAME [--yes]\n\n"
	    "A template says what a workspace is made of. create (template\n"
	    "admins and admins) takes:\n"
	    "  --image REF            the image ([REGISTRY/]PATH[:TAG][@DIGEST]);\n"
	    "                         its registry must be allowed\n"
	    "  --cpu MILLICORES       CPU limit, 1000 = one CPU (default 2000)\n"
	    "  --memory MB            memory limit (default 2048)\n"
	    "  --disk MB              size of the encrypted home (default 4096)\n"
	    "  --root-disk MB         bound on the writable root (default 2048)\n"
	    "  --env K=V              an environment variable (repeatable)\n"
	    "  --startup-script FILE  run as the user at each start (- for stdin)\n"
	    "  --egress-policy NAME   a policy that narrows the organization's\n"
	    "  --idle-timeout SECONDS stop after this long idle (90m, 2h; 0 never;\n"
	    "                         default 3600)\n"
	    "  --port N               an exposed port (repeatable)\n"
	    "  --forbid-sudo          no sudo even where the organization allows it\n"
	    "delete asks for confirmation on a terminal; --yes skips it (and is\n"
	    "required without a terminal).\n");
}

/* "2000m" for millicores. */
static const char *
cpu_text(const json_t *t, char *out, size_t outlen)
{
	const json_t *v = json_object_get(t, "cpu");

	if (!json_is_integer(v))
		return "-";
	snprintf(out, outlen, "%" JSON_INTEGER_FORMAT "m",
	    json_integer_value(v));
	return out;
}

/* A size in MiB (field key of t) as "2.0 GiB". */
static const char *
mb_text(const json_t *t, const char *key, char *out, size_t outlen)
{
	const json_t *v = json_object_get(t, key);
	json_int_t mb = json_integer_value(v);

	if (!json_is_integer(v) || mb < 0 || (uint64_t)mb > UINT64_MAX / MIB)
		return "-";
	return cli_bytes((uint64_t)mb * MIB, out, outlen);
}

/* Seconds as "1h", "90m", "45s"; 0 is "never". */
static const char *
idle_text(const json_t *t, char *out, size_t outlen)
{
	const json_t *v = json_object_get(t, "idle_timeout");
	json_int_t s = json_integer_value(v);

	if (!json_is_integer(v) || s < 0)
		return "-";
	if (s == 0)
		return "never";
	if (s % 3600 == 0)
		snprintf(out, outlen, "%" JSON_INTEGER_FORMAT "h", s / 3600);
	else if (s % 60 == 0)
		snprintf(out, outlen, "%" JSON_INTEGER_FORMAT "m", s / 60);
	else
		snprintf(out, outlen, "%" JSON_INTEGER_FORMAT "s", s);
	return out;
}

static void
template_row(const struct cli_conn *c, const json_t *t, const char **row,
    char cell[][CLI_CELL_MAX])
{
	const char *pol = json_string_value(json_object_get(t,
	    "egress_policy"));

	(void)c;
	row[0] = cli_str(t, "name");
	row[1] = cli_str(t, "image");
	row[2] = cpu_text(t, cell[2], CLI_CELL_MAX);
	row[3] = mb_text(t, "memory_mb", cell[3], CLI_CELL_MAX);
	row[4] = mb_text(t, "disk_mb", cell[4], CLI_CELL_MAX);
	row[5] = pol != NULL ? pol : "-";
	row[6] = idle_text(t, cell[6], CLI_CELL_MAX);
	row[7] = cli_time(json_string_value(json_object_get(t, "updated_at")),
	    cell[7], CLI_CELL_MAX);
}

static int
template_list(int argc, char **argv)
{
	static const char *const head[] = { "NAME", "IMAGE", "CPU", "MEMORY",
	    "DISK", "POLICY", "IDLE", "UPDATED" };
	static const struct cli_list_cmd cmd = {
		"moat template list", cmd_template_usage, "/api/v1/templates",
		"templates", false, 8, head, template_row,
		NULL, 0, NULL, NULL,
	};

	return cli_run_list(&cmd, argc, argv);
}

/* The startup script, indented, one line at a time, cleaned. */
static void
print_script(const char *s)
{
	char line[512];

	while (s != NULL && *s != '\0') {
		size_t n = strcspn(s, "\n");
		char *copy = strndup(s, n);

		printf("  %s\n", cli_clean(copy != NULL ? copy : "?", line,
		    sizeof(line)));
		free(copy);
		s += n;
		if (*s == '\n')
			s++;
	}
}

static void
print_template(const json_t *t)
{
	const char *pol = json_string_value(json_object_get(t,
	    "egress_policy"));
	const char *script = json_string_value(json_object_get(t,
	    "startup_script"));
	const char *k;
	json_t *v;
	size_t i, lines = 0;
	char a[512], b[64], d[64];
	bool first = true;

	printf("name:           %s\n", cli_clean(cli_str(t, "name"), a,
	    sizeof(a)));
	printf("id:             %s\n", cli_clean(cli_str(t, "id"), a,
	    sizeof(a)));
	printf("image:          %s\n", cli_clean(cli_str(t, "image"), a,
	    sizeof(a)));
	printf("cpu:            %s\n", cpu_text(t, b, sizeof(b)));
	printf("memory:         %s\n", mb_text(t, "memory_mb", b, sizeof(b)));
	printf("home disk:      %s\n", mb_text(t, "disk_mb", b, sizeof(b)));
	printf("root disk:      %s\n", mb_text(t, "root_disk_mb", b,
	    sizeof(b)));
	printf("egress policy:  %s\n", cli_clean(pol != NULL ? pol :
	    "- (the organization's)", a, sizeof(a)));
	printf("idle timeout:   %s\n", idle_text(t, b, sizeof(b)));
	a[0] = '\0';
	json_array_foreach(json_object_get(t, "ports"), i, v) {
		size_t n = strlen(a);

		snprintf(a + n, sizeof(a) - n, "%s%" JSON_INTEGER_FORMAT,
		    n > 0 ? "," : "", json_integer_value(v));
	}
	printf("ports:          %s\n", a[0] != '\0' ? a : "-");
	printf("sudo:           %s\n", json_is_true(json_object_get(t,
	    "forbid_sudo")) ? "forbidden" : "as the organization allows");
	json_object_foreach(json_object_get(t, "env"), k, v) {
		char kv[1024];

		snprintf(kv, sizeof(kv), "%s=%s", k,
		    json_string_value(v) != NULL ? json_string_value(v) : "");
		printf("%s%s\n", first ? "env:            " :
		    "                ", cli_clean(kv, a, sizeof(a)));
		first = false;
	}
	if (first)
		printf("env:            -\n");
	for (const char *p = script; p != NULL && *p != '\0'; p++)
		if (*p == '\n' || p[1] == '\0')
			lines++;
	if (lines == 0) {
		printf("startup script: -\n");
	} else {
		printf("startup script: %zu %s\n", lines, lines == 1 ? "line" :
		    "lines");
		print_script(script);
	}
	printf("created:        %s\n", cli_time(json_string_value(
	    json_object_get(t, "created_at")), d, sizeof(d)));
	printf("updated:        %s\n", cli_time(json_string_value(
	    json_object_get(t, "updated_at")), d, sizeof(d)));
}

static int
template_show(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1];
	json_t *t = NULL;
	bool json = false;
	char path[256];
	size_t npos;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--json", NULL, CLI_OPT_FLAG, &json },
	};

	if ((r = cli_parse("moat template show", argc, argv, opts, 1, pos, 1, 1,
	    &npos, cmd_template_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_path(path, sizeof(path), "/api/v1/templates/", pos[0], NULL) !=
	    0)
		return CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	if ((status = cli_api(c, "GET", path, NULL, &t)) != 0)
		goto out;
	if (json)
		cli_print_json(t);
	else
		print_template(t);
out:
	json_decref(t);
	cli_conn_free(c);
	return status;
}

/* Reads the startup script from file ("-": stdin) into *out (caller
 * frees). CLI_OK, or the exit status after one line. */
static int
read_script(const char *file, char **out)
{
	struct buf b;
	char chunk[4096];
	FILE *f;
	size_t n;
	int status = CLI_FAILED;

	*out = NULL;
	buf_init(&b, SCRIPT_MAX);
	if (strcmp(file, "-") == 0) {
		f = stdin;
	} else if ((f = fopen(file, "re")) == NULL) {
		fprintf(stderr, "moat template create: cannot open %s: %s\n",
		    file, strerror(errno));
		return CLI_FAILED;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(&b, chunk, n) != 0) {
			fprintf(stderr, "moat template create: %s is larger "
			    "than %d bytes\n", file, SCRIPT_MAX);
			status = CLI_USAGE;
			goto out;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "moat template create: cannot read %s\n", file);
		goto out;
	}
	if (b.len > 0 && memchr(b.data, '\0', b.len) != NULL) {
		fprintf(stderr, "moat template create: %s holds a NUL byte\n",
		    file);
		status = CLI_USAGE;
		goto out;
	}
	if ((*out = strdup(buf_cstr(&b))) == NULL)
		goto out;
	status = CLI_OK;
out:
	if (f != stdin)
		fclose(f);
	buf_free(&b);
	return status;
}

/* The options of create that are numbers: option, JSON field, limit. */
struct num_opt {
	const char *opt;
	const char *field;
	const char *val;
};

/* Builds the template body from the parsed options. CLI_OK with *out, or
 * CLI_USAGE after one line. Exposed to nothing but create. */
static int
template_body(const char *name, const char *image, struct num_opt *nums,
    size_t nnums, const char *idle, const struct cli_list *env,
    const struct cli_list *ports, const char *policy, bool forbid_sudo,
    json_t **out)
{
	static const char prog[] = "moat template create";
	json_t *body, *e = NULL, *p = NULL;
	uint64_t v;
	int64_t secs;

	*out = NULL;
	if (image == NULL) {
		fprintf(stderr, "%s: --image is required (try %s --help)\n",
		    prog, prog);
		return CLI_USAGE;
	}
	if ((body = json_pack("{s:s,s:s}", "name", name, "image", image)) ==
	    NULL) {
		fprintf(stderr, "%s: the name or image is not UTF-8 text\n",
		    prog);
		return CLI_USAGE;
	}
	for (size_t i = 0; i < nnums; i++) {
		if (nums[i].val == NULL)
			continue;
		if (cli_parse_uint(nums[i].val, INT32_MAX, &v) != 0) {
			fprintf(stderr, "%s: %s wants a whole number\n", prog,
			    nums[i].opt);
			goto usage;
		}
		json_object_set_new(body, nums[i].field,
		    json_integer((json_int_t)v));
	}
	if (idle != NULL) {
		if (strcmp(idle, "0") == 0)
			secs = 0;
		else if (cli_parse_duration(idle, &secs) != 0 ||
		    secs > INT32_MAX) {
			fprintf(stderr, "%s: --idle-timeout wants seconds (3600) "
			    "or a duration (90m, 2h), or 0 for never\n", prog);
			goto usage;
		}
		json_object_set_new(body, "idle_timeout",
		    json_integer((json_int_t)secs));
	}
	if (env->n > 0) {
		if ((e = json_object()) == NULL)
			goto usage;
		json_object_set_new(body, "env", e);
	}
	for (size_t i = 0; i < env->n; i++) {
		const char *eq = strchr(env->v[i], '=');
		char key[256];
		json_t *val;

		if (eq == NULL || eq == env->v[i] ||
		    (size_t)(eq - env->v[i]) >= sizeof(key)) {
			fprintf(stderr, "%s: --env wants NAME=VALUE\n", prog);
			goto usage;
		}
		memcpy(key, env->v[i], (size_t)(eq - env->v[i]));
		key[eq - env->v[i]] = '\0';
		if ((val = json_string(eq + 1)) == NULL ||
		    json_object_set_new(e, key, val) != 0) {
			fprintf(stderr, "%s: --env %s is not UTF-8 text\n", prog,
			    key);
			goto usage;
		}
	}
	if (ports->n > 0) {
		if ((p = json_array()) == NULL)
			goto usage;
		json_object_set_new(body, "ports", p);
	}
	for (size_t i = 0; i < ports->n; i++) {
		if (cli_parse_uint(ports->v[i], 65535, &v) != 0 || v == 0) {
			fprintf(stderr, "%s: --port wants a number from 1 to "
			    "65535\n", prog);
			goto usage;
		}
		json_array_append_new(p, json_integer((json_int_t)v));
	}
	if (policy != NULL)
		json_object_set_new(body, "egress_policy", json_string(policy));
	if (forbid_sudo)
		json_object_set_new(body, "forbid_sudo", json_true());
	*out = body;
	return CLI_OK;
usage:
	json_decref(body);
	return CLI_USAGE;
}

static int
template_create(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1], *image = NULL, *script_file = NULL, *policy = NULL;
	const char *idle = NULL;
	struct cli_list env = { { NULL }, 0 }, ports = { { NULL }, 0 };
	struct num_opt nums[] = {
		{ "--cpu", "cpu", NULL },
		{ "--memory", "memory_mb", NULL },
		{ "--disk", "disk_mb", NULL },
		{ "--root-disk", "root_disk_mb", NULL },
	};
	bool forbid_sudo = false;
	char *script = NULL;
	json_t *body = NULL, *out = NULL;
	size_t npos;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--image", NULL, CLI_OPT_STR, &image },
		{ "--cpu", NULL, CLI_OPT_STR, &nums[0].val },
		{ "--memory", NULL, CLI_OPT_STR, &nums[1].val },
		{ "--disk", NULL, CLI_OPT_STR, &nums[2].val },
		{ "--root-disk", NULL, CLI_OPT_STR, &nums[3].val },
		{ "--env", NULL, CLI_OPT_LIST, &env },
		{ "--startup-script", NULL, CLI_OPT_STR, &script_file },
		{ "--egress-policy", NULL, CLI_OPT_STR, &policy },
		{ "--idle-timeout", NULL, CLI_OPT_STR, &idle },
		{ "--port", NULL, CLI_OPT_LIST, &ports },
		{ "--forbid-sudo", NULL, CLI_OPT_FLAG, &forbid_sudo },
	};

	if ((r = cli_parse("moat template create", argc, argv, opts,
	    sizeof(opts) / sizeof(opts[0]), pos, 1, 1, &npos,
	    cmd_template_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if ((status = template_body(pos[0], image, nums, sizeof(nums) /
	    sizeof(nums[0]), idle, &env, &ports, policy, forbid_sudo,
	    &body)) != 0)
		return status;
	if (script_file != NULL) {
		if ((status = read_script(script_file, &script)) != 0)
			goto out;
		if (json_object_set_new(body, "startup_script",
		    json_string(script)) != 0) {
			fprintf(stderr, "moat template create: %s is not UTF-8 "
			    "text\n", script_file);
			status = CLI_USAGE;
			goto out;
		}
	}
	if ((status = cli_conn_open(&c)) != 0)
		goto out;
	if ((status = cli_api(c, "POST", "/api/v1/templates", body, &out)) != 0)
		goto out;
	{
		char n[64], im[300];

		printf("Created template %s (image %s)\n", cli_clean(cli_str(out,
		    "name"), n, sizeof(n)), cli_clean(cli_str(out, "image"), im,
		    sizeof(im)));
	}
out:
	free(script);
	json_decref(body);
	json_decref(out);
	cli_conn_free(c);
	return status;
}

static int
template_delete(int argc, char **argv)
{
	return cli_run_delete("moat template delete", cmd_template_usage,
	    "/api/v1/templates/", "template", argc, argv);
}

static const struct cli_command subs[] = {
	{ "list", template_list, NULL, NULL },
	{ "ls", template_list, NULL, NULL },
	{ "show", template_show, NULL, NULL },
	{ "get", template_show, NULL, NULL },
	{ "create", template_create, NULL, NULL },
	{ "delete", template_delete, NULL, NULL },
	{ "rm", template_delete, NULL, NULL },
};

int
cmd_template(int argc, char **argv)
{
	return cli_dispatch("template", argc, argv, subs,
	    sizeof(subs) / sizeof(subs[0]), cmd_template_usage);
}
