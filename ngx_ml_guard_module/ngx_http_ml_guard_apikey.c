/*
 * API keys: ml_guard_api_keys FILE and ml_guard_api_key_header NAME.
 *
 * The key file is loaded once, at configuration time, by mlg_apikeys.c
 * (hashed keys, ids and roles); a request's key header (name matched
 * without case) is looked up there and the key's id and roles become the
 * principal.  An authentication method of the core, tried first.
 */

#include "ngx_http_ml_guard_module.h"
#include "mlg_apikeys.h"


typedef struct {
    mlg_apikeys_t                       *api_keys;        /* ml_guard_api_keys */
    ngx_str_t                            api_keys_file;
    ngx_str_t                            api_key_header;  /* matched without case */
} ngx_http_ml_guard_apikey_conf_t;


static ngx_int_t ngx_http_ml_guard_api_key_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_http_ml_guard_reason_e *reason);
static ngx_int_t ngx_http_ml_guard_api_key_challenge(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_uint_t alone);
static char *ngx_http_ml_guard_api_keys(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ml_guard_api_key_header(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_ml_guard_apikey_preconf(ngx_conf_t *cf);
static void *ngx_http_ml_guard_apikey_create_conf(ngx_conf_t *cf);
static char *ngx_http_ml_guard_apikey_merge_conf(ngx_conf_t *cf,
    void *parent, void *child);


static ngx_command_t  ngx_http_ml_guard_apikey_commands[] = {

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

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ml_guard_apikey_module_ctx = {
    ngx_http_ml_guard_apikey_preconf,      /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ml_guard_apikey_create_conf,  /* create location configuration */
    ngx_http_ml_guard_apikey_merge_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_ml_guard_apikey_module = {
    NGX_MODULE_V1,
    &ngx_http_ml_guard_apikey_module_ctx,  /* module context */
    ngx_http_ml_guard_apikey_commands,     /* module directives */
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


static ngx_http_ml_guard_auth_method_t  ngx_http_ml_guard_api_key_method = {
    ngx_string("api_key"),
    ngx_http_ml_guard_api_key_authenticate,
    ngx_http_ml_guard_api_key_challenge,
    NULL,
    0,
    ngx_string("ml_guard_api_keys"),
    0
};


static ngx_int_t
ngx_http_ml_guard_apikey_preconf(ngx_conf_t *cf)
{
    return ngx_http_ml_guard_add_auth_method(cf,
                                             &ngx_http_ml_guard_api_key_method);
}


static void *
ngx_http_ml_guard_apikey_create_conf(ngx_conf_t *cf)
{
    ngx_http_ml_guard_apikey_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ml_guard_apikey_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->api_keys = NULL;
     *     conf->api_keys_file = { 0, NULL };
     *     conf->api_key_header = { 0, NULL };
     */

    return conf;
}


static char *
ngx_http_ml_guard_apikey_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ml_guard_apikey_conf_t  *prev = parent;
    ngx_http_ml_guard_apikey_conf_t  *conf = child;

    ngx_conf_merge_str_value(conf->api_key_header, prev->api_key_header,
                             "X-API-Key");

    if (conf->api_keys == NULL) {
        conf->api_keys = prev->api_keys;
        conf->api_keys_file = prev->api_keys_file;
    }

    if (conf->api_keys) {
        ngx_http_ml_guard_auth_configured(cf, &ngx_http_ml_guard_api_key_method);
    }

    return NGX_CONF_OK;
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


static char *
ngx_http_ml_guard_api_keys(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_apikey_conf_t *lcf = conf;

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
ngx_http_ml_guard_api_key_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_ml_guard_apikey_conf_t *lcf = conf;

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


/*
 * NGX_OK: a known key; NGX_DECLINED: no key presented; NGX_ERROR: a key was
 * presented and refused.  Two copies of the header are refused: which one
 * counts would otherwise depend on the proxy in front.
 */
static ngx_int_t
ngx_http_ml_guard_api_key_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_http_ml_guard_reason_e *reason)
{
    ngx_uint_t           i;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *h, *found;
    const mlg_apikey_t  *key;

    ngx_http_ml_guard_apikey_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_apikey_module);

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


/* RFC 9110 challenge: the scheme names the header to send the key in. */
static ngx_int_t
ngx_http_ml_guard_api_key_challenge(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_uint_t alone)
{
    u_char                           *p;
    ngx_str_t                         v;
    ngx_http_ml_guard_apikey_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_apikey_module);

    v.len = sizeof("ApiKey realm=\"ml-guard\", header=\"\"") - 1
            + lcf->api_key_header.len;
    v.data = ngx_pnalloc(r->pool, v.len);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(v.data, "ApiKey realm=\"ml-guard\", header=\"%V\"",
                    &lcf->api_key_header);
    v.len = p - v.data;

    return ngx_http_ml_guard_add_header(r, "WWW-Authenticate", &v);
}
