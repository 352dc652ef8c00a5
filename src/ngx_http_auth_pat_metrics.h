
/*
 * The module's counters, in a shared zone of their own ("auth_pat_status",
 * made when a location has auth_pat_status), so that they add up over
 * all workers and survive a reload.  Every increment is one atomic add,
 * and nothing is counted without the zone.  ngx_http_auth_pat_status.c
 * renders them.
 */


#ifndef _NGX_HTTP_AUTH_PAT_METRICS_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_METRICS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Bumped whenever the layout of the zone changes (these counters, or the
 * Redis layer's records): a zone that a module of another layout wrote is
 * emptied.  (A build may set it, as t/39-status.t does to test that.)
 */
#ifndef NGX_HTTP_AUTH_PAT_METRICS_LAYOUT
#define NGX_HTTP_AUTH_PAT_METRICS_LAYOUT  3
#endif

#define NGX_HTTP_AUTH_PAT_METRICS_VERDICTS  6   /* the verdict enum */


typedef enum {
    NGX_HTTP_AUTH_PAT_M_CREATE = 0,
    NGX_HTTP_AUTH_PAT_M_LIST,
    NGX_HTTP_AUTH_PAT_M_GET,
    NGX_HTTP_AUTH_PAT_M_REVOKE,
    NGX_HTTP_AUTH_PAT_M_ROTATE,
    NGX_HTTP_AUTH_PAT_M_SELF,
    NGX_HTTP_AUTH_PAT_M_CONFIG,
    NGX_HTTP_AUTH_PAT_M_INTROSPECT,
    NGX_HTTP_AUTH_PAT_M_OPENAPI,
    NGX_HTTP_AUTH_PAT_M_OTHER,            /* no route: 404, 401 first... */
    NGX_HTTP_AUTH_PAT_M_ROUTES
} ngx_http_auth_pat_metrics_route_e;


#define NGX_HTTP_AUTH_PAT_METRICS_STATUSES  16   /* the last: any other */


typedef struct {
    /* the header, the same in every layout from 3 on */
    ngx_uint_t                 layout;
    size_t                     size;          /* of this allocation */
    ngx_atomic_t               gens;          /* configurations so far */
    uintptr_t                  retired;       /* the block before, from sp */

    ngx_atomic_t               checks[NGX_HTTP_AUTH_PAT_METRICS_VERDICTS];
    ngx_atomic_t               cache_hits;
    ngx_atomic_t               cache_misses;
    ngx_atomic_t               cache_untrusted;
    ngx_atomic_t               api[NGX_HTTP_AUTH_PAT_M_ROUTES]
                                  [NGX_HTTP_AUTH_PAT_METRICS_STATUSES];
    ngx_atomic_t               tokens_created;
    ngx_atomic_t               tokens_revoked;
    ngx_atomic_t               tokens_rotated;
    ngx_atomic_t               audit_failures;
} ngx_http_auth_pat_metrics_t;


/* NULL without the zone */
extern ngx_http_auth_pat_metrics_t  *ngx_http_auth_pat_metrics;

/* the statuses counted one by one, in the order of api[][] */
extern const ngx_uint_t  ngx_http_auth_pat_metrics_statuses[];
extern const char       *ngx_http_auth_pat_metrics_routes[];


/* the zone (once per configuration) */
ngx_int_t ngx_http_auth_pat_metrics_zone(ngx_conf_t *cf);

/* in each worker, before any count */
void ngx_http_auth_pat_metrics_init_process(ngx_cycle_t *cycle);

void ngx_http_auth_pat_metrics_api(ngx_uint_t route, ngx_uint_t status);


#define ngx_http_auth_pat_metric_add(field)                                  \
    do {                                                                     \
        if (ngx_http_auth_pat_metrics != NULL) {                             \
            (void) ngx_atomic_fetch_add(&ngx_http_auth_pat_metrics->field,   \
                                        1);                                  \
        }                                                                    \
    } while (0)


#endif /* _NGX_HTTP_AUTH_PAT_METRICS_H_INCLUDED_ */
