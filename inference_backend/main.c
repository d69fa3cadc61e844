/*
 * ml-guard-backend: serves random-forest models over HTTP/1.1.
 *
 *   ml-guard-backend --model [NAME=]FILE [--model ...] --listen unix:/path.sock
 *       [--listen tcp:127.0.0.1:PORT] [--threads N] [--model-key FILE]
 *       [--max-body BYTES] [--request-timeout MS] [--idle-timeout MS]
 *       [--socket-mode MODE] [--socket-group GROUP]
 *
 * SIGTERM/SIGINT: stop, close connections, remove the socket file.
 * SIGHUP: reload every model (and the key file); a model that fails to load
 * keeps its previous version.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "server.h"

#define MAX_MODELS   64
#define MAX_LISTEN   8

typedef struct {
    char  *name;
    char  *path;
} model_arg_t;

static model_arg_t   model_args[MAX_MODELS];
static int           n_models;
static const char   *key_path;
static mode_t        socket_mode = 0660;
static gid_t         socket_gid = (gid_t) -1;     /* -1: keep the creator's */

static void
usage(FILE *f)
{
    fprintf(f,
        "usage: ml-guard-backend --model [NAME=]FILE [--model ...] "
        "--listen unix:/path.sock\n"
        "           [--listen tcp:HOST:PORT] [--threads N] [--model-key FILE]\n"
        "           [--max-body BYTES] [--request-timeout MS] [--idle-timeout MS]\n"
        "           [--socket-mode MODE (octal, default 0660)] [--socket-group GROUP]\n"
        "Endpoints: POST /predict, POST /v1/models/NAME:predict, "
        "POST /v2/models/NAME/infer,\n"
        "           GET /v2/health/live, /v2/health/ready, /v2/models/NAME, "
        "/v2/models/NAME/ready\n"
        "Signals: SIGHUP reloads models, SIGTERM/SIGINT stop.\n");
}

static int
valid_name(const char *s, size_t n)
{
    size_t  i;

    if (n == 0 || n > 128) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '_'
              || s[i] == '.'))
        {
            return 0;
        }
    }
    return 1;
}

static int
add_model_arg(const char *arg)
{
    const char  *eq = strchr(arg, '='), *path, *base, *dot;
    size_t       nlen;
    int          i;

    if (n_models >= MAX_MODELS) {
        fprintf(stderr, "ml-guard-backend: at most %d models\n", MAX_MODELS);
        return -1;
    }
    /* NAME=FILE when the '=' comes before any '/' (paths may hold '=') */
    if (eq != NULL && memchr(arg, '/', (size_t) (eq - arg)) == NULL) {
        path = eq + 1;
        base = arg;
        nlen = (size_t) (eq - arg);
    } else {
        path = arg;
        base = strrchr(path, '/');
        base = base != NULL ? base + 1 : path;
        dot = strrchr(base, '.');
        nlen = dot != NULL && dot != base ? (size_t) (dot - base) : strlen(base);
    }
    if (!valid_name(base, nlen)) {
        fprintf(stderr, "ml-guard-backend: bad model name in \"%s\" (use "
                "letters, digits, '.', '-', '_'; or NAME=FILE)\n", arg);
        return -1;
    }
    for (i = 0; i < n_models; i++) {
        if (strlen(model_args[i].name) == nlen
            && memcmp(model_args[i].name, base, nlen) == 0)
        {
            fprintf(stderr, "ml-guard-backend: model name \"%.*s\" used twice\n",
                    (int) nlen, base);
            return -1;
        }
    }
    model_args[n_models].name = strndup(base, nlen);
    model_args[n_models].path = strdup(path);
    n_models++;
    return 0;
}

static int
parse_size(const char *s, size_t *out)
{
    char               *end;
    unsigned long long  v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || end == s) {
        return -1;
    }
    if (*end == 'k' || *end == 'K') {
        v <<= 10;
        end++;
    } else if (*end == 'm' || *end == 'M') {
        v <<= 20;
        end++;
    }
    if (*end != '\0' || v == 0 || v > (1ull << 31)) {
        return -1;
    }
    *out = (size_t) v;
    return 0;
}

static int
parse_long(const char *s, long lo, long hi, long *out)
{
    char  *end;
    long   v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
        return -1;
    }
    *out = v;
    return 0;
}

/* An argument for an error message: control characters as \xHH. */
static const char *
printable(const char *s, char *buf, size_t cap)
{
    size_t  n = 0;

    for (; *s != '\0' && n + 5 < cap; s++) {
        if ((unsigned char) *s < 0x20 || *s == 0x7f) {
            n += (size_t) snprintf(buf + n, cap - n, "\\x%02x", (unsigned char) *s);
        } else {
            buf[n++] = *s;
        }
    }
    buf[n] = '\0';
    return buf;
}

/* An octal permission mode, 0 to 0777 (at most four digits). */
static int
parse_mode(const char *s, mode_t *out)
{
    size_t  i, n = strlen(s);
    mode_t  v = 0;

    if (n == 0 || n > 4) {
        return -1;
    }
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '7') {
            return -1;
        }
        v = (mode_t) (v << 3 | (mode_t) (s[i] - '0'));
    }
    if (v > 0777) {
        return -1;
    }
    *out = v;
    return 0;
}

/* A group name, or a numeric gid, that exists. */
static int
parse_group(const char *s, gid_t *out)
{
    struct group   gr, *res = NULL;
    char           buf[16384], *end;
    unsigned long  v;

    if (*s >= '0' && *s <= '9') {
        errno = 0;
        v = strtoul(s, &end, 10);
        if (*end == '\0') {
            if (errno != 0 || v >= (unsigned long) (gid_t) -1) {
                return -1;
            }
            *out = (gid_t) v;
            return 0;
        }
    }
    if (getgrnam_r(s, &gr, buf, sizeof(buf), &res) != 0 || res == NULL) {
        return -1;
    }
    *out = gr.gr_gid;
    return 0;
}

/*
 * Loads every model.  With prev (a reload), a model that fails keeps its
 * previous version; without, any failure is fatal (returns NULL).
 */
static mlg_registry_t *
load_registry(const mlg_registry_t *prev, int *failures)
{
    mlg_registry_t      *reg;
    mlg_served_model_t  *sm;
    mlg_model_t         *m;
    unsigned char        key[32], *keyp = NULL;
    char                 err[MLG_ERR_LEN];
    int                  i;

    *failures = 0;
    if (key_path != NULL) {
        if (mlg_read_key_file(key_path, key, err) != 0) {
            mlg_log("%s%s", err, prev ? "; keeping the loaded models" : "");
            *failures = n_models;
            return NULL;
        }
        keyp = key;
    }
    reg = calloc(1, sizeof(*reg));
    if (reg == NULL || (reg->models = calloc((size_t) n_models,
                                             sizeof(*reg->models))) == NULL)
    {
        free(reg);
        return NULL;
    }
    reg->refs = 1;
    for (i = 0; i < n_models; i++) {
        m = mlg_model_load_file(model_args[i].path, keyp, err);
        if (m == NULL) {
            (*failures)++;
            if (prev == NULL) {
                mlg_log("model %s: %s", model_args[i].name, err);
                goto fail;
            }
            mlg_log("reload: model %s: %s; keeping the old model",
                    model_args[i].name, err);
            mlg_registry_adopt(reg, prev, (size_t) i);
            reg->n++;
            continue;
        }
        sm = calloc(1, sizeof(*sm));
        if (sm == NULL) {
            mlg_model_free(m);
            goto fail;
        }
        sm->name = strdup(model_args[i].name);
        sm->path = strdup(model_args[i].path);
        sm->model = m;
        sm->refs = 1;
        reg->models[reg->n++] = sm;
        mlg_log("%s model %s from %s: %s, %u trees, %u nodes, %u features",
                prev ? "reloaded" : "loaded", sm->name, sm->path,
                m->kind == MLG_KIND_CLASSIFIER ? "classifier" : "regressor",
                m->n_trees, m->n_nodes, m->n_features);
    }
    OPENSSL_cleanse(key, sizeof(key));
    return reg;

fail:
    OPENSSL_cleanse(key, sizeof(key));
    for (i = 0; i < (int) reg->n; i++) {
        mlg_model_free(reg->models[i]->model);
        free(reg->models[i]->name);
        free(reg->models[i]->path);
        free(reg->models[i]);
    }
    free(reg->models);
    free(reg);
    return NULL;
}

static int
listen_unix(const char *path)
{
    struct sockaddr_un  sa;
    struct stat         st;
    mode_t              old_mask;
    int                 fd, probe, rc, err;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "ml-guard-backend: socket path too long: %s\n", path);
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    strcpy(sa.sun_path, path);

    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            fprintf(stderr, "ml-guard-backend: %s exists and is not a socket\n",
                    path);
            return -1;
        }
        /* a stale socket from a crashed run is replaced, a live one is not */
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *) &sa, sizeof(sa)) == 0)
        {
            close(probe);
            fprintf(stderr, "ml-guard-backend: %s is in use by another server\n",
                    path);
            return -1;
        }
        if (probe >= 0) {
            close(probe);
        }
        unlink(path);
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    /*
     * Created 0600 (the threads do not run yet: umask is ours to change),
     * then given its group, and only then opened up to --socket-mode: no
     * moment where the wrong group may connect.
     */
    old_mask = umask(0177);
    rc = fd < 0 ? -1 : bind(fd, (struct sockaddr *) &sa, sizeof(sa));
    err = errno;
    umask(old_mask);
    if (rc != 0) {
        fprintf(stderr, "ml-guard-backend: bind %s: %s\n", path, strerror(err));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    if (socket_gid != (gid_t) -1 && lchown(path, (uid_t) -1, socket_gid) != 0) {
        fprintf(stderr, "ml-guard-backend: --socket-group: cannot give %s to group "
                "%lu: %s (the backend must run as root or as a member of the "
                "group)\n", path, (unsigned long) socket_gid, strerror(errno));
        goto failed;
    }
    if (chmod(path, socket_mode) != 0) {
        fprintf(stderr, "ml-guard-backend: chmod %s: %s\n", path, strerror(errno));
        goto failed;
    }
    if (listen(fd, SOMAXCONN) != 0) {
        fprintf(stderr, "ml-guard-backend: listen %s: %s\n", path, strerror(errno));
        goto failed;
    }
    return fd;

failed:
    close(fd);
    unlink(path);
    return -1;
}

static int
listen_tcp(const char *hostport)
{
    struct sockaddr_in  sa;
    const char         *colon = strrchr(hostport, ':');
    char                host[64];
    long                port;
    int                 fd, one = 1;

    if (colon == NULL || (size_t) (colon - hostport) >= sizeof(host)
        || parse_long(colon + 1, 1, 65535, &port) != 0)
    {
        fprintf(stderr, "ml-guard-backend: bad tcp address %s (want HOST:PORT)\n",
                hostport);
        return -1;
    }
    memcpy(host, hostport, (size_t) (colon - hostport));
    host[colon - hostport] = '\0';
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) port);
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "ml-guard-backend: bad IPv4 address %s\n", host);
        return -1;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0
        || listen(fd, SOMAXCONN) != 0)
    {
        fprintf(stderr, "ml-guard-backend: listen %s: %s\n", hostport,
                strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int
main(int argc, char **argv)
{
    mlg_server_conf_t   conf;
    mlg_registry_t     *reg, *next;
    const char         *listen_args[MAX_LISTEN];
    const char         *unix_paths[MAX_LISTEN];
    struct stat         unix_st[MAX_LISTEN];
    int                 listen_fds[MAX_LISTEN];
    int                 n_listen = 0, n_unix = 0, i, sig, failures;
    int                 socket_opts = 0;
    char                pbuf[256];
    long                v;
    sigset_t            set;
    long                cores;

    memset(&conf, 0, sizeof(conf));
    conf.max_body = 16u << 20;
    conf.request_timeout_ms = 30000;
    conf.idle_timeout_ms = 60000;
    cores = sysconf(_SC_NPROCESSORS_ONLN);
    conf.threads = cores > 0 ? (int) cores : 1;

    for (i = 1; i < argc; i++) {
        const char  *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (val == NULL) {
            fprintf(stderr, "ml-guard-backend: %s needs a value\n", opt);
            usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(opt, "--model") == 0) {
            if (add_model_arg(val) != 0) {
                return 2;
            }
        } else if (strcmp(opt, "--listen") == 0) {
            if (n_listen >= MAX_LISTEN) {
                fprintf(stderr, "ml-guard-backend: too many --listen\n");
                return 2;
            }
            listen_args[n_listen++] = val;
        } else if (strcmp(opt, "--threads") == 0) {
            if (parse_long(val, 1, 256, &v) != 0) {
                fprintf(stderr, "ml-guard-backend: --threads wants 1..256\n");
                return 2;
            }
            conf.threads = (int) v;
        } else if (strcmp(opt, "--socket-mode") == 0) {
            if (parse_mode(val, &socket_mode) != 0) {
                fprintf(stderr, "ml-guard-backend: bad --socket-mode '%s' (want an "
                        "octal mode from 0 to 0777, e.g. 0660)\n",
                        printable(val, pbuf, sizeof(pbuf)));
                return 2;
            }
            socket_opts = 1;
        } else if (strcmp(opt, "--socket-group") == 0) {
            if (parse_group(val, &socket_gid) != 0) {
                fprintf(stderr, "ml-guard-backend: --socket-group '%s': no such "
                        "group\n", printable(val, pbuf, sizeof(pbuf)));
                return 2;
            }
            socket_opts = 1;
        } else if (strcmp(opt, "--model-key") == 0) {
            key_path = val;
        } else if (strcmp(opt, "--max-body") == 0) {
            if (parse_size(val, &conf.max_body) != 0) {
                fprintf(stderr, "ml-guard-backend: bad --max-body %s\n", val);
                return 2;
            }
        } else if (strcmp(opt, "--request-timeout") == 0
                   || strcmp(opt, "--idle-timeout") == 0)
        {
            if (parse_long(val, 1, 86400000, &v) != 0) {
                fprintf(stderr, "ml-guard-backend: bad %s %s (milliseconds)\n",
                        opt, val);
                return 2;
            }
            if (opt[2] == 'r') {
                conf.request_timeout_ms = v;
            } else {
                conf.idle_timeout_ms = v;
            }
        } else {
            fprintf(stderr, "ml-guard-backend: unknown option %s\n", opt);
            usage(stderr);
            return 2;
        }
    }
    if (n_models == 0 || n_listen == 0) {
        fprintf(stderr, "ml-guard-backend: need at least one --model and one "
                "--listen\n");
        usage(stderr);
        return 2;
    }
    for (i = 0; i < n_listen && strncmp(listen_args[i], "unix:", 5) != 0; i++) {
        /* void */
    }
    if (socket_opts && i == n_listen) {
        fprintf(stderr, "ml-guard-backend: --socket-mode and --socket-group apply "
                "to --listen unix:PATH, and there is none\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    /*
     * The signals are taken synchronously by this thread (sigwaitinfo), and
     * blocked from the start: one arriving while models load waits its turn.
     */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    reg = load_registry(NULL, &failures);
    if (reg == NULL) {
        return 1;
    }
    mlg_registry_publish(reg);

    for (i = 0; i < n_listen; i++) {
        if (strncmp(listen_args[i], "unix:", 5) == 0) {
            listen_fds[i] = listen_unix(listen_args[i] + 5);
            if (listen_fds[i] >= 0) {
                unix_paths[n_unix] = listen_args[i] + 5;
                stat(unix_paths[n_unix], &unix_st[n_unix]);
                n_unix++;
            }
        } else if (strncmp(listen_args[i], "tcp:", 4) == 0) {
            listen_fds[i] = listen_tcp(listen_args[i] + 4);
        } else {
            fprintf(stderr, "ml-guard-backend: --listen wants unix:PATH or "
                    "tcp:HOST:PORT, not %s\n", listen_args[i]);
            listen_fds[i] = -1;
        }
        if (listen_fds[i] < 0) {
            goto unlink_sockets;
        }
    }

    if (mlg_server_start(&conf, listen_fds, n_listen) != 0) {
        mlg_log("cannot start worker threads: %s", strerror(errno));
        goto unlink_sockets;
    }
    for (i = 0; i < n_listen; i++) {
        mlg_log("listening on %s (%d threads)", listen_args[i], conf.threads);
    }

    for ( ;; ) {
        sig = sigwaitinfo(&set, NULL);
        if (sig < 0) {
            continue;
        }
        if (sig == SIGHUP) {
            mlg_log("SIGHUP: reloading models");
            reg = mlg_registry_acquire();
            next = load_registry(reg, &failures);
            mlg_registry_release(reg);
            if (next != NULL) {
                mlg_registry_publish(next);
            }
            mlg_log("reload done: %d of %d models failed and kept their previous "
                    "version", failures, n_models);
            continue;
        }
        mlg_log("%s: shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        break;
    }

    mlg_server_stop();
    for (i = 0; i < n_listen; i++) {
        close(listen_fds[i]);
    }
    for (i = 0; i < n_unix; i++) {
        struct stat  st;

        /* only our own socket: another server may have taken the path */
        if (stat(unix_paths[i], &st) == 0 && st.st_ino == unix_st[i].st_ino
            && st.st_dev == unix_st[i].st_dev)
        {
            unlink(unix_paths[i]);
        }
    }
    mlg_registry_publish(NULL);
    mlg_log("stopped");
    return 0;

unlink_sockets:
    for (i = 0; i < n_unix; i++) {
        unlink(unix_paths[i]);
    }
    return 1;
}
