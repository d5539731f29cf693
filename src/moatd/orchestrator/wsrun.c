/*
 * wsrun.c - a workspace's host-side run directories (orch_int.h):
 * RUN-DIR/ws/<id>/ro and RUN-DIR/ws/<id>/agent, each its own small tmpfs.
 *
 * ro/ is host-owned and mounted read-only into the workspace; it is the
 * only way keys reach it, and being a tmpfs they never touch the disk.
 * agent/ is the workspace's to write (only the agent socket belongs
 * there); being its own tmpfs of 1 MiB, filling it harms nothing else.
 * moatd only mounts, unmounts and removes these directories; it never
 * reads or follows anything inside agent/ (agent_client.h connects to the
 * socket safely).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "errors.h"
#include "json.h"
#include "log.h"

#include "orchestrator/orch_int.h"

#define RO_TMPFS "size=16m,nr_inodes=64,mode=0755"
#define AGENT_TMPFS "size=1m,nr_inodes=32,mode=0700"

int
orch__ws_dir(struct orch *o, const char *ws_id, const char *sub, char *out,
    size_t outlen)
{
	int n;

	if (sub != NULL)
		n = snprintf(out, outlen, "%s/ws/%s/%s", o->run_dir, ws_id, sub);
	else
		n = snprintf(out, outlen, "%s/ws/%s", o->run_dir, ws_id);
	return n < 0 || (size_t)n >= outlen ? MOAT_ERR_TOOBIG : 0;
}

/* True when path is a mount point (its device differs from its parent's). */
static bool
is_mountpoint(const char *path)
{
	char parent[PATH_MAX];
	struct stat a, b;

	if (snprintf(parent, sizeof(parent), "%s/..", path) >=
	    (int)sizeof(parent))
		return false;
	if (lstat(path, &a) != 0 || lstat(parent, &b) != 0)
		return false;
	return a.st_dev != b.st_dev;
}

static int
mkdir_mode(const char *path, mode_t mode)
{
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	return moat_err_from_errno(errno);
}

static int
mount_tmpfs(const char *path, const char *opts, uint32_t uid, char *err,
    size_t errlen)
{
	char data[160];

	if (is_mountpoint(path))
		return 0;
	snprintf(data, sizeof(data), "%s,uid=%u,gid=%u", opts, uid, uid);
	if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV,
	    data) != 0)
		return moat_fail(moat_err_from_errno(errno), err, errlen,
		    "cannot mount a tmpfs for the workspace: %s",
		    strerror(errno));
	return 0;
}

/* Writes len bytes to dir/name (new file, mode, owner uid:uid). */
static int
write_file(int dirfd, const char *name, const void *data, size_t len,
    mode_t mode, uint32_t uid, char *err, size_t errlen)
{
	const char *p = data;
	int fd, r = 0;

	(void)unlinkat(dirfd, name, 0);
	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode);
	if (fd < 0)
		return moat_fail(moat_err_from_errno(errno), err, errlen,
		    "cannot write %s in the workspace's run directory: %s",
		    name, strerror(errno));
	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			r = moat_fail(MOAT_ERR_IO, err, errlen,
			    "cannot write %s: %s", name, strerror(errno));
			goto out;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fchown(fd, uid, uid) != 0 || fchmod(fd, mode) != 0)
		r = moat_fail(MOAT_ERR_IO, err, errlen, "cannot set the owner "
		    "of %s: %s", name, strerror(errno));
out:
	close(fd);
	return r;
}

static int
copy_agent(struct orch *o, int dirfd, char *err, size_t errlen)
{
	int in = open(o->agent_binary, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	struct stat st;
	int r;

	if (in < 0)
		return moat_fail(MOAT_ERR_NOTFOUND, err, errlen,
		    "cannot open moat-agent at %s: %s", o->agent_binary,
		    strerror(errno));
	if (fstat(in, &st) != 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > 64 * 1024 * 1024) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen,
		    "moat-agent at %s is not a regular file of sane size",
		    o->agent_binary);
		goto out;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	for (off_t got = 0; got < st.st_size;) {
		ssize_t n = read(in, buf + got, (size_t)(st.st_size - got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = moat_fail(MOAT_ERR_IO, err, errlen,
			    "cannot read moat-agent");
			goto out;
		}
		got += n;
	}
	r = write_file(dirfd, "moat-agent", buf, (size_t)st.st_size, 0555, 0,
	    err, errlen);
out:
	free(buf);
	close(in);
	return r;
}

/* agent.conf: key=value lines the agent reads. Values may not contain a
 * line break (templates refuse control characters; checked again here). */
static int
build_conf(const json_t *doc, bool sudo, char **out, char *err, size_t errlen)
{
	const json_t *spec = json_object_get(doc, "spec");
	const json_t *env = json_object_get(spec, "env");
	const char *script = json_get_str(spec, "startup_script");
	const char *k;
	json_t *v;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	*out = NULL;
	if (f == NULL)
		return MOAT_ERR_NOMEM;
	fprintf(f, "user=%s\nuid=%u\nsudo=%d\nstartup=%d\nproxy_port=3128\n",
	    json_get_str(doc, "owner"), ORCH_WS_UID, sudo ? 1 : 0,
	    script != NULL && script[0] != '\0' ? 1 : 0);
	json_object_foreach((json_t *)env, k, v) {
		const char *s = json_string_value(v);

		if (s == NULL || strpbrk(s, "\r\n") != NULL) {
			fclose(f);
			free(buf);
			return moat_fail(MOAT_ERR_INVAL, err, errlen,
			    "the template's environment variable %s has a "
			    "line break", k);
		}
		fprintf(f, "env.%s=%s\n", k, s);
	}
	if (fclose(f) != 0) {
		free(buf);
		return MOAT_ERR_NOMEM;
	}
	*out = buf;
	return 0;
}

int
orch__run_prepare(struct orch *o, const json_t *doc, bool sudo, char *err,
    size_t errlen)
{
	const char *id = json_get_str(doc, "id");
	const char *script = json_get_str(json_object_get(doc, "spec"),
	    "startup_script");
	const char *apub = json_get_str(doc, "access_pub");
	uint32_t base = (uint32_t)json_integer_value(json_object_get(doc,
	    "uid_base"));
	char path[PATH_MAX], ro[PATH_MAX], ag[PATH_MAX];
	char *conf = NULL, *line = NULL;
	uint8_t *hostkey = NULL;
	size_t hklen = 0;
	int dirfd = -1, r;

	if (snprintf(path, sizeof(path), "%s/ws", o->run_dir) >=
	    (int)sizeof(path))
		return moat_fail(MOAT_ERR_TOOBIG, err, errlen, "the run directory "
		    "path is too long");
	if ((r = mkdir_mode(o->run_dir, 0711)) != 0 ||
	    (r = mkdir_mode(path, 0711)) != 0 ||
	    (r = orch__ws_dir(o, id, NULL, path, sizeof(path))) != 0 ||
	    (r = mkdir_mode(path, 0711)) != 0 ||
	    (r = orch__ws_dir(o, id, "ro", ro, sizeof(ro))) != 0 ||
	    (r = orch__ws_dir(o, id, "agent", ag, sizeof(ag))) != 0 ||
	    (r = mkdir_mode(ro, 0755)) != 0 || (r = mkdir_mode(ag, 0700)) != 0) {
		moat_fail(r, err, errlen, "cannot create the workspace's run "
		    "directory under %s", o->run_dir);
		goto out;
	}
	if ((r = mount_tmpfs(ro, RO_TMPFS, base, err, errlen)) != 0 ||
	    (r = mount_tmpfs(ag, AGENT_TMPFS, base, err, errlen)) != 0)
		goto out;
	if ((dirfd = open(ro, O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) < 0) {
		r = moat_fail(moat_err_from_errno(errno), err, errlen,
		    "cannot open %s", ro);
		goto out;
	}
	if ((r = copy_agent(o, dirfd, err, errlen)) != 0 ||
	    (r = build_conf(doc, sudo, &conf, err, errlen)) != 0 ||
	    (r = write_file(dirfd, "agent.conf", conf, strlen(conf), 0444,
	    base, err, errlen)) != 0)
		goto out;
	if (script != NULL && script[0] != '\0') {
		if ((r = write_file(dirfd, "startup.sh", script, strlen(script),
		    0555, base, err, errlen)) != 0)
			goto out;
	} else {
		(void)unlinkat(dirfd, "startup.sh", 0);
	}
	if (apub == NULL) {
		r = moat_fail(MOAT_ERR_CORRUPT, err, errlen,
		    "the workspace has no access key");
		goto out;
	}
	if (asprintf(&line, "%s moat-gateway\n", apub) < 0) {
		line = NULL;
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((r = write_file(dirfd, "authorized_keys", line, strlen(line), 0644,
	    base, err, errlen)) != 0)
		goto out;
	if ((r = orch__unseal(o, doc, "host_key", &hostkey, &hklen)) != 0) {
		moat_fail(r, err, errlen, "cannot open the workspace's host key");
		goto out;
	}
	r = write_file(dirfd, "ssh_host_ed25519_key", hostkey, hklen, 0600,
	    base, err, errlen);
out:
	if (hostkey != NULL) {
		sodium_memzero(hostkey, hklen);
		free(hostkey);
	}
	free(conf);
	free(line);
	if (dirfd >= 0)
		close(dirfd);
	return r;
}

static int
unmount_rm(const char *path)
{
	if (is_mountpoint(path) && umount2(path, MNT_DETACH) != 0)
		return moat_err_from_errno(errno);
	if (rmdir(path) != 0 && errno != ENOENT)
		return moat_err_from_errno(errno);
	return 0;
}

int
orch__run_teardown(struct orch *o, const char *ws_id)
{
	char path[PATH_MAX];
	int r;

	if ((r = orch__ws_dir(o, ws_id, "ro", path, sizeof(path))) != 0 ||
	    (r = unmount_rm(path)) != 0 ||
	    (r = orch__ws_dir(o, ws_id, "agent", path, sizeof(path))) != 0 ||
	    (r = unmount_rm(path)) != 0 ||
	    (r = orch__ws_dir(o, ws_id, NULL, path, sizeof(path))) != 0)
		return r;
	if (rmdir(path) != 0 && errno != ENOENT)
		return moat_err_from_errno(errno);
	return 0;
}

int
orch__run_list(struct orch *o, char ***ids, size_t *n)
{
	char path[PATH_MAX];
	DIR *d;
	struct dirent *de;
	char **v = NULL;
	size_t cnt = 0;

	*ids = NULL;
	*n = 0;
	if (snprintf(path, sizeof(path), "%s/ws", o->run_dir) >=
	    (int)sizeof(path))
		return MOAT_ERR_TOOBIG;
	if ((d = opendir(path)) == NULL)
		return errno == ENOENT ? 0 : moat_err_from_errno(errno);
	while ((de = readdir(d)) != NULL) {
		char **nv;

		if (de->d_name[0] == '.')
			continue;
		if ((nv = realloc(v, (cnt + 1) * sizeof(*v))) == NULL ||
		    (nv[cnt] = strdup(de->d_name)) == NULL) {
			if (nv != NULL)
				v = nv;
			volume_ids_free(v, cnt);
			closedir(d);
			return MOAT_ERR_NOMEM;
		}
		v = nv;
		cnt++;
	}
	closedir(d);
	*ids = v;
	*n = cnt;
	return 0;
}
