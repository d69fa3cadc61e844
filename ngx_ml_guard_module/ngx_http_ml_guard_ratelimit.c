/*
 * Rate limits and brute-force lockout (ml_guard_rate_limit,
 * ml_guard_auth_failures, ml_guard_limits_zone).
 *
 * Decisions are made by one Lua script in Redis (mlg_ratelimit.lua, GCRA on
 * Redis's clock) so that every gateway shares one budget per client; the
 * request waits for the reply without blocking the worker: checks are
 * batched into script calls (ngx_http_ml_guard_ratelimit_batch.c) sent by
 * the Redis client (ngx_http_ml_guard_redis.c).  While Redis cannot answer,
 * fail= decides: "local" runs the same arithmetic (mlg_gcra.c) in this
 * gateway's shared memory, "open" allows, "closed" answers 503.  Without
 * ml_guard_redis the limits are always local.
 */

#include "ngx_http_ml_guard_module.h"
#include "ngx_http_ml_guard_redis.h"
#include "ngx_http_ml_guard_ratelimit_batch.h"
#include "mlg_gcra.h"


#define NGX_HTTP_ML_GUARD_ZONE_NAME  "ml_guard_ratelimit"
#define NGX_HTTP_ML_GUARD_ZONE_SIZE  (10 * 1024 * 1024)


typedef struct {
    mlg_gcra_limit_t                 gcra;
    ngx_http_complex_value_t        *key;     /* NULL: principal, else address */
    ngx_str_t                        kind;    /* "key=..." as written */
    char                             id[48];
    ngx_str_t                        spec;    /* " T tau" for the script */
} ngx_http_ml_guard_limit_t;


typedef struct {
    ngx_array_t                     *limits;  /* of ngx_http_ml_guard_limit_t */
    mlg_gcra_limit_t                 failures;
    ngx_msec_t                       ban;
    ngx_flag_t                       failures_set;
    ngx_str_t                        failures_spec;  /* "F T tau ban" */
} ngx_http_ml_guard_ratelimit_conf_t;


typedef struct {
    ngx_shm_zone_t                  *zone;    /* local limits, NULL: none */
    size_t                           zone_size;  /* ml_guard_limits_zone */
} ngx_http_ml_guard_limits_main_conf_t;


typedef struct ngx_http_ml_guard_ratelimit_ctx_s
    ngx_http_ml_guard_ratelimit_ctx_t;


enum {
    MLG_RL_IDLE = 0,
    MLG_RL_WAITING,
    MLG_RL_ANSWERED
};


/* one Redis round trip of a request: the lockout check or the limits */
typedef struct {
    ngx_http_request_t                  *request;
    ngx_http_ml_guard_ratelimit_ctx_t   *rl;
    ngx_uint_t                           lockout;
    ngx_uint_t                           state;
    ngx_uint_t                           unavailable;
    mlg_gcra_result_t                    result;
} ngx_http_ml_guard_rl_call_t;


struct ngx_http_ml_guard_ratelimit_ctx_s {
    ngx_http_ml_guard_rl_call_t      lockout;
    ngx_http_ml_guard_rl_call_t      limit;

    /* the limits that apply (a key= that evaluates empty is skipped);
     * sized to the location's limits: most have one or two */
    ngx_uint_t                       n;
    mlg_gcra_limit_t                *gcra;
    ngx_str_t                       *keys;
    ngx_uint_t                      *conf_index;

    /* the lockout: one operation per request, once its credentials were
     * checked: "F" when one was refused, else "B" */
    ngx_uint_t                       failed;
    ngx_str_t                        lockout_keys[2];   /* fail count, ban */
};


/* shared memory for local limits: an rbtree of keys + LRU, as limit_req */

typedef struct {
    ngx_str_node_t                   sn;      /* sn.str points to data */
    ngx_queue_t                      queue;
    int64_t                          value;   /* TAT, or a ban's end */
    int64_t                          expire;  /* worthless from then on */
    u_char                           ban;     /* a full zone keeps it */
    u_char                           data[1];
} ngx_http_ml_guard_rl_node_t;


typedef struct {
    ngx_rbtree_t                     rbtree;
    ngx_rbtree_node_t                sentinel;
    ngx_queue_t                      lru;     /* most recent first */
} ngx_http_ml_guard_rl_shctx_t;


static ngx_shm_zone_t *ngx_http_ml_guard_rl_zone(ngx_conf_t *cf);
static char *ngx_http_ml_guard_rate_limit(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_ml_guard_auth_failures(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_ml_guard_limits_zone_size(ngx_conf_t *cf, void *post,
    void *data);
static void *ngx_http_ml_guard_limits_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_ml_guard_limits_init_main_conf(ngx_conf_t *cf,
    void *conf);
static void *ngx_http_ml_guard_limits_create_conf(ngx_conf_t *cf);
static char *ngx_http_ml_guard_limits_merge_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_ml_guard_limits_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_ml_guard_limits_init_process(ngx_cycle_t *cycle);
static void ngx_http_ml_guard_limits_exit_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_ml_guard_lockout_step(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx);
static ngx_int_t ngx_http_ml_guard_auth_failed(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx);
static ngx_int_t ngx_http_ml_guard_ratelimit_step(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx);


static ngx_conf_post_handler_pt  ngx_http_ml_guard_limits_zone_post =
    ngx_http_ml_guard_limits_zone_size;


static ngx_command_t  ngx_http_ml_guard_limits_commands[] = {

    { ngx_string("ml_guard_rate_limit"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_ml_guard_rate_limit,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_auth_failures"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE2,
      ngx_http_ml_guard_auth_failures,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("ml_guard_limits_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_ml_guard_limits_main_conf_t, zone_size),
      &ngx_http_ml_guard_limits_zone_post },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ml_guard_limits_module_ctx = {
    NULL,                                        /* preconfiguration */
    ngx_http_ml_guard_limits_init,               /* postconfiguration */

    ngx_http_ml_guard_limits_create_main_conf,   /* create main configuration */
    ngx_http_ml_guard_limits_init_main_conf,     /* init main configuration */

    NULL,                                        /* create server configuration */
    NULL,                                        /* merge server configuration */

    ngx_http_ml_guard_limits_create_conf,        /* create location configuration */
    ngx_http_ml_guard_limits_merge_conf          /* merge location configuration */
};


ngx_module_t  ngx_http_ml_guard_limits_module = {
    NGX_MODULE_V1,
    &ngx_http_ml_guard_limits_module_ctx,        /* module context */
    ngx_http_ml_guard_limits_commands,           /* module directives */
    NGX_HTTP_MODULE,                             /* module type */
    NULL,                                        /* init master */
    NULL,                                        /* init module */
    ngx_http_ml_guard_limits_init_process,       /* init process */
    NULL,                                        /* init thread */
    NULL,                                        /* exit thread */
    ngx_http_ml_guard_limits_exit_process,       /* exit process */
    NULL,                                        /* exit master */
    NGX_MODULE_V1_PADDING
};


/* ---- configuration ---------------------------------------------------- */

static void *
ngx_http_ml_guard_limits_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_ml_guard_limits_main_conf_t  *lmcf;

    lmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ml_guard_limits_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    /* set by ngx_pcalloc(): lmcf->zone = NULL; */

    lmcf->zone_size = NGX_CONF_UNSET_SIZE;

    return lmcf;
}


static char *
ngx_http_ml_guard_limits_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_ml_guard_limits_main_conf_t  *lmcf = conf;

    ngx_conf_init_size_value(lmcf->zone_size, NGX_HTTP_ML_GUARD_ZONE_SIZE);

    /* created by the first limit or lockout of the configuration */
    if (lmcf->zone != NULL) {
        lmcf->zone->shm.size = lmcf->zone_size;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_ml_guard_limits_zone_size(ngx_conf_t *cf, void *post, void *data)
{
    size_t  *sp = data;

    if (*sp < 8 * ngx_pagesize) {
        return "is too small (at least 8 pages: 32k)";
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_ml_guard_limits_create_conf(ngx_conf_t *cf)
{
    ngx_http_ml_guard_ratelimit_conf_t  *rlcf;

    rlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_ml_guard_ratelimit_conf_t));
    if (rlcf == NULL) {
        return NULL;
    }

    rlcf->limits = NGX_CONF_UNSET_PTR;
    rlcf->ban = NGX_CONF_UNSET_MSEC;
    rlcf->failures_set = NGX_CONF_UNSET;

    return rlcf;
}


static char *
ngx_http_ml_guard_limits_merge_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_ml_guard_ratelimit_conf_t  *p = parent;
    ngx_http_ml_guard_ratelimit_conf_t  *c = child;

    /* limits declared on a level replace the inherited ones, as limit_req */
    ngx_conf_merge_ptr_value(c->limits, p->limits, NULL);

    if (c->failures_set == NGX_CONF_UNSET) {
        c->failures = p->failures;
        c->ban = p->ban;
        c->failures_set = p->failures_set;
        c->failures_spec = p->failures_spec;
    }

    ngx_conf_merge_value(c->failures_set, c->failures_set, 0);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ml_guard_limits_init(ngx_conf_t *cf)
{
    if (ngx_http_ml_guard_add_step(cf, NGX_HTTP_ML_GUARD_LOCKOUT,
                                   ngx_http_ml_guard_lockout_step) != NGX_OK
        || ngx_http_ml_guard_add_step(cf, NGX_HTTP_ML_GUARD_LIMITS,
                                      ngx_http_ml_guard_ratelimit_step)
           != NGX_OK
        || ngx_http_ml_guard_on_auth_failure(cf,
                                             ngx_http_ml_guard_auth_failed)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_ml_guard_rl_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t               *shpool;
    ngx_http_ml_guard_rl_shctx_t  *sh;

    if (data) {
        /* reload: the same zone, same layout */
        shm_zone->data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        return NGX_OK;
    }

    sh = ngx_slab_alloc(shpool, sizeof(ngx_http_ml_guard_rl_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    ngx_rbtree_init(&sh->rbtree, &sh->sentinel, ngx_str_rbtree_insert_value);
    ngx_queue_init(&sh->lru);

    shpool->data = sh;
    shm_zone->data = sh;

    /* a full zone evicts first; what it then cannot store is logged by
     * ngx_http_ml_guard_rl_set() */
    shpool->log_nomem = 0;

    return NGX_OK;
}


/* the zone of local limits, shared by every location's limits */
static ngx_shm_zone_t *
ngx_http_ml_guard_rl_zone(ngx_conf_t *cf)
{
    ngx_str_t                              name = ngx_string(NGX_HTTP_ML_GUARD_ZONE_NAME);
    ngx_shm_zone_t                        *zone;
    ngx_http_ml_guard_limits_main_conf_t  *lmcf;

    lmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_ml_guard_limits_module);

    if (lmcf->zone != NULL) {
        return lmcf->zone;
    }

    /* sized at the end of http{} (ml_guard_limits_zone) */
    zone = ngx_shared_memory_add(cf, &name, 0,
                                 &ngx_http_ml_guard_limits_module);
    if (zone == NULL) {
        return NULL;
    }

    zone->init = ngx_http_ml_guard_rl_zone_init;

    lmcf->zone = zone;

    return zone;
}


/* RATE (and its burst) of both directives; burst -1: N at once */
static char *
ngx_http_ml_guard_rl_conf_rate(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_str_t *rate, int64_t burst, mlg_gcra_limit_t *lim)
{
    const char  *err;

    err = mlg_gcra_parse_rate((char *) rate->data, rate->len, lim);

    if (err == NULL) {
        /* N tolerated at once = a burst of N - 1 after the first */
        err = mlg_gcra_set_burst(lim, burst < 0 ? lim->count - 1
                                                : (uint64_t) burst);
    }

    if (err != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%V: invalid \"%V\": %s",
                           &cmd->name, rate, err);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_ml_guard_rate_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_ml_guard_ratelimit_conf_t  *rlcf = conf;

    ngx_str_t                           *value, s;
    ngx_uint_t                           i;
    uint64_t                             burst = 0;
    const char                          *err;
    ngx_http_ml_guard_limit_t           *lim;
    ngx_http_compile_complex_value_t     ccv;

    if (ngx_http_ml_guard_rl_zone(cf) == NULL) {
        return NGX_CONF_ERROR;
    }

    if (rlcf->limits == NGX_CONF_UNSET_PTR) {
        rlcf->limits = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_ml_guard_limit_t));
        if (rlcf->limits == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    if (rlcf->limits->nelts >= MLG_GCRA_MAX_LIMITS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "at most %d \"ml_guard_rate_limit\" per location",
                           MLG_GCRA_MAX_LIMITS);
        return NGX_CONF_ERROR;
    }

    lim = ngx_array_push(rlcf->limits);
    if (lim == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(lim, sizeof(ngx_http_ml_guard_limit_t));

    value = cf->args->elts;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "burst=", 6) == 0) {
            err = mlg_gcra_parse_uint((char *) value[i].data + 6,
                                      value[i].len - 6, &burst);
            if (err != NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "ml_guard_rate_limit: invalid \"%V\": %s",
                                   &value[i], err);
                return NGX_CONF_ERROR;
            }
            continue;
        }

        if (ngx_strncmp(value[i].data, "key=", 4) == 0) {
            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            if (s.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "ml_guard_rate_limit: empty key=");
                return NGX_CONF_ERROR;
            }

            /* hashed with the value: never equal to "principal"/"addr" */
            lim->kind = value[i];

            lim->key = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
            if (lim->key == NULL) {
                return NGX_CONF_ERROR;
            }

            ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
            ccv.cf = cf;
            ccv.value = &s;
            ccv.complex_value = lim->key;

            if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
                return NGX_CONF_ERROR;
            }
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ml_guard_rate_limit: invalid parameter \"%V\" "
                           "(expected burst=N or key=$VARIABLE)", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_ml_guard_rl_conf_rate(cf, cmd, &value[1], (int64_t) burst,
                                       &lim->gcra)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (mlg_gcra_limit_id(lim->id, sizeof(lim->id), &lim->gcra) < 0) {
        return NGX_CONF_ERROR;
    }

    lim->spec.data = ngx_pnalloc(cf->pool, 2 * (NGX_INT64_LEN + 1));
    if (lim->spec.data == NULL) {
        return NGX_CONF_ERROR;
    }

    lim->spec.len = ngx_sprintf(lim->spec.data, " %L %L",
                                lim->gcra.interval_us,
                                lim->gcra.tolerance_us)
                    - lim->spec.data;

    return NGX_CONF_OK;
}


static char *
ngx_http_ml_guard_auth_failures(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_ml_guard_ratelimit_conf_t  *rlcf = conf;

    ngx_str_t                           *value, s;
    ngx_int_t                            ban;

    if (rlcf->failures_set != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    if (ngx_http_ml_guard_rl_zone(cf) == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    if (ngx_http_ml_guard_rl_conf_rate(cf, cmd, &value[1], -1,
                                       &rlcf->failures)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (value[2].len <= 4 || ngx_strncmp(value[2].data, "ban=", 4) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ml_guard_auth_failures: expected ban=TIME, "
                           "not \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    s.data = value[2].data + 4;
    s.len = value[2].len - 4;
    ban = ngx_parse_time(&s, 0);

    if (ban == NGX_ERROR || ban <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "ml_guard_auth_failures: invalid ban time \"%V\"",
                           &s);
        return NGX_CONF_ERROR;
    }

    rlcf->ban = (ngx_msec_t) ban;
    rlcf->failures_set = 1;

    rlcf->failures_spec.data = ngx_pnalloc(cf->pool, 2 + 3 * (NGX_INT64_LEN + 1));
    if (rlcf->failures_spec.data == NULL) {
        return NGX_CONF_ERROR;
    }

    rlcf->failures_spec.len = ngx_sprintf(rlcf->failures_spec.data,
                                          "F %L %L %L",
                                          rlcf->failures.interval_us,
                                          rlcf->failures.tolerance_us,
                                          (int64_t) rlcf->ban)
                              - rlcf->failures_spec.data;

    return NGX_CONF_OK;
}


/* ---- worker lifecycle ------------------------------------------------- */

static ngx_int_t
ngx_http_ml_guard_limits_init_process(ngx_cycle_t *cycle)
{
    ngx_http_ml_guard_redis_conf_t  *rcf;

    if (cycle->conf_ctx[ngx_http_module.index] == NULL) {
        return NGX_OK;
    }

    rcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_ml_guard_redis_module);

    return ngx_http_ml_guard_rl_batch_init_worker(cycle,
                                                  ngx_http_ml_guard_redis_set(rcf)
                                                  ? rcf : NULL);
}


static void
ngx_http_ml_guard_limits_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_ml_guard_rl_batch_exit_worker(cycle);
}


/* ---- local limits in shared memory ------------------------------------ */

static int64_t
ngx_http_ml_guard_rl_now(void)
{
    ngx_time_t  *tp = ngx_timeofday();

    return (int64_t) tp->sec * MLG_GCRA_USEC + (int64_t) tp->msec * 1000;
}


static ngx_http_ml_guard_rl_node_t *
ngx_http_ml_guard_rl_lookup(ngx_http_ml_guard_rl_shctx_t *sh, ngx_str_t *key)
{
    return (ngx_http_ml_guard_rl_node_t *)
        ngx_str_rbtree_lookup(&sh->rbtree, key, ngx_crc32_short(key->data,
                                                                key->len));
}


static void
ngx_http_ml_guard_rl_delete(ngx_slab_pool_t *shpool,
    ngx_http_ml_guard_rl_shctx_t *sh, ngx_http_ml_guard_rl_node_t *node)
{
    ngx_queue_remove(&node->queue);
    ngx_rbtree_delete(&sh->rbtree, &node->sn.node);
    ngx_slab_free_locked(shpool, node);
}


/* the stored value, or 0 when absent or expired */
static int64_t
ngx_http_ml_guard_rl_get(ngx_http_ml_guard_rl_shctx_t *sh, ngx_str_t *key,
    int64_t now)
{
    ngx_http_ml_guard_rl_node_t  *node;

    node = ngx_http_ml_guard_rl_lookup(sh, key);

    return (node != NULL && node->expire > now) ? node->value : 0;
}


/*
 * Makes room in a full zone, as limit_req does: up to two expired keys, and
 * with force the least recently used live one too; a live ban is never
 * evicted (a client flooding the zone with keys would lift its own ban).
 */
static void
ngx_http_ml_guard_rl_expire(ngx_slab_pool_t *shpool,
    ngx_http_ml_guard_rl_shctx_t *sh, int64_t now, ngx_uint_t force)
{
    ngx_uint_t                    i, expired;
    ngx_queue_t                  *q, *prev;
    ngx_http_ml_guard_rl_node_t  *node;

    expired = 0;
    q = ngx_queue_last(&sh->lru);

    /* a bounded walk from the oldest end */
    for (i = 0; i < 8 && q != ngx_queue_sentinel(&sh->lru); i++) {
        prev = ngx_queue_prev(q);
        node = ngx_queue_data(q, ngx_http_ml_guard_rl_node_t, queue);

        if (node->expire <= now) {
            ngx_http_ml_guard_rl_delete(shpool, sh, node);
            if (++expired == 2) {
                return;
            }

        } else if (force && !node->ban) {
            ngx_http_ml_guard_rl_delete(shpool, sh, node);
            force = 0;

        } else if (!force) {
            /* fresher from here on */
            return;
        }

        q = prev;
    }
}


/* NGX_ERROR: the zone is full of what it must keep (logged) */
static ngx_int_t
ngx_http_ml_guard_rl_set(ngx_slab_pool_t *shpool,
    ngx_http_ml_guard_rl_shctx_t *sh, ngx_str_t *key, int64_t value,
    int64_t expire, int64_t now, ngx_uint_t ban)
{
    size_t                        size;
    ngx_http_ml_guard_rl_node_t  *node;

    node = ngx_http_ml_guard_rl_lookup(sh, key);

    if (node == NULL) {

        ngx_http_ml_guard_rl_expire(shpool, sh, now, 0);

        size = offsetof(ngx_http_ml_guard_rl_node_t, data) + key->len;

        node = ngx_slab_alloc_locked(shpool, size);

        if (node == NULL) {
            ngx_http_ml_guard_rl_expire(shpool, sh, now, 1);
            node = ngx_slab_alloc_locked(shpool, size);
        }

        if (node == NULL) {
            ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                          "ml_guard: could not allocate node in the "
                          "\"" NGX_HTTP_ML_GUARD_ZONE_NAME "\" zone "
                          "(ml_guard_limits_zone): request refused");
            return NGX_ERROR;
        }

        ngx_memcpy(node->data, key->data, key->len);
        node->sn.str.data = node->data;
        node->sn.str.len = key->len;
        node->sn.node.key = ngx_crc32_short(key->data, key->len);
        ngx_rbtree_insert(&sh->rbtree, &node->sn.node);

    } else {
        ngx_queue_remove(&node->queue);
    }

    node->value = value;
    node->expire = expire;
    node->ban = (u_char) ban;
    ngx_queue_insert_head(&sh->lru, &node->queue);

    return NGX_OK;
}


enum {
    MLG_LOCAL_LIMIT = 0,   /* the limits of rl */
    MLG_LOCAL_BAN,         /* is the address banned */
    MLG_LOCAL_FAIL         /* the same, and if not, count a failure; ban
                            * when over */
};


/*
 * The fail=local counterpart of one script call, under the zone's lock.
 * NGX_ERROR: the zone could not store the outcome (refuse the request).
 */
static ngx_int_t
ngx_http_ml_guard_rl_local(ngx_shm_zone_t *zone,
    ngx_http_ml_guard_ratelimit_conf_t *rlcf, ngx_uint_t op,
    ngx_http_ml_guard_ratelimit_ctx_t *rl, mlg_gcra_result_t *res)
{
    int64_t                        now, until, tats[MLG_GCRA_MAX_LIMITS];
    ngx_str_t                     *fail_key, *ban_key;
    ngx_int_t                      rc;
    ngx_uint_t                     i;
    mlg_gcra_result_t              counted;
    ngx_slab_pool_t               *shpool;
    ngx_http_ml_guard_rl_node_t   *node;
    ngx_http_ml_guard_rl_shctx_t  *sh;

    shpool = (ngx_slab_pool_t *) zone->shm.addr;
    sh = zone->data;
    now = ngx_http_ml_guard_rl_now();

    rc = NGX_OK;

    ngx_shmtx_lock(&shpool->mutex);

    switch (op) {

    case MLG_LOCAL_LIMIT:
        for (i = 0; i < rl->n; i++) {
            tats[i] = ngx_http_ml_guard_rl_get(sh, &rl->keys[i], now);
        }

        if (mlg_gcra_check_all(rl->gcra, tats, (int) rl->n, now, res)) {
            for (i = 0; i < rl->n && rc == NGX_OK; i++) {
                /* a key is worthless once its TAT has passed */
                rc = ngx_http_ml_guard_rl_set(shpool, sh, &rl->keys[i],
                                              tats[i], tats[i], now, 0);
            }
        }
        break;

    default: /* MLG_LOCAL_BAN, MLG_LOCAL_FAIL */
        fail_key = &rl->lockout_keys[0];
        ban_key = &rl->lockout_keys[1];

        until = ngx_http_ml_guard_rl_get(sh, ban_key, now);

        ngx_memzero(res, sizeof(mlg_gcra_result_t));
        res->allowed = until <= now;
        res->retry_after_us = res->allowed ? 0 : until - now;

        if (op == MLG_LOCAL_BAN || !res->allowed) {
            /* banned: a failure is not counted */
            break;
        }

        tats[0] = ngx_http_ml_guard_rl_get(sh, fail_key, now);
        mlg_gcra_check(&rlcf->failures, tats[0], now, &counted, &tats[1]);

        if (counted.allowed) {
            rc = ngx_http_ml_guard_rl_set(shpool, sh, fail_key, tats[1],
                                          tats[1], now, 0);
            break;
        }

        node = ngx_http_ml_guard_rl_lookup(sh, fail_key);
        if (node != NULL) {
            ngx_http_ml_guard_rl_delete(shpool, sh, node);
        }

        until = now + (int64_t) rlcf->ban * 1000;
        rc = ngx_http_ml_guard_rl_set(shpool, sh, ban_key, until, until, now,
                                      1);
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return rc;
}


/* ---- per request ------------------------------------------------------ */

static ngx_http_ml_guard_ratelimit_ctx_t *
ngx_http_ml_guard_rl_ctx(ngx_http_request_t *r, ngx_http_ml_guard_ctx_t *ctx)
{
    ngx_http_ml_guard_ratelimit_ctx_t  *rl;

    rl = ngx_http_get_module_ctx(r, ngx_http_ml_guard_limits_module);

    if (rl == NULL) {
        rl = ngx_pcalloc(r->pool, sizeof(ngx_http_ml_guard_ratelimit_ctx_t));
        if (rl == NULL) {
            return NULL;
        }

        rl->lockout.request = r;
        rl->lockout.rl = rl;
        rl->lockout.lockout = 1;
        rl->limit.request = r;
        rl->limit.rl = rl;

        ngx_http_set_ctx(r, rl, ngx_http_ml_guard_limits_module);
    }

    return rl;
}


/* the client address as bytes: 4 (IPv4), 16 (IPv6), none (unix socket) */
static void
ngx_http_ml_guard_rl_addr(ngx_http_request_t *r, ngx_str_t *addr)
{
    struct sockaddr_in   *sin;
#if (NGX_HAVE_INET6)
    struct sockaddr_in6  *sin6;
#endif

    switch (r->connection->sockaddr->sa_family) {

    case AF_INET:
        sin = (struct sockaddr_in *) r->connection->sockaddr;
        addr->data = (u_char *) &sin->sin_addr;
        addr->len = sizeof(sin->sin_addr);
        break;

#if (NGX_HAVE_INET6)
    case AF_INET6:
        sin6 = (struct sockaddr_in6 *) r->connection->sockaddr;
        addr->data = (u_char *) &sin6->sin6_addr;
        addr->len = sizeof(sin6->sin6_addr);
        break;
#endif

    default:
        ngx_str_set(addr, "");
        break;
    }
}


static ngx_int_t
ngx_http_ml_guard_rl_key(ngx_http_request_t *r, ngx_str_t *out,
    const char *kind, size_t kind_len, ngx_str_t *value, const char *suffix)
{
    int  n;

    out->data = ngx_pnalloc(r->pool, MLG_GCRA_KEY_MAX);
    if (out->data == NULL) {
        return NGX_ERROR;
    }

    n = mlg_ratelimit_key((char *) out->data, kind, kind_len, value->data,
                          value->len, suffix);
    if (n < 0) {
        return NGX_ERROR;
    }

    out->len = n;

    return NGX_OK;
}


/* the keys of the limits that apply to this request */
static ngx_int_t
ngx_http_ml_guard_rl_build(ngx_http_request_t *r,
    ngx_http_ml_guard_ratelimit_conf_t *rlcf, ngx_http_ml_guard_ctx_t *ctx,
    ngx_http_ml_guard_ratelimit_ctx_t *rl)
{
    u_char                     *p;
    ngx_str_t                   value, addr, principal_kind;
    ngx_uint_t                  i, n;
    const char                 *kind;
    size_t                      kind_len;
    ngx_http_ml_guard_limit_t  *lim;

    lim = rlcf->limits->elts;
    n = rlcf->limits->nelts;
    rl->n = 0;

    rl->gcra = ngx_palloc(r->pool, n * (sizeof(mlg_gcra_limit_t)
                                        + sizeof(ngx_str_t)
                                        + sizeof(ngx_uint_t)));
    if (rl->gcra == NULL) {
        return NGX_ERROR;
    }

    rl->keys = (ngx_str_t *) (rl->gcra + n);
    rl->conf_index = (ngx_uint_t *) (rl->keys + n);

    ngx_http_ml_guard_rl_addr(r, &addr);

    /*
     * A principal is a name within its method (and a JWT subject within its
     * issuer): the API key "svc" and a token with sub=svc are two clients.
     * "principal:METHOD" or "principal:jwt:LEN:ISSUER".
     */
    ngx_str_null(&principal_kind);

    if (ctx->principal.len) {
        principal_kind.data = ngx_pnalloc(r->pool,
                                          sizeof("principal:") - 1
                                          + ctx->auth_method.len
                                          + 2 + NGX_SIZE_T_LEN
                                          + ctx->auth_issuer.len);
        if (principal_kind.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_sprintf(principal_kind.data, "principal:%V",
                        &ctx->auth_method);

        if (ctx->auth_issuer.len) {
            p = ngx_sprintf(p, ":%uz:%V", ctx->auth_issuer.len,
                            &ctx->auth_issuer);
        }

        principal_kind.len = p - principal_kind.data;
    }

    for (i = 0; i < rlcf->limits->nelts; i++) {

        if (lim[i].key != NULL) {
            if (ngx_http_complex_value(r, lim[i].key, &value) != NGX_OK) {
                return NGX_ERROR;
            }

            if (value.len == 0) {
                /* as limit_req: an empty key is not limited */
                continue;
            }

            /* hashed with the value: $a and $b never share a budget */
            kind = (const char *) lim[i].kind.data;
            kind_len = lim[i].kind.len;

        } else if (ctx->principal.len) {
            value = ctx->principal;
            kind = (const char *) principal_kind.data;
            kind_len = principal_kind.len;

        } else {
            value = addr;
            kind = "addr";
            kind_len = sizeof("addr") - 1;
        }

        if (ngx_http_ml_guard_rl_key(r, &rl->keys[rl->n], kind, kind_len,
                                     &value, lim[i].id)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        rl->gcra[rl->n] = lim[i].gcra;
        rl->conf_index[rl->n] = i;
        rl->n++;
    }

    return NGX_OK;
}


/*
 * The script's answer for one call: per limit, how far the stored TAT was
 * ahead of Redis's clock; for the lockout, how long the ban has left.  The
 * decision from the same arithmetic with now = 0 is the script's own.
 */
static ngx_int_t
ngx_http_ml_guard_rl_result(ngx_http_ml_guard_rl_call_t *call,
    const long long *values, ngx_uint_t n, ngx_uint_t ahead)
{
    int64_t                             d[MLG_GCRA_MAX_LIMITS];
    ngx_uint_t                          i;
    mlg_gcra_result_t                  *res = &call->result;
    ngx_http_ml_guard_ratelimit_ctx_t  *rl = call->rl;

    if (!call->lockout && n != rl->n) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (values[i] < 0) {
            return NGX_ERROR;
        }
        d[i] = values[i];

        /* identical requests before this one in the batch, allowed */
        if (ahead) {
            d[i] += (int64_t) ahead * rl->gcra[i].interval_us;
        }
    }

    if (call->lockout) {
        /* B: the ban's time left; F: the same before it, and the count */
        if (n != (rl->failed ? 2 : 1)) {
            return NGX_ERROR;
        }

        ngx_memzero(res, sizeof(mlg_gcra_result_t));
        res->allowed = d[0] == 0;
        res->retry_after_us = d[0];
        res->reset_us = d[0];
        return NGX_OK;
    }

    mlg_gcra_check_all(rl->gcra, d, (int) n, 0, res);

    return NGX_OK;
}


static void
ngx_http_ml_guard_rl_reply(void *data, const long long *values, ngx_uint_t n,
    ngx_uint_t ahead)
{
    ngx_http_ml_guard_rl_call_t  *call = data;
    ngx_http_request_t           *r = call->request;

    call->state = MLG_RL_ANSWERED;

    if (values == NULL
        || ngx_http_ml_guard_rl_result(call, values, n, ahead) != NGX_OK)
    {
        call->unavailable = 1;
    }

    r->read_event_handler = ngx_http_block_reading;

    ngx_http_ml_guard_wake(r);
}


/* queues one script operation; NGX_AGAIN while waiting, NGX_OK when
 * unavailable */
static ngx_int_t
ngx_http_ml_guard_rl_call(ngx_http_request_t *r,
    ngx_http_ml_guard_rl_call_t *call, ngx_uint_t nkeys, ngx_str_t *keys,
    ngx_str_t *spec, ngx_uint_t nvalues, ngx_uint_t same)
{
    ngx_int_t  rc;

    rc = ngx_http_ml_guard_rl_queue(r->pool, nkeys, keys, spec, nvalues,
                                       same, ngx_http_ml_guard_rl_reply,
                                       call);

    if (rc == NGX_AGAIN) {
        call->state = MLG_RL_WAITING;
        /* notice a client that goes away while we wait */
        r->read_event_handler = ngx_http_test_reading;
        return NGX_AGAIN;
    }

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    call->state = MLG_RL_ANSWERED;
    call->unavailable = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ml_guard_rl_header(ngx_http_request_t *r, const char *name,
    int64_t n)
{
    ngx_str_t  v;

    v.data = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (v.data == NULL) {
        return NGX_ERROR;
    }

    v.len = ngx_sprintf(v.data, "%L", n) - v.data;

    return ngx_http_ml_guard_add_header(r, name, &v);
}


/* ml_guard_redis, or NULL: limits are local */
static ngx_http_ml_guard_redis_conf_t *
ngx_http_ml_guard_rl_redis(ngx_http_request_t *r)
{
    ngx_http_ml_guard_redis_conf_t  *rcf;

    rcf = ngx_http_get_module_main_conf(r, ngx_http_ml_guard_redis_module);

    return ngx_http_ml_guard_redis_set(rcf) ? rcf : NULL;
}


/*
 * Redis could not answer call: applies fail=.  NGX_DECLINED means "decide
 * locally" (fail=local, or no Redis at all); anything else is the step's
 * result.
 */
static ngx_int_t
ngx_http_ml_guard_rl_fail(ngx_http_request_t *r, ngx_http_ml_guard_ctx_t *ctx,
    ngx_http_ml_guard_redis_conf_t *rcf)
{
    /* without Redis the limits are local by design */
    switch (rcf ? rcf->fail : NGX_HTTP_ML_GUARD_FAIL_LOCAL) {

    case NGX_HTTP_ML_GUARD_FAIL_OPEN:
        return NGX_OK;

    case NGX_HTTP_ML_GUARD_FAIL_CLOSED:
        ctx->retry_after = 1;
        return ngx_http_ml_guard_deny(r, ctx, MLG_REASON_LIMITER_UNAVAILABLE,
                                      "the rate limiter is unavailable");

    default:
        return NGX_DECLINED;
    }
}


/*
 * Builds the keys and sends the limits of this request in one script call.
 * NGX_AGAIN: waiting; NGX_OK: answered (no limit applies, or Redis
 * unavailable: rl->limit.unavailable).
 */
static ngx_int_t
ngx_http_ml_guard_rl_send_limits(ngx_http_request_t *r,
    ngx_http_ml_guard_ratelimit_conf_t *rlcf, ngx_http_ml_guard_ctx_t *ctx,
    ngx_http_ml_guard_ratelimit_ctx_t *rl)
{
    u_char                     *p;
    ngx_str_t                   spec;
    ngx_uint_t                  i;
    ngx_http_ml_guard_limit_t  *lim;

    if (ngx_http_ml_guard_rl_build(r, rlcf, ctx, rl) != NGX_OK) {
        return NGX_ERROR;
    }

    if (rl->n == 0) {
        rl->limit.state = MLG_RL_ANSWERED;
        rl->limit.result.index = -1;
        return NGX_OK;
    }

    /* "L T1 tau1 T2 tau2 ..." of the limits that apply */
    lim = rlcf->limits->elts;

    spec.len = 1;
    for (i = 0; i < rl->n; i++) {
        spec.len += lim[rl->conf_index[i]].spec.len;
    }

    spec.data = ngx_pnalloc(r->pool, spec.len);
    if (spec.data == NULL) {
        return NGX_ERROR;
    }

    p = spec.data;
    *p++ = 'L';
    for (i = 0; i < rl->n; i++) {
        p = ngx_cpymem(p, lim[rl->conf_index[i]].spec.data,
                       lim[rl->conf_index[i]].spec.len);
    }

    /* identical requests in one batch are counted together */
    return ngx_http_ml_guard_rl_call(r, &rl->limit, rl->n, rl->keys, &spec,
                                     rl->n, NGX_HTTP_ML_GUARD_RL_COUNT);
}


/*
 * Sends the lockout operation of this request's address: a refused
 * credential is counted ("F"), in order with every other one at Redis, and
 * its outcome told only once counted; an accepted one (or none) checks the
 * ban ("B").  Identical ban checks in one batch share one answer: the
 * script gives it as of the end of the batch, after its failures.
 */
static ngx_int_t
ngx_http_ml_guard_rl_send_lockout(ngx_http_request_t *r,
    ngx_http_ml_guard_ratelimit_conf_t *rlcf, ngx_http_ml_guard_ctx_t *ctx,
    ngx_http_ml_guard_ratelimit_ctx_t *rl)
{
    ngx_str_t  addr, spec = ngx_string("B");

    ngx_http_ml_guard_rl_addr(r, &addr);

    if (ngx_http_ml_guard_rl_key(r, &rl->lockout_keys[0], "addr", 4, &addr,
                                 "af")
        != NGX_OK
        || ngx_http_ml_guard_rl_key(r, &rl->lockout_keys[1], "addr", 4, &addr,
                                    "ban")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!rl->failed) {
        return ngx_http_ml_guard_rl_call(r, &rl->lockout, 1,
                                         &rl->lockout_keys[1], &spec, 1,
                                         NGX_HTTP_ML_GUARD_RL_SHARE);
    }

    return ngx_http_ml_guard_rl_call(r, &rl->lockout, 2, rl->lockout_keys,
                                     &rlcf->failures_spec, 2,
                                     NGX_HTTP_ML_GUARD_RL_ALONE);
}


/*
 * Drives one decision (the lockout check or the limits) through Redis or,
 * when Redis can't answer, per fail=.  NGX_DONE: the result is in
 * call->result; anything else is the step's return value.
 */
static ngx_int_t
ngx_http_ml_guard_rl_decide(ngx_http_request_t *r,
    ngx_http_ml_guard_ratelimit_conf_t *rlcf, ngx_http_ml_guard_ctx_t *ctx,
    ngx_uint_t lockout, ngx_http_ml_guard_ratelimit_ctx_t **rlp)
{
    ngx_int_t                              rc;
    ngx_http_ml_guard_rl_call_t           *call;
    ngx_http_ml_guard_redis_conf_t        *rcf;
    ngx_http_ml_guard_limits_main_conf_t  *lmcf;
    ngx_http_ml_guard_ratelimit_ctx_t     *rl;

    rl = ngx_http_ml_guard_rl_ctx(r, ctx);
    if (rl == NULL) {
        return NGX_ERROR;
    }

    *rlp = rl;
    call = lockout ? &rl->lockout : &rl->limit;

    if (call->state == MLG_RL_WAITING) {
        return NGX_AGAIN;
    }

    if (call->state == MLG_RL_IDLE) {
        rc = lockout
             ? ngx_http_ml_guard_rl_send_lockout(r, rlcf, ctx, rl)
             : ngx_http_ml_guard_rl_send_limits(r, rlcf, ctx, rl);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (call->unavailable) {
        rcf = ngx_http_ml_guard_rl_redis(r);

        rc = ngx_http_ml_guard_rl_fail(r, ctx, rcf);

        if (!lockout && rcf != NULL) {
            ngx_http_ml_guard_metric_add(rc == NGX_DECLINED
                                         ? MLG_METRIC_RATELIMIT_LOCAL
                                         : rc == NGX_OK
                                           ? MLG_METRIC_RATELIMIT_OPEN
                                           : MLG_METRIC_RATELIMIT_UNAVAILABLE,
                                         1);
        }

        if (rc != NGX_DECLINED) {
            return rc;
        }

        lmcf = ngx_http_get_module_main_conf(r,
                                             ngx_http_ml_guard_limits_module);

        if (ngx_http_ml_guard_rl_local(lmcf->zone, rlcf,
                                       !lockout ? MLG_LOCAL_LIMIT
                                       : rl->failed ? MLG_LOCAL_FAIL
                                       : MLG_LOCAL_BAN,
                                       rl, &call->result)
            != NGX_OK)
        {
            ctx->retry_after = 1;
            return ngx_http_ml_guard_deny(r, ctx,
                                          MLG_REASON_LIMITER_UNAVAILABLE,
                                          "the rate limiter is unavailable");
        }
    }

    return NGX_DONE;
}


/*
 * The lockout of this request's address, once its credentials were checked
 * (failed: one was refused).  NGX_OK: go on (and answer a refusal 401);
 * NGX_AGAIN: waiting for Redis; else 429 locked_out, or fail=closed's 503.
 */
static ngx_int_t
ngx_http_ml_guard_rl_lockout(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_uint_t failed)
{
    ngx_int_t                            rc;
    mlg_gcra_result_t                   *res;
    ngx_http_ml_guard_ratelimit_ctx_t   *rl;
    ngx_http_ml_guard_ratelimit_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_limits_module);

    if (!rlcf->failures_set) {
        return NGX_OK;
    }

    rl = ngx_http_ml_guard_rl_ctx(r, ctx);
    if (rl == NULL) {
        return NGX_ERROR;
    }

    if (rl->lockout.state == MLG_RL_IDLE) {
        rl->failed = failed;
    }

    rc = ngx_http_ml_guard_rl_decide(r, rlcf, ctx, 1, &rl);
    if (rc != NGX_DONE) {
        return rc;
    }

    res = &rl->lockout.result;

    if (res->allowed) {
        return NGX_OK;
    }

    ctx->retry_after = mlg_gcra_ceil_seconds(res->retry_after_us);

    return ngx_http_ml_guard_deny(r, ctx, MLG_REASON_LOCKED_OUT,
                                  "too many failed authentications from this "
                                  "address");
}


/* accepted credentials (or ml_guard_auth none): is the address banned */
static ngx_int_t
ngx_http_ml_guard_lockout_step(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx)
{
    return ngx_http_ml_guard_rl_lockout(r, ctx, 0);
}


/* none accepted: a refusal is counted, a missing one checks the ban */
static ngx_int_t
ngx_http_ml_guard_auth_failed(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx)
{
    return ngx_http_ml_guard_rl_lockout(r, ctx,
                                        ctx->auth_failure
                                        != MLG_REASON_MISSING_CREDENTIALS);
}


static ngx_int_t
ngx_http_ml_guard_ratelimit_step(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx)
{
    ngx_int_t                            rc;
    mlg_gcra_result_t                   *res;
    ngx_http_ml_guard_limit_t           *lim;
    ngx_http_ml_guard_ratelimit_ctx_t   *rl;
    ngx_http_ml_guard_ratelimit_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_ml_guard_limits_module);

    if (rlcf->limits == NULL || rlcf->limits->nelts == 0) {
        return NGX_OK;
    }

    rc = ngx_http_ml_guard_rl_decide(r, rlcf, ctx, 0, &rl);
    if (rc != NGX_DONE) {
        return rc;
    }

    res = &rl->limit.result;

    if (!rl->limit.unavailable
        || ngx_http_ml_guard_rl_redis(r) == NULL)
    {
        ngx_http_ml_guard_metric_add(res->allowed
                                     ? MLG_METRIC_RATELIMIT_ALLOWED
                                     : MLG_METRIC_RATELIMIT_LIMITED, 1);
    }

    if (res->index < 0 || (ngx_uint_t) res->index >= rl->n) {
        return NGX_OK;
    }

    lim = rlcf->limits->elts;
    lim = &lim[rl->conf_index[res->index]];

    ctx->ratelimit_remaining = res->remaining;

    /* IETF draft headers: the quota is what a fresh client gets at once */
    if (ngx_http_ml_guard_rl_header(r, "RateLimit-Limit",
                                    (int64_t) lim->gcra.burst + 1)
        != NGX_OK
        || ngx_http_ml_guard_rl_header(r, "RateLimit-Remaining",
                                       res->remaining)
           != NGX_OK
        || ngx_http_ml_guard_rl_header(r, "RateLimit-Reset",
                                       mlg_gcra_ceil_seconds(res->reset_us))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (res->allowed) {
        return NGX_OK;
    }

    ctx->retry_after = mlg_gcra_ceil_seconds(res->retry_after_us);

    return ngx_http_ml_guard_deny(r, ctx, MLG_REASON_RATE_LIMITED,
                                  "rate limit of %uL per %s exceeded",
                                  (uint64_t) lim->gcra.count,
                                  lim->gcra.unit == 's' ? "second"
                                  : lim->gcra.unit == 'm' ? "minute"
                                  : lim->gcra.unit == 'h' ? "hour" : "day");
}
