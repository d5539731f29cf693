/*
 * serve.c - `moatd serve` (see serve.h).
 *
 * Start-up order: configuration, logging, audit writer (nothing may happen
 * unaudited), TLS, HTTP servers, then the loops. Shutdown runs the other
 * way: stop accepting, let open requests finish within the grace period,
 * write the final audit checkpoint.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
#include "tls.h"

#include "app.h"
#include "server/serve.h"
#include "server/serve_api.h"

#define COMPONENT "moatd"

const struct config_key moatd_serve_keys[] = {
	{ "data-dir", CFG_STRING, NULL,
	  "Data directory created by `moatd init` (required).", 0, 0, false },
	{ "listen", CFG_STRING, "127.0.0.1:8443",
	  "Address of the HTTPS listener (API, UI, health).", 0, 0, false },
	{ "metrics-listen", CFG_STRING, "127.0.0.1:2112",
	  "Address of the plain-HTTP Prometheus /metrics listener; empty turns it off.", 0, 0, false },
	{ "plain-listen", CFG_STRING, NULL,
	  "Extra plain-HTTP listener for development and benchmarks; loopback addresses only.", 0, 0, false },
	{ "secrets-dir", CFG_STRING, NULL,
	  "Kubernetes-Secret-style directory with TLS material and keys (default DATA-DIR/secrets).", 0, 0, false },
	{ "client-ca", CFG_STRING, NULL,
	  "Require client certificates from this CA on the HTTPS listener (the ingress mTLS hop).", 0, 0, false },
	{ "client-names", CFG_LIST, "ingress",
	  "With --client-ca: client certificate names accepted (subjectAltName DNS or CN).", 0, 0, false },
	{ "forwarded-from-names", CFG_LIST, "ingress",
	  "Client certificate names whose X-Forwarded-For header is believed.", 0, 0, false },
	{ "proxy-protocol-from", CFG_LIST, NULL,
	  "Expect PROXY protocol v1/v2 on the HTTPS listener from these balancer networks (CIDR list).", 0, 0, false },
	{ "threads", CFG_INT, "0",
	  "Event-loop threads for the HTTPS listener; 0 means one per CPU (at most 8).", 0, 64, false },
	{ "workers", CFG_INT, "2",
	  "Worker threads for blocking work (disk, hashing).", 1, 64, false },
	{ "log-level", CFG_STRING, "info",
	  "debug, info, warn or error.", 0, 0, false },
	{ "access-log", CFG_BOOL, "true",
	  "Write one JSON line per HTTP request.", 0, 0, false },
	{ "audit-file", CFG_STRING, NULL,
	  "The audit hash chain (default DATA-DIR/audit/audit.log).", 0, 0, false },
	{ "audit-collector", CFG_STRING, NULL,
	  "Unix socket where other processes hand moatd audit events (default DATA-DIR/run/audit.sock); each moatd sharing a data directory needs its own.", 0, 0, false },
	{ "audit-fsync", CFG_STRING, "batch",
	  "When the audit writer calls fsync: always, batch or none.", 0, 0, false },
	{ "audit-disk-reserve", CFG_SIZE, "64M",
	  "Below this much free disk moatd refuses new work rather than lose audit events.", 0, 0, false },
	{ "audit-checkpoint-interval", CFG_DURATION, "60s",
	  "How often the audit chain gets a signed checkpoint.", 1000, 86400000, false },
	{ "tls-reload-interval", CFG_DURATION, "2s",
	  "How often TLS files are checked for changes.", 100, 3600000, false },
	{ "shutdown-grace", CFG_DURATION, "10s",
	  "How long open requests may take to finish at shutdown.", 0, 600000, false },
	{ "runtime-socket", CFG_STRING, NULL,
	  "Docker Engine API socket of the container runtime (default: DOCKER_HOST, then the usual Podman and Docker paths); without one the workspace API answers 503.", 0, 0, false },
	{ "run-dir", CFG_STRING, NULL,
	  "Where workspaces' run directories and volume mounts live (default DATA-DIR/run).", 0, 0, false },
	{ "agent-binary", CFG_STRING, NULL,
	  "The moat-agent executable copied into each workspace (default: next to moatd).", 0, 0, false },
	{ "reconcile-interval", CFG_DURATION, "2s",
	  "How often the reconciler compares every workspace with the runtime.", 100, 3600000, false },
	{ "workspace-ready-timeout", CFG_DURATION, "60s",
	  "How long a starting workspace may take until its sshd answers.", 1000, 3600000, false },
	{ "size-check-interval", CFG_DURATION, "10s",
	  "How often the size of each running workspace's writable root layer is checked.", 500, 3600000, false },
	{ "insecure-plain-volumes", CFG_BOOL, "false",
	  "Run workspaces on unencrypted home volumes when the host cannot do fscrypt (logged loudly).", 0, 0, false },
	{ "stop-workspaces-on-exit", CFG_BOOL, "false",
	  "On shutdown, stop the running workspaces (containers removed, home volumes locked) and start them again when moatd next starts: for development (make run), where nothing should outlive Ctrl-C.", 0, 0, false },
	{ "max-workspaces-per-user", CFG_INT, "10",
	  "Workspaces one user may own; 0 means no limit.", 0, 100000, false },
	{ "max-running-per-user", CFG_INT, "5",
	  "Workspaces one user may have running at once; 0 means no limit.", 0, 100000, false },
	/* The control link to moat-proxy (orchestrator/egress_link.h). */
	{ "egress-proxy", CFG_STRING, NULL,
	  "moat-proxy's control endpoint, https://HOST:PORT: moatd pushes the running workspaces and their policies there (client certificate SECRETS-DIR/moatd-client.crt/.key, proxy checked against SECRETS-DIR/ca.crt); without it workspaces have no egress.", 0, 0, false },
	{ "egress-proxy-name", CFG_STRING, "moat-proxy",
	  "The name moat-proxy's certificate must carry.", 0, 0, false },
	{ "egress-sync-interval", CFG_DURATION, "1s",
	  "How often moatd compares what moat-proxy should know with what it pushed (changes go at once).", 100, 600000, false },
	{ "ssh-listen", CFG_STRING, "127.0.0.1:2222",
	  "Address of the SSH gateway; empty turns it off.", 0, 0, false },
	{ "ssh-public-address", CFG_STRING, NULL,
	  "HOST:PORT that SSH clients dial to reach the gateway (a load balancer, a public name), given to `moat ssh` and `moat config-ssh` with the host keys (default: the ssh-listen value).", 0, 0, false },
	{ "ssh-proxy-protocol-from", CFG_LIST, NULL,
	  "Expect PROXY protocol v1/v2 on the SSH gateway from these balancer networks (CIDR list).", 0, 0, false },
	{ "ssh-max-startups", CFG_INT, "64",
	  "Unauthenticated SSH connections at once; more are closed at once.", 1, 100000, false },
	{ "ssh-max-sessions", CFG_INT, "1000",
	  "SSH connections (one process each) at once.", 1, 100000, false },
	{ "ssh-login-grace-time", CFG_DURATION, "60s",
	  "How long an SSH client has to authenticate.", 1000, 3600000, false },
	{ "ssh-keepalive-interval", CFG_DURATION, "30s",
	  "SSH keepalive to quiet clients (TCP keepalive finds dead ones too).", 1000, 3600000, false },
	{ "ssh-idle-timeout", CFG_DURATION, "0",
	  "End SSH sessions idle this long (no bytes either way, no open port forward); 0 means never.", 0, 604800000, false },
};
const size_t moatd_serve_nkeys = sizeof(moatd_serve_keys) / sizeof(moatd_serve_keys[0]);

struct server {
	struct config *cfg;
	char data_dir[PATH_MAX];
	char secrets_dir[PATH_MAX];
	struct loop_group *loops;
	struct tls_server *tls;
	struct http_server *api;
	struct http_server *metrics_http;
	struct metrics *metrics;
	struct metric *m_requests;
	struct metric *m_duration;
	struct audit_writer *audit;
	struct workpool *workers;
	struct event *tls_timer;
	bool tls_check_running;	/* a reload check is on a worker (loop 0 only) */
	int tls_check_result;	/* written by the worker, read in its done */
	struct app app;		/* the Core API's view (serve_api.h) */
	struct serve_api *sapi;
};

/* --- paths --- */

static int
path_join(char *out, size_t outlen, const char *a, const char *b)
{
	int n = snprintf(out, outlen, "%s/%s", a, b);

	return n < 0 || (size_t)n >= outlen ? MOAT_ERR_TOOBIG : 0;
}

static int
mkdir_p0700(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	return moat_err_from_errno(errno);
}

/* Reads a small text file (a key id) into out, trimming the newline. */
static int
read_small_file(const char *path, char *out, size_t outlen)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return moat_err_from_errno(errno);
	n = fread(out, 1, outlen - 1, f);
	fclose(f);
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' '))
		out[--n] = '\0';
	return n > 0 ? 0 : MOAT_ERR_PARSE;
}

/* --- handlers --- */

static void
handle_healthz(struct http_request *req, void *arg)
{
	static const char body[] = "{\"status\":\"ok\"}";

	(void)arg;
	http_respond(req, 200, "application/json", body, sizeof(body) - 1);
}

static void
handle_readyz(struct http_request *req, void *arg)
{
	struct server *s = arg;

	if (!audit_writer_healthy(s->audit)) {
		static const char body[] =
		    "{\"status\":\"not ready\",\"reasons\":[\"audit disk below reserve\"]}";
		http_respond(req, 503, "application/json", body, sizeof(body) - 1);
		return;
	}
	static const char ok[] = "{\"status\":\"ready\"}";
	http_respond(req, 200, "application/json", ok, sizeof(ok) - 1);
}

/* Paths under /api/ that no Core API route matches. An anonymous caller
 * gets the same audited 401 as on a real route, so the answer says nothing
 * about which paths exist; a caller presenting credentials learns only that
 * the path is unknown (the route list is public in /api/v1/openapi.json). */
static void
handle_api_unknown(struct http_request *req, void *arg)
{
	struct server *s = arg;
	const char *cookie = http_req_header(req, "Cookie");
	json_t *ev;

	if (http_req_header(req, "Authorization") != NULL ||
	    (cookie != NULL && strstr(cookie, "moat_session=") != NULL)) {
		http_respond_error(req, 404, "not_found", "no such API route");
		return;
	}
	if ((ev = audit_event_new("access.denied", "denied")) != NULL) {
		json_object_set_new(ev, "actor", json_pack("{s:s}", "addr",
		    http_req_client_addr(req)));
		json_object_set_new(ev, "target", json_pack("{s:s,s:s}",
		    "method", http_req_method(req), "path", http_req_path(req)));
		json_object_set_new(ev, "details", json_pack("{s:s}", "reason",
		    "unauthenticated"));
		if (audit_emit(s->audit, ev) != 0)
			log_warn(COMPONENT, "audit writer is not healthy");
	}
	if (http_resp_header(req, "WWW-Authenticate", "Bearer") != 0) {
		/* The 401 still goes out, without the hint. */
	}
	http_respond_error(req, 401, "unauthenticated",
	    "authentication required");
}

/* --- metrics --- */

static const char *
method_label(const char *m)
{
	static const char *const known[] = { "GET", "HEAD", "POST", "PUT",
	    "DELETE", "PATCH", "OPTIONS", "CONNECT", NULL };

	for (size_t i = 0; known[i] != NULL; i++)
		if (strcmp(m, known[i]) == 0)
			return known[i];
	return "other";
}

static void
observe_request(const struct http_request *req, const char *route, int status,
    uint64_t duration_ns, void *arg)
{
	struct server *s = arg;
	char code[8];
	const char *labels[3];
	const char *rlabel[1];

	snprintf(code, sizeof(code), "%d", status);
	labels[0] = route[0] != '\0' ? route : "unmatched";
	labels[1] = method_label(http_req_method(req));
	labels[2] = code;
	metric_add(s->m_requests, labels, 1);
	rlabel[0] = labels[0];
	metric_observe(s->m_duration, rlabel, (double)duration_ns / 1e9);
}

static int64_t
gauge_open_conns(void *arg)
{
	struct server *s = arg;

	return (int64_t)http_server_open_conns(s->api);
}

static int64_t
gauge_rss(void *arg)
{
	long pages = 0, rss = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	(void)arg;
	if (f == NULL)
		return 0;
	if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
		rss = 0;
	fclose(f);
	return (int64_t)rss * sysconf(_SC_PAGESIZE);
}

static int
setup_metrics(struct server *s)
{
	static const char *const req_labels[] = { "route", "method", "code", NULL };
	static const char *const dur_labels[] = { "route", NULL };
	static const double bounds[] = { 0.0005, 0.001, 0.0025, 0.005, 0.01,
	    0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 };
	int r;

	if ((r = metrics_new(&s->metrics)) != 0)
		return r;
	s->m_requests = metrics_counter(s->metrics, "moatd_http_requests_total",
	    "HTTP requests by route, method and status code.", req_labels);
	s->m_duration = metrics_histogram(s->metrics,
	    "moatd_http_request_duration_seconds",
	    "HTTP request latency by route.", dur_labels, bounds,
	    sizeof(bounds) / sizeof(bounds[0]));
	if (s->m_requests == NULL || s->m_duration == NULL)
		return MOAT_ERR_NOMEM;
	if ((r = metrics_gauge_fn(s->metrics, "moatd_http_open_connections",
	    "Open HTTP connections on the API listener.", gauge_open_conns, s)) != 0)
		return r;
	return metrics_gauge_fn(s->metrics, "process_resident_memory_bytes",
	    "Resident memory size in bytes.", gauge_rss, NULL);
}

/* --- TLS reload ---
 * Checking the files means stat(2) and, on change, reading them: blocking
 * work, so the timer hands it to a worker and logs the outcome back on
 * loop 0. At most one check runs at a time. */

static void
tls_check_work(void *arg)
{
	struct server *s = arg;

	s->tls_check_result = tls_server_reload_if_changed(s->tls);
}

static void
tls_check_done(void *arg)
{
	struct server *s = arg;

	s->tls_check_running = false;
	if (s->tls_check_result == 1)
		log_info(COMPONENT, "reloaded TLS certificate and key");
	else if (s->tls_check_result < 0)
		log_error(COMPONENT, "new TLS files are unusable; still serving the old ones",
		    LF_STR("error", moat_strerror(s->tls_check_result)));
}

static void
on_tls_timer(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;

	(void)fd;
	(void)what;
	if (s->tls_check_running)
		return;
	s->tls_check_running = true;
	if (workpool_submit(s->workers, loop_group_base(s->loops, 0),
	    tls_check_work, tls_check_done, s) != 0)
		s->tls_check_running = false;	/* busy: try at the next tick */
}

/* --- lifecycle --- */

static void
on_shutdown(void *arg)
{
	struct server *s = arg;
	json_t *ev;

	log_info(COMPONENT, "shutting down");
	if (s->tls_timer != NULL)
		event_del(s->tls_timer);
	serve_api_shutdown(s->sapi);
	http_server_shutdown(s->api);
	if (s->metrics_http != NULL)
		http_server_shutdown(s->metrics_http);
	if ((ev = audit_event_new("moatd.stop", "success")) != NULL &&
	    audit_emit(s->audit, ev) != 0)
		log_warn(COMPONENT, "could not audit shutdown");
}

static void
on_reload(void *arg)
{
	struct server *s = arg;

	log_info(COMPONENT, "SIGHUP: checking TLS files");
	on_tls_timer(-1, 0, s);
}

static bool
is_loopback_addr(const char *addr)
{
	return strncmp(addr, "127.", 4) == 0 || strncmp(addr, "[::1]:", 6) == 0 ||
	    strncmp(addr, "localhost:", 10) == 0;
}

static int
open_audit(struct server *s)
{
	struct audit_writer_opts ao = { 0 };
	char key[PATH_MAX], kid_path[PATH_MAX], dir[PATH_MAX], sock[PATH_MAX];
	char path[PATH_MAX], kid[128];
	const char *fsync_mode = config_str(s->cfg, "audit-fsync");
	const char *audit_file = config_str(s->cfg, "audit-file");
	int r;

	if ((r = path_join(key, sizeof(key), s->secrets_dir, "audit-signing.pem")) != 0 ||
	    (r = path_join(kid_path, sizeof(kid_path), s->secrets_dir, "audit-signing.kid")) != 0 ||
	    (r = path_join(dir, sizeof(dir), s->data_dir, "run")) != 0 ||
	    (r = mkdir_p0700(dir)) != 0 ||
	    (r = path_join(sock, sizeof(sock), dir, "audit.sock")) != 0)
		return r;
	if (config_str(s->cfg, "audit-collector") != NULL &&
	    config_str(s->cfg, "audit-collector")[0] != '\0' &&
	    snprintf(sock, sizeof(sock), "%s", config_str(s->cfg,
	    "audit-collector")) >= (int)sizeof(sock))
		return MOAT_ERR_TOOBIG;
	if (audit_file == NULL) {
		if ((r = path_join(dir, sizeof(dir), s->data_dir, "audit")) != 0 ||
		    (r = mkdir_p0700(dir)) != 0 ||
		    (r = path_join(path, sizeof(path), dir, "audit.log")) != 0)
			return r;
		audit_file = path;
	}
	if (read_small_file(kid_path, kid, sizeof(kid)) != 0)
		snprintf(kid, sizeof(kid), "audit");
	if (strcmp(fsync_mode, "always") == 0)
		ao.fsync_policy = AUDIT_FSYNC_ALWAYS;
	else if (strcmp(fsync_mode, "batch") == 0)
		ao.fsync_policy = AUDIT_FSYNC_BATCH;
	else if (strcmp(fsync_mode, "none") == 0)
		ao.fsync_policy = AUDIT_FSYNC_NONE;
	else {
		log_error(COMPONENT, "configuration key \"audit-fsync\" must be always, batch or none");
		return MOAT_ERR_INVAL;
	}
	ao.path = audit_file;
	ao.checkpoint_key_file = key;
	ao.key_id = kid;
	ao.checkpoint_interval_ms = (unsigned)config_int(s->cfg, "audit-checkpoint-interval");
	ao.disk_reserve_bytes = (uint64_t)config_int(s->cfg, "audit-disk-reserve");
	ao.collector_path = sock;
	ao.process_name = "moatd";
	if ((r = audit_writer_open(&s->audit, &ao)) != 0)
		log_error(COMPONENT, "cannot open the audit chain",
		    LF_STR("path", audit_file), LF_STR("error", moat_strerror(r)));
	return r;
}

static int
open_tls(struct server *s)
{
	struct tls_server_opts to = { 0 };
	char cert[PATH_MAX], key[PATH_MAX];
	int r;

	if ((r = path_join(cert, sizeof(cert), s->secrets_dir, "tls.crt")) != 0 ||
	    (r = path_join(key, sizeof(key), s->secrets_dir, "tls.key")) != 0)
		return r;
	to.cert_file = cert;
	to.key_file = key;
	to.client_ca_file = config_str(s->cfg, "client-ca");
	if (to.client_ca_file != NULL && to.client_ca_file[0] == '\0')
		to.client_ca_file = NULL;
	if (to.client_ca_file != NULL)
		to.peer_names = config_list(s->cfg, "client-names");
	return tls_server_new(&s->tls, &to);
}

static int
open_http(struct server *s)
{
	struct http_limits lim;
	struct http_listener_opts lo = { 0 };
	const char *plain = config_str(s->cfg, "plain-listen");
	const char *mlisten = config_str(s->cfg, "metrics-listen");
	const char *const *proxy_from = config_list(s->cfg, "proxy-protocol-from");
	int r, n = loop_group_size(s->loops);

	http_limits_default(&lim);
	if ((r = http_server_new(&s->api, &lim)) != 0)
		return r;
	if (!config_bool(s->cfg, "access-log"))
		http_server_set_access_log(s->api, NULL);
	http_server_set_observer(s->api, observe_request, s);
	if ((r = http_server_route(s->api, "GET", "/healthz", handle_healthz, s)) != 0 ||
	    (r = http_server_route(s->api, "GET", "/readyz", handle_readyz, s)) != 0 ||
	    (r = http_server_route(s->api, "*", "/api/*", handle_api_unknown, s)) != 0)
		return r;
	/* The Core API (serve_api.h): store, keys, identity, its routes. */
	s->app.cfg = s->cfg;
	s->app.data_dir = s->data_dir;
	s->app.audit = s->audit;
	s->app.loops = s->loops;
	s->app.workers = s->workers;
	s->app.metrics = s->metrics;
	if ((r = serve_api_setup(&s->app, s->api, &s->sapi)) != 0)
		return r;

	lo.addr = config_str(s->cfg, "listen");
	lo.tls = s->tls;
	lo.proxy_from = proxy_from != NULL && proxy_from[0] != NULL ? proxy_from : NULL;
	lo.xff_from_names = config_list(s->cfg, "forwarded-from-names");
	lo.reuseport = n > 1;
	for (int i = 0; i < n; i++) {
		if ((r = http_server_listen(s->api, loop_group_base(s->loops, i), &lo)) != 0) {
			log_error(COMPONENT, "cannot listen", LF_STR("addr", lo.addr),
			    LF_STR("error", moat_strerror(r)));
			return r;
		}
	}
	log_info(COMPONENT, "listening", LF_STR("addr", lo.addr),
	    LF_STR("proto", "https"), LF_INT("threads", n),
	    LF_BOOL("client_certs", s->tls != NULL &&
	    tls_server_requires_client_cert(s->tls)),
	    LF_BOOL("proxy_protocol", lo.proxy_from != NULL));

	if (plain != NULL && plain[0] != '\0') {
		struct http_listener_opts po = lo;

		if (!is_loopback_addr(plain)) {
			log_error(COMPONENT, "plain-listen accepts loopback addresses only",
			    LF_STR("addr", plain));
			return MOAT_ERR_INVAL;
		}
		po.addr = plain;
		po.tls = NULL;
		po.proxy_from = NULL;
		po.xff_from_names = NULL;
		for (int i = 0; i < n; i++)
			if ((r = http_server_listen(s->api, loop_group_base(s->loops, i), &po)) != 0) {
				log_error(COMPONENT, "cannot listen", LF_STR("addr", plain),
				    LF_STR("error", moat_strerror(r)));
				return r;
			}
		log_info(COMPONENT, "listening", LF_STR("addr", plain), LF_STR("proto", "http"));
	}

	if (mlisten != NULL && mlisten[0] != '\0') {
		struct http_listener_opts mo = { 0 };

		if ((r = http_server_new(&s->metrics_http, &lim)) != 0)
			return r;
		http_server_set_access_log(s->metrics_http, NULL);
		if ((r = http_server_route(s->metrics_http, "GET", "/metrics", metrics_http_handler, s->metrics)) != 0)
			return r;
		mo.addr = mlisten;
		if ((r = http_server_listen(s->metrics_http, loop_group_base(s->loops, 0), &mo)) != 0) {
			log_error(COMPONENT, "cannot listen", LF_STR("addr", mlisten),
			    LF_STR("error", moat_strerror(r)));
			return r;
		}
		log_info(COMPONENT, "listening", LF_STR("addr", mlisten), LF_STR("proto", "metrics"));
	}
	return 0;
}

static int
load_config(struct server *s, int argc, char **argv)
{
	extern char **environ;
	char err[512];
	int first = 0, r, lvl;
	const char *dir, *sdir;

	if ((r = config_new(&s->cfg, moatd_serve_keys, moatd_serve_nkeys)) != 0)
		return r;
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			printf("usage: moatd [serve] --data-dir DIR [options]\n\n");
			config_print_help(s->cfg, stdout);
			return 1;
		}
	}
	if ((r = config_load_all(s->cfg, argc, argv, environ, &first, err, sizeof(err))) != 0) {
		fprintf(stderr, "moatd: %s\n", err);
		return r;
	}
	if (first < argc) {
		fprintf(stderr, "moatd: unexpected argument \"%s\"\n", argv[first]);
		return MOAT_ERR_INVAL;
	}
	if ((lvl = log_level_parse(config_str(s->cfg, "log-level"))) < 0) {
		fprintf(stderr, "moatd: configuration key \"log-level\" must be debug, info, warn or error\n");
		return MOAT_ERR_INVAL;
	}
	log_set_level((enum log_level)lvl);
	if ((dir = config_str(s->cfg, "data-dir")) == NULL || dir[0] == '\0') {
		fprintf(stderr, "moatd: --data-dir is required (create one with `moatd init DIR`)\n");
		return MOAT_ERR_INVAL;
	}
	if (realpath(dir, s->data_dir) == NULL) {
		fprintf(stderr, "moatd: data directory %s: %s (create it with `moatd init %s`)\n",
		    dir, strerror(errno), dir);
		return MOAT_ERR_NOTFOUND;
	}
	sdir = config_str(s->cfg, "secrets-dir");
	if (sdir != NULL && sdir[0] != '\0') {
		if (snprintf(s->secrets_dir, sizeof(s->secrets_dir), "%s", sdir) >=
		    (int)sizeof(s->secrets_dir))
			return MOAT_ERR_TOOBIG;
	} else if ((r = path_join(s->secrets_dir, sizeof(s->secrets_dir),
	    s->data_dir, "secrets")) != 0)
		return r;
	return 0;
}

int
moatd_serve_main(int argc, char **argv)
{
	struct server s;
	struct timeval tv;
	json_t *ev;
	int r, code = 1;
	long long reload_ms;

	memset(&s, 0, sizeof(s));
	if ((r = load_config(&s, argc, argv)) != 0) {
		code = r == 1 ? 0 : 2;
		goto out;
	}
	if ((r = loop_global_init()) != 0 ||
	    (r = loop_group_new(&s.loops, loop_default_threads(config_int(s.cfg,
	    "threads")))) != 0 ||
	    (r = workpool_new(&s.workers, (int)config_int(s.cfg, "workers"), 1024)) != 0)
		goto out;
	loop_group_set_hooks(s.loops, on_shutdown, on_reload, &s);
	loop_group_set_grace(s.loops,
	    (unsigned)(config_int(s.cfg, "shutdown-grace") / 1000));
	if ((r = open_audit(&s)) != 0 || (r = open_tls(&s)) != 0 ||
	    (r = setup_metrics(&s)) != 0 || (r = open_http(&s)) != 0)
		goto out;

	reload_ms = config_int(s.cfg, "tls-reload-interval");
	tv.tv_sec = reload_ms / 1000;
	tv.tv_usec = (reload_ms % 1000) * 1000;
	s.tls_timer = event_new(loop_group_base(s.loops, 0), -1, EV_PERSIST,
	    on_tls_timer, &s);
	if (s.tls_timer == NULL || event_add(s.tls_timer, &tv) != 0) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((ev = audit_event_new("moatd.start", "success")) != NULL) {
		json_object_set_new(ev, "details", json_pack("{s:s}", "listen",
		    config_str(s.cfg, "listen")));
		if (audit_emit(s.audit, ev) != 0)
			log_warn(COMPONENT, "audit writer is not healthy at start");
	}
	log_info(COMPONENT, "ready", LF_STR("data_dir", s.data_dir));
	if ((r = loop_group_run(s.loops)) != 0)
		goto out;
	code = 0;
out:
	if (code != 0 && r < 0 && r != MOAT_ERR_INVAL)
		log_error(COMPONENT, "moatd stopped", LF_STR("error", moat_strerror(r)));
	if (s.tls_timer != NULL)
		event_free(s.tls_timer);
	/* Workers before the bases their completions go to. */
	workpool_free(s.workers);
	serve_api_free(s.sapi);
	http_server_free(s.api);
	http_server_free(s.metrics_http);
	loop_group_free(s.loops);
	tls_server_free(s.tls);
	audit_writer_close(s.audit);
	metrics_free(s.metrics);
	config_free(s.cfg);
	return code;
}
