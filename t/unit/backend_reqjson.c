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

int
main(void)
{
    test_numbers();
    test_float32();
    test_requests();
    return done_testing();
}
