#include "mlg_conffile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int
mlg_conffile_each_line(const char *buf, size_t len, const char *name,
    mlg_conffile_line_pt handler, void *data, char *err, size_t errlen)
{
    const char  *p, *end, *eol, *hash;
    unsigned     line;
    size_t       n;
    char         msg[384];

    p = buf;
    end = buf + len;
    line = 0;

    while (p < end) {
        line++;
        eol = memchr(p, '\n', (size_t) (end - p));
        if (eol == NULL) {
            eol = end;
        }

        n = (size_t) (eol - p);
        if (memchr(p, '\0', n) != NULL) {
            snprintf(err, errlen, "%s:%u: NUL byte in file", name, line);
            return -1;
        }

        hash = memchr(p, '#', n);
        if (hash) {
            n = (size_t) (hash - p);
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r')) {
            n--;
        }
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }

        if (n > 0 && handler(data, p, n, line, msg, sizeof(msg)) != 0) {
            snprintf(err, errlen, "%s:%u: %s", name, line, msg);
            return -1;
        }

        p = eol + 1;
    }

    return 0;
}


char *
mlg_conffile_read(const char *path, size_t max, size_t *len, char *err,
    size_t errlen)
{
    FILE    *f;
    char    *buf;
    size_t   n;

    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open file: %s", path, strerror(errno));
        return NULL;
    }

    buf = malloc(max + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }

    n = fread(buf, 1, max + 1, f);
    if (ferror(f) || n > max) {
        snprintf(err, errlen, "%s: cannot read file (or larger than %zu bytes)",
                 path, max);
        free(buf);
        fclose(f);
        return NULL;
    }

    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}
