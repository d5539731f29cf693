/*
 * fuzz_audit_canonical.c - audit__canonical_add, which the audit writer
 * uses to make a record's line from its hashed canonical form without
 * serializing the record a second time.
 *
 * Input: a selector byte (which key to add: "hash" or a name sorting just
 * around it), then a JSON object (events carry untrusted strings: hosts,
 * URLs, user names). The oracle is a second serialization: whenever
 * audit__canonical_add gives a result, it must be byte for byte the
 * canonical form of the object with the member set; it may refuse only
 * when the key is already a member or a top-level key needs an escape.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "audit_int.h"
#include "json.h"

static bool
key_needs_escape(const char *k)
{
	for (; *k != '\0'; k++)
		if ((unsigned char)*k < 0x20 || *k == '"' || *k == '\\')
			return true;
	return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = { "hash", "has", "hasi", "a", "z",
	    "hash_" };
	static const char value[] = "0123456789abcdef0123456789abcdef"
	    "0123456789abcdef0123456789abcdef";
	char why[128];
	const char *key, *k;
	json_t *o = NULL, *v;
	char *canon = NULL, *want = NULL, *got = NULL;
	size_t clen, wlen, glen = 0;
	bool member, escaped = false;

	if (size < 1)
		return 0;
	key = keys[data[0] % (sizeof(keys) / sizeof(keys[0]))];
	if (json_parse_object(data + 1, size - 1, AUDIT_MAX_EVENT, &o, why,
	    sizeof(why)) != 0)
		return 0;
	json_object_foreach(o, k, v) {
		(void)v;
		if (key_needs_escape(k))
			escaped = true;
	}
	member = json_object_get(o, key) != NULL;
	if ((canon = audit__canonical(o, &clen)) == NULL)
		goto out;
	got = audit__canonical_add(canon, clen, key, value, &glen);
	if (got == NULL) {
		if (!member && !escaped)
			abort();	/* refused a form it should handle */
		goto out;
	}
	if (member)
		abort();		/* would have made a duplicate key */
	if (json_object_set_new(o, key, json_string(value)) != 0 ||
	    (want = audit__canonical(o, &wlen)) == NULL)
		goto out;
	if (glen != wlen || memcmp(got, want, wlen) != 0)
		abort();
out:
	free(canon);
	free(want);
	free(got);
	json_decref(o);
	return 0;
}
