/*
 * Micro benchmark for scripts/bench-jwt: microseconds per mlg_jwt_verify()
 * for HS256, RS256 (2048 bits), ES256, ES384, and per cache hit, on one
 * core, without nginx.  Also times what libjwt 1.10.2 would spend parsing
 * the PEM key on every call, the cost mlg_jwt avoids.
 * Built by scripts/bench-jwt into build/bench/jwt-micro.
 */
#include <time.h>

#include "jwt_tokens.h"
#include "mlg_jwt.h"
#include "mlg_jwt_cache.h"

static double
seconds(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
    static const struct {
        const char  *alg;
        const char  *curve;     /* NULL: RSA; "" HMAC */
        size_t       csize;
    } cases[] = {
        { "HS256", "", 0 },
        { "RS256", NULL, 0 },
        { "ES256", "P-256", 32 },
        { "ES384", "P-384", 48 },
    };
    static const char    secret[] = "0123456789abcdef0123456789abcdef";
    char                 err[256], header[64], payload[128], *pem, *tok;
    size_t               i;
    int                  n, j;
    double               t0, t1;
    EVP_PKEY            *key;
    BIO                 *bio;
    EVP_PKEY            *parsed;
    mlg_jwt_keyset_t    *ks;
    mlg_jwt_policy_t     pol;
    mlg_jwt_identity_t   id;
    mlg_jwt_cache_t     *cache;

    n = argc > 1 ? atoi(argv[1]) : 2000;
    memset(&pol, 0, sizeof(pol));
    snprintf(payload, sizeof(payload),
             "{\"sub\":\"bench-user\",\"exp\":%lld,\"roles\":[\"predict\"]}",
             (long long) time(NULL) + 3600);

    printf("# %d iterations each, one core, no nginx\n", n);
    printf("%-28s %10s\n", "operation", "us/op");

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", cases[i].alg);
        key = NULL;
        pem = NULL;
        if (cases[i].curve != NULL && cases[i].curve[0] == '\0') {
            ks = mlg_jwt_keyset_parse((const unsigned char *) secret, 32, "k", NULL,
                                      err, sizeof(err));
            tok = tk_sign(cases[i].alg, header, payload, NULL, secret, 32, 0);
        } else {
            key = cases[i].curve ? tk_ec(cases[i].curve) : tk_rsa(2048);
            pem = tk_pem(key, 0);
            ks = mlg_jwt_keyset_parse((const unsigned char *) pem, strlen(pem), "k", NULL,
                                      err, sizeof(err));
            tok = tk_sign(cases[i].alg, header, payload, key, NULL, 0, cases[i].csize);
        }
        if (ks == NULL || mlg_jwt_verify(ks, &pol, tok, strlen(tok), time(NULL), &id)
                          != MLG_JWT_OK)
        {
            fprintf(stderr, "%s: setup failed: %s\n", cases[i].alg, err);
            return 1;
        }

        t0 = seconds();
        for (j = 0; j < n; j++) {
            mlg_jwt_verify(ks, &pol, tok, strlen(tok), time(NULL), &id);
        }
        t1 = seconds();
        printf("%-28s %10.1f\n", cases[i].alg, (t1 - t0) / n * 1e6);

        if (pem != NULL) {
            t0 = seconds();
            for (j = 0; j < n; j++) {
                bio = BIO_new_mem_buf(pem, -1);
                parsed = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
                EVP_PKEY_free(parsed);
                BIO_free(bio);
            }
            t1 = seconds();
            printf("%-28s %10.1f\n", "  (PEM parse, avoided)", (t1 - t0) / n * 1e6);
        }

        if (i == 1) {
            cache = mlg_jwt_cache_new(1024);
            mlg_jwt_cache_put(cache, 1, tok, strlen(tok), time(NULL), &id);
            t0 = seconds();
            for (j = 0; j < n * 50; j++) {
                if (mlg_jwt_cache_get(cache, 1, tok, strlen(tok), time(NULL)) == NULL) {
                    fprintf(stderr, "cache miss\n");
                    return 1;
                }
            }
            t1 = seconds();
            printf("%-28s %10.2f\n", "cache hit (RS256 token)", (t1 - t0) / (n * 50) * 1e6);
            mlg_jwt_cache_free(cache);
        }

        free(tok);
        free(pem);
        EVP_PKEY_free(key);
        mlg_jwt_keyset_free(ks);
    }
    return 0;
}
