/*
 * test_agent_client.c - unit tests for agent_client.c against a fake agent
 * on a real listening unix socket in a mkdtemp directory: STATUS, SECRETS,
 * LOG, ACTIVITY and DIAL (bytes relayed after OK, none swallowed) work on a
 * good socket; a symlink to another listening socket, a regular file, a
 * FIFO and a symlinked agent directory are refused without touching the
 * target; a stale socket, a peer sending an oversized length, a malformed
 * frame, an unexpected type, an ERR or closing early gives a clear error;
 * a peer that never answers times out.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "orchestrator/agent_client.h"

enum fake_mode {
	FAKE_GOOD,		/* answers each request properly */
	FAKE_OVERSIZE,		/* length 0x7fffffff */
	FAKE_MALFORMED,		/* a frame of an unknown type */
	FAKE_WRONG_TYPE,	/* OK to a STATUS */
	FAKE_ERR,		/* ERR "no such thing" */
	FAKE_CLOSE,		/* closes after reading the request */
	FAKE_SILENT		/* reads the request, never answers */
};

struct fake {
	char dir[64];
	char path[128];
	int lfd;
	enum fake_mode mode;
	pthread_t th;
	struct agentproto_msg req;	/* last request seen */
	uint8_t reqbuf[4 + AGENTPROTO_MAX_FRAME];
	char secret0[64];		/* value of the first secret seen */
};

static int
listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 8), 0);
	return fd;
}

static int
read_n(int fd, uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = read(fd, p, n);

		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static void
send_msg(int fd, const struct agentproto_msg *m)
{
	static uint8_t out[4 + AGENTPROTO_MAX_FRAME];
	long n = agentproto_encode(m, out, sizeof(out));

	if (n > 0 && write(fd, out, (size_t)n) != n)
		fprintf(stderr, "fake: short write\n");
}

/* Serves one connection per mode; for DIAL echoes bytes uppercased. */
static void *
fake_main(void *arg)
{
	struct fake *f = arg;
	static const uint8_t logtext[] = "hello log\n";
	struct agentproto_msg rep;
	uint32_t n;
	int c = accept(f->lfd, NULL, NULL);

	if (c < 0)
		return NULL;
	if (read_n(c, f->reqbuf, 4) != 0)
		goto out;
	n = (uint32_t)f->reqbuf[0] << 24 | (uint32_t)f->reqbuf[1] << 16 |
	    (uint32_t)f->reqbuf[2] << 8 | f->reqbuf[3];
	if (n == 0 || n > AGENTPROTO_MAX_FRAME ||
	    read_n(c, f->reqbuf + 4, n) != 0 ||
	    agentproto_decode(f->reqbuf, 4 + n, &f->req, NULL, 0) <= 0)
		goto out;
	if (f->req.nsecrets > 0 && f->req.secrets[0].value_len < 64) {
		memcpy(f->secret0, f->req.secrets[0].value,
		    f->req.secrets[0].value_len);
		f->secret0[f->req.secrets[0].value_len] = '\0';
	}
	memset(&rep, 0, sizeof(rep));
	switch (f->mode) {
	case FAKE_GOOD:
		switch (f->req.type) {
		case AGENTPROTO_STATUS:
			rep.type = AGENTPROTO_STATUS_REPLY;
			rep.version = AGENTPROTO_VERSION;
			rep.sshd_up = true;
			rep.idle_seconds = 12;
			rep.connections = 2;
			rep.startup = AGENTPROTO_STARTUP_FAILED;
			rep.startup_exit = 3;
			send_msg(c, &rep);
			break;
		case AGENTPROTO_LOG:
			rep.type = AGENTPROTO_LOG_REPLY;
			rep.offset = f->req.offset;
			rep.data = logtext;
			rep.data_len = sizeof(logtext) - 1;
			rep.log_end = f->req.offset + 100;
			send_msg(c, &rep);
			break;
		case AGENTPROTO_DIAL: {
			uint8_t b[256];
			ssize_t k;

			rep.type = AGENTPROTO_OK;
			send_msg(c, &rep);
			/* The banner is sent right behind the OK, in the same
			 * segment if the kernel likes: the client must keep it. */
			if (write(c, "SSH-2.0-fake\r\n", 14) != 14)
				break;
			while ((k = read(c, b, sizeof(b))) > 0) {
				for (ssize_t i = 0; i < k; i++)
					if (b[i] >= 'a' && b[i] <= 'z')
						b[i] = (uint8_t)(b[i] - 32);
				if (write(c, b, (size_t)k) != k)
					break;
			}
			break;
		}
		default:
			rep.type = AGENTPROTO_OK;
			send_msg(c, &rep);
			break;
		}
		break;
	case FAKE_OVERSIZE:
		if (write(c, "\x7f\xff\xff\xff\x42", 5) != 5)
			break;
		break;
	case FAKE_MALFORMED:
		if (write(c, "\x00\x00\x00\x01\x63", 5) != 5)
			break;
		break;
	case FAKE_WRONG_TYPE:
		rep.type = AGENTPROTO_OK;
		send_msg(c, &rep);
		break;
	case FAKE_ERR:
		rep.type = AGENTPROTO_ERR;
		snprintf(rep.reason, sizeof(rep.reason), "no such thing");
		send_msg(c, &rep);
		break;
	case FAKE_CLOSE:
		break;
	case FAKE_SILENT: {
		uint8_t b[16];

		/* Until the client gives up and closes. */
		while (read(c, b, sizeof(b)) > 0)
			;
		break;
	}
	}
out:
	close(c);
	return NULL;
}

static int
setup(void **state)
{
	struct fake *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/moat-agentc-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/%s", f->dir, AGENT_SOCKET_NAME);
	f->lfd = -1;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fake *f = *state;
	char cmd[160];

	if (f->lfd >= 0)
		close(f->lfd);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cleanup of %s failed\n", f->dir);
	free(f);
	return 0;
}

static void
serve(struct fake *f, enum fake_mode mode)
{
	if (f->lfd < 0)
		f->lfd = listen_at(f->path);
	f->mode = mode;
	assert_int_equal(pthread_create(&f->th, NULL, fake_main, f), 0);
}

static void
test_good(void **state)
{
	struct fake *f = *state;
	struct agentproto_msg st;
	struct agentproto_secret sec[2];
	uint8_t logbuf[AGENTPROTO_MAX_LOG_CHUNK];
	size_t got;
	uint64_t next, end;
	char err[256], b[64];
	int fd;

	serve(f, FAKE_GOOD);
	assert_int_equal(agent_client_status(f->dir, 2000, &st, err,
	    sizeof(err)), 0);
	pthread_join(f->th, NULL);
	assert_int_equal(f->req.type, AGENTPROTO_STATUS);
	assert_true(st.sshd_up);
	assert_int_equal(st.version, AGENTPROTO_VERSION);
	assert_int_equal(st.idle_seconds, 12);
	assert_int_equal(st.connections, 2);
	assert_int_equal(st.startup, AGENTPROTO_STARTUP_FAILED);
	assert_int_equal(st.startup_exit, 3);

	memset(sec, 0, sizeof(sec));
	snprintf(sec[0].name, sizeof(sec[0].name), "token");
	snprintf(sec[0].env, sizeof(sec[0].env), "TOKEN");
	sec[0].value = (const uint8_t *)"s3cr3t";
	sec[0].value_len = 6;
	snprintf(sec[1].name, sizeof(sec[1].name), "other");
	serve(f, FAKE_GOOD);
	assert_int_equal(agent_client_put_secrets(f->dir, 2000, sec, 2, err,
	    sizeof(err)), 0);
	pthread_join(f->th, NULL);
	assert_int_equal(f->req.type, AGENTPROTO_SECRETS);
	assert_int_equal(f->req.nsecrets, 2);
	assert_string_equal(f->secret0, "s3cr3t");
	assert_string_equal(f->req.secrets[0].env, "TOKEN");

	serve(f, FAKE_GOOD);
	assert_int_equal(agent_client_log(f->dir, 2000, 40, logbuf,
	    sizeof(logbuf), &got, &next, &end, err, sizeof(err)), 0);
	pthread_join(f->th, NULL);
	assert_int_equal(got, 10);
	assert_memory_equal(logbuf, "hello log\n", 10);
	assert_int_equal(next, 50);
	assert_int_equal(end, 140);

	serve(f, FAKE_GOOD);
	assert_int_equal(agent_client_activity(f->dir, 2000, err,
	    sizeof(err)), 0);
	pthread_join(f->th, NULL);
	assert_int_equal(f->req.type, AGENTPROTO_ACTIVITY);

	serve(f, FAKE_GOOD);
	assert_int_equal(agent_client_dial(f->dir, 22, 2000, &fd, err,
	    sizeof(err)), 0);
	assert_int_equal(read_n(fd, (uint8_t *)b, 14), 0);
	assert_memory_equal(b, "SSH-2.0-fake\r\n", 14);
	assert_int_equal(write(fd, "ping", 4), 4);
	assert_int_equal(read_n(fd, (uint8_t *)b, 4), 0);
	assert_memory_equal(b, "PING", 4);
	close(fd);
	pthread_join(f->th, NULL);
	assert_int_equal(f->req.port, 22);
}

/* The other listener must not have seen a connection. */
static void
assert_no_pending(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };

	assert_int_equal(poll(&p, 1, 0), 0);
}

static void
test_refused_files(void **state)
{
	struct fake *f = *state;
	char other[160], err[256], dirlink[160];
	int ofd, fd = -1, tfd;

	/* A symlink to another live host socket. */
	snprintf(other, sizeof(other), "%s/other.sock", f->dir);
	ofd = listen_at(other);
	assert_int_equal(symlink(other, f->path), 0);
	assert_int_equal(agent_client_connect(f->dir, 1000, &fd, err,
	    sizeof(err)), MOAT_ERR_PERM);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err, "symlink"));
	assert_no_pending(ofd);

	/* The agent directory itself a symlink to a directory holding a
	 * live socket of that name. */
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(rename(other, f->path), 0);
	snprintf(dirlink, sizeof(dirlink), "%s/link", f->dir);
	assert_int_equal(symlink(f->dir, dirlink), 0);
	assert_int_equal(agent_client_connect(dirlink, 1000, &fd, err,
	    sizeof(err)), MOAT_ERR_PERM);
	assert_no_pending(ofd);
	/* The same socket reached properly is accepted (control). */
	assert_int_equal(agent_client_connect(f->dir, 1000, &fd, err,
	    sizeof(err)), 0);
	close(fd);
	close(ofd);

	/* A regular file, then a FIFO. */
	assert_int_equal(unlink(f->path), 0);
	tfd = open(f->path, O_CREAT | O_WRONLY, 0600);
	assert_true(tfd >= 0);
	close(tfd);
	assert_int_equal(agent_client_connect(f->dir, 1000, &fd, err,
	    sizeof(err)), MOAT_ERR_PERM);
	assert_non_null(strstr(err, "regular file"));
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(mkfifo(f->path, 0600), 0);
	assert_int_equal(agent_client_connect(f->dir, 1000, &fd, err,
	    sizeof(err)), MOAT_ERR_PERM);
	assert_non_null(strstr(err, "FIFO"));
	assert_int_equal(unlink(f->path), 0);

	/* Nothing there; a socket nobody listens on. */
	assert_int_equal(agent_client_connect(f->dir, 1000, &fd, err,
	    sizeof(err)), MOAT_ERR_NOTFOUND);
	ofd = listen_at(f->path);
	close(ofd);
	assert_int_equal(agent_client_connect(f->dir, 1000, &fd, err,
	    sizeof(err)), MOAT_ERR_CLOSED);
	assert_int_equal(unlink(f->path), 0);
}

static void
test_bad_peers(void **state)
{
	struct fake *f = *state;
	struct agentproto_msg st;
	char err[256];
	int fd;

	serve(f, FAKE_OVERSIZE);
	assert_int_equal(agent_client_status(f->dir, 2000, &st, err,
	    sizeof(err)), MOAT_ERR_PARSE);
	assert_non_null(strstr(err, "refused"));
	pthread_join(f->th, NULL);

	serve(f, FAKE_MALFORMED);
	assert_int_equal(agent_client_status(f->dir, 2000, &st, err,
	    sizeof(err)), MOAT_ERR_PARSE);
	assert_non_null(strstr(err, "malformed"));
	pthread_join(f->th, NULL);

	serve(f, FAKE_WRONG_TYPE);
	assert_int_equal(agent_client_status(f->dir, 2000, &st, err,
	    sizeof(err)), MOAT_ERR_PARSE);
	assert_non_null(strstr(err, "unexpected"));
	pthread_join(f->th, NULL);

	serve(f, FAKE_ERR);
	assert_int_equal(agent_client_dial(f->dir, 8080, 2000, &fd, err,
	    sizeof(err)), MOAT_ERR_IO);
	assert_int_equal(fd, -1);
	assert_non_null(strstr(err, "no such thing"));
	pthread_join(f->th, NULL);

	serve(f, FAKE_CLOSE);
	assert_int_equal(agent_client_activity(f->dir, 2000, err,
	    sizeof(err)), MOAT_ERR_CLOSED);
	pthread_join(f->th, NULL);
}

static void
test_timeout(void **state)
{
	struct fake *f = *state;
	struct agentproto_msg st;
	struct timespec a, b;
	char err[256];
	long ms;

	serve(f, FAKE_SILENT);
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(agent_client_status(f->dir, 300, &st, err,
	    sizeof(err)), MOAT_ERR_TIMEOUT);
	clock_gettime(CLOCK_MONOTONIC, &b);
	ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
	assert_true(ms >= 250 && ms < 2000);
	pthread_join(f->th, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused_files, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_peers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_timeout, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
