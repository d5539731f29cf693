/*
 * fuzz_gwctl.c - libFuzzer target for gwctl_parse_child(), the parser of
 * what an SSH session process (untrusted: it may be compromised) sends
 * the gateway's parent. Any input is accepted with every field in bounds
 * (strings without NUL, recording data whole lines, audit types from the
 * allow-list, channel numbers in range) or refused with a reason; an
 * accepted message re-serializes and parses again to the same fields.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/gwctl.h"

static void
check(const struct gwctl_msg *m)
{
	switch (m->type) {
	case GWCTL_AUTH:
		if (m->login == NULL || m->key == NULL ||
		    strlen(m->login) > GWCTL_MAX_LOGIN ||
		    strlen(m->key) > GWCTL_MAX_KEY)
			abort();
		break;
	case GWCTL_REC_BEGIN:
	case GWCTL_REC:
		if (m->ch < 0 || m->ch > GWCTL_MAX_CHANNEL || m->text == NULL ||
		    m->text_len == 0 || m->text[m->text_len - 1] != '\n' ||
		    memchr(m->text, '\0', m->text_len) != NULL)
			abort();
		break;
	case GWCTL_REC_END:
		if (m->ch < 0 || m->ch > GWCTL_MAX_CHANNEL ||
		    !(m->duration >= 0))
			abort();
		break;
	case GWCTL_AUDIT: {
		size_t i;

		for (i = 0; gwctl_audit_types[i] != NULL; i++)
			if (strcmp(gwctl_audit_types[i], m->audit_type) == 0)
				break;
		if (gwctl_audit_types[i] == NULL || m->details == NULL ||
		    !json_is_object(m->details))
			abort();
		break;
	}
	case GWCTL_ACTIVITY:
		break;
	default:
		abort();	/* parent-only types are never accepted */
	}
}

static void one(const uint8_t *data, size_t size);

/* Each input is tried as it is (framing included) and, so that the
 * fuzzer reaches the JSON checks without guessing the length prefix, as
 * the body of a correctly framed packet. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *pkt;

	struct gwctl_msg m;
	char err[128];

	one(data, size);
	/* The session process's side of the parser must not crash either. */
	if (gwctl_parse_parent(data, size, &m, err, sizeof(err)) == 0)
		gwctl_msg_clear(&m);
	if (size + 4 > GWCTL_MAX_MSG || (pkt = malloc(size + 4)) == NULL)
		return 0;
	pkt[0] = (uint8_t)(size >> 24);
	pkt[1] = (uint8_t)(size >> 16);
	pkt[2] = (uint8_t)(size >> 8);
	pkt[3] = (uint8_t)size;
	if (size > 0)
		memcpy(pkt + 4, data, size);
	one(pkt, size + 4);
	free(pkt);
	return 0;
}

static void
one(const uint8_t *data, size_t size)
{
	struct gwctl_msg m, again;
	char err[128];
	char *txt;
	uint8_t *pkt;
	size_t n;

	err[0] = '\0';
	if (gwctl_parse_child(data, size, &m, err, sizeof(err)) != 0) {
		if (err[0] == '\0')
			abort();
		return;
	}
	check(&m);
	/* Round trip: the object as the child would send it. */
	if ((txt = json_dumps(m.obj, JSON_COMPACT)) == NULL)
		abort();
	n = strlen(txt);
	if ((pkt = malloc(n + 4)) == NULL)
		abort();
	pkt[0] = (uint8_t)(n >> 24);
	pkt[1] = (uint8_t)(n >> 16);
	pkt[2] = (uint8_t)(n >> 8);
	pkt[3] = (uint8_t)n;
	memcpy(pkt + 4, txt, n);
	if (n + 4 <= GWCTL_MAX_MSG) {
		if (gwctl_parse_child(pkt, n + 4, &again, err, sizeof(err)) != 0 ||
		    again.type != m.type || again.ch != m.ch ||
		    again.text_len != m.text_len || again.is_signed != m.is_signed)
			abort();
		gwctl_msg_clear(&again);
	}
	free(pkt);
	free(txt);
	gwctl_msg_clear(&m);
}
