/*
 * JWT bearer tokens: key loading (HMAC secret, PEM public key, JWKS),
 * verification with a pinned algorithm, claim checks and role extraction.
 *
 * Plain C, no nginx headers: the glue (ngx_http_ml_guard_jwt.c) passes
 * buffers and the current time in and turns the results into nginx
 * variables and problem+json responses.
 *
 * Keys are parsed once (at config time); verification never parses a key.
 * Before any crypto the token's header is checked by us: its alg must equal
 * the pinned algorithm of the selected key.  Signatures are checked with
 * OpenSSL 3 and contexts prepared at load time (HS*: HMAC, compared in
 * constant time; RS*, ES*: the parsed public key).  Those contexts are
 * reused, so a key set must be used by one thread at a time (each nginx
 * worker has its own copy).
 */
#ifndef MLG_JWT_H
#define MLG_JWT_H

#include <stddef.h>

#include "mlg_principal.h"

/* Tokens longer than this are refused before any parsing. */
#define MLG_JWT_MAX_TOKEN       8192
/* Largest key file we read (a JWKS with many RSA keys fits easily). */
#define MLG_JWT_MAX_KEY_FILE    (1024 * 1024)
/* Longest accepted `sub`, in bytes: that of every principal. */
#define MLG_JWT_MAX_PRINCIPAL   MLG_PRINCIPAL_MAX
/* Roles kept from a token; extra roles are ignored (fewer roles never
 * grant more access). */
#define MLG_JWT_MAX_ROLES       32
#define MLG_JWT_MAX_ROLE_LEN    64
/* Room for the comma-separated roles of one identity. */
#define MLG_JWT_ROLES_BUF       1024
/* Longest `kid` we store or compare. */
#define MLG_JWT_MAX_KID         256

typedef enum {
    MLG_JWT_OK = 0,
    MLG_JWT_INVALID,            /* invalid_token */
    MLG_JWT_EXPIRED,            /* token_expired */
    MLG_JWT_NOT_YET_VALID,      /* token_not_yet_valid */
    MLG_JWT_CLAIMS,             /* token_claims */
    MLG_JWT_NOMEM               /* internal error (out of memory) */
} mlg_jwt_result_t;

/* The `reason` string for a result ("invalid_token", ...); "" for OK. */
const char *mlg_jwt_reason(mlg_jwt_result_t rc);

/* Algorithm names we support: HS256/384/512, RS256/384/512, ES256/384/512. */
int mlg_jwt_alg_supported(const char *name);

typedef struct mlg_jwt_keyset_s  mlg_jwt_keyset_t;

/*
 * Loads a key file once.  The content decides the kind:
 *   - a JSON object: a JWKS ({"keys": [...]}) or a single JWK;
 *   - text with "-----BEGIN": a PEM public key (RSA or EC) or certificate;
 *   - anything else: an HMAC secret, raw bytes, at least as long as the
 *     hash (32/48/64 bytes for HS256/384/512).
 * alg (may be NULL) pins the algorithm; without it: HMAC -> HS256,
 * RSA -> RS256, EC -> ES256/ES384/ES512 by curve, JWK -> its "alg".
 * On error returns NULL and writes "FILE: message" into err.
 */
mlg_jwt_keyset_t *mlg_jwt_keyset_load(const char *path, const char *alg,
    char *err, size_t errlen);

/* The same, for data already in memory; name is used in messages. */
mlg_jwt_keyset_t *mlg_jwt_keyset_parse(const unsigned char *data, size_t len,
    const char *name, const char *alg, char *err, size_t errlen);

void mlg_jwt_keyset_free(mlg_jwt_keyset_t *ks);

/* Number of usable keys, and the pinned algorithm / kid of key i (for
 * tests and the startup log); kid is "" when the key has none. */
size_t mlg_jwt_keyset_count(const mlg_jwt_keyset_t *ks);
const char *mlg_jwt_keyset_alg(const mlg_jwt_keyset_t *ks, size_t i);
const char *mlg_jwt_keyset_kid(const mlg_jwt_keyset_t *ks, size_t i);

typedef struct {
    const char  *issuer;        /* NULL: iss not checked */
    const char  *audience;      /* NULL: aud not checked */
    const char  *roles_claim;   /* dotted path; NULL means "roles" */
    long long    leeway;        /* seconds allowed for clock skew */
    int          exp_optional;  /* 0: a token without exp is refused */
} mlg_jwt_policy_t;

typedef struct {
    char         principal[MLG_JWT_MAX_PRINCIPAL + 1];   /* sub */
    char         roles[MLG_JWT_ROLES_BUF];               /* "a,b,c" */
    unsigned     nroles;
    long long    exp;           /* the token's exp, 0 when it has none */
} mlg_jwt_identity_t;

/*
 * Verifies token (len bytes, need not be NUL-terminated) against the key
 * set and the policy at time now (seconds since the epoch).  On MLG_JWT_OK
 * fills id.  Checks, in order, each failing as the reason given:
 *   size, shape (three non-empty base64url parts), header JSON object,
 *   header alg == pinned alg of the key chosen by kid       invalid_token
 *   signature (OpenSSL, with the selected key)              invalid_token
 *   payload JSON object                                     invalid_token
 *   exp (required unless exp_optional): now < exp + leeway  token_expired
 *   nbf: now + leeway >= nbf                                token_not_yet_valid
 *   exp/nbf not numbers, iss, aud, sub missing/unusable     token_claims
 */
mlg_jwt_result_t mlg_jwt_verify(const mlg_jwt_keyset_t *ks,
    const mlg_jwt_policy_t *policy, const char *token, size_t len,
    long long now, mlg_jwt_identity_t *id);

/*
 * Role extraction on a decoded payload (exposed for unit tests).  json is
 * the payload text; path a dotted path ("realm_access.roles"); a top-level
 * key equal to the whole path wins (namespaced claims such as
 * "https://example.com/roles").  The value may be an array of strings or a
 * space-separated string.  Roles with characters outside [A-Za-z0-9._:/@-]
 * or longer than MLG_JWT_MAX_ROLE_LEN are skipped.  Returns the number of
 * roles written into id->roles, -1 if json is not an object.
 */
int mlg_jwt_roles_from_json(const char *json, size_t len, const char *path,
    mlg_jwt_identity_t *id);

/* Strict base64url (RFC 7515: no padding, canonical last character).
 * out must hold len * 3 / 4 + 1 bytes.  Returns decoded length or -1. */
long mlg_jwt_b64url_decode(const char *in, size_t len, unsigned char *out);

#endif /* MLG_JWT_H */
