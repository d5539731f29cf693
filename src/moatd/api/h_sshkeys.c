/*
 * h_sshkeys.c - the caller's SSH public keys, which identify them at the
 * SSH gateway (collection COLL_SSH_KEYS).
 *
 * A key is parsed and vetted by sshkey.c (no DSA, no RSA under 2048 bits,
 * no certificates or options) and stored in canonical form with its
 * SHA-256 fingerprint. A fingerprint is unique across all users: one key
 * names one user; a name is unique among one user's keys. Document: {"id",
 * "user_id", "name", "type", "bits", "fingerprint", "public_key",
 * "comment"}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "identity/sshkey.h"
#include "store/schema.h"
#include "store/store.h"

#include "api/api.h"
#include "api/api_int.h"

int
v_sshkey_create(const json_t *body, char *err, size_t errlen)
{
	const char *line = json_get_str(body, "public_key");
	struct sshkey_info info;
	char why[160] = "";

	if (api__check_label(json_get_str(body, "name"), why, sizeof(why)) != 0) {
		snprintf(err, errlen, "name %s", why);
		return MOAT_ERR_INVAL;
	}
	memset(&info, 0, sizeof(info));
	if (line == NULL || sshkey_parse(line, strlen(line), &info, why,
	    sizeof(why)) != 0) {
		snprintf(err, errlen, "public_key: %s",
		    why[0] != '\0' ? why : "not an OpenSSH public key");
		return MOAT_ERR_INVAL;
	}
	free(info.canonical);
	return 0;
}

static json_t *
sshkey_view(const json_t *doc)
{
	return api__public(doc);
}

void
h_sshkeys_create(struct api_call *c)
{
	const char *name = json_get_str(c->body, "name");
	const char *line = json_get_str(c->body, "public_key");
	struct sshkey_info info;
	char why[160] = "", id[STORE_ID_GEN_LEN];
	json_t *doc = NULL, *other = NULL, *mine = NULL, *k;
	size_t i;
	int r;

	memset(&info, 0, sizeof(info));
	api__target(c, "ssh_key", "name", name);
	if (sshkey_parse(line, strlen(line), &info, why, sizeof(why)) != 0) {
		api_error(c, 400, "invalid_request", "public_key: %s", why);
		return;
	}
	c->audit_details = json_pack("{s:s,s:s,s:i}", "fingerprint",
	    info.fingerprint, "type", info.type, "bits", (int)info.bits);
	r = store_find_one(c->app->store, COLL_SSH_KEYS, "fingerprint",
	    info.fingerprint, &other);
	json_decref(other);
	if (r == 0) {
		api_error(c, 409, "exists", "this key is already registered");
		goto out;
	} else if (r != MOAT_ERR_NOTFOUND) {
		api__fail(c, r, "SSH key");
		goto out;
	}
	if ((r = store_list(c->app->store, COLL_SSH_KEYS, "user_id",
	    c->who->user_id, NULL, 0, &mine)) != 0) {
		api__fail(c, r, "SSH keys");
		goto out;
	}
	json_array_foreach(mine, i, k) {
		const char *n = json_get_str(k, "name");

		if (n != NULL && strcmp(n, name) == 0) {
			api_error(c, 409, "exists",
			    "you already have a key with that name");
			goto out;
		}
	}
	if ((r = store_new_id(id, sizeof(id))) != 0) {
		api__fail(c, r, "SSH key id");
		goto out;
	}
	doc = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:s,s:s}", "id", id,
	    "user_id", c->who->user_id, "name", name, "type", info.type, "bits", (int)info.bits, "fingerprint",
	    info.fingerprint, "public_key", info.canonical, "comment",
	    info.comment);
	if (doc == NULL) {
		api__fail(c, MOAT_ERR_NOMEM, "SSH key");
		goto out;
	}
	if ((r = store_insert(c->app->store, COLL_SSH_KEYS, doc)) != 0) {
		if (r == MOAT_ERR_EXISTS)
			api_error(c, 409, "exists",
			    "this key is already registered");
		else
			api__fail(c, r, "SSH key");
		goto out;
	}
	api__target(c, "ssh_key", "id", id);
	api_reply(c, 201, sshkey_view(doc));
out:
	free(info.canonical);
	json_decref(mine);
	json_decref(doc);
}

void
h_sshkeys_list(struct api_call *c)
{
	json_t *list = NULL, *out, *k;
	size_t i;
	int r;

	if ((r = store_list(c->app->store, COLL_SSH_KEYS, "user_id",
	    c->who->user_id, NULL, 0, &list)) != 0) {
		api__fail(c, r, "SSH keys");
		return;
	}
	if ((out = json_array()) == NULL) {
		json_decref(list);
		api__fail(c, MOAT_ERR_NOMEM, "SSH keys");
		return;
	}
	json_array_foreach(list, i, k)
		json_array_append_new(out, sshkey_view(k));
	json_decref(list);
	api_reply(c, 200, json_pack("{s:o}", COLL_SSH_KEYS, out));
}

void
h_sshkeys_delete(struct api_call *c)
{
	const char *kid = api_param(c, "id");
	json_t *doc = NULL;
	const char *owner;
	int r;

	api__target(c, "ssh_key", "id", kid);
	if (!store_valid_id(kid)) {
		api__fail(c, MOAT_ERR_NOTFOUND, "SSH key");
		return;
	}
	if ((r = store_get(c->app->store, COLL_SSH_KEYS, kid, &doc)) != 0) {
		api__fail(c, r, "SSH key");
		return;
	}
	owner = json_get_str(doc, "user_id");
	if (owner == NULL || strcmp(owner, c->who->user_id) != 0) {
		/* Another user's key: no hint that it exists. */
		api__fail(c, MOAT_ERR_NOTFOUND, "SSH key");
		goto out;
	}
	c->audit_details = json_pack("{s:s?}", "fingerprint",
	    json_get_str(doc, "fingerprint"));
	if ((r = store_delete(c->app->store, COLL_SSH_KEYS, kid,
	    json_get_int(doc, "rev", -1))) != 0) {
		api__fail(c, r, "SSH key");
		goto out;
	}
	api_reply(c, 204, NULL);
out:
	json_decref(doc);
}
