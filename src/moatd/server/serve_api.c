/*
 * serve_api.c - starts the Core API inside `moatd serve` (see serve_api.h).
 *
 * Order: keys (the secrets directory), the store (DATA_DIR/moatd.db, with
 * moatd's collections, store/schema.h), the recordings store
 * (DATA_DIR/recordings, recordings/recstore.h), identity, the hasher pool, the
 * OpenAPI document, the routes; then a timer that checks the secrets
 * directory for a new version (the Kubernetes "..data" swap) on a worker
 * every tls-reload-interval. Freed in the opposite order.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "app.h"
#include "config.h"
#include "errors.h"
#include "http.h"
#include "identity/identity.h"
#include "log.h"
#include "loop.h"
#include "secrets/keys.h"
#include "store/schema.h"
#include "store/store.h"

#include "drivers/docker/docker.h"
#include "gateway/gw.h"
#include "orchestrator/orch.h"
#include "recordings/recstore.h"
#include "api/api.h"
#include "api/api_int.h"
#include "server/serve_api.h"

#define COMPONENT "moatd"
#define HASHER_THREADS 2
#define HASHER_QUEUE 16

struct serve_api {
	struct app *app;
	struct event *keys_timer;
	bool keys_check_running;	/* loop 0 only */
	int keys_check_result;		/* written by the worker */
};

static void
keys_check_work(void *arg)
{
	struct serve_api *sa = arg;

	sa->keys_check_result = keys_reload_if_changed(sa->app->keys);
}

static void
keys_check_done(void *arg)
{
	struct serve_api *sa = arg;

	sa->keys_check_running = false;
	if (sa->keys_check_result == 1)
		log_info(COMPONENT, "reloaded keys from the secrets directory");
	else if (sa->keys_check_result < 0)
		log_error(COMPONENT, "new keys are unusable; still using the old ones",
		    LF_STR("error", moat_strerror(sa->keys_check_result)));
}

static void
on_keys_timer(evutil_socket_t fd, short what, void *arg)
{
	struct serve_api *sa = arg;

	(void)fd;
	(void)what;
	if (sa->keys_check_running)
		return;
	sa->keys_check_running = true;
	if (workpool_submit(sa->app->workers, loop_group_base(sa->app->loops, 0),
	    keys_check_work, keys_check_done, sa) != 0)
		sa->keys_check_running = false;	/* busy: next tick */
}

/* The workspaces: a runtime driver and the orchestrator. Without a
 * runtime moatd still serves everything else; the workspace API answers
 * 503 and the log says why. Any other failure (no fscrypt without
 * --insecure-plain-volumes) stops moatd. */
static int
start_workspaces(struct app *app)
{
	struct orch_options opt;
	struct driver *drv = NULL;
	char run_dir[PATH_MAX], agent[PATH_MAX], self[PATH_MAX], err[512] = "";
	char sdir[PATH_MAX], eca[PATH_MAX], ecert[PATH_MAX], ekey[PATH_MAX];
	const char *v;
	ssize_t n;
	int r;

	if ((r = docker_driver_new(&drv, config_str(app->cfg,
	    "runtime-socket"), err, sizeof(err))) != 0) {
		log_warn(COMPONENT, "no container runtime: workspaces are "
		    "unavailable", LF_STR("error", err));
		return 0;
	}
	memset(&opt, 0, sizeof(opt));
	if ((v = config_str(app->cfg, "run-dir")) != NULL && v[0] != '\0')
		snprintf(run_dir, sizeof(run_dir), "%s", v);
	else
		snprintf(run_dir, sizeof(run_dir), "%s/run", app->data_dir);
	if ((v = config_str(app->cfg, "agent-binary")) != NULL && v[0] != '\0') {
		snprintf(agent, sizeof(agent), "%s", v);
	} else if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) > 0) {
		char *slash;

		self[n] = '\0';
		if ((slash = strrchr(self, '/')) != NULL)
			*slash = '\0';
		if (snprintf(agent, sizeof(agent), "%s/moat-agent", self) >=
		    (int)sizeof(agent))
			snprintf(agent, sizeof(agent), "moat-agent");
	} else {
		snprintf(agent, sizeof(agent), "moat-agent");
	}
	opt.run_dir = run_dir;
	opt.agent_binary = agent;
	opt.interval_ms = (unsigned)config_int(app->cfg, "reconcile-interval");
	opt.ready_timeout_ms = (unsigned)config_int(app->cfg,
	    "workspace-ready-timeout");
	opt.size_check_ms = (unsigned)config_int(app->cfg,
	    "size-check-interval");
	opt.plain_volumes = config_bool(app->cfg, "insecure-plain-volumes");
	opt.stop_on_exit = config_bool(app->cfg, "stop-workspaces-on-exit");
	opt.max_per_user = (unsigned)config_int(app->cfg,
	    "max-workspaces-per-user");
	opt.max_running_per_user = (unsigned)config_int(app->cfg,
	    "max-running-per-user");
	/* The control link to moat-proxy (issue 6). */
	if ((v = config_str(app->cfg, "secrets-dir")) != NULL && v[0] != '\0')
		snprintf(sdir, sizeof(sdir), "%s", v);
	else
		snprintf(sdir, sizeof(sdir), "%s/secrets", app->data_dir);
	if (snprintf(eca, sizeof(eca), "%s/ca.crt", sdir) >= (int)sizeof(eca) ||
	    snprintf(ecert, sizeof(ecert), "%s/moatd-client.crt", sdir) >=
	    (int)sizeof(ecert) ||
	    snprintf(ekey, sizeof(ekey), "%s/moatd-client.key", sdir) >=
	    (int)sizeof(ekey)) {
		drv->ops->free(drv);
		return MOAT_ERR_TOOBIG;
	}
	opt.egress_url = config_str(app->cfg, "egress-proxy");
	opt.egress_name = config_str(app->cfg, "egress-proxy-name");
	opt.egress_ca = eca;
	opt.egress_cert = ecert;
	opt.egress_key = ekey;
	opt.egress_interval_ms = (unsigned)config_int(app->cfg,
	    "egress-sync-interval");
	if ((r = orch_new(&app->orch, app, drv, &opt, err, sizeof(err))) != 0) {
		log_error(COMPONENT, "cannot start the workspaces",
		    LF_STR("error", err));
		return r;
	}
	if ((r = orch_start(app->orch)) != 0) {
		orch_free(app->orch);
		app->orch = NULL;
		return r;
	}
	log_info(COMPONENT, "workspaces ready", LF_STR("run_dir", run_dir),
	    LF_STR("agent", agent));
	return 0;
}

/* The SSH gateway (gateway/gw.h) on ssh-listen; host keys from the
 * secrets directory, or DATA-DIR/ssh/ for a data directory made before
 * `moatd init` wrote them. */
static int
start_gateway(struct app *app, const char *secrets_dir)
{
	struct gw_options opt;
	const char *listen = config_str(app->cfg, "ssh-listen");
	char ed[PATH_MAX], ec[PATH_MAX], dir[PATH_MAX];
	const char *keys[3];
	const char *const *pf = config_list(app->cfg, "ssh-proxy-protocol-from");
	int r;

	if (listen == NULL || listen[0] == '\0')
		return 0;
	if (snprintf(ed, sizeof(ed), "%s/%s", secrets_dir, GW_HOSTKEY_ED25519) >=
	    (int)sizeof(ed) || snprintf(ec, sizeof(ec), "%s/%s", secrets_dir,
	    GW_HOSTKEY_ECDSA) >= (int)sizeof(ec))
		return MOAT_ERR_TOOBIG;
	if (access(ed, R_OK) != 0 || access(ec, R_OK) != 0) {
		if (snprintf(dir, sizeof(dir), "%s/ssh", app->data_dir) >=
		    (int)sizeof(dir))
			return MOAT_ERR_TOOBIG;
		if ((r = gw_hostkeys_ensure(dir, ed, sizeof(ed), ec,
		    sizeof(ec))) != 0) {
			log_error(COMPONENT, "cannot create SSH host keys",
			    LF_STR("dir", dir), LF_STR("error", moat_strerror(r)));
			return r;
		}
	}
	keys[0] = ed;
	keys[1] = ec;
	keys[2] = NULL;
	memset(&opt, 0, sizeof(opt));
	opt.listen = listen;
	opt.proxy_from = pf != NULL && pf[0] != NULL ? pf : NULL;
	opt.host_keys = keys;
	opt.max_startups = (unsigned)config_int(app->cfg, "ssh-max-startups");
	opt.max_sessions = (unsigned)config_int(app->cfg, "ssh-max-sessions");
	opt.login_grace_ms = (unsigned)config_int(app->cfg,
	    "ssh-login-grace-time");
	opt.keepalive_s = (unsigned)(config_int(app->cfg,
	    "ssh-keepalive-interval") / 1000);
	opt.idle_s = (unsigned)(config_int(app->cfg, "ssh-idle-timeout") / 1000);
	opt.start_timeout_ms = (unsigned)config_int(app->cfg,
	    "workspace-ready-timeout") + 30000;
	opt.log_level = config_str(app->cfg, "log-level");
	if ((r = gw_new(&app->gateway, app, &opt)) != 0 ||
	    (r = gw_start(app->gateway)) != 0) {
		gw_free(app->gateway);
		app->gateway = NULL;
		return r;
	}
	return 0;
}

static int
open_store(struct app *app)
{
	char uri[PATH_MAX + 16];
	int r;

	if (snprintf(uri, sizeof(uri), "sqlite:%s/moatd.db", app->data_dir) >=
	    (int)sizeof(uri))
		return MOAT_ERR_TOOBIG;
	if ((r = store_open(&app->store, uri, moatd_collections,
	    moatd_ncollections)) != 0)
		log_error(COMPONENT, "cannot open the store", LF_STR("uri", uri),
		    LF_STR("error", moat_strerror(r)));
	return r;
}

int
serve_api_setup(struct app *app, struct http_server *srv,
    struct serve_api **out)
{
	struct serve_api *sa;
	char path[PATH_MAX];
	const char *sdir = config_str(app->cfg, "secrets-dir");
	const char *afile = config_str(app->cfg, "audit-file");
	long long ms = config_int(app->cfg, "tls-reload-interval");
	struct timeval tv;
	int r;

	*out = NULL;
	if ((sa = calloc(1, sizeof(*sa))) == NULL)
		return MOAT_ERR_NOMEM;
	sa->app = app;
	if (app->default_org == NULL)
		app->default_org = "default";
	if (sdir == NULL || sdir[0] == '\0') {
		if (snprintf(path, sizeof(path), "%s/secrets", app->data_dir) >=
		    (int)sizeof(path)) {
			r = MOAT_ERR_TOOBIG;
			goto fail;
		}
		sdir = path;
	}
	if ((r = keys_open(&app->keys, sdir)) != 0) {
		log_error(COMPONENT, "cannot load keys from the secrets directory",
		    LF_STR("dir", sdir), LF_STR("error", moat_strerror(r)));
		goto fail;
	}
	if ((r = open_store(app)) != 0)
		goto fail;
	if ((r = recstore_open(&app->recstore, app)) != 0) {
		log_error(COMPONENT, "cannot open the recordings store",
		    LF_STR("error", moat_strerror(r)));
		goto fail;
	}
	if ((r = identity_new(&app->identity, app)) != 0) {
		log_error(COMPONENT, "cannot start identity",
		    LF_STR("error", moat_strerror(r)));
		goto fail;
	}
	if ((r = workpool_new(&app->hashers, HASHER_THREADS, HASHER_QUEUE)) != 0)
		goto fail;
	if ((r = start_workspaces(app)) != 0)
		goto fail;
	if ((r = start_gateway(app, sdir)) != 0)
		goto fail;
	if (afile != NULL && afile[0] != '\0' &&
	    (r = api_set_audit_path(app, afile)) != 0)
		goto fail;
	if ((r = api__openapi_prepare(app)) != 0 ||
	    (r = api_register(app, srv, api_routes, api_nroutes)) != 0)
		goto fail;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	sa->keys_timer = event_new(loop_group_base(app->loops, 0), -1,
	    EV_PERSIST, on_keys_timer, sa);
	if (sa->keys_timer == NULL || event_add(sa->keys_timer, &tv) != 0) {
		r = MOAT_ERR_NOMEM;
		goto fail;
	}
	log_info(COMPONENT, "API ready", LF_INT("routes", api_nroutes),
	    LF_INT("schema", store_schema_version(app->store)));
	*out = sa;
	return 0;
fail:
	serve_api_free(sa);
	return r;
}

void
serve_api_shutdown(struct serve_api *sa)
{
	if (sa != NULL && sa->keys_timer != NULL)
		event_del(sa->keys_timer);
	if (sa != NULL)
		gw_shutdown(sa->app->gateway);
}

void
serve_api_free(struct serve_api *sa)
{
	struct app *app;

	if (sa == NULL)
		return;
	app = sa->app;
	gw_free(app->gateway);
	app->gateway = NULL;
	orch_free(app->orch);
	app->orch = NULL;
	if (sa->keys_timer != NULL)
		event_free(sa->keys_timer);
	workpool_free(app->hashers);
	app->hashers = NULL;
	identity_free(app->identity);
	app->identity = NULL;
	recstore_free(app->recstore);
	app->recstore = NULL;
	store_close(app->store);
	app->store = NULL;
	keys_free(app->keys);
	app->keys = NULL;
	api_free(app);
	free(sa);
}
