/*
 * Role map for mutual-TLS callers: which roles a certificate's subject CN
 * carries.  Plain C, no nginx headers.
 */
#ifndef MLG_ROLEMAP_H
#define MLG_ROLEMAP_H

#include <stddef.h>

typedef struct {
    char      *name;
    char     **roles;          /* NULL-terminated */
    size_t     nroles;
    char      *roles_joined;
    unsigned   line;
} mlg_rolemap_entry_t;

typedef struct mlg_rolemap_s  mlg_rolemap_t;

/*
 * Lines "SUBJECT_CN ROLE[,ROLE...]"; "#" starts a comment.  The roles are
 * the last field, so a CN may contain blanks ("Billing Service predict").
 * Errors read "NAME:LINE: message".
 */
mlg_rolemap_t *mlg_rolemap_parse(const char *buf, size_t len, const char *name,
    char *err, size_t errlen);
mlg_rolemap_t *mlg_rolemap_load(const char *path, char *err, size_t errlen);
const mlg_rolemap_entry_t *mlg_rolemap_lookup(const mlg_rolemap_t *map,
    const char *name, size_t len);
size_t mlg_rolemap_count(const mlg_rolemap_t *map);
void mlg_rolemap_free(mlg_rolemap_t *map);

#endif /* MLG_ROLEMAP_H */
