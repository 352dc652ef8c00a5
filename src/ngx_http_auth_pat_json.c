
/*
 * JSON out.  The plaintext of a new token never enters jansson: it is
 * written into the serialized answer, in a buffer of the request's pool
 * that is wiped when the pool goes.  jansson serializes straight into
 * such buffers (json_dumpb), so no JSON text is left in malloc()'s heap.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/crypto.h>

#include "ngx_http_auth_pat_ctx.h"
#include "ngx_http_auth_pat_json.h"


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static const ngx_http_auth_pat_refusal_t  ngx_http_auth_pat_refusals[] = {

    /* not a refusal: only an out-of-range verdict lands here */
    [NGX_HTTP_AUTH_PAT_VALID] =
    { NGX_HTTP_INTERNAL_SERVER_ERROR, "internal", "internal error", 0 },

    [NGX_HTTP_AUTH_PAT_NO_CREDENTIALS] =
    { NGX_HTTP_UNAUTHORIZED, "unauthorized", "a bearer token is required",
      offsetof(ngx_http_auth_pat_loc_conf_t, challenge) },

    [NGX_HTTP_AUTH_PAT_INVALID_TOKEN] =
    { NGX_HTTP_UNAUTHORIZED, "unauthorized",
      "the token is invalid, expired or revoked",
      offsetof(ngx_http_auth_pat_loc_conf_t, challenge_invalid_token) },

    [NGX_HTTP_AUTH_PAT_INVALID_REQUEST] =
    { NGX_HTTP_BAD_REQUEST, "invalid_request",
      "malformed Authorization header",
      offsetof(ngx_http_auth_pat_loc_conf_t, challenge_invalid_request) },

    [NGX_HTTP_AUTH_PAT_UNAVAILABLE] =
    { NGX_HTTP_SERVICE_UNAVAILABLE, "unavailable",
      "the token store is unavailable", 0 },

    [NGX_HTTP_AUTH_PAT_INSUFFICIENT_SCOPE] =
    { NGX_HTTP_FORBIDDEN, "insufficient_scope",
      "the token lacks a scope this location requires",
      offsetof(ngx_http_auth_pat_loc_conf_t, challenge_insufficient_scope) }
};


/*
 * The 401 of "satisfy any" with other credentials (auth_basic's Basic):
 * they were refused too, which "a bearer token is required" would hide
 */
static const ngx_http_auth_pat_refusal_t  ngx_http_auth_pat_other_refused =
    { NGX_HTTP_UNAUTHORIZED, "unauthorized", "the credentials were refused",
      0 };


/* the JSON of nginx's own error pages in an API location */
static const ngx_http_auth_pat_refusal_t  ngx_http_auth_pat_statuses[] = {
    { NGX_HTTP_BAD_REQUEST, "invalid_request", "bad request", 0 },
    { NGX_HTTP_UNAUTHORIZED, "unauthorized", "authentication is required",
      0 },
    { NGX_HTTP_FORBIDDEN, "forbidden", "access is denied", 0 },
    { NGX_HTTP_NOT_FOUND, "not_found", "not found", 0 },
    { NGX_HTTP_REQUEST_ENTITY_TOO_LARGE, "payload_too_large",
      "the body is larger than client_max_body_size", 0 },
    { NGX_HTTP_TOO_MANY_REQUESTS, "rate_limited", "too many requests", 0 },
    { NGX_HTTP_SERVICE_UNAVAILABLE, "unavailable", "service unavailable", 0 },
    { 0, "invalid_request", "bad request", 0 },
    { 0, "internal", "internal error", 0 }
};


const ngx_http_auth_pat_refusal_t *
ngx_http_auth_pat_refusal(ngx_http_auth_pat_verdict_e verdict)
{
    if ((size_t) verdict >= sizeof(ngx_http_auth_pat_refusals)
                            / sizeof(ngx_http_auth_pat_refusal_t))
    {
        verdict = NGX_HTTP_AUTH_PAT_VALID;
    }

    return &ngx_http_auth_pat_refusals[verdict];
}


ngx_str_t *
ngx_http_auth_pat_refusal_challenge(ngx_http_request_t *r,
    const ngx_http_auth_pat_refusal_t *rf)
{
    ngx_http_auth_pat_loc_conf_t  *plcf;

    if (rf->challenge == 0) {
        return NULL;
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    return (ngx_str_t *) ((u_char *) plcf + rf->challenge);
}


static const ngx_http_auth_pat_refusal_t *
ngx_http_auth_pat_status_error(ngx_uint_t status)
{
    const ngx_http_auth_pat_refusal_t  *e;

    for (e = ngx_http_auth_pat_statuses; e->status; e++) {
        if (e->status == status) {
            return e;
        }
    }

    /* the two catch-alls, for 4xx and for 5xx */
    return (status < 500) ? e : e + 1;
}


/* ------------------------------------------------------------- memory */


static void
ngx_http_auth_pat_json_wipe(void *data)
{
    ngx_buf_t  *b = data;

    OPENSSL_cleanse(b->start, b->end - b->start);
}


/*
 * obj, serialized compactly into a buffer of pool, with room for extra
 * bytes and a newline after it; the buffer is wiped when the pool goes.
 * obj is released.  Most answers fit the first guess; a larger one is
 * serialized again into a buffer of its size.
 */

#define NGX_HTTP_AUTH_PAT_JSON_GUESS  1024

static ngx_buf_t *
ngx_http_auth_pat_json_dump(ngx_pool_t *pool, json_t *obj, size_t extra)
{
    size_t               len, size;
    ngx_buf_t           *b;
    ngx_pool_cleanup_t  *cln;

    if (obj == NULL) {
        return NULL;
    }

    b = NULL;
    size = NGX_HTTP_AUTH_PAT_JSON_GUESS;

    for ( ;; ) {
        cln = ngx_pool_cleanup_add(pool, 0);
        if (cln == NULL) {
            break;
        }

        b = ngx_create_temp_buf(pool, size + extra + 1);
        if (b == NULL) {
            break;
        }

        cln->handler = ngx_http_auth_pat_json_wipe;
        cln->data = b;

        len = json_dumpb(obj, (char *) b->pos, size, JSON_COMPACT);

        if (len == 0) {
            b = NULL;
            break;
        }

        if (len <= size) {
            b->last = b->pos + len;
            b->last_buf = 1;
            b->last_in_chain = 1;
            break;
        }

        size = len;
    }

    json_decref(obj);

    return b;
}


ngx_buf_t *
ngx_http_auth_pat_json_buf(ngx_pool_t *pool, json_t *obj)
{
    ngx_buf_t  *b;

    b = ngx_http_auth_pat_json_dump(pool, obj, 0);

    if (b != NULL) {
        *b->last++ = '\n';
    }

    return b;
}


/*
 * {"data": t}, or {"data": t + "token": plaintext}: the plaintext goes in
 * as the last member of t.  It is a prefix and base62, nothing to escape.
 */

static ngx_buf_t *
ngx_http_auth_pat_json_data(ngx_pool_t *pool, json_t *t, ngx_str_t *token)
{
    size_t      extra;
    ngx_buf_t  *b;

    extra = token ? sizeof(",\"token\":\"\"") - 1 + token->len : 0;

    b = ngx_http_auth_pat_json_dump(pool, json_pack("{s:o}", "data", t),
                                    extra);
    if (b == NULL) {
        return NULL;
    }

    if (token) {
        /* the two closing braces move to the end */
        b->last -= 2;
        b->last = ngx_cpymem(b->last, ",\"token\":\"", 10);
        b->last = ngx_cpymem(b->last, token->data, token->len);
        b->last = ngx_cpymem(b->last, "\"}}", 3);
    }

    *b->last++ = '\n';

    return b;
}


/* ------------------------------------------------------------ answers */


ngx_table_elt_t *
ngx_http_auth_pat_push_header(ngx_http_request_t *r, const char *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;

    return h;
}


/* nginx 1.22 has no reason phrase for 422 */

static void
ngx_http_auth_pat_set_status(ngx_http_request_t *r, ngx_uint_t status)
{
    r->headers_out.status = status;

    if (status == NGX_HTTP_UNPROCESSABLE_ENTITY) {
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Entity");
    }
}


/* the headers of a JSON body b: type, length, no-store, no validators */

static ngx_int_t
ngx_http_auth_pat_json_headers(ngx_http_request_t *r, ngx_buf_t *b)
{
    ngx_str_t  no_store = ngx_string("no-store");

    ngx_http_clear_content_length(r);
    ngx_http_clear_accept_ranges(r);
    ngx_http_clear_last_modified(r);
    ngx_http_clear_etag(r);

    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;

    if (ngx_http_auth_pat_push_header(r, "Cache-Control", &no_store)
        == NULL)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_auth_pat_send_buf(ngx_http_request_t *r, ngx_uint_t status,
    ngx_buf_t *b, ngx_str_t *www_authenticate)
{
    ngx_int_t                 rc;
    ngx_str_t                 retry_after = ngx_string("1");
    ngx_chain_t               out;
    ngx_table_elt_t          *h;
    ngx_http_auth_pat_ctx_t  *ctx;

    if (r->headers_in.expect && r->request_body == NULL && r == r->main) {
        /*
         * answered before the body was asked for (Expect: 100-continue):
         * it is not asked for now, and the connection closes after this
         */
        r->expect_tested = 1;
        r->keepalive = 0;
    }

    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }

    ctx = ngx_http_auth_pat_get_ctx(r);

    if (ctx == NULL || b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the error filter leaves our own answers alone */
    ctx->responded = 1;

    b->last_buf = (r == r->main) ? 1 : 0;

    ngx_http_auth_pat_set_status(r, status);

    if (ngx_http_auth_pat_json_headers(r, b) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE
        && ngx_http_auth_pat_push_header(r, "Retry-After", &retry_after)
           == NULL)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (www_authenticate != NULL && www_authenticate->len) {
        h = ngx_http_auth_pat_push_header(r, "WWW-Authenticate",
                                          www_authenticate);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        r->headers_out.www_authenticate = h;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


ngx_int_t
ngx_http_auth_pat_send_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *obj, ngx_str_t *www_authenticate)
{
    return ngx_http_auth_pat_send_buf(r, status,
                                      ngx_http_auth_pat_json_buf(r->pool, obj),
                                      www_authenticate);
}


ngx_int_t
ngx_http_auth_pat_send_static(ngx_http_request_t *r, const u_char *data,
    size_t len)
{
    ngx_buf_t  *b;

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = (u_char *) data;
    b->last = b->pos + len;
    b->memory = 1;

    return ngx_http_auth_pat_send_buf(r, NGX_HTTP_OK, b, NULL);
}


void
ngx_http_auth_pat_finalize_data(ngx_http_request_t *r, ngx_uint_t status,
                                json_t *t, ngx_str_t *token)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "auth_pat answers %ui", status);

    ngx_http_finalize_request(r,
        ngx_http_auth_pat_send_buf(r, status,
                                   ngx_http_auth_pat_json_data(r->pool, t,
                                                               token),
                                   NULL));
}


static json_t *
ngx_http_auth_pat_error_json(const char *code, const char *message)
{
    return json_pack("{s:s, s:s}", "error", code, "message", message);
}


ngx_int_t
ngx_http_auth_pat_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message, ngx_str_t *www_authenticate)
{
    return ngx_http_auth_pat_send_json(r, status,
               ngx_http_auth_pat_error_json(code, message), www_authenticate);
}


ngx_int_t
ngx_http_auth_pat_send_refusal(ngx_http_request_t *r,
    ngx_http_auth_pat_verdict_e verdict)
{
    const ngx_http_auth_pat_refusal_t  *rf;

    rf = ngx_http_auth_pat_refusal(verdict);

    return ngx_http_auth_pat_send_error(r, rf->status, rf->code, rf->message,
               ngx_http_auth_pat_refusal_challenge(r, rf));
}


void
ngx_http_auth_pat_finalize_json(ngx_http_request_t *r, ngx_uint_t status,
                                json_t *obj)
{
    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "auth_pat answers %ui", status);

    ngx_http_finalize_request(r,
        ngx_http_auth_pat_send_json(r, status, obj, NULL));
}


void
ngx_http_auth_pat_finalize_error(ngx_http_request_t *r, ngx_uint_t status,
                                 const char *code, const char *message)
{
    ngx_str_t                          *challenge;
    ngx_http_auth_pat_loc_conf_t       *plcf;
    const ngx_http_auth_pat_refusal_t  *e;

    e = ngx_http_auth_pat_status_error(status);
    challenge = NULL;

    if (status == NGX_HTTP_UNAUTHORIZED) {
        plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);
        challenge = &plcf->challenge;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "auth_pat answers %ui %s", status, code ? code : e->code);

    ngx_http_finalize_request(r,
        ngx_http_auth_pat_send_error(r, status, code ? code : e->code,
                                     message ? message : e->message,
                                     challenge));
}


void
ngx_http_auth_pat_finalize_invalid(ngx_http_request_t *r, ngx_uint_t status,
                                   const char *message)
{
    ngx_http_auth_pat_finalize_error(r, status,
                                     (status == NGX_HTTP_BAD_REQUEST)
                                     ? "invalid_request" : "validation_error",
                                     message);
}


/* -------------------------------------------------------- token object */


int64_t
ngx_http_auth_pat_json_ms(json_t *rec, const char *key)
{
    json_t  *v;

    v = json_object_get(rec, key);

    if (json_is_integer(v)) {
        return json_integer_value(v);
    }

    if (json_is_real(v)) {
        return (int64_t) json_real_value(v);
    }

    return 0;
}


static json_t *
ngx_http_auth_pat_json_time(int64_t ms)
{
    char  buf[PAT_RFC3339_LEN + 1];

    if (ms == 0 || ngx_http_auth_pat_rfc3339_format(ms, buf) == 0) {
        return json_null();
    }

    return json_string(buf);
}


json_t *
ngx_http_auth_pat_token_object(json_t *rec, int64_t now)
{
    json_t      *t, *rf, *scopes;
    int64_t      e, rv;
    const char  *status;

    e = ngx_http_auth_pat_json_ms(rec, "e");
    rv = ngx_http_auth_pat_json_ms(rec, "r");

    if (rv) {
        status = "revoked";

    } else if (e && e <= now) {
        status = "expired";

    } else {
        status = "active";
    }

    t = json_object();
    if (t == NULL) {
        return NULL;
    }

    json_object_set(t, "id", json_object_get(rec, "id"));
    json_object_set(t, "name", json_object_get(rec, "name"));
    json_object_set(t, "prefix", json_object_get(rec, "prefix"));

    /* a record of an earlier release has none */
    scopes = json_object_get(rec, "s");
    json_object_set_new(t, "scopes", json_is_array(scopes)
                                     ? json_incref(scopes) : json_array());

    json_object_set_new(t, "createdAt",
        ngx_http_auth_pat_json_time(ngx_http_auth_pat_json_ms(rec, "c")));
    json_object_set_new(t, "expiresAt", ngx_http_auth_pat_json_time(e));
    json_object_set_new(t, "lastUsedAt",
        ngx_http_auth_pat_json_time(ngx_http_auth_pat_json_ms(rec, "l")));
    json_object_set_new(t, "revokedAt", ngx_http_auth_pat_json_time(rv));
    json_object_set_new(t, "status", json_string(status));

    rf = json_object_get(rec, "rf");
    if (json_is_string(rf)) {
        json_object_set(t, "rotatedFrom", rf);
    }

    return t;
}


/* --------------------------------------------------------------- body */


ngx_int_t
ngx_http_auth_pat_read_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ssize_t       n;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    ngx_str_null(body);

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        return NGX_OK;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;
        len += b->in_file ? (size_t) (b->file_last - b->file_pos)
                          : (size_t) (b->last - b->pos);
    }

    if (len == 0) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            n = ngx_read_file(b->file, p, b->file_last - b->file_pos,
                              b->file_pos);
            if (n != b->file_last - b->file_pos) {
                return NGX_ERROR;
            }

            p += n;
            continue;
        }

        if (b->last != b->pos) {
            /* a chunked body ends with an empty buffer, pos NULL */
            p = ngx_cpymem(p, b->pos, b->last - b->pos);
        }
    }

    return NGX_OK;
}


/* ------------------------------------------------------------- filters */


/*
 * Error pages that nginx itself produces get the module's JSON body
 * instead of HTML: the access check's refusals (401, 400, 403, 503), and
 * in an API or introspection location every error (413 for a body over
 * client_max_body_size, 400 for a broken chunked body, 500, ...).  A
 * page sent by error_page comes from another location, or after an
 * internal redirect, which clears the ctx: it is left alone.
 */

static ngx_int_t
ngx_http_auth_pat_error_header_filter(ngx_http_request_t *r)
{
    ngx_buf_t                          *b;
    ngx_http_auth_pat_ctx_t            *ctx;
    ngx_http_core_loc_conf_t           *clcf;
    ngx_http_auth_pat_loc_conf_t       *plcf;
    const ngx_http_auth_pat_refusal_t  *e;

    if (r != r->main || r->headers_out.status < 400) {
        return ngx_http_next_header_filter(r);
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);
    ctx = ngx_http_auth_pat_find_ctx(r);

    if (ctx && ctx->responded) {
        return ngx_http_next_header_filter(r);
    }

    if (ctx && ctx->refused == r->headers_out.status) {
        /* the check's own refusal (see ngx_http_auth_pat_let_in_handler) */
        e = ngx_http_auth_pat_refusal(ctx->refusal);

        if (ctx->refusal == NGX_HTTP_AUTH_PAT_NO_CREDENTIALS
            && r->headers_in.authorization != NULL)
        {
            clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

            if (clcf->satisfy == NGX_HTTP_SATISFY_ANY) {
                e = &ngx_http_auth_pat_other_refused;
            }
        }

    } else if (plcf->api || plcf->introspect) {
        e = ngx_http_auth_pat_status_error(r->headers_out.status);

    } else {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_auth_pat_get_ctx(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    b = ngx_http_auth_pat_json_buf(r->pool,
                                   ngx_http_auth_pat_error_json(e->code,
                                                                e->message));
    if (b == NULL) {
        return NGX_ERROR;
    }

    ctx->error_body = b;

    if (ngx_http_auth_pat_json_headers(r, b) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


static ngx_int_t
ngx_http_auth_pat_error_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t               out;
    ngx_http_auth_pat_ctx_t  *ctx;

    ctx = ngx_http_auth_pat_find_ctx(r);

    if (ctx == NULL || ctx->error_body == NULL) {
        return ngx_http_next_body_filter(r, in);
    }

    if (in == NULL) {
        /* ngx_http_writer() flushing what is still buffered */
        return ngx_http_next_body_filter(r, NULL);
    }

    if (ctx->error_body_sent) {
        /* nginx's own page is dropped */
        return NGX_OK;
    }

    ctx->error_body_sent = 1;

    out.buf = ctx->error_body;
    out.next = NULL;

    return ngx_http_next_body_filter(r, &out);
}


ngx_int_t
ngx_http_auth_pat_json_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_auth_pat_error_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_auth_pat_error_body_filter;

    return NGX_OK;
}
