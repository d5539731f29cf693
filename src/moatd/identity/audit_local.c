/*
 * audit_local.c - audit events from the identity host commands (`moatd
 * init` creating the first admin, `moatd reset-password`).
 *
 * When moatd runs, its collector socket DATA/run/audit.sock accepts the
 * event and moatd's single writer appends it (recording this process's pid
 * and uid from SO_PEERCRED). When nothing listens there, the command opens
 * the chain DATA/audit/audit.log itself with the checkpoint key from
 * DATA/secrets, appends, and closes it with a signed checkpoint; moatd
 * continues the chain from its tail at its next start. Both never happen
 * at once: the writer is opened only when the socket is missing or
 * refuses connections (a moatd starting in that very moment is the one
 * race left; the host commands are for an operator at the console).
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "identity/identity_int.h"
#include "log.h"

struct identity_audit {
	struct audit_client *client;
	struct audit_writer *writer;
};

static int
join(char *out, size_t outlen, const char *a, const char *b)
{
	int n = snprintf(out, outlen, "%s/%s", a, b);

	return n < 0 || (size_t)n >= outlen ? MOAT_ERR_TOOBIG : 0;
}

/* The key id next to the checkpoint key ("audit" when unreadable). */
static void
read_kid(const char *path, char *out, size_t outlen)
{
	FILE *f = fopen(path, "re");
	size_t n = 0;

	if (f != NULL) {
		n = fread(out, 1, outlen - 1, f);
		fclose(f);
	}
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' ||
	    out[n - 1] == ' '))
		n--;
	out[n] = '\0';
	if (n == 0)
		snprintf(out, outlen, "audit");
}

int
identity__audit_open(struct identity_audit **out, const char *data_dir)
{
	struct audit_writer_opts ao = { 0 };
	struct identity_audit *a = NULL;
	char sock[PATH_MAX], dir[PATH_MAX], path[PATH_MAX], key[PATH_MAX];
	char kidpath[PATH_MAX], kid[128];
	int r;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = join(dir, sizeof(dir), data_dir, "run")) != 0 ||
	    (r = join(sock, sizeof(sock), dir, "audit.sock")) != 0)
		goto out;
	/* Only when nothing listens (no socket, or a stale one refusing) may
	 * this process write the chain itself: with moatd running, two
	 * writers would break it. Any other failure (permissions) stops. */
	r = audit_client_connect(&a->client, sock);
	if (r == 0) {
		*out = a;
		return 0;
	}
	if (r != MOAT_ERR_CLOSED && r != MOAT_ERR_NOTFOUND) {
		log_error(IDENTITY_COMPONENT, "cannot reach moatd's audit "
		    "collector", LF_STR("path", sock),
		    LF_STR("error", moat_strerror(r)));
		goto out;
	}
	if ((r = join(dir, sizeof(dir), data_dir, "audit")) != 0 ||
	    (r = join(path, sizeof(path), dir, "audit.log")) != 0 ||
	    (r = join(key, sizeof(key), data_dir, "secrets/audit-signing.pem"))
	    != 0 || (r = join(kidpath, sizeof(kidpath), data_dir,
	    "secrets/audit-signing.kid")) != 0)
		goto out;
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	read_kid(kidpath, kid, sizeof(kid));
	ao.path = path;
	ao.checkpoint_key_file = key;
	ao.key_id = kid;
	ao.fsync_policy = AUDIT_FSYNC_ALWAYS;
	ao.process_name = "moatd";
	if ((r = audit_writer_open(&a->writer, &ao)) != 0) {
		log_error(IDENTITY_COMPONENT, "cannot open the audit chain",
		    LF_STR("path", path), LF_STR("error", moat_strerror(r)));
		goto out;
	}
	*out = a;
	a = NULL;
	r = 0;
out:
	free(a);
	return r;
}

/* Who ran the command, as far as the host can tell. */
static void
add_host_actor(json_t *ev)
{
	char buf[1024], name[300];
	struct passwd pw, *res = NULL;
	uid_t uid = getuid();
	json_t *actor;

	if (json_object_get(ev, "actor") != NULL)
		return;
	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res != NULL)
		snprintf(name, sizeof(name), "host:%s", pw.pw_name);
	else
		snprintf(name, sizeof(name), "host:uid %u", (unsigned)uid);
	actor = json_pack("{s:s}", "user", name);
	if (actor != NULL)
		(void)json_object_set_new(ev, "actor", actor);
}

int
identity__audit_emit(struct identity_audit *a, json_t *ev)
{
	int r;

	if (ev == NULL)
		return MOAT_ERR_NOMEM;
	add_host_actor(ev);
	if (a->client != NULL) {
		r = audit_client_send(a->client, ev);
		json_decref(ev);
		return r;
	}
	if ((r = audit_emit(a->writer, ev)) != 0)
		return r;
	return audit_writer_flush(a->writer);
}

int
identity__audit_close(struct identity_audit *a)
{
	int r = 0;

	if (a == NULL)
		return 0;
	audit_client_free(a->client);
	if (a->writer != NULL) {
		r = audit_writer_flush(a->writer);
		audit_writer_close(a->writer);
	}
	free(a);
	return r;
}
