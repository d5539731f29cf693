/*
 * bootstrap.h - the first state of a new installation, made by `moatd
 * init`: organization "default", the owner "admin" with a random
 * password, the "default" egress policy (no allow rules), the default
 * organization security settings, and the workspace template "base" on
 * localhost/moat/base:latest with "localhost" on the registry allow-list.
 */
#ifndef MOATD_IDENTITY_BOOTSTRAP_H
#define MOATD_IDENTITY_BOOTSTRAP_H

#include <stddef.h>

#include "errors.h"
#include "store/store.h"

/* Length of a generated password (printed once, also the reset one). */
#define IDENTITY_GENERATED_PASSWORD_LEN 20

/* "sqlite:DATA_DIR/moatd.db", the store of a development data directory. */
int identity_store_uri(const char *data_dir, char *out, size_t outlen)
    MOAT_MUST_CHECK;

/* Opens the store of data_dir with moatd_collections (store/schema.h).
 * For the host commands. */
int identity_store_open_local(const char *data_dir, struct store **out)
    MOAT_MUST_CHECK;

/* Creates, in the store at "sqlite:DATA_DIR/moatd.db": org "default"; user
 * "admin" with role "owner" in it and a random password of
 * IDENTITY_GENERATED_PASSWORD_LEN characters, copied to password_out
 * (len > IDENTITY_GENERATED_PASSWORD_LEN) and written to
 * DATA_DIR/initial-admin-password (mode 0600, created exclusively, not
 * through a symbolic link); the egress policy "default" (collection
 * "policies"), the default settings (collection "settings", id
 * "default") and the template "base" (template.h; "localhost" is added to
 * the settings' registries when "base" is created). Records an audit event ("user.create", DATA_DIR/audit or
 * the running moatd's collector). Returns MOAT_ERR_EXISTS, password_out
 * empty, when "admin" exists already: its password is left alone (the
 * other defaults are still created if missing). */
int identity_bootstrap(const char *data_dir, char *password_out, size_t len)
    MOAT_MUST_CHECK;

#endif
