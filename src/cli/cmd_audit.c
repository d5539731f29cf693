/*
 * cmd_audit.c - "moat audit": reads the audit trail from moatd, and checks
 * an audit hash chain file written by moatd.
 *
 *   moat audit tail [--type T] [--since TIME] [--limit N] [--follow] [--json]
 *   moat audit verify FILE [--key PUB.pem] [--json]
 *
 * tail asks GET /api/v1/audit (audit:read) for the most recent events,
 * oldest first; --follow then polls every second for events after the last
 * sequence number seen, until interrupted.
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
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "audit.h"
#include "cli.h"
#include "cli_args.h"
#include "cli_http.h"
#include "cli_out.h"

void
cmd_audit_usage(FILE *f)
{
	fprintf(f,
	    "usage: moat audit tail [--type T] [--since TIME] [--limit N]\n"
	    "                       [--follow] [--json]\n"
	    "       moat audit verify FILE [--key PUB.pem] [--json]\n\n"
	    "tail shows the most recent audit events of the current server\n"
	    "(needs audit:read), oldest first:\n"
	    "  --type T      an event type (auth.login), or a prefix (auth.)\n"
	    "  --since TIME  events after a sequence number, at or after an\n"
	    "                RFC 3339 UTC time, or within a duration (10m, 2h)\n"
	    "  --limit N     at most N events (1..1000, default 20)\n"
	    "  --follow      then print new events as they come (every second)\n"
	    "  --json        one JSON object per line\n\n"
	    "verify checks the audit chain FILE: the order, links and hashes of every\n"
	    "record, the checkpoint signatures with --key, and FILE.checkpoint\n"
	    "(when present), which reveals records truncated from the end.\n\n"
	    "  --key PUB.pem  the checkpoint public key (PEM, EC P-256)\n"
	    "  --json         print the result as one JSON object on stdout\n\n"
	    "Exit status of verify: 0 verified, 1 broken, 2 usage or read "
	    "error.\n");
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

/* ---- moat audit tail ---- */

/* One event as one line: time, seq, type, outcome, actor, target. */
static void
print_event(const json_t *e, bool json)
{
	const json_t *actor = json_object_get(e, "actor");
	const json_t *target = json_object_get(e, "target");
	const char *who, *tn;
	char t[32], ty[96], oc[32], wh[96], tg[160], tt[160];

	if (json) {
		char *s = json_dumps(e, JSON_COMPACT | JSON_SORT_KEYS);

		if (s != NULL)
			printf("%s\n", s);
		free(s);
		return;
	}
	who = json_string_value(json_object_get(actor, "user"));
	if (who == NULL)
		who = json_string_value(json_object_get(actor, "addr"));
	tn = json_string_value(json_object_get(target, "name"));
	if (tn == NULL)
		tn = json_string_value(json_object_get(target, "id"));
	snprintf(tt, sizeof(tt), "%s%s%s", cli_str(target, "type"),
	    tn != NULL ? " " : "", tn != NULL ? tn : "");
	printf("%s  %6" PRId64 "  %-22s  %-7s  %-16s  %s\n",
	    cli_time(json_string_value(json_object_get(e, "time")), t,
	    sizeof(t)), (int64_t)json_integer_value(json_object_get(e, "seq")),
	    cli_clean(cli_str(e, "type"), ty, sizeof(ty)),
	    cli_clean(cli_str(e, "outcome"), oc, sizeof(oc)),
	    cli_clean(who, wh, sizeof(wh)), cli_clean(target != NULL ? tt :
	    "-", tg, sizeof(tg)));
}

/* "--since": a sequence number or an RFC 3339 time as is; a duration
 * ("10m") becomes the UTC time that long ago. */
static int
since_param(const char *in, char *out, size_t outlen)
{
	int64_t secs;
	size_t n = strlen(in);

	if (n > 0 && strspn(in, "0123456789") == n) {
		snprintf(out, outlen, "%s", in);
		return 0;
	}
	if (cli_parse_duration(in, &secs) == 0) {
		time_t t = time(NULL) - (time_t)secs;
		struct tm tm;

		if (gmtime_r(&t, &tm) == NULL ||
		    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
			return MOAT_ERR_INVAL;
		return 0;
	}
	if (n < 20 || n > 40 || in[4] != '-' || in[10] != 'T' ||
	    in[n - 1] != 'Z')
		return MOAT_ERR_INVAL;
	snprintf(out, outlen, "%s", in);
	return 0;
}

static int
audit_fetch(struct cli_conn *c, const char *type, const char *since,
    long limit, json_t **events)
{
	char path[1024], *et = NULL, *es = NULL;
	json_t *out = NULL;
	int n, status;

	*events = NULL;
	if (type != NULL && (et = cli_escape(type)) == NULL)
		return CLI_FAILED;
	if (since != NULL && (es = cli_escape(since)) == NULL) {
		free(et);
		return CLI_FAILED;
	}
	n = snprintf(path, sizeof(path), "/api/v1/audit?limit=%ld%s%s%s%s",
	    limit, et ? "&type=" : "", et ? et : "", es ? "&since=" : "",
	    es ? es : "");
	free(et);
	free(es);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		fprintf(stderr, "moat audit tail: --type or --since too long\n");
		return CLI_USAGE;
	}
	if ((status = cli_api(c, "GET", path, NULL, &out)) != 0)
		return status;
	*events = json_incref(json_object_get(out, "events"));
	json_decref(out);
	if (!json_is_array(*events)) {
		json_decref(*events);
		*events = NULL;
		fprintf(stderr, "moat audit tail: the server's answer has no "
		    "events\n");
		return CLI_FAILED;
	}
	return CLI_OK;
}

static int
audit_tail_main(int argc, char **argv)
{
	struct cli_conn *c = NULL;
	const char *pos[1], *type = NULL, *since_s = NULL, *limit_s = NULL;
	char since[64], seqbuf[32];
	const char *cur_since = NULL;
	bool follow = false, json = false;
	json_t *events = NULL, *e;
	int64_t last = -1;
	long limit = 20;
	size_t npos, i;
	int r, status;
	const struct cli_opt opts[] = {
		{ "--type", NULL, CLI_OPT_STR, &type },
		{ "--since", NULL, CLI_OPT_STR, &since_s },
		{ "--limit", "-n", CLI_OPT_STR, &limit_s },
		{ "--follow", "-f", CLI_OPT_FLAG, &follow },
		{ "--json", NULL, CLI_OPT_FLAG, &json },
	};

	if ((r = cli_parse("moat audit tail", argc, argv, opts,
	    sizeof(opts) / sizeof(opts[0]), pos, 0, 0, &npos,
	    cmd_audit_usage)) != 0)
		return r == CLI_PARSE_HELP ? CLI_OK : CLI_USAGE;
	if (limit_s != NULL) {
		char *end;

		limit = strtol(limit_s, &end, 10);
		if (*limit_s == '\0' || *end != '\0' || limit < 1 ||
		    limit > 1000) {
			fprintf(stderr, "moat audit tail: --limit wants a "
			    "number from 1 to 1000\n");
			return CLI_USAGE;
		}
	}
	if (since_s != NULL) {
		if (since_param(since_s, since, sizeof(since)) != 0) {
			fprintf(stderr, "moat audit tail: --since wants a "
			    "sequence number, an RFC 3339 UTC time "
			    "(2026-01-02T15:04:05Z) or a duration (10m)\n");
			return CLI_USAGE;
		}
		cur_since = since;
	}
	if ((status = cli_conn_open(&c)) != 0)
		return status;
	for (;;) {
		if ((status = audit_fetch(c, type, cur_since, limit,
		    &events)) != 0)
			break;
		json_array_foreach(events, i, e) {
			int64_t seq = json_integer_value(json_object_get(e,
			    "seq"));

			if (seq <= last)
				continue;
			print_event(e, json);
			last = seq;
		}
		json_decref(events);
		events = NULL;
		fflush(stdout);
		if (!follow)
			break;
		/* New events only from now on: after the last one seen (or
		 * after --since while none was seen), as many as there are. */
		if (last >= 0) {
			snprintf(seqbuf, sizeof(seqbuf), "%" PRId64, last);
			cur_since = seqbuf;
		} else if (cur_since == NULL) {
			cur_since = "0";
		}
		limit = 1000;
		sleep(1);
	}
	json_decref(events);
	cli_conn_free(c);
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
	if (strcmp(argv[1], "tail") == 0)
		return audit_tail_main(argc - 1, argv + 1);
	fprintf(stderr, "moat audit: unknown subcommand '%s' (try moat help "
	    "audit)\n", argv[1]);
	return CLI_USAGE;
}
