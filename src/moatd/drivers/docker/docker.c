/*
 * docker.c - the single-host runtime driver: the Docker Engine API v1.41
 * over a unix socket with libcurl (docker.h). Podman's compatible service
 * and Docker both serve it.
 *
 * Each call uses its own CURL easy handle (a unix socket connect costs
 * microseconds next to what the runtime does), so a struct driver is
 * shared by threads without a lock. Every call has a connect timeout and a
 * total timeout; proxies from the environment are never used. Answers are
 * collected into a capped buffer and parsed by docker_json.c; an image
 * pull's progress stream is cut into bounded lines handed to the caller's
 * callback as they arrive.
 *
 * Podman facts this code relies on (checked on Podman 4.3): a taken name
 * on create is a 500 whose message says "already in use" (Docker: 409);
 * stats of a container that is not running is a 200 with an empty body;
 * start of a running container and stop of a stopped one are 304.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "buf.h"
#include "drivers/docker/docker.h"
#include "drivers/docker/docker_int.h"
#include "log.h"

#define DOCKER_CONNECT_TIMEOUT_S	5L
#define DOCKER_CALL_TIMEOUT_S		60L	/* create, inspect, list... */
#define DOCKER_PULL_TIMEOUT_S		1800L	/* a whole image pull */
#define DOCKER_PULL_STALL_S		300L	/* no byte for this long */
#define DOCKER_STOP_GRACE_S		30L	/* beyond the stop timeout */
#define DOCKER_BUSY_TRIES		20	/* remove: "resource busy" answers */
#define DOCKER_BUSY_WAIT_MS		100	/* ... and the wait after each */

static const char *const docker_default_sockets[] = {
	"/run/podman/podman.sock",
	"/var/run/docker.sock",
};

struct docker {
	struct driver base;	/* first: ops->free gets &base */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

/* One request. */
struct docker_req {
	const char *method;	/* "GET", "POST", "DELETE" */
	const char *path;	/* after the API prefix, query included */
	const char *body;	/* JSON or NULL */
	const char *registry_auth; /* X-Registry-Auth value or NULL; secret */
	long timeout_s;
	size_t max;		/* cap on a buffered answer */
	/* Streaming (pulls): each line of a 2xx answer, without its '\n'. */
	void (*line_fn)(void *arg, const char *line, size_t len);
	void *line_arg;
};

/* State of one transfer, seen by the write callback. */
struct docker_xfer {
	CURL *curl;
	const struct docker_req *rq;
	struct buf resp;
	int streaming;		/* -1 unknown, 0 buffer, 1 stream lines */
	int fail;		/* MOAT_ERR_TOOBIG when an answer is too big */
};

static pthread_once_t docker_curl_once = PTHREAD_ONCE_INIT;
static int docker_curl_ok;

static void
docker_curl_init(void)
{
	docker_curl_ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK &&
	    sodium_init() >= 0;
}

static size_t
docker_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct docker_xfer *x = arg;
	size_t n = size * nmemb;
	uint8_t *nl;

	if (x->streaming < 0) {
		long code = 0;

		curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &code);
		x->streaming = x->rq->line_fn != NULL && code >= 200 &&
		    code < 300;
	}
	if (buf_append(&x->resp, data, n) != 0) {
		x->fail = MOAT_ERR_TOOBIG;
		return 0;	/* aborts the transfer */
	}
	if (!x->streaming)
		return n;
	while (x->resp.len > 0 &&
	    (nl = memchr(x->resp.data, '\n', x->resp.len)) != NULL) {
		size_t len = (size_t)(nl - x->resp.data);

		x->rq->line_fn(x->rq->line_arg, (const char *)x->resp.data, len);
		buf_consume(&x->resp, len + 1);
	}
	return n;
}

/* Performs rq. *status gets the HTTP status; resp (initialized by the
 * caller, capped at rq->max) the answer, or in streaming mode the bytes
 * after the last newline. MOAT_ERR_IO when the runtime cannot be reached,
 * MOAT_ERR_TIMEOUT, MOAT_ERR_TOOBIG. */
static int
docker_call(struct docker *d, const struct docker_req *rq, long *status,
    struct buf *resp, char *err, size_t errlen)
{
	struct docker_xfer x = { .rq = rq, .streaming = -1 };
	struct curl_slist *hdrs = NULL, *h;
	char url[2048];
	struct timespec t0, t1;
	CURLcode cc;
	int r = MOAT_ERR_NOMEM, n;

	*status = 0;
	pthread_once(&docker_curl_once, docker_curl_init);
	if (!docker_curl_ok)
		return moat_fail(MOAT_ERR_IO, err, errlen,
		    "libcurl could not be initialized");
	n = snprintf(url, sizeof(url), "http://localhost%s%s",
	    DOCKER_API_PREFIX, rq->path);
	if (n < 0 || (size_t)n >= sizeof(url))
		return moat_fail(MOAT_ERR_TOOBIG, err, errlen,
		    "request path too long");
	x.resp = *resp;
	x.curl = curl_easy_init();
	if (x.curl == NULL)
		goto out;
	if ((h = curl_slist_append(hdrs, "Expect:")) == NULL)
		goto out;
	hdrs = h;
	if (rq->body != NULL) {
		if ((h = curl_slist_append(hdrs,
		    "Content-Type: application/json")) == NULL)
			goto out;
		hdrs = h;
	}
	if (rq->registry_auth != NULL) {
		char *line;
		size_t ll = strlen(rq->registry_auth) + 32;

		if ((line = malloc(ll)) == NULL)
			goto out;
		snprintf(line, ll, "X-Registry-Auth: %s", rq->registry_auth);
		h = curl_slist_append(hdrs, line);
		sodium_memzero(line, ll);
		free(line);
		if (h == NULL)
			goto out;
		hdrs = h;
	}
	curl_easy_setopt(x.curl, CURLOPT_UNIX_SOCKET_PATH, d->sock);
	curl_easy_setopt(x.curl, CURLOPT_URL, url);
	curl_easy_setopt(x.curl, CURLOPT_PROTOCOLS_STR, "http");
	curl_easy_setopt(x.curl, CURLOPT_PROXY, "");
	curl_easy_setopt(x.curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(x.curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x.curl, CURLOPT_CONNECTTIMEOUT, DOCKER_CONNECT_TIMEOUT_S);
	curl_easy_setopt(x.curl, CURLOPT_TIMEOUT, rq->timeout_s);
	if (rq->line_fn != NULL) {
		/* A pull may be quiet while a layer is unpacked; a stalled
		 * registry still ends it. */
		curl_easy_setopt(x.curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(x.curl, CURLOPT_LOW_SPEED_TIME,
		    DOCKER_PULL_STALL_S);
	}
	curl_easy_setopt(x.curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(x.curl, CURLOPT_WRITEFUNCTION, docker_write);
	curl_easy_setopt(x.curl, CURLOPT_WRITEDATA, &x);
	if (strcmp(rq->method, "POST") == 0) {
		curl_easy_setopt(x.curl, CURLOPT_POST, 1L);
		curl_easy_setopt(x.curl, CURLOPT_POSTFIELDS,
		    rq->body != NULL ? rq->body : "");
		curl_easy_setopt(x.curl, CURLOPT_POSTFIELDSIZE,
		    (long)(rq->body != NULL ? strlen(rq->body) : 0));
	} else if (strcmp(rq->method, "GET") != 0) {
		curl_easy_setopt(x.curl, CURLOPT_CUSTOMREQUEST, rq->method);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cc = curl_easy_perform(x.curl);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	curl_easy_getinfo(x.curl, CURLINFO_RESPONSE_CODE, status);
	log_debug("docker", "runtime call", LF_STR("method", rq->method),
	    LF_STR("path", rq->path), LF_INT("status", *status),
	    LF_INT("ms", (t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000));
	if (x.fail != 0) {
		r = moat_fail(x.fail, err, errlen,
		    "the runtime's answer to %s %s is too large", rq->method,
		    rq->path);
	} else if (cc == CURLE_OPERATION_TIMEDOUT) {
		r = moat_fail(MOAT_ERR_TIMEOUT, err, errlen,
		    "the runtime at %s did not answer %s %s in time", d->sock,
		    rq->method, rq->path);
	} else if (cc != CURLE_OK) {
		r = moat_fail(MOAT_ERR_IO, err, errlen,
		    "the runtime at %s is unreachable (%s)", d->sock,
		    curl_easy_strerror(cc));
	} else {
		r = 0;
	}
out:
	if (r == MOAT_ERR_NOMEM)
		moat_errf(err, errlen, "out of memory");
	*resp = x.resp;
	for (h = hdrs; h != NULL; h = h->next)
		if (h->data != NULL)
			sodium_memzero(h->data, strlen(h->data));
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(x.curl);
	return r;
}

/* For an unexpected status: err gets "WHAT: HTTP n: message". */
static int
docker_status_fail(int code, long status, const struct buf *resp,
    const char *what, char *err, size_t errlen)
{
	char msg[256];

	docker__error_message((const char *)resp->data, resp->len, msg,
	    sizeof(msg));
	return moat_fail(code, err, errlen, "%s: the runtime answered %ld%s%s",
	    what, status, msg[0] != '\0' ? ": " : "", msg);
}

static int
docker_name(const char *workspace_id, char *out, size_t outlen, char *err,
    size_t errlen)
{
	if (driver_object_name(workspace_id, out, outlen) != 0)
		return moat_fail(MOAT_ERR_INVAL, err, errlen,
		    "invalid workspace id");
	return 0;
}

/* ---------------------------------------------------------------- images */

struct docker_pull {
	drv_progress_fn progress;
	void *arg;
	int fail;			/* first error seen in the stream */
	char errmsg[DOCKER_STATUS_MAX + 1];
	unsigned lines;
};

static void
docker_pull_line(void *arg, const char *line, size_t len)
{
	struct docker_pull *p = arg;
	struct docker_progress pr;
	int r;

	p->lines++;
	r = docker__parse_progress(line, len, &pr);
	if (r != 0) {
		if (p->fail == 0) {
			p->fail = MOAT_ERR_PARSE;
			snprintf(p->errmsg, sizeof(p->errmsg),
			    "unreadable progress line from the runtime");
		}
		return;
	}
	if (pr.kind == DOCKER_PROGRESS_ERROR) {
		if (p->fail == 0) {
			p->fail = docker__pull_error_code(pr.text);
			memcpy(p->errmsg, pr.text, sizeof(p->errmsg));
		}
		return;
	}
	if (pr.kind == DOCKER_PROGRESS_STATUS && p->progress != NULL)
		p->progress(p->arg, pr.text, pr.current, pr.total);
}

/* GET /images/{image}/json: 0 present, MOAT_ERR_NOTFOUND absent. */
static int
docker_image_present(struct docker *d, const char *image, char *err,
    size_t errlen)
{
	struct docker_req rq = { .method = "GET", .timeout_s =
	    DOCKER_CALL_TIMEOUT_S, .max = DOCKER_BODY_MAX };
	struct buf resp;
	char path[512];
	long status;
	int r;

	buf_init(&resp, rq.max);
	snprintf(path, sizeof(path), "/images/%s/json", image);
	rq.path = path;
	r = docker_call(d, &rq, &status, &resp, err, errlen);
	if (r != 0)
		goto out;
	if (status == 200)
		r = 0;
	else if (status == 404)
		r = moat_fail(MOAT_ERR_NOTFOUND, err, errlen,
		    "image %s is not present", image);
	else
		r = docker_status_fail(MOAT_ERR_IO, status, &resp,
		    "image inspect", err, errlen);
out:
	buf_free(&resp);
	return r;
}

static int
docker_ensure_image(struct driver *drv, const char *image,
    const struct drv_auth *auth, drv_progress_fn progress, void *arg,
    char *err, size_t errlen)
{
	struct docker *d = (struct docker *)drv;
	struct docker_pull pull = { .progress = progress, .arg = arg };
	struct docker_req rq = { .method = "POST", .timeout_s =
	    DOCKER_PULL_TIMEOUT_S, .max = DOCKER_LINE_MAX };
	struct buf resp;
	char from[DOCKER_IMAGE_MAX + 1], tag[DOCKER_IMAGE_MAX + 1];
	char registry[DOCKER_IMAGE_MAX + 1], path[1024];
	char *authhdr = NULL, *efrom = NULL, *etag = NULL;
	long status = 0;
	int r;

	buf_init(&resp, rq.max);
	if (!docker__image_ok(image) ||
	    docker__image_split(image, from, sizeof(from), tag, sizeof(tag),
	    registry, sizeof(registry)) != 0) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen,
		    "invalid image reference");
		goto out;
	}
	r = docker_image_present(d, image, err, errlen);
	if (r != MOAT_ERR_NOTFOUND)
		goto out;	/* present (0) or the runtime failed */
	if (auth != NULL) {
		r = docker__auth_header(auth, registry, &authhdr);
		if (r != 0) {
			r = moat_fail(r, err, errlen,
			    "registry credentials cannot be encoded");
			goto out;
		}
	}
	efrom = curl_easy_escape(NULL, from, 0);
	etag = curl_easy_escape(NULL, tag, 0);
	if (efrom == NULL || etag == NULL) {
		r = moat_fail(MOAT_ERR_NOMEM, err, errlen, "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/images/create?fromImage=%s&tag=%s",
	    efrom, etag);
	rq.path = path;
	rq.registry_auth = authhdr;
	rq.line_fn = docker_pull_line;
	rq.line_arg = &pull;
	log_info("docker", "pulling image", LF_STR("image", image),
	    LF_STR("registry", registry), LF_BOOL("auth", auth != NULL));
	r = docker_call(d, &rq, &status, &resp, err, errlen);
	if (r != 0)
		goto out;
	if (status < 200 || status >= 300) {
		char msg[256];

		docker__error_message((const char *)resp.data, resp.len, msg,
		    sizeof(msg));
		r = status == 404 ? MOAT_ERR_NOTFOUND :
		    status == 401 || status == 403 ? MOAT_ERR_PERM :
		    docker__pull_error_code(msg);
		r = moat_fail(r, err, errlen, "pull of %s failed: the runtime "
		    "answered %ld%s%s", image, status, msg[0] ? ": " : "", msg);
		goto out;
	}
	if (resp.len > 0)	/* a last line without its newline */
		docker_pull_line(&pull, (const char *)resp.data, resp.len);
	if (pull.fail != 0) {
		r = moat_fail(pull.fail, err, errlen, "pull of %s failed: %s",
		    image, pull.errmsg);
		goto out;
	}
	r = docker_image_present(d, image, err, errlen);
	if (r == MOAT_ERR_NOTFOUND)
		moat_errf(err, errlen, "pull of %s ended without the image",
		    image);
out:
	if (authhdr != NULL) {
		sodium_memzero(authhdr, strlen(authhdr));
		free(authhdr);
	}
	curl_free(efrom);
	curl_free(etag);
	buf_free(&resp);
	return r;
}

static int
docker_remove_image(struct driver *drv, const char *image, char *err,
    size_t errlen)
{
	struct docker *d = (struct docker *)drv;
	struct docker_req rq = { .method = "DELETE", .timeout_s =
	    DOCKER_CALL_TIMEOUT_S, .max = DOCKER_BODY_MAX };
	struct buf resp;
	char path[512];
	long status;
	int r;

	buf_init(&resp, rq.max);
	if (!docker__image_ok(image)) {
		r = moat_fail(MOAT_ERR_INVAL, err, errlen,
		    "invalid image reference");
		goto out;
	}
	snprintf(path, sizeof(path), "/images/%s?force=1", image);
	rq.path = path;
	r = docker_call(d, &rq, &status, &resp, err, errlen);
	if (r != 0)
		goto out;
	if (status == 200 || status == 204)
		r = 0;
	else if (status == 404)
		r = moat_fail(MOAT_ERR_NOTFOUND, err, errlen,
		    "image %s is not present", image);
	else if (status == 409)
		r = docker_status_fail(MOAT_ERR_CONFLICT, status, &resp,
		    "image remove", err, errlen);
	else
		r = docker_status_fail(MOAT_ERR_IO, status, &resp,
		    "image remove", err, errlen);
out:
	buf_free(&resp);
	return r;
}

/* ------------------------------------------------------------ containers */

static int
docker_create(struct driver *drv, const struct drv_spec *spec, char *err,
    size_t errlen)
{
	struct docker *d = (struct docker *)drv;
	struct docker_req rq = { .method = "POST", .timeout_s =
	    DOCKER_CALL_TIMEOUT_S, .max = DOCKER_BODY_MAX };
	struct buf resp;
	char name[80], path[128], msg[256];
	char *body = NULL;
	long status;
	int r;

	buf_init(&resp, rq.max);
	r = docker__create_body(spec, &body, err, errlen);
	if (r != 0)
		goto out;
	r = docker_name(spec->workspace_id, name, sizeof(name), err, errlen);
	if (r != 0)
		goto out;
	snprintf(path, sizeof(path), "/containers/create?name=%s", name);
	rq.path = path;
	rq.body = body;
	r = docker_call(d, &rq, &status, &resp, err, errlen);
	if (r != 0)
		goto out;
	docker__error_message((const char *)resp.data, resp.len, msg,
	    sizeof(msg));
	if (status == 201 || status == 200) {
		r = 0;
	} else if (status == 409 ||
	    (status == 500 && strstr(msg, "already in use") != NULL)) {
		r = moat_fail(MOAT_ERR_EXISTS, err, errlen,
		    "container %s already exists", name);
	} else if (status == 404) {
		r = docker_status_fail(MOAT_ERR_NOTFOUND, status, &resp,
		    "create", err, errlen);
	} else {
		r = docker_status_fail(MOAT_ERR_UNSUPPORTED, status, &resp,
		    "create", err, errlen);
	}
out:
	free(body);
	buf_free(&resp);
	return r;
}

/* POST /containers/{name}/{verb}[query]: 204 and 304 are success. */
static int
docker_post_verb(struct docker *d, const char *workspace_id, const char *verb,
    const char *query, long timeout_s, char *err, size_t errlen)
{
	struct docker_req rq = { .method = "POST", .timeout_s = timeout_s,
	    .max = DOCKER_BODY_MAX };
	struct buf resp;
	char name[80], path[160];
	long status;
	int r;

	buf_init(&resp, rq.max);
	r = docker_name(workspace_id, name, sizeof(name), err, errlen);
	if (r != 0)
		goto out;
	snprintf(path, sizeof(path), "/containers/%s/%s%s", name, verb, query);
	rq.path = path;
	r = docker_call(d, &rq, &status, &resp, err, errlen);
	if (r != 0)
		goto out;
	if (status == 204 || status == 304 || status == 200)
		r = 0;
	else if (status == 404)
		r = moat_fail(MOAT_ERR_NOTFOUND, err, errlen,
		    "container %s does not exist", name);
	else
		r = docker_status_fail(MOAT_ERR_UNSUPPORTED, status, &resp, verb,
		    err, errlen);
out:
	buf_free(&resp);
	return r;
}

static int
docker_start(struct driver *drv, const char *workspace_id, char *err,
    size_t errlen)
{
	return docker_post_verb((struct docker *)drv, workspace_id, "start", "",
	    DOCKER_CALL_TIMEOUT_S, err, errlen);
}

static int
docker_stop(struct driver *drv, const char *workspace_id, unsigned timeout_s,
    char *err, size_t errlen)
{
	char q[32];

	if (timeout_s > 3600)
		timeout_s = 3600;
	snprintf(q, sizeof(q), "?t=%u", timeout_s);
	return docker_post_verb((struct docker *)drv, workspace_id, "stop", q,
	    (long)timeout_s + DOCKER_STOP_GRACE_S, err, errlen);
}

static int
docker_remove(struct driver *drv, const char *workspace_id, char *err,
    size_t errlen)
{
	static const char busy[] = "resource busy";
	struct docker *d = (struct docker *)drv;
	struct docker_req rq = { .method = "DELETE", .timeout_s =
	    DOCKER_CALL_TIMEOUT_S, .max = DOCKER_BODY_MAX };
	struct buf resp;
	char name[80], path[160];
	long status;
	int r;

	buf_init(&resp, rq.max);
	r = docker_name(workspace_id, name, sizeof(name), err, errlen);
	if (r != 0)
		goto out;
	snprintf(path, sizeof(path), "/containers/%s?force=1&v=1", name);
	rq.path = path;
	/* Right after a stop Podman may still hold the container's shm mount
	 * and answer 500 "device or resource busy": try again briefly (this
	 * runs on the reconciler's thread, never on an event loop). */
	for (int attempt = 0;; attempt++) {
		buf_reset(&resp);
		r = docker_call(d, &rq, &status, &resp, err, errlen);
		if (r != 0 || status != 500 || attempt >= DOCKER_BUSY_TRIES ||
		    resp.len == 0 ||
		    memmem(resp.data, resp.len, busy, sizeof(busy) - 1) == NULL)
			break;
		usleep(DOCKER_BUSY_WAIT_MS * 1000);
	}
	if (r != 0)
		goto out;
	if (status == 204 || status == 200 || status == 404)
		r = 0;
	else
		r = docker_status_fail(status == 409 ? MOAT_ERR_CONFLICT :
		    MOAT_ERR_IO, status, &resp, "remove", err, errlen);
out:
	buf_free(&resp);
	return r;
}

static int
docker_inspect(struct driver *drv, const char *workspace_id, bool with_size,
    struct drv_status *out, char *err, size_t errlen)
{
	struct docker *d = (struct docker *)drv;
	struct docker_req rq = { .method = "GET", .timeout_s =
	    with_size ? 3 * DOCKER_CALL_TIMEOUT_S : DOCKER_CALL_TIMEOUT_S,
	    .max = DOCKER_BODY_MAX };
	struct buf resp;
	char name[80], path[160];
	long status;
	int r;

	memset(out, 0, sizeof(*out));
	buf_init(&resp, rq.max);
	r = docker_name(workspace_id, name, sizeof(name), err, errlen);
	if (r != 0)
		goto out;
	snprintf(path, sizeof(path), "/containers/%s/json%s", name,
	    with_size ? "?size=1" : "");
	rq.path = path;
	r = docker_call(d, &rq, &status, &resp, err, errlen);
	if (r != 0)
		goto out;
	if (status == 404) {
		out->state = DRV_ABSENT;
		r = 0;
	} else if (status == 200) {
		r = docker__parse_inspect((const char *)resp.data, resp.len,
		    out, err, errlen);
	} else {
		r = docker_status_fail(MOAT_ERR_IO, status, &resp, "inspect",
		    err, errlen);
	}
out:
	buf_free(&resp);
	return r;
}

static int
docker_list_owned(struct driver *drv, struct drv_status **out, size_t *n,
    char *err, size_t errlen)
{
	struct docker *d = (struct docker *)drv;
	struct docker_req rq = { .method = "GET", .timeout_s =
	    DOCKER_CALL_TIMEOUT_S, .max = DOCKER_LIST_MAX };
	struct buf resp;
	char path[256], *filt = NULL;
	long status;
	int r;

	*out = NULL;
	*n = 0;
	buf_init(&resp, rq.max);
	filt = curl_easy_escape(NULL,
	    "{\"label\":[\"" DRV_LABEL_MANAGED "=1\"]}", 0);
	if (filt == NULL) {
		r = moat_fail(MOAT_ERR_NOMEM, err, errlen, "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/containers/json?all=1&filters=%s", filt);
	rq.path = path;
	r = docker_call(d, &rq, &status, &resp, err, errlen);
	if (r != 0)
		goto out;
	if (status == 200)
		r = docker__parse_list((const char *)resp.data, resp.len, out, n,
		    err, errlen);
	else
		r = docker_status_fail(MOAT_ERR_IO, status, &resp, "list", err,
		    errlen);
out:
	curl_free(filt);
	buf_free(&resp);
	return r;
}

static int
docker_stats(struct driver *drv, const char *workspace_id,
    struct drv_stats *out, char *err, size_t errlen)
{
	struct docker *d = (struct docker *)drv;
	struct docker_req rq = { .method = "GET", .timeout_s =
	    DOCKER_CALL_TIMEOUT_S, .max = DOCKER_BODY_MAX };
	struct buf resp;
	char name[80], path[160];
	long status;
	int r;

	memset(out, 0, sizeof(*out));
	buf_init(&resp, rq.max);
	r = docker_name(workspace_id, name, sizeof(name), err, errlen);
	if (r != 0)
		goto out;
	snprintf(path, sizeof(path), "/containers/%s/stats?stream=false", name);
	rq.path = path;
	r = docker_call(d, &rq, &status, &resp, err, errlen);
	if (r != 0)
		goto out;
	if (status == 200)
		r = docker__parse_stats((const char *)resp.data, resp.len, out,
		    err, errlen);
	else if (status == 404)
		r = moat_fail(MOAT_ERR_NOTFOUND, err, errlen,
		    "container %s does not exist", name);
	else
		r = docker_status_fail(MOAT_ERR_IO, status, &resp, "stats", err,
		    errlen);
out:
	buf_free(&resp);
	return r;
}

static void
docker_free(struct driver *drv)
{
	free(drv);
}

static const struct driver_ops docker_ops = {
	.name = "docker",
	.ensure_image = docker_ensure_image,
	.remove_image = docker_remove_image,
	.create = docker_create,
	.start = docker_start,
	.stop = docker_stop,
	.remove = docker_remove,
	.inspect = docker_inspect,
	.list_owned = docker_list_owned,
	.stats = docker_stats,
	.free = docker_free,
};

/* ---------------------------------------------------------------- setup */

static bool
docker_is_socket(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

int
docker_socket_path(const char *docker_host_env, char *out, size_t outlen,
    char *err, size_t errlen)
{
	size_t i, n;

	if (out == NULL || outlen == 0)
		return MOAT_ERR_INVAL;
	out[0] = '\0';
	if (docker_host_env != NULL && docker_host_env[0] != '\0') {
		const char *p;

		if (strncmp(docker_host_env, "unix://", 7) != 0)
			return moat_fail(MOAT_ERR_UNSUPPORTED, err, errlen,
			    "DOCKER_HOST must be unix://PATH; other transports "
			    "(tcp://, ssh://...) are refused");
		p = docker_host_env + 7;
		n = strlen(p);
		if (n == 0 || p[0] != '/')
			return moat_fail(MOAT_ERR_INVAL, err, errlen,
			    "DOCKER_HOST must name an absolute socket path");
		if (n >= outlen ||
		    n >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return moat_fail(MOAT_ERR_TOOBIG, err, errlen,
			    "DOCKER_HOST's socket path is too long");
		memcpy(out, p, n + 1);
		return 0;
	}
	for (i = 0; i < sizeof(docker_default_sockets) /
	    sizeof(docker_default_sockets[0]); i++) {
		const char *p = docker_default_sockets[i];

		n = strlen(p);
		if (docker_is_socket(p) && n < outlen) {
			memcpy(out, p, n + 1);
			return 0;
		}
	}
	return moat_fail(MOAT_ERR_NOTFOUND, err, errlen,
	    "no container runtime socket: DOCKER_HOST is not set and neither "
	    "%s nor %s exists (start one with scripts/podman-service)",
	    docker_default_sockets[0], docker_default_sockets[1]);
}

int
docker_driver_new(struct driver **out, const char *socket_path, char *err,
    size_t errlen)
{
	struct docker *d = NULL;
	struct docker_req rq = { .method = "GET", .path = "/version",
	    .timeout_s = 10, .max = DOCKER_BODY_MAX };
	struct buf resp;
	long status;
	int r;

	*out = NULL;
	buf_init(&resp, rq.max);
	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		r = moat_fail(MOAT_ERR_NOMEM, err, errlen, "out of memory");
		goto out;
	}
	d->base.ops = &docker_ops;
	if (socket_path != NULL) {
		size_t n = strlen(socket_path);

		if (n == 0 || n >= sizeof(d->sock)) {
			r = moat_fail(MOAT_ERR_INVAL, err, errlen,
			    "invalid runtime socket path");
			goto out;
		}
		memcpy(d->sock, socket_path, n + 1);
	} else {
		r = docker_socket_path(getenv("DOCKER_HOST"), d->sock,
		    sizeof(d->sock), err, errlen);
		if (r != 0)
			goto out;
	}
	r = docker_call(d, &rq, &status, &resp, err, errlen);
	if (r != 0)
		goto out;
	if (status != 200) {
		r = docker_status_fail(MOAT_ERR_IO, status, &resp,
		    "GET /version", err, errlen);
		goto out;
	}
	log_info("docker", "container runtime found", LF_STR("socket", d->sock));
	*out = &d->base;
	d = NULL;
	r = 0;
out:
	free(d);
	buf_free(&resp);
	return r;
}
