/*
 * gw.c - the SSH gateway's parent side in moatd (see gw.h): the listener,
 * spawning one session process per connection, the control channel, the
 * live session table and its limits.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "app.h"
#include "audit.h"
#include "json.h"
#include "log.h"
#include "loop.h"
#include "proxyproto.h"
#include "store/store.h"

#include "gateway/gw_int.h"
#include "gateway/gwctl.h"

#define GW_TICK_MS 1000
#define GW_CHECK_EVERY_S 2.0
#define GW_PROXY_TIMEOUT_S 5
#define GW_RETRY_MS 300
#define GW_PING_EVERY_S 30.0
#define GW_RECQ_MAX (4u * 1024 * 1024)
#define GW_MSGS_PER_WAKE 64

extern char **environ;

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- CIDRs (PROXY protocol sources) --- */

static int
cidr_parse(const char *s, struct gw_cidr *out)
{
	char tmp[80], *slash;
	long bits;
	char *end;

	if (snprintf(tmp, sizeof(tmp), "%s", s) >= (int)sizeof(tmp))
		return MOAT_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	slash = strchr(tmp, '/');
	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, tmp, out->addr) == 1) {
		out->family = AF_INET;
		bits = 32;
	} else if (inet_pton(AF_INET6, tmp, out->addr) == 1) {
		out->family = AF_INET6;
		bits = 128;
	} else {
		return MOAT_ERR_INVAL;
	}
	if (slash != NULL) {
		long max = bits;

		errno = 0;
		bits = strtol(slash + 1, &end, 10);
		if (errno != 0 || *end != '\0' || end == slash + 1 || bits < 0 ||
		    bits > max)
			return MOAT_ERR_INVAL;
	}
	out->bits = (unsigned)bits;
	return 0;
}

static bool
cidr_match(const struct gw *g, const struct sockaddr_storage *ss)
{
	const uint8_t *a;
	int fam;

	if (ss->ss_family == AF_INET) {
		a = (const uint8_t *)&((const struct sockaddr_in *)ss)->sin_addr;
		fam = AF_INET;
	} else if (ss->ss_family == AF_INET6) {
		a = (const uint8_t *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
		fam = AF_INET6;
	} else {
		return false;
	}
	for (size_t i = 0; i < g->ncidrs; i++) {
		const struct gw_cidr *c = &g->cidrs[i];
		unsigned full = c->bits / 8, rest = c->bits % 8;

		if (c->family != fam || memcmp(a, c->addr, full) != 0)
			continue;
		if (rest != 0) {
			uint8_t mask = (uint8_t)(0xff << (8 - rest));

			if ((a[full] & mask) != (c->addr[full] & mask))
				continue;
		}
		return true;
	}
	return false;
}

static void
addr_text(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr,
		    host, sizeof(host));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr,
		    host, sizeof(host));
	snprintf(out, outlen, "%s", host);
}

/* --- session references --- */

void
gw__sess_ref(struct gw_sess *s)
{
	pthread_mutex_lock(&s->g->mu);
	s->refs++;
	pthread_mutex_unlock(&s->g->mu);
}

static void
sess_free(struct gw_sess *s)
{
	struct gw_recop *op, *next;

	if (s->ctl_ev != NULL)
		event_free(s->ctl_ev);
	if (s->pid_ev != NULL)
		event_free(s->pid_ev);
	if (s->grace_ev != NULL)
		event_free(s->grace_ev);
	if (s->retry_ev != NULL)
		event_free(s->retry_ev);
	if (s->ctl >= 0)
		close(s->ctl);
	if (s->pidfd >= 0)
		close(s->pidfd);
	for (op = s->recq; op != NULL; op = next) {
		next = op->next;
		free(op->text);
		free(op);
	}
	json_decref(s->settings);
	pthread_mutex_destroy(&s->rec_mu);
	free(s);
}

void
gw__sess_unref(struct gw_sess *s)
{
	struct gw *g = s->g;
	bool last;

	pthread_mutex_lock(&g->mu);
	last = --s->refs == 0;
	pthread_mutex_unlock(&g->mu);
	if (last)
		sess_free(s);
}

int
gw__send(struct gw_sess *s, const json_t *obj, const int *fds, size_t nfds)
{
	int r;

	if (s->dead || s->ctl < 0)
		return MOAT_ERR_CLOSED;
	r = gwctl_send(s->ctl, obj, fds, nfds);
	if (r != 0 && r != MOAT_ERR_CLOSED)
		log_warn(GW_COMPONENT, "cannot reach a session process",
		    LF_STR("session", s->id), LF_STR("error", moat_strerror(r)));
	return r;
}

void
gw__audit(struct gw_sess *s, const char *type, const char *outcome,
    json_t *target, json_t *details)
{
	json_t *ev = audit_event_new(type, outcome), *actor;

	if (ev == NULL) {
		json_decref(target);
		json_decref(details);
		return;
	}
	actor = json_pack("{s:s,s:s}", "addr", s->client, "session", s->id);
	if (actor != NULL && s->username[0] != '\0') {
		json_object_set_new(actor, "user", json_string(s->username));
		json_object_set_new(actor, "user_id", json_string(s->user_id));
		if (s->roles[0] != '\0')
			json_object_set_new(actor, "roles",
			    json_string(s->roles));
	}
	json_object_set_new(ev, "actor", actor);
	json_object_set_new(ev, "component", json_string("ssh-gateway"));
	if (target == NULL && s->ws_name[0] != '\0')
		target = json_pack("{s:s,s:s,s:s,s:s}", "type", "workspace",
		    "id", s->ws_id, "name", s->ws_name, "owner", s->owner);
	if (target != NULL)
		json_object_set_new(ev, "target", target);
	if (s->ws_id[0] != '\0')
		json_object_set_new(ev, "workspace", json_string(s->ws_id));
	if (details != NULL)
		json_object_set_new(ev, "details", details);
	if (audit_emit(s->g->app->audit, ev) != 0)
		log_warn(GW_COMPONENT, "audit writer refused an event",
		    LF_STR("type", type));
}

/* --- killing and reaping --- */

static void
sess_kill(struct gw_sess *s, int sig)
{
	if (s->dead || s->pid <= 0)
		return;
	if (s->pidfd >= 0)
		(void)syscall(SYS_pidfd_send_signal, s->pidfd, sig, NULL, 0);
	else
		(void)kill(s->pid, sig);
}

static void handle_child_msg(struct gw_sess *s, const uint8_t *pkt, size_t len);

/* Reads what the child sent (up to max messages). Returns false when the
 * channel is closed or the child broke the protocol. */
static bool
read_ctl(struct gw_sess *s, int max)
{
	uint8_t *buf = malloc(GWCTL_MAX_MSG);
	int fds[GWCTL_MAX_FDS];
	size_t len, nfds;
	bool ok = true;

	if (buf == NULL)
		return true;
	for (int i = 0; i < max && !s->dead; i++) {
		int r = gwctl_recv(s->ctl, buf, GWCTL_MAX_MSG, &len, fds, &nfds);

		for (size_t k = 0; k < nfds; k++)
			close(fds[k]);	/* children never send descriptors */
		if (r == MOAT_ERR_AGAIN)
			break;
		if (r != 0) {
			if (r != MOAT_ERR_CLOSED)
				log_warn(GW_COMPONENT, "bad control message; "
				    "ending the session", LF_STR("session", s->id),
				    LF_STR("error", moat_strerror(r)));
			ok = false;
			break;
		}
		handle_child_msg(s, buf, len);
		if (s->kill_at < 0) {	/* protocol violation */
			ok = false;
			break;
		}
	}
	free(buf);
	return ok;
}

static void
sess_remove(struct gw_sess *s)
{
	struct gw *g = s->g;
	struct gw_sess **pp;

	pthread_mutex_lock(&g->mu);
	for (pp = &g->sessions; *pp != NULL; pp = &(*pp)->next)
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	if (!s->authed && g->n_unauth > 0)
		g->n_unauth--;
	if (g->n_total > 0)
		g->n_total--;
	s->dead = true;
	pthread_mutex_unlock(&g->mu);
}

static void
on_child_exit(evutil_socket_t fd, short what, void *arg)
{
	struct gw_sess *s = arg;
	siginfo_t si;
	json_t *d;

	(void)fd;
	(void)what;
	/* Whatever the child said last still counts. */
	if (s->ctl >= 0)
		(void)read_ctl(s, 100000);
	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)s->pid, &si, WEXITED | WNOHANG) == 0 &&
	    si.si_pid == 0)
		return;		/* spurious wake-up: not exited yet */
	event_del(s->pid_ev);
	if (s->ctl_ev != NULL)
		event_del(s->ctl_ev);
	if (s->grace_ev != NULL)
		event_del(s->grace_ev);
	if (s->retry_ev != NULL)
		event_del(s->retry_ev);
	gw__rec_close_all(s);
	if (s->authed) {
		d = json_pack("{s:f,s:I,s:I}", "duration", now_mono() - s->started,
		    "bytes_in", (json_int_t)s->bytes_in, "bytes_out",
		    (json_int_t)s->bytes_out);
		if (d != NULL) {
			if (si.si_code == CLD_EXITED)
				json_object_set_new(d, "exit_code",
				    json_integer(si.si_status));
			else
				json_object_set_new(d, "signal",
				    json_integer(si.si_status));
		}
		gw__audit(s, "ssh.disconnect", si.si_code == CLD_EXITED &&
		    si.si_status == 0 ? "success" : "failure", NULL, d);
	}
	log_debug(GW_COMPONENT, "session process ended", LF_STR("session", s->id),
	    LF_INT("pid", s->pid));
	sess_remove(s);
	if (s->ctl >= 0) {
		pthread_mutex_lock(&s->g->mu);
		close(s->ctl);
		s->ctl = -1;
		pthread_mutex_unlock(&s->g->mu);
	}
	gw__sess_unref(s);	/* the table's reference */
}

static void
on_ctl(evutil_socket_t fd, short what, void *arg)
{
	struct gw_sess *s = arg;

	(void)fd;
	(void)what;
	if (!read_ctl(s, GW_MSGS_PER_WAKE)) {
		event_del(s->ctl_ev);
		sess_kill(s, SIGKILL);
	}
}

static void
on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct gw_sess *s = arg;

	(void)fd;
	(void)what;
	if (!s->authed && !s->dead) {
		log_info(GW_COMPONENT, "login grace time over",
		    LF_STR("session", s->id), LF_STR("client", s->client));
		gw__audit(s, "ssh.auth", "denied", NULL, json_pack("{s:s}",
		    "reason", "login grace time over"));
		sess_kill(s, SIGKILL);
	}
}

/* --- authorization and the upstream --- */

static void up_submit(struct gw_sess *s, bool ask_start);

static void
auth_done(void *arg)
{
	struct gw_authq *q = arg;
	struct gw_sess *s = q->s;
	struct gw *g = s->g;
	json_t *m;

	s->auth_busy = false;
	if (s->dead)
		goto out;
	m = json_pack("{s:s,s:b,s:s}", "t", "auth_result", "ok", q->ok,
	    "message", q->message);
	if (m != NULL && q->ok && q->is_signed) {
		json_t *set = json_deep_copy(q->settings);

		if (set != NULL)
			json_object_set_new(set, "other_owner",
			    json_boolean(q->other_owner));
		json_object_set_new(m, "settings", set != NULL ? set :
		    json_object());
	}
	if (q->ok && q->is_signed && !s->authed) {
		pthread_mutex_lock(&g->mu);
		s->authed = true;
		if (g->n_unauth > 0)
			g->n_unauth--;
		snprintf(s->user_id, sizeof(s->user_id), "%s", q->user_id);
		snprintf(s->username, sizeof(s->username), "%s", q->username);
		snprintf(s->fingerprint, sizeof(s->fingerprint), "%s",
		    q->fingerprint);
		snprintf(s->ws_id, sizeof(s->ws_id), "%s", q->ws_id);
		snprintf(s->ws_name, sizeof(s->ws_name), "%s", q->ws_name);
		snprintf(s->owner, sizeof(s->owner), "%s", q->owner);
		snprintf(s->owner_id, sizeof(s->owner_id), "%s", q->owner_id);
		snprintf(s->org, sizeof(s->org), "%s", q->org);
		snprintf(s->roles, sizeof(s->roles), "%s", q->roles);
		s->other_owner = q->other_owner;
		s->settings = json_incref(q->settings);
		pthread_mutex_unlock(&g->mu);
		if (s->grace_ev != NULL)
			event_del(s->grace_ev);
	}
	if (m != NULL && gw__send(s, m, NULL, 0) != 0)
		sess_kill(s, SIGKILL);
	json_decref(m);
	if (q->ok && q->is_signed) {
		json_t *d = json_pack("{s:s,s:s}", "fingerprint", q->fingerprint,
		    "login", q->login);

		if (d != NULL && q->other_owner)
			json_object_set_new(d, "other_owner",
			    json_string(q->owner));
		gw__audit(s, "ssh.auth", "success", NULL, d);
		s->up_deadline = now_mono() + (double)g->opt.start_timeout_ms /
		    1000.0;
		up_submit(s, true);
	} else if (!q->ok) {
		json_t *d = json_pack("{s:s,s:s,s:b}", "login", q->login,
		    "reason", q->reason, "signed", q->is_signed);

		if (d != NULL && q->fingerprint[0] != '\0')
			json_object_set_new(d, "fingerprint",
			    json_string(q->fingerprint));
		if (d != NULL && q->username[0] != '\0')
			json_object_set_new(d, "user", json_string(q->username));
		gw__audit(s, "ssh.auth", "denied", json_pack("{s:s,s:s}", "type",
		    "ssh_login", "login", q->login), d);
	}
out:
	json_decref(q->settings);
	free(q->key);
	free(q);
	gw__sess_unref(s);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct gw_sess *s = arg;

	(void)fd;
	(void)what;
	if (!s->dead && !s->up_sent)
		up_submit(s, false);
}

static void
up_done(void *arg)
{
	struct gw_upq *q = arg;
	struct gw_sess *s = q->s;
	json_t *m = NULL;

	s->up_busy = false;
	if (s->dead)
		goto out;
	if (q->started_it)
		gw__audit(s, "workspace.start", "success", NULL, json_pack(
		    "{s:s}", "by", "ssh login"));
	if (q->status == 0) {
		int fds[2] = { q->dial_fd, q->key_fd };

		m = json_pack("{s:s,s:s,s:s,s:s,s:O}", "t", "upstream",
		    "host_pub", q->host_pub, "user", q->user, "workspace",
		    s->ws_name, "settings", s->settings != NULL ? s->settings :
		    json_object());
		if (m == NULL || gw__send(s, m, fds, 2) != 0)
			sess_kill(s, SIGKILL);
		s->up_sent = true;
	} else if (q->status < 0 || now_mono() > s->up_deadline) {
		m = json_pack("{s:s,s:s}", "t", "fail", "message",
		    q->status < 0 ? q->message : "the workspace did not start "
		    "in time");
		if (m != NULL)
			(void)gw__send(s, m, NULL, 0);
		s->up_sent = true;
		gw__audit(s, "ssh.upstream.failed", "failure", NULL, json_pack(
		    "{s:s}", "reason", q->status < 0 ? q->reason : "timeout"));
	} else {
		if (strcmp(q->state, s->last_state) != 0) {
			char text[600];

			snprintf(text, sizeof(text), "workspace %s is %s%s%s",
			    s->ws_name, q->state, q->reason[0] != '\0' ? ": " :
			    "...", q->reason);
			m = json_pack("{s:s,s:s}", "t", "progress", "text", text);
			if (m != NULL)
				(void)gw__send(s, m, NULL, 0);
			snprintf(s->last_state, sizeof(s->last_state), "%s",
			    q->state);
		}
		if (s->retry_ev != NULL) {
			struct timeval tv = { 0, GW_RETRY_MS * 1000 };

			event_add(s->retry_ev, &tv);
		}
	}
out:
	if (q->dial_fd >= 0)
		close(q->dial_fd);
	if (q->key_fd >= 0)
		close(q->key_fd);
	json_decref(m);
	free(q);
	gw__sess_unref(s);
}

static void
up_submit(struct gw_sess *s, bool ask_start)
{
	struct gw_upq *q;

	if (s->up_busy || s->up_sent || s->dead)
		return;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return;
	q->s = s;
	q->dial_fd = q->key_fd = -1;
	q->ask_start = ask_start;
	snprintf(q->ws_id, sizeof(q->ws_id), "%s", s->ws_id);
	snprintf(q->owner_id, sizeof(q->owner_id), "%s", s->owner_id);
	gw__sess_ref(s);
	s->up_busy = true;
	if (workpool_submit(s->g->app->workers, s->g->base, gw__up_work,
	    up_done, q) != 0) {
		s->up_busy = false;
		gw__sess_unref(s);
		free(q);
		if (s->retry_ev != NULL) {
			struct timeval tv = { 0, GW_RETRY_MS * 1000 };

			event_add(s->retry_ev, &tv);
		}
	}
}

static void
ping_done(void *arg)
{
	free(arg);
}

static void
handle_child_msg(struct gw_sess *s, const uint8_t *pkt, size_t len)
{
	struct gwctl_msg m;
	char err[128];

	if (gwctl_parse_child(pkt, len, &m, err, sizeof(err)) != 0) {
		log_warn(GW_COMPONENT, "a session process sent a bad message",
		    LF_STR("session", s->id), LF_STR("error", err));
		s->kill_at = -1;
		return;
	}
	switch (m.type) {
	case GWCTL_AUTH: {
		struct gw_authq *q;

		if (s->authed || s->auth_busy) {
			s->kill_at = -1;
			break;
		}
		if ((q = calloc(1, sizeof(*q))) == NULL)
			break;
		q->s = s;
		snprintf(q->login, sizeof(q->login), "%s", m.login);
		q->key = strdup(m.key);
		q->is_signed = m.is_signed;
		gw__sess_ref(s);
		s->auth_busy = true;
		if (q->key == NULL || workpool_submit(s->g->app->workers,
		    s->g->base, gw__auth_work, auth_done, q) != 0) {
			/* Busy: refuse this key; the client may retry. */
			q->ok = false;
			snprintf(q->reason, sizeof(q->reason), "gateway busy");
			auth_done(q);
		}
		break;
	}
	case GWCTL_REC_BEGIN:
	case GWCTL_REC:
	case GWCTL_REC_END:
		if (!s->authed) {
			s->kill_at = -1;
			break;
		}
		if (m.type == GWCTL_REC_BEGIN)
			s->recs_open++;
		else if (m.type == GWCTL_REC_END && s->recs_open > 0)
			s->recs_open--;
		gw__rec_queue(s, m.type == GWCTL_REC_BEGIN ? 0 : m.type ==
		    GWCTL_REC ? 1 : 2, m.ch, m.text, m.text_len, m.duration);
		break;
	case GWCTL_AUDIT: {
		json_t *details = json_deep_copy(m.details);

		if (!s->authed) {
			json_decref(details);
			s->kill_at = -1;
			break;
		}
		/* In order with the recordings, so a session.end carries
		 * the id of the recording its channel made. */
		if (details != NULL) {
			json_t *wrap = json_pack("{s:s,s:s,s:o}", "type",
			    m.audit_type, "outcome", m.outcome, "details",
			    details);
			char *txt = wrap != NULL ? json_dumps(wrap,
			    JSON_COMPACT) : NULL;

			if (txt != NULL)
				gw__rec_queue(s, 3, (int)json_get_int(details,
				    "channel", -1), txt, strlen(txt), 0);
			free(txt);
			json_decref(wrap);
		}
		break;
	}
	case GWCTL_ACTIVITY: {
		double now = now_mono();
		bool moved = m.bytes_in != s->bytes_in ||
		    m.bytes_out != s->bytes_out;

		if (!s->authed)
			break;
		pthread_mutex_lock(&s->g->mu);
		s->bytes_in = m.bytes_in;
		s->bytes_out = m.bytes_out;
		s->forwards = m.forwards;
		pthread_mutex_unlock(&s->g->mu);
		if ((moved || m.forwards > 0) && now - s->last_ping >=
		    GW_PING_EVERY_S && s->g->app->orch != NULL) {
			struct gw_pingq *pq = calloc(1, sizeof(*pq));

			if (pq == NULL)
				break;
			pq->g = s->g;
			snprintf(pq->ws_id, sizeof(pq->ws_id), "%s", s->ws_id);
			if (workpool_submit(s->g->app->workers, s->g->base,
			    gw__ping_work, ping_done, pq) != 0)
				free(pq);
			else
				s->last_ping = now;
		}
		break;
	}
	default:
		s->kill_at = -1;
		break;
	}
	gwctl_msg_clear(&m);
}

/* --- spawning --- */

/* The environment a child gets: sanitizer settings and the time zone. */
static char **
child_env(void)
{
	static const char *const keep[] = { "ASAN_OPTIONS=", "LSAN_OPTIONS=",
	    "UBSAN_OPTIONS=", "TZ=", NULL };
	size_t n = 0, k = 0;
	char **env;

	for (char **e = environ; *e != NULL; e++)
		n++;
	if ((env = calloc(n + 1, sizeof(*env))) == NULL)
		return NULL;
	for (char **e = environ; *e != NULL; e++)
		for (size_t i = 0; keep[i] != NULL; i++)
			if (strncmp(*e, keep[i], strlen(keep[i])) == 0) {
				env[k++] = *e;
				break;
			}
	return env;
}

/* Moves fd to 5 or above (close-on-exec), so dup2 onto 3 and 4 in the
 * child cannot clobber it. */
static int
fd_high(int fd)
{
	int n;

	if (fd >= 5)
		return fd;
	n = fcntl(fd, F_DUPFD_CLOEXEC, 5);
	close(fd);
	return n;
}

static void
spawn_session(struct gw *g, int cfd, const char *client)
{
	struct gw_sess *s = NULL;
	posix_spawn_file_actions_t fa;
	bool fa_init = false;
	char *argv[3];
	char **env = NULL;
	int sv[2] = { -1, -1 }, r;
	json_t *init = NULL, *keys;
	struct timeval tv;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto fail;
	s->g = g;
	s->ctl = s->pidfd = -1;
	s->refs = 1;
	pthread_mutex_init(&s->rec_mu, NULL);
	for (int i = 0; i < GW_MAX_RECS; i++)
		s->recs[i].ch = -1;
	snprintf(s->client, sizeof(s->client), "%s", client);
	s->started = now_mono();
	s->started_unix = (int64_t)time(NULL);
	if (store_new_id(s->id, sizeof(s->id)) != 0)
		goto fail;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
		goto fail;
	if ((cfd = fd_high(cfd)) < 0 || (sv[1] = fd_high(sv[1])) < 0)
		goto fail;
	if (posix_spawn_file_actions_init(&fa) != 0)
		goto fail;
	fa_init = true;
	if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
	    != 0 || posix_spawn_file_actions_adddup2(&fa, cfd, 3) != 0 ||
	    posix_spawn_file_actions_adddup2(&fa, sv[1], 4) != 0 ||
	    posix_spawn_file_actions_addclosefrom_np(&fa, 5) != 0)
		goto fail;
	argv[0] = g->self_exe;
	argv[1] = "ssh-session";
	argv[2] = NULL;
	if ((env = child_env()) == NULL)
		goto fail;
	if ((r = posix_spawn(&s->pid, g->self_exe, &fa, NULL, argv, env)) != 0) {
		log_error(GW_COMPONENT, "cannot start a session process",
		    LF_STR("error", strerror(r)));
		s->pid = 0;
		goto fail;
	}
	close(sv[1]);
	sv[1] = -1;
	close(cfd);
	cfd = -1;
	s->ctl = sv[0];
	sv[0] = -1;
	(void)evutil_make_socket_nonblocking(s->ctl);
	s->pidfd = (int)syscall(SYS_pidfd_open, s->pid, 0);
	if (s->pidfd < 0) {
		log_error(GW_COMPONENT, "pidfd_open failed",
		    LF_STR("error", strerror(errno)));
		goto fail;
	}
	s->ctl_ev = event_new(g->base, s->ctl, EV_READ | EV_PERSIST, on_ctl, s);
	s->pid_ev = event_new(g->base, s->pidfd, EV_READ | EV_PERSIST,
	    on_child_exit, s);
	s->grace_ev = event_new(g->base, -1, 0, on_grace, s);
	s->retry_ev = event_new(g->base, -1, 0, on_retry, s);
	if (s->ctl_ev == NULL || s->pid_ev == NULL || s->grace_ev == NULL ||
	    s->retry_ev == NULL)
		goto fail;
	keys = json_array();
	for (size_t i = 0; g->host_keys[i] != NULL; i++)
		json_array_append_new(keys, json_string(g->host_keys[i]));
	init = json_pack("{s:s,s:o,s:s,s:i,s:i,s:s}", "t", "init", "hostkeys",
	    keys, "client", client, "keepalive_s", (int)g->opt.keepalive_s,
	    "idle_s", (int)g->opt.idle_s, "log_level", g->log_level);
	if (init == NULL || gwctl_send(s->ctl, init, NULL, 0) != 0)
		goto fail;
	tv.tv_sec = g->opt.login_grace_ms / 1000;
	tv.tv_usec = (g->opt.login_grace_ms % 1000) * 1000;
	if (event_add(s->ctl_ev, NULL) != 0 || event_add(s->pid_ev, NULL) != 0 ||
	    event_add(s->grace_ev, &tv) != 0)
		goto fail;
	pthread_mutex_lock(&g->mu);
	s->next = g->sessions;
	g->sessions = s;
	g->n_unauth++;
	g->n_total++;
	pthread_mutex_unlock(&g->mu);
	log_debug(GW_COMPONENT, "session process started", LF_STR("session",
	    s->id), LF_INT("pid", s->pid), LF_STR("client", client));
	json_decref(init);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	return;
fail:
	json_decref(init);
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	free(env);
	if (cfd >= 0)
		close(cfd);
	for (int i = 0; i < 2; i++)
		if (sv[i] >= 0)
			close(sv[i]);
	if (s != NULL) {
		if (s->pid > 0) {
			if (s->pidfd >= 0)
				(void)syscall(SYS_pidfd_send_signal, s->pidfd,
				    SIGKILL, NULL, 0);
			else
				(void)kill(s->pid, SIGKILL);
			(void)waitpid(s->pid, NULL, 0);
		}
		sess_free(s);
	}
}

/* --- accepting, with an optional PROXY header --- */

struct gw_pending {
	struct gw *g;
	int fd;
	struct event *ev;
	char client[96];
};

static void
pending_free(struct gw_pending *p)
{
	if (p->ev != NULL)
		event_free(p->ev);
	if (p->fd >= 0)
		close(p->fd);
	free(p);
}

static bool
admit(struct gw *g, const char *client)
{
	bool ok;

	pthread_mutex_lock(&g->mu);
	ok = !g->stopping && g->n_unauth < g->opt.max_startups &&
	    g->n_total < g->opt.max_sessions;
	pthread_mutex_unlock(&g->mu);
	if (!ok)
		log_warn(GW_COMPONENT, "connection refused: too many "
		    "unauthenticated or open sessions", LF_STR("client", client));
	return ok;
}

static void
on_proxy_header(evutil_socket_t fd, short what, void *arg)
{
	struct gw_pending *p = arg;
	uint8_t buf[PROXYPROTO_MAX_HEADER];
	struct proxyproto_result res;
	ssize_t n;
	int r;

	if ((what & EV_TIMEOUT) != 0) {
		log_info(GW_COMPONENT, "no PROXY header in time",
		    LF_STR("peer", p->client));
		pending_free(p);
		return;
	}
	n = recv(fd, buf, sizeof(buf), MSG_PEEK);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		pending_free(p);
		return;
	}
	r = proxyproto_parse(buf, (size_t)n, &res);
	if (r == MOAT_ERR_AGAIN && (size_t)n < sizeof(buf))
		return;
	if (r != 0) {
		log_warn(GW_COMPONENT, "bad PROXY header", LF_STR("peer",
		    p->client));
		pending_free(p);
		return;
	}
	if (recv(fd, buf, res.header_len, 0) != (ssize_t)res.header_len) {
		pending_free(p);
		return;
	}
	if (!res.local)
		addr_text(&res.src, p->client, sizeof(p->client));
	if (admit(p->g, p->client)) {
		(void)evutil_make_socket_nonblocking(p->fd);
		spawn_session(p->g, p->fd, p->client);
		p->fd = -1;
	}
	pending_free(p);
}

static void
on_accept(evutil_socket_t lfd, short what, void *arg)
{
	struct gw *g = arg;

	(void)what;
	for (int i = 0; i < 64; i++) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char client[96];
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl,
		    SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0)
			return;
		addr_text(&ss, client, sizeof(client));
		if (g->ncidrs > 0 && cidr_match(g, &ss)) {
			struct gw_pending *p = calloc(1, sizeof(*p));
			struct timeval tv = { GW_PROXY_TIMEOUT_S, 0 };

			if (p == NULL) {
				close(fd);
				continue;
			}
			p->g = g;
			p->fd = fd;
			snprintf(p->client, sizeof(p->client), "%s", client);
			p->ev = event_new(g->base, fd, EV_READ | EV_PERSIST |
			    EV_TIMEOUT, on_proxy_header, p);
			if (p->ev == NULL || event_add(p->ev, &tv) != 0)
				pending_free(p);
			continue;
		}
		if (!admit(g, client)) {
			close(fd);
			continue;
		}
		spawn_session(g, fd, client);
	}
}

/* --- the periodic tick: deadlines and revocation --- */

static void
check_done(void *arg)
{
	struct gw_checkq *q = arg;
	struct gw *g = q->g;
	json_t *v;
	size_t i;

	g->check_busy = false;
	json_array_foreach(q->revoked, i, v)
		if (gw_session_end(g, json_string_value(v), "your access was "
		    "revoked (user disabled or key removed)") == 0)
			log_info(GW_COMPONENT, "session ended: access revoked",
			    LF_STR("session", json_string_value(v)));
	json_decref(q->snapshot);
	json_decref(q->revoked);
	free(q);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct gw *g = arg;
	static const double every = GW_CHECK_EVERY_S;
	double now = now_mono();
	struct gw_checkq *q;
	struct gw_sess *tick[256];
	size_t ntick = 0;
	json_t *snap;

	(void)fd;
	(void)what;
	(void)every;
	pthread_mutex_lock(&g->mu);
	snap = json_array();
	for (struct gw_sess *s = g->sessions; s != NULL; s = s->next) {
		if (s->kill_at > 0 && now >= s->kill_at && !s->dead)
			sess_kill(s, SIGKILL);
		if (s->recs_open > 0 && !s->dead && ntick < 256) {
			s->refs++;
			tick[ntick++] = s;
		}
		if (s->authed && snap != NULL)
			json_array_append_new(snap, json_pack("{s:s,s:s,s:s}",
			    "id", s->id, "user_id", s->user_id, "fingerprint",
			    s->fingerprint));
	}
	pthread_mutex_unlock(&g->mu);
	for (size_t i = 0; i < ntick; i++) {
		if (!tick[i]->dead)
			gw__rec_queue(tick[i], 4, -1, NULL, 0, 0);
		gw__sess_unref(tick[i]);
	}
	if (snap == NULL || json_array_size(snap) == 0 || g->check_busy) {
		json_decref(snap);
		return;
	}
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		json_decref(snap);
		return;
	}
	q->g = g;
	q->snapshot = snap;
	g->check_busy = true;
	if (workpool_submit(g->app->workers, g->base, gw__check_work,
	    check_done, q) != 0) {
		g->check_busy = false;
		json_decref(snap);
		free(q);
	}
}

/* --- public --- */

static int
listen_on(const char *addr, int *out)
{
	char host[256], *colon;
	const char *port;
	struct addrinfo hints, *ai = NULL;
	int fd = -1, on = 1, r;

	if (snprintf(host, sizeof(host), "%s", addr) >= (int)sizeof(host) ||
	    (colon = strrchr(host, ':')) == NULL)
		return MOAT_ERR_INVAL;
	*colon = '\0';
	port = colon + 1;
	if (host[0] == '[') {
		size_t n = strlen(host);

		if (n < 2 || host[n - 1] != ']')
			return MOAT_ERR_INVAL;
		memmove(host, host + 1, n - 2);
		host[n - 2] = '\0';
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	if (getaddrinfo(host[0] != '\0' ? host : NULL, port, &hints, &ai) != 0 ||
	    ai == NULL)
		return MOAT_ERR_INVAL;
	r = MOAT_ERR_IO;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		goto out;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 512) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	*out = fd;
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return r;
}

static char *
xstrdup(const char *s)
{
	return strdup(s != NULL ? s : "");
}

int
gw_new(struct gw **out, struct app *app, const struct gw_options *opt)
{
	struct gw *g;
	size_t n = 0;
	ssize_t len;
	int r = MOAT_ERR_NOMEM;

	*out = NULL;
	if ((g = calloc(1, sizeof(*g))) == NULL)
		return MOAT_ERR_NOMEM;
	g->app = app;
	g->opt = *opt;
	g->lfd = -1;
	pthread_mutex_init(&g->mu, NULL);
	if ((g->listen = xstrdup(opt->listen)) == NULL ||
	    (g->log_level = xstrdup(opt->log_level != NULL ? opt->log_level :
	    "info")) == NULL)
		goto fail;
	g->opt.listen = g->listen;
	g->opt.log_level = g->log_level;
	if (g->opt.max_startups == 0)
		g->opt.max_startups = 64;
	if (g->opt.max_sessions == 0)
		g->opt.max_sessions = 1000;
	if (g->opt.login_grace_ms == 0)
		g->opt.login_grace_ms = 60000;
	if (g->opt.start_timeout_ms == 0)
		g->opt.start_timeout_ms = 120000;
	while (opt->host_keys != NULL && opt->host_keys[n] != NULL)
		n++;
	if (n == 0) {
		r = MOAT_ERR_INVAL;
		goto fail;
	}
	if ((g->host_keys = calloc(n + 1, sizeof(char *))) == NULL)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if ((g->host_keys[i] = xstrdup(opt->host_keys[i])) == NULL)
			goto fail;
	g->opt.host_keys = (const char *const *)g->host_keys;
	n = 0;
	while (opt->proxy_from != NULL && opt->proxy_from[n] != NULL)
		n++;
	if (n > 0) {
		if ((g->cidrs = calloc(n, sizeof(*g->cidrs))) == NULL)
			goto fail;
		for (size_t i = 0; i < n; i++)
			if (cidr_parse(opt->proxy_from[i], &g->cidrs[i]) != 0) {
				log_error(GW_COMPONENT, "ssh-proxy-protocol-from: "
				    "not a CIDR", LF_STR("value",
				    opt->proxy_from[i]));
				r = MOAT_ERR_INVAL;
				goto fail;
			}
		g->ncidrs = n;
	}
	g->opt.proxy_from = NULL;
	len = readlink("/proc/self/exe", g->self_exe, sizeof(g->self_exe) - 1);
	if (len <= 0) {
		r = MOAT_ERR_IO;
		goto fail;
	}
	g->self_exe[len] = '\0';
	*out = g;
	return 0;
fail:
	gw_free(g);
	return r;
}

int
gw_start(struct gw *g)
{
	struct timeval tv = { GW_TICK_MS / 1000, (GW_TICK_MS % 1000) * 1000 };
	int r;

	g->base = loop_group_base(g->app->loops, 0);
	if ((r = listen_on(g->opt.listen, &g->lfd)) != 0) {
		log_error(GW_COMPONENT, "cannot listen", LF_STR("addr",
		    g->opt.listen), LF_STR("error", moat_strerror(r)));
		return r;
	}
	g->lev = event_new(g->base, g->lfd, EV_READ | EV_PERSIST, on_accept, g);
	g->tick_ev = event_new(g->base, -1, EV_PERSIST, on_tick, g);
	if (g->lev == NULL || g->tick_ev == NULL || event_add(g->lev, NULL) != 0 ||
	    event_add(g->tick_ev, &tv) != 0)
		return MOAT_ERR_NOMEM;
	log_info(GW_COMPONENT, "listening", LF_STR("addr", g->opt.listen),
	    LF_STR("proto", "ssh"), LF_BOOL("proxy_protocol", g->ncidrs > 0),
	    LF_INT("host_keys", (long long)(g->host_keys != NULL ? 2 : 0)));
	return 0;
}

void
gw_shutdown(struct gw *g)
{
	if (g == NULL)
		return;
	pthread_mutex_lock(&g->mu);
	g->stopping = true;
	for (struct gw_sess *s = g->sessions; s != NULL; s = s->next)
		if (!s->dead && s->pid > 0)
			(void)kill(s->pid, SIGTERM);
	pthread_mutex_unlock(&g->mu);
	if (g->lev != NULL)
		event_del(g->lev);
	if (g->tick_ev != NULL)
		event_del(g->tick_ev);
}

void
gw_free(struct gw *g)
{
	if (g == NULL)
		return;
	/* Children still alive are killed and reaped; their table entries
	 * go with the gateway. */
	while (g->sessions != NULL) {
		struct gw_sess *s = g->sessions;

		g->sessions = s->next;
		if (s->pid > 0 && !s->dead) {
			sess_kill(s, SIGKILL);
			(void)waitpid(s->pid, NULL, 0);
		}
		s->dead = true;
		gw__rec_close_all(s);
		sess_free(s);
	}
	if (g->lev != NULL)
		event_free(g->lev);
	if (g->tick_ev != NULL)
		event_free(g->tick_ev);
	if (g->lfd >= 0)
		close(g->lfd);
	if (g->host_keys != NULL)
		for (size_t i = 0; g->host_keys[i] != NULL; i++)
			free(g->host_keys[i]);
	free(g->host_keys);
	free(g->cidrs);
	free(g->listen);
	free(g->log_level);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

json_t *
gw_sessions(struct gw *g)
{
	json_t *arr = json_array();

	if (arr == NULL || g == NULL)
		return arr;
	pthread_mutex_lock(&g->mu);
	for (struct gw_sess *s = g->sessions; s != NULL; s = s->next) {
		char started[32];
		time_t t = (time_t)s->started_unix;
		struct tm tm;
		json_t *o;

		if (s->dead)
			continue;
		gmtime_r(&t, &tm);
		strftime(started, sizeof(started), "%Y-%m-%dT%H:%M:%SZ", &tm);
		o = json_pack("{s:s,s:i,s:s,s:s,s:b,s:I,s:I,s:i}", "id", s->id,
		    "pid", (int)s->pid, "client_addr", s->client, "started_at",
		    started, "authenticated", s->authed, "bytes_in",
		    (json_int_t)s->bytes_in, "bytes_out",
		    (json_int_t)s->bytes_out, "forwards", (int)s->forwards);
		if (o == NULL)
			continue;
		if (s->authed) {
			json_object_set_new(o, "user", json_string(s->username));
			json_object_set_new(o, "workspace",
			    json_string(s->ws_name));
			json_object_set_new(o, "owner", json_string(s->owner));
		}
		json_array_append_new(arr, o);
	}
	pthread_mutex_unlock(&g->mu);
	return arr;
}

int
gw_session_end(struct gw *g, const char *id, const char *why)
{
	int r = MOAT_ERR_NOTFOUND;

	if (g == NULL || id == NULL)
		return r;
	pthread_mutex_lock(&g->mu);
	for (struct gw_sess *s = g->sessions; s != NULL; s = s->next) {
		json_t *m;

		if (s->dead || strcmp(s->id, id) != 0)
			continue;
		m = json_pack("{s:s,s:s}", "t", "close", "message", why != NULL ?
		    why : "the session was ended by an administrator");
		if (m != NULL && s->ctl >= 0 &&
		    gwctl_send(s->ctl, m, NULL, 0) != 0)
			log_debug(GW_COMPONENT, "session process did not take "
			    "the close message", LF_STR("session", s->id));
		json_decref(m);
		if (s->kill_at <= 0)
			s->kill_at = now_mono() + 1.0;
		r = 0;
		break;
	}
	pthread_mutex_unlock(&g->mu);
	return r;
}
