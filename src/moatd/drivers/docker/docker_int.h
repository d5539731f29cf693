/*
 * docker_int.h - the pieces of the Docker driver that need no runtime: the
 * request bodies it writes and the parsers of what the runtime answers.
 * Shared by docker.c, its unit tests and the fuzz target. Everything the
 * runtime says is parsed with a size bound first (DOCKER_*_MAX), and every
 * string copied out is bounded and stripped of control characters.
 */
#ifndef MOATD_DRIVERS_DOCKER_INT_H
#define MOATD_DRIVERS_DOCKER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/driver.h"
#include "errors.h"

#define DOCKER_API_PREFIX	"/v1.41"
#define DOCKER_BODY_MAX		(4u << 20)	/* inspect, stats, errors */
#define DOCKER_LIST_MAX		(16u << 20)	/* the container list */
#define DOCKER_LIST_ITEMS_MAX	100000
#define DOCKER_LINE_MAX		65536		/* one pull progress line */
#define DOCKER_STATUS_MAX	200		/* progress text given out */
#define DOCKER_IMAGE_MAX	255

/* Copies the n bytes at s into out (outlen > 0), dropping C0 and C1
 * control characters and DEL, stopping before max bytes (and before
 * outlen - 1) on a UTF-8 character boundary. Always NUL-terminates. */
void docker__clean_text(const char *s, size_t n, char *out, size_t outlen,
    size_t max);

/* GET /containers/{name}/json. Fills out (state, id, workspace_id,
 * exit_code, oom_killed, pid, root_rw_bytes); MOAT_ERR_PARSE when body is
 * not a container object, MOAT_ERR_TOOBIG past DOCKER_BODY_MAX. */
int docker__parse_inspect(const char *body, size_t len,
    struct drv_status *out, char *err, size_t errlen) MOAT_MUST_CHECK;

/* GET /containers/json: an array of containers. *out is malloc'd (caller
 * frees; NULL when *n is 0). State and workspace_id (label) filled. */
int docker__parse_list(const char *body, size_t len, struct drv_status **out,
    size_t *n, char *err, size_t errlen) MOAT_MUST_CHECK;

/* GET /containers/{name}/stats?stream=false. An empty body (Podman's
 * answer for a container that is not running) gives zeros. */
int docker__parse_stats(const char *body, size_t len, struct drv_stats *out,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* A state string ("running", "exited"...) as a drv_state. */
enum drv_state docker__state(const char *s);

enum docker_progress_kind {
	DOCKER_PROGRESS_SKIP = 0,	/* blank line or nothing to report */
	DOCKER_PROGRESS_STATUS,		/* text, current, total */
	DOCKER_PROGRESS_ERROR		/* text holds the error message */
};

struct docker_progress {
	enum docker_progress_kind kind;
	char text[DOCKER_STATUS_MAX + 1];
	uint64_t current;
	uint64_t total;
};

/* One line of the POST /images/create stream (without its newline):
 * {"status","id","progressDetail":{"current","total"}} or an
 * {"error"}/{"errorDetail":{"message"}} line. MOAT_ERR_PARSE when the line
 * is not a JSON object, MOAT_ERR_TOOBIG past DOCKER_LINE_MAX. */
int docker__parse_progress(const char *line, size_t len,
    struct docker_progress *out) MOAT_MUST_CHECK;

/* The "message" of an error answer ({"message": ...}), cleaned, into out;
 * "" when there is none. Never fails. */
void docker__error_message(const char *body, size_t len, char *out,
    size_t outlen);

/* The error code for a failed pull from the registry's message:
 * MOAT_ERR_PERM (unauthorized, denied, authentication), MOAT_ERR_NOTFOUND
 * (manifest unknown, not found), else MOAT_ERR_IO. */
int docker__pull_error_code(const char *msg);

/* An image reference the driver will put in a URL: 1..255 bytes of
 * [A-Za-z0-9._/:@-], not starting with '/' or '-'. */
bool docker__image_ok(const char *image);

/* Splits image into what POST /images/create wants: fromImage (the name
 * without tag or digest), tag (the tag, or "sha256:..." for a digest, or
 * "latest"), and the registry host the credentials belong to ("docker.io"
 * when the first component is not a host: the Docker rule). */
int docker__image_split(const char *image, char *from, size_t fromlen,
    char *tag, size_t taglen, char *registry, size_t reglen)
    MOAT_MUST_CHECK;

/* The X-Registry-Auth header value: base64url of {"username","password",
 * "serveraddress"}. *out is malloc'd; the caller wipes and frees it (it
 * holds the password). */
int docker__auth_header(const struct drv_auth *auth, const char *registry,
    char **out) MOAT_MUST_CHECK;

/* The POST /containers/create body for spec (image, entrypoint, labels,
 * host config; see docker.c). *out is malloc'd, caller frees.
 * MOAT_ERR_INVAL with err filled when spec holds something the API cannot
 * express safely (a ':' or ',' in a mount path, a '=' missing in env). */
int docker__create_body(const struct drv_spec *spec, char **out,
    char *err, size_t errlen) MOAT_MUST_CHECK;

#endif
