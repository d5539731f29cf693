/*
 * config.c - configuration keys from a YAML file, MOAT_* environment
 * variables and command-line flags (see config.h).
 *
 * Each key remembers the rank of the source that set it (default < file <
 * env < flag); a source of lower rank never overrides a higher one, so the
 * precedence holds whatever order the sources are loaded in. Values are
 * checked strictly when loaded and kept both as text and in typed form.
 *
 * The YAML file is read with libyaml's event parser, not its document
 * loader: the only shape accepted is one top-level mapping of known keys to
 * scalars (or to flat sequences of scalars for CFG_LIST), so anchors,
 * aliases, tags and nesting are refused as soon as they are seen and memory
 * stays bounded by the file size cap.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#include "buf.h"
#include "config.h"

#define CONFIG_FILE_MAX (1024 * 1024)	/* bytes in a config file */
#define CONFIG_LIST_MAX 1024		/* items in one CFG_LIST value */
#define CONFIG_ECHO_MAX 64		/* bytes of a value quoted in errors */

extern char **environ;

enum config_rank { RANK_DEFAULT = 0, RANK_FILE, RANK_ENV, RANK_FLAG };

static const char *const rank_names[] = { "default", "file", "env", "flag" };

struct config_val {
	char *text;		/* value as given (lists: items joined by ','); NULL: unset */
	long long num;		/* CFG_INT, CFG_DURATION (ms), CFG_SIZE (bytes) */
	bool b;			/* CFG_BOOL */
	char **list;		/* CFG_LIST: NULL-terminated items */
	enum config_rank rank;
};

struct config {
	const struct config_key *keys;	/* borrowed */
	size_t n;
	struct config_val *v;		/* n of them */
	char *file;			/* file loaded by config_load_all */
};

/* A parsed value before it is stored: owned pieces, moved into the key. */
struct config_parsed {
	char *text;
	long long num;
	bool b;
	char **list;
};

static const char *const empty_list[] = { NULL };

static void
list_free(char **list)
{
	if (list == NULL)
		return;
	for (char **p = list; *p != NULL; p++)
		free(*p);
	free(list);
}

/* Wipes the text too: it may be a secret's value. */
static void
parsed_free(struct config_parsed *p)
{
	if (p->text != NULL)
		explicit_bzero(p->text, strlen(p->text));
	free(p->text);
	list_free(p->list);
	p->text = NULL;
	p->list = NULL;
}

/* Writes s quoted for an error message: at most CONFIG_ECHO_MAX bytes,
 * bytes outside printable ASCII shown as \xNN. */
static void
quote_value(char *out, size_t outlen, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	if (outlen < 8) {
		if (outlen > 0)
			out[0] = '\0';
		return;
	}
	out[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i >= CONFIG_ECHO_MAX || o + 8 >= outlen) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = 'x';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		} else {
			out[o++] = (char)c;
		}
	}
	out[o++] = '"';
	out[o] = '\0';
}

/* "abc" for an ordinary key, "value" for a secret one. */
static void
echo_value(char *out, size_t outlen, const struct config_key *k,
    const char *s, size_t len)
{
	if (k->secret)
		snprintf(out, outlen, "value");
	else
		quote_value(out, outlen, s, len);
}

static char *
strndup_checked(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	if (p == NULL)
		return NULL;
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/* Full-string decimal integer; no leading space, optional sign. */
static bool
parse_ll(const char *s, long long *out)
{
	char *end;
	long long v;

	if (s[0] == '\0' || isspace((unsigned char)s[0]))
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s)
		return false;
	*out = v;
	return true;
}

/* Leading unsigned decimal digits of s: their value and where they end. */
static bool
parse_digits(const char *s, long long *out, const char **rest)
{
	long long v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return false;
	for (; isdigit((unsigned char)*p); p++) {
		int d = *p - '0';
		if (v > (LLONG_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	*rest = p;
	return true;
}

static bool
parse_bool(const char *s, bool *out)
{
	static const char *const t[] = { "true", "yes", "on", "1" };
	static const char *const f[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, t[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, f[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

/* "500ms", "30s", "5m", "2h" or bare seconds, in milliseconds. */
static bool
parse_duration(const char *s, long long *out)
{
	long long v, mul;
	const char *rest;

	if (!parse_digits(s, &v, &rest))
		return false;
	if (strcmp(rest, "") == 0 || strcmp(rest, "s") == 0)
		mul = 1000;
	else if (strcmp(rest, "ms") == 0)
		mul = 1;
	else if (strcmp(rest, "m") == 0)
		mul = 60 * 1000;
	else if (strcmp(rest, "h") == 0)
		mul = 3600 * 1000;
	else
		return false;
	if (v > LLONG_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

/* "512", "64k", "10M", "1G", "1T" (powers of 1024, either case), bytes. */
static bool
parse_size(const char *s, long long *out)
{
	long long v, mul;
	const char *rest;

	if (!parse_digits(s, &v, &rest))
		return false;
	if (rest[0] == '\0')
		mul = 1;
	else if (rest[1] != '\0')
		return false;
	else if (rest[0] == 'k' || rest[0] == 'K')
		mul = 1LL << 10;
	else if (rest[0] == 'm' || rest[0] == 'M')
		mul = 1LL << 20;
	else if (rest[0] == 'g' || rest[0] == 'G')
		mul = 1LL << 30;
	else if (rest[0] == 't' || rest[0] == 'T')
		mul = 1LL << 40;
	else
		return false;
	if (v > LLONG_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

/* Appends one list item (trimmed of spaces; empty items dropped). */
static int
list_push(char ***list, size_t *n, const char *s, size_t len)
{
	char **nl;

	while (len > 0 && isspace((unsigned char)s[0])) {
		s++;
		len--;
	}
	while (len > 0 && isspace((unsigned char)s[len - 1]))
		len--;
	if (len == 0)
		return 0;
	if (*n >= CONFIG_LIST_MAX)
		return MOAT_ERR_TOOBIG;
	if ((nl = realloc(*list, (*n + 2) * sizeof(*nl))) == NULL)
		return MOAT_ERR_NOMEM;
	*list = nl;
	if ((nl[*n] = strndup_checked(s, len)) == NULL)
		return MOAT_ERR_NOMEM;
	nl[++*n] = NULL;
	return 0;
}

/* Splits a comma-separated list. */
static int
list_split(const char *s, char ***out)
{
	char **list = NULL;
	size_t n = 0;
	int r;

	for (;;) {
		const char *comma = strchr(s, ',');
		size_t len = comma != NULL ? (size_t)(comma - s) : strlen(s);
		if ((r = list_push(&list, &n, s, len)) != 0)
			goto out;
		if (comma == NULL)
			break;
		s = comma + 1;
	}
	if (list == NULL && (list = calloc(1, sizeof(*list))) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	*out = list;
	list = NULL;
	r = 0;
out:
	list_free(list);
	return r;
}

/* Joins list items with ','. Caller frees. */
static char *
list_join(char *const *list)
{
	struct buf b;

	buf_init(&b, SIZE_MAX / 2);
	for (size_t i = 0; list[i] != NULL; i++) {
		if ((i > 0 && buf_append(&b, ",", 1) != 0) ||
		    buf_append_str(&b, list[i]) != 0) {
			buf_free(&b);
			return NULL;
		}
	}
	return buf_steal(&b, NULL);
}

/*
 * Parses text (len bytes, may hold a NUL, which is refused) as a value of
 * key k. On error fills err as "<src>: key "<name>": <problem>" and returns
 * MOAT_ERR_INVAL.
 */
static int
value_parse(const struct config_key *k, const char *text, size_t len,
    const char *src, struct config_parsed *p, char *err, size_t errlen)
{
	char echo[CONFIG_ECHO_MAX * 4 + 16];
	const char *what = NULL;
	int r;

	memset(p, 0, sizeof(*p));
	echo_value(echo, sizeof(echo), k, text, len);
	if (memchr(text, '\0', len) != NULL) {
		moat_errf(err, errlen, "%s: key \"%s\": value contains a NUL byte",
		    src, k->name);
		return MOAT_ERR_INVAL;
	}
	if ((p->text = strndup_checked(text, len)) == NULL)
		return MOAT_ERR_NOMEM;
	switch (k->type) {
	case CFG_STRING:
		break;
	case CFG_INT:
		if (!parse_ll(p->text, &p->num))
			what = "an integer";
		break;
	case CFG_BOOL:
		if (!parse_bool(p->text, &p->b))
			what = "a boolean (true/false/yes/no/on/off/1/0)";
		break;
	case CFG_DURATION:
		if (!parse_duration(p->text, &p->num))
			what = "a duration (like 500ms, 30s, 5m, 2h)";
		break;
	case CFG_SIZE:
		if (!parse_size(p->text, &p->num))
			what = "a size (like 512, 64k, 10M, 1G)";
		break;
	case CFG_LIST:
		if ((r = list_split(p->text, &p->list)) != 0) {
			if (r == MOAT_ERR_TOOBIG) {
				moat_errf(err, errlen, "%s: key \"%s\": more than %d "
				    "items", src, k->name, CONFIG_LIST_MAX);
				r = MOAT_ERR_INVAL;
			}
			parsed_free(p);
			return r;
		}
		break;
	}
	if (what != NULL) {
		moat_errf(err, errlen, "%s: key \"%s\": %s is not %s", src, k->name,
		    echo, what);
		parsed_free(p);
		return MOAT_ERR_INVAL;
	}
	if ((k->type == CFG_INT || k->type == CFG_DURATION ||
	    k->type == CFG_SIZE) && k->min < k->max &&
	    (p->num < k->min || p->num > k->max)) {
		const char *unit = k->type == CFG_DURATION ? " ms" :
		    k->type == CFG_SIZE ? " bytes" : "";
		if (k->secret)
			moat_errf(err, errlen, "%s: key \"%s\": value is out of range "
			    "[%lld, %lld]%s", src, k->name, k->min, k->max, unit);
		else
			moat_errf(err, errlen, "%s: key \"%s\": %s is out of range "
			    "[%lld, %lld]%s", src, k->name, echo, k->min, k->max,
			    unit);
		parsed_free(p);
		return MOAT_ERR_INVAL;
	}
	return 0;
}

/* Moves p into key i when rank is at least the key's current rank. */
static void
value_store(struct config *c, size_t i, struct config_parsed *p,
    enum config_rank rank)
{
	struct config_val *v = &c->v[i];

	if (rank < v->rank) {
		parsed_free(p);
		return;
	}
	free(v->text);
	list_free(v->list);
	v->text = p->text;
	v->list = p->list;
	v->num = p->num;
	v->b = p->b;
	v->rank = rank;
	p->text = NULL;
	p->list = NULL;
}

static size_t
key_find(const struct config *c, const char *name, size_t len)
{
	for (size_t i = 0; i < c->n; i++)
		if (strlen(c->keys[i].name) == len &&
		    memcmp(c->keys[i].name, name, len) == 0)
			return i;
	return SIZE_MAX;
}

static size_t
key_must(const struct config *c, const char *name)
{
	size_t i = key_find(c, name, strlen(name));

	if (i == SIZE_MAX) {
		fprintf(stderr, "config: no key \"%s\" in the table\n", name);
		abort();
	}
	return i;
}

int
config_new(struct config **out, const struct config_key *keys, size_t n)
{
	struct config *c;
	char err[256];
	int r = MOAT_ERR_NOMEM;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return MOAT_ERR_NOMEM;
	c->keys = keys;
	c->n = n;
	if (n > 0 && (c->v = calloc(n, sizeof(*c->v))) == NULL)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct config_parsed p;
		if (keys[i].name == NULL ||
		    key_find(c, keys[i].name, strlen(keys[i].name)) != i) {
			r = MOAT_ERR_INVAL;	/* unnamed or duplicate key */
			goto out;
		}
		if (keys[i].def == NULL)
			continue;
		if ((r = value_parse(&keys[i], keys[i].def,
		    strlen(keys[i].def), "default", &p, err, sizeof(err))) != 0)
			goto out;
		value_store(c, i, &p, RANK_DEFAULT);
	}
	*out = c;
	c = NULL;
	r = 0;
out:
	config_free(c);
	return r;
}

void
config_free(struct config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; c->v != NULL && i < c->n; i++) {
		if (c->keys[i].secret && c->v[i].text != NULL)
			explicit_bzero(c->v[i].text, strlen(c->v[i].text));
		free(c->v[i].text);
		list_free(c->v[i].list);
	}
	free(c->v);
	free(c->file);
	free(c);
}

/* ---- YAML ---- */

/* Describes an event that is not allowed where it appeared. */
static const char *
yaml_event_name(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_MAPPING_START_EVENT: return "a mapping";
	case YAML_SEQUENCE_START_EVENT: return "a list";
	case YAML_ALIAS_EVENT: return "an alias";
	case YAML_SCALAR_EVENT: return "a scalar";
	case YAML_DOCUMENT_START_EVENT: return "a second document";
	default: return "unexpected content";
	}
}

/* Anchors, aliases and tags are refused everywhere (no billion laughs, no
 * type tricks). Returns true when ev carries one. */
static bool
yaml_event_fancy(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_ALIAS_EVENT:
		return true;
	case YAML_SCALAR_EVENT:
		return ev->data.scalar.anchor != NULL ||
		    ev->data.scalar.tag != NULL;
	case YAML_SEQUENCE_START_EVENT:
		return ev->data.sequence_start.anchor != NULL ||
		    ev->data.sequence_start.tag != NULL;
	case YAML_MAPPING_START_EVENT:
		return ev->data.mapping_start.anchor != NULL ||
		    ev->data.mapping_start.tag != NULL;
	case YAML_DOCUMENT_START_EVENT:
		return ev->data.document_start.tag_directives.start !=
		    ev->data.document_start.tag_directives.end;
	default:
		return false;
	}
}

struct yaml_ctx {
	struct config *c;
	yaml_parser_t parser;
	const char *src;	/* "config file x.yaml" */
	char *err;
	size_t errlen;
};

/* Next event; MOAT_ERR_PARSE with err filled on a syntax error or a
 * refused feature. */
static int
yaml_next(struct yaml_ctx *y, yaml_event_t *ev)
{
	if (!yaml_parser_parse(&y->parser, ev)) {
		if (y->parser.error == YAML_MEMORY_ERROR)
			return MOAT_ERR_NOMEM;
		moat_errf(y->err, y->errlen, "%s: invalid YAML at line %zu, column "
		    "%zu: %s", y->src, y->parser.problem_mark.line + 1,
		    y->parser.problem_mark.column + 1,
		    y->parser.problem != NULL ? y->parser.problem : "error");
		return MOAT_ERR_PARSE;
	}
	if (yaml_event_fancy(ev)) {
		moat_errf(y->err, y->errlen, "%s: line %zu: anchors, aliases and "
		    "tags are not allowed", y->src, ev->start_mark.line + 1);
		yaml_event_delete(ev);
		return MOAT_ERR_PARSE;
	}
	return 0;
}

/* Reads the value of key i (its key scalar already consumed). */
static int
yaml_value(struct yaml_ctx *y, size_t i, bool *seen)
{
	const struct config_key *k = &y->c->keys[i];
	struct config_parsed p = { 0 };
	yaml_event_t ev;
	size_t line, nitems = 0;
	int r;

	if ((r = yaml_next(y, &ev)) != 0)
		return r;
	line = ev.start_mark.line + 1;
	if (ev.type == YAML_SCALAR_EVENT) {
		r = value_parse(k, (const char *)ev.data.scalar.value,
		    ev.data.scalar.length, y->src, &p, y->err, y->errlen);
		yaml_event_delete(&ev);
		if (r != 0)
			return r;
		goto store;
	}
	if (ev.type != YAML_SEQUENCE_START_EVENT || k->type != CFG_LIST) {
		moat_errf(y->err, y->errlen, "%s: line %zu: key \"%s\" must have a "
		    "single value, not %s", y->src, line, k->name,
		    yaml_event_name(&ev));
		yaml_event_delete(&ev);
		return MOAT_ERR_PARSE;
	}
	yaml_event_delete(&ev);
	/* A flow or block sequence of scalars. */
	for (;;) {
		if ((r = yaml_next(y, &ev)) != 0)
			goto out;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type != YAML_SCALAR_EVENT) {
			moat_errf(y->err, y->errlen, "%s: line %zu: items of key "
			    "\"%s\" must be scalars, not %s", y->src,
			    ev.start_mark.line + 1, k->name,
			    yaml_event_name(&ev));
			yaml_event_delete(&ev);
			r = MOAT_ERR_PARSE;
			goto out;
		}
		if (memchr(ev.data.scalar.value, '\0',
		    ev.data.scalar.length) != NULL) {
			moat_errf(y->err, y->errlen, "%s: key \"%s\": value contains "
			    "a NUL byte", y->src, k->name);
			r = MOAT_ERR_INVAL;
		} else {
			r = list_push(&p.list, &nitems,
			    (const char *)ev.data.scalar.value,
			    ev.data.scalar.length);
			if (r == MOAT_ERR_TOOBIG) {
				moat_errf(y->err, y->errlen, "%s: key \"%s\": more "
				    "than %d items", y->src, k->name,
				    CONFIG_LIST_MAX);
				r = MOAT_ERR_INVAL;
			}
		}
		yaml_event_delete(&ev);
		if (r != 0)
			goto out;
	}
	if (p.list == NULL && (p.list = calloc(1, sizeof(char *))) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if ((p.text = list_join(p.list)) == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
store:
	seen[i] = true;
	value_store(y->c, i, &p, RANK_FILE);
	r = 0;
out:
	parsed_free(&p);
	return r;
}

/*
 * Loads YAML data. Values are applied only after the whole file has been
 * read without error, so a bad file changes nothing: they are parsed into a
 * scratch copy of the values first.
 */
static int
yaml_load(struct config *c, const char *data, size_t len, const char *src,
    char *err, size_t errlen)
{
	struct yaml_ctx y = { .c = c, .src = src, .err = err, .errlen = errlen };
	struct config scratch = { .keys = c->keys, .n = c->n };
	yaml_event_t ev;
	bool *seen = NULL, parser_ready = false, in_doc = false;
	int r = MOAT_ERR_NOMEM;

	if (len > CONFIG_FILE_MAX) {
		moat_errf(err, errlen, "%s: larger than %d bytes", src,
		    CONFIG_FILE_MAX);
		return MOAT_ERR_TOOBIG;
	}
	if ((seen = calloc(c->n + 1, sizeof(*seen))) == NULL)
		goto out;
	if (c->n > 0 && (scratch.v = calloc(c->n, sizeof(*scratch.v))) == NULL)
		goto out;
	y.c = &scratch;
	if (!yaml_parser_initialize(&y.parser))
		goto out;
	parser_ready = true;
	yaml_parser_set_input_string(&y.parser, (const unsigned char *)data,
	    len);

	if ((r = yaml_next(&y, &ev)) != 0)
		goto out;
	yaml_event_delete(&ev);	/* STREAM-START */
	for (;;) {
		if ((r = yaml_next(&y, &ev)) != 0)
			goto out;
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		if (ev.type != YAML_DOCUMENT_START_EVENT || in_doc) {
			moat_errf(err, errlen, "%s: line %zu: the file must hold "
			    "one YAML document", src, ev.start_mark.line + 1);
			yaml_event_delete(&ev);
			r = MOAT_ERR_PARSE;
			goto out;
		}
		yaml_event_delete(&ev);
		in_doc = true;
		if ((r = yaml_next(&y, &ev)) != 0)
			goto out;
		if (ev.type != YAML_MAPPING_START_EVENT) {
			moat_errf(err, errlen, "%s: line %zu: the file must be a "
			    "mapping of keys to values, not %s", src,
			    ev.start_mark.line + 1, yaml_event_name(&ev));
			yaml_event_delete(&ev);
			r = MOAT_ERR_PARSE;
			goto out;
		}
		yaml_event_delete(&ev);
		for (;;) {
			size_t i, line;
			char kname[CONFIG_ECHO_MAX * 4 + 16];

			if ((r = yaml_next(&y, &ev)) != 0)
				goto out;
			if (ev.type == YAML_MAPPING_END_EVENT) {
				yaml_event_delete(&ev);
				break;
			}
			line = ev.start_mark.line + 1;
			if (ev.type != YAML_SCALAR_EVENT) {
				moat_errf(err, errlen, "%s: line %zu: a key must be "
				    "a name, not %s", src, line,
				    yaml_event_name(&ev));
				yaml_event_delete(&ev);
				r = MOAT_ERR_PARSE;
				goto out;
			}
			i = key_find(c, (const char *)ev.data.scalar.value,
			    ev.data.scalar.length);
			if (i == SIZE_MAX) {
				quote_value(kname, sizeof(kname),
				    (const char *)ev.data.scalar.value,
				    ev.data.scalar.length);
				moat_errf(err, errlen, "unknown key %s in %s (line "
				    "%zu)", kname, src, line);
				yaml_event_delete(&ev);
				r = MOAT_ERR_INVAL;
				goto out;
			}
			yaml_event_delete(&ev);
			if (seen[i]) {
				moat_errf(err, errlen, "%s: line %zu: key \"%s\" is "
				    "given twice", src, line, c->keys[i].name);
				r = MOAT_ERR_INVAL;
				goto out;
			}
			if ((r = yaml_value(&y, i, seen)) != 0)
				goto out;
		}
		if ((r = yaml_next(&y, &ev)) != 0)
			goto out;
		yaml_event_delete(&ev);	/* DOCUMENT-END */
	}
	/* Commit. */
	for (size_t i = 0; i < c->n; i++) {
		struct config_parsed p;
		if (!seen[i])
			continue;
		p.text = scratch.v[i].text;
		p.list = scratch.v[i].list;
		p.num = scratch.v[i].num;
		p.b = scratch.v[i].b;
		scratch.v[i].text = NULL;
		scratch.v[i].list = NULL;
		value_store(c, i, &p, RANK_FILE);
	}
	r = 0;
out:
	if (parser_ready)
		yaml_parser_delete(&y.parser);
	for (size_t i = 0; scratch.v != NULL && i < c->n; i++) {
		free(scratch.v[i].text);
		list_free(scratch.v[i].list);
	}
	free(scratch.v);
	free(seen);
	return r;
}

int
config_load_yaml_buf(struct config *c, const char *data, size_t len,
    char *err, size_t errlen)
{
	return yaml_load(c, data, len, "config data", err, errlen);
}

int
config_load_yaml_file(struct config *c, const char *path, char *err,
    size_t errlen)
{
	char src[512];
	struct buf b;
	struct stat st;
	char chunk[8192];
	int fd = -1, r;

	buf_init(&b, CONFIG_FILE_MAX);
	snprintf(src, sizeof(src), "config file %s", path);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = moat_err_from_errno(errno);
		moat_errf(err, errlen, "%s: cannot open: %s", src, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		moat_errf(err, errlen, "%s: not a regular file", src);
		r = MOAT_ERR_INVAL;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = moat_err_from_errno(errno);
			moat_errf(err, errlen, "%s: cannot read: %s", src,
			    strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		if ((r = buf_append(&b, chunk, (size_t)n)) != 0) {
			if (r == MOAT_ERR_TOOBIG)
				moat_errf(err, errlen, "%s: larger than %d bytes",
				    src, CONFIG_FILE_MAX);
			goto out;
		}
	}
	r = yaml_load(c, buf_cstr(&b), b.len, src, err, errlen);
out:
	if (fd >= 0)
		close(fd);
	buf_free_wipe(&b);	/* may hold secrets */
	return r;
}

/* ---- environment ---- */

/* MOAT_ + upper(name) with '-' -> '_'. */
static void
env_name(const char *name, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = "MOAT_"; *p != '\0' && o + 1 < outlen; p++)
		out[o++] = *p;
	for (const char *p = name; *p != '\0' && o + 1 < outlen; p++)
		out[o++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	out[o] = '\0';
}

/* Checks (apply false) or applies (apply true) the environment. */
static int
env_walk(struct config *c, char *const *envp, bool apply, char *err,
    size_t errlen)
{
	char ename[256], src[300];

	for (size_t i = 0; i < c->n; i++) {
		size_t elen;
		env_name(c->keys[i].name, ename, sizeof(ename));
		elen = strlen(ename);
		for (char *const *e = envp; *e != NULL; e++) {
			struct config_parsed p;
			int r;
			if (strncmp(*e, ename, elen) != 0 || (*e)[elen] != '=')
				continue;
			snprintf(src, sizeof(src), "environment variable %s",
			    ename);
			if ((r = value_parse(&c->keys[i], *e + elen + 1,
			    strlen(*e + elen + 1), src, &p, err, errlen)) != 0)
				return r;
			if (apply)
				value_store(c, i, &p, RANK_ENV);
			else
				parsed_free(&p);
			break;	/* the first one wins, like getenv */
		}
	}
	return 0;
}

/* Checked in full before anything is applied: an error changes nothing. */
int
config_load_env(struct config *c, char *const *envp, char *err, size_t errlen)
{
	int r;

	if (envp == NULL)
		envp = environ;
	if ((r = env_walk(c, envp, false, err, errlen)) != 0)
		return r;
	return env_walk(c, envp, true, err, errlen);
}

/* ---- flags ---- */

/*
 * Walks flags. When config_path is not NULL, "--config FILE" and
 * "--config=FILE" are taken as the file to load (a copy in *config_path)
 * instead of a key. When apply is false only the syntax is checked.
 */
static int
flags_walk(struct config *c, int argc, char **argv, int *first_positional,
    char **config_path, bool apply, char *err, size_t errlen)
{
	int i, r;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i], *name, *eq, *val = NULL;
		size_t nlen, k;
		bool negated = false;
		char src[300];
		struct config_parsed p;

		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		if (strncmp(a, "--", 2) != 0)
			break;
		name = a + 2;
		eq = strchr(name, '=');
		nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
		if (eq != NULL)
			val = eq + 1;
		if (config_path != NULL && nlen == 6 &&
		    memcmp(name, "config", 6) == 0) {
			if (val == NULL) {
				if (i + 1 >= argc) {
					moat_errf(err, errlen, "--config needs a "
					    "value");
					return MOAT_ERR_INVAL;
				}
				val = argv[++i];
			}
			free(*config_path);
			if ((*config_path = strdup(val)) == NULL)
				return MOAT_ERR_NOMEM;
			continue;
		}
		k = key_find(c, name, nlen);
		if (k == SIZE_MAX && nlen > 3 && memcmp(name, "no-", 3) == 0) {
			k = key_find(c, name + 3, nlen - 3);
			if (k != SIZE_MAX && c->keys[k].type == CFG_BOOL &&
			    val == NULL)
				negated = true;
			else
				k = SIZE_MAX;
		}
		if (k == SIZE_MAX) {
			char q[CONFIG_ECHO_MAX * 4 + 16];
			quote_value(q, sizeof(q), name, nlen);
			/* q is "name"; print it as --name. */
			moat_errf(err, errlen, "unknown flag --%.*s", (int)strlen(q) - 2,
			    q + 1);
			return MOAT_ERR_INVAL;
		}
		snprintf(src, sizeof(src), "flag --%s", c->keys[k].name);
		if (c->keys[k].type == CFG_BOOL && val == NULL) {
			val = negated ? "false" : "true";
		} else if (val == NULL) {
			if (i + 1 >= argc || strncmp(argv[i + 1], "--", 2) == 0) {
				moat_errf(err, errlen, "--%s needs a value",
				    c->keys[k].name);
				return MOAT_ERR_INVAL;
			}
			val = argv[++i];
		}
		if ((r = value_parse(&c->keys[k], val, strlen(val), src, &p,
		    err, errlen)) != 0)
			return r;
		if (apply)
			value_store(c, k, &p, RANK_FLAG);
		else
			parsed_free(&p);
	}
	if (first_positional != NULL)
		*first_positional = i;
	return 0;
}

/* Checked in full before anything is applied: an error changes nothing. */
int
config_load_flags(struct config *c, int argc, char **argv,
    int *first_positional, char *err, size_t errlen)
{
	int r;

	if ((r = flags_walk(c, argc, argv, first_positional, NULL, false, err,
	    errlen)) != 0)
		return r;
	return flags_walk(c, argc, argv, first_positional, NULL, true, err,
	    errlen);
}

int
config_load_all(struct config *c, int argc, char **argv, char *const *envp,
    int *first_positional, char *err, size_t errlen)
{
	char *path = NULL;
	int r;

	if (envp == NULL)
		envp = environ;
	/* Flags first: they name the file, and ranks keep them on top. */
	if ((r = flags_walk(c, argc, argv, first_positional, &path, false, err,
	    errlen)) != 0 ||
	    (r = flags_walk(c, argc, argv, first_positional, &path, true, err,
	    errlen)) != 0)
		goto out;
	if (path == NULL) {
		for (char *const *e = envp; *e != NULL; e++) {
			if (strncmp(*e, "MOAT_CONFIG=", 12) == 0 &&
			    (*e)[12] != '\0') {
				if ((path = strdup(*e + 12)) == NULL) {
					r = MOAT_ERR_NOMEM;
					goto out;
				}
				break;
			}
		}
	}
	if ((r = config_load_env(c, envp, err, errlen)) != 0)
		goto out;
	if (path != NULL) {
		if ((r = config_load_yaml_file(c, path, err, errlen)) != 0)
			goto out;
		free(c->file);
		c->file = path;
		path = NULL;
	}
	r = 0;
out:
	free(path);
	return r;
}

const char *
config_file(const struct config *c)
{
	return c->file;
}

/* ---- readers ---- */

static const struct config_val *
val_typed(const struct config *c, const char *name, int t1, int t2, int t3)
{
	size_t i = key_must(c, name);
	int t = (int)c->keys[i].type;

	if (t != t1 && t != t2 && t != t3) {
		fprintf(stderr, "config: key \"%s\" read with the wrong type\n",
		    name);
		abort();
	}
	return &c->v[i];
}

const char *
config_str(const struct config *c, const char *name)
{
	return c->v[key_must(c, name)].text;
}

long long
config_int(const struct config *c, const char *name)
{
	return val_typed(c, name, CFG_INT, CFG_DURATION, CFG_SIZE)->num;
}

bool
config_bool(const struct config *c, const char *name)
{
	return val_typed(c, name, CFG_BOOL, CFG_BOOL, CFG_BOOL)->b;
}

const char *const *
config_list(const struct config *c, const char *name)
{
	const struct config_val *v = val_typed(c, name, CFG_LIST, CFG_LIST,
	    CFG_LIST);

	return v->list != NULL ? (const char *const *)v->list : empty_list;
}

const char *
config_source(const struct config *c, const char *name)
{
	return rank_names[c->v[key_must(c, name)].rank];
}

/* ---- help and docs ---- */

static const char *
type_metavar(enum config_type t)
{
	switch (t) {
	case CFG_STRING: return "STRING";
	case CFG_INT: return "N";
	case CFG_BOOL: return "";
	case CFG_DURATION: return "DURATION";
	case CFG_SIZE: return "SIZE";
	case CFG_LIST: return "A,B,...";
	}
	return "VALUE";
}

static void
flag_text(const struct config_key *k, char *out, size_t outlen)
{
	if (k->type == CFG_BOOL)
		snprintf(out, outlen, "--[no-]%s", k->name);
	else
		snprintf(out, outlen, "--%s %s", k->name, type_metavar(k->type));
}

static const char *
default_text(const struct config_key *k)
{
	if (k->def == NULL)
		return "-";
	if (k->secret)
		return "(secret)";
	return k->def[0] != '\0' ? k->def : "\"\"";
}

void
config_print_help(const struct config *c, FILE *f)
{
	size_t wflag = 0, wdef = 0;
	char flag[300];

	for (size_t i = 0; i < c->n; i++) {
		size_t l;
		flag_text(&c->keys[i], flag, sizeof(flag));
		if ((l = strlen(flag)) > wflag)
			wflag = l;
		if ((l = strlen(default_text(&c->keys[i]))) > wdef)
			wdef = l;
	}
	if (wdef > 24)
		wdef = 24;
	fprintf(f, "Options (also MOAT_<NAME> in the environment or <name>: "
	    "in the --config file):\n");
	for (size_t i = 0; i < c->n; i++) {
		const struct config_key *k = &c->keys[i];
		flag_text(k, flag, sizeof(flag));
		fprintf(f, "  %-*s  %-*s  %s\n", (int)wflag, flag, (int)wdef,
		    default_text(k), k->help != NULL ? k->help : "");
	}
}

/* Writes s for a Markdown table cell: '|' escaped, newlines as spaces. */
static void
md_cell(FILE *f, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '|')
			fputs("\\|", f);
		else if (*s == '\n' || *s == '\r')
			fputc(' ', f);
		else
			fputc(*s, f);
	}
}

void
config_print_markdown(const struct config_key *keys, size_t n, FILE *f)
{
	char ename[256];

	fputs("| key | flag | environment | default | meaning |\n", f);
	fputs("|---|---|---|---|---|\n", f);
	for (size_t i = 0; i < n; i++) {
		const struct config_key *k = &keys[i];
		env_name(k->name, ename, sizeof(ename));
		fprintf(f, "| `%s` | `--%s` | `%s` | ", k->name, k->name, ename);
		if (k->def == NULL || k->secret) {
			md_cell(f, default_text(k));
		} else {
			fputc('`', f);
			md_cell(f, k->def);
			fputc('`', f);
		}
		fputs(" | ", f);
		md_cell(f, k->help != NULL ? k->help : "");
		if ((k->type == CFG_INT || k->type == CFG_DURATION ||
		    k->type == CFG_SIZE) && k->min < k->max)
			fprintf(f, " (%lld to %lld%s)", k->min, k->max,
			    k->type == CFG_DURATION ? " ms" :
			    k->type == CFG_SIZE ? " bytes" : "");
		fputs(" |\n", f);
	}
}
