/*
 * Minimal TAP producer for the C unit tests, so `prove -r t` runs them
 * next to the Perl integration tests.  Header-only on purpose.
 */
#ifndef MLG_TAP_H
#define MLG_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_count;
static int tap_failed;

/* a test file need not use every helper: unused ones must not warn */
#define TAP_UNUSED __attribute__((unused))

#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
#define is_int(got, want, ...) \
    tap_is_int((long long) (got), (long long) (want), __FILE__, __LINE__, __VA_ARGS__)
#define is_str(got, want, ...) \
    tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)

/* Prints one result line; returns pass so callers can add diagnostics. */
TAP_UNUSED static int
tap_report(int pass, const char *file, int line, const char *fmt, va_list ap)
{
    tap_count++;
    printf("%sok %d - ", pass ? "" : "not ", tap_count);
    vprintf(fmt, ap);
    printf("\n");
    if (!pass) {
        tap_failed++;
        printf("#   Failed at %s line %d\n", file, line);
    }
    fflush(stdout);
    return pass;
}

TAP_UNUSED static int
tap_ok(int pass, const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    pass = tap_report(pass, file, line, fmt, ap);
    va_end(ap);
    return pass;
}

TAP_UNUSED static int
tap_is_int(long long got, long long want, const char *file, int line,
    const char *fmt, ...)
{
    va_list ap;
    int     pass;

    va_start(ap, fmt);
    pass = tap_report(got == want, file, line, fmt, ap);
    va_end(ap);
    if (!pass) {
        printf("#   got: %lld\n#   expected: %lld\n", got, want);
    }
    return pass;
}

TAP_UNUSED static int
tap_is_str(const char *got, const char *want, const char *file, int line,
    const char *fmt, ...)
{
    va_list ap;
    int     pass;

    pass = (got == NULL && want == NULL)
           || (got != NULL && want != NULL && strcmp(got, want) == 0);
    va_start(ap, fmt);
    pass = tap_report(pass, file, line, fmt, ap);
    va_end(ap);
    if (!pass) {
        printf("#   got: '%s'\n#   expected: '%s'\n",
               got ? got : "(null)", want ? want : "(null)");
    }
    return pass;
}

TAP_UNUSED static int
done_testing(void)
{
    printf("1..%d\n", tap_count);
    fflush(stdout);
    return tap_failed ? 1 : 0;
}

TAP_UNUSED static void
diag(const char *fmt, ...)
{
    va_list ap;

    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

#endif /* MLG_TAP_H */
