
/*
 * The token admin API: routing, methods, media types, the request body,
 * the caller's identity and the validation of its input.  The flows that
 * follow are in ngx_http_auth_pat_api_tokens.c.
 *
 *   POST   PREFIX              create
 *   GET    PREFIX              list
 *   GET    PREFIX/ID           get
 *   DELETE PREFIX/ID           revoke
 *   POST   PREFIX/ID/rotate    rotate
 *   GET, DELETE PREFIX/self, POST PREFIX/self/rotate: the same, for the
 *                              request's bearer token
 *   GET    PREFIX/config       the limits that apply to the caller
 *
 * Order of checks: the caller (401) first, before anything of the
 * request is looked at; then route and method (404, 405), the scope
 * auth_pat_api_scope asks of a bearer caller (403), media type (415),
 * body (413), a malformed id, query or body (400), then validation (400,
 * 422; 403 for what a bearer caller may not issue).  No body is read for
 * a caller not identified.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/crypto.h>

#include "ngx_http_auth_pat_ctx.h"
#include "ngx_http_auth_pat_api.h"
#include "ngx_http_auth_pat_metrics.h"
#include "ngx_http_auth_pat_check.h"
#include "ngx_http_auth_pat_json.h"
#include "ngx_http_auth_pat_embedded.h"


#define NGX_HTTP_AUTH_PAT_ARGS_LEN_MAX   4096


static void ngx_http_auth_pat_api_start(ngx_http_request_t *r);
static void ngx_http_auth_pat_api_proceed(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api);
static ngx_int_t ngx_http_auth_pat_api_allow(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api);
static void ngx_http_auth_pat_api_body_handler(ngx_http_request_t *r);


/*
 * Fault injection, built only into the sanitizer build: a request with
 * "X-Auth-Pat-Fault: POINT" finds the allocation at POINT failing, so
 * that the tests reach the answers to an exhausted pool.
 */

#if (NGX_HTTP_AUTH_PAT_FAULTS)

static void *
ngx_http_auth_pat_api_alloc(ngx_http_request_t *r, size_t size,
    const char *point)
{
    ngx_str_t                  name = ngx_string("http_x_auth_pat_fault");
    ngx_http_variable_value_t  v;

    if (ngx_http_variable_unknown_header(&v, &name,
                                         &r->headers_in.headers.part,
                                         sizeof("http_") - 1)
        == NGX_OK
        && !v.not_found
        && v.len == ngx_strlen(point)
        && ngx_strncmp(v.data, point, v.len) == 0)
    {
        return NULL;
    }

    return ngx_pnalloc(r->pool, size);
}

#else

static void *
ngx_http_auth_pat_api_alloc(ngx_http_request_t *r, size_t size,
    const char *point)
{
    return ngx_pnalloc(r->pool, size);
}

#endif


/* --------------------------------------------------------- validation */


static void
ngx_http_auth_pat_api_validate_create(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    int64_t                        dflt;
    ngx_uint_t                     status;
    const char                    *err;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    /* the name points into the body, which lives as long as the request */
    err = ngx_http_auth_pat_parse_name(json_object_get(api->body, "name"),
                                       &api->issue.name, &status);
    if (err) {
        ngx_http_auth_pat_finalize_invalid(r, status, err);
        return;
    }

    dflt = 0;

    if (plcf->default_lifetime > 0) {
        dflt = api->now + (int64_t) plcf->default_lifetime * 1000;

    } else if (plcf->max_lifetime > 0) {
        dflt = api->now + (int64_t) plcf->max_lifetime * 1000;
    }

    if (ngx_http_auth_pat_api_expires(r, api, dflt,
                                      api->bearer ? api->caller->expires : 0)
        != NGX_OK
        || ngx_http_auth_pat_api_scopes(r, api, 0) != NGX_OK)
    {
        return;
    }

    ngx_http_auth_pat_api_create(r, api);
}


static void
ngx_http_auth_pat_api_validate_list(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    u_char      *buf;
    const char  *err;

    buf = ngx_http_auth_pat_api_alloc(r, r->args.len + 1, "query");
    if (buf == NULL) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         NULL, NULL);
        return;
    }

    err = ngx_http_auth_pat_parse_query(&r->args, buf, &api->query);
    if (err) {
        ngx_http_auth_pat_finalize_invalid(r, NGX_HTTP_BAD_REQUEST, err);
        return;
    }

    ngx_http_auth_pat_api_list(r, api);
}


/* ------------------------------------------------------------ identity */


/* a scope this caller may grant: allowed here, and held by its token */

static ngx_uint_t
ngx_http_auth_pat_api_grantable(ngx_http_auth_pat_api_t *api,
    ngx_http_auth_pat_loc_conf_t *plcf, u_char *scope, size_t len)
{
    if (api->bearer
        && !ngx_http_auth_pat_scope_in(&api->caller->scopes, scope, len))
    {
        return 0;
    }

    return ngx_http_auth_pat_api_scope_allowed(plcf, scope, len);
}


/* the scopes this caller may grant, or NULL for any well-formed one */

static ngx_int_t
ngx_http_auth_pat_api_config_scopes(ngx_http_auth_pat_api_t *api,
    ngx_http_auth_pat_loc_conf_t *plcf, json_t **out)
{
    size_t       pos;
    json_t      *list;
    ngx_str_t   *s, sc;
    ngx_uint_t   i;

    *out = NULL;

    if (!api->bearer && plcf->scopes_allowed == NULL) {
        return NGX_OK;
    }

    list = json_array();
    if (list == NULL) {
        return NGX_ERROR;
    }

    *out = list;

    if (!api->bearer) {
        s = plcf->scopes_allowed->elts;

        for (i = 0; i < plcf->scopes_allowed->nelts; i++) {
            if (json_array_append_new(list,
                    json_stringn((char *) s[i].data, s[i].len))
                != 0)
            {
                return NGX_ERROR;
            }
        }

        return NGX_OK;
    }

    /* a bearer caller: its own token's scopes, as far as allowed here */

    pos = 0;

    while (ngx_http_auth_pat_scope_next(&api->caller->scopes, &pos, &sc)) {
        if (ngx_http_auth_pat_api_grantable(api, plcf, sc.data, sc.len)
            && json_array_append_new(list,
                   json_stringn((char *) sc.data, sc.len))
               != 0)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * GET /config: the limits that apply to this caller, so clients need
 * not guess.  A bearer caller's token bounds the lifetimes (what is left
 * of its own) and the scopes (its own).
 */

static void
ngx_http_auth_pat_api_config(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    time_t                         dflt, max, left;
    json_t                        *t, *allowed;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    if (ngx_http_auth_pat_api_config_scopes(api, plcf, &allowed) != NGX_OK) {
        /* never null for a list: null would say "any" */
        json_decref(allowed);
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         NULL, NULL);
        return;
    }

    /* a create without expiresAt gets the default, else the maximum */
    max = plcf->max_lifetime;
    dflt = plcf->default_lifetime ? plcf->default_lifetime : max;

    if (api->bearer && api->caller->expires) {
        left = (time_t) ((api->caller->expires - api->now) / 1000);
        left = (left > 0) ? left : 1;   /* 0 would read as "never" */
        max = (max && max < left) ? max : left;
        dflt = (dflt && dflt < left) ? dflt : left;
    }

    t = json_pack("{s:o, s:o, s:o, s:I}",
                  "defaultLifetime", dflt ? json_integer(dflt) : json_null(),
                  "maxLifetime", max ? json_integer(max) : json_null(),
                  "scopesAllowed", allowed ? allowed : json_null(),
                  "maxTokens", (json_int_t) plcf->max_tokens);
    if (t == NULL) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         NULL, NULL);
        return;
    }

    ngx_http_auth_pat_finalize_data(r, NGX_HTTP_OK, t, NULL);
}


/*
 * auth_pat_api_scope: what a bearer caller needs it for (create, rotate,
 * its own token's included, and revoking another token)
 */

static ngx_uint_t
ngx_http_auth_pat_api_scope_needed(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    switch (api->route) {

    case NGX_HTTP_AUTH_PAT_ROUTE_COLLECTION:
        return r->method == NGX_HTTP_POST;

    case NGX_HTTP_AUTH_PAT_ROUTE_ITEM:
    case NGX_HTTP_AUTH_PAT_ROUTE_SELF:
        /* the holder of a leaked token can always revoke it */
        return r->method == NGX_HTTP_DELETE && !api->own;

    case NGX_HTTP_AUTH_PAT_ROUTE_CONFIG:
        return 0;

    default:
        return 1;
    }
}


static void
ngx_http_auth_pat_api_dispatch(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    if (api->user.len > NGX_HTTP_AUTH_PAT_USER_MAX) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "the caller identity is too long");
        return;
    }

    if (api->route_rc == NGX_ABORT) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "the token id is not a UUID");
        return;
    }

    if (r->args.len > NGX_HTTP_AUTH_PAT_ARGS_LEN_MAX) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "the query string is too long");
        return;
    }

    api->now = ngx_http_auth_pat_now();

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "auth_pat api route %d, method %ui, user \"%V\"",
                   api->route, r->method, &api->user);

    switch (api->route) {

    case NGX_HTTP_AUTH_PAT_ROUTE_COLLECTION:
        if (r->method == NGX_HTTP_POST) {
            ngx_http_auth_pat_api_validate_create(r, api);

        } else {
            ngx_http_auth_pat_api_validate_list(r, api);
        }

        return;

    case NGX_HTTP_AUTH_PAT_ROUTE_ITEM:
    case NGX_HTTP_AUTH_PAT_ROUTE_SELF:
        if (r->method == NGX_HTTP_DELETE) {
            ngx_http_auth_pat_api_revoke(r, api);

        } else {
            ngx_http_auth_pat_api_get(r, api);
        }

        return;

    case NGX_HTTP_AUTH_PAT_ROUTE_CONFIG:
        ngx_http_auth_pat_api_config(r, api);
        return;

    default:
        ngx_http_auth_pat_api_rotate(r, api);
        return;
    }
}


/* the caller is the owner of the bearer token; /self is that token */

static void
ngx_http_auth_pat_api_as_token(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, ngx_http_auth_pat_ctx_t *ctx)
{
    api->user = ctx->identity.user_id;
    api->bearer = 1;
    api->caller = &ctx->identity;

    if (api->self) {
        api->id = ctx->identity.token_id;
    }

    api->own = (api->id.len == ctx->identity.token_id.len
                && ngx_strncmp(api->id.data, ctx->identity.token_id.data,
                               api->id.len) == 0);

    ngx_http_auth_pat_api_proceed(r, api);
}


static void
ngx_http_auth_pat_api_identified(ngx_http_request_t *r)
{
    ngx_http_auth_pat_ctx_t  *ctx;
    ngx_http_auth_pat_api_t  *api;

    ctx = ngx_http_auth_pat_find_ctx(r);
    api = ctx->api;

    if (ctx->verdict != NGX_HTTP_AUTH_PAT_VALID) {
        if (ctx->verdict == NGX_HTTP_AUTH_PAT_NO_CREDENTIALS
            && api->self && api->user.len)
        {
            /* auth_pat_api_user says who; no token says which one */
            ngx_http_auth_pat_finalize_error(r, NGX_HTTP_NOT_FOUND,
                "not_found", "/self is the bearer token of the request: "
                "send one");
            return;
        }

        ngx_http_finalize_request(r,
            ngx_http_auth_pat_send_refusal(r, ctx->verdict));
        return;
    }

    ngx_http_auth_pat_api_as_token(r, api, ctx);
}


/*
 * The caller: auth_pat_api_user when it is non-empty; else the owner of
 * the bearer token (already checked if auth_pat guards this location).
 */

static void
ngx_http_auth_pat_api_start(ngx_http_request_t *r)
{
    ngx_int_t                      rc;
    ngx_str_t                      user;
    ngx_http_auth_pat_ctx_t       *ctx;
    ngx_http_auth_pat_api_t       *api;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);
    ctx = ngx_http_auth_pat_find_ctx(r);
    api = ctx->api;

    if (plcf->api_user) {
        if (ngx_http_complex_value(r, plcf->api_user, &user) != NGX_OK) {
            ngx_http_auth_pat_finalize_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                             NULL, NULL);
            return;
        }

        if (user.len && !api->self) {
            api->user = user;
            ngx_http_auth_pat_api_proceed(r, api);
            return;
        }

        /* /self: the token decides, whoever auth_pat_api_user says */
        api->user = user;
    }

    if (ctx->state == NGX_HTTP_AUTH_PAT_CHECK_DONE) {
        /* checked in the preaccess phase, before limit_req */
        ngx_http_auth_pat_api_identified(r);
        return;
    }

    rc = ngx_http_auth_pat_check(r, ctx, ngx_http_auth_pat_api_identified);

    if (rc == NGX_OK) {
        ngx_http_auth_pat_api_identified(r);

    } else if (rc == NGX_ERROR) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         NULL, NULL);
    }

    /* NGX_AGAIN: ngx_http_auth_pat_api_identified() follows */
}


/* the value of a request header that nginx does not index, or NULL */

static ngx_str_t *
ngx_http_auth_pat_api_header(ngx_http_request_t *r, const char *name)
{
    size_t            len;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name);
    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NULL;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            return &h[i].value;
        }
    }
}


/*
 * A write whose credentials the browser adds by itself (auth_pat_api_user:
 * Basic, an SSO cookie) that the browser says comes from another site:
 * Sec-Fetch-Site other than same-origin or none; without it, an Origin
 * that is not this Host.  Clients that send neither are not browsers.
 */

static ngx_uint_t
ngx_http_auth_pat_api_cross_site(ngx_http_request_t *r)
{
    ngx_str_t   *site, *origin;
    ngx_uint_t   https;

    site = ngx_http_auth_pat_api_header(r, "Sec-Fetch-Site");

    if (site != NULL) {
        return !((site->len == 11
                  && ngx_strncasecmp(site->data, (u_char *) "same-origin",
                                     11) == 0)
                 || (site->len == 4
                     && ngx_strncasecmp(site->data, (u_char *) "none", 4)
                        == 0));
    }

    origin = ngx_http_auth_pat_api_header(r, "Origin");

    if (origin == NULL) {
        return 0;
    }

#if (NGX_HTTP_SSL)
    https = (r->connection->ssl != NULL);
#else
    https = 0;
#endif

    return r->headers_in.host == NULL
           || !ngx_http_auth_pat_parse_same_origin(origin,
                                                   &r->headers_in.host->value,
                                                   https);
}


/*
 * The caller is known: the route (404), the method (405), a cross-site
 * write (403), the scope auth_pat_api_scope asks of a bearer caller (403), the media type (415),
 * then the body is read (413) and parsed (400), and the input validated
 * (400, 422).  No body is read before this.
 */

static void
ngx_http_auth_pat_api_proceed(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    ngx_int_t                      rc;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    if (api->route_rc == NGX_DECLINED) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such route");
        return;
    }

    rc = ngx_http_auth_pat_api_allow(r, api);

    if (rc != NGX_OK) {
        if (rc == NGX_DECLINED) {
            ngx_http_auth_pat_finalize_error(r, NGX_HTTP_NOT_ALLOWED,
                                             "method_not_allowed",
                                             "method not allowed here");
            return;
        }

        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         NULL, NULL);
        return;
    }

    if (!api->bearer && (r->method & (NGX_HTTP_POST|NGX_HTTP_DELETE))
        && ngx_http_auth_pat_api_cross_site(r))
    {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_FORBIDDEN, "forbidden",
                                         "a cross-site write is refused");
        return;
    }

    if (api->bearer && plcf->api_scope.len
        && ngx_http_auth_pat_api_scope_needed(r, api)
        && !ngx_http_auth_pat_scope_in(&api->caller->scopes,
                                       plcf->api_scope.data,
                                       plcf->api_scope.len))
    {
        ngx_http_auth_pat_api_audit_refused(r, api,
                                            "auth_pat_api_scope not held");

        ngx_http_finalize_request(r,
            ngx_http_auth_pat_send_error(r, NGX_HTTP_FORBIDDEN,
                "insufficient_scope",
                "the token lacks the scope that this API requires",
                &plcf->challenge_api_scope));
        return;
    }

    if (r->method != NGX_HTTP_POST) {
        if (ngx_http_discard_request_body(r) != NGX_OK) {
            r->keepalive = 0;
        }

        ngx_http_auth_pat_api_dispatch(r, api);
        return;
    }

    if ((r->headers_in.content_length_n > 0 || r->headers_in.chunked)
        && (r->headers_in.content_type == NULL
            || !ngx_http_auth_pat_parse_media_type(
                    r->headers_in.content_type->value.data,
                    r->headers_in.content_type->value.len,
                    "application/json")))
    {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                                         "unsupported_media_type",
                                         "the body must be application/json");
        return;
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_auth_pat_api_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ngx_http_finalize_request(r, rc);
        return;
    }

    /* the reference the body reader took; its handler finalizes */
    ngx_http_finalize_request(r, NGX_DONE);
}


/* ---------------------------------------------------------------- body */


static void
ngx_http_auth_pat_api_body_handler(ngx_http_request_t *r)
{
    json_t                   *json;
    ngx_str_t                 body;
    json_error_t              err;
    ngx_http_auth_pat_ctx_t  *ctx;
    ngx_http_auth_pat_api_t  *api;

    ctx = ngx_http_auth_pat_find_ctx(r);
    api = ctx->api;

    if (ngx_http_auth_pat_read_body(r, &body) != NGX_OK) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                         NULL, NULL);
        return;
    }

    if (body.len == 0) {
        if (api->route == NGX_HTTP_AUTH_PAT_ROUTE_ROTATE
            || api->route == NGX_HTTP_AUTH_PAT_ROUTE_SELF_ROTATE)
        {
            ngx_http_auth_pat_api_dispatch(r, api);
            return;
        }

        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "the body must be a JSON object");
        return;
    }

    /* jansson bounds the nesting depth (2048) and checks UTF-8 */
    json = json_loadb((char *) body.data, body.len, JSON_ALLOW_NUL, &err);

    if (json == NULL) {
        if (json_error_code(&err) == json_error_invalid_utf8) {
            ngx_http_auth_pat_finalize_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                             "validation_error",
                                             "the body is not valid UTF-8");
            return;
        }

        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request", "malformed JSON");
        return;
    }

    api->body = json;

    if (!json_is_object(json)) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "the body must be a JSON object");
        return;
    }

    ngx_http_auth_pat_api_dispatch(r, api);
}


/* ------------------------------------------------------------- handler */


/* NGX_OK, NGX_DECLINED: no such route, NGX_ABORT: not a UUID */

static ngx_int_t
ngx_http_auth_pat_api_route(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    u_char                        *id;
    ngx_int_t                      rc;
    ngx_uint_t                     i;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    rc = ngx_http_auth_pat_parse_route(&r->uri, &plcf->api_prefix,
                                       &api->route, &api->id);
    if (rc != NGX_OK) {
        return rc;
    }

    if (api->route == NGX_HTTP_AUTH_PAT_ROUTE_SELF
        || api->route == NGX_HTTP_AUTH_PAT_ROUTE_SELF_ROTATE)
    {
        /* the id is the caller's token's, once it is known */
        api->self = 1;
        return NGX_OK;
    }

    if (api->id.len == 0) {
        return NGX_OK;
    }

    /* ids are stored lowercase */
    id = ngx_http_auth_pat_api_alloc(r, api->id.len, "id");
    if (id == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < api->id.len; i++) {
        id[i] = ngx_tolower(api->id.data[i]);
    }

    api->id.data = id;

    return NGX_OK;
}


static void
ngx_http_auth_pat_api_cleanup(void *data)
{
    ngx_http_auth_pat_api_t  *api = data;

    if (api->body) {
        json_decref(api->body);
        api->body = NULL;
    }

    if (api->old) {
        json_decref(api->old);
        api->old = NULL;
    }

    if (api->issue.scopes) {
        json_decref(api->issue.scopes);
        api->issue.scopes = NULL;
    }

    OPENSSL_cleanse(api->token, sizeof(api->token));
}


/* NGX_OK, or NGX_DECLINED with the Allow header set */

static ngx_int_t
ngx_http_auth_pat_api_allow(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    ngx_str_t   allow;
    ngx_uint_t  allowed;

    switch (api->route) {

    case NGX_HTTP_AUTH_PAT_ROUTE_COLLECTION:
        allowed = NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST;
        ngx_str_set(&allow, "GET, HEAD, POST");
        break;

    case NGX_HTTP_AUTH_PAT_ROUTE_ITEM:
    case NGX_HTTP_AUTH_PAT_ROUTE_SELF:
        allowed = NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_DELETE;
        ngx_str_set(&allow, "GET, HEAD, DELETE");
        break;

    case NGX_HTTP_AUTH_PAT_ROUTE_CONFIG:
    case NGX_HTTP_AUTH_PAT_ROUTE_OPENAPI:
        allowed = NGX_HTTP_GET|NGX_HTTP_HEAD;
        ngx_str_set(&allow, "GET, HEAD");
        break;

    default:
        allowed = NGX_HTTP_POST;
        ngx_str_set(&allow, "POST");
    }

    if (r->method & allowed) {
        return NGX_OK;
    }

    if (ngx_http_auth_pat_push_header(r, "Allow", &allow) == NULL) {
        return NGX_ERROR;
    }

    return NGX_DECLINED;
}


/*
 * The document describes the API to anyone the location's own nginx auth
 * lets in: no caller is identified, so Redis is not asked.
 */

static ngx_int_t
ngx_http_auth_pat_api_openapi(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    switch (ngx_http_auth_pat_api_allow(r, api)) {

    case NGX_OK:
        break;

    case NGX_DECLINED:
        return ngx_http_auth_pat_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                            "method_not_allowed",
                                            "method not allowed here", NULL);

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "auth_pat api openapi document, %uz bytes",
                   ngx_http_auth_pat_openapi_json_len);

    return ngx_http_auth_pat_send_static(r, ngx_http_auth_pat_openapi_json,
                                         ngx_http_auth_pat_openapi_json_len);
}


ngx_int_t
ngx_http_auth_pat_api_handler(ngx_http_request_t *r)
{
    ngx_http_cleanup_t             *cln;
    ngx_http_auth_pat_ctx_t        *ctx;
    ngx_http_auth_pat_api_t        *api;
    ngx_http_auth_pat_main_conf_t  *pmcf;

    ctx = ngx_http_auth_pat_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    api = ngx_pcalloc(r->pool, sizeof(ngx_http_auth_pat_api_t));
    if (api == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_auth_pat_module);

    api->request = r;
    api->store = pmcf->store;
    ctx->api = api;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_auth_pat_api_cleanup;
    cln->data = api;

    if (ngx_http_auth_pat_cancel_on_cleanup(r, &api->cmd) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the route is only classified: the caller is identified first */
    api->route_rc = ngx_http_auth_pat_api_route(r, api);

    if (api->route_rc == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (api->route_rc == NGX_OK
        && api->route == NGX_HTTP_AUTH_PAT_ROUTE_OPENAPI)
    {
        return ngx_http_auth_pat_api_openapi(r, api);
    }

    r->main->count++;

    ngx_http_auth_pat_api_start(r);

    return NGX_DONE;
}


/*
 * The log phase: the request counted by its route (by method, for the
 * collection and an item) and its final status.  A request the route
 * did not name (404, a malformed id, a method neither route has) is
 * "other".
 */

ngx_int_t
ngx_http_auth_pat_api_log_handler(ngx_http_request_t *r)
{
    ngx_uint_t                     route;
    ngx_http_auth_pat_api_t       *api;
    ngx_http_auth_pat_ctx_t       *ctx;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    if (ngx_http_auth_pat_metrics == NULL) {
        return NGX_OK;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    if (plcf->introspect) {
        ngx_http_auth_pat_metrics_api(NGX_HTTP_AUTH_PAT_M_INTROSPECT,
                                      r->headers_out.status);
        return NGX_OK;
    }

    if (!plcf->api) {
        return NGX_OK;
    }

    ctx = ngx_http_auth_pat_find_ctx(r);
    api = ctx ? ctx->api : NULL;
    route = NGX_HTTP_AUTH_PAT_M_OTHER;

    if (api != NULL && api->route_rc == NGX_OK) {

        switch (api->route) {

        case NGX_HTTP_AUTH_PAT_ROUTE_COLLECTION:
            if (r->method == NGX_HTTP_POST) {
                route = NGX_HTTP_AUTH_PAT_M_CREATE;

            } else if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
                route = NGX_HTTP_AUTH_PAT_M_LIST;
            }

            break;

        case NGX_HTTP_AUTH_PAT_ROUTE_ITEM:
            if (r->method == NGX_HTTP_DELETE) {
                route = NGX_HTTP_AUTH_PAT_M_REVOKE;

            } else if (r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD)) {
                route = NGX_HTTP_AUTH_PAT_M_GET;
            }

            break;

        case NGX_HTTP_AUTH_PAT_ROUTE_ROTATE:
            route = NGX_HTTP_AUTH_PAT_M_ROTATE;
            break;

        case NGX_HTTP_AUTH_PAT_ROUTE_SELF:
        case NGX_HTTP_AUTH_PAT_ROUTE_SELF_ROTATE:
            route = NGX_HTTP_AUTH_PAT_M_SELF;
            break;

        case NGX_HTTP_AUTH_PAT_ROUTE_CONFIG:
            route = NGX_HTTP_AUTH_PAT_M_CONFIG;
            break;

        case NGX_HTTP_AUTH_PAT_ROUTE_OPENAPI:
            route = NGX_HTTP_AUTH_PAT_M_OPENAPI;
            break;
        }
    }

    ngx_http_auth_pat_metrics_api(route, r->headers_out.status);

    return NGX_OK;
}
