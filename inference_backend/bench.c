/*
 * backend-bench MODEL ROWS.f32 [REPEAT]: times mlg_model_predict on float32
 * rows (raw, row-major, as numpy's tofile writes them) and prints ns/row for
 * batch sizes 1, 64 and all rows.  Used by scripts/bench-backend.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "model.h"

static double
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

int
main(int argc, char **argv)
{
    mlg_model_t  *m;
    char          err[MLG_ERR_LEN];
    FILE         *f;
    float        *x;
    double       *out, t0, best, sink = 0;
    long          size;
    size_t        rows, batch, r, done;
    int           rep, repeat, b;
    size_t        batches[] = { 1, 64, 0 };

    if (argc < 3) {
        fprintf(stderr, "usage: backend-bench MODEL ROWS.f32 [REPEAT]\n");
        return 2;
    }
    repeat = argc > 3 ? atoi(argv[3]) : 5;
    m = mlg_model_load_file(argv[1], NULL, err);
    if (m == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    f = fopen(argv[2], "rb");
    if (f == NULL) {
        perror(argv[2]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    rows = (size_t) size / (sizeof(float) * m->n_features);
    x = malloc((size_t) size);
    out = malloc(sizeof(double) * rows * m->n_outputs);
    if (rows == 0 || fread(x, 1, (size_t) size, f) != (size_t) size) {
        fprintf(stderr, "cannot read rows\n");
        return 1;
    }
    fclose(f);
    for (b = 0; b < 3; b++) {
        batch = batches[b] ? batches[b] : rows;
        best = 1e300;
        for (rep = 0; rep < repeat; rep++) {
            t0 = now_ns();
            for (r = 0, done = 0; r + batch <= rows; r += batch, done += batch) {
                mlg_model_predict(m, x + r * m->n_features, batch, out);
                sink += out[0];
            }
            t0 = (now_ns() - t0) / (double) done;
            best = t0 < best ? t0 : best;
        }
        printf("batch %zu: %.1f ns/row\n", batch, best);
    }
    fprintf(stderr, "(checksum %g)\n", sink);
    mlg_model_free(m);
    free(x);
    free(out);
    return 0;
}
