/*
 * errors.c - descriptions of moat's error codes and errno conversion.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "errors.h"

const char *
moat_strerror(int err)
{
	switch (err) {
	case MOAT_OK: return "success";
	case MOAT_ERR_NOMEM: return "out of memory";
	case MOAT_ERR_INVAL: return "invalid argument";
	case MOAT_ERR_IO: return "input/output error";
	case MOAT_ERR_TOOBIG: return "size limit exceeded";
	case MOAT_ERR_PARSE: return "malformed input";
	case MOAT_ERR_TLS: return "TLS error";
	case MOAT_ERR_NOTFOUND: return "not found";
	case MOAT_ERR_EXISTS: return "already exists";
	case MOAT_ERR_PERM: return "permission denied";
	case MOAT_ERR_TIMEOUT: return "timed out";
	case MOAT_ERR_AGAIN: return "busy, try again";
	case MOAT_ERR_CRYPTO: return "cryptographic failure";
	case MOAT_ERR_NOSPACE: return "free disk space below the reserve";
	case MOAT_ERR_CORRUPT: return "integrity check failed";
	case MOAT_ERR_CLOSED: return "closed";
	case MOAT_ERR_UNSUPPORTED: return "not supported";
	case MOAT_ERR_CONFLICT: return "conflict";
	default: return "unknown error";
	}
}

int
moat_err_from_errno(int errnum)
{
	switch (errnum) {
	case 0: return MOAT_OK;
	case ENOMEM: return MOAT_ERR_NOMEM;
	case EINVAL: return MOAT_ERR_INVAL;
	case ENOENT: return MOAT_ERR_NOTFOUND;
	case EEXIST: return MOAT_ERR_EXISTS;
	case EACCES: case EPERM: return MOAT_ERR_PERM;
	case ETIMEDOUT: return MOAT_ERR_TIMEOUT;
	case EAGAIN: return MOAT_ERR_AGAIN;
	case ENOSPC: case EDQUOT: return MOAT_ERR_NOSPACE;
	case E2BIG: case EMSGSIZE: case EFBIG: return MOAT_ERR_TOOBIG;
	case EPIPE: case ECONNRESET: return MOAT_ERR_CLOSED;
	case ENOSYS: case EOPNOTSUPP: return MOAT_ERR_UNSUPPORTED;
	default: return MOAT_ERR_IO;
	}
}

void
moat_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

int
moat_fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}
