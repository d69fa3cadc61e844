/*
 * JSON Schema (draft 2020-12 subset) compiler and validator; see
 * mlg_schema.h and docs/schema.md.
 */
#define PCRE2_CODE_UNIT_WIDTH 8

#include "mlg_schema.h"
#include "mlg_json.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MLG_T_NULL     0x01
#define MLG_T_BOOLEAN  0x02
#define MLG_T_OBJECT   0x04
#define MLG_T_ARRAY    0x08
#define MLG_T_NUMBER   0x10
#define MLG_T_STRING   0x20
#define MLG_T_INTEGER  0x40

/* which optional scalar keywords a node has */
#define MLG_HAS_TYPE        0x0001
#define MLG_HAS_CONST       0x0002
#define MLG_HAS_MIN_PROPS   0x0004
#define MLG_HAS_MAX_PROPS   0x0008
#define MLG_HAS_MIN_ITEMS   0x0010
#define MLG_HAS_MAX_ITEMS   0x0020
#define MLG_HAS_MINIMUM     0x0040
#define MLG_HAS_MAXIMUM     0x0080
#define MLG_HAS_XMINIMUM    0x0100
#define MLG_HAS_XMAXIMUM    0x0200
#define MLG_HAS_MULTIPLE    0x0400
#define MLG_HAS_MIN_LEN     0x0800
#define MLG_HAS_MAX_LEN     0x1000
#define MLG_HAS_UNIQUE      0x2000
#define MLG_HAS_ENUM        0x4000

/* nested subschema evaluations allowed per validation (guards $ref loops) */
#define MLG_MAX_EVAL_DEPTH  512
/* PCRE2 backtracking budget per start position, against catastrophic patterns */
#define MLG_PCRE_MATCH_LIMIT  MLG_SCHEMA_MATCH_LIMIT
#define MLG_PCRE_DEPTH_LIMIT  10000
/* the first attempt's match limit; each retry multiplies it by 8 */
#define MLG_PCRE_FIRST_LIMIT  4

#define MLG_DRAFT_2020_12  "https://json-schema.org/draft/2020-12/schema"

typedef struct mlg_node_s  mlg_node_t;

typedef struct {
    double      d;
    long long   i;
    int         is_int;     /* integral and fits in long long: use i */
} mlg_num_t;

typedef struct {
    char        *name;
    size_t       len;
} mlg_str_t;

typedef struct {
    char        *name;
    size_t       len;
    mlg_node_t  *node;
} mlg_prop_t;

typedef struct {
    pcre2_code  *re;
    mlg_node_t  *node;
} mlg_pattern_prop_t;

typedef struct {
    char        *name;
    size_t       len;
    mlg_str_t   *required;
    size_t       nrequired;
} mlg_dependency_t;

typedef struct {
    mlg_node_t **nodes;
    size_t       n;
} mlg_node_list_t;

struct mlg_node_s {
    int                  boolean;   /* -1: object schema; 0/1: false/true */
    unsigned             has;
    unsigned             types;

    json_t              *enum_values;   /* deep copy of the enum array */
    json_t              *const_value;

    mlg_prop_t          *props;     /* sorted by (len, bytes) */
    size_t               nprops;
    mlg_pattern_prop_t  *pprops;
    size_t               npprops;
    mlg_node_t          *additional;
    mlg_node_t          *property_names;
    mlg_str_t           *required;
    size_t               nrequired;
    mlg_dependency_t    *deps;
    size_t               ndeps;
    size_t               min_props, max_props;

    mlg_node_t          *items;
    mlg_node_list_t      prefix;
    size_t               min_items, max_items;

    mlg_num_t            minimum, maximum, xminimum, xmaximum, multiple_of;

    size_t               min_len, max_len;
    pcre2_code          *pattern;
    char                *pattern_src;

    mlg_node_list_t      all_of, any_of, one_of;
    mlg_node_t          *not_;
    mlg_node_t          *if_, *then_, *else_;
    mlg_node_t          *ref;

    int                  color;     /* compile-time cycle check */
};

struct mlg_schema_s {
    mlg_node_t           *root;
    mlg_node_t          **nodes;    /* every node, for freeing */
    size_t                nnodes;
    pcre2_match_data     *match_data;
    pcre2_match_context  *match_ctx;
    int                   has_patterns;
};

/* ---------------------------------------------------------------------- */
/* compilation                                                            */

typedef struct {
    const json_t   *json;
    mlg_node_t     *node;
} mlg_memo_t;

typedef struct {
    mlg_schema_t   *schema;
    const json_t   *doc;
    mlg_memo_t     *memo;
    size_t          nmemo, memo_cap;
    size_t          nodes_cap;
    char           *ptr;        /* JSON pointer of the current location */
    size_t          ptr_len, ptr_cap;
    char           *err;
    size_t          errlen;
    int             failed;
} mlg_compile_t;

static mlg_node_t *mlg_compile_node(mlg_compile_t *cc, const json_t *json);
static void mlg_utf8_sanitize(char *s);

static int
mlg_ptr_reserve(mlg_compile_t *cc, size_t extra)
{
    size_t  cap;
    char   *p;

    if (cc->ptr_len + extra + 1 <= cc->ptr_cap) {
        return 0;
    }
    cap = cc->ptr_cap ? cc->ptr_cap : 64;
    while (cap < cc->ptr_len + extra + 1) {
        cap *= 2;
    }
    p = realloc(cc->ptr, cap);
    if (p == NULL) {
        return -1;
    }
    cc->ptr = p;
    cc->ptr_cap = cap;
    return 0;
}

/* appends "/" + escaped segment; returns the previous length for popping */
static size_t
mlg_ptr_push(mlg_compile_t *cc, const char *seg, size_t len)
{
    size_t  saved = cc->ptr_len, i;

    if (mlg_ptr_reserve(cc, 1 + 2 * len) != 0) {
        return saved;   /* the error message will just be less precise */
    }
    cc->ptr[cc->ptr_len++] = '/';
    for (i = 0; i < len; i++) {
        if (seg[i] == '~') {
            cc->ptr[cc->ptr_len++] = '~';
            cc->ptr[cc->ptr_len++] = '0';
        } else if (seg[i] == '/') {
            cc->ptr[cc->ptr_len++] = '~';
            cc->ptr[cc->ptr_len++] = '1';
        } else {
            cc->ptr[cc->ptr_len++] = seg[i];
        }
    }
    cc->ptr[cc->ptr_len] = '\0';
    return saved;
}

static size_t
mlg_ptr_push_index(mlg_compile_t *cc, size_t index)
{
    char  buf[32];
    int   n = snprintf(buf, sizeof(buf), "%zu", index);

    return mlg_ptr_push(cc, buf, (size_t) n);
}

static void
mlg_ptr_pop(mlg_compile_t *cc, size_t saved)
{
    cc->ptr_len = saved;
    if (cc->ptr) {
        cc->ptr[saved] = '\0';
    }
}

/* Records the first error as "POINTER: message"; the keyword is pushed. */
static mlg_node_t *
mlg_compile_error(mlg_compile_t *cc, const char *fmt, ...)
{
    va_list  ap;
    int      n;

    if (cc->failed) {
        return NULL;
    }
    cc->failed = 1;
    if (cc->err == NULL || cc->errlen == 0) {
        return NULL;
    }
    n = snprintf(cc->err, cc->errlen, "%s: ",
                 cc->ptr_len ? cc->ptr : "(root)");
    if (n < 0 || (size_t) n >= cc->errlen) {
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(cc->err + n, cc->errlen - (size_t) n, fmt, ap);
    va_end(ap);
    mlg_utf8_sanitize(cc->err);
    return NULL;
}

static mlg_node_t *
mlg_node_new(mlg_compile_t *cc, const json_t *json)
{
    mlg_node_t   *node, **nodes;
    mlg_memo_t   *memo;
    size_t        cap;

    node = calloc(1, sizeof(mlg_node_t));
    if (node == NULL) {
        return mlg_compile_error(cc, "out of memory");
    }
    if (cc->schema->nnodes == cc->nodes_cap) {
        cap = cc->nodes_cap ? cc->nodes_cap * 2 : 16;
        nodes = realloc(cc->schema->nodes, cap * sizeof(mlg_node_t *));
        if (nodes == NULL) {
            free(node);
            return mlg_compile_error(cc, "out of memory");
        }
        cc->schema->nodes = nodes;
        cc->nodes_cap = cap;
    }
    cc->schema->nodes[cc->schema->nnodes++] = node;

    if (cc->nmemo == cc->memo_cap) {
        cap = cc->memo_cap ? cc->memo_cap * 2 : 16;
        memo = realloc(cc->memo, cap * sizeof(mlg_memo_t));
        if (memo == NULL) {
            return mlg_compile_error(cc, "out of memory");
        }
        cc->memo = memo;
        cc->memo_cap = cap;
    }
    cc->memo[cc->nmemo].json = json;
    cc->memo[cc->nmemo].node = node;
    cc->nmemo++;

    node->boolean = -1;
    return node;
}

static mlg_node_t *
mlg_memo_find(mlg_compile_t *cc, const json_t *json)
{
    size_t  i;

    for (i = 0; i < cc->nmemo; i++) {
        if (cc->memo[i].json == json) {
            return cc->memo[i].node;
        }
    }
    return NULL;
}

/* compiles a subschema found under the current pointer + seg */
static mlg_node_t *
mlg_compile_sub(mlg_compile_t *cc, const json_t *json, const char *seg,
    size_t seglen)
{
    size_t       saved = mlg_ptr_push(cc, seg, seglen);
    mlg_node_t  *node = mlg_compile_node(cc, json);

    mlg_ptr_pop(cc, saved);
    return node;
}

static mlg_node_t *
mlg_compile_sub_index(mlg_compile_t *cc, const json_t *json, size_t index)
{
    size_t       saved = mlg_ptr_push_index(cc, index);
    mlg_node_t  *node = mlg_compile_node(cc, json);

    mlg_ptr_pop(cc, saved);
    return node;
}

static int
mlg_is_schema(const json_t *v)
{
    return json_is_object(v) || json_is_boolean(v);
}

static int
mlg_get_count(const json_t *v, size_t *out)
{
    double  d;

    if (json_is_integer(v)) {
        if (json_integer_value(v) < 0) {
            return -1;
        }
        *out = (size_t) json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        d = json_real_value(v);
        if (d < 0 || d != floor(d)) {
            return -1;
        }
        *out = d >= (double) SIZE_MAX ? SIZE_MAX : (size_t) d;
        return 0;
    }
    return -1;
}

static void
mlg_get_num(const json_t *v, mlg_num_t *out)
{
    double  d;

    if (json_is_integer(v)) {
        out->i = json_integer_value(v);
        out->d = (double) out->i;
        out->is_int = 1;
        return;
    }
    d = json_real_value(v);
    out->d = d;
    out->is_int = 0;
    if (d == floor(d) && d >= -9223372036854775808.0
        && d < 9223372036854775808.0)
    {
        out->i = (long long) d;
        out->is_int = 1;
    }
}

static int
mlg_type_bit(const char *name)
{
    static const struct {
        const char  *name;
        int          bit;
    } types[] = {
        { "null", MLG_T_NULL }, { "boolean", MLG_T_BOOLEAN },
        { "object", MLG_T_OBJECT }, { "array", MLG_T_ARRAY },
        { "number", MLG_T_NUMBER }, { "string", MLG_T_STRING },
        { "integer", MLG_T_INTEGER },
    };
    size_t  i;

    for (i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(name, types[i].name) == 0) {
            return types[i].bit;
        }
    }
    return 0;
}

/* an array of unique strings, as "required" and "dependentRequired" take */
static int
mlg_compile_string_set(mlg_compile_t *cc, const json_t *v, mlg_str_t **out,
    size_t *nout, const char *kw)
{
    size_t      i, j, n;
    mlg_str_t  *set;
    json_t     *e;

    if (!json_is_array(v)) {
        mlg_compile_error(cc, "%s must be an array of strings", kw);
        return -1;
    }
    n = json_array_size(v);
    set = calloc(n ? n : 1, sizeof(mlg_str_t));
    if (set == NULL) {
        mlg_compile_error(cc, "out of memory");
        return -1;
    }
    *out = set;
    *nout = 0;
    for (i = 0; i < n; i++) {
        e = json_array_get(v, i);
        if (!json_is_string(e)) {
            mlg_compile_error(cc, "%s must be an array of strings", kw);
            return -1;
        }
        for (j = 0; j < i; j++) {
            if (mlg_json_equal(e, json_array_get(v, j))) {
                mlg_compile_error(cc, "%s must not repeat a name", kw);
                return -1;
            }
        }
        set[i].len = json_string_length(e);
        set[i].name = malloc(set[i].len + 1);
        if (set[i].name == NULL) {
            mlg_compile_error(cc, "out of memory");
            return -1;
        }
        memcpy(set[i].name, json_string_value(e), set[i].len + 1);
        *nout = i + 1;
    }
    return 0;
}

static int
mlg_compile_list(mlg_compile_t *cc, const json_t *v, mlg_node_list_t *list,
    const char *kw)
{
    size_t  i, n;

    if (!json_is_array(v) || json_array_size(v) == 0) {
        mlg_compile_error(cc, "%s must be a non-empty array of schemas", kw);
        return -1;
    }
    n = json_array_size(v);
    list->nodes = calloc(n, sizeof(mlg_node_t *));
    if (list->nodes == NULL) {
        mlg_compile_error(cc, "out of memory");
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (!mlg_is_schema(json_array_get(v, i))) {
            size_t saved = mlg_ptr_push_index(cc, i);
            mlg_compile_error(cc, "must be a schema (object or boolean)");
            mlg_ptr_pop(cc, saved);
            return -1;
        }
        list->nodes[i] = mlg_compile_sub_index(cc, json_array_get(v, i), i);
        if (list->nodes[i] == NULL) {
            return -1;
        }
        list->n = i + 1;
    }
    return 0;
}

/*
 * ECMA-262 (which JSON Schema regexes follow) spells Unicode properties with
 * long names, \p{Letter} or \p{gc=Letter}; PCRE2 10.42 knows only the short
 * general-category names and script names.
 */
static const char *mlg_gc_names[][2] = {
    { "Letter", "L" }, { "Cased_Letter", "L&" }, { "LC", "L&" },
    { "Uppercase_Letter", "Lu" }, { "Lowercase_Letter", "Ll" },
    { "Titlecase_Letter", "Lt" }, { "Modifier_Letter", "Lm" },
    { "Other_Letter", "Lo" }, { "Mark", "M" }, { "Combining_Mark", "M" },
    { "Nonspacing_Mark", "Mn" }, { "Spacing_Mark", "Mc" },
    { "Enclosing_Mark", "Me" }, { "Number", "N" }, { "Decimal_Number", "Nd" },
    { "digit", "Nd" }, { "Letter_Number", "Nl" }, { "Other_Number", "No" },
    { "Punctuation", "P" }, { "punct", "P" },
    { "Connector_Punctuation", "Pc" }, { "Dash_Punctuation", "Pd" },
    { "Open_Punctuation", "Ps" }, { "Close_Punctuation", "Pe" },
    { "Initial_Punctuation", "Pi" }, { "Final_Punctuation", "Pf" },
    { "Other_Punctuation", "Po" }, { "Symbol", "S" }, { "Math_Symbol", "Sm" },
    { "Currency_Symbol", "Sc" }, { "Modifier_Symbol", "Sk" },
    { "Other_Symbol", "So" }, { "Separator", "Z" },
    { "Space_Separator", "Zs" }, { "Line_Separator", "Zl" },
    { "Paragraph_Separator", "Zp" }, { "Other", "C" }, { "Control", "Cc" },
    { "cntrl", "Cc" }, { "Format", "Cf" }, { "Surrogate", "Cs" },
    { "Private_Use", "Co" }, { "Unassigned", "Cn" },
};

/* returns a malloc'd translated pattern (or NULL on allocation failure) */
static char *
mlg_regex_translate(const char *src, size_t len, size_t *outlen)
{
    char        *out, *close;
    const char  *name;
    size_t       i, n = 0, k, nlen;

    /* a short name is never longer than the long one it replaces */
    out = malloc(len + 1);
    if (out == NULL) {
        return NULL;
    }
    for (i = 0; i < len; i++) {
        if (src[i] != '\\' || i + 1 >= len) {
            out[n++] = src[i];
            continue;
        }
        if ((src[i + 1] == 'p' || src[i + 1] == 'P') && i + 2 < len
            && src[i + 2] == '{'
            && (close = memchr(src + i + 3, '}', len - i - 3)) != NULL)
        {
            name = src + i + 3;
            nlen = (size_t) (close - name);
            if (nlen > 3 && memcmp(name, "gc=", 3) == 0) {
                name += 3;
                nlen -= 3;
            } else if (nlen > 17 && memcmp(name, "General_Category=", 17) == 0) {
                name += 17;
                nlen -= 17;
            } else if (nlen > 3 && memcmp(name, "sc=", 3) == 0) {
                name += 3;
                nlen -= 3;
            } else if (nlen > 7 && memcmp(name, "Script=", 7) == 0) {
                name += 7;
                nlen -= 7;
            }
            for (k = 0; k < sizeof(mlg_gc_names) / sizeof(mlg_gc_names[0]);
                 k++)
            {
                if (strlen(mlg_gc_names[k][0]) == nlen
                    && memcmp(mlg_gc_names[k][0], name, nlen) == 0)
                {
                    name = mlg_gc_names[k][1];
                    nlen = strlen(name);
                    break;
                }
            }
            out[n++] = '\\';
            out[n++] = src[i + 1];
            out[n++] = '{';
            memcpy(out + n, name, nlen);
            n += nlen;
            out[n++] = '}';
            i = (size_t) (close - src);
            continue;
        }
        out[n++] = src[i];
        out[n++] = src[++i];
    }
    out[n] = '\0';
    *outlen = n;
    return out;
}

static pcre2_code *
mlg_compile_regex(mlg_compile_t *cc, const char *src, size_t len)
{
    pcre2_code  *re;
    int          rc;
    PCRE2_SIZE   off;
    PCRE2_UCHAR  msg[128];
    char                   *pat;
    size_t                  patlen;
    pcre2_compile_context  *ccx;

    pat = mlg_regex_translate(src, len, &patlen);
    if (pat == NULL) {
        mlg_compile_error(cc, "out of memory");
        return NULL;
    }
    ccx = pcre2_compile_context_create(NULL);
    if (ccx == NULL) {
        free(pat);
        mlg_compile_error(cc, "out of memory");
        return NULL;
    }
    /* ECMA-262 escapes: \uhhhh and \u{h...}; $ only at the very end */
    pcre2_set_compile_extra_options(ccx, PCRE2_EXTRA_ALT_BSUX);
    re = pcre2_compile((PCRE2_SPTR) pat, patlen,
                       PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX,
                       &rc, &off, ccx);
    pcre2_compile_context_free(ccx);
    free(pat);
    if (re == NULL) {
        pcre2_get_error_message(rc, msg, sizeof(msg));
        mlg_compile_error(cc, "invalid regular expression: %s",
                          (char *) msg);
        return NULL;
    }
    /* JIT is an optimisation only; the interpreter is used without it */
    (void) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    cc->schema->has_patterns = 1;
    return re;
}

static int
mlg_prop_cmp(const void *a, const void *b)
{
    const mlg_prop_t  *pa = a, *pb = b;

    if (pa->len != pb->len) {
        return pa->len < pb->len ? -1 : 1;
    }
    return memcmp(pa->name, pb->name, pa->len);
}

static int
mlg_hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Resolves "#", "#/json/pointer" (percent-encoded, ~0 ~1) in the document */
static const json_t *
mlg_resolve_ref(mlg_compile_t *cc, const char *ref, char **decoded_out)
{
    const json_t  *cur = cc->doc;
    char          *dec, *seg, *p, *end;
    size_t         i, n, len = strlen(ref), k;
    int            hi, lo;
    char           c;

    *decoded_out = NULL;
    if (len == 0 || ref[0] != '#') {
        mlg_compile_error(cc, "only local references (\"#\" or "
                          "\"#/$defs/...\") are supported");
        return NULL;
    }
    dec = malloc(len + 1);
    if (dec == NULL) {
        mlg_compile_error(cc, "out of memory");
        return NULL;
    }
    /* percent-decode the fragment */
    for (i = 1, n = 0; i < len; i++) {
        c = ref[i];
        if (c == '%') {
            hi = lo = -1;
            if (i + 2 < len) {
                hi = mlg_hex_value(ref[i + 1]);
                lo = mlg_hex_value(ref[i + 2]);
            }
            if (hi < 0 || lo < 0) {
                free(dec);
                mlg_compile_error(cc, "invalid percent-encoding in \"%.64s\"",
                                  ref);
                return NULL;
            }
            dec[n++] = (char) (hi * 16 + lo);
            i += 2;
        } else {
            dec[n++] = c;
        }
    }
    dec[n] = '\0';
    *decoded_out = dec;

    if (n == 0) {
        return cur;
    }
    if (dec[0] != '/') {
        mlg_compile_error(cc, "anchors are not supported; use \"#\" or "
                          "\"#/$defs/...\"");
        return NULL;
    }

    /* walk the pointer; segments are unescaped in a scratch copy */
    seg = malloc(n + 1);
    if (seg == NULL) {
        mlg_compile_error(cc, "out of memory");
        return NULL;
    }
    p = dec + 1;
    for (;;) {
        end = memchr(p, '/', (size_t) (dec + n - p));
        if (end == NULL) {
            end = dec + n;
        }
        for (k = 0; p < end; p++) {
            if (*p == '~') {
                if (p + 1 < end && (p[1] == '0' || p[1] == '1')) {
                    seg[k++] = p[1] == '0' ? '~' : '/';
                    p++;
                } else {
                    free(seg);
                    mlg_compile_error(cc, "invalid JSON pointer escape in "
                                      "\"%.64s\"", ref);
                    return NULL;
                }
            } else {
                seg[k++] = *p;
            }
        }
        seg[k] = '\0';
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, seg, k);
        } else if (json_is_array(cur)) {
            char    *endp;
            unsigned long idx;

            errno = 0;
            idx = strtoul(seg, &endp, 10);
            if (k == 0 || *endp != '\0' || errno != 0
                || (k > 1 && seg[0] == '0') || seg[0] < '0' || seg[0] > '9')
            {
                cur = NULL;
            } else {
                cur = json_array_get(cur, idx);
            }
        } else {
            cur = NULL;
        }
        if (cur == NULL) {
            free(seg);
            mlg_compile_error(cc, "cannot resolve reference \"%.64s\"", ref);
            return NULL;
        }
        if (end == dec + n) {
            break;
        }
        p = end + 1;
    }
    free(seg);
    if (!mlg_is_schema(cur)) {
        mlg_compile_error(cc, "reference \"%.64s\" is not a schema", ref);
        return NULL;
    }
    return cur;
}

static mlg_node_t *
mlg_compile_ref(mlg_compile_t *cc, const json_t *v)
{
    const json_t  *target;
    mlg_node_t    *node;
    char          *decoded, *saved_ptr;
    size_t         saved_len, saved_cap;

    if (!json_is_string(v)) {
        return mlg_compile_error(cc, "$ref must be a string");
    }
    target = mlg_resolve_ref(cc, json_string_value(v), &decoded);
    if (target == NULL) {
        free(decoded);
        return NULL;
    }
    node = mlg_memo_find(cc, target);
    if (node != NULL) {
        free(decoded);
        return node;
    }
    /* compile the target under its own pointer, for error messages */
    saved_ptr = cc->ptr;
    saved_len = cc->ptr_len;
    saved_cap = cc->ptr_cap;
    cc->ptr = NULL;
    cc->ptr_len = 0;
    cc->ptr_cap = 0;
    if (mlg_ptr_reserve(cc, strlen(decoded)) == 0) {
        memcpy(cc->ptr, decoded, strlen(decoded) + 1);
        cc->ptr_len = strlen(decoded);
    }
    node = mlg_compile_node(cc, target);
    free(cc->ptr);
    cc->ptr = saved_ptr;
    cc->ptr_len = saved_len;
    cc->ptr_cap = saved_cap;
    free(decoded);
    return node;
}

/* checks an object-valued keyword and allocates one entry per member */
static void *
mlg_member_array(mlg_compile_t *cc, const json_t *v, size_t size,
    const char *what)
{
    void    *a;
    size_t   n;

    if (!json_is_object(v)) {
        mlg_compile_error(cc, "must be an object of %s", what);
        return NULL;
    }
    n = json_object_size(v);
    a = calloc(n ? n : 1, size);
    if (a == NULL) {
        mlg_compile_error(cc, "out of memory");
    }
    return a;
}

/*
 * Compiles every member of an object of schemas (properties,
 * patternProperties, $defs); returns the nodes in member order, or NULL.
 */
static mlg_node_t **
mlg_compile_members(mlg_compile_t *cc, const json_t *v)
{
    size_t        i = 0, klen, saved;
    void         *it;
    json_t       *sub;
    const char   *key;
    mlg_node_t  **nodes;

    if (!json_is_object(v)) {
        mlg_compile_error(cc, "must be an object of schemas");
        return NULL;
    }
    nodes = calloc(json_object_size(v) + 1, sizeof(mlg_node_t *));
    if (nodes == NULL) {
        mlg_compile_error(cc, "out of memory");
        return NULL;
    }
    for (it = json_object_iter((json_t *) v); it;
         it = json_object_iter_next((json_t *) v, it))
    {
        key = json_object_iter_key(it);
        klen = json_object_iter_key_len(it);
        sub = json_object_iter_value(it);
        if (!mlg_is_schema(sub)) {
            saved = mlg_ptr_push(cc, key, klen);
            mlg_compile_error(cc, "must be a schema (object or boolean)");
            mlg_ptr_pop(cc, saved);
            free(nodes);
            return NULL;
        }
        nodes[i] = mlg_compile_sub(cc, sub, key, klen);
        if (nodes[i++] == NULL) {
            free(nodes);
            return NULL;
        }
    }
    return nodes;
}

typedef int (*mlg_keyword_pt)(mlg_compile_t *cc, mlg_node_t *node,
    const json_t *v, const json_t *obj);

#define MLG_KW(name)                                                          \
    static int mlg_kw_##name(mlg_compile_t *cc, mlg_node_t *node,             \
        const json_t *v, const json_t *obj)

#define MLG_UNUSED  (void) node; (void) v; (void) obj

#define MLG_KW_SCHEMA(name, field)                                            \
    MLG_KW(name)                                                              \
    {                                                                         \
        MLG_UNUSED;                                                           \
        if (!mlg_is_schema(v)) {                                              \
            mlg_compile_error(cc, "must be a schema (object or boolean)");    \
            return -1;                                                        \
        }                                                                     \
        node->field = mlg_compile_node(cc, v);                                \
        return node->field ? 0 : -1;                                          \
    }

MLG_KW(annotation_string)
{
    MLG_UNUSED;
    if (!json_is_string(v)) {
        mlg_compile_error(cc, "must be a string");
        return -1;
    }
    return 0;
}

MLG_KW(annotation_any)
{
    MLG_UNUSED;
    (void) cc;
    return 0;
}

MLG_KW(examples)
{
    MLG_UNUSED;
    if (!json_is_array(v)) {
        mlg_compile_error(cc, "examples must be an array");
        return -1;
    }
    return 0;
}

MLG_KW(schema)
{
    const char  *s;

    MLG_UNUSED;
    if (!json_is_string(v)) {
        mlg_compile_error(cc, "$schema must be a string");
        return -1;
    }
    s = json_string_value(v);
    if (strcmp(s, MLG_DRAFT_2020_12) != 0
        && strcmp(s, MLG_DRAFT_2020_12 "#") != 0)
    {
        mlg_compile_error(cc, "only draft 2020-12 (\"" MLG_DRAFT_2020_12
                          "\") is supported");
        return -1;
    }
    return 0;
}

MLG_KW(id)
{
    MLG_UNUSED;
    if (!json_is_string(v)) {
        mlg_compile_error(cc, "$id must be a string");
        return -1;
    }
    if (obj != cc->doc) {
        mlg_compile_error(cc, "$id is only supported at the root "
                          "(embedded schema resources are not supported)");
        return -1;
    }
    return 0;
}

MLG_KW(defs)
{
    mlg_node_t  **nodes;

    MLG_UNUSED;
    nodes = mlg_compile_members(cc, v);
    free(nodes);
    return nodes ? 0 : -1;
}

MLG_KW(ref)
{
    MLG_UNUSED;
    node->ref = mlg_compile_ref(cc, v);
    return node->ref ? 0 : -1;
}

MLG_KW(type)
{
    size_t  i, n;
    int     bit;

    MLG_UNUSED;
    node->has |= MLG_HAS_TYPE;
    if (json_is_string(v)) {
        bit = mlg_type_bit(json_string_value(v));
        if (bit == 0) {
            mlg_compile_error(cc, "unknown type \"%.32s\"",
                              json_string_value(v));
            return -1;
        }
        node->types = (unsigned) bit;
        return 0;
    }
    if (!json_is_array(v) || json_array_size(v) == 0) {
        mlg_compile_error(cc, "type must be a type name or a non-empty array "
                          "of type names");
        return -1;
    }
    n = json_array_size(v);
    for (i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);

        bit = json_is_string(e) ? mlg_type_bit(json_string_value(e)) : 0;
        if (bit == 0) {
            mlg_compile_error(cc, "type must be a type name or a non-empty "
                              "array of type names");
            return -1;
        }
        if (node->types & (unsigned) bit) {
            mlg_compile_error(cc, "type must not repeat a type name");
            return -1;
        }
        node->types |= (unsigned) bit;
    }
    return 0;
}

MLG_KW(enum)
{
    MLG_UNUSED;
    if (!json_is_array(v)) {
        mlg_compile_error(cc, "enum must be an array");
        return -1;
    }
    node->enum_values = json_deep_copy(v);
    if (node->enum_values == NULL) {
        mlg_compile_error(cc, "out of memory");
        return -1;
    }
    node->has |= MLG_HAS_ENUM;
    return 0;
}

MLG_KW(const)
{
    MLG_UNUSED;
    node->const_value = json_deep_copy(v);
    if (node->const_value == NULL) {
        mlg_compile_error(cc, "out of memory");
        return -1;
    }
    node->has |= MLG_HAS_CONST;
    return 0;
}

MLG_KW(properties)
{
    size_t        i = 0, klen;
    void         *it;
    mlg_node_t  **nodes;

    MLG_UNUSED;
    nodes = mlg_compile_members(cc, v);
    if (nodes == NULL) {
        return -1;
    }
    node->props = calloc(json_object_size(v) + 1, sizeof(mlg_prop_t));
    for (it = json_object_iter((json_t *) v); it && node->props;
         it = json_object_iter_next((json_t *) v, it))
    {
        klen = json_object_iter_key_len(it);
        node->props[i].name = malloc(klen + 1);
        if (node->props[i].name == NULL) {
            break;
        }
        memcpy(node->props[i].name, json_object_iter_key(it), klen + 1);
        node->props[i].len = klen;
        node->props[i].node = nodes[i];
        node->nprops = ++i;
    }
    free(nodes);
    if (node->props == NULL || it != NULL) {
        mlg_compile_error(cc, "out of memory");
        return -1;
    }
    qsort(node->props, node->nprops, sizeof(mlg_prop_t), mlg_prop_cmp);
    return 0;
}

MLG_KW(pattern_properties)
{
    size_t        i = 0, klen, saved;
    void         *it;
    const char   *key;
    mlg_node_t  **nodes;

    MLG_UNUSED;
    nodes = mlg_compile_members(cc, v);
    if (nodes == NULL) {
        return -1;
    }
    node->pprops = calloc(json_object_size(v) + 1, sizeof(mlg_pattern_prop_t));
    if (node->pprops == NULL) {
        free(nodes);
        mlg_compile_error(cc, "out of memory");
        return -1;
    }
    for (it = json_object_iter((json_t *) v); it;
         it = json_object_iter_next((json_t *) v, it))
    {
        key = json_object_iter_key(it);
        klen = json_object_iter_key_len(it);
        saved = mlg_ptr_push(cc, key, klen);
        node->pprops[i].re = mlg_compile_regex(cc, key, klen);
        mlg_ptr_pop(cc, saved);
        if (node->pprops[i].re == NULL) {
            free(nodes);
            return -1;
        }
        node->pprops[i].node = nodes[i];
        node->npprops = ++i;
    }
    free(nodes);
    return 0;
}

MLG_KW_SCHEMA(additional_properties, additional)

MLG_KW_SCHEMA(property_names, property_names)

MLG_KW(required)
{
    MLG_UNUSED;
    return mlg_compile_string_set(cc, v, &node->required, &node->nrequired,
                                  "required");
}

MLG_KW(dependent_required)
{
    const char  *key;
    size_t       i, klen, saved;
    void        *it;
    int          rc;

    MLG_UNUSED;
    node->deps = mlg_member_array(cc, v, sizeof(mlg_dependency_t),
                                  "string arrays");
    if (node->deps == NULL) {
        return -1;
    }
    i = 0;
    for (it = json_object_iter((json_t *) v); it;
         it = json_object_iter_next((json_t *) v, it))
    {
        key = json_object_iter_key(it);
        klen = json_object_iter_key_len(it);
        node->deps[i].name = malloc(klen + 1);
        if (node->deps[i].name == NULL) {
            mlg_compile_error(cc, "out of memory");
            return -1;
        }
        memcpy(node->deps[i].name, key, klen + 1);
        node->deps[i].len = klen;
        node->ndeps = ++i;
        saved = mlg_ptr_push(cc, key, klen);
        rc = mlg_compile_string_set(cc, json_object_iter_value(it),
                                    &node->deps[i - 1].required,
                                    &node->deps[i - 1].nrequired,
                                    "dependentRequired");
        mlg_ptr_pop(cc, saved);
        if (rc != 0) {
            return -1;
        }
    }
    return 0;
}

#define MLG_KW_COUNT(name, field, flag)                                       \
    MLG_KW(name)                                                              \
    {                                                                         \
        MLG_UNUSED;                                                           \
        if (mlg_get_count(v, &node->field) != 0) {                            \
            mlg_compile_error(cc, "must be a non-negative integer");          \
            return -1;                                                        \
        }                                                                     \
        node->has |= flag;                                                    \
        return 0;                                                             \
    }

MLG_KW_COUNT(min_properties, min_props, MLG_HAS_MIN_PROPS)
MLG_KW_COUNT(max_properties, max_props, MLG_HAS_MAX_PROPS)
MLG_KW_COUNT(min_items, min_items, MLG_HAS_MIN_ITEMS)
MLG_KW_COUNT(max_items, max_items, MLG_HAS_MAX_ITEMS)
MLG_KW_COUNT(min_length, min_len, MLG_HAS_MIN_LEN)
MLG_KW_COUNT(max_length, max_len, MLG_HAS_MAX_LEN)

#define MLG_KW_NUMBER(name, field, flag)                                      \
    MLG_KW(name)                                                              \
    {                                                                         \
        MLG_UNUSED;                                                           \
        if (!json_is_number(v)) {                                             \
            mlg_compile_error(cc, "must be a number");                        \
            return -1;                                                        \
        }                                                                     \
        mlg_get_num(v, &node->field);                                         \
        node->has |= flag;                                                    \
        return 0;                                                             \
    }

MLG_KW_NUMBER(minimum, minimum, MLG_HAS_MINIMUM)
MLG_KW_NUMBER(maximum, maximum, MLG_HAS_MAXIMUM)
MLG_KW_NUMBER(exclusive_minimum, xminimum, MLG_HAS_XMINIMUM)
MLG_KW_NUMBER(exclusive_maximum, xmaximum, MLG_HAS_XMAXIMUM)

MLG_KW(multiple_of)
{
    MLG_UNUSED;
    if (!json_is_number(v) || json_number_value(v) <= 0) {
        mlg_compile_error(cc, "must be a number greater than 0");
        return -1;
    }
    mlg_get_num(v, &node->multiple_of);
    node->has |= MLG_HAS_MULTIPLE;
    return 0;
}

MLG_KW(unique_items)
{
    MLG_UNUSED;
    if (!json_is_boolean(v)) {
        mlg_compile_error(cc, "must be a boolean");
        return -1;
    }
    if (json_is_true(v)) {
        node->has |= MLG_HAS_UNIQUE;
    }
    return 0;
}

MLG_KW(items)
{
    MLG_UNUSED;
    if (!mlg_is_schema(v)) {
        mlg_compile_error(cc, "must be a schema (object or boolean); "
                          "use prefixItems for tuples");
        return -1;
    }
    node->items = mlg_compile_node(cc, v);
    return node->items ? 0 : -1;
}

MLG_KW(prefix_items)
{
    MLG_UNUSED;
    return mlg_compile_list(cc, v, &node->prefix, "prefixItems");
}

MLG_KW(pattern)
{
    size_t  len;

    MLG_UNUSED;
    if (!json_is_string(v)) {
        mlg_compile_error(cc, "must be a string");
        return -1;
    }
    len = json_string_length(v);
    node->pattern = mlg_compile_regex(cc, json_string_value(v), len);
    if (node->pattern == NULL) {
        return -1;
    }
    node->pattern_src = malloc(len + 1);
    if (node->pattern_src == NULL) {
        mlg_compile_error(cc, "out of memory");
        return -1;
    }
    memcpy(node->pattern_src, json_string_value(v), len + 1);
    return 0;
}

MLG_KW(all_of)
{
    MLG_UNUSED;
    return mlg_compile_list(cc, v, &node->all_of, "allOf");
}

MLG_KW(any_of)
{
    MLG_UNUSED;
    return mlg_compile_list(cc, v, &node->any_of, "anyOf");
}

MLG_KW(one_of)
{
    MLG_UNUSED;
    return mlg_compile_list(cc, v, &node->one_of, "oneOf");
}

MLG_KW_SCHEMA(not, not_)
MLG_KW_SCHEMA(if, if_)
MLG_KW_SCHEMA(then, then_)
MLG_KW_SCHEMA(else, else_)

static const struct {
    const char      *name;
    mlg_keyword_pt   compile;
} mlg_keywords[] = {
    /* annotations: checked for type, otherwise ignored */
    { "$schema", mlg_kw_schema },
    { "$id", mlg_kw_id },
    { "$comment", mlg_kw_annotation_string },
    { "title", mlg_kw_annotation_string },
    { "description", mlg_kw_annotation_string },
    { "format", mlg_kw_annotation_string },
    { "default", mlg_kw_annotation_any },
    { "examples", mlg_kw_examples },
    { "$defs", mlg_kw_defs },
    { "$ref", mlg_kw_ref },

    { "type", mlg_kw_type },
    { "enum", mlg_kw_enum },
    { "const", mlg_kw_const },

    { "properties", mlg_kw_properties },
    { "patternProperties", mlg_kw_pattern_properties },
    { "additionalProperties", mlg_kw_additional_properties },
    { "propertyNames", mlg_kw_property_names },
    { "required", mlg_kw_required },
    { "dependentRequired", mlg_kw_dependent_required },
    { "minProperties", mlg_kw_min_properties },
    { "maxProperties", mlg_kw_max_properties },

    { "items", mlg_kw_items },
    { "prefixItems", mlg_kw_prefix_items },
    { "minItems", mlg_kw_min_items },
    { "maxItems", mlg_kw_max_items },
    { "uniqueItems", mlg_kw_unique_items },

    { "minimum", mlg_kw_minimum },
    { "maximum", mlg_kw_maximum },
    { "exclusiveMinimum", mlg_kw_exclusive_minimum },
    { "exclusiveMaximum", mlg_kw_exclusive_maximum },
    { "multipleOf", mlg_kw_multiple_of },

    { "minLength", mlg_kw_min_length },
    { "maxLength", mlg_kw_max_length },
    { "pattern", mlg_kw_pattern },

    { "allOf", mlg_kw_all_of },
    { "anyOf", mlg_kw_any_of },
    { "oneOf", mlg_kw_one_of },
    { "not", mlg_kw_not },
    { "if", mlg_kw_if },
    { "then", mlg_kw_then },
    { "else", mlg_kw_else },
};

static mlg_node_t *
mlg_compile_node(mlg_compile_t *cc, const json_t *json)
{
    mlg_node_t  *node;
    const char  *key;
    size_t       i, klen, saved;
    void        *it;
    int          rc;

    if (cc->failed) {
        return NULL;
    }
    node = mlg_memo_find(cc, json);
    if (node != NULL) {
        return node;
    }
    if (!mlg_is_schema(json)) {
        return mlg_compile_error(cc, "a schema must be an object or a "
                                 "boolean");
    }
    /* registered before its children, so references back to it resolve */
    node = mlg_node_new(cc, json);
    if (node == NULL) {
        return NULL;
    }
    if (json_is_boolean(json)) {
        node->boolean = json_is_true(json);
        return node;
    }

    for (it = json_object_iter((json_t *) json); it;
         it = json_object_iter_next((json_t *) json, it))
    {
        key = json_object_iter_key(it);
        klen = json_object_iter_key_len(it);
        saved = mlg_ptr_push(cc, key, klen);
        for (i = 0; i < sizeof(mlg_keywords) / sizeof(mlg_keywords[0]); i++) {
            if (strlen(mlg_keywords[i].name) == klen
                && memcmp(mlg_keywords[i].name, key, klen) == 0)
            {
                break;
            }
        }
        if (i == sizeof(mlg_keywords) / sizeof(mlg_keywords[0])) {
            mlg_compile_error(cc, "unsupported keyword \"%.64s\"", key);
            return NULL;
        }
        rc = mlg_keywords[i].compile(cc, node, json_object_iter_value(it),
                                     json);
        mlg_ptr_pop(cc, saved);
        if (rc != 0 || cc->failed) {
            return NULL;
        }
    }
    return node;
}

/*
 * A cycle through in-place applicators ($ref, allOf, anyOf, oneOf, not,
 * if/then/else) would recurse forever on any instance: reject it.
 */
static int
mlg_check_cycles(mlg_node_t *node)
{
    mlg_node_t  *edges[5];
    size_t       i;
    int          rc = 0;

    if (node == NULL || node->color == 2) {
        return 0;
    }
    if (node->color == 1) {
        return -1;
    }
    node->color = 1;
    edges[0] = node->ref;
    edges[1] = node->not_;
    edges[2] = node->if_;
    edges[3] = node->then_;
    edges[4] = node->else_;
    for (i = 0; i < 5 && rc == 0; i++) {
        rc = mlg_check_cycles(edges[i]);
    }
    for (i = 0; i < node->all_of.n && rc == 0; i++) {
        rc = mlg_check_cycles(node->all_of.nodes[i]);
    }
    for (i = 0; i < node->any_of.n && rc == 0; i++) {
        rc = mlg_check_cycles(node->any_of.nodes[i]);
    }
    for (i = 0; i < node->one_of.n && rc == 0; i++) {
        rc = mlg_check_cycles(node->one_of.nodes[i]);
    }
    node->color = 2;
    return rc;
}

static void
mlg_node_free(mlg_node_t *node)
{
    size_t  i, j;

    json_decref(node->enum_values);
    json_decref(node->const_value);
    for (i = 0; i < node->nprops; i++) {
        free(node->props[i].name);
    }
    free(node->props);
    for (i = 0; i < node->npprops; i++) {
        pcre2_code_free(node->pprops[i].re);
    }
    free(node->pprops);
    for (i = 0; i < node->nrequired; i++) {
        free(node->required[i].name);
    }
    free(node->required);
    for (i = 0; i < node->ndeps; i++) {
        free(node->deps[i].name);
        for (j = 0; j < node->deps[i].nrequired; j++) {
            free(node->deps[i].required[j].name);
        }
        free(node->deps[i].required);
    }
    free(node->deps);
    free(node->prefix.nodes);
    pcre2_code_free(node->pattern);
    free(node->pattern_src);
    free(node->all_of.nodes);
    free(node->any_of.nodes);
    free(node->one_of.nodes);
    free(node);
}

void
mlg_schema_free(mlg_schema_t *schema)
{
    size_t  i;

    if (schema == NULL) {
        return;
    }
    for (i = 0; i < schema->nnodes; i++) {
        mlg_node_free(schema->nodes[i]);
    }
    free(schema->nodes);
    pcre2_match_data_free(schema->match_data);
    pcre2_match_context_free(schema->match_ctx);
    free(schema);
}

mlg_schema_t *
mlg_schema_compile(const json_t *json, char *err, size_t errlen)
{
    mlg_compile_t   cc;
    mlg_schema_t   *schema;

    if (err && errlen) {
        err[0] = '\0';
    }
    schema = calloc(1, sizeof(mlg_schema_t));
    if (schema == NULL) {
        if (err && errlen) {
            snprintf(err, errlen, "(root): out of memory");
        }
        return NULL;
    }
    memset(&cc, 0, sizeof(cc));
    cc.schema = schema;
    cc.doc = json;
    cc.err = err;
    cc.errlen = errlen;

    schema->root = mlg_compile_node(&cc, json);
    if (schema->root != NULL && !cc.failed
        && mlg_check_cycles(schema->root) != 0)
    {
        cc.ptr_len = 0;
        mlg_compile_error(&cc, "$ref cycle without an intervening "
                          "property or item: validation would never end");
    }
    if (schema->root != NULL && !cc.failed && schema->has_patterns) {
        schema->match_data = pcre2_match_data_create(1, NULL);
        schema->match_ctx = pcre2_match_context_create(NULL);
        if (schema->match_data == NULL || schema->match_ctx == NULL) {
            mlg_compile_error(&cc, "out of memory");
        } else {
            pcre2_set_match_limit(schema->match_ctx, MLG_PCRE_MATCH_LIMIT);
            pcre2_set_depth_limit(schema->match_ctx, MLG_PCRE_DEPTH_LIMIT);
        }
    }
    free(cc.ptr);
    free(cc.memo);
    if (schema->root == NULL || cc.failed) {
        if (err && errlen && err[0] == '\0') {
            snprintf(err, errlen, "(root): invalid schema");
        }
        mlg_schema_free(schema);
        return NULL;
    }
    return schema;
}

mlg_schema_t *
mlg_schema_load(const char *path, char *err, size_t errlen)
{
    json_t        *json;
    json_error_t   jerr;
    mlg_schema_t  *schema;
    FILE          *f;
    char           msg[512];

    f = fopen(path, "rb");
    if (f == NULL) {
        if (err && errlen) {
            snprintf(err, errlen, "%s: cannot open: %s", path,
                     strerror(errno));
        }
        return NULL;
    }
    json = json_loadf(f, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES
                     | JSON_ALLOW_NUL, &jerr);
    fclose(f);
    if (json == NULL) {
        if (err && errlen) {
            snprintf(err, errlen, "%s: line %d column %d: %s", path,
                     jerr.line, jerr.column, jerr.text);
        }
        return NULL;
    }
    schema = mlg_schema_compile(json, msg, sizeof(msg));
    json_decref(json);
    if (schema == NULL && err && errlen) {
        snprintf(err, errlen, "%s: %s", path, msg);
    }
    return schema;
}

/* ---------------------------------------------------------------------- */
/* validation                                                             */

typedef struct {
    const char  *key;       /* NULL: an array index */
    size_t       len;
    size_t       index;
} mlg_segment_t;

typedef struct {
    const mlg_schema_t   *schema;
    mlg_schema_errors_t  *out;
    unsigned              probe;    /* > 0: only the verdict matters */
    int                   stop;     /* enough known: unwind */
    unsigned              depth;
    int                   over;     /* the work budget ran out */
    unsigned long         nodes_left, regex_left;
    /*
     * The instance location as a stack of segments, rendered into a JSON
     * pointer only when an error is reported.  A pointer never holds more
     * than MLG_SCHEMA_PATH_MAX / 2 segments ("/0" is the shortest), so
     * deeper levels are only counted.
     */
    mlg_segment_t         segs[MLG_SCHEMA_PATH_MAX / 2];
    size_t                nsegs;
    size_t                segs_over;
} mlg_validate_t;

static size_t mlg_utf8_trim(const char *s, size_t len);

/* takes n units from a budget; on exhaustion the whole validation stops */
static int
mlg_spend(mlg_validate_t *vc, unsigned long *left, unsigned long n)
{
    if (vc->over || n > *left) {
        *left = 0;
        vc->over = 1;
        vc->stop = 1;
        return -1;
    }
    *left -= n;
    return 0;
}

static void
mlg_path_push(mlg_validate_t *vc, const char *key, size_t len, size_t index)
{
    mlg_segment_t  *seg;

    if (vc->nsegs == sizeof(vc->segs) / sizeof(vc->segs[0])) {
        vc->segs_over++;
        return;
    }
    seg = &vc->segs[vc->nsegs++];
    seg->key = key;
    seg->len = len;
    seg->index = index;
}

static void
mlg_path_pop(mlg_validate_t *vc)
{
    if (vc->segs_over) {
        vc->segs_over--;
    } else {
        vc->nsegs--;
    }
}

/* the JSON pointer of the current location, RFC 6901 escaped, cut to fit */
static void
mlg_path_render(const mlg_validate_t *vc, mlg_schema_error_t *e)
{
    size_t       i, k, n = 0, room = MLG_SCHEMA_PATH_MAX - 4, slen;
    int          cut = vc->segs_over > 0;
    char         num[32];
    const char  *s, *esc;

    for (i = 0; i < vc->nsegs && !cut; i++) {
        if (vc->segs[i].key) {
            s = vc->segs[i].key;
            slen = vc->segs[i].len;
        } else {
            slen = (size_t) snprintf(num, sizeof(num), "%zu",
                                     vc->segs[i].index);
            s = num;
        }
        if (n + 1 > room) {
            cut = 1;
            break;
        }
        e->path[n++] = '/';
        for (k = 0; k < slen; k++) {
            esc = s[k] == '~' ? "~0" : s[k] == '/' ? "~1" : NULL;
            if (n + (esc ? 2 : 1) > room) {
                cut = 1;
                break;
            }
            if (esc) {
                e->path[n++] = esc[0];
                e->path[n++] = esc[1];
            } else {
                e->path[n++] = s[k];
            }
        }
    }
    if (cut) {
        n = mlg_utf8_trim(e->path, n);
        memcpy(e->path + n, "...", 3);
        n += 3;
    }
    e->path[n] = '\0';
    e->path_len = n;
}

/* length of s[0..len) without a trailing incomplete UTF-8 sequence */
static size_t
mlg_utf8_trim(const char *s, size_t len)
{
    size_t          i = len, cont = 0, need;
    unsigned char   c;

    while (i > 0 && cont < 3 && ((unsigned char) s[i - 1] & 0xC0) == 0x80) {
        i--;
        cont++;
    }
    if (i == 0) {
        return len;
    }
    c = (unsigned char) s[i - 1];
    if (c < 0x80) {
        return len;
    }
    need = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : 1;
    return cont >= need ? len : i - 1;
}

/*
 * Replaces bytes that are not part of a well-formed UTF-8 sequence with
 * '?': "%.64s" of a schema string may cut a character in two.
 */
static void
mlg_utf8_sanitize(char *s)
{
    unsigned char  *p = (unsigned char *) s;
    size_t          need, k;
    unsigned        cp, min;

    while (*p) {
        if (*p < 0x80) {
            p++;
            continue;
        }
        if (*p >= 0xC2 && *p <= 0xDF) {
            need = 1; cp = *p & 0x1F; min = 0x80;
        } else if (*p >= 0xE0 && *p <= 0xEF) {
            need = 2; cp = *p & 0x0F; min = 0x800;
        } else if (*p >= 0xF0 && *p <= 0xF4) {
            need = 3; cp = *p & 0x07; min = 0x10000;
        } else {
            *p++ = '?';
            continue;
        }
        for (k = 1; k <= need; k++) {
            if ((p[k] & 0xC0) != 0x80) {
                break;
            }
            cp = (cp << 6) | (p[k] & 0x3F);
        }
        if (k <= need || cp < min || cp > 0x10FFFF
            || (cp >= 0xD800 && cp <= 0xDFFF))
        {
            *p++ = '?';
            continue;
        }
        p += need + 1;
    }
}

/*
 * mlg_fail(vc, fmt, ...) records one error at the current path and gives 0
 * (the verdict).  While only a verdict is wanted (inside anyOf, not, if...,
 * or without an error list) the message and its arguments are not even
 * evaluated: those failures are frequent and must stay cheap.
 */
#define mlg_fail(vc, ...)                                                     \
    (((vc)->probe || (vc)->out == NULL) ? mlg_fail_quiet(vc)                  \
                                        : mlg_fail_report((vc), __VA_ARGS__))

static int
mlg_fail_quiet(mlg_validate_t *vc)
{
    vc->stop = 1;
    return 0;
}

static int
mlg_fail_report(mlg_validate_t *vc, const char *fmt, ...)
{
    mlg_schema_error_t  *e;
    va_list              ap;

    if (vc->out->count == MLG_SCHEMA_MAX_ERRORS) {
        vc->out->truncated = 1;
        vc->stop = 1;
        return 0;
    }
    e = &vc->out->errors[vc->out->count++];
    mlg_path_render(vc, e);

    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    mlg_utf8_sanitize(e->message);
    return 0;
}

/* shortest "%g" form that reads back as the same double */
static const char *
mlg_num_str(const mlg_num_t *n, char *buf, size_t len)
{
    int  prec;

    if (n->is_int) {
        snprintf(buf, len, "%lld", n->i);
        return buf;
    }
    for (prec = 6; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, n->d);
        if (strtod(buf, NULL) == n->d) {
            break;
        }
    }
    return buf;
}

/* an instance number, read from jansson once per value */
typedef struct {
    double      d;
    long long   i;
    int         is_int;     /* a JSON integer: i is exact */
} mlg_inst_num_t;

/* compares an instance number with a schema number: -1, 0, 1 */
static int
mlg_num_cmp(const mlg_inst_num_t *x, const mlg_num_t *lim)
{
    if (x->is_int && lim->is_int) {
        return x->i < lim->i ? -1 : x->i > lim->i ? 1 : 0;
    }
    return x->d < lim->d ? -1 : x->d > lim->d ? 1 : 0;
}

static int
mlg_is_multiple(const json_t *inst, const mlg_num_t *m)
{
    double  x, q, r;

    if (m->is_int && m->i > 0) {
        /* an integral divisor: exact arithmetic, no tolerance */
        if (json_is_integer(inst)) {
            return json_integer_value(inst) % m->i == 0;
        }
        x = json_real_value(inst);
        return x == floor(x) && fmod(x, m->d) == 0;
    }
    q = json_number_value(inst) / m->d;
    if (!isfinite(q)) {
        return 0;
    }
    r = nearbyint(q);
    /* tolerate the rounding error of the division: 0.0075 / 0.0001 */
    return fabs(q - r) <= fmax(fabs(q), 1.0) * 4 * DBL_EPSILON;
}

static int
mlg_instance_types(const json_t *inst)
{
    double  d;

    switch (json_typeof(inst)) {
    case JSON_OBJECT:
        return MLG_T_OBJECT;
    case JSON_ARRAY:
        return MLG_T_ARRAY;
    case JSON_STRING:
        return MLG_T_STRING;
    case JSON_INTEGER:
        return MLG_T_NUMBER | MLG_T_INTEGER;
    case JSON_REAL:
        d = json_real_value(inst);
        return MLG_T_NUMBER | (d == floor(d) && isfinite(d) ? MLG_T_INTEGER
                                                             : 0);
    case JSON_TRUE:
    case JSON_FALSE:
        return MLG_T_BOOLEAN;
    default:
        return MLG_T_NULL;
    }
}

static const char *
mlg_types_str(unsigned types, char *buf, size_t len)
{
    static const char  *names[] = {
        "null", "boolean", "object", "array", "number", "string", "integer"
    };
    size_t  i, n = 0;
    int     first = 1, count = 0;

    for (i = 0; i < 7; i++) {
        count += (types >> i) & 1;
    }
    buf[0] = '\0';
    if (count > 1) {
        n += (size_t) snprintf(buf + n, len - n, "one of ");
    }
    for (i = 0; i < 7 && n < len; i++) {
        if (types & (1u << i)) {
            n += (size_t) snprintf(buf + n, len - n, "%s%s",
                                   first ? "" : ", ", names[i]);
            first = 0;
        }
    }
    return buf;
}

static size_t
mlg_utf8_length(const char *s, size_t len)
{
    size_t  i, n = 0;

    for (i = 0; i < len; i++) {
        n += ((unsigned char) s[i] & 0xC0) != 0x80;
    }
    return n;
}

/*
 * 1 match, 0 no match, -1 the work budget ran out (vc->over is set): a
 * pattern that cannot be decided within its limits ends the validation.
 *
 * PCRE2's match limit applies per start position, so an attempt with limit
 * L costs L times the start positions it may try (1 for an anchored
 * pattern, len + 1 otherwise).  Attempts start small and grow eightfold up
 * to MLG_PCRE_MATCH_LIMIT, so what is charged stays within a small factor
 * of what the match needs.
 */
static int
mlg_regex_search(mlg_validate_t *vc, pcre2_code *re, const char *s,
    size_t len)
{
    int            rc;
    uint32_t       opts = 0;
    unsigned long  starts, limit, cost;

    if (mlg_spend(vc, &vc->regex_left, (unsigned long) len + 1) != 0) {
        return -1;
    }
    (void) pcre2_pattern_info(re, PCRE2_INFO_ALLOPTIONS, &opts);
    starts = (opts & PCRE2_ANCHORED) ? 1 : (unsigned long) len + 1;

    for (limit = MLG_PCRE_FIRST_LIMIT; /* void */; limit *= 8) {
        if (limit > MLG_PCRE_MATCH_LIMIT) {
            limit = MLG_PCRE_MATCH_LIMIT;
        }
        if (limit > vc->regex_left / starts) {
            /* what is left, if that still allows a useful attempt */
            limit = vc->regex_left / starts;
            if (limit < MLG_PCRE_FIRST_LIMIT) {
                mlg_spend(vc, &vc->regex_left, ULONG_MAX);
                return -1;
            }
        }
        cost = limit * starts;
        (void) mlg_spend(vc, &vc->regex_left, cost);
        pcre2_set_match_limit(vc->schema->match_ctx, (uint32_t) limit);

        rc = pcre2_match(re, (PCRE2_SPTR) s, len, 0, 0,
                         vc->schema->match_data, vc->schema->match_ctx);
        if (rc >= 0) {
            return 1;
        }
        if (rc == PCRE2_ERROR_NOMATCH) {
            return 0;
        }
        if (rc != PCRE2_ERROR_MATCHLIMIT || limit == MLG_PCRE_MATCH_LIMIT
            || vc->regex_left < MLG_PCRE_FIRST_LIMIT * starts)
        {
            /* depth limit, JIT stack, the per-match limit: undecidable */
            mlg_spend(vc, &vc->regex_left, ULONG_MAX);
            return -1;
        }
    }
}

static int mlg_validate_node(mlg_validate_t *vc, const mlg_node_t *node,
    const json_t *inst);

/* evaluates a subschema for its verdict only */
static int
mlg_probe(mlg_validate_t *vc, const mlg_node_t *node, const json_t *inst)
{
    int  valid;

    vc->probe++;
    valid = mlg_validate_node(vc, node, inst);
    vc->probe--;
    /* an exhausted budget is no verdict: it stops everything */
    vc->stop = vc->over;
    return valid && !vc->over;
}

static const mlg_prop_t *
mlg_find_prop(const mlg_node_t *node, const char *key, size_t len)
{
    mlg_prop_t  k;

    if (node->nprops == 0) {
        return NULL;
    }
    k.name = (char *) key;
    k.len = len;
    return bsearch(&k, node->props, node->nprops, sizeof(mlg_prop_t),
                   mlg_prop_cmp);
}

static int
mlg_validate_object(mlg_validate_t *vc, const mlg_node_t *node,
    const json_t *inst)
{
    size_t               i, j, n, klen;
    const char          *key;
    const mlg_prop_t    *prop;
    json_t              *value, *name;
    void                *it;
    int                  valid = 1, matched, m;

    n = json_object_size(inst);
    if ((node->has & MLG_HAS_MIN_PROPS) && n < node->min_props) {
        valid = mlg_fail(vc, "minProperties: must have at least %zu "
                         "properties", node->min_props);
        if (vc->stop) {
            return 0;
        }
    }
    if ((node->has & MLG_HAS_MAX_PROPS) && n > node->max_props) {
        valid = mlg_fail(vc, "maxProperties: must have at most %zu "
                         "properties", node->max_props);
        if (vc->stop) {
            return 0;
        }
    }
    for (i = 0; i < node->nrequired; i++) {
        if (json_object_getn(inst, node->required[i].name,
                             node->required[i].len) == NULL)
        {
            valid = mlg_fail(vc, "required: property \"%.64s\" is missing",
                             node->required[i].name);
            if (vc->stop) {
                return 0;
            }
        }
    }
    for (i = 0; i < node->ndeps; i++) {
        if (json_object_getn(inst, node->deps[i].name, node->deps[i].len)
            == NULL)
        {
            continue;
        }
        for (j = 0; j < node->deps[i].nrequired; j++) {
            if (json_object_getn(inst, node->deps[i].required[j].name,
                                 node->deps[i].required[j].len) == NULL)
            {
                valid = mlg_fail(vc, "dependentRequired: property \"%.48s\" "
                                 "is required when \"%.48s\" is present",
                                 node->deps[i].required[j].name,
                                 node->deps[i].name);
                if (vc->stop) {
                    return 0;
                }
            }
        }
    }

    if (node->nprops == 0 && node->npprops == 0 && node->additional == NULL
        && node->property_names == NULL)
    {
        return valid;
    }

    if (mlg_spend(vc, &vc->nodes_left, (unsigned long) n) != 0) {
        return 0;
    }
    for (it = json_object_iter((json_t *) inst); it;
         it = json_object_iter_next((json_t *) inst, it))
    {
        key = json_object_iter_key(it);
        klen = json_object_iter_key_len(it);
        value = json_object_iter_value(it);
        mlg_path_push(vc, key, klen, 0);
        matched = 0;

        if (node->property_names) {
            name = json_stringn_nocheck(key, klen);
            if (name == NULL) {
                valid = mlg_fail(vc, "propertyNames: out of memory");
            } else {
                if (!mlg_probe(vc, node->property_names, name)) {
                    valid = mlg_fail(vc, "propertyNames: property name is "
                                     "not allowed");
                }
                json_decref(name);
            }
            if (vc->stop) {
                goto stop;
            }
        }

        prop = mlg_find_prop(node, key, klen);
        if (prop) {
            matched = 1;
            if (!mlg_validate_node(vc, prop->node, value)) {
                valid = 0;
                if (vc->stop) {
                    goto stop;
                }
            }
        }
        for (i = 0; i < node->npprops; i++) {
            m = mlg_regex_search(vc, node->pprops[i].re, key, klen);
            if (m < 0) {
                goto stop;
            }
            if (m == 0) {
                continue;
            }
            matched = 1;
            if (!mlg_validate_node(vc, node->pprops[i].node, value)) {
                valid = 0;
                if (vc->stop) {
                    goto stop;
                }
            }
        }
        if (!matched && node->additional) {
            if (node->additional->boolean == 0) {
                valid = mlg_fail(vc, "additionalProperties: property is not "
                                 "allowed");
            } else if (!mlg_validate_node(vc, node->additional, value)) {
                valid = 0;
            }
            if (vc->stop) {
                goto stop;
            }
        }
        mlg_path_pop(vc);
    }
    return valid;

stop:
    mlg_path_pop(vc);
    return 0;
}

/*
 * uniqueItems: every item is written once in a canonical byte form in which
 * two values are equal (JSON Schema equality: 1 == 1.0, member order does
 * not matter) exactly when their bytes are; a merge sort then brings equal
 * items next to each other.  O(n log n) comparisons whatever the input.
 */
typedef struct {
    unsigned char  *p;
    size_t          len, cap;
    int             failed;
} mlg_canon_t;

typedef struct {
    const char    *key;
    size_t         len;
    const json_t  *value;
} mlg_member_t;

static void
mlg_canon_put(mlg_canon_t *c, const void *data, size_t len)
{
    size_t          cap;
    unsigned char  *p;

    if (c->failed) {
        return;
    }
    if (len > c->cap - c->len) {
        cap = c->cap ? c->cap : 256;
        while (len > cap - c->len) {
            if (cap > SIZE_MAX / 2) {
                c->failed = 1;
                return;
            }
            cap *= 2;
        }
        p = realloc(c->p, cap);
        if (p == NULL) {
            c->failed = 1;
            return;
        }
        c->p = p;
        c->cap = cap;
    }
    memcpy(c->p + c->len, data, len);
    c->len += len;
}

/* a tag byte followed by a variable-length unsigned number */
static void
mlg_canon_tag(mlg_canon_t *c, unsigned char tag, uint64_t v)
{
    unsigned char  buf[11];
    size_t         n = 0;

    buf[n++] = tag;
    do {
        buf[n++] = (unsigned char) ((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    mlg_canon_put(c, buf, n);
}

static int
mlg_member_cmp(const void *a, const void *b)
{
    const mlg_member_t  *ma = a, *mb = b;
    int                  rc;

    rc = memcmp(ma->key, mb->key, ma->len < mb->len ? ma->len : mb->len);
    if (rc != 0) {
        return rc;
    }
    return ma->len < mb->len ? -1 : ma->len > mb->len;
}

static void
mlg_canon_value(mlg_canon_t *c, const json_t *v)
{
    size_t         i, n;
    double         d;
    uint64_t       bits;
    long long      ll;
    void          *it;
    mlg_member_t  *m;

    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL:
        /* integral values as integers (zigzag), so 1 and 1.0 agree */
        if (json_is_integer(v)) {
            ll = json_integer_value(v);
        } else {
            d = json_real_value(v);
            if (d != floor(d) || d < -9223372036854775808.0
                || d >= 9223372036854775808.0)
            {
                memcpy(&bits, &d, sizeof(bits));
                mlg_canon_tag(c, 'd', bits);
                return;
            }
            ll = (long long) d;
        }
        mlg_canon_tag(c, 'i', ((uint64_t) ll << 1) ^ (uint64_t) (ll >> 63));
        return;
    case JSON_STRING:
        mlg_canon_tag(c, 's', json_string_length(v));
        mlg_canon_put(c, json_string_value(v), json_string_length(v));
        return;
    case JSON_ARRAY:
        n = json_array_size(v);
        mlg_canon_tag(c, 'a', n);
        for (i = 0; i < n && !c->failed; i++) {
            mlg_canon_value(c, json_array_get(v, i));
        }
        return;
    case JSON_OBJECT:
        n = json_object_size(v);
        mlg_canon_tag(c, 'o', n);
        if (n == 0) {
            return;
        }
        m = malloc(n * sizeof(mlg_member_t));
        if (m == NULL) {
            c->failed = 1;
            return;
        }
        i = 0;
        for (it = json_object_iter((json_t *) v); it && i < n;
             it = json_object_iter_next((json_t *) v, it))
        {
            m[i].key = json_object_iter_key(it);
            m[i].len = json_object_iter_key_len(it);
            m[i].value = json_object_iter_value(it);
            i++;
        }
        /* keys are distinct: any sort gives the one canonical order */
        qsort(m, i, sizeof(mlg_member_t), mlg_member_cmp);
        for (n = i, i = 0; i < n && !c->failed; i++) {
            mlg_canon_tag(c, 'k', m[i].len);
            mlg_canon_put(c, m[i].key, m[i].len);
            mlg_canon_value(c, m[i].value);
        }
        free(m);
        return;
    case JSON_TRUE:
        mlg_canon_tag(c, 't', 0);
        return;
    case JSON_FALSE:
        mlg_canon_tag(c, 'f', 0);
        return;
    default:
        mlg_canon_tag(c, 'z', 0);
        return;
    }
}

typedef struct {
    const unsigned char  *base;
    const size_t         *off;      /* item i is base[off[i] .. off[i + 1]) */
} mlg_canon_items_t;

static int
mlg_canon_cmp(const mlg_canon_items_t *ci, size_t a, size_t b)
{
    size_t  la = ci->off[a + 1] - ci->off[a], lb = ci->off[b + 1] - ci->off[b];
    int     rc;

    rc = memcmp(ci->base + ci->off[a], ci->base + ci->off[b],
                la < lb ? la : lb);
    if (rc != 0) {
        return rc;
    }
    return la < lb ? -1 : la > lb;
}

/*
 * Bottom-up merge sort of item indexes between idx and tmp; stable, so equal
 * items keep their order.  Returns whichever of the two holds the result.
 */
static size_t *
mlg_canon_sort(const mlg_canon_items_t *ci, size_t *idx, size_t *tmp,
    size_t n)
{
    size_t   width, lo, mid, hi, i, j, k, *t;

    for (width = 1; width < n; width *= 2) {
        for (lo = 0; lo < n; lo += 2 * width) {
            mid = lo + width < n ? lo + width : n;
            hi = lo + 2 * width < n ? lo + 2 * width : n;
            i = lo;
            j = mid;
            k = lo;
            while (i < mid && j < hi) {
                tmp[k++] = mlg_canon_cmp(ci, idx[j], idx[i]) < 0 ? idx[j++]
                                                                 : idx[i++];
            }
            while (i < mid) {
                tmp[k++] = idx[i++];
            }
            while (j < hi) {
                tmp[k++] = idx[j++];
            }
        }
        t = idx;
        idx = tmp;
        tmp = t;
    }
    return idx;
}

/*
 * 1 when all items differ, 0 with the first equal pair (the lowest first
 * index, then the lowest second), -1 out of memory, -2 over budget.
 */
static int
mlg_items_unique(mlg_validate_t *vc, const json_t *inst, size_t *first,
    size_t *second)
{
    int                 rc = 1;
    size_t              i, n, log2n, *off, *idx, *sorted;
    mlg_canon_t         c;
    mlg_canon_items_t   ci;

    *first = *second = 0;
    n = json_array_size(inst);
    if (n < 2) {
        return 1;
    }
    for (log2n = 1; log2n < 64 && ((size_t) 1 << log2n) < n; log2n++) {
        /* void */
    }
    /* the comparisons of the sort, before any work */
    if (mlg_spend(vc, &vc->nodes_left, (unsigned long) n * log2n) != 0) {
        return -2;
    }
    memset(&c, 0, sizeof(c));
    off = malloc((n + 1) * sizeof(size_t));
    idx = malloc(2 * n * sizeof(size_t));
    if (off == NULL || idx == NULL) {
        free(off);
        free(idx);
        return -1;
    }
    for (i = 0; i < n && !c.failed; i++) {
        off[i] = c.len;
        idx[i] = i;
        mlg_canon_value(&c, json_array_get(inst, i));
        /* the bytes written, item by item: a huge array stops early */
        if (mlg_spend(vc, &vc->nodes_left,
                      (unsigned long) (c.len - off[i])) != 0)
        {
            rc = -2;
            goto done;
        }
    }
    if (c.failed) {
        rc = -1;
        goto done;
    }
    off[n] = c.len;
    ci.base = c.p;
    ci.off = off;
    sorted = mlg_canon_sort(&ci, idx, idx + n, n);

    for (i = 1; i < n; i++) {
        if (mlg_canon_cmp(&ci, sorted[i - 1], sorted[i]) != 0) {
            continue;
        }
        /* sorted[i - 1] < sorted[i]: the sort is stable */
        if (rc == 1 || sorted[i - 1] < *first
            || (sorted[i - 1] == *first && sorted[i] < *second))
        {
            *first = sorted[i - 1];
            *second = sorted[i];
            rc = 0;
        }
    }

done:
    free(c.p);
    free(off);
    free(idx);
    return rc;
}
static int
mlg_validate_array(mlg_validate_t *vc, const mlg_node_t *node,
    const json_t *inst)
{
    size_t           i, n, a, b;
    int              valid = 1, u;

    n = json_array_size(inst);
    if ((node->has & MLG_HAS_MIN_ITEMS) && n < node->min_items) {
        valid = mlg_fail(vc, "minItems: must have at least %zu items",
                         node->min_items);
        if (vc->stop) {
            return 0;
        }
    }
    if ((node->has & MLG_HAS_MAX_ITEMS) && n > node->max_items) {
        valid = mlg_fail(vc, "maxItems: must have at most %zu items",
                         node->max_items);
        if (vc->stop) {
            return 0;
        }
    }
    if (node->has & MLG_HAS_UNIQUE) {
        u = mlg_items_unique(vc, inst, &a, &b);
        if (u == -2) {
            return 0;
        }
        if (u == 0) {
            valid = mlg_fail(vc, "uniqueItems: items %zu and %zu are equal",
                             a, b);
        } else if (u < 0) {
            valid = mlg_fail(vc, "uniqueItems: out of memory");
        }
        if (vc->stop) {
            return 0;
        }
    }
    for (i = 0; i < n; i++) {
        const mlg_node_t *sub = i < node->prefix.n ? node->prefix.nodes[i]
                                                   : node->items;
        if (sub == NULL) {
            if (i >= node->prefix.n) {
                break;
            }
            continue;
        }
        mlg_path_push(vc, NULL, 0, i);
        if (sub->boolean == 0 && i >= node->prefix.n) {
            valid = mlg_fail(vc, "items: no items allowed after the first %zu",
                             node->prefix.n);
        } else if (!mlg_validate_node(vc, sub, json_array_get(inst, i))) {
            valid = 0;
        }
        mlg_path_pop(vc);
        if (vc->stop) {
            return 0;
        }
    }
    return valid;
}

static int
mlg_validate_number(mlg_validate_t *vc, const mlg_node_t *node,
    const json_t *inst)
{
    int             valid = 1;
    char            buf[40];
    mlg_inst_num_t  x;

    if (!(node->has & (MLG_HAS_MINIMUM | MLG_HAS_MAXIMUM | MLG_HAS_XMINIMUM
                       | MLG_HAS_XMAXIMUM | MLG_HAS_MULTIPLE)))
    {
        return 1;
    }
    x.is_int = json_is_integer(inst);
    x.i = x.is_int ? json_integer_value(inst) : 0;
    x.d = x.is_int ? (double) x.i : json_real_value(inst);

    if ((node->has & MLG_HAS_MINIMUM) && mlg_num_cmp(&x, &node->minimum) < 0)
    {
        valid = mlg_fail(vc, "minimum: must be >= %s",
                         mlg_num_str(&node->minimum, buf, sizeof(buf)));
        if (vc->stop) {
            return 0;
        }
    }
    if ((node->has & MLG_HAS_MAXIMUM) && mlg_num_cmp(&x, &node->maximum) > 0)
    {
        valid = mlg_fail(vc, "maximum: must be <= %s",
                         mlg_num_str(&node->maximum, buf, sizeof(buf)));
        if (vc->stop) {
            return 0;
        }
    }
    if ((node->has & MLG_HAS_XMINIMUM)
        && mlg_num_cmp(&x, &node->xminimum) <= 0)
    {
        valid = mlg_fail(vc, "exclusiveMinimum: must be > %s",
                         mlg_num_str(&node->xminimum, buf, sizeof(buf)));
        if (vc->stop) {
            return 0;
        }
    }
    if ((node->has & MLG_HAS_XMAXIMUM)
        && mlg_num_cmp(&x, &node->xmaximum) >= 0)
    {
        valid = mlg_fail(vc, "exclusiveMaximum: must be < %s",
                         mlg_num_str(&node->xmaximum, buf, sizeof(buf)));
        if (vc->stop) {
            return 0;
        }
    }
    if ((node->has & MLG_HAS_MULTIPLE)
        && !mlg_is_multiple(inst, &node->multiple_of))
    {
        valid = mlg_fail(vc, "multipleOf: must be a multiple of %s",
                         mlg_num_str(&node->multiple_of, buf, sizeof(buf)));
        if (vc->stop) {
            return 0;
        }
    }
    return valid;
}

static int
mlg_validate_string(mlg_validate_t *vc, const mlg_node_t *node,
    const json_t *inst)
{
    size_t  len = 0, blen = json_string_length(inst);
    int     valid = 1, m;

    if (node->has & (MLG_HAS_MIN_LEN | MLG_HAS_MAX_LEN)) {
        len = mlg_utf8_length(json_string_value(inst), blen);
    }
    if ((node->has & MLG_HAS_MIN_LEN) && len < node->min_len) {
        valid = mlg_fail(vc, "minLength: must be at least %zu characters",
                         node->min_len);
        if (vc->stop) {
            return 0;
        }
    }
    if ((node->has & MLG_HAS_MAX_LEN) && len > node->max_len) {
        valid = mlg_fail(vc, "maxLength: must be at most %zu characters",
                         node->max_len);
        if (vc->stop) {
            return 0;
        }
    }
    if (node->pattern) {
        m = mlg_regex_search(vc, node->pattern, json_string_value(inst), blen);
        if (m == 0) {
            valid = mlg_fail(vc, "pattern: must match \"%.64s\"",
                             node->pattern_src);
        } else if (m < 0) {
            return 0;
        }
        if (vc->stop) {
            return 0;
        }
    }
    return valid;
}

static int
mlg_validate_node(mlg_validate_t *vc, const mlg_node_t *node,
    const json_t *inst)
{
    size_t  i, n, matches;
    int     valid = 1, types, m;
    char    buf[80];

    if (mlg_spend(vc, &vc->nodes_left, 1) != 0) {
        return 0;
    }
    if (node->boolean >= 0) {
        return node->boolean ? 1 : mlg_fail(vc, "false schema: no value is "
                                            "allowed here");
    }
    if (vc->depth >= MLG_MAX_EVAL_DEPTH) {
        return mlg_fail(vc, "schema: evaluation nested too deeply");
    }
    vc->depth++;

    types = mlg_instance_types(inst);
    if ((node->has & MLG_HAS_TYPE) && !(types & (int) node->types)) {
        valid = mlg_fail(vc, "type: must be %s",
                         mlg_types_str(node->types, buf, sizeof(buf)));
        if (vc->stop) {
            goto done;
        }
    }
    if (node->has & MLG_HAS_CONST) {
        if (!mlg_json_equal(inst, node->const_value)) {
            valid = mlg_fail(vc, "const: must be equal to the constant");
            if (vc->stop) {
                goto done;
            }
        }
    }
    if (node->has & MLG_HAS_ENUM) {
        n = json_array_size(node->enum_values);
        if (mlg_spend(vc, &vc->nodes_left, (unsigned long) n) != 0) {
            goto done;
        }
        for (i = 0; i < n; i++) {
            if (mlg_json_equal(inst, json_array_get(node->enum_values, i))) {
                break;
            }
        }
        if (i == n) {
            valid = mlg_fail(vc, "enum: must be one of the %zu allowed values",
                             n);
            if (vc->stop) {
                goto done;
            }
        }
    }

    if (types & MLG_T_OBJECT) {
        if (!mlg_validate_object(vc, node, inst)) {
            valid = 0;
        }
    } else if (types & MLG_T_ARRAY) {
        if (!mlg_validate_array(vc, node, inst)) {
            valid = 0;
        }
    } else if (types & MLG_T_NUMBER) {
        if (!mlg_validate_number(vc, node, inst)) {
            valid = 0;
        }
    } else if (types & MLG_T_STRING) {
        if (!mlg_validate_string(vc, node, inst)) {
            valid = 0;
        }
    }
    if (vc->stop) {
        valid = 0;
        goto done;
    }

    if (node->ref && !mlg_validate_node(vc, node->ref, inst)) {
        valid = 0;
        if (vc->stop) {
            goto done;
        }
    }
    for (i = 0; i < node->all_of.n; i++) {
        if (!mlg_validate_node(vc, node->all_of.nodes[i], inst)) {
            valid = 0;
            if (vc->stop) {
                goto done;
            }
        }
    }
    if (node->any_of.n) {
        for (i = 0; i < node->any_of.n; i++) {
            if (mlg_probe(vc, node->any_of.nodes[i], inst)) {
                break;
            }
            if (vc->over) {
                goto done;
            }
        }
        if (i == node->any_of.n) {
            valid = mlg_fail(vc, "anyOf: must match at least one of %zu "
                             "schemas", node->any_of.n);
            if (vc->stop) {
                goto done;
            }
        }
    }
    if (node->one_of.n) {
        matches = 0;
        for (i = 0; i < node->one_of.n && matches < 2; i++) {
            matches += (size_t) mlg_probe(vc, node->one_of.nodes[i], inst);
            if (vc->over) {
                goto done;
            }
        }
        if (matches != 1) {
            valid = mlg_fail(vc, "oneOf: must match exactly one of %zu "
                             "schemas (matched %s)", node->one_of.n,
                             matches ? "more than one" : "none");
            if (vc->stop) {
                goto done;
            }
        }
    }
    if (node->not_ && (mlg_probe(vc, node->not_, inst) || vc->over)) {
        if (vc->over) {
            goto done;
        }
        valid = mlg_fail(vc, "not: must not match the schema");
        if (vc->stop) {
            goto done;
        }
    }
    if (node->if_) {
        m = mlg_probe(vc, node->if_, inst);
        if (vc->over) {
            goto done;
        }
        if (m) {
            if (node->then_ && !mlg_validate_node(vc, node->then_, inst)) {
                valid = 0;
            }
        } else if (node->else_ && !mlg_validate_node(vc, node->else_, inst)) {
            valid = 0;
        }
    }

done:
    vc->depth--;
    return valid && !vc->stop;
}

int
mlg_schema_validate_budget(const mlg_schema_t *schema,
    const json_t *instance, const mlg_schema_budget_t *budget,
    mlg_schema_errors_t *out)
{
    int                  valid;
    unsigned long        max_nodes, max_regex;
    mlg_validate_t       vc;
    mlg_schema_error_t  *e;

    max_nodes = budget && budget->max_nodes ? budget->max_nodes
                                            : MLG_SCHEMA_MAX_NODES;
    max_regex = budget && budget->max_regex ? budget->max_regex
                                            : MLG_SCHEMA_MAX_REGEX;
    if (out) {
        out->count = 0;
        out->truncated = 0;
        out->over_budget = 0;
    }
    /* field by field: the segment stack needs no clearing */
    vc.schema = schema;
    vc.out = out;
    vc.probe = 0;
    vc.stop = 0;
    vc.depth = 0;
    vc.over = 0;
    vc.nodes_left = max_nodes;
    vc.regex_left = max_regex;
    vc.nsegs = 0;
    vc.segs_over = 0;
    valid = mlg_validate_node(&vc, schema->root, instance);

    if (out) {
        out->nodes = max_nodes - vc.nodes_left;
        out->regex = max_regex - vc.regex_left;
    }
    if (!vc.over) {
        return valid;
    }
    /* errors found on the way may stem from unfinished branches: drop them */
    if (out) {
        out->over_budget = 1;
        out->truncated = 0;
        out->count = 1;
        e = &out->errors[0];
        e->path[0] = '\0';
        e->path_len = 0;
        snprintf(e->message, sizeof(e->message),
                 "schema: work limit exceeded");
    }
    return 0;
}

int
mlg_schema_validate(const mlg_schema_t *schema, const json_t *instance,
    mlg_schema_errors_t *out)
{
    return mlg_schema_validate_budget(schema, instance, NULL, out);
}

size_t
mlg_schema_log_escape(const char *s, size_t len, char *out, size_t outlen)
{
    static const char   hex[] = "0123456789abcdef";
    size_t              i, n = 0;
    unsigned char       c;

    if (outlen == 0) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        c = (unsigned char) s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            if (n + 1 >= outlen) {
                break;
            }
            out[n++] = (char) c;
            continue;
        }
        if (n + 4 >= outlen) {
            break;
        }
        out[n++] = '\\';
        out[n++] = 'x';
        out[n++] = hex[c >> 4];
        out[n++] = hex[c & 0x0f];
    }
    out[n] = '\0';
    return n;
}
