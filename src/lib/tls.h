/*
 * tls.h - the one place where every OpenSSL SSL_CTX of moat is built.
 *
 * Server contexts are reloadable: a struct tls_server remembers the files it
 * was built from and tls_server_reload_if_changed() rebuilds the context when
 * any of them changed on disk (including a Kubernetes-style "..data" symlink
 * swap), keeping the old context when the new files are bad. New connections
 * get an SSL from whichever context is current; connections already open
 * keep theirs.
 *
 * Policy for every context: TLS 1.2 and 1.3 only, no compression, no
 * renegotiation, server cipher preference, ECDHE only.
 *
 * mTLS: with client_ca_file set, the server requires a client certificate
 * that chains to that CA (and only that CA: the system store is not used).
 * With peer_names set as well, the certificate's subjectAltName DNS names
 * (or, when it has none, its common name) must contain one of the names, so
 * that another certificate of the same CA cannot pass where one peer is
 * expected. The same check is available to clients for the server's name.
 */
#ifndef MOAT_TLS_H
#define MOAT_TLS_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "errors.h"

struct tls_server;

struct tls_server_opts {
	const char *cert_file;		/* PEM chain, leaf first */
	const char *key_file;		/* PEM private key */
	const char *client_ca_file;	/* NULL: no client certificates asked */
	/* NULL-terminated list of accepted client certificate names, or NULL
	 * for any certificate of client_ca_file. Copied. */
	const char *const *peer_names;
};

/* Builds a server context from files. On error, *out is untouched and a
 * message naming the file is logged. */
int tls_server_new(struct tls_server **out, const struct tls_server_opts *opts)
    MOAT_MUST_CHECK;

/* A new SSL for an accepted connection, from the current context (caller
 * frees with SSL_free, or hands it to a bufferevent that frees it).
 * Thread-safe. NULL on allocation failure. */
SSL *tls_server_new_ssl(struct tls_server *srv);

/* Checks the files' identity (device, inode, size, mtime) and rebuilds the
 * context when any changed. Returns 1 when reloaded, 0 when unchanged, or a
 * negative error when the new files are unusable (the old context stays). */
int tls_server_reload_if_changed(struct tls_server *srv);

/* True when a client certificate is required by this server. */
bool tls_server_requires_client_cert(const struct tls_server *srv);

/* Frees srv (NULL is fine). SSLs handed out stay valid. */
void tls_server_free(struct tls_server *srv);

/* A client context trusting only ca_file (or the system store when NULL),
 * with an optional client certificate. Verification of the server is always
 * on; the caller sets the expected host name per connection with
 * tls_client_set_expected_name(). Caller frees with SSL_CTX_free. */
SSL_CTX *tls_client_ctx_new(const char *ca_file, const char *cert_file,
    const char *key_file);

/* Makes ssl verify that the server certificate is valid for name (a DNS
 * name or an IP literal) and sends it as SNI when it is a DNS name. */
int tls_client_set_expected_name(SSL *ssl, const char *name) MOAT_MUST_CHECK;

/* True when the verified peer certificate of ssl carries one of names
 * (NULL-terminated) as a subjectAltName DNS entry or, lacking SANs, as its
 * common name. False when there is no verified peer certificate. */
bool tls_peer_name_matches(SSL *ssl, const char *const *names);

/* Copies the first subjectAltName DNS entry (or CN) of the verified peer
 * certificate into out; returns 0, or MOAT_ERR_NOTFOUND. */
int tls_peer_name(SSL *ssl, char *out, size_t outlen);

#endif
