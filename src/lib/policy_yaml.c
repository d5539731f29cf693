/*
 * policy_yaml.c - YAML text to the equivalent JSON value, for policy and
 * settings documents written as YAML (see policy.h).
 *
 * libyaml's event parser is walked directly (never its document loader), so
 * memory stays bounded by the input size cap: anchors, aliases, tags and
 * %TAG/%YAML directives are refused as soon as they are seen, nesting is cut
 * off at POLICY_YAML_MAX_DEPTH, the stream must hold exactly one document,
 * and a mapping may not repeat a key. Plain scalars are typed as the YAML
 * 1.2 core schema does (null, true/false, decimal integers, floats); any
 * quoted or block scalar is a string. Error texts give the line and never
 * quote the input.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "policy.h"

#define POLICY_YAML_MAX_LEN (256 * 1024)	/* bytes of YAML text */
#define POLICY_YAML_MAX_DEPTH 16		/* nested mappings/lists */

struct pyaml {
	yaml_parser_t parser;
	char *err;
	size_t errlen;
};

static int
pyaml_fail(struct pyaml *y, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
pyaml_fail(struct pyaml *y, int code, const char *fmt, ...)
{
	va_list ap;

	if (y->err != NULL && y->errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(y->err, y->errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

/* Next event, with refused features turned into errors. On failure no
 * event is left to delete. */
static int
pyaml_next(struct pyaml *y, yaml_event_t *ev)
{
	const char *what = NULL;

	if (!yaml_parser_parse(&y->parser, ev)) {
		if (y->parser.error == YAML_MEMORY_ERROR)
			return MOAT_ERR_NOMEM;
		return pyaml_fail(y, MOAT_ERR_PARSE, "invalid YAML at line %zu, "
		    "column %zu: %s", y->parser.problem_mark.line + 1,
		    y->parser.problem_mark.column + 1,
		    y->parser.problem != NULL ? y->parser.problem : "error");
	}
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		what = "aliases";
		break;
	case YAML_SCALAR_EVENT:
		if (ev->data.scalar.anchor != NULL)
			what = "anchors";
		else if (ev->data.scalar.tag != NULL)
			what = "tags";
		break;
	case YAML_SEQUENCE_START_EVENT:
		if (ev->data.sequence_start.anchor != NULL)
			what = "anchors";
		else if (ev->data.sequence_start.tag != NULL)
			what = "tags";
		break;
	case YAML_MAPPING_START_EVENT:
		if (ev->data.mapping_start.anchor != NULL)
			what = "anchors";
		else if (ev->data.mapping_start.tag != NULL)
			what = "tags";
		break;
	case YAML_DOCUMENT_START_EVENT:
		if (ev->data.document_start.version_directive != NULL ||
		    ev->data.document_start.tag_directives.start !=
		    ev->data.document_start.tag_directives.end)
			what = "directives";
		break;
	default:
		break;
	}
	if (what != NULL) {
		size_t line = ev->start_mark.line + 1;

		yaml_event_delete(ev);
		return pyaml_fail(y, MOAT_ERR_PARSE, "line %zu: YAML %s are "
		    "not allowed", line, what);
	}
	return 0;
}

static bool
is_digits(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* The core schema's float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool
is_float(const char *s, size_t n)
{
	size_t i = 0, a, b = 0;

	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	a = i;
	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++;
	a = i - a;
	if (i < n && s[i] == '.') {
		i++;
		b = i;
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		b = i - b;
	}
	if (a == 0 && b == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		if (!is_digits(s + i, n - i))
			return false;
		return true;
	}
	return i == n;
}

static bool
one_of(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/* Converts a scalar event into a JSON value (new reference in *out). */
static int
pyaml_scalar(struct pyaml *y, const yaml_event_t *ev, json_t **out)
{
	static const char *const nulls[] = { "", "~", "null", "Null", "NULL",
	    NULL };
	static const char *const trues[] = { "true", "True", "TRUE", NULL };
	static const char *const falses[] = { "false", "False", "FALSE",
	    NULL };
	static const char *const specials[] = { ".inf", ".Inf", ".INF",
	    "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
	    ".NaN", ".NAN", NULL };
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length, line = ev->start_mark.line + 1;
	json_t *v = NULL;

	*out = NULL;
	if (memchr(s, '\0', n) != NULL)
		return pyaml_fail(y, MOAT_ERR_PARSE, "line %zu: a NUL "
		    "character is not allowed", line);
	if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		if (one_of(s, nulls))
			v = json_null();
		else if (one_of(s, trues))
			v = json_true();
		else if (one_of(s, falses))
			v = json_false();
		else if (one_of(s, specials))
			return pyaml_fail(y, MOAT_ERR_PARSE, "line %zu: "
			    "infinity and NaN cannot be represented", line);
		else if (is_digits(s + (s[0] == '-' || s[0] == '+'),
		    n - (s[0] == '-' || s[0] == '+'))) {
			char *end;
			long long ll;

			errno = 0;
			ll = strtoll(s, &end, 10);
			if (errno != 0 || end != s + n)
				return pyaml_fail(y, MOAT_ERR_PARSE, "line %zu: "
				    "integer out of range", line);
			v = json_integer(ll);
		} else if (is_float(s, n)) {
			char *end;
			double d;

			errno = 0;
			d = strtod(s, &end);
			if (end != s + n || !isfinite(d))
				return pyaml_fail(y, MOAT_ERR_PARSE, "line %zu: "
				    "number out of range", line);
			v = json_real(d);
		}
	}
	if (v == NULL) {
		v = json_stringn(s, n);
		if (v == NULL)	/* invalid UTF-8 cannot come from libyaml */
			return pyaml_fail(y, MOAT_ERR_PARSE, "line %zu: invalid "
			    "text", line);
	}
	*out = v;
	return 0;
}

static int pyaml_node(struct pyaml *y, yaml_event_t *ev, int depth,
    json_t **out);

/* Reads a sequence's items up to its end event. */
static int
pyaml_sequence(struct pyaml *y, int depth, json_t *arr)
{
	yaml_event_t ev;
	json_t *item;
	int r;

	for (;;) {
		if ((r = pyaml_next(y, &ev)) != 0)
			return r;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		if ((r = pyaml_node(y, &ev, depth, &item)) != 0)
			return r;
		if (json_array_append_new(arr, item) != 0)
			return MOAT_ERR_NOMEM;
	}
}

/* Reads a mapping's pairs up to its end event; keys must be scalars and
 * unique. */
static int
pyaml_mapping(struct pyaml *y, int depth, json_t *obj)
{
	yaml_event_t ev;
	json_t *val;
	char *key;
	size_t line;
	int r;

	for (;;) {
		if ((r = pyaml_next(y, &ev)) != 0)
			return r;
		if (ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		line = ev.start_mark.line + 1;
		if (ev.type != YAML_SCALAR_EVENT) {
			yaml_event_delete(&ev);
			return pyaml_fail(y, MOAT_ERR_PARSE, "line %zu: a "
			    "mapping key must be a scalar", line);
		}
		if (memchr(ev.data.scalar.value, '\0',
		    ev.data.scalar.length) != NULL) {
			yaml_event_delete(&ev);
			return pyaml_fail(y, MOAT_ERR_PARSE, "line %zu: a NUL "
			    "character is not allowed", line);
		}
		key = strdup((const char *)ev.data.scalar.value);
		yaml_event_delete(&ev);
		if (key == NULL)
			return MOAT_ERR_NOMEM;
		if (json_object_get(obj, key) != NULL) {
			free(key);
			return pyaml_fail(y, MOAT_ERR_PARSE, "line %zu: "
			    "duplicate mapping key", line);
		}
		if ((r = pyaml_next(y, &ev)) != 0) {
			free(key);
			return r;
		}
		if ((r = pyaml_node(y, &ev, depth, &val)) != 0) {
			free(key);
			return r;
		}
		r = json_object_set_new(obj, key, val);
		free(key);
		if (r != 0)
			return MOAT_ERR_NOMEM;
	}
}

/* Converts the node that starts with ev (consumed here) at nesting depth
 * depth (the enclosing containers). */
static int
pyaml_node(struct pyaml *y, yaml_event_t *ev, int depth, json_t **out)
{
	size_t line = ev->start_mark.line + 1;
	yaml_event_type_t type = ev->type;
	json_t *v = NULL;
	int r;

	*out = NULL;
	if (type == YAML_SCALAR_EVENT) {
		r = pyaml_scalar(y, ev, out);
		yaml_event_delete(ev);
		return r;
	}
	yaml_event_delete(ev);
	if (type != YAML_SEQUENCE_START_EVENT &&
	    type != YAML_MAPPING_START_EVENT)
		return pyaml_fail(y, MOAT_ERR_PARSE, "line %zu: unexpected YAML "
		    "content", line);
	if (depth + 1 > POLICY_YAML_MAX_DEPTH)
		return pyaml_fail(y, MOAT_ERR_PARSE, "line %zu: nesting deeper "
		    "than %d levels", line, POLICY_YAML_MAX_DEPTH);
	if (type == YAML_SEQUENCE_START_EVENT) {
		if ((v = json_array()) == NULL)
			return MOAT_ERR_NOMEM;
		r = pyaml_sequence(y, depth + 1, v);
	} else {
		if ((v = json_object()) == NULL)
			return MOAT_ERR_NOMEM;
		r = pyaml_mapping(y, depth + 1, v);
	}
	if (r != 0) {
		json_decref(v);
		return r;
	}
	*out = v;
	return 0;
}

int
policy_yaml_to_json(const char *text, size_t len, json_t **out, char *err,
    size_t errlen)
{
	struct pyaml y = { .err = err, .errlen = errlen };
	bool inited = false;
	yaml_event_t ev;
	json_t *v = NULL;
	int r = MOAT_ERR_PARSE;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	*out = NULL;
	if (len > POLICY_YAML_MAX_LEN) {
		r = pyaml_fail(&y, MOAT_ERR_TOOBIG, "the YAML document is "
		    "larger than %d KiB", POLICY_YAML_MAX_LEN / 1024);
		goto out;
	}
	if (!yaml_parser_initialize(&y.parser)) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	inited = true;
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)text,
	    len);
	if ((r = pyaml_next(&y, &ev)) != 0)	/* STREAM-START */
		goto out;
	yaml_event_delete(&ev);
	if ((r = pyaml_next(&y, &ev)) != 0)
		goto out;
	if (ev.type != YAML_DOCUMENT_START_EVENT) {
		yaml_event_delete(&ev);
		r = pyaml_fail(&y, MOAT_ERR_PARSE, "the YAML text holds no "
		    "document");
		goto out;
	}
	yaml_event_delete(&ev);
	if ((r = pyaml_next(&y, &ev)) != 0)
		goto out;
	if ((r = pyaml_node(&y, &ev, 0, &v)) != 0)
		goto out;
	if ((r = pyaml_next(&y, &ev)) != 0)	/* DOCUMENT-END */
		goto out;
	yaml_event_delete(&ev);
	if ((r = pyaml_next(&y, &ev)) != 0)
		goto out;
	if (ev.type != YAML_STREAM_END_EVENT) {
		size_t line = ev.start_mark.line + 1;

		yaml_event_delete(&ev);
		r = pyaml_fail(&y, MOAT_ERR_PARSE, "line %zu: only one YAML "
		    "document is allowed", line);
		goto out;
	}
	yaml_event_delete(&ev);
	*out = v;
	v = NULL;
	r = 0;
out:
	json_decref(v);
	if (inited)
		yaml_parser_delete(&y.parser);
	return r;
}
