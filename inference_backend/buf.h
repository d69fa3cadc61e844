/* Growable byte buffer and JSON output helpers. */
#ifndef MLG_BUF_H
#define MLG_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char    *data;
    size_t   len;
    size_t   cap;
    int      oom;        /* an allocation failed: contents are incomplete */
} mlg_buf_t;

int  mlg_buf_reserve(mlg_buf_t *b, size_t extra);
void mlg_buf_add(mlg_buf_t *b, const void *p, size_t n);
void mlg_buf_adds(mlg_buf_t *b, const char *s);
void mlg_buf_addc(mlg_buf_t *b, char c);
void mlg_buf_printf(mlg_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mlg_buf_free(mlg_buf_t *b);
void mlg_buf_reset(mlg_buf_t *b);       /* empty, keeps the memory */

/*
 * Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong form,
 * no surrogate, nothing past U+10FFFF; p < end), or 0.
 */
size_t mlg_utf8_len(const unsigned char *p, const unsigned char *end);
/*
 * JSON string literal (quotes included), escaping as RFC 8259 requires; a
 * byte that does not start a well-formed UTF-8 sequence becomes \ufffd, so
 * the output is always valid UTF-8 JSON.
 */
void mlg_json_str(mlg_buf_t *b, const char *s, size_t n);
/* Shortest text that reads back as the same double. */
void mlg_json_double(mlg_buf_t *b, double d);
void mlg_json_u64(mlg_buf_t *b, uint64_t v);

#endif
