/*
 * agent_main.c - moat-agent's start-up and main loop.
 *
 * Order: the log ring; signals blocked and read through a signalfd (PID 1
 * gets no default signal actions, and this keeps them in the loop); the
 * configuration; the agent socket (first, so that moatd can read the log
 * even when a later step fails); the workspace user; sshd; the startup
 * script; the egress listener. A configuration or user error is fatal
 * (exit 2: the container stops and its log says why).
 *
 * SIGTERM (or SIGINT) stops the listeners and relays, sends SIGTERM to
 * every process of the workspace (kill(-1) when we are PID 1 of a pid
 * namespace, only our own children otherwise), waits up to
 * AGENT_TERM_GRACE_MS for them, SIGKILLs what is left and exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <poll.h>

#include "agent.h"

#define AGENT_TERM_GRACE_MS 5000

static void
main_terminate(struct agent *ag, int sig)
{
	if (ag->terminating)
		return;
	agent_log("signal %d: stopping the workspace", sig);
	ag->terminating = true;
	ag->term_deadline = agent_now_ms() + AGENT_TERM_GRACE_MS;
	agent_server_close(ag);
	if (ag->egress_lfd >= 0) {
		agent_unwatch(ag, ag->egress_lfd);
		close(ag->egress_lfd);
		ag->egress_lfd = -1;
	}
	agent_relay_close_all(ag);
	if (getpid() == 1) {
		(void)kill(-1, SIGTERM);
	} else {
		if (ag->sshd_pid > 0)
			(void)kill(ag->sshd_pid, SIGTERM);
		if (ag->startup_pid > 0)
			(void)kill(-ag->startup_pid, SIGTERM);
	}
}

static void
main_signal_cb(struct agent *ag, int fd, short revents, void *arg)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			agent_reap(ag);
			break;
		case SIGTERM:
		case SIGINT:
			main_terminate(ag, (int)si.ssi_signo);
			break;
		default:
			break;
		}
	}
}

/* True when no child is left (as PID 1: no process in the namespace). */
static bool
main_children_gone(void)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
		return errno == ECHILD;
	return false;
}

static int
main_signals(struct agent *ag)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return MOAT_ERR_IO;
	signal(SIGPIPE, SIG_IGN);
	ag->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (ag->sigfd < 0)
		return MOAT_ERR_IO;
	return agent_watch(ag, ag->sigfd, POLLIN, main_signal_cb, NULL);
}

int
main(int argc, char **argv)
{
	static struct agent ag;
	char err[256];

	(void)argc;
	(void)argv;
	umask(022);
	ag.agent_lfd = -1;
	ag.egress_lfd = -1;
	ag.sigfd = -1;
	if (agent_log_init() != 0 || agent_loop_init(&ag) != 0) {
		fprintf(stderr, "moat-agent: out of memory\n");
		return 2;
	}
	agent_log("moat-agent %d starting (pid %d)", AGENTPROTO_VERSION,
	    (int)getpid());
	if (main_signals(&ag) != 0) {
		agent_log("signals: %s", strerror(errno));
		return 2;
	}
	ag.last_activity = agent_now_ms();
	if (agent_conf_load(AGENT_CONF_PATH, &ag.conf, err, sizeof(err)) != 0) {
		agent_log("configuration: %s", err);
		return 2;
	}
	snprintf(ag.home, sizeof(ag.home), "/home/%s", ag.conf.user);
	if (agent_server_listen(&ag) != 0)
		return 2;
	if (agent_user_setup(&ag) != 0) {
		agent_log("the workspace user could not be set up");
		return 2;
	}
	agent_secrets_init(&ag);
	if (agent_sshd_write_config(&ag) == 0)
		agent_sshd_start(&ag);
	(void)agent_startup_run(&ag);
	if (agent_egress_listen(&ag) != 0)
		agent_log("egress relay disabled");

	for (;;) {
		int timeout = 1000;

		if (ag.terminating) {
			agent_reap(&ag);
			if (main_children_gone())
				break;
			if (agent_now_ms() >= ag.term_deadline) {
				agent_log("grace period over: SIGKILL");
				if (getpid() == 1)
					(void)kill(-1, SIGKILL);
				else if (ag.sshd_pid > 0)
					(void)kill(ag.sshd_pid, SIGKILL);
				ag.term_deadline = agent_now_ms() + 1000;
			}
			timeout = 100;
		}
		agent_sshd_tick(&ag, &timeout);
		agent_server_tick(&ag, &timeout);
		if (agent_loop_once(&ag, timeout) != 0) {
			agent_log("poll: %s", strerror(errno));
			break;
		}
	}
	agent_log("moat-agent stopped");
	agent_secrets_free(&ag);
	agent_conf_free(&ag.conf);
	agent_loop_free(&ag);
	return 0;
}
