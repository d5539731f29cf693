/*
 * agentproto.c - encoder and decoder of the agent socket protocol
 * (agentproto.h). libc only: the statically linked moat-agent builds it.
 *
 * Frame: u32 length N (big-endian, 1..AGENTPROTO_MAX_FRAME), u8 type, then
 * fields (u8 tag, u16 length, bytes). The tags:
 *
 *   1 VERSION       u32    STATUS_REPLY
 *   2 PORT          u16    DIAL (required, not 0)
 *   3 OFFSET        u64    LOG, LOG_REPLY
 *   4 DATA          bytes  LOG_REPLY (<= AGENTPROTO_MAX_LOG_CHUNK)
 *   5 LOG_END       u64    LOG_REPLY (offset + data length <= log end)
 *   6 SSHD_UP       u8     STATUS_REPLY (0 or 1)
 *   7 IDLE          u32    STATUS_REPLY
 *   8 CONNECTIONS   u32    STATUS_REPLY
 *   9 STARTUP       u8     STATUS_REPLY (enum agentproto_startup)
 *  10 STARTUP_EXIT  u32    STATUS_REPLY (int32 two's complement)
 *  11 REASON        bytes  ERR (printable ASCII, <= AGENTPROTO_MAX_REASON)
 *  12 SECRET        u8 name length, name, u8 env length, env, value (rest)
 *                          SECRETS, may repeat (<= AGENTPROTO_MAX_SECRETS,
 *                          names and env names unique within a message)
 *
 * A tag the message's type does not use is skipped like an unknown one (its
 * length is still checked); a fixed-width field of the wrong length, a
 * repeated tag (other than SECRET) or a field running past the frame makes
 * the frame malformed. The encoder writes the fields of the type only, in
 * tag order, so decode(encode(m)) == m and encode(decode(f)) is canonical.
 */
#include <stdio.h>
#include <string.h>

#include "agentproto.h"

enum {
	AP_T_VERSION = 1,
	AP_T_PORT = 2,
	AP_T_OFFSET = 3,
	AP_T_DATA = 4,
	AP_T_LOG_END = 5,
	AP_T_SSHD_UP = 6,
	AP_T_IDLE = 7,
	AP_T_CONNS = 8,
	AP_T_STARTUP = 9,
	AP_T_STARTUP_EXIT = 10,
	AP_T_REASON = 11,
	AP_T_SECRET = 12,
	AP_T__MAX = 12
};

#define AP_FIELD_MAX 0xffffu

/* Which tags each type uses, as a bit mask over tag numbers. */
static uint32_t
ap_tags_of(int type)
{
	switch (type) {
	case AGENTPROTO_STATUS:
	case AGENTPROTO_ACTIVITY:
	case AGENTPROTO_OK:
		return 0;
	case AGENTPROTO_SECRETS:
		return 1u << AP_T_SECRET;
	case AGENTPROTO_DIAL:
		return 1u << AP_T_PORT;
	case AGENTPROTO_LOG:
		return 1u << AP_T_OFFSET;
	case AGENTPROTO_ERR:
		return 1u << AP_T_REASON;
	case AGENTPROTO_STATUS_REPLY:
		return (1u << AP_T_VERSION) | (1u << AP_T_SSHD_UP) |
		    (1u << AP_T_IDLE) | (1u << AP_T_CONNS) |
		    (1u << AP_T_STARTUP) | (1u << AP_T_STARTUP_EXIT);
	case AGENTPROTO_LOG_REPLY:
		return (1u << AP_T_OFFSET) | (1u << AP_T_DATA) |
		    (1u << AP_T_LOG_END);
	default:
		return UINT32_MAX;	/* unknown type */
	}
}

static int
ap_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > AGENTPROTO_MAX_NAME)
		return 0;
	if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' &&
	    s[1] == '.'))
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Empty is accepted here (no variable); the caller decides. */
static int
ap_env_ok(const char *s, size_t len)
{
	if (len > AGENTPROTO_MAX_NAME)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    c == '_';

		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return 0;
	}
	return 1;
}

static int
ap_reason_ok(const char *s, size_t len)
{
	if (len > AGENTPROTO_MAX_REASON)
		return 0;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return 0;
	return 1;
}

static uint64_t
ap_get_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

static void
ap_put_be(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = n; i > 0; i--) {
		p[i - 1] = (uint8_t)(v & 0xff);
		v >>= 8;
	}
}

/* Encoder state: a bounded output cursor. */
struct ap_out {
	uint8_t *p;
	size_t len, cap;
	int bad;
};

static void
ap_field(struct ap_out *o, int tag, const void *a, size_t alen,
    const void *b, size_t blen)
{
	size_t n = alen + blen;

	if (o->bad || n > AP_FIELD_MAX || o->cap - o->len < 3 + n) {
		o->bad = 1;
		return;
	}
	o->p[o->len] = (uint8_t)tag;
	ap_put_be(o->p + o->len + 1, n, 2);
	if (alen > 0)
		memcpy(o->p + o->len + 3, a, alen);
	if (blen > 0)
		memcpy(o->p + o->len + 3 + alen, b, blen);
	o->len += 3 + n;
}

static void
ap_field_int(struct ap_out *o, int tag, uint64_t v, size_t width)
{
	uint8_t b[8];

	ap_put_be(b, v, width);
	ap_field(o, tag, b, width, NULL, 0);
}

static void
ap_field_secret(struct ap_out *o, const struct agentproto_secret *s)
{
	size_t nl = strnlen(s->name, sizeof(s->name));
	size_t el = strnlen(s->env, sizeof(s->env));
	uint8_t head[2 + 2 * AGENTPROTO_MAX_NAME];

	if (nl >= sizeof(s->name) || el >= sizeof(s->env) ||
	    !ap_name_ok(s->name, nl) || !ap_env_ok(s->env, el) ||
	    (s->value == NULL && s->value_len > 0)) {
		o->bad = 1;
		return;
	}
	head[0] = (uint8_t)nl;
	memcpy(head + 1, s->name, nl);
	head[1 + nl] = (uint8_t)el;
	memcpy(head + 2 + nl, s->env, el);
	ap_field(o, AP_T_SECRET, head, 2 + nl + el, s->value, s->value_len);
}

long
agentproto_encode(const struct agentproto_msg *msg, uint8_t *out,
    size_t outlen)
{
	struct ap_out o;
	uint32_t tags;

	if (msg == NULL || out == NULL || outlen < 5)
		return -1;
	tags = ap_tags_of((int)msg->type);
	if (tags == UINT32_MAX)
		return -1;
	o.p = out;
	o.cap = outlen < 4 + (size_t)AGENTPROTO_MAX_FRAME ? outlen :
	    4 + (size_t)AGENTPROTO_MAX_FRAME;
	o.len = 5;
	o.bad = 0;
	out[4] = (uint8_t)msg->type;

	if (tags & (1u << AP_T_VERSION))
		ap_field_int(&o, AP_T_VERSION, msg->version, 4);
	if (tags & (1u << AP_T_PORT)) {
		if (msg->port == 0)
			return -1;
		ap_field_int(&o, AP_T_PORT, msg->port, 2);
	}
	if (tags & (1u << AP_T_OFFSET))
		ap_field_int(&o, AP_T_OFFSET, msg->offset, 8);
	if (tags & (1u << AP_T_DATA)) {
		if (msg->data_len > AGENTPROTO_MAX_LOG_CHUNK ||
		    (msg->data == NULL && msg->data_len > 0) ||
		    msg->offset > UINT64_MAX - msg->data_len ||
		    msg->offset + msg->data_len > msg->log_end)
			return -1;
		ap_field(&o, AP_T_DATA, msg->data, msg->data_len, NULL, 0);
	}
	if (tags & (1u << AP_T_LOG_END))
		ap_field_int(&o, AP_T_LOG_END, msg->log_end, 8);
	if (tags & (1u << AP_T_SSHD_UP))
		ap_field_int(&o, AP_T_SSHD_UP, msg->sshd_up ? 1 : 0, 1);
	if (tags & (1u << AP_T_IDLE))
		ap_field_int(&o, AP_T_IDLE, msg->idle_seconds, 4);
	if (tags & (1u << AP_T_CONNS))
		ap_field_int(&o, AP_T_CONNS, msg->connections, 4);
	if (tags & (1u << AP_T_STARTUP)) {
		if ((unsigned)msg->startup > AGENTPROTO_STARTUP_FAILED)
			return -1;
		ap_field_int(&o, AP_T_STARTUP, (uint64_t)msg->startup, 1);
	}
	if (tags & (1u << AP_T_STARTUP_EXIT))
		ap_field_int(&o, AP_T_STARTUP_EXIT,
		    (uint32_t)msg->startup_exit, 4);
	if (tags & (1u << AP_T_REASON)) {
		size_t rl = strnlen(msg->reason, sizeof(msg->reason));

		if (rl >= sizeof(msg->reason) || !ap_reason_ok(msg->reason, rl))
			return -1;
		ap_field(&o, AP_T_REASON, msg->reason, rl, NULL, 0);
	}
	if (tags & (1u << AP_T_SECRET)) {
		if (msg->nsecrets > AGENTPROTO_MAX_SECRETS)
			return -1;
		for (size_t i = 0; i < msg->nsecrets; i++)
			ap_field_secret(&o, &msg->secrets[i]);
	}
	if (o.bad || o.len - 4 > AGENTPROTO_MAX_FRAME)
		return -1;
	ap_put_be(out, o.len - 4, 4);
	return (long)o.len;
}

static long
ap_fail(char *err, size_t errlen, const char *what)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "agent protocol: %s", what);
	return -1;
}

/* Decodes one SECRET field's body into s (value borrowed). */
static int
ap_decode_secret(const uint8_t *p, size_t n, struct agentproto_secret *s)
{
	size_t nl, el;

	if (n < 1)
		return -1;
	nl = p[0];
	if (n < 1 + nl + 1)
		return -1;
	el = p[1 + nl];
	if (n < 2 + nl + el)
		return -1;
	if (!ap_name_ok((const char *)p + 1, nl) ||
	    !ap_env_ok((const char *)p + 2 + nl, el))
		return -1;
	memcpy(s->name, p + 1, nl);
	s->name[nl] = '\0';
	memcpy(s->env, p + 2 + nl, el);
	s->env[el] = '\0';
	s->value = p + 2 + nl + el;
	s->value_len = n - 2 - nl - el;
	return 0;
}

static int
ap_secret_dup(const struct agentproto_msg *m, const struct agentproto_secret *s)
{
	for (size_t i = 0; i < m->nsecrets; i++) {
		if (strcmp(m->secrets[i].name, s->name) == 0)
			return 1;
		if (s->env[0] != '\0' && strcmp(m->secrets[i].env, s->env) == 0)
			return 1;
	}
	return 0;
}

long
agentproto_decode(const uint8_t *buf, size_t len,
    struct agentproto_msg *msg, char *err, size_t errlen)
{
	uint32_t n, tags, seen = 0;
	const uint8_t *p, *end;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (msg == NULL || (buf == NULL && len > 0))
		return ap_fail(err, errlen, "invalid arguments");
	if (len < 4)
		return 0;
	n = (uint32_t)ap_get_be(buf, 4);
	if (n == 0)
		return ap_fail(err, errlen, "empty frame");
	if (n > AGENTPROTO_MAX_FRAME)
		return ap_fail(err, errlen, "frame too large");
	if (len - 4 < n)
		return 0;

	memset(msg, 0, sizeof(*msg));
	msg->type = (enum agentproto_type)buf[4];
	tags = ap_tags_of(buf[4]);
	if (tags == UINT32_MAX)
		return ap_fail(err, errlen, "unknown message type");
	p = buf + 5;
	end = buf + 4 + n;
	while (p < end) {
		unsigned tag;
		size_t flen;
		const uint8_t *f;

		if (end - p < 3)
			return ap_fail(err, errlen, "truncated field header");
		tag = p[0];
		flen = (size_t)ap_get_be(p + 1, 2);
		f = p + 3;
		if ((size_t)(end - f) < flen)
			return ap_fail(err, errlen, "field runs past the frame");
		p = f + flen;
		if (tag == 0 || tag > AP_T__MAX || !(tags & (1u << tag)))
			continue;	/* unknown or unused here: skipped */
		if (tag != AP_T_SECRET && (seen & (1u << tag)))
			return ap_fail(err, errlen, "repeated field");
		seen |= 1u << tag;

		switch (tag) {
		case AP_T_VERSION:
		case AP_T_IDLE:
		case AP_T_CONNS:
		case AP_T_STARTUP_EXIT:
			if (flen != 4)
				return ap_fail(err, errlen, "bad field width");
			if (tag == AP_T_VERSION)
				msg->version = (uint32_t)ap_get_be(f, 4);
			else if (tag == AP_T_IDLE)
				msg->idle_seconds = (uint32_t)ap_get_be(f, 4);
			else if (tag == AP_T_CONNS)
				msg->connections = (uint32_t)ap_get_be(f, 4);
			else
				msg->startup_exit =
				    (int32_t)(uint32_t)ap_get_be(f, 4);
			break;
		case AP_T_PORT:
			if (flen != 2)
				return ap_fail(err, errlen, "bad field width");
			msg->port = (uint16_t)ap_get_be(f, 2);
			if (msg->port == 0)
				return ap_fail(err, errlen, "port 0");
			break;
		case AP_T_OFFSET:
		case AP_T_LOG_END:
			if (flen != 8)
				return ap_fail(err, errlen, "bad field width");
			if (tag == AP_T_OFFSET)
				msg->offset = ap_get_be(f, 8);
			else
				msg->log_end = ap_get_be(f, 8);
			break;
		case AP_T_DATA:
			if (flen > AGENTPROTO_MAX_LOG_CHUNK)
				return ap_fail(err, errlen, "log chunk too large");
			msg->data = f;
			msg->data_len = flen;
			break;
		case AP_T_SSHD_UP:
			if (flen != 1 || f[0] > 1)
				return ap_fail(err, errlen, "bad sshd_up field");
			msg->sshd_up = f[0] == 1;
			break;
		case AP_T_STARTUP:
			if (flen != 1 || f[0] > AGENTPROTO_STARTUP_FAILED)
				return ap_fail(err, errlen, "bad startup field");
			msg->startup = (enum agentproto_startup)f[0];
			break;
		case AP_T_REASON:
			if (!ap_reason_ok((const char *)f, flen))
				return ap_fail(err, errlen, "bad reason");
			memcpy(msg->reason, f, flen);
			msg->reason[flen] = '\0';
			break;
		case AP_T_SECRET: {
			struct agentproto_secret s;

			if (msg->nsecrets >= AGENTPROTO_MAX_SECRETS)
				return ap_fail(err, errlen, "too many secrets");
			if (ap_decode_secret(f, flen, &s) != 0)
				return ap_fail(err, errlen, "bad secret field");
			if (ap_secret_dup(msg, &s))
				return ap_fail(err, errlen,
				    "repeated secret name or variable");
			msg->secrets[msg->nsecrets++] = s;
			break;
		}
		default:
			break;
		}
	}
	if (msg->type == AGENTPROTO_DIAL && msg->port == 0)
		return ap_fail(err, errlen, "dial without a port");
	if (msg->type == AGENTPROTO_LOG_REPLY &&
	    (msg->offset > UINT64_MAX - msg->data_len ||
	    msg->offset + msg->data_len > msg->log_end))
		return ap_fail(err, errlen, "log chunk beyond the log's end");
	return (long)(4 + n);
}
