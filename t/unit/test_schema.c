/*
 * mlg_schema behaviour beyond the official suite: error paths and messages,
 * compile errors with JSON pointers, the loader, numeric corner cases,
 * references, limits on what messages reveal, and the shipped schemas.
 */
#include "tap.h"
#include "mlg_schema.h"
#include "mlg_json.h"

#include <limits.h>
#include <unistd.h>

static char  root_dir[PATH_MAX];

static json_t *
J(const char *s)
{
    json_error_t  e;
    json_t       *j = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

    if (j == NULL) {
        diag("bad test JSON %s: %s", s, e.text);
    }
    return j;
}

static mlg_schema_t *
C(const char *s, char *err, size_t errlen)
{
    json_t        *j = J(s);
    mlg_schema_t  *sc = mlg_schema_compile(j, err, errlen);

    json_decref(j);
    return sc;
}

/* validates; returns verdict, fills errs */
static int
V(const char *schema, const char *inst, mlg_schema_errors_t *errs)
{
    char           err[512];
    mlg_schema_t  *sc = C(schema, err, sizeof(err));
    json_t        *i = J(inst);
    int            v;

    if (sc == NULL || i == NULL) {
        diag("compile failed: %s", err);
        json_decref(i);
        mlg_schema_free(sc);
        return -1;
    }
    v = mlg_schema_validate(sc, i, errs);
    json_decref(i);
    mlg_schema_free(sc);
    return v;
}

static void
compile_error(const char *schema, const char *want)
{
    char           err[512];
    mlg_schema_t  *sc = C(schema, err, sizeof(err));

    ok(sc == NULL, "does not compile: %s", schema);
    is_str(err, want, "compile error for %s", schema);
    mlg_schema_free(sc);
}

static void
one_error(const char *schema, const char *inst, const char *path,
    const char *message)
{
    mlg_schema_errors_t  e;
    int                  v = V(schema, inst, &e);

    ok(v == 0 && e.count >= 1, "%s invalid against %s", inst, schema);
    if (e.count >= 1) {
        is_str(e.errors[0].path, path, "  path");
        is_str(e.errors[0].message, message, "  message");
    }
}

static void
valid(const char *schema, const char *inst)
{
    mlg_schema_errors_t  e;

    is_int(V(schema, inst, &e), 1, "%s valid against %s", inst, schema);
    if (e.count) {
        diag("first error: %s %s", e.errors[0].path, e.errors[0].message);
    }
}

static void
invalid(const char *schema, const char *inst)
{
    mlg_schema_errors_t  e;

    is_int(V(schema, inst, &e), 0, "%s invalid against %s", inst, schema);
}

static void
test_compile_errors(void)
{
    compile_error("{\"properties\": {\"a\": {\"minimum\": \"1\"}}}",
                  "/properties/a/minimum: must be a number");
    compile_error("{\"contains\": {}}",
                  "/contains: unsupported keyword \"contains\"");
    compile_error("{\"$defs\": {\"a/b~c\": {\"typo\": 1}}}",
                  "/$defs/a~1b~0c/typo: unsupported keyword \"typo\"");
    compile_error("{\"type\": \"int\"}", "/type: unknown type \"int\"");
    compile_error("{\"type\": [\"string\", \"string\"]}",
                  "/type: type must not repeat a type name");
    compile_error("{\"minLength\": -1}",
                  "/minLength: must be a non-negative integer");
    compile_error("{\"minLength\": 1.5}",
                  "/minLength: must be a non-negative integer");
    compile_error("{\"multipleOf\": 0}",
                  "/multipleOf: must be a number greater than 0");
    compile_error("{\"required\": [\"a\", 1]}",
                  "/required: required must be an array of strings");
    compile_error("{\"required\": [\"a\", \"a\"]}",
                  "/required: required must not repeat a name");
    compile_error("{\"items\": [{}]}",
                  "/items: must be a schema (object or boolean); "
                  "use prefixItems for tuples");
    compile_error("{\"allOf\": []}",
                  "/allOf: allOf must be a non-empty array of schemas");
    compile_error("{\"anyOf\": [{}, 3]}",
                  "/anyOf/1: must be a schema (object or boolean)");
    compile_error("{\"pattern\": \"(\"}",
                  "/pattern: invalid regular expression: "
                  "missing closing parenthesis");
    compile_error("{\"patternProperties\": {\"[\": {}}}",
                  "/patternProperties/[: invalid regular expression: "
                  "missing terminating ] for character class");
    compile_error("{\"$ref\": \"#/$defs/missing\"}",
                  "/$ref: cannot resolve reference \"#/$defs/missing\"");
    compile_error("{\"$ref\": \"other.json#/a\"}",
                  "/$ref: only local references (\"#\" or \"#/$defs/...\") "
                  "are supported");
    compile_error("{\"$ref\": \"#anchor\"}",
                  "/$ref: anchors are not supported; use \"#\" or "
                  "\"#/$defs/...\"");
    compile_error("{\"$ref\": \"#/$defs/%zz\"}",
                  "/$ref: invalid percent-encoding in \"#/$defs/%zz\"");
    compile_error("{\"$ref\": \"#/$defs/a~2\", \"$defs\": {\"a\": {}}}",
                  "/$ref: invalid JSON pointer escape in \"#/$defs/a~2\"");
    compile_error("{\"$ref\": \"#\"}",
                  "(root): $ref cycle without an intervening property or "
                  "item: validation would never end");
    compile_error("{\"$defs\": {\"a\": {\"anyOf\": [{\"$ref\": \"#/$defs/b\"}]},"
                  " \"b\": {\"not\": {\"$ref\": \"#/$defs/a\"}}},"
                  " \"$ref\": \"#/$defs/a\"}",
                  "(root): $ref cycle without an intervening property or "
                  "item: validation would never end");
    compile_error("{\"$schema\": \"http://json-schema.org/draft-07/schema#\"}",
                  "/$schema: only draft 2020-12 "
                  "(\"https://json-schema.org/draft/2020-12/schema\") is "
                  "supported");
    compile_error("{\"properties\": {\"a\": {\"$id\": \"x\"}}}",
                  "/properties/a/$id: $id is only supported at the root "
                  "(embedded schema resources are not supported)");
    compile_error("{\"title\": 5}", "/title: must be a string");
    compile_error("{\"definitions\": {}}",
                  "/definitions: unsupported keyword \"definitions\"");
    compile_error("3", "(root): a schema must be an object or a boolean");
    compile_error("{\"$defs\": {\"x\": {\"minimum\": true}}}",
                  "/$defs/x/minimum: must be a number");
    /* the pointer of a keyword reached through a $ref is its own */
    compile_error("{\"properties\": {\"a\": {\"$ref\": \"#/$defs/d\"}},"
                  " \"$defs\": {\"d\": {\"maxItems\": \"2\"}}}",
                  "/$defs/d/maxItems: must be a non-negative integer");
}

static void
test_annotations(void)
{
    valid("{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\","
          " \"$id\": \"https://x/y.json\", \"$comment\": \"c\", \"title\": \"t\","
          " \"description\": \"d\", \"default\": {\"any\": 1},"
          " \"examples\": [1], \"format\": \"email\"}", "\"not an email\"");
}

static void
test_messages(void)
{
    mlg_schema_errors_t  e;
    unsigned             i;

    one_error("{\"properties\": {\"input\": {\"items\": {\"maximum\": 100}}}}",
              "{\"input\": [1, 2, 101]}", "/input/2", "maximum: must be <= 100");
    one_error("{\"minimum\": 0.5}", "0.25", "", "minimum: must be >= 0.5");
    one_error("{\"exclusiveMinimum\": 0}", "0", "", "exclusiveMinimum: must be > 0");
    one_error("{\"exclusiveMaximum\": 1e3}", "1000", "",
              "exclusiveMaximum: must be < 1000");
    one_error("{\"multipleOf\": 0.01}", "0.005", "",
              "multipleOf: must be a multiple of 0.01");
    one_error("{\"type\": \"integer\"}", "1.5", "", "type: must be integer");
    one_error("{\"type\": [\"string\", \"null\"]}", "1", "",
              "type: must be one of null, string");
    one_error("{\"required\": [\"a\", \"b\"]}", "{\"a\": 1}", "",
              "required: property \"b\" is missing");
    one_error("{\"properties\": {\"a~b/c\": {\"type\": \"string\"}}}",
              "{\"a~b/c\": 1}", "/a~0b~1c", "type: must be string");
    one_error("{\"additionalProperties\": false}", "{\"x/y\": 1}", "/x~1y",
              "additionalProperties: property is not allowed");
    one_error("{\"prefixItems\": [{}], \"items\": false}", "[1, 2]", "/1",
              "items: no items allowed after the first 1");
    one_error("{\"minItems\": 2}", "[1]", "", "minItems: must have at least 2 items");
    one_error("{\"maxItems\": 1}", "[1, 2]", "", "maxItems: must have at most 1 items");
    one_error("{\"uniqueItems\": true}", "[1, {\"a\": 2}, 1.0]", "",
              "uniqueItems: items 0 and 2 are equal");
    one_error("{\"minLength\": 3}", "\"\xc3\xa9\xc3\xa9\"", "",
              "minLength: must be at least 3 characters");
    one_error("{\"maxLength\": 2}", "\"abc\"", "",
              "maxLength: must be at most 2 characters");
    one_error("{\"pattern\": \"^[a-z]+$\"}", "\"abc1\"", "",
              "pattern: must match \"^[a-z]+$\"");
    one_error("{\"enum\": [1, \"a\"]}", "2", "",
              "enum: must be one of the 2 allowed values");
    one_error("{\"const\": {\"a\": 1}}", "{\"a\": 2}", "",
              "const: must be equal to the constant");
    one_error("{\"anyOf\": [{\"type\": \"string\"}, {\"minimum\": 5}]}", "1", "",
              "anyOf: must match at least one of 2 schemas");
    one_error("{\"oneOf\": [{\"minimum\": 0}, {\"maximum\": 10}]}", "5", "",
              "oneOf: must match exactly one of 2 schemas (matched more than one)");
    one_error("{\"oneOf\": [{\"minimum\": 10}, {\"maximum\": 0}]}", "5", "",
              "oneOf: must match exactly one of 2 schemas (matched none)");
    one_error("{\"not\": {\"type\": \"null\"}}", "null", "",
              "not: must not match the schema");
    one_error("{\"propertyNames\": {\"maxLength\": 3}}", "{\"long\": 1}", "/long",
              "propertyNames: property name is not allowed");
    one_error("{\"dependentRequired\": {\"a\": [\"b\"]}}", "{\"a\": 1}", "",
              "dependentRequired: property \"b\" is required when \"a\" is present");
    one_error("{\"minProperties\": 2}", "{\"a\": 1}", "",
              "minProperties: must have at least 2 properties");
    one_error("{\"maxProperties\": 0}", "{\"a\": 1}", "",
              "maxProperties: must have at most 0 properties");
    one_error("false", "1", "", "false schema: no value is allowed here");
    one_error("{\"if\": {\"type\": \"string\"}, \"then\": {\"minLength\": 2},"
              " \"else\": {\"minimum\": 0}}", "-1", "", "minimum: must be >= 0");

    /* at most 10 errors, in document order, truncation flagged */
    ok(V("{\"items\": {\"type\": \"string\"}}",
         "[1,2,3,4,5,6,7,8,9,10,11,12]", &e) == 0, "12 bad items invalid");
    is_int(e.count, 10, "10 errors stored");
    is_int(e.truncated, 1, "truncation flagged");
    is_str(e.errors[9].path, "/9", "10th error path");

    /* several independent errors are all reported */
    ok(V("{\"properties\": {\"a\": {\"type\": \"string\"}, \"b\": {\"minimum\": 3}},"
         " \"required\": [\"c\"]}", "{\"a\": 1, \"b\": 1}", &e) == 0,
       "three errors invalid");
    is_int(e.count, 3, "three errors reported");
    is_int(e.truncated, 0, "not truncated");

    /* messages never carry instance values; long keys are cut in paths */
    {
        char   inst[1400];
        int    n;

        n = snprintf(inst, sizeof(inst), "{\"");
        for (i = 0; i < 1000; i++) {
            inst[n++] = 'k';
        }
        snprintf(inst + n, sizeof(inst) - (size_t) n, "\": \"%0200d\"}", 7);
        ok(V("{\"additionalProperties\": {\"maxLength\": 3}}", inst, &e) == 0,
           "long key, long value invalid");
        ok(e.count == 1 && strstr(e.errors[0].message, "000000") == NULL,
           "value not echoed: %s", e.errors[0].message);
        ok(e.errors[0].path_len < MLG_SCHEMA_PATH_MAX
           && strcmp(e.errors[0].path + e.errors[0].path_len - 3, "...") == 0,
           "long path cut with ... (%zu bytes)", e.errors[0].path_len);
    }
    /* a NUL in a property name is kept in the path, with its length */
    {
        char           err[256];
        mlg_schema_t  *sc = C("{\"additionalProperties\": false}", err,
                              sizeof(err));
        json_t        *in = json_object();

        json_object_setn_new(in, "a\0b", 3, json_integer(1));
        ok(mlg_schema_validate(sc, in, &e) == 0
           && e.count == 1 && e.errors[0].path_len == 4
           && memcmp(e.errors[0].path, "/a\0b", 4) == 0, "NUL in key path");
        json_decref(in);
        mlg_schema_free(sc);
    }
    /* a schema name cut at 64 bytes never leaves broken UTF-8 behind */
    {
        char  schema[400];
        int   n;

        n = snprintf(schema, sizeof(schema), "{\"required\": [\"x");
        for (i = 0; i < 40; i++) {
            n += snprintf(schema + n, sizeof(schema) - (size_t) n, "\xc3\xa9");
        }
        snprintf(schema + n, sizeof(schema) - (size_t) n, "\"]}");
        ok(V(schema, "{}", &e) == 0 && e.count == 1, "long non-ASCII name invalid");
        {
            json_t *m = json_string(e.errors[0].message);
            ok(m != NULL, "message is valid UTF-8: %s", e.errors[0].message);
            json_decref(m);
        }
    }
    /* collecting no errors gives the same verdict */
    {
        char           err[256];
        mlg_schema_t  *sc = C("{\"items\": {\"minimum\": 0}}", err, sizeof(err));
        json_t        *in = J("[1, -1]");
        is_int(mlg_schema_validate(sc, in, NULL), 0, "verdict without errors");
        json_decref(in);
        mlg_schema_free(sc);
    }
}

static void
test_semantics(void)
{
    /* integer accepts integral reals */
    valid("{\"type\": \"integer\"}", "1.0");
    valid("{\"type\": \"integer\"}", "-0.0");
    invalid("{\"type\": \"integer\"}", "1.1");
    invalid("{\"type\": \"number\"}", "\"1\"");
    invalid("{\"type\": \"boolean\"}", "0");
    /* multipleOf with floats */
    valid("{\"multipleOf\": 0.0001}", "0.0075");
    invalid("{\"multipleOf\": 0.0001}", "0.00751");
    valid("{\"multipleOf\": 0.01}", "19.99");
    valid("{\"multipleOf\": 0.1}", "0.3");
    invalid("{\"multipleOf\": 0.1}", "0.35");
    valid("{\"multipleOf\": 3}", "9223372036854775806");
    invalid("{\"multipleOf\": 3}", "9223372036854775807");
    valid("{\"multipleOf\": 1.5}", "4.5");
    invalid("{\"multipleOf\": 1}", "1000000000000000.5");
    valid("{\"multipleOf\": 2}", "4.0");
    invalid("{\"multipleOf\": 2}", "5.0");
    invalid("{\"multipleOf\": 3}", "1e20");
    valid("{\"multipleOf\": 4}", "1e20");
    valid("{\"multipleOf\": 2.0}", "1e300");
    invalid("{\"multipleOf\": 0.123456789}", "1e308");
    /* exact integer limits */
    invalid("{\"maximum\": 9007199254740992}", "9007199254740993");
    valid("{\"minimum\": -9223372036854775808}", "-9223372036854775808");
    valid("{\"maximum\": 1.0}", "1");
    invalid("{\"exclusiveMaximum\": 1.0}", "1");
    /* code points, not bytes */
    valid("{\"maxLength\": 1}", "\"\xf0\x9f\x92\xa9\"");
    invalid("{\"minLength\": 2}", "\"\xf0\x9f\x92\xa9\"");
    valid("{\"maxLength\": 2.0}", "\"ab\"");
    /* patterns: unanchored search, UTF-8, ECMA-style $ and \p{...} */
    valid("{\"pattern\": \"b\"}", "\"abc\"");
    invalid("{\"pattern\": \"^b\"}", "\"abc\"");
    invalid("{\"pattern\": \"^a$\"}", "\"a\\n\"");
    valid("{\"pattern\": \"^.$\"}", "\"\xc3\xa9\"");
    valid("{\"pattern\": \"^\\\\p{Letter}+$\"}", "\"\xc3\xa9t\xc3\xa9\"");
    valid("{\"pattern\": \"^\\\\p{gc=Lu}$\"}", "\"A\"");
    valid("{\"pattern\": \"^\\\\p{Script=Greek}+$\"}", "\"\xce\xb1\xce\xb2\"");
    invalid("{\"pattern\": \"^\\\\d+$\"}", "\"\xd9\xa3\"");
    valid("{\"pattern\": \"^\\\\u0041$\"}", "\"A\"");
    valid("{\"pattern\": \"^\\\\u{1F4A9}$\"}", "\"\xf0\x9f\x92\xa9\"");
    /* catastrophic backtracking is cut off and fails closed */
    invalid("{\"pattern\": \"^(a+)+$\"}",
            "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab\"");
    /* equality for enum/const/uniqueItems */
    valid("{\"enum\": [1]}", "1.0");
    valid("{\"const\": [1, {\"a\": [2.0]}]}", "[1.0, {\"a\": [2]}]");
    invalid("{\"enum\": [false]}", "0");
    invalid("{\"uniqueItems\": true}", "[{\"a\":1,\"b\":2}, {\"b\":2,\"a\":1}]");
    valid("{\"uniqueItems\": true}", "[1, true, \"1\", [1], {\"1\": 1}]");
    /* uniqueItems on a large array uses hashing, still exact */
    {
        char   buf[200000];
        int    n = 0, k;

        buf[n++] = '[';
        for (k = 0; k < 20000; k++) {
            n += snprintf(buf + n, sizeof(buf) - (size_t) n, "%s%d", k ? "," : "", k);
        }
        buf[n++] = ']';
        buf[n] = '\0';
        valid("{\"uniqueItems\": true}", buf);
        n--;
        n += snprintf(buf + n, sizeof(buf) - (size_t) n, ",17.0]");
        invalid("{\"uniqueItems\": true}", buf);
    }
    /* references: #, $defs, escapes and percent-encoding */
    valid("{\"properties\": {\"next\": {\"$ref\": \"#\"}}, \"type\": \"object\"}",
          "{\"next\": {\"next\": {}}}");
    invalid("{\"properties\": {\"next\": {\"$ref\": \"#\"}}, \"type\": \"object\"}",
            "{\"next\": {\"next\": 1}}");
    valid("{\"$defs\": {\"a/b\": {\"type\": \"string\"}}, \"$ref\": \"#/$defs/a~1b\"}",
          "\"x\"");
    invalid("{\"$defs\": {\"a%b\": {\"type\": \"string\"}},"
            " \"$ref\": \"#/$defs/a%25b\"}", "1");
    invalid("{\"$defs\": {\"t~\": {\"type\": \"string\"}},"
            " \"$ref\": \"#/$defs/t~0\"}", "1");
    /* $ref applies alongside its siblings (2020-12) */
    invalid("{\"$defs\": {\"n\": {\"type\": \"number\"}}, \"$ref\": \"#/$defs/n\","
            " \"maximum\": 3}", "4");
    /* prefixItems + items */
    valid("{\"prefixItems\": [{\"type\": \"string\"}], \"items\": {\"type\": \"number\"}}",
          "[\"a\", 1, 2]");
    invalid("{\"prefixItems\": [{\"type\": \"string\"}], \"items\": {\"type\": \"number\"}}",
            "[\"a\", 1, \"b\"]");
    /* patternProperties with additionalProperties */
    valid("{\"patternProperties\": {\"^x-\": {}}, \"additionalProperties\": false}",
          "{\"x-a\": 1}");
    invalid("{\"patternProperties\": {\"^x-\": {}}, \"additionalProperties\": false}",
            "{\"y\": 1}");
    /* deep recursion through properties stays bounded by the instance */
    valid("{\"items\": {\"$ref\": \"#\"}}", "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]");
}

static void
test_loader(void)
{
    char           path[PATH_MAX + 64], err[1024], want[PATH_MAX + 256];
    mlg_schema_t  *sc;
    FILE          *f;
    char           tmpl[] = "/tmp/mlg-schema-test-XXXXXX";
    int            fd;

    snprintf(path, sizeof(path), "%s/conf/schemas/iris.json", root_dir);
    sc = mlg_schema_load(path, err, sizeof(err));
    ok(sc != NULL, "iris schema loads (%s)", sc ? "ok" : err);
    if (sc) {
        mlg_schema_errors_t  e;
        json_t              *in;

        in = J("{\"input\": [5.1, 3.5, 1.4, 0.2]}");
        is_int(mlg_schema_validate(sc, in, &e), 1, "iris: one row valid");
        json_decref(in);
        in = J("{\"input\": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}");
        is_int(mlg_schema_validate(sc, in, &e), 1, "iris: batch valid");
        json_decref(in);
        in = J("{\"input\": [5.1, 3.5, 1.4, 200]}");
        ok(mlg_schema_validate(sc, in, &e) == 0 && e.count == 1,
           "iris: out of range invalid");
        is_str(e.errors[0].path, "/input/3", "iris: error path");
        is_str(e.errors[0].message, "maximum: must be <= 10", "iris: message");
        json_decref(in);
        in = J("{\"input\": [5.1, 3.5, 1.4]}");
        ok(mlg_schema_validate(sc, in, &e) == 0 && e.count == 1
           && strcmp(e.errors[0].message, "minItems: must have at least 4 items")
              == 0, "iris: three features invalid");
        json_decref(in);
        in = J("{\"input\": [5.1, 3.5, 1.4, 0.2, 1]}");
        ok(mlg_schema_validate(sc, in, &e) == 0
           && strcmp(e.errors[0].path, "/input/4") == 0, "iris: five features invalid");
        json_decref(in);
        in = J("{\"input\": [[5.1, 3.5, 1.4, 0.2], [6.2, \"x\", 4.3, 1.3]]}");
        ok(mlg_schema_validate(sc, in, &e) == 0
           && strcmp(e.errors[0].path, "/input/1/1") == 0, "iris: batch error path");
        json_decref(in);
        in = J("{\"input\": [1, 2, 3, 4], \"extra\": 1}");
        ok(mlg_schema_validate(sc, in, &e) == 0
           && strcmp(e.errors[0].path, "/extra") == 0, "iris: extra property");
        json_decref(in);
        in = J("{\"input\": []}");
        is_int(mlg_schema_validate(sc, in, &e), 0, "iris: empty input invalid");
        json_decref(in);
        in = J("[1, 2, 3, 4]");
        is_int(mlg_schema_validate(sc, in, &e), 0, "iris: bare array invalid");
        json_decref(in);
        mlg_schema_free(sc);
    }

    fd = mkstemp(tmpl);
    f = fdopen(fd, "w");
    fputs("{\"properties\": {\"a\": {\"maximum\": \"x\"}}}", f);
    fclose(f);
    sc = mlg_schema_load(tmpl, err, sizeof(err));
    snprintf(want, sizeof(want), "%s: /properties/a/maximum: must be a number",
             tmpl);
    ok(sc == NULL, "bad schema file fails");
    is_str(err, want, "loader error names file and pointer");

    f = fopen(tmpl, "w");
    fputs("{\"a\": 1,\n \"a\": 2}", f);
    fclose(f);
    sc = mlg_schema_load(tmpl, err, sizeof(err));
    ok(sc == NULL && strstr(err, tmpl) == err && strstr(err, "line 2")
       && strstr(err, "duplicate"), "duplicate key in schema file: %s", err);
    unlink(tmpl);

    sc = mlg_schema_load("/nonexistent/schema.json", err, sizeof(err));
    ok(sc == NULL && strncmp(err, "/nonexistent/schema.json: ", 26) == 0,
       "missing file: %s", err);
}

/* n strings of k 'a's and a 'b' (or NULL: an array of n such strings) */
static json_t *
a_strings(size_t n, size_t k)
{
    json_t  *arr = json_array();
    char    *s = malloc(k + 2);
    size_t   i;

    memset(s, 'a', k);
    s[k] = 'b';
    s[k + 1] = '\0';
    for (i = 0; i < n; i++) {
        json_array_append_new(arr, json_string(s));
    }
    free(s);
    return arr;
}

static mlg_schema_t *
CS(const char *s)
{
    char           err[512];
    mlg_schema_t  *sc = C(s, err, sizeof(err));

    if (sc == NULL) {
        diag("compile failed: %s", err);
    }
    return sc;
}

/*
 * The work budget: counted in units, never in time.  A pattern that cannot
 * be decided ends the whole validation, inside anyOf/oneOf/not/if too.
 */
static void
test_budget(void)
{
    mlg_schema_errors_t   e;
    mlg_schema_budget_t   b;
    mlg_schema_t         *sc;
    json_t               *in;
    int                   v;

    /* under "not", an undecidable pattern must not turn into a pass */
    sc = CS("{\"not\": {\"pattern\": \"^(a+)+$\"}}");
    in = json_string("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab");
    is_int(mlg_schema_validate(sc, in, NULL), 0,
           "not + catastrophic pattern: not valid");
    is_int(mlg_schema_validate(sc, in, &e), 0, "  with errors: not valid");
    ok(e.over_budget == 1 && e.count == 1 && e.errors[0].path_len == 0
       && strcmp(e.errors[0].message, "schema: work limit exceeded") == 0,
       "  reported as the work limit: %s", e.errors[0].message);
    json_decref(in);
    mlg_schema_free(sc);

    /* the same inside anyOf, if and oneOf: no branch verdict is taken */
    {
        static const char *schemas[] = {
            "{\"anyOf\": [{\"pattern\": \"^(a+)+$\"}, {\"type\": \"string\"}]}",
            "{\"if\": {\"pattern\": \"^(a+)+$\"}, \"else\": true}",
            "{\"oneOf\": [{\"pattern\": \"^(a+)+$\"}, {\"type\": \"string\"}]}",
            "{\"patternProperties\": {\"^(a+)+$\": true}}",
        };
        size_t  i;

        for (i = 0; i < sizeof(schemas) / sizeof(schemas[0]); i++) {
            sc = CS(schemas[i]);
            if (i == 3) {
                in = json_object();
                json_object_set_new(in, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
                                    json_true());
            } else {
                in = json_string("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab");
            }
            v = mlg_schema_validate(sc, in, &e);
            ok(v == 0 && e.over_budget == 1, "work limit through %s",
               schemas[i]);
            json_decref(in);
            mlg_schema_free(sc);
        }
    }

    /*
     * Many values just under the per-match limit: the regex budget, not
     * the per-value limit, ends it (2,000 strings of 15 'a's and a 'b'
     * need about 80,000 steps each, 160 million in all).
     */
    sc = CS("{\"items\": {\"anyOf\": [{\"pattern\": \"^(a+)+$\"}, "
            "{\"type\": \"string\"}]}}");
    in = a_strings(2000, 15);
    v = mlg_schema_validate(sc, in, &e);
    ok(v == 0 && e.over_budget == 1 && e.regex <= MLG_SCHEMA_MAX_REGEX,
       "many expensive matches: work limit (regex units %lu)", e.regex);
    json_decref(in);
    /* cheap ones pass, well within the budget */
    in = a_strings(2000, 3);
    v = mlg_schema_validate(sc, in, &e);
    ok(v == 1 && e.over_budget == 0 && e.regex < 1000000,
       "many cheap matches valid (regex units %lu)", e.regex);
    json_decref(in);
    mlg_schema_free(sc);

    /*
     * PCRE2's match limit holds per start position: an unanchored pattern
     * is charged for every position it may try.
     */
    sc = CS("{\"pattern\": \"(?:a|b)*[cd]\"}");
    {
        char  *s = malloc(200001);

        memset(s, 'a', 200000);
        s[200000] = '\0';
        in = json_string(s);
        free(s);
    }
    v = mlg_schema_validate(sc, in, &e);
    ok(v == 0 && e.over_budget == 1,
       "unanchored search over 200 kB: work limit (regex units %lu)",
       e.regex);
    json_decref(in);
    in = json_string("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac");
    is_int(mlg_schema_validate(sc, in, &e), 1, "  a short one matches");
    json_decref(in);
    mlg_schema_free(sc);

    /* node units: deterministic, and a small budget stops early */
    sc = CS("{\"items\": {\"type\": \"integer\"}}");
    in = J("[1, 2, 3]");
    is_int(mlg_schema_validate(sc, in, &e), 1, "small document valid");
    ok(e.nodes == 4, "  4 node units (root and 3 items): %lu", e.nodes);
    b.max_nodes = 3;
    b.max_regex = 0;
    is_int(mlg_schema_validate_budget(sc, in, &b, &e), 0,
           "  with a budget of 3: not valid");
    ok(e.over_budget == 1 && e.nodes == 3, "  over budget after 3 units");
    json_decref(in);
    mlg_schema_free(sc);

    /*
     * Nested applicators multiply visits of one value (2^20 here): the
     * node budget bounds them as well.
     */
    {
        char    buf[4096];
        size_t  n = 0, i;

        n += (size_t) snprintf(buf + n, sizeof(buf) - n, "{\"$defs\": {");
        for (i = 0; i < 20; i++) {
            n += (size_t) snprintf(buf + n, sizeof(buf) - n,
                                   "\"d%zu\": {\"allOf\": [{\"$ref\": "
                                   "\"#/$defs/d%zu\"}, {\"$ref\": "
                                   "\"#/$defs/d%zu\"}]},", i, i + 1, i + 1);
        }
        n += (size_t) snprintf(buf + n, sizeof(buf) - n,
                               "\"d20\": {\"type\": \"integer\"}}, "
                               "\"items\": {\"$ref\": \"#/$defs/d0\"}}");
        sc = CS(buf);
        in = J("[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]");
        v = mlg_schema_validate(sc, in, &e);
        ok(v == 0 && e.over_budget == 1
           && e.nodes == MLG_SCHEMA_MAX_NODES,
           "fan-out of references: node budget (%lu)", e.nodes);
        json_decref(in);
        mlg_schema_free(sc);
    }
}

/* uniqueItems: JSON equality, found in O(n log n) comparisons */
static void
test_unique(void)
{
    static const char  *keys[] = { "a", "b", "c", "d", "e", "f", "g", "h" };
    mlg_schema_errors_t  e;
    mlg_schema_t        *sc;
    json_t              *in, *o;
    size_t               perm[8], i, j, k, n, count = 0;
    unsigned long        limit;

    sc = CS("{\"uniqueItems\": true}");

    one_error("{\"uniqueItems\": true}",
              "[{\"a\": 1, \"b\": [1.0, {\"x\": null}]}, 2, "
              "{\"b\": [1, {\"x\": null}], \"a\": 1.0}, 2.0]",
              "", "uniqueItems: items 0 and 2 are equal");
    one_error("{\"uniqueItems\": true}", "[3, \"3\", [3], 1e300, 1e300]",
              "", "uniqueItems: items 3 and 4 are equal");
    is_int(V("{\"uniqueItems\": true}",
             "[0, -0.0, 1]", &e), 0, "0 and -0.0 are equal");
    is_int(V("{\"uniqueItems\": true}",
             "[9007199254740993, 9007199254740992.0, 0.5, 0.25, \"\", [], {},"
             " null, false, true, {\"\": null}, [null], \"a\\u0000\", \"a\"]",
             &e), 1, "distinct values of every kind are unique");

    /* all 40,320 objects that permute 8 values among 8 keys */
    in = json_array();
    for (i = 0; i < 8; i++) {
        perm[i] = i;
    }
    for (;;) {
        o = json_object();
        for (i = 0; i < 8; i++) {
            json_object_set_new(o, keys[i], json_integer((json_int_t) perm[i]));
        }
        json_array_append_new(in, o);
        count++;
        /* next permutation */
        for (i = 7; i > 0 && perm[i - 1] > perm[i]; i--) {
            /* void */
        }
        if (i == 0) {
            break;
        }
        for (j = 7; perm[j] < perm[i - 1]; j--) {
            /* void */
        }
        k = perm[i - 1]; perm[i - 1] = perm[j]; perm[j] = k;
        for (j = 7; i < j; i++, j--) {
            k = perm[i]; perm[i] = perm[j]; perm[j] = k;
        }
    }
    n = json_array_size(in);
    is_int((int) count, 40320, "40,320 permutations");
    is_int(mlg_schema_validate(sc, in, &e), 1, "  all unique");
    /* n log2 n comparisons plus the canonical bytes (about 35 per item) */
    limit = (unsigned long) n * (17 + 64);
    ok(e.nodes <= limit, "  work %lu <= n (log2 n + 64) = %lu", e.nodes,
       limit);
    /* one duplicate, written with other key order and 1.0 */
    o = J("{\"h\": 0, \"g\": 1.0, \"f\": 2, \"e\": 3, \"d\": 4, \"c\": 5, "
          "\"b\": 6, \"a\": 7}");
    json_array_append_new(in, o);
    ok(mlg_schema_validate(sc, in, &e) == 0 && e.count == 1,
       "  a reordered copy of the last one is found");
    {
        char want[80];

        snprintf(want, sizeof(want), "uniqueItems: items %zu and %zu are "
                 "equal", n - 1, n);
        is_str(e.errors[0].message, want, "  message");
    }
    json_decref(in);
    mlg_schema_free(sc);
}

/* client bytes in a path are escaped for logs, and cut on an escape */
static void
test_log_escape(void)
{
    char    out[16];
    size_t  n;

    n = mlg_schema_log_escape("/a\r\nb\"\\\x7f\xc3\xa9\0z", 13, out,
                              sizeof(out));
    is_str(out, "/a\\x0d\\x0ab\\x22", "controls, quote escaped and cut");
    is_int((int) n, 15, "  length");
    n = mlg_schema_log_escape("plain/path~1", 12, out, sizeof(out));
    is_str(out, "plain/path~1", "printable kept");
    n = mlg_schema_log_escape("\x01", 1, out, 4);
    is_str(out, "", "no room for an escape: nothing");
}

int
main(void)
{
    const char  *p = strstr(__FILE__, "t/unit/test_schema.c");

    if (__FILE__[0] == '/' && p != NULL) {
        snprintf(root_dir, sizeof(root_dir), "%.*s", (int) (p - __FILE__ - 1),
                 __FILE__);
    } else {
        snprintf(root_dir, sizeof(root_dir), ".");
    }
    test_compile_errors();
    test_annotations();
    test_messages();
    test_semantics();
    test_budget();
    test_unique();
    test_log_escape();
    test_loader();
    return done_testing();
}
