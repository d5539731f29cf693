/*
 * volcopy.c - sparse, consistent copies of home volume images (volcopy.h).
 *
 * Finding the mount: the loop device whose backing file is the image
 * (/sys/block/loopN/loop/backing_file, its MAJ:MIN in /sys/block/loopN/dev),
 * then a mount of that device in /proc/self/mountinfo or, failing that, in
 * the mountinfo of another process (moatd's private mount namespace),
 * reached through /proc/PID/root. Everything read from /proc and /sys is
 * the kernel's.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* SEEK_DATA, SEEK_HOLE */
#endif
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/volcopy.h"

#define VC_BUF (1024 * 1024)

/* Reads a small /sys or /proc file into buf (NUL-terminated, trailing
 * newline cut). */
static bool
vc_read_small(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	if (buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	return true;
}

/* MAJ:MIN of the loop device backing img (realpath); false when none. */
static bool
vc_loop_dev(const char *img, char *dev, size_t devlen)
{
	char want[PATH_MAX], path[PATH_MAX], have[PATH_MAX];
	struct dirent *e;
	DIR *d;
	bool found = false;

	if (realpath(img, want) == NULL || (d = opendir("/sys/block")) == NULL)
		return false;
	while (!found && (e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "loop", 4) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file",
		    e->d_name);
		if (!vc_read_small(path, have, sizeof(have)) ||
		    strcmp(have, want) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/dev", e->d_name);
		found = vc_read_small(path, dev, devlen);
	}
	closedir(d);
	return found;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void
vc_unescape(char *s)
{
	char *o = s;

	while (*s != '\0') {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' &&
		    s[2] >= '0' && s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
			    (s[3] - '0'));
			s += 4;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
}

/* The mount point of device dev (MAJ:MIN) in the mountinfo file at path. */
static bool
vc_mount_in(const char *path, const char *dev, char *mnt, size_t mntlen)
{
	char line[4096 + PATH_MAX];
	bool found = false;
	FILE *f = fopen(path, "re");

	if (f == NULL)
		return false;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char *save = NULL, *tok[5];
		int i;

		tok[0] = strtok_r(line, " ", &save);
		for (i = 1; i < 5 && tok[i - 1] != NULL; i++)
			tok[i] = strtok_r(NULL, " ", &save);
		if (i < 5 || tok[4] == NULL || strcmp(tok[2], dev) != 0 ||
		    strcmp(tok[3], "/") != 0)
			continue;
		vc_unescape(tok[4]);
		if (snprintf(mnt, mntlen, "%s", tok[4]) < (int)mntlen)
			found = true;
	}
	fclose(f);
	return found;
}

/* A path that reaches the mount of dev: in this mount namespace, or
 * /proc/PID/root/MNT of a process in another. */
static bool
vc_find_mount(const char *dev, char *out, size_t outlen)
{
	char mnt[PATH_MAX], path[PATH_MAX];
	struct stat self, other;
	struct dirent *e;
	DIR *d;
	bool found = false;

	if (vc_mount_in("/proc/self/mountinfo", dev, out, outlen))
		return true;
	if (stat("/proc/self/ns/mnt", &self) != 0 ||
	    (d = opendir("/proc")) == NULL)
		return false;
	while (!found && (e = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%s/ns/mnt", e->d_name);
		if (stat(path, &other) != 0 || other.st_ino == self.st_ino)
			continue;
		snprintf(path, sizeof(path), "/proc/%s/mountinfo", e->d_name);
		if (vc_mount_in(path, dev, mnt, sizeof(mnt)) &&
		    snprintf(out, outlen, "/proc/%s/root%s", e->d_name, mnt) <
		    (int)outlen)
			found = true;
	}
	closedir(d);
	return found;
}

static int
vc_write_all(int fd, const unsigned char *p, size_t len, off_t off)
{
	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return moat_err_from_errno(errno);
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Copies the data extents of sfd into dfd at the same offsets, then sets
 * the size: holes stay holes. */
static int
vc_copy_sparse(int sfd, int dfd, off_t size, unsigned char *buf)
{
	off_t off = 0;
	int r;

	while (off < size) {
		off_t data = lseek(sfd, off, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;		/* only a hole is left */
		if (data < 0)
			return moat_err_from_errno(errno);
		if ((hole = lseek(sfd, data, SEEK_HOLE)) < 0)
			return moat_err_from_errno(errno);
		if (hole > size)
			hole = size;
		for (off = data; off < hole;) {
			size_t want = hole - off < VC_BUF ? (size_t)(hole - off) :
			    VC_BUF;
			ssize_t n = pread(sfd, buf, want, off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return moat_err_from_errno(errno);
			if (n == 0)
				return MOAT_ERR_CONFLICT;	/* shrank */
			if ((r = vc_write_all(dfd, buf, (size_t)n, off)) != 0)
				return r;
			off += n;
		}
	}
	if (ftruncate(dfd, size) != 0 || fsync(dfd) != 0)
		return moat_err_from_errno(errno);
	return 0;
}

int
volcopy_image(int sdfd, const char *name, int ddfd, const char *img_path,
    bool *frozen, char *err, size_t errlen)
{
	char dev[32], mnt[PATH_MAX];
	unsigned char *buf = NULL;
	sigset_t hold, old;
	struct stat sb;
	int sfd = -1, dfd = -1, mfd = -1, r = MOAT_ERR_IO;
	bool created = false, thaw = false;

	*frozen = false;
	sigemptyset(&old);
	if ((buf = malloc(VC_BUF)) == NULL)
		return moat_fail(MOAT_ERR_NOMEM, err, errlen, "out of memory");
	if ((sfd = openat(sdfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0 ||
	    fstat(sfd, &sb) != 0) {
		r = moat_fail(moat_err_from_errno(errno), err, errlen,
		    "cannot open %s: %s", name, strerror(errno));
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "%s is not a regular "
		    "file", name);
		goto out;
	}
	if (img_path != NULL && vc_loop_dev(img_path, dev, sizeof(dev))) {
		if (!vc_find_mount(dev, mnt, sizeof(mnt))) {
			r = moat_fail(MOAT_ERR_AGAIN, err, errlen, "%s is attached "
			    "to a loop device (%s) but no mount of it was found: "
			    "try again when its workspace is running or stopped",
			    name, dev);
			goto out;
		}
		if ((mfd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			r = moat_fail(moat_err_from_errno(errno), err, errlen,
			    "cannot open the mount of %s: %s", name,
			    strerror(errno));
			goto out;
		}
		sigemptyset(&hold);
		sigaddset(&hold, SIGINT);
		sigaddset(&hold, SIGTERM);
		sigaddset(&hold, SIGHUP);
		sigprocmask(SIG_BLOCK, &hold, &old);
		if (ioctl(mfd, FIFREEZE, 0) != 0) {
			sigprocmask(SIG_SETMASK, &old, NULL);
			r = moat_fail(moat_err_from_errno(errno), err, errlen,
			    "cannot freeze the mounted volume %s for a "
			    "consistent copy: %s", name, strerror(errno));
			goto out;
		}
		thaw = *frozen = true;
	}
	if ((dfd = openat(ddfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) < 0) {
		r = moat_fail(moat_err_from_errno(errno), err, errlen,
		    "cannot create %s: %s", name, strerror(errno));
		goto out;
	}
	created = true;
	if ((r = vc_copy_sparse(sfd, dfd, sb.st_size, buf)) != 0)
		moat_errf(err, errlen, "cannot copy %s: %s", name,
		    moat_strerror(r));
out:
	if (thaw) {
		if (ioctl(mfd, FITHAW, 0) != 0 && r == 0)
			r = moat_fail(moat_err_from_errno(errno), err, errlen,
			    "cannot thaw the volume %s: %s", name,
			    strerror(errno));
		sigprocmask(SIG_SETMASK, &old, NULL);
	}
	if (mfd >= 0)
		close(mfd);
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	if (r != 0 && created)
		(void)unlinkat(ddfd, name, 0);
	free(buf);
	return r;
}
