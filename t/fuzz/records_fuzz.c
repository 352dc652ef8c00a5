
/*
 * libFuzzer target: what the store reads back from Redis.
 *
 * The input: a separator byte, a nil mask, then the data.
 *   - ngx_http_auth_pat_parse_validation(): the data split at the
 *     separator into the validation record's six fields u, i, n, e, s, c
 *     (the sixth takes the rest), each in a block of its exact size, the
 *     fields of the mask's bits NULL (nil, as HMGET gives them); a fixed
 *     now.  NGX_OK: expires is 0 or after now, created >= 0, and what the
 *     header documents holds: u of 1 to 256 bytes, i a UUID, n valid
 *     UTF-8 of at most 200 characters, s a well-formed scope list, e and c
 *     the decimal instants (1 to EXPIRES_MAX) they say, or empty.  Both u
 *     and i nil: NGX_DECLINED.  A record built from the input as the
 *     scripts write one is NGX_OK, with its expires and created.
 *   - ngx_http_auth_pat_parse_index_entry() on the data: the four times
 *     are >= 0, the name and the scopes lie inside, one after the other,
 *     the name without the separator 0x1f.
 *   - ngx_http_auth_pat_parse_record() on the data: NULL, or an object as
 *     documented: id (and rf, rt) UUIDs, name of 1 to 200 characters,
 *     prefix of at most 64 bytes, times in range, scopes valid.
 *   - ngx_http_auth_pat_scope_next() and _scope_in() over s, the index
 *     entry's scopes and the data itself: the pieces tile the list, each
 *     is found in it, and _scope_in() answers as a reference does.
 * The references (UUID, UTF-8, scopes, instants) are written apart from
 * src/.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_http_auth_pat_parse.h"

#include "fuzz_common.h"


#define NOW    INT64_C(1767225600000)          /* 2026-01-01T00:00:00Z */


/* the reference: scope is one of the space-separated pieces of list */

static int
ref_scope_in(const u_char *list, size_t len, const u_char *scope, size_t n)
{
    size_t  i, start;

    start = 0;

    for (i = 0; i <= len; i++) {
        if (i == len || list[i] == ' ') {
            /* scope_next yields no (empty) piece that starts at the end */
            if (start < len && i - start == n
                && (n == 0 || memcmp(list + start, scope, n) == 0))
            {
                return 1;
            }

            start = i + 1;
        }
    }

    return 0;
}


static void
fuzz_scopes(const u_char *data, size_t len, const u_char *probe, size_t plen)
{
    u_char     *p;
    size_t      pos, last, pieces;
    ngx_str_t   list, s;

    p = fuzz_dup(data, len);
    list.data = p;
    list.len = len;

    pos = 0;
    last = 0;
    pieces = 0;

    while (ngx_http_auth_pat_scope_next(&list, &pos, &s)) {
        check(++pieces <= len + 1);

        /* the piece starts where the last one ended, then a space */
        check(s.data == p + last);
        check(fuzz_within(s.data, s.len, p, len));
        check(memchr(s.data, ' ', s.len) == NULL);
        check(s.data + s.len == p + len || s.data[s.len] == ' ');
        check(pos == last + s.len + 1);

        check(ngx_http_auth_pat_scope_in(&list, s.data, s.len));

        last = pos;
    }

    /* all of the list, but maybe its last space */
    check(last >= len && last <= len + 1);
    check(len == 0 || pieces > 0);
    check(pos == last);

    /* another scope: as the reference says */
    check(ngx_http_auth_pat_scope_in(&list, (u_char *) probe, plen)
          == (ngx_uint_t) ref_scope_in(p, len, probe, plen));

    free(p);
}


static int
ref_uuid(const u_char *p, size_t len)
{
    size_t  i;

    if (len != 36) {
        return 0;
    }

    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-') {
                return 0;
            }

        } else if (!isxdigit(p[i])) {
            return 0;
        }
    }

    return 1;
}


/* an instant as the scripts write it: digits, 1 to EXPIRES_MAX */

static int
ref_ms(const u_char *p, size_t len, int64_t *ms)
{
    size_t   i;
    int64_t  v;

    if (len == 0 || len > 20) {
        return 0;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return 0;
        }

        if (v > NGX_HTTP_AUTH_PAT_EXPIRES_MAX) {
            return 0;
        }

        v = v * 10 + (p[i] - '0');
    }

    if (v < 1 || v > NGX_HTTP_AUTH_PAT_EXPIRES_MAX) {
        return 0;
    }

    *ms = v;

    return 1;
}


static void
validation_check(ngx_str_t f[6], ngx_int_t rc, int64_t expires,
    int64_t created)
{
    int64_t  ms;
    long     chars;

    check(rc == NGX_OK || rc == NGX_DECLINED || rc == NGX_ERROR);

    if (f[0].data == NULL && f[1].data == NULL) {
        check(rc == NGX_DECLINED);
    }

    if (rc != NGX_OK) {
        return;
    }

    check(expires == 0 || expires > NOW);
    check(created >= 0);

    check(f[0].data != NULL && f[1].data != NULL);
    check(f[0].len >= 1 && f[0].len <= 256);
    check(ref_uuid(f[1].data, f[1].len));

    if (f[2].data) {
        chars = fuzz_utf8_chars(f[2].data, f[2].len);
        check(chars >= 0 && chars <= NGX_HTTP_AUTH_PAT_NAME_MAX);
    }

    if (f[3].data && f[3].len) {
        check(ref_ms(f[3].data, f[3].len, &ms) && ms == expires);

    } else {
        check(expires == 0);
    }

    if (f[4].data) {
        check(fuzz_scope_list_valid(f[4].data, f[4].len));
    }

    if (f[5].data && f[5].len) {
        check(ref_ms(f[5].data, f[5].len, &ms) && ms == created);

    } else {
        check(created == 0);
    }
}


static void
fuzz_validation(const u_char *data, size_t size, u_char sep, u_char nils)
{
    size_t      i, start, end;
    int64_t     expires, created;
    ngx_int_t   rc;
    ngx_str_t   f[6];
    u_char     *copy[6];

    start = 0;

    for (i = 0; i < 6; i++) {
        end = start;

        if (i < 5) {
            while (end < size && data[end] != sep) {
                end++;
            }

        } else {
            end = size;
        }

        if (start > size) {
            start = end = size;
        }

        copy[i] = fuzz_dup(data + start, end - start);
        f[i].data = copy[i];
        f[i].len = end - start;

        if (nils & (1u << i)) {
            f[i].data = NULL;
            f[i].len = 0;
        }

        start = end + 1;
    }

    expires = -42;
    created = -42;

    rc = ngx_http_auth_pat_parse_validation(f, NOW, &expires, &created);
    validation_check(f, rc, expires, created);

    /* a check then looks the required scopes up in s */
    if (rc == NGX_OK && f[4].data) {
        fuzz_scopes(f[4].data, f[4].len, f[2].data ? f[2].data : data,
                    f[2].data ? f[2].len : 0);
    }

    for (i = 0; i < 6; i++) {
        free(copy[i]);
    }
}


/* a validation record as the scripts write one, its parts from the input */

static void
fuzz_validation_good(const u_char *data, size_t size)
{
    static const char  hex[] = "0123456789abcdef";
    static const char  sc[] = "abcxyz:._-ABZ09!~";
    char               u[64], id[37], name[32], e[24], sl[64], c[24];
    size_t             i, n, k, ul, nl, sll;
    int64_t            expires, created, want_e, want_c;
    uint64_t           b;
    ngx_int_t          rc;
    ngx_str_t          f[6];
    u_char            *copy[6];

    b = 0;
    for (i = 0; i < 8 && i < size; i++) {
        b = b << 8 | data[i];
    }

    /* u: the caller, 1 to 64 bytes of anything */
    ul = 1 + b % 64;
    for (i = 0; i < ul; i++) {
        u[i] = (char) (i < size ? data[i] : 'u');
    }

    /* i: a UUID, its digits in either case */
    for (i = 0, k = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            id[i] = '-';
            continue;
        }

        n = (k < size ? data[k] : k) & 0x1f;
        k++;
        id[i] = (n & 0x10) ? toupper((u_char) hex[n & 0xf]) : hex[n & 0xf];
    }

    /* n: a name, maybe empty */
    nl = (b >> 6) % sizeof(name);
    for (i = 0; i < nl; i++) {
        name[i] = (char) ('a' + (i < size ? data[i] : i) % 26);
    }

    /* e: never, or after now; c: from 1 to now */
    want_e = (b & (1ULL << 12)) ? 0
             : NOW + 1 + (int64_t) ((b >> 13) % (NGX_HTTP_AUTH_PAT_EXPIRES_MAX
                                                 - NOW - 1));
    e[0] = '\0';
    if (want_e) {
        snprintf(e, sizeof(e), "%lld", (long long) want_e);
    }
    want_c = 1 + (int64_t) ((b >> 20) % NOW);
    snprintf(c, sizeof(c), "%lld", (long long) want_c);

    /* s: up to 8 scopes of 1 to 4 characters */
    sll = 0;
    n = (b >> 40) % 9;
    for (i = 0; i < n; i++) {
        if (i) {
            sl[sll++] = ' ';
        }

        for (k = 0; k < 1 + ((b >> (i * 2)) & 3); k++) {
            sl[sll++] = sc[(i * 7 + k + (i < size ? data[i] : 0))
                           % (sizeof(sc) - 1)];
        }
    }

    copy[0] = fuzz_dup(u, ul);
    copy[1] = fuzz_dup(id, 36);
    copy[2] = fuzz_dup(name, nl);
    copy[3] = fuzz_dup(e, strlen(e));
    copy[4] = fuzz_dup(sl, sll);
    copy[5] = fuzz_dup(c, strlen(c));

    for (i = 0; i < 6; i++) {
        f[i].data = copy[i];
    }

    f[0].len = ul;
    f[1].len = 36;
    f[2].len = nl;
    f[3].len = strlen(e);
    f[4].len = sll;
    f[5].len = strlen(c);

    /* a record of an earlier release: no s, no c */
    if (b & (1ULL << 50)) {
        f[4].data = NULL;
        f[4].len = 0;
        f[5].data = NULL;
        f[5].len = 0;
        want_c = 0;
    }

    rc = ngx_http_auth_pat_parse_validation(f, NOW, &expires, &created);

    check(rc == NGX_OK);
    check(expires == want_e);
    check(created == want_c);
    validation_check(f, rc, expires, created);

    for (i = 0; i < 6; i++) {
        free(copy[i]);
    }
}


static void
fuzz_index_entry(const u_char *data, size_t size)
{
    u_char     *p;
    int64_t     t[4];
    size_t      i;
    ngx_int_t   rc;
    ngx_str_t   name, scopes;

    p = fuzz_dup(data, size);

    rc = ngx_http_auth_pat_parse_index_entry(p, size, t, &name, &scopes);
    check(rc == NGX_OK || rc == NGX_ERROR);

    if (rc == NGX_OK) {
        for (i = 0; i < 4; i++) {
            check(t[i] >= 0);
        }

        check(fuzz_within(name.data, name.len, p, size));
        check(memchr(name.data, NGX_HTTP_AUTH_PAT_INDEX_SEP, name.len)
              == NULL);

        if (scopes.data) {
            check(scopes.data == name.data + name.len + 1);
            check(scopes.data[-1] == NGX_HTTP_AUTH_PAT_INDEX_SEP);
            check(scopes.data + scopes.len == p + size);

            fuzz_scopes(scopes.data, scopes.len, name.data, name.len);

        } else {
            check(scopes.len == 0);
            check(name.data + name.len == p + size);
        }
    }

    free(p);
}


static int
record_uuid(json_t *rec, const char *key, int optional)
{
    json_t  *v;

    v = json_object_get(rec, key);

    if (v == NULL || json_is_null(v)) {
        return optional;
    }

    return json_is_string(v)
           && ref_uuid((const u_char *) json_string_value(v),
                       json_string_length(v));
}


static int
record_ms(json_t *rec, const char *key, int optional)
{
    json_t  *v;

    v = json_object_get(rec, key);

    if (v == NULL || json_is_null(v)) {
        return optional;
    }

    if (json_is_integer(v)) {
        return json_integer_value(v) >= 1
               && json_integer_value(v) <= NGX_HTTP_AUTH_PAT_EXPIRES_MAX;
    }

    /* cjson writes numbers as %.14g: 1.7672256e+12 */
    return json_is_real(v) && json_real_value(v) >= 1
           && json_real_value(v) <= (double) NGX_HTTP_AUTH_PAT_EXPIRES_MAX;
}


static void
fuzz_record(const u_char *data, size_t size)
{
    u_char      *p;
    size_t       i;
    long         chars;
    json_t      *rec, *v, *e;

    p = fuzz_dup(data, size);

    rec = ngx_http_auth_pat_parse_record(p, size);

    if (rec != NULL) {
        check(json_is_object(rec));

        check(record_uuid(rec, "id", 0));
        check(record_uuid(rec, "rf", 1));
        check(record_uuid(rec, "rt", 1));

        v = json_object_get(rec, "name");
        check(json_is_string(v));
        chars = fuzz_utf8_chars((const u_char *) json_string_value(v),
                                json_string_length(v));
        check(chars >= 1 && chars <= NGX_HTTP_AUTH_PAT_NAME_MAX);

        v = json_object_get(rec, "prefix");
        check(json_is_string(v) && json_string_length(v) <= 64);

        v = json_object_get(rec, "d");
        check(v == NULL || json_is_null(v) || json_is_string(v));

        check(record_ms(rec, "c", 0));
        check(record_ms(rec, "e", 1));
        check(record_ms(rec, "l", 1));
        check(record_ms(rec, "r", 1));
        check(record_ms(rec, "k", 1));

        /* scopes: absent, {} (cjson's empty array), or valid */
        v = json_object_get(rec, "s");

        if (json_is_array(v)) {
            check(json_array_size(v) <= NGX_HTTP_AUTH_PAT_SCOPES_MAX);

            json_array_foreach(v, i, e) {
                check(json_is_string(e));
                check(fuzz_scope_valid((const u_char *) json_string_value(e),
                                       json_string_length(e)));
                check(ngx_http_auth_pat_scope_held(e, v));
            }

        } else {
            check(v == NULL || (json_is_object(v) && json_object_size(v) == 0));
        }

        json_decref(rec);
    }

    free(p);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t  half, n;

    if (size < 2) {
        return 0;
    }

    fuzz_validation(data + 2, size - 2, data[0], data[1]);
    fuzz_validation_good(data, size);
    fuzz_index_entry(data + 2, size - 2);
    fuzz_record(data + 2, size - 2);

    /* the data as a scope list, and a piece of its second half as the probe */
    half = (size - 2) / 2;
    n = data[1] % 8;
    if (n > size - 2 - half) {
        n = size - 2 - half;
    }

    fuzz_scopes(data + 2, size - 2, data + 2 + half, n);

    return 0;
}
