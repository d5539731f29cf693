/*
 * template.c - validation and normalization of workspace templates
 * (template.h). Bodies come from the API: every field is type-checked and
 * bounded here, whatever the route's field table already did, so that
 * `moatd init` and any later caller get the same rules. Reasons name the
 * field ("env.NAME" only once NAME is known to be a valid name) and never
 * echo a value.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "imageref.h"
#include "identity/identity.h"
#include "templates/template.h"

/* Variables moat itself sets in every login (the agent's proxy), which a
 * template must not point elsewhere; compared without regard to case. */
static const char *const template_reserved_env[] = {
	"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", NULL
};

static const char *const template_fields[] = {
	"name", "image", "cpu", "memory_mb", "disk_mb", "root_disk_mb", "env",
	"startup_script", "egress_policy", "idle_timeout", "ports",
	"forbid_sudo", NULL
};

/* An integer field in [min, max], def when absent, into *out. */
static int
template_int(const json_t *body, const char *field, long long min,
    long long max, long long def, long long *out, char *err, size_t errlen)
{
	const json_t *v = json_object_get(body, field);

	if (v == NULL) {
		*out = def;
		return 0;
	}
	if (!json_is_integer(v))
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "%s: must be an "
		    "integer", field);
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "%s: must be "
		    "between %lld and %lld", field, min, max);
	*out = json_integer_value(v);
	return 0;
}

static bool
env_name_ok(const char *s, size_t n)
{
	if (n == 0 || n > TEMPLATE_ENV_NAME_MAX || strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    c == '_';

		if (!alpha && (i == 0 || c < '0' || c > '9'))
			return false;
	}
	return true;
}

/* The environment: a copy in *out (new reference). */
static int
template_env(const json_t *v, json_t **out, char *err, size_t errlen)
{
	const char *key;
	json_t *val;

	*out = NULL;
	if (v == NULL) {
		*out = json_object();
		return *out != NULL ? 0 : MOAT_ERR_NOMEM;
	}
	if (!json_is_object(v))
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "env: must be an "
		    "object of names to strings");
	if (json_object_size(v) > TEMPLATE_ENV_MAX)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "env: more than %d "
		    "variables", TEMPLATE_ENV_MAX);
	json_object_foreach((json_t *)v, key, val) {
		if (!env_name_ok(key, json_object_iter_key_len(
		    json_object_key_to_iter(key))))
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "env: a "
			    "variable name must be 1 to %d letters, digits and "
			    "'_', not starting with a digit",
			    TEMPLATE_ENV_NAME_MAX);
		for (size_t i = 0; template_reserved_env[i] != NULL; i++)
			if (strcasecmp(key, template_reserved_env[i]) == 0)
				return moat_fail(MOAT_ERR_INVAL, err, errlen,
				    "env.%s: the proxy variables are set by moat "
				    "and cannot be changed", key);
		if (strncasecmp(key, "MOAT_", 5) == 0)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "env.%s: "
			    "names starting with MOAT_ are reserved", key);
		if (!json_is_string(val))
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "env.%s: "
			    "must be a string", key);
		if (json_string_length(val) > TEMPLATE_ENV_VALUE_MAX)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "env.%s: "
			    "longer than %d bytes", key, TEMPLATE_ENV_VALUE_MAX);
		for (size_t i = 0; i < json_string_length(val); i++) {
			unsigned char ch = (unsigned char)
			    json_string_value(val)[i];

			if (ch < 0x20 || ch == 0x7f)
				return moat_fail(MOAT_ERR_INVAL, err, errlen,
				    "env.%s: must not contain control "
				    "characters (line breaks, NUL...)", key);
		}
	}
	*out = json_deep_copy(v);
	return *out != NULL ? 0 : MOAT_ERR_NOMEM;
}

static int
template_ports(const json_t *v, json_t **out, char *err, size_t errlen)
{
	json_t *item;
	size_t i, j;

	*out = NULL;
	if (v == NULL) {
		*out = json_array();
		return *out != NULL ? 0 : MOAT_ERR_NOMEM;
	}
	if (!json_is_array(v))
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "ports: must be a "
		    "list of port numbers");
	if (json_array_size(v) > TEMPLATE_PORTS_MAX)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "ports: more than "
		    "%d ports", TEMPLATE_PORTS_MAX);
	json_array_foreach(v, i, item) {
		if (!json_is_integer(item) || json_integer_value(item) < 1 ||
		    json_integer_value(item) > 65535)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "ports[%zu]: "
			    "must be a port number from 1 to 65535", i);
		for (j = 0; j < i; j++)
			if (json_integer_value(json_array_get(v, j)) ==
			    json_integer_value(item))
				return moat_fail(MOAT_ERR_INVAL, err, errlen,
				    "ports[%zu]: repeats ports[%zu]", i, j);
	}
	*out = json_deep_copy(v);
	return *out != NULL ? 0 : MOAT_ERR_NOMEM;
}

int
template_normalize(const json_t *body, const char *name, const char *org,
    json_t **out, char *err, size_t errlen)
{
	struct imageref ref;
	char why[200];
	const char *key, *bname, *script = "";
	json_t *v, *doc = NULL, *env = NULL, *ports = NULL, *policy;
	long long cpu, mem, disk, root, idle;
	bool forbid_sudo = false;
	int r = MOAT_ERR_INVAL;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	*out = NULL;
	if (!json_is_object(body)) {
		moat_errf(err, errlen, "a template must be a JSON object");
		goto out;
	}
	json_object_foreach((json_t *)body, key, v) {
		bool known = false;

		for (size_t i = 0; template_fields[i] != NULL; i++)
			if (strcmp(key, template_fields[i]) == 0)
				known = true;
		if (!known) {
			moat_errf(err, errlen, "unknown field");
			goto out;
		}
	}
	if ((v = json_object_get(body, "name")) != NULL && !json_is_string(v)) {
		moat_errf(err, errlen, "name: must be a string");
		goto out;
	}
	bname = json_string_value(v);
	if (name == NULL)
		name = bname;
	else if (bname != NULL && strcmp(bname, name) != 0) {
		moat_errf(err, errlen, "name: must match the name in the path");
		goto out;
	}
	if (name == NULL) {
		moat_errf(err, errlen, "name: is required");
		goto out;
	}
	if (identity_check_name(name, false, why, sizeof(why)) != 0) {
		moat_errf(err, errlen, "name: %s", why);
		goto out;
	}
	if (org == NULL || org[0] == '\0') {
		moat_errf(err, errlen, "org: is required");
		goto out;
	}

	v = json_object_get(body, "image");
	if (!json_is_string(v)) {
		moat_errf(err, errlen, "image: is required (a string)");
		goto out;
	}
	if (imageref_parse(json_string_value(v), &ref, why, sizeof(why)) != 0) {
		moat_errf(err, errlen, "image: %s", why);
		goto out;
	}

	if ((r = template_int(body, "cpu", TEMPLATE_CPU_MIN, TEMPLATE_CPU_MAX,
	    TEMPLATE_CPU_DEFAULT, &cpu, err, errlen)) != 0 ||
	    (r = template_int(body, "memory_mb", TEMPLATE_MEMORY_MIN,
	    TEMPLATE_MEMORY_MAX, TEMPLATE_MEMORY_DEFAULT, &mem, err,
	    errlen)) != 0 ||
	    (r = template_int(body, "disk_mb", TEMPLATE_DISK_MIN,
	    TEMPLATE_DISK_MAX, TEMPLATE_DISK_DEFAULT, &disk, err,
	    errlen)) != 0 ||
	    (r = template_int(body, "root_disk_mb", TEMPLATE_DISK_MIN,
	    TEMPLATE_DISK_MAX, TEMPLATE_ROOT_DISK_DEFAULT, &root, err,
	    errlen)) != 0 ||
	    (r = template_int(body, "idle_timeout", 0, TEMPLATE_IDLE_MAX,
	    TEMPLATE_IDLE_DEFAULT, &idle, err, errlen)) != 0)
		goto out;
	r = MOAT_ERR_INVAL;
	if (idle != 0 && idle < TEMPLATE_IDLE_MIN) {
		moat_errf(err, errlen, "idle_timeout: must be 0 (never) or "
		    "between %d and %d seconds", TEMPLATE_IDLE_MIN,
		    TEMPLATE_IDLE_MAX);
		goto out;
	}

	if ((v = json_object_get(body, "startup_script")) != NULL) {
		if (!json_is_string(v)) {
			moat_errf(err, errlen, "startup_script: must be a string");
			goto out;
		}
		if (json_string_length(v) > TEMPLATE_SCRIPT_MAX) {
			moat_errf(err, errlen, "startup_script: longer than %d "
			    "bytes", TEMPLATE_SCRIPT_MAX);
			goto out;
		}
		if (memchr(json_string_value(v), '\0', json_string_length(v))
		    != NULL) {
			moat_errf(err, errlen, "startup_script: must not contain "
			    "a NUL character");
			goto out;
		}
		script = json_string_value(v);
	}

	policy = json_object_get(body, "egress_policy");
	if (policy != NULL && !json_is_null(policy)) {
		if (!json_is_string(policy) ||
		    identity_check_name(json_string_value(policy), false, why,
		    sizeof(why)) != 0) {
			moat_errf(err, errlen, "egress_policy: must be null or the "
			    "name of a policy");
			goto out;
		}
	}

	if ((v = json_object_get(body, "forbid_sudo")) != NULL) {
		if (!json_is_boolean(v)) {
			moat_errf(err, errlen, "forbid_sudo: must be true or "
			    "false");
			goto out;
		}
		forbid_sudo = json_is_true(v);
	}

	if ((r = template_env(json_object_get(body, "env"), &env, err,
	    errlen)) != 0 ||
	    (r = template_ports(json_object_get(body, "ports"), &ports, err,
	    errlen)) != 0)
		goto out;

	r = MOAT_ERR_NOMEM;
	doc = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:O, s:s, s:O, "
	    "s:I, s:O, s:b}",
	    "name", name, "org", org, "image", ref.canonical,
	    "cpu", (json_int_t)cpu, "memory_mb", (json_int_t)mem,
	    "disk_mb", (json_int_t)disk, "root_disk_mb", (json_int_t)root,
	    "env", env, "startup_script", script,
	    "egress_policy", policy != NULL ? policy : json_null(),
	    "idle_timeout", (json_int_t)idle, "ports", ports,
	    "forbid_sudo", forbid_sudo);
	if (doc == NULL)
		goto out;
	*out = doc;
	r = 0;
out:
	json_decref(env);
	json_decref(ports);
	return r;
}
