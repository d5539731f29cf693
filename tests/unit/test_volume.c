/*
 * test_volume.c - unit tests for encrypted home volumes
 * (orchestrator/volume.h) on real loop devices, ext4 and fscrypt: at-rest
 * encryption of names and contents as the host sees them (the test mounts
 * the image itself without the key and reads the raw image bytes), key
 * presence in the filesystem's keyring before and after detach, a wrong
 * key, idempotence, the size bound, plain volumes, id validation, orphan
 * listing and crash leftovers (a bound loop device, a stray mount).
 *
 * Needs root and /dev/loop-control; skipped otherwise. Every test works in
 * a mkdtemp directory under /var/tmp (or $MOAT_TEST_VOLUME_DIR: loop images
 * on a tmpfs work as well) and its teardown unmounts and unbinds
 * whatever is left there even when an assertion failed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/fscrypt.h>
#include <linux/loop.h>

#include "log.h"
#include "orchestrator/volume.h"

#define MiB (1024ULL * 1024ULL)
#define ID_A "0123456789abcdef0123456789abcdef"
#define ID_B "fedcba9876543210fedcba9876543210"
#define ID_C "00000000000000000000000000000c0c"
#define SECRET_NAME "secret-name.txt"

static bool can_run;
static const char *base_dir = "/var/tmp";	/* MOAT_TEST_VOLUME_DIR */
static char skip_reason[128];

struct fx {
	char dir[64];		/* mkdtemp */
	char vols[96];		/* dir/images */
	char mnts[96];		/* dir/mnt */
	char ro[96];		/* dir/ro: the test's own keyless mount */
	char ro2[96];		/* dir/ro2: a second mount of a live volume */
	struct volume_paths p;
	uint8_t key[VOLUME_KEY_LEN];
	uint8_t key2[VOLUME_KEY_LEN];
	char content[8192];	/* a recognizable plaintext */
};

/* ---- helpers ------------------------------------------------------------ */

static int
rm_cb(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void
img_path(const struct fx *f, const char *id, char *out, size_t n)
{
	snprintf(out, n, "%s/%s.img", f->vols, id);
}

/* How many loop devices have a backing file whose path starts with
 * prefix; with clear, unbinds them too. */
static int
loops_backing(const char *prefix, bool clear)
{
	DIR *d = opendir("/sys/block");
	struct dirent *de;
	int count = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[300], back[PATH_MAX], dev[300];
		FILE *fp;

		if (strncmp(de->d_name, "loop", 4) != 0)
			continue;
		snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file",
		    de->d_name);
		fp = fopen(path, "r");
		if (fp == NULL)
			continue;
		if (fgets(back, sizeof(back), fp) != NULL &&
		    strncmp(back, prefix, strlen(prefix)) == 0) {
			count++;
			if (clear) {
				int fd;
				snprintf(dev, sizeof(dev), "/dev/%s",
				    de->d_name);
				fd = open(dev, O_RDONLY);
				if (fd >= 0) {
					(void)ioctl(fd, LOOP_CLR_FD, 0);
					close(fd);
				}
			}
		}
		fclose(fp);
	}
	closedir(d);
	return count;
}

/* Autoclear can finish a moment after the unmount returns. */
static int
loops_backing_settled(const char *prefix)
{
	int i, n = 0;

	for (i = 0; i < 100; i++) {
		if ((n = loops_backing(prefix, false)) == 0)
			return 0;
		usleep(10000);
	}
	return n;
}

/* True when mountinfo has a mount point starting with prefix. */
static bool
mounted_under(const char *prefix)
{
	FILE *fp = fopen("/proc/self/mountinfo", "r");
	char line[4096];
	bool found = false;

	if (fp == NULL)
		return false;
	while (fgets(line, sizeof(line), fp) != NULL) {
		char mp[4096];
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 &&
		    strncmp(mp, prefix, strlen(prefix)) == 0)
			found = true;
	}
	fclose(fp);
	return found;
}

/* Binds img to a loop device (read-only, with or without autoclear) and
 * returns the open device fd; dev gets its path. */
static int
loop_bind(const char *img, bool ro, bool autoclear, char *dev, size_t n)
{
	int ctl, lfd = -1, ifd, i;

	ifd = open(img, ro ? O_RDONLY : O_RDWR);
	if (ifd < 0)
		return -1;
	ctl = open("/dev/loop-control", O_RDWR);
	for (i = 0; ctl >= 0 && i < 16; i++) {
		struct loop_config cfg;
		int num = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (num < 0)
			break;
		snprintf(dev, n, "/dev/loop%d", num);
		lfd = open(dev, O_RDWR);
		if (lfd < 0)
			continue;
		memset(&cfg, 0, sizeof(cfg));
		cfg.fd = (unsigned)ifd;
		cfg.info.lo_flags = (ro ? LO_FLAGS_READ_ONLY : 0) |
		    (autoclear ? LO_FLAGS_AUTOCLEAR : 0);
		if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0)
			break;
		close(lfd);
		lfd = -1;
	}
	if (ctl >= 0)
		close(ctl);
	close(ifd);
	return lfd;
}

/* Mounts the image read-only at where, without any key. */
static void
mount_ro(const char *img, const char *where)
{
	char dev[64];
	int lfd;

	assert_int_equal(mkdir(where, 0700) == 0 || errno == EEXIST, 1);
	lfd = loop_bind(img, true, true, dev, sizeof(dev));
	assert_true(lfd >= 0);
	if (mount(dev, where, "ext4", MS_RDONLY | MS_NOSUID | MS_NODEV,
	    NULL) != 0) {
		int e = errno;
		close(lfd);
		fail_msg("mount %s: %s", dev, strerror(e));
	}
	close(lfd);	/* autoclear at unmount */
}

/* The fscrypt key status (FSCRYPT_KEY_STATUS_*) for the policy of dir. */
static int
key_status(const char *dir)
{
	struct fscrypt_get_policy_ex_arg pa;
	struct fscrypt_get_key_status_arg ks;
	int fd = open(dir, O_RDONLY | O_DIRECTORY);

	if (fd < 0)
		return -1;
	memset(&pa, 0, sizeof(pa));
	pa.policy_size = sizeof(pa.policy);
	if (ioctl(fd, FS_IOC_GET_ENCRYPTION_POLICY_EX, &pa) != 0 ||
	    pa.policy.version != FSCRYPT_POLICY_V2) {
		close(fd);
		return -1;
	}
	memset(&ks, 0, sizeof(ks));
	ks.key_spec.type = FSCRYPT_KEY_SPEC_TYPE_IDENTIFIER;
	memcpy(ks.key_spec.u.identifier, pa.policy.v2.master_key_identifier,
	    FSCRYPT_KEY_IDENTIFIER_SIZE);
	if (ioctl(fd, FS_IOC_GET_ENCRYPTION_KEY_STATUS, &ks) != 0) {
		close(fd);
		return -1;
	}
	close(fd);
	return (int)ks.status;
}

static void
write_file(const char *dir, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fsync(fd), 0);
	close(fd);
}

/* Reads dir/name into out (up to n); returns bytes or -errno. */
static ssize_t
read_file(const char *dir, const char *name, void *out, size_t n)
{
	char path[PATH_MAX];
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	got = read(fd, out, n);
	if (got < 0)
		got = -errno;
	close(fd);
	return got;
}

/* True when the file's bytes contain needle. */
static bool
file_contains(const char *path, const void *needle, size_t nlen)
{
	struct stat st;
	unsigned char *data;
	bool found = false;
	int fd = open(path, O_RDONLY);
	size_t off = 0;

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	data = malloc((size_t)st.st_size);
	assert_non_null(data);
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, data + off, (size_t)st.st_size - off);
		assert_true(n > 0);
		off += (size_t)n;
	}
	close(fd);
	found = memmem(data, off, needle, nlen) != NULL;
	free(data);
	return found;
}

/* Names in dir other than . and .. (and lost+found); returns the count and
 * whether want was among them. */
static int
list_names(const char *dir, const char *want, bool *has)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	*has = false;
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		if (strcmp(de->d_name, want) == 0)
			*has = true;
	}
	closedir(d);
	return n;
}

static int
setup(void **state)
{
	struct fx *f;
	size_t i;

	if (!can_run)
		return 0;
	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/moat-vol-XXXXXX", base_dir);
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->vols, sizeof(f->vols), "%s/images", f->dir);
	snprintf(f->mnts, sizeof(f->mnts), "%s/mnt", f->dir);
	snprintf(f->ro, sizeof(f->ro), "%s/ro", f->dir);
	snprintf(f->ro2, sizeof(f->ro2), "%s/ro2", f->dir);
	f->p.volumes_dir = f->vols;
	f->p.mount_dir = f->mnts;
	for (i = 0; i < VOLUME_KEY_LEN; i++) {
		f->key[i] = (uint8_t)(i * 7 + 1);
		f->key2[i] = (uint8_t)(0xa5 ^ i);
	}
	for (i = 0; i + 1 < sizeof(f->content); i++)
		f->content[i] = "moat-at-rest-canary-0123456789"[i % 30];
	f->content[sizeof(f->content) - 1] = '\n';
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	char **ids = NULL;
	size_t n = 0, i;
	char err[256];

	if (f == NULL)
		return 0;
	(void)umount2(f->ro, MNT_DETACH);
	(void)umount2(f->ro2, MNT_DETACH);
	if (volume_list(&f->p, &ids, &n) == 0) {
		for (i = 0; i < n; i++)
			if (volume_destroy(&f->p, ids[i], err, sizeof(err)) != 0)
				fprintf(stderr, "teardown: %s\n", err);
		volume_ids_free(ids, n);
	}
	/* Whatever a failed test left mounted or bound in our directory. */
	for (i = 0; i < 8 && mounted_under(f->dir); i++) {
		FILE *fp = fopen("/proc/self/mountinfo", "r");
		char line[4096], mp[4096];
		while (fp != NULL && fgets(line, sizeof(line), fp) != NULL)
			if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 &&
			    strncmp(mp, f->dir, strlen(f->dir)) == 0)
				(void)umount2(mp, MNT_DETACH);
		if (fp != NULL)
			fclose(fp);
	}
	(void)loops_backing(f->dir, true);
	nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

#define NEED_ROOT() do { if (!can_run) { skip(); } } while (0)

/* ---- tests -------------------------------------------------------------- */

static void
test_roundtrip_at_rest(void **state)
{
	struct fx *f = *state;
	char err[512], home[PATH_MAX], home2[PATH_MAX], img[PATH_MAX];
	char rohome[PATH_MAX], buf[sizeof(f->content)];
	struct stat st;
	bool has;
	int n;

	NEED_ROOT();
	img_path(f, ID_A, img, sizeof(img));
	assert_int_equal(volume_create(&f->p, ID_A, 32 * MiB, f->key, false,
	    101000, 101000, err, sizeof(err)), 0);
	assert_int_equal(stat(img, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(st.st_size == (off_t)(32 * MiB));
	assert_false(volume_is_attached(&f->p, ID_A));

	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, home,
	    sizeof(home), err, sizeof(err)), 0);
	assert_true(volume_is_attached(&f->p, ID_A));
	assert_non_null(strstr(home, ID_A "/home"));
	assert_int_equal(stat(home, &st), 0);
	assert_int_equal(st.st_uid, 101000);
	assert_int_equal(st.st_gid, 101000);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(key_status(home), FSCRYPT_KEY_STATUS_PRESENT);
	write_file(home, SECRET_NAME, f->content, sizeof(f->content));
	assert_int_equal(list_names(home, SECRET_NAME, &has), 1);
	assert_true(has);

	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
	assert_false(volume_is_attached(&f->p, ID_A));
	assert_int_equal(loops_backing_settled(img), 0);

	/* The host's view without the key. */
	mount_ro(img, f->ro);
	snprintf(rohome, sizeof(rohome), "%s/home", f->ro);
	assert_int_equal(key_status(rohome), FSCRYPT_KEY_STATUS_ABSENT);
	n = list_names(rohome, SECRET_NAME, &has);
	assert_int_equal(n, 1);
	assert_false(has);
	{
		DIR *d = opendir(rohome);
		struct dirent *de;
		ssize_t got = 0;
		while ((de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				got = read_file(rohome, de->d_name, buf,
				    sizeof(buf));
		closedir(d);
		assert_int_equal(got, -ENOKEY);
	}
	assert_int_equal(umount2(f->ro, 0), 0);
	assert_int_equal(loops_backing_settled(img), 0);
	assert_false(file_contains(img, f->content, 64));
	assert_false(file_contains(img, SECRET_NAME, strlen(SECRET_NAME)));

	/* With the key again. */
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, home2,
	    sizeof(home2), err, sizeof(err)), 0);
	assert_string_equal(home, home2);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(read_file(home2, SECRET_NAME, buf, sizeof(buf)),
	    (ssize_t)sizeof(buf));
	assert_memory_equal(buf, f->content, sizeof(buf));
	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
}

/*
 * Another mount of the same filesystem (a container's bind) can keep it
 * alive past moatd's unmount. The key must be gone from the kernel anyway:
 * detach removes it before unmounting.
 */
static void
test_key_removed_while_fs_held(void **state)
{
	struct fx *f = *state;
	char err[512], home[PATH_MAX], img[PATH_MAX], mnt[PATH_MAX];
	char h2[PATH_MAX], buf[64];
	bool has;

	NEED_ROOT();
	img_path(f, ID_A, img, sizeof(img));
	snprintf(mnt, sizeof(mnt), "%s/%s", f->mnts, ID_A);
	snprintf(h2, sizeof(h2), "%s/home", f->ro2);
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB, f->key, false,
	    0, 0, err, sizeof(err)), 0);
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, home,
	    sizeof(home), err, sizeof(err)), 0);
	write_file(home, SECRET_NAME, "hello", 5);
	assert_int_equal(mkdir(f->ro2, 0700), 0);
	assert_int_equal(mount(mnt, f->ro2, NULL, MS_BIND, NULL), 0);
	assert_int_equal(key_status(h2), FSCRYPT_KEY_STATUS_PRESENT);

	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
	assert_false(volume_is_attached(&f->p, ID_A));
	assert_int_equal(key_status(h2), FSCRYPT_KEY_STATUS_ABSENT);
	assert_int_equal(list_names(h2, SECRET_NAME, &has), 1);
	assert_false(has);
	assert_int_equal(read_file(h2, SECRET_NAME, buf, sizeof(buf)),
	    -ENOENT);

	assert_int_equal(umount2(f->ro2, 0), 0);
	assert_int_equal(loops_backing_settled(img), 0);
}

/*
 * When the home directory itself is still in use (a container that was not
 * removed before detach), the kernel can only wipe the master key: the key
 * is "incompletely removed" and no file not already open can be read.
 */
static void
test_key_removed_home_busy(void **state)
{
	struct fx *f = *state;
	char err[512], home[PATH_MAX], img[PATH_MAX], buf[64];

	NEED_ROOT();
	img_path(f, ID_A, img, sizeof(img));
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB, f->key, false,
	    0, 0, err, sizeof(err)), 0);
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, home,
	    sizeof(home), err, sizeof(err)), 0);
	write_file(home, SECRET_NAME, "hello", 5);
	assert_int_equal(mkdir(f->ro2, 0700), 0);
	assert_int_equal(mount(home, f->ro2, NULL, MS_BIND, NULL), 0);
	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
	assert_int_equal(key_status(f->ro2),
	    FSCRYPT_KEY_STATUS_INCOMPLETELY_REMOVED);
	assert_true(read_file(f->ro2, SECRET_NAME, buf, sizeof(buf)) < 0);
	assert_int_equal(umount2(f->ro2, 0), 0);
	assert_int_equal(loops_backing_settled(img), 0);
}

/*
 * A file still open in home makes the unmount lazy; the filesystem then
 * lives on until it is closed, and attaching meanwhile would put a second
 * ext4 instance on one image: refused until the old one is gone.
 */
static void
test_busy_detach(void **state)
{
	struct fx *f = *state;
	char err[512], home[PATH_MAX], img[PATH_MAX], path[PATH_MAX + 16];
	char buf[8];
	int fd;

	NEED_ROOT();
	img_path(f, ID_A, img, sizeof(img));
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB, f->key, false,
	    0, 0, err, sizeof(err)), 0);
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, home,
	    sizeof(home), err, sizeof(err)), 0);
	write_file(home, "kept", "kept", 4);
	snprintf(path, sizeof(path), "%s/open", home);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
	assert_false(volume_is_attached(&f->p, ID_A));
	assert_false(mounted_under(f->mnts));
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, home,
	    sizeof(home), err, sizeof(err)), MOAT_ERR_AGAIN);
	assert_false(volume_is_attached(&f->p, ID_A));
	close(fd);
	assert_int_equal(loops_backing_settled(img), 0);
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, home,
	    sizeof(home), err, sizeof(err)), 0);
	assert_int_equal(read_file(home, "kept", buf, sizeof(buf)), 4);
	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
}

static void
test_idempotent(void **state)
{
	struct fx *f = *state;
	char err[512], h1[PATH_MAX], h2[PATH_MAX], img[PATH_MAX];

	NEED_ROOT();
	img_path(f, ID_A, img, sizeof(img));
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, h1,
	    sizeof(h1), err, sizeof(err)), MOAT_ERR_NOTFOUND);
	assert_false(volume_is_attached(&f->p, ID_A));
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB, f->key, false,
	    0, 0, err, sizeof(err)), 0);
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB, f->key, false,
	    0, 0, err, sizeof(err)), MOAT_ERR_EXISTS);
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, h1,
	    sizeof(h1), err, sizeof(err)), 0);
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, h2,
	    sizeof(h2), err, sizeof(err)), 0);
	assert_string_equal(h1, h2);
	assert_int_equal(key_status(h1), FSCRYPT_KEY_STATUS_PRESENT);
	assert_int_equal(loops_backing(img, false), 1);	/* not twice */
	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
	assert_false(volume_is_attached(&f->p, ID_A));
	assert_int_equal(volume_destroy(&f->p, ID_A, err, sizeof(err)), 0);
	assert_int_equal(volume_destroy(&f->p, ID_A, err, sizeof(err)), 0);
	assert_int_equal(volume_destroy(&f->p, ID_B, err, sizeof(err)), 0);
	assert_int_equal(volume_detach(&f->p, ID_B, err, sizeof(err)), 0);
	assert_int_equal(access(img, F_OK), -1);
}

/* Decision (volume.h): a wrong key is refused at attach with
 * MOAT_ERR_CRYPTO, and the volume is left as it was. */
static void
test_wrong_key(void **state)
{
	struct fx *f = *state;
	char err[512], home[PATH_MAX], img[PATH_MAX];

	NEED_ROOT();
	img_path(f, ID_A, img, sizeof(img));
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB, f->key, false,
	    0, 0, err, sizeof(err)), 0);
	err[0] = '\0';
	assert_int_equal(volume_attach(&f->p, ID_A, f->key2, false, home,
	    sizeof(home), err, sizeof(err)), MOAT_ERR_CRYPTO);
	assert_non_null(strstr(err, "does not match"));
	assert_false(volume_is_attached(&f->p, ID_A));
	assert_int_equal(loops_backing_settled(img), 0);
	/* Encrypted volume attached as plain: refused too. */
	assert_int_equal(volume_attach(&f->p, ID_A, NULL, true, home,
	    sizeof(home), err, sizeof(err)), MOAT_ERR_INVAL);
	assert_false(volume_is_attached(&f->p, ID_A));

	/* While attached with the right key, a wrong one changes nothing. */
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, home,
	    sizeof(home), err, sizeof(err)), 0);
	write_file(home, "x", "1", 1);
	assert_int_equal(volume_attach(&f->p, ID_A, f->key2, false, home,
	    sizeof(home), err, sizeof(err)), MOAT_ERR_CRYPTO);
	assert_true(volume_is_attached(&f->p, ID_A));
	assert_int_equal(key_status(home), FSCRYPT_KEY_STATUS_PRESENT);
	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
}

static void
test_destroy_leaves_nothing(void **state)
{
	struct fx *f = *state;
	char err[512], home[PATH_MAX], img[PATH_MAX], mnt[PATH_MAX];
	char **ids = NULL;
	size_t n = 9;

	NEED_ROOT();
	img_path(f, ID_A, img, sizeof(img));
	snprintf(mnt, sizeof(mnt), "%s/%s", f->mnts, ID_A);
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB, f->key, false,
	    0, 0, err, sizeof(err)), 0);
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, home,
	    sizeof(home), err, sizeof(err)), 0);
	write_file(home, SECRET_NAME, "bye", 3);
	assert_int_equal(volume_destroy(&f->p, ID_A, err, sizeof(err)), 0);
	assert_int_equal(access(img, F_OK), -1);
	assert_int_equal(access(mnt, F_OK), -1);
	assert_false(mounted_under(f->mnts));
	assert_int_equal(loops_backing_settled(f->dir), 0);
	assert_int_equal(volume_list(&f->p, &ids, &n), 0);
	assert_int_equal(n, 0);
	volume_ids_free(ids, n);
}

static void
test_list_orphans(void **state)
{
	struct fx *f = *state;
	char err[512], home[PATH_MAX], path[PATH_MAX];
	char **ids = NULL;
	size_t n = 0;
	int fd;

	NEED_ROOT();
	assert_int_equal(volume_list(&f->p, &ids, &n), 0);	/* no dirs */
	assert_int_equal(n, 0);
	volume_ids_free(ids, n);
	assert_int_equal(volume_create(&f->p, ID_B, 16 * MiB, NULL, true, 0,
	    0, err, sizeof(err)), 0);
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB, f->key, false,
	    0, 0, err, sizeof(err)), 0);
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, home,
	    sizeof(home), err, sizeof(err)), 0);
	/* A mount directory left behind by a crash. */
	snprintf(path, sizeof(path), "%s/%s", f->mnts, ID_C);
	assert_int_equal(mkdir(path, 0700), 0);
	/* Names that are no workspace ids. */
	snprintf(path, sizeof(path), "%s/NOTHEX.img", f->vols);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/abc.tmp", f->vols);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/.hidden", f->mnts);
	assert_int_equal(mkdir(path, 0700), 0);

	assert_int_equal(volume_list(&f->p, &ids, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(ids[0], ID_C);
	assert_string_equal(ids[1], ID_A);
	assert_string_equal(ids[2], ID_B);
	volume_ids_free(ids, n);
	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
}

/* A crash can leave a loop device bound without autoclear and a mount
 * nobody recorded; detach and destroy clean up both. */
static void
test_crash_leftovers(void **state)
{
	struct fx *f = *state;
	char err[512], img[PATH_MAX], mnt[PATH_MAX], dev[64];
	char **ids = NULL;
	size_t n = 0;
	int lfd;

	NEED_ROOT();
	img_path(f, ID_A, img, sizeof(img));
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB, f->key, false,
	    0, 0, err, sizeof(err)), 0);
	lfd = loop_bind(img, false, false, dev, sizeof(dev));
	assert_true(lfd >= 0);
	close(lfd);
	assert_int_equal(loops_backing(img, false), 1);
	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
	assert_int_equal(loops_backing_settled(img), 0);

	/* A mount under MOUNT_DIR with no key (crash after mount). */
	snprintf(mnt, sizeof(mnt), "%s/%s", f->mnts, ID_A);
	assert_int_equal(mkdir(f->mnts, 0700) == 0 || errno == EEXIST, 1);
	mount_ro(img, mnt);
	assert_true(volume_is_attached(&f->p, ID_A));
	assert_int_equal(unlink(img), 0);	/* and the image is gone */
	assert_int_equal(volume_list(&f->p, &ids, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(ids[0], ID_A);
	volume_ids_free(ids, n);
	assert_int_equal(volume_destroy(&f->p, ID_A, err, sizeof(err)), 0);
	assert_false(volume_is_attached(&f->p, ID_A));
	assert_false(mounted_under(f->mnts));
	assert_int_equal(loops_backing_settled(f->dir), 0);
}

static void
test_size_bound(void **state)
{
	struct fx *f = *state;
	char err[512], home[PATH_MAX], path[PATH_MAX + 16], img[PATH_MAX];
	static char chunk[1 << 20];
	struct stat st;
	int fd, i, e = 0;

	NEED_ROOT();
	img_path(f, ID_A, img, sizeof(img));
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB, f->key, false,
	    0, 0, err, sizeof(err)), 0);
	assert_int_equal(volume_attach(&f->p, ID_A, f->key, false, home,
	    sizeof(home), err, sizeof(err)), 0);
	memset(chunk, 'z', sizeof(chunk));
	snprintf(path, sizeof(path), "%s/big", home);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	for (i = 0; i < 24 && e == 0; i++) {
		size_t off = 0;
		while (off < sizeof(chunk)) {
			ssize_t w = write(fd, chunk + off, sizeof(chunk) - off);
			if (w < 0) {
				e = errno;
				break;
			}
			off += (size_t)w;
		}
	}
	if (e == 0 && fsync(fd) != 0)
		e = errno;
	close(fd);
	assert_int_equal(e, ENOSPC);
	assert_true(i <= 16);
	assert_int_equal(stat(img, &st), 0);
	assert_true(st.st_size == (off_t)(16 * MiB));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(volume_detach(&f->p, ID_A, err, sizeof(err)), 0);
}

/* --insecure-plain-volumes: same volume, no policy. The plaintext check of
 * the roundtrip test must find what it looks for here. */
static void
test_plain(void **state)
{
	struct fx *f = *state;
	char err[512], home[PATH_MAX], img[PATH_MAX], rohome[PATH_MAX];
	char buf[16];
	bool has;

	NEED_ROOT();
	img_path(f, ID_B, img, sizeof(img));
	assert_int_equal(volume_create(&f->p, ID_B, 16 * MiB, NULL, true, 4242,
	    4343, err, sizeof(err)), 0);
	assert_int_equal(volume_attach(&f->p, ID_B, f->key, false, home,
	    sizeof(home), err, sizeof(err)), MOAT_ERR_CORRUPT);
	assert_false(volume_is_attached(&f->p, ID_B));
	assert_int_equal(volume_attach(&f->p, ID_B, NULL, true, home,
	    sizeof(home), err, sizeof(err)), 0);
	assert_int_equal(key_status(home), -1);	/* no policy */
	write_file(home, SECRET_NAME, f->content, sizeof(f->content));
	assert_int_equal(volume_detach(&f->p, ID_B, err, sizeof(err)), 0);
	mount_ro(img, f->ro);
	snprintf(rohome, sizeof(rohome), "%s/home", f->ro);
	assert_int_equal(list_names(rohome, SECRET_NAME, &has), 1);
	assert_true(has);
	assert_int_equal(read_file(rohome, SECRET_NAME, buf, sizeof(buf)),
	    (ssize_t)sizeof(buf));
	assert_int_equal(umount2(f->ro, 0), 0);
	assert_int_equal(loops_backing_settled(img), 0);
	assert_true(file_contains(img, f->content, 64));
	assert_true(file_contains(img, SECRET_NAME, strlen(SECRET_NAME)));
	assert_int_equal(volume_destroy(&f->p, ID_B, err, sizeof(err)), 0);
}

/* A host disk too small for the image: refused up front, nothing left. */
static void
test_host_disk_full(void **state)
{
	struct fx *f = *state;
	char err[512], small[128], vols[160], mnts[160];
	struct volume_paths sp = { vols, mnts };
	bool has;

	NEED_ROOT();
	snprintf(small, sizeof(small), "%s/small", f->dir);
	snprintf(vols, sizeof(vols), "%s/images", small);
	snprintf(mnts, sizeof(mnts), "%s/mnt", small);
	assert_int_equal(mkdir(small, 0700), 0);
	assert_int_equal(mount("tmpfs", small, "tmpfs", MS_NOSUID | MS_NODEV,
	    "size=8m,mode=0700"), 0);
	err[0] = '\0';
	assert_int_equal(volume_create(&sp, ID_A, 16 * MiB, f->key, false, 0,
	    0, err, sizeof(err)), MOAT_ERR_NOSPACE);
	assert_true(err[0] != '\0' && strchr(err, '\n') == NULL);
	assert_int_equal(list_names(vols, "", &has), 0);
	assert_int_equal(umount2(small, 0), 0);
}

static void
test_invalid_args(void **state)
{
	struct fx *f = *state;
	static const char *const bad[] = {
		"", "../etc", "ABCDEF", "a/b", "0123456789abcdeg", ".",
		"00000000000000000000000000000000000000000000000000000000000000000",
	};
	struct volume_paths rel = { "images", "mnt" };
	char err[512], home[PATH_MAX];
	char **ids;
	size_t i, n;

	NEED_ROOT();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(volume_create(&f->p, bad[i], 16 * MiB, f->key,
		    false, 0, 0, err, sizeof(err)), MOAT_ERR_INVAL);
		assert_int_equal(volume_attach(&f->p, bad[i], f->key, false,
		    home, sizeof(home), err, sizeof(err)), MOAT_ERR_INVAL);
		assert_int_equal(volume_detach(&f->p, bad[i], err,
		    sizeof(err)), MOAT_ERR_INVAL);
		assert_int_equal(volume_destroy(&f->p, bad[i], err,
		    sizeof(err)), MOAT_ERR_INVAL);
		assert_false(volume_is_attached(&f->p, bad[i]));
	}
	assert_int_equal(volume_create(&f->p, NULL, 16 * MiB, f->key, false,
	    0, 0, err, sizeof(err)), MOAT_ERR_INVAL);
	/* 64 hex characters is the longest id. */
	assert_int_equal(volume_destroy(&f->p, "0000000000000000000000000000"
	    "000000000000000000000000000000000000", err, sizeof(err)), 0);
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB - 1, f->key,
	    false, 0, 0, err, sizeof(err)), MOAT_ERR_INVAL);
	assert_int_equal(volume_create(&f->p, ID_A, 16 * MiB, NULL, false, 0,
	    0, err, sizeof(err)), MOAT_ERR_INVAL);
	assert_int_equal(volume_create(&rel, ID_A, 16 * MiB, f->key, false, 0,
	    0, err, sizeof(err)), MOAT_ERR_INVAL);
	assert_int_equal(volume_list(&rel, &ids, &n), MOAT_ERR_INVAL);
	assert_int_equal(access(f->vols, F_OK), -1);	/* nothing made */
}

static void
test_fscrypt_supported(void **state)
{
	struct fx *f = *state;
	char reason[512] = "unset";
	char **ids = NULL;
	size_t n = 9;
	bool has;

	NEED_ROOT();
	assert_true(volume_fscrypt_supported(&f->p, reason, sizeof(reason)));
	assert_string_equal(reason, "");
	assert_int_equal(list_names(f->vols, "", &has), 0);
	assert_int_equal(list_names(f->mnts, "", &has), 0);
	assert_false(mounted_under(f->dir));
	assert_int_equal(loops_backing_settled(f->dir), 0);
	assert_int_equal(volume_list(&f->p, &ids, &n), 0);
	assert_int_equal(n, 0);
	volume_ids_free(ids, n);
	/* And why not, when it cannot work. */
	{
		struct volume_paths nowhere = { "/proc/nonexistent/v",
			"/proc/nonexistent/m" };
		assert_false(volume_fscrypt_supported(&nowhere, reason,
		    sizeof(reason)));
		assert_true(reason[0] != '\0');
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_roundtrip_at_rest, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_key_removed_while_fs_held,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_removed_home_busy,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_busy_detach, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_idempotent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_wrong_key, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_destroy_leaves_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_orphans, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_crash_leftovers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_size_bound, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_plain, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_disk_full, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_invalid_args, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_fscrypt_supported, setup,
		    teardown),
	};

	log_set_level(LOG_ERROR);
	if (getenv("MOAT_TEST_VOLUME_DIR") != NULL &&
	    strlen(getenv("MOAT_TEST_VOLUME_DIR")) < 40)
		base_dir = getenv("MOAT_TEST_VOLUME_DIR");
	if (geteuid() != 0)
		snprintf(skip_reason, sizeof(skip_reason), "not root");
	else if (access("/dev/loop-control", R_OK | W_OK) != 0)
		snprintf(skip_reason, sizeof(skip_reason),
		    "no /dev/loop-control");
	else
		can_run = true;
	if (!can_run)
		fprintf(stderr, "test_volume: skipping: %s\n", skip_reason);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
