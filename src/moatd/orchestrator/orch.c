/*
 * orch.c - the orchestrator's life cycle and the workspace documents
 * (orch.h): creation with fresh keys, desired-state changes from the API,
 * the reconciler thread, merging the reconciler's observations with the
 * API's concurrent writes, quotas, logs and stats.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "app.h"
#include "audit.h"
#include "json.h"
#include "log.h"
#include "secrets/envelope.h"
#include "secrets/keys.h"
#include "store/store.h"

#include "drivers/driver.h"
#include "orchestrator/agent_client.h"
#include "orchestrator/egress_link.h"
#include "orchestrator/events.h"
#include "orchestrator/orch_int.h"

#define C ORCH_COMPONENT
#define AGENT_TIMEOUT_MS 3000

/* Fields only the reconciler writes. */
static const char *const observed_fields[] = { "state", "reason", "lease",
    "done_restart_gen", "observed" };

uint64_t
orch__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int make_instance(char *out, size_t outlen);

static void *
orch_thread(void *arg)
{
	struct orch *o = arg;

	for (;;) {
		struct timespec dl;

		pthread_mutex_lock(&o->mu);
		if (o->stop) {
			pthread_mutex_unlock(&o->mu);
			break;
		}
		if (!o->kicked) {
			clock_gettime(CLOCK_MONOTONIC, &dl);
			dl.tv_sec += o->opt.interval_ms / 1000;
			dl.tv_nsec += (long)(o->opt.interval_ms % 1000) * 1000000L;
			if (dl.tv_nsec >= 1000000000L) {
				dl.tv_sec++;
				dl.tv_nsec -= 1000000000L;
			}
			while (!o->kicked && !o->stop &&
			    pthread_cond_timedwait(&o->cond, &o->mu, &dl) == 0)
				;
		}
		o->kicked = false;
		if (o->stop) {
			pthread_mutex_unlock(&o->mu);
			break;
		}
		pthread_mutex_unlock(&o->mu);
		orch__pass(o);
	}
	return NULL;
}

/* The installation id: created once per store, shared by every moatd on
 * that store. */
static int
load_installation(struct orch *o)
{
	struct store *st = o->app->store;
	json_t *doc = NULL;
	char id[STORE_ID_GEN_LEN];
	int r;

	for (int attempt = 0; attempt < 3; attempt++) {
		if ((r = store_get(st, COLL_INSTALLATION, "id", &doc)) == 0) {
			const char *v = json_get_str(doc, "installation");

			r = v != NULL && strlen(v) < sizeof(o->installation) ?
			    0 : MOAT_ERR_CORRUPT;
			if (r == 0)
				memcpy(o->installation, v, strlen(v) + 1);
			json_decref(doc);
			return r;
		}
		if (r != MOAT_ERR_NOTFOUND || (r = store_new_id(id,
		    sizeof(id))) != 0)
			return r;
		if ((doc = json_pack("{s:s,s:s}", "id", "id", "installation",
		    id)) == NULL)
			return MOAT_ERR_NOMEM;
		r = store_insert(st, COLL_INSTALLATION, doc);
		json_decref(doc);
		if (r != 0 && r != MOAT_ERR_EXISTS)
			return r;
	}
	return MOAT_ERR_CONFLICT;
}

int
orch_new(struct orch **out, struct app *app, struct driver *drv,
    const struct orch_options *opt, char *err, size_t errlen)
{
	struct orch *o;
	pthread_condattr_t ca;
	char reason[256];
	int r;

	*out = NULL;
	if ((o = calloc(1, sizeof(*o))) == NULL) {
		drv->ops->free(drv);
		return MOAT_ERR_NOMEM;
	}
	o->app = app;
	o->drv = drv;
	o->opt = *opt;
	pthread_mutex_init(&o->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (snprintf(o->run_dir, sizeof(o->run_dir), "%s", opt->run_dir) >=
	    (int)sizeof(o->run_dir) ||
	    snprintf(o->agent_binary, sizeof(o->agent_binary), "%s",
	    opt->agent_binary) >= (int)sizeof(o->agent_binary) ||
	    snprintf(o->vol_dir, sizeof(o->vol_dir), "%s/volumes",
	    app->data_dir) >= (int)sizeof(o->vol_dir) ||
	    snprintf(o->mnt_dir, sizeof(o->mnt_dir), "%s/vol", opt->run_dir) >=
	    (int)sizeof(o->mnt_dir)) {
		r = moat_fail(MOAT_ERR_TOOBIG, err, errlen, "a path is too long");
		goto fail;
	}
	o->opt.run_dir = o->run_dir;
	o->opt.agent_binary = o->agent_binary;
	o->vpaths.volumes_dir = o->vol_dir;
	o->vpaths.mount_dir = o->mnt_dir;
	if ((r = make_instance(o->instance, sizeof(o->instance))) != 0 ||
	    (r = load_installation(o)) != 0 ||
	    (r = ws_events_new(&o->events)) != 0)
		goto fail;
	if ((mkdir(o->run_dir, 0711) != 0 && errno != EEXIST) ||
	    (mkdir(o->mnt_dir, 0700) != 0 && errno != EEXIST) ||
	    (mkdir(o->vol_dir, 0700) != 0 && errno != EEXIST)) {
		r = moat_fail(moat_err_from_errno(errno), err, errlen,
		    "cannot create %s or %s: %s", o->run_dir, o->vol_dir,
		    strerror(errno));
		goto fail;
	}
	if (!volume_fscrypt_supported(&o->vpaths, reason, sizeof(reason))) {
		if (!opt->plain_volumes) {
			r = moat_fail(MOAT_ERR_UNSUPPORTED, err, errlen,
			    "this host cannot encrypt workspace volumes (%s); "
			    "start with --insecure-plain-volumes to run "
			    "without encryption", reason);
			goto fail;
		}
	}
	if (opt->plain_volumes)
		log_error(C, "INSECURE: workspace home volumes are NOT "
		    "encrypted (--insecure-plain-volumes)",
		    LF_STR("fscrypt", reason));
	if (opt->egress_url != NULL && opt->egress_url[0] != '\0') {
		struct egress_link_opts eo;

		memset(&eo, 0, sizeof(eo));
		eo.url = opt->egress_url;
		eo.server_name = opt->egress_name;
		eo.ca_file = opt->egress_ca;
		eo.cert_file = opt->egress_cert;
		eo.key_file = opt->egress_key;
		eo.run_dir = o->run_dir;
		eo.interval_ms = opt->egress_interval_ms;
		if ((r = egress_link_new(&o->egress, app, &eo, err, errlen)) != 0)
			goto fail;
	} else {
		log_warn(C, "no --egress-proxy: workspaces have no egress at all");
	}
	o->opt.egress_url = o->opt.egress_name = o->opt.egress_ca = NULL;
	o->opt.egress_cert = o->opt.egress_key = NULL;
	*out = o;
	return 0;
fail:
	orch_free(o);
	return r;
}

int
orch_start(struct orch *o)
{
	if (pthread_create(&o->thread, NULL, orch_thread, o) != 0)
		return MOAT_ERR_NOMEM;
	o->thread_started = true;
	orch_kick(o);
	if (o->egress != NULL)
		return egress_link_start(o->egress);
	return 0;
}

void
orch_free(struct orch *o)
{
	if (o == NULL)
		return;
	if (o->thread_started) {
		pthread_mutex_lock(&o->mu);
		o->stop = true;
		pthread_cond_signal(&o->cond);
		pthread_mutex_unlock(&o->mu);
		pthread_join(o->thread, NULL);
		if (o->opt.stop_on_exit)
			orch__stop_all_for_exit(o);
	}
	egress_link_free(o->egress);
	if (o->drv != NULL)
		o->drv->ops->free(o->drv);
	ws_events_free(o->events);
	volume_ids_free(o->secrets_dirty, o->nsecrets_dirty);
	pthread_cond_destroy(&o->cond);
	pthread_mutex_destroy(&o->mu);
	free(o);
}

void
orch_secrets_changed(struct orch *o, const char *user_id)
{
	char **v, *id;

	if (o == NULL || user_id == NULL)
		return;
	pthread_mutex_lock(&o->mu);
	for (size_t i = 0; i < o->nsecrets_dirty; i++)
		if (strcmp(o->secrets_dirty[i], user_id) == 0)
			goto kick;
	if ((id = strdup(user_id)) == NULL ||
	    (v = realloc(o->secrets_dirty, (o->nsecrets_dirty + 1) *
	    sizeof(*v))) == NULL) {
		free(id);
		log_warn(C, "secrets change not delivered (out of memory)");
		goto kick;
	}
	v[o->nsecrets_dirty++] = id;
	o->secrets_dirty = v;
kick:
	o->kicked = true;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->mu);
}

void
orch__take_secrets_dirty(struct orch *o, char ***ids, size_t *n)
{
	pthread_mutex_lock(&o->mu);
	*ids = o->secrets_dirty;
	*n = o->nsecrets_dirty;
	o->secrets_dirty = NULL;
	o->nsecrets_dirty = 0;
	pthread_mutex_unlock(&o->mu);
}

void
orch_kick(struct orch *o)
{
	if (o == NULL)
		return;
	pthread_mutex_lock(&o->mu);
	o->kicked = true;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->mu);
}

/* --- documents --- */

/* This process as a lease holder: "HOST/PID/START", START being the
 * process start time in clock ticks since boot (/proc/self/stat field 22),
 * so a holder that died - or whose pid was reused - is recognized on the
 * same host without waiting for the lease to expire. */
static unsigned long long
proc_start_ticks(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* Fields after the command name, which is in parentheses. */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	p++;
	for (int field = 3; field <= 22 && p != NULL; field++) {
		while (*p == ' ')
			p++;
		if (field == 22) {
			v = strtoull(p, NULL, 10);
			break;
		}
		p = strchr(p, ' ');
	}
	return v;
}

static int
make_instance(char *out, size_t outlen)
{
	char host[64];

	if (gethostname(host, sizeof(host)) != 0)
		snprintf(host, sizeof(host), "unknown");
	host[sizeof(host) - 1] = '\0';
	if (snprintf(out, outlen, "%s/%ld/%llu", host, (long)getpid(),
	    proc_start_ticks((long)getpid())) >= (int)outlen)
		return MOAT_ERR_TOOBIG;
	return 0;
}

/* True when holder names a process on this host that no longer runs. */
static bool
holder_dead(const char *holder)
{
	char host[64];
	const char *s1 = strchr(holder, '/'), *s2;
	long pid;
	unsigned long long start;
	char *end;

	if (s1 == NULL || (s2 = strchr(s1 + 1, '/')) == NULL ||
	    gethostname(host, sizeof(host)) != 0)
		return false;
	host[sizeof(host) - 1] = '\0';
	if ((size_t)(s1 - holder) != strlen(host) ||
	    strncmp(holder, host, (size_t)(s1 - holder)) != 0)
		return false;
	pid = strtol(s1 + 1, &end, 10);
	if (end != s2 || pid <= 0)
		return false;
	start = strtoull(s2 + 1, &end, 10);
	if (*end != '\0')
		return false;
	return proc_start_ticks(pid) != start;
}

bool
orch__lease_foreign(struct orch *o, const json_t *doc)
{
	const json_t *l = json_object_get(doc, "lease");
	const char *holder = json_get_str(l, "holder");

	return holder != NULL && strcmp(holder, o->instance) != 0 &&
	    json_get_int(l, "until", 0) > (long long)time(NULL) &&
	    !holder_dead(holder);
}

int
orch__save(struct orch *o, json_t *doc)
{
	struct store *st = o->app->store;
	int r;

	for (int attempt = 0; attempt < 8; attempt++) {
		json_t *fresh = NULL;

		if ((r = store_update(st, COLL_WORKSPACES, doc)) !=
		    MOAT_ERR_CONFLICT)
			return r;
		if ((r = store_get(st, COLL_WORKSPACES, json_get_str(doc, "id"),
		    &fresh)) != 0)
			return r;
		if (orch__lease_foreign(o, fresh)) {
			json_decref(fresh);
			return MOAT_ERR_CONFLICT;
		}
		for (size_t i = 0; i < sizeof(observed_fields) /
		    sizeof(observed_fields[0]); i++) {
			json_t *v = json_object_get(doc, observed_fields[i]);

			if (v != NULL)
				json_object_set(fresh, observed_fields[i], v);
		}
		json_object_clear(doc);
		json_object_update(doc, fresh);
		json_decref(fresh);
	}
	return MOAT_ERR_CONFLICT;
}

int
orch__set_state(struct orch *o, json_t *doc, const char *state,
    const char *reason)
{
	char clean[512];
	int r;

	events_clean(reason, strlen(reason), clean, sizeof(clean));
	json_object_set_new(doc, "state", json_string(state));
	json_object_set_new(doc, "reason", json_string(clean));
	if ((r = orch__save(o, doc)) != 0)
		return r;
	ws_events_publish(o->events, json_get_str(doc, "id"), "state",
	    json_pack("{s:s,s:s}", "state", state, "reason", clean));
	log_info(C, "workspace state", LF_STR("workspace", json_get_str(doc,
	    "id")), LF_STR("state", state), LF_STR("reason", clean));
	return 0;
}

void
orch__audit(struct orch *o, const json_t *doc, const char *what,
    const char *outcome, const char *reason)
{
	char type[64];
	json_t *ev;

	if (o->app->audit == NULL)
		return;
	snprintf(type, sizeof(type), "workspace.%s", what);
	if ((ev = audit_event_new(type, outcome)) == NULL)
		return;
	json_object_set_new(ev, "actor", json_pack("{s:s}", "component",
	    "reconciler"));
	json_object_set_new(ev, "target", json_pack("{s:s,s:s,s:s}", "type",
	    "workspace", "id", json_get_str(doc, "id"), "name",
	    json_get_str(doc, "name") ? json_get_str(doc, "name") : ""));
	json_object_set_new(ev, "workspace", json_string(json_get_str(doc,
	    "id")));
	if (json_get_str(doc, "owner") != NULL)
		json_object_set_new(json_object_get(ev, "target"), "owner",
		    json_string(json_get_str(doc, "owner")));
	if (reason != NULL && reason[0] != '\0')
		json_object_set_new(ev, "details", json_pack("{s:s}", "reason",
		    reason));
	if (audit_emit(o->app->audit, ev) != 0)
		log_warn(C, "audit event not recorded", LF_STR("type", type));
}

int
orch__unseal(struct orch *o, const json_t *doc, const char *field,
    uint8_t **plain, size_t *len)
{
	const char *sealed = json_get_str(json_object_get(doc, "sealed"),
	    field);
	struct keyset *ks;
	int r;

	*plain = NULL;
	*len = 0;
	if (sealed == NULL)
		return MOAT_ERR_NOTFOUND;
	if (o->app->keys == NULL || (ks = keys_current(o->app->keys)) == NULL)
		return MOAT_ERR_CRYPTO;
	r = envelope_open(ks, COLL_WORKSPACES, json_get_str(doc, "id"), field,
	    sealed, plain, len);
	keyset_unref(ks);
	return r;
}

static int
seal_into(struct keyset *ks, json_t *sealed, const char *id,
    const char *field, const uint8_t *plain, size_t len)
{
	char *s = NULL;
	int r;

	if ((r = envelope_seal(ks, COLL_WORKSPACES, id, field, plain, len,
	    &s)) != 0)
		return r;
	r = json_object_set_new(sealed, field, json_string(s)) == 0 ? 0 :
	    MOAT_ERR_NOMEM;
	free(s);
	return r;
}

/* The template fields a workspace keeps (a snapshot taken at create: a
 * template edited later changes new workspaces only). */
static json_t *
spec_from_template(const json_t *t)
{
	static const char *const keep[] = { "image", "cpu", "memory_mb",
	    "disk_mb", "root_disk_mb", "env", "startup_script",
	    "egress_policy", "idle_timeout", "ports", "forbid_sudo" };
	json_t *spec = json_object();

	for (size_t i = 0; spec != NULL && i < sizeof(keep) / sizeof(keep[0]);
	    i++) {
		json_t *v = json_object_get(t, keep[i]);

		if (v != NULL)
			json_object_set_new(spec, keep[i], json_deep_copy(v));
	}
	return spec;
}

int
orch_create(struct orch *o, const char *owner_id, const char *owner_name,
    const char *org, const char *name, const json_t *tmpl, json_t **out,
    char *err, size_t errlen)
{
	struct store *st = o->app->store;
	char id[STORE_ID_GEN_LEN], key_name[256];
	char *apriv = NULL, *apub = NULL, *hpriv = NULL, *hpub = NULL;
	uint8_t vkey[VOLUME_KEY_LEN];
	struct keyset *ks = NULL;
	json_t *doc = NULL, *sealed = NULL, *found = NULL;
	int r;

	*out = NULL;
	snprintf(key_name, sizeof(key_name), "%s/%s", owner_id, name);
	if (store_find_one(st, COLL_WORKSPACES, "owner_name", key_name,
	    &found) == 0) {
		json_decref(found);
		return moat_fail(MOAT_ERR_EXISTS, err, errlen,
		    "%s already has a workspace named %s", owner_name, name);
	}
	if ((r = store_new_id(id, sizeof(id))) != 0 ||
	    (r = orch__ssh_keygen(&apriv, &apub)) != 0 ||
	    (r = orch__ssh_keygen(&hpriv, &hpub)) != 0)
		goto out;
	randombytes_buf(vkey, sizeof(vkey));
	if (o->app->keys == NULL || (ks = keys_current(o->app->keys)) == NULL) {
		r = MOAT_ERR_CRYPTO;
		goto out;
	}
	if ((sealed = json_object()) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((r = seal_into(ks, sealed, id, "access_key", (uint8_t *)apriv,
	    strlen(apriv))) != 0 ||
	    (r = seal_into(ks, sealed, id, "host_key", (uint8_t *)hpriv,
	    strlen(hpriv))) != 0 ||
	    (r = seal_into(ks, sealed, id, "volume_key", vkey,
	    sizeof(vkey))) != 0)
		goto out;
	doc = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:o,s:s,s:s,s:s,s:i,"
	    "s:i,s:s,s:s,s:O}",
	    "id", id, "name", name, "owner_id", owner_id, "owner", owner_name,
	    "org", org, "owner_name", key_name, "template",
	    json_get_str(tmpl, "name"), "spec", spec_from_template(tmpl),
	    "desired", "running", "state", "pending", "reason", "",
	    "restart_gen", 0, "done_restart_gen", 0, "access_pub", apub,
	    "host_pub", hpub, "sealed", sealed);
	if (doc == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	/* A user-namespace slot: random, made unique by the store's index. */
	for (int attempt = 0; attempt < 16; attempt++) {
		uint32_t slot = randombytes_uniform(ORCH_UID_SLOTS);

		json_object_set_new(doc, "uid_slot", json_integer(slot));
		json_object_set_new(doc, "uid_base", json_integer(
		    (json_int_t)ORCH_UID_START + (json_int_t)slot *
		    ORCH_UID_COUNT));
		r = store_insert(st, COLL_WORKSPACES, doc);
		if (r != MOAT_ERR_EXISTS)
			break;
		if (store_find_one(st, COLL_WORKSPACES, "owner_name", key_name,
		    &found) == 0) {
			json_decref(found);
			moat_fail(r, err, errlen, "%s already has a workspace "
			    "named %s", owner_name, name);
			goto out;
		}
	}
	if (r != 0)
		goto out;
	ws_events_publish(o->events, id, "state", json_pack("{s:s,s:s}",
	    "state", "pending", "reason", ""));
	*out = doc;
	doc = NULL;
	orch_kick(o);
out:
	sodium_memzero(vkey, sizeof(vkey));
	if (apriv != NULL) {
		sodium_memzero(apriv, strlen(apriv));
		free(apriv);
	}
	if (hpriv != NULL) {
		sodium_memzero(hpriv, strlen(hpriv));
		free(hpriv);
	}
	free(apub);
	free(hpub);
	json_decref(sealed);
	json_decref(doc);
	if (ks != NULL)
		keyset_unref(ks);
	if (r != 0 && err[0] == '\0')
		moat_fail(r, err, errlen, "cannot create the workspace");
	return r;
}

int
orch_set_desired(struct orch *o, const char *ws_id, const char *what,
    json_t **out)
{
	struct store *st = o->app->store;
	int r = MOAT_ERR_CONFLICT;

	if (out != NULL)
		*out = NULL;
	for (int attempt = 0; attempt < 8 && r == MOAT_ERR_CONFLICT;
	    attempt++) {
		json_t *doc = NULL;
		const char *state;
		char state_before[16];

		if ((r = store_get(st, COLL_WORKSPACES, ws_id, &doc)) != 0)
			return r;
		state = json_get_str(doc, "state");
		snprintf(state_before, sizeof(state_before), "%s",
		    state != NULL ? state : "");
		if (strcmp(json_get_str(doc, "desired"), "deleted") == 0 &&
		    strcmp(what, "deleted") != 0) {
			json_decref(doc);
			return MOAT_ERR_CONFLICT;
		}
		if (strcmp(what, "restart") == 0) {
			json_object_set_new(doc, "restart_gen", json_integer(
			    json_get_int(doc, "restart_gen", 0) + 1));
			json_object_set_new(doc, "desired",
			    json_string("running"));
		} else {
			json_object_set_new(doc, "desired", json_string(what));
		}
		/* A failed workspace is retried when asked again. */
		if (state != NULL && strcmp(state, "failed") == 0 &&
		    strcmp(what, "deleted") != 0 &&
		    strcmp(what, "stopped") != 0) {
			json_object_set_new(doc, "state",
			    json_string("pending"));
			json_object_set_new(doc, "reason", json_string(""));
		}
		r = store_update(st, COLL_WORKSPACES, doc);
		if (r == 0 && strcmp(json_get_str(doc, "state"), state_before) != 0)
			ws_events_publish(o->events, ws_id, "state",
			    json_pack("{s:s,s:s}", "state",
			    json_get_str(doc, "state"), "reason", ""));
		if (r == 0 && out != NULL)
			*out = json_incref(doc);
		json_decref(doc);
	}
	if (r == 0)
		orch_kick(o);
	return r;
}

int
orch_stop_user(struct orch *o, const char *user_id)
{
	json_t *list = NULL, *doc;
	size_t i;
	int r, first = 0;

	if (o == NULL)
		return 0;
	if ((r = store_list(o->app->store, COLL_WORKSPACES, "owner_id",
	    user_id, NULL, 0, &list)) != 0)
		return r;
	json_array_foreach(list, i, doc) {
		const char *d = json_get_str(doc, "desired");

		if (d != NULL && strcmp(d, "running") == 0 &&
		    (r = orch_set_desired(o, json_get_str(doc, "id"),
		    "stopped", NULL)) != 0 && first == 0)
			first = r;
	}
	json_decref(list);
	return first;
}

int
orch_check_quota(struct orch *o, const char *user_id, bool starting,
    char *err, size_t errlen)
{
	json_t *list = NULL, *doc;
	size_t i, running = 0, total;
	int r;

	if ((r = store_list(o->app->store, COLL_WORKSPACES, "owner_id",
	    user_id, NULL, 0, &list)) != 0)
		return r;
	total = json_array_size(list);
	json_array_foreach(list, i, doc) {
		const char *d = json_get_str(doc, "desired");

		if (d != NULL && strcmp(d, "running") == 0)
			running++;
	}
	json_decref(list);
	if (!starting && o->opt.max_per_user > 0 &&
	    total >= o->opt.max_per_user)
		return moat_fail(MOAT_ERR_AGAIN, err, errlen, "quota: at most "
		    "%u workspaces per user", o->opt.max_per_user);
	if (o->opt.max_running_per_user > 0 &&
	    running >= o->opt.max_running_per_user)
		return moat_fail(MOAT_ERR_AGAIN, err, errlen, "quota: at most "
		    "%u running workspaces per user; stop one first",
		    o->opt.max_running_per_user);
	return 0;
}

json_t *
orch_view(const json_t *doc)
{
	static const char *const keep[] = { "id", "name", "owner", "org",
	    "template", "desired", "state", "reason", "access_pub",
	    "host_pub", "created_at", "updated_at" };
	json_t *v = json_object(), *spec = json_object_get(doc, "spec");

	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
		json_t *x = json_object_get(doc, keep[i]);

		if (x != NULL)
			json_object_set(v, keep[i], x);
	}
	json_object_del(v, "access_pub");
	if (spec != NULL) {
		json_t *s = json_deep_copy(spec);

		json_object_del(s, "startup_script");
		json_object_set_new(v, "spec", s);
	}
	return v;
}

int
orch_agent_dir(struct orch *o, const char *ws_id, char *out, size_t outlen)
{
	return orch__ws_dir(o, ws_id, "agent", out, outlen);
}

int
orch_logs(struct orch *o, const json_t *doc, uint64_t offset, json_t **out,
    char *err, size_t errlen)
{
	char dir[PATH_MAX];
	uint8_t *buf = NULL;
	char *clean = NULL;
	size_t got = 0;
	uint64_t next = 0, end = 0;
	int r;

	*out = NULL;
	if ((r = orch_agent_dir(o, json_get_str(doc, "id"), dir,
	    sizeof(dir))) != 0)
		return r;
	if ((buf = malloc(AGENTPROTO_MAX_LOG_CHUNK)) == NULL ||
	    (clean = malloc(AGENTPROTO_MAX_LOG_CHUNK + 1)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((r = agent_client_log(dir, AGENT_TIMEOUT_MS, offset, buf,
	    AGENTPROTO_MAX_LOG_CHUNK, &got, &next, &end, err, errlen)) != 0)
		goto out;
	events_clean((const char *)buf, got, clean,
	    AGENTPROTO_MAX_LOG_CHUNK + 1);
	*out = json_pack("{s:I,s:I,s:I,s:s}", "offset", (json_int_t)offset,
	    "next", (json_int_t)next, "size", (json_int_t)end, "data", clean);
	r = *out != NULL ? 0 : MOAT_ERR_NOMEM;
out:
	free(buf);
	free(clean);
	return r;
}

int
orch_stats(struct orch *o, const json_t *doc, json_t **out, char *err,
    size_t errlen)
{
	struct drv_stats s;
	struct statvfs vf;
	char home[PATH_MAX];
	uint64_t used = 0, total = 0;
	int r;

	*out = NULL;
	memset(&s, 0, sizeof(s));
	if ((r = o->drv->ops->stats(o->drv, json_get_str(doc, "id"), &s, err,
	    errlen)) != 0)
		return r;
	if (snprintf(home, sizeof(home), "%s/%s", o->mnt_dir,
	    json_get_str(doc, "id")) < (int)sizeof(home) &&
	    volume_is_attached(&o->vpaths, json_get_str(doc, "id")) &&
	    statvfs(home, &vf) == 0) {
		total = (uint64_t)vf.f_blocks * vf.f_frsize;
		used = total - (uint64_t)vf.f_bfree * vf.f_frsize;
	}
	*out = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "cpu_ns",
	    (json_int_t)s.cpu_total_ns, "memory_bytes",
	    (json_int_t)s.memory_bytes, "memory_limit",
	    (json_int_t)s.memory_limit, "pids", (json_int_t)s.pids,
	    "disk_used", (json_int_t)used, "disk_total", (json_int_t)total);
	return *out != NULL ? 0 : MOAT_ERR_NOMEM;
}
