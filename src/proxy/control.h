/*
 * control.h - moat-proxy's control mode: the set of running workspaces
 * moatd pushes over the internal HTTPS control link, and one unix socket
 * per workspace that is that workspace's identity.
 *
 * The link (DESIGN.md section 5, issue 6 point 2) is level-triggered:
 *   PUT /v1/state   {"policies": {NAME: policy-doc, ...},
 *                    "workspaces": [{"id", "owner", "org", "policy",
 *                      "template_policy": NAME | null, "socket_dir",
 *                      "uid_base", "uid_count"}, ...]}
 *   the proxy converges to exactly this set: it creates
 *   SOCKET_DIR/egress.sock for each new workspace (owner uid_base, the
 *   workspace's root; mode 0660), removes the sockets of workspaces no
 *   longer listed, and swaps policies in place (the next request uses
 *   them). Answer: {"digest", "workspaces": n, "errors": [{"id", "error"}]}
 *   (a workspace whose socket could not be made is listed there and
 *   retried by the next PUT even when nothing changed).
 *   GET /v1/state   what the proxy has: {"digest", "policies": [names],
 *                   "workspaces": [{"id", "owner", "org", "policy",
 *                   "template_policy", "socket", "conns"}]}
 * digest is the hex SHA-256 of the last applied document in canonical JSON
 * (json_canonical), so moatd can tell with a GET whether the proxy has its
 * version (after a proxy restart it has none: "").
 *
 * Identity: a connection on a workspace's socket is that workspace's,
 * whatever it sends; its peer's uid (SO_PEERCRED) must lie in
 * [uid_base, uid_base + uid_count) or it is refused and audited
 * (egress.deny, reason "peer uid outside the workspace's range"). Each
 * workspace may hold at most max_conns open connections and max_conns
 * requests or tunnels in flight; beyond that it gets 503 (audited).
 * A workspace's effective policy is its organization's ("policy") and,
 * when set, its template's ("template_policy"): both must allow. A name
 * that is not among "policies" leaves the workspace with no policy:
 * everything it asks is denied, with that reason.
 *
 * Threads: the control routes, the sockets and their accepting run on one
 * loop (the "control base"); accepted connections are handed round-robin
 * to the proxy's loops and served by its HTTP server
 * (http_server_adopt). control_ident_get/put (proxy_opts) run on any loop.
 */
#ifndef MOAT_PROXY_CONTROL_H
#define MOAT_PROXY_CONTROL_H

#include <stddef.h>

#include <event2/event.h>
#include <jansson.h>

#include "errors.h"
#include "http.h"
#include "proxy.h"

#define CONTROL_SOCK_NAME "egress.sock"

struct control;

struct control_opts {
	struct http_server *proxy_srv;	/* serves adopted connections; borrowed */
	struct event_base *base;	/* the control base (loop 0); borrowed */
	struct event_base *const *bases; /* loops to hand connections to */
	size_t nbases;
	unsigned max_conns;		/* per workspace; 0: 256 */
	/* Audit (one of them or none), as in proxy_opts. */
	int (*emit)(void *arg, json_t *ev);
	void *emit_arg;
};

/* bases is copied. */
int control_new(struct control **out, const struct control_opts *o)
    MOAT_MUST_CHECK;

/* Registers PUT and GET /v1/state on srv (the control HTTPS server, whose
 * listener must be on the control base only). */
int control_routes(struct control *c, struct http_server *srv)
    MOAT_MUST_CHECK;

/* proxy_opts.ident_get / ident_put (arg: the struct control). */
int control_ident_get(void *arg, void *conn_arg, struct proxy_ident *out);
void control_ident_put(void *arg, struct proxy_ident *id);

/* The workspace id of an adopted connection's conn_arg into out ("" when
 * none). Any thread. */
void control_conn_workspace(void *conn_arg, char *out, size_t outlen);

/* Applies a state document (the PUT body) now; on the control base.
 * *answer: the PUT answer (new reference). MOAT_ERR_INVAL with err for a
 * document that is not a state at all (nothing changed then). */
int control_apply(struct control *c, const json_t *doc, json_t **answer,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* Validates a state document without applying it: 0, or MOAT_ERR_INVAL
 * with err naming the field. Pure (the fuzz target drives it). */
int control_check_state(const json_t *doc, char *err, size_t errlen)
    MOAT_MUST_CHECK;

/* Shutdown begins (on the control base): stops accepting on the
 * workspace sockets, removes their files and stops the periodic check.
 * Requests in flight finish; the table stays until control_free. */
void control_shutdown(struct control *c);

/* Closes every workspace socket and removes its file (when it is still the
 * one this process made). After the loops stopped, or on the control base.
 * Then frees. NULL is fine. */
void control_free(struct control *c);

#endif
