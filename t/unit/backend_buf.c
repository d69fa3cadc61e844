/* Unit tests for inference_backend/buf.c: JSON number and string output. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "backend_util.h"
#include "tap.h"

static const char *
fmt(double d)
{
    static mlg_buf_t  b;

    mlg_buf_reset(&b);
    mlg_json_double(&b, d);
    return b.data;
}

int
main(void)
{
    int          i, bad = 0, longer = 0;
    double       d, back;
    const char  *s;
    char         ref[40];
    mlg_buf_t    b = { 0 };

    for (i = 0; i < 500000; i++) {
        switch (i % 3) {
        case 0:
            d = (double) (rnd() >> 11) * 0x1p-53;            /* [0, 1) */
            break;
        case 1:
            d = (double) (rnd() % 100 + 1) / 100.0;         /* 0.01 .. 1 */
            break;
        default:
            d = (double) (rnd() % 1000) / 7.0 / 1000.0 * pow(10, -(int) (rnd() % 7));
        }
        s = fmt(d);
        back = strtod(s, NULL);
        if (back != d) {
            if (bad++ < 5) {
                diag("%.17g printed as %s", d, s);
            }
        }
        snprintf(ref, sizeof(ref), "%.15g", d);
        if (strtod(ref, NULL) == d && strlen(s) > strlen(ref) + 2) {
            longer++;
        }
    }
    is_int(bad, 0, "500000 doubles in [0, 1] print as text that reads back exactly");
    is_int(longer, 0, "15 digits used whenever they suffice");
    is_str(fmt(0.5), "0.5", "0.5");
    is_str(fmt(0.97), "0.97", "0.97 (shortest, not 0.96999999999999997)");
    is_str(fmt(0.0), "0.0", "zero");
    is_str(fmt(1.0), "1.0", "one");
    is_str(fmt(1.0 / 3), "0.33333333333333331", "1/3 needs 17 digits");
    is_str(fmt(2e-6), "2e-06", "small value via printf");
    is_str(fmt(123.25), "123.25", "regression value");
    is_str(fmt(NAN), "null", "NaN -> null");

    mlg_json_str(&b, "a\"b\\c\n\x01", 7);
    is_str(b.data, "\"a\\\"b\\\\c\\u000a\\u0001\"", "string escaping");
    mlg_buf_reset(&b);
    mlg_json_str(&b, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14);
    is_str(b.data, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"", "UTF-8 kept as is");
    mlg_buf_reset(&b);
    mlg_json_str(&b, "a\xff\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82", 13);
    is_str(b.data, "\"a\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd"
           "\\ufffd\\ufffd\\ufffd\"",
           "bytes that are not UTF-8 (overlong, surrogate, > U+10FFFF, cut short): \\ufffd each");
    mlg_buf_reset(&b);
    mlg_json_u64(&b, 18446744073709551615ull);
    is_str(b.data, "18446744073709551615", "u64");
    mlg_buf_free(&b);
    return done_testing();
}
