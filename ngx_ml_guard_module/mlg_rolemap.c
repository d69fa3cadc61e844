#include "mlg_rolemap.h"
#include "mlg_apikeys.h"
#include "mlg_conffile.h"
#include "mlg_principal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MLG_ROLEMAP_FILE_MAX  (4 * 1024 * 1024)

struct mlg_rolemap_s {
    mlg_rolemap_entry_t  *entries;
    size_t                n;
};


static void
mlg_rolemap_entry_free(mlg_rolemap_entry_t *e)
{
    size_t  i;

    free(e->name);
    for (i = 0; e->roles && e->roles[i]; i++) {
        free(e->roles[i]);
    }
    free(e->roles);
    free(e->roles_joined);
}


void
mlg_rolemap_free(mlg_rolemap_t *map)
{
    size_t  i;

    if (map == NULL) {
        return;
    }
    for (i = 0; i < map->n; i++) {
        mlg_rolemap_entry_free(&map->entries[i]);
    }
    free(map->entries);
    free(map);
}


size_t
mlg_rolemap_count(const mlg_rolemap_t *map)
{
    return map ? map->n : 0;
}


static int
mlg_rolemap_add(void *data, const char *s, size_t len, unsigned line,
    char *msg, size_t msglen)
{
    mlg_rolemap_t        *map = data;
    size_t                cut, nlen, i;
    mlg_principal_rc_e    rc;
    mlg_rolemap_entry_t  *e, *grown;

    cut = len;
    while (cut > 0 && s[cut - 1] != ' ' && s[cut - 1] != '\t') {
        cut--;
    }
    nlen = cut;
    while (nlen > 0 && (s[nlen - 1] == ' ' || s[nlen - 1] == '\t')) {
        nlen--;
    }
    if (nlen == 0) {
        snprintf(msg, msglen, "expected \"SUBJECT_CN ROLE[,ROLE...]\"");
        return -1;
    }
    rc = mlg_principal_check((const unsigned char *) s, nlen);
    if (rc != MLG_PRINCIPAL_OK) {
        /* such a CN is refused at request time: it could never match */
        snprintf(msg, msglen, "subject CN %s", mlg_principal_problem(rc));
        return -1;
    }
    for (i = 0; i < map->n; i++) {
        if (strlen(map->entries[i].name) == nlen
            && memcmp(map->entries[i].name, s, nlen) == 0)
        {
            snprintf(msg, msglen, "duplicate subject \"%.*s\" (first on line %u)",
                     (int) nlen, s, map->entries[i].line);
            return -1;
        }
    }

    grown = realloc(map->entries, (map->n + 1) * sizeof(mlg_rolemap_entry_t));
    if (grown == NULL) {
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    map->entries = grown;
    e = &map->entries[map->n];
    memset(e, 0, sizeof(*e));
    e->line = line;

    if (mlg_roles_parse(s + cut, len - cut, &e->roles, &e->nroles,
                        &e->roles_joined, msg, msglen) != 0)
    {
        return -1;
    }
    e->name = strndup(s, nlen);
    if (e->name == NULL) {
        mlg_rolemap_entry_free(e);
        snprintf(msg, msglen, "out of memory");
        return -1;
    }
    map->n++;
    return 0;
}


mlg_rolemap_t *
mlg_rolemap_parse(const char *buf, size_t len, const char *name, char *err,
    size_t errlen)
{
    mlg_rolemap_t  *map;

    map = calloc(1, sizeof(mlg_rolemap_t));
    if (map == NULL) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }

    if (mlg_conffile_each_line(buf, len, name, mlg_rolemap_add, map,
                               err, errlen) != 0)
    {
        mlg_rolemap_free(map);
        return NULL;
    }

    return map;
}


mlg_rolemap_t *
mlg_rolemap_load(const char *path, char *err, size_t errlen)
{
    char           *buf;
    size_t          n;
    mlg_rolemap_t  *map;

    buf = mlg_conffile_read(path, MLG_ROLEMAP_FILE_MAX, &n, err, errlen);
    if (buf == NULL) {
        return NULL;
    }

    map = mlg_rolemap_parse(buf, n, path, err, errlen);
    free(buf);
    return map;
}


const mlg_rolemap_entry_t *
mlg_rolemap_lookup(const mlg_rolemap_t *map, const char *name, size_t len)
{
    size_t  i;

    /* service identities are few: a linear scan is enough */
    for (i = 0; map && i < map->n; i++) {
        if (strlen(map->entries[i].name) == len
            && memcmp(map->entries[i].name, name, len) == 0)
        {
            return &map->entries[i];
        }
    }
    return NULL;
}
