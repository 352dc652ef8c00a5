
/*
 * The pure parsers and validators: the Authorization header, media
 * types, the fields of a create or rotate body, an introspection form,
 * the list query, and the records read back from Redis.  Bytes or
 * jansson values in, no request: each can be tested and fuzzed alone.
 * Functions that return a message return NULL when the input is valid,
 * else the message for the client, with the HTTP status in *status.
 */


#ifndef _NGX_HTTP_AUTH_PAT_PARSE_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_PARSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <jansson.h>


#define NGX_HTTP_AUTH_PAT_USER_MAX        256    /* bytes of a caller id */
#define NGX_HTTP_AUTH_PAT_NAME_MAX        200
#define NGX_HTTP_AUTH_PAT_SCOPE_MAX       64     /* characters of a scope */
#define NGX_HTTP_AUTH_PAT_SCOPES_MAX      32     /* scopes of a token */
#define NGX_HTTP_AUTH_PAT_SEARCH_MAX      200
#define NGX_HTTP_AUTH_PAT_PAGE_SIZE       25
#define NGX_HTTP_AUTH_PAT_PAGE_SIZE_MAX   100
#define NGX_HTTP_AUTH_PAT_PAGE_INDEX_MAX  1000000
#define NGX_HTTP_AUTH_PAT_INDEX_SEP       '\x1f'  /* name, then scopes */

/*
 * 5000-01-01T00:00:00Z in ms.  The Lua scripts re-encode records with
 * Redis' cjson, which keeps 14 significant digits: from about year 5138
 * on, an instant in ms would come back rounded.
 */
#define NGX_HTTP_AUTH_PAT_EXPIRES_MAX     95617584000000LL


typedef enum {
    NGX_HTTP_AUTH_PAT_ROUTE_COLLECTION = 0,
    NGX_HTTP_AUTH_PAT_ROUTE_ITEM,          /* /{id} */
    NGX_HTTP_AUTH_PAT_ROUTE_ROTATE,        /* /{id}/rotate */
    NGX_HTTP_AUTH_PAT_ROUTE_SELF,          /* /self: the caller's token */
    NGX_HTTP_AUTH_PAT_ROUTE_SELF_ROTATE,   /* /self/rotate */
    NGX_HTTP_AUTH_PAT_ROUTE_CONFIG,        /* /config */
    NGX_HTTP_AUTH_PAT_ROUTE_OPENAPI        /* /openapi.json: the document */
} ngx_http_auth_pat_route_e;


typedef enum {
    NGX_HTTP_AUTH_PAT_ANY = 0,
    NGX_HTTP_AUTH_PAT_ACTIVE,
    NGX_HTTP_AUTH_PAT_EXPIRED,
    NGX_HTTP_AUTH_PAT_REVOKED
} ngx_http_auth_pat_status_e;


typedef enum {
    NGX_HTTP_AUTH_PAT_SORT_CREATED = 0,
    NGX_HTTP_AUTH_PAT_SORT_NAME,
    NGX_HTTP_AUTH_PAT_SORT_EXPIRES,
    NGX_HTTP_AUTH_PAT_SORT_LAST_USED
} ngx_http_auth_pat_sort_e;


typedef struct {
    ngx_http_auth_pat_status_e     status;
    ngx_str_t                      search;     /* lowercased, or empty */
    ngx_str_t                      scope;      /* held, or empty: any */
    ngx_http_auth_pat_sort_e       sort_by;
    ngx_uint_t                     desc;
    ngx_uint_t                     offset;
    ngx_uint_t                     limit;
} ngx_http_auth_pat_list_query_t;


/*
 * "Bearer b64token": NGX_OK with the token; NGX_DECLINED for another
 * scheme; NGX_ERROR for a Bearer scheme without a valid b64token.
 */
ngx_int_t ngx_http_auth_pat_parse_bearer(u_char *p, size_t len,
    ngx_str_t *token);

/*
 * The API route of uri below prefix: NGX_OK with *route and, for an item
 * or a rotation, *id as written; NGX_DECLINED for no route; NGX_ABORT
 * for an id that is not a UUID.
 */
ngx_int_t ngx_http_auth_pat_parse_route(ngx_str_t *uri, ngx_str_t *prefix,
    ngx_http_auth_pat_route_e *route, ngx_str_t *id);

/*
 * Origin ("scheme://host[:port]") names the host and port of Host, whose
 * port defaults by the request's scheme (https); "null" never does
 */
ngx_uint_t ngx_http_auth_pat_parse_same_origin(ngx_str_t *origin,
    ngx_str_t *host, ngx_uint_t https);

/* the media type type, optionally with "; charset=utf-8" */
ngx_uint_t ngx_http_auth_pat_parse_media_type(u_char *p, size_t len,
    const char *type);

/*
 * The field name of an application/x-www-form-urlencoded body, decoded
 * into buf (room for len bytes): NGX_OK, NGX_DECLINED when it is absent,
 * NGX_ERROR when it is given twice or badly encoded.
 */
ngx_int_t ngx_http_auth_pat_parse_form_field(u_char *p, size_t len,
    const char *name, u_char *buf, ngx_str_t *value);

/*
 * "scopes": absent is []; an array of RFC 6749 scope-tokens (1 to 64
 * printable ASCII characters but space, '"' and '\\'), at most 32 once
 * duplicates are dropped.  *scopes is a new array, sorted and without
 * duplicates.  On error: the message, *status (400 for a wrong type, 422
 * for a bad scope), and *bad the offending scope when there is one.
 */
const char *ngx_http_auth_pat_parse_scopes(json_t *v, json_t **scopes,
    ngx_uint_t *status, const char **bad);

/* scope (a string) is one of set (an array of strings) */
ngx_uint_t ngx_http_auth_pat_scope_held(json_t *scope, json_t *set);

/* one RFC 6749 scope-token of 1 to 64 characters */
ngx_uint_t ngx_http_auth_pat_scope_valid(const char *s, size_t len);

/* "name", trimmed; name points into the string of v */

const char *ngx_http_auth_pat_parse_name(json_t *v, ngx_str_t *name,
    ngx_uint_t *status);

/*
 * "expiresAt" (v NULL when absent: dflt, in ms, 0 for never), within
 * max_lifetime ms of now when that is not 0
 */
const char *ngx_http_auth_pat_parse_expires(json_t *v, int64_t now,
    int64_t dflt, int64_t max_lifetime, int64_t *ms, ngx_uint_t *status);

/*
 * The list query string.  buf has room for args->len bytes: the decoded
 * search term is written there.  The status is always 400.
 */
const char *ngx_http_auth_pat_parse_query(ngx_str_t *args, u_char *buf,
    ngx_http_auth_pat_list_query_t *q);

/*
 * A metadata record, or NULL when it is not one this release wrote: an
 * object whose id (and rf, rt) are UUIDs, name valid UTF-8 of 1 to 200
 * characters, times integers in range, scopes valid.
 */
json_t *ngx_http_auth_pat_parse_record(u_char *p, size_t len);

/*
 * a list index entry "c:e:l:r:name", with "\x1fscope scope..." after the
 * name when the token holds scopes: the times (0 for null), the name,
 * the scopes (empty in entries of earlier releases)
 */
ngx_int_t ngx_http_auth_pat_parse_index_entry(u_char *p, size_t len,
    int64_t t[4], ngx_str_t *name, ngx_str_t *scopes);

/*
 * The validation record's u, i, n, e, s, c (data NULL where Redis had
 * none): NGX_OK, *expires (0: never) and *created (0: unknown) for a
 * live token, NGX_DECLINED for an unknown or expired one, NGX_ERROR for
 * a record we do not understand.  s, the scopes, space-separated, is
 * checked; records of earlier releases have no s (no scope) and no c.
 */
ngx_int_t ngx_http_auth_pat_parse_validation(ngx_str_t f[6], int64_t now,
    int64_t *expires, int64_t *created);

/* the scope is one of list, a space-separated list of scopes */
ngx_uint_t ngx_http_auth_pat_scope_in(ngx_str_t *list, u_char *scope,
    size_t len);

/* the scope of list at *pos, which moves on; 0 at the end */
ngx_uint_t ngx_http_auth_pat_scope_next(ngx_str_t *list, size_t *pos,
    ngx_str_t *scope);


#endif /* _NGX_HTTP_AUTH_PAT_PARSE_H_INCLUDED_ */
