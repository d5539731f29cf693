/*
 * gwctl.h - the control channel between moatd (the SSH gateway's parent)
 * and one SSH session process (`moatd ssh-session`), on fd 4 of the child.
 *
 * Transport: a SOCK_SEQPACKET socket pair. Each message is one packet: a
 * 4-byte big-endian length, then that many bytes of one JSON object whose
 * "t" names the message. A packet is at most GWCTL_MAX_MSG bytes. File
 * descriptors travel with a message as SCM_RIGHTS (only parent -> child:
 * the parent closes any descriptor a child sends).
 *
 * The parent treats everything a child sends as untrusted (a compromised
 * session process can send anything): gwctl_parse_child() checks the
 * framing, parses strictly (json.h: one object, no duplicate keys, bounded
 * depth) and checks each message type's fields and bounds. It has a fuzz
 * target (tests/fuzz/fuzz_gwctl.c).
 *
 * Child -> parent ("t"):
 *   auth       {login, key ("TYPE BASE64"), signed}     -> auth_result
 *   rec_begin  {ch, header}          a pty channel's recording starts
 *   rec        {ch, data}            asciicast event lines
 *   rec_end    {ch, duration}
 *   audit      {type, outcome, details}  type from gwctl_audit_types
 *   activity   {in, out, forwards}   bytes so far; open port forwards
 * Parent -> child:
 *   init       {hostkeys[], client, keepalive_s, idle_s, log_level}
 *   auth_result {ok, message}
 *   progress   {text}                shown on the session's stderr
 *   upstream   {host_pub, user, settings{...}, workspace}  + fds: the
 *              agent DIAL socket (port 22 inside) and a memfd holding the
 *              workspace's access key (OpenSSH private key text)
 *   fail       {message}             the session cannot go on
 *   close      {message}             an administrator ended the session
 */
#ifndef MOATD_GWCTL_H
#define MOATD_GWCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

#define GWCTL_MAX_MSG (128 * 1024)
#define GWCTL_MAX_FDS 2
#define GWCTL_MAX_CHANNEL 1023
#define GWCTL_MAX_LOGIN 64
#define GWCTL_MAX_KEY 16384
#define GWCTL_MAX_REC_DATA (96 * 1024)
#define GWCTL_MAX_HEADER 4096

enum gwctl_type {
	GWCTL_NONE = 0,
	/* child -> parent */
	GWCTL_AUTH,
	GWCTL_REC_BEGIN,
	GWCTL_REC,
	GWCTL_REC_END,
	GWCTL_AUDIT,
	GWCTL_ACTIVITY,
	/* parent -> child */
	GWCTL_INIT,
	GWCTL_AUTH_RESULT,
	GWCTL_PROGRESS,
	GWCTL_UPSTREAM,
	GWCTL_FAIL,
	GWCTL_CLOSE,
};

/* One parsed message. Strings point into obj (borrowed from it). */
struct gwctl_msg {
	enum gwctl_type type;
	json_t *obj;			/* the whole object (owned) */
	/* auth */
	const char *login;
	const char *key;
	bool is_signed;
	/* rec_*: channel number; rec_begin: header; rec: data */
	int ch;
	const char *text;		/* header, data, message, progress text */
	size_t text_len;
	double duration;
	/* audit */
	const char *audit_type;
	const char *outcome;
	const json_t *details;		/* object, borrowed */
	/* activity */
	uint64_t bytes_in, bytes_out;
	unsigned forwards;
};

/* Audit event types a session process may report (NULL-terminated). */
extern const char *const gwctl_audit_types[];

/* Parses one packet from a child (untrusted). 0 and *out (release with
 * gwctl_msg_clear), or MOAT_ERR_PARSE / MOAT_ERR_TOOBIG / MOAT_ERR_INVAL
 * with a short reason in err (never echoing the bytes). */
int gwctl_parse_child(const uint8_t *pkt, size_t len, struct gwctl_msg *out,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* Parses one packet from the parent (the child's side; same framing). */
int gwctl_parse_parent(const uint8_t *pkt, size_t len, struct gwctl_msg *out,
    char *err, size_t errlen) MOAT_MUST_CHECK;

void gwctl_msg_clear(struct gwctl_msg *m);

/* Sends obj (borrowed) as one message with up to GWCTL_MAX_FDS
 * descriptors (borrowed; the caller closes its copies). Blocking or not
 * as fd is: MOAT_ERR_AGAIN when a non-blocking socket is full. */
int gwctl_send(int fd, const json_t *obj, const int *fds, size_t nfds)
    MOAT_MUST_CHECK;

/* Receives one packet into buf (cap >= GWCTL_MAX_MSG): *len bytes, and
 * descriptors into fds (close-on-exec; *nfds). A truncated packet or
 * control message is MOAT_ERR_TOOBIG (descriptors that came are closed);
 * the peer gone is MOAT_ERR_CLOSED; nothing there (non-blocking) is
 * MOAT_ERR_AGAIN. */
int gwctl_recv(int fd, uint8_t *buf, size_t cap, size_t *len, int *fds,
    size_t *nfds) MOAT_MUST_CHECK;

#endif
