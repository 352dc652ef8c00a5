
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
 *   NS {u:UID}:a             sorted set, the user's active tokens, scored
 *                            by expiresAt (+inf for never): it counts them
 *                            for auth_pat_max_tokens in O(log n).
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


static ngx_http_auth_pat_main_conf_t  *ngx_http_auth_pat_store_mcf;

static const char  *ngx_http_auth_pat_store_fields[] = { "u", "i", "n", "e" };

static const size_t  ngx_http_auth_pat_store_fields_len[] = { 1, 1, 1, 1 };


ngx_int_t
ngx_http_auth_pat_store_init_conf(ngx_conf_t *cf,
    ngx_http_auth_pat_main_conf_t *pmcf)
{
    return NGX_OK;
}


ngx_int_t
ngx_http_auth_pat_store_digest(ngx_http_auth_pat_main_conf_t *pmcf,
    u_char *token, size_t len, u_char *hex)
{
    uint8_t  md[PAT_DIGEST_LEN];

    if (pat_hmac_sha256(pmcf->key.data, pmcf->key.len, token, len, md) != 0) {
        return NGX_ERROR;
    }

    pat_hex_encode(md, PAT_DIGEST_LEN, (char *) hex);

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


ngx_int_t
ngx_http_auth_pat_store_init_process(ngx_cycle_t *cycle,
    ngx_http_auth_pat_main_conf_t *pmcf)
{
    u_char      *key;
    size_t      *argvlen;
    const char **argv;

    ngx_http_auth_pat_store_mcf = pmcf;

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

    return ngx_http_auth_pat_redis_init_process(cycle, pmcf->redis, NULL, 0,
                                                3, argv, argvlen);
}


void
ngx_http_auth_pat_store_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_auth_pat_redis_exit_process(cycle);
    ngx_http_auth_pat_store_mcf = NULL;
}
