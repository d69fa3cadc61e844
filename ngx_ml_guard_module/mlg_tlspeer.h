/*
 * The verification result of a TLS client's certificate, as of now.
 *
 * A resumed session (session id from a shared cache, or a ticket, in TLS
 * 1.2 and 1.3) carries the peer certificate and the verification result of
 * the full handshake that made it, possibly before a CRL update and a
 * reload.  For such a connection the certificate is verified again, once,
 * against the current store of the connection's SSL_CTX (its CA
 * certificates, CRLs and flags) and the connection's verify parameters, as
 * OpenSSL verifies during a handshake.  Plain C, no nginx headers.
 */
#ifndef MLG_TLSPEER_H
#define MLG_TLSPEER_H

#include <openssl/ssl.h>

/*
 * X509_V_OK or an X509_V_ERR_* code (X509_verify_cert_error_string()).
 * A full handshake gives SSL_get_verify_result().  A resumed session is
 * verified again on the first call (unless the session's own result is
 * already a failure), and the result is kept with the connection (and set
 * as its SSL_get_verify_result(), so later checks on the connection,
 * nginx's own included, see it); *reverified is 1 when this call verified
 * again, else 0.  The chain is built from the certificates the
 * server trusts plus whatever part of the client's chain the session kept
 * (sessions from a cache or a ticket keep only the client's certificate).
 */
long mlg_tls_peer_verify(SSL *ssl, int *reverified);

#endif /* MLG_TLSPEER_H */
