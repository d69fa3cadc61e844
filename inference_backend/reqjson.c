#include "reqjson.h"
#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char     *p;
    const char     *start;
    const char     *end;
    mlg_request_t  *rq;
} scan_t;

static int
fail(scan_t *s, const char *fmt, ...)
{
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(s->rq->err, MLG_REQ_ERR_LEN, fmt, ap);
    va_end(ap);
    return -1;
}

static int
malformed(scan_t *s, const char *what)
{
    if (s->p >= s->end) {
        return fail(s, "malformed JSON: unexpected end of input (%s)", what);
    }
    return fail(s, "malformed JSON at offset %zu: %s",
                (size_t) (s->p - s->start), what);
}

static void
ws(scan_t *s)
{
    while (s->p < s->end
           && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
    {
        s->p++;
    }
}

static int
peek(scan_t *s)
{
    ws(s);
    return s->p < s->end ? (unsigned char) *s->p : -1;
}

static const double  pow10_exact[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

/* A decimal number as mantissa * 10^exp10, when it has <= 19 digits. */
typedef struct {
    uint64_t  mant;
    int       digits;      /* significant digits in mant */
    int       exp10;
    int       neg;
    int       ok;          /* 0: too many digits or not a plain number */
} decimal_t;

static void
scan_decimal(const char *p, const char *end, decimal_t *dc)
{
    int  e = 0, eneg = 0, frac = 0;

    memset(dc, 0, sizeof(*dc));
    if (p < end && *p == '-') {
        dc->neg = 1;
        p++;
    }
    for (; p < end && ((*p >= '0' && *p <= '9') || (*p == '.' && !frac)); p++) {
        if (*p == '.') {
            frac = 1;
            continue;
        }
        if (dc->digits >= 19) {
            return;
        }
        dc->mant = dc->mant * 10 + (uint64_t) (*p - '0');
        dc->digits += dc->mant != 0;
        dc->exp10 -= frac;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p++ == '-';
        }
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (e > 10000) {
                return;
            }
            e = e * 10 + (*p - '0');
        }
        dc->exp10 += eneg ? -e : e;
    }
    dc->ok = p == end;
}

/* strtod of exactly n bytes */
static double
strtod_n(const char *s, size_t n)
{
    char    tmp[64], *copy = tmp;
    double  d;

    if (n >= sizeof(tmp) && (copy = malloc(n + 1)) == NULL) {
        return NAN;
    }
    memcpy(copy, s, n);
    copy[n] = '\0';
    d = strtod(copy, NULL);
    if (copy != tmp) {
        free(copy);
    }
    return d;
}

/*
 * Clinger's fast path: with at most 15 significant digits the mantissa and
 * 10^k (k <= 22) are exact doubles, so one multiplication or division gives
 * the correctly rounded result.  Returns 0 when it does not apply.
 */
static int
clinger(const decimal_t *dc, double *out)
{
    double  d;

    if (!dc->ok || dc->digits > 15 || dc->exp10 < -22 || dc->exp10 > 22) {
        return 0;
    }
    d = (double) dc->mant;
    d = dc->exp10 < 0 ? d / pow10_exact[-dc->exp10] : d * pow10_exact[dc->exp10];
    *out = dc->neg ? -d : d;
    return 1;
}

double
mlg_parse_double(const char *s, size_t n)
{
    decimal_t  dc;
    double     d;

    scan_decimal(s, s + n, &dc);
    return clinger(&dc, &d) ? d : strtod_n(s, n);
}

/*
 * float32 of a JSON number, exactly (float) strtod(s), which is what numpy
 * does with a float64 array cast to float32.  Up to 19 significant digits
 * and 10^27 the value is computed in long double (64-bit mantissa, one
 * rounding); that result is kept when it lies clearly away from every
 * float32 rounding midpoint, where double rounding could change the answer.
 * Everything else (and near-midpoint values) goes through strtod.
 */
static const long double  pow10_ld[] = {
    1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L, 1e6L, 1e7L, 1e8L, 1e9L, 1e10L, 1e11L,
    1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L, 1e21L,
    1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L
};

float
mlg_parse_float32(const char *s, size_t n)
{
    decimal_t     dc;
    double        d;
    long double   v, lo_mid, hi_mid, tol;
    float         f;

    scan_decimal(s, s + n, &dc);
    if (clinger(&dc, &d)) {
        return (float) d;
    }
    if (!dc.ok || dc.exp10 < -27 || dc.exp10 > 27) {
        return (float) strtod_n(s, n);
    }
    v = (long double) dc.mant;
    v = dc.exp10 < 0 ? v / pow10_ld[-dc.exp10] : v * pow10_ld[dc.exp10];
    f = (float) v;
    if (!(f >= 1.17549435e-38f && f < 3.40282347e38f)) {
        return (float) strtod_n(s, n);        /* subnormal, zero or overflow */
    }
    lo_mid = ((long double) f + (long double) nextafterf(f, 0.0f)) / 2;
    hi_mid = ((long double) f + (long double) nextafterf(f, INFINITY)) / 2;
    tol = v * 0x1p-50L;
    if (v - lo_mid > tol && hi_mid - v > tol) {
        return dc.neg ? -f : f;
    }
    return (float) strtod_n(s, n);
}

/* Validates JSON number syntax at s->p; returns its length or 0. */
static size_t
number_len(const char *p, const char *end)
{
    const char  *q = p;

    if (q < end && *q == '-') {
        q++;
    }
    if (q < end && *q == '0') {
        q++;
    } else if (q < end && *q >= '1' && *q <= '9') {
        while (q < end && *q >= '0' && *q <= '9') {
            q++;
        }
    } else {
        return 0;
    }
    if (q < end && *q == '.') {
        q++;
        if (!(q < end && *q >= '0' && *q <= '9')) {
            return 0;
        }
        while (q < end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < end && (*q == '+' || *q == '-')) {
            q++;
        }
        if (!(q < end && *q >= '0' && *q <= '9')) {
            return 0;
        }
        while (q < end && *q >= '0' && *q <= '9') {
            q++;
        }
    }
    return (size_t) (q - p);
}

static int
skip_string(scan_t *s)
{
    unsigned char  c;
    int            i;

    if (s->p >= s->end || *s->p != '"') {
        return malformed(s, "expected a string");
    }
    s->p++;
    while (s->p < s->end) {
        c = (unsigned char) *s->p++;
        if (c == '"') {
            return 0;
        }
        if (c < 0x20) {
            s->p--;
            return malformed(s, "control character in string");
        }
        if (c == '\\') {
            if (s->p >= s->end) {
                break;
            }
            c = (unsigned char) *s->p++;
            if (c == 'u') {
                for (i = 0; i < 4; i++) {
                    if (s->p >= s->end || !strchr("0123456789abcdefABCDEF", *s->p)
                        || *s->p == '\0')
                    {
                        return malformed(s, "bad \\u escape");
                    }
                    s->p++;
                }
            } else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
                s->p--;
                return malformed(s, "bad escape in string");
            }
        }
    }
    return malformed(s, "unterminated string");
}

/*
 * Reads a string into out (escapes other than \" \\ \/ kept raw: key
 * comparisons only need plain ASCII names).  Longer strings are truncated.
 */
static int
read_string(scan_t *s, char *out, size_t cap)
{
    const char  *from = s->p + 1;
    size_t       n = 0;

    if (skip_string(s) != 0) {
        return -1;
    }
    while (from < s->p - 1) {
        if (*from == '\\' && (from[1] == '"' || from[1] == '\\' || from[1] == '/')) {
            from++;
        }
        if (n + 1 < cap) {
            out[n++] = *from;
        }
        from++;
    }
    out[n] = '\0';
    return 0;
}

static unsigned
hex4(const char *p)
{
    unsigned  v = 0;
    int       i;

    for (i = 0; i < 4; i++) {
        v = v << 4 | (unsigned) (p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
    }
    return v;
}

/*
 * Reads the JSON string at s->p as text: escapes decoded (\uXXXX surrogate
 * pairs to one code point), the whole string checked to be UTF-8.  At most
 * cap - 1 bytes are kept, cut before the first code point that does not fit
 * whole; out is NUL-terminated and *len is the bytes kept (U+0000 may be
 * among them).  what names the member in errors, which never quote the text.
 */
static int
read_text(scan_t *s, const char *what, char *out, size_t cap, size_t *len)
{
    const unsigned char  *p, *end;
    unsigned char         enc[4];
    unsigned              cp, lo;
    size_t                n = 0, k;
    int                   full = 0;

    p = (const unsigned char *) s->p + 1;
    if (skip_string(s) != 0) {
        return -1;
    }
    end = (const unsigned char *) s->p - 1;      /* the closing quote */

    while (p < end) {
        if (*p == '\\') {
            if (p[1] != 'u') {
                enc[0] = (unsigned char) (p[1] == 'b' ? '\b' : p[1] == 'f' ? '\f'
                                          : p[1] == 'n' ? '\n' : p[1] == 'r' ? '\r'
                                          : p[1] == 't' ? '\t' : p[1]);
                k = 1;
                p += 2;
            } else {
                /* skip_string checked the four hex digits */
                cp = hex4((const char *) p + 2);
                p += 6;
                if (cp >= 0xdc00 && cp <= 0xdfff) {
                    return fail(s, "\"%s\" holds an unpaired UTF-16 surrogate "
                                "(\\u%04X)", what, cp);
                }
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u'
                        || (lo = hex4((const char *) p + 2)) < 0xdc00 || lo > 0xdfff)
                    {
                        return fail(s, "\"%s\" holds an unpaired UTF-16 surrogate "
                                    "(\\u%04X)", what, cp);
                    }
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    p += 6;
                }
                if (cp < 0x80) {
                    enc[0] = (unsigned char) cp;
                    k = 1;
                } else if (cp < 0x800) {
                    enc[0] = (unsigned char) (0xc0 | cp >> 6);
                    enc[1] = (unsigned char) (0x80 | (cp & 0x3f));
                    k = 2;
                } else if (cp < 0x10000) {
                    enc[0] = (unsigned char) (0xe0 | cp >> 12);
                    enc[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
                    enc[2] = (unsigned char) (0x80 | (cp & 0x3f));
                    k = 3;
                } else {
                    enc[0] = (unsigned char) (0xf0 | cp >> 18);
                    enc[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
                    enc[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
                    enc[3] = (unsigned char) (0x80 | (cp & 0x3f));
                    k = 4;
                }
            }
        } else {
            k = mlg_utf8_len(p, end);
            if (k == 0) {
                return fail(s, "\"%s\" is not valid UTF-8 (at offset %zu)",
                            what, (size_t) ((const char *) p - s->start));
            }
            memcpy(enc, p, k);
            p += k;
        }
        if (!full && n + k < cap) {
            memcpy(out + n, enc, k);
            n += k;
        } else {
            full = 1;
        }
    }
    out[n] = '\0';
    *len = n;
    return 0;
}

static int
literal(scan_t *s, const char *word)
{
    size_t  n = strlen(word);

    if ((size_t) (s->end - s->p) < n || memcmp(s->p, word, n) != 0) {
        return malformed(s, "unexpected character");
    }
    s->p += n;
    return 0;
}

/*
 * Walkers: at '[' (or '{'), call fn for each element (member), which must
 * consume it.  Return the element count (0 on success for objects) or -1.
 */
typedef int (*elem_fn)(scan_t *s, size_t i, void *ctx);
typedef int (*member_fn)(scan_t *s, const char *key, void *ctx);

static int skip_value(scan_t *s, int depth);

static long
array(scan_t *s, elem_fn fn, void *ctx)
{
    size_t  i = 0;
    int     c;

    s->p++;
    if (peek(s) == ']') {
        s->p++;
        return 0;
    }
    for ( ;; ) {
        if (fn(s, i++, ctx) != 0) {
            return -1;
        }
        c = peek(s);
        if (c == ']') {
            s->p++;
            return (long) i;
        }
        if (c != ',') {
            return malformed(s, "expected ',' or ']'");
        }
        s->p++;
    }
}

/* An array where one must be: fails with "<what> must be an array..." */
static long
array_of(scan_t *s, elem_fn fn, void *ctx, const char *must)
{
    if (peek(s) != '[') {
        return fail(s, "%s", must);
    }
    return array(s, fn, ctx);
}

/* fn returns 0 when it consumed the value, 1 to have it skipped, -1 */
static int
object(scan_t *s, member_fn fn, void *ctx, int depth)
{
    char  key[64];
    int   c, rc;

    if (peek(s) != '{') {
        return s->p >= s->end ? malformed(s, "empty body")
                              : fail(s, "request body must be a JSON object");
    }
    s->p++;
    if (peek(s) == '}') {
        s->p++;
        return 0;
    }
    for ( ;; ) {
        ws(s);
        if (read_string(s, key, sizeof(key)) != 0) {
            return -1;
        }
        if (peek(s) != ':') {
            return malformed(s, "expected ':'");
        }
        s->p++;
        rc = fn(s, key, ctx);
        if (rc < 0 || (rc > 0 && skip_value(s, depth + 1) != 0)) {
            return -1;
        }
        c = peek(s);
        if (c == '}') {
            s->p++;
            return 0;
        }
        if (c != ',') {
            return malformed(s, "expected ',' or '}'");
        }
        s->p++;
    }
}

static int
skip_member(scan_t *s, const char *key, void *ctx)
{
    (void) s;
    (void) key;
    (void) ctx;
    return 1;
}

static int
skip_elem(scan_t *s, size_t i, void *ctx)
{
    (void) i;
    return skip_value(s, *(int *) ctx + 1);
}

static int
skip_value(scan_t *s, int depth)
{
    size_t  n;

    if (depth > MLG_JSON_MAX_DEPTH) {
        return fail(s, "JSON nested deeper than %d levels", MLG_JSON_MAX_DEPTH);
    }
    switch (peek(s)) {
    case '{':
        return object(s, skip_member, NULL, depth);
    case '[':
        return array(s, skip_elem, &depth) < 0 ? -1 : 0;
    case '"':
        return skip_string(s);
    case 't':
        return literal(s, "true");
    case 'f':
        return literal(s, "false");
    case 'n':
        return literal(s, "null");
    case -1:
        return malformed(s, "expected a value");
    default:
        n = number_len(s->p, s->end);
        if (n == 0) {
            return malformed(s, "unexpected character");
        }
        s->p += n;
        return 0;
    }
}

static int
grow(scan_t *s, size_t need)
{
    mlg_request_t  *rq = s->rq;
    size_t          cap;
    float          *x;

    if (need <= rq->cap) {
        return 0;
    }
    cap = rq->cap ? rq->cap : 1024;
    while (cap < need) {
        cap *= 2;
    }
    x = realloc(rq->x, cap * sizeof(float));
    if (x == NULL) {
        return fail(s, "out of memory");
    }
    rq->x = x;
    rq->cap = cap;
    return 0;
}

/* Position of a value for error messages: name[i][j], name[j] or name[i]. */
typedef struct {
    const char  *name;
    long         row;     /* -1: none */
    size_t       col;
} where_t;

static const char *
where_str(const where_t *w, char *buf, size_t cap)
{
    if (w->row >= 0) {
        snprintf(buf, cap, "%s[%ld][%zu]", w->name, w->row, w->col);
    } else {
        snprintf(buf, cap, "%s[%zu]", w->name, w->col);
    }
    return buf;
}

/* A feature value, stored as float32 at x[at]. */
static int
number(scan_t *s, size_t at, const where_t *wh)
{
    char         wb[96];
    size_t       n;
    float        f;
    int          c;

    c = peek(s);
    if (c == '"') {
        return fail(s, "%s is a string, not a number (non-numeric feature)",
                    where_str(wh, wb, sizeof(wb)));
    }
    if (c == 't' || c == 'f') {
        return fail(s, "%s is a boolean, not a number (non-numeric feature)",
                    where_str(wh, wb, sizeof(wb)));
    }
    if (c == 'n') {
        return fail(s, "%s is null, not a number (non-numeric feature)",
                    where_str(wh, wb, sizeof(wb)));
    }
    if (c == '[' || c == '{') {
        return fail(s, "%s is an %s, not a number (non-numeric feature)",
                    where_str(wh, wb, sizeof(wb)), c == '[' ? "array" : "object");
    }
    if (c == 'N' || c == 'I' || (c == '-' && s->p + 1 < s->end && s->p[1] == 'I'))
    {
        return fail(s, "%s is NaN or Infinity: features must be finite numbers",
                    where_str(wh, wb, sizeof(wb)));
    }
    n = number_len(s->p, s->end);
    if (n == 0) {
        return malformed(s, "expected a number");
    }
    f = mlg_parse_float32(s->p, n);
    s->p += n;
    if (!isfinite(f)) {
        return fail(s, "%s is too large for float32",
                    where_str(wh, wb, sizeof(wb)));
    }
    if (grow(s, at + 1) != 0) {
        return -1;
    }
    s->rq->x[at] = f;
    return 0;
}

/* A row [n, n, ...] stored at x[at...]. */
typedef struct {
    size_t   at;
    where_t  wh;
} row_t;

static int
row_elem(scan_t *s, size_t i, void *ctx)
{
    row_t  *rw = ctx;

    rw->wh.col = i;
    return number(s, rw->at + i, &rw->wh);
}

/* Returns the number of values, or -1.  r >= 0 names the row in errors. */
static long
row(scan_t *s, size_t at, const char *name, long r)
{
    row_t  rw = { at, { name, r, 0 } };

    return array(s, row_elem, &rw);
}

typedef struct {
    const char  *name;
} matrix_t;

static int
matrix_row(scan_t *s, size_t i, void *ctx)
{
    mlg_request_t  *rq = s->rq;
    const char     *name = ((matrix_t *) ctx)->name;
    long            n;

    if (peek(s) != '[') {
        return fail(s, "%s[%zu] is not an array (mix of rows and values)",
                    name, i);
    }
    n = row(s, rq->rows * rq->cols, name, (long) i);
    if (n < 0) {
        return -1;
    }
    if (n == 0) {
        return fail(s, "%s[%zu] is an empty row", name, i);
    }
    if (i == 0) {
        rq->cols = (size_t) n;
    } else if ((size_t) n != rq->cols) {
        return fail(s, "ragged batch: %s[%zu] has %ld values but %s[0] has %zu",
                    name, i, n, name, rq->cols);
    }
    rq->rows++;
    return 0;
}

/*
 * A matrix: [[...], [...]] (a batch) or, when flat_ok, [...] (one row).
 * Checks that every row has the same length.
 */
static int
matrix(scan_t *s, const char *name, int flat_ok)
{
    mlg_request_t  *rq = s->rq;
    matrix_t        mt = { name };
    const char     *open;
    long            n;
    int             c;

    rq->rows = rq->cols = 0;
    if (peek(s) != '[') {
        return fail(s, "\"%s\" must be an array of %s", name,
                    flat_ok ? "numbers or of rows" : "rows");
    }
    open = s->p++;
    c = peek(s);
    s->p = open;
    if (c == ']') {
        return fail(s, "\"%s\" is empty", name);
    }
    if (c != '[') {
        if (!flat_ok) {
            return fail(s, "%s[0] is not an array: \"%s\" must be a list of rows",
                        name, name);
        }
        n = row(s, 0, name, -1);
        if (n < 0) {
            return -1;
        }
        rq->rows = 1;
        rq->cols = (size_t) n;
        return 0;
    }
    return array(s, matrix_row, &mt) < 0 ? -1 : 0;
}

static void
scan_init(scan_t *s, mlg_request_t *rq, const char *body, size_t len)
{
    s->p = s->start = body;
    s->end = body + len;
    s->rq = rq;
    rq->rows = rq->cols = 0;
    rq->want_proba = 0;
    rq->want_label = 1;
    rq->has_id = 0;
    rq->err[0] = '\0';
}

static int
finish(scan_t *s, int found, const char *name)
{
    if (peek(s) != -1) {
        return malformed(s, "trailing data after the JSON value");
    }
    if (!found) {
        return fail(s, "missing \"%s\"", name);
    }
    return 0;
}

typedef struct {
    const char  *name;
    const char  *alt;
    int          flat_ok;
    int          found;
} matrix_member_t;

static int
matrix_member(scan_t *s, const char *key, void *ctx)
{
    matrix_member_t  *mm = ctx;

    if (strcmp(key, mm->name) != 0 && (mm->alt == NULL || strcmp(key, mm->alt) != 0))
    {
        return 1;
    }
    if (mm->found) {
        return fail(s, "duplicate \"%s\"", key);
    }
    mm->found = 1;
    return matrix(s, mm->name, mm->flat_ok);
}

static int
parse_matrix_body(mlg_request_t *rq, const char *body, size_t len,
    matrix_member_t *mm)
{
    scan_t  s;

    scan_init(&s, rq, body, len);
    if (object(&s, matrix_member, mm, 0) != 0) {
        return -1;
    }
    return finish(&s, mm->found, mm->name);
}

int
mlg_parse_simple(mlg_request_t *rq, const char *body, size_t len)
{
    matrix_member_t  mm = { "input", NULL, 1, 0 };

    return parse_matrix_body(rq, body, len, &mm);
}

int
mlg_parse_v1(mlg_request_t *rq, const char *body, size_t len)
{
    matrix_member_t  mm = { "instances", "inputs", 0, 0 };

    return parse_matrix_body(rq, body, len, &mm);
}

/* ---- Open Inference Protocol V2 ---- */

typedef struct {
    int      n_inputs;
    int      has_shape, has_data, has_datatype;
    int      depth;
    long     shape[2];
    int      rank;
    size_t   values;
    where_t  wh;
    char     datatype[16];
} v2_t;

/* Flattens any nesting of numbers into x (OIP allows flat or nested data). */
static int
v2_data(scan_t *s, size_t i, void *ctx)
{
    v2_t  *v = ctx;
    long   n;

    (void) i;
    if (peek(s) != '[') {
        v->wh.col = v->values;
        if (number(s, v->values, &v->wh) != 0) {
            return -1;
        }
        v->values++;
        return 0;
    }
    if (++v->depth > 8) {
        return fail(s, "inputs[0].data nested too deeply");
    }
    n = array(s, v2_data, v);
    v->depth--;
    return n < 0 ? -1 : 0;
}

static int
v2_dim(scan_t *s, size_t i, void *ctx)
{
    v2_t        *v = ctx;
    double       d;
    size_t       n;

    peek(s);
    n = number_len(s->p, s->end);
    if (n == 0) {
        return fail(s, "inputs[0].shape must be an array of integers");
    }
    d = mlg_parse_double(s->p, n);
    s->p += n;
    if (d < 0 || d > 1e9 || d != floor(d)) {
        return fail(s, "inputs[0].shape holds a bad dimension");
    }
    if (i < 2) {
        v->shape[i] = (long) d;
    }
    v->rank++;
    return 0;
}

static int
v2_tensor_member(scan_t *s, const char *key, void *ctx)
{
    v2_t  *v = ctx;

    if (strcmp(key, "data") == 0) {
        if (v->has_data) {
            return fail(s, "duplicate \"data\"");
        }
        v->has_data = 1;
        if (peek(s) != '[') {
            return fail(s, "inputs[0].data must be an array");
        }
        return v2_data(s, 0, v);
    }
    if (strcmp(key, "shape") == 0) {
        v->has_shape = 1;
        v->rank = 0;
        if (array_of(s, v2_dim, v, "inputs[0].shape must be an array of "
                     "integers") < 0)
        {
            return -1;
        }
        return v->rank == 0 ? fail(s, "inputs[0].shape is empty") : 0;
    }
    if (strcmp(key, "datatype") == 0) {
        if (peek(s) != '"') {
            return fail(s, "inputs[0].datatype must be a string");
        }
        v->has_datatype = 1;
        return read_string(s, v->datatype, sizeof(v->datatype));
    }
    return 1;
}

static int
v2_input(scan_t *s, size_t i, void *ctx)
{
    v2_t  *v = ctx;

    if (i > 0) {
        return fail(s, "\"inputs\" must hold exactly one tensor");
    }
    if (peek(s) != '{') {
        return fail(s, "inputs[0] must be an object");
    }
    if (object(s, v2_tensor_member, v, 2) != 0) {
        return -1;
    }
    v->n_inputs++;
    return 0;
}

static int
v2_output_member(scan_t *s, const char *key, void *ctx)
{
    char  name[32];

    (void) ctx;
    if (strcmp(key, "name") != 0) {
        return 1;
    }
    if (peek(s) != '"') {
        return fail(s, "outputs[].name must be a string");
    }
    if (read_string(s, name, sizeof(name)) != 0) {
        return -1;
    }
    if (strcmp(name, "predict") == 0) {
        s->rq->want_label = 1;
    } else if (strcmp(name, "predict_proba") == 0) {
        s->rq->want_proba = 1;
    } else {
        return fail(s, "unknown output \"%s\" (want predict or predict_proba)",
                    name);
    }
    return 0;
}

static int
v2_output(scan_t *s, size_t i, void *ctx)
{
    (void) i;
    if (peek(s) != '{') {
        return fail(s, "outputs[] entries must be objects");
    }
    return object(s, v2_output_member, ctx, 2);
}

static int
v2_member(scan_t *s, const char *key, void *ctx)
{
    v2_t  *v = ctx;

    if (strcmp(key, "inputs") == 0) {
        if (v->n_inputs > 0) {
            return fail(s, "duplicate \"inputs\"");
        }
        if (array_of(s, v2_input, v, "\"inputs\" must be an array of tensors")
            < 0)
        {
            return -1;
        }
        return v->n_inputs == 0 ? fail(s, "\"inputs\" is empty") : 0;
    }
    if (strcmp(key, "outputs") == 0) {
        s->rq->want_label = 0;
        if (array_of(s, v2_output, NULL, "\"outputs\" must be an array") < 0) {
            return -1;
        }
        if (!s->rq->want_label && !s->rq->want_proba) {
            s->rq->want_label = 1;      /* "outputs": [] means the default */
        }
        return 0;
    }
    if (strcmp(key, "id") == 0 && peek(s) == '"') {
        s->rq->has_id = 1;
        return read_text(s, "id", s->rq->id, sizeof(s->rq->id), &s->rq->id_len);
    }
    return 1;
}

int
mlg_parse_v2(mlg_request_t *rq, const char *body, size_t len)
{
    scan_t  s;
    v2_t    v;
    size_t  total;

    memset(&v, 0, sizeof(v));
    v.wh.name = "inputs[0].data";
    v.wh.row = -1;
    scan_init(&s, rq, body, len);
    if (object(&s, v2_member, &v, 0) != 0) {
        return -1;
    }
    if (finish(&s, v.n_inputs, "inputs") != 0) {
        return -1;
    }
    if (!v.has_data || !v.has_shape) {
        return fail(&s, "inputs[0] needs \"shape\" and \"data\"");
    }
    if (v.has_datatype && strcmp(v.datatype, "FP32") != 0
        && strcmp(v.datatype, "FP64") != 0 && strcmp(v.datatype, "FP16") != 0
        && strncmp(v.datatype, "INT", 3) != 0 && strncmp(v.datatype, "UINT", 4) != 0)
    {
        return fail(&s, "inputs[0].datatype %s is not numeric", v.datatype);
    }
    if (v.rank != 2) {
        return fail(&s, "inputs[0].shape must be [rows, features]");
    }
    total = (size_t) v.shape[0] * (size_t) v.shape[1];
    if (total != v.values) {
        return fail(&s, "inputs[0].data holds %zu values but shape [%ld, %ld] "
                    "needs %zu", v.values, v.shape[0], v.shape[1], total);
    }
    if (total == 0) {
        return fail(&s, "inputs[0] is empty");
    }
    rq->rows = (size_t) v.shape[0];
    rq->cols = (size_t) v.shape[1];
    return 0;
}
