/*
 * cli.h - what the moat command's files share: the subcommand table entry
 * and the entry point of each verb group (one file each, cmd_<verb>.c).
 *
 * A verb group's function receives argv starting at its own name
 * (argv[0] == "audit") and returns the process exit status:
 * 0 success, 1 a check failed (e.g. a broken chain), 2 usage or
 * operational error (bad flags, unreadable file). It prints errors as one
 * line on stderr.
 */
#ifndef MOAT_CLI_H
#define MOAT_CLI_H

#include <stdio.h>

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

int cmd_audit(int argc, char **argv);
void cmd_audit_usage(FILE *f);

#endif
