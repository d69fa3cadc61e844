/*
 * JWT bearer tokens: the nginx glue over mlg_jwt.c and mlg_jwt_cache.c.
 *
 *   ml_guard_jwt_key FILE [alg=ALG];   parsed once, here, at config time
 *   ml_guard_jwt_issuer STRING;
 *   ml_guard_jwt_audience STRING;
 *   ml_guard_jwt_leeway TIME;
 *   ml_guard_jwt_roles_claim PATH;
 *   ml_guard_jwt_cache on | off;
 *   ml_guard_jwt_require_exp on | off;
 *
 * A request's "Authorization: Bearer TOKEN" (scheme without case) is looked
 * up in the worker's cache of verified tokens, else verified; the identity
 * goes to ngx_http_ml_guard_set_principal().  An authentication method of
 * the core.
 */

#include "ngx_http_ml_guard_module.h"
#include "mlg_jwt.h"
#include "mlg_jwt_cache.h"


/* verified tokens remembered per worker */
#define NGX_HTTP_ML_GUARD_JWT_CACHE_SIZE  1024


typedef struct {
    mlg_jwt_keyset_t   *keyset;         /* NULL: not set at this level */
    ngx_str_t           key_file;
    ngx_str_t           issuer;         /* NUL-terminated; data NULL: unset */
    ngx_str_t           audience;
    ngx_str_t           roles_claim;
    time_t              leeway;
    ngx_flag_t          cache;
    ngx_flag_t          require_exp;
    mlg_jwt_policy_t    policy;         /* built by merge */
} ngx_http_ml_guard_jwt_conf_t;


static ngx_int_t ngx_http_ml_guard_jwt_preconf(ngx_conf_t *cf);
static void *ngx_http_ml_guard_jwt_create_conf(ngx_conf_t *cf);
static char *ngx_http_ml_guard_jwt_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_ml_guard_jwt_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_http_ml_guard_reason_e *reason);
static ngx_int_t ngx_http_ml_guard_jwt_challenge(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_uint_t alone);
static char *ngx_http_ml_guard_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ml_guard_jwt_issuer(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ml_guard_jwt_audience(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_ml_guard_jwt_leeway(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ml_guard_jwt_roles_claim(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static void ngx_http_ml_guard_jwt_keyset_cleanup(void *data);
static ngx_int_t ngx_http_ml_guard_jwt_bearer(ngx_http_request_t *r,
    ngx_str_t *token);
static char *ngx_http_ml_guard_jwt_set_str(ngx_conf_t *cf, ngx_str_t *field,
    const char *what, ngx_uint_t is_path);


static ngx_command_t  ngx_http_ml_guard_jwt_commands[] = {

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
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ml_guard_jwt_conf_t, cache),
      NULL },

    { ngx_string("ml_guard_jwt_require_exp"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_ml_guard_jwt_conf_t, require_exp),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ml_guard_jwt_module_ctx = {
    ngx_http_ml_guard_jwt_preconf,         /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ml_guard_jwt_create_conf,     /* create location configuration */
    ngx_http_ml_guard_jwt_merge_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_ml_guard_jwt_module = {
    NGX_MODULE_V1,
    &ngx_http_ml_guard_jwt_module_ctx,     /* module context */
    ngx_http_ml_guard_jwt_commands,        /* module directives */
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


static ngx_http_ml_guard_auth_method_t  ngx_http_ml_guard_jwt_method = {
    ngx_string("jwt"),
    ngx_http_ml_guard_jwt_authenticate,
    ngx_http_ml_guard_jwt_challenge,
    NULL,
    0,
    ngx_string("ml_guard_jwt_key"),
    0
};


/* created in the worker on first use; never in the master */
static mlg_jwt_cache_t  *ngx_http_ml_guard_jwt_cache;


static ngx_int_t
ngx_http_ml_guard_jwt_preconf(ngx_conf_t *cf)
{
    return ngx_http_ml_guard_add_auth_method(cf, &ngx_http_ml_guard_jwt_method);
}


static void *
ngx_http_ml_guard_jwt_create_conf(ngx_conf_t *cf)
{
    ngx_http_ml_guard_jwt_conf_t  *jcf;

    jcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ml_guard_jwt_conf_t));
    if (jcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     jcf->keyset = NULL;
     *     jcf->key_file = { 0, NULL };
     *     jcf->issuer = { 0, NULL };
     *     jcf->audience = { 0, NULL };
     *     jcf->roles_claim = { 0, NULL };
     */

    jcf->leeway = NGX_CONF_UNSET;
    jcf->cache = NGX_CONF_UNSET;
    jcf->require_exp = NGX_CONF_UNSET;

    return jcf;
}


static char *
ngx_http_ml_guard_jwt_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ml_guard_jwt_conf_t  *p = parent;
    ngx_http_ml_guard_jwt_conf_t  *c = child;

    if (c->keyset == NULL) {
        c->keyset = p->keyset;
        c->key_file = p->key_file;
    }

    if (c->issuer.data == NULL) {
        c->issuer = p->issuer;
    }

    if (c->audience.data == NULL) {
        c->audience = p->audience;
    }

    ngx_conf_merge_str_value(c->roles_claim, p->roles_claim, "roles");
    ngx_conf_merge_sec_value(c->leeway, p->leeway, 0);
    ngx_conf_merge_value(c->cache, p->cache, 1);
    ngx_conf_merge_value(c->require_exp, p->require_exp, 1);

    c->policy.issuer = (const char *) c->issuer.data;
    c->policy.audience = (const char *) c->audience.data;
    c->policy.roles_claim = (const char *) c->roles_claim.data;
    c->policy.leeway = c->leeway;
    c->policy.exp_optional = !c->require_exp;

    if (c->keyset != NULL) {
        ngx_http_ml_guard_auth_configured(cf, &ngx_http_ml_guard_jwt_method);
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ml_guard_jwt_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_http_ml_guard_reason_e *reason)
{
    ngx_str_t                     token;
    mlg_jwt_result_t              rc;
    mlg_jwt_identity_t            verified;
    const mlg_jwt_identity_t     *id;
    ngx_http_ml_guard_jwt_conf_t  *jcf;

    if (ngx_http_ml_guard_jwt_bearer(r, &token) != NGX_OK) {
        return NGX_DECLINED;
    }

    jcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_jwt_module);

    if (jcf->keyset == NULL) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "ml_guard: a bearer token was presented but no "
                      "ml_guard_jwt_key is configured here");
        *reason = MLG_REASON_INVALID_TOKEN;
        return NGX_ERROR;
    }

    id = NULL;

    if (jcf->cache) {
        if (ngx_http_ml_guard_jwt_cache == NULL) {
            ngx_http_ml_guard_jwt_cache =
                mlg_jwt_cache_new(NGX_HTTP_ML_GUARD_JWT_CACHE_SIZE);
        }

        /* the conf's address scopes entries to this key and policy */
        id = mlg_jwt_cache_get(ngx_http_ml_guard_jwt_cache,
                               (uint64_t) (uintptr_t) jcf,
                               (const char *) token.data, token.len,
                               (long long) ngx_time());

        ngx_http_ml_guard_metric_add(id ? MLG_METRIC_JWT_CACHE_HITS
                                        : MLG_METRIC_JWT_CACHE_MISSES, 1);
    }

    if (id == NULL) {
        rc = mlg_jwt_verify(jcf->keyset, &jcf->policy,
                            (const char *) token.data, token.len,
                            (long long) ngx_time(), &verified);

        if (rc != MLG_JWT_OK) {
            ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "ml_guard: bearer token refused: %s",
                           mlg_jwt_reason(rc));

            switch (rc) {
            case MLG_JWT_EXPIRED:
                *reason = MLG_REASON_TOKEN_EXPIRED;
                break;
            case MLG_JWT_NOT_YET_VALID:
                *reason = MLG_REASON_TOKEN_NOT_YET_VALID;
                break;
            case MLG_JWT_CLAIMS:
                *reason = MLG_REASON_TOKEN_CLAIMS;
                break;
            default:
                *reason = MLG_REASON_INVALID_TOKEN;
            }

            return NGX_ERROR;
        }

        if (jcf->cache) {
            mlg_jwt_cache_put(ngx_http_ml_guard_jwt_cache,
                              (uint64_t) (uintptr_t) jcf,
                              (const char *) token.data, token.len,
                              (long long) ngx_time(), &verified);
        }

        id = &verified;
    }

    *reason = MLG_REASON_INVALID_TOKEN;

    /* a subject is unique within its issuer: limits are keyed by both */
    if (jcf->issuer.data != NULL) {
        ctx->auth_issuer = jcf->issuer;
    }

    return ngx_http_ml_guard_set_principal(r, ctx, "jwt",
                                           (const u_char *) id->principal,
                                           ngx_strlen(id->principal),
                                           id->roles, strnlen(id->roles, sizeof(id->roles)));
}


/*
 * NGX_OK and the token when the request carries "Authorization: Bearer
 * TOKEN"; NGX_DECLINED for no Authorization header or another scheme.
 * An empty token is returned as such (and refused as invalid_token).
 */
static ngx_int_t
ngx_http_ml_guard_jwt_bearer(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char           *p, *end;
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h == NULL) {
        return NGX_DECLINED;
    }

    p = h->value.data;
    end = p + h->value.len;

    if (end - p < 6 || ngx_strncasecmp(p, (u_char *) "Bearer", 6) != 0) {
        return NGX_DECLINED;
    }

    p += 6;

    if (p < end && *p != ' ' && *p != '\t') {
        return NGX_DECLINED;            /* e.g. "BearerX" */
    }

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }

    token->data = p;
    token->len = end - p;

    return NGX_OK;
}


static char *
ngx_http_ml_guard_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_jwt_conf_t *jcf = conf;

    char                          err[512];
    char                         *alg;
    ngx_str_t                    *value, file;
    mlg_jwt_keyset_t             *ks;

    if (jcf->keyset != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    alg = NULL;

    if (cf->args->nelts == 3) {
        if (value[2].len <= 4
            || ngx_strncmp(value[2].data, "alg=", 4) != 0
            || !mlg_jwt_alg_supported((char *) value[2].data + 4))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\", expected alg= "
                               "with HS256, HS384, HS512, RS256, RS384, "
                               "RS512, ES256, ES384 or ES512", &value[2]);
            return NGX_CONF_ERROR;
        }

        alg = (char *) value[2].data + 4;
    }

    file = value[1];

    if (ngx_conf_full_name(cf->cycle, &file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ks = mlg_jwt_keyset_load((char *) file.data, alg, err, sizeof(err));
    if (ks == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", err);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_ml_guard_conf_keep(cf, ks, ngx_http_ml_guard_jwt_keyset_cleanup)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    jcf->keyset = ks;
    jcf->key_file = file;

    return NGX_CONF_OK;
}


static void
ngx_http_ml_guard_jwt_keyset_cleanup(void *data)
{
    mlg_jwt_keyset_free(data);
}


static char *
ngx_http_ml_guard_jwt_issuer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_jwt_conf_t *jcf = conf;

    return ngx_http_ml_guard_jwt_set_str(cf, &jcf->issuer, "issuer", 0);
}


static char *
ngx_http_ml_guard_jwt_audience(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_jwt_conf_t *jcf = conf;

    return ngx_http_ml_guard_jwt_set_str(cf, &jcf->audience, "audience", 0);
}


/*
 * A non-empty string without control characters, kept NUL-terminated for
 * mlg_jwt.  A claim path also has no spaces and no dot at either end.
 */
static char *
ngx_http_ml_guard_jwt_set_str(ngx_conf_t *cf, ngx_str_t *field,
    const char *what, ngx_uint_t is_path)
{
    ngx_str_t   *value, *v;
    ngx_uint_t   i;

    if (field->data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    v = &value[1];

    for (i = 0; i < v->len; i++) {
        if (v->data[i] < 0x20 || v->data[i] == 0x7f
            || (is_path && v->data[i] == ' '))
        {
            break;
        }
    }

    if (v->len == 0 || i < v->len
        || (is_path && (v->len > 256 || v->data[0] == '.'
                        || v->data[v->len - 1] == '.')))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid %s \"%V\"%s",
                           what, v, is_path ? ", expected a claim name or a "
                           "dotted path such as \"realm_access.roles\"" : "");
        return NGX_CONF_ERROR;
    }

    field->len = v->len;
    field->data = ngx_pnalloc(cf->pool, v->len + 1);
    if (field->data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(field->data, v->data, v->len);
    field->data[field->len] = '\0';

    return NGX_CONF_OK;
}


static char *
ngx_http_ml_guard_jwt_leeway(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_jwt_conf_t *jcf = conf;

    time_t      leeway;
    ngx_str_t  *value;

    if (jcf->leeway != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    leeway = ngx_parse_time(&value[1], 1);

    /* more than a day of skew is a misconfiguration, not clock drift */
    if (leeway == (time_t) NGX_ERROR || leeway > 86400) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid leeway \"%V\", expected a time "
                           "between 0s and 1d", &value[1]);
        return NGX_CONF_ERROR;
    }

    jcf->leeway = leeway;

    return NGX_CONF_OK;
}


static char *
ngx_http_ml_guard_jwt_roles_claim(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_ml_guard_jwt_conf_t *jcf = conf;

    return ngx_http_ml_guard_jwt_set_str(cf, &jcf->roles_claim,
                                         "roles claim path", 1);
}


/* RFC 6750 challenge; error="invalid_token" once a token was refused. */
static ngx_int_t
ngx_http_ml_guard_jwt_challenge(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_uint_t alone)
{
    ngx_str_t  v;

    if (ctx->reason == MLG_REASON_MISSING_CREDENTIALS
        || ctx->reason == MLG_REASON_INVALID_API_KEY)
    {
        ngx_str_set(&v, "Bearer realm=\"ml-guard\"");

    } else {
        ngx_str_set(&v, "Bearer realm=\"ml-guard\", error=\"invalid_token\"");
    }

    return ngx_http_ml_guard_add_header(r, "WWW-Authenticate", &v);
}
