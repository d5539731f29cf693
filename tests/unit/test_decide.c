/*
 * test_decide.c - unit tests for src/proxy/decide.c: a table of requests
 * over several normalized policies (apex vs wildcard, default ports for
 * CONNECT and plain HTTP, deny wins, two policies that must both allow,
 * monitor mode, literals in many spellings, special-purpose addresses
 * behind allowed names, cidr exemptions, url prefix rules after path
 * normalization), and a table for decide_normalize_path.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "decide.h"
#include "policy.h"

static const char org_json[] =
    "{\"name\": \"org\", \"allow\": ["
    "{\"host\": \"*.example.com\"},"				/* 0 */
    "{\"host\": \"git.example.org\", \"ports\": [443, 8443]},"	/* 1 */
    "{\"host\": \"api.example.net\"},"				/* 2 */
    "{\"cidr\": \"127.0.0.2/32\", \"ports\": [80, 443]},"	/* 3 */
    "{\"url\": \"http://mirror.example.net/debian/\"},"		/* 4 */
    "{\"host\": \"internal.example.org\"},"			/* 5 */
    "{\"host\": \"lab.example.org\"},"				/* 6 */
    "{\"cidr\": \"10.20.0.0/16\", \"ports\": [22]},"		/* 7 */
    "{\"host\": \"EXAMPLE.com.\"},"				/* 8 */
    "{\"cidr\": \"203.0.113.0/24\"},"				/* 9 */
    "{\"url\": \"http://files.example.net:8080/pub\"}"		/* 10 */
    "], \"deny\": ["
    "{\"host\": \"paste.example.com\"},"			/* 0 */
    "{\"host\": \"www.example.com\", \"ports\": [80]},"		/* 1 */
    "{\"cidr\": \"1.2.3.0/24\"},"				/* 2 */
    "{\"url\": \"http://mirror.example.net/debian/private/\"}"	/* 3 */
    "]}";

/* A template policy: narrows the organization's. */
static const char tpl_json[] =
    "{\"name\": \"tpl\", \"mode\": \"enforce\", \"allow\": ["
    "{\"host\": \"*.example.com\"},"
    "{\"host\": \"git.example.org\", \"ports\": [443]},"
    "{\"cidr\": \"127.0.0.2/32\", \"ports\": [80, 443]},"
    "{\"url\": \"http://mirror.example.net/debian/\"}"
    "], \"deny\": [{\"host\": \"evil.example.com\"}]}";

/* No cidr rule at all. */
static const char strict_json[] =
    "{\"name\": \"strict\", \"allow\": ["
    "{\"host\": \"*.example.com\"},"
    "{\"url\": \"http://mirror.example.net/debian/\"}]}";

static const char mon_json[] =
    "{\"name\": \"mon\", \"mode\": \"monitor\", \"allow\": ["
    "{\"host\": \"ok.example.com\"}]}";

enum { ORG, ORG_TPL, MON, ORG_MON, STRICT, NSETS };

#define REFUSED (-1)	/* the path normalization refuses the request */
#define NONE (-2)	/* no second step */

struct row {
	int set;
	const char *host;
	bool connect;
	uint16_t port;
	const char *path;	/* plain HTTP: the request path */
	const char *resolved;	/* the address DNS gave, for step 2 */
	int before;		/* verdict of decide_before_dns */
	int after;		/* verdict of decide_after_dns, or NONE */
	bool monitored;
	const char *rule;	/* substring of the final decision's rule */
	const char *policy;	/* the policy named, or NULL */
};

#define C true
#define H false
#define D DECIDE_DENY
#define A DECIDE_ALLOW
#define R DECIDE_RESOLVE
#define PUB "93.184.216.34"

static const struct row rows[] = {
	/* apex vs wildcard, ports */
	{ ORG, "a.example.com", C, 443, NULL, PUB, R, A, false,
	    "allow[0] host *.example.com", "org" },
	{ ORG, "a.b.example.com", C, 443, NULL, PUB, R, A, false,
	    "allow[0]", NULL },
	{ ORG, "example.com", C, 443, NULL, PUB, R, A, false,
	    "allow[8] host example.com", NULL },
	/* cidr[3] and cidr[9] allow port 443: any name could resolve there */
	{ ORG, "xexample.com", C, 443, NULL, PUB, R, D, false,
	    "default deny", "org" },
	{ ORG, "example.com.evil.net", C, 443, NULL, PUB, R, D, false,
	    "default deny", NULL },
	{ ORG, "a.example.com", C, 8443, NULL, NULL, D, NONE, false,
	    "default deny", NULL },
	{ ORG, "a.example.com", H, 80, "/", PUB, R, A, false, "allow[0]",
	    NULL },
	/* plain HTTP to 443: no host rule, but cidr[3] lists 443 */
	{ ORG, "a.example.com", H, 443, "/", PUB, R, D, false,
	    "default deny", NULL },
	{ ORG, "git.example.org", C, 8443, NULL, PUB, R, A, false,
	    "allow[1] host git.example.org", NULL },
	{ ORG, "git.example.org", C, 443, NULL, PUB, R, A, false, "allow[1]",
	    NULL },
	{ ORG, "git.example.org", C, 22, NULL, PUB, R, D, false,
	    "default deny", NULL },
	{ ORG, "git.example.org", H, 80, "/", PUB, R, D, false,
	    "default deny", NULL },
	{ ORG, "git.example.org", C, 9999, NULL, NULL, D, NONE, false,
	    "default deny", NULL },
	{ ORG, "api.example.net", C, 443, NULL, PUB, R, A, false,
	    "allow[2]", NULL },
	{ ORG, "x.api.example.net", C, 443, NULL, PUB, R, D, false,
	    "default deny", NULL },
	/* deny wins */
	{ ORG, "paste.example.com", C, 443, NULL, NULL, D, NONE, false,
	    "deny[0] host paste.example.com", "org" },
	{ ORG, "paste.example.com", H, 80, "/", NULL, D, NONE, false,
	    "deny[0]", NULL },
	{ ORG, "paste.example.com", C, 22, NULL, NULL, D, NONE, false,
	    "deny[0]", NULL },
	{ ORG, "www.example.com", H, 80, "/", NULL, D, NONE, false,
	    "deny[1] host www.example.com", NULL },
	{ ORG, "www.example.com", C, 443, NULL, PUB, R, A, false, "allow[0]",
	    NULL },
	{ ORG, "a.example.com", C, 443, NULL, "1.2.3.4", R, D, false,
	    "deny[2] cidr 1.2.3.0/24", NULL },
	/* resolved addresses: special-purpose unless a cidr rule covers */
	{ ORG, "a.example.com", C, 443, NULL, "127.0.0.1", R, D, false,
	    "special-purpose address loopback", "org" },
	{ ORG, "a.example.com", C, 443, NULL, "127.0.0.2", R, A, false,
	    "allow[3] cidr 127.0.0.2/32", NULL },
	{ ORG, "a.example.com", C, 443, NULL, "169.254.169.254", R, D, false,
	    "cloud metadata", NULL },
	{ ORG, "a.example.com", C, 443, NULL, "10.0.0.5", R, D, false,
	    "private", NULL },
	{ ORG, "a.example.com", C, 443, NULL, "100.64.1.1", R, D, false,
	    "CGNAT", NULL },
	{ ORG, "a.example.com", C, 443, NULL, "::ffff:127.0.0.1", R, D,
	    false, "loopback", NULL },
	{ ORG, "a.example.com", C, 443, NULL, "::ffff:127.0.0.2", R, A,
	    false, "allow[3] cidr", NULL },
	{ ORG, "a.example.com", C, 443, NULL, "64:ff9b::7f00:1", R, D, false,
	    "special-purpose", NULL },
	{ ORG, "a.example.com", C, 443, NULL, "2002:7f00:1::1", R, D, false,
	    "special-purpose", NULL },
	{ ORG, "a.example.com", C, 443, NULL, "fd00:ec2::254", R, D, false,
	    "cloud metadata", NULL },
	{ ORG, "a.example.com", C, 443, NULL, "::1", R, D, false,
	    "loopback", NULL },
	{ ORG, "a.example.com", C, 443, NULL, "2606:4700::1111", R, A, false,
	    "allow[0]", NULL },
	{ ORG, "internal.example.org", C, 443, NULL, "10.1.2.3", R, D, false,
	    "private 10.0.0.0/8", NULL },
	/* a cidr rule exempts its range whatever its ports */
	{ ORG, "lab.example.org", C, 443, NULL, "10.20.1.1", R, A, false,
	    "allow[6] host lab.example.org", NULL },
	{ ORG, "lab.example.org", C, 22, NULL, "10.20.1.1", R, A, false,
	    "allow[7] cidr 10.20.0.0/16", NULL },
	{ ORG, "lab.example.org", C, 443, NULL, "10.21.1.1", R, D, false,
	    "special-purpose", NULL },
	{ ORG, "unknown.example.org", C, 22, NULL, "10.20.9.9", R, A, false,
	    "allow[7] cidr", NULL },
	{ ORG, "unknown.example.org", C, 22, NULL, PUB, R, D, false,
	    "default deny", NULL },
	/* literals: decided before DNS, host rules never match them */
	{ ORG, "127.0.0.1", C, 443, NULL, NULL, D, NONE, false,
	    "special-purpose address loopback", "org" },
	{ ORG, "127.1", C, 443, NULL, NULL, D, NONE, false, "loopback", NULL },
	{ ORG, "2130706433", C, 443, NULL, NULL, D, NONE, false, "loopback",
	    NULL },
	{ ORG, "0x7f000001", C, 443, NULL, NULL, D, NONE, false, "loopback",
	    NULL },
	{ ORG, "0177.0.0.1", C, 443, NULL, NULL, D, NONE, false, "loopback",
	    NULL },
	{ ORG, "127.0.0.1.", C, 443, NULL, NULL, D, NONE, false, "loopback",
	    NULL },
	{ ORG, "[::1]", C, 443, NULL, NULL, D, NONE, false, "loopback", NULL },
	{ ORG, "[::ffff:127.0.0.1]", C, 443, NULL, NULL, D, NONE, false,
	    "loopback", NULL },
	{ ORG, "[64:ff9b::a9fe:a9fe]", C, 443, NULL, NULL, D, NONE, false,
	    "cloud metadata", NULL },
	{ ORG, "169.254.169.254", H, 80, "/latest/meta-data/", NULL, D, NONE,
	    false, "cloud metadata", NULL },
	{ ORG, "0xa9fea9fe", H, 80, "/", NULL, D, NONE, false,
	    "cloud metadata", NULL },
	{ ORG, "169.254.43518", H, 80, "/", NULL, D, NONE, false,
	    "cloud metadata", NULL },
	{ ORG, "[fd00:ec2::254]", H, 80, "/", NULL, D, NONE, false,
	    "cloud metadata", NULL },
	{ ORG, "10.0.0.1", C, 443, NULL, NULL, D, NONE, false, "private",
	    NULL },
	{ ORG, "192.168.1.1", C, 443, NULL, NULL, D, NONE, false, "private",
	    NULL },
	{ ORG, "127.0.0.2", C, 443, NULL, NULL, A, NONE, false,
	    "allow[3] cidr 127.0.0.2/32", "org" },
	{ ORG, "127.0.0.2", H, 80, "/", NULL, A, NONE, false, "allow[3]",
	    NULL },
	{ ORG, "0x7f000002", H, 80, "/", NULL, A, NONE, false, "allow[3]",
	    NULL },
	{ ORG, "127.0.0.2", C, 8443, NULL, NULL, D, NONE, false,
	    "special-purpose", NULL },
	{ ORG, "[::ffff:127.0.0.2]", C, 443, NULL, NULL, A, NONE, false,
	    "allow[3]", NULL },
	{ ORG, "203.0.113.5", C, 443, NULL, NULL, A, NONE, false,
	    "allow[9] cidr 203.0.113.0/24", NULL },
	{ ORG, "8.8.8.8", C, 443, NULL, NULL, D, NONE, false, "default deny",
	    NULL },
	{ ORG, "1.2.3.4", C, 443, NULL, NULL, D, NONE, false,
	    "deny[2] cidr", NULL },
	/* url rules: plain HTTP only, on the normalized path */
	{ ORG, "mirror.example.net", H, 80, "/debian/pool/x.deb", PUB, R, A,
	    false, "allow[4] url http://mirror.example.net/debian/", NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian/./pool/", PUB, R, A,
	    false, "allow[4]", NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian/%7Euser/?q=1", PUB, R,
	    A, false, "allow[4]", NULL },
	{ ORG, "mirror.example.net", H, 80, "/pool/../debian/x", PUB, R, A,
	    false, "allow[4]", NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian/../etc/passwd", PUB, R,
	    D, false, "default deny", NULL },
	{ ORG, "mirror.example.net", H, 80, "/debianx/", PUB, R, D, false,
	    "default deny", NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian/%2e%2e/secret", NULL,
	    REFUSED, NONE, false, NULL, NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian/%2E%2e/secret", NULL,
	    REFUSED, NONE, false, NULL, NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian/..%2fsecret", NULL,
	    REFUSED, NONE, false, NULL, NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian/..%5Csecret", NULL,
	    REFUSED, NONE, false, NULL, NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian\\..\\secret", NULL,
	    REFUSED, NONE, false, NULL, NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian/..;/secret", NULL,
	    REFUSED, NONE, false, NULL, NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian//../secret", NULL,
	    REFUSED, NONE, false, NULL, NULL },
	{ ORG, "mirror.example.net", H, 80, "/../debian/", NULL, REFUSED,
	    NONE, false, NULL, NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian/private/key", NULL, D,
	    NONE, false, "deny[3] url", NULL },
	{ ORG, "mirror.example.net", H, 80, "/debian/x/../private/key", NULL,
	    D, NONE, false, "deny[3] url", NULL },
	{ ORG, "mirror.example.net", C, 443, NULL, PUB, R, D, false,
	    "default deny", NULL },
	{ ORG, "files.example.net", H, 8080, "/pub/a", PUB, R, A, false,
	    "allow[10] url", NULL },
	{ ORG, "files.example.net", H, 8080, "/pub", PUB, R, A, false,
	    "allow[10] url", NULL },
	{ ORG, "files.example.net", H, 8080, "/public", NULL, D, NONE, false,
	    "default deny", NULL },
	{ ORG, "files.example.net", H, 80, "/pub/a", PUB, R, D, false,
	    "default deny", NULL },
	/* two policies: the template narrows the organization's */
	{ ORG_TPL, "a.example.com", C, 443, NULL, PUB, R, A, false,
	    "allow[0]", "tpl" },
	{ ORG_TPL, "git.example.org", C, 8443, NULL, NULL, D, NONE, false,
	    "default deny", "tpl" },
	{ ORG_TPL, "api.example.net", C, 443, NULL, PUB, R, D, false,
	    "default deny", "tpl" },
	{ ORG_TPL, "evil.example.com", C, 443, NULL, NULL, D, NONE, false,
	    "deny[0] host evil.example.com", "tpl" },
	{ ORG_TPL, "paste.example.com", C, 443, NULL, NULL, D, NONE, false,
	    "deny[0] host paste.example.com", "org" },
	{ ORG_TPL, "127.0.0.2", C, 443, NULL, NULL, A, NONE, false,
	    "allow[2] cidr", "tpl" },
	{ ORG_TPL, "203.0.113.5", C, 443, NULL, NULL, D, NONE, false,
	    "special-purpose", "tpl" },
	{ ORG_TPL, "a.example.com", C, 443, NULL, "203.0.113.7", R, D, false,
	    "special-purpose address documentation", "tpl" },
	{ ORG_TPL, "mirror.example.net", H, 80, "/debian/x", PUB, R, A, false,
	    "allow[3] url", "tpl" },
	/* monitor mode: allowed, and recorded as what enforce would deny */
	{ MON, "ok.example.com", C, 443, NULL, PUB, R, A, false, "allow[0]",
	    "mon" },
	{ MON, "bad.example.com", C, 443, NULL, PUB, R, A, true,
	    "default deny", "mon" },
	{ MON, "bad.example.com", C, 443, NULL, NULL, R, NONE, true,
	    "default deny", "mon" },
	{ MON, "127.0.0.1", C, 443, NULL, NULL, A, NONE, true,
	    "special-purpose address loopback", "mon" },
	{ MON, "ok.example.com", C, 443, NULL, "127.0.0.1", R, A, true,
	    "special-purpose", "mon" },
	{ ORG_MON, "a.example.com", C, 443, NULL, PUB, R, A, true,
	    "default deny", "mon" },
	{ ORG_MON, "ok.example.com", C, 443, NULL, PUB, R, A, false,
	    "allow[0]", "mon" },
	{ ORG_MON, "paste.example.com", C, 443, NULL, NULL, D, NONE, false,
	    "deny[0]", "org" },
	{ ORG_MON, "ok.example.com", C, 443, NULL, "127.0.0.1", R, D, false,
	    "special-purpose", "org" },
	{ ORG_MON, "zzz.example.org", C, 8443, NULL, NULL, D, NONE, false,
	    "default deny", "org" },
	/* no cidr rule: names no rule could allow are refused before DNS */
	{ STRICT, "xexample.com", C, 443, NULL, NULL, D, NONE, false,
	    "default deny", "strict" },
	{ STRICT, "example.com", C, 443, NULL, NULL, D, NONE, false,
	    "default deny", "strict" },
	{ STRICT, "a.example.com", H, 8080, "/", NULL, D, NONE, false,
	    "default deny", "strict" },
	{ STRICT, "a.example.com", C, 443, NULL, "127.0.0.1", R, D, false,
	    "special-purpose address loopback", "strict" },
	{ STRICT, "a.example.com", C, 443, NULL, "198.18.0.1", R, D, false,
	    "benchmarking", "strict" },
	{ STRICT, "a.example.com", C, 443, NULL, "2001:db8::1", R, D, false,
	    "documentation", "strict" },
	{ STRICT, "deep.a.example.com", C, 443, NULL, PUB, R, A, false,
	    "allow[0] host *.example.com", "strict" },
	{ STRICT, "mirror.example.net", H, 80, "/debian/", PUB, R, A, false,
	    "allow[1] url", "strict" },
	{ STRICT, "mirror.example.net", H, 80, "/ubuntu/", NULL, D, NONE,
	    false, "default deny", "strict" },
	{ STRICT, "127.0.0.1", C, 443, NULL, NULL, D, NONE, false,
	    "loopback", "strict" },
	{ STRICT, "8.8.8.8", C, 443, NULL, NULL, D, NONE, false,
	    "default deny", "strict" },
};

struct fixture {
	json_t *org, *tpl, *mon, *strict;
	json_t *sets[NSETS][2];
	size_t nsets[NSETS];
};

static json_t *
load_policy(const char *text)
{
	json_error_t je;
	json_t *doc = json_loads(text, 0, &je), *out = NULL;
	char path[128], err[256];

	if (doc == NULL)
		fail_msg("bad test JSON: %s", je.text);
	if (policy_normalize(doc, &out, path, sizeof(path), err,
	    sizeof(err)) != 0)
		fail_msg("policy refused at %s: %s", path, err);
	json_decref(doc);
	return out;
}

static int
setup(void **state)
{
	static struct fixture f;

	f.org = load_policy(org_json);
	f.tpl = load_policy(tpl_json);
	f.mon = load_policy(mon_json);
	f.strict = load_policy(strict_json);
	f.sets[STRICT][0] = f.strict;
	f.nsets[STRICT] = 1;
	f.sets[ORG][0] = f.org;
	f.nsets[ORG] = 1;
	f.sets[ORG_TPL][0] = f.org;
	f.sets[ORG_TPL][1] = f.tpl;
	f.nsets[ORG_TPL] = 2;
	f.sets[MON][0] = f.mon;
	f.nsets[MON] = 1;
	f.sets[ORG_MON][0] = f.org;
	f.sets[ORG_MON][1] = f.mon;
	f.nsets[ORG_MON] = 2;
	*state = &f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	json_decref(f->org);
	json_decref(f->tpl);
	json_decref(f->mon);
	json_decref(f->strict);
	return 0;
}

/* The host as the proxy hands it to decide: lower-case, brackets and a
 * trailing dot gone; literals parsed. */
static void
make_req(const struct row *w, struct decide_req *req, char *host,
    size_t hostlen, char *url, size_t urllen, int *norm)
{
	char path[512];
	size_t n;

	memset(req, 0, sizeof(*req));
	*norm = 0;
	n = strlen(w->host);
	if (w->host[0] == '[') {
		snprintf(host, hostlen, "%.*s", (int)(n - 2), w->host + 1);
	} else {
		snprintf(host, hostlen, "%s", w->host);
		if (n > 0 && host[n - 1] == '.')
			host[n - 1] = '\0';
	}
	req->host = host;
	req->is_literal = addr_parse_host(w->host, &req->lit) == 0;
	req->port = w->port;
	req->connect = w->connect;
	if (!w->connect) {
		*norm = decide_normalize_path(w->path, path, sizeof(path));
		if (*norm != 0)
			return;
		if (w->port == 80)
			snprintf(url, urllen, "http://%s%s", host, path);
		else
			snprintf(url, urllen, "http://%s:%u%s", host,
			    (unsigned)w->port, path);
		req->url = url;
	}
}

static void
test_table(void **state)
{
	struct fixture *f = *state;
	size_t i, count = sizeof(rows) / sizeof(rows[0]);

	assert_true(count >= 60);
	for (i = 0; i < count; i++) {
		const struct row *w = &rows[i];
		struct decide_req req;
		struct decision d;
		struct addr res;
		char host[256], url[1024];
		int norm;

		make_req(w, &req, host, sizeof(host), url, sizeof(url), &norm);
		if (w->before == REFUSED) {
			if (norm != MOAT_ERR_PARSE)
				fail_msg("row %zu %s%s: path accepted", i,
				    w->host, w->path);
			continue;
		}
		if (norm != 0)
			fail_msg("row %zu %s%s: path refused", i, w->host,
			    w->path);
		decide_before_dns(f->sets[w->set], f->nsets[w->set], &req, &d);
		if ((int)d.verdict != w->before)
			fail_msg("row %zu %s:%u: before %d, want %d (%s: %s)", i,
			    w->host, w->port, d.verdict, w->before, d.rule,
			    d.reason);
		if (w->after != NONE) {
			assert_int_equal(d.verdict, DECIDE_RESOLVE);
			if (addr_parse_host(w->resolved, &res) != 0)
				fail_msg("row %zu: bad address", i);
			decide_after_dns(f->sets[w->set], f->nsets[w->set],
			    &req, &res, &d);
			if ((int)d.verdict != w->after)
				fail_msg("row %zu %s:%u -> %s: after %d, want "
				    "%d (%s: %s)", i, w->host, w->port,
				    w->resolved, d.verdict, w->after, d.rule,
				    d.reason);
		}
		if (d.monitored != w->monitored)
			fail_msg("row %zu %s: monitored %d (%s)", i, w->host,
			    d.monitored, d.reason);
		if (w->rule != NULL && strstr(d.rule, w->rule) == NULL)
			fail_msg("row %zu %s: rule \"%s\", want \"%s\"", i,
			    w->host, d.rule, w->rule);
		if (w->policy != NULL && strcmp(d.policy, w->policy) != 0)
			fail_msg("row %zu %s: policy %s, want %s", i, w->host,
			    d.policy, w->policy);
		if (d.verdict == DECIDE_DENY || d.monitored) {
			/* the 403 line names the host and the policy */
			if (strstr(d.reason, req.is_literal ? "" : host) ==
			    NULL || strstr(d.reason, d.policy) == NULL)
				fail_msg("row %zu: reason \"%s\"", i, d.reason);
		}
	}
}

static void
test_no_policy(void **state)
{
	struct decide_req req;
	struct decision d;
	struct addr a;

	(void)state;
	memset(&req, 0, sizeof(req));
	req.host = "a.example.com";
	req.port = 443;
	req.connect = true;
	decide_before_dns(NULL, 0, &req, &d);
	assert_int_equal(d.verdict, DECIDE_DENY);
	assert_int_equal(addr_parse_host("1.1.1.1", &a), 0);
	decide_after_dns(NULL, 0, &req, &a, &d);
	assert_int_equal(d.verdict, DECIDE_DENY);
}

/* A policy with no allow rules (what moatd init creates) lets nothing out,
 * and refuses every name before DNS. */
static void
test_empty_policy(void **state)
{
	json_t *p = load_policy("{\"name\": \"default\"}");
	struct decide_req req;
	struct decision d;

	(void)state;
	memset(&req, 0, sizeof(req));
	req.host = "example.com";
	req.port = 443;
	req.connect = true;
	decide_before_dns(&p, 1, &req, &d);
	assert_int_equal(d.verdict, DECIDE_DENY);
	assert_string_equal(d.policy, "default");
	assert_string_equal(d.rule, "default deny");
	assert_non_null(strstr(d.reason, "example.com:443"));
	json_decref(p);
}

struct norm {
	const char *in;
	int r;
	const char *out;
};

static const struct norm norms[] = {
	{ "/", 0, "/" },
	{ "", 0, "/" },
	{ "/a/b", 0, "/a/b" },
	{ "/a/./b", 0, "/a/b" },
	{ "/a/b/..", 0, "/a/" },
	{ "/a/b/.", 0, "/a/b/" },
	{ "/a/../b", 0, "/b" },
	{ "/a/b?x=../..", 0, "/a/b" },
	{ "/a?", 0, "/a" },
	{ "?q", 0, "/" },
	{ "/a//b", MOAT_ERR_PARSE, NULL },	/* empty segment: ambiguous */
	{ "/a//b/..", MOAT_ERR_PARSE, NULL },
	{ "/%7e%41%2d", 0, "/~A-" },
	{ "/%7Efoo", 0, "/~foo" },
	{ "/a%20b", 0, "/a%20b" },
	{ "/a b", 0, "/a%20b" },
	{ "/%c3%a9", 0, "/%C3%A9" },
	{ "/\xc3\xa9", 0, "/%C3%A9" },
	{ "/a%3bb", 0, "/a%3Bb" },
	{ "/a;b/c", 0, "/a;b/c" },
	{ "/.a/..b/...", 0, "/.a/..b/..." },
	{ "/%2e", MOAT_ERR_PARSE, NULL },
	{ "/%2E%2E/x", MOAT_ERR_PARSE, NULL },
	{ "/a%2fb", MOAT_ERR_PARSE, NULL },
	{ "/a%2Fb", MOAT_ERR_PARSE, NULL },
	{ "/a%5cb", MOAT_ERR_PARSE, NULL },
	{ "/a\\b", MOAT_ERR_PARSE, NULL },
	{ "/a%00b", MOAT_ERR_PARSE, NULL },
	{ "/a%0ab", MOAT_ERR_PARSE, NULL },
	{ "/a\tb", MOAT_ERR_PARSE, NULL },
	{ "/a%7f", MOAT_ERR_PARSE, NULL },
	{ "/a%", MOAT_ERR_PARSE, NULL },
	{ "/a%4", MOAT_ERR_PARSE, NULL },
	{ "/a%zz", MOAT_ERR_PARSE, NULL },
	{ "/a#b", MOAT_ERR_PARSE, NULL },
	{ "/..", MOAT_ERR_PARSE, NULL },
	{ "/a/../..", MOAT_ERR_PARSE, NULL },
	{ "/a/..;x/b", MOAT_ERR_PARSE, NULL },
	{ "/a/.;x/b", MOAT_ERR_PARSE, NULL },
	{ "/a//../b", MOAT_ERR_PARSE, NULL },
	{ "a/b", MOAT_ERR_PARSE, NULL },
	{ "*", MOAT_ERR_PARSE, NULL },
};

static void
test_normalize_path(void **state)
{
	char out[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(norms) / sizeof(norms[0]); i++) {
		int r = decide_normalize_path(norms[i].in, out, sizeof(out));

		if (r != norms[i].r)
			fail_msg("%s: got %d, want %d", norms[i].in, r,
			    norms[i].r);
		if (r == 0 && strcmp(out, norms[i].out) != 0)
			fail_msg("%s: got %s, want %s", norms[i].in, out,
			    norms[i].out);
	}
	assert_int_equal(decide_normalize_path("/0123456789/0123456789/"
	    "0123456789/0123456789/0123456789/0123456789/0123456789", out,
	    sizeof(out)), MOAT_ERR_TOOBIG);
	assert_int_equal(decide_normalize_path("/\xff\xff\xff\xff\xff\xff"
	    "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
	    out, sizeof(out)), MOAT_ERR_TOOBIG);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_no_policy),
		cmocka_unit_test(test_empty_policy),
		cmocka_unit_test(test_normalize_path),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
