
/*
 * The token data model on Redis.
 *
 * NS is the namespace (auth_pat_redis namespace=, default "pat:"),
 * DIGEST the 64 hex digits of HMAC-SHA256(key, token), UID the caller
 * identity, ID a token's UUID.  Times are Unix milliseconds.
 *
 *   NS v:DIGEST              hash, the validation record.  The access
 *                            check reads it in one round trip (HMGET):
 *                              u  user id
 *                              i  token id
 *                              n  token name
 *                              e  expiresAt, or "" for never
 *                            It expires in Redis at e (PEXPIREAT), and is
 *                            deleted on revoke.  Its key holds no user, so
 *                            it lives in a slot of its own: every command
 *                            on it touches that one key.
 *
 *   NS {u:UID}:m             hash, the user's token metadata:
 *                              ID -> JSON {"id","name","prefix","c"
 *                              (createdAt),"e" (expiresAt|null),"l"
 *                              (lastUsedAt|null),"r" (revokedAt|null),
 *                              "d" (DIGEST),"rf" (rotatedFrom|null),
 *                              "rt" (rotatedTo|null),"k" (rotation
 *                              claim, ms|null)}
 *                            It outlives expiry and revocation, so the
 *                            list shows every status.
 *   NS {u:UID}:i             hash, the user's list index:
 *                              ID -> "c:e:l:r:name" (times, "" for null)
 *                            The list reads it whole (HGETALL: small
 *                            fields, no JSON), filters, sorts and pages
 *                            in nginx, then reads the page's records.
 *   NS {u:UID}:a             sorted set, the user's unrevoked tokens,
 *                            scored by expiresAt (+inf for never): it
 *                            counts active tokens for auth_pat_max_tokens
 *                            in O(log n).
 *   NS {u:UID}:x             sorted set, end of life: revoked and expiring
 *                            tokens scored by revokedAt or expiresAt.
 *                            Metadata is kept 30 days past that, and at
 *                            most 10,000 inactive tokens per user; older
 *                            ones are purged (by create and list).
 *
 *   NS inval:seq             string, the number of the last invalidation
 *   NS inval                 pub/sub channel: "SEQ:DIGEST" for each token
 *                            revoked or rotated, published by the same
 *                            script that increments NS inval:seq.  Every
 *                            nginx with a cache applies it to its zone.
 *
 * The {u:UID} hash tag keeps a user's keys in one Cluster slot, so each
 * Lua script touches keys of a single slot.  The validation record and
 * the user's keys are changed by separate commands, in an order that no
 * crash can turn into "valid but listed as revoked": revoke deletes the
 * validation record first, then marks the metadata.
 *
 * The plaintext token is never sent to Redis: only its digest.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_store.h"
#include "ngx_http_auth_pat_cache.h"


#define NGX_HTTP_AUTH_PAT_TOUCH_MS      60000
#define NGX_HTTP_AUTH_PAT_TOUCH_SLOTS   4096


/* without a cache: when this worker last reported a token's use */
typedef struct {
    u_char                         id[PAT_UUID_LEN];
    uint32_t                       sec;
} ngx_http_auth_pat_touch_slot_t;


/* per-worker state */
static ngx_http_auth_pat_main_conf_t   *ngx_http_auth_pat_store_mcf;
static ngx_http_auth_pat_touch_slot_t  *ngx_http_auth_pat_store_touched;
static ngx_uint_t                       ngx_http_auth_pat_store_synced;
static ngx_uint_t                       ngx_http_auth_pat_store_epoch;
static ngx_event_t                      ngx_http_auth_pat_store_resync;

static const char  *ngx_http_auth_pat_store_fields[] = { "u", "i", "n", "e" };

static const size_t  ngx_http_auth_pat_store_fields_len[] = { 1, 1, 1, 1 };




ngx_int_t
ngx_http_auth_pat_store_digest(ngx_http_auth_pat_main_conf_t *pmcf,
    u_char *token, size_t len, u_char *md, u_char *hex)
{
    ngx_http_auth_pat_hmac_key_digest(&pmcf->hmac, token, len, md);

    if (hex == NULL) {
        return NGX_OK;
    }

    ngx_http_auth_pat_hex_encode(md, PAT_DIGEST_LEN, (char *) hex);

    return NGX_OK;
}


static size_t
ngx_http_auth_pat_store_vkey(ngx_http_auth_pat_main_conf_t *pmcf,
    u_char *buf, u_char *hex, size_t hexlen)
{
    u_char  *p;

    p = ngx_cpymem(buf, pmcf->redis->ns.data, pmcf->redis->ns.len);
    *p++ = 'v';
    *p++ = ':';
    p = ngx_cpymem(p, hex, hexlen);

    return p - buf;
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_store_lookup(ngx_http_auth_pat_main_conf_t *pmcf,
    u_char *hex, ngx_http_auth_pat_redis_handler_pt handler, void *data)
{
    u_char       key[NGX_HTTP_AUTH_PAT_NS_MAX + 2 + PAT_DIGEST_HEX_LEN];
    size_t       argvlen[6];
    ngx_uint_t   i;
    const char  *argv[6];

    argv[0] = "HMGET"; argvlen[0] = 5;
    argv[1] = (char *) key;
    argvlen[1] = ngx_http_auth_pat_store_vkey(pmcf, key, hex,
                                              PAT_DIGEST_HEX_LEN);

    for (i = 0; i < 4; i++) {
        argv[2 + i] = ngx_http_auth_pat_store_fields[i];
        argvlen[2 + i] = ngx_http_auth_pat_store_fields_len[i];
    }

    return ngx_http_auth_pat_redis_command(handler, data, 6, argv, argvlen);
}


static ngx_int_t
ngx_http_auth_pat_store_copy(ngx_pool_t *pool, ngx_str_t *dst,
    redisReply *r)
{
    if (r->type != REDIS_REPLY_STRING) {
        return NGX_ERROR;
    }

    dst->len = r->len;
    dst->data = ngx_pnalloc(pool, r->len + 1);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, r->str, r->len);
    dst->data[r->len] = '\0';

    return NGX_OK;
}


ngx_int_t
ngx_http_auth_pat_store_lookup_result(redisReply *reply, ngx_pool_t *pool,
    int64_t now, ngx_http_auth_pat_identity_t *id)
{
    ngx_int_t    n;
    redisReply  *e;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4) {
        return NGX_ERROR;
    }

    if (reply->element[0]->type == REDIS_REPLY_NIL
        || reply->element[1]->type == REDIS_REPLY_NIL)
    {
        return NGX_DECLINED;
    }

    e = reply->element[3];
    id->expires = 0;

    if (e->type == REDIS_REPLY_STRING && e->len > 0) {
        n = ngx_atoof((u_char *) e->str, e->len);
        if (n == NGX_ERROR) {
            return NGX_ERROR;
        }

        id->expires = n;

        /* the record may outlive its PEXPIREAT by Redis' lazy expiry
         * granularity; the clock decides */
        if (id->expires <= now) {
            return NGX_DECLINED;
        }
    }

    if (ngx_http_auth_pat_store_copy(pool, &id->user_id, reply->element[0])
        != NGX_OK
        || ngx_http_auth_pat_store_copy(pool, &id->token_id,
                                        reply->element[1])
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (reply->element[2]->type == REDIS_REPLY_STRING) {
        if (ngx_http_auth_pat_store_copy(pool, &id->token_name,
                                         reply->element[2])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

    } else {
        ngx_str_null(&id->token_name);
    }

    return NGX_OK;
}


/* ------------------------------------------------------- admin API */

/*
 * Lua scripts, run with EVALSHA.  Each touches the keys of one user, all
 * in the {u:UID} slot: KEYS[1] = m (metadata), KEYS[2] = a (active),
 * KEYS[3] = x (end of life: revokedAt or expiresAt, for retention),
 * KEYS[4] = i (list index).
 * Times come from nginx in ARGV, so scripts stay deterministic.
 */

enum {
    NGX_HTTP_AUTH_PAT_SCRIPT_CREATE = 0,
    NGX_HTTP_AUTH_PAT_SCRIPT_ACTIVATE,
    NGX_HTTP_AUTH_PAT_SCRIPT_REVOKE,
    NGX_HTTP_AUTH_PAT_SCRIPT_CLAIM,
    NGX_HTTP_AUTH_PAT_SCRIPT_ROTATE,
    NGX_HTTP_AUTH_PAT_SCRIPT_PURGE,
    NGX_HTTP_AUTH_PAT_SCRIPT_INVALIDATE,
    NGX_HTTP_AUTH_PAT_SCRIPT_TOUCH,
    NGX_HTTP_AUTH_PAT_NSCRIPTS
};


/* drops metadata past retention, and inactive records beyond the cap */
#define NGX_HTTP_AUTH_PAT_LUA_PURGE                                          \
    "local function drop(ids)\n"                                             \
    "  for _, id in ipairs(ids) do\n"                                        \
    "    redis.call('HDEL', KEYS[1], id)\n"                                  \
    "    redis.call('ZREM', KEYS[2], id)\n"                                  \
    "    redis.call('ZREM', KEYS[3], id)\n"                                  \
    "    redis.call('HDEL', KEYS[4], id)\n"                                  \
    "  end\n"                                                                \
    "end\n"                                                                  \
    "local function purge(now, cutoff, cap, batch)\n"                        \
    "  drop(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', cutoff,"            \
    "                  'LIMIT', 0, batch))\n"                                \
    "  local over = redis.call('ZCOUNT', KEYS[3], '-inf', now) - cap\n"      \
    "  if over > 0 then\n"                                                   \
    "    drop(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now,"             \
    "                    'LIMIT', 0, math.min(over, batch)))\n"              \
    "  end\n"                                                                \
    "end\n"

/* adds a token: metadata, index entry, active and end-of-life sets */
#define NGX_HTTP_AUTH_PAT_LUA_ADD                                            \
    "local function add(id, rec, exp, ix)\n"                                 \
    "  redis.call('HSET', KEYS[1], id, rec)\n"                               \
    "  redis.call('HSET', KEYS[4], id, ix)\n"                                \
    "  if exp == '' then\n"                                                  \
    "    redis.call('ZADD', KEYS[2], '+inf', id)\n"                          \
    "  else\n"                                                              \
    "    redis.call('ZADD', KEYS[2], exp, id)\n"                             \
    "    redis.call('ZADD', KEYS[3], exp, id)\n"                             \
    "  end\n"                                                                \
    "end\n"

/* marks a token revoked in the index and the sets */
#define NGX_HTTP_AUTH_PAT_LUA_REVOKED                                        \
    "local function revoked(id, now)\n"                                      \
    "  local s = redis.call('HGET', KEYS[4], id)\n"                          \
    "  if s then\n"                                                          \
    "    local c, e, l, r, n =\n"                                            \
    "      string.match(s, '^(%d*):(%d*):(%d*):(%d*):(.*)$')\n"              \
    "    if c then\n"                                                        \
    "      redis.call('HSET', KEYS[4], id,\n"                                \
    "                 c .. ':' .. e .. ':' .. l .. ':' .. now .. ':' .. n)\n" \
    "    end\n"                                                              \
    "  end\n"                                                                \
    "  redis.call('ZREM', KEYS[2], id)\n"                                    \
    "  local x = redis.call('ZSCORE', KEYS[3], id)\n"                        \
    "  if not x or tonumber(x) > tonumber(now) then\n"                       \
    "    redis.call('ZADD', KEYS[3], now, id)\n"                             \
    "  end\n"                                                                \
    "end\n"


static const char *ngx_http_auth_pat_store_lua[] = {

    /* CREATE: ARGV id, record, now, expires|'', max, cutoff, cap, index
     * -> 1 | 0 (too many active tokens) */
    NGX_HTTP_AUTH_PAT_LUA_PURGE
    NGX_HTTP_AUTH_PAT_LUA_ADD
    "local now = tonumber(ARGV[3])\n"
    "purge(now, ARGV[6], tonumber(ARGV[7]), 100)\n"
    "if redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[3], '+inf')\n"
    "   >= tonumber(ARGV[5]) then\n"
    "  return 0\n"
    "end\n"
    "add(ARGV[1], ARGV[2], ARGV[4], ARGV[8])\n"
    "return 1\n",

    /* ACTIVATE: KEYS[1] = v:DIGEST; ARGV user, id, name, expires|'' */
    "redis.call('HSET', KEYS[1], 'u', ARGV[1], 'i', ARGV[2],"
    "           'n', ARGV[3], 'e', ARGV[4])\n"
    "if ARGV[4] ~= '' then\n"
    "  redis.call('PEXPIREAT', KEYS[1], ARGV[4])\n"
    "end\n"
    "return 1\n",

    /* REVOKE: ARGV id, now -> record | nil; idempotent */
    NGX_HTTP_AUTH_PAT_LUA_REVOKED
    "local rec = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not rec then return false end\n"
    "local t = cjson.decode(rec)\n"
    "if t.r == cjson.null then\n"
    "  t.r = tonumber(ARGV[2])\n"
    "  t.k = cjson.null\n"
    "  rec = cjson.encode(t)\n"
    "  redis.call('HSET', KEYS[1], ARGV[1], rec)\n"
    "  revoked(ARGV[1], ARGV[2])\n"
    "end\n"
    "return rec\n",

    /* CLAIM: ARGV id, now, ttl -> {0} | {409, why} | {1, record} */
    "local rec = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not rec then return {0} end\n"
    "local t = cjson.decode(rec)\n"
    "local now = tonumber(ARGV[2])\n"
    "if t.r ~= cjson.null then return {409, 'revoked'} end\n"
    "if t.e ~= cjson.null and t.e <= now then return {409, 'expired'} end\n"
    "if t.k ~= nil and t.k ~= cjson.null\n"
    "   and t.k > now - tonumber(ARGV[3]) then\n"
    "  return {409, 'rotating'}\n"
    "end\n"
    "t.k = now\n"
    "redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(t))\n"
    "return {1, rec}\n",

    /* ROTATE: ARGV old id, claim, new id, new record, now, expires|'',
     * new index -> 1 | 0 (the claim was lost) */
    NGX_HTTP_AUTH_PAT_LUA_ADD
    NGX_HTTP_AUTH_PAT_LUA_REVOKED
    "local rec = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not rec then return 0 end\n"
    "local t = cjson.decode(rec)\n"
    "if t.r ~= cjson.null or t.k == nil or t.k == cjson.null\n"
    "   or t.k ~= tonumber(ARGV[2]) then\n"
    "  return 0\n"
    "end\n"
    "t.r = tonumber(ARGV[5])\n"
    "t.rt = ARGV[3]\n"
    "t.k = cjson.null\n"
    "redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(t))\n"
    "revoked(ARGV[1], ARGV[5])\n"
    "add(ARGV[3], ARGV[4], ARGV[6], ARGV[7])\n"
    "return 1\n",

    /* PURGE: ARGV now, cutoff, cap -> 1 */
    NGX_HTTP_AUTH_PAT_LUA_PURGE
    "purge(tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), 1000)\n"
    "return 1\n",

    /* INVALIDATE: KEYS[1] = inval:seq; ARGV channel, digest -> seq */
    "local n = redis.call('INCR', KEYS[1])\n"
    "redis.call('PUBLISH', ARGV[1], n .. ':' .. ARGV[2])\n"
    "return n\n",

    /* TOUCH: KEYS m, i; ARGV id, now, interval -> 1 | 0; lastUsedAt
     * moves at most once per interval, and never on a revoked token */
    "local rec = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not rec then return 0 end\n"
    "local t = cjson.decode(rec)\n"
    "local now = tonumber(ARGV[2])\n"
    "if t.r ~= cjson.null or (t.l ~= cjson.null\n"
    "   and t.l > now - tonumber(ARGV[3])) then\n"
    "  return 0\n"
    "end\n"
    "t.l = now\n"
    "redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(t))\n"
    "local s = redis.call('HGET', KEYS[2], ARGV[1])\n"
    "if s then\n"
    "  local c, e, l, r, n =\n"
    "    string.match(s, '^(%d*):(%d*):(%d*):(%d*):(.*)$')\n"
    "  if c then\n"
    "    redis.call('HSET', KEYS[2], ARGV[1],\n"
    "               c .. ':' .. e .. ':' .. ARGV[2] .. ':' .. r .. ':' .. n)\n"
    "  end\n"
    "end\n"
    "return 1\n"
};


static ngx_http_auth_pat_redis_script_t
    ngx_http_auth_pat_store_scripts[NGX_HTTP_AUTH_PAT_NSCRIPTS];


#define NGX_HTTP_AUTH_PAT_ARGS_MAX  16

typedef struct {
    ngx_pool_t                    *pool;
    int                            argc;
    ngx_uint_t                     failed;
    const char                    *argv[NGX_HTTP_AUTH_PAT_ARGS_MAX];
    size_t                         argvlen[NGX_HTTP_AUTH_PAT_ARGS_MAX];
} ngx_http_auth_pat_args_t;


static void
ngx_http_auth_pat_args_add(ngx_http_auth_pat_args_t *a, const void *p,
    size_t len)
{
    if (a->argc == NGX_HTTP_AUTH_PAT_ARGS_MAX) {
        a->failed = 1;
        return;
    }

    a->argv[a->argc] = p;
    a->argvlen[a->argc++] = len;
}


static void
ngx_http_auth_pat_args_str(ngx_http_auth_pat_args_t *a, ngx_str_t *s)
{
    ngx_http_auth_pat_args_add(a, s->data, s->len);
}


static void
ngx_http_auth_pat_args_num(ngx_http_auth_pat_args_t *a, int64_t n)
{
    u_char  *p;

    p = ngx_pnalloc(a->pool, NGX_INT64_LEN);
    if (p == NULL) {
        a->failed = 1;
        return;
    }

    ngx_http_auth_pat_args_add(a, p, ngx_sprintf(p, "%L", n) - p);
}


/* an expiry in ms, or "" for never (0) */
static void
ngx_http_auth_pat_args_expiry(ngx_http_auth_pat_args_t *a, int64_t ms)
{
    if (ms == 0) {
        ngx_http_auth_pat_args_add(a, "", 0);
        return;
    }

    ngx_http_auth_pat_args_num(a, ms);
}


/* NS {u:UID}:SUFFIX */
static void
ngx_http_auth_pat_args_ukey(ngx_http_auth_pat_args_t *a, ngx_str_t *user,
    const char *suffix)
{
    u_char     *p, *key;
    ngx_str_t  *ns;

    ns = &ngx_http_auth_pat_store_mcf->redis->ns;

    key = ngx_pnalloc(a->pool, ns->len + user->len + 8);
    if (key == NULL) {
        a->failed = 1;
        return;
    }

    p = ngx_cpymem(key, ns->data, ns->len);
    p = ngx_cpymem(p, "{u:", 3);
    p = ngx_cpymem(p, user->data, user->len);
    p = ngx_cpymem(p, "}:", 2);
    *p++ = suffix[0];

    ngx_http_auth_pat_args_add(a, key, p - key);
}


static void
ngx_http_auth_pat_args_vkey(ngx_http_auth_pat_args_t *a, u_char *hex)
{
    u_char  *key;

    key = ngx_pnalloc(a->pool, NGX_HTTP_AUTH_PAT_NS_MAX + 2
                               + PAT_DIGEST_HEX_LEN);
    if (key == NULL) {
        a->failed = 1;
        return;
    }

    ngx_http_auth_pat_args_add(a, key,
        ngx_http_auth_pat_store_vkey(ngx_http_auth_pat_store_mcf, key, hex,
                                     PAT_DIGEST_HEX_LEN));
}


/* numkeys and the user keys, as every user script starts */
static void
ngx_http_auth_pat_args_user(ngx_http_auth_pat_args_t *a, ngx_str_t *user,
    ngx_uint_t nkeys)
{
    ngx_http_auth_pat_args_add(a, nkeys == 1 ? "1" : "4", 1);
    ngx_http_auth_pat_args_ukey(a, user, "m");

    if (nkeys == 4) {
        ngx_http_auth_pat_args_ukey(a, user, "a");
        ngx_http_auth_pat_args_ukey(a, user, "x");
        ngx_http_auth_pat_args_ukey(a, user, "i");
    }
}


static ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_args_eval(ngx_http_auth_pat_args_t *a, ngx_uint_t script,
    ngx_http_auth_pat_redis_handler_pt handler, void *data)
{
    if (a->failed) {
        return NULL;
    }

    return ngx_http_auth_pat_redis_eval(handler, data, script, a->argc,
                                        a->argv, a->argvlen);
}


static ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_args_command(ngx_http_auth_pat_args_t *a,
    ngx_http_auth_pat_redis_handler_pt handler, void *data)
{
    if (a->failed) {
        return NULL;
    }

    return ngx_http_auth_pat_redis_command(handler, data, a->argc, a->argv,
                                           a->argvlen);
}


#define ngx_http_auth_pat_args_init(a, p)                                    \
    (a)->pool = p; (a)->argc = 0; (a)->failed = 0


/* the list index entry of a new token: "c:e:::name" */
static void
ngx_http_auth_pat_args_index(ngx_http_auth_pat_args_t *a, int64_t created,
    int64_t expires, ngx_str_t *name)
{
    u_char  *p, *ix;

    ix = ngx_pnalloc(a->pool, 2 * NGX_INT64_LEN + 4 + name->len);
    if (ix == NULL) {
        a->failed = 1;
        return;
    }

    p = ngx_sprintf(ix, "%L:", created);

    if (expires) {
        p = ngx_sprintf(p, "%L", expires);
    }

    p = ngx_sprintf(p, ":::%V", name);

    ngx_http_auth_pat_args_add(a, ix, p - ix);
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_store_create(ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *id, ngx_str_t *name, ngx_str_t *record, int64_t now,
    int64_t expires, ngx_uint_t max_tokens,
    ngx_http_auth_pat_redis_handler_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_user(&a, user, 4);
    ngx_http_auth_pat_args_str(&a, id);
    ngx_http_auth_pat_args_str(&a, record);
    ngx_http_auth_pat_args_num(&a, now);
    ngx_http_auth_pat_args_expiry(&a, expires);
    ngx_http_auth_pat_args_num(&a, max_tokens ? max_tokens : 1);
    ngx_http_auth_pat_args_num(&a, now - NGX_HTTP_AUTH_PAT_RETENTION);
    ngx_http_auth_pat_args_num(&a, NGX_HTTP_AUTH_PAT_INACTIVE_MAX);
    ngx_http_auth_pat_args_index(&a, now, expires, name);

    return ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_CREATE,
                                       handler, data);
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_store_activate(ngx_pool_t *pool, u_char *hex,
    ngx_str_t *user, ngx_str_t *id, ngx_str_t *name, int64_t expires,
    ngx_http_auth_pat_redis_handler_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_add(&a, "1", 1);
    ngx_http_auth_pat_args_vkey(&a, hex);
    ngx_http_auth_pat_args_str(&a, user);
    ngx_http_auth_pat_args_str(&a, id);
    ngx_http_auth_pat_args_str(&a, name);
    ngx_http_auth_pat_args_expiry(&a, expires);

    return ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_ACTIVATE,
                                       handler, data);
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_store_get(ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *id,
    ngx_http_auth_pat_redis_handler_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_add(&a, "HGET", 4);
    ngx_http_auth_pat_args_ukey(&a, user, "m");
    ngx_http_auth_pat_args_str(&a, id);

    return ngx_http_auth_pat_args_command(&a, handler, data);
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_store_deactivate(ngx_pool_t *pool, u_char *hex,
    ngx_http_auth_pat_redis_handler_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_add(&a, "DEL", 3);
    ngx_http_auth_pat_args_vkey(&a, hex);

    return ngx_http_auth_pat_args_command(&a, handler, data);
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_store_revoke(ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *id, int64_t now, ngx_http_auth_pat_redis_handler_pt handler,
    void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_user(&a, user, 4);
    ngx_http_auth_pat_args_str(&a, id);
    ngx_http_auth_pat_args_num(&a, now);

    return ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_REVOKE,
                                       handler, data);
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_store_claim(ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *id, int64_t now, ngx_http_auth_pat_redis_handler_pt handler,
    void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_user(&a, user, 1);
    ngx_http_auth_pat_args_str(&a, id);
    ngx_http_auth_pat_args_num(&a, now);

    /* a claim left by a crash between the steps of a rotation goes
     * stale after all of them could have timed out */
    ngx_http_auth_pat_args_num(&a,
        4 * ngx_http_auth_pat_store_mcf->redis->timeout + 1000);

    return ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_CLAIM,
                                       handler, data);
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_store_rotate(ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *old_id, int64_t claim, ngx_str_t *new_id, ngx_str_t *name,
    ngx_str_t *record, int64_t now, int64_t expires,
    ngx_http_auth_pat_redis_handler_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_user(&a, user, 4);
    ngx_http_auth_pat_args_str(&a, old_id);
    ngx_http_auth_pat_args_num(&a, claim);
    ngx_http_auth_pat_args_str(&a, new_id);
    ngx_http_auth_pat_args_str(&a, record);
    ngx_http_auth_pat_args_num(&a, now);
    ngx_http_auth_pat_args_expiry(&a, expires);
    ngx_http_auth_pat_args_index(&a, now, expires, name);

    return ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_ROTATE,
                                       handler, data);
}


static void
ngx_http_auth_pat_store_noop(void *data, redisReply *reply, ngx_int_t rc)
{
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_store_list_index(ngx_pool_t *pool, ngx_str_t *user,
    int64_t now, ngx_http_auth_pat_redis_handler_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    /* retention first, pipelined on the same connection */
    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_user(&a, user, 4);
    ngx_http_auth_pat_args_num(&a, now);
    ngx_http_auth_pat_args_num(&a, now - NGX_HTTP_AUTH_PAT_RETENTION);
    ngx_http_auth_pat_args_num(&a, NGX_HTTP_AUTH_PAT_INACTIVE_MAX);

    (void) ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_PURGE,
                                       ngx_http_auth_pat_store_noop, NULL);

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_add(&a, "HGETALL", 7);
    ngx_http_auth_pat_args_ukey(&a, user, "i");

    return ngx_http_auth_pat_args_command(&a, handler, data);
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_store_get_many(ngx_pool_t *pool, ngx_str_t *user,
    ngx_str_t *ids, ngx_uint_t n, ngx_http_auth_pat_redis_handler_pt handler,
    void *data)
{
    size_t                    *argvlen;
    ngx_uint_t                 i;
    const char               **argv;
    ngx_http_auth_pat_args_t   a;

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_add(&a, "HMGET", 5);
    ngx_http_auth_pat_args_ukey(&a, user, "m");

    if (a.failed) {
        return NULL;
    }

    argv = ngx_palloc(pool, (n + 2) * sizeof(char *));
    argvlen = ngx_palloc(pool, (n + 2) * sizeof(size_t));
    if (argv == NULL || argvlen == NULL) {
        return NULL;
    }

    for (i = 0; i < 2; i++) {
        argv[i] = a.argv[i];
        argvlen[i] = a.argvlen[i];
    }

    for (i = 0; i < n; i++) {
        argv[i + 2] = (char *) ids[i].data;
        argvlen[i + 2] = ids[i].len;
    }

    return ngx_http_auth_pat_redis_command(handler, data, (int) n + 2, argv,
                                           argvlen);
}


/* NS inval:seq, or the channel NS inval */
static void
ngx_http_auth_pat_args_inval(ngx_http_auth_pat_args_t *a, ngx_uint_t seq)
{
    u_char     *p, *key;
    ngx_str_t  *ns;

    ns = &ngx_http_auth_pat_store_mcf->redis->ns;

    key = ngx_pnalloc(a->pool, ns->len + sizeof("inval:seq") - 1);
    if (key == NULL) {
        a->failed = 1;
        return;
    }

    p = ngx_cpymem(key, ns->data, ns->len);
    p = seq ? ngx_cpymem(p, "inval:seq", 9) : ngx_cpymem(p, "inval", 5);

    ngx_http_auth_pat_args_add(a, key, p - key);
}


ngx_http_auth_pat_redis_cmd_t *
ngx_http_auth_pat_store_invalidate(ngx_pool_t *pool, u_char *hex,
    ngx_http_auth_pat_redis_handler_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_add(&a, "1", 1);
    ngx_http_auth_pat_args_inval(&a, 1);
    ngx_http_auth_pat_args_inval(&a, 0);
    ngx_http_auth_pat_args_add(&a, hex, PAT_DIGEST_HEX_LEN);

    return ngx_http_auth_pat_args_eval(&a,
                                       NGX_HTTP_AUTH_PAT_SCRIPT_INVALIDATE,
                                       handler, data);
}


/*
 * lastUsedAt, fire-and-forget: the request never waits for it.  With a
 * cache, the zone's entry limits the reports to one a minute per token
 * per nginx (force); without one, a small table per worker does.  The
 * script itself moves lastUsedAt at most once a minute.
 */

void
ngx_http_auth_pat_store_touch(ngx_pool_t *pool,
    ngx_http_auth_pat_identity_t *id, int64_t now, ngx_uint_t force)
{
    uint32_t                         sec;
    ngx_uint_t                       slot;
    ngx_http_auth_pat_args_t         a;
    ngx_http_auth_pat_touch_slot_t  *ts;

    if (id->token_id.len != PAT_UUID_LEN) {
        return;
    }

    if (!force) {
        sec = (uint32_t) (now / 1000);
        slot = ngx_hash_key(id->token_id.data, PAT_UUID_LEN)
               % NGX_HTTP_AUTH_PAT_TOUCH_SLOTS;
        ts = &ngx_http_auth_pat_store_touched[slot];

        if (ngx_memcmp(ts->id, id->token_id.data, PAT_UUID_LEN) == 0
            && sec - ts->sec < NGX_HTTP_AUTH_PAT_TOUCH_MS / 1000)
        {
            return;
        }

        ngx_memcpy(ts->id, id->token_id.data, PAT_UUID_LEN);
        ts->sec = sec;
    }

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_add(&a, "2", 1);
    ngx_http_auth_pat_args_ukey(&a, &id->user_id, "m");
    ngx_http_auth_pat_args_ukey(&a, &id->user_id, "i");
    ngx_http_auth_pat_args_str(&a, &id->token_id);
    ngx_http_auth_pat_args_num(&a, now);
    ngx_http_auth_pat_args_num(&a, NGX_HTTP_AUTH_PAT_TOUCH_MS);

    (void) ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_TOUCH,
                                       ngx_http_auth_pat_store_noop, NULL);
}


/* ------------------------------------------------------ invalidations */


ngx_uint_t
ngx_http_auth_pat_store_cache_trusted(void)
{
    return ngx_http_auth_pat_store_synced && ngx_http_auth_pat_redis_ready();
}


/* "SEQ:DIGEST" */
static void
ngx_http_auth_pat_store_message(void *data, u_char *msg, size_t len)
{
    ngx_http_auth_pat_main_conf_t  *pmcf = data;

    u_char      *p, *last, md[PAT_DIGEST_LEN];
    ngx_int_t    seq, hi, lo;
    ngx_uint_t   i;

    last = msg + len;
    p = ngx_strlchr(msg, last, ':');

    if (p == NULL || last - p - 1 != PAT_DIGEST_HEX_LEN) {
        goto bad;
    }

    seq = ngx_atoi(msg, p - msg);
    if (seq == NGX_ERROR) {
        goto bad;
    }

    p++;

    for (i = 0; i < PAT_DIGEST_LEN; i++) {
        hi = ngx_hextoi(p + 2 * i, 1);
        lo = ngx_hextoi(p + 2 * i + 1, 1);

        if (hi == NGX_ERROR || lo == NGX_ERROR) {
            goto bad;
        }

        md[i] = (u_char) ((hi << 4) | lo);
    }

    ngx_http_auth_pat_cache_invalidate(pmcf->cache, md, seq);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ngx_cycle->log, 0,
                   "auth_pat invalidation %i applied", seq);

    return;

bad:

    ngx_log_error(NGX_LOG_ERR, ngx_cycle->log, 0,
                  "auth_pat: unexpected invalidation message");

    /* not understood: trust nothing cached */
    ngx_http_auth_pat_cache_sync(pmcf->cache, -2, ngx_cycle->log);
}


/*
 * The reply to "GET NS inval:seq", sent after (re)subscribing.  data is
 * the subscription's epoch: a reply meant for an earlier subscription is
 * ignored, its successor sent its own GET.
 */

static void
ngx_http_auth_pat_store_synced_reply(void *data, redisReply *reply,
    ngx_int_t rc)
{
    ngx_int_t  seq;

    if ((ngx_uint_t) (uintptr_t) data != ngx_http_auth_pat_store_epoch) {
        return;
    }

    if (rc != NGX_OK
        || (reply->type != REDIS_REPLY_STRING
            && reply->type != REDIS_REPLY_NIL))
    {
        /* try again soon; the cache stays bypassed meanwhile */
        if (!ngx_http_auth_pat_store_resync.timer_set && !ngx_exiting) {
            ngx_add_timer(&ngx_http_auth_pat_store_resync, 100);
        }

        return;
    }

    seq = 0;

    if (reply->type == REDIS_REPLY_STRING) {
        seq = ngx_atoi((u_char *) reply->str, reply->len);
        if (seq == NGX_ERROR) {
            seq = -2;
        }
    }

    /* messages published before the counter was read are in the
     * subscriber socket by now: apply them first */
    ngx_http_auth_pat_redis_poll_now();

    if ((ngx_uint_t) (uintptr_t) data != ngx_http_auth_pat_store_epoch) {
        /* the subscription dropped while polling */
        return;
    }

    ngx_http_auth_pat_cache_sync(ngx_http_auth_pat_store_mcf->cache, seq,
                                 ngx_cycle->log);
    ngx_http_auth_pat_store_synced = 1;
}


static void
ngx_http_auth_pat_store_sync(void)
{
    void                      *epoch;
    ngx_pool_t                *pool;
    ngx_http_auth_pat_args_t   a;

    pool = ngx_create_pool(256, ngx_cycle->log);
    if (pool == NULL) {
        return;
    }

    epoch = (void *) (uintptr_t) ngx_http_auth_pat_store_epoch;

    ngx_http_auth_pat_args_init(&a, pool);
    ngx_http_auth_pat_args_add(&a, "GET", 3);
    ngx_http_auth_pat_args_inval(&a, 1);

    if (ngx_http_auth_pat_args_command(&a,
            ngx_http_auth_pat_store_synced_reply, epoch)
        == NULL)
    {
        ngx_http_auth_pat_store_synced_reply(epoch, NULL, NGX_ERROR);
    }

    ngx_destroy_pool(pool);
}


static void
ngx_http_auth_pat_store_resync_handler(ngx_event_t *ev)
{
    if (!ngx_http_auth_pat_store_synced && !ngx_exiting) {
        ngx_http_auth_pat_store_sync();
    }
}


static void
ngx_http_auth_pat_store_sub_state(void *data, ngx_uint_t up)
{
    ngx_http_auth_pat_store_synced = 0;
    ngx_http_auth_pat_store_epoch++;

    if (up) {
        ngx_http_auth_pat_store_sync();

    } else if (ngx_http_auth_pat_store_resync.timer_set) {
        ngx_del_timer(&ngx_http_auth_pat_store_resync);
    }
}


ngx_int_t
ngx_http_auth_pat_store_init_process(ngx_cycle_t *cycle,
    ngx_http_auth_pat_main_conf_t *pmcf)
{
    u_char      *key;
    size_t      *argvlen;
    ngx_str_t   *channel;
    const char **argv;

    ngx_http_auth_pat_store_mcf = pmcf;

    ngx_http_auth_pat_store_touched = ngx_pcalloc(cycle->pool,
        NGX_HTTP_AUTH_PAT_TOUCH_SLOTS
        * sizeof(ngx_http_auth_pat_touch_slot_t));
    if (ngx_http_auth_pat_store_touched == NULL) {
        return NGX_ERROR;
    }

    /* the handshake probes the command of the access check, so that an
     * ACL denying it shows up once per connection, not per request */
    argv = ngx_palloc(cycle->pool, 3 * sizeof(char *));
    argvlen = ngx_palloc(cycle->pool, 3 * sizeof(size_t));
    key = ngx_pnalloc(cycle->pool, NGX_HTTP_AUTH_PAT_NS_MAX + 8);
    if (argv == NULL || argvlen == NULL || key == NULL) {
        return NGX_ERROR;
    }

    argv[0] = "HMGET"; argvlen[0] = 5;
    argv[1] = (char *) key;
    argvlen[1] = ngx_http_auth_pat_store_vkey(pmcf, key,
                                              (u_char *) "probe", 5);
    argv[2] = "u"; argvlen[2] = 1;

    if (ngx_http_auth_pat_redis_init_process(cycle, pmcf->redis,
                                             ngx_http_auth_pat_store_scripts,
                                             NGX_HTTP_AUTH_PAT_NSCRIPTS,
                                             3, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (pmcf->cache == NULL) {
        return NGX_OK;
    }

    ngx_http_auth_pat_store_resync.handler =
                                       ngx_http_auth_pat_store_resync_handler;
    ngx_http_auth_pat_store_resync.data = pmcf;
    ngx_http_auth_pat_store_resync.log = cycle->log;
    ngx_http_auth_pat_store_resync.cancelable = 1;

    channel = ngx_pnalloc(cycle->pool, sizeof(ngx_str_t));
    if (channel == NULL) {
        return NGX_ERROR;
    }

    channel->len = pmcf->redis->ns.len + 5;
    channel->data = ngx_pnalloc(cycle->pool, channel->len);
    if (channel->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(ngx_cpymem(channel->data, pmcf->redis->ns.data,
                          pmcf->redis->ns.len),
               "inval", 5);

    return ngx_http_auth_pat_redis_subscribe(cycle, pmcf->redis, channel,
                                             ngx_http_auth_pat_store_message,
                                             ngx_http_auth_pat_store_sub_state,
                                             pmcf);
}


void
ngx_http_auth_pat_store_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_http_auth_pat_store_resync.timer_set) {
        ngx_del_timer(&ngx_http_auth_pat_store_resync);
    }

    ngx_http_auth_pat_store_synced = 0;

    ngx_http_auth_pat_redis_exit_process(cycle);
    ngx_http_auth_pat_store_mcf = NULL;
}


ngx_int_t
ngx_http_auth_pat_store_init_conf(ngx_conf_t *cf,
    ngx_http_auth_pat_main_conf_t *pmcf)
{
    ngx_uint_t  i;

    for (i = 0; i < NGX_HTTP_AUTH_PAT_NSCRIPTS; i++) {
        if (ngx_http_auth_pat_redis_script_init(cf,
                &ngx_http_auth_pat_store_scripts[i],
                ngx_http_auth_pat_store_lua[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}
