/*
 * agent_loop.c - moat-agent's poll() loop: a table of fd watchers indexed
 * by fd, a dense list of the watched fds from which each round's pollfd
 * array is built, and a generation per fd so that a callback closing an fd
 * (and another opening the same number) never gets an event meant for the
 * old one.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "agent.h"

struct agent_watch {
	agent_cb cb;
	void *arg;
	short events;
	int pos;		/* index in active[], -1 when not watched */
	uint32_t gen;
};

int64_t
agent_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
agent_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return MOAT_ERR_IO;
	return 0;
}

int
agent_loop_init(struct agent *ag)
{
	struct rlimit rl;
	rlim_t n = 4096;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		n = rl.rlim_cur;
	if (n > 65536)
		n = 65536;
	if (n < 64)
		n = 64;
	ag->nwatch = (int)n;
	ag->watch = calloc((size_t)n, sizeof(*ag->watch));
	ag->active = calloc((size_t)n, sizeof(*ag->active));
	if (ag->watch == NULL || ag->active == NULL)
		return MOAT_ERR_IO;
	for (int i = 0; i < ag->nwatch; i++)
		ag->watch[i].pos = -1;
	ag->nactive = 0;
	return 0;
}

void
agent_loop_free(struct agent *ag)
{
	free(ag->watch);
	free(ag->active);
	ag->watch = NULL;
	ag->active = NULL;
}

int
agent_watch(struct agent *ag, int fd, short events, agent_cb cb, void *arg)
{
	struct agent_watch *w;

	if (fd < 0 || fd >= ag->nwatch)
		return MOAT_ERR_IO;
	w = &ag->watch[fd];
	if (w->pos < 0) {
		w->pos = ag->nactive;
		ag->active[ag->nactive++] = fd;
	}
	w->cb = cb;
	w->arg = arg;
	w->events = events;
	w->gen++;
	return 0;
}

void
agent_watch_events(struct agent *ag, int fd, short events)
{
	if (fd >= 0 && fd < ag->nwatch && ag->watch[fd].pos >= 0)
		ag->watch[fd].events = events;
}

void
agent_unwatch(struct agent *ag, int fd)
{
	struct agent_watch *w;
	int last;

	if (fd < 0 || fd >= ag->nwatch || ag->watch[fd].pos < 0)
		return;
	w = &ag->watch[fd];
	last = ag->active[ag->nactive - 1];
	ag->active[w->pos] = last;
	ag->watch[last].pos = w->pos;
	ag->nactive--;
	w->pos = -1;
	w->cb = NULL;
	w->arg = NULL;
	w->gen++;
}

int
agent_loop_once(struct agent *ag, int timeout_ms)
{
	struct pollfd *p;
	uint32_t *gens;
	int n = ag->nactive, r;

	p = calloc((size_t)n + 1, sizeof(*p));
	gens = calloc((size_t)n + 1, sizeof(*gens));
	if (p == NULL || gens == NULL) {
		free(p);
		free(gens);
		return MOAT_ERR_IO;
	}
	for (int i = 0; i < n; i++) {
		int fd = ag->active[i];

		p[i].fd = fd;
		p[i].events = ag->watch[fd].events;
		gens[i] = ag->watch[fd].gen;
	}
	r = poll(p, (nfds_t)n, timeout_ms);
	if (r < 0) {
		r = errno == EINTR ? 0 : MOAT_ERR_IO;
		goto out;
	}
	for (int i = 0; i < n && r > 0; i++) {
		struct agent_watch *w = &ag->watch[p[i].fd];

		if (p[i].revents == 0)
			continue;
		/* Changed since the poll set was built: skip. */
		if (w->pos < 0 || w->gen != gens[i] || w->cb == NULL)
			continue;
		w->cb(ag, p[i].fd, p[i].revents, w->arg);
	}
	r = 0;
out:
	free(p);
	free(gens);
	return r;
}
