/*
 * sni.c - strict TLS ClientHello parser for the server_name extension
 * (see sni.h). RFC 8446 section 4.1.2 (ClientHello), RFC 6066 section 3
 * (server_name). Every length is checked against what is left before it is
 * used; nothing is read past len.
 */
#include <string.h>

#include "sni.h"

#define TLS_HANDSHAKE 22
#define HS_CLIENT_HELLO 1
#define EXT_SERVER_NAME 0
#define NAME_HOST 0
#define TLS_RECORD_MAX 16384

/* A bounded reader over the reassembled handshake message. */
struct rd {
	const uint8_t *p;
	size_t left;
};

static int
rd_u8(struct rd *r, unsigned *v)
{
	if (r->left < 1)
		return MOAT_ERR_PARSE;
	*v = r->p[0];
	r->p++;
	r->left--;
	return 0;
}

static int
rd_u16(struct rd *r, unsigned *v)
{
	if (r->left < 2)
		return MOAT_ERR_PARSE;
	*v = ((unsigned)r->p[0] << 8) | r->p[1];
	r->p += 2;
	r->left -= 2;
	return 0;
}

static int
rd_skip(struct rd *r, size_t n)
{
	if (r->left < n)
		return MOAT_ERR_PARSE;
	r->p += n;
	r->left -= n;
	return 0;
}

/* A sub-reader of n bytes taken from r. */
static int
rd_sub(struct rd *r, size_t n, struct rd *sub)
{
	if (r->left < n)
		return MOAT_ERR_PARSE;
	sub->p = r->p;
	sub->left = n;
	r->p += n;
	r->left -= n;
	return 0;
}

/* Host name rules: LDH labels (and '_', seen in the wild), 1..63 bytes
 * each, 253 in all, no empty label, no trailing dot (RFC 6066 forbids it).
 * Copies it lower-cased into out. */
static int
host_copy(const uint8_t *p, size_t n, char *out, size_t outlen)
{
	size_t label = 0;

	if (n == 0 || n > 253 || n >= outlen)
		return MOAT_ERR_PARSE;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (c == '.') {
			if (label == 0)
				return MOAT_ERR_PARSE;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_') {
			label++;
		} else if (c >= 'A' && c <= 'Z') {
			c = (uint8_t)(c - 'A' + 'a');
			label++;
		} else {
			return MOAT_ERR_PARSE;
		}
		if (label > 63)
			return MOAT_ERR_PARSE;
		out[i] = (char)c;
	}
	if (label == 0)
		return MOAT_ERR_PARSE;	/* trailing dot */
	out[n] = '\0';
	return 0;
}

static int
parse_server_name(struct rd *ext, char *sni, size_t snilen)
{
	struct rd list, name;
	unsigned llen, type, nlen;
	int r, seen = 0;

	if ((r = rd_u16(ext, &llen)) != 0 || llen != ext->left || llen == 0)
		return MOAT_ERR_PARSE;
	if ((r = rd_sub(ext, llen, &list)) != 0)
		return r;
	while (list.left > 0) {
		if ((r = rd_u8(&list, &type)) != 0 ||
		    (r = rd_u16(&list, &nlen)) != 0 ||
		    (r = rd_sub(&list, nlen, &name)) != 0)
			return MOAT_ERR_PARSE;
		/* Only host_name is defined; one of it at most. */
		if (type != NAME_HOST || seen++)
			return MOAT_ERR_PARSE;
		if ((r = host_copy(name.p, name.left, sni, snilen)) != 0)
			return r;
	}
	return seen ? 0 : MOAT_ERR_PARSE;
}

/* Parses a complete ClientHello body (after the 4-byte handshake header). */
static int
parse_hello(const uint8_t *p, size_t n, char *sni, size_t snilen)
{
	struct rd r = { p, n }, exts, ext;
	unsigned v, len, type, seen_types = 0;
	/* Extension types seen, to refuse duplicates (RFC 8446 4.2). A small
	 * open list: a ClientHello has a few dozen extensions at most. */
	unsigned types[128];
	int e;

	sni[0] = '\0';
	if ((e = rd_u16(&r, &v)) != 0 || (v >> 8) != 3)	/* legacy_version */
		return MOAT_ERR_PARSE;
	if ((e = rd_skip(&r, 32)) != 0)			/* random */
		return e;
	if ((e = rd_u8(&r, &len)) != 0 || len > 32 || (e = rd_skip(&r, len)) != 0)
		return MOAT_ERR_PARSE;			/* legacy_session_id */
	if ((e = rd_u16(&r, &len)) != 0 || len < 2 || (len & 1) != 0 ||
	    (e = rd_skip(&r, len)) != 0)
		return MOAT_ERR_PARSE;			/* cipher_suites */
	if ((e = rd_u8(&r, &len)) != 0 || len < 1 || (e = rd_skip(&r, len)) != 0)
		return MOAT_ERR_PARSE;			/* compression_methods */
	if (r.left == 0)
		return 0;				/* no extensions */
	if ((e = rd_u16(&r, &len)) != 0 || len != r.left)
		return MOAT_ERR_PARSE;
	if ((e = rd_sub(&r, len, &exts)) != 0)
		return e;
	while (exts.left > 0) {
		if ((e = rd_u16(&exts, &type)) != 0 ||
		    (e = rd_u16(&exts, &len)) != 0 ||
		    (e = rd_sub(&exts, len, &ext)) != 0)
			return MOAT_ERR_PARSE;
		for (unsigned i = 0; i < seen_types; i++)
			if (types[i] == type)
				return MOAT_ERR_PARSE;
		if (seen_types == sizeof(types) / sizeof(types[0]))
			return MOAT_ERR_PARSE;
		types[seen_types++] = type;
		if (type == EXT_SERVER_NAME &&
		    (e = parse_server_name(&ext, sni, snilen)) != 0)
			return e;
	}
	return 0;
}

int
sni_parse(const uint8_t *data, size_t len, char *sni, size_t snilen)
{
	/* The handshake message, gathered from the fragments of one or more
	 * records (at most SNI_MAX_HELLO bytes of input, so at most that much
	 * message). */
	static const size_t cap = SNI_MAX_HELLO;
	uint8_t msg[SNI_MAX_HELLO];
	size_t off = 0, mlen = 0, need = 0;
	int have_len = 0;

	if (sni == NULL || snilen < SNI_NAME_MAX)
		return MOAT_ERR_INVAL;
	sni[0] = '\0';
	if (len == 0)
		return MOAT_ERR_AGAIN;
	if (data[0] != TLS_HANDSHAKE)
		return MOAT_ERR_NOTFOUND;
	if (len >= 2 && data[1] != 3)
		return MOAT_ERR_NOTFOUND;	/* not an SSL 3 / TLS record */
	for (;;) {
		size_t rlen;

		if (off + 5 > len)
			return off + 5 > cap ? MOAT_ERR_TOOBIG : MOAT_ERR_AGAIN;
		/* Every record of the hello is a handshake record of TLS. */
		if (data[off] != TLS_HANDSHAKE || data[off + 1] != 3 ||
		    data[off + 2] > 4)
			return MOAT_ERR_PARSE;
		rlen = ((size_t)data[off + 3] << 8) | data[off + 4];
		if (rlen == 0 || rlen > TLS_RECORD_MAX)
			return MOAT_ERR_PARSE;
		if (off + 5 + rlen > cap)
			return MOAT_ERR_TOOBIG;
		if (off + 5 + rlen > len)
			return MOAT_ERR_AGAIN;
		/* Appends this fragment (bounded by cap above). */
		memcpy(msg + mlen, data + off + 5, rlen);
		mlen += rlen;
		off += 5 + rlen;
		if (!have_len && mlen >= 4) {
			if (msg[0] != HS_CLIENT_HELLO)
				return MOAT_ERR_PARSE;
			need = ((size_t)msg[1] << 16) | ((size_t)msg[2] << 8) |
			    msg[3];
			if (need + 4 > cap)
				return MOAT_ERR_TOOBIG;
			have_len = 1;
		}
		if (have_len && mlen >= need + 4) {
			/* The hello must end with its record: anything
			 * after it in the same flight is not ours to guess. */
			if (mlen != need + 4)
				return MOAT_ERR_PARSE;
			return parse_hello(msg + 4, need, sni, snilen);
		}
	}
}
