/*
 * test_tls.c - unit tests for tls.c: real handshakes between a moat server
 * context and OpenSSL clients over socketpairs, with certificates generated
 * at start-up into a mkdtemp directory (testcerts.h).
 *
 * Covers: server policy (TLS 1.3 and 1.2 with ECDHE AEAD only, TLS 1.1 and
 * non-AEAD suites refused), client host and IP checks, mTLS with peer names
 * (right name, wrong name of the same CA, foreign CA, no certificate, CN
 * fallback), session resumption under mTLS, and reload (rename over,
 * Kubernetes "..data" symlink swap, bad files keep the old context, SSLs
 * handed out survive a reload and the server's free).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>

#include "testcerts.h"
#include "tls.h"

static char tdir[256];

/* snprintf that fails the test on truncation. */
static void __attribute__((format(printf, 3, 4)))
fmtp(char *out, size_t n, const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(out, n, fmt, ap);
	va_end(ap);
	assert_true(k >= 0 && (size_t)k < n);
}

static void
path(char *out, size_t n, const char *name)
{
	fmtp(out, n, "%s/%s", tdir, name);
}

/* Handshake outcome of one side: 0 pending, 1 done, -1 failed. */
struct hs {
	int srv, cli;
	unsigned long srv_err, cli_err;
	bool cli_read_failed;	/* client saw the server's refusal */
	bool exchanged;		/* ping/pong went through */
	long serial;		/* server certificate serial seen by client */
	int fds[2];
};

static void
hs_step(SSL *ssl, int *state, unsigned long *err)
{
	int rc, e;

	ERR_clear_error();
	rc = SSL_do_handshake(ssl);
	if (rc == 1) {
		*state = 1;
		return;
	}
	e = SSL_get_error(ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return;
	*state = -1;
	*err = ERR_peek_error();
	ERR_clear_error();
}

static void
hs_wait(struct hs *h)
{
	struct pollfd p[2] = { { h->fds[0], POLLIN, 0 },
			       { h->fds[1], POLLIN, 0 } };

	(void)poll(p, 2, 5);
}

/* Moves n bytes from one SSL to another; true when done. */
static bool
hs_xfer(struct hs *h, SSL *from, SSL *to, const char *msg)
{
	char got[16];
	size_t n = strlen(msg);
	bool sent = false;

	for (int i = 0; i < 200; i++) {
		if (!sent) {
			int rc = SSL_write(from, msg, (int)n);
			if (rc == (int)n)
				sent = true;
			else if (SSL_get_error(from, rc) != SSL_ERROR_WANT_READ &&
			    SSL_get_error(from, rc) != SSL_ERROR_WANT_WRITE)
				return false;
		}
		int rc = SSL_read(to, got, sizeof(got));
		if (rc > 0)
			return (size_t)rc == n && memcmp(got, msg, n) == 0;
		int e = SSL_get_error(to, rc);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			return false;
		hs_wait(h);
	}
	return false;
}

/* Runs a full handshake of srv (accepting) against cli (connecting) over a
 * nonblocking socketpair in this thread, then a ping/pong. Frees neither. */
static void
handshake(SSL *srv, SSL *cli, struct hs *h)
{
	memset(h, 0, sizeof(*h));
	h->serial = -1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, h->fds), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(fcntl(h->fds[i], F_SETFL, O_NONBLOCK), 0);
	SSL_set_fd(srv, h->fds[0]);
	SSL_set_fd(cli, h->fds[1]);
	SSL_set_accept_state(srv);
	SSL_set_connect_state(cli);
	for (int i = 0; i < 400 && (h->srv == 0 || h->cli == 0); i++) {
		if (h->cli == 0)
			hs_step(cli, &h->cli, &h->cli_err);
		if (h->srv == 0)
			hs_step(srv, &h->srv, &h->srv_err);
		if (h->srv == 0 || h->cli == 0)
			hs_wait(h);
	}
	if (h->cli == 1) {
		X509 *c = SSL_get0_peer_certificate(cli);
		if (c != NULL)
			h->serial = ASN1_INTEGER_get(
			    X509_get0_serialNumber(c));
	}
	if (h->cli == 1 && h->srv == 1) {
		h->exchanged = hs_xfer(h, cli, srv, "ping") &&
		    hs_xfer(h, srv, cli, "pong");
	} else if (h->cli == 1 && h->srv == -1) {
		/* TLS 1.3: the client finished before the server refused its
		 * certificate; it learns on its next read. */
		char b[8];
		for (int i = 0; i < 100; i++) {
			int rc = SSL_read(cli, b, sizeof(b));
			int e = SSL_get_error(cli, rc);
			if (rc <= 0 && e != SSL_ERROR_WANT_READ) {
				h->cli_read_failed = true;
				break;
			}
			hs_wait(h);
		}
	}
	ERR_clear_error();
}

static void
hs_close(struct hs *h)
{
	close(h->fds[0]);
	close(h->fds[1]);
}

static SSL_CTX *
client_ctx(const char *cert_base)
{
	char ca[512], crt[512], key[512];
	SSL_CTX *ctx;

	path(ca, sizeof(ca), "ca.crt");
	if (cert_base != NULL) {
		fmtp(crt, sizeof(crt), "%s/%s.crt", tdir, cert_base);
		fmtp(key, sizeof(key), "%s/%s.key", tdir, cert_base);
	}
	ctx = tls_client_ctx_new(ca, cert_base ? crt : NULL,
	    cert_base ? key : NULL);
	assert_non_null(ctx);
	return ctx;
}

/* Server with server.crt/.key, optional client CA and names. */
static struct tls_server *
server(const char *client_ca, const char *const *names)
{
	char crt[512], key[512], ca[512];
	struct tls_server *srv = NULL;
	struct tls_server_opts o = { 0 };

	path(crt, sizeof(crt), "server.crt");
	path(key, sizeof(key), "server.key");
	o.cert_file = crt;
	o.key_file = key;
	if (client_ca != NULL) {
		path(ca, sizeof(ca), client_ca);
		o.client_ca_file = ca;
	}
	o.peer_names = names;
	assert_int_equal(tls_server_new(&srv, &o), 0);
	return srv;
}

/* One handshake with a fresh client SSL from cctx expecting name. */
static void
connect_once(struct tls_server *srv, SSL_CTX *cctx, const char *name,
    struct hs *h, SSL **srv_ssl_out)
{
	SSL *s = tls_server_new_ssl(srv);
	SSL *c = SSL_new(cctx);

	assert_non_null(s);
	assert_non_null(c);
	if (name != NULL)
		assert_int_equal(tls_client_set_expected_name(c, name), 0);
	handshake(s, c, h);
	SSL_free(c);
	if (srv_ssl_out != NULL)
		*srv_ssl_out = s;
	else
		SSL_free(s);
	hs_close(h);
}

static int
setup(void **state)
{
	struct testcert ca, fca, c;

	snprintf(tdir, sizeof(tdir), "/tmp/moat-test-tls-XXXXXX");
	if (mkdtemp(tdir) == NULL)
		return -1;
	testcert_ca(&ca, "moat test CA");
	testcert_write(&ca, tdir, "ca");
	testcert_ca(&fca, "foreign CA");
	testcert_write(&fca, tdir, "foreign-ca");

	testcert_leaf(&c, &ca, "localhost", "DNS:localhost,IP:127.0.0.1",
	    TESTCERT_SERVER, 2);
	testcert_write(&c, tdir, "server");
	testcert_free(&c);
	testcert_leaf(&c, &ca, "localhost", "DNS:localhost,IP:127.0.0.1",
	    TESTCERT_SERVER, 20);
	testcert_write(&c, tdir, "server20");
	testcert_free(&c);
	testcert_leaf(&c, &ca, "localhost", "DNS:localhost,IP:127.0.0.1",
	    TESTCERT_SERVER, 30);
	testcert_write(&c, tdir, "server30");
	testcert_free(&c);
	testcert_leaf(&c, &ca, "ingress", "DNS:ingress", TESTCERT_CLIENT, 3);
	testcert_write(&c, tdir, "ingress");
	testcert_free(&c);
	testcert_leaf(&c, &ca, "other", "DNS:other", TESTCERT_CLIENT, 4);
	testcert_write(&c, tdir, "other");
	testcert_free(&c);
	/* CN says ingress but the SAN does not: the SAN wins. */
	testcert_leaf(&c, &ca, "ingress", "DNS:other2", TESTCERT_CLIENT, 7);
	testcert_write(&c, tdir, "cn-ingress-san-other");
	testcert_free(&c);
	testcert_leaf(&c, &ca, "cnonly", NULL, TESTCERT_CLIENT, 6);
	testcert_write(&c, tdir, "cnonly");
	testcert_free(&c);
	testcert_leaf(&c, &fca, "ingress", "DNS:ingress", TESTCERT_CLIENT, 5);
	testcert_write(&c, tdir, "foreign-ingress");
	testcert_free(&c);
	testcert_free(&ca);
	testcert_free(&fca);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[512];

	/* tdir is our own mkdtemp result under /tmp. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tdir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
test_server_ok(void **state)
{
	struct tls_server *srv = server(NULL, NULL);
	SSL_CTX *cctx = client_ctx(NULL);
	struct hs h;

	assert_false(tls_server_requires_client_cert(srv));
	connect_once(srv, cctx, "localhost", &h, NULL);
	assert_int_equal(h.cli, 1);
	assert_int_equal(h.srv, 1);
	assert_true(h.exchanged);
	assert_int_equal(h.serial, 2);

	connect_once(srv, cctx, "127.0.0.1", &h, NULL);
	assert_int_equal(h.cli, 1);
	assert_int_equal(h.srv, 1);

	/* Wrong name or wrong address: the client refuses. */
	connect_once(srv, cctx, "example.com", &h, NULL);
	assert_int_equal(h.cli, -1);
	connect_once(srv, cctx, "127.0.0.2", &h, NULL);
	assert_int_equal(h.cli, -1);
	connect_once(srv, cctx, "LOCALHOST", &h, NULL);
	assert_int_equal(h.cli, 1);

	SSL_CTX_free(cctx);
	tls_server_free(srv);
}

static void
test_client_untrusted_server(void **state)
{
	struct tls_server *srv = server(NULL, NULL);
	char ca[512];
	SSL_CTX *cctx;
	struct hs h;

	path(ca, sizeof(ca), "foreign-ca.crt");
	assert_non_null(cctx = tls_client_ctx_new(ca, NULL, NULL));
	connect_once(srv, cctx, "localhost", &h, NULL);
	assert_int_equal(h.cli, -1);
	SSL_CTX_free(cctx);
	tls_server_free(srv);
}

/* A deliberately weak client context, to see what the server refuses. */
static SSL_CTX *
weak_client(int minv, int maxv, const char *ciphers)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	assert_non_null(ctx);
	SSL_CTX_set_security_level(ctx, 0);
	assert_true(SSL_CTX_set_min_proto_version(ctx, minv));
	assert_true(SSL_CTX_set_max_proto_version(ctx, maxv));
	assert_true(SSL_CTX_set_cipher_list(ctx, ciphers));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

static void
test_protocol_policy(void **state)
{
	struct tls_server *srv = server(NULL, NULL);
	SSL_CTX *cctx;
	SSL *s, *c;
	struct hs h;

	/* TLS 1.1 offered alone: the server refuses the ClientHello. */
	cctx = weak_client(TLS1_VERSION, TLS1_1_VERSION, "ALL:@SECLEVEL=0");
	connect_once(srv, cctx, NULL, &h, NULL);
	assert_int_equal(h.srv, -1);
	assert_int_equal(ERR_GET_REASON(h.srv_err), SSL_R_UNSUPPORTED_PROTOCOL);
	SSL_CTX_free(cctx);

	/* TLS 1.2 with a CBC suite only: refused. */
	cctx = weak_client(TLS1_2_VERSION, TLS1_2_VERSION,
	    "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384");
	connect_once(srv, cctx, NULL, &h, NULL);
	assert_int_equal(h.srv, -1);
	SSL_CTX_free(cctx);

	/* TLS 1.2 with everything offered: an ECDHE AEAD suite is chosen. */
	cctx = weak_client(TLS1_2_VERSION, TLS1_2_VERSION, "ALL:@SECLEVEL=0");
	s = tls_server_new_ssl(srv);
	c = SSL_new(cctx);
	handshake(s, c, &h);
	assert_int_equal(h.srv, 1);
	assert_int_equal(SSL_version(s), TLS1_2_VERSION);
	const char *name = SSL_CIPHER_get_name(SSL_get_current_cipher(s));
	assert_non_null(strstr(name, "ECDHE"));
	assert_true(strstr(name, "GCM") || strstr(name, "CHACHA20"));
	assert_null(SSL_get_current_compression(s));
	/* Renegotiation is off on the server. */
	assert_int_equal(SSL_renegotiate(s), 0);
	ERR_clear_error();
	SSL_free(s);
	SSL_free(c);
	hs_close(&h);
	SSL_CTX_free(cctx);

	/* Default client: TLS 1.3. */
	cctx = client_ctx(NULL);
	s = tls_server_new_ssl(srv);
	c = SSL_new(cctx);
	assert_int_equal(tls_client_set_expected_name(c, "localhost"), 0);
	handshake(s, c, &h);
	assert_int_equal(h.srv, 1);
	assert_int_equal(SSL_version(s), TLS1_3_VERSION);
	SSL_free(s);
	SSL_free(c);
	hs_close(&h);
	SSL_CTX_free(cctx);
	tls_server_free(srv);
}

static const char *const ingress_only[] = { "ingress", NULL };

/* Handshake with an mTLS server; returns the server-side outcome. */
static void
mtls_case(const char *const *names, const char *client, struct hs *h,
    char *peer, size_t peerlen, bool *matches_ingress, bool *matches_other)
{
	static const char *const other_only[] = { "other", NULL };
	struct tls_server *srv = server("ca.crt", names);
	SSL_CTX *cctx = client_ctx(client);
	SSL *s = NULL;

	assert_true(tls_server_requires_client_cert(srv));
	connect_once(srv, cctx, "localhost", h, &s);
	if (peer != NULL) {
		int r = tls_peer_name(s, peer, peerlen);
		if (r != 0)
			peer[0] = '\0';
	}
	if (matches_ingress != NULL)
		*matches_ingress = tls_peer_name_matches(s, ingress_only);
	if (matches_other != NULL)
		*matches_other = tls_peer_name_matches(s, other_only);
	SSL_free(s);
	SSL_CTX_free(cctx);
	tls_server_free(srv);
}

static void
test_mtls_names(void **state)
{
	struct hs h;
	char peer[64];
	bool mi, mo;

	/* The expected name passes. */
	mtls_case(ingress_only, "ingress", &h, peer, sizeof(peer), &mi, &mo);
	assert_int_equal(h.srv, 1);
	assert_int_equal(h.cli, 1);
	assert_true(h.exchanged);
	assert_string_equal(peer, "ingress");
	assert_true(mi);
	assert_false(mo);

	/* Same CA, another name: the handshake fails. */
	mtls_case(ingress_only, "other", &h, peer, sizeof(peer), &mi, NULL);
	assert_int_equal(h.srv, -1);
	assert_true(h.cli == -1 || h.cli_read_failed);
	assert_string_equal(peer, "");
	assert_false(mi);

	/* CN says ingress, SAN says other2: SAN wins, refused. */
	mtls_case(ingress_only, "cn-ingress-san-other", &h, NULL, 0, NULL,
	    NULL);
	assert_int_equal(h.srv, -1);

	/* Right name, foreign CA: refused. */
	mtls_case(ingress_only, "foreign-ingress", &h, NULL, 0, NULL, NULL);
	assert_int_equal(h.srv, -1);
	assert_true(h.cli == -1 || h.cli_read_failed);

	/* No certificate at all: refused. */
	mtls_case(ingress_only, NULL, &h, NULL, 0, NULL, NULL);
	assert_int_equal(h.srv, -1);
	assert_true(h.cli == -1 || h.cli_read_failed);

	/* No names: any certificate of the CA, names still readable. */
	mtls_case(NULL, "other", &h, peer, sizeof(peer), &mi, &mo);
	assert_int_equal(h.srv, 1);
	assert_string_equal(peer, "other");
	assert_false(mi);
	assert_true(mo);
	mtls_case(NULL, "foreign-ingress", &h, NULL, 0, NULL, NULL);
	assert_int_equal(h.srv, -1);

	/* No SAN: the CN is the name. */
	static const char *const cnonly[] = { "x", "cnonly", NULL };
	mtls_case(cnonly, "cnonly", &h, peer, sizeof(peer), NULL, NULL);
	assert_int_equal(h.srv, 1);
	assert_string_equal(peer, "cnonly");
}

static void
test_peer_name_edge(void **state)
{
	struct tls_server *srv = server("ca.crt", NULL);
	SSL_CTX *cctx = client_ctx("ingress");
	SSL *s = NULL;
	struct hs h;
	char small[4];

	connect_once(srv, cctx, "localhost", &h, &s);
	assert_int_equal(h.srv, 1);
	assert_int_equal(tls_peer_name(s, small, sizeof(small)),
	    MOAT_ERR_TOOBIG);
	assert_false(tls_peer_name_matches(s, NULL));
	assert_false(tls_peer_name_matches(NULL, ingress_only));
	SSL_free(s);

	/* Without client certificates there is no peer name. */
	tls_server_free(srv);
	srv = server(NULL, NULL);
	connect_once(srv, cctx, "localhost", &h, &s);
	assert_int_equal(h.srv, 1);
	char name[64];
	assert_int_equal(tls_peer_name(s, name, sizeof(name)),
	    MOAT_ERR_NOTFOUND);
	assert_false(tls_peer_name_matches(s, ingress_only));
	SSL_free(s);
	SSL_CTX_free(cctx);
	tls_server_free(srv);
}

static void
test_resumption_mtls(void **state)
{
	struct tls_server *srv = server("ca.crt", ingress_only);
	SSL_CTX *cctx = client_ctx("ingress");
	SSL_SESSION *sess;
	SSL *s, *c;
	struct hs h;

	s = tls_server_new_ssl(srv);
	c = SSL_new(cctx);
	assert_int_equal(tls_client_set_expected_name(c, "localhost"), 0);
	handshake(s, c, &h);
	assert_true(h.exchanged);
	assert_non_null(sess = SSL_get1_session(c));
	assert_true(SSL_SESSION_is_resumable(sess));
	/* A session freed without a clean shutdown is marked unusable. */
	(void)SSL_shutdown(c);
	SSL_free(s);
	SSL_free(c);
	hs_close(&h);

	s = tls_server_new_ssl(srv);
	c = SSL_new(cctx);
	assert_int_equal(tls_client_set_expected_name(c, "localhost"), 0);
	assert_int_equal(SSL_set_session(c, sess), 1);
	handshake(s, c, &h);
	assert_true(h.exchanged);
	assert_true(SSL_session_reused(s));
	/* The resumed session still carries the verified name. */
	assert_true(tls_peer_name_matches(s, ingress_only));
	SSL_free(s);
	SSL_free(c);
	hs_close(&h);
	SSL_SESSION_free(sess);
	SSL_CTX_free(cctx);
	tls_server_free(srv);
}

static void
copy_file(const char *from, const char *to)
{
	char buf[8192];
	FILE *in = fopen(from, "r"), *out = fopen(to, "w");
	size_t n;

	assert_non_null(in);
	assert_non_null(out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		assert_int_equal(fwrite(buf, 1, n, out), n);
	fclose(in);
	assert_int_equal(fclose(out), 0);
}

/* Installs base.crt/.key under d as cert.pem/key.pem by rename. */
static void
install_rename(const char *d, const char *base)
{
	char from[512], tmp[512], to[512];

	fmtp(from, sizeof(from), "%s/%s.crt", tdir, base);
	fmtp(tmp, sizeof(tmp), "%s/.cert.tmp", d);
	fmtp(to, sizeof(to), "%s/cert.pem", d);
	copy_file(from, tmp);
	assert_int_equal(rename(tmp, to), 0);
	fmtp(from, sizeof(from), "%s/%s.key", tdir, base);
	fmtp(tmp, sizeof(tmp), "%s/.key.tmp", d);
	fmtp(to, sizeof(to), "%s/key.pem", d);
	copy_file(from, tmp);
	assert_int_equal(rename(tmp, to), 0);
}

static struct tls_server *
server_at(const char *d)
{
	char crt[512], key[512];
	struct tls_server *srv = NULL;
	struct tls_server_opts o = { 0 };

	fmtp(crt, sizeof(crt), "%s/cert.pem", d);
	fmtp(key, sizeof(key), "%s/key.pem", d);
	o.cert_file = crt;
	o.key_file = key;
	assert_int_equal(tls_server_new(&srv, &o), 0);
	return srv;
}

static long
serial_seen(struct tls_server *srv, SSL_CTX *cctx)
{
	struct hs h;

	connect_once(srv, cctx, "localhost", &h, NULL);
	return h.srv == 1 && h.cli == 1 ? h.serial : -1;
}

static void
test_reload_rename(void **state)
{
	char d[512], p[512];
	struct tls_server *srv;
	SSL_CTX *cctx = client_ctx(NULL);
	SSL *old_ssl, *c;
	struct hs h;
	FILE *f;

	path(d, sizeof(d), "rename");
	assert_int_equal(mkdir(d, 0700), 0);
	install_rename(d, "server");
	srv = server_at(d);
	assert_int_equal(serial_seen(srv, cctx), 2);
	assert_int_equal(tls_server_reload_if_changed(srv), 0);

	/* An SSL handed out before the reload keeps the old context. */
	assert_non_null(old_ssl = tls_server_new_ssl(srv));

	install_rename(d, "server20");
	assert_int_equal(tls_server_reload_if_changed(srv), 1);
	assert_int_equal(serial_seen(srv, cctx), 20);
	assert_int_equal(tls_server_reload_if_changed(srv), 0);

	/* Garbage certificate: refused, the old context still serves. */
	char from[512], to[512];
	fmtp(p, sizeof(p), "%s/.cert.tmp", d);
	fmtp(to, sizeof(to), "%s/cert.pem", d);
	assert_non_null(f = fopen(p, "w"));
	fputs("-----BEGIN CERTIFICATE-----\nnot base64\n", f);
	fclose(f);
	assert_int_equal(rename(p, to), 0);
	assert_true(tls_server_reload_if_changed(srv) < 0);
	assert_int_equal(serial_seen(srv, cctx), 20);
	/* The same bad files are reported once, not on every poll. */
	assert_int_equal(tls_server_reload_if_changed(srv), 0);
	assert_int_equal(serial_seen(srv, cctx), 20);

	/* A certificate that does not match the key: refused too. */
	fmtp(from, sizeof(from), "%s/server30.crt", tdir);
	copy_file(from, p);
	assert_int_equal(rename(p, to), 0);
	assert_true(tls_server_reload_if_changed(srv) < 0);
	assert_int_equal(serial_seen(srv, cctx), 20);

	/* A deleted file: error, still serving. */
	assert_int_equal(unlink(to), 0);
	assert_true(tls_server_reload_if_changed(srv) < 0);
	assert_int_equal(serial_seen(srv, cctx), 20);

	/* Fixed files: picked up. */
	install_rename(d, "server30");
	assert_int_equal(tls_server_reload_if_changed(srv), 1);
	assert_int_equal(serial_seen(srv, cctx), 30);

	tls_server_free(srv);
	/* The old SSL still works after reloads and the server's free. */
	c = SSL_new(cctx);
	assert_int_equal(tls_client_set_expected_name(c, "localhost"), 0);
	handshake(old_ssl, c, &h);
	assert_true(h.exchanged);
	assert_int_equal(h.serial, 2);
	SSL_free(old_ssl);
	SSL_free(c);
	hs_close(&h);
	SSL_CTX_free(cctx);
}

/* Lays out dir/..<gen>/cert.pem,key.pem from base. */
static void
make_generation(const char *d, const char *gen, const char *base)
{
	char g[512], from[512], to[512];

	fmtp(g, sizeof(g), "%s/%s", d, gen);
	assert_int_equal(mkdir(g, 0700), 0);
	fmtp(from, sizeof(from), "%s/%s.crt", tdir, base);
	fmtp(to, sizeof(to), "%s/cert.pem", g);
	copy_file(from, to);
	fmtp(from, sizeof(from), "%s/%s.key", tdir, base);
	fmtp(to, sizeof(to), "%s/key.pem", g);
	copy_file(from, to);
}

static void
test_reload_symlink_swap(void **state)
{
	char d[512], l[512], t[512];
	struct tls_server *srv;
	SSL_CTX *cctx = client_ctx(NULL);

	/* The layout of a Kubernetes Secret volume:
	 *   cert.pem -> ..data/cert.pem, ..data -> ..gen1 */
	path(d, sizeof(d), "k8s");
	assert_int_equal(mkdir(d, 0700), 0);
	make_generation(d, "..gen1", "server");
	fmtp(l, sizeof(l), "%s/..data", d);
	assert_int_equal(symlink("..gen1", l), 0);
	fmtp(l, sizeof(l), "%s/cert.pem", d);
	assert_int_equal(symlink("..data/cert.pem", l), 0);
	fmtp(l, sizeof(l), "%s/key.pem", d);
	assert_int_equal(symlink("..data/key.pem", l), 0);

	srv = server_at(d);
	assert_int_equal(serial_seen(srv, cctx), 2);
	assert_int_equal(tls_server_reload_if_changed(srv), 0);

	/* Atomic swap: new generation, new link, rename over ..data. */
	make_generation(d, "..gen2", "server20");
	fmtp(t, sizeof(t), "%s/..data_tmp", d);
	assert_int_equal(symlink("..gen2", t), 0);
	fmtp(l, sizeof(l), "%s/..data", d);
	assert_int_equal(rename(t, l), 0);

	assert_int_equal(tls_server_reload_if_changed(srv), 1);
	assert_int_equal(serial_seen(srv, cctx), 20);
	assert_int_equal(tls_server_reload_if_changed(srv), 0);
	tls_server_free(srv);
	SSL_CTX_free(cctx);
}

static void
test_new_errors(void **state)
{
	char crt[512], key[512], okey[512], ca[512], missing[512];
	struct tls_server *srv = (struct tls_server *)&srv;	/* sentinel */
	struct tls_server *sentinel = srv;
	struct tls_server_opts o = { 0 };
	static const char *const empty[] = { NULL };
	static const char *const dot[] = { ".example", NULL };

	path(crt, sizeof(crt), "server.crt");
	path(key, sizeof(key), "server.key");
	path(okey, sizeof(okey), "other.key");
	path(ca, sizeof(ca), "ca.crt");
	path(missing, sizeof(missing), "missing.crt");

	assert_int_equal(tls_server_new(&srv, &o), MOAT_ERR_INVAL);
	o.cert_file = missing;
	o.key_file = key;
	assert_true(tls_server_new(&srv, &o) < 0);
	o.cert_file = crt;
	o.key_file = okey;
	assert_true(tls_server_new(&srv, &o) < 0);
	o.key_file = key;
	o.peer_names = ingress_only;
	assert_int_equal(tls_server_new(&srv, &o), MOAT_ERR_INVAL);
	o.client_ca_file = ca;
	o.peer_names = empty;
	assert_int_equal(tls_server_new(&srv, &o), MOAT_ERR_INVAL);
	o.peer_names = dot;
	assert_int_equal(tls_server_new(&srv, &o), MOAT_ERR_INVAL);
	o.client_ca_file = key;	/* not a CA file */
	o.peer_names = NULL;
	assert_true(tls_server_new(&srv, &o) < 0);
	assert_ptr_equal(srv, sentinel);	/* untouched on error */

	assert_null(tls_client_ctx_new(missing, NULL, NULL));
	assert_null(tls_client_ctx_new(ca, crt, NULL));
	assert_null(tls_client_ctx_new(ca, crt, okey));
	tls_server_free(NULL);
	assert_false(tls_server_requires_client_cert(NULL));
	ERR_clear_error();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_server_ok),
		cmocka_unit_test(test_client_untrusted_server),
		cmocka_unit_test(test_protocol_policy),
		cmocka_unit_test(test_mtls_names),
		cmocka_unit_test(test_peer_name_edge),
		cmocka_unit_test(test_resumption_mtls),
		cmocka_unit_test(test_reload_rename),
		cmocka_unit_test(test_reload_symlink_swap),
		cmocka_unit_test(test_new_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
