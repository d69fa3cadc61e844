/*
 * Metrics: counters in one shared memory zone, so that all workers add to
 * the same numbers (and the numbers survive a reload), and a Prometheus
 * text-format handler (`ml_guard_metrics;` in a location).  The counters'
 * API (ngx_http_ml_guard_metric_add() and others) is in the core's header.
 */

#include "ngx_http_ml_guard_module.h"

#include <time.h>


#define MLG_LATENCY_BUCKETS  12


typedef struct {
    ngx_atomic_t  decisions[MLG_REASON_MAX];     /* [MLG_REASON_NONE]: allowed */
    ngx_atomic_t  counters[MLG_METRIC_MAX];
    ngx_atomic_t  gauges[MLG_GAUGE_MAX];
    ngx_atomic_t  latency[MLG_LATENCY_BUCKETS];  /* cumulative at render time */
    ngx_atomic_t  latency_sum_us;
    ngx_atomic_t  latency_count;
} ngx_http_ml_guard_metrics_t;


static ngx_int_t ngx_http_ml_guard_metrics_init_zone(ngx_conf_t *cf);
static ngx_int_t ngx_http_ml_guard_metrics_init_zone_data(
    ngx_shm_zone_t *shm_zone, void *data);
static char *ngx_http_ml_guard_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_ml_guard_metrics_handler(ngx_http_request_t *r);


static ngx_command_t  ngx_http_ml_guard_metrics_commands[] = {

    { ngx_string("ml_guard_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_ml_guard_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_ml_guard_metrics_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_ml_guard_metrics_init_zone,   /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_ml_guard_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_ml_guard_metrics_module_ctx, /* module context */
    ngx_http_ml_guard_metrics_commands,    /* module directives */
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



static ngx_http_ml_guard_metrics_t  *ngx_http_ml_guard_metrics_data;

/* upper bounds of the decision-latency buckets, in microseconds */
static const uint64_t  ngx_http_ml_guard_latency_le[MLG_LATENCY_BUCKETS] = {
    50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 1000000
};

static const char  *ngx_http_ml_guard_latency_le_text[MLG_LATENCY_BUCKETS] = {
    "0.00005", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005",
    "0.01", "0.025", "0.05", "0.1", "1"
};


static ngx_int_t
ngx_http_ml_guard_metrics_init_zone(ngx_conf_t *cf)
{
    ngx_str_t        name = ngx_string("ml_guard_metrics");
    ngx_shm_zone_t  *shm_zone;

    shm_zone = ngx_shared_memory_add(cf, &name, 8 * ngx_pagesize,
                                     &ngx_http_ml_guard_metrics_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_ml_guard_metrics_init_zone_data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_ml_guard_metrics_init_zone_data(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t              *shpool;
    ngx_http_ml_guard_metrics_t  *m;

    if (data) {
        /* a reload: keep counting where the old cycle left off */
        shm_zone->data = data;
        ngx_http_ml_guard_metrics_data = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        ngx_http_ml_guard_metrics_data = shpool->data;
        return NGX_OK;
    }

    m = ngx_slab_calloc(shpool, sizeof(ngx_http_ml_guard_metrics_t));
    if (m == NULL) {
        return NGX_ERROR;
    }

    shpool->data = m;
    shm_zone->data = m;
    ngx_http_ml_guard_metrics_data = m;

    return NGX_OK;
}


uint64_t
ngx_http_ml_guard_now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}


void
ngx_http_ml_guard_metric_add(ngx_http_ml_guard_metric_e metric, ngx_int_t n)
{
    if (ngx_http_ml_guard_metrics_data && metric < MLG_METRIC_MAX) {
        (void) ngx_atomic_fetch_add(&ngx_http_ml_guard_metrics_data->counters[metric],
                                    n);
    }
}


void
ngx_http_ml_guard_gauge_add(ngx_http_ml_guard_gauge_e gauge, ngx_int_t delta)
{
    if (ngx_http_ml_guard_metrics_data && gauge < MLG_GAUGE_MAX) {
        (void) ngx_atomic_fetch_add(&ngx_http_ml_guard_metrics_data->gauges[gauge],
                                    delta);
    }
}


void
ngx_http_ml_guard_metrics_upstream_failure(ngx_http_ml_guard_ctx_t *ctx)
{
    if (ngx_http_ml_guard_metrics_data && ctx->reason < MLG_REASON_MAX) {
        (void) ngx_atomic_fetch_add(
                         &ngx_http_ml_guard_metrics_data->decisions[ctx->reason], 1);
    }
}


void
ngx_http_ml_guard_metrics_decision(ngx_http_ml_guard_ctx_t *ctx)
{
    uint64_t                      us;
    ngx_uint_t                    i;
    ngx_http_ml_guard_metrics_t  *m;

    m = ngx_http_ml_guard_metrics_data;

    if (m == NULL || ctx->reason >= MLG_REASON_MAX) {
        return;
    }

    (void) ngx_atomic_fetch_add(&m->decisions[ctx->reason], 1);

    if (ctx->start_us == 0) {
        return;
    }

    us = ngx_http_ml_guard_now_us() - ctx->start_us;

    for (i = 0; i < MLG_LATENCY_BUCKETS; i++) {
        if (us <= ngx_http_ml_guard_latency_le[i]) {
            (void) ngx_atomic_fetch_add(&m->latency[i], 1);
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&m->latency_sum_us, (ngx_atomic_int_t) us);
    (void) ngx_atomic_fetch_add(&m->latency_count, 1);
}


static char *
ngx_http_ml_guard_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_ml_guard_metrics_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_ml_guard_metrics_handler(ngx_http_request_t *r)
{
    u_char                       *p, *end;
    size_t                        size;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_uint_t                    i;
    ngx_chain_t                   out;
    ngx_atomic_uint_t             cumulative;
    ngx_http_ml_guard_metrics_t  *m;

    static const char  *rl_outcome[] = {
        "allowed", "limited", "local", "open", "unavailable"
    };

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    m = ngx_http_ml_guard_metrics_data;
    if (m == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    size = 8192;
    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;
    end = b->end;

    p = ngx_slprintf(p, end,
        "# HELP ml_guard_requests_total Requests decided by ml-guard, by decision and reason.\n"
        "# TYPE ml_guard_requests_total counter\n"
        "ml_guard_requests_total{decision=\"allow\",reason=\"\"} %uA\n",
        m->decisions[MLG_REASON_NONE]);

    for (i = 1; i < MLG_REASON_UPSTREAM_UNAVAILABLE; i++) {
        p = ngx_slprintf(p, end,
            "ml_guard_requests_total{decision=\"deny\",reason=\"%s\"} %uA\n",
            ngx_http_ml_guard_reason_name(i), m->decisions[i]);
    }

    p = ngx_slprintf(p, end,
        "# HELP ml_guard_upstream_failures_total Allowed requests the model server failed (nginx's 502/503/504).\n"
        "# TYPE ml_guard_upstream_failures_total counter\n");

    for (i = MLG_REASON_UPSTREAM_UNAVAILABLE; i < MLG_REASON_MAX; i++) {
        p = ngx_slprintf(p, end,
            "ml_guard_upstream_failures_total{reason=\"%s\"} %uA\n",
            ngx_http_ml_guard_reason_name(i), m->decisions[i]);
    }

    p = ngx_slprintf(p, end,
        "# HELP ml_guard_decision_duration_seconds Time from the first policy step to the decision "
        "(includes reading the body and waiting for Redis).\n"
        "# TYPE ml_guard_decision_duration_seconds histogram\n");

    cumulative = 0;

    for (i = 0; i < MLG_LATENCY_BUCKETS; i++) {
        cumulative += m->latency[i];
        p = ngx_slprintf(p, end,
            "ml_guard_decision_duration_seconds_bucket{le=\"%s\"} %uA\n",
            ngx_http_ml_guard_latency_le_text[i], cumulative);
    }

    p = ngx_slprintf(p, end,
        "ml_guard_decision_duration_seconds_bucket{le=\"+Inf\"} %uA\n"
        "ml_guard_decision_duration_seconds_sum %uA.%06uA\n"
        "ml_guard_decision_duration_seconds_count %uA\n",
        m->latency_count, m->latency_sum_us / 1000000,
        m->latency_sum_us % 1000000, m->latency_count);

    p = ngx_slprintf(p, end,
        "# HELP ml_guard_ratelimit_checks_total Rate-limit checks by outcome.\n"
        "# TYPE ml_guard_ratelimit_checks_total counter\n");

    for (i = 0; i <= MLG_METRIC_RATELIMIT_UNAVAILABLE; i++) {
        p = ngx_slprintf(p, end,
            "ml_guard_ratelimit_checks_total{outcome=\"%s\"} %uA\n",
            rl_outcome[i], m->counters[i]);
    }

    p = ngx_slprintf(p, end,
        "# HELP ml_guard_redis_reconnects_total Connections (re)established to Redis.\n"
        "# TYPE ml_guard_redis_reconnects_total counter\n"
        "ml_guard_redis_reconnects_total %uA\n"
        "# HELP ml_guard_redis_failures_total Redis commands that failed, by kind.\n"
        "# TYPE ml_guard_redis_failures_total counter\n"
        "ml_guard_redis_failures_total{kind=\"error\"} %uA\n"
        "ml_guard_redis_failures_total{kind=\"timeout\"} %uA\n"
        "# HELP ml_guard_redis_connected_workers Workers with a live Redis connection.\n"
        "# TYPE ml_guard_redis_connected_workers gauge\n"
        "ml_guard_redis_connected_workers %A\n"
        "# HELP ml_guard_redis_breaker_open_workers Workers whose Redis circuit breaker is open.\n"
        "# TYPE ml_guard_redis_breaker_open_workers gauge\n"
        "ml_guard_redis_breaker_open_workers %A\n"
        "# HELP ml_guard_jwt_cache_total Verified-token cache lookups.\n"
        "# TYPE ml_guard_jwt_cache_total counter\n"
        "ml_guard_jwt_cache_total{result=\"hit\"} %uA\n"
        "ml_guard_jwt_cache_total{result=\"miss\"} %uA\n"
        "# HELP ml_guard_auth_failures_total Presented credentials that were refused.\n"
        "# TYPE ml_guard_auth_failures_total counter\n"
        "ml_guard_auth_failures_total %uA\n",
        m->counters[MLG_METRIC_REDIS_RECONNECTS],
        m->counters[MLG_METRIC_REDIS_ERRORS],
        m->counters[MLG_METRIC_REDIS_TIMEOUTS],
        (ngx_atomic_int_t) m->gauges[MLG_GAUGE_REDIS_CONNECTED],
        (ngx_atomic_int_t) m->gauges[MLG_GAUGE_REDIS_BREAKER_OPEN],
        m->counters[MLG_METRIC_JWT_CACHE_HITS],
        m->counters[MLG_METRIC_JWT_CACHE_MISSES],
        m->counters[MLG_METRIC_AUTH_FAILURES]);

    b->last = p;
    b->last_buf = 1;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "text/plain; version=0.0.4");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}
