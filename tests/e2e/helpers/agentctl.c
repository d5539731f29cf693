/*
 * agentctl.c - `moat-agentctl`, a test tool (built only with the tests)
 * that drives a moat-agent through agent_client.c, as moatd will:
 *
 *   moat-agentctl status DIR            key=value lines
 *   moat-agentctl dial DIR PORT         relays stdin/stdout (ProxyCommand)
 *   moat-agentctl log DIR [OFFSET]      the log from OFFSET to its end
 *   moat-agentctl secrets DIR [NAME[:ENV]@FILE]...   replaces the secrets
 *   moat-agentctl activity DIR
 *   moat-agentctl connect DIR           connects and closes
 *
 * Exit status: 0 done, 1 error (message on stderr), 3 refused
 * (MOAT_ERR_PERM), 4 timed out.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "orchestrator/agent_client.h"

#define TIMEOUT_MS 5000

static int
exit_code(int r, const char *err)
{
	if (r == 0)
		return 0;
	fprintf(stderr, "moat-agentctl: %s (%s)\n", err, moat_strerror(r));
	return r == MOAT_ERR_PERM ? 3 : r == MOAT_ERR_TIMEOUT ? 4 : 1;
}

/* Copies stdin to fd and fd to stdout until both directions end. */
static int
relay(int fd)
{
	struct pollfd p[2];
	bool in_done = false, out_done = false;
	char buf[16384];

	while (!out_done) {
		int n = 0;

		p[0].fd = fd;
		p[0].events = POLLIN;
		p[1].fd = in_done ? -1 : 0;
		p[1].events = POLLIN;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		if (p[1].revents != 0) {
			ssize_t k = read(0, buf, sizeof(buf));

			if (k <= 0) {
				in_done = true;
				shutdown(fd, SHUT_WR);
			} else {
				for (ssize_t o = 0; o < k; o += n)
					if ((n = (int)write(fd, buf + o,
					    (size_t)(k - o))) <= 0)
						return 1;
			}
		}
		if (p[0].revents != 0) {
			ssize_t k = read(fd, buf, sizeof(buf));

			if (k <= 0) {
				out_done = true;
			} else {
				for (ssize_t o = 0; o < k; o += n)
					if ((n = (int)write(1, buf + o,
					    (size_t)(k - o))) <= 0)
						return 1;
			}
		}
	}
	return 0;
}

static int
read_file(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b = malloc(60000);
	size_t n;

	if (f == NULL || b == NULL) {
		if (f != NULL)
			fclose(f);
		free(b);
		return -1;
	}
	n = fread(b, 1, 60000, f);
	fclose(f);
	*out = b;
	*len = n;
	return 0;
}

static int
cmd_secrets(const char *dir, int argc, char **argv)
{
	static struct agentproto_secret s[AGENTPROTO_MAX_SECRETS];
	char err[256];
	int n = 0, r;

	for (int i = 0; i < argc && n < AGENTPROTO_MAX_SECRETS; i++, n++) {
		char *at = strchr(argv[i], '@'), *colon;
		uint8_t *v;

		if (at == NULL) {
			fprintf(stderr, "usage: NAME[:ENV]@FILE\n");
			return 1;
		}
		*at = '\0';
		colon = strchr(argv[i], ':');
		if (colon != NULL) {
			*colon = '\0';
			snprintf(s[n].env, sizeof(s[n].env), "%s", colon + 1);
		}
		snprintf(s[n].name, sizeof(s[n].name), "%s", argv[i]);
		if (read_file(at + 1, &v, &s[n].value_len) != 0) {
			fprintf(stderr, "cannot read %s\n", at + 1);
			return 1;
		}
		s[n].value = v;
	}
	r = agent_client_put_secrets(dir, TIMEOUT_MS, s, (size_t)n, err,
	    sizeof(err));
	return exit_code(r, err);
}

int
main(int argc, char **argv)
{
	char err[256];
	const char *cmd, *dir;
	int r, fd;

	if (argc < 3) {
		fprintf(stderr, "usage: moat-agentctl status|dial|log|secrets|"
		    "activity|connect DIR [...]\n");
		return 1;
	}
	cmd = argv[1];
	dir = argv[2];
	if (strcmp(cmd, "status") == 0) {
		struct agentproto_msg m;

		r = agent_client_status(dir, TIMEOUT_MS, &m, err, sizeof(err));
		if (r == 0)
			printf("version=%u\nsshd_up=%d\nidle_seconds=%u\n"
			    "connections=%u\nstartup=%d\nstartup_exit=%d\n",
			    m.version, m.sshd_up ? 1 : 0, m.idle_seconds,
			    m.connections, (int)m.startup, (int)m.startup_exit);
		return exit_code(r, err);
	}
	if (strcmp(cmd, "dial") == 0 && argc == 4) {
		char *end;
		long port = strtol(argv[3], &end, 10);

		if (*end != '\0' || port < 1 || port > 65535)
			return 1;
		r = agent_client_dial(dir, (uint16_t)port, TIMEOUT_MS, &fd, err,
		    sizeof(err));
		if (r != 0)
			return exit_code(r, err);
		r = relay(fd);
		close(fd);
		return r;
	}
	if (strcmp(cmd, "log") == 0) {
		static uint8_t buf[AGENTPROTO_MAX_LOG_CHUNK];
		uint64_t off = 0, next, end;
		size_t got;

		if (argc == 4)
			off = strtoull(argv[3], NULL, 10);
		for (;;) {
			r = agent_client_log(dir, TIMEOUT_MS, off, buf,
			    sizeof(buf), &got, &next, &end, err, sizeof(err));
			if (r != 0)
				return exit_code(r, err);
			if (got > 0 && fwrite(buf, 1, got, stdout) != got)
				return 1;
			off = next;
			if (got == 0 || off >= end)
				break;
		}
		fprintf(stderr, "next_offset=%llu\n", (unsigned long long)off);
		return 0;
	}
	if (strcmp(cmd, "secrets") == 0)
		return cmd_secrets(dir, argc - 3, argv + 3);
	if (strcmp(cmd, "activity") == 0) {
		r = agent_client_activity(dir, TIMEOUT_MS, err, sizeof(err));
		return exit_code(r, err);
	}
	if (strcmp(cmd, "connect") == 0) {
		r = agent_client_connect(dir, TIMEOUT_MS, &fd, err,
		    sizeof(err));
		if (r == 0)
			close(fd);
		return exit_code(r, err);
	}
	fprintf(stderr, "moat-agentctl: unknown command %s\n", cmd);
	return 1;
}
