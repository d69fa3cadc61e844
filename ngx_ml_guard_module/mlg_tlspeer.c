/*
 * Verifying the client certificate of a resumed TLS session again; see
 * mlg_tlspeer.h.
 */
#include <stdint.h>

#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "mlg_tlspeer.h"


/* the result kept with a connection: verify result + 1 (0: not yet) */
static int  mlg_tlspeer_index = -1;


static long
mlg_tls_peer_reverify(SSL *ssl)
{
    long                 result;
    X509                *cert;
    X509_STORE          *store;
    X509_STORE_CTX      *xctx;
    X509_VERIFY_PARAM   *param;

    cert = SSL_get0_peer_certificate(ssl);
    if (cert == NULL) {
        return X509_V_ERR_UNSPECIFIED;
    }

    store = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
    xctx = X509_STORE_CTX_new();

    if (store == NULL || xctx == NULL
        || !X509_STORE_CTX_init(xctx, store, cert, SSL_get_peer_cert_chain(ssl)))
    {
        X509_STORE_CTX_free(xctx);
        return X509_V_ERR_OUT_OF_MEM;
    }

    /* what OpenSSL sets when a server verifies a client's chain: the
     * store's flags (CRL checks), the ssl_client purpose, the connection's
     * parameters (depth) and its security level */
    param = X509_STORE_CTX_get0_param(xctx);

    if (!X509_STORE_CTX_set_default(xctx, "ssl_client")
        || !X509_VERIFY_PARAM_set1(param, SSL_get0_param(ssl)))
    {
        X509_STORE_CTX_free(xctx);
        return X509_V_ERR_OUT_OF_MEM;
    }

    X509_VERIFY_PARAM_set_auth_level(param, SSL_get_security_level(ssl));

    if (X509_verify_cert(xctx) == 1) {
        result = X509_V_OK;

    } else {
        result = X509_STORE_CTX_get_error(xctx);
        if (result == X509_V_OK) {
            result = X509_V_ERR_UNSPECIFIED;
        }
    }

    X509_STORE_CTX_free(xctx);

    return result;
}


long
mlg_tls_peer_verify(SSL *ssl, int *reverified)
{
    long       result;
    uintptr_t  kept;

    *reverified = 0;

    if (!SSL_session_reused(ssl)) {
        return SSL_get_verify_result(ssl);
    }

    if (mlg_tlspeer_index < 0) {
        mlg_tlspeer_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
        if (mlg_tlspeer_index < 0) {
            return X509_V_ERR_OUT_OF_MEM;
        }
    }

    kept = (uintptr_t) SSL_get_ex_data(ssl, mlg_tlspeer_index);
    if (kept != 0) {
        return (long) (kept - 1);
    }

    /* the session's cached result first: a failure stays a failure */
    result = SSL_get_verify_result(ssl);
    if (result == X509_V_OK) {
        result = mlg_tls_peer_reverify(ssl);
        *reverified = 1;
    }

    SSL_set_verify_result(ssl, result);

    if (!SSL_set_ex_data(ssl, mlg_tlspeer_index, (void *) (uintptr_t) (result + 1))) {
        return X509_V_ERR_OUT_OF_MEM;
    }

    return result;
}
