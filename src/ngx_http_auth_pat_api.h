
/*
 * The token admin API (auth_pat_api).  ngx_http_auth_pat_api.c routes a
 * request, identifies the caller and reads and validates its input;
 * ngx_http_auth_pat_api_tokens.c runs the flows: create, list, revoke
 * and rotate, each a chain of Redis commands.
 */


#ifndef _NGX_HTTP_AUTH_PAT_API_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_API_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_auth_pat_module.h"
#include "ngx_http_auth_pat_store.h"
#include "ngx_http_auth_pat_parse.h"


typedef struct ngx_http_auth_pat_api_s  ngx_http_auth_pat_api_t;

/* a flow's next step, given the reply to the command it waited for */
typedef void (*ngx_http_auth_pat_api_step_pt)(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply);


struct ngx_http_auth_pat_api_s {
    ngx_http_request_t              *request;
    ngx_http_auth_pat_store_conf_t  *store;
    ngx_http_auth_pat_store_cmd_t   *cmd;        /* in flight */
    ngx_http_auth_pat_api_step_pt    step;       /* what its reply goes to */
    ngx_http_auth_pat_api_step_pt    withdrawn;  /* after a withdrawal */
    ngx_http_auth_pat_api_step_pt    replicated; /* after the WAIT */

    /* replicas=: where the validation records' writes were answered */
    ngx_http_auth_pat_store_route_t  route_old;
    ngx_http_auth_pat_store_route_t  route_new;
    ngx_http_auth_pat_store_route_t *replicate_next;  /* a second WAIT */
    ngx_http_auth_pat_route_e        route;
    ngx_int_t                        route_rc;   /* of the route parse */
    unsigned                         self:1;     /* /self, /self/rotate */
    unsigned                         bearer:1;   /* caller: a token's owner */
    unsigned                         own:1;      /* the route: that token */

    /* a bearer caller: its token, which bounds what it may issue */
    ngx_http_auth_pat_identity_t    *caller;

    ngx_str_t                        user;
    ngx_str_t                        id;         /* of the route */
    json_t                          *body;
    int64_t                          now;

    /* revoke and rotate: the token named by the route */
    json_t                          *old;
    u_char                           old_hex[PAT_DIGEST_HEX_LEN];
    ngx_str_t                       *old_prefix; /* a rotation's, audited */
    unsigned                         rotation_audited:1;
    u_char                          *withdrawing;  /* the hex in hand */

    /* create and rotate: the token being issued */
    ngx_http_auth_pat_store_token_t  issue;
    ngx_str_t                        record;
    ngx_uint_t                       issued;     /* its metadata exists */
    u_char                           token[PAT_TOKEN_MAX_LEN + 1];
    size_t                           token_len;
    u_char                           hex[PAT_DIGEST_HEX_LEN];
    u_char                           new_id[PAT_UUID_LEN + 1];

    /* list */
    ngx_http_auth_pat_list_query_t   query;
    ngx_uint_t                       total;
    ngx_uint_t                       facets[4];  /* by status */
};


ngx_int_t ngx_http_auth_pat_api_handler(ngx_http_request_t *r);

/* the log phase: the metrics of the API's and introspection's requests */
ngx_int_t ngx_http_auth_pat_api_log_handler(ngx_http_request_t *r);


/* the flows, in ngx_http_auth_pat_api_tokens.c */

/*
 * The body's "scopes" into api->issue.scopes: for a create, checked
 * against auth_pat_scopes_allowed; for a rotation, a subset of the old
 * token's (api->old), which absent means.  A bearer caller may grant
 * only scopes its own token holds, unless it rotates that token itself.
 * NGX_OK, or the request is answered (400, 403, 422).
 */
ngx_int_t ngx_http_auth_pat_api_scopes(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, ngx_uint_t rotation);

/* the scope may be asked for here (auth_pat_scopes_allowed) */
ngx_uint_t ngx_http_auth_pat_api_scope_allowed(
    ngx_http_auth_pat_loc_conf_t *plcf, u_char *scope, size_t len);

/*
 * The body's expiresAt, or dflt, no later than limit (ms; 0: no limit),
 * the latest a bearer caller may issue: a default is cut to it, a later
 * (or null) expiresAt is 403.  NGX_OK, or the request is answered.
 */
ngx_int_t ngx_http_auth_pat_api_expires(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, int64_t dflt, int64_t limit);

/* the audit trail's "refused": an escalation attempt, and why */
void ngx_http_auth_pat_api_audit_refused(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, const char *reason);

void ngx_http_auth_pat_api_create(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api);
void ngx_http_auth_pat_api_list(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api);
void ngx_http_auth_pat_api_revoke(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api);
void ngx_http_auth_pat_api_get(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api);
void ngx_http_auth_pat_api_rotate(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api);


#endif /* _NGX_HTTP_AUTH_PAT_API_H_INCLUDED_ */
