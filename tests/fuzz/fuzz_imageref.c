/*
 * fuzz_imageref.c - libFuzzer target for image references (imageref.h),
 * which arrive in template bodies from the API.
 *
 * The input is taken as one string (cut at the first NUL, like a JSON
 * string the API has already refused NULs in). On refusal the reason must
 * be filled in. On success: every part is within its bounds, only bytes of
 * the grammar occur, the canonical form is exactly the parts joined, it
 * parses again to itself, and the reference's own registry is allowed by a
 * list holding just that registry and refused by one holding it with a
 * port appended.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "imageref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_charset(const char *s, const char *allowed)
{
	for (; *s != '\0'; s++)
		if (strchr(allowed, *s) == NULL)
			__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char lower[] = "abcdefghijklmnopqrstuvwxyz0123456789";
	char in[IMAGEREF_MAX + 64], err[200], joined[1024], other[300];
	char set[128];
	struct imageref ref, again;
	json_t *list;
	size_t n = size < sizeof(in) - 1 ? size : sizeof(in) - 1;

	memcpy(in, data, n);
	in[n] = '\0';
	err[0] = '\0';
	if (imageref_parse(in, &ref, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			__builtin_trap();
		return 0;
	}
	if (strlen(in) > IMAGEREF_MAX || ref.registry[0] == '\0' ||
	    ref.path[0] == '\0' || (ref.tag[0] == '\0' && ref.digest[0] == '\0'))
		__builtin_trap();
	snprintf(set, sizeof(set), "%s.-:", lower);
	check_charset(ref.registry, set);
	snprintf(set, sizeof(set), "%s._-/", lower);
	check_charset(ref.path, set);
	snprintf(set, sizeof(set), "%sABCDEFGHIJKLMNOPQRSTUVWXYZ_.-", lower);
	check_charset(ref.tag, set);
	if (strlen(ref.tag) > 128 ||
	    (ref.digest[0] != '\0' && strlen(ref.digest) != 71))
		__builtin_trap();
	snprintf(joined, sizeof(joined), "%s/%s%s%s%s%s", ref.registry,
	    ref.path, ref.tag[0] ? ":" : "", ref.tag, ref.digest[0] ? "@" : "",
	    ref.digest);
	if (strcmp(joined, ref.canonical) != 0)
		__builtin_trap();
	if (imageref_parse(ref.canonical, &again, err, sizeof(err)) == 0) {
		if (strcmp(again.canonical, ref.canonical) != 0 ||
		    strcmp(again.registry, ref.registry) != 0 ||
		    strcmp(again.path, ref.path) != 0 ||
		    strcmp(again.tag, ref.tag) != 0 ||
		    strcmp(again.digest, ref.digest) != 0)
			__builtin_trap();
	} else if (strlen(ref.canonical) <= IMAGEREF_MAX) {
		/* only a canonical form made longer than the limit may fail */
		__builtin_trap();
	}
	if ((list = json_array()) == NULL)
		return 0;
	if (json_array_append_new(list, json_string(ref.registry)) == 0 &&
	    !imageref_registry_allowed(&ref, list))
		__builtin_trap();
	json_array_clear(list);
	snprintf(other, sizeof(other), "%s:1", ref.registry);
	if (json_array_append_new(list, json_string(other)) == 0 &&
	    imageref_registry_allowed(&ref, list))
		__builtin_trap();
	json_decref(list);
	return 0;
}
