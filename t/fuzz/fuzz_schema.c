/*
 * libFuzzer target for the schema compiler and validator.  Input: a schema
 * document, optionally followed by a NUL byte and an instance document (a
 * raw NUL never occurs in valid JSON).  Without an instance the schema
 * document validates itself.  Built by scripts/fuzz.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mlg_json.h"
#include "mlg_schema.h"

static void
check_errors(const mlg_schema_errors_t *errs, int valid)
{
    unsigned  i;
    json_t   *s;

    if (errs->count > MLG_SCHEMA_MAX_ERRORS) {
        abort();
    }
    /* an invalid verdict always comes with at least one error */
    if (!valid && errs->count == 0) {
        abort();
    }
    for (i = 0; i < errs->count; i++) {
        const mlg_schema_error_t *e = &errs->errors[i];

        if (e->path_len >= MLG_SCHEMA_PATH_MAX
            || strlen(e->message) >= MLG_SCHEMA_MESSAGE_MAX)
        {
            abort();
        }
        /* both must be valid UTF-8 so a response can carry them */
        s = json_stringn(e->path, e->path_len);
        if (s == NULL) {
            abort();
        }
        json_decref(s);
        s = json_string(e->message);
        if (s == NULL) {
            abort();
        }
        json_decref(s);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char           *buf = (const char *) data;
    const char           *sep = memchr(buf, '\0', size);
    size_t                slen = sep ? (size_t) (sep - buf) : size;
    json_t               *sj, *ij;
    json_error_t          jerr;
    mlg_schema_t         *schema;
    mlg_schema_errors_t   errs;
    char                  err[512];
    int                   valid, again;

    /* the instance is handled in the arena, as the nginx glue does */
    if (mlg_json_arena_init(16 * 1024) != 0) {
        abort();
    }
    sj = json_loadb(buf, slen, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (sj == NULL) {
        return 0;
    }
    schema = mlg_schema_compile(sj, err, sizeof(err));
    if (schema == NULL) {
        if (err[0] == '\0') {
            abort();    /* a failed compile always explains itself */
        }
        json_decref(sj);
        return 0;
    }
    mlg_json_arena_begin();
    if (sep) {
        ij = mlg_json_parse(sep + 1, size - slen - 1, 64, err, sizeof(err));
    } else {
        ij = json_incref(sj);
    }
    if (ij != NULL) {
        valid = mlg_schema_validate(schema, ij, &errs);
        check_errors(&errs, valid);
        /* the verdict does not depend on whether errors are collected */
        again = mlg_schema_validate(schema, ij, NULL);
        if (again != valid) {
            abort();
        }
        json_decref(ij);
    }
    mlg_json_arena_end();
    mlg_schema_free(schema);
    json_decref(sj);
    return 0;
}
