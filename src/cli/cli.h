/*
 * cli.h - what the moat command's files share: exit statuses, the
 * subcommand table entry, and the entry point of each verb group (one file
 * each, cmd_<verb>.c).
 *
 * A verb group's function receives argv starting at its own name
 * (argv[0] == "audit") and returns the process exit status:
 * 0 success, 1 the operation failed (the server refused, a check failed,
 * the network or a file let us down), 2 usage error (bad flags or
 * arguments). It prints errors as one line on stderr, starting "moat: ".
 *
 * The shared pieces live in their own modules: cli_args.h (option
 * parsing), cli_config.h (the config file with tokens and trust),
 * cli_http.h (HTTPS to moatd over libcurl, certificate pinning, API errors)
 * and cli_out.h (tables, JSON, times, terminal prompts).
 */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include "errors.h"

#ifndef MOAT_VERSION
#define MOAT_VERSION "0.1.0-dev"
#endif

#define CLI_OK		0
#define CLI_FAILED	1
#define CLI_USAGE	2

struct cli_command {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *summary;	/* one line for moat --help */
	void (*usage)(FILE *f);	/* moat help NAME */
};

/* Runs the subcommand argv[1] of a verb group from subs (n entries):
 * "--help", "-h" and "help" print usage to stdout (exit 0); a missing
 * subcommand prints it to stderr (exit 2); an unknown one is one error
 * line (exit 2). group is the name used in messages ("token"). */
int cli_dispatch(const char *group, int argc, char **argv,
    const struct cli_command *subs, size_t n, void (*usage)(FILE *f));

/* moat login's helpers, exposed for the unit tests. */

/* "host:8443/" or "https://host:8443" -> url "https://host:8443" (no
 * trailing slash) and a default server nickname "host:8443" (characters
 * outside [A-Za-z0-9._:-] become '_'). Refuses other schemes, user info,
 * queries and fragments. */
int cli_login_parse_url(const char *in, char *url, size_t urllen,
    char *name, size_t namelen);

/* The name of the API token a login creates: a user-name-like label of at
 * most 20 characters, "cli-HOST-MMDDhhmm" (HOST: up to 7 characters of
 * the host name, lower-cased, other characters as '-'); attempt > 0 (the
 * name was taken) shortens HOST and appends 2 more characters. */
void cli_login_token_name(char out[21], const char *host, time_t now,
    unsigned attempt);

/* "[OWNER/]NAME" (moat ws): the owner (me when absent; "" when me is NULL,
 * to check the syntax only) and the name into their buffers. Refuses an
 * empty part, a second '/', and parts that do not fit. */
int cli_ws_ref(const char *ref, const char *me, char *owner, size_t ownerlen,
    char *name, size_t namelen) MOAT_MUST_CHECK;

/* ---- moat ssh, port-forward, config-ssh (cmd_ssh.c) ---- */

#define CLI_SSH_FWD_MAX 8
#define CLI_SSH_LOGIN_MAX 160

/* The gateway's login for "[OWNER/]NAME": NAME when OWNER is absent or is
 * me (may be NULL), else "OWNER.NAME". Both parts must be labels the
 * gateway accepts (cli_ssh_label_ok). */
int cli_ssh_login(const char *ref, const char *me, char *out, size_t outlen)
    MOAT_MUST_CHECK;

/* "LOCAL:REMOTE" or "PORT" (both the same), ports 1..65535. */
int cli_ssh_forward_spec(const char *spec, unsigned *local, unsigned *remote)
    MOAT_MUST_CHECK;

/* The host to dial: host, or for a wildcard ("", 0.0.0.0, ::, *) the host
 * of the API URL url. Checked with cli_ssh_host_ok. */
int cli_ssh_effective_host(const char *host, const char *url, char *out,
    size_t outlen) MOAT_MUST_CHECK;

/* What moat ssh / moat port-forward were asked (argv from the verb's name;
 * strings borrowed from argv). */
struct cli_ssh_args {
	const char *ws;			/* [OWNER/]NAME */
	char login[CLI_SSH_LOGIN_MAX];	/* checked syntax, owner not
					 * resolved against the user yet */
	bool tty, dry_run;
	size_t nfwd;			/* port-forward: 1..CLI_SSH_FWD_MAX */
	unsigned local[CLI_SSH_FWD_MAX], remote[CLI_SSH_FWD_MAX];
	char **cmd;			/* after "--" (moat ssh) */
	size_t ncmd;
};

/* Parses argv for moat ssh (forward false) or moat port-forward:
 * CLI_PARSE_OK, CLI_PARSE_HELP (usage printed), CLI_PARSE_ERR (one line
 * printed). */
int cli_ssh_parse_args(const char *prog, bool forward, int argc, char **argv,
    struct cli_ssh_args *a, void (*usage)(FILE *f));

/* The ssh command line. */
struct cli_ssh_cmd {
	const char *host;
	long port;
	const char *known_hosts;	/* an absolute path */
	const char *login;
	bool tty;
	size_t nfwd;
	unsigned local[CLI_SSH_FWD_MAX], remote[CLI_SSH_FWD_MAX];
	char *const *cmd;
	size_t ncmd;
};

/* argv for execvp: prog, the options, "--", the host, the command; a
 * NULL-terminated array of new strings (cli_ssh_argv_free). */
int cli_ssh_argv(const struct cli_ssh_cmd *s, const char *prog, char ***out)
    MOAT_MUST_CHECK;
void cli_ssh_argv_free(char **argv);

int cmd_audit(int argc, char **argv);
void cmd_audit_usage(FILE *f);
int cmd_login(int argc, char **argv);
void cmd_login_usage(FILE *f);
int cmd_logout(int argc, char **argv);
void cmd_logout_usage(FILE *f);
int cmd_whoami(int argc, char **argv);
void cmd_whoami_usage(FILE *f);
int cmd_use(int argc, char **argv);
void cmd_use_usage(FILE *f);
int cmd_token(int argc, char **argv);
void cmd_token_usage(FILE *f);
int cmd_user(int argc, char **argv);
void cmd_user_usage(FILE *f);
int cmd_sshkey(int argc, char **argv);
void cmd_sshkey_usage(FILE *f);
int cmd_secret(int argc, char **argv);
void cmd_secret_usage(FILE *f);
int cmd_policy(int argc, char **argv);
void cmd_policy_usage(FILE *f);
int cmd_template(int argc, char **argv);
void cmd_template_usage(FILE *f);
int cmd_ws(int argc, char **argv);
void cmd_ws_usage(FILE *f);
int cmd_ssh(int argc, char **argv);
void cmd_ssh_usage(FILE *f);
int cmd_port_forward(int argc, char **argv);
void cmd_port_forward_usage(FILE *f);
int cmd_config_ssh(int argc, char **argv);
void cmd_config_ssh_usage(FILE *f);
int cmd_recording(int argc, char **argv);
void cmd_recording_usage(FILE *f);
int cmd_session(int argc, char **argv);
void cmd_session_usage(FILE *f);

#endif
