/*
 * imageref.c - container image references (imageref.h): a strict parser of
 * [REGISTRY/]PATH[:TAG][@sha256:HEX] into its parts and a canonical form,
 * and the check of a reference's registry against an organization's
 * allow-list (DESIGN.md section 5a).
 *
 * The input is untrusted (an API body): it is bounded (IMAGEREF_MAX bytes)
 * before anything else, scanned once for bytes outside printable ASCII, and
 * then taken apart left to right with explicit lengths; nothing is copied
 * before its length is checked against the destination. Error messages
 * name the rule that failed and never echo the input.
 */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "imageref.h"

#define DEFAULT_REGISTRY "docker.io"
#define DIGEST_PREFIX "sha256:"
#define DIGEST_HEX 64
#define TAG_MAX 128
#define HOST_MAX 253
#define LABEL_MAX 63

static bool
is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
is_tag_char(char c)
{
	return is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '_' ||
	    c == '.' || c == '-';
}

/* One path component: [a-z0-9]+(([._]|__|-+)[a-z0-9]+)* */
static bool
component_ok(const char *s, size_t n)
{
	size_t i = 0;

	if (n == 0 || !is_lower_alnum(s[0]))
		return false;
	while (i < n) {
		size_t sep = 0;

		while (i < n && is_lower_alnum(s[i]))
			i++;
		if (i == n)
			return true;
		/* a separator, then at least one alphanumeric */
		if (s[i] == '.') {
			sep = 1;
		} else if (s[i] == '_') {
			sep = (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
		} else if (s[i] == '-') {
			while (i + sep < n && s[i + sep] == '-')
				sep++;
		} else {
			return false;
		}
		i += sep;
		if (i == n || !is_lower_alnum(s[i]))
			return false;
	}
	return true;
}

/* A port: 1..65535 in decimal without a leading zero (as settings.c). */
static bool
port_ok(const char *s, size_t n)
{
	unsigned long v = 0;

	if (n == 0 || n > 5 || s[0] == '0')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	return v <= 65535;
}

/* host[:port], host a DNS name of labels [a-z0-9-] not starting or ending
 * with '-', or "localhost". */
static int
registry_check(const char *s, size_t n, char *err, size_t errlen)
{
	const char *colon = memchr(s, ':', n);
	size_t hn = colon != NULL ? (size_t)(colon - s) : n;
	size_t i, start = 0;

	if (colon != NULL && !port_ok(colon + 1, n - hn - 1))
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the registry "
		    "port must be a number from 1 to 65535");
	if (hn == 0 || hn > HOST_MAX)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the registry "
		    "host must be 1 to %d characters", HOST_MAX);
	for (i = 0; i <= hn; i++) {
		if (i < hn && s[i] != '.') {
			if (!is_lower_alnum(s[i]) && s[i] != '-')
				return moat_fail(MOAT_ERR_INVAL, err, errlen,
				    "the registry host may hold only lower-case "
				    "letters, digits, '-' and '.'");
			continue;
		}
		/* label s[start..i) */
		if (i == start || i - start > LABEL_MAX)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "each "
			    "label of the registry host must be 1 to %d "
			    "characters", LABEL_MAX);
		if (s[start] == '-' || s[i - 1] == '-')
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "a label "
			    "of the registry host must not start or end with "
			    "'-'");
		start = i + 1;
	}
	return 0;
}

static bool
digest_ok(const char *s, size_t n)
{
	size_t pl = sizeof(DIGEST_PREFIX) - 1;

	if (n != pl + DIGEST_HEX || memcmp(s, DIGEST_PREFIX, pl) != 0)
		return false;
	for (size_t i = pl; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool
tag_ok(const char *s, size_t n)
{
	if (n == 0 || n > TAG_MAX || s[0] == '.' || s[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_tag_char(s[i]))
			return false;
	return true;
}

int
imageref_parse(const char *s, struct imageref *out, char *err, size_t errlen)
{
	struct imageref ref;
	const char *at, *slash, *rest, *colon, *p, *end;
	size_t n, rn, i;
	bool has_registry = false, upper = false;
	int r = MOAT_ERR_INVAL;

	memset(&ref, 0, sizeof(ref));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (s == NULL || out == NULL) {
		moat_errf(err, errlen, "no image reference");
		goto out;
	}
	n = strnlen(s, IMAGEREF_MAX + 1);
	if (n == 0) {
		moat_errf(err, errlen, "the image reference is empty");
		goto out;
	}
	if (n > IMAGEREF_MAX) {
		moat_errf(err, errlen, "the image reference is longer than %d "
		    "bytes", IMAGEREF_MAX);
		goto out;
	}
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f) {
			moat_errf(err, errlen, "the image reference must not "
			    "contain spaces, control characters or non-ASCII "
			    "bytes");
			goto out;
		}
	}

	/* @digest */
	end = s + n;
	if ((at = memchr(s, '@', n)) != NULL) {
		if (!digest_ok(at + 1, (size_t)(end - at - 1))) {
			moat_errf(err, errlen, "the digest must be \"sha256:\" "
			    "and 64 lower-case hexadecimal digits");
			goto out;
		}
		if (str_copyn(ref.digest, sizeof(ref.digest), at + 1,
		    (size_t)(end - at - 1)) != 0)
			goto out;
		end = at;
	}

	/* REGISTRY/ when the first component looks like a host */
	rest = s;
	slash = memchr(s, '/', (size_t)(end - s));
	if (slash != NULL) {
		size_t fn = (size_t)(slash - s);

		if (memchr(s, '.', fn) != NULL || memchr(s, ':', fn) != NULL ||
		    (fn == 9 && memcmp(s, "localhost", 9) == 0))
			has_registry = true;
		for (i = 0; i < fn; i++)
			if (s[i] >= 'A' && s[i] <= 'Z')
				upper = true;
		/* "Docker.io/x" or "LOCALHOST/x" reads as meant for a
		 * registry: say what is wrong with it rather than that a
		 * path component is bad. */
		if (upper && !has_registry) {
			moat_errf(err, errlen, "the image name must be lower "
			    "case");
			goto out;
		}
		if (has_registry) {
			if (upper) {
				moat_errf(err, errlen, "the registry host must be "
				    "lower case");
				goto out;
			}
			if ((r = registry_check(s, fn, err, errlen)) != 0)
				goto out;
			r = MOAT_ERR_INVAL;
			if (str_copyn(ref.registry, sizeof(ref.registry), s,
			    fn) != 0)
				goto out;
			rest = slash + 1;
		}
	}
	if (!has_registry)
		memcpy(ref.registry, DEFAULT_REGISTRY, sizeof(DEFAULT_REGISTRY));

	/* :tag after the last '/' */
	rn = (size_t)(end - rest);
	p = rest + rn;
	while (p > rest && p[-1] != '/')
		p--;
	colon = memchr(p, ':', (size_t)(end - p));
	if (colon != NULL) {
		if (!tag_ok(colon + 1, (size_t)(end - colon - 1))) {
			moat_errf(err, errlen, "the tag must be 1 to %d letters, "
			    "digits, '_', '.' or '-', not starting with '.' or "
			    "'-'", TAG_MAX);
			goto out;
		}
		if (str_copyn(ref.tag, sizeof(ref.tag), colon + 1,
		    (size_t)(end - colon - 1)) != 0)
			goto out;
		end = colon;
	}

	/* PATH: components joined by '/' */
	if (end == rest) {
		moat_errf(err, errlen, "the image name is missing");
		goto out;
	}
	for (p = rest; p <= end; ) {
		const char *q = memchr(p, '/', (size_t)(end - p));
		size_t cn = q != NULL ? (size_t)(q - p) : (size_t)(end - p);

		for (i = 0; i < cn; i++)
			if (p[i] >= 'A' && p[i] <= 'Z') {
				moat_errf(err, errlen, "the image name must be "
				    "lower case");
				goto out;
			}
		if (!component_ok(p, cn)) {
			moat_errf(err, errlen, "each part of the image name "
			    "between '/' must be lower-case letters and digits, "
			    "separated by one '.', one or two '_', or '-'");
			goto out;
		}
		if (q == NULL)
			break;
		p = q + 1;
	}
	if (strcmp(ref.registry, DEFAULT_REGISTRY) == 0 &&
	    memchr(rest, '/', (size_t)(end - rest)) == NULL) {
		int k = snprintf(ref.path, sizeof(ref.path), "library/%.*s",
		    (int)(end - rest), rest);

		if (k < 0 || (size_t)k >= sizeof(ref.path)) {
			moat_errf(err, errlen, "the image name is too long");
			goto out;
		}
	} else if (str_copyn(ref.path, sizeof(ref.path), rest,
	    (size_t)(end - rest)) != 0) {
		moat_errf(err, errlen, "the image name is too long");
		goto out;
	}
	if (ref.tag[0] == '\0' && ref.digest[0] == '\0')
		memcpy(ref.tag, "latest", sizeof("latest"));

	i = (size_t)snprintf(ref.canonical, sizeof(ref.canonical), "%s/%s%s%s%s%s",
	    ref.registry, ref.path, ref.tag[0] != '\0' ? ":" : "", ref.tag,
	    ref.digest[0] != '\0' ? "@" : "", ref.digest);
	if (i >= sizeof(ref.canonical)) {
		moat_errf(err, errlen, "the image reference is too long");
		goto out;
	}
	*out = ref;
	r = 0;
out:
	return r;
}

bool
imageref_registry_allowed(const struct imageref *ref,
    const json_t *registries)
{
	const json_t *v;
	size_t i;

	if (ref == NULL || !json_is_array(registries))
		return false;
	json_array_foreach(registries, i, v)
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), ref->registry) == 0)
			return true;
	return false;
}
