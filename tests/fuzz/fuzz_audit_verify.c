/*
 * fuzz_audit_verify.c - libFuzzer target for the audit chain verifier
 * (audit_verify_buf), the parser of chain files and PATH.checkpoint heads.
 *
 * The input is split at its first NUL byte: before it the chain, after it
 * the head (no NUL: no head). Each input is verified twice, without a key
 * and with a fixed checkpoint public key (the one that signed the seed
 * chains in corpus/audit_verify; its private half is not kept anywhere),
 * and the results are checked for consistency: a key only adds checks, and
 * a result is either ok with no reason or broken with one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "audit.h"
#include "log.h"

static const char pub_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEVhTKs6iQqhqVJA4GQsutjHytDnYD\n"
    "Z6XAlauExxtm5LxhwiwgNxzghBwWCFHx9vOzq9aEzxyu9aw1g7mX2nb0Lg==\n"
    "-----END PUBLIC KEY-----\n";

static EVP_PKEY *pub;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	BIO *b = BIO_new_mem_buf(pub_pem, -1);

	(void)argc;
	(void)argv;
	if (b == NULL || (pub = PEM_read_bio_PUBKEY(b, NULL, NULL, NULL)) ==
	    NULL)
		abort();
	BIO_free(b);
	log_set_level(LOG_ERROR);
	return 0;
}

static void
check_consistent(int r, const struct audit_verify_result *res)
{
	size_t n = strnlen(res->reason, sizeof(res->reason));

	if (n == sizeof(res->reason))
		abort();	/* reason not terminated */
	if ((r == 0) != res->ok)
		abort();
	if (r == 0 && (res->bad_line != 0 || n != 0))
		abort();
	if (r != 0 && (r != MOAT_ERR_CORRUPT || n == 0))
		abort();
	if (res->checkpoints > res->records ||
	    res->unsigned_tail > res->records ||
	    res->last_checkpoint_seq > res->records)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct audit_verify_result plain, keyed;
	const uint8_t *nul = memchr(data, 0, size);
	size_t chain_len = nul != NULL ? (size_t)(nul - data) : size;
	const uint8_t *head = nul != NULL ? nul + 1 : NULL;
	size_t head_len = nul != NULL ? size - chain_len - 1 : 0;
	int r1, r2;

	r1 = audit_verify_buf(data, chain_len, NULL, head, head_len, &plain);
	check_consistent(r1, &plain);
	r2 = audit_verify_buf(data, chain_len, pub, head, head_len, &keyed);
	check_consistent(r2, &keyed);
	if (plain.signatures_checked || !keyed.signatures_checked)
		abort();
	/* The key adds checks, never removes one. */
	if (r2 == 0 && r1 != 0)
		abort();
	if (r1 == 0 && r2 == 0 && (plain.records != keyed.records ||
	    plain.checkpoints != keyed.checkpoints))
		abort();
	return 0;
}
