/*
 * Endpoints of the three protocols (simple /predict, KServe V1, Open
 * Inference Protocol V2): method + target + body in, status + JSON out.
 * No sockets here, so unit tests drive it directly.
 */
#ifndef MLG_PROTOCOL_H
#define MLG_PROTOCOL_H

#include <stddef.h>

#include "buf.h"
#include "model.h"
#include "reqjson.h"

typedef struct {
    char         *name;
    char         *path;
    mlg_model_t  *model;
    int           refs;     /* registries holding this entry's model */
} mlg_served_model_t;

typedef struct {
    int                   refs;
    size_t                n;
    mlg_served_model_t  **models;   /* models[0] serves POST /predict */
} mlg_registry_t;

typedef struct {
    int          status;
    const char  *allow;      /* for 405 */
    mlg_buf_t    body;       /* JSON */
} mlg_response_t;

/* Per-thread scratch memory reused across requests. */
typedef struct {
    mlg_request_t   rq;
    double         *out;
    size_t          out_cap;
} mlg_scratch_t;

enum { MLG_GET = 1, MLG_POST, MLG_OTHER };

void mlg_handle(const mlg_registry_t *reg, mlg_scratch_t *sc, int method,
    const char *target, size_t target_len, const char *body, size_t body_len,
    mlg_response_t *resp);

void mlg_error(mlg_response_t *resp, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

const char *mlg_status_text(int status);

void mlg_scratch_free(mlg_scratch_t *sc);

#endif
