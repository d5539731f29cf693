/*
 * main.c - moat, the command-line client: the subcommand table and its
 * dispatch (wireguard-tools style: one file per verb group, see cli.h).
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static int cmd_help(int argc, char **argv);

static void
help_usage(FILE *f)
{
	fprintf(f, "usage: moat help [COMMAND]\n");
}

static const struct cli_command commands[] = {
	{ "audit", cmd_audit, "Check the audit chain (moat audit verify FILE)",
	    cmd_audit_usage },
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
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nRun 'moat help COMMAND' for a command's options.\n");
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

int
main(int argc, char **argv)
{
	const struct cli_command *c;

	if (argc < 2) {
		usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("moat %s\n", MOAT_VERSION);
		return CLI_OK;
	}
	if ((c = find_command(argv[1])) == NULL) {
		fprintf(stderr, "moat: unknown command '%s' (try moat --help)\n",
		    argv[1]);
		return CLI_USAGE;
	}
	return c->run(argc - 1, argv + 1);
}
