/*
 * libFuzzer target for request handling: the first byte picks an endpoint,
 * the rest is the body, answered by the iris model (conf/models/iris.mlgf,
 * run from the repo root).  Every response body must be valid UTF-8.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static mlg_served_model_t   served;
static mlg_served_model_t  *served_list[1] = { &served };
static mlg_registry_t       reg = { 1, 1, served_list };
static mlg_scratch_t        scratch;
static mlg_response_t       resp;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char  *targets[] = {
        "/predict?probabilities=true", "/v1/models/iris:predict",
        "/v2/models/iris/infer", "/predict"
    };
    const char         *t;
    char               *body, err[MLG_ERR_LEN];
    size_t              i, k;

    if (served.model == NULL) {
        served.name = "iris";
        served.model = mlg_model_load_file("conf/models/iris.mlgf", NULL, err);
        if (served.model == NULL) {
            fprintf(stderr, "%s\n", err);
            abort();
        }
    }
    if (size == 0) {
        return 0;
    }
    t = targets[data[0] % 4];
    body = malloc(size);
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';
    mlg_handle(&reg, &scratch, MLG_POST, t, strlen(t), body, size - 1, &resp);
    free(body);
    for (i = 0; i < resp.body.len; i += k) {
        k = mlg_utf8_len((const unsigned char *) resp.body.data + i,
                         (const unsigned char *) resp.body.data + resp.body.len);
        if (k == 0) {
            fprintf(stderr, "response not UTF-8 at byte %zu\n", i);
            abort();
        }
    }
    return 0;
}
