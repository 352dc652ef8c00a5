
/*
 * The request's ctx (ngx_http_auth_pat_ctx_t), which keeps the verified
 * identity across nginx's internal redirects.
 */


#ifndef _NGX_HTTP_AUTH_PAT_CTX_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_CTX_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_module.h"


/* the request's ctx, or NULL when it has none */
ngx_http_auth_pat_ctx_t *ngx_http_auth_pat_find_ctx(ngx_http_request_t *r);

/* the request's ctx, made on first use; NULL when out of memory */
ngx_http_auth_pat_ctx_t *ngx_http_auth_pat_get_ctx(ngx_http_request_t *r);


#endif /* _NGX_HTTP_AUTH_PAT_CTX_H_INCLUDED_ */
