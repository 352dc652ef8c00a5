
/*
 * Redis Cluster: the slot table, a connection per master, commands
 * routed by slot and redirects followed.  Internal to the Redis layer.
 */


#ifndef _NGX_HTTP_AUTH_PAT_REDIS_CLUSTER_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_REDIS_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_redis_conn.h"


ngx_int_t ngx_http_auth_pat_redis_cluster_init(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conf_t *rcf,
    ngx_http_auth_pat_redis_script_t *scripts, ngx_uint_t n);

/*
 * The connection to the master of the command's first key (EVALSHA: the
 * first of KEYS), and that key's slot; NULL while no table names it
 */
ngx_http_auth_pat_redis_conn_t *ngx_http_auth_pat_redis_cluster_route(
    int argc, const char **argv, const size_t *argvlen, ngx_uint_t *slot);

/* the slot of a key: CRC16 of its hash tag, modulo 16384 */
ngx_uint_t ngx_http_auth_pat_redis_cluster_slot(const u_char *key,
    size_t len);

/* the subscriber connects to the master of its channel's slot */
void ngx_http_auth_pat_redis_cluster_follow(
    ngx_http_auth_pat_redis_conn_t *sub);

/* the subscriber on its slot's master, and every master answering */
ngx_uint_t ngx_http_auth_pat_redis_cluster_live(void);

void ngx_http_auth_pat_redis_cluster_exit(void);


#endif /* _NGX_HTTP_AUTH_PAT_REDIS_CLUSTER_H_INCLUDED_ */
