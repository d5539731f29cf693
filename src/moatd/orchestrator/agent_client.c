/*
 * agent_client.c - moatd's side of the agent socket (agent_client.h).
 *
 * The agent directory is writable by the workspace: the socket is reached
 * without following any name in it (O_DIRECTORY|O_NOFOLLOW on the
 * directory, openat(O_PATH|O_NOFOLLOW) on the socket, fstat says S_IFSOCK,
 * connect through /proc/self/fd/N, which names the inode we checked and not
 * whatever the path holds by then). Replies are read as a 4-byte length,
 * bounded by AGENTPROTO_MAX_FRAME before anything is allocated or read,
 * then exactly that many bytes (so no byte of a DIAL's relayed stream is
 * consumed), and parsed by agentproto_decode(). Every wait is bounded by
 * one deadline per call.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "orchestrator/agent_client.h"

static int64_t
ac_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
ac_remaining(int64_t deadline)
{
	int64_t left = deadline - ac_now_ms();

	if (left <= 0)
		return 0;
	return left > 3600000 ? 3600000 : (int)left;
}

/* Waits until fd is ready for events or the deadline passes. */
static int
ac_wait(int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int left = ac_remaining(deadline);
		int n;

		if (left == 0)
			return MOAT_ERR_TIMEOUT;
		n = poll(&p, 1, left);
		if (n > 0)
			return 0;
		if (n == 0)
			return MOAT_ERR_TIMEOUT;
		if (errno != EINTR)
			return moat_err_from_errno(errno);
	}
}

static int
ac_write_all(int fd, const uint8_t *p, size_t len, int64_t deadline,
    char *err, size_t errlen)
{
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		int r;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if ((r = ac_wait(fd, POLLOUT, deadline)) != 0)
				return moat_fail(r, err, errlen,
				    "agent: timed out sending the request");
			continue;
		}
		r = moat_err_from_errno(errno);
		return moat_fail(r, err, errlen, "agent: send: %s",
		    strerror(errno));
	}
	return 0;
}

/* Reads exactly len bytes. */
static int
ac_read_exact(int fd, uint8_t *p, size_t len, int64_t deadline,
    char *err, size_t errlen)
{
	while (len > 0) {
		ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
		int r;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0)
			return moat_fail(MOAT_ERR_CLOSED, err, errlen,
			    "agent: connection closed before a whole reply");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if ((r = ac_wait(fd, POLLIN, deadline)) != 0)
				return moat_fail(r, err, errlen,
				    "agent: no reply in time");
			continue;
		}
		r = moat_err_from_errno(errno);
		return moat_fail(r, err, errlen, "agent: recv: %s",
		    strerror(errno));
	}
	return 0;
}

/* Reads one frame into buf (4 + AGENTPROTO_MAX_FRAME bytes) and decodes
 * it into msg (which then borrows from buf). */
static int
ac_read_frame(int fd, uint8_t *buf, int64_t deadline,
    struct agentproto_msg *msg, char *err, size_t errlen)
{
	uint32_t n;
	char derr[96];
	long got;
	int r;

	if ((r = ac_read_exact(fd, buf, 4, deadline, err, errlen)) != 0)
		return r;
	n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | buf[3];
	if (n == 0 || n > AGENTPROTO_MAX_FRAME)
		return moat_fail(MOAT_ERR_PARSE, err, errlen,
		    "agent: reply frame of %u bytes refused (1..%d)", n,
		    AGENTPROTO_MAX_FRAME);
	if ((r = ac_read_exact(fd, buf + 4, n, deadline, err, errlen)) != 0)
		return r;
	got = agentproto_decode(buf, 4 + (size_t)n, msg, derr, sizeof(derr));
	if (got != 4 + (long)n)
		return moat_fail(MOAT_ERR_PARSE, err, errlen,
		    "agent: malformed reply (%s)",
		    derr[0] != '\0' ? derr : "incomplete");
	return 0;
}

/* Connects s to the socket open as O_PATH fd sfd, within the deadline.
 * A unix stream connect blocks only while the listener's backlog is full;
 * SO_SNDTIMEO bounds that wait. */
static int
ac_connect_fd(int s, int sfd, int64_t deadline, char *err, size_t errlen)
{
	struct sockaddr_un sa;
	struct timeval tv;
	int left = ac_remaining(deadline);
	int r;

	if (left == 0)
		return moat_fail(MOAT_ERR_TIMEOUT, err, errlen,
		    "agent: timed out before connecting");
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d", sfd);
	tv.tv_sec = left / 1000;
	tv.tv_usec = (left % 1000) * 1000;
	if (setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		return moat_fail(moat_err_from_errno(errno), err, errlen,
		    "agent: setsockopt: %s", strerror(errno));
	while (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EINPROGRESS)
			return moat_fail(MOAT_ERR_TIMEOUT, err, errlen,
			    "agent: connect timed out (backlog full)");
		r = errno == ECONNREFUSED ? MOAT_ERR_CLOSED :
		    moat_err_from_errno(errno);
		return moat_fail(r, err, errlen,
		    "agent: connect to the agent socket: %s", strerror(errno));
	}
	tv.tv_sec = 0;
	tv.tv_usec = 0;
	(void)setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return 0;
}

static int
ac_connect_deadline(const char *agent_dir, int64_t deadline, int *fd_out,
    char *err, size_t errlen)
{
	struct stat st;
	int dfd = -1, sfd = -1, s = -1;
	int r = MOAT_ERR_INVAL;

	if (fd_out != NULL)
		*fd_out = -1;
	if (agent_dir == NULL || fd_out == NULL) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen,
		    "agent: invalid arguments");
		goto out;
	}
	dfd = open(agent_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		r = moat_fail(errno == ELOOP || errno == ENOTDIR ?
		    MOAT_ERR_PERM : moat_err_from_errno(errno), err, errlen,
		    "agent: cannot open the agent directory: %s",
		    strerror(errno));
		goto out;
	}
	sfd = openat(dfd, AGENT_SOCKET_NAME, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (sfd < 0) {
		r = moat_fail(moat_err_from_errno(errno), err, errlen,
		    "agent: no agent socket: %s", strerror(errno));
		goto out;
	}
	if (fstat(sfd, &st) != 0) {
		r = moat_fail(moat_err_from_errno(errno), err, errlen,
		    "agent: fstat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISSOCK(st.st_mode)) {
		r = moat_fail(MOAT_ERR_PERM, err, errlen,
		    "agent: %s is not a socket (%s): refused",
		    AGENT_SOCKET_NAME, S_ISLNK(st.st_mode) ? "a symlink" :
		    S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISREG(st.st_mode) ?
		    "a regular file" : "another file type");
		goto out;
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		r = moat_fail(moat_err_from_errno(errno), err, errlen,
		    "agent: socket: %s", strerror(errno));
		goto out;
	}
	if ((r = ac_connect_fd(s, sfd, deadline, err, errlen)) != 0)
		goto out;
	*fd_out = s;
	s = -1;
	r = 0;
out:
	if (s >= 0)
		close(s);
	if (sfd >= 0)
		close(sfd);
	if (dfd >= 0)
		close(dfd);
	return r;
}

int
agent_client_connect(const char *agent_dir, int timeout_ms, int *fd_out,
    char *err, size_t errlen)
{
	return ac_connect_deadline(agent_dir, ac_now_ms() + timeout_ms, fd_out,
	    err, errlen);
}

/*
 * One round trip: connects, sends req, reads one reply frame into buf and
 * rep. When fd_keep is non-NULL the connection is handed over there
 * (caller closes); otherwise it is closed. An ERR reply becomes
 * MOAT_ERR_IO with the agent's (printable, bounded) reason.
 */
static int
ac_roundtrip(const char *agent_dir, int timeout_ms,
    const struct agentproto_msg *req, uint8_t *buf,
    struct agentproto_msg *rep, enum agentproto_type want, int *fd_keep,
    char *err, size_t errlen)
{
	int64_t deadline = ac_now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	int fd = -1;
	long n;
	int r;

	if (fd_keep != NULL)
		*fd_keep = -1;
	n = agentproto_encode(req, buf, 4 + AGENTPROTO_MAX_FRAME);
	if (n <= 0) {
		r = moat_fail(MOAT_ERR_TOOBIG, err, errlen,
		    "agent: request does not fit in a frame or is invalid");
		goto out;
	}
	if ((r = ac_connect_deadline(agent_dir, deadline, &fd, err,
	    errlen)) != 0)
		goto out;
	if ((r = ac_write_all(fd, buf, (size_t)n, deadline, err, errlen)) != 0)
		goto out;
	if ((r = ac_read_frame(fd, buf, deadline, rep, err, errlen)) != 0)
		goto out;
	if (rep->type == AGENTPROTO_ERR) {
		r = moat_fail(MOAT_ERR_IO, err, errlen, "agent refused: %s",
		    rep->reason);
		goto out;
	}
	if (rep->type != want) {
		r = moat_fail(MOAT_ERR_PARSE, err, errlen,
		    "agent: unexpected reply type %d", (int)rep->type);
		goto out;
	}
	if (fd_keep != NULL) {
		*fd_keep = fd;
		fd = -1;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

/* Heap scratch for one call: a frame buffer and two messages. */
struct ac_scratch {
	uint8_t buf[4 + AGENTPROTO_MAX_FRAME];
	struct agentproto_msg req, rep;
};

static struct ac_scratch *
ac_scratch_new(char *err, size_t errlen)
{
	struct ac_scratch *s = calloc(1, sizeof(*s));

	if (s == NULL)
		moat_errf(err, errlen, "agent: out of memory");
	return s;
}

static void
ac_scratch_free(struct ac_scratch *s)
{
	if (s == NULL)
		return;
	/* The request may have held secret values. */
	explicit_bzero(s, sizeof(*s));
	free(s);
}

int
agent_client_status(const char *agent_dir, int timeout_ms,
    struct agentproto_msg *out, char *err, size_t errlen)
{
	struct ac_scratch *s = NULL;
	int r = MOAT_ERR_NOMEM;

	if (out == NULL)
		return moat_fail(MOAT_ERR_INVAL, err, errlen,
		    "agent: invalid arguments");
	if ((s = ac_scratch_new(err, errlen)) == NULL)
		goto out;
	s->req.type = AGENTPROTO_STATUS;
	r = ac_roundtrip(agent_dir, timeout_ms, &s->req, s->buf, &s->rep,
	    AGENTPROTO_STATUS_REPLY, NULL, err, errlen);
	if (r != 0)
		goto out;
	*out = s->rep;
	/* No pointer into the scratch buffer survives it. */
	out->data = NULL;
	out->data_len = 0;
	out->nsecrets = 0;
	r = 0;
out:
	ac_scratch_free(s);
	return r;
}

int
agent_client_put_secrets(const char *agent_dir, int timeout_ms,
    const struct agentproto_secret *secrets, size_t n, char *err,
    size_t errlen)
{
	struct ac_scratch *s = NULL;
	int r = MOAT_ERR_NOMEM;

	if (n > AGENTPROTO_MAX_SECRETS)
		return moat_fail(MOAT_ERR_TOOBIG, err, errlen,
		    "agent: %zu secrets (at most %d)", n,
		    AGENTPROTO_MAX_SECRETS);
	if (n > 0 && secrets == NULL)
		return moat_fail(MOAT_ERR_INVAL, err, errlen,
		    "agent: invalid arguments");
	if ((s = ac_scratch_new(err, errlen)) == NULL)
		goto out;
	s->req.type = AGENTPROTO_SECRETS;
	if (n > 0)
		memcpy(s->req.secrets, secrets, n * sizeof(*secrets));
	s->req.nsecrets = n;
	r = ac_roundtrip(agent_dir, timeout_ms, &s->req, s->buf, &s->rep,
	    AGENTPROTO_OK, NULL, err, errlen);
out:
	ac_scratch_free(s);
	return r;
}

int
agent_client_log(const char *agent_dir, int timeout_ms, uint64_t offset,
    uint8_t *out, size_t outlen, size_t *got, uint64_t *next_offset,
    uint64_t *log_end, char *err, size_t errlen)
{
	struct ac_scratch *s = NULL;
	int r = MOAT_ERR_NOMEM;

	if (out == NULL || outlen < AGENTPROTO_MAX_LOG_CHUNK || got == NULL ||
	    next_offset == NULL || log_end == NULL)
		return moat_fail(MOAT_ERR_INVAL, err, errlen,
		    "agent: invalid arguments");
	*got = 0;
	*next_offset = offset;
	*log_end = 0;
	if ((s = ac_scratch_new(err, errlen)) == NULL)
		goto out;
	s->req.type = AGENTPROTO_LOG;
	s->req.offset = offset;
	r = ac_roundtrip(agent_dir, timeout_ms, &s->req, s->buf, &s->rep,
	    AGENTPROTO_LOG_REPLY, NULL, err, errlen);
	if (r != 0)
		goto out;
	/* The decoder bounded data_len and offset + data_len <= log_end. Data
	 * never comes from before the requested offset (the agent may have
	 * dropped old bytes, so it may skip forward); an empty reply may point
	 * back to a shorter log's end (the container restarted). */
	if (s->rep.offset < offset && s->rep.data_len > 0) {
		r = moat_fail(MOAT_ERR_PARSE, err, errlen,
		    "agent: log reply before the requested offset");
		goto out;
	}
	if (s->rep.data_len > 0)
		memcpy(out, s->rep.data, s->rep.data_len);
	*got = s->rep.data_len;
	*next_offset = s->rep.offset + s->rep.data_len;
	*log_end = s->rep.log_end;
	r = 0;
out:
	ac_scratch_free(s);
	return r;
}

int
agent_client_dial(const char *agent_dir, uint16_t port, int timeout_ms,
    int *fd_out, char *err, size_t errlen)
{
	struct ac_scratch *s = NULL;
	int r = MOAT_ERR_NOMEM;

	if (fd_out == NULL || port == 0)
		return moat_fail(MOAT_ERR_INVAL, err, errlen,
		    "agent: invalid arguments");
	*fd_out = -1;
	if ((s = ac_scratch_new(err, errlen)) == NULL)
		goto out;
	s->req.type = AGENTPROTO_DIAL;
	s->req.port = port;
	r = ac_roundtrip(agent_dir, timeout_ms, &s->req, s->buf, &s->rep,
	    AGENTPROTO_OK, fd_out, err, errlen);
out:
	ac_scratch_free(s);
	return r;
}

int
agent_client_activity(const char *agent_dir, int timeout_ms, char *err,
    size_t errlen)
{
	struct ac_scratch *s = NULL;
	int r = MOAT_ERR_NOMEM;

	if ((s = ac_scratch_new(err, errlen)) == NULL)
		goto out;
	s->req.type = AGENTPROTO_ACTIVITY;
	r = ac_roundtrip(agent_dir, timeout_ms, &s->req, s->buf, &s->rep,
	    AGENTPROTO_OK, NULL, err, errlen);
out:
	ac_scratch_free(s);
	return r;
}
