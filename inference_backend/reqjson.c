#include "reqjson.h"

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

/*
 * Clinger's fast path: with at most 15 significant digits the mantissa and
 * 10^k (k <= 22) are exact doubles, so one multiplication or division gives
 * the correctly rounded result.  Anything else goes to strtod.
 */
double
mlg_parse_double(const char *s, const char **end)
{
    const char  *p = s;
    uint64_t     mant = 0;
    int          digits = 0, exp10 = 0, neg = 0, eneg = 0, e = 0;
    double       d;
    char        *e_end;

    if (*p == '-') {
        neg = 1;
        p++;
    }
    while (*p >= '0' && *p <= '9') {
        if (digits < 19) {
            mant = mant * 10 + (uint64_t) (*p - '0');
            if (mant != 0) {
                digits++;
            }
        } else {
            goto slow;
        }
        p++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 19) {
                mant = mant * 10 + (uint64_t) (*p - '0');
                if (mant != 0) {
                    digits++;
                }
                exp10--;
            } else {
                goto slow;
            }
            p++;
        }
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') {
            eneg = *p == '-';
            p++;
        }
        while (*p >= '0' && *p <= '9') {
            if (e > 10000) {
                goto slow;
            }
            e = e * 10 + (*p - '0');
            p++;
        }
        exp10 += eneg ? -e : e;
    }
    if (digits > 15 || exp10 < -22 || exp10 > 22) {
        goto slow;
    }
    d = (double) mant;
    d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
    *end = p;
    return neg ? -d : d;

slow:
    d = strtod(s, &e_end);
    *end = e_end;
    return d;
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
    const char   *p = s, *end = s + n;
    uint64_t      mant = 0;
    int           digits = 0, exp10 = 0, neg = 0, eneg = 0, e = 0;
    long double   v, lo_mid, hi_mid, tol;
    float         f;
    char          tmp[64];

    if (p < end && *p == '-') {
        neg = 1;
        p++;
    }
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (digits >= 19) {
            goto slow;
        }
        mant = mant * 10 + (uint64_t) (*p - '0');
        digits += mant != 0;
    }
    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            if (digits >= 19) {
                goto slow;
            }
            mant = mant * 10 + (uint64_t) (*p - '0');
            digits += mant != 0;
            exp10--;
        }
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p++ == '-';
        }
        for (; p < end && *p >= '0' && *p <= '9'; p++) {
            if (e > 10000) {
                goto slow;
            }
            e = e * 10 + (*p - '0');
        }
        exp10 += eneg ? -e : e;
    }
    if (p != end) {
        goto slow;
    }
    if (mant == 0) {
        return neg ? -0.0f : 0.0f;
    }
    if (digits <= 15 && exp10 >= -22 && exp10 <= 22) {
        double  d = (double) mant;           /* exact: Clinger's fast path */

        d = exp10 < 0 ? d / pow10_exact[-exp10] : d * pow10_exact[exp10];
        f = (float) d;
        return neg ? -f : f;
    }
    if (exp10 < -27 || exp10 > 27) {
        goto slow;
    }
    v = (long double) mant;
    v = exp10 < 0 ? v / pow10_ld[-exp10] : v * pow10_ld[exp10];
    f = (float) v;
    if (!(f >= 1.17549435e-38f && f < 3.40282347e38f)) {
        goto slow;                            /* subnormal, zero or overflow */
    }
    lo_mid = ((long double) f + (long double) nextafterf(f, 0.0f)) / 2;
    hi_mid = ((long double) f + (long double) nextafterf(f, INFINITY)) / 2;
    tol = v * 0x1p-50L;
    if (v - lo_mid > tol && hi_mid - v > tol) {
        return neg ? -f : f;
    }

slow:
    if (n >= sizeof(tmp)) {
        char  *copy = malloc(n + 1);
        double d;

        if (copy == NULL) {
            return NAN;
        }
        memcpy(copy, s, n);
        copy[n] = '\0';
        d = strtod(copy, NULL);
        free(copy);
        return (float) d;
    }
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return (float) strtod(tmp, NULL);
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

static int
skip_value(scan_t *s, int depth)
{
    int     c;
    size_t  n;

    if (depth > MLG_JSON_MAX_DEPTH) {
        return fail(s, "JSON nested deeper than %d levels", MLG_JSON_MAX_DEPTH);
    }
    c = peek(s);
    switch (c) {
    case '{':
        s->p++;
        if (peek(s) == '}') {
            s->p++;
            return 0;
        }
        for ( ;; ) {
            ws(s);
            if (skip_string(s) != 0) {
                return -1;
            }
            if (peek(s) != ':') {
                return malformed(s, "expected ':'");
            }
            s->p++;
            if (skip_value(s, depth + 1) != 0) {
                return -1;
            }
            c = peek(s);
            s->p++;
            if (c == '}') {
                return 0;
            }
            if (c != ',') {
                s->p--;
                return malformed(s, "expected ',' or '}'");
            }
        }
    case '[':
        s->p++;
        if (peek(s) == ']') {
            s->p++;
            return 0;
        }
        for ( ;; ) {
            if (skip_value(s, depth + 1) != 0) {
                return -1;
            }
            c = peek(s);
            s->p++;
            if (c == ']') {
                return 0;
            }
            if (c != ',') {
                s->p--;
                return malformed(s, "expected ',' or ']'");
            }
        }
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

/*
 * A row [n, n, ...] appended at x[at...].  Returns the number of values or
 * -1.  name/row are for error messages ("input[3][1]").
 */
static long
row(scan_t *s, size_t at, const char *name, long r)
{
    where_t  wh = { name, r, 0 };
    size_t   n = 0;
    int     c;

    if (peek(s) != '[') {
        return -1;
    }
    s->p++;
    if (peek(s) == ']') {
        s->p++;
        return 0;
    }
    for ( ;; ) {
        wh.col = n;
        if (number(s, at + n, &wh) != 0) {
            return -2;
        }
        n++;
        c = peek(s);
        s->p++;
        if (c == ']') {
            return (long) n;
        }
        if (c != ',') {
            s->p--;
            malformed(s, "expected ',' or ']' in a row");
            return -2;
        }
    }
}

/*
 * A matrix: [[...], [...]] (a batch) or, when flat_ok, [...] (one row).
 * Checks that every row has the same length.
 */
static int
matrix(scan_t *s, const char *name, int flat_ok)
{
    mlg_request_t  *rq = s->rq;
    long            n;
    int             c;

    rq->rows = rq->cols = 0;
    if (peek(s) != '[') {
        return fail(s, "\"%s\" must be an array of %s", name,
                    flat_ok ? "numbers or of rows" : "rows");
    }
    s->p++;
    c = peek(s);
    if (c == ']') {
        return fail(s, "\"%s\" is empty", name);
    }
    if (c != '[') {
        if (!flat_ok) {
            return fail(s, "%s[0] is not an array: \"%s\" must be a list of rows",
                        name, name);
        }
        s->p--;
        n = row(s, 0, name, -1);
        if (n < 0) {
            return -1;
        }
        rq->rows = 1;
        rq->cols = (size_t) n;
        return 0;
    }
    for ( ;; ) {
        if (peek(s) != '[') {
            return fail(s, "%s[%zu] is not an array (mix of rows and values)",
                        name, rq->rows);
        }
        n = row(s, rq->rows * rq->cols, name, (long) rq->rows);
        if (n < 0) {
            return -1;
        }
        if (n == 0) {
            return fail(s, "%s[%zu] is an empty row", name, rq->rows);
        }
        if (rq->rows == 0) {
            rq->cols = (size_t) n;
        } else if ((size_t) n != rq->cols) {
            return fail(s, "ragged batch: %s[%zu] has %ld values but %s[0] has %zu",
                        name, rq->rows, n, name, rq->cols);
        }
        rq->rows++;
        c = peek(s);
        s->p++;
        if (c == ']') {
            return 0;
        }
        if (c != ',') {
            s->p--;
            return malformed(s, "expected ',' or ']' between rows");
        }
    }
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

/*
 * Walks a top-level object; for each member calls fn (which consumes the
 * value, or returns 1 to have it skipped).
 */
typedef int (*member_fn)(scan_t *s, const char *key, void *ctx);

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
        if (rc < 0) {
            return -1;
        }
        if (rc > 0 && skip_value(s, depth + 1) != 0) {
            return -1;
        }
        c = peek(s);
        s->p++;
        if (c == '}') {
            return 0;
        }
        if (c != ',') {
            s->p--;
            return malformed(s, "expected ',' or '}'");
        }
    }
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

int
mlg_parse_simple(mlg_request_t *rq, const char *body, size_t len)
{
    scan_t           s;
    matrix_member_t  mm = { "input", NULL, 1, 0 };

    scan_init(&s, rq, body, len);
    if (object(&s, matrix_member, &mm, 0) != 0) {
        return -1;
    }
    return finish(&s, mm.found, "input");
}

int
mlg_parse_v1(mlg_request_t *rq, const char *body, size_t len)
{
    scan_t           s;
    matrix_member_t  mm = { "instances", "inputs", 0, 0 };

    scan_init(&s, rq, body, len);
    if (object(&s, matrix_member, &mm, 0) != 0) {
        return -1;
    }
    return finish(&s, mm.found, "instances");
}

/* ---- Open Inference Protocol V2 ---- */

typedef struct {
    int     n_inputs;
    int     has_shape, has_data, has_datatype;
    long    shape[2];
    int     rank;
    size_t  values;
    char    datatype[16];
} v2_t;

/* Flattens any nesting of numbers into x (OIP allows flat or nested data). */
static int
v2_data(scan_t *s, v2_t *v, int depth)
{
    where_t  wh = { "inputs[0].data", -1, 0 };
    int   c;

    if (depth > 8) {
        return fail(s, "inputs[0].data nested too deeply");
    }
    if (peek(s) != '[') {
        wh.col = v->values;
        if (number(s, v->values, &wh) != 0) {
            return -1;
        }
        v->values++;
        return 0;
    }
    s->p++;
    if (peek(s) == ']') {
        s->p++;
        return 0;
    }
    for ( ;; ) {
        if (v2_data(s, v, depth + 1) != 0) {
            return -1;
        }
        c = peek(s);
        s->p++;
        if (c == ']') {
            return 0;
        }
        if (c != ',') {
            s->p--;
            return malformed(s, "expected ',' or ']' in data");
        }
    }
}

static int
v2_shape(scan_t *s, v2_t *v)
{
    const char  *endp;
    double       d;
    size_t       n;
    int          c;

    if (peek(s) != '[') {
        return fail(s, "inputs[0].shape must be an array of integers");
    }
    s->p++;
    v->rank = 0;
    if (peek(s) == ']') {
        s->p++;
        return fail(s, "inputs[0].shape is empty");
    }
    for ( ;; ) {
        peek(s);
        n = number_len(s->p, s->end);
        if (n == 0) {
            return fail(s, "inputs[0].shape must be an array of integers");
        }
        d = mlg_parse_double(s->p, &endp);
        s->p += n;
        if (d < 0 || d > 1e9 || d != floor(d)) {
            return fail(s, "inputs[0].shape holds a bad dimension");
        }
        if (v->rank < 2) {
            v->shape[v->rank] = (long) d;
        }
        v->rank++;
        c = peek(s);
        s->p++;
        if (c == ']') {
            return 0;
        }
        if (c != ',') {
            s->p--;
            return malformed(s, "expected ',' or ']' in shape");
        }
    }
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
        return v2_data(s, v, 0);
    }
    if (strcmp(key, "shape") == 0) {
        v->has_shape = 1;
        return v2_shape(s, v);
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
v2_inputs(scan_t *s, v2_t *v)
{
    int  c;

    if (peek(s) != '[') {
        return fail(s, "\"inputs\" must be an array of tensors");
    }
    s->p++;
    if (peek(s) == ']') {
        return fail(s, "\"inputs\" is empty");
    }
    for ( ;; ) {
        if (v->n_inputs > 0) {
            return fail(s, "\"inputs\" must hold exactly one tensor");
        }
        if (peek(s) != '{') {
            return fail(s, "inputs[0] must be an object");
        }
        if (object(s, v2_tensor_member, v, 2) != 0) {
            return -1;
        }
        v->n_inputs++;
        c = peek(s);
        s->p++;
        if (c == ']') {
            return 0;
        }
        if (c != ',') {
            s->p--;
            return malformed(s, "expected ',' or ']'");
        }
    }
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
v2_outputs(scan_t *s)
{
    int  c;

    if (peek(s) != '[') {
        return fail(s, "\"outputs\" must be an array");
    }
    s->p++;
    s->rq->want_label = 0;
    if (peek(s) == ']') {
        s->p++;
        s->rq->want_label = 1;
        return 0;
    }
    for ( ;; ) {
        if (peek(s) != '{') {
            return fail(s, "outputs[] entries must be objects");
        }
        if (object(s, v2_output_member, NULL, 2) != 0) {
            return -1;
        }
        c = peek(s);
        s->p++;
        if (c == ']') {
            if (!s->rq->want_label && !s->rq->want_proba) {
                s->rq->want_label = 1;
            }
            return 0;
        }
        if (c != ',') {
            s->p--;
            return malformed(s, "expected ',' or ']'");
        }
    }
}

static int
v2_member(scan_t *s, const char *key, void *ctx)
{
    v2_t  *v = ctx;

    if (strcmp(key, "inputs") == 0) {
        if (v->n_inputs > 0) {
            return fail(s, "duplicate \"inputs\"");
        }
        return v2_inputs(s, v);
    }
    if (strcmp(key, "outputs") == 0) {
        return v2_outputs(s);
    }
    if (strcmp(key, "id") == 0 && peek(s) == '"') {
        s->rq->has_id = 1;
        return read_string(s, s->rq->id, sizeof(s->rq->id));
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
