/* Unit tests for inference_backend/model.c: thresholds, loader validation. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "backend_util.h"
#include "tap.h"

static void
test_thresholds(void)
{
    int     i, k, bad = 0;
    double  thr;
    float   t, x;

    /* midpoints of float32 neighbours (what sklearn stores) and random doubles */
    for (i = 0; i < 200000 && bad == 0; i++) {
        float  a;

        do {
            uint32_t  bits = (uint32_t) rnd();

            memcpy(&a, &bits, sizeof(a));
        } while (!isfinite(a) || !isfinite(nextafterf(a, INFINITY)));
        thr = (i & 1) ? ((double) a + (double) nextafterf(a, INFINITY)) / 2
                      : (double) a * (1 + ((double) (rnd() % 1000) - 500) * 1e-12);
        t = mlg_threshold_f32(thr);
        x = (float) thr;
        /* float32 values around the threshold */
        x = nextafterf(nextafterf(x, -INFINITY), -INFINITY);
        for (k = 0; k < 5; k++, x = nextafterf(x, INFINITY)) {
            if (((double) x <= thr) != (x <= t)) {
                bad++;
                diag("thr %.17g x %.9g t %.9g", thr, (double) x, (double) t);
            }
        }
    }
    is_int(bad, 0, "x <= t32 agrees with (double) x <= thr around 200000 thresholds");
    ok(mlg_threshold_f32(1e300) == 3.40282347e38f, "huge threshold -> FLT_MAX");
    ok(mlg_threshold_f32(0.1) < 0.1f, "0.1 rounds up in float32, so t32 is one step below");
    ok(mlg_threshold_f32(0.5) == 0.5f, "exact float32 threshold kept");
}

static void
test_argmax(void)
{
    double  v[] = { 0.25, 0.5, 0.5, 0.1 };

    is_int(mlg_argmax(v, 4), 1, "argmax: first maximum wins (numpy)");
    is_int(mlg_argmax(v, 1), 0, "argmax of one value");
}

static void
test_loader(void)
{
    unsigned char  *buf, *copy;
    size_t          len = 0, i, refused = 0, parsed = 0;
    mlg_model_t    *m;
    char            err[MLG_ERR_LEN];
    float           setosa[4] = { 5.1f, 3.5f, 1.4f, 0.2f };
    double          out[3];
    int             b;

    buf = slurp("conf/models/iris.mlgf", &len);
    if (!ok(buf != NULL, "read conf/models/iris.mlgf (run from the repo root)")) {
        return;
    }
    m = mlg_model_parse(buf, len, 0, err);
    if (ok(m != NULL, "iris model parses")) {
        is_int(m->kind, MLG_KIND_CLASSIFIER, "classifier");
        is_int(m->n_features, 4, "4 features");
        is_int(m->n_outputs, 3, "3 classes");
        is_int(m->n_trees, 100, "100 trees");
        is_str(m->labels[2], "2", "numeric label text");
        mlg_model_predict(m, setosa, 1, out);
        ok(out[0] == 1.0 && out[1] == 0.0, "setosa row -> class 0 with p=1");
        mlg_model_free(m);
    }

    copy = malloc(len);
    for (i = 0; i < len; i++) {
        m = mlg_model_parse(buf, i, 0, err);
        refused += m == NULL;
        mlg_model_free(m);
    }
    is_int(refused, len, "every truncation refused");
    m = mlg_model_parse(buf, 100, 0, err);
    ok(strstr(err, "truncated") != NULL, "truncation error says so: %s", err);

    /* flipped bytes (every 13th position) are caught by the checksum */
    refused = 0;
    for (i = 0; i < len; i += 13) {
        memcpy(copy, buf, len);
        copy[i] ^= 0x20;
        m = mlg_model_parse(copy, len, 0, err);
        refused += m == NULL;
        mlg_model_free(m);
    }
    is_int(refused, (len + 12) / 13, "every flipped byte refused");

    /* without the checksum, structural validation alone must hold: flip
     * each byte of header, tree table and nodes in several ways */
    refused = parsed = 0;
    for (i = 0; i < len - 32; i++) {
        for (b = (int) (i % 3); b < 8; b += 3) {
            memcpy(copy, buf, len);
            copy[i] ^= (unsigned char) (1u << b);
            m = mlg_model_parse(copy, len, MLG_PARSE_SKIP_CHECKSUM, err);
            if (m != NULL) {
                double  o[3];

                mlg_model_predict(m, setosa, 1, o);   /* must stay in bounds */
                parsed++;
            } else {
                refused++;
            }
            mlg_model_free(m);
        }
    }
    ok(refused > 0 && parsed > 0, "bit flips without checksum: %zu refused, %zu "
       "harmless (thresholds/values) evaluated in bounds", refused, parsed);

    memcpy(copy, buf, len);
    copy[6] = 9;
    m = mlg_model_parse(copy, len, MLG_PARSE_SKIP_CHECKSUM, err);
    is_str(err, "unknown model kind 9", "bad kind named");
    memcpy(copy, buf, len);
    copy[4] = 2;
    m = mlg_model_parse(copy, len, MLG_PARSE_SKIP_CHECKSUM, err);
    ok(m == NULL && strstr(err, "version 2") != NULL, "future version refused: %s", err);
    m = mlg_model_parse((const unsigned char *) "MLGS", 4, 0, err);
    ok(m == NULL && strstr(err, "--model-key") != NULL, "sealed file without key: %s", err);

    free(copy);
    free(buf);
}

static void
test_unseal_errors(void)
{
    unsigned char  buf[64], key[32];
    size_t         n;
    char           err[MLG_ERR_LEN];

    memset(buf, 0, sizeof(buf));
    memset(key, 1, sizeof(key));
    memcpy(buf, "MLGS", 4);
    buf[4] = 1;
    buf[20] = 16;   /* ciphertext length 16: 32 + 16 + 16 = 64 bytes */
    ok(mlg_unseal(buf, sizeof(buf), key, &n, err) == NULL
       && strstr(err, "failed authentication") != NULL, "zero tag fails: %s", err);
    buf[20] = 17;
    ok(mlg_unseal(buf, sizeof(buf), key, &n, err) == NULL
       && strstr(err, "truncated") != NULL, "length mismatch: %s", err);
    ok(mlg_unseal(buf, 40, key, &n, err) == NULL, "short sealed file refused");
    ok(mlg_read_key_file("/nonexistent/key", key, err) != 0
       && strstr(err, "cannot open") != NULL, "missing key file: %s", err);
}

int
main(void)
{
    test_thresholds();
    test_argmax();
    test_loader();
    test_unseal_errors();
    return done_testing();
}
