/*
 * ngx_http_ml_guard_module: the core's API for the policy modules.
 *
 * The core (ngx_http_ml_guard_module.c) runs one access-phase handler per
 * request over an ordered table of steps.  Each policy is its own nginx
 * module (its own directives, conf, create/merge) and plugs into the core:
 *
 *   - a step, registered at postconfiguration with ngx_http_ml_guard_add_step()
 *     under one of the stages below; the handler runs the steps of the
 *     stages in order, and within a stage in registration order;
 *   - an authentication method, registered at preconfiguration with
 *     ngx_http_ml_guard_add_auth_method(), tried by the core's authenticate
 *     step and named by ml_guard_auth; its merge reports with
 *     ngx_http_ml_guard_auth_configured() that it is configured there;
 *   - a handler for refused or missing credentials
 *     (ngx_http_ml_guard_on_auth_failure()), which may wait before the
 *     refusal is answered.
 *
 * A step returns:
 *   NGX_OK          passed, go on with the next step
 *   NGX_AGAIN       waiting for an event (Redis reply): the feature calls
 *                   ngx_http_ml_guard_wake(r) when the result is in ctx;
 *                   the same step is then called again
 *   NGX_DONE        the step handed the request to nginx (the body read:
 *                   ngx_http_ml_guard_body.c), which resumes the phases;
 *                   the same step is then called again
 *   NGX_HTTP_xxx    denied: the value returned by ngx_http_ml_guard_deny()
 *   NGX_ERROR       internal error (500)
 */

#ifndef NGX_HTTP_ML_GUARD_MODULE_H
#define NGX_HTTP_ML_GUARD_MODULE_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* ml_guard_auth none; the registered methods get the bits below it */
#define NGX_HTTP_ML_GUARD_AUTH_NONE     0x80
#define NGX_HTTP_ML_GUARD_AUTH_METHODS  7


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


typedef struct {
    ngx_array_t                          steps;       /* of ngx_http_ml_guard_step_t */
    ngx_array_t                          methods;     /* of ngx_http_ml_guard_auth_method_t * */
    ngx_array_t                          auth_failed; /* of ngx_http_ml_guard_auth_failed_pt */
    ngx_array_t                          checks;      /* of ngx_http_ml_guard_check_t */
} ngx_http_ml_guard_main_conf_t;


typedef struct {
    ngx_flag_t                           enable;          /* ml_guard */
    ngx_uint_t                           auth;            /* ml_guard_auth bits */
    ngx_uint_t                           auth_configured; /* methods set up here */

    ngx_array_t                         *roles;           /* of ngx_str_t */
} ngx_http_ml_guard_loc_conf_t;


/* The stages of the access phase, in the order they run. */
typedef enum {
    NGX_HTTP_ML_GUARD_AUTHENTICATE = 0, /* the core's: tries the auth methods */
    NGX_HTTP_ML_GUARD_LOCKOUT,          /* after it: an accepted credential
                                         * is told only if not locked out */
    NGX_HTTP_ML_GUARD_AUTHORIZE,
    NGX_HTTP_ML_GUARD_LIMITS,
    NGX_HTTP_ML_GUARD_BODY,
    NGX_HTTP_ML_GUARD_JSON,
    NGX_HTTP_ML_GUARD_STAGES
} ngx_http_ml_guard_stage_e;


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
    ngx_uint_t                           step;            /* index in the table */
    uint64_t                             start_us;        /* monotonic */

    /* who: set by ngx_http_ml_guard_set_principal() */
    ngx_str_t                            principal;
    ngx_str_t                            auth_method;     /* "api_key", "jwt", "mtls" */
    ngx_str_t                            auth_issuer;     /* jwt: the issuer required */
    /* refused or missing credentials: why, while the failure handlers
     * (ngx_http_ml_guard_on_auth_failure) have not answered */
    ngx_http_ml_guard_reason_e           auth_failure;
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

    /* body (ngx_http_ml_guard_body.c) */
    off_t                                body_received;
    unsigned                             body_wait:1;
    unsigned                             body_reading:1;
    unsigned                             body_done:1;
    unsigned                             problem_swap:1;
    unsigned                             problem_sending:1;
    ngx_str_t                            problem_body;
} ngx_http_ml_guard_ctx_t;


typedef ngx_int_t (*ngx_http_ml_guard_step_pt)(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx);

typedef struct {
    ngx_http_ml_guard_stage_e            stage;
    ngx_http_ml_guard_step_pt            handler;
} ngx_http_ml_guard_step_t;


/* NGX_OK: authenticated (principal set); NGX_DECLINED: no credential of
 * this kind presented; NGX_ERROR: presented and refused, *reason says why. */
typedef ngx_int_t (*ngx_http_ml_guard_auth_pt)(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_http_ml_guard_reason_e *reason);

/* Adds the method's WWW-Authenticate challenge to a 401; "alone": the
 * only method accepted here. */
typedef ngx_int_t (*ngx_http_ml_guard_challenge_pt)(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx, ngx_uint_t alone);

/* A refusal nginx produced itself before ml_guard ran (the response
 * status is in r->headers_out.status) that belongs to this method:
 * its reason, else MLG_REASON_NONE. */
typedef ngx_http_ml_guard_reason_e (*ngx_http_ml_guard_nginx_error_pt)(
    ngx_http_request_t *r);

typedef struct {
    ngx_str_t                            name;          /* in ml_guard_auth */
    ngx_http_ml_guard_auth_pt            authenticate;
    ngx_http_ml_guard_challenge_pt       challenge;     /* NULL: none */
    ngx_http_ml_guard_nginx_error_pt     nginx_error;   /* NULL: none */
    ngx_uint_t                           bit;           /* set by the core */
    /* the directive that configures it (named in nginx -t's messages) */
    ngx_str_t                            directive;
    /* 1: accepted by ml_guard_auth also where that directive is not set */
    ngx_uint_t                           conf_optional;
} ngx_http_ml_guard_auth_method_t;

/*
 * Called when no credential was accepted, before the refusal is answered;
 * ctx->auth_failure says why (MLG_REASON_MISSING_CREDENTIALS when none was
 * presented).  NGX_OK: answer the refusal; NGX_AGAIN: waiting, the core
 * calls it again once woken (so it must be idempotent); else the response
 * instead (a denial, NGX_ERROR).
 */
typedef ngx_int_t (*ngx_http_ml_guard_auth_failed_pt)(ngx_http_request_t *r,
    ngx_http_ml_guard_ctx_t *ctx);


extern ngx_module_t  ngx_http_ml_guard_module;


/* ngx_http_ml_guard_module.c */

/* postconfiguration: runs handler at the given stage of every request in
 * a location with "ml_guard on" */
ngx_int_t ngx_http_ml_guard_add_step(ngx_conf_t *cf,
    ngx_http_ml_guard_stage_e stage, ngx_http_ml_guard_step_pt handler);
/* preconfiguration: method must outlive the configuration (static);
 * methods are tried in registration order (the order of `config`) */
ngx_int_t ngx_http_ml_guard_add_auth_method(ngx_conf_t *cf,
    ngx_http_ml_guard_auth_method_t *method);
/* merge of the method's module: the method is set up at this level, so
 * it is accepted here when ml_guard_auth is not given */
void ngx_http_ml_guard_auth_configured(ngx_conf_t *cf,
    ngx_http_ml_guard_auth_method_t *method);
/* postconfiguration */
ngx_int_t ngx_http_ml_guard_on_auth_failure(ngx_conf_t *cf,
    ngx_http_ml_guard_auth_failed_pt handler);
/* the methods accepted in r's location (bits of ngx_http_ml_guard_auth_method_t) */
ngx_uint_t ngx_http_ml_guard_auth_methods(ngx_http_request_t *r);

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
/*
 * Loads a file named by a directive through a plain-C loader at
 * configuration time; the result lives as long as the configuration cycle.
 */
void *ngx_http_ml_guard_load_file(ngx_conf_t *cf, ngx_str_t *file,
    void *(*load)(const char *path, char *err, size_t errlen),
    void (*release)(void *data));

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

/* ngx_http_ml_guard_metrics.c: shared counters */
void ngx_http_ml_guard_metric_add(ngx_http_ml_guard_metric_e metric,
    ngx_int_t n);
void ngx_http_ml_guard_gauge_add(ngx_http_ml_guard_gauge_e gauge,
    ngx_int_t delta);
void ngx_http_ml_guard_metrics_decision(ngx_http_ml_guard_ctx_t *ctx);
void ngx_http_ml_guard_metrics_upstream_failure(ngx_http_ml_guard_ctx_t *ctx);
uint64_t ngx_http_ml_guard_now_us(void);

#endif /* NGX_HTTP_ML_GUARD_MODULE_H */
