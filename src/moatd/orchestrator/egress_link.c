/*
 * egress_link.c - moatd's side of the control link to moat-proxy (see
 * egress_link.h): the state document from the store, and one thread that
 * keeps moat-proxy in step with it over mutual TLS (libcurl).
 *
 * The proxy is reached at the URL's host and port, but the request names
 * the host server_name (CURLOPT_CONNECT_TO), so curl checks the proxy's
 * certificate for that name and sends it as SNI: a certificate of the
 * internal CA for another name (moatd's own, the ingress's) cannot stand
 * in for the proxy.
 */
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <curl/curl.h>

#include "app.h"
#include "buf.h"
#include "digest.h"
#include "json.h"
#include "log.h"
#include "store/schema.h"
#include "store/store.h"

#include "orchestrator/egress_link.h"
#include "orchestrator/orch_int.h"

#define C "egress-link"
#define ANSWER_MAX (1024 * 1024)

struct egress_link {
	struct app *app;
	char *url_state;		/* https://NAME:PORT/v1/state */
	char *connect_to;		/* NAME:PORT:HOST:PORT */
	char *ca, *cert, *key, *run_dir, *name;
	unsigned interval_ms, resync_ms, timeout_ms;
	CURL *curl;			/* the thread's */
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop, kicked;		/* under mu */
	/* The thread's own: */
	char pushed[65];		/* digest the proxy accepted */
	bool failing;
	uint64_t last_check_ms;
};

static pthread_once_t link_curl_once = PTHREAD_ONCE_INIT;
static int link_curl_ok;

static void
link_curl_init(void)
{
	link_curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
}

/* --- the document --- */

static json_t *
policy_doc(const json_t *stored)
{
	static const char *const keep[] = { "name", "mode", "allow", "deny" };
	json_t *p = json_object();

	for (size_t i = 0; p != NULL && i < sizeof(keep) / sizeof(keep[0]);
	    i++) {
		json_t *v = json_object_get(stored, keep[i]);

		if (v != NULL)
			json_object_set(p, keep[i], v);
	}
	return p;
}

/* Adds policy name to pols from the store (once). A policy that does not
 * exist is left out: the proxy then denies the workspaces naming it. */
static int
add_policy(struct app *app, json_t *pols, const char *name)
{
	json_t *doc = NULL;
	int r;

	if (json_object_get(pols, name) != NULL)
		return 0;
	if ((r = store_get(app->store, COLL_POLICIES, name, &doc)) != 0)
		return r == MOAT_ERR_NOTFOUND ? 0 : r;
	r = json_object_set_new(pols, name, policy_doc(doc)) == 0 ? 0 :
	    MOAT_ERR_NOMEM;
	json_decref(doc);
	return r;
}

/* The organization's default policy ("default" without settings). Cached
 * per build in orgs. */
static const char *
org_policy(struct app *app, json_t *orgs, const char *org)
{
	json_t *settings = NULL, *v;
	const char *name = "default";

	if ((v = json_object_get(orgs, org)) != NULL)
		return json_string_value(v);
	if (store_get(app->store, COLL_SETTINGS, org, &settings) == 0) {
		const char *dp = json_get_str(settings, "default_policy");

		if (dp != NULL && dp[0] != '\0')
			name = dp;
	}
	json_object_set_new(orgs, org, json_string(name));
	json_decref(settings);
	return json_string_value(json_object_get(orgs, org));
}

int
egress_link_build(struct app *app, const char *run_dir, json_t **out)
{
	json_t *docs = NULL, *pols = NULL, *list = NULL, *orgs = NULL, *d;
	size_t i;
	int r;

	*out = NULL;
	if ((r = store_list(app->store, COLL_WORKSPACES, NULL, NULL, NULL, 0,
	    &docs)) != 0)
		return r;
	r = MOAT_ERR_NOMEM;
	if ((pols = json_object()) == NULL || (list = json_array()) == NULL ||
	    (orgs = json_object()) == NULL)
		goto out;
	json_array_foreach(docs, i, d) {
		const char *state = json_get_str(d, "state");
		const char *id = json_get_str(d, "id");
		const char *org = json_get_str(d, "org");
		const char *tpol = json_get_str(json_object_get(d, "spec"),
		    "egress_policy");
		const char *opol;
		char dir[PATH_MAX];
		struct stat st;
		json_t *w;

		if (state == NULL || id == NULL || (strcmp(state, "running") != 0 &&
		    strcmp(state, "starting") != 0))
			continue;
		if (org == NULL)
			org = app->default_org != NULL ? app->default_org : "default";
		if (snprintf(dir, sizeof(dir), "%s/ws/%s/ro", run_dir, id) >=
		    (int)sizeof(dir))
			continue;
		/* A starting workspace before its run directory exists: the
		 * next pass (which kicks the link) brings it. */
		if (strcmp(state, "starting") == 0 && stat(dir, &st) != 0)
			continue;
		if ((opol = org_policy(app, orgs, org)) == NULL)
			goto out;
		if (tpol != NULL && tpol[0] == '\0')
			tpol = NULL;
		if ((r = add_policy(app, pols, opol)) != 0 ||
		    (tpol != NULL && (r = add_policy(app, pols, tpol)) != 0))
			goto out;
		r = MOAT_ERR_NOMEM;
		w = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:s,s:I,s:I}", "id", id,
		    "owner", json_get_str(d, "owner") != NULL ?
		    json_get_str(d, "owner") : "", "org", org, "policy", opol,
		    "template_policy", tpol, "socket_dir", dir, "uid_base",
		    (json_int_t)json_get_int(d, "uid_base", 0), "uid_count",
		    (json_int_t)ORCH_UID_COUNT);
		if (w == NULL || json_array_append_new(list, w) != 0)
			goto out;
	}
	if ((*out = json_pack("{s:O,s:O}", "policies", pols, "workspaces",
	    list)) == NULL)
		goto out;
	r = 0;
out:
	json_decref(docs);
	json_decref(pols);
	json_decref(list);
	json_decref(orgs);
	return r;
}

/* --- HTTP --- */

struct answer {
	struct buf b;
	bool over;
};

static size_t
on_data(char *data, size_t size, size_t nmemb, void *arg)
{
	struct answer *a = arg;
	size_t n = size * nmemb;

	if (a->b.len + n > ANSWER_MAX || buf_append(&a->b, data, n) != 0) {
		a->over = true;
		return 0;
	}
	return n;
}

/* One request: method PUT with body, or GET. *status the HTTP status;
 * *answer the parsed JSON object (new reference) when 2xx. err says what
 * went wrong, for the log. */
static int
link_request(struct egress_link *l, const char *method, const char *body,
    long *status, json_t **answer, char *err, size_t errlen)
{
	struct curl_slist *hdrs = NULL, *ct = NULL;
	struct answer a;
	char cerr[CURL_ERROR_SIZE] = "";
	CURLcode cc;
	int r = MOAT_ERR_IO;

	*status = 0;
	*answer = NULL;
	buf_init(&a.b, ANSWER_MAX);
	a.over = false;
	if (l->curl == NULL && (l->curl = curl_easy_init()) == NULL) {
		r = MOAT_ERR_NOMEM;
		moat_errf(err, errlen, "out of memory");
		goto out;
	}
	curl_easy_reset(l->curl);
	if ((ct = curl_slist_append(NULL, l->connect_to)) == NULL ||
	    (hdrs = curl_slist_append(NULL, "Content-Type: application/json"))
	    == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	curl_easy_setopt(l->curl, CURLOPT_URL, l->url_state);
	curl_easy_setopt(l->curl, CURLOPT_CONNECT_TO, ct);
	curl_easy_setopt(l->curl, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(l->curl, CURLOPT_CAINFO, l->ca);
	curl_easy_setopt(l->curl, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(l->curl, CURLOPT_SSLCERT, l->cert);
	curl_easy_setopt(l->curl, CURLOPT_SSLKEY, l->key);
	curl_easy_setopt(l->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(l->curl, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(l->curl, CURLOPT_SSLVERSION, CURL_SSLVERSION_TLSv1_2);
	curl_easy_setopt(l->curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(l->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(l->curl, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)(l->timeout_ms < 1000 ? l->timeout_ms : 1000));
	curl_easy_setopt(l->curl, CURLOPT_TIMEOUT_MS, (long)l->timeout_ms);
	curl_easy_setopt(l->curl, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(l->curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(l->curl, CURLOPT_WRITEDATA, &a);
	curl_easy_setopt(l->curl, CURLOPT_HTTPHEADER, hdrs);
	if (body != NULL) {
		curl_easy_setopt(l->curl, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(l->curl, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(l->curl, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)strlen(body));
	}
	cc = curl_easy_perform(l->curl);
	if (cc != CURLE_OK) {
		r = cc == CURLE_OPERATION_TIMEDOUT ? MOAT_ERR_TIMEOUT :
		    cc == CURLE_PEER_FAILED_VERIFICATION ||
		    cc == CURLE_SSL_CONNECT_ERROR ? MOAT_ERR_TLS : MOAT_ERR_IO;
		moat_errf(err, errlen, "%s", cerr[0] != '\0' ? cerr :
		    curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(l->curl, CURLINFO_RESPONSE_CODE, status);
	if (a.over) {
		r = MOAT_ERR_TOOBIG;
		moat_errf(err, errlen, "answer too large");
		goto out;
	}
	if (*status < 200 || *status > 299) {
		moat_errf(err, errlen, "HTTP %ld: %.*s", *status,
		    (int)(a.b.len < 300 ? a.b.len : 300), (const char *)a.b.data);
		r = MOAT_ERR_IO;
		goto out;
	}
	if ((r = json_parse_object(a.b.data, a.b.len, ANSWER_MAX, answer, err,
	    errlen)) != 0)
		goto out;
	r = 0;
out:
	curl_slist_free_all(ct);
	curl_slist_free_all(hdrs);
	buf_free(&a.b);
	return r;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
link_fail(struct egress_link *l, const char *what, const char *err)
{
	if (!l->failing)
		log_warn(C, "moat-proxy not in step; retrying", LF_STR("step",
		    what), LF_STR("error", err));
	else
		log_debug(C, "moat-proxy still not in step", LF_STR("step",
		    what), LF_STR("error", err));
	l->failing = true;
	l->pushed[0] = '\0';
}

/* One tick of the thread. */
static void
link_tick(struct egress_link *l)
{
	json_t *doc = NULL, *answer = NULL;
	char *text = NULL, digest[65], err[512] = "";
	size_t len = 0;
	long status = 0;
	bool must_push;
	int r;

	if ((r = egress_link_build(l->app, l->run_dir, &doc)) != 0) {
		link_fail(l, "store", moat_strerror(r));
		goto out;
	}
	if ((text = json_canonical(doc, &len)) == NULL) {
		link_fail(l, "encode", "out of memory");
		goto out;
	}
	if (sha256_hex(text, len, digest) != 0) {
		link_fail(l, "digest", "SHA-256 failed");
		goto out;
	}
	must_push = strcmp(digest, l->pushed) != 0;
	if (!must_push && now_ms() - l->last_check_ms >= l->resync_ms) {
		/* Does the proxy still have our version (a restart loses it)? */
		l->last_check_ms = now_ms();
		if (link_request(l, "GET", NULL, &status, &answer, err,
		    sizeof(err)) != 0) {
			link_fail(l, "check", err);
			goto out;
		}
		must_push = strcmp(json_get_str(answer, "digest") != NULL ?
		    json_get_str(answer, "digest") : "", digest) != 0;
		if (must_push)
			log_info(C, "moat-proxy has another version; pushing");
		json_decref(answer);
		answer = NULL;
	}
	if (!must_push)
		goto out;
	if (link_request(l, "PUT", text, &status, &answer, err,
	    sizeof(err)) != 0) {
		link_fail(l, "push", err);
		goto out;
	}
	if (json_array_size(json_object_get(answer, "errors")) > 0) {
		char *e = json_dumps(json_object_get(answer, "errors"),
		    JSON_COMPACT);

		link_fail(l, "sockets", e != NULL ? e : "some workspace sockets "
		    "could not be made");
		free(e);
		goto out;
	}
	if (l->failing)
		log_info(C, "moat-proxy in step again");
	l->failing = false;
	memcpy(l->pushed, digest, sizeof(l->pushed));
	l->last_check_ms = now_ms();
	log_debug(C, "state pushed", LF_INT("workspaces",
	    json_array_size(json_object_get(doc, "workspaces"))));
out:
	json_decref(answer);
	json_decref(doc);
	free(text);
}

static void *
link_thread(void *arg)
{
	struct egress_link *l = arg;

	for (;;) {
		struct timespec dl;

		pthread_mutex_lock(&l->mu);
		if (!l->kicked && !l->stop) {
			clock_gettime(CLOCK_MONOTONIC, &dl);
			dl.tv_sec += l->interval_ms / 1000;
			dl.tv_nsec += (long)(l->interval_ms % 1000) * 1000000L;
			if (dl.tv_nsec >= 1000000000L) {
				dl.tv_sec++;
				dl.tv_nsec -= 1000000000L;
			}
			while (!l->kicked && !l->stop &&
			    pthread_cond_timedwait(&l->cond, &l->mu, &dl) == 0)
				;
		}
		l->kicked = false;
		if (l->stop) {
			pthread_mutex_unlock(&l->mu);
			break;
		}
		pthread_mutex_unlock(&l->mu);
		link_tick(l);
	}
	return NULL;
}

/* --- life cycle --- */

int
egress_link_new(struct egress_link **out, struct app *app,
    const struct egress_link_opts *o, char *err, size_t errlen)
{
	struct egress_link *l = NULL;
	pthread_condattr_t ca;
	CURLU *u = NULL;
	char *host = NULL, *port = NULL, *scheme = NULL, *path = NULL;
	const char *name = o->server_name != NULL && o->server_name[0] != '\0' ?
	    o->server_name : "moat-proxy";
	int r = MOAT_ERR_INVAL;

	*out = NULL;
	pthread_once(&link_curl_once, link_curl_init);
	if (!link_curl_ok)
		return moat_fail(MOAT_ERR_IO, err, errlen, "cannot start libcurl");
	if (o->url == NULL || o->ca_file == NULL || o->cert_file == NULL ||
	    o->key_file == NULL || o->run_dir == NULL)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "incomplete "
		    "egress link options");
	for (const char *p = name; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '.'))
			return moat_fail(MOAT_ERR_INVAL, err, errlen,
			    "egress-proxy-name: not a DNS name");
	if ((u = curl_url()) == NULL)
		return MOAT_ERR_NOMEM;
	if (curl_url_set(u, CURLUPART_URL, o->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcmp(scheme, "https") != 0 ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PORT, &port, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK ||
	    strcmp(path, "/") != 0) {
		moat_errf(err, errlen, "egress-proxy: must be https://HOST:PORT");
		goto out;
	}
	r = MOAT_ERR_NOMEM;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		goto out;
	l->app = app;
	l->interval_ms = o->interval_ms > 0 ? o->interval_ms : 1000;
	l->resync_ms = o->resync_ms > 0 ? o->resync_ms : 5000;
	l->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 3000;
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (asprintf(&l->url_state, "https://%s:%s/v1/state", name, port) < 0) {
		l->url_state = NULL;
		goto out;
	}
	/* An IPv6 host comes back bracketed, as CONNECT_TO wants it. */
	if (asprintf(&l->connect_to, "%s:%s:%s:%s", name, port, host, port) < 0) {
		l->connect_to = NULL;
		goto out;
	}
	if ((l->ca = strdup(o->ca_file)) == NULL ||
	    (l->cert = strdup(o->cert_file)) == NULL ||
	    (l->key = strdup(o->key_file)) == NULL ||
	    (l->run_dir = strdup(o->run_dir)) == NULL ||
	    (l->name = strdup(name)) == NULL)
		goto out;
	*out = l;
	l = NULL;
	r = 0;
out:
	egress_link_free(l);
	curl_free(host);
	curl_free(port);
	curl_free(scheme);
	curl_free(path);
	curl_url_cleanup(u);
	return r;
}

int
egress_link_start(struct egress_link *l)
{
	if (pthread_create(&l->thread, NULL, link_thread, l) != 0)
		return MOAT_ERR_IO;
	l->started = true;
	log_info(C, "pushing workspaces to moat-proxy", LF_STR("connect_to",
	    l->connect_to), LF_STR("name", l->name));
	return 0;
}

void
egress_link_kick(struct egress_link *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->kicked = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->mu);
}

void
egress_link_free(struct egress_link *l)
{
	if (l == NULL)
		return;
	if (l->started) {
		pthread_mutex_lock(&l->mu);
		l->stop = true;
		pthread_cond_signal(&l->cond);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
	}
	if (l->curl != NULL)
		curl_easy_cleanup(l->curl);
	free(l->url_state);
	free(l->connect_to);
	free(l->ca);
	free(l->cert);
	free(l->key);
	free(l->run_dir);
	free(l->name);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->mu);
	free(l);
}
