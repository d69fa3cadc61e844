/*
 * JSON body checks and schemas: STUB until the schema feature lands (issue 5).
 */

#include "ngx_http_ml_guard_module.h"


ngx_int_t
ngx_http_ml_guard_schema_create_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *lcf)
{
    lcf->schema = NULL;
    return NGX_OK;
}


char *
ngx_http_ml_guard_schema_merge_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *prev, ngx_http_ml_guard_loc_conf_t *conf)
{
    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_ml_guard_json_step(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx)
{
    return NGX_OK;
}


static char *
ngx_http_ml_guard_schema_unsupported(ngx_conf_t *cf, ngx_command_t *cmd)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" is not supported by this build", &cmd->name);
    return NGX_CONF_ERROR;
}


char *
ngx_http_ml_guard_schema(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_ml_guard_schema_unsupported(cf, cmd);
}


char *
ngx_http_ml_guard_max_json_depth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_ml_guard_schema_unsupported(cf, cmd);
}
