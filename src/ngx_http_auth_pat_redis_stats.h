
/*
 * Counters of each Redis endpoint, shared by every worker: commands,
 * errors by kind, reconnects, a latency histogram and the time of the
 * last reply.  They live in the metrics' shared zone, which hands this
 * layer its part (ngx_http_auth_pat_redis_stats_attach()); without one,
 * nothing is counted.  The first 64 addresses have a record each; any
 * later one is counted under "other".  A record carries the generation
 * (the configuration) that last connected to its address: only those of
 * the current one are shown, and older ones are reused when the table is
 * full.
 */


#ifndef _NGX_HTTP_AUTH_PAT_REDIS_STATS_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_REDIS_STATS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES    64
#define NGX_HTTP_AUTH_PAT_REDIS_STATS_BUCKETS  11


typedef enum {
    NGX_HTTP_AUTH_PAT_REDIS_ERR_TIMEOUT = 0,   /* no reply in time */
    NGX_HTTP_AUTH_PAT_REDIS_ERR_REFUSED,       /* connect or setup failed */
    NGX_HTTP_AUTH_PAT_REDIS_ERR_ERROR,         /* an error reply */
    NGX_HTTP_AUTH_PAT_REDIS_ERR_DOWN,          /* failed unsent: no link */
    NGX_HTTP_AUTH_PAT_REDIS_ERR_KINDS
} ngx_http_auth_pat_redis_err_e;


typedef struct {
    u_char                   addr[NGX_SOCKADDR_STRLEN];
    ngx_atomic_t             addr_len;    /* 0: free; set last */
    ngx_atomic_t             gen;         /* the last configuration's */
    ngx_atomic_t             window;      /* keepalive + timeout, ms */
    ngx_atomic_t             last_reply;  /* Unix ms */
    ngx_atomic_t             commands;
    ngx_atomic_t             errors[NGX_HTTP_AUTH_PAT_REDIS_ERR_KINDS];
    ngx_atomic_t             reconnects;
    ngx_atomic_t             latency[NGX_HTTP_AUTH_PAT_REDIS_STATS_BUCKETS + 1];
    ngx_atomic_t             latency_ms;  /* their sum */
} ngx_http_auth_pat_redis_stats_t;


/* the upper bounds of the latency buckets, in ms (then +Inf) */
extern const ngx_msec_t  ngx_http_auth_pat_redis_stats_bounds[];


/* the room the counters need in a shared zone */
size_t ngx_http_auth_pat_redis_stats_size(void);

/* p: that room, zeroed, made ready (once, when the zone is made) */
void ngx_http_auth_pat_redis_stats_init(void *p);

/*
 * In a worker: p, that room (kept across reloads), or NULL; shpool: the
 * zone's, whose mutex guards claiming a record; gen: the worker's
 * configuration, made current here unless a newer one is
 */
void ngx_http_auth_pat_redis_stats_attach(void *p, ngx_slab_pool_t *shpool,
    ngx_uint_t gen);

/* the record of addr (claimed if new), or NULL: nothing is counted */
ngx_http_auth_pat_redis_stats_t *ngx_http_auth_pat_redis_stats_find(
    ngx_str_t *addr, ngx_msec_t window);

/* the i-th record (0 to NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES, the last
   "other"), or NULL when it is not in use by the current configuration */
ngx_http_auth_pat_redis_stats_t *ngx_http_auth_pat_redis_stats_get(
    ngx_uint_t i);

/* a reply to a command sent at sent (ngx_current_msec) */
void ngx_http_auth_pat_redis_stats_reply(ngx_http_auth_pat_redis_stats_t *st,
    ngx_msec_t sent);


#define ngx_http_auth_pat_redis_stats_add(st, field)                         \
    do {                                                                     \
        if ((st) != NULL) {                                                  \
            (void) ngx_atomic_fetch_add(&(st)->field, 1);                    \
        }                                                                    \
    } while (0)


#endif /* _NGX_HTTP_AUTH_PAT_REDIS_STATS_H_INCLUDED_ */
