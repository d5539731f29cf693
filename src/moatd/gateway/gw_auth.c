/*
 * gw_auth.c - the SSH gateway's decisions, on worker threads (they read
 * the store): who a key belongs to and whether that user may open the
 * workspace the login names; preparing the upstream (starting a stopped
 * workspace, dialing its sshd through the agent, the access key in a
 * sealed memfd); the periodic revocation check; the idle-clock ping.
 *
 * Login names: "WS" is the caller's own workspace WS; "OWNER.WS" is
 * OWNER's, allowed to callers whose roles grant workspaces:all (never
 * with agent forwarding). An unknown key, a disabled user, an unknown or
 * forbidden workspace all get "no"; the client learns nothing about which
 * (a known user gets one banner line that is the same whether the
 * workspace exists or not). Probes are answered the same way as signed
 * attempts, so a client offering several keys moves on to the next.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "app.h"
#include "audit.h"
#include "json.h"
#include "log.h"
#include "policy.h"
#include "uri.h"
#include "identity/identity.h"
#include "identity/sshkey.h"
#include "orchestrator/agent_client.h"
#include "orchestrator/orch.h"
#include "orchestrator/orch_int.h"
#include "rbac/rbac.h"
#include "secrets/envelope.h"
#include "store/schema.h"
#include "store/store.h"

#include "gateway/gw_int.h"

#define GW_DIAL_TIMEOUT_MS 10000
#define GW_NOT_YOURS "moat: no such workspace, or you may not open it " \
    "(log in as WORKSPACE or OWNER.WORKSPACE)"

/* A DNS label of at most 63 characters (workspace and user names). */
static bool
label_ok(const char *s, size_t n)
{
	return uri_dns_label(s, n);
}

static void
roles_text(role_mask roles, char *out, size_t outlen)
{
	size_t off = 0;

	out[0] = '\0';
	for (int r = 0; r < ROLE__COUNT; r++) {
		int n;

		if ((roles & (1u << r)) == 0)
			continue;
		n = snprintf(out + off, outlen - off, "%s%s", off > 0 ? "," : "",
		    rbac_role_name((enum role)r));
		if (n < 0 || (size_t)n >= outlen - off)
			break;
		off += (size_t)n;
	}
}

/* The organization's SSH switches (defaults where unset). New ref. */
static json_t *
ssh_settings(struct app *app, const char *org)
{
	json_t *doc = NULL, *def = settings_default(), *out, *ssh;
	const char *names[] = { "port_forwarding", "file_transfer",
	    "agent_forwarding", "record_input" };

	if (org == NULL || org[0] == '\0')
		org = app->default_org != NULL ? app->default_org : "default";
	if (store_get(app->store, COLL_SETTINGS, org, &doc) != 0)
		doc = NULL;
	out = json_object();
	ssh = json_object_get(doc, "ssh");
	for (size_t i = 0; out != NULL && i < 4; i++) {
		json_t *v = json_object_get(ssh, names[i]);

		if (!json_is_boolean(v))
			v = json_object_get(json_object_get(def, "ssh"), names[i]);
		json_object_set_new(out, names[i], json_boolean(json_is_true(v)));
	}
	json_decref(doc);
	json_decref(def);
	return out;
}

static void
deny(struct gw_authq *q, const char *reason, bool tell)
{
	q->ok = false;
	snprintf(q->reason, sizeof(q->reason), "%s", reason);
	if (tell)
		snprintf(q->message, sizeof(q->message), "%s", GW_NOT_YOURS);
}

void
gw__auth_work(void *arg)
{
	struct gw_authq *q = arg;
	struct app *app = q->s->g->app;
	struct sshkey_info info;
	json_t *key = NULL, *user = NULL, *owner = NULL, *ws = NULL;
	char why[160], ownername[64], wsname[64], k[160];
	const char *dot, *uid;
	role_mask roles = 0;
	int r;

	memset(&info, 0, sizeof(info));
	q->ok = false;
	if (sshkey_parse(q->key, strlen(q->key), &info, why, sizeof(why)) != 0) {
		deny(q, "key type or size not accepted", false);
		goto out;
	}
	snprintf(q->fingerprint, sizeof(q->fingerprint), "%s", info.fingerprint);
	r = store_find_one(app->store, COLL_SSH_KEYS, "fingerprint",
	    info.fingerprint, &key);
	if (r != 0) {
		deny(q, r == MOAT_ERR_NOTFOUND ? "unknown key" : "store error",
		    false);
		goto out;
	}
	uid = json_get_str(key, "user_id");
	if (uid == NULL || identity_user_get(app->identity, uid, &user) != 0) {
		deny(q, "the key's user is gone", false);
		goto out;
	}
	snprintf(q->user_id, sizeof(q->user_id), "%s", uid);
	snprintf(q->username, sizeof(q->username), "%s",
	    json_get_str(user, "username") != NULL ?
	    json_get_str(user, "username") : "");
	if (json_is_true(json_object_get(user, "disabled"))) {
		deny(q, "user disabled", false);
		goto out;
	}
	if (q->is_signed && !audit_writer_healthy(app->audit)) {
		deny(q, "audit writer unhealthy (disk nearly full)", false);
		snprintf(q->message, sizeof(q->message), "moat: new sessions are "
		    "refused: the audit log's disk is nearly full (sessions are "
		    "never run unrecorded)");
		goto out;
	}
	if (identity_user_roles(app->identity, uid, &roles) != 0)
		roles = 0;
	roles_text(roles, q->roles, sizeof(q->roles));

	/* WS or OWNER.WS */
	if ((dot = strchr(q->login, '.')) != NULL) {
		size_t on = (size_t)(dot - q->login);

		if (on >= sizeof(ownername) || !label_ok(q->login, on) ||
		    !label_ok(dot + 1, strlen(dot + 1))) {
			deny(q, "malformed login name", true);
			goto out;
		}
		memcpy(ownername, q->login, on);
		ownername[on] = '\0';
		snprintf(wsname, sizeof(wsname), "%.63s", dot + 1);
	} else {
		if (!label_ok(q->login, strlen(q->login))) {
			deny(q, "malformed login name", true);
			goto out;
		}
		snprintf(ownername, sizeof(ownername), "%.63s", q->username);
		snprintf(wsname, sizeof(wsname), "%.63s", q->login);
	}
	q->other_owner = strcmp(ownername, q->username) != 0;
	if (q->other_owner ? !rbac_allows(roles, PERM_WORKSPACES_ALL) :
	    !rbac_allows(roles, PERM_WORKSPACES_OWN)) {
		deny(q, q->other_owner ? "another user's workspace without "
		    "workspaces:all" : "no workspaces:own permission", true);
		goto out;
	}
	if (q->other_owner) {
		if (identity_user_find(app->identity, ownername, &owner) != 0) {
			deny(q, "no such owner", true);
			goto out;
		}
		snprintf(q->owner_id, sizeof(q->owner_id), "%s",
		    json_get_str(owner, "id") != NULL ?
		    json_get_str(owner, "id") : "");
	} else {
		snprintf(q->owner_id, sizeof(q->owner_id), "%s", uid);
	}
	snprintf(q->owner, sizeof(q->owner), "%s", ownername);
	snprintf(q->ws_name, sizeof(q->ws_name), "%s", wsname);
	snprintf(k, sizeof(k), "%s/%s", q->owner_id, wsname);
	if (store_find_one(app->store, COLL_WORKSPACES, "owner_name", k, &ws)
	    != 0 || json_get_str(ws, "desired") == NULL ||
	    strcmp(json_get_str(ws, "desired"), "deleted") == 0) {
		deny(q, "no such workspace", true);
		goto out;
	}
	snprintf(q->ws_id, sizeof(q->ws_id), "%s", json_get_str(ws, "id"));
	snprintf(q->org, sizeof(q->org), "%s", json_get_str(ws, "org") != NULL ?
	    json_get_str(ws, "org") : "");
	if (q->is_signed) {
		if (app->orch == NULL) {
			deny(q, "no container runtime", false);
			snprintf(q->message, sizeof(q->message), "moat: "
			    "workspaces are unavailable on this server");
			goto out;
		}
		q->settings = ssh_settings(app, q->org);
		if (q->settings != NULL && q->other_owner)
			json_object_set_new(q->settings, "agent_forwarding",
			    json_false());
	}
	q->ok = true;
out:
	free(info.canonical);
	json_decref(key);
	json_decref(user);
	json_decref(owner);
	json_decref(ws);
}

/* A sealed memfd holding the key text (caller closes). */
static int
key_memfd(const uint8_t *key, size_t len, int *out)
{
	int fd = memfd_create("moat-access-key", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	size_t off = 0;

	if (fd < 0)
		return moat_err_from_errno(errno);
	while (off < len) {
		ssize_t n = write(fd, key + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			close(fd);
			return moat_err_from_errno(errno);
		}
		off += (size_t)n;
	}
	(void)fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW |
	    F_SEAL_WRITE | F_SEAL_SEAL);
	*out = fd;
	return 0;
}

void
gw__up_work(void *arg)
{
	struct gw_upq *q = arg;
	struct app *app = q->s->g->app;
	json_t *doc = NULL, *cur = NULL;
	const char *state, *desired;
	char dir[4096], err[256] = "";
	uint8_t *key = NULL;
	size_t klen = 0;
	int r;

	q->status = -1;
	if (app->orch == NULL) {
		snprintf(q->message, sizeof(q->message), "workspaces are "
		    "unavailable on this server");
		snprintf(q->reason, sizeof(q->reason), "no runtime");
		return;
	}
	if (store_get(app->store, COLL_WORKSPACES, q->ws_id, &doc) != 0) {
		snprintf(q->message, sizeof(q->message), "the workspace is gone");
		snprintf(q->reason, sizeof(q->reason), "deleted");
		return;
	}
	state = json_get_str(doc, "state");
	desired = json_get_str(doc, "desired");
	if (state == NULL)
		state = "pending";
	if (desired != NULL && strcmp(desired, "deleted") == 0) {
		snprintf(q->message, sizeof(q->message), "the workspace is being "
		    "deleted");
		snprintf(q->reason, sizeof(q->reason), "deleted");
		goto out;
	}
	if (strcmp(state, "running") == 0 && desired != NULL &&
	    strcmp(desired, "running") == 0) {
		const char *host_pub = json_get_str(doc, "host_pub");
		const char *owner = json_get_str(doc, "owner");

		if (host_pub == NULL || owner == NULL) {
			snprintf(q->message, sizeof(q->message), "the workspace "
			    "has no host key on record");
			snprintf(q->reason, sizeof(q->reason), "no host key");
			goto out;
		}
		if ((r = orch_agent_dir(app->orch, q->ws_id, dir,
		    sizeof(dir))) != 0 ||
		    (r = agent_client_dial(dir, 22, GW_DIAL_TIMEOUT_MS,
		    &q->dial_fd, err, sizeof(err))) != 0) {
			snprintf(q->message, sizeof(q->message), "the workspace's "
			    "sshd cannot be reached");
			snprintf(q->reason, sizeof(q->reason), "dial: %s",
			    err[0] != '\0' ? err : moat_strerror(r));
			goto out;
		}
		if ((r = orch__unseal(app->orch, doc, "access_key", &key,
		    &klen)) != 0 || (r = key_memfd(key, klen, &q->key_fd)) != 0) {
			snprintf(q->message, sizeof(q->message), "the workspace's "
			    "access key cannot be opened");
			snprintf(q->reason, sizeof(q->reason), "access key: %s",
			    moat_strerror(r));
			goto out;
		}
		snprintf(q->host_pub, sizeof(q->host_pub), "%s", host_pub);
		snprintf(q->user, sizeof(q->user), "%s", owner);
		q->status = 0;
		goto out;
	}
	/* Not running: ask for it once, then report progress. */
	if (q->ask_start && (desired == NULL || strcmp(desired, "running") != 0 ||
	    strcmp(state, "failed") == 0)) {
		if ((r = orch_check_quota(app->orch, q->owner_id, true, err,
		    sizeof(err))) != 0) {
			snprintf(q->message, sizeof(q->message), "the workspace "
			    "cannot start: %s", err);
			snprintf(q->reason, sizeof(q->reason), "quota");
			goto out;
		}
		if ((r = orch_set_desired(app->orch, q->ws_id, "running",
		    &cur)) != 0) {
			snprintf(q->message, sizeof(q->message), "the workspace "
			    "cannot be started");
			snprintf(q->reason, sizeof(q->reason), "set desired: %s",
			    moat_strerror(r));
			goto out;
		}
		q->started_it = true;
		state = "starting";
	} else if (strcmp(state, "failed") == 0) {
		snprintf(q->message, sizeof(q->message), "the workspace failed "
		    "to start: %s", json_get_str(doc, "reason") != NULL ?
		    json_get_str(doc, "reason") : "unknown reason");
		snprintf(q->reason, sizeof(q->reason), "failed");
		goto out;
	}
	q->status = 1;
	snprintf(q->state, sizeof(q->state), "%s", state);
	if (json_get_str(doc, "reason") != NULL && !q->started_it)
		snprintf(q->reason, sizeof(q->reason), "%s",
		    json_get_str(doc, "reason"));
out:
	if (key != NULL)
		envelope_free(key, klen);
	if (q->status != 0) {
		if (q->dial_fd >= 0)
			close(q->dial_fd);
		if (q->key_fd >= 0)
			close(q->key_fd);
		q->dial_fd = q->key_fd = -1;
	}
	json_decref(cur);
	json_decref(doc);
}

void
gw__check_work(void *arg)
{
	struct gw_checkq *q = arg;
	struct app *app = q->g->app;
	json_t *v;
	size_t i;

	q->revoked = json_array();
	json_array_foreach(q->snapshot, i, v) {
		json_t *user = NULL, *key = NULL;
		const char *uid = json_get_str(v, "user_id");
		const char *fp = json_get_str(v, "fingerprint");
		bool bad = false;
		int r;

		r = identity_user_get(app->identity, uid, &user);
		if (r == MOAT_ERR_NOTFOUND || (r == 0 && json_is_true(
		    json_object_get(user, "disabled"))))
			bad = true;
		r = store_find_one(app->store, COLL_SSH_KEYS, "fingerprint", fp,
		    &key);
		if (r == MOAT_ERR_NOTFOUND || (r == 0 && (json_get_str(key,
		    "user_id") == NULL || strcmp(json_get_str(key, "user_id"),
		    uid) != 0)))
			bad = true;
		if (bad && q->revoked != NULL)
			json_array_append_new(q->revoked, json_string(
			    json_get_str(v, "id")));
		json_decref(user);
		json_decref(key);
	}
}

void
gw__ping_work(void *arg)
{
	struct gw_pingq *q = arg;
	struct app *app = q->g->app;
	char dir[4096], err[200];

	if (app->orch == NULL || orch_agent_dir(app->orch, q->ws_id, dir,
	    sizeof(dir)) != 0)
		return;
	if (agent_client_activity(dir, 2000, err, sizeof(err)) != 0)
		log_debug(GW_COMPONENT, "activity ping failed",
		    LF_STR("workspace", q->ws_id), LF_STR("error", err));
}
