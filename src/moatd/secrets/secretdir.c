/*
 * secretdir.c - Kubernetes-style secret directories: atomic "..data" swaps
 * (see secretdir.h).
 *
 * Everything is done relative to directory file descriptors with
 * O_NOFOLLOW, so a symlink planted inside the directory can only ever be
 * read as a link, never followed to write elsewhere.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "fdio.h"
#include "log.h"
#include "secrets/secretdir.h"

#define SECRETDIR_DATA		"..data"
#define SECRETDIR_DATA_TMP	"..data_tmp"
#define SECRETDIR_LINK_PREFIX	"..data/"

bool
moatd_secrets_key_valid(const char *name)
{
	size_t i, len;

	if (name == NULL)
		return false;
	len = strlen(name);
	if (len == 0 || len > 253 || strcmp(name, ".") == 0 ||
	    strncmp(name, "..", 2) == 0)
		return false;
	for (i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* True for the name of a timestamped version directory ("..2026_..."). */
static bool
secretdir_is_version_name(const char *name)
{
	return strncmp(name, "..", 2) == 0 && name[2] >= '0' &&
	    name[2] <= '9' && strchr(name, '/') == NULL;
}


int
moatd_secrets_write_file(int dfd, const char *name, const void *data,
    size_t len)
{
	int r = MOAT_ERR_IO, fd = -1;
	bool created = false;

	fd = openat(dfd, name,
	    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	created = true;
	/* Exact mode whatever the umask. */
	if (fchmod(fd, 0600) != 0 || (r = fd_write_all(fd, data, len))
	    != 0 || fsync(fd) != 0) {
		if (r == 0)
			r = moat_err_from_errno(errno);
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		r = moat_err_from_errno(errno);
		goto out;
	}
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (r != 0 && created)
		(void)unlinkat(dfd, name, 0);
	return r;
}

/* Reads a regular file (not a symlink) of at most MOATD_SECRETS_MAX_FILE
 * bytes from dfd. *out is caller-freed with OPENSSL_clear_free(*out, *len). */
static int
secretdir_read_file(int dfd, const char *name, unsigned char **out,
    size_t *outlen)
{
	int r = MOAT_ERR_IO, fd = -1;
	unsigned char *p = NULL;
	struct stat st;
	size_t have = 0, size = 0;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = MOAT_ERR_INVAL;
		goto out;
	}
	if (st.st_size > MOATD_SECRETS_MAX_FILE) {
		r = MOAT_ERR_TOOBIG;
		goto out;
	}
	size = (size_t)st.st_size;
	/* One spare byte detects a file that grew after fstat. */
	if ((p = OPENSSL_malloc(size + 1)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, p + have, size + 1 - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = moat_err_from_errno(errno);
			goto out;
		}
		if (n == 0)
			break;
		have += (size_t)n;
		if (have > size) {
			r = MOAT_ERR_CONFLICT;	/* changed while reading */
			goto out;
		}
	}
	*out = p;
	*outlen = have;
	p = NULL;
	r = 0;
out:
	OPENSSL_clear_free(p, size + 1);
	if (fd >= 0)
		close(fd);
	return r;
}

/* Deletes the plain files in the directory name of dfd, then the
 * directory. Entries that are directories are left (and make rmdir fail). */
static int
secretdir_remove_flat(int dfd, const char *name)
{
	int r = MOAT_ERR_IO, fd;
	DIR *d = NULL;
	struct dirent *de;

	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd < 0) {
		r = errno == ENOENT ? 0 : moat_err_from_errno(errno);
		goto out;
	}
	if ((d = fdopendir(fd)) == NULL) {
		r = moat_err_from_errno(errno);
		close(fd);
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		(void)unlinkat(dirfd(d), de->d_name, 0);
	}
	if (unlinkat(dfd, name, AT_REMOVEDIR) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	r = 0;
out:
	if (d != NULL)
		closedir(d);
	return r;
}

/* Creates a new, empty timestamped version directory in dfd and writes
 * its name into name. */
static int
secretdir_mkversion(int dfd, char *name, size_t namelen)
{
	struct timespec ts;
	struct tm tm;
	char stamp[64];
	int tries;

	if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
		return moat_err_from_errno(errno);
	for (tries = 0; tries < 1000; tries++) {
		int n;

		if (gmtime_r(&ts.tv_sec, &tm) == NULL ||
		    strftime(stamp, sizeof(stamp), "%Y_%m_%d_%H_%M_%S", &tm)
		    == 0)
			return MOAT_ERR_INVAL;
		n = snprintf(name, namelen, "..%s.%09ld", stamp,
		    (long)ts.tv_nsec);
		if (n < 0 || (size_t)n >= namelen)
			return MOAT_ERR_TOOBIG;
		if (mkdirat(dfd, name, 0700) == 0)
			return 0;
		if (errno != EEXIST)
			return moat_err_from_errno(errno);
		/* Same nanosecond as an existing version: take the next one. */
		if (++ts.tv_nsec >= 1000000000L) {
			ts.tv_nsec = 0;
			ts.tv_sec++;
		}
	}
	return MOAT_ERR_EXISTS;
}

static bool
secretdir_named(const struct moatd_secret_file *files, size_t n,
    const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(files[i].name, name) == 0)
			return true;
	return false;
}

/* Copies the keys of the old version not named in files into newfd. */
static int
secretdir_copy_kept(int dfd, const char *old, int newfd,
    const struct moatd_secret_file *files, size_t n, size_t *count)
{
	int r = MOAT_ERR_IO, fd;
	DIR *d = NULL;
	struct dirent *de;

	fd = openat(dfd, old, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	if ((d = fdopendir(fd)) == NULL) {
		r = moat_err_from_errno(errno);
		close(fd);
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		unsigned char *data = NULL;
		size_t len = 0;

		if (!moatd_secrets_key_valid(de->d_name) ||
		    secretdir_named(files, n, de->d_name))
			continue;
		if (++*count > MOATD_SECRETS_MAX_KEYS) {
			r = MOAT_ERR_TOOBIG;
			goto out;
		}
		if ((r = secretdir_read_file(dirfd(d), de->d_name, &data,
		    &len)) != 0)
			goto out;
		r = moatd_secrets_write_file(newfd, de->d_name, data, len);
		OPENSSL_clear_free(data, len);
		if (r != 0)
			goto out;
	}
	r = 0;
out:
	if (d != NULL)
		closedir(d);
	return r;
}

/* Makes the per-key symlinks match the version in newfd: KEY -> ..data/KEY
 * for each of its keys, and no such link for any other key. */
static int
secretdir_relink(int dfd, int newfd)
{
	int r = 0, fd;
	DIR *d = NULL;
	struct dirent *de;
	char target[300], cur[300];

	/* Add the missing links. */
	if ((fd = dup(newfd)) < 0)
		return moat_err_from_errno(errno);
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return moat_err_from_errno(errno);
	}
	while ((de = readdir(d)) != NULL) {
		ssize_t n;

		if (!moatd_secrets_key_valid(de->d_name))
			continue;
		snprintf(target, sizeof(target), "%s%s", SECRETDIR_LINK_PREFIX,
		    de->d_name);
		n = readlinkat(dfd, de->d_name, cur, sizeof(cur) - 1);
		if (n >= 0) {
			cur[n] = '\0';
			if (strcmp(cur, target) == 0)
				continue;
		}
		if (n < 0 && errno == ENOENT) {
			if (symlinkat(target, dfd, de->d_name) != 0)
				r = moat_err_from_errno(errno);
			continue;
		}
		/* Something else has the key's name: replace it atomically
		 * (fails, as it should, for a directory). */
		(void)unlinkat(dfd, SECRETDIR_DATA_TMP, 0);
		if (symlinkat(target, dfd, SECRETDIR_DATA_TMP) != 0 ||
		    renameat(dfd, SECRETDIR_DATA_TMP, dfd, de->d_name) != 0) {
			r = moat_err_from_errno(errno);
			(void)unlinkat(dfd, SECRETDIR_DATA_TMP, 0);
		}
	}
	closedir(d);
	d = NULL;

	/* Remove links of keys the new version no longer has. */
	if ((fd = dup(dfd)) < 0)
		return moat_err_from_errno(errno);
	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return moat_err_from_errno(errno);
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		ssize_t n;

		if (!moatd_secrets_key_valid(de->d_name))
			continue;
		n = readlinkat(dfd, de->d_name, cur, sizeof(cur) - 1);
		if (n < 0)
			continue;
		cur[n] = '\0';
		snprintf(target, sizeof(target), "%s%s", SECRETDIR_LINK_PREFIX,
		    de->d_name);
		if (strcmp(cur, target) != 0)
			continue;	/* not ours */
		if (fstatat(newfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		if (unlinkat(dfd, de->d_name, 0) != 0 && errno != ENOENT)
			r = moat_err_from_errno(errno);
	}
	closedir(d);
	return r;
}

int
moatd_secrets_swap(const char *dir, const struct moatd_secret_file *files,
    size_t n, unsigned flags)
{
	int r = MOAT_ERR_INVAL, dfd = -1, newfd = -1;
	char old[256] = "", ver[256] = "";
	bool have_old = false, published = false;
	size_t i, j, count = n;
	ssize_t len;

	if (dir == NULL || (n > 0 && files == NULL) ||
	    n > MOATD_SECRETS_MAX_KEYS || (flags & ~MOATD_SECRETS_KEEP) != 0)
		goto out;
	for (i = 0; i < n; i++) {
		if (!moatd_secrets_key_valid(files[i].name) ||
		    (files[i].len > 0 && files[i].data == NULL) ||
		    files[i].len > MOATD_SECRETS_MAX_FILE)
			goto out;
		for (j = 0; j < i; j++)
			if (strcmp(files[i].name, files[j].name) == 0)
				goto out;
	}

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	len = readlinkat(dfd, SECRETDIR_DATA, old, sizeof(old) - 1);
	if (len >= 0) {
		old[len] = '\0';
		have_old = secretdir_is_version_name(old);
		if (!have_old) {
			r = MOAT_ERR_CORRUPT;	/* ..data points elsewhere */
			goto out;
		}
	} else if (errno != ENOENT) {
		r = moat_err_from_errno(errno);
		goto out;
	}

	if ((r = secretdir_mkversion(dfd, ver, sizeof(ver))) != 0)
		goto out;
	newfd = openat(dfd, ver, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (newfd < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	for (i = 0; i < n; i++)
		if ((r = moatd_secrets_write_file(newfd, files[i].name,
		    files[i].data, files[i].len)) != 0)
			goto out;
	if (have_old && (flags & MOATD_SECRETS_KEEP) &&
	    (r = secretdir_copy_kept(dfd, old, newfd, files, n, &count)) != 0)
		goto out;
	if (fsync(newfd) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}

	/* The one atomic step: ..data_tmp -> VER renamed over ..data. */
	if (unlinkat(dfd, SECRETDIR_DATA_TMP, 0) != 0 && errno != ENOENT) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	if (symlinkat(ver, dfd, SECRETDIR_DATA_TMP) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	if (renameat(dfd, SECRETDIR_DATA_TMP, dfd, SECRETDIR_DATA) != 0) {
		r = moat_err_from_errno(errno);
		(void)unlinkat(dfd, SECRETDIR_DATA_TMP, 0);
		goto out;
	}
	published = true;
	(void)fsync(dfd);

	/* From here the new version is live; the rest is tidying up, and an
	 * error is reported but does not undo the swap. */
	r = secretdir_relink(dfd, newfd);
	if (have_old && strcmp(old, ver) != 0) {
		int r2 = secretdir_remove_flat(dfd, old);
		if (r == 0)
			r = r2;
	}
	(void)fsync(dfd);
	if (r != 0)
		log_warn("secrets", "new version published, but tidying up "
		    "failed", LF_STR("dir", dir), LF_STR("error",
		    moat_strerror(r)));
out:
	if (newfd >= 0)
		close(newfd);
	if (!published && ver[0] != '\0' && dfd >= 0)
		(void)secretdir_remove_flat(dfd, ver);
	if (dfd >= 0)
		close(dfd);
	return r;
}
