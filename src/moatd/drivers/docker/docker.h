/*
 * docker.h - the single-host runtime driver: the Docker Engine API (v1.41)
 * over a unix socket with libcurl. Podman (`podman system service`) and
 * Docker both serve it.
 *
 * The socket is found from DOCKER_HOST (only "unix://PATH" is accepted;
 * anything else is refused with a clear error), else the usual paths
 * (/run/podman/podman.sock, /var/run/docker.sock), else MOAT_ERR_NOTFOUND
 * with a message saying what was tried.
 */
#ifndef MOATD_DRIVERS_DOCKER_H
#define MOATD_DRIVERS_DOCKER_H

#include <stddef.h>

#include "drivers/driver.h"
#include "errors.h"

/* socket_path: NULL to use DOCKER_HOST and the usual paths. Checks that
 * the socket answers (GET /version). *out is freed with its ops->free. */
int docker_driver_new(struct driver **out, const char *socket_path,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* Resolves the socket path as described above into out (no connection). */
int docker_socket_path(const char *docker_host_env, char *out, size_t outlen,
    char *err, size_t errlen) MOAT_MUST_CHECK;

#endif
