/*
 * Test helpers for the JWT unit tests: keys generated at run time with
 * OpenSSL, tokens signed by hand (so tests can forge any header, alg none,
 * HS256 keyed with a PEM, wrong kids...), JWK members.  Header-only.
 */
#ifndef MLG_JWT_TOKENS_H
#define MLG_JWT_TOKENS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

static char *
tk_b64url(const unsigned char *d, size_t n)
{
    static const char  abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char               *out, *p;
    size_t              i;
    unsigned            v;

    out = malloc(n * 4 / 3 + 4);
    p = out;
    for (i = 0; i + 2 < n; i += 3) {
        v = (unsigned) d[i] << 16 | (unsigned) d[i + 1] << 8 | d[i + 2];
        *p++ = abc[v >> 18];
        *p++ = abc[(v >> 12) & 63];
        *p++ = abc[(v >> 6) & 63];
        *p++ = abc[v & 63];
    }
    if (n - i == 1) {
        v = (unsigned) d[i] << 16;
        *p++ = abc[v >> 18];
        *p++ = abc[(v >> 12) & 63];
    } else if (n - i == 2) {
        v = (unsigned) d[i] << 16 | (unsigned) d[i + 1] << 8;
        *p++ = abc[v >> 18];
        *p++ = abc[(v >> 12) & 63];
        *p++ = abc[(v >> 6) & 63];
    }
    *p = '\0';
    return out;
}

static char *
tk_b64url_str(const char *s)
{
    return tk_b64url((const unsigned char *) s, strlen(s));
}

static EVP_PKEY *
tk_rsa(unsigned bits)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) bits);
}

static EVP_PKEY *
tk_ec(const char *curve)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
}

static char *
tk_pem(EVP_PKEY *k, int private_key)
{
    BIO   *b;
    char  *data, *out;
    long   n;

    b = BIO_new(BIO_s_mem());
    if (private_key) {
        PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    } else {
        PEM_write_bio_PUBKEY(b, k);
    }
    n = BIO_get_mem_data(b, &data);
    out = malloc((size_t) n + 1);
    memcpy(out, data, (size_t) n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

static const EVP_MD *
tk_md(const char *alg)
{
    if (strstr(alg, "384")) {
        return EVP_sha384();
    }
    if (strstr(alg, "512")) {
        return EVP_sha512();
    }
    return EVP_sha256();
}

/*
 * A token over header (JSON text) and payload (JSON text).  alg picks the
 * signing: "HS*" with secret, "RS*"/"ES*" with key (ES as raw R||S of
 * coordinate size csize), "none" leaves the signature empty.
 */
static char *
tk_sign(const char *alg, const char *header, const char *payload,
    EVP_PKEY *key, const void *secret, size_t secret_len, size_t csize)
{
    char           *h, *p, *input, *sig64, *out;
    unsigned char   sig[1024], raw[132];
    size_t          slen;
    unsigned int    hlen;
    EVP_MD_CTX     *md;
    ECDSA_SIG      *es;
    const unsigned char *q;

    h = tk_b64url_str(header);
    p = tk_b64url_str(payload);
    input = malloc(strlen(h) + strlen(p) + 2);
    sprintf(input, "%s.%s", h, p);
    slen = 0;

    if (strncmp(alg, "HS", 2) == 0) {
        HMAC(tk_md(alg), secret, (int) secret_len, (unsigned char *) input,
             strlen(input), sig, &hlen);
        slen = hlen;

    } else if (strncmp(alg, "RS", 2) == 0 || strncmp(alg, "ES", 2) == 0) {
        md = EVP_MD_CTX_new();
        slen = sizeof(sig);
        EVP_DigestSignInit(md, NULL, tk_md(alg), NULL, key);
        EVP_DigestSign(md, sig, &slen, (unsigned char *) input, strlen(input));
        EVP_MD_CTX_free(md);
        if (alg[0] == 'E') {
            q = sig;
            es = d2i_ECDSA_SIG(NULL, &q, (long) slen);
            memset(raw, 0, sizeof(raw));
            BN_bn2binpad(ECDSA_SIG_get0_r(es), raw, (int) csize);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), raw + csize, (int) csize);
            ECDSA_SIG_free(es);
            memcpy(sig, raw, 2 * csize);
            slen = 2 * csize;
        }
    }

    sig64 = tk_b64url(sig, slen);
    out = malloc(strlen(input) + strlen(sig64) + 2);
    sprintf(out, "%s.%s", input, sig64);
    free(h);
    free(p);
    free(input);
    free(sig64);
    return out;
}

/* base64url of a big-number parameter, left-padded to pad bytes (0: none) */
static char *
tk_bn_param(EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM         *bn = NULL;
    unsigned char   buf[1024];
    int             n;

    EVP_PKEY_get_bn_param(k, param, &bn);
    n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return tk_b64url(buf, (size_t) n);
}

/* JWK text for an RSA or EC public key; alg may be NULL (member left out) */
static char *
tk_jwk(EVP_PKEY *k, const char *kid, const char *alg, const char *extra)
{
    char        *out, *a, *b, algm[64];
    const char  *crv;
    int          size;

    out = malloc(4096);
    algm[0] = '\0';
    if (alg != NULL) {
        snprintf(algm, sizeof(algm), "\"alg\":\"%s\",", alg);
    }
    if (EVP_PKEY_is_a(k, "RSA")) {
        a = tk_bn_param(k, OSSL_PKEY_PARAM_RSA_N, 0);
        b = tk_bn_param(k, OSSL_PKEY_PARAM_RSA_E, 0);
        snprintf(out, 4096, "{\"kty\":\"RSA\",\"kid\":\"%s\",%s%s\"n\":\"%s\",\"e\":\"%s\"}",
                 kid, algm, extra ? extra : "", a, b);
    } else {
        size = EVP_PKEY_get_bits(k) == 256 ? 32 : EVP_PKEY_get_bits(k) == 384 ? 48 : 66;
        crv = size == 32 ? "P-256" : size == 48 ? "P-384" : "P-521";
        a = tk_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, size);
        b = tk_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, size);
        snprintf(out, 4096, "{\"kty\":\"EC\",\"kid\":\"%s\",%s%s\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}",
                 kid, algm, extra ? extra : "", crv, a, b);
    }
    free(a);
    free(b);
    return out;
}

#endif /* MLG_JWT_TOKENS_H */
