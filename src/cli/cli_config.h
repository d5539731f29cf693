/*
 * cli_config.h - the moat CLI's config file: the servers it has logged in
 * to, each with its API token and how its TLS certificate is trusted, and
 * which one is current.
 *
 * Where: $XDG_CONFIG_HOME/moat/config.json, or ~/.config/moat/config.json.
 * Shape (version 1):
 *   {"version": 1, "current": "NAME",
 *    "servers": {"NAME": {"url": "https://host:8443", "username": "ann",
 *        "token": "moat_...", "token_id": "...", "token_name": "cli-...",
 *        "trust": "system" | "ca" | "pin",
 *        "ca_pem": "...",            (trust "ca": the CA bundle, PEM)
 *        "fingerprint": "SHA256:...",(trust "pin": the server certificate)
 *        "cert_pem": "..."}}}        (trust "pin": a copy, for the record)
 *
 * Safety rules:
 *  - The file holds API tokens: it is written with mode 0600 in a 0700
 *    directory, atomically (a temporary file in the same directory,
 *    fsync, rename, fsync of the directory), never through a symlink.
 *  - A file readable or writable by group or others, or owned by another
 *    user, is refused with a clear error (like ssh with a private key), not
 *    silently fixed: its tokens may already have been read, so the user
 *    decides (chmod 600 and perhaps revoke them).
 *  - A file that is not valid JSON of the shape above is refused with an
 *    error naming the file and the problem; since cli_config_load fails, no
 *    command ever gets a config to save, so a corrupt file is never
 *    overwritten.
 *  - Size bounded (CLI_CONFIG_MAX) before parsing.
 *  - Commands that change the file (login, logout, use) load it with
 *    cli_config_load_for_update, which holds an exclusive flock on
 *    config.json.lock next to it until cli_config_free: two such commands
 *    at once run one after the other instead of losing one's change.
 *    Commands that only read never wait.
 */
#ifndef MOAT_CLI_CONFIG_H
#define MOAT_CLI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "errors.h"

#define CLI_CONFIG_MAX (1024 * 1024)

struct cli_config {
	char *path;	/* owned */
	json_t *root;	/* owned; the document above */
	int lock_fd;	/* owned; the held lock, or -1 */
};

/* The config file's path: $XDG_CONFIG_HOME/moat/config.json when that is
 * an absolute path, else $HOME/.config/moat/config.json. MOAT_ERR_INVAL
 * when neither variable helps, MOAT_ERR_TOOBIG when out is too small. */
int cli_config_default_path(char *out, size_t outlen) MOAT_MUST_CHECK;

/* Loads path (a missing file is an empty config). On failure err holds one
 * line naming the file and the problem: MOAT_ERR_PERM (mode or owner),
 * MOAT_ERR_CORRUPT (not JSON, wrong shape), MOAT_ERR_TOOBIG, MOAT_ERR_IO.
 * *out is allocated on success; free with cli_config_free. */
int cli_config_load(const char *path, struct cli_config **out, char *err,
    size_t errlen) MOAT_MUST_CHECK;

/* cli_config_load for a command that will save: creates the directory
 * (0700) when missing and takes the lock first. When another command holds
 * it: with wait, says so on stderr and waits; without, MOAT_ERR_AGAIN. */
int cli_config_load_for_update(const char *path, bool wait,
    struct cli_config **out, char *err, size_t errlen) MOAT_MUST_CHECK;
/* Writes the config atomically with mode 0600, creating the directory
 * (0700) when missing. err as above. */
int cli_config_save(const struct cli_config *cfg, char *err, size_t errlen)
    MOAT_MUST_CHECK;

void cli_config_free(struct cli_config *cfg);

/* The server called name (borrowed), or NULL. */
json_t *cli_config_server(const struct cli_config *cfg, const char *name);

/* The current server's name (borrowed), or NULL when there is none. */
const char *cli_config_current(const struct cli_config *cfg);

/* Adds or replaces the server called name; takes ownership of server
 * (also on failure). Does not change the current server. */
int cli_config_put(struct cli_config *cfg, const char *name, json_t *server)
    MOAT_MUST_CHECK;

/* Makes name the current server: MOAT_ERR_NOTFOUND when unknown. */
int cli_config_use(struct cli_config *cfg, const char *name) MOAT_MUST_CHECK;

/* Forgets the server called name (the current one becomes none when it was
 * current): MOAT_ERR_NOTFOUND when unknown. */
int cli_config_remove(struct cli_config *cfg, const char *name)
    MOAT_MUST_CHECK;

/* Checks a server nickname: 1..64 of [A-Za-z0-9._:-]. */
int cli_config_check_name(const char *name) MOAT_MUST_CHECK;

#endif
