
/*
 * The request's ctx.  An internal redirect (index, try_files, error_page,
 * rewrite ... last, a named location) or a filter's finalization clears
 * every module's ctx, and the request runs the phases again: the token
 * check would run again, and with auth_pat_hide_credentials it would
 * find no credentials.  So the ctx is also registered as a cleanup of the
 * request's pool, as ngx_http_realip_module does with its own, and found
 * there again: the identity and the verdict survive; what belonged to
 * the location that answered (a refusal's error page, the API's state)
 * does not.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_ctx.h"


/* the mark of the cleanup that holds a ctx; it has nothing to free */

static void
ngx_http_auth_pat_ctx_cleanup(void *data)
{
}


ngx_http_auth_pat_ctx_t *
ngx_http_auth_pat_find_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_auth_pat_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_auth_pat_module);

    if (ctx != NULL || !(r->internal || r->filter_finalize)) {
        return ctx;
    }

    /* subrequests share the pool: the ctx names its request */

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler != ngx_http_auth_pat_ctx_cleanup) {
            continue;
        }

        ctx = cln->data;

        if (ctx->request != r) {
            continue;
        }

        ctx->api = NULL;
        ctx->introspected = NULL;
        ctx->error_body = NULL;
        ctx->refused = 0;
        ctx->responded = 0;
        ctx->error_body_sent = 0;

        ngx_http_set_ctx(r, ctx, ngx_http_auth_pat_module);

        return ctx;
    }

    return NULL;
}


ngx_http_auth_pat_ctx_t *
ngx_http_auth_pat_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_auth_pat_ctx_t  *ctx;

    ctx = ngx_http_auth_pat_find_ctx(r);

    if (ctx != NULL) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_auth_pat_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    ctx->request = r;

    cln->handler = ngx_http_auth_pat_ctx_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_auth_pat_module);

    return ctx;
}
