
/*
 * hiredis async on nginx's event loop.
 *
 * The hiredis socket is wrapped in an ngx_connection_t; hiredis' event
 * hooks map onto ngx_add_event()/ngx_del_event(), level-triggered even
 * under epoll, because redisBufferRead() reads at most 16k per call.
 *
 * hiredis 0.14 has no async timeouts: each written command carries an
 * nginx timer, and a timeout resets the connection, since a hung Redis
 * gives no more replies on it.
 *
 * Each (re)connect runs a handshake (AUTH, SELECT, CLIENT SETNAME,
 * SCRIPT LOAD, a probe command) before the connection serves requests;
 * commands that arrive meanwhile are held in nginx, so that none runs as
 * another user or in another database if AUTH or SELECT is refused.
 * Failures back off exponentially, with jitter, up to 2 s.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/async.h>
#include <openssl/sha.h>

#include "ngx_http_auth_pat_redis.h"


#define NGX_HTTP_AUTH_PAT_REDIS_BACKOFF_MIN   100
#define NGX_HTTP_AUTH_PAT_REDIS_BACKOFF_MAX   2000
#define NGX_HTTP_AUTH_PAT_REDIS_FREE_CMDS     1024
#define NGX_HTTP_AUTH_PAT_REDIS_POLL_READS    64


typedef enum {
    NGX_HTTP_AUTH_PAT_REDIS_DOWN = 0,
    NGX_HTTP_AUTH_PAT_REDIS_HANDSHAKE,
    NGX_HTTP_AUTH_PAT_REDIS_READY
} ngx_http_auth_pat_redis_state_e;


typedef struct {
    ngx_http_auth_pat_redis_conf_t   *conf;
    redisAsyncContext                *ac;
    ngx_connection_t                 *c;
    ngx_log_t                        *log;

    ngx_http_auth_pat_redis_state_e   state;
    ngx_uint_t                        failures;
    ngx_uint_t                        handshake_pending;
    ngx_uint_t                        handshake_failed;
    ngx_uint_t                        handshake_refused;
    ngx_uint_t                        was_ready;
    ngx_uint_t                        exiting;
    ngx_uint_t                        flushing;

    ngx_event_t                       reconnect;

    ngx_http_auth_pat_redis_script_t *scripts;
    ngx_uint_t                        nscripts;
    int                               probe_argc;
    const char                      **probe_argv;
    size_t                           *probe_argvlen;

    ngx_queue_t                       free_cmds;
    ngx_uint_t                        nfree;

    /* commands of requests, held until the handshake is done */
    ngx_queue_t                       held;

    u_char                           *out;
    size_t                            out_size;

    u_char                            name[NGX_INT64_LEN + 16];
    size_t                            name_len;

    /* the subscriber connection */
    ngx_uint_t                        subscriber;
    ngx_uint_t                        subscribed;
    ngx_str_t                         channel;
    ngx_http_auth_pat_redis_message_pt  on_message;
    ngx_http_auth_pat_redis_state_pt  on_state;
    void                             *sub_data;
} ngx_http_auth_pat_redis_conn_t;


struct ngx_http_auth_pat_redis_cmd_s {
    ngx_http_auth_pat_redis_handler_pt  handler;
    void                             *data;
    ngx_http_auth_pat_redis_conn_t   *conn;
    ngx_event_t                       timer;
    ngx_queue_t                       queue;

    /* EVALSHA: a copy of the arguments, to retry with EVAL */
    ngx_uint_t                        script;
    int                               argc;
    const char                      **argv;
    size_t                           *argvlen;

    /* the RESP encoding of a held command */
    u_char                           *held;
    size_t                            held_len;

    unsigned                          done:1;
    unsigned                          retried:1;
};


static void ngx_http_auth_pat_redis_connect(
    ngx_http_auth_pat_redis_conn_t *conn);
static void ngx_http_auth_pat_redis_reset(
    ngx_http_auth_pat_redis_conn_t *conn);
static void ngx_http_auth_pat_redis_schedule(
    ngx_http_auth_pat_redis_conn_t *conn);
static void ngx_http_auth_pat_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_http_auth_pat_redis_cmd_t *ngx_http_auth_pat_redis_send(
    ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_handler_pt handler, void *data,
    int argc, const char **argv, const size_t *argvlen, ngx_uint_t hold);
static void ngx_http_auth_pat_redis_release_held(
    ngx_http_auth_pat_redis_conn_t *conn, ngx_uint_t send);
static int ngx_http_auth_pat_redis_queue(
    ngx_http_auth_pat_redis_conn_t *conn, redisCallbackFn *fn, void *privdata,
    int argc, const char **argv, const size_t *argvlen);
static void ngx_http_auth_pat_redis_sub_reply(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_auth_pat_redis_poll_done_handler(ngx_event_t *ev);


/* per-worker state: the command connection and the subscriber */
static ngx_http_auth_pat_redis_conn_t  *ngx_http_auth_pat_redis_conn;
static ngx_http_auth_pat_redis_conn_t  *ngx_http_auth_pat_redis_sub;
static ngx_uint_t                       ngx_http_auth_pat_redis_polled;
static ngx_uint_t                       ngx_http_auth_pat_redis_backlog;
static ngx_event_t                      ngx_http_auth_pat_redis_poll_done;


/* --------------------------------------------------------- replies */


/*
 * hiredis' reader builds each reply with two or three malloc() calls per
 * element (the struct, then its string or element vector); an HMGET of
 * four fields is ten.  These functions build the same redisReply objects
 * in one block each, and keep freed blocks of the common small size on a
 * free list, so that a steady stream of lookups allocates nothing.
 * hiredis frees what the reader made through the same table.
 */

#define NGX_HTTP_AUTH_PAT_REPLY_BLOCK   128
#define NGX_HTTP_AUTH_PAT_REPLY_FREE    2048


static void                            *ngx_http_auth_pat_reply_free;
static ngx_uint_t                       ngx_http_auth_pat_reply_nfree;


static size_t
ngx_http_auth_pat_reply_size(int type, size_t n)
{
    switch (type) {

    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        return sizeof(redisReply) + n + 1;

    case REDIS_REPLY_ARRAY:
        return sizeof(redisReply) + n * sizeof(redisReply *);

    default:
        return sizeof(redisReply);
    }
}


static redisReply *
ngx_http_auth_pat_reply_alloc(const redisReadTask *task, int type, size_t n)
{
    size_t       size;
    redisReply  *r, *parent;

    size = ngx_http_auth_pat_reply_size(type, n);

    if (size <= NGX_HTTP_AUTH_PAT_REPLY_BLOCK
        && ngx_http_auth_pat_reply_free != NULL)
    {
        r = ngx_http_auth_pat_reply_free;
        ngx_http_auth_pat_reply_free = *(void **) r;
        ngx_http_auth_pat_reply_nfree--;

    } else {
        r = malloc(ngx_max(size, NGX_HTTP_AUTH_PAT_REPLY_BLOCK));
        if (r == NULL) {
            return NULL;
        }
    }

    ngx_memzero(r, sizeof(redisReply));
    r->type = type;

    if (task->parent != NULL) {
        parent = task->parent->obj;
        parent->element[task->idx] = r;
    }

    return r;
}


static void *
ngx_http_auth_pat_reply_string(const redisReadTask *task, char *str,
    size_t len)
{
    redisReply  *r;

    r = ngx_http_auth_pat_reply_alloc(task, task->type, len);
    if (r == NULL) {
        return NULL;
    }

    r->str = (char *) (r + 1);
    r->len = len;
    ngx_memcpy(r->str, str, len);
    r->str[len] = '\0';

    return r;
}


static void *
ngx_http_auth_pat_reply_array(const redisReadTask *task, int elements)
{
    redisReply  *r;

    r = ngx_http_auth_pat_reply_alloc(task, REDIS_REPLY_ARRAY, elements);
    if (r == NULL) {
        return NULL;
    }

    r->elements = elements;

    if (elements > 0) {
        r->element = (redisReply **) (r + 1);
        ngx_memzero(r->element, elements * sizeof(redisReply *));
    }

    return r;
}


static void *
ngx_http_auth_pat_reply_integer(const redisReadTask *task, long long value)
{
    redisReply  *r;

    r = ngx_http_auth_pat_reply_alloc(task, REDIS_REPLY_INTEGER, 0);
    if (r == NULL) {
        return NULL;
    }

    r->integer = value;

    return r;
}


static void *
ngx_http_auth_pat_reply_nil(const redisReadTask *task)
{
    return ngx_http_auth_pat_reply_alloc(task, REDIS_REPLY_NIL, 0);
}


static void
ngx_http_auth_pat_reply_release(void *obj)
{
    size_t       i, size;
    redisReply  *r = obj;

    if (r == NULL) {
        return;
    }

    if (r->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < r->elements; i++) {
            ngx_http_auth_pat_reply_release(r->element[i]);
        }
    }

    size = ngx_http_auth_pat_reply_size(r->type,
                                        r->type == REDIS_REPLY_ARRAY
                                        ? r->elements : r->len);

    if (size <= NGX_HTTP_AUTH_PAT_REPLY_BLOCK
        && ngx_http_auth_pat_reply_nfree < NGX_HTTP_AUTH_PAT_REPLY_FREE)
    {
        *(void **) r = ngx_http_auth_pat_reply_free;
        ngx_http_auth_pat_reply_free = r;
        ngx_http_auth_pat_reply_nfree++;
        return;
    }

    free(r);
}


static void
ngx_http_auth_pat_reply_drain(void)
{
    void  *r;

    while (ngx_http_auth_pat_reply_free != NULL) {
        r = ngx_http_auth_pat_reply_free;
        ngx_http_auth_pat_reply_free = *(void **) r;
        free(r);
    }

    ngx_http_auth_pat_reply_nfree = 0;
}


static redisReplyObjectFunctions  ngx_http_auth_pat_reply_fns = {
    ngx_http_auth_pat_reply_string,
    ngx_http_auth_pat_reply_array,
    ngx_http_auth_pat_reply_integer,
    ngx_http_auth_pat_reply_nil,
    ngx_http_auth_pat_reply_release
};


/* ------------------------------------------------------------ events */


static void
ngx_http_auth_pat_redis_add_event(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_event_t *ev, ngx_int_t event)
{
    if (ev->active) {
        return;
    }

    if (ngx_add_event(ev, event, NGX_LEVEL_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, conn->log, 0,
                      "auth_pat: redis: adding an event failed");
    }
}


static void
ngx_http_auth_pat_redis_del_event(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_event_t *ev, ngx_int_t event, ngx_uint_t flags)
{
    if (!ev->active) {
        return;
    }

    if (ngx_del_event(ev, event, flags) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, conn->log, 0,
                      "auth_pat: redis: deleting an event failed");
    }
}


static void
ngx_http_auth_pat_redis_add_read(void *privdata)
{
    ngx_http_auth_pat_redis_conn_t *conn = privdata;

    if (conn->c != NULL) {
        ngx_http_auth_pat_redis_add_event(conn, conn->c->read,
                                          NGX_READ_EVENT);
    }
}


static void
ngx_http_auth_pat_redis_del_read(void *privdata)
{
    ngx_http_auth_pat_redis_conn_t *conn = privdata;

    if (conn->c != NULL) {
        ngx_http_auth_pat_redis_del_event(conn, conn->c->read,
                                          NGX_READ_EVENT, 0);
    }
}


/*
 * A command queued while the connection is up is not written at once,
 * nor after epoll says the socket is writable: the write event is posted,
 * so that the commands of every request handled in this batch of events
 * go out in one write() after the batch, with no epoll_ctl() around it.
 * Only when that write is short (or the connect is still in progress)
 * does the socket wait for writability in epoll.
 */

static void
ngx_http_auth_pat_redis_add_write(void *privdata)
{
    ngx_http_auth_pat_redis_conn_t *conn = privdata;

    ngx_event_t  *wev;

    if (conn->c == NULL) {
        return;
    }

    wev = conn->c->write;

    if (!conn->flushing && !wev->active && conn->ac != NULL
        && (conn->ac->c.flags & REDIS_CONNECTED))
    {
        if (!wev->posted) {
            ngx_post_event(wev, &ngx_posted_events);
        }

        return;
    }

    ngx_http_auth_pat_redis_add_event(conn, wev, NGX_WRITE_EVENT);
}


static void
ngx_http_auth_pat_redis_del_write(void *privdata)
{
    ngx_http_auth_pat_redis_conn_t *conn = privdata;

    if (conn->c != NULL) {
        ngx_http_auth_pat_redis_del_event(conn, conn->c->write,
                                          NGX_WRITE_EVENT, 0);
    }
}


/*
 * hiredis is freeing the context (an error, or our redisAsyncFree()): it
 * has already run every pending callback, and closes the fd after this.
 */

static void
ngx_http_auth_pat_redis_cleanup(void *privdata)
{
    ngx_http_auth_pat_redis_conn_t *conn = privdata;

    ngx_connection_t  *c;

    c = conn->c;

    if (c != NULL) {
        /* hiredis closes the fd next, which takes it out of epoll */
        ngx_http_auth_pat_redis_del_event(conn, c->read, NGX_READ_EVENT,
                                          NGX_CLOSE_EVENT);
        ngx_http_auth_pat_redis_del_event(conn, c->write, NGX_WRITE_EVENT,
                                          NGX_CLOSE_EVENT);

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
        conn->c = NULL;
    }

    if (conn->ac != NULL && conn->ac->err && !conn->exiting) {

        if (conn->state == NGX_HTTP_AUTH_PAT_REDIS_READY) {
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "auth_pat: redis connection to \"%V\" lost: %s",
                          &conn->conf->addr_text, conn->ac->errstr);

        } else if (conn->ac->c.flags & REDIS_CONNECTED) {
            /*
             * Closed during the setup (a proxy with no backend, a TLS-only
             * port): a failed attempt like a refused connect, logged and
             * backed off.  A failed connect() is counted in on_connect(),
             * a timeout or a refusal where it is seen: those free the
             * context themselves, with no error set.
             */
            conn->failures++;
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "auth_pat: redis \"%V\" closed the connection "
                          "during its setup: %s",
                          &conn->conf->addr_text, conn->ac->errstr);
        }
    }

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: down", conn->name_len, conn->name);

    conn->ac = NULL;
    conn->state = NGX_HTTP_AUTH_PAT_REDIS_DOWN;

    ngx_http_auth_pat_redis_release_held(conn, 0);

    if (conn->subscribed) {
        conn->subscribed = 0;
        conn->on_state(conn->sub_data, 0);
    }

    ngx_http_auth_pat_redis_schedule(conn);
}


static void
ngx_http_auth_pat_redis_read_handler(ngx_event_t *ev)
{
    ngx_connection_t                *c = ev->data;
    ngx_http_auth_pat_redis_conn_t  *conn = c->data;

    if (conn->ac != NULL) {
        redisAsyncHandleRead(conn->ac);
    }
}


static void
ngx_http_auth_pat_redis_write_handler(ngx_event_t *ev)
{
    ngx_connection_t                *c = ev->data;
    ngx_http_auth_pat_redis_conn_t  *conn = c->data;

    if (conn->ac != NULL) {
        conn->flushing = 1;
        redisAsyncHandleWrite(conn->ac);
        conn->flushing = 0;
    }
}


/* ------------------------------------------------------ connection */


static void
ngx_http_auth_pat_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_auth_pat_redis_conn_t  *conn = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context right after this */
        conn->failures++;
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "auth_pat: connecting to redis \"%V\" failed: %s",
                      &conn->conf->addr_text, ac->errstr);
    }
}


static void
ngx_http_auth_pat_redis_handshake_done(void *data, redisReply *reply,
    ngx_int_t rc)
{
    ngx_http_auth_pat_redis_conn_t  *conn = data;

    u_char  *err;

    if (rc != NGX_OK) {
        /*
         * The context is being freed (a lost connection, a timeout, a
         * reset): that failure was counted and logged where it was seen.
         */
        conn->handshake_failed = 1;

    } else if (reply->type == REDIS_REPLY_ERROR) {
        err = (u_char *) reply->str;

        if (!conn->handshake_refused) {
            conn->handshake_refused = 1;
            ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                          "auth_pat: redis \"%V\" refused the connection "
                          "setup: %s", &conn->conf->addr_text, err);
        }
    }

    if (--conn->handshake_pending > 0) {
        return;
    }

    if (conn->handshake_refused) {
        conn->failures++;
        ngx_http_auth_pat_redis_reset(conn);
        return;
    }

    if (conn->handshake_failed) {
        return;
    }

    conn->state = NGX_HTTP_AUTH_PAT_REDIS_READY;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: ready", conn->name_len, conn->name);

    if (conn->was_ready) {
        ngx_log_error(NGX_LOG_NOTICE, conn->log, 0,
                      "auth_pat: redis \"%V\" connection restored",
                      &conn->conf->addr_text);

    } else {
        ngx_log_error(NGX_LOG_INFO, conn->log, 0,
                      "auth_pat: redis \"%V\" connected",
                      &conn->conf->addr_text);
    }

    conn->failures = 0;
    conn->was_ready = 1;

    ngx_http_auth_pat_redis_release_held(conn, 1);
}


/* one command of the handshake, written ahead of any held one */

static ngx_int_t
ngx_http_auth_pat_redis_setup(ngx_http_auth_pat_redis_conn_t *conn, int argc,
    const char **argv, const size_t *argvlen)
{
    if (ngx_http_auth_pat_redis_send(conn,
                                     ngx_http_auth_pat_redis_handshake_done,
                                     conn, argc, argv, argvlen, 0)
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
    int                              argc;
    u_char                           dbbuf[NGX_INT_T_LEN];
    size_t                           argvlen[4];
    ngx_uint_t                       i;
    const char                      *argv[4];
    ngx_http_auth_pat_redis_conf_t  *rcf;

    rcf = conn->conf;
    conn->handshake_pending = 0;
    conn->handshake_failed = 0;
    conn->handshake_refused = 0;


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

        if (ngx_http_auth_pat_redis_setup(conn, argc, argv, argvlen)
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

        if (ngx_http_auth_pat_redis_setup(conn, 2, argv, argvlen) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    argv[0] = "CLIENT";
    argvlen[0] = 6;
    argv[1] = "SETNAME";
    argvlen[1] = 7;
    argv[2] = (char *) conn->name;
    argvlen[2] = conn->name_len;

    if (ngx_http_auth_pat_redis_setup(conn, 3, argv, argvlen) != NGX_OK) {
        return NGX_ERROR;
    }

    for (i = 0; i < conn->nscripts; i++) {
        argv[0] = "SCRIPT";
        argvlen[0] = 6;
        argv[1] = "LOAD";
        argvlen[1] = 4;
        argv[2] = (char *) conn->scripts[i].body.data;
        argvlen[2] = conn->scripts[i].body.len;

        if (ngx_http_auth_pat_redis_setup(conn, 3, argv, argvlen) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    if (conn->probe_argc
        && ngx_http_auth_pat_redis_setup(conn, conn->probe_argc,
                                         conn->probe_argv,
                                         conn->probe_argvlen)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (conn->subscriber) {
        /* confirmed (or refused) after the replies above */
        argv[0] = "SUBSCRIBE";
        argvlen[0] = 9;
        argv[1] = (char *) conn->channel.data;
        argvlen[1] = conn->channel.len;

        if (ngx_http_auth_pat_redis_queue(conn,
                                          ngx_http_auth_pat_redis_sub_reply,
                                          conn, 2, argv, argvlen)
            != REDIS_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* subscribe confirmations and messages; NULL when the context goes */

static void
ngx_http_auth_pat_redis_sub_reply(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                      *reply = r;
    ngx_http_auth_pat_redis_conn_t  *conn = privdata;

    redisReply  *kind, *payload;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 3)
    {
        return;
    }

    kind = reply->element[0];
    payload = reply->element[2];

    if (kind->type != REDIS_REPLY_STRING) {
        return;
    }

    if (kind->len == 7 && ngx_strncmp(kind->str, "message", 7) == 0
        && payload->type == REDIS_REPLY_STRING)
    {
        conn->on_message(conn->sub_data, (u_char *) payload->str,
                         payload->len);
        return;
    }

    if (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0
        && conn->state == NGX_HTTP_AUTH_PAT_REDIS_READY && !conn->subscribed)
    {
        conn->subscribed = 1;

        ngx_log_debug2(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                       "auth_pat redis %*s: subscribed",
                       conn->name_len, conn->name);

        conn->on_state(conn->sub_data, 1);
    }
}


static void
ngx_http_auth_pat_redis_connect(ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_connection_t                *c;
    redisAsyncContext               *ac;
    ngx_http_auth_pat_redis_conf_t  *rcf;

    rcf = conn->conf;

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: connecting to \"%V\"",
                   conn->name_len, conn->name, &rcf->addr_text);

    if (rcf->unix_path.len) {
        ac = redisAsyncConnectUnix((char *) rcf->unix_path.data);

    } else {
        /* a numeric address, resolved when the configuration was read */
        ac = redisAsyncConnect((char *) rcf->host.data, (int) rcf->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "auth_pat: redis: out of memory");
        conn->failures++;
        ngx_http_auth_pat_redis_schedule(conn);
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                      "auth_pat: connecting to redis \"%V\" failed: %s",
                      &rcf->addr_text, ac->errstr);
        redisAsyncFree(ac);
        conn->failures++;
        ngx_http_auth_pat_redis_schedule(conn);
        return;
    }

    c = ngx_get_connection(ac->c.fd, conn->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        conn->failures++;
        ngx_http_auth_pat_redis_schedule(conn);
        return;
    }

    c->data = conn;
    c->read->handler = ngx_http_auth_pat_redis_read_handler;
    c->write->handler = ngx_http_auth_pat_redis_write_handler;
    c->read->log = conn->log;
    c->write->log = conn->log;

    conn->c = c;
    conn->ac = ac;
    conn->state = NGX_HTTP_AUTH_PAT_REDIS_HANDSHAKE;

    ac->data = conn;
    ac->ev.data = conn;
    ac->ev.addRead = ngx_http_auth_pat_redis_add_read;
    ac->ev.delRead = ngx_http_auth_pat_redis_del_read;
    ac->ev.addWrite = ngx_http_auth_pat_redis_add_write;
    ac->ev.delWrite = ngx_http_auth_pat_redis_del_write;
    ac->ev.cleanup = ngx_http_auth_pat_redis_cleanup;

    /* nothing is read yet: the reader has built no object */
    ac->c.reader->fn = &ngx_http_auth_pat_reply_fns;

    redisAsyncSetConnectCallback(ac, ngx_http_auth_pat_redis_on_connect);

    /* queued now, written once connect() completes */
    if (ngx_http_auth_pat_redis_handshake(conn) != NGX_OK) {
        conn->failures++;
        ngx_http_auth_pat_redis_reset(conn);
        return;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: handshake of %ui commands queued",
                   conn->name_len, conn->name, conn->handshake_pending);
}


static void
ngx_http_auth_pat_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_auth_pat_redis_conn_t  *conn = ev->data;

    if (conn->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (conn->ac == NULL) {
        ngx_http_auth_pat_redis_connect(conn);
    }
}


/* exponential backoff with jitter: [d/2, d], d = 100 ms << failures */

static void
ngx_http_auth_pat_redis_schedule(ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_msec_t  delay;

    if (conn->exiting || conn->reconnect.timer_set) {
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


/* frees the context; hiredis defers this while inside a callback */

static void
ngx_http_auth_pat_redis_reset(ngx_http_auth_pat_redis_conn_t *conn)
{
    if (conn->ac == NULL) {
        return;
    }

    conn->state = NGX_HTTP_AUTH_PAT_REDIS_DOWN;
    redisAsyncFree(conn->ac);
}


/* -------------------------------------------------------- commands */


/*
 * The RESP encoding of a command, made in a buffer the connection keeps,
 * and handed to hiredis preformatted: redisAsyncCommandArgv() would build
 * it with sdscatfmt() and a string of reallocations on every request.
 */

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


/* the length of the encoding in conn->out; 0 when out of memory */

static size_t
ngx_http_auth_pat_redis_format(ngx_http_auth_pat_redis_conn_t *conn,
    int argc, const char **argv, const size_t *argvlen)
{
    int      i;
    u_char  *p;
    size_t   len;

    /* NUL-terminated, as hiredis' own: it scans the command with strchr() */
    len = 1 + NGX_SIZE_T_LEN + 2 + 1;

    for (i = 0; i < argc; i++) {
        len += 1 + NGX_SIZE_T_LEN + 2 + argvlen[i] + 2;
    }

    if (len > conn->out_size) {
        p = ngx_alloc(len, conn->log);
        if (p == NULL) {
            return 0;
        }

        if (conn->out != NULL) {
            ngx_free(conn->out);
        }

        conn->out = p;
        conn->out_size = len;
    }

    p = ngx_http_auth_pat_redis_header(conn->out, '*', argc);

    for (i = 0; i < argc; i++) {
        p = ngx_http_auth_pat_redis_header(p, '$', argvlen[i]);
        p = ngx_cpymem(p, argv[i], argvlen[i]);
        *p++ = '\r';
        *p++ = '\n';
    }

    *p = '\0';

    return p - conn->out;
}


static int
ngx_http_auth_pat_redis_queue(ngx_http_auth_pat_redis_conn_t *conn,
    redisCallbackFn *fn, void *privdata, int argc, const char **argv,
    const size_t *argvlen)
{
    size_t  len;

    len = ngx_http_auth_pat_redis_format(conn, argc, argv, argvlen);
    if (len == 0) {
        return REDIS_ERR;
    }

    return redisAsyncFormattedCommand(conn->ac, fn, privdata,
                                      (char *) conn->out, len);
}



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


static void
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

    if (conn->nfree < NGX_HTTP_AUTH_PAT_REDIS_FREE_CMDS && !conn->exiting) {
        ngx_queue_insert_head(&conn->free_cmds, &cmd->queue);
        conn->nfree++;
        return;
    }

    ngx_free(cmd);
}


static void
ngx_http_auth_pat_redis_timeout(ngx_event_t *ev)
{
    ngx_http_auth_pat_redis_cmd_t       *cmd = ev->data;
    ngx_http_auth_pat_redis_conn_t      *conn = cmd->conn;
    ngx_http_auth_pat_redis_handler_pt   handler;

    ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                  "auth_pat: redis \"%V\" did not answer within %M ms, "
                  "reconnecting", &conn->conf->addr_text,
                  conn->conf->timeout);

    conn->failures++;

    /*
     * Only a command written to Redis has a timer.  The reset below frees
     * cmd: hiredis hands it its NULL reply.  A handshake command's
     * handler is not told: the reset fails the whole handshake, and with
     * it the commands held behind it.
     */
    cmd->done = 1;
    handler = cmd->handler;
    cmd->handler = NULL;

    if (handler != NULL && handler != ngx_http_auth_pat_redis_handshake_done) {
        handler(cmd->data, NULL, NGX_ERROR);
    }

    ngx_http_auth_pat_redis_reset(conn);
}


/*
 * Held commands go to hiredis once the handshake succeeds (send), or fail
 * with the connection.  Cancelled and timed out ones are only freed, and
 * so is everything when the worker exits.
 */

static void
ngx_http_auth_pat_redis_release_held(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_uint_t send)
{
    ngx_queue_t                         *q;
    ngx_http_auth_pat_redis_cmd_t       *cmd;
    ngx_http_auth_pat_redis_handler_pt   handler;

    while (!ngx_queue_empty(&conn->held)) {
        q = ngx_queue_head(&conn->held);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_auth_pat_redis_cmd_t, queue);

        if (cmd->done || cmd->handler == NULL || conn->exiting) {
            ngx_http_auth_pat_redis_cmd_free(cmd);
            continue;
        }

        if (send && conn->ac != NULL
            && redisAsyncFormattedCommand(conn->ac,
                                          ngx_http_auth_pat_redis_reply, cmd,
                                          (char *) cmd->held, cmd->held_len)
               == REDIS_OK)
        {
            ngx_free(cmd->held);
            cmd->held = NULL;
            ngx_add_timer(&cmd->timer, conn->conf->timeout);

            ngx_log_debug1(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                           "auth_pat redis held command %p queued", cmd);
            continue;
        }

        cmd->done = 1;
        handler = cmd->handler;
        cmd->handler = NULL;

        handler(cmd->data, NULL, NGX_ERROR);

        ngx_http_auth_pat_redis_cmd_free(cmd);
    }
}


static ngx_uint_t
ngx_http_auth_pat_redis_fatal_error(redisReply *reply)
{
    static const char  *fatal[] = {
        "NOPERM", "NOAUTH", "WRONGPASS", "LOADING", "READONLY",
        "MASTERDOWN", "MISCONF", NULL
    };

    size_t       len;
    const char **p;

    for (p = fatal; *p; p++) {
        len = ngx_strlen(*p);

        if (reply->len >= len && ngx_strncmp(reply->str, *p, len) == 0) {
            return 1;
        }
    }

    return 0;
}


static ngx_int_t
ngx_http_auth_pat_redis_retry_eval(ngx_http_auth_pat_redis_cmd_t *cmd)
{
    int                               argc, i;
    size_t                            argvlen[64];
    const char                       *argv[64];
    ngx_http_auth_pat_redis_conn_t   *conn = cmd->conn;
    ngx_http_auth_pat_redis_script_t *script;

    if (conn->ac == NULL || cmd->argc + 2 > 64) {
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

    if (ngx_http_auth_pat_redis_queue(conn, ngx_http_auth_pat_redis_reply,
                                      cmd, argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_auth_pat_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                      *reply = r;
    ngx_http_auth_pat_redis_cmd_t   *cmd = privdata;
    ngx_http_auth_pat_redis_conn_t  *conn = cmd->conn;

    if (cmd->done || cmd->handler == NULL || conn->exiting) {
        /*
         * Timed out or cancelled: a late reply, dropped.  Or the worker
         * is exiting and hiredis hands out NULL replies: no request is
         * resumed from exit_process.
         */
        ngx_http_auth_pat_redis_cmd_free(cmd);
        return;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {

        if (cmd->script != NGX_CONF_UNSET_UINT && !cmd->retried
            && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
        {
            ngx_log_error(NGX_LOG_NOTICE, conn->log, 0,
                          "auth_pat: redis lost script %s, sending it again",
                          conn->scripts[cmd->script].sha);

            if (ngx_http_auth_pat_redis_retry_eval(cmd) == NGX_OK) {
                return;
            }

            reply = NULL;

        } else if (cmd->handler != ngx_http_auth_pat_redis_handshake_done
                   && ngx_http_auth_pat_redis_fatal_error(reply))
        {
            /*
             * The server cannot serve us (ACL, auth, loading, replica).
             * The caller sees an unavailable store; the log gets one line
             * here, then one per reconnect from the handshake, never one
             * per request.
             */
            if (conn->state == NGX_HTTP_AUTH_PAT_REDIS_READY) {
                ngx_log_error(NGX_LOG_ERR, conn->log, 0,
                              "auth_pat: redis \"%V\" error: %s, "
                              "reconnecting", &conn->conf->addr_text,
                              reply->str);
                conn->failures++;
                ngx_http_auth_pat_redis_reset(conn);
            }

            reply = NULL;
        }
    }

    cmd->done = 1;

    if (cmd->timer.timer_set) {
        ngx_del_timer(&cmd->timer);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis command %p answered, reply type %d",
                   cmd, reply ? reply->type : 0);

    cmd->handler(cmd->data, reply, reply ? NGX_OK : NGX_ERROR);

    ngx_http_auth_pat_redis_cmd_free(cmd);
}


static ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_redis_send(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_handler_pt handler, void *data,
    int argc, const char **argv, const size_t *argvlen, ngx_uint_t hold)
{
    size_t                          len;
    ngx_http_auth_pat_redis_cmd_t  *cmd;

    if (conn->ac == NULL) {
        return NULL;
    }

    cmd = ngx_http_auth_pat_redis_cmd_alloc(conn);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->handler = handler;
    cmd->data = data;

    if (hold) {
        len = ngx_http_auth_pat_redis_format(conn, argc, argv, argvlen);

        cmd->held = (len == 0) ? NULL : ngx_alloc(len + 1, conn->log);
        if (cmd->held == NULL) {
            ngx_http_auth_pat_redis_cmd_free(cmd);
            return NULL;
        }

        ngx_memcpy(cmd->held, conn->out, len + 1);
        cmd->held_len = len;

        ngx_queue_insert_tail(&conn->held, &cmd->queue);

    } else if (ngx_http_auth_pat_redis_queue(conn,
                                             ngx_http_auth_pat_redis_reply,
                                             cmd, argc, argv, argvlen)
               != REDIS_OK)
    {
        ngx_http_auth_pat_redis_cmd_free(cmd);
        return NULL;
    }

    cmd->timer.handler = ngx_http_auth_pat_redis_timeout;
    cmd->timer.data = cmd;
    cmd->timer.log = conn->log;

    /*
     * The deadline runs from when the command is written.  A held one
     * waits for the handshake, whose commands have deadlines of their
     * own: were it timed from now, a Redis slow enough (a third of the
     * timeout per round trip) would see every connection reset as soon
     * as its handshake is done.
     */
    if (!hold) {
        ngx_add_timer(&cmd->timer, conn->conf->timeout);
    }

    ngx_log_debug6(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                   "auth_pat redis %*s: command %p %*s %s",
                   conn->name_len, conn->name, cmd, argvlen[0], argv[0],
                   hold ? "held until the handshake is done" : "queued");

    return cmd;
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_redis_command(ngx_http_auth_pat_redis_handler_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen)
{
    ngx_http_auth_pat_redis_conn_t  *conn = ngx_http_auth_pat_redis_conn;

    if (conn == NULL || conn->state == NGX_HTTP_AUTH_PAT_REDIS_DOWN) {
        return NULL;
    }

    /* during the handshake, held until it succeeds */
    return ngx_http_auth_pat_redis_send(conn, handler, data, argc, argv,
                                        argvlen,
                                        conn->state
                                        != NGX_HTTP_AUTH_PAT_REDIS_READY);
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_redis_eval(ngx_http_auth_pat_redis_handler_pt handler,
    void *data, ngx_uint_t script, int argc, const char **argv,
    const size_t *argvlen)
{
    int                              i;
    u_char                          *p;
    size_t                           size, full_len[64];
    const char                      *full[64];
    ngx_http_auth_pat_redis_cmd_t   *cmd;
    ngx_http_auth_pat_redis_conn_t  *conn = ngx_http_auth_pat_redis_conn;

    if (conn == NULL || conn->state == NGX_HTTP_AUTH_PAT_REDIS_DOWN
        || script >= conn->nscripts || argc + 2 > 64)
    {
        return NULL;
    }

    full[0] = "EVALSHA";
    full_len[0] = 7;
    full[1] = (char *) conn->scripts[script].sha;
    full_len[1] = 40;

    /* one block: argv[], argvlen[], then the bytes */
    size = argc * (sizeof(char *) + sizeof(size_t));

    for (i = 0; i < argc; i++) {
        full[i + 2] = argv[i];
        full_len[i + 2] = argvlen[i];
        size += argvlen[i];
    }

    cmd = ngx_http_auth_pat_redis_send(conn, handler, data, argc + 2, full,
                                       full_len,
                                       conn->state
                                       != NGX_HTTP_AUTH_PAT_REDIS_READY);
    if (cmd == NULL) {
        return NULL;
    }

    cmd->argv = ngx_alloc(size, conn->log);
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


void
ngx_http_auth_pat_redis_cancel(ngx_http_auth_pat_redis_cmd_t *cmd)
{
    /* the timer stays: a command that never completes still means a
     * hung server, and its timeout resets the connection */
    cmd->handler = NULL;
}


ngx_uint_t
ngx_http_auth_pat_redis_ready(void)
{
    return ngx_http_auth_pat_redis_conn != NULL
           && ngx_http_auth_pat_redis_conn->state
              == NGX_HTTP_AUTH_PAT_REDIS_READY;
}


/* -------------------------------------------------------- lifecycle */


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


static ngx_http_auth_pat_redis_conn_t *
ngx_http_auth_pat_redis_conn_create(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conf_t *rcf, const char *role)
{
    ngx_http_auth_pat_redis_conn_t  *conn;

    conn = ngx_pcalloc(cycle->pool, sizeof(ngx_http_auth_pat_redis_conn_t));
    if (conn == NULL) {
        return NULL;
    }

    conn->conf = rcf;
    conn->log = cycle->log;
    conn->name_len = ngx_sprintf(conn->name, "auth_pat:%s:%P", role,
                                 ngx_pid)
                     - conn->name;

    ngx_queue_init(&conn->free_cmds);
    ngx_queue_init(&conn->held);

    conn->reconnect.handler = ngx_http_auth_pat_redis_reconnect_handler;
    conn->reconnect.data = conn;
    conn->reconnect.log = cycle->log;
    conn->reconnect.cancelable = 1;

    return conn;
}


ngx_int_t
ngx_http_auth_pat_redis_init_process(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conf_t *rcf,
    ngx_http_auth_pat_redis_script_t *scripts, ngx_uint_t n,
    int probe_argc, const char **probe_argv, size_t *probe_argvlen)
{
    ngx_http_auth_pat_redis_conn_t  *conn;

    conn = ngx_http_auth_pat_redis_conn_create(cycle, rcf, "cmd");
    if (conn == NULL) {
        return NGX_ERROR;
    }

    conn->scripts = scripts;
    conn->nscripts = n;
    conn->probe_argc = probe_argc;
    conn->probe_argv = probe_argv;
    conn->probe_argvlen = probe_argvlen;

    ngx_http_auth_pat_redis_conn = conn;

    ngx_http_auth_pat_redis_connect(conn);

    return NGX_OK;
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

    ngx_http_auth_pat_redis_connect(conn);

    return NGX_OK;
}


/*
 * Reads what the subscriber socket already holds, without waiting: reads
 * (hiredis takes at most 16k at a time) until FIONREAD says the socket is
 * empty.  Messages are applied, and a closed connection is noticed,
 * before the caller decides whether to trust its cache.
 *
 * Once per batch of events is enough: an invalidation that matters to a
 * request of this batch was published before the revoke's 2xx, hence
 * before the request was sent; with Redis on this host it was in the
 * socket before epoll_wait() returned the batch.  A posted event clears
 * the mark after the batch.
 */

static void
ngx_http_auth_pat_redis_poll_done_handler(ngx_event_t *ev)
{
    ngx_http_auth_pat_redis_polled = 0;
    ngx_http_auth_pat_redis_backlog = 0;
}


/*
 * Returns 0 when invalidations are still unread: a flood of more than
 * NGX_HTTP_AUTH_PAT_REDIS_POLL_READS reads (1 MB) is not read in one
 * request's access check; the cache is not trusted until the event loop
 * has read the rest.
 */

ngx_uint_t
ngx_http_auth_pat_redis_poll(void)
{
    int                              n;
    ngx_uint_t                       reads;
    ngx_http_auth_pat_redis_conn_t  *conn = ngx_http_auth_pat_redis_sub;

    if (conn == NULL || ngx_http_auth_pat_redis_polled) {
        return !ngx_http_auth_pat_redis_backlog;
    }

    ngx_http_auth_pat_redis_polled = 1;
    ngx_post_event(&ngx_http_auth_pat_redis_poll_done, &ngx_posted_events);

    for (reads = 0; conn->subscribed && conn->ac != NULL; reads++) {

        if (reads == NGX_HTTP_AUTH_PAT_REDIS_POLL_READS) {
            ngx_http_auth_pat_redis_backlog = 1;
            return 0;
        }

        redisAsyncHandleRead(conn->ac);

        if (conn->c == NULL || ngx_socket_nread(conn->c->fd, &n) == -1
            || n <= 0)
        {
            break;
        }
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


static void
ngx_http_auth_pat_redis_conn_free(ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_queue_t                    *q;
    ngx_http_auth_pat_redis_cmd_t  *cmd;

    conn->exiting = 1;

    if (conn->reconnect.timer_set) {
        ngx_del_timer(&conn->reconnect);
    }

    if (conn->ac != NULL) {
        redisAsyncFree(conn->ac);
    }

    while (!ngx_queue_empty(&conn->free_cmds)) {
        q = ngx_queue_head(&conn->free_cmds);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_auth_pat_redis_cmd_t, queue);
        ngx_free(cmd);
    }

    if (conn->out != NULL) {
        ngx_free(conn->out);
        conn->out = NULL;
    }
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

    if (ngx_http_auth_pat_redis_conn != NULL) {
        ngx_http_auth_pat_redis_conn_free(ngx_http_auth_pat_redis_conn);
        ngx_http_auth_pat_redis_conn = NULL;
    }

    ngx_http_auth_pat_reply_drain();
}
