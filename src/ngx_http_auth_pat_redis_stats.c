
/*
 * The per-endpoint counters.  A record is claimed under the zone's mutex
 * (the slab pool's) the first time a worker connects to an address, and
 * found by a scan after that (once per connect; a command counts through
 * the pointer its connection keeps).  The address is written before its
 * length, which readers check first.
 *
 * Each configuration (each reload) has a generation: the table's current
 * one is the newest that a worker runs.  A connect of a current worker
 * stamps its record with it, so an address that the current configuration
 * does not use (any more) keeps an older stamp: it is not shown, and its
 * record is reused once the 64 are taken.  Workers of an older
 * configuration, still finishing their requests, count on but stamp
 * nothing.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_redis_stats.h"


typedef struct {
    ngx_atomic_t                      gen;     /* the current configuration */
    ngx_http_auth_pat_redis_stats_t   node[NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES
                                           + 1];   /* the last: "other" */
} ngx_http_auth_pat_redis_stats_table_t;


const ngx_msec_t  ngx_http_auth_pat_redis_stats_bounds[] = {
    1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500
};


/* per worker: the table, the zone's pool, this worker's generation */
static ngx_http_auth_pat_redis_stats_table_t  *ngx_http_auth_pat_redis_stats;
static ngx_slab_pool_t                *ngx_http_auth_pat_redis_stats_pool;
static ngx_atomic_uint_t               ngx_http_auth_pat_redis_stats_gen;


size_t
ngx_http_auth_pat_redis_stats_size(void)
{
    return sizeof(ngx_http_auth_pat_redis_stats_table_t);
}


void
ngx_http_auth_pat_redis_stats_init(void *p)
{
    ngx_http_auth_pat_redis_stats_t        *other;
    ngx_http_auth_pat_redis_stats_table_t  *t;

    t = p;
    other = &t->node[NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES];

    ngx_memcpy(other->addr, "other", 5);
    other->addr_len = 5;
}


void
ngx_http_auth_pat_redis_stats_attach(void *p, ngx_slab_pool_t *shpool,
    ngx_uint_t gen)
{
    ngx_atomic_uint_t                       cur;
    ngx_http_auth_pat_redis_stats_table_t  *t;

    t = p;

    ngx_http_auth_pat_redis_stats = t;
    ngx_http_auth_pat_redis_stats_pool = shpool;
    ngx_http_auth_pat_redis_stats_gen = gen;

    if (t == NULL) {
        return;
    }

    /* the newest configuration is the current one, whoever starts first */
    for ( ;; ) {
        cur = t->gen;

        if (cur >= gen || ngx_atomic_cmp_set(&t->gen, cur, gen)) {
            return;
        }
    }
}


/*
 * The record of addr, or NULL; *free: the first free record, else the
 * first of an older generation, else NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES
 */

static ngx_http_auth_pat_redis_stats_t *
ngx_http_auth_pat_redis_stats_scan(ngx_str_t *addr, ngx_uint_t *free)
{
    ngx_uint_t                              i;
    ngx_http_auth_pat_redis_stats_t        *st;
    ngx_http_auth_pat_redis_stats_table_t  *t;

    t = ngx_http_auth_pat_redis_stats;
    *free = NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES;

    for (i = 0; i < NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES; i++) {
        st = &t->node[i];

        if (st->addr_len == 0) {
            *free = i;
            return NULL;
        }

        if (st->addr_len == addr->len
            && ngx_memcmp(st->addr, addr->data, addr->len) == 0)
        {
            return st;
        }

        /*
         * reused only two configurations later: the workers of the one
         * before may still be finishing their requests, and counting
         */
        if (*free == NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES
            && st->gen + 1 < t->gen)
        {
            *free = i;
        }
    }

    return NULL;
}


/* a record for addr: a free one, or an older one emptied */

static void
ngx_http_auth_pat_redis_stats_claim(ngx_http_auth_pat_redis_stats_t *st,
    ngx_str_t *addr)
{
    if (st->addr_len) {
        /* readers skip it while it changes hands */
        st->addr_len = 0;
        ngx_memory_barrier();
        ngx_memzero(st, sizeof(ngx_http_auth_pat_redis_stats_t));
    }

    ngx_memcpy(st->addr, addr->data, addr->len);
    st->gen = ngx_http_auth_pat_redis_stats_gen;
    ngx_memory_barrier();
    st->addr_len = addr->len;
}


/*
 * Stamping happens under the mutex too: a record of an older generation
 * may be changing hands to another address just then
 */

ngx_http_auth_pat_redis_stats_t *
ngx_http_auth_pat_redis_stats_find(ngx_str_t *addr, ngx_msec_t window)
{
    ngx_uint_t                              free;
    ngx_http_auth_pat_redis_stats_t        *st;
    ngx_http_auth_pat_redis_stats_table_t  *t;

    t = ngx_http_auth_pat_redis_stats;

    if (t == NULL || addr->len == 0 || addr->len > NGX_SOCKADDR_STRLEN) {
        return NULL;
    }

    st = ngx_http_auth_pat_redis_stats_scan(addr, &free);

    if (st == NULL || st->gen < ngx_http_auth_pat_redis_stats_gen) {
        ngx_shmtx_lock(&ngx_http_auth_pat_redis_stats_pool->mutex);

        /* another worker may have claimed or reused it meanwhile */
        st = ngx_http_auth_pat_redis_stats_scan(addr, &free);

        if (st == NULL) {
            st = &t->node[free];

            if (free < NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES) {
                ngx_http_auth_pat_redis_stats_claim(st, addr);
            }

        } else if (st->gen < ngx_http_auth_pat_redis_stats_gen) {
            st->gen = ngx_http_auth_pat_redis_stats_gen;
        }

        ngx_shmtx_unlock(&ngx_http_auth_pat_redis_stats_pool->mutex);
    }

    /* a worker of an older configuration does not decide "up" */
    if (st->gen <= ngx_http_auth_pat_redis_stats_gen) {
        st->window = window;
    }

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
        return (st->addr_len && st->gen == ngx_http_auth_pat_redis_stats->gen)
               ? st : NULL;
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
