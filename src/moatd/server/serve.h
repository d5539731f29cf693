/*
 * serve.h - `moatd serve`: wires the control plane's modules together and
 * runs them until SIGINT/SIGTERM.
 *
 * What runs: the HTTPS listener (one per loop thread, SO_REUSEPORT) with
 * /healthz, /readyz and the API prefix; the Prometheus listener on a
 * separate address; the audit writer and its collector socket; a timer that
 * reloads TLS material when the secrets directory changes.
 */
#ifndef MOATD_SERVE_H
#define MOATD_SERVE_H

#include <stddef.h>

#include "config.h"

/* The configuration table of moatd serve (also used to generate docs). */
extern const struct config_key moatd_serve_keys[];
extern const size_t moatd_serve_nkeys;

/* argv[0] is the first argument after "serve" (or after "moatd"). Returns
 * the process exit code. */
int moatd_serve_main(int argc, char **argv);

#endif
