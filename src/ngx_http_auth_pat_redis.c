
/*
 * The Redis layer's entry points.  Per worker: the command connection
 * (with replicas=, a second one for the token API, whose WAIT would
 * otherwise hold up the checks' pipeline) and, for the cache, the
 * subscriber.  Commands are routed to them here; the connections
 * themselves are redis_conn.c's.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <openssl/sha.h>

#include "ngx_http_auth_pat_redis.h"
#include "ngx_http_auth_pat_redis_conn.h"
#include "ngx_http_auth_pat_redis_resp.h"
#include "ngx_http_auth_pat_redis_sentinel.h"
#include "ngx_http_auth_pat_redis_cluster.h"


#define NGX_HTTP_AUTH_PAT_REDIS_POLL_READS    64


/* per-worker state: the command connection and the subscriber */
static ngx_http_auth_pat_redis_conn_t  *ngx_http_auth_pat_redis_conn;
static ngx_http_auth_pat_redis_conn_t  *ngx_http_auth_pat_redis_sub;
static ngx_http_auth_pat_redis_conn_t  *ngx_http_auth_pat_redis_api;
static ngx_uint_t                       ngx_http_auth_pat_redis_polled;
static ngx_uint_t                       ngx_http_auth_pat_redis_backlog;
static ngx_event_t                      ngx_http_auth_pat_redis_poll_done;

/* the scripts every connection loads; cluster: commands go by slot */
static ngx_http_auth_pat_redis_script_t  *ngx_http_auth_pat_redis_scripts;
static ngx_uint_t                       ngx_http_auth_pat_redis_nscripts;
static ngx_uint_t                       ngx_http_auth_pat_redis_cluster_on;


/* ------------------------------------------------------------- the API */


/* the connection a command goes on; with Cluster, that of its slot */

static ngx_http_auth_pat_redis_conn_t *
ngx_http_auth_pat_redis_lane(ngx_uint_t flags, int argc, const char **argv,
    const size_t *argvlen, ngx_uint_t *slot)
{
    ngx_http_auth_pat_redis_conn_t  *api = ngx_http_auth_pat_redis_api;

    ngx_http_auth_pat_redis_conn_t  *node;

    if (ngx_http_auth_pat_redis_cluster_on) {
        node = ngx_http_auth_pat_redis_cluster_route(argc, argv, argvlen,
                                                     slot);

        /* replicas=: the API's writes and WAIT on a connection apart */
        if (node != NULL && (flags & NGX_HTTP_AUTH_PAT_REDIS_API)
            && node->twin != NULL)
        {
            return node->twin;
        }

        return node;
    }

    if ((flags & NGX_HTTP_AUTH_PAT_REDIS_API) && api != NULL) {

        /* writes go to the node the checks read */
        if (api->locate != NULL
            && !ngx_http_auth_pat_redis_sentinel_with_primary(api))
        {
            return NULL;
        }

        return api;
    }

    return ngx_http_auth_pat_redis_conn;
}


static ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_redis_command_on(
    ngx_http_auth_pat_redis_conn_t *conn, ngx_uint_t slot, ngx_uint_t flags,
    ngx_http_auth_pat_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen);


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_redis_command(ngx_uint_t flags,
    ngx_http_auth_pat_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_uint_t                       slot;
    ngx_http_auth_pat_redis_conn_t  *conn;

    slot = 0;
    conn = ngx_http_auth_pat_redis_lane(flags, argc, argv, argvlen, &slot);

    return ngx_http_auth_pat_redis_command_on(conn, slot, flags, handler,
                                              data, argc, argv, argvlen);
}


static ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_redis_command_on(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_uint_t slot, ngx_uint_t flags,
    ngx_http_auth_pat_redis_handler_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    ngx_http_auth_pat_redis_cmd_t   *cmd;

    if (conn == NULL) {
        return NULL;
    }

    if (conn->state == NGX_HTTP_AUTH_PAT_REDIS_DOWN || conn->c == NULL) {
        /* no connection up: counted as "down", once per command */
        ngx_http_auth_pat_redis_stats_add(conn->stats,
                                      errors[NGX_HTTP_AUTH_PAT_REDIS_ERR_DOWN]);
        return NULL;
    }

    /*
     * The fail-fast refusals below are not counted: the error reply that
     * began them (READONLY, BUSY) was, once, as "error"
     */

    if ((flags & NGX_HTTP_AUTH_PAT_REDIS_WRITE) && conn->replica) {
        /* a replica refuses it anyway: fail fast, send nothing */
        return NULL;
    }

    if (conn->busy_until != 0) {
        if ((ngx_msec_int_t) (conn->busy_until - ngx_current_msec) > 0) {
            return NULL;
        }

        conn->busy_until = 0;
    }

    cmd = ngx_http_auth_pat_redis_send(conn, flags, handler, data, argc,
                                       argv, argvlen);
    if (cmd != NULL) {
        cmd->slot = slot;
        /* redirected, it stays on the API's connections */
        cmd->api = (ngx_http_auth_pat_redis_cluster_on
                    && (flags & NGX_HTTP_AUTH_PAT_REDIS_API)) ? 1 : 0;
    }

    return cmd;
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_redis_eval(ngx_uint_t flags,
    ngx_http_auth_pat_redis_handler_pt handler, void *data,
    ngx_uint_t script, int argc, const char **argv, const size_t *argvlen)
{
    int                              i;
    u_char                          *p;
    size_t                           size;
    size_t                           full_len[NGX_HTTP_AUTH_PAT_REDIS_ARGC];
    const char                      *full[NGX_HTTP_AUTH_PAT_REDIS_ARGC];
    ngx_http_auth_pat_redis_cmd_t   *cmd;

    if (script >= ngx_http_auth_pat_redis_nscripts
        || argc + 2 > NGX_HTTP_AUTH_PAT_REDIS_ARGC)
    {
        return NULL;
    }

    full[0] = "EVALSHA";
    full_len[0] = 7;
    full[1] = (char *) ngx_http_auth_pat_redis_scripts[script].sha;
    full_len[1] = 40;

    /* one block: argv[], argvlen[], then the bytes */
    size = argc * (sizeof(char *) + sizeof(size_t));

    for (i = 0; i < argc; i++) {
        full[i + 2] = argv[i];
        full_len[i + 2] = argvlen[i];
        size += argvlen[i];
    }

    cmd = ngx_http_auth_pat_redis_command(flags|NGX_HTTP_AUTH_PAT_REDIS_WRITE,
                                          handler, data, argc + 2, full,
                                          full_len);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->argv = ngx_alloc(size, cmd->conn->log);
    if (cmd->argv == NULL) {
        /* the command is sent; it only cannot be retried with EVAL */
        return cmd;
    }

    cmd->script = script;
    cmd->argc = argc;
    cmd->argvlen = (size_t *) (cmd->argv + argc);
    p = (u_char *) (cmd->argvlen + argc);

    for (i = 0; i < argc; i++) {
        cmd->argv[i] = (char *) p;
        cmd->argvlen[i] = argvlen[i];
        p = ngx_cpymem(p, argv[i], argvlen[i]);
    }

    return cmd;
}


/*
 * WAIT for the writes sent so far on the connection of flags; it holds
 * that connection for up to the block time, which the deadline of every
 * command behind it allows for
 */

ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_redis_wait(ngx_uint_t flags, ngx_uint_t replicas,
    ngx_http_auth_pat_redis_route_t *route,
    ngx_http_auth_pat_redis_handler_pt handler, void *data)
{
    u_char                           n[NGX_INT_T_LEN], t[NGX_INT_T_LEN];
    size_t                           argvlen[3];
    const char                      *argv[3];
    ngx_http_auth_pat_redis_conn_t  *conn;

    conn = route ? route->conn : NULL;

    if (conn != NULL) {
        /*
         * a WAIT on another connection, or on this one reconnected,
         * counts the replicas of other writes: it would confirm nothing
         */
        if (conn->serial != route->serial
            || conn->state != NGX_HTTP_AUTH_PAT_REDIS_READY)
        {
            return NULL;
        }

    } else if (ngx_http_auth_pat_redis_cluster_on) {
        return NULL;

    } else {
        conn = ngx_http_auth_pat_redis_lane(flags, 0, NULL, NULL, NULL);
        if (conn == NULL) {
            return NULL;
        }
    }

    argv[0] = "WAIT";
    argvlen[0] = 4;
    argv[1] = (char *) n;
    argvlen[1] = ngx_sprintf(n, "%ui", replicas) - n;
    argv[2] = (char *) t;
    argvlen[2] = ngx_sprintf(t, "%M", ngx_http_auth_pat_redis_block_time(conn))
                 - t;

    return ngx_http_auth_pat_redis_command_on(conn, 0,
                                        flags|NGX_HTTP_AUTH_PAT_REDIS_BLOCKS,
                                        handler, data, 3, argv, argvlen);
}


void
ngx_http_auth_pat_redis_answered_on(ngx_http_auth_pat_redis_route_t *route)
{
    ngx_http_auth_pat_redis_cmd_t  *cmd;

    cmd = ngx_http_auth_pat_redis_completing();

    route->conn = cmd ? cmd->conn : NULL;
    route->serial = cmd ? cmd->conn->serial : 0;
}


void
ngx_http_auth_pat_redis_cancel(ngx_http_auth_pat_redis_cmd_t *cmd)
{
    /*
     * the timer stays: a command that never completes still means a
     * hung server, and its timeout resets the connection
     */
    cmd->handler = NULL;
}


ngx_uint_t
ngx_http_auth_pat_redis_live(void)
{
    ngx_http_auth_pat_redis_conn_t  *conn = ngx_http_auth_pat_redis_conn;
    ngx_http_auth_pat_redis_conn_t  *sub = ngx_http_auth_pat_redis_sub;

    if (ngx_http_auth_pat_redis_cluster_on) {
        return ngx_http_auth_pat_redis_cluster_live();
    }

    if (conn == NULL || conn->replica
        || !ngx_http_auth_pat_redis_alive(conn))
    {
        return 0;
    }

    if (sub == NULL) {
        return 1;
    }

    /* with Sentinel, the invalidations of the node the checks read */
    return sub->subscribed && ngx_http_auth_pat_redis_alive(sub)
           && (sub->locate == NULL
               || ngx_http_auth_pat_redis_sentinel_with_primary(sub));
}


/*
 * Reads what the subscriber socket already holds, so that a cache hit is
 * never trusted while an invalidation waits unread.  Once per batch of
 * events is enough: an invalidation that matters to a request of this
 * batch was published before the revoke's 2xx, hence before the request
 * was sent.  The socket itself is asked, not the last epoll report, as
 * the subscriber's event may come later in this batch.  A posted event
 * clears the mark after the batch.
 */

static void
ngx_http_auth_pat_redis_poll_done_handler(ngx_event_t *ev)
{
    ngx_http_auth_pat_redis_polled = 0;
    ngx_http_auth_pat_redis_backlog = 0;
}


ngx_uint_t
ngx_http_auth_pat_redis_poll(void)
{
    ngx_http_auth_pat_redis_conn_t  *sub = ngx_http_auth_pat_redis_sub;

    if (sub == NULL || ngx_http_auth_pat_redis_polled) {
        return !ngx_http_auth_pat_redis_backlog;
    }

    ngx_http_auth_pat_redis_polled = 1;
    ngx_post_event(&ngx_http_auth_pat_redis_poll_done, &ngx_posted_events);

    if (sub->c == NULL || sub->state != NGX_HTTP_AUTH_PAT_REDIS_READY) {
        return 1;
    }

    sub->c->read->ready = 1;
    sub->c->read->available = -1;

    if (ngx_http_auth_pat_redis_read(sub, NGX_HTTP_AUTH_PAT_REDIS_POLL_READS)
        == NGX_AGAIN)
    {
        /* a flood: the rest is read by the event loop first */
        ngx_http_auth_pat_redis_backlog = 1;
        return 0;
    }

    return 1;
}


/* the sync after (re)subscribing reads regardless of the batch */

void
ngx_http_auth_pat_redis_poll_now(void)
{
    ngx_http_auth_pat_redis_polled = 0;
    (void) ngx_http_auth_pat_redis_poll();
}


/* ------------------------------------------------------------ lifecycle */


ngx_int_t
ngx_http_auth_pat_redis_script_init(ngx_conf_t *cf,
    ngx_http_auth_pat_redis_script_t *script, const char *body)
{
    u_char  md[SHA_DIGEST_LENGTH];

    script->body.data = (u_char *) body;
    script->body.len = ngx_strlen(body);

    SHA1(script->body.data, script->body.len, md);
    ngx_hex_dump(script->sha, md, SHA_DIGEST_LENGTH);
    script->sha[40] = '\0';

    return NGX_OK;
}



/* a command connection, with the scripts and probe of its handshake */

static ngx_http_auth_pat_redis_conn_t *
ngx_http_auth_pat_redis_start(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conf_t *rcf, const char *role,
    ngx_http_auth_pat_redis_script_t *scripts, ngx_uint_t n,
    int probe_argc, const char **probe_argv, size_t *probe_argvlen)
{
    ngx_http_auth_pat_redis_conn_t  *conn;

    conn = ngx_http_auth_pat_redis_conn_create(cycle, rcf, role);
    if (conn == NULL) {
        return NULL;
    }

    conn->scripts = scripts;
    conn->nscripts = n;
    conn->probe_argc = probe_argc;
    conn->probe_argv = probe_argv;
    conn->probe_argvlen = probe_argvlen;

    /* the command connection leads: the others go to its node */
    if (rcf->sentinel != NULL
        && ngx_http_auth_pat_redis_sentinel_follow(cycle, conn,
                                                  ngx_strcmp(role, "cmd") == 0)
           != NGX_OK)
    {
        return NULL;
    }

    ngx_http_auth_pat_redis_connect(conn);

    return conn;
}


ngx_int_t
ngx_http_auth_pat_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conf_t *rcf,
    ngx_http_auth_pat_redis_script_t *scripts, ngx_uint_t n,
    int probe_argc, const char **probe_argv, size_t *probe_argvlen)
{
    ngx_http_auth_pat_redis_scripts = scripts;
    ngx_http_auth_pat_redis_nscripts = n;

    if (rcf->cluster) {
        /* a connection per master; the probe's key may be on any */
        ngx_http_auth_pat_redis_cluster_on = 1;
        return ngx_http_auth_pat_redis_cluster_init(cycle, rcf, scripts, n);
    }

    ngx_http_auth_pat_redis_conn = ngx_http_auth_pat_redis_start(cycle, rcf,
                                       "cmd", scripts, n, probe_argc,
                                       probe_argv, probe_argvlen);
    if (ngx_http_auth_pat_redis_conn == NULL) {
        return NGX_ERROR;
    }

    if (rcf->replicas == 0) {
        return NGX_OK;
    }

    /* the API's writes, and their WAIT, away from the checks' pipeline */
    ngx_http_auth_pat_redis_api = ngx_http_auth_pat_redis_start(cycle, rcf,
                                      "api", scripts, n, probe_argc,
                                      probe_argv, probe_argvlen);

    return ngx_http_auth_pat_redis_api ? NGX_OK : NGX_ERROR;
}


ngx_int_t
ngx_http_auth_pat_redis_subscribe(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conf_t *rcf, ngx_str_t *channel,
    ngx_http_auth_pat_redis_message_pt on_message,
    ngx_http_auth_pat_redis_state_pt on_state, void *data)
{
    ngx_http_auth_pat_redis_conn_t  *conn;

    conn = ngx_http_auth_pat_redis_conn_create(cycle, rcf, "sub");
    if (conn == NULL) {
        return NGX_ERROR;
    }

    ngx_http_auth_pat_redis_poll_done.handler =
                                  ngx_http_auth_pat_redis_poll_done_handler;
    ngx_http_auth_pat_redis_poll_done.log = cycle->log;

    conn->subscriber = 1;
    conn->channel = *channel;
    conn->on_message = on_message;
    conn->on_state = on_state;
    conn->sub_data = data;

    ngx_http_auth_pat_redis_sub = conn;

    if (rcf->sentinel != NULL
        && ngx_http_auth_pat_redis_sentinel_follow(cycle, conn, 0) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (rcf->cluster) {
        ngx_http_auth_pat_redis_cluster_follow(conn);
    }

    ngx_http_auth_pat_redis_connect(conn);

    return NGX_OK;
}



void
ngx_http_auth_pat_redis_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_auth_pat_redis_poll_done.posted) {
        ngx_delete_posted_event(&ngx_http_auth_pat_redis_poll_done);
    }

    if (ngx_http_auth_pat_redis_sub != NULL) {
        ngx_http_auth_pat_redis_conn_free(ngx_http_auth_pat_redis_sub);
        ngx_http_auth_pat_redis_sub = NULL;
    }

    if (ngx_http_auth_pat_redis_api != NULL) {
        ngx_http_auth_pat_redis_conn_free(ngx_http_auth_pat_redis_api);
        ngx_http_auth_pat_redis_api = NULL;
    }

    if (ngx_http_auth_pat_redis_conn != NULL) {
        ngx_http_auth_pat_redis_conn_free(ngx_http_auth_pat_redis_conn);
        ngx_http_auth_pat_redis_conn = NULL;
    }

    ngx_http_auth_pat_redis_sentinel_exit();
    ngx_http_auth_pat_redis_cluster_exit();

    ngx_http_auth_pat_redis_resp_drain();
}
