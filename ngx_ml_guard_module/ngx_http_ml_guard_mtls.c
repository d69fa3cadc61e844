/*
 * Client certificates: ml_guard_mtls_roles FILE.
 *
 * nginx verifies the chain (ssl_verify_client, ssl_client_certificate,
 * ssl_crl); this module verifies a resumed session's certificate again
 * (mlg_tlspeer.c), takes the subject CN as the principal and its roles
 * from the role map (mlg_rolemap.c), loaded at configuration time.
 * An authentication method of the core; it also claims nginx's own 400
 * for a certificate that failed verification, as a problem document.
 */

#include "ngx_http_ml_guard_module.h"
#include "mlg_rolemap.h"
#include "mlg_tlspeer.h"


typedef struct {
    mlg_rolemap_t                       *mtls_roles;      /* ml_guard_mtls_roles */
} ngx_http_ml_guard_mtls_conf_t;


static ngx_int_t ngx_http_ml_guard_mtls_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_http_ml_guard_reason_e *reason);
#if (NGX_HTTP_SSL)
static ngx_int_t ngx_http_ml_guard_mtls_verified(ngx_http_request_t *r);
#endif
static ngx_int_t ngx_http_ml_guard_mtls_challenge(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_uint_t alone);
static ngx_http_ml_guard_reason_e ngx_http_ml_guard_mtls_nginx_error(
    ngx_http_request_t *r);
static char *ngx_http_ml_guard_mtls_roles(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_ml_guard_mtls_preconf(ngx_conf_t *cf);
static void *ngx_http_ml_guard_mtls_create_conf(ngx_conf_t *cf);
static char *ngx_http_ml_guard_mtls_merge_conf(ngx_conf_t *cf, void *parent,
    void *child);


static ngx_command_t  ngx_http_ml_guard_mtls_commands[] = {

    { ngx_string("ml_guard_mtls_roles"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_ml_guard_mtls_roles,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ml_guard_mtls_module_ctx = {
    ngx_http_ml_guard_mtls_preconf,        /* preconfiguration */
    NULL,                                  /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_ml_guard_mtls_create_conf,    /* create location configuration */
    ngx_http_ml_guard_mtls_merge_conf      /* merge location configuration */
};


ngx_module_t  ngx_http_ml_guard_mtls_module = {
    NGX_MODULE_V1,
    &ngx_http_ml_guard_mtls_module_ctx,    /* module context */
    ngx_http_ml_guard_mtls_commands,       /* module directives */
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


static ngx_http_ml_guard_auth_method_t  ngx_http_ml_guard_mtls_method = {
    ngx_string("mtls"),
    ngx_http_ml_guard_mtls_authenticate,
    ngx_http_ml_guard_mtls_challenge,
    ngx_http_ml_guard_mtls_nginx_error,
    0,
    ngx_string("ml_guard_mtls_roles"),
    1   /* without a role map: principals without roles */
};


static ngx_int_t
ngx_http_ml_guard_mtls_preconf(ngx_conf_t *cf)
{
    return ngx_http_ml_guard_add_auth_method(cf, &ngx_http_ml_guard_mtls_method);
}


static void *
ngx_http_ml_guard_mtls_create_conf(ngx_conf_t *cf)
{
    ngx_http_ml_guard_mtls_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ml_guard_mtls_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->mtls_roles = NULL;
     */

    return conf;
}


static char *
ngx_http_ml_guard_mtls_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ml_guard_mtls_conf_t  *prev = parent;
    ngx_http_ml_guard_mtls_conf_t  *conf = child;

    if (conf->mtls_roles == NULL) {
        conf->mtls_roles = prev->mtls_roles;
    }

    if (conf->mtls_roles) {
        ngx_http_ml_guard_auth_configured(cf, &ngx_http_ml_guard_mtls_method);
    }

    return NGX_CONF_OK;
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
ngx_http_ml_guard_mtls_roles(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_mtls_conf_t *lcf = conf;

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


/*
 * mTLS: nginx verified the chain (ssl_verify_client optional|on, with
 * ssl_client_certificate and ssl_crl) in a full handshake; a resumed
 * session's certificate is verified again here.  The principal is the
 * subject CN (one, by the principal rule of set_principal).  NGX_DECLINED
 * when no certificate was sent.
 */
static ngx_int_t
ngx_http_ml_guard_mtls_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_http_ml_guard_reason_e *reason)
{
#if (NGX_HTTP_SSL)
    int                         idx, len;
    X509                       *cert;
    ngx_int_t                   rc;
    X509_NAME                  *subject;
    unsigned char              *cn;
    X509_NAME_ENTRY            *entry;
    const mlg_rolemap_entry_t  *e;

    ngx_http_ml_guard_mtls_conf_t  *lcf;

    if (r->connection->ssl == NULL) {
        return NGX_DECLINED;
    }

    cert = SSL_get_peer_certificate(r->connection->ssl->connection);
    if (cert == NULL) {
        return NGX_DECLINED;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_mtls_module);

    *reason = MLG_REASON_INVALID_CLIENT_CERT;
    rc = NGX_ERROR;
    cn = NULL;

    if (ngx_http_ml_guard_mtls_verified(r) != NGX_OK) {
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
    if (len <= 0) {
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


#if (NGX_HTTP_SSL)

/*
 * NGX_OK when the client certificate verifies now: a resumed TLS session's
 * certificate is verified again against the current CA and CRL (its cached
 * result may predate a revocation and a reload).
 */
static ngx_int_t
ngx_http_ml_guard_mtls_verified(ngx_http_request_t *r)
{
    int   reverified;
    long  result;

    result = mlg_tls_peer_verify(r->connection->ssl->connection, &reverified);

    if (result == X509_V_OK) {
        return NGX_OK;
    }

    if (reverified) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "ml_guard: client certificate of a resumed TLS session "
                      "does not verify now (%l:%s)",
                      result, X509_verify_cert_error_string(result));
    }

    return NGX_DECLINED;
}

#endif


/* Only when client certificates are the one method accepted here. */
static ngx_int_t
ngx_http_ml_guard_mtls_challenge(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_uint_t alone)
{
    ngx_str_t  v;

    if (!alone) {
        return NGX_OK;
    }

    ngx_str_set(&v, "Mutual-TLS realm=\"ml-guard\"");

    return ngx_http_ml_guard_add_header(r, "WWW-Authenticate", &v);
}


/*
 * nginx's 400 for a client certificate that failed verification (other
 * CA, revoked, expired) where mTLS roles are configured -- nginx answers
 * those before any location is chosen, so the server-level configuration
 * decides.
 */
static ngx_http_ml_guard_reason_e
ngx_http_ml_guard_mtls_nginx_error(ngx_http_request_t *r)
{
#if (NGX_HTTP_SSL)
    ngx_http_ml_guard_mtls_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_mtls_module);

    if (r->headers_out.status == NGX_HTTP_BAD_REQUEST
        && lcf->mtls_roles != NULL
        && r->connection->ssl != NULL
        && SSL_get_verify_result(r->connection->ssl->connection) != X509_V_OK)
    {
        return MLG_REASON_INVALID_CLIENT_CERT;
    }
#endif

    return MLG_REASON_NONE;
}
