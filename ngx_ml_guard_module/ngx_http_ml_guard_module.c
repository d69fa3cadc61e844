/*
 * ngx_http_ml_guard_module: the core.  "ml_guard on|off", ml_guard_auth,
 * ml_guard_roles, the request ctx, the decision variables, the table of
 * steps the policy modules register into, and the access-phase handler.
 *
 * One handler per request runs the steps in stage order, keeping its place
 * in the request ctx so that a step that waits (a Redis reply, the request
 * body) can return NGX_AGAIN/NGX_DONE and be resumed by the phase engine:
 *
 *   authenticate -> lockout -> authorize -> limits -> body -> json -> allow
 *
 * Authentication is the core's step: it tries the registered methods (API
 * keys, JWT, mTLS: each its own module) and accepts the first that succeeds.
 *
 * Cheap, body-free checks come first, so an unauthenticated client never
 * makes the gateway read or parse its body.  A denial is returned as an
 * HTTP status; nginx finalizes the request and the problem filter
 * (ngx_http_ml_guard_problem.c) writes the application/problem+json body.
 */

#include "ngx_http_ml_guard_module.h"
#include "mlg_principal.h"


/* a location whose authentication is checked at postconfiguration */
typedef struct {
    ngx_http_ml_guard_loc_conf_t        *lcf;
    ngx_str_t                           *name;
} ngx_http_ml_guard_check_t;


static ngx_int_t ngx_http_ml_guard_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_ml_guard_final(ngx_http_request_t *r,
    ngx_int_t status);
static ngx_int_t ngx_http_ml_guard_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx);
static ngx_int_t ngx_http_ml_guard_authorize(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx);

static ngx_int_t ngx_http_ml_guard_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_ml_guard_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

static void *ngx_http_ml_guard_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_ml_guard_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_ml_guard_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_ml_guard_check_auth_later(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *conf);
static ngx_int_t ngx_http_ml_guard_check_auth(ngx_conf_t *cf);
static ngx_int_t ngx_http_ml_guard_init(ngx_conf_t *cf);

static char *ngx_http_ml_guard_auth(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ml_guard_roles(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_ml_guard_check_principal(ngx_http_request_t *r,
    const char *method, const u_char *principal, size_t len);


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

    { ngx_string("ml_guard_roles"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_ml_guard_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ml_guard_module_ctx = {
    ngx_http_ml_guard_add_variables,       /* preconfiguration */
    ngx_http_ml_guard_init,                /* postconfiguration */

    ngx_http_ml_guard_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

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
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
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


/* configuration */

static void *
ngx_http_ml_guard_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_ml_guard_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ml_guard_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&mcf->steps, cf->pool, 8,
                       sizeof(ngx_http_ml_guard_step_t)) != NGX_OK
        || ngx_array_init(&mcf->methods, cf->pool, 4,
                          sizeof(ngx_http_ml_guard_auth_method_t *)) != NGX_OK
        || ngx_array_init(&mcf->auth_failed, cf->pool, 2,
                          sizeof(ngx_http_ml_guard_auth_failed_pt)) != NGX_OK
        || ngx_array_init(&mcf->checks, cf->pool, 8,
                          sizeof(ngx_http_ml_guard_check_t)) != NGX_OK)
    {
        return NULL;
    }

    return mcf;
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
     *     conf->auth_configured = 0;
     */

    conf->enable = NGX_CONF_UNSET;
    conf->auth = NGX_CONF_UNSET_UINT;
    conf->roles = NGX_CONF_UNSET_PTR;

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

    /* conf->auth_configured: set by the methods' own merges */

    return ngx_http_ml_guard_check_auth_later(cf, conf);
}


/*
 * A location where ml_guard is on must have a way to authenticate, and every
 * method ml_guard_auth names must be configured there: nginx -t fails
 * otherwise.  The methods' merges run after this one, so the locations are
 * noted here and checked at postconfiguration (ngx_http_ml_guard_check_auth).
 * Server levels are not checked: their settings are completed by the
 * locations that inherit them (a request matching no location is refused
 * with 500 at request time, see ngx_http_ml_guard_authenticate()).
 */
static char *
ngx_http_ml_guard_check_auth_later(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *conf)
{
    ngx_http_conf_ctx_t            *ctx;
    ngx_http_ml_guard_check_t      *check;
    ngx_http_core_srv_conf_t       *cscf;
    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_ml_guard_main_conf_t  *mcf;

    if (!conf->enable || (conf->auth & NGX_HTTP_ML_GUARD_AUTH_NONE)) {
        return NGX_CONF_OK;
    }

    /* merging a server{}'s own settings, not a location's */

    ctx = cf->ctx;
    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_core_module);

    if (cscf->ctx->loc_conf == ctx->loc_conf) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ml_guard_module);

    check = ngx_array_push(&mcf->checks);
    if (check == NULL) {
        return NGX_CONF_ERROR;
    }

    check->lcf = conf;
    check->name = &clcf->name;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ml_guard_check_auth(ngx_conf_t *cf)
{
    u_char                            *p, *last, list[256];
    ngx_uint_t                         i, j;
    ngx_http_ml_guard_check_t         *check;
    ngx_http_ml_guard_main_conf_t     *mcf;
    ngx_http_ml_guard_auth_method_t  **m;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ml_guard_module);
    check = mcf->checks.elts;
    m = mcf->methods.elts;

    for (i = 0; i < mcf->checks.nelts; i++) {

        if (check[i].lcf->auth == 0 && check[i].lcf->auth_configured == 0) {
            p = list;
            last = list + sizeof(list);

            for (j = 0; j < mcf->methods.nelts; j++) {
                p = ngx_slprintf(p, last, "%s%V", j ? ", " : "",
                                 &m[j]->directive);
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"ml_guard\" is on in location \"%V\" but "
                               "no authentication method is configured "
                               "there: set one of %*s, or "
                               "\"ml_guard_auth none\"",
                               check[i].name, p - list, list);
            return NGX_ERROR;
        }

        for (j = 0; j < mcf->methods.nelts; j++) {

            if ((check[i].lcf->auth & m[j]->bit)
                && !(check[i].lcf->auth_configured & m[j]->bit)
                && !m[j]->conf_optional)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"ml_guard_auth\" accepts %V in location "
                                   "\"%V\" but no %V is set there",
                                   &m[j]->name, check[i].name,
                                   &m[j]->directive);
                return NGX_ERROR;
            }
        }
    }

    return NGX_OK;
}


static char *
ngx_http_ml_guard_auth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_loc_conf_t *lcf = conf;

    u_char                            *p, names[256];
    ngx_str_t                         *value;
    ngx_uint_t                         i, j, bit, bits;
    ngx_http_ml_guard_main_conf_t     *mcf;
    ngx_http_ml_guard_auth_method_t  **m;

    if (lcf->auth != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ml_guard_module);
    m = mcf->methods.elts;

    value = cf->args->elts;
    bits = 0;

    for (i = 1; i < cf->args->nelts; i++) {
        bit = 0;

        if (value[i].len == sizeof("none") - 1
            && ngx_strcasecmp((u_char *) "none", value[i].data) == 0)
        {
            bit = NGX_HTTP_ML_GUARD_AUTH_NONE;
        }

        for (j = 0; bit == 0 && j < mcf->methods.nelts; j++) {
            if (m[j]->name.len == value[i].len
                && ngx_strcasecmp(m[j]->name.data, value[i].data) == 0)
            {
                bit = m[j]->bit;
            }
        }

        if (bit == 0) {
            p = names;

            for (j = 0; j < mcf->methods.nelts; j++) {
                p = ngx_slprintf(p, names + sizeof(names), "%V, ",
                                 &m[j]->name);
            }

            if (p > names) {
                p -= 2;         /* the last ", " */
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid authentication method \"%V\", "
                               "expected %*s or none",
                               &value[i], (size_t) (p - names), names);
            return NGX_CONF_ERROR;
        }

        if (bits & bit) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "authentication method \"%V\" is listed twice",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        bits |= bit;
    }

    if ((bits & NGX_HTTP_ML_GUARD_AUTH_NONE) && bits != NGX_HTTP_ML_GUARD_AUTH_NONE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"none\" cannot be combined with other methods");
        return NGX_CONF_ERROR;
    }

    lcf->auth = bits;

    return NGX_CONF_OK;
}


void *
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

    if (ngx_http_ml_guard_problem_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the core's own steps */

    if (ngx_http_ml_guard_add_step(cf, NGX_HTTP_ML_GUARD_AUTHENTICATE,
                                   ngx_http_ml_guard_authenticate) != NGX_OK
        || ngx_http_ml_guard_add_step(cf, NGX_HTTP_ML_GUARD_AUTHORIZE,
                                      ngx_http_ml_guard_authorize) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* every merge is done: the methods have said where they are set up */

    return ngx_http_ml_guard_check_auth(cf);
}


/* the step table */

ngx_int_t
ngx_http_ml_guard_add_step(ngx_conf_t *cf, ngx_http_ml_guard_stage_e stage,
    ngx_http_ml_guard_step_pt handler)
{
    ngx_uint_t                      i;
    ngx_http_ml_guard_step_t       *step;
    ngx_http_ml_guard_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ml_guard_module);

    if (ngx_array_push(&mcf->steps) == NULL) {
        return NGX_ERROR;
    }

    /* after every step of this stage and the earlier ones */

    step = mcf->steps.elts;

    for (i = mcf->steps.nelts - 1; i > 0 && step[i - 1].stage > stage; i--) {
        step[i] = step[i - 1];
    }

    step[i].stage = stage;
    step[i].handler = handler;

    return NGX_OK;
}


ngx_int_t
ngx_http_ml_guard_add_auth_method(ngx_conf_t *cf,
    ngx_http_ml_guard_auth_method_t *method)
{
    ngx_http_ml_guard_main_conf_t     *mcf;
    ngx_http_ml_guard_auth_method_t  **m;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ml_guard_module);

    if (mcf->methods.nelts >= NGX_HTTP_ML_GUARD_AUTH_METHODS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many ml_guard authentication methods");
        return NGX_ERROR;
    }

    m = ngx_array_push(&mcf->methods);
    if (m == NULL) {
        return NGX_ERROR;
    }

    method->bit = (ngx_uint_t) 1 << (mcf->methods.nelts - 1);
    *m = method;

    return NGX_OK;
}


void
ngx_http_ml_guard_auth_configured(ngx_conf_t *cf,
    ngx_http_ml_guard_auth_method_t *method)
{
    ngx_http_ml_guard_loc_conf_t  *lcf;

    /* during merge, cf->ctx is the location being merged */
    lcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_ml_guard_module);

    lcf->auth_configured |= method->bit;
}


ngx_int_t
ngx_http_ml_guard_on_auth_failure(ngx_conf_t *cf,
    ngx_http_ml_guard_auth_failed_pt handler)
{
    ngx_http_ml_guard_main_conf_t     *mcf;
    ngx_http_ml_guard_auth_failed_pt  *h;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_ml_guard_module);

    h = ngx_array_push(&mcf->auth_failed);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = handler;

    return NGX_OK;
}


ngx_uint_t
ngx_http_ml_guard_auth_methods(ngx_http_request_t *r)
{
    ngx_http_ml_guard_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_module);

    /* without ml_guard_auth, every configured method is accepted */

    return lcf->auth ? lcf->auth : lcf->auth_configured;
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
    ngx_int_t                       rc;
    ngx_http_ml_guard_ctx_t        *ctx;
    ngx_http_ml_guard_step_t       *step;
    ngx_http_ml_guard_loc_conf_t   *lcf;
    ngx_http_ml_guard_main_conf_t  *mcf;

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

        ctx->ratelimit_remaining = -1;
        ctx->start_us = ngx_http_ml_guard_now_us();

        ngx_http_set_ctx(r, ctx, ngx_http_ml_guard_module);

    } else if (ctx->decision) {
        /* decided before an internal redirect to this location */
        return ctx->decision == 1
               ? NGX_DECLINED
               : ngx_http_ml_guard_final(r, (ngx_int_t) ctx->status);
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ml_guard_module);
    step = mcf->steps.elts;

    for ( ;; ) {

        if (ctx->step >= mcf->steps.nelts) {
            ctx->decision = 1;
            ngx_http_ml_guard_metrics_decision(ctx);
            return NGX_DECLINED;
        }

        rc = step[ctx->step].handler(r, ctx);

        if (rc != NGX_OK) {
            if (rc == NGX_ERROR) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            if (rc == NGX_AGAIN || rc == NGX_DONE) {
                /* waiting: the step resumes the phases when it can go on */
                return NGX_DONE;
            }

            return ngx_http_ml_guard_final(r, rc);
        }

        ctx->step++;
    }
}


/*
 * Makes a denial final whatever "satisfy" says.  Under "satisfy all" the
 * access phase finalizes any refusal itself; under "satisfy any" a 401 or
 * 403 would only be one vote, which a later allow (an address in "allow",
 * auth_basic) overrides, so the request is finalized here.  An allow from
 * ml-guard is NGX_DECLINED: it never ends the access phase, so the other
 * access modules still decide among themselves as "satisfy" says.
 */
static ngx_int_t
ngx_http_ml_guard_final(ngx_http_request_t *r, ngx_int_t status)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (clcf->satisfy == NGX_HTTP_SATISFY_ALL
        || (status != NGX_HTTP_UNAUTHORIZED && status != NGX_HTTP_FORBIDDEN))
    {
        return status;
    }

    ngx_http_finalize_request(r, status);

    return NGX_DONE;
}


static ngx_int_t
ngx_http_ml_guard_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx)
{
    ngx_int_t                          rc;
    ngx_uint_t                         i, methods;
    ngx_http_ml_guard_ctx_t            first;
    ngx_http_ml_guard_reason_e         reason, failure;
    ngx_http_ml_guard_main_conf_t     *mcf;
    ngx_http_ml_guard_auth_method_t  **m;
    ngx_http_ml_guard_auth_failed_pt  *failed;

    methods = ngx_http_ml_guard_auth_methods(r);

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

    mcf = ngx_http_get_module_main_conf(r, ngx_http_ml_guard_module);

    if (ctx->auth_failure != MLG_REASON_NONE) {
        /* refused before: the failure handlers were waiting */
        failure = ctx->auth_failure;
        goto failed;
    }

    /*
     * Every credential presented for an accepted method is checked and must
     * be valid: a refused one denies the request (and counts as a failure)
     * even next to a valid one, so a valid credential cannot be used to try
     * others unthrottled.  The principal is the first valid one, in the
     * order the methods registered (api_key, jwt, mtls: see "config").
     */

    failure = MLG_REASON_NONE;
    ngx_memzero(&first, sizeof(ngx_http_ml_guard_ctx_t));

    m = mcf->methods.elts;

    for (i = 0; i < mcf->methods.nelts; i++) {

        if (!(methods & m[i]->bit)) {
            continue;
        }

        rc = m[i]->authenticate(r, ctx, &reason);

        if (rc == NGX_OK) {
            if (first.auth_method.len == 0) {
                first = *ctx;
            }

        } else if (rc == NGX_ERROR && failure == MLG_REASON_NONE) {
            failure = reason;
        }
    }

    if (failure == MLG_REASON_NONE && first.auth_method.len) {
        ctx->principal = first.principal;
        ctx->auth_method = first.auth_method;
        ctx->auth_issuer = first.auth_issuer;
        ctx->roles = first.roles;
        ctx->role_list = first.role_list;
        return NGX_OK;
    }

    /* a refused credential leaves the request without a principal */

    ngx_str_null(&ctx->principal);
    ngx_str_null(&ctx->auth_method);
    ngx_str_null(&ctx->auth_issuer);
    ngx_str_null(&ctx->roles);
    ctx->role_list = NULL;

    if (failure == MLG_REASON_NONE) {
        failure = MLG_REASON_MISSING_CREDENTIALS;

    } else {
        ngx_http_ml_guard_metric_add(MLG_METRIC_AUTH_FAILURES, 1);
    }

    ctx->auth_failure = failure;

failed:

    /* e.g. the lockout: counts a refusal before it is told */

    failed = mcf->auth_failed.elts;

    for (i = 0; i < mcf->auth_failed.nelts; i++) {
        rc = failed[i](r, ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    switch (failure) {

    case MLG_REASON_MISSING_CREDENTIALS:
        return ngx_http_ml_guard_deny(r, ctx, failure,
                                      "no credentials were presented");

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
                                      "verify, or its subject is not one "
                                      "usable name");

    default:
        return ngx_http_ml_guard_deny(r, ctx, failure,
                                      "the bearer token is not valid");
    }
}


/*
 * Every principal, whatever its source, obeys mlg_principal_check(): it
 * goes into headers sent upstream, rate-limit keys and log lines.  A
 * refused one is logged escaped and the credential is refused.
 */
static ngx_int_t
ngx_http_ml_guard_check_principal(ngx_http_request_t *r, const char *method,
    const u_char *principal, size_t len)
{
    char                shown[128];
    mlg_principal_rc_e  rc;

    rc = mlg_principal_check(principal, len);
    if (rc == MLG_PRINCIPAL_OK) {
        return NGX_OK;
    }

    mlg_principal_escape(shown, sizeof(shown), principal, len);

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "ml_guard: refused the %s identity \"%s\": it %s",
                  method, shown, mlg_principal_problem(rc));

    return NGX_ERROR;
}


ngx_int_t
ngx_http_ml_guard_set_principal(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, const char *method, const u_char *principal,
    size_t len, const char *roles, size_t roles_len)
{
    u_char     *p, *end, *comma;
    ngx_str_t  *role;

    if (ngx_http_ml_guard_check_principal(r, method, principal, len)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

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
    ngx_http_ml_guard_ctx_t *ctx)
{
    ngx_str_t                     *need, *have;
    ngx_uint_t                     i, j;
    ngx_http_ml_guard_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_module);

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
