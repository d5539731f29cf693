/*
 * control.c - moat-proxy's control mode (see control.h): the workspace
 * table moatd pushes, the per-workspace unix sockets, the peer check on
 * each connection and the hand-off to the proxy's HTTP server.
 *
 * Ownership: the table holds one reference on each entry; every adopted
 * connection holds one (dropped by its on_close) and so does every request
 * in flight (control_ident_get/put). An entry removed from the table is
 * marked gone; requests still arriving on its old connections are refused.
 * The table, the listeners and the sockets are touched on the control base
 * only; an entry's policies, names and gone flag are read by the other
 * loops under c->mu.
 *
 * Sockets are made through the directory's descriptor (bind to
 * /proc/self/fd/N/egress.sock, then fchownat/fchmodat), never by following
 * a path twice; a file that is not a socket is left alone (and reported).
 * Each second the control base checks that every socket is still the one it
 * made (a workspace restarted between two pushes gets a fresh run
 * directory) and makes it again when not.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/listener.h>

#include "control.h"
#include "digest.h"
#include "json.h"
#include "log.h"
#include "policy.h"

#define COMPONENT "moat-proxy"
#define MAX_WORKSPACES 100000
#define MAX_POLICIES 4096
#define STATE_MAX_BODY (32 * 1024 * 1024)
#define CHECK_MS 1000
#define ID_MAX 64
#define NAME_MAX_ 128
#define POLNAME_MAX 64

struct ws_entry {
	_Atomic unsigned refs;
	struct control *ctl;
	char id[ID_MAX];
	char dir[PATH_MAX];		/* socket_dir */
	/* Under ctl->mu (written on the control base): */
	char owner[NAME_MAX_], org[NAME_MAX_];
	char policy[POLNAME_MAX], tpolicy[POLNAME_MAX];
	json_t *pols[2];
	size_t npols;
	char deny_reason[160];
	bool gone;
	/* Control base only: */
	uint32_t uid_base, uid_count;
	struct evconnlistener *lev;
	dev_t dev;
	ino_t ino;
	char err[200];			/* why the socket is missing */
	bool seen;			/* in the document being applied */
	_Atomic unsigned conns;		/* open connections */
	_Atomic unsigned inflight;	/* requests and tunnels */
};

struct control {
	struct control_opts o;
	struct event_base **bases;
	pthread_mutex_t mu;
	struct ws_entry **ws;		/* control base only */
	size_t nws, cap;
	char digest[65];		/* control base only */
	size_t rr;
	struct event *check_ev;
	bool stopping;			/* control base only */
};

struct handoff {
	struct control *c;
	struct ws_entry *w;
	struct event_base *base;
	int fd;
	char client[64];
};

/* --- entries --- */

static void
ws_ref(struct ws_entry *w)
{
	atomic_fetch_add(&w->refs, 1);
}

static void
ws_unref(struct ws_entry *w)
{
	if (w == NULL || atomic_fetch_sub(&w->refs, 1) != 1)
		return;
	for (size_t i = 0; i < w->npols; i++)
		json_decref(w->pols[i]);
	free(w);
}

static int
emit(struct control *c, json_t *ev)
{
	if (c->o.emit == NULL) {
		json_decref(ev);
		return 0;
	}
	return c->o.emit(c->o.emit_arg, ev);
}

static void
audit_refusal(struct control *c, struct ws_entry *w, const char *reason,
    long long uid, long long pid)
{
	json_t *ev = audit_event_new("egress.deny", "denied");

	if (ev == NULL)
		return;
	json_object_set_new(ev, "workspace", json_string(w->id));
	json_object_set_new(ev, "actor", json_pack("{s:s,s:I,s:I}", "addr",
	    "unix", "uid", (json_int_t)uid, "pid", (json_int_t)pid));
	json_object_set_new(ev, "details", json_pack("{s:s,s:s}", "reason",
	    reason, "socket", w->dir));
	if (emit(c, ev) != 0)
		log_warn(COMPONENT, "audit event dropped",
		    LF_STR("type", "egress.deny"));
}

/* --- sockets --- */

static void
sock_close(struct ws_entry *w)
{
	int dfd;
	struct stat st;

	if (w->lev == NULL)
		return;
	evconnlistener_free(w->lev);	/* closes the socket */
	w->lev = NULL;
	dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return;
	if (fstatat(dfd, CONTROL_SOCK_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISSOCK(st.st_mode) && st.st_dev == w->dev && st.st_ino == w->ino)
		(void)unlinkat(dfd, CONTROL_SOCK_NAME, 0);
	close(dfd);
}

/* True when the socket this entry made is still at its place. */
static bool
sock_intact(const struct ws_entry *w)
{
	char path[PATH_MAX + 32];
	struct stat st;

	if (w->lev == NULL)
		return false;
	if (snprintf(path, sizeof(path), "%s/%s", w->dir, CONTROL_SOCK_NAME) >=
	    (int)sizeof(path))
		return false;
	return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) &&
	    st.st_dev == w->dev && st.st_ino == w->ino;
}

static void adopt_now(struct control *c, struct ws_entry *w,
    struct event_base *base, int fd, const char *client);

static void
handoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct handoff *h = arg;

	(void)fd;
	(void)what;
	adopt_now(h->c, h->w, h->base, h->fd, h->client);
	free(h);
}

static void
conn_closed(void *arg)
{
	struct ws_entry *w = arg;

	atomic_fetch_sub(&w->conns, 1);
	ws_unref(w);
}

/* On base's thread: w's reference and conns count are the connection's. */
static void
adopt_now(struct control *c, struct ws_entry *w, struct event_base *base,
    int fd, const char *client)
{
	struct http_adopt_opts ao;
	int r;

	memset(&ao, 0, sizeof(ao));
	ao.client = client;
	ao.conn_arg = w;
	ao.on_close = conn_closed;
	if ((r = http_server_adopt(c->o.proxy_srv, base, fd, &ao)) != 0) {
		if (r != MOAT_ERR_CLOSED)
			log_warn(COMPONENT, "workspace connection dropped",
			    LF_STR("workspace", w->id),
			    LF_STR("error", moat_strerror(r)));
		conn_closed(w);
	}
}

static void
accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
#define BUSY_BODY "moat-proxy: too many connections from this workspace\n"
	static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
	    "Content-Length: 53\r\n\r\n" BUSY_BODY;
	_Static_assert(sizeof(BUSY_BODY) - 1 == 53, "Content-Length of busy");
	struct ws_entry *w = arg;
	struct control *c = w->ctl;
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	struct event_base *base;
	char client[64];
	uint64_t off;

	(void)lev;
	(void)sa;
	(void)salen;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) != 0 ||
	    ul != sizeof(uc)) {
		log_warn(COMPONENT, "cannot read a workspace client's "
		    "credentials", LF_STR("workspace", w->id),
		    LF_STR("error", strerror(errno)));
		close(fd);
		return;
	}
	off = (uint64_t)uc.uid - (uint64_t)w->uid_base;
	if (uc.uid < w->uid_base || off >= (uint64_t)w->uid_count) {
		log_warn(COMPONENT, "connection refused: peer uid outside the "
		    "workspace's range", LF_STR("workspace", w->id),
		    LF_INT("uid", uc.uid), LF_INT("pid", uc.pid));
		audit_refusal(c, w, "peer uid outside the workspace's range",
		    uc.uid, uc.pid);
		close(fd);
		return;
	}
	if (atomic_fetch_add(&w->conns, 1) >= c->o.max_conns) {
		atomic_fetch_sub(&w->conns, 1);
		log_warn(COMPONENT, "connection refused: workspace connection "
		    "cap", LF_STR("workspace", w->id),
		    LF_INT("max", c->o.max_conns));
		audit_refusal(c, w, "connection cap reached", uc.uid, uc.pid);
		(void)send(fd, busy, sizeof(busy) - 1, MSG_DONTWAIT |
		    MSG_NOSIGNAL);
		close(fd);
		return;
	}
	ws_ref(w);
	snprintf(client, sizeof(client), "unix:pid=%ld,uid=%lu", (long)uc.pid,
	    (unsigned long)uc.uid);
	base = c->bases[c->rr++ % c->o.nbases];
	if (base == c->o.base) {
		adopt_now(c, w, base, fd, client);
	} else {
		struct handoff *h = calloc(1, sizeof(*h));
		struct timeval zero = { 0, 0 };

		if (h == NULL) {
			close(fd);
			conn_closed(w);
			return;
		}
		h->c = c;
		h->w = w;
		h->base = base;
		h->fd = fd;
		memcpy(h->client, client, sizeof(client));
		if (event_base_once(base, -1, EV_TIMEOUT, handoff_cb, h,
		    &zero) != 0) {
			free(h);
			close(fd);
			conn_closed(w);
		}
	}
}

/* Makes w's socket (closing an old one first). On failure w->err says
 * why. */
static int
sock_make(struct control *c, struct ws_entry *w)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int dfd = -1, fd = -1, r = MOAT_ERR_IO;

	sock_close(w);
	w->err[0] = '\0';
	dfd = open(w->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		r = moat_err_from_errno(errno);
		snprintf(w->err, sizeof(w->err), "socket_dir: %s",
		    strerror(errno));
		goto out;
	}
	if (fstatat(dfd, CONTROL_SOCK_NAME, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			r = MOAT_ERR_EXISTS;
			snprintf(w->err, sizeof(w->err), "socket_dir: %s "
			    "exists and is not a socket", CONTROL_SOCK_NAME);
			goto out;
		}
		(void)unlinkat(dfd, CONTROL_SOCK_NAME, 0);
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "/proc/self/fd/%d/%s", dfd,
	    CONTROL_SOCK_NAME);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		r = moat_err_from_errno(errno);
		snprintf(w->err, sizeof(w->err), "cannot make %s: %s",
		    CONTROL_SOCK_NAME, strerror(errno));
		goto out;
	}
	/* Not listening yet: nobody can connect before the mode is right. */
	if (fchownat(dfd, CONTROL_SOCK_NAME, w->uid_base, w->uid_base,
	    AT_SYMLINK_NOFOLLOW) != 0 ||
	    fchmodat(dfd, CONTROL_SOCK_NAME, 0660, 0) != 0 ||
	    fstatat(dfd, CONTROL_SOCK_NAME, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		r = moat_err_from_errno(errno);
		snprintf(w->err, sizeof(w->err), "cannot set the owner of %s: "
		    "%s", CONTROL_SOCK_NAME, strerror(errno));
		(void)unlinkat(dfd, CONTROL_SOCK_NAME, 0);
		goto out;
	}
	w->dev = st.st_dev;
	w->ino = st.st_ino;
	w->lev = evconnlistener_new(c->o.base, accept_cb, w,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, fd);
	if (w->lev == NULL) {
		r = MOAT_ERR_IO;
		snprintf(w->err, sizeof(w->err), "cannot listen on %s",
		    CONTROL_SOCK_NAME);
		(void)unlinkat(dfd, CONTROL_SOCK_NAME, 0);
		goto out;
	}
	fd = -1;
	log_info(COMPONENT, "workspace socket ready", LF_STR("workspace", w->id),
	    LF_STR("dir", w->dir));
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (r != 0)
		log_warn(COMPONENT, "workspace socket not made",
		    LF_STR("workspace", w->id), LF_STR("error", w->err));
	return r;
}

/* --- the state document --- */

static bool
id_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= ID_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			return false;
	}
	return true;
}

static bool
text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n >= max)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static bool
dir_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 2 || s[0] != '/' || n + sizeof(CONTROL_SOCK_NAME) + 2 >=
	    PATH_MAX || !text_ok(s, PATH_MAX))
		return false;
	/* No "." or ".." segment: the path names the directory plainly. */
	for (const char *p = s; *p != '\0';) {
		const char *e;
		size_t l;

		while (*p == '/')
			p++;
		e = strchr(p, '/');
		l = e != NULL ? (size_t)(e - p) : strlen(p);
		if ((l == 1 && p[0] == '.') || (l == 2 && p[0] == '.' &&
		    p[1] == '.'))
			return false;
		p += l;
	}
	return true;
}

/* Normalized policies by name into *out, checking the workspaces. */
static int
check_state(const json_t *doc, json_t **pols_out, char *err, size_t errlen)
{
	static const struct json_field top[] = {
		{ "policies", JF_OBJECT, true, 0, 0, 0 },
		{ "workspaces", JF_ARRAY, true, MAX_WORKSPACES, 0, 0 },
	};
	static const struct json_field wsf[] = {
		{ "id", JF_STRING, true, ID_MAX - 1, 0, 0 },
		{ "owner", JF_STRING, true, NAME_MAX_ - 1, 0, 0 },
		{ "org", JF_STRING, true, NAME_MAX_ - 1, 0, 0 },
		{ "policy", JF_STRING, true, POLNAME_MAX - 1, 0, 0 },
		{ "template_policy", JF_ANY, false, 0, 0, 0 },
		{ "socket_dir", JF_STRING, true, PATH_MAX - 32, 0, 0 },
		{ "uid_base", JF_INT, true, 0, 1, 4294967295LL },
		{ "uid_count", JF_INT, true, 0, 1, 4294967296LL },
	};
	json_t *pols = NULL, *seen = NULL, *dirs = NULL, *v, *w;
	const char *k;
	char e2[256], path[128];
	size_t i;
	int r = MOAT_ERR_INVAL;

	*pols_out = NULL;
	if (!json_is_object(doc)) {
		moat_errf(err, errlen, "the state must be a JSON object");
		goto out;
	}
	if (json_check_fields(doc, top, 2, err, errlen) != 0)
		goto out;
	if (json_object_size(json_object_get(doc, "policies")) > MAX_POLICIES) {
		moat_errf(err, errlen, "policies: more than %d", MAX_POLICIES);
		goto out;
	}
	r = MOAT_ERR_NOMEM;
	if ((pols = json_object()) == NULL || (seen = json_object()) == NULL ||
	    (dirs = json_object()) == NULL)
		goto out;
	r = MOAT_ERR_INVAL;
	json_object_foreach(json_object_get(doc, "policies"), k, v) {
		json_t *in, *norm = NULL;
		const char *name;

		if (!text_ok(k, POLNAME_MAX) || k[0] == '\0') {
			moat_errf(err, errlen, "policies: invalid name");
			goto out;
		}
		if (!json_is_object(v)) {
			moat_errf(err, errlen, "policies.%s: not an object", k);
			goto out;
		}
		name = json_string_value(json_object_get(v, "name"));
		if (name != NULL && strcmp(name, k) != 0) {
			moat_errf(err, errlen, "policies.%s: its name differs "
			    "from its key", k);
			goto out;
		}
		if ((in = json_deep_copy(v)) == NULL) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
		if (name == NULL)
			json_object_set_new(in, "name", json_string(k));
		path[0] = e2[0] = '\0';
		if (policy_normalize(in, &norm, path, sizeof(path), e2,
		    sizeof(e2)) != 0) {
			json_decref(in);
			moat_errf(err, errlen, "policies.%s: %s%s%s", k, path,
			    path[0] != '\0' ? ": " : "", e2);
			goto out;
		}
		json_decref(in);
		json_object_set_new(pols, k, norm);
	}
	json_array_foreach(json_object_get(doc, "workspaces"), i, w) {
		const char *id, *dir;
		json_t *tp;
		long long base, count;

		if (!json_is_object(w)) {
			moat_errf(err, errlen, "workspaces[%zu]: not an object", i);
			goto out;
		}
		if (json_check_fields(w, wsf, sizeof(wsf) / sizeof(wsf[0]), e2,
		    sizeof(e2)) != 0) {
			moat_errf(err, errlen, "workspaces[%zu]: %s", i, e2);
			goto out;
		}
		id = json_get_str(w, "id");
		dir = json_get_str(w, "socket_dir");
		tp = json_object_get(w, "template_policy");
		base = json_get_int(w, "uid_base", 0);
		count = json_get_int(w, "uid_count", 0);
		if (!id_ok(id)) {
			moat_errf(err, errlen, "workspaces[%zu].id: invalid", i);
			goto out;
		}
		if (!text_ok(json_get_str(w, "owner"), NAME_MAX_) ||
		    !text_ok(json_get_str(w, "org"), NAME_MAX_) ||
		    !text_ok(json_get_str(w, "policy"), POLNAME_MAX)) {
			moat_errf(err, errlen, "workspaces[%zu]: control "
			    "characters in a name", i);
			goto out;
		}
		if (tp != NULL && !json_is_null(tp) && (!json_is_string(tp) ||
		    !text_ok(json_string_value(tp), POLNAME_MAX))) {
			moat_errf(err, errlen, "workspaces[%zu].template_policy: "
			    "must be a policy name or null", i);
			goto out;
		}
		if (!dir_ok(dir)) {
			moat_errf(err, errlen, "workspaces[%zu].socket_dir: must "
			    "be an absolute path without . or .. segments", i);
			goto out;
		}
		if (base + count > 4294967296LL) {
			moat_errf(err, errlen, "workspaces[%zu]: uid range past "
			    "2^32", i);
			goto out;
		}
		if (json_object_get(seen, id) != NULL) {
			moat_errf(err, errlen, "workspaces[%zu].id: duplicate", i);
			goto out;
		}
		if (json_object_get(dirs, dir) != NULL) {
			moat_errf(err, errlen, "workspaces[%zu].socket_dir: "
			    "duplicate", i);
			goto out;
		}
		if (json_object_set(seen, id, json_true()) != 0 ||
		    json_object_set(dirs, dir, json_true()) != 0) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
	}
	*pols_out = pols;
	pols = NULL;
	r = 0;
out:
	json_decref(pols);
	json_decref(seen);
	json_decref(dirs);
	return r;
}

int
control_check_state(const json_t *doc, char *err, size_t errlen)
{
	json_t *pols = NULL;
	int r = check_state(doc, &pols, err, errlen);

	json_decref(pols);
	return r;
}

static void
digest_of(const json_t *doc, char out[65])
{
	size_t len = 0;
	char *s = json_canonical(doc, &len);

	/* "" on failure: matches nothing moatd pushed, so it pushes again. */
	out[0] = '\0';
	if (s != NULL && sha256_hex(s, len, out) != 0)
		out[0] = '\0';
	free(s);
}

static struct ws_entry *
find_ws(struct control *c, const char *id)
{
	for (size_t i = 0; i < c->nws; i++)
		if (strcmp(c->ws[i]->id, id) == 0)
			return c->ws[i];
	return NULL;
}

/* Under c->mu: w's names and policies from the state entry j. */
static void
ws_update(struct ws_entry *w, const json_t *j, const json_t *pols)
{
	const char *pname = json_get_str(j, "policy");
	const char *tname = json_string_value(json_object_get(j,
	    "template_policy"));
	json_t *p, *tp = NULL;

	for (size_t i = 0; i < w->npols; i++)
		json_decref(w->pols[i]);
	w->npols = 0;
	w->deny_reason[0] = '\0';
	snprintf(w->owner, sizeof(w->owner), "%s", json_get_str(j, "owner"));
	snprintf(w->org, sizeof(w->org), "%s", json_get_str(j, "org"));
	snprintf(w->policy, sizeof(w->policy), "%s", pname);
	snprintf(w->tpolicy, sizeof(w->tpolicy), "%s", tname != NULL ? tname :
	    "");
	p = json_object_get(pols, pname);
	if (tname != NULL)
		tp = json_object_get(pols, tname);
	if (p == NULL) {
		snprintf(w->deny_reason, sizeof(w->deny_reason),
		    "the organization's policy \"%s\" is not defined", pname);
		return;
	}
	if (tname != NULL && tp == NULL) {
		snprintf(w->deny_reason, sizeof(w->deny_reason),
		    "the template's policy \"%s\" is not defined", tname);
		return;
	}
	w->pols[w->npols++] = json_incref(p);
	if (tp != NULL && tp != p)
		w->pols[w->npols++] = json_incref(tp);
}

static void
ws_remove_at(struct control *c, size_t i)
{
	struct ws_entry *w = c->ws[i];

	sock_close(w);
	pthread_mutex_lock(&c->mu);
	w->gone = true;
	pthread_mutex_unlock(&c->mu);
	c->ws[i] = c->ws[--c->nws];
	log_info(COMPONENT, "workspace removed", LF_STR("workspace", w->id));
	ws_unref(w);
}

int
control_apply(struct control *c, const json_t *doc, json_t **answer,
    char *err, size_t errlen)
{
	json_t *pols = NULL, *errors = NULL, *j, *ev;
	size_t i, added = 0, removed = 0;
	int r;

	*answer = NULL;
	if ((r = check_state(doc, &pols, err, errlen)) != 0)
		return r;
	if ((errors = json_array()) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < c->nws; i++)
		c->ws[i]->seen = false;
	json_array_foreach(json_object_get(doc, "workspaces"), i, j) {
		const char *id = json_get_str(j, "id");
		const char *dir = json_get_str(j, "socket_dir");
		uint32_t base = (uint32_t)json_get_int(j, "uid_base", 0);
		uint64_t count = (uint64_t)json_get_int(j, "uid_count", 0);
		struct ws_entry *w = find_ws(c, id);
		bool remake = false;

		if (w == NULL) {
			if (c->nws == c->cap) {
				size_t ncap = c->cap > 0 ? c->cap * 2 : 16;
				struct ws_entry **nv = realloc(c->ws,
				    ncap * sizeof(*nv));

				if (nv == NULL) {
					r = MOAT_ERR_NOMEM;
					goto out;
				}
				c->ws = nv;
				c->cap = ncap;
			}
			if ((w = calloc(1, sizeof(*w))) == NULL) {
				r = MOAT_ERR_NOMEM;
				goto out;
			}
			atomic_init(&w->refs, 1);
			w->ctl = c;
			snprintf(w->id, sizeof(w->id), "%s", id);
			snprintf(w->dir, sizeof(w->dir), "%s", dir);
			c->ws[c->nws++] = w;
			remake = true;
			added++;
		} else if (strcmp(w->dir, dir) != 0) {
			sock_close(w);
			snprintf(w->dir, sizeof(w->dir), "%s", dir);
			remake = true;
		}
		w->seen = true;
		if (w->uid_base != base || w->uid_count != (uint32_t)(count >
		    0xffffffffu ? 0xffffffffu : count)) {
			w->uid_base = base;
			w->uid_count = count > 0xffffffffu ? 0xffffffffu :
			    (uint32_t)count;
			remake = remake || w->lev != NULL;	/* new owner */
		}
		pthread_mutex_lock(&c->mu);
		ws_update(w, j, pols);
		pthread_mutex_unlock(&c->mu);
		if (!c->stopping && (remake || !sock_intact(w)))
			(void)sock_make(c, w);
		if (w->lev == NULL)
			json_array_append_new(errors, json_pack("{s:s,s:s}", "id",
			    w->id, "error", w->err[0] != '\0' ? w->err :
			    "no socket"));
	}
	for (i = 0; i < c->nws;) {
		if (c->ws[i]->seen) {
			i++;
			continue;
		}
		ws_remove_at(c, i);
		removed++;
	}
	/* With errors the next PUT must not look like a no-op to moatd. */
	if (json_array_size(errors) == 0)
		digest_of(doc, c->digest);
	else
		c->digest[0] = '\0';
	*answer = json_pack("{s:s,s:I,s:O}", "digest", c->digest,
	    "workspaces", (json_int_t)c->nws, "errors", errors);
	if (*answer == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((added > 0 || removed > 0 || json_array_size(errors) > 0) &&
	    (ev = audit_event_new("egress.state", json_array_size(errors) ==
	    0 ? "success" : "failure")) != NULL) {
		json_object_set_new(ev, "details", json_pack("{s:I,s:I,s:I,s:O}",
		    "workspaces", (json_int_t)c->nws, "added", (json_int_t)added,
		    "removed", (json_int_t)removed, "errors", errors));
		if (emit(c, ev) != 0)
			log_warn(COMPONENT, "audit event dropped",
			    LF_STR("type", "egress.state"));
	}
	log_debug(COMPONENT, "state applied", LF_INT("workspaces", c->nws),
	    LF_INT("added", added), LF_INT("removed", removed),
	    LF_INT("errors", json_array_size(errors)));
	r = 0;
out:
	json_decref(pols);
	json_decref(errors);
	return r;
}

/* --- routes --- */

static void
handle_put(struct http_request *req, void *arg)
{
	struct control *c = arg;
	const uint8_t *body;
	size_t len = 0;
	json_t *doc = NULL, *answer = NULL;
	char err[512];
	int r;

	body = http_req_body(req, &len);
	err[0] = '\0';
	if ((r = json_parse_object(body, len, STATE_MAX_BODY, &doc, err,
	    sizeof(err))) != 0) {
		http_respond_error(req, r == MOAT_ERR_TOOBIG ? 413 : 400,
		    "invalid_state", err);
		return;
	}
	if ((r = control_apply(c, doc, &answer, err, sizeof(err))) != 0) {
		log_warn(COMPONENT, "state refused", LF_STR("error", err));
		if (r == MOAT_ERR_INVAL)
			http_respond_error(req, 400, "invalid_state", err);
		else
			http_respond_error(req, 500, "internal",
			    moat_strerror(r));
		json_decref(doc);
		return;
	}
	http_respond_json(req, 200, answer);
	json_decref(answer);
	json_decref(doc);
}

static void
handle_get(struct http_request *req, void *arg)
{
	struct control *c = arg;
	json_t *out, *list;

	out = json_pack("{s:s}", "digest", c->digest);
	list = json_array();
	if (out == NULL || list == NULL) {
		json_decref(out);
		json_decref(list);
		http_respond_error(req, 500, "internal", "out of memory");
		return;
	}
	for (size_t i = 0; i < c->nws; i++) {
		struct ws_entry *w = c->ws[i];
		json_t *e, *names = json_array();

		pthread_mutex_lock(&c->mu);
		for (size_t k = 0; names != NULL && k < w->npols; k++)
			json_array_append(names, json_object_get(w->pols[k],
			    "name"));
		e = json_pack("{s:s,s:s,s:s,s:s,s:s?,s:o,s:s,s:b,s:I,s:I,s:I,"
		    "s:I}", "id", w->id, "owner", w->owner, "org", w->org,
		    "policy", w->policy, "template_policy",
		    w->tpolicy[0] != '\0' ? w->tpolicy : NULL, "effective",
		    names != NULL ? names : json_array(), "socket_dir", w->dir,
		    "socket", w->lev != NULL, "uid_base", (json_int_t)w->uid_base,
		    "uid_count", (json_int_t)w->uid_count,
		    "conns", (json_int_t)atomic_load(&w->conns),
		    "inflight", (json_int_t)atomic_load(&w->inflight));
		if (e != NULL && w->deny_reason[0] != '\0')
			json_object_set_new(e, "error", json_string(w->deny_reason));
		pthread_mutex_unlock(&c->mu);
		json_array_append_new(list, e);
	}
	json_object_set_new(out, "workspaces", list);
	http_respond_json(req, 200, out);
	json_decref(out);
}

int
control_routes(struct control *c, struct http_server *srv)
{
	int r;

	if ((r = http_server_route(srv, "PUT", "/v1/state", handle_put, c)) != 0 ||
	    (r = http_server_route(srv, "GET", "/v1/state", handle_get, c)) != 0)
		return r;
	return 0;
}

/* --- identity --- */

int
control_ident_get(void *arg, void *conn_arg, struct proxy_ident *out)
{
	struct control *c = arg;
	struct ws_entry *w = conn_arg;
	int r = 0;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&c->mu);
	if (w->gone) {
		r = MOAT_ERR_NOTFOUND;
		goto out;
	}
	if (atomic_fetch_add(&w->inflight, 1) >= c->o.max_conns) {
		atomic_fetch_sub(&w->inflight, 1);
		r = MOAT_ERR_AGAIN;
		goto out;
	}
	ws_ref(w);
	for (size_t i = 0; i < w->npols; i++)
		out->pols[out->npols++] = json_incref(w->pols[i]);
	memcpy(out->workspace, w->id, sizeof(out->workspace));
	memcpy(out->owner, w->owner, sizeof(out->owner));
	memcpy(out->org, w->org, sizeof(out->org));
	memcpy(out->deny_reason, w->deny_reason, sizeof(out->deny_reason));
	out->ref = w;
out:
	pthread_mutex_unlock(&c->mu);
	return r;
}

void
control_ident_put(void *arg, struct proxy_ident *id)
{
	struct ws_entry *w;

	(void)arg;
	if (id == NULL || (w = id->ref) == NULL)
		return;
	for (size_t i = 0; i < id->npols; i++)
		json_decref(id->pols[i]);
	id->npols = 0;
	id->ref = NULL;
	atomic_fetch_sub(&w->inflight, 1);
	ws_unref(w);
}

void
control_conn_workspace(void *conn_arg, char *out, size_t outlen)
{
	const struct ws_entry *w = conn_arg;

	if (outlen == 0)
		return;
	snprintf(out, outlen, "%s", w != NULL ? w->id : "");
}

/* --- life cycle --- */

static void
on_check(evutil_socket_t fd, short what, void *arg)
{
	struct control *c = arg;

	(void)fd;
	(void)what;
	for (size_t i = 0; i < c->nws; i++) {
		struct ws_entry *w = c->ws[i];

		if (sock_intact(w))
			continue;
		/* Gone from under us (a new run directory) or never made. */
		if (w->lev != NULL)
			log_info(COMPONENT, "workspace socket replaced; making "
			    "it again", LF_STR("workspace", w->id));
		(void)sock_make(c, w);
		if (w->lev == NULL)
			c->digest[0] = '\0';
	}
}

int
control_new(struct control **out, const struct control_opts *o)
{
	struct control *c;
	struct timeval tv = { CHECK_MS / 1000, (CHECK_MS % 1000) * 1000 };

	*out = NULL;
	if (o->proxy_srv == NULL || o->base == NULL || o->bases == NULL ||
	    o->nbases == 0)
		return MOAT_ERR_INVAL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return MOAT_ERR_NOMEM;
	c->o = *o;
	if (c->o.max_conns == 0)
		c->o.max_conns = 256;
	pthread_mutex_init(&c->mu, NULL);
	if ((c->bases = calloc(o->nbases, sizeof(*c->bases))) == NULL)
		goto fail;
	memcpy(c->bases, o->bases, o->nbases * sizeof(*c->bases));
	c->o.bases = c->bases;
	c->check_ev = event_new(o->base, -1, EV_PERSIST, on_check, c);
	if (c->check_ev == NULL || event_add(c->check_ev, &tv) != 0)
		goto fail;
	*out = c;
	return 0;
fail:
	control_free(c);
	return MOAT_ERR_NOMEM;
}

void
control_shutdown(struct control *c)
{
	if (c == NULL)
		return;
	c->stopping = true;
	if (c->check_ev != NULL)
		event_del(c->check_ev);
	for (size_t i = 0; i < c->nws; i++)
		sock_close(c->ws[i]);
}

void
control_free(struct control *c)
{
	if (c == NULL)
		return;
	if (c->check_ev != NULL)
		event_free(c->check_ev);
	while (c->nws > 0)
		ws_remove_at(c, c->nws - 1);
	free(c->ws);
	free(c->bases);
	pthread_mutex_destroy(&c->mu);
	free(c);
}
