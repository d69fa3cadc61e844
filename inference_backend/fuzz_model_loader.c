/*
 * libFuzzer target for the model loader: any bytes must be refused with an
 * error or give a model that evaluates within bounds.  The checksum is
 * skipped so the fuzzer reaches the structural checks behind it.  Inputs
 * starting with "MLGS" also go through the unsealing path.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char  key[32] = { 1, 2, 3 };
    mlg_model_t                *m;
    unsigned char              *plain;
    char                        err[MLG_ERR_LEN];
    size_t                      n;
    float                      *x;
    double                     *out;
    uint32_t                    i;

    if (mlg_is_sealed(data, size)) {
        plain = mlg_unseal(data, size, key, &n, err);
        free(plain);
        return 0;
    }
    m = mlg_model_parse(data, size, MLG_PARSE_SKIP_CHECKSUM, err);
    if (m == NULL) {
        return 0;
    }
    if (m->n_features <= 4096 && m->n_outputs <= 4096) {
        x = malloc(sizeof(float) * m->n_features * 5);
        out = malloc(sizeof(double) * m->n_outputs * 5);
        for (i = 0; i < m->n_features * 5; i++) {
            x[i] = (float) ((int) (i * 2654435761u % 2001) - 1000) / 100.0f;
        }
        mlg_model_predict(m, x, 5, out);
        (void) mlg_argmax(out, m->n_outputs);
        free(x);
        free(out);
    }
    mlg_model_free(m);
    return 0;
}
