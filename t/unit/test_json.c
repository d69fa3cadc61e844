/*
 * mlg_json: media types, the depth pre-scan, strict parsing, JSON equality,
 * and JSONTestSuite (vendored in t/data/json-test-suite): every y_ file
 * accepted, every n_ file rejected, i_ files parsed without crashing.
 */
#include "tap.h"
#include "mlg_json.h"

#include <dirent.h>
#include <limits.h>
#include <math.h>

static int
parses(const char *s)
{
    char     err[256];
    json_t  *j = mlg_json_parse(s, strlen(s), 32, err, sizeof(err));

    json_decref(j);
    return j != NULL;
}

static void
test_media_types(void)
{
    static const char *good[] = {
        "application/json", "Application/JSON", "application/json; charset=utf-8",
        "application/json;charset=UTF-8", " application/json ",
        "application/problem+json", "application/vnd.api+json; x=1",
        "text/x-thing+JSON", NULL
    };
    static const char *bad[] = {
        "", "application", "application/", "/json", "text/plain",
        "application/jsonx", "application/json x", "application/+json",
        "application/json-seq", "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x", "application/xml", "json",
        "application/ json", "application/json,text/plain", NULL
    };
    int  i;

    for (i = 0; good[i]; i++) {
        ok(mlg_json_media_type_ok(good[i], strlen(good[i])),
           "media type accepted: '%s'", good[i]);
    }
    for (i = 0; bad[i]; i++) {
        ok(!mlg_json_media_type_ok(bad[i], strlen(bad[i])),
           "media type rejected: '%s'", bad[i]);
    }
    ok(!mlg_json_media_type_ok(NULL, 0), "NULL media type rejected");
    /* length is honoured: the value need not be NUL-terminated */
    ok(mlg_json_media_type_ok("application/jsonGARBAGE", 16),
       "media type uses the given length");
}

static void
test_depth(void)
{
    char    buf[256];
    size_t  off = 0;
    int     i;

    ok(mlg_json_depth_check("[[[]]]", 6, 3, &off) == 0, "depth 3 within 3");
    ok(mlg_json_depth_check("[[[[]]]]", 8, 3, &off) == -1 && off == 3,
       "depth 4 over 3, offset of the 4th bracket (got %zu)", off);
    ok(mlg_json_depth_check("{\"a\":{\"b\":[1]}}", 15, 3, &off) == 0,
       "objects and arrays counted together");
    ok(mlg_json_depth_check("[\"[[[[[[\"]", 10, 1, &off) == 0,
       "brackets inside strings ignored");
    ok(mlg_json_depth_check("[\"\\\"[[[[\"]", 10, 1, &off) == 0,
       "escaped quote does not end the string");
    ok(mlg_json_depth_check("[\"\\\\\",[[]]]", 11, 2, &off) == -1,
       "escaped backslash ends the escape (got offset %zu)", off);
    ok(mlg_json_depth_check("[][][][][]", 10, 1, &off) == 0,
       "siblings do not add depth");
    ok(mlg_json_depth_check("]]]][[", 6, 2, &off) == 0,
       "stray closers do not underflow");
    ok(mlg_json_depth_check("\"[[[[", 5, 1, &off) == 0,
       "unterminated string is left to the parser");

    for (i = 0; i < 32; i++) {
        buf[i] = '[';
        buf[64 - 1 - i] = ']';
    }
    ok(mlg_json_depth_check(buf, 64, 32, &off) == 0, "32 levels allowed at 32");
    ok(parses("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"),
       "32 nested arrays parse at limit 32");
    ok(!parses("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"),
       "33 nested arrays rejected at limit 32");
    {
        char    err[256];
        json_t *j = mlg_json_parse("[[[1]]]", 7, 2, err, sizeof(err));
        ok(j == NULL, "too deep rejected");
        is_str(err, "nesting deeper than 2 levels at offset 2",
               "depth error message");
    }
}

static void
test_parse(void)
{
    char     err[256];
    json_t  *j;
    size_t   i;
    static const char *bad[] = {
        "NaN", "[NaN]", "Infinity", "[-Infinity]", "[1e400]", "[-1e400]",
        "[123456789012345678901234567890]", "{\"a\":1,\"a\":2}",
        "{\"a\":1} x", "[1] [2]", "\"\xff\"", "\"\xc3\x28\"",
        "\"\xed\xa0\x80\"", "[1,]", "{'a':1}", "", " ", "01", "[.5]",
        "\"\\ud800\"", NULL
    };

    for (i = 0; bad[i]; i++) {
        ok(!parses(bad[i]), "rejected: %s", bad[i]);
    }
    ok(parses("{\"a\":\"x\\u0000y\"}"), "NUL escape in a string accepted");
    ok(parses("1e-400"), "underflow to zero accepted");
    ok(parses("  {\"a\" : [1, 2.5, true, null, \"s\"]}  \n"),
       "ordinary document with surrounding whitespace");
    ok(parses("3"), "a bare scalar is a document (JSON_DECODE_ANY)");

    j = mlg_json_parse("{\"a\":1,\"a\":2}", 13, 32, err, sizeof(err));
    ok(j == NULL && strstr(err, "duplicate") != NULL,
       "duplicate key message: %s", err);
    j = mlg_json_parse("[1e400]", 7, 32, err, sizeof(err));
    ok(j == NULL && strstr(err, "overflow") != NULL,
       "overflow message: %s", err);
    j = mlg_json_parse("[1] x", 5, 32, err, sizeof(err));
    ok(j == NULL && strstr(err, "end of file expected") != NULL,
       "trailing data message: %s", err);

    /* the body is not echoed at length in messages */
    {
        char  big[300];
        memset(big, 'A', sizeof(big));
        big[0] = '[';
        big[1] = '"';
        j = mlg_json_parse(big, sizeof(big), 32, err, sizeof(err));
        ok(j == NULL && strstr(err, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
           == NULL, "long token not echoed: %s", err);
    }
    {
        const char *s = "[\"\x01\xff\"";
        j = mlg_json_parse(s, strlen(s), 32, err, sizeof(err));
        for (i = 0; err[i]; i++) {
            if ((unsigned char) err[i] < 0x20 || (unsigned char) err[i] > 0x7e) {
                break;
            }
        }
        ok(j == NULL && err[i] == '\0', "message is printable ASCII: %s", err);
    }
}

static json_t *
L(const char *s)
{
    return json_loads(s, JSON_DECODE_ANY, NULL);
}

static void
test_equal(void)
{
    static const char *eq[][2] = {
        { "1", "1.0" }, { "0", "-0.0" }, { "[1,{\"a\":2}]", "[1.0,{\"a\":2.0}]" },
        { "{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1}" }, { "\"x\"", "\"x\"" },
        { "null", "null" }, { "true", "true" }, { "[]", "[]" }, { "{}", "{}" },
    };
    static const char *ne[][2] = {
        { "1", "1.5" }, { "1", "true" }, { "0", "false" }, { "[1]", "[1,1]" },
        { "{\"a\":1}", "{\"a\":1,\"b\":1}" }, { "\"a\"", "\"b\"" },
        { "[]", "{}" }, { "null", "false" }, { "9007199254740993", "9007199254740992.0" },
        { "{\"a\":1}", "{\"b\":1}" },
    };
    size_t   i;
    json_t  *a, *b;

    for (i = 0; i < sizeof(eq) / sizeof(eq[0]); i++) {
        a = L(eq[i][0]);
        b = L(eq[i][1]);
        ok(mlg_json_equal(a, b) && mlg_json_hash(a) == mlg_json_hash(b),
           "equal with equal hashes: %s %s", eq[i][0], eq[i][1]);
        json_decref(a);
        json_decref(b);
    }
    for (i = 0; i < sizeof(ne) / sizeof(ne[0]); i++) {
        a = L(ne[i][0]);
        b = L(ne[i][1]);
        ok(!mlg_json_equal(a, b), "not equal: %s %s", ne[i][0], ne[i][1]);
        json_decref(a);
        json_decref(b);
    }
    /* values permuted among keys do not collide: key and value hash together */
    a = L("{\"a\": 1, \"b\": 2, \"c\": \"x\"}");
    b = L("{\"a\": 2, \"b\": \"x\", \"c\": 1}");
    ok(mlg_json_hash(a) != mlg_json_hash(b), "permuted values hash apart");
    json_decref(a);
    json_decref(b);
}

/*
 * y_ files that ml-guard rejects on purpose: the product rejects duplicate
 * keys (JSON_REJECT_DUPLICATES, see docs/schema.md), and jansson's parser
 * cannot hold "\u0000" in an object key.
 */
static const char *
policy_rejects(const char *name)
{
    if (strcmp(name, "y_object_duplicated_key.json") == 0
        || strcmp(name, "y_object_duplicated_key_and_value.json") == 0)
    {
        return "duplicate keys are malformed_json";
    }
    if (strcmp(name, "y_object_escaped_null_in_key.json") == 0) {
        return "jansson: NUL in object key not supported";
    }
    return NULL;
}

static void
test_suite(void)
{
    const char     *here = __FILE__;
    const char     *p = strstr(here, "t/unit/test_json.c");
    char            dir[PATH_MAX], path[PATH_MAX + 256], err[256];
    DIR            *d;
    struct dirent  *de;
    FILE           *f;
    char           *buf;
    long            len;
    json_t         *j;
    unsigned        y = 0, n = 0, iacc = 0, irej = 0, ybad = 0, nbad = 0,
                    yexc = 0;

    if (here[0] == '/' && p != NULL) {
        snprintf(dir, sizeof(dir), "%.*st/data/json-test-suite/test_parsing",
                 (int) (p - here), here);
    } else {
        snprintf(dir, sizeof(dir), "t/data/json-test-suite/test_parsing");
    }
    d = opendir(dir);
    if (!ok(d != NULL, "open %s", dir)) {
        return;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != 'y' && de->d_name[0] != 'n'
            && de->d_name[0] != 'i')
        {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        f = fopen(path, "rb");
        if (f == NULL) {
            continue;
        }
        fseek(f, 0, SEEK_END);
        len = ftell(f);
        fseek(f, 0, SEEK_SET);
        buf = malloc((size_t) len + 1);
        if (buf == NULL || fread(buf, 1, (size_t) len, f) != (size_t) len) {
            fclose(f);
            free(buf);
            continue;
        }
        fclose(f);
        j = mlg_json_parse(buf, (size_t) len, MLG_JSON_DEFAULT_MAX_DEPTH,
                           err, sizeof(err));
        switch (de->d_name[0]) {
        case 'y':
            y++;
            if (policy_rejects(de->d_name)) {
                ok(j == NULL, "JSONTestSuite %s rejected by design (%s)",
                   de->d_name, policy_rejects(de->d_name));
                yexc++;
                break;
            }
            if (!ok(j != NULL, "JSONTestSuite %s accepted", de->d_name)) {
                diag("error: %s", err);
                ybad++;
            }
            break;
        case 'n':
            n++;
            if (!ok(j == NULL, "JSONTestSuite %s rejected", de->d_name)) {
                nbad++;
            }
            break;
        default:
            if (j) {
                iacc++;
            } else {
                irej++;
            }
            diag("JSONTestSuite %s: %s", de->d_name,
                 j ? "accepted" : err);
        }
        json_decref(j);
        free(buf);
    }
    closedir(d);
    diag("SUMMARY JSONTestSuite: y_ %u (%u wrong, %u rejected by design), "
         "n_ %u (%u wrong), i_ %u accepted, %u rejected",
         y, ybad, yexc, n, nbad, iacc, irej);
    ok(y > 0 && n > 0, "suite files found");
    is_int(ybad + nbad, 0, "JSONTestSuite verdicts all as required");
}

/* the arena gives the same results, also when documents outgrow it */
static void
test_arena(void)
{
    char     big[20000], err[256];
    json_t  *j, *k;
    int      n = 0, i, same = 1;

    ok(mlg_json_arena_init(4096) == 0, "arena installed");
    n += snprintf(big + n, sizeof(big) - (size_t) n, "{\"a\": [");
    for (i = 0; i < 1000; i++) {
        n += snprintf(big + n, sizeof(big) - (size_t) n, "%s{\"k%d\": %d.5}",
                      i ? "," : "", i, i);
    }
    snprintf(big + n, sizeof(big) - (size_t) n, "]}");
    for (i = 0; i < 3; i++) {
        mlg_json_arena_begin();
        j = mlg_json_parse(big, strlen(big), 32, err, sizeof(err));
        k = mlg_json_parse("{\"x\": [1, 2.5, \"s\"]}", 20, 32, err, sizeof(err));
        same = same && j != NULL && k != NULL
               && json_array_size(json_object_get(j, "a")) == 1000
               && json_real_value(json_object_get(json_array_get(
                      json_object_get(j, "a"), 999), "k999")) == 999.5
               && json_integer_value(json_array_get(json_object_get(k, "x"), 0)) == 1;
        json_decref(j);
        json_decref(k);
        mlg_json_arena_end();
    }
    ok(same, "documents parsed in the arena (spilling over) are intact");
    /* outside a cycle jansson allocates from the heap as before */
    j = json_pack("{s:[i,i]}", "z", 1, 2);
    mlg_json_arena_begin();
    mlg_json_arena_end();
    ok(json_integer_value(json_array_get(json_object_get(j, "z"), 1)) == 2,
       "values made outside a cycle survive it");
    json_decref(j);
}

int
main(void)
{
    test_media_types();
    test_depth();
    test_parse();
    test_equal();
    test_suite();
    test_arena();
    return done_testing();
}
