#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
mlg_buf_reserve(mlg_buf_t *b, size_t extra)
{
    size_t  cap;
    char   *p;

    if (b->oom) {
        return -1;
    }
    if (b->len + extra + 1 <= b->cap) {
        return 0;
    }
    cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        cap *= 2;
    }
    p = realloc(b->data, cap);
    if (p == NULL) {
        b->oom = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void
mlg_buf_add(mlg_buf_t *b, const void *p, size_t n)
{
    if (mlg_buf_reserve(b, n) != 0) {
        return;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void
mlg_buf_adds(mlg_buf_t *b, const char *s)
{
    mlg_buf_add(b, s, strlen(s));
}

void
mlg_buf_addc(mlg_buf_t *b, char c)
{
    if (mlg_buf_reserve(b, 1) != 0) {
        return;
    }
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}

void
mlg_buf_printf(mlg_buf_t *b, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || mlg_buf_reserve(b, (size_t) n) != 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t) n;
}

void
mlg_buf_free(mlg_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

void
mlg_buf_reset(mlg_buf_t *b)
{
    b->len = 0;
    b->oom = 0;
    if (b->data != NULL) {
        b->data[0] = '\0';
    }
}

/*
 * Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF), or 0.
 */
size_t
mlg_utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char  lo = 0x80, hi = 0xbf;
    size_t         n, i;

    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] >= 0xc2 && p[0] <= 0xdf) {
        n = 2;
    } else if (p[0] >= 0xe0 && p[0] <= 0xef) {
        n = 3;
        lo = p[0] == 0xe0 ? 0xa0 : 0x80;
        hi = p[0] == 0xed ? 0x9f : 0xbf;
    } else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
        n = 4;
        lo = p[0] == 0xf0 ? 0x90 : 0x80;
        hi = p[0] == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if ((size_t) (end - p) < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (i = 2; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return n;
}

void
mlg_json_str(mlg_buf_t *b, const char *s, size_t n)
{
    static const char     hex[] = "0123456789abcdef";
    const unsigned char  *u = (const unsigned char *) s;
    size_t                i, k;
    unsigned char         c;

    mlg_buf_addc(b, '"');
    for (i = 0; i < n; i++) {
        c = u[i];
        if (c == '"' || c == '\\') {
            mlg_buf_addc(b, '\\');
            mlg_buf_addc(b, (char) c);
        } else if (c < 0x20) {
            char  esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

            mlg_buf_add(b, esc, sizeof(esc));
        } else if (c < 0x80) {
            mlg_buf_addc(b, (char) c);
        } else if ((k = mlg_utf8_len(u + i, u + n)) != 0) {
            mlg_buf_add(b, u + i, k);
            i += k - 1;
        } else {
            /* not UTF-8 (or a character cut short): U+FFFD, byte by byte */
            mlg_buf_adds(b, "\\ufffd");
        }
    }
    mlg_buf_addc(b, '"');
}

void
mlg_json_u64(mlg_buf_t *b, uint64_t v)
{
    char    tmp[24];
    size_t  i = sizeof(tmp);

    do {
        tmp[--i] = (char) ('0' + v % 10);
        v /= 10;
    } while (v != 0);
    mlg_buf_add(b, tmp + i, sizeof(tmp) - i);
}

static const double  pow10_tab[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* round(m * 10^k / 2^shift), ties to even; exact in 128 bits here */
static uint64_t
scaled_digits(uint64_t m, int k, int shift)
{
    unsigned __int128  p10 = 1, prod, q, rem, half;
    int                i;

    for (i = 0; i < k; i++) {
        p10 *= 10;
    }
    prod = (unsigned __int128) m * p10;
    q = prod >> shift;
    rem = prod - (q << shift);
    half = (unsigned __int128) 1 << (shift - 1);
    if (rem > half || (rem == half && (q & 1))) {
        q++;
    }
    return (uint64_t) q;
}

/*
 * Probabilities are the bulk of batch responses: for 1e-5 <= d < 1 the digits
 * come from exact integer arithmetic instead of printf.  15 significant
 * digits when they read back as d (checked with an exact division), else 17,
 * which always do.  Same digits as "%.15g" / "%.17g".
 */
static int
fraction_digits(double d, char *out)
{
    uint64_t  m, digits, limit;
    double    fr, back;
    int       e2, shift, p, nd, k, i, len = 0;
    char      tmp[24];

    fr = frexp(d, &e2);                    /* d = fr * 2^e2, 0.5 <= fr < 1 */
    m = (uint64_t) ldexp(fr, 53);          /* d = m * 2^(e2 - 53) exactly */
    shift = 53 - e2;                       /* 54..70 for this range */
    p = (int) floor(log10(d));             /* d = 0.d1d2... * 10^(p + 1) */

    for (nd = 15; ; nd = 17) {
        k = nd - 1 - p;                    /* digits = round(d * 10^k) */
        digits = scaled_digits(m, k, shift);
        limit = (uint64_t) pow10_tab[nd];
        if (digits >= limit) {             /* log10 rounding or a carry */
            if (nd == 15) {
                continue;
            }
            return -1;
        }
        if (digits < limit / 10) {
            return -1;
        }
        if (nd == 17) {
            break;
        }
        back = (double) digits / pow10_tab[k];   /* exact: digits < 2^53 */
        if (back == d) {
            break;
        }
    }
    out[len++] = '0';
    out[len++] = '.';
    for (i = 0; i < -p - 1; i++) {
        out[len++] = '0';
    }
    for (i = nd - 1; i >= 0; i--) {
        tmp[i] = (char) ('0' + digits % 10);
        digits /= 10;
    }
    while (nd > 1 && tmp[nd - 1] == '0') {
        nd--;
    }
    memcpy(out + len, tmp, (size_t) nd);
    return len + nd;
}

void
mlg_json_double(mlg_buf_t *b, double d)
{
    char  tmp[40];
    int   n, prec;

    if (!isfinite(d)) {
        mlg_buf_adds(b, "null");
        return;
    }
    if (d == 0.0) {
        mlg_buf_adds(b, signbit(d) ? "-0.0" : "0.0");
        return;
    }
    if (d == 1.0) {
        mlg_buf_adds(b, "1.0");
        return;
    }
    if (d >= 1e-5 && d < 1.0) {
        n = fraction_digits(d, tmp);
        if (n > 0) {
            mlg_buf_add(b, tmp, (size_t) n);
            return;
        }
    }
    /* the shortest of %.15g..%.17g that reads back exactly */
    for (prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (prec == 17 || strtod(tmp, NULL) == d) {
            break;
        }
    }
    mlg_buf_add(b, tmp, (size_t) n);
}
