/*
 * Redis rate limits and lockout: STUB until the rate-limit feature lands
 * (issue 6).
 */

#include "ngx_http_ml_guard_module.h"


ngx_int_t
ngx_http_ml_guard_ratelimit_create_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *lcf)
{
    lcf->ratelimit = NULL;
    return NGX_OK;
}


char *
ngx_http_ml_guard_ratelimit_merge_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *prev, ngx_http_ml_guard_loc_conf_t *conf)
{
    return NGX_CONF_OK;
}


ngx_int_t
ngx_http_ml_guard_ratelimit_init_main(ngx_conf_t *cf,
    ngx_http_ml_guard_main_conf_t *mcf)
{
    return NGX_OK;
}


ngx_int_t
ngx_http_ml_guard_ratelimit_init_process(ngx_cycle_t *cycle)
{
    return NGX_OK;
}


void
ngx_http_ml_guard_ratelimit_exit_process(ngx_cycle_t *cycle)
{
}


ngx_int_t
ngx_http_ml_guard_lockout_step(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx)
{
    return NGX_OK;
}


void
ngx_http_ml_guard_auth_failed(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx)
{
}


ngx_int_t
ngx_http_ml_guard_ratelimit_step(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx)
{
    return NGX_OK;
}


static char *
ngx_http_ml_guard_ratelimit_unsupported(ngx_conf_t *cf, ngx_command_t *cmd)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" is not supported by this build", &cmd->name);
    return NGX_CONF_ERROR;
}


char *
ngx_http_ml_guard_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_ml_guard_ratelimit_unsupported(cf, cmd);
}


char *
ngx_http_ml_guard_rate_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_ml_guard_ratelimit_unsupported(cf, cmd);
}


char *
ngx_http_ml_guard_auth_failures(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_ml_guard_ratelimit_unsupported(cf, cmd);
}
