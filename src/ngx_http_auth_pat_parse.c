
/*
 * The pure parsers and validators (see ngx_http_auth_pat_parse.h).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "pat_token.h"
#include "ngx_http_auth_pat_parse.h"


#ifndef NGX_HTTP_UNPROCESSABLE_ENTITY
#define NGX_HTTP_UNPROCESSABLE_ENTITY  422
#endif


static ngx_int_t ngx_http_auth_pat_form_decode(u_char *p, u_char *last,
    u_char *buf, ngx_str_t *value);


/* RFC 6749 3.3, scope-token: %x21 / %x23-5B / %x5D-7E */

static uint32_t  ngx_http_auth_pat_scope_chars[] = {
    0x00000000, /* 0000 0000 0000 0000  0000 0000 0000 0000 */

                /* ?>=< ;:98 7654 3210  /.-, +*)( '&%$ #"!  */
    0xfffffffa, /* 1111 1111 1111 1111  1111 1111 1111 1010 */

                /* _^]\ [ZYX WVUT SRQP  ONML KJIH GFED CBA@ */
    0xefffffff, /* 1110 1111 1111 1111  1111 1111 1111 1111 */

                /*  ~}| {zyx wvut srqp  onml kjih gfed cba` */
    0x7fffffff, /* 0111 1111 1111 1111  1111 1111 1111 1111 */

    0x00000000, 0x00000000, 0x00000000, 0x00000000
};

#define ngx_http_auth_pat_scope_char(c)                                       \
    (ngx_http_auth_pat_scope_chars[(c) >> 5] & (1U << ((c) & 0x1f)))


/*
 * The scheme is case-insensitive (RFC 7235).  The token is a b64token
 * (RFC 6750): a Bearer scheme with anything else is a malformed request.
 */

ngx_int_t
ngx_http_auth_pat_parse_bearer(u_char *p, size_t len, ngx_str_t *token)
{
    u_char  *last, *start;

    last = p + len;

    if (len < sizeof("Bearer") - 1
        || ngx_strncasecmp(p, (u_char *) "Bearer", sizeof("Bearer") - 1)
           != 0)
    {
        return NGX_DECLINED;
    }

    p += sizeof("Bearer") - 1;

    if (p < last && *p != ' ') {
        /* "Bearerish ...": another scheme */
        return NGX_DECLINED;
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

    if (p == start) {
        /* no token, or padding alone ("Bearer ==") */
        return NGX_ERROR;
    }

    while (p < last && *p == '=') {
        p++;
    }

    if (p != last) {
        return NGX_ERROR;
    }

    token->data = start;
    token->len = p - start;

    return NGX_OK;
}


ngx_int_t
ngx_http_auth_pat_parse_route(ngx_str_t *uri, ngx_str_t *prefix,
    ngx_http_auth_pat_route_e *route, ngx_str_t *id)
{
    u_char  *p, *last, *start;

    ngx_str_null(id);

    if (uri->len < prefix->len
        || ngx_strncmp(uri->data, prefix->data, prefix->len) != 0)
    {
        return NGX_DECLINED;
    }

    p = uri->data + prefix->len;
    last = uri->data + uri->len;

    /* a prefix written with a trailing slash */
    if (prefix->len && prefix->data[prefix->len - 1] == '/') {
        p--;
    }

    if (p == last || (p + 1 == last && *p == '/')) {
        *route = NGX_HTTP_AUTH_PAT_ROUTE_COLLECTION;
        return NGX_OK;
    }

    if (*p++ != '/') {
        return NGX_DECLINED;
    }

    start = p;

    while (p < last && *p != '/') {
        p++;
    }

    if (p == last || p + 1 == last) {
        *route = NGX_HTTP_AUTH_PAT_ROUTE_ITEM;

    } else if ((last - p == 7 && ngx_strncmp(p, "/rotate", 7) == 0)
               || (last - p == 8 && ngx_strncmp(p, "/rotate/", 8) == 0))
    {
        *route = NGX_HTTP_AUTH_PAT_ROUTE_ROTATE;

    } else {
        return NGX_DECLINED;
    }

    if (p - start == 6 && ngx_strncmp(start, "config", 6) == 0) {
        if (*route != NGX_HTTP_AUTH_PAT_ROUTE_ITEM) {
            return NGX_DECLINED;
        }

        *route = NGX_HTTP_AUTH_PAT_ROUTE_CONFIG;
        return NGX_OK;
    }

    if (p - start == 12 && ngx_strncmp(start, "openapi.json", 12) == 0) {
        if (*route != NGX_HTTP_AUTH_PAT_ROUTE_ITEM) {
            return NGX_DECLINED;
        }

        *route = NGX_HTTP_AUTH_PAT_ROUTE_OPENAPI;
        return NGX_OK;
    }

    if (p - start == 4 && ngx_strncmp(start, "self", 4) == 0) {
        *route = (*route == NGX_HTTP_AUTH_PAT_ROUTE_ITEM)
                 ? NGX_HTTP_AUTH_PAT_ROUTE_SELF
                 : NGX_HTTP_AUTH_PAT_ROUTE_SELF_ROTATE;
        return NGX_OK;
    }

    if (!ngx_http_auth_pat_uuid_valid((char *) start, p - start)) {
        return NGX_ABORT;
    }

    id->data = start;
    id->len = p - start;

    return NGX_OK;
}


/* "host[:port]" or "[v6][:port]": the host and the port, dflt if none */

static ngx_int_t
ngx_http_auth_pat_parse_host_port(u_char *p, u_char *last, ngx_str_t *host,
    ngx_int_t dflt, ngx_int_t *port)
{
    u_char  *colon;

    if (p < last && *p == '[') {
        colon = ngx_strlchr(p, last, ']');
        if (colon == NULL) {
            return NGX_ERROR;
        }

        colon++;

        if (colon < last && *colon != ':') {
            return NGX_ERROR;
        }

    } else {
        colon = ngx_strlchr(p, last, ':');
        if (colon == NULL) {
            colon = last;
        }
    }

    host->data = p;
    host->len = colon - p;

    if (host->len == 0) {
        return NGX_ERROR;
    }

    if (colon == last) {
        *port = dflt;
        return NGX_OK;
    }

    *port = ngx_atoi(colon + 1, last - colon - 1);

    return (*port == NGX_ERROR || *port > 65535) ? NGX_ERROR : NGX_OK;
}


ngx_uint_t
ngx_http_auth_pat_parse_same_origin(ngx_str_t *origin, ngx_str_t *host,
    ngx_uint_t https)
{
    u_char     *p, *last;
    ngx_int_t   oport, hport;
    ngx_str_t   ohost, hhost;

    p = origin->data;
    last = p + origin->len;

    if (origin->len > 7 && ngx_strncasecmp(p, (u_char *) "http://", 7) == 0) {
        oport = 80;
        p += 7;

    } else if (origin->len > 8
               && ngx_strncasecmp(p, (u_char *) "https://", 8) == 0)
    {
        oport = 443;
        p += 8;

    } else {
        /* "null", another scheme */
        return 0;
    }

    if (ngx_strlchr(p, last, '/') != NULL
        || ngx_http_auth_pat_parse_host_port(p, last, &ohost, oport, &oport)
           != NGX_OK
        || ngx_http_auth_pat_parse_host_port(host->data,
                                             host->data + host->len, &hhost,
                                             https ? 443 : 80, &hport)
           != NGX_OK)
    {
        return 0;
    }

    return oport == hport
           && ohost.len == hhost.len
           && ngx_strncasecmp(ohost.data, hhost.data, ohost.len) == 0;
}


ngx_uint_t
ngx_http_auth_pat_parse_media_type(u_char *p, size_t len, const char *type)
{
    u_char  *last;
    size_t   n;

    last = p + len;
    n = ngx_strlen(type);

    if (len < n || ngx_strncasecmp(p, (u_char *) type, n) != 0) {
        return 0;
    }

    p += n;

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

    if (last - p < 8 || ngx_strncasecmp(p, (u_char *) "charset=", 8) != 0) {
        return 0;
    }

    p += 8;

    if (p < last && *p == '"') {
        p++;
        last -= (last[-1] == '"');
    }

    while (last > p && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    return (last - p == 5 && ngx_strncasecmp(p, (u_char *) "utf-8", 5) == 0)
           || (last - p == 4 && ngx_strncasecmp(p, (u_char *) "utf8", 4) == 0);
}


/*
 * ASCII space, and the Unicode spaces that are not control characters:
 * U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000,
 * U+FEFF
 */

static ngx_uint_t
ngx_http_auth_pat_parse_space(u_char *p, u_char *last, size_t *n)
{
    if (*p == ' ') {
        *n = 1;
        return 1;
    }

    if (last - p >= 2 && p[0] == 0xc2 && p[1] == 0xa0) {
        *n = 2;
        return 1;
    }

    if (last - p < 3) {
        return 0;
    }

    if ((p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80)
        || (p[0] == 0xe2 && p[1] == 0x80
            && (p[2] <= 0x8a || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf))
        || (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f)
        || (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80)
        || (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf))
    {
        *n = 3;
        return 1;
    }

    return 0;
}


static ngx_uint_t
ngx_http_auth_pat_parse_space_before(u_char *start, u_char *p, size_t *n)
{
    size_t  k;

    for (k = 1; k <= 3 && p - k >= start; k++) {
        if (ngx_http_auth_pat_parse_space(p - k, p, n) && *n == k) {
            return 1;
        }
    }

    return 0;
}


/* ------------------------------------------------------------- scopes */


static int
ngx_http_auth_pat_scope_cmp(const void *a, const void *b)
{
    return ngx_strcmp(*(const char **) a, *(const char **) b);
}


ngx_uint_t
ngx_http_auth_pat_scope_valid(const char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_AUTH_PAT_SCOPE_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!ngx_http_auth_pat_scope_char((u_char) s[i])) {
            return 0;
        }
    }

    return 1;
}


const char *
ngx_http_auth_pat_parse_scopes(json_t *v, json_t **scopes,
    ngx_uint_t *status, const char **bad)
{
    size_t       i, n, k;
    json_t      *e, *out;
    const char  *list[NGX_HTTP_AUTH_PAT_SCOPES_MAX + 1];

    *status = NGX_HTTP_UNPROCESSABLE_ENTITY;
    *bad = NULL;
    *scopes = NULL;

    if (v == NULL) {
        *scopes = json_array();

        if (*scopes == NULL) {
            *status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return "out of memory";
        }

        return NULL;
    }

    if (!json_is_array(v)) {
        *status = NGX_HTTP_BAD_REQUEST;
        return "scopes must be an array of strings";
    }

    n = 0;

    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) {
            *status = NGX_HTTP_BAD_REQUEST;
            return "scopes must be an array of strings";
        }
    }

    json_array_foreach(v, i, e) {
        if (!ngx_http_auth_pat_scope_valid(json_string_value(e),
                                           json_string_length(e)))
        {
            *bad = json_string_value(e);
            return "a scope must be 1 to 64 printable ASCII characters, "
                   "without space, '\"' and '\\'";
        }

        for (k = 0; k < n; k++) {
            if (ngx_strcmp(list[k], json_string_value(e)) == 0) {
                break;
            }
        }

        if (k < n) {
            continue;   /* a duplicate */
        }

        if (n == NGX_HTTP_AUTH_PAT_SCOPES_MAX) {
            *bad = json_string_value(e);
            return "a token holds at most 32 scopes";
        }

        list[n++] = json_string_value(e);
    }

    qsort(list, n, sizeof(const char *), ngx_http_auth_pat_scope_cmp);

    out = json_array();
    if (out == NULL) {
        *status = NGX_HTTP_INTERNAL_SERVER_ERROR;
        return "out of memory";
    }

    for (i = 0; i < n; i++) {
        if (json_array_append_new(out, json_string(list[i])) != 0) {
            json_decref(out);
            *status = NGX_HTTP_INTERNAL_SERVER_ERROR;
            return "out of memory";
        }
    }

    *scopes = out;

    return NULL;
}


ngx_uint_t
ngx_http_auth_pat_scope_held(json_t *scope, json_t *set)
{
    size_t   i;
    json_t  *e;

    json_array_foreach(set, i, e) {
        if (json_equal(scope, e)) {
            return 1;
        }
    }

    return 0;
}


/* 1 to 200 characters after trimming, valid UTF-8, no control chars */

const char *
ngx_http_auth_pat_parse_name(json_t *v, ngx_str_t *name, ngx_uint_t *status)
{
    u_char  *p, *last;
    size_t   n, nchars;

    *status = NGX_HTTP_UNPROCESSABLE_ENTITY;

    if (v == NULL) {
        return "name is required";
    }

    if (!json_is_string(v)) {
        *status = NGX_HTTP_BAD_REQUEST;
        return "name must be a string";
    }

    p = (u_char *) json_string_value(v);
    last = p + json_string_length(v);

    while (p < last && ngx_http_auth_pat_parse_space(p, last, &n)) {
        p += n;
    }

    while (last > p && ngx_http_auth_pat_parse_space_before(p, last, &n)) {
        last -= n;
    }

    if (ngx_http_auth_pat_utf8_check((char *) p, last - p, &nchars, 1) != 0) {
        return "name must be valid UTF-8 without control characters";
    }

    if (nchars == 0) {
        return "name must not be empty";
    }

    if (nchars > NGX_HTTP_AUTH_PAT_NAME_MAX) {
        return "name must be at most 200 characters";
    }

    name->data = p;
    name->len = last - p;

    return NULL;
}


/* RFC 3339 with any offset, or null; in the future, within max_lifetime */

const char *
ngx_http_auth_pat_parse_expires(json_t *v, int64_t now, int64_t dflt,
    int64_t max_lifetime, int64_t *ms, ngx_uint_t *status)
{
    int64_t  t;

    *status = NGX_HTTP_UNPROCESSABLE_ENTITY;

    if (v == NULL) {
        t = dflt;

    } else if (json_is_null(v)) {
        t = 0;

    } else if (json_is_string(v)) {
        if (ngx_http_auth_pat_rfc3339_parse(json_string_value(v),
                                            json_string_length(v), &t)
            != 0)
        {
            return "expiresAt must be an RFC 3339 date-time, "
                   "e.g. 2026-12-31T23:59:59Z";
        }

        if (t <= now) {
            return "expiresAt must be in the future";
        }

        if (t >= NGX_HTTP_AUTH_PAT_EXPIRES_MAX) {
            return "expiresAt must be before 5000-01-01T00:00:00Z";
        }

    } else {
        *status = NGX_HTTP_BAD_REQUEST;
        return "expiresAt must be a string or null";
    }

    if (max_lifetime > 0) {
        if (t == 0) {
            return "expiresAt cannot be null: tokens here expire within "
                   "auth_pat_max_lifetime";
        }

        if (t > now + max_lifetime) {
            return "expiresAt is beyond the longest lifetime allowed";
        }
    }

    *ms = t;

    return NULL;
}


/* the first "name=value" of args, the name matched case-insensitively */

static ngx_int_t
ngx_http_auth_pat_parse_arg(ngx_str_t *args, const char *name,
    ngx_str_t *value)
{
    u_char  *p, *last, *end;
    size_t   len;

    if (args->len == 0) {
        return NGX_DECLINED;
    }

    len = ngx_strlen(name);
    p = args->data;
    last = p + args->len;

    while (p < last) {
        end = ngx_strlchr(p, last, '&');
        if (end == NULL) {
            end = last;
        }

        if ((size_t) (end - p) > len && p[len] == '='
            && ngx_strncasecmp(p, (u_char *) name, len) == 0)
        {
            value->data = p + len + 1;
            value->len = end - value->data;
            return NGX_OK;
        }

        p = end + 1;
    }

    return NGX_DECLINED;
}


/* snake_case, else the camelCase alias */

static ngx_int_t
ngx_http_auth_pat_parse_alias(ngx_str_t *args, const char *snake,
    const char *camel, ngx_str_t *value)
{
    if (ngx_http_auth_pat_parse_arg(args, snake, value) == NGX_OK) {
        return NGX_OK;
    }

    return ngx_http_auth_pat_parse_arg(args, camel, value);
}


static ngx_uint_t
ngx_http_auth_pat_parse_is(ngx_str_t *v, const char *s)
{
    size_t  len;

    len = ngx_strlen(s);

    return v->len == len && ngx_strncmp(v->data, s, len) == 0;
}


/* form encoding: '+' is a space; '%' takes two hex digits */

static const char *
ngx_http_auth_pat_parse_search(ngx_str_t *v, u_char *buf, ngx_str_t *search)
{
    u_char  *dst, *src;
    size_t   nchars, i;

    for (i = 0; i < v->len; i++) {
        if (v->data[i] == '%'
            && (i + 2 >= v->len
                || ngx_hextoi(&v->data[i + 1], 2) == NGX_ERROR))
        {
            return "search_term has a bad percent escape";
        }

        buf[i] = (v->data[i] == '+') ? ' ' : v->data[i];
    }

    src = buf;
    dst = buf;
    ngx_unescape_uri(&dst, &src, v->len, 0);

    search->data = buf;
    search->len = dst - buf;

    if (ngx_http_auth_pat_utf8_check((char *) search->data, search->len,
                                     &nchars, 1)
        != 0)
    {
        return "search_term must be valid UTF-8";
    }

    if (nchars > NGX_HTTP_AUTH_PAT_SEARCH_MAX) {
        return "search_term must be at most 200 characters";
    }

    for (i = 0; i < search->len; i++) {
        search->data[i] = ngx_tolower(search->data[i]);
    }

    return NULL;
}


const char *
ngx_http_auth_pat_parse_query(ngx_str_t *args, u_char *buf,
    ngx_http_auth_pat_list_query_t *q)
{
    ngx_int_t    n;
    ngx_str_t    v;
    const char  *err;

    q->offset = 0;
    q->limit = NGX_HTTP_AUTH_PAT_PAGE_SIZE;
    q->status = NGX_HTTP_AUTH_PAT_ANY;
    ngx_str_null(&q->search);
    ngx_str_null(&q->scope);
    q->sort_by = NGX_HTTP_AUTH_PAT_SORT_CREATED;
    q->desc = 1;

    if (ngx_http_auth_pat_parse_alias(args, "page_size", "pageSize", &v)
        == NGX_OK)
    {
        n = ngx_atoi(v.data, v.len);
        if (n < 1 || n > NGX_HTTP_AUTH_PAT_PAGE_SIZE_MAX) {
            return "page_size must be an integer from 1 to 100";
        }

        q->limit = n;
    }

    if (ngx_http_auth_pat_parse_alias(args, "page_index", "pageIndex", &v)
        == NGX_OK)
    {
        n = ngx_atoi(v.data, v.len);
        if (n < 0 || n > NGX_HTTP_AUTH_PAT_PAGE_INDEX_MAX) {
            return "page_index must be a non-negative integer";
        }

        q->offset = n * q->limit;
    }

    if (ngx_http_auth_pat_parse_arg(args, "status", &v) == NGX_OK) {
        if (ngx_http_auth_pat_parse_is(&v, "active")) {
            q->status = NGX_HTTP_AUTH_PAT_ACTIVE;

        } else if (ngx_http_auth_pat_parse_is(&v, "expired")) {
            q->status = NGX_HTTP_AUTH_PAT_EXPIRED;

        } else if (ngx_http_auth_pat_parse_is(&v, "revoked")) {
            q->status = NGX_HTTP_AUTH_PAT_REVOKED;

        } else {
            return "status must be active, expired or revoked";
        }
    }

    if (ngx_http_auth_pat_parse_alias(args, "search_term", "searchTerm", &v)
        == NGX_OK)
    {
        /* each value is decoded where it lies in args: no overlap */
        err = ngx_http_auth_pat_parse_search(&v, buf + (v.data - args->data),
                                             &q->search);
        if (err) {
            return err;
        }
    }

    if (ngx_http_auth_pat_parse_arg(args, "scope", &v) == NGX_OK) {
        if (ngx_http_auth_pat_form_decode(v.data, v.data + v.len,
                                          buf + (v.data - args->data),
                                          &q->scope)
            != NGX_OK
            || !ngx_http_auth_pat_scope_valid((char *) q->scope.data,
                                              q->scope.len))
        {
            return "scope must be one scope: 1 to 64 printable ASCII "
                   "characters, without space, '\"' and '\\'";
        }
    }

    if (ngx_http_auth_pat_parse_alias(args, "sort_by", "sortBy", &v)
        == NGX_OK)
    {
        if (ngx_http_auth_pat_parse_is(&v, "createdAt")) {
            q->sort_by = NGX_HTTP_AUTH_PAT_SORT_CREATED;

        } else if (ngx_http_auth_pat_parse_is(&v, "name")) {
            q->sort_by = NGX_HTTP_AUTH_PAT_SORT_NAME;

        } else if (ngx_http_auth_pat_parse_is(&v, "expiresAt")) {
            q->sort_by = NGX_HTTP_AUTH_PAT_SORT_EXPIRES;

        } else if (ngx_http_auth_pat_parse_is(&v, "lastUsedAt")) {
            q->sort_by = NGX_HTTP_AUTH_PAT_SORT_LAST_USED;

        } else {
            return "sort_by must be createdAt, name, expiresAt or lastUsedAt";
        }
    }

    if (ngx_http_auth_pat_parse_alias(args, "sort_direction",
                                      "sortDirection", &v)
        == NGX_OK)
    {
        if (ngx_http_auth_pat_parse_is(&v, "asc")) {
            q->desc = 0;

        } else if (ngx_http_auth_pat_parse_is(&v, "desc")) {
            q->desc = 1;

        } else {
            return "sort_direction must be asc or desc";
        }
    }

    return NULL;
}


/* a string field: absent or null when optional; max bytes, 0: any */

static ngx_uint_t
ngx_http_auth_pat_record_string(json_t *rec, const char *key,
    ngx_uint_t optional, size_t max, ngx_uint_t uuid)
{
    json_t  *v;

    v = json_object_get(rec, key);

    if (v == NULL || json_is_null(v)) {
        return optional;
    }

    if (!json_is_string(v)) {
        return 0;
    }

    if (uuid) {
        return ngx_http_auth_pat_uuid_valid(json_string_value(v),
                                            json_string_length(v));
    }

    return max == 0 || json_string_length(v) <= max;
}


/* a time field: absent or null when optional, else 1 to EXPIRES_MAX ms */

static ngx_uint_t
ngx_http_auth_pat_record_ms(json_t *rec, const char *key,
    ngx_uint_t optional)
{
    double   d;
    json_t  *v;

    v = json_object_get(rec, key);

    if (v == NULL || json_is_null(v)) {
        return optional;
    }

    if (json_is_integer(v)) {
        return json_integer_value(v) > 0
               && json_integer_value(v) <= NGX_HTTP_AUTH_PAT_EXPIRES_MAX;
    }

    if (json_is_real(v)) {
        /* cjson writes what it re-encodes as %.14g */
        d = json_real_value(v);
        return d >= 1 && d <= (double) NGX_HTTP_AUTH_PAT_EXPIRES_MAX;
    }

    return 0;
}


json_t *
ngx_http_auth_pat_parse_record(u_char *p, size_t len)
{
    size_t       i, nchars;
    json_t      *rec, *v, *e;
    const char  *s;

    rec = json_loadb((char *) p, len, 0, NULL);

    if (rec == NULL) {
        return NULL;
    }

    if (!json_is_object(rec)
        || !ngx_http_auth_pat_record_string(rec, "id", 0, 0, 1)
        || !ngx_http_auth_pat_record_string(rec, "name", 0, 0, 0)
        || !ngx_http_auth_pat_record_string(rec, "prefix", 0, 64, 0)
        || !ngx_http_auth_pat_record_string(rec, "d", 1, 0, 0)
        || !ngx_http_auth_pat_record_string(rec, "rf", 1, 0, 1)
        || !ngx_http_auth_pat_record_string(rec, "rt", 1, 0, 1)
        || !ngx_http_auth_pat_record_ms(rec, "c", 0)
        || !ngx_http_auth_pat_record_ms(rec, "e", 1)
        || !ngx_http_auth_pat_record_ms(rec, "l", 1)
        || !ngx_http_auth_pat_record_ms(rec, "r", 1)
        || !ngx_http_auth_pat_record_ms(rec, "k", 1))
    {
        goto invalid;
    }

    v = json_object_get(rec, "name");
    s = json_string_value(v);

    if (ngx_http_auth_pat_utf8_check(s, json_string_length(v), &nchars, 1)
        != 0
        || nchars == 0 || nchars > NGX_HTTP_AUTH_PAT_NAME_MAX)
    {
        goto invalid;
    }

    /* scopes: absent in earlier releases, {} when cjson wrote none */

    v = json_object_get(rec, "s");

    if (json_is_array(v)) {
        if (json_array_size(v) > NGX_HTTP_AUTH_PAT_SCOPES_MAX) {
            goto invalid;
        }

        json_array_foreach(v, i, e) {
            if (!json_is_string(e)
                || !ngx_http_auth_pat_scope_valid(json_string_value(e),
                                                  json_string_length(e)))
            {
                goto invalid;
            }
        }

    } else if (v != NULL && !(json_is_object(v) && json_object_size(v) == 0))
    {
        goto invalid;
    }

    return rec;

invalid:

    json_decref(rec);
    return NULL;
}


ngx_int_t
ngx_http_auth_pat_parse_index_entry(u_char *p, size_t len, int64_t t[4],
    ngx_str_t *name, ngx_str_t *scopes)
{
    u_char      *last, *start, *sep;
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
    ngx_str_null(scopes);

    /* a name holds no control character: US ends it, and scopes follow */
    sep = ngx_strlchr(p, last, NGX_HTTP_AUTH_PAT_INDEX_SEP);

    if (sep) {
        name->len = sep - p;
        scopes->data = sep + 1;
        scopes->len = last - sep - 1;
    }

    return NGX_OK;
}


ngx_uint_t
ngx_http_auth_pat_scope_next(ngx_str_t *list, size_t *pos, ngx_str_t *scope)
{
    u_char  *sp;

    if (*pos >= list->len) {
        return 0;
    }

    /* memchr(): every check walks these lists */
    scope->data = list->data + *pos;
    sp = memchr(scope->data, ' ', list->len - *pos);
    scope->len = sp ? (size_t) (sp - scope->data) : list->len - *pos;
    *pos += scope->len + 1;

    return 1;
}


/*
 * A list of scopes, each well-formed, separated by single spaces: one
 * pass, as a check reads it from every validation record.
 */

static ngx_uint_t
ngx_http_auth_pat_scope_list_valid(ngx_str_t *list)
{
    u_char  c;
    size_t  i, run;

    run = 0;

    for (i = 0; i < list->len; i++) {
        c = list->data[i];

        if (c == ' ') {
            if (run == 0) {
                return 0;   /* a leading or a double space */
            }

            run = 0;
            continue;
        }

        if (!ngx_http_auth_pat_scope_char(c)
            || ++run > NGX_HTTP_AUTH_PAT_SCOPE_MAX)
        {
            return 0;
        }
    }

    return list->len == 0 || run != 0;   /* no trailing space */
}


ngx_uint_t
ngx_http_auth_pat_scope_in(ngx_str_t *list, u_char *scope, size_t len)
{
    size_t     pos;
    ngx_str_t  s;

    pos = 0;

    while (ngx_http_auth_pat_scope_next(list, &pos, &s)) {
        if (s.len == len && ngx_memcmp(s.data, scope, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* an instant in ms, as the scripts write it: 1 to EXPIRES_MAX */

static ngx_int_t
ngx_http_auth_pat_parse_ms(ngx_str_t *s, int64_t *ms)
{
    off_t  n;

    if (s->len > NGX_INT64_LEN) {
        return NGX_ERROR;
    }

    n = ngx_atoof(s->data, s->len);

    if (n <= 0 || n > NGX_HTTP_AUTH_PAT_EXPIRES_MAX) {
        return NGX_ERROR;
    }

    *ms = n;

    return NGX_OK;
}


ngx_int_t
ngx_http_auth_pat_parse_validation(ngx_str_t f[6], int64_t now,
    int64_t *expires, int64_t *created)
{
    size_t  nchars;

    *expires = 0;
    *created = 0;

    if (f[0].data == NULL && f[1].data == NULL) {
        /* no such record */
        return NGX_DECLINED;
    }

    /* every field is checked before anything uses it */

    if (f[0].data == NULL || f[1].data == NULL) {
        return NGX_ERROR;
    }

    if (f[0].len == 0 || f[0].len > NGX_HTTP_AUTH_PAT_USER_MAX
        || !ngx_http_auth_pat_uuid_valid((char *) f[1].data, f[1].len))
    {
        return NGX_ERROR;
    }

    if (f[2].data
        && (ngx_http_auth_pat_utf8_check((char *) f[2].data, f[2].len,
                                         &nchars, 1)
            != 0
            || nchars > NGX_HTTP_AUTH_PAT_NAME_MAX))
    {
        return NGX_ERROR;
    }

    /* a record of an earlier release has neither scopes nor createdAt */

    if (f[4].data && !ngx_http_auth_pat_scope_list_valid(&f[4])) {
        return NGX_ERROR;
    }

    if (f[5].data && f[5].len
        && ngx_http_auth_pat_parse_ms(&f[5], created) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (f[3].data == NULL || f[3].len == 0) {
        return NGX_OK;
    }

    if (ngx_http_auth_pat_parse_ms(&f[3], expires) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * the record may outlive its PEXPIREAT by Redis' lazy expiry
     * granularity; the clock decides
     */
    return (*expires <= now) ? NGX_DECLINED : NGX_OK;
}


/* the value of one %XX-encoded, '+'-for-space form field, into buf */

static ngx_int_t
ngx_http_auth_pat_form_decode(u_char *p, u_char *last, u_char *buf,
    ngx_str_t *value)
{
    u_char     *d;
    ngx_int_t   hi, lo;

    d = buf;

    while (p < last) {

        if (*p == '+') {
            *d++ = ' ';
            p++;
            continue;
        }

        if (*p != '%') {
            *d++ = *p++;
            continue;
        }

        if (last - p < 3) {
            return NGX_ERROR;
        }

        hi = ngx_hextoi(p + 1, 1);
        lo = ngx_hextoi(p + 2, 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            return NGX_ERROR;
        }

        *d++ = (u_char) ((hi << 4) | lo);
        p += 3;
    }

    value->data = buf;
    value->len = d - buf;

    return NGX_OK;
}


ngx_int_t
ngx_http_auth_pat_parse_form_field(u_char *p, size_t len, const char *name,
    u_char *buf, ngx_str_t *value)
{
    u_char     *last, *start, *eq;
    size_t      n;
    ngx_uint_t  found;

    if (len == 0) {
        return NGX_DECLINED;
    }

    last = p + len;
    n = ngx_strlen(name);
    found = 0;

    while (p < last) {
        start = p;

        while (p < last && *p != '&') {
            p++;
        }

        eq = ngx_strlchr(start, p, '=');

        if (eq && (size_t) (eq - start) == n
            && ngx_strncmp(start, name, n) == 0)
        {
            if (found++) {
                return NGX_ERROR;   /* RFC 6749 3.1: at most once */
            }

            if (ngx_http_auth_pat_form_decode(eq + 1, p, buf, value)
                != NGX_OK)
            {
                return NGX_ERROR;
            }
        }

        if (p < last) {
            p++;    /* the '&' */
        }
    }

    return found ? NGX_OK : NGX_DECLINED;
}
