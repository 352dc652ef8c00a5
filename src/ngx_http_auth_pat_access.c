
/*
 * The check of "Authorization: Bearer <token>" (RFC 6750), in two
 * phases.  In the preaccess phase, before limit_req and limit_conn, the
 * token is checked and the identity ($pat_*) set; in the access phase
 * the verdict is applied, scopes included, so that satisfy, allow/deny
 * and auth_delay work as for any access module.
 *
 * While Redis answers, the handler returns NGX_DONE with r->main->count
 * raised, as ngx_http_mirror_module does; the reply stores the verdict
 * in the ctx and runs the phases again, and the handler, re-entered,
 * finds it.  A refusal is returned to nginx as a status, as auth_basic
 * does, so that auth_delay, satisfy any and error_page work; the error
 * filter (ngx_http_auth_pat_json.c) gives nginx's page its JSON body.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_metrics.h"
#include "ngx_http_auth_pat_ctx.h"
#include "ngx_http_auth_pat_access.h"
#include "ngx_http_auth_pat_check.h"
#include "ngx_http_auth_pat_json.h"
#include "ngx_http_auth_pat_parse.h"


/* the reply came: the handler runs again and finds the verdict */

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


/* WWW-Authenticate, set once even when error_page leads to a refusal */

static ngx_int_t
ngx_http_auth_pat_access_challenge(ngx_http_request_t *r,
    ngx_str_t *challenge)
{
    ngx_table_elt_t  *h;

    h = r->headers_out.www_authenticate;

    if (h != NULL && h->hash != 0 && h->value.len >= 7
        && ngx_strncmp(h->value.data, "Bearer ", 7) == 0)
    {
        /* our own, from before an error_page redirect */
        h->value = *challenge;
        return NGX_OK;
    }

    h = ngx_http_auth_pat_push_header(r, "WWW-Authenticate", challenge);
    if (h == NULL) {
        return NGX_ERROR;
    }

    r->headers_out.www_authenticate = h;

    return NGX_OK;
}


static ngx_int_t
ngx_http_auth_pat_access_verdict(ngx_http_request_t *r,
    ngx_http_auth_pat_ctx_t *ctx)
{
    ngx_str_t                          *challenge;
    ngx_http_auth_pat_verdict_e         verdict;
    ngx_http_auth_pat_loc_conf_t       *plcf;
    const ngx_http_auth_pat_refusal_t  *rf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);
    verdict = ctx->verdict;

    if (verdict == NGX_HTTP_AUTH_PAT_VALID
        && !ngx_http_auth_pat_check_scopes(&ctx->identity,
                                           plcf->scopes_required))
    {
        verdict = NGX_HTTP_AUTH_PAT_INSUFFICIENT_SCOPE;
    }

    /* once per request: the ctx, and its verdict, outlive a redirect */
    if (!ctx->counted
        && (ngx_uint_t) verdict < NGX_HTTP_AUTH_PAT_METRICS_VERDICTS)
    {
        ctx->counted = 1;
        ngx_http_auth_pat_metric_add(checks[verdict]);
    }

    if (verdict == NGX_HTTP_AUTH_PAT_VALID) {
        if (plcf->hide_credentials
            && ngx_http_auth_pat_hide_credentials(r) != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_OK;
    }

    rf = ngx_http_auth_pat_refusal(verdict);
    challenge = ngx_http_auth_pat_refusal_challenge(r, rf);

    if (challenge != NULL
        && ngx_http_auth_pat_access_challenge(r, challenge) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "auth_pat access refused: %ui", rf->status);

    ctx->refused = rf->status;
    ctx->refusal = verdict;

    return rf->status;
}


/*
 * Under "satisfy any" another module may let in a request that the check
 * refused: an error page it gets from now on (an upstream's 401, say) is
 * not the check's.
 */

ngx_int_t
ngx_http_auth_pat_let_in_handler(ngx_http_request_t *r)
{
    ngx_http_auth_pat_ctx_t  *ctx;

    ctx = ngx_http_auth_pat_find_ctx(r);

    if (ctx != NULL) {
        ctx->refused = 0;
    }

    return NGX_DECLINED;
}


/*
 * Starts the check, or finds it done.  NGX_OK: the verdict is in the
 * ctx; NGX_DONE: suspended until Redis answers.
 */

static ngx_int_t
ngx_http_auth_pat_access_check(ngx_http_request_t *r,
    ngx_http_auth_pat_ctx_t *ctx)
{
    switch (ctx->state) {

    case NGX_HTTP_AUTH_PAT_CHECK_DONE:
        return NGX_OK;

    case NGX_HTTP_AUTH_PAT_CHECK_PENDING:
        return NGX_DONE;

    default:
        break;
    }

    switch (ngx_http_auth_pat_check(r, ctx, ngx_http_auth_pat_access_resume))
    {
    case NGX_OK:
        return NGX_OK;

    case NGX_AGAIN:
        r->main->count++;
        return NGX_DONE;

    default:
        return NGX_ERROR;
    }
}


/*
 * An API request whose caller is not the bearer token sent along, which
 * is then neither looked up nor counted as used: where auth_pat_api_user
 * names the caller (but for /self, which is that token), and for the
 * OpenAPI document, which identifies no caller.
 */

static ngx_uint_t
ngx_http_auth_pat_api_not_bearer(ngx_http_request_t *r,
    ngx_http_auth_pat_loc_conf_t *plcf)
{
    ngx_str_t                   user, id;
    ngx_http_auth_pat_route_e   route;

    if (ngx_http_auth_pat_parse_route(&r->uri, &plcf->api_prefix, &route,
                                      &id)
        != NGX_OK)
    {
        route = NGX_HTTP_AUTH_PAT_ROUTE_COLLECTION;
    }

    if (route == NGX_HTTP_AUTH_PAT_ROUTE_OPENAPI) {
        return 1;
    }

    if (plcf->api_user == NULL
        || ngx_http_complex_value(r, plcf->api_user, &user) != NGX_OK
        || user.len == 0)
    {
        return 0;
    }

    return route != NGX_HTTP_AUTH_PAT_ROUTE_SELF
           && route != NGX_HTTP_AUTH_PAT_ROUTE_SELF_ROTATE;
}


/*
 * The preaccess phase: the identity, for limit_req and limit_conn keys,
 * in auth_pat locations and for the API's bearer callers.  Subrequests
 * skip the access phase, and this one as well.
 */

ngx_int_t
ngx_http_auth_pat_identify_handler(ngx_http_request_t *r)
{
    ngx_http_auth_pat_ctx_t       *ctx;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    if ((!plcf->enabled && !plcf->api) || r != r->main) {
        return NGX_DECLINED;
    }

    if (!plcf->enabled && ngx_http_auth_pat_api_not_bearer(r, plcf)) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_auth_pat_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (ngx_http_auth_pat_access_check(r, ctx)) {

    case NGX_OK:
        return NGX_DECLINED;

    case NGX_DONE:
        return NGX_DONE;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}


ngx_int_t
ngx_http_auth_pat_access_handler(ngx_http_request_t *r)
{
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

    /* normally done in the preaccess phase already */

    switch (ngx_http_auth_pat_access_check(r, ctx)) {

    case NGX_OK:
        return ngx_http_auth_pat_access_verdict(r, ctx);

    case NGX_DONE:
        return NGX_DONE;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
}
