/*
 * Hardened JSON input handling for request bodies: media-type check, a
 * linear nesting-depth pre-scan, a strict jansson parse, and JSON value
 * equality as JSON Schema defines it (1 == 1.0).  No nginx headers.
 */
#ifndef MLG_JSON_H
#define MLG_JSON_H

#include <stddef.h>
#include <jansson.h>

#define MLG_JSON_DEFAULT_MAX_DEPTH  32

/*
 * 1 when a Content-Type value names JSON: "application/json" or any
 * "type/subtype+json", case-insensitive, optionally followed by parameters
 * ("; charset=utf-8").  0 for everything else, including an empty value.
 */
int mlg_json_media_type_ok(const char *value, size_t len);

/*
 * Scans buf once, counting '[' / '{' outside strings (escapes respected).
 * Returns 0 when the nesting never exceeds max_depth, else -1 with
 * *err_offset set to the byte offset of the bracket that went too deep.
 * It does not validate JSON; the parser does that afterwards.
 */
int mlg_json_depth_check(const char *buf, size_t len, unsigned max_depth,
    size_t *err_offset);

/*
 * Strict parse of a request body: depth pre-scan, then jansson with
 * JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, which rejects
 * invalid UTF-8, NaN/Infinity literals, trailing data and duplicate keys;
 * numbers too large for a double or a 64-bit integer are rejected too.
 * Returns a new reference, or NULL with a one-line message in err
 * ("duplicate object key near 'a' at offset 7" style).
 */
json_t *mlg_json_parse(const char *buf, size_t len, unsigned max_depth,
    char *err, size_t errlen);

/*
 * An optional bump allocator for jansson, for the parse - validate - free
 * cycle of one request body: jansson otherwise mallocs and frees every
 * value.  mlg_json_arena_init() installs jansson allocation hooks (process
 * wide, once; allocations outside a cycle go to malloc as before).  Between
 * mlg_json_arena_begin() and mlg_json_arena_end() jansson allocations come
 * from the arena while it has room; every value allocated in between must
 * be freed before mlg_json_arena_end().  Single-threaded use only (one
 * nginx worker).  Returns 0, or -1 when out of memory.
 */
int mlg_json_arena_init(size_t size);
void mlg_json_arena_begin(void);
void mlg_json_arena_end(void);

/* JSON Schema equality: numbers by value (1 == 1.0), deep for containers. */
int mlg_json_equal(const json_t *a, const json_t *b);

/* A hash consistent with mlg_json_equal (equal values hash equally). */
unsigned long mlg_json_hash(const json_t *v);

#endif /* MLG_JSON_H */
