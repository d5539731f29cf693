/*
 * volcopy.h - copying workspace home volume images (DATA/volumes/ID.img,
 * orchestrator/volume.h) for `moatd backup` and `moatd restore`.
 *
 * An image is a sparse ext4 file. A copy keeps it sparse (SEEK_DATA /
 * SEEK_HOLE), so a 4 GiB home with 30 MiB used costs 30 MiB. When the
 * image is in use - attached to a loop device and mounted, in this mount
 * namespace or in moatd's own (a systemd unit with PrivateTmp has one) -
 * its filesystem is frozen (FIFREEZE) for the copy and thawed afterwards,
 * so the copy is what a clean unmount would leave; the workspace's writes
 * wait meanwhile. SIGINT, SIGTERM and SIGHUP are held while it is frozen.
 */
#ifndef MOATD_VOLCOPY_H
#define MOATD_VOLCOPY_H

#include <stdbool.h>
#include <stddef.h>

#include "errors.h"

/* Copies sdfd/name into a new file name in ddfd (O_EXCL, 0600, fsynced,
 * sparse). img_path is the image's path (to find its loop device); NULL
 * copies without looking for a mount (restore). *frozen tells whether a
 * mounted filesystem was frozen for it. No file is left on failure; err
 * says why. */
int volcopy_image(int sdfd, const char *name, int ddfd, const char *img_path,
    bool *frozen, char *err, size_t errlen) MOAT_MUST_CHECK;

#endif
