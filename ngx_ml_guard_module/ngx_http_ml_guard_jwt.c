/*
 * JWT bearer tokens: STUB until the JWT feature lands (issue 4).
 * The directives are declared in the main command table and refuse to load.
 */

#include "ngx_http_ml_guard_module.h"


ngx_int_t
ngx_http_ml_guard_jwt_create_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *lcf)
{
    lcf->jwt = NULL;
    return NGX_OK;
}


char *
ngx_http_ml_guard_jwt_merge_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *prev, ngx_http_ml_guard_loc_conf_t *conf)
{
    return NGX_CONF_OK;
}


ngx_uint_t
ngx_http_ml_guard_jwt_configured(ngx_http_ml_guard_loc_conf_t *lcf)
{
    return 0;
}


ngx_int_t
ngx_http_ml_guard_jwt_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx,
    ngx_http_ml_guard_reason_e *reason)
{
    return NGX_DECLINED;
}


static char *
ngx_http_ml_guard_jwt_unsupported(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" is not supported by this build", &cmd->name);
    return NGX_CONF_ERROR;
}


char *
ngx_http_ml_guard_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_ml_guard_jwt_unsupported(cf, cmd, conf);
}


char *
ngx_http_ml_guard_jwt_issuer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_ml_guard_jwt_unsupported(cf, cmd, conf);
}


char *
ngx_http_ml_guard_jwt_audience(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_ml_guard_jwt_unsupported(cf, cmd, conf);
}


char *
ngx_http_ml_guard_jwt_leeway(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_ml_guard_jwt_unsupported(cf, cmd, conf);
}


char *
ngx_http_ml_guard_jwt_roles_claim(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_ml_guard_jwt_unsupported(cf, cmd, conf);
}
