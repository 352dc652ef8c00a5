
/*
 * libFuzzer target: the Authorization header and the token's format.
 *
 * The input is the header's value: ngx_http_auth_pat_parse_bearer(), then,
 * on the token it yields, ngx_http_auth_pat_token_verify() with the
 * default prefix, a prefix with '_' in it, and the prefix the token would
 * have.  Oracles, written apart from src/:
 *   - parse_bearer gives NGX_OK iff the value is "Bearer" in any case, one
 *     or more spaces and a b64token (RFC 6750), which is then the token,
 *     inside the input; NGX_DECLINED iff the scheme is not "Bearer";
 *   - verify accepts iff the token is the prefix, 28 base62 characters
 *     and the base62 of the CRC32 of what precedes (a bitwise CRC32 here);
 *   - a token that pat_token's generator makes, with its RAND_bytes() fed
 *     from the input, verifies; so does "Bearer <token>" parse to it; a
 *     token with one character changed does not verify; a failure of
 *     RAND_bytes() gives -1 and an empty string.
 *
 * src/pat_token.c is included (its RAND_bytes() call redirected to the
 * input, below) rather than linked.
 */


/*
 * ngx_core.h includes OpenSSL's headers, after OPENSSL_SUPPRESS_DEPRECATED
 * (pat_token.c needs it for SHA256_Init() & co.)
 */
#include <ngx_config.h>
#include <ngx_core.h>

#include <openssl/rand.h>

#include "ngx_http_auth_pat_parse.h"

#include "fuzz_common.h"


static const unsigned char  *fuzz_rand;
static size_t                fuzz_rand_len;
static unsigned              fuzz_rand_fail;
static unsigned char         fuzz_rand_counter;


/*
 * The input's bytes, then a counter; fails once when asked to (the
 * generator must then give nothing)
 */

static int
fuzz_rand_bytes(unsigned char *buf, int num)
{
    int  i;

    if (fuzz_rand_fail) {
        fuzz_rand_fail = 0;
        return 0;
    }

    for (i = 0; i < num; i++) {
        if (fuzz_rand_len) {
            buf[i] = *fuzz_rand++;
            fuzz_rand_len--;

        } else {
            buf[i] = fuzz_rand_counter++;
        }
    }

    return 1;
}


/* pat_token.c defines it again, as 1 */
#undef OPENSSL_SUPPRESS_DEPRECATED

#define RAND_bytes  fuzz_rand_bytes
#include "pat_token.c"
#undef RAND_bytes


static const char  fuzz_base62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";


static uint32_t
ref_crc32(const unsigned char *p, size_t len)
{
    size_t    i;
    unsigned  k;
    uint32_t  crc;

    crc = 0xffffffff;

    for (i = 0; i < len; i++) {
        crc ^= p[i];

        for (k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xedb88320 & (0 - (crc & 1)));
        }
    }

    return ~crc;
}


static int
ref_base62(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')
           || (c >= 'a' && c <= 'z');
}


static int
ref_verify(const unsigned char *t, size_t len, const char *prefix,
    size_t plen)
{
    char      sum[6];
    size_t    i, body;
    uint32_t  crc;

    if (len != plen + 34 || memcmp(t, prefix, plen) != 0) {
        return 0;
    }

    body = len - 6;

    for (i = plen; i < len; i++) {
        if (!ref_base62(t[i])) {
            return 0;
        }
    }

    crc = ref_crc32(t, body);

    for (i = 6; i > 0; i--) {
        sum[i - 1] = fuzz_base62[crc % 62];
        crc /= 62;
    }

    return memcmp(sum, t + body, 6) == 0;
}


static int
ref_b64token_char(unsigned char c)
{
    return ref_base62(c) || c == '-' || c == '.' || c == '_' || c == '~'
           || c == '+' || c == '/';
}


/* NGX_OK (and the token's place), NGX_DECLINED or NGX_ERROR */

static ngx_int_t
ref_bearer(const unsigned char *p, size_t len, size_t *start)
{
    size_t  i, j;

    if (len < 6 || strncasecmp((const char *) p, "bearer", 6) != 0) {
        return NGX_DECLINED;
    }

    if (len > 6 && p[6] != ' ') {
        return NGX_DECLINED;
    }

    for (i = 6; i < len && p[i] == ' '; i++) { /* void */ }

    *start = i;

    for (j = i; j < len && ref_b64token_char(p[j]); j++) { /* void */ }

    /*
     * RFC 6750's b64token is 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" /
     * "+" / "/" ) *"=": "Bearer ==" is none (found by this target; now
     * t/fuzz/crashes/auth-bearer-equals-only and t/10-access.t)
     */
    if (j == i) {
        return NGX_ERROR;
    }

    for ( /* void */ ; j < len && p[j] == '='; j++) { /* void */ }

    return j == len ? NGX_OK : NGX_ERROR;
}


static void
fuzz_verify(const unsigned char *t, size_t len, const char *prefix,
    size_t plen)
{
    int  ok;

    ok = ngx_http_auth_pat_token_verify((const char *) t, len, prefix, plen);
    check(ok == 0 || ok == 1);
    check(ok == ref_verify(t, len, prefix, plen));
}


static void
fuzz_header(const uint8_t *data, size_t size)
{
    u_char     *p, *tok;
    size_t      start, plen;
    ngx_int_t   rc, want;
    ngx_str_t   token;

    p = fuzz_dup(data, size);

    token.data = NULL;
    token.len = 0;

    rc = ngx_http_auth_pat_parse_bearer(p, size, &token);
    want = ref_bearer(p, size, &start);

    check(rc == want);

    if (rc != NGX_OK) {
        free(p);
        return;
    }

    check(token.len > 0);
    check(fuzz_within(token.data, token.len, p, size));
    check(token.data == p + start && token.len == size - start);

    /* the token alone, in a block of its size */
    tok = fuzz_dup(token.data, token.len);

    fuzz_verify(tok, token.len, "pat_", 4);
    fuzz_verify(tok, token.len, "bw_live_", 8);

    /* the prefix it would have, if that is one */
    if (token.len > 34) {
        plen = token.len - 34;

        if (ngx_http_auth_pat_prefix_valid((const char *) tok, plen)) {
            fuzz_verify(tok, token.len, (const char *) tok, plen);
        }
    }

    free(tok);
    free(p);
}


/* a prefix of the generator's alphabet, from the input */

static size_t
fuzz_prefix(const uint8_t *data, size_t size, char *prefix)
{
    static const char  chars[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_";
    size_t             i, n;

    n = size ? (data[0] % PAT_TOKEN_PREFIX_MAX) + 1 : 4;

    for (i = 0; i < n; i++) {
        prefix[i] = chars[(i + 1 < size ? data[i + 1] : i) % 63];
    }

    return n;
}


static void
fuzz_generate(const uint8_t *data, size_t size)
{
    int         len;
    char        prefix[PAT_TOKEN_PREFIX_MAX];
    char        out[PAT_TOKEN_MAX_LEN + 1], bad[PAT_TOKEN_MAX_LEN];
    char        header[PAT_TOKEN_MAX_LEN + 16];
    size_t      plen, pos, n, c;
    ngx_str_t   token;
    unsigned    b;
    const char *p;

    plen = fuzz_prefix(data, size, prefix);
    b = size > 1 ? data[1] : 0;

    fuzz_rand = data;
    fuzz_rand_len = size;
    fuzz_rand_counter = 0;
    fuzz_rand_fail = size > 2 && data[2] == 0xff;

    /* too small a buffer: refused */
    check(ngx_http_auth_pat_token_generate(prefix, plen, out, plen + 34)
          == -1);
    check(out[0] == '\0');

    len = ngx_http_auth_pat_token_generate(prefix, plen, out, sizeof(out));

    if (len < 0) {
        /* only for the failure asked for above */
        check(size > 2 && data[2] == 0xff);
        check(out[0] == '\0');
        return;
    }

    check((size_t) len == plen + 34);
    check(out[len] == '\0');
    check(memcmp(out, prefix, plen) == 0);
    check(ngx_http_auth_pat_token_verify(out, len, prefix, plen) == 1);
    check(ref_verify((u_char *) out, len, prefix, plen));

    /* as a header, "Bearer" in some case, one to four spaces */
    n = sprintf(header, "%s%.*s%s", (b & 1) ? "bEaReR" : "Bearer",
                (int) (1 + ((b >> 1) & 3)), "    ", out);
    check(ngx_http_auth_pat_parse_bearer((u_char *) header, n, &token)
          == NGX_OK);
    check(token.len == (size_t) len && memcmp(token.data, out, len) == 0);

    /* one character changed: caught (CRC32 catches any 8-bit burst) */
    memcpy(bad, out, len);
    pos = (size > 3 ? data[3] : 0) % len;
    c = (size > 4 ? data[4] : 0) % 61;
    p = memchr(fuzz_base62, out[pos], 62);
    bad[pos] = fuzz_base62[((p ? p - fuzz_base62 : 0) + 1 + c) % 62];
    check(bad[pos] != out[pos]);

    check(ngx_http_auth_pat_token_verify(bad, len, prefix, plen) == 0);
    check(ref_verify((u_char *) bad, len, prefix, plen) == 0);

    /* a token is one byte too short, or of another prefix */
    check(ngx_http_auth_pat_token_verify(out, len - 1, prefix, plen) == 0);
    memcpy(bad, prefix, plen);
    bad[plen - 1] = (bad[plen - 1] == '_') ? 'x' : '_';
    check(ngx_http_auth_pat_token_verify(out, len, bad, plen) == 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_header(data, size);
    fuzz_generate(data, size);

    return 0;
}
