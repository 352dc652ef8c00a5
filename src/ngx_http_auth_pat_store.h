
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

/* HMAC-SHA256(key, token): 32 bytes, and (unless hex is NULL) as 64
 * lowercase hex digits */
ngx_int_t ngx_http_auth_pat_store_digest(ngx_http_auth_pat_main_conf_t *pmcf,
    u_char *token, size_t len, u_char *md, u_char *hex);

/* the cache may be used: this worker is subscribed, synced, connected */
ngx_uint_t ngx_http_auth_pat_store_cache_trusted(void);

/* reports a token's use (lastUsedAt), without waiting */
void ngx_http_auth_pat_store_touch(ngx_pool_t *pool,
    ngx_http_auth_pat_identity_t *id, int64_t now, ngx_uint_t force);

/* publishes the invalidation of a digest to every nginx's cache */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_store_invalidate(
    ngx_pool_t *pool, u_char *hex,
    ngx_http_auth_pat_redis_handler_pt handler, void *data);

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


/* ------------------------------------------------------- admin API */

#define NGX_HTTP_AUTH_PAT_RETENTION      (30 * 86400 * 1000LL)
#define NGX_HTTP_AUTH_PAT_INACTIVE_MAX   10000


/* create: the metadata (checking auth_pat_max_tokens), in the user slot */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_store_create(
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *id, ngx_str_t *name,
    ngx_str_t *record, int64_t now, int64_t expires, ngx_uint_t max_tokens,
    ngx_http_auth_pat_redis_handler_pt handler, void *data);

/* the validation record of a new token, with PEXPIREAT */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_store_activate(
    ngx_pool_t *pool, u_char *hex, ngx_str_t *user, ngx_str_t *id,
    ngx_str_t *name, int64_t expires,
    ngx_http_auth_pat_redis_handler_pt handler, void *data);

/* the metadata record of one token, or nil */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_store_get(ngx_pool_t *pool,
    ngx_str_t *user, ngx_str_t *id,
    ngx_http_auth_pat_redis_handler_pt handler, void *data);

/* deletes the validation record: the token stops working here */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_store_deactivate(
    ngx_pool_t *pool, u_char *hex,
    ngx_http_auth_pat_redis_handler_pt handler, void *data);

/* marks the metadata revoked (idempotent); the record, or nil */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_store_revoke(
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *id, int64_t now,
    ngx_http_auth_pat_redis_handler_pt handler, void *data);

/* claims a token for rotation: {0} unknown, {409, why}, {1, record} */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_store_claim(
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *id, int64_t now,
    ngx_http_auth_pat_redis_handler_pt handler, void *data);

/* revokes the claimed token and adds its successor: 1, or 0 */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_store_rotate(
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *old_id, int64_t claim,
    ngx_str_t *new_id, ngx_str_t *name, ngx_str_t *record, int64_t now,
    int64_t expires, ngx_http_auth_pat_redis_handler_pt handler, void *data);

/* the user's list index, {id, "c:e:l:r:name", ...}, after a retention
 * purge */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_store_list_index(
    ngx_pool_t *pool, ngx_str_t *user, int64_t now,
    ngx_http_auth_pat_redis_handler_pt handler, void *data);

/* the metadata records of n tokens, nil for any gone meanwhile */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_store_get_many(
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *ids, ngx_uint_t n,
    ngx_http_auth_pat_redis_handler_pt handler, void *data);


#endif /* _NGX_HTTP_AUTH_PAT_STORE_H_INCLUDED_ */
