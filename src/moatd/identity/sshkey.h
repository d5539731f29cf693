/*
 * sshkey.h - parsing and vetting of OpenSSH public keys ("authorized_keys"
 * lines) that users register for the SSH gateway.
 *
 * Accepted: ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa with a
 * modulus of at least 2048 bits, and the FIDO variants
 * sk-ssh-ed25519@openssh.com and sk-ecdsa-sha2-nistp256@openssh.com.
 * Refused with a clear reason: ssh-dss, short RSA, certificates, options
 * before the key type, a blob whose inner type differs from the outer one,
 * malformed base64 or blob structure, trailing bytes, lines over 16 KiB.
 * Untrusted input: fuzz target.
 */
#ifndef MOATD_SSHKEY_H
#define MOATD_SSHKEY_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct sshkey_info {
	char type[48];		/* "ssh-ed25519" */
	unsigned bits;		/* 256 for ed25519, modulus bits for RSA */
	char fingerprint[64];	/* "SHA256:" + unpadded base64 of SHA-256(blob) */
	char comment[256];	/* may be empty; truncated */
	char *canonical;	/* "TYPE BASE64" without comment; caller frees */
};

/* Parses one line. On success fills info (free info->canonical). */
int sshkey_parse(const char *line, size_t len, struct sshkey_info *info,
    char *err, size_t errlen) MOAT_MUST_CHECK;

#endif
