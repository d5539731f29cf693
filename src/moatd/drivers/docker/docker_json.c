/*
 * docker_json.c - the Docker driver's JSON: the container-create body it
 * sends and the parsers of the runtime's answers (inspect, list, stats,
 * pull progress, error messages). No I/O here, so all of it is unit-tested
 * and fuzzed (tests/fuzz/fuzz_docker_json.c). The runtime is trusted to run
 * containers, not to answer well-formed or small JSON: every body is
 * size-checked before jansson sees it and every string copied out is
 * bounded and cleaned of control characters.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "buf.h"
#include "drivers/docker/docker_int.h"

/* True when the n bytes at s are UTF-8 continuation bytes. */
static bool
docker_utf8_tail(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xc0) != 0x80)
			return false;
	return true;
}

void
docker__clean_text(const char *s, size_t n, char *out, size_t outlen,
    size_t max)
{
	size_t i = 0, o = 0, lim;

	if (out == NULL || outlen == 0)
		return;
	lim = outlen - 1;
	if (max < lim)
		lim = max;
	while (s != NULL && i < n) {
		unsigned char c = (unsigned char)s[i];
		size_t clen = 1;

		if (c < 0x20 || c == 0x7f) {
			i++;
			continue;
		}
		/* C1 controls U+0080..U+009F are C2 80..C2 9F in UTF-8. */
		if (c == 0xc2 && i + 1 < n &&
		    (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f) {
			i += 2;
			continue;
		}
		if (c >= 0xf0)
			clen = 4;
		else if (c >= 0xe0)
			clen = 3;
		else if (c >= 0xc0)
			clen = 2;
		else if (c >= 0x80) {
			/* A stray continuation byte: not text, drop it. */
			i++;
			continue;
		}
		if (i + clen > n)
			break;		/* truncated sequence at the end */
		if (clen > 1 && !docker_utf8_tail(s + i + 1, clen - 1)) {
			i++;		/* not UTF-8: drop the lead byte */
			continue;
		}
		if (o + clen > lim)
			break;		/* keep whole characters only */
		memcpy(out + o, s + i, clen);
		o += clen;
		i += clen;
	}
	out[o] = '\0';
}

/* A JSON value parsed from at most max bytes, of the given type. */
static int
docker_load(const char *body, size_t len, size_t max, json_type type,
    json_t **out, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *v;

	*out = NULL;
	if (len > max)
		return moat_fail(MOAT_ERR_TOOBIG, err, errlen,
		    "the runtime's answer is larger than %zu bytes", max);
	if (body == NULL || len == 0)
		return moat_fail(MOAT_ERR_PARSE, err, errlen,
		    "the runtime's answer is empty");
	v = json_loadb(body, len, 0, &jerr);
	if (v == NULL)
		return moat_fail(MOAT_ERR_PARSE, err, errlen,
		    "the runtime's answer is not JSON (line %d)", jerr.line);
	if (json_typeof(v) != type) {
		json_decref(v);
		return moat_fail(MOAT_ERR_PARSE, err, errlen,
		    "the runtime's answer is not a JSON %s",
		    type == JSON_ARRAY ? "array" : "object");
	}
	*out = v;
	return 0;
}

/* A non-negative integer member, else 0 (the runtime omits what it does
 * not know; a negative or non-integer value is not a size). */
static uint64_t
docker_u64(const json_t *obj, const char *key)
{
	const json_t *v = json_object_get(obj, key);
	json_int_t i;

	if (!json_is_integer(v))
		return 0;
	i = json_integer_value(v);
	return i < 0 ? 0 : (uint64_t)i;
}

/* A string member copied (cleaned, bounded) into out; "" when absent. */
static void
docker_str(const json_t *obj, const char *key, char *out, size_t outlen)
{
	const json_t *v = json_object_get(obj, key);

	if (outlen > 0)
		out[0] = '\0';
	if (json_is_string(v))
		docker__clean_text(json_string_value(v), json_string_length(v),
		    out, outlen, outlen - 1);
}

enum drv_state
docker__state(const char *s)
{
	if (s == NULL)
		return DRV_OTHER;
	if (strcmp(s, "created") == 0 || strcmp(s, "configured") == 0)
		return DRV_CREATED;
	if (strcmp(s, "running") == 0)
		return DRV_RUNNING;
	if (strcmp(s, "exited") == 0 || strcmp(s, "stopped") == 0)
		return DRV_EXITED;
	return DRV_OTHER;	/* paused, restarting, removing, dead */
}

static void
docker_labels(const json_t *labels, struct drv_status *out)
{
	out->workspace_id[0] = '\0';
	out->installation[0] = '\0';
	if (!json_is_object(labels))
		return;
	docker_str(labels, DRV_LABEL_WORKSPACE, out->workspace_id,
	    sizeof(out->workspace_id));
	docker_str(labels, DRV_LABEL_INSTALLATION, out->installation,
	    sizeof(out->installation));
}

int
docker__parse_inspect(const char *body, size_t len, struct drv_status *out,
    char *err, size_t errlen)
{
	json_t *root = NULL, *state, *config;
	int r;

	memset(out, 0, sizeof(*out));
	r = docker_load(body, len, DOCKER_BODY_MAX, JSON_OBJECT, &root, err,
	    errlen);
	if (r != 0)
		goto out;
	state = json_object_get(root, "State");
	if (!json_is_object(state) ||
	    !json_is_string(json_object_get(state, "Status")) ||
	    !json_is_string(json_object_get(root, "Id"))) {
		r = moat_fail(MOAT_ERR_PARSE, err, errlen,
		    "the runtime's inspect answer has no Id or State.Status");
		goto out;
	}
	out->state = docker__state(json_string_value(json_object_get(state,
	    "Status")));
	docker_str(root, "Id", out->id, sizeof(out->id));
	config = json_object_get(root, "Config");
	if (json_is_object(config))
		docker_labels(json_object_get(config, "Labels"), out);
	{
		json_int_t code = json_integer_value(json_object_get(state,
		    "ExitCode"));

		out->exit_code = code < INT_MIN ? INT_MIN :
		    code > INT_MAX ? INT_MAX : (int)code;
	}
	out->oom_killed = json_is_true(json_object_get(state, "OOMKilled"));
	out->pid = (int64_t)docker_u64(state, "Pid");
	if (out->state != DRV_RUNNING)
		out->pid = 0;
	out->root_rw_bytes = docker_u64(root, "SizeRw");
	r = 0;
out:
	json_decref(root);
	return r;
}

int
docker__parse_list(const char *body, size_t len, struct drv_status **out,
    size_t *n, char *err, size_t errlen)
{
	json_t *root = NULL;
	struct drv_status *v = NULL;
	size_t i, count;
	int r;

	*out = NULL;
	*n = 0;
	r = docker_load(body, len, DOCKER_LIST_MAX, JSON_ARRAY, &root, err,
	    errlen);
	if (r != 0)
		goto out;
	count = json_array_size(root);
	if (count > DOCKER_LIST_ITEMS_MAX) {
		r = moat_fail(MOAT_ERR_TOOBIG, err, errlen,
		    "the runtime lists more than %d containers",
		    DOCKER_LIST_ITEMS_MAX);
		goto out;
	}
	if (count == 0) {
		r = 0;
		goto out;
	}
	v = calloc(count, sizeof(*v));
	if (v == NULL) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < count; i++) {
		const json_t *c = json_array_get(root, i);
		const json_t *st;

		if (!json_is_object(c) ||
		    !json_is_string(json_object_get(c, "Id"))) {
			r = moat_fail(MOAT_ERR_PARSE, err, errlen,
			    "container %zu of the runtime's list has no Id", i);
			goto out;
		}
		docker_str(c, "Id", v[i].id, sizeof(v[i].id));
		st = json_object_get(c, "State");
		/* Docker gives State as a string here; accept an object too. */
		if (json_is_object(st))
			st = json_object_get(st, "Status");
		v[i].state = docker__state(json_is_string(st) ?
		    json_string_value(st) : NULL);
		docker_labels(json_object_get(c, "Labels"), &v[i]);
	}
	*out = v;
	*n = count;
	v = NULL;
	r = 0;
out:
	free(v);
	json_decref(root);
	return r;
}

int
docker__parse_stats(const char *body, size_t len, struct drv_stats *out,
    char *err, size_t errlen)
{
	json_t *root = NULL, *o;
	size_t i;
	int r;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < len && i < DOCKER_BODY_MAX; i++)
		if (body[i] != ' ' && body[i] != '\n' && body[i] != '\r' &&
		    body[i] != '\t')
			break;
	if (i == len)
		return 0;	/* not running: nothing to report */
	r = docker_load(body, len, DOCKER_BODY_MAX, JSON_OBJECT, &root, err,
	    errlen);
	if (r != 0)
		goto out;
	o = json_object_get(root, "cpu_stats");
	if (json_is_object(o))
		out->cpu_total_ns = docker_u64(json_object_get(o, "cpu_usage"),
		    "total_usage");
	o = json_object_get(root, "memory_stats");
	if (json_is_object(o)) {
		out->memory_bytes = docker_u64(o, "usage");
		out->memory_limit = docker_u64(o, "limit");
	}
	o = json_object_get(root, "pids_stats");
	if (json_is_object(o))
		out->pids = docker_u64(o, "current");
	r = 0;
out:
	json_decref(root);
	return r;
}

int
docker__parse_progress(const char *line, size_t len,
    struct docker_progress *out)
{
	json_t *root = NULL, *v, *detail;
	const char *id, *status;
	char buf[2 * DOCKER_STATUS_MAX + 8];
	size_t i;
	int r;

	memset(out, 0, sizeof(*out));
	if (len > DOCKER_LINE_MAX)
		return MOAT_ERR_TOOBIG;
	for (i = 0; i < len; i++)
		if (line[i] != ' ' && line[i] != '\r' && line[i] != '\t' &&
		    line[i] != '\n')
			break;
	if (i == len)
		return 0;	/* blank line: SKIP */
	r = docker_load(line, len, DOCKER_LINE_MAX, JSON_OBJECT, &root, NULL,
	    0);
	if (r != 0)
		goto out;
	detail = json_object_get(root, "errorDetail");
	v = json_object_get(root, "error");
	if (v != NULL || detail != NULL) {
		out->kind = DOCKER_PROGRESS_ERROR;
		if (json_is_object(detail) &&
		    json_is_string(json_object_get(detail, "message")))
			docker_str(detail, "message", out->text,
			    sizeof(out->text));
		else if (json_is_string(v))
			docker_str(root, "error", out->text, sizeof(out->text));
		if (out->text[0] == '\0')
			memcpy(out->text, "pull failed", sizeof("pull failed"));
		r = 0;
		goto out;
	}
	v = json_object_get(root, "status");
	if (!json_is_string(v)) {
		r = 0;		/* {"id": ...}, {"stream": ...}: SKIP */
		goto out;
	}
	status = json_string_value(v);
	v = json_object_get(root, "id");
	id = json_is_string(v) ? json_string_value(v) : NULL;
	if (id != NULL && id[0] != '\0')
		snprintf(buf, sizeof(buf), "%.*s: %.*s", DOCKER_STATUS_MAX, id,
		    DOCKER_STATUS_MAX, status);
	else
		snprintf(buf, sizeof(buf), "%.*s", DOCKER_STATUS_MAX, status);
	docker__clean_text(buf, strlen(buf), out->text, sizeof(out->text),
	    DOCKER_STATUS_MAX);
	detail = json_object_get(root, "progressDetail");
	if (json_is_object(detail)) {
		out->current = docker_u64(detail, "current");
		out->total = docker_u64(detail, "total");
	}
	out->kind = DOCKER_PROGRESS_STATUS;
	r = 0;
out:
	json_decref(root);
	return r;
}

void
docker__error_message(const char *body, size_t len, char *out, size_t outlen)
{
	json_t *root = NULL;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if (docker_load(body, len, DOCKER_BODY_MAX, JSON_OBJECT, &root, NULL,
	    0) != 0)
		return;
	docker_str(root, "message", out, outlen);
	json_decref(root);
}

/* Case-insensitive substring test on short texts. */
static bool
docker_has(const char *s, const char *needle)
{
	return s != NULL && strcasestr(s, needle) != NULL;
}

int
docker__pull_error_code(const char *msg)
{
	if (docker_has(msg, "unauthorized") || docker_has(msg, "denied") ||
	    docker_has(msg, "authentication") || docker_has(msg, "401") ||
	    docker_has(msg, "403"))
		return MOAT_ERR_PERM;
	if (docker_has(msg, "manifest unknown") ||
	    docker_has(msg, "not found") || docker_has(msg, "no such") ||
	    docker_has(msg, "name unknown"))
		return MOAT_ERR_NOTFOUND;
	return MOAT_ERR_IO;
}

bool
docker__image_ok(const char *image)
{
	size_t n, i;

	if (image == NULL)
		return false;
	n = strnlen(image, DOCKER_IMAGE_MAX + 1);
	if (n == 0 || n > DOCKER_IMAGE_MAX || image[0] == '/' ||
	    image[0] == '-')
		return false;
	for (i = 0; i < n; i++) {
		char c = image[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == '/' || c == ':' || c == '@' || c == '-'))
			return false;
	}
	return true;
}

int
docker__image_split(const char *image, char *from, size_t fromlen,
    char *tag, size_t taglen, char *registry, size_t reglen)
{
	const char *at, *slash, *colon, *first_end;
	size_t n, name_len;
	int r;

	if (!docker__image_ok(image))
		return MOAT_ERR_INVAL;
	n = strlen(image);
	at = strchr(image, '@');
	slash = strrchr(image, '/');
	if (at != NULL) {
		if (at < slash || at[1] == '\0')
			return MOAT_ERR_INVAL;
		name_len = (size_t)(at - image);
		r = str_copyn(tag, taglen, at + 1, n - name_len - 1);
	} else {
		colon = strrchr(image, ':');
		if (colon != NULL && (slash == NULL || colon > slash)) {
			if (colon[1] == '\0')
				return MOAT_ERR_INVAL;
			name_len = (size_t)(colon - image);
			r = str_copyn(tag, taglen, colon + 1,
			    n - name_len - 1);
		} else {
			name_len = n;
			r = str_copyn(tag, taglen, "latest", 6);
		}
	}
	if (r != 0)
		return r;
	if (name_len == 0)
		return MOAT_ERR_INVAL;
	r = str_copyn(from, fromlen, image, name_len);
	if (r != 0)
		return r;
	/* The registry: the first component when it looks like a host. */
	first_end = memchr(image, '/', name_len);
	if (first_end != NULL) {
		size_t fl = (size_t)(first_end - image);

		if (memchr(image, '.', fl) != NULL ||
		    memchr(image, ':', fl) != NULL ||
		    (fl == 9 && memcmp(image, "localhost", 9) == 0))
			return str_copyn(registry, reglen, image, fl);
	}
	return str_copyn(registry, reglen, "docker.io", 9);
}

int
docker__auth_header(const struct drv_auth *auth, const char *registry,
    char **out)
{
	json_t *o = NULL;
	char *js = NULL, *b64 = NULL;
	size_t jl = 0, bl;
	int r = MOAT_ERR_NOMEM;

	*out = NULL;
	if (auth == NULL || auth->username == NULL || auth->password == NULL ||
	    registry == NULL)
		return MOAT_ERR_INVAL;
	o = json_pack("{s:s, s:s, s:s}", "username", auth->username,
	    "password", auth->password, "serveraddress", registry);
	if (o == NULL) {
		r = MOAT_ERR_INVAL;	/* not UTF-8 */
		goto out;
	}
	js = json_dumps(o, JSON_COMPACT);
	if (js == NULL)
		goto out;
	jl = strlen(js);
	bl = sodium_base64_ENCODED_LEN(jl, sodium_base64_VARIANT_URLSAFE);
	b64 = malloc(bl);
	if (b64 == NULL)
		goto out;
	sodium_bin2base64(b64, bl, (const unsigned char *)js, jl,
	    sodium_base64_VARIANT_URLSAFE);
	*out = b64;
	r = 0;
out:
	if (js != NULL) {
		sodium_memzero(js, jl);
		free(js);
	}
	/* The password's copy inside o is freed by jansson unwiped; it is
	 * short-lived and never logged. */
	json_decref(o);
	return r;
}

/* A NULL-terminated string list as a JSON array (empty when NULL). */
static json_t *
docker_strv(const char *const *v, size_t max)
{
	json_t *a = json_array();
	size_t i;

	if (a == NULL)
		return NULL;
	for (i = 0; v != NULL && v[i] != NULL; i++) {
		if (i >= max || json_array_append_new(a,
		    json_string(v[i])) != 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static bool
docker_path_ok(const char *p)
{
	return p != NULL && p[0] == '/' && strlen(p) < 4096 &&
	    strpbrk(p, ":,") == NULL;
}

/* json_object_set_new that reports failure (it frees v either way). */
static int
docker_set(json_t *o, const char *key, json_t *v)
{
	if (v == NULL)
		return MOAT_ERR_NOMEM;
	return json_object_set_new(o, key, v) == 0 ? 0 : MOAT_ERR_NOMEM;
}

static int
docker_ulimit(json_t *ulimits, const char *name, uint64_t value)
{
	json_t *u;

	if (value == 0)
		return 0;
	if (value > (uint64_t)INT64_MAX)
		return MOAT_ERR_INVAL;
	u = json_pack("{s:s, s:I, s:I}", "Name", name, "Soft",
	    (json_int_t)value, "Hard", (json_int_t)value);
	if (u == NULL)
		return MOAT_ERR_NOMEM;
	return json_array_append_new(ulimits, u) == 0 ? 0 : MOAT_ERR_NOMEM;
}

int
docker__create_body(const struct drv_spec *spec, char **out, char *err,
    size_t errlen)
{
	json_t *root = NULL, *hc, *labels, *arr, *tmpfs;
	char name[80], opt[128];
	size_t i;
	int r = MOAT_ERR_NOMEM;

	*out = NULL;
	if (spec == NULL || spec->entrypoint == NULL ||
	    !docker__image_ok(spec->image) ||
	    driver_object_name(spec->workspace_id, name, sizeof(name)) != 0)
		return moat_fail(MOAT_ERR_INVAL, err, errlen,
		    "the container spec needs a valid workspace id, image "
		    "and entrypoint");
	if (spec->memory_bytes > (uint64_t)INT64_MAX ||
	    spec->nano_cpus > (uint64_t)INT64_MAX || spec->pids_limit < 0 ||
	    (spec->uid_count > 0 &&
	    (uint64_t)spec->uid_base + spec->uid_count > UINT32_MAX))
		return moat_fail(MOAT_ERR_INVAL, err, errlen,
		    "a limit of the container spec is out of range");
	for (i = 0; spec->env != NULL && spec->env[i] != NULL; i++)
		if (strchr(spec->env[i], '=') == NULL ||
		    spec->env[i][0] == '=')
			return moat_fail(MOAT_ERR_INVAL, err, errlen,
			    "environment entry %zu is not NAME=VALUE", i);
	for (i = 0; i < spec->nmounts; i++)
		if (!docker_path_ok(spec->mounts[i].host_path) ||
		    !docker_path_ok(spec->mounts[i].container_path))
			return moat_fail(MOAT_ERR_INVAL, err, errlen,
			    "mount %zu needs absolute paths without ':' or ','",
			    i);
	for (i = 0; i < spec->ntmpfs; i++)
		if (!docker_path_ok(spec->tmpfs[i].container_path) ||
		    spec->tmpfs[i].size_bytes == 0 ||
		    spec->tmpfs[i].mode > 07777)
			return moat_fail(MOAT_ERR_INVAL, err, errlen,
			    "tmpfs %zu needs an absolute path, a size and a "
			    "mode", i);

	root = json_object();
	hc = json_object();
	labels = json_object();
	if (root == NULL || hc == NULL || labels == NULL) {
		json_decref(hc);
		json_decref(labels);
		goto out;
	}
	if ((r = docker_set(root, "HostConfig", hc)) != 0 ||
	    (r = docker_set(root, "Labels", labels)) != 0 ||
	    (r = docker_set(labels, DRV_LABEL_WORKSPACE,
	    json_string(spec->workspace_id))) != 0 ||
	    (r = docker_set(labels, DRV_LABEL_MANAGED, json_string("1"))) != 0 ||
	    (spec->installation != NULL && (r = docker_set(labels,
	    DRV_LABEL_INSTALLATION, json_string(spec->installation))) != 0) ||
	    (r = docker_set(root, "Image", json_string(spec->image))) != 0 ||
	    (r = docker_set(root, "Entrypoint",
	    json_pack("[s]", spec->entrypoint))) != 0 ||
	    (r = docker_set(root, "Cmd", docker_strv(spec->args, 1024))) != 0 ||
	    (r = docker_set(root, "Env", docker_strv(spec->env, 4096))) != 0)
		goto out;
	if (spec->hostname != NULL &&
	    (r = docker_set(root, "Hostname", json_string(spec->hostname))) != 0)
		goto out;
	if ((r = docker_set(root, "AttachStdin", json_false())) != 0 ||
	    (r = docker_set(root, "AttachStdout", json_false())) != 0 ||
	    (r = docker_set(root, "AttachStderr", json_false())) != 0 ||
	    (r = docker_set(root, "Tty", json_false())) != 0 ||
	    (r = docker_set(root, "OpenStdin", json_false())) != 0)
		goto out;

	/* Host configuration: no network but loopback, a user namespace
	 * with the workspace's recorded range, every capability dropped but
	 * the listed ones, limits. */
	if ((r = docker_set(hc, "NetworkMode", json_string("none"))) != 0 ||
	    (r = docker_set(hc, "Init", json_false())) != 0 ||
	    (r = docker_set(hc, "Privileged", json_false())) != 0 ||
	    (r = docker_set(hc, "ReadonlyRootfs",
	    json_boolean(spec->read_only_root))) != 0 ||
	    (r = docker_set(hc, "CapDrop", json_pack("[s]", "ALL"))) != 0 ||
	    (r = docker_set(hc, "CapAdd", docker_strv(spec->cap_add, 64))) != 0)
		goto out;
	if (spec->uid_count > 0) {
		snprintf(opt, sizeof(opt), "auto:size=%u,uidmapping=0:%u:%u,"
		    "gidmapping=0:%u:%u", spec->uid_count, spec->uid_base,
		    spec->uid_count, spec->uid_base, spec->uid_count);
		if ((r = docker_set(hc, "UsernsMode", json_string(opt))) != 0)
			goto out;
	}
	arr = json_array();
	if ((r = docker_set(hc, "Ulimits", arr)) != 0 ||
	    (r = docker_ulimit(arr, "nofile", spec->nofile)) != 0 ||
	    (r = docker_ulimit(arr, "nproc", spec->nproc)) != 0)
		goto out;
	arr = json_array();
	if ((r = docker_set(hc, "SecurityOpt", arr)) != 0)
		goto out;
	if (spec->no_new_privileges &&
	    json_array_append_new(arr, json_string("no-new-privileges")) != 0) {
		r = MOAT_ERR_NOMEM;
		goto out;
	}
	if (spec->memory_bytes > 0 &&
	    (r = docker_set(hc, "Memory",
	    json_integer((json_int_t)spec->memory_bytes))) != 0)
		goto out;
	if (spec->nano_cpus > 0 &&
	    (r = docker_set(hc, "NanoCpus",
	    json_integer((json_int_t)spec->nano_cpus))) != 0)
		goto out;
	if (spec->pids_limit > 0 &&
	    (r = docker_set(hc, "PidsLimit",
	    json_integer((json_int_t)spec->pids_limit))) != 0)
		goto out;
	arr = json_array();
	if ((r = docker_set(hc, "Binds", arr)) != 0)
		goto out;
	for (i = 0; i < spec->nmounts; i++) {
		json_t *b = json_sprintf("%s:%s:%s", spec->mounts[i].host_path,
		    spec->mounts[i].container_path,
		    spec->mounts[i].read_only ? "ro" : "rw");

		if (b == NULL || json_array_append_new(arr, b) != 0) {
			r = MOAT_ERR_NOMEM;
			goto out;
		}
	}
	tmpfs = json_object();
	if ((r = docker_set(hc, "Tmpfs", tmpfs)) != 0)
		goto out;
	for (i = 0; i < spec->ntmpfs; i++) {
		snprintf(opt, sizeof(opt), "size=%llu,mode=%04o",
		    (unsigned long long)spec->tmpfs[i].size_bytes,
		    spec->tmpfs[i].mode);
		if ((r = docker_set(tmpfs, spec->tmpfs[i].container_path,
		    json_string(opt))) != 0)
			goto out;
	}
	if ((r = docker_set(hc, "RestartPolicy",
	    json_pack("{s:s}", "Name", "no"))) != 0)
		goto out;

	*out = json_dumps(root, JSON_COMPACT);
	r = *out == NULL ? MOAT_ERR_NOMEM : 0;
out:
	if (r == MOAT_ERR_NOMEM)
		moat_errf(err, errlen, "out of memory building the container "
		    "spec (or a string in it is not UTF-8)");
	json_decref(root);
	return r;
}
