
/*
 * ngx_http_auth_pat_module: directives, configuration, phase handlers,
 * process hooks and variables.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_ctx.h"
#include "ngx_http_auth_pat_module.h"
#include "ngx_http_auth_pat_access.h"
#include "ngx_http_auth_pat_api.h"
#include "ngx_http_auth_pat_audit.h"
#include "ngx_http_auth_pat_metrics.h"
#include "ngx_http_auth_pat_status.h"
#include "ngx_http_auth_pat_cache.h"
#include "ngx_http_auth_pat_inval.h"
#include "ngx_http_auth_pat_introspect.h"
#include "ngx_http_auth_pat_json.h"
#include "ngx_http_auth_pat_parse.h"
#include "ngx_http_auth_pat_redis.h"
#include "ngx_http_auth_pat_store.h"


#define NGX_HTTP_AUTH_PAT_KEY_MIN   32
#define NGX_HTTP_AUTH_PAT_KEY_MAX   4096
#define NGX_HTTP_AUTH_PAT_SECRET_MAX  4096  /* a password given by file */
#define NGX_HTTP_AUTH_PAT_REPLICAS_MAX  16

/* each sentinel is asked for at most this long (or timeout=) */
#define NGX_HTTP_AUTH_PAT_SENTINEL_TIMEOUT  500


static ngx_int_t ngx_http_auth_pat_add_variables(ngx_conf_t *cf);
static void *ngx_http_auth_pat_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_auth_pat_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_auth_pat_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_auth_pat_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_auth_pat_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_auth_pat_init_process(ngx_cycle_t *cycle);
static void ngx_http_auth_pat_exit_process(ngx_cycle_t *cycle);

static char *ngx_http_auth_pat_redis(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_auth_pat_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_auth_pat_read_secret(ngx_conf_t *cf,
    ngx_str_t *name, size_t max, const char *what, ngx_str_t *secret);
static char *ngx_http_auth_pat_token_prefix(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_auth_pat(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_auth_pat_api(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_auth_pat_status_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_auth_pat_ui_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_auth_pat_audit_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_auth_pat_cache(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_auth_pat_scopes_allowed(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_auth_pat_scope(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_auth_pat_api_scope(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_auth_pat_introspect(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);


static ngx_conf_num_bounds_t  ngx_http_auth_pat_max_tokens_bounds = {
    ngx_conf_check_num_bounds, 1, 1000000
};

static ngx_int_t ngx_http_auth_pat_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_command_t  ngx_http_auth_pat_commands[] = {

    { ngx_string("auth_pat_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_auth_pat_redis,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("auth_pat_redis_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_main_conf_t, tls.verify),
      NULL },

    { ngx_string("auth_pat_redis_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_main_conf_t, tls.trusted_certificate),
      NULL },

    { ngx_string("auth_pat_redis_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_main_conf_t, tls.name),
      NULL },

    { ngx_string("auth_pat_redis_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_main_conf_t, tls.certificate),
      NULL },

    { ngx_string("auth_pat_redis_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_main_conf_t, tls.certificate_key),
      NULL },

    { ngx_string("auth_pat_redis_ssl_protocols"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_MAIN_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_main_conf_t, tls.protocols),
      &ngx_http_auth_pat_redis_tls_protocols },

    { ngx_string("auth_pat_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_auth_pat_key_file,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("auth_pat_token_prefix"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_auth_pat_token_prefix,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("auth_pat_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_auth_pat_status_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("auth_pat_ui"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_auth_pat_ui_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("auth_pat_audit"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_auth_pat_audit_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("auth_pat_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_auth_pat_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("auth_pat"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_TAKE1,
      ngx_http_auth_pat,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("auth_pat_scope"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_HTTP_LMT_CONF
                        |NGX_CONF_1MORE,
      ngx_http_auth_pat_scope,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("auth_pat_introspect"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_auth_pat_introspect,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("auth_pat_hide_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_loc_conf_t, hide_credentials),
      NULL },

    { ngx_string("auth_pat_api"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_auth_pat_api,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("auth_pat_api_user"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_loc_conf_t, api_user),
      NULL },

    { ngx_string("auth_pat_default_lifetime"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_loc_conf_t, default_lifetime),
      NULL },

    { ngx_string("auth_pat_max_lifetime"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_loc_conf_t, max_lifetime),
      NULL },

    { ngx_string("auth_pat_max_tokens"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_loc_conf_t, max_tokens),
      &ngx_http_auth_pat_max_tokens_bounds },

    { ngx_string("auth_pat_scopes_allowed"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_auth_pat_scopes_allowed,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_loc_conf_t, scopes_allowed),
      NULL },

    { ngx_string("auth_pat_api_scope"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_auth_pat_api_scope,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_auth_pat_loc_conf_t, api_scope),
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_auth_pat_module_ctx = {
    ngx_http_auth_pat_add_variables,       /* preconfiguration */
    ngx_http_auth_pat_init,                /* postconfiguration */

    ngx_http_auth_pat_create_main_conf,    /* create main configuration */
    ngx_http_auth_pat_init_main_conf,      /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_auth_pat_create_loc_conf,     /* create location configuration */
    ngx_http_auth_pat_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_auth_pat_module = {
    NGX_MODULE_V1,
    &ngx_http_auth_pat_module_ctx,         /* module context */
    ngx_http_auth_pat_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_auth_pat_init_process,        /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_auth_pat_exit_process,        /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_auth_pat_vars[] = {

    { ngx_string("pat_user_id"), NULL, ngx_http_auth_pat_variable,
      offsetof(ngx_http_auth_pat_identity_t, user_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("pat_token_id"), NULL, ngx_http_auth_pat_variable,
      offsetof(ngx_http_auth_pat_identity_t, token_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("pat_token_name"), NULL, ngx_http_auth_pat_variable,
      offsetof(ngx_http_auth_pat_identity_t, token_name),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("pat_scopes"), NULL, ngx_http_auth_pat_variable,
      offsetof(ngx_http_auth_pat_identity_t, scopes),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


/* ------------------------------------------------------------ runtime */


static ngx_int_t
ngx_http_auth_pat_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                *s;
    ngx_http_auth_pat_ctx_t  *ctx;

    ctx = ngx_http_auth_pat_find_ctx(r->main);

    if (ctx == NULL || !ctx->identified) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) &ctx->identity + data);

    /* an empty value still points somewhere: nginx copies it */
    v->len = s->len;
    v->data = s->len ? s->data : (u_char *) "";
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


/* ----------------------------------------------------- configuration */


static ngx_int_t
ngx_http_auth_pat_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_auth_pat_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static void *
ngx_http_auth_pat_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_auth_pat_main_conf_t  *pmcf;

    pmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_auth_pat_main_conf_t));
    if (pmcf == NULL) {
        return NULL;
    }

    pmcf->tls.verify = NGX_CONF_UNSET;

    /*
     * set by ngx_pcalloc():
     *
     *     pmcf->tls.protocols = 0;
     *     pmcf->tls.trusted_certificate etc. = { 0, NULL };
     *     pmcf->redis = NULL;
     *     pmcf->key = { 0, NULL };
     *     pmcf->key_file = { 0, NULL };
     *     pmcf->prefix = { 0, NULL };
     *     pmcf->used = 0;
     */

    return pmcf;
}


static char *
ngx_http_auth_pat_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_auth_pat_main_conf_t  *pmcf = conf;

    if (pmcf->prefix.data == NULL) {
        ngx_str_set(&pmcf->prefix, "pat_");
    }

    if ((pmcf->redis == NULL || !pmcf->redis->ssl)
        && (pmcf->tls.verify != NGX_CONF_UNSET || pmcf->tls.protocols
            || pmcf->tls.trusted_certificate.data || pmcf->tls.name.data
            || pmcf->tls.certificate.data || pmcf->tls.certificate_key.data))
    {
        /* settings for TLS that would go unused: plaintext by mistake */
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"auth_pat_redis_ssl_*\" directives need \"ssl\" "
                      "in \"auth_pat_redis\"");
        return NGX_CONF_ERROR;
    }

    if (pmcf->redis && pmcf->redis->ssl) {
        pmcf->redis->tls = &pmcf->tls;

        if (pmcf->redis->sentinel) {
            pmcf->redis->sentinel->tls = &pmcf->tls;
        }

        if (ngx_http_auth_pat_redis_tls_init(cf, &pmcf->tls) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_auth_pat_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_auth_pat_loc_conf_t));
    if (plcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     plcf->realm = { 0, NULL };
     *     plcf->challenge* = { 0, NULL };
     */

    plcf->enabled = NGX_CONF_UNSET;
    plcf->hide_credentials = NGX_CONF_UNSET;
    plcf->api_user = NGX_CONF_UNSET_PTR;
    plcf->default_lifetime = NGX_CONF_UNSET;
    plcf->max_lifetime = NGX_CONF_UNSET;
    plcf->max_tokens = NGX_CONF_UNSET;
    plcf->scopes_allowed = NGX_CONF_UNSET_PTR;
    plcf->scopes_required = NGX_CONF_UNSET_PTR;

    return plcf;
}


/*
 * Bearer realm="...", with '"' and '\' escaped (RFC 7230 quoted-string),
 * an error, and n scopes, which hold neither
 */

static ngx_int_t
ngx_http_auth_pat_challenge(ngx_conf_t *cf, ngx_str_t *realm,
    const char *error, ngx_str_t *scopes, ngx_uint_t n, ngx_str_t *out)
{
    u_char  *p;
    size_t   len, i;

    len = sizeof("Bearer realm=\"\"") - 1 + 2 * realm->len;

    if (error) {
        len += sizeof(", error=\"\"") - 1 + ngx_strlen(error);
    }

    if (n) {
        len += sizeof(", scope=\"\"") - 1;

        for (i = 0; i < n; i++) {
            len += scopes[i].len + 1;
        }
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;
    p = ngx_cpymem(p, "Bearer realm=\"", sizeof("Bearer realm=\"") - 1);

    for (i = 0; i < realm->len; i++) {
        if (realm->data[i] == '"' || realm->data[i] == '\\') {
            *p++ = '\\';
        }

        *p++ = realm->data[i];
    }

    *p++ = '"';

    if (error) {
        p = ngx_sprintf(p, ", error=\"%s\"", error);
    }

    if (n) {
        p = ngx_cpymem(p, ", scope=\"", sizeof(", scope=\"") - 1);

        for (i = 0; i < n; i++) {
            if (i) {
                *p++ = ' ';
            }

            p = ngx_cpymem(p, scopes[i].data, scopes[i].len);
        }

        *p++ = '"';
    }

    out->len = p - out->data;

    return NGX_OK;
}


static char *
ngx_http_auth_pat_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_auth_pat_loc_conf_t  *prev = parent;
    ngx_http_auth_pat_loc_conf_t  *conf = child;

    ngx_array_t               *required;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->lmt_excpt) {
        /*
         * a limit_except block serves what its location serves, as
         * ngx_http_proxy_module arranges for proxy_pass
         */
        conf->api = prev->api;
        conf->api_prefix = prev->api_prefix;
        conf->introspect = prev->introspect;

        if (clcf->handler == NULL) {
            clcf->handler = conf->api ? ngx_http_auth_pat_api_handler
                            : conf->introspect
                              ? ngx_http_auth_pat_introspect_handler : NULL;
        }
    }

    if (conf->introspect && !clcf->lmt_excpt
        && (clcf->client_max_body_size == 0
            || clcf->client_max_body_size
               > (off_t) clcf->client_body_buffer_size))
    {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "\"auth_pat_introspect\": a chunked body larger "
                           "than client_body_buffer_size would be written "
                           "to a temporary file, token included: set "
                           "\"client_max_body_size 4k\" here");
    }

    if (conf->enabled == NGX_CONF_UNSET) {
        conf->enabled = prev->enabled;
        conf->realm = prev->realm;
        conf->challenge = prev->challenge;
        conf->challenge_invalid_token = prev->challenge_invalid_token;
        conf->challenge_invalid_request = prev->challenge_invalid_request;
    }

    ngx_conf_init_value(conf->enabled, 0);
    ngx_conf_merge_value(conf->hide_credentials, prev->hide_credentials, 0);
    ngx_conf_merge_ptr_value(conf->api_user, prev->api_user, NULL);
    ngx_conf_merge_sec_value(conf->default_lifetime, prev->default_lifetime,
                             0);
    ngx_conf_merge_sec_value(conf->max_lifetime, prev->max_lifetime, 0);
    ngx_conf_merge_value(conf->max_tokens, prev->max_tokens, 100);
    ngx_conf_merge_ptr_value(conf->scopes_allowed, prev->scopes_allowed,
                             NULL);
    ngx_conf_merge_ptr_value(conf->scopes_required, prev->scopes_required,
                             NULL);
    ngx_conf_merge_str_value(conf->api_scope, prev->api_scope, "");

    if (conf->max_lifetime && conf->default_lifetime > conf->max_lifetime) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"auth_pat_default_lifetime\" is longer than "
                           "\"auth_pat_max_lifetime\"");
        return NGX_CONF_ERROR;
    }

    if (conf->realm.data == NULL) {
        /* the realm of the API's own 401 answers */
        ngx_str_set(&conf->realm, "api");
    }

    if (!conf->enabled && !conf->api) {
        return NGX_CONF_OK;
    }

    if (conf->challenge.data == NULL) {
        if (ngx_http_auth_pat_challenge(cf, &conf->realm, NULL, NULL, 0,
                                        &conf->challenge)
            != NGX_OK
            || ngx_http_auth_pat_challenge(cf, &conf->realm, "invalid_token",
                                           NULL, 0,
                                           &conf->challenge_invalid_token)
               != NGX_OK
            || ngx_http_auth_pat_challenge(cf, &conf->realm,
                                           "invalid_request", NULL, 0,
                                           &conf->challenge_invalid_request)
               != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }
    }

    /* 403 insufficient_scope: the scopes auth_pat_scope requires here */

    required = conf->scopes_required;

    if (conf->enabled && required && required->nelts
        && ngx_http_auth_pat_challenge(cf, &conf->realm, "insufficient_scope",
                                       required->elts, required->nelts,
                                       &conf->challenge_insufficient_scope)
           != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    /* and in the API: auth_pat_api_scope's, or none (what may be issued) */

    if (conf->api
        && (ngx_http_auth_pat_challenge(cf, &conf->realm,
                                        "insufficient_scope",
                                        &conf->api_scope,
                                        conf->api_scope.len ? 1 : 0,
                                        &conf->challenge_api_scope)
            != NGX_OK
            || ngx_http_auth_pat_challenge(cf, &conf->realm,
                                           "insufficient_scope", NULL, 0,
                                           &conf->challenge_api_refused)
               != NGX_OK))
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_auth_pat_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt            *h;
    ngx_http_core_main_conf_t      *cmcf;
    ngx_http_auth_pat_main_conf_t  *pmcf;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_auth_pat_module);

    if (!pmcf->used) {
        return NGX_OK;
    }

    if (pmcf->redis == NULL || pmcf->key.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"auth_pat\" needs \"auth_pat_redis\" and "
                      "\"auth_pat_key_file\" in the http block");
        return NGX_ERROR;
    }

    if (ngx_http_auth_pat_json_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_auth_pat_store_init_conf(cf, pmcf->store, pmcf->redis)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_auth_pat_access_handler;

    /*
     * A phase runs its handlers in the reverse order of their
     * registration, and a dynamic module registers after nginx's own:
     * this one runs before limit_req and limit_conn.
     */
    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PREACCESS_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_auth_pat_identify_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_auth_pat_let_in_handler;

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_auth_pat_api_log_handler;

    return NGX_OK;
}


static ngx_int_t
ngx_http_auth_pat_init_process(ngx_cycle_t *cycle)
{
    ngx_http_auth_pat_main_conf_t  *pmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    ngx_http_auth_pat_metrics_init_process(cycle);

    pmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_auth_pat_module);

    if (pmcf == NULL || !pmcf->used) {
        return NGX_OK;
    }

    if (ngx_http_auth_pat_store_init_process(cycle, pmcf->store, pmcf->redis)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (pmcf->cache == NULL) {
        return NGX_OK;
    }

    return ngx_http_auth_pat_inval_init_process(cycle, pmcf->store,
                                                pmcf->redis, pmcf->cache);
}


static void
ngx_http_auth_pat_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_auth_pat_inval_exit_process(cycle);
    ngx_http_auth_pat_store_exit_process(cycle);
}


/* ---------------------------------------------------------- directives */


/* one address of auth_pat_redis, resolved here: no worker calls a resolver */

static ngx_int_t
ngx_http_auth_pat_redis_address(ngx_conf_t *cf, ngx_str_t *text,
    ngx_uint_t sentinel, ngx_http_auth_pat_redis_addr_t *addr,
    ngx_uint_t *unix_socket)
{
    ngx_url_t    u;
    const char  *what;

    ngx_memzero(&u, sizeof(ngx_url_t));

    what = sentinel ? "sentinel" : "redis";

    u.url = *text;
    u.default_port = sentinel ? 26379 : 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in %s address \"%V\"", u.err, what,
                               &u.url);
        }

        return NGX_ERROR;
    }

    if (u.uri.len && u.family != AF_UNIX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid %s address \"%V\": expected "
                           "\"host:port\" or \"unix:/path\"", what, &u.url);
        return NGX_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s host \"%V\" not found", what, &u.host);
        return NGX_ERROR;
    }

    addr->text = *text;
    addr->host = u.host;
    addr->sockaddr = u.addrs[0].sockaddr;
    addr->socklen = u.addrs[0].socklen;

    if (u.family == AF_UNIX) {
        *unix_socket = 1;
    }

    return NGX_OK;
}


/* a secret given inline (NAME=) or by file (NAME_file=), into *secret */

static char *
ngx_http_auth_pat_redis_secret(ngx_conf_t *cf, ngx_str_t *value,
    const char *name, const char *what, ngx_str_t *secret)
{
    size_t     len;
    ngx_str_t  s;

    if (secret->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redis \"%s=\" and \"%s_file=\" exclude each "
                           "other", name, name);
        return NGX_CONF_ERROR;
    }

    len = ngx_strlen(name);

    if (value->data[len] == '=') {
        secret->data = value->data + len + 1;
        secret->len = value->len - len - 1;

        if (secret->len == 0) {
            goto invalid;
        }

        return NGX_CONF_OK;
    }

    /* NAME_file= */
    s.data = value->data + len + sizeof("_file=") - 1;
    s.len = value->len - len - (sizeof("_file=") - 1);

    if (s.len == 0) {
        goto invalid;
    }

    if (ngx_http_auth_pat_read_secret(cf, &s, NGX_HTTP_AUTH_PAT_SECRET_MAX,
                                      what, secret)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (secret->len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s \"%V\" is empty", what,
                           &s);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "invalid parameter \"%V\"",
                       value);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_auth_pat_redis(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_auth_pat_main_conf_t  *pmcf = conf;

    char                            *rv;
    ngx_int_t                        n;
    ngx_str_t                       *value, s, sentinel_user;
    ngx_str_t                        sentinel_password;
    ngx_uint_t                       i, k, naddrs, unix_socket;
    ngx_http_auth_pat_redis_conf_t  *rcf, *sent;
    ngx_http_auth_pat_store_conf_t  *scf;

    if (pmcf->redis) {
        return "is duplicate";
    }

    rcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_auth_pat_redis_conf_t));
    scf = ngx_pcalloc(cf->pool, sizeof(ngx_http_auth_pat_store_conf_t));
    if (rcf == NULL || scf == NULL) {
        return NGX_CONF_ERROR;
    }

    value = cf->args->elts;

    rcf->timeout = 1000;
    rcf->keepalive = 1000;
    ngx_str_set(&scf->ns, "pat:");
    ngx_str_null(&sentinel_user);
    ngx_str_null(&sentinel_password);

    /* the addresses: the arguments before the first parameter */

    for (i = 1; i < cf->args->nelts; i++) {
        if (ngx_strlchr(value[i].data, value[i].data + value[i].len, '=')
            != NULL
            || (value[i].len == 3 && ngx_strncmp(value[i].data, "ssl", 3) == 0)
            || (value[i].len == 7
                && ngx_strncmp(value[i].data, "cluster", 7) == 0))
        {
            break;
        }
    }

    naddrs = i - 1;

    if (naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"auth_pat_redis\" needs an address first");
        return NGX_CONF_ERROR;
    }

    for ( /* void */ ; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR || n > 65535) {
                goto invalid;
            }

            rcf->db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0
            || ngx_strncmp(value[i].data, "password_file=", 14) == 0)
        {
            rv = ngx_http_auth_pat_redis_secret(cf, &value[i], "password",
                                                "redis password file",
                                                &rcf->password);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "sentinel_password=", 18) == 0
            || ngx_strncmp(value[i].data, "sentinel_password_file=", 23) == 0)
        {
            rv = ngx_http_auth_pat_redis_secret(cf, &value[i],
                                                "sentinel_password",
                                                "sentinel password file",
                                                &sentinel_password);
            if (rv != NGX_CONF_OK) {
                return rv;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "sentinel_user=", 14) == 0) {
            sentinel_user.data = value[i].data + 14;
            sentinel_user.len = value[i].len - 14;

            if (sentinel_user.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "sentinel=", 9) == 0) {
            rcf->sentinel_name.data = value[i].data + 9;
            rcf->sentinel_name.len = value[i].len - 9;

            if (rcf->sentinel_name.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "replicas=", 9) == 0) {
            n = ngx_atoi(value[i].data + 9, value[i].len - 9);
            if (n == NGX_ERROR || n > NGX_HTTP_AUTH_PAT_REPLICAS_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid redis \"%V\": use 0 to %d "
                                   "replicas", &value[i],
                                   NGX_HTTP_AUTH_PAT_REPLICAS_MAX);
                return NGX_CONF_ERROR;
            }

            rcf->replicas = n;
            scf->replicas = n;
            continue;
        }

        if (value[i].len == 3 && ngx_strncmp(value[i].data, "ssl", 3) == 0) {
            rcf->ssl = 1;
            continue;
        }

        if (value[i].len == 7
            && ngx_strncmp(value[i].data, "cluster", 7) == 0)
        {
            rcf->cluster = 1;
            continue;
        }

        if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            rcf->user.data = value[i].data + 5;
            rcf->user.len = value[i].len - 5;

            if (rcf->user.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            rcf->timeout = ngx_parse_time(&s, 0);
            if (rcf->timeout == (ngx_msec_t) NGX_ERROR || rcf->timeout == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "keepalive=", 10) == 0) {
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

            rcf->keepalive = ngx_parse_time(&s, 0);
            if (rcf->keepalive == (ngx_msec_t) NGX_ERROR
                || rcf->keepalive < 100)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid redis keepalive \"%V\": use "
                                   "100ms or more", &s);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "namespace=", 10) == 0) {
            scf->ns.data = value[i].data + 10;
            scf->ns.len = value[i].len - 10;

            if (scf->ns.len == 0 || scf->ns.len > NGX_HTTP_AUTH_PAT_NS_MAX) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid redis namespace \"%V\": use "
                                   "1 to %d bytes", &scf->ns,
                                   NGX_HTTP_AUTH_PAT_NS_MAX);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        goto invalid;
    }

    if (rcf->user.len && rcf->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redis \"user=\" needs \"password=\" or "
                           "\"password_file=\"");
        return NGX_CONF_ERROR;
    }

    if (rcf->sentinel_name.len == 0
        && (sentinel_user.len || sentinel_password.len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redis \"sentinel_user=\" and "
                           "\"sentinel_password=\" need \"sentinel=\"");
        return NGX_CONF_ERROR;
    }

    if (sentinel_user.len && sentinel_password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redis \"sentinel_user=\" needs "
                           "\"sentinel_password=\" or "
                           "\"sentinel_password_file=\"");
        return NGX_CONF_ERROR;
    }

    if (rcf->cluster) {
        if (rcf->sentinel_name.len) {
            return "takes \"cluster\" or \"sentinel=\", not both";
        }

        if (rcf->db) {
            return "refuses \"db=\" with \"cluster\" (a cluster has "
                   "db 0 only)";
        }

        if (ngx_strlchr(scf->ns.data, scf->ns.data + scf->ns.len, '{')
            || ngx_strlchr(scf->ns.data, scf->ns.data + scf->ns.len, '}'))
        {
            return "refuses a namespace with \"{\" or \"}\" with "
                   "\"cluster\" (it would change the keys' slots)";
        }
    }

    if (naddrs > 1 && rcf->sentinel_name.len == 0 && !rcf->cluster) {
        /* (a mistyped flag, "tls" say, reads as an address) */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "several redis addresses need \"sentinel=\": "
                           "\"%V\" follows \"%V\"", &value[2], &value[1]);
        return NGX_CONF_ERROR;
    }

    unix_socket = 0;

    if (rcf->cluster) {
        rcf->nseeds = naddrs;
        rcf->seeds = ngx_pcalloc(cf->pool, naddrs
                                 * sizeof(ngx_http_auth_pat_redis_addr_t));
        if (rcf->seeds == NULL) {
            return NGX_CONF_ERROR;
        }

        for (k = 0; k < naddrs; k++) {
            if (ngx_http_auth_pat_redis_address(cf, &value[1 + k], 0,
                                                &rcf->seeds[k], &unix_socket)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
        }

        if (unix_socket) {
            return "needs \"host:port\" seeds with \"cluster\"";
        }

        ngx_str_set(&rcf->addr.text, "cluster");

    } else if (rcf->sentinel_name.len == 0) {
        if (ngx_http_auth_pat_redis_address(cf, &value[1], 0, &rcf->addr,
                                            &unix_socket)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

    } else {
        rcf->nsentinels = naddrs;
        rcf->sentinels = ngx_pcalloc(cf->pool, naddrs
                                     * sizeof(ngx_http_auth_pat_redis_addr_t));
        sent = ngx_pcalloc(cf->pool, sizeof(ngx_http_auth_pat_redis_conf_t));
        if (rcf->sentinels == NULL || sent == NULL) {
            return NGX_CONF_ERROR;
        }

        for (k = 0; k < naddrs; k++) {
            if (ngx_http_auth_pat_redis_address(cf, &value[1 + k], 1,
                                                &rcf->sentinels[k],
                                                &unix_socket)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
        }

        /* the sentinels: their own secrets, TLS as the nodes, no db */
        sent->ssl = rcf->ssl;
        sent->user = sentinel_user;
        sent->password = sentinel_password;
        sent->timeout = ngx_min(rcf->timeout,
                                NGX_HTTP_AUTH_PAT_SENTINEL_TIMEOUT);
        sent->keepalive = rcf->keepalive;

        /* until a sentinel names the master, the logs say which one */
        rcf->addr.text = rcf->sentinel_name;
        rcf->sentinel = sent;
    }

    if (rcf->ssl && unix_socket) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "redis \"ssl\" needs a \"host:port\" "
                           "address, not a unix socket");
        return NGX_CONF_ERROR;
    }

    pmcf->redis = rcf;
    pmcf->store = scf;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


/*
 * A secret given by file, read by the master when the configuration is
 * read (so the file may be readable by root only): the content with one
 * trailing newline removed.  The buffer is wiped with the configuration.
 */

static void
ngx_http_auth_pat_secret_wipe(void *data)
{
    ngx_str_t  *buf = data;

    ngx_explicit_memzero(buf->data, buf->len);
}


static ngx_int_t
ngx_http_auth_pat_read_secret(ngx_conf_t *cf, ngx_str_t *name, size_t max,
    const char *what, ngx_str_t *secret)
{
    size_t               size;
    ssize_t              n;
    ngx_fd_t             fd;
    ngx_str_t           *buf;
    ngx_file_info_t      fi;
    ngx_pool_cleanup_t  *cln;

    if (ngx_conf_full_name(cf->cycle, name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed", name->data);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%s\" failed", name->data);
        goto failed;
    }

    size = (size_t) ngx_file_size(&fi);

    if (size > max + 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s \"%s\" is too large: at most %uz bytes",
                           what, name->data, max);
        goto failed;
    }

    cln = ngx_pool_cleanup_add(cf->pool, sizeof(ngx_str_t));
    if (cln == NULL) {
        goto failed;
    }

    buf = cln->data;
    buf->len = 0;
    buf->data = ngx_pnalloc(cf->pool, size + 1);
    if (buf->data == NULL) {
        goto failed;
    }

    buf->len = size + 1;
    cln->handler = ngx_http_auth_pat_secret_wipe;

    n = ngx_read_fd(fd, buf->data, size);
    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%s\" failed", name->data);
        goto failed;
    }

    ngx_close_file(fd);

    size = n;

    if (size && buf->data[size - 1] == '\n') {
        size--;

        if (size && buf->data[size - 1] == '\r') {
            size--;
        }
    }

    if (size > max) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s \"%s\" is too large: at most %uz bytes",
                           what, name->data, max);
        return NGX_ERROR;
    }

    secret->data = buf->data;
    secret->len = size;

    return NGX_OK;

failed:

    ngx_close_file(fd);

    return NGX_ERROR;
}


static void
ngx_http_auth_pat_key_wipe(void *data)
{
    ngx_http_auth_pat_main_conf_t  *pmcf = data;

    ngx_http_auth_pat_hmac_key_clear(&pmcf->hmac);
}


static char *
ngx_http_auth_pat_key_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_auth_pat_main_conf_t  *pmcf = conf;

    ngx_str_t           *value, name, key;
    ngx_pool_cleanup_t  *cln;

    if (pmcf->key_file.data) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_http_auth_pat_read_secret(cf, &name, NGX_HTTP_AUTH_PAT_KEY_MAX,
                                      "key file", &key)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (key.len < NGX_HTTP_AUTH_PAT_KEY_MIN
        || key.len > NGX_HTTP_AUTH_PAT_KEY_MAX)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "key file \"%s\" holds a %uz-byte key: the key "
                           "must be %d to %d bytes", name.data, key.len,
                           NGX_HTTP_AUTH_PAT_KEY_MIN,
                           NGX_HTTP_AUTH_PAT_KEY_MAX);
        return NGX_CONF_ERROR;
    }

    /* the absorbed key leaves memory with the configuration too */
    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_auth_pat_key_wipe;
    cln->data = pmcf;

    pmcf->key_file = name;
    pmcf->key = key;

    if (ngx_http_auth_pat_hmac_key_init(&pmcf->hmac, key.data, key.len) != 0)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_auth_pat_invalid_scope(ngx_conf_t *cf, ngx_str_t *scope)
{
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid scope \"%V\": a scope is 1 to 64 printable "
                       "ASCII characters, without space, '\"' and '\\'",
                       scope);

    return NGX_CONF_ERROR;
}


/* auth_pat_scopes_allowed SCOPE ...: each well-formed, kept as given */

static char *
ngx_http_auth_pat_scopes_allowed(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_auth_pat_loc_conf_t  *plcf = conf;

    ngx_str_t   *value, *s;
    ngx_uint_t   i;

    if (plcf->scopes_allowed != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    plcf->scopes_allowed = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                            sizeof(ngx_str_t));
    if (plcf->scopes_allowed == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (!ngx_http_auth_pat_scope_valid((char *) value[i].data,
                                           value[i].len))
        {
            return ngx_http_auth_pat_invalid_scope(cf, &value[i]);
        }

        s = ngx_array_push(plcf->scopes_allowed);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


/* auth_pat_scope SCOPE ... | off: replaces the inherited list */

static char *
ngx_http_auth_pat_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_auth_pat_loc_conf_t  *plcf = conf;

    ngx_str_t   *value, *s;
    ngx_uint_t   i;

    if (plcf->scopes_required != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    plcf->scopes_required = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                             sizeof(ngx_str_t));
    if (plcf->scopes_required == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        return NGX_CONF_OK;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        if (!ngx_http_auth_pat_scope_valid((char *) value[i].data,
                                           value[i].len)
            || (value[i].len == 3 && ngx_strcmp(value[i].data, "off") == 0))
        {
            return ngx_http_auth_pat_invalid_scope(cf, &value[i]);
        }

        s = ngx_array_push(plcf->scopes_required);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }

        *s = value[i];
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_auth_pat_api_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (!ngx_http_auth_pat_scope_valid((char *) value[1].data, value[1].len))
    {
        return ngx_http_auth_pat_invalid_scope(cf, &value[1]);
    }

    return ngx_conf_set_str_slot(cf, cmd, conf);
}


static char *
ngx_http_auth_pat_token_prefix(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_auth_pat_main_conf_t  *pmcf = conf;

    ngx_str_t  *value;

    if (pmcf->prefix.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (!ngx_http_auth_pat_prefix_valid((char *) value[1].data, value[1].len)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid token prefix \"%V\": use 1 to %d "
                           "letters, digits and \"_\"", &value[1],
                           PAT_TOKEN_PREFIX_MAX);
        return NGX_CONF_ERROR;
    }

    pmcf->prefix = value[1];

    return NGX_CONF_OK;
}


static char *
ngx_http_auth_pat(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_auth_pat_loc_conf_t  *plcf = conf;

    ngx_str_t                      *value;
    ngx_http_auth_pat_main_conf_t  *pmcf;

    if (plcf->enabled != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        plcf->enabled = 0;
        return NGX_CONF_OK;
    }

    plcf->enabled = 1;
    plcf->realm = value[1];

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_auth_pat_module);
    pmcf->used = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_auth_pat_api(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_auth_pat_loc_conf_t  *plcf = conf;

    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_auth_pat_main_conf_t  *pmcf;

    if (plcf->api) {
        return "is duplicate";
    }

    if (plcf->introspect) {
        return "cannot share a location with \"auth_pat_introspect\"";
    }

    if (plcf->ui) {
        return "cannot share a location with \"auth_pat_ui\"";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->named
#if (NGX_PCRE)
        || clcf->regex
#endif
        || clcf->noname)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"auth_pat_api\" needs a prefix location, "
                           "such as \"location /v1/personal-access-tokens\"");
        return NGX_CONF_ERROR;
    }

    plcf->api = 1;
    plcf->api_prefix = clcf->name;
    clcf->handler = ngx_http_auth_pat_api_handler;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_auth_pat_module);
    pmcf->used = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_auth_pat_introspect(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_auth_pat_loc_conf_t  *plcf = conf;

    ngx_http_core_loc_conf_t       *clcf;
    ngx_http_auth_pat_main_conf_t  *pmcf;

    if (plcf->introspect) {
        return "is duplicate";
    }

    if (plcf->api) {
        return "cannot share a location with \"auth_pat_api\"";
    }

    if (plcf->ui) {
        return "cannot share a location with \"auth_pat_ui\"";
    }

    plcf->introspect = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_auth_pat_introspect_handler;

    pmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_auth_pat_module);
    pmcf->used = 1;

    return NGX_CONF_OK;
}


static char *
ngx_http_auth_pat_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_auth_pat_main_conf_t  *pmcf = conf;

    if (pmcf->cache_set) {
        return "is duplicate";
    }

    pmcf->cache_set = 1;

    return ngx_http_auth_pat_cache_conf(cf, &pmcf->cache);
}


static char *
ngx_http_auth_pat_audit_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_auth_pat_main_conf_t  *pmcf = conf;

    return ngx_http_auth_pat_audit_conf(cf, &pmcf->audit);
}


static char *
ngx_http_auth_pat_ui_directive(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_auth_pat_loc_conf_t  *plcf = conf;

    return ngx_http_auth_pat_ui_conf(cf, &plcf->ui);
}


static char *
ngx_http_auth_pat_status_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_auth_pat_loc_conf_t  *plcf = conf;

    if (plcf->status) {
        return "is duplicate";
    }

    if (plcf->ui) {
        return "cannot share a location with \"auth_pat_ui\"";
    }

    plcf->status = 1;

    return ngx_http_auth_pat_status_conf(cf);
}
