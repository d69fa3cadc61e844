/*
 * The principal rule and log escaping; see mlg_principal.h.
 */
#include <string.h>

#include "mlg_principal.h"


/*
 * Length of the well-formed UTF-8 sequence at s[0..avail) and its code
 * point in *cp, or 0 if the bytes there are not one.
 */
static size_t
mlg_utf8_decode(const unsigned char *s, size_t avail, unsigned long *cp)
{
    size_t         n, k;
    unsigned long  v, lowest;

    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }

    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        n = 2;
        v = s[0] & 0x1F;
        lowest = 0x80;

    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        n = 3;
        v = s[0] & 0x0F;
        lowest = 0x800;

    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        n = 4;
        v = s[0] & 0x07;
        lowest = 0x10000;

    } else {
        return 0;
    }

    if (avail < n) {
        return 0;
    }

    for (k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            return 0;
        }
        v = (v << 6) | (s[k] & 0x3F);
    }

    /* overlong forms, UTF-16 surrogates, past Unicode */
    if (v < lowest || (v >= 0xD800 && v <= 0xDFFF) || v > 0x10FFFF) {
        return 0;
    }

    *cp = v;
    return n;
}


mlg_principal_rc_e
mlg_principal_check(const unsigned char *s, size_t len)
{
    size_t         i, n;
    unsigned long  cp;

    if (len == 0) {
        return MLG_PRINCIPAL_EMPTY;
    }

    if (len > MLG_PRINCIPAL_MAX) {
        return MLG_PRINCIPAL_TOO_LONG;
    }

    for (i = 0; i < len; i += n) {
        n = mlg_utf8_decode(s + i, len - i, &cp);
        if (n == 0) {
            return MLG_PRINCIPAL_BAD_UTF8;
        }

        if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
            return MLG_PRINCIPAL_CONTROL;
        }
    }

    return MLG_PRINCIPAL_OK;
}


const char *
mlg_principal_problem(mlg_principal_rc_e rc)
{
    switch (rc) {

    case MLG_PRINCIPAL_OK:
        return "is acceptable";

    case MLG_PRINCIPAL_EMPTY:
        return "is empty";

    case MLG_PRINCIPAL_TOO_LONG:
        return "is longer than 255 bytes";

    case MLG_PRINCIPAL_BAD_UTF8:
        return "is not valid UTF-8";

    default:
        return "contains a control character";
    }
}


/* bytes the escaped form of c takes */
static size_t
mlg_escaped_len(unsigned char c)
{
    if (c >= 0x20 && c < 0x7F) {
        return (c == '\\' || c == '"') ? 2 : 1;
    }

    return 4;
}


size_t
mlg_principal_escape(char *dst, size_t size, const unsigned char *s,
    size_t len)
{
    static const char  hex[] = "0123456789ABCDEF";
    size_t             i, o, need, total, reserve;

    /* all of it, or as much as leaves room for "..." */

    total = 0;
    for (i = 0; i < len && total < size; i++) {
        total += mlg_escaped_len(s[i]);
    }

    reserve = total < size ? 0 : 3;
    o = 0;

    for (i = 0; i < len; i++) {
        need = mlg_escaped_len(s[i]);

        if (o + need + reserve >= size) {
            memcpy(dst + o, "...", 3);
            o += 3;
            break;
        }

        if (need == 1) {
            dst[o++] = (char) s[i];

        } else if (need == 2) {
            dst[o++] = '\\';
            dst[o++] = (char) s[i];

        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[s[i] >> 4];
            dst[o++] = hex[s[i] & 0x0F];
        }
    }

    dst[o] = '\0';
    return o;
}
