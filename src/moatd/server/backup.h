/*
 * backup.h - `moatd backup --data-dir DIR OUT` and
 * `moatd restore BACKUP --data-dir NEWDIR`.
 *
 * These live next to serve.c because they handle the whole data directory
 * serve.c lays out (moatd.db, secrets/, pki/, audit/), not one module's part.
 *
 * A backup is a directory (0700) holding:
 *   moatd.db                 store_backup(): one consistent snapshot, taken
 *                            while moatd keeps writing
 *   secrets/KEY              the files of the secret directory's current
 *                            "..data" version, read through one directory
 *                            handle (a concurrent swap cannot mix versions)
 *   pki/FILE                 the development PKI files, when present
 *   audit/audit.log          the chain up to its last complete record, and
 *   audit/audit.log.checkpoint  (copied first, so the log holds it)
 *   volumes/ID.img           the workspaces' home volumes, sparse; a
 *                            mounted one is frozen while copied (volcopy.h)
 *   MANIFEST.json            {"format":1, "moatd_version", "created_at",
 *                            "schema_version", "files":{NAME: SHA-256 hex}}
 * Every file is 0600. The backup holds moatd's private keys: it must be
 * stored as carefully as the data directory itself.
 *
 * restore checks every hash of the manifest (and that no unlisted file is
 * present), refuses a NEWDIR that exists, builds the data directory in a
 * temporary directory next to NEWDIR (secrets in the Kubernetes layout of
 * secretdir.h), checks that the store opens, marks every workspace that was
 * up as "stopped" (desired state kept: the restored moatd starts it again),
 * and renames it into place, so a failure leaves nothing behind.
 */
#ifndef MOATD_BACKUP_H
#define MOATD_BACKUP_H

#define MOATD_BACKUP_FORMAT 1

/* argv[0] is "backup" / "restore" (main.c passes argc - 1, argv + 1).
 * Exit status 0 done, 1 failed, 2 usage error. */
int moatd_backup_main(int argc, char **argv);
int moatd_restore_main(int argc, char **argv);

#endif
