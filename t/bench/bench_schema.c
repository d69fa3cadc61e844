/*
 * Validations per second of mlg_schema, and of the whole per-request JSON
 * work (pre-scan + strict parse + validate), for the shipped iris schema
 * and a generated 100-feature schema with per-feature ranges.
 * Built and run by scripts/bench-schema:  bench_schema ROOT [SECONDS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mlg_json.h"
#include "mlg_schema.h"

static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
bench(const char *name, const mlg_schema_t *schema, const char *body,
    double seconds)
{
    json_t               *doc;
    mlg_schema_errors_t   errs;
    char                  err[256];
    double                t0, t;
    long                  n, i, batch = 1000;

    doc = mlg_json_parse(body, strlen(body), 32, err, sizeof(err));
    if (doc == NULL || !mlg_schema_validate(schema, doc, &errs)) {
        fprintf(stderr, "%s: instance not valid (%s)\n", name,
                doc ? errs.errors[0].message : err);
        exit(1);
    }

    n = 0;
    t0 = now();
    do {
        for (i = 0; i < batch; i++) {
            n += mlg_schema_validate(schema, doc, &errs);
        }
        t = now() - t0;
    } while (t < seconds);
    printf("%-34s validate          %10.0f /s  (%6.2f us)\n", name, n / t,
           t / n * 1e6);
    json_decref(doc);

    n = 0;
    t0 = now();
    do {
        for (i = 0; i < batch; i++) {
            doc = mlg_json_parse(body, strlen(body), 32, err, sizeof(err));
            n += mlg_schema_validate(schema, doc, &errs);
            json_decref(doc);
        }
        t = now() - t0;
    } while (t < seconds);
    printf("%-34s parse+validate    %10.0f /s  (%6.2f us, %zu-byte body)\n",
           name, n / t, t / n * 1e6, strlen(body));

    /* the same with jansson's values in the arena, as the nginx glue does */
    n = 0;
    t0 = now();
    do {
        for (i = 0; i < batch; i++) {
            mlg_json_arena_begin();
            doc = mlg_json_parse(body, strlen(body), 32, err, sizeof(err));
            n += mlg_schema_validate(schema, doc, &errs);
            json_decref(doc);
            mlg_json_arena_end();
        }
        t = now() - t0;
    } while (t < seconds);
    printf("%-34s  ... in the arena %10.0f /s  (%6.2f us)\n", name, n / t,
           t / n * 1e6);
}

int
main(int argc, char **argv)
{
    char           path[4096], err[512], *buf;
    double         seconds = argc > 2 ? atof(argv[2]) : 1.0;
    mlg_schema_t  *iris, *wide;
    json_t        *sj, *prefix;
    size_t         n, i;

    if (mlg_json_arena_init(256 * 1024) != 0) {
        return 1;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: bench_schema ROOT [SECONDS]\n");
        return 2;
    }
    snprintf(path, sizeof(path), "%s/conf/schemas/iris.json", argv[1]);
    iris = mlg_schema_load(path, err, sizeof(err));
    if (iris == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    /* 100 features, each a number with its own range */
    prefix = json_array();
    for (i = 0; i < 100; i++) {
        json_array_append_new(prefix, json_pack("{s:s,s:i,s:i}", "type",
                                                "number", "minimum",
                                                -1000 - (int) i, "maximum",
                                                1000 + (int) i));
    }
    sj = json_pack("{s:s,s:{s:{s:s,s:o,s:b,s:i}},s:[s],s:b}",
                   "type", "object", "properties", "input", "type", "array",
                   "prefixItems", prefix, "items", 0, "minItems", 100,
                   "required", "input", "additionalProperties", 0);
    wide = mlg_schema_compile(sj, err, sizeof(err));
    json_decref(sj);
    if (wide == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    bench("iris, 1 row", iris, "{\"input\": [5.1, 3.5, 1.4, 0.2]}", seconds);

    buf = malloc(64 * 1024);
    n = (size_t) sprintf(buf, "{\"input\": [");
    for (i = 0; i < 100; i++) {
        n += (size_t) sprintf(buf + n, "%s[5.1, 3.5, 1.4, 0.2]", i ? ", " : "");
    }
    sprintf(buf + n, "]}");
    bench("iris, batch of 100 rows", iris, buf, seconds);

    n = (size_t) sprintf(buf, "{\"input\": [");
    for (i = 0; i < 100; i++) {
        n += (size_t) sprintf(buf + n, "%s%.3f", i ? ", " : "",
                              (double) i * 7.31 - 300);
    }
    sprintf(buf + n, "]}");
    bench("100 features with ranges, 1 row", wide, buf, seconds);

    free(buf);
    mlg_schema_free(iris);
    mlg_schema_free(wide);
    return 0;
}
