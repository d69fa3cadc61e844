/*
 * libFuzzer target for mlg_jwt.c and mlg_jwt_cache.c (scripts/fuzz fuzz_jwt).
 * The first byte picks what the rest is:
 *   0  a token, verified against an HMAC key with iss/aud/roles policy
 *   1  a token, verified against a JWKS of an RSA and an EC key (by kid)
 *   2  a key file (JWKS, JWK, PEM or secret), with and without alg=
 *   3  a payload, roles read at a dotted path
 *   4  a token, through the verified-token cache
 * Inputs that verify are impossible to find by chance; the point is the
 * parsing and checking before and around the signature.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "mlg_jwt.h"
#include "mlg_jwt_cache.h"

static mlg_jwt_keyset_t  *hmac_keys;
static mlg_jwt_keyset_t  *jwks_keys;
static mlg_jwt_cache_t   *cache;


static void
b64url_bn(EVP_PKEY *k, const char *param, int pad, char *out)
{
    static const char  abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char      buf[512];
    BIGNUM            *bn = NULL;
    int                n, i, bits;
    unsigned           acc;

    EVP_PKEY_get_bn_param(k, param, &bn);
    n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    acc = 0;
    bits = 0;
    for (i = 0; i < n; i++) {
        acc = (acc << 8) | buf[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            *out++ = abc[(acc >> bits) & 63];
        }
    }
    if (bits > 0) {
        *out++ = abc[(acc << (6 - bits)) & 63];
    }
    *out = '\0';
}


static void
init(void)
{
    char       doc[4096], n[400], e[16], x[64], y[64], err[256];
    EVP_PKEY  *rsa, *ec;

    hmac_keys = mlg_jwt_keyset_parse((const unsigned char *)
                                     "0123456789abcdef0123456789abcdef", 32,
                                     "hmac", NULL, err, sizeof(err));
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
    ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    b64url_bn(rsa, OSSL_PKEY_PARAM_RSA_N, 0, n);
    b64url_bn(rsa, OSSL_PKEY_PARAM_RSA_E, 0, e);
    b64url_bn(ec, OSSL_PKEY_PARAM_EC_PUB_X, 32, x);
    b64url_bn(ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32, y);
    snprintf(doc, sizeof(doc),
             "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"%s\",\"e\":\"%s\"},"
             "{\"kty\":\"EC\",\"kid\":\"e\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             n, e, x, y);
    jwks_keys = mlg_jwt_keyset_parse((const unsigned char *) doc, strlen(doc),
                                     "jwks", NULL, err, sizeof(err));
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    cache = mlg_jwt_cache_new(64);
    if (hmac_keys == NULL || jwks_keys == NULL || cache == NULL) {
        fprintf(stderr, "fuzz_jwt: setup failed: %s\n", err);
        abort();
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char   *algs[] = { NULL, "HS256", "RS256", "ES256", "ES512" };
    char                 err[512];
    const char          *s, *nl;
    size_t               len;
    mlg_jwt_identity_t   id;
    mlg_jwt_policy_t     pol;
    mlg_jwt_keyset_t    *ks;

    if (hmac_keys == NULL) {
        init();
    }
    if (size < 1) {
        return 0;
    }
    s = (const char *) data + 1;
    len = size - 1;
    memset(&pol, 0, sizeof(pol));
    pol.issuer = "https://idp.test";
    pol.audience = "ml-api";
    pol.roles_claim = "realm_access.roles";
    pol.leeway = data[0] >> 4;
    pol.exp_optional = data[0] & 0x08;

    switch (data[0] % 5) {
    case 0:
        mlg_jwt_verify(hmac_keys, &pol, s, len, 1700000000, &id);
        break;
    case 1:
        mlg_jwt_verify(jwks_keys, &pol, s, len, 1700000000, &id);
        break;
    case 2:
        ks = mlg_jwt_keyset_parse((const unsigned char *) s, len, "fuzz",
                                  algs[(data[0] >> 3) % 5], err, sizeof(err));
        if (ks != NULL) {
            mlg_jwt_verify(ks, &pol, "a.b.c", 5, 1700000000, &id);
        }
        mlg_jwt_keyset_free(ks);
        break;
    case 3:
        /* first line: the path; the rest: the payload */
        nl = memchr(s, '\n', len);
        if (nl != NULL && nl - s < 200) {
            char  path[201];

            memcpy(path, s, (size_t) (nl - s));
            path[nl - s] = '\0';
            mlg_jwt_roles_from_json(nl + 1, len - (size_t) (nl + 1 - s), path, &id);
        }
        break;
    default:
        if (mlg_jwt_cache_get(cache, data[0], s, len, 1700000000) == NULL
            && mlg_jwt_verify(hmac_keys, &pol, s, len, 1700000000, &id) == MLG_JWT_OK)
        {
            mlg_jwt_cache_put(cache, data[0], s, len, 1700000000, &id);
        }
        break;
    }
    return 0;
}
