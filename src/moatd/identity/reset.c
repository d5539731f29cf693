/*
 * reset.c - `moatd reset-password USER --data-dir DIR`, the break-glass
 * path for an owner locked out (lost password or TOTP device).
 *
 * In one store transaction: a new argon2id hash, TOTP (seed, pending
 * enrollment, replay counter) removed, every session of the user revoked.
 * A running moatd sees the revocations within IDENTITY_LIVE_CACHE_MS (its
 * authentication cache re-checks the store). API tokens are left alone:
 * they are not what a lost password endangers. The audit event goes to
 * the running moatd's collector, or straight into the chain when moatd is
 * stopped.
 */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "audit.h"
#include "identity/bootstrap.h"
#include "identity/identity_int.h"
#include "identity/reset.h"
#include "log.h"
#include "store/store.h"

struct reset_ctx {
	const char *user_id, *hash;
	int revoked;
};

static int
reset_txn(struct store *st, void *arg)
{
	struct reset_ctx *c = arg;
	int r;

	if ((r = identity__set_password(st, c->user_id, c->hash, true)) != 0)
		return r;
	return identity__revoke_user_sessions(st, c->user_id, NULL, &c->revoked);
}

int
identity_reset_password(const char *data_dir, const char *username,
    char *password_out, size_t len, char *err, size_t errlen)
{
	struct store *st = NULL;
	struct identity_audit *au = NULL;
	struct reset_ctx c = { 0 };
	char password[IDENTITY_GENERATED_PASSWORD_LEN + 1], hash[128];
	json_t *user = NULL, *ev;
	bool had_totp;
	int r;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (password_out == NULL || len <= IDENTITY_GENERATED_PASSWORD_LEN ||
	    data_dir == NULL || username == NULL)
		return MOAT_ERR_INVAL;
	password_out[0] = '\0';
	if ((r = identity__global_init()) != 0)
		return r;
	if ((r = identity_check_name(username, false, NULL, 0)) != 0) {
		moat_errf(err, errlen, "no user named \"%.64s\"", username);
		return MOAT_ERR_NOTFOUND;
	}
	if ((r = identity_store_open_local(data_dir, &st)) != 0) {
		moat_errf(err, errlen, "cannot open the store of %s: %s", data_dir,
		    moat_strerror(r));
		goto out;
	}
	r = store_find_one(st, IDENTITY_USERS, "username", username, &user);
	if (r == MOAT_ERR_NOTFOUND) {
		moat_errf(err, errlen, "no user named \"%s\"", username);
		goto out;
	}
	if (r != 0) {
		moat_errf(err, errlen, "cannot read the user: %s",
		    moat_strerror(r));
		goto out;
	}
	c.user_id = json_string_value(json_object_get(user, "id"));
	if (c.user_id == NULL) {
		r = MOAT_ERR_CORRUPT;
		moat_errf(err, errlen, "the stored user has no id");
		goto out;
	}
	had_totp = identity_totp_enabled(user) ||
	    json_object_get(json_object_get(user, "sealed"), "totp_pending");
	if ((r = identity__audit_open(&au, data_dir)) != 0) {
		moat_errf(err, errlen, "cannot record an audit event (%s); "
		    "nothing was changed", moat_strerror(r));
		goto out;
	}
	if ((r = identity__random_password(password, sizeof(password) - 1)) != 0 ||
	    (r = identity_password_hash(password, hash)) != 0) {
		moat_errf(err, errlen, "cannot make a password: %s",
		    moat_strerror(r));
		goto out;
	}
	c.hash = hash;
	if ((r = store_transaction(st, reset_txn, &c)) != 0) {
		moat_errf(err, errlen, "cannot update the user: %s",
		    moat_strerror(r));
		goto out;
	}
	ev = audit_event_new("user.password_reset", "success");
	if (ev != NULL && json_object_set_new(ev, "target", json_pack(
	    "{s:s, s:s}", "user", username, "id", c.user_id)) == 0)
		(void)json_object_set_new(ev, "details", json_pack(
		    "{s:s, s:b, s:i}", "via", "moatd reset-password",
		    "totp_cleared", had_totp, "sessions_revoked", c.revoked));
	if ((r = identity__audit_emit(au, ev)) != 0)
		log_warn(IDENTITY_COMPONENT, "could not audit a password reset",
		    LF_STR("user", username), LF_STR("error", moat_strerror(r)));
	memcpy(password_out, password, sizeof(password));
	log_info(IDENTITY_COMPONENT, "password reset on the host",
	    LF_STR("user", username), LF_BOOL("totp_cleared", had_totp),
	    LF_INT("sessions_revoked", c.revoked));
	r = 0;
out:
	sodium_memzero(password, sizeof(password));
	sodium_memzero(hash, sizeof(hash));
	if (identity__audit_close(au) != 0)
		log_warn(IDENTITY_COMPONENT, "the audit chain was not closed cleanly");
	json_decref(user);
	store_close(st);
	return r;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: moatd reset-password USER --data-dir DIR\n"
	    "\n"
	    "Gives USER a new random password, printed once; also turns off\n"
	    "their TOTP and ends their sessions. Audited. Works whether or not\n"
	    "moatd is running.\n");
}

int
moatd_reset_password_main(int argc, char **argv)
{
	const char *user = NULL, *dir = NULL;
	char password[IDENTITY_GENERATED_PASSWORD_LEN + 1], err[512];
	bool opts_done = false;
	int i, r;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!opts_done && strcmp(a, "--") == 0) {
			opts_done = true;
		} else if (!opts_done && (strcmp(a, "--help") == 0 ||
		    strcmp(a, "-h") == 0)) {
			usage(stdout);
			return 0;
		} else if (!opts_done && strcmp(a, "--data-dir") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "moatd reset-password: "
				    "--data-dir needs a directory\n");
				return 2;
			}
			dir = argv[++i];
		} else if (!opts_done && strncmp(a, "--data-dir=", 11) == 0) {
			dir = a + 11;
		} else if (!opts_done && a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "moatd reset-password: unknown option "
			    "%s\n", a);
			usage(stderr);
			return 2;
		} else if (user == NULL) {
			user = a;
		} else {
			fprintf(stderr, "moatd reset-password: only one USER may "
			    "be given\n");
			usage(stderr);
			return 2;
		}
	}
	if (user == NULL || dir == NULL || dir[0] == '\0') {
		usage(stderr);
		return 2;
	}
	r = identity_reset_password(dir, user, password, sizeof(password), err,
	    sizeof(err));
	if (r != 0) {
		fprintf(stderr, "moatd reset-password: %s\n", err[0] != '\0' ?
		    err : moat_strerror(r));
		return 1;
	}
	printf("new password for %s: %s\n", user, password);
	printf("TOTP is off for %s and their sessions are ended.\n", user);
	fflush(stdout);
	sodium_memzero(password, sizeof(password));
	return 0;
}
