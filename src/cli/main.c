/*
 * main.c - moat, the command-line client: the subcommand table and its
 * dispatch (wireguard-tools style: one file per verb group, see cli.h).
 */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"

static int cmd_help(int argc, char **argv);
static int cmd_version(int argc, char **argv);

static void
help_usage(FILE *f)
{
	fprintf(f, "usage: moat help [COMMAND]\n");
}

static void
version_usage(FILE *f)
{
	fprintf(f, "usage: moat version\n");
}

static const struct cli_command commands[] = {
	{ "login", cmd_login, "Log in to a moat server and store an API token",
	    cmd_login_usage },
	{ "logout", cmd_logout, "Revoke the stored token and forget the server",
	    cmd_logout_usage },
	{ "whoami", cmd_whoami, "Show who the stored token belongs to",
	    cmd_whoami_usage },
	{ "use", cmd_use, "List remembered servers, or switch the current one",
	    cmd_use_usage },
	{ "token", cmd_token, "Create, list and revoke API tokens",
	    cmd_token_usage },
	{ "user", cmd_user, "Manage users (admins)", cmd_user_usage },
	{ "sshkey", cmd_sshkey, "Add, list and remove your SSH public keys",
	    cmd_sshkey_usage },
	{ "secret", cmd_secret, "Store, list and delete personal secrets",
	    cmd_secret_usage },
	{ "ws", cmd_ws, "Create, run and follow workspaces", cmd_ws_usage },
	{ "ssh", cmd_ssh, "Open a shell or run a command in a workspace (OpenSSH)",
	    cmd_ssh_usage },
	{ "port-forward", cmd_port_forward, "Forward a local port to a port in "
	    "a workspace", cmd_port_forward_usage },
	{ "config-ssh", cmd_config_ssh, "Write Host entries for your "
	    "workspaces into ~/.ssh/config", cmd_config_ssh_usage },
	{ "template", cmd_template, "List, show, create and delete workspace "
	    "templates", cmd_template_usage },
	{ "policy", cmd_policy, "Manage egress policies", cmd_policy_usage },
	{ "audit", cmd_audit, "Read the audit trail (tail) or check a chain "
	    "file (verify)", cmd_audit_usage },
	{ "recording", cmd_recording, "List and download SSH session "
	    "recordings", cmd_recording_usage },
	{ "session", cmd_session, "List and end live SSH sessions (admins)",
	    cmd_session_usage },
	{ "version", cmd_version, "Print moat's version", version_usage },
	{ "help", cmd_help, "Show help for moat or one of its commands",
	    help_usage },
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct cli_command *
find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: moat [--help | --version] COMMAND [ARGS...]\n\n"
	    "Commands:\n");
	for (size_t i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nRun 'moat COMMAND --help' or 'moat help COMMAND' for a "
	    "command's options.\nThe config file is "
	    "$XDG_CONFIG_HOME/moat/config.json (~/.config/moat/config.json);\n"
	    "MOAT_SERVER=NAME picks a remembered server for one command.\n");
}

static int
cmd_help(int argc, char **argv)
{
	const struct cli_command *c;

	if (argc < 2) {
		usage(stdout);
		return CLI_OK;
	}
	if (argc > 2 || (c = find_command(argv[1])) == NULL) {
		fprintf(stderr, "moat: no help for '%s': unknown command\n",
		    argv[1]);
		return CLI_USAGE;
	}
	c->usage(stdout);
	return CLI_OK;
}

static int
cmd_version(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("moat %s\n", MOAT_VERSION);
	return CLI_OK;
}

int
main(int argc, char **argv)
{
	const struct cli_command *c;
	int status;

	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(argc, argv);
	if ((c = find_command(argv[1])) == NULL) {
		fprintf(stderr, "moat: unknown command '%s' (try moat --help)\n",
		    argv[1]);
		return CLI_USAGE;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "moat: cannot initialize libcurl\n");
		return CLI_FAILED;
	}
	status = c->run(argc - 1, argv + 1);
	curl_global_cleanup();
	return status;
}
