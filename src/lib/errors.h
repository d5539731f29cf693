/*
 * errors.h - the one error contract of moat.
 *
 * Every function that can fail returns 0 on success or one of the negative
 * codes below (never a bare -1 with errno). errno is converted at the failing
 * system call with moat_err_from_errno(). moat_strerror() gives a short
 * English description suitable for logs and error messages.
 */
#ifndef MOAT_ERRORS_H
#define MOAT_ERRORS_H

#include <stddef.h>

#define MOAT_MUST_CHECK __attribute__((warn_unused_result))

enum moat_err {
	MOAT_OK = 0,
	MOAT_ERR_NOMEM = -1,	/* allocation failed */
	MOAT_ERR_INVAL = -2,	/* invalid argument or input */
	MOAT_ERR_IO = -3,	/* I/O error (see logs for errno) */
	MOAT_ERR_TOOBIG = -4,	/* a size limit was exceeded */
	MOAT_ERR_PARSE = -5,	/* malformed input */
	MOAT_ERR_TLS = -6,	/* TLS or certificate error */
	MOAT_ERR_NOTFOUND = -7,	/* no such object or file */
	MOAT_ERR_EXISTS = -8,	/* object or file already exists */
	MOAT_ERR_PERM = -9,	/* permission denied */
	MOAT_ERR_TIMEOUT = -10,	/* operation timed out */
	MOAT_ERR_AGAIN = -11,	/* busy or queue full; try again later */
	MOAT_ERR_CRYPTO = -12,	/* cryptographic failure (bad key, bad tag) */
	MOAT_ERR_NOSPACE = -13,	/* disk space below the reserve */
	MOAT_ERR_CORRUPT = -14,	/* data failed an integrity check */
	MOAT_ERR_CLOSED = -15,	/* peer or object already closed */
	MOAT_ERR_UNSUPPORTED = -16, /* not supported here */
	MOAT_ERR_CONFLICT = -17, /* stale revision or conflicting state */
	MOAT_ERR__LAST = -18
};

/* Returns a static, human-readable description of err. Never NULL. */
const char *moat_strerror(int err);

/* Writes an English message into err (when err is non-NULL and errlen > 0),
 * for functions that report errors through an (err, errlen) pair. */
void moat_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The same, returning code: `return moat_fail(MOAT_ERR_INVAL, err, errlen,
 * "field \"%s\" is required", name);` */
int moat_fail(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Maps an errno value to the closest moat error code. */
int moat_err_from_errno(int errnum);

#endif
