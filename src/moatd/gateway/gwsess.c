/*
 * gwsess.c - `moatd ssh-session`: one SSH client connection, in its own
 * process, spawned by the gateway (gw.c) with the client's socket on fd 3
 * and the control channel (gwctl.h) on fd 4.
 *
 * Order: read the parent's init message; load the gateway host keys; drop
 * privileges (nobody, no new privileges, tight limits); key exchange with
 * the client; public-key authentication, each key asked of the parent
 * (probes answered truthfully); after a signed success the parent starts
 * the workspace if needed (progress shown on stderr) and hands over the
 * agent DIAL socket and the workspace's access key; the upstream SSH
 * connection is made, its host key compared with the pin, and the access
 * key wiped. Then gwrelay.c relays channels until the client leaves.
 *
 * This process holds no key but the host keys before authorization, and
 * then only the one workspace's access key, for as long as userauth takes.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include "json.h"
#include "log.h"

#include "gateway/gw.h"
#include "gateway/gwctl.h"
#include "gateway/gwsess_int.h"

#define NOBODY_ID 65534
#define AUTH_REPLY_TIMEOUT_MS 30000
#define INIT_TIMEOUT_MS 10000
#define ACTIVITY_EVERY_S 20.0
#define MAX_AUTH_TIME_S 300.0
#define MAX_KEY_FILE 16384

#if defined(__SANITIZE_ADDRESS__)
#define GWSESS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GWSESS_SANITIZED 1
#endif
#endif

double
gwsess_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
gwsess_fatal_ctl(void)
{
	/* The parent is gone or sent garbage: nothing is left to do. */
	_exit(3);
}

void
gwsess_send(struct gwsess *s, json_t *obj)
{
	int r;

	(void)s;
	if (obj == NULL)
		return;
	if ((r = gwctl_send(GWSESS_CTL_FD, obj, NULL, 0)) != 0) {
		log_error(GWSESS_COMPONENT, "control channel failed",
		    LF_STR("error", moat_strerror(r)));
		gwsess_fatal_ctl();
	}
}

void
gwsess_audit(struct gwsess *s, const char *type, const char *outcome,
    json_t *details)
{
	json_t *m;

	if (details == NULL)
		details = json_object();
	m = json_pack("{s:s,s:s,s:s,s:o}", "t", "audit", "type", type,
	    "outcome", outcome, "details", details);
	gwsess_send(s, m);
	json_decref(m);
}

/* Blocks until one message from the parent arrives (or timeout). */
static int
recv_parent(uint8_t *buf, struct gwctl_msg *m, int *fds, size_t *nfds,
    int timeout_ms)
{
	struct pollfd pfd = { .fd = GWSESS_CTL_FD, .events = POLLIN };
	char err[128];
	size_t len;
	int r;

	for (;;) {
		r = poll(&pfd, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			return MOAT_ERR_TIMEOUT;
		if (r < 0)
			return moat_err_from_errno(errno);
		break;
	}
	if ((r = gwctl_recv(GWSESS_CTL_FD, buf, GWCTL_MAX_MSG, &len, fds,
	    nfds)) != 0)
		return r;
	if ((r = gwctl_parse_parent(buf, len, m, err, sizeof(err))) != 0) {
		for (size_t i = 0; i < *nfds; i++)
			close(fds[i]);
		*nfds = 0;
		log_error(GWSESS_COMPONENT, "bad message from the parent",
		    LF_STR("error", err));
	}
	return r;
}

static void
drop_privileges(void)
{
	struct rlimit rl;

	if (geteuid() == 0) {
		if (setgroups(0, NULL) != 0 ||
		    setresgid(NOBODY_ID, NOBODY_ID, NOBODY_ID) != 0 ||
		    setresuid(NOBODY_ID, NOBODY_ID, NOBODY_ID) != 0) {
			log_error(GWSESS_COMPONENT, "cannot drop privileges",
			    LF_STR("error", strerror(errno)));
			_exit(4);
		}
		if (setuid(0) == 0) {
			log_error(GWSESS_COMPONENT, "privileges came back");
			_exit(4);
		}
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		log_warn(GWSESS_COMPONENT, "no PR_SET_NO_NEW_PRIVS");
	rl.rlim_cur = rl.rlim_max = 0;
	(void)setrlimit(RLIMIT_CORE, &rl);
	rl.rlim_cur = rl.rlim_max = 64;
	(void)setrlimit(RLIMIT_NOFILE, &rl);
#ifndef GWSESS_SANITIZED
	/* No new processes, no core, no ptrace by the same uid. (The
	 * sanitizer's leak checker needs a helper thread and ptrace.) */
	rl.rlim_cur = rl.rlim_max = 0;
	(void)setrlimit(RLIMIT_NPROC, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
#endif
}

/* --- authentication --- */

static int
cb_auth_pubkey(ssh_session session, const char *user, struct ssh_key_struct *key,
    char state, void *arg)
{
	struct gwsess *s = arg;
	char *b64 = NULL, line[GWCTL_MAX_KEY + 64];
	const char *type;
	uint8_t *buf = NULL;
	struct gwctl_msg m;
	int fds[GWCTL_MAX_FDS], rc = SSH_AUTH_DENIED, r;
	size_t nfds = 0;
	json_t *q = NULL;
	bool ok;

	memset(&m, 0, sizeof(m));
	if (s->authed || state == SSH_PUBLICKEY_STATE_WRONG || user == NULL ||
	    strlen(user) > GWCTL_MAX_LOGIN)
		goto out;
	if (gwsess_now() - s->start > MAX_AUTH_TIME_S)
		goto out;
	type = ssh_key_type_to_char(ssh_key_type(key));
	if (type == NULL || ssh_pki_export_pubkey_base64(key, &b64) != SSH_OK ||
	    snprintf(line, sizeof(line), "%s %s", type, b64) >= (int)sizeof(line))
		goto out;
	q = json_pack("{s:s,s:s,s:s,s:b}", "t", "auth", "login", user, "key",
	    line, "signed", state == SSH_PUBLICKEY_STATE_VALID);
	gwsess_send(s, q);
	if ((buf = malloc(GWCTL_MAX_MSG)) == NULL)
		goto out;
	for (;;) {
		if ((r = recv_parent(buf, &m, fds, &nfds,
		    AUTH_REPLY_TIMEOUT_MS)) != 0) {
			log_error(GWSESS_COMPONENT, "no answer to an "
			    "authentication query", LF_STR("error",
			    moat_strerror(r)));
			gwsess_fatal_ctl();
		}
		for (size_t i = 0; i < nfds; i++)
			close(fds[i]);
		if (m.type == GWCTL_AUTH_RESULT)
			break;
		if (m.type == GWCTL_CLOSE)
			_exit(0);
		gwctl_msg_clear(&m);
	}
	ok = json_is_true(json_object_get(m.obj, "ok"));
	if (ok) {
		rc = SSH_AUTH_SUCCESS;
		if (state == SSH_PUBLICKEY_STATE_VALID) {
			json_t *set = json_object_get(m.obj, "settings");

			s->authed = true;
			snprintf(s->login, sizeof(s->login), "%s", user);
			s->set.port_forwarding = json_get_bool(set,
			    "port_forwarding", false);
			s->set.file_transfer = json_get_bool(set,
			    "file_transfer", false);
			s->set.agent_forwarding = json_get_bool(set,
			    "agent_forwarding", false);
			s->set.record_input = json_get_bool(set,
			    "record_input", false);
			s->set.other_owner = json_get_bool(set, "other_owner",
			    true);
			if (s->set.other_owner)
				s->set.agent_forwarding = false;
		}
	} else if (m.text != NULL && m.text_len > 0 && !s->auth_failed_banner) {
		char msg[512];
		ssh_string str;

		snprintf(msg, sizeof(msg), "%s\r\n", m.text);
		if ((str = ssh_string_from_char(msg)) != NULL) {
			(void)ssh_send_issue_banner(session, str);
			ssh_string_free(str);
		}
		s->auth_failed_banner = true;
	}
out:
	gwctl_msg_clear(&m);
	json_decref(q);
	free(buf);
	ssh_string_free_char(b64);
	return rc;
}

static ssh_channel
cb_open_session(ssh_session session, void *arg)
{
	struct gwsess *s = arg;
	ssh_channel ch;

	if (!s->authed || s->closing)
		return NULL;
	if ((ch = ssh_channel_new(session)) == NULL)
		return NULL;
	if (gwrelay_new_session(s, ch) == NULL) {
		ssh_channel_free(ch);
		return NULL;
	}
	return ch;
}

/* --- the control channel after authentication --- */

static void
set_fail(struct gwsess *s, const char *text)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "moat: %s\n", text != NULL ? text :
	    "the workspace is unavailable");
	free(s->upstream_fail_msg);
	s->upstream_fail_msg = strdup(msg);
	s->upstream_failed = true;
}

static int
cb_ctl(socket_t fd, int revents, void *arg)
{
	struct gwsess *s = arg;
	uint8_t *buf;
	struct gwctl_msg m;
	int fds[GWCTL_MAX_FDS];
	size_t nfds = 0;
	int r;

	(void)fd;
	if ((revents & (POLLIN | POLLHUP | POLLERR)) == 0)
		return 0;
	if ((buf = malloc(GWCTL_MAX_MSG)) == NULL)
		return 0;
	memset(&m, 0, sizeof(m));
	r = recv_parent(buf, &m, fds, &nfds, 0);
	free(buf);
	if (r == MOAT_ERR_TIMEOUT || r == MOAT_ERR_AGAIN)
		return 0;
	if (r != 0) {
		/* The parent is gone: end the session. */
		log_warn(GWSESS_COMPONENT, "control channel closed");
		s->closing = true;
		s->done = true;
		return 0;
	}
	switch (m.type) {
	case GWCTL_PROGRESS: {
		char line[512];

		snprintf(line, sizeof(line), "moat: %s\n", m.text != NULL ?
		    m.text : "");
		gwrelay_notice(s, line);
		break;
	}
	case GWCTL_UPSTREAM:
		if (nfds != 2 || s->upstream_msg != NULL) {
			set_fail(s, "the gateway could not reach the workspace");
			break;
		}
		s->pending_fds[0] = fds[0];
		s->pending_fds[1] = fds[1];
		nfds = 0;
		s->upstream_msg = json_incref(m.obj);
		break;
	case GWCTL_FAIL:
		set_fail(s, m.text);
		break;
	case GWCTL_CLOSE: {
		char line[512];

		snprintf(line, sizeof(line), "moat: %s\n", m.text != NULL ?
		    m.text : "the session was ended");
		gwrelay_close_all(s, line);
		s->closing = true;
		break;
	}
	default:
		break;
	}
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	gwctl_msg_clear(&m);
	return 0;
}

/* Reads the key memfd (at most MAX_KEY_FILE bytes) into a NUL-terminated
 * buffer the caller wipes and frees. */
static char *
read_key(int fd)
{
	char *k = calloc(1, MAX_KEY_FILE + 1);
	size_t got = 0;
	ssize_t n;

	if (k == NULL)
		return NULL;
	if (lseek(fd, 0, SEEK_SET) < 0)
		goto fail;
	while (got < MAX_KEY_FILE && (n = read(fd, k + got,
	    MAX_KEY_FILE - got)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto fail;
		}
		got += (size_t)n;
	}
	if (got == 0)
		goto fail;
	return k;
fail:
	explicit_bzero(k, MAX_KEY_FILE + 1);
	free(k);
	return NULL;
}

static bool
pin_matches(ssh_session u, const char *host_pub)
{
	char type[64], *b64 = NULL, *sp;
	ssh_key srv = NULL, pin = NULL;
	bool ok = false;

	if (host_pub == NULL || (sp = strchr(host_pub, ' ')) == NULL ||
	    (size_t)(sp - host_pub) >= sizeof(type))
		return false;
	memcpy(type, host_pub, (size_t)(sp - host_pub));
	type[sp - host_pub] = '\0';
	if ((b64 = strdup(sp + 1)) == NULL)
		return false;
	if ((sp = strchr(b64, ' ')) != NULL)
		*sp = '\0';
	if ((sp = strchr(b64, '\n')) != NULL)
		*sp = '\0';
	if (ssh_pki_import_pubkey_base64(b64, ssh_key_type_from_name(type),
	    &pin) == SSH_OK && ssh_get_server_publickey(u, &srv) == SSH_OK &&
	    ssh_key_cmp(srv, pin, SSH_KEY_CMP_PUBLIC) == 0)
		ok = true;
	ssh_key_free(srv);
	ssh_key_free(pin);
	free(b64);
	return ok;
}

static void
connect_upstream(struct gwsess *s)
{
	json_t *m = s->upstream_msg;
	const char *user = json_get_str(m, "user");
	const char *host_pub = json_get_str(m, "host_pub");
	int dial = s->pending_fds[0], kfd = s->pending_fds[1];
	char *ktext = NULL;
	ssh_key key = NULL;
	ssh_session u = NULL;
	long timeout = 20;
	bool no = false;
	int rc;

	s->upstream_msg = NULL;
	s->pending_fds[0] = s->pending_fds[1] = -1;
	if (user == NULL || host_pub == NULL) {
		set_fail(s, "the gateway could not reach the workspace");
		goto out;
	}
	if ((u = ssh_new()) == NULL)
		goto fail;
	if (ssh_options_set(u, SSH_OPTIONS_PROCESS_CONFIG, &no) != SSH_OK ||
	    ssh_options_set(u, SSH_OPTIONS_HOST, "workspace") != SSH_OK ||
	    ssh_options_set(u, SSH_OPTIONS_USER, user) != SSH_OK ||
	    ssh_options_set(u, SSH_OPTIONS_FD, &dial) != SSH_OK ||
	    ssh_options_set(u, SSH_OPTIONS_TIMEOUT, &timeout) != SSH_OK ||
	    ssh_options_set(u, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") != SSH_OK ||
	    ssh_options_set(u, SSH_OPTIONS_GLOBAL_KNOWNHOSTS, "/dev/null") != SSH_OK ||
	    ssh_options_set(u, SSH_OPTIONS_CIPHERS_C_S, "aes128-gcm@openssh.com,"
	    "aes256-gcm@openssh.com,chacha20-poly1305@openssh.com") != SSH_OK ||
	    ssh_options_set(u, SSH_OPTIONS_CIPHERS_S_C, "aes128-gcm@openssh.com,"
	    "aes256-gcm@openssh.com,chacha20-poly1305@openssh.com") != SSH_OK ||
	    ssh_options_set(u, SSH_OPTIONS_COMPRESSION, "no") != SSH_OK)
		goto fail;
	dial = -1;	/* the session owns it now */
	if ((rc = ssh_connect(u)) != SSH_OK) {
		log_warn(GWSESS_COMPONENT, "upstream connect failed",
		    LF_STR("error", ssh_get_error(u)));
		goto fail;
	}
	if (!pin_matches(u, host_pub)) {
		log_error(GWSESS_COMPONENT, "the workspace's host key does not "
		    "match the one recorded at create");
		gwsess_audit(s, "ssh.upstream.failed", "failure", json_pack(
		    "{s:s}", "reason", "host key mismatch"));
		set_fail(s, "the workspace's host key does not match; the "
		    "session was not opened");
		goto out;
	}
	if ((ktext = read_key(kfd)) == NULL ||
	    ssh_pki_import_privkey_base64(ktext, NULL, NULL, NULL, &key) !=
	    SSH_OK) {
		log_error(GWSESS_COMPONENT, "unusable access key");
		goto fail;
	}
	explicit_bzero(ktext, MAX_KEY_FILE + 1);
	free(ktext);
	ktext = NULL;
	close(kfd);
	kfd = -1;
	rc = ssh_userauth_publickey(u, NULL, key);
	ssh_key_free(key);
	key = NULL;
	if (rc != SSH_AUTH_SUCCESS) {
		log_warn(GWSESS_COMPONENT, "upstream authentication failed",
		    LF_STR("error", ssh_get_error(u)));
		goto fail;
	}
	ssh_callbacks_init(&s->ucbs);
	s->ucbs.userdata = s;
	s->ucbs.channel_open_request_auth_agent_function = gwrelay_agent_open;
	if (ssh_set_callbacks(u, &s->ucbs) != SSH_OK)
		goto fail;
	ssh_set_message_callback(u, gwrelay_upstream_message, s);
	ssh_set_blocking(u, 0);
	if (ssh_event_add_session(s->ev, u) != SSH_OK)
		goto fail;
	s->u = u;
	u = NULL;
	s->upstream_ready = true;
	goto out;
fail:
	gwsess_audit(s, "ssh.upstream.failed", "failure", json_pack("{s:s}",
	    "reason", u != NULL ? ssh_get_error(u) : "out of memory"));
	set_fail(s, "the gateway could not open an SSH connection to the "
	    "workspace");
out:
	if (ktext != NULL) {
		explicit_bzero(ktext, MAX_KEY_FILE + 1);
		free(ktext);
	}
	ssh_key_free(key);
	if (u != NULL) {
		ssh_disconnect(u);
		ssh_free(u);
	}
	if (dial >= 0)
		close(dial);
	if (kfd >= 0)
		close(kfd);
	json_decref(m);
}

void
gwsess_wait_upstream(struct gwsess *s, int timeout_ms)
{
	double end = gwsess_now() + timeout_ms / 1000.0;

	while (!s->upstream_ready && !s->upstream_failed && !s->done) {
		struct pollfd pfd = { .fd = GWSESS_CTL_FD, .events = POLLIN };
		double left = end - gwsess_now();
		int r;

		if (s->upstream_msg != NULL) {
			connect_upstream(s);
			continue;
		}
		if (left <= 0)
			break;
		r = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		(void)cb_ctl(GWSESS_CTL_FD, pfd.revents, s);
	}
}

static void
upstream_lost(struct gwsess *s)
{
	log_info(GWSESS_COMPONENT, "the workspace's sshd closed the connection");
	for (struct gwpair *p = s->pairs; p != NULL; p = p->next) {
		if (p->u != NULL && p->u_open) {
			p->u_eof = p->u_closed = true;
			p->u_close_sent = true;
		}
		p->u_opening = false;
		if (!p->u_open)
			p->u_failed = true;
	}
	s->upstream_ready = false;
	s->rforwards = 0;	/* the -R listeners went with the connection */
	set_fail(s, "the connection to the workspace closed");
}

static void
report_activity(struct gwsess *s, bool force)
{
	double now = gwsess_now();
	unsigned forwards = s->forwards_open + s->rforwards;
	json_t *m;

	/* Sent while bytes move and while a forward is open, quiet or not
	 * (the parent counts an open forward as the workspace's activity),
	 * and once more when the last forward has closed. */
	if (!force && (now - s->last_activity_sent < ACTIVITY_EVERY_S ||
	    (s->bytes_in == s->reported_in && s->bytes_out == s->reported_out &&
	    forwards == 0 && s->reported_forwards == 0)))
		return;
	m = json_pack("{s:s,s:I,s:I,s:i}", "t", "activity", "in",
	    (json_int_t)s->bytes_in, "out", (json_int_t)s->bytes_out,
	    "forwards", (int)forwards);
	gwsess_send(s, m);
	json_decref(m);
	s->reported_in = s->bytes_in;
	s->reported_out = s->bytes_out;
	s->reported_forwards = forwards;
	s->last_activity_sent = now;
}

static bool
down_alive(struct gwsess *s)
{
	int st = ssh_get_status(s->d);

	return ssh_is_connected(s->d) && (st & (SSH_CLOSED |
	    SSH_CLOSED_ERROR)) == 0;
}

static void
housekeeping(struct gwsess *s)
{
	double now = gwsess_now();

	if (s->upstream_ready && (!ssh_is_connected(s->u) ||
	    (ssh_get_status(s->u) & (SSH_CLOSED | SSH_CLOSED_ERROR)) != 0))
		upstream_lost(s);
	if (!down_alive(s)) {
		s->done = true;
		return;
	}
	if (!s->authed) {
		if (now - s->start > MAX_AUTH_TIME_S)
			s->done = true;
		return;
	}
	if (s->keepalive_s > 0 && now - s->last_keepalive >= s->keepalive_s &&
	    now - s->last_io >= s->keepalive_s) {
		/* libssh (0.10) keeps the last keepalive's answer until the
		 * next ssh_send_keepalive, which then only collects it and
		 * sends nothing: one call per interval sent a keepalive every
		 * other interval. A second call sends when the first only
		 * collected; when the first sent (or the client has not
		 * answered yet) it only looks for the answer. At worst (an
		 * answer read at once) two go out: harmless. */
		(void)ssh_send_keepalive(s->d);
		(void)ssh_send_keepalive(s->d);
		s->last_keepalive = now;
	}
	/* An open forward keeps the session: a channel (-L, -D, or a
	 * connection to an -R listener) or an -R listener itself. */
	if (s->idle_s > 0 && s->forwards_open == 0 && s->rforwards == 0 &&
	    !s->closing && now - s->last_io >= s->idle_s) {
		gwrelay_close_all(s, "moat: the session was idle too long\n");
		s->closing = true;
	}
	if (s->closing && s->pairs == NULL)
		s->done = true;
	report_activity(s, false);
}

static void
tcp_keepalive(int fd)
{
	int on = 1, idle = 60, intvl = 15, cnt = 4;

	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
}

static int
load_host_keys(struct gwsess *s, const json_t *init)
{
	const json_t *keys = json_object_get(init, "hostkeys"), *v;
	size_t i, loaded = 0;
	bool no = false;

	if (ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_PROCESS_CONFIG,
	    &no) != SSH_OK)
		return MOAT_ERR_INVAL;
	json_array_foreach(keys, i, v) {
		ssh_key k = NULL;

		if (!json_is_string(v))
			continue;
		if (ssh_pki_import_privkey_file(json_string_value(v), NULL, NULL,
		    NULL, &k) != SSH_OK) {
			log_error(GWSESS_COMPONENT, "cannot load a host key",
			    LF_STR("path", json_string_value(v)));
			continue;
		}
		if (ssh_bind_options_set(s->bind, SSH_BIND_OPTIONS_IMPORT_KEY,
		    k) != SSH_OK) {
			ssh_key_free(k);
			continue;
		}
		loaded++;
	}
	return loaded > 0 ? 0 : MOAT_ERR_NOTFOUND;
}

int
moatd_ssh_session_main(int argc, char **argv)
{
	struct gwsess s;
	struct gwctl_msg init;
	struct stat st;
	uint8_t *buf = NULL;
	int fds[GWCTL_MAX_FDS], code = 1, r;
	size_t nfds = 0;
	const char *lvl;

	(void)argc;
	(void)argv;
	memset(&s, 0, sizeof(s));
	memset(&init, 0, sizeof(init));
	s.pending_fds[0] = s.pending_fds[1] = -1;
	signal(SIGPIPE, SIG_IGN);
	if (fstat(GWSESS_CLIENT_FD, &st) != 0 || !S_ISSOCK(st.st_mode) ||
	    fstat(GWSESS_CTL_FD, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "moatd ssh-session: this command is run by the "
		    "gateway only (fd 3: the client, fd 4: the control channel)\n");
		return 2;
	}
	s.start = s.last_io = s.last_keepalive = s.last_activity_sent =
	    gwsess_now();
	if ((buf = malloc(GWCTL_MAX_MSG)) == NULL ||
	    (s.scratch = malloc(GWSESS_SCRATCH)) == NULL)
		goto out;
	if ((r = recv_parent(buf, &init, fds, &nfds, INIT_TIMEOUT_MS)) != 0 ||
	    init.type != GWCTL_INIT) {
		log_error(GWSESS_COMPONENT, "no init message from the parent");
		goto out;
	}
	for (size_t i = 0; i < nfds; i++)
		close(fds[i]);
	free(buf);
	buf = NULL;
	if ((lvl = json_get_str(init.obj, "log_level")) != NULL &&
	    log_level_parse(lvl) >= 0)
		log_set_level((enum log_level)log_level_parse(lvl));
	snprintf(s.client, sizeof(s.client), "%s", json_get_str(init.obj,
	    "client") != NULL ? json_get_str(init.obj, "client") : "");
	s.keepalive_s = (int)json_get_int(init.obj, "keepalive_s", 30);
	s.idle_s = (int)json_get_int(init.obj, "idle_s", 0);

	ssh_init();
	if ((s.bind = ssh_bind_new()) == NULL ||
	    load_host_keys(&s, init.obj) != 0) {
		log_error(GWSESS_COMPONENT, "no usable host key");
		goto out;
	}
	(void)ssh_bind_options_set(s.bind, SSH_BIND_OPTIONS_BANNER, "moat");
	drop_privileges();
	tcp_keepalive(GWSESS_CLIENT_FD);

	if ((s.d = ssh_new()) == NULL)
		goto out;
	if (ssh_bind_accept_fd(s.bind, s.d, GWSESS_CLIENT_FD) != SSH_OK) {
		log_warn(GWSESS_COMPONENT, "accept failed",
		    LF_STR("error", ssh_get_error(s.bind)));
		goto out;
	}
	ssh_callbacks_init(&s.scb);
	s.scb.userdata = &s;
	s.scb.auth_pubkey_function = cb_auth_pubkey;
	s.scb.channel_open_request_session_function = cb_open_session;
	ssh_set_server_callbacks(s.d, &s.scb);
	ssh_set_auth_methods(s.d, SSH_AUTH_METHOD_PUBLICKEY);
	ssh_set_message_callback(s.d, gwrelay_message, &s);
	if (ssh_handle_key_exchange(s.d) != SSH_OK) {
		log_info(GWSESS_COMPONENT, "key exchange failed",
		    LF_STR("client", s.client),
		    LF_STR("error", ssh_get_error(s.d)));
		goto out;
	}
	ssh_set_blocking(s.d, 0);
	if ((s.ev = ssh_event_new()) == NULL ||
	    ssh_event_add_session(s.ev, s.d) != SSH_OK ||
	    ssh_event_add_fd(s.ev, GWSESS_CTL_FD, POLLIN, cb_ctl, &s) != SSH_OK)
		goto out;

	while (!s.done) {
		bool more;

		if (s.upstream_msg != NULL)
			connect_upstream(&s);
		more = gwrelay_pump(&s);
		gwrelay_flush_recordings(&s, false);
		housekeeping(&s);
		if (s.done)
			break;
		if (ssh_event_dopoll(s.ev, more ? 0 : 250) == SSH_ERROR &&
		    !down_alive(&s))
			break;
	}
	code = 0;
out:
	if (s.d != NULL && s.ev != NULL) {
		gwrelay_close_all(&s, NULL);
		(void)gwrelay_pump(&s);
	}
	gwrelay_flush_recordings(&s, true);
	gwrelay_free_all(&s);
	if (s.authed)
		report_activity(&s, true);
	if (s.ev != NULL) {
		if (s.u != NULL)
			ssh_event_remove_session(s.ev, s.u);
		if (s.d != NULL)
			ssh_event_remove_session(s.ev, s.d);
		ssh_event_remove_fd(s.ev, GWSESS_CTL_FD);
		ssh_event_free(s.ev);
	}
	if (s.u != NULL) {
		ssh_disconnect(s.u);
		ssh_free(s.u);
	}
	if (s.d != NULL) {
		if (ssh_is_connected(s.d)) {
			(void)ssh_blocking_flush(s.d, 1000);
			ssh_disconnect(s.d);
		}
		ssh_free(s.d);
	}
	ssh_bind_free(s.bind);
	json_decref(s.upstream_msg);
	for (int i = 0; i < 2; i++)
		if (s.pending_fds[i] >= 0)
			close(s.pending_fds[i]);
	free(s.upstream_fail_msg);
	free(s.scratch);
	free(buf);
	gwctl_msg_clear(&init);
	ssh_finalize();
	return code;
}
