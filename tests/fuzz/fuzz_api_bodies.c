/*
 * fuzz_api_bodies.c - libFuzzer target for the JSON bodies of every Core
 * API route that takes one (api/routes.c).
 *
 * The first input byte picks the route (its low 7 bits, modulo the number
 * of routes with a body); the rest is the body. It goes through what the
 * framework does on the loop thread and the worker before a handler runs:
 * json_parse_request() with the route's field table (or, for a route that
 * accepts YAML and a first byte with its high bit set, policy_yaml_to_json()
 * then json_check_fields()), and then the route's own validator.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "json.h"
#include "policy.h"

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct api_route *rt = NULL;
	size_t nbody = 0, pick;
	json_t *body = NULL;
	char err[256];

	if (size < 1 || size - 1 > API_MAX_BODY)
		return 0;
	for (size_t i = 0; i < api_nroutes; i++)
		if (api_routes[i].fields != NULL)
			nbody++;
	if (nbody == 0)
		return 0;
	pick = (data[0] & 0x7f) % nbody;
	for (size_t i = 0; i < api_nroutes; i++) {
		if (api_routes[i].fields == NULL)
			continue;
		if (pick-- == 0) {
			rt = &api_routes[i];
			break;
		}
	}
	data++;
	size--;
	if (rt->yaml_body && (data[-1] & 0x80) != 0) {
		if (policy_yaml_to_json((const char *)data, size, &body, err,
		    sizeof(err)) != 0)
			return 0;
		if (json_check_fields(body, rt->fields, rt->nfields, err,
		    sizeof(err)) != 0) {
			json_decref(body);
			return 0;
		}
	} else if (json_parse_request(data, size, API_MAX_BODY, rt->fields,
	    rt->nfields, &body, err, sizeof(err)) != 0) {
		return 0;
	}
	if (rt->validate != NULL)
		(void)rt->validate(body, err, sizeof(err));
	json_decref(body);
	return 0;
}
