#include "mlg_conffile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>


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


long
mlg_conffile_read_secret(const char *path, char *out, char *err, size_t errlen)
{
    struct stat  st;
    size_t       n, i;
    ssize_t      r;
    int          fd;

    /* O_NONBLOCK: a FIFO in its place must not hang the configuration */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        snprintf(err, errlen, "\"%s\": cannot open: %s", path, strerror(errno));
        return -1;
    }

    /* the file opened, not the name: a swap after the check changes nothing */
    if (fstat(fd, &st) != 0) {
        snprintf(err, errlen, "\"%s\": cannot stat: %s", path, strerror(errno));
        goto failed;
    }

    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "\"%s\" is not a regular file", path);
        goto failed;
    }

    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        snprintf(err, errlen, "\"%s\" must not be accessible to group or others "
                 "(mode %04o; chmod 600 it)", path,
                 (unsigned) (st.st_mode & 07777));
        goto failed;
    }

    /* a secret, a final CR LF, and one byte to see that it is too long */
    n = 0;
    while (n < MLG_CONFFILE_SECRET_BUF) {
        r = read(fd, out + n, MLG_CONFFILE_SECRET_BUF - n);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            snprintf(err, errlen, "\"%s\": cannot read: %s", path,
                     strerror(errno));
            goto failed;
        }
        if (r == 0) {
            break;
        }
        n += (size_t) r;
    }

    if (n > 0 && out[n - 1] == '\n') {
        n--;
        if (n > 0 && out[n - 1] == '\r') {
            n--;
        }
    }

    if (n > MLG_CONFFILE_SECRET_MAX) {
        snprintf(err, errlen, "\"%s\" is longer than %d bytes", path,
                 MLG_CONFFILE_SECRET_MAX);
        goto failed;
    }

    if (n == 0) {
        snprintf(err, errlen, "\"%s\" is empty", path);
        goto failed;
    }

    for (i = 0; i < n; i++) {
        if ((unsigned char) out[i] < 0x20 || out[i] == 0x7f) {
            snprintf(err, errlen, "\"%s\" holds a control character (only one "
                     "final newline is allowed)", path);
            goto failed;
        }
    }

    close(fd);
    out[n] = '\0';
    return (long) n;

failed:

    close(fd);
    explicit_bzero(out, MLG_CONFFILE_SECRET_BUF);
    return -1;
}
