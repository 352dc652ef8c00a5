
/*
 * The shared-memory cache of checked tokens: an rbtree keyed by the token
 * digest, with an LRU queue, in a slab zone shared by all workers.
 */


#ifndef _NGX_HTTP_AUTH_PAT_CACHE_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_CACHE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_module.h"


/* ngx_http_auth_pat_cache_t is declared in ngx_http_auth_pat_module.h */


/* auth_pat_cache zone=NAME:SIZE [ttl=TIME] | off */
char *ngx_http_auth_pat_cache_conf(ngx_conf_t *cf,
    ngx_http_auth_pat_cache_t **cachep);

/*
 * NGX_OK: a live entry, the identity copied into pool; *touch is set
 * when this nginx should report the token's use (once a minute).
 * NGX_DECLINED: no entry.
 */
ngx_int_t ngx_http_auth_pat_cache_get(ngx_http_auth_pat_cache_t *cache,
    u_char *digest, int64_t now, ngx_pool_t *pool,
    ngx_http_auth_pat_identity_t *id, ngx_uint_t *touch);

/* its entries, and the bytes they take (for the metrics) */
void ngx_http_auth_pat_cache_usage(ngx_http_auth_pat_cache_t *cache,
    ngx_uint_t *entries, size_t *bytes);

/* the version to pass to put(): it changes with every invalidation */
uint64_t ngx_http_auth_pat_cache_version(ngx_http_auth_pat_cache_t *cache);

/* adds an entry, unless an invalidation came since version was read */
void ngx_http_auth_pat_cache_put(ngx_http_auth_pat_cache_t *cache,
    u_char *digest, ngx_http_auth_pat_identity_t *id, int64_t now,
    uint64_t version);

/*
 * the invalidation numbered seq (0: uncounted): drops the entry of
 * digest, if any; a number past the next empties the zone, and the
 * count of the entries dropped so is returned
 */
ngx_uint_t ngx_http_auth_pat_cache_invalidate(ngx_http_auth_pat_cache_t *cache,
    u_char *digest, int64_t seq);

/*
 * After (re)subscribing: seq is the number of the last invalidation
 * Redis published, epoch (if not NULL) the name of its dataset.  If this
 * zone has not applied exactly that invalidation of that dataset, some
 * were missed (or Redis lost its data): every entry goes.
 */
void ngx_http_auth_pat_cache_sync(ngx_http_auth_pat_cache_t *cache,
    int64_t seq, ngx_str_t *epoch, ngx_log_t *log);


#endif /* _NGX_HTTP_AUTH_PAT_CACHE_H_INCLUDED_ */
