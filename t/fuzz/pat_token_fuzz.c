
/*
 * libFuzzer target for the parsers of src/pat_token.c, which see
 * client input: RFC 3339 dates, tokens, base62, UUIDs, UTF-8, prefixes.
 * The first byte picks the parser; the rest, in a buffer of its exact
 * size (so that ASan sees any read past it), is the input.  Besides "no
 * crash, no sanitizer report", each parser's answer is checked against a
 * property: a parsed date formats and parses back to itself, a verified
 * token's checksum is the CRC32 of its body, and so on.
 *
 * Built and run by ./build.sh fuzz (clang, -fsanitize=fuzzer,address,
 * undefined).  src/pat_token.c is included, not linked, for its static
 * CRC32 and base62 functions.
 */

#include "pat_token.c"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define check(cond)                                                           \
    if (!(cond)) {                                                            \
        fprintf(stderr, "property failed: %s (line %d)\n", #cond, __LINE__); \
        abort();                                                              \
    }


static void
fuzz_rfc3339(const char *s, size_t len)
{
    char     out[PAT_RFC3339_LEN + 1];
    size_t   n;
    int64_t  ms, again;

    if (ngx_http_auth_pat_rfc3339_parse(s, len, &ms) != 0) {
        return;
    }

    /* a parsed instant is within years 1..9999, and round-trips */
    n = ngx_http_auth_pat_rfc3339_format(ms, out);
    check(n == PAT_RFC3339_LEN);
    check(ngx_http_auth_pat_rfc3339_parse(out, n, &again) == 0);
    check(again == ms);
}


static void
fuzz_token(const char *s, size_t len)
{
    char      sum[PAT_TOKEN_CRC_LEN];
    size_t    body;
    uint32_t  crc;

    if (!ngx_http_auth_pat_token_verify(s, len, "pat_", 4)) {
        return;
    }

    /* what verifies is prefix + 28 base62 + the CRC32 of what precedes */
    check(len == 4 + PAT_TOKEN_RANDOM_LEN + PAT_TOKEN_CRC_LEN);
    check(memcmp(s, "pat_", 4) == 0);
    body = len - PAT_TOKEN_CRC_LEN;
    ngx_http_auth_pat_base62_encode_u32(ngx_http_auth_pat_crc32(s, body), sum);
    check(memcmp(sum, s + body, PAT_TOKEN_CRC_LEN) == 0);
    check(ngx_http_auth_pat_base62_decode_u32(s + body, PAT_TOKEN_CRC_LEN,
                                              &crc) == 0);
    check(crc == ngx_http_auth_pat_crc32(s, body));
}


static void
fuzz_base62(const char *s, size_t len)
{
    char      out[PAT_TOKEN_CRC_LEN];
    uint32_t  v, again;

    if (ngx_http_auth_pat_base62_decode_u32(s, len, &v) != 0) {
        return;
    }

    ngx_http_auth_pat_base62_encode_u32(v, out);
    check(ngx_http_auth_pat_base62_decode_u32(out, PAT_TOKEN_CRC_LEN, &again)
          == 0);
    check(again == v);
}


static void
fuzz_misc(const char *s, size_t len)
{
    size_t  nchars;

    if (ngx_http_auth_pat_uuid_valid(s, len)) {
        check(len == PAT_UUID_LEN);
    }

    if (ngx_http_auth_pat_utf8_check(s, len, &nchars, 1) == 0) {
        check(nchars <= len);
    }

    if (ngx_http_auth_pat_prefix_valid(s, len)) {
        check(len >= 1 && len <= PAT_TOKEN_PREFIX_MAX);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char    *s;
    size_t   len;

    if (size == 0) {
        return 0;
    }

    len = size - 1;
    s = malloc(len ? len : 1);
    if (s == NULL) {
        return 0;
    }

    memcpy(s, data + 1, len);

    switch (data[0] % 4) {
    case 0: fuzz_rfc3339(s, len); break;
    case 1: fuzz_token(s, len); break;
    case 2: fuzz_base62(s, len); break;
    default: fuzz_misc(s, len);
    }

    free(s);

    return 0;
}
