/*
 * gwsess_int.h - what the SSH session process's files share
 * (gwsess.c: start-up, privileges, authentication through the parent,
 * the control channel and the main loop; gwrelay.c: the channel pairs
 * that relay the client's channels to the workspace's sshd).
 *
 * One session process serves one client connection on one thread. Both
 * legs (downstream: the client, libssh server on fd 3; upstream: the
 * workspace's sshd through the agent DIAL socket, libssh client) live in
 * one ssh_event. libssh callbacks never call back into libssh's I/O: they
 * only record state and copy bytes into the pair's bounded queues; the
 * main loop (gwrelay_pump) does every write, request and close, so no
 * callback is ever re-entered from inside another.
 */
#ifndef MOATD_GWSESS_INT_H
#define MOATD_GWSESS_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <libssh/callbacks.h>
#include <libssh/libssh.h>
#include <libssh/server.h>

#include "asciicast.h"
#include "buf.h"

#include "gateway/gwctl.h"

#define GWSESS_COMPONENT "ssh-session"
#define GWSESS_CTL_FD 4
#define GWSESS_CLIENT_FD 3
#define GWSESS_SCRATCH (64 * 1024)

/* A queue of bytes on their way from one leg to the other. Appended to by
 * callbacks, drained by the main loop; never more than GWQ_CAP bytes, and
 * libssh's own channel buffer holds at most one window (1.28 MB) more:
 * see gwrelay.c. */
#define GWQ_CAP (2u * 1024 * 1024 + 512 * 1024)
struct gwq {
	uint8_t *p;
	size_t head, len, cap;
};

enum gwop_kind {
	GWOP_PTY, GWOP_ENV, GWOP_SHELL, GWOP_EXEC, GWOP_SUBSYSTEM,
	GWOP_WINCH, GWOP_SIGNAL, GWOP_AGENT
};

struct gwop {
	struct gwop *next;
	enum gwop_kind kind;
	char *a, *b;			/* term/name/command/signal; value */
	int cols, rows;
};

enum gwpair_kind { GWP_SESSION, GWP_FORWARD, GWP_AGENT, GWP_REVERSE };

struct gwsess;

struct gwpair {
	struct gwsess *s;
	struct gwpair *next;
	int id;				/* channel number in audit and recordings */
	enum gwpair_kind kind;
	ssh_channel d, u;		/* downstream (client), upstream */
	struct ssh_channel_callbacks_struct dcb, ucb;
	bool u_opening, u_open, u_failed;
	bool d_opening, d_open;		/* agent pairs: we open d */
	struct gwop *ops, *ops_tail;
	bool op_in_flight;
	bool started;			/* shell/exec/subsystem confirmed upstream */
	bool start_queued;		/* one of them was asked for */
	/* data: d->u, u->d stdout, u->d stderr */
	struct gwq q_du, q_ud, q_ude;
	bool pull_d, pull_u, pull_ue;	/* libssh holds bytes we refused */
	bool d_eof, u_eof, d_closed, u_closed;
	bool u_eof_sent, d_eof_sent, d_close_sent, u_close_sent;
	bool have_status, have_signal, status_sent;
	int exit_status;
	char *sig, *sig_msg;
	bool sig_core;
	char *fail_msg;			/* shown on stderr, then exit */
	int fail_status;		/* that exit status; 0 means 255 */
	/* what it is */
	char what[16];			/* shell, exec, sftp, subsystem, forward */
	char *command;
	bool pty;
	char term[64];
	int cols, rows;
	char dest_host[256];
	int dest_port;
	char orig_host[64];
	int orig_port;
	uint64_t bytes_in, bytes_out;	/* client->workspace, workspace->client */
	double started_at;
	/* recording (pty sessions) */
	struct asciicast *cast;
	struct buf rec;
	bool rec_begun;
	double rec_last_flush;
	size_t progress_seen;		/* progress lines shown on stderr */
};

struct gwsess_settings {
	bool port_forwarding, file_transfer, agent_forwarding, record_input;
	bool other_owner;		/* OWNER.WS: never agent forwarding */
};

struct gwsess {
	ssh_bind bind;
	ssh_session d, u;
	ssh_event ev;
	struct ssh_server_callbacks_struct scb;
	struct ssh_callbacks_struct ucbs;
	char client[96];
	int keepalive_s, idle_s;
	bool authed;
	bool auth_failed_banner;
	char login[GWCTL_MAX_LOGIN + 1];
	bool upstream_ready, upstream_failed, closing, done;
	char *upstream_fail_msg;
	int pending_fds[2];		/* DIAL socket, key memfd */
	json_t *upstream_msg;		/* until the main loop connects */
	struct gwsess_settings set;
	char ws_user[64], ws_name[160];
	struct gwpair *pairs;
	int next_id;
	unsigned forwards_open;
	unsigned rforwards;		/* -R listeners open upstream */
	unsigned reported_forwards;	/* in the last activity report */
	char **progress;		/* lines waiting for a session channel */
	size_t nprogress;
	uint64_t bytes_in, bytes_out, reported_in, reported_out;
	double last_io, last_activity_sent, last_keepalive;
	double start;
	uint8_t *scratch;		/* GWSESS_SCRATCH bytes for copies */
};

/* gwsess.c */
double gwsess_now(void);
/* Sends a control message (borrowed); failures end the session. */
void gwsess_send(struct gwsess *s, json_t *obj);
/* Waits (blocking, up to timeout_ms) until the upstream connection is
 * made or has failed: for a request that cannot be answered later. */
void gwsess_wait_upstream(struct gwsess *s, int timeout_ms);
/* Reports an audit event of an allowed type (details: new reference). */
void gwsess_audit(struct gwsess *s, const char *type, const char *outcome,
    json_t *details);

/* gwrelay.c */
/* Installs the downstream channel callbacks for a new session channel. */
struct gwpair *gwrelay_new_session(struct gwsess *s, ssh_channel d);
/* The message callback: direct-tcpip opens, global requests, the rest. */
int gwrelay_message(ssh_session session, ssh_message msg, void *arg);
/* Upstream: an "auth-agent@openssh.com" channel the workspace opens. */
ssh_channel gwrelay_agent_open(ssh_session session, void *arg);
/* Upstream's message callback: "forwarded-tcpip" channels (-R). */
int gwrelay_upstream_message(ssh_session session, ssh_message msg,
    void *arg);
/* Does every pending write, request, EOF and close. Returns true when
 * more can be done at once (call again without waiting). */
bool gwrelay_pump(struct gwsess *s);
/* Writes text to every session channel's stderr (progress, notices). */
void gwrelay_notice(struct gwsess *s, const char *text);
/* Closes every channel (with a message on session channels' stderr). */
void gwrelay_close_all(struct gwsess *s, const char *msg);
/* Flushes recordings that waited long enough (or all, at the end). */
void gwrelay_flush_recordings(struct gwsess *s, bool all);
void gwrelay_free_all(struct gwsess *s);

#endif
