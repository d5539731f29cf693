/*
 * recctl.c - `moat-recctl`, a test tool (built only with the tests) that
 * writes a session recording the way moatd's SSH gateway will: stdin is
 * the session's output, encoded by asciicast.c and stored by recstore.c
 * in DATA_DIR (its secrets directory's keyring and its store), so the
 * end-to-end tests can read it back through the API before the gateway
 * exists.
 *
 *   moat-recctl DATA_DIR [--user NAME --user-id ID --workspace NAME
 *       --workspace-id ID --owner NAME --org ORG --session ID
 *       --packet N --resize COLSxROWS --no-end]
 *
 * stdin is read in packets of N bytes (default 7, to split characters)
 * and each becomes an "o" event (times 10 ms apart); --resize adds an "r"
 * event halfway; --no-end exits without recstore_end() after writing
 * what it read (a crash, as far as the recording knows). Prints the
 * recording id on stdout. Exit status 0, or 1 with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "app.h"
#include "asciicast.h"
#include "buf.h"
#include "errors.h"
#include "identity/bootstrap.h"
#include "log.h"
#include "recordings/recstore.h"
#include "secrets/keys.h"
#include "store/store.h"

#define RECCTL_INPUT_MAX (16 * 1024 * 1024)

static int
fail(const char *what, int r)
{
	fprintf(stderr, "moat-recctl: %s (%s)\n", what, moat_strerror(r));
	return 1;
}

static int
read_stdin(struct buf *in)
{
	char tmp[65536];
	ssize_t n;
	int r;

	while ((n = read(0, tmp, sizeof(tmp))) != 0) {
		if (n < 0)
			return MOAT_ERR_IO;
		if ((r = buf_append(in, tmp, (size_t)n)) != 0)
			return r;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	struct app app;
	struct keys *keys = NULL;
	struct store *st = NULL;
	struct recstore *rs = NULL;
	struct recording *rec = NULL;
	struct asciicast *a = NULL;
	struct buf in, out;
	json_t *meta = json_object();
	char sec[4096], id[33];
	unsigned cols = 0, rows = 0;
	size_t packet = 7, off = 0;
	int no_end = 0, resized = 0, r, rc = 1;
	double t = 0;

	buf_init(&in, RECCTL_INPUT_MAX);
	buf_init(&out, 1 << 20);
	log_set_level(LOG_WARN);
	if (argc < 2 || meta == NULL) {
		fprintf(stderr, "usage: moat-recctl DATA_DIR [options]\n");
		goto out;
	}
	for (int i = 2; i < argc; i++) {
		static const char *const keys_[][2] = {
			{ "--user", "user" }, { "--user-id", "user_id" },
			{ "--workspace", "workspace" },
			{ "--workspace-id", "workspace_id" },
			{ "--owner", "owner" }, { "--org", "org" },
			{ "--session", "session_id" },
		};
		int done = 0;

		if (strcmp(argv[i], "--no-end") == 0) {
			no_end = 1;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "moat-recctl: %s needs a value\n", argv[i]);
			goto out;
		}
		for (size_t k = 0; k < sizeof(keys_) / sizeof(keys_[0]); k++)
			if (strcmp(argv[i], keys_[k][0]) == 0) {
				json_object_set_new(meta, keys_[k][1],
				    json_string(argv[i + 1]));
				done = 1;
			}
		if (!done && strcmp(argv[i], "--packet") == 0) {
			char *end;

			packet = strtoul(argv[i + 1], &end, 10);
			done = *end == '\0' && packet > 0;
		} else if (!done && strcmp(argv[i], "--resize") == 0) {
			done = sscanf(argv[i + 1], "%ux%u", &cols, &rows) == 2;
		}
		if (!done) {
			fprintf(stderr, "moat-recctl: bad option %s\n", argv[i]);
			goto out;
		}
		i++;
	}
	json_object_set_new(meta, "client_addr", json_string("127.0.0.1"));
	if (snprintf(sec, sizeof(sec), "%s/secrets", argv[1]) >=
	    (int)sizeof(sec)) {
		rc = fail("data directory path", MOAT_ERR_TOOBIG);
		goto out;
	}
	if ((r = keys_open(&keys, sec)) != 0) {
		rc = fail("keys", r);
		goto out;
	}
	if ((r = identity_store_open_local(argv[1], &st)) != 0) {
		rc = fail("store", r);
		goto out;
	}
	memset(&app, 0, sizeof(app));
	app.data_dir = argv[1];
	app.store = st;
	app.keys = keys;
	app.default_org = "default";
	if ((r = recstore_open(&rs, &app)) != 0) {
		rc = fail("recordings", r);
		goto out;
	}
	if ((r = read_stdin(&in)) != 0) {
		rc = fail("stdin", r);
		goto out;
	}
	if ((r = asciicast_header(&out, 80, 24, time(NULL), "xterm-256color",
	    "/bin/bash")) != 0 ||
	    (r = recstore_begin(rs, meta, (const char *)out.data, out.len, &rec,
	    id)) != 0) {
		rc = fail("begin", r);
		goto out;
	}
	if ((r = asciicast_new(&a, 0)) != 0) {
		rc = fail("asciicast", r);
		goto out;
	}
	while (off < in.len) {
		size_t n = in.len - off < packet ? in.len - off : packet;

		buf_reset(&out);
		if (cols > 0 && !resized && off >= in.len / 2) {
			resized = 1;
			if ((r = asciicast_resize(a, &out, t, cols, rows)) != 0)
				break;
		}
		if ((r = asciicast_data(a, &out, t, 'o', in.data + off, n)) != 0 ||
		    (r = recstore_append(rec, (const char *)out.data,
		    out.len)) != 0)
			break;
		off += n;
		t += 0.01;
	}
	buf_reset(&out);
	if (r != 0 || (r = asciicast_finish(a, &out, t)) != 0 ||
	    (r = recstore_append(rec, (const char *)out.data, out.len)) != 0) {
		rc = fail("append", r);
		goto out;
	}
	printf("%s\n", id);
	fflush(stdout);
	if (no_end) {
		if ((r = recstore_flush(rec)) != 0) {
			rc = fail("flush", r);
			goto out;
		}
		_exit(0);	/* no recstore_end: a crash */
	}
	r = recstore_end(rec, t);
	rec = NULL;
	if (r != 0) {
		rc = fail("end", r);
		goto out;
	}
	rc = 0;
out:
	if (rec != NULL && recstore_end(rec, t) != 0)
		rc = 1;
	asciicast_free(a);
	recstore_free(rs);
	store_close(st);
	keys_free(keys);
	json_decref(meta);
	buf_free_wipe(&in);
	buf_free_wipe(&out);
	return rc;
}
