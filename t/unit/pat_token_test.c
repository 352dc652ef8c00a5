/*
 * TAP unit tests for src/pat_token.c; built and run by t/01-unit.t.
 *
 * The source is included, not linked, so that its static functions
 * (CRC32, base62) can be tested too.  It comes before any OpenSSL header:
 * it defines OPENSSL_SUPPRESS_DEPRECATED for the SHA256_*() functions.
 */


#include "pat_token.c"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>


#define NTOKENS   10000
#define NUUIDS    1000
#define NRANDOM   1000

#define MS_MIN    INT64_C(-62135596800000)      /* 0001-01-01T00:00:00Z */
#define MS_MAX    INT64_C(253402300799999)      /* 9999-12-31T23:59:59.999Z */

#define S(lit)    (lit), (sizeof(lit) - 1)


static unsigned  tests_run;
static unsigned  tests_failed;
static uint64_t  prng_state = UINT64_C(0x9e3779b97f4a7c15);


static void
ok(int cond, const char *fmt, ...)
{
    va_list  ap;

    tests_run++;

    if (!cond) {
        tests_failed++;
        printf("not ");
    }

    printf("ok %u - ", tests_run);

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);

    printf("\n");
    fflush(stdout);
}


static void
diag(const char *fmt, ...)
{
    va_list  ap;

    printf("# ");

    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);

    printf("\n");
}


/* deterministic xorshift64*, so that failures are reproducible */

static uint64_t
prng(void)
{
    prng_state ^= prng_state >> 12;
    prng_state ^= prng_state << 25;
    prng_state ^= prng_state >> 27;

    return prng_state * UINT64_C(0x2545f4914f6cdd1d);
}


static int
cmp_str(const void *a, const void *b)
{
    return strcmp((const char *) a, (const char *) b);
}


static int
is_base62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')
           || (c >= 'a' && c <= 'z');
}


static int
is_lower_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}


/* ---------------------------------------------------------------- crc32 */

static void
test_crc32(void)
{
    ok(ngx_http_auth_pat_crc32(S("123456789")) == 0xcbf43926,
       "crc32(\"123456789\")");
    ok(ngx_http_auth_pat_crc32(S("")) == 0, "crc32(\"\") == 0");
    ok(ngx_http_auth_pat_crc32(NULL, 0) == 0, "crc32(NULL, 0) == 0");
    ok(ngx_http_auth_pat_crc32(S("a")) == 0xe8b7be43, "crc32(\"a\")");
    ok(ngx_http_auth_pat_crc32(S("The quick brown fox jumps over the lazy dog"))
       == 0x414fa339, "crc32(quick brown fox)");
}


/* --------------------------------------------------------------- base62 */

static int
b62_roundtrip(uint32_t v)
{
    char      buf[PAT_TOKEN_CRC_LEN];
    uint32_t  r;

    ngx_http_auth_pat_base62_encode_u32(v, buf);

    return ngx_http_auth_pat_base62_decode_u32(buf, sizeof(buf), &r) == 0
           && r == v;
}


static void
test_base62(void)
{
    int       i, good;
    char      buf[PAT_TOKEN_CRC_LEN + 1];
    uint32_t  v;

    buf[PAT_TOKEN_CRC_LEN] = '\0';

    ngx_http_auth_pat_base62_encode_u32(0, buf);
    ok(strcmp(buf, "000000") == 0, "base62 encode(0) == \"000000\"");

    ngx_http_auth_pat_base62_encode_u32(61, buf);
    ok(strcmp(buf, "00000z") == 0, "base62 encode(61) == \"00000z\"");

    ngx_http_auth_pat_base62_encode_u32(62, buf);
    ok(strcmp(buf, "000010") == 0, "base62 encode(62) == \"000010\"");

    ngx_http_auth_pat_base62_encode_u32(0xffffffff, buf);
    ok(strcmp(buf, "4gfFC3") == 0, "base62 encode(0xffffffff) == \"4gfFC3\"");

    ngx_http_auth_pat_base62_encode_u32(0xcbf43926, buf);
    ok(strcmp(buf, "3jZRME") == 0, "base62 encode(0xcbf43926) == \"3jZRME\"");

    ok(b62_roundtrip(0), "base62 round trip 0");
    ok(b62_roundtrip(1), "base62 round trip 1");
    ok(b62_roundtrip(61), "base62 round trip 61");
    ok(b62_roundtrip(62), "base62 round trip 62");
    ok(b62_roundtrip(0xffffffff), "base62 round trip 0xffffffff");

    good = 1;
    for (i = 0; i < NRANDOM; i++) {
        v = (uint32_t) (prng() >> 32);
        if (!b62_roundtrip(v)) {
            diag("round trip failed for %lu", (unsigned long) v);
            good = 0;
        }
    }
    ok(good, "base62 round trip of %d random values", NRANDOM);

    v = 12345;
    ok(ngx_http_auth_pat_base62_decode_u32(S("4gfFC3"), &v) == 0
       && v == 0xffffffff,
       "base62 decode \"4gfFC3\" == 0xffffffff");
    ok(ngx_http_auth_pat_base62_decode_u32(S("z"), &v) == 0 && v == 61,
       "base62 decode short \"z\" == 61");
    ok(ngx_http_auth_pat_base62_decode_u32(S("00000000000010"), &v) == 0
       && v == 62,
       "base62 decode with many leading zeros");
    ok(ngx_http_auth_pat_base62_decode_u32(S("zzzzzz"), &v) == -1,
       "base62 decode \"zzzzzz\" overflows");
    ok(ngx_http_auth_pat_base62_decode_u32(S("4gfFC4"), &v) == -1,
       "base62 decode 0x100000000 overflows");
    ok(ngx_http_auth_pat_base62_decode_u32(S("1000000000"), &v) == -1,
       "base62 decode long value overflows");
    ok(ngx_http_auth_pat_base62_decode_u32(S(""), &v) == -1,
       "base62 decode len 0");
    ok(ngx_http_auth_pat_base62_decode_u32(S("12-4"), &v) == -1,
       "base62 decode '-'");
    ok(ngx_http_auth_pat_base62_decode_u32(S("ab c"), &v) == -1,
       "base62 decode ' '");
    ok(ngx_http_auth_pat_base62_decode_u32(S("ab_c"), &v) == -1,
       "base62 decode '_'");
    ok(ngx_http_auth_pat_base62_decode_u32(S("ab\x80"), &v) == -1,
       "base62 decode 0x80");
    ok(ngx_http_auth_pat_base62_decode_u32("12\0" "3", 4, &v) == -1,
       "base62 decode embedded NUL");
    ok(ngx_http_auth_pat_base62_decode_u32("12xyz", 2, &v) == 0 && v == 64,
       "base62 decode honours len");
}


/* --------------------------------------------------------------- prefix */

static void
test_prefix(void)
{
    ok(ngx_http_auth_pat_prefix_valid(S("pat_")) == 1, "prefix \"pat_\" valid");
    ok(ngx_http_auth_pat_prefix_valid(S("A_z9")) == 1, "prefix \"A_z9\" valid");
    ok(ngx_http_auth_pat_prefix_valid(S("_")) == 1, "prefix \"_\" valid");
    ok(ngx_http_auth_pat_prefix_valid(S("abcdefghijklmnopqrstuvwxyz012345"))
       == 1, "32 char prefix valid");
    ok(ngx_http_auth_pat_prefix_valid(S("abcdefghijklmnopqrstuvwxyz0123456"))
       == 0, "33 char prefix invalid");
    ok(ngx_http_auth_pat_prefix_valid(S("")) == 0, "empty prefix invalid");
    ok(ngx_http_auth_pat_prefix_valid(NULL, 3) == 0, "NULL prefix invalid");
    ok(ngx_http_auth_pat_prefix_valid(S("pat-")) == 0,
       "prefix with '-' invalid");
    ok(ngx_http_auth_pat_prefix_valid(S("pa t")) == 0,
       "prefix with ' ' invalid");
    ok(ngx_http_auth_pat_prefix_valid(S("p\xc3\xa4t")) == 0,
       "non-ASCII prefix invalid");
}


/* ----------------------------------------------------------------- hmac */

/* the module's path: a precomputed key, then a digest */

static void
hmac_case(const char *name, const void *key, size_t key_len,
    const void *msg, size_t msg_len, const char *expect)
{
    char                          hex[PAT_DIGEST_HEX_LEN + 1];
    uint8_t                       mac[PAT_DIGEST_LEN];
    ngx_http_auth_pat_hmac_key_t  hk;

    memset(hex, 0, sizeof(hex));

    if (ngx_http_auth_pat_hmac_key_init(&hk, key, key_len) != 0) {
        ok(0, "HMAC-SHA256 %s", name);
        return;
    }

    ngx_http_auth_pat_hmac_key_digest(&hk, msg, msg_len, mac);
    ngx_http_auth_pat_hex_encode(mac, sizeof(mac), hex);

    ok(strcmp(hex, expect) == 0, "HMAC-SHA256 %s", name);

    if (strcmp(hex, expect) != 0) {
        diag("got      %s", hex);
        diag("expected %s", expect);
    }
}


static void
test_hmac(void)
{
    char                          hex[9];
    size_t                        i;
    uint8_t                       mac[PAT_DIGEST_LEN];
    unsigned char                 key[131], data[50];
    ngx_http_auth_pat_hmac_key_t  hk;

    static const char  msg6[] =
        "Test Using Larger Than Block-Size Key - Hash Key First";
    static const char  msg7[] =
        "This is a test using a larger than block-size key and a larger "
        "than block-size data. The key needs to be hashed before being "
        "used by the HMAC algorithm.";

    /* RFC 4231 test case 1 */
    memset(key, 0x0b, 20);
    hmac_case("RFC 4231 case 1", key, 20, S("Hi There"),
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");

    /* test case 2 */
    hmac_case("RFC 4231 case 2", S("Jefe"),
        S("what do ya want for nothing?"),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

    /* test case 3 */
    memset(key, 0xaa, 20);
    memset(data, 0xdd, 50);
    hmac_case("RFC 4231 case 3", key, 20, data, 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");

    /* test case 4 */
    for (i = 0; i < 25; i++) {
        key[i] = (unsigned char) (i + 1);
    }
    memset(data, 0xcd, 50);
    hmac_case("RFC 4231 case 4", key, 25, data, 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");

    /* test case 5 uses truncated output and is skipped */

    /* test case 6 */
    memset(key, 0xaa, 131);
    hmac_case("RFC 4231 case 6", key, 131, msg6, sizeof(msg6) - 1,
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");

    /* test case 7 */
    hmac_case("RFC 4231 case 7", key, 131, msg7, sizeof(msg7) - 1,
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");

    hmac_case("with empty key and message", NULL, 0, NULL, 0,
        "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
    ok(ngx_http_auth_pat_hmac_key_init(&hk, NULL, 5) == -1,
       "HMAC-SHA256 NULL key with length fails");

    memset(hex, 0, sizeof(hex));
    mac[0] = 0x00;
    mac[1] = 0x9f;
    mac[2] = 0xa0;
    mac[3] = 0xff;
    ngx_http_auth_pat_hex_encode(mac, 4, hex);
    ok(strcmp(hex, "009fa0ff") == 0, "hex encode is lowercase");
}


/* ---------------------------------------------------------------- token */

static int
token_verifies(const char *tok, size_t len, const char *prefix)
{
    char  *copy;
    int    rc;

    /* exact-size heap copy, so that ASan catches reads past len */

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return -1;
    }

    memcpy(copy, tok, len);
    rc = ngx_http_auth_pat_token_verify(copy, len, prefix, strlen(prefix));
    free(copy);

    return rc;
}


static char  hexbuf[2 * PAT_DIGEST_LEN + 1];

static void
tohex(const uint8_t *p, size_t n)
{
    ngx_http_auth_pat_hex_encode(p, n, hexbuf);
    hexbuf[2 * n] = '\0';
}


/* the precomputed key must agree with OpenSSL's HMAC() everywhere */

static void
test_hmac_key(void)
{
    int                           good;
    size_t                        i, klen, mlen;
    uint8_t                       a[PAT_DIGEST_LEN], b[PAT_DIGEST_LEN];
    unsigned int                  blen;
    unsigned char                 key[200], msg[300];
    ngx_http_auth_pat_hmac_key_t  hk;

    static const char  msg2[] = "what do ya want for nothing?";
    static const char  msg6[] =
        "Test Using Larger Than Block-Size Key - Hash Key First";

    /* RFC 4231 test case 2 */
    ngx_http_auth_pat_hmac_key_init(&hk, "Jefe", 4);
    ngx_http_auth_pat_hmac_key_digest(&hk, msg2, sizeof(msg2) - 1, a);
    tohex(a, PAT_DIGEST_LEN);
    ok(strcmp(hexbuf, "5bdcc146bf60754e6a042426089575c7"
                      "5a003f089d2739839dec58b964ec3843") == 0,
       "hmac key: RFC 4231 case 2");

    /* RFC 4231 test case 6: a 131-byte key is hashed first */
    memset(key, 0xaa, 131);
    ngx_http_auth_pat_hmac_key_init(&hk, key, 131);
    ngx_http_auth_pat_hmac_key_digest(&hk, msg6, sizeof(msg6) - 1, a);
    tohex(a, PAT_DIGEST_LEN);
    ok(strcmp(hexbuf, "60e431591ee0b67f0d8a26aacbf5b77f"
                      "8e0bc6213728c5140546040f0ee37f54") == 0,
       "hmac key: RFC 4231 case 6");

    good = 1;

    for (i = 0; i < 2000; i++) {
        klen = prng() % sizeof(key);
        mlen = prng() % sizeof(msg);
        RAND_bytes(key, (int) sizeof(key));
        RAND_bytes(msg, (int) sizeof(msg));

        ngx_http_auth_pat_hmac_key_init(&hk, key, klen);
        ngx_http_auth_pat_hmac_key_digest(&hk, msg, mlen, a);

        blen = 0;

        if (HMAC(EVP_sha256(), key, (int) klen, msg, mlen, b, &blen) == NULL
            || blen != PAT_DIGEST_LEN
            || memcmp(a, b, PAT_DIGEST_LEN) != 0)
        {
            good = 0;
            diag("mismatch: key %zu bytes, message %zu bytes", klen, mlen);
            break;
        }
    }

    ok(good, "hmac key agrees with OpenSSL HMAC() on 2000 random keys "
       "(0-199 bytes) and messages (0-299 bytes)");

    ngx_http_auth_pat_hmac_key_digest(&hk, "x", 1, a);
    ngx_http_auth_pat_hmac_key_digest(&hk, "x", 1, b);
    ok(memcmp(a, b, PAT_DIGEST_LEN) == 0,
       "hmac key: reusable, same input same digest");

    ngx_http_auth_pat_hmac_key_clear(&hk);
    good = 1;
    for (i = 0; i < sizeof(hk.opaque) / sizeof(hk.opaque[0]); i++) {
        good &= (hk.opaque[i] == 0);
    }
    ok(good, "hmac key: clear wipes the state");
}


static void
test_token_single(void)
{
    int       n, good, j;
    char      tok[PAT_TOKEN_MAX_LEN + 2], bad[PAT_TOKEN_MAX_LEN + 2];
    char      small[64], crc[PAT_TOKEN_CRC_LEN];
    size_t    i, len;
    uint32_t  sum;

    static const char  repl[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "abcdefghijklmnopqrstuvwxyz_-.+/= \x80\xff";

    n = ngx_http_auth_pat_token_generate(S("pat_"), tok, sizeof(tok));
    len = strlen(tok);

    ok(n == 4 + PAT_TOKEN_RANDOM_LEN + PAT_TOKEN_CRC_LEN,
       "generate returns length 38 (got %d)", n);
    ok(len == (size_t) n, "generated token is NUL-terminated at its length");
    ok(memcmp(tok, "pat_", 4) == 0, "generated token starts with prefix");

    good = 1;
    for (i = 4; i < len; i++) {
        good &= is_base62(tok[i]);
    }
    ok(good, "generated token body is base62");

    ok(token_verifies(tok, len, "pat_") == 1, "generated token verifies");

    /* change every single character, to every other possible value */

    for (i = 0; i < len; i++) {
        good = 1;

        for (j = 0; repl[j] != '\0'; j++) {
            if (repl[j] == tok[i]) {
                continue;
            }

            memcpy(bad, tok, len);
            bad[i] = repl[j];

            if (token_verifies(bad, len, "pat_") != 0) {
                diag("position %zu changed to 0x%02x still verifies",
                     i, (unsigned) (unsigned char) repl[j]);
                good = 0;
            }
        }

        ok(good, "changing char %zu (%s) breaks verification", i,
           i < 4 ? "prefix" : i < 4 + PAT_TOKEN_RANDOM_LEN ? "random" : "crc");
    }

    ok(token_verifies(tok, len, "pax_") == 0, "wrong prefix fails");
    ok(token_verifies(tok, len, "pat") == 0, "shorter prefix fails");
    ok(token_verifies(tok, len, "pat__") == 0, "longer prefix fails");
    ok(token_verifies(tok, len - 1, "pat_") == 0, "truncated token fails");
    ok(token_verifies(tok + 1, len - 1, "at_") == 0,
       "token without first char fails");

    memcpy(bad, tok, len);
    bad[len] = 'A';
    ok(token_verifies(bad, len + 1, "pat_") == 0, "extended token fails");
    ok(token_verifies(tok, 0, "pat_") == 0, "empty token fails");
    ok(ngx_http_auth_pat_token_verify(tok, 3, "pat_", 4) == 0,
       "prefix longer than len");
    ok(ngx_http_auth_pat_token_verify(NULL, len, "pat_", 4) == 0,
       "NULL token fails");

    /* a correct checksum over a non-base62 random part must still fail */

    memcpy(bad, tok, len);
    bad[10] = '_';
    sum = ngx_http_auth_pat_crc32(bad, len - PAT_TOKEN_CRC_LEN);
    ngx_http_auth_pat_base62_encode_u32(sum, crc);
    memcpy(bad + len - PAT_TOKEN_CRC_LEN, crc, PAT_TOKEN_CRC_LEN);
    ok(token_verifies(bad, len, "pat_") == 0,
       "non-base62 random part with matching crc fails");

    /* output buffer sizes */

    ok(ngx_http_auth_pat_token_generate(S("pat_"), small, 38) == -1,
       "out_size without room for NUL fails");
    ok(ngx_http_auth_pat_token_generate(S("pat_"), small, 39) == 38,
       "out_size of exactly len + 1 works");
    ok(token_verifies(small, 38, "pat_") == 1, "that token verifies");
    ok(ngx_http_auth_pat_token_generate(S("pat_"), small, 0) == -1,
       "out_size 0 fails");
    ok(ngx_http_auth_pat_token_generate(S("pat-"), small, sizeof(small)) == -1
       && small[0] == '\0', "invalid prefix fails");
    ok(ngx_http_auth_pat_token_generate(S(""), small, sizeof(small)) == -1,
       "empty prefix fails");
    ok(ngx_http_auth_pat_token_generate(S("abcdefghijklmnopqrstuvwxyz0123456"),
                                        tok, sizeof(tok))
       == -1, "33 char prefix fails");

    n = ngx_http_auth_pat_token_generate(S("abcdefghijklmnopqrstuvwxyz_12345"),
                                         tok, sizeof(tok));
    ok(n == PAT_TOKEN_MAX_LEN && strlen(tok) == PAT_TOKEN_MAX_LEN,
       "32 char prefix gives PAT_TOKEN_MAX_LEN token");
    ok(token_verifies(tok, (size_t) n,
                      "abcdefghijklmnopqrstuvwxyz_12345") == 1,
       "32 char prefix token verifies");
}


static void
test_token_bulk(void)
{
    int      n, good_len, good_verify, distinct;
    char    *toks, *t;
    size_t   i, k, count[62];
    double   expect, lo, hi;
    size_t   cmin, cmax;

    enum { W = 4 + PAT_TOKEN_RANDOM_LEN + PAT_TOKEN_CRC_LEN + 1 };

    toks = calloc(NTOKENS, W);
    if (toks == NULL) {
        ok(0, "allocate token array");
        return;
    }

    memset(count, 0, sizeof(count));
    good_len = 1;
    good_verify = 1;

    for (i = 0; i < NTOKENS; i++) {
        t = toks + i * W;

        n = ngx_http_auth_pat_token_generate(S("pat_"), t, W);
        if (n != W - 1) {
            good_len = 0;
            continue;
        }

        if (ngx_http_auth_pat_token_verify(t, (size_t) n, S("pat_")) != 1) {
            good_verify = 0;
        }

        for (k = 4; k < 4 + PAT_TOKEN_RANDOM_LEN; k++) {
            if (t[k] >= '0' && t[k] <= '9') {
                count[t[k] - '0']++;

            } else if (t[k] >= 'A' && t[k] <= 'Z') {
                count[t[k] - 'A' + 10]++;

            } else if (t[k] >= 'a' && t[k] <= 'z') {
                count[t[k] - 'a' + 36]++;
            }
        }
    }

    ok(good_len, "%d tokens generated with correct length", NTOKENS);
    ok(good_verify, "%d tokens all verify", NTOKENS);

    qsort(toks, NTOKENS, W, cmp_str);

    distinct = 1;
    for (i = 1; i < NTOKENS; i++) {
        if (strcmp(toks + (i - 1) * W, toks + i * W) == 0) {
            distinct = 0;
        }
    }

    ok(distinct, "%d tokens are all distinct", NTOKENS);

    expect = (double) NTOKENS * PAT_TOKEN_RANDOM_LEN / 62;
    lo = expect * 0.8;
    hi = expect * 1.2;

    cmin = count[0];
    cmax = count[0];
    n = 1;

    for (i = 0; i < 62; i++) {
        if (count[i] < cmin) {
            cmin = count[i];
        }

        if (count[i] > cmax) {
            cmax = count[i];
        }

        if ((double) count[i] < lo || (double) count[i] > hi) {
            n = 0;
        }
    }

    ok(n, "each base62 char occurs %.0f +- 20%% times (min %zu, max %zu)",
       expect, cmin, cmax);

    free(toks);
}


/* ----------------------------------------------------------------- uuid */

static void
test_uuid(void)
{
    int      fmt, ver, var, valid, distinct, rc;
    char    *uuids, *u;
    size_t   i, k;

    enum { W = PAT_UUID_LEN + 1 };

    uuids = calloc(NUUIDS, W);
    if (uuids == NULL) {
        ok(0, "allocate uuid array");
        return;
    }

    rc = 0;
    fmt = 1;
    ver = 1;
    var = 1;
    valid = 1;

    for (i = 0; i < NUUIDS; i++) {
        u = uuids + i * W;

        if (ngx_http_auth_pat_uuid_v4(u) != 0) {
            rc = -1;
        }

        if (strlen(u) != PAT_UUID_LEN) {
            fmt = 0;
            continue;
        }

        for (k = 0; k < PAT_UUID_LEN; k++) {
            if (k == 8 || k == 13 || k == 18 || k == 23) {
                fmt &= u[k] == '-';

            } else {
                fmt &= is_lower_hex(u[k]);
            }
        }

        ver &= u[14] == '4';
        var &= strchr("89ab", u[19]) != NULL && u[19] != '\0';
        valid &= ngx_http_auth_pat_uuid_valid(u, PAT_UUID_LEN);
    }

    ok(rc == 0, "uuid_v4 returns 0");
    ok(fmt, "uuid_v4 is lowercase 8-4-4-4-12");
    ok(ver, "uuid_v4 version nibble is 4");
    ok(var, "uuid_v4 variant is one of 89ab");
    ok(valid, "uuid_valid accepts generated uuids");

    qsort(uuids, NUUIDS, W, cmp_str);

    distinct = 1;
    for (i = 1; i < NUUIDS; i++) {
        if (strcmp(uuids + (i - 1) * W, uuids + i * W) == 0) {
            distinct = 0;
        }
    }

    ok(distinct, "%d uuids are all distinct", NUUIDS);

    free(uuids);

    ok(ngx_http_auth_pat_uuid_valid(S("123e4567-e89b-12d3-a456-426614174000"))
       == 1, "uuid_valid accepts version 1 lowercase");
    ok(ngx_http_auth_pat_uuid_valid(S("123E4567-E89B-42D3-A456-426614174ABC"))
       == 1, "uuid_valid accepts uppercase");
    ok(ngx_http_auth_pat_uuid_valid(S("00000000-0000-0000-0000-000000000000"))
       == 1, "uuid_valid accepts nil uuid");
    ok(ngx_http_auth_pat_uuid_valid(S("123e4567-e89b-12d3-a456-42661417400"))
       == 0, "uuid_valid rejects 35 chars");
    ok(ngx_http_auth_pat_uuid_valid(S("123e4567-e89b-12d3-a456-4266141740000"))
       == 0, "uuid_valid rejects 37 chars");
    ok(ngx_http_auth_pat_uuid_valid(S("123e4567-e89b-12d3-a456-42661417400g"))
       == 0, "uuid_valid rejects non-hex 'g'");
    ok(ngx_http_auth_pat_uuid_valid(S("123e4567 e89b-12d3-a456-426614174000"))
       == 0, "uuid_valid rejects ' ' instead of '-'");
    ok(ngx_http_auth_pat_uuid_valid(S("123e4567e89b12d3a456426614174000"))
       == 0, "uuid_valid rejects missing dashes");
    ok(ngx_http_auth_pat_uuid_valid(S("123e4567-e89b1-2d3-a456-426614174000"))
       == 0, "uuid_valid rejects misplaced dash");
    ok(ngx_http_auth_pat_uuid_valid(S("{23e4567-e89b-12d3-a456-42661417400}"))
       == 0, "uuid_valid rejects braces");
    ok(ngx_http_auth_pat_uuid_valid(S("")) == 0, "uuid_valid rejects empty");
    ok(ngx_http_auth_pat_uuid_valid(NULL, PAT_UUID_LEN) == 0,
       "uuid_valid rejects NULL");
}


/* -------------------------------------------------------------- rfc3339 */

/* parses an exact-size heap copy, so that ASan catches reads past len */

static int
parse(const char *s, int64_t *ms)
{
    int      rc;
    char    *copy;
    size_t   len;

    len = strlen(s);

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        return -2;
    }

    memcpy(copy, s, len);
    rc = ngx_http_auth_pat_rfc3339_parse(copy, len, ms);
    free(copy);

    return rc;
}


static void
parse_ok(const char *s, int64_t expect)
{
    int      rc;
    int64_t  ms;

    ms = INT64_MIN;
    rc = parse(s, &ms);

    ok(rc == 0 && ms == expect, "rfc3339 parse \"%s\" == %lld", s,
       (long long) expect);

    if (rc != 0 || ms != expect) {
        diag("rc %d, ms %lld", rc, (long long) ms);
    }
}


static void
parse_bad(const char *s, const char *why)
{
    int64_t  ms;

    ok(parse(s, &ms) == -1, "rfc3339 rejects %s \"%s\"", why, s);
}


/* independent day counter: walks the calendar one month at a time */

static int
check_all_dates(void)
{
    int      y, m, d, dim;
    char     buf[64], out[PAT_RFC3339_LEN + 1];
    int64_t  days, ms;

    static const int  mdays[12] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    days = MS_MIN / 86400000;

    for (y = 1; y <= 9999; y++) {
        for (m = 1; m <= 12; m++) {
            dim = mdays[m - 1];

            if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) {
                dim = 29;
            }

            for (d = 1; d <= dim; d++) {
                snprintf(buf, sizeof(buf), "%04d-%02d-%02dT12:00:00Z",
                         y, m, d);

                if (ngx_http_auth_pat_rfc3339_parse(buf, strlen(buf), &ms) != 0
                    || ms != days * 86400000 + 43200000)
                {
                    diag("parse mismatch at %s", buf);
                    return 0;
                }

                buf[19] = '.';
                buf[20] = '0';
                buf[21] = '0';
                buf[22] = '0';
                buf[23] = 'Z';
                buf[24] = '\0';

                if (ngx_http_auth_pat_rfc3339_format(ms, out) != PAT_RFC3339_LEN
                    || strcmp(out, buf) != 0)
                {
                    diag("format mismatch at %s: %s", buf, out);
                    return 0;
                }

                days++;
            }

            if (d <= 31) {
                snprintf(buf, sizeof(buf), "%04d-%02d-%02dT12:00:00Z",
                         y, m, d);

                if (ngx_http_auth_pat_rfc3339_parse(buf, strlen(buf), &ms)
                    != -1)
                {
                    diag("%s accepted", buf);
                    return 0;
                }
            }
        }
    }

    return days == MS_MAX / 86400000 + 1;
}


static void
test_rfc3339_parse(void)
{
    int64_t  ms;

    parse_ok("2026-11-28T03:20:33.123Z", INT64_C(1795836033123));
    parse_ok("2026-11-28T03:20:33Z", INT64_C(1795836033000));
    parse_ok("2026-11-28t03:20:33.123z", INT64_C(1795836033123));
    parse_ok("2026-11-28T08:50:33.123+05:30", INT64_C(1795836033123));
    parse_ok("2026-11-27T19:20:33.123-08:00", INT64_C(1795836033123));
    parse_ok("2026-11-28T03:20:33+00:00", INT64_C(1795836033000));
    parse_ok("2026-11-28T03:20:33-00:00", INT64_C(1795836033000));
    parse_ok("2026-11-28T03:20:33.1Z", INT64_C(1795836033100));
    parse_ok("2026-11-28T03:20:33.12Z", INT64_C(1795836033120));
    parse_ok("2026-11-28T03:20:33.123456789Z", INT64_C(1795836033123));
    parse_ok("2026-11-28T03:20:33.999999999Z", INT64_C(1795836033999));
    parse_ok("2000-02-29T00:00:00Z", INT64_C(951782400000));
    parse_ok("2024-02-29T12:34:56Z", INT64_C(1709210096000));
    parse_ok("1970-01-01T00:00:00Z", 0);
    parse_ok("1969-12-31T23:59:59.999Z", -1);
    parse_ok("9999-12-31T23:59:59.999Z", MS_MAX);
    parse_ok("0001-01-01T00:00:00Z", MS_MIN);
    parse_ok("0000-12-31T23:00:00-01:00", MS_MIN);
    parse_ok("1970-01-01T23:59:59+23:59", 59000);

    parse_bad("2023-02-30T00:00:00Z", "Feb 30");
    parse_bad("2024-02-30T00:00:00Z", "Feb 30 in leap year");
    parse_bad("2023-02-29T00:00:00Z", "Feb 29 in non-leap year");
    parse_bad("1900-02-29T00:00:00Z", "Feb 29 in 1900");
    parse_bad("2100-02-29T00:00:00Z", "Feb 29 in 2100");
    parse_bad("2026-11-28T24:00:00Z", "hour 24");
    parse_bad("2026-11-28T03:60:00Z", "minute 60");
    parse_bad("2026-11-28T03:20:60Z", "second 60");
    parse_bad("2026-11-28T03:20:61Z", "second 61");
    parse_bad("2026-13-01T00:00:00Z", "month 13");
    parse_bad("2026-00-01T00:00:00Z", "month 0");
    parse_bad("2026-01-00T00:00:00Z", "day 0");
    parse_bad("2026-01-32T00:00:00Z", "day 32");
    parse_bad("2026-04-31T00:00:00Z", "April 31");
    parse_bad("2026-11-28T03:20:33", "missing offset");
    parse_bad("2026-11-28T03:20:33.123", "missing offset after fraction");
    parse_bad("2026-11-28T03:20:33Z ", "trailing space");
    parse_bad("2026-11-28T03:20:33Zx", "trailing 'x'");
    parse_bad("2026-11-28T03:20:33+05:30Z", "trailing 'Z' after offset");
    parse_bad("2026-11-28T03:20Z", "missing seconds");
    parse_bad("", "empty string");
    parse_bad("2026-11-28T03:20:33+05:60", "offset minute 60");
    parse_bad("2026-11-28T03:20:33+24:00", "offset hour 24");
    parse_bad("2026-11-28T03:20:33+0530", "offset without colon");
    parse_bad("2026-11-28T03:20:33+05", "offset without minutes");
    parse_bad("2026-11-28T03:20:33+05:3", "short offset");
    parse_bad("9999-12-31T23:30:00-01:00", "beyond year 9999");
    parse_bad("0001-01-01T00:00:00+00:01", "before year 1");
    parse_bad("0000-06-01T00:00:00Z", "year 0");
    parse_bad("10000-01-01T00:00:00Z", "5-digit year");
    parse_bad("2026-11-28T03:20:33.Z", "fraction without digits");
    parse_bad("2026-11-28T03:20:33.1234567890Z", "10 fraction digits");
    parse_bad("2026-11-28T03:20:3a.123Z", "non-digit second");
    parse_bad("2O26-11-28T03:20:33Z", "letter O in year");
    parse_bad("2026-11-28 03:20:33Z", "space separator");
    parse_bad("2026/11/28T03:20:33Z", "slash separator");
    parse_bad("2026-11-28T03:20:33.12aZ", "non-digit in fraction");
    parse_bad("+026-11-28T03:20:33Z", "sign in year");
    parse_bad("2026-1-28T03:20:33Z", "1-digit month");

    ok(ngx_http_auth_pat_rfc3339_parse("2026-11-28T03:20:33Zjunk", 20, &ms) == 0
       && ms == INT64_C(1795836033000), "rfc3339 parse honours len");
    ok(ngx_http_auth_pat_rfc3339_parse("2026-11-28T03:20:33.123Z", 23, &ms)
       == -1, "rfc3339 parse with len cut before 'Z'");
    ok(ngx_http_auth_pat_rfc3339_parse(NULL, 0, &ms) == -1,
       "rfc3339 parse NULL");
}


static void
format_is(int64_t ms, const char *expect)
{
    size_t  n;
    char    out[PAT_RFC3339_LEN + 1];

    n = ngx_http_auth_pat_rfc3339_format(ms, out);

    ok(n == PAT_RFC3339_LEN && strcmp(out, expect) == 0,
       "rfc3339 format %lld == \"%s\"", (long long) ms, expect);

    if (n != PAT_RFC3339_LEN || strcmp(out, expect) != 0) {
        diag("got %zu \"%s\"", n, n ? out : "");
    }
}


static void
test_rfc3339_format(void)
{
    int       i, good;
    char      out[PAT_RFC3339_LEN + 1];
    size_t    n;
    int64_t   ms, back;
    uint64_t  range;

    format_is(0, "1970-01-01T00:00:00.000Z");
    format_is(INT64_C(1795836033123), "2026-11-28T03:20:33.123Z");
    format_is(-1, "1969-12-31T23:59:59.999Z");
    format_is(INT64_C(951782400000), "2000-02-29T00:00:00.000Z");
    format_is(INT64_C(951868800000), "2000-03-01T00:00:00.000Z");
    format_is(INT64_C(4107542400000), "2100-03-01T00:00:00.000Z");
    format_is(INT64_C(-2203891200000), "1900-03-01T00:00:00.000Z");
    format_is(MS_MIN, "0001-01-01T00:00:00.000Z");
    format_is(MS_MAX, "9999-12-31T23:59:59.999Z");

    out[0] = 'x';
    ok(ngx_http_auth_pat_rfc3339_format(MS_MIN - 1, out) == 0 && out[0] == '\0',
       "rfc3339 format before year 1 fails");
    ok(ngx_http_auth_pat_rfc3339_format(MS_MAX + 1, out) == 0,
       "rfc3339 format after year 9999 fails");
    ok(ngx_http_auth_pat_rfc3339_format(INT64_MIN, out) == 0,
       "rfc3339 format INT64_MIN fails");
    ok(ngx_http_auth_pat_rfc3339_format(INT64_MAX, out) == 0,
       "rfc3339 format INT64_MAX fails");

    range = (uint64_t) (MS_MAX - MS_MIN) + 1;
    good = 1;

    for (i = 0; i < NRANDOM; i++) {
        ms = MS_MIN + (int64_t) (prng() % range);

        n = ngx_http_auth_pat_rfc3339_format(ms, out);
        back = INT64_MIN;

        if (n != PAT_RFC3339_LEN
            || strlen(out) != PAT_RFC3339_LEN
            || ngx_http_auth_pat_rfc3339_parse(out, n, &back) != 0
            || back != ms)
        {
            diag("round trip failed for %lld: \"%s\" -> %lld",
                 (long long) ms, out, (long long) back);
            good = 0;
        }
    }

    ok(good, "rfc3339 parse(format(x)) == x for %d random values", NRANDOM);

    ok(check_all_dates(),
       "every date 0001-01-01 .. 9999-12-31 parses/formats consistently, "
       "day after month end rejected");
}


/* ----------------------------------------------------------------- utf8 */

static void
utf8_ok(const char *s, size_t len, size_t expect, const char *desc)
{
    int     rc;
    size_t  n;

    n = (size_t) -1;
    rc = ngx_http_auth_pat_utf8_check(s, len, &n, 0);

    ok(rc == 0 && n == expect, "utf8 accepts %s (%zu chars)", desc, expect);

    if (rc != 0 || n != expect) {
        diag("rc %d, nchars %zu", rc, n);
    }
}


static void
utf8_bad(const char *s, size_t len, const char *desc)
{
    size_t  n;

    ok(ngx_http_auth_pat_utf8_check(s, len, &n, 0) == -1
       && ngx_http_auth_pat_utf8_check(s, len, &n, 1) == -1,
       "utf8 rejects %s", desc);
}


static void
utf8_ctl(const char *s, size_t len, const char *desc)
{
    size_t  n;

    ok(ngx_http_auth_pat_utf8_check(s, len, &n, 0) == 0
       && ngx_http_auth_pat_utf8_check(s, len, &n, 1) == -1,
       "utf8 control %s rejected only with reject_controls", desc);
}


static void
test_utf8(void)
{
    size_t  n;

    utf8_ok(S(""), 0, "empty string");
    utf8_ok(S("hello, world"), 12, "ASCII");
    utf8_ok(S("\xc3\xa9"), 1, "2-byte U+00E9");
    utf8_ok(S("\xe2\x82\xac"), 1, "3-byte U+20AC");
    utf8_ok(S("\xf0\x9f\x98\x80"), 1, "4-byte U+1F600");
    utf8_ok(S("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z"), 5, "mixed");
    utf8_ok(S("\xc2\x80"), 1, "U+0080");
    utf8_ok(S("\xdf\xbf"), 1, "U+07FF");
    utf8_ok(S("\xe0\xa0\x80"), 1, "U+0800");
    utf8_ok(S("\xed\x9f\xbf"), 1, "U+D7FF");
    utf8_ok(S("\xee\x80\x80"), 1, "U+E000");
    utf8_ok(S("\xef\xbf\xbf"), 1, "U+FFFF");
    utf8_ok(S("\xf4\x8f\xbf\xbf"), 1, "U+10FFFF");

    utf8_bad(S("\xc0\xaf"), "overlong 2-byte '/'");
    utf8_bad(S("\xc1\xbf"), "overlong 2-byte 0xC1");
    utf8_bad(S("\xe0\x80\xaf"), "overlong 3-byte");
    utf8_bad(S("\xe0\x9f\xbf"), "overlong 3-byte U+07FF");
    utf8_bad(S("\xf0\x80\x80\xaf"), "overlong 4-byte");
    utf8_bad(S("\xf0\x8f\xbf\xbf"), "overlong 4-byte U+FFFF");
    utf8_bad(S("\xed\xa0\x80"), "surrogate U+D800");
    utf8_bad(S("\xed\xbf\xbf"), "surrogate U+DFFF");
    utf8_bad(S("\xf4\x90\x80\x80"), "U+110000");
    utf8_bad(S("\xf5\x80\x80\x80"), "lead byte 0xF5");
    utf8_bad(S("\xff"), "byte 0xFF");
    utf8_bad(S("\x80"), "stray continuation byte");
    utf8_bad(S("ab\xc3"), "truncated 2-byte");
    utf8_bad(S("\xe2\x82"), "truncated 3-byte");
    utf8_bad(S("\xf0\x9f\x98"), "truncated 4-byte");
    utf8_bad(S("\xe2\x82z"), "non-continuation byte");
    utf8_bad("\xe2\x82\xac", 2, "sequence cut by len");

    utf8_ctl(S("a\tb"), "TAB");
    utf8_ctl(S("a\nb"), "LF");
    utf8_ctl("a\0b", 3, "NUL");
    utf8_ctl(S("\x1f"), "U+001F");
    utf8_ctl(S("\x7f"), "DEL");
    utf8_ctl(S("\xc2\x80"), "U+0080");
    utf8_ctl(S("\xc2\x9f"), "U+009F");

    ok(ngx_http_auth_pat_utf8_check(S(" ~\xc2\xa0\xc3\xa9"), &n, 1) == 0
       && n == 4,
       "utf8 reject_controls accepts space, '~', U+00A0, U+00E9");
    ok(ngx_http_auth_pat_utf8_check(S("abc"), NULL, 1) == 0,
       "utf8 nchars may be NULL");
}


int
main(void)
{
    test_crc32();
    test_base62();
    test_prefix();
    test_hmac();
    test_hmac_key();
    test_token_single();
    test_token_bulk();
    test_uuid();
    test_rfc3339_parse();
    test_rfc3339_format();
    test_utf8();

    printf("1..%u\n", tests_run);

    if (tests_failed) {
        diag("failed %u of %u tests", tests_failed, tests_run);
        return 1;
    }

    return 0;
}
