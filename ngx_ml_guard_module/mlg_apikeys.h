/*
 * API key table: parsing of the key file and lookup of a presented key.
 * Plain C, no nginx headers.  The file holds only SHA-256 digests of keys;
 * a presented key is hashed and compared in constant time.
 */
#ifndef MLG_APIKEYS_H
#define MLG_APIKEYS_H

#include <stddef.h>

#define MLG_APIKEY_DIGEST_LEN  32
#define MLG_APIKEY_ID_MAX      128
#define MLG_APIKEY_ROLES_MAX   32

typedef struct {
    char           *id;
    unsigned char   digest[MLG_APIKEY_DIGEST_LEN];
    char          **roles;          /* NULL-terminated */
    size_t          nroles;
    char           *roles_joined;   /* "a,b", "" when none */
    unsigned        line;
} mlg_apikey_t;

typedef struct mlg_apikeys_s  mlg_apikeys_t;

/*
 * Parses a key file held in memory.  "name" is used in error messages,
 * which have the form "NAME:LINE: message".  Returns NULL on error.
 */
mlg_apikeys_t *mlg_apikeys_parse(const char *buf, size_t len, const char *name,
    char *err, size_t errlen);

/* Reads and parses a key file. */
mlg_apikeys_t *mlg_apikeys_load(const char *path, char *err, size_t errlen);

size_t mlg_apikeys_count(const mlg_apikeys_t *keys);

/* Hashes the presented key and returns its entry, or NULL. */
const mlg_apikey_t *mlg_apikeys_lookup(const mlg_apikeys_t *keys,
    const unsigned char *key, size_t len);

/* Same, for a digest computed by the caller. */
const mlg_apikey_t *mlg_apikeys_lookup_digest(const mlg_apikeys_t *keys,
    const unsigned char digest[MLG_APIKEY_DIGEST_LEN]);

/* SHA-256 of a key; returns 0 on success. */
int mlg_apikey_digest(const unsigned char *key, size_t len,
    unsigned char digest[MLG_APIKEY_DIGEST_LEN]);

void mlg_apikeys_free(mlg_apikeys_t *keys);

#endif /* MLG_APIKEYS_H */
