/*
 * agent_client.h - moatd's side of the agent socket (agentproto.h).
 *
 * The agent's directory is writable by the workspace, so nothing in it is
 * trusted and no name in it is followed: the directory is opened with
 * O_DIRECTORY|O_NOFOLLOW, the socket with openat(O_PATH|O_NOFOLLOW), fstat
 * must say it is a socket, and the connection goes through
 * /proc/self/fd/N. A symlink, a FIFO, a regular file or a socket swapped
 * in by the workspace for another host socket's path is refused
 * (MOAT_ERR_PERM). Every reply is parsed by agentproto_decode() with a
 * bounded size and a deadline.
 *
 * All calls block up to timeout_ms: worker or reconciler threads only.
 */
#ifndef MOATD_AGENT_CLIENT_H
#define MOATD_AGENT_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "agentproto.h"
#include "errors.h"

#define AGENT_SOCKET_NAME "agent.sock"

/* Connects to agent_dir/agent.sock as described. *fd_out: caller closes. */
int agent_client_connect(const char *agent_dir, int timeout_ms, int *fd_out,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* One STATUS round trip on a new connection. */
int agent_client_status(const char *agent_dir, int timeout_ms,
    struct agentproto_msg *out, char *err, size_t errlen) MOAT_MUST_CHECK;

/* Replaces the workspace's /run/secrets with these (values borrowed). */
int agent_client_put_secrets(const char *agent_dir, int timeout_ms,
    const struct agentproto_secret *secrets, size_t n, char *err,
    size_t errlen) MOAT_MUST_CHECK;

/* Reads log bytes from offset: at most AGENTPROTO_MAX_LOG_CHUNK into out
 * (outlen >= that), *got bytes, *next_offset where the next read starts,
 * *log_end the agent's log size. The agent keeps the last MiB: data may
 * start after offset. When the log restarted (a new container) and is now
 * shorter than offset, *got is 0 and *next_offset == *log_end < offset. */
int agent_client_log(const char *agent_dir, int timeout_ms, uint64_t offset,
    uint8_t *out, size_t outlen, size_t *got, uint64_t *next_offset,
    uint64_t *log_end, char *err, size_t errlen) MOAT_MUST_CHECK;

/* Asks the agent to connect to 127.0.0.1:port inside. On 0, *fd_out is a
 * stream socket carrying that connection's bytes (caller closes; blocking
 * mode, close-on-exec; no byte after the agent's OK has been read). An ERR
 * reply gives MOAT_ERR_IO with the agent's reason in err. */
int agent_client_dial(const char *agent_dir, uint16_t port, int timeout_ms,
    int *fd_out, char *err, size_t errlen) MOAT_MUST_CHECK;

/* Tells the agent there was activity it cannot see (an SSH session's
 * keystrokes through the gateway), so idle auto-stop waits. */
int agent_client_activity(const char *agent_dir, int timeout_ms, char *err,
    size_t errlen) MOAT_MUST_CHECK;

#endif
