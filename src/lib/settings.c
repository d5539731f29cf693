/*
 * settings.c - validation and normalization of an organization's security
 * settings (DESIGN.md section 5a; shape in policy.h).
 *
 * A settings document may give any subset of the fields; the normalized
 * copy has all of them, the missing ones taken from settings_default().
 * The defaults are the safe ones: no sudo, no agent forwarding, no
 * keystroke recording (it captures typed passwords) and no registry at
 * all, so, like the "default" egress policy, a new installation pulls no
 * image until someone names where images may come from. Registry entries
 * are "host[:port]" (an IPv4 address or a bracketed IPv6 address may stand
 * for the host); host names are checked and lower-cased as in host rules,
 * the port is kept as given (no default is assumed), and repeats are
 * dropped.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_int.h"

#define SETTINGS_MAX_REGISTRIES 64

struct sbool {
	const char *name;
	bool def;
};

static const struct sbool ssh_fields[] = {
	{ "port_forwarding", true },
	{ "file_transfer", true },
	{ "agent_forwarding", false },
	{ "record_input", false },
};
#define NSSH (sizeof(ssh_fields) / sizeof(ssh_fields[0]))

json_t *
settings_default(void)
{
	json_t *s = NULL, *ssh = NULL;
	size_t i;

	if ((s = json_object()) == NULL || (ssh = json_object()) == NULL)
		goto fail;
	for (i = 0; i < NSSH; i++)
		if (json_object_set_new(ssh, ssh_fields[i].name,
		    json_boolean(ssh_fields[i].def)) != 0)
			goto fail;
	if (json_object_set_new(s, "default_policy",
	    json_string("default")) != 0 ||
	    json_object_set_new(s, "allow_sudo", json_false()) != 0)
		goto fail;
	if (json_object_set_new(s, "ssh", ssh) != 0) {
		ssh = NULL;
		goto fail;
	}
	ssh = NULL;
	if (json_object_set_new(s, "registries", json_array()) != 0)
		goto fail;
	return s;
fail:
	json_decref(ssh);
	json_decref(s);
	return NULL;
}

/* A port after ':' in a registry entry: 1..65535, no leading zero. */
static bool
registry_port_ok(const char *s, size_t n)
{
	unsigned long v = 0;
	size_t i;

	if (n == 0 || n > 5 || s[0] == '0')
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

/* One registry entry into out (canonical "host[:port]"). */
static int
registry_normalize(const char *s, size_t n, char *out, size_t outlen,
    char *err, size_t errlen)
{
	char host[POLICY_HOST_MAX + 8], addr[INET6_ADDRSTRLEN + 1];
	unsigned char bin[16];
	const char *hend, *port = NULL;
	size_t hn, pn = 0;
	int r;

	if (n == 0 || memchr(s, '\0', n) != NULL)
		return policy__fail(NULL, 0, NULL, err, errlen, "a registry "
		    "must not be empty");
	if (memchr(s, '/', n) != NULL || memchr(s, '@', n) != NULL)
		return policy__fail(NULL, 0, NULL, err, errlen, "a registry is "
		    "host[:port], without scheme, path or user");
	if (s[0] == '[') {
		/* [IPv6]:port */
		hend = memchr(s, ']', n);
		if (hend == NULL || (size_t)(hend - s - 1) >= sizeof(addr))
			return policy__fail(NULL, 0, NULL, err, errlen, "not an "
			    "IPv6 address in brackets");
		memcpy(addr, s + 1, (size_t)(hend - s - 1));
		addr[hend - s - 1] = '\0';
		if (inet_pton(AF_INET6, addr, bin) != 1 ||
		    inet_ntop(AF_INET6, bin, host, sizeof(host)) == NULL)
			return policy__fail(NULL, 0, NULL, err, errlen, "not an "
			    "IPv6 address in brackets");
		if (hend + 1 < s + n) {
			if (hend[1] != ':')
				return policy__fail(NULL, 0, NULL, err, errlen,
				    "a registry is host[:port]");
			port = hend + 2;
			pn = (size_t)(s + n - port);
		}
		if (port != NULL && !registry_port_ok(port, pn))
			return policy__fail(NULL, 0, NULL, err, errlen, "the "
			    "port must be a number from 1 to 65535");
		r = snprintf(out, outlen, "[%s]%s%.*s", host, port ? ":" : "",
		    (int)pn, port ? port : "");
		return r > 0 && (size_t)r < outlen ? 0 : policy__fail(NULL, 0,
		    NULL, err, errlen, "the registry name is too long");
	}
	hend = memchr(s, ':', n);
	if (hend != NULL && memchr(hend + 1, ':', n - (size_t)(hend - s) - 1)
	    != NULL)
		return policy__fail(NULL, 0, NULL, err, errlen, "an IPv6 "
		    "address must be written as a bracketed IPv6 address");
	hn = hend != NULL ? (size_t)(hend - s) : n;
	if (hend != NULL) {
		port = hend + 1;
		pn = n - hn - 1;
		if (!registry_port_ok(port, pn))
			return policy__fail(NULL, 0, NULL, err, errlen, "the "
			    "port must be a number from 1 to 65535");
	}
	if (hn > 0 && hn < sizeof(addr) && s[hn - 1] >= '0' &&
	    s[hn - 1] <= '9') {
		memcpy(addr, s, hn);
		addr[hn] = '\0';
		if (inet_pton(AF_INET, addr, bin) == 1) {
			r = snprintf(out, outlen, "%s%s%.*s", addr,
			    port ? ":" : "", (int)pn, port ? port : "");
			return r > 0 && (size_t)r < outlen ? 0 :
			    policy__fail(NULL, 0, NULL, err, errlen, "the "
			    "registry name is too long");
		}
	}
	if ((r = policy__host(s, hn, false, host, sizeof(host), err,
	    errlen)) != 0) {
		/* "127.1": not a host name, and not an address written the
		 * one way accepted here either */
		if (r == MOAT_ERR_INVAL && err != NULL &&
		    strstr(err, "cidr") != NULL)
			return policy__fail(NULL, 0, NULL, err, errlen, "not a "
			    "host name, a dotted IPv4 address or a bracketed "
			    "IPv6 address");
		return r;
	}
	r = snprintf(out, outlen, "%s%s%.*s", host, port ? ":" : "", (int)pn,
	    port ? port : "");
	return r > 0 && (size_t)r < outlen ? 0 : policy__fail(NULL, 0, NULL,
	    err, errlen, "the registry name is too long");
}

static int
registries_normalize(const json_t *v, json_t *res, char *path,
    size_t pathlen, char *err, size_t errlen)
{
	char canon[POLICY_HOST_MAX + 16], p[POLICY_PATH_MAX], reason[160];
	json_t *arr, *item, *have;
	size_t i, j;
	int r;

	if (!json_is_array(v))
		return policy__fail(path, pathlen, "registries", err, errlen,
		    "must be a list of host[:port] entries");
	if (json_array_size(v) > SETTINGS_MAX_REGISTRIES)
		return policy__fail(path, pathlen, "registries", err, errlen,
		    "more than %d entries", SETTINGS_MAX_REGISTRIES);
	if ((arr = json_array()) == NULL)
		return MOAT_ERR_NOMEM;
	json_array_foreach(v, i, item) {
		bool dup = false;

		snprintf(p, sizeof(p), "registries[%zu]", i);
		if (!json_is_string(item)) {
			json_decref(arr);
			return policy__fail(path, pathlen, p, err, errlen,
			    "must be a string");
		}
		reason[0] = '\0';
		r = registry_normalize(json_string_value(item),
		    json_string_length(item), canon, sizeof(canon), reason,
		    sizeof(reason));
		if (r != 0) {
			json_decref(arr);
			return r == MOAT_ERR_INVAL ? policy__fail(path, pathlen,
			    p, err, errlen, "%s", reason) : r;
		}
		json_array_foreach(arr, j, have)
			if (strcmp(json_string_value(have), canon) == 0)
				dup = true;
		if (!dup && json_array_append_new(arr, json_string(canon)) != 0) {
			json_decref(arr);
			return MOAT_ERR_NOMEM;
		}
	}
	if (json_object_set_new(res, "registries", arr) != 0)
		return MOAT_ERR_NOMEM;
	return 0;
}

static int
ssh_normalize(const json_t *v, json_t *res, char *path, size_t pathlen,
    char *err, size_t errlen)
{
	char p[POLICY_PATH_MAX];
	json_t *ssh, *item;
	const char *key;
	size_t i;

	if (!json_is_object(v))
		return policy__fail(path, pathlen, "ssh", err, errlen, "must be "
		    "a mapping");
	json_object_foreach((json_t *)v, key, item) {
		bool known = false;

		for (i = 0; i < NSSH; i++)
			if (strcmp(key, ssh_fields[i].name) == 0)
				known = true;
		policy__path_key(p, sizeof(p), "ssh", key);
		if (!known)
			return policy__fail(path, pathlen, p, err, errlen,
			    "unknown field");
		if (!json_is_boolean(item))
			return policy__fail(path, pathlen, p, err, errlen,
			    "must be true or false");
	}
	ssh = json_object_get(res, "ssh");
	json_object_foreach((json_t *)v, key, item)
		if (json_object_set(ssh, key, item) != 0)
			return MOAT_ERR_NOMEM;
	return 0;
}

int
settings_normalize(const json_t *doc, json_t **out, char *path,
    size_t pathlen, char *err, size_t errlen)
{
	static const char *const fields[] = { "default_policy", "allow_sudo",
	    "ssh", "registries" };
	char p[POLICY_PATH_MAX];
	json_t *res = NULL, *v;
	const char *key;
	size_t i;
	int r = MOAT_ERR_INVAL;

	if (path != NULL && pathlen > 0)
		path[0] = '\0';
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	*out = NULL;
	if (!json_is_object(doc)) {
		r = policy__fail(path, pathlen, "", err, errlen, "the settings "
		    "must be a mapping");
		goto out;
	}
	json_object_foreach((json_t *)doc, key, v) {
		bool known = false;

		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			if (strcmp(key, fields[i]) == 0)
				known = true;
		if (!known) {
			policy__path_key(p, sizeof(p), "", key);
			r = policy__fail(path, pathlen, p, err, errlen,
			    "unknown field");
			goto out;
		}
	}
	if ((res = settings_default()) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((v = json_object_get(doc, "default_policy")) != NULL) {
		if (!json_is_string(v) || !policy__name_ok(json_string_value(v),
		    json_string_length(v))) {
			r = policy__fail(path, pathlen, "default_policy", err,
			    errlen, "must be a policy name (1 to 20 lower-case "
			    "letters, digits and single '-' between them)");
			goto out;
		}
		if (json_object_set_new(res, "default_policy",
		    json_string(json_string_value(v))) != 0) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
	}
	if ((v = json_object_get(doc, "allow_sudo")) != NULL) {
		if (!json_is_boolean(v)) {
			r = policy__fail(path, pathlen, "allow_sudo", err, errlen,
			    "must be true or false");
			goto out;
		}
		if (json_object_set(res, "allow_sudo", v) != 0) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
	}
	if ((v = json_object_get(doc, "ssh")) != NULL &&
	    (r = ssh_normalize(v, res, path, pathlen, err, errlen)) != 0)
		goto out;
	if ((v = json_object_get(doc, "registries")) != NULL &&
	    (r = registries_normalize(v, res, path, pathlen, err, errlen)) != 0)
		goto out;
	*out = res;
	res = NULL;
	r = 0;
out:
	json_decref(res);
	return r;
}
