
/*
 * The invalidation feed.  Revoke and rotate run a script that increments
 * NS inval:seq and publishes "SEQ:DIGEST" on NS inval.  Each worker with
 * a cache subscribes; after every (re)subscription it reads the counter
 * and the dataset's epoch (NS epoch, a UUID made with SET NX by whoever
 * finds none): if the zone has not applied exactly that invalidation of
 * that dataset, some were missed or Redis lost its data, and the zone is
 * emptied.  The epoch is read again every keepalive, so that a FLUSHALL,
 * or another Redis at the same address, is noticed without a reconnect.
 * Until the feed is in sync, and whenever a link is down, the cache is
 * not trusted.
 *
 * Every (re)sync has a generation, so that a reply meant for an earlier
 * one is ignored: its successor sent its own commands.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "pat_token.h"
#include "ngx_http_auth_pat_inval.h"


#define NGX_HTTP_AUTH_PAT_INVAL_RESYNC  100
#define NGX_HTTP_AUTH_PAT_INVAL_EPOCH   64


/* per-worker state */
static ngx_http_auth_pat_cache_t        *ngx_http_auth_pat_inval_cache;
static ngx_http_auth_pat_inval_names_t   ngx_http_auth_pat_inval_names;
static ngx_msec_t                        ngx_http_auth_pat_inval_every;
static ngx_uint_t                        ngx_http_auth_pat_inval_synced;
static ngx_uint_t                        ngx_http_auth_pat_inval_generation;
static ngx_event_t                       ngx_http_auth_pat_inval_resync;
static ngx_event_t                       ngx_http_auth_pat_inval_probe;
static ngx_msec_t                        ngx_http_auth_pat_inval_bad_logged;

/* the epoch of the dataset the zone is in sync with, and one being read */
static u_char     ngx_http_auth_pat_inval_epoch[NGX_HTTP_AUTH_PAT_INVAL_EPOCH];
static size_t     ngx_http_auth_pat_inval_epoch_len;
static u_char     ngx_http_auth_pat_inval_read[NGX_HTTP_AUTH_PAT_INVAL_EPOCH];
static ngx_int_t  ngx_http_auth_pat_inval_read_len;


static void ngx_http_auth_pat_inval_sync(void);


ngx_uint_t
ngx_http_auth_pat_inval_cache_trusted(void)
{
    ngx_uint_t  drained;

    /* an invalidation already received must win over the cache */
    drained = ngx_http_auth_pat_redis_poll();

    return drained
           && ngx_http_auth_pat_inval_synced
           && ngx_http_auth_pat_redis_live();
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
    u_char      md[PAT_DIGEST_LEN];
    ngx_int_t   seq;
    ngx_uint_t  n;

    if (ngx_http_auth_pat_inval_parse(msg, len, &seq, md) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                      "auth_pat: unexpected invalidation message");

        /* not understood: trust nothing cached */
        ngx_http_auth_pat_cache_sync(ngx_http_auth_pat_inval_cache, -2, NULL,
                                     ngx_cycle->log);
        return;
    }

    n = ngx_http_auth_pat_cache_invalidate(ngx_http_auth_pat_inval_cache, md,
                                           seq);
    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "auth_pat: invalidations were missed while "
                      "unsubscribed; %ui cached tokens dropped", n);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "auth_pat invalidation %i applied", seq);
}


/* the next attempt soon; the cache stays bypassed meanwhile */

static void
ngx_http_auth_pat_inval_retry(void)
{
    if (!ngx_http_auth_pat_inval_resync.timer_set && !ngx_exiting) {
        ngx_add_timer(&ngx_http_auth_pat_inval_resync,
                      NGX_HTTP_AUTH_PAT_INVAL_RESYNC);
    }
}


static void
ngx_http_auth_pat_inval_ignore(void *data, redisReply *reply, ngx_int_t rc)
{
}


/* the reply to "GET NS epoch" of a sync; data is its generation */

static void
ngx_http_auth_pat_inval_epoch_read(void *data, redisReply *reply,
    ngx_int_t rc)
{
    if ((ngx_uint_t) (uintptr_t) data != ngx_http_auth_pat_inval_generation) {
        return;
    }

    ngx_http_auth_pat_inval_read_len = -1;

    if (rc == NGX_OK && reply->type == REDIS_REPLY_STRING
        && reply->len > 0 && reply->len <= NGX_HTTP_AUTH_PAT_INVAL_EPOCH)
    {
        ngx_memcpy(ngx_http_auth_pat_inval_read, reply->str, reply->len);
        ngx_http_auth_pat_inval_read_len = reply->len;
    }
}


/* the reply to "GET NS inval:seq", after the epoch's */

static void
ngx_http_auth_pat_inval_counted(void *data, redisReply *reply, ngx_int_t rc)
{
    ngx_int_t  seq;
    ngx_str_t  epoch;

    if ((ngx_uint_t) (uintptr_t) data != ngx_http_auth_pat_inval_generation) {
        return;
    }

    if (rc != NGX_OK
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_NIL)
        || ngx_http_auth_pat_inval_read_len <= 0)
    {
        ngx_http_auth_pat_inval_retry();
        return;
    }

    seq = 0;

    if (reply->type == REDIS_REPLY_STRING) {
        seq = ngx_atoi((u_char *) reply->str, reply->len);
        if (seq == NGX_ERROR) {
            /* no zone can be in sync with it: the cache is not used */
            if (ngx_http_auth_pat_inval_bad_logged == 0
                || ngx_current_msec - ngx_http_auth_pat_inval_bad_logged
                   >= 60000)
            {
                ngx_http_auth_pat_inval_bad_logged = ngx_current_msec
                                                     ? ngx_current_msec : 1;
                ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                              "auth_pat: \"%V\" holds no number: the cache "
                              "is not used until it does",
                              &ngx_http_auth_pat_inval_names.seq);
            }

            ngx_http_auth_pat_cache_sync(ngx_http_auth_pat_inval_cache, -2,
                                         NULL, ngx_cycle->log);
            ngx_http_auth_pat_inval_retry();
            return;
        }
    }

    /*
     * messages published before the counter was read are in the
     * subscriber socket by now: apply them first
     */
    ngx_http_auth_pat_redis_poll_now();

    if ((ngx_uint_t) (uintptr_t) data != ngx_http_auth_pat_inval_generation) {
        /* the subscription dropped while polling */
        return;
    }

    ngx_memcpy(ngx_http_auth_pat_inval_epoch, ngx_http_auth_pat_inval_read,
               ngx_http_auth_pat_inval_read_len);
    ngx_http_auth_pat_inval_epoch_len = ngx_http_auth_pat_inval_read_len;

    epoch.data = ngx_http_auth_pat_inval_epoch;
    epoch.len = ngx_http_auth_pat_inval_epoch_len;

    ngx_http_auth_pat_cache_sync(ngx_http_auth_pat_inval_cache, seq, &epoch,
                                 ngx_cycle->log);
    ngx_http_auth_pat_inval_synced = 1;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "auth_pat invalidation feed in sync at %i, epoch %V",
                   seq, &epoch);
}


/*
 * SET NX of a new epoch (refused harmlessly by a replica, or when one
 * exists), then the epoch and the counter, pipelined in that order
 */

static void
ngx_http_auth_pat_inval_sync(void)
{
    void                             *gen;
    u_char                            uuid[PAT_UUID_LEN + 1];
    size_t                            argvlen[4];
    const char                       *argv[4];
    ngx_http_auth_pat_inval_names_t  *n;

    n = &ngx_http_auth_pat_inval_names;
    gen = (void *) (uintptr_t) ngx_http_auth_pat_inval_generation;

    if (ngx_http_auth_pat_uuid_v4((char *) uuid) != 0) {
        ngx_http_auth_pat_inval_retry();
        return;
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (char *) n->epoch.data;
    argvlen[1] = n->epoch.len;
    argv[2] = (char *) uuid;
    argvlen[2] = PAT_UUID_LEN;
    argv[3] = "NX";
    argvlen[3] = 2;

    (void) ngx_http_auth_pat_redis_command(NGX_HTTP_AUTH_PAT_REDIS_WRITE,
                                           ngx_http_auth_pat_inval_ignore,
                                           NULL, 4, argv, argvlen);

    argv[0] = "GET";
    argvlen[0] = 3;

    if (ngx_http_auth_pat_redis_command(NGX_HTTP_AUTH_PAT_REDIS_READ,
                                        ngx_http_auth_pat_inval_epoch_read,
                                        gen, 2, argv, argvlen)
        == NULL)
    {
        ngx_http_auth_pat_inval_retry();
        return;
    }

    argv[1] = (char *) n->seq.data;
    argvlen[1] = n->seq.len;

    if (ngx_http_auth_pat_redis_command(NGX_HTTP_AUTH_PAT_REDIS_READ,
                                        ngx_http_auth_pat_inval_counted,
                                        gen, 2, argv, argvlen)
        == NULL)
    {
        ngx_http_auth_pat_inval_retry();
    }
}


static void
ngx_http_auth_pat_inval_restart(void)
{
    ngx_http_auth_pat_inval_synced = 0;
    ngx_http_auth_pat_inval_generation++;

    if (ngx_http_auth_pat_inval_resync.timer_set) {
        ngx_del_timer(&ngx_http_auth_pat_inval_resync);
    }
}


static void
ngx_http_auth_pat_inval_resync_handler(ngx_event_t *ev)
{
    if (!ngx_http_auth_pat_inval_synced && !ngx_exiting) {
        ngx_http_auth_pat_inval_sync();
    }
}


/* the keepalive's epoch check: another dataset is synced afresh */

static void
ngx_http_auth_pat_inval_probed(void *data, redisReply *reply, ngx_int_t rc)
{
    if ((ngx_uint_t) (uintptr_t) data != ngx_http_auth_pat_inval_generation
        || !ngx_http_auth_pat_inval_synced
        || rc != NGX_OK
        || reply->type == REDIS_REPLY_ERROR)
    {
        return;
    }

    if (reply->type == REDIS_REPLY_STRING
        && reply->len == ngx_http_auth_pat_inval_epoch_len
        && ngx_memcmp(reply->str, ngx_http_auth_pat_inval_epoch, reply->len)
           == 0)
    {
        return;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "auth_pat invalidation feed: the epoch changed");

    ngx_http_auth_pat_inval_restart();
    ngx_http_auth_pat_inval_sync();
}


static void
ngx_http_auth_pat_inval_probe_handler(ngx_event_t *ev)
{
    void        *gen;
    size_t       argvlen[2];
    const char  *argv[2];

    if (ngx_exiting) {
        return;
    }

    if (ngx_http_auth_pat_inval_synced) {
        gen = (void *) (uintptr_t) ngx_http_auth_pat_inval_generation;

        argv[0] = "GET";
        argvlen[0] = 3;
        argv[1] = (char *) ngx_http_auth_pat_inval_names.epoch.data;
        argvlen[1] = ngx_http_auth_pat_inval_names.epoch.len;

        (void) ngx_http_auth_pat_redis_command(NGX_HTTP_AUTH_PAT_REDIS_READ,
                                               ngx_http_auth_pat_inval_probed,
                                               gen, 2, argv, argvlen);
    }

    ngx_add_timer(ev, ngx_http_auth_pat_inval_every);
}


static void
ngx_http_auth_pat_inval_state(void *data, ngx_uint_t up)
{
    ngx_http_auth_pat_inval_restart();

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "auth_pat invalidation feed %s, generation %ui",
                   up ? "subscribed" : "lost",
                   ngx_http_auth_pat_inval_generation);

    if (up) {
        ngx_http_auth_pat_inval_sync();
    }
}


ngx_int_t
ngx_http_auth_pat_inval_init_process(ngx_cycle_t *cycle,
    ngx_http_auth_pat_store_conf_t *scf, ngx_http_auth_pat_redis_conf_t *rcf,
    ngx_http_auth_pat_cache_t *cache)
{
    ngx_http_auth_pat_inval_cache = cache;
    ngx_http_auth_pat_inval_every = rcf->keepalive;

    if (ngx_http_auth_pat_store_inval_names(cycle->pool, scf,
                                            &ngx_http_auth_pat_inval_names)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the timers' debug lines read ev->data as a connection's fd */
    ngx_http_auth_pat_inval_resync.data = cycle;
    ngx_http_auth_pat_inval_probe.data = cycle;

    ngx_http_auth_pat_inval_resync.handler =
                                       ngx_http_auth_pat_inval_resync_handler;
    ngx_http_auth_pat_inval_resync.log = cycle->log;
    ngx_http_auth_pat_inval_resync.cancelable = 1;

    ngx_http_auth_pat_inval_probe.handler =
                                        ngx_http_auth_pat_inval_probe_handler;
    ngx_http_auth_pat_inval_probe.log = cycle->log;
    ngx_http_auth_pat_inval_probe.cancelable = 1;

    ngx_add_timer(&ngx_http_auth_pat_inval_probe,
                  ngx_http_auth_pat_inval_every);

    return ngx_http_auth_pat_redis_subscribe(cycle, rcf,
                                     &ngx_http_auth_pat_inval_names.channel,
                                     ngx_http_auth_pat_inval_message,
                                     ngx_http_auth_pat_inval_state, NULL);
}


void
ngx_http_auth_pat_inval_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_auth_pat_inval_resync.timer_set) {
        ngx_del_timer(&ngx_http_auth_pat_inval_resync);
    }

    if (ngx_http_auth_pat_inval_probe.timer_set) {
        ngx_del_timer(&ngx_http_auth_pat_inval_probe);
    }

    ngx_http_auth_pat_inval_synced = 0;
}
