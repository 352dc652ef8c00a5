
/*
 * The access-phase check of "Authorization: Bearer <token>" (RFC 6750).
 *
 * The flow:
 *   ngx_http_auth_pat_access_handler()
 *     -> ngx_http_auth_pat_parse_authorization(): scheme, b64token syntax
 *     -> ngx_http_auth_pat_token_verify(): prefix, length, CRC32 checksum;
 *        no Redis
 *     -> ngx_http_auth_pat_store_digest(): HMAC-SHA256 of the token
 *     -> with auth_pat_cache: ngx_http_auth_pat_redis_poll() applies the
 *        invalidations already received, then, if this worker's
 *        subscription is up and synced, ngx_http_auth_pat_cache_get():
 *        a hit is the verdict, with no Redis at all
 *     -> ngx_http_auth_pat_store_lookup(): one HMGET, pipelined on the
 *        worker's Redis connection; the handler returns NGX_DONE with
 *        r->main->count raised, so the request waits without blocking
 *   ngx_http_auth_pat_access_reply() (from the Redis connection's event)
 *     -> ngx_http_auth_pat_store_lookup_result(): record, expiry
 *     -> ngx_http_auth_pat_cache_put(), unless an invalidation came
 *        meanwhile; ngx_http_auth_pat_store_touch() reports the use
 *     -> the verdict goes into the ctx; the phases run again, so the
 *        access handler is re-entered and returns the verdict
 *   ngx_http_auth_pat_verdict(): NGX_OK, or the refusal as a status
 *     (401, 400, 503) with WWW-Authenticate, for nginx to finalize; the
 *     error filter (ngx_http_auth_pat_api.c) writes the JSON body
 *
 * A request cleanup detaches the pending command: the command's memory
 * belongs to the Redis layer, and its late reply is dropped there.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_module.h"
#include "ngx_http_auth_pat_store.h"
#include "ngx_http_auth_pat_cache.h"


struct ngx_http_auth_pat_lookup_s {
    ngx_http_request_t              *request;
    ngx_http_auth_pat_redis_cmd_t   *cmd;
    ngx_http_auth_pat_check_done_pt  done;
    uint64_t                         version;   /* of the cache */
    ngx_uint_t                       cacheable;
    u_char                           md[PAT_DIGEST_LEN];
};


static ngx_int_t ngx_http_auth_pat_verdict(ngx_http_request_t *r,
    ngx_http_auth_pat_ctx_t *ctx);
static void ngx_http_auth_pat_access_resume(ngx_http_request_t *r);


/*
 * Authorization: Bearer b64token.  The scheme is case-insensitive
 * (RFC 7235).  Another scheme means "no bearer credentials"; a Bearer
 * scheme with no token, or a token outside the b64token syntax, is a
 * malformed request.
 */

static ngx_int_t
ngx_http_auth_pat_parse_authorization(ngx_http_request_t *r, ngx_str_t *token)
{
    u_char           *p, *last, *start;
    ngx_table_elt_t  *h;

    h = r->headers_in.authorization;

    if (h == NULL) {
        return NGX_HTTP_AUTH_PAT_NO_CREDENTIALS;
    }

    p = h->value.data;
    last = p + h->value.len;

    if (h->value.len < sizeof("Bearer") - 1
        || ngx_strncasecmp(p, (u_char *) "Bearer", sizeof("Bearer") - 1)
           != 0)
    {
        return NGX_HTTP_AUTH_PAT_NO_CREDENTIALS;
    }

    p += sizeof("Bearer") - 1;

    if (p < last && *p != ' ') {
        /* "Bearerish ...": another scheme */
        return NGX_HTTP_AUTH_PAT_NO_CREDENTIALS;
    }

    while (p < last && *p == ' ') {
        p++;
    }

    start = p;

    while (p < last) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
            || (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'
            || *p == '_' || *p == '~' || *p == '+' || *p == '/')
        {
            p++;
            continue;
        }

        break;
    }

    while (p < last && *p == '=') {
        p++;
    }

    if (p == start || p != last) {
        return NGX_HTTP_AUTH_PAT_INVALID_REQUEST;
    }

    token->data = start;
    token->len = p - start;

    return NGX_OK;
}


static void
ngx_http_auth_pat_lookup_cleanup(void *data)
{
    ngx_http_auth_pat_lookup_t  *lk = data;

    if (lk->cmd) {
        ngx_http_auth_pat_redis_cancel(lk->cmd);
        lk->cmd = NULL;
    }
}


static void
ngx_http_auth_pat_access_reply(void *data, redisReply *reply, ngx_int_t rc)
{
    ngx_http_auth_pat_lookup_t  *lk = data;

    int64_t                         now;
    ngx_int_t                       res;
    ngx_connection_t               *c;
    ngx_http_request_t             *r;
    ngx_http_auth_pat_ctx_t        *ctx;
    ngx_http_auth_pat_main_conf_t  *pmcf;

    r = lk->request;
    c = r->connection;
    lk->cmd = NULL;

    ctx = ngx_http_get_module_ctx(r, ngx_http_auth_pat_module);

    ctx->state = NGX_HTTP_AUTH_PAT_CHECK_DONE;

    if (rc != NGX_OK) {
        ctx->verdict = NGX_HTTP_AUTH_PAT_UNAVAILABLE;

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "auth_pat: redis error: %s", reply->str);
        ctx->verdict = NGX_HTTP_AUTH_PAT_UNAVAILABLE;

    } else {
        now = ngx_http_auth_pat_now();
        res = ngx_http_auth_pat_store_lookup_result(reply, r->pool, now,
                                                    &ctx->identity);

        switch (res) {

        case NGX_OK:
            ctx->verdict = NGX_OK;
            ctx->identified = 1;

            pmcf = ngx_http_get_module_main_conf(r, ngx_http_auth_pat_module);

            if (lk->cacheable && ngx_http_auth_pat_store_cache_trusted()) {
                ngx_http_auth_pat_cache_put(pmcf->cache, lk->md,
                                            &ctx->identity, now,
                                            lk->version);
            }

            ngx_http_auth_pat_store_touch(r->pool, &ctx->identity, now,
                                          lk->cacheable);
            break;

        case NGX_DECLINED:
            ctx->verdict = NGX_HTTP_AUTH_PAT_INVALID_TOKEN;
            break;

        default:
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "auth_pat: unexpected validation record");
            ctx->verdict = NGX_HTTP_AUTH_PAT_UNAVAILABLE;
        }
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "auth_pat lookup done: %i", ctx->verdict);

    lk->done(r);
    ngx_http_run_posted_requests(c);
}


/* the access phase resumes: the handler runs again and finds the verdict */

static void
ngx_http_auth_pat_access_resume(ngx_http_request_t *r)
{
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);

    /* drop the reference taken when the lookup started */
    ngx_http_finalize_request(r, NGX_DONE);
}


/* a copy of the request header list without Authorization */

static ngx_int_t
ngx_http_auth_pat_hide_credentials(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_t        headers;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    if (r->headers_in.authorization == NULL) {
        return NGX_OK;
    }

    if (ngx_list_init(&headers, r->pool, 20, sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == sizeof("Authorization") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Authorization",
                               sizeof("Authorization") - 1) == 0)
        {
            continue;
        }

        nh = ngx_list_push(&headers);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        *nh = h[i];
    }

    /* known-header pointers keep pointing at the old, intact elements */
    r->headers_in.headers = headers;
    r->headers_in.authorization = NULL;

    return NGX_OK;
}


/*
 * A refusal is returned to nginx as a status, as auth_basic does: so
 * auth_delay, satisfy any and error_page work as they do for any access
 * module.  The error filter then gives nginx's page the JSON body (unless
 * error_page sent the request elsewhere).
 */

static ngx_int_t
ngx_http_auth_pat_verdict(ngx_http_request_t *r, ngx_http_auth_pat_ctx_t *ctx)
{
    ngx_uint_t                     status;
    ngx_str_t                     *challenge;
    ngx_table_elt_t               *h;
    const char                    *code, *message;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    switch (ctx->verdict) {

    case NGX_OK:
        if (plcf->hide_credentials
            && ngx_http_auth_pat_hide_credentials(r) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_OK;

    case NGX_HTTP_AUTH_PAT_NO_CREDENTIALS:
        status = NGX_HTTP_UNAUTHORIZED;
        challenge = &plcf->challenge;
        code = "unauthorized";
        message = "a bearer token is required";
        break;

    case NGX_HTTP_AUTH_PAT_INVALID_TOKEN:
        status = NGX_HTTP_UNAUTHORIZED;
        challenge = &plcf->challenge_invalid_token;
        code = "unauthorized";
        message = "the token is invalid, expired or revoked";
        break;

    case NGX_HTTP_AUTH_PAT_INVALID_REQUEST:
        status = NGX_HTTP_BAD_REQUEST;
        challenge = &plcf->challenge_invalid_request;
        code = "invalid_request";
        message = "malformed Authorization header";
        break;

    default: /* NGX_HTTP_AUTH_PAT_UNAVAILABLE */
        status = NGX_HTTP_SERVICE_UNAVAILABLE;
        challenge = NULL;
        code = "unavailable";
        message = "the token store is unavailable";
    }

    if (challenge != NULL) {
        h = r->headers_out.www_authenticate;

        if (h == NULL || h->hash == 0 || h->value.len < 7
            || ngx_strncmp(h->value.data, "Bearer ", 7) != 0)
        {
            /* not our own from before an error_page redirect: a new one */
            h = ngx_list_push(&r->headers_out.headers);
            if (h == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            h->hash = 1;
            ngx_str_set(&h->key, "WWW-Authenticate");
            r->headers_out.www_authenticate = h;
        }

        h->value = *challenge;
    }

    ctx->refused = status;
    ctx->refused_code = code;
    ctx->refused_message = message;

    return status;
}


/*
 * A request that reaches the precontent phase was let in, under "satisfy
 * any" perhaps by another module after the check refused it: an error
 * page it gets from now on (an upstream's 401, say) is not the check's.
 */

ngx_int_t
ngx_http_auth_pat_let_in_handler(ngx_http_request_t *r)
{
    ngx_http_auth_pat_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_auth_pat_module);

    if (ctx != NULL) {
        ctx->refused = 0;
    }

    return NGX_DECLINED;
}


/*
 * Checks the request's bearer token.  NGX_OK: the verdict is in the ctx
 * now.  NGX_AGAIN: a Redis lookup is in flight, and done(r) is called
 * with the verdict in the ctx.  NGX_ERROR: out of memory.
 */

ngx_int_t
ngx_http_auth_pat_check_token(ngx_http_request_t *r,
    ngx_http_auth_pat_ctx_t *ctx, ngx_http_auth_pat_check_done_pt done)
{
    u_char                          md[PAT_DIGEST_LEN];
    u_char                          hex[PAT_DIGEST_HEX_LEN];
    int64_t                         now;
    uint64_t                        version;
    ngx_int_t                       rc;
    ngx_str_t                       token;
    ngx_uint_t                      touch, cacheable;
    ngx_http_cleanup_t             *hcln;
    ngx_http_auth_pat_lookup_t     *lk;
    ngx_http_auth_pat_main_conf_t  *pmcf;

    ctx->state = NGX_HTTP_AUTH_PAT_CHECK_DONE;

    rc = ngx_http_auth_pat_parse_authorization(r, &token);

    if (rc != NGX_OK) {
        ctx->verdict = rc;

        if (rc == NGX_HTTP_AUTH_PAT_INVALID_REQUEST) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "auth_pat: malformed Authorization header");
        }

        return NGX_OK;
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_auth_pat_module);

    if (!ngx_http_auth_pat_token_verify((char *) token.data, token.len,
                                        (char *) pmcf->prefix.data,
                                        pmcf->prefix.len))
    {
        /* never log the token, not even a malformed one */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "auth_pat: token with a bad format or checksum");
        ctx->verdict = NGX_HTTP_AUTH_PAT_INVALID_TOKEN;
        return NGX_OK;
    }

    if (ngx_http_auth_pat_store_digest(pmcf, token.data, token.len, md, NULL)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cacheable = 0;
    version = 0;

    if (pmcf->cache) {
        /* an invalidation already received must win over the cache */
        if (ngx_http_auth_pat_redis_poll()
            && ngx_http_auth_pat_store_cache_trusted())
        {
            now = ngx_http_auth_pat_now();

            rc = ngx_http_auth_pat_cache_get(pmcf->cache, md, now, r->pool,
                                             &ctx->identity, &touch);
            if (rc == NGX_OK) {
                ctx->verdict = NGX_OK;
                ctx->identified = 1;

                if (touch) {
                    ngx_http_auth_pat_store_touch(r->pool, &ctx->identity,
                                                  now, 1);
                }

                return NGX_OK;
            }

            if (rc == NGX_ERROR) {
                return NGX_ERROR;
            }

            version = ngx_http_auth_pat_cache_version(pmcf->cache);
            cacheable = 1;
        }
    }

    /* a miss: one round trip to Redis */

    lk = ngx_palloc(r->pool, sizeof(ngx_http_auth_pat_lookup_t));
    if (lk == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(lk->md, md, PAT_DIGEST_LEN);
    lk->cacheable = cacheable;
    lk->version = version;

    hcln = ngx_http_cleanup_add(r, 0);
    if (hcln == NULL) {
        return NGX_ERROR;
    }

    ngx_http_auth_pat_hex_encode(lk->md, PAT_DIGEST_LEN, (char *) hex);

    lk->request = r;
    lk->done = done;
    lk->cmd = ngx_http_auth_pat_store_lookup(pmcf, hex,
                                             ngx_http_auth_pat_access_reply,
                                             lk);

    hcln->handler = ngx_http_auth_pat_lookup_cleanup;
    hcln->data = lk;

    if (lk->cmd == NULL) {
        /* Redis is down: fail closed, at once */
        ctx->verdict = NGX_HTTP_AUTH_PAT_UNAVAILABLE;
        return NGX_OK;
    }

    ctx->lookup = lk;
    ctx->state = NGX_HTTP_AUTH_PAT_CHECK_PENDING;

    return NGX_AGAIN;
}


ngx_int_t
ngx_http_auth_pat_access_handler(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_http_auth_pat_ctx_t       *ctx;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    if (!plcf->enabled) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_auth_pat_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (ctx->state) {

    case NGX_HTTP_AUTH_PAT_CHECK_DONE:
        return ngx_http_auth_pat_verdict(r, ctx);

    case NGX_HTTP_AUTH_PAT_CHECK_PENDING:
        return NGX_DONE;

    default:
        break;
    }

    rc = ngx_http_auth_pat_check_token(r, ctx,
                                       ngx_http_auth_pat_access_resume);

    switch (rc) {

    case NGX_OK:
        return ngx_http_auth_pat_verdict(r, ctx);

    case NGX_AGAIN:
        r->main->count++;
        return NGX_DONE;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
