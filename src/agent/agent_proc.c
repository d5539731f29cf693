/*
 * agent_proc.c - moat-agent's children: spawning (signals reset, stdin
 * /dev/null, stdout and stderr into the log ring through a pipe, other fds
 * closed, optionally dropped to the workspace user), reaping every child
 * as PID 1 must (orphans of the whole workspace end up here), and the
 * template's startup script, run once per container start as the user.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"

/* A child's output pipe, read into the log. */
struct proc_out {
	struct agent_logsrc *src;
};

static void
proc_out_cb(struct agent *ag, int fd, short revents, void *arg)
{
	struct proc_out *o = arg;
	uint8_t buf[4096];
	ssize_t n = read(fd, buf, sizeof(buf));

	if (n > 0) {
		agent_logsrc_feed(o->src, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* EOF (every writer gone) or error. */
	agent_unwatch(ag, fd);
	close(fd);
	agent_logsrc_free(o->src);
	free(o);
}

/* In the child, after fork: never returns. Only async-signal-safe calls. */
static void __attribute__((noreturn))
proc_child(const struct agent_spawn *sp, int outfd)
{
	sigset_t none;
	int nullfd;

	sigemptyset(&none);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid();
	nullfd = open("/dev/null", O_RDWR);
	if (nullfd >= 0)
		dup2(nullfd, 0);
	if (outfd >= 0) {
		dup2(outfd, 1);
		dup2(outfd, 2);
	} else if (nullfd >= 0) {
		dup2(nullfd, 1);
	}
	/* Everything else is close-on-exec or closed here. */
#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
#endif
		for (int fd = 3; fd < 65536; fd++)
			close(fd);
	if (sp->uid != 0) {
		gid_t g = (gid_t)sp->uid;

		if (setgroups(1, &g) != 0 || setgid(g) != 0 ||
		    setuid(sp->uid) != 0)
			_exit(126);
	}
	if (chdir(sp->cwd != NULL ? sp->cwd : "/") != 0 && chdir("/") != 0)
		_exit(126);
	execve(sp->path, sp->argv, sp->envp);
	_exit(127);
}

int
agent_spawn(struct agent *ag, const struct agent_spawn *sp, pid_t *pid)
{
	int p[2] = { -1, -1 };
	struct proc_out *o = NULL;
	pid_t c;

	if (sp->log_prefix != NULL) {
		o = calloc(1, sizeof(*o));
		if (o == NULL || (o->src = agent_logsrc_new(sp->log_prefix)) ==
		    NULL || pipe2(p, O_CLOEXEC) != 0) {
			if (o != NULL)
				agent_logsrc_free(o->src);
			free(o);
			return MOAT_ERR_IO;
		}
	}
	c = fork();
	if (c < 0) {
		agent_log("fork: %s", strerror(errno));
		if (o != NULL) {
			close(p[0]);
			close(p[1]);
			agent_logsrc_free(o->src);
			free(o);
		}
		return MOAT_ERR_IO;
	}
	if (c == 0)
		proc_child(sp, p[1]);
	*pid = c;
	if (o != NULL) {
		close(p[1]);
		if (agent_set_nonblock(p[0]) != 0 ||
		    agent_watch(ag, p[0], POLLIN, proc_out_cb, o) != 0) {
			close(p[0]);
			agent_logsrc_free(o->src);
			free(o);
		}
	}
	return 0;
}

void
agent_reap(struct agent *ag)
{
	int st;
	pid_t p;

	while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
		if (p == ag->sshd_pid) {
			agent_sshd_exited(ag, st);
		} else if (p == ag->startup_pid) {
			ag->startup_pid = 0;
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
				ag->startup_state = AGENTPROTO_STARTUP_DONE;
				ag->startup_exit = 0;
				agent_log("startup script finished");
			} else {
				ag->startup_state = AGENTPROTO_STARTUP_FAILED;
				ag->startup_exit = WIFEXITED(st) ?
				    WEXITSTATUS(st) : 128 + WTERMSIG(st);
				agent_log("startup script failed (%s %d)",
				    WIFEXITED(st) ? "exit" : "signal",
				    WIFEXITED(st) ? WEXITSTATUS(st) :
				    WTERMSIG(st));
			}
		}
		/* Any other pid: an orphan reparented to PID 1, reaped. */
	}
}

/* Appends "NAME=VALUE" to envp (growing); replaces an earlier NAME. */
static int
envp_set(char ***envp, size_t *n, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	char *s = malloc(nl + 1 + vl + 1), **grown;

	if (s == NULL)
		return MOAT_ERR_IO;
	memcpy(s, name, nl);
	s[nl] = '=';
	memcpy(s + nl + 1, value, vl + 1);
	for (size_t i = 0; i < *n; i++) {
		if (strncmp((*envp)[i], name, nl) == 0 &&
		    (*envp)[i][nl] == '=') {
			explicit_bzero((*envp)[i], strlen((*envp)[i]));
			free((*envp)[i]);
			(*envp)[i] = s;
			return 0;
		}
	}
	grown = realloc(*envp, (*n + 2) * sizeof(char *));
	if (grown == NULL) {
		free(s);
		return MOAT_ERR_IO;
	}
	*envp = grown;
	(*envp)[(*n)++] = s;
	(*envp)[*n] = NULL;
	return 0;
}

void
agent_envp_free(char **envp)
{
	if (envp == NULL)
		return;
	for (size_t i = 0; envp[i] != NULL; i++) {
		explicit_bzero(envp[i], strlen(envp[i]));
		free(envp[i]);
	}
	free(envp);
}

char **
agent_envp_build(const struct agent *ag)
{
	char **envp = calloc(1, sizeof(char *)), port[16], proxy[64];
	size_t n = 0;
	int bad = 0;

	if (envp == NULL)
		return NULL;
	snprintf(port, sizeof(port), "%u", (unsigned)ag->conf.proxy_port);
	snprintf(proxy, sizeof(proxy), "http://127.0.0.1:%s", port);
	bad |= envp_set(&envp, &n, "HOME", ag->home);
	bad |= envp_set(&envp, &n, "USER", ag->conf.user);
	bad |= envp_set(&envp, &n, "LOGNAME", ag->conf.user);
	bad |= envp_set(&envp, &n, "SHELL", "/bin/bash");
	bad |= envp_set(&envp, &n, "PATH",
	    "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games");
	bad |= envp_set(&envp, &n, "LANG", "C.UTF-8");
	for (size_t i = 0; i < ag->conf.nenv; i++)
		bad |= envp_set(&envp, &n, ag->conf.env[i].name,
		    ag->conf.env[i].value);
	for (size_t i = 0; i < ag->nsecret_env; i++)
		bad |= envp_set(&envp, &n, ag->secret_env[i].name,
		    ag->secret_env[i].value);
	/* The platform's proxy settings win over the template's. */
	bad |= envp_set(&envp, &n, "HTTP_PROXY", proxy);
	bad |= envp_set(&envp, &n, "HTTPS_PROXY", proxy);
	bad |= envp_set(&envp, &n, "http_proxy", proxy);
	bad |= envp_set(&envp, &n, "https_proxy", proxy);
	bad |= envp_set(&envp, &n, "NO_PROXY", "localhost,127.0.0.1,::1");
	bad |= envp_set(&envp, &n, "no_proxy", "localhost,127.0.0.1,::1");
	if (bad) {
		agent_envp_free(envp);
		return NULL;
	}
	return envp;
}

int
agent_startup_run(struct agent *ag)
{
	char *argv[] = { "/bin/bash", AGENT_STARTUP_PATH, NULL };
	struct agent_spawn sp = {
		.path = "/bin/bash",
		.argv = argv,
		.uid = ag->conf.uid,
		.cwd = ag->home,
		.log_prefix = "startup",
	};
	char **envp;
	int r = MOAT_ERR_IO;

	ag->startup_state = AGENTPROTO_STARTUP_NONE;
	if (!ag->conf.startup)
		return 0;
	if (access(AGENT_STARTUP_PATH, R_OK) != 0) {
		agent_log("startup=1 but %s is missing", AGENT_STARTUP_PATH);
		ag->startup_state = AGENTPROTO_STARTUP_FAILED;
		ag->startup_exit = 127;
		return MOAT_ERR_IO;
	}
	if (access("/bin/bash", X_OK) != 0) {
		argv[0] = "/bin/sh";
		sp.path = "/bin/sh";
	}
	if ((envp = agent_envp_build(ag)) == NULL)
		goto out;
	sp.envp = envp;
	if (agent_spawn(ag, &sp, &ag->startup_pid) != 0)
		goto out;
	ag->startup_state = AGENTPROTO_STARTUP_RUNNING;
	agent_log("startup script started as %s (pid %d)", ag->conf.user,
	    (int)ag->startup_pid);
	r = 0;
out:
	if (r != 0) {
		ag->startup_state = AGENTPROTO_STARTUP_FAILED;
		ag->startup_exit = 126;
		agent_log("startup script could not be started");
	}
	agent_envp_free(envp);
	return r;
}
