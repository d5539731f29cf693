/*
 * policy_host.c - normalizers for the destinations an egress rule names:
 * host names (with IDN to punycode through libidn2), CIDR ranges and
 * plain-HTTP URL prefixes (see policy_int.h), plus the error and path
 * helpers the policy module's files share.
 *
 * Every normalizer produces exactly one spelling for each destination, the
 * one the proxy compares against, and refuses input whose meaning could be
 * read two ways (an IP address written as a host, "127.1", an encoded slash
 * or dot in a URL path, a backslash).
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <idn2.h>

#include "policy_int.h"
#include "uri.h"

int
policy__fail(char *path, size_t pathlen, const char *where, char *err,
    size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (path != NULL && pathlen > 0)
		snprintf(path, pathlen, "%s", where != NULL ? where : "");
	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return MOAT_ERR_INVAL;
}

void
policy__path_key(char *out, size_t outlen, const char *base, const char *key)
{
	char safe[72];
	size_t o = 0, i;

	for (i = 0; key[i] != '\0' && i < 64; i++) {
		unsigned char c = (unsigned char)key[i];
		safe[o++] = c > 0x20 && c < 0x7f && c != '"' && c != '\\' ?
		    (char)c : '?';
	}
	if (key[i] != '\0') {
		memcpy(safe + o, "...", 3);
		o += 3;
	}
	safe[o] = '\0';
	if (base == NULL || base[0] == '\0')
		snprintf(out, outlen, "%s", safe);
	else
		snprintf(out, outlen, "%s.%s", base, safe);
}

bool
policy__name_ok(const char *s, size_t len)
{
	size_t i;

	if (len < 1 || len > 20 || strlen(s) != len)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-'))
			return false;
		if (c == '-' && (i == 0 || i == len - 1 || s[i - 1] == '-'))
			return false;
	}
	return true;
}

/*
 * True when the last label is a number ("1.2.3.4", "127.1", "0x7f",
 * "host.08"): URL parsers and inet_aton read such names as IPv4 addresses,
 * so a host rule must not be able to name one.
 */
static bool
ends_in_number(const char *h, size_t n)
{
	size_t i = n, j;

	while (i > 0 && h[i - 1] != '.')
		i--;
	if (i == n)
		return false;
	for (j = i; j < n && h[j] >= '0' && h[j] <= '9'; j++)
		;
	if (j == n)
		return true;
	if (n - i >= 2 && h[i] == '0' && (h[i + 1] == 'x' || h[i + 1] == 'X')) {
		for (j = i + 2; j < n && uri_hexval(h[j]) >= 0; j++)
			;
		return j == n;
	}
	return false;
}

int
policy__host(const char *in, size_t len, bool wildcard, char *out,
    size_t outlen, char *err, size_t errlen)
{
	char name[POLICY_HOST_MAX + 8];
	uint8_t *ascii = NULL;
	const char *h;
	size_t n, i, lab;
	bool star = false, nonascii = false;
	int r = MOAT_ERR_INVAL, rc;

	if (len == 0 || memchr(in, '\0', len) != NULL) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "a host name must not be empty");
		goto out;
	}
	/* Room for a Unicode name whose punycode form is at most 253. */
	if (len > 4 * POLICY_HOST_MAX) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "the host name is longer than %d bytes",
		    POLICY_HOST_MAX);
		goto out;
	}
	h = in;
	n = len;
	if (n >= 2 && h[0] == '*' && h[1] == '.') {
		if (!wildcard) {
			r = moat_fail(MOAT_ERR_INVAL, err, errlen, "a wildcard is not allowed "
			    "here");
			goto out;
		}
		star = true;
		h += 2;
		n -= 2;
	}
	if (memchr(h, '*', n) != NULL) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, wildcard ? "a wildcard may only be a "
		    "leading \"*.\" label" : "a wildcard is not allowed here");
		goto out;
	}
	if (n > 0 && h[n - 1] == '.')
		n--;
	if (n == 0) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "a host name must not be empty");
		goto out;
	}
	if (memchr(h, ':', n) != NULL || h[0] == '[') {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "an IP address is not a host name: use "
		    "a cidr rule");
		goto out;
	}
	for (i = 0; i < n; i++)
		if ((unsigned char)h[i] >= 0x80)
			nonascii = true;
	if (nonascii) {
		char *u = strndup(h, n);

		if (u == NULL) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
		rc = idn2_lookup_u8((const uint8_t *)u, &ascii,
		    IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
		free(u);
		if (rc != IDN2_OK) {
			if (rc == IDN2_MALLOC) {
				r = MOAT_ERR_NOMEM;
				goto out;
			}
			r = moat_fail(MOAT_ERR_INVAL, err, errlen, "not a valid internationalized "
			    "domain name (%s)", idn2_strerror(rc));
			goto out;
		}
		h = (const char *)ascii;
		n = strlen(h);
	}
	if (n > POLICY_HOST_MAX) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "the host name is longer than %d bytes",
		    POLICY_HOST_MAX);
		goto out;
	}
	for (i = 0; i < n; i++) {
		char c = h[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		name[i] = c;
	}
	name[n] = '\0';
	for (i = 0, lab = 0; i <= n; i++) {
		char c = name[i];

		if (c == '.' || c == '\0') {
			if (lab == 0) {
				r = moat_fail(MOAT_ERR_INVAL, err, errlen, "a host name must not "
				    "have an empty label");
				goto out;
			}
			if (lab > 63) {
				r = moat_fail(MOAT_ERR_INVAL, err, errlen, "a host name label is "
				    "longer than 63 bytes");
				goto out;
			}
			if (name[i - 1] == '-' || name[i - lab] == '-') {
				r = moat_fail(MOAT_ERR_INVAL, err, errlen, "a host name label must "
				    "not begin or end with '-'");
				goto out;
			}
			lab = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-')) {
			r = moat_fail(MOAT_ERR_INVAL, err, errlen, "a host name may hold only "
			    "letters, digits, '-' and '.'");
			goto out;
		}
		lab++;
	}
	if (ends_in_number(name, n)) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "an IP address is not a host name: use "
		    "a cidr rule");
		goto out;
	}
	if (star && memchr(name, '.', n) == NULL) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "\"*.\" must be followed by at least two "
		    "labels");
		goto out;
	}
	if ((size_t)snprintf(out, outlen, "%s%s", star ? "*." : "", name) >=
	    outlen) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen, "the host name is too long");
		goto out;
	}
	r = 0;
out:
	idn2_free(ascii);
	return r;
}

/* A prefix length: digits, no leading zero, at most max. */
static int
parse_prefix(const char *s, size_t n, unsigned max, unsigned *out)
{
	unsigned v = 0;
	size_t i;

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*out = v;
	return 0;
}

int
policy__cidr(const char *in, size_t len, char *out, size_t outlen,
    char *err, size_t errlen)
{
	char addr[INET6_ADDRSTRLEN + 1], text[INET6_ADDRSTRLEN];
	unsigned char bytes[16], net[16];
	const char *slash;
	size_t alen, nbytes, i;
	unsigned prefix, max;
	int af;
	bool hostbits = false;

	if (len == 0 || memchr(in, '\0', len) != NULL)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "a cidr must not be empty");
	slash = memchr(in, '/', len);
	alen = slash != NULL ? (size_t)(slash - in) : len;
	if (alen == 0 || alen >= sizeof(addr))
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "not an IPv4 or IPv6 address range");
	memcpy(addr, in, alen);
	addr[alen] = '\0';
	af = memchr(addr, ':', alen) != NULL ? AF_INET6 : AF_INET;
	max = af == AF_INET6 ? 128 : 32;
	nbytes = max / 8;
	/* glibc's inet_pton takes only four dotted decimal parts without
	 * leading zeros for IPv4, and refuses IPv6 zone ids. */
	if (inet_pton(af, addr, bytes) != 1)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "not an IPv4 or IPv6 address range");
	prefix = max;
	if (slash != NULL && parse_prefix(slash + 1, len - alen - 1, max,
	    &prefix) != 0)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the prefix length must be a number "
		    "from 0 to %u", max);
	if (af == AF_INET6 && prefix >= 96) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0,
		    0, 0, 0, 0xff, 0xff };

		if (memcmp(bytes, mapped, sizeof(mapped)) == 0)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "an IPv4-mapped IPv6 range: "
			    "write it as IPv4");
	}
	for (i = 0; i < nbytes; i++) {
		unsigned bits = prefix >= (i + 1) * 8 ? 8 :
		    prefix > i * 8 ? prefix - (unsigned)i * 8 : 0;
		unsigned char mask = (unsigned char)(bits == 0 ? 0 :
		    0xff << (8 - bits));

		net[i] = bytes[i] & mask;
		if (net[i] != bytes[i])
			hostbits = true;
	}
	if (inet_ntop(af, net, text, sizeof(text)) == NULL)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "not an IPv4 or IPv6 address range");
	if (hostbits)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the address has bits set past the "
		    "prefix length (the range is %s/%u)", text, prefix);
	if ((size_t)snprintf(out, outlen, "%s/%u", text, prefix) >= outlen)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the cidr is too long");
	return 0;
}

/* Appends n bytes to out (cap outlen including the NUL). */
static int
put(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
	if (*o + n >= outlen)
		return -1;
	memcpy(out + *o, s, n);
	*o += n;
	out[*o] = '\0';
	return 0;
}

/*
 * Canonical percent-encoding of a path: %XX with upper-case hex, an
 * encoded unreserved character decoded, raw bytes outside pchar encoded.
 * Refused: bad escapes, encoded '.', '/', '\\' (their meaning differs
 * between servers), control characters, '\\', '?' and '#'.
 */
static int
url_path_encode(const char *p, size_t n, char *out, size_t outlen, char *err,
    size_t errlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0;
	char enc[3];

	out[0] = '\0';
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '%') {
			unsigned v;

			if (i + 2 >= n || uri_hexval(p[i + 1]) < 0 ||
			    uri_hexval(p[i + 2]) < 0)
				return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL path has an "
				    "invalid %% escape");
			v = (unsigned)uri_hexval(p[i + 1]) << 4 | (unsigned)uri_hexval(p[i + 2]);
			i += 2;
			if (v == '.' || v == '/' || v == '\\')
				return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL path must "
				    "not encode '.', '/' or '\\' (%%2e, %%2f, "
				    "%%5c are ambiguous)");
			if (v < 0x20 || v == 0x7f)
				return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL path must "
				    "not hold control characters");
			if (uri_unreserved((unsigned char)v)) {
				enc[0] = (char)v;
				if (put(out, outlen, &o, enc, 1) != 0)
					goto toolong;
				continue;
			}
			c = (unsigned char)v;
			goto encode;
		}
		if (c == '\\')
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL path must not hold "
			    "a backslash");
		if (c == '?' || c == '#')
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "a url rule must not have a "
			    "query or fragment");
		if (c < 0x20 || c == 0x7f)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL path must not hold "
			    "control characters");
		if (uri_path_char(c)) {
			enc[0] = (char)c;
			if (put(out, outlen, &o, enc, 1) != 0)
				goto toolong;
			continue;
		}
encode:
		enc[0] = '%';
		enc[1] = hex[c >> 4];
		enc[2] = hex[c & 15];
		if (put(out, outlen, &o, enc, 3) != 0)
			goto toolong;
	}
	return 0;
toolong:
	return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL is longer than %d bytes",
	    POLICY_URL_MAX);
}

/*
 * RFC 3986 section 5.2.4 on an absolute path ('/' first), in place: "."
 * segments vanish, ".." removes the segment before it (never past the
 * root), and a path that ended in a dot segment keeps its trailing '/'.
 */
static void
url_remove_dots(char *p)
{
	size_t r = 1, w = 1, seg;
	size_t len = strlen(p);

	/* w: write position after a '/'; r: start of the next segment. */
	while (r <= len) {
		size_t e = r;
		bool last;

		while (e < len && p[e] != '/')
			e++;
		last = e >= len;
		seg = e - r;
		if (seg == 1 && p[r] == '.') {
			/* nothing written; a trailing "." leaves "/" */
		} else if (seg == 2 && p[r] == '.' && p[r + 1] == '.') {
			/* drop the last written segment */
			if (w > 1) {
				w--;	/* the '/' before the write point */
				while (w > 0 && p[w - 1] != '/')
					w--;
			}
		} else {
			memmove(p + w, p + r, seg);
			w += seg;
			if (!last)
				p[w++] = '/';
		}
		r = e + 1;
	}
	p[w] = '\0';
}

int
policy__url(const char *in, size_t len, char *out, size_t outlen, char *err,
    size_t errlen)
{
	char host[POLICY_HOST_MAX + 8], path[POLICY_URL_MAX + 1];
	const char *a, *ae, *colon, *end = in + len;
	unsigned long port = 80;
	size_t i;
	int r;

	if (len == 0 || memchr(in, '\0', len) != NULL)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "a url must not be empty");
	if (len > POLICY_URL_MAX)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL is longer than %d bytes",
		    POLICY_URL_MAX);
	if (len >= 8 && strncasecmp(in, "https://", 8) == 0)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "a url rule must be http:// (HTTPS "
		    "destinations are allowed by host rules)");
	if (len < 7 || strncasecmp(in, "http://", 7) != 0)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "a url rule must start with "
		    "http://");
	a = in + 7;
	for (ae = a; ae < end && *ae != '/' && *ae != '?' && *ae != '#' &&
	    *ae != '\\'; ae++)
		;
	if (ae < end && *ae == '\\')
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL must not hold a backslash");
	if (memchr(a, '@', (size_t)(ae - a)) != NULL)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "a url rule must not hold user "
		    "information");
	if (ae > a && *a == '[')
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "an IP address is not a host name: "
		    "use a cidr rule");
	colon = memrchr(a, ':', (size_t)(ae - a));
	if (colon != NULL) {
		size_t pn = (size_t)(ae - colon - 1);

		port = 0;
		if (pn == 0 || pn > 5 || colon[1] == '0')
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL port must be a "
			    "number from 1 to 65535");
		for (i = 0; i < pn; i++) {
			if (colon[1 + i] < '0' || colon[1 + i] > '9')
				return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL port must "
				    "be a number from 1 to 65535");
			port = port * 10 + (unsigned long)(colon[1 + i] - '0');
		}
		if (port < 1 || port > 65535)
			return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL port must be a "
			    "number from 1 to 65535");
	}
	if ((r = policy__host(a, (size_t)((colon != NULL ? colon : ae) - a),
	    false, host, sizeof(host), err, errlen)) != 0)
		return r;
	if (ae < end && (*ae == '?' || *ae == '#'))
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "a url rule must not have a query "
		    "or fragment");
	if (ae == end) {
		memcpy(path, "/", 2);
	} else if ((r = url_path_encode(ae, (size_t)(end - ae), path,
	    sizeof(path), err, errlen)) != 0) {
		return r;
	}
	url_remove_dots(path);
	if (port == 80)
		r = snprintf(out, outlen, "http://%s%s", host, path);
	else
		r = snprintf(out, outlen, "http://%s:%lu%s", host, port, path);
	if (r < 0 || (size_t)r >= outlen || (size_t)r > POLICY_URL_MAX)
		return moat_fail(MOAT_ERR_INVAL, err, errlen, "the URL is longer than %d bytes",
		    POLICY_URL_MAX);
	return 0;
}
