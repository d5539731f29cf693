/*
 * schema.h - the collections of moatd's store and their indexes.
 *
 * serve.c and the offline commands (init, reset-password, rotate-keys)
 * open the store with these:
 *   store_open(&st, "sqlite:" DATA-DIR "/moatd.db", moatd_collections,
 *       moatd_ncollections)
 * Composite unique keys are fields the callers fill in themselves:
 *   memberships.user_org = user_id + "/" + org
 *   secrets.user_name    = user_id + "/" + name
 */
#ifndef MOATD_STORE_SCHEMA_H
#define MOATD_STORE_SCHEMA_H

#include <stddef.h>

#include "store/store.h"

/* Collection names, for callers (avoids typos in string literals). */
#define COLL_USERS "users"
#define COLL_MEMBERSHIPS "memberships"
#define COLL_ORGS "orgs"
#define COLL_SESSIONS "sessions"
#define COLL_TOKENS "tokens"
#define COLL_SSH_KEYS "ssh_keys"
#define COLL_SECRETS "secrets"
#define COLL_SETTINGS "settings"
#define COLL_POLICIES "policies"
#define COLL_WORKSPACES "workspaces"
#define COLL_INSTALLATION "installation"

/* Workspace templates (api/h_templates.c): id generated, "name" unique,
 * "org" the organization, "egress_policy" the policy it names (so that a
 * policy in use is not deleted). */
#define COLL_TEMPLATES "templates"

/* Session recordings' metadata (recordings/recstore.h, which defines the
 * same name): id ordered newest first; never a sealed value (the text is
 * sealed in chunk files outside the store). */
#define COLL_RECORDINGS "recordings"

extern const struct store_collection moatd_collections[];
extern const size_t moatd_ncollections;

#endif
