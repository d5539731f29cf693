/*
 * orch_int.h - what the orchestrator's files share: the struct orch, the
 * workspace document helpers (orch.c), the reconciler's steps
 * (reconcile.c), the host-side run directories (wsrun.c) and key
 * generation (wskeys.c).
 */
#ifndef MOATD_ORCH_INT_H
#define MOATD_ORCH_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "orchestrator/orch.h"
#include "orchestrator/volume.h"
#include "store/schema.h"

#define ORCH_COMPONENT "orchestrator"


/* User namespaces: each workspace gets a slot; slot s maps container ids
 * 0..65535 to host ids ORCH_UID_START + s * 65536 onwards (inside the
 * subuid/subgid range of the `containers` user that scripts/setup adds). */
#define ORCH_UID_START 2147483648u
#define ORCH_UID_COUNT 65536u
#define ORCH_UID_SLOTS 32766u
#define ORCH_WS_UID 1000u		/* the workspace user inside */
#define ORCH_LEASE_S 120

struct ws_events;
struct egress_link;

struct orch {
	struct app *app;
	struct driver *drv;
	struct ws_events *events;
	struct orch_options opt;
	char run_dir[PATH_MAX];
	char agent_binary[PATH_MAX];
	char vol_dir[PATH_MAX];		/* DATA-DIR/volumes */
	char mnt_dir[PATH_MAX];		/* RUN-DIR/vol */
	struct volume_paths vpaths;
	char instance[160];		/* host/pid/start: lease holder */
	char installation[40];		/* runtime label (schema.h) */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop;			/* under mu */
	bool kicked;			/* under mu */
	char **secrets_dirty;		/* under mu: user ids to re-deliver */
	size_t nsecrets_dirty;
	uint64_t last_size_check_ms;	/* reconciler thread only */
	struct egress_link *egress;	/* NULL without --egress-proxy */
};

/* --- orch.c --- */
uint64_t orch__now_ms(void);
/* True when doc's lease is held by another live process. */
bool orch__lease_foreign(struct orch *o, const json_t *doc);
/* Saves the reconciler's observed fields of doc (state, reason, lease,
 * done_restart_gen, observed) onto the stored document, re-reading and
 * merging when the API changed desired state meanwhile. Refused
 * (MOAT_ERR_CONFLICT) when another process holds the lease. On success doc
 * is the stored document (updated in place). */
int orch__save(struct orch *o, json_t *doc) MOAT_MUST_CHECK;
/* Sets state (and reason, "" to clear) on doc, saves, publishes a state
 * event. */
int orch__set_state(struct orch *o, json_t *doc, const char *state,
    const char *reason) MOAT_MUST_CHECK;
/* One audit event from the reconciler: workspace.<what>. */
void orch__audit(struct orch *o, const json_t *doc, const char *what,
    const char *outcome, const char *reason);
/* Opens a sealed field of doc: *plain freed with envelope_free(). */
int orch__unseal(struct orch *o, const json_t *doc, const char *field,
    uint8_t **plain, size_t *len) MOAT_MUST_CHECK;

/* Takes the set of users whose secrets changed (caller frees with
 * volume_ids_free). */
void orch__take_secrets_dirty(struct orch *o, char ***ids, size_t *n);

/* --- reconcile.c --- */
/* One pass over every workspace plus the orphan sweep. */
void orch__pass(struct orch *o);
/* stop_on_exit: tears down every running workspace this moatd may act on,
 * leaving desired state alone (after the reconciler thread stopped). */
void orch__stop_all_for_exit(struct orch *o);

/* --- wsrun.c: RUN-DIR/ws/<id> --- */
int orch__ws_dir(struct orch *o, const char *ws_id, const char *sub,
    char *out, size_t outlen) MOAT_MUST_CHECK;
/* Mounts the ro/ and agent/ tmpfs (idempotent) and writes ro/'s files:
 * moat-agent, agent.conf, startup.sh, the host key and authorized key. */
int orch__run_prepare(struct orch *o, const json_t *doc, bool sudo,
    char *err, size_t errlen) MOAT_MUST_CHECK;
/* Unmounts both tmpfs and removes the directories (idempotent). */
int orch__run_teardown(struct orch *o, const char *ws_id) MOAT_MUST_CHECK;
/* Workspace ids with a directory under RUN-DIR/ws (orphan sweep). */
int orch__run_list(struct orch *o, char ***ids, size_t *n) MOAT_MUST_CHECK;

/* --- wskeys.c --- */
/* A fresh Ed25519 key pair: the private key in OpenSSH format (caller
 * wipes and frees) and the public key as an authorized_keys line. */
int orch__ssh_keygen(char **priv, char **pub) MOAT_MUST_CHECK;

#endif
