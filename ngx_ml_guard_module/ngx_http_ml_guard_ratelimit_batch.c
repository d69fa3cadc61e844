/*
 * The rate limits' batching of Redis checks.
 *
 * Checks are queued into a batch, sent as one call of the rate-limit script
 * (mlg_ratelimit.lua) at the end of the event-loop turn (held a few more
 * turns while turns keep adding checks), or, while an earlier batch is
 * still in flight, as soon as its reply arrives: under load each worker has
 * one batch at Redis and the next one filling, so batches grow with the
 * load.  Inside Redis a script call, and waking Redis at all, cost far more
 * than the arithmetic: one call per batch rather than per request is what
 * keeps a Redis limit cheap.  Identical operations share one entry of the
 * batch (NGX_HTTP_ML_GUARD_RL_SHARE, _COUNT).
 *
 * The Redis client (ngx_http_ml_guard_redis.c) sends the call, with its
 * deadline and breaker; the reply is split among the requests waiting.  A
 * request finalized while its reply is pending is detached by a pool
 * cleanup; the batch is freed when the client is done with it.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_ml_guard_ratelimit_batch.h"
#include "mlg_gcra.h"


/* a batch's limits on what the worker buffers until the end of the turn */
#define NGX_HTTP_ML_GUARD_RL_BATCH_KEYS   512
#define NGX_HTTP_ML_GUARD_RL_BATCH_BYTES  (32 * 1024)
/* how long a batch may wait for more checks while the worker is busy: event
 * loop turns, and milliseconds since it opened */
#define NGX_HTTP_ML_GUARD_RL_HOLD_TURNS   64
#define NGX_HTTP_ML_GUARD_RL_HOLD_MSEC    2


/* a request waiting for its part of a batch's reply */
typedef struct {
    ngx_http_ml_guard_rl_handler_pt      handler;  /* NULL: gone */
    void                                *data;
    ngx_pool_cleanup_t                  *cleanup;
    uint16_t                             op;       /* its operation */
    uint16_t                             seq;      /* among the op's waiters */
} ngx_http_ml_guard_rl_waiter_t;


/* one operation of a batch, for one or more identical requests */
typedef struct {
    ngx_uint_t                           nvalues;  /* integers per request */
    ngx_uint_t                           same;     /* NGX_HTTP_ML_GUARD_RL_* */
    ngx_uint_t                           count;    /* requests */
    ngx_uint_t                           reply;    /* its first integer */
    ngx_uint_t                           counted;  /* sent as "cL ..": the
                                                    * reply adds k */
} ngx_http_ml_guard_rl_op_t;


/* one script call: a batch of operations */
typedef struct {
    ngx_uint_t                           finished; /* waiters were told */
    void                                *args;     /* argv, argvlen, strings */
    ngx_uint_t                           nvalues;
    ngx_uint_t                           nops;
    ngx_uint_t                           nwaiters;
    ngx_http_ml_guard_rl_op_t            ops[NGX_HTTP_ML_GUARD_RL_BATCH];
    ngx_http_ml_guard_rl_waiter_t        waiters[NGX_HTTP_ML_GUARD_RL_WAITERS];
} ngx_http_ml_guard_rl_sent_t;


/* where an operation's keys and spec are in the batch's buffers */
typedef struct {
    uint32_t                             hash;     /* of keys and spec */
    uint32_t                             key;      /* first, in key_len */
    uint32_t                             nkeys;
    uint32_t                             keys_at;
    uint32_t                             keys_len;
    uint32_t                             spec_at;
    uint32_t                             spec_len;
} ngx_http_ml_guard_rl_slot_t;


/* the batch being filled during this event-loop turn */
typedef struct {
    ngx_http_ml_guard_rl_sent_t         *call;
    ngx_event_t                          flush;    /* posted while call */
    ngx_msec_t                           opened;
    ngx_uint_t                           turns;    /* held for */
    ngx_uint_t                           seen;     /* waiters at the last
                                                    * turn's end */
    ngx_uint_t                           nkeys;
    size_t                               keys_used;
    size_t                               specs_used;
    ngx_http_ml_guard_rl_slot_t          slot[NGX_HTTP_ML_GUARD_RL_BATCH];
    size_t                               key_len[NGX_HTTP_ML_GUARD_RL_BATCH_KEYS];
    u_char                               keys[NGX_HTTP_ML_GUARD_RL_BATCH_BYTES];
    u_char                               specs[NGX_HTTP_ML_GUARD_RL_BATCH_BYTES];
} ngx_http_ml_guard_rl_batch_t;


typedef struct {
    ngx_http_ml_guard_redis_script_t     script;
    ngx_http_ml_guard_rl_batch_t         batch;
    ngx_uint_t                           inflight;  /* batches sent */
} ngx_http_ml_guard_rl_worker_t;


static void ngx_http_ml_guard_rl_flush(void);


static ngx_http_ml_guard_rl_worker_t  mlg_rl;


static void
ngx_http_ml_guard_rl_waiter_finish(ngx_http_ml_guard_rl_waiter_t *w,
    const long long *values, ngx_uint_t n, ngx_uint_t ahead)
{
    ngx_http_ml_guard_rl_handler_pt  handler;

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
ngx_http_ml_guard_rl_reply_valid(ngx_http_ml_guard_rl_sent_t *call,
    redisReply *reply)
{
    long                        long                      k;
    ngx_uint_t                  i;
    ngx_http_ml_guard_rl_op_t  *op;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != call->nvalues)
    {
        return 0;
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER) {
            return 0;
        }
    }

    for (i = 0; i < call->nops; i++) {
        op = &call->ops[i];

        if (op->counted) {
            k = reply->element[op->reply + op->nvalues]->integer;
            if (k < 0 || (unsigned long long) k > op->count) {
                return 0;
            }
        }
    }

    return 1;
}


/* tells everyone waiting on call: its part of reply, or NULL if failed */
static void
ngx_http_ml_guard_rl_sent_finish(ngx_http_ml_guard_rl_sent_t *call,
    redisReply *reply)
{
    long                            long                          values[MLG_GCRA_MAX_LIMITS];
    ngx_uint_t                      i, j, valid, ahead;
    redisReply                    **e;
    ngx_http_ml_guard_rl_op_t      *op;
    ngx_http_ml_guard_rl_waiter_t  *w;

    if (call->finished) {
        return;
    }

    call->finished = 1;

    valid = ngx_http_ml_guard_rl_reply_valid(call, reply);

    for (i = 0; i < call->nwaiters; i++) {
        w = &call->waiters[i];
        op = &call->ops[w->op];
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

        ngx_http_ml_guard_rl_waiter_finish(w, valid ? values : NULL,
                                              op->nvalues, ahead);
    }
}


static void
ngx_http_ml_guard_rl_detach(void *data)
{
    ngx_http_ml_guard_rl_waiter_t  *w = data;

    /* the request is going away; the batch still holds w */
    w->handler = NULL;
    w->data = NULL;
    w->cleanup = NULL;
}


static ngx_http_ml_guard_rl_sent_t *
ngx_http_ml_guard_rl_sent_new(void)
{
    ngx_http_ml_guard_rl_sent_t  *call;

    call = ngx_alloc(sizeof(ngx_http_ml_guard_rl_sent_t), ngx_cycle->log);
    if (call == NULL) {
        return NULL;
    }

    /* the ops and waiters are set as they are queued */
    ngx_memzero(call, offsetof(ngx_http_ml_guard_rl_sent_t, ops));

    return call;
}


static void
ngx_http_ml_guard_rl_sent_free(ngx_http_ml_guard_rl_sent_t *call)
{
    if (call->args) {
        ngx_free(call->args);
    }

    ngx_free(call);
}


/* the script's reply to a batch sent, or NULL: no answer */
static void
ngx_http_ml_guard_rl_sent_reply(void *data, redisReply *reply)
{
    ngx_http_ml_guard_rl_sent_t   *call = data;
    ngx_http_ml_guard_rl_batch_t  *b = &mlg_rl.batch;

    ngx_http_ml_guard_rl_sent_finish(call, reply);
    ngx_http_ml_guard_rl_sent_free(call);

    if (--mlg_rl.inflight == 0 && b->call != NULL && !b->flush.posted) {
        /* the batch that filled while this one was out goes now */
        ngx_post_event(&b->flush, &ngx_posted_events);
    }
}


/* sends this turn's batch as one script call */
static void
ngx_http_ml_guard_rl_flush(void)
{
    int                            argc;
    size_t                         bytes;
    u_char                        *p, *key, nkeys[NGX_INT_T_LEN];
    ngx_int_t                      rc;
    ngx_uint_t                     i, n;
    const char                   **argv;
    size_t                        *argvlen;
    ngx_http_ml_guard_rl_op_t     *op;
    ngx_http_ml_guard_rl_sent_t   *call;
    ngx_http_ml_guard_rl_slot_t   *slot;
    ngx_http_ml_guard_rl_batch_t  *b = &mlg_rl.batch;

    call = b->call;
    if (call == NULL) {
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "ml_guard redis: batch of %ui checks, %ui operations, "
                   "held %ui turns", call->nwaiters, call->nops, b->turns);

    b->call = NULL;
    b->turns = 0;
    b->seen = 0;
    if (b->flush.posted) {
        ngx_delete_posted_event(&b->flush);
    }

    /* numkeys, the keys, one spec per operation */
    n = ngx_sprintf(nkeys, "%ui", b->nkeys) - nkeys;
    argc = (int) (1 + b->nkeys + call->nops);
    /* and a count of up to 5 digits before each spec */
    bytes = n + b->keys_used + b->specs_used + 5 * call->nops;

    call->args = ngx_alloc(argc * (sizeof(char *) + sizeof(size_t)) + bytes,
                           ngx_cycle->log);
    rc = NGX_ERROR;

    if (call->args != NULL) {
        argv = call->args;
        argvlen = (size_t *) (argv + argc);
        p = (u_char *) (argvlen + argc);

        argv[0] = (const char *) p;
        argvlen[0] = n;
        p = ngx_cpymem(p, nkeys, n);

        argc = 1;
        key = b->keys;
        for (i = 0; i < b->nkeys; i++, argc++) {
            argv[argc] = (const char *) p;
            argvlen[argc] = b->key_len[i];
            p = ngx_cpymem(p, key, b->key_len[i]);
            key += b->key_len[i];
        }

        for (i = 0; i < call->nops; i++, argc++) {
            op = &call->ops[i];
            slot = &b->slot[i];

            op->reply = call->nvalues;
            call->nvalues += op->nvalues;

            argv[argc] = (const char *) p;

            op->counted = op->same == NGX_HTTP_ML_GUARD_RL_COUNT
                          && op->count > 1;

            if (op->counted) {
                /* "cL ..." and one more integer in the reply */
                p = ngx_sprintf(p, "%ui", op->count);
                call->nvalues++;
            }

            p = ngx_cpymem(p, b->specs + slot->spec_at, slot->spec_len);
            argvlen[argc] = p - (u_char *) argv[argc];
        }

        rc = ngx_http_ml_guard_redis_send(&mlg_rl.script, argc, argv,
                                          argvlen, ngx_http_ml_guard_rl_sent_reply,
                                          call);
    }

    b->nkeys = 0;
    b->keys_used = 0;
    b->specs_used = 0;

    if (rc != NGX_OK) {
        /* the breaker opened since they were queued: fail= decides */
        ngx_http_ml_guard_rl_sent_finish(call, NULL);
        ngx_http_ml_guard_rl_sent_free(call);
        return;
    }

    mlg_rl.inflight++;
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
ngx_http_ml_guard_rl_flush_handler(ngx_event_t *ev)
{
    ngx_http_ml_guard_rl_batch_t  *b = &mlg_rl.batch;

    if (b->call != NULL
        && b->call->nwaiters > b->seen
        && b->turns < NGX_HTTP_ML_GUARD_RL_HOLD_TURNS
        && ngx_current_msec - b->opened < NGX_HTTP_ML_GUARD_RL_HOLD_MSEC)
    {
        b->seen = b->call->nwaiters;
        b->turns++;
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    ngx_http_ml_guard_rl_flush();
}


/* an identical operation already in the batch, or NULL */
static ngx_http_ml_guard_rl_op_t *
ngx_http_ml_guard_rl_find(uint32_t hash, ngx_uint_t nkeys, ngx_str_t *keys,
    size_t keys_len, ngx_str_t *spec, ngx_uint_t same)
{
    u_char                        *k;
    ngx_uint_t                     i, j;
    ngx_http_ml_guard_rl_slot_t   *slot;
    ngx_http_ml_guard_rl_batch_t  *b = &mlg_rl.batch;

    for (i = 0; i < b->call->nops; i++) {
        slot = &b->slot[i];

        if (slot->hash != hash || slot->nkeys != nkeys
            || slot->keys_len != keys_len || slot->spec_len != spec->len
            || b->call->ops[i].same != same
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
            return &b->call->ops[i];
        }
    }

    return NULL;
}


ngx_int_t
ngx_http_ml_guard_rl_queue(ngx_pool_t *pool, ngx_uint_t nkeys,
    ngx_str_t *keys, ngx_str_t *spec, ngx_uint_t nvalues, ngx_uint_t same,
    ngx_http_ml_guard_rl_handler_pt handler, void *data)
{
    size_t                          bytes;
    uint32_t                        hash;
    ngx_uint_t                      i;
    ngx_pool_cleanup_t             *cln;
    ngx_http_ml_guard_rl_op_t      *op;
    ngx_http_ml_guard_rl_sent_t    *call;
    ngx_http_ml_guard_rl_slot_t    *slot;
    ngx_http_ml_guard_rl_waiter_t  *w;
    ngx_http_ml_guard_rl_batch_t   *b = &mlg_rl.batch;

    if (!ngx_http_ml_guard_redis_available()) {
        return NGX_DECLINED;
    }

    bytes = 0;
    for (i = 0; i < nkeys; i++) {
        bytes += keys[i].len;
    }

    if (nkeys > MLG_GCRA_MAX_LIMITS || nvalues > MLG_GCRA_MAX_LIMITS
        || bytes > NGX_HTTP_ML_GUARD_RL_BATCH_BYTES / 4
        || spec->len > NGX_HTTP_ML_GUARD_RL_BATCH_BYTES / 4)
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
    call = b->call;

    if (call != NULL && same != NGX_HTTP_ML_GUARD_RL_ALONE
        && call->nwaiters < NGX_HTTP_ML_GUARD_RL_WAITERS)
    {
        op = ngx_http_ml_guard_rl_find(hash, nkeys, keys, bytes, spec,
                                          same);
    }

    if (op == NULL) {

        if (call != NULL
            && (call->nops == NGX_HTTP_ML_GUARD_RL_BATCH
                || call->nwaiters == NGX_HTTP_ML_GUARD_RL_WAITERS
                || b->nkeys + nkeys > NGX_HTTP_ML_GUARD_RL_BATCH_KEYS
                || b->keys_used + bytes > NGX_HTTP_ML_GUARD_RL_BATCH_BYTES
                || b->specs_used + spec->len
                   > NGX_HTTP_ML_GUARD_RL_BATCH_BYTES))
        {
            /* full: this one starts the next batch */
            ngx_http_ml_guard_rl_flush();

            if (!ngx_http_ml_guard_redis_available()) {
                return NGX_DECLINED;
            }
        }

        if (b->call == NULL) {
            b->call = ngx_http_ml_guard_rl_sent_new();
            if (b->call == NULL) {
                return NGX_ERROR;
            }

            b->opened = ngx_current_msec;

            if (mlg_rl.inflight == 0) {
                ngx_post_event(&b->flush, &ngx_posted_events);
            }
        }

        call = b->call;
        slot = &b->slot[call->nops];
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

        op = &call->ops[call->nops++];
        op->nvalues = nvalues;
        op->same = same;
        op->count = 0;
        op->counted = 0;
    }

    w = &call->waiters[call->nwaiters++];
    w->handler = handler;
    w->data = data;
    w->cleanup = cln;
    w->op = (uint16_t) (op - call->ops);
    w->seq = (uint16_t) op->count++;

    cln->handler = ngx_http_ml_guard_rl_detach;
    cln->data = w;

    return NGX_AGAIN;
}




/* ---- worker lifecycle ------------------------------------------------- */

static const char *
ngx_http_ml_guard_rl_fail_name(ngx_http_ml_guard_redis_conf_t *rcf)
{
    switch (rcf->fail) {
    case NGX_HTTP_ML_GUARD_FAIL_OPEN:
        return "open (allow)";
    case NGX_HTTP_ML_GUARD_FAIL_CLOSED:
        return "closed (503)";
    default:
        return "local (per-gateway limits)";
    }
}


static void
ngx_http_ml_guard_rl_redis_state(ngx_http_ml_guard_redis_conf_t *rcf,
    ngx_uint_t up, const char *why, size_t len)
{
    if (up) {
        ngx_log_error(NGX_LOG_WARN, ngx_cycle->log, 0,
                      "ml_guard: redis %V available again; limits are shared",
                      &rcf->address);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "ml_guard: redis %V unavailable: %*s; limits fail %s "
                  "until it answers again", &rcf->address, len, why,
                  ngx_http_ml_guard_rl_fail_name(rcf));
}


ngx_int_t
ngx_http_ml_guard_rl_batch_init_worker(ngx_cycle_t *cycle,
    ngx_http_ml_guard_redis_conf_t *rcf)
{
    const char  *text;
    size_t       len;

    ngx_memzero(&mlg_rl, sizeof(ngx_http_ml_guard_rl_worker_t));

    if (rcf == NULL) {
        return NGX_OK;
    }

    text = mlg_ratelimit_script(&len);

    if (ngx_http_ml_guard_redis_script_init(&mlg_rl.script, text, len)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                      "ml_guard: cannot hash the rate-limit script");
        return NGX_ERROR;
    }

    mlg_rl.batch.flush.handler = ngx_http_ml_guard_rl_flush_handler;
    mlg_rl.batch.flush.log = cycle->log;

    return ngx_http_ml_guard_redis_init_worker(cycle, rcf, &mlg_rl.script,
                                               ngx_http_ml_guard_rl_redis_state);
}


void
ngx_http_ml_guard_rl_batch_exit_worker(ngx_cycle_t *cycle)
{
    ngx_http_ml_guard_rl_sent_t  *call = mlg_rl.batch.call;

    if (call != NULL) {
        /* a batch not sent yet fails: fail= decides */
        mlg_rl.batch.call = NULL;
        if (mlg_rl.batch.flush.posted) {
            ngx_delete_posted_event(&mlg_rl.batch.flush);
        }
        ngx_http_ml_guard_rl_sent_finish(call, NULL);
        ngx_http_ml_guard_rl_sent_free(call);
    }

    ngx_http_ml_guard_redis_exit_worker(cycle);
}
