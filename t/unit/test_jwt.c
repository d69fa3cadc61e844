/*
 * Unit tests for mlg_jwt.c: key loading (HMAC, PEM, JWKS), verification
 * with pinned algorithms, attacks, claims with deterministic time, roles.
 */
#include <jwt.h>
#include <unistd.h>
#include <sys/stat.h>

#include "tap.h"
#include "jwt_tokens.h"
#include "mlg_jwt.h"

#define NOW  1700000000LL

static char  err[512];

static const char  secret32[] = "0123456789abcdef0123456789abcdef";
static const char  secret64[] =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static mlg_jwt_policy_t  pol;       /* reset by policy_reset() */

static void
policy_reset(void)
{
    memset(&pol, 0, sizeof(pol));
}

static mlg_jwt_keyset_t *
ks_text(const char *text, const char *alg)
{
    return mlg_jwt_keyset_parse((const unsigned char *) text, strlen(text),
                                "key.file", alg, err, sizeof(err));
}

static int
err_has(const char *needle)
{
    return strstr(err, needle) != NULL && strncmp(err, "key.file: ", 10) == 0;
}

static mlg_jwt_result_t
verify(mlg_jwt_keyset_t *ks, const char *token, long long now,
    mlg_jwt_identity_t *id)
{
    mlg_jwt_identity_t  scratch;

    return mlg_jwt_verify(ks, &pol, token, strlen(token), now,
                          id ? id : &scratch);
}

/* a standard payload valid at NOW, with extra members appended */
static char *
claims(const char *extra)
{
    static char  buf[4096];

    snprintf(buf, sizeof(buf),
             "{\"sub\":\"alice\",\"exp\":%lld,\"iat\":%lld%s%s}",
             NOW + 300, NOW, extra && *extra ? "," : "", extra ? extra : "");
    return buf;
}

static char *
hdr(const char *alg, const char *kid)
{
    static char  buf[256];

    if (kid) {
        snprintf(buf, sizeof(buf), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", alg, kid);
    } else {
        snprintf(buf, sizeof(buf), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", alg);
    }
    return buf;
}

/* HS256 token over any payload with secret32 */
static char *
hs(const char *payload)
{
    return tk_sign("HS256", hdr("HS256", NULL), payload, NULL, secret32, 32, 0);
}

static void
test_b64url(void)
{
    unsigned char  out[16];

    is_int(mlg_jwt_b64url_decode("QQ", 2, out), 1, "b64url: QQ -> 1 byte");
    ok(out[0] == 'A', "b64url: QQ is 'A'");
    is_int(mlg_jwt_b64url_decode("QUI", 3, out), 2, "b64url: QUI -> 2 bytes");
    is_int(mlg_jwt_b64url_decode("QUJD", 4, out), 3, "b64url: QUJD -> 3 bytes");
    is_int(mlg_jwt_b64url_decode("", 0, out), 0, "b64url: empty -> 0");
    is_int(mlg_jwt_b64url_decode("QR", 2, out), -1, "b64url: non-canonical last char refused");
    is_int(mlg_jwt_b64url_decode("QQ==", 4, out), -1, "b64url: padding refused");
    is_int(mlg_jwt_b64url_decode("Q", 1, out), -1, "b64url: length 1 mod 4 refused");
    is_int(mlg_jwt_b64url_decode("QU+/", 4, out), -1, "b64url: standard alphabet refused");
    is_int(mlg_jwt_b64url_decode("-_-_", 4, out), 3, "b64url: - and _ accepted");
}

static void
test_hmac_keys(void)
{
    mlg_jwt_keyset_t  *ks;

    ks = ks_text(secret32, NULL);
    ok(ks != NULL, "32-byte HMAC secret loads");
    is_str(mlg_jwt_keyset_alg(ks, 0), "HS256", "HMAC secret defaults to HS256");
    is_int(mlg_jwt_keyset_count(ks), 1, "one key");
    is_str(mlg_jwt_keyset_kid(ks, 0), "", "no kid");
    mlg_jwt_keyset_free(ks);

    ks = ks_text("0123456789abcdef0123456789abcde", NULL);
    ok(ks == NULL, "31-byte HMAC secret refused");
    ok(err_has("31 bytes") && err_has("HS256 needs at least 32"), "message: %s", err);

    ks = ks_text(secret32, "HS512");
    ok(ks == NULL && err_has("HS512 needs at least 64"), "HS512 needs 64 bytes: %s", err);
    ks = ks_text(secret64, "HS512");
    ok(ks != NULL && strcmp(mlg_jwt_keyset_alg(ks, 0), "HS512") == 0, "64 bytes with alg=HS512");
    mlg_jwt_keyset_free(ks);
    ks = ks_text("0123456789abcdef0123456789abcdef0123456789abcdef", "HS384");
    ok(ks != NULL, "48 bytes with alg=HS384");
    mlg_jwt_keyset_free(ks);

    ks = ks_text(secret32, "RS256");
    ok(ks == NULL && err_has("HMAC secret") && err_has("RS256"), "secret with alg=RS256 refused: %s", err);
    ks = ks_text(secret32, "none");
    ok(ks == NULL && err_has("unsupported algorithm \"none\""), "alg=none refused: %s", err);
    ks = ks_text(secret32, "PS256");
    ok(ks == NULL && err_has("unsupported algorithm"), "alg=PS256 refused");
    ks = mlg_jwt_keyset_parse((const unsigned char *) "", 0, "key.file", NULL, err, sizeof(err));
    ok(ks == NULL && err_has("empty"), "empty key file refused: %s", err);
}

static void
test_key_files(void)
{
    char               dir[] = "/tmp/mlg-jwt-test-XXXXXX", path[512];
    FILE              *f;
    mlg_jwt_keyset_t  *ks;

    ok(mkdtemp(dir) != NULL, "temp dir");
    snprintf(path, sizeof(path), "%s/secret", dir);
    f = fopen(path, "wb");
    fwrite(secret32, 1, 32, f);
    fclose(f);
    ks = mlg_jwt_keyset_load(path, NULL, err, sizeof(err));
    ok(ks != NULL, "secret loads from a file");
    mlg_jwt_keyset_free(ks);

    ks = mlg_jwt_keyset_load(dir, NULL, err, sizeof(err));
    ok(ks == NULL && strstr(err, "cannot read file"), "directory refused: %s", err);
    snprintf(path, sizeof(path), "%s/missing", dir);
    ks = mlg_jwt_keyset_load(path, NULL, err, sizeof(err));
    ok(ks == NULL && strncmp(err, path, strlen(path)) == 0
       && strstr(err, "cannot open"), "missing file: %s", err);

    snprintf(path, sizeof(path), "%s/secret", dir);
    unlink(path);
    rmdir(dir);
}

static void
test_pem_keys(EVP_PKEY *rsa, EVP_PKEY *p256, EVP_PKEY *p384, EVP_PKEY *p521)
{
    mlg_jwt_keyset_t  *ks;
    char              *pem, *priv, bad[256];
    EVP_PKEY          *small;

    pem = tk_pem(rsa, 0);
    ks = ks_text(pem, NULL);
    ok(ks != NULL && strcmp(mlg_jwt_keyset_alg(ks, 0), "RS256") == 0, "RSA PEM defaults to RS256");
    mlg_jwt_keyset_free(ks);
    ks = ks_text(pem, "RS512");
    ok(ks != NULL && strcmp(mlg_jwt_keyset_alg(ks, 0), "RS512") == 0, "RSA PEM with alg=RS512");
    mlg_jwt_keyset_free(ks);
    ks = ks_text(pem, "ES256");
    ok(ks == NULL && err_has("RSA key") && err_has("ES256"), "RSA PEM with alg=ES256 refused: %s", err);
    ks = ks_text(pem, "HS256");
    ok(ks == NULL && err_has("HS256"), "RSA PEM with alg=HS256 refused (no confusion by config): %s", err);
    free(pem);

    pem = tk_pem(p256, 0);
    ks = ks_text(pem, NULL);
    ok(ks != NULL && strcmp(mlg_jwt_keyset_alg(ks, 0), "ES256") == 0, "P-256 PEM defaults to ES256");
    mlg_jwt_keyset_free(ks);
    ks = ks_text(pem, "ES384");
    ok(ks == NULL && err_has("P-256") && err_has("ES384"), "P-256 with alg=ES384 refused: %s", err);
    ks = ks_text(pem, "RS256");
    ok(ks == NULL && err_has("EC key"), "EC PEM with alg=RS256 refused: %s", err);
    free(pem);

    pem = tk_pem(p384, 0);
    ks = ks_text(pem, NULL);
    ok(ks != NULL && strcmp(mlg_jwt_keyset_alg(ks, 0), "ES384") == 0, "P-384 PEM defaults to ES384");
    mlg_jwt_keyset_free(ks);
    free(pem);
    pem = tk_pem(p521, 0);
    ks = ks_text(pem, NULL);
    ok(ks != NULL && strcmp(mlg_jwt_keyset_alg(ks, 0), "ES512") == 0, "P-521 PEM defaults to ES512");
    mlg_jwt_keyset_free(ks);
    free(pem);

    priv = tk_pem(rsa, 1);
    ks = ks_text(priv, NULL);
    ok(ks == NULL && err_has("private key"), "private key PEM refused: %s", err);
    free(priv);

    snprintf(bad, sizeof(bad), "-----BEGIN PUBLIC KEY-----\nAAAAnotakey\n-----END PUBLIC KEY-----\n");
    ks = ks_text(bad, NULL);
    ok(ks == NULL && err_has("cannot read a PEM"), "unreadable PEM refused (not taken as a secret): %s", err);
    ks = ks_text("-----BEGIN PUBLIC KEY-----\n", NULL);
    ok(ks == NULL && err_has("cannot read a PEM"), "truncated PEM refused");

    small = tk_rsa(1024);
    pem = tk_pem(small, 0);
    ks = ks_text(pem, NULL);
    ok(ks == NULL && err_has("1024-bit RSA key"), "1024-bit RSA refused: %s", err);
    free(pem);
    EVP_PKEY_free(small);

    small = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    pem = tk_pem(small, 0);
    ks = ks_text(pem, NULL);
    ok(ks == NULL && err_has("not an RSA or EC public key"), "Ed25519 refused: %s", err);
    free(pem);
    EVP_PKEY_free(small);

    small = tk_ec("secp256k1");
    pem = tk_pem(small, 0);
    ks = ks_text(pem, NULL);
    ok(ks == NULL && err_has("unsupported curve"), "secp256k1 refused: %s", err);
    free(pem);
    EVP_PKEY_free(small);
}

static void
test_jwks_loading(EVP_PKEY *rsa, EVP_PKEY *rsa2, EVP_PKEY *p256, EVP_PKEY *p521)
{
    char               doc[16384];
    char              *a, *b, *c, *d;
    mlg_jwt_keyset_t  *ks;

    a = tk_jwk(rsa, "a", "RS256", "\"use\":\"sig\",");
    b = tk_jwk(rsa2, "b", NULL, NULL);
    c = tk_jwk(p256, "ec", NULL, NULL);
    d = tk_jwk(p521, "enc", "RSA-OAEP", "\"use\":\"enc\",");

    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s,%s,"
             "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"okp\",\"x\":\"AAAA\"}]}",
             a, b, c, d);
    ks = ks_text(doc, NULL);
    ok(ks != NULL, "JWKS loads: %s", err);
    is_int(mlg_jwt_keyset_count(ks), 3, "three usable keys (enc and OKP skipped)");
    is_str(mlg_jwt_keyset_kid(ks, 0), "a", "kid a");
    is_str(mlg_jwt_keyset_alg(ks, 0), "RS256", "a: alg from the JWK");
    is_str(mlg_jwt_keyset_alg(ks, 1), "RS256", "b: RSA without alg -> RS256");
    is_str(mlg_jwt_keyset_alg(ks, 2), "ES256", "ec: alg from the curve");
    mlg_jwt_keyset_free(ks);

    ks = ks_text(doc, "ES256");
    ok(ks != NULL && mlg_jwt_keyset_count(ks) == 1
       && strcmp(mlg_jwt_keyset_kid(ks, 0), "ec") == 0, "alg=ES256 keeps only the EC key");
    mlg_jwt_keyset_free(ks);
    ks = ks_text(doc, "RS512");
    ok(ks != NULL && mlg_jwt_keyset_count(ks) == 1
       && strcmp(mlg_jwt_keyset_kid(ks, 0), "b") == 0, "alg=RS512 keeps the RSA key without alg");
    mlg_jwt_keyset_free(ks);
    ks = ks_text(doc, "HS256");
    ok(ks == NULL && err_has("no usable keys"), "alg=HS256 leaves no keys: %s", err);

    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", d);
    ks = ks_text(doc, NULL);
    ok(ks == NULL && err_has("no usable keys") && err_has("1 skipped"), "JWKS of enc keys only: %s", err);
    ks = ks_text("{\"keys\":[]}", NULL);
    ok(ks == NULL && err_has("no usable keys"), "empty JWKS refused: %s", err);
    ks = ks_text("{\"foo\":1}", NULL);
    ok(ks == NULL && err_has("no \"keys\" array"), "object without keys refused: %s", err);
    ks = ks_text("{\"keys\":[", NULL);
    ok(ks == NULL && err_has("not valid JSON"), "broken JSON refused: %s", err);
    ks = ks_text("{\"keys\":[1]}", NULL);
    ok(ks == NULL && err_has("key #0 is not a JSON object"), "non-object JWK refused: %s", err);
    ks = ks_text("{\"keys\":[{\"kid\":\"x\"}]}", NULL);
    ok(ks == NULL && err_has("no \"kty\""), "JWK without kty refused: %s", err);

    snprintf(doc, sizeof(doc), "{\"keys\":[%s,{\"kty\":\"oct\","
             "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}", a);
    ks = ks_text(doc, NULL);
    ok(ks == NULL && err_has("2 usable keys and one of them has no \"kid\""),
       "several keys, one without kid, refused: %s", err);
    snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"oct\","
             "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}");
    ks = ks_text(doc, NULL);
    ok(ks != NULL && strcmp(mlg_jwt_keyset_kid(ks, 0), "") == 0, "a single key without kid is fine");
    mlg_jwt_keyset_free(ks);

    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, a);
    ks = ks_text(doc, NULL);
    ok(ks == NULL && err_has("appears twice"), "duplicate kid refused: %s", err);

    ks = ks_text("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"!!\",\"e\":\"AQAB\"}]}", NULL);
    ok(ks == NULL && err_has("do not make an RSA public key"), "bad n refused: %s", err);
    ks = ks_text("{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"x\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", NULL);
    ok(ks == NULL && err_has("-bit RSA key"), "tiny RSA modulus refused: %s", err);
    ks = ks_text("{\"keys\":[{\"kty\":\"EC\",\"kid\":\"x\",\"crv\":\"P-256\","
                 "\"x\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
                 "\"y\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE\"}]}", NULL);
    ok(ks == NULL && err_has("not a point on P-256"), "EC point off the curve refused: %s", err);
    ks = ks_text("{\"keys\":[{\"kty\":\"EC\",\"kid\":\"x\",\"crv\":\"P-256\","
                 "\"x\":\"AAAA\",\"y\":\"AAAA\"}]}", NULL);
    ok(ks == NULL && err_has("not a point"), "short EC coordinates refused");
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", c);
    ks = ks_text(doc, "ES384");
    ok(ks == NULL && err_has("no usable keys"), "P-256 JWK skipped under alg=ES384");

    ks = ks_text("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\","
                 "\"k\":\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}", NULL);
    ok(ks != NULL && strcmp(mlg_jwt_keyset_alg(ks, 0), "HS256") == 0, "oct JWK -> HS256");
    mlg_jwt_keyset_free(ks);
    ks = ks_text("{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2hvcnQ\"}]}", NULL);
    ok(ks == NULL && err_has("5 bytes"), "short oct JWK refused: %s", err);

    ks = ks_text(a, NULL);
    ok(ks != NULL && mlg_jwt_keyset_count(ks) == 1, "a single JWK loads");
    mlg_jwt_keyset_free(ks);
    ks = ks_text(d, NULL);
    ok(ks == NULL && err_has("not a signing key"), "a single enc JWK refused: %s", err);

    free(a);
    free(b);
    free(c);
    free(d);
}

static void
test_algorithms(EVP_PKEY *rsa, EVP_PKEY *p256, EVP_PKEY *p384, EVP_PKEY *p521)
{
    static const struct {
        const char  *alg;
        int          kind;          /* 0 HMAC, 1 RSA, 2 EC */
        EVP_PKEY   **key;
        size_t       csize;
    } cases[] = {
        { "HS256", 0, NULL, 0 }, { "HS384", 0, NULL, 0 }, { "HS512", 0, NULL, 0 },
        { "RS256", 1, NULL, 0 }, { "RS384", 1, NULL, 0 }, { "RS512", 1, NULL, 0 },
        { "ES256", 2, NULL, 32 }, { "ES384", 2, NULL, 48 }, { "ES512", 2, NULL, 66 },
    };
    EVP_PKEY            *ec[3];
    mlg_jwt_keyset_t    *ks;
    mlg_jwt_identity_t   id;
    char                *pem, *tok;
    size_t               i;

    ec[0] = p256;
    ec[1] = p384;
    ec[2] = p521;
    policy_reset();
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].kind == 0) {
            ks = ks_text(secret64, cases[i].alg);
            tok = tk_sign(cases[i].alg, hdr(cases[i].alg, NULL), claims(NULL),
                          NULL, secret64, 64, 0);
        } else {
            EVP_PKEY *k = cases[i].kind == 1 ? rsa : ec[(i - 6)];
            pem = tk_pem(k, 0);
            ks = ks_text(pem, cases[i].alg);
            free(pem);
            tok = tk_sign(cases[i].alg, hdr(cases[i].alg, NULL), claims(NULL),
                          k, NULL, 0, cases[i].csize);
        }
        is_int(verify(ks, tok, NOW, &id), MLG_JWT_OK, "%s token verifies", cases[i].alg);
        is_str(id.principal, "alice", "%s principal is sub", cases[i].alg);
        is_int(id.exp, NOW + 300, "%s exp kept", cases[i].alg);
        free(tok);
        mlg_jwt_keyset_free(ks);
    }
}

static const struct {
    const char  *header;
    const char  *name;
} bad_headers[] = {
    { "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", "crit header" },
    { "{\"typ\":\"JWT\"}", "header without alg" },
    { "{\"alg\":256}", "alg not a string" },
    { "[\"HS256\"]", "header an array" },
    { "not json", "header not JSON" },
    { "{\"alg\":\"HS256\",\"alg\":\"none\"}", "duplicate alg in header" },
    { "{\"alg\":\"HS256\\u0000\"}", "alg with NUL suffix" },
    { "{\"alg\":\"hs256\"}", "alg in lowercase" },
};

static void
test_attacks(EVP_PKEY *rsa, EVP_PKEY *rsa2, EVP_PKEY *p256)
{
    mlg_jwt_keyset_t  *ks_rs, *ks_hs, *ks_es;
    char              *pem, *tok, *h, *p, buf[32768];
    jwt_t             *raw;
    mlg_jwt_identity_t sid;
    size_t             n;

    policy_reset();
    pem = tk_pem(rsa, 0);
    ks_rs = ks_text(pem, "RS256");
    ks_hs = ks_text(secret32, NULL);
    free(pem);
    pem = tk_pem(p256, 0);
    ks_es = ks_text(pem, NULL);
    free(pem);

    /* tampered payload and signature */
    tok = tk_sign("RS256", hdr("RS256", NULL), claims(NULL), rsa, NULL, 0, 0);
    is_int(verify(ks_rs, tok, NOW, NULL), MLG_JWT_OK, "RS256 baseline verifies");
    h = tk_b64url_str("{\"sub\":\"admin\",\"exp\":1800000000}");
    /* header of tok, forged payload, signature of tok */
    n = strcspn(tok, ".");
    memcpy(buf, tok, n);
    snprintf(buf + n, sizeof(buf) - n, ".%s%s", h, tok + strlen(tok) - strlen(strrchr(tok, '.')));
    is_int(verify(ks_rs, buf, NOW, NULL), MLG_JWT_INVALID, "tampered payload -> invalid_token");
    free(h);
    strcpy(buf, tok);
    n = strlen(buf);
    buf[n - 2] = buf[n - 2] == 'A' ? 'B' : 'A';
    is_int(verify(ks_rs, buf, NOW, NULL), MLG_JWT_INVALID, "tampered signature -> invalid_token");
    free(tok);

    /* wrong key */
    tok = tk_sign("RS256", hdr("RS256", NULL), claims(NULL), rsa2, NULL, 0, 0);
    is_int(verify(ks_rs, tok, NOW, NULL), MLG_JWT_INVALID, "RS256 by another key -> invalid_token");
    free(tok);
    tok = tk_sign("HS256", hdr("HS256", NULL), claims(NULL), NULL,
                  "0123456789abcdef0123456789abcdeX", 32, 0);
    is_int(verify(ks_hs, tok, NOW, NULL), MLG_JWT_INVALID, "HS256 with another secret -> invalid_token");
    free(tok);

    /* alg none, with and without the trailing dot, and with a signature */
    h = tk_b64url_str("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    p = tk_b64url_str(claims(NULL));
    snprintf(buf, sizeof(buf), "%s.%s.", h, p);
    is_int(verify(ks_rs, buf, NOW, NULL), MLG_JWT_INVALID, "alg none with trailing dot -> invalid_token");
    is_int(verify(ks_hs, buf, NOW, NULL), MLG_JWT_INVALID, "alg none at an HMAC key -> invalid_token");
    snprintf(buf, sizeof(buf), "%s.%s", h, p);
    is_int(verify(ks_rs, buf, NOW, NULL), MLG_JWT_INVALID, "alg none without trailing dot -> invalid_token");
    snprintf(buf, sizeof(buf), "%s.%s.AAAA", h, p);
    is_int(verify(ks_rs, buf, NOW, NULL), MLG_JWT_INVALID, "alg none with a signature -> invalid_token");
    free(h);
    h = tk_b64url_str("{\"alg\":\"NONE\"}");
    snprintf(buf, sizeof(buf), "%s.%s.", h, p);
    is_int(verify(ks_rs, buf, NOW, NULL), MLG_JWT_INVALID, "alg NONE -> invalid_token");
    free(h);
    free(p);

    /* HS256 "signed" with the RSA public key's PEM: libjwt itself accepts
     * it (checked here so the test stays meaningful), we must not */
    pem = tk_pem(rsa, 0);
    tok = tk_sign("HS256", hdr("HS256", NULL), claims(NULL), NULL, pem, strlen(pem), 0);
    raw = NULL;
    ok(jwt_decode(&raw, tok, (unsigned char *) pem, (int) strlen(pem)) == 0,
       "libjwt alone accepts HS256 keyed with the RSA PEM (the confusion is real)");
    jwt_free(raw);
    is_int(verify(ks_rs, tok, NOW, NULL), MLG_JWT_INVALID,
           "HS256 signed with the RSA public PEM at an RS256 key -> invalid_token");
    free(tok);
    free(pem);

    /* ES256 signatures that are not raw R||S of 64 bytes */
    tok = tk_sign("ES256", hdr("ES256", NULL), claims(NULL), p256, NULL, 0, 32);
    {
        unsigned char  der[160], *q;
        size_t         dlen = sizeof(der);
        char          *d64, *input;
        EVP_MD_CTX    *md = EVP_MD_CTX_new();

        input = strndup(tok, (size_t) (strrchr(tok, '.') - tok));
        EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, p256);
        EVP_DigestSign(md, der, &dlen, (unsigned char *) input, strlen(input));
        EVP_MD_CTX_free(md);
        d64 = tk_b64url(der, dlen);
        snprintf(buf, sizeof(buf), "%s.%s", input, d64);
        is_int(verify(ks_es, buf, NOW, NULL), MLG_JWT_INVALID, "ES256 with a DER signature -> invalid_token");
        free(d64);
        memset(der, 0, 64);
        d64 = tk_b64url(der, 64);
        snprintf(buf, sizeof(buf), "%s.%s", input, d64);
        is_int(verify(ks_es, buf, NOW, NULL), MLG_JWT_INVALID, "ES256 with r = s = 0 -> invalid_token");
        free(d64);
        q = der;
        memset(q, 0xff, 64);
        d64 = tk_b64url(der, 64);
        snprintf(buf, sizeof(buf), "%s.%s", input, d64);
        is_int(verify(ks_es, buf, NOW, NULL), MLG_JWT_INVALID, "ES256 with r, s >= n -> invalid_token");
        free(d64);
        snprintf(buf, sizeof(buf), "%s", tok);
        buf[strlen(buf) - 4] = '\0';
        is_int(verify(ks_es, buf, NOW, NULL), MLG_JWT_INVALID, "ES256 signature 3 bytes short -> invalid_token");
        free(input);
    }
    free(tok);

    /* algorithms of the wrong family or size */
    tok = tk_sign("ES256", hdr("ES256", NULL), claims(NULL), p256, NULL, 0, 32);
    is_int(verify(ks_rs, tok, NOW, NULL), MLG_JWT_INVALID, "ES256 token at an RS256 key -> invalid_token");
    is_int(verify(ks_es, tok, NOW, NULL), MLG_JWT_OK, "ES256 token at its key verifies");
    free(tok);
    tok = tk_sign("RS256", hdr("RS256", NULL), claims(NULL), rsa, NULL, 0, 0);
    is_int(verify(ks_es, tok, NOW, NULL), MLG_JWT_INVALID, "RS256 token at an ES256 key -> invalid_token");
    is_int(verify(ks_hs, tok, NOW, NULL), MLG_JWT_INVALID, "RS256 token at an HMAC key -> invalid_token");
    free(tok);
    tok = tk_sign("RS512", hdr("RS512", NULL), claims(NULL), rsa, NULL, 0, 0);
    is_int(verify(ks_rs, tok, NOW, NULL), MLG_JWT_INVALID, "RS512 token at an RS256-pinned key -> invalid_token");
    free(tok);
    tok = tk_sign("RS256", hdr("RS512", NULL), claims(NULL), rsa, NULL, 0, 0);
    is_int(verify(ks_rs, tok, NOW, NULL), MLG_JWT_INVALID, "header says RS512, signed RS256 -> invalid_token");
    free(tok);
    tok = tk_sign("HS384", hdr("HS384", NULL), claims(NULL), NULL, secret32, 32, 0);
    is_int(verify(ks_hs, tok, NOW, NULL), MLG_JWT_INVALID, "HS384 token at an HS256 key -> invalid_token");
    free(tok);

    /* headers, each HMAC-signed correctly with the configured secret */
    for (n = 0; n < sizeof(bad_headers) / sizeof(bad_headers[0]); n++) {
        tok = tk_sign("HS256", bad_headers[n].header, claims(NULL), NULL, secret32, 32, 0);
        is_int(verify(ks_hs, tok, NOW, NULL), MLG_JWT_INVALID, "%s -> invalid_token",
               bad_headers[n].name);
        free(tok);
    }
    tok = tk_sign("HS256", hdr("HS256", "whatever"), claims(NULL), NULL, secret32, 32, 0);
    is_int(verify(ks_hs, tok, NOW, NULL), MLG_JWT_OK, "kid at a single non-JWKS key is a hint only");
    free(tok);

    /* payloads */
    tok = hs("[1,2]");
    is_int(verify(ks_hs, tok, NOW, NULL), MLG_JWT_INVALID, "payload an array -> invalid_token");
    free(tok);
    tok = hs("{\"sub\":\"alice\",\"sub\":\"admin\",\"exp\":1800000000}");
    is_int(verify(ks_hs, tok, NOW, NULL), MLG_JWT_INVALID, "duplicate claim -> invalid_token");
    free(tok);

    /* garbage */
    tok = hs(claims(NULL));
    is_int(verify(ks_hs, tok, NOW, NULL), MLG_JWT_OK, "HS256 baseline verifies");
    is_int(verify(ks_hs, "", NOW, NULL), MLG_JWT_INVALID, "empty token");
    is_int(verify(ks_hs, "eyJhbGciOiJIUzI1NiJ9", NOW, NULL), MLG_JWT_INVALID, "one part");
    is_int(verify(ks_hs, "a.b", NOW, NULL), MLG_JWT_INVALID, "two parts");
    is_int(verify(ks_hs, "..", NOW, NULL), MLG_JWT_INVALID, "two dots only");
    memset(buf, '.', 5000);
    buf[5000] = '\0';
    is_int(verify(ks_hs, buf, NOW, NULL), MLG_JWT_INVALID, "5000 dots");
    snprintf(buf, sizeof(buf), "%s.%s", tok, strrchr(tok, '.') + 1);
    is_int(verify(ks_hs, buf, NOW, NULL), MLG_JWT_INVALID, "four parts");
    snprintf(buf, sizeof(buf), "%s", tok);
    *strrchr(buf, '.') = '\0';
    strcat(buf, ".");
    is_int(verify(ks_hs, buf, NOW, NULL), MLG_JWT_INVALID, "signature removed");
    snprintf(buf, sizeof(buf), ".%s", strchr(tok, '.') + 1);
    is_int(verify(ks_hs, buf, NOW, NULL), MLG_JWT_INVALID, "empty header part");
    memset(buf, 'A', 20 * 1024);
    buf[100] = '.';
    buf[200] = '.';
    buf[20 * 1024] = '\0';
    is_int(verify(ks_hs, buf, NOW, NULL), MLG_JWT_INVALID, "20 KB token");
    ok(mlg_jwt_verify(ks_hs, &pol, tok, MLG_JWT_MAX_TOKEN + 1, NOW, &sid)
       == MLG_JWT_INVALID, "length over 8 KiB refused before parsing");
    snprintf(buf, sizeof(buf), "%s=", tok);
    is_int(verify(ks_hs, buf, NOW, NULL), MLG_JWT_INVALID, "padding on the signature");
    snprintf(buf, sizeof(buf), "%s", tok);
    buf[3] = '+';
    is_int(verify(ks_hs, buf, NOW, NULL), MLG_JWT_INVALID, "'+' in the header");
    snprintf(buf, sizeof(buf), "%s", tok);
    p = strchr(buf, '.') + 5;
    *p = '/';
    is_int(verify(ks_hs, buf, NOW, NULL), MLG_JWT_INVALID, "'/' in the payload");
    snprintf(buf, sizeof(buf), " %s", tok);
    is_int(verify(ks_hs, buf, NOW, NULL), MLG_JWT_INVALID, "leading space");
    n = strlen(tok);
    memcpy(buf, tok, n);
    buf[5] = '\0';
    ok(mlg_jwt_verify(ks_hs, &pol, buf, n, NOW, &sid)
       == MLG_JWT_INVALID, "NUL inside the token");
    /* the signature part shortened so its length is 1 mod 4 */
    snprintf(buf, sizeof(buf), "%s", tok);
    n = strlen(buf);
    while (((n - (size_t) (strrchr(buf, '.') + 1 - buf)) % 4) != 1) {
        buf[--n] = '\0';
    }
    is_int(verify(ks_hs, buf, NOW, NULL), MLG_JWT_INVALID, "signature length 1 mod 4");
    free(tok);

    ok(mlg_jwt_verify(NULL, &pol, "a.b.c", 5, NOW, &sid)
       == MLG_JWT_INVALID, "no key set -> invalid_token");

    mlg_jwt_keyset_free(ks_rs);
    mlg_jwt_keyset_free(ks_hs);
    mlg_jwt_keyset_free(ks_es);
}

static void
test_jwks_selection(EVP_PKEY *rsa, EVP_PKEY *rsa2, EVP_PKEY *p256)
{
    char               doc[16384], *a, *b, *tok;
    mlg_jwt_keyset_t  *ks, *one;
    mlg_jwt_identity_t id;

    policy_reset();
    a = tk_jwk(rsa, "a", "RS256", NULL);
    b = tk_jwk(rsa2, "b", "RS256", NULL);
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, b);
    ks = ks_text(doc, NULL);
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", a);
    one = ks_text(doc, NULL);

    tok = tk_sign("RS256", hdr("RS256", "a"), claims(NULL), rsa, NULL, 0, 0);
    is_int(verify(ks, tok, NOW, &id), MLG_JWT_OK, "JWKS: kid a selects key a");
    is_int(verify(one, tok, NOW, &id), MLG_JWT_OK, "one-key JWKS: kid a");
    free(tok);
    tok = tk_sign("RS256", hdr("RS256", "b"), claims(NULL), rsa2, NULL, 0, 0);
    is_int(verify(ks, tok, NOW, &id), MLG_JWT_OK, "JWKS: kid b selects key b");
    is_int(verify(one, tok, NOW, &id), MLG_JWT_INVALID, "one-key JWKS: unknown kid b");
    free(tok);
    tok = tk_sign("RS256", hdr("RS256", "b"), claims(NULL), rsa, NULL, 0, 0);
    is_int(verify(ks, tok, NOW, &id), MLG_JWT_INVALID, "JWKS: signed by a, kid b -> invalid_token");
    free(tok);
    tok = tk_sign("RS256", hdr("RS256", "zzz"), claims(NULL), rsa, NULL, 0, 0);
    is_int(verify(ks, tok, NOW, &id), MLG_JWT_INVALID, "JWKS: unknown kid -> invalid_token");
    free(tok);
    tok = tk_sign("RS256", hdr("RS256", NULL), claims(NULL), rsa, NULL, 0, 0);
    is_int(verify(ks, tok, NOW, &id), MLG_JWT_INVALID, "JWKS of two: no kid -> invalid_token");
    is_int(verify(one, tok, NOW, &id), MLG_JWT_OK, "JWKS of one: no kid uses the key");
    free(tok);
    tok = tk_sign("RS256", "{\"alg\":\"RS256\",\"kid\":1}", claims(NULL), rsa, NULL, 0, 0);
    is_int(verify(ks, tok, NOW, &id), MLG_JWT_INVALID, "kid not a string -> invalid_token");
    free(tok);
    tok = tk_sign("RS256", "{\"alg\":\"RS256\",\"kid\":\"a\\u0000x\"}", claims(NULL), rsa, NULL, 0, 0);
    is_int(verify(ks, tok, NOW, &id), MLG_JWT_INVALID, "kid with NUL does not match a");
    free(tok);
    tok = tk_sign("ES256", hdr("ES256", "a"), claims(NULL), p256, NULL, 0, 32);
    is_int(verify(ks, tok, NOW, &id), MLG_JWT_INVALID, "ES256 token naming an RS256 kid -> invalid_token");
    free(tok);
    tok = tk_sign("HS256", hdr("HS256", "a"), claims(NULL), NULL, a, strlen(a), 0);
    is_int(verify(ks, tok, NOW, &id), MLG_JWT_INVALID, "HS256 keyed with the JWK text -> invalid_token");
    free(tok);

    mlg_jwt_keyset_free(ks);
    mlg_jwt_keyset_free(one);
    free(a);
    free(b);
}

static void
test_claims(void)
{
    mlg_jwt_keyset_t    *ks;
    mlg_jwt_identity_t   id;
    char                 p[512], *tok, big[400];

    ks = ks_text(secret32, NULL);
    policy_reset();

#define CASE(payload, now, want, name) do {                              \
        tok = hs(payload);                                               \
        is_int(verify(ks, tok, (now), &id), (want), name);               \
        free(tok);                                                       \
    } while (0)

    /* exp edges */
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%lld}", NOW);
    CASE(p, NOW - 1, MLG_JWT_OK, "exp: one second before -> ok");
    CASE(p, NOW, MLG_JWT_EXPIRED, "exp: at exp -> token_expired");
    CASE(p, NOW + 1, MLG_JWT_EXPIRED, "exp: after -> token_expired");
    pol.leeway = 5;
    CASE(p, NOW + 4, MLG_JWT_OK, "exp: leeway 5, 4 s late -> ok");
    CASE(p, NOW + 5, MLG_JWT_EXPIRED, "exp: leeway 5, 5 s late -> token_expired");
    pol.leeway = 0;
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%lld.5}", NOW);
    CASE(p, NOW, MLG_JWT_OK, "exp: fractional NumericDate");
    CASE(p, NOW + 1, MLG_JWT_EXPIRED, "exp: fractional, after");
    CASE("{\"sub\":\"u\"}", NOW, MLG_JWT_CLAIMS, "exp missing -> token_claims");
    pol.exp_optional = 1;
    CASE("{\"sub\":\"u\"}", NOW, MLG_JWT_OK, "exp missing, exp optional -> ok");
    tok = hs("{\"sub\":\"u\"}");
    verify(ks, tok, NOW, &id);
    is_int(id.exp, 0, "no exp -> identity exp 0");
    free(tok);
    pol.exp_optional = 0;
    CASE("{\"sub\":\"u\",\"exp\":\"1800000000\"}", NOW, MLG_JWT_CLAIMS, "exp a string -> token_claims");
    CASE("{\"sub\":\"u\",\"exp\":null}", NOW, MLG_JWT_CLAIMS, "exp null -> token_claims");
    CASE("{\"sub\":\"u\",\"exp\":1e300}", NOW, MLG_JWT_OK, "huge exp accepted");

    /* nbf edges */
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%lld,\"nbf\":%lld}", NOW + 100, NOW);
    CASE(p, NOW, MLG_JWT_OK, "nbf: at nbf -> ok");
    CASE(p, NOW - 1, MLG_JWT_NOT_YET_VALID, "nbf: one second early -> token_not_yet_valid");
    pol.leeway = 5;
    CASE(p, NOW - 5, MLG_JWT_OK, "nbf: leeway 5, 5 s early -> ok");
    CASE(p, NOW - 6, MLG_JWT_NOT_YET_VALID, "nbf: leeway 5, 6 s early -> token_not_yet_valid");
    pol.leeway = 0;
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%lld,\"nbf\":\"soon\"}", NOW + 100);
    CASE(p, NOW, MLG_JWT_CLAIMS, "nbf a string -> token_claims");
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%lld,\"nbf\":%lld}", NOW - 10, NOW + 10);
    CASE(p, NOW, MLG_JWT_EXPIRED, "expired and not yet valid -> token_expired first");

    /* iss */
    pol.issuer = "https://idp.example.com/realms/ml";
    CASE(claims("\"iss\":\"https://idp.example.com/realms/ml\""), NOW, MLG_JWT_OK, "iss equal -> ok");
    CASE(claims("\"iss\":\"https://evil.example.com/realms/ml\""), NOW, MLG_JWT_CLAIMS, "wrong iss -> token_claims");
    CASE(claims(NULL), NOW, MLG_JWT_CLAIMS, "missing iss -> token_claims");
    CASE(claims("\"iss\":\"https://idp.example.com/realms/ml\\u0000x\""), NOW, MLG_JWT_INVALID,
         "iss with NUL suffix -> refused by the JSON parser");
    CASE(claims("\"iss\":\"https://idp.example.com/realms/m\""), NOW, MLG_JWT_CLAIMS, "iss prefix -> token_claims");
    CASE(claims("\"iss\":[\"https://idp.example.com/realms/ml\"]"), NOW, MLG_JWT_CLAIMS, "iss an array -> token_claims");
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%lld,\"iss\":\"nope\"}", NOW - 1);
    CASE(p, NOW, MLG_JWT_EXPIRED, "expired with wrong iss -> token_expired");
    pol.issuer = NULL;
    CASE(claims("\"iss\":\"anything\""), NOW, MLG_JWT_OK, "iss not configured -> not checked");

    /* aud */
    pol.audience = "ml-api";
    CASE(claims("\"aud\":\"ml-api\""), NOW, MLG_JWT_OK, "aud string equal -> ok");
    CASE(claims("\"aud\":\"other\""), NOW, MLG_JWT_CLAIMS, "wrong aud -> token_claims");
    CASE(claims("\"aud\":[\"account\",\"ml-api\"]"), NOW, MLG_JWT_OK, "aud array containing it -> ok");
    CASE(claims("\"aud\":[\"account\",7,\"ml-api\"]"), NOW, MLG_JWT_OK, "aud array with a number -> ok");
    CASE(claims("\"aud\":[\"account\",\"ml-apis\"]"), NOW, MLG_JWT_CLAIMS, "aud array without it -> token_claims");
    CASE(claims("\"aud\":[]"), NOW, MLG_JWT_CLAIMS, "empty aud array -> token_claims");
    CASE(claims(NULL), NOW, MLG_JWT_CLAIMS, "missing aud -> token_claims");
    CASE(claims("\"aud\":{\"ml-api\":1}"), NOW, MLG_JWT_CLAIMS, "aud an object -> token_claims");
    pol.audience = NULL;
    CASE(claims("\"aud\":\"x\""), NOW, MLG_JWT_OK, "aud not configured -> not checked");

    /* sub */
    snprintf(p, sizeof(p), "{\"exp\":%lld}", NOW + 10);
    CASE(p, NOW, MLG_JWT_CLAIMS, "missing sub -> token_claims");
    snprintf(p, sizeof(p), "{\"sub\":\"\",\"exp\":%lld}", NOW + 10);
    CASE(p, NOW, MLG_JWT_CLAIMS, "empty sub -> token_claims");
    snprintf(p, sizeof(p), "{\"sub\":42,\"exp\":%lld}", NOW + 10);
    CASE(p, NOW, MLG_JWT_CLAIMS, "numeric sub -> token_claims");
    snprintf(p, sizeof(p), "{\"sub\":\"a\\nb\",\"exp\":%lld}", NOW + 10);
    CASE(p, NOW, MLG_JWT_CLAIMS, "sub with a newline -> token_claims");
    {
        /* JSON-escaped control characters: the principal rule refuses them */
        static const char  *controls[] = { "\\r\\n", "\\t", "\\u007f", "\\u0085", "\\u009f" };
        size_t              c;

        for (c = 0; c < sizeof(controls) / sizeof(controls[0]); c++) {
            snprintf(p, sizeof(p), "{\"sub\":\"a%sb\",\"exp\":%lld}", controls[c], NOW + 10);
            CASE(p, NOW, MLG_JWT_CLAIMS, "sub with a control character -> token_claims");
        }
    }
    snprintf(p, sizeof(p), "{\"sub\":\"a\\u0000b\",\"exp\":%lld}", NOW + 10);
    CASE(p, NOW, MLG_JWT_INVALID, "sub with NUL -> refused by the JSON parser");
    memset(big, 'x', 255);
    big[255] = '\0';
    snprintf(p, sizeof(p), "{\"sub\":\"%s\",\"exp\":%lld}", big, NOW + 10);
    CASE(p, NOW, MLG_JWT_OK, "255-byte sub -> ok");
    ok(strlen(id.principal) == 255, "255-byte principal kept");
    snprintf(p, sizeof(p), "{\"sub\":\"%sx\",\"exp\":%lld}", big, NOW + 10);
    CASE(p, NOW, MLG_JWT_CLAIMS, "256-byte sub -> token_claims");
    snprintf(p, sizeof(p), "{\"sub\":\"auth0|5f7c \\u00e9\",\"exp\":%lld}", NOW + 10);
    CASE(p, NOW, MLG_JWT_OK, "sub with | space and UTF-8 -> ok");
    is_str(id.principal, "auth0|5f7c \xc3\xa9", "principal bytes kept");

    /* claims are only read from a verified token */
    snprintf(p, sizeof(p), "{\"sub\":\"u\",\"exp\":%lld}", NOW - 100);
    tok = tk_sign("HS256", hdr("HS256", NULL), p, NULL, "another-secret-another-secret-xx", 32, 0);
    is_int(verify(ks, tok, NOW, &id), MLG_JWT_INVALID, "expired token with a bad signature -> invalid_token");
    free(tok);
#undef CASE

    is_str(mlg_jwt_reason(MLG_JWT_OK), "", "reason OK");
    is_str(mlg_jwt_reason(MLG_JWT_INVALID), "invalid_token", "reason invalid_token");
    is_str(mlg_jwt_reason(MLG_JWT_EXPIRED), "token_expired", "reason token_expired");
    is_str(mlg_jwt_reason(MLG_JWT_NOT_YET_VALID), "token_not_yet_valid", "reason token_not_yet_valid");
    is_str(mlg_jwt_reason(MLG_JWT_CLAIMS), "token_claims", "reason token_claims");
    ok(mlg_jwt_alg_supported("ES512") && !mlg_jwt_alg_supported("none")
       && !mlg_jwt_alg_supported("es256") && !mlg_jwt_alg_supported(NULL), "alg_supported");
    mlg_jwt_keyset_free(ks);
}

static int
roles(const char *json, const char *path, mlg_jwt_identity_t *id)
{
    return mlg_jwt_roles_from_json(json, strlen(json), path, id);
}

static void
test_roles(void)
{
    mlg_jwt_identity_t   id;
    mlg_jwt_keyset_t    *ks;
    char                 buf[8192], *tok;
    size_t               i, n;

    is_int(roles("{\"roles\":[\"admin\",\"reader\"]}", NULL, &id), 2, "default path roles");
    is_str(id.roles, "admin,reader", "roles joined with commas");
    is_int(roles("{\"roles\":[\"admin\"]}", "", &id), 1, "empty path means roles");
    is_int(roles("{\"realm_access\":{\"roles\":[\"offline_access\",\"ml-user\"]}}",
                 "realm_access.roles", &id), 2, "Keycloak realm_access.roles");
    is_str(id.roles, "offline_access,ml-user", "nested roles");
    is_int(roles("{\"resource_access\":{\"ml-api\":{\"roles\":[\"predict\"]}}}",
                 "resource_access.ml-api.roles", &id), 1, "three-level path");
    is_str(id.roles, "predict", "client roles");
    is_int(roles("{\"scope\":\"openid  predict:read profile \"}", "scope", &id), 3, "scope string");
    is_str(id.roles, "openid,predict:read,profile", "scope split on spaces");
    is_int(roles("{\"https://example.com/roles\":[\"ops\"]}", "https://example.com/roles", &id), 1,
           "namespaced claim with dots as a top-level key");
    is_str(id.roles, "ops", "namespaced roles");
    is_int(roles("{\"roles\":[\"a\",1,null,{\"x\":1},\"b\"]}", NULL, &id), 2, "non-strings skipped");
    is_str(id.roles, "a,b", "strings kept");
    is_int(roles("{\"roles\":[\"a,b\",\"c d\",\"e\\\"f\",\"\",\"ok\",\"\\u00e9\"]}", NULL, &id), 1,
           "roles with , space quote non-ASCII or empty skipped");
    is_str(id.roles, "ok", "only the clean role");
    is_int(roles("{\"roles\":\"admin\"}", NULL, &id), 1, "roles as a single string");
    is_int(roles("{}", NULL, &id), 0, "missing claim -> no roles");
    is_str(id.roles, "", "no roles -> empty string");
    is_int(roles("{\"realm_access\":\"x\"}", "realm_access.roles", &id), 0, "path through a string -> none");
    is_int(roles("{\"realm_access\":{\"roles\":7}}", "realm_access.roles", &id), 0, "number -> none");
    is_int(roles("{\"realm_access\":{\"roles\":[\"r\"]}}", "realm_access", &id), 0, "object -> none");
    is_int(roles("{\"a\":{\"\":{\"b\":[\"r\"]}}}", "a..b", &id), 1, "empty path segment is a key \"\"");
    is_int(roles("[1]", NULL, &id), -1, "not an object -> -1");
    is_int(roles("{", NULL, &id), -1, "broken JSON -> -1");

    memset(buf, 0, sizeof(buf));
    strcpy(buf, "{\"roles\":[\"");
    memset(buf + strlen(buf), 'r', MLG_JWT_MAX_ROLE_LEN);
    strcat(buf, "\",\"");
    memset(buf + strlen(buf), 's', MLG_JWT_MAX_ROLE_LEN + 1);
    strcat(buf, "\"]}");
    is_int(roles(buf, NULL, &id), 1, "64-byte role kept, 65-byte role skipped");
    ok(strlen(id.roles) == MLG_JWT_MAX_ROLE_LEN, "64-byte role intact");

    strcpy(buf, "{\"roles\":[");
    for (i = 0; i < 100; i++) {
        n = strlen(buf);
        snprintf(buf + n, sizeof(buf) - n, "%s\"role%zu\"", i ? "," : "", i);
    }
    strcat(buf, "]}");
    is_int(roles(buf, NULL, &id), MLG_JWT_MAX_ROLES, "100 roles capped at %d", MLG_JWT_MAX_ROLES);
    ok(strncmp(id.roles, "role0,role1,", 12) == 0, "the first roles are kept");

    strcpy(buf, "{\"roles\":[");
    for (i = 0; i < 31; i++) {
        n = strlen(buf);
        snprintf(buf + n, sizeof(buf) - n, "%s\"%064zu\"", i ? "," : "", i);
    }
    strcat(buf, "]}");
    n = (size_t) roles(buf, NULL, &id);
    ok(n < 31 && strlen(id.roles) < MLG_JWT_ROLES_BUF, "long roles bounded by the buffer (%zu kept)", n);

    /* through verification, with a path in the policy */
    ks = ks_text(secret32, NULL);
    policy_reset();
    pol.roles_claim = "realm_access.roles";
    tok = hs(claims("\"realm_access\":{\"roles\":[\"ml-user\"]},\"roles\":[\"admin\"]"));
    is_int(verify(ks, tok, NOW, &id), MLG_JWT_OK, "verified with roles claim path");
    is_str(id.roles, "ml-user", "roles from the configured path only");
    is_int(id.nroles, 1, "nroles");
    free(tok);
    pol.roles_claim = NULL;
    tok = hs(claims("\"roles\":[\"admin\"]"));
    verify(ks, tok, NOW, &id);
    is_str(id.roles, "admin", "default claim roles");
    free(tok);
    mlg_jwt_keyset_free(ks);
}

/* HS* tokens minted by libjwt, an independent implementation, verify; the
 * same tokens under another secret do not */
static void
test_libjwt_tokens(void)
{
    static const struct {
        const char  *name;
        jwt_alg_t    alg;
    } hs[] = {
        { "HS256", JWT_ALG_HS256 },
        { "HS384", JWT_ALG_HS384 },
        { "HS512", JWT_ALG_HS512 },
    };
    static const char   other64[] =
        "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";
    mlg_jwt_keyset_t   *ks, *ks_other;
    mlg_jwt_identity_t  id;
    jwt_t              *jwt;
    char               *tok;
    size_t              i;

    policy_reset();
    for (i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
        ks = ks_text(secret64, hs[i].name);
        ks_other = ks_text(other64, hs[i].name);
        jwt = NULL;
        tok = NULL;
        if (jwt_new(&jwt) == 0
            && jwt_add_grant(jwt, "sub", "libjwt-user") == 0
            && jwt_add_grant_int(jwt, "exp", (long) (NOW + 300)) == 0
            && jwt_set_alg(jwt, hs[i].alg, (const unsigned char *) secret64, 64) == 0)
        {
            tok = jwt_encode_str(jwt);
        }
        jwt_free(jwt);
        ok(ks != NULL && ks_other != NULL && tok != NULL, "%s: keys load, libjwt mints a token",
           hs[i].name);
        if (ks == NULL || ks_other == NULL || tok == NULL) {
            mlg_jwt_keyset_free(ks);
            mlg_jwt_keyset_free(ks_other);
            free(tok);
            continue;
        }
        is_int(verify(ks, tok, NOW, &id), MLG_JWT_OK, "%s minted by libjwt verifies", hs[i].name);
        is_str(id.principal, "libjwt-user", "%s from libjwt: sub read", hs[i].name);
        is_int(verify(ks_other, tok, NOW, NULL), MLG_JWT_INVALID,
               "%s minted by libjwt, another secret -> invalid_token", hs[i].name);
        free(tok);
        mlg_jwt_keyset_free(ks);
        mlg_jwt_keyset_free(ks_other);
    }
}


/* One key set verifies many tokens in a row (its OpenSSL contexts are
 * reused): a failure in between, of any kind, leaves no state behind. */
static void
test_context_reuse(EVP_PKEY *rsa, EVP_PKEY *rsa2, EVP_PKEY *p256, EVP_PKEY *p521)
{
    static const struct {
        const char  *alg;
        size_t       csize;
    } cases[] = {
        { "HS256", 0 }, { "RS256", 0 }, { "ES256", 32 }, { "ES512", 66 },
    };
    mlg_jwt_keyset_t  *ks;
    EVP_PKEY          *key, *other;
    char              *pem, *good, *forged, *cut, *bad;
    size_t             i, n;
    int                round, all;

    policy_reset();
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        key = cases[i].alg[0] == 'H' ? NULL
              : cases[i].alg[0] == 'R' ? rsa : cases[i].csize == 32 ? p256 : p521;
        other = cases[i].alg[0] == 'R' ? rsa2 : NULL;
        if (key == NULL) {
            ks = ks_text(secret32, NULL);
            good = tk_sign("HS256", hdr("HS256", NULL), claims(NULL), NULL, secret32, 32, 0);
            forged = tk_sign("HS256", hdr("HS256", NULL), claims(NULL), NULL,
                             "fedcba9876543210fedcba9876543210", 32, 0);
        } else {
            pem = tk_pem(key, 0);
            ks = ks_text(pem, NULL);
            free(pem);
            good = tk_sign(cases[i].alg, hdr(cases[i].alg, NULL), claims(NULL), key, NULL, 0,
                           cases[i].csize);
            /* signed by another key of the same kind; for EC a token over
             * other claims, with the good token's signature */
            if (other != NULL) {
                forged = tk_sign(cases[i].alg, hdr(cases[i].alg, NULL), claims(NULL), other,
                                 NULL, 0, 0);
            } else {
                forged = tk_sign(cases[i].alg, hdr(cases[i].alg, NULL),
                                 claims("\"x\":1"), key, NULL, 0, cases[i].csize);
                memcpy(strrchr(forged, '.'), strrchr(good, '.'), strlen(strrchr(good, '.')) + 1);
            }
        }
        /* the signature one byte short (4 characters fewer: 3 bytes) */
        cut = strdup(good);
        n = strlen(cut);
        cut[n - 4] = '\0';
        /* a header that does not parse */
        bad = strdup(good);
        bad[0] = '!';

        all = ks != NULL;
        for (round = 0; round < 3 && all; round++) {
            all = verify(ks, good, NOW, NULL) == MLG_JWT_OK
                  && verify(ks, forged, NOW, NULL) == MLG_JWT_INVALID
                  && verify(ks, good, NOW, NULL) == MLG_JWT_OK
                  && verify(ks, cut, NOW, NULL) == MLG_JWT_INVALID
                  && verify(ks, good, NOW, NULL) == MLG_JWT_OK
                  && verify(ks, bad, NOW, NULL) == MLG_JWT_INVALID
                  && verify(ks, good, NOW + 301, NULL) == MLG_JWT_EXPIRED;
        }
        ok(all, "%s: good, forged, short and broken tokens in turn, three rounds", cases[i].alg);
        free(good);
        free(forged);
        free(cut);
        free(bad);
        mlg_jwt_keyset_free(ks);
    }

    /* a JWKS of two keys: each header string selects its own key however
     * the tokens alternate */
    {
        char  doc[16384], *a, *b, *ta, *tb, *tx, *tc;

        a = tk_jwk(rsa, "a", "RS256", NULL);
        b = tk_jwk(rsa2, "b", "RS256", NULL);
        snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, b);
        ks = ks_text(doc, NULL);
        ta = tk_sign("RS256", hdr("RS256", "a"), claims(NULL), rsa, NULL, 0, 0);
        tb = tk_sign("RS256", hdr("RS256", "b"), claims(NULL), rsa2, NULL, 0, 0);
        tx = tk_sign("RS256", hdr("RS256", "b"), claims(NULL), rsa, NULL, 0, 0);
        tc = tk_sign("RS256", "{\"alg\":\"RS256\",\"kid\":\"a\",\"crit\":[\"x\"],\"x\":1}",
                     claims(NULL), rsa, NULL, 0, 0);
        all = ks != NULL;
        for (round = 0; round < 3 && all; round++) {
            all = verify(ks, ta, NOW, NULL) == MLG_JWT_OK
                  && verify(ks, ta, NOW, NULL) == MLG_JWT_OK
                  && verify(ks, tx, NOW, NULL) == MLG_JWT_INVALID
                  && verify(ks, tb, NOW, NULL) == MLG_JWT_OK
                  && verify(ks, tc, NOW, NULL) == MLG_JWT_INVALID
                  && verify(ks, tc, NOW, NULL) == MLG_JWT_INVALID
                  && verify(ks, tx, NOW, NULL) == MLG_JWT_INVALID
                  && verify(ks, tb, NOW, NULL) == MLG_JWT_OK;
        }
        ok(all, "JWKS: kid a, kid b, kid b signed by a, crit in turn, three rounds");
        free(a);
        free(b);
        free(ta);
        free(tb);
        free(tx);
        free(tc);
        mlg_jwt_keyset_free(ks);
    }
}


/* ES* signatures are turned into DER by us: R and S with leading zero
 * bytes (dropped) and with the top bit set (a 0x00 put in front), and for
 * P-521 a sequence long enough for the long length form.  Fresh random
 * signatures cover these cases; every one must verify. */
static void
test_ecdsa_der(EVP_PKEY *p256, EVP_PKEY *p521)
{
    mlg_jwt_keyset_t  *ks256, *ks521;
    char              *pem, *tok;
    int                i, ok256, ok521;

    policy_reset();
    pem = tk_pem(p256, 0);
    ks256 = ks_text(pem, NULL);
    free(pem);
    pem = tk_pem(p521, 0);
    ks521 = ks_text(pem, NULL);
    free(pem);

    ok256 = 0;
    for (i = 0; i < 300; i++) {
        tok = tk_sign("ES256", hdr("ES256", NULL), claims(NULL), p256, NULL, 0, 32);
        ok256 += verify(ks256, tok, NOW, NULL) == MLG_JWT_OK;
        free(tok);
    }
    is_int(ok256, 300, "300 fresh ES256 signatures all verify");

    ok521 = 0;
    for (i = 0; i < 40; i++) {
        tok = tk_sign("ES512", hdr("ES512", NULL), claims(NULL), p521, NULL, 0, 66);
        ok521 += verify(ks521, tok, NOW, NULL) == MLG_JWT_OK;
        free(tok);
    }
    is_int(ok521, 40, "40 fresh ES512 signatures all verify");
    mlg_jwt_keyset_free(ks256);
    mlg_jwt_keyset_free(ks521);
}

int
main(void)
{
    EVP_PKEY  *rsa, *rsa2, *p256, *p384, *p521;

    rsa = tk_rsa(2048);
    rsa2 = tk_rsa(2048);
    p256 = tk_ec("P-256");
    p384 = tk_ec("P-384");
    p521 = tk_ec("P-521");
    if (!rsa || !rsa2 || !p256 || !p384 || !p521) {
        diag("key generation failed");
        return 1;
    }

    test_b64url();
    test_hmac_keys();
    test_key_files();
    test_pem_keys(rsa, p256, p384, p521);
    test_jwks_loading(rsa, rsa2, p256, p521);
    test_algorithms(rsa, p256, p384, p521);
    test_attacks(rsa, rsa2, p256);
    test_jwks_selection(rsa, rsa2, p256);
    test_claims();
    test_roles();
    test_libjwt_tokens();
    test_context_reuse(rsa, rsa2, p256, p521);
    test_ecdsa_der(p256, p521);

    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa2);
    EVP_PKEY_free(p256);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(p521);
    return done_testing();
}
