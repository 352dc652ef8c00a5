
/*
 * GET <api>/openapi.json: the OpenAPI 3.1 document of the admin API.
 */


#ifndef _NGX_HTTP_AUTH_PAT_OPENAPI_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_OPENAPI_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * openapi/openapi.json, embedded when nginx's configure runs the module's
 * config script: it writes the bytes into a C file of its own objs/
 */
extern const u_char  ngx_http_auth_pat_openapi_json[];
extern const size_t  ngx_http_auth_pat_openapi_json_len;


#endif /* _NGX_HTTP_AUTH_PAT_OPENAPI_H_INCLUDED_ */
