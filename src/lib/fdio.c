/*
 * fdio.c - whole writes to a blocking file descriptor (fdio.h).
 */
#include <errno.h>
#include <unistd.h>

#include "fdio.h"

int
fd_write_all(int fd, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n > 0) {
		ssize_t w = write(fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return moat_err_from_errno(errno);
		if (w == 0)
			return MOAT_ERR_IO;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}
