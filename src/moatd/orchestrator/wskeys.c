/*
 * wskeys.c - SSH key pairs for workspaces (orch_int.h): each workspace has
 * its own access key (the gateway's key into that workspace's sshd) and
 * its own host key (pinned by the gateway). Generated with libssh; the
 * private halves go straight into envelope encryption.
 */
#include <stdlib.h>
#include <string.h>

#include <libssh/libssh.h>
#include <sodium.h>

#include "errors.h"

#include "orchestrator/orch_int.h"

int
orch__ssh_keygen(char **priv, char **pub)
{
	ssh_key key = NULL;
	char *b64priv = NULL, *b64pub = NULL, *line = NULL;
	size_t n;
	int r = MOAT_ERR_CRYPTO;

	*priv = NULL;
	*pub = NULL;
	if (ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &key) != SSH_OK ||
	    ssh_pki_export_privkey_base64(key, NULL, NULL, NULL,
	    &b64priv) != SSH_OK ||
	    ssh_pki_export_pubkey_base64(key, &b64pub) != SSH_OK)
		goto out;
	n = strlen("ssh-ed25519 ") + strlen(b64pub) + 1;
	if ((line = malloc(n)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	snprintf(line, n, "ssh-ed25519 %s", b64pub);
	if ((*priv = strdup(b64priv)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	*pub = line;
	line = NULL;
	r = 0;
out:
	if (b64priv != NULL) {
		sodium_memzero(b64priv, strlen(b64priv));
		ssh_string_free_char(b64priv);
	}
	ssh_string_free_char(b64pub);
	free(line);
	ssh_key_free(key);
	return r;
}
