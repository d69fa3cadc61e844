/*
 * A Redis client for ml-guard, driven by nginx's event loop: commands in,
 * replies out.  It knows nothing of what its users store (the rate limits
 * batch their checks into script calls: ngx_http_ml_guard_ratelimit_redis.c).
 *
 * Each worker keeps one non-blocking hiredis connection.  Every command has
 * its own nginx timer (hiredis 0.14 has no async timeouts) and a callback
 * that runs exactly once, never from inside the call that sent it.  Scripts
 * are given by their user as opaque text: sent by EVALSHA, loaded with
 * SCRIPT LOAD on every connection, and resent once as EVAL when Redis
 * answers NOSCRIPT (restart, SCRIPT FLUSH).  A circuit breaker decides
 * whether commands are sent at all:
 *
 *   up    commands are sent.  Any failure (a command timing out, the
 *         connection lost, AUTH/SELECT refused, an error reply) opens the
 *         breaker: the connection is dropped, so every pending command
 *         fails at once instead of waiting for its own timeout.
 *   down  nothing is sent: the caller is told at once (NGX_DECLINED).  A
 *         probe (connect, AUTH, SELECT, SCRIPT LOAD) runs after a backoff
 *         (100 ms doubling to 3 s, with jitter so gateways don't probe in
 *         step); when it answers in time, the breaker closes.
 *
 * Each change of state goes to the user's state handler, which logs it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/evp.h>

#include "ngx_http_ml_guard_redis.h"
#include "mlg_conffile.h"


#define NGX_HTTP_ML_GUARD_REDIS_BACKOFF_MIN  100
#define NGX_HTTP_ML_GUARD_REDIS_BACKOFF_MAX  3000


/* one command sent to Redis */
typedef struct {
    ngx_event_t                          timer;
    ngx_http_ml_guard_redis_handler_pt   handler;
    void                                *data;
    ngx_http_ml_guard_redis_script_t    *script;   /* EVALSHA of it, or NULL */
    ngx_uint_t                           probe;
    ngx_uint_t                           retried;
    ngx_uint_t                           finished; /* the handler ran */
    int                                  argc;
    const char                         **argv;
    size_t                              *argvlen;
} ngx_http_ml_guard_redis_cmd_t;


typedef struct {
    ngx_http_ml_guard_redis_conf_t      *conf;
    ngx_http_ml_guard_redis_script_t    *script;   /* loaded by the probe */
    ngx_http_ml_guard_redis_state_pt     state;
    redisAsyncContext                   *ac;
    ngx_uint_t                           up;
    ngx_msec_t                           backoff;
    ngx_event_t                          probe;
} ngx_http_ml_guard_redis_worker_t;


static ngx_int_t ngx_http_ml_guard_redis_connect(void);
static void ngx_http_ml_guard_redis_trip(const char *why, size_t len);
static void ngx_http_ml_guard_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_ml_guard_redis_probe_done(redisReply *reply);


static ngx_http_ml_guard_redis_worker_t  mlg_redis;


static char *ngx_http_ml_guard_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void *ngx_http_ml_guard_redis_create_conf(ngx_conf_t *cf);


static ngx_command_t  ngx_http_ml_guard_redis_commands[] = {

    { ngx_string("ml_guard_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_ml_guard_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ml_guard_redis_module_ctx = {
    NULL,                                  /* preconfiguration */
    NULL,                                  /* postconfiguration */

    ngx_http_ml_guard_redis_create_conf,   /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


/* the connection is made and closed by its users (the limits) */
ngx_module_t  ngx_http_ml_guard_redis_module = {
    NGX_MODULE_V1,
    &ngx_http_ml_guard_redis_module_ctx,   /* module context */
    ngx_http_ml_guard_redis_commands,      /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static void *
ngx_http_ml_guard_redis_create_conf(ngx_conf_t *cf)
{
    ngx_http_ml_guard_redis_conf_t  *rcf;

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ml_guard_redis_conf_t));
    if (rcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rcf->address = { 0, NULL };    no Redis
     *
     * the rest is set by ngx_http_ml_guard_redis_parse()
     */

    return rcf;
}


/* ml_guard_redis ADDRESS [timeout=] [fail=] [password=|password_file=] [db=] */
static char *
ngx_http_ml_guard_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_ml_guard_redis_parse(cf, conf);
}


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

ngx_int_t
ngx_http_ml_guard_redis_script_init(ngx_http_ml_guard_redis_script_t *s,
    const char *text, size_t len)
{
    static             const char  hex[] = "0123456789abcdef";
    unsigned char      md[EVP_MAX_MD_SIZE];
    unsigned int       md_len, i;

    s->text = text;
    s->len = len;

    if (!EVP_Digest(text, len, md, &md_len, EVP_sha1(), NULL)
        || md_len != 20)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < md_len; i++) {
        s->sha[2 * i] = hex[md[i] >> 4];
        s->sha[2 * i + 1] = hex[md[i] & 0x0f];
    }

    s->sha[40] = '\0';

    return NGX_OK;
}


static void
ngx_http_ml_guard_redis_timeout(ngx_event_t *ev);


/* a command of argc strings, to be filled in */
static ngx_http_ml_guard_redis_cmd_t *
ngx_http_ml_guard_redis_cmd_new(int argc)
{
    ngx_http_ml_guard_redis_cmd_t  *cmd;

    cmd = ngx_alloc(sizeof(ngx_http_ml_guard_redis_cmd_t)
                    + argc * (sizeof(char *) + sizeof(size_t)),
                    ngx_cycle->log);
    if (cmd == NULL) {
        return NULL;
    }

    ngx_memzero(cmd, sizeof(ngx_http_ml_guard_redis_cmd_t));

    cmd->argc = argc;
    cmd->argv = (const char **) (cmd + 1);
    cmd->argvlen = (size_t *) (cmd->argv + argc);

    cmd->timer.handler = ngx_http_ml_guard_redis_timeout;
    cmd->timer.data = cmd;
    cmd->timer.log = ngx_cycle->log;

    return cmd;
}


/* runs the handler once: reply, or NULL when there is none */
static void
ngx_http_ml_guard_redis_cmd_finish(ngx_http_ml_guard_redis_cmd_t *cmd,
    redisReply *reply)
{
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

    cmd->handler(cmd->data, reply);
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


static ngx_int_t
ngx_http_ml_guard_redis_write(ngx_http_ml_guard_redis_cmd_t *cmd)
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
        && cmd->script != NULL
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0
        && !cmd->retried && !cmd->finished)
    {
        /* script cache flushed (restart, SCRIPT FLUSH): EVAL loads it */
        cmd->retried = 1;
        cmd->argv[0] = "EVAL";
        cmd->argvlen[0] = 4;
        cmd->argv[1] = cmd->script->text;
        cmd->argvlen[1] = cmd->script->len;

        if (cmd->timer.timer_set) {
            ngx_del_timer(&cmd->timer);
        }

        if (ac == mlg_redis.ac && ngx_http_ml_guard_redis_write(cmd) == NGX_OK)
        {
            return;
        }

        ngx_http_ml_guard_redis_cmd_finish(cmd, NULL);
        ngx_free(cmd);
        return;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_http_ml_guard_metric_add(MLG_METRIC_REDIS_ERRORS, 1);

        len = ngx_snprintf(why, sizeof(why), "error reply: %*s",
                           (size_t) ngx_min(reply->len, 100), reply->str)
              - why;
        ngx_http_ml_guard_redis_cmd_finish(cmd, NULL);
        ngx_free(cmd);

        if (ac == mlg_redis.ac) {
            ngx_http_ml_guard_redis_trip((char *) why, len);
        }
        return;
    }

    ngx_http_ml_guard_redis_cmd_finish(cmd, reply);
    ngx_free(cmd);
}


ngx_int_t
ngx_http_ml_guard_redis_send(ngx_http_ml_guard_redis_script_t *script,
    int argc, const char **argv, const size_t *argvlen,
    ngx_http_ml_guard_redis_handler_pt handler, void *data)
{
    int                             lead;
    ngx_http_ml_guard_redis_cmd_t  *cmd;

    if (!mlg_redis.up || mlg_redis.ac == NULL) {
        return NGX_DECLINED;
    }

    lead = script ? 2 : 0;

    cmd = ngx_http_ml_guard_redis_cmd_new(lead + argc);
    if (cmd == NULL) {
        return NGX_ERROR;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->script = script;

    if (script) {
        cmd->argv[0] = "EVALSHA";
        cmd->argvlen[0] = 7;
        cmd->argv[1] = script->sha;
        cmd->argvlen[1] = 40;
    }

    ngx_memcpy(cmd->argv + lead, argv, argc * sizeof(char *));
    ngx_memcpy(cmd->argvlen + lead, argvlen, argc * sizeof(size_t));

    if (ngx_http_ml_guard_redis_write(cmd) != NGX_OK) {
        ngx_free(cmd);
        return NGX_ERROR;
    }

    return NGX_OK;
}


ngx_uint_t
ngx_http_ml_guard_redis_available(void)
{
    return mlg_redis.up && mlg_redis.ac != NULL;
}


/* ---- breaker ---------------------------------------------------------- */

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

        if (mlg_redis.state) {
            mlg_redis.state(mlg_redis.conf, 0, why, len);
        }
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
    if (reply == NULL
        || reply->type != (mlg_redis.script ? REDIS_REPLY_STRING
                                            : REDIS_REPLY_STATUS))
    {
        /* still down; trip() schedules the next probe */
        ngx_http_ml_guard_redis_trip("probe failed", 12);
        return;
    }

    mlg_redis.up = 1;
    mlg_redis.backoff = NGX_HTTP_ML_GUARD_REDIS_BACKOFF_MIN;
    ngx_http_ml_guard_gauge_add(MLG_GAUGE_REDIS_BREAKER_OPEN, -1);

    if (mlg_redis.state) {
        mlg_redis.state(mlg_redis.conf, 1, NULL, 0);
    }
}


static void
ngx_http_ml_guard_redis_probe(ngx_event_t *ev)
{
    ngx_http_ml_guard_redis_cmd_t  *cmd;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    if (ngx_http_ml_guard_redis_connect() != NGX_OK) {
        ngx_http_ml_guard_redis_trip("connect failed", 14);
        return;
    }

    /* loading the script answers whether Redis is back, and is needed */
    cmd = ngx_http_ml_guard_redis_cmd_new(mlg_redis.script ? 3 : 1);

    if (cmd != NULL) {
        cmd->probe = 1;

        if (mlg_redis.script) {
            cmd->argv[0] = "SCRIPT";
            cmd->argvlen[0] = 6;
            cmd->argv[1] = "LOAD";
            cmd->argvlen[1] = 4;
            cmd->argv[2] = mlg_redis.script->text;
            cmd->argvlen[2] = mlg_redis.script->len;

        } else {
            cmd->argv[0] = "PING";
            cmd->argvlen[0] = 4;
        }
    }

    if (cmd == NULL || ngx_http_ml_guard_redis_write(cmd) != NGX_OK) {
        if (cmd) {
            ngx_free(cmd);
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
    ngx_http_ml_guard_redis_conf_t *rcf,
    ngx_http_ml_guard_redis_script_t *script,
    ngx_http_ml_guard_redis_state_pt state)
{
    ngx_memzero(&mlg_redis, sizeof(mlg_redis));

    if (rcf == NULL
        || (ngx_process != NGX_PROCESS_WORKER
            && ngx_process != NGX_PROCESS_SINGLE))
    {
        return NGX_OK;
    }

    mlg_redis.conf = rcf;
    mlg_redis.script = script;
    mlg_redis.state = state;

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

    /* pending commands fail (their handlers run with NULL) */
    ngx_http_ml_guard_redis_drop();
}
