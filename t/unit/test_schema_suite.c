/*
 * JSON-Schema-Test-Suite (draft 2020-12, vendored in t/data/) against
 * mlg_schema.  Every group whose schema uses only supported keywords must
 * compile and give the expected verdict for each of its tests; every group
 * using anything unsupported must fail to compile.  The check of "uses only
 * supported keywords" below is written independently of the compiler.
 */
#include "tap.h"
#include "mlg_schema.h"

#include <dirent.h>
#include <jansson.h>
#include <limits.h>

static const char *supported[] = {
    "$schema", "$id", "$comment", "title", "description", "format",
    "default", "examples", "$defs", "$ref",
    "type", "enum", "const", "properties", "patternProperties",
    "additionalProperties", "propertyNames", "required", "dependentRequired",
    "minProperties", "maxProperties", "items", "prefixItems", "minItems",
    "maxItems", "uniqueItems", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "pattern",
    "allOf", "anyOf", "oneOf", "not", "if", "then", "else", NULL
};

static int
is_supported_keyword(const char *k)
{
    int  i;

    for (i = 0; supported[i]; i++) {
        if (strcmp(supported[i], k) == 0) {
            return 1;
        }
    }
    return 0;
}

/* 1 when the schema at this position uses only what the validator claims */
static int
uses_only_supported(const json_t *s, int is_root, char *why, size_t whylen)
{
    const char  *k, *r;
    json_t      *v, *sub;
    void        *it, *it2;
    size_t       i;

    if (json_is_boolean(s)) {
        return 1;
    }
    if (!json_is_object(s)) {
        snprintf(why, whylen, "non-schema value");
        return 0;
    }
    for (it = json_object_iter((json_t *) s); it;
         it = json_object_iter_next((json_t *) s, it))
    {
        k = json_object_iter_key(it);
        v = json_object_iter_value(it);
        if (!is_supported_keyword(k)) {
            snprintf(why, whylen, "keyword %s", k);
            return 0;
        }
        if (strcmp(k, "$id") == 0 && !is_root) {
            snprintf(why, whylen, "embedded $id");
            return 0;
        }
        if (strcmp(k, "$schema") == 0 && json_is_string(v)
            && strncmp(json_string_value(v),
                       "https://json-schema.org/draft/2020-12/schema", 44))
        {
            snprintf(why, whylen, "$schema of another draft");
            return 0;
        }
        if (strcmp(k, "$ref") == 0) {
            r = json_string_value(v);
            if (r == NULL || r[0] != '#' || (r[1] != '\0' && r[1] != '/')) {
                snprintf(why, whylen, "$ref %s", r ? r : "?");
                return 0;
            }
        }
        if (!strcmp(k, "additionalProperties") || !strcmp(k, "propertyNames")
            || !strcmp(k, "items") || !strcmp(k, "not") || !strcmp(k, "if")
            || !strcmp(k, "then") || !strcmp(k, "else"))
        {
            if (!uses_only_supported(v, 0, why, whylen)) {
                return 0;
            }
        }
        if (!strcmp(k, "properties") || !strcmp(k, "patternProperties")
            || !strcmp(k, "$defs"))
        {
            for (it2 = json_object_iter(v); it2;
                 it2 = json_object_iter_next(v, it2))
            {
                sub = json_object_iter_value(it2);
                if (!uses_only_supported(sub, 0, why, whylen)) {
                    return 0;
                }
            }
        }
        if (!strcmp(k, "allOf") || !strcmp(k, "anyOf") || !strcmp(k, "oneOf")
            || !strcmp(k, "prefixItems"))
        {
            for (i = 0; i < json_array_size(v); i++) {
                if (!uses_only_supported(json_array_get(v, i), 0, why,
                                         whylen))
                {
                    return 0;
                }
            }
        }
    }
    return 1;
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
suite_dir(char *out, size_t len)
{
    const char  *here = __FILE__;
    const char  *p = strstr(here, "t/unit/test_schema_suite.c");

    if (here[0] == '/' && p != NULL) {
        snprintf(out, len, "%.*st/data/json-schema-test-suite/draft2020-12",
                 (int) (p - here), here);
    } else {
        snprintf(out, len, "t/data/json-schema-test-suite/draft2020-12");
    }
}

int
main(void)
{
    char           dir[PATH_MAX], path[PATH_MAX + 256], err[512], why[256];
    DIR           *d;
    struct dirent *de;
    char          *names[256];
    size_t         nnames = 0, f, g, t;
    json_t        *doc, *group, *tests, *test;
    json_error_t   jerr;
    mlg_schema_t  *schema;
    int            valid, expect, ok_supported;
    unsigned       files = 0, groups_run = 0, groups_skipped = 0,
                   tests_run = 0, tests_skipped = 0, skipped_compiled = 0,
                   tests_failed = 0;
    unsigned       file_run, file_skip;

    suite_dir(dir, sizeof(dir));
    d = opendir(dir);
    if (d == NULL) {
        ok(0, "open suite directory %s", dir);
        return done_testing();
    }
    while ((de = readdir(d)) != NULL && nnames < 256) {
        size_t l = strlen(de->d_name);
        if (l > 5 && strcmp(de->d_name + l - 5, ".json") == 0) {
            names[nnames++] = strdup(de->d_name);
        }
    }
    closedir(d);
    qsort(names, nnames, sizeof(char *), cmp_names);

    for (f = 0; f < nnames; f++) {
        snprintf(path, sizeof(path), "%s/%s", dir, names[f]);
        doc = json_load_file(path, JSON_ALLOW_NUL, &jerr);
        if (!ok(doc != NULL && json_is_array(doc), "load %s", names[f])) {
            continue;
        }
        files++;
        file_run = file_skip = 0;
        for (g = 0; g < json_array_size(doc); g++) {
            group = json_array_get(doc, g);
            const json_t *s = json_object_get(group, "schema");
            const char *gdesc = json_string_value(
                json_object_get(group, "description"));
            tests = json_object_get(group, "tests");

            why[0] = '\0';
            ok_supported = uses_only_supported(s, 1, why, sizeof(why));
            schema = mlg_schema_compile(s, err, sizeof(err));
            if (!ok_supported) {
                groups_skipped++;
                file_skip++;
                tests_skipped += (unsigned) json_array_size(tests);
                if (!ok(schema == NULL, "%s: \"%s\" (uses %s) does not "
                        "compile", names[f], gdesc, why))
                {
                    skipped_compiled++;
                }
                mlg_schema_free(schema);
                continue;
            }
            groups_run++;
            file_run++;
            if (!ok(schema != NULL, "%s: \"%s\" compiles", names[f], gdesc)) {
                diag("error: %s", err);
                tests_failed += (unsigned) json_array_size(tests);
                continue;
            }
            for (t = 0; t < json_array_size(tests); t++) {
                test = json_array_get(tests, t);
                expect = json_is_true(json_object_get(test, "valid"));
                valid = mlg_schema_validate(schema,
                                            json_object_get(test, "data"),
                                            NULL);
                tests_run++;
                if (!ok(valid == expect, "%s: %s: %s -> %s", names[f], gdesc,
                        json_string_value(json_object_get(test,
                                                          "description")),
                        expect ? "valid" : "invalid"))
                {
                    tests_failed++;
                }
            }
            mlg_schema_free(schema);
        }
        diag("%-28s groups run %3u, skipped (unsupported keywords) %3u",
             names[f], file_run, file_skip);
        json_decref(doc);
        free(names[f]);
    }

    diag("SUMMARY files %u; groups run %u, tests run %u, failed %u; "
         "groups skipped %u (%u tests), of which compiled anyway %u",
         files, groups_run, tests_run, tests_failed, groups_skipped,
         tests_skipped, skipped_compiled);
    ok(groups_run > 0 && tests_run > 0, "ran suite cases");
    is_int(tests_failed, 0, "no supported suite test failed");
    is_int(skipped_compiled, 0, "every unsupported schema failed to compile");
    doc = json_pack("{s:i}", "contains", 1);
    schema = mlg_schema_compile(doc, err, sizeof(err));
    json_decref(doc);
    ok(schema == NULL, "a schema with an unsupported keyword does not compile");
    is_str(err, "/contains: unsupported keyword \"contains\"",
           "unsupported keyword error names the pointer");
    return done_testing();
}
