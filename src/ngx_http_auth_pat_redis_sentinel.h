
/*
 * Redis Sentinel: which node is the master, asked before every connect
 * to it, and a watch on the sentinels' +switch-master.  Internal to the
 * Redis layer.
 */


#ifndef _NGX_HTTP_AUTH_PAT_REDIS_SENTINEL_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_REDIS_SENTINEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_redis_conn.h"


/*
 * conn (not yet connected) goes to the master that the sentinels of its
 * configuration name, asked again before each connect (the others go
 * where the primary, the command connection, is while it is up); a
 * switch of master restarts it.  The first call starts the worker's
 * sentinel connections.
 */
ngx_int_t ngx_http_auth_pat_redis_sentinel_follow(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conn_t *conn, ngx_uint_t primary);

/*
 * conn (the API's connection or the subscriber) is on the command
 * connection's node, or one of them is not up; otherwise 0, and conn,
 * if ready, moves there
 */
ngx_uint_t ngx_http_auth_pat_redis_sentinel_with_primary(
    ngx_http_auth_pat_redis_conn_t *conn);

void ngx_http_auth_pat_redis_sentinel_exit(void);


#endif /* _NGX_HTTP_AUTH_PAT_REDIS_SENTINEL_H_INCLUDED_ */
