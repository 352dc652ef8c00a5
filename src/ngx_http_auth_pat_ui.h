
/*
 * auth_pat_ui: the self-service page, its script and its stylesheet,
 * embedded in the module, where the location's authenticated user
 * manages their own tokens through the API.
 */


#ifndef _NGX_HTTP_AUTH_PAT_UI_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_UI_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


typedef struct {
    ngx_str_t   page;       /* index.html, naming this location's API */
    ngx_str_t   location;   /* the location's prefix */
} ngx_http_auth_pat_ui_conf_t;


/* the directive's arguments: [api=URI]; sets the location's handler */
char *ngx_http_auth_pat_ui_conf(ngx_conf_t *cf,
    ngx_http_auth_pat_ui_conf_t **ui);


#endif /* _NGX_HTTP_AUTH_PAT_UI_H_INCLUDED_ */
