/*
 * rotate.h - `moatd rotate-keys --data-dir DIR`: re-wraps every sealed
 * value in the store under the keyring's primary key-encryption key.
 *
 * Run it after publishing a keyring whose primary is a new key (the old
 * keys still listed): every string under a document's top-level "sealed"
 * object whose KEK is not the primary gets its data key re-wrapped
 * (envelope_rewrap; the ciphertext is untouched), and the document is
 * updated at the revision it was read at (re-read and retried on a
 * conflict, so a running moatd can keep writing). When it reports
 * "0 left under other keys", the old keys can be removed from the keyring.
 * Values are never printed or logged; field names and document ids are.
 */
#ifndef MOATD_ROTATE_H
#define MOATD_ROTATE_H

#include <stddef.h>

#include "errors.h"
#include "secrets/keys.h"
#include "store/store.h"

struct rotate_stats {
	size_t documents_seen;	/* documents read */
	size_t values_rewrapped;
	size_t documents_updated;
	size_t left;		/* values still not under the primary */
};

/* Re-wraps every sealed value of colls[0..ncolls) in st under ks's
 * primary. Returns 0 when every document could be read and written (stats
 * says how many values were left, e.g. under an unknown KEK), or the store
 * error that stopped it. */
int rotate_keys_store(struct store *st, const struct store_collection *colls,
    size_t ncolls, const struct keyset *ks, struct rotate_stats *stats)
    MOAT_MUST_CHECK;

/* The subcommand. argv[0] is "rotate-keys" (main.c passes argc - 1,
 * argv + 1). Exit status: 0 all values under the primary, 1 failed or
 * values left under other keys, 2 usage error. */
int moatd_rotate_keys_main(int argc, char **argv);

#endif
