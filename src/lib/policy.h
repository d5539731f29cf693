/*
 * policy.h - egress policies and organization security settings
 * (DESIGN.md section 5a): their shape, validation and normalization.
 *
 * A policy document (JSON, or the same as YAML):
 *   {"name": "default", "mode": "enforce" | "monitor",
 *    "allow": [rule...], "deny": [rule...]}
 * where a rule is exactly one of
 *   {"host": "example.com" | "*.example.com", "ports": [443]}
 *   {"cidr": "127.0.0.2/32" | "2001:db8::/32", "ports": [80, 443]}
 *   {"url": "http://mirror.example.net/debian/"}
 * Hosts are lower-cased, a trailing dot removed, internationalized names
 * converted to punycode (or refused when they cannot be); a wildcard may
 * only be a leading "*." label. Ports are 1..65535, at most 32 per rule.
 * At most 1024 rules per list. Anything else is refused with the JSON path
 * of the offending field ("allow[2].ports[0]") and a reason.
 *
 * Organization security settings:
 *   {"default_policy": "default", "allow_sudo": false,
 *    "ssh": {"port_forwarding": true, "file_transfer": true,
 *            "agent_forwarding": false, "record_input": false},
 *    "registries": ["localhost:5000", "docker.io"]}
 * validated the same way.
 *
 * Both are untrusted input with fuzz targets.
 */
#ifndef MOATD_POLICY_H
#define MOATD_POLICY_H

#include <stddef.h>

#include <jansson.h>

#include "errors.h"

/* Validates doc and returns a normalized copy in *out (new reference).
 * MOAT_ERR_INVAL with path and err filled on a bad document. */
int policy_normalize(const json_t *doc, json_t **out, char *path,
    size_t pathlen, char *err, size_t errlen) MOAT_MUST_CHECK;

/* Parses YAML text into the equivalent JSON value (mappings, sequences,
 * scalars; integers and booleans typed as YAML 1.2 core schema does).
 * Anchors, aliases and tags refused; bounded size and depth. */
int policy_yaml_to_json(const char *text, size_t len, json_t **out,
    char *err, size_t errlen) MOAT_MUST_CHECK;

/* The same for organization security settings; fills defaults. */
int settings_normalize(const json_t *doc, json_t **out, char *path,
    size_t pathlen, char *err, size_t errlen) MOAT_MUST_CHECK;
json_t *settings_default(void);

#endif
