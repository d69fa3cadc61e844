/*
 * One non-blocking hiredis connection per worker, driven by nginx's event
 * loop, with per-command deadlines, reconnect with backoff and jitter, and a
 * circuit breaker.  See ngx_http_ml_guard_redis.c.
 */
#ifndef NGX_HTTP_ML_GUARD_REDIS_H
#define NGX_HTTP_ML_GUARD_REDIS_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ml_guard_module.h"


#define NGX_HTTP_ML_GUARD_FAIL_LOCAL   1
#define NGX_HTTP_ML_GUARD_FAIL_OPEN    2
#define NGX_HTTP_ML_GUARD_FAIL_CLOSED  3


/* ml_guard_redis, and the shared-memory zone for local limits; allocated
 * by the first of ml_guard_redis / ml_guard_rate_limit /
 * ml_guard_auth_failures (address.len == 0: no Redis, limits are local). */
struct ngx_http_ml_guard_redis_conf_s {
    ngx_str_t    address;     /* as written, for logs */
    ngx_str_t    host;        /* NUL-terminated; empty with unix: */
    ngx_int_t    port;
    ngx_str_t    unix_path;   /* NUL-terminated; empty for TCP */
    ngx_str_t    password;
    ngx_int_t    db;          /* -1: no SELECT */
    ngx_msec_t   timeout;
    ngx_uint_t   fail;        /* NGX_HTTP_ML_GUARD_FAIL_* */
    ngx_shm_zone_t  *zone;    /* local limits (fail=local, or no Redis) */
};


/*
 * Called with one operation's integers from the script's reply (n of them),
 * or with NULL when Redis could not answer (timeout, connection lost,
 * breaker opened, error reply).  Never called synchronously from
 * ngx_http_ml_guard_redis_queue(), and never after the pool given there was
 * destroyed.
 */
typedef void (*ngx_http_ml_guard_redis_handler_pt)(void *data,
    const long long *values, ngx_uint_t n, ngx_uint_t ahead);


/* Parses "ml_guard_redis ADDRESS [timeout=] [fail=] [password=] [db=]". */
char *ngx_http_ml_guard_redis_parse(ngx_conf_t *cf,
    ngx_http_ml_guard_redis_conf_t *rcf);

/* Worker start/stop: connect to Redis (when configured). */
ngx_int_t ngx_http_ml_guard_redis_init_worker(ngx_cycle_t *cycle,
    ngx_http_ml_guard_redis_conf_t *rcf);
void ngx_http_ml_guard_redis_exit_worker(ngx_cycle_t *cycle);

/* Distinct operations, and requests waiting, one script call carries at
 * most; more wait for the next. */
#define NGX_HTTP_ML_GUARD_REDIS_BATCH    64
#define NGX_HTTP_ML_GUARD_REDIS_WAITERS  256

/* What an operation identical to one already in the batch (same keys, same
 * spec) does: */
#define NGX_HTTP_ML_GUARD_REDIS_ALONE  0  /* goes on its own (F) */
#define NGX_HTTP_ML_GUARD_REDIS_SHARE  1  /* a read: takes the same answer (B) */
#define NGX_HTTP_ML_GUARD_REDIS_COUNT  2  /* joins it: the script runs "cL .."
                                           * once for all c of them (L) */

/*
 * Queues one operation of the rate-limit script (mlg_ratelimit.lua): its
 * keys, its spec ("L T tau ..", "B", "F T tau ban") and the number of
 * integers it adds to the reply.  All operations queued in one event-loop
 * turn go to Redis as one EVALSHA at the end of the turn (retried once as
 * EVAL on NOSCRIPT), with one deadline.  Returns NGX_AGAIN when queued
 * (handler follows; may be NULL when nobody waits), NGX_DECLINED when Redis
 * is unavailable right now (breaker open: use the fail mode at once), or
 * NGX_ERROR.  A pool cleanup detaches the operation when pool goes away
 * first.
 *
 * With NGX_HTTP_ML_GUARD_REDIS_COUNT the handler gets the values the first
 * of the identical operations saw, and in `ahead` how many of those queued
 * before this one were allowed (each moved every limit one T ahead); 0
 * otherwise.
 */
ngx_int_t ngx_http_ml_guard_redis_queue(ngx_pool_t *pool, ngx_uint_t nkeys,
    ngx_str_t *keys, ngx_str_t *spec, ngx_uint_t nvalues, ngx_uint_t same,
    ngx_http_ml_guard_redis_handler_pt handler, void *data);

/* 1 while Redis is considered available (breaker closed). */
ngx_uint_t ngx_http_ml_guard_redis_available(void);

#endif /* NGX_HTTP_ML_GUARD_REDIS_H */
