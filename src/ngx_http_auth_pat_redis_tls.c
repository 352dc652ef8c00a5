
/*
 * TLS to Redis: the context, the handshake and the checks after it.
 *
 * As ngx_http_upstream does it: the context verifies nothing during the
 * handshake (SSL_VERIFY_NONE); OpenSSL still checks the chain and keeps
 * the result, which is read once the handshake is done, with the name.
 * A host name gets SNI; an IP address gets none (RFC 6066), and its
 * certificate is checked against auth_pat_redis_ssl_name if set, else
 * against the address as an IP SAN.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_auth_pat_redis_tls.h"


/* a trusted CA, intermediates, the server: managed services use two */
#define NGX_HTTP_AUTH_PAT_REDIS_TLS_DEPTH  4


#if (NGX_SSL)

ngx_conf_bitmask_t  ngx_http_auth_pat_redis_tls_protocols[] = {
    { ngx_string("TLSv1"), NGX_SSL_TLSv1 },
    { ngx_string("TLSv1.1"), NGX_SSL_TLSv1_1 },
    { ngx_string("TLSv1.2"), NGX_SSL_TLSv1_2 },
    { ngx_string("TLSv1.3"), NGX_SSL_TLSv1_3 },
    { ngx_null_string, 0 }
};

#else

ngx_conf_bitmask_t  ngx_http_auth_pat_redis_tls_protocols[] = {
    { ngx_null_string, 0 }
};

#endif


/* nginx's line without its time, level and pid: the reason only */

static void
ngx_http_auth_pat_redis_tls_capture(ngx_log_t *log, ngx_uint_t level,
    u_char *buf, size_t len)
{
    u_char                             *p, *last;
    ngx_http_auth_pat_redis_tls_log_t  *tl = log->wdata;

    last = buf + len;

    while (last > buf && (last[-1] == LF || last[-1] == CR)) {
        last--;
    }

    p = ngx_strlchr(buf, last, ']');
    p = (p == NULL) ? buf : p;
    p = ngx_strlchr(p, last, ':');
    p = (p == NULL || last - p < 2) ? buf : p + 2;

    if (p < last && *p == '*') {
        /* "*N ", the connection number */
        p = ngx_strlchr(p, last, ' ');
        p = (p == NULL) ? last : p + 1;
    }

    tl->len = ngx_min((size_t) (last - p), sizeof(tl->text));
    ngx_memcpy(tl->text, p, tl->len);
}


void
ngx_http_auth_pat_redis_tls_log_init(ngx_http_auth_pat_redis_tls_log_t *tl,
    ngx_log_t *parent)
{
    ngx_memzero(tl, sizeof(ngx_http_auth_pat_redis_tls_log_t));

    tl->log.log_level = NGX_LOG_INFO;
    tl->log.file = parent->file;
    tl->log.writer = ngx_http_auth_pat_redis_tls_capture;
    tl->log.wdata = tl;
}


ngx_int_t
ngx_http_auth_pat_redis_tls_init(ngx_conf_t *cf,
    ngx_http_auth_pat_redis_tls_conf_t *tls)
{
#if (NGX_SSL)
    ngx_str_t            ciphers = ngx_string("DEFAULT");
    ngx_pool_cleanup_t  *cln;

    ngx_conf_init_value(tls->verify, 1);

    if (tls->protocols == 0) {
        tls->protocols = NGX_CONF_BITMASK_SET|NGX_SSL_TLSv1_2|NGX_SSL_TLSv1_3;
    }

    if (tls->name.len > 255) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"auth_pat_redis_ssl_name\" is longer than 255 bytes");
        return NGX_ERROR;
    }

    if (tls->certificate.len != 0 && tls->certificate_key.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "no \"auth_pat_redis_ssl_certificate_key\" is defined "
                      "for certificate \"%V\"", &tls->certificate);
        return NGX_ERROR;
    }

    if (tls->certificate.len == 0 && tls->certificate_key.len != 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "no \"auth_pat_redis_ssl_certificate\" is defined "
                      "for key \"%V\"", &tls->certificate_key);
        return NGX_ERROR;
    }

    tls->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (tls->ssl == NULL) {
        return NGX_ERROR;
    }

    tls->ssl->log = cf->log;

    if (ngx_ssl_create(tls->ssl, tls->protocols, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(tls->ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = tls->ssl;

    if (ngx_ssl_ciphers(cf, tls->ssl, &ciphers, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * the output buffer may move (it grows) between a write that wants
     * to be retried and its retry; the bytes stay the same
     */
    SSL_CTX_set_mode(tls->ssl->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                                    |SSL_MODE_ENABLE_PARTIAL_WRITE);

    if (tls->certificate.len != 0
        && ngx_ssl_certificate(cf, tls->ssl, &tls->certificate,
                               &tls->certificate_key, NULL)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (tls->verify) {
        if (tls->trusted_certificate.len != 0) {
            if (ngx_ssl_trusted_certificate(cf, tls->ssl,
                                            &tls->trusted_certificate,
                                            NGX_HTTP_AUTH_PAT_REDIS_TLS_DEPTH)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

        } else {
            SSL_CTX_set_verify_depth(tls->ssl->ctx,
                                     NGX_HTTP_AUTH_PAT_REDIS_TLS_DEPTH);

            if (SSL_CTX_set_default_verify_paths(tls->ssl->ctx) != 1) {
                ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                              "SSL_CTX_set_default_verify_paths() failed");
                return NGX_ERROR;
            }
        }
    }

    return ngx_ssl_client_session_cache(cf, tls->ssl, 1);

#else

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "redis \"ssl\" needs nginx built with OpenSSL");
    return NGX_ERROR;

#endif
}


#if (NGX_SSL)

/*
 * The name to check (or send), NUL-terminated in buf, without the
 * brackets of an IPv6 address; returns 1 for an IP address
 */

static ngx_uint_t
ngx_http_auth_pat_redis_tls_name(ngx_str_t *s, u_char *buf, size_t size)
{
    size_t   len;
    u_char  *p;
#if (NGX_HAVE_INET6)
    u_char   addr6[16];
#endif

    p = s->data;
    len = s->len;

    if (len >= 2 && p[0] == '[' && p[len - 1] == ']') {
        p++;
        len -= 2;
    }

    len = ngx_min(len, size - 1);
    ngx_memcpy(buf, p, len);
    buf[len] = '\0';

    if (ngx_inet_addr(buf, len) != INADDR_NONE) {
        return 1;
    }

#if (NGX_HAVE_INET6)
    if (ngx_inet6_addr(buf, len, addr6) == NGX_OK) {
        return 1;
    }
#endif

    return 0;
}


ngx_int_t
ngx_http_auth_pat_redis_tls_handshake(ngx_connection_t *c,
    ngx_http_auth_pat_redis_tls_conf_t *tls, ngx_str_t *host,
    ngx_ssl_session_t *session, ngx_connection_handler_pt handler,
    ngx_connection_handler_pt save_session)
{
    u_char      name[256];
    ngx_int_t   rc;
    ngx_str_t  *sni;

    if (ngx_ssl_create_connection(tls->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        return NGX_ERROR;
    }

    if (!ngx_http_auth_pat_redis_tls_name(host, name, sizeof(name))) {
        sni = tls->name.len ? &tls->name : host;

        if (!ngx_http_auth_pat_redis_tls_name(sni, name, sizeof(name))
            && SSL_set_tlsext_host_name(c->ssl->connection, (char *) name)
               == 0)
        {
            ngx_ssl_error(NGX_LOG_ERR, c->log, 0,
                          "SSL_set_tlsext_host_name(\"%s\") failed", name);
            return NGX_ERROR;
        }
    }

    c->ssl->save_session = save_session;

    if (session != NULL && ngx_ssl_set_session(c, session) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = handler;
    }

    return rc;
}


ngx_int_t
ngx_http_auth_pat_redis_tls_verify(ngx_connection_t *c,
    ngx_http_auth_pat_redis_tls_conf_t *tls, ngx_str_t *host,
    ngx_http_auth_pat_redis_tls_why_t *why)
{
    int         ok;
    long        rc;
    X509       *cert;
    u_char      name[256];
    ngx_uint_t  ip;

    if (!tls->verify) {
        return NGX_OK;
    }

    rc = SSL_get_verify_result(c->ssl->connection);

    if (rc != X509_V_OK) {
        why->len = ngx_snprintf(why->text, sizeof(why->text),
                                "certificate verify error: (%l:%s)", rc,
                                X509_verify_cert_error_string(rc))
                   - why->text;
        return NGX_DECLINED;
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);

    if (cert == NULL) {
        why->len = ngx_snprintf(why->text, sizeof(why->text),
                                "sent no certificate")
                   - why->text;
        return NGX_DECLINED;
    }

    ip = ngx_http_auth_pat_redis_tls_name(tls->name.len ? &tls->name : host,
                                          name, sizeof(name));

    if (ip) {
        ok = X509_check_ip_asc(cert, (char *) name, 0);

    } else {
        ok = X509_check_host(cert, (char *) name, ngx_strlen(name), 0, NULL);
    }

    X509_free(cert);

    if (ok != 1) {
        why->len = ngx_snprintf(why->text, sizeof(why->text),
                                "certificate does not match %s \"%s\"",
                                ip ? "the IP address" : "the name", name)
                   - why->text;
        return NGX_DECLINED;
    }

    return NGX_OK;
}


void
ngx_http_auth_pat_redis_tls_shutdown(ngx_connection_t *c)
{
    if (c->ssl == NULL) {
        return;
    }

    /* as ngx_http_upstream: close_notify, and no wait for the server's */
    c->ssl->no_wait_shutdown = 1;

    if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
        /* the socket is full: the connection closes now, quietly */
        c->error = 1;
        (void) ngx_ssl_shutdown(c);
    }
}

#endif
