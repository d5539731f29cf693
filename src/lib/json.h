/*
 * json.h - strict parsing of JSON request bodies, over jansson.
 *
 * A request body must be one JSON object within a size limit, without
 * duplicate keys, with nesting no deeper than JSON_MAX_DEPTH, and with only
 * the fields a route declares: required fields must be present with the
 * right type, unknown fields are refused. Errors are written as one short
 * English sentence naming the field (for the API error message); they never
 * echo field values, which may be secrets.
 */
#ifndef MOAT_JSON_H
#define MOAT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "errors.h"

#define JSON_MAX_DEPTH 32

enum json_field_type {
	JF_STRING,
	JF_INT,		/* a JSON integer */
	JF_BOOL,
	JF_OBJECT,
	JF_ARRAY,
	JF_NUMBER,	/* integer or real */
	JF_ANY
};

struct json_field {
	const char *name;
	enum json_field_type type;
	bool required;
	size_t max_len;		/* JF_STRING: bytes; JF_ARRAY: items; 0: no limit */
	long long min, max;	/* JF_INT: bounds when min < max */
};

/* Parses body as a JSON object. Returns 0 and *out (caller decrefs), or
 * MOAT_ERR_TOOBIG (len > max_len) / MOAT_ERR_PARSE with err filled. */
int json_parse_object(const uint8_t *body, size_t len, size_t max_len,
    json_t **out, char *err, size_t errlen) MOAT_MUST_CHECK;

/* Checks obj against n field specs: MOAT_ERR_INVAL with err filled when a
 * field is missing, of the wrong type, too long, out of range, or unknown. */
int json_check_fields(const json_t *obj, const struct json_field *fields,
    size_t n, char *err, size_t errlen) MOAT_MUST_CHECK;

/* Both in one step. */
int json_parse_request(const uint8_t *body, size_t len, size_t max_len,
    const struct json_field *fields, size_t n, json_t **out, char *err,
    size_t errlen) MOAT_MUST_CHECK;

/* Typed getters: NULL / def when absent or of another type. Borrowed. */
const char *json_get_str(const json_t *obj, const char *key);
long long json_get_int(const json_t *obj, const char *key, long long def);
bool json_get_bool(const json_t *obj, const char *key, bool def);

/* Compact serialization with sorted keys, the canonical form used by the
 * audit chain. Caller frees. NULL on failure. */
char *json_canonical(const json_t *v, size_t *len_out);

#endif
