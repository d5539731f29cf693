/*
 * keys_int.h - what keys.c shares with jwt.c beyond keys.h: the cjose
 * forms of a snapshot's JWT keys, built once when the snapshot is loaded so
 * that signing and verifying do not convert keys per token.
 */
#ifndef MOATD_KEYS_INT_H
#define MOATD_KEYS_INT_H

#include <cjose/cjose.h>

#include "secrets/keys.h"

/* The private JWK of the signing key, or NULL (borrowed, valid while the
 * snapshot is held). */
const cjose_jwk_t *keyset__jwt_sign_jwk(const struct keyset *ks);
/* The public JWK for kid, or NULL (borrowed). */
const cjose_jwk_t *keyset__jwt_verify_jwk(const struct keyset *ks,
    const char *kid);

#endif
