
/*
 * The flows of the token API, each a chain of Redis commands.  A step
 * sends one command and names the function its reply goes to, as
 * ngx_http_upstream hands off through u->process_header; each function
 * is named for what the reply finishes.  ngx_http_auth_pat_api_fail()
 * is the one way out on a failure.
 *
 *   create  create_added -> issue_activated -> issue_confirmed
 *   revoke  revoke_got -> [withdraw] -> revoke_marked -> [withdraw]
 *           -> revoke_settled -> [replicate] -> revoke_done
 *   rotate  rotate_got -> rotate_claimed -> [withdraw] -> rotate_swapped
 *           -> [withdraw] -> issue_activated -> issue_confirmed
 *           -> [replicate] -> issue_answer
 *   list    list_indexed -> list_paged
 *   get     get_got
 *
 * A withdrawal deletes a validation record, then publishes its digest to
 * every nginx's cache; only after both does the metadata say "revoked".
 *
 * The validation record and the metadata live in different Cluster
 * slots, so no script writes both, and a revoke can run between a new
 * token's metadata and its activation, deleting a record not yet
 * written.  Two rules close that window, whatever the order: a token
 * marked revoked is withdrawn once more; and an activated token's
 * metadata is read back (issue_confirmed): one revoked meanwhile is
 * withdrawn again, and the client gets 409, never a dead token.
 *
 * With replicas=N, a revoke or rotate answers 2xx only once WAIT has
 * seen its writes on N replicas; otherwise 503, and a rotation's new
 * token is revoked too (the old one already is), as nobody got it.
 *
 * The plaintext of a new token lives in the request's memory only, is
 * sent once in the response, and is wiped when the request ends.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_api.h"
#include "ngx_http_auth_pat_audit.h"
#include "ngx_http_auth_pat_json.h"


typedef struct {
    u_char                          *id;
    size_t                           id_len;
    u_char                          *name;
    size_t                           name_len;
    int64_t                          created;
    int64_t                          key;       /* the sort key */
    unsigned                         has_key:1; /* no key: sorted last */
    unsigned                         by_name:1;
    unsigned                         by_created:1;
    unsigned                         desc:1;
} ngx_http_auth_pat_list_entry_t;


static void ngx_http_auth_pat_api_issue_activate(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply);
static void ngx_http_auth_pat_api_audit_rotation(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, const char *event, const char *reason);


/* ------------------------------------------------------------ plumbing */


/*
 * The one way out on a failure.  A new token whose metadata exists may
 * or may not have its validation record: the client never sees its
 * plaintext, and it is undone in the safe order: the validation record,
 * then the metadata (on one pipelined connection; with Cluster they may
 * be on two nodes, and the metadata is marked only if the deletion went
 * out, so that a token is never listed revoked while it still checks).
 */

static void
ngx_http_auth_pat_api_fail(ngx_http_request_t *r, ngx_http_auth_pat_api_t *api,
    ngx_uint_t status)
{
    const ngx_http_auth_pat_refusal_t  *rf;

    if (api->issued) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "auth_pat: token %V of user \"%V\" was not handed "
                      "out; revoking it", &api->issue.id, &api->user);

        if (api->issue.rotated_from && !api->rotation_audited) {
            /* the swap revoked the old token: that much happened */
            ngx_http_auth_pat_api_audit_rotation(r, api, "revoke",
                "the rotation failed after the old token was revoked");
        }

        if (ngx_http_auth_pat_store_deactivate(api->store, r->pool,
                                               api->hex, NULL, NULL)
            != NULL)
        {
            (void) ngx_http_auth_pat_store_revoke(api->store, r->pool,
                                                  &api->user, &api->issue.id,
                                                  api->now, NULL, NULL);
        }
        api->issued = 0;
    }

    if (status != NGX_HTTP_SERVICE_UNAVAILABLE) {
        ngx_http_auth_pat_finalize_error(r, status, NULL, NULL);
        return;
    }

    rf = ngx_http_auth_pat_refusal(NGX_HTTP_AUTH_PAT_UNAVAILABLE);
    ngx_http_auth_pat_finalize_error(r, rf->status, rf->code, rf->message);
}


/* the audit trail: who (api->user, by api_user or by which token) did what */

static void
ngx_http_auth_pat_api_audit(ngx_http_request_t *r, ngx_http_auth_pat_api_t *api,
    ngx_http_auth_pat_audit_event_t *ev)
{
    ngx_http_auth_pat_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_auth_pat_module);

    ev->user = &api->user;
    ev->caller = api->bearer ? &api->caller->token_id : NULL;

    ngx_http_auth_pat_audit(r, pmcf->audit, api->store, ev);
}


/*
 * A record's "prefix", or NULL: Redis may hold anything, and only a
 * prefix as issued (letters, digits and '_') goes into the audit trail.
 */

static ngx_str_t *
ngx_http_auth_pat_api_prefix_of(ngx_http_request_t *r, json_t *rec)
{
    size_t       i, len;
    json_t      *v;
    ngx_str_t   *s;
    const char  *p;

    v = rec ? json_object_get(rec, "prefix") : NULL;

    if (!json_is_string(v)) {
        return NULL;
    }

    p = json_string_value(v);
    len = json_string_length(v);

    if (len == 0 || len > 64) {
        return NULL;
    }

    for (i = 0; i < len; i++) {
        if (!(isalnum((unsigned char) p[i]) || p[i] == '_')) {
            return NULL;
        }
    }

    s = ngx_palloc(r->pool, sizeof(ngx_str_t));
    if (s == NULL) {
        return NULL;
    }

    /* a copy: the record may be released before the event is written */
    s->len = len;
    s->data = ngx_pnalloc(r->pool, len);
    if (s->data == NULL) {
        return NULL;
    }

    ngx_memcpy(s->data, p, len);

    return s;
}


void
ngx_http_auth_pat_api_audit_refused(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, const char *reason)
{
    ngx_http_auth_pat_audit_event_t  ev = { 0 };

    ev.event = "refused";
    ev.token = api->id.len ? &api->id : NULL;
    ev.reason = reason;

    ngx_http_auth_pat_api_audit(r, api, &ev);
}


/*
 * A rotation: the old token (its prefix kept at the swap) and the new
 * one; reason says what went wrong after the swap, if anything did.
 */

static void
ngx_http_auth_pat_api_audit_rotation(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, const char *event, const char *reason)
{
    ngx_http_auth_pat_audit_event_t  ev = { 0 };

    ev.event = event;
    ev.token = &api->id;
    ev.prefix = api->old_prefix;
    ev.new_token = &api->issue.id;
    ev.new_prefix = &api->issue.prefix;
    ev.reason = reason;

    ngx_http_auth_pat_api_audit(r, api, &ev);

    api->rotation_audited = 1;
}


/* what Redis holds or answers is not what this release wrote: 503 */

static void
ngx_http_auth_pat_api_garbled(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, const char *what)
{
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "auth_pat: unexpected %s in redis, user \"%V\"%s%V",
                  what, &api->user, api->id.len ? ", token " : "", &api->id);

    ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_SERVICE_UNAVAILABLE);
}


static void
ngx_http_auth_pat_api_replied(void *data, redisReply *reply, ngx_int_t rc)
{
    ngx_http_auth_pat_api_t  *api = data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = api->request;
    c = r->connection;
    api->cmd = NULL;

    if (rc != NGX_OK) {
        ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_SERVICE_UNAVAILABLE);

    } else if (reply->type == REDIS_REPLY_ERROR) {
        /*
         * OOM, READONLY, NOPERM, BUSY...: the store cannot do it now; the
         * Redis layer logs each class of error, once
         */
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "auth_pat api: redis error: %s", reply->str);
        ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_SERVICE_UNAVAILABLE);

    } else {
        api->step(r, api, reply);
    }

    ngx_http_run_posted_requests(c);
}


/* the command's reply goes to step; no command: Redis is unavailable */

static void
ngx_http_auth_pat_api_wait(ngx_http_request_t *r, ngx_http_auth_pat_api_t *api,
    ngx_http_auth_pat_store_cmd_t *cmd, ngx_http_auth_pat_api_step_pt step,
    const char *what)
{
    if (cmd == NULL) {
        ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_SERVICE_UNAVAILABLE);
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "auth_pat api step: %s", what);

    api->cmd = cmd;
    api->step = step;
}


static void
ngx_http_auth_pat_api_unavailable(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_SERVICE_UNAVAILABLE);
}


/*
 * The counted invalidation was refused (under OOM the script's INCR is,
 * PUBLISH is not; or NS inval:seq holds no number).  The validation
 * record is gone: every subscribed cache still hears of it, uncounted,
 * before the request fails; a retry completes what is left.
 */

static void
ngx_http_auth_pat_api_invalidated(void *data, redisReply *reply,
    ngx_int_t rc)
{
    ngx_http_auth_pat_api_t  *api = data;

    ngx_http_request_t  *r;

    if (rc != NGX_OK || reply->type != REDIS_REPLY_ERROR) {
        ngx_http_auth_pat_api_replied(data, reply, rc);
        return;
    }

    r = api->request;
    api->cmd = NULL;

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "auth_pat: a revocation for user \"%V\" could not be "
                  "counted (%s); publishing it uncounted, answering 503",
                  &api->user, reply->str);

    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_publish(api->store, r->pool,
                                        api->withdrawing,
                                        ngx_http_auth_pat_api_replied, api),
        ngx_http_auth_pat_api_unavailable,
        "withdraw: publish the invalidation uncounted");
}


static void
ngx_http_auth_pat_api_withdraw_deleted(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    /* replicas=: the deletion is what a WAIT must confirm */
    ngx_http_auth_pat_store_answered_on(api->withdrawing == api->old_hex
                                        ? &api->route_old : &api->route_new);

    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_invalidate(api->store, r->pool,
                                           api->withdrawing,
                                           ngx_http_auth_pat_api_invalidated,
                                           api),
        api->withdrawn,
        "withdraw: publish the invalidation");
}


/* the token of digest hex stops working everywhere; then, then */

static void
ngx_http_auth_pat_api_withdraw(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, u_char *hex,
    ngx_http_auth_pat_api_step_pt then)
{
    api->withdrawing = hex;
    api->withdrawn = then;

    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_deactivate(api->store, r->pool, hex,
                                           ngx_http_auth_pat_api_replied,
                                           api),
        ngx_http_auth_pat_api_withdraw_deleted,
        "withdraw: delete the validation record");
}


static void ngx_http_auth_pat_api_replicate_on(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, ngx_http_auth_pat_store_route_t *route);


static void
ngx_http_auth_pat_api_replicas_counted(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    ngx_http_auth_pat_store_route_t  *next;

    if (reply->type == REDIS_REPLY_INTEGER
        && reply->integer >= (long long) api->store->replicas)
    {
        next = api->replicate_next;

        if (next != NULL) {
            api->replicate_next = NULL;
            ngx_http_auth_pat_api_replicate_on(r, api, next);
            return;
        }

        api->replicated(r, api, reply);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "auth_pat: token %V of user \"%V\": %L of %ui replicas "
                  "confirmed the change in time; answering 503",
                  &api->id, &api->user,
                  reply->type == REDIS_REPLY_INTEGER
                  ? (int64_t) reply->integer : (int64_t) 0,
                  api->store->replicas);

    ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_SERVICE_UNAVAILABLE);
}


static void
ngx_http_auth_pat_api_replicate_on(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, ngx_http_auth_pat_store_route_t *route)
{
    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_replicate(api->store, route,
                                          ngx_http_auth_pat_api_replied,
                                          api),
        ngx_http_auth_pat_api_replicas_counted,
        "replicate: WAIT for the replicas");
}


/*
 * replicas=N: the writes so far reach N replicas; then, then.  A WAIT
 * goes on the connection that answered the old token's deletion (with
 * Cluster, one shard's; after a redirect, the node that took it), and,
 * for a rotation whose new record was written on another, a second one
 * there.  A connection closed since then cannot confirm: 503.
 */

static void
ngx_http_auth_pat_api_replicate(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, ngx_http_auth_pat_api_step_pt then)
{
    ngx_http_auth_pat_store_route_t  *o, *n;

    if (api->store->replicas == 0) {
        then(r, api, NULL);
        return;
    }

    api->replicated = then;

    o = &api->route_old;
    n = &api->route_new;

    api->replicate_next = (api->issue.rotated_from
                           && (n->conn != o->conn || n->serial != o->serial))
                          ? n : NULL;

    ngx_http_auth_pat_api_replicate_on(r, api, o);
}


/* {"data": token} or, with the plaintext, {"data": token + "token"} */

static void
ngx_http_auth_pat_api_send_token(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, ngx_uint_t status, json_t *rec,
    ngx_uint_t with_plaintext)
{
    json_t     *t;
    ngx_str_t   token;

    t = ngx_http_auth_pat_token_object(rec, api->now);
    if (t == NULL) {
        ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    token.data = api->token;
    token.len = api->token_len;

    api->issued = 0;

    ngx_http_auth_pat_finalize_data(r, status, t,
                                    with_plaintext ? &token : NULL);
}


/*
 * The metadata record the route names, into api->old: NGX_OK; or the
 * request is answered (404 for anyone else's).
 */

static ngx_int_t
ngx_http_auth_pat_api_old_record(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    json_t  *rec, *d;

    if (reply->type == REDIS_REPLY_NIL) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such token");
        return NGX_DECLINED;
    }

    rec = (reply->type == REDIS_REPLY_STRING)
          ? ngx_http_auth_pat_parse_record((u_char *) reply->str, reply->len)
          : NULL;

    d = json_object_get(rec, "d");

    if (!json_is_string(d) || json_string_length(d) != PAT_DIGEST_HEX_LEN) {
        if (rec) {
            json_decref(rec);
        }

        ngx_http_auth_pat_api_garbled(r, api, "metadata record");
        return NGX_ERROR;
    }

    ngx_memcpy(api->old_hex, json_string_value(d), PAT_DIGEST_HEX_LEN);

    if (api->old) {
        json_decref(api->old);
    }

    api->old = rec;

    return NGX_OK;
}


/* the metadata record of the token the route names, to step */

static void
ngx_http_auth_pat_api_read_named(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, ngx_http_auth_pat_api_step_pt step,
    const char *what)
{
    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_get(api->store, r->pool, &api->user,
                                    &api->id, ngx_http_auth_pat_api_replied,
                                    api),
        step, what);
}


/* -------------------------------------------------------------- issue */


ngx_uint_t
ngx_http_auth_pat_api_scope_allowed(ngx_http_auth_pat_loc_conf_t *plcf,
    u_char *scope, size_t len)
{
    ngx_str_t   *s;
    ngx_uint_t   i;

    if (plcf->scopes_allowed == NULL) {
        return 1;
    }

    s = plcf->scopes_allowed->elts;

    for (i = 0; i < plcf->scopes_allowed->nelts; i++) {
        if (s[i].len == len && ngx_strncmp(s[i].data, scope, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/* 403 insufficient_scope: what a bearer caller may not issue */

static void
ngx_http_auth_pat_api_refuse_scope(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, const char *reason, const char *message)
{
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    ngx_http_auth_pat_api_audit_refused(r, api, reason);

    ngx_http_finalize_request(r,
        ngx_http_auth_pat_send_error(r, NGX_HTTP_FORBIDDEN,
                                     "insufficient_scope", message,
                                     &plcf->challenge_api_refused));
}


/* a bearer caller grants only scopes its token holds */

static ngx_int_t
ngx_http_auth_pat_api_scopes_held(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    size_t   i;
    json_t  *e;

    if (!api->bearer || api->own) {
        return NGX_OK;
    }

    json_array_foreach(api->issue.scopes, i, e) {
        if (!ngx_http_auth_pat_scope_in(&api->caller->scopes,
                                        (u_char *) json_string_value(e),
                                        json_string_length(e)))
        {
            ngx_http_auth_pat_api_refuse_scope(r, api, "scope not held",
                "a token may grant only scopes it holds itself");
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_auth_pat_api_scopes(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, ngx_uint_t rotation)
{
    u_char                           *msg, *p;
    size_t                            i;
    json_t                           *v, *e, *held, *none;
    ngx_uint_t                        status, widened;
    const char                       *err, *bad;
    ngx_http_auth_pat_loc_conf_t     *plcf;
    ngx_http_auth_pat_audit_event_t   ev = { 0 };

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    held = NULL;
    none = NULL;
    widened = 0;

    if (rotation) {
        held = json_object_get(api->old, "s");

        /*
         * a record of an earlier release has none; Lua's cjson writes an
         * empty array back as {}
         */
        if (!json_is_array(held)) {
            held = none = json_array();
            if (none == NULL) {
                goto failed;
            }
        }
    }

    v = api->body ? json_object_get(api->body, "scopes") : NULL;

    if (v == NULL && rotation) {
        api->issue.scopes = json_incref(held);
        json_decref(none);
        return ngx_http_auth_pat_api_scopes_held(r, api);
    }

    err = ngx_http_auth_pat_parse_scopes(v, &api->issue.scopes, &status,
                                         &bad);

    if (err == NULL) {
        json_array_foreach(api->issue.scopes, i, e) {
            bad = json_string_value(e);

            if (rotation) {
                if (!ngx_http_auth_pat_scope_held(e, held)) {
                    err = "a rotation keeps the scopes or narrows them";
                    status = NGX_HTTP_UNPROCESSABLE_ENTITY;
                    widened = 1;
                    break;
                }

                continue;
            }

            if (!ngx_http_auth_pat_api_scope_allowed(plcf, (u_char *) bad,
                                                     ngx_strlen(bad)))
            {
                err = "not in auth_pat_scopes_allowed";
                status = NGX_HTTP_UNPROCESSABLE_ENTITY;
                break;
            }
        }
    }

    if (none) {
        json_decref(none);
    }

    if (err == NULL) {
        return ngx_http_auth_pat_api_scopes_held(r, api);
    }

    if (status == NGX_HTTP_INTERNAL_SERVER_ERROR) {
        goto failed;
    }

    if (widened) {
        ev.event = "refused";
        ev.token = &api->id;
        ev.reason = "rotation widens the scopes";
        ngx_http_auth_pat_api_audit(r, api, &ev);
    }

    if (bad == NULL) {
        ngx_http_auth_pat_finalize_invalid(r, status, err);
        return NGX_DECLINED;
    }

    /*
     * the scope named: its first 64 bytes, anything but printable ASCII
     * shown as '?' (a bad scope may hold any character)
     */
    msg = ngx_pnalloc(r->pool, sizeof("scope \"\": ") + 64 + ngx_strlen(err));
    if (msg == NULL) {
        goto failed;
    }

    p = ngx_cpymem(msg, "scope \"", 7);

    for (i = 0; i < 64 && bad[i]; i++) {
        *p++ = (bad[i] >= 0x20 && bad[i] < 0x7f) ? bad[i] : '?';
    }

    ngx_sprintf(p, "\": %s%Z", err);

    ngx_http_auth_pat_finalize_invalid(r, status, (char *) msg);
    return NGX_DECLINED;

failed:

    ngx_http_auth_pat_finalize_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                     NULL, NULL);
    return NGX_DECLINED;
}


ngx_int_t
ngx_http_auth_pat_api_expires(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, int64_t dflt, int64_t limit)
{
    json_t                        *v;
    int64_t                       *e;
    ngx_uint_t                     status;
    const char                    *err;
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    v = api->body ? json_object_get(api->body, "expiresAt") : NULL;
    e = &api->issue.expires;

    err = ngx_http_auth_pat_parse_expires(v, api->now, dflt,
                                          (int64_t) plcf->max_lifetime * 1000,
                                          e, &status);
    if (err) {
        ngx_http_auth_pat_finalize_invalid(r, status, err);
        return NGX_DECLINED;
    }

    if (limit == 0 || (*e != 0 && *e <= limit)) {
        return NGX_OK;
    }

    if (v == NULL) {
        *e = limit;
        return NGX_OK;
    }

    ngx_http_auth_pat_api_refuse_scope(r, api, "expiry beyond the caller's",
        "a token may not issue one that expires later than itself, or, "
        "rotating itself, with a longer lifetime");
    return NGX_DECLINED;
}


/* a new token, its id and digest, and its metadata record */

static ngx_int_t
ngx_http_auth_pat_api_issue_prepare(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, ngx_str_t *rotated_from)
{
    int                             n;
    u_char                          md[PAT_DIGEST_LEN];
    ngx_http_auth_pat_main_conf_t  *pmcf;

    pmcf = ngx_http_get_module_main_conf(r, ngx_http_auth_pat_module);

    n = ngx_http_auth_pat_token_generate((char *) pmcf->prefix.data,
                                         pmcf->prefix.len,
                                         (char *) api->token,
                                         sizeof(api->token));
    if (n < 0 || ngx_http_auth_pat_uuid_v4((char *) api->new_id) != 0) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "auth_pat: RAND_bytes() failed");
        return NGX_ERROR;
    }

    api->token_len = n;

    ngx_http_auth_pat_hmac_key_digest(&pmcf->hmac, api->token, api->token_len,
                                      md);
    ngx_http_auth_pat_hex_encode(md, PAT_DIGEST_LEN, (char *) api->hex);

    api->issue.id.data = api->new_id;
    api->issue.id.len = PAT_UUID_LEN;
    api->issue.prefix.data = api->token;
    api->issue.prefix.len = pmcf->prefix.len + 4;
    api->issue.hex.data = api->hex;
    api->issue.hex.len = PAT_DIGEST_HEX_LEN;
    api->issue.rotated_from = rotated_from;
    api->issue.created = api->now;

    return ngx_http_auth_pat_store_record(r->pool, &api->issue, &api->record);
}


static void
ngx_http_auth_pat_api_issue_withdrawn(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "auth_pat: token %V of user \"%V\" was revoked while it "
                  "was issued", &api->issue.id, &api->user);

    if (api->issue.rotated_from) {
        ngx_http_auth_pat_api_audit_rotation(r, api, "rotate",
                                             "the new token was revoked "
                                             "meanwhile, or is gone");
    }

    api->issued = 0;

    ngx_http_auth_pat_finalize_error(r, NGX_HTTP_CONFLICT, "conflict",
                                     "the new token was revoked meanwhile");
}


/* the new token's record, in api->old since the confirmation */

static void
ngx_http_auth_pat_api_issue_answer(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    if (api->issue.rotated_from) {
        ngx_http_auth_pat_api_audit_rotation(r, api, "rotate", NULL);
    }

    ngx_http_auth_pat_api_send_token(r, api, NGX_HTTP_CREATED, api->old, 1);
}


static void
ngx_http_auth_pat_api_issue_confirmed(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    json_t                           *rec;
    ngx_http_auth_pat_audit_event_t   ev = { 0 };

    rec = (reply->type == REDIS_REPLY_STRING)
          ? ngx_http_auth_pat_parse_record((u_char *) reply->str, reply->len)
          : NULL;

    if (rec != NULL && ngx_http_auth_pat_json_ms(rec, "r") == 0) {
        /* the old token's record is done with */
        if (api->old) {
            json_decref(api->old);
        }

        api->old = rec;

        if (api->issue.rotated_from == NULL) {
            ev.event = "create";
            ev.token = &api->issue.id;
            ev.prefix = &api->issue.prefix;
            ngx_http_auth_pat_api_audit(r, api, &ev);

            /* a create is not waited for: lost, it is only unknown */
            ngx_http_auth_pat_api_issue_answer(r, api, reply);
            return;
        }

        ngx_http_auth_pat_api_replicate(r, api,
                                        ngx_http_auth_pat_api_issue_answer);
        return;
    }

    if (rec != NULL) {
        json_decref(rec);
    }

    /* revoked meanwhile (or gone): the record just written goes too */
    ngx_http_auth_pat_api_withdraw(r, api, api->hex,
                                   ngx_http_auth_pat_api_issue_withdrawn);
}


/* was the new token revoked before its record was written? */

static void
ngx_http_auth_pat_api_issue_activated(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    ngx_http_auth_pat_store_answered_on(&api->route_new);

    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_get(api->store, r->pool, &api->user,
                                    &api->issue.id,
                                    ngx_http_auth_pat_api_replied, api),
        ngx_http_auth_pat_api_issue_confirmed,
        "issue: read the metadata back");
}


static void
ngx_http_auth_pat_api_issue_activate(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_activate(api->store, r->pool, &api->user,
                                         &api->issue,
                                         ngx_http_auth_pat_api_replied, api),
        ngx_http_auth_pat_api_issue_activated,
        "issue: write the validation record");
}


/* ------------------------------------------------------------- create */


static void
ngx_http_auth_pat_api_create_added(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    if (reply->type != REDIS_REPLY_INTEGER) {
        ngx_http_auth_pat_api_garbled(r, api, "reply to create");
        return;
    }

    if (reply->integer == 0) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_UNPROCESSABLE_ENTITY,
                                         "validation_error",
                                         "too many active tokens: revoke one "
                                         "first");
        return;
    }

    api->issued = 1;

    ngx_http_auth_pat_api_issue_activate(r, api, reply);
}


void
ngx_http_auth_pat_api_create(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    ngx_http_auth_pat_loc_conf_t  *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);

    if (ngx_http_auth_pat_api_issue_prepare(r, api, NULL) != NGX_OK) {
        ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_create(api->store, r->pool, &api->user,
                                       &api->issue, &api->record,
                                       plcf->max_tokens,
                                       ngx_http_auth_pat_api_replied, api),
        ngx_http_auth_pat_api_create_added,
        "create: add the metadata");
}


/* ------------------------------------------------------------- revoke */


static void
ngx_http_auth_pat_api_revoke_done(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    ngx_http_auth_pat_api_send_token(r, api, NGX_HTTP_OK, api->old, 0);
}


static void
ngx_http_auth_pat_api_revoke_settled(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    ngx_http_auth_pat_api_replicate(r, api, ngx_http_auth_pat_api_revoke_done);
}


static void
ngx_http_auth_pat_api_revoke_marked(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    json_t                           *rec;
    redisReply                       *changed, *marked;
    ngx_http_auth_pat_audit_event_t   ev = { 0 };

    if (reply->type == REDIS_REPLY_NIL) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such token");
        return;
    }

    rec = NULL;
    changed = NULL;

    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2) {
        changed = reply->element[0];
        marked = reply->element[1];

        if (changed->type == REDIS_REPLY_INTEGER
            && marked->type == REDIS_REPLY_STRING)
        {
            rec = ngx_http_auth_pat_parse_record((u_char *) marked->str,
                                                 marked->len);
        }
    }

    if (rec == NULL) {
        ngx_http_auth_pat_api_garbled(r, api, "metadata record");
        return;
    }

    /* the record as marked is the answer */
    json_decref(api->old);
    api->old = rec;

    /*
     * revoked by this request, not before it (a repeated DELETE answers
     * the same, but revokes nothing): the script says which
     */
    if (changed->integer == 1) {
        ev.event = "revoke";
        ev.token = &api->id;
        ev.prefix = ngx_http_auth_pat_api_prefix_of(r, rec);
        ngx_http_auth_pat_api_audit(r, api, &ev);
    }

    /* an activation may have landed since the first withdrawal */
    ngx_http_auth_pat_api_withdraw(r, api, api->old_hex,
                                   ngx_http_auth_pat_api_revoke_settled);
}


static void
ngx_http_auth_pat_api_revoke_withdrawn(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_revoke(api->store, r->pool, &api->user,
                                       &api->id, api->now,
                                       ngx_http_auth_pat_api_replied, api),
        ngx_http_auth_pat_api_revoke_marked,
        "revoke: mark the metadata");
}


static void
ngx_http_auth_pat_api_revoke_got(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    if (ngx_http_auth_pat_api_old_record(r, api, reply) != NGX_OK) {
        return;
    }

    /* the validation record goes before the metadata says revoked */
    ngx_http_auth_pat_api_withdraw(r, api, api->old_hex,
                                   ngx_http_auth_pat_api_revoke_withdrawn);
}


void
ngx_http_auth_pat_api_revoke(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    ngx_http_auth_pat_api_read_named(r, api, ngx_http_auth_pat_api_revoke_got,
                                     "revoke: read the metadata");
}


/* ---------------------------------------------------------------- get */


static void
ngx_http_auth_pat_api_get_got(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    if (ngx_http_auth_pat_api_old_record(r, api, reply) != NGX_OK) {
        return;
    }

    ngx_http_auth_pat_api_send_token(r, api, NGX_HTTP_OK, api->old, 0);
}


void
ngx_http_auth_pat_api_get(ngx_http_request_t *r, ngx_http_auth_pat_api_t *api)
{
    ngx_http_auth_pat_api_read_named(r, api, ngx_http_auth_pat_api_get_got,
                                     "get: read the metadata");
}


/* ------------------------------------------------------------- rotate */


static void
ngx_http_auth_pat_api_rotate_swapped(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer != 1) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_CONFLICT, "conflict",
                                         "the token was revoked or rotated "
                                         "meanwhile");
        return;
    }

    /* audited once the new token is confirmed, or once it is undone */
    api->old_prefix = ngx_http_auth_pat_api_prefix_of(r, api->old);
    api->issued = 1;

    /* the old token is marked: an activation may have landed meanwhile */
    ngx_http_auth_pat_api_withdraw(r, api, api->old_hex,
                                   ngx_http_auth_pat_api_issue_activate);
}


static void
ngx_http_auth_pat_api_rotate_withdrawn(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_rotate(api->store, r->pool, &api->user,
                                       &api->id, api->now, &api->issue,
                                       &api->record,
                                       ngx_http_auth_pat_api_replied, api),
        ngx_http_auth_pat_api_rotate_swapped,
        "rotate: revoke the old, add the new");
}


static void
ngx_http_auth_pat_api_rotate_claimed(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        ngx_http_auth_pat_api_garbled(r, api, "reply to rotate");
        return;
    }

    switch (reply->element[0]->integer) {

    case 0:
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_NOT_FOUND, "not_found",
                                         "no such token");
        return;

    case 1:
        ngx_http_auth_pat_api_withdraw(r, api, api->old_hex,
                                       ngx_http_auth_pat_api_rotate_withdrawn);
        return;

    default:
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_CONFLICT, "conflict",
                                         "the token is revoked, expired or "
                                         "being rotated");
        return;
    }
}


static void
ngx_http_auth_pat_api_rotate_got(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    json_t   *name;
    int64_t   c, e, lifetime, dflt, limit;

    if (ngx_http_auth_pat_api_old_record(r, api, reply) != NGX_OK) {
        return;
    }

    e = ngx_http_auth_pat_json_ms(api->old, "e");

    if (ngx_http_auth_pat_json_ms(api->old, "r")) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_CONFLICT, "conflict",
                                         "the token is revoked");
        return;
    }

    if (e && e <= api->now) {
        ngx_http_auth_pat_finalize_error(r, NGX_HTTP_CONFLICT, "conflict",
                                         "the token is expired");
        return;
    }

    /* the same lifetime length by default; no expiry stays no expiry */
    c = ngx_http_auth_pat_json_ms(api->old, "c");
    lifetime = (e && e > c) ? e - c : 0;
    dflt = lifetime ? api->now + lifetime : 0;

    /*
     * A bearer caller rotating another token issues nothing that outlives
     * its own; rotating its own token, nothing longer-lived than that
     * token was.
     */
    limit = 0;

    if (api->bearer) {
        limit = api->own ? dflt : api->caller->expires;
    }

    if (ngx_http_auth_pat_api_expires(r, api, dflt, limit) != NGX_OK) {
        return;
    }

    name = json_object_get(api->old, "name");

    if (!json_is_string(name)) {
        ngx_http_auth_pat_api_garbled(r, api, "metadata record");
        return;
    }

    /* it points into api->old, which lives as long as the request */
    api->issue.name.data = (u_char *) json_string_value(name);
    api->issue.name.len = json_string_length(name);

    /* the scopes stay, or narrow to a subset */
    if (ngx_http_auth_pat_api_scopes(r, api, 1) != NGX_OK) {
        return;
    }

    if (ngx_http_auth_pat_api_issue_prepare(r, api, &api->id) != NGX_OK) {
        ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_claim(api->store, r->pool, &api->user,
                                      &api->id, api->now,
                                      ngx_http_auth_pat_api_replied, api),
        ngx_http_auth_pat_api_rotate_claimed,
        "rotate: claim the old token");
}


void
ngx_http_auth_pat_api_rotate(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api)
{
    ngx_http_auth_pat_api_read_named(r, api, ngx_http_auth_pat_api_rotate_got,
                                     "rotate: read the metadata");
}


/* --------------------------------------------------------------- list */


static int
ngx_http_auth_pat_list_cmp(const void *one, const void *two)
{
    const ngx_http_auth_pat_list_entry_t  *a = one;
    const ngx_http_auth_pat_list_entry_t  *b = two;

    int      rc;
    size_t   i, n;
    u_char   ca, cb;

    /* tokens without the key (no expiry, never used) come last */
    if (a->has_key != b->has_key) {
        return a->has_key ? -1 : 1;
    }

    rc = 0;

    if (a->by_name) {
        n = ngx_min(a->name_len, b->name_len);

        for (i = 0; i < n && rc == 0; i++) {
            ca = ngx_tolower(a->name[i]);
            cb = ngx_tolower(b->name[i]);
            rc = (ca > cb) - (ca < cb);
        }

        if (rc == 0) {
            rc = (a->name_len > b->name_len) - (a->name_len < b->name_len);
        }

    } else if (a->has_key) {
        rc = (a->key > b->key) - (a->key < b->key);
    }

    if (rc) {
        return a->desc ? -rc : rc;
    }

    /* ties: newest first, then by id, so pages never overlap */
    if (a->created != b->created) {
        return a->created > b->created ? -1 : 1;
    }

    rc = ngx_memn2cmp(a->id, b->id, a->id_len, b->id_len);

    /* by createdAt, as Redis orders a sorted set: by id too, reversed */
    return (a->by_created && a->desc) ? -rc : rc;
}


/*
 * The answer: the page's records, from element first of reply (NULL:
 * none), in order; one gone meanwhile is skipped.
 */

static void
ngx_http_auth_pat_api_list_answer(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply, size_t first)
{
    size_t       i;
    json_t      *items, *rec, *t;
    redisReply  *e;

    items = json_array();
    if (items == NULL) {
        ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    for (i = first; reply && i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type == REDIS_REPLY_NIL) {
            continue;
        }

        rec = (e->type == REDIS_REPLY_STRING)
              ? ngx_http_auth_pat_parse_record((u_char *) e->str, e->len)
              : NULL;
        if (rec == NULL) {
            json_decref(items);
            ngx_http_auth_pat_api_garbled(r, api, "metadata record");
            return;
        }

        t = ngx_http_auth_pat_token_object(rec, api->now);
        json_decref(rec);

        if (t == NULL || json_array_append_new(items, t) != 0) {
            json_decref(items);
            ngx_http_auth_pat_api_fail(r, api,
                                       NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    ngx_http_auth_pat_finalize_json(r, NGX_HTTP_OK,
        json_pack("{s:o, s:I, s:{s:{s:I, s:I, s:I}}}",
                  "items", items,
                  "totalCount", (json_int_t) api->total,
                  "facets", "status",
                  "active",
                  (json_int_t) api->facets[NGX_HTTP_AUTH_PAT_ACTIVE],
                  "expired",
                  (json_int_t) api->facets[NGX_HTTP_AUTH_PAT_EXPIRED],
                  "revoked",
                  (json_int_t) api->facets[NGX_HTTP_AUTH_PAT_REVOKED]));
}


static void
ngx_http_auth_pat_api_list_paged(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    if (reply && reply->type != REDIS_REPLY_ARRAY) {
        ngx_http_auth_pat_api_garbled(r, api, "reply to a list page");
        return;
    }

    ngx_http_auth_pat_api_list_answer(r, api, reply, 0);
}


/* {total, active, expired, revoked, record...}: the page by createdAt */

static void
ngx_http_auth_pat_api_list_sorted(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    ngx_uint_t  i;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 4
        || reply->elements - 4 > api->query.limit)
    {
        ngx_http_auth_pat_api_garbled(r, api, "reply to a list page");
        return;
    }

    for (i = 0; i < 4; i++) {
        if (reply->element[i]->type != REDIS_REPLY_INTEGER
            || reply->element[i]->integer < 0)
        {
            ngx_http_auth_pat_api_garbled(r, api, "reply to a list page");
            return;
        }
    }

    api->total = reply->element[0]->integer;
    api->facets[NGX_HTTP_AUTH_PAT_ACTIVE] = reply->element[1]->integer;
    api->facets[NGX_HTTP_AUTH_PAT_EXPIRED] = reply->element[2]->integer;
    api->facets[NGX_HTTP_AUTH_PAT_REVOKED] = reply->element[3]->integer;

    ngx_http_auth_pat_api_list_answer(r, api, reply, 4);
}


/* an index entry that passes the filter, counted in the facets */

static ngx_uint_t
ngx_http_auth_pat_api_list_entry(ngx_http_auth_pat_api_t *api,
    redisReply *id, redisReply *ix, ngx_http_auth_pat_list_entry_t *e)
{
    int64_t                          t[4];
    ngx_str_t                        name, scopes;
    ngx_http_auth_pat_status_e       status;
    ngx_http_auth_pat_list_query_t  *q;

    q = &api->query;

    if (id->type != REDIS_REPLY_STRING || ix->type != REDIS_REPLY_STRING
        || ngx_http_auth_pat_parse_index_entry((u_char *) ix->str, ix->len,
                                               t, &name, &scopes)
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, api->request->connection->log, 0,
                      "auth_pat: bad list index entry of user \"%V\"",
                      &api->user);
        return 0;
    }

    /* t[]: created, expires, last used, revoked */
    if (t[3]) {
        status = NGX_HTTP_AUTH_PAT_REVOKED;

    } else if (t[1] && t[1] <= api->now) {
        status = NGX_HTTP_AUTH_PAT_EXPIRED;

    } else {
        status = NGX_HTTP_AUTH_PAT_ACTIVE;
    }

    api->facets[status]++;

    if (q->status != NGX_HTTP_AUTH_PAT_ANY && q->status != status) {
        return 0;
    }

    if (q->scope.len
        && !ngx_http_auth_pat_scope_in(&scopes, q->scope.data, q->scope.len))
    {
        return 0;
    }

    if (q->search.len
        && ngx_strlcasestrn(name.data, name.data + name.len, q->search.data,
                            q->search.len - 1)
           == NULL)
    {
        return 0;
    }

    e->id = (u_char *) id->str;
    e->id_len = id->len;
    e->name = name.data;
    e->name_len = name.len;
    e->created = t[0];
    e->by_name = (q->sort_by == NGX_HTTP_AUTH_PAT_SORT_NAME);
    e->by_created = (q->sort_by == NGX_HTTP_AUTH_PAT_SORT_CREATED);
    e->desc = q->desc;

    switch (q->sort_by) {

    case NGX_HTTP_AUTH_PAT_SORT_EXPIRES:
        e->key = t[1];
        break;

    case NGX_HTTP_AUTH_PAT_SORT_LAST_USED:
        e->key = t[2];
        break;

    default:
        e->key = t[0];
    }

    e->has_key = (e->key != 0 || e->by_name);

    return 1;
}


/*
 * The whole index of the caller's tokens: facets over all of them, then
 * the filter, the order and the page.  The page's records follow.
 */

static void
ngx_http_auth_pat_api_list_indexed(ngx_http_request_t *r,
    ngx_http_auth_pat_api_t *api, redisReply *reply)
{
    size_t                           i, n, m, last;
    ngx_str_t                       *ids;
    ngx_http_auth_pat_list_query_t  *q;
    ngx_http_auth_pat_list_entry_t  *entries, *e;

    q = &api->query;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2) {
        ngx_http_auth_pat_api_garbled(r, api, "list index");
        return;
    }

    n = reply->elements / 2;

    entries = ngx_palloc(r->pool,
                         (n ? n : 1) * sizeof(ngx_http_auth_pat_list_entry_t));
    if (entries == NULL) {
        ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    m = 0;

    for (i = 0; i < n; i++) {
        m += ngx_http_auth_pat_api_list_entry(api, reply->element[2 * i],
                                              reply->element[2 * i + 1],
                                              &entries[m]);
    }

    ngx_qsort(entries, m, sizeof(ngx_http_auth_pat_list_entry_t),
              ngx_http_auth_pat_list_cmp);

    api->total = m;

    last = ngx_min(m, q->offset + q->limit);
    n = (q->offset < last) ? last - q->offset : 0;

    if (n == 0) {
        ngx_http_auth_pat_api_list_paged(r, api, NULL);
        return;
    }

    /* the reply is freed after this handler: copy the page's ids */
    ids = ngx_palloc(r->pool, n * sizeof(ngx_str_t));
    if (ids == NULL) {
        ngx_http_auth_pat_api_fail(r, api, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    for (i = 0; i < n; i++) {
        e = &entries[q->offset + i];

        ids[i].len = e->id_len;
        ids[i].data = ngx_pnalloc(r->pool, e->id_len);
        if (ids[i].data == NULL) {
            ngx_http_auth_pat_api_fail(r, api,
                                       NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_memcpy(ids[i].data, e->id, e->id_len);
    }

    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_get_many(api->store, r->pool, &api->user,
                                         ids, n,
                                         ngx_http_auth_pat_api_replied, api),
        ngx_http_auth_pat_api_list_paged,
        "list: read the page");
}


/*
 * By createdAt, unfiltered or by status (the default list): Redis reads
 * the page alone, in O(log n + page).  A search, a scope or another
 * order reads the whole index (at most auth_pat_max_tokens active and
 * NGX_HTTP_AUTH_PAT_INACTIVE_MAX other tokens) and sorts in nginx.
 */

void
ngx_http_auth_pat_api_list(ngx_http_request_t *r, ngx_http_auth_pat_api_t *api)
{
    ngx_http_auth_pat_list_query_t  *q;

    q = &api->query;

    if (q->sort_by == NGX_HTTP_AUTH_PAT_SORT_CREATED
        && q->search.len == 0 && q->scope.len == 0)
    {
        ngx_http_auth_pat_api_wait(r, api,
            ngx_http_auth_pat_store_list_page(api->store, r->pool, &api->user,
                                              api->now, q->status, q->offset,
                                              q->limit, q->desc,
                                              ngx_http_auth_pat_api_replied,
                                              api),
            ngx_http_auth_pat_api_list_sorted,
            "list: read the page by createdAt");
        return;
    }

    ngx_http_auth_pat_api_wait(r, api,
        ngx_http_auth_pat_store_list_index(api->store, r->pool, &api->user,
                                           api->now,
                                           ngx_http_auth_pat_api_replied,
                                           api),
        ngx_http_auth_pat_api_list_indexed,
        "list: read the index");
}
