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
 *
 * Workspace ids must be 1 to 64 characters of [0-9a-f] (store ids are
 * 32); anything else is MOAT_ERR_INVAL, so an id can never steer a path.
 * Errors come with a one-line reason in err that never holds key material.
 *
 * Order with the driver: remove (or at least stop) the container before
 * volume_detach. The kernel wipes the key at detach regardless, but a
 * directory still in use by a container's bind mount stays readable
 * through that bind ("incompletely removed") until it is released.
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

/* True when this kernel can do fscrypt v2 on ext4, checked for real by
 * creating, mounting, encrypting and writing into a 16 MiB scratch image
 * in volumes_dir (named so that volume_list never sees it, removed
 * afterwards). Each call probes again (about 0.1 s): call it once at
 * start-up and keep the answer. reason gets why not ("" when true). */
bool volume_fscrypt_supported(const struct volume_paths *p, char *reason,
    size_t reasonlen);

/* Creates the image (size_bytes, at least 16 MiB and at most 16 TiB,
 * rounded up to 4 KiB; the blocks are reserved on the host with
 * fallocate) with an encrypted home directory owned by home_uid/home_gid,
 * mode 0700, under key. The volume is left detached. MOAT_ERR_EXISTS when
 * an image is already there; on any other failure nothing is left behind.
 * plain: no encryption (--insecure-plain-volumes); key may then be NULL. */
int volume_create(const struct volume_paths *p, const char *workspace_id,
    uint64_t size_bytes, const uint8_t key[VOLUME_KEY_LEN], bool plain,
    uint32_t home_uid, uint32_t home_gid, char *err, size_t errlen)
    MOAT_MUST_CHECK;

/* Mounts the image and adds the key. home_out gets the host path of the
 * home directory to bind into the workspace. MOAT_ERR_NOTFOUND without an
 * image. A wrong key is refused: the identifier the kernel derives from
 * key must equal the one in home's policy, else MOAT_ERR_CRYPTO, the
 * wrong key is taken out of the kernel again and the volume is left as it
 * was (detached, or attached with its right key). plain must match how
 * the volume was created: an encrypted volume attached plain is
 * MOAT_ERR_INVAL, a plain one attached with a key MOAT_ERR_CORRUPT. */
int volume_attach(const struct volume_paths *p, const char *workspace_id,
    const uint8_t key[VOLUME_KEY_LEN], bool plain, char *home_out,
    size_t home_outlen, char *err, size_t errlen) MOAT_MUST_CHECK;

/* Removes the key from the kernel (for all users), then unmounts
 * (lazily if busy), removes the mount directory and unbinds any loop
 * device still backed by the image (crash leftovers). */
int volume_detach(const struct volume_paths *p, const char *workspace_id,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* Detaches and deletes the image. */
int volume_destroy(const struct volume_paths *p, const char *workspace_id,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* True when the volume is mounted now. */
bool volume_is_attached(const struct volume_paths *p, const char *workspace_id);

/* Workspace ids that have an image, a mount or a leftover mount
 * directory under p (for orphan cleanup), sorted. *ids is a malloc'd
 * array of malloc'd strings (caller frees with volume_ids_free()); missing
 * directories give an empty list. */
int volume_list(const struct volume_paths *p, char ***ids, size_t *n)
    MOAT_MUST_CHECK;
void volume_ids_free(char **ids, size_t n);

#endif
