
/*
 * Redis Sentinel.  Before each connect to the master, a follower (the
 * command, API or subscriber connection) asks the sentinels which node
 * it is: in order, each for at most min(timeout, 500ms), on one query
 * connection; the sentinel that answered moves to the front.  The
 * answer serves that one connect: a reconnect asks again, and the node
 * must say ROLE master (redis_conn.c leaves it otherwise).  Followers
 * that ask while a query runs share its answer.
 *
 * A watcher, subscribed to +switch-master on one sentinel (the next one
 * after a failure), restarts every follower that is not on the new
 * master.  Nodes are reported as IP addresses: a hostname is refused, as
 * a worker never resolves names.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_auth_pat_redis_sentinel.h"


#define NGX_HTTP_AUTH_PAT_SENTINEL_FOLLOWERS  4   /* cmd, api, sub */
#define NGX_HTTP_AUTH_PAT_SENTINEL_LOG_EVERY  10000   /* ms */


typedef struct {
    ngx_http_auth_pat_redis_conf_t   *conf;      /* the master's */

    /* positions in conf->sentinels; the front answered last */
    ngx_uint_t                       *order;
    ngx_msec_t                       *logged;    /* their answers' lines */
    ngx_http_auth_pat_redis_logged_t  *query_logged;
    ngx_http_auth_pat_redis_logged_t  *watch_logged;

    ngx_http_auth_pat_redis_conn_t   *query;
    ngx_http_auth_pat_redis_conn_t   *watch;
    ngx_uint_t                        watch_next;

    /* the command connection: the others go to its node while it is up */
    ngx_http_auth_pat_redis_conn_t   *primary;
    ngx_http_auth_pat_redis_conn_t
                          *followers[NGX_HTTP_AUTH_PAT_SENTINEL_FOLLOWERS];
    ngx_uint_t                        nfollowers;
    ngx_uint_t                        waiting;   /* a bit per follower */

    ngx_uint_t                        tried;     /* asked in this round */
    ngx_uint_t                        asked;     /* the sentinel asked now */
    ngx_int_t                         result;
    ngx_event_t                       next;      /* posted: go on */
    ngx_sockaddr_t                    master;
    socklen_t                         master_len;
    ngx_msec_t                        none_logged;

    unsigned                          asking:1;
    unsigned                          stale:1;   /* a switch came meanwhile */
    unsigned                          verify:1;  /* followers to be checked */
    unsigned                          watched:1; /* the watch was up once */
} ngx_http_auth_pat_redis_sentinel_t;


static ngx_http_auth_pat_redis_sentinel_t  *ngx_http_auth_pat_sentinel;


static void ngx_http_auth_pat_redis_sentinel_ask(
    ngx_http_auth_pat_redis_sentinel_t *s);


/* the position of conn's sentinel, or NGX_ERROR */

static ngx_int_t
ngx_http_auth_pat_redis_sentinel_index(ngx_http_auth_pat_redis_sentinel_t *s,
    ngx_http_auth_pat_redis_conn_t *conn)
{
    if (conn->addr >= s->conf->sentinels
        && conn->addr < s->conf->sentinels + s->conf->nsentinels)
    {
        return conn->addr - s->conf->sentinels;
    }

    return NGX_ERROR;
}


/* sentinel k is asked first next time */

static void
ngx_http_auth_pat_redis_sentinel_front(ngx_http_auth_pat_redis_sentinel_t *s,
    ngx_uint_t k)
{
    ngx_uint_t  i;

    for (i = 0; i < s->conf->nsentinels && s->order[i] != k; i++) {
        /* void */
    }

    if (i == s->conf->nsentinels) {
        return;
    }

    ngx_memmove(&s->order[1], &s->order[0], i * sizeof(ngx_uint_t));
    s->order[0] = k;
}


/* conn (the query or the watch) goes to sentinel k */

static void
ngx_http_auth_pat_redis_sentinel_move(ngx_http_auth_pat_redis_sentinel_t *s,
    ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_logged_t *logged, ngx_uint_t k)
{
    ngx_int_t  from;

    if (conn->addr == &s->conf->sentinels[k]) {
        return;
    }

    from = ngx_http_auth_pat_redis_sentinel_index(s, conn);

    ngx_http_auth_pat_redis_log_move(conn,
                                     from != NGX_ERROR ? &logged[from] : NULL,
                                     &logged[k]);

    conn->addr = &s->conf->sentinels[k];
}


/* one line per sentinel per 10 s */

static ngx_uint_t
ngx_http_auth_pat_redis_sentinel_log(ngx_http_auth_pat_redis_sentinel_t *s,
    ngx_uint_t k)
{
    if (s->logged[k]
        && ngx_current_msec - s->logged[k]
           < NGX_HTTP_AUTH_PAT_SENTINEL_LOG_EVERY)
    {
        return 0;
    }

    s->logged[k] = ngx_current_msec ? ngx_current_msec : 1;

    return 1;
}


/* "IP" and "port" (a string) as a sockaddr */

static ngx_int_t
ngx_http_auth_pat_redis_sentinel_addr(u_char *ip, size_t len, u_char *port,
    size_t port_len, ngx_sockaddr_t *sa, socklen_t *salen)
{
    return ngx_http_auth_pat_redis_ip(ip, len, ngx_atoi(port, port_len), sa,
                                      salen);
}


/* SENTINEL get-master-addr-by-name: [IP, port], nil, or an error */

static void
ngx_http_auth_pat_redis_sentinel_asked(void *data, redisReply *reply,
    ngx_int_t rc)
{
    ngx_http_auth_pat_redis_sentinel_t  *s = data;

    ngx_uint_t   k;
    ngx_str_t   *name, *addr;
    redisReply  *ip, *port;

    k = s->asked;
    addr = &s->conf->sentinels[k].text;
    name = &s->conf->sentinel_name;

    s->result = NGX_DECLINED;

    /* a failed connection or command was logged where it was seen */

    if (rc == NGX_OK && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 2
        && reply->element[0]->type == REDIS_REPLY_STRING
        && reply->element[1]->type == REDIS_REPLY_STRING)
    {
        ip = reply->element[0];
        port = reply->element[1];

        if (ngx_http_auth_pat_redis_sentinel_addr((u_char *) ip->str,
                                                  ip->len,
                                                  (u_char *) port->str,
                                                  port->len, &s->master,
                                                  &s->master_len)
            == NGX_OK)
        {
            s->result = NGX_OK;

        } else if (ngx_http_auth_pat_redis_sentinel_log(s, k)) {
            ngx_log_error(NGX_LOG_ERR, s->query->log, 0,
                          "auth_pat: sentinel \"%V\" names \"%*s\" port "
                          "\"%*s\" as the master of \"%V\": refused, a "
                          "worker connects to IP addresses only (announce "
                          "IPs)", addr, ngx_min(ip->len, 256), ip->str,
                          ngx_min(port->len, 16), port->str, name);
        }

    } else if (rc == NGX_OK && ngx_http_auth_pat_redis_sentinel_log(s, k)) {
        if (reply->type == REDIS_REPLY_NIL) {
            ngx_log_error(NGX_LOG_ERR, s->query->log, 0,
                          "auth_pat: sentinel \"%V\" knows no master named "
                          "\"%V\"", addr, name);

        } else if (reply->type == REDIS_REPLY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, s->query->log, 0,
                          "auth_pat: sentinel \"%V\" refused to name the "
                          "master of \"%V\": %*s", addr, name,
                          ngx_min(reply->len, 256), reply->str);

        } else {
            ngx_log_error(NGX_LOG_ERR, s->query->log, 0,
                          "auth_pat: sentinel \"%V\" answered an unexpected "
                          "reply when asked for the master of \"%V\"",
                          addr, name);
        }
    }

    /* from the event loop: this runs inside the query connection's read */
    ngx_post_event(&s->next, &ngx_posted_events);
}


static void
ngx_http_auth_pat_redis_sentinel_ask(ngx_http_auth_pat_redis_sentinel_t *s)
{
    size_t                           argvlen[3];
    const char                      *argv[3];
    ngx_http_auth_pat_redis_conn_t  *q;

    s->asked = s->order[s->tried];
    q = s->query;

    if (q->c != NULL && q->addr != &s->conf->sentinels[s->asked]) {
        /* the query goes to another sentinel now */
        q->down_logged = 1;
        ngx_http_auth_pat_redis_reset(q);
    }

    if (q->c == NULL) {
        ngx_http_auth_pat_redis_sentinel_move(s, q, s->query_logged,
                                              s->asked);
        ngx_http_auth_pat_redis_connect(q);
    }

    argv[0] = "SENTINEL";
    argvlen[0] = 8;
    argv[1] = "get-master-addr-by-name";
    argvlen[1] = 23;
    argv[2] = (char *) s->conf->sentinel_name.data;
    argvlen[2] = s->conf->sentinel_name.len;

    if (ngx_http_auth_pat_redis_send(q, NGX_HTTP_AUTH_PAT_REDIS_READ,
                                     ngx_http_auth_pat_redis_sentinel_asked,
                                     s, 3, argv, argvlen)
        == NULL)
    {
        s->result = NGX_DECLINED;
        ngx_post_event(&s->next, &ngx_posted_events);
    }
}


/* a query, unless one runs */

static void
ngx_http_auth_pat_redis_sentinel_query(ngx_http_auth_pat_redis_sentinel_t *s)
{
    if (s->asking) {
        return;
    }

    s->asking = 1;
    s->tried = 0;
    ngx_http_auth_pat_redis_sentinel_ask(s);
}


/* f is connected (or connecting) to a node, and it is not sa */

static ngx_uint_t
ngx_http_auth_pat_redis_sentinel_elsewhere(ngx_http_auth_pat_redis_conn_t *f,
    struct sockaddr *sa, socklen_t len)
{
    return f->c != NULL && f->addr == &f->found
           && ngx_cmp_sockaddr(f->found.sockaddr, f->found.socklen, sa, len, 1)
              != NGX_OK;
}


static void
ngx_http_auth_pat_redis_sentinel_next(ngx_event_t *ev)
{
    ngx_http_auth_pat_redis_sentinel_t *s = ev->data;

    ngx_uint_t                       i, waiting, verify;
    ngx_http_auth_pat_redis_conn_t  *f;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        /* no new connection on the way out */
        s->asking = 0;
        s->waiting = 0;
        return;
    }

    if (s->stale) {
        /* a switch came after the question: ask again, its sentinel first */
        s->stale = 0;
        s->tried = 0;
        ngx_http_auth_pat_redis_sentinel_ask(s);
        return;
    }

    if (s->result != NGX_OK && ++s->tried < s->conf->nsentinels) {
        ngx_http_auth_pat_redis_sentinel_ask(s);
        return;
    }

    if (s->result == NGX_OK) {
        ngx_http_auth_pat_redis_sentinel_front(s, s->asked);

    } else if (s->none_logged == 0
               || ngx_current_msec - s->none_logged
                  >= NGX_HTTP_AUTH_PAT_SENTINEL_LOG_EVERY)
    {
        s->none_logged = ngx_current_msec ? ngx_current_msec : 1;
        ngx_log_error(NGX_LOG_ERR, s->query->log, 0,
                      "auth_pat: no sentinel named the master of \"%V\"",
                      &s->conf->sentinel_name);
    }

    s->asking = 0;
    s->tried = 0;

    waiting = s->waiting;
    s->waiting = 0;
    verify = s->verify;
    s->verify = 0;

    for (i = 0; i < s->nfollowers; i++) {
        f = s->followers[i];

        if (f->exiting) {
            continue;
        }

        if (!(waiting & (1 << i))) {
            /* connected meanwhile: on the node named now? */
            if (verify && s->result == NGX_OK
                && ngx_http_auth_pat_redis_sentinel_elsewhere(f,
                                              &s->master.sockaddr,
                                              s->master_len))
            {
                ngx_http_auth_pat_redis_restart(f);
            }

            continue;
        }

        if (f->c != NULL) {
            continue;
        }

        if (s->result != NGX_OK) {
            f->failures++;
            ngx_http_auth_pat_redis_schedule(f);
            continue;
        }

        ngx_http_auth_pat_redis_found(f, &s->master.sockaddr,
                                               s->master_len);
        ngx_http_auth_pat_redis_connect(f);
    }
}


/*
 * The locate hook of a follower.  The API's connection and the
 * subscriber go where the command connection is, when it is up: one
 * node for reads, writes and invalidations.  Otherwise NGX_AGAIN: the
 * sentinels are asked, and it connects once told.
 */

static ngx_int_t
ngx_http_auth_pat_redis_sentinel_locate(ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_uint_t                           i;
    ngx_http_auth_pat_redis_conn_t      *p;
    ngx_http_auth_pat_redis_sentinel_t  *s = conn->locate_data;

    p = s->primary;

    if (p != NULL && p != conn && p->state == NGX_HTTP_AUTH_PAT_REDIS_READY
        && p->addr == &p->found)
    {
        ngx_http_auth_pat_redis_found(conn, p->found.sockaddr,
                                               p->found.socklen);
        return NGX_OK;
    }

    for (i = 0; i < s->nfollowers; i++) {
        if (s->followers[i] == conn) {
            s->waiting |= 1 << i;
        }
    }

    ngx_http_auth_pat_redis_sentinel_query(s);

    return NGX_AGAIN;
}


/* the watcher connects to the next sentinel each time */

static ngx_int_t
ngx_http_auth_pat_redis_sentinel_watch_locate(
    ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_http_auth_pat_redis_sentinel_t  *s = conn->locate_data;

    ngx_http_auth_pat_redis_sentinel_move(s, conn, s->watch_logged,
                              s->order[s->watch_next % s->conf->nsentinels]);
    s->watch_next++;

    return NGX_OK;
}


/* the watch's sentinel, known to be up to date, is asked first */

static void
ngx_http_auth_pat_redis_sentinel_trust_watch(
    ngx_http_auth_pat_redis_sentinel_t *s)
{
    ngx_int_t  k;

    k = ngx_http_auth_pat_redis_sentinel_index(s, s->watch);

    if (k != NGX_ERROR) {
        ngx_http_auth_pat_redis_sentinel_front(s, k);
    }
}


/*
 * "+switch-master": "NAME OLD-IP OLD-PORT NEW-IP NEW-PORT"; the name
 * may hold spaces, so the four fields are taken from the end
 */

static void
ngx_http_auth_pat_redis_sentinel_switched(void *data, u_char *msg,
    size_t len)
{
    ngx_http_auth_pat_redis_sentinel_t *s = data;

    u_char                          *p, *field[4];
    size_t                           flen[4];
    socklen_t                        salen;
    ngx_int_t                        n;
    ngx_uint_t                       i;
    ngx_sockaddr_t                   sa;
    ngx_http_auth_pat_redis_conn_t  *f;

    p = msg + len;

    for (n = 3; n >= 0; n--) {
        flen[n] = 0;

        while (p > msg && p[-1] != ' ') {
            p--;
            flen[n]++;
        }

        field[n] = p;

        if (p == msg) {
            return;
        }

        p--;   /* the space */
    }

    if ((size_t) (p - msg) != s->conf->sentinel_name.len
        || ngx_strncmp(msg, s->conf->sentinel_name.data, p - msg) != 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, s->watch->log, 0,
                  "auth_pat: sentinel \"%V\" reports a new master of "
                  "\"%V\": %*s port %*s", &s->watch->addr->text,
                  &s->conf->sentinel_name, ngx_min(flen[2], 64), field[2],
                  ngx_min(flen[3], 8), field[3]);

    if (ngx_http_auth_pat_redis_sentinel_addr(field[2], flen[2], field[3],
                                              flen[3], &sa, &salen)
        != NGX_OK)
    {
        salen = 0;
    }

    /* the other sentinels hear of it only later (their hello messages) */
    ngx_http_auth_pat_redis_sentinel_trust_watch(s);

    if (s->asking) {
        s->stale = 1;
    }

    for (i = 0; i < s->nfollowers; i++) {
        f = s->followers[i];

        if (s->waiting & (1 << i)) {
            /* it connects after the question asked again */
            f->failures = 0;
            continue;
        }

        if (salen && f->c != NULL
            && !ngx_http_auth_pat_redis_sentinel_elsewhere(f, &sa.sockaddr,
                                                           salen))
        {
            /* already there */
            continue;
        }

        ngx_http_auth_pat_redis_restart(f);
    }
}


/*
 * The watch is subscribed again: a switch may have come while it was
 * not, so the followers are checked against the master named now (the
 * first time, they have just asked)
 */

static void
ngx_http_auth_pat_redis_sentinel_watching(void *data, ngx_uint_t up)
{
    ngx_http_auth_pat_redis_sentinel_t *s = data;

    ngx_log_debug2(NGX_LOG_DEBUG_EVENT, s->watch->log, 0,
                   "auth_pat sentinel watch on \"%V\": %s",
                   &s->watch->addr->text, up ? "up" : "down");

    if (!up) {
        return;
    }

    if (!s->watched) {
        s->watched = 1;
        return;
    }

    ngx_http_auth_pat_redis_sentinel_trust_watch(s);

    if (s->asking) {
        s->stale = 1;
    }

    s->verify = 1;
    ngx_http_auth_pat_redis_sentinel_query(s);
}


ngx_uint_t
ngx_http_auth_pat_redis_sentinel_with_primary(
    ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_http_auth_pat_redis_conn_t      *p;
    ngx_http_auth_pat_redis_sentinel_t  *s = conn->locate_data;

    p = s->primary;

    if (p == NULL || p == conn || p->state != NGX_HTTP_AUTH_PAT_REDIS_READY
        || p->addr != &p->found
        || !ngx_http_auth_pat_redis_sentinel_elsewhere(conn, p->found.sockaddr,
                                                       p->found.socklen))
    {
        return 1;
    }

    if (conn->state == NGX_HTTP_AUTH_PAT_REDIS_READY) {
        ngx_log_error(NGX_LOG_WARN, conn->log, 0,
                      "auth_pat: redis \"%V\" is not the node of the "
                      "command connection (\"%V\"), moving there",
                      &conn->addr->text, &p->addr->text);
        ngx_http_auth_pat_redis_restart(conn);
    }

    return 0;
}


static ngx_http_auth_pat_redis_sentinel_t *
ngx_http_auth_pat_redis_sentinel_init(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conf_t *rcf)
{
    ngx_uint_t                           i, n;
    ngx_http_auth_pat_redis_conn_t      *q, *w;
    ngx_http_auth_pat_redis_sentinel_t  *s;

    s = ngx_pcalloc(cycle->pool, sizeof(ngx_http_auth_pat_redis_sentinel_t));
    if (s == NULL) {
        return NULL;
    }

    n = rcf->nsentinels;

    s->conf = rcf;
    s->order = ngx_palloc(cycle->pool, n * sizeof(ngx_uint_t));
    s->logged = ngx_pcalloc(cycle->pool, n * sizeof(ngx_msec_t));
    s->query_logged = ngx_pcalloc(cycle->pool, n
                          * sizeof(ngx_http_auth_pat_redis_logged_t));
    s->watch_logged = ngx_pcalloc(cycle->pool, n
                          * sizeof(ngx_http_auth_pat_redis_logged_t));
    if (s->order == NULL || s->logged == NULL || s->query_logged == NULL
        || s->watch_logged == NULL)
    {
        return NULL;
    }

    for (i = 0; i < n; i++) {
        s->order[i] = i;
    }

    s->next.handler = ngx_http_auth_pat_redis_sentinel_next;
    s->next.data = s;
    s->next.log = cycle->log;

    q = ngx_http_auth_pat_redis_conn_create(cycle, rcf->sentinel, "sentinel");
    w = ngx_http_auth_pat_redis_conn_create(cycle, rcf->sentinel, "watch");
    if (q == NULL || w == NULL) {
        return NULL;
    }

    q->kind = "sentinel";
    q->bare = 1;
    q->on_demand = 1;

    w->kind = "sentinel";
    w->bare = 1;
    w->subscriber = 1;
    ngx_str_set(&w->channel, "+switch-master");
    w->on_message = ngx_http_auth_pat_redis_sentinel_switched;
    w->on_state = ngx_http_auth_pat_redis_sentinel_watching;
    w->sub_data = s;
    w->locate = ngx_http_auth_pat_redis_sentinel_watch_locate;
    w->locate_data = s;
    w->locator = "the sentinels";

    s->query = q;
    s->watch = w;

    ngx_http_auth_pat_redis_connect(w);

    return s;
}


ngx_int_t
ngx_http_auth_pat_redis_sentinel_follow(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conn_t *conn, ngx_uint_t primary)
{
    ngx_http_auth_pat_redis_sentinel_t  *s;

    s = ngx_http_auth_pat_sentinel;

    if (s == NULL) {
        s = ngx_http_auth_pat_redis_sentinel_init(cycle, conn->conf);
        if (s == NULL) {
            return NGX_ERROR;
        }

        ngx_http_auth_pat_sentinel = s;
    }

    if (s->nfollowers == NGX_HTTP_AUTH_PAT_SENTINEL_FOLLOWERS) {
        return NGX_ERROR;
    }

    s->followers[s->nfollowers++] = conn;

    if (primary) {
        s->primary = conn;
    }

    conn->locate = ngx_http_auth_pat_redis_sentinel_locate;
    conn->locate_data = s;
    conn->locator = "the sentinels";

    return NGX_OK;
}


void
ngx_http_auth_pat_redis_sentinel_exit(void)
{
    ngx_http_auth_pat_redis_sentinel_t  *s = ngx_http_auth_pat_sentinel;

    if (s == NULL) {
        return;
    }

    if (s->next.posted) {
        ngx_delete_posted_event(&s->next);
    }

    ngx_http_auth_pat_redis_conn_free(s->watch);
    ngx_http_auth_pat_redis_conn_free(s->query);

    ngx_http_auth_pat_sentinel = NULL;
}
