/*
 * testcerts.h - throwaway X.509 certificates for unit tests, made with the
 * OpenSSL C API (EC P-256 keys, SHA-256 signatures).
 *
 * Header-only (static functions) so any tests/unit/test_*.c can include it
 * without a build change. Typical use:
 *
 *   struct testcert ca, srv;
 *   testcert_ca(&ca, "test CA");
 *   testcert_leaf(&srv, &ca, "localhost", "DNS:localhost,IP:127.0.0.1",
 *       TESTCERT_SERVER, 2);
 *   testcert_write(&srv, dir, "server");  (dir/server.crt, dir/server.key)
 *   testcert_free(&srv); testcert_free(&ca);
 *
 * Failures abort the test (these are fixtures, not code under test).
 */
#ifndef MOAT_TESTCERTS_H
#define MOAT_TESTCERTS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct testcert {
	EVP_PKEY *key;
	X509 *cert;
};

enum testcert_kind { TESTCERT_CA, TESTCERT_SERVER, TESTCERT_CLIENT };

static inline void
testcert_die(const char *what)
{
	fprintf(stderr, "testcerts: %s failed\n", what);
	abort();
}

static inline void
testcert_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value)) == NULL)
		testcert_die(value);
	if (!X509_add_ext(cert, ext, -1))
		testcert_die("X509_add_ext");
	X509_EXTENSION_free(ext);
}

/* Builds a certificate for a new key. issuer NULL: self-signed CA.
 * cn may be NULL (no subject CN); sans is an OpenSSL subjectAltName value
 * ("DNS:a,IP:127.0.0.1") or NULL. */
static inline void
testcert_make(struct testcert *out, const struct testcert *issuer,
    const char *cn, const char *sans, enum testcert_kind kind, long serial)
{
	X509_NAME *name;

	memset(out, 0, sizeof(*out));
	if ((out->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL)
		testcert_die("EVP_PKEY_Q_keygen");
	if ((out->cert = X509_new()) == NULL)
		testcert_die("X509_new");
	X509_set_version(out->cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(out->cert), serial);
	X509_gmtime_adj(X509_getm_notBefore(out->cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(out->cert), 86400);
	X509_set_pubkey(out->cert, out->key);
	name = X509_get_subject_name(out->cert);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	    (const unsigned char *)"moat tests", -1, -1, 0);
	if (cn != NULL)
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
		    (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(out->cert,
	    issuer ? X509_get_subject_name(issuer->cert) : name);
	X509 *icert = issuer ? issuer->cert : out->cert;
	testcert_ext(out->cert, icert, NID_subject_key_identifier, "hash");
	testcert_ext(out->cert, icert, NID_authority_key_identifier,
	    "keyid:always");
	switch (kind) {
	case TESTCERT_CA:
		testcert_ext(out->cert, icert, NID_basic_constraints,
		    "critical,CA:TRUE");
		testcert_ext(out->cert, icert, NID_key_usage,
		    "critical,keyCertSign,cRLSign");
		break;
	case TESTCERT_SERVER:
		testcert_ext(out->cert, icert, NID_basic_constraints,
		    "critical,CA:FALSE");
		testcert_ext(out->cert, icert, NID_ext_key_usage,
		    "serverAuth");
		break;
	case TESTCERT_CLIENT:
		testcert_ext(out->cert, icert, NID_basic_constraints,
		    "critical,CA:FALSE");
		testcert_ext(out->cert, icert, NID_ext_key_usage,
		    "clientAuth");
		break;
	}
	if (sans != NULL)
		testcert_ext(out->cert, icert, NID_subject_alt_name, sans);
	if (!X509_sign(out->cert, issuer ? issuer->key : out->key,
	    EVP_sha256()))
		testcert_die("X509_sign");
}

static inline void
testcert_ca(struct testcert *out, const char *cn)
{
	testcert_make(out, NULL, cn, NULL, TESTCERT_CA, 1);
}

static inline void
testcert_leaf(struct testcert *out, const struct testcert *ca, const char *cn,
    const char *sans, enum testcert_kind kind, long serial)
{
	testcert_make(out, ca, cn, sans, kind, serial);
}

/* Writes the certificate to crt_path and the key to key_path as PEM;
 * either path may be NULL to skip it. */
static inline void
testcert_write_paths(const struct testcert *c, const char *crt_path,
    const char *key_path)
{
	FILE *f;

	if (crt_path != NULL) {
		if ((f = fopen(crt_path, "w")) == NULL)
			testcert_die(crt_path);
		if (!PEM_write_X509(f, c->cert))
			testcert_die("PEM_write_X509");
		fclose(f);
	}
	if (key_path != NULL) {
		if ((f = fopen(key_path, "w")) == NULL)
			testcert_die(key_path);
		if (!PEM_write_PrivateKey(f, c->key, NULL, NULL, 0, NULL, NULL))
			testcert_die("PEM_write_PrivateKey");
		fclose(f);
	}
}

static inline void
testcert_write(const struct testcert *c, const char *dir, const char *base)
{
	char crt[4096], key[4096];

	snprintf(crt, sizeof(crt), "%s/%s.crt", dir, base);
	snprintf(key, sizeof(key), "%s/%s.key", dir, base);
	testcert_write_paths(c, crt, key);
}

static inline void
testcert_free(struct testcert *c)
{
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
	c->cert = NULL;
	c->key = NULL;
}

#endif
