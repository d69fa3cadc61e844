/*
 * GCRA (generic cell rate algorithm) arithmetic, rate/burst parsing and
 * Redis key naming for ml-guard's rate limits.  No nginx headers.
 *
 * The same arithmetic runs in two places and must stay identical:
 *   - mlg_ratelimit.lua, in Redis (the normal path, shared by all gateways);
 *   - mlg_gcra_check_all() below, in shared memory (the fail=local fallback).
 *
 * All times are int64 microseconds.  A limit is an emission interval T (one
 * request per T sustained) and a tolerance tau = burst * T (how far ahead of
 * "now" the theoretical arrival time TAT may run).  A request at time now:
 *
 *     tat      = max(stored_tat, now)
 *     allowed  = tat - now <= tau
 *     new_tat  = tat + T                       (stored only when allowed)
 *     remaining = (now + tau - new_tat + T) / T (requests still allowed at once)
 *     reset    = new_tat - now                  (until the budget is full again)
 *     retry    = tat - tau - now                (denied: until one is allowed)
 *
 * With burst=N a fresh client gets N + 1 requests at once, as with nginx's
 * limit_req (1r/m burst=49 allows exactly 50), then one per T.
 *
 * Every value stays below 2^53, so Lua's doubles compute it exactly.
 */
#ifndef MLG_GCRA_H
#define MLG_GCRA_H

#include <stddef.h>
#include <stdint.h>

#define MLG_GCRA_USEC            1000000LL
/* Upper bound for intervals and tolerances: ~31 years, far below 2^53. */
#define MLG_GCRA_MAX_SPAN_US     (1000000000LL * MLG_GCRA_USEC)
#define MLG_GCRA_MAX_LIMITS      16

/* Length of the hex client hash inside a Redis key. */
#define MLG_GCRA_HASH_HEX_LEN    32
/* Longest key mlg_ratelimit_key() writes, plus the terminating NUL. */
#define MLG_GCRA_KEY_MAX         96

typedef struct {
    int64_t   interval_us;   /* T: one request per T sustained */
    int64_t   tolerance_us;  /* tau = burst * T */
    uint64_t  count;         /* N of "Nr/unit", for display */
    char      unit;          /* 's', 'm', 'h', 'd' */
    uint64_t  burst;
} mlg_gcra_limit_t;

typedef struct {
    int       allowed;
    int       index;          /* the limit that decided: the tightest one
                                 when allowed, the one to wait for when not */
    int64_t   remaining;      /* requests still allowed at once (0 if denied) */
    int64_t   reset_us;       /* until that limit's budget is full again */
    int64_t   retry_after_us; /* denied: until a request would be allowed */
} mlg_gcra_result_t;

/*
 * Parses "Nr/s", "Nr/m", "Nr/h" or "Nr/d" into lim (count, unit,
 * interval_us rounded up, so the sustained rate never exceeds N per unit).
 * Returns NULL on success, else a static error message.
 */
const char *mlg_gcra_parse_rate(const char *s, size_t len,
    mlg_gcra_limit_t *lim);

/* Sets lim's burst and tolerance; NULL on success, else an error message. */
const char *mlg_gcra_set_burst(mlg_gcra_limit_t *lim, uint64_t burst);

/* Parses a decimal burst count ("0" .. "1000000000"). */
const char *mlg_gcra_parse_uint(const char *s, size_t len, uint64_t *out);

/*
 * One limit: tat is the stored TAT (0 when none).  Fills res (index 0) and,
 * when allowed, *new_tat with the value to store.
 */
void mlg_gcra_check(const mlg_gcra_limit_t *lim, int64_t tat, int64_t now,
    mlg_gcra_result_t *res, int64_t *new_tat);

/*
 * All limits of one request (n <= MLG_GCRA_MAX_LIMITS): allowed only if
 * every limit allows it.  tats[] holds the stored TATs (0 when none); when
 * the request is allowed each is replaced by its new TAT, when denied none
 * is changed, so a denied request consumes no budget.  Returns res->allowed.
 */
int mlg_gcra_check_all(const mlg_gcra_limit_t *lims, int64_t *tats, int n,
    int64_t now, mlg_gcra_result_t *res);

/* Microseconds to whole seconds, rounded up (Retry-After, RateLimit-Reset). */
int64_t mlg_gcra_ceil_seconds(int64_t us);

/* Microseconds to milliseconds, rounded up (key TTLs). */
int64_t mlg_gcra_ceil_ms(int64_t us);

/*
 * Redis key for one client value under one limit:
 *     mlg:{HASH}:SUFFIX
 * HASH is the first 16 bytes of SHA-256(kind "\n" value) in hex, so any
 * client value (binary address, header text) gives a fixed-size, safe key and
 * values of different kinds never collide; the {} hash tag keeps one client's
 * keys in one Redis Cluster slot.  kind names where the value came from
 * ("principal", "addr", the key= variable's text).  suffix names the limit
 * (mlg_gcra_limit_id) or "af"/"ban" for the lockout.  Writes a NUL-terminated
 * key into out (at least MLG_GCRA_KEY_MAX bytes) and returns its length, or
 * -1 when the suffix is too long.
 */
int mlg_ratelimit_key(char *out, const char *kind, size_t kind_len,
    const unsigned char *value, size_t value_len, const char *suffix);

/*
 * A limit's id inside keys: "20r/s:b5".  Equal limits on different locations
 * or gateways share a client's budget.  out needs 48 bytes; returns length.
 */
int mlg_gcra_limit_id(char *out, size_t size, const mlg_gcra_limit_t *lim);

/* The Redis script (mlg_ratelimit.lua). */
const char *mlg_ratelimit_script(size_t *len);

#endif /* MLG_GCRA_H */
