/*
 * policy.c - validation and normalization of egress policy documents
 * (DESIGN.md section 5a; shape in policy.h).
 *
 * The normalized document always has the four fields "name", "mode",
 * "allow" and "deny" (absent lists become [], an absent mode "enforce").
 * Each rule keeps exactly one destination field in canonical form (see
 * policy_host.c) and, when the document gave one, "ports" sorted and
 * without repeats; absent ports stay absent, because the default depends on
 * how the proxy is reached ([443] for CONNECT, [80] for plain HTTP) and is
 * the proxy's to apply. Rules are kept in the order given, duplicates
 * included: deny wins and allow rules add up, so a repeated rule changes
 * nothing and an exact echo of the stored document is more useful.
 *
 * Fields are checked in a fixed order (unknown fields first, then the
 * known ones in the order of the shape), so the path reported for a
 * document with several faults is always the same one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_int.h"

#define POLICY_MAX_RULES 1024	/* rules in "allow", and in "deny" */
#define POLICY_MAX_PORTS 32	/* ports in one rule */

struct perr {
	char *path;
	size_t pathlen;
	char *err;
	size_t errlen;
};

#define FAIL(e, where, ...) \
	policy__fail((e)->path, (e)->pathlen, (where), (e)->err, \
	    (e)->errlen, __VA_ARGS__)

/* "ports": a non-empty list of at most POLICY_MAX_PORTS integers in
 * 1..65535, returned sorted and without repeats. */
static int
ports_normalize(const json_t *v, const char *where, json_t **out,
    struct perr *e)
{
	long long ports[POLICY_MAX_PORTS];
	char p[POLICY_PATH_MAX];
	size_t i, j, n, k = 0;
	json_t *arr = NULL, *item;

	*out = NULL;
	if (!json_is_array(v))
		return FAIL(e, where, "must be a list of port numbers");
	n = json_array_size(v);
	if (n == 0)
		return FAIL(e, where, "must not be empty (leave it out for the "
		    "default ports)");
	if (n > POLICY_MAX_PORTS)
		return FAIL(e, where, "more than %d ports", POLICY_MAX_PORTS);
	json_array_foreach(v, i, item) {
		long long port;

		if (snprintf(p, sizeof(p), "%s[%zu]", where, i) >= (int)sizeof(p))
			return FAIL(e, where, "is nested too deeply");
		if (!json_is_integer(item))
			return FAIL(e, p, "must be an integer");
		port = json_integer_value(item);
		if (port < 1 || port > 65535)
			return FAIL(e, p, "must be a port number from 1 to "
			    "65535");
		/* insertion into the sorted prefix, skipping repeats */
		for (j = 0; j < k && ports[j] < port; j++)
			;
		if (j < k && ports[j] == port)
			continue;
		memmove(ports + j + 1, ports + j, (k - j) * sizeof(ports[0]));
		ports[j] = port;
		k++;
	}
	if ((arr = json_array()) == NULL)
		return MOAT_ERR_NOMEM;
	for (j = 0; j < k; j++) {
		if (json_array_append_new(arr, json_integer(ports[j])) != 0) {
			json_decref(arr);
			return MOAT_ERR_NOMEM;
		}
	}
	*out = arr;
	return 0;
}

static const char *const rule_dests[] = { "host", "cidr", "url" };
#define NDESTS (sizeof(rule_dests) / sizeof(rule_dests[0]))

/* One rule at path where ("allow[2]"). */
static int
rule_normalize(const json_t *rule, const char *where, json_t **out,
    struct perr *e)
{
	char p[POLICY_PATH_MAX], reason[160];
	char canon[POLICY_URL_MAX + 1];
	const char *key, *dest = NULL, *s;
	json_t *item, *val, *ports = NULL, *res = NULL;
	size_t i, ndest = 0, slen;
	int r = MOAT_ERR_INVAL;

	*out = NULL;
	if (!json_is_object(rule)) {
		r = FAIL(e, where, "a rule must be a mapping with one of host, "
		    "cidr or url");
		goto out;
	}
	json_object_foreach((json_t *)rule, key, item) {
		bool known = strcmp(key, "ports") == 0;

		for (i = 0; i < NDESTS; i++)
			if (strcmp(key, rule_dests[i]) == 0)
				known = true;
		if (!known) {
			policy__path_key(p, sizeof(p), where, key);
			r = FAIL(e, p, "unknown field");
			goto out;
		}
	}
	for (i = 0; i < NDESTS; i++) {
		if (json_object_get(rule, rule_dests[i]) == NULL)
			continue;
		if (ndest++ == 0)
			dest = rule_dests[i];
	}
	if (ndest == 0) {
		r = FAIL(e, where, "a rule needs one of host, cidr or url");
		goto out;
	}
	if (ndest > 1) {
		r = FAIL(e, where, "a rule may have only one of host, cidr or "
		    "url");
		goto out;
	}
	policy__path_key(p, sizeof(p), where, dest);
	val = json_object_get(rule, dest);
	if (!json_is_string(val)) {
		r = FAIL(e, p, "must be a string");
		goto out;
	}
	s = json_string_value(val);
	slen = json_string_length(val);
	reason[0] = '\0';
	if (strcmp(dest, "host") == 0)
		r = policy__host(s, slen, true, canon, sizeof(canon), reason,
		    sizeof(reason));
	else if (strcmp(dest, "cidr") == 0)
		r = policy__cidr(s, slen, canon, sizeof(canon), reason,
		    sizeof(reason));
	else
		r = policy__url(s, slen, canon, sizeof(canon), reason,
		    sizeof(reason));
	if (r == MOAT_ERR_INVAL) {
		r = FAIL(e, p, "%s", reason);
		goto out;
	}
	if (r != 0)
		goto out;
	if ((val = json_object_get(rule, "ports")) != NULL) {
		policy__path_key(p, sizeof(p), where, "ports");
		if (strcmp(dest, "url") == 0) {
			r = FAIL(e, p, "not allowed in a url rule (the port is "
			    "part of the URL)");
			goto out;
		}
		if ((r = ports_normalize(val, p, &ports, e)) != 0)
			goto out;
	}
	r = MOAT_ERR_NOMEM;
	if ((res = json_object()) == NULL ||
	    json_object_set_new(res, dest, json_string(canon)) != 0)
		goto out;
	if (ports != NULL && json_object_set_new(res, "ports", ports) != 0) {
		ports = NULL;
		goto out;
	}
	ports = NULL;
	*out = res;
	res = NULL;
	r = 0;
out:
	json_decref(ports);
	json_decref(res);
	return r;
}

/* "allow" or "deny": a list of at most POLICY_MAX_RULES rules. */
static int
list_normalize(const json_t *list, const char *name, json_t **out,
    struct perr *e)
{
	char p[POLICY_PATH_MAX];
	json_t *arr = NULL, *item, *rule;
	size_t i;
	int r;

	*out = NULL;
	if (list == NULL)
		return (*out = json_array()) != NULL ? 0 : MOAT_ERR_NOMEM;
	if (!json_is_array(list))
		return FAIL(e, name, "must be a list of rules");
	if (json_array_size(list) > POLICY_MAX_RULES)
		return FAIL(e, name, "more than %d rules", POLICY_MAX_RULES);
	if ((arr = json_array()) == NULL)
		return MOAT_ERR_NOMEM;
	json_array_foreach(list, i, item) {
		snprintf(p, sizeof(p), "%s[%zu]", name, i);
		if ((r = rule_normalize(item, p, &rule, e)) != 0) {
			json_decref(arr);
			return r;
		}
		if (json_array_append_new(arr, rule) != 0) {
			json_decref(arr);
			return MOAT_ERR_NOMEM;
		}
	}
	*out = arr;
	return 0;
}

int
policy_normalize(const json_t *doc, json_t **out, char *path, size_t pathlen,
    char *err, size_t errlen)
{
	static const char *const fields[] = { "name", "mode", "allow", "deny" };
	struct perr e = { path, pathlen, err, errlen };
	char p[POLICY_PATH_MAX];
	json_t *res = NULL, *allow = NULL, *deny = NULL, *v;
	const char *key, *mode = "enforce";
	size_t i;
	int r = MOAT_ERR_INVAL;

	if (path != NULL && pathlen > 0)
		path[0] = '\0';
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	*out = NULL;
	if (!json_is_object(doc)) {
		r = FAIL(&e, "", "a policy must be a mapping");
		goto out;
	}
	json_object_foreach((json_t *)doc, key, v) {
		bool known = false;

		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (strcmp(key, fields[i]) == 0)
				known = true;
		if (!known) {
			policy__path_key(p, sizeof(p), "", key);
			r = FAIL(&e, p, "unknown field");
			goto out;
		}
	}
	v = json_object_get(doc, "name");
	if (v == NULL) {
		r = FAIL(&e, "name", "is required");
		goto out;
	}
	if (!json_is_string(v)) {
		r = FAIL(&e, "name", "must be a string");
		goto out;
	}
	if (!policy__name_ok(json_string_value(v), json_string_length(v))) {
		r = FAIL(&e, "name", "must be 1 to 20 lower-case letters, "
		    "digits and single '-' between them");
		goto out;
	}
	if ((v = json_object_get(doc, "mode")) != NULL) {
		if (!json_is_string(v) ||
		    (strcmp(json_string_value(v), "enforce") != 0 &&
		    strcmp(json_string_value(v), "monitor") != 0)) {
			r = FAIL(&e, "mode", "must be \"enforce\" or "
			    "\"monitor\"");
			goto out;
		}
		mode = json_string_value(v);
	}
	if ((r = list_normalize(json_object_get(doc, "allow"), "allow",
	    &allow, &e)) != 0)
		goto out;
	if ((r = list_normalize(json_object_get(doc, "deny"), "deny", &deny,
	    &e)) != 0)
		goto out;
	r = MOAT_ERR_NOMEM;
	if ((res = json_object()) == NULL ||
	    json_object_set_new(res, "name",
	    json_string(json_string_value(json_object_get(doc, "name")))) != 0 ||
	    json_object_set_new(res, "mode", json_string(mode)) != 0)
		goto out;
	r = json_object_set_new(res, "allow", allow);
	allow = NULL;
	if (r != 0) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	r = json_object_set_new(res, "deny", deny);
	deny = NULL;
	if (r != 0) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	*out = res;
	res = NULL;
	r = 0;
out:
	json_decref(allow);
	json_decref(deny);
	json_decref(res);
	return r;
}
