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

void
mlg_json_str(mlg_buf_t *b, const char *s, size_t n)
{
    static const char  hex[] = "0123456789abcdef";
    size_t             i;
    unsigned char      c;

    mlg_buf_addc(b, '"');
    for (i = 0; i < n; i++) {
        c = (unsigned char) s[i];
        if (c == '"' || c == '\\') {
            mlg_buf_addc(b, '\\');
            mlg_buf_addc(b, (char) c);
        } else if (c < 0x20) {
            char  esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

            mlg_buf_add(b, esc, sizeof(esc));
        } else {
            mlg_buf_addc(b, (char) c);
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

void
mlg_json_double(mlg_buf_t *b, double d)
{
    char  tmp[32];
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
    /* the shortest of %.15g..%.17g that reads back exactly */
    for (prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
        if (prec == 17 || strtod(tmp, NULL) == d) {
            break;
        }
    }
    mlg_buf_add(b, tmp, (size_t) n);
}
