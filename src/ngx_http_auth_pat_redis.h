
/*
 * The Redis layer: per worker, one pipelined command connection and, for
 * the cache, one subscriber, both nginx peer connections.  A reply, or
 * the connection's reset (a missed deadline resets it, failing every
 * command in flight), completes a command exactly once.  It knows nothing
 * of HTTP, tokens or key names.
 */


#ifndef _NGX_HTTP_AUTH_PAT_REDIS_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include <hiredis/hiredis.h>

#include "ngx_http_auth_pat_redis_tls.h"


/*
 * A command that changes data: refused at once while the node is a
 * replica
 */
#define NGX_HTTP_AUTH_PAT_REDIS_READ    0
#define NGX_HTTP_AUTH_PAT_REDIS_WRITE   1

/*
 * A command of the token API: with replicas=, it goes on a connection of
 * its own (WAIT blocks the connection it is sent on), never on the
 * checks' pipeline
 */
#define NGX_HTTP_AUTH_PAT_REDIS_API     4


/* a node: resolved when the configuration is read, or reported as an IP */
typedef struct {
    ngx_str_t                      text;       /* as configured */
    ngx_str_t                      host;       /* its host: SNI, the name */
    struct sockaddr               *sockaddr;
    socklen_t                      socklen;
} ngx_http_auth_pat_redis_addr_t;


typedef struct ngx_http_auth_pat_redis_conf_s  ngx_http_auth_pat_redis_conf_t;

struct ngx_http_auth_pat_redis_conf_s {
    ngx_http_auth_pat_redis_addr_t  addr;      /* without sentinel= */

    /* sentinel=: the sentinels, and how they are spoken to */
    ngx_http_auth_pat_redis_addr_t *sentinels;
    ngx_uint_t                     nsentinels;
    ngx_str_t                      sentinel_name;
    ngx_http_auth_pat_redis_conf_t *sentinel;

    /* cluster: the seed nodes */
    ngx_uint_t                     cluster;
    ngx_http_auth_pat_redis_addr_t *seeds;
    ngx_uint_t                     nseeds;

    ngx_uint_t                     ssl;
    ngx_http_auth_pat_redis_tls_conf_t  *tls;  /* with ssl */
    ngx_int_t                      db;
    ngx_str_t                      password;
    ngx_str_t                      user;
    ngx_msec_t                     timeout;
    ngx_msec_t                     keepalive;
    ngx_uint_t                     replicas;   /* WAIT for revoke, rotate */
};


typedef struct ngx_http_auth_pat_redis_cmd_s  ngx_http_auth_pat_redis_cmd_t;

/*
 * Called once per command.  rc is NGX_OK with a reply (which may be a
 * Redis error reply), or NGX_ERROR with reply NULL when the connection
 * failed or the deadline passed.  The reply is freed by the caller
 * right after the handler returns.
 */
typedef void (*ngx_http_auth_pat_redis_handler_pt)(void *data,
    redisReply *reply, ngx_int_t rc);

/* a message of the subscriber connection */
typedef void (*ngx_http_auth_pat_redis_message_pt)(void *data, u_char *msg,
    size_t len);

/* the subscriber connection is subscribed (up = 1) or lost it (up = 0) */
typedef void (*ngx_http_auth_pat_redis_state_pt)(void *data, ngx_uint_t up);


typedef struct {
    ngx_str_t                      body;
    u_char                         sha[41];
} ngx_http_auth_pat_redis_script_t;


ngx_int_t ngx_http_auth_pat_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conf_t *rcf,
    ngx_http_auth_pat_redis_script_t *scripts, ngx_uint_t n,
    int probe_argc, const char **probe_argv, size_t *probe_argvlen);
void ngx_http_auth_pat_redis_exit_process(ngx_cycle_t *cycle);

/* a second connection per worker, subscribed to channel */
ngx_int_t ngx_http_auth_pat_redis_subscribe(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conf_t *rcf, ngx_str_t *channel,
    ngx_http_auth_pat_redis_message_pt on_message,
    ngx_http_auth_pat_redis_state_pt on_state, void *data);

/*
 * Reads what the subscriber has received, once per batch of events:
 * 0 while more than a bounded amount is still unread.
 */
ngx_uint_t ngx_http_auth_pat_redis_poll(void);
void ngx_http_auth_pat_redis_poll_now(void);

ngx_int_t ngx_http_auth_pat_redis_script_init(ngx_conf_t *cf,
    ngx_http_auth_pat_redis_script_t *script, const char *body);

/*
 * Sends a command.  Returns NULL when Redis is not available right now
 * (not connected, a write to a replica, or out of memory): the caller
 * fails at once, without waiting.
 */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_redis_command(
    ngx_uint_t flags, ngx_http_auth_pat_redis_handler_pt handler, void *data,
    int argc, const char **argv, const size_t *argvlen);

/*
 * EVALSHA of a script registered at init, a write; on NOSCRIPT the
 * script is sent again with EVAL (which loads it) and the command retried
 * once.  argv holds numkeys, the keys and the arguments (without the sha).
 */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_redis_eval(ngx_uint_t flags,
    ngx_http_auth_pat_redis_handler_pt handler, void *data,
    ngx_uint_t script, int argc, const char **argv, const size_t *argvlen);

/* the connection a command was answered on, as it was then */
typedef struct {
    void                          *conn;
    ngx_uint_t                     serial;     /* its connection's */
} ngx_http_auth_pat_redis_route_t;

/* called by a command's handler: where that command was answered */
void ngx_http_auth_pat_redis_answered_on(
    ngx_http_auth_pat_redis_route_t *route);

/*
 * WAIT replicas T: the count of replicas that have every write sent so
 * far on the connection of route (a write's, with Cluster after its
 * redirects), or, with no route, on the connection of flags (the API's,
 * with replicas=).  NULL when that connection has closed since: its
 * writes can no longer be waited for.  T is three quarters of the
 * timeout; the commands queued behind it get that long more.
 */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_redis_wait(ngx_uint_t flags,
    ngx_uint_t replicas, ngx_http_auth_pat_redis_route_t *route,
    ngx_http_auth_pat_redis_handler_pt handler, void *data);

/* the handler will not be called; the command may still complete */
void ngx_http_auth_pat_redis_cancel(ngx_http_auth_pat_redis_cmd_t *cmd);

/*
 * The links may be trusted now: the command connection is ready, its
 * node a master, and it and the subscriber (if any) answered within
 * keepalive + timeout.
 */
ngx_uint_t ngx_http_auth_pat_redis_live(void);


#endif /* _NGX_HTTP_AUTH_PAT_REDIS_H_INCLUDED_ */
