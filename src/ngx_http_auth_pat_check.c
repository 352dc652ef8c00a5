
/*
 * The token check.  The checksum rejects garbage without Redis; the
 * cache answers when the invalidation feed says it may; otherwise one
 * HMGET, pipelined on the worker's Redis connection, while the request
 * waits without blocking.  A valid token's use is reported (lastUsedAt)
 * at most once a minute per token: the cache entry limits the reports
 * of this nginx, and without a cache a small table per worker does.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_metrics.h"
#include "ngx_http_auth_pat_check.h"
#include "ngx_http_auth_pat_cache.h"
#include "ngx_http_auth_pat_inval.h"
#include "ngx_http_auth_pat_parse.h"


#define NGX_HTTP_AUTH_PAT_TOUCH_SEC     60
#define NGX_HTTP_AUTH_PAT_TOUCH_SLOTS   4096


typedef struct {
    ngx_http_request_t               *request;
    ngx_http_auth_pat_ctx_t          *ctx;       /* where the verdict goes */
    ngx_http_auth_pat_store_cmd_t    *cmd;
    ngx_http_auth_pat_check_done_pt   done;
    uint64_t                          version;   /* of the cache */
    ngx_uint_t                        cacheable;
    u_char                            md[PAT_DIGEST_LEN];
} ngx_http_auth_pat_lookup_t;


/* without a cache: when this worker last reported a token's use */
typedef struct {
    u_char                            id[PAT_UUID_LEN];
    uint32_t                          sec;
} ngx_http_auth_pat_touch_slot_t;


static ngx_http_auth_pat_touch_slot_t
    ngx_http_auth_pat_touched[NGX_HTTP_AUTH_PAT_TOUCH_SLOTS];


static void
ngx_http_auth_pat_cancel(void *data)
{
    ngx_http_auth_pat_store_cmd_t  **cmdp = data;

    if (*cmdp != NULL) {
        ngx_http_auth_pat_store_cancel(*cmdp);
        *cmdp = NULL;
    }
}


ngx_int_t
ngx_http_auth_pat_cancel_on_cleanup(ngx_http_request_t *r,
    ngx_http_auth_pat_store_cmd_t **cmdp)
{
    ngx_http_cleanup_t  *cln;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_auth_pat_cancel;
    cln->data = cmdp;

    return NGX_OK;
}


/* lastUsedAt: reported unless this worker did so in the last minute */

static void
ngx_http_auth_pat_check_touch(ngx_http_request_t *r,
    ngx_http_auth_pat_identity_t *id, int64_t now, ngx_uint_t force)
{
    uint32_t                         sec;
    ngx_uint_t                       slot;
    ngx_http_auth_pat_touch_slot_t  *ts;
    ngx_http_auth_pat_main_conf_t   *pmcf;

    if (id->token_id.len != PAT_UUID_LEN) {
        return;
    }

    if (!force) {
        sec = (uint32_t) (now / 1000);
        slot = ngx_hash_key(id->token_id.data, PAT_UUID_LEN)
               % NGX_HTTP_AUTH_PAT_TOUCH_SLOTS;
        ts = &ngx_http_auth_pat_touched[slot];

        if (ngx_memcmp(ts->id, id->token_id.data, PAT_UUID_LEN) == 0
            && sec - ts->sec < NGX_HTTP_AUTH_PAT_TOUCH_SEC)
        {
            return;
        }

        ngx_memcpy(ts->id, id->token_id.data, PAT_UUID_LEN);
        ts->sec = sec;
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_auth_pat_module);

    ngx_http_auth_pat_store_touch(pmcf->store, r->pool, &id->user_id,
                                  &id->token_id, now);
}


static ngx_int_t
ngx_http_auth_pat_check_copy(ngx_pool_t *pool, ngx_str_t *dst, ngx_str_t *src)
{
    dst->len = src->len;
    dst->data = ngx_pnalloc(pool, src->len + 1);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src->data, src->len);
    dst->data[src->len] = '\0';

    return NGX_OK;
}


/*
 * The validation record, HMGET u i n e s c: NGX_OK with the identity in
 * pool, NGX_DECLINED for an unknown or expired token, NGX_ERROR for a
 * reply we do not understand.
 */

static ngx_int_t
ngx_http_auth_pat_check_record(redisReply *reply, ngx_pool_t *pool,
    int64_t now, ngx_http_auth_pat_identity_t *id)
{
    ngx_int_t    rc;
    ngx_str_t    f[6];
    ngx_uint_t   i;
    redisReply  *e;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 6) {
        return NGX_ERROR;
    }

    for (i = 0; i < 6; i++) {
        e = reply->element[i];

        if (e->type == REDIS_REPLY_STRING) {
            f[i].data = (u_char *) e->str;
            f[i].len = e->len;

        } else if (e->type == REDIS_REPLY_NIL) {
            ngx_str_null(&f[i]);

        } else {
            return NGX_ERROR;
        }
    }

    rc = ngx_http_auth_pat_parse_validation(f, now, &id->expires,
                                            &id->created);
    if (rc != NGX_OK) {
        return rc;
    }

    ngx_str_null(&id->token_name);
    ngx_str_null(&id->scopes);

    if (ngx_http_auth_pat_check_copy(pool, &id->user_id, &f[0]) != NGX_OK
        || ngx_http_auth_pat_check_copy(pool, &id->token_id, &f[1])
           != NGX_OK
        || (f[2].data
            && ngx_http_auth_pat_check_copy(pool, &id->token_name, &f[2])
               != NGX_OK)
        || (f[4].data
            && ngx_http_auth_pat_check_copy(pool, &id->scopes, &f[4])
               != NGX_OK))
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_auth_pat_check_looked_up(void *data, redisReply *reply,
    ngx_int_t rc)
{
    ngx_http_auth_pat_lookup_t  *lk = data;

    int64_t                         now;
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_auth_pat_ctx_t        *ctx;
    ngx_http_auth_pat_main_conf_t  *pmcf;

    r = lk->request;
    c = r->connection;
    lk->cmd = NULL;

    ctx = lk->ctx;
    ctx->state = NGX_HTTP_AUTH_PAT_CHECK_DONE;
    ctx->verdict = NGX_HTTP_AUTH_PAT_UNAVAILABLE;

    now = ngx_http_auth_pat_now();

    if (rc != NGX_OK) {
        /* the Redis layer has logged it */

    } else if (reply->type == REDIS_REPLY_ERROR) {
        /* the Redis layer logs each class of error, once */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "auth_pat lookup: redis error: %s", reply->str);

    } else {
        switch (ngx_http_auth_pat_check_record(reply, r->pool, now,
                                               &ctx->identity))
        {
        case NGX_OK:
            ctx->verdict = NGX_HTTP_AUTH_PAT_VALID;
            ctx->identified = 1;

            pmcf = ngx_http_get_module_main_conf(r, ngx_http_auth_pat_module);

            if (lk->cacheable && ngx_http_auth_pat_inval_cache_trusted()) {
                ngx_http_auth_pat_cache_put(pmcf->cache, lk->md,
                                            &ctx->identity, now,
                                            lk->version);
            }

            ngx_http_auth_pat_check_touch(r, &ctx->identity, now,
                                          lk->cacheable);
            break;

        case NGX_DECLINED:
            ctx->verdict = NGX_HTTP_AUTH_PAT_INVALID_TOKEN;
            break;

        default:
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "auth_pat: unexpected validation record");
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "auth_pat lookup done, verdict %d", ctx->verdict);

    lk->done(r);
    ngx_http_run_posted_requests(c);
}


/* a hit is the verdict, with no Redis at all */

static ngx_int_t
ngx_http_auth_pat_check_cached(ngx_http_request_t *r,
    ngx_http_auth_pat_ctx_t *ctx, ngx_http_auth_pat_cache_t *cache,
    u_char *md)
{
    int64_t     now;
    ngx_int_t   rc;
    ngx_uint_t  touch;

    now = ngx_http_auth_pat_now();

    rc = ngx_http_auth_pat_cache_get(cache, md, now, r->pool, &ctx->identity,
                                     &touch);

    if (rc == NGX_DECLINED) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "auth_pat cache miss");
        ngx_http_auth_pat_metric_add(cache_misses);
    }

    if (rc != NGX_OK) {
        return rc;
    }

    ngx_http_auth_pat_metric_add(cache_hits);

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "auth_pat cache hit");

    ctx->verdict = NGX_HTTP_AUTH_PAT_VALID;
    ctx->identified = 1;

    if (touch) {
        ngx_http_auth_pat_check_touch(r, &ctx->identity, now, 1);
    }

    return NGX_OK;
}


/* the Authorization header: a bearer token, or none, or garbage */

static ngx_http_auth_pat_verdict_e
ngx_http_auth_pat_check_header(ngx_http_request_t *r, ngx_str_t *token)
{
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h == NULL) {
        return NGX_HTTP_AUTH_PAT_NO_CREDENTIALS;
    }

    switch (ngx_http_auth_pat_parse_bearer(h->value.data, h->value.len,
                                           token))
    {
    case NGX_OK:
        return NGX_HTTP_AUTH_PAT_VALID;

    case NGX_DECLINED:
        return NGX_HTTP_AUTH_PAT_NO_CREDENTIALS;

    default:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "auth_pat: malformed Authorization header");
        return NGX_HTTP_AUTH_PAT_INVALID_REQUEST;
    }
}


ngx_int_t
ngx_http_auth_pat_check(ngx_http_request_t *r, ngx_http_auth_pat_ctx_t *ctx,
    ngx_http_auth_pat_check_done_pt done)
{
    ngx_str_t                    token;
    ngx_http_auth_pat_verdict_e  verdict;

    verdict = ngx_http_auth_pat_check_header(r, &token);

    if (verdict != NGX_HTTP_AUTH_PAT_VALID) {
        ctx->state = NGX_HTTP_AUTH_PAT_CHECK_DONE;
        ctx->verdict = verdict;
        return NGX_OK;
    }

    return ngx_http_auth_pat_check_token(r, ctx, &token, done);
}


ngx_int_t
ngx_http_auth_pat_check_token(ngx_http_request_t *r,
    ngx_http_auth_pat_ctx_t *ctx, ngx_str_t *token,
    ngx_http_auth_pat_check_done_pt done)
{
    u_char                          md[PAT_DIGEST_LEN];
    u_char                          hex[PAT_DIGEST_HEX_LEN];
    uint64_t                        version;
    ngx_int_t                       rc;
    ngx_uint_t                      cacheable;
    ngx_http_auth_pat_lookup_t     *lk;
    ngx_http_auth_pat_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_auth_pat_module);

    ctx->state = NGX_HTTP_AUTH_PAT_CHECK_DONE;
    ctx->verdict = NGX_HTTP_AUTH_PAT_UNAVAILABLE;

    /* a malformed or mistyped token: no Redis */

    if (!ngx_http_auth_pat_token_verify((char *) token->data, token->len,
                                        (char *) pmcf->prefix.data,
                                        pmcf->prefix.len))
    {
        /* never log the token, not even a malformed one */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "auth_pat: token with a bad format or checksum");
        ctx->verdict = NGX_HTTP_AUTH_PAT_INVALID_TOKEN;
        return NGX_OK;
    }

    ngx_http_auth_pat_hmac_key_digest(&pmcf->hmac, token->data, token->len,
                                      md);

    cacheable = 0;
    version = 0;

    if (pmcf->cache) {
        if (ngx_http_auth_pat_inval_cache_trusted()) {
            rc = ngx_http_auth_pat_check_cached(r, ctx, pmcf->cache, md);

            if (rc != NGX_DECLINED) {
                return rc;
            }

            version = ngx_http_auth_pat_cache_version(pmcf->cache);
            cacheable = 1;

        } else {
            ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "auth_pat cache not trusted now");
            ngx_http_auth_pat_metric_add(cache_untrusted);
        }
    }

    /* one round trip to Redis; the verdict stays "unavailable" until then */

    lk = ngx_palloc(r->pool, sizeof(ngx_http_auth_pat_lookup_t));
    if (lk == NULL) {
        return NGX_ERROR;
    }

    lk->cmd = NULL;
    lk->version = version;
    lk->cacheable = cacheable;
    ngx_memcpy(lk->md, md, PAT_DIGEST_LEN);

    if (ngx_http_auth_pat_cancel_on_cleanup(r, &lk->cmd) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_http_auth_pat_hex_encode(md, PAT_DIGEST_LEN, (char *) hex);

    lk->request = r;
    lk->ctx = ctx;
    lk->done = done;
    lk->cmd = ngx_http_auth_pat_store_lookup(pmcf->store, r->pool, hex,
                                             ngx_http_auth_pat_check_looked_up,
                                             lk);

    if (lk->cmd == NULL) {
        /* Redis is down: fail closed, at once */
        return NGX_OK;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "auth_pat lookup sent");

    ctx->state = NGX_HTTP_AUTH_PAT_CHECK_PENDING;

    return NGX_AGAIN;
}


ngx_uint_t
ngx_http_auth_pat_check_scopes(ngx_http_auth_pat_identity_t *id,
    ngx_array_t *required)
{
    ngx_str_t   *s;
    ngx_uint_t   i;

    if (required == NULL) {
        return 1;
    }

    s = required->elts;

    for (i = 0; i < required->nelts; i++) {
        if (!ngx_http_auth_pat_scope_in(&id->scopes, s[i].data, s[i].len)) {
            return 0;
        }
    }

    return 1;
}
