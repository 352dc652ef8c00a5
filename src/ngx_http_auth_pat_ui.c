
/*
 * auth_pat_ui [api=URI]: the self-service token page.
 *
 * Three resources below the location's prefix, embedded at build time
 * (src/ui/): the page at <location>/, app.js and app.css.  The page names
 * the API it calls in one attribute of its <html> element, data-api,
 * whose value is replaced once, when the configuration is read, by the
 * URI of api= (default /v1/personal-access-tokens).  Nothing is asked of
 * Redis here: the page's script calls the API, with whatever identity the
 * location's nginx auth gives the browser.
 *
 * Every answer carries a strict Content-Security-Policy (no inline code,
 * nothing from elsewhere, no framing), nosniff and no-referrer; the page
 * is not stored by caches.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_auth_pat_module.h"
#include "ngx_http_auth_pat_ui.h"
#include "ngx_http_auth_pat_embedded.h"
#include "ngx_http_auth_pat_json.h"


#define NGX_HTTP_AUTH_PAT_UI_API_DEFAULT  "/v1/personal-access-tokens"
#define NGX_HTTP_AUTH_PAT_UI_API_ATTR     "data-api=\""
#define NGX_HTTP_AUTH_PAT_UI_API_MAX      1024


typedef struct {
    ngx_str_t        name;
    ngx_str_t        type;
    ngx_str_t        cache_control;
} ngx_http_auth_pat_ui_file_t;


static ngx_http_auth_pat_ui_file_t  ngx_http_auth_pat_ui_files[] = {
    { ngx_string("/"), ngx_string("text/html; charset=utf-8"),
      ngx_string("no-store") },
    { ngx_string("/app.js"), ngx_string("text/javascript; charset=utf-8"),
      ngx_string("no-cache") },
    { ngx_string("/app.css"), ngx_string("text/css; charset=utf-8"),
      ngx_string("no-cache") }
};


static ngx_str_t  ngx_http_auth_pat_ui_csp = ngx_string(
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'");


/* the resource below the location: 0, 1, 2; -1 none; -2 the bare prefix */

static ngx_int_t
ngx_http_auth_pat_ui_file(ngx_http_request_t *r, ngx_str_t *location)
{
    size_t      len;
    u_char     *p;
    ngx_uint_t  i;

    if (r->uri.len < location->len
        || ngx_strncmp(r->uri.data, location->data, location->len) != 0)
    {
        return -1;
    }

    p = r->uri.data + location->len;
    len = r->uri.len - location->len;

    /* a prefix written with a trailing slash */
    if (location->len && location->data[location->len - 1] == '/') {
        p--;
        len++;
    }

    if (len == 0) {
        return -2;
    }

    if (len == sizeof("/index.html") - 1
        && ngx_strncmp(p, "/index.html", len) == 0)
    {
        return 0;
    }

    for (i = 0; i < sizeof(ngx_http_auth_pat_ui_files)
                    / sizeof(ngx_http_auth_pat_ui_file_t); i++)
    {
        if (len == ngx_http_auth_pat_ui_files[i].name.len
            && ngx_strncmp(p, ngx_http_auth_pat_ui_files[i].name.data, len)
               == 0)
        {
            return i;
        }
    }

    return -1;
}


/* the JSON module's header helper: NGX_OK or NGX_ERROR */

static ngx_int_t
ngx_http_auth_pat_ui_header(ngx_http_request_t *r, const char *key,
    ngx_str_t *value)
{
    return ngx_http_auth_pat_push_header(r, key, value) ? NGX_OK : NGX_ERROR;
}


/* <location> alone: the page's relative links need the slash */

static ngx_int_t
ngx_http_auth_pat_ui_redirect(ngx_http_request_t *r)
{
    u_char           *p;
    size_t            len, escape;
    ngx_table_elt_t  *h;

    escape = 2 * ngx_escape_uri(NULL, r->uri.data, r->uri.len,
                                NGX_ESCAPE_URI);

    len = r->uri.len + escape + 1 + (r->args.len ? 1 + r->args.len : 0);

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Location");
    h->value.data = p;

    if (escape) {
        p = (u_char *) ngx_escape_uri(p, r->uri.data, r->uri.len,
                                      NGX_ESCAPE_URI);

    } else {
        p = ngx_cpymem(p, r->uri.data, r->uri.len);
    }

    *p++ = '/';

    if (r->args.len) {
        *p++ = '?';
        p = ngx_cpymem(p, r->args.data, r->args.len);
    }

    h->value.len = p - h->value.data;

    ngx_http_clear_location(r);
    r->headers_out.location = h;

    return NGX_HTTP_MOVED_PERMANENTLY;
}


static ngx_int_t
ngx_http_auth_pat_ui_handler(ngx_http_request_t *r)
{
    ngx_int_t                           rc, i;
    ngx_buf_t                          *b;
    ngx_str_t                           allow = ngx_string("GET, HEAD");
    ngx_str_t                           nosniff = ngx_string("nosniff");
    ngx_str_t                           no_referrer = ngx_string("no-referrer");
    ngx_chain_t                         out;
    ngx_http_auth_pat_ui_conf_t        *ui;
    ngx_http_auth_pat_ui_file_t        *f;
    ngx_http_auth_pat_loc_conf_t       *plcf;

    plcf = ngx_http_get_module_loc_conf(r, ngx_http_auth_pat_module);
    ui = plcf->ui;

    if (ui == NULL) {
        return NGX_DECLINED;
    }

    /* the policy holds for every answer, error pages included */
    if (ngx_http_auth_pat_ui_header(r, "Content-Security-Policy",
                                    &ngx_http_auth_pat_ui_csp)
           != NGX_OK
        || ngx_http_auth_pat_ui_header(r, "X-Content-Type-Options", &nosniff)
           != NGX_OK
        || ngx_http_auth_pat_ui_header(r, "Referrer-Policy", &no_referrer)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        if (ngx_http_auth_pat_ui_header(r, "Allow", &allow) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    i = ngx_http_auth_pat_ui_file(r, &ui->location);

    if (i == -2) {
        return ngx_http_auth_pat_ui_redirect(r);
    }

    if (i < 0) {
        return NGX_HTTP_NOT_FOUND;
    }

    f = &ngx_http_auth_pat_ui_files[i];

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "auth_pat ui \"%V\"", &f->name);

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (i) {

    case 0:
        b->pos = ui->page.data;
        b->last = ui->page.data + ui->page.len;
        break;

    case 1:
        b->pos = (u_char *) ngx_http_auth_pat_ui_js;
        b->last = b->pos + ngx_http_auth_pat_ui_js_len;
        break;

    default:
        b->pos = (u_char *) ngx_http_auth_pat_ui_css;
        b->last = b->pos + ngx_http_auth_pat_ui_css_len;
    }

    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    if (ngx_http_auth_pat_ui_header(r, "Cache-Control", &f->cache_control)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    r->headers_out.content_type = f->type;
    r->headers_out.content_type_len = f->type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * api=: an absolute path of RFC 3986's path characters, which the page's
 * script appends "/{id}/rotate" and a query to: no query or fragment of
 * its own, no "." or ".." segment, no "//" (another host to a browser),
 * no backslash (which browsers read as "/"), not "/" alone.
 */

static ngx_int_t
ngx_http_auth_pat_ui_api_valid(ngx_str_t *api)
{
    u_char  c, *p, *last, *seg;
    size_t  n;

    if (api->len < 2 || api->len > NGX_HTTP_AUTH_PAT_UI_API_MAX
        || api->data[0] != '/')
    {
        return NGX_ERROR;
    }

    last = api->data + api->len;
    seg = api->data + 1;

    for (p = api->data + 1; p <= last; p++) {

        if (p == last || *p == '/') {
            n = p - seg;

            if (n == 0 && p != last) {
                return NGX_ERROR;                      /* "//" */
            }

            if ((n == 1 && seg[0] == '.')
                || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            {
                return NGX_ERROR;
            }

            seg = p + 1;
            continue;
        }

        c = *p;

        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
            || (c >= '0' && c <= '9')
            || ngx_strlchr((u_char *) "-._~!$&'()*+,;=:@%",
                           (u_char *) "-._~!$&'()*+,;=:@%" + 18, c))
        {
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the page with data-api="URI", the URI escaped for an HTML attribute */

static ngx_int_t
ngx_http_auth_pat_ui_page(ngx_conf_t *cf, ngx_str_t *api, ngx_str_t *page)
{
    u_char        *p, *start, *end, *last;
    size_t         len, esc;
    ngx_uint_t     i;
    const u_char  *html;

    html = ngx_http_auth_pat_ui_html;
    last = (u_char *) html + ngx_http_auth_pat_ui_html_len;

    start = ngx_strlcasestrn((u_char *) html, last,
                             (u_char *) NGX_HTTP_AUTH_PAT_UI_API_ATTR,
                             sizeof(NGX_HTTP_AUTH_PAT_UI_API_ATTR) - 2);
    if (start == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the embedded page has no data-api attribute");
        return NGX_ERROR;
    }

    start += sizeof(NGX_HTTP_AUTH_PAT_UI_API_ATTR) - 1;

    end = ngx_strlchr(start, last, '"');
    if (end == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "the embedded page's data-api attribute is not "
                           "closed");
        return NGX_ERROR;
    }

    esc = 0;

    for (i = 0; i < api->len; i++) {
        switch (api->data[i]) {
        case '&':
            esc += sizeof("&amp;") - 2;
            break;
        case '<':
        case '>':
            esc += sizeof("&lt;") - 2;
            break;
        case '"':
        case '\'':
            esc += sizeof("&#34;") - 2;
            break;
        }
    }

    len = (start - html) + api->len + esc + (last - end);

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    page->data = p;
    page->len = len;

    p = ngx_cpymem(p, html, start - html);

    for (i = 0; i < api->len; i++) {
        switch (api->data[i]) {
        case '&':
            p = ngx_cpymem(p, "&amp;", sizeof("&amp;") - 1);
            break;
        case '<':
            p = ngx_cpymem(p, "&lt;", sizeof("&lt;") - 1);
            break;
        case '>':
            p = ngx_cpymem(p, "&gt;", sizeof("&gt;") - 1);
            break;
        case '"':
            p = ngx_cpymem(p, "&#34;", sizeof("&#34;") - 1);
            break;
        case '\'':
            p = ngx_cpymem(p, "&#39;", sizeof("&#39;") - 1);
            break;
        default:
            *p++ = api->data[i];
        }
    }

    ngx_memcpy(p, end, last - end);

    return NGX_OK;
}


char *
ngx_http_auth_pat_ui_conf(ngx_conf_t *cf, ngx_http_auth_pat_ui_conf_t **uip)
{
    ngx_str_t                    *value, api;
    ngx_uint_t                    i;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_auth_pat_ui_conf_t  *ui;

    if (*uip != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;
    ngx_str_set(&api, NGX_HTTP_AUTH_PAT_UI_API_DEFAULT);

    for (i = 1; i < cf->args->nelts; i++) {

        if (value[i].len >= 4 && ngx_strncmp(value[i].data, "api=", 4) == 0) {
            api.data = value[i].data + 4;
            api.len = value[i].len - 4;

            if (ngx_http_auth_pat_ui_api_valid(&api) != NGX_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid \"%V\": the API's location is "
                                   "a path on this server, such as "
                                   "\"/v1/personal-access-tokens\", with "
                                   "no query, fragment, \".\" or \"..\" "
                                   "segment, \"//\" or \"\\\" (at most %d "
                                   "bytes)", &value[i],
                                   NGX_HTTP_AUTH_PAT_UI_API_MAX);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    ui = ngx_pcalloc(cf->pool, sizeof(ngx_http_auth_pat_ui_conf_t));
    if (ui == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_auth_pat_ui_page(cf, &api, &ui->page) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->exact_match || clcf->named || clcf->noname
#if (NGX_PCRE)
        || clcf->regex
#endif
       )
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"auth_pat_ui\" needs a prefix location, which "
                           "also serves its app.js and app.css");
        return NGX_CONF_ERROR;
    }

    if (clcf->handler != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"auth_pat_ui\" cannot share a location with "
                           "another content handler (auth_pat_api, "
                           "proxy_pass, ...)");
        return NGX_CONF_ERROR;
    }

    ui->location = clcf->name;
    clcf->handler = ngx_http_auth_pat_ui_handler;

    *uip = ui;

    return NGX_CONF_OK;
}
