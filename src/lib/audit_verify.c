/*
 * audit_verify.c - checks an audit chain (see audit.h): order, links,
 * hashes, checkpoint signatures, and the PATH.checkpoint head that detects
 * truncation. The input is untrusted: every line is size-bounded before it
 * is parsed, and the first problem found is reported in English.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "audit_int.h"

/* What PATH.checkpoint says: the seq, hash and signature of the latest
 * checkpoint record. */
struct head {
	uint64_t seq;
	char hash[AUDIT_HASH_HEX + 1];
	char sig[AUDIT_SIG_B64 + 1];
};

static int
fail(struct audit_verify_result *res, uint64_t line, uint64_t seq,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static int
fail(struct audit_verify_result *res, uint64_t line, uint64_t seq,
    const char *fmt, ...)
{
	va_list ap;

	res->ok = false;
	res->bad_line = line;
	res->bad_seq = seq;
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
	return MOAT_ERR_CORRUPT;
}

/* Copies a JSON string of exactly want bytes into out; false otherwise. */
static bool
get_fixed(const json_t *obj, const char *key, char *out, size_t want)
{
	const json_t *v = json_object_get(obj, key);

	if (!json_is_string(v) || json_string_length(v) != want)
		return false;
	memcpy(out, json_string_value(v), want + 1);
	return true;
}

static bool
parse_head(const uint8_t *data, size_t len, struct head *h)
{
	json_t *o = NULL, *seqv;
	uint8_t tmp[AUDIT_SIG_LEN];
	const char *type;
	bool ok = false;

	if (len > 0 && data[len - 1] == '\n')
		len--;
	if (len == 0 || len > AUDIT_MAX_LINE)
		return false;
	if ((o = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES,
	    NULL)) == NULL || !json_is_object(o))
		goto out;
	seqv = json_object_get(o, "seq");
	type = json_string_value(json_object_get(o, "type"));
	if (!json_is_integer(seqv) || json_integer_value(seqv) < 1 ||
	    type == NULL || strcmp(type, AUDIT_CHECKPOINT_TYPE) != 0 ||
	    !get_fixed(o, "hash", h->hash, AUDIT_HASH_HEX) ||
	    !get_fixed(o, "sig", h->sig, AUDIT_SIG_B64) ||
	    !audit__unhex(h->hash, AUDIT_HASH_HEX, tmp, AUDIT_HASH_LEN))
		goto out;
	h->seq = (uint64_t)json_integer_value(seqv);
	ok = true;
out:
	json_decref(o);
	return ok;
}

/* Checks a checkpoint record's signature fields, and its signature when a
 * key is given. prev_hex/seq: the record it covers. */
static int
check_checkpoint(const json_t *rec, uint64_t covered_seq,
    const char *prev_hex, EVP_PKEY *pub, uint64_t line, uint64_t seq,
    struct audit_verify_result *res)
{
	const char *key_id = json_string_value(json_object_get(rec, "key_id"));
	const json_t *sigv = json_object_get(rec, "sig");
	uint8_t sig[AUDIT_SIG_LEN];
	char *payload;
	size_t plen;
	int r;

	if (!audit__valid_key_id(key_id) || !json_is_string(sigv) ||
	    !audit__b64url_decode(json_string_value(sigv),
	    json_string_length(sigv), sig, sizeof(sig)))
		return fail(res, line, seq, "record %llu: malformed checkpoint "
		    "(key_id or sig missing or invalid)",
		    (unsigned long long)line);
	if (pub == NULL)
		return 0;
	if ((payload = audit__ckpt_payload(covered_seq, prev_hex, key_id,
	    &plen)) == NULL)
		return MOAT_ERR_NOMEM;
	r = audit__es256_verify(pub, (const uint8_t *)payload, plen, sig);
	free(payload);
	if (r == MOAT_ERR_NOMEM)
		return r;
	if (r != 0)
		return fail(res, line, seq, "record %llu: checkpoint signature "
		    "does not verify with the given key (key_id %s)",
		    (unsigned long long)line, key_id);
	return 0;
}

int
audit_verify_buf(const uint8_t *data, size_t len, EVP_PKEY *pub,
    const uint8_t *head, size_t head_len, struct audit_verify_result *res)
{
	struct head h;
	bool have_head = false, head_seen = false;
	uint8_t prev[AUDIT_HASH_LEN] = { 0 }, want[AUDIT_HASH_LEN],
	    got[AUDIT_HASH_LEN];
	char prev_hex[AUDIT_HASH_HEX + 1], hash_hex[AUDIT_HASH_HEX + 1];
	uint64_t expect = 1, line = 0;
	size_t pos = 0;
	json_t *rec = NULL;
	int r;

	memset(res, 0, sizeof(*res));
	res->signatures_checked = pub != NULL;
	audit__hex(prev, sizeof(prev), prev_hex);
	if (data == NULL)
		len = 0;
	if (head != NULL && head_len > 0) {
		if (!parse_head(head, head_len, &h)) {
			r = fail(res, 0, 0, "the checkpoint file is not a valid "
			    "checkpoint record");
			goto out;
		}
		have_head = true;
	}

	while (pos < len) {
		size_t room = len - pos, linelen;
		const uint8_t *p = data + pos, *nl;
		const json_t *seqv;
		const char *type;
		uint64_t seq;
		bool is_ckpt;

		line++;
		nl = memchr(p, '\n', room < AUDIT_MAX_LINE + 1 ? room :
		    AUDIT_MAX_LINE + 1);
		if (nl == NULL) {
			if (room > AUDIT_MAX_LINE)
				r = fail(res, line, 0, "record %llu: line longer "
				    "than the limit of %d bytes",
				    (unsigned long long)line, AUDIT_MAX_LINE);
			else
				r = fail(res, line, 0, "record %llu: the last "
				    "line is cut short (no newline): a partial "
				    "record", (unsigned long long)line);
			goto out;
		}
		linelen = (size_t)(nl - p);
		if ((rec = json_loadb((const char *)p, linelen,
		    JSON_REJECT_DUPLICATES, NULL)) == NULL ||
		    !json_is_object(rec)) {
			r = fail(res, line, 0, "record %llu: not a JSON object",
			    (unsigned long long)line);
			goto out;
		}
		seqv = json_object_get(rec, "seq");
		if (!json_is_integer(seqv) || json_integer_value(seqv) < 1) {
			r = fail(res, line, 0, "record %llu: no valid seq",
			    (unsigned long long)line);
			goto out;
		}
		seq = (uint64_t)json_integer_value(seqv);
		if (seq != expect) {
			if (expect == 1)
				r = fail(res, line, seq, "record %llu: sequence "
				    "%llu at the start of the chain (expected 1: "
				    "records missing)", (unsigned long long)line,
				    (unsigned long long)seq);
			else
				r = fail(res, line, seq, "record %llu: sequence "
				    "%llu follows %llu (records missing or "
				    "reordered)", (unsigned long long)line,
				    (unsigned long long)seq,
				    (unsigned long long)(expect - 1));
			goto out;
		}
		if (!json_is_string(json_object_get(rec, "prev")) ||
		    strcmp(json_string_value(json_object_get(rec, "prev")),
		    prev_hex) != 0) {
			r = fail(res, line, seq, "record %llu: prev does not "
			    "match the hash of the record before it (records "
			    "replaced or edited)", (unsigned long long)line);
			goto out;
		}
		if (!get_fixed(rec, "hash", hash_hex, AUDIT_HASH_HEX) ||
		    !audit__unhex(hash_hex, AUDIT_HASH_HEX, want,
		    sizeof(want))) {
			r = fail(res, line, seq, "record %llu: missing or "
			    "malformed hash", (unsigned long long)line);
			goto out;
		}
		json_object_del(rec, "hash");
		if ((r = audit__record_hash(rec, prev, got)) != 0)
			goto out;
		if (memcmp(want, got, sizeof(got)) != 0) {
			r = fail(res, line, seq, "record %llu: hash does not "
			    "match its contents", (unsigned long long)line);
			goto out;
		}
		type = json_string_value(json_object_get(rec, "type"));
		is_ckpt = type != NULL && strcmp(type, AUDIT_CHECKPOINT_TYPE) == 0;
		if (is_ckpt && (r = check_checkpoint(rec, seq - 1, prev_hex, pub,
		    line, seq, res)) != 0)
			goto out;
		if (have_head && seq == h.seq) {
			const char *sig = json_string_value(json_object_get(rec,
			    "sig"));
			if (!is_ckpt || strcmp(hash_hex, h.hash) != 0 ||
			    sig == NULL || strcmp(sig, h.sig) != 0) {
				r = fail(res, line, seq, "record %llu: does not "
				    "match the checkpoint file for seq %llu",
				    (unsigned long long)line,
				    (unsigned long long)seq);
				goto out;
			}
			head_seen = true;
		}
		/* Counted only once the record passed every check. */
		if (is_ckpt) {
			res->checkpoints++;
			res->last_checkpoint_seq = seq;
			res->unsigned_tail = 0;
		} else {
			res->unsigned_tail++;
		}
		json_decref(rec);
		rec = NULL;
		memcpy(prev, want, sizeof(prev));
		memcpy(prev_hex, hash_hex, sizeof(prev_hex));
		res->records++;
		expect++;
		pos += linelen + 1;
	}
	if (have_head && !head_seen) {
		r = fail(res, line + 1, expect, "chain ends at seq %llu but the "
		    "checkpoint file covers seq %llu: records were truncated",
		    (unsigned long long)(expect - 1),
		    (unsigned long long)h.seq);
		goto out;
	}
	res->head_checked = have_head;
	res->ok = true;
	r = 0;
out:
	json_decref(rec);
	if (r != 0 && r != MOAT_ERR_CORRUPT) {
		res->ok = false;
		snprintf(res->reason, sizeof(res->reason),
		    "verification failed: %s", moat_strerror(r));
	}
	return r;
}

/* Reads a small file whole (at most max bytes; more is MOAT_ERR_TOOBIG). */
static int
read_small(const char *path, size_t max, uint8_t **out, size_t *len)
{
	uint8_t *b = NULL;
	size_t n = 0;
	ssize_t k;
	int fd, r;

	*out = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return moat_err_from_errno(errno);
	r = MOAT_ERR_NOMEM;
	if ((b = malloc(max + 1)) == NULL)
		goto out;
	for (;;) {
		k = read(fd, b + n, max + 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = moat_err_from_errno(errno);
			goto out;
		}
		if (k == 0)
			break;
		n += (size_t)k;
		if (n > max) {
			r = MOAT_ERR_TOOBIG;
			goto out;
		}
	}
	*out = b;
	*len = n;
	b = NULL;
	r = 0;
out:
	free(b);
	close(fd);
	return r;
}

int
audit_verify_file(const char *path, EVP_PKEY *pub,
    struct audit_verify_result *res)
{
	struct stat st;
	uint8_t *head = NULL;
	size_t head_len = 0;
	char head_path[4096];
	void *map = NULL;
	int fd = -1, r;

	memset(res, 0, sizeof(*res));
	res->signatures_checked = pub != NULL;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 ||
	    fstat(fd, &st) != 0) {
		r = moat_err_from_errno(errno);
		snprintf(res->reason, sizeof(res->reason), "cannot read %s: %s",
		    path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = MOAT_ERR_INVAL;
		snprintf(res->reason, sizeof(res->reason),
		    "%s is not a regular file", path);
		goto out;
	}
	if (snprintf(head_path, sizeof(head_path), "%s.checkpoint", path) >=
	    (int)sizeof(head_path)) {
		r = MOAT_ERR_TOOBIG;
		snprintf(res->reason, sizeof(res->reason), "path too long");
		goto out;
	}
	r = read_small(head_path, AUDIT_MAX_LINE + 1, &head, &head_len);
	if (r == MOAT_ERR_TOOBIG) {
		r = fail(res, 0, 0, "the checkpoint file is larger than a "
		    "record can be");
		goto out;
	}
	if (r == 0 && head_len == 0) {
		/* The writer replaces it atomically: never empty. */
		r = fail(res, 0, 0, "the checkpoint file is empty");
		goto out;
	}
	if (r != 0 && r != MOAT_ERR_NOTFOUND) {
		snprintf(res->reason, sizeof(res->reason),
		    "cannot read %s.checkpoint: %s", path, moat_strerror(r));
		goto out;
	}
	if (st.st_size > 0) {
		/* Mapped rather than read: chains can be large. */
		map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
		    fd, 0);
		if (map == MAP_FAILED) {
			map = NULL;
			r = moat_err_from_errno(errno);
			snprintf(res->reason, sizeof(res->reason),
			    "cannot map %s: %s", path, strerror(errno));
			goto out;
		}
	}
	r = audit_verify_buf(map, (size_t)st.st_size, pub, head, head_len,
	    res);
out:
	if (map != NULL)
		munmap(map, (size_t)st.st_size);
	if (fd >= 0)
		close(fd);
	free(head);
	return r;
}

EVP_PKEY *
audit_load_pubkey(const char *pem_file)
{
	EVP_PKEY *k = NULL, *pub = NULL;
	unsigned char *der = NULL;
	const unsigned char *p;
	FILE *f;
	int n;

	if (pem_file == NULL || (f = fopen(pem_file, "re")) == NULL)
		return NULL;
	if ((k = PEM_read_PUBKEY(f, NULL, NULL, NULL)) == NULL) {
		/* A private key file: keep only its public half. */
		rewind(f);
		if ((k = PEM_read_PrivateKey(f, NULL, NULL, NULL)) != NULL &&
		    (n = i2d_PUBKEY(k, &der)) > 0) {
			p = der;
			pub = d2i_PUBKEY(NULL, &p, n);
		}
		EVP_PKEY_free(k);
		OPENSSL_free(der);
		k = pub;
	}
	fclose(f);
	ERR_clear_error();
	if (k != NULL && !audit__key_is_p256(k)) {
		EVP_PKEY_free(k);
		k = NULL;
	}
	return k;
}
