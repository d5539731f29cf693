/*
 * audit.h - audit events, the hash-chained local sink, and its verifier.
 *
 * An event (DESIGN.md section 7) is a JSON object:
 *   {"seq": 42, "time": "2026-12-03T16:02:25.123456789Z",
 *    "type": "http.request", "outcome": "success" | "failure" | "denied",
 *    "component": "moatd", "source": {"process": "moatd", "pid": 1, "uid": 0},
 *    "actor": {"user": "...", "roles": [...], "addr": "203.0.113.7"},
 *    "target": {...}, "workspace": "...", "details": {...},
 *    "prev": "<hex sha256 of the previous record>", "hash": "<hex>"}
 * Callers fill type, outcome, actor, target, workspace and details; the
 * writer fills seq, time (when absent), source, prev and hash.
 *
 * The chain: one JSON object per line in an append-only file. A record's
 * hash is SHA-256(prev_hash_bytes || canonical(record without "hash")), where
 * canonical() is compact JSON with sorted keys (json_canonical()); the first
 * record's prev is 64 zeros. At a regular interval and at close the writer
 * appends a checkpoint record (type "audit.checkpoint") whose "sig" is an
 * ES256 signature (base64url, raw r||s) over the previous record's hash and
 * seq, by a key of its own ("key_id"); the latest checkpoint is also written
 * atomically to PATH.checkpoint, so truncating the chain back past it is
 * detected.
 *
 * One writer thread appends every event: events from moatd's threads
 * (audit_emit) and from other processes through a local collector socket
 * (SOCK_SEQPACKET, one JSON event per message, at most AUDIT_MAX_EVENT bytes;
 * the writer records the sender's pid and uid from SO_PEERCRED as the source,
 * whatever the message claims). Each event is parsed as untrusted input.
 *
 * When the file system's free space falls under the reserve, the writer logs
 * it, audit_writer_healthy() turns false, and callers refuse new work (the
 * writer keeps writing what it is given as long as it can).
 */
#ifndef MOAT_AUDIT_H
#define MOAT_AUDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "errors.h"

#define AUDIT_MAX_EVENT (64 * 1024)

enum audit_fsync {
	AUDIT_FSYNC_ALWAYS,	/* fsync after every record */
	AUDIT_FSYNC_BATCH,	/* fsync after each batch the writer drains (default) */
	AUDIT_FSYNC_NONE	/* leave it to the kernel (tests, benchmarks) */
};

struct audit_writer_opts {
	const char *path;		/* the chain file; created 0600 if absent */
	const char *checkpoint_key_file; /* PEM EC P-256 private key */
	const char *key_id;		/* names the key in checkpoints */
	unsigned checkpoint_interval_ms; /* default 60000 */
	enum audit_fsync fsync_policy;
	uint64_t disk_reserve_bytes;	/* default 64 MiB */
	const char *collector_path;	/* unix socket to serve, or NULL */
	const char *process_name;	/* "moatd": source.process of local events */
	size_t max_queue;		/* events waiting; default 65536 */
};

struct audit_writer;

/* Opens (or creates) the chain, reads its tail to continue seq and prev, and
 * starts the writer thread (and the collector when collector_path is set).
 * A partial last line left by a crash is cut off, and an "audit.recovered"
 * event records how many bytes were dropped. A tail whose hash does not
 * verify is refused (MOAT_ERR_CORRUPT): the operator must look. */
int audit_writer_open(struct audit_writer **out,
    const struct audit_writer_opts *opts) MOAT_MUST_CHECK;

/* A new event object with type and outcome set (caller owns it). */
json_t *audit_event_new(const char *type, const char *outcome);

/* Queues ev (takes ownership, also on error). Thread-safe, never blocks on
 * disk. Returns MOAT_ERR_NOSPACE when the writer is unhealthy (the event is
 * still queued when possible), MOAT_ERR_AGAIN when the queue is full (the
 * event is dropped and counted: callers must refuse the action). */
int audit_emit(struct audit_writer *w, json_t *ev) MOAT_MUST_CHECK;

/* False while free disk is under the reserve or writes fail. */
bool audit_writer_healthy(struct audit_writer *w);

/* Writes a checkpoint now and waits until it is on disk. */
int audit_writer_checkpoint(struct audit_writer *w) MOAT_MUST_CHECK;

/* Waits until every event queued before the call is written (tests). */
int audit_writer_flush(struct audit_writer *w) MOAT_MUST_CHECK;

/* Events written and dropped so far. */
uint64_t audit_writer_written(struct audit_writer *w);
uint64_t audit_writer_dropped(struct audit_writer *w);
/* Messages the collector refused (malformed, too large, setting a field
 * that is the writer's). Not counted in dropped. */
uint64_t audit_writer_rejected(struct audit_writer *w);

/* Drains the queue, writes a final checkpoint, stops threads, frees. */
void audit_writer_close(struct audit_writer *w);

/* --- Sending from another process to a collector socket. --- */
struct audit_client;
int audit_client_connect(struct audit_client **out, const char *path)
    MOAT_MUST_CHECK;
/* Sends ev (borrowed). MOAT_ERR_CLOSED when the collector is gone. */
int audit_client_send(struct audit_client *c, const json_t *ev) MOAT_MUST_CHECK;
void audit_client_free(struct audit_client *c);

/* --- Verifying a chain. --- */
struct audit_verify_result {
	uint64_t records;		/* records read, checkpoints included */
	uint64_t checkpoints;
	uint64_t last_checkpoint_seq;	/* 0 when none */
	uint64_t unsigned_tail;		/* records after the last checkpoint */
	bool ok;			/* whole chain verified */
	bool signatures_checked;	/* a public key was given */
	bool head_checked;		/* a head was given and matched */
	uint64_t bad_line;		/* 1-based line of the first problem, 0 if ok */
	uint64_t bad_seq;		/* its seq when readable */
	char reason[256];		/* what is wrong, in English */
};

/* Verifies the chain in data (a whole file). pub: the checkpoint public key,
 * or NULL to check only hashes and order. head: the contents of
 * PATH.checkpoint or NULL. Returns 0 when verified, MOAT_ERR_CORRUPT with res
 * naming the first broken record otherwise (including truncation before the
 * recorded checkpoint, a cut last line, reordering and edits). */
int audit_verify_buf(const uint8_t *data, size_t len, EVP_PKEY *pub,
    const uint8_t *head, size_t head_len, struct audit_verify_result *res)
    MOAT_MUST_CHECK;

/* Reads path (and path.checkpoint when present) and verifies them. */
int audit_verify_file(const char *path, EVP_PKEY *pub,
    struct audit_verify_result *res) MOAT_MUST_CHECK;

/* Loads a PEM public (or private: the public half is used) EC key. */
EVP_PKEY *audit_load_pubkey(const char *pem_file);

#endif
