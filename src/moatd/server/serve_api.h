/*
 * serve_api.h - what `moatd serve` adds for the Core API: the store, the
 * keys (reloaded when the secrets directory changes), identity, the hasher
 * pool, and every API route on the HTTPS server.
 *
 * serve.c owns struct app and fills cfg, data_dir, audit, loops, workers
 * and metrics; serve_api_setup() fills store, keys, identity, hashers,
 * default_org and api, and registers the routes (before the first listen).
 * serve_api_shutdown() runs in the shutdown hook (it stops the key reload
 * timer so the loops can drain); serve_api_free() after the loops stopped
 * and the worker pool was freed, before the loop group is freed.
 */
#ifndef MOATD_SERVE_API_H
#define MOATD_SERVE_API_H

#include "errors.h"

struct app;
struct http_server;
struct serve_api;

int serve_api_setup(struct app *app, struct http_server *srv,
    struct serve_api **out) MOAT_MUST_CHECK;
void serve_api_shutdown(struct serve_api *sa);
void serve_api_free(struct serve_api *sa);

#endif
