/*
 * test_cli_sshconfig.c - unit tests for what `moat config-ssh` and `moat
 * ssh` write (src/cli/cli_sshconfig.c) and how they read their arguments
 * (src/cli/cmd_ssh.c):
 *
 *  - the managed block editor: a missing file and an empty file get the
 *    block; an existing block is replaced in place; the text before and
 *    after it is kept byte for byte (comments, Include lines, other
 *    hosts, odd spacing); a new block goes before the first Host/Match
 *    line (so "Host *" defaults come after it), or at the end; CRLF files
 *    get CRLF lines; a last line without newline; running twice gives the
 *    same text (idempotence), and removing the block gives back the
 *    original; unbalanced or repeated markers are errors;
 *  - the files: created with 0700/0600, written atomically (no temporary
 *    file left), not rewritten when nothing changes (same inode and
 *    mtime), the old mode kept; a symbolic link, a group-writable file,
 *    another user's file and a directory are refused with one line naming
 *    them and left unchanged; an oversized file is refused;
 *  - known_hosts: "[HOST]:PORT KEY" lines replaced for one gateway, other
 *    gateways' lines kept, port 22 written as plain HOST;
 *  - rendering: Host entries with HostName, Port, User, the quoted
 *    known_hosts path ('%' doubled), strict checking; names from the
 *    server checked (no newline or option injection);
 *  - arguments: login names (NAME, OWNER.NAME, own name as OWNER),
 *    LOCAL:REMOTE forwards, "--" and the remote command, -t, --dry-run,
 *    bad workspace names and ports refused; the ssh argv in full; the
 *    host of a wildcard gateway address taken from the API URL.
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
#include <unistd.h>

#include <cmocka.h>

#include "buf.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_sshconfig.h"

#define B CLI_SSHCFG_BEGIN "\n"
#define E CLI_SSHCFG_END "\n"

/* ---- the editor ---- */

/* edit(text, body) as a new string; fails the test on error. */
static char *
edit(const char *text, const char *body)
{
	char *out = NULL, err[256] = "";
	size_t len = 0;
	int r = cli_sshcfg_edit(text, text != NULL ? strlen(text) : 0, body,
	    &out, &len, err, sizeof(err));

	if (r != 0)
		fail_msg("edit: %d %s", r, err);
	assert_int_equal(strlen(out), len);
	return out;
}

static void
expect_edit(const char *text, const char *body, const char *want)
{
	char *out = edit(text, body);

	assert_string_equal(out, want);
	free(out);
}

static void
test_missing_and_empty(void **state)
{
	(void)state;
	expect_edit(NULL, "Host moat-a\n", B "Host moat-a\n" E);
	expect_edit("", "Host moat-a\n", B "Host moat-a\n" E);
	expect_edit("", "", B E);
}

static void
test_before_first_host(void **state)
{
	static const char user[] =
	    "# my settings\n"
	    "Include ~/.ssh/config.d/*\n"
	    "ServerAliveInterval 30\n"
	    "\n"
	    "Host *\n"
	    "    User bob\n"
	    "Host work\n"
	    "\tHostName 10.0.0.1\n";
	static const char want[] =
	    "# my settings\n"
	    "Include ~/.ssh/config.d/*\n"
	    "ServerAliveInterval 30\n"
	    "\n"
	    B "Host moat-a\n" E
	    "Host *\n"
	    "    User bob\n"
	    "Host work\n"
	    "\tHostName 10.0.0.1\n";

	(void)state;
	expect_edit(user, "Host moat-a\n", want);
	/* Match counts too, case and '=' as OpenSSH takes them. */
	expect_edit("X 1\n  match=all\n", "H\n", "X 1\n" B "H\n" E
	    "  match=all\n");
	expect_edit("HOST x\n", "H\n", B "H\n" E "HOST x\n");
	/* "Hostname" at the top is an option, not a section. */
	expect_edit("Hostname x\n", "H\n", "Hostname x\n" B "H\n" E);
}

static void
test_replaced_in_place_bytes_kept(void **state)
{
	static const char before[] = "Include  \"/etc/ssh/x y\"\n"
	    "Host  a\r\n\n\n   # odd   spacing\t\n";
	static const char after[] = "Host b\n  Port 2\n# trailing comment";
	char text[1024], want[1024];

	(void)state;
	snprintf(text, sizeof(text), "%s%s%s%s%s", before, B,
	    "Host moat-old\n  User old\n", E, after);
	snprintf(want, sizeof(want), "%s%s%s%s%s", before, B,
	    "Host moat-new\n", E, after);
	expect_edit(text, "Host moat-new\n", want);
	/* Markers with leading blanks and trailing junk are recognized. */
	snprintf(text, sizeof(text), "%s  %s\nold\n\t%s (hand-edited)\n%s",
	    before, CLI_SSHCFG_BEGIN, CLI_SSHCFG_END, after);
	expect_edit(text, "Host moat-new\n", want);
}

static void
test_end_and_no_trailing_newline(void **state)
{
	(void)state;
	/* No Host line: the end, after a newline added to the last line. */
	expect_edit("User x", "H\n", "User x\n" B "H\n" E);
	expect_edit("User x\n", "H\n", "User x\n" B "H\n" E);
	/* A last line ending in a lone CR: the next run changes nothing. */
	{
		char *once = edit("User x\r", "H\n");
		char *twice = edit(once, "H\n");

		assert_string_equal(once, "User x\r\n" B "H\n" E);
		assert_string_equal(twice, once);
		free(once);
		free(twice);
	}
	/* A block that is the file's last line without a newline. */
	expect_edit("a\n" B "old\n" CLI_SSHCFG_END, "new\n",
	    "a\n" B "new\n" E);
}

static void
test_crlf(void **state)
{
	(void)state;
	expect_edit("User x\r\nHost y\r\n", "Host moat-a\n  Port 1\n",
	    "User x\r\n" CLI_SSHCFG_BEGIN "\r\nHost moat-a\r\n  Port 1\r\n"
	    CLI_SSHCFG_END "\r\nHost y\r\n");
	/* An existing CRLF block is found and replaced. */
	expect_edit("User x\r\n" CLI_SSHCFG_BEGIN "\r\nold\r\n" CLI_SSHCFG_END
	    "\r\nHost y\r\n", "new\n", "User x\r\n" CLI_SSHCFG_BEGIN
	    "\r\nnew\r\n" CLI_SSHCFG_END "\r\nHost y\r\n");
}

static void
test_idempotent_and_removable(void **state)
{
	static const char *const originals[] = {
		"", "User x\n", "Include a\nHost *\n  User b\n",
		"User x\r\nHost y\r\n", "# only a comment\n",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(originals) / sizeof(originals[0]);
	    i++) {
		char *once = edit(originals[i], "Host moat-a\n  Port 2\n");
		char *twice = edit(once, "Host moat-a\n  Port 2\n");
		char *gone = edit(twice, NULL);
		struct buf b;

		assert_string_equal(once, twice);
		assert_string_equal(gone, originals[i]);
		buf_init(&b, 4096);
		assert_int_equal(cli_sshcfg_block(once, strlen(once), &b), 1);
		assert_string_equal(buf_cstr(&b), "Host moat-a\n  Port 2\n");
		assert_int_equal(cli_sshcfg_block(gone, strlen(gone), &b), 0);
		buf_free(&b);
		free(once);
		free(twice);
		free(gone);
	}
	/* Removing from a file without a block changes nothing. */
	expect_edit("Host y\n", NULL, "Host y\n");
}

static void
test_bad_markers(void **state)
{
	static const char *const bad[] = {
		"a\n" B "Host x\n",			/* no END */
		"a\n" E "Host x\n",			/* END first */
		B E B E,				/* two blocks */
		B B E,					/* nested */
	};
	char *out, err[256];
	size_t len;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		out = (char *)1;
		assert_int_equal(cli_sshcfg_edit(bad[i], strlen(bad[i]), "x\n",
		    &out, &len, err, sizeof(err)), MOAT_ERR_CORRUPT);
		assert_null(out);
		assert_non_null(strstr(err, "line "));
	}
}

/* ---- files ---- */

struct fx {
	char dir[64];
	char path[128];		/* DIR/ssh/config (ssh/ not made yet) */
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_cli_sshconfig.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof(f->path), "%s/ssh/config", f->dir);
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
	static char text[65536];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, text, sizeof(text) - 1);
	assert_true(n >= 0);
	text[n] = '\0';
	close(fd);
	return text;
}

/* Entries in dir other than "." and "..". */
static int
count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

static void
test_file_created_then_untouched(void **state)
{
	struct fx *f = *state;
	struct stat st1, st2;
	char sshdir[128], err[512] = "";
	bool changed = false;

	assert_int_equal(cli_sshcfg_update(f->path, "Host moat-a\n", &changed,
	    err, sizeof(err)), 0);
	assert_true(changed);
	snprintf(sshdir, sizeof(sshdir), "%s/ssh", f->dir);
	assert_int_equal(stat(sshdir, &st1), 0);
	assert_int_equal(st1.st_mode & 0777, 0700);
	assert_int_equal(stat(f->path, &st1), 0);
	assert_int_equal(st1.st_mode & 0777, 0600);
	assert_string_equal(read_all(f->path), B "Host moat-a\n" E);
	assert_int_equal(count_entries(sshdir), 1);	/* no temp file */
	/* Same body again: the file is not rewritten at all. */
	usleep(20000);
	assert_int_equal(cli_sshcfg_update(f->path, "Host moat-a\n", &changed,
	    err, sizeof(err)), 0);
	assert_false(changed);
	assert_int_equal(stat(f->path, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino);
	assert_int_equal(st1.st_mtim.tv_nsec, st2.st_mtim.tv_nsec);
	assert_int_equal(st1.st_mtim.tv_sec, st2.st_mtim.tv_sec);
	/* A change replaces the file (new inode: rename), mode kept. */
	assert_int_equal(chmod(f->path, 0644), 0);
	assert_int_equal(cli_sshcfg_update(f->path, "Host moat-b\n", &changed,
	    err, sizeof(err)), 0);
	assert_true(changed);
	assert_int_equal(stat(f->path, &st2), 0);
	assert_true(st1.st_ino != st2.st_ino);
	assert_int_equal(st2.st_mode & 0777, 0644);
	assert_string_equal(read_all(f->path), B "Host moat-b\n" E);
	assert_int_equal(count_entries(sshdir), 1);
}

static void
test_existing_file_kept_around_block(void **state)
{
	struct fx *f = *state;
	static const char user[] = "Include config.d/*\r\nHost *\r\n  User b";
	char err[512] = "";
	bool changed;

	write_file(f->path, user, 0600);
	assert_int_equal(cli_sshcfg_update(f->path, "Host moat-a\n", &changed,
	    err, sizeof(err)), 0);
	assert_string_equal(read_all(f->path), "Include config.d/*\r\n"
	    CLI_SSHCFG_BEGIN "\r\nHost moat-a\r\n" CLI_SSHCFG_END "\r\n"
	    "Host *\r\n  User b");
	assert_int_equal(cli_sshcfg_update(f->path, NULL, &changed, err,
	    sizeof(err)), 0);
	assert_true(changed);
	assert_string_equal(read_all(f->path), user);
}

/* update must fail with code, an error naming the file and containing
 * needle, and leave the file as it was. */
static void
expect_refused(const char *path, int code, const char *needle,
    const char *before)
{
	char err[512] = "";
	bool changed = true;

	assert_int_equal(cli_sshcfg_update(path, "Host moat-a\n", &changed,
	    err, sizeof(err)), code);
	assert_false(changed);
	assert_non_null(strstr(err, path));
	if (strstr(err, needle) == NULL)
		fail_msg("'%s' not in '%s'", needle, err);
	if (before != NULL)
		assert_string_equal(read_all(path), before);
}

static void
test_refused_files(void **state)
{
	struct fx *f = *state;
	char real[160], dir[160];

	/* group-writable: OpenSSH would refuse it too */
	write_file(f->path, "Host x\n", 0620);
	expect_refused(f->path, MOAT_ERR_PERM, "chmod go-w", "Host x\n");
	write_file(f->path, "Host x\n", 0602);
	expect_refused(f->path, MOAT_ERR_PERM, "writable", "Host x\n");
	/* group-readable is fine (OpenSSH accepts it) */
	write_file(f->path, "Host x\n", 0644);
	{
		char err[512] = "";
		bool changed = false;

		assert_int_equal(cli_sshcfg_update(f->path, "a\n", &changed,
		    err, sizeof(err)), 0);
		assert_true(changed);
		assert_string_equal(read_all(f->path), B "a\n" E "Host x\n");
	}
	/* a symbolic link is not written through */
	snprintf(real, sizeof(real), "%s/real-config", f->dir);
	write_file(real, "Host r\n", 0600);
	unlink(f->path);
	assert_int_equal(symlink(real, f->path), 0);
	expect_refused(f->path, MOAT_ERR_PERM, "symbolic link", NULL);
	assert_string_equal(read_all(real), "Host r\n");
	{
		struct stat st;

		assert_int_equal(lstat(f->path, &st), 0);
		assert_true(S_ISLNK(st.st_mode));
	}
	/* a corrupt block: left alone */
	unlink(f->path);
	write_file(f->path, "a\n" B "x\n", 0600);
	expect_refused(f->path, MOAT_ERR_CORRUPT, "without an END", "a\n" B
	    "x\n");
	/* a directory */
	unlink(f->path);
	assert_int_equal(mkdir(f->path, 0700), 0);
	expect_refused(f->path, MOAT_ERR_INVAL, "not a regular file", NULL);
	rmdir(f->path);
	/* another user's file (as root, tests can make one) */
	if (getuid() == 0) {
		write_file(f->path, "Host x\n", 0600);
		assert_int_equal(chown(f->path, 4242, 4242), 0);
		expect_refused(f->path, MOAT_ERR_PERM, "another user",
		    "Host x\n");
		unlink(f->path);
	}
	/* too big */
	{
		char *big = malloc(CLI_SSHCFG_MAX + 2);

		assert_non_null(big);
		memset(big, '#', CLI_SSHCFG_MAX + 1);
		big[CLI_SSHCFG_MAX + 1] = '\0';
		write_file(f->path, big, 0600);
		expect_refused(f->path, MOAT_ERR_TOOBIG, "larger", NULL);
		free(big);
	}
	snprintf(dir, sizeof(dir), "%s/ssh", f->dir);
	assert_int_equal(count_entries(dir), 1);
}

/* ---- known_hosts ---- */

static void
test_known_hosts(void **state)
{
	struct fx *f = *state;
	const char *keys[] = { "ssh-ed25519 AAAAC3Nz", "ecdsa-sha2-nistp256 "
	    "AAAAE2Vj" };
	const char *one[] = { "ssh-ed25519 NEWKEY" };
	static const char kh[] = "[h]:1 ssh-ed25519 OLD\n"
	    "[other]:1 ssh-ed25519 KEEP\n[h]:12 ssh-ed25519 KEEP2\n"
	    "[h]:1\tecdsa OLD2";
	char pat[64], err[512] = "", *out;
	size_t len;
	struct stat st;

	assert_int_equal(cli_ssh_hostpat("127.0.0.1", 2222, pat, sizeof(pat)),
	    0);
	assert_string_equal(pat, "[127.0.0.1]:2222");
	assert_int_equal(cli_ssh_hostpat("gw.example", 22, pat, sizeof(pat)),
	    0);
	assert_string_equal(pat, "gw.example");
	assert_int_equal(cli_ssh_hostpat("::1", 2222, pat, sizeof(pat)), 0);
	assert_string_equal(pat, "[::1]:2222");
	assert_int_equal(cli_ssh_hostpat("a-very-long-host", 2222, pat, 8),
	    MOAT_ERR_TOOBIG);

	assert_int_equal(cli_known_hosts_edit(kh, strlen(kh), "[h]:1", one, 1,
	    &out, &len), 0);
	assert_string_equal(out, "[other]:1 ssh-ed25519 KEEP\n"
	    "[h]:12 ssh-ed25519 KEEP2\n[h]:1 ssh-ed25519 NEWKEY\n");
	free(out);

	snprintf(f->path, sizeof(f->path), "%s/moat/known_hosts", f->dir);
	assert_int_equal(cli_known_hosts_update(f->path, "[127.0.0.1]:2222",
	    keys, 2, err, sizeof(err)), 0);
	assert_string_equal(read_all(f->path), "[127.0.0.1]:2222 ssh-ed25519 "
	    "AAAAC3Nz\n[127.0.0.1]:2222 ecdsa-sha2-nistp256 AAAAE2Vj\n");
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Another gateway's lines stay; ours are replaced. */
	assert_int_equal(cli_known_hosts_update(f->path, "[gw]:22", one, 1,
	    err, sizeof(err)), 0);
	assert_int_equal(cli_known_hosts_update(f->path, "[127.0.0.1]:2222",
	    one, 1, err, sizeof(err)), 0);
	assert_string_equal(read_all(f->path), "[gw]:22 ssh-ed25519 NEWKEY\n"
	    "[127.0.0.1]:2222 ssh-ed25519 NEWKEY\n");
	/* A tampered-with file is refused. */
	assert_int_equal(chmod(f->path, 0666), 0);
	assert_int_equal(cli_known_hosts_update(f->path, "[gw]:22", one, 1,
	    err, sizeof(err)), MOAT_ERR_PERM);
}

static void
test_server_values_checked(void **state)
{
	(void)state;
	assert_true(cli_ssh_host_ok("127.0.0.1"));
	assert_true(cli_ssh_host_ok("gw-1.example.com"));
	assert_true(cli_ssh_host_ok("::1"));
	assert_false(cli_ssh_host_ok(""));
	assert_false(cli_ssh_host_ok("-oProxyCommand=x"));
	assert_false(cli_ssh_host_ok("a b"));
	assert_false(cli_ssh_host_ok("a\nHost *"));
	assert_false(cli_ssh_host_ok("a@b"));
	assert_true(cli_ssh_key_ok("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI+/="));
	assert_true(cli_ssh_key_ok("ecdsa-sha2-nistp256 AAAA"));
	assert_false(cli_ssh_key_ok("ssh-ed25519"));
	assert_false(cli_ssh_key_ok("ssh-ed25519 AAAA comment"));
	assert_false(cli_ssh_key_ok("ssh-ed25519 AAAA\n[x]:1 ssh-rsa B"));
	assert_false(cli_ssh_key_ok(" AAAA"));
	assert_false(cli_ssh_key_ok("SSH ED AAAA"));
	assert_true(cli_ssh_label_ok("dev"));
	assert_true(cli_ssh_label_ok("a-1"));
	assert_false(cli_ssh_label_ok("-a"));
	assert_false(cli_ssh_label_ok("a-"));
	assert_false(cli_ssh_label_ok("Dev"));
	assert_false(cli_ssh_label_ok("a.b"));
	assert_false(cli_ssh_label_ok(""));
}

static void
test_quote_and_render(void **state)
{
	char q[128];
	struct buf b;
	const struct cli_sshcfg_host hosts[] = {
		{ "moat-dev", "dev" }, { "moat-api", "api" },
	};
	const struct cli_sshcfg_host evil[] = {
		{ "moat-x\n  ProxyCommand sh", "x" },
	};

	(void)state;
	assert_int_equal(cli_ssh_quote_path("/home/a b/100%/kh", q, sizeof(q)),
	    0);
	assert_string_equal(q, "\"/home/a b/100%%/kh\"");
	assert_int_equal(cli_ssh_quote_path("rel/kh", q, sizeof(q)),
	    MOAT_ERR_INVAL);
	assert_int_equal(cli_ssh_quote_path("/a\"b", q, sizeof(q)),
	    MOAT_ERR_INVAL);
	assert_int_equal(cli_ssh_quote_path("/a${HOME}", q, sizeof(q)),
	    MOAT_ERR_INVAL);
	assert_int_equal(cli_ssh_quote_path("/a\nb", q, sizeof(q)),
	    MOAT_ERR_INVAL);
	assert_int_equal(cli_ssh_quote_path("/abcdef", q, 5), MOAT_ERR_TOOBIG);

	buf_init(&b, 65536);
	assert_int_equal(cli_sshcfg_render("server x\n(y)", "127.0.0.1", 2222,
	    "/h/.config/moat/known_hosts", hosts, 2, &b), 0);
	assert_string_equal(buf_cstr(&b),
	    "# server x?(y)\n"
	    "Host moat-dev\n"
	    "  HostName 127.0.0.1\n"
	    "  Port 2222\n"
	    "  User dev\n"
	    "  UserKnownHostsFile \"/h/.config/moat/known_hosts\"\n"
	    "  GlobalKnownHostsFile /dev/null\n"
	    "  StrictHostKeyChecking yes\n"
	    "  UpdateHostKeys no\n"
	    "Host moat-api\n"
	    "  HostName 127.0.0.1\n"
	    "  Port 2222\n"
	    "  User api\n"
	    "  UserKnownHostsFile \"/h/.config/moat/known_hosts\"\n"
	    "  GlobalKnownHostsFile /dev/null\n"
	    "  StrictHostKeyChecking yes\n"
	    "  UpdateHostKeys no\n");
	buf_reset(&b);
	assert_int_equal(cli_sshcfg_render(NULL, "h", 22, "/kh", NULL, 0, &b),
	    0);
	assert_non_null(strstr(buf_cstr(&b), "no workspaces"));
	assert_int_equal(cli_sshcfg_render(NULL, "h", 22, "/kh", evil, 1, &b),
	    MOAT_ERR_INVAL);
	assert_int_equal(cli_sshcfg_render(NULL, "h\nHost *", 22, "/kh", hosts,
	    1, &b), MOAT_ERR_INVAL);
	assert_int_equal(cli_sshcfg_render(NULL, "h", 0, "/kh", hosts, 1, &b),
	    MOAT_ERR_INVAL);
	buf_free(&b);
}

/* ---- arguments ---- */

static void
noop_usage(FILE *f)
{
	(void)f;
}

static void
test_login_names(void **state)
{
	char out[CLI_SSH_LOGIN_MAX];

	(void)state;
	assert_int_equal(cli_ssh_login("dev", "ann", out, sizeof(out)), 0);
	assert_string_equal(out, "dev");
	assert_int_equal(cli_ssh_login("ann/dev", "ann", out, sizeof(out)), 0);
	assert_string_equal(out, "dev");
	assert_int_equal(cli_ssh_login("bob/dev", "ann", out, sizeof(out)), 0);
	assert_string_equal(out, "bob.dev");
	assert_int_equal(cli_ssh_login("bob/dev", NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "bob.dev");
	assert_int_equal(cli_ssh_login("Dev", "ann", out, sizeof(out)),
	    MOAT_ERR_INVAL);
	assert_int_equal(cli_ssh_login("-oProxyCommand=x", "ann", out,
	    sizeof(out)), MOAT_ERR_INVAL);
	assert_int_equal(cli_ssh_login("a/b/c", "ann", out, sizeof(out)),
	    MOAT_ERR_INVAL);
	assert_int_equal(cli_ssh_login("/dev", "ann", out, sizeof(out)),
	    MOAT_ERR_INVAL);
	assert_int_equal(cli_ssh_login("bob/", "ann", out, sizeof(out)),
	    MOAT_ERR_INVAL);
	assert_int_equal(cli_ssh_login("b.c/dev", "ann", out, sizeof(out)),
	    MOAT_ERR_INVAL);
	assert_int_equal(cli_ssh_login("bob/dev", "ann", out, 5),
	    MOAT_ERR_TOOBIG);
}

static void
test_forward_specs(void **state)
{
	unsigned l = 0, r = 0;

	(void)state;
	assert_int_equal(cli_ssh_forward_spec("8080:80", &l, &r), 0);
	assert_int_equal(l, 8080);
	assert_int_equal(r, 80);
	assert_int_equal(cli_ssh_forward_spec("5432", &l, &r), 0);
	assert_int_equal(l, 5432);
	assert_int_equal(r, 5432);
	assert_int_equal(cli_ssh_forward_spec("65535:1", &l, &r), 0);
	static const char *const bad[] = { "", ":", "0:80", "80:0", "65536:1",
	    "1:65536", "a:b", "8080:", ":80", "1:2:3", "-1:2", " 1:2",
	    "1:2 ", "+1:2", "99999999999999999999:1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (cli_ssh_forward_spec(bad[i], &l, &r) == 0)
			fail_msg("'%s' accepted", bad[i]);
}

static void
test_parse_ssh_args(void **state)
{
	struct cli_ssh_args a;
	char *v1[] = { "ssh", "dev", "--", "echo", "-n", "--", "hi", NULL };
	char *v2[] = { "ssh", "-t", "bob/dev", "--dry-run", NULL };
	char *v3[] = { "ssh", "dev", "extra", NULL };
	char *v4[] = { "ssh", "--", "dev", NULL };
	char *v5[] = { "ssh", "Bad_Name", NULL };
	char *v6[] = { "ssh", NULL };
	char *v7[] = { "ssh", "dev", "--bogus", NULL };

	(void)state;
	assert_int_equal(cli_ssh_parse_args("moat ssh", false, 7, v1, &a,
	    noop_usage), CLI_PARSE_OK);
	assert_string_equal(a.ws, "dev");
	assert_string_equal(a.login, "dev");
	assert_int_equal(a.ncmd, 4);
	assert_string_equal(a.cmd[0], "echo");
	assert_string_equal(a.cmd[1], "-n");
	assert_string_equal(a.cmd[2], "--");
	assert_string_equal(a.cmd[3], "hi");
	assert_false(a.tty);
	assert_false(a.dry_run);
	assert_int_equal(cli_ssh_parse_args("moat ssh", false, 4, v2, &a,
	    noop_usage), CLI_PARSE_OK);
	assert_true(a.tty);
	assert_true(a.dry_run);
	assert_string_equal(a.login, "bob.dev");
	assert_int_equal(a.ncmd, 0);
	/* A command needs "--". */
	assert_int_equal(cli_ssh_parse_args("moat ssh", false, 3, v3, &a,
	    noop_usage), CLI_PARSE_ERR);
	/* "--" before the workspace: no workspace, all command. */
	assert_int_equal(cli_ssh_parse_args("moat ssh", false, 3, v4, &a,
	    noop_usage), CLI_PARSE_ERR);
	assert_int_equal(cli_ssh_parse_args("moat ssh", false, 2, v5, &a,
	    noop_usage), CLI_PARSE_ERR);
	assert_int_equal(cli_ssh_parse_args("moat ssh", false, 1, v6, &a,
	    noop_usage), CLI_PARSE_ERR);
	assert_int_equal(cli_ssh_parse_args("moat ssh", false, 3, v7, &a,
	    noop_usage), CLI_PARSE_ERR);
}

static void
test_parse_forward_args(void **state)
{
	struct cli_ssh_args a;
	char *v1[] = { "port-forward", "dev", "8080:80", "5432", NULL };
	char *v2[] = { "port-forward", "dev", NULL };
	char *v3[] = { "port-forward", "dev", "80:http", NULL };
	char *v4[] = { "port-forward", "dev", "1", "-t", NULL };
	char *v5[] = { "port-forward", "dev", "1", "2", "3", "4", "5", "6",
	    "7", "8", "9", NULL };

	(void)state;
	assert_int_equal(cli_ssh_parse_args("moat port-forward", true, 4, v1,
	    &a, noop_usage), CLI_PARSE_OK);
	assert_int_equal(a.nfwd, 2);
	assert_int_equal(a.local[0], 8080);
	assert_int_equal(a.remote[0], 80);
	assert_int_equal(a.local[1], 5432);
	assert_int_equal(a.remote[1], 5432);
	assert_int_equal(cli_ssh_parse_args("moat port-forward", true, 2, v2,
	    &a, noop_usage), CLI_PARSE_ERR);
	assert_int_equal(cli_ssh_parse_args("moat port-forward", true, 3, v3,
	    &a, noop_usage), CLI_PARSE_ERR);
	assert_int_equal(cli_ssh_parse_args("moat port-forward", true, 4, v4,
	    &a, noop_usage), CLI_PARSE_ERR);
	assert_int_equal(cli_ssh_parse_args("moat port-forward", true, 11, v5,
	    &a, noop_usage), CLI_PARSE_ERR);
}

static void
test_ssh_argv(void **state)
{
	char *cmd[] = { "echo", "hi there" };
	struct cli_ssh_cmd s = { "127.0.0.1", 2222, "/h/.config/moat/kh",
	    "bob.dev", false, 0, { 0 }, { 0 }, cmd, 2 };
	static const char *const want[] = { "ssh", "-p", "2222", "-l",
	    "bob.dev", "-o", "UserKnownHostsFile=\"/h/.config/moat/kh\"", "-o",
	    "GlobalKnownHostsFile=/dev/null", "-o",
	    "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no", "--",
	    "127.0.0.1", "echo", "hi there", NULL };
	static const char *const want_fwd[] = { "ssh", "-p", "2222", "-l",
	    "bob.dev", "-o", "UserKnownHostsFile=\"/h/.config/moat/kh\"", "-o",
	    "GlobalKnownHostsFile=/dev/null", "-o",
	    "StrictHostKeyChecking=yes", "-o", "UpdateHostKeys=no", "-N", "-o",
	    "ExitOnForwardFailure=yes", "-L", "127.0.0.1:8080:127.0.0.1:80",
	    "-L", "127.0.0.1:9:127.0.0.1:9", "--", "127.0.0.1", NULL };
	char **v = NULL;
	size_t i;

	(void)state;
	assert_int_equal(cli_ssh_argv(&s, "ssh", &v), 0);
	for (i = 0; want[i] != NULL; i++) {
		assert_non_null(v[i]);
		assert_string_equal(v[i], want[i]);
	}
	assert_null(v[i]);
	cli_ssh_argv_free(v);

	s.ncmd = 0;
	s.nfwd = 2;
	s.local[0] = 8080;
	s.remote[0] = 80;
	s.local[1] = s.remote[1] = 9;
	assert_int_equal(cli_ssh_argv(&s, "ssh", &v), 0);
	for (i = 0; want_fwd[i] != NULL; i++) {
		assert_non_null(v[i]);
		assert_string_equal(v[i], want_fwd[i]);
	}
	assert_null(v[i]);
	cli_ssh_argv_free(v);

	s.nfwd = 0;
	s.tty = true;
	assert_int_equal(cli_ssh_argv(&s, "/usr/bin/ssh", &v), 0);
	assert_string_equal(v[0], "/usr/bin/ssh");
	assert_string_equal(v[13], "-t");
	cli_ssh_argv_free(v);

	s.host = "-oProxyCommand=sh";
	assert_int_equal(cli_ssh_argv(&s, "ssh", &v), MOAT_ERR_INVAL);
	s.host = "h";
	s.login = "-x";
	assert_int_equal(cli_ssh_argv(&s, "ssh", &v), MOAT_ERR_INVAL);
	s.login = "a";
	s.known_hosts = "relative";
	assert_int_equal(cli_ssh_argv(&s, "ssh", &v), MOAT_ERR_INVAL);
	s.known_hosts = "/kh";
	s.port = 70000;
	assert_int_equal(cli_ssh_argv(&s, "ssh", &v), MOAT_ERR_INVAL);
	cli_ssh_argv_free(NULL);
}

static void
test_effective_host(void **state)
{
	char h[CLI_SSH_HOST_MAX];

	(void)state;
	assert_int_equal(cli_ssh_effective_host("gw.example", "https://api:8443",
	    h, sizeof(h)), 0);
	assert_string_equal(h, "gw.example");
	assert_int_equal(cli_ssh_effective_host("0.0.0.0",
	    "https://moat.example:8443", h, sizeof(h)), 0);
	assert_string_equal(h, "moat.example");
	assert_int_equal(cli_ssh_effective_host("::", "https://[::1]:8443", h,
	    sizeof(h)), 0);
	assert_string_equal(h, "::1");
	assert_int_equal(cli_ssh_effective_host("", "https://moat.example", h,
	    sizeof(h)), 0);
	assert_string_equal(h, "moat.example");
	assert_int_equal(cli_ssh_effective_host("a b", "https://x", h,
	    sizeof(h)), MOAT_ERR_INVAL);
	assert_int_equal(cli_ssh_effective_host("*", "nonsense", h, sizeof(h)),
	    MOAT_ERR_INVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_and_empty),
		cmocka_unit_test(test_before_first_host),
		cmocka_unit_test(test_replaced_in_place_bytes_kept),
		cmocka_unit_test(test_end_and_no_trailing_newline),
		cmocka_unit_test(test_crlf),
		cmocka_unit_test(test_idempotent_and_removable),
		cmocka_unit_test(test_bad_markers),
		cmocka_unit_test_setup_teardown(test_file_created_then_untouched,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_existing_file_kept_around_block, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_files, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_known_hosts, setup,
		    teardown),
		cmocka_unit_test(test_server_values_checked),
		cmocka_unit_test(test_quote_and_render),
		cmocka_unit_test(test_login_names),
		cmocka_unit_test(test_forward_specs),
		cmocka_unit_test(test_parse_ssh_args),
		cmocka_unit_test(test_parse_forward_args),
		cmocka_unit_test(test_ssh_argv),
		cmocka_unit_test(test_effective_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
