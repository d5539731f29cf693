/*
 * orch.h - the workspace orchestrator: desired state in the store, a
 * reconciler that drives the runtime towards it (DESIGN.md section 5).
 *
 * A workspace document (collection "workspaces") carries what the API
 * asked for ("desired": running | stopped | deleted, "restart_gen") and
 * what the reconciler observed ("state": pending | starting | running |
 * stopping | stopped | deleting | failed, "reason"). The API only ever
 * writes desired state and kicks the reconciler; the reconciler alone
 * talks to the runtime driver, the volumes and the agent.
 *
 * The reconciler is one thread. Every pass it lists the store's
 * workspaces, takes a short lease on each one it acts on (a store update
 * with the revision it read, so two moatd processes sharing a store never
 * act on the same workspace at once), and runs idempotent steps: each step
 * first looks at what exists, so a moatd killed at any point converges on
 * restart. It then removes orphans: runtime objects labelled
 * moat.managed=1, volumes and per-workspace run directories that no
 * document names.
 *
 * Host layout (all created by moatd):
 *   DATA-DIR/volumes/<id>.img        the encrypted home volume (volume.h)
 *   RUN-DIR/vol/<id>/                its mount while running
 *   RUN-DIR/ws/<id>/ro/              tmpfs, mounted read-only at /run/moat:
 *                                    moat-agent, agent.conf, startup.sh,
 *                                    sshd's host key and authorized key
 *   RUN-DIR/ws/<id>/agent/           small tmpfs, writable by the workspace,
 *                                    mounted at /run/moat-agent (agent.sock)
 *
 * Threads: orch_* functions may be called from any thread; they never
 * block on the runtime (they only touch the store, which blocks on disk:
 * call them from workers).
 */
#ifndef MOATD_ORCH_H
#define MOATD_ORCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

struct app;
struct driver;
struct orch;
struct bufferevent;
struct event_base;

struct orch_options {
	const char *run_dir;		/* RUN-DIR */
	const char *agent_binary;	/* host path of moat-agent */
	unsigned interval_ms;		/* pass interval (kicks come sooner) */
	unsigned ready_timeout_ms;	/* start -> sshd answering */
	unsigned size_check_ms;		/* writable-layer size check period */
	bool plain_volumes;		/* --insecure-plain-volumes */
	bool stop_on_exit;		/* --stop-workspaces-on-exit */
	unsigned max_per_user;		/* workspaces a user may own */
	unsigned max_running_per_user;
	/* The control link to moat-proxy (egress_link.h); NULL url: none,
	 * workspaces then have no egress at all. */
	const char *egress_url;		/* https://HOST:PORT */
	const char *egress_name;	/* the proxy's certificate name */
	const char *egress_ca;		/* internal CA */
	const char *egress_cert;	/* moatd's client certificate */
	const char *egress_key;
	unsigned egress_interval_ms;
};

/* Takes ownership of drv (freed by orch_free). Checks fscrypt support and
 * refuses (MOAT_ERR_UNSUPPORTED) without it unless plain_volumes. */
int orch_new(struct orch **out, struct app *app, struct driver *drv,
    const struct orch_options *opt, char *err, size_t errlen)
    MOAT_MUST_CHECK;
/* Starts the reconciler thread. */
int orch_start(struct orch *o) MOAT_MUST_CHECK;
/* Stops the thread (finishing the step in progress) and frees. Running
 * workspaces keep running: the next moatd adopts them; with stop_on_exit
 * they are stopped first (state "stopped", desired still "running", so
 * the next moatd starts them again). NULL is fine. */
void orch_free(struct orch *o);

/* Wakes the reconciler now. */
void orch_kick(struct orch *o);

/* --- used by the API (workers) --- */

/* Quotas (orch_options): 0 or MOAT_ERR_AGAIN with the reason in err. */
int orch_check_quota(struct orch *o, const char *user_id, bool starting,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* Creates the workspace document with fresh keys (sealed) and a user
 * namespace slot; desired running. tmpl is the template document
 * (borrowed). *out is the stored document (new reference). */
int orch_create(struct orch *o, const char *owner_id, const char *owner_name,
    const char *org, const char *name, const json_t *tmpl, json_t **out,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* Sets desired state ("running", "stopped", "deleted") or bumps the
 * restart generation ("restart") on the stored document, with revision
 * retries, and kicks. */
int orch_set_desired(struct orch *o, const char *ws_id, const char *what,
    json_t **out) MOAT_MUST_CHECK;

/* user_id's personal secrets changed: the reconciler delivers them to
 * that user's running workspaces on its next pass. NULL o is fine. */
void orch_secrets_changed(struct orch *o, const char *user_id);

/* Every workspace of user_id gets desired "stopped" (user disabled). */
int orch_stop_user(struct orch *o, const char *user_id) MOAT_MUST_CHECK;

/* The API's view of a workspace document (no sealed values, no keys).
 * New reference. */
json_t *orch_view(const json_t *doc);

/* Agent log bytes from offset (logs endpoint); *out new JSON object
 * {"offset","next","data"} with control characters stripped. */
int orch_logs(struct orch *o, const json_t *doc, uint64_t offset,
    json_t **out, char *err, size_t errlen) MOAT_MUST_CHECK;
/* {"cpu_ns","memory_bytes","memory_limit","pids","disk_used","disk_total"} */
int orch_stats(struct orch *o, const json_t *doc, json_t **out, char *err,
    size_t errlen) MOAT_MUST_CHECK;

/* --- events (Server-Sent Events) --- */

/* Takes bev (a connection whose 200 head has been written) and streams the
 * workspace's events to it from the event loop of base until the client
 * goes away or the workspace is deleted. since: the last event id the
 * client saw (Last-Event-ID), 0 for the recent backlog. */
void orch_events_stream(struct orch *o, const char *ws_id, uint64_t since,
    struct bufferevent *bev, struct event_base *base);

/* The agent directory of a workspace (for the SSH gateway and tests):
 * RUN-DIR/ws/<id>/agent into out. */
int orch_agent_dir(struct orch *o, const char *ws_id, char *out,
    size_t outlen) MOAT_MUST_CHECK;

#endif
