/*
 * decide.h - the egress decision: may this request leave, by which rule.
 *
 * Policies are normalized documents from src/lib/policy.h. A workspace's
 * effective policy is a list of policies that must all allow (the
 * organization's and the template's, DESIGN.md section 5a); in standalone
 * mode the list has one. Within one policy deny wins, and nothing is allowed
 * that no rule allows. A policy in "monitor" mode records what it would
 * deny and lets the request through.
 *
 * Two steps, so that a name no rule could allow is refused before any DNS
 * lookup (a lookup can itself carry data out):
 *   1. decide_before_dns(): on the requested name (or literal) and port.
 *      DECIDE_DENY ends it; DECIDE_ALLOW (only possible for a literal)
 *      means connect to it; DECIDE_RESOLVE means look the name up and call:
 *   2. decide_after_dns(): on each resolved address; the first address that
 *      passes is the one to connect to (never resolve twice).
 * A host rule allows the name, but its address must still pass the
 * special-purpose check unless a cidr rule of the same policy covers it; a
 * cidr rule allows addresses in its range (names resolving there included)
 * and exempts that range from the check; url rules apply to plain-HTTP
 * requests and match the normalized path by prefix.
 */
#ifndef MOAT_PROXY_DECIDE_H
#define MOAT_PROXY_DECIDE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "addr.h"

enum decide_verdict { DECIDE_DENY = 0, DECIDE_ALLOW, DECIDE_RESOLVE };

struct decide_req {
	const char *host;	/* lower-case, no trailing dot, no brackets */
	bool is_literal;	/* host is an IP literal, parsed into lit */
	struct addr lit;
	uint16_t port;
	bool connect;		/* CONNECT tunnel (default ports [443]) or plain HTTP ([80]) */
	const char *url;	/* plain HTTP: normalized "http://host[:port]/path", else NULL */
};

struct decision {
	enum decide_verdict verdict;
	bool monitored;		/* a monitor-mode policy would have denied */
	char policy[64];	/* the policy that decided (denied, or last allowed) */
	char rule[160];		/* "allow[2] host *.example.com", "default deny" */
	char reason[160];	/* English, one line, for the 403 body and audit */
};

/* policies: borrowed array of n normalized policy documents. */
void decide_before_dns(json_t *const *policies, size_t n,
    const struct decide_req *req, struct decision *d);
void decide_after_dns(json_t *const *policies, size_t n,
    const struct decide_req *req, const struct addr *resolved,
    struct decision *d);

/* Normalizes an absolute-form target path for url rules: resolves dot
 * segments, refuses (MOAT_ERR_PARSE) encoded dots, slashes and backslashes
 * and anything ambiguous. out: caller's buffer. */
int decide_normalize_path(const char *path, char *out, size_t outlen)
    MOAT_MUST_CHECK;

#endif
