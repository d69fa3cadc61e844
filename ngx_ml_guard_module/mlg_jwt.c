/*
 * JWT bearer tokens: see mlg_jwt.h.
 *
 * Keys are parsed once, at load time, into OpenSSL 3 objects (PEM, X.509
 * certificates, and JWKS members built with EVP_PKEY_fromdata), together
 * with the contexts verification reuses: a keyed HMAC for HS*, a verify
 * context and a digest context for RS* and ES*.  A token's shape and header
 * are checked before any crypto, and the algorithm is pinned per key (so an
 * HS256 token "signed" with an RSA public key's PEM, or alg none, never
 * reaches a signature check).  Each part is base64url-decoded once and the
 * header and payload each parsed once, with jansson; the signature is
 * checked with OpenSSL directly (HMAC compared with CRYPTO_memcmp), then
 * the claims (exp, nbf, iss, aud, sub) and roles are read from the parsed
 * payload.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE             /* memmem */
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "mlg_conffile.h"
#include "mlg_jwt.h"

#define MLG_JWT_MIN_RSA_BITS  2048

typedef enum {
    KIND_HMAC,
    KIND_RSA,
    KIND_EC
} key_kind_t;

typedef struct {
    const char  *name;
    key_kind_t   kind;
    size_t       size;      /* HMAC: minimum secret bytes and MAC bytes;
                               EC: coordinate bytes */
    const char  *group;     /* EC: OpenSSL group name */
    const char  *crv;       /* EC: JWK curve name */
} alg_info_t;

static const alg_info_t  algs[] = {
    { "HS256", KIND_HMAC, 32, NULL, NULL },
    { "HS384", KIND_HMAC, 48, NULL, NULL },
    { "HS512", KIND_HMAC, 64, NULL, NULL },
    { "RS256", KIND_RSA, 0, NULL, NULL },
    { "RS384", KIND_RSA, 0, NULL, NULL },
    { "RS512", KIND_RSA, 0, NULL, NULL },
    { "ES256", KIND_EC, 32, "prime256v1", "P-256" },
    { "ES384", KIND_EC, 48, "secp384r1", "P-384" },
    { "ES512", KIND_EC, 66, "secp521r1", "P-521" },
};

#define NALGS  (sizeof(algs) / sizeof(algs[0]))

/*
 * A key with everything verification needs prepared at load time, so a
 * token costs no fetch, key setup or allocation in OpenSSL: HS* an HMAC
 * context keyed once (re-initialised per token, which restores the keyed
 * state), RS* and ES* a verify context bound to the key and digest, and a
 * digest context.  These contexts are reused, so one key set serves one
 * thread at a time (each nginx worker has its own copy).
 */
typedef struct {
    const alg_info_t  *alg;
    char              *kid;         /* NULL when the key has none */
    EVP_MAC_CTX       *mac;         /* HS*: keyed HMAC */
    EVP_PKEY          *pkey;        /* RS*, ES*: the public key */
    EVP_PKEY_CTX      *verify;      /* RS*, ES*: verify context on pkey */
    EVP_MD_CTX        *digest;      /* RS*, ES*: for the signing input */
    EVP_MD            *md;          /* RS*, ES*: the digest, fetched once */
} mlg_jwt_key_t;

/*
 * The last token header that passed the header checks, as it appears in the
 * token (base64url), and the key it selected.  The checks depend only on
 * the header's bytes and the key set, so a token whose header is the same
 * string gets the same key without decoding and parsing it again (tokens
 * from one issuer normally share one header).
 */
#define MLG_JWT_HEADER_MEMO  256

typedef struct {
    size_t               len;       /* 0: empty */
    const mlg_jwt_key_t *key;
    char                 b64[MLG_JWT_HEADER_MEMO];
} header_memo_t;

struct mlg_jwt_keyset_s {
    mlg_jwt_key_t  *keys;
    size_t          n;
    size_t          cap;
    int             jwks;           /* keys came from a JWK set */
    header_memo_t  *memo;           /* mutable: see mlg_jwt_key_t */
};

/* Per-load context, so helpers can report "FILE: message". */
typedef struct {
    const char        *name;
    const alg_info_t  *pinned;      /* from alg=, or NULL */
    char              *err;
    size_t             errlen;
} load_ctx_t;


const char *
mlg_jwt_reason(mlg_jwt_result_t rc)
{
    switch (rc) {
    case MLG_JWT_OK:
        return "";
    case MLG_JWT_EXPIRED:
        return "token_expired";
    case MLG_JWT_NOT_YET_VALID:
        return "token_not_yet_valid";
    case MLG_JWT_CLAIMS:
        return "token_claims";
    case MLG_JWT_NOMEM:
        return "internal_error";
    default:
        return "invalid_token";
    }
}


static const alg_info_t *
alg_find(const char *name, size_t len)
{
    size_t  i;

    for (i = 0; i < NALGS; i++) {
        if (strlen(algs[i].name) == len && memcmp(algs[i].name, name, len) == 0) {
            return &algs[i];
        }
    }
    return NULL;
}


int
mlg_jwt_alg_supported(const char *name)
{
    return name != NULL && alg_find(name, strlen(name)) != NULL;
}


static void
load_error(load_ctx_t *lc, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    if (lc->err == NULL || lc->errlen == 0) {
        return;
    }
    n = snprintf(lc->err, lc->errlen, "%s: ", lc->name);
    if (n < 0 || (size_t) n >= lc->errlen) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(lc->err + n, lc->errlen - n, fmt, ap);
    va_end(ap);
}


/* base64url */

/* the value of each base64url character, -1 for any other byte */
static const signed char  b64url_values[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 62, -1, -1,
    52, 53, 54, 55, 56, 57, 58, 59, 60, 61, -1, -1, -1, -1, -1, -1,
    -1,  0,  1,  2,  3,  4,  5,  6,  7,  8,  9, 10, 11, 12, 13, 14,
    15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, -1, -1, -1, -1, 63,
    -1, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
    41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};


long
mlg_jwt_b64url_decode(const char *in, size_t len, unsigned char *out)
{
    const unsigned char  *p;
    size_t                i, o;
    int                   a, b, c, d;

    p = (const unsigned char *) in;
    o = 0;
    for (i = 0; i + 4 <= len; i += 4) {
        a = b64url_values[p[i]];
        b = b64url_values[p[i + 1]];
        c = b64url_values[p[i + 2]];
        d = b64url_values[p[i + 3]];
        if ((a | b | c | d) < 0) {
            return -1;
        }
        out[o++] = (unsigned char) (a << 2 | b >> 4);
        out[o++] = (unsigned char) ((b & 0x0f) << 4 | c >> 2);
        out[o++] = (unsigned char) ((c & 0x03) << 6 | d);
    }

    /* A tail of 2 or 3 characters carries 1 or 2 bytes; the unused low
     * bits of its last character must be zero, so each byte string has
     * exactly one encoding.  A tail of 1 character is never valid. */
    switch (len - i) {
    case 0:
        break;
    case 2:
        a = b64url_values[p[i]];
        b = b64url_values[p[i + 1]];
        if ((a | b) < 0 || (b & 0x0f) != 0) {
            return -1;
        }
        out[o++] = (unsigned char) (a << 2 | b >> 4);
        break;
    case 3:
        a = b64url_values[p[i]];
        b = b64url_values[p[i + 1]];
        c = b64url_values[p[i + 2]];
        if ((a | b | c) < 0 || (c & 0x03) != 0) {
            return -1;
        }
        out[o++] = (unsigned char) (a << 2 | b >> 4);
        out[o++] = (unsigned char) ((b & 0x0f) << 4 | c >> 2);
        break;
    default:
        return -1;
    }
    out[o] = '\0';
    return (long) o;
}


/* Key set construction */

static void
key_clear(mlg_jwt_key_t *k)
{
    free(k->kid);
    EVP_MAC_CTX_free(k->mac);           /* cleanses the key */
    EVP_PKEY_CTX_free(k->verify);
    EVP_MD_CTX_free(k->digest);
    EVP_PKEY_free(k->pkey);
    EVP_MD_free(k->md);
}


void
mlg_jwt_keyset_free(mlg_jwt_keyset_t *ks)
{
    size_t  i;

    if (ks == NULL) {
        return;
    }
    for (i = 0; i < ks->n; i++) {
        key_clear(&ks->keys[i]);
    }
    free(ks->keys);
    free(ks->memo);
    free(ks);
}


size_t
mlg_jwt_keyset_count(const mlg_jwt_keyset_t *ks)
{
    return ks == NULL ? 0 : ks->n;
}


const char *
mlg_jwt_keyset_alg(const mlg_jwt_keyset_t *ks, size_t i)
{
    return (ks == NULL || i >= ks->n) ? NULL : ks->keys[i].alg->name;
}


const char *
mlg_jwt_keyset_kid(const mlg_jwt_keyset_t *ks, size_t i)
{
    if (ks == NULL || i >= ks->n) {
        return NULL;
    }
    return ks->keys[i].kid != NULL ? ks->keys[i].kid : "";
}


/* An HMAC context keyed with secret, for the digest of alg. */
static EVP_MAC_CTX *
hmac_new(const alg_info_t *alg, const unsigned char *secret, size_t len)
{
    char          md_name[8];
    EVP_MAC      *mac;
    EVP_MAC_CTX  *ctx;
    OSSL_PARAM    params[2];

    /* "HS256" -> "SHA256" */
    snprintf(md_name, sizeof(md_name), "SHA%s", alg->name + 2);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 md_name, 0);
    params[1] = OSSL_PARAM_construct_end();
    mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac);                  /* the context keeps a reference */
    if (ctx != NULL && (EVP_MAC_init(ctx, secret, len, params) != 1
                        || EVP_MAC_CTX_get_mac_size(ctx) != alg->size))
    {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    ERR_clear_error();
    return ctx;
}


/* The verify context of a public key: digest set, PKCS #1 v1.5 padding for
 * RSA (the default). */
static EVP_PKEY_CTX *
verify_new(EVP_PKEY *pkey, const EVP_MD *md)
{
    EVP_PKEY_CTX  *ctx;

    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (ctx != NULL && (EVP_PKEY_verify_init(ctx) != 1
                        || EVP_PKEY_CTX_set_signature_md(ctx, md) != 1))
    {
        EVP_PKEY_CTX_free(ctx);
        ctx = NULL;
    }
    ERR_clear_error();
    return ctx;
}


/* Adds an HMAC key (secret, which the HMAC context copies) or a public
 * key (pkey, of which it takes a reference). */
static int
keyset_add(load_ctx_t *lc, mlg_jwt_keyset_t *ks, const alg_info_t *alg,
    const char *kid, const unsigned char *secret, size_t len, EVP_PKEY *pkey)
{
    mlg_jwt_key_t  *k, *grown;
    size_t          cap;
    char            md_name[8];
    int             rc;

    rc = -1;
    if (ks->n == ks->cap) {
        cap = ks->cap ? ks->cap * 2 : 4;
        grown = realloc(ks->keys, cap * sizeof(mlg_jwt_key_t));
        if (grown == NULL) {
            goto done;
        }
        ks->keys = grown;
        ks->cap = cap;
    }
    k = &ks->keys[ks->n];
    memset(k, 0, sizeof(*k));
    k->alg = alg;
    if (kid != NULL) {
        k->kid = strdup(kid);
        if (k->kid == NULL) {
            goto done;
        }
    }
    if (pkey != NULL) {
        /* "RS256" -> "SHA256" */
        snprintf(md_name, sizeof(md_name), "SHA%s", alg->name + 2);
        k->md = EVP_MD_fetch(NULL, md_name, NULL);
        if (k->md == NULL || EVP_PKEY_up_ref(pkey) != 1) {
            goto fail;
        }
        k->pkey = pkey;
        k->verify = verify_new(pkey, k->md);
        k->digest = EVP_MD_CTX_new();
        if (k->verify == NULL || k->digest == NULL) {
            goto fail;
        }
    } else {
        k->mac = secret != NULL ? hmac_new(alg, secret, len) : NULL;
        if (k->mac == NULL) {
            goto fail;
        }
    }
    ks->n++;
    rc = 0;
    goto done;

fail:
    key_clear(k);

done:
    if (rc != 0) {
        load_error(lc, "out of memory");
    }
    return rc;
}


/*
 * Decides the algorithm for a public key: the pinned one (which must fit
 * the key's type and curve) or the default for the key.  Returns NULL and
 * sets the error when the key does not fit.  what names the key in
 * messages ("key", "JWK kid=abc").
 */
static const alg_info_t *
pkey_alg(load_ctx_t *lc, EVP_PKEY *pkey, const alg_info_t *want,
    const char *what)
{
    char               group[64];
    size_t             glen, i;
    key_kind_t         kind;
    const alg_info_t  *curve_alg;
    int                bits;

    if (EVP_PKEY_is_a(pkey, "RSA")) {
        kind = KIND_RSA;
        bits = EVP_PKEY_get_bits(pkey);
        if (bits < MLG_JWT_MIN_RSA_BITS) {
            load_error(lc, "%s is a %d-bit RSA key; at least %d bits are required",
                       what, bits, MLG_JWT_MIN_RSA_BITS);
            return NULL;
        }
        if (want == NULL) {
            return alg_find("RS256", 5);
        }
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        kind = KIND_EC;
        curve_alg = NULL;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) == 1) {
            for (i = 0; i < NALGS; i++) {
                if (algs[i].group != NULL && strcmp(algs[i].group, group) == 0) {
                    curve_alg = &algs[i];
                }
            }
        }
        if (curve_alg == NULL) {
            load_error(lc, "%s is an EC key on an unsupported curve "
                       "(P-256, P-384 and P-521 are supported)", what);
            return NULL;
        }
        if (want == NULL) {
            return curve_alg;
        }
        if (want->kind == KIND_EC && want != curve_alg) {
            load_error(lc, "%s is an EC key on %s, which is for %s, not %s",
                       what, curve_alg->crv, curve_alg->name, want->name);
            return NULL;
        }
    } else {
        load_error(lc, "%s is not an RSA or EC public key", what);
        return NULL;
    }

    if (want->kind != kind) {
        load_error(lc, "%s is an %s key, which cannot verify %s",
                   what, kind == KIND_RSA ? "RSA" : "EC", want->name);
        return NULL;
    }
    return want;
}


static int
keyset_add_pkey(load_ctx_t *lc, mlg_jwt_keyset_t *ks, EVP_PKEY *pkey,
    const alg_info_t *want, const char *kid, const char *what)
{
    const alg_info_t  *alg;

    alg = pkey_alg(lc, pkey, want, what);
    if (alg == NULL) {
        return -1;
    }
    return keyset_add(lc, ks, alg, kid, NULL, 0, pkey);
}


static int
load_hmac(load_ctx_t *lc, mlg_jwt_keyset_t *ks, const unsigned char *data,
    size_t len, const alg_info_t *want, const char *kid, const char *what)
{
    const alg_info_t  *alg;

    alg = want != NULL ? want : alg_find("HS256", 5);
    if (alg->kind != KIND_HMAC) {
        load_error(lc, "%s is an HMAC secret (not a PEM key or JWKS), "
                   "which cannot verify %s", what, alg->name);
        return -1;
    }
    if (len < alg->size) {
        load_error(lc, "%s: the HMAC secret is %zu bytes; %s needs at least %zu",
                   what, len, alg->name, alg->size);
        return -1;
    }
    return keyset_add(lc, ks, alg, kid, data, len, NULL);
}


static int
load_pem(load_ctx_t *lc, mlg_jwt_keyset_t *ks, const unsigned char *data,
    size_t len)
{
    BIO               *bio;
    EVP_PKEY          *pkey;
    X509              *cert;
    OSSL_DECODER_CTX  *dctx;
    const unsigned char *p;
    size_t             plen;
    int                rc;

    if (memmem(data, len, "PRIVATE KEY-----", 16) != NULL) {
        load_error(lc, "holds a private key; give the public key instead "
                   "(openssl pkey -in KEY -pubout)");
        return -1;
    }

    /* SubjectPublicKeyInfo ("PUBLIC KEY") or PKCS#1 ("RSA PUBLIC KEY") */
    pkey = NULL;
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, NULL,
                                         EVP_PKEY_PUBLIC_KEY, NULL, NULL);
    if (dctx == NULL) {
        load_error(lc, "out of memory");
        return -1;
    }
    p = data;
    plen = len;
    if (OSSL_DECODER_from_data(dctx, &p, &plen) != 1) {
        pkey = NULL;
    }
    OSSL_DECODER_CTX_free(dctx);

    if (pkey == NULL) {
        /* an X.509 certificate: its public key */
        bio = BIO_new_mem_buf(data, (int) len);
        if (bio == NULL) {
            load_error(lc, "out of memory");
            return -1;
        }
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        BIO_free(bio);
        if (cert != NULL) {
            pkey = X509_get_pubkey(cert);
            X509_free(cert);
        }
    }
    ERR_clear_error();

    if (pkey == NULL) {
        load_error(lc, "cannot read a PEM public key or certificate from it");
        return -1;
    }
    rc = keyset_add_pkey(lc, ks, pkey, lc->pinned, NULL, "the key");
    EVP_PKEY_free(pkey);
    return rc;
}


/* JWK members */

/* Decodes a base64url JWK member (padding tolerated) into a new buffer. */
static unsigned char *
jwk_bytes(json_t *jwk, const char *member, size_t *len)
{
    json_t         *v;
    const char     *s;
    size_t          slen;
    unsigned char  *out;
    long            n;

    v = json_object_get(jwk, member);
    if (!json_is_string(v)) {
        return NULL;
    }
    s = json_string_value(v);
    slen = json_string_length(v);
    while (slen > 0 && s[slen - 1] == '=') {
        slen--;
    }
    if (slen == 0) {
        return NULL;
    }
    out = malloc(slen * 3 / 4 + 1);
    if (out == NULL) {
        return NULL;
    }
    n = mlg_jwt_b64url_decode(s, slen, out);
    if (n <= 0) {
        free(out);
        return NULL;
    }
    *len = (size_t) n;
    return out;
}


static EVP_PKEY *
pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM    *params;
    EVP_PKEY_CTX  *ctx;
    EVP_PKEY      *pkey;

    pkey = NULL;
    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params != NULL && ctx != NULL
        && EVP_PKEY_fromdata_init(ctx) == 1
        && EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    {
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}


static EVP_PKEY *
jwk_rsa(json_t *jwk)
{
    unsigned char   *n, *e;
    size_t           nlen, elen;
    BIGNUM          *bn_n, *bn_e;
    OSSL_PARAM_BLD  *bld;
    EVP_PKEY        *pkey;

    pkey = NULL;
    bn_n = NULL;
    bn_e = NULL;
    bld = NULL;
    n = jwk_bytes(jwk, "n", &nlen);
    e = jwk_bytes(jwk, "e", &elen);
    if (n == NULL || e == NULL || elen > 8) {
        goto done;
    }
    bn_n = BN_bin2bn(n, (int) nlen, NULL);
    bn_e = BN_bin2bn(e, (int) elen, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn_n == NULL || bn_e == NULL || bld == NULL
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1)
    {
        goto done;
    }
    pkey = pkey_from_params("RSA", bld);

done:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}


static EVP_PKEY *
jwk_ec(json_t *jwk, const alg_info_t *curve)
{
    unsigned char    point[1 + 2 * 66];
    unsigned char   *x, *y;
    size_t           xlen, ylen;
    OSSL_PARAM_BLD  *bld;
    EVP_PKEY        *pkey;
    EVP_PKEY_CTX    *check;

    pkey = NULL;
    bld = NULL;
    x = jwk_bytes(jwk, "x", &xlen);
    y = jwk_bytes(jwk, "y", &ylen);
    /* RFC 7518 6.2.1.2: x and y are exactly the coordinate size */
    if (x == NULL || y == NULL || xlen != curve->size || ylen != curve->size) {
        goto done;
    }
    point[0] = 0x04;                    /* uncompressed point */
    memcpy(point + 1, x, xlen);
    memcpy(point + 1 + xlen, y, ylen);
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL
        || OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                           curve->group, 0) != 1
        || OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                            point, 1 + xlen + ylen) != 1)
    {
        goto done;
    }
    pkey = pkey_from_params("EC", bld);
    if (pkey != NULL) {
        /* the point must be on the curve */
        check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
        if (check == NULL || EVP_PKEY_public_check(check) != 1) {
            EVP_PKEY_free(pkey);
            pkey = NULL;
        }
        EVP_PKEY_CTX_free(check);
    }

done:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pkey;
}


/* Returns 1 if the JWK was added, 0 if skipped (not a signing key we
 * support), -1 on error. */
static int
load_jwk(load_ctx_t *lc, mlg_jwt_keyset_t *ks, json_t *jwk, size_t index)
{
    json_t            *v;
    const char        *kty, *kid, *crv;
    const alg_info_t  *alg, *curve;
    EVP_PKEY          *pkey;
    unsigned char     *secret;
    char               what[MLG_JWT_MAX_KID + 32];
    size_t             len, i;
    int                rc;

    if (!json_is_object(jwk)) {
        load_error(lc, "key #%zu is not a JSON object", index);
        return -1;
    }

    kid = NULL;
    v = json_object_get(jwk, "kid");
    if (v != NULL) {
        if (!json_is_string(v) || json_string_length(v) == 0
            || json_string_length(v) > MLG_JWT_MAX_KID
            || strlen(json_string_value(v)) != json_string_length(v))
        {
            load_error(lc, "key #%zu: \"kid\" is not a usable string", index);
            return -1;
        }
        kid = json_string_value(v);
        for (i = 0; i < ks->n; i++) {
            if (ks->keys[i].kid != NULL && strcmp(ks->keys[i].kid, kid) == 0) {
                load_error(lc, "key #%zu: kid \"%s\" appears twice", index, kid);
                return -1;
            }
        }
        snprintf(what, sizeof(what), "JWK kid \"%s\"", kid);
    } else {
        snprintf(what, sizeof(what), "JWK #%zu", index);
    }

    /* encryption keys are not for us */
    v = json_object_get(jwk, "use");
    if (json_is_string(v) && strcmp(json_string_value(v), "sig") != 0) {
        return 0;
    }

    v = json_object_get(jwk, "kty");
    if (!json_is_string(v)) {
        load_error(lc, "%s has no \"kty\"", what);
        return -1;
    }
    kty = json_string_value(v);

    /* The JWK's own alg; keys for algorithms we do not support, or
     * differing from the pinned one, are skipped. */
    alg = lc->pinned;
    v = json_object_get(jwk, "alg");
    if (json_is_string(v)) {
        alg = alg_find(json_string_value(v), json_string_length(v));
        if (alg == NULL || (lc->pinned != NULL && alg != lc->pinned)) {
            return 0;
        }
    }

    if (strcmp(kty, "oct") == 0) {
        if (alg != NULL && alg->kind != KIND_HMAC) {
            return 0;
        }
        secret = jwk_bytes(jwk, "k", &len);
        if (secret == NULL) {
            load_error(lc, "%s: \"k\" is missing or not base64url", what);
            return -1;
        }
        rc = load_hmac(lc, ks, secret, len, alg, kid, what);
        OPENSSL_cleanse(secret, len);
        free(secret);
        return rc == 0 ? 1 : -1;
    }

    if (strcmp(kty, "RSA") == 0) {
        if (alg != NULL && alg->kind != KIND_RSA) {
            return 0;
        }
        pkey = jwk_rsa(jwk);
        if (pkey == NULL) {
            load_error(lc, "%s: \"n\"/\"e\" do not make an RSA public key", what);
            return -1;
        }

    } else if (strcmp(kty, "EC") == 0) {
        if (alg != NULL && alg->kind != KIND_EC) {
            return 0;
        }
        v = json_object_get(jwk, "crv");
        crv = json_is_string(v) ? json_string_value(v) : "";
        curve = NULL;
        for (i = 0; i < NALGS; i++) {
            if (algs[i].crv != NULL && strcmp(algs[i].crv, crv) == 0) {
                curve = &algs[i];
            }
        }
        if (curve == NULL) {
            return 0;           /* e.g. secp256k1: not a JWS curve we verify */
        }
        if (alg != NULL && alg != curve) {
            if (lc->pinned != NULL) {
                return 0;       /* another curve than alg= asks for */
            }
            load_error(lc, "%s: curve %s is for %s, not %s",
                       what, curve->crv, curve->name, alg->name);
            return -1;
        }
        pkey = jwk_ec(jwk, curve);
        if (pkey == NULL) {
            load_error(lc, "%s: \"x\"/\"y\" are not a point on %s", what, crv);
            return -1;
        }

    } else {
        return 0;               /* OKP and others */
    }

    rc = keyset_add_pkey(lc, ks, pkey, alg, kid, what);
    EVP_PKEY_free(pkey);
    return rc == 0 ? 1 : -1;
}


static int
load_jwks(load_ctx_t *lc, mlg_jwt_keyset_t *ks, const unsigned char *data,
    size_t len)
{
    json_t        *doc, *keys;
    json_error_t   jerr;
    size_t         i, skipped;
    int            rc;

    doc = json_loadb((const char *) data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        load_error(lc, "not valid JSON (line %d: %s)", jerr.line, jerr.text);
        return -1;
    }
    ks->jwks = 1;
    rc = -1;
    skipped = 0;

    keys = json_object_get(doc, "keys");
    if (keys == NULL && json_object_get(doc, "kty") != NULL) {
        /* a single JWK */
        rc = load_jwk(lc, ks, doc, 0);
        if (rc == 1) {
            rc = 0;
        } else if (rc == 0) {
            load_error(lc, "the JWK is not a signing key for a supported "
                       "algorithm%s%s", lc->pinned ? " matching alg=" : "",
                       lc->pinned ? lc->pinned->name : "");
            rc = -1;
        }
        goto done;
    }
    if (!json_is_array(keys)) {
        load_error(lc, "not a JWKS: no \"keys\" array");
        goto done;
    }
    for (i = 0; i < json_array_size(keys); i++) {
        rc = load_jwk(lc, ks, json_array_get(keys, i), i);
        if (rc < 0) {
            goto done;
        }
        if (rc == 0) {
            skipped++;
        }
    }
    /* with several keys a token can only select one by kid */
    for (i = 0; ks->n > 1 && i < ks->n; i++) {
        if (ks->keys[i].kid == NULL) {
            load_error(lc, "the JWKS has %zu usable keys and one of them has "
                       "no \"kid\": with several keys each needs one",
                       ks->n);
            goto done;
        }
    }
    if (ks->n == 0) {
        load_error(lc, "the JWKS has no usable keys (%zu skipped: not for "
                   "signing, or not %s)", skipped,
                   lc->pinned ? lc->pinned->name
                              : "HS*/RS*/ES* with a supported curve");
        rc = -1;
        goto done;
    }
    rc = 0;

done:
    json_decref(doc);
    return rc;
}


mlg_jwt_keyset_t *
mlg_jwt_keyset_parse(const unsigned char *data, size_t len, const char *name,
    const char *alg, char *err, size_t errlen)
{
    load_ctx_t         lc;
    mlg_jwt_keyset_t  *ks;
    size_t             i;
    int                rc;

    lc.name = name != NULL ? name : "key";
    lc.err = err;
    lc.errlen = errlen;
    lc.pinned = NULL;
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    if (alg != NULL) {
        lc.pinned = alg_find(alg, strlen(alg));
        if (lc.pinned == NULL) {
            load_error(&lc, "unsupported algorithm \"%s\" (use HS256, HS384, "
                       "HS512, RS256, RS384, RS512, ES256, ES384 or ES512)", alg);
            return NULL;
        }
    }
    if (data == NULL || len == 0) {
        load_error(&lc, "the key file is empty");
        return NULL;
    }
    if (len > MLG_JWT_MAX_KEY_FILE) {
        load_error(&lc, "the key file is larger than %d bytes", MLG_JWT_MAX_KEY_FILE);
        return NULL;
    }

    ks = calloc(1, sizeof(mlg_jwt_keyset_t));
    if (ks != NULL) {
        ks->memo = calloc(1, sizeof(header_memo_t));
    }
    if (ks == NULL || ks->memo == NULL) {
        load_error(&lc, "out of memory");
        mlg_jwt_keyset_free(ks);
        return NULL;
    }

    /* The content decides; a broken PEM or JSON file is an error, never
     * taken as an HMAC secret. */
    for (i = 0; i < len && (data[i] == ' ' || data[i] == '\t'
                            || data[i] == '\r' || data[i] == '\n'); i++) {
        /* skip leading white space */
    }
    if (i < len && data[i] == '{') {
        rc = load_jwks(&lc, ks, data, len);
    } else if (memmem(data, len, "-----BEGIN", 10) != NULL) {
        rc = load_pem(&lc, ks, data, len);
    } else {
        rc = load_hmac(&lc, ks, data, len, lc.pinned, NULL, "the key file");
    }

    if (rc != 0) {
        mlg_jwt_keyset_free(ks);
        return NULL;
    }
    return ks;
}


mlg_jwt_keyset_t *
mlg_jwt_keyset_load(const char *path, const char *alg, char *err,
    size_t errlen)
{
    char              *data;
    size_t             len;
    mlg_jwt_keyset_t  *ks;

    data = mlg_conffile_read(path, MLG_JWT_MAX_KEY_FILE, &len, err, errlen);
    if (data == NULL) {
        return NULL;
    }
    ks = mlg_jwt_keyset_parse((unsigned char *) data, len, path, alg, err,
                              errlen);
    OPENSSL_cleanse(data, len);
    free(data);
    return ks;
}


/* Verification */

/* The key a token's kid selects: by kid in a JWK set; a single key is
 * used when the token names no kid; a PEM or secret file has one key with
 * no kid, so the token's kid is only a hint there. */
static const mlg_jwt_key_t *
select_key(const mlg_jwt_keyset_t *ks, json_t *kid)
{
    size_t  i;

    if (kid == NULL) {
        return ks->n == 1 ? &ks->keys[0] : NULL;
    }
    if (!json_is_string(kid)) {
        return NULL;
    }
    if (!ks->jwks) {
        return &ks->keys[0];
    }
    for (i = 0; i < ks->n; i++) {
        if (ks->keys[i].kid != NULL
            && strlen(ks->keys[i].kid) == json_string_length(kid)
            && strcmp(ks->keys[i].kid, json_string_value(kid)) == 0)
        {
            return &ks->keys[i];
        }
    }
    return NULL;
}


/* A decoded header or payload as a JSON object, or NULL. */
static json_t *
part_json(const unsigned char *text, size_t len)
{
    json_t  *obj;

    obj = json_loadb((const char *) text, len, JSON_REJECT_DUPLICATES, NULL);
    if (obj != NULL && !json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}


/* a string claim equal to want (length-exact: claims may hold \u0000) */
static int
json_string_is(json_t *v, const char *want)
{
    return json_is_string(v) && json_string_length(v) == strlen(want)
           && memcmp(json_string_value(v), want, strlen(want)) == 0;
}


static mlg_jwt_result_t
check_times(json_t *payload, const mlg_jwt_policy_t *policy, long long now,
    long long *exp_out)
{
    json_t  *exp, *nbf;
    double   t, leeway;

    leeway = policy->leeway > 0 ? (double) policy->leeway : 0.0;
    *exp_out = 0;

    exp = json_object_get(payload, "exp");
    if (exp != NULL) {
        if (!json_is_number(exp)) {
            return MLG_JWT_CLAIMS;
        }
        t = json_number_value(exp);
        /* RFC 7519 4.1.4: the current time must be before exp */
        if ((double) now >= t + leeway) {
            return MLG_JWT_EXPIRED;
        }
        *exp_out = t >= 9.0e15 ? (long long) 9.0e15 : (long long) t;
        if (*exp_out < 1) {
            *exp_out = 1;
        }
    } else if (!policy->exp_optional) {
        return MLG_JWT_CLAIMS;
    }

    nbf = json_object_get(payload, "nbf");
    if (nbf != NULL) {
        if (!json_is_number(nbf)) {
            return MLG_JWT_CLAIMS;
        }
        t = json_number_value(nbf);
        /* 4.1.5: the current time must be at or after nbf */
        if ((double) now + leeway < t) {
            return MLG_JWT_NOT_YET_VALID;
        }
    }
    return MLG_JWT_OK;
}


static mlg_jwt_result_t
check_claims(json_t *payload, const mlg_jwt_policy_t *policy,
    mlg_jwt_identity_t *id)
{
    json_t      *v, *aud;
    const char  *s;
    size_t       i, len;

    if (policy->issuer != NULL
        && !json_string_is(json_object_get(payload, "iss"), policy->issuer))
    {
        return MLG_JWT_CLAIMS;
    }

    if (policy->audience != NULL) {
        aud = json_object_get(payload, "aud");
        if (json_is_array(aud)) {
            for (i = 0; i < json_array_size(aud); i++) {
                if (json_string_is(json_array_get(aud, i), policy->audience)) {
                    break;
                }
            }
            if (i == json_array_size(aud)) {
                return MLG_JWT_CLAIMS;
            }
        } else if (!json_string_is(aud, policy->audience)) {
            return MLG_JWT_CLAIMS;
        }
    }

    /* the principal: sub, by the rule for every principal (it goes into
     * logs, headers and rate-limit keys) */
    v = json_object_get(payload, "sub");
    if (!json_is_string(v)) {
        return MLG_JWT_CLAIMS;
    }
    s = json_string_value(v);
    len = json_string_length(v);
    if (len > MLG_JWT_MAX_PRINCIPAL
        || mlg_principal_check((const unsigned char *) s, len) != MLG_PRINCIPAL_OK)
    {
        return MLG_JWT_CLAIMS;
    }
    memcpy(id->principal, s, len);
    id->principal[len] = '\0';
    return MLG_JWT_OK;
}


/* Roles */

static int
role_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'
           || c == ':' || c == '/' || c == '@';
}


static void
role_add(mlg_jwt_identity_t *id, size_t *used, const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > MLG_JWT_MAX_ROLE_LEN || id->nroles >= MLG_JWT_MAX_ROLES
        || *used + len + 2 > sizeof(id->roles))
    {
        return;
    }
    for (i = 0; i < len; i++) {
        if (!role_char((unsigned char) s[i])) {
            return;
        }
    }
    if (id->nroles > 0) {
        id->roles[(*used)++] = ',';
    }
    memcpy(id->roles + *used, s, len);
    *used += len;
    id->roles[*used] = '\0';
    id->nroles++;
}


static json_t *
claim_at_path(json_t *obj, const char *path)
{
    json_t      *cur;
    const char  *seg, *dot;

    cur = json_object_get(obj, path);
    if (cur != NULL) {
        return cur;
    }
    cur = obj;
    seg = path;
    for ( ;; ) {
        if (!json_is_object(cur)) {
            return NULL;
        }
        dot = strchr(seg, '.');
        if (dot == NULL) {
            return json_object_get(cur, seg);
        }
        cur = json_object_getn(cur, seg, (size_t) (dot - seg));
        seg = dot + 1;
    }
}


static void
roles_from_payload(json_t *payload, const char *path, mlg_jwt_identity_t *id)
{
    json_t      *v, *item;
    const char  *s, *end, *word;
    size_t       used, i;

    id->roles[0] = '\0';
    id->nroles = 0;
    used = 0;
    v = claim_at_path(payload, path != NULL && path[0] != '\0' ? path : "roles");

    if (json_is_array(v)) {
        for (i = 0; i < json_array_size(v); i++) {
            item = json_array_get(v, i);
            if (json_is_string(item)) {
                role_add(id, &used, json_string_value(item),
                         json_string_length(item));
            }
        }

    } else if (json_is_string(v)) {
        /* OAuth scope: space-separated */
        s = json_string_value(v);
        end = s + json_string_length(v);
        while (s < end) {
            while (s < end && *s == ' ') {
                s++;
            }
            word = s;
            while (s < end && *s != ' ') {
                s++;
            }
            role_add(id, &used, word, (size_t) (s - word));
        }
    }
}


int
mlg_jwt_roles_from_json(const char *json, size_t len, const char *path,
    mlg_jwt_identity_t *id)
{
    json_t  *payload;

    payload = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(payload)) {
        json_decref(payload);
        return -1;
    }
    roles_from_payload(payload, path, id);
    json_decref(payload);
    return (int) id->nroles;
}


/*
 * A DER INTEGER of the unsigned big-endian number v (len bytes, at most
 * 126): leading zero bytes dropped, one 0x00 put back when the top bit is
 * set.  Returns the bytes written (at most len + 2).
 */
static size_t
der_integer(const unsigned char *v, size_t len, unsigned char *out)
{
    size_t  i, n, pad;

    for (i = 0; i + 1 < len && v[i] == 0; i++) {
        /* skip leading zeros, keep the last byte */
    }
    n = len - i;
    pad = (v[i] & 0x80) ? 1 : 0;
    out[0] = 0x02;
    out[1] = (unsigned char) (n + pad);
    out[2] = 0x00;
    memcpy(out + 2 + pad, v + i, n);
    return 2 + pad + n;
}


/*
 * RS* and ES* signatures, with the key and verify context prepared at load
 * time: the signing input is hashed, then the hash verified.  ES*
 * signatures are raw R||S (RFC 7518 3.4), exactly twice the coordinate
 * size, turned into the DER form OpenSSL verifies: SEQUENCE { INTEGER r,
 * INTEGER s }, whose length needs the long form only for P-521.
 */
static int
verify_pkey(const mlg_jwt_key_t *key, const char *input, size_t input_len,
    const unsigned char *sig, size_t sig_len)
{
    unsigned char  der[3 + 2 * (2 + 67)];
    unsigned char  hash[EVP_MAX_MD_SIZE];
    unsigned int   hash_len;
    size_t         size, body, off;

    if (key->alg->kind == KIND_EC) {
        size = key->alg->size;
        if (sig_len != 2 * size) {
            return -1;
        }
        off = size > 60 ? 3 : 2;
        body = der_integer(sig, size, der + off);
        body += der_integer(sig + size, size, der + off + body);
        der[0] = 0x30;
        if (off == 3) {
            der[1] = 0x81;
            der[2] = (unsigned char) body;
        } else {
            der[1] = (unsigned char) body;
        }
        sig = der;
        sig_len = off + body;
    }

    if (EVP_DigestInit_ex2(key->digest, key->md, NULL) != 1
        || EVP_DigestUpdate(key->digest, input, input_len) != 1
        || EVP_DigestFinal_ex(key->digest, hash, &hash_len) != 1
        || EVP_PKEY_verify(key->verify, sig, sig_len, hash, hash_len) != 1)
    {
        ERR_clear_error();
        return -1;
    }
    return 0;
}


/* HS*: the HMAC of the signing input with the keyed context (re-initialised
 * without a key, which keeps the key), compared in constant time. */
static int
verify_hmac(const mlg_jwt_key_t *key, const char *input, size_t input_len,
    const unsigned char *sig, size_t sig_len)
{
    unsigned char  mac[EVP_MAX_MD_SIZE];
    size_t         mac_len;
    int            rc;

    if (sig_len != key->alg->size) {
        return -1;
    }
    rc = -1;
    if (EVP_MAC_init(key->mac, NULL, 0, NULL) == 1
        && EVP_MAC_update(key->mac, (const unsigned char *) input,
                          input_len) == 1
        && EVP_MAC_final(key->mac, mac, &mac_len, sizeof(mac)) == 1
        && mac_len == sig_len
        && CRYPTO_memcmp(mac, sig, sig_len) == 0)
    {
        rc = 0;
    }
    /* the MAC of the attacker's input is what a forger wants */
    OPENSSL_cleanse(mac, sizeof(mac));
    if (rc != 0) {
        ERR_clear_error();
    }
    return rc;
}


mlg_jwt_result_t
mlg_jwt_verify(const mlg_jwt_keyset_t *ks, const mlg_jwt_policy_t *policy,
    const char *token, size_t len, long long now, mlg_jwt_identity_t *id)
{
    /* the three parts decoded one after another, each NUL-terminated:
     * at most 3/4 of the token's length plus three bytes */
    unsigned char          buf[MLG_JWT_MAX_TOKEN / 4 * 3 + 8];
    unsigned char         *head, *body, *signature;
    const char            *dot1, *dot2, *sig;
    size_t                 hlen, plen, slen;
    long                   hn, pn, sn;
    json_t                *header, *payload, *alg;
    const mlg_jwt_key_t   *key;
    header_memo_t         *memo;
    mlg_jwt_result_t       rc;
    long long              exp;
    int                    bad;

    if (ks == NULL || ks->n == 0 || policy == NULL || token == NULL
        || len == 0 || len > MLG_JWT_MAX_TOKEN)
    {
        return MLG_JWT_INVALID;
    }

    /* exactly three non-empty parts */
    dot1 = memchr(token, '.', len);
    if (dot1 == NULL) {
        return MLG_JWT_INVALID;
    }
    dot2 = memchr(dot1 + 1, '.', len - (size_t) (dot1 + 1 - token));
    if (dot2 == NULL) {
        return MLG_JWT_INVALID;
    }
    sig = dot2 + 1;
    hlen = (size_t) (dot1 - token);
    plen = (size_t) (dot2 - dot1 - 1);
    slen = len - (size_t) (sig - token);
    if (hlen == 0 || plen == 0 || slen == 0
        || memchr(sig, '.', slen) != NULL)
    {
        return MLG_JWT_INVALID;
    }

    /* payload and signature strict base64url, decoded once */
    body = buf;
    pn = mlg_jwt_b64url_decode(dot1 + 1, plen, body);
    if (pn <= 0) {
        return MLG_JWT_INVALID;
    }
    signature = body + pn + 1;
    sn = mlg_jwt_b64url_decode(sig, slen, signature);
    if (sn <= 0) {
        return MLG_JWT_INVALID;
    }

    /* header: strict base64url of a JSON object whose alg is the pinned alg
     * of the key its kid selects; anything with "crit" extensions is
     * refused.  The same header string as last time selects the same key. */
    memo = ks->memo;
    if (memo->len == hlen && memcmp(memo->b64, token, hlen) == 0) {
        key = memo->key;

    } else {
        head = signature + sn + 1;
        hn = mlg_jwt_b64url_decode(token, hlen, head);
        header = hn > 0 ? part_json(head, (size_t) hn) : NULL;
        if (header == NULL) {
            return MLG_JWT_INVALID;
        }
        key = select_key(ks, json_object_get(header, "kid"));
        alg = json_object_get(header, "alg");
        bad = key == NULL || json_object_get(header, "crit") != NULL
              || !json_string_is(alg, key->alg->name);
        json_decref(header);
        if (bad) {
            return MLG_JWT_INVALID;
        }
        if (hlen <= sizeof(memo->b64)) {
            memcpy(memo->b64, token, hlen);
            memo->len = hlen;
            memo->key = key;
        }
    }

    /* the signature over "header.payload", with the selected key */
    if (key->pkey != NULL) {
        bad = verify_pkey(key, token, (size_t) (dot2 - token), signature,
                          (size_t) sn);
    } else {
        bad = verify_hmac(key, token, (size_t) (dot2 - token), signature,
                          (size_t) sn);
    }
    if (bad) {
        return MLG_JWT_INVALID;
    }

    payload = part_json(body, (size_t) pn);
    if (payload == NULL) {
        return MLG_JWT_INVALID;
    }

    memset(id, 0, sizeof(*id));
    rc = check_times(payload, policy, now, &exp);
    if (rc == MLG_JWT_OK) {
        rc = check_claims(payload, policy, id);
    }
    if (rc == MLG_JWT_OK) {
        id->exp = exp;
        roles_from_payload(payload, policy->roles_claim, id);
    }
    json_decref(payload);
    return rc;
}
