/* Unit tests for mlg_apikeys: key file parsing and lookup. */

#include "tap.h"
#include "mlg_apikeys.h"

#include <stdio.h>
#include <string.h>

/* sha256("secret-key-alice") etc. are computed at run time */
static void
hex(const unsigned char *d, char *out)
{
    static const char  digits[] = "0123456789abcdef";
    int                i;

    for (i = 0; i < 32; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[64] = '\0';
}


static void
digest_hex(const char *key, char *out)
{
    unsigned char  d[32];

    mlg_apikey_digest((const unsigned char *) key, strlen(key), d);
    hex(d, out);
}


static int
parse_fails(const char *text, const char *want_substr, const char *what)
{
    char            err[512] = "";
    mlg_apikeys_t  *t;

    t = mlg_apikeys_parse(text, strlen(text), "keys.txt", err, sizeof(err));
    if (t != NULL) {
        mlg_apikeys_free(t);
        return ok(0, "%s: refused", what);
    }
    if (!ok(strstr(err, want_substr) != NULL, "%s: error mentions '%s'", what, want_substr)) {
        diag("error was: %s", err);
        return 0;
    }
    return 1;
}


int
main(void)
{
    char                 ha[65], hb[65], hc[65], text[2048], err[512], bad[65];
    mlg_apikeys_t       *t;
    const mlg_apikey_t  *k;
    int                  i;

    digest_hex("secret-key-alice", ha);
    digest_hex("secret-key-bob", hb);
    digest_hex("secret-key-carol", hc);

    snprintf(text, sizeof(text),
             "# comment line\n"
             "\n"
             "alice %s predict,admin   # trailing comment\n"
             "  bob\t%s predict\r\n"
             "carol %s\n", ha, hb, hc);

    t = mlg_apikeys_parse(text, strlen(text), "keys.txt", err, sizeof(err));
    if (!ok(t != NULL, "valid file parses")) {
        diag("%s", err);
    }
    is_int(mlg_apikeys_count(t), 3, "three keys");

    k = mlg_apikeys_lookup(t, (const unsigned char *) "secret-key-alice", 16);
    ok(k && strcmp(k->id, "alice") == 0, "alice's key finds alice");
    is_int(k ? k->nroles : 0, 2, "alice has two roles");
    is_str(k ? k->roles[0] : NULL, "predict", "first role");
    is_str(k ? k->roles[1] : NULL, "admin", "second role");
    is_str(k ? k->roles_joined : NULL, "predict,admin", "joined roles");

    k = mlg_apikeys_lookup(t, (const unsigned char *) "secret-key-bob", 14);
    ok(k && strcmp(k->id, "bob") == 0, "tab-separated line with CRLF parses");

    k = mlg_apikeys_lookup(t, (const unsigned char *) "secret-key-carol", 16);
    ok(k && k->nroles == 0 && k->roles[0] == NULL, "a key without roles");
    is_str(k ? k->roles_joined : NULL, "", "no roles joined is empty");

    ok(mlg_apikeys_lookup(t, (const unsigned char *) "secret-key-alicE", 16) == NULL,
       "a near miss is refused");
    ok(mlg_apikeys_lookup(t, (const unsigned char *) "", 0) == NULL, "empty key refused");
    ok(mlg_apikeys_lookup(t, (const unsigned char *) ha, 64) == NULL,
       "presenting the digest itself is refused");
    mlg_apikeys_free(t);

    /* a plaintext key in the digest column never authenticates */
    snprintf(text, sizeof(text), "dave %s\n", ha);
    t = mlg_apikeys_parse(text, strlen(text), "keys.txt", err, sizeof(err));
    ok(mlg_apikeys_lookup(t, (const unsigned char *) ha, 64) == NULL,
       "a hex string stored as if it were a hash is not a key");
    mlg_apikeys_free(t);

    /* errors name file and line */
    snprintf(text, sizeof(text), "alice %s\nbob 1234\n", ha);
    parse_fails(text, "keys.txt:2: digest of key \"bob\" must be 64", "short digest");

    memcpy(bad, ha, 65);
    bad[10] = 'g';
    snprintf(text, sizeof(text), "alice %s\n", bad);
    parse_fails(text, "keys.txt:1: digest of key \"alice\" is not lowercase hex", "bad hex");

    memcpy(bad, ha, 65);
    for (i = 0; i < 64; i++) {
        if (bad[i] >= 'a') {
            bad[i] -= 32;
            break;
        }
    }
    snprintf(text, sizeof(text), "alice %s\n", bad);
    parse_fails(text, "is not lowercase hex", "uppercase hex");

    snprintf(text, sizeof(text), "alice %s\n\nalice %s\n", ha, hb);
    parse_fails(text, "keys.txt:3: duplicate key id \"alice\" (first on line 1)", "duplicate id");

    snprintf(text, sizeof(text), "alice %s\nbob %s\n", ha, ha);
    parse_fails(text, "keys.txt:2: duplicate digest", "duplicate hash");

    snprintf(text, sizeof(text), "alice\n");
    parse_fails(text, "keys.txt:1: missing SHA-256 digest", "missing digest");

    snprintf(text, sizeof(text), "alice %s a,b extra\n", ha);
    parse_fails(text, "too many fields", "extra field");

    snprintf(text, sizeof(text), "alice %s a,,b\n", ha);
    parse_fails(text, "empty role name", "empty role");

    snprintf(text, sizeof(text), "al\"ice %s\n", ha);
    parse_fails(text, "invalid character in key id", "bad id character");

    parse_fails("alice 00\0", "keys.txt:1:", "short line");

    t = mlg_apikeys_parse("", 0, "keys.txt", err, sizeof(err));
    ok(t != NULL && mlg_apikeys_count(t) == 0, "an empty file is an empty table");
    ok(mlg_apikeys_lookup(t, (const unsigned char *) "x", 1) == NULL, "empty table refuses");
    mlg_apikeys_free(t);

    t = mlg_apikeys_load("/nonexistent/keys.txt", err, sizeof(err));
    ok(t == NULL && strstr(err, "cannot open file") != NULL, "missing file reported");

    /* many keys: the table grows and every key is still found */
    {
        char   *big = malloc(1000 * 100);
        char    key[32], h[65];
        size_t  off = 0;
        int     found = 0;

        for (i = 0; i < 1000; i++) {
            snprintf(key, sizeof(key), "key-%d", i);
            digest_hex(key, h);
            off += (size_t) snprintf(big + off, 100, "id%d %s r%d\n", i, h, i % 7);
        }
        t = mlg_apikeys_parse(big, off, "big.txt", err, sizeof(err));
        ok(t != NULL, "1000 keys parse");
        for (i = 0; i < 1000; i++) {
            snprintf(key, sizeof(key), "key-%d", i);
            k = mlg_apikeys_lookup(t, (const unsigned char *) key, strlen(key));
            if (k && atoi(k->id + 2) == i) {
                found++;
            }
        }
        is_int(found, 1000, "all 1000 keys found");
        mlg_apikeys_free(t);
        free(big);
    }

    return done_testing();
}
