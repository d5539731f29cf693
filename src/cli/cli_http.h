/*
 * cli_http.h - HTTPS requests from the moat CLI to moatd, over libcurl
 * (OpenSSL back end), and the Core API conventions on top of them.
 *
 * Trust. A server's certificate is trusted in one of three ways, chosen at
 * `moat login` and kept in the config file (cli_config.h):
 *   system  the system's CA store verifies the chain and the host name;
 *   ca      only the given CA bundle (PEM, from --ca-file) does;
 *   pin     the server's certificate must be exactly the one whose SHA-256
 *           fingerprint the user accepted (trust on first use, like ssh);
 *           chain and name are not checked, the fingerprint is.
 * A fourth mode, capture, fetches the server certificate without trusting
 * it: the handshake is failed on purpose once the certificate is seen, so
 * nothing (no password, no token) is ever sent to an unverified server.
 *
 * Fingerprints are written "SHA256:" + unpadded base64 of the SHA-256 of
 * the certificate's DER (like ssh); the colon-separated hex form of
 * `openssl x509 -fingerprint -sha256` is accepted as input too.
 *
 * Tokens go only in the Authorization header of the request, never in a
 * URL, a log line or an error message.
 */
#ifndef MOAT_CLI_HTTP_H
#define MOAT_CLI_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "errors.h"

#define CLI_HTTP_BODY_MAX (8 * 1024 * 1024)
#define CLI_FP_LEN 64		/* "SHA256:" + 43 base64 characters + NUL */
#define CLI_FP_HEX_LEN 100	/* 32 bytes as "AB:CD:...", NUL */

enum cli_trust_mode {
	CLI_TRUST_SYSTEM,
	CLI_TRUST_CA,
	CLI_TRUST_PIN,
	CLI_TRUST_CAPTURE
};

struct cli_trust {
	enum cli_trust_mode mode;
	const char *ca_pem;	/* CLI_TRUST_CA: the bundle, borrowed */
	const char *pin;	/* CLI_TRUST_PIN: "SHA256:...", borrowed */
	/* Set during the handshake when a certificate was seen (pin and
	 * capture modes): */
	char seen_fp[CLI_FP_LEN];
	char seen_hex[CLI_FP_HEX_LEN];
	char *seen_pem;		/* capture mode: PEM, owned; cli_trust_clear */
};

/* Frees what a handshake left in t (seen_pem) and clears the results. */
void cli_trust_clear(struct cli_trust *t);

/* Parses a fingerprint in either form into 32 bytes. */
int cli_fp_parse(const char *s, unsigned char out[32]) MOAT_MUST_CHECK;

/* True when a and b (either form) name the same fingerprint. */
bool cli_fp_equal(const char *a, const char *b);

struct cli_reply {
	long status;	/* HTTP status */
	char *body;	/* owned, NUL-terminated; cli_reply_free */
	size_t len;
};

void cli_reply_free(struct cli_reply *rep);

/* One request: method on base_url + path (path starts with '/', already
 * escaped), with bearer as the token when not NULL, and body (len bytes of
 * content type ctype) when not NULL. Returns 0 once a response arrived
 * (whatever its status), else a negative code with err set to one line:
 * MOAT_ERR_TLS (the certificate was not trusted), MOAT_ERR_IO (connect,
 * timeout...), MOAT_ERR_TOOBIG (a body over CLI_HTTP_BODY_MAX). */
int cli_http_request(const char *base_url, struct cli_trust *trust,
    const char *bearer, const char *method, const char *path,
    const char *ctype, const void *body, size_t len, struct cli_reply *rep,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* A long GET of a text/event-stream (cli_http_stream). */
struct cli_stream {
	/* Receives the body of a 2xx answer as it arrives; non-zero ends the
	 * stream. */
	int (*on_data)(void *arg, const char *p, size_t n);
	/* Called about every 100 ms while the stream is open (may be NULL);
	 * non-zero ends the stream. */
	int (*on_tick)(void *arg);
	void *arg;
	const char *last_event_id;	/* sent as Last-Event-ID, or NULL */
	long quiet;			/* cli_api_stream: an answer with this
					 * status is not printed */
	/* Results: */
	long status;			/* HTTP status, 0 when none came */
	bool stopped;			/* a callback ended the stream */
	bool broken;			/* cli_api_stream: it broke after a
					 * 2xx answer (nothing printed) */
};

/* GET base_url + path with Accept: text/event-stream and no overall time
 * limit (a minute without a byte ends it). Returns 0 when an answer came
 * and the transfer ended (the server closed it, or a callback stopped it:
 * st->stopped); rep then holds the status and, for a non-2xx answer, its
 * body (cli_reply_free). Otherwise a code as for cli_http_request, with
 * st->status non-zero when the stream broke after its answer began. */
int cli_http_stream(const char *base_url, struct cli_trust *trust,
    const char *bearer, const char *path, struct cli_stream *st,
    struct cli_reply *rep, char *err, size_t errlen) MOAT_MUST_CHECK;

/* A logged-in server, ready for API calls. */
struct cli_conn {
	char *name;		/* the server's nickname in the config */
	char *url;		/* "https://host:port", no trailing slash */
	char *token;		/* the API token (secret) */
	char *token_id;
	char *username;
	char *ca_pem;
	char *fingerprint;
	struct cli_trust trust;	/* points into the strings above */
};

/* The current server from the config file (or the one named by the
 * MOAT_SERVER environment variable). Prints an error line and returns
 * CLI_FAILED when there is none or the config cannot be read; else 0 with
 * *out (free with cli_conn_free). */
int cli_conn_open(struct cli_conn **out);

/* Builds a connection from a server entry of the config (borrowed). */
int cli_conn_from_server(const char *name, const json_t *server,
    struct cli_conn **out) MOAT_MUST_CHECK;

/* Wipes the token and frees. Accepts NULL. */
void cli_conn_free(struct cli_conn *c);

/* An API call with a JSON body (or none) through c. On a 2xx answer returns
 * 0 with *out the parsed JSON body (NULL for an empty one; out may be NULL
 * when the body is not wanted). Otherwise prints one line on stderr
 * ("moat: server said 403 forbidden: ...") and returns CLI_FAILED. */
int cli_api(struct cli_conn *c, const char *method, const char *path,
    const json_t *body, json_t **out);

/* The same with a raw body of content type ctype. */
int cli_api_raw(struct cli_conn *c, const char *method, const char *path,
    const char *ctype, const void *body, size_t len, json_t **out);

/* A request without a body whose answer's status goes to *status; an
 * answer with status quiet is not printed (CLI_FAILED all the same). */
int cli_api_quiet(struct cli_conn *c, const char *method, const char *path,
    long quiet, json_t **out, long *status);

/* A stream through c (cli_http_stream). CLI_OK when it ended after a 2xx
 * answer (st->broken when the connection broke rather than closed);
 * otherwise one line on stderr and CLI_FAILED. */
int cli_api_stream(struct cli_conn *c, const char *path,
    struct cli_stream *st);

/* Prints "moat: server said STATUS CODE: MESSAGE" for a non-2xx reply. */
void cli_print_server_error(const struct cli_reply *rep);

/* s percent-encoded for a URL path or query (caller frees), or NULL. */
char *cli_escape(const char *s);

/* "/api/v1/users/" + escaped name into out; MOAT_ERR_TOOBIG when it does
 * not fit. */
int cli_path(char *out, size_t outlen, const char *prefix, const char *name,
    const char *suffix) MOAT_MUST_CHECK;

#endif
