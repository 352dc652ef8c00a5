
/*
 * The token admin API (auth_pat_api): routing, caller identity, request
 * bodies, validation, and the JSON answers.  Each route is a short chain
 * of Redis commands (see ngx_http_auth_pat_store.c); every step is an
 * asynchronous reply, and the request is finalized once, by the last.
 *
 *   POST   PREFIX              create     CREATE -> ACTIVATE -> CONFIRM
 *   GET    PREFIX              list       (PURGE) LIST -> PAGE
 *   DELETE PREFIX/ID           revoke     GET -> DEACTIVATE -> INVALIDATE
 *                                         -> REVOKE -> DEACTIVATE
 *                                         -> INVALIDATE
 *   POST   PREFIX/ID/rotate    rotate     GET -> CLAIM -> DEACTIVATE
 *                                         -> INVALIDATE -> ROTATE
 *                                         -> DEACTIVATE -> INVALIDATE
 *                                         -> ACTIVATE -> CONFIRM
 *
 * DEACTIVATE deletes the validation record; INVALIDATE then publishes the
 * digest to every nginx's cache.  Only after both does the metadata say
 * "revoked", and only after that does the client get its 2xx.
 *
 * The validation record (NS v:DIGEST) and the metadata live in different
 * Cluster slots, so no script writes both.  A revoke can therefore run
 * between a new token's metadata and its ACTIVATE, and delete a record
 * not yet written.  Two rules close that window, whatever the order:
 * after marking a token revoked, its validation record is deleted (and
 * published) once more; after activating a token, CONFIRM reads its
 * metadata, and a token revoked meanwhile is deleted again and the
 * client gets 409, never a dead token.
 *
 * The plaintext of a new token lives in the request's memory only, is
 * sent once in the response, and is wiped when the request ends: the
 * generated token here, jansson's copy as it is freed, the response
 * buffer by a pool cleanup (ngx_http_auth_pat_json_buf()).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "ngx_http_auth_pat_module.h"
#include "ngx_http_auth_pat_store.h"


#define NGX_HTTP_AUTH_PAT_NAME_MAX       200
#define NGX_HTTP_AUTH_PAT_SEARCH_MAX     200
#define NGX_HTTP_AUTH_PAT_ARGS_LEN_MAX   4096
#define NGX_HTTP_AUTH_PAT_PAGE_SIZE      25
#define NGX_HTTP_AUTH_PAT_PAGE_SIZE_MAX  100
#define NGX_HTTP_AUTH_PAT_PAGE_INDEX_MAX 1000000


typedef enum {
    NGX_HTTP_AUTH_PAT_ROUTE_COLLECTION = 0,
    NGX_HTTP_AUTH_PAT_ROUTE_ITEM,
    NGX_HTTP_AUTH_PAT_ROUTE_ROTATE
} ngx_http_auth_pat_route_e;


typedef enum {
    NGX_HTTP_AUTH_PAT_SORT_CREATED = 0,
    NGX_HTTP_AUTH_PAT_SORT_NAME,
    NGX_HTTP_AUTH_PAT_SORT_EXPIRES,
    NGX_HTTP_AUTH_PAT_SORT_LAST_USED
} ngx_http_auth_pat_sort_e;


typedef enum {
    NGX_HTTP_AUTH_PAT_ANY = 0,
    NGX_HTTP_AUTH_PAT_ACTIVE,
    NGX_HTTP_AUTH_PAT_EXPIRED,
    NGX_HTTP_AUTH_PAT_REVOKED
} ngx_http_auth_pat_status_e;


typedef struct {
    ngx_http_auth_pat_status_e       status;
    ngx_str_t                        search;    /* lowercased, or empty */
    ngx_http_auth_pat_sort_e         sort_by;
    ngx_uint_t                       desc;
    ngx_uint_t                       offset;
    ngx_uint_t                       limit;

    /* results */
    ngx_uint_t                       total;
    ngx_uint_t                       facets[4];  /* by status */
} ngx_http_auth_pat_list_query_t;


/* one token of the list index, pointing into the Redis reply */
typedef struct {
    u_char                          *id;
    size_t                           id_len;
    u_char                          *name;
    size_t                           name_len;
    int64_t                          created;
    int64_t                          key;       /* the sort key */
    unsigned                         has_key:1; /* no key: sorted last */
    unsigned                         by_name:1;
    unsigned                         desc:1;
} ngx_http_auth_pat_list_entry_t;


/*
 * 5000-01-01T00:00:00Z in ms.  The Lua scripts re-encode records with
 * Redis' cjson, which keeps 14 significant digits: from about year 5138
 * on, an instant in ms would come back rounded.
 */
#define NGX_HTTP_AUTH_PAT_EXPIRES_MAX  95617584000000LL


typedef enum {
    NGX_HTTP_AUTH_PAT_STEP_LIST = 0,
    NGX_HTTP_AUTH_PAT_STEP_PAGE,
    NGX_HTTP_AUTH_PAT_STEP_CREATE,
    NGX_HTTP_AUTH_PAT_STEP_ACTIVATE,
    NGX_HTTP_AUTH_PAT_STEP_GET,
    NGX_HTTP_AUTH_PAT_STEP_DEACTIVATE,
    NGX_HTTP_AUTH_PAT_STEP_INVALIDATE,
    NGX_HTTP_AUTH_PAT_STEP_REVOKE,
    NGX_HTTP_AUTH_PAT_STEP_CLAIM,
    NGX_HTTP_AUTH_PAT_STEP_ROTATE,
    NGX_HTTP_AUTH_PAT_STEP_CONFIRM
} ngx_http_auth_pat_step_e;


typedef struct {
    ngx_http_request_t              *request;
    ngx_http_auth_pat_redis_cmd_t   *cmd;
    ngx_http_auth_pat_route_e        route;
    ngx_http_auth_pat_step_e         step;

    ngx_str_t                        user;
    ngx_str_t                        id;        /* of the route */
    json_t                          *body;
    json_t                          *old;       /* rotate: old record */
    int64_t                          now;

    /* the token being issued */
    ngx_str_t                        name;
    int64_t                          expires;   /* 0: never */
    u_char                           token[PAT_TOKEN_MAX_LEN + 1];
    size_t                           token_len;
    u_char                           hex[PAT_DIGEST_HEX_LEN];
    u_char                           new_id[PAT_UUID_LEN + 1];
    ngx_str_t                        new_id_str;
    ngx_str_t                        record;

    u_char                           old_hex[PAT_DIGEST_HEX_LEN];

    /* revoke and rotate: the metadata says revoked, delete again */
    unsigned                         marked:1;
    /* create and rotate: the new token was revoked while activated */
    unsigned                         dead:1;
    /* create and rotate: the new token's metadata exists */
    unsigned                         issuing:1;
    json_t                          *answer;    /* revoke: the record */

    ngx_http_auth_pat_list_query_t   query;
} ngx_http_auth_pat_api_t;


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


static void ngx_http_auth_pat_api_start(ngx_http_request_t *r);
static void ngx_http_auth_pat_api_reply(void *data, redisReply *reply,
    ngx_int_t rc);
static void ngx_http_auth_pat_api_list_done(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply);
static void ngx_http_auth_pat_api_activate(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api);
static void ngx_http_auth_pat_api_deactivate(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api);


/* ------------------------------------------------------------ answers */


static void
ngx_http_auth_pat_api_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_str_t                     *challenge;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    challenge = NULL;

    if (status == NGX_HTTP_UNAUTHORIZED) {
        plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);
        challenge = &plcf->challenge;
    }

    ngx_http_finalize_request(r,
        ngx_http_auth_pat_send_error(r, status, code, message, challenge));
}


static void
ngx_http_auth_pat_api_unavailable(ngx_http_request_t *r)
{
    ngx_http_auth_pat_api_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                "unavailable",
                                "the token store is unavailable");
}


static void
ngx_http_auth_pat_api_internal(ngx_http_request_t *r)
{
    ngx_http_auth_pat_api_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                "internal", "internal error");
}


static void
ngx_http_auth_pat_api_send(ngx_http_request_t *r, ngx_uint_t status,
    json_t *obj)
{
    ngx_http_finalize_request(r,
        ngx_http_auth_pat_send_json(r, status, obj, NULL));
}


static int64_t
ngx_http_auth_pat_json_ms(json_t *t, const char *key)
{
    json_t  *v;

    v = json_object_get(t, key);

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


/* the public token object, from a metadata record */

static json_t *
ngx_http_auth_pat_api_token(json_t *rec, int64_t now)
{
    json_t      *t, *rf;
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


/* {"data": token} or, with the plaintext, {"data": token + "token"} */

static void
ngx_http_auth_pat_api_send_token(ngx_http_request_t *r, ngx_uint_t status,
    json_t *rec, ngx_http_auth_pat_api_t *api, ngx_uint_t with_plaintext)
{
    json_t  *t;

    t = ngx_http_auth_pat_api_token(rec, api->now);
    if (t == NULL) {
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    if (with_plaintext) {
        json_object_set_new(t, "token",
            json_stringn((char *) api->token, api->token_len));
    }

    ngx_http_auth_pat_api_send(r, status, json_pack("{s:o}", "data", t));
}


static json_t *
ngx_http_auth_pat_api_parse_record(const char *s, size_t len)
{
    json_t  *rec;

    rec = json_loadb(s, len, 0, NULL);

    if (rec != NULL && !json_is_object(rec)) {
        json_decref(rec);
        return NULL;
    }

    return rec;
}


/* ------------------------------------------------------------ lifecycle */


static void
ngx_http_auth_pat_api_cleanup(void *data)
{
    ngx_http_auth_pat_api_t  *api = data;

    if (api->cmd) {
        ngx_http_auth_pat_redis_cancel(api->cmd);
        api->cmd = NULL;
    }

    if (api->body) {
        json_decref(api->body);
        api->body = NULL;
    }

    if (api->old) {
        json_decref(api->old);
        api->old = NULL;
    }

    if (api->answer) {
        json_decref(api->answer);
        api->answer = NULL;
    }

    OPENSSL_cleanse(api->token, sizeof(api->token));
}


/* sends the next command of the chain; NULL means Redis is unavailable */

static void
ngx_http_auth_pat_api_next(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, ngx_http_auth_pat_step_e step,
    ngx_http_auth_pat_redis_cmd_t *cmd)
{
    api->step = step;
    api->cmd = cmd;

    if (cmd == NULL) {
        ngx_http_auth_pat_api_unavailable(r);
    }
}


static void
ngx_http_auth_pat_noop(void *data, redisReply *reply, ngx_int_t rc)
{
}


/* ----------------------------------------------------------- validation */


static ngx_uint_t
ngx_http_auth_pat_is_space(u_char *p, u_char *last, size_t *n)
{
    /* ASCII space, and the Unicode spaces that are not control characters:
     * U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F,
     * U+3000, U+FEFF */

    if (*p == ' ') {
        *n = 1;
        return 1;
    }

    if (last - p >= 2 && p[0] == 0xc2 && p[1] == 0xa0) {
        *n = 2;
        return 1;
    }

    if (last - p >= 3) {
        if ((p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80)
            || (p[0] == 0xe2 && p[1] == 0x80
                && (p[2] <= 0x8a || p[2] == 0xa8 || p[2] == 0xa9
                    || p[2] == 0xaf))
            || (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f)
            || (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80)
            || (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf))
        {
            *n = 3;
            return 1;
        }
    }

    return 0;
}


static ngx_uint_t
ngx_http_auth_pat_is_space_before(u_char *start, u_char *p, size_t *n)
{
    size_t  k;

    for (k = 1; k <= 3 && p - k >= start; k++) {
        if (ngx_http_auth_pat_is_space(p - k, p, n) && *n == k) {
            return 1;
        }
    }

    return 0;
}


/*
 * "name": a string of 1 to 200 characters after trimming, valid UTF-8,
 * no control characters.  Returns NULL, or the (status, message) of the
 * problem.
 */

static const char *
ngx_http_auth_pat_api_name(ngx_http_auth_pat_api_t *api, ngx_uint_t *status)
{
    u_char   *p, *last;
    size_t    n, nchars;
    json_t   *v;

    v = json_object_get(api->body, "name");

    if (v == NULL) {
        *status = NGX_HTTP_UNPROCESSABLE_ENTITY;
        return "name is required";
    }

    if (!json_is_string(v)) {
        *status = NGX_HTTP_BAD_REQUEST;
        return "name must be a string";
    }

    p = (u_char *) json_string_value(v);
    last = p + json_string_length(v);

    while (p < last && ngx_http_auth_pat_is_space(p, last, &n)) {
        p += n;
    }

    while (last > p && ngx_http_auth_pat_is_space_before(p, last, &n)) {
        last -= n;
    }

    *status = NGX_HTTP_UNPROCESSABLE_ENTITY;

    if (ngx_http_auth_pat_utf8_check((char *) p, last - p, &nchars, 1) != 0) {
        return "name must be valid UTF-8 without control characters";
    }

    if (nchars == 0) {
        return "name must not be empty";
    }

    if (nchars > NGX_HTTP_AUTH_PAT_NAME_MAX) {
        return "name must be at most 200 characters";
    }

    api->name.data = ngx_pnalloc(api->request->pool, last - p);
    if (api->name.data == NULL) {
        *status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return "internal error";
    }

    api->name.len = last - p;
    ngx_memcpy(api->name.data, p, last - p);

    return NULL;
}


/*
 * "expiresAt": RFC 3339 with any offset, or null; absent means the given
 * default (0: never).  It must lie in the future and within
 * auth_pat_max_lifetime.
 */

static const char *
ngx_http_auth_pat_api_expires(ngx_http_auth_pat_api_t *api,
    int64_t dflt, ngx_uint_t *status)
{
    json_t                        *v;
    int64_t                        ms, max;
    const char                    *s;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(api->request,
                                        ngx_http_auth_pat_module);

    v = api->body ? json_object_get(api->body, "expiresAt") : NULL;
    *status = NGX_HTTP_UNPROCESSABLE_ENTITY;

    if (v == NULL) {
        ms = dflt;

    } else if (json_is_null(v)) {
        ms = 0;

    } else if (json_is_string(v)) {
        s = json_string_value(v);

        if (ngx_http_auth_pat_rfc3339_parse(s, json_string_length(v), &ms)
            != 0)
        {
            return "expiresAt must be an RFC 3339 date-time, "
                   "e.g. 2026-12-31T23:59:59Z";
        }

        if (ms <= api->now) {
            return "expiresAt must be in the future";
        }

        if (ms >= NGX_HTTP_AUTH_PAT_EXPIRES_MAX) {
            return "expiresAt must be before 5000-01-01T00:00:00Z";
        }

    } else {
        *status = NGX_HTTP_BAD_REQUEST;
        return "expiresAt must be a string or null";
    }

    if (plcf->max_lifetime > 0) {
        max = api->now + (int64_t) plcf->max_lifetime * 1000;

        if (ms == 0) {
            return "expiresAt cannot be null: tokens here expire within "
                   "auth_pat_max_lifetime";
        }

        if (ms > max) {
            return "expiresAt is beyond the longest lifetime allowed";
        }
    }

    api->expires = ms;

    return NULL;
}


/* the metadata record of the token being issued */

static ngx_int_t
ngx_http_auth_pat_api_new_token(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, ngx_str_t *rotated_from)
{
    int                             n;
    char                           *s;
    u_char                          md[PAT_DIGEST_LEN];
    json_t                         *rec;
    ngx_http_auth_pat_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_auth_pat_module);

    n = ngx_http_auth_pat_token_generate((char *) pmcf->prefix.data,
                                         pmcf->prefix.len,
                                         (char *) api->token,
                                         sizeof(api->token));
    if (n < 0 || ngx_http_auth_pat_uuid_v4((char *) api->new_id) != 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "auth_pat: RAND_bytes() failed");
        return NGX_ERROR;
    }

    api->token_len = n;
    api->new_id_str.data = api->new_id;
    api->new_id_str.len = PAT_UUID_LEN;

    if (ngx_http_auth_pat_store_digest(pmcf, api->token, api->token_len,
                                       md, api->hex)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rec = json_pack("{s:s, s:s#, s:s#, s:I, s:o, s:n, s:n, s:s#, s:o, s:n,"
                    " s:n}",
                    "id", (char *) api->new_id,
                    "name", (char *) api->name.data, (int) api->name.len,
                    "prefix", (char *) api->token, (int) pmcf->prefix.len + 4,
                    "c", (json_int_t) api->now,
                    "e", api->expires ? json_integer(api->expires)
                                      : json_null(),
                    "l",
                    "r",
                    "d", (char *) api->hex, PAT_DIGEST_HEX_LEN,
                    "rf", rotated_from ? json_stringn(
                                             (char *) rotated_from->data,
                                             rotated_from->len)
                                       : json_null(),
                    "rt",
                    "k");
    if (rec == NULL) {
        return NGX_ERROR;
    }

    s = json_dumps(rec, JSON_COMPACT);
    json_decref(rec);

    if (s == NULL) {
        return NGX_ERROR;
    }

    api->record.len = ngx_strlen(s);
    api->record.data = ngx_pnalloc(r->pool, api->record.len);
    if (api->record.data == NULL) {
        free(s);
        return NGX_ERROR;
    }

    ngx_memcpy(api->record.data, s, api->record.len);
    free(s);

    return NGX_OK;
}


/* ------------------------------------------------------------- routes */


static void
ngx_http_auth_pat_api_create(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    int64_t                        dflt;
    ngx_uint_t                     status;
    const char                    *err;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    err = ngx_http_auth_pat_api_name(api, &status);

    if (err == NULL) {
        dflt = 0;

        if (plcf->default_lifetime > 0) {
            dflt = api->now + (int64_t) plcf->default_lifetime * 1000;

        } else if (plcf->max_lifetime > 0) {
            dflt = api->now + (int64_t) plcf->max_lifetime * 1000;
        }

        err = ngx_http_auth_pat_api_expires(api, dflt, &status);
    }

    if (err) {
        ngx_http_auth_pat_api_error(r, status,
            status == NGX_HTTP_BAD_REQUEST ? "invalid_request"
                                           : "validation_error", err);
        return;
    }

    if (ngx_http_auth_pat_api_new_token(r, api, NULL) != NGX_OK) {
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    ngx_http_auth_pat_api_next(r, api, NGX_HTTP_AUTH_PAT_STEP_CREATE,
        ngx_http_auth_pat_store_create(r->pool, &api->user, &api->new_id_str,
                                       &api->name, &api->record, api->now,
                                       api->expires, plcf->max_tokens,
                                       ngx_http_auth_pat_api_reply, api));
}


static ngx_int_t
ngx_http_auth_pat_api_arg(ngx_http_request_t *r, const char *snake,
    const char *camel, ngx_str_t *value)
{
    if (ngx_http_arg(r, (u_char *) snake, ngx_strlen(snake), value)
        == NGX_OK)
    {
        return NGX_OK;
    }

    return ngx_http_arg(r, (u_char *) camel, ngx_strlen(camel), value);
}


static const char *
ngx_http_auth_pat_api_query(ngx_http_request_t *r,
    ngx_http_auth_pat_list_query_t *q)
{
    u_char     *p, *dst, *src;
    size_t      nchars, i;
    ngx_int_t   n;
    ngx_str_t   v;

    q->offset = 0;
    q->limit = NGX_HTTP_AUTH_PAT_PAGE_SIZE;
    q->status = NGX_HTTP_AUTH_PAT_ANY;
    ngx_str_null(&q->search);
    q->sort_by = NGX_HTTP_AUTH_PAT_SORT_CREATED;
    q->desc = 1;

    if (ngx_http_auth_pat_api_arg(r, "page_size", "pageSize", &v) == NGX_OK) {
        n = ngx_atoi(v.data, v.len);
        if (n < 1 || n > NGX_HTTP_AUTH_PAT_PAGE_SIZE_MAX) {
            return "page_size must be an integer from 1 to 100";
        }

        q->limit = n;
    }

    if (ngx_http_auth_pat_api_arg(r, "page_index", "pageIndex", &v)
        == NGX_OK)
    {
        n = ngx_atoi(v.data, v.len);
        if (n < 0 || n > NGX_HTTP_AUTH_PAT_PAGE_INDEX_MAX) {
            return "page_index must be a non-negative integer";
        }

        q->offset = n * q->limit;
    }

    if (ngx_http_auth_pat_api_arg(r, "status", "status", &v) == NGX_OK) {
        if (v.len == 6 && ngx_strncmp(v.data, "active", 6) == 0) {
            q->status = NGX_HTTP_AUTH_PAT_ACTIVE;

        } else if (v.len == 7 && ngx_strncmp(v.data, "expired", 7) == 0) {
            q->status = NGX_HTTP_AUTH_PAT_EXPIRED;

        } else if (v.len == 7 && ngx_strncmp(v.data, "revoked", 7) == 0) {
            q->status = NGX_HTTP_AUTH_PAT_REVOKED;

        } else {
            return "status must be active, expired or revoked";
        }
    }

    if (ngx_http_auth_pat_api_arg(r, "search_term", "searchTerm", &v)
        == NGX_OK)
    {
        p = ngx_pnalloc(r->pool, v.len);
        if (p == NULL) {
            return "internal error";
        }

        /* form encoding: '+' is a space; '%' takes two hex digits */
        for (i = 0; i < v.len; i++) {
            if (v.data[i] == '%'
                && (i + 2 >= v.len
                    || ngx_hextoi(&v.data[i + 1], 2) == NGX_ERROR))
            {
                return "search_term has a bad percent escape";
            }

            p[i] = (v.data[i] == '+') ? ' ' : v.data[i];
        }

        src = p;
        dst = p;
        ngx_unescape_uri(&dst, &src, v.len, 0);

        q->search.data = p;
        q->search.len = dst - p;

        if (ngx_http_auth_pat_utf8_check((char *) q->search.data,
                                         q->search.len, &nchars, 1)
            != 0)
        {
            return "search_term must be valid UTF-8";
        }

        if (nchars > NGX_HTTP_AUTH_PAT_SEARCH_MAX) {
            return "search_term must be at most 200 characters";
        }

        for (i = 0; i < q->search.len; i++) {
            q->search.data[i] = ngx_tolower(q->search.data[i]);
        }
    }

    if (ngx_http_auth_pat_api_arg(r, "sort_by", "sortBy", &v) == NGX_OK) {
        if (v.len == 9 && ngx_strncmp(v.data, "createdAt", 9) == 0) {
            q->sort_by = NGX_HTTP_AUTH_PAT_SORT_CREATED;

        } else if (v.len == 4 && ngx_strncmp(v.data, "name", 4) == 0) {
            q->sort_by = NGX_HTTP_AUTH_PAT_SORT_NAME;

        } else if (v.len == 9 && ngx_strncmp(v.data, "expiresAt", 9) == 0) {
            q->sort_by = NGX_HTTP_AUTH_PAT_SORT_EXPIRES;

        } else if (v.len == 10 && ngx_strncmp(v.data, "lastUsedAt", 10) == 0)
        {
            q->sort_by = NGX_HTTP_AUTH_PAT_SORT_LAST_USED;

        } else {
            return "sort_by must be createdAt, name, expiresAt or lastUsedAt";
        }
    }

    if (ngx_http_auth_pat_api_arg(r, "sort_direction", "sortDirection", &v)
        == NGX_OK)
    {
        if (v.len == 3 && ngx_strncmp(v.data, "asc", 3) == 0) {
            q->desc = 0;

        } else if (v.len == 4 && ngx_strncmp(v.data, "desc", 4) == 0) {
            q->desc = 1;

        } else {
            return "sort_direction must be asc or desc";
        }
    }

    return NULL;
}


static void
ngx_http_auth_pat_api_list(ngx_http_request_t *r, ngx_http_auth_pat_api_t *api)
{
    const char  *err;

    err = ngx_http_auth_pat_api_query(r, &api->query);

    if (err) {
        ngx_http_auth_pat_api_error(r, NGX_HTTP_BAD_REQUEST, "invalid_request",
                                    err);
        return;
    }

    ngx_http_auth_pat_api_next(r, api, NGX_HTTP_AUTH_PAT_STEP_LIST,
        ngx_http_auth_pat_store_list_index(r->pool, &api->user, api->now,
                                           ngx_http_auth_pat_api_reply, api));
}


/* "c:e:l:r:name": the times (empty for null), then the name */

static ngx_int_t
ngx_http_auth_pat_list_parse(u_char *p, size_t len, int64_t t[4],
    ngx_str_t *name)
{
    u_char      *last, *start;
    ngx_int_t    i;

    last = p + len;

    for (i = 0; i < 4; i++) {
        start = p;

        while (p < last && *p != ':') {
            p++;
        }

        if (p == last) {
            return NGX_ERROR;
        }

        t[i] = 0;

        if (p > start) {
            t[i] = ngx_atoof(start, p - start);
            if (t[i] == NGX_ERROR) {
                return NGX_ERROR;
            }
        }

        p++;
    }

    name->data = p;
    name->len = last - p;

    return NGX_OK;
}


static int
ngx_http_auth_pat_list_cmp(const void *one, const void *two)
{
    const ngx_http_auth_pat_list_entry_t  *a = one;
    const ngx_http_auth_pat_list_entry_t  *b = two;

    int      rc;
    size_t   i, n;
    u_char   ca, cb;

    /* tokens without the key (no expiry, never used) come last */
    if (a->has_key != b->has_key) {
        return a->has_key ? -1 : 1;
    }

    rc = 0;

    if (a->by_name) {
        n = ngx_min(a->name_len, b->name_len);

        for (i = 0; i < n && rc == 0; i++) {
            ca = ngx_tolower(a->name[i]);
            cb = ngx_tolower(b->name[i]);
            rc = (ca > cb) - (ca < cb);
        }

        if (rc == 0) {
            rc = (a->name_len > b->name_len) - (a->name_len < b->name_len);
        }

    } else if (a->has_key) {
        rc = (a->key > b->key) - (a->key < b->key);
    }

    if (rc) {
        return a->desc ? -rc : rc;
    }

    /* ties: newest first, then by id, so pages never overlap */
    if (a->created != b->created) {
        return a->created > b->created ? -1 : 1;
    }

    return ngx_memn2cmp(a->id, b->id, a->id_len, b->id_len);
}


/*
 * The whole index of the caller's tokens: facets over all of them, then
 * the filter, the order and the page.  The page's records follow.
 */

static void
ngx_http_auth_pat_api_list_index(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    size_t                           i, n, m, last;
    int64_t                          t[4];
    ngx_str_t                        name, *ids;
    redisReply                      *id, *ix;
    ngx_http_auth_pat_status_e       status;
    ngx_http_auth_pat_list_query_t  *q;
    ngx_http_auth_pat_list_entry_t  *entries, *e;

    q = &api->query;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    n = reply->elements / 2;

    entries = ngx_palloc(r->pool,
                         (n ? n : 1) * sizeof(ngx_http_auth_pat_list_entry_t));
    if (entries == NULL) {
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    m = 0;

    for (i = 0; i < n; i++) {
        id = reply->element[2 * i];
        ix = reply->element[2 * i + 1];

        if (id->type != REDIS_REPLY_STRING || ix->type != REDIS_REPLY_STRING
            || ngx_http_auth_pat_list_parse((u_char *) ix->str, ix->len, t,
                                            &name)
               != NGX_OK)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "auth_pat: bad list index entry of user \"%V\"",
                          &api->user);
            continue;
        }

        /* t[]: created, expires, last used, revoked */
        if (t[3]) {
            status = NGX_HTTP_AUTH_PAT_REVOKED;

        } else if (t[1] && t[1] <= api->now) {
            status = NGX_HTTP_AUTH_PAT_EXPIRED;

        } else {
            status = NGX_HTTP_AUTH_PAT_ACTIVE;
        }

        q->facets[status]++;

        if (q->status != NGX_HTTP_AUTH_PAT_ANY && q->status != status) {
            continue;
        }

        if (q->search.len
            && ngx_strlcasestrn(name.data, name.data + name.len,
                                q->search.data, q->search.len - 1)
               == NULL)
        {
            continue;
        }

        e = &entries[m++];

        e->id = (u_char *) id->str;
        e->id_len = id->len;
        e->name = name.data;
        e->name_len = name.len;
        e->created = t[0];
        e->by_name = (q->sort_by == NGX_HTTP_AUTH_PAT_SORT_NAME);
        e->desc = q->desc;

        switch (q->sort_by) {

        case NGX_HTTP_AUTH_PAT_SORT_EXPIRES:
            e->key = t[1];
            break;

        case NGX_HTTP_AUTH_PAT_SORT_LAST_USED:
            e->key = t[2];
            break;

        default:
            e->key = t[0];
        }

        e->has_key = (e->key != 0 || e->by_name);
    }

    ngx_qsort(entries, m, sizeof(ngx_http_auth_pat_list_entry_t),
              ngx_http_auth_pat_list_cmp);

    q->total = m;

    last = ngx_min(m, q->offset + q->limit);
    n = (q->offset < last) ? last - q->offset : 0;

    if (n == 0) {
        ngx_http_auth_pat_api_list_done(r, api, NULL);
        return;
    }

    /* the reply is freed after this handler: copy the page's ids */
    ids = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
    if (ids == NULL) {
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    for (i = 0; i < n; i++) {
        e = &entries[q->offset + i];

        ids[i].len = e->id_len;
        ids[i].data = ngx_pstrdup(r->pool, &(ngx_str_t) { e->id_len, e->id });
        if (ids[i].data == NULL) {
            ngx_http_auth_pat_api_internal(r);
            return;
        }
    }

    ngx_http_auth_pat_api_next(r, api, NGX_HTTP_AUTH_PAT_STEP_PAGE,
        ngx_http_auth_pat_store_get_many(r->pool, &api->user, ids, n,
                                         ngx_http_auth_pat_api_reply, api));
}


/* the page's records, in order; one gone meanwhile is skipped */

static void
ngx_http_auth_pat_api_list_done(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    size_t                           i;
    json_t                          *items, *rec, *t;
    redisReply                      *e;
    ngx_http_auth_pat_list_query_t  *q;

    q = &api->query;

    if (reply && reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    items = json_array();
    if (items == NULL) {
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    for (i = 0; reply && i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type == REDIS_REPLY_NIL) {
            continue;
        }

        rec = (e->type == REDIS_REPLY_STRING)
              ? ngx_http_auth_pat_api_parse_record(e->str, e->len) : NULL;
        if (rec == NULL) {
            json_decref(items);
            ngx_http_auth_pat_api_internal(r);
            return;
        }

        t = ngx_http_auth_pat_api_token(rec, api->now);
        json_decref(rec);

        if (t == NULL || json_array_append_new(items, t) != 0) {
            json_decref(items);
            ngx_http_auth_pat_api_internal(r);
            return;
        }
    }

    ngx_http_auth_pat_api_send(r, NGX_HTTP_OK,
        json_pack("{s:o, s:I, s:{s:{s:I, s:I, s:I}}}",
                  "items", items,
                  "totalCount", (json_int_t) q->total,
                  "facets", "status",
                  "active", (json_int_t) q->facets[NGX_HTTP_AUTH_PAT_ACTIVE],
                  "expired",
                  (json_int_t) q->facets[NGX_HTTP_AUTH_PAT_EXPIRED],
                  "revoked",
                  (json_int_t) q->facets[NGX_HTTP_AUTH_PAT_REVOKED]));
}


/* revoke and rotate start by reading the record: 404 for anyone else's */

static void
ngx_http_auth_pat_api_get(ngx_http_request_t *r, ngx_http_auth_pat_api_t *api)
{
    ngx_http_auth_pat_api_next(r, api, NGX_HTTP_AUTH_PAT_STEP_GET,
        ngx_http_auth_pat_store_get(r->pool, &api->user, &api->id,
                                    ngx_http_auth_pat_api_reply, api));
}


static ngx_int_t
ngx_http_auth_pat_api_old_digest(ngx_http_auth_pat_api_t *api, json_t *rec)
{
    json_t  *d;

    d = json_object_get(rec, "d");

    if (!json_is_string(d) || json_string_length(d) != PAT_DIGEST_HEX_LEN) {
        return NGX_ERROR;
    }

    ngx_memcpy(api->old_hex, json_string_value(d), PAT_DIGEST_HEX_LEN);

    return NGX_OK;
}


static void
ngx_http_auth_pat_api_got(ngx_http_request_t *r, ngx_http_auth_pat_api_t *api,
    redisReply *reply)
{
    json_t      *rec;
    int64_t      c, e, lifetime;
    ngx_uint_t   status;
    const char  *err;

    if (reply->type == REDIS_REPLY_NIL) {
        ngx_http_auth_pat_api_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                    "no such token");
        return;
    }

    rec = (reply->type == REDIS_REPLY_STRING)
          ? ngx_http_auth_pat_api_parse_record(reply->str, reply->len) : NULL;

    if (rec == NULL || ngx_http_auth_pat_api_old_digest(api, rec) != NGX_OK) {
        if (rec) {
            json_decref(rec);
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "auth_pat: bad metadata record of token %V", &api->id);
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    api->old = rec;

    if (api->route == NGX_HTTP_AUTH_PAT_ROUTE_ITEM) {
        /* revoke: the validation record goes first */
        ngx_http_auth_pat_api_deactivate(r, api);
        return;
    }

    /* rotate */

    e = ngx_http_auth_pat_json_ms(rec, "e");

    if (ngx_http_auth_pat_json_ms(rec, "r")) {
        ngx_http_auth_pat_api_error(r, NGX_HTTP_CONFLICT, "conflict",
                                    "the token is revoked");
        return;
    }

    if (e && e <= api->now) {
        ngx_http_auth_pat_api_error(r, NGX_HTTP_CONFLICT, "conflict",
                                    "the token is expired");
        return;
    }

    /* the same lifetime length by default; no expiry stays no expiry */
    c = ngx_http_auth_pat_json_ms(rec, "c");
    lifetime = (e && e > c) ? e - c : 0;

    err = ngx_http_auth_pat_api_expires(api,
                                        lifetime ? api->now + lifetime : 0,
                                        &status);
    if (err) {
        ngx_http_auth_pat_api_error(r, status,
            status == NGX_HTTP_BAD_REQUEST ? "invalid_request"
                                           : "validation_error", err);
        return;
    }

    api->name.data = (u_char *) json_string_value(json_object_get(rec,
                                                                  "name"));
    if (api->name.data == NULL) {
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    api->name.len = json_string_length(json_object_get(rec, "name"));

    if (ngx_http_auth_pat_api_new_token(r, api, &api->id) != NGX_OK) {
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    ngx_http_auth_pat_api_next(r, api, NGX_HTTP_AUTH_PAT_STEP_CLAIM,
        ngx_http_auth_pat_store_claim(r->pool, &api->user, &api->id, api->now,
                                      ngx_http_auth_pat_api_reply, api));
}


static void
ngx_http_auth_pat_api_claimed(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    switch (reply->element[0]->integer) {

    case 0:
        ngx_http_auth_pat_api_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                    "no such token");
        return;

    case 1:
        break;

    default:
        ngx_http_auth_pat_api_error(r, NGX_HTTP_CONFLICT, "conflict",
            "the token is revoked, expired or being rotated");
        return;
    }

    ngx_http_auth_pat_api_deactivate(r, api);
}


static void
ngx_http_auth_pat_api_deactivate(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    ngx_http_auth_pat_api_next(r, api, NGX_HTTP_AUTH_PAT_STEP_DEACTIVATE,
        ngx_http_auth_pat_store_deactivate(r->pool,
                                           api->dead ? api->hex : api->old_hex,
                                           ngx_http_auth_pat_api_reply, api));
}


static void
ngx_http_auth_pat_api_deactivated(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    ngx_http_auth_pat_api_next(r, api, NGX_HTTP_AUTH_PAT_STEP_INVALIDATE,
        ngx_http_auth_pat_store_invalidate(r->pool,
                                           api->dead ? api->hex : api->old_hex,
                                           ngx_http_auth_pat_api_reply, api));
}


static void
ngx_http_auth_pat_api_invalidated(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    if (api->dead) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "auth_pat: token %V of user \"%V\" was revoked while "
                      "it was issued", &api->new_id_str, &api->user);
        ngx_http_auth_pat_api_error(r, NGX_HTTP_CONFLICT, "conflict",
                                    "the new token was revoked meanwhile");
        return;
    }

    if (api->marked) {
        if (api->route == NGX_HTTP_AUTH_PAT_ROUTE_ITEM) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "auth_pat: token %V of user \"%V\" revoked",
                          &api->id, &api->user);
            ngx_http_auth_pat_api_send_token(r, NGX_HTTP_OK, api->answer,
                                             api, 0);
            return;
        }

        ngx_http_auth_pat_api_activate(r, api);
        return;
    }

    if (api->route == NGX_HTTP_AUTH_PAT_ROUTE_ITEM) {
        ngx_http_auth_pat_api_next(r, api, NGX_HTTP_AUTH_PAT_STEP_REVOKE,
            ngx_http_auth_pat_store_revoke(r->pool, &api->user, &api->id,
                                           api->now,
                                           ngx_http_auth_pat_api_reply, api));
        return;
    }

    ngx_http_auth_pat_api_next(r, api, NGX_HTTP_AUTH_PAT_STEP_ROTATE,
        ngx_http_auth_pat_store_rotate(r->pool, &api->user, &api->id,
                                       api->now, &api->new_id_str,
                                       &api->name, &api->record, api->now,
                                       api->expires,
                                       ngx_http_auth_pat_api_reply, api));
}


static void
ngx_http_auth_pat_api_activate(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    ngx_http_auth_pat_api_next(r, api, NGX_HTTP_AUTH_PAT_STEP_ACTIVATE,
        ngx_http_auth_pat_store_activate(r->pool, api->hex, &api->user,
                                         &api->new_id_str, &api->name,
                                         api->expires,
                                         ngx_http_auth_pat_api_reply, api));
}


/*
 * The new token's metadata exists but its validation record may or may
 * not: the client gets 503 (or 500) and never sees the plaintext.  Undo
 * in the safe order, on the same pipelined connection: the validation
 * record (in case the write did land), then the metadata.
 */

static void
ngx_http_auth_pat_api_abandon(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "auth_pat: token %V of user \"%V\" was not activated; "
                  "revoking it", &api->new_id_str, &api->user);

    (void) ngx_http_auth_pat_store_deactivate(r->pool, api->hex,
                                              ngx_http_auth_pat_noop, NULL);
    (void) ngx_http_auth_pat_store_revoke(r->pool, &api->user,
                                          &api->new_id_str, api->now,
                                          ngx_http_auth_pat_noop, NULL);
}


static void
ngx_http_auth_pat_api_reply(void *data, redisReply *reply, ngx_int_t rc)
{
    ngx_http_auth_pat_api_t  *api = data;

    json_t              *rec;
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = api->request;
    c = r->connection;
    api->cmd = NULL;

    if (rc != NGX_OK) {
        if (api->issuing) {
            ngx_http_auth_pat_api_abandon(r, api);
        }

        ngx_http_auth_pat_api_unavailable(r);
        goto done;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, c->log, 0,
                      "auth_pat: redis error: %s", reply->str);

        if (api->issuing) {
            ngx_http_auth_pat_api_abandon(r, api);
        }

        ngx_http_auth_pat_api_internal(r);
        goto done;
    }

    switch (api->step) {

    case NGX_HTTP_AUTH_PAT_STEP_LIST:
        ngx_http_auth_pat_api_list_index(r, api, reply);
        break;

    case NGX_HTTP_AUTH_PAT_STEP_PAGE:
        ngx_http_auth_pat_api_list_done(r, api, reply);
        break;

    case NGX_HTTP_AUTH_PAT_STEP_CREATE:
        if (reply->type != REDIS_REPLY_INTEGER) {
            ngx_http_auth_pat_api_internal(r);
            break;
        }

        if (reply->integer == 0) {
            ngx_http_auth_pat_api_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                "validation_error",
                "too many active tokens: revoke one first");
            break;
        }

        api->issuing = 1;
        ngx_http_auth_pat_api_activate(r, api);
        break;

    case NGX_HTTP_AUTH_PAT_STEP_ACTIVATE:
        /* was the new token revoked before its record was written? */
        ngx_http_auth_pat_api_next(r, api, NGX_HTTP_AUTH_PAT_STEP_CONFIRM,
            ngx_http_auth_pat_store_get(r->pool, &api->user,
                                        &api->new_id_str,
                                        ngx_http_auth_pat_api_reply, api));
        break;

    case NGX_HTTP_AUTH_PAT_STEP_CONFIRM:
        rec = (reply->type == REDIS_REPLY_STRING)
              ? ngx_http_auth_pat_api_parse_record(reply->str, reply->len)
              : NULL;

        if (rec != NULL && ngx_http_auth_pat_json_ms(rec, "r") == 0) {
            ngx_http_auth_pat_api_send_token(r, NGX_HTTP_CREATED, rec, api,
                                             1);
            json_decref(rec);
            break;
        }

        if (rec != NULL) {
            json_decref(rec);
        }

        /* revoked meanwhile (or gone): the record just written goes too */
        api->dead = 1;
        ngx_http_auth_pat_api_deactivate(r, api);
        break;

    case NGX_HTTP_AUTH_PAT_STEP_GET:
        ngx_http_auth_pat_api_got(r, api, reply);
        break;

    case NGX_HTTP_AUTH_PAT_STEP_CLAIM:
        ngx_http_auth_pat_api_claimed(r, api, reply);
        break;

    case NGX_HTTP_AUTH_PAT_STEP_DEACTIVATE:
        ngx_http_auth_pat_api_deactivated(r, api);
        break;

    case NGX_HTTP_AUTH_PAT_STEP_INVALIDATE:
        ngx_http_auth_pat_api_invalidated(r, api);
        break;

    case NGX_HTTP_AUTH_PAT_STEP_REVOKE:
        if (reply->type == REDIS_REPLY_NIL) {
            ngx_http_auth_pat_api_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                        "no such token");
            break;
        }

        rec = (reply->type == REDIS_REPLY_STRING)
              ? ngx_http_auth_pat_api_parse_record(reply->str, reply->len)
              : NULL;
        if (rec == NULL) {
            ngx_http_auth_pat_api_internal(r);
            break;
        }

        /* marked: its validation record is deleted once more */
        api->answer = rec;
        api->marked = 1;
        ngx_http_auth_pat_api_deactivate(r, api);
        break;

    case NGX_HTTP_AUTH_PAT_STEP_ROTATE:
        if (reply->type != REDIS_REPLY_INTEGER || reply->integer != 1) {
            ngx_http_auth_pat_api_error(r, NGX_HTTP_CONFLICT, "conflict",
                "the token was revoked or rotated meanwhile");
            break;
        }

        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "auth_pat: token %V of user \"%V\" rotated to %V",
                      &api->id, &api->user, &api->new_id_str);

        /* the old token is marked: its record is deleted once more */
        api->issuing = 1;
        api->marked = 1;
        ngx_http_auth_pat_api_deactivate(r, api);
        break;
    }

done:

    ngx_http_run_posted_requests(c);
}


/* ------------------------------------------------------------ identity */


static void
ngx_http_auth_pat_api_dispatch(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    ngx_time_t  *tp;

    if (api->user.len > NGX_HTTP_AUTH_PAT_USER_MAX) {
        ngx_http_auth_pat_api_error(r, NGX_HTTP_BAD_REQUEST,
                                    "invalid_request",
                                    "the caller identity is too long");
        return;
    }

    tp = ngx_timeofday();
    api->now = (int64_t) tp->sec * 1000 + tp->msec;

    switch (api->route) {

    case NGX_HTTP_AUTH_PAT_ROUTE_COLLECTION:
        if (r->method == NGX_HTTP_POST) {
            ngx_http_auth_pat_api_create(r, api);

        } else {
            ngx_http_auth_pat_api_list(r, api);
        }

        return;

    default: /* item, rotate */
        ngx_http_auth_pat_api_get(r, api);
        return;
    }
}


static void
ngx_http_auth_pat_api_identified(ngx_http_request_t *r)
{
    ngx_http_auth_pat_ctx_t       *ctx;
    ngx_http_auth_pat_api_t       *api;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_auth_pat_module);
    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);
    api = ctx->api;

    switch (ctx->verdict) {

    case NGX_OK:
        ctx->identified = 1;
        api->user = ctx->identity.user_id;
        ngx_http_auth_pat_api_dispatch(r, api);
        return;

    case NGX_HTTP_AUTH_PAT_NO_CREDENTIALS:
        ngx_http_finalize_request(r,
            ngx_http_auth_pat_send_error(r, NGX_HTTP_UNAUTHORIZED,
                "unauthorized", "a bearer token is required",
                &plcf->challenge));
        return;

    case NGX_HTTP_AUTH_PAT_INVALID_TOKEN:
        ngx_http_finalize_request(r,
            ngx_http_auth_pat_send_error(r, NGX_HTTP_UNAUTHORIZED,
                "unauthorized", "the token is invalid, expired or revoked",
                &plcf->challenge_invalid_token));
        return;

    case NGX_HTTP_AUTH_PAT_INVALID_REQUEST:
        ngx_http_finalize_request(r,
            ngx_http_auth_pat_send_error(r, NGX_HTTP_BAD_REQUEST,
                "invalid_request", "malformed Authorization header",
                &plcf->challenge_invalid_request));
        return;

    default:
        ngx_http_auth_pat_api_unavailable(r);
        return;
    }
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
    ctx = ngx_http_get_module_ctx(r, ngx_http_auth_pat_module);
    api = ctx->api;

    if (plcf->api_user) {
        if (ngx_http_complex_value(r, plcf->api_user, &user) != NGX_OK) {
            ngx_http_auth_pat_api_internal(r);
            return;
        }

        if (user.len) {
            api->user = user;
            ngx_http_auth_pat_api_dispatch(r, api);
            return;
        }
    }

    if (ctx->identified) {
        api->user = ctx->identity.user_id;
        ngx_http_auth_pat_api_dispatch(r, api);
        return;
    }

    rc = ngx_http_auth_pat_check_token(r, ctx,
                                       ngx_http_auth_pat_api_identified);

    if (rc == NGX_OK) {
        ngx_http_auth_pat_api_identified(r);

    } else if (rc == NGX_ERROR) {
        ngx_http_auth_pat_api_internal(r);
    }

    /* NGX_AGAIN: ngx_http_auth_pat_api_identified() follows */
}


/* ---------------------------------------------------------------- body */


static ngx_int_t
ngx_http_auth_pat_api_read_body(ngx_http_request_t *r, ngx_str_t *body)
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

        p = ngx_cpymem(p, b->pos, b->last - b->pos);
    }

    return NGX_OK;
}


static void
ngx_http_auth_pat_api_body_handler(ngx_http_request_t *r)
{
    json_t                   *json;
    ngx_str_t                 body;
    json_error_t              err;
    ngx_http_auth_pat_ctx_t  *ctx;
    ngx_http_auth_pat_api_t  *api;

    ctx = ngx_http_get_module_ctx(r, ngx_http_auth_pat_module);
    api = ctx->api;

    if (ngx_http_auth_pat_api_read_body(r, &body) != NGX_OK) {
        ngx_http_auth_pat_api_internal(r);
        return;
    }

    if (body.len == 0) {
        if (api->route == NGX_HTTP_AUTH_PAT_ROUTE_ROTATE) {
            ngx_http_auth_pat_api_start(r);
            return;
        }

        ngx_http_auth_pat_api_error(r, NGX_HTTP_BAD_REQUEST,
                                    "invalid_request",
                                    "the body must be a JSON object");
        return;
    }

    /* jansson bounds the nesting depth (2048) and checks UTF-8 */
    json = json_loadb((char *) body.data, body.len, JSON_ALLOW_NUL, &err);

    if (json == NULL) {
        if (json_error_code(&err) == json_error_invalid_utf8) {
            ngx_http_auth_pat_api_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                        "validation_error",
                                        "the body is not valid UTF-8");
            return;
        }

        ngx_http_auth_pat_api_error(r, NGX_HTTP_BAD_REQUEST,
                                    "invalid_request", "malformed JSON");
        return;
    }

    api->body = json;

    if (!json_is_object(json)) {
        ngx_http_auth_pat_api_error(r, NGX_HTTP_BAD_REQUEST,
                                    "invalid_request",
                                    "the body must be a JSON object");
        return;
    }

    ngx_http_auth_pat_api_start(r);
}


/* application/json, optionally with "; charset=utf-8" */

static ngx_uint_t
ngx_http_auth_pat_api_is_json(ngx_http_request_t *r)
{
    u_char  *p, *last;

    if (r->headers_in.content_type == NULL) {
        return 0;
    }

    p = r->headers_in.content_type->value.data;
    last = p + r->headers_in.content_type->value.len;

    if (last - p < 16
        || ngx_strncasecmp(p, (u_char *) "application/json", 16) != 0)
    {
        return 0;
    }

    p += 16;

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (p == last) {
        return 1;
    }

    if (*p++ != ';') {
        return 0;
    }

    while (p < last && (*p == ' ' || *p == '\t')) {
        p++;
    }

    if (last - p >= 8 && ngx_strncasecmp(p, (u_char *) "charset=", 8) == 0) {
        p += 8;

        if (p < last && *p == '"') {
            p++;
            last -= (last[-1] == '"');
        }

        while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
            last--;
        }

        return (last - p == 5 && ngx_strncasecmp(p, (u_char *) "utf-8", 5)
                                 == 0)
               || (last - p == 4 && ngx_strncasecmp(p, (u_char *) "utf8", 4)
                                    == 0);
    }

    return 0;
}


/* ------------------------------------------------------------- handler */


static ngx_int_t
ngx_http_auth_pat_api_route(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    u_char                        *p, *last, *id;
    ngx_str_t                     *prefix;
    ngx_uint_t                     i;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);
    prefix = &plcf->api_prefix;

    if (r->uri.len < prefix->len
        || ngx_strncmp(r->uri.data, prefix->data, prefix->len) != 0)
    {
        return NGX_DECLINED;
    }

    p = r->uri.data + prefix->len;
    last = r->uri.data + r->uri.len;

    /* a prefix written with a trailing slash */
    if (prefix->len && prefix->data[prefix->len - 1] == '/') {
        p--;
    }

    if (p == last || (p + 1 == last && *p == '/')) {
        api->route = NGX_HTTP_AUTH_PAT_ROUTE_COLLECTION;
        return NGX_OK;
    }

    if (*p++ != '/') {
        return NGX_DECLINED;
    }

    id = p;

    while (p < last && *p != '/') {
        p++;
    }

    api->id.data = id;
    api->id.len = p - id;

    if (p == last || (p + 1 == last)) {
        api->route = NGX_HTTP_AUTH_PAT_ROUTE_ITEM;

    } else if ((last - p == 7 && ngx_strncmp(p, "/rotate", 7) == 0)
               || (last - p == 8 && ngx_strncmp(p, "/rotate/", 8) == 0))
    {
        api->route = NGX_HTTP_AUTH_PAT_ROUTE_ROTATE;

    } else {
        return NGX_DECLINED;
    }

    if (!ngx_http_auth_pat_uuid_valid((char *) api->id.data, api->id.len)) {
        return NGX_ERROR;
    }

    /* ids are stored lowercase */
    id = ngx_pnalloc(r->pool, api->id.len);
    if (id == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < api->id.len; i++) {
        id[i] = ngx_tolower(api->id.data[i]);
    }

    api->id.data = id;

    return NGX_OK;
}


ngx_int_t
ngx_http_auth_pat_api_handler(ngx_http_request_t *r)
{
    ngx_int_t                 rc;
    ngx_uint_t                allowed;
    ngx_table_elt_t          *h;
    ngx_http_cleanup_t       *cln;
    ngx_http_auth_pat_ctx_t  *ctx;
    ngx_http_auth_pat_api_t  *api;

    ctx = ngx_http_auth_pat_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    api = ngx_pcalloc(r->pool, sizeof(ngx_http_auth_pat_api_t));
    if (api == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    api->request = r;
    ctx->api = api;

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_auth_pat_api_cleanup;
    cln->data = api;

    rc = ngx_http_auth_pat_api_route(r, api);

    if (rc == NGX_DECLINED) {
        return ngx_http_auth_pat_send_error(r, NGX_HTTP_NOT_FOUND,
                                            "not_found", "no such route",
                                            NULL);
    }

    if (rc == NGX_ERROR) {
        return ngx_http_auth_pat_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid_request",
                                            "the token id is not a UUID",
                                            NULL);
    }

    switch (api->route) {

    case NGX_HTTP_AUTH_PAT_ROUTE_COLLECTION:
        allowed = NGX_HTTP_GET|NGX_HTTP_HEAD|NGX_HTTP_POST;
        break;

    case NGX_HTTP_AUTH_PAT_ROUTE_ITEM:
        allowed = NGX_HTTP_DELETE;
        break;

    default:
        allowed = NGX_HTTP_POST;
    }

    if (!(r->method & allowed)) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, "Allow");

        if (allowed & NGX_HTTP_GET) {
            ngx_str_set(&h->value, "GET, HEAD, POST");

        } else if (allowed & NGX_HTTP_DELETE) {
            ngx_str_set(&h->value, "DELETE");

        } else {
            ngx_str_set(&h->value, "POST");
        }

        return ngx_http_auth_pat_send_error(r, NGX_HTTP_NOT_ALLOWED,
                                            "method_not_allowed",
                                            "method not allowed here", NULL);
    }

    if (r->args.len > NGX_HTTP_AUTH_PAT_ARGS_LEN_MAX) {
        return ngx_http_auth_pat_send_error(r, NGX_HTTP_BAD_REQUEST,
                                            "invalid_request",
                                            "the query string is too long",
                                            NULL);
    }

    if (r->method == NGX_HTTP_POST) {

        if ((r->headers_in.content_length_n > 0 || r->headers_in.chunked)
            && !ngx_http_auth_pat_api_is_json(r))
        {
            return ngx_http_auth_pat_send_error(r,
                       NGX_HTTP_UNSUPPORTED_MEDIA_TYPE,
                       "unsupported_media_type",
                       "the body must be application/json", NULL);
        }

        r->request_body_in_single_buf = 1;

        rc = ngx_http_read_client_request_body(r,
                                          ngx_http_auth_pat_api_body_handler);

        if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
            return rc;
        }

        return NGX_DONE;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    r->main->count++;

    ngx_http_auth_pat_api_start(r);

    return NGX_DONE;
}


/* ------------------------------------------------------------- filters */


static void
ngx_http_auth_pat_api_status_error(ngx_uint_t status, const char **code,
    const char **message)
{
    switch (status) {

    case NGX_HTTP_BAD_REQUEST:
        *code = "invalid_request"; *message = "bad request";
        break;

    case NGX_HTTP_UNAUTHORIZED:
        *code = "unauthorized"; *message = "authentication is required";
        break;

    case NGX_HTTP_FORBIDDEN:
        *code = "forbidden"; *message = "access is denied";
        break;

    case NGX_HTTP_NOT_FOUND:
        *code = "not_found"; *message = "not found";
        break;

    case NGX_HTTP_REQUEST_ENTITY_TOO_LARGE:
        *code = "payload_too_large";
        *message = "the body is larger than client_max_body_size";
        break;

    case NGX_HTTP_SERVICE_UNAVAILABLE:
        *code = "unavailable"; *message = "service unavailable";
        break;

    default:
        *code = status < 500 ? "invalid_request" : "internal";
        *message = status < 500 ? "bad request" : "internal error";
    }
}


/*
 * Error pages that nginx itself produces get the module's JSON body
 * instead of HTML: the access check's refusals (401, 400, 503), and in
 * an API location every error (413 for a body over client_max_body_size,
 * 400 for a broken chunked body, 500, ...).  A page sent by error_page
 * comes from another location, or after an internal redirect, which
 * clears the ctx: it is left alone.
 */

static ngx_int_t
ngx_http_auth_pat_error_header_filter(ngx_http_request_t *r)
{
    const char                    *code, *message;
    ngx_buf_t                     *b;
    ngx_http_auth_pat_ctx_t       *ctx;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    if (r != r->main || r->headers_out.status < 400) {
        return ngx_http_next_header_filter(r);
    }

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_auth_pat_module);

    if (ctx && ctx->responded) {
        return ngx_http_next_header_filter(r);
    }

    if (ctx && ctx->refused == r->headers_out.status) {
        /* the check's own refusal (see ngx_http_auth_pat_let_in_handler) */
        code = ctx->refused_code;
        message = ctx->refused_message;

    } else if (plcf->api) {
        ngx_http_auth_pat_api_status_error(r->headers_out.status, &code,
                                           &message);

    } else {
        return ngx_http_next_header_filter(r);
    }

    if (ctx == NULL) {
        ctx = ngx_http_auth_pat_get_ctx(r);
        if (ctx == NULL) {
            return NGX_ERROR;
        }
    }

    b = ngx_http_auth_pat_json_buf(r->pool,
                                   ngx_http_auth_pat_error_json(code, message));
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

    ctx = ngx_http_get_module_ctx(r, ngx_http_auth_pat_module);

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
ngx_http_auth_pat_api_init_filters(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_auth_pat_error_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_auth_pat_error_body_filter;

    return NGX_OK;
}
