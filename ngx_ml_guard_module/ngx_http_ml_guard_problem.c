/*
 * Denials as application/problem+json (RFC 9457).
 *
 * A step denies by calling ngx_http_ml_guard_deny(), which records the
 * reason in the ctx and returns the status for the access handler to
 * return.  nginx then finalizes the request as usual (discarding the body,
 * keepalive, lingering close) and produces its special response; the header
 * and body filters below replace that HTML page with our JSON document.
 * The same filters turn nginx's own 413 (client_max_body_size) in an
 * ml_guard location into a body_too_large problem.
 */

#include "ngx_http_ml_guard_module.h"

#include <jansson.h>


typedef struct {
    const char  *name;
    ngx_uint_t   status;
    const char  *title;
} ngx_http_ml_guard_reason_t;


static ngx_int_t ngx_http_ml_guard_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_ml_guard_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_ml_guard_problem_render(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx);
static ngx_int_t ngx_http_ml_guard_problem_headers(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx);
static ngx_int_t ngx_http_ml_guard_upstream_error(ngx_http_request_t *r);
static void ngx_http_ml_guard_errors_cleanup(void *data);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static ngx_http_ml_guard_reason_t  ngx_http_ml_guard_reasons[] = {
    { "", 200, "" },
    { "missing_credentials", NGX_HTTP_UNAUTHORIZED, "Missing credentials" },
    { "invalid_api_key", NGX_HTTP_UNAUTHORIZED, "Invalid API key" },
    { "invalid_token", NGX_HTTP_UNAUTHORIZED, "Invalid bearer token" },
    { "token_expired", NGX_HTTP_UNAUTHORIZED, "Token expired" },
    { "token_not_yet_valid", NGX_HTTP_UNAUTHORIZED, "Token not yet valid" },
    { "token_claims", NGX_HTTP_UNAUTHORIZED, "Token claims not accepted" },
    { "invalid_client_certificate", NGX_HTTP_UNAUTHORIZED,
      "Invalid client certificate" },
    { "role_denied", NGX_HTTP_FORBIDDEN, "Role required" },
    { "body_too_large", NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
      "Request body too large" },
    { "malformed_json", NGX_HTTP_BAD_REQUEST, "Malformed JSON" },
    { "unsupported_media_type", NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
      "Unsupported media type" },
    { "schema_violation", 422, "Schema violation" },
    { "rate_limited", NGX_HTTP_TOO_MANY_REQUESTS, "Rate limit exceeded" },
    { "locked_out", NGX_HTTP_TOO_MANY_REQUESTS, "Locked out" },
    { "limiter_unavailable", NGX_HTTP_SERVICE_UNAVAILABLE,
      "Rate limiter unavailable" },
    { "upstream_unavailable", NGX_HTTP_BAD_GATEWAY, "Model server unavailable" },
    { "upstream_timeout", NGX_HTTP_GATEWAY_TIME_OUT, "Model server timeout" },
};


const char *
ngx_http_ml_guard_reason_name(ngx_http_ml_guard_reason_e reason)
{
    if (reason >= MLG_REASON_MAX) {
        return "";
    }

    return ngx_http_ml_guard_reasons[reason].name;
}


ngx_int_t
ngx_http_ml_guard_problem_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_ml_guard_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_ml_guard_body_filter;

    return NGX_OK;
}


ngx_int_t
ngx_http_ml_guard_add_header(ngx_http_request_t *r, const char *name,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;     /* nginx >= 1.23 chains headers of one name */
#endif
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value = *value;
#if (nginx_version >= 1023000)
    /* headers of one name are chained from 1.23 on; this one stands alone */
    h->next = NULL;
#endif

    return NGX_OK;
}


/* RFC 9110 challenges for the methods accepted here. */
static ngx_int_t
ngx_http_ml_guard_challenge(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx)
{
    ngx_uint_t                         i, methods;
    ngx_http_ml_guard_main_conf_t     *mcf;
    ngx_http_ml_guard_auth_method_t  **m;

    methods = ngx_http_ml_guard_auth_methods(r);

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ml_guard_module);
    m = mcf->methods.elts;

    for (i = 0; i < mcf->methods.nelts; i++) {
        if ((methods & m[i]->bit) && m[i]->challenge != NULL
            && m[i]->challenge(r, ctx, methods == m[i]->bit) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_ml_guard_deny(ngx_http_request_t *r, ngx_http_ml_guard_ctx_t *ctx,
    ngx_http_ml_guard_reason_e reason, const char *fmt, ...)
{
    u_char      *p, buf[NGX_MAX_ERROR_STR];
    va_list      args;
    ngx_str_t    v;
    ngx_uint_t   status;

    status = ngx_http_ml_guard_reasons[reason].status;

    ctx->decision = 2;
    ctx->reason = reason;
    ctx->status = status;
    ctx->problem_swap = 1;

    va_start(args, fmt);
    p = ngx_vslprintf(buf, buf + sizeof(buf), fmt, args);
    va_end(args);

    ctx->detail.len = p - buf;
    ctx->detail.data = ngx_pnalloc(r->pool, ctx->detail.len);
    if (ctx->detail.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    ngx_memcpy(ctx->detail.data, buf, ctx->detail.len);

    if (status == NGX_HTTP_UNAUTHORIZED) {
        if (ngx_http_ml_guard_challenge(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (ctx->retry_after > 0
        && (status == NGX_HTTP_TOO_MANY_REQUESTS
            || status == NGX_HTTP_SERVICE_UNAVAILABLE))
    {
        v.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (v.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        v.len = ngx_sprintf(v.data, "%T", ctx->retry_after) - v.data;

        if (ngx_http_ml_guard_add_header(r, "Retry-After", &v) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    ngx_http_ml_guard_metrics_decision(ctx);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "ml_guard: denied %ui %s: %V",
                  status, ngx_http_ml_guard_reasons[reason].name, &ctx->detail);

    return status;
}


void
ngx_http_ml_guard_set_errors(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, void *errors)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        json_decref(errors);
        return;
    }

    cln->handler = ngx_http_ml_guard_errors_cleanup;
    cln->data = errors;

    ctx->errors = errors;
}


static void
ngx_http_ml_guard_errors_cleanup(void *data)
{
    json_decref(data);
}


static ngx_int_t
ngx_http_ml_guard_problem_render(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx)
{
    char                        *text, type[128];
    json_t                      *doc;
    ngx_http_ml_guard_reason_t  *rs;

    rs = &ngx_http_ml_guard_reasons[ctx->reason];

    ngx_snprintf((u_char *) type, sizeof(type) - 1,
                 "urn:ml-guard:problem:%s%Z", rs->name);

    doc = json_pack("{s:s, s:s, s:i, s:s%, s:s}",
                    "type", type,
                    "title", rs->title,
                    "status", (json_int_t) ctx->status,
                    "detail", (char *) ctx->detail.data, ctx->detail.len,
                    "reason", rs->name);
    if (doc == NULL) {
        return NGX_ERROR;
    }

    if (ctx->errors != NULL) {
        json_object_set(doc, "errors", ctx->errors);
    }

    text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);

    if (text == NULL) {
        return NGX_ERROR;
    }

    ctx->problem_body.len = ngx_strlen(text);
    ctx->problem_body.data = ngx_pnalloc(r->pool, ctx->problem_body.len + 1);
    if (ctx->problem_body.data == NULL) {
        free(text);
        return NGX_ERROR;
    }

    ngx_memcpy(ctx->problem_body.data, text, ctx->problem_body.len);
    ctx->problem_body.data[ctx->problem_body.len] = '\n';
    ctx->problem_body.len++;
    free(text);

    return NGX_OK;
}


/*
 * nginx's own refusals that belong to our policy, in our format: its 413
 * (client_max_body_size) in a guarded location, and those an
 * authentication method claims (the mTLS module: nginx's 400 for a client
 * certificate that failed verification).
 */
static ngx_http_ml_guard_reason_e
ngx_http_ml_guard_nginx_error(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf)
{
    ngx_uint_t                         i;
    ngx_http_ml_guard_reason_e         reason;
    ngx_http_ml_guard_main_conf_t     *mcf;
    ngx_http_ml_guard_auth_method_t  **m;

    if (r->headers_out.status == NGX_HTTP_REQUEST_ENTITY_TOO_LARGE
        && lcf->enable)
    {
        return MLG_REASON_BODY_TOO_LARGE;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ml_guard_module);
    m = mcf->methods.elts;

    for (i = 0; i < mcf->methods.nelts; i++) {
        if (m[i]->nginx_error != NULL) {
            reason = m[i]->nginx_error(r);

            if (reason != MLG_REASON_NONE) {
                return reason;
            }
        }
    }

    return MLG_REASON_NONE;
}


/*
 * nginx's own 502/503/504 when the model server is down or slow (not a
 * response the model server sent: r->err_status is only set for nginx's
 * special responses) become problem documents too.  The policy decision
 * stays "allow"; $ml_guard_reason tells what failed.
 */
static ngx_int_t
ngx_http_ml_guard_upstream_error(ngx_http_request_t *r)
{
    ngx_uint_t                     status;
    ngx_http_ml_guard_ctx_t       *ctx;
    ngx_http_ml_guard_loc_conf_t  *lcf;

    status = r->headers_out.status;

    if (r->err_status == 0 || (ngx_uint_t) r->err_status != status
        || (status != NGX_HTTP_BAD_GATEWAY
            && status != NGX_HTTP_SERVICE_UNAVAILABLE
            && status != NGX_HTTP_GATEWAY_TIME_OUT))
    {
        return ngx_http_next_header_filter(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_ml_guard_module);

    if (!lcf->enable || ctx == NULL || ctx->problem_sending) {
        return ngx_http_next_header_filter(r);
    }

    if (status == NGX_HTTP_GATEWAY_TIME_OUT) {
        ctx->reason = MLG_REASON_UPSTREAM_TIMEOUT;
        ngx_str_set(&ctx->detail, "the model server did not answer in time");

    } else {
        ctx->reason = MLG_REASON_UPSTREAM_UNAVAILABLE;
        ngx_str_set(&ctx->detail, "the model server is not reachable");
    }

    ctx->status = status;
    ngx_http_ml_guard_metrics_upstream_failure(ctx);

    return ngx_http_ml_guard_problem_headers(r, ctx);
}


static ngx_int_t
ngx_http_ml_guard_header_filter(ngx_http_request_t *r)
{
    ngx_http_ml_guard_ctx_t       *ctx;
    ngx_http_ml_guard_reason_e     reason;
    ngx_http_ml_guard_loc_conf_t  *lcf;

    if (r != r->main) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_ml_guard_module);

    /*
     * Our own denial first: r->upstream stays set after an internal
     * redirect from a proxied location (X-Accel-Redirect), so it does not
     * say that this response comes from an upstream.
     */

    if (r->upstream != NULL && (ctx == NULL || !ctx->problem_swap)) {
        return ngx_http_ml_guard_upstream_error(r);
    }

    if (ctx == NULL || !ctx->problem_swap) {

        lcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_module);
        reason = ngx_http_ml_guard_nginx_error(r, lcf);

        if (reason == MLG_REASON_NONE) {
            return ngx_http_next_header_filter(r);
        }

        if (ctx == NULL) {
            ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ml_guard_ctx_t));
            if (ctx == NULL) {
                return NGX_ERROR;
            }

            ctx->ratelimit_remaining = -1;
            ngx_http_set_ctx(r, ctx, ngx_http_ml_guard_module);
        }

        if (reason == MLG_REASON_BODY_TOO_LARGE) {
            (void) ngx_http_ml_guard_deny(r, ctx, reason,
                                          "the request body is larger than "
                                          "this location accepts");

        } else {
            (void) ngx_http_ml_guard_deny(r, ctx, reason,
                                          "the client certificate did not "
                                          "verify");
            r->headers_out.status = ctx->status;
        }
    }

    if (r->headers_out.status != ctx->status) {
        return ngx_http_next_header_filter(r);
    }

    return ngx_http_ml_guard_problem_headers(r, ctx);
}


/* Sets the headers of a problem document and arms the body filter. */
static ngx_int_t
ngx_http_ml_guard_problem_headers(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx)
{
    ngx_str_t  v;

    if (ngx_http_ml_guard_problem_render(r, ctx) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_str_set(&r->headers_out.content_type, "application/problem+json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    ngx_str_null(&r->headers_out.charset);

    r->headers_out.content_length_n = ctx->problem_body.len;
    if (r->headers_out.content_length) {
        r->headers_out.content_length->hash = 0;
        r->headers_out.content_length = NULL;
    }

    if (ctx->status == 422) {
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Content");
    }

    ngx_str_set(&v, "no-store");
    if (ngx_http_ml_guard_add_header(r, "Cache-Control", &v) != NGX_OK) {
        return NGX_ERROR;
    }

    ctx->problem_swap = 0;
    ctx->problem_sending = 1;

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_ml_guard_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_buf_t                *b;
    ngx_uint_t                last;
    ngx_chain_t              *cl, out;
    ngx_http_ml_guard_ctx_t  *ctx;

    if (r != r->main) {
        return ngx_http_next_body_filter(r, in);
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_ml_guard_module);

    if (ctx == NULL || !ctx->problem_sending) {
        return ngx_http_next_body_filter(r, in);
    }

    /* drop nginx's HTML page, send ours once the page is complete */

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf || cl->buf->last_in_chain) {
            last = 1;
        }

        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (!last) {
        return NGX_OK;
    }

    ctx->problem_sending = 0;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->memory = 1;
    b->pos = ctx->problem_body.data;
    b->last = ctx->problem_body.data + ctx->problem_body.len;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}
