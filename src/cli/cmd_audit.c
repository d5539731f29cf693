/*
 * cmd_audit.c - "moat audit": checks an audit hash chain written by moatd.
 *
 *   moat audit verify FILE [--key PUB.pem] [--json]
 *
 * Verifies every record's order, link and hash, the checkpoint signatures
 * when --key names the checkpoint public key (a PEM public key, or the
 * private key whose public half is used), and FILE.checkpoint when present,
 * which detects truncation. Exit status: 0 verified, 1 the chain is broken,
 * 2 usage error or a file or key that cannot be read.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "audit.h"
#include "cli.h"

void
cmd_audit_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat audit verify FILE [--key PUB.pem] [--json]\n\n"
	    "Checks the audit chain FILE: the order, links and hashes of every\n"
	    "record, the checkpoint signatures with --key, and FILE.checkpoint\n"
	    "(when present), which reveals records truncated from the end.\n\n"
	    "  --key PUB.pem  the checkpoint public key (PEM, EC P-256)\n"
	    "  --json         print the result as one JSON object on stdout\n\n"
	    "Exit status: 0 verified, 1 broken, 2 usage or read error.\n");
}

static const char *
plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

static int
print_json(const struct audit_verify_result *res)
{
	json_t *o;
	char *s;

	o = json_pack("{s:b, s:I, s:I, s:I, s:I, s:b, s:b}",
	    "ok", res->ok, "records", (json_int_t)res->records,
	    "checkpoints", (json_int_t)res->checkpoints,
	    "last_checkpoint_seq", (json_int_t)res->last_checkpoint_seq,
	    "records_after_last_checkpoint", (json_int_t)res->unsigned_tail,
	    "signatures_checked", res->signatures_checked,
	    "checkpoint_file_checked", res->head_checked);
	if (o == NULL)
		return -1;
	if (!res->ok) {
		json_object_set_new(o, "bad_line",
		    json_integer((json_int_t)res->bad_line));
		json_object_set_new(o, "bad_seq",
		    json_integer((json_int_t)res->bad_seq));
		json_object_set_new(o, "reason", json_string(res->reason));
	}
	s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (s == NULL)
		return -1;
	printf("%s\n", s);
	free(s);
	return 0;
}

static void
print_ok(const struct audit_verify_result *res)
{
	printf("ok: %" PRIu64 " %s", res->records,
	    plural(res->records, "record", "records"));
	if (res->checkpoints == 0) {
		printf(", no checkpoint (none of the records is signed)");
	} else {
		printf(", %" PRIu64 " %s (%s), last checkpoint at seq %" PRIu64
		    ", %" PRIu64 " %s after it", res->checkpoints,
		    plural(res->checkpoints, "checkpoint", "checkpoints"),
		    res->signatures_checked ? "signatures verified" :
		    "signatures not checked: no --key given",
		    res->last_checkpoint_seq, res->unsigned_tail,
		    plural(res->unsigned_tail, "record", "records"));
	}
	if (res->head_checked)
		printf(", checkpoint file matches");
	printf("\n");
}

/* "broken: line 17 (seq 17): hash does not match its contents". The
 * verifier's reason starts with "record LINE: " when it names a record. */
static void
print_broken(const struct audit_verify_result *res)
{
	char prefix[48];
	const char *what = res->reason;
	int n;

	n = snprintf(prefix, sizeof(prefix), "record %" PRIu64 ": ",
	    res->bad_line);
	if (res->bad_line == 0 || n <= 0 || (size_t)n >= sizeof(prefix) ||
	    strncmp(what, prefix, (size_t)n) != 0) {
		fprintf(stderr, "broken: %s\n", what);
		return;
	}
	what += n;
	if (res->bad_seq != 0)
		fprintf(stderr, "broken: line %" PRIu64 " (seq %" PRIu64 "): "
		    "%s\n", res->bad_line, res->bad_seq, what);
	else
		fprintf(stderr, "broken: line %" PRIu64 ": %s\n",
		    res->bad_line, what);
}

static int
audit_verify_main(int argc, char **argv)
{
	struct audit_verify_result res;
	const char *file = NULL, *keyfile = NULL;
	EVP_PKEY *pub = NULL;
	bool json = false, opts_done = false;
	int r, status = CLI_USAGE;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!opts_done && strcmp(a, "--") == 0) {
			opts_done = true;
		} else if (!opts_done && (strcmp(a, "--help") == 0 ||
		    strcmp(a, "-h") == 0)) {
			cmd_audit_usage(stdout);
			return CLI_OK;
		} else if (!opts_done && strcmp(a, "--json") == 0) {
			json = true;
		} else if (!opts_done && strcmp(a, "--key") == 0) {
			if (i + 1 >= argc) {
				fprintf(stderr, "moat audit verify: --key needs "
				    "a file name\n");
				return CLI_USAGE;
			}
			keyfile = argv[++i];
		} else if (!opts_done && strncmp(a, "--key=", 6) == 0) {
			keyfile = a + 6;
		} else if (!opts_done && a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "moat audit verify: unknown option '%s' "
			    "(try moat help audit)\n", a);
			return CLI_USAGE;
		} else if (file == NULL) {
			file = a;
		} else {
			fprintf(stderr, "moat audit verify: one FILE only "
			    "(try moat help audit)\n");
			return CLI_USAGE;
		}
	}
	if (file == NULL) {
		fprintf(stderr, "moat audit verify: FILE missing (usage: moat "
		    "audit verify FILE [--key PUB.pem] [--json])\n");
		return CLI_USAGE;
	}
	if (keyfile != NULL && (pub = audit_load_pubkey(keyfile)) == NULL) {
		fprintf(stderr, "moat audit verify: cannot load an EC P-256 "
		    "public key from %s\n", keyfile);
		return CLI_USAGE;
	}
	r = audit_verify_file(file, pub, &res);
	if (r != 0 && r != MOAT_ERR_CORRUPT) {
		fprintf(stderr, "moat audit verify: %s\n", res.reason[0] ?
		    res.reason : moat_strerror(r));
		goto out;
	}
	status = r == 0 ? CLI_OK : CLI_FAILED;
	if (json) {
		if (print_json(&res) != 0) {
			fprintf(stderr, "moat audit verify: out of memory\n");
			status = CLI_USAGE;
		}
	} else if (r == 0) {
		print_ok(&res);
	} else {
		print_broken(&res);
	}
out:
	EVP_PKEY_free(pub);
	return status;
}

int
cmd_audit(int argc, char **argv)
{
	if (argc < 2) {
		cmd_audit_usage(stderr);
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		cmd_audit_usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "verify") == 0)
		return audit_verify_main(argc - 1, argv + 1);
	fprintf(stderr, "moat audit: unknown subcommand '%s' (try moat help "
	    "audit)\n", argv[1]);
	return CLI_USAGE;
}
