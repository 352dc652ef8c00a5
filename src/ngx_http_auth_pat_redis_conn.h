
/*
 * One connection to a Redis node or a sentinel, owned by nginx: its
 * socket, handshake, pipelined commands and liveness.  Internal to the
 * Redis layer: redis.c routes the module's commands to such
 * connections, redis_sentinel.c finds the master they connect to.
 */


#ifndef _NGX_HTTP_AUTH_PAT_REDIS_CONN_H_INCLUDED_
#define _NGX_HTTP_AUTH_PAT_REDIS_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_auth_pat_redis.h"
#include "ngx_http_auth_pat_redis_stats.h"


#define NGX_HTTP_AUTH_PAT_REDIS_ARGC          64

/* a command of the handshake: written ahead of the held ones */
#define NGX_HTTP_AUTH_PAT_REDIS_INTERNAL      2

/* a command that holds the connection on the server (WAIT) */
#define NGX_HTTP_AUTH_PAT_REDIS_BLOCKS        8


/* the classes of error replies, each logged at most once a minute */

enum {
    NGX_HTTP_AUTH_PAT_REDIS_NOSCRIPT = 0,
    NGX_HTTP_AUTH_PAT_REDIS_NOPERM,
    NGX_HTTP_AUTH_PAT_REDIS_BUSY,
    NGX_HTTP_AUTH_PAT_REDIS_OOM,
    NGX_HTTP_AUTH_PAT_REDIS_MISCONF,
    NGX_HTTP_AUTH_PAT_REDIS_WRONGTYPE,
    NGX_HTTP_AUTH_PAT_REDIS_OTHER,
    NGX_HTTP_AUTH_PAT_REDIS_NCLASSES
};


typedef enum {
    NGX_HTTP_AUTH_PAT_REDIS_DOWN = 0,
    NGX_HTTP_AUTH_PAT_REDIS_HANDSHAKE,
    NGX_HTTP_AUTH_PAT_REDIS_READY
} ngx_http_auth_pat_redis_state_e;


typedef struct ngx_http_auth_pat_redis_conn_s  ngx_http_auth_pat_redis_conn_t;

/*
 * What a connection that moves from one node to the next (a sentinel, a
 * cluster seed) has logged of each: a failed connect once per 10 s, a
 * refused setup once, per node, not per connection
 */
typedef struct {
    ngx_msec_t                          connect_logged;
    ngx_uint_t                          refused_logged;
} ngx_http_auth_pat_redis_logged_t;

/*
 * Asked before each connect for the node's address (Sentinel): NGX_OK,
 * conn->addr is set; NGX_AGAIN, it calls connect() again once known, or
 * schedule() if it cannot be known.
 */
typedef ngx_int_t (*ngx_http_auth_pat_redis_locate_pt)(
    ngx_http_auth_pat_redis_conn_t *conn);

struct ngx_http_auth_pat_redis_conn_s {
    ngx_http_auth_pat_redis_conf_t     *conf;
    ngx_http_auth_pat_redis_addr_t     *addr;      /* the node now */
    const char                         *kind;      /* for the logs */
    ngx_peer_connection_t               peer;
    ngx_log_t                           peer_log;
    ngx_connection_t                   *c;
    redisReader                        *reader;
    ngx_log_t                          *log;

    ngx_http_auth_pat_redis_state_e     state;
    ngx_uint_t                          serial;    /* one per connection */
    ngx_uint_t                          failures;
    ngx_uint_t                          handshake_pending;
    ngx_msec_t                          last_reply;
    ngx_msec_t                          connect_logged;   /* when */
    ngx_http_auth_pat_redis_stats_t    *stats;     /* of the address */
    ngx_uint_t                          attempts;  /* connects so far */
    ngx_msec_t        error_logged[NGX_HTTP_AUTH_PAT_REDIS_NCLASSES];

    /* the output not yet written */
    u_char                             *out;
    size_t                              out_pos;
    size_t                              out_len;
    size_t                              out_size;

    ngx_queue_t                         sent;      /* awaiting replies */
    ngx_queue_t                         held;      /* until the handshake */
    ngx_queue_t                         free_cmds;
    ngx_uint_t                          nfree;

    ngx_event_t                         reconnect;
    ngx_event_t                         keepalive;

    ngx_http_auth_pat_redis_script_t   *scripts;
    ngx_uint_t                          nscripts;
    int                                 probe_argc;
    const char                        **probe_argv;
    size_t                             *probe_argvlen;

    u_char                              name[NGX_INT64_LEN + 16];
    size_t                              name_len;

    /* after a BUSY reply, commands fail unsent until then */
    ngx_msec_t                          busy_until;

    /* how long the blocking commands in flight may hold the connection */
    ngx_msec_t                          blocked;

#if (NGX_SSL)
    /* c->log under TLS, and the session for the next handshake */
    ngx_http_auth_pat_redis_tls_log_t   tls_log;
    ngx_ssl_session_t                  *ssl_session;
#endif

    /* the subscriber */
    ngx_str_t                           channel;
    ngx_http_auth_pat_redis_message_pt  on_message;
    ngx_http_auth_pat_redis_state_pt    on_state;
    void                               *sub_data;

    unsigned                            subscriber:1;
    unsigned                            subscribed:1;
    unsigned                            replica:1;
    unsigned                            was_ready:1;
    unsigned                            down_logged:1;
    unsigned                            refused_logged:1;
    unsigned                            exiting:1;
    unsigned                            tls_pending:1;  /* not yet up */

    /* a sentinel or a cluster seed: no scripts, no database, no ROLE */
    unsigned                            bare:1;
    /* each command keeps its encoding, to be sent again elsewhere */
    unsigned                            keep_wire:1;
    /* connected only when asked to, never again by itself */
    unsigned                            on_demand:1;
    /* the located address is for the next connect only */
    unsigned                            located:1;

    ngx_http_auth_pat_redis_locate_pt   locate;
    void                               *locate_data;
    const char                         *locator;   /* for the logs */

    /*
     * A redirect (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) to a command of
     * keep_wire: NGX_OK, the hook took the command (sent it elsewhere or
     * will); otherwise the caller gets the error reply
     */
    ngx_int_t                         (*redirect)(
        ngx_http_auth_pat_redis_conn_t *conn,
        ngx_http_auth_pat_redis_cmd_t *cmd, redisReply *reply);
    void                               *redirect_data;

    /* Cluster with replicas=: the node's connection for the token API */
    ngx_http_auth_pat_redis_conn_t     *twin;

    /* an address Sentinel reported, and its storage */
    ngx_http_auth_pat_redis_addr_t      found;
    ngx_sockaddr_t                      found_sockaddr;
    u_char                              found_text[NGX_SOCKADDR_STRLEN];
    u_char                              found_host[NGX_SOCKADDR_STRLEN];
};


struct ngx_http_auth_pat_redis_cmd_s {
    ngx_http_auth_pat_redis_handler_pt  handler;
    void                               *data;
    ngx_http_auth_pat_redis_conn_t     *conn;
    ngx_event_t                         timer;
    ngx_queue_t                         queue;

    /* EVALSHA: a copy of the arguments, to retry with EVAL */
    ngx_uint_t                          script;
    int                                 argc;
    const char                        **argv;
    size_t                             *argvlen;

    /* the RESP encoding of a held command */
    u_char                             *held;
    size_t                              held_len;

    u_char                              verb[16];  /* for the logs */
    size_t                              verb_len;

    ngx_msec_t                          block;     /* it may hold the line */

    /* keep_wire: the encoding, the one deadline, redirects so far */
    u_char                             *wire;
    size_t                              wire_len;
    ngx_msec_t                          deadline;
    ngx_msec_t                          hang_at;   /* sent + timeout */
    ngx_msec_t                          sent_at;
    ngx_uint_t                          redirects;
    ngx_uint_t                          retries;
    ngx_uint_t                          slot;

    unsigned                            write:1;
    unsigned                            internal:1;  /* ours, not a caller's */
    unsigned                            counted:1;   /* block in blocked */
    unsigned                            retried:1;
    unsigned                            api:1;       /* on a twin */
};


ngx_http_auth_pat_redis_conn_t *ngx_http_auth_pat_redis_conn_create(
    ngx_cycle_t *cycle, ngx_http_auth_pat_redis_conf_t *rcf,
    const char *role);
void ngx_http_auth_pat_redis_conn_free(ngx_http_auth_pat_redis_conn_t *conn);

/* connects now; a failure schedules the next attempt */
void ngx_http_auth_pat_redis_connect(ngx_http_auth_pat_redis_conn_t *conn);

/* closes the connection: every command in flight fails, held ones too */
void ngx_http_auth_pat_redis_reset(ngx_http_auth_pat_redis_conn_t *conn);

/* the next attempt, after a backoff that grows with the failures */
void ngx_http_auth_pat_redis_schedule(ngx_http_auth_pat_redis_conn_t *conn);

/* an IP and a port as a sockaddr; a hostname or 0.0.0.0 is NGX_DECLINED */
ngx_int_t ngx_http_auth_pat_redis_ip(u_char *ip, size_t len, ngx_int_t port,
    ngx_sockaddr_t *sa, socklen_t *salen);

/* conn's address is sa (a node Sentinel or Cluster named), for its
   next connect */
void ngx_http_auth_pat_redis_found(ngx_http_auth_pat_redis_conn_t *f,
    struct sockaddr *sa, socklen_t len);

/* conn leaves the node of from (NULL: none) for that of to (NULL: new) */
void ngx_http_auth_pat_redis_log_move(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_logged_t *from,
    ngx_http_auth_pat_redis_logged_t *to);

/* closes the connection (if any) and connects again at once */
void ngx_http_auth_pat_redis_restart(ngx_http_auth_pat_redis_conn_t *conn);

/* a failed attempt, logged once per 10 s (why NULL: connect() failed) */
void ngx_http_auth_pat_redis_connect_failed(
    ngx_http_auth_pat_redis_conn_t *conn, ngx_err_t err, const char *why);

/*
 * cmd (of keep_wire) goes out again on conn, ASKING first if asking:
 * NGX_ERROR when conn cannot take it now (not ready, or out of memory)
 */
ngx_int_t ngx_http_auth_pat_redis_resend(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_cmd_t *cmd, ngx_uint_t asking);

/* the command's one completion (reply NULL: it failed) */
void ngx_http_auth_pat_redis_complete(ngx_http_auth_pat_redis_cmd_t *cmd,
    redisReply *reply);

/* the command whose handler runs now, if any */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_redis_completing(void);
void ngx_http_auth_pat_redis_cmd_free(ngx_http_auth_pat_redis_cmd_t *cmd);

/* NULL when not connected (or out of memory) */
ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_redis_send(
    ngx_http_auth_pat_redis_conn_t *conn, ngx_uint_t flags,
    ngx_http_auth_pat_redis_handler_pt handler, void *data,
    int argc, const char **argv, const size_t *argvlen);

/*
 * Reads until the socket is drained (NGX_OK), the connection goes
 * (NGX_ERROR), or max reads were made with data left (NGX_AGAIN).
 */
ngx_int_t ngx_http_auth_pat_redis_read(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_uint_t max);

/* ready, and answered within keepalive + timeout */
ngx_uint_t ngx_http_auth_pat_redis_alive(ngx_http_auth_pat_redis_conn_t *conn);

/* how long a blocking command (WAIT) may hold the connection */
ngx_msec_t ngx_http_auth_pat_redis_block_time(
    ngx_http_auth_pat_redis_conn_t *conn);


#endif /* _NGX_HTTP_AUTH_PAT_REDIS_CONN_H_INCLUDED_ */
