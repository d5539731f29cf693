/*
 * test_init.c - unit tests for `moatd init` (secrets/init.c), the PKI
 * helpers (secrets/pki.c) and Kubernetes-style secret swaps
 * (secrets/secretdir.c). Every test works on real files in a mkdtemp
 * directory and checks the results with real OpenSSL verification.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "secrets/init.h"
#include "secrets/pki.h"
#include "secrets/secretdir.h"

static const char *const secret_keys[] = {
	"tls.crt", "tls.key", "ca.crt", "client-ca.crt", "jwt-signing.pem",
	"jwt-signing.kid", "keyring.json", "audit-signing.pem",
	"audit-signing.pub", "audit-signing.kid", "moatd-client.crt",
	"moatd-client.key", "ssh-host-ed25519.key", "ssh-host-ecdsa.key",
};
#define NSECRET_KEYS (sizeof(secret_keys) / sizeof(secret_keys[0]))

static const char *const pki_files[] = {
	"ca.key", "ca.crt", "ingress.crt", "ingress.key", "moatd-client.crt",
	"moatd-client.key", "moat-proxy.crt", "moat-proxy.key",
};

struct fixture {
	char root[64];		/* mkdtemp dir, removed at teardown */
	char dir[128];		/* root/data: the data directory */
};

static int
rm_cb(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->root, sizeof(f->root), "/tmp/test_init.XXXXXX");
	assert_non_null(mkdtemp(f->root));
	snprintf(f->dir, sizeof(f->dir), "%s/data", f->root);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	nftw(f->root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static void __attribute__((format(printf, 3, 4)))
pathf(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < outlen);
}

/* Reads a whole (small) file into a NUL-terminated malloc'd string. */
static char *
slurp(const char *path, size_t *lenp)
{
	FILE *fp = fopen(path, "rb");
	char *p;
	size_t n;

	assert_non_null(fp);
	p = calloc(1, 65536);
	assert_non_null(p);
	n = fread(p, 1, 65535, fp);
	fclose(fp);
	if (lenp != NULL)
		*lenp = n;
	return p;
}

static void
do_init(const char *dir, bool force, FILE *out)
{
	char err[512] = "";
	struct moatd_init_opts o = { .force = force, .out = out, .err = err,
	    .errlen = sizeof(err) };
	int r = moatd_init_dir(dir, &o);

	if (r != 0)
		fail_msg("moatd_init_dir: %d %s", r, err);
}

static void
assert_mode(const char *path, mode_t type, mode_t perm)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	if ((st.st_mode & S_IFMT) != type)
		fail_msg("%s has type %o", path, st.st_mode & S_IFMT);
	if ((st.st_mode & 07777) != perm)
		fail_msg("%s has mode %o, want %o", path, st.st_mode & 07777,
		    perm);
}

static int
count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..")
		    != 0)
			n++;
	closedir(d);
	return n;
}

static bool
has_entry_prefix(const char *path, const char *prefix)
{
	DIR *d = opendir(path);
	struct dirent *de;
	bool found = false;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			found = true;
	closedir(d);
	return found;
}

/* The target of DIR/secrets/..data, checked to be a version name. */
static void
data_target(const char *secrets, char *out, size_t outlen)
{
	char p[PATH_MAX];
	regex_t re;
	ssize_t n;

	pathf(p, sizeof(p), "%s/..data", secrets);
	n = readlink(p, out, outlen - 1);
	assert_true(n > 0);
	out[n] = '\0';
	assert_int_equal(regcomp(&re, "^\\.\\.[0-9]{4}_[0-9]{2}_[0-9]{2}_"
	    "[0-9]{2}_[0-9]{2}_[0-9]{2}\\.[0-9]{9}$", REG_EXTENDED | REG_NOSUB),
	    0);
	if (regexec(&re, out, 0, NULL, 0) != 0)
		fail_msg("..data -> %s is not a timestamped version", out);
	regfree(&re);
}

/*
 * A sorted text listing of a tree: path, type, mode, link target and the
 * SHA-256 of each file. Two equal snapshots mean nothing changed.
 */
struct snap {
	char *lines[256];
	size_t n;
};

static void
snap_walk(struct snap *s, const char *base, const char *rel)
{
	char path[PATH_MAX], line[PATH_MAX + 200], link[PATH_MAX] = "";
	char hex[65] = "";
	struct stat st;
	DIR *d;
	struct dirent *de;

	pathf(path, sizeof(path), "%s%s", base, rel);
	assert_int_equal(lstat(path, &st), 0);
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(path, link, sizeof(link) - 1);
		assert_true(n > 0);
		link[n] = '\0';
	} else if (S_ISREG(st.st_mode)) {
		unsigned char md[32];
		size_t len, i;
		char *data = slurp(path, &len);

		assert_int_equal(EVP_Digest(data, len, md, NULL, EVP_sha256(),
		    NULL), 1);
		for (i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		free(data);
	}
	pathf(line, sizeof(line), "%s %o %s %s", rel[0] ? rel : "/",
	    (unsigned)st.st_mode, link, hex);
	assert_true(s->n < 256);
	s->lines[s->n++] = strdup(line);
	if (!S_ISDIR(st.st_mode))
		return;
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL) {
		char sub[PATH_MAX];

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..")
		    == 0)
			continue;
		pathf(sub, sizeof(sub), "%s/%s", rel, de->d_name);
		snap_walk(s, base, sub);
	}
	closedir(d);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Caller frees. An absent tree snapshots as "absent". */
static char *
snapshot(const char *base)
{
	struct snap s = { .n = 0 };
	struct stat st;
	size_t i, total = 1;
	char *out;

	if (lstat(base, &st) != 0)
		return strdup("absent");
	snap_walk(&s, base, "");
	qsort(s.lines, s.n, sizeof(s.lines[0]), cmp_str);
	for (i = 0; i < s.n; i++)
		total += strlen(s.lines[i]) + 1;
	out = calloc(1, total);
	assert_non_null(out);
	for (i = 0; i < s.n; i++) {
		strncat(out, s.lines[i], total - strlen(out) - 1);
		strncat(out, "\n", total - strlen(out) - 1);
		free(s.lines[i]);
	}
	return out;
}

static X509 *
load_cert(const char *path, int index)
{
	FILE *fp = fopen(path, "r");
	X509 *x = NULL;
	int i;

	assert_non_null(fp);
	for (i = 0; i <= index; i++) {
		X509_free(x);
		x = PEM_read_X509(fp, NULL, NULL, NULL);
		assert_non_null(x);
	}
	fclose(fp);
	return x;
}

static EVP_PKEY *
load_key(const char *path)
{
	FILE *fp = fopen(path, "r");
	EVP_PKEY *k;

	assert_non_null(fp);
	k = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(k);
	return k;
}

static void
assert_p256(EVP_PKEY *k)
{
	char group[64];

	assert_true(EVP_PKEY_is_a(k, "EC"));
	assert_int_equal(EVP_PKEY_get_group_name(k, group, sizeof(group),
	    NULL), 1);
	assert_string_equal(group, "prime256v1");
}

/* Verifies leaf against ca alone for purpose; returns the verify error. */
static int
verify(X509 *leaf, X509 *ca, int purpose)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok, err;

	assert_non_null(store);
	assert_non_null(ctx);
	assert_int_equal(X509_STORE_add_cert(store, ca), 1);
	assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, NULL), 1);
	assert_int_equal(X509_STORE_CTX_set_purpose(ctx, purpose), 1);
	ok = X509_verify_cert(ctx);
	err = X509_STORE_CTX_get_error(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	return ok == 1 ? 0 : (err != 0 ? err : -1);
}

/* Days from now until t (negative when in the past). */
static int
days_until(const ASN1_TIME *t)
{
	int days, secs;

	assert_int_equal(ASN1_TIME_diff(&days, &secs, NULL, t), 1);
	return days;
}

/* ---- tests ---- */

static void
test_layout(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX], q[PATH_MAX], ver[256], link[PATH_MAX];
	char *out = NULL, *keyring;
	size_t outlen = 0, i;
	FILE *mem = open_memstream(&out, &outlen);
	json_t *root;
	const char *b64;

	assert_non_null(mem);
	do_init(f->dir, false, mem);
	fclose(mem);

	assert_mode(f->dir, S_IFDIR, 0700);
	pathf(p, sizeof(p), "%s/secrets", f->dir);
	assert_mode(p, S_IFDIR, 0700);
	data_target(p, ver, sizeof(ver));
	pathf(q, sizeof(q), "%s/%s", p, ver);
	assert_mode(q, S_IFDIR, 0700);
	/* Exactly the keys, ..data and the version directory. */
	assert_int_equal(count_entries(p), (int)NSECRET_KEYS + 2);
	assert_int_equal(count_entries(q), (int)NSECRET_KEYS);
	for (i = 0; i < NSECRET_KEYS; i++) {
		char want[300];
		ssize_t n;

		pathf(q, sizeof(q), "%s/secrets/%s", f->dir, secret_keys[i]);
		n = readlink(q, link, sizeof(link) - 1);
		assert_true(n > 0);
		link[n] = '\0';
		pathf(want, sizeof(want), "..data/%s", secret_keys[i]);
		assert_string_equal(link, want);
		pathf(q, sizeof(q), "%s/secrets/%s/%s", f->dir, ver,
		    secret_keys[i]);
		assert_mode(q, S_IFREG, 0600);
	}
	pathf(p, sizeof(p), "%s/pki", f->dir);
	assert_mode(p, S_IFDIR, 0700);
	assert_int_equal(count_entries(p), 8);
	for (i = 0; i < sizeof(pki_files) / sizeof(pki_files[0]); i++) {
		pathf(q, sizeof(q), "%s/pki/%s", f->dir, pki_files[i]);
		assert_mode(q, S_IFREG, 0600);
	}
	assert_false(has_entry_prefix(f->dir, ".init-tmp"));
	pathf(p, sizeof(p), "%s/secrets", f->dir);
	assert_false(has_entry_prefix(p, "..data_tmp"));

	/* The summary says where things are and shows no key material. */
	assert_non_null(strstr(out, "/data/secrets"));
	assert_non_null(strstr(out, "/data/pki"));
	assert_null(strstr(out, "BEGIN"));
	assert_null(strstr(out, "PRIVATE"));
	pathf(p, sizeof(p), "%s/secrets/keyring.json", f->dir);
	keyring = slurp(p, NULL);
	root = json_loads(keyring, 0, NULL);
	assert_non_null(root);
	b64 = json_string_value(json_object_get(json_array_get(
	    json_object_get(root, "keys"), 0), "key"));
	assert_non_null(b64);
	assert_null(strstr(out, b64));
	json_decref(root);
	free(keyring);
	free(out);
}

static void
test_certificates(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX];
	X509 *ca, *leaf, *chain_ca, *ingress, *client, *ca2;
	EVP_PKEY *k;
	const ASN1_INTEGER *s1, *s2;
	char *a, *b;

	do_init(f->dir, false, NULL);
	pathf(p, sizeof(p), "%s/secrets/ca.crt", f->dir);
	ca = load_cert(p, 0);
	pathf(p, sizeof(p), "%s/secrets/tls.crt", f->dir);
	leaf = load_cert(p, 0);
	chain_ca = load_cert(p, 1);

	/* CA: self-signed, CA:TRUE pathlen 0, certSign+cRLSign, 10 years. */
	assert_int_equal(X509_cmp(chain_ca, ca), 0);
	assert_int_equal(X509_check_ca(ca), 1);
	assert_int_equal(X509_get_pathlen(ca), 0);
	assert_int_equal(X509_get_key_usage(ca), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	assert_int_equal(X509_check_issued(ca, ca), X509_V_OK);
	assert_true(days_until(X509_get0_notAfter(ca)) >= 3649);
	assert_true(days_until(X509_get0_notAfter(ca)) <= 3650);
	assert_true(days_until(X509_get0_notBefore(ca)) <= 0);
	assert_int_equal(X509_get_signature_nid(ca), NID_ecdsa_with_SHA256);
	assert_p256(X509_get0_pubkey(ca));

	/* Server leaf: chains to the CA, names localhost/127.0.0.1/::1. */
	assert_int_equal(verify(leaf, ca, X509_PURPOSE_SSL_SERVER), 0);
	assert_int_equal(X509_check_host(leaf, "localhost", 0, 0, NULL), 1);
	assert_int_equal(X509_check_ip_asc(leaf, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(leaf, "::1", 0), 1);
	assert_int_not_equal(X509_check_host(leaf, "example.com", 0, 0, NULL),
	    1);
	assert_int_not_equal(X509_check_ip_asc(leaf, "10.0.0.1", 0), 1);
	assert_true(X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER);
	assert_false(X509_get_extended_key_usage(leaf) & XKU_SSL_CLIENT);
	assert_int_equal(X509_check_ca(leaf), 0);
	assert_true(days_until(X509_get0_notAfter(leaf)) >= 364);
	assert_true(days_until(X509_get0_notAfter(leaf)) <= 365);
	assert_int_equal(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
	/* Random 128-bit serials, different per certificate. */
	s1 = X509_get0_serialNumber(leaf);
	s2 = X509_get0_serialNumber(ca);
	assert_int_equal(ASN1_STRING_length(s1), 16);
	assert_int_not_equal(ASN1_INTEGER_cmp(s1, s2), 0);
	pathf(p, sizeof(p), "%s/secrets/tls.key", f->dir);
	k = load_key(p);
	assert_p256(k);
	assert_int_equal(X509_check_private_key(leaf, k), 1);
	EVP_PKEY_free(k);

	/* Client certificates: clientAuth only, chain to the CA. */
	pathf(p, sizeof(p), "%s/pki/ingress.crt", f->dir);
	ingress = load_cert(p, 0);
	assert_int_equal(verify(ingress, ca, X509_PURPOSE_SSL_CLIENT), 0);
	assert_int_not_equal(verify(ingress, ca, X509_PURPOSE_SSL_SERVER), 0);
	assert_true(X509_get_extended_key_usage(ingress) & XKU_SSL_CLIENT);
	assert_false(X509_get_extended_key_usage(ingress) & XKU_SSL_SERVER);
	assert_int_equal(X509_check_host(ingress, "ingress", 0,
	    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL), 1);
	pathf(p, sizeof(p), "%s/pki/ingress.key", f->dir);
	k = load_key(p);
	assert_int_equal(X509_check_private_key(ingress, k), 1);
	EVP_PKEY_free(k);
	pathf(p, sizeof(p), "%s/pki/moatd-client.crt", f->dir);
	client = load_cert(p, 0);
	assert_int_equal(verify(client, ca, X509_PURPOSE_SSL_CLIENT), 0);
	assert_int_equal(X509_check_host(client, "moatd", 0,
	    X509_CHECK_FLAG_NEVER_CHECK_SUBJECT, NULL), 1);
	assert_int_not_equal(X509_check_host(client, "ingress", 0, 0, NULL), 1);
	pathf(p, sizeof(p), "%s/pki/moatd-client.key", f->dir);
	k = load_key(p);
	assert_int_equal(X509_check_private_key(client, k), 1);
	EVP_PKEY_free(k);

	/* The CA key is in pki/ and matches; client-ca.crt is the CA. */
	pathf(p, sizeof(p), "%s/pki/ca.key", f->dir);
	k = load_key(p);
	assert_int_equal(X509_check_private_key(ca, k), 1);
	EVP_PKEY_free(k);
	pathf(p, sizeof(p), "%s/secrets/client-ca.crt", f->dir);
	ca2 = load_cert(p, 0);
	assert_int_equal(X509_cmp(ca, ca2), 0);
	pathf(p, sizeof(p), "%s/secrets/ca.crt", f->dir);
	a = slurp(p, NULL);
	pathf(p, sizeof(p), "%s/secrets/client-ca.crt", f->dir);
	b = slurp(p, NULL);
	assert_string_equal(a, b);
	free(a);
	free(b);

	X509_free(ca);
	X509_free(ca2);
	X509_free(leaf);
	X509_free(chain_ca);
	X509_free(ingress);
	X509_free(client);
}

static void
check_signing_key(const char *dir, const char *name, EVP_PKEY **out)
{
	char p[PATH_MAX], kid[PKI_KID_LEN + 1], *file;
	EVP_PKEY *k;
	size_t len;

	pathf(p, sizeof(p), "%s/secrets/%s.pem", dir, name);
	k = load_key(p);
	assert_p256(k);
	assert_int_equal(pki_key_id(k, kid, sizeof(kid)), 0);
	assert_int_equal(strspn(kid, "0123456789abcdef"), PKI_KID_LEN);
	pathf(p, sizeof(p), "%s/secrets/%s.kid", dir, name);
	file = slurp(p, &len);
	assert_int_equal(len, PKI_KID_LEN);
	assert_string_equal(file, kid);
	free(file);
	*out = k;
}

static void
test_signing_keys_and_keyring(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX], *data;
	EVP_PKEY *jwt, *audit, *pub;
	FILE *fp;
	json_t *root, *keys, *k1;
	json_error_t jerr;
	const char *b64, *created;
	unsigned char raw[64];
	int n;
	regex_t re;

	do_init(f->dir, false, NULL);
	check_signing_key(f->dir, "jwt-signing", &jwt);
	check_signing_key(f->dir, "audit-signing", &audit);
	assert_int_not_equal(EVP_PKEY_eq(jwt, audit), 1);
	pathf(p, sizeof(p), "%s/secrets/audit-signing.pub", f->dir);
	assert_non_null(fp = fopen(p, "r"));
	pub = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(pub);
	assert_int_equal(EVP_PKEY_eq(pub, audit), 1);
	data = slurp(p, NULL);
	assert_null(strstr(data, "PRIVATE"));
	free(data);
	EVP_PKEY_free(pub);
	EVP_PKEY_free(jwt);
	EVP_PKEY_free(audit);

	pathf(p, sizeof(p), "%s/secrets/keyring.json", f->dir);
	root = json_load_file(p, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
		fail_msg("keyring.json: %s", jerr.text);
	assert_string_equal(json_string_value(json_object_get(root,
	    "primary")), "k1");
	keys = json_object_get(root, "keys");
	assert_true(json_is_array(keys));
	assert_int_equal(json_array_size(keys), 1);
	k1 = json_array_get(keys, 0);
	assert_string_equal(json_string_value(json_object_get(k1, "id")), "k1");
	b64 = json_string_value(json_object_get(k1, "key"));
	assert_non_null(b64);
	assert_int_equal(strlen(b64), 44);
	n = EVP_DecodeBlock(raw, (const unsigned char *)b64, 44);
	/* EVP_DecodeBlock counts the one padding byte of 32 bytes. */
	assert_int_equal(n, 33);
	assert_int_equal(b64[43], '=');
	assert_int_not_equal(b64[42], '=');
	created = json_string_value(json_object_get(k1, "created"));
	assert_non_null(created);
	assert_int_equal(regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:"
	    "[0-9]{2}:[0-9]{2}Z$", REG_EXTENDED | REG_NOSUB), 0);
	assert_int_equal(regexec(&re, created, 0, NULL, 0), 0);
	regfree(&re);
	json_decref(root);
}

static void
test_refuses_existing(void **state)
{
	struct fixture *f = *state;
	char err[512] = "", p[PATH_MAX], *before, *after;
	struct moatd_init_opts o = { .err = err, .errlen = sizeof(err) };

	do_init(f->dir, false, NULL);
	before = snapshot(f->dir);
	assert_int_equal(moatd_init_dir(f->dir, &o), MOAT_ERR_EXISTS);
	assert_non_null(strstr(err, "--force"));
	assert_non_null(strstr(err, "already"));
	after = snapshot(f->dir);
	assert_string_equal(before, after);
	free(before);
	free(after);

	/* A directory with only pki/ (or only secrets/) is refused too. */
	pathf(p, sizeof(p), "%s/secrets", f->dir);
	assert_int_equal(nftw(p, rm_cb, 16, FTW_DEPTH | FTW_PHYS), 0);
	before = snapshot(f->dir);
	assert_int_equal(moatd_init_dir(f->dir, &o), MOAT_ERR_EXISTS);
	after = snapshot(f->dir);
	assert_string_equal(before, after);
	free(before);
	free(after);
}

static void
test_force_replaces(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX], *ca1, *ca2, *kr1, *kr2, *other;

	do_init(f->dir, false, NULL);
	pathf(p, sizeof(p), "%s/secrets/ca.crt", f->dir);
	ca1 = slurp(p, NULL);
	pathf(p, sizeof(p), "%s/secrets/keyring.json", f->dir);
	kr1 = slurp(p, NULL);
	/* Something else in DIR that --force must leave alone. */
	pathf(p, sizeof(p), "%s/audit", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	pathf(p, sizeof(p), "%s/audit/audit.log", f->dir);
	FILE *fp = fopen(p, "w");
	assert_non_null(fp);
	fputs("{\"seq\":1}\n", fp);
	fclose(fp);

	do_init(f->dir, true, NULL);
	pathf(p, sizeof(p), "%s/secrets/ca.crt", f->dir);
	ca2 = slurp(p, NULL);
	pathf(p, sizeof(p), "%s/secrets/keyring.json", f->dir);
	kr2 = slurp(p, NULL);
	assert_string_not_equal(ca1, ca2);
	assert_string_not_equal(kr1, kr2);
	pathf(p, sizeof(p), "%s/audit/audit.log", f->dir);
	other = slurp(p, NULL);
	assert_string_equal(other, "{\"seq\":1}\n");
	assert_false(has_entry_prefix(f->dir, ".init-tmp"));
	assert_int_equal(count_entries(f->dir), 3);	/* secrets pki audit */
	free(ca1);
	free(ca2);
	free(kr1);
	free(kr2);
	free(other);
}

/* A failure at any step leaves DIR exactly as it was. */
static void
test_failure_leaves_nothing(void **state)
{
	static const char *const steps[] = {
		"keys", "pki", "secrets", "move-old", "place-pki",
		"place-secrets",
	};
	struct fixture *f = *state;
	char err[512], fresh[PATH_MAX], *before, *after;
	size_t i;

	do_init(f->dir, false, NULL);
	pathf(fresh, sizeof(fresh), "%s/fresh", f->root);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		struct moatd_init_opts o = { .force = true, .err = err,
		    .errlen = sizeof(err), .fail_at = steps[i] };

		/* An initialized directory, replaced with --force. */
		before = snapshot(f->dir);
		assert_int_equal(moatd_init_dir(f->dir, &o), MOAT_ERR_IO);
		assert_true(err[0] != '\0');
		after = snapshot(f->dir);
		if (strcmp(before, after) != 0)
			fail_msg("step %s changed the directory:\n%s\n---\n%s",
			    steps[i], before, after);
		free(before);
		free(after);

		/* A directory init had to create: gone again. */
		assert_int_equal(moatd_init_dir(fresh, &o), MOAT_ERR_IO);
		assert_int_equal(access(fresh, F_OK), -1);

		/* An existing empty directory: still empty. */
		assert_int_equal(mkdir(fresh, 0755), 0);
		assert_int_equal(moatd_init_dir(fresh, &o), MOAT_ERR_IO);
		assert_int_equal(count_entries(fresh), 0);
		assert_int_equal(rmdir(fresh), 0);
	}
}

static void
test_bad_dirs(void **state)
{
	struct fixture *f = *state;
	char err[512], p[PATH_MAX];
	struct moatd_init_opts o = { .err = err, .errlen = sizeof(err) };
	int fd;

	/* Parent missing. */
	pathf(p, sizeof(p), "%s/no/such", f->root);
	assert_int_equal(moatd_init_dir(p, &o), MOAT_ERR_NOTFOUND);
	assert_non_null(strstr(err, "cannot create"));
	/* A regular file. */
	pathf(p, sizeof(p), "%s/file", f->root);
	assert_true((fd = open(p, O_CREAT | O_WRONLY, 0600)) >= 0);
	close(fd);
	assert_int_not_equal(moatd_init_dir(p, &o), 0);
	assert_int_equal(moatd_init_dir("", &o), MOAT_ERR_INVAL);
	assert_int_equal(moatd_init_dir(NULL, NULL), MOAT_ERR_INVAL);
}

static void
write_str(const char *path, const char *s)
{
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	fputs(s, fp);
	fclose(fp);
}

static void
test_swap(void **state)
{
	struct fixture *f = *state;
	char sec[PATH_MAX], p[PATH_MAX], v1[256], v2[256], v3[256];
	char *ca1, *ca2, *s, *before, *after;
	const struct moatd_secret_file tls[] = {
		{ "tls.crt", "new cert\n", 9 }, { "extra.txt", "x", 1 },
	};
	const struct moatd_secret_file only[] = { { "only", "y", 1 } };

	do_init(f->dir, false, NULL);
	pathf(sec, sizeof(sec), "%s/secrets", f->dir);
	data_target(sec, v1, sizeof(v1));
	pathf(p, sizeof(p), "%s/ca.crt", sec);
	ca1 = slurp(p, NULL);

	/* Replace one key, add one, keep the rest. */
	assert_int_equal(moatd_secrets_swap(sec, tls, 2, MOATD_SECRETS_KEEP), 0);
	data_target(sec, v2, sizeof(v2));
	assert_string_not_equal(v1, v2);
	pathf(p, sizeof(p), "%s/%s", sec, v1);
	assert_int_equal(access(p, F_OK), -1);		/* old version gone */
	pathf(p, sizeof(p), "%s/%s", sec, v2);
	assert_mode(p, S_IFDIR, 0700);
	assert_int_equal(count_entries(p), (int)NSECRET_KEYS + 1);
	pathf(p, sizeof(p), "%s/tls.crt", sec);
	s = slurp(p, NULL);
	assert_string_equal(s, "new cert\n");
	free(s);
	pathf(p, sizeof(p), "%s/extra.txt", sec);
	s = slurp(p, NULL);
	assert_string_equal(s, "x");
	free(s);
	pathf(p, sizeof(p), "%s/%s/extra.txt", sec, v2);
	assert_mode(p, S_IFREG, 0600);
	pathf(p, sizeof(p), "%s/%s/ca.crt", sec, v2);
	assert_mode(p, S_IFREG, 0600);
	pathf(p, sizeof(p), "%s/ca.crt", sec);
	ca2 = slurp(p, NULL);
	assert_string_equal(ca1, ca2);
	assert_int_equal(count_entries(sec), (int)NSECRET_KEYS + 3);

	/* Bad requests change nothing. */
	before = snapshot(sec);
	{
		const struct moatd_secret_file bad1[] = { { "..x", "", 0 } };
		const struct moatd_secret_file bad2[] = { { "a/b", "", 0 } };
		const struct moatd_secret_file bad3[] = { { "", "", 0 } };
		const struct moatd_secret_file dup[] = { { "a", "1", 1 },
		    { "a", "2", 1 } };
		assert_int_equal(moatd_secrets_swap(sec, bad1, 1, 0),
		    MOAT_ERR_INVAL);
		assert_int_equal(moatd_secrets_swap(sec, bad2, 1, 0),
		    MOAT_ERR_INVAL);
		assert_int_equal(moatd_secrets_swap(sec, bad3, 1, 0),
		    MOAT_ERR_INVAL);
		assert_int_equal(moatd_secrets_swap(sec, dup, 2, 0),
		    MOAT_ERR_INVAL);
		assert_int_equal(moatd_secrets_swap(sec, only, 1, 0x80),
		    MOAT_ERR_INVAL);
	}
	/* A symlink planted in the live version is never followed: the
	 * swap that would copy it fails and leaves everything in place. */
	pathf(p, sizeof(p), "%s/%s/planted", sec, v2);
	assert_int_equal(symlink("/etc/hostname", p), 0);
	free(before);
	before = snapshot(sec);
	assert_int_not_equal(moatd_secrets_swap(sec, only, 1,
	    MOATD_SECRETS_KEEP), 0);
	after = snapshot(sec);
	assert_string_equal(before, after);
	free(after);
	assert_int_equal(unlink(p), 0);

	/* Without KEEP the new version holds only what was given, and the
	 * links of the keys it dropped are gone. */
	assert_int_equal(moatd_secrets_swap(sec, only, 1, 0), 0);
	data_target(sec, v3, sizeof(v3));
	assert_int_equal(count_entries(sec), 3);	/* only ..data ..VER */
	pathf(p, sizeof(p), "%s/only", sec);
	s = slurp(p, NULL);
	assert_string_equal(s, "y");
	free(s);
	pathf(p, sizeof(p), "%s/tls.crt", sec);
	assert_int_equal(access(p, F_OK), -1);

	/* A key name taken by a stray file: replaced by the link. */
	pathf(p, sizeof(p), "%s/stray", sec);
	write_str(p, "old");
	{
		const struct moatd_secret_file st[] = { { "stray", "new", 3 } };
		assert_int_equal(moatd_secrets_swap(sec, st, 1, 0), 0);
	}
	s = slurp(p, NULL);
	assert_string_equal(s, "new");
	free(s);

	free(before);
	free(ca1);
	free(ca2);
}

static void
test_swap_initial(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX], ver[256], *s;
	const struct moatd_secret_file files[] = { { "a.txt", "hello", 5 } };

	assert_int_equal(mkdir(f->dir, 0700), 0);
	assert_int_equal(moatd_secrets_swap(f->dir, files, 1, 0), 0);
	data_target(f->dir, ver, sizeof(ver));
	pathf(p, sizeof(p), "%s/a.txt", f->dir);
	s = slurp(p, NULL);
	assert_string_equal(s, "hello");
	free(s);
	assert_int_equal(count_entries(f->dir), 3);
	/* ..data pointing outside the layout is refused. */
	pathf(p, sizeof(p), "%s/..data", f->dir);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(symlink("/etc", p), 0);
	assert_int_equal(moatd_secrets_swap(f->dir, files, 1, 0),
	    MOAT_ERR_CORRUPT);
	pathf(p, sizeof(p), "%s/missing", f->root);
	assert_int_equal(moatd_secrets_swap(p, files, 1, 0), MOAT_ERR_NOTFOUND);
}

static void
test_write_file_exclusive(void **state)
{
	struct fixture *f = *state;
	char p[PATH_MAX];
	int fd;

	assert_int_equal(mkdir(f->dir, 0700), 0);
	assert_true((fd = open(f->dir, O_RDONLY | O_DIRECTORY)) >= 0);
	assert_int_equal(moatd_secrets_write_file(fd, "k", "abc", 3), 0);
	pathf(p, sizeof(p), "%s/k", f->dir);
	assert_mode(p, S_IFREG, 0600);
	assert_int_equal(moatd_secrets_write_file(fd, "k", "x", 1),
	    MOAT_ERR_EXISTS);
	/* Never through a symlink, even a dangling one. */
	pathf(p, sizeof(p), "%s/link", f->dir);
	assert_int_equal(symlink("target", p), 0);
	assert_int_equal(moatd_secrets_write_file(fd, "link", "x", 1),
	    MOAT_ERR_EXISTS);
	pathf(p, sizeof(p), "%s/target", f->dir);
	assert_int_equal(access(p, F_OK), -1);
	close(fd);
}

static void
test_pki_spec_errors(void **state)
{
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	static const char *const bad_ip[] = { "not-an-ip", NULL };
	struct pki_cert_spec s = { .common_name = "x", .days = 1 };

	(void)state;
	assert_int_equal(pki_key_new(&k), 0);
	s.days = 0;
	assert_int_equal(pki_cert_new(&x, &s, k, NULL, NULL), MOAT_ERR_INVAL);
	s.days = 1;
	s.common_name = "";
	assert_int_equal(pki_cert_new(&x, &s, k, NULL, NULL), MOAT_ERR_INVAL);
	s.common_name = "x";
	s.eku = 0x10;
	assert_int_equal(pki_cert_new(&x, &s, k, NULL, NULL), MOAT_ERR_INVAL);
	s.eku = 0;
	s.ips = bad_ip;
	assert_int_equal(pki_cert_new(&x, &s, k, NULL, NULL), MOAT_ERR_INVAL);
	assert_int_equal(pki_cert_new(&x, &s, k, NULL, k), MOAT_ERR_INVAL);
	assert_null(x);
	s.ips = NULL;
	assert_int_equal(pki_cert_new(&x, &s, k, NULL, NULL), 0);
	assert_non_null(x);
	X509_free(x);
	EVP_PKEY_free(k);
}

static void
test_main_args(void **state)
{
	struct fixture *f = *state;
	char *noargs[] = { "init", NULL };
	char *unknown[] = { "init", "--bogus", f->dir, NULL };
	char *two[] = { "init", f->dir, f->dir, NULL };
	char *help[] = { "init", "--help", NULL };
	char *ok[] = { "init", f->dir, NULL };
	char *force[] = { "init", "--force", f->dir, NULL };

	assert_int_equal(moatd_init_main(1, noargs), 2);
	assert_int_equal(moatd_init_main(3, unknown), 2);
	assert_int_equal(moatd_init_main(3, two), 2);
	assert_int_equal(access(f->dir, F_OK), -1);
	assert_int_equal(moatd_init_main(2, help), 0);
	assert_int_equal(moatd_init_main(2, ok), 0);
	assert_int_equal(moatd_init_main(2, ok), 1);
	assert_int_equal(moatd_init_main(3, force), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_certificates, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_signing_keys_and_keyring,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_existing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_force_replaces, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_failure_leaves_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_dirs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap, setup, teardown),
		cmocka_unit_test_setup_teardown(test_swap_initial, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_write_file_exclusive,
		    setup, teardown),
		cmocka_unit_test(test_pki_spec_errors),
		cmocka_unit_test_setup_teardown(test_main_args, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
