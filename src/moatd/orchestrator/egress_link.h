/*
 * egress_link.h - moatd's side of the control link to moat-proxy (issue 6
 * point 2; moat-proxy's side is src/proxy/control.h).
 *
 * moatd tells moat-proxy the full set of workspaces that are running or
 * starting and the policies they use: PUT /v1/state on moat-proxy's
 * internal HTTPS endpoint, with moatd's client certificate
 * (SECRETS-DIR/moatd-client.crt/.key), checking the proxy's certificate
 * against the internal CA (SECRETS-DIR/ca.crt) and its name ("moat-proxy"
 * by default; the URL's host is only where to connect). The document:
 *   {"policies": {NAME: {"name","mode","allow","deny"}, ...},
 *    "workspaces": [{"id", "owner", "org",
 *      "policy": the organization's default_policy (settings; "default"),
 *      "template_policy": the workspace spec's egress_policy or null,
 *      "socket_dir": RUN-DIR/ws/<id>/ro, "uid_base", "uid_count"}]}
 * with only the policies some workspace names.
 *
 * The link is level-triggered and has its own thread, so nothing here
 * slows the reconciler: every interval (and at once when kicked, which the
 * reconciler does after each pass) the thread builds the document from the
 * store; it PUTs when the document changed since the last push the proxy
 * accepted, when the last push failed, or when a GET /v1/state shows that
 * the proxy has another version (it restarted) - that check runs every
 * resync period. Requests have short timeouts; failures are logged once
 * per outage and retried on the next tick.
 */
#ifndef MOATD_EGRESS_LINK_H
#define MOATD_EGRESS_LINK_H

#include <jansson.h>

#include "errors.h"

struct app;
struct egress_link;

struct egress_link_opts {
	const char *url;		/* https://HOST:PORT of moat-proxy */
	const char *server_name;	/* its certificate's name; NULL: "moat-proxy" */
	const char *ca_file;		/* the internal CA */
	const char *cert_file;		/* moatd's client certificate */
	const char *key_file;
	const char *run_dir;		/* RUN-DIR (socket_dir = RUN-DIR/ws/ID/ro) */
	unsigned interval_ms;		/* 0: 1000 */
	unsigned resync_ms;		/* 0: 5000 */
	unsigned timeout_ms;		/* per request; 0: 3000 */
};

/* Copies o's strings. MOAT_ERR_INVAL (err says why) for a URL that is not
 * https://HOST:PORT. */
int egress_link_new(struct egress_link **out, struct app *app,
    const struct egress_link_opts *o, char *err, size_t errlen)
    MOAT_MUST_CHECK;

/* Starts the thread. */
int egress_link_start(struct egress_link *l) MOAT_MUST_CHECK;

/* Wakes the thread now (any thread; never blocks). NULL is fine. */
void egress_link_kick(struct egress_link *l);

/* Stops the thread and frees. NULL is fine. */
void egress_link_free(struct egress_link *l);

/* The state document from the store (blocking: the link's thread or a
 * worker). *out: new reference. */
int egress_link_build(struct app *app, const char *run_dir, json_t **out)
    MOAT_MUST_CHECK;

#endif
