
/*
 * The audit trail.  An event is one line at "notice":
 *
 *   auth_pat audit: rotate user="alice" token=ID prefix=pat_AbCd
 *       new_token=ID new_prefix=pat_WxYz caller=api_user client=ADDR
 *
 * (user quoted, its '"', '\' and control bytes escaped as \xNN, so that
 * a name cannot forge a line), and, with "auth_pat_audit on", the same
 * fields in an entry of the stream NS{audit} with the time in ms.  The
 * append does not hold up the answer: a failure is counted and logged
 * once a minute per worker.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_module.h"
#include "ngx_http_auth_pat_audit.h"
#include "ngx_http_auth_pat_metrics.h"


#define NGX_HTTP_AUTH_PAT_AUDIT_FIELDS   9
#define NGX_HTTP_AUTH_PAT_AUDIT_LOG_MS   60000


/* per worker */
static ngx_uint_t  ngx_http_auth_pat_audit_failed;
static ngx_msec_t  ngx_http_auth_pat_audit_logged;


char *
ngx_http_auth_pat_audit_conf(ngx_conf_t *cf,
    ngx_http_auth_pat_audit_conf_t **acfp)
{
    ngx_int_t                        n;
    ngx_str_t                       *value;
    ngx_uint_t                       i;
    ngx_http_auth_pat_audit_conf_t  *acf;

    if (*acfp != NULL) {
        return "is duplicate";
    }

    acf = ngx_pcalloc(cf->pool, sizeof(ngx_http_auth_pat_audit_conf_t));
    if (acf == NULL) {
        return NGX_CONF_ERROR;
    }

    *acfp = acf;
    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0 && cf->args->nelts == 2) {
        acf->enabled = 0;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "on") != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", it must be \"on\" or "
                           "\"off\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    acf->enabled = 1;
    acf->maxlen = NGX_HTTP_AUTH_PAT_AUDIT_MAXLEN;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "maxlen=", 7) == 0) {
            n = ngx_atoi(value[i].data + 7, value[i].len - 7);

            if (n < 1 || n > 100000000) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": from 1 to 100000000",
                                   &value[i]);
                return NGX_CONF_ERROR;
            }

            acf->maxlen = (ngx_uint_t) n;
            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* s with '"', '\' and bytes below 0x20 or 0x7f as \xNN */

static ngx_str_t *
ngx_http_auth_pat_audit_quote(ngx_pool_t *pool, ngx_str_t *s)
{
    u_char     *p, c;
    size_t      i, n;
    ngx_str_t  *q;

    n = 0;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];
        n += (c < 0x20 || c == 0x7f || c == '"' || c == '\\') ? 4 : 1;
    }

    q = ngx_palloc(pool, sizeof(ngx_str_t));
    if (q == NULL) {
        return NULL;
    }

    q->data = ngx_pnalloc(pool, n);
    if (q->data == NULL) {
        return NULL;
    }

    p = q->data;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
            p = ngx_sprintf(p, "\\x%02xd", c);

        } else {
            *p++ = c;
        }
    }

    q->len = p - q->data;

    return q;
}


static void
ngx_http_auth_pat_audit_lost(ngx_log_t *log, const char *why)
{
    ngx_http_auth_pat_audit_failed++;
    ngx_http_auth_pat_metric_add(audit_failures);

    if (ngx_http_auth_pat_audit_logged
        && ngx_current_msec - ngx_http_auth_pat_audit_logged
           < NGX_HTTP_AUTH_PAT_AUDIT_LOG_MS)
    {
        return;
    }

    ngx_http_auth_pat_audit_logged = ngx_current_msec ? ngx_current_msec : 1;

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "auth_pat: an audit event was not appended to the "
                  "stream: %s (%ui in this worker so far; logged once a "
                  "minute)", why, ngx_http_auth_pat_audit_failed);
}


static void
ngx_http_auth_pat_audit_appended(void *data, redisReply *reply, ngx_int_t rc)
{
    if (rc != NGX_OK) {
        ngx_http_auth_pat_audit_lost(ngx_cycle->log, "redis did not answer");

    } else if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_auth_pat_audit_lost(ngx_cycle->log, reply->str);
    }
}


/* a field of the stream entry */

static void
ngx_http_auth_pat_audit_field(ngx_str_t *f, ngx_uint_t *n, const char *name,
    u_char *value, size_t len)
{
    if (*n == NGX_HTTP_AUTH_PAT_AUDIT_FIELDS) {
        return;
    }

    f[2 * *n].data = (u_char *) name;
    f[2 * *n].len = ngx_strlen(name);
    f[2 * *n + 1].data = value;
    f[2 * *n + 1].len = len;
    (*n)++;
}


void
ngx_http_auth_pat_audit(ngx_http_request_t *r,
    ngx_http_auth_pat_audit_conf_t *acf, ngx_http_auth_pat_store_conf_t *scf,
    ngx_http_auth_pat_audit_event_t *ev)
{
    u_char      *ms, *end, *rot, rotated[256];
    ngx_str_t   *user, caller, none, f[2 * NGX_HTTP_AUTH_PAT_AUDIT_FIELDS];
    ngx_uint_t   n;

    ngx_str_set(&none, "-");

    if (ngx_strcmp(ev->event, "create") == 0) {
        ngx_http_auth_pat_metric_add(tokens_created);

    } else if (ngx_strcmp(ev->event, "revoke") == 0) {
        ngx_http_auth_pat_metric_add(tokens_revoked);

    } else if (ngx_strcmp(ev->event, "rotate") == 0) {
        ngx_http_auth_pat_metric_add(tokens_rotated);
    }

    if (ev->caller) {
        caller = *ev->caller;

    } else {
        ngx_str_set(&caller, "api_user");
    }

    user = ngx_http_auth_pat_audit_quote(r->pool, ev->user);
    if (user == NULL) {
        user = &none;
    }

    rot = rotated;

    if (ev->new_token) {
        rot = ngx_snprintf(rotated, sizeof(rotated),
                           " new_token=%V new_prefix=%V", ev->new_token,
                           ev->new_prefix ? ev->new_prefix : &none);
    }

    ngx_log_error(NGX_LOG_NOTICE, r->connection->log, 0,
                  "auth_pat audit: %s user=\"%V\" token=%V prefix=%V%*s"
                  "%s%s%s caller=%V client=%V",
                  ev->event, user,
                  ev->token ? ev->token : &none,
                  ev->prefix ? ev->prefix : &none,
                  (size_t) (rot - rotated), rotated,
                  ev->reason ? " reason=\"" : "",
                  ev->reason ? ev->reason : "",
                  ev->reason ? "\"" : "",
                  &caller, &r->connection->addr_text);

    if (acf == NULL || !acf->enabled) {
        return;
    }

    ms = ngx_pnalloc(r->pool, NGX_INT64_LEN);
    if (ms == NULL) {
        ngx_http_auth_pat_audit_lost(r->connection->log, "out of memory");
        return;
    }

    end = ngx_sprintf(ms, "%L", ngx_http_auth_pat_now());

    n = 0;
    ngx_http_auth_pat_audit_field(f, &n, "event", (u_char *) ev->event,
                                  ngx_strlen(ev->event));
    ngx_http_auth_pat_audit_field(f, &n, "user", ev->user->data,
                                  ev->user->len);
    ngx_http_auth_pat_audit_field(f, &n, "caller", caller.data, caller.len);
    ngx_http_auth_pat_audit_field(f, &n, "client",
                                  r->connection->addr_text.data,
                                  r->connection->addr_text.len);
    ngx_http_auth_pat_audit_field(f, &n, "time", ms, end - ms);

    if (ev->token) {
        ngx_http_auth_pat_audit_field(f, &n, "token", ev->token->data,
                                      ev->token->len);
    }

    if (ev->prefix) {
        ngx_http_auth_pat_audit_field(f, &n, "prefix", ev->prefix->data,
                                      ev->prefix->len);
    }

    if (ev->new_token) {
        ngx_http_auth_pat_audit_field(f, &n, "newToken", ev->new_token->data,
                                      ev->new_token->len);
    }

    if (ev->new_prefix) {
        ngx_http_auth_pat_audit_field(f, &n, "newPrefix",
                                      ev->new_prefix->data,
                                      ev->new_prefix->len);
    }

    if (ev->reason) {
        ngx_http_auth_pat_audit_field(f, &n, "reason", (u_char *) ev->reason,
                                      ngx_strlen(ev->reason));
    }

    if (ngx_http_auth_pat_store_audit(scf, r->pool, acf->maxlen, f, n,
                                      ngx_http_auth_pat_audit_appended, NULL)
        == NULL)
    {
        ngx_http_auth_pat_audit_lost(r->connection->log,
                                     "redis is not available");
    }
}
