/*
 * libFuzzer target for the principal rule and its log escaping.  Input: a
 * size byte for the escape buffer, then the candidate principal.  Checks:
 * an accepted principal is 1..255 bytes with no C0 byte, no DEL and no
 * encoded C1 control, and a second, independent strict UTF-8 decoder
 * agrees with every verdict on content; the escaped form fits its buffer,
 * holds only printable ASCII, and decodes back to the input (to a prefix of
 * it when cut with "...").  Built by scripts/fuzz.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mlg_principal.h"

/* decodes s[0..len) strictly; -1 if not well-formed UTF-8 */
static int
reference_utf8(const uint8_t *s, size_t len)
{
    size_t    i = 0, n, k;
    uint32_t  cp;

    while (i < len) {
        uint8_t  c = s[i];

        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
        else { return -1; }
        if (i + n >= len) { return -1; }
        for (k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) { return -1; }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)
            || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        {
            return -1;
        }
        if (cp >= 0x80 && cp <= 0x9F) { return -2; }
        i += n + 1;
    }
    return 0;
}

static int
hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char                out[300];
    uint8_t             back[300];
    int                 cut;
    size_t              len, n, i, b, bufsize;
    const uint8_t      *s;
    mlg_principal_rc_e  rc;

    if (size < 1) {
        return 0;
    }
    bufsize = 8 + data[0] % (sizeof(out) - 8);
    s = data + 1;
    len = size - 1;

    rc = mlg_principal_check(s, len);
    if (rc == MLG_PRINCIPAL_OK) {
        if (len == 0 || len > MLG_PRINCIPAL_MAX) {
            abort();
        }
        for (i = 0; i < len; i++) {
            if (s[i] < 0x20 || s[i] == 0x7F) {
                abort();
            }
        }
        if (reference_utf8(s, len) != 0) {
            abort();
        }
    } else if (len >= 1 && len <= MLG_PRINCIPAL_MAX && rc != MLG_PRINCIPAL_EMPTY
               && rc != MLG_PRINCIPAL_TOO_LONG)
    {
        /* refused for its content: the reference agrees */
        int  ref = reference_utf8(s, len), ctl = 0;

        for (i = 0; i < len; i++) {
            ctl |= s[i] < 0x20 || s[i] == 0x7F;
        }
        if (ref == 0 && !ctl) {
            abort();
        }
    }

    memset(out, 'Z', sizeof(out));
    n = mlg_principal_escape(out, bufsize, s, len);
    if (n >= bufsize || out[n] != '\0' || (bufsize < sizeof(out) && out[bufsize] != 'Z')) {
        abort();
    }
    for (i = 0; i < n; i++) {
        if ((uint8_t) out[i] < 0x20 || (uint8_t) out[i] >= 0x7F) {
            abort();
        }
    }

    /* unescaping gives the input back, or a prefix of it when cut */
    cut = n >= 3 && memcmp(out + n - 3, "...", 3) == 0;
    for (i = 0, b = 0; i < n - (cut ? 3 : 0); b++) {
        if (out[i] == '\\' && out[i + 1] == 'x') {
            back[b] = (uint8_t) (hexval(out[i + 2]) * 16 + hexval(out[i + 3]));
            i += 4;
        } else if (out[i] == '\\') {
            back[b] = (uint8_t) out[i + 1];
            i += 2;
        } else {
            back[b] = (uint8_t) out[i++];
        }
    }
    if (b > len || memcmp(back, s, b) != 0) {
        abort();
    }
    /* not cut: all of it (an input ending in "..." may look cut) */
    if (!cut && b != len) {
        abort();
    }
    return 0;
}
