/*
 * agent_user.c - the workspace user: NAME with uid and gid conf.uid, home
 * /home/NAME, shell /bin/bash, written straight into /etc/passwd,
 * /etc/group and /etc/shadow (no NSS, no useradd, which a minimal image
 * may lack). Idempotent: a restarted container keeps its root layer, so a
 * file is rewritten (atomically, keeping its mode and owner) only when its
 * NAME line differs from ours. The shadow password is '*': no password
 * login, public keys work. sudo=1 writes /etc/sudoers.d/moat (0440,
 * NOPASSWD); sudo=0 removes it. The home directory (mounted by the
 * runtime) is chowned only when it is not already the user's, and then
 * gets /etc/skel's top-level files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"

#define USER_FILE_MAX (4 * 1024 * 1024)
#define SKEL_FILE_MAX (1024 * 1024)

/* Reads a whole file (at most max bytes) into a NUL-terminated buffer. */
static int
user_read(const char *path, size_t max, char **out, size_t *outlen,
    struct stat *st)
{
	char *buf = NULL;
	size_t len = 0;
	int fd, r = MOAT_ERR_IO;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return MOAT_ERR_IO;
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) ||
	    (size_t)st->st_size > max)
		goto out;
	if ((buf = malloc(max + 1)) == NULL)
		goto out;
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);

		if (n < 0)
			goto out;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			goto out;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

/* Writes data to path atomically with mode/uid/gid. */
static int
user_write(const char *path, const char *data, size_t len, mode_t mode,
    uid_t uid, gid_t gid)
{
	char tmp[256];
	size_t done = 0;
	int fd, r = MOAT_ERR_IO;

	snprintf(tmp, sizeof(tmp), "%s.moat-tmp", path);
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0)
		return MOAT_ERR_IO;
	while (done < len) {
		ssize_t n = write(fd, data + done, len - done);

		if (n <= 0)
			goto out;
		done += (size_t)n;
	}
	if (fchown(fd, uid, gid) != 0 || fchmod(fd, mode) != 0 ||
	    fsync(fd) != 0)
		goto out;
	r = 0;
out:
	if (close(fd) != 0)
		r = MOAT_ERR_IO;
	if (r == 0 && rename(tmp, path) != 0)
		r = MOAT_ERR_IO;
	if (r != 0)
		(void)unlink(tmp);
	return r;
}

/*
 * Makes path hold exactly one line for name, equal to line (which ends in
 * '\n'): other lines for name are dropped, ours appended. The file's mode
 * and owner are kept (defaults when it does not exist).
 */
static int
user_ensure_line(const char *path, const char *name, const char *line,
    mode_t defmode, gid_t defgid)
{
	char *old = NULL, *out = NULL, *p;
	size_t oldlen = 0, outlen = 0, nl = strlen(name);
	struct stat st;
	int r = MOAT_ERR_IO, found = 0, extra = 0;

	if (user_read(path, USER_FILE_MAX, &old, &oldlen, &st) != 0) {
		if (errno != ENOENT) {
			agent_log("cannot read %s", path);
			return MOAT_ERR_IO;
		}
		old = strdup("");
		st.st_mode = defmode;
		st.st_uid = 0;
		st.st_gid = defgid;
		if (old == NULL)
			return MOAT_ERR_IO;
	}
	if ((out = malloc(oldlen + strlen(line) + 2)) == NULL)
		goto out;
	for (p = old; *p != '\0';) {
		char *e = strchr(p, '\n');
		size_t ll = e != NULL ? (size_t)(e - p) + 1 : strlen(p);

		if (strncmp(p, name, nl) == 0 && p[nl] == ':') {
			if (ll == strlen(line) && memcmp(p, line, ll) == 0 &&
			    !found)
				found = 1;
			else
				extra = 1;
		} else {
			memcpy(out + outlen, p, ll);
			outlen += ll;
			if (e == NULL)
				out[outlen++] = '\n';
		}
		p += ll;
	}
	if (found && !extra) {
		r = 0;	/* already right */
		goto out;
	}
	memcpy(out + outlen, line, strlen(line));
	outlen += strlen(line);
	r = user_write(path, out, outlen, st.st_mode & 07777, st.st_uid,
	    st.st_gid);
	if (r != 0)
		agent_log("cannot write %s: %s", path, strerror(errno));
	else
		agent_log("%s: entry for %s written", path, name);
out:
	free(old);
	free(out);
	return r;
}

static gid_t
user_group_id(const char *group, gid_t def)
{
	char *buf = NULL, *p;
	size_t len, gl = strlen(group);
	struct stat st;
	gid_t g = def;

	if (user_read("/etc/group", USER_FILE_MAX, &buf, &len, &st) != 0)
		return def;
	for (p = buf; p != NULL && *p != '\0'; p = strchr(p, '\n'),
	    p = p != NULL ? p + 1 : NULL) {
		if (strncmp(p, group, gl) == 0 && p[gl] == ':') {
			char *q = strchr(p + gl + 1, ':');
			char *end;
			unsigned long v;

			if (q == NULL)
				break;
			errno = 0;
			v = strtoul(q + 1, &end, 10);
			if (errno == 0 && end != q + 1 && *end == ':' &&
			    v < 65536)
				g = (gid_t)v;
			break;
		}
	}
	free(buf);
	return g;
}

/* Copies /etc/skel's top-level regular files that home lacks. */
static void
user_skel(int homefd, uid_t uid)
{
	DIR *d = opendir("/etc/skel");
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[300], *data = NULL;
		size_t len = 0, done = 0;
		struct stat st;
		int fd;

		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
		    (de->d_name[1] == '.' && de->d_name[2] == '\0')))
			continue;
		snprintf(path, sizeof(path), "/etc/skel/%s", de->d_name);
		if (user_read(path, SKEL_FILE_MAX, &data, &len, &st) != 0)
			continue;
		fd = openat(homefd, de->d_name, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0644);
		if (fd >= 0) {
			while (done < len) {
				ssize_t n = write(fd, data + done, len - done);

				if (n <= 0)
					break;
				done += (size_t)n;
			}
			if (fchown(fd, uid, uid) != 0)
				agent_log("cannot chown %s in home",
				    de->d_name);
			close(fd);
		}
		free(data);
	}
	closedir(d);
}

static int
user_home(const struct agent *ag)
{
	uid_t uid = ag->conf.uid;
	struct stat st;
	int fd, r = MOAT_ERR_IO;

	fd = open(ag->home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT) {
		(void)mkdir("/home", 0755);
		if (mkdir(ag->home, 0700) != 0) {
			agent_log("cannot create %s: %s", ag->home,
			    strerror(errno));
			return MOAT_ERR_IO;
		}
		fd = open(ag->home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	}
	if (fd < 0 && errno == EACCES) {
		/* Already the user's 0700 home: root without
		 * CAP_DAC_READ_SEARCH only looks at it. */
		fd = open(ag->home, O_PATH | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (fd >= 0 && fstat(fd, &st) == 0 && st.st_uid == uid &&
		    st.st_gid == uid) {
			close(fd);
			return 0;
		}
		if (fd >= 0)
			close(fd);
		fd = -1;
		errno = EACCES;
	}
	if (fd < 0) {
		agent_log("cannot open %s: %s", ag->home, strerror(errno));
		return MOAT_ERR_IO;
	}
	if (fstat(fd, &st) != 0)
		goto out;
	if (st.st_uid != uid || st.st_gid != uid) {
		/* Not the user's before: a new home. Mode first (ours to
		 * change without CAP_FOWNER while root owns it). */
		if (fchmod(fd, 0700) != 0)
			agent_log("cannot chmod %s: %s", ag->home,
			    strerror(errno));
		/* Likewise the skeleton goes in while root still owns it
		 * (no CAP_DAC_OVERRIDE needed). */
		user_skel(fd, uid);
		if (fchown(fd, uid, uid) != 0) {
			agent_log("cannot chown %s: %s", ag->home,
			    strerror(errno));
			goto out;
		}
		agent_log("%s given to uid %u", ag->home, (unsigned)uid);
	}
	r = 0;
out:
	close(fd);
	return r;
}

static int
user_sudoers(const struct agent *ag)
{
	const char *path = "/etc/sudoers.d/moat";
	char line[128];

	if (!ag->conf.sudo) {
		if (unlink(path) == 0)
			agent_log("sudo disabled: %s removed", path);
		else if (errno != ENOENT)
			return MOAT_ERR_IO;
		return 0;
	}
	(void)mkdir("/etc/sudoers.d", 0755);
	snprintf(line, sizeof(line), "%s ALL=(ALL:ALL) NOPASSWD: ALL\n",
	    ag->conf.user);
	if (user_write(path, line, strlen(line), 0440, 0, 0) != 0) {
		agent_log("cannot write %s: %s", path, strerror(errno));
		return MOAT_ERR_IO;
	}
	agent_log("sudo enabled for %s", ag->conf.user);
	return 0;
}

/*
 * An entry of the image's /etc/passwd named like the workspace user with a
 * system uid (root, daemon, sshd, nobody...) is never replaced: that would
 * hand the account's files to the user, or break the image.
 */
static int
user_check_existing(const char *name, uid_t want)
{
	char *buf = NULL, *p;
	size_t len, nl = strlen(name);
	struct stat st;
	int r = 0;

	if (user_read("/etc/passwd", USER_FILE_MAX, &buf, &len, &st) != 0)
		return 0;
	for (p = buf; p != NULL && *p != '\0'; p = strchr(p, '\n'),
	    p = p != NULL ? p + 1 : NULL) {
		char *f, *end;
		unsigned long v;

		if (strncmp(p, name, nl) != 0 || p[nl] != ':')
			continue;
		f = strchr(p + nl + 1, ':');	/* after the password field */
		if (f == NULL)
			continue;
		errno = 0;
		v = strtoul(f + 1, &end, 10);
		if (errno != 0 || end == f + 1 || *end != ':')
			continue;
		if ((uid_t)v != want && (v < 1000 || v >= 60000)) {
			agent_log("user %s exists in the image as system uid "
			    "%lu: refused", name, v);
			r = MOAT_ERR_IO;
		}
	}
	free(buf);
	return r;
}

int
agent_user_setup(const struct agent *ag)
{
	const char *u = ag->conf.user;
	unsigned id = (unsigned)ag->conf.uid;
	char line[256];

	if (user_check_existing(u, ag->conf.uid) != 0)
		return MOAT_ERR_IO;

	snprintf(line, sizeof(line), "%s:x:%u:%u::%s:/bin/bash\n", u, id, id,
	    ag->home);
	if (user_ensure_line("/etc/passwd", u, line, 0644, 0) != 0)
		return MOAT_ERR_IO;
	snprintf(line, sizeof(line), "%s:x:%u:\n", u, id);
	if (user_ensure_line("/etc/group", u, line, 0644, 0) != 0)
		return MOAT_ERR_IO;
	snprintf(line, sizeof(line), "%s:*::0:99999:7:::\n", u);
	if (user_ensure_line("/etc/shadow", u, line, 0640,
	    user_group_id("shadow", 0)) != 0)
		return MOAT_ERR_IO;
	if (user_home(ag) != 0)
		return MOAT_ERR_IO;
	return user_sudoers(ag);
}
