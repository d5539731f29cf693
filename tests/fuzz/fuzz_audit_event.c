/*
 * fuzz_audit_event.c - the audit collector's checks on events sent by other
 * processes (SSH session processes, moat-proxy) over its socket.
 *
 * Runs exactly what the collector runs on one message: strict JSON parsing
 * bounded by AUDIT_MAX_EVENT, then audit__check_remote(). An accepted event
 * must then canonicalize (the writer hashes that form) and must not carry
 * any field the writer owns.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "audit_int.h"
#include "json.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[128];
	json_t *ev = NULL;
	char *canon;
	size_t len;

	if (json_parse_object(data, size, AUDIT_MAX_EVENT, &ev, why,
	    sizeof(why)) != 0)
		return 0;
	if (audit__check_remote(ev, why, sizeof(why))) {
		static const char *const owned[] = { "seq", "prev", "hash",
		    "source" };

		for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++)
			if (json_object_get(ev, owned[i]) != NULL)
				abort();	/* a sender set a writer-owned field */
		if ((canon = audit__canonical(ev, &len)) == NULL)
			abort();
		free(canon);
	} else if (why[0] == '\0') {
		abort();	/* a refusal always says why */
	}
	json_decref(ev);
	return 0;
}
