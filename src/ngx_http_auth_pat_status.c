
/*
 * The Prometheus text of the metrics: the checks by result, the cache,
 * the API by route and status, the tokens' lifecycle, and each Redis
 * endpoint (up, commands, errors by kind, reconnects, latency).  Series
 * of the API that are still 0 are left out; every other one is always
 * there.  Counters are read without a lock: each is one atomic word.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_module.h"
#include "ngx_http_auth_pat_status.h"
#include "ngx_http_auth_pat_metrics.h"
#include "ngx_http_auth_pat_cache.h"
#include "ngx_http_auth_pat_redis_stats.h"


/* by verdict: ngx_http_auth_pat_verdict_e */
static const char  *ngx_http_auth_pat_status_results[] = {
    "ok", "no_credentials", "invalid_token", "invalid_request",
    "unavailable", "insufficient_scope"
};

static const char  *ngx_http_auth_pat_status_kinds[] = {
    "timeout", "refused", "error", "down"
};


/* all but the endpoints' series: the families, checks, cache, tokens */
#define NGX_HTTP_AUTH_PAT_STATUS_FIXED     8192

/* a series of the API, at most */
#define NGX_HTTP_AUTH_PAT_STATUS_SERIES    128

/* the series of one endpoint: up, commands, errors, reconnects, latency */
#define NGX_HTTP_AUTH_PAT_STATUS_LINES                                       \
    (1 + 1 + NGX_HTTP_AUTH_PAT_REDIS_ERR_KINDS + 1                           \
     + NGX_HTTP_AUTH_PAT_REDIS_STATS_BUCKETS + 1 + 2)

/*
 * The longest of them: the longest name and other labels, the address
 * with every byte escaped, the largest value (a sum has ".000" more)
 */
#define NGX_HTTP_AUTH_PAT_STATUS_LINE                                        \
    (sizeof("auth_pat_redis_latency_seconds_bucket{addr=\"\","             \
            "kind=\"timeout\"} .000\n") - 1                                 \
     + 2 * NGX_SOCKADDR_STRLEN + NGX_ATOMIC_T_LEN)

/* the endpoints shown by one scrape: those in use when it began */
typedef struct {
    ngx_http_auth_pat_redis_stats_t  *st[NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES
                                         + 1];
    ngx_uint_t                        n;
} ngx_http_auth_pat_status_nodes_t;


static u_char *
ngx_http_auth_pat_status_family(u_char *p, u_char *last, const char *name,
    const char *type, const char *help)
{
    return ngx_slprintf(p, last, "# HELP %s %s\n# TYPE %s %s\n",
                        name, help, name, type);
}


/* a label value: '\', '"' and newlines escaped */

static u_char *
ngx_http_auth_pat_status_label(u_char *p, u_char *last, u_char *s, size_t n)
{
    size_t  i;

    for (i = 0; i < n && p + 2 <= last; i++) {
        if (s[i] == '\\' || s[i] == '"') {
            *p++ = '\\';
            *p++ = s[i];

        } else if (s[i] == '\n') {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = s[i];
        }
    }

    return p;
}


static u_char *
ngx_http_auth_pat_status_checks(u_char *p, u_char *last,
    ngx_http_auth_pat_metrics_t *m, ngx_http_auth_pat_main_conf_t *pmcf)
{
    size_t      bytes;
    ngx_uint_t  i, entries;

    p = ngx_http_auth_pat_status_family(p, last, "auth_pat_checks_total",
            "counter", "Token checks of auth_pat, by result.");

    for (i = 0; i < NGX_HTTP_AUTH_PAT_METRICS_VERDICTS; i++) {
        p = ngx_slprintf(p, last, "auth_pat_checks_total{result=\"%s\"} %uA\n",
                         ngx_http_auth_pat_status_results[i], m->checks[i]);
    }

    p = ngx_http_auth_pat_status_family(p, last, "auth_pat_cache_hits_total",
            "counter", "Checks answered from the cache.");
    p = ngx_slprintf(p, last, "auth_pat_cache_hits_total %uA\n",
                     m->cache_hits);
    p = ngx_http_auth_pat_status_family(p, last,
            "auth_pat_cache_misses_total", "counter",
            "Checks the cache could have answered but held no entry for.");
    p = ngx_slprintf(p, last, "auth_pat_cache_misses_total %uA\n",
                     m->cache_misses);
    p = ngx_http_auth_pat_status_family(p, last,
            "auth_pat_cache_untrusted_total", "counter",
            "Checks sent to Redis because the cache was not trusted then.");
    p = ngx_slprintf(p, last, "auth_pat_cache_untrusted_total %uA\n",
                     m->cache_untrusted);

    entries = 0;
    bytes = 0;

    if (pmcf->cache) {
        ngx_http_auth_pat_cache_usage(pmcf->cache, &entries, &bytes);
    }

    p = ngx_http_auth_pat_status_family(p, last, "auth_pat_cache_entries",
            "gauge", "Tokens in the cache now.");
    p = ngx_slprintf(p, last, "auth_pat_cache_entries %ui\n", entries);
    p = ngx_http_auth_pat_status_family(p, last, "auth_pat_cache_bytes",
            "gauge", "Bytes that the cache entries take.");
    p = ngx_slprintf(p, last, "auth_pat_cache_bytes %uz\n", bytes);

    return p;
}


static u_char *
ngx_http_auth_pat_status_api(u_char *p, u_char *last,
    ngx_http_auth_pat_metrics_t *m)
{
    ngx_uint_t  r, s;

    p = ngx_http_auth_pat_status_family(p, last, "auth_pat_api_requests_total",
            "counter", "Requests of the token API and introspection, by "
            "route and status.");

    for (r = 0; r < NGX_HTTP_AUTH_PAT_M_ROUTES; r++) {
        for (s = 0; s < NGX_HTTP_AUTH_PAT_METRICS_STATUSES; s++) {
            if (m->api[r][s] == 0) {
                continue;
            }

            if (ngx_http_auth_pat_metrics_statuses[s]) {
                p = ngx_slprintf(p, last, "auth_pat_api_requests_total"
                                 "{route=\"%s\",status=\"%ui\"} %uA\n",
                                 ngx_http_auth_pat_metrics_routes[r],
                                 ngx_http_auth_pat_metrics_statuses[s],
                                 m->api[r][s]);

            } else {
                p = ngx_slprintf(p, last, "auth_pat_api_requests_total"
                                 "{route=\"%s\",status=\"other\"} %uA\n",
                                 ngx_http_auth_pat_metrics_routes[r],
                                 m->api[r][s]);
            }
        }
    }

    p = ngx_http_auth_pat_status_family(p, last,
            "auth_pat_tokens_created_total", "counter",
            "Tokens created (handed out).");
    p = ngx_slprintf(p, last, "auth_pat_tokens_created_total %uA\n",
                     m->tokens_created);
    p = ngx_http_auth_pat_status_family(p, last,
            "auth_pat_tokens_revoked_total", "counter", "Tokens revoked.");
    p = ngx_slprintf(p, last, "auth_pat_tokens_revoked_total %uA\n",
                     m->tokens_revoked);
    p = ngx_http_auth_pat_status_family(p, last,
            "auth_pat_tokens_rotated_total", "counter", "Tokens rotated.");
    p = ngx_slprintf(p, last, "auth_pat_tokens_rotated_total %uA\n",
                     m->tokens_rotated);
    p = ngx_http_auth_pat_status_family(p, last,
            "auth_pat_audit_failures_total", "counter",
            "Audit events not appended to the Redis stream.");
    p = ngx_slprintf(p, last, "auth_pat_audit_failures_total %uA\n",
                     m->audit_failures);

    return p;
}


/* one family over every endpoint */

typedef u_char *(*ngx_http_auth_pat_status_node_pt)(u_char *p, u_char *last,
    ngx_http_auth_pat_redis_stats_t *st, u_char *addr, size_t len,
    const char *name, size_t off);


/* a series: name{addr="addr"} v */

static u_char *
ngx_http_auth_pat_status_series(u_char *p, u_char *last, const char *name,
    u_char *addr, size_t len, ngx_atomic_uint_t v)
{
    p = ngx_slprintf(p, last, "%s{addr=\"", name);
    p = ngx_http_auth_pat_status_label(p, last, addr, len);

    return ngx_slprintf(p, last, "\"} %uA\n", v);
}


/*
 * The time of the last reply is another worker's clock, which may be a
 * little ahead of ours: the window is compared in signed milliseconds
 */

static u_char *
ngx_http_auth_pat_status_up(u_char *p, u_char *last,
    ngx_http_auth_pat_redis_stats_t *st, u_char *addr, size_t len,
    const char *name, size_t off)
{
    int64_t      now, reply;
    ngx_uint_t   up;
    ngx_time_t  *tp;

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;
    reply = (int64_t) st->last_reply;

    up = (reply != 0 && reply + (int64_t) st->window >= now) ? 1 : 0;

    return ngx_http_auth_pat_status_series(p, last, name, addr, len, up);
}


/* a counter of the record, at off: commands, reconnects */

static u_char *
ngx_http_auth_pat_status_counter(u_char *p, u_char *last,
    ngx_http_auth_pat_redis_stats_t *st, u_char *addr, size_t len,
    const char *name, size_t off)
{
    ngx_atomic_t  *v;

    v = (ngx_atomic_t *) ((u_char *) st + off);

    return ngx_http_auth_pat_status_series(p, last, name, addr, len, *v);
}


static u_char *
ngx_http_auth_pat_status_errors(u_char *p, u_char *last,
    ngx_http_auth_pat_redis_stats_t *st, u_char *addr, size_t len,
    const char *name, size_t off)
{
    ngx_uint_t  k;

    for (k = 0; k < NGX_HTTP_AUTH_PAT_REDIS_ERR_KINDS; k++) {
        p = ngx_slprintf(p, last, "%s{addr=\"", name);
        p = ngx_http_auth_pat_status_label(p, last, addr, len);
        p = ngx_slprintf(p, last, "\",kind=\"%s\"} %uA\n",
                         ngx_http_auth_pat_status_kinds[k], st->errors[k]);
    }

    return p;
}


/*
 * A bound in seconds as Prometheus' clients print it (Python's float
 * repr, which Prometheus 3 normalises le to): the fewest decimals, but
 * one at least: 0.001, 0.01, 0.25, 1.0, 2.5
 */

static u_char *
ngx_http_auth_pat_status_le(u_char *p, u_char *last, ngx_msec_t ms)
{
    ngx_uint_t  frac, digits;

    frac = ms % 1000;
    digits = 3;

    while (digits > 1 && frac % 10 == 0) {
        frac /= 10;
        digits--;
    }

    switch (digits) {

    case 1:
        return ngx_slprintf(p, last, "%M.%ui", ms / 1000, frac);

    case 2:
        return ngx_slprintf(p, last, "%M.%02ui", ms / 1000, frac);

    default:
        return ngx_slprintf(p, last, "%M.%03ui", ms / 1000, frac);
    }
}


static u_char *
ngx_http_auth_pat_status_latency(u_char *p, u_char *last,
    ngx_http_auth_pat_redis_stats_t *st, u_char *addr, size_t len,
    const char *name, size_t off)
{
    ngx_uint_t         b;
    ngx_atomic_uint_t  n, sum;

    n = 0;

    for (b = 0; b <= NGX_HTTP_AUTH_PAT_REDIS_STATS_BUCKETS; b++) {
        n += st->latency[b];

        p = ngx_slprintf(p, last, "%s_bucket{addr=\"", name);
        p = ngx_http_auth_pat_status_label(p, last, addr, len);

        if (b == NGX_HTTP_AUTH_PAT_REDIS_STATS_BUCKETS) {
            p = ngx_slprintf(p, last, "\",le=\"+Inf\"} %uA\n", n);
            break;
        }

        p = ngx_slprintf(p, last, "\",le=\"");
        p = ngx_http_auth_pat_status_le(p, last,
                                        ngx_http_auth_pat_redis_stats_bounds[b]);
        p = ngx_slprintf(p, last, "\"} %uA\n", n);
    }

    sum = st->latency_ms;

    p = ngx_slprintf(p, last, "%s_sum{addr=\"", name);
    p = ngx_http_auth_pat_status_label(p, last, addr, len);
    p = ngx_slprintf(p, last, "\"} %uA.%03uA\n", sum / 1000, sum % 1000);

    p = ngx_slprintf(p, last, "%s_count{addr=\"", name);
    p = ngx_http_auth_pat_status_label(p, last, addr, len);

    return ngx_slprintf(p, last, "\"} %uA\n", n);
}


static u_char *
ngx_http_auth_pat_status_nodes(u_char *p, u_char *last,
    ngx_http_auth_pat_status_nodes_t *nodes, const char *name,
    const char *type, const char *help, ngx_http_auth_pat_status_node_pt each,
    size_t off)
{
    size_t                            len;
    ngx_uint_t                        i;
    ngx_http_auth_pat_redis_stats_t  *st;

    p = ngx_http_auth_pat_status_family(p, last, name, type, help);

    for (i = 0; i < nodes->n; i++) {
        st = nodes->st[i];
        len = st->addr_len;

        p = each(p, last, st, st->addr, ngx_min(len, NGX_SOCKADDR_STRLEN),
                 name, off);
    }

    return p;
}


static u_char *
ngx_http_auth_pat_status_redis(u_char *p, u_char *last,
    ngx_http_auth_pat_status_nodes_t *nodes)
{
    p = ngx_http_auth_pat_status_nodes(p, last, nodes, "auth_pat_redis_up",
            "gauge", "1 when a reply came from the endpoint within "
            "keepalive + timeout.", ngx_http_auth_pat_status_up, 0);
    p = ngx_http_auth_pat_status_nodes(p, last, nodes,
            "auth_pat_redis_commands_total", "counter",
            "Commands sent to the endpoint, probes included.",
            ngx_http_auth_pat_status_counter,
            offsetof(ngx_http_auth_pat_redis_stats_t, commands));
    p = ngx_http_auth_pat_status_nodes(p, last, nodes,
            "auth_pat_redis_errors_total", "counter",
            "Failed commands and connects, by kind.",
            ngx_http_auth_pat_status_errors, 0);
    p = ngx_http_auth_pat_status_nodes(p, last, nodes,
            "auth_pat_redis_reconnects_total", "counter",
            "Connects after a connection's first.",
            ngx_http_auth_pat_status_counter,
            offsetof(ngx_http_auth_pat_redis_stats_t, reconnects));

    return ngx_http_auth_pat_status_nodes(p, last, nodes,
            "auth_pat_redis_latency_seconds", "histogram",
            "Time from a command's write to its reply (ms resolution).",
            ngx_http_auth_pat_status_latency, 0);
}


static ngx_int_t
ngx_http_auth_pat_status_handler(ngx_http_request_t *r)
{
    size_t                             size;
    ngx_int_t                          rc;
    ngx_buf_t                         *b;
    ngx_uint_t                         i;
    ngx_chain_t                        out;
    ngx_table_elt_t                   *h;
    ngx_http_auth_pat_metrics_t       *m;
    ngx_http_auth_pat_main_conf_t     *pmcf;
    ngx_http_auth_pat_redis_stats_t   *st;
    ngx_http_auth_pat_status_nodes_t   nodes;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    m = ngx_http_auth_pat_metrics;
    if (m == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_auth_pat_module);

    /* the endpoints are counted once: one claimed meanwhile waits */
    nodes.n = 0;

    for (i = 0; i <= NGX_HTTP_AUTH_PAT_REDIS_STATS_NODES; i++) {
        st = ngx_http_auth_pat_redis_stats_get(i);

        if (st != NULL) {
            nodes.st[nodes.n++] = st;
        }
    }

    size = NGX_HTTP_AUTH_PAT_STATUS_FIXED
           + NGX_HTTP_AUTH_PAT_STATUS_SERIES * NGX_HTTP_AUTH_PAT_M_ROUTES
             * NGX_HTTP_AUTH_PAT_METRICS_STATUSES
           + nodes.n * NGX_HTTP_AUTH_PAT_STATUS_LINES
             * NGX_HTTP_AUTH_PAT_STATUS_LINE;

    /*
     * Two bytes beyond the estimate: ngx_slprintf() and the label stop
     * short of the end silently, so output that reaches them did not fit
     */
    b = ngx_create_temp_buf(r->pool, size + 2);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_http_auth_pat_status_checks(b->last, b->end, m, pmcf);
    b->last = ngx_http_auth_pat_status_api(b->last, b->end, m);
    b->last = ngx_http_auth_pat_status_redis(b->last, b->end, &nodes);

    if ((size_t) (b->last - b->pos) > size) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "auth_pat: the metrics took more than the %uz bytes "
                      "estimated for %ui endpoints", size, nodes.n);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = sizeof("text/plain") - 1;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, "no-store");

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


char *
ngx_http_auth_pat_status_conf(ngx_conf_t *cf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_auth_pat_status_handler;

    if (ngx_http_auth_pat_metrics_zone(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}
