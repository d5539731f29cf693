/*
 * uri.c - RFC 3986 character classes (see uri.h).
 */
#include <string.h>

#include "uri.h"

int
uri_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
uri_unreserved(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

bool
uri_path_char(int c)
{
	/* c != '\0': strchr would find the terminator. */
	return uri_unreserved(c) || (c != '\0' && c > 0 && c < 0x80 &&
	    strchr("!$&'()*+,;=:@/", c) != NULL);
}

bool
uri_dns_label(const char *s, size_t n)
{
	if (s == NULL || n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' &&
		    s[i] <= '9') || s[i] == '-'))
			return false;
	return true;
}
