
/*
 * Bodies in and JSON out: the request body as one string, buffers that
 * are wiped when the request goes, the module's answers and errors, the
 * one table of the check's refusals, the public token object, and the
 * filters that give nginx's own error pages a JSON body.
 */


#ifndef _NGX_HTTP_AUTH_PAT_JSON_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_auth_pat_module.h"


typedef struct {
    ngx_uint_t                     status;
    const char                    *code;
    const char                    *message;
    size_t                         challenge;  /* offset in the loc conf */
} ngx_http_auth_pat_refusal_t;


ngx_int_t ngx_http_auth_pat_json_init(ngx_conf_t *cf);

/* what a verdict other than VALID answers */
const ngx_http_auth_pat_refusal_t *ngx_http_auth_pat_refusal(
    ngx_http_auth_pat_verdict_e verdict);

/* its WWW-Authenticate value, or NULL */
ngx_str_t *ngx_http_auth_pat_refusal_challenge(ngx_http_request_t *r,
    const ngx_http_auth_pat_refusal_t *rf);

/* answers a refusal with its JSON body; for ngx_http_finalize_request() */
ngx_int_t ngx_http_auth_pat_send_refusal(ngx_http_request_t *r,
    ngx_http_auth_pat_verdict_e verdict);

/*
 * obj, serialized into a buffer of pool that is wiped with the pool; obj
 * is released
 */
ngx_buf_t *ngx_http_auth_pat_json_buf(ngx_pool_t *pool, json_t *obj);

/* a response header; NULL when out of memory */
ngx_table_elt_t *ngx_http_auth_pat_push_header(ngx_http_request_t *r,
    const char *key, ngx_str_t *value);

/*
 * The status, obj as the body (released), no-store, and WWW-Authenticate
 * when given; returns what ngx_http_finalize_request() takes.
 */
ngx_int_t ngx_http_auth_pat_send_json(ngx_http_request_t *r,
    ngx_uint_t status, json_t *obj, ngx_str_t *www_authenticate);

/* a 200 whose JSON body is len bytes at data, which outlive the request */
ngx_int_t ngx_http_auth_pat_send_static(ngx_http_request_t *r,
    const u_char *data, size_t len);

/* {"error": code, "message": text} */
ngx_int_t ngx_http_auth_pat_send_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message,
    ngx_str_t *www_authenticate);

/* the two above, ending the request */
void ngx_http_auth_pat_finalize_json(ngx_http_request_t *r, ngx_uint_t status,
    json_t *obj);

/*
 * A NULL code or message is the status's own; a 401 carries the
 * location's challenge.
 */
void ngx_http_auth_pat_finalize_error(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);

/* input refused: 400 invalid_request, or 422 validation_error */
void ngx_http_auth_pat_finalize_invalid(ngx_http_request_t *r,
    ngx_uint_t status, const char *message);

/*
 * {"data": t}, with "token": plaintext added when token is not NULL;
 * t is released.  Only this answer carries a plaintext.
 */
void ngx_http_auth_pat_finalize_data(ngx_http_request_t *r,
    ngx_uint_t status, json_t *t, ngx_str_t *token);

/*
 * The request body that nginx has read, as one string in the pool
 * (empty when there is none); NGX_ERROR when out of memory or a body
 * file cannot be read
 */
ngx_int_t ngx_http_auth_pat_read_body(ngx_http_request_t *r,
    ngx_str_t *body);

/* a time field of a metadata record, in ms; 0 for null or absent */
int64_t ngx_http_auth_pat_json_ms(json_t *rec, const char *key);

/* the public token object of a metadata record */
json_t *ngx_http_auth_pat_token_object(json_t *rec, int64_t now);


#endif /* _NGX_HTTP_AUTH_PAT_JSON_H_INCLUDED_ */
