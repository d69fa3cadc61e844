/*
 * Per-worker verified-token cache: see mlg_jwt_cache.h.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

#include "mlg_jwt_cache.h"

typedef struct {
    unsigned char       digest[SHA256_DIGEST_LENGTH];
    uint64_t            scope;
    uint64_t            last_used;      /* 0: slot empty */
    long long           valid_until;    /* first second it is no longer valid */
    mlg_jwt_identity_t  id;
} cache_entry_t;

struct mlg_jwt_cache_s {
    cache_entry_t  *entries;
    size_t          nsets;              /* power of two */
    uint64_t        tick;
    uint64_t        hits;
    uint64_t        misses;
    uint64_t        evictions;
};


mlg_jwt_cache_t *
mlg_jwt_cache_new(size_t capacity)
{
    mlg_jwt_cache_t  *c;
    size_t            nsets;

    nsets = 1;
    while (nsets * MLG_JWT_CACHE_WAYS < capacity) {
        nsets *= 2;
    }
    c = calloc(1, sizeof(mlg_jwt_cache_t));
    if (c == NULL) {
        return NULL;
    }
    c->entries = calloc(nsets * MLG_JWT_CACHE_WAYS, sizeof(cache_entry_t));
    if (c->entries == NULL) {
        free(c);
        return NULL;
    }
    c->nsets = nsets;
    return c;
}


void
mlg_jwt_cache_free(mlg_jwt_cache_t *c)
{
    if (c == NULL) {
        return;
    }
    OPENSSL_cleanse(c->entries,
                    c->nsets * MLG_JWT_CACHE_WAYS * sizeof(cache_entry_t));
    free(c->entries);
    free(c);
}


/* The token's digest and the first way of its set. */
static cache_entry_t *
cache_set(mlg_jwt_cache_t *c, const char *token, size_t len,
    unsigned char *digest)
{
    size_t  set;

    if (EVP_Digest(token, len, digest, NULL, EVP_sha256(), NULL) != 1) {
        return NULL;
    }
    set = ((size_t) digest[0] | (size_t) digest[1] << 8
           | (size_t) digest[2] << 16) & (c->nsets - 1);
    return &c->entries[set * MLG_JWT_CACHE_WAYS];
}


static int
entry_is(const cache_entry_t *e, uint64_t scope, const unsigned char *digest)
{
    return e->last_used != 0 && e->scope == scope
           && CRYPTO_memcmp(e->digest, digest, SHA256_DIGEST_LENGTH) == 0;
}


const mlg_jwt_identity_t *
mlg_jwt_cache_get(mlg_jwt_cache_t *c, uint64_t scope, const char *token,
    size_t len, long long now)
{
    unsigned char   digest[SHA256_DIGEST_LENGTH];
    cache_entry_t  *set, *e;
    size_t          i;

    if (c == NULL) {
        return NULL;
    }
    set = cache_set(c, token, len, digest);
    if (set != NULL) {
        for (i = 0; i < MLG_JWT_CACHE_WAYS; i++) {
            e = &set[i];
            if (!entry_is(e, scope, digest)) {
                continue;
            }
            if (now >= e->valid_until) {
                e->last_used = 0;           /* expired: drop it */
                break;
            }
            e->last_used = ++c->tick;
            c->hits++;
            return &e->id;
        }
    }
    c->misses++;
    return NULL;
}


void
mlg_jwt_cache_put(mlg_jwt_cache_t *c, uint64_t scope, const char *token,
    size_t len, long long now, const mlg_jwt_identity_t *id)
{
    unsigned char   digest[SHA256_DIGEST_LENGTH];
    cache_entry_t  *set, *e, *victim, *free_way;
    long long       until;
    size_t          i;

    if (c == NULL) {
        return;
    }
    until = now + MLG_JWT_CACHE_MAX_TTL;
    if (id->exp != 0 && id->exp < until) {
        until = id->exp;
    }
    if (until <= now) {
        return;
    }
    set = cache_set(c, token, len, digest);
    if (set == NULL) {
        return;
    }

    /* the same token again, else a free or expired way, else the least
     * recently used one */
    victim = NULL;
    free_way = NULL;
    for (i = 0; i < MLG_JWT_CACHE_WAYS; i++) {
        e = &set[i];
        if (entry_is(e, scope, digest)) {
            victim = e;
            break;
        }
        if (e->last_used == 0 || now >= e->valid_until) {
            if (free_way == NULL) {
                free_way = e;
            }
        } else if (victim == NULL || e->last_used < victim->last_used) {
            victim = e;
        }
    }
    if (i == MLG_JWT_CACHE_WAYS) {
        if (free_way != NULL) {
            victim = free_way;
        } else {
            c->evictions++;
        }
    }

    memcpy(victim->digest, digest, SHA256_DIGEST_LENGTH);
    victim->scope = scope;
    victim->valid_until = until;
    victim->id = *id;
    victim->last_used = ++c->tick;
}


void
mlg_jwt_cache_stats(const mlg_jwt_cache_t *c, mlg_jwt_cache_stats_t *st)
{
    size_t  i, n;

    memset(st, 0, sizeof(*st));
    if (c == NULL) {
        return;
    }
    n = c->nsets * MLG_JWT_CACHE_WAYS;
    for (i = 0; i < n; i++) {
        if (c->entries[i].last_used != 0) {
            st->entries++;
        }
    }
    st->hits = c->hits;
    st->misses = c->misses;
    st->evictions = c->evictions;
    st->capacity = n;
}
