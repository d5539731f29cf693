/*
 * schema.c - moatd's collections (schema.h): names, secondary indexes and
 * which ones hold sealed values (sensitive: the WAL is purged after every
 * write to them, see store.h).
 *
 * Adding an index to a collection is safe: the SQLite backend notices the
 * changed declarations at open and rebuilds that collection's index
 * entries (a unique index that existing documents violate refuses to open).
 */
#include "store/schema.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct store_index users_ix[] = {
	{ .field = "username", .unique = true },
};

static const struct store_index memberships_ix[] = {
	{ .field = "user_id", .unique = false },
	{ .field = "org", .unique = false },
	{ .field = "user_org", .unique = true },	/* user_id "/" org */
};

static const struct store_index sessions_ix[] = {
	{ .field = "user_id", .unique = false },
};

static const struct store_index tokens_ix[] = {
	{ .field = "hash", .unique = true },
	{ .field = "user_id", .unique = false },
};

static const struct store_index ssh_keys_ix[] = {
	{ .field = "user_id", .unique = false },
	{ .field = "fingerprint", .unique = true },
};

static const struct store_index secrets_ix[] = {
	{ .field = "user_id", .unique = false },
	{ .field = "user_name", .unique = true },	/* user_id "/" name */
};

static const struct store_index policies_ix[] = {
	{ .field = "name", .unique = true },
};

static const struct store_index workspaces_ix[] = {
	{ .field = "owner_id", .unique = false },
	{ .field = "owner_name", .unique = true },	/* owner_id "/" name */
	{ .field = "uid_slot", .unique = true },	/* user namespace */
};
/* Workspace templates. */
static const struct store_index templates_ix[] = {
	{ .field = "name", .unique = true },
	{ .field = "org", .unique = false },
	{ .field = "egress_policy", .unique = false },
};

/* Session recordings (recordings/recstore.c). */
static const struct store_index recordings_ix[] = {
	{ .field = "user_id", .unique = false },
	{ .field = "workspace_id", .unique = false },
	{ .field = "session_id", .unique = false },
};

const struct store_collection moatd_collections[] = {
	/* users hold sealed TOTP seeds ("sealed": {"totp_seed": ...}). */
	{ COLL_USERS, users_ix, N(users_ix), true },
	{ COLL_MEMBERSHIPS, memberships_ix, N(memberships_ix), false },
	{ COLL_ORGS, NULL, 0, false },
	{ COLL_SESSIONS, sessions_ix, N(sessions_ix), false },
	{ COLL_TOKENS, tokens_ix, N(tokens_ix), false },
	{ COLL_SSH_KEYS, ssh_keys_ix, N(ssh_keys_ix), false },
	{ COLL_SECRETS, secrets_ix, N(secrets_ix), true },
	/* settings: id = organization name. */
	{ COLL_SETTINGS, NULL, 0, false },
	{ COLL_POLICIES, policies_ix, N(policies_ix), false },
	/* workspaces hold sealed SSH keys and volume keys. */
	{ COLL_WORKSPACES, workspaces_ix, N(workspaces_ix), true },
	/* One document, id "id": {"installation": random hex}, the label that
	 * tells this installation's runtime objects from others'. */
	{ COLL_INSTALLATION, NULL, 0, false },
	/* Workspace templates. */
	{ COLL_TEMPLATES, templates_ix, N(templates_ix), false },
	/* Session recordings: metadata only, nothing sealed. */
	{ COLL_RECORDINGS, recordings_ix, N(recordings_ix), false },
};

const size_t moatd_ncollections = N(moatd_collections);
