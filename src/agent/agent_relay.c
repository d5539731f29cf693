/*
 * agent_relay.c - byte relays between two sockets, for DIAL (moatd's
 * connection on the agent socket <-> 127.0.0.1:PORT inside) and egress
 * (a client of 127.0.0.1:3128 inside <-> /run/moat/egress.sock, served by
 * moat-proxy on the host). Each direction has a bounded buffer
 * (RELAY_BUF); a side's EOF is passed on as shutdown(SHUT_WR) once its
 * buffer is drained (half-close), and the relay ends when both directions
 * are done or on any error. Every byte moved counts as activity.
 *
 * The egress listener accepts on 127.0.0.1:proxy_port and connects each
 * client to the egress socket without blocking; when the socket is absent
 * or refuses, the client is simply closed.
 */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent.h"

#define RELAY_BUF (32 * 1024)
#define RELAY_MAX 1024

struct relay_dir {
	uint8_t buf[RELAY_BUF];
	size_t len;
	bool eof;	/* the source said EOF */
	bool shut;	/* EOF passed on to the destination */
};

struct agent_relay {
	int fd[2];		/* 0: a, 1: b */
	struct relay_dir d[2];	/* d[0]: a -> b, d[1]: b -> a */
	bool dial;
	bool hup[2];		/* poll said HUP: nothing more goes into fd[i] */
	bool watched[2];
	struct agent_relay *next, **pprev;
};

static void relay_cb(struct agent *ag, int fd, short revents, void *arg);

void
agent_activity(struct agent *ag)
{
	ag->last_activity = agent_now_ms();
}

uint32_t
agent_idle_seconds(const struct agent *ag)
{
	int64_t d;

	if (ag->ndial > 0)
		return 0;
	d = (agent_now_ms() - ag->last_activity) / 1000;
	return d < 0 ? 0 : d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static void
relay_free(struct agent *ag, struct agent_relay *r)
{
	for (int i = 0; i < 2; i++) {
		agent_unwatch(ag, r->fd[i]);
		close(r->fd[i]);
	}
	*r->pprev = r->next;
	if (r->next != NULL)
		r->next->pprev = r->pprev;
	ag->nrelays--;
	if (r->dial) {
		ag->ndial--;
		/* The end of a session is its last activity. */
		agent_activity(ag);
	}
	free(r);
}

/*
 * poll() reports HUP whatever events are asked for, so an fd that has hung
 * up and has nothing to be read from it (its buffer full, or at EOF) is
 * taken out of the poll set until its buffer has room again; otherwise the
 * loop would spin.
 */
static void
relay_set_events(struct agent *ag, struct agent_relay *r)
{
	for (int i = 0; i < 2; i++) {
		short ev = 0;

		/* fd[i] reads into d[i], writes from d[1 - i]. */
		if (!r->d[i].eof && r->d[i].len < RELAY_BUF)
			ev |= POLLIN;
		if (r->d[1 - i].len > 0 && !r->hup[i])
			ev |= POLLOUT;
		if (r->hup[i] && ev == 0) {
			if (r->watched[i])
				agent_unwatch(ag, r->fd[i]);
			r->watched[i] = false;
		} else if (!r->watched[i]) {
			r->watched[i] = agent_watch(ag, r->fd[i], ev, relay_cb,
			    r) == 0;
		} else {
			agent_watch_events(ag, r->fd[i], ev);
		}
	}
}

/* Moves what can be moved without blocking; non-zero when the relay is
 * over. */
static int
relay_pump(struct agent *ag, struct agent_relay *r)
{
	bool progress = true;

	while (progress) {
		progress = false;
		for (int i = 0; i < 2; i++) {
			struct relay_dir *d = &r->d[i];
			int src = r->fd[i], dst = r->fd[1 - i];

			if (!d->eof && d->len < RELAY_BUF) {
				ssize_t n = recv(src, d->buf + d->len,
				    RELAY_BUF - d->len, MSG_DONTWAIT);

				if (n > 0) {
					d->len += (size_t)n;
					progress = true;
					agent_activity(ag);
				} else if (n == 0) {
					d->eof = true;
					progress = true;
				} else if (errno != EAGAIN &&
				    errno != EWOULDBLOCK && errno != EINTR) {
					return MOAT_ERR_IO;
				}
			}
			if (d->len > 0) {
				ssize_t n = send(dst, d->buf, d->len,
				    MSG_DONTWAIT | MSG_NOSIGNAL);

				if (n > 0) {
					memmove(d->buf, d->buf + n,
					    d->len - (size_t)n);
					d->len -= (size_t)n;
					progress = true;
					agent_activity(ag);
				} else if (n < 0 && errno != EAGAIN &&
				    errno != EWOULDBLOCK && errno != EINTR) {
					return MOAT_ERR_IO;
				}
			}
			if (d->eof && d->len == 0 && !d->shut) {
				(void)shutdown(dst, SHUT_WR);
				d->shut = true;
			}
		}
	}
	if (r->d[0].shut && r->d[1].shut)
		return MOAT_ERR_IO;
	return 0;
}

static void
relay_cb(struct agent *ag, int fd, short revents, void *arg)
{
	struct agent_relay *r = arg;
	int i = fd == r->fd[0] ? 0 : 1;

	if ((revents & (POLLERR | POLLNVAL)) || relay_pump(ag, r) != 0) {
		relay_free(ag, r);
		return;
	}
	if (revents & POLLHUP) {
		/* Both directions of fd[i] are shut or its peer is gone:
		 * what was meant for it is dropped, what it sent is still
		 * delivered. */
		struct relay_dir *in = &r->d[1 - i];

		r->hup[i] = true;
		in->len = 0;
		in->eof = true;
		in->shut = true;
		if (r->d[i].shut) {
			relay_free(ag, r);
			return;
		}
	}
	relay_set_events(ag, r);
}

int
agent_relay_start(struct agent *ag, int a, int b, const uint8_t *to_a,
    size_t to_a_len, bool dial)
{
	struct agent_relay *r = NULL;

	if (ag->nrelays >= RELAY_MAX || to_a_len > RELAY_BUF ||
	    (r = calloc(1, sizeof(*r))) == NULL) {
		close(a);
		close(b);
		return MOAT_ERR_IO;
	}
	r->fd[0] = a;
	r->fd[1] = b;
	r->dial = dial;
	if (to_a_len > 0)
		memcpy(r->d[1].buf, to_a, to_a_len);
	r->d[1].len = to_a_len;
	r->watched[0] = r->watched[1] = true;
	if (agent_set_nonblock(a) != 0 || agent_set_nonblock(b) != 0 ||
	    agent_watch(ag, a, 0, relay_cb, r) != 0 ||
	    agent_watch(ag, b, 0, relay_cb, r) != 0) {
		agent_unwatch(ag, a);
		agent_unwatch(ag, b);
		close(a);
		close(b);
		free(r);
		return MOAT_ERR_IO;
	}
	r->next = ag->relays;
	if (r->next != NULL)
		r->next->pprev = &r->next;
	r->pprev = &ag->relays;
	ag->relays = r;
	ag->nrelays++;
	if (dial)
		ag->ndial++;
	agent_activity(ag);
	relay_cb(ag, a, 0, r);
	return 0;
}

void
agent_relay_close_all(struct agent *ag)
{
	while (ag->relays != NULL)
		relay_free(ag, ag->relays);
}

static void
egress_accept_cb(struct agent *ag, int lfd, short revents, void *arg)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int c, u;

	c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (c < 0)
		return;
	u = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", AGENT_EGRESS_SOCK);
	if (u < 0 || connect(u, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		int64_t now = agent_now_ms();

		/* Refused: say so at most once a minute. */
		if (ag->egress_warned == 0 || now - ag->egress_warned > 60000) {
			agent_log("egress connection refused: %s: %s",
			    AGENT_EGRESS_SOCK, u < 0 ? "socket" :
			    strerror(errno));
			ag->egress_warned = now;
		}
		if (u >= 0)
			close(u);
		close(c);
		return;
	}
	(void)agent_relay_start(ag, c, u, NULL, 0, false);
}

int
agent_egress_listen(struct agent *ag)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	int fd, one = 1;

	sin.sin_port = htons(ag->conf.proxy_port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return MOAT_ERR_IO;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(fd, 128) != 0 ||
	    agent_watch(ag, fd, POLLIN, egress_accept_cb, NULL) != 0) {
		agent_log("cannot listen on 127.0.0.1:%u: %s",
		    (unsigned)ag->conf.proxy_port, strerror(errno));
		close(fd);
		return MOAT_ERR_IO;
	}
	ag->egress_lfd = fd;
	agent_log("egress relay listening on 127.0.0.1:%u",
	    (unsigned)ag->conf.proxy_port);
	return 0;
}
