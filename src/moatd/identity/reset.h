/*
 * reset.h - break-glass on the host: `moatd reset-password USER
 * --data-dir DIR` gives a user a new random password (printed once),
 * clears their TOTP and revokes their sessions, and records an audit
 * event. It works on the store directly, whether or not moatd runs.
 */
#ifndef MOATD_IDENTITY_RESET_H
#define MOATD_IDENTITY_RESET_H

#include <stddef.h>

#include "errors.h"

/* The work of the command: the new password into password_out (len >
 * IDENTITY_GENERATED_PASSWORD_LEN). MOAT_ERR_NOTFOUND for an unknown user;
 * err gets a one-line reason on failure. The audit sink is opened before
 * anything changes: when the event cannot be recorded nothing is reset. */
int identity_reset_password(const char *data_dir, const char *username,
    char *password_out, size_t len, char *err, size_t errlen)
    MOAT_MUST_CHECK;

/* The subcommand. argv[0] is "reset-password" (main.c passes argc - 1,
 * argv + 1). Prints the new password on stdout once, errors on stderr.
 * Exit status: 0 done, 1 failed, 2 usage error. */
int moatd_reset_password_main(int argc, char **argv);

#endif
