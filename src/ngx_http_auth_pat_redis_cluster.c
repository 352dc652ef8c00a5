
/*
 * Redis Cluster.  A worker reads the slot table with CLUSTER SLOTS (from
 * the seeds in order, then from the nodes it knows) on one connection of
 * its own, and accepts a table only when it covers all 16384 slots,
 * keeping the one it has otherwise.  Each master the table names gets a
 * pipelined connection, with the usual handshake (AUTH, TLS, scripts,
 * ROLE, liveness), made when the table first names it.
 *
 * A command goes to the master of its first key's slot.  Its encoding is
 * kept until it completes, so that a redirect can send it again: MOVED
 * patches the slot, resends and asks for a refresh; ASK sends ASKING and
 * the command to the target, once; TRYAGAIN and CLUSTERDOWN retry after
 * 50 ms, doubling up to 200 ms.  At most 5 MOVED, all within the
 * command's one deadline, which bounds ASK and the retries too.
 * Refreshes: one at a time, at most one a second; every 10 s, and every
 * second while a master the table names is down (its replica may be
 * promoted meanwhile).  Nodes are reported by IP address: a hostname is
 * refused, as a worker never resolves names.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_http_auth_pat_redis_cluster.h"


#define NGX_HTTP_AUTH_PAT_CLUSTER_SLOTS         16384
#define NGX_HTTP_AUTH_PAT_CLUSTER_NODES         64
#define NGX_HTTP_AUTH_PAT_CLUSTER_REDIRECTS     5
#define NGX_HTTP_AUTH_PAT_CLUSTER_RETRY         50      /* ms, doubling */
#define NGX_HTTP_AUTH_PAT_CLUSTER_RETRY_MAX     200     /* ms */
#define NGX_HTTP_AUTH_PAT_CLUSTER_REFRESH_MIN   1000    /* ms */
#define NGX_HTTP_AUTH_PAT_CLUSTER_REFRESH       10000   /* ms */
#define NGX_HTTP_AUTH_PAT_CLUSTER_LOG_EVERY     10000   /* ms */


typedef struct {
    ngx_cycle_t                        *cycle;
    ngx_http_auth_pat_redis_conf_t     *conf;
    ngx_http_auth_pat_redis_script_t   *scripts;
    ngx_uint_t                          nscripts;

    ngx_http_auth_pat_redis_conn_t     *nodes[NGX_HTTP_AUTH_PAT_CLUSTER_NODES];
    ngx_uint_t                          nnodes;
    ngx_http_auth_pat_redis_conn_t    **slots;   /* NULL: no table yet */
    ngx_http_auth_pat_redis_conn_t    **next_slots;
    ngx_http_auth_pat_redis_conn_t    **spare;

    /*
     * the table's question: to the masters of the table that are up,
     * then the seeds, then the other nodes
     */
    ngx_http_auth_pat_redis_conn_t     *query;
    /* what it logged of each seed and each node */
    ngx_http_auth_pat_redis_logged_t   *seed_logged;
    ngx_http_auth_pat_redis_logged_t    node_logged[NGX_HTTP_AUTH_PAT_CLUSTER_NODES];
    ngx_http_auth_pat_redis_addr_t    **cand;
    ngx_uint_t                          ncand;
    ngx_uint_t                          tried;
    ngx_event_t                         refresh;   /* the timer */
    ngx_event_t                         asked;     /* posted: go on */
    ngx_msec_t                          refreshed;
    ngx_int_t                           result;

    /* commands that wait to be sent again (TRYAGAIN, CLUSTERDOWN) */
    ngx_queue_t                         retry;

    /* the subscriber, homed on the master of its channel's slot */
    ngx_http_auth_pat_redis_conn_t     *sub;
    ngx_uint_t                          sub_slot;
    ngx_msec_t                          feed_asked;  /* an ASK for it */

    /* each line once per 10 s */
    ngx_msec_t                          partial_logged;
    ngx_msec_t                          name_logged;
    ngx_msec_t                          none_logged;
    ngx_msec_t                          full_logged;

    unsigned                            asking:1;
    unsigned                            again:1;   /* a refresh asked for */
    unsigned                            sub_waiting:1;  /* for a table */
} ngx_http_auth_pat_redis_cluster_t;


static ngx_http_auth_pat_redis_cluster_t  *ngx_http_auth_pat_cluster;
static uint16_t                            ngx_http_auth_pat_crc16[256];


static void ngx_http_auth_pat_redis_cluster_ask(
    ngx_http_auth_pat_redis_cluster_t *cl);
static ngx_uint_t ngx_http_auth_pat_redis_cluster_log(ngx_msec_t *logged);
static ngx_int_t ngx_http_auth_pat_redis_cluster_redirect(
    ngx_http_auth_pat_redis_conn_t *conn, ngx_http_auth_pat_redis_cmd_t *cmd,
    redisReply *reply);
static void ngx_http_auth_pat_redis_cluster_home(
    ngx_http_auth_pat_redis_cluster_t *cl);
static void ngx_http_auth_pat_redis_cluster_close(
    ngx_http_auth_pat_redis_conn_t *conn);


/* ---------------------------------------------------------------- slots */


static void
ngx_http_auth_pat_redis_cluster_crc16_init(void)
{
    uint16_t    crc;
    ngx_uint_t  i, b;

    for (i = 0; i < 256; i++) {
        crc = (uint16_t) (i << 8);

        for (b = 0; b < 8; b++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }

        ngx_http_auth_pat_crc16[i] = crc;
    }
}


ngx_uint_t
ngx_http_auth_pat_redis_cluster_slot(const u_char *key, size_t len)
{
    size_t    i, s, e;
    uint16_t  crc;

    /* the hash tag: from the first '{' to the first '}' after it */
    for (s = 0; s < len && key[s] != '{'; s++) { /* void */ }

    if (s < len) {
        for (e = s + 1; e < len && key[e] != '}'; e++) { /* void */ }

        if (e < len && e > s + 1) {
            key += s + 1;
            len = e - s - 1;
        }
    }

    crc = 0;

    for (i = 0; i < len; i++) {
        crc = (uint16_t) (crc << 8)
              ^ ngx_http_auth_pat_crc16[((crc >> 8) ^ key[i]) & 0xff];
    }

    return crc & (NGX_HTTP_AUTH_PAT_CLUSTER_SLOTS - 1);
}


ngx_http_auth_pat_redis_conn_t *
ngx_http_auth_pat_redis_cluster_route(int argc, const char **argv,
    const size_t *argvlen, ngx_uint_t *slot)
{
    ngx_int_t                           nk;
    ngx_uint_t                          k;
    ngx_http_auth_pat_redis_cluster_t  *cl = ngx_http_auth_pat_cluster;

    if (cl == NULL || cl->slots == NULL || argc < 2) {
        return NULL;
    }

    k = 1;

    /* EVALSHA sha numkeys key ...: the first of KEYS */
    if ((argvlen[0] == 7 && ngx_strncasecmp((u_char *) argv[0],
                                            (u_char *) "EVALSHA", 7) == 0)
        || (argvlen[0] == 4 && ngx_strncasecmp((u_char *) argv[0],
                                               (u_char *) "EVAL", 4) == 0))
    {
        if (argc < 4) {
            return NULL;
        }

        nk = ngx_atoi((u_char *) argv[2], argvlen[2]);
        if (nk < 1) {
            return NULL;
        }

        k = 3;
    }

    *slot = ngx_http_auth_pat_redis_cluster_slot((u_char *) argv[k],
                                                 argvlen[k]);

    return cl->slots[*slot];
}


/* ---------------------------------------------------------------- nodes */


static ngx_http_auth_pat_redis_conn_t *
ngx_http_auth_pat_redis_cluster_conn(ngx_http_auth_pat_redis_cluster_t *cl,
    const char *role, struct sockaddr *sa, socklen_t len)
{
    ngx_http_auth_pat_redis_conn_t  *conn;

    conn = ngx_http_auth_pat_redis_conn_create(cl->cycle, cl->conf, role);
    if (conn == NULL) {
        return NULL;
    }

    conn->scripts = cl->scripts;
    conn->nscripts = cl->nscripts;
    conn->keep_wire = 1;
    conn->redirect = ngx_http_auth_pat_redis_cluster_redirect;
    conn->redirect_data = cl;

    ngx_http_auth_pat_redis_found(conn, sa, len);

    return conn;
}


/* a node's connections, retired (twin: the API's too) */

static ngx_uint_t
ngx_http_auth_pat_redis_cluster_idle(ngx_http_auth_pat_redis_conn_t *conn)
{
    return ngx_queue_empty(&conn->sent) && ngx_queue_empty(&conn->held)
           && (conn->twin == NULL
               || (ngx_queue_empty(&conn->twin->sent)
                   && ngx_queue_empty(&conn->twin->held)));
}


static void
ngx_http_auth_pat_redis_cluster_reuse(ngx_http_auth_pat_redis_conn_t *conn,
    struct sockaddr *sa, socklen_t len)
{
    if (conn == NULL) {
        return;
    }

    conn->on_demand = 0;

    if (conn->c != NULL) {
        return;
    }

    conn->failures = 0;
    conn->was_ready = 0;
    ngx_http_auth_pat_redis_found(conn, sa, len);
    ngx_http_auth_pat_redis_connect(conn);
}


/* the connection to the node at sa, made when first named */

static ngx_http_auth_pat_redis_conn_t *
ngx_http_auth_pat_redis_cluster_node(ngx_http_auth_pat_redis_cluster_t *cl,
    struct sockaddr *sa, socklen_t len)
{
    ngx_uint_t                       i;
    ngx_http_auth_pat_redis_conn_t  *conn;

    for (i = 0; i < cl->nnodes; i++) {
        conn = cl->nodes[i];

        if (ngx_cmp_sockaddr(conn->found.sockaddr, conn->found.socklen,
                             sa, len, 1)
            == NGX_OK)
        {
            if (conn->on_demand) {
                /* retired, and named again (a failover back, say) */
                ngx_http_auth_pat_redis_cluster_reuse(conn, sa, len);
                ngx_http_auth_pat_redis_cluster_reuse(conn->twin, sa, len);
            }

            return conn;
        }
    }

    /* one that no table names any more serves the new address */
    for (i = 0; i < cl->nnodes; i++) {
        conn = cl->nodes[i];

        if (conn->on_demand && conn->c == NULL
            && (conn->twin == NULL || conn->twin->c == NULL)
            && ngx_http_auth_pat_redis_cluster_idle(conn)
            && cl->query->addr != &conn->found)
        {
            ngx_memzero(&cl->node_logged[i],
                        sizeof(ngx_http_auth_pat_redis_logged_t));
            ngx_http_auth_pat_redis_cluster_reuse(conn, sa, len);
            ngx_http_auth_pat_redis_cluster_reuse(conn->twin, sa, len);
            return conn;
        }
    }

    if (cl->nnodes == NGX_HTTP_AUTH_PAT_CLUSTER_NODES) {
        if (ngx_http_auth_pat_redis_cluster_log(&cl->full_logged)) {
            ngx_log_error(NGX_LOG_ERR, cl->query->log, 0,
                          "auth_pat: redis cluster: %d nodes in use, "
                          "no connection for another one",
                          NGX_HTTP_AUTH_PAT_CLUSTER_NODES);
        }

        return NULL;
    }

    conn = ngx_http_auth_pat_redis_cluster_conn(cl, "cmd", sa, len);
    if (conn == NULL) {
        return NULL;
    }

    if (cl->conf->replicas) {
        /* the API's writes and their WAIT, away from the checks */
        conn->twin = ngx_http_auth_pat_redis_cluster_conn(cl, "api", sa, len);
        if (conn->twin == NULL) {
            ngx_http_auth_pat_redis_conn_free(conn);
            return NULL;
        }
    }

    cl->nodes[cl->nnodes++] = conn;

    ngx_http_auth_pat_redis_connect(conn);

    if (conn->twin) {
        ngx_http_auth_pat_redis_connect(conn->twin);
    }

    return conn;
}


/* ---------------------------------------------------------------- table */


static ngx_uint_t
ngx_http_auth_pat_redis_cluster_log(ngx_msec_t *logged)
{
    if (*logged
        && ngx_current_msec - *logged < NGX_HTTP_AUTH_PAT_CLUSTER_LOG_EVERY)
    {
        return 0;
    }

    *logged = ngx_current_msec ? ngx_current_msec : 1;

    return 1;
}


/* the address the question goes to: a seed, or a known node */

static ngx_http_auth_pat_redis_addr_t *
ngx_http_auth_pat_redis_cluster_candidate(
    ngx_http_auth_pat_redis_cluster_t *cl, ngx_uint_t i)
{
    return i < cl->ncand ? cl->cand[i] : NULL;
}


static void
ngx_http_auth_pat_redis_cluster_candidates(
    ngx_http_auth_pat_redis_cluster_t *cl)
{
    ngx_uint_t                       i;
    ngx_http_auth_pat_redis_conn_t  *conn;

    cl->ncand = 0;

    for (i = 0; i < cl->nnodes; i++) {
        conn = cl->nodes[i];

        if (!conn->on_demand && conn->state == NGX_HTTP_AUTH_PAT_REDIS_READY) {
            cl->cand[cl->ncand++] = &conn->found;
        }
    }

    for (i = 0; i < cl->conf->nseeds; i++) {
        cl->cand[cl->ncand++] = &cl->conf->seeds[i];
    }

    for (i = 0; i < cl->nnodes; i++) {
        conn = cl->nodes[i];

        if (!conn->on_demand && conn->state != NGX_HTTP_AUTH_PAT_REDIS_READY) {
            cl->cand[cl->ncand++] = &conn->found;
        }
    }
}


/*
 * CLUSTER SLOTS: [[from, to, [ip, port, id, ...], replicas...], ...].
 * The new table goes to next_slots; NGX_OK when it covers every slot.
 */

static ngx_int_t
ngx_http_auth_pat_redis_cluster_table(ngx_http_auth_pat_redis_cluster_t *cl,
    redisReply *reply, ngx_str_t *from)
{
    size_t                           iplen;
    u_char                          *ip;
    socklen_t                        salen;
    ngx_int_t                        lo, hi, s;
    ngx_uint_t                       i, covered;
    redisReply                      *e, *m;
    ngx_sockaddr_t                   sa;
    ngx_http_auth_pat_redis_conn_t  *node;

    if (reply->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    ngx_memzero(cl->next_slots, NGX_HTTP_AUTH_PAT_CLUSTER_SLOTS
                                * sizeof(ngx_http_auth_pat_redis_conn_t *));
    covered = 0;

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3
            || e->element[0]->type != REDIS_REPLY_INTEGER
            || e->element[1]->type != REDIS_REPLY_INTEGER
            || e->element[2]->type != REDIS_REPLY_ARRAY
            || e->element[2]->elements < 2
            || (e->element[2]->element[0]->type != REDIS_REPLY_STRING
                && e->element[2]->element[0]->type != REDIS_REPLY_NIL)
            || e->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
        {
            return NGX_ERROR;
        }

        lo = e->element[0]->integer;
        hi = e->element[1]->integer;

        if (lo < 0 || hi < lo || hi >= NGX_HTTP_AUTH_PAT_CLUSTER_SLOTS) {
            return NGX_ERROR;
        }

        m = e->element[2];
        ip = (u_char *) m->element[0]->str;
        iplen = m->element[0]->len;

        if (m->element[0]->type == REDIS_REPLY_NIL) {
            iplen = 0;
        }

        if (iplen == 0 && m->element[1]->integer > 0
            && m->element[1]->integer <= 65535)
        {
            /* "" or nil (an unknown endpoint): the node that answered */
            salen = cl->query->addr->socklen;
            ngx_memcpy(&sa, cl->query->addr->sockaddr, salen);
            ngx_inet_set_port(&sa.sockaddr,
                              (in_port_t) m->element[1]->integer);

        } else if (ngx_http_auth_pat_redis_ip(ip, iplen,
                                              m->element[1]->integer,
                                              &sa, &salen)
                   != NGX_OK)
        {
            if (ngx_http_auth_pat_redis_cluster_log(&cl->name_logged)) {
                ngx_log_error(NGX_LOG_ERR, cl->query->log, 0,
                              "auth_pat: redis \"%V\" names \"%*s\" as the "
                              "master of slots %i-%i: refused, a worker "
                              "connects to IP addresses only (announce IPs)",
                              from, ngx_min(iplen, 256), ip, lo, hi);
            }

            return NGX_ERROR;
        }

        node = ngx_http_auth_pat_redis_cluster_node(cl, &sa.sockaddr, salen);
        if (node == NULL) {
            return NGX_ERROR;
        }

        for (s = lo; s <= hi; s++) {
            if (cl->next_slots[s] == NULL) {
                covered++;
            }

            cl->next_slots[s] = node;
        }
    }

    if (covered != NGX_HTTP_AUTH_PAT_CLUSTER_SLOTS) {
        if (ngx_http_auth_pat_redis_cluster_log(&cl->partial_logged)) {
            ngx_log_error(NGX_LOG_WARN, cl->query->log, 0,
                          "auth_pat: redis \"%V\" serves %ui of 16384 "
                          "slots: %s", from, covered,
                          cl->slots ? "keeping the table" : "no table yet");
        }

        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * Nodes the table does not name, with nothing in flight, are closed and
 * not connected again: their structs serve the next new addresses
 */

static void
ngx_http_auth_pat_redis_cluster_retire(ngx_http_auth_pat_redis_cluster_t *cl)
{
    u_char                           named[NGX_HTTP_AUTH_PAT_CLUSTER_NODES];
    ngx_uint_t                       i, s;
    ngx_http_auth_pat_redis_conn_t  *conn;

    ngx_memzero(named, sizeof(named));

    for (s = 0; s < NGX_HTTP_AUTH_PAT_CLUSTER_SLOTS; s++) {
        for (i = 0; i < cl->nnodes; i++) {
            if (cl->nodes[i] == cl->slots[s]) {
                named[i] = 1;
                break;
            }
        }
    }

    for (i = 0; i < cl->nnodes; i++) {
        conn = cl->nodes[i];

        if (named[i] || conn->on_demand
            || !ngx_http_auth_pat_redis_cluster_idle(conn))
        {
            continue;
        }

        ngx_http_auth_pat_redis_cluster_close(conn);

        if (conn->twin) {
            ngx_http_auth_pat_redis_cluster_close(conn->twin);
        }
    }
}


static void
ngx_http_auth_pat_redis_cluster_close(ngx_http_auth_pat_redis_conn_t *conn)
{
    conn->on_demand = 1;

    if (conn->reconnect.timer_set) {
        ngx_del_timer(&conn->reconnect);
    }

    if (conn->c != NULL) {
        conn->down_logged = 1;
        ngx_http_auth_pat_redis_reset(conn);
    }
}


static void
ngx_http_auth_pat_redis_cluster_answered(void *data, redisReply *reply,
    ngx_int_t rc)
{
    ngx_http_auth_pat_redis_cluster_t  *cl = data;

    ngx_http_auth_pat_redis_conn_t    **t;

    cl->result = NGX_DECLINED;

    if (rc == NGX_OK
        && ngx_http_auth_pat_redis_cluster_table(cl, reply,
                                                 &cl->query->addr->text)
           == NGX_OK)
    {
        if (cl->slots == NULL) {
            ngx_log_error(NGX_LOG_INFO, cl->query->log, 0,
                          "auth_pat: redis cluster: %ui masters serve "
                          "16384 slots", cl->nnodes);
        }

        t = cl->slots ? cl->slots : cl->spare;
        cl->slots = cl->next_slots;
        cl->next_slots = t;
        cl->result = NGX_OK;

        ngx_http_auth_pat_redis_cluster_retire(cl);
        ngx_http_auth_pat_redis_cluster_home(cl);
    }

    /* from the event loop: this runs inside the query connection's read */
    ngx_post_event(&cl->asked, &ngx_posted_events);
}


/* what the table's question logged of a seed or a node */

static ngx_http_auth_pat_redis_logged_t *
ngx_http_auth_pat_redis_cluster_logged(ngx_http_auth_pat_redis_cluster_t *cl,
    ngx_http_auth_pat_redis_addr_t *addr)
{
    ngx_uint_t  i;

    for (i = 0; i < cl->conf->nseeds; i++) {
        if (addr == &cl->conf->seeds[i]) {
            return &cl->seed_logged[i];
        }
    }

    for (i = 0; i < cl->nnodes; i++) {
        if (addr == &cl->nodes[i]->found) {
            return &cl->node_logged[i];
        }
    }

    return NULL;
}


static void
ngx_http_auth_pat_redis_cluster_ask(ngx_http_auth_pat_redis_cluster_t *cl)
{
    size_t                           argvlen[2];
    const char                      *argv[2];
    ngx_http_auth_pat_redis_addr_t  *addr;
    ngx_http_auth_pat_redis_conn_t  *q = cl->query;

    addr = ngx_http_auth_pat_redis_cluster_candidate(cl, cl->tried);

    if (q->c != NULL && q->addr != addr
        && ngx_cmp_sockaddr(q->addr->sockaddr, q->addr->socklen,
                            addr->sockaddr, addr->socklen, 1)
           != NGX_OK)
    {
        /* another node: the same one, named twice, keeps its connection */
        q->down_logged = 1;
        ngx_http_auth_pat_redis_reset(q);
    }

    if (q->c == NULL) {
        if (q->addr != addr) {
            /* each node's failures logged once per 10 s, not the first */
            ngx_http_auth_pat_redis_log_move(q,
                                   ngx_http_auth_pat_redis_cluster_logged(cl,
                                                                  q->addr),
                                   ngx_http_auth_pat_redis_cluster_logged(cl,
                                                                  addr));
            q->addr = addr;
        }

        ngx_http_auth_pat_redis_connect(q);
    }

    argv[0] = "CLUSTER";
    argvlen[0] = 7;
    argv[1] = "SLOTS";
    argvlen[1] = 5;

    if (ngx_http_auth_pat_redis_send(q, NGX_HTTP_AUTH_PAT_REDIS_READ,
                                     ngx_http_auth_pat_redis_cluster_answered,
                                     cl, 2, argv, argvlen)
        == NULL)
    {
        cl->result = NGX_DECLINED;
        ngx_post_event(&cl->asked, &ngx_posted_events);
    }
}


static void
ngx_http_auth_pat_redis_cluster_asked(ngx_event_t *ev)
{
    ngx_http_auth_pat_redis_cluster_t  *cl = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        cl->asking = 0;
        return;
    }

    if (cl->result != NGX_OK
        && ngx_http_auth_pat_redis_cluster_candidate(cl, ++cl->tried) != NULL)
    {
        ngx_http_auth_pat_redis_cluster_ask(cl);
        return;
    }

    if (cl->result != NGX_OK
        && ngx_http_auth_pat_redis_cluster_log(&cl->none_logged))
    {
        ngx_log_error(NGX_LOG_ERR, cl->query->log, 0,
                      "auth_pat: no redis cluster node gave a table of all "
                      "16384 slots");
    }

    cl->asking = 0;
    cl->refreshed = ngx_current_msec;
}


static ngx_uint_t
ngx_http_auth_pat_redis_cluster_start(ngx_http_auth_pat_redis_cluster_t *cl)
{
    if (cl->asking) {
        return 0;
    }

    cl->asking = 1;
    cl->tried = 0;
    ngx_http_auth_pat_redis_cluster_candidates(cl);
    ngx_http_auth_pat_redis_cluster_ask(cl);

    return 1;
}


/* a master the table names is down or demoted (a node no slot names is no
   reason) */

static ngx_uint_t
ngx_http_auth_pat_redis_cluster_down(ngx_http_auth_pat_redis_cluster_t *cl)
{
    ngx_uint_t  s;

    for (s = 0; s < NGX_HTTP_AUTH_PAT_CLUSTER_SLOTS; s++) {
        if (cl->slots[s]->state != NGX_HTTP_AUTH_PAT_REDIS_READY
            || cl->slots[s]->replica)
        {
            /* down, or demoted (its writes fail unsent: no MOVED) */
            return 1;
        }
    }

    return 0;
}


/* every 10 s; every second while a master is down or a slot moved */

static void
ngx_http_auth_pat_redis_cluster_refresh_handler(ngx_event_t *ev)
{
    ngx_http_auth_pat_redis_cluster_t  *cl = ev->data;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    if (cl->slots == NULL || cl->again
        || ngx_http_auth_pat_redis_cluster_down(cl)
        || ngx_current_msec - cl->refreshed
           >= NGX_HTTP_AUTH_PAT_CLUSTER_REFRESH)
    {
        /* a refresh asked for while one ran waits for the next one */
        if (ngx_http_auth_pat_redis_cluster_start(cl)) {
            cl->again = 0;
        }
    }

    ngx_add_timer(ev, NGX_HTTP_AUTH_PAT_CLUSTER_REFRESH_MIN);
}


/* ------------------------------------------------------------ redirects */


static ngx_int_t ngx_http_auth_pat_redis_cluster_wait(
    ngx_http_auth_pat_redis_cluster_t *cl, ngx_http_auth_pat_redis_cmd_t *cmd);


/* a waiting command's turn: to its slot's master, or wait again */

static void
ngx_http_auth_pat_redis_cluster_retry(ngx_event_t *ev)
{
    ngx_http_auth_pat_redis_cmd_t      *cmd = ev->data;
    ngx_http_auth_pat_redis_conn_t     *node;
    ngx_http_auth_pat_redis_cluster_t  *cl;

    cl = cmd->conn->redirect_data;

    ngx_queue_remove(&cmd->queue);

    node = cl->slots ? cl->slots[cmd->slot] : NULL;

    if (node != NULL && cmd->api && node->twin != NULL) {
        node = node->twin;
    }

    if (cmd->handler != NULL && node != NULL
        && ngx_http_auth_pat_redis_resend(node, cmd, 0) == NGX_OK)
    {
        return;
    }

    if (cmd->handler == NULL
        || ngx_http_auth_pat_redis_cluster_wait(cl, cmd) != NGX_OK)
    {
        ngx_http_auth_pat_redis_complete(cmd, NULL);
        ngx_http_auth_pat_redis_cmd_free(cmd);
    }
}


/*
 * cmd waits to be sent again: 50 ms, doubling up to 200 ms, so that a
 * cluster that is down is not flooded; never past its deadline
 */

static ngx_int_t
ngx_http_auth_pat_redis_cluster_wait(ngx_http_auth_pat_redis_cluster_t *cl,
    ngx_http_auth_pat_redis_cmd_t *cmd)
{
    ngx_msec_t      delay;
    ngx_msec_int_t  left;

    left = (ngx_msec_int_t) (cmd->deadline - ngx_current_msec);

    if (left <= 1) {
        return NGX_DECLINED;
    }

    delay = NGX_HTTP_AUTH_PAT_CLUSTER_RETRY << ngx_min(cmd->retries, 3);
    delay = ngx_min(delay, NGX_HTTP_AUTH_PAT_CLUSTER_RETRY_MAX);
    delay = ngx_min(delay, (ngx_msec_t) left - 1);
    cmd->retries++;

    cmd->timer.handler = ngx_http_auth_pat_redis_cluster_retry;
    cmd->timer.data = cmd;
    ngx_add_timer(&cmd->timer, delay);

    ngx_queue_insert_tail(&cl->retry, &cmd->queue);

    return NGX_OK;
}


/* "MOVED 3999 127.0.0.1:6381", "ASK 3999 ...": the slot and the node */

static ngx_http_auth_pat_redis_conn_t *
ngx_http_auth_pat_redis_cluster_target(ngx_http_auth_pat_redis_cluster_t *cl,
    ngx_http_auth_pat_redis_conn_t *from, redisReply *reply, size_t skip,
    ngx_uint_t *slot)
{
    u_char          *p, *last, *colon, *sp;
    ngx_int_t        n, port;
    socklen_t        salen;
    ngx_sockaddr_t   sa;

    p = (u_char *) reply->str + skip;
    last = (u_char *) reply->str + reply->len;

    sp = ngx_strlchr(p, last, ' ');
    if (sp == NULL) {
        return NULL;
    }

    n = ngx_atoi(p, sp - p);
    if (n < 0 || n >= NGX_HTTP_AUTH_PAT_CLUSTER_SLOTS) {
        return NULL;
    }

    p = sp + 1;

    for (colon = last; colon > p && colon[-1] != ':'; colon--) { /* void */ }

    if (colon == p && (p == last || *p != ':')) {
        return NULL;
    }

    port = ngx_atoi(colon, last - colon);

    if (colon - 1 == p && port > 0 && port <= 65535) {
        /* ":6380", an unknown endpoint: the node that redirected */
        salen = from->addr->socklen;
        ngx_memcpy(&sa, from->addr->sockaddr, salen);
        ngx_inet_set_port(&sa.sockaddr, (in_port_t) port);

    } else if (ngx_http_auth_pat_redis_ip(p, colon - 1 - p, port, &sa,
                                          &salen)
               != NGX_OK)
    {
        return NULL;
    }

    *slot = n;

    return ngx_http_auth_pat_redis_cluster_node(cl, &sa.sockaddr, salen);
}


static ngx_int_t
ngx_http_auth_pat_redis_cluster_redirect(ngx_http_auth_pat_redis_conn_t *conn,
    ngx_http_auth_pat_redis_cmd_t *cmd, redisReply *reply)
{
    ngx_uint_t                          slot, asking;
    ngx_http_auth_pat_redis_conn_t     *node;
    ngx_http_auth_pat_redis_cluster_t  *cl = conn->redirect_data;

    if ((ngx_msec_int_t) (cmd->deadline - ngx_current_msec) <= 0) {
        return NGX_DECLINED;
    }

    asking = (reply->str[0] == 'A');

    if (reply->str[0] == 'M' || asking) {

        /*
         * MOVED: at most 5.  An ASK (a slot being migrated) and TRYAGAIN
         * may alternate until the migration is done: the deadline alone
         * bounds them
         */
        if (!asking
            && ++cmd->redirects > NGX_HTTP_AUTH_PAT_CLUSTER_REDIRECTS)
        {
            return NGX_DECLINED;
        }

        node = ngx_http_auth_pat_redis_cluster_target(cl, conn, reply,
                                                      asking ? 4 : 6, &slot);
        if (node == NULL) {
            return NGX_DECLINED;
        }

        ngx_log_debug3(NGX_LOG_DEBUG_EVENT, conn->log, 0,
                       "auth_pat redis cluster: slot %ui %s \"%V\"", slot,
                       asking ? "asks" : "moved to", &node->found.text);

        if (asking && cl->sub != NULL && slot == cl->sub_slot) {
            /*
             * the feed's slot is being migrated: its invalidations may
             * be published on the target, which this subscriber hears
             * over the bus only, late
             */
            cl->feed_asked = ngx_current_msec ? ngx_current_msec : 1;
            cl->again = 1;
        }

        if (!asking) {
            cmd->slot = slot;

            if (cl->slots != NULL) {
                cl->slots[slot] = node;   /* (the checks' connection) */

                if (cl->sub != NULL && slot == cl->sub_slot) {
                    ngx_http_auth_pat_redis_cluster_home(cl);
                }
            }

            /* the rest of the table has probably moved too */
            cl->again = 1;
        }

        if (cmd->api && node->twin != NULL) {
            node = node->twin;
        }

        if (ngx_http_auth_pat_redis_resend(node, cmd, asking) == NGX_OK) {
            return NGX_OK;
        }
    }

    /* TRYAGAIN, CLUSTERDOWN, or a target not up yet: after a short while */
    return ngx_http_auth_pat_redis_cluster_wait(cl, cmd);
}


/* ----------------------------------------------------------- subscriber */


/*
 * The subscriber's locate hook: the master of its channel's slot, where
 * the script that counts and publishes an invalidation runs, so that
 * the message is in the subscriber's socket before the revoke's reply
 * leaves (a PUBLISH reaches the other nodes over the cluster bus, later)
 */

static ngx_int_t
ngx_http_auth_pat_redis_cluster_locate(ngx_http_auth_pat_redis_conn_t *conn)
{
    ngx_http_auth_pat_redis_conn_t     *owner;
    ngx_http_auth_pat_redis_cluster_t  *cl = conn->locate_data;

    owner = cl->slots ? cl->slots[cl->sub_slot] : NULL;

    if (owner == NULL) {
        /* connected once a table names it */
        cl->sub_waiting = 1;
        return NGX_AGAIN;
    }

    if (conn->failures) {
        /* the owner named was not the master (or not there): ask again */
        cl->again = 1;
    }

    ngx_http_auth_pat_redis_found(conn, owner->found.sockaddr,
                                  owner->found.socklen);

    return NGX_OK;
}


/* after the table changed: the subscriber moves to the slot's master */

static void
ngx_http_auth_pat_redis_cluster_home(ngx_http_auth_pat_redis_cluster_t *cl)
{
    ngx_http_auth_pat_redis_conn_t  *sub = cl->sub, *owner;

    if (sub == NULL || cl->slots == NULL) {
        return;
    }

    if (cl->sub_waiting) {
        cl->sub_waiting = 0;
        ngx_http_auth_pat_redis_connect(sub);
        return;
    }

    owner = cl->slots[cl->sub_slot];

    if (sub->c == NULL || sub->addr != &sub->found
        || ngx_cmp_sockaddr(sub->found.sockaddr, sub->found.socklen,
                            owner->found.sockaddr, owner->found.socklen, 1)
           == NGX_OK)
    {
        /* not connected: its next attempt asks where to */
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, sub->log, 0,
                  "auth_pat: redis cluster: slot %ui of the invalidations "
                  "is served by \"%V\" now, the subscriber moves there",
                  cl->sub_slot, &owner->found.text);

    /* the cache is not trusted until it is subscribed and in sync there */
    ngx_http_auth_pat_redis_restart(sub);
}


void
ngx_http_auth_pat_redis_cluster_follow(ngx_http_auth_pat_redis_conn_t *sub)
{
    ngx_http_auth_pat_redis_cluster_t  *cl = ngx_http_auth_pat_cluster;

    cl->sub = sub;
    cl->sub_slot = ngx_http_auth_pat_redis_cluster_slot(sub->channel.data,
                                                        sub->channel.len);

    sub->locate = ngx_http_auth_pat_redis_cluster_locate;
    sub->locate_data = cl;
    sub->locator = "the slot table";
}


/*
 * May a cache be trusted: the subscriber is on the master of its slot,
 * and every master the worker talks to answers (a check fails closed
 * when its node is down, even with a cache: bypassed, the checks of the
 * other nodes' slots still succeed)
 */

ngx_uint_t
ngx_http_auth_pat_redis_cluster_live(void)
{
    ngx_uint_t                          i;
    ngx_http_auth_pat_redis_conn_t     *sub, *owner, *node;
    ngx_http_auth_pat_redis_cluster_t  *cl = ngx_http_auth_pat_cluster;

    if (cl == NULL || cl->slots == NULL) {
        return 0;
    }

    if (cl->feed_asked) {
        /* until the probes (every keepalive) have met no ASK for a while */
        if (ngx_current_msec - cl->feed_asked
            < cl->conf->keepalive + cl->conf->timeout)
        {
            return 0;
        }

        cl->feed_asked = 0;
    }

    for (i = 0; i < cl->nnodes; i++) {
        node = cl->nodes[i];

        if (!node->on_demand
            && (node->replica || !ngx_http_auth_pat_redis_alive(node)))
        {
            return 0;
        }
    }

    sub = cl->sub;

    if (sub == NULL) {
        return 1;
    }

    owner = cl->slots[cl->sub_slot];

    return sub->subscribed && ngx_http_auth_pat_redis_alive(sub)
           && sub->addr == &sub->found
           && ngx_cmp_sockaddr(sub->found.sockaddr, sub->found.socklen,
                               owner->found.sockaddr, owner->found.socklen,
                               1)
              == NGX_OK;
}


/* ------------------------------------------------------------ lifecycle */


ngx_int_t
ngx_http_auth_pat_redis_cluster_init(ngx_cycle_t *cycle,
    ngx_http_auth_pat_redis_conf_t *rcf,
    ngx_http_auth_pat_redis_script_t *scripts, ngx_uint_t n)
{
    ngx_http_auth_pat_redis_conn_t     *q;
    ngx_http_auth_pat_redis_cluster_t  *cl;

    ngx_http_auth_pat_redis_cluster_crc16_init();

    cl = ngx_pcalloc(cycle->pool, sizeof(ngx_http_auth_pat_redis_cluster_t));
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->cycle = cycle;
    cl->conf = rcf;
    cl->scripts = scripts;
    cl->nscripts = n;

    /* the table, and the one being read */
    cl->next_slots = ngx_palloc(cycle->pool, NGX_HTTP_AUTH_PAT_CLUSTER_SLOTS
                                * sizeof(ngx_http_auth_pat_redis_conn_t *));
    cl->spare = ngx_palloc(cycle->pool, NGX_HTTP_AUTH_PAT_CLUSTER_SLOTS
                           * sizeof(ngx_http_auth_pat_redis_conn_t *));
    cl->cand = ngx_palloc(cycle->pool,
                          (rcf->nseeds + NGX_HTTP_AUTH_PAT_CLUSTER_NODES)
                          * sizeof(ngx_http_auth_pat_redis_addr_t *));
    cl->seed_logged = ngx_pcalloc(cycle->pool, rcf->nseeds
                                  * sizeof(ngx_http_auth_pat_redis_logged_t));
    if (cl->next_slots == NULL || cl->spare == NULL || cl->cand == NULL
        || cl->seed_logged == NULL)
    {
        return NGX_ERROR;
    }

    ngx_queue_init(&cl->retry);

    cl->asked.handler = ngx_http_auth_pat_redis_cluster_asked;
    cl->asked.data = cl;
    cl->asked.log = cycle->log;

    cl->refresh.handler = ngx_http_auth_pat_redis_cluster_refresh_handler;
    cl->refresh.data = cl;
    cl->refresh.log = cycle->log;
    cl->refresh.cancelable = 1;


    q = ngx_http_auth_pat_redis_conn_create(cycle, rcf, "topology");
    if (q == NULL) {
        return NGX_ERROR;
    }

    q->bare = 1;
    q->on_demand = 1;
    cl->query = q;

    ngx_http_auth_pat_cluster = cl;

    (void) ngx_http_auth_pat_redis_cluster_start(cl);
    ngx_add_timer(&cl->refresh, NGX_HTTP_AUTH_PAT_CLUSTER_REFRESH_MIN);

    return NGX_OK;
}


void
ngx_http_auth_pat_redis_cluster_exit(void)
{
    ngx_uint_t                          i;
    ngx_queue_t                        *q;
    ngx_http_auth_pat_redis_cmd_t      *cmd;
    ngx_http_auth_pat_redis_cluster_t  *cl = ngx_http_auth_pat_cluster;

    if (cl == NULL) {
        return;
    }

    if (cl->asked.posted) {
        ngx_delete_posted_event(&cl->asked);
    }

    if (cl->refresh.timer_set) {
        ngx_del_timer(&cl->refresh);
    }


    while (!ngx_queue_empty(&cl->retry)) {
        q = ngx_queue_head(&cl->retry);
        ngx_queue_remove(q);
        cmd = ngx_queue_data(q, ngx_http_auth_pat_redis_cmd_t, queue);
        cmd->handler = NULL;
        ngx_http_auth_pat_redis_cmd_free(cmd);   /* (its timer too) */
    }

    for (i = 0; i < cl->nnodes; i++) {
        if (cl->nodes[i]->twin) {
            ngx_http_auth_pat_redis_conn_free(cl->nodes[i]->twin);
        }

        ngx_http_auth_pat_redis_conn_free(cl->nodes[i]);
    }

    ngx_http_auth_pat_redis_conn_free(cl->query);

    cl->sub = NULL;     /* freed by redis.c */
    ngx_http_auth_pat_cluster = NULL;
}
