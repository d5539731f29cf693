/*
 * cli_config.c - the moat CLI's config file (see cli_config.h for the
 * shape and the safety rules): load with checks of owner, mode, size and
 * shape; save atomically with mode 0600.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_config.h"
#include "fdio.h"

#define CONFIG_VERSION 1

int
cli_config_default_path(char *out, size_t outlen)
{
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	int n;

	if (xdg != NULL && xdg[0] == '/')
		n = snprintf(out, outlen, "%s/moat/config.json", xdg);
	else if (home != NULL && home[0] == '/')
		n = snprintf(out, outlen, "%s/.config/moat/config.json", home);
	else
		return MOAT_ERR_INVAL;
	if (n < 0 || (size_t)n >= outlen)
		return MOAT_ERR_TOOBIG;
	return 0;
}

int
cli_config_check_name(const char *name)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n == 0 || n > 64)
		return MOAT_ERR_INVAL;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == ':' || c == '-'))
			return MOAT_ERR_INVAL;
	}
	return 0;
}

static bool
opt_str(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	return v == NULL || json_is_string(v);
}

/* Checks the document's shape; err names the first problem. */
static int
config_check(const json_t *root, char *err, size_t errlen)
{
	static const char *const strs[] = { "username", "token_id",
	    "token_name", "ca_pem", "fingerprint", "cert_pem" };
	const json_t *servers, *cur, *s, *v;
	const char *name, *trust;

	if (!json_is_object(root)) {
		snprintf(err, errlen, "not a JSON object");
		return MOAT_ERR_CORRUPT;
	}
	v = json_object_get(root, "version");
	if (!json_is_integer(v) || json_integer_value(v) != CONFIG_VERSION) {
		snprintf(err, errlen, "\"version\" is not %d", CONFIG_VERSION);
		return MOAT_ERR_CORRUPT;
	}
	servers = json_object_get(root, "servers");
	if (!json_is_object(servers)) {
		snprintf(err, errlen, "\"servers\" is not an object");
		return MOAT_ERR_CORRUPT;
	}
	json_object_foreach((json_t *)servers, name, s) {
		const char *url;

		if (cli_config_check_name(name) != 0 || !json_is_object(s)) {
			snprintf(err, errlen, "server entry '%.64s' is "
			    "malformed", name);
			return MOAT_ERR_CORRUPT;
		}
		url = json_string_value(json_object_get(s, "url"));
		trust = json_string_value(json_object_get(s, "trust"));
		if (url == NULL || strncmp(url, "https://", 8) != 0 ||
		    !json_is_string(json_object_get(s, "token")) ||
		    trust == NULL) {
			snprintf(err, errlen, "server '%s' lacks \"url\", "
			    "\"token\" or \"trust\"", name);
			return MOAT_ERR_CORRUPT;
		}
		for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
			if (!opt_str(s, strs[i])) {
				snprintf(err, errlen, "server '%s': \"%s\" is "
				    "not a string", name, strs[i]);
				return MOAT_ERR_CORRUPT;
			}
		}
		if (!(strcmp(trust, "system") == 0 ||
		    (strcmp(trust, "ca") == 0 &&
		    json_is_string(json_object_get(s, "ca_pem"))) ||
		    (strcmp(trust, "pin") == 0 &&
		    json_is_string(json_object_get(s, "fingerprint"))))) {
			snprintf(err, errlen, "server '%s': \"trust\" is not "
			    "system, ca (with ca_pem) or pin (with "
			    "fingerprint)", name);
			return MOAT_ERR_CORRUPT;
		}
	}
	cur = json_object_get(root, "current");
	if (cur != NULL && !json_is_null(cur) && (!json_is_string(cur) ||
	    json_object_get(servers, json_string_value(cur)) == NULL)) {
		snprintf(err, errlen, "\"current\" names no known server");
		return MOAT_ERR_CORRUPT;
	}
	return 0;
}

static struct cli_config *
config_new(const char *path, json_t *root)
{
	struct cli_config *c = calloc(1, sizeof(*c));

	if (c == NULL || (c->path = strdup(path)) == NULL) {
		free(c);
		json_decref(root);
		return NULL;
	}
	c->root = root;
	c->lock_fd = -1;
	return c;
}

int
cli_config_load(const char *path, struct cli_config **out, char *err,
    size_t errlen)
{
	struct stat st;
	json_error_t jerr;
	json_t *root = NULL;
	char *data = NULL, why[160];
	size_t got = 0;
	int fd = -1, r = MOAT_ERR_IO;

	*out = NULL;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 && errno == ENOENT) {
		root = json_pack("{s:i,s:{}}", "version", CONFIG_VERSION,
		    "servers");
		if (root == NULL || (*out = config_new(path, root)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return MOAT_ERR_NOMEM;
		}
		return 0;
	}
	if (fd < 0) {
		r = errno == ELOOP ? MOAT_ERR_PERM : moat_err_from_errno(errno);
		snprintf(err, errlen, "cannot open %s: %s", path, errno ==
		    ELOOP ? "it is a symbolic link" : strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(err, errlen, "cannot stat %s: %s", path,
		    strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = MOAT_ERR_CORRUPT;
		snprintf(err, errlen, "%s is not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		r = MOAT_ERR_PERM;
		snprintf(err, errlen, "%s belongs to another user (uid %u); "
		    "it holds API tokens, so moat will not use it", path,
		    (unsigned)st.st_uid);
		goto out;
	}
	if ((st.st_mode & 077) != 0) {
		r = MOAT_ERR_PERM;
		snprintf(err, errlen, "%s is accessible by others (mode %04o) "
		    "and holds API tokens: run 'chmod 600 %s' (and revoke its "
		    "tokens if others may have read them)", path,
		    (unsigned)(st.st_mode & 07777), path);
		goto out;
	}
	if (st.st_size > CLI_CONFIG_MAX) {
		r = MOAT_ERR_TOOBIG;
		snprintf(err, errlen, "%s is larger than %d bytes", path,
		    CLI_CONFIG_MAX);
		goto out;
	}
	if ((data = malloc((size_t)st.st_size + 1)) == NULL) {
		r = MOAT_ERR_NOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "cannot read %s: %s", path,
			    n < 0 ? strerror(errno) : "short read");
			goto out;
		}
		got += (size_t)n;
	}
	root = json_loadb(data, got, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		r = MOAT_ERR_CORRUPT;
		snprintf(err, errlen, "%s is corrupt (line %d: %s); fix or "
		    "remove it, moat left it unchanged", path, jerr.line,
		    jerr.text);
		goto out;
	}
	if ((r = config_check(root, why, sizeof(why))) != 0) {
		snprintf(err, errlen, "%s is corrupt (%s); fix or remove it, "
		    "moat left it unchanged", path, why);
		goto out;
	}
	if ((*out = config_new(path, root)) == NULL) {
		root = NULL;
		r = MOAT_ERR_NOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	root = NULL;
	r = 0;
out:
	json_decref(root);
	if (data != NULL) {
		explicit_bzero(data, got);
		free(data);
	}
	if (fd >= 0)
		close(fd);
	return r;
}

/* mkdir -p for the directory of the config file; new levels get 0700. */
static int
make_dirs(const char *dir, char *err, size_t errlen)
{
	char tmp[4096];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(tmp))
		return MOAT_ERR_TOOBIG;
	memcpy(tmp, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (tmp[i] != '/' && tmp[i] != '\0')
			continue;
		tmp[i] = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create %s: %s", tmp,
			    strerror(errno));
			return moat_err_from_errno(errno);
		}
		if (i < n)
			tmp[i] = '/';
	}
	return 0;
}


/* The directory of the config file at path, into dir, made (0700) when
 * missing. */
static int
config_dir(const char *path, char *dir, size_t dirlen, char *err,
    size_t errlen)
{
	size_t n = strlen(path);

	if (n >= dirlen) {
		snprintf(err, errlen, "config path too long");
		return MOAT_ERR_TOOBIG;
	}
	memcpy(dir, path, n + 1);
	return make_dirs(dirname(dir), err, errlen);
}

int
cli_config_save(const struct cli_config *cfg, char *err, size_t errlen)
{
	char dir[4096], tmp[4200], *text = NULL;
	int fd = -1, dfd = -1, r;
	bool created = false;

	if ((r = config_dir(cfg->path, dir, sizeof(dir), err, errlen)) != 0)
		return r;
	r = MOAT_ERR_IO;
	snprintf(tmp, sizeof(tmp), "%s/.config.json.XXXXXX", dir);
	if ((text = json_dumps(cfg->root, JSON_INDENT(2) | JSON_SORT_KEYS)) ==
	    NULL) {
		r = MOAT_ERR_NOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* mkstemp creates the file with mode 0600 and O_EXCL. */
	if ((fd = mkostemp(tmp, O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "cannot create a file in %s: %s", dir,
		    strerror(errno));
		goto out;
	}
	created = true;
	if (fchmod(fd, 0600) != 0 || fd_write_all(fd, text, strlen(text)) != 0 ||
	    fd_write_all(fd, "\n", 1) != 0 || fsync(fd) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	if (close(fd) != 0) {
		fd = -1;
		snprintf(err, errlen, "cannot write %s: %s", tmp,
		    strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, cfg->path) != 0) {
		snprintf(err, errlen, "cannot replace %s: %s", cfg->path,
		    strerror(errno));
		goto out;
	}
	created = false;
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0)
		(void)fsync(dfd);
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (created)
		unlink(tmp);
	if (dfd >= 0)
		close(dfd);
	if (text != NULL) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
	return r;
}

int
cli_config_load_for_update(const char *path, bool wait,
    struct cli_config **out, char *err, size_t errlen)
{
	char lock[4200], dir[4096];
	int fd, r;

	*out = NULL;
	if ((r = config_dir(path, dir, sizeof(dir), err, errlen)) != 0)
		return r;
	if (snprintf(lock, sizeof(lock), "%s.lock", path) >= (int)sizeof(lock)) {
		snprintf(err, errlen, "config path too long");
		return MOAT_ERR_TOOBIG;
	}
	fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
	    0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", lock,
		    strerror(errno));
		return moat_err_from_errno(errno);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK || !wait) {
			snprintf(err, errlen, "%s: %s", lock, errno ==
			    EWOULDBLOCK ? "another moat command is changing "
			    "the config" : strerror(errno));
			close(fd);
			return errno == EWOULDBLOCK ? MOAT_ERR_AGAIN :
			    MOAT_ERR_IO;
		}
		fprintf(stderr, "moat: waiting for another moat command to "
		    "finish with %s\n", path);
		while ((r = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
			;
		if (r != 0) {
			snprintf(err, errlen, "%s: %s", lock, strerror(errno));
			close(fd);
			return MOAT_ERR_IO;
		}
	}
	if ((r = cli_config_load(path, out, err, errlen)) != 0) {
		close(fd);
		return r;
	}
	(*out)->lock_fd = fd;
	return 0;
}

void
cli_config_free(struct cli_config *cfg)
{
	if (cfg == NULL)
		return;
	if (cfg->lock_fd >= 0)
		close(cfg->lock_fd);	/* releases the lock */
	json_decref(cfg->root);
	free(cfg->path);
	free(cfg);
}

json_t *
cli_config_server(const struct cli_config *cfg, const char *name)
{
	if (name == NULL)
		return NULL;
	return json_object_get(json_object_get(cfg->root, "servers"), name);
}

const char *
cli_config_current(const struct cli_config *cfg)
{
	return json_string_value(json_object_get(cfg->root, "current"));
}

int
cli_config_put(struct cli_config *cfg, const char *name, json_t *server)
{
	json_t *servers = json_object_get(cfg->root, "servers");

	if (server == NULL)
		return MOAT_ERR_NOMEM;
	if (cli_config_check_name(name) != 0) {
		json_decref(server);
		return MOAT_ERR_INVAL;
	}
	if (json_object_set_new(servers, name, server) != 0)
		return MOAT_ERR_NOMEM;
	return 0;
}

int
cli_config_use(struct cli_config *cfg, const char *name)
{
	if (cli_config_server(cfg, name) == NULL)
		return MOAT_ERR_NOTFOUND;
	if (json_object_set_new(cfg->root, "current", json_string(name)) != 0)
		return MOAT_ERR_NOMEM;
	return 0;
}

int
cli_config_remove(struct cli_config *cfg, const char *name)
{
	const char *cur = cli_config_current(cfg);
	char *copy;

	if (cli_config_server(cfg, name) == NULL)
		return MOAT_ERR_NOTFOUND;
	/* name may point into the document (the "current" string). */
	if ((copy = strdup(name)) == NULL)
		return MOAT_ERR_NOMEM;
	if (cur != NULL && strcmp(cur, copy) == 0)
		json_object_del(cfg->root, "current");
	json_object_del(json_object_get(cfg->root, "servers"), copy);
	free(copy);
	return 0;
}
