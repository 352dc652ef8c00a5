
/*
 * libFuzzer target: the create and rotate bodies.  The input is the body:
 * json_loadb() as the module reads it (JSON_ALLOW_NUL), then
 * ngx_http_auth_pat_parse_name(), _parse_expires() (a fixed now, several
 * default and maximum lifetimes) and _parse_scopes() on "name",
 * "expiresAt" and "scopes", and on every other value of the object too
 * (or on the value itself when it is no object), and on none.
 *
 * The oracles are written apart from src/ (fuzz_common.h):
 *   name     accepted iff the string is valid UTF-8 without control
 *            characters and 1 to 200 characters remain once the spaces
 *            (ASCII and Unicode) are trimmed; the name is exactly that
 *            trimmed part, inside the string;
 *   expires  accepted iff absent (the default), null (when no maximum
 *            lifetime) or a date of pat_token's parser in the future,
 *            before year 5000, and within the maximum lifetime if any;
 *   scopes   accepted iff absent or an array of scope-tokens with at most
 *            32 distinct; the result is those, sorted, without
 *            duplicates; an error names a scope of the input when 422.
 * Every message comes with 400 or 422.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "pat_token.h"
#include "ngx_http_auth_pat_parse.h"

#include "fuzz_common.h"


#define NOW    INT64_C(1767225600000)          /* 2026-01-01T00:00:00Z */
#define DAY    INT64_C(86400000)


typedef struct {
    int64_t  dflt;
    int64_t  max;
} fuzz_lifetime_t;


static const fuzz_lifetime_t  lifetimes[] = {
    { 0, 0 },                                  /* never, no maximum */
    { NOW + 30 * DAY, 0 },                     /* default 30d */
    { NOW + 90 * DAY, 90 * DAY },              /* max 90d, as default */
    { NOW + 7 * DAY, 365 * DAY },              /* default 7d, max 365d */
    { NOW + 1000, 1000 },                      /* max 1s */
    { NOW + 400 * DAY, 365 * DAY },            /* a default beyond max */
};


/* the Unicode spaces that parse_name trims (see the header) */

static int
fuzz_space(long cp)
{
    return cp == 0x20 || cp == 0xa0 || cp == 0x1680
           || (cp >= 0x2000 && cp <= 0x200a) || cp == 0x2028 || cp == 0x2029
           || cp == 0x202f || cp == 0x205f || cp == 0x3000 || cp == 0xfeff;
}


static void
fuzz_name(json_t *v)
{
    long         cp, chars;
    size_t       i, n, len, start, end, first_end;
    ngx_str_t    name;
    ngx_uint_t   status;
    const char  *err;
    const unsigned char  *s;

    name.data = NULL;
    name.len = 0;

    err = ngx_http_auth_pat_parse_name(v, &name, &status);

    if (v == NULL || !json_is_string(v)) {
        check(err != NULL);
        check(status == (v == NULL ? 422 : 400));
        return;
    }

    s = (const unsigned char *) json_string_value(v);
    len = json_string_length(v);

    /* the reference: decode, trim spaces at both ends, count */

    chars = fuzz_utf8_chars(s, len);

    if (chars < 0) {
        check(err != NULL);
        check(status == 422);
        return;
    }

    start = 0;
    end = len;
    first_end = len;
    chars = 0;

    /* the first character that is not a space starts the name */
    for (i = 0; i < len; i += n) {
        cp = fuzz_utf8_next(s + i, len - i, &n);
        if (!fuzz_space(cp)) {
            break;
        }
    }

    start = i;

    /* the name ends after its last character that is not a space */
    end = start;

    for (i = start; i < len; i += n) {
        cp = fuzz_utf8_next(s + i, len - i, &n);
        chars++;

        if (!fuzz_space(cp)) {
            end = i + n;
            first_end = chars;
        }
    }

    chars = (end > start) ? (long) first_end : 0;

    if (chars == 0 || chars > NGX_HTTP_AUTH_PAT_NAME_MAX) {
        check(err != NULL);
        check(status == 422);
        return;
    }

    check(err == NULL);
    check(name.data == s + start);
    check(name.len == end - start);
    check(fuzz_utf8_chars(name.data, name.len) == chars);
}


static void
fuzz_expires(json_t *v)
{
    size_t       i;
    int64_t      ms, t, want;
    ngx_uint_t   status;
    const char  *err;
    int          ok;

    for (i = 0; i < sizeof(lifetimes) / sizeof(lifetimes[0]); i++) {
        ms = -42;
        t = 0;
        err = ngx_http_auth_pat_parse_expires(v, NOW, lifetimes[i].dflt,
                                              lifetimes[i].max, &ms, &status);

        if (v == NULL) {
            want = lifetimes[i].dflt;
            ok = 1;

        } else if (json_is_null(v)) {
            want = 0;
            ok = 1;

        } else if (json_is_string(v)) {
            ok = ngx_http_auth_pat_rfc3339_parse(json_string_value(v),
                                                 json_string_length(v), &t)
                 == 0
                 && t > NOW && t < NGX_HTTP_AUTH_PAT_EXPIRES_MAX;
            want = t;

        } else {
            check(err != NULL);
            check(status == 400);
            continue;
        }

        if (ok && lifetimes[i].max > 0) {
            ok = want != 0 && want <= NOW + lifetimes[i].max;
        }

        if (!ok) {
            check(err != NULL);
            check(status == 422);
            check(ms == -42);
            continue;
        }

        check(err == NULL);
        check(ms == want);

        if (lifetimes[i].max > 0) {
            check(ms > 0 && ms <= NOW + lifetimes[i].max);
        }
    }
}


static int
fuzz_strcmp(const void *a, const void *b)
{
    return strcmp(*(const char **) a, *(const char **) b);
}


static void
fuzz_scopes(json_t *v)
{
    size_t        i, k, n, distinct, bad_at;
    json_t       *e, *out;
    ngx_uint_t    status;
    const char   *err, *bad, *s;
    const char   *list[NGX_HTTP_AUTH_PAT_SCOPES_MAX];

    out = NULL;
    bad = NULL;
    err = ngx_http_auth_pat_parse_scopes(v, &out, &status, &bad);

    if (v == NULL) {
        check(err == NULL);
        check(out != NULL && json_is_array(out) && json_array_size(out) == 0);
        json_decref(out);
        return;
    }

    if (!json_is_array(v)) {
        check(err != NULL && status == 400 && out == NULL);
        return;
    }

    json_array_foreach(v, i, e) {
        if (!json_is_string(e)) {
            check(err != NULL && status == 400 && out == NULL);
            return;
        }
    }

    /*
     * The reference, in the order of the input: the first scope that is
     * not a scope-token, or that would be the 33rd distinct one, is bad.
     * (A scope-token holds no NUL: strcmp() compares it whole.)
     */

    n = json_array_size(v);
    distinct = 0;
    bad_at = n;

    for (i = 0; i < n; i++) {
        e = json_array_get(v, i);
        s = json_string_value(e);

        if (!fuzz_scope_valid((const unsigned char *) s,
                              json_string_length(e)))
        {
            bad_at = i;
            break;
        }

        for (k = 0; k < distinct; k++) {
            if (strcmp(list[k], s) == 0) {
                break;
            }
        }

        if (k < distinct) {
            continue;
        }

        if (distinct == NGX_HTTP_AUTH_PAT_SCOPES_MAX) {
            bad_at = i;
            break;
        }

        list[distinct++] = s;
    }

    if (bad_at < n) {
        check(err != NULL && status == 422 && out == NULL);
        check(bad == json_string_value(json_array_get(v, bad_at)));
        return;
    }

    qsort(list, distinct, sizeof(char *), fuzz_strcmp);

    check(err == NULL);
    check(out != NULL && json_is_array(out));
    check(json_array_size(out) == distinct);
    check(distinct <= NGX_HTTP_AUTH_PAT_SCOPES_MAX);

    json_array_foreach(out, i, e) {
        check(json_is_string(e));
        s = json_string_value(e);
        check(strcmp(s, list[i]) == 0);
        check(json_string_length(e) == strlen(s));
        check(ngx_http_auth_pat_scope_valid(s, strlen(s)));
        check(fuzz_scope_valid((const unsigned char *) s, strlen(s)));

        /* sorted, without duplicates */
        check(i == 0 || strcmp(json_string_value(json_array_get(out, i - 1)),
                               s) < 0);

        /* held by the input and by itself */
        check(ngx_http_auth_pat_scope_held(e, v));
        check(ngx_http_auth_pat_scope_held(e, out));
    }

    /* every scope of the input is in the result */
    json_array_foreach(v, i, e) {
        check(ngx_http_auth_pat_scope_held(e, out));
    }

    json_decref(out);
}


/*
 * A name that did not come through jansson (not necessarily UTF-8): the
 * module never sees one, but parse_name must still answer a trimmed,
 * valid name or an error.
 */

static void
fuzz_name_raw(const uint8_t *data, size_t size)
{
    json_t      *v;
    ngx_str_t    name;
    ngx_uint_t   status;
    const char  *err;
    long         chars;

    v = json_stringn_nocheck((const char *) data, size);
    if (v == NULL) {
        return;
    }

    err = ngx_http_auth_pat_parse_name(v, &name, &status);

    if (err == NULL) {
        check(fuzz_within(name.data, name.len, json_string_value(v), size));
        chars = fuzz_utf8_chars(name.data, name.len);
        check(chars >= 1 && chars <= NGX_HTTP_AUTH_PAT_NAME_MAX);
        check(name.data[0] != ' ' && name.data[name.len - 1] != ' ');

    } else {
        check(status == 422);
    }

    json_decref(v);
}


static void
fuzz_value(json_t *v)
{
    fuzz_name(v);
    fuzz_expires(v);
    fuzz_scopes(v);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char         *in;
    json_t       *body, *v;
    const char   *key;
    json_error_t  jerr;

    in = (char *) fuzz_dup(data, size);

    body = json_loadb(in, size, JSON_ALLOW_NUL, &jerr);

    if (body == NULL) {
        free(in);
        fuzz_name_raw(data, size);
        return 0;
    }

    if (json_is_object(body)) {
        /* the module: each field, absent or not */
        fuzz_name(json_object_get(body, "name"));
        fuzz_expires(json_object_get(body, "expiresAt"));
        fuzz_scopes(json_object_get(body, "scopes"));

        json_object_foreach(body, key, v) {
            fuzz_value(v);
        }

    } else {
        fuzz_value(body);
    }

    fuzz_value(NULL);

    json_decref(body);
    fuzz_name_raw(data, size);
    free(in);

    return 0;
}
