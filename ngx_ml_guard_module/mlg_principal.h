/*
 * The one rule for a principal (the authenticated identity that becomes
 * $ml_guard_principal, goes into headers sent upstream, rate-limit keys and
 * log lines), whatever its source: an API key's id, a JWT's sub, a client
 * certificate's subject CN.  And a way to show a refused one in a log line
 * without its raw bytes.  Plain C, no nginx headers.
 */
#ifndef MLG_PRINCIPAL_H
#define MLG_PRINCIPAL_H

#include <stddef.h>

/* Longest principal, in bytes. */
#define MLG_PRINCIPAL_MAX  255

typedef enum {
    MLG_PRINCIPAL_OK = 0,
    MLG_PRINCIPAL_EMPTY,
    MLG_PRINCIPAL_TOO_LONG,
    MLG_PRINCIPAL_BAD_UTF8,
    MLG_PRINCIPAL_CONTROL
} mlg_principal_rc_e;

/*
 * A principal is 1..MLG_PRINCIPAL_MAX bytes of well-formed UTF-8 (no
 * overlong forms, surrogates or code points past U+10FFFF) without a
 * control character (Unicode category Cc: U+0000-U+001F, U+007F-U+009F;
 * so no NUL, tab, CR, LF or DEL).
 */
mlg_principal_rc_e mlg_principal_check(const unsigned char *s, size_t len);

/* "is empty", "is longer than 255 bytes", ... for a log line. */
const char *mlg_principal_problem(mlg_principal_rc_e rc);

/*
 * Writes s[0..len) into dst (size bytes, NUL-terminated) for a log line:
 * printable ASCII as is except '\' and '"', every other byte as \xHH.  If
 * it does not fit, the output stops at a whole escape and ends in "...".
 * Returns the length written (without the NUL).  size must be at least 8.
 */
size_t mlg_principal_escape(char *dst, size_t size, const unsigned char *s,
    size_t len);

#endif /* MLG_PRINCIPAL_H */
