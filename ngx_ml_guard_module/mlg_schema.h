/*
 * A JSON Schema (draft 2020-12 subset) validator.  A schema document is
 * compiled once into plain C structures; validation walks those, never the
 * schema's JSON.  Supported keywords are listed in docs/schema.md; any other
 * keyword is a compile error naming its JSON pointer.  No nginx headers.
 *
 * A compiled schema is read-only during validation except for one shared
 * PCRE2 match block, so use it from one thread at a time (nginx workers are
 * single-threaded).
 */
#ifndef MLG_SCHEMA_H
#define MLG_SCHEMA_H

#include <stddef.h>
#include <jansson.h>

#define MLG_SCHEMA_MAX_ERRORS    10
#define MLG_SCHEMA_PATH_MAX      256
#define MLG_SCHEMA_MESSAGE_MAX   160

typedef struct mlg_schema_s  mlg_schema_t;

typedef struct {
    /*
     * JSON Pointer (RFC 6901) of the instance location; path_len counts
     * bytes because a property name may hold "\u0000".  A pointer longer
     * than MLG_SCHEMA_PATH_MAX - 4 bytes is cut and ends in "...".
     */
    char    path[MLG_SCHEMA_PATH_MAX];
    size_t  path_len;
    /* "keyword: what is wrong", printable ASCII/UTF-8, NUL-terminated */
    char    message[MLG_SCHEMA_MESSAGE_MAX];
} mlg_schema_error_t;

typedef struct {
    unsigned            count;      /* errors stored, <= MLG_SCHEMA_MAX_ERRORS */
    unsigned            truncated;  /* 1 when more errors were not stored */
    mlg_schema_error_t  errors[MLG_SCHEMA_MAX_ERRORS];
} mlg_schema_errors_t;

/*
 * Compiles a schema (object or boolean).  The schema JSON is not referenced
 * afterwards, except for copies of enum/const values.  On failure returns
 * NULL and writes "/json/pointer: message" (or "(root): message") to err.
 */
mlg_schema_t *mlg_schema_compile(const json_t *schema, char *err,
    size_t errlen);

/*
 * Reads and compiles a schema file.  On failure err holds
 * "FILE: /json/pointer: message" or "FILE: line L column C: message".
 */
mlg_schema_t *mlg_schema_load(const char *path, char *err, size_t errlen);

/*
 * Returns 1 when instance is valid, 0 when not; out (may be NULL) receives
 * up to MLG_SCHEMA_MAX_ERRORS errors in the order they were found.
 */
int mlg_schema_validate(const mlg_schema_t *schema, const json_t *instance,
    mlg_schema_errors_t *out);

void mlg_schema_free(mlg_schema_t *schema);

#endif /* MLG_SCHEMA_H */
