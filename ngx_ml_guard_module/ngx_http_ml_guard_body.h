/*
 * ngx_http_ml_guard_body: the request body, read in the access phase.
 */

#ifndef NGX_HTTP_ML_GUARD_BODY_H
#define NGX_HTTP_ML_GUARD_BODY_H

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* After the body stage: the whole body as one contiguous string. */
ngx_int_t ngx_http_ml_guard_body_get(ngx_http_request_t *r, ngx_str_t *body);


#endif /* NGX_HTTP_ML_GUARD_BODY_H */
