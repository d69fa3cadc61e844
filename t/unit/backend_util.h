/* Shared helpers for the backend's C unit tests. */
#ifndef MLG_BACKEND_UTIL_H
#define MLG_BACKEND_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* xorshift64: reproducible test data */
static uint64_t  rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t
rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static unsigned char *
slurp(const char *path, size_t *len)
{
    FILE           *f = fopen(path, "rb");
    unsigned char  *buf;
    long            n;

    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(n > 0 ? (size_t) n : 1);
    if (buf != NULL && fread(buf, 1, (size_t) n, f) != (size_t) n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t) n;
    return buf;
}

#endif
