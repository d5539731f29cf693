/*
 * agent.h - moat-agent's internals, shared by its modules (src/agent/).
 *
 * moat-agent is PID 1 of every workspace container (DESIGN.md section 5):
 * it reaps children, creates the workspace user, runs sshd on 127.0.0.1:22
 * and the template's startup script, serves the agent socket that moatd
 * talks to (agentproto.h) and forwards 127.0.0.1:3128 to the workspace's
 * egress socket. It is one single-threaded poll() loop (agent_loop.c) and
 * uses libc only, so that it links statically into any image.
 *
 * Modules: agent_main.c (start-up, signals, termination), agent_loop.c
 * (fd watchers), agent_log.c (the log ring LOG reads), agent_conf.c
 * (/run/moat/agent.conf), agent_proc.c (spawning and reaping, the startup
 * script), agent_user.c (passwd/group/shadow, sudoers, home), agent_sshd.c
 * (sshd's generated configuration and supervision), agent_secrets.c
 * (/run/secrets and the env-marked secrets), agent_server.c (the agent
 * socket), agent_relay.c (byte relays for DIAL and egress).
 *
 * Functions that can fail return 0 or a negative MOAT_ERR_* code; what
 * went wrong is in the agent's log (agent_log), which is how the agent
 * reports to moatd.
 */
#ifndef MOAT_AGENT_H
#define MOAT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "agentproto.h"
#include "errors.h"	/* codes only: the agent links no moatlib code */

/* Fixed paths inside the workspace. */
#define AGENT_RO_DIR "/run/moat"
#define AGENT_CONF_PATH AGENT_RO_DIR "/agent.conf"
#define AGENT_HOSTKEY_PATH AGENT_RO_DIR "/ssh_host_ed25519_key"
#define AGENT_AUTHKEYS_PATH AGENT_RO_DIR "/authorized_keys"
#define AGENT_STARTUP_PATH AGENT_RO_DIR "/startup.sh"
#define AGENT_EGRESS_SOCK AGENT_RO_DIR "/egress.sock"
#define AGENT_SOCK_DIR "/run/moat-agent"
#define AGENT_SOCK_PATH AGENT_SOCK_DIR "/agent.sock"
#define AGENT_SSHD_DIR "/run/moat-sshd"
#define AGENT_SSHD_CONFIG AGENT_SSHD_DIR "/sshd_config"
#define AGENT_SSHD_BIN "/usr/sbin/sshd"
#define AGENT_PRIVSEP_DIR "/run/sshd"
#define AGENT_SECRETS_DIR "/run/secrets"

#define AGENT_MAX_ENV 64		/* template environment entries */
#define AGENT_MAX_ENV_VALUE 4096
#define AGENT_MAX_CONF (64 * 1024)
#define AGENT_LOG_CAP (1024 * 1024)	/* the log ring keeps the last MiB */

/* One environment variable (template env or an env-marked secret). */
struct agent_env {
	char *name;	/* owned */
	char *value;	/* owned; wiped on free when it is a secret */
	size_t value_len;
};

/* /run/moat/agent.conf, written by moatd. */
struct agent_conf {
	char user[33];		/* [a-z_][a-z0-9_-]{0,31} */
	uid_t uid;		/* gid is the same */
	bool sudo;
	bool startup;
	uint16_t proxy_port;
	struct agent_env env[AGENT_MAX_ENV];
	size_t nenv;
};

struct agent_watch;
struct agent_conn;
struct agent_relay;

/* The agent's whole state: one per process, owned by main. */
struct agent {
	struct agent_conf conf;
	char home[64];			/* /home/USER */

	/* agent_loop.c */
	struct agent_watch *watch;	/* indexed by fd */
	int nwatch;			/* size of watch[] */
	int *active;			/* fds being watched */
	int nactive;

	int sigfd;
	bool terminating;
	int64_t term_deadline;

	/* agent_sshd.c */
	pid_t sshd_pid;
	int64_t sshd_started;
	int64_t sshd_changed;		/* last start or reload */
	int64_t sshd_restart_at;	/* 0: none pending */
	int sshd_backoff_ms;

	/* agent_proc.c: the startup script */
	pid_t startup_pid;
	enum agentproto_startup startup_state;
	int startup_exit;

	/* agent_secrets.c: env-marked secrets, for sshd SetEnv */
	struct agent_env *secret_env;
	size_t nsecret_env;

	/* agent_server.c and agent_relay.c */
	int agent_lfd;
	int egress_lfd;
	struct agent_conn *conns;
	unsigned nconns;
	struct agent_relay *relays;
	unsigned nrelays;
	unsigned ndial;			/* open DIAL relays */
	int64_t last_activity;
	int64_t egress_warned;
};

/* agent_loop.c: fd watchers and the poll loop. A callback may add or
 * remove any watcher, its own included. */
typedef void (*agent_cb)(struct agent *ag, int fd, short revents, void *arg);
int agent_loop_init(struct agent *ag);
void agent_loop_free(struct agent *ag);
int agent_watch(struct agent *ag, int fd, short events, agent_cb cb,
    void *arg);
void agent_watch_events(struct agent *ag, int fd, short events);
void agent_unwatch(struct agent *ag, int fd);
/* Polls once for at most timeout_ms and dispatches. */
int agent_loop_once(struct agent *ag, int timeout_ms);
int64_t agent_now_ms(void);
int agent_set_nonblock(int fd);

/* agent_log.c: the log ring (AGENT_LOG_CAP), mirrored to stderr. */
int agent_log_init(void);
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A child's output: line-buffered per source with a prefix. */
struct agent_logsrc;
struct agent_logsrc *agent_logsrc_new(const char *prefix);
void agent_logsrc_feed(struct agent_logsrc *s, const uint8_t *p, size_t n);
void agent_logsrc_free(struct agent_logsrc *s);	/* flushes */
/* Copies up to max bytes from absolute offset off (moved forward to the
 * oldest byte kept); *at is where the copy starts, *end the log's size. */
size_t agent_log_read(uint64_t off, uint8_t *out, size_t max, uint64_t *at,
    uint64_t *end);

/* agent_conf.c */
int agent_conf_load(const char *path, struct agent_conf *c, char *err,
    size_t errlen);
void agent_conf_free(struct agent_conf *c);
bool agent_env_name_ok(const char *s, size_t len);
/* A value that sshd's SetEnv can carry: no control characters. */
bool agent_env_value_ok(const uint8_t *v, size_t len);
void agent_env_clear(struct agent_env *e, bool wipe);

/* agent_proc.c */
struct agent_spawn {
	const char *path;
	char *const *argv;
	char *const *envp;
	uid_t uid;		/* 0: stay root */
	const char *cwd;	/* NULL: / */
	const char *log_prefix;	/* stdout+stderr into the log ring */
};
int agent_spawn(struct agent *ag, const struct agent_spawn *sp, pid_t *pid);
void agent_reap(struct agent *ag);
/* Builds the login environment (HOME, USER, PATH, template env, secrets,
 * proxy). Caller frees with agent_envp_free. */
char **agent_envp_build(const struct agent *ag);
void agent_envp_free(char **envp);
int agent_startup_run(struct agent *ag);

/* agent_user.c */
int agent_user_setup(const struct agent *ag);

/* agent_sshd.c */
int agent_sshd_write_config(struct agent *ag);
void agent_sshd_start(struct agent *ag);
void agent_sshd_exited(struct agent *ag, int status);
void agent_sshd_reload(struct agent *ag);
void agent_sshd_tick(struct agent *ag, int *timeout_ms);
bool agent_sshd_up(const struct agent *ag);

/* agent_secrets.c: replaces /run/secrets; reason for an ERR reply. */
void agent_secrets_init(const struct agent *ag);
int agent_secrets_apply(struct agent *ag, const struct agentproto_msg *m,
    char *reason, size_t rlen);
void agent_secrets_free(struct agent *ag);

/* agent_server.c */
int agent_server_listen(struct agent *ag);
void agent_server_tick(struct agent *ag, int *timeout_ms);
void agent_server_close(struct agent *ag);

/* agent_relay.c: relays bytes between a and b until both sides are done.
 * to_a: bytes to send to a first (copied; DIAL's OK reply). Takes both
 * fds, also on failure. */
int agent_relay_start(struct agent *ag, int a, int b, const uint8_t *to_a,
    size_t to_a_len, bool dial);
int agent_egress_listen(struct agent *ag);
void agent_relay_close_all(struct agent *ag);
void agent_activity(struct agent *ag);
uint32_t agent_idle_seconds(const struct agent *ag);

#endif
