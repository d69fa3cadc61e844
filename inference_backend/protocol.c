#include "protocol.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKEND_VERSION "1.0.0"

const char *
mlg_status_text(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default:  return "Unknown";
    }
}

void
mlg_error(mlg_response_t *resp, int status, const char *fmt, ...)
{
    char     msg[512];
    va_list  ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    resp->status = status;
    mlg_buf_reset(&resp->body);
    mlg_buf_adds(&resp->body, "{\"error\":");
    mlg_json_str(&resp->body, msg, strlen(msg));
    mlg_buf_adds(&resp->body, "}");
}

void
mlg_scratch_free(mlg_scratch_t *sc)
{
    free(sc->rq.x);
    free(sc->out);
    memset(sc, 0, sizeof(*sc));
}

static const mlg_served_model_t *
find_model(const mlg_registry_t *reg, const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < reg->n; i++) {
        if (strlen(reg->models[i]->name) == len
            && memcmp(reg->models[i]->name, name, len) == 0)
        {
            return reg->models[i];
        }
    }
    return NULL;
}

static void
unknown_model(mlg_response_t *resp, const char *name, size_t len)
{
    mlg_error(resp, 404, "unknown model \"%.*s\"", (int) (len > 100 ? 100 : len),
              name);
}

typedef int (*parse_fn)(mlg_request_t *rq, const char *body, size_t len);

/*
 * Parses the body, checks the feature count and evaluates into sc->out.
 * 0 (status 200) or -1 with the error response set.
 */
static int
parse_and_run(const mlg_served_model_t *sm, mlg_scratch_t *sc,
    mlg_response_t *resp, parse_fn parse, const char *body, size_t len,
    const char *field)
{
    const mlg_model_t  *m = sm->model;
    size_t              need;
    double             *out;

    if (parse(&sc->rq, body, len) != 0) {
        mlg_error(resp, 400, "%s", sc->rq.err);
        return -1;
    }
    if (sc->rq.cols != m->n_features) {
        mlg_error(resp, 400, "wrong feature count: %s rows have %zu values, "
                  "model \"%s\" expects %u", field, sc->rq.cols, sm->name,
                  m->n_features);
        return -1;
    }
    need = sc->rq.rows * m->n_outputs;
    if (need > sc->out_cap) {
        out = realloc(sc->out, need * sizeof(double));
        if (out == NULL) {
            mlg_error(resp, 500, "out of memory");
            return -1;
        }
        sc->out = out;
        sc->out_cap = need;
    }
    mlg_model_predict(m, sc->rq.x, sc->rq.rows, sc->out);
    resp->status = 200;
    return 0;
}

static void
emit_labels(mlg_buf_t *b, const mlg_model_t *m, const double *out, size_t rows)
{
    size_t       r;
    uint32_t     k;
    const char  *label;

    mlg_buf_addc(b, '[');
    for (r = 0; r < rows; r++) {
        if (r > 0) {
            mlg_buf_addc(b, ',');
        }
        if (m->kind == MLG_KIND_REGRESSOR) {
            mlg_json_double(b, out[r]);
            continue;
        }
        k = mlg_argmax(out + r * m->n_outputs, m->n_outputs);
        label = m->labels[k];
        if (m->numeric_labels) {
            mlg_buf_adds(b, label);
        } else {
            mlg_json_str(b, label, strlen(label));
        }
    }
    mlg_buf_addc(b, ']');
}

/* nested: [[p, p], [p, p]]; otherwise flat (OIP data) */
static void
emit_proba(mlg_buf_t *b, const mlg_model_t *m, const double *out, size_t rows,
    int nested)
{
    size_t    r;
    uint32_t  c;

    mlg_buf_addc(b, '[');
    for (r = 0; r < rows; r++) {
        if (r > 0) {
            mlg_buf_addc(b, ',');
        }
        if (nested) {
            mlg_buf_addc(b, '[');
        }
        for (c = 0; c < m->n_outputs; c++) {
            if (c > 0) {
                mlg_buf_addc(b, ',');
            }
            mlg_json_double(b, out[r * m->n_outputs + c]);
        }
        if (nested) {
            mlg_buf_addc(b, ']');
        }
    }
    mlg_buf_addc(b, ']');
}

static int
query_flag(const char *q, size_t qlen, const char *name)
{
    size_t       nlen = strlen(name);
    const char  *p = q, *end = q + qlen, *amp, *v;
    size_t       vlen;

    while (p < end) {
        amp = memchr(p, '&', (size_t) (end - p));
        if (amp == NULL) {
            amp = end;
        }
        if ((size_t) (amp - p) > nlen && memcmp(p, name, nlen) == 0
            && p[nlen] == '=')
        {
            v = p + nlen + 1;
            vlen = (size_t) (amp - v);
            return (vlen == 4 && memcmp(v, "true", 4) == 0)
                   || (vlen == 1 && v[0] == '1');
        }
        p = amp + 1;
    }
    return 0;
}

static void
predict_simple(const mlg_registry_t *reg, mlg_scratch_t *sc, const char *query,
    size_t qlen, const char *body, size_t len, mlg_response_t *resp)
{
    const mlg_served_model_t  *sm = reg->models[0];
    mlg_buf_t                 *b = &resp->body;

    if (parse_and_run(sm, sc, resp, mlg_parse_simple, body, len, "input") != 0) {
        return;
    }
    mlg_buf_adds(b, "{\"prediction\":");
    emit_labels(b, sm->model, sc->out, sc->rq.rows);
    if (sm->model->kind == MLG_KIND_CLASSIFIER
        && query_flag(query, qlen, "probabilities"))
    {
        mlg_buf_adds(b, ",\"probabilities\":");
        emit_proba(b, sm->model, sc->out, sc->rq.rows, 1);
    }
    mlg_buf_addc(b, '}');
}

static void
predict_v1(const mlg_served_model_t *sm, mlg_scratch_t *sc, const char *body,
    size_t len, mlg_response_t *resp)
{
    mlg_buf_t  *b = &resp->body;

    if (parse_and_run(sm, sc, resp, mlg_parse_v1, body, len, "instances") != 0) {
        return;
    }
    mlg_buf_adds(b, "{\"predictions\":");
    emit_labels(b, sm->model, sc->out, sc->rq.rows);
    mlg_buf_addc(b, '}');
}

static const char *
label_datatype(const mlg_model_t *m)
{
    if (m->kind == MLG_KIND_REGRESSOR) {
        return "FP64";
    }
    if (!m->numeric_labels) {
        return "BYTES";
    }
    return "INT64";
}

static int
labels_are_integers(const mlg_model_t *m)
{
    uint32_t  i;

    for (i = 0; i < m->n_outputs; i++) {
        if (strpbrk(m->labels[i], ".eE") != NULL) {
            return 0;
        }
    }
    return 1;
}

static void
predict_v2(const mlg_served_model_t *sm, mlg_scratch_t *sc, const char *body,
    size_t len, mlg_response_t *resp)
{
    const mlg_model_t  *m = sm->model;
    mlg_buf_t          *b = &resp->body;
    const char         *dt;
    int                 first = 1;

    if (parse_and_run(sm, sc, resp, mlg_parse_v2, body, len, "inputs[0]") != 0) {
        return;
    }
    mlg_buf_adds(b, "{\"model_name\":");
    mlg_json_str(b, sm->name, strlen(sm->name));
    mlg_buf_adds(b, ",\"model_version\":\"1\"");
    if (sc->rq.has_id) {
        mlg_buf_adds(b, ",\"id\":");
        mlg_json_str(b, sc->rq.id, sc->rq.id_len);
    }
    mlg_buf_adds(b, ",\"outputs\":[");
    if (sc->rq.want_label || m->kind == MLG_KIND_REGRESSOR) {
        dt = label_datatype(m);
        if (m->kind == MLG_KIND_CLASSIFIER && m->numeric_labels
            && !labels_are_integers(m))
        {
            dt = "FP64";
        }
        mlg_buf_adds(b, "{\"name\":\"predict\",\"datatype\":\"");
        mlg_buf_adds(b, dt);
        mlg_buf_adds(b, "\",\"shape\":[");
        mlg_json_u64(b, sc->rq.rows);
        mlg_buf_adds(b, "],\"data\":");
        emit_labels(b, m, sc->out, sc->rq.rows);
        mlg_buf_addc(b, '}');
        first = 0;
    }
    if (sc->rq.want_proba && m->kind == MLG_KIND_CLASSIFIER) {
        if (!first) {
            mlg_buf_addc(b, ',');
        }
        mlg_buf_adds(b, "{\"name\":\"predict_proba\",\"datatype\":\"FP64\","
                     "\"shape\":[");
        mlg_json_u64(b, sc->rq.rows);
        mlg_buf_addc(b, ',');
        mlg_json_u64(b, m->n_outputs);
        mlg_buf_adds(b, "],\"data\":");
        emit_proba(b, m, sc->out, sc->rq.rows, 0);
        mlg_buf_addc(b, '}');
    }
    mlg_buf_adds(b, "]}");
}

static void
metadata_v2(const mlg_served_model_t *sm, mlg_response_t *resp)
{
    const mlg_model_t  *m = sm->model;
    mlg_buf_t          *b = &resp->body;
    const char         *dt = label_datatype(m);

    if (m->kind == MLG_KIND_CLASSIFIER && m->numeric_labels
        && !labels_are_integers(m))
    {
        dt = "FP64";
    }
    resp->status = 200;
    mlg_buf_adds(b, "{\"name\":");
    mlg_json_str(b, sm->name, strlen(sm->name));
    mlg_buf_adds(b, ",\"versions\":[\"1\"],\"platform\":\"ml-guard-forest\","
                 "\"inputs\":[{\"name\":\"input-0\",\"datatype\":\"FP32\","
                 "\"shape\":[-1,");
    mlg_json_u64(b, m->n_features);
    mlg_buf_adds(b, "]}],\"outputs\":[{\"name\":\"predict\",\"datatype\":\"");
    mlg_buf_adds(b, dt);
    mlg_buf_adds(b, "\",\"shape\":[-1]}");
    if (m->kind == MLG_KIND_CLASSIFIER) {
        mlg_buf_adds(b, ",{\"name\":\"predict_proba\",\"datatype\":\"FP64\","
                     "\"shape\":[-1,");
        mlg_json_u64(b, m->n_outputs);
        mlg_buf_adds(b, "]}");
    }
    mlg_buf_adds(b, "],\"parameters\":{\"kind\":\"");
    mlg_buf_adds(b, m->kind == MLG_KIND_CLASSIFIER ? "classifier" : "regressor");
    mlg_buf_adds(b, "\",\"trees\":");
    mlg_json_u64(b, m->n_trees);
    if (m->kind == MLG_KIND_CLASSIFIER) {
        uint32_t  i;

        mlg_buf_adds(b, ",\"classes\":[");
        for (i = 0; i < m->n_outputs; i++) {
            if (i > 0) {
                mlg_buf_addc(b, ',');
            }
            if (m->numeric_labels) {
                mlg_buf_adds(b, m->labels[i]);
            } else {
                mlg_json_str(b, m->labels[i], strlen(m->labels[i]));
            }
        }
        mlg_buf_addc(b, ']');
    }
    mlg_buf_adds(b, "}}");
}

static int
method_is(int method, int want, mlg_response_t *resp)
{
    if (method == want) {
        return 1;
    }
    resp->allow = want == MLG_GET ? "GET" : "POST";
    mlg_error(resp, 405, "method not allowed: use %s", resp->allow);
    return 0;
}

static int
starts(const char *p, size_t len, const char *prefix)
{
    size_t  n = strlen(prefix);

    return len >= n && memcmp(p, prefix, n) == 0;
}

static int
equals(const char *p, size_t len, const char *s)
{
    return strlen(s) == len && memcmp(p, s, len) == 0;
}

void
mlg_handle(const mlg_registry_t *reg, mlg_scratch_t *sc, int method,
    const char *target, size_t target_len, const char *body, size_t body_len,
    mlg_response_t *resp)
{
    const mlg_served_model_t  *sm;
    const char                *path = target, *query, *name, *rest, *slash;
    size_t                     plen, qlen = 0, nlen, rlen;

    resp->status = 500;
    resp->allow = NULL;
    mlg_buf_reset(&resp->body);

    query = memchr(target, '?', target_len);
    if (query != NULL) {
        plen = (size_t) (query - target);
        query++;
        qlen = target_len - plen - 1;
    } else {
        plen = target_len;
        query = "";
    }

    if (equals(path, plen, "/predict")) {
        if (method_is(method, MLG_POST, resp)) {
            predict_simple(reg, sc, query, qlen, body, body_len, resp);
        }
        return;
    }

    if (starts(path, plen, "/v1/models/")) {
        name = path + 11;
        nlen = plen - 11;
        rest = memchr(name, ':', nlen);
        if (rest != NULL) {
            if (!equals(rest, (size_t) (path + plen - rest), ":predict")) {
                mlg_error(resp, 404, "no such endpoint: %.*s", (int) plen, path);
                return;
            }
            nlen = (size_t) (rest - name);
        }
        sm = find_model(reg, name, nlen);
        if (sm == NULL) {
            unknown_model(resp, name, nlen);
            return;
        }
        if (rest != NULL) {
            if (method_is(method, MLG_POST, resp)) {
                predict_v1(sm, sc, body, body_len, resp);
            }
        } else if (method_is(method, MLG_GET, resp)) {
            resp->status = 200;
            mlg_buf_adds(&resp->body, "{\"name\":");
            mlg_json_str(&resp->body, sm->name, strlen(sm->name));
            mlg_buf_adds(&resp->body, ",\"ready\":true}");
        }
        return;
    }

    if (equals(path, plen, "/v2/health/live") || equals(path, plen, "/v2/health/ready")) {
        if (method_is(method, MLG_GET, resp)) {
            resp->status = 200;
            mlg_buf_adds(&resp->body, path[11] == 'l' ? "{\"live\":true}"
                                                      : "{\"ready\":true}");
        }
        return;
    }

    if (equals(path, plen, "/v2")) {
        if (method_is(method, MLG_GET, resp)) {
            resp->status = 200;
            mlg_buf_adds(&resp->body, "{\"name\":\"ml-guard-backend\",\"version\":\""
                         BACKEND_VERSION "\",\"extensions\":[]}");
        }
        return;
    }

    if (starts(path, plen, "/v2/models/")) {
        name = path + 11;
        slash = memchr(name, '/', plen - 11);
        nlen = slash != NULL ? (size_t) (slash - name) : plen - 11;
        rest = name + nlen;
        rlen = plen - 11 - nlen;
        sm = find_model(reg, name, nlen);
        if (sm == NULL) {
            unknown_model(resp, name, nlen);
            return;
        }
        /* /versions/1 is the only version there is */
        if (starts(rest, rlen, "/versions/")) {
            if (!(rlen >= 11 && rest[10] == '1' && (rlen == 11 || rest[11] == '/'))) {
                mlg_error(resp, 404, "model \"%s\" has only version 1", sm->name);
                return;
            }
            rest += 11;
            rlen -= 11;
        }
        if (rlen == 0) {
            if (method_is(method, MLG_GET, resp)) {
                metadata_v2(sm, resp);
            }
        } else if (equals(rest, rlen, "/ready")) {
            if (method_is(method, MLG_GET, resp)) {
                resp->status = 200;
                mlg_buf_adds(&resp->body, "{\"name\":");
                mlg_json_str(&resp->body, sm->name, strlen(sm->name));
                mlg_buf_adds(&resp->body, ",\"ready\":true}");
            }
        } else if (equals(rest, rlen, "/infer")) {
            if (method_is(method, MLG_POST, resp)) {
                predict_v2(sm, sc, body, body_len, resp);
            }
        } else {
            mlg_error(resp, 404, "no such endpoint: %.*s",
                      (int) (plen > 200 ? 200 : plen), path);
        }
        return;
    }

    mlg_error(resp, 404, "no such endpoint: %.*s", (int) (plen > 200 ? 200 : plen),
              path);
}
