/*
 * secretdir.h - a directory of secrets laid out as Kubernetes mounts a Secret.
 *
 * moatd and moat-proxy read their keys and certificates from such a directory
 * (DESIGN.md section 6); `moatd init` creates one, tests use it to publish new
 * versions for reload tests. The layout of DIR, exactly as the kubelet's
 * AtomicWriter produces it:
 *
 *   DIR/..2026_12_03_16_02_25.123456789/KEY   the real files (0600, dir 0700)
 *   DIR/..data -> ..2026_12_03_16_02_25.123456789
 *   DIR/KEY    -> ..data/KEY                    one symlink per key
 *
 * A new version is published the same way: its files go into a new
 * timestamped directory, a "..data_tmp" symlink to it is renamed over
 * "..data" (one atomic rename), per-key symlinks are added or removed, and the
 * previous timestamped directory is deleted. A reader opening DIR/KEY sees the
 * old or the new file, never a half-written one.
 *
 * Key names follow Kubernetes: 1 to 253 characters of [A-Za-z0-9._-], not
 * "." and not starting with "..".
 */
#ifndef MOATD_SECRETDIR_H
#define MOATD_SECRETDIR_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

/* One key of a new version. All fields borrowed. */
struct moatd_secret_file {
	const char *name;
	const void *data;
	size_t len;
};

/* Flags of moatd_secrets_swap(). */
#define MOATD_SECRETS_KEEP 0x1u	/* carry over the current version's keys that
				 * files does not name (copied unchanged) */

/* Most keys and largest file a version may hold (files carried over with
 * MOATD_SECRETS_KEEP are read back under this cap). */
#define MOATD_SECRETS_MAX_KEYS 256
#define MOATD_SECRETS_MAX_FILE (1024 * 1024)

/*
 * Publishes a new version of the secret directory dir (which must exist)
 * holding files[0..n) (plus, with MOATD_SECRETS_KEEP, the current keys not in
 * files). On an empty directory this creates the initial layout. Fails with
 * MOAT_ERR_INVAL for a bad or repeated key name, and leaves the current
 * version in place on any failure before the "..data" rename. Not safe to
 * call concurrently on the same dir.
 */
int moatd_secrets_swap(const char *dir, const struct moatd_secret_file *files,
    size_t n, unsigned flags) MOAT_MUST_CHECK;

/* True when name is a valid key name (see above). */
bool moatd_secrets_key_valid(const char *name);

/*
 * Creates the file name in dfd with O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600,
 * writes data and fsyncs it. Fails (MOAT_ERR_EXISTS) when the name exists,
 * even as a symlink; on any failure no file is left behind.
 */
int moatd_secrets_write_file(int dfd, const char *name, const void *data,
    size_t len) MOAT_MUST_CHECK;

#endif
