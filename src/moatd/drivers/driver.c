/*
 * driver.c - what every runtime driver shares: the name of a workspace's
 * runtime object. The name is used in URLs and by the runtime as a unique
 * key, so the workspace id is checked against a small character set first.
 */
#include <stdio.h>
#include <string.h>

#include "drivers/driver.h"

#define DRIVER_ID_MAX 64

/* A workspace id: 1..64 bytes of [A-Za-z0-9_.-], starting with a letter or
 * digit (the Docker container-name grammar, which also keeps URLs plain). */
static bool
driver_id_ok(const char *id)
{
	size_t n, i;

	if (id == NULL)
		return false;
	n = strnlen(id, DRIVER_ID_MAX + 1);
	if (n == 0 || n > DRIVER_ID_MAX)
		return false;
	for (i = 0; i < n; i++) {
		char c = id[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9');

		if (i == 0 && !alnum)
			return false;
		if (!alnum && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

int
driver_object_name(const char *workspace_id, char *out, size_t outlen)
{
	int n;

	if (out != NULL && outlen > 0)
		out[0] = '\0';
	if (out == NULL || !driver_id_ok(workspace_id))
		return MOAT_ERR_INVAL;
	n = snprintf(out, outlen, "moat-%s", workspace_id);
	if (n < 0 || (size_t)n >= outlen) {
		if (outlen > 0)
			out[0] = '\0';
		return MOAT_ERR_TOOBIG;
	}
	return 0;
}
