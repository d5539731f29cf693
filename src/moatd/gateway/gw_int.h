/*
 * gw_int.h - what the gateway's parent-side files share: the gateway and
 * its live session table (gw.c), the authorization and upstream
 * preparation that run on workers (gw_auth.c), recordings (gw_rec.c).
 */
#ifndef MOATD_GW_INT_H
#define MOATD_GW_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "gateway/gw.h"

#define GW_COMPONENT "ssh-gateway"
#define GW_MAX_RECS 16

struct event;
struct event_base;
struct recording;

struct gw_cidr {
	int family;
	uint8_t addr[16];
	unsigned bits;
};

/* One recording of a session's pty channel, written on workers in order
 * (one job at a time per session). */
struct gw_rec {
	int ch;				/* the child's channel number; -1 free */
	struct recording *r;		/* NULL when the store refused */
	char id[33];
	bool ended;
};

struct gw_recop {
	struct gw_recop *next;
	int kind;			/* gw_rec.c */
	int ch;
	char *text;
	size_t len;
	double duration;
};

struct gw_sess {
	struct gw *g;
	struct gw_sess *next;
	int refs;			/* under g->mu */
	char id[33];
	pid_t pid;
	int pidfd, ctl;
	struct event *ctl_ev, *pid_ev, *grace_ev, *retry_ev;
	char client[96];
	int64_t started_unix;
	double started;
	bool authed, dead, reading_paused;
	bool auth_busy, up_busy, up_sent;
	double kill_at;			/* 0: no deadline */
	/* who and what, set once at signed authentication (under g->mu) */
	char user_id[64], username[64], fingerprint[64];
	char ws_id[64], ws_name[64], owner[64], owner_id[64], org[64];
	char roles[160];
	bool other_owner;
	json_t *settings;		/* {"port_forwarding", ...} */
	/* upstream preparation */
	char last_state[32];
	double up_deadline;
	/* traffic (from the child's reports) */
	uint64_t bytes_in, bytes_out;
	unsigned forwards;
	double last_ping;
	/* recordings */
	pthread_mutex_t rec_mu;
	struct gw_recop *recq, *recq_tail;
	size_t recq_bytes;
	bool rec_job;			/* a worker drains recq */
	int recs_open;			/* loop thread: begun, not ended */
	struct gw_rec recs[GW_MAX_RECS];	/* worker-only while rec_job */
};

struct gw {
	struct app *app;
	struct gw_options opt;
	char **host_keys;
	char *listen, *log_level;
	struct gw_cidr *cidrs;
	size_t ncidrs;
	char self_exe[4096];
	struct event_base *base;
	int lfd;
	struct event *lev, *tick_ev;
	pthread_mutex_t mu;
	struct gw_sess *sessions;	/* under mu */
	unsigned n_unauth, n_total;	/* under mu */
	bool check_busy;		/* loop thread */
	bool stopping;
};

/* gw.c */
void gw__sess_ref(struct gw_sess *s);
void gw__sess_unref(struct gw_sess *s);
/* Sends obj (borrowed) to the child; fds borrowed. */
int gw__send(struct gw_sess *s, const json_t *obj, const int *fds,
    size_t nfds);
/* An audit event with the session's actor and workspace filled in. */
void gw__audit(struct gw_sess *s, const char *type, const char *outcome,
    json_t *target, json_t *details);

/* gw_auth.c: workers */
struct gw_authq {
	struct gw_sess *s;
	char login[80];
	char *key;
	bool is_signed;
	/* results */
	bool ok;
	char message[256];		/* for the client (banner) */
	char reason[160];		/* for the audit only */
	char user_id[64], username[64], fingerprint[64];
	char ws_id[64], ws_name[64], owner[64], owner_id[64], org[64];
	char roles[160];
	bool other_owner;
	json_t *settings;
};
void gw__auth_work(void *arg);

struct gw_upq {
	struct gw_sess *s;
	char ws_id[64], owner_id[64];
	bool ask_start;			/* set desired running if not */
	/* results */
	int status;			/* 0 ready, 1 waiting, -1 failed */
	char state[32], reason[256], message[256];
	bool started_it;
	int dial_fd, key_fd;
	char host_pub[512], user[64];
};
void gw__up_work(void *arg);

/* Revocation check: ids of sessions whose user is disabled or whose key
 * is gone (*out new array of strings). */
struct gw_checkq {
	struct gw *g;
	json_t *snapshot;		/* [{id, user_id, fingerprint}] */
	json_t *revoked;		/* ids */
};
void gw__check_work(void *arg);

/* Idle clock of a workspace (worker). */
struct gw_pingq {
	struct gw *g;
	char ws_id[64];
};
void gw__ping_work(void *arg);

/* gw_rec.c: recordings; gw__rec_queue on the loop thread, the rest on a
 * worker. */
void gw__rec_queue(struct gw_sess *s, int kind, int ch, const char *text,
    size_t len, double duration);
/* The recording id of a channel ("" when none). Loop thread. */
void gw__rec_id(struct gw_sess *s, int ch, char out[33]);
/* Ends every open recording (the child died). */
void gw__rec_close_all(struct gw_sess *s);

#endif
