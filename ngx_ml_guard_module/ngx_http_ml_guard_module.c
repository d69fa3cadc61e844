/*
 * ngx_http_ml_guard_module: directives, configuration, variables and the
 * access-phase state machine.
 *
 * One handler per request runs the steps below in order, keeping its place
 * in the request ctx so that a step that waits (a Redis reply, the request
 * body) can return NGX_AGAIN/NGX_DONE and be resumed by the phase engine:
 *
 *   LOCKOUT -> AUTH -> AUTHZ -> RATELIMIT -> BODY -> JSON -> allow
 *
 * Cheap, body-free checks come first, so an unauthenticated client never
 * makes the gateway read or parse its body.  A denial is returned as an
 * HTTP status; nginx finalizes the request and the problem filter
 * (ngx_http_ml_guard_problem.c) writes the application/problem+json body.
 */

#include "ngx_http_ml_guard_module.h"


static ngx_int_t ngx_http_ml_guard_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_ml_guard_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx);
static ngx_int_t ngx_http_ml_guard_api_key_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx,
    ngx_http_ml_guard_reason_e *reason);
static ngx_int_t ngx_http_ml_guard_authorize(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx);

static ngx_int_t ngx_http_ml_guard_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_ml_guard_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static void *ngx_http_ml_guard_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_ml_guard_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_ml_guard_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_ml_guard_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_ml_guard_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_ml_guard_init_process(ngx_cycle_t *cycle);
static void ngx_http_ml_guard_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_ml_guard_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ml_guard_api_keys(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ml_guard_api_key_header(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_ml_guard_roles(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ml_guard_mtls_roles(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_ml_guard_mtls_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx,
    ngx_http_ml_guard_reason_e *reason);


static ngx_command_t  ngx_http_ml_guard_commands[] = {

    { ngx_string("ml_guard"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ml_guard_loc_conf_t, enable),
      NULL },

    { ngx_string("ml_guard_auth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_ml_guard_auth,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_api_keys"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ml_guard_api_keys,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_api_key_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ml_guard_api_key_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_mtls_roles"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ml_guard_mtls_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_roles"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_ml_guard_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_off_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ml_guard_loc_conf_t, max_body),
      NULL },

    /* JWT: ngx_http_ml_guard_jwt.c */

    { ngx_string("ml_guard_jwt_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_ml_guard_jwt_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_jwt_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ml_guard_jwt_issuer,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_jwt_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ml_guard_jwt_audience,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_jwt_leeway"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ml_guard_jwt_leeway,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_jwt_roles_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ml_guard_jwt_roles_claim,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_jwt_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_ml_guard_jwt_cache_flag,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_jwt_require_exp"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_http_ml_guard_jwt_require_exp,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    /* JSON and schema: ngx_http_ml_guard_schema.c */

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

    /* rate limits and lockout: ngx_http_ml_guard_ratelimit.c */

    { ngx_string("ml_guard_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_ml_guard_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_rate_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_ml_guard_rate_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_auth_failures"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_ml_guard_auth_failures,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_limits_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_ml_guard_limits_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    /* operations: ngx_http_ml_guard_metrics.c */

    { ngx_string("ml_guard_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ml_guard_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ml_guard_module_ctx = {
    ngx_http_ml_guard_add_variables,       /* preconfiguration */
    ngx_http_ml_guard_init,                /* postconfiguration */

    ngx_http_ml_guard_create_main_conf,    /* create main configuration */
    ngx_http_ml_guard_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ml_guard_create_loc_conf,     /* create location configuration */
    ngx_http_ml_guard_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_ml_guard_module = {
    NGX_MODULE_V1,
    &ngx_http_ml_guard_module_ctx,         /* module context */
    ngx_http_ml_guard_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_ml_guard_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_ml_guard_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


enum {
    MLG_VAR_PRINCIPAL = 0,
    MLG_VAR_AUTH_METHOD,
    MLG_VAR_ROLES,
    MLG_VAR_DECISION,
    MLG_VAR_REASON,
    MLG_VAR_RATELIMIT_REMAINING
};


static ngx_http_variable_t  ngx_http_ml_guard_vars[] = {

    { ngx_string("ml_guard_principal"), NULL, ngx_http_ml_guard_variable,
      MLG_VAR_PRINCIPAL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ml_guard_auth_method"), NULL, ngx_http_ml_guard_variable,
      MLG_VAR_AUTH_METHOD, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ml_guard_roles"), NULL, ngx_http_ml_guard_variable,
      MLG_VAR_ROLES, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ml_guard_decision"), NULL, ngx_http_ml_guard_variable,
      MLG_VAR_DECISION, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ml_guard_reason"), NULL, ngx_http_ml_guard_variable,
      MLG_VAR_REASON, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("ml_guard_ratelimit_remaining"), NULL,
      ngx_http_ml_guard_variable, MLG_VAR_RATELIMIT_REMAINING,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


static ngx_conf_enum_t  ngx_http_ml_guard_auth_methods[] = {
    { ngx_string("api_key"), NGX_HTTP_ML_GUARD_AUTH_API_KEY },
    { ngx_string("jwt"), NGX_HTTP_ML_GUARD_AUTH_JWT },
    { ngx_string("mtls"), NGX_HTTP_ML_GUARD_AUTH_MTLS },
    { ngx_string("none"), NGX_HTTP_ML_GUARD_AUTH_NONE },
    { ngx_null_string, 0 }
};


/* configuration */

static void *
ngx_http_ml_guard_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_ml_guard_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ml_guard_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    /* set by ngx_pcalloc(): mcf->redis = NULL; */

    return mcf;
}


static char *
ngx_http_ml_guard_init_main_conf(ngx_conf_t *cf, void *conf)
{
    if (ngx_http_ml_guard_ratelimit_init_main(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_ml_guard_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_ml_guard_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ml_guard_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->auth_effective = 0;
     *     conf->api_keys = NULL;
     *     conf->api_keys_file = { 0, NULL };
     *     conf->api_key_header = { 0, NULL };
     */

    conf->enable = NGX_CONF_UNSET;
    conf->auth = NGX_CONF_UNSET_UINT;
    conf->roles = NGX_CONF_UNSET_PTR;
    conf->max_body = NGX_CONF_UNSET;

    if (ngx_http_ml_guard_jwt_create_conf(cf, conf) != NGX_OK
        || ngx_http_ml_guard_schema_create_conf(cf, conf) != NGX_OK
        || ngx_http_ml_guard_ratelimit_create_conf(cf, conf) != NGX_OK)
    {
        return NULL;
    }

    return conf;
}


static char *
ngx_http_ml_guard_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ml_guard_loc_conf_t  *prev = parent;
    ngx_http_ml_guard_loc_conf_t  *conf = child;

    ngx_conf_merge_value(conf->enable, prev->enable, 0);
    ngx_conf_merge_uint_value(conf->auth, prev->auth, 0);
    ngx_conf_merge_ptr_value(conf->roles, prev->roles, NULL);
    ngx_conf_merge_off_value(conf->max_body, prev->max_body, 1024 * 1024);
    ngx_conf_merge_str_value(conf->api_key_header, prev->api_key_header,
                             "X-API-Key");

    if (conf->api_keys == NULL) {
        conf->api_keys = prev->api_keys;
        conf->api_keys_file = prev->api_keys_file;
    }

    if (conf->mtls_roles == NULL) {
        conf->mtls_roles = prev->mtls_roles;
    }

    if (ngx_http_ml_guard_jwt_merge_conf(cf, prev, conf) != NGX_CONF_OK
        || ngx_http_ml_guard_schema_merge_conf(cf, prev, conf) != NGX_CONF_OK
        || ngx_http_ml_guard_ratelimit_merge_conf(cf, prev, conf)
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* without ml_guard_auth, every configured method is accepted */

    if (conf->auth == 0) {
        if (conf->api_keys) {
            conf->auth_effective |= NGX_HTTP_ML_GUARD_AUTH_API_KEY;
        }

        if (ngx_http_ml_guard_jwt_configured(conf)) {
            conf->auth_effective |= NGX_HTTP_ML_GUARD_AUTH_JWT;
        }

        if (conf->mtls_roles) {
            conf->auth_effective |= NGX_HTTP_ML_GUARD_AUTH_MTLS;
        }

    } else {
        conf->auth_effective = conf->auth;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_ml_guard_auth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_loc_conf_t *lcf = conf;

    ngx_str_t        *value;
    ngx_uint_t        i, bits;
    ngx_conf_enum_t  *e;

    if (lcf->auth != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;
    bits = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        for (e = ngx_http_ml_guard_auth_methods; e->name.len; e++) {
            if (e->name.len == value[i].len
                && ngx_strcasecmp(e->name.data, value[i].data) == 0)
            {
                break;
            }
        }

        if (e->name.len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid authentication method \"%V\", "
                               "expected api_key, jwt, mtls or none",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (bits & e->value) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "authentication method \"%V\" is listed twice",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        bits |= e->value;
    }

    if ((bits & NGX_HTTP_ML_GUARD_AUTH_NONE) && bits != NGX_HTTP_ML_GUARD_AUTH_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"none\" cannot be combined with other methods");
        return NGX_CONF_ERROR;
    }

    lcf->auth = bits;

    return NGX_CONF_OK;
}


/*
 * Loads a file named by a directive through a plain-C loader at
 * configuration time; the result lives as long as the configuration cycle.
 */
static void *
ngx_http_ml_guard_load_file(ngx_conf_t *cf, ngx_str_t *file,
    void *(*load)(const char *path, char *err, size_t errlen),
    void (*release)(void *data))
{
    char   err[512];
    void  *obj;

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NULL;
    }

    obj = load((char *) file->data, err, sizeof(err));
    if (obj == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", err);
        return NULL;
    }

    if (ngx_http_ml_guard_conf_keep(cf, obj, release) != NGX_OK) {
        return NULL;
    }

    return obj;
}


ngx_int_t
ngx_http_ml_guard_conf_keep(ngx_conf_t *cf, void *obj,
    ngx_pool_cleanup_pt release)
{
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        release(obj);
        return NGX_ERROR;
    }

    cln->handler = release;
    cln->data = obj;

    return NGX_OK;
}


static void *
ngx_http_ml_guard_api_keys_load(const char *path, char *err, size_t errlen)
{
    return mlg_apikeys_load(path, err, errlen);
}


static void
ngx_http_ml_guard_api_keys_release(void *data)
{
    mlg_apikeys_free(data);
}


static void *
ngx_http_ml_guard_rolemap_load(const char *path, char *err, size_t errlen)
{
    return mlg_rolemap_load(path, err, errlen);
}


static void
ngx_http_ml_guard_rolemap_release(void *data)
{
    mlg_rolemap_free(data);
}


static char *
ngx_http_ml_guard_api_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_loc_conf_t *lcf = conf;

    ngx_str_t  *value, file;

    if (lcf->api_keys != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    lcf->api_keys = ngx_http_ml_guard_load_file(cf, &file,
                                                ngx_http_ml_guard_api_keys_load,
                                                ngx_http_ml_guard_api_keys_release);
    if (lcf->api_keys == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mlg_apikeys_count(lcf->api_keys) == 0) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "key file \"%V\" holds no keys: every API key "
                           "will be refused", &file);
    }

    lcf->api_keys_file = file;

    return NGX_CONF_OK;
}


static char *
ngx_http_ml_guard_mtls_roles(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_loc_conf_t *lcf = conf;

#if (NGX_HTTP_SSL)
    ngx_str_t  *value, file;

    if (lcf->mtls_roles != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    file = value[1];

    lcf->mtls_roles = ngx_http_ml_guard_load_file(cf, &file,
                                                  ngx_http_ml_guard_rolemap_load,
                                                  ngx_http_ml_guard_rolemap_release);

    return lcf->mtls_roles ? NGX_CONF_OK : NGX_CONF_ERROR;
#else
    (void) lcf;
    return "needs nginx built with SSL";
#endif
}


static char *
ngx_http_ml_guard_api_key_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_ml_guard_loc_conf_t *lcf = conf;

    u_char      c;
    ngx_str_t  *value;
    ngx_uint_t  i;

    if (lcf->api_key_header.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (value[1].len == 0) {
        return "takes a header name, not an empty string";
    }

    for (i = 0; i < value[1].len; i++) {
        c = value[1].data[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '-' || c == '_'))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid header name \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if (value[1].len == sizeof("authorization") - 1
        && ngx_strncasecmp(value[1].data, (u_char *) "authorization",
                           value[1].len) == 0)
    {
        return "cannot be \"Authorization\": it carries bearer tokens";
    }

    lcf->api_key_header = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_http_ml_guard_roles(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_loc_conf_t *lcf = conf;

    ngx_str_t   *value, *role;
    ngx_uint_t   i, j;

    if (lcf->roles != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lcf->roles = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                  sizeof(ngx_str_t));
    if (lcf->roles == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0) {
            return "takes role names, not an empty string";
        }

        for (j = 0; j < value[i].len; j++) {
            if (value[i].data[j] <= ' ' || value[i].data[j] == ',') {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid role name \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }
        }

        role = ngx_array_push(lcf->roles);
        if (role == NULL) {
            return NGX_CONF_ERROR;
        }

        *role = value[i];
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ml_guard_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_ml_guard_handler;

    if (ngx_http_ml_guard_body_filter_init(cf) != NGX_OK
        || ngx_http_ml_guard_problem_filter_init(cf) != NGX_OK
        || ngx_http_ml_guard_metrics_init_zone(cf) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ml_guard_init_process(ngx_cycle_t *cycle)
{
    return ngx_http_ml_guard_ratelimit_init_process(cycle);
}


static void
ngx_http_ml_guard_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_ml_guard_ratelimit_exit_process(cycle);
}


/* the access phase */

ngx_http_ml_guard_ctx_t *
ngx_http_ml_guard_get_ctx(ngx_http_request_t *r)
{
    return ngx_http_get_module_ctx(r, ngx_http_ml_guard_module);
}


void
ngx_http_ml_guard_wake(ngx_http_request_t *r)
{
    /* the write event handler is ngx_http_core_run_phases() here */
    ngx_post_event(r->connection->write, &ngx_posted_events);
}


static ngx_int_t
ngx_http_ml_guard_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_ml_guard_ctx_t       *ctx;
    ngx_http_ml_guard_loc_conf_t  *lcf;

    if (r != r->main) {
        return NGX_DECLINED;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_module);

    if (!lcf->enable) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_ml_guard_module);

    if (ctx == NULL) {
        ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_ml_guard_ctx_t));
        if (ctx == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->step = MLG_STEP_AUTH;
        ctx->ratelimit_remaining = -1;
        ctx->start_us = ngx_http_ml_guard_now_us();

        ngx_http_set_ctx(r, ctx, ngx_http_ml_guard_module);

    } else if (ctx->decision) {
        /* decided before an internal redirect to this location */
        return ctx->decision == 1 ? NGX_DECLINED : (ngx_int_t) ctx->status;
    }

    for ( ;; ) {

        switch (ctx->step) {

        case MLG_STEP_AUTH:
            rc = ngx_http_ml_guard_authenticate(r, lcf, ctx);
            break;

        case MLG_STEP_LOCKOUT:
            rc = ngx_http_ml_guard_lockout_step(r, lcf, ctx);
            break;

        case MLG_STEP_AUTHZ:
            rc = ngx_http_ml_guard_authorize(r, lcf, ctx);
            break;

        case MLG_STEP_RATELIMIT:
            rc = ngx_http_ml_guard_ratelimit_step(r, lcf, ctx);
            break;

        case MLG_STEP_BODY:
        case MLG_STEP_BODY_WAIT:
            rc = ngx_http_ml_guard_body_step(r, lcf, ctx);
            break;

        case MLG_STEP_JSON:
            rc = ngx_http_ml_guard_json_step(r, lcf, ctx);
            break;

        default: /* MLG_STEP_DONE */
            ctx->decision = 1;
            ngx_http_ml_guard_metrics_decision(ctx);
            return NGX_DECLINED;
        }

        if (rc != NGX_OK) {
            if (rc == NGX_ERROR) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            /* NGX_AGAIN/NGX_DONE: waiting; otherwise a denial status */
            return rc == NGX_AGAIN ? NGX_DONE : rc;
        }

        ctx->step++;
    }
}


static ngx_int_t
ngx_http_ml_guard_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx)
{
    ngx_int_t                   rc;
    ngx_uint_t                  methods;
    ngx_http_ml_guard_reason_e  reason, failure;

    methods = lcf->auth_effective;

    if (methods & NGX_HTTP_ML_GUARD_AUTH_NONE) {
        return NGX_OK;
    }

    if (methods == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ml_guard is on but no authentication method is "
                      "configured here (set ml_guard_api_keys or "
                      "ml_guard_jwt_key, or \"ml_guard_auth none\")");
        return NGX_ERROR;
    }

    if (ctx->auth_failure != MLG_REASON_NONE) {
        /* refused before, the lockout was counting it */
        failure = ctx->auth_failure;
        goto failed;
    }

    /* any one valid credential suffices; else the first refusal counts */

    failure = MLG_REASON_NONE;

    if (methods & NGX_HTTP_ML_GUARD_AUTH_API_KEY) {
        rc = ngx_http_ml_guard_api_key_authenticate(r, lcf, ctx, &reason);

        if (rc == NGX_OK) {
            return NGX_OK;
        }

        if (rc == NGX_ERROR) {
            failure = reason;
        }
    }

    if (methods & NGX_HTTP_ML_GUARD_AUTH_JWT) {
        rc = ngx_http_ml_guard_jwt_authenticate(r, lcf, ctx, &reason);

        if (rc == NGX_OK) {
            return NGX_OK;
        }

        if (rc == NGX_ERROR && failure == MLG_REASON_NONE) {
            failure = reason;
        }
    }

    if (methods & NGX_HTTP_ML_GUARD_AUTH_MTLS) {
        rc = ngx_http_ml_guard_mtls_authenticate(r, lcf, ctx, &reason);

        if (rc == NGX_OK) {
            return NGX_OK;
        }

        if (rc == NGX_ERROR && failure == MLG_REASON_NONE) {
            failure = reason;
        }
    }

    if (failure == MLG_REASON_NONE) {
        /* a locked-out address gets 429 with or without credentials */
        rc = ngx_http_ml_guard_lockout_step(r, lcf, ctx);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_ml_guard_deny(r, ctx, MLG_REASON_MISSING_CREDENTIALS,
                                      "no credentials were presented");
    }

    ngx_http_ml_guard_metric_add(MLG_METRIC_AUTH_FAILURES, 1);
    ctx->auth_failure = failure;

failed:

    /* counted before the client learns the outcome: NGX_AGAIN, or 429 */
    rc = ngx_http_ml_guard_auth_failed(r, lcf, ctx);
    if (rc != NGX_OK) {
        return rc;
    }

    switch (failure) {

    case MLG_REASON_INVALID_API_KEY:
        return ngx_http_ml_guard_deny(r, ctx, failure,
                                      "the API key is not valid");

    case MLG_REASON_TOKEN_EXPIRED:
        return ngx_http_ml_guard_deny(r, ctx, failure,
                                      "the bearer token has expired");

    case MLG_REASON_TOKEN_NOT_YET_VALID:
        return ngx_http_ml_guard_deny(r, ctx, failure,
                                      "the bearer token is not valid yet");

    case MLG_REASON_TOKEN_CLAIMS:
        return ngx_http_ml_guard_deny(r, ctx, failure,
                                      "the bearer token's claims (issuer, "
                                      "audience, subject or expiry) are "
                                      "not accepted here");

    case MLG_REASON_INVALID_CLIENT_CERT:
        return ngx_http_ml_guard_deny(r, ctx, failure,
                                      "the client certificate did not "
                                      "verify");

    default:
        return ngx_http_ml_guard_deny(r, ctx, failure,
                                      "the bearer token is not valid");
    }
}


/*
 * NGX_OK: a known key; NGX_DECLINED: no key presented; NGX_ERROR: a key was
 * presented and refused.  Two copies of the header are refused: which one
 * counts would otherwise depend on the proxy in front.
 */
static ngx_int_t
ngx_http_ml_guard_api_key_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx,
    ngx_http_ml_guard_reason_e *reason)
{
    ngx_uint_t           i;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *h, *found;
    const mlg_apikey_t  *key;

    found = NULL;
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len != lcf->api_key_header.len
            || ngx_strncasecmp(h[i].key.data, lcf->api_key_header.data,
                               h[i].key.len) != 0)
        {
            continue;
        }

        if (found) {
            *reason = MLG_REASON_INVALID_API_KEY;
            return NGX_ERROR;
        }

        found = &h[i];
    }

    if (found == NULL) {
        return NGX_DECLINED;
    }

    *reason = MLG_REASON_INVALID_API_KEY;

    if (found->value.len == 0 || lcf->api_keys == NULL) {
        return NGX_ERROR;
    }

    key = mlg_apikeys_lookup(lcf->api_keys, found->value.data,
                             found->value.len);
    if (key == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_ml_guard_set_principal(r, ctx, "api_key",
                                        (u_char *) key->id, ngx_strlen(key->id),
                                        key->roles_joined,
                                        ngx_strlen(key->roles_joined))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * mTLS: nginx verified the chain (ssl_verify_client optional|on, with
 * ssl_client_certificate and ssl_crl); the principal is the subject CN.
 * NGX_DECLINED when no certificate was sent.
 */
static ngx_int_t
ngx_http_ml_guard_mtls_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx,
    ngx_http_ml_guard_reason_e *reason)
{
#if (NGX_HTTP_SSL)
    int                         idx, len;
    X509                       *cert;
    ngx_int_t                   rc;
    X509_NAME                  *subject;
    unsigned char              *cn;
    X509_NAME_ENTRY            *entry;
    const mlg_rolemap_entry_t  *e;

    if (r->connection->ssl == NULL) {
        return NGX_DECLINED;
    }

    cert = SSL_get_peer_certificate(r->connection->ssl->connection);
    if (cert == NULL) {
        return NGX_DECLINED;
    }

    *reason = MLG_REASON_INVALID_CLIENT_CERT;
    rc = NGX_ERROR;
    cn = NULL;

    if (SSL_get_verify_result(r->connection->ssl->connection) != X509_V_OK) {
        goto done;
    }

    subject = X509_get_subject_name(cert);
    idx = subject ? X509_NAME_get_index_by_NID(subject, NID_commonName, -1) : -1;
    if (idx < 0
        || X509_NAME_get_index_by_NID(subject, NID_commonName, idx) >= 0)
    {
        /* no CN, or several: no single identity */
        goto done;
    }

    entry = X509_NAME_get_entry(subject, idx);
    len = ASN1_STRING_to_UTF8(&cn, X509_NAME_ENTRY_get_data(entry));
    if (len <= 0 || ngx_strlchr(cn, cn + len, '\0') != NULL) {
        goto done;
    }

    e = mlg_rolemap_lookup(lcf->mtls_roles, (char *) cn, (size_t) len);

    if (ngx_http_ml_guard_set_principal(r, ctx, "mtls", cn, (size_t) len,
                                        e ? e->roles_joined : "",
                                        e ? ngx_strlen(e->roles_joined) : 0)
        == NGX_OK)
    {
        rc = NGX_OK;
    }

done:

    if (cn) {
        OPENSSL_free(cn);
    }

    X509_free(cert);

    return rc;
#else
    return NGX_DECLINED;
#endif
}


ngx_int_t
ngx_http_ml_guard_set_principal(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, const char *method, const u_char *principal,
    size_t len, const char *roles, size_t roles_len)
{
    u_char     *p, *end, *comma;
    ngx_str_t  *role;

    ctx->auth_method.data = (u_char *) method;
    ctx->auth_method.len = ngx_strlen(method);

    /* one pool copy of each; the role list points into the roles copy */

    ctx->principal.data = ngx_pnalloc(r->pool, len + roles_len + 1);
    if (ctx->principal.data == NULL) {
        return NGX_ERROR;
    }

    ctx->principal.len = len;
    ctx->roles.data = ngx_cpymem(ctx->principal.data, principal, len);
    ctx->roles.len = roles_len;
    ngx_memcpy(ctx->roles.data, roles, roles_len);

    ctx->role_list = ngx_array_create(r->pool, 4, sizeof(ngx_str_t));
    if (ctx->role_list == NULL) {
        return NGX_ERROR;
    }

    p = ctx->roles.data;
    end = p + roles_len;

    while (p < end) {
        comma = ngx_strlchr(p, end, ',');
        if (comma == NULL) {
            comma = end;
        }

        if (comma > p) {
            role = ngx_array_push(ctx->role_list);
            if (role == NULL) {
                return NGX_ERROR;
            }

            role->data = p;
            role->len = comma - p;
        }

        p = comma + 1;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ml_guard_authorize(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx)
{
    ngx_str_t   *need, *have;
    ngx_uint_t   i, j;

    if (lcf->roles == NULL) {
        return NGX_OK;
    }

    if (ctx->role_list != NULL) {
        need = lcf->roles->elts;
        have = ctx->role_list->elts;

        for (i = 0; i < lcf->roles->nelts; i++) {
            for (j = 0; j < ctx->role_list->nelts; j++) {
                if (need[i].len == have[j].len
                    && ngx_memcmp(need[i].data, have[j].data, need[i].len) == 0)
                {
                    return NGX_OK;
                }
            }
        }
    }

    return ngx_http_ml_guard_deny(r, ctx, MLG_REASON_ROLE_DENIED,
                                  "the caller has none of the roles "
                                  "this resource requires");
}


/* variables */

static ngx_int_t
ngx_http_ml_guard_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_ml_guard_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ml_guard_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                   *p;
    ngx_str_t                 s;
    const char               *name;
    ngx_http_ml_guard_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r->main, ngx_http_ml_guard_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    ngx_str_null(&s);

    switch (data) {

    case MLG_VAR_PRINCIPAL:
        s = ctx->principal;
        break;

    case MLG_VAR_AUTH_METHOD:
        s = ctx->auth_method;
        break;

    case MLG_VAR_ROLES:
        s = ctx->roles;
        break;

    case MLG_VAR_DECISION:
        if (ctx->decision == 1) {
            ngx_str_set(&s, "allow");

        } else if (ctx->decision == 2) {
            ngx_str_set(&s, "deny");
        }
        break;

    case MLG_VAR_REASON:
        if (ctx->reason != MLG_REASON_NONE) {
            name = ngx_http_ml_guard_reason_name(ctx->reason);
            s.data = (u_char *) name;
            s.len = ngx_strlen(name);
        }
        break;

    default: /* MLG_VAR_RATELIMIT_REMAINING */
        if (ctx->ratelimit_remaining < 0) {
            break;
        }

        p = ngx_pnalloc(r->pool, NGX_INT_T_LEN);
        if (p == NULL) {
            return NGX_ERROR;
        }

        s.data = p;
        s.len = ngx_sprintf(p, "%i", ctx->ratelimit_remaining) - p;
        break;
    }

    v->data = s.data;
    v->len = s.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}
