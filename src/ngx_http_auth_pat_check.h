
/*
 * The token check shared by the access phase, the API and
 * introspection: the Authorization header, the token's format and
 * checksum, its digest, the cache, and the Redis lookup, whose waiter a
 * request cleanup detaches; and whether a token holds the scopes a
 * location requires.
 */


#ifndef _NGX_HTTP_AUTH_PAT_CHECK_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_CHECK_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_module.h"
#include "ngx_http_auth_pat_store.h"


typedef void (*ngx_http_auth_pat_check_done_pt)(ngx_http_request_t *r);


/*
 * Checks the request's bearer token.  NGX_OK: the verdict is in the ctx
 * now.  NGX_AGAIN: a Redis lookup is in flight, and done(r) is called
 * with the verdict in the ctx.  NGX_ERROR: out of memory.
 */
ngx_int_t ngx_http_auth_pat_check(ngx_http_request_t *r,
    ngx_http_auth_pat_ctx_t *ctx, ngx_http_auth_pat_check_done_pt done);

/*
 * The same for a token given otherwise (introspection: in the body);
 * ctx need not be the request's module ctx, and receives the verdict.
 */
ngx_int_t ngx_http_auth_pat_check_token(ngx_http_request_t *r,
    ngx_http_auth_pat_ctx_t *ctx, ngx_str_t *token,
    ngx_http_auth_pat_check_done_pt done);

/* the identity holds every scope of required (of ngx_str_t; NULL: none) */
ngx_uint_t ngx_http_auth_pat_check_scopes(ngx_http_auth_pat_identity_t *id,
    ngx_array_t *required);

/*
 * When the request ends, the command in *cmdp, if any, is cancelled: its
 * reply must not reach a request that is gone.  Whoever handles the
 * reply sets *cmdp to NULL.
 */
ngx_int_t ngx_http_auth_pat_cancel_on_cleanup(ngx_http_request_t *r,
    ngx_http_auth_pat_store_cmd_t **cmdp);


#endif /* _NGX_HTTP_AUTH_PAT_CHECK_H_INCLUDED_ */
