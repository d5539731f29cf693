/*
 * driver.h - the runtime driver interface: what the orchestrator asks of a
 * container runtime (DESIGN.md section 5). One small interface so that the
 * single-host driver (drivers/docker: the Docker Engine API, served by
 * Podman and Docker) and a later Kubernetes driver are interchangeable.
 *
 * A workspace maps to exactly one runtime object (a container, later a pod)
 * named "moat-<workspace id>" and labelled
 *   moat.workspace=<workspace id>   moat.managed=1
 *   moat.installation=<the store's installation id>
 * so the reconciler can list what it owns and remove orphans - only its
 * own installation's: several moat installations may share a runtime. The name is
 * unique in the runtime, which makes create idempotent: two moatd processes
 * racing to create the same workspace get one object and one
 * MOAT_ERR_EXISTS.
 *
 * Every call blocks (it talks to the runtime over a socket): call it from a
 * worker or the reconciler's thread, never from an event-loop thread. A
 * struct driver may be used from several threads at once.
 *
 * Errors: MOAT_ERR_NOTFOUND (no such object or image), MOAT_ERR_EXISTS
 * (name taken), MOAT_ERR_UNSUPPORTED (the runtime refused a setting),
 * MOAT_ERR_PERM (registry credentials refused), MOAT_ERR_IO (runtime
 * unreachable), MOAT_ERR_PARSE (the runtime answered something unreadable).
 * err/errlen receive a one-line reason without secrets.
 */
#ifndef MOATD_DRIVER_H
#define MOATD_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct driver;

#define DRV_LABEL_WORKSPACE "moat.workspace"
#define DRV_LABEL_MANAGED "moat.managed"
#define DRV_LABEL_INSTALLATION "moat.installation"

/* A host path mounted into the workspace. */
struct drv_mount {
	const char *host_path;
	const char *container_path;
	bool read_only;
};

/* A tmpfs inside the workspace, sized (charged to its memory limit). */
struct drv_tmpfs {
	const char *container_path;
	uint64_t size_bytes;
	unsigned mode;			/* e.g. 01777 */
};

/* Everything the runtime is told about one workspace. No secret may ever
 * be put here: the runtime stores its configuration in plaintext. */
struct drv_spec {
	const char *workspace_id;	/* label and name suffix */
	const char *installation;	/* label: which moat store owns it */
	const char *image;		/* canonical reference (imageref.h) */
	const char *entrypoint;		/* "/run/moat/moat-agent" */
	const char *const *args;	/* NULL-terminated, may be NULL */
	const char *const *env;		/* "K=V", NULL-terminated; no secrets */
	const char *hostname;
	const struct drv_mount *mounts;
	size_t nmounts;
	const struct drv_tmpfs *tmpfs;
	size_t ntmpfs;
	uint64_t memory_bytes;		/* 0: no limit */
	uint64_t nano_cpus;		/* 1e9 = one CPU; 0: no limit */
	int64_t pids_limit;		/* 0: no limit */
	uint64_t nofile;		/* ulimit, soft = hard */
	uint64_t nproc;
	/* User namespace: container uid/gid 0..uid_count-1 map to host
	 * uid_base..uid_base+uid_count-1 (Podman "auto" with a forced
	 * mapping, so the range is the one recorded for the workspace). */
	uint32_t uid_base;
	uint32_t uid_count;
	const char *const *cap_add;	/* after dropping ALL; NULL-terminated */
	bool no_new_privileges;
	bool read_only_root;
};

/* What inspect reports. */
enum drv_state {
	DRV_ABSENT = 0,			/* no such object */
	DRV_CREATED,			/* created, never started */
	DRV_RUNNING,
	DRV_EXITED,			/* stopped or died */
	DRV_OTHER			/* paused, restarting, removing... */
};

struct drv_status {
	enum drv_state state;
	char id[80];			/* runtime's object id */
	char workspace_id[80];		/* from the label */
	char installation[80];		/* from the label ("" when none) */
	int exit_code;			/* DRV_EXITED */
	bool oom_killed;
	int64_t pid;			/* host pid of PID 1 while running */
	uint64_t root_rw_bytes;		/* writable layer size, when asked */
};

struct drv_stats {
	uint64_t cpu_total_ns;		/* cumulative CPU time */
	uint64_t memory_bytes;		/* current usage */
	uint64_t memory_limit;
	uint64_t pids;
};

/* Progress of an image pull: called for each status line the registry
 * client reports (already stripped of control characters, at most 200
 * bytes); current/total are bytes when known, else 0. */
typedef void (*drv_progress_fn)(void *arg, const char *status,
    uint64_t current, uint64_t total);

/* Registry credentials for one host. Never logged. */
struct drv_auth {
	const char *username;
	const char *password;
};

struct driver_ops {
	const char *name;		/* "docker" */
	/* Ensures image is present: if absent locally, pulls it with auth
	 * (may be NULL; sent only to the image's own registry host). */
	int (*ensure_image)(struct driver *d, const char *image,
	    const struct drv_auth *auth, drv_progress_fn progress, void *arg,
	    char *err, size_t errlen);
	/* Removes a local image (tests, image rebuilds). */
	int (*remove_image)(struct driver *d, const char *image, char *err,
	    size_t errlen);
	int (*create)(struct driver *d, const struct drv_spec *spec,
	    char *err, size_t errlen);
	int (*start)(struct driver *d, const char *workspace_id, char *err,
	    size_t errlen);
	/* Stops within timeout_s (then SIGKILL). Stopping a stopped object
	 * is 0. */
	int (*stop)(struct driver *d, const char *workspace_id,
	    unsigned timeout_s, char *err, size_t errlen);
	/* Removes the object (forcefully). Removing an absent one is 0. */
	int (*remove)(struct driver *d, const char *workspace_id, char *err,
	    size_t errlen);
	/* DRV_ABSENT (and 0) when there is no such object. with_size asks
	 * for root_rw_bytes (slower). */
	int (*inspect)(struct driver *d, const char *workspace_id,
	    bool with_size, struct drv_status *out, char *err, size_t errlen);
	/* Every object labelled moat.managed=1 (state and workspace_id
	 * filled); *out is malloc'd, caller frees. */
	int (*list_owned)(struct driver *d, struct drv_status **out,
	    size_t *n, char *err, size_t errlen);
	int (*stats)(struct driver *d, const char *workspace_id,
	    struct drv_stats *out, char *err, size_t errlen);
	void (*free)(struct driver *d);
};

struct driver {
	const struct driver_ops *ops;
};

/* The name of a workspace's runtime object: "moat-<id>" into out. */
int driver_object_name(const char *workspace_id, char *out, size_t outlen)
    MOAT_MUST_CHECK;

#endif
