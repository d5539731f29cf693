/*
 * h_sshinfo.c - where the SSH gateway is and which host keys it shows:
 *
 *   GET /api/v1/ssh/info  {"host", "port", "host_keys": ["TYPE BASE64"...]}
 *
 * PERM_SELF: every logged-in user may ask. The moat CLI writes these keys
 * into its own known_hosts file and runs OpenSSH with strict host key
 * checking; it trusts this answer because the API connection itself is
 * verified (system CA, --ca-file or the certificate pinned at login).
 *
 * host and port come from ssh-public-address (what clients dial, e.g. a
 * load balancer's name), or, when that is unset, from ssh-listen. The keys
 * are the public halves of the gateway's host key files, read on each call
 * from where serve_api.c's start_gateway finds them (the secrets directory,
 * else DATA-DIR/ssh/), so the answer follows a replaced key the way new
 * gateway sessions do. Only the public half ever leaves this file.
 * Without a gateway (ssh-listen empty) the answer is 404.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "app.h"
#include "config.h"
#include "log.h"
#include "gateway/gw.h"

#include "api/api.h"
#include "api/api_int.h"

#define SSHINFO_HOST_MAX 256

/* "host:port", "[v6]:port" -> host (brackets removed) and port 1..65535.
 * MOAT_ERR_INVAL when malformed. */
static int
split_hostport(const char *s, char *host, size_t hostlen, long *port)
{
	const char *colon, *h = s, *hend;
	char *end;
	long p;

	if (s[0] == '[') {
		if ((hend = strchr(s, ']')) == NULL || hend[1] != ':')
			return MOAT_ERR_INVAL;
		h = s + 1;
		colon = hend + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return MOAT_ERR_INVAL;
		hend = colon;
	}
	if ((size_t)(hend - h) >= hostlen)
		return MOAT_ERR_INVAL;
	p = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || p < 1 ||
	    p > 65535)
		return MOAT_ERR_INVAL;
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	*port = p;
	return 0;
}

/* "TYPE BASE64" of the public half of the private key file path (new
 * reference), or NULL. */
static json_t *
public_line(const char *path)
{
	ssh_key priv = NULL, pub = NULL;
	char *b64 = NULL;
	const char *type;
	json_t *line = NULL;

	if (ssh_pki_import_privkey_file(path, NULL, NULL, NULL, &priv) !=
	    SSH_OK || ssh_pki_export_privkey_to_pubkey(priv, &pub) != SSH_OK)
		goto out;
	type = ssh_key_type_to_char(ssh_key_type(pub));
	if (type == NULL || ssh_pki_export_pubkey_base64(pub, &b64) != SSH_OK)
		goto out;
	line = json_sprintf("%s %s", type, b64);
out:
	ssh_string_free_char(b64);
	ssh_key_free(pub);
	ssh_key_free(priv);	/* libssh and OpenSSL clear the private key */
	return line;
}

/* The host key file paths, as start_gateway chooses them. */
static int
key_paths(const struct app *app, char *ed, char *ec, size_t len)
{
	const char *sdir = config_str(app->cfg, "secrets-dir");
	char dir[PATH_MAX];
	int n;

	if (sdir != NULL && sdir[0] != '\0')
		n = snprintf(dir, sizeof(dir), "%s", sdir);
	else
		n = snprintf(dir, sizeof(dir), "%s/secrets", app->data_dir);
	if (n < 0 || (size_t)n >= sizeof(dir))
		return MOAT_ERR_TOOBIG;
	for (int i = 0; i < 2; i++) {
		if (snprintf(ed, len, "%s/%s", dir, GW_HOSTKEY_ED25519) >=
		    (int)len || snprintf(ec, len, "%s/%s", dir,
		    GW_HOSTKEY_ECDSA) >= (int)len)
			return MOAT_ERR_TOOBIG;
		if (access(ed, R_OK) == 0 && access(ec, R_OK) == 0)
			return 0;
		if (snprintf(dir, sizeof(dir), "%s/ssh", app->data_dir) >=
		    (int)sizeof(dir))
			return MOAT_ERR_TOOBIG;
	}
	return MOAT_ERR_NOTFOUND;
}

void
h_sshinfo(struct api_call *c)
{
	const char *addr = config_str(c->app->cfg, "ssh-public-address");
	const char *listen = config_str(c->app->cfg, "ssh-listen");
	char host[SSHINFO_HOST_MAX], ed[PATH_MAX], ec[PATH_MAX];
	json_t *keys = NULL, *k;
	long port;
	int r;

	if (c->app->gateway == NULL || listen == NULL || listen[0] == '\0') {
		api_error(c, 404, "not_found", "this server's SSH gateway is "
		    "turned off");
		return;
	}
	if (addr == NULL || addr[0] == '\0')
		addr = listen;
	if (split_hostport(addr, host, sizeof(host), &port) != 0) {
		log_error("api", "ssh-public-address (or ssh-listen) is not "
		    "HOST:PORT", LF_STR("value", addr));
		api_error(c, 500, "internal", "the SSH gateway's address is "
		    "misconfigured");
		return;
	}
	if ((r = key_paths(c->app, ed, ec, sizeof(ed))) != 0) {
		api__fail(c, r == MOAT_ERR_NOTFOUND ? MOAT_ERR_IO : r,
		    "ssh host key files");
		return;
	}
	if ((keys = json_array()) == NULL) {
		api__fail(c, MOAT_ERR_NOMEM, "ssh info");
		return;
	}
	/* Ed25519 first: OpenSSH clients prefer it. */
	if ((k = public_line(ed)) == NULL || json_array_append_new(keys, k) !=
	    0 || (k = public_line(ec)) == NULL ||
	    json_array_append_new(keys, k) != 0) {
		log_error("api", "cannot read the SSH host keys",
		    LF_STR("ed25519", ed), LF_STR("ecdsa", ec));
		json_decref(keys);
		api__fail(c, MOAT_ERR_IO, "ssh host keys");
		return;
	}
	api_reply(c, 200, json_pack("{s:s,s:I,s:o}", "host", host, "port",
	    (json_int_t)port, "host_keys", keys));
}
