/*
 * fuzz_json_request.c - libFuzzer target for request-body parsing: feeds
 * json_parse_request with a field table of every kind (bounded strings and
 * ints, bools, an array, an object, numbers, any) and, on success, checks
 * the promised properties and runs json_canonical, whose output must parse
 * back to an equal value.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

static const struct json_field fields[] = {
	{ "name", JF_STRING, true, 64, 0, 0 },
	{ "desc", JF_STRING, false, 0, 0, 0 },
	{ "count", JF_INT, false, 0, 1, 100 },
	{ "offset", JF_INT, false, 0, 0, 0 },
	{ "enabled", JF_BOOL, false, 0, 0, 0 },
	{ "tags", JF_ARRAY, false, 8, 0, 0 },
	{ "spec", JF_OBJECT, false, 0, 0, 0 },
	{ "ratio", JF_NUMBER, false, 0, 0, 0 },
	{ "extra", JF_ANY, false, 0, 0, 0 },
};
#define NFIELDS (sizeof(fields) / sizeof(fields[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *v = NULL, *back;
	char err[256], *canon;
	size_t len = 0;
	const char *name;

	err[0] = '\0';
	if (json_parse_request(data, size, 16384, fields, NFIELDS, &v, err,
	    sizeof(err)) != 0) {
		if (v != NULL || err[0] == '\0')
			__builtin_trap();
		return 0;
	}
	name = json_get_str(v, "name");
	if (name == NULL || strlen(name) > 64)
		__builtin_trap();
	if (json_object_get(v, "count") != NULL &&
	    (json_get_int(v, "count", 0) < 1 ||
	    json_get_int(v, "count", 0) > 100))
		__builtin_trap();
	if ((canon = json_canonical(v, &len)) == NULL)
		__builtin_trap();
	if (strlen(canon) != len)
		__builtin_trap();
	back = json_loadb(canon, len, JSON_REJECT_DUPLICATES, NULL);
	if (back == NULL || !json_equal(back, v))
		__builtin_trap();
	json_decref(back);
	free(canon);
	json_decref(v);
	return 0;
}
