/*
 * gw_hostkeys.c - the SSH gateway's host keys: Ed25519 and ECDSA P-256,
 * generated with libssh (OpenSSH private key text for Ed25519, PEM for
 * ECDSA; libssh and OpenSSH read both). `moatd init` puts them in the
 * secrets directory; serve creates them in DATA-DIR/ssh/ for a data
 * directory made before the gateway existed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libssh/libssh.h>

#include "log.h"

#include "gateway/gw.h"

static int
gen_one(enum ssh_keytypes_e type, int bits, char **out, size_t *len)
{
	ssh_key k = NULL;
	char *b64 = NULL;
	int r = MOAT_ERR_CRYPTO;

	*out = NULL;
	*len = 0;
	if (ssh_pki_generate(type, bits, &k) != SSH_OK ||
	    ssh_pki_export_privkey_base64(k, NULL, NULL, NULL, &b64) != SSH_OK)
		goto out;
	*len = strlen(b64);
	if ((*out = malloc(*len + 2)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	memcpy(*out, b64, *len);
	if (*len == 0 || (*out)[*len - 1] != '\n')
		(*out)[(*len)++] = '\n';
	(*out)[*len] = '\0';
	r = 0;
out:
	if (b64 != NULL) {
		explicit_bzero(b64, strlen(b64));
		ssh_string_free_char(b64);
	}
	ssh_key_free(k);
	return r;
}

int
gw_hostkeys_generate(char **ed25519, size_t *ed_len, char **ecdsa,
    size_t *ec_len)
{
	int r;

	*ecdsa = NULL;
	*ec_len = 0;
	if ((r = gen_one(SSH_KEYTYPE_ED25519, 0, ed25519, ed_len)) != 0)
		return r;
	if ((r = gen_one(SSH_KEYTYPE_ECDSA_P256, 256, ecdsa, ec_len)) != 0) {
		explicit_bzero(*ed25519, *ed_len);
		free(*ed25519);
		*ed25519 = NULL;
		*ed_len = 0;
	}
	return r;
}

static int
write_new(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	size_t off = 0;

	if (fd < 0)
		return moat_err_from_errno(errno);
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			unlink(path);
			return MOAT_ERR_IO;
		}
		off += (size_t)n;
	}
	if (fsync(fd) != 0) {
		close(fd);
		unlink(path);
		return MOAT_ERR_IO;
	}
	close(fd);
	return 0;
}

int
gw_hostkeys_ensure(const char *dir, char *ed_path, size_t ed_len,
    char *ec_path, size_t ec_len)
{
	char *ed = NULL, *ec = NULL;
	size_t edn = 0, ecn = 0;
	struct stat st;
	int r = 0;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return moat_err_from_errno(errno);
	if (snprintf(ed_path, ed_len, "%s/%s", dir, GW_HOSTKEY_ED25519) >=
	    (int)ed_len || snprintf(ec_path, ec_len, "%s/%s", dir,
	    GW_HOSTKEY_ECDSA) >= (int)ec_len)
		return MOAT_ERR_TOOBIG;
	if (stat(ed_path, &st) == 0 && stat(ec_path, &st) == 0)
		return 0;
	if ((r = gw_hostkeys_generate(&ed, &edn, &ec, &ecn)) != 0)
		return r;
	if (stat(ed_path, &st) != 0 && (r = write_new(ed_path, ed, edn)) != 0)
		goto out;
	if (stat(ec_path, &st) != 0 && (r = write_new(ec_path, ec, ecn)) != 0)
		goto out;
	log_info("ssh-gateway", "created SSH host keys", LF_STR("dir", dir));
out:
	if (ed != NULL) {
		explicit_bzero(ed, edn);
		free(ed);
	}
	if (ec != NULL) {
		explicit_bzero(ec, ecn);
		free(ec);
	}
	return r;
}
