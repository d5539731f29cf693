/*
 * pki.c - ECDSA P-256 keys and X.509 certificates with the OpenSSL 3 API
 * (see pki.h).
 *
 * Subject alternative names are built as GENERAL_NAME structures rather
 * than through the "DNS:a,IP:b" configuration syntax, so a name can never
 * smuggle in another entry.
 */
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "secrets/pki.h"

/* Seconds notBefore is set back, for clients whose clock is a little late. */
#define PKI_BACKDATE 300

int
pki_key_new(EVP_PKEY **out)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	if (k == NULL)
		return MOAT_ERR_CRYPTO;
	*out = k;
	return 0;
}

/* Sets a random positive 128-bit serial (the top bit cleared so the DER
 * integer needs no sign byte, the next one set so it is never short). */
static int
pki_set_serial(X509 *x)
{
	unsigned char b[16];
	BIGNUM *bn = NULL;
	int r = MOAT_ERR_CRYPTO;

	if (RAND_bytes(b, sizeof(b)) != 1)
		goto out;
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
	if ((bn = BN_bin2bn(b, sizeof(b), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto out;
	r = 0;
out:
	BN_free(bn);
	return r;
}

static int
pki_add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	int ok;

	if (ext == NULL)
		return MOAT_ERR_CRYPTO;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? 0 : MOAT_ERR_CRYPTO;
}

static int
pki_add_san(X509 *x, const struct pki_cert_spec *spec)
{
	GENERAL_NAMES *names = NULL;
	GENERAL_NAME *gn = NULL;
	ASN1_IA5STRING *ia5 = NULL;
	ASN1_OCTET_STRING *ip = NULL;
	int r = MOAT_ERR_CRYPTO;
	size_t i;

	if ((names = sk_GENERAL_NAME_new_null()) == NULL)
		goto out;
	for (i = 0; spec->dns != NULL && spec->dns[i] != NULL; i++) {
		if ((gn = GENERAL_NAME_new()) == NULL ||
		    (ia5 = ASN1_IA5STRING_new()) == NULL ||
		    ASN1_STRING_set(ia5, spec->dns[i], -1) != 1)
			goto out;
		GENERAL_NAME_set0_value(gn, GEN_DNS, ia5);
		ia5 = NULL;
		if (sk_GENERAL_NAME_push(names, gn) == 0)
			goto out;
		gn = NULL;
	}
	for (i = 0; spec->ips != NULL && spec->ips[i] != NULL; i++) {
		if ((ip = a2i_IPADDRESS(spec->ips[i])) == NULL) {
			r = MOAT_ERR_INVAL;
			goto out;
		}
		if ((gn = GENERAL_NAME_new()) == NULL)
			goto out;
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
		ip = NULL;
		if (sk_GENERAL_NAME_push(names, gn) == 0)
			goto out;
		gn = NULL;
	}
	if (sk_GENERAL_NAME_num(names) == 0) {
		r = 0;
		goto out;
	}
	if (X509_add1_ext_i2d(x, NID_subject_alt_name, names, 0,
	    X509V3_ADD_DEFAULT) != 1)
		goto out;
	r = 0;
out:
	ASN1_IA5STRING_free(ia5);
	ASN1_OCTET_STRING_free(ip);
	GENERAL_NAME_free(gn);
	GENERAL_NAMES_free(names);
	return r;
}

int
pki_cert_new(X509 **out, const struct pki_cert_spec *spec, EVP_PKEY *key,
    X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = NULL;
	X509_NAME *name;
	X509V3_CTX ctx;
	const char *eku = NULL;
	int r = MOAT_ERR_INVAL;

	if (out == NULL || spec == NULL || key == NULL ||
	    spec->common_name == NULL || spec->common_name[0] == '\0' ||
	    spec->days <= 0 || spec->days > 36500 ||
	    (issuer != NULL) != (issuer_key != NULL))
		goto out;
	switch (spec->eku) {
	case 0:
		break;
	case PKI_EKU_SERVER:
		eku = "serverAuth";
		break;
	case PKI_EKU_CLIENT:
		eku = "clientAuth";
		break;
	case PKI_EKU_SERVER | PKI_EKU_CLIENT:
		eku = "serverAuth,clientAuth";
		break;
	default:
		goto out;
	}

	r = MOAT_ERR_CRYPTO;
	if ((x = X509_new()) == NULL ||
	    X509_set_version(x, X509_VERSION_3) != 1 ||
	    (r = pki_set_serial(x)) != 0)
		goto out;
	r = MOAT_ERR_CRYPTO;
	if (X509_gmtime_adj(X509_getm_notBefore(x), -PKI_BACKDATE) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), spec->days, 0, NULL)
	    == NULL)
		goto out;
	name = X509_get_subject_name(x);
	if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
	    (const unsigned char *)"moat development", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
	    (const unsigned char *)spec->common_name, -1, -1, 0) != 1)
		goto out;
	if (X509_set_issuer_name(x, issuer != NULL ?
	    X509_get_subject_name(issuer) : name) != 1 ||
	    X509_set_pubkey(x, key) != 1)
		goto out;

	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	if ((r = pki_add_ext(x, &ctx, NID_basic_constraints, spec->ca ?
	    "critical,CA:TRUE,pathlen:0" : "critical,CA:FALSE")) != 0 ||
	    (r = pki_add_ext(x, &ctx, NID_key_usage, spec->ca ?
	    "critical,keyCertSign,cRLSign" : "critical,digitalSignature"))
	    != 0 ||
	    (r = pki_add_ext(x, &ctx, NID_subject_key_identifier, "hash"))
	    != 0)
		goto out;
	if (issuer != NULL && (r = pki_add_ext(x, &ctx,
	    NID_authority_key_identifier, "keyid:always")) != 0)
		goto out;
	if (eku != NULL && (r = pki_add_ext(x, &ctx, NID_ext_key_usage, eku))
	    != 0)
		goto out;
	if ((r = pki_add_san(x, spec)) != 0)
		goto out;
	r = MOAT_ERR_CRYPTO;
	if (X509_sign(x, issuer_key != NULL ? issuer_key : key,
	    EVP_sha256()) <= 0)
		goto out;
	*out = x;
	x = NULL;
	r = 0;
out:
	X509_free(x);
	return r;
}

void
pki_secret_free(void *p, size_t len)
{
	OPENSSL_clear_free(p, len);
}

int
pki_key_pem(EVP_PKEY *key, char **out, size_t *len)
{
	BIO *bio = NULL;
	char *data, *copy;
	long n;
	int r = MOAT_ERR_CRYPTO;

	/* A secure-memory BIO wipes its buffer as it grows and when freed. */
	if ((bio = BIO_new(BIO_s_secmem())) == NULL ||
	    PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (n = BIO_get_mem_data(bio, &data)) <= 0)
		goto out;
	if ((copy = OPENSSL_malloc((size_t)n + 1)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	memcpy(copy, data, (size_t)n);
	copy[n] = '\0';
	*out = copy;
	*len = (size_t)n;
	r = 0;
out:
	BIO_free(bio);
	return r;
}

/* Appends what a PEM_write_bio_* call wrote into a memory BIO to out. */
static int
pki_bio_append(BIO *bio, struct buf *out)
{
	char *data;
	long n = BIO_get_mem_data(bio, &data);

	if (n <= 0)
		return MOAT_ERR_CRYPTO;
	return buf_append(out, data, (size_t)n);
}

int
pki_pubkey_pem(EVP_PKEY *key, struct buf *out)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int r = MOAT_ERR_CRYPTO;

	if (bio != NULL && PEM_write_bio_PUBKEY(bio, key) == 1)
		r = pki_bio_append(bio, out);
	BIO_free(bio);
	return r;
}

int
pki_cert_pem(X509 *cert, struct buf *out)
{
	BIO *bio = BIO_new(BIO_s_mem());
	int r = MOAT_ERR_CRYPTO;

	if (bio != NULL && PEM_write_bio_X509(bio, cert) == 1)
		r = pki_bio_append(bio, out);
	BIO_free(bio);
	return r;
}

int
pki_key_id(EVP_PKEY *key, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int len, r = MOAT_ERR_INVAL, i;

	if (key == NULL || out == NULL || outlen < PKI_KID_LEN + 1)
		goto out;
	r = MOAT_ERR_CRYPTO;
	if ((len = i2d_PUBKEY(key, &der)) <= 0 ||
	    EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) != 1)
		goto out;
	for (i = 0; i < PKI_KID_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 0xf];
	}
	out[PKI_KID_LEN] = '\0';
	r = 0;
out:
	OPENSSL_free(der);
	return r;
}
