/*
 * app.h - the parts of a running moatd that modules share.
 *
 * serve.c builds one struct app at start-up and hands a pointer to every
 * module; the pointers are set before the loops start and never change
 * afterwards, so any thread may read them. Each member's own header says
 * which of its functions may be called from which thread.
 */
#ifndef MOATD_APP_H
#define MOATD_APP_H

struct config;
struct store;
struct keys;
struct audit_writer;
struct workpool;
struct loop_group;
struct metrics;
struct identity;
struct api_state;
struct orch;
struct gw;
struct recstore;

struct app {
	struct config *cfg;
	const char *data_dir;
	struct store *store;		/* blocking: workers only */
	struct keys *keys;
	struct audit_writer *audit;
	struct loop_group *loops;
	struct workpool *workers;	/* API handlers, store access */
	struct workpool *hashers;	/* password hashing; small bounded queue */
	struct metrics *metrics;
	struct identity *identity;
	const char *default_org;	/* "default" */
	struct api_state *api;		/* api.c's own state (api_free) */
	struct orch *orch;		/* workspaces; NULL when not serving them */
	struct gw *gateway;		/* the SSH gateway; NULL when off */
	struct recstore *recstore;	/* session recordings (blocking:
					 * workers or session threads) */
};

#endif
