/*
 * test_cli_args.c - unit tests for the moat CLI's argument handling
 * (src/cli/cli_args.c and the parsing steps of the verbs): options with
 * "--x v", "--x=v", aliases, lists, "--", mixed positionals, the help flag,
 * and every usage error (unknown option, missing value, too many or too
 * few arguments); durations; login URLs and token names; certificate
 * fingerprints in both notations; and verbs refusing bad arguments with
 * exit status 2 before touching the config or the network (a secret value
 * is never accepted from argv); workspace references [OWNER/]NAME, whole
 * numbers, and moat ws / moat template refusing bad arguments the same
 * way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_http.h"

static int usage_calls;

static void
usage(FILE *f)
{
	usage_calls++;
	fprintf(f, "usage: test\n");
}

struct opts {
	bool json, yes;
	const char *name, *expires;
	struct cli_list roles;
};

static int
parse(struct opts *o, const char **pos, size_t min, size_t max,
    size_t *npos, int argc, char **argv)
{
	const struct cli_opt table[] = {
		{ "--json", NULL, CLI_OPT_FLAG, &o->json },
		{ "--yes", "-y", CLI_OPT_FLAG, &o->yes },
		{ "--name", NULL, CLI_OPT_STR, &o->name },
		{ "--expires-in", NULL, CLI_OPT_STR, &o->expires },
		{ "--role", NULL, CLI_OPT_LIST, &o->roles },
	};

	memset(o, 0, sizeof(*o));
	return cli_parse("moat test", argc, argv, table, 5, pos, min, max,
	    npos, usage);
}

#define ARGV(...) (char *[]){ __VA_ARGS__, NULL }
#define ARGC(a) ((int)(sizeof(a) / sizeof(char *)) - 1)

static void
test_parse_forms(void **state)
{
	struct opts o;
	const char *pos[4];
	size_t n;
	char **a = ARGV("create", "tok", "--expires-in", "30d", "--role=admin",
	    "-y", "--role", "member", "--json", "--name=x=y");

	(void)state;
	assert_int_equal(parse(&o, pos, 1, 1, &n, 10, a), CLI_PARSE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(pos[0], "tok");
	assert_string_equal(o.expires, "30d");
	assert_int_equal(o.roles.n, 2);
	assert_string_equal(o.roles.v[0], "admin");
	assert_string_equal(o.roles.v[1], "member");
	assert_true(o.yes);
	assert_true(o.json);
	assert_string_equal(o.name, "x=y");
}

static void
test_parse_double_dash_and_stdin(void **state)
{
	struct opts o;
	const char *pos[4];
	size_t n;
	char **a = ARGV("add", "--", "--json", "-");
	char **b = ARGV("set", "-", "--json");

	(void)state;
	assert_int_equal(parse(&o, pos, 0, 4, &n, 4, a), CLI_PARSE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(pos[0], "--json");
	assert_string_equal(pos[1], "-");
	assert_false(o.json);
	/* A lone "-" is a positional (stdin), not an option. */
	assert_int_equal(parse(&o, pos, 1, 1, &n, 3, b), CLI_PARSE_OK);
	assert_string_equal(pos[0], "-");
	assert_true(o.json);
}

static void
test_parse_errors(void **state)
{
	struct opts o;
	const char *pos[2];
	size_t n;

	(void)state;
	assert_int_equal(parse(&o, pos, 0, 1, &n, 2, ARGV("x", "--bogus")),
	    CLI_PARSE_ERR);
	assert_int_equal(parse(&o, pos, 0, 1, &n, 2, ARGV("x", "--name")),
	    CLI_PARSE_ERR);
	/* An option where a value should be. */
	assert_int_equal(parse(&o, pos, 0, 1, &n, 3, ARGV("x", "--name",
	    "--json")), CLI_PARSE_ERR);
	assert_int_equal(parse(&o, pos, 0, 1, &n, 2, ARGV("x", "--json=1")),
	    CLI_PARSE_ERR);
	assert_int_equal(parse(&o, pos, 0, 1, &n, 3, ARGV("x", "a", "b")),
	    CLI_PARSE_ERR);
	/* Errors are one line: the usage is not dumped on stderr. */
	usage_calls = 0;
	assert_int_equal(parse(&o, pos, 1, 1, &n, 2, ARGV("x", "--json")),
	    CLI_PARSE_ERR);
	assert_int_equal(usage_calls, 0);
	/* More --role than CLI_LIST_MAX. */
	{
		char *many[2 + 2 * (CLI_LIST_MAX + 1)];
		int k = 0;

		many[k++] = "x";
		for (int i = 0; i <= CLI_LIST_MAX; i++) {
			many[k++] = "--role";
			many[k++] = "member";
		}
		many[k] = NULL;
		assert_int_equal(parse(&o, pos, 0, 1, &n, k, many),
		    CLI_PARSE_ERR);
	}
}

static void
test_parse_help(void **state)
{
	struct opts o;
	const char *pos[2];
	size_t n;

	(void)state;
	usage_calls = 0;
	/* Help wins even when arguments are missing or wrong later. */
	assert_int_equal(parse(&o, pos, 1, 1, &n, 2, ARGV("x", "--help")),
	    CLI_PARSE_HELP);
	assert_int_equal(parse(&o, pos, 1, 1, &n, 3, ARGV("x", "-h",
	    "--bogus")), CLI_PARSE_HELP);
	assert_int_equal(usage_calls, 2);
}

static void
test_duration(void **state)
{
	int64_t v;

	(void)state;
	assert_int_equal(cli_parse_duration("90", &v), 0);
	assert_int_equal(v, 90);
	assert_int_equal(cli_parse_duration("90s", &v), 0);
	assert_int_equal(v, 90);
	assert_int_equal(cli_parse_duration("15m", &v), 0);
	assert_int_equal(v, 900);
	assert_int_equal(cli_parse_duration("12h", &v), 0);
	assert_int_equal(v, 43200);
	assert_int_equal(cli_parse_duration("30d", &v), 0);
	assert_int_equal(v, 30 * 86400);
	assert_int_equal(cli_parse_duration("2w", &v), 0);
	assert_int_equal(v, 14 * 86400);
	assert_int_not_equal(cli_parse_duration("", &v), 0);
	assert_int_not_equal(cli_parse_duration("0", &v), 0);
	assert_int_not_equal(cli_parse_duration("-5m", &v), 0);
	assert_int_not_equal(cli_parse_duration("5x", &v), 0);
	assert_int_not_equal(cli_parse_duration("5dd", &v), 0);
	assert_int_not_equal(cli_parse_duration("d", &v), 0);
	assert_int_not_equal(cli_parse_duration(" 5", &v), 0);
	assert_int_not_equal(cli_parse_duration("99999999999999999999", &v),
	    0);
	assert_int_not_equal(cli_parse_duration("36700d", &v), 0);
	assert_int_not_equal(cli_parse_duration(NULL, &v), 0);
}

static void
test_login_url(void **state)
{
	char url[128], name[80];

	(void)state;
	assert_int_equal(cli_login_parse_url("https://127.0.0.1:8443/", url,
	    sizeof(url), name, sizeof(name)), 0);
	assert_string_equal(url, "https://127.0.0.1:8443");
	assert_string_equal(name, "127.0.0.1:8443");
	assert_int_equal(cli_login_parse_url("moat.example.com", url,
	    sizeof(url), name, sizeof(name)), 0);
	assert_string_equal(url, "https://moat.example.com");
	assert_string_equal(name, "moat.example.com");
	assert_int_equal(cli_login_parse_url("https://[::1]:8443", url,
	    sizeof(url), name, sizeof(name)), 0);
	assert_string_equal(url, "https://[::1]:8443");
	assert_string_equal(name, "_::1_:8443");
	assert_int_equal(cli_login_parse_url("https://h/prefix//", url,
	    sizeof(url), name, sizeof(name)), 0);
	assert_string_equal(url, "https://h/prefix");
	assert_string_equal(name, "h");
	assert_int_not_equal(cli_login_parse_url("http://h", url, sizeof(url),
	    name, sizeof(name)), 0);
	assert_int_not_equal(cli_login_parse_url("ftp://h", url, sizeof(url),
	    name, sizeof(name)), 0);
	assert_int_not_equal(cli_login_parse_url("https://", url, sizeof(url),
	    name, sizeof(name)), 0);
	assert_int_not_equal(cli_login_parse_url("https://u:p@h", url,
	    sizeof(url), name, sizeof(name)), 0);
	assert_int_not_equal(cli_login_parse_url("https://h/?q", url,
	    sizeof(url), name, sizeof(name)), 0);
	assert_int_not_equal(cli_login_parse_url("https://h\n", url,
	    sizeof(url), name, sizeof(name)), 0);
}

/* A token name must be a user-name-like label: [a-z0-9-], at most 20,
 * no leading, trailing or doubled '-'. */
static void
check_label(const char *s)
{
	size_t n = strlen(s);

	assert_true(n >= 1 && n <= 20);
	assert_true(s[0] != '-' && s[n - 1] != '-');
	assert_null(strstr(s, "--"));
	for (size_t i = 0; i < n; i++)
		assert_true((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '-');
}

static void
test_token_name(void **state)
{
	char t[21];
	time_t when = 1796321811;	/* 2026-12-03 18:16:51 UTC */

	(void)state;
	cli_login_token_name(t, "vm", when, 0);
	assert_string_equal(t, "cli-vm-12031816");
	cli_login_token_name(t, "Dev_Laptop.example.com", when, 0);
	assert_string_equal(t, "cli-dev-lap-12031816");
	check_label(t);
	cli_login_token_name(t, "Dev_Laptop.example.com", when, 1);
	assert_string_equal(t, "cli-dev-12031816-01");
	check_label(t);
	cli_login_token_name(t, "--..", when, 0);
	assert_string_equal(t, "cli-host-12031816");
	cli_login_token_name(t, NULL, when, 40);
	assert_string_equal(t, "cli-host-12031816-14");
	check_label(t);
	cli_login_token_name(t, "a-------b", when, 3);
	check_label(t);
}

static void
test_fingerprints(void **state)
{
	static const char b64[] =
	    "SHA256:yNNxV+0uEXNn+vf7V6GhEd0Bj/ISwd/7HUJAj5FSsu8";
	static const char hex[] = "C8:D3:71:57:ED:2E:11:73:67:FA:F7:FB:57:A1:"
	    "A1:11:DD:01:8F:F2:12:C1:DF:FB:1D:42:40:8F:91:52:B2:EF";
	unsigned char raw[32];

	(void)state;
	assert_int_equal(cli_fp_parse(b64, raw), 0);
	assert_int_equal(raw[0], 0xc8);
	assert_int_equal(raw[31], 0xef);
	assert_int_equal(cli_fp_parse(hex, raw), 0);
	assert_true(cli_fp_equal(b64, hex));
	assert_true(cli_fp_equal("sha256:c8d37157ed2e117367faf7fb57a1a111dd01"
	    "8ff212c1dffb1d42408f9152b2ef", b64));
	/* One bit off, short, long, junk. */
	assert_false(cli_fp_equal(b64, "C8:D3:71:57:ED:2E:11:73:67:FA:F7:FB:"
	    "57:A1:A1:11:DD:01:8F:F2:12:C1:DF:FB:1D:42:40:8F:91:52:B2:EE"));
	assert_int_not_equal(cli_fp_parse("SHA256:yNNxV+0uEXNn", raw), 0);
	assert_int_not_equal(cli_fp_parse("C8:D3", raw), 0);
	assert_int_not_equal(cli_fp_parse("zz", raw), 0);
	assert_int_not_equal(cli_fp_parse("", raw), 0);
	assert_int_not_equal(cli_fp_parse(NULL, raw), 0);
	assert_int_not_equal(cli_fp_parse("SHA256:!NNxV+0uEXNn+vf7V6GhEd0Bj/"
	    "ISwd/7HUJAj5FSsu8", raw), 0);
	assert_false(cli_fp_equal(NULL, b64));
}

/* Verbs stop at bad arguments with status 2, before the config file or
 * the network (HOME points nowhere usable, so getting further would fail
 * with status 1 instead). */
static void
test_verbs_refuse_bad_args(void **state)
{
	(void)state;
	setenv("HOME", "/nonexistent-moat-test", 1);
	unsetenv("XDG_CONFIG_HOME");
	assert_int_equal(cmd_token(2, ARGV("token", "create")), CLI_USAGE);
	assert_int_equal(cmd_token(5, ARGV("token", "create", "t",
	    "--expires-in", "soon")), CLI_USAGE);
	assert_int_equal(cmd_token(2, ARGV("token", "frob")), CLI_USAGE);
	assert_int_equal(cmd_token(1, ARGV("token")), CLI_USAGE);
	assert_int_equal(cmd_token(2, ARGV("token", "--help")), CLI_OK);
	assert_int_equal(cmd_token(3, ARGV("token", "list", "--help")),
	    CLI_OK);
	assert_int_equal(cmd_token(3, ARGV("token", "list", "extra")),
	    CLI_USAGE);
	assert_int_equal(cmd_user(3, ARGV("user", "roles", "ann")),
	    CLI_USAGE);
	assert_int_equal(cmd_user(4, ARGV("user", "enable", "ann", "--yes")),
	    CLI_USAGE);
	assert_int_equal(cmd_user(3, ARGV("user", "create", "--role")),
	    CLI_USAGE);
	/* A secret's value can never come from argv. */
	assert_int_equal(cmd_secret(4, ARGV("secret", "set", "db",
	    "hunter2")), CLI_USAGE);
	assert_int_equal(cmd_secret(4, ARGV("secret", "set", "db",
	    "--value=hunter2")), CLI_USAGE);
	assert_int_equal(cmd_policy(3, ARGV("policy", "set", "p")), CLI_USAGE);
	assert_int_equal(cmd_sshkey(4, ARGV("sshkey", "add", "a", "b")),
	    CLI_USAGE);
	assert_int_equal(cmd_login(2, ARGV("login", "http://h")), CLI_USAGE);
	assert_int_equal(cmd_login(1, ARGV("login")), CLI_USAGE);
	assert_int_equal(cmd_login(4, ARGV("login", "h", "--expires-in",
	    "0")), CLI_USAGE);
	assert_int_equal(cmd_login(4, ARGV("login", "h", "--name", "a b")),
	    CLI_USAGE);
	assert_int_equal(cmd_login(6, ARGV("login", "h", "--ca-file", "x",
	    "--insecure-trust-fingerprint", "y")), CLI_USAGE);
	assert_int_equal(cmd_audit(4, ARGV("audit", "tail", "--limit", "0")),
	    CLI_USAGE);
	assert_int_equal(cmd_audit(4, ARGV("audit", "tail", "--since",
	    "yesterday")), CLI_USAGE);
	/* Past parsing, the missing config directory is a status-1 error
	 * (not logged in), not a usage error. */
	assert_int_equal(cmd_whoami(1, ARGV("whoami")), CLI_FAILED);
}

static void
test_ws_ref_and_numbers(void **state)
{
	char o[16], n[16];
	uint64_t v;

	(void)state;
	assert_int_equal(cli_ws_ref("dev", "ann", o, sizeof(o), n, sizeof(n)),
	    0);
	assert_string_equal(o, "ann");
	assert_string_equal(n, "dev");
	assert_int_equal(cli_ws_ref("bob/lab", "ann", o, sizeof(o), n,
	    sizeof(n)), 0);
	assert_string_equal(o, "bob");
	assert_string_equal(n, "lab");
	/* Syntax only: no owner known yet. */
	assert_int_equal(cli_ws_ref("dev", NULL, o, sizeof(o), n, sizeof(n)),
	    0);
	assert_string_equal(o, "");
	assert_string_equal(n, "dev");
	assert_int_not_equal(cli_ws_ref("", "ann", o, sizeof(o), n,
	    sizeof(n)), 0);
	assert_int_not_equal(cli_ws_ref("/dev", "ann", o, sizeof(o), n,
	    sizeof(n)), 0);
	assert_int_not_equal(cli_ws_ref("bob/", "ann", o, sizeof(o), n,
	    sizeof(n)), 0);
	assert_int_not_equal(cli_ws_ref("a/b/c", "ann", o, sizeof(o), n,
	    sizeof(n)), 0);
	assert_int_not_equal(cli_ws_ref("a/0123456789abcdef", "ann", o,
	    sizeof(o), n, sizeof(n)), 0);
	assert_int_not_equal(cli_ws_ref("0123456789abcdef/a", "ann", o,
	    sizeof(o), n, sizeof(n)), 0);
	assert_int_not_equal(cli_ws_ref("a", "0123456789abcdef", o,
	    sizeof(o), n, sizeof(n)), 0);

	assert_int_equal(cli_parse_uint("2000", 64000, &v), 0);
	assert_int_equal(v, 2000);
	assert_int_equal(cli_parse_uint("0", 1, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(cli_parse_uint("18446744073709551615", UINT64_MAX,
	    &v), 0);
	assert_true(v == UINT64_MAX);
	assert_int_not_equal(cli_parse_uint("18446744073709551616",
	    UINT64_MAX, &v), 0);
	assert_int_not_equal(cli_parse_uint("65536", 65535, &v), 0);
	assert_int_not_equal(cli_parse_uint("-1", 10, &v), 0);
	assert_int_not_equal(cli_parse_uint("+1", 10, &v), 0);
	assert_int_not_equal(cli_parse_uint(" 1", 10, &v), 0);
	assert_int_not_equal(cli_parse_uint("1 ", 10, &v), 0);
	assert_int_not_equal(cli_parse_uint("2k", 10000, &v), 0);
	assert_int_not_equal(cli_parse_uint("", 10, &v), 0);
	assert_int_not_equal(cli_parse_uint(NULL, 10, &v), 0);
}

/* moat ws and moat template stop at bad arguments with status 2 before
 * the config or the network (as test_verbs_refuse_bad_args). */
static void
test_ws_template_refuse_bad_args(void **state)
{
	(void)state;
	setenv("HOME", "/nonexistent-moat-test", 1);
	unsetenv("XDG_CONFIG_HOME");
	assert_int_equal(cmd_ws(1, ARGV("ws")), CLI_USAGE);
	assert_int_equal(cmd_ws(2, ARGV("ws", "frob")), CLI_USAGE);
	assert_int_equal(cmd_ws(2, ARGV("ws", "--help")), CLI_OK);
	assert_int_equal(cmd_ws(3, ARGV("ws", "create", "--help")), CLI_OK);
	assert_int_equal(cmd_ws(2, ARGV("ws", "create")), CLI_USAGE);
	assert_int_equal(cmd_ws(4, ARGV("ws", "create", "a", "b")), CLI_USAGE);
	assert_int_equal(cmd_ws(3, ARGV("ws", "create", "bob/dev")),
	    CLI_USAGE);
	assert_int_equal(cmd_ws(4, ARGV("ws", "create", "dev", "--template")),
	    CLI_USAGE);
	assert_int_equal(cmd_ws(4, ARGV("ws", "create", "dev", "--yes")),
	    CLI_USAGE);
	assert_int_equal(cmd_ws(5, ARGV("ws", "list", "--owner", "bob",
	    "--all")), CLI_USAGE);
	assert_int_equal(cmd_ws(3, ARGV("ws", "list", "dev")), CLI_USAGE);
	assert_int_equal(cmd_ws(2, ARGV("ws", "show")), CLI_USAGE);
	assert_int_equal(cmd_ws(3, ARGV("ws", "show", "a/b/c")), CLI_USAGE);
	assert_int_equal(cmd_ws(3, ARGV("ws", "show", "/dev")), CLI_USAGE);
	assert_int_equal(cmd_ws(3, ARGV("ws", "show", "bob/")), CLI_USAGE);
	assert_int_equal(cmd_ws(4, ARGV("ws", "start", "a", "b")), CLI_USAGE);
	/* Only delete takes --yes; only lists and show take --json. */
	assert_int_equal(cmd_ws(4, ARGV("ws", "stop", "dev", "--yes")),
	    CLI_USAGE);
	assert_int_equal(cmd_ws(4, ARGV("ws", "logs", "dev", "--json")),
	    CLI_USAGE);
	assert_int_equal(cmd_ws(4, ARGV("ws", "events", "dev", "--wait")),
	    CLI_USAGE);
	assert_int_equal(cmd_ws(4, ARGV("ws", "restart", "dev", "--wait=1")),
	    CLI_USAGE);
	assert_int_equal(cmd_ws(3, ARGV("ws", "delete", "--help")), CLI_OK);

	assert_int_equal(cmd_template(2, ARGV("template", "create")),
	    CLI_USAGE);
	/* --image is required. */
	assert_int_equal(cmd_template(3, ARGV("template", "create", "t")),
	    CLI_USAGE);
	assert_int_equal(cmd_template(7, ARGV("template", "create", "t",
	    "--image", "x", "--cpu", "two")), CLI_USAGE);
	assert_int_equal(cmd_template(7, ARGV("template", "create", "t",
	    "--image", "x", "--memory", "-5")), CLI_USAGE);
	assert_int_equal(cmd_template(7, ARGV("template", "create", "t",
	    "--image", "x", "--disk", "99999999999")), CLI_USAGE);
	assert_int_equal(cmd_template(7, ARGV("template", "create", "t",
	    "--image", "x", "--env", "NOEQUALS")), CLI_USAGE);
	assert_int_equal(cmd_template(7, ARGV("template", "create", "t",
	    "--image", "x", "--env", "=v")), CLI_USAGE);
	assert_int_equal(cmd_template(7, ARGV("template", "create", "t",
	    "--image", "x", "--port", "0")), CLI_USAGE);
	assert_int_equal(cmd_template(7, ARGV("template", "create", "t",
	    "--image", "x", "--port", "65536")), CLI_USAGE);
	assert_int_equal(cmd_template(7, ARGV("template", "create", "t",
	    "--image", "x", "--idle-timeout", "soon")), CLI_USAGE);
	assert_int_equal(cmd_template(6, ARGV("template", "create", "t",
	    "--image", "x", "--forbid-sudo=yes")), CLI_USAGE);
	assert_int_equal(cmd_template(3, ARGV("template", "show", "--all")),
	    CLI_USAGE);
	assert_int_equal(cmd_template(4, ARGV("template", "delete", "a",
	    "b")), CLI_USAGE);
	/* A startup script that cannot be read fails before the network. */
	assert_int_equal(cmd_template(7, ARGV("template", "create", "t",
	    "--image", "x", "--startup-script", "/nonexistent/script.sh")),
	    CLI_FAILED);
	/* Good arguments get as far as the (missing) config: status 1. */
	assert_int_equal(cmd_template(11, ARGV("template", "create", "t",
	    "--image", "x", "--idle-timeout", "0", "--port", "8080",
	    "--env", "A=b=c")), CLI_FAILED);
	assert_int_equal(cmd_ws(3, ARGV("ws", "show", "bob/dev")), CLI_FAILED);
	assert_int_equal(cmd_ws(4, ARGV("ws", "list", "--owner", "bob")),
	    CLI_FAILED);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_forms),
		cmocka_unit_test(test_parse_double_dash_and_stdin),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test(test_parse_help),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_login_url),
		cmocka_unit_test(test_token_name),
		cmocka_unit_test(test_fingerprints),
		cmocka_unit_test(test_verbs_refuse_bad_args),
		cmocka_unit_test(test_ws_ref_and_numbers),
		cmocka_unit_test(test_ws_template_refuse_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
