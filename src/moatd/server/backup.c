/*
 * backup.c - `moatd backup` and `moatd restore` (see backup.h).
 *
 * Files are opened relative to directory handles with O_NOFOLLOW, written
 * with O_EXCL and mode 0600 and fsynced. Key material is copied, hashed and
 * never printed; messages name files only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE	/* renameat2 */
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "errors.h"
#include "fdio.h"
#include "log.h"
#include "secrets/secretdir.h"
#include "server/backup.h"
#include "server/volcopy.h"
#include "store/schema.h"
#include "store/store.h"

#ifndef MOAT_VERSION
#define MOAT_VERSION "0.1.0-dev"
#endif

#define BK_MANIFEST "MANIFEST.json"
#define BK_MANIFEST_MAX (1024 * 1024)
#define BK_MAX_FILES 1024
#define BK_COPY_TRIES 5

/* The subdirectories a backup may hold, each flat. */
static const char *const bk_subdirs[] = { "secrets", "pki", "audit",
    "volumes" };
#define BK_NSUBDIRS (sizeof(bk_subdirs) / sizeof(bk_subdirs[0]))


/*
 * Copies name from sdfd into a new file name in ddfd (O_EXCL, 0600,
 * fsynced): at most the size the source has when opened and, with
 * whole_lines, only up to its last '\n' (a record being appended meanwhile
 * is left out). MOAT_ERR_NOTFOUND when the source is absent; a source that
 * is not a regular file is MOAT_ERR_INVAL. No file is left on failure.
 */
static int
bk_copy(int sdfd, const char *name, int ddfd, bool whole_lines)
{
	unsigned char buf[65536];
	struct stat sb;
	off_t left, done = 0, cut = 0;
	int sfd = -1, dfd = -1, r = MOAT_ERR_IO;
	bool created = false;

	if ((sfd = openat(sdfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		r = errno == ENOENT ? MOAT_ERR_NOTFOUND :
		    moat_err_from_errno(errno);
		goto out;
	}
	if (fstat(sfd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		r = MOAT_ERR_INVAL;
		goto out;
	}
	dfd = openat(ddfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (dfd < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	created = true;
	for (left = sb.st_size; left > 0;) {
		size_t want = left < (off_t)sizeof(buf) ? (size_t)left :
		    sizeof(buf);
		ssize_t n = read(sfd, buf, want);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = moat_err_from_errno(errno);
			goto out;
		}
		if (n == 0)
			break;	/* shrank: a rewrite raced us (checked below) */
		if ((r = fd_write_all(dfd, buf, (size_t)n)) != 0)
			goto out;
		for (ssize_t i = n; i > 0; i--)
			if (buf[i - 1] == '\n') {
				cut = done + i;
				break;
			}
		done += n;
		left -= n;
	}
	if (done != sb.st_size && !whole_lines) {
		r = MOAT_ERR_CONFLICT;
		goto out;
	}
	if (whole_lines && ftruncate(dfd, cut) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	if (fsync(dfd) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	r = 0;
out:
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	if (r != 0 && created)
		(void)unlinkat(ddfd, name, 0);
	return r;
}

/* SHA-256 of name in dfd as 64 lowercase hex digits and a NUL. */
static int
bk_hash(int dfd, const char *name, char hex[65])
{
	unsigned char buf[65536], md[32];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	struct stat sb;
	int fd = -1, r = MOAT_ERR_IO;

	if ((fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		r = errno == ENOENT ? MOAT_ERR_NOTFOUND :
		    moat_err_from_errno(errno);
		goto out;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		r = MOAT_ERR_INVAL;
		goto out;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = MOAT_ERR_CRYPTO;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = moat_err_from_errno(errno);
			goto out;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1) {
			r = MOAT_ERR_CRYPTO;
			goto out;
		}
	}
	if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != sizeof(md)) {
		r = MOAT_ERR_CRYPTO;
		goto out;
	}
	for (size_t i = 0; i < sizeof(md); i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	r = 0;
out:
	OPENSSL_cleanse(buf, sizeof(buf));
	EVP_MD_CTX_free(ctx);
	if (fd >= 0)
		close(fd);
	return r;
}

/* Removes everything under path (a tree this command created). */
static int
bk_rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	if (type == FTW_DP)
		(void)rmdir(path);
	else
		(void)unlink(path);
	return 0;
}

static void
bk_rmtree(const char *path)
{
	(void)nftw(path, bk_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

/* Reads the regular files of the directory handle vfd into new files of
 * ddfd, adding "SUB/NAME" to names. Entries that are not regular files
 * (the Kubernetes symlinks, "..data", version directories) are skipped. */
static int
bk_copy_flat(int vfd, int ddfd, const char *sub, json_t *names)
{
	DIR *d = NULL;
	struct dirent *e;
	int fd, r = MOAT_ERR_IO;

	if ((fd = dup(vfd)) < 0 || (d = fdopendir(fd)) == NULL) {
		r = moat_err_from_errno(errno);
		if (fd >= 0)
			close(fd);
		goto out;
	}
	rewinddir(d);
	while ((e = readdir(d)) != NULL) {
		char rel[PATH_MAX];
		struct stat sb;

		if (!moatd_secrets_key_valid(e->d_name) ||
		    fstatat(vfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		if ((r = bk_copy(vfd, e->d_name, ddfd, false)) != 0)
			goto out;
		snprintf(rel, sizeof(rel), "%s/%s", sub, e->d_name);
		if (json_array_append_new(names, json_string(rel)) != 0) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
	}
	r = 0;
out:
	if (d != NULL)
		closedir(d);
	return r;
}

/*
 * Copies the current version of the secret directory sdir into a fresh
 * OUT/secrets. "..data" is opened once and every file read through that
 * handle, so all come from one version; a swap that deletes the version
 * while it is read makes the copy fail with ENOENT, and it is started again.
 * A directory without "..data" (plain files) is copied as it is.
 */
static int
bk_copy_secrets(const char *sdir, int outfd, json_t *names)
{
	int sfd = -1, vfd = -1, dfd = -1, r = MOAT_ERR_IO;
	size_t mark = json_array_size(names);

	if ((sfd = open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	for (int attempt = 0; attempt < BK_COPY_TRIES; attempt++) {
		if (dfd >= 0) {
			close(dfd);
			dfd = -1;
		}
		if (vfd >= 0) {
			close(vfd);
			vfd = -1;
		}
		/* Start over from an empty OUT/secrets. */
		while (json_array_size(names) > mark)
			json_array_remove(names, json_array_size(names) - 1);
		if (attempt > 0) {
			DIR *d;
			struct dirent *e;
			int fd = openat(outfd, "secrets", O_RDONLY |
			    O_DIRECTORY | O_CLOEXEC);

			if (fd >= 0 && (d = fdopendir(fd)) != NULL) {
				while ((e = readdir(d)) != NULL)
					if (e->d_name[0] != '.')
						(void)unlinkat(fd, e->d_name, 0);
				closedir(d);
			} else if (fd >= 0) {
				close(fd);
			}
			(void)unlinkat(outfd, "secrets", AT_REMOVEDIR);
		}
		if (mkdirat(outfd, "secrets", 0700) != 0 ||
		    (dfd = openat(outfd, "secrets", O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC)) < 0) {
			r = moat_err_from_errno(errno);
			goto out;
		}
		vfd = openat(sfd, "..data", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (vfd < 0 && errno != ENOENT) {
			r = moat_err_from_errno(errno);
			goto out;
		}
		r = bk_copy_flat(vfd >= 0 ? vfd : sfd, dfd, "secrets", names);
		if (r != MOAT_ERR_NOTFOUND && r != MOAT_ERR_CONFLICT)
			goto out;
	}
out:
	if (sfd >= 0)
		close(sfd);
	if (vfd >= 0)
		close(vfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/* Copies the flat directory DATA/sub (absent: skipped) to OUT/sub. */
static int
bk_copy_dir(int datafd, const char *sub, int outfd, json_t *names)
{
	int sfd, dfd = -1, r;

	sfd = openat(datafd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (sfd < 0)
		return errno == ENOENT ? 0 : moat_err_from_errno(errno);
	if (mkdirat(outfd, sub, 0700) != 0 ||
	    (dfd = openat(outfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	r = bk_copy_flat(sfd, dfd, sub, names);
out:
	close(sfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/* The audit chain: the checkpoint first, then the log up to its last
 * complete record (it holds the checkpoint: the log only grows). */
static int
bk_copy_audit(int datafd, int outfd, json_t *names)
{
	int sfd, dfd = -1, r;

	sfd = openat(datafd, "audit", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (sfd < 0)
		return errno == ENOENT ? 0 : moat_err_from_errno(errno);
	if (mkdirat(outfd, "audit", 0700) != 0 ||
	    (dfd = openat(outfd, "audit", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	r = bk_copy(sfd, "audit.log.checkpoint", dfd, false);
	if (r == 0)
		r = json_array_append_new(names,
		    json_string("audit/audit.log.checkpoint")) == 0 ? 0 :
		    MOAT_ERR_NOMEM;
	else if (r == MOAT_ERR_NOTFOUND)
		r = 0;
	if (r != 0)
		goto out;
	r = bk_copy(sfd, "audit.log", dfd, true);
	if (r == 0)
		r = json_array_append_new(names, json_string("audit/audit.log"))
		    == 0 ? 0 : MOAT_ERR_NOMEM;
	else if (r == MOAT_ERR_NOTFOUND)
		r = 0;
out:
	close(sfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/* The workspaces' home volumes, DATA/volumes/ID.img: sparse copies, each
 * frozen while it is copied when mounted (volcopy.h). */
static int
bk_copy_volumes(int datafd, const char *dir, int outfd, json_t *names,
    size_t *count, size_t *nfrozen, char *err, size_t errlen)
{
	char img[PATH_MAX], rel[PATH_MAX];
	struct dirent *e;
	DIR *d = NULL;
	int sfd, dfd = -1, r = 0;

	sfd = openat(datafd, "volumes", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (sfd < 0)
		return errno == ENOENT ? 0 : moat_fail(moat_err_from_errno(
		    errno), err, errlen, "cannot open %s/volumes: %s", dir,
		    strerror(errno));
	if (mkdirat(outfd, "volumes", 0700) != 0 ||
	    (dfd = openat(outfd, "volumes", O_RDONLY | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC)) < 0 || (d = fdopendir(sfd)) == NULL) {
		r = moat_fail(moat_err_from_errno(errno), err, errlen,
		    "cannot create volumes/ in the backup: %s", strerror(errno));
		goto out;
	}
	sfd = -1;	/* owned by d */
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		struct stat sb;
		bool frozen;

		if (len < 5 || strcmp(e->d_name + len - 4, ".img") != 0 ||
		    !moatd_secrets_key_valid(e->d_name) ||
		    fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
		    !S_ISREG(sb.st_mode))
			continue;
		snprintf(img, sizeof(img), "%s/volumes/%s", dir, e->d_name);
		if ((r = volcopy_image(dirfd(d), e->d_name, dfd, img, &frozen,
		    err, errlen)) != 0)
			goto out;
		snprintf(rel, sizeof(rel), "volumes/%s", e->d_name);
		if (json_array_append_new(names, json_string(rel)) != 0) {
			r = moat_fail(MOAT_ERR_NOMEM, err, errlen, "out of memory");
			goto out;
		}
		(*count)++;
		*nfrozen += frozen;
	}
out:
	if (d != NULL)
		closedir(d);
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/* True for a name a manifest may list: "moatd.db" or "SUB/KEY". */
static bool
bk_name_ok(const char *name)
{
	const char *slash = strchr(name, '/');

	if (strcmp(name, "moatd.db") == 0)
		return true;
	if (slash == NULL)
		return false;
	for (size_t i = 0; i < BK_NSUBDIRS; i++) {
		size_t n = strlen(bk_subdirs[i]);

		if ((size_t)(slash - name) == n &&
		    strncmp(name, bk_subdirs[i], n) == 0)
			return moatd_secrets_key_valid(slash + 1);
	}
	return false;
}

static void
bk_now(char *out, size_t outlen)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Writes OUT/MANIFEST.json with the hash of every file in names. */
static int
bk_write_manifest(int outfd, json_t *names, int schema_version)
{
	json_t *m = NULL, *files = NULL, *v;
	char *text = NULL, when[32], hex[65];
	size_t i;
	int r = MOAT_ERR_NOMEM;

	bk_now(when, sizeof(when));
	if ((files = json_object()) == NULL)
		goto out;
	json_array_foreach(names, i, v) {
		if ((r = bk_hash(outfd, json_string_value(v), hex)) != 0)
			goto out;
		if (json_object_set_new(files, json_string_value(v),
		    json_string(hex)) != 0) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
	}
	m = json_pack("{sisssssisO}", "format", MOATD_BACKUP_FORMAT,
	    "moatd_version", MOAT_VERSION, "created_at", when,
	    "schema_version", schema_version, "files", files);
	if (m == NULL || (text = json_dumps(m, JSON_INDENT(2) |
	    JSON_SORT_KEYS)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	r = moatd_secrets_write_file(outfd, BK_MANIFEST, text, strlen(text));
out:
	free(text);
	json_decref(m);
	json_decref(files);
	return r;
}

static int
bk_path(char *out, size_t outlen, const char *a, const char *b)
{
	int n = snprintf(out, outlen, "%s/%s", a, b);

	return n < 0 || (size_t)n >= outlen ? MOAT_ERR_TOOBIG : 0;
}

static void
backup_usage(FILE *f)
{
	fprintf(f,
	    "usage: moatd backup --data-dir DIR OUT\n"
	    "\n"
	    "Writes a consistent backup of DIR into the new directory OUT while\n"
	    "moatd may keep running: the store (an online snapshot), the current\n"
	    "version of DIR/secrets, DIR/pki, the audit chain, the workspaces'\n"
	    "home volumes (sparse; a mounted one is frozen while it is copied)\n"
	    "and MANIFEST.json (SHA-256 of every file). The backup holds\n"
	    "moatd's private keys and the sealed keys of the volumes:\n"
	    "keep it as safe as DIR itself. Restore it with moatd restore.\n");
}

static void
restore_usage(FILE *f)
{
	fprintf(f,
	    "usage: moatd restore BACKUP --data-dir NEWDIR\n"
	    "\n"
	    "Checks BACKUP against its MANIFEST.json and builds the data\n"
	    "directory NEWDIR (which must not exist) from it; on any failure\n"
	    "nothing is left. Start moatd with --data-dir NEWDIR afterwards.\n");
}

/* Parses [--data-dir DIR | --data-dir=DIR] and one positional argument. */
static int
bk_args(int argc, char **argv, const char **dir, const char **pos,
    void (*usage)(FILE *), const char *cmd)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc &&
		    *dir == NULL) {
			*dir = argv[++i];
		} else if (strncmp(argv[i], "--data-dir=", 11) == 0 &&
		    *dir == NULL) {
			*dir = argv[i] + 11;
		} else if (argv[i][0] != '-' && *pos == NULL) {
			*pos = argv[i];
		} else {
			fprintf(stderr, "moatd %s: unexpected argument \"%s\"\n",
			    cmd, argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (*dir == NULL || **dir == '\0' || *pos == NULL || **pos == '\0') {
		fprintf(stderr, "moatd %s: --data-dir and %s are required\n",
		    cmd, strcmp(cmd, "backup") == 0 ? "OUT" : "BACKUP");
		usage(stderr);
		return 2;
	}
	return -1;
}

int
moatd_backup_main(int argc, char **argv)
{
	const char *dir = NULL, *out = NULL;
	char path[PATH_MAX], uri[PATH_MAX + 16], err[512] = "";
	size_t nvols = 0, nfrozen = 0;
	struct store *st = NULL;
	json_t *names = NULL;
	int datafd = -1, outfd = -1, n, r, status = 1;
	bool made = false;

	if ((n = bk_args(argc, argv, &dir, &out, backup_usage, "backup")) >= 0)
		return n;
	if ((names = json_array()) == NULL)
		goto out;
	if ((datafd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "moatd backup: cannot open %s: %s\n", dir,
		    strerror(errno));
		goto out;
	}
	if (mkdir(out, 0700) != 0) {
		fprintf(stderr, "moatd backup: cannot create %s: %s%s\n", out,
		    strerror(errno), errno == EEXIST ?
		    " (the backup directory must not exist)" : "");
		goto out;
	}
	made = true;
	if ((outfd = open(out, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0) {
		fprintf(stderr, "moatd backup: cannot open %s: %s\n", out,
		    strerror(errno));
		goto out;
	}
	n = snprintf(uri, sizeof(uri), "sqlite:%s/moatd.db", dir);
	if (n < 0 || (size_t)n >= sizeof(uri) ||
	    bk_path(path, sizeof(path), out, "moatd.db") != 0) {
		fprintf(stderr, "moatd backup: path too long\n");
		goto out;
	}
	if ((r = store_open(&st, uri, moatd_collections, moatd_ncollections))
	    != 0) {
		fprintf(stderr, "moatd backup: cannot open the store %s: %s\n",
		    uri + 7, moat_strerror(r));
		goto out;
	}
	if ((r = store_backup(st, path)) != 0) {
		fprintf(stderr, "moatd backup: cannot back up the store: %s\n",
		    moat_strerror(r));
		goto out;
	}
	json_array_append_new(names, json_string("moatd.db"));
	if (bk_path(path, sizeof(path), dir, "secrets") != 0 ||
	    (r = bk_copy_secrets(path, outfd, names)) != 0) {
		fprintf(stderr, "moatd backup: cannot copy %s/secrets: %s\n",
		    dir, moat_strerror(r));
		goto out;
	}
	if ((r = bk_copy_dir(datafd, "pki", outfd, names)) != 0) {
		fprintf(stderr, "moatd backup: cannot copy %s/pki: %s\n", dir,
		    moat_strerror(r));
		goto out;
	}
	if ((r = bk_copy_audit(datafd, outfd, names)) != 0) {
		fprintf(stderr, "moatd backup: cannot copy %s/audit: %s\n", dir,
		    moat_strerror(r));
		goto out;
	}
	if (bk_copy_volumes(datafd, dir, outfd, names, &nvols, &nfrozen, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "moatd backup: %s\n", err);
		goto out;
	}
	if ((r = bk_write_manifest(outfd, names, store_schema_version(st)))
	    != 0 || fsync(outfd) != 0) {
		fprintf(stderr, "moatd backup: cannot write the manifest: %s\n",
		    moat_strerror(r != 0 ? r : moat_err_from_errno(errno)));
		goto out;
	}
	printf("backup of %s written to %s (%zu files, store schema %d; "
	    "%zu home volumes, %zu of them in use and frozen while copied)\n"
	    "it holds moatd's private keys (secrets/, pki/): store it "
	    "encrypted and access-controlled\n", dir, out,
	    json_array_size(names), store_schema_version(st), nvols, nfrozen);
	status = 0;
out:
	store_close(st);
	json_decref(names);
	if (datafd >= 0)
		close(datafd);
	if (outfd >= 0)
		close(outfd);
	if (status != 0 && made)
		bk_rmtree(out);
	return status;
}

/* Reads MANIFEST.json of bfd; *files borrowed from *m (caller decrefs). */
static int
rs_manifest(int bfd, json_t **m, json_t **files, char *err, size_t errlen)
{
	json_error_t je;
	char buf[BK_MANIFEST_MAX + 1];
	ssize_t n;
	size_t have = 0;
	int fd, r = MOAT_ERR_CORRUPT;

	*m = NULL;
	if ((fd = openat(bfd, BK_MANIFEST, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0) {
		moat_errf(err, errlen, "cannot open %s: %s", BK_MANIFEST,
		    strerror(errno));
		return moat_err_from_errno(errno);
	}
	while (have < sizeof(buf) && (n = read(fd, buf + have,
	    sizeof(buf) - have)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		have += (size_t)n;
	}
	close(fd);
	if (have > BK_MANIFEST_MAX) {
		moat_errf(err, errlen, "%s is too large", BK_MANIFEST);
		return MOAT_ERR_TOOBIG;
	}
	if ((*m = json_loadb(buf, have, JSON_REJECT_DUPLICATES, &je)) == NULL ||
	    !json_is_object(*m)) {
		moat_errf(err, errlen, "%s is not a JSON object", BK_MANIFEST);
		goto out;
	}
	if (json_integer_value(json_object_get(*m, "format")) !=
	    MOATD_BACKUP_FORMAT) {
		moat_errf(err, errlen, "%s: unsupported format (this moatd "
		    "reads format %d)", BK_MANIFEST, MOATD_BACKUP_FORMAT);
		r = MOAT_ERR_UNSUPPORTED;
		goto out;
	}
	*files = json_object_get(*m, "files");
	if (!json_is_object(*files) || json_object_size(*files) >
	    BK_MAX_FILES || json_object_get(*files, "moatd.db") == NULL) {
		moat_errf(err, errlen, "%s: \"files\" must list moatd.db",
		    BK_MANIFEST);
		goto out;
	}
	r = 0;
out:
	if (r != 0) {
		json_decref(*m);
		*m = NULL;
	}
	return r;
}

/* Checks every listed file's hash, and that bfd's subdirectories hold no
 * file the manifest does not list. */
static int
rs_check(int bfd, json_t *files, char *err, size_t errlen)
{
	const char *name;
	json_t *v;
	char hex[65];
	int r;

	json_object_foreach(files, name, v) {
		if (!bk_name_ok(name) || !json_is_string(v)) {
			moat_errf(err, errlen, "%s lists a bad entry \"%.64s\"",
			    BK_MANIFEST, name);
			return MOAT_ERR_CORRUPT;
		}
		if ((r = bk_hash(bfd, name, hex)) != 0) {
			moat_errf(err, errlen, "%s: cannot read: %s", name,
			    moat_strerror(r));
			return r;
		}
		if (strcmp(hex, json_string_value(v)) != 0) {
			moat_errf(err, errlen, "%s: SHA-256 does not match the "
			    "manifest (the backup was changed or damaged)", name);
			return MOAT_ERR_CORRUPT;
		}
	}
	for (size_t i = 0; i < BK_NSUBDIRS; i++) {
		DIR *d;
		struct dirent *e;
		int fd = openat(bfd, bk_subdirs[i], O_RDONLY | O_DIRECTORY |
		    O_NOFOLLOW | O_CLOEXEC);

		if (fd < 0)
			continue;
		if ((d = fdopendir(fd)) == NULL) {
			close(fd);
			return MOAT_ERR_IO;
		}
		r = 0;
		while ((e = readdir(d)) != NULL) {
			char rel[PATH_MAX];

			if (strcmp(e->d_name, ".") == 0 ||
			    strcmp(e->d_name, "..") == 0)
				continue;
			snprintf(rel, sizeof(rel), "%s/%s", bk_subdirs[i],
			    e->d_name);
			if (json_object_get(files, rel) == NULL) {
				moat_errf(err, errlen, "%.200s: not listed in "
				    "the manifest", rel);
				r = MOAT_ERR_CORRUPT;
				break;
			}
		}
		closedir(d);
		if (r != 0)
			return r;
	}
	return 0;
}

/* Publishes BACKUP/secrets/ as the first version of tmp/secrets. */
static int
rs_secrets(int bfd, json_t *files, const char *tmp)
{
	struct moatd_secret_file sf[MOATD_SECRETS_MAX_KEYS];
	unsigned char *data[MOATD_SECRETS_MAX_KEYS];
	char path[PATH_MAX];
	const char *name;
	json_t *v;
	size_t n = 0;
	int r = MOAT_ERR_IO;

	json_object_foreach(files, name, v) {
		int fd;
		struct stat sb;
		ssize_t got;
		size_t have = 0;

		(void)v;
		if (strncmp(name, "secrets/", 8) != 0)
			continue;
		if (n == MOATD_SECRETS_MAX_KEYS) {
			r = MOAT_ERR_TOOBIG;
			goto out;
		}
		if ((fd = openat(bfd, name, O_RDONLY | O_NOFOLLOW |
		    O_CLOEXEC)) < 0 || fstat(fd, &sb) != 0 ||
		    sb.st_size > MOATD_SECRETS_MAX_FILE) {
			r = fd < 0 ? moat_err_from_errno(errno) : MOAT_ERR_TOOBIG;
			if (fd >= 0)
				close(fd);
			goto out;
		}
		if ((data[n] = OPENSSL_malloc((size_t)sb.st_size + 1)) == NULL) {
			close(fd);
			r = MOAT_ERR_NOMEM;
			goto out;
		}
		while (have < (size_t)sb.st_size && ((got = read(fd,
		    data[n] + have, (size_t)sb.st_size - have)) > 0 ||
		    (got < 0 && errno == EINTR)))
			if (got > 0)
				have += (size_t)got;
		close(fd);
		sf[n] = (struct moatd_secret_file){ name + 8, data[n], have };
		n++;
		if (have != (size_t)sb.st_size) {
			r = MOAT_ERR_IO;
			goto out;
		}
	}
	if ((r = bk_path(path, sizeof(path), tmp, "secrets")) != 0)
		goto out;
	if (mkdir(path, 0700) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	r = moatd_secrets_swap(path, sf, n, 0);
out:
	for (size_t i = 0; i < n; i++)
		OPENSSL_clear_free(data[i], sf[i].len + 1);
	return r;
}

/* Copies the listed files of one plain subdirectory into tmpfd. */
static int
rs_plain(int bfd, json_t *files, int tmpfd, const char *sub)
{
	const char *name;
	json_t *v;
	size_t len = strlen(sub);
	int sfd = -1, dfd = -1, r = 0;

	json_object_foreach(files, name, v) {
		(void)v;
		if (strncmp(name, sub, len) != 0 || name[len] != '/')
			continue;
		if (dfd < 0) {
			if (mkdirat(tmpfd, sub, 0700) != 0 ||
			    (dfd = openat(tmpfd, sub, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC)) < 0 ||
			    (sfd = openat(bfd, sub, O_RDONLY | O_DIRECTORY |
			    O_NOFOLLOW | O_CLOEXEC)) < 0) {
				r = moat_err_from_errno(errno);
				goto out;
			}
		}
		if (strcmp(sub, "volumes") == 0) {
			char e2[256];
			bool frozen;

			r = volcopy_image(sfd, name + len + 1, dfd, NULL, &frozen,
			    e2, sizeof(e2));
		} else {
			r = bk_copy(sfd, name + len + 1, dfd, false);
		}
		if (r != 0)
			goto out;
	}
out:
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/*
 * What the backup recorded as observed ("running", a lease of the old
 * moatd) describes a runtime the restored directory does not have: every
 * workspace that was up becomes "stopped" with a reason and no lease, and
 * keeps its desired state, so the restored moatd starts the ones that
 * should run.
 */
static int
rs_workspaces(struct store *st, size_t *count)
{
	json_t *docs = NULL, *d;
	size_t i;
	int r;

	if ((r = store_list(st, COLL_WORKSPACES, NULL, NULL, NULL, 0, &docs))
	    != 0)
		return r;
	json_array_foreach(docs, i, d) {
		const char *state = json_string_value(json_object_get(d,
		    "state"));

		(*count)++;
		if (state == NULL || strcmp(state, "stopped") == 0 ||
		    strcmp(state, "failed") == 0 || strcmp(state, "pending") == 0)
			continue;
		json_object_del(d, "lease");
		/* A delete in progress goes on; anything else was up. */
		if (strcmp(state, "deleting") != 0 &&
		    (json_object_set_new(d, "state", json_string("stopped")) != 0 ||
		    json_object_set_new(d, "reason", json_string("restored from "
		    "a backup")) != 0)) {
			r = MOAT_ERR_NOMEM;
			break;
		}
		if ((r = store_update(st, COLL_WORKSPACES, d)) != 0)
			break;
	}
	json_decref(docs);
	return r;
}

int
moatd_restore_main(int argc, char **argv)
{
	const char *newdir = NULL, *backup = NULL;
	size_t nws = 0;
	char tmp[PATH_MAX], uri[PATH_MAX + 16], err[512] = "";
	json_t *m = NULL, *files = NULL;
	struct store *st = NULL;
	struct stat sb;
	int bfd = -1, tmpfd = -1, n, r, status = 1;
	bool made = false;

	if ((n = bk_args(argc, argv, &newdir, &backup, restore_usage,
	    "restore")) >= 0)
		return n;
	if ((bfd = open(backup, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		fprintf(stderr, "moatd restore: cannot open %s: %s\n", backup,
		    strerror(errno));
		goto out;
	}
	if (rs_manifest(bfd, &m, &files, err, sizeof(err)) != 0 ||
	    rs_check(bfd, files, err, sizeof(err)) != 0) {
		fprintf(stderr, "moatd restore: refused: %s/%s\n", backup, err);
		goto out;
	}
	if (lstat(newdir, &sb) == 0 || errno != ENOENT) {
		fprintf(stderr, "moatd restore: %s exists; restore into a new "
		    "data directory\n", newdir);
		goto out;
	}
	n = snprintf(tmp, sizeof(tmp), "%s.restore-XXXXXX", newdir);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		fprintf(stderr, "moatd restore: path too long\n");
		goto out;
	}
	if (mkdtemp(tmp) == NULL) {
		fprintf(stderr, "moatd restore: cannot create a directory next "
		    "to %s: %s\n", newdir, strerror(errno));
		goto out;
	}
	made = true;
	if ((tmpfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0 ||
	    (r = bk_copy(bfd, "moatd.db", tmpfd, false)) != 0 ||
	    (r = rs_secrets(bfd, files, tmp)) != 0 ||
	    (r = rs_plain(bfd, files, tmpfd, "pki")) != 0 ||
	    (r = rs_plain(bfd, files, tmpfd, "audit")) != 0 ||
	    (r = rs_plain(bfd, files, tmpfd, "volumes")) != 0) {
		fprintf(stderr, "moatd restore: cannot build the data "
		    "directory: %s\n", moat_strerror(tmpfd < 0 ?
		    moat_err_from_errno(errno) : r));
		goto out;
	}
	/* The store must open here (schema not newer than this moatd). */
	n = snprintf(uri, sizeof(uri), "sqlite:%s/moatd.db", tmp);
	if (n < 0 || (size_t)n >= sizeof(uri) || (r = store_open(&st, uri,
	    moatd_collections, moatd_ncollections)) != 0) {
		fprintf(stderr, "moatd restore: the backed-up store does not "
		    "open with this moatd\n");
		goto out;
	}
	if ((r = rs_workspaces(st, &nws)) != 0) {
		fprintf(stderr, "moatd restore: cannot reset the workspaces' "
		    "observed state: %s\n", moat_strerror(r));
		goto out;
	}
	store_close(st);
	st = NULL;
	if (fsync(tmpfd) != 0 || renameat2(AT_FDCWD, tmp, AT_FDCWD, newdir,
	    RENAME_NOREPLACE) != 0) {
		fprintf(stderr, "moatd restore: cannot move the restored data "
		    "into %s: %s\n", newdir, strerror(errno));
		goto out;
	}
	made = false;
	printf("restored %s into %s (%zu files checked, %zu workspaces); "
	    "start moatd with --data-dir %s\n", backup, newdir,
	    json_object_size(files), nws, newdir);
	status = 0;
out:
	store_close(st);
	json_decref(m);
	if (bfd >= 0)
		close(bfd);
	if (tmpfd >= 0)
		close(tmpfd);
	if (made)
		bk_rmtree(tmp);
	return status;
}
