
/*
 * The invalidation feed.  Revoke and rotate run a script that increments
 * NS inval:seq and publishes "SEQ:DIGEST" on NS inval.  Each worker with
 * a cache subscribes; after every (re)subscription it reads the counter:
 * if the zone has not applied exactly that invalidation, some were
 * missed, and the zone is emptied.  Until then, and whenever the
 * subscription or the command connection is down, the cache is not
 * trusted.
 *
 * Every subscription has an epoch, so that the counter's reply meant for
 * an earlier subscription is ignored: its successor sent its own GET.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "pat_token.h"
#include "ngx_http_auth_pat_inval.h"


#define NGX_HTTP_AUTH_PAT_INVAL_RESYNC  100


/* per-worker state */
static ngx_http_auth_pat_cache_t  *ngx_http_auth_pat_inval_cache;
static ngx_str_t                   ngx_http_auth_pat_inval_seq_key;
static ngx_uint_t                  ngx_http_auth_pat_inval_synced;
static ngx_uint_t                  ngx_http_auth_pat_inval_epoch;
static ngx_event_t                 ngx_http_auth_pat_inval_resync;


ngx_uint_t
ngx_http_auth_pat_inval_cache_trusted(void)
{
    ngx_uint_t  drained;

    /* an invalidation already received must win over the cache */
    drained = ngx_http_auth_pat_redis_poll();

    return drained
           && ngx_http_auth_pat_inval_synced
           && ngx_http_auth_pat_redis_ready();
}


/* "SEQ:DIGEST" */

static ngx_int_t
ngx_http_auth_pat_inval_parse(u_char *msg, size_t len, ngx_int_t *seq,
    u_char *md)
{
    u_char      *p, *last;
    ngx_int_t    hi, lo;
    ngx_uint_t   i;

    last = msg + len;
    p = ngx_strlchr(msg, last, ':');

    if (p == NULL || last - p - 1 != PAT_DIGEST_HEX_LEN) {
        return NGX_ERROR;
    }

    *seq = ngx_atoi(msg, p - msg);
    if (*seq == NGX_ERROR) {
        return NGX_ERROR;
    }

    p++;

    for (i = 0; i < PAT_DIGEST_LEN; i++) {
        hi = ngx_hextoi(p + 2 * i, 1);
        lo = ngx_hextoi(p + 2 * i + 1, 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            return NGX_ERROR;
        }

        md[i] = (u_char) ((hi << 4) | lo);
    }

    return NGX_OK;
}


static void
ngx_http_auth_pat_inval_message(void *data, u_char *msg, size_t len)
{
    u_char     md[PAT_DIGEST_LEN];
    ngx_int_t  seq;

    if (ngx_http_auth_pat_inval_parse(msg, len, &seq, md) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "auth_pat: unexpected invalidation message");

        /* not understood: trust nothing cached */
        ngx_http_auth_pat_cache_sync(ngx_http_auth_pat_inval_cache, -2,
                                     ngx_cycle->log);
        return;
    }

    ngx_http_auth_pat_cache_invalidate(ngx_http_auth_pat_inval_cache, md,
                                       seq);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "auth_pat invalidation %i applied", seq);
}


/* the reply to "GET NS inval:seq"; data is the subscription's epoch */

static void
ngx_http_auth_pat_inval_counted(void *data, redisReply *reply, ngx_int_t rc)
{
    ngx_int_t  seq;

    if ((ngx_uint_t) (uintptr_t) data != ngx_http_auth_pat_inval_epoch) {
        return;
    }

    if (rc != NGX_OK
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_NIL))
    {
        /* try again soon; the cache stays bypassed meanwhile */
        if (!ngx_http_auth_pat_inval_resync.timer_set && !ngx_exiting) {
            ngx_add_timer(&ngx_http_auth_pat_inval_resync,
                          NGX_HTTP_AUTH_PAT_INVAL_RESYNC);
        }

        return;
    }

    seq = 0;

    if (reply->type == REDIS_REPLY_STRING) {
        seq = ngx_atoi((u_char *) reply->str, reply->len);
        if (seq == NGX_ERROR) {
            seq = -2;
        }
    }

    /*
     * messages published before the counter was read are in the
     * subscriber socket by now: apply them first
     */
    ngx_http_auth_pat_redis_poll_now();

    if ((ngx_uint_t) (uintptr_t) data != ngx_http_auth_pat_inval_epoch) {
        /* the subscription dropped while polling */
        return;
    }

    ngx_http_auth_pat_cache_sync(ngx_http_auth_pat_inval_cache, seq,
                                 ngx_cycle->log);
    ngx_http_auth_pat_inval_synced = 1;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "auth_pat invalidation feed in sync at %i", seq);
}


static void
ngx_http_auth_pat_inval_sync(void)
{
    void        *epoch;
    size_t       argvlen[2];
    const char  *argv[2];

    epoch = (void *) (uintptr_t) ngx_http_auth_pat_inval_epoch;

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = (char *) ngx_http_auth_pat_inval_seq_key.data;
    argvlen[1] = ngx_http_auth_pat_inval_seq_key.len;

    if (ngx_http_auth_pat_redis_command(ngx_http_auth_pat_inval_counted,
                                        epoch, 2, argv, argvlen)
        == NULL)
    {
        ngx_http_auth_pat_inval_counted(epoch, NULL, NGX_ERROR);
    }
}


static void
ngx_http_auth_pat_inval_resync_handler(ngx_event_t *ev)
{
    if (!ngx_http_auth_pat_inval_synced && !ngx_exiting) {
        ngx_http_auth_pat_inval_sync();
    }
}


static void
ngx_http_auth_pat_inval_state(void *data, ngx_uint_t up)
{
    ngx_http_auth_pat_inval_synced = 0;
    ngx_http_auth_pat_inval_epoch++;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "auth_pat invalidation feed %s, epoch %ui",
                   up ? "subscribed" : "lost",
                   ngx_http_auth_pat_inval_epoch);

    if (up) {
        ngx_http_auth_pat_inval_sync();

    } else if (ngx_http_auth_pat_inval_resync.timer_set) {
        ngx_del_timer(&ngx_http_auth_pat_inval_resync);
    }
}


ngx_int_t
ngx_http_auth_pat_inval_init_process(ngx_cycle_t *cycle,
    ngx_http_auth_pat_store_conf_t *scf, ngx_http_auth_pat_redis_conf_t *rcf,
    ngx_http_auth_pat_cache_t *cache)
{
    ngx_str_t  *channel;

    ngx_http_auth_pat_inval_cache = cache;

    channel = ngx_palloc(cycle->pool, sizeof(ngx_str_t));
    if (channel == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_auth_pat_store_inval_names(cycle->pool, scf, channel,
                                            &ngx_http_auth_pat_inval_seq_key)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_auth_pat_inval_resync.handler =
                                       ngx_http_auth_pat_inval_resync_handler;
    ngx_http_auth_pat_inval_resync.log = cycle->log;
    ngx_http_auth_pat_inval_resync.cancelable = 1;

    return ngx_http_auth_pat_redis_subscribe(cycle, rcf, channel,
                                             ngx_http_auth_pat_inval_message,
                                             ngx_http_auth_pat_inval_state,
                                             NULL);
}


void
ngx_http_auth_pat_inval_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_auth_pat_inval_resync.timer_set) {
        ngx_del_timer(&ngx_http_auth_pat_inval_resync);
    }

    ngx_http_auth_pat_inval_synced = 0;
}
