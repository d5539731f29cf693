/*
 * tls.c - builds every OpenSSL SSL_CTX of moat (see tls.h).
 *
 * One policy for all contexts: TLS 1.2 minimum, ECDHE key exchange with
 * AES-GCM or ChaCha20-Poly1305 on TLS 1.2, elliptic-curve groups only, no
 * compression, no renegotiation. Server contexts remember the identity of
 * the files they were built from (following symlinks, so that a Kubernetes
 * "..data" swap is seen) and are rebuilt and swapped under a mutex when the
 * files change; SSLs already handed out keep a reference to their context.
 *
 * Peer names: when a server has peer_names, they are installed as the
 * expected hosts of the context's X509_VERIFY_PARAM, so that certificate
 * verification itself (and therefore the handshake) fails for a client
 * certificate of the right CA but the wrong name. OpenSSL's host check looks
 * at subjectAltName DNS entries and falls back to the common name only when
 * there are none, which is the rule tls.h promises. Wildcards in peer
 * certificates are not honoured for peer names.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"

/* TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 suites are all
 * AEAD with (EC)DHE already (psk_ke without DHE is off by default). */
#define TLS_CIPHERS_12 "ECDHE+AESGCM:ECDHE+CHACHA20"
#define TLS_GROUPS "X25519:P-256:P-384"
#define TLS_SID_CTX "moat-tls"

/* How peer names are compared with certificate names. */
#define TLS_HOSTFLAGS (X509_CHECK_FLAG_NO_WILDCARDS)

enum { TLS_F_CERT = 0, TLS_F_KEY, TLS_F_CA, TLS_F_N };

/* What tells us a file changed: stat() of the symlink target. */
struct tls_file_id {
	bool present;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim;
	struct timespec ctim;
};

struct tls_server {
	pthread_mutex_t ctx_mu;		/* guards ctx */
	SSL_CTX *ctx;			/* owned reference */
	pthread_mutex_t reload_mu;	/* serializes reloads; guards ids */
	struct tls_file_id ids[TLS_F_N];
	char *files[TLS_F_N];		/* owned; files[TLS_F_CA] may be NULL */
	char **peer_names;		/* owned, NULL-terminated, or NULL */
};

/* Logs the first queued OpenSSL error with what and file, then clears the
 * queue. OpenSSL error strings never contain key material. */
static void
tls_log_ssl_error(const char *what, const char *file)
{
	char msg[256];
	unsigned long e = ERR_peek_last_error();

	if (e != 0)
		ERR_error_string_n(e, msg, sizeof(msg));
	else
		snprintf(msg, sizeof(msg), "unknown");
	log_error("tls", what, LF_STR("file", file ? file : ""),
	    LF_STR("error", msg));
	ERR_clear_error();
}

/* Applies the common protocol policy to ctx. */
static int
tls_ctx_policy(SSL_CTX *ctx)
{
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		return MOAT_ERR_TLS;
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	if (!SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12))
		return MOAT_ERR_TLS;
	if (!SSL_CTX_set1_groups_list(ctx, TLS_GROUPS))
		return MOAT_ERR_TLS;
	return 0;
}

static int
tls_stat(const char *path, struct tls_file_id *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (path == NULL)
		return 0;
	if (stat(path, &st) != 0)
		return moat_err_from_errno(errno);
	id->present = true;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtim = st.st_mtim;
	id->ctim = st.st_ctim;
	return 0;
}

static bool
tls_id_equal(const struct tls_file_id *a, const struct tls_file_id *b)
{
	return a->present == b->present && a->dev == b->dev &&
	    a->ino == b->ino && a->size == b->size &&
	    a->mtim.tv_sec == b->mtim.tv_sec &&
	    a->mtim.tv_nsec == b->mtim.tv_nsec &&
	    a->ctim.tv_sec == b->ctim.tv_sec &&
	    a->ctim.tv_nsec == b->ctim.tv_nsec;
}

/* Builds a server context from srv's files and names. Caller frees. */
static int
tls_server_build(const struct tls_server *srv, SSL_CTX **out)
{
	SSL_CTX *ctx = NULL;
	STACK_OF(X509_NAME) *cas = NULL;
	const char *cert = srv->files[TLS_F_CERT];
	const char *key = srv->files[TLS_F_KEY];
	const char *ca = srv->files[TLS_F_CA];
	int r = MOAT_ERR_TLS;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		r = MOAT_ERR_NOMEM;
		tls_log_ssl_error("cannot create server context", NULL);
		goto out;
	}
	if (tls_ctx_policy(ctx) != 0) {
		tls_log_ssl_error("cannot apply TLS policy", NULL);
		goto out;
	}
	/* Required for session resumption when client certificates are
	 * verified; harmless otherwise. Tickets stay on (the default). */
	if (!SSL_CTX_set_session_id_context(ctx,
	    (const unsigned char *)TLS_SID_CTX, sizeof(TLS_SID_CTX) - 1)) {
		tls_log_ssl_error("cannot set session id context", NULL);
		goto out;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		tls_log_ssl_error("cannot load certificate chain", cert);
		goto out;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		tls_log_ssl_error("cannot load private key", key);
		goto out;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		tls_log_ssl_error("private key does not match certificate",
		    key);
		goto out;
	}
	if (ca != NULL) {
		/* Only this CA: the system store is never loaded here. */
		if (SSL_CTX_load_verify_file(ctx, ca) != 1) {
			tls_log_ssl_error("cannot load client CA", ca);
			goto out;
		}
		if ((cas = SSL_load_client_CA_file(ca)) == NULL) {
			tls_log_ssl_error("no CA names in client CA file", ca);
			goto out;
		}
		SSL_CTX_set_client_CA_list(ctx, cas);	/* takes cas */
		cas = NULL;
		SSL_CTX_set_verify(ctx,
		    SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		if (srv->peer_names != NULL) {
			X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(ctx);

			X509_VERIFY_PARAM_set_hostflags(vp, TLS_HOSTFLAGS);
			for (size_t i = 0; srv->peer_names[i] != NULL; i++) {
				if (!X509_VERIFY_PARAM_add1_host(vp,
				    srv->peer_names[i], 0)) {
					tls_log_ssl_error(
					    "cannot set peer name", NULL);
					goto out;
				}
			}
		}
	}
	*out = ctx;
	ctx = NULL;
	r = 0;
out:
	sk_X509_NAME_pop_free(cas, X509_NAME_free);
	SSL_CTX_free(ctx);
	return r;
}

static void
tls_names_free(char **names)
{
	if (names == NULL)
		return;
	for (size_t i = 0; names[i] != NULL; i++)
		free(names[i]);
	free(names);
}

/* Copies a NULL-terminated list; rejects empty names and names that
 * OpenSSL would read as "any subdomain of" (leading dot). */
static int
tls_names_copy(const char *const *in, char ***out)
{
	char **names = NULL;
	size_t n = 0;
	int r = MOAT_ERR_NOMEM;

	*out = NULL;
	if (in == NULL)
		return 0;
	while (in[n] != NULL)
		n++;
	if (n == 0)
		return MOAT_ERR_INVAL;
	if ((names = calloc(n + 1, sizeof(*names))) == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (in[i][0] == '\0' || in[i][0] == '.') {
			r = MOAT_ERR_INVAL;
			goto out;
		}
		if ((names[i] = strdup(in[i])) == NULL)
			goto out;
	}
	*out = names;
	names = NULL;
	r = 0;
out:
	tls_names_free(names);
	return r;
}

static void
tls_server_destroy(struct tls_server *srv)
{
	if (srv == NULL)
		return;
	SSL_CTX_free(srv->ctx);
	for (int i = 0; i < TLS_F_N; i++)
		free(srv->files[i]);
	tls_names_free(srv->peer_names);
	pthread_mutex_destroy(&srv->ctx_mu);
	pthread_mutex_destroy(&srv->reload_mu);
	free(srv);
}

int
tls_server_new(struct tls_server **out, const struct tls_server_opts *opts)
{
	struct tls_server *srv = NULL;
	int r = MOAT_ERR_INVAL;

	if (out == NULL || opts == NULL || opts->cert_file == NULL ||
	    opts->key_file == NULL)
		return MOAT_ERR_INVAL;
	if (opts->peer_names != NULL && opts->client_ca_file == NULL) {
		log_error("tls", "peer names need a client CA file");
		return MOAT_ERR_INVAL;
	}
	if ((srv = calloc(1, sizeof(*srv))) == NULL)
		return MOAT_ERR_NOMEM;
	if (pthread_mutex_init(&srv->ctx_mu, NULL) != 0) {
		free(srv);
		return MOAT_ERR_NOMEM;
	}
	if (pthread_mutex_init(&srv->reload_mu, NULL) != 0) {
		pthread_mutex_destroy(&srv->ctx_mu);
		free(srv);
		return MOAT_ERR_NOMEM;
	}
	r = MOAT_ERR_NOMEM;
	if ((srv->files[TLS_F_CERT] = strdup(opts->cert_file)) == NULL ||
	    (srv->files[TLS_F_KEY] = strdup(opts->key_file)) == NULL)
		goto out;
	if (opts->client_ca_file != NULL &&
	    (srv->files[TLS_F_CA] = strdup(opts->client_ca_file)) == NULL)
		goto out;
	if ((r = tls_names_copy(opts->peer_names, &srv->peer_names)) != 0) {
		if (r == MOAT_ERR_INVAL)
			log_error("tls", "invalid peer name list");
		goto out;
	}
	/* Identity first, then load: a change during loading is seen by the
	 * next reload check. */
	for (int i = 0; i < TLS_F_N; i++) {
		if ((r = tls_stat(srv->files[i], &srv->ids[i])) != 0) {
			log_error("tls", "cannot stat file",
			    LF_STR("file", srv->files[i]),
			    LF_STR("error", moat_strerror(r)));
			goto out;
		}
	}
	if ((r = tls_server_build(srv, &srv->ctx)) != 0)
		goto out;
	*out = srv;
	srv = NULL;
	r = 0;
out:
	tls_server_destroy(srv);
	return r;
}

SSL *
tls_server_new_ssl(struct tls_server *srv)
{
	SSL *ssl;

	pthread_mutex_lock(&srv->ctx_mu);
	ssl = SSL_new(srv->ctx);	/* holds its own reference on ctx */
	pthread_mutex_unlock(&srv->ctx_mu);
	return ssl;
}

/*
 * Rebuilds when any file's identity changed. When the new files are bad, the
 * identities seen are still remembered, so the same bad files are reported
 * once rather than on every poll; the next change (say, the key written
 * after the certificate) triggers another attempt.
 */
int
tls_server_reload_if_changed(struct tls_server *srv)
{
	struct tls_file_id now[TLS_F_N];
	SSL_CTX *nctx = NULL, *old;
	bool changed = false;
	int r = 0;

	pthread_mutex_lock(&srv->reload_mu);
	for (int i = 0; i < TLS_F_N; i++) {
		if ((r = tls_stat(srv->files[i], &now[i])) != 0) {
			/* Mid-swap or deleted: keep serving, try again. */
			log_warn("tls", "cannot stat file for reload",
			    LF_STR("file", srv->files[i]),
			    LF_STR("error", moat_strerror(r)));
			goto out;
		}
		if (!tls_id_equal(&now[i], &srv->ids[i]))
			changed = true;
	}
	if (!changed) {
		r = 0;
		goto out;
	}
	memcpy(srv->ids, now, sizeof(now));
	if ((r = tls_server_build(srv, &nctx)) != 0) {
		log_error("tls", "reload failed, keeping the current context",
		    LF_STR("file", srv->files[TLS_F_CERT]));
		goto out;
	}
	pthread_mutex_lock(&srv->ctx_mu);
	old = srv->ctx;
	srv->ctx = nctx;
	pthread_mutex_unlock(&srv->ctx_mu);
	SSL_CTX_free(old);	/* open SSLs keep their own reference */
	log_info("tls", "reloaded certificates",
	    LF_STR("file", srv->files[TLS_F_CERT]));
	r = 1;
out:
	pthread_mutex_unlock(&srv->reload_mu);
	return r;
}

bool
tls_server_requires_client_cert(const struct tls_server *srv)
{
	return srv != NULL && srv->files[TLS_F_CA] != NULL;
}

void
tls_server_free(struct tls_server *srv)
{
	tls_server_destroy(srv);
}

SSL_CTX *
tls_client_ctx_new(const char *ca_file, const char *cert_file,
    const char *key_file)
{
	SSL_CTX *ctx = NULL, *ret = NULL;

	if ((cert_file == NULL) != (key_file == NULL)) {
		log_error("tls", "client certificate and key go together");
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_log_ssl_error("cannot create client context", NULL);
		goto out;
	}
	if (tls_ctx_policy(ctx) != 0) {
		tls_log_ssl_error("cannot apply TLS policy", NULL);
		goto out;
	}
	if (ca_file != NULL) {
		if (SSL_CTX_load_verify_file(ctx, ca_file) != 1) {
			tls_log_ssl_error("cannot load CA file", ca_file);
			goto out;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		tls_log_ssl_error("cannot load system CA store", NULL);
		goto out;
	}
	if (cert_file != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
			tls_log_ssl_error("cannot load certificate chain",
			    cert_file);
			goto out;
		}
		if (SSL_CTX_use_PrivateKey_file(ctx, key_file,
		    SSL_FILETYPE_PEM) != 1) {
			tls_log_ssl_error("cannot load private key", key_file);
			goto out;
		}
		if (SSL_CTX_check_private_key(ctx) != 1) {
			tls_log_ssl_error(
			    "private key does not match certificate", key_file);
			goto out;
		}
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ret = ctx;
	ctx = NULL;
out:
	SSL_CTX_free(ctx);
	return ret;
}

static bool
tls_is_ip_literal(const char *name)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, name, addr) == 1 ||
	    inet_pton(AF_INET6, name, addr) == 1;
}

int
tls_client_set_expected_name(SSL *ssl, const char *name)
{
	X509_VERIFY_PARAM *vp;

	if (ssl == NULL || name == NULL || name[0] == '\0')
		return MOAT_ERR_INVAL;
	vp = SSL_get0_param(ssl);
	if (tls_is_ip_literal(name)) {
		/* IP SANs only; no SNI for addresses (RFC 6066). */
		if (!X509_VERIFY_PARAM_set1_ip_asc(vp, name))
			goto fail;
		return 0;
	}
	X509_VERIFY_PARAM_set_hostflags(vp,
	    X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	if (!SSL_set1_host(ssl, name))
		goto fail;
	if (!SSL_set_tlsext_host_name(ssl, name))
		goto fail;
	return 0;
fail:
	tls_log_ssl_error("cannot set expected peer name", NULL);
	return MOAT_ERR_TLS;
}

/* The peer certificate, only when the chain verified (borrowed). */
static X509 *
tls_verified_peer(SSL *ssl)
{
	X509 *cert;

	if (ssl == NULL)
		return NULL;
	if ((cert = SSL_get0_peer_certificate(ssl)) == NULL)
		return NULL;
	if (SSL_get_verify_result(ssl) != X509_V_OK)
		return NULL;
	return cert;
}

bool
tls_peer_name_matches(SSL *ssl, const char *const *names)
{
	X509 *cert;

	if (names == NULL || (cert = tls_verified_peer(ssl)) == NULL)
		return false;
	for (size_t i = 0; names[i] != NULL; i++) {
		if (names[i][0] == '\0' || names[i][0] == '.')
			continue;
		if (X509_check_host(cert, names[i], 0, TLS_HOSTFLAGS,
		    NULL) == 1)
			return true;
	}
	return false;
}

/* Copies an ASN1 string that must be printable ASCII without NUL. */
static int
tls_copy_name(const ASN1_STRING *s, char *out, size_t outlen)
{
	const unsigned char *p = ASN1_STRING_get0_data(s);
	int len = ASN1_STRING_length(s);

	if (p == NULL || len <= 0)
		return MOAT_ERR_NOTFOUND;
	for (int i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return MOAT_ERR_NOTFOUND;
	if ((size_t)len >= outlen)
		return MOAT_ERR_TOOBIG;
	memcpy(out, p, (size_t)len);
	out[len] = '\0';
	return 0;
}

int
tls_peer_name(SSL *ssl, char *out, size_t outlen)
{
	GENERAL_NAMES *gens = NULL;
	X509 *cert;
	const X509_NAME *subj;
	X509_NAME_ENTRY *ent;
	bool had_dns = false;
	int r = MOAT_ERR_NOTFOUND, idx, last = -1;

	if (out == NULL || outlen == 0)
		return MOAT_ERR_INVAL;
	out[0] = '\0';
	if ((cert = tls_verified_peer(ssl)) == NULL)
		return MOAT_ERR_NOTFOUND;
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens != NULL && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_DNS)
			continue;
		had_dns = true;
		if ((r = tls_copy_name(g->d.dNSName, out, outlen)) == 0)
			goto out;
	}
	if (had_dns) {
		/* As in the host check: with DNS SANs the CN is not used. */
		r = r == MOAT_ERR_TOOBIG ? r : MOAT_ERR_NOTFOUND;
		goto out;
	}
	/* The most specific (last) common name, as OpenSSL's host check
	 * considers every CN. */
	subj = X509_get_subject_name(cert);
	idx = -1;
	while ((idx = X509_NAME_get_index_by_NID(subj, NID_commonName,
	    idx)) >= 0)
		last = idx;
	r = MOAT_ERR_NOTFOUND;
	if (last >= 0 && (ent = X509_NAME_get_entry(subj, last)) != NULL)
		r = tls_copy_name(X509_NAME_ENTRY_get_data(ent), out, outlen);
out:
	GENERAL_NAMES_free(gens);
	if (r != 0)
		out[0] = '\0';
	return r;
}
