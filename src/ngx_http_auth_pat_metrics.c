
/*
 * The metrics zone: the module's counters, then the Redis layer's
 * per-endpoint ones, in one slab allocation.  A reload with the same
 * zone keeps them (nginx hands init_zone the old data); a zone of an
 * older layout is emptied, as the counters' meaning moved.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_metrics.h"
#include "ngx_http_auth_pat_redis_stats.h"


ngx_http_auth_pat_metrics_t  *ngx_http_auth_pat_metrics;


const ngx_uint_t  ngx_http_auth_pat_metrics_statuses[] = {
    200, 201, 204, 400, 401, 403, 404, 405, 409, 413, 415, 422, 429, 500,
    503, 0
};

const char  *ngx_http_auth_pat_metrics_routes[] = {
    "create", "list", "get", "revoke", "rotate", "self", "config",
    "introspect", "openapi", "other"
};


static ngx_str_t  ngx_http_auth_pat_metrics_name =
    ngx_string("auth_pat_status");


static size_t
ngx_http_auth_pat_metrics_size(void)
{
    return ngx_align(sizeof(ngx_http_auth_pat_metrics_t), 64)
           + ngx_http_auth_pat_redis_stats_size();
}


static void
ngx_http_auth_pat_metrics_empty(ngx_http_auth_pat_metrics_t *m)
{
    ngx_memzero(m, ngx_http_auth_pat_metrics_size());
    m->layout = NGX_HTTP_AUTH_PAT_METRICS_LAYOUT;
    ngx_http_auth_pat_redis_stats_attach(
        (u_char *) m + ngx_align(sizeof(ngx_http_auth_pat_metrics_t), 64), 1);
}


static ngx_int_t
ngx_http_auth_pat_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t              *sp;
    ngx_http_auth_pat_metrics_t  *m;

    sp = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (data != NULL || shm_zone->shm.exists) {
        /* a reload, which keeps the zone (same name and size) */
        m = data ? data : sp->data;
        shm_zone->data = m;

        if (m->layout != NGX_HTTP_AUTH_PAT_METRICS_LAYOUT) {
            ngx_http_auth_pat_metrics_empty(m);
        }

        return NGX_OK;
    }

    m = ngx_slab_alloc(sp, ngx_http_auth_pat_metrics_size());
    if (m == NULL) {
        return NGX_ERROR;
    }

    sp->data = m;
    shm_zone->data = m;
    ngx_http_auth_pat_metrics_empty(m);

    return NGX_OK;
}


/*
 * A worker counts into the zone of its own cycle, if that has one: a
 * pointer left from an earlier configuration would outlive its zone
 */

void
ngx_http_auth_pat_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_shm_zone_t   *zone;

    ngx_http_auth_pat_metrics = NULL;
    ngx_http_auth_pat_redis_stats_attach(NULL, 0);

    part = &cycle->shared_memory.part;
    zone = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return;
            }

            part = part->next;
            zone = part->elts;
            i = 0;
        }

        if (zone[i].tag == &ngx_http_auth_pat_metrics_name
            && zone[i].data != NULL)
        {
            ngx_http_auth_pat_metrics = zone[i].data;
            ngx_http_auth_pat_redis_stats_attach(
                (u_char *) ngx_http_auth_pat_metrics
                + ngx_align(sizeof(ngx_http_auth_pat_metrics_t), 64), 0);
            return;
        }
    }
}


ngx_int_t
ngx_http_auth_pat_metrics_zone(ngx_conf_t *cf)
{
    size_t           size;
    ngx_shm_zone_t  *shm_zone;

    /* the slab pool's own pages, and room to spare */
    size = ngx_align(ngx_http_auth_pat_metrics_size(), ngx_pagesize)
           + 8 * ngx_pagesize;

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_auth_pat_metrics_name, size,
                                     &ngx_http_auth_pat_metrics_name);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_auth_pat_metrics_init_zone;

    return NGX_OK;
}


void
ngx_http_auth_pat_metrics_api(ngx_uint_t route, ngx_uint_t status)
{
    ngx_uint_t  i;

    if (ngx_http_auth_pat_metrics == NULL
        || route >= NGX_HTTP_AUTH_PAT_M_ROUTES)
    {
        return;
    }

    for (i = 0; i < NGX_HTTP_AUTH_PAT_METRICS_STATUSES - 1; i++) {
        if (ngx_http_auth_pat_metrics_statuses[i] == status) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&ngx_http_auth_pat_metrics->api[route][i], 1);
}
