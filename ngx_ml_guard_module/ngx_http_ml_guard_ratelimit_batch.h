/*
 * The rate limits' use of Redis: every check a worker makes in an event-loop
 * turn goes to Redis as one call of the rate-limit script
 * (mlg_ratelimit.lua) through the Redis client (ngx_http_ml_guard_redis.c).
 * See ngx_http_ml_guard_ratelimit_batch.c.
 */
#ifndef NGX_HTTP_ML_GUARD_RATELIMIT_BATCH_H
#define NGX_HTTP_ML_GUARD_RATELIMIT_BATCH_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ml_guard_redis.h"


/* Distinct operations, and requests waiting, one script call carries at
 * most; more wait for the next. */
#define NGX_HTTP_ML_GUARD_RL_BATCH    64
#define NGX_HTTP_ML_GUARD_RL_WAITERS  256

/* What an operation identical to one already in the batch (same keys, same
 * spec) does: */
#define NGX_HTTP_ML_GUARD_RL_ALONE  0  /* goes on its own (F) */
#define NGX_HTTP_ML_GUARD_RL_SHARE  1  /* a read: takes the same answer (B) */
#define NGX_HTTP_ML_GUARD_RL_COUNT  2  /* joins it: the script runs "cL .."
                                        * once for all c of them (L) */


/*
 * Called with one operation's integers from the script's reply (n of them),
 * or with NULL when Redis could not answer (timeout, connection lost,
 * breaker opened, error reply, a reply that does not fit).  Never called
 * synchronously from ngx_http_ml_guard_rl_queue(), and never after the pool
 * given there was destroyed.
 */
typedef void (*ngx_http_ml_guard_rl_handler_pt)(void *data,
    const long long *values, ngx_uint_t n, ngx_uint_t ahead);


/*
 * Queues one operation of the script: its keys, its spec ("L T tau ..",
 * "B", "F T tau ban") and the number of integers it adds to the reply.  All
 * operations queued in one event-loop turn go to Redis as one script call at
 * the end of the turn, with one deadline.  Returns NGX_AGAIN when queued
 * (handler follows), NGX_DECLINED when Redis is unavailable right now
 * (breaker open: use the fail mode at once), or NGX_ERROR.  A pool cleanup
 * detaches the operation when pool goes away first.
 *
 * With NGX_HTTP_ML_GUARD_RL_COUNT the handler gets the values the first of
 * the identical operations saw, and in `ahead` how many of those queued
 * before this one were allowed (each moved every limit one T ahead); 0
 * otherwise.
 */
ngx_int_t ngx_http_ml_guard_rl_queue(ngx_pool_t *pool, ngx_uint_t nkeys,
    ngx_str_t *keys, ngx_str_t *spec, ngx_uint_t nvalues, ngx_uint_t same,
    ngx_http_ml_guard_rl_handler_pt handler, void *data);

/* Worker start/stop: the Redis connection, with the script to load. */
ngx_int_t ngx_http_ml_guard_rl_batch_init_worker(ngx_cycle_t *cycle,
    ngx_http_ml_guard_redis_conf_t *rcf);
void ngx_http_ml_guard_rl_batch_exit_worker(ngx_cycle_t *cycle);

#endif /* NGX_HTTP_ML_GUARD_RATELIMIT_BATCH_H */
