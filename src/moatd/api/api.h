/*
 * api.h - the Core API framework: routes with permissions, authentication,
 * strict JSON bodies, audit of writes and denials, handlers on workers.
 *
 * A route is declared once in a table with its method, pattern, the one
 * permission it needs (rbac.h), the fields its JSON body may have, and its
 * handler. api_register() refuses a table entry without a permission
 * (PERM_NONE) and a PERM_PUBLIC entry that is not in rbac_public_routes.
 *
 * For every request, on the loop thread: the body is parsed strictly
 * (json.h; 400 with the field named). Then on a worker thread: the caller
 * is authenticated (identity_authenticate; 401), the permission checked
 * (403 + audit event "access.denied"), and the handler runs; it may block
 * (store). A body's verdict (400, 413, 415) is only given after the caller
 * passed authentication and the permission check, so a caller who may not
 * use a route learns nothing about its shape. Back on the loop thread the response is sent. Routes marked
 * heavy (password hashing) run on the hasher pool instead; when its queue
 * is full the answer is 429 with Retry-After.
 *
 * Every write (POST, PUT, PATCH, DELETE) that reaches its handler produces
 * one audit event: type from the route (e.g. "user.create"), outcome
 * "success" when the status is 2xx and "failure" otherwise, the actor
 * (user, roles, client address) and the target the handler names.
 */
#ifndef MOATD_API_H
#define MOATD_API_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "errors.h"
#include "http.h"
#include "identity/identity.h"
#include "json.h"
#include "rbac/rbac.h"

struct app;
struct bufferevent;
struct event_base;

#define API_MAX_BODY (64 * 1024)
/* The body limit of the routes listed in api_large_body_routes (templates
 * carry a startup script of up to 64 KiB and an environment). */
#define API_MAX_LARGE_BODY (512 * 1024)
#define API_MAX_PARAMS 4
#define API_MAX_HEADERS 4

/* One call as a handler sees it (on a worker thread). */
struct api_call {
	struct app *app;
	const char *method;		/* borrowed, valid for the call */
	const char *path;
	const char *query;		/* raw query string, "" if none */
	const char *client_addr;
	const char *user_agent;		/* may be NULL */
	const char *param_names[API_MAX_PARAMS];
	char *param_values[API_MAX_PARAMS];
	json_t *body;			/* validated object, or NULL (no body) */
	const struct principal *who;	/* NULL on public routes */

	/* Outputs, set by the handler. */
	int status;			/* default 200 */
	json_t *resp;			/* owned by the call; NULL: empty body */
	const char *err_code;		/* with status >= 400 */
	char err_message[256];
	json_t *audit_target;		/* owned; what the write acted on */
	json_t *audit_details;		/* owned; extra audit fields (no secrets) */
	char *resp_headers[API_MAX_HEADERS][2];	/* owned name/value pairs */
	const char *last_event_id;	/* Last-Event-ID header, or NULL */

	/* A non-JSON answer (api_reply_raw): sent as is with its media
	 * type when status < 400. Wiped when freed (it may be a recording). */
	char *raw_body;			/* owned */
	size_t raw_len;
	const char *raw_type;		/* static string */

	/* Streaming answer (Server-Sent Events): a handler that sets
	 * stream_fn and leaves status 200 gets, on the loop thread, the
	 * connection with a "200 text/event-stream" head already written;
	 * stream_fn owns bev and stream_arg from then on. When the client
	 * went away first, stream_free(stream_arg) is called instead. */
	void (*stream_fn)(struct app *app, void *stream_arg,
	    struct bufferevent *bev, struct event_base *base);
	void (*stream_free)(void *stream_arg);
	void *stream_arg;
};

typedef void (*api_handler_fn)(struct api_call *c);

/* A route's own checks of a body that passed its field table (name rules,
 * key parsing...): CPU only, no store, no app. MOAT_ERR_INVAL with a short
 * reason in err (never echoing values): the caller answers 400. Exposed
 * through the route table so the body fuzzer reaches every one. */
typedef int (*api_validate_fn)(const json_t *body, char *err, size_t errlen);

struct api_route {
	const char *method;
	const char *pattern;		/* http.h route pattern */
	enum perm perm;
	api_handler_fn fn;
	const struct json_field *fields; /* NULL: no body accepted */
	size_t nfields;
	const char *audit_type;		/* writes: "user.create"; NULL for reads */
	bool heavy;			/* runs on the hasher pool */
	const char *summary;		/* one line, for the OpenAPI document */
	api_validate_fn validate;	/* NULL: the field table is enough */
	bool yaml_body;			/* application/yaml accepted too (policies) */
};

/* Registers routes on srv. MOAT_ERR_INVAL (logged, naming the route) for a
 * route without a permission or a public route not on the public list. */
int api_register(struct app *app, struct http_server *srv,
    const struct api_route *routes, size_t n) MOAT_MUST_CHECK;

/* Frees what api_register() allocated for app (app->api); call once no
 * request can arrive any more (after the loops stopped). NULL is fine. */
void api_free(struct app *app);

/* Authenticates one request: identity_authenticate() unless a test put
 * something else in place. 0 or MOAT_ERR_PERM. */
typedef int (*api_auth_fn)(struct app *app, const char *bearer,
    const char *cookie, struct principal *out);
/* Both before api_register() or between it and the first request. */
int api_set_authenticator(struct app *app, api_auth_fn fn) MOAT_MUST_CHECK;
/* The audit chain file GET /api/v1/audit reads (default:
 * DATA_DIR/audit/audit.log). Copied. */
int api_set_audit_path(struct app *app, const char *path) MOAT_MUST_CHECK;

/* Internal helpers shared by the handler files (api__*) are in api_int.h. */

/* Helpers for handlers. */
const char *api_param(const struct api_call *c, const char *name);
void api_error(struct api_call *c, int status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Sets status and takes ownership of resp. */
void api_reply(struct api_call *c, int status, json_t *resp);
/* Sets status and a body that is not JSON: takes ownership of body (len
 * bytes, from malloc); content_type must be a static string. */
void api_reply_raw(struct api_call *c, int status, const char *content_type,
    char *body, size_t len);
int api_add_header(struct api_call *c, const char *name, const char *value)
    MOAT_MUST_CHECK;

/* Every route of the Core API, for registration and the permission-matrix
 * test (api/routes.c). */
extern const struct api_route api_routes[];
extern const size_t api_nroutes;

/* Routes whose bodies may reach API_MAX_LARGE_BODY instead of
 * API_MAX_BODY, as "METHOD PATTERN", NULL-terminated (api/routes.c). */
extern const char *const api_large_body_routes[];
/* The body limit of rt: API_MAX_LARGE_BODY or API_MAX_BODY. */
size_t api_max_body(const struct api_route *rt);

#endif
