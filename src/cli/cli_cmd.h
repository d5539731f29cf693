/*
 * cli_cmd.h - the command bodies several verb groups share: list a
 * collection (as a table or --json), remove one of the caller's items found
 * by id or name, and delete a named object after confirmation.
 *
 * Each takes a static description of the command and its argv (starting at
 * the subcommand's name) and returns the exit status (cli.h).
 */
#ifndef MOAT_CLI_CMD_H
#define MOAT_CLI_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "cli_http.h"

#define CLI_CELL_MAX	256	/* bytes of scratch per table cell */
#define CLI_COLS_MAX	8

/* "moat X list [--json]": GET path, take the array member key of the
 * answer, print it as JSON (an empty array when absent) or as a table. */
struct cli_list_cmd {
	const char *prog;		/* "moat token list", for messages */
	void (*usage)(FILE *f);
	const char *path;		/* "/api/v1/tokens" */
	const char *key;		/* "tokens" */
	/* Follow the "next" cursor: GET path?limit=1000, then
	 * path?limit=1000&after=CURSOR, collecting every page. */
	bool paged;
	size_t ncols;			/* 1 to CLI_COLS_MAX */
	const char *const *head;	/* ncols column names */
	/* Fills cells[0..ncols-1] for item (NULL shows as "-"); cell i may
	 * point into scratch[i] (CLI_CELL_MAX bytes), into item, or to a
	 * constant. c is the open connection (borrowed). */
	void (*row)(const struct cli_conn *c, const json_t *item,
	    const char **cells, char scratch[][CLI_CELL_MAX]);
	/* Optional (NULL/0 when unused): more options than --json, at most
	 * CLI_LIST_OPTS_MAX, and a function that builds the path from what
	 * they parsed (ctx is theirs), instead of path. It returns 0, or
	 * CLI_USAGE after printing one line. */
	const struct cli_opt *opts;
	size_t nopts;
	int (*make_path)(void *ctx, char *out, size_t outlen);
	void *ctx;
};

#define CLI_LIST_OPTS_MAX 7

int cli_run_list(const struct cli_list_cmd *s, int argc, char **argv);

/* "moat X remove ID|NAME [--yes]" for the caller's own items: GET path,
 * find the item of the array member key whose "id" or "name" is the
 * argument, confirm (cli_confirm_or_yes), DELETE path/ID and print
 * "<done> <noun> ID". */
struct cli_remove_cmd {
	const char *prog;		/* "moat token revoke" */
	void (*usage)(FILE *f);
	const char *path;		/* "/api/v1/tokens" (no trailing '/') */
	const char *key;		/* "tokens" */
	const char *noun;		/* "token", in messages */
	const char *done;		/* "Revoked" */
	/* Writes the yes/no question about item id (name may be NULL) into
	 * q. c is the open connection (borrowed). */
	void (*question)(const struct cli_conn *c, const char *id,
	    const char *name, char *q, size_t qlen);
};

int cli_run_remove(const struct cli_remove_cmd *s, int argc, char **argv);

/* "moat X delete NAME [--yes]": asks "Delete <noun> NAME?" (unless --yes),
 * DELETEs prefix + escaped NAME and prints "Deleted <noun> NAME". */
int cli_run_delete(const char *prog, void (*usage)(FILE *f),
    const char *prefix, const char *noun, int argc, char **argv);

#endif
