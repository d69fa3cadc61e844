/*
 * Line-oriented configuration files (key files, role maps): reading a file
 * and walking its lines with comments and blanks stripped.  Plain C.
 */
#ifndef MLG_CONFFILE_H
#define MLG_CONFFILE_H

#include <stddef.h>

/* Called for each non-empty line (comment and surrounding blanks removed);
 * returns 0, or -1 after writing a message (without file:line) to msg. */
typedef int (*mlg_conffile_line_pt)(void *data, const char *s, size_t len,
    unsigned line, char *msg, size_t msglen);

/* Returns 0, or -1 with "NAME:LINE: message" in err. */
int mlg_conffile_each_line(const char *buf, size_t len, const char *name,
    mlg_conffile_line_pt handler, void *data, char *err, size_t errlen);

/* Reads a whole file (at most max bytes) into a malloc()ed buffer. */
char *mlg_conffile_read(const char *path, size_t max, size_t *len,
    char *err, size_t errlen);

/* Longest secret mlg_conffile_read_secret() accepts, in bytes. */
#define MLG_CONFFILE_SECRET_MAX  4096
/* The buffer it reads into: the secret, a final CR LF, one byte more. */
#define MLG_CONFFILE_SECRET_BUF  (MLG_CONFFILE_SECRET_MAX + 3)

/*
 * Reads a secret (e.g. a password) from a regular file that grants nothing
 * to group or others: one line of at least one byte, an optional final
 * newline (LF or CRLF), no other control character, into out (of
 * MLG_CONFFILE_SECRET_BUF bytes, NUL-terminated).  Returns the secret's
 * length, or -1 with "\"PATH\" reason" in err (never any byte of the file)
 * and out wiped.
 */
long mlg_conffile_read_secret(const char *path, char *out, char *err,
    size_t errlen);

#endif /* MLG_CONFFILE_H */
