
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
 *                              s  scopes, sorted, space-separated
 *                              c  createdAt
 *                            (records of earlier releases have no s and
 *                            no c: no scope, creation unknown).
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
 *                              claim, ms|null),"s" (scopes, sorted;
 *                              absent in records of earlier releases:
 *                              none)}
 *                            It outlives expiry and revocation, so the
 *                            list shows every status.
 *   NS {u:UID}:i             hash, the user's list index:
 *                              ID -> "c:e:l:r:name" (times, "" for null),
 *                              then, when the token holds scopes, US
 *                              (0x1f, which no name holds) and its
 *                              scopes, space-separated
 *                            A list with a search, a scope or an order
 *                            other than createdAt reads it whole
 *                            (HGETALL: small fields, no JSON), filters,
 *                            sorts and pages in nginx, then reads the
 *                            page's records.
 *   NS {u:UID}:c             sorted sets by createdAt: every token (c),
 *   NS {u:UID}:ca, :ce, :cr  the active (ca), expired (ce) and revoked
 *                            (cr) ones.  The default list and the list by
 *                            status read a page of one of them, with the
 *                            page's records, in one script: O(log n +
 *                            page).  A token moves from ca to ce in the
 *                            first list after it expired; sets that do
 *                            not hold every token of the index, or whose
 *                            active set is not a's (an earlier release
 *                            wrote beside this one), are built from it
 *                            then.
 *   NS {u:UID}:a             sorted set, the user's unrevoked tokens not
 *                            yet seen expired, scored by expiresAt (+inf
 *                            for never): it counts active tokens for
 *                            auth_pat_max_tokens in O(log n).
 *   NS {u:UID}:x             sorted set, end of life: revoked and expiring
 *                            tokens scored by revokedAt or expiresAt.
 *                            Metadata is kept 30 days past that, and at
 *                            most 10,000 inactive tokens per user; older
 *                            ones are purged (by create and list).
 *
 * The invalidation feed (with Cluster, its three names share the hash tag
 * {inval}: NS {inval}:epoch, NS {inval}:seq, NS {inval}, so that the
 * script that counts and publishes runs on the one master the
 * subscribers are homed on):
 *
 *   NS epoch                 string, a UUID that names this dataset: made
 *                            (SET NX) by the first nginx that finds none.
 *                            A new one means Redis lost its data, or is
 *                            another Redis: every cache is emptied.
 *   NS inval:seq             string, the number of the last invalidation
 *   NS inval                 pub/sub channel: "SEQ:DIGEST" for each token
 *                            revoked or rotated, published by the same
 *                            script that increments NS inval:seq.  Every
 *                            nginx with a cache applies it to its zone.
 *
 * The audit trail (auth_pat_audit on):
 *
 *   NS {audit}               stream, one entry per create, revoke, rotate
 *                            and refused escalation: event, user, caller
 *                            (api_user or a token's id), client, time,
 *                            and token, prefix, newToken, newPrefix or
 *                            reason as the event has them.  XADD ...
 *                            MAXLEN ~ N trims it.  No secret is in it.
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

#include <jansson.h>

#include "pat_token.h"
#include "ngx_http_auth_pat_store.h"


#define NGX_HTTP_AUTH_PAT_TOUCH_MS      60000



/*
 * Lua scripts, run with EVALSHA.  Each touches the keys of one user, all
 * in the {u:UID} slot: KEYS[1] = m (metadata), KEYS[2] = a (active),
 * KEYS[3] = x (end of life: revokedAt or expiresAt, for retention),
 * KEYS[4] = i (list index), KEYS[5..8] = c, ca, ce, cr (by createdAt).
 * Times come from nginx in ARGV, so scripts stay deterministic.
 */

enum {
    NGX_HTTP_AUTH_PAT_SCRIPT_CREATE = 0,
    NGX_HTTP_AUTH_PAT_SCRIPT_ACTIVATE,
    NGX_HTTP_AUTH_PAT_SCRIPT_REVOKE,
    NGX_HTTP_AUTH_PAT_SCRIPT_CLAIM,
    NGX_HTTP_AUTH_PAT_SCRIPT_ROTATE,
    NGX_HTTP_AUTH_PAT_SCRIPT_PURGE,
    NGX_HTTP_AUTH_PAT_SCRIPT_LIST,
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
    "    for k = 5, 8 do redis.call('ZREM', KEYS[k], id) end\n"              \
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

/* adds a token: metadata, index entry, the sets */
#define NGX_HTTP_AUTH_PAT_LUA_ADD                                            \
    "local function add(id, rec, exp, ix, created)\n"                        \
    "  redis.call('HSET', KEYS[1], id, rec)\n"                               \
    "  redis.call('HSET', KEYS[4], id, ix)\n"                                \
    "  redis.call('ZADD', KEYS[5], created, id)\n"                           \
    "  redis.call('ZADD', KEYS[6], created, id)\n"                           \
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
    "  redis.call('ZREM', KEYS[6], id)\n"                                    \
    "  redis.call('ZREM', KEYS[7], id)\n"                                    \
    "  local c = redis.call('ZSCORE', KEYS[5], id)\n"                        \
    "  if c then redis.call('ZADD', KEYS[8], c, id) end\n"                   \
    "  local x = redis.call('ZSCORE', KEYS[3], id)\n"                        \
    "  if not x or tonumber(x) > tonumber(now) then\n"                       \
    "    redis.call('ZADD', KEYS[3], now, id)\n"                             \
    "  end\n"                                                                \
    "end\n"


static const char *ngx_http_auth_pat_store_lua[] = {

    /*
     * CREATE: ARGV id, record, now, expires|'', max, cutoff, cap, index
     * -> 1 | 0 (too many active tokens)
     */
    NGX_HTTP_AUTH_PAT_LUA_PURGE
    NGX_HTTP_AUTH_PAT_LUA_ADD
    "local now = tonumber(ARGV[3])\n"
    "purge(now, ARGV[6], tonumber(ARGV[7]), 100)\n"
    "if redis.call('ZCOUNT', KEYS[2], '(' .. ARGV[3], '+inf')\n"
    "   >= tonumber(ARGV[5]) then\n"
    "  return 0\n"
    "end\n"
    "add(ARGV[1], ARGV[2], ARGV[4], ARGV[8], ARGV[3])\n"
    "return 1\n",

    /*
     * ACTIVATE: KEYS[1] = v:DIGEST; ARGV user, id, name, expires|'',
     * scopes, created
     */
    "redis.call('HSET', KEYS[1], 'u', ARGV[1], 'i', ARGV[2],"
    "           'n', ARGV[3], 'e', ARGV[4], 's', ARGV[5], 'c', ARGV[6])\n"
    "if ARGV[4] ~= '' then\n"
    "  redis.call('PEXPIREAT', KEYS[1], ARGV[4])\n"
    "end\n"
    "return 1\n",

    /*
     * REVOKE: ARGV id, now -> {1, record} (revoked now) | {0, record}
     * (revoked before) | nil; idempotent
     */
    NGX_HTTP_AUTH_PAT_LUA_REVOKED
    "local rec = redis.call('HGET', KEYS[1], ARGV[1])\n"
    "if not rec then return false end\n"
    "local t = cjson.decode(rec)\n"
    "if t.r ~= cjson.null then return {0, rec} end\n"
    "t.r = tonumber(ARGV[2])\n"
    "t.k = cjson.null\n"
    "rec = cjson.encode(t)\n"
    "redis.call('HSET', KEYS[1], ARGV[1], rec)\n"
    "revoked(ARGV[1], ARGV[2])\n"
    "return {1, rec}\n",

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

    /*
     * ROTATE: ARGV old id, claim, new id, new record, now, expires|'',
     * new index -> 1 | 0 (the claim was lost)
     */
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
    "add(ARGV[3], ARGV[4], ARGV[6], ARGV[7], ARGV[5])\n"
    "return 1\n",

    /* PURGE: ARGV now, cutoff, cap -> 1 */
    NGX_HTTP_AUTH_PAT_LUA_PURGE
    "purge(tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), 1000)\n"
    "return 1\n",

    /*
     * LIST: ARGV now, cutoff, cap, status (0 any, 1 active, 2 expired,
     * 3 revoked), offset, limit, desc -> {total, active, expired,
     * revoked, record...}: the page by createdAt, in O(log n + page).
     * Tokens that expired since the last list move from the active set
     * to the expired one first (each once in its life); sets that do not
     * hold every token of the index (an earlier release wrote it) are
     * built from the index, once.
     */
    NGX_HTTP_AUTH_PAT_LUA_PURGE
    "local function rebuild(now)\n"
    "  redis.call('DEL', KEYS[5], KEYS[6], KEYS[7], KEYS[8])\n"
    "  local all = redis.call('HGETALL', KEYS[4])\n"
    "  for j = 1, #all, 2 do\n"
    "    local id = all[j]\n"
    "    local c, e, l, r =\n"
    "      string.match(all[j + 1], '^(%d*):(%d*):(%d*):(%d*):')\n"
    "    local score = tonumber(c) or 0\n"
    "    redis.call('ZADD', KEYS[5], score, id)\n"
    "    if r and r ~= '' then\n"
    "      redis.call('ZADD', KEYS[8], score, id)\n"
    "      redis.call('ZREM', KEYS[2], id)\n"
    "    elseif e and e ~= '' and tonumber(e) <= now then\n"
    "      redis.call('ZADD', KEYS[7], score, id)\n"
    "      redis.call('ZREM', KEYS[2], id)\n"
    "    elseif c then\n"
    "      redis.call('ZADD', KEYS[6], score, id)\n"
    "      redis.call('ZADD', KEYS[2], e ~= '' and e or '+inf', id)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local function expire(now)\n"
    "  while true do\n"
    "    local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now,\n"
    "                           'LIMIT', 0, 1000)\n"
    "    if #ids == 0 then return end\n"
    "    for _, id in ipairs(ids) do\n"
    "      redis.call('ZREM', KEYS[2], id)\n"
    "      if redis.call('ZREM', KEYS[6], id) == 1 then\n"
    "        redis.call('ZADD', KEYS[7],\n"
    "                   redis.call('ZSCORE', KEYS[5], id) or 0, id)\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local now = tonumber(ARGV[1])\n"
    "purge(now, ARGV[2], tonumber(ARGV[3]), 1000)\n"
    "if redis.call('ZCARD', KEYS[5]) ~= redis.call('HLEN', KEYS[4]) then\n"
    "  rebuild(now)\n"
    "end\n"
    "expire(now)\n"
    /* an earlier release's revoke or create, beside this one's: a != ca */
    "if redis.call('ZCARD', KEYS[2]) ~= redis.call('ZCARD', KEYS[6]) then\n"
    "  rebuild(now)\n"
    "end\n"
    "local set = KEYS[5 + tonumber(ARGV[4])]\n"
    "local first = tonumber(ARGV[5])\n"
    "local last = first + tonumber(ARGV[6]) - 1\n"
    "local ids\n"
    "if ARGV[7] == '1' then\n"
    "  ids = redis.call('ZREVRANGE', set, first, last)\n"
    "else\n"
    "  ids = redis.call('ZRANGE', set, first, last)\n"
    "end\n"
    "local out = {redis.call('ZCARD', set), redis.call('ZCARD', KEYS[6]),\n"
    "             redis.call('ZCARD', KEYS[7]), redis.call('ZCARD', KEYS[8])}\n"
    "if #ids > 0 then\n"
    "  local recs = redis.call('HMGET', KEYS[1], unpack(ids))\n"
    "  for j = 1, #recs do out[4 + j] = recs[j] end\n"
    "end\n"
    "return out\n",

    /* INVALIDATE: KEYS[1] = inval:seq; ARGV channel, digest -> seq */
    "local n = redis.call('INCR', KEYS[1])\n"
    "redis.call('PUBLISH', ARGV[1], n .. ':' .. ARGV[2])\n"
    "return n\n",

    /*
     * TOUCH: KEYS m, i; ARGV id, now, interval -> 1 | 0; lastUsedAt
     * moves at most once per interval, and never on a revoked token
     */
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


/* ---------------------------------------------------------- arguments */


#define NGX_HTTP_AUTH_PAT_ARGS_MAX  24

typedef struct {
    ngx_http_auth_pat_store_conf_t  *conf;
    ngx_pool_t                      *pool;
    ngx_uint_t                       lane;   /* NGX_HTTP_AUTH_PAT_REDIS_API */
    int                              argc;
    ngx_uint_t                       failed;
    const char                      *argv[NGX_HTTP_AUTH_PAT_ARGS_MAX];
    size_t                           argvlen[NGX_HTTP_AUTH_PAT_ARGS_MAX];
} ngx_http_auth_pat_args_t;


static void
ngx_http_auth_pat_args_init(ngx_http_auth_pat_args_t *a,
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool)
{
    a->conf = scf;
    a->pool = pool;
    a->argc = 0;
    a->failed = 0;

    /* the API's commands, unless a check's (lookup, touch) says not */
    a->lane = NGX_HTTP_AUTH_PAT_REDIS_API;
}


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


/* NS followed by the parts of a key name */
static void
ngx_http_auth_pat_args_key(ngx_http_auth_pat_args_t *a, const char *p1,
    ngx_str_t *p2, const char *p3)
{
    u_char     *p, *key;
    size_t      len, n1, n3;
    ngx_str_t  *ns;

    ns = &a->conf->ns;
    n1 = ngx_strlen(p1);
    n3 = ngx_strlen(p3);
    len = ns->len + n1 + (p2 ? p2->len : 0) + n3;

    key = ngx_pnalloc(a->pool, len);
    if (key == NULL) {
        a->failed = 1;
        return;
    }

    p = ngx_cpymem(key, ns->data, ns->len);
    p = ngx_cpymem(p, p1, n1);

    if (p2) {
        p = ngx_cpymem(p, p2->data, p2->len);
    }

    p = ngx_cpymem(p, p3, n3);

    ngx_http_auth_pat_args_add(a, key, p - key);
}


/* the invalidation feed's names: its channel, counter and epoch */

enum {
    NGX_HTTP_AUTH_PAT_FEED_CHANNEL = 0,
    NGX_HTTP_AUTH_PAT_FEED_SEQ,
    NGX_HTTP_AUTH_PAT_FEED_EPOCH
};

static const char  *ngx_http_auth_pat_feed_names[2][3] = {
    { "inval", "inval:seq", "epoch" },
    { "{inval}", "{inval}:seq", "{inval}:epoch" }      /* Cluster: one slot */
};


static void
ngx_http_auth_pat_args_feed(ngx_http_auth_pat_args_t *a, ngx_uint_t name)
{
    ngx_http_auth_pat_args_key(a,
        ngx_http_auth_pat_feed_names[a->conf->cluster ? 1 : 0][name],
        NULL, "");
}


/* NS {u:UID}:SUFFIX */
static void
ngx_http_auth_pat_args_ukey(ngx_http_auth_pat_args_t *a, ngx_str_t *user,
    const char *suffix)
{
    ngx_http_auth_pat_args_key(a, "{u:", user, suffix);
}


/* NS v:DIGEST */
static void
ngx_http_auth_pat_args_vkey(ngx_http_auth_pat_args_t *a, u_char *hex)
{
    ngx_str_t  digest;

    digest.data = hex;
    digest.len = PAT_DIGEST_HEX_LEN;

    ngx_http_auth_pat_args_key(a, "v:", &digest, "");
}


/* numkeys and the user keys, as every user script starts */
static void
ngx_http_auth_pat_args_user(ngx_http_auth_pat_args_t *a, ngx_str_t *user,
    ngx_uint_t nkeys)
{
    ngx_http_auth_pat_args_add(a, nkeys == 1 ? "1" : "8", 1);
    ngx_http_auth_pat_args_ukey(a, user, "}:m");

    if (nkeys == 8) {
        ngx_http_auth_pat_args_ukey(a, user, "}:a");
        ngx_http_auth_pat_args_ukey(a, user, "}:x");
        ngx_http_auth_pat_args_ukey(a, user, "}:i");
        ngx_http_auth_pat_args_ukey(a, user, "}:c");
        ngx_http_auth_pat_args_ukey(a, user, "}:ca");
        ngx_http_auth_pat_args_ukey(a, user, "}:ce");
        ngx_http_auth_pat_args_ukey(a, user, "}:cr");
    }
}


/* the scopes of a token, sorted, space-separated */
static void
ngx_http_auth_pat_args_scopes(ngx_http_auth_pat_args_t *a,
    ngx_http_auth_pat_store_token_t *t, const char *before)
{
    u_char  *p, *list;
    size_t   i, len, n;
    json_t  *e;

    n = t->scopes ? json_array_size(t->scopes) : 0;

    if (n == 0) {
        ngx_http_auth_pat_args_add(a, "", 0);
        return;
    }

    len = ngx_strlen(before);

    json_array_foreach(t->scopes, i, e) {
        len += json_string_length(e) + 1;
    }

    list = ngx_pnalloc(a->pool, len);
    if (list == NULL) {
        a->failed = 1;
        return;
    }

    p = ngx_cpymem(list, before, ngx_strlen(before));

    json_array_foreach(t->scopes, i, e) {
        if (i) {
            *p++ = ' ';
        }

        p = ngx_cpymem(p, json_string_value(e), json_string_length(e));
    }

    ngx_http_auth_pat_args_add(a, list, p - list);
}


/* the list index entry of a new token: "c:e:::name", US, its scopes */
static void
ngx_http_auth_pat_args_index(ngx_http_auth_pat_args_t *a,
    ngx_http_auth_pat_store_token_t *t)
{
    u_char  *p, *ix;

    /* the scopes, after NGX_HTTP_AUTH_PAT_INDEX_SEP */
    ngx_http_auth_pat_args_scopes(a, t, "\x1f");

    if (a->failed) {
        return;
    }

    a->argc--;

    ix = ngx_pnalloc(a->pool, 2 * NGX_INT64_LEN + 4 + t->name.len
                              + a->argvlen[a->argc]);
    if (ix == NULL) {
        a->failed = 1;
        return;
    }

    p = ngx_sprintf(ix, "%L:", t->created);

    if (t->expires) {
        p = ngx_sprintf(p, "%L", t->expires);
    }

    p = ngx_sprintf(p, ":::%V", &t->name);
    p = ngx_cpymem(p, a->argv[a->argc], a->argvlen[a->argc]);

    ngx_http_auth_pat_args_add(a, ix, p - ix);
}


static void
ngx_http_auth_pat_store_noop(void *data, redisReply *reply, ngx_int_t rc)
{
}


static ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_args_eval(ngx_http_auth_pat_args_t *a, ngx_uint_t script,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    if (a->failed) {
        return NULL;
    }

    if (handler == NULL) {
        /*
         * fire-and-forget (a cleanup): on the command connection, which
         * is up when the API's was just reset, and never behind a WAIT
         */
        handler = ngx_http_auth_pat_store_noop;
        a->lane = 0;
    }

    return ngx_http_auth_pat_redis_eval(a->lane, handler, data, script,
                                        a->argc, a->argv, a->argvlen);
}


static ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_args_command(ngx_http_auth_pat_args_t *a, ngx_uint_t flags,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    if (a->failed) {
        return NULL;
    }

    if (handler == NULL) {
        handler = ngx_http_auth_pat_store_noop;
        a->lane = 0;
    }

    return ngx_http_auth_pat_redis_command(flags|a->lane, handler, data,
                                           a->argc, a->argv, a->argvlen);
}


/* ------------------------------------------------------ access check */


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_lookup(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, u_char *hex, ngx_http_auth_pat_store_pt handler,
    void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    a.lane = 0;
    ngx_http_auth_pat_args_add(&a, "HMGET", 5);
    ngx_http_auth_pat_args_vkey(&a, hex);
    ngx_http_auth_pat_args_add(&a, "u", 1);
    ngx_http_auth_pat_args_add(&a, "i", 1);
    ngx_http_auth_pat_args_add(&a, "n", 1);
    ngx_http_auth_pat_args_add(&a, "e", 1);
    ngx_http_auth_pat_args_add(&a, "s", 1);
    ngx_http_auth_pat_args_add(&a, "c", 1);

    return ngx_http_auth_pat_args_command(&a, NGX_HTTP_AUTH_PAT_REDIS_READ,
                                          handler, data);
}


/*
 * lastUsedAt, fire-and-forget: the request never waits for it.  The
 * script moves lastUsedAt at most once a minute; the caller limits how
 * often it is asked.
 */

void
ngx_http_auth_pat_store_touch(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *id, int64_t now)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    a.lane = 0;
    ngx_http_auth_pat_args_add(&a, "2", 1);
    ngx_http_auth_pat_args_ukey(&a, user, "}:m");
    ngx_http_auth_pat_args_ukey(&a, user, "}:i");
    ngx_http_auth_pat_args_str(&a, id);
    ngx_http_auth_pat_args_num(&a, now);
    ngx_http_auth_pat_args_num(&a, NGX_HTTP_AUTH_PAT_TOUCH_MS);

    (void) ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_TOUCH,
                                       NULL, NULL);
}


/* ------------------------------------------------------- admin API */


ngx_int_t
ngx_http_auth_pat_store_record(ngx_pool_t *pool,
    ngx_http_auth_pat_store_token_t *t, ngx_str_t *record)
{
    json_t  *rec, *rf;

    rf = t->rotated_from ? json_stringn((char *) t->rotated_from->data,
                                        t->rotated_from->len)
                         : json_null();

    rec = json_pack("{s:s#, s:s#, s:s#, s:I, s:o, s:n, s:n, s:s#, s:o, s:n,"
                    " s:n, s:o}",
                    "id", (char *) t->id.data, (int) t->id.len,
                    "name", (char *) t->name.data, (int) t->name.len,
                    "prefix", (char *) t->prefix.data, (int) t->prefix.len,
                    "c", (json_int_t) t->created,
                    "e", t->expires ? json_integer(t->expires) : json_null(),
                    "l",
                    "r",
                    "d", (char *) t->hex.data, (int) t->hex.len,
                    "rf", rf,
                    "rt",
                    "k",
                    "s", t->scopes ? json_incref(t->scopes) : json_array());
    if (rec == NULL) {
        return NGX_ERROR;
    }

    record->len = json_dumpb(rec, NULL, 0, JSON_COMPACT);
    record->data = record->len ? ngx_pnalloc(pool, record->len) : NULL;

    if (record->data == NULL
        || json_dumpb(rec, (char *) record->data, record->len, JSON_COMPACT)
           != record->len)
    {
        json_decref(rec);
        return NGX_ERROR;
    }

    json_decref(rec);

    return NGX_OK;
}


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_create(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_str_t *user, ngx_http_auth_pat_store_token_t *t,
    ngx_str_t *record, ngx_uint_t max_tokens,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_user(&a, user, 8);
    ngx_http_auth_pat_args_str(&a, &t->id);
    ngx_http_auth_pat_args_str(&a, record);
    ngx_http_auth_pat_args_num(&a, t->created);
    ngx_http_auth_pat_args_expiry(&a, t->expires);
    ngx_http_auth_pat_args_num(&a, max_tokens ? max_tokens : 1);
    ngx_http_auth_pat_args_num(&a, t->created - NGX_HTTP_AUTH_PAT_RETENTION);
    ngx_http_auth_pat_args_num(&a, NGX_HTTP_AUTH_PAT_INACTIVE_MAX);
    ngx_http_auth_pat_args_index(&a, t);

    return ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_CREATE,
                                       handler, data);
}


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_activate(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_str_t *user, ngx_http_auth_pat_store_token_t *t,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_add(&a, "1", 1);
    ngx_http_auth_pat_args_vkey(&a, t->hex.data);
    ngx_http_auth_pat_args_str(&a, user);
    ngx_http_auth_pat_args_str(&a, &t->id);
    ngx_http_auth_pat_args_str(&a, &t->name);
    ngx_http_auth_pat_args_expiry(&a, t->expires);
    ngx_http_auth_pat_args_scopes(&a, t, "");
    ngx_http_auth_pat_args_num(&a, t->created);

    return ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_ACTIVATE,
                                       handler, data);
}


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_get(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *id,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_add(&a, "HGET", 4);
    ngx_http_auth_pat_args_ukey(&a, user, "}:m");
    ngx_http_auth_pat_args_str(&a, id);

    return ngx_http_auth_pat_args_command(&a, NGX_HTTP_AUTH_PAT_REDIS_READ,
                                          handler, data);
}


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_deactivate(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, u_char *hex, ngx_http_auth_pat_store_pt handler,
    void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_add(&a, "DEL", 3);
    ngx_http_auth_pat_args_vkey(&a, hex);

    return ngx_http_auth_pat_args_command(&a, NGX_HTTP_AUTH_PAT_REDIS_WRITE,
                                          handler, data);
}


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_invalidate(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, u_char *hex, ngx_http_auth_pat_store_pt handler,
    void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_add(&a, "1", 1);
    ngx_http_auth_pat_args_feed(&a, NGX_HTTP_AUTH_PAT_FEED_SEQ);
    ngx_http_auth_pat_args_feed(&a, NGX_HTTP_AUTH_PAT_FEED_CHANNEL);
    ngx_http_auth_pat_args_add(&a, hex, PAT_DIGEST_HEX_LEN);

    return ngx_http_auth_pat_args_eval(&a,
                                       NGX_HTTP_AUTH_PAT_SCRIPT_INVALIDATE,
                                       handler, data);
}


/*
 * "0:DIGEST" by a plain PUBLISH: an invalidation the sequence does not
 * count, for when the script's INCR is refused (OOM refuses it, not
 * PUBLISH).  A replica takes PUBLISH too, and the caches subscribed to
 * it are the ones that need it.
 */

ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_publish(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, u_char *hex, ngx_http_auth_pat_store_pt handler,
    void *data)
{
    u_char                    *msg;
    ngx_http_auth_pat_args_t   a;

    msg = ngx_pnalloc(pool, 2 + PAT_DIGEST_HEX_LEN);
    if (msg == NULL) {
        return NULL;
    }

    msg[0] = '0';
    msg[1] = ':';
    ngx_memcpy(msg + 2, hex, PAT_DIGEST_HEX_LEN);

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_add(&a, "PUBLISH", 7);
    ngx_http_auth_pat_args_feed(&a, NGX_HTTP_AUTH_PAT_FEED_CHANNEL);
    ngx_http_auth_pat_args_add(&a, msg, 2 + PAT_DIGEST_HEX_LEN);

    return ngx_http_auth_pat_args_command(&a, NGX_HTTP_AUTH_PAT_REDIS_READ,
                                          handler, data);
}


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_revoke(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *id, int64_t now,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_user(&a, user, 8);
    ngx_http_auth_pat_args_str(&a, id);
    ngx_http_auth_pat_args_num(&a, now);

    return ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_REVOKE,
                                       handler, data);
}


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_claim(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *id, int64_t now,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_user(&a, user, 1);
    ngx_http_auth_pat_args_str(&a, id);
    ngx_http_auth_pat_args_num(&a, now);
    ngx_http_auth_pat_args_num(&a, scf->claim_ttl);

    return ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_CLAIM,
                                       handler, data);
}


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_rotate(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *old_id, int64_t claim,
    ngx_http_auth_pat_store_token_t *t, ngx_str_t *record,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_user(&a, user, 8);
    ngx_http_auth_pat_args_str(&a, old_id);
    ngx_http_auth_pat_args_num(&a, claim);
    ngx_http_auth_pat_args_str(&a, &t->id);
    ngx_http_auth_pat_args_str(&a, record);
    ngx_http_auth_pat_args_num(&a, t->created);
    ngx_http_auth_pat_args_expiry(&a, t->expires);
    ngx_http_auth_pat_args_index(&a, t);

    return ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_ROTATE,
                                       handler, data);
}


/* the user's keys, then now, the retention cutoff and the cap (purge) */

static void
ngx_http_auth_pat_args_retention(ngx_http_auth_pat_args_t *a,
    ngx_http_auth_pat_store_conf_t *scf, ngx_pool_t *pool, ngx_str_t *user,
    int64_t now)
{
    ngx_http_auth_pat_args_init(a, scf, pool);
    ngx_http_auth_pat_args_user(a, user, 8);
    ngx_http_auth_pat_args_num(a, now);
    ngx_http_auth_pat_args_num(a, now - NGX_HTTP_AUTH_PAT_RETENTION);
    ngx_http_auth_pat_args_num(a, NGX_HTTP_AUTH_PAT_INACTIVE_MAX);
}


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_list_index(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_str_t *user, int64_t now,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    /* retention first, pipelined on the same connection */
    ngx_http_auth_pat_args_retention(&a, scf, pool, user, now);

    (void) ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_PURGE,
                                       NULL, NULL);

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_add(&a, "HGETALL", 7);
    ngx_http_auth_pat_args_ukey(&a, user, "}:i");

    return ngx_http_auth_pat_args_command(&a, NGX_HTTP_AUTH_PAT_REDIS_READ,
                                          handler, data);
}


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_list_page(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_str_t *user, int64_t now, ngx_uint_t status,
    ngx_uint_t offset, ngx_uint_t limit, ngx_uint_t desc,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_retention(&a, scf, pool, user, now);
    ngx_http_auth_pat_args_num(&a, status);
    ngx_http_auth_pat_args_num(&a, offset);
    ngx_http_auth_pat_args_num(&a, limit);
    ngx_http_auth_pat_args_add(&a, desc ? "1" : "0", 1);

    return ngx_http_auth_pat_args_eval(&a, NGX_HTTP_AUTH_PAT_SCRIPT_LIST,
                                       handler, data);
}


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_get_many(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_str_t *user, ngx_str_t *ids, ngx_uint_t n,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    size_t                    *argvlen;
    ngx_uint_t                 i;
    const char               **argv;
    ngx_http_auth_pat_args_t   a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_add(&a, "HMGET", 5);
    ngx_http_auth_pat_args_ukey(&a, user, "}:m");

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

    return ngx_http_auth_pat_redis_command(NGX_HTTP_AUTH_PAT_REDIS_API,
                                           handler, data, (int) n + 2, argv,
                                           argvlen);
}


/* ------------------------------------------------------------- audit */


ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_audit(ngx_http_auth_pat_store_conf_t *scf,
    ngx_pool_t *pool, ngx_uint_t maxlen, ngx_str_t *fields, ngx_uint_t n,
    ngx_http_auth_pat_store_pt handler, void *data)
{
    ngx_uint_t                i;
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    a.lane = 0;
    ngx_http_auth_pat_args_add(&a, "XADD", 4);
    ngx_http_auth_pat_args_key(&a, "{audit}", NULL, "");
    ngx_http_auth_pat_args_add(&a, "MAXLEN", 6);
    ngx_http_auth_pat_args_add(&a, "~", 1);
    ngx_http_auth_pat_args_num(&a, (int64_t) maxlen);
    ngx_http_auth_pat_args_add(&a, "*", 1);

    for (i = 0; i < 2 * n; i++) {
        ngx_http_auth_pat_args_str(&a, &fields[i]);
    }

    return ngx_http_auth_pat_args_command(&a, NGX_HTTP_AUTH_PAT_REDIS_WRITE,
                                          handler, data);
}


/*
 * replicas=N: WAIT on the connection that answered the writes to wait
 * for (the API's; with Cluster, the shard's)
 */

ngx_http_auth_pat_store_cmd_t *
ngx_http_auth_pat_store_replicate(ngx_http_auth_pat_store_conf_t *scf,
    ngx_http_auth_pat_store_route_t *route, ngx_http_auth_pat_store_pt handler,
    void *data)
{
    return ngx_http_auth_pat_redis_wait(NGX_HTTP_AUTH_PAT_REDIS_API,
                                        scf->replicas, route, handler, data);
}


void
ngx_http_auth_pat_store_answered_on(ngx_http_auth_pat_store_route_t *route)
{
    ngx_http_auth_pat_redis_answered_on(route);
}


void
ngx_http_auth_pat_store_cancel(ngx_http_auth_pat_store_cmd_t *cmd)
{
    ngx_http_auth_pat_redis_cancel(cmd);
}


/* ---------------------------------------------------------- lifecycle */


ngx_int_t
ngx_http_auth_pat_store_inval_names(ngx_pool_t *pool,
    ngx_http_auth_pat_store_conf_t *scf, ngx_http_auth_pat_inval_names_t *n)
{
    ngx_http_auth_pat_args_t  a;

    ngx_http_auth_pat_args_init(&a, scf, pool);
    ngx_http_auth_pat_args_feed(&a, NGX_HTTP_AUTH_PAT_FEED_CHANNEL);
    ngx_http_auth_pat_args_feed(&a, NGX_HTTP_AUTH_PAT_FEED_SEQ);
    ngx_http_auth_pat_args_feed(&a, NGX_HTTP_AUTH_PAT_FEED_EPOCH);

    if (a.failed) {
        return NGX_ERROR;
    }

    n->channel.data = (u_char *) a.argv[0];
    n->channel.len = a.argvlen[0];
    n->seq.data = (u_char *) a.argv[1];
    n->seq.len = a.argvlen[1];
    n->epoch.data = (u_char *) a.argv[2];
    n->epoch.len = a.argvlen[2];

    return NGX_OK;
}


ngx_int_t
ngx_http_auth_pat_store_init_conf(ngx_conf_t *cf,
    ngx_http_auth_pat_store_conf_t *scf, ngx_http_auth_pat_redis_conf_t *rcf)
{
    ngx_uint_t  i;

    /*
     * a claim left by a crash between the steps of a rotation goes
     * stale after all of them could have timed out
     */
    scf->claim_ttl = 4 * rcf->timeout + 1000;
    scf->cluster = rcf->cluster;

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


ngx_int_t
ngx_http_auth_pat_store_init_process(ngx_cycle_t *cycle,
    ngx_http_auth_pat_store_conf_t *scf, ngx_http_auth_pat_redis_conf_t *rcf)
{
    ngx_str_t                  probe;
    ngx_http_auth_pat_args_t  *a;

    /*
     * The handshake probes the command of the access check, so that an
     * ACL denying it shows up once per connection, not per request.  The
     * arguments live as long as the worker.
     */
    a = ngx_palloc(cycle->pool, sizeof(ngx_http_auth_pat_args_t));
    if (a == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&probe, "probe");

    ngx_http_auth_pat_args_init(a, scf, cycle->pool);
    ngx_http_auth_pat_args_add(a, "HMGET", 5);
    ngx_http_auth_pat_args_key(a, "v:", &probe, "");
    ngx_http_auth_pat_args_add(a, "u", 1);

    if (a->failed) {
        return NGX_ERROR;
    }

    return ngx_http_auth_pat_redis_init_process(cycle, rcf,
                                             ngx_http_auth_pat_store_scripts,
                                             NGX_HTTP_AUTH_PAT_NSCRIPTS,
                                             a->argc, a->argv, a->argvlen);
}


void
ngx_http_auth_pat_store_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_auth_pat_redis_exit_process(cycle);
}
