/*
 * cmd_login.c - "moat login", "moat logout", "moat whoami" and "moat use":
 * getting an API token for a server and remembering it.
 *
 * moat login decides how to trust the server's certificate (system store,
 * --ca-file, or the fingerprint the user accepts on first contact, like
 * ssh; see cli_http.h), logs in with the password, exchanges the session
 * at once for a named API token (POST /api/v1/tokens, then POST
 * /api/v1/auth/logout for the session), and stores the token with the
 * trust in the config file (cli_config.h), making the server current.
 * Nothing is sent to a server before its certificate is trusted.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cli.h"
#include "cli_args.h"
#include "cli_config.h"
#include "cli_http.h"
#include "cli_out.h"

#define PASSWORD_MAX 1024
#define CA_FILE_MAX (1024 * 1024)

void
cmd_login_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat login URL [--username U] [--password-stdin]\n"
	    "                      [--ca-file F] [--name NAME] [--totp CODE]\n"
	    "                      [--expires-in DURATION]\n"
	    "                      [--insecure-trust-fingerprint SHA256:...]\n\n"
	    "Logs in to the moatd at URL (https://HOST:PORT) and stores a new,\n"
	    "named API token for it in $XDG_CONFIG_HOME/moat/config.json\n"
	    "(mode 0600); that server becomes the current one.\n\n"
	    "When the system does not trust the server's certificate and no\n"
	    "--ca-file is given, moat shows its SHA-256 fingerprint and asks\n"
	    "whether to trust it (on the terminal); the answer is remembered.\n\n"
	    "  --username U        the user (asked on the terminal if absent)\n"
	    "  --password-stdin    read the password from stdin instead of\n"
	    "                      asking on the terminal without echo\n"
	    "  --ca-file F         trust only this CA bundle (PEM) for URL\n"
	    "  --name NAME         the server's nickname (default HOST:PORT)\n"
	    "  --totp CODE         the current TOTP code, when enrolled\n"
	    "  --expires-in DUR    the token's lifetime (90d, 12h...; default:\n"
	    "                      the server's)\n"
	    "  --insecure-trust-fingerprint FP\n"
	    "                      trust the certificate with this fingerprint\n"
	    "                      without asking (for scripts)\n");
}

void
cmd_logout_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat logout [NAME] [--forget]\n\n"
	    "Revokes the API token stored for the current server (or NAME) and\n"
	    "removes the server from the config file.\n\n"
	    "  --forget   remove it locally even when the server cannot be\n"
	    "             reached to revoke the token\n");
}

void
cmd_whoami_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat whoami [--json]\n\n"
	    "Shows the user the stored token belongs to, with organization\n"
	    "and roles, on the current server.\n");
}

void
cmd_use_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat use [NAME]\n\n"
	    "Without NAME, lists the servers moat remembers (* marks the\n"
	    "current one); with NAME, makes that server current. The\n"
	    "MOAT_SERVER environment variable overrides the current server\n"
	    "for one command.\n");
}

int
cli_login_parse_url(const char *in, char *url, size_t urllen, char *name,
    size_t namelen)
{
	const char *host;
	size_t n, hl;
	int w;

	if (strncmp(in, "https://", 8) == 0)
		host = in + 8;
	else if (strstr(in, "://") == NULL)
		host = in;
	else
		return MOAT_ERR_INVAL;
	n = strlen(host);
	while (n > 0 && host[n - 1] == '/')
		n--;
	hl = strcspn(host, "/");
	if (hl > n)
		hl = n;
	if (hl == 0 || n > 1000 || memchr(host, '@', n) != NULL ||
	    memchr(host, '?', n) != NULL || memchr(host, '#', n) != NULL)
		return MOAT_ERR_INVAL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)host[i] <= 0x20 || host[i] == 0x7f)
			return MOAT_ERR_INVAL;
	w = snprintf(url, urllen, "https://%.*s", (int)n, host);
	if (w < 0 || (size_t)w >= urllen || hl >= namelen)
		return MOAT_ERR_TOOBIG;
	for (size_t i = 0; i < hl; i++) {
		char c = host[i];

		name[i] = (isalnum((unsigned char)c) || c == '.' || c == ':' ||
		    c == '-') ? c : '_';
	}
	name[hl > 64 ? 64 : hl] = '\0';
	return 0;
}

void
cli_login_token_name(char out[21], const char *host, time_t now,
    unsigned attempt)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	char h[8], date[9], tmp[48];
	size_t n = 0, max = attempt > 0 ? 4 : 7;
	struct tm tm;

	for (; host != NULL && *host != '\0' && n < max; host++) {
		char c = (char)tolower((unsigned char)*host);

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			c = '-';
		if (c == '-' && (n == 0 || h[n - 1] == '-'))
			continue;
		h[n++] = c;
	}
	while (n > 0 && h[n - 1] == '-')
		n--;
	if (n == 0) {
		memcpy(h, "host", 4);
		n = 4;
	}
	h[n] = '\0';
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%m%d%H%M", &tm) == 0)
		memcpy(date, "00000000", 9);
	/* At most 4 + 7 + 1 + 8 (or 4 + 4 + 1 + 8 + 3) = 20 characters. */
	if (attempt == 0)
		snprintf(tmp, sizeof(tmp), "cli-%s-%s", h, date);
	else
		snprintf(tmp, sizeof(tmp), "cli-%s-%s-%c%c", h, date,
		    digits[(attempt / 36) % 36], digits[attempt % 36]);
	n = strlen(tmp);
	if (n > 20)
		n = 20;
	memcpy(out, tmp, n);
	out[n] = '\0';
}

/* Reads a CA bundle (PEM) given with --ca-file; caller frees. */
static char *
read_ca_file(const char *path)
{
	FILE *f = fopen(path, "re");
	char *data = NULL;
	size_t n;

	if (f == NULL) {
		fprintf(stderr, "moat login: cannot open %s: %s\n", path,
		    strerror(errno));
		return NULL;
	}
	if ((data = malloc(CA_FILE_MAX + 1)) == NULL)
		goto out;
	n = fread(data, 1, CA_FILE_MAX + 1, f);
	if (n > CA_FILE_MAX || n == 0 || strstr((data[n] = '\0', data),
	    "-----BEGIN CERTIFICATE-----") == NULL) {
		fprintf(stderr, "moat login: %s is not a PEM certificate "
		    "bundle of at most %d bytes\n", path, CA_FILE_MAX);
		free(data);
		data = NULL;
	}
out:
	fclose(f);
	return data;
}

/* Prints what the user should check before trusting a certificate. */
static void
describe_cert(const char *url, const struct cli_trust *t)
{
	BIO *bio = t->seen_pem != NULL ?
	    BIO_new_mem_buf(t->seen_pem, -1) : NULL;
	X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	char subj[256] = "?", iss[256] = "?", until[64] = "?", clean[256];
	struct tm tm;

	if (x != NULL) {
		X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof(subj));
		X509_NAME_oneline(X509_get_issuer_name(x), iss, sizeof(iss));
		if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1)
			strftime(until, sizeof(until), "%Y-%m-%d", &tm);
	}
	fprintf(stderr, "The certificate of %s is not trusted by this "
	    "system.\n", url);
	fprintf(stderr, "  subject:     %s\n", cli_clean(subj, clean,
	    sizeof(clean)));
	fprintf(stderr, "  issuer:      %s\n", cli_clean(iss, clean,
	    sizeof(clean)));
	fprintf(stderr, "  valid until: %s\n", until);
	fprintf(stderr, "  fingerprint: %s\n", t->seen_fp);
	fprintf(stderr, "               (SHA-256 %s)\n", t->seen_hex);
	fprintf(stderr, "Compare it with the one the server's administrator "
	    "gives you\n(openssl x509 -in tls.crt -noout -fingerprint "
	    "-sha256).\n");
	X509_free(x);
	BIO_free(bio);
}

struct login {
	const char *url, *name, *username, *ca_file, *fp, *totp, *expires;
	bool password_stdin;
	/* The trust decided. */
	struct cli_trust trust;
	char *ca_pem;		/* owned */
	char fingerprint[CLI_FP_LEN];
	char *cert_pem;		/* owned */
	const char *trust_kind;	/* "system", "ca", "pin" */
};

/* Fetches the server's certificate without trusting it (nothing is sent).
 * Returns 0 with l->trust.seen_* set. */
static int
capture(struct login *l, struct cli_trust *t)
{
	struct cli_reply rep;
	char err[1024];
	int r;

	memset(t, 0, sizeof(*t));
	t->mode = CLI_TRUST_CAPTURE;
	r = cli_http_request(l->url, t, NULL, "GET", "/healthz", NULL, NULL,
	    0, &rep, err, sizeof(err));
	cli_reply_free(&rep);
	if (t->seen_fp[0] == '\0' || t->seen_pem == NULL) {
		fprintf(stderr, "moat login: %s\n", r != 0 ? err :
		    "no certificate seen");
		cli_trust_clear(t);
		return CLI_FAILED;
	}
	return 0;
}

/* Decides how to trust the server (see the file comment). existing is the
 * config entry of the same name, if any. */
static int
decide_trust(struct login *l, const json_t *existing)
{
	const char *old_url = json_string_value(json_object_get(existing,
	    "url"));
	const char *old_trust = json_string_value(json_object_get(existing,
	    "trust"));
	const char *old_fp = json_string_value(json_object_get(existing,
	    "fingerprint"));
	const char *old_ca = json_string_value(json_object_get(existing,
	    "ca_pem"));
	bool same = old_url != NULL && strcmp(old_url, l->url) == 0;
	struct cli_reply rep;
	struct cli_trust cap;
	char err[1024];
	int r, ok;

	if (l->ca_file != NULL) {
		if ((l->ca_pem = read_ca_file(l->ca_file)) == NULL)
			return CLI_FAILED;
		goto use_ca;
	}
	if (same && old_trust != NULL && strcmp(old_trust, "ca") == 0 &&
	    old_ca != NULL) {
		if ((l->ca_pem = strdup(old_ca)) == NULL)
			return CLI_FAILED;
		goto use_ca;
	}
	if (l->fp != NULL) {
		unsigned char raw[32];

		if (cli_fp_parse(l->fp, raw) != 0) {
			fprintf(stderr, "moat login: --insecure-trust-"
			    "fingerprint wants SHA256:BASE64 or hex\n");
			return CLI_USAGE;
		}
		if (capture(l, &cap) != 0)
			return CLI_FAILED;
		if (!cli_fp_equal(l->fp, cap.seen_fp)) {
			fprintf(stderr, "moat login: the certificate of %s has "
			    "fingerprint %s, not the one given; not trusted\n",
			    l->url, cap.seen_fp);
			cli_trust_clear(&cap);
			return CLI_FAILED;
		}
		goto use_pin;
	}
	if (same && old_trust != NULL && strcmp(old_trust, "pin") == 0 &&
	    old_fp != NULL) {
		if (capture(l, &cap) != 0)
			return CLI_FAILED;
		if (!cli_fp_equal(old_fp, cap.seen_fp)) {
			fprintf(stderr, "moat login: WARNING: the certificate "
			    "of %s changed: it is now %s, the one you trusted "
			    "is %s; someone may be impersonating the server. If "
			    "the change is expected, run moat logout --forget "
			    "%s and log in again\n", l->url, cap.seen_fp,
			    old_fp, l->name);
			cli_trust_clear(&cap);
			return CLI_FAILED;
		}
		goto use_pin;
	}
	/* Does the system trust it? */
	memset(&l->trust, 0, sizeof(l->trust));
	l->trust.mode = CLI_TRUST_SYSTEM;
	r = cli_http_request(l->url, &l->trust, NULL, "GET", "/healthz", NULL,
	    NULL, 0, &rep, err, sizeof(err));
	cli_reply_free(&rep);
	if (r == 0) {
		l->trust_kind = "system";
		return 0;
	}
	if (r != MOAT_ERR_TLS) {
		fprintf(stderr, "moat login: %s\n", err);
		return CLI_FAILED;
	}
	if (capture(l, &cap) != 0)
		return CLI_FAILED;
	if (!cli_have_tty()) {
		fprintf(stderr, "moat login: the certificate of %s is not "
		    "trusted by this system (fingerprint %s) and there is no "
		    "terminal to ask on: give --ca-file FILE or "
		    "--insecure-trust-fingerprint %s after checking it\n",
		    l->url, cap.seen_fp, cap.seen_fp);
		cli_trust_clear(&cap);
		return CLI_FAILED;
	}
	describe_cert(l->url, &cap);
	ok = cli_confirm("Trust this server?");
	if (ok != 1) {
		fprintf(stderr, "moat login: not trusted; nothing was sent to "
		    "%s\n", l->url);
		cli_trust_clear(&cap);
		return CLI_FAILED;
	}
use_pin:
	snprintf(l->fingerprint, sizeof(l->fingerprint), "%s", cap.seen_fp);
	l->cert_pem = cap.seen_pem;
	cap.seen_pem = NULL;
	cli_trust_clear(&cap);
	memset(&l->trust, 0, sizeof(l->trust));
	l->trust.mode = CLI_TRUST_PIN;
	l->trust.pin = l->fingerprint;
	l->trust_kind = "pin";
	return 0;
use_ca:
	memset(&l->trust, 0, sizeof(l->trust));
	l->trust.mode = CLI_TRUST_CA;
	l->trust.ca_pem = l->ca_pem;
	l->trust_kind = "ca";
	return 0;
}

/* One JSON call during login (before a connection exists). Returns the
 * HTTP status, or -1 after printing a transport error; *out gets the
 * parsed body (may be NULL). Error answers are printed, except one of
 * status quiet (the caller handles it). */
static long
login_call(struct login *l, const char *bearer, const char *method,
    const char *path, json_t *body, json_t **out, long quiet)
{
	struct cli_reply rep;
	char *text = NULL, err[1024];
	long status = -1;
	int r;

	*out = NULL;
	if (body != NULL && (text = json_dumps(body, JSON_COMPACT)) == NULL)
		return -1;
	r = cli_http_request(l->url, &l->trust, bearer, method, path,
	    "application/json", text, text != NULL ? strlen(text) : 0, &rep,
	    err, sizeof(err));
	cli_wipe_free(text);
	if (r != 0) {
		fprintf(stderr, "moat login: %s\n", err);
		return -1;
	}
	status = rep.status;
	if (rep.len > 0)
		*out = json_loadb(rep.body, rep.len, 0, NULL);
	if ((status < 200 || status > 299) && status != quiet)
		cli_print_server_error(&rep);
	if (rep.body != NULL)
		explicit_bzero(rep.body, rep.len);
	cli_reply_free(&rep);
	return status;
}

static const char *
err_code(const json_t *doc)
{
	return json_string_value(json_object_get(json_object_get(doc,
	    "error"), "code"));
}

/* Revokes a token with itself, quietly (best effort). */
static void
revoke_quietly(const char *url, struct cli_trust *t, const char *token,
    const char *id)
{
	struct cli_reply rep;
	char path[256], err[256];

	if (id == NULL || token == NULL ||
	    cli_path(path, sizeof(path), "/api/v1/tokens/", id, NULL) != 0)
		return;
	if (cli_http_request(url, t, token, "DELETE", path, NULL, NULL, 0,
	    &rep, err, sizeof(err)) == 0)
		cli_reply_free(&rep);
}

int
cmd_login(int argc, char **argv)
{
	struct login l;
	struct cli_config *cfg = NULL;
	const char *pos[1];
	size_t npos;
	char url[1100], name[80], path[4096], err[1024] = "", user[128];
	char tname[21], host[256], totp[32] = "";
	char *password = NULL, *jwt = NULL, *token = NULL, *token_id = NULL;
	json_t *body = NULL, *out = NULL, *server = NULL, *old = NULL;
	int64_t expires = 0;
	size_t plen;
	long st;
	int r, status = CLI_FAILED;
	const struct cli_opt opts[] = {
		{ "--username", "-u", CLI_OPT_STR, &l.username },
		{ "--password-stdin", NULL, CLI_OPT_FLAG, &l.password_stdin },
		{ "--ca-file", NULL, CLI_OPT_STR, &l.ca_file },
		{ "--name", NULL, CLI_OPT_STR, &l.name },
		{ "--totp", NULL, CLI_OPT_STR, &l.totp },
		{ "--expires-in", NULL, CLI_OPT_STR, &l.expires },
		{ "--insecure-trust-fingerprint", NULL, CLI_OPT_STR, &l.fp },
	};

	memset(&l, 0, sizeof(l));
	if ((r = cli_parse("moat login", argc, argv, opts,
	    sizeof(opts) / sizeof(opts[0]), pos, 1, 1, &npos,
	    cmd_login_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_login_parse_url(pos[0], url, sizeof(url), name,
	    sizeof(name)) != 0) {
		fprintf(stderr, "moat login: '%s' is not an https:// URL "
		    "(https://HOST:PORT)\n", pos[0]);
		return CLI_USAGE;
	}
	l.url = url;
	if (l.name == NULL)
		l.name = name;
	if (cli_config_check_name(l.name) != 0) {
		fprintf(stderr, "moat login: --name must be 1 to 64 of "
		    "A-Z a-z 0-9 . _ : -\n");
		return CLI_USAGE;
	}
	if (l.expires != NULL && cli_parse_duration(l.expires, &expires) != 0) {
		fprintf(stderr, "moat login: --expires-in wants a duration "
		    "like 90d, 12h or 3600\n");
		return CLI_USAGE;
	}
	if (l.ca_file != NULL && l.fp != NULL) {
		fprintf(stderr, "moat login: give --ca-file or --insecure-"
		    "trust-fingerprint, not both\n");
		return CLI_USAGE;
	}
	if (cli_config_default_path(path, sizeof(path)) != 0) {
		fprintf(stderr, "moat login: cannot find the config file: set "
		    "HOME or XDG_CONFIG_HOME\n");
		return CLI_FAILED;
	}
	/* A config that cannot be read is never overwritten: stop first. */
	if (cli_config_load_for_update(path, true, &cfg, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "moat: %s\n", err);
		return CLI_FAILED;
	}
	if ((old = cli_config_server(cfg, l.name)) != NULL)
		json_incref(old);
	if ((status = decide_trust(&l, old)) != 0)
		goto out;
	status = CLI_FAILED;

	/* Who. */
	if (l.username == NULL) {
		if (cli_prompt("Username: ", false, user, sizeof(user)) != 0 ||
		    user[0] == '\0') {
			fprintf(stderr, "moat login: no user name: give "
			    "--username\n");
			status = CLI_USAGE;
			goto out;
		}
		l.username = user;
	}
	if (l.password_stdin) {
		if (cli_read_stdin(PASSWORD_MAX, true, &password, &plen) != 0) {
			fprintf(stderr, "moat login: cannot read a password of "
			    "at most %d bytes from stdin\n", PASSWORD_MAX);
			goto out;
		}
	} else {
		char pw[PASSWORD_MAX + 1], prompt[200];

		snprintf(prompt, sizeof(prompt), "Password for %s: ",
		    l.username);
		r = cli_prompt(prompt, true, pw, sizeof(pw));
		if (r == MOAT_ERR_UNSUPPORTED) {
			fprintf(stderr, "moat login: no terminal to ask for "
			    "the password: use --password-stdin\n");
			status = CLI_USAGE;
			goto out;
		}
		if (r != 0 || (password = strdup(pw)) == NULL) {
			explicit_bzero(pw, sizeof(pw));
			fprintf(stderr, "moat login: no password read\n");
			goto out;
		}
		explicit_bzero(pw, sizeof(pw));
	}

	/* Log in (asking for a TOTP code when the account needs one). */
	for (int tries = 0; tries < 2; tries++) {
		body = json_pack("{s:s,s:s}", "username", l.username,
		    "password", password);
		if (body != NULL && l.totp != NULL)
			json_object_set_new(body, "totp", json_string(l.totp));
		if (body == NULL)
			goto out;
		st = login_call(&l, NULL, "POST", "/api/v1/auth/login", body,
		    &out, 401);
		json_decref(body);
		body = NULL;
		if (st == 401 && l.totp == NULL && tries == 0 &&
		    err_code(out) != NULL &&
		    strcmp(err_code(out), "totp_required") == 0 &&
		    cli_prompt("TOTP code: ", false, totp, sizeof(totp)) == 0) {
			l.totp = totp;
			json_decref(out);
			out = NULL;
			continue;
		}
		break;
	}
	if (st == 401) {
		char code[64], msg[256];
		const json_t *e = json_object_get(out, "error");

		fprintf(stderr, "moat: server said 401 %s: %s\n", cli_clean(
		    cli_str(e, "code"), code, sizeof(code)), cli_clean(cli_str(
		    e, "message"), msg, sizeof(msg)));
	}
	if (st != 200)
		goto out;
	if (json_string_value(json_object_get(out, "token")) == NULL ||
	    (jwt = strdup(json_string_value(json_object_get(out, "token")))) ==
	    NULL) {
		fprintf(stderr, "moat login: the server's answer has no "
		    "token\n");
		goto out;
	}
	json_decref(out);
	out = NULL;

	/* Exchange the session for a named API token. */
	if (gethostname(host, sizeof(host)) != 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	for (unsigned attempt = 0; attempt < 4; attempt++) {
		cli_login_token_name(tname, host, time(NULL), attempt);
		body = json_pack("{s:s}", "name", tname);
		if (body != NULL && expires > 0)
			json_object_set_new(body, "expires_in",
			    json_integer(expires));
		if (body == NULL)
			goto out;
		st = login_call(&l, jwt, "POST", "/api/v1/tokens", body, &out,
		    attempt < 3 ? 409 : 0);
		json_decref(body);
		body = NULL;
		if (st != 409)
			break;
		json_decref(out);
		out = NULL;
	}
	if (st != 201)
		goto logout;
	if (json_string_value(json_object_get(out, "token")) == NULL ||
	    json_string_value(json_object_get(out, "id")) == NULL ||
	    (token = strdup(json_string_value(json_object_get(out, "token"))))
	    == NULL || (token_id = strdup(json_string_value(json_object_get(
	    out, "id")))) == NULL) {
		fprintf(stderr, "moat login: the server's answer has no "
		    "token\n");
		goto logout;
	}

	/* Remember it. */
	server = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "url", l.url,
	    "username", l.username, "token", token, "token_id", token_id,
	    "token_name", tname, "trust", l.trust_kind);
	if (server != NULL && l.ca_pem != NULL)
		json_object_set_new(server, "ca_pem", json_string(l.ca_pem));
	if (server != NULL && strcmp(l.trust_kind, "pin") == 0) {
		json_object_set_new(server, "fingerprint",
		    json_string(l.fingerprint));
		if (l.cert_pem != NULL)
			json_object_set_new(server, "cert_pem",
			    json_string(l.cert_pem));
	}
	if (server == NULL || cli_config_put(cfg, l.name, server) != 0 ||
	    cli_config_use(cfg, l.name) != 0 ||
	    cli_config_save(cfg, err, sizeof(err)) != 0) {
		server = NULL;
		fprintf(stderr, "moat login: %s; the new token is revoked\n",
		    err[0] ? err : "out of memory");
		revoke_quietly(l.url, &l.trust, token, token_id);
		goto logout;
	}
	server = NULL;
	/* The token this entry held before is of no more use. */
	if (old != NULL) {
		const char *otok = json_string_value(json_object_get(old,
		    "token"));
		const char *oid = json_string_value(json_object_get(old,
		    "token_id"));
		const char *ourl = json_string_value(json_object_get(old,
		    "url"));

		if (oid != NULL && strcmp(oid, token_id) != 0 && ourl != NULL &&
		    strcmp(ourl, l.url) == 0)
			revoke_quietly(l.url, &l.trust, otok, oid);
	}
	printf("Logged in to %s as %s (server %s; token %s stored in %s)\n",
	    l.url, l.username, l.name, tname, path);
	status = CLI_OK;
logout:
	json_decref(out);
	out = NULL;
	/* The session has served its purpose. */
	if (login_call(&l, jwt, "POST", "/api/v1/auth/logout", NULL, &out,
	    0) != 204 && status == CLI_OK)
		fprintf(stderr, "moat login: warning: the login session could "
		    "not be ended; it expires by itself\n");
out:
	json_decref(out);
	json_decref(body);
	json_decref(server);
	json_decref(old);
	cli_config_free(cfg);
	cli_wipe_free(password);
	cli_wipe_free(jwt);
	cli_wipe_free(token);
	free(token_id);
	free(l.ca_pem);
	free(l.cert_pem);
	cli_trust_clear(&l.trust);
	explicit_bzero(totp, sizeof(totp));
	return status;
}

int
cmd_logout(int argc, char **argv)
{
	struct cli_config *cfg = NULL;
	struct cli_conn *c = NULL;
	struct cli_reply rep = { 0 };
	const char *pos[1], *name;
	bool forget = false, revoked = false;
	char path[4096], err[1024], tpath[256];
	size_t npos;
	int r, status = CLI_FAILED;
	const struct cli_opt opts[] = {
		{ "--forget", NULL, CLI_OPT_FLAG, &forget },
	};

	if ((r = cli_parse("moat logout", argc, argv, opts, 1, pos, 0, 1,
	    &npos, cmd_logout_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_config_default_path(path, sizeof(path)) != 0) {
		fprintf(stderr, "moat logout: set HOME or XDG_CONFIG_HOME\n");
		return CLI_FAILED;
	}
	if (cli_config_load_for_update(path, true, &cfg, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "moat: %s\n", err);
		return CLI_FAILED;
	}
	name = npos > 0 ? pos[0] : getenv("MOAT_SERVER");
	if (name == NULL || name[0] == '\0')
		name = cli_config_current(cfg);
	if (name == NULL) {
		fprintf(stderr, "moat logout: not logged in\n");
		goto out;
	}
	if (cli_conn_from_server(name, cli_config_server(cfg, name), &c) != 0) {
		fprintf(stderr, "moat logout: no server called '%s'\n", name);
		goto out;
	}
	if (c->token_id != NULL && cli_path(tpath, sizeof(tpath),
	    "/api/v1/tokens/", c->token_id, NULL) == 0) {
		r = cli_http_request(c->url, &c->trust, c->token, "DELETE",
		    tpath, NULL, NULL, 0, &rep, err, sizeof(err));
		if (r != 0) {
			fprintf(stderr, "moat logout: %s\n", err);
		} else if (rep.status == 204 || rep.status == 401 ||
		    rep.status == 404) {
			/* Revoked now, or not valid any more anyway. */
			revoked = true;
		} else {
			cli_print_server_error(&rep);
		}
		cli_reply_free(&rep);
	}
	if (!revoked && !forget) {
		fprintf(stderr, "moat logout: the token was not revoked and is "
		    "kept; moat logout --forget %s removes it locally\n",
		    c->name);
		goto out;
	}
	if (cli_config_remove(cfg, c->name) != 0 ||
	    cli_config_save(cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "moat logout: %s\n", err);
		goto out;
	}
	printf("Logged out of %s (%s)%s\n", c->name, c->url, revoked ? "" :
	    "; the token could not be revoked: revoke it from another "
	    "session");
	status = revoked ? CLI_OK : CLI_FAILED;
out:
	cli_conn_free(c);
	cli_config_free(cfg);
	return status;
}

int
cmd_whoami(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	json_t *me = NULL;
	bool json = false;
	const char *pos[1];
	char a[128], b[256], d[128];
	size_t npos;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--json", NULL, CLI_OPT_FLAG, &json },
	};

	if ((r = cli_parse("moat whoami", argc, argv, opts, 1, pos, 0, 0,
	    &npos, cmd_whoami_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	if ((status = cli_api(c, "GET", "/api/v1/users/me", NULL, &me)) != 0)
		goto out;
	if (json) {
		cli_print_json(me);
	} else {
		printf("%s on %s (server %s)\n", cli_clean(json_string_value(
		    json_object_get(me, "username")), a, sizeof(a)), c->url,
		    c->name);
		printf("organization %s, roles %s\n", cli_clean(
		    json_string_value(json_object_get(me, "org")), d,
		    sizeof(d)), cli_join(json_object_get(me, "roles"), b,
		    sizeof(b)));
	}
out:
	json_decref(me);
	cli_conn_free(c);
	return status;
}

int
cmd_use(int argc, char **argv)
{
	static const char *const head[] = { "", "NAME", "URL", "USER",
	    "TRUST" };
	struct cli_config *cfg = NULL;
	struct cli_table *t = NULL;
	const char *pos[1], *cur, *name;
	char path[4096], err[1024];
	json_t *s;
	size_t npos;
	int r, status = CLI_FAILED;

	if ((r = cli_parse("moat use", argc, argv, NULL, 0, pos, 0, 1, &npos,
	    cmd_use_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (cli_config_default_path(path, sizeof(path)) != 0) {
		fprintf(stderr, "moat use: set HOME or XDG_CONFIG_HOME\n");
		return CLI_FAILED;
	}
	if (cli_config_load_for_update(path, true, &cfg, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, "moat: %s\n", err);
		return CLI_FAILED;
	}
	if (npos == 1) {
		if (cli_config_use(cfg, pos[0]) != 0) {
			fprintf(stderr, "moat use: no server called '%s' (moat "
			    "use lists them)\n", pos[0]);
			goto out;
		}
		if (cli_config_save(cfg, err, sizeof(err)) != 0) {
			fprintf(stderr, "moat use: %s\n", err);
			goto out;
		}
		printf("Now using %s\n", pos[0]);
		status = CLI_OK;
		goto out;
	}
	cur = cli_config_current(cfg);
	if ((t = cli_table_new(5, head)) == NULL)
		goto out;
	json_object_foreach(json_object_get(cfg->root, "servers"), name, s) {
		const char *row[5] = { cur != NULL && strcmp(cur, name) == 0 ?
		    "*" : "", name, json_string_value(json_object_get(s,
		    "url")), json_string_value(json_object_get(s, "username")),
		    json_string_value(json_object_get(s, "trust")) };

		if (cli_table_add(t, row) != 0)
			goto out;
	}
	cli_table_print(t, stdout);
	status = CLI_OK;
out:
	cli_table_free(t);
	cli_config_free(cfg);
	return status;
}
