/*
 * agentproto.h - the agent socket protocol between moatd (host) and
 * moat-agent (PID 1 inside a workspace), DESIGN.md section 5.
 *
 * The agent listens on a unix socket in the workspace's writable shared
 * directory (/run/moat-agent/agent.sock inside). moatd connects, sends one
 * request and reads one reply; after a DIAL reply of OK the connection
 * carries raw bytes to and from 127.0.0.1:PORT inside the workspace.
 *
 * Framing: a 4-byte big-endian length N (1..AGENTPROTO_MAX_FRAME) then N
 * bytes: one type byte and a payload of fields, each a 1-byte tag, a 2-byte
 * big-endian length and that many bytes. Unknown tags are skipped; a
 * repeated tag other than those that may repeat (secrets) is an error.
 *
 * Everything the agent sends is untrusted input (a workspace's root
 * controls the agent): agentproto_decode() bounds every length, refuses
 * truncated and oversized frames, and is a fuzz target. The agent parses
 * moatd's requests with the same code.
 *
 * This module uses only libc so that the statically linked agent can
 * include it.
 */
#ifndef MOAT_AGENTPROTO_H
#define MOAT_AGENTPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENTPROTO_VERSION 1
#define AGENTPROTO_MAX_FRAME (64 * 1024)
#define AGENTPROTO_MAX_SECRETS 64
#define AGENTPROTO_MAX_NAME 128
#define AGENTPROTO_MAX_LOG_CHUNK (16 * 1024)
#define AGENTPROTO_MAX_REASON 200

enum agentproto_type {
	/* Requests (moatd -> agent). */
	AGENTPROTO_STATUS = 1,		/* -> STATUS_REPLY */
	AGENTPROTO_SECRETS = 2,		/* replace /run/secrets -> OK | ERR */
	AGENTPROTO_DIAL = 3,		/* port -> OK (then raw bytes) | ERR */
	AGENTPROTO_LOG = 4,		/* offset -> LOG_REPLY */
	AGENTPROTO_ACTIVITY = 5,	/* moatd saw activity (gateway) -> OK */
	/* Replies (agent -> moatd). */
	AGENTPROTO_OK = 64,
	AGENTPROTO_ERR = 65,		/* reason */
	AGENTPROTO_STATUS_REPLY = 66,
	AGENTPROTO_LOG_REPLY = 67
};

/* Startup script progress, as the agent reports it. */
enum agentproto_startup {
	AGENTPROTO_STARTUP_NONE = 0,	/* no script */
	AGENTPROTO_STARTUP_RUNNING = 1,
	AGENTPROTO_STARTUP_DONE = 2,	/* exit 0 */
	AGENTPROTO_STARTUP_FAILED = 3	/* non-zero exit or signal */
};

struct agentproto_secret {
	char name[AGENTPROTO_MAX_NAME + 1];	/* file /run/secrets/NAME */
	char env[AGENTPROTO_MAX_NAME + 1];	/* "" or variable name */
	const uint8_t *value;			/* borrowed from the frame */
	size_t value_len;
};

/* One decoded message. Pointers borrow from the decoded buffer. */
struct agentproto_msg {
	enum agentproto_type type;
	uint32_t version;		/* STATUS_REPLY */
	uint16_t port;			/* DIAL */
	uint64_t offset;		/* LOG: requested; LOG_REPLY: of data */
	const uint8_t *data;		/* LOG_REPLY bytes */
	size_t data_len;
	uint64_t log_end;		/* LOG_REPLY: total log size so far */
	bool sshd_up;			/* STATUS_REPLY: sshd is running */
	uint32_t idle_seconds;		/* STATUS_REPLY: since last activity */
	uint32_t connections;		/* STATUS_REPLY: open relayed conns */
	enum agentproto_startup startup;
	int32_t startup_exit;		/* STATUS_REPLY, with FAILED */
	char reason[AGENTPROTO_MAX_REASON + 1];	/* ERR; printable ASCII */
	struct agentproto_secret secrets[AGENTPROTO_MAX_SECRETS];
	size_t nsecrets;
};

/*
 * Encodes msg (the fields its type uses) into out as one whole frame,
 * length prefix included. Returns the frame length, or -1 when it does not
 * fit in outlen or AGENTPROTO_MAX_FRAME, or a field is out of bounds.
 */
long agentproto_encode(const struct agentproto_msg *msg, uint8_t *out,
    size_t outlen);

/*
 * Decodes one frame from buf (length prefix included) into msg. Returns
 * the number of bytes consumed (> 0), 0 when buf does not yet hold a whole
 * frame, or -1 for a malformed frame (reason in err). Strings are checked:
 * names [A-Za-z0-9._-] (not "." or ".."), env names [A-Za-z_][A-Za-z0-9_]*,
 * reasons printable ASCII.
 */
long agentproto_decode(const uint8_t *buf, size_t len,
    struct agentproto_msg *msg, char *err, size_t errlen);

#endif
