/*
 * GCRA arithmetic for ml-guard's rate limits; see mlg_gcra.h.  Keep in step
 * with mlg_ratelimit.lua (t/unit/test_gcra.c and t/ratelimit_script.t run
 * the same cases against both).
 */
#include "mlg_gcra.h"

#include <stdio.h>
#include <string.h>
#include <openssl/evp.h>

#include "mlg_ratelimit_script.h"

const char *
mlg_gcra_parse_uint(const char *s, size_t len, uint64_t *out)
{
    uint64_t  v = 0;
    size_t    i;

    if (len == 0) {
        return "empty number";
    }
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return "not a decimal number";
        }
        if (v > 1000000000ULL) {
            return "number too large";
        }
        v = v * 10 + (uint64_t) (s[i] - '0');
    }
    if (v > 1000000000ULL) {
        return "number too large";
    }
    *out = v;
    return NULL;
}

const char *
mlg_gcra_parse_rate(const char *s, size_t len, mlg_gcra_limit_t *lim)
{
    const char  *err;
    uint64_t     n;
    int64_t      period;
    size_t       digits;

    if (len < 4 || s[len - 3] != 'r' || s[len - 2] != '/') {
        return "rate must look like Nr/s, Nr/m, Nr/h or Nr/d";
    }
    digits = len - 3;
    err = mlg_gcra_parse_uint(s, digits, &n);
    if (err != NULL) {
        return "rate must look like Nr/s, Nr/m, Nr/h or Nr/d";
    }
    switch (s[len - 1]) {
    case 's': period = 1; break;
    case 'm': period = 60; break;
    case 'h': period = 3600; break;
    case 'd': period = 86400; break;
    default:
        return "rate unit must be s, m, h or d";
    }
    if (n == 0) {
        return "rate must be at least 1 request per unit";
    }
    period *= MLG_GCRA_USEC;
    if ((uint64_t) period < n) {
        return "rate too high (more than one request per microsecond)";
    }
    memset(lim, 0, sizeof(*lim));
    lim->count = n;
    lim->unit = s[len - 1];
    /* round up: the sustained rate never exceeds N per unit */
    lim->interval_us = (int64_t) (((uint64_t) period + n - 1) / n);
    return NULL;
}

const char *
mlg_gcra_set_burst(mlg_gcra_limit_t *lim, uint64_t burst)
{
    if (lim->interval_us <= 0) {
        return "rate not set";
    }
    if (burst > (uint64_t) (MLG_GCRA_MAX_SPAN_US / lim->interval_us)) {
        return "burst too large for this rate";
    }
    lim->burst = burst;
    lim->tolerance_us = (int64_t) burst * lim->interval_us;
    return NULL;
}

void
mlg_gcra_check(const mlg_gcra_limit_t *lim, int64_t tat, int64_t now,
    mlg_gcra_result_t *res, int64_t *new_tat)
{
    int64_t  T = lim->interval_us, tau = lim->tolerance_us;

    if (tat < now) {
        tat = now;
    }
    res->index = 0;
    if (tat - now > tau) {
        res->allowed = 0;
        res->remaining = 0;
        res->reset_us = tat - now;
        res->retry_after_us = tat - tau - now;
        return;
    }
    *new_tat = tat + T;
    res->allowed = 1;
    res->remaining = (now + tau - *new_tat + T) / T;
    res->reset_us = *new_tat - now;
    res->retry_after_us = 0;
}

int
mlg_gcra_check_all(const mlg_gcra_limit_t *lims, int64_t *tats, int n,
    int64_t now, mlg_gcra_result_t *res)
{
    int                i, first = 1;
    int64_t            new_tats[MLG_GCRA_MAX_LIMITS];
    mlg_gcra_result_t  one;

    memset(res, 0, sizeof(*res));
    res->allowed = 1;
    res->index = -1;
    if (n > MLG_GCRA_MAX_LIMITS) {
        n = MLG_GCRA_MAX_LIMITS;
    }
    for (i = 0; i < n; i++) {
        new_tats[i] = tats[i];
        mlg_gcra_check(&lims[i], tats[i], now, &one, &new_tats[i]);
        if (!one.allowed) {
            /* report the denying limit that frees up last */
            if (res->allowed || one.retry_after_us > res->retry_after_us) {
                res->index = i;
                res->remaining = 0;
                res->reset_us = one.reset_us;
                res->retry_after_us = one.retry_after_us;
            }
            res->allowed = 0;
            continue;
        }
        /* allowed so far: report the tightest limit */
        if (res->allowed && (first || one.remaining < res->remaining)) {
            res->index = i;
            res->remaining = one.remaining;
            res->reset_us = one.reset_us;
        }
        first = 0;
    }
    if (res->allowed) {
        for (i = 0; i < n; i++) {
            tats[i] = new_tats[i];
        }
    }
    return res->allowed;
}

int64_t
mlg_gcra_ceil_seconds(int64_t us)
{
    if (us <= 0) {
        return 0;
    }
    return (us + MLG_GCRA_USEC - 1) / MLG_GCRA_USEC;
}

int64_t
mlg_gcra_ceil_ms(int64_t us)
{
    if (us <= 0) {
        return 0;
    }
    return (us + 999) / 1000;
}

int
mlg_ratelimit_key(char *out, const char *kind, size_t kind_len,
    const unsigned char *value, size_t value_len, const char *suffix)
{
    static const char  hex[] = "0123456789abcdef";
    static EVP_MD     *sha256;
    static EVP_MD_CTX *ctx;
    unsigned char      md[EVP_MAX_MD_SIZE];
    unsigned int       md_len = 0;
    size_t             slen = strlen(suffix), i;
    int                ok;
    char              *p;

    if (slen > MLG_GCRA_KEY_MAX - (sizeof("mlg:{}:") - 1)
               - MLG_GCRA_HASH_HEX_LEN - 1)
    {
        return -1;
    }
    /* fetched once and reused: an implicit fetch per key costs more than
     * the hash itself (one thread per process, as in nginx) */
    if (sha256 == NULL) {
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    }
    if (ctx == NULL) {
        ctx = EVP_MD_CTX_new();
    }
    if (sha256 == NULL || ctx == NULL) {
        return -1;
    }
    ok = EVP_DigestInit_ex2(ctx, sha256, NULL)
         && EVP_DigestUpdate(ctx, kind, kind_len)
         && EVP_DigestUpdate(ctx, "\n", 1)
         && EVP_DigestUpdate(ctx, value, value_len)
         && EVP_DigestFinal_ex(ctx, md, &md_len);
    if (!ok || md_len < MLG_GCRA_HASH_HEX_LEN / 2) {
        return -1;
    }
    p = out;
    memcpy(p, "mlg:{", 5);
    p += 5;
    for (i = 0; i < MLG_GCRA_HASH_HEX_LEN / 2; i++) {
        *p++ = hex[md[i] >> 4];
        *p++ = hex[md[i] & 0xf];
    }
    *p++ = '}';
    *p++ = ':';
    memcpy(p, suffix, slen);
    p += slen;
    *p = '\0';
    return (int) (p - out);
}

int
mlg_gcra_limit_id(char *out, size_t size, const mlg_gcra_limit_t *lim)
{
    int  n;

    n = snprintf(out, size, "%llur/%c:b%llu", (unsigned long long) lim->count,
                 lim->unit, (unsigned long long) lim->burst);
    return (n < 0 || (size_t) n >= size) ? -1 : n;
}

const char *
mlg_ratelimit_script(size_t *len)
{
    *len = sizeof(mlg_ratelimit_script_text) - 1;
    return mlg_ratelimit_script_text;
}
