/*
 * Key file format, one key a line:
 *
 *     KEY_ID SHA256_HEX [ROLE[,ROLE...]]
 *
 * "#" starts a comment; blank lines are ignored.  The table is an open
 * addressing hash indexed by the digest itself (a SHA-256 output is already
 * uniformly distributed, and its preimage is what an attacker lacks).
 */

#include "mlg_apikeys.h"
#include "mlg_conffile.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define MLG_APIKEYS_FILE_MAX  (16 * 1024 * 1024)

struct mlg_apikeys_s {
    mlg_apikey_t   *keys;
    size_t          nkeys;
    size_t          cap;
    mlg_apikey_t  **slots;      /* power of two, at most half full */
    size_t          mask;
};


static void
mlg_apikeys_error(char *err, size_t errlen, const char *name, unsigned line,
    const char *fmt, ...)
{
    va_list  ap;
    int      n;

    if (err == NULL || errlen == 0) {
        return;
    }

    n = line ? snprintf(err, errlen, "%s:%u: ", name, line)
             : snprintf(err, errlen, "%s: ", name);
    if (n < 0 || (size_t) n >= errlen) {
        return;
    }

    va_start(ap, fmt);
    vsnprintf(err + n, errlen - n, fmt, ap);
    va_end(ap);
}


static int
mlg_hex_value(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}


static int
mlg_id_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
           || c == '@' || c == ':';
}


static int
mlg_role_char(int c)
{
    return mlg_id_char(c) || c == '/';
}


static size_t
mlg_apikeys_slot(const mlg_apikeys_t *t, const unsigned char *digest)
{
    uint64_t  h;

    memcpy(&h, digest, sizeof(h));
    return (size_t) h & t->mask;
}


/*
 * The digest object and context are made once per process: an implicit
 * EVP_sha256() fetch and a fresh context per call cost more than the hash
 * of a short key.  (nginx workers are single-threaded.)
 */
int
mlg_apikey_digest(const unsigned char *key, size_t len,
    unsigned char digest[MLG_APIKEY_DIGEST_LEN])
{
    unsigned int         n = 0;
    static EVP_MD       *md;
    static EVP_MD_CTX   *ctx;

    if (md == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (md == NULL) {
            return -1;
        }
    }
    if (ctx == NULL) {
        ctx = EVP_MD_CTX_new();
        if (ctx == NULL) {
            return -1;
        }
    }

    if (EVP_DigestInit_ex2(ctx, md, NULL) != 1
        || EVP_DigestUpdate(ctx, key, len) != 1
        || EVP_DigestFinal_ex(ctx, digest, &n) != 1
        || n != MLG_APIKEY_DIGEST_LEN)
    {
        return -1;
    }
    return 0;
}


static void
mlg_apikey_free_entry(mlg_apikey_t *k)
{
    size_t  i;

    free(k->id);
    if (k->roles) {
        for (i = 0; i < k->nroles; i++) {
            free(k->roles[i]);
        }
        free(k->roles);
    }
    free(k->roles_joined);
}


void
mlg_apikeys_free(mlg_apikeys_t *t)
{
    size_t  i;

    if (t == NULL) {
        return;
    }
    for (i = 0; i < t->nkeys; i++) {
        mlg_apikey_free_entry(&t->keys[i]);
    }
    if (t->keys) {
        OPENSSL_cleanse(t->keys, t->cap * sizeof(mlg_apikey_t));
    }
    free(t->keys);
    free(t->slots);
    free(t);
}


size_t
mlg_apikeys_count(const mlg_apikeys_t *t)
{
    return t ? t->nkeys : 0;
}


int
mlg_roles_parse(const char *s, size_t len, char ***roles_out, size_t *nroles_out,
    char **joined_out, char *msg, size_t msglen)
{
    size_t       i, start, n, total;
    char       **roles, *joined;
    const char  *p;

    roles = calloc(MLG_APIKEY_ROLES_MAX + 1, sizeof(char *));
    joined = malloc(len + 1);
    if (roles == NULL || joined == NULL) {
        snprintf(msg, msglen, "out of memory");
        goto failed;
    }
    memcpy(joined, s, len);
    joined[len] = '\0';

    total = 0;
    start = 0;
    for (i = 0; len > 0 && i <= len; i++) {
        if (i < len && s[i] != ',') {
            if (!mlg_role_char((unsigned char) s[i])) {
                snprintf(msg, msglen, "invalid character in roles");
                goto failed;
            }
            continue;
        }
        n = i - start;
        p = s + start;
        start = i + 1;
        if (n == 0) {
            snprintf(msg, msglen, "empty role name in \"%.*s\"", (int) len, s);
            goto failed;
        }
        if (total == MLG_APIKEY_ROLES_MAX) {
            snprintf(msg, msglen, "more than %d roles", MLG_APIKEY_ROLES_MAX);
            goto failed;
        }
        roles[total] = strndup(p, n);
        if (roles[total] == NULL) {
            snprintf(msg, msglen, "out of memory");
            goto failed;
        }
        total++;
    }

    *roles_out = roles;
    *nroles_out = total;
    *joined_out = joined;
    return 0;

failed:
    if (roles) {
        for (i = 0; roles[i]; i++) {
            free(roles[i]);
        }
        free(roles);
    }
    free(joined);
    return -1;
}


static int
mlg_apikeys_grow(mlg_apikeys_t *t)
{
    mlg_apikey_t  *keys;
    size_t         cap;

    if (t->nkeys < t->cap) {
        return 0;
    }
    cap = t->cap ? t->cap * 2 : 16;
    keys = realloc(t->keys, cap * sizeof(mlg_apikey_t));
    if (keys == NULL) {
        return -1;
    }
    memset(keys + t->cap, 0, (cap - t->cap) * sizeof(mlg_apikey_t));
    t->keys = keys;
    t->cap = cap;
    return 0;
}


/* Parses one non-empty line (comment already stripped) into a new entry. */
static int
mlg_apikeys_parse_line(void *data, const char *s, size_t len, unsigned line,
    char *msg, size_t msglen)
{
    mlg_apikeys_t  *t = data;
    const char    *field[4];
    size_t         flen[4], nf, i;
    mlg_apikey_t  *k;
    int            hi, lo;

    nf = 0;
    i = 0;
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t')) {
            i++;
        }
        if (i == len) {
            break;
        }
        if (nf == 3) {
            snprintf(msg, msglen, "too many fields (expected KEY_ID SHA256_HEX [ROLES])");
            return -1;
        }
        field[nf] = s + i;
        while (i < len && s[i] != ' ' && s[i] != '\t') {
            i++;
        }
        flen[nf] = (size_t) (s + i - field[nf]);
        nf++;
    }

    if (nf < 2) {
        snprintf(msg, msglen, "missing SHA-256 digest (expected KEY_ID SHA256_HEX [ROLES])");
        return -1;
    }

    if (flen[0] > MLG_APIKEY_ID_MAX) {
        snprintf(msg, msglen, "key id longer than %d characters", MLG_APIKEY_ID_MAX);
        return -1;
    }
    for (i = 0; i < flen[0]; i++) {
        if (!mlg_id_char((unsigned char) field[0][i])) {
            snprintf(msg, msglen, "invalid character in key id");
            return -1;
        }
    }

    if (flen[1] != 2 * MLG_APIKEY_DIGEST_LEN) {
        snprintf(msg, msglen, "digest of key \"%.*s\" must be 64 lowercase hex "
                 "characters (the SHA-256 of the key, never the key itself), "
                 "got %zu characters", (int) flen[0], field[0], flen[1]);
        return -1;
    }

    if (mlg_apikeys_grow(t) != 0) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    k = &t->keys[t->nkeys];
    memset(k, 0, sizeof(*k));
    k->line = line;

    for (i = 0; i < MLG_APIKEY_DIGEST_LEN; i++) {
        hi = mlg_hex_value((unsigned char) field[1][2 * i]);
        lo = mlg_hex_value((unsigned char) field[1][2 * i + 1]);
        if (hi < 0 || lo < 0) {
            snprintf(msg, msglen, "digest of key \"%.*s\" is not lowercase hex",
                     (int) flen[0], field[0]);
            return -1;
        }
        k->digest[i] = (unsigned char) (hi << 4 | lo);
    }

    k->id = strndup(field[0], flen[0]);
    if (k->id == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }

    if (mlg_roles_parse(nf == 3 ? field[2] : "", nf == 3 ? flen[2] : 0,
                        &k->roles, &k->nroles, &k->roles_joined, msg, msglen)
        != 0)
    {
        mlg_apikey_free_entry(k);
        memset(k, 0, sizeof(*k));
        return -1;
    }

    t->nkeys++;
    return 0;
}


static int
mlg_apikeys_index(mlg_apikeys_t *t, const char *name, char *err, size_t errlen)
{
    size_t         size, i, j, s;
    mlg_apikey_t  *k, *other;

    size = 16;
    while (size < t->nkeys * 2) {
        size *= 2;
    }
    t->slots = calloc(size, sizeof(mlg_apikey_t *));
    if (t->slots == NULL) {
        mlg_apikeys_error(err, errlen, name, 0, "out of memory");
        return -1;
    }
    t->mask = size - 1;

    for (i = 0; i < t->nkeys; i++) {
        k = &t->keys[i];

        for (j = 0; j < i; j++) {
            other = &t->keys[j];
            if (strcmp(other->id, k->id) == 0) {
                mlg_apikeys_error(err, errlen, name, k->line,
                                  "duplicate key id \"%s\" (first on line %u)",
                                  k->id, other->line);
                return -1;
            }
        }

        for (s = mlg_apikeys_slot(t, k->digest); t->slots[s]; s = (s + 1) & t->mask) {
            if (memcmp(t->slots[s]->digest, k->digest, MLG_APIKEY_DIGEST_LEN) == 0) {
                mlg_apikeys_error(err, errlen, name, k->line,
                                  "duplicate digest: key \"%s\" has the same "
                                  "hash as \"%s\" (line %u)",
                                  k->id, t->slots[s]->id, t->slots[s]->line);
                return -1;
            }
        }
        t->slots[s] = k;
    }
    return 0;
}


mlg_apikeys_t *
mlg_apikeys_parse(const char *buf, size_t len, const char *name,
    char *err, size_t errlen)
{
    mlg_apikeys_t  *t;

    t = calloc(1, sizeof(mlg_apikeys_t));
    if (t == NULL) {
        mlg_apikeys_error(err, errlen, name, 0, "out of memory");
        return NULL;
    }

    if (mlg_conffile_each_line(buf, len, name, mlg_apikeys_parse_line, t,
                               err, errlen) != 0
        || mlg_apikeys_index(t, name, err, errlen) != 0)
    {
        mlg_apikeys_free(t);
        return NULL;
    }

    return t;
}


mlg_apikeys_t *
mlg_apikeys_load(const char *path, char *err, size_t errlen)
{
    char           *buf;
    size_t          n;
    mlg_apikeys_t  *t;

    buf = mlg_conffile_read(path, MLG_APIKEYS_FILE_MAX, &n, err, errlen);
    if (buf == NULL) {
        return NULL;
    }

    t = mlg_apikeys_parse(buf, n, path, err, errlen);
    free(buf);
    return t;
}


const mlg_apikey_t *
mlg_apikeys_lookup_digest(const mlg_apikeys_t *t,
    const unsigned char digest[MLG_APIKEY_DIGEST_LEN])
{
    size_t  s;

    if (t == NULL || t->slots == NULL) {
        return NULL;
    }
    for (s = mlg_apikeys_slot(t, digest); t->slots[s]; s = (s + 1) & t->mask) {
        if (CRYPTO_memcmp(t->slots[s]->digest, digest, MLG_APIKEY_DIGEST_LEN) == 0) {
            return t->slots[s];
        }
    }
    return NULL;
}


const mlg_apikey_t *
mlg_apikeys_lookup(const mlg_apikeys_t *t, const unsigned char *key, size_t len)
{
    unsigned char        digest[MLG_APIKEY_DIGEST_LEN];
    const mlg_apikey_t  *k;

    if (mlg_apikey_digest(key, len, digest) != 0) {
        return NULL;
    }
    k = mlg_apikeys_lookup_digest(t, digest);
    OPENSSL_cleanse(digest, sizeof(digest));
    return k;
}
