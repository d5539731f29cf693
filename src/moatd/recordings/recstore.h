/*
 * recstore.h - session recordings at rest: asciicast v2 text, sealed in
 * chunks with the keyring (envelope.h), so a crash loses at most the last
 * chunk and nothing is ever plaintext on disk.
 *
 * Layout: DATA-DIR/recordings/<id>/<seq>.chunk, each file one sealed
 * value (bound to the recording id and sequence number), written with
 * O_EXCL and fsynced; metadata in the store collection "recordings"
 * ({"id", "session_id", "user", "user_id", "workspace", "workspace_id",
 * "owner", "client_addr", "started_at", "ended_at"?, "duration"?,
 * "bytes"}). The first chunk holds the header line.
 *
 * Lines are appended as produced by asciicast.h; recstore_append buffers
 * them and writes a chunk every RECSTORE_FLUSH_MS or RECSTORE_CHUNK_MAX
 * bytes (whichever first), and at end.
 *
 * Threads: one recording is appended to from one thread at a time; the
 * store handles several recordings at once. Calls block on disk: workers
 * or a dedicated thread, never an event-loop thread.
 */
#ifndef MOATD_RECSTORE_H
#define MOATD_RECSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "errors.h"

#define RECSTORE_FLUSH_MS 2000
#define RECSTORE_CHUNK_MAX (64 * 1024)
#define COLL_RECORDINGS "recordings"

struct app;
struct recstore;
struct recording;

int recstore_open(struct recstore **out, struct app *app) MOAT_MUST_CHECK;
void recstore_free(struct recstore *rs);

/* Starts a recording with meta (borrowed; the fields above, the store
 * adds id and started_at) and the asciicast header line. *out is the
 * open recording; its id in id_out (33 bytes). */
int recstore_begin(struct recstore *rs, const json_t *meta,
    const char *header_line, size_t header_len, struct recording **out,
    char id_out[33]) MOAT_MUST_CHECK;

/* Appends complete event lines. */
int recstore_append(struct recording *r, const char *lines, size_t len)
    MOAT_MUST_CHECK;

/* Writes a chunk now if RECSTORE_FLUSH_MS passed since the last one
 * (call it periodically while a session is quiet). */
int recstore_tick(struct recording *r) MOAT_MUST_CHECK;

/* Writes a chunk now whatever the time (nothing when no line is
 * pending): for a caller that wants the text on disk at once. */
int recstore_flush(struct recording *r) MOAT_MUST_CHECK;

/* Writes the last chunk, records ended_at and duration, frees r. */
int recstore_end(struct recording *r, double duration) MOAT_MUST_CHECK;

/* The whole recording as plain asciicast v2 text (caller frees *out).
 * A recording cut short by a crash reads up to its last whole chunk.
 * MOAT_ERR_CORRUPT when a chunk fails to open (tampered, moved). */
int recstore_read(struct recstore *rs, const char *id, char **out,
    size_t *len) MOAT_MUST_CHECK;

/* True when id has the form of a recording id (32 lowercase hex). Ids
 * sort newest first: store_list() on COLL_RECORDINGS pages through the
 * recordings from the most recent. */
bool recstore_valid_id(const char *id);

#endif
