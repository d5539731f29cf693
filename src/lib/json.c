/*
 * json.c - strict parsing of JSON request bodies over jansson (see json.h).
 *
 * The body's size is checked before jansson sees it; jansson then parses
 * the whole body as one value (trailing bytes other than white space are an
 * error), refuses duplicate keys, invalid UTF-8 and \u0000 (JSON_ALLOW_NUL
 * is not given). A walk afterwards enforces our own depth limit, which is
 * far below jansson's built-in 2048. Error texts are written here and never
 * taken from jansson, whose messages quote the input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

/* A field name from the body, safe to print: at most 64 bytes, printable
 * ASCII only (anything else becomes '?', so the text stays valid UTF-8). */
static void
safe_name(char *out, size_t outlen, const char *s)
{
	size_t o = 0, i;

	for (i = 0; s[i] != '\0' && o + 4 < outlen && i < 64; i++) {
		unsigned char c = (unsigned char)s[i];
		out[o++] = c >= 0x20 && c < 0x7f && c != '"' && c != '\\' ?
		    (char)c : '?';
	}
	if (s[i] != '\0' && o + 4 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
}

/*
 * Checks nesting: depth counts containers, the root object being 1. The
 * recursion is bounded by jansson's parser limit and cut off here one level
 * past JSON_MAX_DEPTH.
 */
static bool
json_walk_ok(const json_t *v, int depth)
{
	const char *key;
	json_t *item;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (depth > JSON_MAX_DEPTH)
			return false;
		json_object_foreach((json_t *)v, key, item) {
			if (!json_walk_ok(item, depth + 1))
				return false;
		}
		return true;
	case JSON_ARRAY:
		if (depth > JSON_MAX_DEPTH)
			return false;
		json_array_foreach(v, i, item) {
			if (!json_walk_ok(item, depth + 1))
				return false;
		}
		return true;
	default:
		return true;
	}
}

/* True when some string value or key holds a NUL byte (only possible for
 * values built with JSON_ALLOW_NUL or json_stringn; parsed bodies never). */
static bool
json_has_nul(const json_t *v)
{
	const char *key;
	json_t *item;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_STRING:
		return memchr(json_string_value(v), '\0',
		    json_string_length(v)) != NULL;
	case JSON_OBJECT:
		json_object_foreach((json_t *)v, key, item) {
			if (json_has_nul(item))
				return true;
		}
		return false;
	case JSON_ARRAY:
		json_array_foreach(v, i, item) {
			if (json_has_nul(item))
				return true;
		}
		return false;
	default:
		return false;
	}
}

int
json_parse_object(const uint8_t *body, size_t len, size_t max_len,
    json_t **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *v = NULL;
	int r = MOAT_ERR_PARSE;

	*out = NULL;
	if (len > max_len) {
		moat_errf(err, errlen, "body is larger than %zu bytes", max_len);
		return MOAT_ERR_TOOBIG;
	}
	if (len == 0 || body == NULL) {
		moat_errf(err, errlen, "body is empty; a JSON object is required");
		return MOAT_ERR_PARSE;
	}
	/* JSON_DECODE_ANY only so that a scalar body gets the clearer
	 * "must be a JSON object" below. */
	v = json_loadb((const char *)body, len,
	    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (v == NULL) {
		switch (json_error_code(&jerr)) {
		case json_error_out_of_memory:
			r = MOAT_ERR_NOMEM;
			moat_errf(err, errlen, "out of memory");
			break;
		case json_error_duplicate_key:
			moat_errf(err, errlen, "body has a duplicate key (line %d, "
			    "column %d)", jerr.line, jerr.column);
			break;
		case json_error_stack_overflow:
			moat_errf(err, errlen, "body is nested deeper than %d levels",
			    JSON_MAX_DEPTH);
			break;
		case json_error_null_character:
			moat_errf(err, errlen, "body has a string with a NUL "
			    "character (line %d, column %d)", jerr.line,
			    jerr.column);
			break;
		case json_error_invalid_utf8:
			moat_errf(err, errlen, "body is not valid UTF-8");
			break;
		default:
			moat_errf(err, errlen, "body is not valid JSON (line %d, "
			    "column %d)", jerr.line, jerr.column);
			break;
		}
		goto out;
	}
	if (!json_is_object(v)) {
		moat_errf(err, errlen, "body must be a JSON object");
		goto out;
	}
	if (!json_walk_ok(v, 1)) {
		moat_errf(err, errlen, "body is nested deeper than %d levels",
		    JSON_MAX_DEPTH);
		goto out;
	}
	if (json_has_nul(v)) {
		moat_errf(err, errlen, "body has a string with a NUL character");
		goto out;
	}
	*out = v;
	v = NULL;
	r = 0;
out:
	json_decref(v);
	return r;
}

static const char *
type_phrase(enum json_field_type t)
{
	switch (t) {
	case JF_STRING: return "a string";
	case JF_INT: return "an integer";
	case JF_BOOL: return "true or false";
	case JF_OBJECT: return "an object";
	case JF_ARRAY: return "an array";
	case JF_NUMBER: return "a number";
	case JF_ANY: return "a value";
	}
	return "a value";
}

static bool
type_ok(const json_t *v, enum json_field_type t)
{
	switch (t) {
	case JF_STRING: return json_is_string(v);
	case JF_INT: return json_is_integer(v);
	case JF_BOOL: return json_is_boolean(v);
	case JF_OBJECT: return json_is_object(v);
	case JF_ARRAY: return json_is_array(v);
	case JF_NUMBER: return json_is_number(v);
	case JF_ANY: return true;
	}
	return false;
}

int
json_check_fields(const json_t *obj, const struct json_field *fields,
    size_t n, char *err, size_t errlen)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj)) {
		moat_errf(err, errlen, "body must be a JSON object");
		return MOAT_ERR_INVAL;
	}
	/* Unknown fields first: a misspelt name is the likely cause of a
	 * missing one. */
	json_object_foreach((json_t *)obj, key, v) {
		size_t i;
		for (i = 0; i < n; i++)
			if (strcmp(fields[i].name, key) == 0)
				break;
		if (i == n) {
			char name[80];
			safe_name(name, sizeof(name), key);
			moat_errf(err, errlen, "unknown field \"%s\"", name);
			return MOAT_ERR_INVAL;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct json_field *f = &fields[i];

		v = json_object_get(obj, f->name);
		if (v == NULL) {
			if (f->required) {
				moat_errf(err, errlen, "field \"%s\" is required",
				    f->name);
				return MOAT_ERR_INVAL;
			}
			continue;
		}
		if (!type_ok(v, f->type)) {
			moat_errf(err, errlen, "field \"%s\" must be %s", f->name,
			    type_phrase(f->type));
			return MOAT_ERR_INVAL;
		}
		if (f->type == JF_STRING && f->max_len > 0 &&
		    json_string_length(v) > f->max_len) {
			moat_errf(err, errlen, "field \"%s\" is longer than %zu bytes",
			    f->name, f->max_len);
			return MOAT_ERR_INVAL;
		}
		if (f->type == JF_STRING && memchr(json_string_value(v), '\0',
		    json_string_length(v)) != NULL) {
			moat_errf(err, errlen, "field \"%s\" must not contain a NUL "
			    "character", f->name);
			return MOAT_ERR_INVAL;
		}
		if (f->type == JF_ARRAY && f->max_len > 0 &&
		    json_array_size(v) > f->max_len) {
			moat_errf(err, errlen, "field \"%s\" has more than %zu items",
			    f->name, f->max_len);
			return MOAT_ERR_INVAL;
		}
		if (f->type == JF_INT && f->min < f->max &&
		    (json_integer_value(v) < f->min ||
		    json_integer_value(v) > f->max)) {
			moat_errf(err, errlen, "field \"%s\" must be between %lld and "
			    "%lld", f->name, f->min, f->max);
			return MOAT_ERR_INVAL;
		}
	}
	return 0;
}

int
json_parse_request(const uint8_t *body, size_t len, size_t max_len,
    const struct json_field *fields, size_t n, json_t **out, char *err,
    size_t errlen)
{
	json_t *v = NULL;
	int r;

	*out = NULL;
	if ((r = json_parse_object(body, len, max_len, &v, err, errlen)) != 0)
		goto out;
	if ((r = json_check_fields(v, fields, n, err, errlen)) != 0)
		goto out;
	*out = v;
	v = NULL;
	r = 0;
out:
	json_decref(v);
	return r;
}

const char *
json_get_str(const json_t *obj, const char *key)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_string(v) ? json_string_value(v) : NULL;
}

long long
json_get_int(const json_t *obj, const char *key, long long def)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_integer(v) ? (long long)json_integer_value(v) : def;
}

bool
json_get_bool(const json_t *obj, const char *key, bool def)
{
	const json_t *v = json_is_object(obj) ? json_object_get(obj, key) : NULL;

	return json_is_boolean(v) ? json_is_true(v) : def;
}

char *
json_canonical(const json_t *v, size_t *len_out)
{
	char *s;

	if (v == NULL)
		return NULL;
	s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	if (s != NULL && len_out != NULL)
		*len_out = strlen(s);
	return s;
}
