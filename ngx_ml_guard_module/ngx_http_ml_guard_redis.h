/*
 * A Redis client: one non-blocking hiredis connection per worker, driven by
 * nginx's event loop, with per-command deadlines, reconnect with backoff
 * and jitter, and a circuit breaker.  Commands in, replies out; what the
 * commands mean is the caller's business.  See ngx_http_ml_guard_redis.c.
 */
#ifndef NGX_HTTP_ML_GUARD_REDIS_H
#define NGX_HTTP_ML_GUARD_REDIS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/async.h>

#include "ngx_http_ml_guard_module.h"


/* fail=: what the users of the connection do while it is down */
#define NGX_HTTP_ML_GUARD_FAIL_LOCAL   1
#define NGX_HTTP_ML_GUARD_FAIL_OPEN    2
#define NGX_HTTP_ML_GUARD_FAIL_CLOSED  3


/* ml_guard_redis: the main conf of ngx_http_ml_guard_redis_module */
typedef struct ngx_http_ml_guard_redis_conf_s  ngx_http_ml_guard_redis_conf_t;

struct ngx_http_ml_guard_redis_conf_s {
    ngx_str_t    address;     /* as written, for logs; empty: no Redis */
    ngx_str_t    host;        /* NUL-terminated; empty with unix: */
    ngx_int_t    port;
    ngx_str_t    unix_path;   /* NUL-terminated; empty for TCP */
    ngx_str_t    password;
    ngx_int_t    db;          /* -1: no SELECT */
    ngx_msec_t   timeout;     /* every command's deadline */
    ngx_uint_t   fail;        /* NGX_HTTP_ML_GUARD_FAIL_*, for the users */
};


/* A Lua script, opaque to the client: its text and SHA-1. */
typedef struct {
    const char  *text;
    size_t       len;
    char         sha[41];
} ngx_http_ml_guard_redis_script_t;


/*
 * A command's reply, or NULL when there is none (timeout, connection lost,
 * breaker opened, error reply).  Called exactly once per command sent, never
 * from inside ngx_http_ml_guard_redis_send(); reply is hiredis's, valid
 * during the call only.
 */
typedef void (*ngx_http_ml_guard_redis_handler_pt)(void *data,
    redisReply *reply);

/* The breaker opened (up 0, why: the cause) or closed again (up 1). */
typedef void (*ngx_http_ml_guard_redis_state_pt)(
    ngx_http_ml_guard_redis_conf_t *rcf, ngx_uint_t up, const char *why,
    size_t len);


extern ngx_module_t  ngx_http_ml_guard_redis_module;

/* ml_guard_redis is configured */
#define ngx_http_ml_guard_redis_set(rcf)  ((rcf)->address.len != 0)

/* Parses "ml_guard_redis ADDRESS [timeout=] [fail=] [password=|password_file=]
 * [db=]". */
char *ngx_http_ml_guard_redis_parse(ngx_conf_t *cf,
    ngx_http_ml_guard_redis_conf_t *rcf);

/* Sets s to the script text (kept by the caller) and its SHA-1. */
ngx_int_t ngx_http_ml_guard_redis_script_init(
    ngx_http_ml_guard_redis_script_t *s, const char *text, size_t len);

/*
 * Worker start: connects (when rcf is not NULL).  script (may be NULL) is
 * loaded on every connection; state is told of the breaker's changes.
 */
ngx_int_t ngx_http_ml_guard_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_ml_guard_redis_conf_t *rcf,
    ngx_http_ml_guard_redis_script_t *script,
    ngx_http_ml_guard_redis_state_pt state);
/* Worker stop: pending commands get their handler with NULL. */
void ngx_http_ml_guard_redis_exit_worker(ngx_cycle_t *cycle);

/*
 * Sends one command of argc arguments; with a script, "EVALSHA sha" and
 * then the arguments (numkeys, keys, args), resent once as EVAL on
 * NOSCRIPT.  argv, argvlen's array is copied; the strings must stay valid
 * until the handler runs.  NGX_OK: sent, the handler follows;
 * NGX_DECLINED: the breaker is open, nothing sent; NGX_ERROR.
 */
ngx_int_t ngx_http_ml_guard_redis_send(
    ngx_http_ml_guard_redis_script_t *script, int argc, const char **argv,
    const size_t *argvlen, ngx_http_ml_guard_redis_handler_pt handler,
    void *data);

/* 1 while Redis is considered available (breaker closed). */
ngx_uint_t ngx_http_ml_guard_redis_available(void);

#endif /* NGX_HTTP_ML_GUARD_REDIS_H */
