/*
 * gwrelay.c - the channel relay of an SSH session process: each channel
 * the client opens (session, direct-tcpip) or the workspace opens
 * (auth-agent) becomes a pair of a downstream and an upstream channel.
 *
 * Flow control. libssh hands arriving data to our data callbacks, which
 * copy at most the free room of the pair's queue (GWQ_CAP) and return the
 * count taken; libssh keeps the rest in its channel buffer and opens the
 * sender's window again only while that buffer is small, so a sender
 * that outruns the other leg stops when its window is used up. The main
 * loop writes a queue to the other leg no faster than that channel's
 * window allows. Bytes libssh kept back are taken later ("pulled") only
 * once the queue has room for all of them: a read from libssh re-opens
 * the sender's window in full, so pulling part of a full buffer would let
 * the buffer grow without bound. Memory per direction: at most GWQ_CAP
 * in our queue plus one libssh window (1.28 MB).
 *
 * Requests (pty, env, shell, exec, subsystem, window-change, signal) are
 * answered to the client at once from policy alone, and forwarded to the
 * workspace in order once the upstream channel is open; a start request
 * the workspace refuses ends the channel with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#include "gateway/gwsess_int.h"

#define REC_RAW_CHUNK 7000		/* raw bytes per asciicast event */
#define REC_MSG_MAX (48 * 1024)		/* asciicast text per control message */
#define REC_FLUSH_BYTES (32 * 1024)

/* --- queues --- */

static size_t
q_free(const struct gwq *q)
{
	return GWQ_CAP - q->len;
}

/* Appends n bytes (n <= q_free). */
static int
q_append(struct gwq *q, const void *data, size_t n)
{
	if (n == 0)
		return 0;
	if (q->head + q->len + n > q->cap) {
		if (q->head > 0 && q->len > 0)
			memmove(q->p, q->p + q->head, q->len);
		q->head = 0;
		if (q->len + n > q->cap) {
			size_t nc = q->cap == 0 ? 64 * 1024 : q->cap;
			uint8_t *np;

			while (nc < q->len + n)
				nc *= 2;
			if (nc > GWQ_CAP)
				nc = GWQ_CAP;
			if ((np = realloc(q->p, nc)) == NULL)
				return MOAT_ERR_NOMEM;
			q->p = np;
			q->cap = nc;
		}
	}
	memcpy(q->p + q->head + q->len, data, n);
	q->len += n;
	return 0;
}

static void
q_consume(struct gwq *q, size_t n)
{
	q->head += n;
	q->len -= n;
	if (q->len == 0)
		q->head = 0;
}

static void
q_free_mem(struct gwq *q)
{
	free(q->p);
	memset(q, 0, sizeof(*q));
}

/* --- small helpers --- */

static char *
dupstr(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static void
op_push(struct gwpair *p, enum gwop_kind kind, const char *a, const char *b,
    int cols, int rows)
{
	struct gwop *op = calloc(1, sizeof(*op));

	if (op == NULL)
		return;
	op->kind = kind;
	op->a = a != NULL ? dupstr(a) : NULL;
	op->b = b != NULL ? dupstr(b) : NULL;
	op->cols = cols;
	op->rows = rows;
	if (p->ops_tail != NULL)
		p->ops_tail->next = op;
	else
		p->ops = op;
	p->ops_tail = op;
}

static void
op_free(struct gwop *op)
{
	if (op == NULL)
		return;
	free(op->a);
	free(op->b);
	free(op);
}

static void
op_pop(struct gwpair *p)
{
	struct gwop *op = p->ops;

	if (op == NULL)
		return;
	p->ops = op->next;
	if (p->ops == NULL)
		p->ops_tail = NULL;
	op_free(op);
	p->op_in_flight = false;
}

/* Writes a notice to the client's stderr from inside a callback, before
 * a refusal is answered (a few bytes: the window is never that small on
 * a fresh channel; when it is, the notice is dropped). */
static void
notice_now(struct gwpair *p, const char *msg)
{
	char tmp[600];
	size_t n = strlen(msg);

	/* A terminal in raw mode needs CR LF. */
	if (p->pty && n > 0 && n < 512 && msg[n - 1] == '\n' &&
	    (n < 2 || msg[n - 2] != '\r')) {
		memcpy(tmp, msg, n - 1);
		memcpy(tmp + n - 1, "\r\n", 3);
		msg = tmp;
		n++;
	}

	if (p->d != NULL && ssh_channel_is_open(p->d) &&
	    ssh_channel_window_size(p->d) >= n)
		(void)ssh_channel_write_stderr(p->d, msg, (uint32_t)n);
}

static json_t *
pair_details(struct gwpair *p)
{
	json_t *d = json_pack("{s:i,s:s}", "channel", p->id, "kind", p->what);

	if (d == NULL)
		return NULL;
	if (p->command != NULL)
		json_object_set_new(d, "command", json_string(p->command));
	if (p->kind == GWP_SESSION) {
		json_object_set_new(d, "pty", json_boolean(p->pty));
		if (p->pty)
			json_object_set_new(d, "term", json_string(p->term));
	}
	if (p->kind == GWP_FORWARD || p->kind == GWP_REVERSE) {
		json_object_set_new(d, "host", json_string(p->dest_host));
		json_object_set_new(d, "port", json_integer(p->dest_port));
		json_object_set_new(d, "originator", json_string(p->orig_host));
	}
	return d;
}

/* --- recording --- */

static void
rec_data(struct gwpair *p, char code, const uint8_t *data, size_t len)
{
	double now;

	if (p->cast == NULL || !p->rec_begun)
		return;
	now = gwsess_now();
	while (len > 0) {
		size_t k = len > REC_RAW_CHUNK ? REC_RAW_CHUNK : len;

		if (asciicast_data(p->cast, &p->rec, now, code, data, k) != 0) {
			log_warn(GWSESS_COMPONENT, "recording buffer full; "
			    "output not recorded", LF_INT("channel", p->id));
			return;
		}
		data += k;
		len -= k;
	}
}

static void
rec_begin(struct gwpair *p)
{
	struct gwsess *s = p->s;
	struct buf hdr;
	json_t *m;

	if (!p->pty || p->cast != NULL)
		return;
	buf_init(&hdr, GWCTL_MAX_HEADER);
	buf_init(&p->rec, 8u * 1024 * 1024);
	if (asciicast_new(&p->cast, gwsess_now()) != 0 ||
	    asciicast_header(&hdr, (unsigned)p->cols, (unsigned)p->rows,
	    time(NULL), p->term[0] != '\0' ? p->term : NULL, NULL) != 0) {
		log_warn(GWSESS_COMPONENT, "cannot start a recording",
		    LF_INT("channel", p->id));
		buf_free(&hdr);
		return;
	}
	m = json_pack("{s:s,s:i,s:s#}", "t", "rec_begin", "ch", p->id,
	    "header", hdr.data, hdr.len);
	buf_free(&hdr);
	if (m != NULL) {
		gwsess_send(s, m);
		json_decref(m);
	}
	p->rec_begun = true;
	p->rec_last_flush = gwsess_now();
}

static void
rec_flush(struct gwpair *p)
{
	size_t off = 0;

	while (off < p->rec.len) {
		size_t n = p->rec.len - off, cut;
		json_t *m;

		if (n > REC_MSG_MAX) {
			/* Up to the last whole line that fits. */
			cut = REC_MSG_MAX;
			while (cut > 0 && p->rec.data[off + cut - 1] != '\n')
				cut--;
			if (cut == 0)
				cut = n;	/* one huge line: the parent refuses it */
			n = cut;
		}
		m = json_pack("{s:s,s:i,s:s#}", "t", "rec", "ch", p->id, "data",
		    p->rec.data + off, n);
		if (m != NULL) {
			gwsess_send(p->s, m);
			json_decref(m);
		}
		off += n;
	}
	buf_reset(&p->rec);
	p->rec_last_flush = gwsess_now();
}

static void
rec_end(struct gwpair *p)
{
	json_t *m;

	if (p->cast == NULL)
		return;
	if (p->rec_begun) {
		if (asciicast_finish(p->cast, &p->rec, gwsess_now()) != 0)
			log_warn(GWSESS_COMPONENT, "recording tail lost");
		rec_flush(p);
		m = json_pack("{s:s,s:i,s:f}", "t", "rec_end", "ch", p->id,
		    "duration", gwsess_now() - p->started_at);
		if (m != NULL) {
			gwsess_send(p->s, m);
			json_decref(m);
		}
	}
	asciicast_free(p->cast);
	p->cast = NULL;
	buf_free(&p->rec);
}

void
gwrelay_flush_recordings(struct gwsess *s, bool all)
{
	double now = gwsess_now();

	for (struct gwpair *p = s->pairs; p != NULL; p = p->next)
		if (p->rec_begun && p->rec.len > 0 && (all ||
		    p->rec.len >= REC_FLUSH_BYTES || now - p->rec_last_flush >= 1.0))
			rec_flush(p);
}

static void pair_fail(struct gwpair *p, const char *msg);

/* --- callbacks (never call libssh I/O from here) --- */

static int
cb_d_data(ssh_session session, ssh_channel ch, void *data, uint32_t len,
    int is_stderr, void *arg)
{
	struct gwpair *p = arg;
	size_t n = len;

	(void)session;
	(void)ch;
	(void)is_stderr;
	if (n > q_free(&p->q_du))
		n = q_free(&p->q_du);
	if (n > 0 && q_append(&p->q_du, data, n) != 0)
		n = 0;
	if (n > 0) {
		p->bytes_in += n;
		p->s->bytes_in += n;
		p->s->last_io = gwsess_now();
		if (p->s->set.record_input)
			rec_data(p, 'i', data, n);
	}
	if (n < len)
		p->pull_d = true;
	return (int)n;
}

static int
cb_u_data(ssh_session session, ssh_channel ch, void *data, uint32_t len,
    int is_stderr, void *arg)
{
	struct gwpair *p = arg;
	struct gwq *q = is_stderr ? &p->q_ude : &p->q_ud;
	size_t n = len;

	(void)session;
	(void)ch;
	if (n > q_free(q))
		n = q_free(q);
	if (n > 0 && q_append(q, data, n) != 0)
		n = 0;
	if (n > 0) {
		p->bytes_out += n;
		p->s->bytes_out += n;
		p->s->last_io = gwsess_now();
		rec_data(p, 'o', data, n);
	}
	if (n < len) {
		if (is_stderr)
			p->pull_ue = true;
		else
			p->pull_u = true;
	}
	return (int)n;
}

static void
cb_d_eof(ssh_session session, ssh_channel ch, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	p->d_eof = true;
}

static void
cb_d_close(ssh_session session, ssh_channel ch, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	p->d_eof = true;
	p->d_closed = true;
}

static void
cb_u_eof(ssh_session session, ssh_channel ch, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	p->u_eof = true;
}

static void
cb_u_close(ssh_session session, ssh_channel ch, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	p->u_eof = true;
	p->u_closed = true;
}

static void
cb_u_exit_status(ssh_session session, ssh_channel ch, int status, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	p->have_status = true;
	p->exit_status = status;
}

static void
cb_u_exit_signal(ssh_session session, ssh_channel ch, const char *sig,
    int core, const char *errmsg, const char *lang, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	(void)lang;
	free(p->sig);
	free(p->sig_msg);
	p->sig = dupstr(sig);
	p->sig_msg = dupstr(errmsg);
	p->sig_core = core != 0;
	p->have_signal = true;
}

static bool
env_allowed(const char *name)
{
	return strcmp(name, "LANG") == 0 || strncmp(name, "LC_", 3) == 0 ||
	    strcmp(name, "TERM") == 0 || strcmp(name, "COLORTERM") == 0;
}

static int
cb_d_env(ssh_session session, ssh_channel ch, const char *name,
    const char *value, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	if (name == NULL || value == NULL || !env_allowed(name) ||
	    strlen(value) > 1024 || p->start_queued)
		return -1;
	op_push(p, GWOP_ENV, name, value, 0, 0);
	return 0;
}

static int
cb_d_pty(ssh_session session, ssh_channel ch, const char *term, int cols,
    int rows, int px, int py, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	(void)px;
	(void)py;
	if (p->pty || p->start_queued || cols < 0 || rows < 0 ||
	    cols > 10000 || rows > 10000)
		return -1;
	p->pty = true;
	snprintf(p->term, sizeof(p->term), "%s", term != NULL ? term : "");
	p->cols = cols;
	p->rows = rows;
	op_push(p, GWOP_PTY, p->term, NULL, cols, rows);
	return 0;
}

static int
cb_d_winch(ssh_session session, ssh_channel ch, int cols, int rows, int px,
    int py, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	(void)px;
	(void)py;
	if (!p->pty || cols < 0 || rows < 0 || cols > 10000 || rows > 10000)
		return -1;
	p->cols = cols;
	p->rows = rows;
	if (p->cast != NULL && p->rec_begun &&
	    asciicast_resize(p->cast, &p->rec, gwsess_now(), (unsigned)cols,
	    (unsigned)rows) != 0)
		log_warn(GWSESS_COMPONENT, "resize not recorded");
	op_push(p, GWOP_WINCH, NULL, NULL, cols, rows);
	return 0;
}

static void
deny_request(struct gwpair *p, const char *what, const char *why,
    const char *type, const char *msg)
{
	json_t *d = pair_details(p);

	if (d != NULL) {
		json_object_set_new(d, "request", json_string(what));
		json_object_set_new(d, "reason", json_string(why));
	}
	gwsess_audit(p->s, type, "denied", d);
	if (msg != NULL)
		notice_now(p, msg);
}

static const char ft_msg[] = "moat: file transfer (sftp, scp) is turned off "
    "by your organization's policy\n";

/* Refuses a start request the way OpenSSH's client can show: the request
 * succeeds, the reason goes to stderr, the exit status is 1 and the
 * channel closes. (A request failure makes the client exit at once,
 * dropping whatever the server wrote to stderr before it.) */
static int
refuse_start(struct gwpair *p, const char *msg)
{
	p->start_queued = true;
	p->u_failed = true;
	p->fail_status = 1;
	pair_fail(p, msg);
	return 0;
}

/* "scp ..." in either direction (the legacy protocol: scp -t / scp -f). */
static bool
is_scp(const char *cmd)
{
	while (*cmd == ' ' || *cmd == '\t')
		cmd++;
	if (strncmp(cmd, "/usr/bin/", 9) == 0)
		cmd += 9;
	return strncmp(cmd, "scp", 3) == 0 && (cmd[3] == ' ' ||
	    cmd[3] == '\t' || cmd[3] == '\0');
}

static int
start_request(struct gwpair *p, enum gwop_kind kind, const char *arg)
{
	if (p->start_queued)
		return -1;
	p->start_queued = true;
	switch (kind) {
	case GWOP_SHELL:
		snprintf(p->what, sizeof(p->what), "shell");
		break;
	case GWOP_EXEC:
		snprintf(p->what, sizeof(p->what), "exec");
		p->command = dupstr(arg);
		break;
	default:
		snprintf(p->what, sizeof(p->what), "%s",
		    strcmp(arg, "sftp") == 0 ? "sftp" : "subsystem");
		p->command = dupstr(arg);
		break;
	}
	op_push(p, kind, arg, NULL, 0, 0);
	/* From now on (typed-ahead input included), not from the upstream's
	 * answer. */
	rec_begin(p);
	return 0;
}

static int
cb_d_shell(ssh_session session, ssh_channel ch, void *arg)
{
	(void)session;
	(void)ch;
	return start_request(arg, GWOP_SHELL, NULL);
}

static int
cb_d_exec(ssh_session session, ssh_channel ch, const char *cmd, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	if (cmd == NULL || strlen(cmd) > 32768 || p->start_queued)
		return -1;
	if (is_scp(cmd)) {
		json_t *d = pair_details(p);

		if (!p->s->set.file_transfer) {
			if (d != NULL)
				json_object_set_new(d, "command",
				    json_string(cmd));
			gwsess_audit(p->s, "file_transfer.denied", "denied", d);
			return refuse_start(p, ft_msg);
		}
		if (d != NULL) {
			json_object_set_new(d, "command", json_string(cmd));
			json_object_set_new(d, "protocol", json_string("scp"));
		}
		gwsess_audit(p->s, "file_transfer.allowed", "success", d);
	}
	return start_request(p, GWOP_EXEC, cmd);
}

static int
cb_d_subsystem(ssh_session session, ssh_channel ch, const char *name,
    void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	if (name == NULL || p->start_queued)
		return -1;
	if (strcmp(name, "sftp") != 0) {
		deny_request(p, "subsystem", "only the sftp subsystem is "
		    "relayed", "ssh.request.denied", NULL);
		return -1;
	}
	if (!p->s->set.file_transfer) {
		json_t *d = pair_details(p);

		if (d != NULL)
			json_object_set_new(d, "protocol", json_string("sftp"));
		gwsess_audit(p->s, "file_transfer.denied", "denied", d);
		return refuse_start(p, ft_msg);
	}
	gwsess_audit(p->s, "file_transfer.allowed", "success",
	    json_pack("{s:i,s:s}", "channel", p->id, "protocol", "sftp"));
	return start_request(p, GWOP_SUBSYSTEM, name);
}

static void
cb_d_signal(ssh_session session, ssh_channel ch, const char *sig, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	if (sig != NULL && strlen(sig) < 32)
		op_push(p, GWOP_SIGNAL, sig, NULL, 0, 0);
}

static void
cb_d_agent(ssh_session session, ssh_channel ch, void *arg)
{
	struct gwpair *p = arg;

	(void)session;
	(void)ch;
	if (!p->s->set.agent_forwarding || p->s->set.other_owner) {
		deny_request(p, "auth-agent-req", p->s->set.other_owner ?
		    "never on another user's workspace" : "agent forwarding "
		    "is turned off by policy", "ssh.request.denied", NULL);
		return;
	}
	op_push(p, GWOP_AGENT, NULL, NULL, 0, 0);
}

static struct gwpair *
pair_new(struct gwsess *s, enum gwpair_kind kind)
{
	struct gwpair *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->s = s;
	p->kind = kind;
	p->id = s->next_id++;
	p->started_at = gwsess_now();
	p->exit_status = -1;
	buf_init(&p->rec, 8u * 1024 * 1024);
	ssh_callbacks_init(&p->dcb);
	ssh_callbacks_init(&p->ucb);
	p->dcb.userdata = p;
	p->ucb.userdata = p;
	p->dcb.channel_data_function = cb_d_data;
	p->dcb.channel_eof_function = cb_d_eof;
	p->dcb.channel_close_function = cb_d_close;
	p->ucb.channel_data_function = cb_u_data;
	p->ucb.channel_eof_function = cb_u_eof;
	p->ucb.channel_close_function = cb_u_close;
	p->ucb.channel_exit_status_function = cb_u_exit_status;
	p->ucb.channel_exit_signal_function = cb_u_exit_signal;
	p->next = s->pairs;
	s->pairs = p;
	return p;
}

struct gwpair *
gwrelay_new_session(struct gwsess *s, ssh_channel d)
{
	struct gwpair *p = pair_new(s, GWP_SESSION);

	if (p == NULL)
		return NULL;
	p->d = d;
	p->d_open = true;
	snprintf(p->what, sizeof(p->what), "session");
	p->dcb.channel_pty_request_function = cb_d_pty;
	p->dcb.channel_pty_window_change_function = cb_d_winch;
	p->dcb.channel_env_request_function = cb_d_env;
	p->dcb.channel_shell_request_function = cb_d_shell;
	p->dcb.channel_exec_request_function = cb_d_exec;
	p->dcb.channel_subsystem_request_function = cb_d_subsystem;
	p->dcb.channel_signal_function = cb_d_signal;
	p->dcb.channel_auth_agent_req_function = cb_d_agent;
	if (s->upstream_ready || s->upstream_failed)
		p->progress_seen = s->nprogress;
	if (ssh_set_channel_callbacks(d, &p->dcb) != SSH_OK)
		log_warn(GWSESS_COMPONENT, "cannot set channel callbacks");
	return p;
}

/* Destination of a direct-tcpip channel: loopback inside the workspace. */
static bool
dest_allowed(const char *host)
{
	return strcmp(host, "127.0.0.1") == 0 || strcmp(host, "localhost") == 0 ||
	    strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0 ||
	    strcmp(host, "ip6-localhost") == 0;
}

static int
open_forward(struct gwsess *s, ssh_message msg)
{
	const char *host = ssh_message_channel_request_open_destination(msg);
	int port = ssh_message_channel_request_open_destination_port(msg);
	const char *orig = ssh_message_channel_request_open_originator(msg);
	int oport = ssh_message_channel_request_open_originator_port(msg);
	json_t *d;
	struct gwpair *p;
	ssh_channel ch;

	if (host == NULL)
		host = "";
	if (!s->set.port_forwarding || !dest_allowed(host) || port <= 0 ||
	    port > 65535) {
		d = json_pack("{s:s,s:i,s:s}", "host", host, "port", port,
		    "reason", !s->set.port_forwarding ? "port forwarding is "
		    "turned off by policy" : "only loopback destinations "
		    "inside the workspace");
		gwsess_audit(s, "port_forward.denied", "denied", d);
		return 1;	/* open failure: administratively prohibited */
	}
	if ((p = pair_new(s, GWP_FORWARD)) == NULL)
		return 1;
	snprintf(p->what, sizeof(p->what), "forward");
	snprintf(p->dest_host, sizeof(p->dest_host), "%s",
	    strcmp(host, "localhost") == 0 ? "127.0.0.1" : host);
	p->dest_port = port;
	snprintf(p->orig_host, sizeof(p->orig_host), "%s",
	    orig != NULL ? orig : "127.0.0.1");
	p->orig_port = oport > 0 && oport <= 65535 ? oport : 0;
	p->started = true;	/* data flows once the upstream channel opens */
	if ((ch = ssh_message_channel_request_open_reply_accept(msg)) == NULL) {
		p->d_closed = p->d_close_sent = true;
		p->u_failed = true;
		return 0;
	}
	p->d = ch;
	p->d_open = true;
	if (ssh_set_channel_callbacks(ch, &p->dcb) != SSH_OK)
		log_warn(GWSESS_COMPONENT, "cannot set channel callbacks");
	s->forwards_open++;
	return 0;
}

/* -R: a listener inside the workspace (its sshd binds it, on loopback
 * unless its GatewayPorts says otherwise). The upstream request is made
 * here, blocking: libssh answers the client when this returns, and the
 * client's socket is locked while its callback runs, so only the upstream
 * leg's packets are handled meanwhile (their callbacks only queue). */
static int
remote_forward(struct gwsess *s, ssh_message msg, bool open)
{
	const char *addr = ssh_message_global_request_address(msg);
	int port = ssh_message_global_request_port(msg), bound = 0, rc;
	json_t *d;

	if (addr == NULL)
		addr = "";
	d = json_pack("{s:s,s:s,s:i}", "request", open ? "tcpip-forward" :
	    "cancel-tcpip-forward", "host", addr, "port", port);
	/* Right after login the workspace may still be starting. */
	if (open && s->set.port_forwarding && !s->upstream_ready)
		gwsess_wait_upstream(s, 180000);
	if (open && (!s->set.port_forwarding || !s->upstream_ready ||
	    port < 0 || port > 65535)) {
		if (d != NULL)
			json_object_set_new(d, "reason", json_string(
			    !s->set.port_forwarding ? "port forwarding is turned "
			    "off by policy" : "the workspace is not connected yet"));
		gwsess_audit(s, "port_forward.denied", "denied", d);
		return 1;
	}
	if (!s->upstream_ready) {
		json_decref(d);
		return 1;
	}
	ssh_set_blocking(s->u, 1);
	rc = open ? ssh_channel_listen_forward(s->u, addr, port, &bound) :
	    ssh_channel_cancel_forward(s->u, addr, port);
	ssh_set_blocking(s->u, 0);
	if (rc != SSH_OK) {
		if (d != NULL)
			json_object_set_new(d, "reason", json_string("the "
			    "workspace refused it"));
		gwsess_audit(s, open ? "port_forward.open" : "port_forward.close",
		    "failure", d);
		return 1;
	}
	if (open)
		s->rforwards++;
	else if (s->rforwards > 0)
		s->rforwards--;
	if (d != NULL && open && port == 0)
		json_object_set_new(d, "bound_port", json_integer(bound));
	gwsess_audit(s, open ? "port_forward.open" : "port_forward.close",
	    "success", d);
	(void)ssh_message_global_request_reply_success(msg,
	    (uint16_t)(port == 0 ? bound : port));
	return 0;
}

int
gwrelay_upstream_message(ssh_session session, ssh_message msg, void *arg)
{
	struct gwsess *s = arg;
	struct gwpair *p;
	ssh_channel ch;
	const char *host, *orig;

	(void)session;
	if (ssh_message_type(msg) != SSH_REQUEST_CHANNEL_OPEN ||
	    ssh_message_subtype(msg) != SSH_CHANNEL_FORWARDED_TCPIP ||
	    s->rforwards == 0 || !s->set.port_forwarding)
		return 1;
	if ((p = pair_new(s, GWP_REVERSE)) == NULL)
		return 1;
	snprintf(p->what, sizeof(p->what), "reverse");
	host = ssh_message_channel_request_open_destination(msg);
	orig = ssh_message_channel_request_open_originator(msg);
	snprintf(p->dest_host, sizeof(p->dest_host), "%s", host != NULL ?
	    host : "");
	p->dest_port = ssh_message_channel_request_open_destination_port(msg);
	snprintf(p->orig_host, sizeof(p->orig_host), "%s", orig != NULL ?
	    orig : "127.0.0.1");
	p->orig_port = ssh_message_channel_request_open_originator_port(msg);
	p->started = true;
	if ((ch = ssh_message_channel_request_open_reply_accept(msg)) == NULL) {
		p->d_closed = p->d_close_sent = p->d_eof = true;
		p->u_failed = true;
		return 0;
	}
	p->u = ch;
	p->u_open = true;
	if (ssh_set_channel_callbacks(ch, &p->ucb) != SSH_OK)
		log_warn(GWSESS_COMPONENT, "cannot set channel callbacks");
	s->forwards_open++;
	return 0;
}

int
gwrelay_message(ssh_session session, ssh_message msg, void *arg)
{
	struct gwsess *s = arg;
	int type = ssh_message_type(msg), sub = ssh_message_subtype(msg);

	(void)session;
	if (type == SSH_REQUEST_CHANNEL_OPEN && sub == SSH_CHANNEL_DIRECT_TCPIP)
		return open_forward(s, msg);
	if (type == SSH_REQUEST_GLOBAL && (sub == SSH_GLOBAL_REQUEST_TCPIP_FORWARD
	    || sub == SSH_GLOBAL_REQUEST_CANCEL_TCPIP_FORWARD))
		return remote_forward(s, msg, sub == SSH_GLOBAL_REQUEST_TCPIP_FORWARD);
	if (type == SSH_REQUEST_CHANNEL && sub == SSH_CHANNEL_REQUEST_X11) {
		gwsess_audit(s, "ssh.request.denied", "denied", json_pack(
		    "{s:s,s:s}", "request", "x11-req", "reason",
		    "X11 forwarding is never relayed"));
		return 1;
	}
	if (type == SSH_REQUEST_CHANNEL_OPEN) {
		gwsess_audit(s, "ssh.request.denied", "denied", json_pack(
		    "{s:s,s:i}", "request", "channel-open", "subtype", sub));
		return 1;
	}
	/* keepalive@openssh.com and anything unknown: the default answer. */
	return 1;
}

ssh_channel
gwrelay_agent_open(ssh_session session, void *arg)
{
	struct gwsess *s = arg;
	struct gwpair *p;
	ssh_channel u;

	if (!s->set.agent_forwarding || s->set.other_owner ||
	    (u = ssh_channel_new(session)) == NULL)
		return NULL;
	if ((p = pair_new(s, GWP_AGENT)) == NULL) {
		ssh_channel_free(u);
		return NULL;
	}
	snprintf(p->what, sizeof(p->what), "agent");
	p->u = u;
	p->u_open = true;
	p->started = true;
	if (ssh_set_channel_callbacks(u, &p->ucb) != SSH_OK)
		log_warn(GWSESS_COMPONENT, "cannot set channel callbacks");
	return u;
}

/* --- the main loop's work --- */

/* Writes from q to ch (stderr or not) within ch's window. Returns bytes
 * written, or -1 when ch failed. */
static long
drain(struct gwsess *s, struct gwq *q, ssh_channel ch, bool to_stderr)
{
	long total = 0;

	while (q->len > 0) {
		uint32_t win;
		size_t k;
		int w;

		if (ch == NULL || !ssh_channel_is_open(ch))
			return -1;
		win = ssh_channel_window_size(ch);
		if (win == 0)
			break;
		k = q->len < win ? q->len : win;
		if (k > GWSESS_SCRATCH)
			k = GWSESS_SCRATCH;
		memcpy(s->scratch, q->p + q->head, k);
		w = to_stderr ? ssh_channel_write_stderr(ch, s->scratch,
		    (uint32_t)k) : ssh_channel_write(ch, s->scratch, (uint32_t)k);
		if (w == SSH_ERROR)
			return -1;
		if (w <= 0)
			break;
		q_consume(q, (size_t)w);
		total += w;
	}
	return total;
}

/* Takes what libssh kept back on ch, when the queue has room for all of
 * it (see the top of the file). Returns true when something moved. */
static bool
pull(struct gwsess *s, struct gwpair *p, ssh_channel ch, int is_stderr,
    struct gwq *q, bool *flag, bool is_down)
{
	int avail;
	bool moved = false;

	if (!*flag || ch == NULL)
		return false;
	avail = ssh_channel_poll(ch, is_stderr);
	if (avail <= 0) {
		*flag = false;
		return false;
	}
	if ((size_t)avail > q_free(q))
		return false;
	while (avail > 0) {
		uint32_t k = (uint32_t)avail < GWSESS_SCRATCH ?
		    (uint32_t)avail : GWSESS_SCRATCH;
		int n = ssh_channel_read_nonblocking(ch, s->scratch, k,
		    is_stderr);

		if (n <= 0)
			break;
		if (q_append(q, s->scratch, (size_t)n) != 0)
			break;
		if (is_down) {
			p->bytes_in += (uint64_t)n;
			s->bytes_in += (uint64_t)n;
			if (s->set.record_input)
				rec_data(p, 'i', s->scratch, (size_t)n);
		} else {
			p->bytes_out += (uint64_t)n;
			s->bytes_out += (uint64_t)n;
			rec_data(p, 'o', s->scratch, (size_t)n);
		}
		s->last_io = gwsess_now();
		avail -= n;
		moved = true;
	}
	*flag = false;
	return moved;
}

static void
session_started(struct gwpair *p)
{
	p->started = true;
	p->started_at = gwsess_now();
	gwsess_audit(p->s, "session.start", "success", pair_details(p));
	rec_begin(p);
}

/* One request upstream. 1 done, 0 wait, -1 failed. */
static int
do_op(struct gwpair *p, struct gwop *op)
{
	int rc = SSH_ERROR;

	switch (op->kind) {
	case GWOP_PTY:
		rc = ssh_channel_request_pty_size(p->u, op->a, op->cols,
		    op->rows);
		break;
	case GWOP_ENV:
		rc = ssh_channel_request_env(p->u, op->a, op->b);
		break;
	case GWOP_SHELL:
		rc = ssh_channel_request_shell(p->u);
		break;
	case GWOP_EXEC:
		rc = ssh_channel_request_exec(p->u, op->a);
		break;
	case GWOP_SUBSYSTEM:
		rc = ssh_channel_request_subsystem(p->u, op->a);
		break;
	case GWOP_WINCH:
		rc = ssh_channel_change_pty_size(p->u, op->cols, op->rows);
		break;
	case GWOP_SIGNAL:
		rc = ssh_channel_request_send_signal(p->u, op->a);
		break;
	case GWOP_AGENT:
		rc = ssh_channel_request_auth_agent(p->u);
		break;
	}
	if (rc == SSH_AGAIN)
		return 0;
	return rc == SSH_OK ? 1 : -1;
}

static void
pair_fail(struct gwpair *p, const char *msg)
{
	if (p->fail_msg == NULL)
		p->fail_msg = dupstr(msg);
}

static bool
run_ops(struct gwpair *p)
{
	bool moved = false;

	while (p->u_open && p->ops != NULL && p->fail_msg == NULL) {
		struct gwop *op = p->ops;
		int r = do_op(p, op);

		if (r == 0)
			break;
		moved = true;
		if (op->kind == GWOP_SHELL || op->kind == GWOP_EXEC ||
		    op->kind == GWOP_SUBSYSTEM) {
			if (r < 0) {
				json_t *d = pair_details(p);

				gwsess_audit(p->s, "session.start", "failure", d);
				pair_fail(p, "moat: the workspace refused the "
				    "request\n");
			} else {
				session_started(p);
			}
		} else if (r < 0 && op->kind == GWOP_PTY) {
			log_info(GWSESS_COMPONENT, "workspace refused a pty");
		}
		op_pop(p);
	}
	return moved;
}

static void
open_upstream(struct gwpair *p)
{
	struct gwsess *s = p->s;
	int rc;

	if (p->kind == GWP_AGENT || p->kind == GWP_REVERSE || p->u_failed ||
	    p->u_open || p->d_closed)
		return;
	if (s->upstream_failed) {
		p->u_failed = true;
		if (p->kind == GWP_SESSION)
			pair_fail(p, s->upstream_fail_msg != NULL ?
			    s->upstream_fail_msg : "moat: the workspace is "
			    "unavailable\n");
		return;
	}
	if (!s->upstream_ready)
		return;
	if (p->u == NULL) {
		if ((p->u = ssh_channel_new(s->u)) == NULL) {
			p->u_failed = true;
			pair_fail(p, "moat: cannot open a channel in the "
			    "workspace\n");
			return;
		}
		if (ssh_set_channel_callbacks(p->u, &p->ucb) != SSH_OK)
			log_warn(GWSESS_COMPONENT, "cannot set channel callbacks");
		p->u_opening = true;
	}
	if (!p->u_opening)
		return;
	rc = p->kind == GWP_SESSION ? ssh_channel_open_session(p->u) :
	    ssh_channel_open_forward(p->u, p->dest_host, p->dest_port,
	    p->orig_host, p->orig_port);
	if (rc == SSH_AGAIN)
		return;
	p->u_opening = false;
	if (rc == SSH_OK) {
		p->u_open = true;
		if (p->kind == GWP_FORWARD)
			gwsess_audit(s, "port_forward.open", "success",
			    pair_details(p));
		return;
	}
	p->u_failed = true;
	if (p->kind == GWP_FORWARD) {
		gwsess_audit(s, "port_forward.open", "failure", pair_details(p));
		p->d_eof = true;
	} else {
		pair_fail(p, "moat: cannot open a session in the workspace\n");
	}
}

/* Agent pairs: the client's side is opened by us. */
static void
open_downstream(struct gwpair *p)
{
	int rc;

	if ((p->kind != GWP_AGENT && p->kind != GWP_REVERSE) || p->d_open ||
	    p->d_closed)
		return;
	if (p->d == NULL) {
		if ((p->d = ssh_channel_new(p->s->d)) == NULL) {
			p->d_closed = p->d_close_sent = true;
			p->d_eof = true;
			return;
		}
		if (ssh_set_channel_callbacks(p->d, &p->dcb) != SSH_OK)
			log_warn(GWSESS_COMPONENT, "cannot set channel callbacks");
		p->d_opening = true;
	}
	rc = p->kind == GWP_AGENT ? ssh_channel_open_auth_agent(p->d) :
	    ssh_channel_open_reverse_forward(p->d, p->dest_host, p->dest_port,
	    p->orig_host, p->orig_port);
	if (rc == SSH_AGAIN)
		return;
	p->d_opening = false;
	if (rc == SSH_OK) {
		p->d_open = true;
		if (p->kind == GWP_AGENT)
			gwsess_audit(p->s, "agent_forward.open", "success",
			    json_pack("{s:i}", "channel", p->id));
	} else {
		p->d_closed = p->d_close_sent = true;
		p->d_eof = true;
	}
}

static void
show_progress(struct gwpair *p)
{
	struct gwsess *s = p->s;

	if (p->kind != GWP_SESSION || p->d == NULL || !ssh_channel_is_open(p->d))
		return;
	while (p->progress_seen < s->nprogress) {
		const char *line = s->progress[p->progress_seen];
		size_t n = strlen(line);

		char tmp[600];

		/* A terminal in raw mode needs CR LF. */
		if (p->pty && n > 0 && line[n - 1] == '\n' && n < 512) {
			memcpy(tmp, line, n - 1);
			memcpy(tmp + n - 1, "\r\n", 2);
			line = tmp;
			n++;
		}
		if (ssh_channel_window_size(p->d) < n)
			return;
		if (ssh_channel_write_stderr(p->d, line, (uint32_t)n) == SSH_ERROR)
			return;
		p->progress_seen++;
	}
}

static bool
pair_done(const struct gwpair *p)
{
	bool d_done = p->d == NULL || (p->d_close_sent &&
	    (p->d_closed || !p->d_open));
	bool u_done = p->u == NULL || p->u_failed || !p->u_open ||
	    (p->u_close_sent && p->u_closed);

	return d_done && u_done && !p->u_opening;
}

static void
pair_finish(struct gwsess *s, struct gwpair *p)
{
	json_t *d = pair_details(p);
	double dur = gwsess_now() - p->started_at;

	if (d != NULL) {
		json_object_set_new(d, "bytes_in", json_integer(
		    (json_int_t)p->bytes_in));
		json_object_set_new(d, "bytes_out", json_integer(
		    (json_int_t)p->bytes_out));
		json_object_set_new(d, "duration", json_real(dur));
		if (p->have_status)
			json_object_set_new(d, "exit_status",
			    json_integer(p->exit_status));
		if (p->have_signal)
			json_object_set_new(d, "exit_signal",
			    json_string(p->sig));
	}
	rec_end(p);
	if (p->kind == GWP_SESSION && p->started)
		gwsess_audit(s, "session.end", "success", d);
	else if ((p->kind == GWP_FORWARD || p->kind == GWP_REVERSE) &&
	    p->u_open && p->d_open)
		gwsess_audit(s, "port_forward.close", "success", d);
	else
		json_decref(d);
	if ((p->kind == GWP_FORWARD || p->kind == GWP_REVERSE) &&
	    s->forwards_open > 0)
		s->forwards_open--;
}

static void
pair_free(struct gwpair *p)
{
	struct gwop *op, *next;

	if (p->d != NULL) {
		ssh_remove_channel_callbacks(p->d, &p->dcb);
		ssh_channel_free(p->d);
	}
	if (p->u != NULL) {
		ssh_remove_channel_callbacks(p->u, &p->ucb);
		ssh_channel_free(p->u);
	}
	for (op = p->ops; op != NULL; op = next) {
		next = op->next;
		op_free(op);
	}
	q_free_mem(&p->q_du);
	q_free_mem(&p->q_ud);
	q_free_mem(&p->q_ude);
	asciicast_free(p->cast);
	buf_free(&p->rec);
	free(p->sig);
	free(p->sig_msg);
	free(p->fail_msg);
	free(p->command);
	free(p);
}

static void
close_d(struct gwpair *p)
{
	if (!p->d_close_sent && p->d != NULL) {
		if (p->d_open)
			(void)ssh_channel_close(p->d);
		p->d_close_sent = true;
	}
}

static void
close_u(struct gwpair *p)
{
	if (!p->u_close_sent && p->u != NULL && p->u_open) {
		(void)ssh_channel_close(p->u);
		p->u_close_sent = true;
	}
}

static bool
pump_pair(struct gwsess *s, struct gwpair *p)
{
	bool moved = false;
	long w;

	open_upstream(p);
	open_downstream(p);
	show_progress(p);
	if (run_ops(p))
		moved = true;

	/* A session that cannot go on: say why, exit status, close. */
	if (p->fail_msg != NULL && p->d != NULL && p->d_open &&
	    !p->d_close_sent) {
		notice_now(p, p->fail_msg);
		(void)ssh_channel_request_send_exit_status(p->d,
		    p->fail_status != 0 ? p->fail_status : 255);
		(void)ssh_channel_send_eof(p->d);
		close_d(p);
		close_u(p);
		return true;
	}

	/* client -> workspace */
	if (p->u_open && p->started && !p->u_close_sent) {
		if ((w = drain(s, &p->q_du, p->u, false)) < 0)
			p->u_closed = p->u_eof = true;
		else if (w > 0)
			moved = true;
		if (pull(s, p, p->d, 0, &p->q_du, &p->pull_d, true))
			moved = true;
		if (p->d_eof && !p->u_eof_sent && p->q_du.len == 0 &&
		    !p->pull_d) {
			(void)ssh_channel_send_eof(p->u);
			p->u_eof_sent = true;
		}
	}
	/* workspace -> client */
	if (p->d_open && !p->d_close_sent) {
		if ((w = drain(s, &p->q_ud, p->d, false)) < 0 ||
		    (w >= 0 && drain(s, &p->q_ude, p->d, true) < 0)) {
			p->d_closed = p->d_eof = true;
		} else if (w > 0) {
			moved = true;
		}
		if (pull(s, p, p->u, 0, &p->q_ud, &p->pull_u, false))
			moved = true;
		if (pull(s, p, p->u, 1, &p->q_ude, &p->pull_ue, false))
			moved = true;
		if ((p->u_eof || p->u_failed) && p->q_ud.len == 0 &&
		    p->q_ude.len == 0 && !p->pull_u && !p->pull_ue &&
		    !p->d_closed) {
			if (!p->d_eof_sent) {
				(void)ssh_channel_send_eof(p->d);
				p->d_eof_sent = true;
			}
			/* sshd may send the exit status after its EOF, never
			 * after its close. */
			if (p->u_closed || p->u_failed) {
				if (p->kind == GWP_SESSION && !p->status_sent) {
					if (p->have_status)
						(void)ssh_channel_request_send_exit_status(
						    p->d, p->exit_status);
					if (p->have_signal)
						(void)ssh_channel_request_send_exit_signal(
						    p->d, p->sig, p->sig_core ? 1 : 0,
						    p->sig_msg, "");
					p->status_sent = true;
				}
				close_d(p);
				moved = true;
			}
		}
	}
	/* The client closed: close upstream too. */
	if (p->d_closed) {
		close_u(p);
		close_d(p);
	}
	/* Upstream closed and the client has everything. */
	if ((p->u_closed || p->u_failed) && p->d_eof_sent && p->status_sent)
		close_d(p);
	if ((p->u_closed || p->u_failed) && p->d_eof_sent &&
	    p->kind != GWP_SESSION)
		close_d(p);
	if (p->u_closed && !p->u_close_sent && p->d_close_sent)
		close_u(p);
	return moved;
}

bool
gwrelay_pump(struct gwsess *s)
{
	struct gwpair **pp = &s->pairs;
	bool more = false;

	while (*pp != NULL) {
		struct gwpair *p = *pp;

		if (pump_pair(s, p))
			more = true;
		if (pair_done(p)) {
			*pp = p->next;
			pair_finish(s, p);
			pair_free(p);
			continue;
		}
		pp = &p->next;
	}
	return more;
}

void
gwrelay_notice(struct gwsess *s, const char *text)
{
	char **np = realloc(s->progress, (s->nprogress + 1) * sizeof(*np));

	if (np == NULL)
		return;
	s->progress = np;
	if ((np[s->nprogress] = dupstr(text)) != NULL)
		s->nprogress++;
}

void
gwrelay_close_all(struct gwsess *s, const char *msg)
{
	for (struct gwpair *p = s->pairs; p != NULL; p = p->next) {
		if (msg != NULL && p->kind == GWP_SESSION)
			notice_now(p, msg);
		if (p->kind == GWP_SESSION && p->d != NULL && p->d_open &&
		    !p->d_close_sent) {
			(void)ssh_channel_request_send_exit_status(p->d, 255);
			(void)ssh_channel_send_eof(p->d);
		}
		close_d(p);
		close_u(p);
	}
}

void
gwrelay_free_all(struct gwsess *s)
{
	while (s->pairs != NULL) {
		struct gwpair *p = s->pairs;

		s->pairs = p->next;
		pair_finish(s, p);
		pair_free(p);
	}
	for (size_t i = 0; i < s->nprogress; i++)
		free(s->progress[i]);
	free(s->progress);
	s->progress = NULL;
	s->nprogress = 0;
}
