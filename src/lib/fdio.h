/*
 * fdio.h - whole writes to a blocking file descriptor, shared by every
 * module that writes a file it fsyncs afterwards (the audit chain, sealed
 * recordings, the secret directory, backups, the CLI's config files).
 */
#ifndef MOAT_FDIO_H
#define MOAT_FDIO_H

#include <stddef.h>

#include "errors.h"

/* Writes all n bytes of p, retrying after EINTR and short writes: 0, or
 * the error of the write that failed (moat_err_from_errno). */
int fd_write_all(int fd, const void *p, size_t n) MOAT_MUST_CHECK;

#endif
