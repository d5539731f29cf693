/*
 * totp.c - time-based one-time passwords (RFC 6238) through liboath.
 *
 * Enrollment makes a 20-byte seed, seals it (secrets/envelope.h) for the
 * record users/<id>/totp_pending and returns an otpauth:// URI for an
 * authenticator app. The first valid code confirms it: the seed is sealed
 * again for users/<id>/totp_seed (the associated data names the field it
 * lives in, so the two cannot be swapped) and the pending copy removed.
 * Until then login does not ask for a code, so a half-finished enrollment
 * cannot lock anyone out. An enrolled user must disable TOTP before
 * enrolling again.
 *
 * Codes: 6 digits, 30-second steps, SHA-1, one step of drift either way.
 * The step of the last accepted code is kept ("totp_last_step") and a code
 * for that step or an earlier one is refused, so a code seen over a
 * shoulder cannot be replayed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <liboath/oath.h>
#include <sodium.h>

#include "identity/identity_int.h"
#include "log.h"
#include "secrets/envelope.h"
#include "secrets/keys.h"
#include "store/store.h"

#define TOTP_SEED_BYTES 20
#define TOTP_STEP_S 30
#define TOTP_DIGITS 6
#define TOTP_WINDOW 1

bool
identity_totp_enabled(const json_t *user)
{
	json_t *sealed = json_object_get(user, "sealed");

	return json_is_object(sealed) &&
	    json_is_string(json_object_get(sealed, "totp_seed"));
}

struct pending_ctx {
	const char *sealed;
};

static int
pending_mutate(json_t *doc, void *arg)
{
	struct pending_ctx *c = arg;
	json_t *sealed = json_object_get(doc, "sealed");

	if (identity_totp_enabled(doc))
		return MOAT_ERR_EXISTS;
	if (!json_is_object(sealed)) {
		if ((sealed = json_object()) == NULL ||
		    json_object_set_new(doc, "sealed", sealed) != 0)
			return MOAT_ERR_NOMEM;
	}
	return json_object_set_new(sealed, "totp_pending",
	    json_string(c->sealed)) == 0 ? 0 : MOAT_ERR_NOMEM;
}

int
identity_totp_enroll(struct identity *id, const char *user_id,
    char **otpauth_uri)
{
	unsigned char seed[TOTP_SEED_BYTES];
	struct keyset *ks = NULL;
	json_t *user = NULL;
	char *sealed = NULL, *b32 = NULL, *uri = NULL;
	size_t b32len = 0, urilen;
	struct pending_ctx c;
	const char *name;
	int r, n;

	*otpauth_uri = NULL;
	if (user_id == NULL)
		return MOAT_ERR_NOTFOUND;
	if ((r = store_get(id->store, IDENTITY_USERS, user_id, &user)) != 0)
		goto out;
	name = json_string_value(json_object_get(user, "username"));
	if (name == NULL) {
		r = MOAT_ERR_CORRUPT;
		goto out;
	}
	if (identity_totp_enabled(user)) {
		r = MOAT_ERR_EXISTS;
		goto out;
	}
	if (id->keys == NULL || (ks = keys_current(id->keys)) == NULL) {
		r = MOAT_ERR_CRYPTO;
		goto out;
	}
	if ((r = identity__random(seed, sizeof(seed))) != 0)
		goto out;
	if ((r = envelope_seal(ks, IDENTITY_USERS, user_id, "totp_pending", seed,
	    sizeof(seed), &sealed)) != 0)
		goto out;
	if (oath_base32_encode((const char *)seed, sizeof(seed), &b32,
	    &b32len) != OATH_OK) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	urilen = 128 + strlen(name) + b32len;
	if ((uri = malloc(urilen)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	/* The name rule keeps the user name free of URI-special characters. */
	n = snprintf(uri, urilen, "otpauth://totp/moat:%s?secret=%s&issuer=moat"
	    "&algorithm=SHA1&digits=%d&period=%d", name, b32, TOTP_DIGITS,
	    TOTP_STEP_S);
	if (n < 0 || (size_t)n >= urilen) {
		r = MOAT_ERR_TOOBIG;
		goto out;
	}
	c.sealed = sealed;
	if ((r = identity__update(id->store, IDENTITY_USERS, user_id, pending_mutate,
	    &c, NULL)) != 0)
		goto out;
	*otpauth_uri = uri;
	uri = NULL;
	r = 0;
out:
	sodium_memzero(seed, sizeof(seed));
	if (b32 != NULL) {
		sodium_memzero(b32, b32len);
		free(b32);
	}
	if (uri != NULL) {
		sodium_memzero(uri, strlen(uri));
		free(uri);
	}
	free(sealed);
	if (ks != NULL)
		keyset_unref(ks);
	json_decref(user);
	return r;
}

struct confirm_ctx {
	uint64_t step;
	const char *pending;	/* the sealed value checked, when pending */
	const char *seed;	/* the same seed sealed as totp_seed */
};

static int
confirm_mutate(json_t *doc, void *arg)
{
	struct confirm_ctx *c = arg;
	json_t *sealed = json_object_get(doc, "sealed");
	json_int_t last = json_integer_value(json_object_get(doc,
	    "totp_last_step"));

	/* Re-checked on the fresh document: two logins racing with one code
	 * cannot both pass. */
	if (json_object_get(doc, "totp_last_step") != NULL &&
	    (uint64_t)last >= c->step)
		return MOAT_ERR_PERM;
	if (c->pending != NULL) {
		const char *cur = json_string_value(json_object_get(sealed,
		    "totp_pending"));

		if (cur == NULL || strcmp(cur, c->pending) != 0)
			return MOAT_ERR_PERM;	/* enrollment changed meanwhile */
		if (json_object_set_new(sealed, "totp_seed",
		    json_string(c->seed)) != 0)
			return MOAT_ERR_NOMEM;
		json_object_del(sealed, "totp_pending");
	}
	return json_object_set_new(doc, "totp_last_step",
	    json_integer((json_int_t)c->step)) == 0 ? 0 : MOAT_ERR_NOMEM;
}

int
identity_totp_verify(struct identity *id, const json_t *user,
    const char *code)
{
	struct keyset *ks = NULL;
	struct confirm_ctx c = { 0 };
	const char *uid = json_string_value(json_object_get(user, "id"));
	json_t *sealed = json_object_get(user, "sealed");
	const char *value, *field;
	char *reseal = NULL;
	uint8_t *plain = NULL;
	size_t len = 0, i;
	uint64_t counter = 0;
	int pos = 0, r;

	if (uid == NULL)
		return MOAT_ERR_NOTFOUND;
	if ((value = json_string_value(json_object_get(sealed, "totp_seed")))
	    != NULL)
		field = "totp_seed";
	else if ((value = json_string_value(json_object_get(sealed,
	    "totp_pending"))) != NULL)
		field = "totp_pending";
	else
		return MOAT_ERR_NOTFOUND;
	if (code == NULL || strlen(code) != TOTP_DIGITS)
		return MOAT_ERR_PERM;
	for (i = 0; i < TOTP_DIGITS; i++)
		if (code[i] < '0' || code[i] > '9')
			return MOAT_ERR_PERM;
	if (id->keys == NULL || (ks = keys_current(id->keys)) == NULL)
		return MOAT_ERR_CRYPTO;
	if ((r = envelope_open(ks, IDENTITY_USERS, uid, field, value, &plain,
	    &len)) != 0) {
		log_warn(IDENTITY_COMPONENT, "cannot open a TOTP seed",
		    LF_STR("user_id", uid), LF_STR("error", moat_strerror(r)));
		goto out;
	}
	if (oath_totp_validate3((const char *)plain, len, (time_t)identity__now_s(),
	    TOTP_STEP_S, 0, TOTP_WINDOW, &pos, &counter, code) < 0) {
		r = MOAT_ERR_PERM;
		goto out;
	}
	c.step = counter;
	if (strcmp(field, "totp_pending") == 0) {
		c.pending = value;
		if ((r = envelope_seal(ks, IDENTITY_USERS, uid, "totp_seed", plain,
		    len, &reseal)) != 0)
			goto out;
		c.seed = reseal;
	}
	r = identity__update(id->store, IDENTITY_USERS, uid, confirm_mutate, &c, NULL);
out:
	envelope_free(plain, len);
	free(reseal);
	if (ks != NULL)
		keyset_unref(ks);
	return r;
}

/* Removes TOTP from a user document (identity__clear_totp). */
void
identity__clear_totp(json_t *doc)
{
	json_t *sealed = json_object_get(doc, "sealed");

	if (json_is_object(sealed)) {
		json_object_del(sealed, "totp_seed");
		json_object_del(sealed, "totp_pending");
		if (json_object_size(sealed) == 0)
			json_object_del(doc, "sealed");
	}
	json_object_del(doc, "totp_last_step");
}

static int
disable_mutate(json_t *doc, void *arg)
{
	(void)arg;
	identity__clear_totp(doc);
	return 0;
}

int
identity_totp_disable(struct identity *id, const char *user_id)
{
	if (user_id == NULL)
		return MOAT_ERR_NOTFOUND;
	return identity__update(id->store, IDENTITY_USERS, user_id, disable_mutate,
	    NULL, NULL);
}
