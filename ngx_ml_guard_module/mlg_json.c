/*
 * Hardened JSON input handling; see mlg_json.h.
 */
#include "mlg_json.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* RFC 9110 token characters */
static int
mlg_is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
        || (c >= '0' && c <= '9'))
    {
        return 1;
    }
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int
mlg_ieq(const char *a, size_t alen, const char *b)
{
    size_t  i, blen = strlen(b);
    char    ca, cb;

    if (alen != blen) {
        return 0;
    }
    for (i = 0; i < alen; i++) {
        ca = a[i];
        cb = b[i];
        if (ca >= 'A' && ca <= 'Z') {
            ca = (char) (ca - 'A' + 'a');
        }
        if (ca != cb) {
            return 0;
        }
    }
    return 1;
}

int
mlg_json_media_type_ok(const char *value, size_t len)
{
    size_t       i = 0, type_start, type_len, sub_start, sub_len;
    const char  *p = value;

    if (value == NULL) {
        return 0;
    }
    /* the common case, without the general parse below */
    if (len >= 16 && strncasecmp(value, "application/json", 16) == 0) {
        for (i = 16; i < len && (p[i] == ' ' || p[i] == '\t'); i++) {
            /* void */
        }
        return i == len || p[i] == ';';
    }
    while (i < len && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    type_start = i;
    while (i < len && mlg_is_tchar((unsigned char) p[i])) {
        i++;
    }
    type_len = i - type_start;
    if (type_len == 0 || i >= len || p[i] != '/') {
        return 0;
    }
    i++;
    sub_start = i;
    while (i < len && mlg_is_tchar((unsigned char) p[i])) {
        i++;
    }
    sub_len = i - sub_start;
    if (sub_len == 0) {
        return 0;
    }
    /* after the subtype: nothing, or optional whitespace then ';' params */
    while (i < len && (p[i] == ' ' || p[i] == '\t')) {
        i++;
    }
    if (i < len && p[i] != ';') {
        return 0;
    }

    if (mlg_ieq(p + type_start, type_len, "application")
        && mlg_ieq(p + sub_start, sub_len, "json"))
    {
        return 1;
    }
    /* structured syntax suffix (RFC 6839): "vnd.example+json" */
    return sub_len > 5
           && mlg_ieq(p + sub_start + sub_len - 5, 5, "+json");
}

int
mlg_json_depth_check(const char *buf, size_t len, unsigned max_depth,
    size_t *err_offset)
{
    size_t    i;
    unsigned  depth = 0;

    for (i = 0; i < len; i++) {
        switch (buf[i]) {
        case '"':
            /* skip the string; a backslash always escapes the next byte */
            for (i++; i < len && buf[i] != '"'; i++) {
                if (buf[i] == '\\') {
                    i++;
                }
            }
            break;
        case '[':
        case '{':
            if (++depth > max_depth) {
                if (err_offset) {
                    *err_offset = i;
                }
                return -1;
            }
            break;
        case ']':
        case '}':
            if (depth > 0) {
                depth--;
            }
            break;
        default:
            break;
        }
    }
    return 0;
}

/*
 * Copies jansson's message without echoing much of the body: the
 * "near '...'" token is kept only when short, and bytes outside printable
 * ASCII become '?' so the text is always safe to put in a response.
 */
static void
mlg_json_error_text(const char *text, char *out, size_t outlen)
{
    const char  *near = strstr(text, " near '");
    size_t       n, i, near_len = 0;

    if (outlen == 0) {
        return;
    }
    n = near ? (size_t) (near - text) : strlen(text);
    if (near) {
        near_len = strlen(near);
        if (near_len <= 7 + 32 + 1) {
            n += near_len;
        }
    }
    if (n >= outlen) {
        n = outlen - 1;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char) text[i];
        out[i] = (c >= 0x20 && c < 0x7f) ? (char) c : '?';
    }
    out[n] = '\0';
}

json_t *
mlg_json_parse(const char *buf, size_t len, unsigned max_depth,
    char *err, size_t errlen)
{
    json_t        *root;
    json_error_t   jerr;
    size_t         off;
    const char    *nul;
    char           text[128];

    if (mlg_json_depth_check(buf, len, max_depth, &off) != 0) {
        if (err && errlen) {
            snprintf(err, errlen,
                     "nesting deeper than %u levels at offset %zu",
                     max_depth, off);
        }
        return NULL;
    }

    /*
     * A raw NUL byte is never valid JSON, but jansson's lexer takes it for
     * the end of input and would accept "123\0garbage".
     */
    nul = memchr(buf, '\0', len);
    if (nul != NULL) {
        if (err && errlen) {
            snprintf(err, errlen, "NUL byte at offset %zu",
                     (size_t) (nul - buf));
        }
        return NULL;
    }

    root = json_loadb(buf, len,
                      JSON_DECODE_ANY | JSON_REJECT_DUPLICATES
                      | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        if (err && errlen) {
            mlg_json_error_text(jerr.text, text, sizeof(text));
            snprintf(err, errlen, "%s at offset %d", text, jerr.position);
        }
        return NULL;
    }

    /*
     * jansson already fails on overflowing numbers ("real number
     * overflow"); this guards against a library that returns inf instead.
     */
    if (json_is_real(root) && !isfinite(json_real_value(root))) {
        json_decref(root);
        if (err && errlen) {
            snprintf(err, errlen, "number out of range");
        }
        return NULL;
    }
    return root;
}

static char    *mlg_arena;
static size_t   mlg_arena_size;
static size_t   mlg_arena_used;
static int      mlg_arena_active;

static void *
mlg_arena_malloc(size_t size)
{
    void    *p;
    size_t   n = (size + 15) & ~(size_t) 15;

    if (mlg_arena_active && n >= size && n <= mlg_arena_size - mlg_arena_used)
    {
        p = mlg_arena + mlg_arena_used;
        mlg_arena_used += n;
        return p;
    }
    return malloc(size);
}

static void
mlg_arena_free(void *p)
{
    /* arena memory is released all at once by mlg_json_arena_end() */
    if ((char *) p >= mlg_arena && (char *) p < mlg_arena + mlg_arena_size) {
        return;
    }
    free(p);
}

int
mlg_json_arena_init(size_t size)
{
    if (mlg_arena != NULL) {
        return 0;
    }
    mlg_arena = malloc(size);
    if (mlg_arena == NULL) {
        return -1;
    }
    mlg_arena_size = size;
    json_set_alloc_funcs(mlg_arena_malloc, mlg_arena_free);
    return 0;
}

void
mlg_json_arena_begin(void)
{
    mlg_arena_used = 0;
    mlg_arena_active = mlg_arena != NULL;
}

void
mlg_json_arena_end(void)
{
    mlg_arena_active = 0;
    mlg_arena_used = 0;
}

/* numeric equality across jansson's integer and real representations */
static int
mlg_json_number_equal(const json_t *a, const json_t *b)
{
    json_int_t  i;
    double      r;

    if (json_is_integer(a) && json_is_integer(b)) {
        return json_integer_value(a) == json_integer_value(b);
    }
    if (json_is_real(a) && json_is_real(b)) {
        return json_real_value(a) == json_real_value(b);
    }
    if (json_is_integer(a)) {
        i = json_integer_value(a);
        r = json_real_value(b);
    } else {
        i = json_integer_value(b);
        r = json_real_value(a);
    }
    /* exact: the real must be integral, in range, and convert back to i */
    if (r != floor(r) || r < -9223372036854775808.0
        || r >= 9223372036854775808.0)
    {
        return 0;
    }
    return (json_int_t) r == i;
}

int
mlg_json_equal(const json_t *a, const json_t *b)
{
    size_t       i, n, klen;
    const char  *key;
    json_t      *va, *vb;
    void        *it;

    if (a == b) {
        return 1;
    }
    if (a == NULL || b == NULL) {
        return 0;
    }
    if (json_is_number(a) && json_is_number(b)) {
        return mlg_json_number_equal(a, b);
    }
    if (json_typeof(a) != json_typeof(b)) {
        return 0;
    }
    switch (json_typeof(a)) {
    case JSON_STRING:
        n = json_string_length(a);
        return n == json_string_length(b)
               && memcmp(json_string_value(a), json_string_value(b), n) == 0;
    case JSON_ARRAY:
        n = json_array_size(a);
        if (n != json_array_size(b)) {
            return 0;
        }
        for (i = 0; i < n; i++) {
            if (!mlg_json_equal(json_array_get(a, i), json_array_get(b, i))) {
                return 0;
            }
        }
        return 1;
    case JSON_OBJECT:
        if (json_object_size(a) != json_object_size(b)) {
            return 0;
        }
        for (it = json_object_iter((json_t *) a); it;
             it = json_object_iter_next((json_t *) a, it))
        {
            key = json_object_iter_key(it);
            klen = json_object_iter_key_len(it);
            va = json_object_iter_value(it);
            vb = json_object_getn(b, key, klen);
            if (vb == NULL || !mlg_json_equal(va, vb)) {
                return 0;
            }
        }
        return 1;
    default:
        /* true, false, null: same type means equal */
        return 1;
    }
}

static unsigned long
mlg_hash_bytes(unsigned long h, const void *data, size_t len)
{
    const unsigned char  *p = data;
    size_t                i;

    /* FNV-1a */
    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211UL;
    }
    return h;
}

unsigned long
mlg_json_hash(const json_t *v)
{
    unsigned long   h = 14695981039346656037UL, sum;
    size_t          i, n, klen;
    double          d;
    void           *it;
    const char     *key;

    switch (json_typeof(v)) {
    case JSON_INTEGER:
    case JSON_REAL:
        /* hash the double value so 1 and 1.0 collide; -0.0 == 0.0 too */
        d = json_is_integer(v) ? (double) json_integer_value(v)
                               : json_real_value(v);
        if (d == 0) {
            d = 0;
        }
        return mlg_hash_bytes(h ^ 'n', &d, sizeof(d));
    case JSON_STRING:
        return mlg_hash_bytes(h ^ 's', json_string_value(v),
                              json_string_length(v));
    case JSON_ARRAY:
        h ^= 'a';
        n = json_array_size(v);
        for (i = 0; i < n; i++) {
            h = (h ^ mlg_json_hash(json_array_get(v, i))) * 1099511628211UL;
        }
        return h;
    case JSON_OBJECT:
        /* order-independent: sum of per-member hashes */
        sum = 0;
        for (it = json_object_iter((json_t *) v); it;
             it = json_object_iter_next((json_t *) v, it))
        {
            key = json_object_iter_key(it);
            klen = json_object_iter_key_len(it);
            /* key and value hashed together: permuting values changes it */
            sum += mlg_hash_bytes(mlg_json_hash(json_object_iter_value(it))
                                  ^ klen, key, klen) * 1099511628211UL;
        }
        return (h ^ 'o') + sum;
    case JSON_TRUE:
        return h ^ 't';
    case JSON_FALSE:
        return h ^ 'f';
    default:
        return h ^ 'z';
    }
}
