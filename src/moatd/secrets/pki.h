/*
 * pki.h - keys and X.509 certificates for moat's internal PKI (OpenSSL 3).
 *
 * `moatd init` uses these to build the development CA and the server and
 * client certificates; later commands use them to issue more. Every key is
 * ECDSA P-256, every signature ECDSA with SHA-256, every serial 128 random
 * bits. Private key bytes only ever live in memory that is wiped when freed.
 */
#ifndef MOATD_PKI_H
#define MOATD_PKI_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "buf.h"
#include "errors.h"

/* Extended key usages of a leaf certificate (pki_cert_spec.eku). */
#define PKI_EKU_SERVER 0x1u	/* serverAuth */
#define PKI_EKU_CLIENT 0x2u	/* clientAuth */

/* What a certificate says. All pointers borrowed. */
struct pki_cert_spec {
	const char *common_name;	/* subject CN; required */
	const char *const *dns;		/* NULL-terminated SAN DNS names, or NULL */
	const char *const *ips;		/* NULL-terminated SAN IP literals, or NULL */
	int days;			/* validity from now, > 0 */
	bool ca;			/* CA:TRUE, pathlen 0, keyCertSign+cRLSign */
	unsigned eku;			/* PKI_EKU_* for leaves; 0: none */
};

/* Generates a new ECDSA P-256 key (caller frees with EVP_PKEY_free). */
int pki_key_new(EVP_PKEY **out) MOAT_MUST_CHECK;

/*
 * Builds and signs a certificate for key. With issuer NULL it is
 * self-signed by key; otherwise it is issued by issuer (whose private key
 * is issuer_key) and carries an authorityKeyIdentifier. Leaves get
 * CA:FALSE and keyUsage digitalSignature. Every certificate gets a
 * subjectKeyIdentifier. notBefore is five minutes in the past to tolerate
 * clock skew. Caller frees *out with X509_free.
 */
int pki_cert_new(X509 **out, const struct pki_cert_spec *spec, EVP_PKEY *key,
    X509 *issuer, EVP_PKEY *issuer_key) MOAT_MUST_CHECK;

/* PEM (PKCS#8, unencrypted) of a private key in memory that is wiped when
 * freed: caller frees *out with pki_secret_free(*out, *len). */
int pki_key_pem(EVP_PKEY *key, char **out, size_t *len) MOAT_MUST_CHECK;
void pki_secret_free(void *p, size_t len);

/* Appends the PEM of key's public half (SubjectPublicKeyInfo) to out. */
int pki_pubkey_pem(EVP_PKEY *key, struct buf *out) MOAT_MUST_CHECK;

/* Appends the PEM of cert to out. */
int pki_cert_pem(X509 *cert, struct buf *out) MOAT_MUST_CHECK;

/* Writes a key id into out (at least 17 bytes): the first 16 hex digits of
 * the SHA-256 of the DER SubjectPublicKeyInfo. Public; safe to print. */
#define PKI_KID_LEN 16
int pki_key_id(EVP_PKEY *key, char *out, size_t outlen) MOAT_MUST_CHECK;

#endif
