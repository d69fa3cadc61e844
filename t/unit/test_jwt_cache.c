/*
 * Unit tests for mlg_jwt_cache.c: hits and misses, scope separation,
 * expiry at exp (never later), the TTL for tokens without exp, bounds and
 * least-recently-used eviction.
 */
#include "tap.h"
#include "mlg_jwt_cache.h"

#define NOW  1700000000LL

static mlg_jwt_identity_t *
ident(const char *principal, const char *roles, long long exp)
{
    static mlg_jwt_identity_t  id;

    memset(&id, 0, sizeof(id));
    snprintf(id.principal, sizeof(id.principal), "%s", principal);
    snprintf(id.roles, sizeof(id.roles), "%s", roles);
    id.nroles = roles[0] ? 1 : 0;
    id.exp = exp;
    return &id;
}

static const mlg_jwt_identity_t *
get(mlg_jwt_cache_t *c, uint64_t scope, const char *tok, long long now)
{
    return mlg_jwt_cache_get(c, scope, tok, strlen(tok), now);
}

static void
put(mlg_jwt_cache_t *c, uint64_t scope, const char *tok, long long now,
    const mlg_jwt_identity_t *id)
{
    mlg_jwt_cache_put(c, scope, tok, strlen(tok), now, id);
}

static void
test_basics(void)
{
    mlg_jwt_cache_t           *c;
    const mlg_jwt_identity_t  *hit;
    mlg_jwt_cache_stats_t      st;

    c = mlg_jwt_cache_new(1024);
    ok(c != NULL, "cache created");
    mlg_jwt_cache_stats(c, &st);
    is_int(st.capacity, 1024, "capacity 1024");
    is_int(st.entries, 0, "empty");

    ok(get(c, 1, "tok.en.one", NOW) == NULL, "miss on an empty cache");
    put(c, 1, "tok.en.one", NOW, ident("alice", "admin", NOW + 100));
    hit = get(c, 1, "tok.en.one", NOW + 1);
    ok(hit != NULL, "hit after put");
    is_str(hit ? hit->principal : NULL, "alice", "principal cached");
    is_str(hit ? hit->roles : NULL, "admin", "roles cached");
    is_int(hit ? hit->exp : 0, NOW + 100, "exp cached");
    ok(get(c, 2, "tok.en.one", NOW) == NULL, "other scope misses");
    ok(get(c, 1, "tok.en.onE", NOW) == NULL, "other token misses");
    ok(mlg_jwt_cache_get(c, 1, "tok.en.one", 9, NOW) == NULL, "a prefix of the token misses");

    put(c, 1, "tok.en.one", NOW, ident("alice", "writer", NOW + 100));
    hit = get(c, 1, "tok.en.one", NOW);
    is_str(hit ? hit->roles : NULL, "writer", "put again replaces");
    mlg_jwt_cache_stats(c, &st);
    is_int(st.entries, 1, "replacing does not add an entry");
    is_int(st.hits, 2, "hits counted");
    is_int(st.misses, 4, "misses counted");
    mlg_jwt_cache_free(c);

    c = mlg_jwt_cache_new(10);
    mlg_jwt_cache_stats(c, &st);
    is_int(st.capacity, 16, "capacity rounded up to a power of two");
    mlg_jwt_cache_free(c);
    c = mlg_jwt_cache_new(0);
    mlg_jwt_cache_stats(c, &st);
    is_int(st.capacity, MLG_JWT_CACHE_WAYS, "capacity at least one set");
    mlg_jwt_cache_free(c);

    ok(mlg_jwt_cache_get(NULL, 1, "x", 1, NOW) == NULL, "NULL cache misses");
    mlg_jwt_cache_put(NULL, 1, "x", 1, NOW, ident("a", "", NOW + 5));
    mlg_jwt_cache_free(NULL);
    ok(1, "NULL cache put/free are no-ops");
}

static void
test_expiry(void)
{
    mlg_jwt_cache_t        *c;
    mlg_jwt_cache_stats_t   st;

    c = mlg_jwt_cache_new(64);
    put(c, 1, "a.b.c", NOW, ident("alice", "", NOW + 10));
    ok(get(c, 1, "a.b.c", NOW + 9) != NULL, "hit one second before exp");
    ok(get(c, 1, "a.b.c", NOW + 10) == NULL, "miss at exp");
    mlg_jwt_cache_stats(c, &st);
    is_int(st.entries, 0, "expired entry dropped at lookup");
    ok(get(c, 1, "a.b.c", NOW + 9) == NULL, "dropped entry stays gone");

    put(c, 1, "x.y.z", NOW, ident("bob", "", NOW));
    ok(get(c, 1, "x.y.z", NOW - 1) == NULL, "token expiring now is not cached");
    put(c, 1, "x.y.z", NOW, ident("bob", "", NOW - 100));
    mlg_jwt_cache_stats(c, &st);
    is_int(st.entries, 0, "expired tokens (accepted within leeway) are not cached");

    put(c, 1, "no.exp.tok", NOW, ident("carol", "", 0));
    ok(get(c, 1, "no.exp.tok", NOW + MLG_JWT_CACHE_MAX_TTL - 1) != NULL, "token without exp: hit within TTL");
    ok(get(c, 1, "no.exp.tok", NOW + MLG_JWT_CACHE_MAX_TTL) == NULL, "token without exp: miss at TTL");

    put(c, 1, "long.exp.tok", NOW, ident("dave", "", NOW + 86400));
    ok(get(c, 1, "long.exp.tok", NOW + MLG_JWT_CACHE_MAX_TTL) == NULL,
       "long-lived token kept at most the TTL too");
    mlg_jwt_cache_free(c);
}

static void
test_bounds(void)
{
    mlg_jwt_cache_t        *c;
    mlg_jwt_cache_stats_t   st;
    char                    tok[64];
    int                     i, found;

    /* one set of 8 ways: least recently used goes first */
    c = mlg_jwt_cache_new(8);
    for (i = 0; i < 8; i++) {
        snprintf(tok, sizeof(tok), "tok%d", i);
        put(c, 1, tok, NOW, ident(tok, "", NOW + 100));
    }
    ok(get(c, 1, "tok0", NOW) != NULL, "tok0 present (and now recently used)");
    put(c, 1, "tok8", NOW, ident("tok8", "", NOW + 100));
    ok(get(c, 1, "tok1", NOW) == NULL, "least recently used tok1 evicted");
    ok(get(c, 1, "tok0", NOW) != NULL, "recently used tok0 kept");
    ok(get(c, 1, "tok8", NOW) != NULL, "new tok8 present");
    mlg_jwt_cache_stats(c, &st);
    is_int(st.evictions, 1, "one eviction");
    is_int(st.entries, 8, "still 8 entries");

    /* an expired way is reused before a live one is evicted */
    put(c, 1, "short", NOW, ident("short", "", NOW + 1));
    mlg_jwt_cache_stats(c, &st);
    is_int(st.evictions, 2, "short evicts a live entry");
    put(c, 1, "later", NOW + 2, ident("later", "", NOW + 100));
    mlg_jwt_cache_stats(c, &st);
    is_int(st.evictions, 2, "expired way reused without an eviction");
    ok(get(c, 1, "later", NOW + 2) != NULL, "later present");
    mlg_jwt_cache_free(c);

    /* many tokens: bounded, recent ones mostly present */
    c = mlg_jwt_cache_new(1024);
    for (i = 0; i < 5000; i++) {
        snprintf(tok, sizeof(tok), "token-%d", i);
        put(c, 7, tok, NOW, ident(tok, "r", NOW + 100));
    }
    mlg_jwt_cache_stats(c, &st);
    ok(st.entries <= 1024, "5000 puts stay within 1024 entries (%zu)", st.entries);
    ok(st.entries > 900, "cache well used (%zu)", st.entries);
    is_int(st.evictions, 5000 - st.entries, "evictions = puts - entries");
    found = 0;
    for (i = 4990; i < 5000; i++) {
        snprintf(tok, sizeof(tok), "token-%d", i);
        found += get(c, 7, tok, NOW) != NULL;
    }
    is_int(found, 10, "the 10 newest tokens are all cached");
    mlg_jwt_cache_free(c);
}

int
main(void)
{
    diag("per-worker verified-token cache");
    test_basics();
    test_expiry();
    test_bounds();
    return done_testing();
}
