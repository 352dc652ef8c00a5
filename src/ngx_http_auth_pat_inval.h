
/*
 * The invalidation feed of the cache: a subscription per worker to the
 * channel that revoke and rotate publish on, the sequence check after
 * each (re)subscription, and the one predicate that says whether the
 * cache may be trusted now.
 */


#ifndef _NGX_HTTP_AUTH_PAT_INVAL_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_INVAL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_store.h"
#include "ngx_http_auth_pat_cache.h"


ngx_int_t ngx_http_auth_pat_inval_init_process(ngx_cycle_t *cycle,
    ngx_http_auth_pat_store_conf_t *scf, ngx_http_auth_pat_redis_conf_t *rcf,
    ngx_http_auth_pat_cache_t *cache);
void ngx_http_auth_pat_inval_exit_process(ngx_cycle_t *cycle);

/*
 * The cache may answer now: this worker's command connection is ready,
 * its subscription is up and in sync with Redis' counter, and every
 * invalidation already in the subscriber socket has been applied.
 */
ngx_uint_t ngx_http_auth_pat_inval_cache_trusted(void);


#endif /* _NGX_HTTP_AUTH_PAT_INVAL_H_INCLUDED_ */
