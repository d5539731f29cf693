/*
 * fuzz_policy.c - libFuzzer target for egress policy and organization
 * settings documents. The first byte selects the input form and the
 * validator: 0 JSON policy, 1 YAML policy, 2 JSON settings, 3 YAML
 * settings (the byte is taken modulo 4). On refusal the error text must be
 * filled and no document returned; on success the normalized document must
 * serialize, and normalizing it again must give it back unchanged.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef int (*normalize_fn)(const json_t *, json_t **, char *, size_t,
    char *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	normalize_fn norm;
	json_t *doc = NULL, *out = NULL, *again = NULL;
	char err[256], path[256], *canon;
	unsigned sel;
	int r;

	if (size < 1)
		return 0;
	sel = data[0] % 4;
	data++;
	size--;
	norm = sel < 2 ? policy_normalize : settings_normalize;
	err[0] = '\0';
	if (sel % 2 == 0) {
		if (size > 256 * 1024)
			return 0;
		doc = json_loadb((const char *)data, size,
		    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
		if (doc == NULL)
			return 0;
	} else {
		r = policy_yaml_to_json((const char *)data, size, &doc, err,
		    sizeof(err));
		if (r != 0) {
			if (doc != NULL || err[0] == '\0')
				__builtin_trap();
			return 0;
		}
		if (doc == NULL)
			__builtin_trap();
	}
	err[0] = '\0';
	path[0] = '\0';
	r = norm(doc, &out, path, sizeof(path), err, sizeof(err));
	if (r != 0) {
		if (r != MOAT_ERR_INVAL && r != MOAT_ERR_NOMEM)
			__builtin_trap();
		if (out != NULL || (r == MOAT_ERR_INVAL && err[0] == '\0'))
			__builtin_trap();
		json_decref(doc);
		return 0;
	}
	if (out == NULL || !json_is_object(out))
		__builtin_trap();
	if ((canon = json_canonical(out, NULL)) == NULL)
		__builtin_trap();
	free(canon);
	/* the normal form is a fixed point */
	if (norm(out, &again, path, sizeof(path), err, sizeof(err)) != 0 ||
	    !json_equal(out, again))
		__builtin_trap();
	json_decref(again);
	json_decref(out);
	json_decref(doc);
	return 0;
}
