/*
 * audit_collector.c - the local collector socket through which other
 * processes (SSH session processes, moat-proxy) hand audit events to the
 * writer, and audit_client, their side of it.
 *
 * The collector is a SOCK_SEQPACKET unix socket (mode 0660) served by one
 * thread with poll(). Each message is one JSON event of at most
 * AUDIT_MAX_EVENT bytes, parsed as untrusted input and checked with
 * audit__check_remote(). The sender cannot choose its identity: "source" is
 * set from SO_PEERCRED (pid, uid, gid of the connecting process), and the
 * event's "component" is copied into source.claimed_process, recorded as a
 * claim only. Messages are fire-and-forget: a bad one is dropped, counted
 * (audit_writer_rejected) and logged at a limited rate. When the writer's
 * queue is full the collector thread waits, which in turn stops reading the
 * sockets and so slows the senders down instead of losing their events.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "audit_int.h"
#include "json.h"
#include "log.h"

#define MAX_CLIENTS		64
#define MSGS_PER_WAKE		64	/* fairness between clients */
#define LOGS_PER_SEC		5

struct client {
	int fd;
	long long pid, uid, gid;
};

struct audit_collector {
	struct audit_writer *w;		/* borrowed */
	char *path;
	dev_t dev;			/* of the socket we bound */
	ino_t ino;
	int lfd;
	int wake[2];			/* pipe: a byte means stop */
	pthread_t thread;
	bool started;
	uint8_t *msg;			/* AUDIT_MAX_EVENT bytes */
	struct client clients[MAX_CLIENTS];
	size_t nclients;
	atomic_uint_fast64_t rejected;
	/* Rate limit of the "refused" log lines (collector thread only). */
	time_t log_sec;
	unsigned log_count;
	unsigned long long suppressed;
};

/* Logs a refused message, at most LOGS_PER_SEC lines per second. */
static void
log_refused(struct audit_collector *c, const struct client *cl,
    const char *why)
{
	time_t now = time(NULL);

	if (now != c->log_sec) {
		c->log_sec = now;
		c->log_count = 0;
	}
	if (c->log_count >= LOGS_PER_SEC) {
		c->suppressed++;
		return;
	}
	c->log_count++;
	log_warn("audit", "collector refused an event", LF_STR("reason", why),
	    LF_INT("pid", cl->pid), LF_INT("uid", cl->uid),
	    LF_INT("suppressed_before", c->suppressed));
	c->suppressed = 0;
}

static void
reject(struct audit_collector *c, const struct client *cl, const char *why)
{
	atomic_fetch_add(&c->rejected, 1);
	log_refused(c, cl, why);
}

static void
handle_message(struct audit_collector *c, const struct client *cl,
    size_t len)
{
	char why[128];
	json_t *ev, *src;
	const char *component;
	int r;

	/* why never echoes values (json.h). */
	if (json_parse_object(c->msg, len, AUDIT_MAX_EVENT, &ev, why,
	    sizeof(why)) != 0) {
		reject(c, cl, why);
		return;
	}
	if (!audit__check_remote(ev, why, sizeof(why))) {
		json_decref(ev);
		reject(c, cl, why);
		return;
	}
	src = json_pack("{s:I, s:I, s:I}", "pid", (json_int_t)cl->pid,
	    "uid", (json_int_t)cl->uid, "gid", (json_int_t)cl->gid);
	component = json_string_value(json_object_get(ev, "component"));
	if (src == NULL || (component != NULL && json_object_set_new(src,
	    "claimed_process", json_string(component)) != 0) ||
	    json_object_set_new(ev, "source", src) != 0) {
		json_decref(ev);
		atomic_fetch_add(&c->rejected, 1);
		log_error("audit", "collector out of memory; event dropped");
		return;
	}
	/* Waits for room in the queue rather than dropping. */
	if ((r = audit__enqueue(c->w, ev, true, true)) != 0 &&
	    r != MOAT_ERR_NOSPACE)
		log_refused(c, cl, "the writer's queue is closed or full");
}

static void
drop_client(struct audit_collector *c, size_t i)
{
	close(c->clients[i].fd);
	c->clients[i] = c->clients[--c->nclients];
}

/* Reads up to MSGS_PER_WAKE messages; false when the client is gone. */
static bool
serve_client(struct audit_collector *c, struct client *cl)
{
	for (int n = 0; n < MSGS_PER_WAKE; n++) {
		struct iovec iov = { .iov_base = c->msg,
		    .iov_len = AUDIT_MAX_EVENT };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t k = recvmsg(cl->fd, &mh, MSG_DONTWAIT);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN || errno == EWOULDBLOCK;
		}
		if (k == 0)
			return false;
		if (mh.msg_flags & MSG_TRUNC) {
			reject(c, cl, "message larger than AUDIT_MAX_EVENT");
			continue;
		}
		handle_message(c, cl, (size_t)k);
	}
	return true;
}

static void
accept_client(struct audit_collector *c)
{
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct client cl;
	int fd;

	fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0 ||
	    clen != sizeof(cred)) {
		close(fd);
		return;
	}
	cl = (struct client){ .fd = fd, .pid = cred.pid, .uid = cred.uid,
	    .gid = cred.gid };
	if (c->nclients >= MAX_CLIENTS) {
		reject(c, &cl, "too many collector connections");
		close(fd);
		return;
	}
	c->clients[c->nclients++] = cl;
}

static void *
collector_main(void *arg)
{
	struct audit_collector *c = arg;
	struct pollfd pfd[MAX_CLIENTS + 2];

	for (;;) {
		size_t n = c->nclients;

		pfd[0] = (struct pollfd){ .fd = c->wake[0], .events = POLLIN };
		pfd[1] = (struct pollfd){ .fd = c->lfd, .events = POLLIN };
		for (size_t i = 0; i < n; i++)
			pfd[i + 2] = (struct pollfd){ .fd = c->clients[i].fd,
			    .events = POLLIN };
		if (poll(pfd, n + 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("audit", "collector poll failed",
			    LF_STR("error", strerror(errno)));
			break;
		}
		if (pfd[0].revents)
			break;
		/* Backwards, so that dropping client i moves one we did. */
		for (size_t i = n; i > 0; i--) {
			if (pfd[i + 1].revents == 0)
				continue;
			if (!serve_client(c, &c->clients[i - 1]))
				drop_client(c, i - 1);
		}
		if (pfd[1].revents & POLLIN)
			accept_client(c);
	}
	return NULL;
}

/* Removes a socket left by a previous run, only when it is a socket and
 * nobody answers on it. */
static int
clear_stale(const char *path, const struct sockaddr_un *sa)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : moat_err_from_errno(errno);
	if (!S_ISSOCK(st.st_mode)) {
		log_error("audit", "collector path exists and is not a socket",
		    LF_STR("path", path));
		return MOAT_ERR_EXISTS;
	}
	if ((fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0)
		return moat_err_from_errno(errno);
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (r == 0 || errno == EPROTOTYPE) {
		close(fd);
		log_error("audit", "another process listens on the collector "
		    "socket", LF_STR("path", path));
		return MOAT_ERR_EXISTS;
	}
	r = errno;
	close(fd);
	if (r != ECONNREFUSED)
		return moat_err_from_errno(r);
	if (unlink(path) != 0 && errno != ENOENT)
		return moat_err_from_errno(errno);
	log_info("audit", "removed a stale collector socket",
	    LF_STR("path", path));
	return 0;
}

int
audit__collector_start(struct audit_collector **out, struct audit_writer *w,
    const char *path)
{
	struct audit_collector *c = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	size_t plen = strlen(path);
	int r = MOAT_ERR_TOOBIG;

	*out = NULL;
	if (plen == 0 || plen >= sizeof(sa.sun_path))
		goto out;
	memcpy(sa.sun_path, path, plen + 1);
	r = MOAT_ERR_NOMEM;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto out;
	c->w = w;
	c->lfd = c->wake[0] = c->wake[1] = -1;
	atomic_init(&c->rejected, 0);
	if ((c->path = strdup(path)) == NULL ||
	    (c->msg = malloc(AUDIT_MAX_EVENT)) == NULL)
		goto out;
	if ((r = clear_stale(path, &sa)) != 0)
		goto out;
	if (pipe2(c->wake, O_CLOEXEC | O_NONBLOCK) != 0 ||
	    (c->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC |
	    SOCK_NONBLOCK, 0)) < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	if (bind(c->lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		r = moat_err_from_errno(errno);
		log_error("audit", "cannot bind the collector socket",
		    LF_STR("path", path), LF_STR("error", strerror(errno)));
		goto out;
	}
	/* Nobody can connect before listen(), so the mode is set in time. */
	if (chmod(path, 0660) != 0 || lstat(path, &st) != 0 ||
	    listen(c->lfd, 64) != 0) {
		r = moat_err_from_errno(errno);
		unlink(path);
		goto out;
	}
	c->dev = st.st_dev;
	c->ino = st.st_ino;
	if (pthread_create(&c->thread, NULL, collector_main, c) != 0) {
		r = MOAT_ERR_NOMEM;
		unlink(path);
		goto out;
	}
	c->started = true;
	log_info("audit", "collector listening", LF_STR("path", path));
	*out = c;
	c = NULL;
	r = 0;
out:
	audit__collector_stop(c);
	return r;
}

void
audit__collector_stop(struct audit_collector *c)
{
	struct stat st;

	if (c == NULL)
		return;
	if (c->started) {
		ssize_t k;
		do
			k = write(c->wake[1], "x", 1);
		while (k < 0 && errno == EINTR);
		pthread_join(c->thread, NULL);
		/* Remove the path only while it is still our socket. */
		if (lstat(c->path, &st) == 0 && st.st_dev == c->dev &&
		    st.st_ino == c->ino)
			unlink(c->path);
	}
	for (size_t i = 0; i < c->nclients; i++)
		close(c->clients[i].fd);
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->wake[0] >= 0)
		close(c->wake[0]);
	if (c->wake[1] >= 0)
		close(c->wake[1]);
	free(c->msg);
	free(c->path);
	free(c);
}

uint64_t
audit__collector_rejected(const struct audit_collector *c)
{
	return c == NULL ? 0 : atomic_load(&((struct audit_collector *)c)->rejected);
}

/* --- The sending side. --- */

struct audit_client {
	int fd;
};

int
audit_client_connect(struct audit_client **out, const char *path)
{
	struct audit_client *c = NULL;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t plen;
	int r = MOAT_ERR_INVAL;

	*out = NULL;
	if (path == NULL || (plen = strlen(path)) == 0 ||
	    plen >= sizeof(sa.sun_path))
		goto out;
	memcpy(sa.sun_path, path, plen + 1);
	r = MOAT_ERR_NOMEM;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto out;
	if ((c->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0)) < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		r = errno == ECONNREFUSED ? MOAT_ERR_CLOSED :
		    moat_err_from_errno(errno);
		goto out;
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	audit_client_free(c);
	return r;
}

int
audit_client_send(struct audit_client *c, const json_t *ev)
{
	char *s = NULL;
	size_t len;
	ssize_t k;
	int r = MOAT_ERR_INVAL;

	if (c == NULL || !json_is_object(ev))
		goto out;
	r = MOAT_ERR_NOMEM;
	if ((s = audit__canonical(ev, &len)) == NULL)
		goto out;
	r = MOAT_ERR_TOOBIG;
	if (len > AUDIT_MAX_EVENT)
		goto out;
	do
		k = send(c->fd, s, len, MSG_NOSIGNAL);
	while (k < 0 && errno == EINTR);
	if (k < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	r = (size_t)k == len ? 0 : MOAT_ERR_IO;
out:
	free(s);
	return r;
}

void
audit_client_free(struct audit_client *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}
