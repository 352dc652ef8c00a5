
/*
 * Connections to Redis owned by nginx: ngx_event_connect_peer(), reads
 * and writes through c->recv and c->send, nginx timers for connect,
 * handshake and every command.  RESP is encoded here and parsed by
 * hiredis' reader alone (pure parsing; hiredis is linked statically,
 * its symbols hidden, so that another module's hiredis cannot clash).
 *
 * Commands are pipelined: those of every request handled in one batch
 * of events go out in one write, from a posted write event.  Replies
 * come in order, so the commands written wait in a FIFO.
 *
 * Each (re)connect runs a handshake (AUTH, SELECT, CLIENT SETNAME,
 * SCRIPT LOAD, a probe command and ROLE; SUBSCRIBE on the subscriber)
 * before the connection serves requests; commands that arrive meanwhile
 * are held in nginx, so that none runs as another user or in another
 * database if AUTH or SELECT is refused.  Failures back off
 * exponentially, with jitter, up to 2 s.
 *
 * Liveness: every keepalive, the command connection asks ROLE and the
 * subscriber PINGs, each with the command deadline; a missed reply
 * resets the connection, and a link that has not answered within
 * keepalive + timeout is not trusted.  Error replies are handled by
 * class: READONLY marks the node a replica (writes then fail at once
 * until ROLE says master), LOADING and lost authentication reset the
 * connection, BUSY (a script that runs long) fails commands unsent for
 * 100 ms, the rest fail only their command.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include "ngx_http_auth_pat_redis_conn.h"
#include "ngx_http_auth_pat_redis_resp.h"


#define NGX_HTTP_AUTH_PAT_REDIS_BACKOFF_MIN   100
#define NGX_HTTP_AUTH_PAT_REDIS_BACKOFF_MAX   2000
#define NGX_HTTP_AUTH_PAT_REDIS_BUSY_BACKOFF  100     /* ms */
#define NGX_HTTP_AUTH_PAT_REDIS_FREE_CMDS     1024
#define NGX_HTTP_AUTH_PAT_REDIS_READ_SIZE     16384
#define NGX_HTTP_AUTH_PAT_REDIS_LOG_EVERY     10000   /* ms */
#define NGX_HTTP_AUTH_PAT_REDIS_ERROR_EVERY   60000   /* ms */


static ngx_int_t ngx_http_auth_pat_redis_append(
    ngx_http_auth_pat_redis_conn_t *conn, ngx_http_auth_pat_redis_cmd_t *cmd,
    int argc, const char **argv, const size_t *argvlen);
static void ngx_http_auth_pat_redis_handshake_done(void *data,
    redisReply *reply, ngx_int_t rc);
static void ngx_http_auth_pat_redis_read_handler(ngx_event_t *rev);
static void ngx_http_auth_pat_redis_closed(
    ngx_http_auth_pat_redis_conn_t *conn, ngx_uint_t eof);
static void ngx_http_auth_pat_redis_write_handler(ngx_event_t *wev);
#if (NGX_SSL)
static void ngx_http_auth_pat_redis_tls_begin(
    ngx_http_auth_pat_redis_conn_t *conn);
static void ngx_http_auth_pat_redis_tls_done(ngx_connection_t *c);
static void ngx_http_auth_pat_redis_tls_save(ngx_connection_t *c);
static void ngx_http_auth_pat_redis_tls_read_handler(ngx_event_t *rev);
#endif




/* ------------------------------------------------------------- output */


static u_char *
ngx_http_auth_pat_redis_header(u_char *p, u_char type, size_t n)
{
    u_char   digits[NGX_SIZE_T_LEN];
    u_char  *d;

    d = digits + NGX_SIZE_T_LEN;

    do {
        *--d = (u_char) ('0' + n % 10);
        n /= 10;
    } while (n);

    *p++ = type;
    p = ngx_cpymem(p, d, digits + NGX_SIZE_T_LEN - d);
    *p++ = '\r';
    *p++ = '\n';

    return p;
}


static size_t
ngx_http_auth_pat_redis_encoded_len(int argc, const size_t *argvlen)
{
    int     i;
    size_t  len;

    len = 1 + NGX_SIZE_T_LEN + 2;

    for (i = 0; i < argc; i++) {
        len += 1 + NGX_SIZE_T_LEN + 2 + argvlen[i] + 2;
    }

    return len;
}


static u_char *
ngx_http_auth_pat_redis_encode(u_char *p, int argc, const char **argv,
    const size_t *argvlen)
{
    int  i;

    p = ngx_http_auth_pat_redis_header(p, '*', argc);

    for (i = 0; i < argc; i++) {
        p = ngx_http_auth_pat_redis_header(p, '$', argvlen[i]);
        p = ngx_cpymem(p, argv[i], argvlen[i]);
        *p++ = '\r';
        *p++ = '\n';
    }

    return p;
}


/* room for len more bytes of output */

static ngx_int_t
ngx_http_auth_pat_redis_reserve(ngx_http_auth_pat_redis_conn_t *conn,
    size_t len)
{
    u_char  *p;
    size_t   size;

    if (conn->out_pos == conn->out_len) {
        conn->out_pos = 0;
        conn->out_len = 0;
    }

    if (conn->out_len + len <= conn->out_size) {
        return NGX_OK;
    }

    if (conn->out_len - conn->out_pos + len <= conn->out_size) {
        /* the part already written makes room */
        ngx_memmove(conn->out, conn->out + conn->out_pos,
                    conn->out_len - conn->out_pos);
        conn->out_len -= conn->out_pos;
        conn->out_pos = 0;
        return NGX_OK;
    }

    size = ngx_max(conn->out_size * 2, conn->out_len - conn->out_pos + len);
    size = ngx_max(size, 4096);

    p = ngx_alloc(size, conn->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (conn->out != NULL) {
        ngx_memcpy(p, conn->out + conn->out_pos,
                   conn->out_len - conn->out_pos);

        /* it held AUTH's password once */
        ngx_explicit_memzero(conn->out, conn->out_size);
        ngx_free(conn->out);
    }

    conn->out_len -= conn->out_pos;
    conn->out_pos = 0;
    conn->out = p;
    conn->out_size = size;

    return NGX_OK;
}


/* the write goes out after this batch of events, with every other one */

static void
ngx_http_auth_pat_redis_post_write(ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_event_t  *wev;

    if (conn->c == NULL) {
        return;
    }

    wev = conn->c->write;

    if (wev->ready && !wev->posted) {
        ngx_post_event(wev, &ngx_posted_events);
    }
}


static void
ngx_http_auth_pat_redis_flush(ngx_http_auth_pat_redis_conn_t *conn)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = conn->c;

    while (conn->out_pos < conn->out_len) {
        n = c->send(c, conn->out + conn->out_pos,
                    conn->out_len - conn->out_pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR) {
            ngx_http_auth_pat_redis_closed(conn, 0);
            ngx_http_auth_pat_redis_reset(conn);
            return;
        }

        conn->out_pos += n;
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_http_auth_pat_redis_reset(conn);
    }
}


/* ----------------------------------------------------------- commands */


static ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_redis_cmd_alloc(ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_queue_t                    *q;
    ngx_http_auth_pat_redis_cmd_t  *cmd;

    if (!ngx_queue_empty(&conn->free_cmds)) {
        q = ngx_queue_head(&conn->free_cmds);
        ngx_queue_remove(q);
        conn->nfree--;
        cmd = ngx_queue_data(q, ngx_http_auth_pat_redis_cmd_t, queue);

    } else {
        cmd = ngx_alloc(sizeof(ngx_http_auth_pat_redis_cmd_t), conn->log);
        if (cmd == NULL) {
            return NULL;
        }
    }

    ngx_memzero(cmd, sizeof(ngx_http_auth_pat_redis_cmd_t));

    cmd->conn = conn;
    cmd->script = NGX_CONF_UNSET_UINT;

    return cmd;
}


void
ngx_http_auth_pat_redis_cmd_free(ngx_http_auth_pat_redis_cmd_t *cmd)
{
    ngx_http_auth_pat_redis_conn_t  *conn = cmd->conn;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    if (cmd->argv != NULL) {
        ngx_free(cmd->argv);
        cmd->argv = NULL;
    }

    if (cmd->held != NULL) {
        ngx_free(cmd->held);
        cmd->held = NULL;
    }

    if (cmd->wire != NULL) {
        ngx_free(cmd->wire);
        cmd->wire = NULL;
    }

    if (conn->nfree < NGX_HTTP_AUTH_PAT_REDIS_FREE_CMDS && !conn->exiting) {
        ngx_queue_insert_head(&conn->free_cmds, &cmd->queue);
        conn->nfree++;
        return;
    }

    ngx_free(cmd);
}


/* the command whose handler runs, answered (for where it was) */
static ngx_http_auth_pat_redis_cmd_t  *ngx_http_auth_pat_redis_current;


/* the command's one completion; its reply, if any, is freed after it */

void
ngx_http_auth_pat_redis_complete(ngx_http_auth_pat_redis_cmd_t *cmd,
    redisReply *reply)
{
    ngx_http_auth_pat_redis_handler_pt  handler;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    if (cmd->counted) {
        cmd->conn->blocked -= cmd->block;
        cmd->counted = 0;
    }

    handler = cmd->handler;
    cmd->handler = NULL;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, cmd->conn->log, 0,
                   "auth_pat redis command %p answered: %*s",
                   cmd, cmd->verb_len, cmd->verb);

    if (handler != NULL && !cmd->conn->exiting) {
        ngx_http_auth_pat_redis_current = reply ? cmd : NULL;
        handler(cmd->data, reply, reply ? NGX_OK : NGX_ERROR);
        ngx_http_auth_pat_redis_current = NULL;
    }
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_redis_completing(void)
{
    return ngx_http_auth_pat_redis_current;
}


static void
ngx_http_auth_pat_redis_timeout(ngx_event_t *ev)
{
    ngx_http_auth_pat_redis_cmd_t   *cmd = ev->data;
    ngx_http_auth_pat_redis_conn_t  *conn = cmd->conn;

    if ((ngx_msec_int_t) (cmd->hang_at - ngx_current_msec) > 0) {
        /*
         * the deadline of a command sent again elsewhere, not a hung
         * server: the caller gets its answer now, the reply (when it
         * comes) is dropped, and the connection has its whole timeout
         */
        ngx_http_auth_pat_redis_complete(cmd, NULL);
        ngx_add_timer(&cmd->timer, cmd->hang_at - ngx_current_msec);
        return;
    }

    if (conn->bare && conn->state == NGX_HTTP_AUTH_PAT_REDIS_READY) {
        /* the query goes on to the next sentinel: a line per 10 s */
        ngx_http_auth_pat_redis_connect_failed(conn, NGX_ETIMEDOUT,
                                               "did not answer in time");
        conn->down_logged = 1;
        ngx_http_auth_pat_redis_reset(conn);
        return;
    }

    if (conn->state != NGX_HTTP_AUTH_PAT_REDIS_READY) {
        /* an attempt that failed, like a refused connect */
        ngx_http_auth_pat_redis_connect_failed(conn, NGX_ETIMEDOUT,
            (conn->tls_pending && conn->c->ssl)
                ? "TLS handshake failed: no answer (if it is a plain port, "
                  "remove \"ssl\")"
                : conn->c->write->timer_set ? NULL
                : "did not answer during its setup");
        ngx_http_auth_pat_redis_reset(conn);
        return;
    }

    /* (a setup that timed out is counted as refused, above) */
    ngx_http_auth_pat_redis_stats_add(conn->stats,
                                      errors[NGX_HTTP_AUTH_PAT_REDIS_ERR_TIMEOUT]);

    ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                  "auth_pat: %s \"%V\" did not answer within %M ms, "
                  "reconnecting (%*s)", conn->kind, &conn->addr->text,
                  conn->conf->timeout, cmd->verb_len, cmd->verb);

    conn->failures++;
    conn->down_logged = 1;

    /* a hung server gives no more replies on this connection */
    ngx_http_auth_pat_redis_reset(conn);
}


/*
 * A command is written: it awaits its reply, with a deadline that runs
 * from now.  A command behind a blocking one (WAIT) has the time that one
 * may hold the connection added to its deadline.
 */

static void
ngx_http_auth_pat_redis_sent(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_cmd_t *cmd)
{
    ngx_msec_t      hang;
    ngx_msec_int_t  left;

    ngx_queue_insert_tail(&conn->sent, &cmd->queue);

    cmd->timer.handler = ngx_http_auth_pat_redis_timeout;
    cmd->timer.data = cmd;
    cmd->timer.log = conn->log;

    cmd->sent_at = ngx_current_msec;
    ngx_http_auth_pat_redis_stats_add(conn->stats, commands);

    /* past this, the server is hung: the connection is reset */
    hang = conn->conf->timeout + conn->blocked;
    cmd->hang_at = ngx_current_msec + hang;

    if (cmd->deadline == 0) {
        if (conn->keep_wire) {
            cmd->deadline = cmd->hang_at;
        }

        ngx_add_timer(&cmd->timer, hang);

    } else {
        /*
         * sent again elsewhere: the caller gets its answer by its one
         * deadline; the connection is still given the whole timeout
         */
        left = (ngx_msec_int_t) (cmd->deadline - ngx_current_msec);
        left = ngx_min(left, (ngx_msec_int_t) hang);
        ngx_add_timer(&cmd->timer, (ngx_msec_t) ngx_max(left, 1));
    }

    if (cmd->block) {
        conn->blocked += cmd->block;
        cmd->counted = 1;
    }
}


/* appends a command to the output, and to the queue of those sent */

static ngx_int_t
ngx_http_auth_pat_redis_append(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_cmd_t *cmd, int argc, const char **argv,
    const size_t *argvlen)
{
    u_char  *p;
    size_t   len;

    len = ngx_http_auth_pat_redis_encoded_len(argc, argvlen);

    if (ngx_http_auth_pat_redis_reserve(conn, len) != NGX_OK) {
        return NGX_ERROR;
    }

    p = ngx_http_auth_pat_redis_encode(conn->out + conn->out_len, argc, argv,
                                       argvlen);
    conn->out_len = p - conn->out;

    ngx_http_auth_pat_redis_sent(conn, cmd);

    ngx_http_auth_pat_redis_post_write(conn);

    return NGX_OK;
}


/* the encoding of a held command is kept until the handshake is done */

static ngx_int_t
ngx_http_auth_pat_redis_hold(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_cmd_t *cmd, int argc, const char **argv,
    const size_t *argvlen)
{
    u_char  *p;

    cmd->held = ngx_alloc(ngx_http_auth_pat_redis_encoded_len(argc, argvlen),
                          conn->log);
    if (cmd->held == NULL) {
        return NGX_ERROR;
    }

    p = ngx_http_auth_pat_redis_encode(cmd->held, argc, argv, argvlen);
    cmd->held_len = p - cmd->held;

    ngx_queue_insert_tail(&conn->held, &cmd->queue);

    return NGX_OK;
}


/*
 * Held commands are written once the handshake succeeds (send), or fail
 * with the connection.  Cancelled ones are only freed.
 */

static void
ngx_http_auth_pat_redis_release_held(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_uint_t send)
{
    ngx_queue_t                    *q;
    ngx_http_auth_pat_redis_cmd_t  *cmd;

    while (!ngx_queue_empty(&conn->held)) {
        q = ngx_queue_head(&conn->held);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_auth_pat_redis_cmd_t, queue);

        if (cmd->handler == NULL || conn->exiting) {
            ngx_http_auth_pat_redis_cmd_free(cmd);
            continue;
        }

        /* the handshake found a replica: a write fails as it would now */
        if (send && !(cmd->write && conn->replica)
            && ngx_http_auth_pat_redis_reserve(conn, cmd->held_len) == NGX_OK)
        {
            conn->out_len = ngx_cpymem(conn->out + conn->out_len, cmd->held,
                                       cmd->held_len)
                            - conn->out;
            ngx_free(cmd->held);
            cmd->held = NULL;

            ngx_http_auth_pat_redis_sent(conn, cmd);

            ngx_log_debug1(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                           "auth_pat redis held command %p queued", cmd);
            continue;
        }

        ngx_http_auth_pat_redis_complete(cmd, NULL);
        ngx_http_auth_pat_redis_cmd_free(cmd);
    }

    ngx_http_auth_pat_redis_post_write(conn);
}


/* keep_wire: the command's encoding, to send it again elsewhere */

static ngx_int_t
ngx_http_auth_pat_redis_keep(ngx_http_auth_pat_redis_cmd_t *cmd, int argc,
    const char **argv, const size_t *argvlen)
{
    size_t   len;
    u_char  *p;

    len = ngx_http_auth_pat_redis_encoded_len(argc, argvlen);

    p = ngx_alloc(len, cmd->conn->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (cmd->wire != NULL) {
        ngx_free(cmd->wire);
    }

    cmd->wire = p;
    cmd->wire_len = ngx_http_auth_pat_redis_encode(p, argc, argv, argvlen) - p;

    return NGX_OK;
}


ngx_int_t
ngx_http_auth_pat_redis_resend(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_cmd_t *cmd, ngx_uint_t asking)
{
    size_t                          len;
    const char                     *verb;
    ngx_http_auth_pat_redis_cmd_t  *ask;

    if (conn->c == NULL || cmd->wire == NULL) {
        return NGX_ERROR;
    }

    if (conn->state != NGX_HTTP_AUTH_PAT_REDIS_READY) {
        /* not behind a handshake: the caller retries within the deadline */
        return NGX_ERROR;
    }

    /* room for both: an ASKING alone would apply to another command */
    if (ngx_http_auth_pat_redis_reserve(conn, cmd->wire_len
                                        + (asking ? sizeof("*1\r\n$6\r\n"
                                                           "ASKING\r\n") : 0))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    cmd->conn = conn;

    if (asking) {
        ask = ngx_http_auth_pat_redis_cmd_alloc(conn);
        if (ask == NULL) {
            return NGX_ERROR;
        }

        verb = "ASKING";
        len = 6;
        ask->internal = 1;
        ask->verb_len = 6;
        ngx_memcpy(ask->verb, verb, 6);

        if (ngx_http_auth_pat_redis_append(conn, ask, 1, &verb, &len)
            != NGX_OK)
        {
            ngx_http_auth_pat_redis_cmd_free(ask);
            return NGX_ERROR;
        }
    }

    conn->out_len = ngx_cpymem(conn->out + conn->out_len, cmd->wire,
                               cmd->wire_len)
                    - conn->out;

    ngx_http_auth_pat_redis_sent(conn, cmd);
    ngx_http_auth_pat_redis_post_write(conn);

    return NGX_OK;
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_redis_send(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_uint_t flags, ngx_http_auth_pat_redis_handler_pt handler, void *data,
    int argc, const char **argv, const size_t *argvlen)
{
    ngx_int_t                       rc;
    ngx_http_auth_pat_redis_cmd_t  *cmd;

    /* (a caller's command not sent is counted by the caller, as "down") */
    if (conn->c == NULL) {
        return NULL;
    }

    cmd = ngx_http_auth_pat_redis_cmd_alloc(conn);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->handler = handler;
    cmd->data = data;
    cmd->write = (flags & NGX_HTTP_AUTH_PAT_REDIS_WRITE) ? 1 : 0;
    cmd->internal = (flags & NGX_HTTP_AUTH_PAT_REDIS_INTERNAL) ? 1 : 0;
    cmd->block = (flags & NGX_HTTP_AUTH_PAT_REDIS_BLOCKS)
                 ? ngx_http_auth_pat_redis_block_time(conn) : 0;
    cmd->verb_len = ngx_min(argvlen[0], sizeof(cmd->verb));
    ngx_memcpy(cmd->verb, argv[0], cmd->verb_len);

    rc = NGX_OK;

    if (conn->keep_wire && !cmd->internal) {
        rc = ngx_http_auth_pat_redis_keep(cmd, argc, argv, argvlen);
    }

    if (rc != NGX_OK) {
        /* (freed below) */

    } else if (conn->state == NGX_HTTP_AUTH_PAT_REDIS_READY || cmd->internal) {
        rc = ngx_http_auth_pat_redis_append(conn, cmd, argc, argv, argvlen);

    } else {
        rc = ngx_http_auth_pat_redis_hold(conn, cmd, argc, argv, argvlen);
    }

    if (rc != NGX_OK) {
        ngx_http_auth_pat_redis_cmd_free(cmd);
        return NULL;
    }

    ngx_log_debug6(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: command %p %*s %s",
                   conn->name_len, conn->name, cmd, cmd->verb_len, cmd->verb,
                   conn->state == NGX_HTTP_AUTH_PAT_REDIS_READY
                   || cmd->internal
                   ? "queued" : "held until the handshake is done");

    return cmd;
}


/* --------------------------------------------------------- error classes */


static ngx_uint_t
ngx_http_auth_pat_redis_error_is(redisReply *reply, const char *prefix)
{
    size_t  len;

    len = ngx_strlen(prefix);

    return reply->len >= len
           && ngx_strncmp(reply->str, prefix, len) == 0
           && (reply->len == len || reply->str[len] == ' ');
}


static ngx_int_t
ngx_http_auth_pat_redis_retry_eval(ngx_http_auth_pat_redis_cmd_t *cmd)
{
    int                                i, argc;
    size_t                             argvlen[NGX_HTTP_AUTH_PAT_REDIS_ARGC];
    const char                        *argv[NGX_HTTP_AUTH_PAT_REDIS_ARGC];
    ngx_http_auth_pat_redis_conn_t    *conn = cmd->conn;
    ngx_http_auth_pat_redis_script_t  *script;

    if (cmd->argc + 2 > NGX_HTTP_AUTH_PAT_REDIS_ARGC) {
        return NGX_ERROR;
    }

    script = &conn->scripts[cmd->script];

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = (char *) script->body.data;
    argvlen[1] = script->body.len;
    argc = 2;

    for (i = 0; i < cmd->argc; i++) {
        argv[argc] = cmd->argv[i];
        argvlen[argc++] = cmd->argvlen[i];
    }

    cmd->retried = 1;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    if (cmd->wire != NULL
        && ngx_http_auth_pat_redis_keep(cmd, argc, argv, argvlen) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_auth_pat_redis_append(conn, cmd, argc, argv, argvlen);
}


/* one line per class of error per minute, not one per command */

static ngx_uint_t
ngx_http_auth_pat_redis_log_class(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_uint_t class)
{
    ngx_msec_t  *last;

    last = &conn->error_logged[class];

    if (*last && ngx_current_msec - *last
                 < NGX_HTTP_AUTH_PAT_REDIS_ERROR_EVERY)
    {
        return 0;
    }

    *last = ngx_current_msec ? ngx_current_msec : 1;

    return 1;
}


/*
 * An error reply to a caller's command, by class.  NGX_OK: the caller
 * gets it.  NGX_AGAIN: the command was sent again.  NGX_ABORT: the
 * connection cannot serve us any more; the caller gets it, then the
 * connection is reset.
 */

static ngx_int_t
ngx_http_auth_pat_redis_error(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_cmd_t *cmd, redisReply *reply)
{
    ngx_str_t   *addr;
    ngx_uint_t   class;

    addr = &conn->addr->text;

    if (cmd->script != NGX_CONF_UNSET_UINT && !cmd->retried
        && ngx_http_auth_pat_redis_error_is(reply, "NOSCRIPT"))
    {
        /*
         * A server that lost the script (a restart, SCRIPT FLUSH) is
         * normal: it is loaded again and the command resent, which is
         * no error; a resend that could not be made is one
         */
        if (ngx_http_auth_pat_redis_log_class(conn,
                                              NGX_HTTP_AUTH_PAT_REDIS_NOSCRIPT))
        {
            ngx_log_error(NGX_LOG_NOTICE, conn->log, 0,
                          "auth_pat: %s \"%V\" lost script %s, sending "
                          "it again", conn->kind, addr,
                          conn->scripts[cmd->script].sha);
        }

        if (ngx_http_auth_pat_redis_retry_eval(cmd) == NGX_OK) {
            return NGX_AGAIN;
        }

        ngx_http_auth_pat_redis_stats_add(conn->stats,
                                      errors[NGX_HTTP_AUTH_PAT_REDIS_ERR_ERROR]);
        return NGX_OK;
    }

    ngx_http_auth_pat_redis_stats_add(conn->stats,
                                      errors[NGX_HTTP_AUTH_PAT_REDIS_ERR_ERROR]);

    if (ngx_http_auth_pat_redis_error_is(reply, "READONLY")
        && conn->locate != NULL)
    {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "auth_pat: %s \"%V\" is no longer the master "
                      "(READONLY), asking %s again",
                      conn->kind, addr, conn->locator);
        conn->failures++;
        conn->down_logged = 1;
        return NGX_ABORT;
    }

    if (ngx_http_auth_pat_redis_error_is(reply, "READONLY")) {
        if (!conn->replica) {
            conn->replica = 1;
            ngx_log_error(NGX_LOG_WARN, conn->log, 0,
                          "auth_pat: %s \"%V\" is a replica: writes fail "
                          "until it is a master again",
                          conn->kind, addr);
        }

        return NGX_OK;
    }

    if (ngx_http_auth_pat_redis_error_is(reply, "LOADING")
        || ngx_http_auth_pat_redis_error_is(reply, "MASTERDOWN")
        || ngx_http_auth_pat_redis_error_is(reply, "NOAUTH")
        || ngx_http_auth_pat_redis_error_is(reply, "WRONGPASS"))
    {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "auth_pat: %s \"%V\" cannot serve: %s, "
                      "reconnecting", conn->kind, addr, reply->str);
        conn->failures++;
        conn->down_logged = 1;
        return NGX_ABORT;
    }

    /* the server is fine; the command fails */

    if (ngx_http_auth_pat_redis_error_is(reply, "NOPERM")) {
        if (ngx_http_auth_pat_redis_log_class(conn,
                                              NGX_HTTP_AUTH_PAT_REDIS_NOPERM))
        {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "auth_pat: %s \"%V\" refused %*s to this user: "
                          "%s", conn->kind, addr, cmd->verb_len, cmd->verb,
                          reply->str);
        }

        return NGX_OK;
    }

    if (ngx_http_auth_pat_redis_error_is(reply, "BUSY")) {
        /* a script runs: back off briefly instead of queueing behind it */
        conn->busy_until = ngx_current_msec
                           + NGX_HTTP_AUTH_PAT_REDIS_BUSY_BACKOFF;
        class = NGX_HTTP_AUTH_PAT_REDIS_BUSY;

    } else if (ngx_http_auth_pat_redis_error_is(reply, "OOM")) {
        class = NGX_HTTP_AUTH_PAT_REDIS_OOM;

    } else if (ngx_http_auth_pat_redis_error_is(reply, "MISCONF")) {
        class = NGX_HTTP_AUTH_PAT_REDIS_MISCONF;

    } else if (ngx_http_auth_pat_redis_error_is(reply, "WRONGTYPE")) {
        /* a key of ours holds another type: someone else wrote it */
        class = NGX_HTTP_AUTH_PAT_REDIS_WRONGTYPE;

    } else {
        class = NGX_HTTP_AUTH_PAT_REDIS_OTHER;
    }

    if (ngx_http_auth_pat_redis_log_class(conn, class)) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "auth_pat: %s \"%V\" %s %*s: %s", conn->kind, addr,
                      class == NGX_HTTP_AUTH_PAT_REDIS_OTHER ? "error to"
                                                             : "refused",
                      cmd->verb_len, cmd->verb, reply->str);
    }

    return NGX_OK;
}


/* ------------------------------------------------------------ replies */


/*
 * ROLE's reply.  A node that Sentinel named and that is no master (any
 * more) is left at once, to ask again: NGX_ABORT, the connection is reset.
 */

static ngx_int_t
ngx_http_auth_pat_redis_role(ngx_http_auth_pat_redis_conn_t *conn,
    redisReply *reply)
{
    ngx_uint_t  replica;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return NGX_OK;
    }

    replica = (reply->element[0]->len != 6
               || ngx_strncmp(reply->element[0]->str, "master", 6) != 0);

    if (replica && conn->locate != NULL) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "auth_pat: %s \"%V\" is not the master (its role "
                      "is \"%*s\"), asking %s again",
                      conn->kind, &conn->addr->text,
                      ngx_min(reply->element[0]->len, 32),
                      reply->element[0]->str, conn->locator);
        conn->failures++;
        conn->down_logged = 1;
        ngx_http_auth_pat_redis_reset(conn);
        return NGX_ABORT;
    }

    if (replica == conn->replica) {
        return NGX_OK;
    }

    conn->replica = replica;

    ngx_log_error(NGX_LOG_WARN, conn->log, 0,
                  replica ? "auth_pat: %s \"%V\" is a replica: writes "
                            "fail until it is a master again"
                          : "auth_pat: %s \"%V\" is a master again",
                  conn->kind, &conn->addr->text);

    return NGX_OK;
}


/* a message of the subscriber, not the reply to a command */

static ngx_uint_t
ngx_http_auth_pat_redis_pushed(ngx_http_auth_pat_redis_conn_t *conn,
    redisReply *reply)
{
    redisReply  *kind, *payload;

    if (!conn->subscriber || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 3)
    {
        return 0;
    }

    kind = reply->element[0];
    payload = reply->element[2];

    if (kind->type != REDIS_REPLY_STRING || kind->len != 7
        || ngx_strncmp(kind->str, "message", 7) != 0)
    {
        return 0;
    }

    if (payload->type == REDIS_REPLY_STRING && conn->subscribed) {
        conn->on_message(conn->sub_data, (u_char *) payload->str,
                         payload->len);
    }

    return 1;
}


/* one reply; NGX_ERROR when the connection was reset meanwhile */

static ngx_int_t
ngx_http_auth_pat_redis_dispatch(ngx_http_auth_pat_redis_conn_t *conn,
    redisReply *reply)
{
    ngx_int_t                       rc;
    ngx_queue_t                    *q;
    ngx_connection_t               *c;
    ngx_http_auth_pat_redis_cmd_t  *cmd;

    c = conn->c;
    conn->last_reply = ngx_current_msec;

    if (ngx_http_auth_pat_redis_pushed(conn, reply)) {
        return (conn->c == c) ? NGX_OK : NGX_ERROR;
    }

    if (ngx_queue_empty(&conn->sent)) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "auth_pat: %s \"%V\" sent a reply to no command, "
                      "reconnecting", conn->kind, &conn->addr->text);
        conn->down_logged = 1;
        ngx_http_auth_pat_redis_reset(conn);
        return NGX_ERROR;
    }

    q = ngx_queue_head(&conn->sent);
    ngx_queue_remove(q);
    cmd = ngx_queue_data(q, ngx_http_auth_pat_redis_cmd_t, queue);

    ngx_http_auth_pat_redis_stats_reply(conn->stats, cmd->sent_at);

    rc = NGX_OK;

    if (reply->type == REDIS_REPLY_ERROR && !cmd->internal
        && cmd->handler != NULL && cmd->wire != NULL
        && conn->redirect != NULL
        && (ngx_http_auth_pat_redis_error_is(reply, "MOVED")
            || ngx_http_auth_pat_redis_error_is(reply, "ASK")
            || ngx_http_auth_pat_redis_error_is(reply, "TRYAGAIN")
            || ngx_http_auth_pat_redis_error_is(reply, "CLUSTERDOWN")))
    {
        if (cmd->timer.timer_set) {
            ngx_del_timer(&cmd->timer);
        }

        if (conn->redirect(conn, cmd, reply) == NGX_OK) {
            /* sent elsewhere, or waiting to be */
            return (conn->c == c) ? NGX_OK : NGX_ERROR;
        }
    }

    /*
     * an internal command with a handler (the handshake's) judges its own
     * error; an ASKING has none, and a refused one (an ACL without
     * +asking) is named here, not only as the MOVED that follows it
     */
    if (reply->type == REDIS_REPLY_ERROR
        && (!cmd->internal || cmd->handler == NULL))
    {
        rc = ngx_http_auth_pat_redis_error(conn, cmd, reply);

        if (rc == NGX_AGAIN) {
            return NGX_OK;
        }
    }

    ngx_http_auth_pat_redis_complete(cmd, reply);
    ngx_http_auth_pat_redis_cmd_free(cmd);

    if (conn->c != c) {
        return NGX_ERROR;
    }

    if (rc == NGX_ABORT) {
        ngx_http_auth_pat_redis_reset(conn);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the connection was closed or failed: one line, with what TLS said */

static void
ngx_http_auth_pat_redis_closed(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_uint_t eof)
{
    u_char     *p, reason[300], line[400];
    ngx_err_t   err;

    err = eof ? 0 : ngx_socket_errno;
    reason[0] = '\0';

#if (NGX_SSL)
    if (conn->c->ssl) {
        /* errno may be stale: OpenSSL said what went wrong, or nothing */
        err = 0;
    }

    if (conn->tls_log.len) {
        /* nginx's own SSL line says more than errno */
        p = ngx_snprintf(reason, sizeof(reason) - 1, ": %*s",
                         conn->tls_log.len, conn->tls_log.text);
        *p = '\0';
        conn->tls_log.len = 0;
        err = 0;
    }
#endif

    if (conn->state == NGX_HTTP_AUTH_PAT_REDIS_READY) {
        ngx_log_error(NGX_LOG_ERR, conn->log, err,
                      "auth_pat: %s connection to \"%V\" lost%s",
                      conn->kind, &conn->addr->text,
                      reason[0] ? (char *) reason
                      : eof ? ": closed by the server" : "");
        conn->down_logged = 1;
        conn->failures++;
        return;
    }

    /*
     * Refused, or closed before the handshake was done.  An end of file
     * means the connect succeeded, even when its write event is still
     * to come in the same batch of events.
     */

    if (conn->c->write->timer_set && !eof) {
        ngx_http_auth_pat_redis_connect_failed(conn, err, NULL);
        return;
    }

    p = ngx_snprintf(line, sizeof(line) - 1,
                     "closed the connection during its setup%s%s", reason,
                     conn->conf->ssl ? ""
                     : " (if it is a TLS port, add \"ssl\")");
    *p = '\0';

    ngx_http_auth_pat_redis_connect_failed(conn, err, (char *) line);
}


/*
 * Reads until the socket is drained (NGX_OK), the connection goes
 * (NGX_ERROR), or max reads were made with data left (NGX_AGAIN).
 */

ngx_int_t
ngx_http_auth_pat_redis_read(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_uint_t max)
{
    void              *r;
    u_char             buf[NGX_HTTP_AUTH_PAT_REDIS_READ_SIZE];
    ssize_t            n;
    ngx_int_t          rc;
    ngx_uint_t         reads;
    ngx_connection_t  *c;

    c = conn->c;

    if (conn->tls_pending) {
        /* no reply is read in plaintext on a TLS connection */
        return NGX_OK;
    }

    for (reads = 0; reads < max; reads++) {

        n = c->recv(c, buf, sizeof(buf));

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(c->read, 0) != NGX_OK) {
                ngx_http_auth_pat_redis_reset(conn);
                return NGX_ERROR;
            }

            return NGX_OK;
        }

        if (n == 0 || n == NGX_ERROR) {
            ngx_http_auth_pat_redis_closed(conn, n == 0);
            ngx_http_auth_pat_redis_reset(conn);
            return NGX_ERROR;
        }

        if (redisReaderFeed(conn->reader, (char *) buf, n) != REDIS_OK) {
            goto protocol;
        }

        for ( ;; ) {
            r = NULL;

            if (redisReaderGetReply(conn->reader, &r) != REDIS_OK) {
                goto protocol;
            }

            if (r == NULL) {
                break;
            }

            rc = ngx_http_auth_pat_redis_dispatch(conn, r);

            /* not through the reader: a reset has freed it */
            ngx_http_auth_pat_redis_resp_free(r);

            if (rc != NGX_OK) {
                return NGX_ERROR;
            }
        }
    }

    return NGX_AGAIN;

protocol:

    ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                  "auth_pat: %s \"%V\" sent a malformed reply: %s, "
                  "reconnecting", conn->kind, &conn->addr->text,
                  conn->reader->errstr);
    conn->failures++;
    conn->down_logged = 1;
    ngx_http_auth_pat_redis_reset(conn);

    return NGX_ERROR;
}


static void
ngx_http_auth_pat_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t                *c = rev->data;
    ngx_http_auth_pat_redis_conn_t  *conn = c->data;

    (void) ngx_http_auth_pat_redis_read(conn, NGX_MAX_UINT32_VALUE);
}


#if (NGX_SSL)

/*
 * Before TLS is up, nothing is read as a reply: whatever the peer sends
 * first goes to the TLS handshake, which fails on it.  The event only
 * says that connect() has completed (or failed).
 */

static void
ngx_http_auth_pat_redis_tls_read_handler(ngx_event_t *rev)
{
    ngx_connection_t  *c = rev->data;

    ngx_http_auth_pat_redis_write_handler(c->write);
}

#endif


/* ------------------------------------------------------------ handshake */


static void
ngx_http_auth_pat_redis_ready(ngx_http_auth_pat_redis_conn_t *conn)
{
    u_char  tls[64];
#if (NGX_SSL)
    u_char  *p;
#endif

    conn->state = NGX_HTTP_AUTH_PAT_REDIS_READY;
    conn->last_reply = ngx_current_msec;
    conn->failures = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: ready", conn->name_len, conn->name);

    tls[0] = '\0';

#if (NGX_SSL)
    if (conn->c->ssl) {
        p = ngx_snprintf(tls, sizeof(tls) - 1, " (%s, %s session)",
                         SSL_get_version(conn->c->ssl->connection),
                         SSL_session_reused(conn->c->ssl->connection)
                         ? "resumed" : "new");
        *p = '\0';
    }
#endif

    if (conn->was_ready) {
        ngx_log_error(NGX_LOG_WARN, conn->log, 0,
                      "auth_pat: %s \"%V\" connection restored%s",
                      conn->kind, &conn->addr->text, tls);

    } else {
        ngx_log_error(NGX_LOG_INFO, conn->log, 0,
                      "auth_pat: %s \"%V\" connected%s",
                      conn->kind, &conn->addr->text, tls);
    }

    conn->was_ready = 1;
    conn->down_logged = 0;
    conn->refused_logged = 0;
    conn->connect_logged = 0;

    ngx_add_timer(&conn->keepalive, conn->conf->keepalive);

    ngx_http_auth_pat_redis_release_held(conn, 1);

    if (conn->subscriber && conn->c != NULL) {
        conn->subscribed = 1;

        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                       "auth_pat redis %*s: subscribed",
                       conn->name_len, conn->name);

        conn->on_state(conn->sub_data, 1);
    }
}


static void
ngx_http_auth_pat_redis_handshake_done(void *data, redisReply *reply,
    ngx_int_t rc)
{
    ngx_http_auth_pat_redis_conn_t  *conn = data;

    if (rc != NGX_OK) {
        /* the connection is being reset; that was logged where seen */
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        if (!conn->refused_logged) {
            conn->refused_logged = 1;
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "auth_pat: %s \"%V\" refused the connection "
                          "setup: %s", conn->kind, &conn->addr->text,
                          reply->str);
        }

        conn->failures++;
        ngx_http_auth_pat_redis_reset(conn);
        return;
    }

    if (--conn->handshake_pending == 0) {
        ngx_http_auth_pat_redis_ready(conn);
    }
}


static void
ngx_http_auth_pat_redis_handshake_role(void *data, redisReply *reply,
    ngx_int_t rc)
{
    ngx_http_auth_pat_redis_conn_t  *conn = data;

    if (rc == NGX_OK && ngx_http_auth_pat_redis_role(conn, reply) != NGX_OK) {
        return;
    }

    ngx_http_auth_pat_redis_handshake_done(data, reply, rc);
}


/* one command of the handshake, written ahead of any held one */

static ngx_int_t
ngx_http_auth_pat_redis_setup(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_handler_pt handler, int argc, const char **argv,
    const size_t *argvlen)
{
    if (ngx_http_auth_pat_redis_send(conn, NGX_HTTP_AUTH_PAT_REDIS_INTERNAL,
                                     handler, conn, argc, argv, argvlen)
        == NULL)
    {
        return NGX_ERROR;
    }

    conn->handshake_pending++;

    return NGX_OK;
}


static ngx_int_t
ngx_http_auth_pat_redis_handshake(ngx_http_auth_pat_redis_conn_t *conn)
{
    int                                  argc;
    u_char                               dbbuf[NGX_INT_T_LEN];
    size_t                               argvlen[4];
    ngx_uint_t                           i;
    const char                          *argv[4];
    ngx_http_auth_pat_redis_conf_t      *rcf;
    ngx_http_auth_pat_redis_handler_pt   done;

    rcf = conn->conf;
    done = ngx_http_auth_pat_redis_handshake_done;
    conn->handshake_pending = 0;

    if (rcf->password.len) {
        argc = 0;
        argv[argc] = "AUTH";
        argvlen[argc++] = 4;

        if (rcf->user.len) {
            argv[argc] = (char *) rcf->user.data;
            argvlen[argc++] = rcf->user.len;
        }

        argv[argc] = (char *) rcf->password.data;
        argvlen[argc++] = rcf->password.len;

        if (ngx_http_auth_pat_redis_setup(conn, done, argc, argv, argvlen)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (rcf->db > 0) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = (char *) dbbuf;
        argvlen[1] = ngx_sprintf(dbbuf, "%i", rcf->db) - dbbuf;

        if (ngx_http_auth_pat_redis_setup(conn, done, 2, argv, argvlen)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    argv[0] = "CLIENT";
    argvlen[0] = 6;
    argv[1] = "SETNAME";
    argvlen[1] = 7;
    argv[2] = (char *) conn->name;
    argvlen[2] = conn->name_len;

    if (ngx_http_auth_pat_redis_setup(conn, done, 3, argv, argvlen) != NGX_OK) {
        return NGX_ERROR;
    }

    if (conn->subscriber && conn->locate != NULL && !conn->bare) {
        /* a node Sentinel named: ROLE, while commands are still allowed */
        argv[0] = "ROLE";
        argvlen[0] = 4;

        if (ngx_http_auth_pat_redis_setup(conn,
                                    ngx_http_auth_pat_redis_handshake_role,
                                    1, argv, argvlen)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (conn->subscriber) {
        argv[0] = "SUBSCRIBE";
        argvlen[0] = 9;
        argv[1] = (char *) conn->channel.data;
        argvlen[1] = conn->channel.len;

        return ngx_http_auth_pat_redis_setup(conn, done, 2, argv, argvlen);
    }

    if (conn->bare) {
        return NGX_OK;
    }

    for (i = 0; i < conn->nscripts; i++) {
        argv[0] = "SCRIPT";
        argvlen[0] = 6;
        argv[1] = "LOAD";
        argvlen[1] = 4;
        argv[2] = (char *) conn->scripts[i].body.data;
        argvlen[2] = conn->scripts[i].body.len;

        if (ngx_http_auth_pat_redis_setup(conn, done, 3, argv, argvlen)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    /* an ACL denying the access check's command shows up here, once */
    if (conn->probe_argc
        && ngx_http_auth_pat_redis_setup(conn, done, conn->probe_argc,
                                         conn->probe_argv,
                                         conn->probe_argvlen)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    argv[0] = "ROLE";
    argvlen[0] = 4;

    return ngx_http_auth_pat_redis_setup(conn,
                                         ngx_http_auth_pat_redis_handshake_role,
                                         1, argv, argvlen);
}


/* ----------------------------------------------------------- liveness */


static void
ngx_http_auth_pat_redis_keepalive_done(void *data, redisReply *reply,
    ngx_int_t rc)
{
    ngx_http_auth_pat_redis_conn_t  *conn = data;

    if (rc == NGX_OK && !conn->subscriber && !conn->bare) {
        (void) ngx_http_auth_pat_redis_role(conn, reply);
    }
}


/* ROLE on the command connection, PING on the subscriber */

static void
ngx_http_auth_pat_redis_keepalive_handler(ngx_event_t *ev)
{
    size_t                           len;
    const char                      *verb;
    ngx_http_auth_pat_redis_conn_t  *conn = ev->data;

    if (conn->exiting || ngx_exiting
        || conn->state != NGX_HTTP_AUTH_PAT_REDIS_READY)
    {
        return;
    }

    verb = (conn->subscriber || conn->bare) ? "PING" : "ROLE";
    len = 4;

    (void) ngx_http_auth_pat_redis_send(conn, NGX_HTTP_AUTH_PAT_REDIS_READ,
                                        ngx_http_auth_pat_redis_keepalive_done,
                                        conn, 1, &verb, &len);

    ngx_add_timer(ev, conn->conf->keepalive);
}


ngx_uint_t
ngx_http_auth_pat_redis_alive(ngx_http_auth_pat_redis_conn_t *conn)
{
    return conn->state == NGX_HTTP_AUTH_PAT_REDIS_READY
           && ngx_current_msec - conn->last_reply
              <= conn->conf->keepalive + conn->conf->timeout;
}


/* ---------------------------------------------------------- connection */


/*
 * A failed attempt: connect() (why NULL), or what the peer did before
 * the handshake was done.  One line per connection per 10 s.
 */

void
ngx_http_auth_pat_redis_connect_failed(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_err_t err, const char *why)
{
    conn->failures++;

    ngx_http_auth_pat_redis_stats_add(conn->stats,
                                      errors[NGX_HTTP_AUTH_PAT_REDIS_ERR_REFUSED]);

    if (conn->connect_logged
        && ngx_current_msec - conn->connect_logged
           < NGX_HTTP_AUTH_PAT_REDIS_LOG_EVERY)
    {
        return;
    }

    conn->connect_logged = ngx_current_msec ? ngx_current_msec : 1;

    if (why == NULL) {
        ngx_log_error(NGX_LOG_ERR, conn->log, err,
                      "auth_pat: connecting to %s \"%V\" failed",
                      conn->kind, &conn->addr->text);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, conn->log, err, "auth_pat: %s \"%V\" %s",
                  conn->kind, &conn->addr->text, why);
}


static void
ngx_http_auth_pat_redis_write_handler(ngx_event_t *wev)
{
    int                              err;
    socklen_t                        len;
    ngx_connection_t                *c = wev->data;
    ngx_http_auth_pat_redis_conn_t  *conn = c->data;

    if (wev->timedout) {
        ngx_http_auth_pat_redis_connect_failed(conn, NGX_ETIMEDOUT, NULL);
        ngx_http_auth_pat_redis_reset(conn);
        return;
    }

    if (wev->timer_set) {
        /* the connect timer: connect() has completed */
        ngx_del_timer(wev);

        err = 0;
        len = sizeof(int);

        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len)
            == -1)
        {
            err = ngx_socket_errno;
        }

        if (err) {
            ngx_http_auth_pat_redis_connect_failed(conn, err, NULL);
            ngx_http_auth_pat_redis_reset(conn);
            return;
        }
    }

    if (conn->tls_pending) {
#if (NGX_SSL)
        if (c->ssl == NULL) {
            ngx_http_auth_pat_redis_tls_begin(conn);
        }
#endif
        return;
    }

    ngx_http_auth_pat_redis_flush(conn);
}


#if (NGX_SSL)

/* the handshake's queued commands go out once TLS is up and checked */

static void
ngx_http_auth_pat_redis_tls_begin(ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_int_t          rc;
    ngx_connection_t  *c = conn->c;

    /* ngx_ssl_create_connection() allocates from it; freed with c */
    c->pool = ngx_create_pool(128, conn->log);
    if (c->pool == NULL) {
        ngx_http_auth_pat_redis_connect_failed(conn, 0, "out of memory");
        ngx_http_auth_pat_redis_reset(conn);
        return;
    }

    rc = ngx_http_auth_pat_redis_tls_handshake(c, conn->conf->tls,
                                               &conn->addr->host,
                                               conn->ssl_session,
                                               ngx_http_auth_pat_redis_tls_done,
                                               ngx_http_auth_pat_redis_tls_save);

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: TLS handshake: %i",
                   conn->name_len, conn->name, rc);

    if (rc == NGX_AGAIN) {
        if (!c->write->timer_set) {
            ngx_add_timer(c->write, conn->conf->timeout);
        }

        return;
    }

    ngx_http_auth_pat_redis_tls_done(c);
}


static void
ngx_http_auth_pat_redis_tls_done(ngx_connection_t *c)
{
    u_char                             *p, line[400];
    ngx_http_auth_pat_redis_conn_t     *conn = c->data;
    ngx_http_auth_pat_redis_tls_why_t   why;

    if (c->ssl == NULL || !c->ssl->handshaked) {
        p = ngx_snprintf(line, sizeof(line) - 1,
                         "TLS handshake failed: %*s",
                         (c->write->timedout || c->read->timedout)
                             ? sizeof("timed out") - 1 : conn->tls_log.len,
                         (c->write->timedout || c->read->timedout)
                             ? (u_char *) "timed out" : conn->tls_log.text);
        *p = '\0';

        ngx_http_auth_pat_redis_connect_failed(conn, 0, (char *) line);
        ngx_http_auth_pat_redis_reset(conn);
        return;
    }

    if (ngx_http_auth_pat_redis_tls_verify(c, conn->conf->tls,
                                           &conn->addr->host, &why)
        != NGX_OK)
    {
        if (conn->ssl_session != NULL) {
            ngx_ssl_free_session(conn->ssl_session);
            conn->ssl_session = NULL;
        }

        p = ngx_snprintf(line, sizeof(line) - 1, "TLS %*s", why.len,
                         why.text);
        *p = '\0';

        ngx_http_auth_pat_redis_connect_failed(conn, 0, (char *) line);
        ngx_http_auth_pat_redis_reset(conn);
        return;
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    c->read->handler = ngx_http_auth_pat_redis_read_handler;
    c->write->handler = ngx_http_auth_pat_redis_write_handler;
    conn->tls_pending = 0;
    conn->tls_log.len = 0;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: TLS up", conn->name_len, conn->name);

    ngx_http_auth_pat_redis_flush(conn);
}


/* the session to resume next time (TLS 1.3 sends it after the handshake) */

static void
ngx_http_auth_pat_redis_tls_save(ngx_connection_t *c)
{
    ngx_ssl_session_t               *session;
    ngx_http_auth_pat_redis_conn_t  *conn = c->data;

    session = ngx_ssl_get_session(c);
    if (session == NULL) {
        return;
    }

    if (conn->ssl_session != NULL) {
        ngx_ssl_free_session(conn->ssl_session);
    }

    conn->ssl_session = session;
}

#endif


void
ngx_http_auth_pat_redis_connect(ngx_http_auth_pat_redis_conn_t *conn)
{
    int                     on;
    ngx_int_t               rc;
    ngx_err_t               err;
    ngx_connection_t       *c;
    ngx_peer_connection_t  *pc;

    if (conn->locate != NULL && !conn->located) {
        if (conn->locate(conn) != NGX_OK) {
            /* it connects (or schedules) once the address is known */
            return;
        }
    }

    /* a located address serves this attempt only: the next one asks */
    conn->located = 0;

    conn->stats = ngx_http_auth_pat_redis_stats_find(&conn->addr->text,
                                                     conn->conf->keepalive
                                                     + conn->conf->timeout);

    if (conn->attempts++) {
        ngx_http_auth_pat_redis_stats_add(conn->stats, reconnects);
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: connecting to \"%V\"",
                   conn->name_len, conn->name, &conn->addr->text);

    pc = &conn->peer;
    ngx_memzero(pc, sizeof(ngx_peer_connection_t));

    pc->sockaddr = conn->addr->sockaddr;
    pc->socklen = conn->addr->socklen;
    pc->name = &conn->addr->text;
    pc->get = ngx_event_get_peer;
    pc->log = &conn->peer_log;
    pc->log_error = NGX_ERROR_INFO;

    conn->reader = ngx_http_auth_pat_redis_resp_reader();
    if (conn->reader == NULL) {
        ngx_http_auth_pat_redis_connect_failed(conn, 0, "out of memory");
        ngx_http_auth_pat_redis_schedule(conn);
        return;
    }

    rc = ngx_event_connect_peer(pc);
    err = ngx_socket_errno;

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        redisReaderFree(conn->reader);
        conn->reader = NULL;
        ngx_http_auth_pat_redis_connect_failed(conn,
                                               rc == NGX_DECLINED ? err : 0,
                                               NULL);
        ngx_http_auth_pat_redis_schedule(conn);
        return;
    }

    c = pc->connection;
    c->data = conn;
    c->log = conn->log;
    c->read->log = conn->log;
    c->write->log = conn->log;
    c->read->handler = ngx_http_auth_pat_redis_read_handler;
    c->write->handler = ngx_http_auth_pat_redis_write_handler;

    /* a peer that vanishes without a FIN is found out by the kernel too */
    on = 1;
    (void) setsockopt(c->fd, SOL_SOCKET, SO_KEEPALIVE,
                      (const void *) &on, sizeof(int));

    /*
     * a batch of commands goes out at once, without waiting for the ACK
     * of the one before (Nagle): the replies are awaited, not more data
     */
    if (conn->addr->sockaddr->sa_family != AF_UNIX) {
        (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY,
                          (const void *) &on, sizeof(int));
    }

    conn->c = c;
    conn->state = NGX_HTTP_AUTH_PAT_REDIS_HANDSHAKE;
    conn->out_pos = 0;
    conn->out_len = 0;

#if (NGX_SSL)
    if (conn->conf->ssl) {
        /* nginx's SSL code logs through c->log: kept for one line of ours */
        conn->tls_log.len = 0;
        c->log = &conn->tls_log.log;
        c->log_error = NGX_ERROR_INFO;
        c->read->handler = ngx_http_auth_pat_redis_tls_read_handler;
        conn->tls_pending = 1;
    }
#endif

    if (ngx_http_auth_pat_redis_handshake(conn) != NGX_OK) {
        conn->failures++;
        ngx_http_auth_pat_redis_reset(conn);
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: handshake of %ui commands queued",
                   conn->name_len, conn->name, conn->handshake_pending);

    if (rc == NGX_AGAIN) {
        /* written once connect() completes */
        ngx_add_timer(c->write, conn->conf->timeout);
        return;
    }

    ngx_http_auth_pat_redis_post_write(conn);
}


static void
ngx_http_auth_pat_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_auth_pat_redis_conn_t  *conn = ev->data;

    if (conn->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (conn->c == NULL) {
        ngx_http_auth_pat_redis_connect(conn);
    }
}


/* exponential backoff with jitter: [d/2, d], d = 100 ms << failures */

void
ngx_http_auth_pat_redis_schedule(ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_msec_t  delay;

    if (conn->exiting || conn->on_demand || conn->reconnect.timer_set) {
        return;
    }

    delay = NGX_HTTP_AUTH_PAT_REDIS_BACKOFF_MIN
            << ngx_min(conn->failures, 5);
    delay = ngx_min(delay, NGX_HTTP_AUTH_PAT_REDIS_BACKOFF_MAX);
    delay = delay / 2 + (ngx_msec_t) ngx_random() % (delay / 2 + 1);

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: reconnecting in %M ms",
                   conn->name_len, conn->name, delay);

    ngx_add_timer(&conn->reconnect, delay);
}


/*
 * A node's address as Sentinel or Cluster reports it: an IP and a port.
 * A hostname is NGX_DECLINED (a worker never resolves names), and so is
 * an unspecified address (0.0.0.0, ::), which Linux would connect to the
 * local host.
 */

ngx_int_t
ngx_http_auth_pat_redis_ip(u_char *ip, size_t len, ngx_int_t port,
    ngx_sockaddr_t *sa, socklen_t *salen)
{
    in_addr_t  a;

    if (port < 1 || port > 65535) {
        return NGX_DECLINED;
    }

    ngx_memzero(sa, sizeof(ngx_sockaddr_t));

    a = ngx_inet_addr(ip, len);

    if (a != INADDR_NONE) {
        if (a == INADDR_ANY) {
            return NGX_DECLINED;
        }

        sa->sockaddr_in.sin_family = AF_INET;
        sa->sockaddr_in.sin_port = htons((in_port_t) port);
        sa->sockaddr_in.sin_addr.s_addr = a;
        *salen = sizeof(struct sockaddr_in);
        return NGX_OK;
    }

#if (NGX_HAVE_INET6)
    if (ngx_inet6_addr(ip, len, sa->sockaddr_in6.sin6_addr.s6_addr) == NGX_OK
        && !IN6_IS_ADDR_UNSPECIFIED(&sa->sockaddr_in6.sin6_addr))
    {
        sa->sockaddr_in6.sin6_family = AF_INET6;
        sa->sockaddr_in6.sin6_port = htons((in_port_t) port);
        *salen = sizeof(struct sockaddr_in6);
        return NGX_OK;
    }
#endif

    return NGX_DECLINED;
}


/* f connects to sa next (once, if located) */

void
ngx_http_auth_pat_redis_found(ngx_http_auth_pat_redis_conn_t *f,
    struct sockaddr *sa, socklen_t len)
{
    ngx_memcpy(&f->found_sockaddr, sa, len);
    sa = &f->found_sockaddr.sockaddr;

    f->found.sockaddr = sa;
    f->found.socklen = len;
    f->found.text.data = f->found_text;
    f->found.text.len = ngx_sock_ntop(sa, len, f->found_text,
                                      sizeof(f->found_text), 1);
    f->found.host.data = f->found_host;
    f->found.host.len = ngx_sock_ntop(sa, len, f->found_host,
                                      sizeof(f->found_host), 0);

    f->addr = &f->found;
    f->located = 1;
}


void
ngx_http_auth_pat_redis_log_move(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_logged_t *from,
    ngx_http_auth_pat_redis_logged_t *to)
{
    if (from != NULL) {
        from->connect_logged = conn->connect_logged;
        from->refused_logged = conn->refused_logged;
    }

    conn->connect_logged = to ? to->connect_logged : 0;
    conn->refused_logged = to ? to->refused_logged : 0;
}


void
ngx_http_auth_pat_redis_restart(ngx_http_auth_pat_redis_conn_t *conn)
{
    if (conn->exiting) {
        return;
    }

    if (conn->c != NULL) {
        conn->down_logged = 1;
        ngx_http_auth_pat_redis_reset(conn);
    }

    if (conn->reconnect.timer_set) {
        ngx_del_timer(&conn->reconnect);
    }

    conn->failures = 0;

    /* from the event loop: the caller may be inside a read of this one */
    ngx_add_timer(&conn->reconnect, 1);
}


/* closes the connection: every command in flight fails, held ones too */

void
ngx_http_auth_pat_redis_reset(ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_uint_t                      subscribed;
    ngx_pool_t                     *pool;
    ngx_queue_t                    *q;
    ngx_connection_t               *c;
    ngx_http_auth_pat_redis_cmd_t  *cmd;

    c = conn->c;

    if (c == NULL) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: down", conn->name_len, conn->name);

    if (conn->state == NGX_HTTP_AUTH_PAT_REDIS_READY && !conn->down_logged
        && !conn->exiting)
    {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "auth_pat: %s \"%V\" is down",
                      conn->kind, &conn->addr->text);
    }

    subscribed = conn->subscribed;

    conn->c = NULL;
    conn->serial++;     /* a WAIT cannot confirm its writes any more */
    conn->state = NGX_HTTP_AUTH_PAT_REDIS_DOWN;
    conn->subscribed = 0;
    conn->replica = 0;
    conn->busy_until = 0;
    conn->blocked = 0;
    conn->down_logged = 0;
    conn->out_pos = 0;
    conn->out_len = 0;

    conn->tls_pending = 0;

#if (NGX_SSL)
    ngx_http_auth_pat_redis_tls_shutdown(c);
#endif

    pool = c->pool;

    ngx_close_connection(c);

    if (pool != NULL) {
        ngx_destroy_pool(pool);
    }

    redisReaderFree(conn->reader);
    conn->reader = NULL;

    if (conn->keepalive.timer_set) {
        ngx_del_timer(&conn->keepalive);
    }

    while (!ngx_queue_empty(&conn->sent)) {
        q = ngx_queue_head(&conn->sent);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_auth_pat_redis_cmd_t, queue);

        ngx_http_auth_pat_redis_complete(cmd, NULL);
        ngx_http_auth_pat_redis_cmd_free(cmd);
    }

    ngx_http_auth_pat_redis_release_held(conn, 0);

    if (subscribed && !conn->exiting) {
        conn->on_state(conn->sub_data, 0);
    }

    ngx_http_auth_pat_redis_schedule(conn);
}



ngx_msec_t
ngx_http_auth_pat_redis_block_time(ngx_http_auth_pat_redis_conn_t *conn)
{
    return ngx_max(conn->conf->timeout * 3 / 4, 1);
}

ngx_http_auth_pat_redis_conn_t *
ngx_http_auth_pat_redis_conn_create(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conf_t *rcf, const char *role)
{
    ngx_http_auth_pat_redis_conn_t  *conn;

    conn = ngx_pcalloc(cycle->pool, sizeof(ngx_http_auth_pat_redis_conn_t));
    if (conn == NULL) {
        return NULL;
    }

    conn->conf = rcf;
    conn->addr = &rcf->addr;
    conn->kind = "redis";
    conn->log = cycle->log;
    conn->name_len = ngx_sprintf(conn->name, "auth_pat:%s:%P", role,
                                 ngx_pid)
                     - conn->name;

    /*
     * nginx's own connect() errors are logged through this copy, above
     * what it writes: the module logs them itself, limited per address
     */
    conn->peer_log = *cycle->log;
    conn->peer_log.log_level = NGX_LOG_ALERT;

#if (NGX_SSL)
    ngx_http_auth_pat_redis_tls_log_init(&conn->tls_log, cycle->log);
#endif

    ngx_queue_init(&conn->sent);
    ngx_queue_init(&conn->held);
    ngx_queue_init(&conn->free_cmds);

    conn->reconnect.handler = ngx_http_auth_pat_redis_reconnect_handler;
    conn->reconnect.data = conn;
    conn->reconnect.log = cycle->log;
    conn->reconnect.cancelable = 1;

    conn->keepalive.handler = ngx_http_auth_pat_redis_keepalive_handler;
    conn->keepalive.data = conn;
    conn->keepalive.log = cycle->log;
    conn->keepalive.cancelable = 1;

    return conn;
}

void
ngx_http_auth_pat_redis_conn_free(ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_queue_t                    *q;
    ngx_http_auth_pat_redis_cmd_t  *cmd;

    /* no request is resumed from exit_process */
    conn->exiting = 1;

    if (conn->reconnect.timer_set) {
        ngx_del_timer(&conn->reconnect);
    }

    ngx_http_auth_pat_redis_reset(conn);

    if (conn->reader != NULL) {
        redisReaderFree(conn->reader);
        conn->reader = NULL;
    }

    while (!ngx_queue_empty(&conn->free_cmds)) {
        q = ngx_queue_head(&conn->free_cmds);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_auth_pat_redis_cmd_t, queue);
        ngx_free(cmd);
    }

    if (conn->out != NULL) {
        ngx_explicit_memzero(conn->out, conn->out_size);
        ngx_free(conn->out);
        conn->out = NULL;
    }

#if (NGX_SSL)
    if (conn->ssl_session != NULL) {
        ngx_ssl_free_session(conn->ssl_session);
        conn->ssl_session = NULL;
    }
#endif
}
