/*
 * cli_args.h - command-line option parsing for the moat verbs.
 *
 * Each verb declares its options in a small table (struct cli_opt) and gets
 * its positional arguments back in order. Accepted forms: "--name VALUE",
 * "--name=VALUE", flags without a value, an alias such as "-y", "--" ending
 * the options, and "-h"/"--help" anywhere before "--" (usage on stdout).
 * Options and positionals may be mixed. Errors are printed as one line on
 * stderr naming the command ("moat token create: --role needs a value").
 *
 * Pointers stored in the destinations are borrowed from argv.
 */
#ifndef MOAT_CLI_ARGS_H
#define MOAT_CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "errors.h"

#define CLI_LIST_MAX 16

enum cli_opt_kind {
	CLI_OPT_FLAG,	/* dest: bool *, set to true */
	CLI_OPT_STR,	/* dest: const char **; given twice: the last wins */
	CLI_OPT_LIST	/* dest: struct cli_list *, appended, CLI_LIST_MAX */
};

struct cli_list {
	const char *v[CLI_LIST_MAX];
	size_t n;
};

struct cli_opt {
	const char *name;	/* "--json" */
	const char *alias;	/* "-y", or NULL */
	enum cli_opt_kind kind;
	void *dest;
};

/* What cli_parse returns. */
#define CLI_PARSE_OK	0	/* parsed; run the command */
#define CLI_PARSE_HELP	1	/* usage printed on stdout: exit 0 */
#define CLI_PARSE_ERR	2	/* error printed on stderr: exit 2 */

/* Parses argv[1..argc) (argv[0] is the verb, e.g. "create") against opts
 * (n entries). Positionals go to pos[] in order, at least minpos and at
 * most maxpos of them; *npos receives their count. cmd names the command
 * in messages ("moat token create"); usage prints the verb's help for
 * -h/--help (errors stay one line: "... (try CMD --help)"). */
int cli_parse(const char *cmd, int argc, char **argv,
    const struct cli_opt *opts, size_t n, const char **pos, size_t minpos,
    size_t maxpos, size_t *npos, void (*usage)(FILE *f));

/* "90", "90s", "15m", "12h", "30d", "2w" -> seconds in *out. Refuses
 * zero, negative numbers, junk and values past 100 years. */
int cli_parse_duration(const char *s, int64_t *out) MOAT_MUST_CHECK;

/* A whole decimal number from 0 to max ("2000"; no sign, no spaces, no
 * junk, no overflow) into *out. */
int cli_parse_uint(const char *s, uint64_t max, uint64_t *out)
    MOAT_MUST_CHECK;

#endif
