/*
 * main.c - the moat-proxy binary, in one of two modes:
 *
 *   moat-proxy --policy FILE --listen 127.0.0.1:3128 [options]
 *
 * Standalone: every client of the TCP listener gets the policy in FILE
 * (YAML or JSON), reloaded within a second when the file changes (a bad new
 * version keeps the old one and logs an error).
 *
 *   moat-proxy --control-listen 127.0.0.1:3129 --tls-cert F --tls-key F
 *              --client-ca CA [--control-client-names moatd]
 *              [--audit-collector SOCK] [options]
 *
 * Control mode (control.h): moatd pushes the running workspaces and the
 * policies over mutual TLS (only a client certificate of CA carrying one of
 * the control client names is accepted); each workspace gets its own unix
 * socket in its run directory, which is its identity. No TCP proxy
 * listener is opened.
 *
 * Options come from the config_key table below (also --config FILE and
 * MOAT_* variables; --help lists them).
 *
 * Threads: N event loops share the proxy's connections (the TCP listener
 * with SO_REUSEPORT, or the workspace sockets' connections handed out
 * round-robin by loop 0), each with its own resolver; loop 0 also serves
 * the control endpoint and the workspace sockets; one worker thread stats
 * and parses the policy file (or checks the TLS files); the audit writer
 * (or the forwarder to moatd's collector) has its own thread. Start-up
 * order: configuration, policy, audit, proxy, listeners, loops.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "audit.h"
#include "buf.h"
#include "config.h"
#include "errors.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "auditfwd.h"
#include "control.h"
#include "proxy.h"
#include "tls.h"

#define COMPONENT "moat-proxy"

static const struct config_key proxy_keys[] = {
	{ "policy", CFG_STRING, NULL,
	  "Standalone mode: policy file (YAML or JSON) applied to every client; reloaded when it changes.", 0, 0, false },
	{ "listen", CFG_STRING, "127.0.0.1:3128",
	  "Standalone mode: address of the proxy's TCP listener.", 0, 0, false },
	{ "control-listen", CFG_STRING, NULL,
	  "Control mode: address of the internal HTTPS endpoint where moatd pushes workspaces and policies (instead of --policy).", 0, 0, false },
	{ "tls-cert", CFG_STRING, NULL,
	  "Control mode: the endpoint's certificate chain (PEM), e.g. the moat-proxy certificate of `moatd init`.", 0, 0, false },
	{ "tls-key", CFG_STRING, NULL,
	  "Control mode: the endpoint's private key (PEM).", 0, 0, false },
	{ "client-ca", CFG_STRING, NULL,
	  "Control mode: CA whose client certificates may connect (the internal CA).", 0, 0, false },
	{ "control-client-names", CFG_LIST, "moatd",
	  "Control mode: client certificate names accepted (subjectAltName DNS or CN); another certificate of the CA is refused.", 0, 0, false },
	{ "max-conns-per-workspace", CFG_INT, "256",
	  "Control mode: open connections, and requests or tunnels in flight, each workspace may have.", 1, 1000000, false },
	{ "audit-collector", CFG_STRING, NULL,
	  "moatd's audit collector socket: decisions go to moatd's audit chain (instead of --audit-file).", 0, 0, false },
	{ "resolver", CFG_STRING, NULL,
	  "DNS server to ask, ADDR:PORT (default: the system's, from /etc/resolv.conf).", 0, 0, false },
	{ "hosts-file", CFG_STRING, NULL,
	  "Hosts file answered before DNS (split-horizon names).", 0, 0, false },
	{ "metrics-listen", CFG_STRING, NULL,
	  "Address of the plain-HTTP Prometheus /metrics listener; off when unset.", 0, 0, false },
	{ "audit-file", CFG_STRING, NULL,
	  "Local audit hash chain to append decisions to (default: no audit chain).", 0, 0, false },
	{ "audit-key", CFG_STRING, NULL,
	  "PEM EC P-256 private key that signs audit checkpoints (without it, checkpoints are off).", 0, 0, false },
	{ "audit-fsync", CFG_STRING, "batch",
	  "When the audit writer calls fsync: always, batch or none.", 0, 0, false },
	{ "threads", CFG_INT, "0",
	  "Event-loop threads; 0 means one per CPU (at most 8).", 0, 64, false },
	{ "log-level", CFG_STRING, "info",
	  "debug, info, warn or error.", 0, 0, false },
	{ "access-log", CFG_BOOL, "false",
	  "Write one JSON line per HTTP request (the audit chain records decisions either way).", 0, 0, false },
	{ "connect-timeout", CFG_DURATION, "10s",
	  "Upstream connect timeout (504 when it passes).", 100, 600000, false },
	{ "dns-timeout", CFG_DURATION, "5s",
	  "DNS lookup timeout (504 when it passes).", 100, 600000, false },
	{ "idle-timeout", CFG_DURATION, "300s",
	  "A tunnel or response without a byte either way for this long is closed.", 1000, 86400000, false },
	{ "max-conns", CFG_INT, "0",
	  "Requests and tunnels in flight at once; over it, 503. 0: no cap.", 0, 10000000, false },
	{ "max-request-body", CFG_SIZE, "8M",
	  "Largest plain-HTTP request body forwarded (bodies are buffered).", 0, 1073741824, false },
	{ "policy-check-interval", CFG_DURATION, "500ms",
	  "How often the policy file (control mode: the TLS files) is checked for changes.", 50, 60000, false },
	{ "shutdown-grace", CFG_DURATION, "5s",
	  "How long open requests may take to finish at shutdown.", 0, 600000, false },
};
static const size_t proxy_nkeys = sizeof(proxy_keys) / sizeof(proxy_keys[0]);

struct app {
	struct config *cfg;
	const char *policy_path;	/* standalone mode */
	const char *control_listen;	/* control mode */
	struct loop_group *loops;
	struct workpool *workers;
	struct metrics *metrics;
	struct audit_writer *audit;
	struct auditfwd *fwd;		/* --audit-collector */
	struct proxy *proxy;
	struct http_server *srv;
	struct http_server *msrv;
	struct http_server *csrv;	/* control endpoint */
	struct tls_server *ctls;
	struct control *ctl;
	int tls_result;			/* worker's TLS check result */
	struct event *policy_timer;
	/* Policy check: the timer (loop 0) starts a job on the worker; the
	 * job's fields are touched by one side at a time. */
	bool check_running;
	struct stat last;		/* of the loaded version */
	json_t *job_policy;		/* new version parsed by the job */
	int job_result;			/* 0 unchanged/loaded, else error */
	bool job_changed;
	struct stat job_st;
	char job_err[512];
};

static bool
same_stat(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* Worker thread: stat, and parse when it changed. */
static void
policy_check_work(void *arg)
{
	struct app *a = arg;
	struct stat st;

	if (a->ctls != NULL) {
		a->tls_result = tls_server_reload_if_changed(a->ctls);
		return;
	}

	a->job_changed = false;
	a->job_result = 0;
	a->job_policy = NULL;
	if (stat(a->policy_path, &st) != 0) {
		a->job_result = moat_err_from_errno(errno);
		snprintf(a->job_err, sizeof(a->job_err), "%s: %s",
		    a->policy_path, strerror(errno));
		a->job_st = a->last;
		return;
	}
	if (same_stat(&st, &a->last))
		return;
	a->job_changed = true;
	a->job_st = st;
	a->job_result = proxy_load_policy_file(a->policy_path, &a->job_policy,
	    a->job_err, sizeof(a->job_err));
}

/* Loop 0: apply the job's result. */
static void
policy_check_done(void *arg)
{
	struct app *a = arg;
	static bool failing;	/* loop 0 only: log a failure once per version */

	a->check_running = false;
	if (a->ctls != NULL) {
		if (a->tls_result == 1)
			log_info(COMPONENT, "control TLS files reloaded");
		else if (a->tls_result < 0 && !failing)
			log_error(COMPONENT, "new control TLS files are unusable; "
			    "keeping the old ones",
			    LF_STR("error", moat_strerror(a->tls_result)));
		failing = a->tls_result < 0;
		return;
	}
	if (!a->job_changed && a->job_result == 0) {
		failing = false;
		return;
	}
	if (a->job_result != 0) {
		if (!failing || a->job_changed)
			log_error(COMPONENT, "policy file not reloaded; keeping the previous policy",
			    LF_STR("error", a->job_err));
		failing = true;
		a->last = a->job_st;	/* wait for the next change */
		return;
	}
	failing = false;
	a->last = a->job_st;
	proxy_set_policy(a->proxy, a->job_policy);
	log_info(COMPONENT, "policy reloaded", LF_STR("file", a->policy_path),
	    LF_STR("policy", json_string_value(json_object_get(a->job_policy, "name"))));
	{
		json_t *ev = audit_event_new("egress.policy_reload", "success");

		if (ev != NULL) {
			json_object_set_new(ev, "details", json_pack("{s:s,s:O}",
			    "file", a->policy_path, "policy", a->job_policy));
			if (proxy_emit(a->proxy, ev) != 0)
				log_warn(COMPONENT, "audit event dropped");
		}
	}
	json_decref(a->job_policy);
	a->job_policy = NULL;
}

static void
policy_check(struct app *a)
{
	if (a->check_running)
		return;
	a->check_running = true;
	if (workpool_submit(a->workers, loop_group_base(a->loops, 0),
	    policy_check_work, policy_check_done, a) != 0)
		a->check_running = false;
}

static void
on_policy_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	policy_check(arg);
}

/* Requests the HTTP core refuses before any route sees them (smuggling
 * shapes, oversized heads) are egress attempts too: each is audited as a
 * denial, like the ones the proxy decides itself. */
static void
observe_refused(const struct http_request *req, const char *route, int status,
    uint64_t duration_ns, void *arg)
{
	struct app *a = arg;
	const char *method = http_req_method(req);
	json_t *ev;

	(void)duration_ns;
	if (route[0] != '\0' || (a->audit == NULL && a->fwd == NULL) ||
	    (status != 400 && status != 413 && status != 414 && status != 431))
		return;
	if ((ev = audit_event_new("egress.deny", "denied")) == NULL)
		return;
	json_object_set_new(ev, "actor", json_pack("{s:s}", "addr",
	    http_req_client_addr(req)));
	if (a->ctl != NULL && http_req_conn_arg(req) != NULL) {
		char ws[64];

		control_conn_workspace(http_req_conn_arg(req), ws, sizeof(ws));
		json_object_set_new(ev, "workspace", json_string(ws));
	}
	json_object_set_new(ev, "details", json_pack("{s:s,s:i,s:s}", "reason",
	    "malformed request refused by the HTTP parser", "status", status,
	    "method", method != NULL ? method : ""));
	if (proxy_emit(a->proxy, ev) != 0)
		log_warn(COMPONENT, "could not audit a refused request");
}

static void
on_shutdown(void *arg)
{
	struct app *a = arg;

	log_info(COMPONENT, "shutting down");
	if (a->policy_timer != NULL)
		event_del(a->policy_timer);
	http_server_shutdown(a->srv);
	if (a->msrv != NULL)
		http_server_shutdown(a->msrv);
	if (a->csrv != NULL)
		http_server_shutdown(a->csrv);
	control_shutdown(a->ctl);
	proxy_shutdown(a->proxy);
}

static void
on_reload(void *arg)
{
	policy_check(arg);
}

static int
load_config(struct app *a, int argc, char **argv)
{
	extern char **environ;
	char err[512];
	int first = 0, r, lvl;

	if ((r = config_new(&a->cfg, proxy_keys, proxy_nkeys)) != 0)
		return r;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: moat-proxy --policy FILE [--listen ADDR] [options]\n"
			    "       moat-proxy --control-listen ADDR --tls-cert F "
			    "--tls-key F --client-ca F [options]\n\n");
			config_print_help(a->cfg, stdout);
			return 1;
		}
	}
	if ((r = config_load_all(a->cfg, argc, argv, environ, &first, err,
	    sizeof(err))) != 0) {
		fprintf(stderr, "moat-proxy: %s\n", err);
		return r;
	}
	if (first < argc) {
		fprintf(stderr, "moat-proxy: unexpected argument \"%s\"\n", argv[first]);
		return MOAT_ERR_INVAL;
	}
	if ((lvl = log_level_parse(config_str(a->cfg, "log-level"))) < 0) {
		fprintf(stderr, "moat-proxy: configuration key \"log-level\" must be debug, info, warn or error\n");
		return MOAT_ERR_INVAL;
	}
	log_set_level((enum log_level)lvl);
	a->policy_path = config_str(a->cfg, "policy");
	if (a->policy_path != NULL && a->policy_path[0] == '\0')
		a->policy_path = NULL;
	a->control_listen = config_str(a->cfg, "control-listen");
	if (a->control_listen != NULL && a->control_listen[0] == '\0')
		a->control_listen = NULL;
	if ((a->policy_path == NULL) == (a->control_listen == NULL)) {
		fprintf(stderr, "moat-proxy: give either --policy FILE "
		    "(standalone) or --control-listen ADDR (with moatd)\n");
		return MOAT_ERR_INVAL;
	}
	if (a->control_listen != NULL) {
		static const char *const need[] = { "tls-cert", "tls-key",
		    "client-ca" };

		for (size_t i = 0; i < 3; i++) {
			const char *v = config_str(a->cfg, need[i]);

			if (v == NULL || v[0] == '\0') {
				fprintf(stderr, "moat-proxy: --control-listen "
				    "needs --%s\n", need[i]);
				return MOAT_ERR_INVAL;
			}
		}
		if (config_list(a->cfg, "control-client-names") == NULL ||
		    config_list(a->cfg, "control-client-names")[0] == NULL) {
			fprintf(stderr, "moat-proxy: --control-client-names "
			    "may not be empty\n");
			return MOAT_ERR_INVAL;
		}
	}
	return 0;
}

static int
open_audit(struct app *a)
{
	struct audit_writer_opts ao;
	const char *file = config_str(a->cfg, "audit-file");
	const char *key = config_str(a->cfg, "audit-key");
	const char *fs = config_str(a->cfg, "audit-fsync");
	const char *coll = config_str(a->cfg, "audit-collector");
	int r;

	if (coll != NULL && coll[0] != '\0') {
		if (file != NULL && file[0] != '\0') {
			fprintf(stderr, "moat-proxy: give --audit-collector or "
			    "--audit-file, not both\n");
			return MOAT_ERR_INVAL;
		}
		if ((r = auditfwd_new(&a->fwd, coll, 0)) != 0) {
			fprintf(stderr, "moat-proxy: cannot start the audit "
			    "forwarder: %s\n", moat_strerror(r));
			return r;
		}
		log_info(COMPONENT, "audit events go to moatd's collector",
		    LF_STR("path", coll));
		return 0;
	}
	if (file == NULL || file[0] == '\0') {
		log_warn(COMPONENT, "no --audit-file: decisions are logged but not audited");
		return 0;
	}
	memset(&ao, 0, sizeof(ao));
	ao.path = file;
	ao.process_name = "moat-proxy";
	ao.key_id = "moat-proxy";
	if (strcmp(fs, "always") == 0)
		ao.fsync_policy = AUDIT_FSYNC_ALWAYS;
	else if (strcmp(fs, "none") == 0)
		ao.fsync_policy = AUDIT_FSYNC_NONE;
	else if (strcmp(fs, "batch") == 0)
		ao.fsync_policy = AUDIT_FSYNC_BATCH;
	else {
		fprintf(stderr, "moat-proxy: audit-fsync must be always, batch or none\n");
		return MOAT_ERR_INVAL;
	}
	if (key != NULL && key[0] != '\0')
		ao.checkpoint_key_file = key;
	else
		log_warn(COMPONENT, "no --audit-key: audit checkpoints are off (the chain is hashed but not signed)");
	if ((r = audit_writer_open(&a->audit, &ao)) != 0) {
		fprintf(stderr, "moat-proxy: cannot open the audit chain %s: %s\n",
		    file, moat_strerror(r));
		return r;
	}
	return 0;
}

static int
writer_emit(void *arg, json_t *ev)
{
	return audit_emit(arg, ev);
}

/* Control mode: the workspace table and the mutual-TLS endpoint moatd
 * pushes it to (loop 0 only, like the workspace sockets). */
static int
open_control(struct app *a)
{
	struct control_opts co;
	struct tls_server_opts to;
	struct http_limits lim;
	struct http_listener_opts lo;
	struct event_base *bases[64];
	int r, n = loop_group_size(a->loops);

	if (n > 64)
		n = 64;
	for (int i = 0; i < n; i++)
		bases[i] = loop_group_base(a->loops, i);
	memset(&co, 0, sizeof(co));
	co.proxy_srv = a->srv;
	co.base = bases[0];
	co.bases = bases;
	co.nbases = (size_t)n;
	co.max_conns = (unsigned)config_int(a->cfg, "max-conns-per-workspace");
	if (a->fwd != NULL) {
		co.emit = auditfwd_emit_fn;
		co.emit_arg = a->fwd;
	} else if (a->audit != NULL) {
		co.emit = writer_emit;
		co.emit_arg = a->audit;
	}
	if ((r = control_new(&a->ctl, &co)) != 0)
		return r;
	memset(&to, 0, sizeof(to));
	to.cert_file = config_str(a->cfg, "tls-cert");
	to.key_file = config_str(a->cfg, "tls-key");
	to.client_ca_file = config_str(a->cfg, "client-ca");
	to.peer_names = config_list(a->cfg, "control-client-names");
	if ((r = tls_server_new(&a->ctls, &to)) != 0) {
		fprintf(stderr, "moat-proxy: cannot load the control TLS files "
		    "(see the log): %s\n", moat_strerror(r));
		return r;
	}
	http_limits_default(&lim);
	lim.max_body = 32 * 1024 * 1024;
	lim.max_conns = 64;
	if ((r = http_server_new(&a->csrv, &lim)) != 0)
		return r;
	http_server_set_access_log(a->csrv, config_bool(a->cfg, "access-log") ?
	    "access" : NULL);
	if ((r = control_routes(a->ctl, a->csrv)) != 0)
		return r;
	memset(&lo, 0, sizeof(lo));
	lo.addr = a->control_listen;
	lo.tls = a->ctls;
	if ((r = http_server_listen(a->csrv, bases[0], &lo)) != 0) {
		fprintf(stderr, "moat-proxy: cannot listen on %s: %s\n",
		    lo.addr, moat_strerror(r));
		return r;
	}
	log_info(COMPONENT, "control endpoint listening",
	    LF_STR("addr", a->control_listen),
	    LF_INT("port", http_server_bound_port(a->csrv, 0)),
	    LF_INT("threads", n));
	return 0;
}

static int
open_servers(struct app *a)
{
	struct http_limits lim;
	struct http_listener_opts lo;
	const char *mlisten = config_str(a->cfg, "metrics-listen");
	long long maxc = config_int(a->cfg, "max-conns");
	int r, n = loop_group_size(a->loops);

	http_limits_default(&lim);
	lim.max_body = (size_t)config_int(a->cfg, "max-request-body");
	if (maxc > 0)
		lim.max_conns = (size_t)maxc;
	if ((r = http_server_new(&a->srv, &lim)) != 0)
		return r;
	if (!config_bool(a->cfg, "access-log"))
		http_server_set_access_log(a->srv, NULL);
	http_server_set_observer(a->srv, observe_refused, a);
	if ((r = proxy_routes(a->proxy, a->srv)) != 0)
		return r;
	memset(&lo, 0, sizeof(lo));
	lo.addr = config_str(a->cfg, "listen");
	lo.reuseport = n > 1;
	for (int i = 0; i < n; i++) {
		if ((r = proxy_add_base(a->proxy, loop_group_base(a->loops, i))) != 0) {
			fprintf(stderr, "moat-proxy: cannot set up the resolver: %s\n",
			    moat_strerror(r));
			return r;
		}
		if (a->control_listen != NULL) {
			if ((r = http_server_attach(a->srv,
			    loop_group_base(a->loops, i))) != 0)
				return r;
			continue;
		}
		if ((r = http_server_listen(a->srv, loop_group_base(a->loops, i), &lo)) != 0) {
			fprintf(stderr, "moat-proxy: cannot listen on %s: %s\n",
			    lo.addr, moat_strerror(r));
			return r;
		}
	}
	if (a->control_listen != NULL) {
		if ((r = open_control(a)) != 0)
			return r;
	} else {
		log_info(COMPONENT, "listening", LF_STR("addr", lo.addr),
		    LF_INT("port", http_server_bound_port(a->srv, 0)),
		    LF_INT("threads", n), LF_STR("policy_file", a->policy_path));
	}
	if (mlisten != NULL && mlisten[0] != '\0') {
		struct http_listener_opts mo;

		if ((r = http_server_new(&a->msrv, NULL)) != 0)
			return r;
		http_server_set_access_log(a->msrv, NULL);
		if ((r = http_server_route(a->msrv, "GET", "/metrics",
		    metrics_http_handler, a->metrics)) != 0)
			return r;
		memset(&mo, 0, sizeof(mo));
		mo.addr = mlisten;
		if ((r = http_server_listen(a->msrv, loop_group_base(a->loops, 0), &mo)) != 0) {
			fprintf(stderr, "moat-proxy: cannot listen on %s: %s\n",
			    mlisten, moat_strerror(r));
			return r;
		}
		log_info(COMPONENT, "metrics listening", LF_STR("addr", mlisten),
		    LF_INT("port", http_server_bound_port(a->msrv, 0)));
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct app a;
	struct proxy_opts po;
	json_t *policy = NULL;
	char err[768];
	struct timeval tv;
	long long ms;
	int r, code = 1;

	memset(&a, 0, sizeof(a));
	if (argc == 2 && strcmp(argv[1], "--config-reference") == 0) {
		/* The configuration table as Markdown, for docs/operations.md. */
		config_print_markdown(proxy_keys, sizeof(proxy_keys) /
		    sizeof(proxy_keys[0]), stdout);
		return 0;
	}
	if ((r = load_config(&a, argc - 1, argv + 1)) != 0) {
		code = r == 1 ? 0 : 2;
		goto out;
	}
	err[0] = '\0';
	if (a.policy_path != NULL && stat(a.policy_path, &a.last) != 0)
		snprintf(err, sizeof(err), "%s: %s", a.policy_path, strerror(errno));
	else if (a.policy_path != NULL && proxy_load_policy_file(a.policy_path,
	    &policy, err, sizeof(err)) != 0 && err[0] == '\0')
		snprintf(err, sizeof(err), "%s: invalid", a.policy_path);
	if (err[0] != '\0') {
		fprintf(stderr, "moat-proxy: cannot load the policy file %s\n", err);
		code = 2;
		goto out;
	}
	if ((r = metrics_new(&a.metrics)) != 0)
		goto out;
	if ((r = open_audit(&a)) != 0) {
		code = 2;
		goto out;
	}
	memset(&po, 0, sizeof(po));
	po.connect_timeout_ms = (unsigned)config_int(a.cfg, "connect-timeout");
	po.idle_timeout_ms = (unsigned)config_int(a.cfg, "idle-timeout");
	po.dns_timeout_ms = (unsigned)config_int(a.cfg, "dns-timeout");
	po.max_conns = (size_t)config_int(a.cfg, "max-conns");
	po.nameserver = config_str(a.cfg, "resolver");
	po.hosts_file = config_str(a.cfg, "hosts-file");
	if (po.nameserver != NULL && po.nameserver[0] == '\0')
		po.nameserver = NULL;
	if (po.hosts_file != NULL && po.hosts_file[0] == '\0')
		po.hosts_file = NULL;
	po.audit = a.audit;
	if (a.fwd != NULL) {
		po.emit = auditfwd_emit_fn;
		po.emit_arg = a.fwd;
	}
	po.metrics = a.metrics;
	if (a.control_listen != NULL) {
		po.ident_get = control_ident_get;
		po.ident_put = control_ident_put;
		/* ident_arg is the control, made in open_control(): set below. */
	}
	if ((r = proxy_new(&a.proxy, &po)) != 0)
		goto out;
	if (policy != NULL)
		proxy_set_policy(a.proxy, policy);
	if ((r = loop_global_init()) != 0 ||
	    (r = loop_group_new_flags(&a.loops, loop_default_threads(
	    config_int(a.cfg, "threads")), LOOP_EPOLL_CHANGELIST)) != 0 ||
	    (r = workpool_new(&a.workers, 1, 16)) != 0)
		goto out;
	loop_group_set_hooks(a.loops, on_shutdown, on_reload, &a);
	loop_group_set_grace(a.loops,
	    (unsigned)(config_int(a.cfg, "shutdown-grace") / 1000));
	if ((r = open_servers(&a)) != 0) {
		code = 2;
		goto out;
	}
	ms = config_int(a.cfg, "policy-check-interval");
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	a.policy_timer = event_new(loop_group_base(a.loops, 0), -1, EV_PERSIST,
	    on_policy_timer, &a);
	if (a.policy_timer == NULL || event_add(a.policy_timer, &tv) != 0) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if (a.ctl != NULL)
		proxy_set_ident_arg(a.proxy, a.ctl);
	if (policy != NULL)
		log_info(COMPONENT, "ready", LF_STR("policy",
		    json_string_value(json_object_get(policy, "name"))));
	else
		log_info(COMPONENT, "ready", LF_STR("mode", "control"));
	if ((r = loop_group_run(a.loops)) != 0)
		goto out;
	code = 0;
out:
	if (code != 0 && r < 0 && r != MOAT_ERR_INVAL)
		log_error(COMPONENT, "moat-proxy stopped", LF_STR("error", moat_strerror(r)));
	if (a.policy_timer != NULL)
		event_free(a.policy_timer);
	workpool_free(a.workers);
	json_decref(a.job_policy);
	http_server_free(a.csrv);
	control_free(a.ctl);		/* sockets closed and removed */
	proxy_free(a.proxy);
	http_server_free(a.srv);
	http_server_free(a.msrv);
	loop_group_free(a.loops);
	tls_server_free(a.ctls);
	auditfwd_free(a.fwd, 2000);
	audit_writer_close(a.audit);
	metrics_free(a.metrics);
	json_decref(policy);
	config_free(a.cfg);
	return code;
}
