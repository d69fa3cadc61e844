/* Unit tests for mlg_rolemap: the mTLS subject -> roles file. */

#include "tap.h"
#include "mlg_rolemap.h"

static void
fails(const char *text, const char *want, const char *what)
{
    char            err[512] = "";
    mlg_rolemap_t  *m;

    m = mlg_rolemap_parse(text, strlen(text), "roles.txt", err, sizeof(err));
    ok(m == NULL, "%s: refused", what);
    if (!ok(strstr(err, want) != NULL, "%s: message has '%s'", what, want)) {
        diag("got: %s", err);
    }
    mlg_rolemap_free(m);
}

int
main(void)
{
    char                        err[512];
    const char                 *text;
    mlg_rolemap_t              *m;
    const mlg_rolemap_entry_t  *e;

    text = "# services\n"
           "billing.internal predict,admin\n"
           "Batch Scoring Service\tpredict   # CN with blanks\n"
           "\n";
    m = mlg_rolemap_parse(text, strlen(text), "roles.txt", err, sizeof(err));
    ok(m != NULL, "valid file parses");
    is_int(mlg_rolemap_count(m), 2, "two entries");

    e = mlg_rolemap_lookup(m, "billing.internal", 16);
    ok(e && e->nroles == 2, "billing has two roles");
    is_str(e ? e->roles_joined : NULL, "predict,admin", "joined roles");

    e = mlg_rolemap_lookup(m, "Batch Scoring Service", 21);
    ok(e && e->nroles == 1, "a CN with blanks");
    is_str(e ? e->roles[0] : NULL, "predict", "its role");

    ok(mlg_rolemap_lookup(m, "billing", 7) == NULL, "prefix does not match");
    ok(mlg_rolemap_lookup(m, "billing.internal ", 17) == NULL, "longer name does not match");
    mlg_rolemap_free(m);

    fails("lonely\n", "roles.txt:1: expected", "no roles");
    fails("a predict\nb x,,y\n", "roles.txt:2: empty role name", "empty role");
    fails("a predict\na admin\n", "roles.txt:2: duplicate subject \"a\" (first on line 1)", "duplicate");
    fails("a pre\"dict\n", "invalid character", "bad role character");
    fails("del\x7f predict\n", "roles.txt:1: subject CN contains a control character",
          "DEL in the CN");
    fails("nel\xc2\x85 predict\n", "subject CN contains a control character", "C1 in the CN");
    fails("bad\xff predict\n", "subject CN is not valid UTF-8", "invalid UTF-8 in the CN");
    {
        char  line[300];

        memset(line, 'a', 256);
        strcpy(line + 256, " predict\n");
        fails(line, "subject CN is longer than 255 bytes", "256-byte CN");
        line[255] = ' ';
        m = mlg_rolemap_parse(line, strlen(line), "roles.txt", err, sizeof(err));
        ok(m != NULL && mlg_rolemap_lookup(m, line, 255) != NULL, "255-byte CN");
        mlg_rolemap_free(m);
    }

    m = mlg_rolemap_load("/nonexistent", err, sizeof(err));
    ok(m == NULL && strstr(err, "cannot open") != NULL, "missing file");

    return done_testing();
}
