/*
 * cli_out.h - what the moat CLI shows and asks: aligned tables, JSON,
 * times, and the terminal prompts (yes/no questions, passwords without
 * echo, values from stdin).
 *
 * Text from the server is printed through cli_clean, which replaces control
 * characters, so a crafted name cannot send escape sequences to the
 * user's terminal.
 *
 * "A terminal" for questions means the controlling terminal, /dev/tty (as
 * ssh does): prompts are written to it and answers read from it, so they
 * work while stdin or stdout are redirected, and a process without one
 * (cron, CI, a pipe from another program with setsid) is never asked.
 */
#ifndef MOAT_CLI_OUT_H
#define MOAT_CLI_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "errors.h"

/* ---- tables ---- */

struct cli_table;

/* A table with ncols columns named by the NULL-terminated header list. */
struct cli_table *cli_table_new(size_t ncols, const char *const *headers);

/* Appends a row of ncols cells (NULL shows as "-"); cells are copied and
 * cleaned. */
int cli_table_add(struct cli_table *t, const char *const *cells)
    MOAT_MUST_CHECK;

/* Prints the header and the rows with columns aligned (two spaces apart). */
void cli_table_print(const struct cli_table *t, FILE *f);

void cli_table_free(struct cli_table *t);

/* ---- JSON and text ---- */

/* Prints v indented, with sorted keys, and a newline. */
void cli_print_json(const json_t *v);

/* Copies s into out replacing control characters (and invalid bytes
 * below 0x20, 0x7f) by '?'; NULL becomes "-". Returns out. */
const char *cli_clean(const char *s, char *out, size_t outlen);

/* "2026-12-03T17:16:47.272Z" -> "2026-12-03 17:16:47"; others as is. */
const char *cli_time(const char *rfc3339, char *out, size_t outlen);

/* Unix seconds -> "2026-12-03 17:16:47" (UTC), or "never" for 0. */
const char *cli_epoch(int64_t t, char *out, size_t outlen);

/* A JSON array of strings as "a,b,c" ("-" when empty or absent). */
const char *cli_join(const json_t *arr, char *out, size_t outlen);

/* The string member key of o (borrowed), or "-" when absent. */
const char *cli_str(const json_t *o, const char *key);

/* True when stdout is a terminal. */
bool cli_stdout_tty(void);

/* ---- prompts ---- */

/* True when the process has a controlling terminal to ask on. */
bool cli_have_tty(void);

/* Asks question + " [y/N] " on the terminal. Returns 1 for yes, 0 for no
 * (or end of input), MOAT_ERR_UNSUPPORTED without a terminal. */
int cli_confirm(const char *question);

/* The confirmation rule of destructive commands: with yes, go; on a
 * terminal, ask; without one, refuse ("add --yes"). Returns CLI_OK to go
 * on, else the exit status to return (a line was printed). cmd names the
 * command in messages. */
int cli_confirm_or_yes(const char *cmd, const char *question, bool yes);

/* Reads one line from the terminal into buf (without the newline), with
 * echo off when secret. MOAT_ERR_UNSUPPORTED without a terminal,
 * MOAT_ERR_TOOBIG when longer than size - 1, MOAT_ERR_IO at end of input.
 * Ctrl-C while echo is off restores the terminal before dying. */
int cli_prompt(const char *prompt, bool secret, char *buf, size_t size)
    MOAT_MUST_CHECK;

/* Reads all of stdin, at most max bytes (MOAT_ERR_TOOBIG beyond), into a
 * new NUL-terminated buffer (caller frees, wiping it: cli_wipe_free).
 * With one_line, a single trailing "\n" or "\r\n" is removed. */
int cli_read_stdin(size_t max, bool one_line, char **out, size_t *len)
    MOAT_MUST_CHECK;

/* explicit_bzero of a string's bytes, then free. Accepts NULL. */
void cli_wipe_free(char *s);

#endif
