/*
 * fuzz_proxy_request.c - libFuzzer target for moat-proxy's request side:
 * requests go through the HTTP core exactly as a socket's would
 * (http__parse_for_fuzz, http_int.h) to a "*" handler that runs the
 * proxy's own target parsing (proxy_parse_target: absolute form and
 * CONNECT authority), the Host agreement check, path normalization and
 * decide_before_dns() against a fixed policy, and checks invariants of what
 * it accepted. (Upstream responses have their own target,
 * fuzz_proxy_response.c.)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "http_int.h"
#include "log.h"
#include "policy.h"
#include "proxy.h"

static struct http_server *fz_srv;
static json_t *fz_pol;

static void
fz_check_host(const struct proxy_target *t)
{
	size_t n = strlen(t->host);
	char canon[PROXY_HOST_MAX];

	if (n == 0 || t->host[n - 1] == '.' || t->port == 0)
		abort();
	for (size_t i = 0; i < n; i++)
		if (t->host[i] >= 'A' && t->host[i] <= 'Z')
			abort();
	if (t->is_literal) {
		addr_format(&t->lit, canon, sizeof(canon));
		if (strcmp(canon, t->host) != 0)
			abort();
	}
	if (!t->connect && (t->path == NULL || t->path[0] != '/'))
		abort();
}

static void
fz_handler(struct http_request *req, void *arg)
{
	bool connect = strcmp(http_req_method(req), "CONNECT") == 0;
	struct proxy_target t;
	struct decide_req dr;
	struct decision d;
	const char *why = NULL, *host;
	char np[8192];
	int r, status = 400;

	(void)arg;
	r = proxy_parse_target(connect, http_req_target(req), &t, &why);
	if (r == 0) {
		fz_check_host(&t);
		host = http_req_header(req, "host");
		if (host != NULL && !connect &&
		    proxy_check_host_header(&t, host, &why) != 0 && why == NULL)
			abort();
		memset(&dr, 0, sizeof(dr));
		dr.host = t.host;
		dr.is_literal = t.is_literal;
		dr.lit = t.lit;
		dr.port = t.port;
		dr.connect = connect;
		if (!connect && decide_normalize_path(t.path, np, sizeof(np)) == 0)
			dr.url = np;	/* (not a full URL: exercises matching) */
		decide_before_dns(&fz_pol, 1, &dr, &d);
		status = d.verdict == DECIDE_DENY ? 403 : 200;
	} else if (why == NULL) {
		abort();
	}
	proxy_target_clear(&t);
	http_respond(req, status, "text/plain", "x", 1);
}

static void
fz_setup(void)
{
	json_t *doc;
	char path[128], err[256];

	log_set_level(LOG_ERROR);
	if (http_server_new(&fz_srv, NULL) != 0)
		abort();
	http_server_set_access_log(fz_srv, NULL);
	if (http_server_route(fz_srv, "*", "*", fz_handler, NULL) != 0)
		abort();
	doc = json_pack("{s:s,s:s,s:[{s:s},{s:s,s:[i]},{s:s}],s:[{s:s}]}",
	    "name", "fuzz", "mode", "enforce", "allow", "host", "*.example.com",
	    "cidr", "127.0.0.2/32", "ports", 8080, "url",
	    "http://mirror.example.net/debian/", "deny", "host", "evil.example.com");
	if (doc == NULL || policy_normalize(doc, &fz_pol, path, sizeof(path),
	    err, sizeof(err)) != 0)
		abort();
	json_decref(doc);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fz_setup();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fz_srv == NULL)
		fz_setup();
	(void)http__parse_for_fuzz(fz_srv, data, size, 0);
	(void)http__parse_for_fuzz(fz_srv, data, size, 5);
	return 0;
}
