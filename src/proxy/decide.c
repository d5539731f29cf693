/*
 * decide.c - the egress decision over normalized policies (contract in
 * decide.h; policy semantics in DESIGN.md section 5a).
 *
 * Within one policy, rules are looked at in this order:
 *   1. deny rules. A deny host rule matches the name (never a literal) on
 *      any port unless it lists ports; a deny url rule matches a plain-HTTP
 *      URL by prefix; a deny cidr rule matches a resolved address (or a
 *      literal) in its range, on any port unless it lists ports.
 *   2. allow cidr rules covering the address on one of their ports.
 *   3. allow host or url rules matching the name (and port); the address
 *      must then not be special-purpose (addr.h) unless some allow cidr
 *      rule of the same policy covers it, on whatever port (a cidr rule
 *      exempts its range from the special-purpose check).
 *   4. otherwise default deny.
 * Allow rules without "ports" allow [443] for CONNECT and [80] for plain
 * HTTP. Host rules: "example.com" is the apex alone, "*.example.com" any
 * name below it at any depth but not the apex; compared case-insensitively.
 *
 * Before DNS, a name passes a policy when no deny rule names it and some
 * allow rule could allow it: a host or url rule matching it, or any allow
 * cidr rule for the port (the address is unknown yet). A literal is decided
 * completely before DNS, as an address without a name: only cidr rules
 * can allow it.
 *
 * url rules match only plain-HTTP requests, on req->url, which the caller
 * builds as "http://host[:port]" (port left out when 80) followed by the
 * path from decide_normalize_path(); the query is not part of it, so url
 * rules select paths only. A rule matches a URL it is a prefix of, at a
 * segment boundary: "http://h/debian/" matches "http://h/debian/x", and
 * "http://h/debian" matches "http://h/debian" and "http://h/debian/x" but
 * not "http://h/debian-secret".
 *
 * All policies must allow. A policy in monitor mode that would deny is
 * recorded (the first such one fills policy/rule/reason, monitored=true)
 * and does not stop the request; an enforce policy that denies ends the
 * decision at once.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "decide.h"
#include "uri.h"

/* Per-policy outcome while evaluating. */
struct pol_out {
	bool allow;
	char rule[160];
	char reason[160];
};

/* snprintf that truncates silently: decision texts are bounded fields,
 * and a very long name may be cut (gcc's truncation warning would flag
 * every call). */
static void say(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
say(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
}

static const char *
pol_name(const json_t *pol)
{
	const char *s = json_string_value(json_object_get(pol, "name"));

	return s != NULL ? s : "?";
}

static bool
pol_monitor(const json_t *pol)
{
	const char *m = json_string_value(json_object_get(pol, "mode"));

	return m != NULL && strcmp(m, "monitor") == 0;
}

/* Ports of a rule: listed ones, else for allow rules the default of the
 * request kind, for deny rules every port. */
static bool
ports_match(const json_t *rule, const struct decide_req *req, bool deny)
{
	const json_t *ports = json_object_get(rule, "ports"), *p;
	size_t i;

	if (!json_is_array(ports))
		return deny || req->port == (req->connect ? 443 : 80);
	json_array_foreach(ports, i, p) {
		if (json_is_integer(p) && json_integer_value(p) == req->port)
			return true;
	}
	return false;
}

static bool
host_match(const char *pattern, const char *name)
{
	size_t pl, nl;

	if (pattern == NULL || name == NULL)
		return false;
	if (pattern[0] == '*' && pattern[1] == '.') {
		pl = strlen(pattern + 1);	/* ".example.com" */
		nl = strlen(name);
		return nl > pl && strcasecmp(name + nl - pl, pattern + 1) == 0;
	}
	return strcasecmp(pattern, name) == 0;
}

static bool
url_match(const char *rule, const char *url)
{
	size_t rl;

	if (rule == NULL || url == NULL)
		return false;
	rl = strlen(rule);
	if (rl == 0 || strncmp(url, rule, rl) != 0)
		return false;
	return rule[rl - 1] == '/' || url[rl] == '\0' || url[rl] == '/';
}

/* Does a host or url rule (allow or deny) match the request's name? */
static bool
name_rule_match(const json_t *rule, const struct decide_req *req, bool deny)
{
	const char *h, *u;

	if (req->is_literal)
		return false;
	if ((h = json_string_value(json_object_get(rule, "host"))) != NULL)
		return host_match(h, req->host) && ports_match(rule, req, deny);
	if ((u = json_string_value(json_object_get(rule, "url"))) != NULL)
		return !req->connect && req->url != NULL && url_match(u,
		    req->url);
	return false;
}

/* Does a cidr rule cover a? */
static bool
cidr_covers(const json_t *rule, const struct addr *a)
{
	const char *c = json_string_value(json_object_get(rule, "cidr"));
	struct addr net;
	unsigned prefix;

	if (c == NULL || addr_parse_cidr(c, &net, &prefix) != 0)
		return false;
	return addr_in_net(a, &net, prefix);
}

/* "allow[2] host *.example.com" */
static void
rule_text(char *out, size_t outlen, const char *list, size_t i,
    const json_t *rule)
{
	static const char *const kinds[] = { "host", "cidr", "url" };
	size_t k;

	for (k = 0; k < 3; k++) {
		const char *v = json_string_value(json_object_get(rule,
		    kinds[k]));

		if (v != NULL) {
			say(out, outlen, "%s[%zu] %s %s", list, i,
			    kinds[k], v);
			return;
		}
	}
	say(out, outlen, "%s[%zu]", list, i);
}

/* "example.com:443", "[::1]:443" */
static void
target_text(const struct decide_req *req, char *out, size_t outlen)
{
	char a[64];

	if (req->is_literal) {
		addr_format(&req->lit, a, sizeof(a));
		say(out, outlen, req->lit.family == AF_INET6 ? "[%s]:%u" :
		    "%s:%u", a, (unsigned)req->port);
	} else {
		say(out, outlen, "%s:%u", req->host != NULL ? req->host :
		    "?", (unsigned)req->port);
	}
}

/* Deny rules on the name; true when one matches (po filled). */
static bool
check_deny_name(const json_t *pol, const struct decide_req *req,
    const char *target, struct pol_out *po)
{
	const json_t *deny = json_object_get(pol, "deny"), *rule;
	size_t i;

	json_array_foreach(deny, i, rule) {
		if (name_rule_match(rule, req, true)) {
			rule_text(po->rule, sizeof(po->rule), "deny", i, rule);
			say(po->reason, sizeof(po->reason), "%s is denied "
			    "by policy %s (%s)", target, pol_name(pol),
			    po->rule);
			return true;
		}
	}
	return false;
}

/* Step 1 before DNS, for a name: could some rule of pol allow it? */
static void
eval_name(const json_t *pol, const struct decide_req *req,
    struct pol_out *po)
{
	const json_t *allow = json_object_get(pol, "allow"), *rule;
	char target[300];
	size_t i;

	po->allow = false;
	target_text(req, target, sizeof(target));
	if (check_deny_name(pol, req, target, po))
		return;
	json_array_foreach(allow, i, rule) {
		if (name_rule_match(rule, req, false) ||
		    (json_object_get(rule, "cidr") != NULL &&
		    ports_match(rule, req, false))) {
			po->allow = true;
			rule_text(po->rule, sizeof(po->rule), "allow", i, rule);
			say(po->reason, sizeof(po->reason), "%s may be "
			    "allowed by policy %s (%s): resolving", target,
			    pol_name(pol), po->rule);
			return;
		}
	}
	say(po->rule, sizeof(po->rule), "default deny");
	say(po->reason, sizeof(po->reason), "%s is not allowed by "
	    "policy %s (no rule allows it)", target, pol_name(pol));
}

/* The whole decision of one policy on one address (with the name unless
 * the request is a literal). */
static void
eval_addr(const json_t *pol, const struct decide_req *req,
    const struct addr *a, struct pol_out *po)
{
	const json_t *allow = json_object_get(pol, "allow");
	const json_t *deny = json_object_get(pol, "deny"), *rule;
	const char *range = NULL;
	char target[300], as[64];
	size_t i, named = 0;
	bool name_ok = false, special, exempt = false;

	po->allow = false;
	target_text(req, target, sizeof(target));
	addr_format(a, as, sizeof(as));
	if (check_deny_name(pol, req, target, po))
		return;
	json_array_foreach(deny, i, rule) {
		if (cidr_covers(rule, a) && ports_match(rule, req, true)) {
			rule_text(po->rule, sizeof(po->rule), "deny", i, rule);
			say(po->reason, sizeof(po->reason), "%s (%s) is "
			    "denied by policy %s (%s)", target, as,
			    pol_name(pol), po->rule);
			return;
		}
	}
	json_array_foreach(allow, i, rule) {
		if (cidr_covers(rule, a)) {
			exempt = true;
			if (ports_match(rule, req, false)) {
				po->allow = true;
				rule_text(po->rule, sizeof(po->rule), "allow",
				    i, rule);
				say(po->reason, sizeof(po->reason), "%s "
				    "(%s) is allowed by policy %s (%s)", target,
				    as, pol_name(pol), po->rule);
				return;
			}
		} else if (!name_ok && name_rule_match(rule, req, false)) {
			name_ok = true;
			named = i;
		}
	}
	special = addr_is_special(a, &range);
	if (name_ok && (!special || exempt)) {
		po->allow = true;
		rule_text(po->rule, sizeof(po->rule), "allow", named,
		    json_array_get(allow, named));
		say(po->reason, sizeof(po->reason), "%s (%s) is allowed "
		    "by policy %s (%s)", target, as, pol_name(pol), po->rule);
		return;
	}
	if (special && (name_ok || req->is_literal)) {
		say(po->rule, sizeof(po->rule), "special-purpose address "
		    "%s", range != NULL ? range : "");
		if (req->is_literal)
			say(po->reason, sizeof(po->reason), "%s is a "
			    "special-purpose address (%s) and policy %s has "
			    "no cidr rule for it", target, range, pol_name(pol));
		else
			say(po->reason, sizeof(po->reason), "%s resolves "
			    "to %s, a special-purpose address (%s), and policy "
			    "%s has no cidr rule for it", target, as, range,
			    pol_name(pol));
		return;
	}
	say(po->rule, sizeof(po->rule), "default deny");
	say(po->reason, sizeof(po->reason), "%s (%s) is not allowed by "
	    "policy %s (no rule allows it)", target, as, pol_name(pol));
}

static void
fill(struct decision *d, const json_t *pol, const struct pol_out *po)
{
	say(d->policy, sizeof(d->policy), "%s", pol_name(pol));
	say(d->rule, sizeof(d->rule), "%s", po->rule);
	say(d->reason, sizeof(d->reason), "%s", po->reason);
}

/* Runs eval over every policy (a NULL addr: the before-DNS name step). */
static void
decide_all(json_t *const *policies, size_t n, const struct decide_req *req,
    const struct addr *a, enum decide_verdict pass, struct decision *d)
{
	struct pol_out po;
	size_t i;

	memset(d, 0, sizeof(*d));
	d->verdict = DECIDE_DENY;
	if (policies == NULL || n == 0 || req == NULL ||
	    (req->host == NULL && !req->is_literal)) {
		say(d->rule, sizeof(d->rule), "default deny");
		say(d->reason, sizeof(d->reason), "no egress policy "
		    "applies");
		return;
	}
	for (i = 0; i < n; i++) {
		memset(&po, 0, sizeof(po));
		if (a == NULL)
			eval_name(policies[i], req, &po);
		else
			eval_addr(policies[i], req, a, &po);
		if (po.allow) {
			if (!d->monitored)
				fill(d, policies[i], &po);
			continue;
		}
		if (!pol_monitor(policies[i])) {
			d->monitored = false;
			fill(d, policies[i], &po);
			d->verdict = DECIDE_DENY;
			return;
		}
		if (!d->monitored) {
			d->monitored = true;
			fill(d, policies[i], &po);
		}
	}
	d->verdict = pass;
}

void
decide_before_dns(json_t *const *policies, size_t n,
    const struct decide_req *req, struct decision *d)
{
	if (req != NULL && req->is_literal)
		decide_all(policies, n, req, &req->lit, DECIDE_ALLOW, d);
	else
		decide_all(policies, n, req, NULL, DECIDE_RESOLVE, d);
}

void
decide_after_dns(json_t *const *policies, size_t n,
    const struct decide_req *req, const struct addr *resolved,
    struct decision *d)
{
	if (resolved == NULL) {
		memset(d, 0, sizeof(*d));
		d->verdict = DECIDE_DENY;
		say(d->rule, sizeof(d->rule), "default deny");
		say(d->reason, sizeof(d->reason), "no address");
		return;
	}
	decide_all(policies, n, req, resolved, DECIDE_ALLOW, d);
}

/* pchar (RFC 3986) and '/': kept as they are, as policy.c does. */
/* A dot segment, or one that some servers take for one: ".", "..", and
 * the same with ";params" after them (Tomcat reads "..;x" as ".."). */
static int
dot_kind(const char *s, size_t n)
{
	const char *semi = memchr(s, ';', n);
	size_t k = semi != NULL ? (size_t)(semi - s) : n;

	if (k == 1 && s[0] == '.')
		return semi != NULL ? -1 : 1;
	if (k == 2 && s[0] == '.' && s[1] == '.')
		return semi != NULL ? -1 : 2;
	return 0;
}

/*
 * Dot segments out of a canonical absolute path, in place (RFC 3986
 * 5.2.4). Refused: ".." above the root; ".." removing an empty segment
 * ("/a//../b": a server that merges slashes reads it as "/b", one that
 * does not as "/a/b"); dot segments with parameters.
 */
static int
remove_dots(char *p)
{
	size_t r = 1, w = 1, len = strlen(p);

	while (r <= len) {
		size_t e = r, seg;
		bool last;
		int k;

		while (e < len && p[e] != '/')
			e++;
		last = e >= len;
		seg = e - r;
		k = dot_kind(p + r, seg);
		if (k < 0)
			return MOAT_ERR_PARSE;
		if (k == 2) {
			if (w <= 1)
				return MOAT_ERR_PARSE;
			if (p[w - 2] == '/')
				return MOAT_ERR_PARSE;	/* empty segment */
			w--;
			while (w > 0 && p[w - 1] != '/')
				w--;
		} else if (k == 0) {
			memmove(p + w, p + r, seg);
			w += seg;
			if (!last)
				p[w++] = '/';
		}
		r = e + 1;
	}
	p[w] = '\0';
	return 0;
}

int
decide_normalize_path(const char *path, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0, need;
	int r = MOAT_ERR_PARSE;

	if (out == NULL || outlen < 2)
		return MOAT_ERR_TOOBIG;
	out[0] = '\0';
	if (path == NULL)
		return MOAT_ERR_PARSE;
	if (path[0] == '\0' || path[0] == '?') {
		memcpy(out, "/", 2);
		return 0;
	}
	if (path[0] != '/')
		goto out;
	for (i = 0; path[i] != '\0' && path[i] != '?'; i++) {
		unsigned char c = (unsigned char)path[i];
		char enc[3];

		if (c == '%') {
			int hi, lo;

			if ((hi = uri_hexval(path[i + 1])) < 0 ||
			    (lo = uri_hexval(path[i + 2])) < 0)
				goto out;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
			if (c == '.' || c == '/' || c == '\\' || c < 0x20 ||
			    c == 0x7f)
				goto out;
			if (!uri_unreserved(c))
				goto encode;
		} else if (c == '\\' || c == '#' || c < 0x20 || c == 0x7f) {
			goto out;
		} else if (!uri_path_char(c)) {
			goto encode;
		}
		if (o + 1 >= outlen) {
			r = MOAT_ERR_TOOBIG;
			goto out;
		}
		out[o++] = (char)c;
		continue;
encode:
		need = 3;
		if (o + need >= outlen) {
			r = MOAT_ERR_TOOBIG;
			goto out;
		}
		enc[0] = '%';
		enc[1] = hex[c >> 4];
		enc[2] = hex[c & 15];
		memcpy(out + o, enc, 3);
		o += 3;
	}
	out[o] = '\0';
	/* An empty segment ("//private/x") is read as "/private/x" by servers
	 * that merge slashes (nginx by default) and as something else by a
	 * prefix match: ambiguous, so refused. */
	if (strstr(out, "//") != NULL) {
		r = MOAT_ERR_PARSE;
		goto out;
	}
	if ((r = remove_dots(out)) != 0)
		goto out;
	r = 0;
out:
	if (r != 0)
		out[0] = '\0';
	return r;
}
