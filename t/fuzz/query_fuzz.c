
/*
 * libFuzzer target: the list query string, the introspection form and
 * media types.  The input is the query string (r->args), the form body
 * and the Content-Type value, each in a block of its exact size.
 *
 * ngx_http_auth_pat_parse_query(): on success the page size is 1..100,
 * the offset a multiple of it, the search term valid UTF-8 of at most
 * 200 characters without an upper-case ASCII letter, the scope a
 * scope-token, both decoded into buf; the query, written again with every
 * byte of the search term and scope percent-encoded, parses to the same
 * query; the args are not written to.
 *
 * ngx_http_auth_pat_parse_form_field("token"): the same answer as a
 * reference decoder; a value, encoded again, decodes to itself.
 *
 * ngx_http_auth_pat_parse_media_type(): what is accepted is the type, then
 * nothing but an optional "; charset=utf-8" (or utf8, quoted or not);
 * well-formed variants built from the input are accepted.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_parse.h"

#include "fuzz_common.h"


static const char  *fuzz_status[] = { NULL, "active", "expired", "revoked" };
static const char  *fuzz_sort[] = {
    "createdAt", "name", "expiresAt", "lastUsedAt"
};


static void
query_same(ngx_http_auth_pat_list_query_t *a,
    ngx_http_auth_pat_list_query_t *b)
{
    check(a->status == b->status);
    check(a->sort_by == b->sort_by);
    check(a->desc == b->desc);
    check(a->offset == b->offset);
    check(a->limit == b->limit);
    check(a->search.len == b->search.len);
    check(a->search.len == 0
          || memcmp(a->search.data, b->search.data, a->search.len) == 0);
    check(a->scope.len == b->scope.len);
    check(a->scope.len == 0
          || memcmp(a->scope.data, b->scope.data, a->scope.len) == 0);
}


/* the query written again: every parameter, bytes percent-encoded */

static size_t
query_write(ngx_http_auth_pat_list_query_t *q, char *out, unsigned style)
{
    char  *p;

    p = out;

    /* snake_case or camelCase, in one order or another */
    p += sprintf(p, style & 1 ? "pageSize=%u&" : "page_size=%u&",
                 (unsigned) q->limit);
    p += sprintf(p, style & 1 ? "pageIndex=%u" : "page_index=%u",
                 (unsigned) (q->offset / q->limit));

    if (q->status != NGX_HTTP_AUTH_PAT_ANY) {
        p += sprintf(p, "&status=%s", fuzz_status[q->status]);
    }

    if (q->search.len) {
        p += sprintf(p, style & 1 ? "&searchTerm=" : "&search_term=");
        p += fuzz_percent_encode(q->search.data, q->search.len, p);
    }

    if (q->scope.len) {
        p += sprintf(p, "&scope=");
        p += fuzz_percent_encode(q->scope.data, q->scope.len, p);
    }

    if ((style & 2) || q->sort_by != NGX_HTTP_AUTH_PAT_SORT_CREATED) {
        p += sprintf(p, style & 1 ? "&sortBy=%s" : "&sort_by=%s",
                     fuzz_sort[q->sort_by]);
    }

    if ((style & 2) || !q->desc) {
        p += sprintf(p, style & 1 ? "&sortDirection=%s" : "&sort_direction=%s",
                     q->desc ? "desc" : "asc");
    }

    return p - out;
}


static void
fuzz_query(const uint8_t *data, size_t size)
{
    u_char                          *args, *buf, *copy, *buf2;
    char                            *again;
    size_t                           n, i;
    long                             chars;
    ngx_str_t                        a;
    const char                      *err;
    ngx_http_auth_pat_list_query_t   q, q2;

    args = fuzz_dup(data, size);
    copy = fuzz_dup(data, size);
    buf = malloc(size);

    a.data = args;
    a.len = size;

    err = ngx_http_auth_pat_parse_query(&a, buf, &q);

    check(size == 0 || memcmp(args, copy, size) == 0);
    check(a.data == args && a.len == size);

    if (err != NULL) {
        goto done;
    }

    check(q.limit >= 1 && q.limit <= NGX_HTTP_AUTH_PAT_PAGE_SIZE_MAX);
    check(q.offset % q.limit == 0);
    check(q.offset / q.limit <= NGX_HTTP_AUTH_PAT_PAGE_INDEX_MAX);
    check(q.status <= NGX_HTTP_AUTH_PAT_REVOKED);
    check(q.sort_by <= NGX_HTTP_AUTH_PAT_SORT_LAST_USED);
    check(q.desc <= 1);

    if (q.search.len) {
        check(fuzz_within(q.search.data, q.search.len, buf, size));
        chars = fuzz_utf8_chars(q.search.data, q.search.len);
        check(chars >= 0 && chars <= NGX_HTTP_AUTH_PAT_SEARCH_MAX);

        for (i = 0; i < q.search.len; i++) {
            check(!(q.search.data[i] >= 'A' && q.search.data[i] <= 'Z'));
        }
    }

    if (q.scope.data) {
        check(fuzz_within(q.scope.data, q.scope.len, buf, size));
        check(fuzz_scope_valid(q.scope.data, q.scope.len));
    }

    /* the search term and the scope, each decoded where it lies, apart */
    if (q.search.len && q.scope.len) {
        check(q.search.data + q.search.len <= q.scope.data
              || q.scope.data + q.scope.len <= q.search.data);
    }

    /* written again, in four styles: the same query */

    again = malloc(256 + 3 * (q.search.len + q.scope.len));
    check(again != NULL);

    for (i = 0; i < 4; i++) {
        n = query_write(&q, again, i);
        a.data = (u_char *) again;
        a.len = n;
        buf2 = malloc(n);

        err = ngx_http_auth_pat_parse_query(&a, buf2, &q2);
        if (err) {
            fprintf(stderr, "again: \"%.*s\": %s\n", (int) n, again, err);
        }

        check(err == NULL);
        query_same(&q, &q2);
        free(buf2);
    }

    free(again);

done:

    free(buf);
    free(copy);
    free(args);
}


/* ------------------------------------------------------------- forms */


static int
hexval(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


/* the reference: '&'-separated fields, name up to the first '=' */

static ngx_int_t
form_reference(const u_char *p, size_t len, const char *name, u_char *out,
    size_t *out_len)
{
    size_t         i, start, end, eq, n, found, k;
    int            hi, lo;
    u_char        *d;

    n = strlen(name);
    found = 0;
    start = 0;

    while (start < len) {
        end = start;
        while (end < len && p[end] != '&') {
            end++;
        }

        for (eq = start; eq < end && p[eq] != '='; eq++) { /* void */ }

        if (eq < end && eq - start == n && memcmp(p + start, name, n) == 0) {
            if (found++) {
                return NGX_ERROR;
            }

            d = out;

            for (i = eq + 1; i < end; i++) {
                if (p[i] == '+') {
                    *d++ = ' ';

                } else if (p[i] != '%') {
                    *d++ = p[i];

                } else {
                    if (end - i < 3) {
                        return NGX_ERROR;
                    }

                    hi = hexval(p[i + 1]);
                    lo = hexval(p[i + 2]);

                    if (hi < 0 || lo < 0) {
                        return NGX_ERROR;
                    }

                    *d++ = (u_char) (hi << 4 | lo);
                    i += 2;
                }
            }

            *out_len = d - out;
        }

        start = end + 1;
    }

    k = found;

    return k ? NGX_OK : NGX_DECLINED;
}


static void
fuzz_form(const uint8_t *data, size_t size)
{
    u_char     *p, *buf, *ref, *enc, *buf2;
    size_t      ref_len, n;
    ngx_int_t   rc, want;
    ngx_str_t   v, v2;

    p = fuzz_dup(data, size);
    buf = malloc(size);
    ref = malloc(size);

    v.data = NULL;
    v.len = 0;
    ref_len = 0;

    rc = ngx_http_auth_pat_parse_form_field(p, size, "token", buf, &v);
    want = form_reference(p, size, "token", ref, &ref_len);

    check(rc == want);

    if (rc == NGX_OK) {
        check(fuzz_within(v.data, v.len, buf, size));
        check(v.len == ref_len);
        check(v.len == 0 || memcmp(v.data, ref, v.len) == 0);

        /* encoded again, among other fields: the same value */
        enc = malloc(64 + 3 * v.len);
        n = sprintf((char *) enc, "token_type_hint=x&token=");
        n += fuzz_percent_encode(v.data, v.len, (char *) enc + n);
        n += sprintf((char *) enc + n, "&tokens=y");
        buf2 = malloc(n);

        check(ngx_http_auth_pat_parse_form_field(enc, n, "token", buf2, &v2)
              == NGX_OK);
        check(v2.len == v.len);
        check(v.len == 0 || memcmp(v2.data, v.data, v.len) == 0);

        free(buf2);
        free(enc);
    }

    free(ref);
    free(buf);
    free(p);
}


/* -------------------------------------------------------- media types */


static int
ows(u_char c)
{
    return c == ' ' || c == '\t';
}


/*
 * What an accepted value must be: the type (any case), OWS, and either
 * the end or ';' OWS "charset=" and utf-8 or utf8 (any case), possibly
 * within quotes, then OWS.
 */

static int
media_plausible(const u_char *p, size_t len, const char *type)
{
    size_t  n, i, end;

    n = strlen(type);

    if (len < n || strncasecmp((const char *) p, type, n) != 0) {
        return 0;
    }

    for (i = n; i < len && ows(p[i]); i++) { /* void */ }

    if (i == len) {
        return 1;
    }

    if (p[i++] != ';') {
        return 0;
    }

    for ( /* void */ ; i < len && ows(p[i]); i++) { /* void */ }

    if (len - i < 8 || strncasecmp((const char *) p + i, "charset=", 8) != 0) {
        return 0;
    }

    i += 8;
    end = len;

    if (i < end && p[i] == '"') {
        i++;
    }

    while (end > i && (ows(p[end - 1]) || p[end - 1] == '"')) {
        end--;
    }

    return (end - i == 5 && strncasecmp((const char *) p + i, "utf-8", 5) == 0)
           || (end - i == 4 && strncasecmp((const char *) p + i, "utf8", 4)
               == 0);
}


/* a well-formed value, its case and spacing from the input */

static size_t
media_build(const uint8_t *data, size_t size, const char *type, char *out)
{
    size_t    i, n;
    unsigned  b;
    char     *p;

    b = 0;
    for (i = 0; i < size && i < 4; i++) {
        b = b << 8 | data[i];
    }

    p = out;
    n = strlen(type);

    for (i = 0; i < n; i++) {
        *p++ = ((b >> (i % 32)) & 1) ? toupper((u_char) type[i]) : type[i];
    }

    p += sprintf(p, "%.*s", (int) (b & 3), "  \t");

    /*
     * no OWS after a quoted charset: nginx drops the spaces that end a
     * header value, and "utf-8\" " is refused
     */
    if (b & 4) {
        p += sprintf(p, ";%.*scharset=%s%s%s%.*s", (int) ((b >> 3) & 1), " ",
                     (b & 16) ? "\"" : "",
                     (b & 32) ? ((b & 64) ? "UTF-8" : "utf-8")
                              : ((b & 64) ? "Utf8" : "utf8"),
                     (b & 16) ? "\"" : "",
                     (int) ((b >> 7) & 1 & !(b & 16)), "\t");
    }

    return p - out;
}


static void
fuzz_media(const uint8_t *data, size_t size)
{
    u_char        *p;
    char           good[128];
    size_t         i, n;
    ngx_uint_t     rc;
    static const char  *types[] = {
        "application/json", "application/x-www-form-urlencoded"
    };

    p = fuzz_dup(data, size);

    for (i = 0; i < 2; i++) {
        rc = ngx_http_auth_pat_parse_media_type(p, size, types[i]);
        check(rc == 0 || rc == 1);

        if (rc) {
            check(media_plausible(p, size, types[i]));
        }

        n = media_build(data, size, types[i], good);
        check(ngx_http_auth_pat_parse_media_type((u_char *) good, n,
                                                 types[i]) == 1);
    }

    free(p);
}


/* every input is a query string, a form and a Content-Type value */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_query(data, size);
    fuzz_form(data, size);
    fuzz_media(data, size);

    return 0;
}
