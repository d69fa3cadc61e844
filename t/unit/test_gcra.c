/*
 * Unit tests for mlg_gcra: rate parsing, GCRA decisions (burst, sustained
 * rate, refill, retry-after rounding, several limits per request), key
 * naming, and that the embedded Redis script matches mlg_ratelimit.lua.
 */
#include "tap.h"
#include "mlg_gcra.h"

#include <ctype.h>

#define SEC  1000000LL
#define MIN  (60 * SEC)

static mlg_gcra_limit_t
limit(const char *rate, uint64_t burst)
{
    mlg_gcra_limit_t  lim;
    const char       *err;

    err = mlg_gcra_parse_rate(rate, strlen(rate), &lim);
    if (err != NULL) {
        diag("parse %s: %s", rate, err);
        exit(2);
    }
    err = mlg_gcra_set_burst(&lim, burst);
    if (err != NULL) {
        diag("burst %llu: %s", (unsigned long long) burst, err);
        exit(2);
    }
    return lim;
}

/* One request against one limit with stored state *tat. */
static int
one(const mlg_gcra_limit_t *lim, int64_t *tat, int64_t now,
    mlg_gcra_result_t *res)
{
    return mlg_gcra_check_all(lim, tat, 1, now, res);
}

static void
test_parse(void)
{
    mlg_gcra_limit_t  lim;
    uint64_t          v;
    const char       *bad[] = { "", "r/s", "10", "10r/x", "10r/", "0r/s",
                                "-1r/s", "1.5r/s", "10 r/s", "10r/ss",
                                "2000000r/s", "99999999999r/d", "10R/s" };
    size_t            i;

    ok(mlg_gcra_parse_rate("20r/s", 5, &lim) == NULL, "20r/s parses");
    is_int(lim.interval_us, 50000, "20r/s: one per 50 ms");
    is_int(lim.count, 20, "20r/s: count");
    is_int(lim.unit, 's', "20r/s: unit");
    ok(mlg_gcra_parse_rate("1r/m", 4, &lim) == NULL, "1r/m parses");
    is_int(lim.interval_us, MIN, "1r/m: one per minute");
    ok(mlg_gcra_parse_rate("2r/h", 4, &lim) == NULL, "2r/h parses");
    is_int(lim.interval_us, 1800 * SEC, "2r/h: one per 30 minutes");
    ok(mlg_gcra_parse_rate("10000r/d", 8, &lim) == NULL, "10000r/d parses");
    is_int(lim.interval_us, 8640000, "10000r/d: one per 8.64 s");
    ok(mlg_gcra_parse_rate("3r/s", 4, &lim) == NULL, "3r/s parses");
    is_int(lim.interval_us, 333334, "3r/s: interval rounded up");
    ok(mlg_gcra_parse_rate("1000000r/s", 10, &lim) == NULL,
       "1000000r/s parses (1 us)");
    is_int(lim.interval_us, 1, "1000000r/s: 1 us");
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ok(mlg_gcra_parse_rate(bad[i], strlen(bad[i]), &lim) != NULL,
           "rejects rate '%s'", bad[i]);
    }

    ok(mlg_gcra_parse_uint("49", 2, &v) == NULL && v == 49, "burst 49");
    ok(mlg_gcra_parse_uint("0", 1, &v) == NULL && v == 0, "burst 0");
    ok(mlg_gcra_parse_uint("", 0, &v) != NULL, "empty burst rejected");
    ok(mlg_gcra_parse_uint("1x", 2, &v) != NULL, "1x rejected");
    ok(mlg_gcra_parse_uint("-1", 2, &v) != NULL, "-1 rejected");
    ok(mlg_gcra_parse_uint("99999999999999999999999", 23, &v) != NULL,
       "overflowing burst rejected");
    ok(mlg_gcra_parse_uint("1000000000", 10, &v) == NULL, "1e9 accepted");
    ok(mlg_gcra_parse_uint("1000000001", 10, &v) != NULL, "1e9+1 rejected");

    mlg_gcra_parse_rate("1r/d", 4, &lim);
    ok(mlg_gcra_set_burst(&lim, 1000000000) != NULL,
       "burst spanning 2.7 million years rejected");
    ok(mlg_gcra_set_burst(&lim, 10000) == NULL, "1r/d burst=10000 accepted");
    is_int(lim.tolerance_us, 10000 * 86400 * SEC, "tolerance = burst * T");
}

static void
test_burst(void)
{
    mlg_gcra_limit_t   lim = limit("1r/m", 49);
    mlg_gcra_result_t  res;
    int64_t            tat = 0, now = 1700000000LL * SEC, saved;
    int                i, allowed = 0;

    for (i = 0; i < 200; i++) {
        if (one(&lim, &tat, now, &res)) {
            allowed++;
            if (i == 0) {
                is_int(res.remaining, 49, "first of 1r/m burst=49: 49 left");
                is_int(res.reset_us, MIN, "first: full again in 1 min");
            }
            if (i == 49) {
                is_int(res.remaining, 0, "50th: none left");
                is_int(res.reset_us, 50 * MIN, "50th: full in 50 min");
            }
        } else if (i == 50) {
            is_int(res.retry_after_us, MIN, "51st: retry after 1 min");
            is_int(res.remaining, 0, "51st: remaining 0");
            is_int(mlg_gcra_ceil_seconds(res.retry_after_us), 60,
                   "51st: Retry-After 60");
        }
    }
    is_int(allowed, 50, "1r/m burst=49 allows exactly 50 at once");

    saved = tat;
    ok(!one(&lim, &tat, now + MIN - 1, &res), "denied 1 us before refill");
    is_int(res.retry_after_us, 1, "retry after 1 us");
    is_int(mlg_gcra_ceil_seconds(res.retry_after_us), 1,
           "Retry-After rounds 1 us up to 1 s");
    is_int(tat, saved, "denied request leaves the state alone");
    ok(one(&lim, &tat, now + MIN, &res), "allowed exactly at refill");
    is_int(res.remaining, 0, "and nothing more");
    ok(!one(&lim, &tat, now + MIN, &res), "next one denied");

    /* burst=0 */
    lim = limit("2r/s", 0);
    tat = 0;
    ok(one(&lim, &tat, now, &res), "2r/s burst=0: first allowed");
    is_int(res.remaining, 0, "burst=0: remaining 0 after one");
    ok(!one(&lim, &tat, now + 499999, &res), "second within 500 ms denied");
    is_int(res.retry_after_us, 1, "retry after 1 us");
    ok(one(&lim, &tat, now + 500000, &res), "second at 500 ms allowed");
}

static void
test_sustained_and_refill(void)
{
    mlg_gcra_limit_t   lim = limit("10r/s", 4);
    mlg_gcra_result_t  res;
    int64_t            tat = 0, now = 1000 * SEC, t;
    int                i, allowed;

    /* sustained: one request per T forever, all allowed, remaining stays */
    for (i = 0, allowed = 0; i < 1000; i++) {
        allowed += one(&lim, &tat, now + i * 100000, &res);
    }
    is_int(allowed, 1000, "10r/s: a request every 100 ms always allowed");
    is_int(res.remaining, 4, "steady state keeps the full burst");

    /* twice the rate: half of the requests beyond the burst pass */
    tat = 0;
    for (i = 0, allowed = 0; i < 1000; i++) {
        allowed += one(&lim, &tat, now + i * 50000, &res);
    }
    /* 50 s at 10r/s = 500 plus the burst of 5 at once (4 + the first) */
    ok(allowed >= 500 && allowed <= 505,
       "20 req/s offered to 10r/s burst=4: %d allowed (500..505)", allowed);

    /* refill: exhaust, then wait 3 T: exactly 3 pass */
    tat = 0;
    t = now + 100 * SEC;
    for (i = 0, allowed = 0; i < 20; i++) {
        allowed += one(&lim, &tat, t, &res);
    }
    is_int(allowed, 5, "burst=4: 5 at once");
    t += 3 * 100000;
    for (i = 0, allowed = 0; i < 20; i++) {
        allowed += one(&lim, &tat, t, &res);
    }
    is_int(allowed, 3, "after 3 intervals: exactly 3 more");

    /* fully idle for long: the whole burst again, state older than now */
    t += 3600 * SEC;
    for (i = 0, allowed = 0; i < 20; i++) {
        allowed += one(&lim, &tat, t, &res);
    }
    is_int(allowed, 5, "after an idle hour: the burst again");

    /* retry-after rounding */
    is_int(mlg_gcra_ceil_seconds(0), 0, "ceil 0 s");
    is_int(mlg_gcra_ceil_seconds(-5), 0, "ceil negative = 0");
    is_int(mlg_gcra_ceil_seconds(1), 1, "ceil 1 us = 1 s");
    is_int(mlg_gcra_ceil_seconds(SEC), 1, "ceil 1 s = 1 s");
    is_int(mlg_gcra_ceil_seconds(SEC + 1), 2, "ceil 1 s + 1 us = 2 s");
    is_int(mlg_gcra_ceil_ms(1), 1, "ceil 1 us = 1 ms");
    is_int(mlg_gcra_ceil_ms(1000), 1, "ceil 1000 us = 1 ms");
    is_int(mlg_gcra_ceil_ms(1001), 2, "ceil 1001 us = 2 ms");
}

static void
test_several(void)
{
    mlg_gcra_limit_t   lims[2];
    mlg_gcra_result_t  res;
    int64_t            tats[2] = { 0, 0 }, saved[2], now = 5000 * SEC;
    int                i, allowed;

    lims[0] = limit("10r/s", 9);   /* 10 at once */
    lims[1] = limit("5r/m", 2);    /* 3 at once, then one per 12 s */

    ok(mlg_gcra_check_all(lims, tats, 2, now, &res), "first allowed");
    is_int(res.index, 1, "tightest limit reported (5r/m)");
    is_int(res.remaining, 2, "remaining from the tightest limit");
    is_int(res.reset_us, 12 * SEC, "reset from the tightest limit");
    ok(mlg_gcra_check_all(lims, tats, 2, now, &res), "second allowed");
    ok(mlg_gcra_check_all(lims, tats, 2, now, &res), "third allowed");
    is_int(res.remaining, 0, "none left on 5r/m");

    saved[0] = tats[0];
    saved[1] = tats[1];
    ok(!mlg_gcra_check_all(lims, tats, 2, now, &res), "fourth denied by 5r/m");
    is_int(res.index, 1, "denied by limit 1");
    is_int(res.retry_after_us, 12 * SEC, "retry after 12 s");
    ok(tats[0] == saved[0] && tats[1] == saved[1],
       "denial consumes no limit's budget (the allowing one included)");

    /* 10r/s has 7 left: none of the denied requests ate into it */
    for (i = 0, allowed = 0; i < 10; i++) {
        allowed += mlg_gcra_check_all(lims, tats, 1, now, &res);
    }
    is_int(allowed, 7, "the 10r/s limit alone still has its 7");

    /* both deny: the one that frees up last decides Retry-After */
    ok(!mlg_gcra_check_all(lims, tats, 2, now, &res), "both deny");
    is_int(res.index, 1, "the later one (5r/m) reported");
    is_int(res.retry_after_us, 12 * SEC, "its retry-after");
    ok(!mlg_gcra_check_all(lims, tats, 2, now + 100000, &res),
       "after 100 ms 10r/s allows but 5r/m still denies");
    is_int(res.retry_after_us, 12 * SEC - 100000, "retry after 11.9 s");
    is_int(mlg_gcra_ceil_seconds(res.retry_after_us), 12, "Retry-After 12");
    ok(mlg_gcra_check_all(lims, tats, 2, now + 12 * SEC, &res),
       "after 12 s allowed");
}

static int
is_hex(const char *s, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (!isxdigit((unsigned char) s[i]) || isupper((unsigned char) s[i])) {
            return 0;
        }
    }
    return 1;
}

static void
test_keys(void)
{
    char              k1[MLG_GCRA_KEY_MAX], k2[MLG_GCRA_KEY_MAX], id[48];
    char              longsfx[100];
    mlg_gcra_limit_t  lim = limit("20r/s", 5);
    int               n;
    unsigned char     addr[4] = { 127, 0, 0, 1 };
    const char       *evil = "x}:{y\r\nFLUSHALL\r\n";

    is_int(mlg_gcra_limit_id(id, sizeof(id), &lim), 8, "limit id length");
    is_str(id, "20r/s:b5", "limit id names rate and burst");

    n = mlg_ratelimit_key(k1, "addr", 4, addr, 4, id);
    is_int(n, 5 + 32 + 2 + 8, "key length");
    ok(strncmp(k1, "mlg:{", 5) == 0 && k1[37] == '}' && k1[38] == ':',
       "key shape mlg:{hash}:id (%s)", k1);
    ok(is_hex(k1 + 5, 32), "hash is lowercase hex");
    is_str(k1 + 39, "20r/s:b5", "suffix is the limit id");

    mlg_ratelimit_key(k2, "addr", 4, addr, 4, id);
    is_str(k2, k1, "same input, same key");
    mlg_ratelimit_key(k2, "principal", 9, addr, 4, id);
    ok(strcmp(k1, k2) != 0, "same bytes of another kind: another key");
    mlg_ratelimit_key(k2, "addr", 4, addr, 3, id);
    ok(strcmp(k1, k2) != 0, "prefix value: another key");
    /* kind/value boundary can't be shifted to forge another key */
    mlg_ratelimit_key(k1, "ab", 2, (const unsigned char *) "c", 1, "x");
    mlg_ratelimit_key(k2, "a", 1, (const unsigned char *) "bc", 2, "x");
    ok(strcmp(k1, k2) != 0, "kind/value boundary matters");

    n = mlg_ratelimit_key(k1, "principal", 9, (const unsigned char *) evil,
                          strlen(evil), "ban");
    is_int(n, 5 + 32 + 2 + 3, "hostile value: fixed-size key");
    ok(strpbrk(k1, "\r\n ") == NULL && strchr(k1 + 5, '{') == NULL,
       "hostile value: no CR/LF/space/extra braces in key");

    memset(longsfx, 'a', sizeof(longsfx) - 1);
    longsfx[sizeof(longsfx) - 1] = '\0';
    is_int(mlg_ratelimit_key(k1, "a", 1, addr, 4, longsfx), -1,
           "over-long suffix refused");
}

static void
test_script_embedded(void)
{
    char        path[4096];
    const char *text;
    size_t      len, got;
    FILE       *f;
    char       *buf, *slash;

    snprintf(path, sizeof(path), "%s", __FILE__);
    slash = strrchr(path, '/');
    snprintf(slash ? slash : path, sizeof(path) - (size_t) ((slash ? slash : path) - path),
             "%s/../../ngx_ml_guard_module/mlg_ratelimit.lua", slash ? "" : ".");
    f = fopen(path, "rb");
    if (f == NULL) {
        f = fopen("ngx_ml_guard_module/mlg_ratelimit.lua", "rb");
    }
    ok(f != NULL, "mlg_ratelimit.lua found");
    if (f == NULL) {
        return;
    }
    buf = malloc(1 << 20);
    got = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    text = mlg_ratelimit_script(&len);
    ok(len == got && memcmp(text, buf, len) == 0,
       "embedded script equals mlg_ratelimit.lua "
       "(else run scripts/gen-ratelimit-script)");
    free(buf);
}

int
main(void)
{
    test_parse();
    test_burst();
    test_sustained_and_refill();
    test_several();
    test_keys();
    test_script_embedded();
    return done_testing();
}
