/*
 * gw.h - the SSH gateway (issue 5): moatd's listener on ssh-listen, one
 * session process per connection, authorization in moatd, the live
 * session table behind GET/DELETE /api/v1/sessions.
 *
 * Parent (this module, in moatd): accepts on an event loop (optional
 * PROXY protocol from configured networks), spawns `moatd ssh-session`
 * (its own executable, /proc/self/exe) with the client socket as fd 3 and
 * a control socket (gwctl.h) as fd 4 and nothing else, and tracks each
 * child. It answers the child's key queries from the store (on workers),
 * starts a stopped workspace, dials the workspace's sshd through the
 * agent socket and hands the child that socket and the access key; it
 * stores recordings, writes the child's audit events under the identity
 * it established itself, and pings the agent's idle clock on activity.
 * Limits: at most max_startups unauthenticated children (further
 * connections are closed at once), and a child not authenticated within
 * login_grace_ms is killed. Every 2 s the authenticated sessions are
 * checked against the store: a disabled user or a deleted key ends them.
 *
 * Child (gwsess.c): `moatd ssh-session`.
 *
 * Threads: gw_start/gw_shutdown/gw_free on loop 0's thread; gw_sessions
 * and gw_session_end from any thread (API workers).
 */
#ifndef MOATD_GW_H
#define MOATD_GW_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "errors.h"

struct app;
struct gw;

struct gw_options {
	const char *listen;		/* "127.0.0.1:2222" */
	const char *const *proxy_from;	/* CIDRs sending PROXY v1/v2; NULL */
	const char *const *host_keys;	/* private key files, NULL-terminated */
	unsigned max_startups;		/* unauthenticated children at once */
	unsigned max_sessions;		/* all children at once */
	unsigned login_grace_ms;
	unsigned keepalive_s;		/* SSH keepalive to idle clients */
	unsigned idle_s;		/* 0: no idle timeout */
	unsigned start_timeout_ms;	/* a stopped workspace to be running */
	const char *log_level;		/* for the children */
};

/* Host key file names in the secrets directory (written by moatd init;
 * serve creates missing ones in DATA-DIR/ssh/ for older directories). */
#define GW_HOSTKEY_ED25519 "ssh-host-ed25519.key"
#define GW_HOSTKEY_ECDSA "ssh-host-ecdsa.key"

int gw_new(struct gw **out, struct app *app, const struct gw_options *opt)
    MOAT_MUST_CHECK;
/* Binds and starts accepting on loop 0 of app->loops. */
int gw_start(struct gw *g) MOAT_MUST_CHECK;
/* Stops accepting and ends every session (SIGTERM to the children). */
void gw_shutdown(struct gw *g);
void gw_free(struct gw *g);

/* The live sessions: a new JSON array of {"id", "pid", "user",
 * "workspace", "owner", "client_addr", "started_at", "authenticated",
 * "bytes_in", "bytes_out", "forwards"}. */
json_t *gw_sessions(struct gw *g);
/* Ends session id: the client is told why and the child is killed within
 * a second. MOAT_ERR_NOTFOUND when there is no such session. */
int gw_session_end(struct gw *g, const char *id, const char *why)
    MOAT_MUST_CHECK;

/* Generates the gateway's Ed25519 and ECDSA host keys (OpenSSH private
 * key text; caller wipes and frees each). */
int gw_hostkeys_generate(char **ed25519, size_t *ed_len, char **ecdsa,
    size_t *ec_len) MOAT_MUST_CHECK;
/* Makes sure dir holds both host key files (creating missing ones, mode
 * 0600); their paths into ed_path and ec_path. */
int gw_hostkeys_ensure(const char *dir, char *ed_path, size_t ed_len,
    char *ec_path, size_t ec_len) MOAT_MUST_CHECK;

/* `moatd ssh-session`: run by the gateway only. */
int moatd_ssh_session_main(int argc, char **argv);

#endif
