/*
 * fuzz_http_request.c - libFuzzer target for the HTTP core's request path:
 * the head scanner, http-parser glue, framing checks, chunked decoding,
 * routing with parameter decoding and response writing, through
 * http__parse_for_fuzz() (http_int.h), which runs exactly the code a
 * socket connection runs. Each input is fed once whole and once in 7-byte
 * pieces, so the incremental paths are covered too; pipelined requests in
 * one input are all processed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"
#include "log.h"

static struct http_server *fz_srv;

static void
fz_echo(struct http_request *req, void *arg)
{
	size_t len;
	const uint8_t *b = http_req_body(req, &len);
	const char *h = http_req_header(req, "x-test");

	(void)http_req_param(req, "id");
	(void)http_req_param(req, "none");
	(void)http_req_query(req);
	(void)http_req_client_addr(req);
	(void)http_req_tls_peer_name(req);
	if (h != NULL && http_resp_header(req, "X-Echo", h) != 0 &&
	    http_resp_header(req, "X-Echo", "invalid") != 0)
		abort();
	http_respond(req, 200, "application/octet-stream", b, len);
}

static void
fz_param(struct http_request *req, void *arg)
{
	const char *id = http_req_param(req, "id");
	const char *k = http_req_param(req, "key");

	if (k != NULL)
		id = k;
	http_respond(req, 200, "text/plain", id, strlen(id));
}

static void
fz_json(struct http_request *req, void *arg)
{
	json_t *j = json_pack("{s:s,s:s}", "path", http_req_path(req),
	    "method", http_req_method(req));

	if (j == NULL) {
		http_respond_error(req, 400, "bad", http_req_target(req));
		return;
	}
	http_respond_json(req, 200, j);
	json_decref(j);
}

static void
fz_setup(void)
{
	struct http_limits lim;

	http_limits_default(&lim);
	lim.max_request_line = 512;
	lim.max_header_bytes = 1024;
	lim.max_headers = 16;
	lim.max_body = 4096;
	if (http_server_new(&fz_srv, &lim) != 0)
		abort();
	http_server_set_access_log(fz_srv, NULL);
	if (http_server_route(fz_srv, "POST", "/echo", fz_echo, NULL) != 0 ||
	    http_server_route(fz_srv, "*", "/a/{id}", fz_param, NULL) != 0 ||
	    http_server_route(fz_srv, "GET", "/a/{id}/b/{key}", fz_param, NULL) != 0 ||
	    http_server_route(fz_srv, "GET", "/a/fixed", fz_json, NULL) != 0 ||
	    http_server_route(fz_srv, "GET", "/files/*", fz_json, NULL) != 0 ||
	    http_server_route(fz_srv, "PUT", "/", fz_echo, NULL) != 0 ||
	    http_server_route(fz_srv, "CONNECT", "*", fz_json, NULL) != 0 ||
	    http_server_route(fz_srv, "GET", "*", fz_json, NULL) != 0)
		abort();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_ERROR);
	fz_setup();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (fz_srv == NULL)
		fz_setup();
	(void)http__parse_for_fuzz(fz_srv, data, size, 0);
	(void)http__parse_for_fuzz(fz_srv, data, size, 7);
	return 0;
}
