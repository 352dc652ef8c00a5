
/*
 * auth_pat_status: the metrics in the Prometheus text format (0.0.4),
 * summed over every worker.
 */


#ifndef _NGX_HTTP_AUTH_PAT_STATUS_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_STATUS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>


/* the location's content handler, and the metrics zone */
char *ngx_http_auth_pat_status_conf(ngx_conf_t *cf);


#endif /* _NGX_HTTP_AUTH_PAT_STATUS_H_INCLUDED_ */
