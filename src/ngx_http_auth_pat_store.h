
/*
 * The token data model on Redis, shared by the access check and the
 * admin API.  The record layout is documented in
 * ngx_http_auth_pat_store.c.
 */


#ifndef _NGX_HTTP_AUTH_PAT_STORE_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_module.h"
#include "ngx_http_auth_pat_redis.h"


#define NGX_HTTP_AUTH_PAT_NS_MAX  64


ngx_int_t ngx_http_auth_pat_store_init_process(ngx_cycle_t *cycle,
    ngx_http_auth_pat_main_conf_t *pmcf);
void ngx_http_auth_pat_store_exit_process(ngx_cycle_t *cycle);
ngx_int_t ngx_http_auth_pat_store_init_conf(ngx_conf_t *cf,
    ngx_http_auth_pat_main_conf_t *pmcf);

/* HMAC-SHA256(key, token) as 64 lowercase hex digits */
ngx_int_t ngx_http_auth_pat_store_digest(ngx_http_auth_pat_main_conf_t *pmcf,
    u_char *token, size_t len, u_char *hex);

/* one round trip: the validation record of a digest */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_store_lookup(
    ngx_http_auth_pat_main_conf_t *pmcf, u_char *hex,
    ngx_http_auth_pat_redis_handler_pt handler, void *data);

/*
 * NGX_OK: found and not expired at now (ms), identity filled from pool;
 * NGX_DECLINED: unknown or expired; NGX_ERROR: not a reply we understand.
 */
ngx_int_t ngx_http_auth_pat_store_lookup_result(redisReply *reply,
    ngx_pool_t *pool, int64_t now, ngx_http_auth_pat_identity_t *id);


#endif /* _NGX_HTTP_AUTH_PAT_STORE_H_INCLUDED_ */
