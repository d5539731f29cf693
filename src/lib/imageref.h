/*
 * imageref.h - container image references: a strict grammar and the
 * registry allow-list check (DESIGN.md section 5a).
 *
 * Accepted: [REGISTRY/]PATH[:TAG][@sha256:64-hex], the grammar of the OCI
 * distribution reference, strictly:
 *   REGISTRY  a DNS name (labels [a-z0-9-], not starting or ending with
 *             '-') or "localhost", optionally ":PORT" (1..65535); a first
 *             component is a registry only when it contains '.' or ':' or
 *             is "localhost" (the Docker rule)
 *   PATH      components [a-z0-9]+(([._]|__|-+)[a-z0-9]+)* joined by '/'
 *   TAG       [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
 * at most 255 bytes, no upper case in the name, no whitespace or control
 * bytes. Canonical form: "docker.io" when no registry is given, "library/"
 * added to a single-component docker.io path, ":latest" when neither tag
 * nor digest is given.
 */
#ifndef MOAT_IMAGEREF_H
#define MOAT_IMAGEREF_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "errors.h"

#define IMAGEREF_MAX 255

struct imageref {
	char registry[256];		/* "docker.io", "localhost:5000" */
	char path[256];			/* "library/debian", "moat/base" */
	char tag[129];			/* "" when only a digest */
	char digest[72];		/* "" or "sha256:..." */
	char canonical[512];		/* registry/path[:tag][@digest] */
};

/* MOAT_ERR_INVAL with a reason in err (never echoing the input). */
int imageref_parse(const char *s, struct imageref *out, char *err,
    size_t errlen) MOAT_MUST_CHECK;

/* True when ref's registry equals an entry of the normalized allow-list
 * (an array of "host[:port]" strings, settings_normalize()); host and port
 * must both match, so "localhost" (Podman's name for locally built images)
 * does not admit "localhost:5000". */
bool imageref_registry_allowed(const struct imageref *ref,
    const json_t *registries);

#endif
