
/*
 * RFC 7662 token introspection (auth_pat_introspect), for services
 * outside nginx.
 */


#ifndef _NGX_HTTP_AUTH_PAT_INTROSPECT_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_INTROSPECT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the content handler of an auth_pat_introspect location */
ngx_int_t ngx_http_auth_pat_introspect_handler(ngx_http_request_t *r);


#endif /* _NGX_HTTP_AUTH_PAT_INTROSPECT_H_INCLUDED_ */
