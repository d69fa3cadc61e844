/* Unit tests for mlg_principal: the rule every principal source obeys, and
 * the escaping of a refused one for the log. */

#include "tap.h"
#include "mlg_principal.h"

static void
check(const char *s, size_t len, mlg_principal_rc_e want, const char *what)
{
    is_int(mlg_principal_check((const unsigned char *) s, len), want, "%s", what);
}

#define CHECK(lit, want, what)  check(lit, sizeof(lit) - 1, want, what)

static void
escape(const char *s, size_t len, size_t size, const char *want,
    const char *what)
{
    char    buf[128];
    size_t  n;

    memset(buf, 'Z', sizeof(buf));
    n = mlg_principal_escape(buf, size, (const unsigned char *) s, len);
    is_str(buf, want, "escape: %s", what);
    is_int(n, strlen(want), "escape: %s: length", what);
    ok(n < size, "escape: %s: fits its buffer", what);
    ok(buf[size] == 'Z', "escape: %s: nothing written past the buffer", what);
}

#define ESCAPE(lit, size, want, what)  escape(lit, sizeof(lit) - 1, size, want, what)

int
main(void)
{
    char  long_name[MLG_PRINCIPAL_MAX + 2];

    CHECK("billing.internal", MLG_PRINCIPAL_OK, "plain ASCII");
    CHECK("Batch Scoring Service", MLG_PRINCIPAL_OK, "blanks");
    CHECK("svc-billing@example.com/x:y", MLG_PRINCIPAL_OK, "punctuation");
    CHECK("Z\xc3\xbcrich \xe6\x9c\x8d\xe5\x8a\xa1 \xf0\x9f\x94\x91", MLG_PRINCIPAL_OK,
          "two-, three- and four-byte UTF-8");
    CHECK("\xc2\xa0nbsp", MLG_PRINCIPAL_OK, "U+00A0 is not a control character");
    CHECK("", MLG_PRINCIPAL_EMPTY, "empty");

    memset(long_name, 'a', sizeof(long_name));
    check(long_name, MLG_PRINCIPAL_MAX, MLG_PRINCIPAL_OK, "255 bytes");
    check(long_name, MLG_PRINCIPAL_MAX + 1, MLG_PRINCIPAL_TOO_LONG, "256 bytes");

    CHECK("evil\r\nX-Roles: admin", MLG_PRINCIPAL_CONTROL, "CR LF");
    CHECK("evil\nX", MLG_PRINCIPAL_CONTROL, "LF");
    CHECK("evil\rX", MLG_PRINCIPAL_CONTROL, "CR");
    CHECK("a\tb", MLG_PRINCIPAL_CONTROL, "tab");
    CHECK("a\0b", MLG_PRINCIPAL_CONTROL, "NUL inside");
    CHECK("ab\0", MLG_PRINCIPAL_CONTROL, "NUL at the end");
    CHECK("\x1b[31mred", MLG_PRINCIPAL_CONTROL, "ESC (terminal sequence)");
    CHECK("del\x7f", MLG_PRINCIPAL_CONTROL, "DEL");
    CHECK("nel\xc2\x85", MLG_PRINCIPAL_CONTROL, "U+0085 NEL (C1)");
    CHECK("\xc2\x80", MLG_PRINCIPAL_CONTROL, "U+0080 (first C1)");
    CHECK("\xc2\x9f", MLG_PRINCIPAL_CONTROL, "U+009F (last C1)");

    CHECK("\xff", MLG_PRINCIPAL_BAD_UTF8, "0xFF");
    CHECK("a\x80", MLG_PRINCIPAL_BAD_UTF8, "lone continuation byte");
    CHECK("\xc3", MLG_PRINCIPAL_BAD_UTF8, "truncated two-byte sequence");
    CHECK("\xe6\x9c", MLG_PRINCIPAL_BAD_UTF8, "truncated three-byte sequence");
    CHECK("\xc3\x28", MLG_PRINCIPAL_BAD_UTF8, "bad continuation");
    CHECK("\xc0\x8a", MLG_PRINCIPAL_BAD_UTF8, "overlong LF (C0 8A)");
    CHECK("\xe0\x80\x8d", MLG_PRINCIPAL_BAD_UTF8, "overlong CR (three bytes)");
    CHECK("\xf0\x80\x80\x8a", MLG_PRINCIPAL_BAD_UTF8, "overlong LF (four bytes)");
    CHECK("\xed\xa0\x80", MLG_PRINCIPAL_BAD_UTF8, "UTF-16 surrogate U+D800");
    CHECK("\xf4\x90\x80\x80", MLG_PRINCIPAL_BAD_UTF8, "past U+10FFFF");
    CHECK("\xf5\x80\x80\x80", MLG_PRINCIPAL_BAD_UTF8, "lead byte F5");

    ok(strstr(mlg_principal_problem(MLG_PRINCIPAL_CONTROL), "control") != NULL,
       "problem text: control character");
    ok(strstr(mlg_principal_problem(MLG_PRINCIPAL_TOO_LONG), "255") != NULL,
       "problem text: the limit");

    ESCAPE("billing.internal", 64, "billing.internal", "printable ASCII as is");
    ESCAPE("evil\r\nX-Roles: admin", 64, "evil\\x0D\\x0AX-Roles: admin", "CR LF");
    ESCAPE("a\"b\\c", 64, "a\\\"b\\\\c", "quote and backslash");
    ESCAPE("\x00\x7f\xc2\x85", 64, "\\x00\\x7F\\xC2\\x85", "NUL, DEL and UTF-8 bytes");
    ESCAPE("abcdefghij", 8, "abcd...", "cut with an ellipsis");
    ESCAPE("abcdefg", 8, "abcdefg", "exactly fits");
    ESCAPE("abcdefgh", 8, "abcd...", "one byte too many");
    ESCAPE("ab\r\n", 8, "ab...", "an escape is never cut");
    ESCAPE("", 8, "", "empty");

    return done_testing();
}
