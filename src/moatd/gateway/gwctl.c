/*
 * gwctl.c - framing, strict parsing and sending of the control messages
 * between the SSH gateway's parent and its session processes (gwctl.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "json.h"

#include "gateway/gwctl.h"

const char *const gwctl_audit_types[] = {
	"session.start",
	"session.end",
	"port_forward.open",
	"port_forward.close",
	"port_forward.denied",
	"file_transfer.allowed",
	"file_transfer.denied",
	"agent_forward.open",
	"ssh.request.denied",
	"ssh.upstream.failed",
	NULL
};

/* Largest "details" object a child may attach (serialized bytes). */
#define GWCTL_MAX_DETAILS 8192

static int
fail(char *err, size_t errlen, int r, const char *why)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s", why);
	return r;
}

static const struct {
	const char *name;
	enum gwctl_type type;
	bool from_child;
} gwctl_names[] = {
	{ "auth", GWCTL_AUTH, true },
	{ "rec_begin", GWCTL_REC_BEGIN, true },
	{ "rec", GWCTL_REC, true },
	{ "rec_end", GWCTL_REC_END, true },
	{ "audit", GWCTL_AUDIT, true },
	{ "activity", GWCTL_ACTIVITY, true },
	{ "init", GWCTL_INIT, false },
	{ "auth_result", GWCTL_AUTH_RESULT, false },
	{ "progress", GWCTL_PROGRESS, false },
	{ "upstream", GWCTL_UPSTREAM, false },
	{ "fail", GWCTL_FAIL, false },
	{ "close", GWCTL_CLOSE, false },
};

/* Field tables of the child's messages ("t" included). */
static const struct json_field f_auth[] = {
	{ "t", JF_STRING, true, 16, 0, 0 },
	{ "login", JF_STRING, true, GWCTL_MAX_LOGIN, 0, 0 },
	{ "key", JF_STRING, true, GWCTL_MAX_KEY, 0, 0 },
	{ "signed", JF_BOOL, true, 0, 0, 0 },
};
static const struct json_field f_rec_begin[] = {
	{ "t", JF_STRING, true, 16, 0, 0 },
	{ "ch", JF_INT, true, 0, 0, GWCTL_MAX_CHANNEL },
	{ "header", JF_STRING, true, GWCTL_MAX_HEADER, 0, 0 },
};
static const struct json_field f_rec[] = {
	{ "t", JF_STRING, true, 16, 0, 0 },
	{ "ch", JF_INT, true, 0, 0, GWCTL_MAX_CHANNEL },
	{ "data", JF_STRING, true, GWCTL_MAX_REC_DATA, 0, 0 },
};
static const struct json_field f_rec_end[] = {
	{ "t", JF_STRING, true, 16, 0, 0 },
	{ "ch", JF_INT, true, 0, 0, GWCTL_MAX_CHANNEL },
	{ "duration", JF_NUMBER, true, 0, 0, 0 },
};
static const struct json_field f_audit[] = {
	{ "t", JF_STRING, true, 16, 0, 0 },
	{ "type", JF_STRING, true, 64, 0, 0 },
	{ "outcome", JF_STRING, true, 16, 0, 0 },
	{ "details", JF_OBJECT, true, 0, 0, 0 },
};
static const struct json_field f_activity[] = {
	{ "t", JF_STRING, true, 16, 0, 0 },
	{ "in", JF_INT, true, 0, 0, (long long)1 << 53 },
	{ "out", JF_INT, true, 0, 0, (long long)1 << 53 },
	{ "forwards", JF_INT, true, 0, 0, 100000 },
};

/* Every string in v (recursively) is valid text without NUL; numbers
 * finite; depth already bounded by the parser. */
static bool
details_ok(const json_t *v, int depth)
{
	const char *k;
	json_t *item;
	size_t i;

	if (depth > 4)
		return false;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (json_object_size(v) > 32)
			return false;
		json_object_foreach((json_t *)v, k, item) {
			if (strlen(k) > 64 || !details_ok(item, depth + 1))
				return false;
		}
		return true;
	case JSON_ARRAY:
		if (json_array_size(v) > 32)
			return false;
		json_array_foreach(v, i, item)
			if (!details_ok(item, depth + 1))
				return false;
		return true;
	case JSON_STRING:
		return json_string_length(v) <= 2048 &&
		    strlen(json_string_value(v)) == json_string_length(v);
	default:
		return true;
	}
}

static int
parse_frame(const uint8_t *pkt, size_t len, json_t **obj, enum gwctl_type *type,
    bool want_child, char *err, size_t errlen)
{
	uint32_t n;
	const char *t;
	int r;

	*obj = NULL;
	if (pkt == NULL || len < 4)
		return fail(err, errlen, MOAT_ERR_PARSE, "short message");
	if (len > GWCTL_MAX_MSG)
		return fail(err, errlen, MOAT_ERR_TOOBIG, "message too large");
	n = ((uint32_t)pkt[0] << 24) | ((uint32_t)pkt[1] << 16) |
	    ((uint32_t)pkt[2] << 8) | pkt[3];
	if ((size_t)n != len - 4)
		return fail(err, errlen, MOAT_ERR_PARSE, "length mismatch");
	if ((r = json_parse_object(pkt + 4, n, GWCTL_MAX_MSG, obj, err,
	    errlen)) != 0)
		return r;
	t = json_get_str(*obj, "t");
	if (t == NULL)
		goto bad;
	for (size_t i = 0; i < sizeof(gwctl_names) / sizeof(gwctl_names[0]); i++)
		if (strcmp(t, gwctl_names[i].name) == 0 &&
		    gwctl_names[i].from_child == want_child) {
			*type = gwctl_names[i].type;
			return 0;
		}
bad:
	json_decref(*obj);
	*obj = NULL;
	return fail(err, errlen, MOAT_ERR_PARSE, "unknown message type");
}

int
gwctl_parse_child(const uint8_t *pkt, size_t len, struct gwctl_msg *out,
    char *err, size_t errlen)
{
	const struct json_field *f = NULL;
	size_t nf = 0;
	json_t *obj = NULL;
	enum gwctl_type type = GWCTL_NONE;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = parse_frame(pkt, len, &obj, &type, true, err, errlen)) != 0)
		return r;
	switch (type) {
	case GWCTL_AUTH: f = f_auth; nf = 4; break;
	case GWCTL_REC_BEGIN: f = f_rec_begin; nf = 3; break;
	case GWCTL_REC: f = f_rec; nf = 3; break;
	case GWCTL_REC_END: f = f_rec_end; nf = 3; break;
	case GWCTL_AUDIT: f = f_audit; nf = 4; break;
	case GWCTL_ACTIVITY: f = f_activity; nf = 4; break;
	default:
		r = fail(err, errlen, MOAT_ERR_PARSE, "unexpected message");
		goto out;
	}
	if ((r = json_check_fields(obj, f, nf, err, errlen)) != 0)
		goto out;
	out->type = type;
	out->obj = obj;
	switch (type) {
	case GWCTL_AUTH:
		out->login = json_get_str(obj, "login");
		out->key = json_get_str(obj, "key");
		out->is_signed = json_is_true(json_object_get(obj, "signed"));
		if (strlen(out->login) != json_string_length(json_object_get(
		    obj, "login")) || strlen(out->key) != json_string_length(
		    json_object_get(obj, "key"))) {
			r = fail(err, errlen, MOAT_ERR_PARSE, "NUL in a string");
			goto reset;
		}
		break;
	case GWCTL_REC_BEGIN:
	case GWCTL_REC: {
		const json_t *s = json_object_get(obj, type == GWCTL_REC ?
		    "data" : "header");

		out->ch = (int)json_get_int(obj, "ch", -1);
		out->text = json_string_value(s);
		out->text_len = json_string_length(s);
		/* Event lines: complete, newline-terminated, no NUL. */
		if (out->text_len == 0 || out->text[out->text_len - 1] != '\n' ||
		    memchr(out->text, '\0', out->text_len) != NULL) {
			r = fail(err, errlen, MOAT_ERR_PARSE, "recording lines "
			    "must be whole lines");
			goto reset;
		}
		break;
	}
	case GWCTL_REC_END:
		out->ch = (int)json_get_int(obj, "ch", -1);
		out->duration = json_number_value(json_object_get(obj,
		    "duration"));
		if (!(out->duration >= 0 && out->duration < 1e9)) {
			r = fail(err, errlen, MOAT_ERR_PARSE, "bad duration");
			goto reset;
		}
		break;
	case GWCTL_AUDIT: {
		size_t i;
		const char *oc;
		char *txt;
		size_t tl = 0;

		out->audit_type = json_get_str(obj, "type");
		oc = json_get_str(obj, "outcome");
		for (i = 0; gwctl_audit_types[i] != NULL; i++)
			if (strcmp(out->audit_type, gwctl_audit_types[i]) == 0)
				break;
		if (gwctl_audit_types[i] == NULL) {
			r = fail(err, errlen, MOAT_ERR_PARSE, "audit type not "
			    "allowed");
			goto reset;
		}
		if (strcmp(oc, "success") != 0 && strcmp(oc, "failure") != 0 &&
		    strcmp(oc, "denied") != 0) {
			r = fail(err, errlen, MOAT_ERR_PARSE, "bad outcome");
			goto reset;
		}
		out->outcome = oc;
		out->details = json_object_get(obj, "details");
		if (!details_ok(out->details, 0) ||
		    (txt = json_dumps(out->details, JSON_COMPACT)) == NULL) {
			r = fail(err, errlen, MOAT_ERR_PARSE, "bad details");
			goto reset;
		}
		tl = strlen(txt);
		free(txt);
		if (tl > GWCTL_MAX_DETAILS) {
			r = fail(err, errlen, MOAT_ERR_TOOBIG, "details too large");
			goto reset;
		}
		break;
	}
	case GWCTL_ACTIVITY:
		out->bytes_in = (uint64_t)json_get_int(obj, "in", 0);
		out->bytes_out = (uint64_t)json_get_int(obj, "out", 0);
		out->forwards = (unsigned)json_get_int(obj, "forwards", 0);
		break;
	default:
		break;
	}
	return 0;
reset:
	memset(out, 0, sizeof(*out));
out:
	json_decref(obj);
	return r;
}

int
gwctl_parse_parent(const uint8_t *pkt, size_t len, struct gwctl_msg *out,
    char *err, size_t errlen)
{
	json_t *obj = NULL;
	enum gwctl_type type = GWCTL_NONE;
	const json_t *s;
	int r;

	memset(out, 0, sizeof(*out));
	if ((r = parse_frame(pkt, len, &obj, &type, false, err, errlen)) != 0)
		return r;
	out->type = type;
	out->obj = obj;
	s = json_object_get(obj, type == GWCTL_PROGRESS ? "text" : "message");
	if (json_is_string(s)) {
		out->text = json_string_value(s);
		out->text_len = json_string_length(s);
	}
	return 0;
}

void
gwctl_msg_clear(struct gwctl_msg *m)
{
	if (m == NULL)
		return;
	json_decref(m->obj);
	memset(m, 0, sizeof(*m));
}

int
gwctl_send(int fd, const json_t *obj, const int *fds, size_t nfds)
{
	char *txt = NULL;
	size_t n;
	uint8_t hdr[4];
	struct iovec iov[2];
	struct msghdr mh;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * GWCTL_MAX_FDS)];
	} cm;
	ssize_t w;
	int r = MOAT_ERR_NOMEM;

	if (nfds > GWCTL_MAX_FDS)
		return MOAT_ERR_INVAL;
	if ((txt = json_dumps(obj, JSON_COMPACT)) == NULL)
		goto out;
	n = strlen(txt);
	if (n + 4 > GWCTL_MAX_MSG) {
		r = MOAT_ERR_TOOBIG;
		goto out;
	}
	hdr[0] = (uint8_t)(n >> 24);
	hdr[1] = (uint8_t)(n >> 16);
	hdr[2] = (uint8_t)(n >> 8);
	hdr[3] = (uint8_t)n;
	iov[0].iov_base = hdr;
	iov[0].iov_len = 4;
	iov[1].iov_base = txt;
	iov[1].iov_len = n;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = iov;
	mh.msg_iovlen = 2;
	if (nfds > 0) {
		struct cmsghdr *c;

		memset(&cm, 0, sizeof(cm));
		mh.msg_control = cm.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do {
		w = sendmsg(fd, &mh, MSG_NOSIGNAL);
	} while (w < 0 && errno == EINTR);
	if (w < 0) {
		r = errno == EAGAIN || errno == EWOULDBLOCK ? MOAT_ERR_AGAIN :
		    errno == EPIPE || errno == ECONNRESET ? MOAT_ERR_CLOSED :
		    moat_err_from_errno(errno);
		goto out;
	}
	r = (size_t)w == n + 4 ? 0 : MOAT_ERR_IO;
out:
	free(txt);
	return r;
}

int
gwctl_recv(int fd, uint8_t *buf, size_t cap, size_t *len, int *fds,
    size_t *nfds)
{
	struct iovec iov;
	struct msghdr mh;
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * GWCTL_MAX_FDS)];
	} cm;
	struct cmsghdr *c;
	ssize_t n;
	size_t got = 0;
	int r = 0;

	*len = 0;
	*nfds = 0;
	iov.iov_base = buf;
	iov.iov_len = cap;
	memset(&mh, 0, sizeof(mh));
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cm.buf;
	mh.msg_controllen = sizeof(cm.buf);
	do {
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? MOAT_ERR_AGAIN :
		    errno == ECONNRESET ? MOAT_ERR_CLOSED :
		    moat_err_from_errno(errno);
	for (c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int d;

			memcpy(&d, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (got < GWCTL_MAX_FDS && fds != NULL)
				fds[got++] = d;
			else
				close(d);
		}
	}
	if (n == 0) {
		r = MOAT_ERR_CLOSED;
	} else if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0) {
		r = MOAT_ERR_TOOBIG;
	}
	if (r != 0) {
		for (size_t i = 0; i < got; i++)
			close(fds[i]);
		return r;
	}
	*len = (size_t)n;
	*nfds = got;
	return 0;
}
