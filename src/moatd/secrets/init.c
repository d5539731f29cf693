/*
 * init.c - `moatd init DIR`: the development CA, certificates and keys,
 * written as a data directory moatd can start from (see init.h).
 *
 * Order of work: generate every key and certificate in memory; write them
 * under DIR/.init-tmp-XXXXXX (pki/ as plain files, secrets/ through
 * moatd_secrets_swap so it has the exact Kubernetes layout); move an old
 * pki/ and secrets/ aside when --force; rename the new ones into place; and
 * remove the temporary directory, which by then holds only the old copies.
 * Every step before the last renames can fail without touching DIR, and a
 * failing rename puts back what was moved.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "buf.h"
#include "gateway/gw.h"
#include "identity/bootstrap.h"
#include "secrets/init.h"
#include "secrets/pki.h"
#include "secrets/secretdir.h"

#define INIT_CA_DAYS		3650
#define INIT_LEAF_DAYS		365
#define INIT_KEYRING_BYTES	32
#define INIT_PEM_MAX		(64 * 1024)

/* Everything init generates, in memory. */
struct init_material {
	EVP_PKEY *ca_key, *tls_key, *ingress_key, *client_key, *proxy_key;
	EVP_PKEY *jwt_key, *audit_key;
	X509 *ca, *tls, *ingress, *client, *proxy;
	char jwt_kid[PKI_KID_LEN + 1], audit_kid[PKI_KID_LEN + 1];
};

static void
init_material_free(struct init_material *m)
{
	EVP_PKEY_free(m->ca_key);
	EVP_PKEY_free(m->tls_key);
	EVP_PKEY_free(m->ingress_key);
	EVP_PKEY_free(m->client_key);
	EVP_PKEY_free(m->proxy_key);
	EVP_PKEY_free(m->jwt_key);
	EVP_PKEY_free(m->audit_key);
	X509_free(m->ca);
	X509_free(m->tls);
	X509_free(m->ingress);
	X509_free(m->client);
	X509_free(m->proxy);
	memset(m, 0, sizeof(*m));
}

static void __attribute__((format(printf, 2, 3)))
init_errf(const struct moatd_init_opts *o, const char *fmt, ...)
{
	va_list ap;

	if (o->err == NULL || o->errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(o->err, o->errlen, fmt, ap);
	va_end(ap);
}

static bool
init_fault(const struct moatd_init_opts *o, const char *step)
{
	return o->fail_at != NULL && strcmp(o->fail_at, step) == 0;
}

static int
init_generate(struct init_material *m)
{
	static const char *const localhost_dns[] = { "localhost", NULL };
	static const char *const localhost_ips[] = { "127.0.0.1", "::1", NULL };
	static const char *const ingress_dns[] = { "ingress", NULL };
	static const char *const moatd_dns[] = { "moatd", NULL };
	static const char *const proxy_dns[] = { "moat-proxy", NULL };
	const struct pki_cert_spec ca = {
		.common_name = "moat development CA", .days = INIT_CA_DAYS,
		.ca = true,
	};
	const struct pki_cert_spec tls = {
		.common_name = "localhost", .dns = localhost_dns,
		.ips = localhost_ips, .days = INIT_LEAF_DAYS,
		.eku = PKI_EKU_SERVER,
	};
	const struct pki_cert_spec ingress = {
		.common_name = "ingress", .dns = ingress_dns,
		.days = INIT_LEAF_DAYS, .eku = PKI_EKU_CLIENT,
	};
	const struct pki_cert_spec client = {
		.common_name = "moatd", .dns = moatd_dns,
		.days = INIT_LEAF_DAYS, .eku = PKI_EKU_CLIENT,
	};
	/* moat-proxy's control endpoint: moatd checks this name. */
	const struct pki_cert_spec proxy = {
		.common_name = "moat-proxy", .dns = proxy_dns,
		.days = INIT_LEAF_DAYS, .eku = PKI_EKU_SERVER,
	};
	int r;

	if ((r = pki_key_new(&m->ca_key)) != 0 ||
	    (r = pki_key_new(&m->tls_key)) != 0 ||
	    (r = pki_key_new(&m->ingress_key)) != 0 ||
	    (r = pki_key_new(&m->client_key)) != 0 ||
	    (r = pki_key_new(&m->proxy_key)) != 0 ||
	    (r = pki_key_new(&m->jwt_key)) != 0 ||
	    (r = pki_key_new(&m->audit_key)) != 0)
		return r;
	if ((r = pki_cert_new(&m->ca, &ca, m->ca_key, NULL, NULL)) != 0 ||
	    (r = pki_cert_new(&m->tls, &tls, m->tls_key, m->ca, m->ca_key))
	    != 0 ||
	    (r = pki_cert_new(&m->ingress, &ingress, m->ingress_key, m->ca,
	    m->ca_key)) != 0 ||
	    (r = pki_cert_new(&m->client, &client, m->client_key, m->ca,
	    m->ca_key)) != 0 ||
	    (r = pki_cert_new(&m->proxy, &proxy, m->proxy_key, m->ca,
	    m->ca_key)) != 0)
		return r;
	if ((r = pki_key_id(m->jwt_key, m->jwt_kid, sizeof(m->jwt_kid))) != 0 ||
	    (r = pki_key_id(m->audit_key, m->audit_kid,
	    sizeof(m->audit_kid))) != 0)
		return r;
	return 0;
}

/* Writes keyring.json's text into out (wiped by the caller). */
static int
init_keyring(char *out, size_t outlen, size_t *len)
{
	unsigned char key[INIT_KEYRING_BYTES];
	char b64[4 * ((INIT_KEYRING_BYTES + 2) / 3) + 1], created[32];
	time_t now = time(NULL);
	struct tm tm;
	int n, r = MOAT_ERR_CRYPTO;

	if (RAND_bytes(key, sizeof(key)) != 1)
		goto out;
	if (EVP_EncodeBlock((unsigned char *)b64, key, sizeof(key)) !=
	    (int)sizeof(b64) - 1)
		goto out;
	r = MOAT_ERR_INVAL;
	if (gmtime_r(&now, &tm) == NULL || strftime(created, sizeof(created),
	    "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		goto out;
	n = snprintf(out, outlen, "{\"primary\": \"k1\", \"keys\": [{\"id\": "
	    "\"k1\", \"key\": \"%s\", \"created\": \"%s\"}]}\n", b64, created);
	if (n < 0 || (size_t)n >= outlen) {
		r = MOAT_ERR_TOOBIG;
		goto out;
	}
	*len = (size_t)n;
	r = 0;
out:
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(b64, sizeof(b64));
	return r;
}

/* PEM texts of the files; private keys in wiped memory. */
struct init_files {
	struct buf tls_chain, ca, ingress, client, proxy, audit_pub;
	char *tls_key, *ca_key, *ingress_key, *client_key, *proxy_key;
	char *jwt_key, *audit_key;
	size_t tls_key_len, ca_key_len, ingress_key_len, client_key_len;
	size_t proxy_key_len;
	size_t jwt_key_len, audit_key_len;
	char keyring[256];
	size_t keyring_len;
	char *ssh_ed, *ssh_ec;		/* SSH gateway host keys */
	size_t ssh_ed_len, ssh_ec_len;
};

static void
init_files_init(struct init_files *f)
{
	memset(f, 0, sizeof(*f));
	buf_init(&f->tls_chain, INIT_PEM_MAX);
	buf_init(&f->ca, INIT_PEM_MAX);
	buf_init(&f->ingress, INIT_PEM_MAX);
	buf_init(&f->client, INIT_PEM_MAX);
	buf_init(&f->proxy, INIT_PEM_MAX);
	buf_init(&f->audit_pub, INIT_PEM_MAX);
}

static void
init_files_free(struct init_files *f)
{
	buf_free(&f->tls_chain);
	buf_free(&f->ca);
	buf_free(&f->ingress);
	buf_free(&f->client);
	buf_free(&f->proxy);
	buf_free(&f->audit_pub);
	pki_secret_free(f->tls_key, f->tls_key_len);
	pki_secret_free(f->ca_key, f->ca_key_len);
	pki_secret_free(f->ingress_key, f->ingress_key_len);
	pki_secret_free(f->client_key, f->client_key_len);
	pki_secret_free(f->proxy_key, f->proxy_key_len);
	pki_secret_free(f->jwt_key, f->jwt_key_len);
	pki_secret_free(f->audit_key, f->audit_key_len);
	OPENSSL_cleanse(f->keyring, sizeof(f->keyring));
	if (f->ssh_ed != NULL)
		OPENSSL_cleanse(f->ssh_ed, f->ssh_ed_len);
	if (f->ssh_ec != NULL)
		OPENSSL_cleanse(f->ssh_ec, f->ssh_ec_len);
	free(f->ssh_ed);
	free(f->ssh_ec);
	memset(f, 0, sizeof(*f));
}

static int
init_encode(const struct init_material *m, struct init_files *f)
{
	int r;

	if ((r = pki_cert_pem(m->tls, &f->tls_chain)) != 0 ||
	    (r = pki_cert_pem(m->ca, &f->tls_chain)) != 0 ||
	    (r = pki_cert_pem(m->ca, &f->ca)) != 0 ||
	    (r = pki_cert_pem(m->ingress, &f->ingress)) != 0 ||
	    (r = pki_cert_pem(m->client, &f->client)) != 0 ||
	    (r = pki_cert_pem(m->proxy, &f->proxy)) != 0 ||
	    (r = pki_cert_pem(m->ca, &f->proxy)) != 0 ||
	    (r = pki_pubkey_pem(m->audit_key, &f->audit_pub)) != 0)
		return r;
	if ((r = pki_key_pem(m->tls_key, &f->tls_key, &f->tls_key_len)) != 0 ||
	    (r = pki_key_pem(m->ca_key, &f->ca_key, &f->ca_key_len)) != 0 ||
	    (r = pki_key_pem(m->ingress_key, &f->ingress_key,
	    &f->ingress_key_len)) != 0 ||
	    (r = pki_key_pem(m->client_key, &f->client_key,
	    &f->client_key_len)) != 0 ||
	    (r = pki_key_pem(m->proxy_key, &f->proxy_key,
	    &f->proxy_key_len)) != 0 ||
	    (r = pki_key_pem(m->jwt_key, &f->jwt_key, &f->jwt_key_len)) != 0 ||
	    (r = pki_key_pem(m->audit_key, &f->audit_key, &f->audit_key_len))
	    != 0)
		return r;
	if ((r = gw_hostkeys_generate(&f->ssh_ed, &f->ssh_ed_len, &f->ssh_ec,
	    &f->ssh_ec_len)) != 0)
		return r;
	return init_keyring(f->keyring, sizeof(f->keyring), &f->keyring_len);
}

static int
init_write_pki(int tmpfd, const struct init_material *m,
    const struct init_files *f)
{
	const struct moatd_secret_file files[] = {
		{ "ca.key", f->ca_key, f->ca_key_len },
		{ "ca.crt", f->ca.data, f->ca.len },
		{ "ingress.crt", f->ingress.data, f->ingress.len },
		{ "ingress.key", f->ingress_key, f->ingress_key_len },
		{ "moatd-client.crt", f->client.data, f->client.len },
		{ "moatd-client.key", f->client_key, f->client_key_len },
		{ "moat-proxy.crt", f->proxy.data, f->proxy.len },
		{ "moat-proxy.key", f->proxy_key, f->proxy_key_len },
	};
	int r = MOAT_ERR_IO, fd = -1;
	size_t i;

	(void)m;
	if (mkdirat(tmpfd, "pki", 0700) != 0 ||
	    (fd = openat(tmpfd, "pki", O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) < 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if ((r = moatd_secrets_write_file(fd, files[i].name,
		    files[i].data, files[i].len)) != 0)
			goto out;
	if (fsync(fd) != 0) {
		r = moat_err_from_errno(errno);
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static int
init_write_secrets(const char *tmpdir, const struct init_material *m,
    const struct init_files *f)
{
	const struct moatd_secret_file files[] = {
		{ "tls.crt", f->tls_chain.data, f->tls_chain.len },
		{ "tls.key", f->tls_key, f->tls_key_len },
		{ "ca.crt", f->ca.data, f->ca.len },
		{ "client-ca.crt", f->ca.data, f->ca.len },
		{ "moatd-client.crt", f->client.data, f->client.len },
		{ "moatd-client.key", f->client_key, f->client_key_len },
		{ "jwt-signing.pem", f->jwt_key, f->jwt_key_len },
		{ "jwt-signing.kid", m->jwt_kid, strlen(m->jwt_kid) },
		{ "keyring.json", f->keyring, f->keyring_len },
		{ "audit-signing.pem", f->audit_key, f->audit_key_len },
		{ "audit-signing.pub", f->audit_pub.data, f->audit_pub.len },
		{ "audit-signing.kid", m->audit_kid, strlen(m->audit_kid) },
		{ GW_HOSTKEY_ED25519, f->ssh_ed, f->ssh_ed_len },
		{ GW_HOSTKEY_ECDSA, f->ssh_ec, f->ssh_ec_len },
	};
	char path[PATH_MAX];
	int n;

	n = snprintf(path, sizeof(path), "%s/secrets", tmpdir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return MOAT_ERR_TOOBIG;
	if (mkdir(path, 0700) != 0)
		return moat_err_from_errno(errno);
	return moatd_secrets_swap(path, files, sizeof(files) / sizeof(files[0]),
	    0);
}

static int
init_rmtree_cb(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* rm -r path, never following symlinks. */
static int
init_rmtree(const char *path)
{
	if (nftw(path, init_rmtree_cb, 16, FTW_DEPTH | FTW_PHYS) != 0 &&
	    errno != ENOENT)
		return moat_err_from_errno(errno);
	return 0;
}

/* 1 when name exists in dfd (as anything), 0 when not, or an error. */
static int
init_exists(int dfd, const char *name)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	return errno == ENOENT ? 0 : moat_err_from_errno(errno);
}

static void
init_print_summary(FILE *out, const char *dir, const struct init_material *m)
{
	char abs[PATH_MAX];
	const char *d = realpath(dir, abs) != NULL ? abs : dir;

	fprintf(out,
	    "moatd init: created a development data directory in %s\n"
	    "\n"
	    "  %s/secrets/  read by moatd (Kubernetes Secret layout)\n"
	    "    tls.crt, tls.key          HTTPS server certificate for "
	    "localhost, 127.0.0.1 and ::1 (1 year)\n"
	    "    ca.crt, client-ca.crt     the development CA (10 years); "
	    "trust ca.crt in curl or a browser\n"
	    "    jwt-signing.pem/.kid      ES256 token signing key, key id %s\n"
	    "    keyring.json              key-encryption keyring, primary "
	    "key k1 (256 bits)\n"
	    "    audit-signing.pem/.pub/.kid  ES256 audit checkpoint key, "
	    "key id %s\n"
	    "    moatd-client.crt/.key     moatd's client certificate \"moatd\" "
	    "(its control link to moat-proxy)\n"
	    "    ssh-host-ed25519.key, ssh-host-ecdsa.key  SSH gateway host "
	    "keys\n"
	    "\n"
	    "  %s/pki/  kept by the operator, never given to moatd\n"
	    "    ca.key, ca.crt            the CA's key, to issue more "
	    "certificates\n"
	    "    ingress.crt, ingress.key  client certificate \"ingress\" "
	    "(for the ingress in front of moatd)\n"
	    "    moatd-client.crt/.key     client certificate \"moatd\" "
	    "(moatd's internal control link)\n"
	    "    moat-proxy.crt/.key       server certificate \"moat-proxy\" "
	    "(moat-proxy's control endpoint; chain with the CA)\n"
	    "\n"
	    "Try: curl --cacert %s/secrets/ca.crt https://localhost:8443/healthz\n",
	    d, d, m->jwt_kid, m->audit_kid, d, d);
	fflush(out);
}

int
moatd_init_dir(const char *dir, const struct moatd_init_opts *opts)
{
	static const struct moatd_init_opts defaults;
	const struct moatd_init_opts *o = opts != NULL ? opts : &defaults;
	struct init_material m;
	struct init_files f;
	char tmp[PATH_MAX];
	int r = MOAT_ERR_INVAL, dfd = -1, tmpfd = -1, n;
	int has_secrets = 0, has_pki = 0;
	bool made_dir = false, made_tmp = false;
	bool old_secrets = false, old_pki = false;
	bool placed_pki = false, placed_secrets = false, undo_failed = false;
	mode_t old_umask = umask(077);

	memset(&m, 0, sizeof(m));
	init_files_init(&f);
	if (o->err != NULL && o->errlen > 0)
		o->err[0] = '\0';
	if (dir == NULL || dir[0] == '\0') {
		init_errf(o, "no data directory given");
		goto out;
	}
	n = snprintf(tmp, sizeof(tmp), "%s/.init-tmp-XXXXXX", dir);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		r = MOAT_ERR_TOOBIG;
		init_errf(o, "data directory path is too long");
		goto out;
	}

	if (mkdir(dir, 0700) == 0)
		made_dir = true;
	else if (errno != EEXIST) {
		r = moat_err_from_errno(errno);
		init_errf(o, "cannot create %s: %s", dir, strerror(errno));
		goto out;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = moat_err_from_errno(errno);
		init_errf(o, "cannot open %s: %s", dir, strerror(errno));
		goto out;
	}
	has_secrets = init_exists(dfd, "secrets");
	has_pki = init_exists(dfd, "pki");
	if (has_secrets < 0 || has_pki < 0) {
		r = has_secrets < 0 ? has_secrets : has_pki;
		init_errf(o, "cannot inspect %s: %s", dir, moat_strerror(r));
		goto out;
	}
	if ((has_secrets || has_pki) && !o->force) {
		r = MOAT_ERR_EXISTS;
		init_errf(o, "%s already holds a moat data directory (%s/%s "
		    "exists); nothing was changed. Use --force to replace its "
		    "secrets and keys", dir, dir, has_secrets ? "secrets" :
		    "pki");
		goto out;
	}

	/* 1. Everything in memory. */
	if ((r = init_generate(&m)) != 0 || (r = init_encode(&m, &f)) != 0 ||
	    (init_fault(o, "keys") && (r = MOAT_ERR_IO) != 0)) {
		init_errf(o, "generating keys and certificates failed: %s",
		    moat_strerror(r));
		goto out;
	}

	/* 2. Written under DIR/.init-tmp-XXXXXX. */
	if (mkdtemp(tmp) == NULL) {
		r = moat_err_from_errno(errno);
		init_errf(o, "cannot create a temporary directory in %s: %s",
		    dir, strerror(errno));
		goto out;
	}
	made_tmp = true;
	tmpfd = open(tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (tmpfd < 0) {
		r = moat_err_from_errno(errno);
		init_errf(o, "cannot open %s: %s", tmp, strerror(errno));
		goto out;
	}
	if ((r = init_write_pki(tmpfd, &m, &f)) != 0 ||
	    (init_fault(o, "pki") && (r = MOAT_ERR_IO) != 0)) {
		init_errf(o, "writing %s/pki failed: %s", tmp, moat_strerror(r));
		goto out;
	}
	if ((r = init_write_secrets(tmp, &m, &f)) != 0 ||
	    (init_fault(o, "secrets") && (r = MOAT_ERR_IO) != 0)) {
		init_errf(o, "writing %s/secrets failed: %s", tmp,
		    moat_strerror(r));
		goto out;
	}

	/* 3. Old copies aside (--force), new ones into place. Flags record
	 * each completed rename so that a failure undoes exactly those. */
	if (has_secrets) {
		if (renameat(dfd, "secrets", tmpfd, "old-secrets") != 0)
			goto rename_failed;
		old_secrets = true;
	}
	if (has_pki) {
		if (renameat(dfd, "pki", tmpfd, "old-pki") != 0)
			goto rename_failed;
		old_pki = true;
	}
	if (init_fault(o, "move-old")) {
		errno = EIO;
		goto rename_failed;
	}
	if (renameat(tmpfd, "pki", dfd, "pki") != 0)
		goto rename_failed;
	placed_pki = true;
	if (init_fault(o, "place-pki")) {
		errno = EIO;
		goto rename_failed;
	}
	if (renameat(tmpfd, "secrets", dfd, "secrets") != 0)
		goto rename_failed;
	placed_secrets = true;
	if (init_fault(o, "place-secrets")) {
		errno = EIO;
		goto rename_failed;
	}
	(void)fsync(dfd);
	old_secrets = old_pki = placed_pki = placed_secrets = false;
	r = 0;
	if (o->out != NULL)
		init_print_summary(o->out, dir, &m);
	goto out;

rename_failed:
	r = moat_err_from_errno(errno);
	init_errf(o, "cannot move the new files into %s: %s", dir,
	    strerror(errno));
out:
	/* Undo, newest first. On success every flag was cleared, and the old
	 * copies are deleted with the temporary directory. */
	if (placed_secrets && renameat(dfd, "secrets", tmpfd, "secrets") != 0)
		undo_failed = true;
	if (placed_pki && renameat(dfd, "pki", tmpfd, "pki") != 0)
		undo_failed = true;
	if (old_pki && renameat(tmpfd, "old-pki", dfd, "pki") != 0)
		undo_failed = true;
	if (old_secrets && renameat(tmpfd, "old-secrets", dfd, "secrets") != 0)
		undo_failed = true;
	if (tmpfd >= 0)
		close(tmpfd);
	/* Never delete the only copy of an old key: when putting things back
	 * failed, the temporary directory stays and the error says where. */
	if (undo_failed)
		init_errf(o, "cannot move the new files into %s, nor restore "
		    "the old ones; they are in %s (old-secrets, old-pki)", dir,
		    tmp);
	else if (made_tmp)
		(void)init_rmtree(tmp);
	if (dfd >= 0)
		close(dfd);
	if (r != 0 && made_dir && !undo_failed)
		(void)rmdir(dir);
	init_files_free(&f);
	init_material_free(&m);
	umask(old_umask);
	return r;
}

static void
init_usage(FILE *f)
{
	fprintf(f,
	    "usage: moatd init DIR [--force]\n"
	    "\n"
	    "Creates a development data directory: DIR/secrets (internal CA,\n"
	    "HTTPS certificate for localhost, JWT and audit signing keys,\n"
	    "encryption keyring) and DIR/pki (CA key, client certificates).\n"
	    "Refuses a DIR that already has them unless --force is given.\n"
	    "Then creates the store DIR/moatd.db with the owner \"admin\",\n"
	    "whose random password is printed once and written to\n"
	    "DIR/initial-admin-password (mode 0600), and the \"default\"\n"
	    "egress policy, which allows nothing.\n");
}

int
moatd_init_main(int argc, char **argv)
{
	struct moatd_init_opts o = { .out = stdout };
	const char *dir = NULL;
	char err[512], password[IDENTITY_GENERATED_PASSWORD_LEN + 1];
	bool opts_done = false;
	int i, r;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!opts_done && strcmp(a, "--") == 0) {
			opts_done = true;
		} else if (!opts_done && strcmp(a, "--force") == 0) {
			o.force = true;
		} else if (!opts_done && (strcmp(a, "--help") == 0 ||
		    strcmp(a, "-h") == 0)) {
			init_usage(stdout);
			return 0;
		} else if (!opts_done && a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "moatd init: unknown option %s\n", a);
			init_usage(stderr);
			return 2;
		} else if (dir == NULL) {
			dir = a;
		} else {
			fprintf(stderr, "moatd init: only one DIR may be "
			    "given\n");
			init_usage(stderr);
			return 2;
		}
	}
	if (dir == NULL) {
		init_usage(stderr);
		return 2;
	}
	o.err = err;
	o.errlen = sizeof(err);
	if ((r = moatd_init_dir(dir, &o)) != 0) {
		fprintf(stderr, "moatd init: %s\n", err[0] != '\0' ? err :
		    moat_strerror(r));
		return 1;
	}
	/* The first owner, organization, egress policy and settings. */
	r = identity_bootstrap(dir, password, sizeof(password));
	if (r == MOAT_ERR_EXISTS) {
		printf("user admin exists already; its password is unchanged "
		    "(moatd reset-password admin --data-dir %s sets a new "
		    "one)\n", dir);
	} else if (r != 0) {
		fprintf(stderr, "moatd init: the keys are in place but creating "
		    "the first admin failed: %s (run moatd init --force %s to "
		    "try again)\n", moat_strerror(r), dir);
		return 1;
	} else {
		printf("initial admin password: %s (also in "
		    "%s/initial-admin-password)\n", password, dir);
		fflush(stdout);
	}
	OPENSSL_cleanse(password, sizeof(password));
	return 0;
}
