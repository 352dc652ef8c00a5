
/*
 * The shared-memory cache of checked tokens, in the pattern of
 * limit_req: an rbtree keyed by the token digest and an LRU queue, in a
 * slab zone that all workers share and that outlives a reload.
 *
 * A node is 128 bytes, one slab size class: the rbtree links, the first
 * 24 bytes of the digest (its first bytes are the rbtree key; 192 bits
 * in all tell entries apart, and the digest is an HMAC under a key no client
 * has), the token id as 16 bytes, the time the entry stops being valid
 * (the token's expiresAt or the ttl, whichever comes first), expiresAt
 * and createdAt themselves, when this nginx last reported the token's
 * use, and the user id, name and scopes: inline when they fit in 16
 * bytes, else in a slab chunk of their own.  The key is the digest,
 * never the token.
 *
 * Revocation is immediate: every invalidation that Redis publishes
 * removes its entry (ngx_http_auth_pat_cache_invalidate) and moves the
 * zone's version on, so that a lookup that was in flight meanwhile does
 * not put the entry back.  The zone remembers the number of the last
 * invalidation it applied, and the epoch of the dataset it came from; a
 * worker that (re)subscribes compares both with Redis' and empties the
 * zone if any invalidation was missed, or if the dataset is another.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_cache.h"


#define NGX_HTTP_AUTH_PAT_CACHE_INLINE     16
#define NGX_HTTP_AUTH_PAT_CACHE_TOUCH      60      /* seconds */
#define NGX_HTTP_AUTH_PAT_KEY_LEN          sizeof(ngx_rbtree_key_t)
#define NGX_HTTP_AUTH_PAT_CACHE_EPOCH      64
#define NGX_HTTP_AUTH_PAT_CACHE_DIGEST     24      /* bytes compared */


typedef struct {
    u_char                         color;
    u_char                         dummy;
    u_short                        user_len;
    u_short                        name_len;
    u_short                        scopes_len;
    ngx_queue_t                    queue;
    int64_t                        valid_until;    /* ms */
    int64_t                        expires;        /* ms, 0: never */
    uint32_t                       last_used;      /* s, reported by us */
    uint32_t                       created;        /* s, 0: not known */
    u_char                         id[16];
    u_char                         digest[NGX_HTTP_AUTH_PAT_CACHE_DIGEST
                                          - NGX_HTTP_AUTH_PAT_KEY_LEN];
    union {
        u_char                    *out;
        u_char                     in[NGX_HTTP_AUTH_PAT_CACHE_INLINE];
    } strings;                             /* user, then name, scopes */
} ngx_http_auth_pat_cache_node_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    queue;
    uint64_t                       version;
    int64_t                        last_seq;
    u_char                         epoch[NGX_HTTP_AUTH_PAT_CACHE_EPOCH];
    size_t                         epoch_len;
    ngx_uint_t                     entries;
    size_t                         bytes;          /* the entries' */
    ngx_uint_t                     full_logged;
} ngx_http_auth_pat_cache_sh_t;


struct ngx_http_auth_pat_cache_s {
    ngx_http_auth_pat_cache_sh_t  *sh;
    ngx_slab_pool_t               *shpool;
    ngx_msec_t                     ttl;
    ngx_shm_zone_t                *shm_zone;
};


/* a node and its rbtree links fill one 128-byte slab chunk */
typedef char  ngx_http_auth_pat_cache_node_fits_t[
    (offsetof(ngx_rbtree_node_t, color)
     + sizeof(ngx_http_auth_pat_cache_node_t) <= 128) ? 1 : -1];


#define ngx_http_auth_pat_cache_node(n)                                       \
    ((ngx_http_auth_pat_cache_node_t *) &(n)->color)

#define ngx_http_auth_pat_cache_rbnode(cn)                                    \
    ((ngx_rbtree_node_t *)                                                    \
         ((u_char *) (cn) - offsetof(ngx_rbtree_node_t, color)))


static ngx_rbtree_key_t
ngx_http_auth_pat_cache_key(u_char *digest)
{
    ngx_rbtree_key_t  key;

    ngx_memcpy(&key, digest, NGX_HTTP_AUTH_PAT_KEY_LEN);

    return key;
}


/* a string that may be empty, with no data at all */

static u_char *
ngx_http_auth_pat_cache_copy(u_char *dst, ngx_str_t *src)
{
    return src->len ? ngx_cpymem(dst, src->data, src->len) : dst;
}


/* user id, name and scopes fit in the node itself */

static ngx_uint_t
ngx_http_auth_pat_cache_inline(ngx_http_auth_pat_cache_node_t *cn)
{
    return (size_t) cn->user_len + cn->name_len + cn->scopes_len
           <= NGX_HTTP_AUTH_PAT_CACHE_INLINE;
}


/* the bytes an entry asked of the zone: its node, and its strings apart */

static size_t
ngx_http_auth_pat_cache_bytes(ngx_http_auth_pat_cache_node_t *cn)
{
    size_t  size;

    size = offsetof(ngx_rbtree_node_t, color)
           + sizeof(ngx_http_auth_pat_cache_node_t);

    if (!ngx_http_auth_pat_cache_inline(cn)) {
        size += (size_t) cn->user_len + cn->name_len + cn->scopes_len;
    }

    return size;
}


static u_char *
ngx_http_auth_pat_cache_strings(ngx_http_auth_pat_cache_node_t *cn)
{
    return ngx_http_auth_pat_cache_inline(cn) ? cn->strings.in
                                              : cn->strings.out;
}


static void
ngx_http_auth_pat_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t               **p;
    ngx_http_auth_pat_cache_node_t   *cn, *cnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            cn = ngx_http_auth_pat_cache_node(node);
            cnt = ngx_http_auth_pat_cache_node(temp);

            p = (ngx_memcmp(cn->digest, cnt->digest, sizeof(cn->digest)) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/*
 * The ordering compare is not constant-time: the digests are HMACs under
 * a key the client does not know, so their timing tells nothing.
 */

static ngx_http_auth_pat_cache_node_t *
ngx_http_auth_pat_cache_lookup(ngx_http_auth_pat_cache_t *cache,
    u_char *digest)
{
    ngx_int_t                        rc;
    ngx_rbtree_key_t                 key;
    ngx_rbtree_node_t               *node, *sentinel;
    ngx_http_auth_pat_cache_node_t  *cn;

    key = ngx_http_auth_pat_cache_key(digest);

    node = cache->sh->rbtree.root;
    sentinel = cache->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        cn = ngx_http_auth_pat_cache_node(node);

        rc = ngx_memcmp(digest + NGX_HTTP_AUTH_PAT_KEY_LEN, cn->digest,
                        sizeof(cn->digest));

        if (rc == 0) {
            return cn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_auth_pat_cache_delete(ngx_http_auth_pat_cache_t *cache,
    ngx_http_auth_pat_cache_node_t *cn)
{
    ngx_queue_remove(&cn->queue);
    ngx_rbtree_delete(&cache->sh->rbtree,
                      ngx_http_auth_pat_cache_rbnode(cn));

    if (!ngx_http_auth_pat_cache_inline(cn)) {
        ngx_slab_free_locked(cache->shpool, cn->strings.out);
    }

    cache->sh->bytes -= ngx_http_auth_pat_cache_bytes(cn);
    cache->sh->entries--;

    ngx_slab_free_locked(cache->shpool, ngx_http_auth_pat_cache_rbnode(cn));
}


/* frees the least recently used entry; 0 if the zone is empty */

static ngx_uint_t
ngx_http_auth_pat_cache_evict(ngx_http_auth_pat_cache_t *cache)
{
    ngx_queue_t                     *q;
    ngx_http_auth_pat_cache_node_t  *cn;

    if (ngx_queue_empty(&cache->sh->queue)) {
        return 0;
    }

    if (!cache->sh->full_logged) {
        cache->sh->full_logged = 1;
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "auth_pat: cache zone \"%V\" is full at %ui tokens; "
                      "the least recently used ones make room",
                      &cache->shm_zone->shm.name, cache->sh->entries);
    }

    q = ngx_queue_last(&cache->sh->queue);
    cn = ngx_queue_data(q, ngx_http_auth_pat_cache_node_t, queue);

    ngx_http_auth_pat_cache_delete(cache, cn);

    return 1;
}


static void *
ngx_http_auth_pat_cache_alloc(ngx_http_auth_pat_cache_t *cache, size_t size)
{
    void  *p;

    for ( ;; ) {
        p = ngx_slab_alloc_locked(cache->shpool, size);

        if (p != NULL || !ngx_http_auth_pat_cache_evict(cache)) {
            return p;
        }
    }
}


static void
ngx_http_auth_pat_cache_flush(ngx_http_auth_pat_cache_t *cache)
{
    ngx_queue_t                     *q;
    ngx_http_auth_pat_cache_node_t  *cn;

    while (!ngx_queue_empty(&cache->sh->queue)) {
        q = ngx_queue_head(&cache->sh->queue);
        cn = ngx_queue_data(q, ngx_http_auth_pat_cache_node_t, queue);
        ngx_http_auth_pat_cache_delete(cache, cn);
    }
}


/* a UUID in its 8-4-4-4-12 hex text <-> 16 bytes */

static void
ngx_http_auth_pat_uuid_pack(u_char *text, u_char *bin)
{
    ngx_uint_t  i, j;
    ngx_int_t   hi, lo;

    for (i = 0, j = 0; j < 16; /* void */) {
        if (text[i] == '-') {
            i++;
            continue;
        }

        hi = ngx_hextoi(&text[i], 1);
        lo = ngx_hextoi(&text[i + 1], 1);
        bin[j++] = (u_char) ((hi << 4) | lo);
        i += 2;
    }
}


static u_char *
ngx_http_auth_pat_uuid_unpack(u_char *bin, u_char *text)
{
    ngx_uint_t  j;

    static u_char  hex[] = "0123456789abcdef";

    for (j = 0; j < 16; j++) {
        if (j == 4 || j == 6 || j == 8 || j == 10) {
            *text++ = '-';
        }

        *text++ = hex[bin[j] >> 4];
        *text++ = hex[bin[j] & 0xf];
    }

    return text;
}


ngx_int_t
ngx_http_auth_pat_cache_get(ngx_http_auth_pat_cache_t *cache,
    u_char *digest, int64_t now, ngx_pool_t *pool,
    ngx_http_auth_pat_identity_t *id, ngx_uint_t *touch)
{
    u_char                          *p, *s;
    ngx_int_t                        rc;
    ngx_http_auth_pat_cache_node_t  *cn;

    *touch = 0;
    rc = NGX_DECLINED;

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_http_auth_pat_cache_lookup(cache, digest);

    if (cn == NULL) {
        goto done;
    }

    if (cn->valid_until <= now) {
        ngx_http_auth_pat_cache_delete(cache, cn);
        goto done;
    }

    p = ngx_pnalloc(pool, PAT_UUID_LEN + cn->user_len + cn->name_len
                          + cn->scopes_len);
    if (p == NULL) {
        rc = NGX_ERROR;
        goto done;
    }

    ngx_queue_remove(&cn->queue);
    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);

    s = ngx_http_auth_pat_cache_strings(cn);

    id->token_id.data = p;
    id->token_id.len = PAT_UUID_LEN;
    p = ngx_http_auth_pat_uuid_unpack(cn->id, p);

    id->user_id.data = p;
    id->user_id.len = cn->user_len;
    p = ngx_cpymem(p, s, cn->user_len);

    id->token_name.data = p;
    id->token_name.len = cn->name_len;
    p = ngx_cpymem(p, s + cn->user_len, cn->name_len);

    id->scopes.data = p;
    id->scopes.len = cn->scopes_len;
    ngx_memcpy(p, s + cn->user_len + cn->name_len, cn->scopes_len);

    id->expires = cn->expires;
    id->created = (int64_t) cn->created * 1000;

    if ((uint32_t) (now / 1000) - cn->last_used
        >= NGX_HTTP_AUTH_PAT_CACHE_TOUCH)
    {
        cn->last_used = (uint32_t) (now / 1000);
        *touch = 1;
    }

    rc = NGX_OK;

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return rc;
}


uint64_t
ngx_http_auth_pat_cache_version(ngx_http_auth_pat_cache_t *cache)
{
    uint64_t  v;

    ngx_shmtx_lock(&cache->shpool->mutex);
    v = cache->sh->version;
    ngx_shmtx_unlock(&cache->shpool->mutex);

    return v;
}


void
ngx_http_auth_pat_cache_put(ngx_http_auth_pat_cache_t *cache,
    u_char *digest, ngx_http_auth_pat_identity_t *id, int64_t now,
    uint64_t version)
{
    u_char                          *s;
    size_t                           len;
    int64_t                          until;
    ngx_rbtree_node_t               *node;
    ngx_http_auth_pat_cache_node_t  *cn;

    if (id->user_id.len > 0xffff || id->token_name.len > 0xffff
        || id->scopes.len > 0xffff || id->token_id.len != PAT_UUID_LEN)
    {
        return;
    }

    until = now + (int64_t) cache->ttl;

    if (id->expires && id->expires < until) {
        until = id->expires;
    }

    len = id->user_id.len + id->token_name.len + id->scopes.len;

    ngx_shmtx_lock(&cache->shpool->mutex);

    if (cache->sh->version != version) {
        /* an invalidation arrived while the lookup was in flight */
        goto done;
    }

    cn = ngx_http_auth_pat_cache_lookup(cache, digest);
    if (cn != NULL) {
        ngx_http_auth_pat_cache_delete(cache, cn);
    }

    node = ngx_http_auth_pat_cache_alloc(cache,
               offsetof(ngx_rbtree_node_t, color)
               + sizeof(ngx_http_auth_pat_cache_node_t));
    if (node == NULL) {
        goto done;
    }

    cn = ngx_http_auth_pat_cache_node(node);

    if (len > NGX_HTTP_AUTH_PAT_CACHE_INLINE) {
        s = ngx_http_auth_pat_cache_alloc(cache, len);
        if (s == NULL) {
            ngx_slab_free_locked(cache->shpool, node);
            goto done;
        }

        cn->strings.out = s;

    } else {
        s = cn->strings.in;
    }

    node->key = ngx_http_auth_pat_cache_key(digest);
    ngx_memcpy(cn->digest, digest + NGX_HTTP_AUTH_PAT_KEY_LEN,
               sizeof(cn->digest));

    cn->user_len = (u_short) id->user_id.len;
    cn->name_len = (u_short) id->token_name.len;
    cn->scopes_len = (u_short) id->scopes.len;
    cn->valid_until = until;
    cn->expires = id->expires;
    cn->last_used = (uint32_t) (now / 1000);
    cn->created = (uint32_t) (id->created / 1000);
    ngx_http_auth_pat_uuid_pack(id->token_id.data, cn->id);

    s = ngx_http_auth_pat_cache_copy(s, &id->user_id);
    s = ngx_http_auth_pat_cache_copy(s, &id->token_name);
    (void) ngx_http_auth_pat_cache_copy(s, &id->scopes);

    ngx_rbtree_insert(&cache->sh->rbtree, node);
    ngx_queue_insert_head(&cache->sh->queue, &cn->queue);
    cache->sh->entries++;
    cache->sh->bytes += ngx_http_auth_pat_cache_bytes(cn);

done:

    ngx_shmtx_unlock(&cache->shpool->mutex);
}


ngx_uint_t
ngx_http_auth_pat_cache_invalidate(ngx_http_auth_pat_cache_t *cache,
    u_char *digest, int64_t seq)
{
    ngx_uint_t                       n;
    ngx_http_auth_pat_cache_node_t  *cn;

    n = 0;

    ngx_shmtx_lock(&cache->shpool->mutex);

    cn = ngx_http_auth_pat_cache_lookup(cache, digest);
    if (cn != NULL) {
        ngx_http_auth_pat_cache_delete(cache, cn);
    }

    cache->sh->version++;

    /*
     * Each subscriber hears every invalidation in order, so one that is
     * in step never sees a number past the next.  A larger one comes to
     * a worker that (re)subscribed after the zone missed some, before
     * its resync: the zone is emptied now, or the resync, reading the
     * counter after this, would find the numbers equal and keep it.
     * 0 is an invalidation the counter does not count.
     */

    if (seq == cache->sh->last_seq + 1) {
        cache->sh->last_seq = seq;

    } else if (seq > cache->sh->last_seq + 1) {
        n = cache->sh->entries;
        ngx_http_auth_pat_cache_flush(cache);
        cache->sh->last_seq = seq;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    return n;
}


void
ngx_http_auth_pat_cache_sync(ngx_http_auth_pat_cache_t *cache, int64_t seq,
    ngx_str_t *epoch, ngx_log_t *log)
{
    ngx_uint_t   n, other;

    ngx_shmtx_lock(&cache->shpool->mutex);

    n = 0;
    other = 0;

    if (epoch != NULL
        && (epoch->len != cache->sh->epoch_len
            || ngx_memcmp(epoch->data, cache->sh->epoch, epoch->len) != 0))
    {
        other = (cache->sh->epoch_len != 0);
        cache->sh->epoch_len = ngx_min(epoch->len,
                                       NGX_HTTP_AUTH_PAT_CACHE_EPOCH);
        ngx_memcpy(cache->sh->epoch, epoch->data, cache->sh->epoch_len);
        cache->sh->last_seq = -1;
    }

    if (cache->sh->last_seq != seq) {
        n = cache->sh->entries;
        ngx_http_auth_pat_cache_flush(cache);
        cache->sh->version++;
        cache->sh->last_seq = seq;
    }

    ngx_shmtx_unlock(&cache->shpool->mutex);

    if (other) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "auth_pat: redis holds another dataset (it lost its "
                      "data, or is another redis); %ui cached tokens "
                      "dropped", n);

    } else if (n) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "auth_pat: invalidations were missed while "
                      "unsubscribed; %ui cached tokens dropped", n);
    }
}


/* ---------------------------------------------------------- the zone */


void
ngx_http_auth_pat_cache_usage(ngx_http_auth_pat_cache_t *cache,
    ngx_uint_t *entries, size_t *bytes)
{
    ngx_slab_pool_t  *sp = cache->shpool;

    ngx_shmtx_lock(&sp->mutex);

    /*
     * the entries' bytes, not the pages the slab allocator holds: those
     * include its own bookkeeping and are never 0
     */
    *entries = cache->sh->entries;
    *bytes = cache->sh->bytes;

    ngx_shmtx_unlock(&sp->mutex);
}


static ngx_int_t
ngx_http_auth_pat_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_auth_pat_cache_t  *ocache = data;

    size_t                      len;
    ngx_http_auth_pat_cache_t  *cache;

    cache = shm_zone->data;

    if (ocache) {
        /* a reload: the entries stay */
        cache->sh = ocache->sh;
        cache->shpool = ocache->shpool;
        return NGX_OK;
    }

    cache->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        cache->sh = cache->shpool->data;
        return NGX_OK;
    }

    cache->sh = ngx_slab_alloc(cache->shpool,
                               sizeof(ngx_http_auth_pat_cache_sh_t));
    if (cache->sh == NULL) {
        return NGX_ERROR;
    }

    cache->shpool->data = cache->sh;

    ngx_rbtree_init(&cache->sh->rbtree, &cache->sh->sentinel,
                    ngx_http_auth_pat_cache_rbtree_insert_value);
    ngx_queue_init(&cache->sh->queue);

    cache->sh->version = 0;
    cache->sh->last_seq = -1;
    cache->sh->epoch_len = 0;
    cache->sh->entries = 0;
    cache->sh->bytes = 0;
    cache->sh->full_logged = 0;

    len = sizeof(" in auth_pat_cache zone \"\"") + shm_zone->shm.name.len;

    cache->shpool->log_ctx = ngx_slab_alloc(cache->shpool, len);
    if (cache->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(cache->shpool->log_ctx, " in auth_pat_cache zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is normal: the LRU makes room */
    cache->shpool->log_nomem = 0;

    return NGX_OK;
}


char *
ngx_http_auth_pat_cache_conf(ngx_conf_t *cf,
    ngx_http_auth_pat_cache_t **cachep)
{
    u_char                     *p;
    ssize_t                     size;
    ngx_str_t                  *value, name, s;
    ngx_uint_t                  i;
    ngx_msec_t                  ttl;
    ngx_shm_zone_t             *shm_zone;
    ngx_http_auth_pat_cache_t  *cache;

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts != 2) {
            return "takes no parameters after \"off\"";
        }

        *cachep = NULL;
        return NGX_CONF_OK;
    }

    size = 0;
    ngx_str_null(&name);
    ttl = 10000;

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            name.data = value[i].data + 5;

            p = (u_char *) ngx_strchr(name.data, ':');

            if (p == NULL) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            name.len = p - name.data;

            s.data = p + 1;
            s.len = value[i].data + value[i].len - s.data;

            size = ngx_parse_size(&s);

            if (size == NGX_ERROR || name.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid zone size \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            if (size < (ssize_t) (8 * ngx_pagesize)) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "zone \"%V\" is too small", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "ttl=", 4) == 0) {

            s.data = value[i].data + 4;
            s.len = value[i].len - 4;

            ttl = ngx_parse_time(&s, 0);
            if (ttl == (ngx_msec_t) NGX_ERROR || ttl == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid parameter \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"auth_pat_cache\" needs \"zone=NAME:SIZE\" "
                           "or \"off\"");
        return NGX_CONF_ERROR;
    }

    cache = ngx_pcalloc(cf->pool, sizeof(ngx_http_auth_pat_cache_t));
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    cache->ttl = ttl;

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     &ngx_http_auth_pat_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already in use", &name);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_auth_pat_cache_init_zone;
    shm_zone->data = cache;
    cache->shm_zone = shm_zone;

    *cachep = cache;

    return NGX_CONF_OK;
}
