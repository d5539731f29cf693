/*
 * volume.h - encrypted persistent home volumes (DESIGN.md section 5).
 *
 * Each workspace's /home/NAME lives on its own ext4 filesystem with the
 * `encrypt` feature, in a loop image file sized by the template (the size
 * is the disk quota). The home directory inside carries an fscrypt v2
 * policy (AES-256-XTS contents, AES-256-CTS filenames) under a 64-byte
 * per-workspace key that moatd generates, keeps sealed in the store
 * (envelope.h), and adds to the kernel only while the workspace runs
 * (FS_IOC_ADD_ENCRYPTION_KEY at attach, FS_IOC_REMOVE_ENCRYPTION_KEY at
 * detach). With the key removed and the filesystem unmounted, the host
 * sees only encrypted names and contents.
 *
 * Layout: the image is VOLUMES_DIR/<workspace id>.img; while attached it
 * is mounted (nosuid,nodev) at MOUNT_DIR/<workspace id>, with the
 * encrypted directory MOUNT_DIR/<workspace id>/home owned by the
 * workspace's uid (uid_base + 1000) - the directory the driver binds at
 * /home/NAME.
 *
 * Loop devices use autoclear, so unmounting releases them. Every call is
 * idempotent (attach of an attached volume, detach of a detached one,
 * destroy of an absent one are 0), which the reconciler relies on after a
 * crash. Calls block (mkfs, mount): reconciler or worker threads only.
 * Root (CAP_SYS_ADMIN) is required.
 */
#ifndef MOATD_VOLUME_H
#define MOATD_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

#define VOLUME_KEY_LEN 64

struct volume_paths {
	const char *volumes_dir;	/* where images live (on disk) */
	const char *mount_dir;		/* where they are mounted */
};

/* True when this kernel can do fscrypt v2 on ext4 (checked once by
 * creating, mounting and encrypting a small scratch image in
 * volumes_dir). reason gets why not. */
bool volume_fscrypt_supported(const struct volume_paths *p, char *reason,
    size_t reasonlen);

/* Creates the image (size_bytes, at least 16 MiB) with an encrypted home
 * directory owned by home_uid/home_gid, under key. MOAT_ERR_EXISTS when
 * an image is already there. plain: no encryption (--insecure-plain-volumes). */
int volume_create(const struct volume_paths *p, const char *workspace_id,
    uint64_t size_bytes, const uint8_t key[VOLUME_KEY_LEN], bool plain,
    uint32_t home_uid, uint32_t home_gid, char *err, size_t errlen)
    MOAT_MUST_CHECK;

/* Mounts the image and adds the key. home_out gets the host path of the
 * home directory to bind into the workspace. */
int volume_attach(const struct volume_paths *p, const char *workspace_id,
    const uint8_t key[VOLUME_KEY_LEN], bool plain, char *home_out,
    size_t home_outlen, char *err, size_t errlen) MOAT_MUST_CHECK;

/* Removes the key from the kernel and unmounts (lazily if busy). */
int volume_detach(const struct volume_paths *p, const char *workspace_id,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* Detaches and deletes the image. */
int volume_destroy(const struct volume_paths *p, const char *workspace_id,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* True when the volume is mounted now. */
bool volume_is_attached(const struct volume_paths *p, const char *workspace_id);

/* Workspace ids that have an image or a mount under p (for orphan
 * cleanup). *ids is a malloc'd array of malloc'd strings; free with
 * volume_ids_free(). */
int volume_list(const struct volume_paths *p, char ***ids, size_t *n)
    MOAT_MUST_CHECK;
void volume_ids_free(char **ids, size_t n);

#endif
