/*
 * ngx_http_ml_guard_module: shared declarations of the nginx glue.
 *
 * The module is one access-phase handler running a small state machine kept
 * in the request ctx (see ngx_http_ml_guard_module.c).  Each policy feature
 * lives in its own glue file and plugs into that machine through the hooks
 * declared below:
 *
 *   feature      glue file                       conf / ctx
 *   API keys     ngx_http_ml_guard_module.c      fields of the loc conf
 *   mTLS         ngx_http_ml_guard_module.c      lcf->mtls_roles
 *   body cap     ngx_http_ml_guard_body.c        fields of the loc conf
 *   JWT          ngx_http_ml_guard_jwt.c         lcf->jwt  (opaque here)
 *   JSON/schema  ngx_http_ml_guard_schema.c      lcf->schema
 *   rate limits  ngx_http_ml_guard_ratelimit.c   lcf->ratelimit, mcf->redis, ctx->ratelimit
 *                ngx_http_ml_guard_ratelimit_batch.c (checks -> script calls)
 *                ngx_http_ml_guard_redis.c       (a Redis client)
 *   problems     ngx_http_ml_guard_problem.c     ctx->problem_*
 *   metrics      ngx_http_ml_guard_metrics.c     a shared memory zone
 *
 * Every feature's directives are in the one command table of the main file;
 * their handlers ("set" functions) live in the feature's file and receive
 * the ngx_http_ml_guard_loc_conf_t (or main conf) as "conf".
 *
 * Hook return convention for a step:
 *   NGX_OK          passed, go on with the next step
 *   NGX_AGAIN       waiting for an event (Redis reply): the feature calls
 *                   ngx_http_ml_guard_wake(r) when the result is in ctx;
 *                   the step function is then called again
 *   NGX_HTTP_xxx    denied: the value returned by ngx_http_ml_guard_deny()
 *   NGX_ERROR       internal error (500)
 */

#ifndef NGX_HTTP_ML_GUARD_MODULE_H
#define NGX_HTTP_ML_GUARD_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "mlg_apikeys.h"
#include "mlg_rolemap.h"


#define NGX_HTTP_ML_GUARD_AUTH_API_KEY  0x01
#define NGX_HTTP_ML_GUARD_AUTH_JWT      0x02
#define NGX_HTTP_ML_GUARD_AUTH_MTLS     0x04
#define NGX_HTTP_ML_GUARD_AUTH_NONE     0x80


/* Why a request was denied; the table in ngx_http_ml_guard_problem.c maps
 * each to its status, title and the "reason" string of the interface. */
typedef enum {
    MLG_REASON_NONE = 0,
    MLG_REASON_MISSING_CREDENTIALS,
    MLG_REASON_INVALID_API_KEY,
    MLG_REASON_INVALID_TOKEN,
    MLG_REASON_TOKEN_EXPIRED,
    MLG_REASON_TOKEN_NOT_YET_VALID,
    MLG_REASON_TOKEN_CLAIMS,
    MLG_REASON_INVALID_CLIENT_CERT,
    MLG_REASON_ROLE_DENIED,
    MLG_REASON_BODY_TOO_LARGE,
    MLG_REASON_MALFORMED_JSON,
    MLG_REASON_UNSUPPORTED_MEDIA_TYPE,
    MLG_REASON_SCHEMA_VIOLATION,
    MLG_REASON_RATE_LIMITED,
    MLG_REASON_LOCKED_OUT,
    MLG_REASON_LIMITER_UNAVAILABLE,
    /* not policy denials: the request was allowed, the model server failed */
    MLG_REASON_UPSTREAM_UNAVAILABLE,
    MLG_REASON_UPSTREAM_TIMEOUT,
    MLG_REASON_MAX
} ngx_http_ml_guard_reason_e;


/* Opaque per-feature structures, defined in the features' glue files. */
typedef struct ngx_http_ml_guard_jwt_conf_s        ngx_http_ml_guard_jwt_conf_t;
typedef struct ngx_http_ml_guard_schema_conf_s     ngx_http_ml_guard_schema_conf_t;
typedef struct ngx_http_ml_guard_ratelimit_conf_s  ngx_http_ml_guard_ratelimit_conf_t;
typedef struct ngx_http_ml_guard_redis_conf_s      ngx_http_ml_guard_redis_conf_t;
typedef struct ngx_http_ml_guard_ratelimit_ctx_s   ngx_http_ml_guard_ratelimit_ctx_t;


typedef struct {
    ngx_http_ml_guard_redis_conf_t      *redis;       /* ml_guard_redis */
    ngx_shm_zone_t                      *limits_zone; /* local limits */
} ngx_http_ml_guard_main_conf_t;


typedef struct {
    ngx_flag_t                           enable;          /* ml_guard */
    ngx_uint_t                           auth;            /* ml_guard_auth bits */
    ngx_uint_t                           auth_effective;  /* after merge */

    mlg_apikeys_t                       *api_keys;        /* ml_guard_api_keys */
    ngx_str_t                            api_keys_file;
    ngx_str_t                            api_key_header;  /* matched without case */

    mlg_rolemap_t                       *mtls_roles;      /* ml_guard_mtls_roles */

    ngx_array_t                         *roles;           /* of ngx_str_t */

    off_t                                max_body;        /* ml_guard_max_body */

    ngx_http_ml_guard_jwt_conf_t        *jwt;
    ngx_http_ml_guard_schema_conf_t     *schema;
    ngx_http_ml_guard_ratelimit_conf_t  *ratelimit;
} ngx_http_ml_guard_loc_conf_t;


typedef enum {
    MLG_STEP_START = 0,
    MLG_STEP_AUTH,
    MLG_STEP_LOCKOUT,      /* after AUTH: a credential's outcome is told
                            * only once the lockout has counted it */
    MLG_STEP_AUTHZ,
    MLG_STEP_RATELIMIT,
    MLG_STEP_BODY,
    MLG_STEP_BODY_WAIT,
    MLG_STEP_JSON,
    MLG_STEP_DONE
} ngx_http_ml_guard_step_e;


/* Counters in shared memory (ngx_http_ml_guard_metrics.c). */
typedef enum {
    MLG_METRIC_RATELIMIT_ALLOWED = 0,
    MLG_METRIC_RATELIMIT_LIMITED,
    MLG_METRIC_RATELIMIT_LOCAL,         /* decided by the fail=local fallback */
    MLG_METRIC_RATELIMIT_OPEN,          /* let through by fail=open */
    MLG_METRIC_RATELIMIT_UNAVAILABLE,   /* refused by fail=closed */
    MLG_METRIC_REDIS_RECONNECTS,
    MLG_METRIC_REDIS_ERRORS,
    MLG_METRIC_REDIS_TIMEOUTS,
    MLG_METRIC_JWT_CACHE_HITS,
    MLG_METRIC_JWT_CACHE_MISSES,
    MLG_METRIC_AUTH_FAILURES,
    MLG_METRIC_MAX
} ngx_http_ml_guard_metric_e;

/* Gauges: summed over workers (each adds +1/-1 on its own transitions). */
typedef enum {
    MLG_GAUGE_REDIS_CONNECTED = 0,      /* workers connected to Redis */
    MLG_GAUGE_REDIS_BREAKER_OPEN,       /* workers whose breaker is open */
    MLG_GAUGE_MAX
} ngx_http_ml_guard_gauge_e;


typedef struct {
    ngx_uint_t                           step;
    uint64_t                             start_us;        /* monotonic */

    /* who: set by ngx_http_ml_guard_set_principal() */
    ngx_str_t                            principal;
    ngx_str_t                            auth_method;     /* "api_key", "jwt", "mtls" */
    ngx_str_t                            auth_issuer;     /* jwt: the issuer required */
    ngx_http_ml_guard_reason_e           auth_failure;    /* refused, waiting for
                                                           * the lockout */
    ngx_str_t                            roles;           /* "a,b" */
    ngx_array_t                         *role_list;       /* of ngx_str_t */

    /* outcome */
    ngx_uint_t                           decision;        /* 0 none, 1 allow, 2 deny */
    ngx_http_ml_guard_reason_e           reason;
    ngx_uint_t                           status;
    ngx_str_t                            detail;
    void                                *errors;          /* json_t array, schema errors */
    time_t                               retry_after;     /* seconds, 429/503 */

    ngx_int_t                            ratelimit_remaining;  /* -1: none */

    /* body */
    off_t                                body_received;
    unsigned                             body_reading:1;
    unsigned                             body_waiting:1;
    unsigned                             body_done:1;
    unsigned                             problem_swap:1;
    unsigned                             problem_sending:1;
    ngx_str_t                            problem_body;

    ngx_http_ml_guard_ratelimit_ctx_t   *ratelimit;
} ngx_http_ml_guard_ctx_t;


extern ngx_module_t  ngx_http_ml_guard_module;


/* ngx_http_ml_guard_module.c */
ngx_http_ml_guard_ctx_t *ngx_http_ml_guard_get_ctx(ngx_http_request_t *r);
/* roles: comma-separated ("predict,admin"), as every credential keeps them */
ngx_int_t ngx_http_ml_guard_set_principal(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, const char *method, const u_char *principal,
    size_t len, const char *roles, size_t roles_len);
void ngx_http_ml_guard_wake(ngx_http_request_t *r);
/* Ties an object loaded at configuration time (keys, schema) to the
 * configuration cycle: release() runs when the cycle goes away, or at once
 * if that cannot be arranged (then NGX_ERROR). */
ngx_int_t ngx_http_ml_guard_conf_keep(ngx_conf_t *cf, void *obj,
    ngx_pool_cleanup_pt release);

/* ngx_http_ml_guard_problem.c */
ngx_int_t ngx_http_ml_guard_deny(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_http_ml_guard_reason_e reason,
    const char *fmt, ...);
void ngx_http_ml_guard_set_errors(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, void *errors /* json_t *, reference stolen */);
const char *ngx_http_ml_guard_reason_name(ngx_http_ml_guard_reason_e reason);
ngx_int_t ngx_http_ml_guard_add_header(ngx_http_request_t *r, const char *name,
    ngx_str_t *value);
ngx_int_t ngx_http_ml_guard_problem_filter_init(ngx_conf_t *cf);

/* ngx_http_ml_guard_metrics.c */
ngx_int_t ngx_http_ml_guard_metrics_init_zone(ngx_conf_t *cf);
void ngx_http_ml_guard_metric_add(ngx_http_ml_guard_metric_e metric,
    ngx_int_t n);
void ngx_http_ml_guard_gauge_add(ngx_http_ml_guard_gauge_e gauge,
    ngx_int_t delta);
void ngx_http_ml_guard_metrics_decision(ngx_http_ml_guard_ctx_t *ctx);
void ngx_http_ml_guard_metrics_upstream_failure(ngx_http_ml_guard_ctx_t *ctx);
uint64_t ngx_http_ml_guard_now_us(void);
char *ngx_http_ml_guard_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_http_ml_guard_body.c */
ngx_int_t ngx_http_ml_guard_body_step(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx);
ngx_int_t ngx_http_ml_guard_body_get(ngx_http_request_t *r, ngx_str_t *body);
ngx_int_t ngx_http_ml_guard_body_filter_init(ngx_conf_t *cf);

/* ngx_http_ml_guard_jwt.c */
ngx_int_t ngx_http_ml_guard_jwt_create_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *lcf);
char *ngx_http_ml_guard_jwt_merge_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *prev, ngx_http_ml_guard_loc_conf_t *conf);
ngx_uint_t ngx_http_ml_guard_jwt_configured(ngx_http_ml_guard_loc_conf_t *lcf);
/* NGX_OK: authenticated (principal set); NGX_DECLINED: no bearer token
 * presented; NGX_ERROR: token presented and refused, *reason says why. */
ngx_int_t ngx_http_ml_guard_jwt_authenticate(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx,
    ngx_http_ml_guard_reason_e *reason);
char *ngx_http_ml_guard_jwt_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_ml_guard_jwt_issuer(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_ml_guard_jwt_audience(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_ml_guard_jwt_leeway(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_ml_guard_jwt_roles_claim(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_ml_guard_jwt_cache_flag(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_ml_guard_jwt_require_exp(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_http_ml_guard_schema.c */
ngx_int_t ngx_http_ml_guard_schema_create_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *lcf);
char *ngx_http_ml_guard_schema_merge_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *prev, ngx_http_ml_guard_loc_conf_t *conf);
/* Runs after the body is read; NGX_OK when no JSON checks apply. */
ngx_int_t ngx_http_ml_guard_json_step(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx);
char *ngx_http_ml_guard_schema(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_ml_guard_max_json_depth(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);

/* ngx_http_ml_guard_ratelimit.c */
ngx_int_t ngx_http_ml_guard_ratelimit_create_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *lcf);
char *ngx_http_ml_guard_ratelimit_merge_conf(ngx_conf_t *cf,
    ngx_http_ml_guard_loc_conf_t *prev, ngx_http_ml_guard_loc_conf_t *conf);
ngx_int_t ngx_http_ml_guard_ratelimit_init_main(ngx_conf_t *cf,
    ngx_http_ml_guard_main_conf_t *mcf);
ngx_int_t ngx_http_ml_guard_ratelimit_init_process(ngx_cycle_t *cycle);
void ngx_http_ml_guard_ratelimit_exit_process(ngx_cycle_t *cycle);
/* Lockout check before authentication (ml_guard_auth_failures). */
ngx_int_t ngx_http_ml_guard_lockout_step(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx);
/* Called once when presented credentials were refused; must not wait. */
ngx_int_t ngx_http_ml_guard_auth_failed(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx);
ngx_int_t ngx_http_ml_guard_ratelimit_step(ngx_http_request_t *r,
    ngx_http_ml_guard_loc_conf_t *lcf, ngx_http_ml_guard_ctx_t *ctx);
char *ngx_http_ml_guard_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_ml_guard_limits_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_ml_guard_rate_limit(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_ml_guard_auth_failures(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);


#endif /* NGX_HTTP_ML_GUARD_MODULE_H */
