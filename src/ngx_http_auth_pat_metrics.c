
/*
 * The metrics zone: the module's counters, then the Redis layer's
 * per-endpoint ones, in one slab allocation whose header says its layout.
 * A reload keeps them, across a new build of the module too; a zone of
 * another layout is emptied, as the counters' meaning moved.
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


/*
 * The zone's tag.  nginx reuses a zone of the same name, size and tag
 * across a reload, and every address inside this .so moves when a reload
 * loads a new build of it: the tag is one of nginx's own, so that an
 * upgraded module finds the zone, and the layout number in its header
 * decides whether the counters are still its own.
 */
#define ngx_http_auth_pat_metrics_tag  ((void *) &ngx_core_module)


/* per configuration: its generation (see ngx_http_auth_pat_redis_stats.c) */
typedef struct {
    ngx_http_auth_pat_metrics_t  *m;
    ngx_uint_t                    gen;
} ngx_http_auth_pat_metrics_ctx_t;


#define ngx_http_auth_pat_metrics_head                                       \
    ngx_align(sizeof(ngx_http_auth_pat_metrics_t), 64)


static size_t
ngx_http_auth_pat_metrics_size(void)
{
    return ngx_http_auth_pat_metrics_head
           + ngx_http_auth_pat_redis_stats_size();
}


static ngx_http_auth_pat_metrics_t *
ngx_http_auth_pat_metrics_alloc(ngx_slab_pool_t *sp)
{
    size_t                        size;
    ngx_http_auth_pat_metrics_t  *m;

    size = ngx_http_auth_pat_metrics_size();

    m = ngx_slab_alloc(sp, size);
    if (m == NULL) {
        return NULL;
    }

    ngx_memzero(m, size);
    m->layout = NGX_HTTP_AUTH_PAT_METRICS_LAYOUT;
    m->size = size;
    ngx_http_auth_pat_redis_stats_init((u_char *) m
                                       + ngx_http_auth_pat_metrics_head);

    return m;
}


/*
 * data (the previous configuration's) is not looked at: it may be of
 * another build; the slab pool's data pointer is the same in every one
 */

static ngx_int_t
ngx_http_auth_pat_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t                  *sp;
    ngx_http_auth_pat_metrics_t      *m, *old;
    ngx_http_auth_pat_metrics_ctx_t  *ctx;

    ctx = shm_zone->data;
    sp = (ngx_slab_pool_t *) shm_zone->shm.addr;
    m = NULL;

    if (data != NULL || shm_zone->shm.exists) {
        /* a reload, which keeps the zone (same name, size and tag) */
        m = sp->data;
    }

    if (m != NULL
        && (m->layout != NGX_HTTP_AUTH_PAT_METRICS_LAYOUT
            || m->size != ngx_http_auth_pat_metrics_size()))
    {
        ngx_log_error(NGX_LOG_NOTICE, shm_zone->shm.log, 0,
                      "auth_pat: the metrics zone holds layout %ui, "
                      "this module's is %d: its counters start again",
                      m->layout, NGX_HTTP_AUTH_PAT_METRICS_LAYOUT);

        /*
         * The workers of the other build may still count into its block
         * while they finish: it is left to them, and freed at the next
         * change of layout, a whole reload later.  The zone holds two
         * blocks.  A block of layout 2, the first with a layout, has no
         * "retired" field.
         */
        old = m;

        if (old->layout >= 3 && old->retired) {
            ngx_slab_free(sp, (u_char *) sp + old->retired);
        }

        m = ngx_http_auth_pat_metrics_alloc(sp);

        if (m == NULL) {
            ngx_log_error(NGX_LOG_ALERT, shm_zone->shm.log, 0,
                          "auth_pat: no room in the metrics zone for "
                          "another layout: the metrics are off until "
                          "nginx is restarted");
            ctx->m = NULL;
            return NGX_OK;
        }

        m->retired = (u_char *) old - (u_char *) sp;
        sp->data = m;

    } else if (m == NULL) {
        m = ngx_http_auth_pat_metrics_alloc(sp);
        if (m == NULL) {
            return NGX_ERROR;
        }

        sp->data = m;
    }

    ctx->m = m;
    ctx->gen = (ngx_uint_t) ngx_atomic_fetch_add(&m->gens, 1) + 1;

    return NGX_OK;
}


/*
 * A worker counts into the zone of its own cycle, if that has one: a
 * pointer left from an earlier configuration would outlive its zone
 */

void
ngx_http_auth_pat_metrics_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                        i;
    ngx_list_part_t                  *part;
    ngx_shm_zone_t                   *zone;
    ngx_http_auth_pat_metrics_ctx_t  *ctx;

    ngx_http_auth_pat_metrics = NULL;
    ngx_http_auth_pat_redis_stats_attach(NULL, NULL, 0);

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

        if (zone[i].tag != ngx_http_auth_pat_metrics_tag
            || zone[i].shm.name.len != ngx_http_auth_pat_metrics_name.len
            || ngx_strncmp(zone[i].shm.name.data,
                           ngx_http_auth_pat_metrics_name.data,
                           ngx_http_auth_pat_metrics_name.len)
               != 0)
        {
            continue;
        }

        ctx = zone[i].data;

        if (ctx == NULL || ctx->m == NULL) {
            return;
        }

        ngx_http_auth_pat_metrics = ctx->m;
        ngx_http_auth_pat_redis_stats_attach(
            (u_char *) ctx->m + ngx_http_auth_pat_metrics_head,
            (ngx_slab_pool_t *) zone[i].shm.addr, ctx->gen);
        return;
    }
}


ngx_int_t
ngx_http_auth_pat_metrics_zone(ngx_conf_t *cf)
{
    size_t                            size;
    ngx_shm_zone_t                   *shm_zone;
    ngx_http_auth_pat_metrics_ctx_t  *ctx;

    /* the slab pool's own pages, and room to spare */
    size = ngx_align(ngx_http_auth_pat_metrics_size(), ngx_pagesize)
           + 8 * ngx_pagesize;

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_auth_pat_metrics_name, size,
                                     ngx_http_auth_pat_metrics_tag);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    if (shm_zone->data != NULL) {
        /* another auth_pat_status location of this configuration */
        return NGX_OK;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_auth_pat_metrics_ctx_t));
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    shm_zone->data = ctx;
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
