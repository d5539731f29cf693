/*
 * fuzz_proxy_state.c - libFuzzer target for the state document moatd
 * pushes to moat-proxy's control endpoint (control.h,
 * control_check_state): any JSON value, parsed the way the endpoint parses
 * bodies (json_parse_object). A refusal must be MOAT_ERR_INVAL with a
 * message; an accepted document must be accepted again after a round trip
 * through its canonical serialization.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "control.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *doc = NULL, *again = NULL;
	char err[512], *canon;
	size_t len = 0;
	int r;

	if (size > 256 * 1024)
		return 0;
	if (json_parse_object(data, size, 256 * 1024, &doc, err,
	    sizeof(err)) != 0)
		return 0;
	err[0] = '\0';
	r = control_check_state(doc, err, sizeof(err));
	if (r != 0) {
		if (r != MOAT_ERR_INVAL || err[0] == '\0')
			__builtin_trap();
		json_decref(doc);
		return 0;
	}
	if ((canon = json_canonical(doc, &len)) == NULL)
		__builtin_trap();
	if (json_parse_object((const uint8_t *)canon, len, 1024 * 1024, &again,
	    err, sizeof(err)) != 0 ||
	    control_check_state(again, err, sizeof(err)) != 0)
		__builtin_trap();
	free(canon);
	json_decref(again);
	json_decref(doc);
	return 0;
}
