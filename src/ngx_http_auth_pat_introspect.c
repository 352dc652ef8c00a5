
/*
 * RFC 7662 token introspection.  POST, application/x-www-form-urlencoded,
 * "token=..." ("token_type_hint" is ignored): the same check as auth_pat
 * (the cache, one Redis round trip otherwise, the use reported as
 * lastUsedAt), answered {"active": true, "sub", "scope", "exp", "iat",
 * "jti", "token_type", "name"} or {"active": false}, never with a
 * reason.  "exp" is left out for a token that never expires, and "iat"
 * for a token issued by a release that did not record it.  Who may ask is
 * the location's own access control (allow/deny, auth_basic, ...).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_auth_pat_ctx.h"
#include "ngx_http_auth_pat_introspect.h"
#include "ngx_http_auth_pat_check.h"
#include "ngx_http_auth_pat_json.h"
#include "ngx_http_auth_pat_parse.h"


/* a form with one token and a hint needs far less */
#define NGX_HTTP_AUTH_PAT_INTROSPECT_BODY_MAX  4096


static void
ngx_http_auth_pat_introspect_done(ngx_http_request_t *r)
{
    json_t                        *obj;
    ngx_http_auth_pat_ctx_t       *ctx;
    ngx_http_auth_pat_identity_t  *id;

    ctx = ngx_http_auth_pat_find_ctx(r);
    ctx = ctx->introspected;

    switch (ctx->verdict) {

    case NGX_HTTP_AUTH_PAT_VALID:
        break;

    case NGX_HTTP_AUTH_PAT_UNAVAILABLE:
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "unavailable",
                                         "the token store is unavailable");
        return;

    default:
        ngx_http_auth_pat_finalize_json(r, NGX_HTTP_OK,
                                        json_pack("{s:b}", "active", 0));
        return;
    }

    id = &ctx->identity;

    obj = json_pack("{s:b, s:s#, s:s#, s:s#, s:s, s:s#}",
                    "active", 1,
                    "sub", (char *) id->user_id.data, (int) id->user_id.len,
                    "scope", id->scopes.len ? (char *) id->scopes.data : "",
                    (int) id->scopes.len,
                    "jti", (char *) id->token_id.data,
                    (int) id->token_id.len,
                    "token_type", "Bearer",
                    "name", id->token_name.len ? (char *) id->token_name.data
                                               : "",
                    (int) id->token_name.len);

    if (obj != NULL && id->expires
        && json_object_set_new(obj, "exp", json_integer(id->expires / 1000))
           != 0)
    {
        json_decref(obj);
        obj = NULL;
    }

    if (obj != NULL && id->created
        && json_object_set_new(obj, "iat", json_integer(id->created / 1000))
           != 0)
    {
        json_decref(obj);
        obj = NULL;
    }

    /* a NULL obj answers 500 */
    ngx_http_auth_pat_finalize_json(r, NGX_HTTP_OK, obj);
}


/* the copies of the form, which holds a token, are wiped with the pool */

typedef struct {
    ngx_str_t                 body;
    u_char                   *buf;
} ngx_http_auth_pat_introspect_form_t;


static void
ngx_http_auth_pat_introspect_wipe(void *data)
{
    ngx_http_auth_pat_introspect_form_t  *f = data;

    if (f->body.data) {
        ngx_explicit_memzero(f->body.data, f->body.len);
    }

    if (f->buf) {
        ngx_explicit_memzero(f->buf, f->body.len);
    }
}


static void
ngx_http_auth_pat_introspect_body(ngx_http_request_t *r)
{
    ngx_str_t                             token;
    ngx_pool_cleanup_t                   *cln;
    ngx_http_auth_pat_ctx_t              *ctx, *check;
    ngx_http_auth_pat_introspect_form_t  *f;

    /* the check's own ctx: the request's identity ($pat_*) is not this */
    ctx = ngx_http_auth_pat_get_ctx(r);
    check = ngx_pcalloc(r->pool, sizeof(ngx_http_auth_pat_ctx_t));
    cln = ngx_pool_cleanup_add(r->pool,
                               sizeof(ngx_http_auth_pat_introspect_form_t));

    if (ctx == NULL || check == NULL || cln == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ctx->introspected = check;

    f = cln->data;
    ngx_str_null(&f->body);
    f->buf = NULL;
    cln->handler = ngx_http_auth_pat_introspect_wipe;

    if (ngx_http_auth_pat_read_body(r, &f->body) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    if (f->body.len > NGX_HTTP_AUTH_PAT_INTROSPECT_BODY_MAX) {
        ngx_http_auth_pat_finalize_error(r,
                                         NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                         NULL, "the form is too large");
        return;
    }

    f->buf = ngx_pnalloc(r->pool, f->body.len + 1);
    if (f->buf == NULL) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    switch (ngx_http_auth_pat_parse_form_field(f->body.data, f->body.len,
                                               "token", f->buf, &token))
    {
    case NGX_OK:
        break;

    case NGX_DECLINED:
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "the token parameter is missing");
        return;

    default:
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_BAD_REQUEST,
                                         "invalid_request",
                                         "the form is malformed, or has "
                                         "more than one token");
        return;
    }

    switch (ngx_http_auth_pat_check_token(r, check, &token,
                                          ngx_http_auth_pat_introspect_done))
    {
    case NGX_OK:
        ngx_http_auth_pat_introspect_done(r);
        return;

    case NGX_AGAIN:
        /* the reply ends the request; the body's reference waits for it */
        return;

    default:
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
    }
}


ngx_int_t
ngx_http_auth_pat_introspect_handler(ngx_http_request_t *r)
{
    ngx_int_t         rc;
    ngx_str_t         allow = ngx_string("POST");
    ngx_table_elt_t  *ct;

    if (r->method != NGX_HTTP_POST) {
        if (ngx_http_auth_pat_push_header(r, "Allow", &allow) == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_auth_pat_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                            "method_not_allowed",
                                            "introspection takes POST",
                                            NULL);
    }

    ct = r->headers_in.content_type;

    if (ct == NULL
        || !ngx_http_auth_pat_parse_media_type(ct->value.data, ct->value.len,
               "application/x-www-form-urlencoded"))
    {
        return ngx_http_auth_pat_send_error(r,
                   NGX_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type",
                   "the body must be application/x-www-form-urlencoded",
                   NULL);
    }

    /* refused before it is read: a larger body is not ours to keep */
    if (r->headers_in.content_length_n > NGX_HTTP_AUTH_PAT_INTROSPECT_BODY_MAX)
    {
        return ngx_http_auth_pat_send_error(r,
                   NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "payload_too_large",
                   "the form is too large", NULL);
    }

    r->request_body_in_single_buf = 1;

    rc = ngx_http_read_client_request_body(r,
                                           ngx_http_auth_pat_introspect_body);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}
