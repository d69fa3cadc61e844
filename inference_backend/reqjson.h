/*
 * Request bodies of the three protocols, read without building a JSON tree:
 * a strict scanner that skips what it does not need and parses numeric
 * arrays straight into float32 rows (cast from double, as scikit-learn does).
 */
#ifndef MLG_REQJSON_H
#define MLG_REQJSON_H

#include <stddef.h>

#define MLG_REQ_ERR_LEN  256
#define MLG_JSON_MAX_DEPTH 64

typedef struct {
    float   *x;           /* rows * cols float32, row-major */
    size_t   cap;         /* floats allocated in x (reused across requests) */
    size_t   rows;
    size_t   cols;
    int      want_proba;  /* V2: "predict_proba" requested in "outputs" */
    int      want_label;  /* V2: "predict" requested (or no "outputs") */
    char     id[128];     /* V2: request "id", decoded UTF-8, echoed; */
    size_t   id_len;      /* at most 127 bytes (whole code points) */
    int      has_id;
    char     err[MLG_REQ_ERR_LEN];
} mlg_request_t;

/* body must be NUL-terminated at body[len].  0 = ok, -1 = err set. */
int mlg_parse_simple(mlg_request_t *rq, const char *body, size_t len);
int mlg_parse_v1(mlg_request_t *rq, const char *body, size_t len);
int mlg_parse_v2(mlg_request_t *rq, const char *body, size_t len);

/* strtod of the n-byte JSON number at s, with a fast exact path. */
double mlg_parse_double(const char *s, size_t n);

/* (float) strtod(s) of the n-byte JSON number at s, faster. */
float mlg_parse_float32(const char *s, size_t n);

#endif
