/*
 * reconcile.c - the reconciler's pass (orch_int.h): for each workspace,
 * compare desired and observed state and run the steps that close the
 * gap; then remove orphans.
 *
 * Every step looks before it acts (create tolerates an existing object,
 * remove an absent one, volumes attach and detach idempotently), so a
 * pass interrupted anywhere - moatd killed with SIGKILL - is simply run
 * again by the next moatd. A workspace is acted on only under a lease in
 * its document, taken with the revision just read: two moatd processes
 * never work on one workspace at once.
 *
 * Orphans: the runtime's objects, volumes and run directories are listed
 * before the store, so an id missing from the store listing was deleted
 * (documents are created before anything in the runtime and deleted after
 * everything); whatever is left of it is removed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "app.h"
#include "config.h"
#include "json.h"
#include "log.h"
#include "secrets/envelope.h"
#include "secrets/keys.h"
#include "store/schema.h"
#include "store/store.h"

#include "drivers/driver.h"
#include "orchestrator/agent_client.h"
#include "orchestrator/egress_link.h"
#include "orchestrator/events.h"
#include "orchestrator/orch_int.h"

#define C ORCH_COMPONENT
#define STOP_TIMEOUT_S 10
#define AGENT_POLL_MS 20
#define MIB (1024ull * 1024ull)

static bool take_lease(struct orch *o, json_t *doc);
static void release_lease(struct orch *o, json_t *doc);

/* --- helpers --- */

static bool
str_is(const char *a, const char *b)
{
	return a != NULL && strcmp(a, b) == 0;
}

static const char *
ws_id(const json_t *doc)
{
	return json_get_str(doc, "id");
}

static const json_t *
ws_spec(const json_t *doc)
{
	return json_object_get(doc, "spec");
}

/* sudo inside: the organization allows it and the template does not
 * forbid it (DESIGN.md section 5a). */
static bool
sudo_allowed(struct orch *o, const json_t *doc)
{
	json_t *settings = NULL;
	bool allow = false;

	if (json_is_true(json_object_get(ws_spec(doc), "forbid_sudo")))
		return false;
	if (store_get(o->app->store, COLL_SETTINGS, json_get_str(doc, "org"),
	    &settings) == 0) {
		allow = json_is_true(json_object_get(settings, "allow_sudo"));
		json_decref(settings);
	}
	return allow;
}

/* Registry credentials from SECRETS-DIR/.dockerconfigjson (the layout of
 * a Kubernetes kubernetes.io/dockerconfigjson Secret): {"auths": {HOST:
 * {"auth": base64(user:password)} | {"username", "password"}}}. Only the
 * entry for the image's own registry host is used. */
static int
registry_auth(struct orch *o, const char *image, char *user, size_t ulen,
    char *pass, size_t plen)
{
	const char *sdir = config_str(o->app->cfg, "secrets-dir");
	char path[PATH_MAX], host[256];
	const char *slash = strchr(image, '/');
	json_t *root = NULL, *ent;
	json_error_t jerr;
	int r = MOAT_ERR_NOTFOUND;

	if (slash == NULL || (size_t)(slash - image) >= sizeof(host))
		return MOAT_ERR_NOTFOUND;
	memcpy(host, image, (size_t)(slash - image));
	host[slash - image] = '\0';
	if (sdir != NULL && sdir[0] != '\0')
		snprintf(path, sizeof(path), "%s/.dockerconfigjson", sdir);
	else
		snprintf(path, sizeof(path), "%s/secrets/.dockerconfigjson",
		    o->app->data_dir);
	if (access(path, R_OK) != 0)
		return MOAT_ERR_NOTFOUND;
	if ((root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr)) ==
	    NULL) {
		log_warn(C, "the registry credentials file does not parse",
		    LF_STR("path", path));
		return MOAT_ERR_PARSE;
	}
	ent = json_object_get(json_object_get(root, "auths"), host);
	if (json_get_str(ent, "username") != NULL &&
	    json_get_str(ent, "password") != NULL) {
		if (snprintf(user, ulen, "%s", json_get_str(ent, "username")) <
		    (int)ulen && snprintf(pass, plen, "%s",
		    json_get_str(ent, "password")) < (int)plen)
			r = 0;
	} else if (json_get_str(ent, "auth") != NULL) {
		const char *b64 = json_get_str(ent, "auth");
		char dec[1024];
		size_t dlen = 0;
		char *colon;

		if (sodium_base642bin((unsigned char *)dec, sizeof(dec) - 1,
		    b64, strlen(b64), NULL, &dlen, NULL,
		    sodium_base64_VARIANT_ORIGINAL) == 0) {
			dec[dlen] = '\0';
			if ((colon = strchr(dec, ':')) != NULL) {
				*colon = '\0';
				if (snprintf(user, ulen, "%s", dec) < (int)ulen &&
				    snprintf(pass, plen, "%s", colon + 1) <
				    (int)plen)
					r = 0;
			}
			sodium_memzero(dec, sizeof(dec));
		}
	}
	json_decref(root);
	return r;
}

struct pull_ctx {
	struct orch *o;
	const char *id;
};

static void
on_pull_progress(void *arg, const char *status, uint64_t current,
    uint64_t total)
{
	struct pull_ctx *p = arg;
	char clean[256];

	events_clean(status, strlen(status), clean, sizeof(clean));
	ws_events_publish(p->o->events, p->id, "pull", json_pack("{s:s,s:I,s:I}",
	    "status", clean, "current", (json_int_t)current, "total",
	    (json_int_t)total));
}

static int
ensure_image(struct orch *o, const json_t *doc, char *err, size_t errlen)
{
	const char *image = json_get_str(ws_spec(doc), "image");
	struct pull_ctx pc = { o, ws_id(doc) };
	char user[256], pass[1024];
	struct drv_auth auth = { user, pass };
	bool have_auth;
	int r;

	if (image == NULL)
		return moat_fail(MOAT_ERR_CORRUPT, err, errlen,
		    "the workspace names no image");
	have_auth = registry_auth(o, image, user, sizeof(user), pass,
	    sizeof(pass)) == 0;
	r = o->drv->ops->ensure_image(o->drv, image, have_auth ? &auth : NULL,
	    on_pull_progress, &pc, err, errlen);
	sodium_memzero(pass, sizeof(pass));
	return r;
}

/* Sends the owner's personal secrets to the agent (/run/secrets). */
static int
push_secrets(struct orch *o, const json_t *doc, const char *agent_dir,
    char *err, size_t errlen)
{
	struct agentproto_secret sec[AGENTPROTO_MAX_SECRETS];
	uint8_t *vals[AGENTPROTO_MAX_SECRETS];
	json_t *list = NULL, *s;
	struct keyset *ks = NULL;
	size_t i, n = 0;
	int r;

	memset(vals, 0, sizeof(vals));
	if ((r = store_list(o->app->store, COLL_SECRETS, "user_id",
	    json_get_str(doc, "owner_id"), NULL, 0, &list)) != 0)
		return moat_fail(r, err, errlen, "cannot read the owner's "
		    "secrets");
	if (o->app->keys == NULL || (ks = keys_current(o->app->keys)) == NULL) {
		r = MOAT_ERR_CRYPTO;
		goto out;
	}
	json_array_foreach(list, i, s) {
		const char *name = json_get_str(s, "name");
		const char *env = json_get_str(s, "env");
		const char *sealed = json_get_str(json_object_get(s, "sealed"),
		    "value");
		size_t len = 0;

		if (n == AGENTPROTO_MAX_SECRETS || name == NULL ||
		    sealed == NULL || strlen(name) > AGENTPROTO_MAX_NAME)
			continue;
		if ((r = envelope_open(ks, COLL_SECRETS, json_get_str(s, "id"),
		    "value", sealed, &vals[n], &len)) != 0) {
			moat_fail(r, err, errlen, "cannot open secret %s", name);
			goto out;
		}
		memset(&sec[n], 0, sizeof(sec[n]));
		snprintf(sec[n].name, sizeof(sec[n].name), "%s", name);
		if (env != NULL)
			snprintf(sec[n].env, sizeof(sec[n].env), "%s", env);
		sec[n].value = vals[n];
		sec[n].value_len = len;
		n++;
	}
	r = agent_client_put_secrets(agent_dir, 3000, sec, n, err, errlen);
out:
	for (i = 0; i < n; i++)
		envelope_free(vals[i], sec[i].value_len);
	if (ks != NULL)
		keyset_unref(ks);
	json_decref(list);
	return r;
}

/* Waits until the agent says sshd is up and port 22 answers with an
 * OpenSSH banner through the agent socket. */
static int
wait_ready(struct orch *o, const char *agent_dir, char *err, size_t errlen)
{
	uint64_t deadline = orch__now_ms() + o->opt.ready_timeout_ms;
	struct agentproto_msg st;
	char e2[200] = "";
	int fd = -1, r = MOAT_ERR_TIMEOUT;

	for (;;) {
		if (agent_client_status(agent_dir, 1000, &st, e2,
		    sizeof(e2)) == 0 && st.sshd_up)
			break;
		if (orch__now_ms() >= deadline)
			return moat_fail(MOAT_ERR_TIMEOUT, err, errlen,
			    "the workspace did not become ready in %u ms%s%s",
			    o->opt.ready_timeout_ms, e2[0] ? ": " : "", e2);
		usleep(AGENT_POLL_MS * 1000);
	}
	for (;;) {
		char banner[256];
		size_t got = 0;

		if ((r = agent_client_dial(agent_dir, 22, 2000, &fd, e2,
		    sizeof(e2))) == 0) {
			while (got < sizeof(banner) - 1 &&
			    memchr(banner, '\n', got) == NULL) {
				struct pollfd pfd = { fd, POLLIN, 0 };
				ssize_t k;

				if (poll(&pfd, 1, 2000) <= 0)
					break;
				k = read(fd, banner + got,
				    sizeof(banner) - 1 - got);
				if (k <= 0)
					break;
				got += (size_t)k;
			}
			close(fd);
			fd = -1;
			banner[got] = '\0';
			if (strncmp(banner, "SSH-2.0-OpenSSH", 15) == 0)
				return 0;
			snprintf(e2, sizeof(e2), "port 22 did not answer with "
			    "an OpenSSH banner");
		}
		if (orch__now_ms() >= deadline)
			return moat_fail(MOAT_ERR_TIMEOUT, err, errlen,
			    "sshd in the workspace did not answer: %s", e2);
		usleep(AGENT_POLL_MS * 1000);
	}
}

static uint64_t
rlimit_cap(int resource, uint64_t want)
{
	struct rlimit rl;

	if (getrlimit(resource, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
	    (uint64_t)rl.rlim_max < want)
		return (uint64_t)rl.rlim_max;
	return want;
}

static int
create_container(struct orch *o, const json_t *doc, const char *home,
    bool sudo, char *err, size_t errlen)
{
	static const char *const proxy_env[] = {
		"HTTP_PROXY=http://127.0.0.1:3128",
		"HTTPS_PROXY=http://127.0.0.1:3128",
		"http_proxy=http://127.0.0.1:3128",
		"https_proxy=http://127.0.0.1:3128",
		"NO_PROXY=localhost,127.0.0.1,::1",
		"no_proxy=localhost,127.0.0.1,::1",
		NULL };
	/* What moat-agent and sshd need (each was dropped in turn to check);
	 * with sudo allowed, root inside also gets what makes it an ordinary
	 * root for package installs. */
	static const char *const caps[] = { "CHOWN", "SETUID", "SETGID",
	    "SYS_CHROOT", "KILL", "NET_BIND_SERVICE", NULL };
	static const char *const caps_sudo[] = { "CHOWN", "SETUID", "SETGID",
	    "SYS_CHROOT", "KILL", "NET_BIND_SERVICE", "DAC_OVERRIDE",
	    "FOWNER", "AUDIT_WRITE", NULL };
	const json_t *spec = ws_spec(doc);
	char ro[PATH_MAX], ag[PATH_MAX], home_in[128];
	struct drv_mount mounts[3];
	struct drv_tmpfs tmpfs[] = {
		{ "/run", 16 * MIB, 0755 },
		{ "/run/secrets", 1 * MIB, 0755 },
		{ "/tmp", 512 * MIB, 01777 },
	};
	struct drv_spec s;
	struct drv_status ds;
	int r;

	if ((r = orch__ws_dir(o, ws_id(doc), "ro", ro, sizeof(ro))) != 0 ||
	    (r = orch__ws_dir(o, ws_id(doc), "agent", ag, sizeof(ag))) != 0)
		return r;
	snprintf(home_in, sizeof(home_in), "/home/%s", json_get_str(doc,
	    "owner"));
	mounts[0] = (struct drv_mount){ ro, "/run/moat", true };
	mounts[1] = (struct drv_mount){ ag, "/run/moat-agent", false };
	mounts[2] = (struct drv_mount){ home, home_in, false };
	memset(&s, 0, sizeof(s));
	s.workspace_id = ws_id(doc);
	s.installation = o->installation;
	s.image = json_get_str(spec, "image");
	s.entrypoint = "/run/moat/moat-agent";
	/* Every process in the workspace (the startup script, podman exec)
	 * finds the egress proxy; SSH logins get the same from sshd. */
	s.env = proxy_env;
	s.hostname = json_get_str(doc, "name");
	s.mounts = mounts;
	s.nmounts = 3;
	s.tmpfs = tmpfs;
	s.ntmpfs = sizeof(tmpfs) / sizeof(tmpfs[0]);
	s.memory_bytes = (uint64_t)json_get_int(spec, "memory_mb", 2048) * MIB;
	s.nano_cpus = (uint64_t)json_get_int(spec, "cpu", 2000) * 1000000ull;
	s.pids_limit = 2048;
	/* Explicit limits (runc needs them here), never above what this
	 * host lets processes raise themselves to: the runtime cannot either. */
	s.nofile = rlimit_cap(RLIMIT_NOFILE, 65536);
	s.nproc = rlimit_cap(RLIMIT_NPROC, 8192);
	s.uid_base = (uint32_t)json_get_int(doc, "uid_base", 0);
	s.uid_count = ORCH_UID_COUNT;
	s.cap_add = sudo ? caps_sudo : caps;
	s.no_new_privileges = !sudo;
	r = o->drv->ops->create(o->drv, &s, err, errlen);
	if (r != MOAT_ERR_EXISTS)
		return r;
	/* Left over from an interrupted start: keep it when it runs, else
	 * make a fresh one (its configuration may be stale). */
	if (o->drv->ops->inspect(o->drv, ws_id(doc), false, &ds, err,
	    errlen) == 0 && ds.state == DRV_RUNNING)
		return 0;
	err[0] = '\0';
	if ((r = o->drv->ops->remove(o->drv, ws_id(doc), err, errlen)) != 0)
		return r;
	return o->drv->ops->create(o->drv, &s, err, errlen);
}

/* Removes the container, detaches the volume, removes the run dirs. */
static int
teardown(struct orch *o, const json_t *doc, bool destroy, char *err,
    size_t errlen)
{
	const char *id = ws_id(doc);
	int r;

	if ((r = o->drv->ops->stop(o->drv, id, STOP_TIMEOUT_S, err,
	    errlen)) != 0 && r != MOAT_ERR_NOTFOUND)
		return r;
	/* (Podman's "resource busy" right after a stop is retried by the
	 * driver.) */
	if ((r = o->drv->ops->remove(o->drv, id, err, errlen)) != 0)
		return r;
	err[0] = '\0';
	if (destroy)
		r = volume_destroy(&o->vpaths, id, err, errlen);
	else
		r = volume_detach(&o->vpaths, id, err, errlen);
	if (r != 0)
		return r;
	if ((r = orch__run_teardown(o, id)) != 0)
		return moat_fail(r, err, errlen, "cannot remove the workspace's "
		    "run directory");
	return 0;
}

/* --- the lifecycle steps (under the lease) --- */

static void
fail_ws(struct orch *o, json_t *doc, const char *why)
{
	char e2[256] = "";

	log_warn(C, "workspace failed", LF_STR("workspace", ws_id(doc)),
	    LF_STR("reason", why));
	if (teardown(o, doc, false, e2, sizeof(e2)) != 0)
		log_warn(C, "cleanup after a failure incomplete",
		    LF_STR("workspace", ws_id(doc)), LF_STR("error", e2));
	if (orch__set_state(o, doc, "failed", why) == 0)
		orch__audit(o, doc, "failed", "failure", why);
}

static int
step_start(struct orch *o, json_t *doc)
{
	const json_t *spec = ws_spec(doc);
	const char *id = ws_id(doc);
	char err[512] = "", home[PATH_MAX], agent_dir[PATH_MAX];
	uint8_t *vkey = NULL;
	size_t vlen = 0;
	bool sudo = sudo_allowed(o, doc);
	int r;

	if ((r = orch__set_state(o, doc, "starting", "")) != 0)
		return r;
	if ((r = ensure_image(o, doc, err, sizeof(err))) != 0)
		goto fail;
	if ((r = orch__unseal(o, doc, "volume_key", &vkey, &vlen)) != 0 ||
	    vlen != VOLUME_KEY_LEN) {
		snprintf(err, sizeof(err), "cannot open the volume key");
		r = r != 0 ? r : MOAT_ERR_CORRUPT;
		goto fail;
	}
	r = volume_create(&o->vpaths, id, (uint64_t)json_get_int(spec,
	    "disk_mb", 4096) * MIB, vkey, o->opt.plain_volumes,
	    (uint32_t)json_get_int(doc, "uid_base", 0) + ORCH_WS_UID,
	    (uint32_t)json_get_int(doc, "uid_base", 0) + ORCH_WS_UID, err,
	    sizeof(err));
	if (r != 0 && r != MOAT_ERR_EXISTS)
		goto fail;
	err[0] = '\0';
	if ((r = volume_attach(&o->vpaths, id, vkey, o->opt.plain_volumes,
	    home, sizeof(home), err, sizeof(err))) != 0)
		goto fail;
	if ((r = orch__run_prepare(o, doc, sudo, err, sizeof(err))) != 0 ||
	    (r = create_container(o, doc, home, sudo, err, sizeof(err))) != 0 ||
	    (r = o->drv->ops->start(o->drv, id, err, sizeof(err))) != 0 ||
	    (r = orch_agent_dir(o, id, agent_dir, sizeof(agent_dir))) != 0 ||
	    (r = wait_ready(o, agent_dir, err, sizeof(err))) != 0 ||
	    (r = push_secrets(o, doc, agent_dir, err, sizeof(err))) != 0)
		goto fail;
	json_object_set_new(doc, "done_restart_gen", json_integer(
	    json_get_int(doc, "restart_gen", 0)));
	json_object_set_new(doc, "observed", json_pack("{s:I,s:I}",
	    "started_at", (json_int_t)time(NULL), "log_offset", 0));
	if ((r = orch__set_state(o, doc, "running", "")) == 0)
		orch__audit(o, doc, "started", "success", NULL);
	goto out;
fail:
	fail_ws(o, doc, err[0] != '\0' ? err : moat_strerror(r));
out:
	if (vkey != NULL)
		envelope_free(vkey, vlen);
	return r;
}

static int
step_stop(struct orch *o, json_t *doc, const char *final_state)
{
	char err[512] = "";
	char reason[256];
	int r;

	snprintf(reason, sizeof(reason), "%s", json_get_str(doc,
	    "stop_reason") ? json_get_str(doc, "stop_reason") : "");
	if ((r = orch__set_state(o, doc, "stopping", "")) != 0)
		return r;
	if ((r = teardown(o, doc, false, err, sizeof(err))) != 0) {
		fail_ws(o, doc, err);
		return r;
	}
	if (final_state == NULL)
		return 0;
	if ((r = orch__set_state(o, doc, final_state, reason)) == 0)
		orch__audit(o, doc, "stopped", "success", reason);
	return r;
}

static int
step_delete(struct orch *o, json_t *doc)
{
	char err[512] = "";
	int r;

	if ((r = orch__set_state(o, doc, "deleting", "")) != 0)
		return r;
	if ((r = teardown(o, doc, true, err, sizeof(err))) != 0) {
		/* Stays "deleting"; the next pass tries again. */
		log_warn(C, "workspace delete incomplete", LF_STR("workspace",
		    ws_id(doc)), LF_STR("error", err));
		return r;
	}
	for (int attempt = 0; attempt < 8; attempt++) {
		json_t *fresh = NULL;

		r = store_delete(o->app->store, COLL_WORKSPACES, ws_id(doc),
		    json_get_int(doc, "rev", -1));
		if (r != MOAT_ERR_CONFLICT)
			break;
		if (store_get(o->app->store, COLL_WORKSPACES, ws_id(doc),
		    &fresh) != 0)
			break;
		json_object_set(doc, "rev", json_object_get(fresh, "rev"));
		json_decref(fresh);
	}
	if (r != 0 && r != MOAT_ERR_NOTFOUND)
		return r;
	ws_events_publish(o->events, ws_id(doc), "state",
	    json_pack("{s:s,s:s}", "state", "deleted", "reason", ""));
	ws_events_close(o->events, ws_id(doc));
	orch__audit(o, doc, "deleted", "success", NULL);
	return 0;
}

/* --- checks on a running workspace (no lease needed: they only read,
 * or ask for a stop through desired state) --- */

static void
request_stop(struct orch *o, const json_t *doc, const char *what,
    const char *reason)
{
	json_t *fresh = NULL;

	if (store_get(o->app->store, COLL_WORKSPACES, ws_id(doc), &fresh) != 0)
		return;
	json_object_set_new(fresh, "desired", json_string("stopped"));
	json_object_set_new(fresh, "stop_reason", json_string(reason));
	if (store_update(o->app->store, COLL_WORKSPACES, fresh) == 0) {
		log_info(C, "stopping a workspace", LF_STR("workspace",
		    ws_id(doc)), LF_STR("reason", reason));
		orch__audit(o, doc, what, "success", reason);
		orch_kick(o);
	}
	json_decref(fresh);
}

/* Publishes new startup-script and agent output as events. */
static void
forward_output(struct orch *o, json_t *doc, const char *agent_dir)
{
	json_t *obs = json_object_get(doc, "observed");
	uint64_t off = (uint64_t)json_get_int(obs, "log_offset", 0);
	uint8_t *buf = malloc(AGENTPROTO_MAX_LOG_CHUNK);
	char *clean = malloc(AGENTPROTO_MAX_LOG_CHUNK + 1);
	char err[200];
	size_t got = 0;
	uint64_t next = off, end = 0;

	if (buf == NULL || clean == NULL || !json_is_object(obs))
		goto out;
	for (int i = 0; i < 8; i++) {
		if (agent_client_log(agent_dir, 1000, off, buf,
		    AGENTPROTO_MAX_LOG_CHUNK, &got, &next, &end, err,
		    sizeof(err)) != 0 || got == 0)
			break;
		events_clean((const char *)buf, got, clean,
		    AGENTPROTO_MAX_LOG_CHUNK + 1);
		ws_events_publish(o->events, ws_id(doc), "output",
		    json_pack("{s:s}", "text", clean));
		off = next;
	}
	if (off != (uint64_t)json_get_int(obs, "log_offset", 0)) {
		json_object_set_new(obs, "log_offset", json_integer(
		    (json_int_t)off));
		if (orch__save(o, doc) != 0)
			log_debug(C, "log offset not saved (the next pass "
			    "forwards again)", LF_STR("workspace", ws_id(doc)));
	}
out:
	free(buf);
	free(clean);
}

static void
check_running(struct orch *o, json_t *doc, bool size_check)
{
	const json_t *spec = ws_spec(doc);
	struct drv_status ds;
	struct agentproto_msg st;
	char err[256] = "", agent_dir[PATH_MAX], why[256];
	long long idle_timeout = json_get_int(spec, "idle_timeout", 0);
	uint64_t root_limit = (uint64_t)json_get_int(spec, "root_disk_mb",
	    2048) * MIB;

	if (o->drv->ops->inspect(o->drv, ws_id(doc), size_check, &ds, err,
	    sizeof(err)) != 0)
		return;		/* runtime unreachable: try later */
	if (ds.state != DRV_RUNNING) {
		if (ds.state == DRV_ABSENT)
			snprintf(why, sizeof(why), "the workspace's container "
			    "disappeared");
		else
			snprintf(why, sizeof(why), "the workspace stopped "
			    "unexpectedly (exit code %d%s)", ds.exit_code,
			    ds.oom_killed ? ", out of memory" : "");
		if (take_lease(o, doc)) {
			fail_ws(o, doc, why);
			release_lease(o, doc);
		}
		return;
	}
	if (size_check && ds.root_rw_bytes > root_limit) {
		snprintf(why, sizeof(why), "the writable root filesystem grew "
		    "to %llu MiB, over the template's limit of %llu MiB",
		    (unsigned long long)(ds.root_rw_bytes / MIB),
		    (unsigned long long)(root_limit / MIB));
		request_stop(o, doc, "disk_limit", why);
		return;
	}
	if (orch_agent_dir(o, ws_id(doc), agent_dir, sizeof(agent_dir)) != 0)
		return;
	forward_output(o, doc, agent_dir);
	if (idle_timeout > 0 && agent_client_status(agent_dir, 1000, &st, err,
	    sizeof(err)) == 0 && (long long)st.idle_seconds >= idle_timeout) {
		snprintf(why, sizeof(why), "stopped after %lld s without "
		    "activity", idle_timeout);
		request_stop(o, doc, "idle_stop", why);
	}
}

/* Takes the lease with the revision just read; false when someone else
 * holds it or wrote first. */
static bool
take_lease(struct orch *o, json_t *doc)
{
	if (orch__lease_foreign(o, doc))
		return false;
	json_object_set_new(doc, "lease", json_pack("{s:s,s:I}", "holder",
	    o->instance, "until", (json_int_t)(time(NULL) + ORCH_LEASE_S)));
	return store_update(o->app->store, COLL_WORKSPACES, doc) == 0;
}

static void
release_lease(struct orch *o, json_t *doc)
{
	if (json_object_get(doc, "lease") == NULL)
		return;
	json_object_del(doc, "lease");
	/* A lease left behind expires by itself (ORCH_LEASE_S). */
	if (orch__save(o, doc) != 0)
		log_debug(C, "lease not released", LF_STR("workspace",
		    ws_id(doc)));
}

static void
reconcile_one(struct orch *o, json_t *doc, bool size_check)
{
	const char *desired = json_get_str(doc, "desired");
	const char *state = json_get_str(doc, "state");
	bool restart = json_get_int(doc, "restart_gen", 0) !=
	    json_get_int(doc, "done_restart_gen", 0);

	if (desired == NULL || state == NULL)
		return;
	if (str_is(desired, "running") && str_is(state, "running") &&
	    !restart) {
		check_running(o, doc, size_check);
		return;
	}
	if (str_is(desired, "running") && str_is(state, "failed"))
		return;		/* until someone asks again */
	if (str_is(desired, "stopped") && str_is(state, "stopped"))
		return;
	if (!take_lease(o, doc))
		return;
	if (str_is(desired, "deleted")) {
		if (step_delete(o, doc) == 0)
			return;		/* the document is gone */
	} else if (str_is(desired, "running")) {
		if (restart && (str_is(state, "running") ||
		    str_is(state, "starting")) &&
		    step_stop(o, doc, NULL) != 0)
			goto out;
		(void)step_start(o, doc);
	} else if (str_is(desired, "stopped")) {
		if (str_is(state, "failed")) {
			if (orch__set_state(o, doc, "stopped",
			    json_get_str(doc, "reason")) != 0)
				goto out;	/* the next pass tries again */
		} else
			(void)step_stop(o, doc, "stopped");
	}
out:
	release_lease(o, doc);
}

/* Delivers the owner's secrets again to a running workspace when they
 * changed (secrets API). */
static void
redeliver_secrets(struct orch *o, const json_t *doc, char **dirty, size_t n)
{
	char dir[PATH_MAX], err[256] = "";
	bool hit = false;

	for (size_t i = 0; i < n && !hit; i++)
		hit = str_is(json_get_str(doc, "owner_id"), dirty[i]);
	if (!hit || !str_is(json_get_str(doc, "state"), "running") ||
	    orch_agent_dir(o, ws_id(doc), dir, sizeof(dir)) != 0)
		return;
	if (push_secrets(o, doc, dir, err, sizeof(err)) != 0)
		log_warn(C, "cannot deliver changed secrets", LF_STR("workspace",
		    ws_id(doc)), LF_STR("error", err));
	else
		log_info(C, "secrets delivered", LF_STR("workspace",
		    ws_id(doc)));
}

/* --- shutdown with stop_on_exit --- */

void
orch__stop_all_for_exit(struct orch *o)
{
	static const char why[] = "moatd shut down (stop-workspaces-on-exit); "
	    "it starts again with moatd";
	json_t *docs = NULL, *d;
	char err[512];
	size_t i;

	if (store_list(o->app->store, COLL_WORKSPACES, NULL, NULL, NULL, 0,
	    &docs) != 0) {
		log_warn(C, "cannot list workspaces to stop them on exit");
		return;
	}
	json_array_foreach(docs, i, d) {
		const char *state = json_get_str(d, "state");

		if (!str_is(state, "running") && !str_is(state, "starting"))
			continue;
		if (!take_lease(o, d))
			continue;
		/* Unlike step_stop, a failure is not "failed": the workspace
		 * stays "stopping" and starts again with moatd. */
		err[0] = '\0';
		if (orch__set_state(o, d, "stopping", "") != 0 ||
		    teardown(o, d, false, err, sizeof(err)) != 0) {
			log_warn(C, "cannot stop a workspace on exit",
			    LF_STR("workspace", ws_id(d)), LF_STR("error", err));
		} else if (orch__set_state(o, d, "stopped", why) == 0) {
			orch__audit(o, d, "stopped", "success", why);
		}
		release_lease(o, d);
	}
	json_decref(docs);
}

/* --- orphans --- */

static bool
in_docs(const json_t *docs, const char *id)
{
	size_t i;
	json_t *d;

	json_array_foreach(docs, i, d)
		if (str_is(ws_id(d), id))
			return true;
	return false;
}

static void
audit_orphan(struct orch *o, const char *id, const char *what)
{
	json_t *doc = json_pack("{s:s,s:s}", "id", id, "name", "");

	log_warn(C, "removing an orphan", LF_STR("workspace", id),
	    LF_STR("what", what));
	if (doc != NULL)
		orch__audit(o, doc, "orphan_removed", "success", what);
	json_decref(doc);
}

void
orch__pass(struct orch *o)
{
	struct drv_status *objs = NULL;
	size_t nobjs = 0, nvols = 0, nruns = 0, i;
	char **vols = NULL, **runs = NULL, **dirty = NULL;
	size_t ndirty = 0;
	json_t *docs = NULL, *d;
	char err[256] = "";
	bool listed_objs, listed_vols, listed_runs, size_check = false;
	uint64_t now = orch__now_ms();

	listed_objs = o->drv->ops->list_owned(o->drv, &objs, &nobjs, err,
	    sizeof(err)) == 0;
	if (!listed_objs)
		log_warn(C, "cannot list the runtime's workspaces",
		    LF_STR("error", err));
	listed_vols = volume_list(&o->vpaths, &vols, &nvols) == 0;
	listed_runs = orch__run_list(o, &runs, &nruns) == 0;
	if (store_list(o->app->store, COLL_WORKSPACES, NULL, NULL, NULL, 0,
	    &docs) != 0) {
		log_warn(C, "cannot list workspaces from the store");
		goto out;
	}
	if (now - o->last_size_check_ms >= o->opt.size_check_ms) {
		size_check = true;
		o->last_size_check_ms = now;
	}
	orch__take_secrets_dirty(o, &dirty, &ndirty);
	json_array_foreach(docs, i, d) {
		reconcile_one(o, d, size_check);
		redeliver_secrets(o, d, dirty, ndirty);
	}
	for (i = 0; listed_objs && i < nobjs; i++) {
		/* Another installation's (or unlabelled): not ours. */
		if (objs[i].workspace_id[0] == '\0' ||
		    strcmp(objs[i].installation, o->installation) != 0 ||
		    in_docs(docs, objs[i].workspace_id))
			continue;
		audit_orphan(o, objs[i].workspace_id, "container");
		err[0] = '\0';
		if (o->drv->ops->remove(o->drv, objs[i].workspace_id, err,
		    sizeof(err)) != 0)
			log_warn(C, "cannot remove an orphan container",
			    LF_STR("error", err));
	}
	for (i = 0; listed_vols && i < nvols; i++) {
		if (in_docs(docs, vols[i]))
			continue;
		audit_orphan(o, vols[i], "volume");
		err[0] = '\0';
		if (volume_destroy(&o->vpaths, vols[i], err, sizeof(err)) != 0)
			log_warn(C, "cannot remove an orphan volume",
			    LF_STR("error", err));
	}
	for (i = 0; listed_runs && i < nruns; i++) {
		if (in_docs(docs, runs[i]))
			continue;
		audit_orphan(o, runs[i], "run directory");
		if (orch__run_teardown(o, runs[i]) != 0)
			log_warn(C, "cannot remove an orphan run directory",
			    LF_STR("workspace", runs[i]));
	}
out:
	/* --- egress link (issue 6): moat-proxy learns the new set now. --- */
	egress_link_kick(o->egress);
	json_decref(docs);
	free(objs);
	volume_ids_free(vols, nvols);
	volume_ids_free(runs, nruns);
	volume_ids_free(dirty, ndirty);
}
