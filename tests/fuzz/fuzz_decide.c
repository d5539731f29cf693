/*
 * fuzz_decide.c - libFuzzer target for the egress decision and URL path
 * normalization (src/proxy/decide.c). Input: a policy document (JSON) on
 * the first line, then lines: host, port, "C" (CONNECT) or "H" (plain
 * HTTP), request path, resolved address. Invariants: only a literal is
 * allowed before DNS and a literal is never sent to DNS; a monitored
 * decision is never a denial; decision texts are terminated; path
 * normalization is idempotent and its output starts with '/'.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Splits the next '\n'-terminated field off *p (in place). */
static char *
field(char **p)
{
	char *s = *p, *nl;

	if (s == NULL)
		return NULL;
	nl = strchr(s, '\n');
	if (nl != NULL) {
		*nl = '\0';
		*p = nl + 1;
	} else {
		*p = NULL;
	}
	return s;
}

static void
check_texts(const struct decision *d)
{
	if (memchr(d->policy, '\0', sizeof(d->policy)) == NULL ||
	    memchr(d->rule, '\0', sizeof(d->rule)) == NULL ||
	    memchr(d->reason, '\0', sizeof(d->reason)) == NULL)
		abort();
	if (d->monitored && d->verdict == DECIDE_DENY)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf, *p, *ptext, *host, *port, *kind, *path, *res;
	char norm[1024], again[1024], url[2048], *end;
	json_t *doc = NULL, *pol = NULL;
	struct decide_req req;
	struct decision d;
	struct addr ra;
	char epath[256], err[256];
	unsigned long pn;

	if (size > 16384)
		return 0;
	if ((buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	p = buf;
	ptext = field(&p);
	host = field(&p);
	port = field(&p);
	kind = field(&p);
	path = field(&p);
	res = field(&p);

	if (path != NULL && decide_normalize_path(path, norm, sizeof(norm)) ==
	    0) {
		if (norm[0] != '/')
			abort();
		if (decide_normalize_path(norm, again, sizeof(again)) != 0 ||
		    strcmp(norm, again) != 0)
			abort();
	} else {
		memcpy(norm, "/", 2);
	}
	if (host == NULL || port == NULL || kind == NULL)
		goto out;
	doc = json_loads(ptext, 0, NULL);
	if (doc == NULL || policy_normalize(doc, &pol, epath, sizeof(epath),
	    err, sizeof(err)) != 0)
		goto out;
	pn = strtoul(port, &end, 10);
	if (*end != '\0' || pn == 0 || pn > 65535)
		goto out;
	memset(&req, 0, sizeof(req));
	req.host = host;
	req.port = (uint16_t)pn;
	req.connect = kind[0] == 'C';
	switch (addr_parse_host(host, &req.lit)) {
	case 0:
		req.is_literal = true;
		break;
	case MOAT_ERR_NOTFOUND:
		break;
	default:
		goto out;
	}
	if (!req.connect) {
		if (pn == 80)
			snprintf(url, sizeof(url), "http://%s%s", host, norm);
		else
			snprintf(url, sizeof(url), "http://%s:%lu%s", host, pn,
			    norm);
		req.url = url;
	}
	decide_before_dns(&pol, 1, &req, &d);
	check_texts(&d);
	if (req.is_literal && d.verdict == DECIDE_RESOLVE)
		abort();
	if (!req.is_literal && d.verdict == DECIDE_ALLOW)
		abort();
	if (d.verdict == DECIDE_RESOLVE && res != NULL &&
	    addr_parse_host(res, &ra) == 0) {
		decide_after_dns(&pol, 1, &req, &ra, &d);
		check_texts(&d);
		if (d.verdict == DECIDE_RESOLVE)
			abort();
	}
out:
	json_decref(pol);
	json_decref(doc);
	free(buf);
	return 0;
}
