/*
 * agent_server.c - the agent socket (AGENT_SOCK_PATH, 0600 root) that
 * moatd connects to: one request per connection (agentproto.h), read
 * exactly (the 4-byte length, bounded before any allocation, then the
 * frame, never a byte more) and parsed by agentproto_decode(); then one
 * reply, after which the connection closes, except DIAL, which connects
 * to 127.0.0.1:PORT inside without blocking and hands both sockets to a
 * relay with the OK reply queued first. Every connection has a deadline
 * (SERVER_DEADLINE_MS) until its reply is out; at most SERVER_MAX_CONNS
 * are served at once.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"

#define SERVER_DEADLINE_MS 10000
#define SERVER_MAX_CONNS 64

enum conn_state { CONN_READ, CONN_DIALING, CONN_WRITE };

struct agent_conn {
	int fd;
	int target;		/* DIAL: the inside connection, or -1 */
	enum conn_state state;
	uint8_t *buf;		/* request, then reply */
	size_t len, want, off;
	uint16_t port;
	int64_t deadline;
	int64_t retry_at;	/* DIAL 22 retried while sshd (re)starts */
	int64_t dial_until;
	struct agent_conn *next, **pprev;
};

static void conn_cb(struct agent *ag, int fd, short revents, void *arg);
static void conn_dial(struct agent *ag, struct agent_conn *c, uint16_t port);

/*
 * sshd closes its listener for a moment when it is reloaded (SIGHUP, on a
 * secrets change) or restarted: a DIAL to port 22 refused then is retried
 * every SERVER_RETRY_MS for up to SERVER_RETRY_FOR_MS instead of failing a
 * gateway connection.
 */
#define SERVER_RETRY_MS 100
#define SERVER_RETRY_FOR_MS 3000

static bool
conn_dial_retry(struct agent *ag, struct agent_conn *c, int e)
{
	int64_t now = agent_now_ms();
	bool settling = ag->sshd_pid <= 0 ? ag->sshd_restart_at != 0 :
	    now - ag->sshd_changed < 5000;

	if (e != ECONNREFUSED || c->port != 22 || !settling ||
	    now + SERVER_RETRY_MS > c->dial_until)
		return false;
	c->retry_at = now + SERVER_RETRY_MS;
	c->state = CONN_DIALING;
	agent_watch_events(ag, c->fd, 0);
	return true;
}

static void
conn_free(struct agent *ag, struct agent_conn *c)
{
	if (c->fd >= 0) {
		agent_unwatch(ag, c->fd);
		close(c->fd);
	}
	if (c->target >= 0) {
		agent_unwatch(ag, c->target);
		close(c->target);
	}
	*c->pprev = c->next;
	if (c->next != NULL)
		c->next->pprev = c->pprev;
	ag->nconns--;
	if (c->buf != NULL)
		explicit_bzero(c->buf, c->want > c->len ? c->want : c->len);
	free(c->buf);
	free(c);
}

/* Queues msg as the reply; the connection closes once it is sent. */
static void
conn_reply(struct agent *ag, struct agent_conn *c,
    const struct agentproto_msg *msg)
{
	long n;

	explicit_bzero(c->buf, c->want);
	n = agentproto_encode(msg, c->buf, 4 + AGENTPROTO_MAX_FRAME);
	if (n <= 0) {
		agent_log("agent socket: reply does not encode");
		conn_free(ag, c);
		return;
	}
	c->state = CONN_WRITE;
	c->len = (size_t)n;
	c->off = 0;
	agent_watch_events(ag, c->fd, POLLOUT);
}

static void
conn_err(struct agent *ag, struct agent_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
conn_err(struct agent *ag, struct agent_conn *c, const char *fmt, ...)
{
	struct agentproto_msg *m = calloc(1, sizeof(*m));
	va_list ap;

	if (m == NULL) {
		conn_free(ag, c);
		return;
	}
	m->type = AGENTPROTO_ERR;
	va_start(ap, fmt);
	vsnprintf(m->reason, sizeof(m->reason), fmt, ap);
	va_end(ap);
	/* strerror text is ASCII; anything else would not encode. */
	for (char *p = m->reason; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	conn_reply(ag, c, m);
	free(m);
}

static void
conn_dial_done(struct agent *ag, struct agent_conn *c)
{
	uint8_t ok[16];
	struct agentproto_msg m = { .type = AGENTPROTO_OK };
	long n = agentproto_encode(&m, ok, sizeof(ok));
	int fd = c->fd, target = c->target;

	agent_unwatch(ag, fd);
	agent_unwatch(ag, target);
	c->fd = -1;
	c->target = -1;
	agent_log("dial 127.0.0.1:%u: connected", (unsigned)c->port);
	conn_free(ag, c);
	if (n <= 0) {
		close(fd);
		close(target);
		return;
	}
	(void)agent_relay_start(ag, fd, target, ok, (size_t)n, true);
}

static void
target_cb(struct agent *ag, int fd, short revents, void *arg)
{
	struct agent_conn *c = arg;
	int e = 0;
	socklen_t el = sizeof(e);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) != 0)
		e = errno;
	if (e == 0 && !(revents & (POLLERR | POLLHUP))) {
		conn_dial_done(ag, c);
		return;
	}
	agent_unwatch(ag, fd);
	close(fd);
	c->target = -1;
	if (e == 0)
		e = ECONNREFUSED;
	if (conn_dial_retry(ag, c, e))
		return;
	conn_err(ag, c, "connect to 127.0.0.1:%u: %s", (unsigned)c->port,
	    strerror(e));
}

static void
conn_dial(struct agent *ag, struct agent_conn *c, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int t;

	c->port = port;
	c->retry_at = 0;
	if (c->dial_until == 0)
		c->dial_until = agent_now_ms() + SERVER_RETRY_FOR_MS;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	t = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (t < 0) {
		conn_err(ag, c, "socket: %s", strerror(errno));
		return;
	}
	if (connect(t, (struct sockaddr *)&sin, sizeof(sin)) != 0 &&
	    errno != EINPROGRESS) {
		int e = errno;

		close(t);
		if (conn_dial_retry(ag, c, e))
			return;
		conn_err(ag, c, "connect to 127.0.0.1:%u: %s", (unsigned)port,
		    strerror(e));
		return;
	}
	if (agent_watch(ag, t, POLLOUT, target_cb, c) != 0) {
		close(t);
		conn_err(ag, c, "too many open files");
		return;
	}
	c->target = t;
	c->state = CONN_DIALING;
	/* Nothing is read from moatd until the inside connection is up. */
	agent_watch_events(ag, c->fd, 0);
}

static void
conn_request(struct agent *ag, struct agent_conn *c)
{
	struct agentproto_msg *m = calloc(1, sizeof(*m));
	struct agentproto_msg *rep = calloc(1, sizeof(*rep));
	uint8_t *chunk = NULL;
	char err[128];

	if (m == NULL || rep == NULL) {
		conn_free(ag, c);
		goto out;
	}
	if (agentproto_decode(c->buf, c->len, m, err, sizeof(err)) !=
	    (long)c->len) {
		agent_log("agent socket: %s", err);
		conn_err(ag, c, "%s", err);
		goto out;
	}
	switch (m->type) {
	case AGENTPROTO_STATUS:
		rep->type = AGENTPROTO_STATUS_REPLY;
		rep->version = AGENTPROTO_VERSION;
		rep->sshd_up = agent_sshd_up(ag);
		rep->idle_seconds = agent_idle_seconds(ag);
		rep->connections = ag->nrelays;
		rep->startup = ag->startup_state;
		rep->startup_exit = ag->startup_exit;
		conn_reply(ag, c, rep);
		break;
	case AGENTPROTO_SECRETS:
		if (agent_secrets_apply(ag, m, rep->reason,
		    sizeof(rep->reason)) != 0) {
			agent_log("secrets: %s", rep->reason);
			conn_err(ag, c, "%s", rep->reason);
			break;
		}
		rep->type = AGENTPROTO_OK;
		conn_reply(ag, c, rep);
		break;
	case AGENTPROTO_LOG:
		if ((chunk = malloc(AGENTPROTO_MAX_LOG_CHUNK)) == NULL) {
			conn_err(ag, c, "out of memory");
			break;
		}
		rep->type = AGENTPROTO_LOG_REPLY;
		rep->data_len = agent_log_read(m->offset, chunk,
		    AGENTPROTO_MAX_LOG_CHUNK, &rep->offset, &rep->log_end);
		rep->data = chunk;
		conn_reply(ag, c, rep);
		break;
	case AGENTPROTO_ACTIVITY:
		agent_activity(ag);
		rep->type = AGENTPROTO_OK;
		conn_reply(ag, c, rep);
		break;
	case AGENTPROTO_DIAL:
		conn_dial(ag, c, m->port);
		break;
	default:
		conn_err(ag, c, "not a request");
		break;
	}
out:
	if (m != NULL)
		explicit_bzero(m, sizeof(*m));
	free(m);
	free(rep);
	free(chunk);
}

static void
conn_read(struct agent *ag, struct agent_conn *c)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->buf + c->len, c->want - c->len,
		    MSG_DONTWAIT);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR &&
		    errno != EWOULDBLOCK)) {
			conn_free(ag, c);
			return;
		}
		if (n < 0)
			return;
		c->len += (size_t)n;
		if (c->len < c->want)
			continue;
		if (c->want == 4) {
			uint32_t fl = (uint32_t)c->buf[0] << 24 |
			    (uint32_t)c->buf[1] << 16 |
			    (uint32_t)c->buf[2] << 8 | c->buf[3];

			if (fl == 0 || fl > AGENTPROTO_MAX_FRAME) {
				agent_log("agent socket: frame of %u bytes "
				    "refused", fl);
				c->want = 4 + AGENTPROTO_MAX_FRAME;
				conn_err(ag, c, "frame of %u bytes refused",
				    fl);
				return;
			}
			c->want = 4 + (size_t)fl;
			continue;
		}
		conn_request(ag, c);
		return;
	}
}

static void
conn_write(struct agent *ag, struct agent_conn *c)
{
	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off,
		    MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		    errno == EINTR))
			return;
		if (n <= 0)
			break;
		c->off += (size_t)n;
	}
	conn_free(ag, c);
}

static void
conn_cb(struct agent *ag, int fd, short revents, void *arg)
{
	struct agent_conn *c = arg;

	switch (c->state) {
	case CONN_READ:
		conn_read(ag, c);
		break;
	case CONN_WRITE:
		conn_write(ag, c);
		break;
	case CONN_DIALING:
		/* moatd went away while we were connecting. */
		if (revents & (POLLHUP | POLLERR))
			conn_free(ag, c);
		break;
	}
}

static void
server_accept_cb(struct agent *ag, int lfd, short revents, void *arg)
{
	struct agent_conn *c;
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (ag->nconns >= SERVER_MAX_CONNS) {
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (c != NULL)
		c->buf = malloc(4 + AGENTPROTO_MAX_FRAME);
	if (c == NULL || c->buf == NULL ||
	    agent_watch(ag, fd, POLLIN, conn_cb, c) != 0) {
		if (c != NULL)
			free(c->buf);
		free(c);
		close(fd);
		return;
	}
	c->fd = fd;
	c->target = -1;
	c->state = CONN_READ;
	c->want = 4;
	c->deadline = agent_now_ms() + SERVER_DEADLINE_MS;
	c->next = ag->conns;
	if (c->next != NULL)
		c->next->pprev = &c->next;
	c->pprev = &ag->conns;
	ag->conns = c;
	ag->nconns++;
}

int
agent_server_listen(struct agent *ag)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, r;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return MOAT_ERR_IO;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", AGENT_SOCK_PATH);
	/* A socket left by the previous run of this container. */
	(void)unlink(AGENT_SOCK_PATH);
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r != 0 || listen(fd, 64) != 0 ||
	    agent_watch(ag, fd, POLLIN, server_accept_cb, NULL) != 0) {
		agent_log("cannot listen on %s: %s", AGENT_SOCK_PATH,
		    strerror(errno));
		close(fd);
		return MOAT_ERR_IO;
	}
	ag->agent_lfd = fd;
	agent_log("agent socket listening on %s", AGENT_SOCK_PATH);
	return 0;
}

void
agent_server_tick(struct agent *ag, int *timeout_ms)
{
	int64_t now = agent_now_ms();
	struct agent_conn *c, *next;

	for (c = ag->conns; c != NULL; c = next) {
		next = c->next;
		if (now >= c->deadline) {
			conn_free(ag, c);
			continue;
		}
		if (c->retry_at != 0 && now >= c->retry_at) {
			conn_dial(ag, c, c->port);
			continue;
		}
		if (c->retry_at != 0 && c->retry_at - now < *timeout_ms)
			*timeout_ms = (int)(c->retry_at - now);
		if (c->deadline - now < *timeout_ms)
			*timeout_ms = (int)(c->deadline - now);
	}
}

void
agent_server_close(struct agent *ag)
{
	while (ag->conns != NULL)
		conn_free(ag, ag->conns);
	if (ag->agent_lfd >= 0) {
		agent_unwatch(ag, ag->agent_lfd);
		close(ag->agent_lfd);
		ag->agent_lfd = -1;
	}
}
