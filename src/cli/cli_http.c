/*
 * cli_http.c - HTTPS to moatd over libcurl, with the three ways of trusting
 * a server (system store, a CA bundle, a pinned certificate) and the
 * capture of an untrusted certificate for trust on first use; and the Core
 * API conventions on top: JSON bodies, bearer tokens, one-line errors.
 * See cli_http.h.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "buf.h"
#include "cli.h"
#include "cli_config.h"
#include "cli_http.h"
#include "cli_out.h"
#include "uri.h"

void
cli_trust_clear(struct cli_trust *t)
{
	free(t->seen_pem);
	t->seen_pem = NULL;
	t->seen_fp[0] = '\0';
	t->seen_hex[0] = '\0';
}

/* ---- fingerprints ---- */

int
cli_fp_parse(const char *s, unsigned char out[32])
{
	unsigned char tmp[48];
	size_t n = 0;

	if (s == NULL)
		return MOAT_ERR_INVAL;
	if (strncmp(s, "SHA256:", 7) == 0 && strlen(s + 7) == 43) {
		/* Unpadded base64, as ssh prints it. */
		char padded[48];
		int got;

		memcpy(padded, s + 7, 43);
		padded[43] = '=';
		padded[44] = '\0';
		got = EVP_DecodeBlock(tmp, (const unsigned char *)padded, 44);
		if (got != 33)	/* 32 bytes and one for the padding */
			return MOAT_ERR_INVAL;
		memcpy(out, tmp, 32);
		return 0;
	}
	if (strncmp(s, "SHA256:", 7) == 0 || strncmp(s, "sha256:", 7) == 0)
		s += 7;
	/* Hex, with or without colons. */
	while (*s != '\0') {
		int hi, lo;

		if (*s == ':') {
			s++;
			continue;
		}
		if ((hi = uri_hexval((unsigned char)s[0])) < 0 ||
		    (lo = uri_hexval((unsigned char)s[1])) < 0 || n >= 32)
			return MOAT_ERR_INVAL;
		tmp[n++] = (unsigned char)(hi << 4 | lo);
		s += 2;
	}
	if (n != 32)
		return MOAT_ERR_INVAL;
	memcpy(out, tmp, 32);
	return 0;
}

bool
cli_fp_equal(const char *a, const char *b)
{
	unsigned char x[32], y[32];

	return cli_fp_parse(a, x) == 0 && cli_fp_parse(b, y) == 0 &&
	    CRYPTO_memcmp(x, y, 32) == 0;
}

static void
fp_format(const unsigned char md[32], struct cli_trust *t)
{
	unsigned char b64[48];
	size_t n;

	EVP_EncodeBlock(b64, md, 32);	/* 44 characters, one '=' */
	n = strcspn((const char *)b64, "=");
	snprintf(t->seen_fp, sizeof(t->seen_fp), "SHA256:%.*s", (int)n,
	    (const char *)b64);
	for (int i = 0; i < 32; i++)
		snprintf(t->seen_hex + 3 * i, sizeof(t->seen_hex) - 3 * i,
		    "%02X%s", md[i], i < 31 ? ":" : "");
}

/* ---- TLS hooks (OpenSSL back end of libcurl) ---- */

/* Replaces OpenSSL's chain verification in the pin and capture modes:
 * the leaf certificate's fingerprint is what counts. */
static int
verify_leaf(X509_STORE_CTX *x, void *arg)
{
	struct cli_trust *t = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (leaf == NULL || X509_digest(leaf, EVP_sha256(), md, &mdlen) != 1 ||
	    mdlen != 32) {
		X509_STORE_CTX_set_error(x, X509_V_ERR_UNSPECIFIED);
		return 0;
	}
	fp_format(md, t);
	if (t->mode == CLI_TRUST_CAPTURE) {
		BIO *bio = BIO_new(BIO_s_mem());
		char *p;
		long n;

		free(t->seen_pem);
		t->seen_pem = NULL;
		if (bio != NULL && PEM_write_bio_X509(bio, leaf) == 1 &&
		    (n = BIO_get_mem_data(bio, &p)) > 0 &&
		    (t->seen_pem = malloc((size_t)n + 1)) != NULL) {
			memcpy(t->seen_pem, p, (size_t)n);
			t->seen_pem[n] = '\0';
		}
		BIO_free(bio);
		/* Seen, not trusted: end the handshake here. */
		X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
		return 0;
	}
	if (t->pin != NULL && cli_fp_equal(t->pin, t->seen_fp))
		return 1;
	X509_STORE_CTX_set_error(x, X509_V_ERR_APPLICATION_VERIFICATION);
	return 0;
}

static CURLcode
ssl_ctx_hook(CURL *curl, void *sslctx, void *arg)
{
	SSL_CTX *ctx = sslctx;

	(void)curl;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, verify_leaf, arg);
	return CURLE_OK;
}

/* ---- requests ---- */

void
cli_reply_free(struct cli_reply *rep)
{
	if (rep == NULL)
		return;
	free(rep->body);
	rep->body = NULL;
	rep->len = 0;
}

static size_t
on_body(char *p, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;

	if (buf_append(b, p, size * n) != 0)
		return 0;	/* too big: abort the transfer */
	return size * n;
}

struct upload {
	const char *p;
	size_t left;
};

static int
set_trust(CURL *h, struct cli_trust *t)
{
	CURLcode c = CURLE_OK;

	switch (t->mode) {
	case CLI_TRUST_SYSTEM:
		break;
	case CLI_TRUST_CA: {
		struct curl_blob blob = { (void *)t->ca_pem,
		    t->ca_pem != NULL ? strlen(t->ca_pem) : 0,
		    CURL_BLOB_COPY };

		if (t->ca_pem == NULL)
			return MOAT_ERR_INVAL;
		/* Only this bundle: no system CA directory either. */
		c = curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
		if (c == CURLE_OK)
			c = curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
		break;
	}
	case CLI_TRUST_PIN:
	case CLI_TRUST_CAPTURE:
		if (t->mode == CLI_TRUST_PIN && t->pin == NULL)
			return MOAT_ERR_INVAL;
		/* The fingerprint replaces chain and name checks; the hook
		 * turns peer verification back on inside OpenSSL. */
		c = curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		if (c == CURLE_OK)
			c = curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
		if (c == CURLE_OK)
			c = curl_easy_setopt(h, CURLOPT_SSL_SESSIONID_CACHE, 0L);
		if (c == CURLE_OK)
			c = curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION,
			    ssl_ctx_hook);
		if (c == CURLE_OK)
			c = curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, t);
		break;
	}
	return c == CURLE_OK ? 0 : MOAT_ERR_UNSUPPORTED;
}

/* What one request sends. */
struct req_opts {
	const char *base_url;
	struct cli_trust *trust;
	const char *bearer;
	const char *method;
	const char *path;
	const char *ctype;
	const void *body;
	size_t len;
	const char *accept;
	const char *last_event_id;
	bool stream;		/* no overall time limit */
};

/* Sets h up for o; *hdrs (caller frees) receives the header list and
 * cerr (CURL_ERROR_SIZE) the error buffer. 0, or a code with err set. */
static int
req_prepare(CURL *h, const struct req_opts *o, struct curl_slist **hdrs,
    char *cerr, char *err, size_t errlen)
{
	char url[2048], auth[1024], line[256];
	struct curl_slist *n;
	CURLcode c;
	int r = MOAT_ERR_NOMEM, w;

	*hdrs = NULL;
	auth[0] = '\0';
	w = snprintf(url, sizeof(url), "%s%s", o->base_url, o->path);
	if (w < 0 || (size_t)w >= sizeof(url)) {
		snprintf(err, errlen, "URL too long");
		return MOAT_ERR_TOOBIG;
	}
	if (o->bearer != NULL) {
		w = snprintf(auth, sizeof(auth), "Authorization: Bearer %s",
		    o->bearer);
		if (w < 0 || (size_t)w >= sizeof(auth)) {
			snprintf(err, errlen, "token too long");
			r = MOAT_ERR_TOOBIG;
			goto out;
		}
		if ((n = curl_slist_append(*hdrs, auth)) == NULL)
			goto nomem;
		*hdrs = n;
	}
	if (o->body != NULL) {
		snprintf(line, sizeof(line), "Content-Type: %s", o->ctype);
		if ((n = curl_slist_append(*hdrs, line)) == NULL)
			goto nomem;
		*hdrs = n;
	}
	if (o->last_event_id != NULL) {
		w = snprintf(line, sizeof(line), "Last-Event-ID: %s",
		    o->last_event_id);
		if (w < 0 || (size_t)w >= sizeof(line)) {
			snprintf(err, errlen, "event id too long");
			r = MOAT_ERR_TOOBIG;
			goto out;
		}
		if ((n = curl_slist_append(*hdrs, line)) == NULL)
			goto nomem;
		*hdrs = n;
	}
	snprintf(line, sizeof(line), "Accept: %s", o->accept);
	if ((n = curl_slist_append(*hdrs, line)) == NULL)
		goto nomem;
	*hdrs = n;
	if ((n = curl_slist_append(*hdrs, "Expect:")) == NULL)
		goto nomem;
	*hdrs = n;

	c = curl_easy_setopt(h, CURLOPT_URL, url);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	if (c == CURLE_OK && !o->stream)
		c = curl_easy_setopt(h, CURLOPT_TIMEOUT, 120L);
	if (c == CURLE_OK && o->stream) {
		/* The server sends a comment every 15 s: a minute without
		 * a byte is a dead connection. */
		c = curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
		if (c == CURLE_OK)
			c = curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	}
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_USERAGENT, "moat/" MOAT_VERSION);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, o->method);
	if (c == CURLE_OK && o->body != NULL) {
		c = curl_easy_setopt(h, CURLOPT_POSTFIELDS, o->body);
		if (c == CURLE_OK)
			c = curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
			    (curl_off_t)o->len);
	}
	if (c != CURLE_OK) {
		snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(c));
		r = MOAT_ERR_UNSUPPORTED;
		goto out;
	}
	if ((r = set_trust(h, o->trust)) != 0) {
		snprintf(err, errlen, "libcurl cannot apply the TLS trust "
		    "settings (is it built with OpenSSL?)");
		goto out;
	}
	r = 0;
	goto out;
nomem:
	r = MOAT_ERR_NOMEM;
	snprintf(err, errlen, "out of memory");
out:
	explicit_bzero(auth, sizeof(auth));
	return r;
}

/* The code and one-line message of a failed transfer. got: bytes of body
 * received before the failure. */
static int
perform_error(CURLcode c, const struct cli_trust *trust, const char *base_url,
    const char *cerr, size_t got, char *err, size_t errlen)
{
	if (c == CURLE_PEER_FAILED_VERIFICATION ||
	    c == CURLE_SSL_CACERT_BADFILE ||
	    (c == CURLE_SSL_CONNECT_ERROR && trust->seen_fp[0] != '\0')) {
		snprintf(err, errlen, "cannot verify %s: %s", base_url,
		    cerr[0] ? cerr : curl_easy_strerror(c));
		return MOAT_ERR_TLS;
	}
	if (c == CURLE_WRITE_ERROR && got > 0) {
		snprintf(err, errlen, "the answer from %s is larger than %d "
		    "bytes", base_url, CLI_HTTP_BODY_MAX);
		return MOAT_ERR_TOOBIG;
	}
	snprintf(err, errlen, "cannot reach %s: %s", base_url,
	    cerr[0] ? cerr : curl_easy_strerror(c));
	return MOAT_ERR_IO;
}

int
cli_http_request(const char *base_url, struct cli_trust *trust,
    const char *bearer, const char *method, const char *path,
    const char *ctype, const void *body, size_t len, struct cli_reply *rep,
    char *err, size_t errlen)
{
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	const struct req_opts o = { base_url, trust, bearer, method, path,
	    ctype, body, len, "application/json", NULL, false };
	struct buf b;
	CURL *h = NULL;
	CURLcode c;
	int r;

	memset(rep, 0, sizeof(*rep));
	buf_init(&b, CLI_HTTP_BODY_MAX);
	if ((h = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "cannot start libcurl");
		return MOAT_ERR_NOMEM;
	}
	if ((r = req_prepare(h, &o, &hdrs, cerr, err, errlen)) != 0)
		goto out;
	c = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	if (c == CURLE_OK)
		c = curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	if (c != CURLE_OK) {
		snprintf(err, errlen, "libcurl: %s", curl_easy_strerror(c));
		r = MOAT_ERR_UNSUPPORTED;
		goto out;
	}
	if ((c = curl_easy_perform(h)) != CURLE_OK) {
		r = perform_error(c, trust, base_url, cerr, b.len, err, errlen);
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &rep->status);
	if ((rep->body = buf_steal(&b, &rep->len)) == NULL) {
		r = MOAT_ERR_NOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	r = 0;
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	buf_free(&b);
	return r;
}

/* ---- streams ---- */

#define STREAM_ERRBODY_MAX (64 * 1024)
#define STREAM_TICK_MS 100

struct stream_ctx {
	struct cli_stream *st;
	CURL *h;
	struct buf errbody;	/* the body of a non-2xx answer */
};

static size_t
on_stream(char *p, size_t size, size_t n, void *arg)
{
	struct stream_ctx *x = arg;
	struct cli_stream *st = x->st;

	if (st->status == 0)
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &st->status);
	if (st->status < 200 || st->status > 299)
		return buf_append(&x->errbody, p, size * n) == 0 ? size * n : 0;
	if (st->on_data(st->arg, p, size * n) != 0) {
		st->stopped = true;
		return 0;
	}
	return size * n;
}

int
cli_http_stream(const char *base_url, struct cli_trust *trust,
    const char *bearer, const char *path, struct cli_stream *st,
    struct cli_reply *rep, char *err, size_t errlen)
{
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	const struct req_opts o = { base_url, trust, bearer, "GET", path,
	    NULL, NULL, 0, "text/event-stream", st->last_event_id, true };
	struct stream_ctx x = { st, NULL, { 0 } };
	CURLM *m = NULL;
	CURLMsg *msg;
	CURLcode c = CURLE_OK;
	bool added = false, finished = false;
	int r, running = 1, left;

	memset(rep, 0, sizeof(*rep));
	st->status = 0;
	st->stopped = false;
	buf_init(&x.errbody, STREAM_ERRBODY_MAX);
	if ((x.h = curl_easy_init()) == NULL || (m = curl_multi_init()) ==
	    NULL) {
		snprintf(err, errlen, "cannot start libcurl");
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((r = req_prepare(x.h, &o, &hdrs, cerr, err, errlen)) != 0)
		goto out;
	c = curl_easy_setopt(x.h, CURLOPT_WRITEFUNCTION, on_stream);
	if (c == CURLE_OK)
		c = curl_easy_setopt(x.h, CURLOPT_WRITEDATA, &x);
	if (c != CURLE_OK || curl_multi_add_handle(m, x.h) != CURLM_OK) {
		snprintf(err, errlen, "libcurl cannot start the request");
		r = MOAT_ERR_UNSUPPORTED;
		goto out;
	}
	added = true;
	/* The multi interface, to call on_tick every STREAM_TICK_MS while
	 * the server is quiet. */
	while (!finished) {
		if (curl_multi_perform(m, &running) != CURLM_OK ||
		    curl_multi_poll(m, NULL, 0, running ? STREAM_TICK_MS : 0,
		    NULL) != CURLM_OK) {
			snprintf(err, errlen, "libcurl failed");
			r = MOAT_ERR_IO;
			goto out;
		}
		while ((msg = curl_multi_info_read(m, &left)) != NULL)
			if (msg->msg == CURLMSG_DONE) {
				c = msg->data.result;
				finished = true;
			}
		if (!finished && !running)
			finished = true;
		if (!finished && st->on_tick != NULL &&
		    st->on_tick(st->arg) != 0) {
			st->stopped = true;
			break;
		}
	}
	if (st->status == 0)
		curl_easy_getinfo(x.h, CURLINFO_RESPONSE_CODE, &st->status);
	rep->status = st->status;
	if (st->stopped) {
		r = 0;		/* a callback ended it */
		goto out;
	}
	if (c != CURLE_OK) {
		r = perform_error(c, trust, base_url, cerr, x.errbody.len, err,
		    errlen);
		if (c == CURLE_WRITE_ERROR)
			snprintf(err, errlen, "the error answer from %s is "
			    "larger than %d bytes", base_url,
			    STREAM_ERRBODY_MAX);
		goto out;
	}
	if (x.errbody.len > 0 &&
	    (rep->body = buf_steal(&x.errbody, &rep->len)) == NULL) {
		snprintf(err, errlen, "out of memory");
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	r = 0;
out:
	if (added)
		curl_multi_remove_handle(m, x.h);
	curl_multi_cleanup(m);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(x.h);
	buf_free(&x.errbody);
	return r;
}

/* ---- connections from the config ---- */

static char *
dup_field(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL ? strdup(s) : NULL;
}

int
cli_conn_from_server(const char *name, const json_t *server,
    struct cli_conn **out)
{
	struct cli_conn *c = calloc(1, sizeof(*c));
	const char *trust = json_string_value(json_object_get(server, "trust"));

	*out = NULL;
	if (c == NULL)
		return MOAT_ERR_NOMEM;
	c->name = strdup(name);
	c->url = dup_field(server, "url");
	c->token = dup_field(server, "token");
	c->token_id = dup_field(server, "token_id");
	c->username = dup_field(server, "username");
	c->ca_pem = dup_field(server, "ca_pem");
	c->fingerprint = dup_field(server, "fingerprint");
	if (c->name == NULL || c->url == NULL || c->token == NULL ||
	    trust == NULL) {
		cli_conn_free(c);
		return MOAT_ERR_NOMEM;
	}
	if (strcmp(trust, "ca") == 0) {
		c->trust.mode = CLI_TRUST_CA;
		c->trust.ca_pem = c->ca_pem;
	} else if (strcmp(trust, "pin") == 0) {
		c->trust.mode = CLI_TRUST_PIN;
		c->trust.pin = c->fingerprint;
	} else {
		c->trust.mode = CLI_TRUST_SYSTEM;
	}
	*out = c;
	return 0;
}

int
cli_conn_open(struct cli_conn **out)
{
	struct cli_config *cfg = NULL;
	const char *name, *env = getenv("MOAT_SERVER");
	const json_t *s;
	char path[4096], err[1024];
	int r, status = CLI_FAILED;

	*out = NULL;
	if (cli_config_default_path(path, sizeof(path)) != 0) {
		fprintf(stderr, "moat: cannot find the config file: set HOME "
		    "or XDG_CONFIG_HOME\n");
		return CLI_FAILED;
	}
	if (cli_config_load(path, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "moat: %s\n", err);
		return CLI_FAILED;
	}
	name = env != NULL && env[0] != '\0' ? env : cli_config_current(cfg);
	if (name == NULL) {
		fprintf(stderr, "moat: not logged in (run moat login URL)\n");
		goto out;
	}
	if ((s = cli_config_server(cfg, name)) == NULL) {
		fprintf(stderr, "moat: no server called '%s' in %s (see moat "
		    "use)\n", name, path);
		goto out;
	}
	if ((r = cli_conn_from_server(name, s, out)) != 0) {
		fprintf(stderr, "moat: %s\n", moat_strerror(r));
		goto out;
	}
	status = CLI_OK;
out:
	cli_config_free(cfg);
	return status;
}

void
cli_conn_free(struct cli_conn *c)
{
	if (c == NULL)
		return;
	cli_wipe_free(c->token);
	free(c->name);
	free(c->url);
	free(c->token_id);
	free(c->username);
	free(c->ca_pem);
	free(c->fingerprint);
	cli_trust_clear(&c->trust);
	free(c);
}

/* ---- the API ---- */

void
cli_print_server_error(const struct cli_reply *rep)
{
	char code[64], msg[512];
	json_t *doc = NULL, *e;

	if (rep->body != NULL && rep->len > 0)
		doc = json_loadb(rep->body, rep->len, 0, NULL);
	e = json_object_get(doc, "error");
	if (json_is_object(e)) {
		cli_clean(json_string_value(json_object_get(e, "code")), code,
		    sizeof(code));
		cli_clean(json_string_value(json_object_get(e, "message")), msg,
		    sizeof(msg));
		fprintf(stderr, "moat: server said %ld %s: %s\n", rep->status,
		    code, msg);
	} else {
		fprintf(stderr, "moat: server said %ld (no error details)\n",
		    rep->status);
	}
	json_decref(doc);
}

/* The one-line explanation of a TLS failure with a stored trust. */
static void
print_tls_error(const struct cli_conn *c, const char *err)
{
	if (c->trust.mode == CLI_TRUST_PIN && c->trust.seen_fp[0] != '\0' &&
	    !cli_fp_equal(c->trust.pin, c->trust.seen_fp)) {
		fprintf(stderr, "moat: WARNING: the certificate of %s changed: "
		    "it is now %s, the one you trusted is %s; someone may be "
		    "impersonating the server. If the change is expected, run "
		    "moat logout and moat login %s again\n", c->url,
		    c->trust.seen_fp, c->trust.pin, c->url);
		return;
	}
	fprintf(stderr, "moat: %s\n", err);
}

/* cli_api_raw, with an answer of status quiet (when not 0) not printed,
 * and the status in *status when not NULL. */
static int
api_call(struct cli_conn *c, const char *method, const char *path,
    const char *ctype, const void *body, size_t len, json_t **out,
    long quiet, long *statusp)
{
	struct cli_reply rep;
	json_error_t jerr;
	char err[1024];
	int r, status = CLI_FAILED;

	if (out != NULL)
		*out = NULL;
	if (statusp != NULL)
		*statusp = 0;
	r = cli_http_request(c->url, &c->trust, c->token, method, path, ctype,
	    body, len, &rep, err, sizeof(err));
	if (r == MOAT_ERR_TLS) {
		print_tls_error(c, err);
		return CLI_FAILED;
	}
	if (r != 0) {
		fprintf(stderr, "moat: %s\n", err);
		return CLI_FAILED;
	}
	if (statusp != NULL)
		*statusp = rep.status;
	if (quiet != 0 && rep.status == quiet)
		goto out;
	if (rep.status < 200 || rep.status > 299) {
		cli_print_server_error(&rep);
		if (rep.status == 401)
			fprintf(stderr, "moat: the token stored for %s is not "
			    "valid any more: run moat login %s\n", c->name,
			    c->url);
		goto out;
	}
	if (out != NULL && rep.len > 0) {
		*out = json_loadb(rep.body, rep.len, JSON_DECODE_ANY, &jerr);
		if (*out == NULL) {
			fprintf(stderr, "moat: the server's answer is not JSON "
			    "(%s)\n", jerr.text);
			goto out;
		}
	}
	status = CLI_OK;
out:
	cli_reply_free(&rep);
	return status;
}

int
cli_api_stream(struct cli_conn *c, const char *path, struct cli_stream *st)
{
	struct cli_reply rep;
	char err[1024];
	int r, status = CLI_FAILED;

	st->broken = false;
	r = cli_http_stream(c->url, &c->trust, c->token, path, st, &rep, err,
	    sizeof(err));
	if (r == MOAT_ERR_TLS) {
		print_tls_error(c, err);
		return CLI_FAILED;
	}
	if (r != 0 && st->status >= 200 && st->status <= 299) {
		st->broken = true;
		return CLI_OK;
	}
	if (r != 0) {
		fprintf(stderr, "moat: %s\n", err);
		return CLI_FAILED;
	}
	if (st->quiet != 0 && rep.status == st->quiet)
		goto out;
	if (rep.status < 200 || rep.status > 299) {
		cli_print_server_error(&rep);
		if (rep.status == 401)
			fprintf(stderr, "moat: the token stored for %s is not "
			    "valid any more: run moat login %s\n", c->name,
			    c->url);
		goto out;
	}
	status = CLI_OK;
out:
	cli_reply_free(&rep);
	return status;
}

int
cli_api_raw(struct cli_conn *c, const char *method, const char *path,
    const char *ctype, const void *body, size_t len, json_t **out)
{
	return api_call(c, method, path, ctype, body, len, out, 0, NULL);
}

int
cli_api_quiet(struct cli_conn *c, const char *method, const char *path,
    long quiet, json_t **out, long *status)
{
	return api_call(c, method, path, NULL, NULL, 0, out, quiet, status);
}

int
cli_api(struct cli_conn *c, const char *method, const char *path,
    const json_t *body, json_t **out)
{
	char *text = NULL;
	int status;

	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		fprintf(stderr, "moat: out of memory\n");
		return CLI_FAILED;
	}
	status = cli_api_raw(c, method, path, "application/json", text,
	    text != NULL ? strlen(text) : 0, out);
	/* A body may carry a password or a secret value. */
	cli_wipe_free(text);
	return status;
}

int
cli_path(char *out, size_t outlen, const char *prefix, const char *name,
    const char *suffix)
{
	char *esc = NULL;
	int n;

	if (name != NULL && (esc = curl_easy_escape(NULL, name, 0)) == NULL)
		return MOAT_ERR_NOMEM;
	n = snprintf(out, outlen, "%s%s%s", prefix, esc != NULL ? esc : "",
	    suffix != NULL ? suffix : "");
	curl_free(esc);
	if (n < 0 || (size_t)n >= outlen)
		return MOAT_ERR_TOOBIG;
	return 0;
}

char *
cli_escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0), *copy;

	if (e == NULL)
		return NULL;
	copy = strdup(e);
	curl_free(e);
	return copy;
}
