/*
 * init.h - `moatd init DIR`: creates a complete development data directory.
 *
 * The directory gets two parts, built in DIR/.init-tmp-XXXXXX and renamed
 * into place only when everything is written, so a failure leaves DIR as it
 * was:
 *
 *   DIR/secrets/  what moatd reads, in the Kubernetes Secret layout (see
 *                 secretdir.h): tls.crt (server chain: leaf for localhost,
 *                 127.0.0.1 and ::1, then the CA), tls.key, ca.crt,
 *                 client-ca.crt (= the CA), jwt-signing.pem/.kid (ES256),
 *                 keyring.json (one 256-bit key "k1"), audit-signing.pem/
 *                 .pub/.kid (ES256), moatd-client.crt/.key (moatd's client
 *                 certificate "moatd", for its control link to moat-proxy),
 *                 ssh-host-ed25519.key and ssh-host-ecdsa.key (the SSH
 *                 gateway's host keys).
 *   DIR/pki/      what the operator keeps: ca.key (to issue more
 *                 certificates; never inside secrets/), ca.crt,
 *                 ingress.crt/.key (client certificate "ingress") and
 *                 moatd-client.crt/.key (client certificate "moatd") and
 *                 moat-proxy.crt/.key (server certificate "moat-proxy",
 *                 chain with the CA, for moat-proxy's control endpoint).
 *
 * Files are mode 0600, directories 0700. The process umask is set to 077
 * while init runs (so call it before starting threads).
 */
#ifndef MOATD_INIT_H
#define MOATD_INIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "errors.h"

struct moatd_init_opts {
	/* Replace the secrets and keys of a data directory that has them
	 * (otherwise such a directory is refused with MOAT_ERR_EXISTS). Other
	 * contents of DIR are left alone. */
	bool force;
	/* Where to print the summary of what was created (never key
	 * material); NULL prints nothing. Borrowed. */
	FILE *out;
	/* Receives a one-line description of a failure; may be NULL. */
	char *err;
	size_t errlen;
	/* Tests only: fail with MOAT_ERR_IO at the named step ("keys", "pki",
	 * "secrets", "move-old", "place-pki", "place-secrets"). NULL in real
	 * use. */
	const char *fail_at;
};

/* Creates the development data directory dir (made, mode 0700, if it does
 * not exist; its parent must). opts may be NULL for the defaults. */
int moatd_init_dir(const char *dir, const struct moatd_init_opts *opts)
    MOAT_MUST_CHECK;

/* The `moatd init` subcommand. argv[0] is "init" (main.c passes
 * argc - 1, argv + 1); accepts `DIR [--force]` and --help. Prints the summary
 * on stdout and errors on stderr. Returns the process exit status: 0 done,
 * 1 failed, 2 usage error. */
int moatd_init_main(int argc, char **argv);

#endif
