
/*
 * The phase handlers of auth_pat that ngx_http_auth_pat_module.c
 * registers.
 */


#ifndef _NGX_HTTP_AUTH_PAT_ACCESS_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_ACCESS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* auth_pat, preaccess phase: the identity, before limit_req */
ngx_int_t ngx_http_auth_pat_identify_handler(ngx_http_request_t *r);

/* auth_pat, access phase: the verdict (the check, if not yet done) */
ngx_int_t ngx_http_auth_pat_access_handler(ngx_http_request_t *r);

/* the precontent phase: a request let in is no longer the check's */
ngx_int_t ngx_http_auth_pat_let_in_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_AUTH_PAT_ACCESS_H_INCLUDED_ */
