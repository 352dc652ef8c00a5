
/*
 * TLS under the Redis connections, on nginx's own ngx_ssl_* API the way
 * ngx_http_upstream uses it: the context is made when the configuration
 * is read; a connection gets SNI, a saved session and the handshake; the
 * server's chain and name are checked after it.  It knows nothing of
 * RESP or of the connections' queues.
 */


#ifndef _NGX_HTTP_AUTH_PAT_REDIS_TLS_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_REDIS_TLS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>


/* the auth_pat_redis_ssl_* directives, and the context they make */
typedef struct {
    ngx_flag_t                     verify;
    ngx_uint_t                     protocols;
    ngx_str_t                      trusted_certificate;
    ngx_str_t                      name;
    ngx_str_t                      certificate;
    ngx_str_t                      certificate_key;
#if (NGX_SSL)
    ngx_ssl_t                     *ssl;
#endif
} ngx_http_auth_pat_redis_tls_conf_t;


/*
 * A connection's log while it runs TLS: what nginx's own SSL code says
 * about it (at crit for many handshake failures) is kept here instead of
 * written, so that the Redis layer logs one line with the reason.
 */
typedef struct {
    ngx_log_t                      log;
    size_t                         len;
    u_char                         text[256];
} ngx_http_auth_pat_redis_tls_log_t;


/* a reason for a failed TLS setup, for the one line that is logged */
typedef struct {
    size_t                         len;
    u_char                         text[320];
} ngx_http_auth_pat_redis_tls_why_t;


extern ngx_conf_bitmask_t  ngx_http_auth_pat_redis_tls_protocols[];


/* after the directives: sets the defaults and makes the context */
ngx_int_t ngx_http_auth_pat_redis_tls_init(ngx_conf_t *cf,
    ngx_http_auth_pat_redis_tls_conf_t *tls);

void ngx_http_auth_pat_redis_tls_log_init(
    ngx_http_auth_pat_redis_tls_log_t *tl, ngx_log_t *parent);

#if (NGX_SSL)

/*
 * Starts TLS on a connected socket.  host: the host of the configured
 * address (a name gets SNI; an IP gets none).  NGX_OK: done (check it
 * with _verify); NGX_AGAIN: handler is called when it is done or failed;
 * NGX_ERROR: failed.
 */
ngx_int_t ngx_http_auth_pat_redis_tls_handshake(ngx_connection_t *c,
    ngx_http_auth_pat_redis_tls_conf_t *tls, ngx_str_t *host,
    ngx_ssl_session_t *session, ngx_connection_handler_pt handler,
    ngx_connection_handler_pt save_session);

/*
 * After the handshake: NGX_OK when verification is off or the chain and
 * the name check out; NGX_DECLINED with the reason otherwise.
 */
ngx_int_t ngx_http_auth_pat_redis_tls_verify(ngx_connection_t *c,
    ngx_http_auth_pat_redis_tls_conf_t *tls, ngx_str_t *host,
    ngx_http_auth_pat_redis_tls_why_t *why);

/* close_notify, without waiting for the server's */
void ngx_http_auth_pat_redis_tls_shutdown(ngx_connection_t *c);

#endif


#endif /* _NGX_HTTP_AUTH_PAT_REDIS_TLS_H_INCLUDED_ */
