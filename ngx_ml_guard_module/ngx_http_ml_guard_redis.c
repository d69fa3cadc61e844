/*
 * hiredis <-> nginx event loop adapter for ml-guard's rate limits.
 *
 * Each worker keeps one non-blocking hiredis connection.  Checks are
 * queued into a batch, sent as one EVALSHA of the rate-limit script at the
 * end of the event-loop turn (held a few more turns while turns keep adding
 * checks), or, while an earlier batch is still in flight, as soon as its
 * reply arrives: under load each worker has one batch at Redis and the next
 * one filling, so batches grow with the load.
 * Inside Redis a script call, and waking Redis at all, cost far more than
 * the arithmetic: one call per batch rather than per request is what keeps
 * a Redis limit cheap.  Every command has its own nginx timer (hiredis 0.14 has no async
 * timeouts).  A circuit breaker decides whether commands are sent at all:
 *
 *   up    commands are sent.  Any failure (a command timing out, the
 *         connection lost, AUTH/SELECT refused, an error reply) opens the
 *         breaker: the connection is dropped, so every pending command
 *         fails at once instead of waiting for its own timeout.
 *   down  nothing is sent: callers use their fail= mode immediately.  A
 *         probe (connect, AUTH, SELECT, SCRIPT LOAD) runs after a backoff
 *         (100 ms doubling to 3 s, with jitter so gateways don't probe in
 *         step); when it answers in time, the breaker closes.
 *
 * Each change of state is logged once.  An operation outlives its request
 * when the request is finalized while the reply is pending: a pool cleanup
 * detaches it, and the command is freed when hiredis is done with it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/async.h>

#include "ngx_http_ml_guard_redis.h"
#include "mlg_conffile.h"
#include "mlg_gcra.h"


#define NGX_HTTP_ML_GUARD_REDIS_BACKOFF_MIN  100
#define NGX_HTTP_ML_GUARD_REDIS_BACKOFF_MAX  3000


/* a batch's limits on what the worker buffers until the end of the turn */
#define NGX_HTTP_ML_GUARD_REDIS_BATCH_KEYS   512
#define NGX_HTTP_ML_GUARD_REDIS_BATCH_BYTES  (32 * 1024)
/* how long a batch may wait for more checks while the worker is busy: event
 * loop turns, and milliseconds since it opened */
#define NGX_HTTP_ML_GUARD_REDIS_HOLD_TURNS   64
#define NGX_HTTP_ML_GUARD_REDIS_HOLD_MSEC    2


/* a request waiting for its part of a batch's reply */
typedef struct {
    ngx_http_ml_guard_redis_handler_pt   handler;  /* NULL: nobody waits */
    void                                *data;
    ngx_pool_cleanup_t                  *cleanup;
    uint16_t                             op;       /* its operation */
    uint16_t                             seq;      /* among the op's waiters */
} ngx_http_ml_guard_redis_waiter_t;


/* one operation of a batch, for one or more identical requests */
typedef struct {
    ngx_uint_t                           nvalues;  /* integers per request */
    ngx_uint_t                           same;     /* NGX_HTTP_ML_GUARD_REDIS_* */
    ngx_uint_t                           count;    /* requests */
    ngx_uint_t                           reply;    /* its first integer */
    ngx_uint_t                           counted;  /* sent as "cL ..": the
                                                    * reply adds k */
} ngx_http_ml_guard_redis_op_t;


/* one command sent to Redis: a batch of operations, or the probe */
typedef struct {
    ngx_event_t                          timer;
    ngx_uint_t                           probe;
    ngx_uint_t                           retried;
    ngx_uint_t                           finished; /* waiters were told */
    ngx_uint_t                           counted;  /* in mlg_redis.inflight */
    int                                  argc;
    const char                         **argv;
    size_t                              *argvlen;
    ngx_uint_t                           nvalues;
    ngx_uint_t                           nops;
    ngx_uint_t                           nwaiters;
    ngx_http_ml_guard_redis_op_t         ops[NGX_HTTP_ML_GUARD_REDIS_BATCH];
    ngx_http_ml_guard_redis_waiter_t     waiters[NGX_HTTP_ML_GUARD_REDIS_WAITERS];
} ngx_http_ml_guard_redis_cmd_t;


/* where an operation's keys and spec are in the batch's buffers */
typedef struct {
    uint32_t                             hash;     /* of keys and spec */
    uint32_t                             key;      /* first, in key_len */
    uint32_t                             nkeys;
    uint32_t                             keys_at;
    uint32_t                             keys_len;
    uint32_t                             spec_at;
    uint32_t                             spec_len;
} ngx_http_ml_guard_redis_slot_t;


/* the batch being filled during this event-loop turn */
typedef struct {
    ngx_http_ml_guard_redis_cmd_t       *cmd;
    ngx_event_t                          flush;    /* posted while cmd */
    ngx_msec_t                           opened;
    ngx_uint_t                           turns;    /* held for */
    ngx_uint_t                           seen;     /* waiters at the last
                                                    * turn's end */
    ngx_uint_t                           nkeys;
    size_t                               keys_used;
    size_t                               specs_used;
    ngx_http_ml_guard_redis_slot_t       slot[NGX_HTTP_ML_GUARD_REDIS_BATCH];
    size_t                               key_len[NGX_HTTP_ML_GUARD_REDIS_BATCH_KEYS];
    u_char                               keys[NGX_HTTP_ML_GUARD_REDIS_BATCH_BYTES];
    u_char                               specs[NGX_HTTP_ML_GUARD_REDIS_BATCH_BYTES];
} ngx_http_ml_guard_redis_batch_t;


typedef struct {
    ngx_http_ml_guard_redis_conf_t      *conf;
    redisAsyncContext                   *ac;
    ngx_uint_t                           up;
    ngx_msec_t                           backoff;
    ngx_event_t                          probe;
    char                                 sha[41];
    const char                          *script;
    size_t                               script_len;
    ngx_http_ml_guard_redis_batch_t      batch;
    ngx_uint_t                           inflight;  /* batches sent */
} ngx_http_ml_guard_redis_worker_t;


static ngx_int_t ngx_http_ml_guard_redis_connect(void);
static void ngx_http_ml_guard_redis_trip(const char *why, size_t len);
static void ngx_http_ml_guard_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_ml_guard_redis_probe_done(redisReply *reply);


static ngx_http_ml_guard_redis_worker_t  mlg_redis;


/* ---- configuration ---------------------------------------------------- */

static void
ngx_http_ml_guard_redis_wipe(void *data)
{
    ngx_str_t  *secret = data;

    ngx_explicit_memzero(secret->data, secret->len);
}


/*
 * password_file=FILE: the password read now (by the master, before it drops
 * privileges) from a file that only its owner may access; wiped from memory
 * with the configuration.  Messages name the file, never its content.
 */
static char *
ngx_http_ml_guard_redis_password_file(ngx_conf_t *cf, ngx_str_t *file,
    ngx_str_t *password)
{
    long                 n;
    char                 buf[MLG_CONFFILE_SECRET_BUF], err[NGX_MAX_PATH + 128];
    ngx_pool_cleanup_t  *cln;

    if (password->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "ml_guard_redis: password= and "
                           "password_file= are mutually exclusive");
        return NGX_CONF_ERROR;
    }

    if (ngx_conf_full_name(cf->cycle, file, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    n = mlg_conffile_read_secret((char *) file->data, buf, err, sizeof(err));
    if (n < 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ml_guard_redis: password_file %s", err);
        return NGX_CONF_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, sizeof(ngx_str_t));
    password->data = ngx_pnalloc(cf->pool, (size_t) n);
    if (cln == NULL || password->data == NULL) {
        ngx_explicit_memzero(buf, sizeof(buf));
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(password->data, buf, (size_t) n);
    password->len = (size_t) n;
    ngx_explicit_memzero(buf, sizeof(buf));

    *(ngx_str_t *) cln->data = *password;
    cln->handler = ngx_http_ml_guard_redis_wipe;

    return NGX_CONF_OK;
}


char *
ngx_http_ml_guard_redis_parse(ngx_conf_t *cf,
    ngx_http_ml_guard_redis_conf_t *rcf)
{
    ngx_str_t   *value, s, pwfile;
    ngx_url_t    u;
    ngx_uint_t   i;
    ngx_int_t    n;
    u_char      *p;

    if (rcf->address.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    ngx_str_null(&pwfile);

    rcf->address = value[1];
    rcf->timeout = 50;
    rcf->fail = NGX_HTTP_ML_GUARD_FAIL_LOCAL;
    rcf->db = -1;

    if (value[1].len > 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        if (value[1].data[5] != '/') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ml_guard_redis: \"%V\" needs an absolute path",
                               &value[1]);
            return NGX_CONF_ERROR;
        }
        rcf->unix_path.len = value[1].len - 5;
        rcf->unix_path.data = ngx_pnalloc(cf->pool, rcf->unix_path.len + 1);
        if (rcf->unix_path.data == NULL) {
            return NGX_CONF_ERROR;
        }
        ngx_memcpy(rcf->unix_path.data, value[1].data + 5,
                   rcf->unix_path.len);
        rcf->unix_path.data[rcf->unix_path.len] = '\0';

    } else {
        /* resolve names now: hiredis would resolve them blocking */
        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url = value[1];
        u.no_resolve = 0;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.no_port
            || u.naddrs == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "ml_guard_redis: invalid address \"%V\"%s%s "
                               "(use host:port or unix:/path)", &value[1],
                               u.err ? ": " : "", u.err ? u.err : "");
            return NGX_CONF_ERROR;
        }

        rcf->port = u.port;
        rcf->host.data = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (rcf->host.data == NULL) {
            return NGX_CONF_ERROR;
        }
        rcf->host.len = ngx_sock_ntop(u.addrs[0].sockaddr,
                                      u.addrs[0].socklen, rcf->host.data,
                                      NGX_SOCKADDR_STRLEN, 0);
        rcf->host.data[rcf->host.len] = '\0';
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;
            n = ngx_parse_time(&s, 0);
            if (n == NGX_ERROR || n <= 0) {
                goto invalid;
            }
            rcf->timeout = (ngx_msec_t) n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "fail=", 5) == 0) {
            p = value[i].data + 5;
            if (ngx_strcmp(p, "local") == 0) {
                rcf->fail = NGX_HTTP_ML_GUARD_FAIL_LOCAL;
            } else if (ngx_strcmp(p, "open") == 0) {
                rcf->fail = NGX_HTTP_ML_GUARD_FAIL_OPEN;
            } else if (ngx_strcmp(p, "closed") == 0) {
                rcf->fail = NGX_HTTP_ML_GUARD_FAIL_CLOSED;
            } else {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            rcf->password.data = value[i].data + 9;
            rcf->password.len = value[i].len - 9;
            if (rcf->password.len == 0) {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "password_file=", 14) == 0) {
            if (pwfile.data != NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "ml_guard_redis: "
                                   "password_file= given twice");
                return NGX_CONF_ERROR;
            }
            pwfile.data = value[i].data + 14;
            pwfile.len = value[i].len - 14;
            if (pwfile.len == 0) {
                goto invalid;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            rcf->db = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (rcf->db == NGX_ERROR || rcf->db > 65535) {
                goto invalid;
            }
            continue;
        }

        goto invalid;
    }

    if (pwfile.data != NULL) {
        return ngx_http_ml_guard_redis_password_file(cf, &pwfile,
                                                     &rcf->password);
    }

    return NGX_CONF_OK;

invalid:

    /* never echo a password back */
    if (ngx_strncmp(value[i].data, "password=", 9) == 0
        || ngx_strncmp(value[i].data, "password_file=", 14) == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "ml_guard_redis: empty %*s",
                           (size_t) value[i].len, value[i].data);
    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ml_guard_redis: invalid parameter \"%V\" "
                           "(expected timeout=TIME, fail=local|open|closed, "
                           "password=SECRET or password_file=FILE, db=N)",
                           &value[i]);
    }

    return NGX_CONF_ERROR;
}


/* ---- event loop adapter ----------------------------------------------- */

static void
ngx_http_ml_guard_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    redisAsyncHandleRead(c->data);
}


/* set while hiredis writes, so that a short write waits for epoll */
static ngx_uint_t  ngx_http_ml_guard_redis_flushing;


static void
ngx_http_ml_guard_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t  *c = ev->data;

    ngx_http_ml_guard_redis_flushing = 1;
    redisAsyncHandleWrite(c->data);
    ngx_http_ml_guard_redis_flushing = 0;
}


/* hiredis asks to watch or not the socket; level-triggered, see notes */
static void
ngx_http_ml_guard_redis_watch(ngx_event_t *ev, ngx_int_t event,
    ngx_uint_t on)
{
    if (on && !ev->active) {
        if (ngx_add_event(ev, event, NGX_LEVEL_EVENT) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                          "ml_guard: cannot watch the redis connection");
        }

    } else if (!on && ev->active) {
        ngx_del_event(ev, event, 0);
    }
}


static void
ngx_http_ml_guard_redis_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_http_ml_guard_redis_watch(c->read, NGX_READ_EVENT, 1);
}


static void
ngx_http_ml_guard_redis_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    ngx_http_ml_guard_redis_watch(c->read, NGX_READ_EVENT, 0);
}


/*
 * A new command: rather than asking epoll whether the connected socket is
 * writable (two epoll_ctl calls and one more loop turn per command), flush
 * at the end of this event-loop turn, in one write for every command the
 * turn produced.  Connecting, and writes that did not complete, still wait
 * for epoll.
 */
static void
ngx_http_ml_guard_redis_add_write(void *privdata)
{
    ngx_connection_t   *c = privdata;
    redisAsyncContext  *ac = c->data;

    if (!ngx_http_ml_guard_redis_flushing
        && ac != NULL && (ac->c.flags & REDIS_CONNECTED))
    {
        if (!c->write->posted) {
            ngx_post_event(c->write, &ngx_posted_events);
        }

        return;
    }

    ngx_http_ml_guard_redis_watch(c->write, NGX_WRITE_EVENT, 1);
}


static void
ngx_http_ml_guard_redis_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_http_ml_guard_redis_watch(c->write, NGX_WRITE_EVENT, 0);
}


/* hiredis is freeing the context (and will close the fd itself) */
static void
ngx_http_ml_guard_redis_cleanup(void *privdata)
{
    ngx_connection_t   *c = privdata;
    redisAsyncContext  *ac = c->data;

    if (c->read->active) {
        ngx_del_event(c->read, NGX_READ_EVENT, NGX_CLOSE_EVENT);
    }
    if (c->write->active) {
        ngx_del_event(c->write, NGX_WRITE_EVENT, NGX_CLOSE_EVENT);
    }
    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }
    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    c->fd = (ngx_socket_t) -1;
    ngx_free_connection(c);

    if (ac->c.flags & REDIS_CONNECTED) {
        ngx_http_ml_guard_gauge_add(MLG_GAUGE_REDIS_CONNECTED, -1);
    }

    if (mlg_redis.ac == ac) {
        /* lost, not dropped by us: the server closed or an I/O error */
        mlg_redis.ac = NULL;
        if (ac->errstr != NULL && ac->errstr[0] != '\0') {
            ngx_http_ml_guard_redis_trip(ac->errstr, ngx_strlen(ac->errstr));
        } else {
            ngx_http_ml_guard_redis_trip("connection closed", 17);
        }
    }
}


/* ---- commands --------------------------------------------------------- */

static void
ngx_http_ml_guard_redis_waiter_finish(ngx_http_ml_guard_redis_waiter_t *w,
    const long long *values, ngx_uint_t n, ngx_uint_t ahead)
{
    ngx_http_ml_guard_redis_handler_pt  handler;

    /* w is about to be freed or forgotten: the pool must not detach it */
    if (w->cleanup) {
        w->cleanup->handler = NULL;
        w->cleanup = NULL;
    }

    handler = w->handler;
    w->handler = NULL;

    if (handler) {
        handler(w->data, values, n, ahead);
    }
}


/* the reply fits the batch: one integer per value (and per count) */
static ngx_uint_t
ngx_http_ml_guard_redis_reply_valid(ngx_http_ml_guard_redis_cmd_t *cmd,
    redisReply *reply)
{
    long long                      k;
    ngx_uint_t                     i;
    ngx_http_ml_guard_redis_op_t  *op;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != cmd->nvalues)
    {
        return 0;
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
            return 0;
        }
    }

    for (i = 0; i < cmd->nops; i++) {
        op = &cmd->ops[i];

        if (op->counted) {
            k = reply->element[op->reply + op->nvalues]->integer;
            if (k < 0 || (unsigned long long) k > op->count) {
                return 0;
            }
        }
    }

    return 1;
}


/* tells everyone waiting on cmd: its part of reply, or NULL if failed */
static void
ngx_http_ml_guard_redis_cmd_finish(ngx_http_ml_guard_redis_cmd_t *cmd,
    redisReply *reply)
{
    long long                          values[MLG_GCRA_MAX_LIMITS];
    ngx_uint_t                         i, j, valid, ahead;
    redisReply                       **e;
    ngx_http_ml_guard_redis_op_t      *op;
    ngx_http_ml_guard_redis_waiter_t  *w;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    if (cmd->finished) {
        return;
    }

    cmd->finished = 1;

    if (cmd->probe) {
        ngx_http_ml_guard_redis_probe_done(reply);
        return;
    }

    valid = ngx_http_ml_guard_redis_reply_valid(cmd, reply);

    for (i = 0; i < cmd->nwaiters; i++) {
        w = &cmd->waiters[i];
        op = &cmd->ops[w->op];
        ahead = 0;

        if (valid) {
            e = &reply->element[op->reply];
            for (j = 0; j < op->nvalues; j++) {
                values[j] = e[j]->integer;
            }

            if (op->counted) {
                ahead = ngx_min(w->seq, (ngx_uint_t) e[j]->integer);
            }
        }

        ngx_http_ml_guard_redis_waiter_finish(w, valid ? values : NULL,
                                              op->nvalues, ahead);
    }
}


static void
ngx_http_ml_guard_redis_cmd_free(ngx_http_ml_guard_redis_cmd_t *cmd)
{
    ngx_http_ml_guard_redis_batch_t  *b = &mlg_redis.batch;

    if (cmd->counted && --mlg_redis.inflight == 0
        && b->cmd != NULL && !b->flush.posted)
    {
        /* the batch that filled while this one was out goes now */
        ngx_post_event(&b->flush, &ngx_posted_events);
    }

    if (cmd->argv) {
        ngx_free(cmd->argv);
    }

    ngx_free(cmd);
}


static void
ngx_http_ml_guard_redis_timeout(ngx_event_t *ev)
{
    ngx_http_ml_guard_redis_cmd_t  *cmd = ev->data;

    ngx_http_ml_guard_metric_add(MLG_METRIC_REDIS_TIMEOUTS, 1);

    ngx_http_ml_guard_redis_cmd_finish(cmd, NULL);

    /* cmd may be freed from here on: dropping the connection runs its
     * hiredis callback */
    ngx_http_ml_guard_redis_trip("command timed out",
                                 sizeof("command timed out") - 1);
}


static void
ngx_http_ml_guard_redis_detach(void *data)
{
    ngx_http_ml_guard_redis_waiter_t  *w = data;

    /* the request is going away; the batch still holds w */
    w->handler = NULL;
    w->data = NULL;
    w->cleanup = NULL;
}


static ngx_http_ml_guard_redis_cmd_t *
ngx_http_ml_guard_redis_cmd_new(void)
{
    ngx_http_ml_guard_redis_cmd_t  *cmd;

    cmd = ngx_alloc(sizeof(ngx_http_ml_guard_redis_cmd_t), ngx_cycle->log);
    if (cmd == NULL) {
        return NULL;
    }

    /* the ops are set as they are queued */
    ngx_memzero(cmd, offsetof(ngx_http_ml_guard_redis_cmd_t, ops));

    cmd->timer.handler = ngx_http_ml_guard_redis_timeout;
    cmd->timer.data = cmd;
    cmd->timer.log = ngx_cycle->log;

    return cmd;
}


/* cmd's argv: argc strings, with room for `bytes` bytes of them */
static u_char *
ngx_http_ml_guard_redis_cmd_argv(ngx_http_ml_guard_redis_cmd_t *cmd,
    int argc, size_t bytes)
{
    cmd->argv = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t)) + bytes,
                          ngx_cycle->log);
    if (cmd->argv == NULL) {
        return NULL;
    }

    cmd->argc = argc;
    cmd->argvlen = (size_t *) (cmd->argv + argc);

    return (u_char *) (cmd->argvlen + argc);
}


static ngx_int_t
ngx_http_ml_guard_redis_send(ngx_http_ml_guard_redis_cmd_t *cmd)
{
    if (mlg_redis.ac == NULL
        || redisAsyncCommandArgv(mlg_redis.ac, ngx_http_ml_guard_redis_reply,
                                 cmd, cmd->argc, cmd->argv, cmd->argvlen)
           != REDIS_OK)
    {
        return NGX_ERROR;
    }

    ngx_add_timer(&cmd->timer, mlg_redis.conf->timeout);

    return NGX_OK;
}


static void
ngx_http_ml_guard_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                     *reply = r;
    ngx_http_ml_guard_redis_cmd_t  *cmd = privdata;
    u_char                          why[128];
    size_t                          len;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
        && !cmd->retried && !cmd->finished)
    {
        /* script cache flushed (restart, SCRIPT FLUSH): EVAL loads it;
         * also when nobody waits (failure counts) */
        cmd->retried = 1;
        cmd->argv[0] = "EVAL";
        cmd->argvlen[0] = 4;
        cmd->argv[1] = mlg_redis.script;
        cmd->argvlen[1] = mlg_redis.script_len;

        if (cmd->timer.timer_set) {
            ngx_del_timer(&cmd->timer);
        }

        if (ac == mlg_redis.ac && ngx_http_ml_guard_redis_send(cmd) == NGX_OK)
        {
            return;
        }

        ngx_http_ml_guard_redis_cmd_finish(cmd, NULL);
        ngx_http_ml_guard_redis_cmd_free(cmd);
        return;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_http_ml_guard_metric_add(MLG_METRIC_REDIS_ERRORS, 1);

        len = ngx_snprintf(why, sizeof(why), "error reply: %*s",
                           (size_t) ngx_min(reply->len, 100), reply->str)
              - why;
        ngx_http_ml_guard_redis_cmd_finish(cmd, NULL);
        ngx_http_ml_guard_redis_cmd_free(cmd);

        if (ac == mlg_redis.ac) {
            ngx_http_ml_guard_redis_trip((char *) why, len);
        }
        return;
    }

    ngx_http_ml_guard_redis_cmd_finish(cmd, reply);
    ngx_http_ml_guard_redis_cmd_free(cmd);
}


/* sends this turn's batch as one EVALSHA */
static void
ngx_http_ml_guard_redis_flush(void)
{
    int                               argc;
    size_t                            bytes;
    u_char                           *p, *key, nkeys[NGX_INT_T_LEN];
    ngx_uint_t                        i, n;
    ngx_http_ml_guard_redis_op_t     *op;
    ngx_http_ml_guard_redis_cmd_t    *cmd;
    ngx_http_ml_guard_redis_slot_t   *slot;
    ngx_http_ml_guard_redis_batch_t  *b = &mlg_redis.batch;

    cmd = b->cmd;
    if (cmd == NULL) {
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "ml_guard redis: batch of %ui checks, %ui operations, "
                   "held %ui turns", cmd->nwaiters, cmd->nops, b->turns);

    b->cmd = NULL;
    b->turns = 0;
    b->seen = 0;
    if (b->flush.posted) {
        ngx_delete_posted_event(&b->flush);
    }

    n = ngx_sprintf(nkeys, "%ui", b->nkeys) - nkeys;
    argc = (int) (3 + b->nkeys + cmd->nops);
    /* and a count of up to 5 digits before each spec */
    bytes = n + b->keys_used + b->specs_used + 5 * cmd->nops;

    p = ngx_http_ml_guard_redis_cmd_argv(cmd, argc, bytes);

    if (p != NULL) {
        cmd->argv[0] = "EVALSHA";
        cmd->argvlen[0] = 7;
        cmd->argv[1] = mlg_redis.sha;
        cmd->argvlen[1] = 40;
        cmd->argv[2] = (const char *) p;
        cmd->argvlen[2] = n;
        p = ngx_cpymem(p, nkeys, n);

        argc = 3;
        key = b->keys;
        for (i = 0; i < b->nkeys; i++, argc++) {
            cmd->argv[argc] = (const char *) p;
            cmd->argvlen[argc] = b->key_len[i];
            p = ngx_cpymem(p, key, b->key_len[i]);
            key += b->key_len[i];
        }

        for (i = 0; i < cmd->nops; i++, argc++) {
            op = &cmd->ops[i];
            slot = &b->slot[i];

            op->reply = cmd->nvalues;
            cmd->nvalues += op->nvalues;

            cmd->argv[argc] = (const char *) p;

            op->counted = op->same == NGX_HTTP_ML_GUARD_REDIS_COUNT
                          && op->count > 1;

            if (op->counted) {
                /* "cL ..." and one more integer in the reply */
                p = ngx_sprintf(p, "%ui", op->count);
                cmd->nvalues++;
            }

            p = ngx_cpymem(p, b->specs + slot->spec_at, slot->spec_len);
            cmd->argvlen[argc] = p - (u_char *) cmd->argv[argc];
        }
    }

    b->nkeys = 0;
    b->keys_used = 0;
    b->specs_used = 0;

    if (p == NULL || !mlg_redis.up
        || ngx_http_ml_guard_redis_send(cmd) != NGX_OK)
    {
        /* the breaker opened since they were queued: fail= decides */
        ngx_http_ml_guard_redis_cmd_finish(cmd, NULL);
        ngx_http_ml_guard_redis_cmd_free(cmd);
        return;
    }

    cmd->counted = 1;
    mlg_redis.inflight++;
}


/*
 * The end of an event-loop turn with a batch waiting and none at Redis.
 * While the worker is still taking in checks (this turn added some), the
 * batch waits one more turn: on ngx_posted_next_events, whose turn polls
 * without blocking, so an idle worker sends it at once.  A busy one sends
 * fewer, larger batches; a script call costs Redis and the kernel about the
 * same whatever its size (docs/ratelimit.md).
 */
static void
ngx_http_ml_guard_redis_flush_handler(ngx_event_t *ev)
{
    ngx_http_ml_guard_redis_batch_t  *b = &mlg_redis.batch;

    if (b->cmd != NULL
        && b->cmd->nwaiters > b->seen
        && b->turns < NGX_HTTP_ML_GUARD_REDIS_HOLD_TURNS
        && ngx_current_msec - b->opened < NGX_HTTP_ML_GUARD_REDIS_HOLD_MSEC)
    {
        b->seen = b->cmd->nwaiters;
        b->turns++;
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    ngx_http_ml_guard_redis_flush();
}


/* an identical operation already in the batch, or NULL */
static ngx_http_ml_guard_redis_op_t *
ngx_http_ml_guard_redis_find(uint32_t hash, ngx_uint_t nkeys, ngx_str_t *keys,
    size_t keys_len, ngx_str_t *spec, ngx_uint_t same)
{
    u_char                           *k;
    ngx_uint_t                        i, j;
    ngx_http_ml_guard_redis_slot_t   *slot;
    ngx_http_ml_guard_redis_batch_t  *b = &mlg_redis.batch;

    for (i = 0; i < b->cmd->nops; i++) {
        slot = &b->slot[i];

        if (slot->hash != hash || slot->nkeys != nkeys
            || slot->keys_len != keys_len || slot->spec_len != spec->len
            || b->cmd->ops[i].same != same
            || ngx_memcmp(b->specs + slot->spec_at, spec->data, spec->len)
               != 0)
        {
            continue;
        }

        k = b->keys + slot->keys_at;

        for (j = 0; j < nkeys; j++) {
            if (b->key_len[slot->key + j] != keys[j].len
                || ngx_memcmp(k, keys[j].data, keys[j].len) != 0)
            {
                break;
            }
            k += keys[j].len;
        }

        if (j == nkeys) {
            return &b->cmd->ops[i];
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_ml_guard_redis_queue(ngx_pool_t *pool, ngx_uint_t nkeys,
    ngx_str_t *keys, ngx_str_t *spec, ngx_uint_t nvalues, ngx_uint_t same,
    ngx_http_ml_guard_redis_handler_pt handler, void *data)
{
    size_t                             bytes;
    uint32_t                           hash;
    ngx_uint_t                         i;
    ngx_pool_cleanup_t                *cln;
    ngx_http_ml_guard_redis_op_t      *op;
    ngx_http_ml_guard_redis_cmd_t     *cmd;
    ngx_http_ml_guard_redis_slot_t    *slot;
    ngx_http_ml_guard_redis_waiter_t  *w;
    ngx_http_ml_guard_redis_batch_t   *b = &mlg_redis.batch;

    if (!mlg_redis.up || mlg_redis.ac == NULL) {
        return NGX_DECLINED;
    }

    bytes = 0;
    for (i = 0; i < nkeys; i++) {
        bytes += keys[i].len;
    }

    if (nkeys > MLG_GCRA_MAX_LIMITS || nvalues > MLG_GCRA_MAX_LIMITS
        || bytes > NGX_HTTP_ML_GUARD_REDIS_BATCH_BYTES / 4
        || spec->len > NGX_HTTP_ML_GUARD_REDIS_BATCH_BYTES / 4)
    {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    /* the keys begin with a hash already ("mlg:{<hex>}:"): a few of its
     * bytes tell most operations apart */
    hash = (uint32_t) (nkeys ^ spec->len);
    if (nkeys) {
        hash ^= ngx_hash_key(keys[0].data, ngx_min(keys[0].len, 16));
    }

    op = NULL;
    cmd = b->cmd;

    if (cmd != NULL && same != NGX_HTTP_ML_GUARD_REDIS_ALONE
        && cmd->nwaiters < NGX_HTTP_ML_GUARD_REDIS_WAITERS)
    {
        op = ngx_http_ml_guard_redis_find(hash, nkeys, keys, bytes, spec,
                                          same);
    }

    if (op == NULL) {

        if (cmd != NULL
            && (cmd->nops == NGX_HTTP_ML_GUARD_REDIS_BATCH
                || cmd->nwaiters == NGX_HTTP_ML_GUARD_REDIS_WAITERS
                || b->nkeys + nkeys > NGX_HTTP_ML_GUARD_REDIS_BATCH_KEYS
                || b->keys_used + bytes > NGX_HTTP_ML_GUARD_REDIS_BATCH_BYTES
                || b->specs_used + spec->len
                   > NGX_HTTP_ML_GUARD_REDIS_BATCH_BYTES))
        {
            /* full: this one starts the next batch */
            ngx_http_ml_guard_redis_flush();

            if (!mlg_redis.up || mlg_redis.ac == NULL) {
                return NGX_DECLINED;
            }
        }

        if (b->cmd == NULL) {
            b->cmd = ngx_http_ml_guard_redis_cmd_new();
            if (b->cmd == NULL) {
                return NGX_ERROR;
            }

            b->opened = ngx_current_msec;

            if (mlg_redis.inflight == 0) {
                ngx_post_event(&b->flush, &ngx_posted_events);
            }
        }

        cmd = b->cmd;
        slot = &b->slot[cmd->nops];
        slot->hash = hash;
        slot->key = b->nkeys;
        slot->nkeys = nkeys;
        slot->keys_at = b->keys_used;
        slot->keys_len = bytes;
        slot->spec_at = b->specs_used;
        slot->spec_len = spec->len;

        for (i = 0; i < nkeys; i++) {
            b->key_len[b->nkeys++] = keys[i].len;
            ngx_memcpy(b->keys + b->keys_used, keys[i].data, keys[i].len);
            b->keys_used += keys[i].len;
        }

        ngx_memcpy(b->specs + b->specs_used, spec->data, spec->len);
        b->specs_used += spec->len;

        op = &cmd->ops[cmd->nops++];
        op->nvalues = nvalues;
        op->same = same;
        op->count = 0;
        op->counted = 0;
    }

    w = &cmd->waiters[cmd->nwaiters++];
    w->handler = handler;
    w->data = data;
    w->cleanup = cln;
    w->op = (uint16_t) (op - cmd->ops);
    w->seq = (uint16_t) op->count++;

    cln->handler = ngx_http_ml_guard_redis_detach;
    cln->data = w;

    return NGX_AGAIN;
}


ngx_uint_t
ngx_http_ml_guard_redis_available(void)
{
    return mlg_redis.up && mlg_redis.ac != NULL;
}


/* ---- breaker ---------------------------------------------------------- */

static const char *
ngx_http_ml_guard_redis_fail_name(void)
{
    switch (mlg_redis.conf->fail) {
    case NGX_HTTP_ML_GUARD_FAIL_OPEN:
        return "open (allow)";
    case NGX_HTTP_ML_GUARD_FAIL_CLOSED:
        return "closed (503)";
    default:
        return "local (per-gateway limits)";
    }
}


static void
ngx_http_ml_guard_redis_drop(void)
{
    redisAsyncContext  *ac = mlg_redis.ac;

    if (ac != NULL) {
        mlg_redis.ac = NULL;
        /* pending commands fail now; deferred if inside a hiredis callback */
        redisAsyncFree(ac);
    }
}


static void
ngx_http_ml_guard_redis_trip(const char *why, size_t len)
{
    ngx_msec_t  delay;

    if (mlg_redis.up) {
        mlg_redis.up = 0;
        ngx_http_ml_guard_gauge_add(MLG_GAUGE_REDIS_BREAKER_OPEN, 1);
        mlg_redis.backoff = NGX_HTTP_ML_GUARD_REDIS_BACKOFF_MIN;
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "ml_guard: redis %V unavailable: %*s; limits fail %s "
                      "until it answers again",
                      &mlg_redis.conf->address, len, why,
                      ngx_http_ml_guard_redis_fail_name());
    }

    ngx_http_ml_guard_redis_drop();

    if (mlg_redis.probe.timer_set || ngx_exiting || ngx_terminate) {
        return;
    }

    /* jitter: between half and all of the backoff */
    delay = mlg_redis.backoff / 2
            + (ngx_msec_t) ngx_random() % (mlg_redis.backoff / 2 + 1);
    mlg_redis.backoff = ngx_min(mlg_redis.backoff * 2,
                                NGX_HTTP_ML_GUARD_REDIS_BACKOFF_MAX);

    ngx_add_timer(&mlg_redis.probe, delay);
}


static void
ngx_http_ml_guard_redis_probe_done(redisReply *reply)
{
    if (reply == NULL || reply->type != REDIS_REPLY_STRING) {
        /* still down; trip() schedules the next probe */
        ngx_http_ml_guard_redis_trip("probe failed", 12);
        return;
    }

    mlg_redis.up = 1;
    mlg_redis.backoff = NGX_HTTP_ML_GUARD_REDIS_BACKOFF_MIN;
    ngx_http_ml_guard_gauge_add(MLG_GAUGE_REDIS_BREAKER_OPEN, -1);
    ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                  "ml_guard: redis %V available again; limits are shared",
                  &mlg_redis.conf->address);
}


static void
ngx_http_ml_guard_redis_probe(ngx_event_t *ev)
{
    u_char                         *p;
    ngx_http_ml_guard_redis_cmd_t  *cmd;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    if (ngx_http_ml_guard_redis_connect() != NGX_OK) {
        ngx_http_ml_guard_redis_trip("connect failed", 14);
        return;
    }

    cmd = ngx_http_ml_guard_redis_cmd_new();
    p = (cmd == NULL) ? NULL
                      : ngx_http_ml_guard_redis_cmd_argv(cmd, 3, 0);

    if (p != NULL) {
        cmd->probe = 1;
        cmd->argv[0] = "SCRIPT";
        cmd->argvlen[0] = 6;
        cmd->argv[1] = "LOAD";
        cmd->argvlen[1] = 4;
        cmd->argv[2] = mlg_redis.script;
        cmd->argvlen[2] = mlg_redis.script_len;
    }

    if (p == NULL || ngx_http_ml_guard_redis_send(cmd) != NGX_OK) {
        if (cmd) {
            ngx_http_ml_guard_redis_cmd_free(cmd);
        }
        ngx_http_ml_guard_redis_trip("probe not sent", 14);
    }
}


/* AUTH and SELECT replies */
static void
ngx_http_ml_guard_redis_setup_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply  *reply = r;
    u_char       why[160];
    size_t       len;

    if (reply == NULL || ac != mlg_redis.ac) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        len = ngx_snprintf(why, sizeof(why), "%s refused: %*s",
                           (char *) privdata,
                           (size_t) ngx_min(reply->len, 100), reply->str)
              - why;
        ngx_http_ml_guard_redis_trip((char *) why, len);
    }
}


static void
ngx_http_ml_guard_redis_on_connect(const redisAsyncContext *ac, int status)
{
    if (status == REDIS_OK) {
        ngx_http_ml_guard_metric_add(MLG_METRIC_REDIS_RECONNECTS, 1);
        ngx_http_ml_guard_gauge_add(MLG_GAUGE_REDIS_CONNECTED, 1);
        return;
    }

    /* a failed connect is followed by cleanup(), which trips the breaker */
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "ml_guard: redis connect failed: %s", ac->errstr);
}


static ngx_int_t
ngx_http_ml_guard_redis_connect(void)
{
    ngx_http_ml_guard_redis_conf_t  *rcf = mlg_redis.conf;
    redisAsyncContext               *ac;
    ngx_connection_t                *c;
    char                             db[16];

    ngx_http_ml_guard_redis_drop();

    if (rcf->unix_path.len) {
        ac = redisAsyncConnectUnix((char *) rcf->unix_path.data);
    } else {
        ac = redisAsyncConnect((char *) rcf->host.data, (int) rcf->port);
    }

    if (ac == NULL) {
        return NGX_ERROR;
    }

    if (ac->err) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                       "ml_guard: redis connect: %s", ac->errstr);
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    c = ngx_get_connection(ac->c.fd, ngx_cycle->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    c->data = ac;
    c->log = ngx_cycle->log;
    c->read->log = c->log;
    c->write->log = c->log;
    c->read->handler = ngx_http_ml_guard_redis_read_handler;
    c->write->handler = ngx_http_ml_guard_redis_write_handler;

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_ml_guard_redis_add_read;
    ac->ev.delRead = ngx_http_ml_guard_redis_del_read;
    ac->ev.addWrite = ngx_http_ml_guard_redis_add_write;
    ac->ev.delWrite = ngx_http_ml_guard_redis_del_write;
    ac->ev.cleanup = ngx_http_ml_guard_redis_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_ml_guard_redis_on_connect);

    mlg_redis.ac = ac;

    if (rcf->password.len) {
        if (redisAsyncCommand(ac, ngx_http_ml_guard_redis_setup_reply,
                              "AUTH", "AUTH %b", rcf->password.data,
                              rcf->password.len)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }
    }

    if (rcf->db >= 0) {
        ngx_snprintf((u_char *) db, sizeof(db), "%i%Z", rcf->db);
        if (redisAsyncCommand(ac, ngx_http_ml_guard_redis_setup_reply,
                              "SELECT", "SELECT %s", db)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }
    }

    /* the first write event completes the connect */
    ngx_http_ml_guard_redis_add_write(c);

    return NGX_OK;
}


/* ---- worker lifecycle ------------------------------------------------- */

ngx_int_t
ngx_http_ml_guard_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_ml_guard_redis_conf_t *rcf)
{
    ngx_memzero(&mlg_redis, sizeof(mlg_redis));

    if (rcf == NULL || rcf->address.len == 0
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    mlg_redis.conf = rcf;
    mlg_redis.script = mlg_ratelimit_script(&mlg_redis.script_len);
    if (mlg_ratelimit_script_sha1(mlg_redis.sha) != 0) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "ml_guard: cannot hash the rate-limit script");
        return NGX_ERROR;
    }

    mlg_redis.batch.flush.handler = ngx_http_ml_guard_redis_flush_handler;
    mlg_redis.batch.flush.log = cycle->log;

    mlg_redis.probe.handler = ngx_http_ml_guard_redis_probe;
    mlg_redis.probe.log = cycle->log;
    mlg_redis.probe.cancelable = 1;
    mlg_redis.backoff = NGX_HTTP_ML_GUARD_REDIS_BACKOFF_MIN;

    /* optimistic: requests use the connection while it is being made */
    mlg_redis.up = 1;

    if (ngx_http_ml_guard_redis_connect() != NGX_OK) {
        ngx_http_ml_guard_redis_trip("connect failed", 14);
    }

    return NGX_OK;
}


void
ngx_http_ml_guard_redis_exit_worker(ngx_cycle_t *cycle)
{
    if (mlg_redis.conf == NULL) {
        return;
    }

    if (mlg_redis.probe.timer_set) {
        ngx_del_timer(&mlg_redis.probe);
    }

    if (!mlg_redis.up) {
        /* the gauges are sums over live workers */
        ngx_http_ml_guard_gauge_add(MLG_GAUGE_REDIS_BREAKER_OPEN, -1);
    }

    mlg_redis.up = 0;

    /* a batch not sent yet fails (flush sees the breaker open) */
    ngx_http_ml_guard_redis_flush();

    ngx_http_ml_guard_redis_drop();
}
