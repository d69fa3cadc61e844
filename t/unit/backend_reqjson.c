/* Unit tests for inference_backend/reqjson.c: number parsing, request shapes. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reqjson.h"
#include "backend_util.h"
#include "tap.h"

static void
test_numbers(void)
{
    char         s[64];
    int          i, bad = 0, n;
    double       want, got;

    for (i = 0; i < 300000; i++) {
        switch (i % 4) {
        case 0:    /* short decimals, the fast path */
            n = snprintf(s, sizeof(s), "%s%llu.%0*llu", (rnd() & 1) ? "-" : "",
                         (unsigned long long) (rnd() % 100000), (int) (rnd() % 8 + 1),
                         (unsigned long long) (rnd() % 10000000));
            break;
        case 1:    /* shortest repr of random doubles (17 digits: strtod) */
            {
                uint64_t  bits = rnd();
                double    d;

                memcpy(&d, &bits, sizeof(d));
                if (d != d || d - d != 0) {
                    d = 1.5;
                }
                n = snprintf(s, sizeof(s), "%.17g", d);
            }
            break;
        case 2:    /* exponents */
            n = snprintf(s, sizeof(s), "%llue%d", (unsigned long long) (rnd() % 1000000),
                         (int) (rnd() % 60) - 30);
            break;
        default:   /* many digits */
            n = snprintf(s, sizeof(s), "0.%llu%llu", (unsigned long long) rnd(),
                         (unsigned long long) rnd());
        }
        want = strtod(s, NULL);
        got = mlg_parse_double(s, (size_t) n);
        if (memcmp(&want, &got, sizeof(double)) != 0) {
            if (bad++ < 5) {
                diag("%s: got %.17g want %.17g", s, got, want);
            }
        }
    }
    is_int(bad, 0, "mlg_parse_double == strtod on 300000 decimal strings");
}

static void
test_float32(void)
{
    char   s[80];
    int    i, bad = 0, n;
    float  want, got, a;

    for (i = 0; i < 400000; i++) {
        uint32_t  bits = (uint32_t) rnd();

        memcpy(&a, &bits, sizeof(a));
        if (a != a || a - a != 0) {
            a = 0.75f;
        }
        switch (i % 5) {
        case 0:     /* Python's repr of a float32 value cast to float64 */
            n = snprintf(s, sizeof(s), "%.17g", (double) a);
            break;
        case 1:     /* exactly a float32 rounding midpoint: ties to even */
            n = snprintf(s, sizeof(s), "%.40g",
                         ((double) a + (double) nextafterf(a, INFINITY)) / 2);
            break;
        case 2:     /* a hair either side of a midpoint */
            n = snprintf(s, sizeof(s), "%.17g",
                         nextafter(((double) a + (double) nextafterf(a, INFINITY)) / 2,
                                   (i & 8) ? INFINITY : -INFINITY));
            break;
        case 3:     /* 16..19 digit decimals with exponents */
            n = snprintf(s, sizeof(s), "%llu%llue%d",
                         (unsigned long long) (rnd() % 1000000000),
                         (unsigned long long) (rnd() % 10000000000ull),
                         (int) (rnd() % 60) - 40);
            break;
        default:    /* short decimals */
            n = snprintf(s, sizeof(s), "%.*g", (int) (rnd() % 9 + 1), (double) a);
        }
        want = (float) strtod(s, NULL);
        got = mlg_parse_float32(s, (size_t) n);
        if (memcmp(&want, &got, sizeof(float)) != 0) {
            if (bad++ < 5) {
                diag("%s: got %.9g want %.9g", s, (double) got, (double) want);
            }
        }
    }
    is_int(bad, 0, "mlg_parse_float32 == (float) strtod on 400000 numbers, "
           "midpoints included");
}

static int
parse(int (*fn)(mlg_request_t *, const char *, size_t), mlg_request_t *rq,
    const char *body)
{
    return fn(rq, body, strlen(body));
}

static void
test_requests(void)
{
    mlg_request_t  rq;

    memset(&rq, 0, sizeof(rq));
    ok(parse(mlg_parse_simple, &rq, "{\"input\": [1, 2.5, -3e2]}") == 0, "simple row");
    ok(rq.rows == 1 && rq.cols == 3 && rq.x[1] == 2.5f && rq.x[2] == -300.0f,
       "one row of three values");
    ok(parse(mlg_parse_simple, &rq,
             " {\"meta\": {\"a\": [1, {\"b\": null}], \"s\": \"x\\\"y\\u00e9\"},\n"
             "  \"input\": [[1,2],[3,4],[5,6]] } ") == 0, "batch with skipped members");
    ok(rq.rows == 3 && rq.cols == 2 && rq.x[5] == 6.0f, "3x2 batch");
    ok(parse(mlg_parse_simple, &rq, "{\"input\":[0.1]}") == 0 && rq.x[0] == (float) 0.1,
       "value cast from double to float32");
    ok(parse(mlg_parse_simple, &rq, "{\"input\":[1e-50]}") == 0 && rq.x[0] == 0.0f,
       "underflow to 0 like numpy");
    ok(parse(mlg_parse_simple, &rq, "{\"input\":[3.5e38]}") != 0
       && strstr(rq.err, "too large for float32") != NULL, "float32 overflow: %s", rq.err);
    ok(parse(mlg_parse_simple, &rq, "{\"input\":[1,2],}") != 0
       && strstr(rq.err, "malformed JSON at offset 15") != NULL, "offset named: %s", rq.err);
    ok(parse(mlg_parse_simple, &rq, "{\"input\":[1,2]} {}") != 0
       && strstr(rq.err, "trailing") != NULL, "trailing value: %s", rq.err);
    ok(parse(mlg_parse_simple, &rq, "{\"input\":[-]}") != 0, "lone minus");
    ok(parse(mlg_parse_simple, &rq, "{\"input\":[1.0e]}") != 0, "empty exponent");
    ok(parse(mlg_parse_simple, &rq, "{\"input\":[+1]}") != 0, "plus sign");
    ok(parse(mlg_parse_simple, &rq, "{\"input\":[0x10]}") != 0, "hex");
    ok(parse(mlg_parse_simple, &rq, "{\"input\":[1,2] \"x\":1}") != 0, "missing comma");
    ok(parse(mlg_parse_simple, &rq, "{\"a\":tru,\"input\":[1]}") != 0, "bad literal");
    ok(parse(mlg_parse_simple, &rq, "{\"a\":\"\\u12g4\",\"input\":[1]}") != 0, "bad \\u");

    ok(parse(mlg_parse_v1, &rq, "{\"instances\":[[1,2,3]]}") == 0 && rq.rows == 1,
       "V1 instances");
    ok(parse(mlg_parse_v1, &rq, "{\"inputs\":[[1,2,3],[4,5,6]]}") == 0 && rq.rows == 2,
       "V1 accepts \"inputs\" too");
    ok(parse(mlg_parse_v2, &rq, "{\"inputs\":[{\"name\":\"a\",\"shape\":[2,2],"
             "\"datatype\":\"FP64\",\"data\":[[1,2],[3,4]],\"parameters\":{}}],"
             "\"outputs\":[{\"name\":\"predict_proba\"}],\"id\":\"q\"}") == 0,
       "V2 nested data");
    ok(rq.rows == 2 && rq.cols == 2 && rq.want_proba && !rq.want_label && rq.has_id
       && strcmp(rq.id, "q") == 0, "V2 fields: shape, outputs, id");
    ok(parse(mlg_parse_v2, &rq, "{\"inputs\":[{\"shape\":[1,2],\"data\":[1,2]}]}") == 0
       && rq.want_label && !rq.want_proba, "V2 default output is predict");
    ok(parse(mlg_parse_v2, &rq, "{\"inputs\":[{\"shape\":[1,2.5],\"data\":[1,2]}]}") != 0,
       "V2 fractional shape refused");
    ok(parse(mlg_parse_v2, &rq, "{\"inputs\":[{\"shape\":[0,2],\"data\":[]}]}") != 0,
       "V2 empty tensor refused");
    free(rq.x);
}

/* A V2 request whose "id" member is the JSON string literal lit. */
static int
parse_id(mlg_request_t *rq, const char *lit)
{
    char    body[4096];

    snprintf(body, sizeof(body), "{\"id\":%s,\"inputs\":[{\"shape\":[1,1],"
             "\"data\":[1]}]}", lit);
    return parse(mlg_parse_v2, rq, body);
}

/* 1 when the n bytes at s are well-formed UTF-8 (RFC 3629). */
static int
utf8_ok(const unsigned char *s, size_t n)
{
    size_t    i = 0, k, len;
    uint32_t  cp;

    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        len = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : s[i] >= 0xc0 ? 2 : 0;
        if (len == 0 || i + len > n) {
            return 0;
        }
        cp = s[i] & (0x7f >> len);
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800)
            || (len == 4 && cp < 0x10000) || cp > 0x10ffff
            || (cp >= 0xd800 && cp <= 0xdfff))
        {
            return 0;
        }
        i += len;
    }
    return 1;
}

/* How many of the ids are accepted, or refused without naming "id" and must. */
static int
refused_ids(mlg_request_t *rq, const char *const *lits, size_t n, const char *must)
{
    size_t  i;
    int     bad = 0;

    for (i = 0; i < n; i++) {
        if (parse_id(rq, lits[i]) == 0 || strstr(rq->err, "\"id\"") == NULL
            || strstr(rq->err, must) == NULL)
        {
            diag("%s case %zu: accepted or wrong error: %s", must, i, rq->err);
            bad++;
        }
    }
    return bad;
}

static void
test_id(void)
{
    mlg_request_t  rq;
    char           lit[2048], want[256];
    size_t         i, n;
    int            bad;
    static const char  *invalid[] = {
        "\"\xff\"", "\"\xc3\"", "\"a\xc3(\"", "\"\xc0\xaf\"", "\"\xe0\x80\xaf\"",
        "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xf8\x88\x80\x80\x80\"",
        "\"\x80\"", "\"\xe2\x82\"",
    };
    static const char  *surrogates[] = {
        "\"\\ud83d\"", "\"\\ude00x\"", "\"\\ud83d\\u0041\"", "\"\\ud83dx\"",
        "\"\\uDBFF\\uDBFF\"",
    };

    memset(&rq, 0, sizeof(rq));

    ok(parse_id(&rq, "\"a\\\"b\\\\c\\/d\\n\\t\\u00e9\\u20AC\"") == 0
       && strcmp(rq.id, "a\"b\\c/d\n\t\xc3\xa9\xe2\x82\xac") == 0,
       "escapes in \"id\" are decoded (\\\" \\\\ \\/ \\n \\t \\u00e9 \\u20AC)");
    ok(parse_id(&rq, "\"\\ud83d\\ude00\\uD83D\\uDE00\"") == 0
       && strcmp(rq.id, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80") == 0,
       "a surrogate pair decodes to one 4-byte UTF-8 sequence");
    ok(parse_id(&rq, "\"x\\u0000y\"") == 0 && rq.id_len == 3
       && memcmp(rq.id, "x\0y", 3) == 0, "\\u0000 decodes to a NUL byte counted in id_len");
    ok(parse_id(&rq, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"") == 0
       && strcmp(rq.id, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") == 0,
       "valid raw UTF-8 kept as is");

    bad = refused_ids(&rq, invalid, sizeof(invalid) / sizeof(invalid[0]), "UTF-8");
    is_int(bad, 0, "invalid UTF-8 in \"id\" refused (lone continuation, truncated, "
           "overlong, encoded surrogate, > U+10FFFF, 5-byte form)");
    ok(parse_id(&rq, "\"\xff\"") != 0 && strchr(rq.err, '\xff') == NULL,
       "the error does not copy the bad byte: %s", rq.err);

    bad = refused_ids(&rq, surrogates, sizeof(surrogates) / sizeof(surrogates[0]),
                      "surrogate");
    is_int(bad, 0, "unpaired UTF-16 surrogate escapes in \"id\" refused");

    /* invalid UTF-8 past the cut point is still refused */
    n = (size_t) snprintf(lit, sizeof(lit), "\"%0200d\xff\"", 0);
    ok(n > 200 && parse_id(&rq, lit) != 0 && strstr(rq.err, "UTF-8") != NULL,
       "invalid UTF-8 after the first 127 bytes refused too");

    /* long ids are cut on a code-point boundary, to at most 127 bytes */
    bad = 0;
    for (n = 120; n <= 128; n++) {
        static const char  *tails[] = { "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80",
                                        "\\u00e9", "\\u20ac", "\\ud83d\\ude00" };
        size_t               t, len;

        for (t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
            size_t  k, exp, tl = t % 3 + 2;

            memset(want, 'a', n);
            len = (size_t) snprintf(lit, sizeof(lit), "\"%.*s", (int) n, want);
            for (k = 0; k < 8; k++) {
                len += (size_t) snprintf(lit + len, sizeof(lit) - len, "%s", tails[t]);
            }
            snprintf(lit + len, sizeof(lit) - len, "\"");
            if (parse_id(&rq, lit) != 0) {
                diag("n=%zu tail %zu: refused: %s", n, t, rq.err);
                bad++;
                continue;
            }
            len = strlen(rq.id);
            /* whole code points only: the longest prefix of <= 127 bytes */
            exp = n >= 127 ? 127 : n + (127 - n) / tl * tl;
            if (exp > n + 8 * tl) {
                exp = n + 8 * tl;
            }
            if (len != exp || !utf8_ok((const unsigned char *) rq.id, len)
                || memcmp(rq.id, want, n < len ? n : len) != 0)
            {
                diag("n=%zu tail %zu: kept %zu bytes, want %zu", n, t, len, exp);
                bad++;
            }
        }
    }
    is_int(bad, 0, "a long \"id\" is cut to <= 127 bytes on a code-point boundary");

    /* escapes count as the bytes they decode to */
    memset(lit, 0, sizeof(lit));
    lit[0] = '"';
    for (i = 0; i < 200; i++) {
        memcpy(lit + 1 + 2 * i, "\\\"", 2);
    }
    lit[1 + 2 * 200] = '"';
    ok(parse_id(&rq, lit) == 0 && strlen(rq.id) == 127
       && strspn(rq.id, "\"") == 127, "200 escaped quotes: 127 quotes kept");
    free(rq.x);
}

int
main(void)
{
    test_numbers();
    test_float32();
    test_requests();
    test_id();
    return done_testing();
}
