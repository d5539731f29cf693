/*
 * fuzz_agentproto.c - libFuzzer target for agentproto_decode(): any input
 * gives a whole frame (consumed within the input), "need more" or a
 * malformed-frame error with a reason. A decoded message re-encodes
 * (encode never refuses what decode accepted), the re-encoding decodes to
 * the same fields and is canonical (encoding it again gives the same bytes).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentproto.h"

static struct agentproto_msg m1, m2, m3;
static uint8_t enc1[4 + AGENTPROTO_MAX_FRAME], enc2[4 + AGENTPROTO_MAX_FRAME];

static void
same_fields(const struct agentproto_msg *a, const struct agentproto_msg *b)
{
	if (a->type != b->type || a->version != b->version ||
	    a->port != b->port || a->offset != b->offset ||
	    a->data_len != b->data_len || a->log_end != b->log_end ||
	    a->sshd_up != b->sshd_up || a->idle_seconds != b->idle_seconds ||
	    a->connections != b->connections || a->startup != b->startup ||
	    a->startup_exit != b->startup_exit ||
	    strcmp(a->reason, b->reason) != 0 || a->nsecrets != b->nsecrets)
		abort();
	if (a->data_len > 0 && memcmp(a->data, b->data, a->data_len) != 0)
		abort();
	for (size_t i = 0; i < a->nsecrets; i++) {
		const struct agentproto_secret *x = &a->secrets[i];
		const struct agentproto_secret *y = &b->secrets[i];

		if (strcmp(x->name, y->name) != 0 ||
		    strcmp(x->env, y->env) != 0 ||
		    x->value_len != y->value_len ||
		    (x->value_len > 0 &&
		    memcmp(x->value, y->value, x->value_len) != 0))
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[128];
	long n = agentproto_decode(data, size, &m1, err, sizeof(err));
	long e1, e2;

	if (n < 0) {
		if (err[0] == '\0')
			abort();
		return 0;
	}
	if (n == 0) {
		/* Only a frame that is not all there yet asks for more. */
		if (size >= 4 + (size_t)AGENTPROTO_MAX_FRAME)
			abort();
		return 0;
	}
	if ((size_t)n > size || n > 4 + AGENTPROTO_MAX_FRAME)
		abort();
	/* Decoding the frame alone gives the same; one byte less is short. */
	if (agentproto_decode(data, (size_t)n, &m2, NULL, 0) != n ||
	    agentproto_decode(data, (size_t)n - 1, &m3, NULL, 0) != 0)
		abort();
	e1 = agentproto_encode(&m1, enc1, sizeof(enc1));
	if (e1 <= 0)
		abort();
	if (agentproto_decode(enc1, (size_t)e1, &m2, err, sizeof(err)) != e1)
		abort();
	same_fields(&m1, &m2);
	e2 = agentproto_encode(&m2, enc2, sizeof(enc2));
	if (e2 != e1 || memcmp(enc1, enc2, (size_t)e1) != 0)
		abort();
	/* A buffer one byte short is refused, never overrun. */
	if (agentproto_encode(&m2, enc2, (size_t)e1 - 1) != -1)
		abort();
	return 0;
}
