
/*
 * ngx_http_auth_pat_module: personal access tokens issued and checked
 * inside nginx, stored in Redis.
 */


#ifndef _NGX_HTTP_AUTH_PAT_MODULE_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "pat_token.h"


#define NGX_HTTP_AUTH_PAT_USER_MAX     256

#ifndef NGX_HTTP_UNPROCESSABLE_ENTITY
#define NGX_HTTP_UNPROCESSABLE_ENTITY  422
#endif


typedef struct {
    ngx_str_t                      addr_text;  /* as configured */
    ngx_str_t                      host;       /* numeric, NUL-terminated */
    ngx_int_t                      port;
    ngx_str_t                      unix_path;  /* NUL-terminated, or empty */
    ngx_int_t                      db;
    ngx_str_t                      password;
    ngx_str_t                      user;
    ngx_msec_t                     timeout;
    ngx_str_t                      ns;         /* key namespace */
} ngx_http_auth_pat_redis_conf_t;


typedef struct ngx_http_auth_pat_cache_s  ngx_http_auth_pat_cache_t;


typedef struct {
    ngx_http_auth_pat_redis_conf_t  *redis;
    ngx_http_auth_pat_cache_t     *cache;
    ngx_flag_t                     cache_set;
    ngx_str_t                      key;        /* HMAC key */
    ngx_http_auth_pat_hmac_key_t   hmac;       /* the key, absorbed */
    ngx_str_t                      key_file;
    ngx_str_t                      prefix;     /* token prefix */
    ngx_flag_t                     used;       /* auth_pat somewhere */
} ngx_http_auth_pat_main_conf_t;


typedef struct {
    ngx_str_t                      realm;      /* unset: NULL data */
    ngx_flag_t                     enabled;
    ngx_flag_t                     hide_credentials;

    /* auth_pat_api */
    ngx_flag_t                     api;
    ngx_str_t                      api_prefix;
    ngx_http_complex_value_t      *api_user;
    time_t                         default_lifetime;
    time_t                         max_lifetime;
    ngx_int_t                      max_tokens;

    /* precomputed WWW-Authenticate values */
    ngx_str_t                      challenge;
    ngx_str_t                      challenge_invalid_token;
    ngx_str_t                      challenge_invalid_request;
} ngx_http_auth_pat_loc_conf_t;


/* the verified identity of a request, once known */
typedef struct {
    ngx_str_t                      user_id;
    ngx_str_t                      token_id;
    ngx_str_t                      token_name;
    int64_t                        expires;    /* ms, 0: never */
} ngx_http_auth_pat_identity_t;


typedef enum {
    NGX_HTTP_AUTH_PAT_CHECK_NONE = 0,
    NGX_HTTP_AUTH_PAT_CHECK_PENDING,
    NGX_HTTP_AUTH_PAT_CHECK_DONE
} ngx_http_auth_pat_check_state_e;


typedef struct ngx_http_auth_pat_lookup_s  ngx_http_auth_pat_lookup_t;


typedef struct {
    ngx_http_auth_pat_check_state_e  state;
    ngx_int_t                      verdict;    /* NGX_OK or an error code */
    ngx_http_auth_pat_identity_t   identity;
    ngx_http_auth_pat_lookup_t    *lookup;
    void                          *api;        /* ngx_http_auth_pat_api_t */
    ngx_buf_t                     *error_body; /* JSON for nginx's errors */

    /* the access check's refusal, which nginx's error page becomes */
    ngx_uint_t                     refused;    /* the status, or 0 */
    const char                    *refused_code;
    const char                    *refused_message;

    unsigned                       identified:1;
    unsigned                       responded:1; /* our own JSON answer */
    unsigned                       error_body_sent:1;
} ngx_http_auth_pat_ctx_t;


/* verdicts of a token check, beyond NGX_OK */
#define NGX_HTTP_AUTH_PAT_NO_CREDENTIALS    1
#define NGX_HTTP_AUTH_PAT_INVALID_TOKEN     2
#define NGX_HTTP_AUTH_PAT_INVALID_REQUEST   3
#define NGX_HTTP_AUTH_PAT_UNAVAILABLE       4


extern ngx_module_t  ngx_http_auth_pat_module;


/* the cached clock, in ms */
static ngx_inline int64_t
ngx_http_auth_pat_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


typedef void (*ngx_http_auth_pat_check_done_pt)(ngx_http_request_t *r);


ngx_http_auth_pat_ctx_t *ngx_http_auth_pat_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_auth_pat_access_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_auth_pat_let_in_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_auth_pat_check_token(ngx_http_request_t *r,
    ngx_http_auth_pat_ctx_t *ctx, ngx_http_auth_pat_check_done_pt done);
ngx_int_t ngx_http_auth_pat_api_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_auth_pat_api_init_filters(ngx_conf_t *cf);

void ngx_http_auth_pat_set_status(ngx_http_request_t *r, ngx_uint_t status);
ngx_int_t ngx_http_auth_pat_json_headers(ngx_http_request_t *r, ngx_buf_t *b);
ngx_buf_t *ngx_http_auth_pat_json_buf(ngx_pool_t *pool, json_t *obj);
json_t *ngx_http_auth_pat_error_json(const char *code, const char *message);
ngx_int_t ngx_http_auth_pat_send_json(ngx_http_request_t *r,
    ngx_uint_t status, json_t *obj, ngx_str_t *www_authenticate);
ngx_int_t ngx_http_auth_pat_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message,
    ngx_str_t *www_authenticate);


#endif /* _NGX_HTTP_AUTH_PAT_MODULE_H_INCLUDED_ */
