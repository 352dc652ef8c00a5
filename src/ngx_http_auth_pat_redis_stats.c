
/*
 * The per-endpoint counters.  A record is claimed under a spinlock the
 * first time a worker connects to an address, and found by a scan after
 * that (once per connect; a command counts through the pointer its
 * connection keeps).  The address is written before its length, which
 * readers check first.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_redis_stats.h"


typedef struct {
    ngx_atomic_t                      lock;
    ngx_http_auth_pat_redis_stats_t   node[NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES
                                           + 1];   /* the last: "other" */
} ngx_http_auth_pat_redis_stats_table_t;


const ngx_msec_t  ngx_http_auth_pat_redis_stats_bounds[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500
};


static ngx_http_auth_pat_redis_stats_table_t  *ngx_http_auth_pat_redis_stats;


size_t
ngx_http_auth_pat_redis_stats_size(void)
{
    return sizeof(ngx_http_auth_pat_redis_stats_table_t);
}


void
ngx_http_auth_pat_redis_stats_attach(void *p, ngx_uint_t fresh)
{
    ngx_http_auth_pat_redis_stats_t  *other;

    ngx_http_auth_pat_redis_stats = p;

    if (fresh) {
        other = &ngx_http_auth_pat_redis_stats->node[
                                          NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES];
        ngx_memcpy(other->addr, "other", 5);
        other->addr_len = 5;
    }
}


static ngx_http_auth_pat_redis_stats_t *
ngx_http_auth_pat_redis_stats_scan(ngx_str_t *addr, ngx_uint_t *free)
{
    ngx_uint_t                        i;
    ngx_http_auth_pat_redis_stats_t  *st;

    *free = NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES;

    for (i = 0; i < NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES; i++) {
        st = &ngx_http_auth_pat_redis_stats->node[i];

        if (st->addr_len == 0) {
            *free = i;
            return NULL;
        }

        if (st->addr_len == addr->len
            && ngx_memcmp(st->addr, addr->data, addr->len) == 0)
        {
            return st;
        }
    }

    return NULL;
}


ngx_http_auth_pat_redis_stats_t *
ngx_http_auth_pat_redis_stats_find(ngx_str_t *addr, ngx_msec_t window)
{
    ngx_uint_t                        free;
    ngx_http_auth_pat_redis_stats_t  *st;

    if (ngx_http_auth_pat_redis_stats == NULL
        || addr->len == 0 || addr->len > NGX_SOCKADDR_STRLEN)
    {
        return NULL;
    }

    st = ngx_http_auth_pat_redis_stats_scan(addr, &free);

    if (st == NULL) {
        ngx_spinlock(&ngx_http_auth_pat_redis_stats->lock, ngx_pid, 1024);

        /* another worker may have claimed it meanwhile */
        st = ngx_http_auth_pat_redis_stats_scan(addr, &free);

        if (st == NULL) {
            st = &ngx_http_auth_pat_redis_stats->node[free];

            if (free < NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES) {
                ngx_memcpy(st->addr, addr->data, addr->len);
                ngx_memory_barrier();
                st->addr_len = addr->len;
            }
        }

        ngx_unlock(&ngx_http_auth_pat_redis_stats->lock);
    }

    st->window = window;

    return st;
}


ngx_http_auth_pat_redis_stats_t *
ngx_http_auth_pat_redis_stats_get(ngx_uint_t i)
{
    ngx_http_auth_pat_redis_stats_t  *st;

    if (ngx_http_auth_pat_redis_stats == NULL
        || i > NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES)
    {
        return NULL;
    }

    st = &ngx_http_auth_pat_redis_stats->node[i];

    if (i < NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES) {
        return st->addr_len ? st : NULL;
    }

    /* "other": once an address beyond the cap was counted */
    return (st->commands || st->reconnects
            || st->errors[NGX_HTTP_AUTH_PAT_REDIS_ERR_REFUSED]) ? st : NULL;
}


void
ngx_http_auth_pat_redis_stats_reply(ngx_http_auth_pat_redis_stats_t *st,
    ngx_msec_t sent)
{
    ngx_uint_t   b;
    ngx_msec_t   ms;
    ngx_time_t  *tp;

    if (st == NULL) {
        return;
    }

    ms = ngx_current_msec - sent;

    for (b = 0; b < NGX_HTTP_AUTH_PAT_REDIS_STATS_BUCKETS; b++) {
        if (ms <= ngx_http_auth_pat_redis_stats_bounds[b]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&st->latency[b], 1);
    (void) ngx_atomic_fetch_add(&st->latency_ms, ms);

    tp = ngx_timeofday();
    st->last_reply = (ngx_atomic_uint_t) tp->sec * 1000 + tp->msec;
}
