
/*
 * The audit trail of the token API: every create, revoke and rotate,
 * and every refused escalation attempt, is one line at "notice" and,
 * with "auth_pat_audit on", one entry of the Redis stream NS{audit}
 * (best effort: a failed append never fails the answer).  No secret is
 * ever part of an event.
 */


#ifndef _NGX_HTTP_AUTH_PAT_AUDIT_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_AUDIT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_store.h"


#define NGX_HTTP_AUTH_PAT_AUDIT_MAXLEN  100000


typedef struct ngx_http_auth_pat_audit_conf_s {
    ngx_flag_t                       enabled;
    ngx_uint_t                       maxlen;    /* the stream's, about */
} ngx_http_auth_pat_audit_conf_t;


typedef struct {
    const char                      *event;     /* "create", "revoke", ... */
    ngx_str_t                       *user;
    ngx_str_t                       *caller;    /* a token's id; NULL: the
                                                   auth_pat_api_user */
    ngx_str_t                       *token;     /* its id, or NULL */
    ngx_str_t                       *prefix;
    ngx_str_t                       *new_token; /* rotate: the successor */
    ngx_str_t                       *new_prefix;
    const char                      *reason;    /* refused: why */
} ngx_http_auth_pat_audit_event_t;


/* "auth_pat_audit on [maxlen=N] | off", into *acf (allocated) */
char *ngx_http_auth_pat_audit_conf(ngx_conf_t *cf,
    ngx_http_auth_pat_audit_conf_t **acf);

/* logs the event and, when acf enables it, appends it to the stream */
void ngx_http_auth_pat_audit(ngx_http_request_t *r,
    ngx_http_auth_pat_audit_conf_t *acf, ngx_http_auth_pat_store_conf_t *scf,
    ngx_http_auth_pat_audit_event_t *ev);


#endif /* _NGX_HTTP_AUTH_PAT_AUDIT_H_INCLUDED_ */
