/*
 * JSON body checks: ml_guard_schema and ml_guard_max_json_depth.
 *
 * The schema file is read and compiled once, at configuration time, into
 * mlg_schema's plain C structures (mlg_schema.c); a mistake in it fails
 * `nginx -t` with the file and the JSON pointer of the offending keyword.
 * Per request, after the body has been read (the core's "json" stage): the media type
 * must be JSON (415), the body must pass the depth pre-scan and the strict
 * parse (400), and the document must satisfy the schema (422 with errors).
 */

#include "ngx_http_ml_guard_module.h"
#include "ngx_http_ml_guard_body.h"

#include <jansson.h>

#include "mlg_json.h"
#include "mlg_schema.h"


/* jansson's own parser refuses deeper documents anyway */
#define NGX_HTTP_ML_GUARD_MAX_JSON_DEPTH  2048

/*
 * jansson's values for one body come from a per-process bump allocator
 * (mlg_json_arena_*), released at once after validation; larger documents
 * spill over to malloc.
 */
#define NGX_HTTP_ML_GUARD_JSON_ARENA  (64 * 1024)


typedef struct {
    mlg_schema_t  *schema;      /* NULL: no JSON checks here */
    ngx_str_t      file;
    ngx_flag_t     set;         /* ml_guard_schema given at this level */
    ngx_uint_t     max_depth;
} ngx_http_ml_guard_schema_conf_t;


static ngx_int_t ngx_http_ml_guard_json_step(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx);
static char *ngx_http_ml_guard_schema(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ml_guard_max_json_depth(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void ngx_http_ml_guard_schema_cleanup(void *data);
static ngx_int_t ngx_http_ml_guard_schema_init(ngx_conf_t *cf);
static void *ngx_http_ml_guard_schema_create_conf(ngx_conf_t *cf);
static char *ngx_http_ml_guard_schema_merge_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_command_t  ngx_http_ml_guard_schema_commands[] = {

    { ngx_string("ml_guard_schema"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ml_guard_schema,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_max_json_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ml_guard_max_json_depth,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ml_guard_schema_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_ml_guard_schema_init,         /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ml_guard_schema_create_conf,  /* create location configuration */
    ngx_http_ml_guard_schema_merge_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_ml_guard_schema_module = {
    NGX_MODULE_V1,
    &ngx_http_ml_guard_schema_module_ctx,  /* module context */
    ngx_http_ml_guard_schema_commands,     /* module directives */
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


static ngx_int_t
ngx_http_ml_guard_schema_init(ngx_conf_t *cf)
{
    return ngx_http_ml_guard_add_step(cf, NGX_HTTP_ML_GUARD_JSON,
                                      ngx_http_ml_guard_json_step);
}


static void *
ngx_http_ml_guard_schema_create_conf(ngx_conf_t *cf)
{
    ngx_http_ml_guard_schema_conf_t  *scf;

    scf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ml_guard_schema_conf_t));
    if (scf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     scf->schema = NULL;
     *     scf->file = { 0, NULL };
     *     scf->set = 0;
     */

    scf->max_depth = NGX_CONF_UNSET_UINT;

    return scf;
}


static char *
ngx_http_ml_guard_schema_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ml_guard_schema_conf_t  *p = parent;
    ngx_http_ml_guard_schema_conf_t  *c = child;

    if (!c->set) {
        c->schema = p->schema;
        c->file = p->file;
    }

    ngx_conf_merge_uint_value(c->max_depth, p->max_depth,
                              MLG_JSON_DEFAULT_MAX_DEPTH);

    return NGX_CONF_OK;
}


static char *
ngx_http_ml_guard_schema(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_schema_conf_t  *scf = conf;

    char                              err[NGX_MAX_CONF_ERRSTR];
    ngx_str_t                        *value, file;
    mlg_schema_t                     *schema;

    if (scf->set) {
        return "is duplicate";
    }

    value = cf->args->elts;

    scf->set = 1;

    /* "off" cancels a schema inherited from an outer level */
    if (value[1].len == 3 && ngx_strncmp(value[1].data, "off", 3) == 0) {
        return NGX_CONF_OK;
    }

    if (value[1].len == 0) {
        return "takes a file name";
    }

    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    /* the path must be NUL-terminated for the loader */
    scf->file.data = ngx_pnalloc(cf->pool, file.len + 1);
    if (scf->file.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(scf->file.data, file.data, file.len);
    scf->file.data[file.len] = '\0';
    scf->file.len = file.len;

    if (mlg_json_arena_init(NGX_HTTP_ML_GUARD_JSON_ARENA) != 0) {
        return NGX_CONF_ERROR;
    }

    schema = mlg_schema_load((const char *) scf->file.data, err, sizeof(err));

    if (schema == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ml_guard_schema: %s", err);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_ml_guard_conf_keep(cf, schema, ngx_http_ml_guard_schema_cleanup)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    scf->schema = schema;

    return NGX_CONF_OK;
}


static void
ngx_http_ml_guard_schema_cleanup(void *data)
{
    mlg_schema_free(data);
}


static char *
ngx_http_ml_guard_max_json_depth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_ml_guard_schema_conf_t  *scf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (scf->max_depth != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    n = ngx_atoi(value[1].data, value[1].len);

    if (n < 1 || n > NGX_HTTP_ML_GUARD_MAX_JSON_DEPTH) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\" in \"%V\": expected a "
                           "nesting depth from 1 to %d",
                           &value[1], &cmd->name,
                           NGX_HTTP_ML_GUARD_MAX_JSON_DEPTH);
        return NGX_CONF_ERROR;
    }

    scf->max_depth = (ngx_uint_t) n;

    return NGX_CONF_OK;
}


/* The schema errors as the problem document's "errors" array. */
static json_t *
ngx_http_ml_guard_schema_errors(mlg_schema_errors_t *errs)
{
    json_t               *array, *item;
    ngx_uint_t            i;
    mlg_schema_error_t   *e;

    array = json_array();
    if (array == NULL) {
        return NULL;
    }

    for (i = 0; i < errs->count; i++) {
        e = &errs->errors[i];

        item = json_pack("{s:s%,s:s}", "path", e->path, e->path_len,
                         "message", e->message);

        if (item == NULL) {
            /* not expected (both are valid UTF-8): keep the message */
            item = json_pack("{s:s,s:s}", "path", "", "message", e->message);
        }

        if (item == NULL || json_array_append_new(array, item) != 0) {
            json_decref(array);
            return NULL;
        }
    }

    return array;
}


static ngx_int_t
ngx_http_ml_guard_json_step(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx)
{
    char                              err[256];
    json_t                           *doc, *errors;
    ngx_int_t                         rc, valid;
    ngx_str_t                         body;
    ngx_table_elt_t                  *ct;
    mlg_schema_errors_t               errs;
    ngx_http_ml_guard_schema_conf_t  *scf;

    scf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_schema_module);

    if (scf == NULL || scf->schema == NULL) {
        return NGX_OK;
    }

    ct = r->headers_in.content_type;

    if (ct == NULL || !mlg_json_media_type_ok((const char *) ct->value.data,
                                              ct->value.len))
    {
        return ngx_http_ml_guard_deny(r, ctx,
                                      MLG_REASON_UNSUPPORTED_MEDIA_TYPE,
                                      "the request body must be JSON "
                                      "(Content-Type: application/json)");
    }

    if (ngx_http_ml_guard_body_get(r, &body) != NGX_OK) {
        return NGX_ERROR;
    }

    /* nothing else runs between begin and end: the document dies first */
    mlg_json_arena_begin();

    doc = mlg_json_parse((const char *) body.data, body.len,
                         (unsigned) scf->max_depth, err, sizeof(err));

    if (doc == NULL) {
        mlg_json_arena_end();
        return ngx_http_ml_guard_deny(r, ctx, MLG_REASON_MALFORMED_JSON,
                                      "the request body is not valid JSON: %s",
                                      err);
    }

    valid = mlg_schema_validate(scf->schema, doc, &errs);

    json_decref(doc);
    mlg_json_arena_end();

    if (valid) {
        return NGX_OK;
    }

    errors = ngx_http_ml_guard_schema_errors(&errs);
    if (errors == NULL) {
        return NGX_ERROR;
    }

    ngx_http_ml_guard_set_errors(r, ctx, errors);

    rc = ngx_http_ml_guard_deny(r, ctx, MLG_REASON_SCHEMA_VIOLATION,
                                "the request body does not match the "
                                "schema%s",
                                errs.truncated ? " (first 10 errors shown)"
                                               : "");

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "ml_guard: schema violation at \"%s\": %s",
                  errs.errors[0].path, errs.errors[0].message);

    return rc;
}
