/*
 * test_config.c - unit tests for config.c: YAML files (real files in a
 * mkdtemp directory), environment, flags, precedence, value parsing, error
 * messages, secrets, --help and Markdown output.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"

static const struct config_key keys[] = {
	{ "listen-port", CFG_INT, "8443", "Port to listen on.", 1, 65535, false },
	{ "metrics-listen", CFG_STRING, "127.0.0.1:2112", "Metrics address.", 0, 0, false },
	{ "verbose", CFG_BOOL, "false", "Log more.", 0, 0, false },
	{ "timeout", CFG_DURATION, "30s", "Idle timeout.", 0, 0, false },
	{ "max-body", CFG_SIZE, "1M", "Largest body.", 1, 1LL << 30, false },
	{ "origins", CFG_LIST, NULL, "Allowed origins.", 0, 0, false },
	{ "token", CFG_STRING, NULL, "API token.", 0, 0, true },
	{ "workers", CFG_INT, NULL, "Worker threads | pool.", 0, 0, false },
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

struct fixture {
	struct config *c;
	char dir[64];
	char err[512];
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(config_new(&f->c, keys, NKEYS), 0);
	snprintf(f->dir, sizeof(f->dir), "/tmp/moat-config-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	config_free(f->c);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* Writes text to dir/name; returns the path (static buffer). */
static const char *
write_file(struct fixture *f, const char *name, const char *text, size_t len)
{
	static char path[128];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", f->dir, name);
	assert_non_null(fp = fopen(path, "wb"));
	assert_int_equal(fwrite(text, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	return path;
}

static int
yaml(struct fixture *f, const char *text)
{
	return config_load_yaml_buf(f->c, text, strlen(text), f->err,
	    sizeof(f->err));
}

static void
test_defaults(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(config_int(f->c, "listen-port"), 8443);
	assert_string_equal(config_str(f->c, "metrics-listen"), "127.0.0.1:2112");
	assert_false(config_bool(f->c, "verbose"));
	assert_int_equal(config_int(f->c, "timeout"), 30000);
	assert_int_equal(config_int(f->c, "max-body"), 1 << 20);
	assert_null(config_list(f->c, "origins")[0]);
	assert_null(config_str(f->c, "token"));
	assert_string_equal(config_source(f->c, "listen-port"), "default");
}

static void
test_bad_table(void **state)
{
	static const struct config_key dup[] = {
		{ "a", CFG_INT, NULL, "", 0, 0, false },
		{ "a", CFG_INT, NULL, "", 0, 0, false },
	};
	static const struct config_key baddef[] = {
		{ "a", CFG_INT, "x", "", 0, 0, false },
	};
	struct config *c;

	(void)state;
	assert_int_equal(config_new(&c, dup, 2), MOAT_ERR_INVAL);
	assert_null(c);
	assert_int_equal(config_new(&c, baddef, 1), MOAT_ERR_INVAL);
	assert_null(c);
}

static void
test_yaml_file(void **state)
{
	struct fixture *f = *state;
	const char *text =
	    "# moatd\n"
	    "listen-port: 9443\n"
	    "metrics-listen: \"[::1]:2112\"\n"
	    "verbose: yes\n"
	    "timeout: 500ms\n"
	    "max-body: 64k\n"
	    "origins:\n"
	    "  - https://a.example\n"
	    "  - https://b.example\n"
	    "token: s3cret\n";
	const char *path = write_file(f, "moatd.yaml", text, strlen(text));
	const char *const *l;

	assert_int_equal(config_load_yaml_file(f->c, path, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(config_int(f->c, "listen-port"), 9443);
	assert_string_equal(config_str(f->c, "metrics-listen"), "[::1]:2112");
	assert_true(config_bool(f->c, "verbose"));
	assert_int_equal(config_int(f->c, "timeout"), 500);
	assert_int_equal(config_int(f->c, "max-body"), 64 * 1024);
	l = config_list(f->c, "origins");
	assert_string_equal(l[0], "https://a.example");
	assert_string_equal(l[1], "https://b.example");
	assert_null(l[2]);
	assert_string_equal(config_str(f->c, "origins"),
	    "https://a.example,https://b.example");
	assert_string_equal(config_str(f->c, "token"), "s3cret");
	assert_string_equal(config_source(f->c, "listen-port"), "file");
	assert_string_equal(config_source(f->c, "workers"), "default");
}

static void
test_yaml_flow_list_and_scalar_list(void **state)
{
	struct fixture *f = *state;
	const char *const *l;

	assert_int_equal(yaml(f, "origins: [x, 'y', \"z\"]\n"), 0);
	l = config_list(f->c, "origins");
	assert_string_equal(l[0], "x");
	assert_string_equal(l[2], "z");
	assert_null(l[3]);
	assert_int_equal(yaml(f, "origins: ' a , b,,c '\n"), 0);
	l = config_list(f->c, "origins");
	assert_string_equal(l[0], "a");
	assert_string_equal(l[1], "b");
	assert_string_equal(l[2], "c");
	assert_null(l[3]);
	assert_int_equal(yaml(f, "origins: []\n"), 0);
	assert_null(config_list(f->c, "origins")[0]);
	/* Empty stream: nothing set. */
	assert_int_equal(yaml(f, "# nothing\n"), 0);
	assert_int_equal(yaml(f, ""), 0);
}

static void
test_yaml_errors(void **state)
{
	struct fixture *f = *state;
	const char *path;

	assert_int_equal(yaml(f, "lisen-port: 1\n"), MOAT_ERR_INVAL);
	assert_string_equal(f->err,
	    "unknown key \"lisen-port\" in config data (line 1)");

	path = write_file(f, "x.yaml", "listen-port: abc\n", 17);
	assert_int_equal(config_load_yaml_file(f->c, path, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
	assert_non_null(strstr(f->err, "x.yaml: key \"listen-port\": \"abc\" "
	    "is not an integer"));
	assert_true(strncmp(f->err, "config file /tmp/", 17) == 0);

	assert_int_equal(yaml(f, "listen-port: 1\nlisten-port: 2\n"),
	    MOAT_ERR_INVAL);
	assert_non_null(strstr(f->err, "key \"listen-port\" is given twice"));

	assert_int_equal(yaml(f, "listen-port: 70000\n"), MOAT_ERR_INVAL);
	assert_string_equal(f->err, "config data: key \"listen-port\": "
	    "\"70000\" is out of range [1, 65535]");

	assert_int_equal(yaml(f, "- a\n- b\n"), MOAT_ERR_PARSE);
	assert_non_null(strstr(f->err, "must be a mapping"));
	assert_int_equal(yaml(f, "just text\n"), MOAT_ERR_PARSE);
	assert_int_equal(yaml(f, "listen-port:\n  nested: 1\n"), MOAT_ERR_PARSE);
	assert_non_null(strstr(f->err, "key \"listen-port\" must have a single "
	    "value, not a mapping"));
	assert_int_equal(yaml(f, "listen-port: [1, 2]\n"), MOAT_ERR_PARSE);
	assert_int_equal(yaml(f, "origins: [[a]]\n"), MOAT_ERR_PARSE);
	assert_non_null(strstr(f->err, "must be scalars"));
	assert_int_equal(yaml(f, "origins: [{a: b}]\n"), MOAT_ERR_PARSE);
	assert_int_equal(yaml(f, "? [a]\n: b\n"), MOAT_ERR_PARSE);
	assert_int_equal(yaml(f, "a: 1\n---\nb: 2\n"), MOAT_ERR_INVAL);
	assert_int_equal(yaml(f, "verbose: true\n---\nverbose: true\n"),
	    MOAT_ERR_PARSE);
	assert_non_null(strstr(f->err, "one YAML document"));
	assert_int_equal(yaml(f, "verbose: \"true\n"), MOAT_ERR_PARSE);
	assert_non_null(strstr(f->err, "invalid YAML at line"));
	/* Nothing of the failed loads was applied. */
	assert_int_equal(config_int(f->c, "listen-port"), 8443);
	assert_false(config_bool(f->c, "verbose"));
}

static void
test_yaml_atomic_on_error(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(yaml(f, "listen-port: 1000\nverbose: maybe\n"),
	    MOAT_ERR_INVAL);
	assert_non_null(strstr(f->err, "\"maybe\" is not a boolean"));
	assert_int_equal(config_int(f->c, "listen-port"), 8443);
	assert_string_equal(config_source(f->c, "listen-port"), "default");
}

static void
test_yaml_refuses_anchors_aliases_tags(void **state)
{
	struct fixture *f = *state;
	const char *laughs =
	    "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
	    "origins: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n";

	assert_int_equal(yaml(f, laughs), MOAT_ERR_INVAL);	/* unknown a */
	assert_int_equal(yaml(f, "origins: &x [a]\n"), MOAT_ERR_PARSE);
	assert_non_null(strstr(f->err, "anchors, aliases and tags"));
	assert_int_equal(yaml(f, "metrics-listen: &x a\ntoken: *x\n"),
	    MOAT_ERR_PARSE);
	assert_int_equal(yaml(f, "listen-port: !!int 5\n"), MOAT_ERR_PARSE);
	assert_int_equal(yaml(f, "!!map {verbose: true}\n"), MOAT_ERR_PARSE);
	assert_int_equal(yaml(f, "%TAG ! tag:x,2000:\n---\nverbose: !a b\n"),
	    MOAT_ERR_PARSE);
	assert_int_equal(yaml(f, "origins: [a, *x]\n"), MOAT_ERR_PARSE);
}

static void
test_yaml_size_cap_and_nul(void **state)
{
	struct fixture *f = *state;
	size_t big = 1024 * 1024 + 1;
	char *data = malloc(big);
	const char *path;

	assert_non_null(data);
	memset(data, '#', big);
	assert_int_equal(config_load_yaml_buf(f->c, data, big, f->err,
	    sizeof(f->err)), MOAT_ERR_TOOBIG);
	path = write_file(f, "big.yaml", data, big);
	assert_int_equal(config_load_yaml_file(f->c, path, f->err,
	    sizeof(f->err)), MOAT_ERR_TOOBIG);
	assert_non_null(strstr(f->err, "larger than"));
	free(data);
	assert_int_equal(yaml(f, "metrics-listen: \"a\\0b\"\n"), MOAT_ERR_INVAL);
	assert_non_null(strstr(f->err, "NUL"));
	assert_int_equal(config_load_yaml_file(f->c, "/nonexistent/x.yaml",
	    f->err, sizeof(f->err)), MOAT_ERR_NOTFOUND);
	assert_int_equal(config_load_yaml_file(f->c, f->dir, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
}

static void
test_secret_never_echoed(void **state)
{
	static const struct config_key sk[] = {
		{ "db-password", CFG_INT, NULL, "", 0, 0, true },
	};
	struct fixture *f = *state;
	struct config *c;
	char *envp[] = { "MOAT_DB_PASSWORD=hunter2", NULL };
	char *argv[] = { "--db-password", "hunter2" };
	int pos;

	assert_int_equal(config_new(&c, sk, 1), 0);
	assert_int_equal(config_load_yaml_buf(c, "db-password: hunter2\n", 21,
	    f->err, sizeof(f->err)), MOAT_ERR_INVAL);
	assert_null(strstr(f->err, "hunter2"));
	assert_non_null(strstr(f->err, "db-password"));
	assert_int_equal(config_load_env(c, envp, f->err, sizeof(f->err)),
	    MOAT_ERR_INVAL);
	assert_null(strstr(f->err, "hunter2"));
	assert_int_equal(config_load_flags(c, 2, argv, &pos, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
	assert_null(strstr(f->err, "hunter2"));
	config_free(c);
}

static void
test_values(void **state)
{
	static const struct config_key vk[] = {
		{ "d", CFG_DURATION, NULL, "", 0, 0, false },
		{ "s", CFG_SIZE, NULL, "", 0, 0, false },
		{ "i", CFG_INT, NULL, "", 0, 0, false },
		{ "b", CFG_BOOL, NULL, "", 0, 0, false },
	};
	static const struct { const char *key, *val; long long want; } ok[] = {
		{ "d", "500ms", 500 }, { "d", "30s", 30000 }, { "d", "5m", 300000 },
		{ "d", "2h", 7200000 }, { "d", "7", 7000 }, { "d", "0", 0 },
		{ "s", "512", 512 }, { "s", "64k", 65536 }, { "s", "64K", 65536 },
		{ "s", "10M", 10485760 }, { "s", "1G", 1073741824 },
		{ "i", "-5", -5 }, { "i", "+5", 5 },
		{ "i", "9223372036854775807", 9223372036854775807LL },
	};
	static const struct { const char *key, *val; } bad[] = {
		{ "d", "" }, { "d", "1.5s" }, { "d", "-1s" }, { "d", "5 s" },
		{ "d", "1d" }, { "d", "s" }, { "d", "99999999999999999h" },
		{ "s", "1KB" }, { "s", "-1" }, { "s", "1P" },
		{ "s", "99999999999999G" }, { "i", "" }, { "i", " 5" },
		{ "i", "5 " }, { "i", "0x10" }, { "i", "9223372036854775808" },
		{ "i", "1e3" }, { "b", "" }, { "b", "2" }, { "b", "truee" },
	};
	static const char *const truths[] = { "true", "YES", "on", "1" };
	static const char *const lies[] = { "false", "No", "OFF", "0" };
	struct fixture *f = *state;
	struct config *c;
	char text[128];

	assert_int_equal(config_new(&c, vk, 4), 0);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(text, sizeof(text), "%s: '%s'\n", ok[i].key, ok[i].val);
		assert_int_equal(config_load_yaml_buf(c, text, strlen(text),
		    f->err, sizeof(f->err)), 0);
		assert_int_equal(config_int(c, ok[i].key), ok[i].want);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "%s: '%s'\n", bad[i].key,
		    bad[i].val);
		if (config_load_yaml_buf(c, text, strlen(text), f->err,
		    sizeof(f->err)) != MOAT_ERR_INVAL)
			fail_msg("accepted %s=%s", bad[i].key, bad[i].val);
		assert_non_null(strstr(f->err, "is not"));
	}
	for (size_t i = 0; i < 4; i++) {
		snprintf(text, sizeof(text), "b: %s\n", truths[i]);
		assert_int_equal(config_load_yaml_buf(c, text, strlen(text),
		    f->err, sizeof(f->err)), 0);
		assert_true(config_bool(c, "b"));
		snprintf(text, sizeof(text), "b: %s\n", lies[i]);
		assert_int_equal(config_load_yaml_buf(c, text, strlen(text),
		    f->err, sizeof(f->err)), 0);
		assert_false(config_bool(c, "b"));
	}
	config_free(c);
}

static void
test_bounds_duration_size(void **state)
{
	static const struct config_key bk[] = {
		{ "d", CFG_DURATION, NULL, "", 100, 60000, false },
		{ "s", CFG_SIZE, NULL, "", 1024, 1 << 20, false },
	};
	struct fixture *f = *state;
	struct config *c;

	assert_int_equal(config_new(&c, bk, 2), 0);
	assert_int_equal(config_load_yaml_buf(c, "d: 2m\n", 6, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
	assert_non_null(strstr(f->err, "out of range [100, 60000] ms"));
	assert_int_equal(config_load_yaml_buf(c, "d: 1m\n", 6, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(config_load_yaml_buf(c, "s: 2M\n", 6, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
	assert_int_equal(config_load_yaml_buf(c, "s: 1M\n", 6, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(config_int(c, "s"), 1 << 20);
	config_free(c);
}

static void
test_env(void **state)
{
	struct fixture *f = *state;
	char *envp[] = {
		"PATH=/bin", "MOAT_LISTEN_PORT=7000", "MOAT_UNKNOWN_THING=1",
		"MOAT_ORIGINS=a,b", "MOAT_VERBOSE=on", "MOAT_=x", NULL
	};
	char *bad[] = { "MOAT_TIMEOUT=soon", NULL };

	assert_int_equal(config_load_env(f->c, envp, f->err, sizeof(f->err)), 0);
	assert_int_equal(config_int(f->c, "listen-port"), 7000);
	assert_string_equal(config_source(f->c, "listen-port"), "env");
	assert_true(config_bool(f->c, "verbose"));
	assert_string_equal(config_list(f->c, "origins")[1], "b");
	assert_int_equal(config_load_env(f->c, bad, f->err, sizeof(f->err)),
	    MOAT_ERR_INVAL);
	assert_string_equal(f->err, "environment variable MOAT_TIMEOUT: key "
	    "\"timeout\": \"soon\" is not a duration (like 500ms, 30s, 5m, 2h)");
}

static void
test_flags(void **state)
{
	struct fixture *f = *state;
	char *argv[] = {
		"--listen-port", "1234", "--metrics-listen=127.0.0.1:9",
		"--verbose", "--timeout=2m", "--origins", "x,y", "run", "--late"
	};
	char *argv2[] = { "--no-verbose", "--", "--listen-port" };
	int pos = -1;

	assert_int_equal(config_load_flags(f->c, 9, argv, &pos, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(pos, 7);
	assert_int_equal(config_int(f->c, "listen-port"), 1234);
	assert_string_equal(config_str(f->c, "metrics-listen"), "127.0.0.1:9");
	assert_true(config_bool(f->c, "verbose"));
	assert_int_equal(config_int(f->c, "timeout"), 120000);
	assert_string_equal(config_source(f->c, "timeout"), "flag");
	assert_int_equal(config_load_flags(f->c, 3, argv2, &pos, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(pos, 2);
	assert_false(config_bool(f->c, "verbose"));
	assert_int_equal(config_load_flags(f->c, 0, argv2, &pos, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(pos, 0);
}

static void
test_flag_errors(void **state)
{
	struct fixture *f = *state;
	char *a1[] = { "--lisen", "1" };
	char *a2[] = { "--metrics-listen" };
	char *a3[] = { "--listen-port", "--verbose" };
	char *a4[] = { "--verbose=maybe" };
	char *a5[] = { "--no-listen-port" };
	char *a6[] = { "--timeout", "1", "--listen-port", "x" };
	int pos;

	assert_int_equal(config_load_flags(f->c, 2, a1, &pos, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
	assert_string_equal(f->err, "unknown flag --lisen");
	assert_int_equal(config_load_flags(f->c, 1, a2, &pos, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
	assert_string_equal(f->err, "--metrics-listen needs a value");
	assert_int_equal(config_load_flags(f->c, 2, a3, &pos, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
	assert_string_equal(f->err, "--listen-port needs a value");
	assert_int_equal(config_load_flags(f->c, 1, a4, &pos, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
	assert_non_null(strstr(f->err, "flag --verbose: key \"verbose\": "
	    "\"maybe\" is not a boolean"));
	assert_int_equal(config_load_flags(f->c, 1, a5, &pos, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
	assert_string_equal(f->err, "unknown flag --no-listen-port");
	/* A failed parse applies nothing. */
	assert_int_equal(config_load_flags(f->c, 4, a6, &pos, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
	assert_int_equal(config_int(f->c, "timeout"), 30000);
}

static void
test_precedence_any_order(void **state)
{
	struct fixture *f = *state;
	char *envp[] = { "MOAT_LISTEN_PORT=2000", "MOAT_WORKERS=4", NULL };
	char *argv[] = { "--listen-port=3000" };
	int pos;

	/* Flags, then env, then file: the flag still wins. */
	assert_int_equal(config_load_flags(f->c, 1, argv, &pos, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(config_load_env(f->c, envp, f->err, sizeof(f->err)), 0);
	assert_int_equal(yaml(f, "listen-port: 1000\nworkers: 2\nverbose: on\n"),
	    0);
	assert_int_equal(config_int(f->c, "listen-port"), 3000);
	assert_string_equal(config_source(f->c, "listen-port"), "flag");
	assert_int_equal(config_int(f->c, "workers"), 4);
	assert_string_equal(config_source(f->c, "workers"), "env");
	assert_true(config_bool(f->c, "verbose"));
	assert_string_equal(config_source(f->c, "verbose"), "file");
}

static void
test_load_all(void **state)
{
	struct fixture *f = *state;
	const char *text = "listen-port: 1000\nworkers: 2\ntimeout: 1h\n";
	char path[128], envcfg[160], cflag[160];
	char *envp[3];
	char *argv[4];
	int pos = -1;

	snprintf(path, sizeof(path), "%s", write_file(f, "m.yaml", text,
	    strlen(text)));
	snprintf(envcfg, sizeof(envcfg), "MOAT_CONFIG=%s", path);
	envp[0] = envcfg;
	envp[1] = "MOAT_WORKERS=8";
	envp[2] = NULL;
	argv[0] = "--listen-port";
	argv[1] = "3000";
	argv[2] = "serve";
	argv[3] = NULL;
	assert_int_equal(config_load_all(f->c, 3, argv, envp, &pos, f->err,
	    sizeof(f->err)), 0);
	assert_int_equal(pos, 2);
	assert_string_equal(config_file(f->c), path);
	assert_int_equal(config_int(f->c, "listen-port"), 3000);
	assert_int_equal(config_int(f->c, "workers"), 8);
	assert_int_equal(config_int(f->c, "timeout"), 3600000);
	assert_string_equal(config_source(f->c, "timeout"), "file");

	/* --config=FILE on the command line wins over MOAT_CONFIG. */
	snprintf(cflag, sizeof(cflag), "--config=%s/nope.yaml", f->dir);
	argv[0] = cflag;
	assert_int_equal(config_load_all(f->c, 1, argv, envp, &pos, f->err,
	    sizeof(f->err)), MOAT_ERR_NOTFOUND);
	assert_non_null(strstr(f->err, "nope.yaml"));
	argv[0] = "--config";
	assert_int_equal(config_load_all(f->c, 1, argv, envp, &pos, f->err,
	    sizeof(f->err)), MOAT_ERR_INVAL);
	assert_string_equal(f->err, "--config needs a value");
}

static void
test_help_and_markdown(void **state)
{
	struct fixture *f = *state;
	char *text = NULL;
	size_t len = 0;
	FILE *fp;
	char *envp[] = { "MOAT_TOKEN=hunter2", NULL };

	assert_int_equal(config_load_env(f->c, envp, f->err, sizeof(f->err)), 0);
	assert_non_null(fp = open_memstream(&text, &len));
	config_print_help(f->c, fp);
	fclose(fp);
	assert_non_null(strstr(text, "--listen-port N"));
	assert_non_null(strstr(text, "--[no-]verbose"));
	assert_non_null(strstr(text, "Port to listen on."));
	assert_null(strstr(text, "hunter2"));
	/* Aligned: the help column starts at the same offset on every line. */
	{
		const char *a = strstr(text, "Port to listen on.");
		const char *b = strstr(text, "Idle timeout.");
		const char *la = a, *lb = b;
		while (la > text && la[-1] != '\n')
			la--;
		while (lb > text && lb[-1] != '\n')
			lb--;
		assert_int_equal(a - la, b - lb);
	}
	free(text);
	text = NULL;
	assert_non_null(fp = open_memstream(&text, &len));
	config_print_markdown(keys, NKEYS, fp);
	fclose(fp);
	assert_true(strncmp(text, "| key | flag | environment | default | "
	    "meaning |\n|---|", 46) == 0);
	assert_non_null(strstr(text, "| `listen-port` | `--listen-port` | "
	    "`MOAT_LISTEN_PORT` | `8443` | Port to listen on. (1 to 65535) |"));
	assert_non_null(strstr(text, "Worker threads \\| pool."));
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_yaml_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_yaml_flow_list_and_scalar_list,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_yaml_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_yaml_atomic_on_error, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_yaml_refuses_anchors_aliases_tags,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_yaml_size_cap_and_nul, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_secret_never_echoed, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounds_duration_size, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_env, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flag_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_precedence_any_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_load_all, setup, teardown),
		cmocka_unit_test_setup_teardown(test_help_and_markdown, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
