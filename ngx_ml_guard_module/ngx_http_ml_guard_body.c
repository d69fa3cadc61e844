/*
 * Reading the request body in the access phase, and the body cap.
 *
 * The body is read with nginx's own reader, so it ends up in memory or in a
 * temporary file exactly as for proxy_pass, which later reuses it.  A
 * request body filter counts the bytes as they arrive (after de-chunking)
 * and stops the read with 413 as soon as the cap is passed: a chunked
 * upload cannot make us buffer more than ml_guard_max_body.  The body step
 * runs in the core's "body" stage.
 */

#include "ngx_http_ml_guard_module.h"
#include "ngx_http_ml_guard_body.h"


typedef struct {
    off_t                                max_body;        /* ml_guard_max_body */
} ngx_http_ml_guard_body_conf_t;


static ngx_int_t ngx_http_ml_guard_body_step(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx);
static void ngx_http_ml_guard_body_done(ngx_http_request_t *r);
static ngx_int_t ngx_http_ml_guard_request_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_ml_guard_body_init(ngx_conf_t *cf);
static void *ngx_http_ml_guard_body_create_conf(ngx_conf_t *cf);
static char *ngx_http_ml_guard_body_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_command_t  ngx_http_ml_guard_body_commands[] = {

    { ngx_string("ml_guard_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ml_guard_body_conf_t, max_body),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ml_guard_body_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_ml_guard_body_init,           /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ml_guard_body_create_conf,    /* create location configuration */
    ngx_http_ml_guard_body_merge_conf      /* merge location configuration */
};


ngx_module_t  ngx_http_ml_guard_body_module = {
    NGX_MODULE_V1,
    &ngx_http_ml_guard_body_module_ctx,    /* module context */
    ngx_http_ml_guard_body_commands,       /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_request_body_filter_pt  ngx_http_next_request_body_filter;


static void *
ngx_http_ml_guard_body_create_conf(ngx_conf_t *cf)
{
    ngx_http_ml_guard_body_conf_t  *conf;

    conf = ngx_palloc(cf->pool, sizeof(ngx_http_ml_guard_body_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    conf->max_body = NGX_CONF_UNSET;

    return conf;
}


static char *
ngx_http_ml_guard_body_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ml_guard_body_conf_t  *prev = parent;
    ngx_http_ml_guard_body_conf_t  *conf = child;

    ngx_conf_merge_off_value(conf->max_body, prev->max_body, 1024 * 1024);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ml_guard_body_init(ngx_conf_t *cf)
{
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_ml_guard_request_body_filter;

    return ngx_http_ml_guard_add_step(cf, NGX_HTTP_ML_GUARD_BODY,
                                      ngx_http_ml_guard_body_step);
}


static ngx_int_t
ngx_http_ml_guard_deny_too_large(ngx_http_request_t *r,
    ngx_http_ml_guard_body_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx)
{
    return ngx_http_ml_guard_deny(r, ctx, MLG_REASON_BODY_TOO_LARGE,
                                  "the request body is larger than the "
                                  "limit of %O bytes", lcf->max_body);
}


static ngx_int_t
ngx_http_ml_guard_body_step(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx)
{
    ngx_int_t                       rc;
    ngx_http_ml_guard_body_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_body_module);

    if (ctx->body_wait) {
        if (ctx->reason == MLG_REASON_BODY_TOO_LARGE) {
            return ctx->status;
        }

        /* woken before the body is in: its completion runs the phases */
        return ctx->body_done ? NGX_OK : NGX_DONE;
    }

    /* the first call */

    if (r->headers_in.content_length_n > lcf->max_body) {
        return ngx_http_ml_guard_deny_too_large(r, lcf, ctx);
    }

    if (r->headers_in.content_length_n <= 0 && !r->headers_in.chunked) {
        ctx->body_done = 1;
        return NGX_OK;
    }

    ctx->body_reading = 1;
    ctx->body_wait = 1;

    /*
     * As nginx's mirror module does in the same position: the reader takes
     * a reference to the request, which finalizing with NGX_DONE releases;
     * the phases go on from the completion handler (at once when the body
     * is already here), so the access phase returns NGX_DONE.  nginx's own
     * error paths (413, client gone) then free the request normally.
     */

    rc = ngx_http_read_client_request_body(r, ngx_http_ml_guard_body_done);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        /* our filter's 413 has already set the reason */
        return rc;
    }

    ngx_http_finalize_request(r, NGX_DONE);

    return NGX_DONE;
}


static void
ngx_http_ml_guard_body_done(ngx_http_request_t *r)
{
    ngx_http_ml_guard_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ml_guard_module);

    ctx->body_done = 1;
    ctx->body_reading = 0;

    /* the reader left its own write handler in place while reading */

    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}


static ngx_int_t
ngx_http_ml_guard_request_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                    *cl;
    ngx_http_ml_guard_ctx_t        *ctx;
    ngx_http_ml_guard_body_conf_t  *lcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_ml_guard_module);

    if (ctx == NULL || !ctx->body_reading) {
        return ngx_http_next_request_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {
        ctx->body_received += ngx_buf_size(cl->buf);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_body_module);

    if (ctx->body_received > lcf->max_body) {
        ctx->body_reading = 0;

        if (ctx->reason != MLG_REASON_BODY_TOO_LARGE) {
            (void) ngx_http_ml_guard_deny_too_large(r, lcf, ctx);
        }

        return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
    }

    return ngx_http_next_request_body_filter(r, in);
}


/*
 * The whole body as one contiguous string: the buffer itself when the body
 * is one memory buffer, else a pool copy (reading file parts back).
 */
ngx_int_t
ngx_http_ml_guard_body_get(ngx_http_request_t *r, ngx_str_t *body)
{
    off_t         total;
    u_char       *p;
    size_t        size;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_set(body, "");

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    total = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        total += ngx_buf_size(cl->buf);
    }

    p = ngx_pnalloc(r->pool, total ? (size_t) total : 1);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            size = (size_t) (b->file_last - b->file_pos);
            n = ngx_read_file(b->file, p, size, b->file_pos);

            if (n != (ssize_t) size) {
                ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                              "ml_guard: short read of the request body "
                              "from \"%V\"", &b->file->name);
                return NGX_ERROR;
            }

            p += size;

        } else {
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    body->len = p - body->data;

    return NGX_OK;
}
