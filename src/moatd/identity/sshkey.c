/*
 * sshkey.c - parsing and vetting of OpenSSH public key lines (see
 * sshkey.h): "TYPE BASE64 [COMMENT]".
 *
 * The line is bounded (16 KiB), split on blanks, and its base64 checked
 * strictly before OpenSSL decodes it: only the standard alphabet, a length
 * that is a multiple of four, padding only at the end and zero bits under
 * the padding, so every blob has exactly one accepted spelling and the
 * canonical line can be rebuilt from the input as given. The blob is then
 * walked as SSH wire format (RFC 4251: uint32 length-prefixed strings and
 * mpints) with every read bounds-checked; the inner type must equal the
 * outer one and nothing may follow the last field. The key material itself
 * is vetted as ssh would: an Ed25519 key is 32 bytes, an ECDSA point is an
 * uncompressed point on the curve its name says (OpenSSL checks that the
 * coordinates are below p and the point satisfies the curve equation; the
 * NIST curves have cofactor 1, so that also puts it in the right group),
 * an RSA key has a positive odd modulus of 2048..16384 bits and an odd
 * exponent of at least 3. The FIDO ("sk-") variants carry the application
 * string after the key. The fingerprint is ssh-keygen's: "SHA256:" and the
 * unpadded base64 of SHA-256 over the blob.
 *
 * Error texts name what is wrong and never quote the line.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "identity/sshkey.h"

#define SSHKEY_LINE_MAX (16 * 1024)
#define SSHKEY_RSA_MIN_BITS 2048
#define SSHKEY_RSA_MAX_BITS 16384	/* OpenSSH's own limit */
#define SSHKEY_APP_MAX 1024		/* bytes of a FIDO application */

enum sshkey_kind { SK_ED25519, SK_ECDSA, SK_RSA };

struct sshkey_type {
	const char *name;
	enum sshkey_kind kind;
	int nid;		/* ECDSA curve */
	const char *curve;	/* ECDSA curve name inside the blob */
	bool sk;		/* FIDO: application string follows the key */
};

static const struct sshkey_type sshkey_types[] = {
	{ "ssh-ed25519", SK_ED25519, 0, NULL, false },
	{ "ecdsa-sha2-nistp256", SK_ECDSA, NID_X9_62_prime256v1, "nistp256",
	    false },
	{ "ecdsa-sha2-nistp384", SK_ECDSA, NID_secp384r1, "nistp384", false },
	{ "ecdsa-sha2-nistp521", SK_ECDSA, NID_secp521r1, "nistp521", false },
	{ "ssh-rsa", SK_RSA, 0, NULL, false },
	{ "sk-ssh-ed25519@openssh.com", SK_ED25519, 0, NULL, true },
	{ "sk-ecdsa-sha2-nistp256@openssh.com", SK_ECDSA,
	    NID_X9_62_prime256v1, "nistp256", true },
};
#define NTYPES (sizeof(sshkey_types) / sizeof(sshkey_types[0]))

/* ---- wire format reader ---- */

struct rd {
	const uint8_t *p;	/* borrowed blob */
	size_t len;
	size_t off;
};

static int
rd_string(struct rd *r, const uint8_t **s, size_t *n)
{
	uint32_t l;

	if (r->len - r->off < 4)
		return -1;
	l = (uint32_t)r->p[r->off] << 24 | (uint32_t)r->p[r->off + 1] << 16 |
	    (uint32_t)r->p[r->off + 2] << 8 | (uint32_t)r->p[r->off + 3];
	r->off += 4;
	if (l > r->len - r->off)
		return -1;
	*s = r->p + r->off;
	*n = l;
	r->off += l;
	return 0;
}

static bool
str_is(const uint8_t *s, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(s, want, n) == 0;
}

/* An mpint that must be positive and minimally encoded (RFC 4251). Caller
 * frees *out. */
static int
rd_mpint_pos(struct rd *r, BIGNUM **out, char *err, size_t errlen)
{
	const uint8_t *s;
	size_t n;

	*out = NULL;
	if (rd_string(r, &s, &n) != 0)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is truncated");
	if (n == 0 || (s[0] & 0x80) != 0)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "an RSA number is zero or "
		    "negative");
	if (s[0] == 0 && (n == 1 || (s[1] & 0x80) == 0))
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "an RSA number is not minimally "
		    "encoded");
	if (n > SSHKEY_RSA_MAX_BITS / 8 + 1)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "RSA keys larger than %d bits "
		    "are not accepted", SSHKEY_RSA_MAX_BITS);
	if ((*out = BN_bin2bn(s, (int)n, NULL)) == NULL)
		return MOAT_ERR_NOMEM;
	return 0;
}

/* ---- base64 ---- */

static int
b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Strict, canonical base64 to *out (caller frees). */
static int
b64_decode(const char *s, size_t n, uint8_t **out, size_t *outlen,
    char *err, size_t errlen)
{
	char *tmp = NULL;
	uint8_t *bin = NULL;
	size_t pad = 0, i;
	int r = MOAT_ERR_INVAL, got;

	*out = NULL;
	*outlen = 0;
	if (n == 0 || n % 4 != 0) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is not valid base64");
		goto out;
	}
	if (s[n - 1] == '=')
		pad = s[n - 2] == '=' ? 2 : 1;
	for (i = 0; i < n - pad; i++) {
		if (b64val((unsigned char)s[i]) < 0) {
			r = moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is not valid "
			    "base64");
			goto out;
		}
	}
	/* The bits under the padding must be zero, or two spellings would
	 * decode to the same blob. */
	if ((pad == 1 && (b64val((unsigned char)s[n - 2]) & 0x3) != 0) ||
	    (pad == 2 && (b64val((unsigned char)s[n - 3]) & 0xf) != 0)) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is not canonical "
		    "base64");
		goto out;
	}
	/* EVP_DecodeBlock knows no padding: decode 'A' (zero bits) in its
	 * place and drop the bytes it stands for. */
	r = MOAT_ERR_NOMEM;
	if ((tmp = malloc(n + 1)) == NULL || (bin = malloc(n / 4 * 3 + 1)) ==
	    NULL)
		goto out;
	memcpy(tmp, s, n);
	for (i = n - pad; i < n; i++)
		tmp[i] = 'A';
	tmp[n] = '\0';
	got = EVP_DecodeBlock(bin, (const unsigned char *)tmp, (int)n);
	if (got < 0 || (size_t)got != n / 4 * 3 || (size_t)got <= pad) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is not valid base64");
		goto out;
	}
	*out = bin;
	*outlen = (size_t)got - pad;
	bin = NULL;
	r = 0;
out:
	free(tmp);
	free(bin);
	return r;
}

/* ---- key material ---- */

static int
check_ecdsa(const struct sshkey_type *t, struct rd *r, unsigned *bits,
    char *err, size_t errlen)
{
	EC_GROUP *g = NULL;
	EC_POINT *pt = NULL;
	const uint8_t *s;
	size_t n, flen;
	int rc = MOAT_ERR_INVAL;

	if (rd_string(r, &s, &n) != 0) {
		rc = moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is truncated");
		goto out;
	}
	if (!str_is(s, n, t->curve)) {
		rc = moat_fail(MOAT_ERR_INVAL, err, errlen, "the curve in the key data does "
		    "not match the key type");
		goto out;
	}
	if (rd_string(r, &s, &n) != 0) {
		rc = moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is truncated");
		goto out;
	}
	if ((g = EC_GROUP_new_by_curve_name(t->nid)) == NULL ||
	    (pt = EC_POINT_new(g)) == NULL) {
		rc = MOAT_ERR_NOMEM;
		goto out;
	}
	flen = ((size_t)EC_GROUP_get_degree(g) + 7) / 8;
	if (n != 1 + 2 * flen || s[0] != 0x04) {
		rc = moat_fail(MOAT_ERR_INVAL, err, errlen, "the ECDSA key is not an "
		    "uncompressed curve point");
		goto out;
	}
	if (EC_POINT_oct2point(g, pt, s, n, NULL) != 1 ||
	    EC_POINT_is_at_infinity(g, pt) ||
	    EC_POINT_is_on_curve(g, pt, NULL) != 1) {
		rc = moat_fail(MOAT_ERR_INVAL, err, errlen, "the ECDSA key is not a valid "
		    "point on its curve");
		goto out;
	}
	*bits = (unsigned)EC_GROUP_get_degree(g);
	rc = 0;
out:
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	return rc;
}

static int
check_rsa(struct rd *r, unsigned *bits, char *err, size_t errlen)
{
	BIGNUM *e = NULL, *n = NULL;
	int rc, nb;

	if ((rc = rd_mpint_pos(r, &e, err, errlen)) != 0 ||
	    (rc = rd_mpint_pos(r, &n, err, errlen)) != 0)
		goto out;
	rc = MOAT_ERR_INVAL;
	if (!BN_is_odd(e) || BN_num_bits(e) < 2) {
		rc = moat_fail(MOAT_ERR_INVAL, err, errlen, "the RSA exponent must be odd and "
		    "at least 3");
		goto out;
	}
	nb = BN_num_bits(n);
	if (!BN_is_odd(n)) {
		rc = moat_fail(MOAT_ERR_INVAL, err, errlen, "the RSA modulus is not valid");
		goto out;
	}
	if (nb < SSHKEY_RSA_MIN_BITS) {
		rc = moat_fail(MOAT_ERR_INVAL, err, errlen, "RSA keys must have at least %d "
		    "bits (this one has %d)", SSHKEY_RSA_MIN_BITS, nb);
		goto out;
	}
	if (nb > SSHKEY_RSA_MAX_BITS) {
		rc = moat_fail(MOAT_ERR_INVAL, err, errlen, "RSA keys larger than %d bits are "
		    "not accepted", SSHKEY_RSA_MAX_BITS);
		goto out;
	}
	*bits = (unsigned)nb;
	rc = 0;
out:
	BN_free(e);
	BN_free(n);
	return rc;
}

/* Walks the decoded blob of a key of type t. */
static int
check_blob(const struct sshkey_type *t, const uint8_t *blob, size_t len,
    unsigned *bits, char *err, size_t errlen)
{
	struct rd r = { blob, len, 0 };
	const uint8_t *s;
	size_t n;
	int rc;

	if (rd_string(&r, &s, &n) != 0)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is truncated");
	if (!str_is(s, n, t->name))
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is of another "
		    "type than the line says");
	switch (t->kind) {
	case SK_ED25519:
		if (rd_string(&r, &s, &n) != 0)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is "
			    "truncated");
		if (n != 32)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "an Ed25519 key must be "
			    "32 bytes");
		*bits = 256;
		break;
	case SK_ECDSA:
		if ((rc = check_ecdsa(t, &r, bits, err, errlen)) != 0)
			return rc;
		break;
	case SK_RSA:
		if ((rc = check_rsa(&r, bits, err, errlen)) != 0)
			return rc;
		break;
	}
	if (t->sk) {
		if (rd_string(&r, &s, &n) != 0)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is "
			    "truncated (no FIDO application)");
		if (n == 0 || n > SSHKEY_APP_MAX || memchr(s, '\0', n) != NULL)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "the FIDO application "
			    "is not valid");
	}
	if (r.off != r.len)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data has trailing "
		    "bytes");
	return 0;
}

/* ---- the line ---- */

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none.
 * Overlong forms, surrogates and code points past U+10FFFF are invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0], cp, i, len;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

/* Copies the comment into out (size outlen), checking it is printable
 * UTF-8 and cutting it at a character boundary. */
static int
copy_comment(const char *s, size_t n, char *out, size_t outlen, char *err,
    size_t errlen)
{
	size_t i = 0, o = 0, l;

	out[0] = '\0';
	while (i < n) {
		unsigned char c = (unsigned char)s[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "the comment holds "
			    "control characters");
		if ((l = utf8_seq((const unsigned char *)s + i, n - i)) == 0)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "the comment is not "
			    "valid UTF-8");
		if (o + l < outlen) {
			memcpy(out + o, s + i, l);
			o += l;
			out[o] = '\0';
		} else {
			o = outlen;	/* full: keep checking, stop copying */
		}
		i += l;
	}
	return 0;
}

static bool
looks_like_options(const char *tok, size_t n, const char *rest, size_t rn)
{
	size_t i, j;

	if (memchr(tok, '=', n) != NULL || memchr(tok, '"', n) != NULL ||
	    memchr(tok, ',', n) != NULL)
		return true;
	/* "no-pty ssh-ed25519 AAAA...": a key type further on */
	for (i = 0; i < rn;) {
		while (i < rn && is_blank(rest[i]))
			i++;
		for (j = i; j < rn && !is_blank(rest[j]); j++)
			;
		for (size_t k = 0; k < NTYPES; k++)
			if (str_is((const uint8_t *)rest + i, j - i,
			    sshkey_types[k].name))
				return true;
		i = j;
	}
	return false;
}

int
sshkey_parse(const char *line, size_t len, struct sshkey_info *info,
    char *err, size_t errlen)
{
	static const char certsfx[] = "-cert-v01@openssh.com";
	const struct sshkey_type *t = NULL;
	unsigned char md[EVP_MAX_MD_SIZE], enc[48];	/* base64 of 32 bytes */
	const char *p, *end, *tok, *b64;
	size_t tn, bn, i, blen = 0;
	unsigned mdlen = 0, bits = 0;
	uint8_t *blob = NULL;
	int r = MOAT_ERR_INVAL, el;

	memset(info, 0, sizeof(*info));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (len > SSHKEY_LINE_MAX) {
		r = MOAT_ERR_TOOBIG;
		moat_fail(MOAT_ERR_INVAL, err, errlen, "the key line is longer than %d KiB",
		    SSHKEY_LINE_MAX / 1024);
		goto out;
	}
	p = line;
	end = line + len;
	/* One line: a final newline (CRLF too) is tolerated. */
	if (end > p && end[-1] == '\n')
		end--;
	if (end > p && end[-1] == '\r')
		end--;
	for (i = 0; i < (size_t)(end - p); i++) {
		if (p[i] == '\n' || p[i] == '\r' || p[i] == '\0') {
			r = moat_fail(MOAT_ERR_INVAL, err, errlen, "the key must be a single "
			    "line");
			goto out;
		}
	}
	while (p < end && is_blank(*p))
		p++;
	while (end > p && is_blank(end[-1]))
		end--;
	if (p == end) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "the key line is empty");
		goto out;
	}
	if (*p == '#') {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "the key line is a comment");
		goto out;
	}
	tok = p;
	while (p < end && !is_blank(*p))
		p++;
	tn = (size_t)(p - tok);
	for (i = 0; i < NTYPES; i++)
		if (str_is((const uint8_t *)tok, tn, sshkey_types[i].name))
			t = &sshkey_types[i];
	if (t == NULL) {
		if (str_is((const uint8_t *)tok, tn, "ssh-dss"))
			r = moat_fail(MOAT_ERR_INVAL, err, errlen, "DSA keys are not accepted "
			    "(weak); use an Ed25519 key");
		else if (tn > sizeof(certsfx) - 1 && memcmp(tok + tn -
		    (sizeof(certsfx) - 1), certsfx, sizeof(certsfx) - 1) == 0)
			r = moat_fail(MOAT_ERR_INVAL, err, errlen, "certificates are not "
			    "accepted; register the plain public key");
		else if (looks_like_options(tok, tn, p, (size_t)(end - p)))
			r = moat_fail(MOAT_ERR_INVAL, err, errlen, "options before the key "
			    "type are not accepted");
		else
			r = moat_fail(MOAT_ERR_INVAL, err, errlen, "unknown or unsupported key "
			    "type");
		goto out;
	}
	while (p < end && is_blank(*p))
		p++;
	b64 = p;
	while (p < end && !is_blank(*p))
		p++;
	bn = (size_t)(p - b64);
	if (bn == 0) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "the key data is missing");
		goto out;
	}
	while (p < end && is_blank(*p))
		p++;
	if ((r = copy_comment(p, (size_t)(end - p), info->comment,
	    sizeof(info->comment), err, errlen)) != 0)
		goto out;
	if ((r = b64_decode(b64, bn, &blob, &blen, err, errlen)) != 0)
		goto out;
	if ((r = check_blob(t, blob, blen, &bits, err, errlen)) != 0)
		goto out;
	if (EVP_Digest(blob, blen, md, &mdlen, EVP_sha256(), NULL) != 1) {
		r = MOAT_ERR_CRYPTO;
		goto out;
	}
	if (mdlen != 32) {
		r = MOAT_ERR_CRYPTO;
		goto out;
	}
	el = EVP_EncodeBlock(enc, md, (int)mdlen);
	while (el > 0 && enc[el - 1] == '=')
		el--;
	enc[el] = '\0';
	snprintf(info->fingerprint, sizeof(info->fingerprint), "SHA256:%s",
	    (const char *)enc);
	snprintf(info->type, sizeof(info->type), "%s", t->name);
	info->bits = bits;
	r = MOAT_ERR_NOMEM;
	if ((info->canonical = malloc(strlen(t->name) + 1 + bn + 1)) == NULL)
		goto out;
	memcpy(info->canonical, t->name, strlen(t->name));
	info->canonical[strlen(t->name)] = ' ';
	memcpy(info->canonical + strlen(t->name) + 1, b64, bn);
	info->canonical[strlen(t->name) + 1 + bn] = '\0';
	r = 0;
out:
	free(blob);
	if (r != 0) {
		free(info->canonical);
		memset(info, 0, sizeof(*info));
	}
	return r;
}
