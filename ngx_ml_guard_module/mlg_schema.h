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

/*
 * Work allowed for one validation.  Units: schema nodes evaluated plus
 * object members, enum values and uniqueItems bytes and comparisons
 * (MLG_SCHEMA_MAX_NODES); PCRE2 match steps, charged as the match limit
 * given to each attempt times the start positions it may try, plus the
 * bytes searched (MLG_SCHEMA_MAX_REGEX).  One pattern evaluation may use at
 * most MLG_SCHEMA_MATCH_LIMIT steps per start position.  Running out of
 * either budget, or a pattern that cannot be evaluated within its limits,
 * ends the validation as a whole (never just one anyOf/oneOf/not/if branch).
 */
#define MLG_SCHEMA_MAX_NODES     10000000
#define MLG_SCHEMA_MAX_REGEX     10000000
#define MLG_SCHEMA_MATCH_LIMIT   100000

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
    /*
     * 1 when the work budget ran out: the document was neither found valid
     * nor invalid; errors then holds only "schema: work limit exceeded".
     */
    unsigned            over_budget;
    unsigned long       nodes;      /* node units spent */
    unsigned long       regex;      /* regex units spent */
    mlg_schema_error_t  errors[MLG_SCHEMA_MAX_ERRORS];
} mlg_schema_errors_t;

typedef struct {
    unsigned long       max_nodes;  /* 0: MLG_SCHEMA_MAX_NODES */
    unsigned long       max_regex;  /* 0: MLG_SCHEMA_MAX_REGEX */
} mlg_schema_budget_t;

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
 * Returns 1 when instance is valid, 0 when not or when the work budget ran
 * out (out->over_budget tells which); out (may be NULL) receives up to
 * MLG_SCHEMA_MAX_ERRORS errors in the order they were found.  budget may be
 * NULL for the defaults.
 */
int mlg_schema_validate_budget(const mlg_schema_t *schema,
    const json_t *instance, const mlg_schema_budget_t *budget,
    mlg_schema_errors_t *out);

/* mlg_schema_validate_budget() with the default budget */
int mlg_schema_validate(const mlg_schema_t *schema, const json_t *instance,
    mlg_schema_errors_t *out);

/*
 * Copies len bytes of s into out (NUL-terminated, at most outlen - 1 bytes)
 * for a log line: printable ASCII is kept, '"' and '\\' and every other
 * byte (controls, DEL, non-ASCII, NUL) become "\xHH"; a cut never splits an
 * escape.  Returns the length written.
 */
size_t mlg_schema_log_escape(const char *s, size_t len, char *out,
    size_t outlen);

void mlg_schema_free(mlg_schema_t *schema);

#endif /* MLG_SCHEMA_H */
