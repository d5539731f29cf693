/*
 * relay.c - bidirectional relay between two bufferevents (see relay.h).
 *
 * Per direction (client to upstream "up", upstream to client "down"):
 * filter first (when set), then chain moves from the source's input to the
 * destination's output, never letting the output hold more than
 * high_water: past it the source stops reading, and the destination's
 * write callback (low watermark high_water/2) resumes it. A source's EOF
 * becomes shutdown(SHUT_WR) on the destination once its output is empty.
 *
 * splice(2): a direction between two plain sockets whose filter is done
 * and whose buffers are empty moves bytes source -> pipe -> destination
 * in the kernel instead (the pipe made at its first bytes, so an idle
 * tunnel holds none). The pipe plays the output's part: at most its size
 * (high_water when the kernel allows, else its default) waits in it, the
 * source is not read while it is full, and an own write event on the
 * destination drains it. Once spliced, a direction never goes back to the
 * buffers, so its bytes stay in order. A direction whose pipe cannot be
 * made, or whose sockets refuse splice before any byte moved, stays on
 * the buffered path.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>

#include "log.h"
#include "relay.h"

#define RELAY_HIGH_DEFAULT (256 * 1024)
#define RELAY_FILTER_MAX_DEFAULT (64 * 1024)
#define RELAY_LINGER_MS 2000
/* One read() at most: libevent 2.1's own socket reads stop at 4 KiB,
 * which costs a system call per 4 KiB on bulk tunnels; the relay reads
 * plain sockets itself. */
#define RELAY_READ_MAX (128 * 1024)
/* Pipefuls one readable event may move on a spliced direction. */
#define RELAY_SPLICE_ROUNDS 8

enum { DIR_UP = 0, DIR_DOWN = 1 };

/* One direction's splice state. */
struct relay_pipe {
	struct relay *r;
	int p[2];		/* [0] read end, [1] write end; -1: none */
	size_t len;		/* bytes in the pipe */
	size_t cap;		/* at most this many wait in it */
	struct event *wev;	/* the destination is writable */
	bool on;		/* this direction is spliced (for good) */
	bool off;		/* splice is not possible: buffered for good */
	bool full;		/* the last splice in met a full pipe */
	bool moved;		/* a byte went through the pipe */
};

struct relay_side {
	struct relay *r;
	struct bufferevent *bev;	/* writes (and reads when tls) */
	struct evbuffer *in;		/* input: own buffer, or the bev's (tls) */
	struct event *rev;		/* own read event (not tls) */
	evutil_socket_t fd;
	bool reading;			/* read interest on */
	bool eof;		/* no more input from this side */
	bool shut;		/* our write side towards it is shut */
	bool tls;		/* a TLS bufferevent: no half-close */
};

struct relay {
	struct event_base *base;
	struct relay_side c, u;
	struct relay_opts o;
	struct event *timer;
	bool started;		/* first step done (from the timer) */
	bool lingering;		/* one-way: answer sent, waiting for client EOF */
	bool filtered[2];	/* the direction's filter said done */
	struct relay_pipe sp[2];
	uint64_t bytes[2];
	uint64_t spliced;
	uint64_t start_ns, last_ns;
	relay_done_fn done;
	void *arg;
};

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
arm_ms(struct relay *r, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };

	(void)event_add(r->timer, &tv);
}

static void
side_free(struct relay_side *s)
{
	if (s->rev != NULL)
		event_free(s->rev);
	if (!s->tls && s->in != NULL)
		evbuffer_free(s->in);
	if (s->bev != NULL)
		bufferevent_free(s->bev);
}

static void
side_read(struct relay_side *s, bool on)
{
	if (on == s->reading || (on && s->eof))
		return;
	s->reading = on;
	if (s->tls) {
		if (on)
			bufferevent_enable(s->bev, EV_READ);
		else
			bufferevent_disable(s->bev, EV_READ);
	} else if (on) {
		(void)event_add(s->rev, NULL);
	} else {
		(void)event_del(s->rev);
	}
}

static void
pipe_free(struct relay_pipe *sp)
{
	if (sp->wev != NULL)
		event_free(sp->wev);
	sp->wev = NULL;
	for (int i = 0; i < 2; i++) {
		if (sp->p[i] >= 0)
			close(sp->p[i]);
		sp->p[i] = -1;
	}
}

/* Frees everything and reports; r is gone afterwards. */
static void
finish(struct relay *r, int err)
{
	struct relay_stats st;

	st.bytes_up = r->bytes[DIR_UP];
	st.bytes_down = r->bytes[DIR_DOWN];
	st.bytes_spliced = r->spliced;
	st.duration_ns = now_ns() - r->start_ns;
	st.err = err;
	pipe_free(&r->sp[DIR_UP]);
	pipe_free(&r->sp[DIR_DOWN]);
	side_free(&r->c);
	side_free(&r->u);
	event_free(r->timer);
	if (r->done != NULL)
		r->done(&st, r->arg);
	free(r);
}

static void
half_close(struct relay_side *dst)
{
	evutil_socket_t fd;

	if (dst->shut)
		return;
	dst->shut = true;
	if (!dst->tls && (fd = bufferevent_getfd(dst->bev)) >= 0)
		(void)shutdown(fd, SHUT_WR);
}

/* Empties what it can of a spliced direction's pipe into the destination;
 * waits for it to be writable when it is not. 0 or MOAT_ERR_IO. */
static int
splice_flush(struct relay *r, int dir)
{
	struct relay_pipe *sp = &r->sp[dir];
	struct relay_side *dst = dir == DIR_UP ? &r->u : &r->c;

	while (sp->len > 0) {
		ssize_t n = splice(sp->p[0], NULL, dst->fd, NULL, sp->len,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

		if (n > 0) {
			sp->len -= (size_t)n;
			sp->full = false;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			(void)event_add(sp->wev, NULL);
			return 0;
		}
		return MOAT_ERR_IO;
	}
	return 0;
}

/* Can this direction start splicing now: plain sockets both ends, its
 * filter done, nothing waiting in its buffers (order), and not one-way's
 * dropped direction? */
static bool
splice_can(struct relay *r, int dir)
{
	struct relay_side *src = dir == DIR_UP ? &r->c : &r->u;
	struct relay_side *dst = dir == DIR_UP ? &r->u : &r->c;
	relay_filter_fn f = dir == DIR_UP ? r->o.filter_up : r->o.filter_down;

	return !r->sp[dir].off && !src->tls && !dst->tls && !dst->shut &&
	    !(dir == DIR_UP && r->o.one_way) &&
	    (f == NULL || r->filtered[dir]) &&
	    evbuffer_get_length(src->in) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(dst->bev)) == 0;
}

static void on_splice_write(evutil_socket_t fd, short what, void *arg);

/* Makes the direction's pipe. 0, or -1 (the direction stays buffered). */
static int
splice_begin(struct relay *r, int dir)
{
	struct relay_pipe *sp = &r->sp[dir];
	struct relay_side *dst = dir == DIR_UP ? &r->u : &r->c;
	int sz;

	if (pipe2(sp->p, O_NONBLOCK | O_CLOEXEC) != 0) {
		sp->p[0] = sp->p[1] = -1;
		sp->off = true;
		return -1;
	}
	if ((sp->wev = event_new(r->base, dst->fd, EV_WRITE, on_splice_write,
	    sp)) == NULL) {
		pipe_free(sp);
		sp->off = true;
		return -1;
	}
	/* As much as a buffered direction may hold; the kernel may refuse
	 * (pipe-max-size, or the user's pipe pages), then its default. */
	(void)fcntl(sp->p[1], F_SETPIPE_SZ, (int)r->o.high_water);
	sz = fcntl(sp->p[1], F_GETPIPE_SZ);
	sp->cap = sz > 0 ? (size_t)sz : 65536;
	if (sp->cap > r->o.high_water)
		sp->cap = r->o.high_water;
	sp->on = true;
	return 0;
}

/* One splice from a readable source into its direction's pipe. 0, 1 when
 * splice turned out unsupported for these sockets before any byte moved
 * (the direction is now buffered for good), or an error. */
static int
splice_in(struct relay *r, int dir)
{
	struct relay_pipe *sp = &r->sp[dir];
	struct relay_side *src = dir == DIR_UP ? &r->c : &r->u;
	ssize_t n;

	if (sp->len >= sp->cap)
		return 0;
	n = splice(src->fd, NULL, sp->p[1], NULL, sp->cap - sp->len,
	    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	if (n > 0) {
		sp->len += (size_t)n;
		sp->moved = true;
		r->bytes[dir] += (uint64_t)n;
		r->spliced += (uint64_t)n;
		return 0;
	}
	if (n == 0) {
		src->eof = true;
		side_read(src, false);
		return 0;
	}
	if (errno == EINTR)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		/* With bytes in the pipe this can mean a full pipe (it
		 * counts pages, not bytes): wait for a flush to make room
		 * rather than spin on a readable source. */
		if (sp->len > 0)
			sp->full = true;
		return 0;
	}
	if (errno == EINVAL && !sp->moved) {
		pipe_free(sp);
		sp->on = false;
		sp->off = true;
		return 1;
	}
	return MOAT_ERR_IO;
}

/* Moves what it can in one direction. 0, or an error that ends the relay. */
static int
pump(struct relay *r, int dir)
{
	struct relay_side *src = dir == DIR_UP ? &r->c : &r->u;
	struct relay_side *dst = dir == DIR_UP ? &r->u : &r->c;
	struct evbuffer *in = src->in;
	struct evbuffer *out = bufferevent_get_output(dst->bev);
	relay_filter_fn f = dir == DIR_UP ? r->o.filter_up : r->o.filter_down;
	size_t before, outlen, n;
	int e;

	if (dir == DIR_UP && r->o.one_way) {
		/* Never forwarded: drop it. */
		evbuffer_drain(in, evbuffer_get_length(in));
		return 0;
	}
	if (f != NULL && !r->filtered[dir]) {
		before = evbuffer_get_length(in);
		e = f(in, out, src->eof, r->o.filter_arg);
		r->bytes[dir] += before - evbuffer_get_length(in);
		if (e == MOAT_ERR_AGAIN) {
			if (evbuffer_get_length(in) >= r->o.filter_max)
				return MOAT_ERR_TOOBIG;
			if (src->eof)
				return MOAT_ERR_CLOSED;
			return 0;
		}
		if (e != 0)
			return e;
		r->filtered[dir] = true;
	}
	if (r->sp[dir].on) {
		struct relay_pipe *sp = &r->sp[dir];

		if ((e = splice_flush(r, dir)) != 0)
			return e;
		side_read(src, sp->len < sp->cap && !sp->full);
		if (src->eof && sp->len == 0)
			half_close(dst);
		return 0;
	}
	if (dst->shut) {
		/* The destination's write side is gone (TLS end, or it
		 * was shut after an earlier EOF): nothing more can go. */
		if (evbuffer_get_length(in) > 0)
			return MOAT_ERR_IO;
		return 0;
	}
	outlen = evbuffer_get_length(out);
	if (outlen < r->o.high_water) {
		n = evbuffer_get_length(in);
		if (n > r->o.high_water - outlen)
			n = r->o.high_water - outlen;
		if (n > 0) {
			if (evbuffer_remove_buffer(in, out, n) != (int)n)
				return MOAT_ERR_NOMEM;
			r->bytes[dir] += n;
		}
	}
	side_read(src, evbuffer_get_length(out) < r->o.high_water);
	if (src->eof && evbuffer_get_length(in) == 0 &&
	    evbuffer_get_length(out) == 0)
		half_close(dst);
	return 0;
}

/* Runs both directions and checks for the end. Returns nonzero when the
 * relay was finished (and freed). */
static int
step(struct relay *r)
{
	int e;

	if ((e = pump(r, DIR_DOWN)) != 0 || (e = pump(r, DIR_UP)) != 0) {
		finish(r, e);
		return 1;
	}
	if (r->o.one_way) {
		if (r->c.shut && r->c.eof) {
			finish(r, 0);
			return 1;
		}
		if (r->c.shut && !r->lingering) {
			/* Answer complete: give the client a moment to
			 * read it and close, so that its unread input does
			 * not turn our close into a reset. */
			r->lingering = true;
			arm_ms(r, RELAY_LINGER_MS);
		}
		return 0;
	}
	if (r->c.shut && r->u.shut) {
		finish(r, 0);
		return 1;
	}
	/* A TLS end cannot half-close: once one direction is finished
	 * towards it, end the whole relay after the flush. */
	if ((r->c.shut && r->c.tls) || (r->u.shut && r->u.tls)) {
		finish(r, 0);
		return 1;
	}
	return 0;
}

static void
touch(struct relay *r)
{
	r->last_ns = now_ns();
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;

	(void)bev;
	touch(r);
	(void)step(r);
}

/* Own reads of a plain socket: up to RELAY_READ_MAX per call, into
 * chains reserved for it. */
static void
on_fd_read(evutil_socket_t fd, short what, void *arg)
{
	struct relay_side *s = arg;
	struct relay *r = s->r;
	struct evbuffer_iovec v[2];
	int nv, dir;
	ssize_t n;

	(void)what;
	dir = s == &r->c ? DIR_UP : DIR_DOWN;
	if (r->sp[dir].on || (splice_can(r, dir) && splice_begin(r, dir) == 0)) {
		int e = 0;

		/* Move what is there now, through the pipe, before going back
		 * to the loop: one readable event can carry several pipefuls
		 * (bounded, so one bulk tunnel cannot starve the others). */
		for (int round = 0; round < RELAY_SPLICE_ROUNDS; round++) {
			uint64_t before = r->bytes[dir];

			if ((e = splice_in(r, dir)) != 0 ||
			    r->bytes[dir] == before)
				break;
			if (splice_flush(r, dir) != 0) {
				e = MOAT_ERR_IO;
				break;
			}
			if (r->sp[dir].len > 0)
				break;	/* the destination is full */
		}
		if (e < 0) {
			finish(r, e);
			return;
		}
		if (e == 0) {
			touch(r);
			(void)step(r);
			return;
		}
		/* Unsupported here: read it the buffered way. */
	}
	nv = evbuffer_reserve_space(s->in, RELAY_READ_MAX, v, 2);
	if (nv < 1) {
		finish(r, MOAT_ERR_NOMEM);
		return;
	}
	n = readv(fd, (struct iovec *)v, nv);
	if (n <= 0) {
		int e = errno;

		(void)evbuffer_commit_space(s->in, v, 0);
		if (evbuffer_get_length(s->in) == 0) {
			/* Drop the reserved (empty) chain: an idle tunnel
			 * holds no buffer memory. */
			struct evbuffer *fresh = evbuffer_new();

			if (fresh != NULL) {
				evbuffer_free(s->in);
				s->in = fresh;
			}
		}
		if (n < 0) {
			if (e == EAGAIN || e == EWOULDBLOCK || e == EINTR)
				return;
			finish(r, MOAT_ERR_IO);
			return;
		}
		s->eof = true;
		side_read(s, false);
	} else {
		for (int i = 0; i < nv; i++) {
			size_t k = (size_t)n < v[i].iov_len ? (size_t)n : v[i].iov_len;

			v[i].iov_len = k;
			n -= (ssize_t)k;
		}
		(void)evbuffer_commit_space(s->in, v, nv);
	}
	touch(r);
	(void)step(r);
}

/* A spliced direction's destination is writable again. */
static void
on_splice_write(evutil_socket_t fd, short what, void *arg)
{
	struct relay_pipe *sp = arg;

	(void)fd;
	(void)what;
	touch(sp->r);
	(void)step(sp->r);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;

	(void)bev;
	(void)step(r);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct relay *r = arg;
	struct relay_side *s = bev == r->c.bev ? &r->c : &r->u;

	touch(r);
	if (what & BEV_EVENT_EOF) {
		s->eof = true;
		(void)step(r);
		return;
	}
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		finish(r, MOAT_ERR_IO);
		return;
	}
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	uint64_t idle, ms;

	(void)fd;
	(void)what;
	if (!r->started) {
		r->started = true;
		if (step(r) != 0)
			return;
		if (r->o.idle_timeout_ms > 0 && !r->lingering)
			arm_ms(r, r->o.idle_timeout_ms);
		return;
	}
	if (r->lingering) {
		finish(r, 0);
		return;
	}
	idle = (now_ns() - r->last_ns) / 1000000u;
	if (idle >= r->o.idle_timeout_ms) {
		finish(r, MOAT_ERR_TIMEOUT);
		return;
	}
	ms = r->o.idle_timeout_ms - idle;
	arm_ms(r, ms);
}

static int
side_init(struct relay *r, struct relay_side *s, struct bufferevent *bev)
{
	struct evbuffer *bin = bufferevent_get_input(bev);

	s->r = r;
	s->bev = bev;
	s->fd = bufferevent_getfd(bev);
	s->tls = bufferevent_openssl_get_ssl(bev) != NULL ||
	    bufferevent_get_underlying(bev) != NULL || s->fd < 0;
	bufferevent_setcb(bev, s->tls ? on_read : NULL, on_write, on_event, r);
	bufferevent_set_timeouts(bev, NULL, NULL);
	bufferevent_setwatermark(bev, EV_READ, 0, r->o.high_water);
	bufferevent_setwatermark(bev, EV_WRITE, r->o.high_water / 2, 0);
	(void)bufferevent_set_max_single_write(bev, RELAY_READ_MAX);
	if (s->tls) {
		s->in = bin;
		return 0;
	}
	/* Plain socket: the bufferevent only writes; bytes it already read
	 * (after a CONNECT head, say) move to our own input first. */
	bufferevent_disable(bev, EV_READ);
	if ((s->in = evbuffer_new()) == NULL ||
	    (s->rev = event_new(r->base, s->fd, EV_READ | EV_PERSIST,
	    on_fd_read, s)) == NULL)
		return MOAT_ERR_NOMEM;
	if (evbuffer_get_length(bin) > 0 &&
	    evbuffer_add_buffer(s->in, bin) != 0)
		return MOAT_ERR_NOMEM;
	return 0;
}

int
relay_start(struct event_base *base, struct bufferevent *client,
    struct bufferevent *upstream, const struct relay_opts *opts,
    relay_done_fn done, void *arg, struct relay **out)
{
	struct relay *r = NULL;
	int e = MOAT_ERR_INVAL;

	if (out != NULL)
		*out = NULL;
	if (base == NULL || client == NULL || upstream == NULL || opts == NULL)
		goto fail;
	e = MOAT_ERR_NOMEM;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		goto fail;
	r->base = base;
	r->o = *opts;
	if (r->o.high_water == 0)
		r->o.high_water = RELAY_HIGH_DEFAULT;
	if (r->o.filter_max == 0)
		r->o.filter_max = RELAY_FILTER_MAX_DEFAULT;
	if (r->o.high_water < r->o.filter_max)
		r->o.high_water = r->o.filter_max;
	r->done = done;
	r->arg = arg;
	for (int d = 0; d < 2; d++) {
		r->sp[d].r = r;
		r->sp[d].p[0] = r->sp[d].p[1] = -1;
	}
	r->start_ns = r->last_ns = now_ns();
	if ((r->timer = event_new(base, -1, 0, on_timer, r)) == NULL)
		goto fail;
	r->c.bev = client;
	r->u.bev = upstream;
	client = upstream = NULL;	/* owned by the sides now */
	if ((e = side_init(r, &r->c, r->c.bev)) != 0 ||
	    (e = side_init(r, &r->u, r->u.bev)) != 0)
		goto fail;
	bufferevent_enable(r->c.bev, EV_WRITE);
	bufferevent_enable(r->u.bev, EV_WRITE);
	side_read(&r->c, true);
	side_read(&r->u, true);
	/* The first step (bytes already buffered) runs from the loop, so
	 * that done never runs inside this call. */
	event_active(r->timer, EV_TIMEOUT, 0);
	if (out != NULL)
		*out = r;
	return 0;
fail:
	if (r != NULL) {
		side_free(&r->c);
		side_free(&r->u);
		if (r->timer != NULL)
			event_free(r->timer);
		free(r);
	}
	if (client != NULL)
		bufferevent_free(client);
	if (upstream != NULL)
		bufferevent_free(upstream);
	return e;
}

void
relay_abort(struct relay *r)
{
	if (r != NULL)
		finish(r, MOAT_ERR_CLOSED);
}
