
/*
 * Files embedded in the module when nginx's configure runs the module's
 * config script, which writes their bytes into a C file of its own objs/:
 * the OpenAPI document (GET <api>/openapi.json) and the self-service page
 * (auth_pat_ui).
 */


#ifndef _NGX_HTTP_AUTH_PAT_EMBEDDED_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_EMBEDDED_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/* openapi/openapi.json */
extern const u_char  ngx_http_auth_pat_openapi_json[];
extern const size_t  ngx_http_auth_pat_openapi_json_len;

/* src/ui/index.html, src/ui/app.js, src/ui/app.css */
extern const u_char  ngx_http_auth_pat_ui_html[];
extern const size_t  ngx_http_auth_pat_ui_html_len;
extern const u_char  ngx_http_auth_pat_ui_js[];
extern const size_t  ngx_http_auth_pat_ui_js_len;
extern const u_char  ngx_http_auth_pat_ui_css[];
extern const size_t  ngx_http_auth_pat_ui_css_len;


#endif /* _NGX_HTTP_AUTH_PAT_EMBEDDED_H_INCLUDED_ */
