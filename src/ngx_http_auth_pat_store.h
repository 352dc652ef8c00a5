
/*
 * The token data model on Redis: key names, Lua scripts, and one
 * function per command.  The record layout is documented in
 * ngx_http_auth_pat_store.c.  It knows nothing of HTTP or the cache.
 *
 * Every command function returns NULL when Redis is not available right
 * now (see ngx_http_auth_pat_redis_command()); the caller fails at once.
 * A NULL handler sends the command without waiting for its reply.
 */


#ifndef _NGX_HTTP_AUTH_PAT_STORE_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_STORE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <jansson.h>

#include "ngx_http_auth_pat_redis.h"


#define NGX_HTTP_AUTH_PAT_NS_MAX         64

#define NGX_HTTP_AUTH_PAT_RETENTION      (30 * 86400 * 1000LL)
#define NGX_HTTP_AUTH_PAT_INACTIVE_MAX   10000


typedef struct ngx_http_auth_pat_store_conf_s  ngx_http_auth_pat_store_conf_t;

struct ngx_http_auth_pat_store_conf_s {
    ngx_str_t                      ns;         /* key namespace */
    ngx_msec_t                     claim_ttl;  /* a rotation claim's life */
    ngx_uint_t                     replicas;   /* replicas=: WAIT for N */
    ngx_uint_t                     cluster;    /* the feed's names tagged */
};


/* a token being issued, as its metadata record and list entry hold it */
typedef struct {
    ngx_str_t                      id;
    ngx_str_t                      name;
    ngx_str_t                      prefix;     /* its first characters */
    ngx_str_t                      hex;        /* the digest, in hex */
    ngx_str_t                     *rotated_from;
    json_t                        *scopes;     /* sorted strings, or NULL */
    int64_t                        created;
    int64_t                        expires;    /* 0: never */
} ngx_http_auth_pat_store_token_t;


typedef ngx_http_auth_pat_redis_cmd_t  ngx_http_auth_pat_store_cmd_t;
typedef ngx_http_auth_pat_redis_handler_pt  ngx_http_auth_pat_store_pt;


ngx_int_t ngx_http_auth_pat_store_init_conf(ngx_conf_t *cf,
    ngx_http_auth_pat_store_conf_t *scf, ngx_http_auth_pat_redis_conf_t *rcf);
ngx_int_t ngx_http_auth_pat_store_init_process(ngx_cycle_t *cycle,
    ngx_http_auth_pat_store_conf_t *scf,
    ngx_http_auth_pat_redis_conf_t *rcf);
void ngx_http_auth_pat_store_exit_process(ngx_cycle_t *cycle);

/* the names of the invalidation feed */
typedef struct {
    ngx_str_t                      channel;
    ngx_str_t                      seq;        /* its counter */
    ngx_str_t                      epoch;      /* the dataset's name */
} ngx_http_auth_pat_inval_names_t;

ngx_int_t ngx_http_auth_pat_store_inval_names(ngx_pool_t *pool,
    ngx_http_auth_pat_store_conf_t *scf, ngx_http_auth_pat_inval_names_t *n);


/* ------------------------------------------------------ access check */

/* one round trip: HMGET of the validation record's u, i, n, e, s, c */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_lookup(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, u_char *hex,
    ngx_http_auth_pat_store_pt handler, void *data);

/* reports a token's use (lastUsedAt), without waiting */
void ngx_http_auth_pat_store_touch(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *id, int64_t now);


/* ------------------------------------------------------- admin API */

/* the metadata record of a new token, as JSON in pool */
ngx_int_t ngx_http_auth_pat_store_record(ngx_pool_t *pool,
    ngx_http_auth_pat_store_token_t *t, ngx_str_t *record);

/* create: the metadata (checking max_tokens), in the user slot: 1 | 0 */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_create(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, ngx_str_t *user,
    ngx_http_auth_pat_store_token_t *t, ngx_str_t *record,
    ngx_uint_t max_tokens, ngx_http_auth_pat_store_pt handler, void *data);

/* the validation record of a new token, with PEXPIREAT */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_activate(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, ngx_str_t *user,
    ngx_http_auth_pat_store_token_t *t, ngx_http_auth_pat_store_pt handler,
    void *data);

/* the metadata record of one token, or nil */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_get(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *id, ngx_http_auth_pat_store_pt handler, void *data);

/* deletes the validation record: the token stops working here */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_deactivate(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, u_char *hex,
    ngx_http_auth_pat_store_pt handler, void *data);

/* publishes the invalidation of a digest to every nginx's cache */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_invalidate(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, u_char *hex,
    ngx_http_auth_pat_store_pt handler, void *data);

/* the same, uncounted ("0:DIGEST"), for when the script is refused */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_publish(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, u_char *hex,
    ngx_http_auth_pat_store_pt handler, void *data);

/* marks the metadata revoked (idempotent); the record, or nil */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_revoke(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *id, int64_t now, ngx_http_auth_pat_store_pt handler,
    void *data);

/* claims a token for rotation: {0} unknown, {409, why}, {1, record} */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_claim(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *id, int64_t now, ngx_http_auth_pat_store_pt handler,
    void *data);

/* revokes the claimed token old_id and adds its successor: 1, or 0 */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_rotate(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *old_id, int64_t claim, ngx_http_auth_pat_store_token_t *t,
    ngx_str_t *record, ngx_http_auth_pat_store_pt handler, void *data);

/*
 * the user's list index, {id, "c:e:l:r:name", ...}, after a retention
 * purge
 */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_list_index(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, ngx_str_t *user,
    int64_t now, ngx_http_auth_pat_store_pt handler, void *data);

/*
 * a page by createdAt (status 0: any, else ngx_http_auth_pat_status_e):
 * {total, active, expired, revoked, record...}
 */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_list_page(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, ngx_str_t *user,
    int64_t now, ngx_uint_t status, ngx_uint_t offset, ngx_uint_t limit,
    ngx_uint_t desc, ngx_http_auth_pat_store_pt handler, void *data);

/* the metadata records of n tokens, nil for any gone meanwhile */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_get_many(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *ids, ngx_uint_t n, ngx_http_auth_pat_store_pt handler,
    void *data);

/*
 * appends an event, n field-value pairs, to the stream NS{audit},
 * trimmed to about maxlen entries; on the checks' connection, never
 * behind a WAIT
 */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_audit(
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, ngx_uint_t maxlen,
    ngx_str_t *fields, ngx_uint_t n, ngx_http_auth_pat_store_pt handler,
    void *data);

/* where a write was answered: what a WAIT must be sent after */
typedef ngx_http_auth_pat_redis_route_t  ngx_http_auth_pat_store_route_t;

/* called by a command's handler: where it was answered */
void ngx_http_auth_pat_store_answered_on(
    ngx_http_auth_pat_store_route_t *route);

/*
 * replicas=N: "WAIT N", answered with the count that confirmed it, for
 * the writes of the API so far on the connection of route (with Cluster,
 * one shard's); NULL when that connection is gone
 */
ngx_http_auth_pat_store_cmd_t *ngx_http_auth_pat_store_replicate(
    ngx_http_auth_pat_store_conf_t *scf, ngx_http_auth_pat_store_route_t *route,
    ngx_http_auth_pat_store_pt handler, void *data);

/* the handler will not be called; the command may still complete */
void ngx_http_auth_pat_store_cancel(ngx_http_auth_pat_store_cmd_t *cmd);


#endif /* _NGX_HTTP_AUTH_PAT_STORE_H_INCLUDED_ */
