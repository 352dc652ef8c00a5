
/*
 * ngx_http_auth_pat_module: personal access tokens issued and checked
 * inside nginx, stored in Redis.  The configuration, the request context,
 * the verified identity and the verdict of a check.
 */


#ifndef _NGX_HTTP_AUTH_PAT_MODULE_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "pat_token.h"
#include "ngx_http_auth_pat_redis_tls.h"
#include "ngx_http_auth_pat_ui.h"



#ifndef NGX_HTTP_UNPROCESSABLE_ENTITY
#define NGX_HTTP_UNPROCESSABLE_ENTITY  422
#endif


typedef struct ngx_http_auth_pat_cache_s  ngx_http_auth_pat_cache_t;


typedef struct {
    /* declared in ngx_http_auth_pat_redis.h and _store.h */
    struct ngx_http_auth_pat_redis_conf_s  *redis;
    struct ngx_http_auth_pat_store_conf_s  *store;
    struct ngx_http_auth_pat_audit_conf_s  *audit;     /* NULL: off */
    ngx_http_auth_pat_cache_t              *cache;
    ngx_flag_t                              cache_set;
    ngx_str_t                               key;       /* HMAC key */
    ngx_http_auth_pat_hmac_key_t            hmac;      /* the key, absorbed */
    ngx_str_t                               key_file;
    ngx_str_t                               prefix;    /* token prefix */
    ngx_flag_t                              used;      /* auth_pat here */
    ngx_http_auth_pat_redis_tls_conf_t      tls;       /* _redis_ssl_* */
} ngx_http_auth_pat_main_conf_t;


typedef struct {
    ngx_str_t                        realm;      /* unset: NULL data */
    ngx_flag_t                       enabled;
    ngx_flag_t                       hide_credentials;
    ngx_array_t                     *scopes_required; /* auth_pat_scope */
    ngx_flag_t                       introspect;
    ngx_flag_t                       status;     /* auth_pat_status */
    ngx_http_auth_pat_ui_conf_t     *ui;         /* auth_pat_ui */

    /* auth_pat_api */
    ngx_flag_t                       api;
    ngx_str_t                        api_prefix;
    ngx_http_complex_value_t        *api_user;
    time_t                           default_lifetime;
    time_t                           max_lifetime;
    ngx_int_t                        max_tokens;
    ngx_array_t                     *scopes_allowed;  /* of ngx_str_t */
    ngx_str_t                        api_scope;  /* empty: none needed */

    /* precomputed WWW-Authenticate values */
    ngx_str_t                        challenge;
    ngx_str_t                        challenge_invalid_token;
    ngx_str_t                        challenge_invalid_request;
    ngx_str_t                        challenge_insufficient_scope;
    ngx_str_t                        challenge_api_scope;   /* names it */
    ngx_str_t                        challenge_api_refused; /* no scope */
} ngx_http_auth_pat_loc_conf_t;


/* the verified identity of a request, once known */
typedef struct {
    ngx_str_t                        user_id;
    ngx_str_t                        token_id;
    ngx_str_t                        token_name;
    ngx_str_t                        scopes;     /* sorted, space-separated */
    int64_t                          expires;    /* ms, 0: never */
    int64_t                          created;    /* ms, 0: not known */
} ngx_http_auth_pat_identity_t;


/* the verdict of a token check */
typedef enum {
    NGX_HTTP_AUTH_PAT_VALID = 0,
    NGX_HTTP_AUTH_PAT_NO_CREDENTIALS,
    NGX_HTTP_AUTH_PAT_INVALID_TOKEN,
    NGX_HTTP_AUTH_PAT_INVALID_REQUEST,
    NGX_HTTP_AUTH_PAT_UNAVAILABLE,
    NGX_HTTP_AUTH_PAT_INSUFFICIENT_SCOPE     /* valid, but lacks a scope */
} ngx_http_auth_pat_verdict_e;


typedef enum {
    NGX_HTTP_AUTH_PAT_CHECK_NONE = 0,
    NGX_HTTP_AUTH_PAT_CHECK_PENDING,
    NGX_HTTP_AUTH_PAT_CHECK_DONE
} ngx_http_auth_pat_check_state_e;


typedef struct {
    ngx_http_request_t              *request;
    ngx_http_auth_pat_check_state_e  state;
    ngx_http_auth_pat_verdict_e      verdict;
    ngx_http_auth_pat_identity_t     identity;
    void                            *api;        /* ngx_http_auth_pat_api_t */
    void                            *introspected; /* its check's ctx */
    ngx_buf_t                       *error_body; /* JSON for nginx's errors */

    /* the access check's refusal, which nginx's error page becomes */
    ngx_uint_t                       refused;    /* the status, or 0 */
    ngx_http_auth_pat_verdict_e      refusal;

    unsigned                         identified:1;
    unsigned                         counted:1;  /* in the metrics */
    unsigned                         responded:1; /* our own JSON answer */
    unsigned                         error_body_sent:1;
} ngx_http_auth_pat_ctx_t;


extern ngx_module_t  ngx_http_auth_pat_module;


/* the cached clock, in ms */
static ngx_inline int64_t
ngx_http_auth_pat_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (int64_t) tp->sec * 1000 + tp->msec;
}


#endif /* _NGX_HTTP_AUTH_PAT_MODULE_H_INCLUDED_ */
