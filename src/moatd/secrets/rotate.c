/*
 * rotate.c - `moatd rotate-keys --data-dir DIR` (see rotate.h).
 *
 * Walks every collection of the store page by page in id order; for each
 * document with a "sealed" object, re-wraps the values not under the
 * primary KEK and writes the document back at the revision it was read at.
 * A conflict (a running moatd changed the document meanwhile) re-reads it
 * and starts that document again; a document deleted meanwhile is skipped.
 * Values that cannot be re-wrapped (unknown KEK, failed authentication,
 * not a sealed string) are counted as left and named by collection, id and
 * field in a warning; the value itself is never printed.
 *
 * At the end one "keys.rotate" audit event goes to the running moatd's
 * collector socket DIR/run/audit.sock. When nothing listens there the
 * rotation has still happened, and the command says that no audit event
 * was recorded.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "audit.h"
#include "log.h"
#include "secrets/envelope.h"
#include "secrets/keys.h"
#include "secrets/rotate.h"
#include "store/schema.h"
#include "store/store.h"

#define ROTATE_PAGE		100
#define ROTATE_RETRIES		16
#define COMPONENT		"rotate-keys"

/*
 * Re-wraps the sealed values of one document (doc: a new reference, taken
 * over). *rewrapped and *left are those of the version finally written or
 * left alone.
 */
static int
rotate_doc(struct store *st, const char *coll, json_t *doc,
    const struct keyset *ks, size_t *rewrapped, size_t *left)
{
	const char *field, *id;
	char idbuf[256];
	json_t *sealed, *v, *updates = NULL;
	int attempt, r = 0;

	*rewrapped = 0;
	*left = 0;
	if (doc == NULL)
		return MOAT_ERR_NOMEM;
	id = json_string_value(json_object_get(doc, "id"));
	snprintf(idbuf, sizeof(idbuf), "%s", id != NULL ? id : "");
	for (attempt = 0; attempt < ROTATE_RETRIES; attempt++) {
		size_t nw = 0, nl = 0;

		json_decref(updates);
		if ((updates = json_object()) == NULL) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
		sealed = json_object_get(doc, "sealed");
		if (!json_is_object(sealed)) {
			r = 0;
			goto out;
		}
		json_object_foreach(sealed, field, v) {
			char *out = NULL;
			int e;

			e = json_is_string(v) ? envelope_rewrap(ks,
			    json_string_value(v), &out) : MOAT_ERR_PARSE;
			if (e != 0) {
				nl++;
				log_warn(COMPONENT, "sealed value left as it is",
				    LF_STR("collection", coll),
				    LF_STR("id", idbuf), LF_STR("field", field),
				    LF_STR("reason", e == MOAT_ERR_NOTFOUND ?
				    "its key-encryption key is not in the "
				    "keyring" : moat_strerror(e)));
				continue;
			}
			if (out == NULL)
				continue;	/* already under the primary */
			e = json_object_set_new(updates, field,
			    json_string(out));
			free(out);
			if (e != 0) {
				r = MOAT_ERR_NOMEM;
				goto out;
			}
			nw++;
		}
		if (nw == 0) {
			*left = nl;
			r = 0;
			goto out;
		}
		if (json_object_update_existing(sealed, updates) != 0) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
		r = store_update(st, coll, doc);
		if (r == 0) {
			*rewrapped = nw;
			*left = nl;
			goto out;
		}
		if (r == MOAT_ERR_NOTFOUND) {
			r = 0;		/* deleted meanwhile */
			goto out;
		}
		if (r != MOAT_ERR_CONFLICT)
			goto out;
		/* Changed meanwhile: read it again and start over. */
		json_decref(doc);
		doc = NULL;
		r = store_get(st, coll, idbuf, &doc);
		if (r == MOAT_ERR_NOTFOUND) {
			r = 0;
			goto out;
		}
		if (r != 0)
			goto out;
	}
	r = MOAT_ERR_CONFLICT;
	log_warn(COMPONENT, "document kept changing; not re-wrapped",
	    LF_STR("collection", coll), LF_STR("id", idbuf));
out:
	json_decref(updates);
	json_decref(doc);
	return r;
}

int
rotate_keys_store(struct store *st, const struct store_collection *colls,
    size_t ncolls, const struct keyset *ks, struct rotate_stats *stats)
{
	json_t *page = NULL, *doc;
	char *after = NULL;
	size_t c, i;
	int r = MOAT_ERR_INVAL;

	memset(stats, 0, sizeof(*stats));
	if (st == NULL || ks == NULL || keyset_primary_kek_id(ks) == NULL)
		goto out;
	for (c = 0; c < ncolls; c++) {
		free(after);
		after = NULL;
		for (;;) {
			json_decref(page);
			page = NULL;
			if ((r = store_list(st, colls[c].name, NULL, NULL, after,
			    ROTATE_PAGE, &page)) != 0) {
				log_error(COMPONENT, "cannot list a collection",
				    LF_STR("collection", colls[c].name),
				    LF_STR("error", moat_strerror(r)));
				goto out;
			}
			if (json_array_size(page) == 0)
				break;
			json_array_foreach(page, i, doc) {
				size_t w = 0, l = 0;
				const char *id = json_string_value(
				    json_object_get(doc, "id"));

				stats->documents_seen++;
				if (id == NULL) {
					r = MOAT_ERR_CORRUPT;
					goto out;
				}
				free(after);
				if ((after = strdup(id)) == NULL) {
					r = MOAT_ERR_NOMEM;
					goto out;
				}
				r = rotate_doc(st, colls[c].name,
				    json_deep_copy(doc), ks, &w, &l);
				if (r != 0) {
					log_error(COMPONENT, "cannot update a "
					    "document", LF_STR("collection",
					    colls[c].name), LF_STR("id", id),
					    LF_STR("error", moat_strerror(r)));
					goto out;
				}
				stats->values_rewrapped += w;
				stats->documents_updated += w > 0;
				stats->left += l;
			}
			if (json_array_size(page) < ROTATE_PAGE)
				break;
		}
	}
	r = 0;
out:
	json_decref(page);
	free(after);
	return r;
}

/* Sends the keys.rotate event; false when it could not be delivered. */
static bool
rotate_audit(const char *data_dir, const struct keyset *ks,
    const struct rotate_stats *s, int result)
{
	struct audit_client *ac = NULL;
	char sock[PATH_MAX];
	json_t *ev = NULL;
	bool ok = false;
	int n;

	n = snprintf(sock, sizeof(sock), "%s/run/audit.sock", data_dir);
	if (n < 0 || (size_t)n >= sizeof(sock))
		goto out;
	if (audit_client_connect(&ac, sock) != 0)
		goto out;
	ev = audit_event_new("keys.rotate", result == 0 && s->left == 0 ?
	    "success" : "failure");
	if (ev == NULL ||
	    json_object_set_new(ev, "component",
	    json_string("moatd-rotate-keys")) != 0 ||
	    json_object_set_new(ev, "actor", json_pack("{s:s, s:I}", "host",
	    "local command", "uid", (json_int_t)getuid())) != 0 ||
	    json_object_set_new(ev, "target", json_pack("{s:s}", "keyring",
	    "primary")) != 0 ||
	    json_object_set_new(ev, "details", json_pack("{s:s, s:I, s:I, s:I, "
	    "s:I, s:s}", "primary_kek", keyset_primary_kek_id(ks),
	    "documents_seen", (json_int_t)s->documents_seen,
	    "values_rewrapped", (json_int_t)s->values_rewrapped,
	    "documents_updated", (json_int_t)s->documents_updated,
	    "left", (json_int_t)s->left,
	    "result", result == 0 ? "completed" : moat_strerror(result))) != 0)
		goto out;
	ok = audit_client_send(ac, ev) == 0;
out:
	json_decref(ev);
	audit_client_free(ac);
	return ok;
}

static void
rotate_usage(FILE *f)
{
	fprintf(f,
	    "usage: moatd rotate-keys --data-dir DIR\n"
	    "\n"
	    "Re-wraps every sealed value in DIR/moatd.db under the primary key\n"
	    "of DIR/secrets/keyring.json. Publish the new keyring first (new\n"
	    "primary, old keys still listed); when this reports 0 values left\n"
	    "under other keys, the old keys may be removed.\n");
}

int
moatd_rotate_keys_main(int argc, char **argv)
{
	const char *dir = NULL;
	char secrets[PATH_MAX], uri[PATH_MAX + 16];
	struct rotate_stats s;
	struct keys *k = NULL;
	struct keyset *ks = NULL;
	struct store *st = NULL;
	int i, n, r, status = 1;

	memset(&s, 0, sizeof(s));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			rotate_usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--data-dir") == 0 && i + 1 < argc &&
		    dir == NULL) {
			dir = argv[++i];
		} else if (strncmp(argv[i], "--data-dir=", 11) == 0 &&
		    dir == NULL) {
			dir = argv[i] + 11;
		} else {
			fprintf(stderr, "moatd rotate-keys: unexpected argument "
			    "\"%s\"\n", argv[i]);
			rotate_usage(stderr);
			return 2;
		}
	}
	if (dir == NULL || dir[0] == '\0') {
		fprintf(stderr, "moatd rotate-keys: --data-dir is required\n");
		rotate_usage(stderr);
		return 2;
	}
	n = snprintf(secrets, sizeof(secrets), "%s/secrets", dir);
	if (n < 0 || (size_t)n >= sizeof(secrets) ||
	    (n = snprintf(uri, sizeof(uri), "sqlite:%s/moatd.db", dir)) < 0 ||
	    (size_t)n >= sizeof(uri)) {
		fprintf(stderr, "moatd rotate-keys: data directory path is too "
		    "long\n");
		return 2;
	}
	if ((r = keys_open(&k, secrets)) != 0) {
		fprintf(stderr, "moatd rotate-keys: cannot load the keys in %s: "
		    "%s\n", secrets, moat_strerror(r));
		goto out;
	}
	ks = keys_current(k);
	if ((r = store_open(&st, uri, moatd_collections, moatd_ncollections))
	    != 0) {
		fprintf(stderr, "moatd rotate-keys: cannot open the store %s: "
		    "%s\n", uri + 7, moat_strerror(r));
		goto out;
	}
	r = rotate_keys_store(st, moatd_collections, moatd_ncollections, ks,
	    &s);
	printf("re-wrapped %zu values in %zu documents; %zu left under other "
	    "keys\n", s.values_rewrapped, s.documents_updated, s.left);
	if (r != 0)
		fprintf(stderr, "moatd rotate-keys: stopped: %s (run it again; "
		    "values already re-wrapped stay so)\n", moat_strerror(r));
	else if (s.left > 0)
		fprintf(stderr, "moatd rotate-keys: %zu values could not be "
		    "re-wrapped (see the warnings above); keep the old keys in "
		    "the keyring\n", s.left);
	if (!rotate_audit(dir, ks, &s, r))
		fprintf(stderr, "moatd rotate-keys: warning: no audit event was "
		    "recorded (moatd's audit collector %s/run/audit.sock is not "
		    "reachable; is moatd running?)\n", dir);
	fflush(stdout);
	status = r == 0 && s.left == 0 ? 0 : 1;
out:
	store_close(st);
	keyset_unref(ks);
	keys_free(k);
	return status;
}
