/*
 * test_cli_config.c - unit tests for the moat CLI's config file
 * (src/cli/cli_config.c): a missing file is an empty config; saving writes
 * mode 0600 in a 0700 directory, atomically (no temporary file left); two
 * servers and switching the current one survive a reload; a corrupt file
 * (bad JSON, wrong shape, a dangling "current") gives an error naming the
 * file and is left byte for byte unchanged; a file readable or writable by
 * group or others, a symbolic link and an oversized file are refused (not
 * fixed); the default path follows XDG_CONFIG_HOME, then HOME.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli_config.h"

struct fx {
	char dir[64];
	char path[128];
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_cli_config.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	/* The moat/ level does not exist yet: save must create it. */
	snprintf(f->path, sizeof(f->path), "%s/moat/config.json", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		return -1;
	free(f);
	return 0;
}

static json_t *
server(const char *url, const char *token)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s}", "url", url, "token", token,
	    "token_id", "0123", "username", "ann", "trust", "system");
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	char dir[256];
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	mkdir(dir, 0700);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static char *
read_all(const char *path)
{
	FILE *fp = fopen(path, "r");
	char *s = calloc(1, 4096);
	size_t n;

	assert_non_null(fp);
	n = fread(s, 1, 4095, fp);
	s[n] = '\0';
	fclose(fp);
	return s;
}

static void
test_missing_is_empty(void **state)
{
	struct fx *f = *state;
	struct cli_config *c = NULL;
	char err[512];

	assert_int_equal(cli_config_load(f->path, &c, err, sizeof(err)), 0);
	assert_null(cli_config_current(c));
	assert_null(cli_config_server(c, "x"));
	assert_int_equal(json_object_size(json_object_get(c->root, "servers")),
	    0);
	/* Loading creates nothing. */
	assert_int_equal(access(f->path, F_OK), -1);
	cli_config_free(c);
}

static void
test_save_0600_atomic(void **state)
{
	struct fx *f = *state;
	struct cli_config *c = NULL, *c2 = NULL;
	struct stat st;
	char err[512], dir[128];
	struct dirent *de;
	DIR *d;
	int files = 0;

	umask(022);	/* what a user typically has: must not matter */
	assert_int_equal(cli_config_load(f->path, &c, err, sizeof(err)), 0);
	assert_int_equal(cli_config_put(c, "dev", server("https://a:8443",
	    "moat_secret_a")), 0);
	assert_int_equal(cli_config_use(c, "dev"), 0);
	assert_int_equal(cli_config_save(c, err, sizeof(err)), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	snprintf(dir, sizeof(dir), "%s/moat", f->dir);
	assert_int_equal(stat(dir, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* Saved twice: still one file, no temporary left behind. */
	assert_int_equal(cli_config_save(c, err, sizeof(err)), 0);
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' || strncmp(de->d_name, ".config",
		    7) == 0)
			files++;
	closedir(d);
	assert_int_equal(files, 1);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	assert_int_equal(cli_config_load(f->path, &c2, err, sizeof(err)), 0);
	assert_string_equal(cli_config_current(c2), "dev");
	assert_string_equal(json_string_value(json_object_get(
	    cli_config_server(c2, "dev"), "token")), "moat_secret_a");
	cli_config_free(c);
	cli_config_free(c2);
}

static void
test_two_servers_switch(void **state)
{
	struct fx *f = *state;
	struct cli_config *c = NULL;
	char err[512];

	assert_int_equal(cli_config_load(f->path, &c, err, sizeof(err)), 0);
	assert_int_equal(cli_config_put(c, "one", server("https://one:8443",
	    "moat_1")), 0);
	assert_int_equal(cli_config_put(c, "two", server("https://two:8443",
	    "moat_2")), 0);
	assert_int_equal(cli_config_use(c, "one"), 0);
	assert_int_equal(cli_config_save(c, err, sizeof(err)), 0);
	cli_config_free(c);

	assert_int_equal(cli_config_load(f->path, &c, err, sizeof(err)), 0);
	assert_string_equal(cli_config_current(c), "one");
	assert_non_null(cli_config_server(c, "two"));
	assert_int_equal(cli_config_use(c, "two"), 0);
	assert_int_equal(cli_config_use(c, "three"), MOAT_ERR_NOTFOUND);
	assert_string_equal(cli_config_current(c), "two");
	assert_int_equal(cli_config_save(c, err, sizeof(err)), 0);
	cli_config_free(c);

	assert_int_equal(cli_config_load(f->path, &c, err, sizeof(err)), 0);
	assert_string_equal(cli_config_current(c), "two");
	/* Removing the current server (by the config's own string) leaves
	 * none current and the other one in place. */
	assert_int_equal(cli_config_remove(c, cli_config_current(c)), 0);
	assert_null(cli_config_current(c));
	assert_null(cli_config_server(c, "two"));
	assert_non_null(cli_config_server(c, "one"));
	assert_int_equal(cli_config_remove(c, "two"), MOAT_ERR_NOTFOUND);
	/* Bad nicknames are refused. */
	assert_int_equal(cli_config_put(c, "a b", server("https://x", "t")),
	    MOAT_ERR_INVAL);
	assert_int_equal(cli_config_save(c, err, sizeof(err)), 0);
	cli_config_free(c);

	assert_int_equal(cli_config_load(f->path, &c, err, sizeof(err)), 0);
	assert_null(cli_config_current(c));
	assert_non_null(cli_config_server(c, "one"));
	cli_config_free(c);
}

static void
check_corrupt(struct fx *f, const char *text, const char *why)
{
	struct cli_config *c = NULL;
	char err[512], *after;
	struct stat st;

	write_file(f->path, text, 0600);
	assert_int_equal(cli_config_load(f->path, &c, err, sizeof(err)),
	    MOAT_ERR_CORRUPT);
	assert_null(c);
	assert_non_null(strstr(err, f->path));
	assert_non_null(strstr(err, "corrupt"));
	assert_non_null(strstr(err, "unchanged"));
	if (why != NULL)
		assert_non_null(strstr(err, why));
	after = read_all(f->path);
	assert_string_equal(after, text);
	free(after);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
}

/* Two commands that change the config run one after the other: the second
 * sees the first one's change instead of overwriting it. Readers never
 * wait. */
static void
test_update_lock_serializes(void **state)
{
	struct fx *f = *state;
	struct cli_config *a = NULL, *b = NULL, *r = NULL;
	char err[512], byte;
	int fds[2], status;
	pid_t pid;

	assert_int_equal(cli_config_load_for_update(f->path, false, &a, err,
	    sizeof(err)), 0);
	assert_int_equal(cli_config_put(a, "a", server("https://a:8443",
	    "moat_a")), 0);
	assert_int_equal(cli_config_load_for_update(f->path, false, &b, err,
	    sizeof(err)), MOAT_ERR_AGAIN);
	assert_null(b);
	assert_non_null(strstr(err, "another moat command"));
	assert_int_equal(cli_config_load(f->path, &r, err, sizeof(err)), 0);
	cli_config_free(r);
	assert_int_equal(cli_config_save(a, err, sizeof(err)), 0);
	cli_config_free(a);

	/* Another process holds the lock, then adds "c": waiting for it
	 * gives a config that has both. */
	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct cli_config *c = NULL;
		int ok;

		close(fds[0]);
		ok = cli_config_load_for_update(f->path, false, &c, err,
		    sizeof(err)) == 0;
		(void)!write(fds[1], "x", 1);
		usleep(300 * 1000);
		ok = ok && cli_config_put(c, "c", server("https://c:8443",
		    "moat_c")) == 0 && cli_config_save(c, err, sizeof(err)) == 0;
		cli_config_free(c);
		_exit(ok ? 0 : 1);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &byte, 1), 1);
	close(fds[0]);
	assert_int_equal(cli_config_load_for_update(f->path, true, &b, err,
	    sizeof(err)), 0);
	assert_non_null(cli_config_server(b, "a"));
	assert_non_null(cli_config_server(b, "c"));
	cli_config_free(b);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void
test_corrupt_refused_unchanged(void **state)
{
	struct fx *f = *state;

	check_corrupt(f, "{\"version\": 1, \"servers\": {", "line 1");
	check_corrupt(f, "", NULL);
	check_corrupt(f, "[]", "not a JSON object");
	check_corrupt(f, "{\"version\": 2, \"servers\": {}}", "version");
	check_corrupt(f, "{\"version\": 1, \"servers\": []}", "servers");
	check_corrupt(f, "{\"version\": 1, \"servers\": {}, \"current\": "
	    "\"gone\"}", "current");
	check_corrupt(f, "{\"version\": 1, \"servers\": {\"a\": {\"url\": "
	    "\"http://a\", \"token\": \"t\", \"trust\": \"system\"}}}", "url");
	check_corrupt(f, "{\"version\": 1, \"servers\": {\"a\": {\"url\": "
	    "\"https://a\", \"token\": \"t\", \"trust\": \"pin\"}}}",
	    "trust");
	check_corrupt(f, "{\"version\": 1, \"version\": 1, \"servers\": {}}",
	    NULL);
}

static void
test_mode_and_owner_refused(void **state)
{
	struct fx *f = *state;
	static const mode_t bad[] = { 0640, 0604, 0660, 0606, 0620, 0644 };
	const char *good = "{\"version\": 1, \"servers\": {}}";
	struct cli_config *c = NULL;
	struct stat st;
	char err[512], link[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(f->path, good, bad[i]);
		assert_int_equal(cli_config_load(f->path, &c, err,
		    sizeof(err)), MOAT_ERR_PERM);
		assert_null(c);
		assert_non_null(strstr(err, "chmod 600"));
		assert_non_null(strstr(err, f->path));
		/* Refused, not silently fixed. */
		assert_int_equal(stat(f->path, &st), 0);
		assert_int_equal(st.st_mode & 07777, bad[i]);
	}
	write_file(f->path, good, 0600);
	assert_int_equal(cli_config_load(f->path, &c, err, sizeof(err)), 0);
	cli_config_free(c);
	c = NULL;

	/* Owned by someone else (only root can arrange that here). */
	if (geteuid() == 0) {
		assert_int_equal(chown(f->path, 65534, 65534), 0);
		assert_int_equal(cli_config_load(f->path, &c, err,
		    sizeof(err)), MOAT_ERR_PERM);
		assert_non_null(strstr(err, "another user"));
		assert_int_equal(chown(f->path, 0, 0), 0);
	}

	/* A symbolic link in place of the file. */
	snprintf(link, sizeof(link), "%s/moat/other.json", f->dir);
	assert_int_equal(rename(f->path, link), 0);
	assert_int_equal(symlink(link, f->path), 0);
	assert_int_equal(cli_config_load(f->path, &c, err, sizeof(err)),
	    MOAT_ERR_PERM);
	assert_non_null(strstr(err, "symbolic link"));
	assert_int_equal(unlink(f->path), 0);

	/* A directory in place of the file. */
	assert_int_equal(mkdir(f->path, 0700), 0);
	assert_int_not_equal(cli_config_load(f->path, &c, err, sizeof(err)),
	    0);
	assert_null(c);
	assert_int_equal(rmdir(f->path), 0);
}

static void
test_too_big(void **state)
{
	struct fx *f = *state;
	struct cli_config *c = NULL;
	char err[512];
	int fd;

	write_file(f->path, "{}", 0600);
	fd = open(f->path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, CLI_CONFIG_MAX + 1), 0);
	close(fd);
	assert_int_equal(cli_config_load(f->path, &c, err, sizeof(err)),
	    MOAT_ERR_TOOBIG);
	assert_null(c);
}

static void
test_default_path(void **state)
{
	char p[256], small[8];

	(void)state;
	setenv("XDG_CONFIG_HOME", "/x/conf", 1);
	setenv("HOME", "/home/ann", 1);
	assert_int_equal(cli_config_default_path(p, sizeof(p)), 0);
	assert_string_equal(p, "/x/conf/moat/config.json");
	/* A relative XDG_CONFIG_HOME is ignored (XDG base directory spec). */
	setenv("XDG_CONFIG_HOME", "rel", 1);
	assert_int_equal(cli_config_default_path(p, sizeof(p)), 0);
	assert_string_equal(p, "/home/ann/.config/moat/config.json");
	unsetenv("XDG_CONFIG_HOME");
	assert_int_equal(cli_config_default_path(p, sizeof(p)), 0);
	assert_string_equal(p, "/home/ann/.config/moat/config.json");
	assert_int_equal(cli_config_default_path(small, sizeof(small)),
	    MOAT_ERR_TOOBIG);
	unsetenv("HOME");
	assert_int_equal(cli_config_default_path(p, sizeof(p)),
	    MOAT_ERR_INVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_missing_is_empty, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_save_0600_atomic, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_two_servers_switch, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_refused_unchanged,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mode_and_owner_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_too_big, setup, teardown),
		cmocka_unit_test_setup_teardown(test_update_lock_serializes,
		    setup, teardown),
		cmocka_unit_test(test_default_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
