/*
 * libFuzzer target for the depth pre-scan and the strict parser.  Checks:
 * whatever mlg_json_parse accepts nests no deeper than the limit; valid
 * JSON within the limit is never refused by the pre-scan; the media-type
 * check does not crash.  Built by scripts/fuzz.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mlg_json.h"

static unsigned
depth_of(const json_t *v)
{
    unsigned  d = 0, c;
    size_t    i;
    void     *it;

    if (json_is_array(v)) {
        for (i = 0; i < json_array_size(v); i++) {
            c = depth_of(json_array_get(v, i));
            d = c > d ? c : d;
        }
        return d + 1;
    }
    if (json_is_object(v)) {
        for (it = json_object_iter((json_t *) v); it;
             it = json_object_iter_next((json_t *) v, it))
        {
            c = depth_of(json_object_iter_value(it));
            d = c > d ? c : d;
        }
        return d + 1;
    }
    return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char    *buf = (const char *) data;
    unsigned       limit;
    size_t         off;
    json_t        *j, *plain;
    json_error_t   jerr;
    char           err[256];
    int            scan;

    (void) mlg_json_media_type_ok(buf, size);
    if (size == 0) {
        return 0;
    }
    /* the first byte picks the limit so small limits get exercised too */
    limit = (unsigned) (data[0] % 40);
    buf++;
    size--;

    scan = mlg_json_depth_check(buf, size, limit, &off);
    if (scan != 0 && off >= size) {
        abort();
    }
    j = mlg_json_parse(buf, size, limit, err, sizeof(err));
    if (j != NULL) {
        if (depth_of(j) > limit || scan != 0) {
            abort();
        }
        /* jansson's own verdict must agree on accepted documents */
        plain = json_loadb(buf, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        if (plain == NULL) {
            abort();
        }
        json_decref(plain);
        json_decref(j);
        return 0;
    }
    if (err[0] == '\0') {
        abort();
    }
    /* valid JSON within the limit is refused only for its duplicates/NULs */
    plain = json_loadb(buf, size, JSON_DECODE_ANY | JSON_ALLOW_NUL
                       | JSON_REJECT_DUPLICATES, &jerr);
    if (plain != NULL) {
        if (depth_of(plain) <= limit && memchr(buf, '\0', size) == NULL) {
            abort();
        }
        json_decref(plain);
    }
    return 0;
}
