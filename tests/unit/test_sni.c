/*
 * test_sni.c - unit tests for sni.c: ClientHellos made by real OpenSSL
 * clients (SSL_connect on a memory BIO, TLS 1.3 and 1.2, with and without
 * a server name), every truncation of them, a hello fragmented over
 * several records, and hand-built malformed hellos (duplicate extensions,
 * two host names, bad names, trailing bytes, wrong lengths), other
 * protocols and the size limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "sni.h"

/* The first flight of an OpenSSL client. */
static size_t
real_hello(const char *sni, int max_version, uint8_t *out, size_t outlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	BIO *rb, *wb;
	int n;

	assert_non_null(ctx);
	if (max_version != 0)
		assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	rb = BIO_new(BIO_s_mem());
	wb = BIO_new(BIO_s_mem());
	SSL_set_bio(ssl, rb, wb);
	if (sni != NULL)
		assert_int_equal(SSL_set_tlsext_host_name(ssl, sni), 1);
	SSL_set_connect_state(ssl);
	assert_true(SSL_do_handshake(ssl) <= 0);	/* wants the server */
	n = BIO_read(wb, out, (int)outlen);
	assert_true(n > 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	return (size_t)n;
}

static void
test_real_hellos(void **state)
{
	uint8_t h[8192];
	char sni[SNI_NAME_MAX];
	size_t n;

	(void)state;
	n = real_hello("Www.Example.COM", 0, h, sizeof(h));
	assert_int_equal(sni_parse(h, n, sni, sizeof(sni)), 0);
	assert_string_equal(sni, "www.example.com");

	n = real_hello("a.test", TLS1_2_VERSION, h, sizeof(h));
	assert_int_equal(sni_parse(h, n, sni, sizeof(sni)), 0);
	assert_string_equal(sni, "a.test");

	n = real_hello(NULL, 0, h, sizeof(h));
	assert_int_equal(sni_parse(h, n, sni, sizeof(sni)), 0);
	assert_string_equal(sni, "");

	/* Small output buffer: refused, not overflowed. */
	assert_int_equal(sni_parse(h, n, sni, 10), MOAT_ERR_INVAL);
}

static void
test_truncations_ask_for_more(void **state)
{
	uint8_t h[8192];
	char sni[SNI_NAME_MAX];
	size_t n = real_hello("trunc.example", 0, h, sizeof(h));

	(void)state;
	for (size_t i = 0; i < n; i++) {
		/* A copy of exactly i bytes, so ASan sees any overread. */
		uint8_t *p = malloc(i + 1);

		assert_non_null(p);
		memcpy(p, h, i);
		assert_int_equal(sni_parse(p, i, sni, sizeof(sni)), MOAT_ERR_AGAIN);
		free(p);
	}
	assert_int_equal(sni_parse(h, n, sni, sizeof(sni)), 0);
	assert_string_equal(sni, "trunc.example");
}

/* Splits the one record of h into records of at most frag bytes. */
static size_t
fragment(const uint8_t *h, size_t n, size_t frag, uint8_t *out)
{
	size_t body = ((size_t)h[3] << 8) | h[4], o = 0;

	assert_int_equal(body + 5, n);
	for (size_t off = 0; off < body; off += frag) {
		size_t k = body - off < frag ? body - off : frag;

		out[o++] = 22;
		out[o++] = 3;
		out[o++] = 1;
		out[o++] = (uint8_t)(k >> 8);
		out[o++] = (uint8_t)k;
		memcpy(out + o, h + 5 + off, k);
		o += k;
	}
	return o;
}

static void
test_fragmented_records(void **state)
{
	uint8_t h[8192], f[16384];
	char sni[SNI_NAME_MAX];
	size_t n = real_hello("frag.example", 0, h, sizeof(h)), m;

	(void)state;
	for (size_t frag = 1; frag < 300; frag += 37) {
		m = fragment(h, n, frag, f);
		assert_int_equal(sni_parse(f, m, sni, sizeof(sni)), 0);
		assert_string_equal(sni, "frag.example");
		assert_int_equal(sni_parse(f, m - 1, sni, sizeof(sni)), MOAT_ERR_AGAIN);
	}
	/* An application-data record in the middle is not a hello. */
	m = fragment(h, n, 100, f);
	f[105] = 23;
	assert_int_equal(sni_parse(f, m, sni, sizeof(sni)), MOAT_ERR_PARSE);
}

static void
test_other_protocols(void **state)
{
	char sni[SNI_NAME_MAX];
	static const char *const others[] = { "GET / HTTP/1.1\r\n",
	    "SSH-2.0-OpenSSH_9.2\r\n", "\x16\x02", "\x80\x2e\x01\x03\x01", NULL };

	(void)state;
	for (size_t i = 0; others[i] != NULL; i++)
		assert_int_equal(sni_parse((const uint8_t *)others[i],
		    strlen(others[i]), sni, sizeof(sni)), MOAT_ERR_NOTFOUND);
	assert_int_equal(sni_parse((const uint8_t *)"\x16", 1, sni, sizeof(sni)),
	    MOAT_ERR_AGAIN);
	assert_int_equal(sni_parse((const uint8_t *)"", 0, sni, sizeof(sni)),
	    MOAT_ERR_AGAIN);
}

/* --- hand-built hellos --- */

struct hb {
	uint8_t b[20000];
	size_t n;
};

static void
put(struct hb *h, const void *p, size_t n)
{
	assert_true(h->n + n <= sizeof(h->b));
	memcpy(h->b + h->n, p, n);
	h->n += n;
}

static void
put16(struct hb *h, size_t v)
{
	uint8_t x[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	put(h, x, 2);
}

/* An SNI extension carrying the given entries (type, name) pairs. */
static void
ext_sni(struct hb *e, int n, const uint8_t *types, const char *const *names)
{
	size_t list = 0;

	for (int i = 0; i < n; i++)
		list += 3 + strlen(names[i]);
	put16(e, 0);
	put16(e, list + 2);
	put16(e, list);
	for (int i = 0; i < n; i++) {
		put(e, &types[i], 1);
		put16(e, strlen(names[i]));
		put(e, names[i], strlen(names[i]));
	}
}

/* A record with a ClientHello whose extensions block is exts (NULL: no
 * extensions block at all); trailer: bytes after the hello in the record. */
static void
hello(struct hb *out, const struct hb *exts, size_t trailer)
{
	struct hb body = { .n = 0 };
	uint8_t z[32] = { 0 };
	size_t hs;

	put16(&body, 0x0303);
	put(&body, z, 32);
	put(&body, "\x00", 1);			/* session id */
	put16(&body, 2);
	put(&body, "\x13\x01", 2);		/* cipher suites */
	put(&body, "\x01\x00", 2);		/* compression */
	if (exts != NULL) {
		put16(&body, exts->n);
		put(&body, exts->b, exts->n);
	}
	hs = body.n + 4 + trailer;
	out->n = 0;
	put(out, "\x16\x03\x01", 3);
	put16(out, hs);
	put(out, "\x01", 1);
	put(out, (uint8_t[]){ 0, (uint8_t)(body.n >> 8), (uint8_t)body.n }, 3);
	put(out, body.b, body.n);
	for (size_t i = 0; i < trailer; i++)
		put(out, "\x00", 1);
}

static int
parse_hb(const struct hb *h, char *sni)
{
	return sni_parse(h->b, h->n, sni, SNI_NAME_MAX);
}

static void
test_built_hellos(void **state)
{
	struct hb e, h;
	char sni[SNI_NAME_MAX];
	uint8_t t0[2] = { 0, 0 }, t1[1] = { 1 };
	const char *one[] = { "ok.example" }, *two[] = { "a.example", "b.example" };
	char longname[300];

	(void)state;
	e.n = 0;
	ext_sni(&e, 1, t0, one);
	hello(&h, &e, 0);
	assert_int_equal(parse_hb(&h, sni), 0);
	assert_string_equal(sni, "ok.example");

	/* No extensions block: no SNI. */
	hello(&h, NULL, 0);
	assert_int_equal(parse_hb(&h, sni), 0);
	assert_string_equal(sni, "");

	/* Trailing bytes after the hello in its record. */
	hello(&h, &e, 1);
	assert_int_equal(parse_hb(&h, sni), MOAT_ERR_PARSE);

	/* Two server_name extensions (different parsers would pick
	 * different ones). */
	e.n = 0;
	ext_sni(&e, 1, t0, one);
	ext_sni(&e, 1, t0, two);
	hello(&h, &e, 0);
	assert_int_equal(parse_hb(&h, sni), MOAT_ERR_PARSE);

	/* Two host names in one list. */
	e.n = 0;
	ext_sni(&e, 2, t0, two);
	hello(&h, &e, 0);
	assert_int_equal(parse_hb(&h, sni), MOAT_ERR_PARSE);

	/* A name type other than host_name. */
	e.n = 0;
	ext_sni(&e, 1, t1, one);
	hello(&h, &e, 0);
	assert_int_equal(parse_hb(&h, sni), MOAT_ERR_PARSE);

	/* Bad names. */
	{
		const char *bad[] = { "trailing.dot.", "nul\x01.example",
		    "sp ace.example", "a..b", ".lead", "pct%2e.example", "" };

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			const char *nm[1] = { bad[i] };

			e.n = 0;
			ext_sni(&e, 1, t0, nm);
			hello(&h, &e, 0);
			assert_int_equal(parse_hb(&h, sni), MOAT_ERR_PARSE);
		}
	}
	memset(longname, 'a', 64);
	longname[64] = '\0';
	{
		const char *nm[1] = { longname };

		e.n = 0;
		ext_sni(&e, 1, t0, nm);
		hello(&h, &e, 0);
		assert_int_equal(parse_hb(&h, sni), MOAT_ERR_PARSE);	/* label > 63 */
	}

	/* Duplicate non-SNI extension. */
	e.n = 0;
	put(&e, "\x00\x0b\x00\x02\x01\x00", 6);
	put(&e, "\x00\x0b\x00\x02\x01\x00", 6);
	ext_sni(&e, 1, t0, one);
	hello(&h, &e, 0);
	assert_int_equal(parse_hb(&h, sni), MOAT_ERR_PARSE);

	/* Extension length running past the block. */
	e.n = 0;
	ext_sni(&e, 1, t0, one);
	e.b[3] += 1;
	hello(&h, &e, 0);
	assert_int_equal(parse_hb(&h, sni), MOAT_ERR_PARSE);

	/* Not a ClientHello (ServerHello type). */
	e.n = 0;
	ext_sni(&e, 1, t0, one);
	hello(&h, &e, 0);
	h.b[5] = 2;
	assert_int_equal(parse_hb(&h, sni), MOAT_ERR_PARSE);

	/* Record length 0, and over 2^14. */
	hello(&h, &e, 0);
	h.b[3] = 0;
	h.b[4] = 0;
	assert_int_equal(parse_hb(&h, sni), MOAT_ERR_PARSE);
	h.b[3] = 0x40;
	h.b[4] = 0x01;
	assert_int_equal(parse_hb(&h, sni), MOAT_ERR_PARSE);
}

static void
test_size_limit(void **state)
{
	struct hb e, h;
	char sni[SNI_NAME_MAX];
	uint8_t pad[17000];

	(void)state;
	memset(pad, 0, sizeof(pad));
	/* A padding extension making the hello larger than the limit: the
	 * handshake header says so at once. */
	e.n = 0;
	put16(&e, 21);
	put16(&e, 16800);
	put(&e, pad, 16800);
	hello(&h, &e, 0);
	/* One record cannot hold it: split by hand into two. */
	{
		struct hb f = { .n = 0 };
		size_t body = h.n - 5;

		put(&f, "\x16\x03\x01\x40\x00", 5);
		put(&f, h.b + 5, 16384);
		put(&f, "\x16\x03\x01", 3);
		put16(&f, body - 16384);
		put(&f, h.b + 5 + 16384, body - 16384);
		assert_int_equal(parse_hb(&f, sni), MOAT_ERR_TOOBIG);
		/* Even the first 10 bytes are enough to know. */
		assert_int_equal(sni_parse(f.b, 10, sni, sizeof(sni)), MOAT_ERR_TOOBIG);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_real_hellos),
		cmocka_unit_test(test_truncations_ask_for_more),
		cmocka_unit_test(test_fragmented_records),
		cmocka_unit_test(test_other_protocols),
		cmocka_unit_test(test_built_hellos),
		cmocka_unit_test(test_size_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
