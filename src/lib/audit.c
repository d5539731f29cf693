/*
 * audit.c - the pieces of the audit chain that the writer, the collector and
 * the verifier share: canonical form, record hashes, the checkpoint payload
 * and its ES256 signature, codecs, event-field rules (see audit_int.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "audit_int.h"
#include "json.h"
#include "uri.h"

char *
audit__canonical(const json_t *v, size_t *len_out)
{
	return json_canonical(v, len_out);
}

void
audit__hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * n] = '\0';
}

bool
audit__unhex(const char *hex, size_t hexlen, uint8_t *out, size_t n)
{
	if (hex == NULL || hexlen != 2 * n)
		return false;
	for (size_t i = 0; i < n; i++) {
		int hi = uri_hexval(hex[2 * i]), lo = uri_hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void
audit__b64url_encode(const uint8_t *in, size_t n, char *out)
{
	size_t o = 0, i = 0;

	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
		out[o++] = b64url[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)in[i] << 16;
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
		out[o++] = b64url[v >> 18 & 63];
		out[o++] = b64url[v >> 12 & 63];
		out[o++] = b64url[v >> 6 & 63];
	}
	out[o] = '\0';
}

static int
b64val(char c)
{
	const char *p;

	if (c == '\0' || (p = strchr(b64url, c)) == NULL)
		return -1;
	return (int)(p - b64url);
}

bool
audit__b64url_decode(const char *in, size_t inlen, uint8_t *out,
    size_t outlen)
{
	size_t full = outlen / 3, rest = outlen % 3, o = 0, i = 0;
	uint32_t v;
	int d[4];

	if (in == NULL || inlen != full * 4 + (rest ? rest + 1 : 0))
		return false;
	for (size_t g = 0; g < full; g++, i += 4) {
		v = 0;
		for (int k = 0; k < 4; k++) {
			if ((d[k] = b64val(in[i + k])) < 0)
				return false;
			v = v << 6 | (uint32_t)d[k];
		}
		out[o++] = (uint8_t)(v >> 16);
		out[o++] = (uint8_t)(v >> 8);
		out[o++] = (uint8_t)v;
	}
	if (rest > 0) {
		v = 0;
		for (size_t k = 0; k < rest + 1; k++) {
			if ((d[k] = b64val(in[i + k])) < 0)
				return false;
			v |= (uint32_t)d[k] << (18 - 6 * k);
		}
		/* Unused low bits must be zero: one encoding per value. */
		if ((rest == 1 && (v & 0xffff)) || (rest == 2 && (v & 0xff)))
			return false;
		out[o++] = (uint8_t)(v >> 16);
		if (rest == 2)
			out[o++] = (uint8_t)(v >> 8);
	}
	return true;
}

int
audit__record_hash_canon(const char *canon, size_t len,
    const uint8_t prev[AUDIT_HASH_LEN], uint8_t out[AUDIT_HASH_LEN])
{
	EVP_MD_CTX *ctx = NULL;
	int r = MOAT_ERR_NOMEM;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto out;
	r = MOAT_ERR_CRYPTO;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, prev, AUDIT_HASH_LEN) != 1 ||
	    EVP_DigestUpdate(ctx, canon, len) != 1 ||
	    EVP_DigestFinal_ex(ctx, out, NULL) != 1)
		goto out;
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	return r;
}

int
audit__record_hash(const json_t *rec, const uint8_t prev[AUDIT_HASH_LEN],
    uint8_t out[AUDIT_HASH_LEN])
{
	char *canon;
	size_t len;
	int r;

	if ((canon = audit__canonical(rec, &len)) == NULL)
		return MOAT_ERR_NOMEM;
	r = audit__record_hash_canon(canon, len, prev, out);
	free(canon);
	return r;
}

/* In canonical (compact) JSON at s[i] (i < n), the end of the string that
 * starts there, just past its closing quote; *esc set when it holds an
 * escape. n when it does not end. */
static size_t
canon_string_end(const char *s, size_t i, size_t n, bool *esc)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\') {
			*esc = true;
			i++;
		} else if (s[i] == '"') {
			return i + 1;
		}
	}
	return n;
}

char *
audit__canonical_add(const char *canon, size_t len, const char *key,
    const char *value, size_t *len_out)
{
	size_t klen = strlen(key), vlen = strlen(value), i = 1, at, mlen;
	char *out;
	bool last = true;

	for (size_t k = 0; k < klen; k++)
		if (!((key[k] >= 'a' && key[k] <= 'z') || key[k] == '_'))
			return NULL;
	for (size_t k = 0; k < vlen; k++)
		if ((unsigned char)value[k] < 0x20 || value[k] == '"' ||
		    value[k] == '\\' || (unsigned char)value[k] >= 0x7f)
			return NULL;
	if (len < 2 || canon[0] != '{' || canon[len - 1] != '}')
		return NULL;
	at = len - 1;			/* after every member: before '}' */
	if (len > 2) {
		for (;;) {
			size_t ks = i, ke;
			bool esc = false;
			int depth = 0, c;

			if (i >= len - 1 || canon[i] != '"')
				return NULL;
			ke = canon_string_end(canon, i, len, &esc);
			if (esc || ke >= len)
				return NULL;
			/* Keys sort as jansson sorts them: by their bytes. */
			c = strncmp(canon + ks + 1, key, klen);
			if (c == 0 && ke - ks - 2 == klen)
				return NULL;		/* already a member */
			if (c > 0 || (c == 0 && ke - ks - 2 > klen)) {
				at = ks;
				last = false;
				break;
			}
			/* Skip ':' and the value, to the ',' or the final '}'. */
			for (i = ke + 1; i < len; i++) {
				char ch = canon[i];

				if (ch == '"') {
					i = canon_string_end(canon, i, len,
					    &esc) - 1;
				} else if (ch == '{' || ch == '[') {
					depth++;
				} else if (ch == '}' || ch == ']') {
					if (depth == 0)
						break;
					depth--;
				} else if (ch == ',' && depth == 0) {
					break;
				}
			}
			if (i >= len)
				return NULL;
			if (canon[i] == '}') {
				if (i != len - 1)
					return NULL;
				break;			/* the new one is last */
			}
			i++;
		}
	}
	/* "key":"value" plus a comma. */
	mlen = klen + vlen + 6;
	if ((out = malloc(len + mlen + 1)) == NULL)
		return NULL;
	memcpy(out, canon, at);
	{
		size_t o = at;

		if (last && len > 2)
			out[o++] = ',';
		out[o++] = '"';
		memcpy(out + o, key, klen);
		o += klen;
		memcpy(out + o, "\":\"", 3);
		o += 3;
		memcpy(out + o, value, vlen);
		o += vlen;
		out[o++] = '"';
		if (!last)
			out[o++] = ',';
		memcpy(out + o, canon + at, len - at);
		o += len - at;
		out[o] = '\0';
		if (len_out != NULL)
			*len_out = o;
	}
	return out;
}

char *
audit__ckpt_payload(uint64_t seq, const char *hash_hex, const char *key_id,
    size_t *len_out)
{
	json_t *o;
	char *s;

	if (seq > (uint64_t)INT64_MAX)
		return NULL;
	o = json_pack("{s:s, s:s, s:I, s:s}", "hash", hash_hex, "key_id",
	    key_id, "seq", (json_int_t)seq, "v", AUDIT_CKPT_VERSION);
	if (o == NULL)
		return NULL;
	s = audit__canonical(o, len_out);
	json_decref(o);
	return s;
}

bool
audit__key_is_p256(EVP_PKEY *key)
{
	char group[64];
	size_t glen = 0;

	if (key == NULL || !EVP_PKEY_is_a(key, "EC"))
		return false;
	if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
	    group, sizeof(group), &glen) != 1)
		return false;
	return strcmp(group, "prime256v1") == 0 ||
	    strcmp(group, "P-256") == 0;
}

int
audit__es256_sign(EVP_PKEY *key, const uint8_t *msg, size_t len,
    uint8_t sig[AUDIT_SIG_LEN])
{
	EVP_MD_CTX *ctx = NULL;
	ECDSA_SIG *es = NULL;
	unsigned char der[128];
	const unsigned char *p = der;
	const BIGNUM *br, *bs;
	size_t derlen = sizeof(der);
	int r = MOAT_ERR_CRYPTO;

	if ((ctx = EVP_MD_CTX_new()) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) != 1 ||
	    EVP_DigestSign(ctx, der, &derlen, msg, len) != 1)
		goto out;
	/* OpenSSL gives DER; JWS-style ES256 is the raw 32-byte r and s. */
	if ((es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL)
		goto out;
	ECDSA_SIG_get0(es, &br, &bs);
	if (BN_bn2binpad(br, sig, 32) != 32 || BN_bn2binpad(bs, sig + 32, 32) != 32)
		goto out;
	r = 0;
out:
	ECDSA_SIG_free(es);
	EVP_MD_CTX_free(ctx);
	return r;
}

int
audit__es256_verify(EVP_PKEY *pub, const uint8_t *msg, size_t len,
    const uint8_t sig[AUDIT_SIG_LEN])
{
	EVP_MD_CTX *ctx = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	unsigned char *der = NULL;
	int derlen, r = MOAT_ERR_NOMEM;

	if ((es = ECDSA_SIG_new()) == NULL ||
	    (br = BN_bin2bn(sig, 32, NULL)) == NULL ||
	    (bs = BN_bin2bn(sig + 32, 32, NULL)) == NULL)
		goto out;
	if (ECDSA_SIG_set0(es, br, bs) != 1)
		goto out;
	br = bs = NULL;		/* owned by es now */
	if ((derlen = i2d_ECDSA_SIG(es, &der)) <= 0)
		goto out;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto out;
	r = MOAT_ERR_CRYPTO;
	if (EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pub) != 1 ||
	    EVP_DigestVerify(ctx, der, (size_t)derlen, msg, len) != 1)
		goto out;
	r = 0;
out:
	/* A failed verification leaves errors on OpenSSL's thread queue. */
	if (r != 0)
		ERR_clear_error();
	EVP_MD_CTX_free(ctx);
	OPENSSL_free(der);
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(es);
	return r;
}

int
audit__key_id(EVP_PKEY *key, char *out, size_t outlen)
{
	unsigned char *der = NULL;
	uint8_t md[SHA256_DIGEST_LENGTH];
	char hex[2 * SHA256_DIGEST_LENGTH + 1];
	int derlen, r = MOAT_ERR_CRYPTO;

	if ((derlen = i2d_PUBKEY(key, &der)) <= 0)
		goto out;
	if (SHA256(der, (size_t)derlen, md) == NULL)
		goto out;
	audit__hex(md, 8, hex);
	r = MOAT_ERR_TOOBIG;
	if (snprintf(out, outlen, "sha256:%s", hex) >= (int)outlen)
		goto out;
	r = 0;
out:
	OPENSSL_free(der);
	return r;
}

bool
audit__valid_type(const char *s)
{
	size_t n;

	if (s == NULL || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (n = 0; s[n] != '\0'; n++) {
		char c = s[n];
		if (n >= AUDIT_TYPE_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

bool
audit__valid_key_id(const char *s)
{
	size_t n;

	if (s == NULL || s[0] == '\0')
		return false;
	for (n = 0; s[n] != '\0'; n++) {
		char c = s[n];
		if (n >= AUDIT_KEY_ID_MAX)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '-' || c == ':'))
			return false;
	}
	return true;
}

bool
audit__valid_outcome(const char *s)
{
	return s != NULL && (strcmp(s, "success") == 0 ||
	    strcmp(s, "failure") == 0 || strcmp(s, "denied") == 0);
}

/* A top-level key name of a remote event: 1..64 bytes of [a-z0-9_]. */
static bool
valid_key_name(const char *s)
{
	size_t n;

	for (n = 0; s[n] != '\0'; n++) {
		char c = s[n];
		if (n >= 64 || !((c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '_'))
			return false;
	}
	return n > 0;
}

/* A string value of a restricted field: at most max bytes of printable
 * ASCII without quotes or backslashes. */
static bool
valid_plain(const json_t *v, size_t max)
{
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return false;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return false;
	return true;
}

/* Nesting depth and string sizes of an untrusted value. */
static bool
bounded(const json_t *v, int depth)
{
	const char *key;
	json_t *child;
	size_t i;

	if (depth > JSON_MAX_DEPTH)
		return false;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		json_object_foreach((json_t *)v, key, child) {
			if (strlen(key) > 256 || !bounded(child, depth + 1))
				return false;
		}
		return true;
	case JSON_ARRAY:
		json_array_foreach(v, i, child) {
			if (!bounded(child, depth + 1))
				return false;
		}
		return true;
	case JSON_STRING:
		return json_string_length(v) <= 16384;
	default:
		return true;
	}
}

bool
audit__check_remote(const json_t *ev, char *why, size_t whylen)
{
	static const char *const reserved[] = {
		"seq", "prev", "hash", "source", "sig", "key_id"
	};
	const char *key, *type;
	json_t *v;

	if (!json_is_object(ev)) {
		snprintf(why, whylen, "not a JSON object");
		return false;
	}
	for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		if (json_object_get(ev, reserved[i]) != NULL) {
			snprintf(why, whylen, "sets the writer's field \"%s\"",
			    reserved[i]);
			return false;
		}
	}
	type = json_string_value(json_object_get(ev, "type"));
	if (!audit__valid_type(type)) {
		snprintf(why, whylen, "\"type\" missing or invalid");
		return false;
	}
	if (strncmp(type, "audit.", 6) == 0) {
		snprintf(why, whylen, "\"type\" is reserved to the writer");
		return false;
	}
	if (!audit__valid_outcome(json_string_value(json_object_get(ev,
	    "outcome")))) {
		snprintf(why, whylen, "\"outcome\" missing or invalid");
		return false;
	}
	json_object_foreach((json_t *)ev, key, v) {
		if (!valid_key_name(key)) {
			snprintf(why, whylen, "invalid field name");
			return false;
		}
	}
	if ((v = json_object_get(ev, "component")) != NULL &&
	    !valid_plain(v, 64)) {
		snprintf(why, whylen, "\"component\" invalid");
		return false;
	}
	if ((v = json_object_get(ev, "workspace")) != NULL &&
	    !valid_plain(v, 256)) {
		snprintf(why, whylen, "\"workspace\" invalid");
		return false;
	}
	if ((v = json_object_get(ev, "time")) != NULL && !valid_plain(v, 40)) {
		snprintf(why, whylen, "\"time\" invalid");
		return false;
	}
	if (!bounded(ev, 1)) {
		snprintf(why, whylen, "nested too deep or a string too long");
		return false;
	}
	return true;
}

void
audit__now_rfc3339(char *out, size_t outlen)
{
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, ts.tv_nsec);
}

json_t *
audit_event_new(const char *type, const char *outcome)
{
	if (type == NULL || outcome == NULL)
		return NULL;
	return json_pack("{s:s, s:s}", "type", type, "outcome", outcome);
}
