/*
 * bootstrap.c - the first owner, organization, egress policy, settings
 * and workspace template of a new installation (`moatd init`).
 *
 * Order: the password file is written (exclusively, 0600) before the
 * user exists, so a password that works is never lost; if creating the
 * user then fails, the file is removed. The audit sink is opened first of
 * all: nothing is created that cannot be audited.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "audit.h"
#include "identity/bootstrap.h"
#include "identity/identity_int.h"
#include "log.h"
#include "policy.h"
#include "store/schema.h"
#include "store/store.h"
#include "templates/template.h"

#define PASSWORD_FILE "initial-admin-password"
#define ADMIN_NAME "admin"
#define DEFAULT_ORG "default"

int
identity_store_uri(const char *data_dir, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "sqlite:%s/moatd.db", data_dir);

	return n < 0 || (size_t)n >= outlen ? MOAT_ERR_TOOBIG : 0;
}

int
identity_store_open_local(const char *data_dir, struct store **out)
{
	char uri[PATH_MAX + 16];
	int r;

	*out = NULL;
	if (data_dir == NULL || data_dir[0] == '\0')
		return MOAT_ERR_INVAL;
	if ((r = identity_store_uri(data_dir, uri, sizeof(uri))) != 0)
		return r;
	return store_open(out, uri, moatd_collections, moatd_ncollections);
}

/* Inserts doc (borrowed) unless a document with its id exists. */
static int
insert_absent(struct store *st, const char *coll, json_t *doc)
{
	json_t *cur = NULL;
	int r;

	r = store_get(st, coll, json_string_value(json_object_get(doc, "id")),
	    &cur);
	json_decref(cur);
	if (r == 0)
		return 0;
	if (r != MOAT_ERR_NOTFOUND)
		return r;
	return store_insert(st, coll, doc);
}

/* The "base" workspace template on the default image, when no template
 * has that name; the first time it is created, "localhost" (Podman's
 * name for locally built images, and nothing else) joins the default
 * organization's registry allow-list so that the template is usable. An
 * existing "base", or a later choice to remove "localhost", is left
 * alone. */
static int
base_template(struct store *st, bool *created)
{
	json_t *cur = NULL, *body = NULL, *tpl = NULL, *set = NULL, *regs, *v;
	char err[200];
	bool have = false;
	size_t i;
	int r;

	r = store_find_one(st, COLL_TEMPLATES, "name", TEMPLATE_BASE_NAME, &cur);
	if (r != MOAT_ERR_NOTFOUND)
		goto out;	/* 0: there is one already */
	r = MOAT_ERR_NOMEM;
	if ((body = json_pack("{s:s, s:s}", "name", TEMPLATE_BASE_NAME, "image",
	    TEMPLATE_BASE_IMAGE)) == NULL)
		goto out;
	if ((r = template_normalize(body, NULL, DEFAULT_ORG, &tpl, err,
	    sizeof(err))) != 0) {
		log_error(IDENTITY_COMPONENT, "the base template is invalid",
		    LF_STR("reason", err));
		goto out;
	}
	if ((r = store_insert(st, COLL_TEMPLATES, tpl)) != 0)
		goto out;
	*created = true;
	if ((r = store_get(st, COLL_SETTINGS, DEFAULT_ORG, &set)) != 0)
		goto out;
	regs = json_object_get(set, "registries");
	if (!json_is_array(regs)) {
		r = MOAT_ERR_CORRUPT;
		goto out;
	}
	json_array_foreach(regs, i, v)
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), "localhost") == 0)
			have = true;
	r = 0;
	if (!have) {
		if (json_array_append_new(regs, json_string("localhost")) != 0) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
		r = store_update(st, COLL_SETTINGS, set);
	}
out:
	json_decref(cur);
	json_decref(body);
	json_decref(tpl);
	json_decref(set);
	return r;
}

/* arg: a bool set when the base template was created, or NULL. */
static int
defaults_txn(struct store *st, void *arg)
{
	json_t *org = NULL, *pol = NULL, *set = NULL;
	bool base_created = false;
	int r = MOAT_ERR_NOMEM;

	org = json_pack("{s:s, s:s}", "id", DEFAULT_ORG, "name", DEFAULT_ORG);
	pol = json_pack("{s:s, s:s, s:s, s:[], s:[]}", "id", "default", "name",
	    "default", "mode", "enforce", "allow", "deny");
	set = settings_default();
	if (org == NULL || pol == NULL || set == NULL ||
	    json_object_set_new(set, "id", json_string(DEFAULT_ORG)) != 0)
		goto out;
	if ((r = insert_absent(st, "orgs", org)) != 0 ||
	    (r = insert_absent(st, "policies", pol)) != 0 ||
	    (r = insert_absent(st, "settings", set)) != 0 ||
	    (r = base_template(st, &base_created)) != 0)
		goto out;
	if (arg != NULL)
		*(bool *)arg = base_created;
	r = 0;
out:
	json_decref(org);
	json_decref(pol);
	json_decref(set);
	return r;
}

struct admin_ctx {
	const char *hash;
	json_t *user;		/* out */
	bool base_created;	/* out */
};

static int
admin_txn(struct store *st, void *arg)
{
	struct admin_ctx *c = arg;
	int r;

	if ((r = defaults_txn(st, &c->base_created)) != 0)
		return r;
	return identity__user_insert(st, ADMIN_NAME, c->hash, DEFAULT_ORG,
	    ROLE_OWNER, &c->user);
}

/* Writes password + "\n" to DIR/initial-admin-password: 0600, O_EXCL,
 * never through a symbolic link. A stale file from an earlier admin is
 * removed first (unlinking a link removes the link, not its target). */
static int
write_password_file(const char *data_dir, const char *password)
{
	char line[64];
	int dfd = -1, fd = -1, r, n;
	size_t len, off = 0;

	n = snprintf(line, sizeof(line), "%s\n", password);
	if (n < 0 || (size_t)n >= sizeof(line))
		return MOAT_ERR_TOOBIG;
	len = (size_t)n;
	dfd = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	if (unlinkat(dfd, PASSWORD_FILE, 0) != 0 && errno != ENOENT) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	fd = openat(dfd, PASSWORD_FILE, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	/* Whatever the umask said. */
	if (fchmod(fd, 0600) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	while (off < len) {
		ssize_t k = write(fd, line + off, len - off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r = moat_err_from_errno(k < 0 ? errno : EIO);
			goto out;
		}
		off += (size_t)k;
	}
	if (fsync(fd) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	r = 0;
out:
	sodium_memzero(line, sizeof(line));
	if (fd >= 0)
		close(fd);
	if (r != 0 && fd >= 0)
		(void)unlinkat(dfd, PASSWORD_FILE, 0);
	if (dfd >= 0)
		close(dfd);
	return r;
}

static void
remove_password_file(const char *data_dir)
{
	char path[PATH_MAX];
	int n = snprintf(path, sizeof(path), "%s/%s", data_dir, PASSWORD_FILE);

	if (n > 0 && (size_t)n < sizeof(path))
		(void)unlink(path);
}

int
identity_bootstrap(const char *data_dir, char *password_out, size_t len)
{
	struct store *st = NULL;
	struct identity_audit *au = NULL;
	struct admin_ctx c = { 0 };
	char password[IDENTITY_GENERATED_PASSWORD_LEN + 1];
	char hash[128];
	json_t *existing = NULL, *ev;
	bool wrote_file = false;
	int r;

	if (password_out == NULL || len <= IDENTITY_GENERATED_PASSWORD_LEN ||
	    data_dir == NULL)
		return MOAT_ERR_INVAL;
	password_out[0] = '\0';
	if ((r = identity__global_init()) != 0)
		return r;
	if ((r = identity_store_open_local(data_dir, &st)) != 0) {
		log_error(IDENTITY_COMPONENT, "cannot open the store",
		    LF_STR("data_dir", data_dir),
		    LF_STR("error", moat_strerror(r)));
		goto out;
	}
	r = store_find_one(st, IDENTITY_USERS, "username", ADMIN_NAME, &existing);
	if (r == 0) {
		/* Keep the admin as it is; fill in what else is missing. */
		if ((r = store_transaction(st, defaults_txn, NULL)) == 0)
			r = MOAT_ERR_EXISTS;
		goto out;
	}
	if (r != MOAT_ERR_NOTFOUND)
		goto out;
	if ((r = identity__audit_open(&au, data_dir)) != 0)
		goto out;
	if ((r = identity__random_password(password, sizeof(password) - 1)) != 0 ||
	    (r = identity_password_hash(password, hash)) != 0)
		goto out;
	if ((r = write_password_file(data_dir, password)) != 0) {
		log_error(IDENTITY_COMPONENT, "cannot write the initial admin "
		    "password file", LF_STR("data_dir", data_dir),
		    LF_STR("error", moat_strerror(r)));
		goto out;
	}
	wrote_file = true;
	c.hash = hash;
	if ((r = store_transaction(st, admin_txn, &c)) != 0)
		goto out;
	wrote_file = false;	/* kept: it is the admin's password now */
	ev = audit_event_new("user.create", "success");
	if (ev != NULL && json_object_set_new(ev, "target", json_pack(
	    "{s:s, s:s}", "user", ADMIN_NAME, "id",
	    json_string_value(json_object_get(c.user, "id")))) == 0)
		(void)json_object_set_new(ev, "details", json_pack(
		    "{s:s, s:s, s:s}", "via", "moatd init", "role", "owner",
		    "org", DEFAULT_ORG));
	if ((r = identity__audit_emit(au, ev)) != 0)
		log_warn(IDENTITY_COMPONENT, "could not audit the creation of the "
		    "first admin", LF_STR("error", moat_strerror(r)));
	if (c.base_created) {
		ev = audit_event_new("template.create", "success");
		if (ev != NULL && json_object_set_new(ev, "target", json_pack(
		    "{s:s, s:s}", "type", "template", "name",
		    TEMPLATE_BASE_NAME)) == 0)
			(void)json_object_set_new(ev, "details", json_pack(
			    "{s:s, s:s, s:s}", "via", "moatd init", "image",
			    TEMPLATE_BASE_IMAGE, "registry",
			    "localhost"));
		if ((r = identity__audit_emit(au, ev)) != 0)
			log_warn(IDENTITY_COMPONENT, "could not audit the "
			    "creation of the base template",
			    LF_STR("error", moat_strerror(r)));
	}
	memcpy(password_out, password, sizeof(password));
	log_info(IDENTITY_COMPONENT, "created the first owner",
	    LF_STR("user", ADMIN_NAME), LF_SECRET("password"));
	r = 0;
out:
	if (wrote_file)
		remove_password_file(data_dir);
	sodium_memzero(password, sizeof(password));
	sodium_memzero(hash, sizeof(hash));
	if (identity__audit_close(au) != 0)
		log_warn(IDENTITY_COMPONENT, "the audit chain was not closed cleanly");
	json_decref(existing);
	json_decref(c.user);
	store_close(st);
	return r;
}
