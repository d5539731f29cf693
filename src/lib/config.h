/*
 * config.h - one set of configuration keys from a YAML file, MOAT_*
 * environment variables and command-line flags.
 *
 * A program declares its keys once in a table (name, type, default, help).
 * For a key named "metrics-listen":
 *   file:   metrics-listen: 127.0.0.1:2112      (top-level YAML mapping)
 *   env:    MOAT_METRICS_LISTEN=127.0.0.1:2112
 *   flag:   --metrics-listen 127.0.0.1:2112  or  --metrics-listen=...
 * Precedence: flag > environment > file > default. The same table produces
 * --help and docs/operations.md.
 *
 * Errors are clear and name the key: an unknown key in the file or an
 * unknown flag, a value of the wrong type or out of range, a flag without
 * its value, a file that is not a YAML mapping of scalars (lists are allowed
 * for CFG_LIST keys), a key given twice in the file, anchors, aliases or
 * tags, a file over 1 MiB. A failed load changes no value (but
 * config_load_all may have applied flags before its file failed).
 *
 * Flags: "--name value", "--name=value"; a CFG_BOOL flag alone means true
 * and never takes the next argument ("--no-name" means false, "--name=off"
 * also works); a separated value may not start with "--" (write
 * "--name=--x"). A flag given twice: the last wins. envp NULL means environ. Environment variables that start with MOAT_ but name
 * no key of this program are ignored, since several moat programs share one
 * environment. Values of keys marked secret are never printed.
 */
#ifndef MOAT_CONFIG_H
#define MOAT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "errors.h"

enum config_type {
	CFG_STRING,
	CFG_INT,	/* decimal, within [min, max] */
	CFG_BOOL,	/* true/false/yes/no/on/off/1/0; a bare flag means true */
	CFG_DURATION,	/* "500ms", "30s", "5m", "2h", or bare seconds; read in ms */
	CFG_SIZE,	/* "512", "64k", "10M", "1G" (powers of 1024); read in bytes */
	CFG_LIST	/* comma-separated string, or a YAML sequence of scalars */
};

struct config_key {
	const char *name;	/* lower-case, '-' separated */
	enum config_type type;
	const char *def;	/* default as text; NULL: unset */
	const char *help;	/* one sentence */
	long long min, max;	/* CFG_INT/DURATION/SIZE bounds when min < max */
	bool secret;		/* never printed */
};

struct config;

/* keys is borrowed and must outlive the config. */
int config_new(struct config **out, const struct config_key *keys, size_t n)
    MOAT_MUST_CHECK;
void config_free(struct config *c);

/* Applies one source. Each returns MOAT_ERR_INVAL (or _PARSE for YAML) with
 * err naming the key and the problem. */
int config_load_yaml_file(struct config *c, const char *path, char *err,
    size_t errlen) MOAT_MUST_CHECK;
int config_load_yaml_buf(struct config *c, const char *data, size_t len,
    char *err, size_t errlen) MOAT_MUST_CHECK;
int config_load_env(struct config *c, char *const *envp, char *err,
    size_t errlen) MOAT_MUST_CHECK;
/* Parses flags from argv[0..argc); stops at "--" or the first argument not
 * starting with "--", and sets *first_positional to its index. "--config
 * FILE" is not handled here; see config_load_all. */
int config_load_flags(struct config *c, int argc, char **argv,
    int *first_positional, char *err, size_t errlen) MOAT_MUST_CHECK;

/* The usual sequence: the file named by --config (or MOAT_CONFIG) if any,
 * then environment, then flags, honouring the precedence above. argv[0] is
 * the first argument after the program/subcommand name. */
int config_load_all(struct config *c, int argc, char **argv, char *const *envp,
    int *first_positional, char *err, size_t errlen) MOAT_MUST_CHECK;
/* The file config_load_all loaded (borrowed), or NULL when none. */
const char *config_file(const struct config *c);

/* Typed readers; a key not in the table is a programming error (abort). */
const char *config_str(const struct config *c, const char *name); /* NULL if unset */
long long config_int(const struct config *c, const char *name);  /* also DURATION, SIZE */
bool config_bool(const struct config *c, const char *name);
/* CFG_LIST items, NULL-terminated (borrowed, valid until the key changes). */
const char *const *config_list(const struct config *c, const char *name);
/* Where a key's value came from: "default", "file", "env", "flag". */
const char *config_source(const struct config *c, const char *name);

/* Writes --help text for the table to f. */
void config_print_help(const struct config *c, FILE *f);
/* Writes a Markdown table (key, flag, env, default, meaning) to f. */
void config_print_markdown(const struct config_key *keys, size_t n, FILE *f);

#endif
