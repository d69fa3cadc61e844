/*
 * Per-worker cache of verified tokens, so a client reusing a token does not
 * pay for an RSA/ECDSA verification on every request.
 *
 * Key: SHA-256 of the token plus a scope (the glue passes its location
 * configuration, so a token verified under one key/issuer/audience is
 * never accepted from the cache under another).  Value: the identity
 * (principal, roles, exp).  Bounded: capacity entries in sets of 8 ways,
 * least recently used way evicted.  An entry never outlives the token's
 * exp (checked at lookup against the time passed in); a token without exp
 * is kept at most MLG_JWT_CACHE_MAX_TTL seconds.
 *
 * Not thread-safe: one cache per nginx worker.  Plain C, no nginx headers.
 */
#ifndef MLG_JWT_CACHE_H
#define MLG_JWT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "mlg_jwt.h"

#define MLG_JWT_CACHE_WAYS     8
#define MLG_JWT_CACHE_MAX_TTL  60

typedef struct mlg_jwt_cache_s  mlg_jwt_cache_t;

typedef struct {
    uint64_t  hits;
    uint64_t  misses;
    uint64_t  evictions;        /* live entries pushed out by newer ones */
    size_t    entries;          /* slots in use (some may have expired) */
    size_t    capacity;
} mlg_jwt_cache_stats_t;

/* capacity is rounded up to a power of two, at least MLG_JWT_CACHE_WAYS.
 * Returns NULL when out of memory. */
mlg_jwt_cache_t *mlg_jwt_cache_new(size_t capacity);
void mlg_jwt_cache_free(mlg_jwt_cache_t *c);

/* The identity cached for token under scope, or NULL.  The pointer stays
 * valid until the next mlg_jwt_cache_put. */
const mlg_jwt_identity_t *mlg_jwt_cache_get(mlg_jwt_cache_t *c, uint64_t scope,
    const char *token, size_t len, long long now);

/* Remembers a verified identity; does nothing if it already expired. */
void mlg_jwt_cache_put(mlg_jwt_cache_t *c, uint64_t scope, const char *token,
    size_t len, long long now, const mlg_jwt_identity_t *id);

void mlg_jwt_cache_stats(const mlg_jwt_cache_t *c, mlg_jwt_cache_stats_t *st);

#endif /* MLG_JWT_CACHE_H */
