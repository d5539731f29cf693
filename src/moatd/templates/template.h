/*
 * template.h - workspace templates (DESIGN.md section 5): the shape of a
 * template document, its validation and its normalized, stored form.
 *
 * Shared by the API (api/h_templates.c, which adds the checks that need
 * the store: the organization's registry allow-list and the existence of
 * the egress policy), `moatd init` (the "base" template) and the workspace
 * code that reads a template. A stored template (collection "templates",
 * store/schema.h) has every field:
 *   "name"            DESIGN.md section 3 name rule (identity_check_name)
 *   "org"             the organization it belongs to
 *   "image"           canonical image reference (imageref.h)
 *   "cpu"             millicores, 100..64000 (default 2000)
 *   "memory_mb"       64..262144 (default 2048)
 *   "disk_mb"         home volume size, 64..1048576 (default 4096)
 *   "root_disk_mb"    bound on the writable root layer, 64..1048576
 *                     (default 2048)
 *   "env"             {"NAME": "value"}: at most 64, names
 *                     [A-Za-z_][A-Za-z0-9_]* of at most 128 bytes, values
 *                     of at most 4096 bytes without NUL; the proxy
 *                     variables (which moat sets) and names starting with
 *                     "MOAT_" are refused
 *   "startup_script"  at most 64 KiB, run as the workspace user ("" none)
 *   "egress_policy"   null or a policy name: narrows the organization's
 *                     policy, never widens it (DESIGN.md section 5a)
 *   "idle_timeout"    seconds; 0 never, else 60..604800 (default 3600)
 *   "ports"           exposed ports, 1..65535, at most 32, no repeats
 *   "forbid_sudo"     bool (default false): a template can forbid sudo,
 *                     never allow it (that is the organization's setting)
 * Template values are not secret (they are stored and shown in
 * plaintext); personal secrets go through the secrets API.
 */
#ifndef MOATD_TEMPLATE_H
#define MOATD_TEMPLATE_H

#include <stddef.h>

#include <jansson.h>

#include "errors.h"

#define TEMPLATE_CPU_MIN 100
#define TEMPLATE_CPU_MAX 64000
#define TEMPLATE_CPU_DEFAULT 2000
#define TEMPLATE_MEMORY_MIN 64
#define TEMPLATE_MEMORY_MAX 262144
#define TEMPLATE_MEMORY_DEFAULT 2048
#define TEMPLATE_DISK_MIN 64
#define TEMPLATE_DISK_MAX 1048576
#define TEMPLATE_DISK_DEFAULT 4096
#define TEMPLATE_ROOT_DISK_DEFAULT 2048
#define TEMPLATE_ENV_MAX 64
#define TEMPLATE_ENV_NAME_MAX 128
#define TEMPLATE_ENV_VALUE_MAX 4096
#define TEMPLATE_SCRIPT_MAX (64 * 1024)
#define TEMPLATE_IDLE_MIN 60
#define TEMPLATE_IDLE_MAX 604800
#define TEMPLATE_IDLE_DEFAULT 3600
#define TEMPLATE_PORTS_MAX 32

/* The template `moatd init` creates, on the image the `driver` recipe
 * builds (images/base/). */
#define TEMPLATE_BASE_NAME "base"
#define TEMPLATE_BASE_IMAGE "localhost/moat/base:latest"

/* Checks body (a JSON object of the fields above, any subset but "image";
 * types and bounds are checked here whatever the caller checked before)
 * and builds the stored form in *out (new reference): every field
 * present, defaults filled in, the image canonical, "org" set to org.
 * name: the template's name; NULL takes the body's "name" (then
 * required). A body "name" that differs from name is refused. Fields the
 * store sets (id, rev, times) and unknown fields are refused.
 * MOAT_ERR_INVAL with "field: reason" in err (never echoing a value). */
int template_normalize(const json_t *body, const char *name, const char *org,
    json_t **out, char *err, size_t errlen) MOAT_MUST_CHECK;

#endif
