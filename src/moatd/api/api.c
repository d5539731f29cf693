/*
 * api.c - the Core API framework (see api.h): registration with permission
 * checks, the per-request path loop thread -> worker -> loop thread, body
 * parsing, authentication, authorization, audit of denials and writes, and
 * the small helpers handlers share (api_int.h).
 *
 * A request's journey:
 *   loop thread   api_http_cb: copy what the worker needs out of the request
 *                 (the request itself belongs to the loop thread), parse the
 *                 body and remember its verdict, submit to a pool.
 *   worker        api_work: authenticate, check the permission, give the
 *                 body's verdict, validate, run the handler, audit.
 *   loop thread   api_done: send the answer, free the job.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/bufferevent.h>

#include "app.h"
#include "audit.h"
#include "errors.h"
#include "http.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "policy.h"

#include "api/api.h"
#include "api/api_int.h"

#define COMPONENT "api"
#define API_MAX_TOKEN 4096	/* bearer or cookie value */

struct api_job {
	struct api_call call;
	struct api__binding *bind;
	struct http_request *req;
	struct principal who;
	/* Owned copies behind call's borrowed strings. */
	char *method, *path, *query, *addr, *ua;
	char *bearer, *cookie;
	char *last_event_id;
	/* The body's verdict, given after authentication. */
	int body_status;
	const char *body_code;
	char body_err[256];
};

/* --- state --- */

static int
api_default_auth(struct app *app, const char *bearer, const char *cookie,
    struct principal *out)
{
	if (app->identity == NULL)
		return MOAT_ERR_PERM;
	return identity_authenticate(app->identity, bearer, cookie, out);
}

struct api_state *
api__state(struct app *app)
{
	struct api_state *st;

	if (app->api != NULL)
		return app->api;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return NULL;
	st->auth = api_default_auth;
	pthread_mutex_init(&st->mu, NULL);
	app->api = st;
	return st;
}

void
api_free(struct app *app)
{
	struct api_state *st;

	if (app == NULL || (st = app->api) == NULL)
		return;
	while (st->regs != NULL) {
		struct api__bindings *n = st->regs->next;

		free(st->regs->b);
		free(st->regs);
		st->regs = n;
	}
	free(st->audit_path);
	free(st->openapi);
	pthread_mutex_destroy(&st->mu);
	free(st);
	app->api = NULL;
}

int
api_set_authenticator(struct app *app, api_auth_fn fn)
{
	struct api_state *st = api__state(app);

	if (st == NULL)
		return MOAT_ERR_NOMEM;
	st->auth = fn != NULL ? fn : api_default_auth;
	return 0;
}

int
api_set_audit_path(struct app *app, const char *path)
{
	struct api_state *st = api__state(app);
	char *p;

	if (st == NULL || (p = strdup(path)) == NULL)
		return MOAT_ERR_NOMEM;
	free(st->audit_path);
	st->audit_path = p;
	return 0;
}

int
api__openapi_prepare(struct app *app)
{
	struct api_state *st = api__state(app);
	json_t *doc = NULL;
	char err[256];
	int r = 0;

	if (st == NULL)
		return MOAT_ERR_NOMEM;
	pthread_mutex_lock(&st->mu);
	if (st->openapi != NULL)
		goto out;
	if ((r = policy_yaml_to_json(api_openapi_yaml, api_openapi_yaml_len,
	    &doc, err, sizeof(err))) != 0) {
		log_error(COMPONENT, "the embedded OpenAPI document does not parse",
		    LF_STR("error", err));
		goto out;
	}
	if ((st->openapi = json_dumps(doc, JSON_COMPACT)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	st->openapi_len = strlen(st->openapi);
out:
	pthread_mutex_unlock(&st->mu);
	json_decref(doc);
	return r;
}

/* --- registration --- */

static bool
api_is_write(const char *method)
{
	return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

/* Fills b's parameter names from the pattern's "{name}" segments. */
static int
api_bind_params(struct api__binding *b, const char *pattern)
{
	const char *p = pattern;

	b->nparams = 0;
	while ((p = strchr(p, '{')) != NULL) {
		const char *e = strchr(p, '}');
		size_t n;

		if (e == NULL || b->nparams == API_MAX_PARAMS)
			return MOAT_ERR_INVAL;
		n = (size_t)(e - p - 1);
		if (n == 0 || n >= sizeof(b->names[0]))
			return MOAT_ERR_INVAL;
		memcpy(b->names[b->nparams], p + 1, n);
		b->names[b->nparams][n] = '\0';
		b->param_names[b->nparams] = b->names[b->nparams];
		b->nparams++;
		p = e + 1;
	}
	return 0;
}

static int
api_check_route(const struct api_route *rt)
{
	const char *why = NULL;

	if (rt->method == NULL || rt->pattern == NULL || rt->fn == NULL)
		why = "route without method, pattern or handler";
	else if ((int)rt->perm <= PERM_NONE || rt->perm >= PERM__COUNT)
		why = "route declares no permission";
	else if (rt->perm == PERM_PUBLIC &&
	    !rbac_route_is_public(rt->method, rt->pattern))
		why = "public route is not on the public list (rbac.c)";
	else if (api_is_write(rt->method) && rt->audit_type == NULL)
		why = "write route without an audit type";
	else if (!api_is_write(rt->method) && rt->fields != NULL)
		why = "read route with a body";
	else if (rt->fields == NULL && rt->nfields != 0)
		why = "field count without fields";
	if (why != NULL) {
		log_error(COMPONENT, "refusing to register route",
		    LF_STR("method", rt->method != NULL ? rt->method : "?"),
		    LF_STR("route", rt->pattern != NULL ? rt->pattern : "?"),
		    LF_STR("reason", why));
		return MOAT_ERR_INVAL;
	}
	return 0;
}

size_t
api_max_body(const struct api_route *rt)
{
	size_t ml;

	if (rt == NULL || rt->method == NULL || rt->pattern == NULL)
		return API_MAX_BODY;
	ml = strlen(rt->method);
	for (size_t i = 0; api_large_body_routes[i] != NULL; i++) {
		const char *e = api_large_body_routes[i];

		if (strncmp(e, rt->method, ml) == 0 && e[ml] == ' ' &&
		    strcmp(e + ml + 1, rt->pattern) == 0)
			return API_MAX_LARGE_BODY;
	}
	return API_MAX_BODY;
}

static void api_http_cb(struct http_request *req, void *arg);

int
api_register(struct app *app, struct http_server *srv,
    const struct api_route *routes, size_t n)
{
	struct api_state *st;
	struct api__bindings *set = NULL;
	int r = MOAT_ERR_INVAL;

	/* Every entry is checked before any is registered: a bad table
	 * registers nothing. */
	for (size_t i = 0; i < n; i++)
		if ((r = api_check_route(&routes[i])) != 0)
			return r;
	r = MOAT_ERR_NOMEM;
	if ((st = api__state(app)) == NULL ||
	    (set = calloc(1, sizeof(*set))) == NULL ||
	    (n > 0 && (set->b = calloc(n, sizeof(*set->b))) == NULL))
		goto out;
	set->n = n;
	for (size_t i = 0; i < n; i++) {
		set->b[i].app = app;
		set->b[i].route = &routes[i];
		set->b[i].max_body = api_max_body(&routes[i]);
		if ((r = api_bind_params(&set->b[i], routes[i].pattern)) != 0) {
			log_error(COMPONENT, "refusing to register route",
			    LF_STR("route", routes[i].pattern),
			    LF_STR("reason", "bad or too many parameters"));
			goto out;
		}
	}
	/* From here the bindings belong to the state (routes may point at
	 * them even when a later one fails). */
	set->next = st->regs;
	st->regs = set;
	for (size_t i = 0; i < n; i++) {
		if ((r = http_server_route(srv, routes[i].method,
		    routes[i].pattern, api_http_cb, &set->b[i])) != 0) {
			log_error(COMPONENT, "cannot register route",
			    LF_STR("method", routes[i].method),
			    LF_STR("route", routes[i].pattern),
			    LF_STR("error", moat_strerror(r)));
			return r;
		}
	}
	return 0;
out:
	if (set != NULL) {
		free(set->b);
		free(set);
	}
	return r;
}

/* --- helpers for handlers --- */

const char *
api_param(const struct api_call *c, const char *name)
{
	for (size_t i = 0; i < API_MAX_PARAMS; i++)
		if (c->param_names[i] != NULL &&
		    strcmp(c->param_names[i], name) == 0)
			return c->param_values[i];
	return NULL;
}

/* Drops a raw answer set earlier. */
static void
api_raw_clear(struct api_call *c)
{
	if (c->raw_body != NULL) {
		explicit_bzero(c->raw_body, c->raw_len);
		free(c->raw_body);
	}
	c->raw_body = NULL;
	c->raw_len = 0;
	c->raw_type = NULL;
}

void
api_error(struct api_call *c, int status, const char *code,
    const char *fmt, ...)
{
	va_list ap;

	json_decref(c->resp);
	c->resp = NULL;
	api_raw_clear(c);
	c->status = status;
	c->err_code = code;
	va_start(ap, fmt);
	vsnprintf(c->err_message, sizeof(c->err_message), fmt, ap);
	va_end(ap);
}

void
api_reply(struct api_call *c, int status, json_t *resp)
{
	if (c->resp != resp)
		json_decref(c->resp);
	api_raw_clear(c);
	c->resp = resp;
	c->status = status;
	c->err_code = NULL;
	c->err_message[0] = '\0';
}

void
api_reply_raw(struct api_call *c, int status, const char *content_type,
    char *body, size_t len)
{
	json_decref(c->resp);
	c->resp = NULL;
	if (c->raw_body != body)
		api_raw_clear(c);
	c->raw_body = body;
	c->raw_len = body != NULL ? len : 0;
	c->raw_type = content_type;
	c->status = status;
	c->err_code = NULL;
	c->err_message[0] = '\0';
}

int
api_add_header(struct api_call *c, const char *name, const char *value)
{
	for (size_t i = 0; i < API_MAX_HEADERS; i++) {
		if (c->resp_headers[i][0] != NULL)
			continue;
		c->resp_headers[i][0] = strdup(name);
		c->resp_headers[i][1] = strdup(value);
		if (c->resp_headers[i][0] == NULL || c->resp_headers[i][1] == NULL) {
			free(c->resp_headers[i][0]);
			free(c->resp_headers[i][1]);
			c->resp_headers[i][0] = c->resp_headers[i][1] = NULL;
			return MOAT_ERR_NOMEM;
		}
		return 0;
	}
	return MOAT_ERR_TOOBIG;
}

void
api__fail(struct api_call *c, int r, const char *what)
{
	switch (r) {
	case MOAT_ERR_NOTFOUND:
		api_error(c, 404, "not_found", "%s not found", what);
		break;
	case MOAT_ERR_EXISTS:
		api_error(c, 409, "exists", "%s already exists", what);
		break;
	case MOAT_ERR_CONFLICT:
		api_error(c, 409, "conflict",
		    "%s was changed concurrently; retry", what);
		break;
	case MOAT_ERR_INVAL:
		api_error(c, 400, "invalid_request", "invalid %s", what);
		break;
	case MOAT_ERR_PERM:
		api_error(c, 403, "forbidden", "not allowed");
		break;
	case MOAT_ERR_AGAIN:
		api_error(c, 429, "busy", "too many requests; retry later");
		break;
	default:
		log_error(COMPONENT, "internal failure", LF_STR("what", what),
		    LF_STR("path", c->path), LF_STR("error", moat_strerror(r)));
		api_error(c, 500, "internal", "internal error");
		break;
	}
}

json_t *
api__public(const json_t *doc)
{
	static const char *const drop[] = { "sealed", "password_hash", "hash",
	    "token_hash", "rev", NULL };
	json_t *v = json_deep_copy(doc);

	if (v == NULL || !json_is_object(v))
		return v;
	for (size_t i = 0; drop[i] != NULL; i++)
		json_object_del(v, drop[i]);
	return v;
}

json_t *
api__roles_json(role_mask roles)
{
	json_t *a = json_array();

	for (int r = 0; a != NULL && r < ROLE__COUNT; r++)
		if ((roles & (1u << r)) != 0)
			json_array_append_new(a, json_string(rbac_role_name(r)));
	return a;
}

int
api__roles_from_json(struct api_call *c, const json_t *arr, role_mask *out)
{
	const char *names[ROLE__COUNT * 2];
	char err[160];
	size_t n = json_array_size(arr);

	if (!json_is_array(arr) || n > ROLE__COUNT * 2) {
		api_error(c, 400, "invalid_request",
		    "roles must be a list of at most %d role names",
		    ROLE__COUNT * 2);
		return MOAT_ERR_INVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if ((names[i] = json_string_value(json_array_get(arr, i))) == NULL) {
			api_error(c, 400, "invalid_request",
			    "roles[%zu] must be a string", i);
			return MOAT_ERR_INVAL;
		}
	}
	if (rbac_mask_parse(names, n, out, err, sizeof(err)) != 0) {
		api_error(c, 400, "invalid_request", "%s", err);
		return MOAT_ERR_INVAL;
	}
	return 0;
}

static int
api_hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch = tolower(ch);
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

int
api__query(const char *query, const char *name, char *out, size_t outlen)
{
	size_t nl = strlen(name);
	const char *p = query;

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, '&');
		size_t seg = end != NULL ? (size_t)(end - p) : strlen(p);

		if (seg > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			size_t o = 0;

			for (size_t i = nl + 1; i < seg; i++) {
				int ch = (unsigned char)p[i];

				if (ch == '%') {
					int h, l;

					if (i + 2 >= seg ||
					    (h = api_hexval((unsigned char)p[i + 1])) < 0 ||
					    (l = api_hexval((unsigned char)p[i + 2])) < 0)
						return MOAT_ERR_INVAL;
					ch = h * 16 + l;
					i += 2;
				} else if (ch == '+') {
					ch = ' ';
				}
				if (ch == 0 || o + 1 >= outlen)
					return MOAT_ERR_INVAL;
				out[o++] = (char)ch;
			}
			out[o] = '\0';
			return 1;
		} else if (seg == nl && strncmp(p, name, nl) == 0) {
			if (outlen == 0)
				return MOAT_ERR_INVAL;
			out[0] = '\0';
			return 1;
		}
		p = end != NULL ? end + 1 : NULL;
	}
	return 0;
}

void
api__target(struct api_call *c, const char *type, const char *key,
    const char *value)
{
	json_decref(c->audit_target);
	c->audit_target = json_pack("{s:s,s:s}", "type", type, key,
	    value != NULL ? value : "");
}

void
api__rfc3339(int64_t t, char out[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (gmtime_r(&tt, &tm) == NULL ||
	    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(out, 32, "1970-01-01T00:00:00Z");
}

/* --- the request path --- */

static void
api_job_free(struct api_job *j)
{
	if (j == NULL)
		return;
	json_decref(j->call.body);
	json_decref(j->call.resp);
	json_decref(j->call.audit_target);
	json_decref(j->call.audit_details);
	api_raw_clear(&j->call);
	for (size_t i = 0; i < API_MAX_PARAMS; i++)
		free(j->call.param_values[i]);
	for (size_t i = 0; i < API_MAX_HEADERS; i++) {
		free(j->call.resp_headers[i][0]);
		free(j->call.resp_headers[i][1]);
	}
	free(j->method);
	free(j->path);
	free(j->query);
	free(j->addr);
	free(j->ua);
	free(j->last_event_id);
	if (j->call.stream_free != NULL && j->call.stream_arg != NULL)
		j->call.stream_free(j->call.stream_arg);
	if (j->bearer != NULL) {
		explicit_bzero(j->bearer, strlen(j->bearer));
		free(j->bearer);
	}
	if (j->cookie != NULL) {
		explicit_bzero(j->cookie, strlen(j->cookie));
		free(j->cookie);
	}
	explicit_bzero(&j->who, sizeof(j->who));
	free(j);
}

/* "Bearer X" (scheme case-insensitive) -> a copy of X; anything else NULL. */
static char *
api_bearer(const char *authz)
{
	const char *v;

	if (authz == NULL || strncasecmp(authz, "Bearer ", 7) != 0)
		return NULL;
	v = authz + 7;
	while (*v == ' ')
		v++;
	if (*v == '\0' || strlen(v) > API_MAX_TOKEN)
		return NULL;
	return strdup(v);
}

/* The value of the moat_session cookie, or NULL. */
static char *
api_cookie(const char *hdr)
{
	const char *p = hdr;

	while (p != NULL && *p != '\0') {
		const char *end;
		size_t n;

		while (*p == ' ' || *p == ';')
			p++;
		end = strchr(p, ';');
		n = end != NULL ? (size_t)(end - p) : strlen(p);
		if (n > 13 && strncmp(p, "moat_session=", 13) == 0) {
			size_t vl = n - 13;

			while (vl > 0 && p[13 + vl - 1] == ' ')
				vl--;
			if (vl == 0 || vl > API_MAX_TOKEN)
				return NULL;
			return strndup(p + 13, vl);
		}
		p = end;
	}
	return NULL;
}

/* The media type of a Content-Type header without parameters, compared
 * case-insensitively. */
static bool
api_ctype_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	if (ct == NULL || strncasecmp(ct, want, n) != 0)
		return false;
	return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static void
api_body_error(struct api_job *j, int status, const char *code,
    const char *msg)
{
	j->body_status = status;
	j->body_code = code;
	snprintf(j->body_err, sizeof(j->body_err), "%s", msg);
}

/* Parses the body on the loop thread; a failure is remembered in the job
 * and answered after authentication. */
static void
api_parse_body(struct api_job *j, struct http_request *req)
{
	const struct api_route *rt = j->bind->route;
	const char *ct = http_req_header(req, "Content-Type");
	const uint8_t *body;
	size_t len = 0;
	char err[200];
	json_t *v = NULL;
	int r;

	body = http_req_body(req, &len);
	if (len == 0) {
		if (rt->fields == NULL)
			return;
		/* No body: as an empty object, so missing required fields
		 * are named. */
		if ((v = json_object()) == NULL) {
			api_body_error(j, 500, "internal", "internal error");
			return;
		}
		if (json_check_fields(v, rt->fields, rt->nfields, err,
		    sizeof(err)) != 0) {
			json_decref(v);
			api_body_error(j, 400, "invalid_request", err);
			return;
		}
		j->call.body = v;
		return;
	}
	if (rt->fields == NULL) {
		api_body_error(j, 400, "invalid_request",
		    "this request takes no body");
		return;
	}
	if (len > j->bind->max_body) {
		api_body_error(j, 413, "too_large", "the body is too large");
		return;
	}
	if (rt->yaml_body && (api_ctype_is(ct, "application/yaml") ||
	    api_ctype_is(ct, "application/x-yaml") ||
	    api_ctype_is(ct, "text/yaml"))) {
		if (policy_yaml_to_json((const char *)body, len, &v, err,
		    sizeof(err)) != 0) {
			api_body_error(j, 400, "invalid_request", err);
			return;
		}
		if ((r = json_check_fields(v, rt->fields, rt->nfields, err,
		    sizeof(err))) != 0) {
			json_decref(v);
			api_body_error(j, 400, "invalid_request", err);
			return;
		}
		j->call.body = v;
		return;
	}
	if (!api_ctype_is(ct, "application/json")) {
		api_body_error(j, 415, "unsupported_media_type",
		    rt->yaml_body ?
		    "the body must be application/json or application/yaml" :
		    "the body must be application/json");
		return;
	}
	if ((r = json_parse_request(body, len, j->bind->max_body, rt->fields,
	    rt->nfields, &v, err, sizeof(err))) != 0) {
		api_body_error(j, r == MOAT_ERR_TOOBIG ? 413 : 400,
		    r == MOAT_ERR_TOOBIG ? "too_large" : "invalid_request", err);
		return;
	}
	j->call.body = v;
}

static json_t *
api_actor_of(const struct principal *p, const char *addr)
{
	if (p == NULL)
		return json_pack("{s:s}", "addr", addr);
	return json_pack("{s:s,s:s,s:s,s:o,s:s,s:s}", "user", p->username,
	    "user_id", p->user_id, "org", p->org, "roles",
	    api__roles_json(p->roles), "addr", addr, "auth",
	    p->token_id[0] != '\0' ? "token" : "session");
}

static json_t *
api_actor(const struct api_job *j)
{
	return api_actor_of(j->call.who, j->addr);
}

int
api__audit(struct api_call *c, const char *type, const char *outcome,
    json_t *target, json_t *details)
{
	struct app *app = c->app;
	json_t *ev = NULL;
	int r = MOAT_ERR_NOMEM;

	if (app->audit == NULL) {
		r = 0;		/* no audit log configured (tests) */
		goto out;
	}
	if (!audit_writer_healthy(app->audit)) {
		r = MOAT_ERR_NOSPACE;
		goto out;
	}
	if ((ev = audit_event_new(type, outcome)) == NULL)
		goto out;
	json_object_set_new(ev, "actor", api_actor_of(c->who,
	    c->client_addr));
	if (target != NULL)
		json_object_set(ev, "target", target);
	if (details != NULL)
		json_object_set(ev, "details", details);
	r = audit_emit(app->audit, ev);
	ev = NULL;
	if (r != 0)
		log_warn(COMPONENT, "audit event not recorded",
		    LF_STR("type", type), LF_STR("error", moat_strerror(r)));
out:
	json_decref(ev);
	json_decref(target);
	json_decref(details);
	return r;
}

static void
api_emit(struct api_job *j, json_t *ev)
{
	struct app *app = j->call.app;
	int r;

	if (ev == NULL)
		return;
	if (app->audit == NULL) {
		json_decref(ev);
		return;
	}
	if ((r = audit_emit(app->audit, ev)) != 0)
		log_warn(COMPONENT, "audit event not recorded",
		    LF_STR("error", moat_strerror(r)));
}

static void
api_audit_denied(struct api_job *j, const char *reason)
{
	json_t *ev = audit_event_new("access.denied", "denied");

	if (ev == NULL)
		return;
	json_object_set_new(ev, "actor", api_actor(j));
	json_object_set_new(ev, "target", json_pack("{s:s,s:s}", "method",
	    j->method, "path", j->path));
	json_object_set_new(ev, "details", json_pack("{s:s,s:s}", "reason",
	    reason, "permission", rbac_perm_name(j->bind->route->perm)));
	api_emit(j, ev);
}

static void
api_audit_write(struct api_job *j)
{
	struct api_call *c = &j->call;
	const struct api_route *rt = j->bind->route;
	bool ok = c->status >= 200 && c->status < 300;
	json_t *ev = audit_event_new(rt->audit_type, ok ? "success" : "failure");
	json_t *details;

	if (ev == NULL)
		return;
	json_object_set_new(ev, "actor", api_actor(j));
	if (c->audit_target != NULL) {
		json_object_set(ev, "target", c->audit_target);
	} else {
		json_object_set_new(ev, "target", json_pack("{s:s,s:s}",
		    "method", j->method, "path", j->path));
	}
	details = c->audit_details != NULL ? json_deep_copy(c->audit_details) :
	    json_object();
	if (details != NULL) {
		json_object_set_new(details, "status", json_integer(c->status));
		if (!ok && c->err_code != NULL)
			json_object_set_new(details, "error",
			    json_string(c->err_code));
		json_object_set_new(ev, "details", details);
	}
	api_emit(j, ev);
}

static void
api_work(void *arg)
{
	struct api_job *j = arg;
	struct api_call *c = &j->call;
	const struct api_route *rt = j->bind->route;
	struct app *app = c->app;
	bool write = api_is_write(j->method);
	char err[200];

	if (rt->perm != PERM_PUBLIC) {
		struct api_state *st = app->api;

		if (st->auth(app, j->bearer, j->cookie, &j->who) != 0) {
			api_error(c, 401, "unauthenticated",
			    "authentication required");
			api_audit_denied(j, "unauthenticated");
			return;
		}
		c->who = &j->who;
		if (!rbac_allows(j->who.roles, rt->perm)) {
			api_error(c, 403, "forbidden",
			    "this needs the %s permission",
			    rbac_perm_name(rt->perm));
			api_audit_denied(j, "forbidden");
			return;
		}
	}
	if (j->body_status != 0) {
		api_error(c, j->body_status, j->body_code, "%s", j->body_err);
		return;
	}
	if (rt->validate != NULL && c->body != NULL &&
	    rt->validate(c->body, err, sizeof(err)) != 0) {
		api_error(c, 400, "invalid_request", "%s", err);
		return;
	}
	if (write && app->audit != NULL && !audit_writer_healthy(app->audit)) {
		/* Refuse rather than act unaudited (DESIGN.md section 7). */
		api_error(c, 503, "unavailable",
		    "the audit log cannot take events; try again later");
		if (api_add_header(c, "Retry-After", "5") != 0)
			log_warn(COMPONENT, "Retry-After header dropped");
		return;
	}
	rt->fn(c);
	if (c->status >= 500 && c->err_code == NULL)
		c->err_code = "internal";
	if (write)
		api_audit_write(j);
}

/* Hands the connection to the handler's stream function (api.h). */
static void
api_stream(struct api_job *j)
{
	static const char head[] = "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/event-stream\r\n"
	    "Cache-Control: no-store\r\n"
	    "X-Accel-Buffering: no\r\n"
	    "Connection: close\r\n\r\n";
	struct api_call *c = &j->call;
	struct event_base *base = http_req_base(j->req);
	struct bufferevent *bev = http_req_take_conn(j->req);

	if (bev != NULL) {
		if (bufferevent_write(bev, head, sizeof(head) - 1) == 0) {
			c->stream_fn(c->app, c->stream_arg, bev, base);
			c->stream_arg = NULL;	/* the stream owns it */
		} else {
			bufferevent_free(bev);
		}
	}
	api_job_free(j);
}

static void
api_done(void *arg)
{
	struct api_job *j = arg;
	struct api_call *c = &j->call;
	struct http_request *req = j->req;
	bool hdr_ok = true;

	for (size_t i = 0; i < API_MAX_HEADERS; i++)
		if (c->resp_headers[i][0] != NULL &&
		    http_resp_header(req, c->resp_headers[i][0],
		    c->resp_headers[i][1]) != 0)
			hdr_ok = false;
	if (http_resp_header(req, "Cache-Control", "no-store") != 0)
		hdr_ok = false;
	if (c->status == 401 &&
	    http_resp_header(req, "WWW-Authenticate", "Bearer") != 0)
		hdr_ok = false;
	if (!hdr_ok)
		log_warn(COMPONENT, "response header dropped",
		    LF_STR("path", j->path));
	if (c->stream_fn != NULL && c->status == 200) {
		api_stream(j);
		return;
	}
	if (c->status >= 400) {
		http_respond_error(req, c->status,
		    c->err_code != NULL ? c->err_code : "error",
		    c->err_message[0] != '\0' ? c->err_message :
		    http_status_text(c->status));
	} else if (c->raw_body != NULL) {
		http_respond(req, c->status, c->raw_type != NULL ? c->raw_type :
		    "application/octet-stream", c->raw_body, c->raw_len);
	} else if (c->resp != NULL) {
		http_respond_json(req, c->status, c->resp);
	} else {
		http_respond(req, c->status == 200 ? 204 : c->status, NULL,
		    NULL, 0);
	}
	api_job_free(j);
}

static char *
api_dup(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static void
api_http_cb(struct http_request *req, void *arg)
{
	struct api__binding *b = arg;
	const struct api_route *rt = b->route;
	struct app *app = b->app;
	struct workpool *pool = rt->heavy && app->hashers != NULL ?
	    app->hashers : app->workers;
	struct api_job *j = calloc(1, sizeof(*j));
	const char *ua, *lei;
	int r;

	if (j == NULL)
		goto nomem;
	j->bind = b;
	j->req = req;
	j->method = api_dup(http_req_method(req));
	j->path = api_dup(http_req_path(req));
	j->query = api_dup(http_req_query(req));
	j->addr = api_dup(http_req_client_addr(req));
	if ((ua = http_req_header(req, "User-Agent")) != NULL)
		j->ua = strndup(ua, 256);
	if ((lei = http_req_header(req, "Last-Event-ID")) != NULL &&
	    (j->last_event_id = strndup(lei, 32)) == NULL)
		goto nomem;
	j->bearer = api_bearer(http_req_header(req, "Authorization"));
	j->cookie = api_cookie(http_req_header(req, "Cookie"));
	if (j->method == NULL || j->path == NULL || j->query == NULL ||
	    j->addr == NULL || (ua != NULL && j->ua == NULL))
		goto nomem;
	for (size_t i = 0; i < b->nparams; i++) {
		const char *v = http_req_param(req, b->param_names[i]);

		j->call.param_names[i] = b->param_names[i];
		if ((j->call.param_values[i] = api_dup(v)) == NULL)
			goto nomem;
	}
	j->call.app = app;
	j->call.method = j->method;
	j->call.path = j->path;
	j->call.query = j->query;
	j->call.client_addr = j->addr;
	j->call.user_agent = j->ua;
	j->call.last_event_id = j->last_event_id;
	j->call.status = 200;
	api_parse_body(j, req);
	if (pool == NULL)
		goto nomem;
	r = workpool_submit(pool, http_req_base(req), api_work, api_done, j);
	if (r == 0)
		return;
	api_job_free(j);
	if (http_resp_header(req, "Retry-After", "1") != 0) {
		/* The answer still goes out without the hint. */
	}
	if (r == MOAT_ERR_AGAIN && rt->heavy)
		http_respond_error(req, 429, "busy",
		    "too many requests in progress; retry shortly");
	else
		http_respond_error(req, 503, "busy",
		    "the server is busy; retry shortly");
	return;
nomem:
	api_job_free(j);
	http_respond_error(req, 503, "busy", "the server is busy");
}
