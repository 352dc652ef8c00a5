/*
 * Personal access token helpers, see pat_token.h.
 */


#include <string.h>

/*
 * SHA256_Init() and friends: deprecated in 3.0, still the cheapest way
 * to keep a partial hash state (no provider fetch, no allocation)
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/rand.h>

#include "pat_token.h"


#define PAT_MS_PER_DAY  INT64_C(86400000)

/* 0001-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z */
#define PAT_MS_MIN      INT64_C(-62135596800000)
#define PAT_MS_MAX      INT64_C(253402300799999)

/* the largest multiple of 62 that fits in a byte: 4 * 62 */
#define PAT_RAND_LIMIT  248

/* a Gregorian calendar repeats every 400 years */
#define PAT_YEAR_SHIFT  400


static uint32_t ngx_http_auth_pat_crc32(const void *data, size_t len);
static int ngx_http_auth_pat_base62_value(unsigned char c);
static void ngx_http_auth_pat_base62_encode_u32(uint32_t v,
    char out[PAT_TOKEN_CRC_LEN]);
static int ngx_http_auth_pat_base62_decode_u32(const char *s, size_t len,
    uint32_t *v);
static int ngx_http_auth_pat_hex_value(unsigned char c);
static int ngx_http_auth_pat_digits(const char *s, size_t n, unsigned *v);
static int ngx_http_auth_pat_is_leap(int64_t y);
static unsigned ngx_http_auth_pat_days_in_month(int64_t y, unsigned m);
static int64_t ngx_http_auth_pat_days_before_year(int64_t y);
static int64_t ngx_http_auth_pat_days_from_civil(int64_t y, unsigned m,
    unsigned d);
static void ngx_http_auth_pat_civil_from_days(int64_t days, int64_t *y,
    unsigned *m, unsigned *d);
static void ngx_http_auth_pat_put_digits(char *p, unsigned v, size_t n);


static const char  ngx_http_auth_pat_base62_alphabet[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static const char  ngx_http_auth_pat_hex_alphabet[] = "0123456789abcdef";

/* CRC-32 (IEEE 802.3, reflected, polynomial 0xedb88320), a byte at a time */
static const uint32_t  ngx_http_auth_pat_crc32_table[256] = {
    0x00000000, 0x77073096, 0xee0e612c, 0x990951ba,
    0x076dc419, 0x706af48f, 0xe963a535, 0x9e6495a3,
    0x0edb8832, 0x79dcb8a4, 0xe0d5e91e, 0x97d2d988,
    0x09b64c2b, 0x7eb17cbd, 0xe7b82d07, 0x90bf1d91,
    0x1db71064, 0x6ab020f2, 0xf3b97148, 0x84be41de,
    0x1adad47d, 0x6ddde4eb, 0xf4d4b551, 0x83d385c7,
    0x136c9856, 0x646ba8c0, 0xfd62f97a, 0x8a65c9ec,
    0x14015c4f, 0x63066cd9, 0xfa0f3d63, 0x8d080df5,
    0x3b6e20c8, 0x4c69105e, 0xd56041e4, 0xa2677172,
    0x3c03e4d1, 0x4b04d447, 0xd20d85fd, 0xa50ab56b,
    0x35b5a8fa, 0x42b2986c, 0xdbbbc9d6, 0xacbcf940,
    0x32d86ce3, 0x45df5c75, 0xdcd60dcf, 0xabd13d59,
    0x26d930ac, 0x51de003a, 0xc8d75180, 0xbfd06116,
    0x21b4f4b5, 0x56b3c423, 0xcfba9599, 0xb8bda50f,
    0x2802b89e, 0x5f058808, 0xc60cd9b2, 0xb10be924,
    0x2f6f7c87, 0x58684c11, 0xc1611dab, 0xb6662d3d,
    0x76dc4190, 0x01db7106, 0x98d220bc, 0xefd5102a,
    0x71b18589, 0x06b6b51f, 0x9fbfe4a5, 0xe8b8d433,
    0x7807c9a2, 0x0f00f934, 0x9609a88e, 0xe10e9818,
    0x7f6a0dbb, 0x086d3d2d, 0x91646c97, 0xe6635c01,
    0x6b6b51f4, 0x1c6c6162, 0x856530d8, 0xf262004e,
    0x6c0695ed, 0x1b01a57b, 0x8208f4c1, 0xf50fc457,
    0x65b0d9c6, 0x12b7e950, 0x8bbeb8ea, 0xfcb9887c,
    0x62dd1ddf, 0x15da2d49, 0x8cd37cf3, 0xfbd44c65,
    0x4db26158, 0x3ab551ce, 0xa3bc0074, 0xd4bb30e2,
    0x4adfa541, 0x3dd895d7, 0xa4d1c46d, 0xd3d6f4fb,
    0x4369e96a, 0x346ed9fc, 0xad678846, 0xda60b8d0,
    0x44042d73, 0x33031de5, 0xaa0a4c5f, 0xdd0d7cc9,
    0x5005713c, 0x270241aa, 0xbe0b1010, 0xc90c2086,
    0x5768b525, 0x206f85b3, 0xb966d409, 0xce61e49f,
    0x5edef90e, 0x29d9c998, 0xb0d09822, 0xc7d7a8b4,
    0x59b33d17, 0x2eb40d81, 0xb7bd5c3b, 0xc0ba6cad,
    0xedb88320, 0x9abfb3b6, 0x03b6e20c, 0x74b1d29a,
    0xead54739, 0x9dd277af, 0x04db2615, 0x73dc1683,
    0xe3630b12, 0x94643b84, 0x0d6d6a3e, 0x7a6a5aa8,
    0xe40ecf0b, 0x9309ff9d, 0x0a00ae27, 0x7d079eb1,
    0xf00f9344, 0x8708a3d2, 0x1e01f268, 0x6906c2fe,
    0xf762575d, 0x806567cb, 0x196c3671, 0x6e6b06e7,
    0xfed41b76, 0x89d32be0, 0x10da7a5a, 0x67dd4acc,
    0xf9b9df6f, 0x8ebeeff9, 0x17b7be43, 0x60b08ed5,
    0xd6d6a3e8, 0xa1d1937e, 0x38d8c2c4, 0x4fdff252,
    0xd1bb67f1, 0xa6bc5767, 0x3fb506dd, 0x48b2364b,
    0xd80d2bda, 0xaf0a1b4c, 0x36034af6, 0x41047a60,
    0xdf60efc3, 0xa867df55, 0x316e8eef, 0x4669be79,
    0xcb61b38c, 0xbc66831a, 0x256fd2a0, 0x5268e236,
    0xcc0c7795, 0xbb0b4703, 0x220216b9, 0x5505262f,
    0xc5ba3bbe, 0xb2bd0b28, 0x2bb45a92, 0x5cb36a04,
    0xc2d7ffa7, 0xb5d0cf31, 0x2cd99e8b, 0x5bdeae1d,
    0x9b64c2b0, 0xec63f226, 0x756aa39c, 0x026d930a,
    0x9c0906a9, 0xeb0e363f, 0x72076785, 0x05005713,
    0x95bf4a82, 0xe2b87a14, 0x7bb12bae, 0x0cb61b38,
    0x92d28e9b, 0xe5d5be0d, 0x7cdcefb7, 0x0bdbdf21,
    0x86d3d2d4, 0xf1d4e242, 0x68ddb3f8, 0x1fda836e,
    0x81be16cd, 0xf6b9265b, 0x6fb077e1, 0x18b74777,
    0x88085ae6, 0xff0f6a70, 0x66063bca, 0x11010b5c,
    0x8f659eff, 0xf862ae69, 0x616bffd3, 0x166ccf45,
    0xa00ae278, 0xd70dd2ee, 0x4e048354, 0x3903b3c2,
    0xa7672661, 0xd06016f7, 0x4969474d, 0x3e6e77db,
    0xaed16a4a, 0xd9d65adc, 0x40df0b66, 0x37d83bf0,
    0xa9bcae53, 0xdebb9ec5, 0x47b2cf7f, 0x30b5ffe9,
    0xbdbdf21c, 0xcabac28a, 0x53b39330, 0x24b4a3a6,
    0xbad03605, 0xcdd70693, 0x54de5729, 0x23d967bf,
    0xb3667a2e, 0xc4614ab8, 0x5d681b02, 0x2a6f2b94,
    0xb40bbe37, 0xc30c8ea1, 0x5a05df1b, 0x2d02ef8d
};

/* days before the first of each month in a non-leap year */
static const unsigned  ngx_http_auth_pat_month_start[12] = {
    0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334
};

static const unsigned  ngx_http_auth_pat_month_days[12] = {
    31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
};


/* IEEE 802.3 (zlib) CRC32; crc32("123456789") = 0xCBF43926 */

static uint32_t
ngx_http_auth_pat_crc32(const void *data, size_t len)
{
    size_t                i;
    uint32_t              crc;
    const unsigned char  *p;

    p = data;
    crc = 0xffffffff;

    for (i = 0; i < len; i++) {
        crc = (crc >> 8) ^ ngx_http_auth_pat_crc32_table[(crc ^ p[i]) & 0xff];
    }

    return crc ^ 0xffffffff;
}


static int
ngx_http_auth_pat_base62_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'A' && c <= 'Z') {
        return c - 'A' + 10;
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 36;
    }

    return -1;
}


/*
 * fixed width 6, alphabet "0-9A-Za-z", most significant digit first,
 * left-padded with '0', no NUL
 */

static void
ngx_http_auth_pat_base62_encode_u32(uint32_t v, char out[PAT_TOKEN_CRC_LEN])
{
    size_t  i;

    /* 62^6 > 2^32, so six digits always suffice */

    for (i = PAT_TOKEN_CRC_LEN; i > 0; i--) {
        out[i - 1] = ngx_http_auth_pat_base62_alphabet[v % 62];
        v /= 62;
    }
}


/* 0 ok, -1 on bad char / overflow (> 0xffffffff) / len 0 */

static int
ngx_http_auth_pat_base62_decode_u32(const char *s, size_t len, uint32_t *v)
{
    int       d;
    size_t    i;
    uint64_t  acc;

    if (s == NULL || len == 0) {
        return -1;
    }

    acc = 0;

    for (i = 0; i < len; i++) {
        d = ngx_http_auth_pat_base62_value((unsigned char) s[i]);
        if (d < 0) {
            return -1;
        }

        /* acc <= 0xffffffff here, so this cannot overflow 64 bits */
        acc = acc * 62 + (uint64_t) d;

        if (acc > 0xffffffff) {
            return -1;
        }
    }

    if (v != NULL) {
        *v = (uint32_t) acc;
    }

    return 0;
}


int
ngx_http_auth_pat_prefix_valid(const char *p, size_t len)
{
    size_t         i;
    unsigned char  c;

    if (p == NULL || len == 0 || len > PAT_TOKEN_PREFIX_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = (unsigned char) p[i];

        if (c != '_' && ngx_http_auth_pat_base62_value(c) < 0) {
            return 0;
        }
    }

    return 1;
}


int
ngx_http_auth_pat_token_generate(const char *prefix, size_t prefix_len,
    char *out, size_t out_size)
{
    size_t         i, n, body, total;
    unsigned char  rnd[64];

    if (out == NULL) {
        return -1;
    }

    if (!ngx_http_auth_pat_prefix_valid(prefix, prefix_len)) {
        goto failed;
    }

    body = prefix_len + PAT_TOKEN_RANDOM_LEN;
    total = body + PAT_TOKEN_CRC_LEN;

    if (out_size < total + 1) {
        goto failed;
    }

    memcpy(out, prefix, prefix_len);

    /*
     * rejection sampling: only bytes below 248 (= 4 * 62) are used, so
     * that "byte % 62" is uniformly distributed
     */

    n = 0;

    while (n < PAT_TOKEN_RANDOM_LEN) {

        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            OPENSSL_cleanse(rnd, sizeof(rnd));
            OPENSSL_cleanse(out, total);
            goto failed;
        }

        for (i = 0; i < sizeof(rnd) && n < PAT_TOKEN_RANDOM_LEN; i++) {
            if (rnd[i] < PAT_RAND_LIMIT) {
                out[prefix_len + n++] =
                    ngx_http_auth_pat_base62_alphabet[rnd[i] % 62];
            }
        }
    }

    OPENSSL_cleanse(rnd, sizeof(rnd));

    ngx_http_auth_pat_base62_encode_u32(ngx_http_auth_pat_crc32(out, body),
                                        out + body);
    out[total] = '\0';

    return (int) total;

failed:

    if (out_size > 0) {
        out[0] = '\0';
    }

    return -1;
}


int
ngx_http_auth_pat_token_verify(const char *tok, size_t len, const char *prefix,
    size_t prefix_len)
{
    size_t    i, body;
    uint32_t  crc;

    if (tok == NULL || (prefix == NULL && prefix_len != 0)) {
        return 0;
    }

    if (prefix_len > len
        || len - prefix_len != PAT_TOKEN_RANDOM_LEN + PAT_TOKEN_CRC_LEN)
    {
        return 0;
    }

    if (prefix_len != 0 && memcmp(tok, prefix, prefix_len) != 0) {
        return 0;
    }

    body = len - PAT_TOKEN_CRC_LEN;

    for (i = prefix_len; i < body; i++) {
        if (ngx_http_auth_pat_base62_value((unsigned char) tok[i]) < 0) {
            return 0;
        }
    }

    /*
     * fixed width: each value has exactly one 6-character form, so
     * decoding and comparing is the same as encoding and comparing
     */

    if (ngx_http_auth_pat_base62_decode_u32(tok + body, PAT_TOKEN_CRC_LEN, &crc)
        != 0)
    {
        return 0;
    }

    return crc == ngx_http_auth_pat_crc32(tok, body);
}


typedef struct {
    SHA256_CTX  inner;
    SHA256_CTX  outer;
} ngx_http_auth_pat_hmac_state_t;

typedef char ngx_http_auth_pat_hmac_state_fits[
    (sizeof(ngx_http_auth_pat_hmac_state_t)
     <= sizeof(ngx_http_auth_pat_hmac_key_t)) ? 1 : -1];


int
ngx_http_auth_pat_hmac_key_init(ngx_http_auth_pat_hmac_key_t *hk,
    const void *key, size_t key_len)
{
    size_t                           i;
    unsigned char                    block[SHA256_CBLOCK], pad[SHA256_CBLOCK];
    ngx_http_auth_pat_hmac_state_t  *st;

    if (hk == NULL || (key == NULL && key_len != 0)) {
        return -1;
    }

    st = (ngx_http_auth_pat_hmac_state_t *) hk->opaque;
    memset(block, 0, sizeof(block));

    /* RFC 2104: a key longer than a block is hashed first */
    if (key_len > SHA256_CBLOCK) {
        SHA256(key, key_len, block);

    } else if (key_len) {
        memcpy(block, key, key_len);
    }

    for (i = 0; i < SHA256_CBLOCK; i++) {
        pad[i] = block[i] ^ 0x36;
    }

    SHA256_Init(&st->inner);
    SHA256_Update(&st->inner, pad, SHA256_CBLOCK);

    for (i = 0; i < SHA256_CBLOCK; i++) {
        pad[i] = block[i] ^ 0x5c;
    }

    SHA256_Init(&st->outer);
    SHA256_Update(&st->outer, pad, SHA256_CBLOCK);

    OPENSSL_cleanse(block, sizeof(block));
    OPENSSL_cleanse(pad, sizeof(pad));

    return 0;
}


void
ngx_http_auth_pat_hmac_key_digest(const ngx_http_auth_pat_hmac_key_t *hk,
    const void *msg, size_t msg_len, uint8_t out[PAT_DIGEST_LEN])
{
    SHA256_CTX                             ctx;
    unsigned char                          inner[SHA256_DIGEST_LENGTH];
    const ngx_http_auth_pat_hmac_state_t  *st;

    st = (const ngx_http_auth_pat_hmac_state_t *) hk->opaque;

    ctx = st->inner;
    SHA256_Update(&ctx, msg, msg_len);
    SHA256_Final(inner, &ctx);

    ctx = st->outer;
    SHA256_Update(&ctx, inner, sizeof(inner));
    SHA256_Final(out, &ctx);

    OPENSSL_cleanse(&ctx, sizeof(ctx));
}


void
ngx_http_auth_pat_hmac_key_clear(ngx_http_auth_pat_hmac_key_t *hk)
{
    OPENSSL_cleanse(hk, sizeof(ngx_http_auth_pat_hmac_key_t));
}


void
ngx_http_auth_pat_hex_encode(const uint8_t *in, size_t n, char *out)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        out[2 * i] = ngx_http_auth_pat_hex_alphabet[in[i] >> 4];
        out[2 * i + 1] = ngx_http_auth_pat_hex_alphabet[in[i] & 0x0f];
    }
}


int
ngx_http_auth_pat_uuid_v4(char out[PAT_UUID_LEN + 1])
{
    size_t         i, j;
    unsigned char  b[16];

    if (RAND_bytes(b, sizeof(b)) != 1) {
        OPENSSL_cleanse(b, sizeof(b));
        out[0] = '\0';
        return -1;
    }

    b[6] = (unsigned char) ((b[6] & 0x0f) | 0x40);     /* version 4 */
    b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80);     /* variant 10xx */

    for (i = 0, j = 0; i < sizeof(b); i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[j++] = '-';
        }

        out[j++] = ngx_http_auth_pat_hex_alphabet[b[i] >> 4];
        out[j++] = ngx_http_auth_pat_hex_alphabet[b[i] & 0x0f];
    }

    out[j] = '\0';

    OPENSSL_cleanse(b, sizeof(b));

    return 0;
}


static int
ngx_http_auth_pat_hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }

    return -1;
}


int
ngx_http_auth_pat_uuid_valid(const char *s, size_t len)
{
    size_t  i;

    if (s == NULL || len != PAT_UUID_LEN) {
        return 0;
    }

    for (i = 0; i < PAT_UUID_LEN; i++) {

        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') {
                return 0;
            }

            continue;
        }

        if (ngx_http_auth_pat_hex_value((unsigned char) s[i]) < 0) {
            return 0;
        }
    }

    return 1;
}


/* exactly n ASCII digits */

static int
ngx_http_auth_pat_digits(const char *s, size_t n, unsigned *v)
{
    size_t    i;
    unsigned  r;

    r = 0;

    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }

        r = r * 10 + (unsigned) (s[i] - '0');
    }

    *v = r;

    return 0;
}


static int
ngx_http_auth_pat_is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}


static unsigned
ngx_http_auth_pat_days_in_month(int64_t y, unsigned m)
{
    if (m == 2 && ngx_http_auth_pat_is_leap(y)) {
        return 29;
    }

    return ngx_http_auth_pat_month_days[m - 1];
}


/*
 * Days from 0001-01-01 to y-01-01 in the proleptic Gregorian calendar,
 * for y >= 1.
 */

static int64_t
ngx_http_auth_pat_days_before_year(int64_t y)
{
    int64_t  n;

    n = y - 1;

    return n * 365 + n / 4 - n / 100 + n / 400;
}


/*
 * Days since 1970-01-01 of the date y-m-d.  Both the date and the epoch
 * are moved 400 years forward (which does not change the calendar) so
 * that year 0 and the divisions above work on positive numbers only.
 */

static int64_t
ngx_http_auth_pat_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t  days;

    days = ngx_http_auth_pat_days_before_year(y + PAT_YEAR_SHIFT)
           - ngx_http_auth_pat_days_before_year(1970 + PAT_YEAR_SHIFT);

    days += ngx_http_auth_pat_month_start[m - 1]
            + (m > 2 && ngx_http_auth_pat_is_leap(y)) + d - 1;

    return days;
}


/*
 * The inverse of the above; days must not precede 0400-01-01 BCE (year
 * -399), which is always the case for years 1..9999.
 */

static void
ngx_http_auth_pat_civil_from_days(int64_t days, int64_t *y, unsigned *m,
    unsigned *d)
{
    int64_t   n, q400, q100, q4, q1, year;
    unsigned  mon, dim;

    /* days since 0001-01-01 of the shifted calendar */
    n = days + ngx_http_auth_pat_days_before_year(1970 + PAT_YEAR_SHIFT);

    q400 = n / 146097;          /* 400 years */
    n %= 146097;

    q100 = n / 36524;           /* 100 years, the last one is a day longer */
    if (q100 == 4) {
        q100 = 3;
    }
    n -= q100 * 36524;

    q4 = n / 1461;              /* 4 years */
    n %= 1461;

    q1 = n / 365;               /* 1 year, the last one may be a leap year */
    if (q1 == 4) {
        q1 = 3;
    }
    n -= q1 * 365;

    year = q400 * 400 + q100 * 100 + q4 * 4 + q1 + 1 - PAT_YEAR_SHIFT;

    /* n is now the 0-based day of the year */

    for (mon = 1; mon < 12; mon++) {
        dim = ngx_http_auth_pat_days_in_month(year, mon);

        if (n < (int64_t) dim) {
            break;
        }

        n -= dim;
    }

    *y = year;
    *m = mon;
    *d = (unsigned) n + 1;
}


int
ngx_http_auth_pat_rfc3339_parse(const char *s, size_t len, int64_t *ms)
{
    int64_t   t, offset;
    size_t    pos, nfrac;
    unsigned  year, mon, day, hour, min, sec, frac, oh, om;

    /* the shortest form is "YYYY-MM-DDTHH:MM:SSZ" */

    if (s == NULL || len < 20) {
        return -1;
    }

    if (ngx_http_auth_pat_digits(s, 4, &year) != 0
        || s[4] != '-'
        || ngx_http_auth_pat_digits(s + 5, 2, &mon) != 0
        || s[7] != '-'
        || ngx_http_auth_pat_digits(s + 8, 2, &day) != 0
        || (s[10] != 'T' && s[10] != 't')
        || ngx_http_auth_pat_digits(s + 11, 2, &hour) != 0
        || s[13] != ':'
        || ngx_http_auth_pat_digits(s + 14, 2, &min) != 0
        || s[16] != ':'
        || ngx_http_auth_pat_digits(s + 17, 2, &sec) != 0)
    {
        return -1;
    }

    pos = 19;
    frac = 0;

    if (s[pos] == '.') {
        pos++;
        nfrac = 0;

        while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
            if (nfrac < 3) {
                frac = frac * 10 + (unsigned) (s[pos] - '0');
            }

            nfrac++;
            pos++;
        }

        if (nfrac == 0 || nfrac > 9) {
            return -1;
        }

        for ( /* void */ ; nfrac < 3; nfrac++) {
            frac *= 10;
        }
    }

    if (pos >= len) {
        return -1;
    }

    if (s[pos] == 'Z' || s[pos] == 'z') {
        offset = 0;
        pos++;

    } else if (s[pos] == '+' || s[pos] == '-') {

        if (len - pos < 6
            || ngx_http_auth_pat_digits(s + pos + 1, 2, &oh) != 0
            || s[pos + 3] != ':'
            || ngx_http_auth_pat_digits(s + pos + 4, 2, &om) != 0
            || oh > 23
            || om > 59)
        {
            return -1;
        }

        offset = ((int64_t) oh * 60 + om) * 60000;

        if (s[pos] == '-') {
            offset = -offset;
        }

        pos += 6;

    } else {
        return -1;
    }

    if (pos != len) {
        return -1;
    }

    /* leap seconds (":60") are deliberately not supported */

    if (mon < 1 || mon > 12
        || day < 1 || day > ngx_http_auth_pat_days_in_month(year, mon)
        || hour > 23 || min > 59 || sec > 59)
    {
        return -1;
    }

    t = ngx_http_auth_pat_days_from_civil(year, mon, day) * PAT_MS_PER_DAY
        + (((int64_t) hour * 60 + min) * 60 + sec) * 1000 + frac;

    /* local time = UTC + offset */
    t -= offset;

    if (t < PAT_MS_MIN || t > PAT_MS_MAX) {
        return -1;
    }

    if (ms != NULL) {
        *ms = t;
    }

    return 0;
}


static void
ngx_http_auth_pat_put_digits(char *p, unsigned v, size_t n)
{
    while (n > 0) {
        p[--n] = (char) ('0' + v % 10);
        v /= 10;
    }
}


size_t
ngx_http_auth_pat_rfc3339_format(int64_t ms, char out[PAT_RFC3339_LEN + 1])
{
    int64_t   days, rem, year;
    unsigned  mon, day, msec, sec;

    if (ms < PAT_MS_MIN || ms > PAT_MS_MAX) {
        out[0] = '\0';
        return 0;
    }

    /* floor division */

    days = ms / PAT_MS_PER_DAY;
    rem = ms % PAT_MS_PER_DAY;

    if (rem < 0) {
        rem += PAT_MS_PER_DAY;
        days--;
    }

    ngx_http_auth_pat_civil_from_days(days, &year, &mon, &day);

    msec = (unsigned) (rem % 1000);
    sec = (unsigned) (rem / 1000);

    ngx_http_auth_pat_put_digits(out, (unsigned) year, 4);
    out[4] = '-';
    ngx_http_auth_pat_put_digits(out + 5, mon, 2);
    out[7] = '-';
    ngx_http_auth_pat_put_digits(out + 8, day, 2);
    out[10] = 'T';
    ngx_http_auth_pat_put_digits(out + 11, sec / 3600, 2);
    out[13] = ':';
    ngx_http_auth_pat_put_digits(out + 14, sec / 60 % 60, 2);
    out[16] = ':';
    ngx_http_auth_pat_put_digits(out + 17, sec % 60, 2);
    out[19] = '.';
    ngx_http_auth_pat_put_digits(out + 20, msec, 3);
    out[23] = 'Z';
    out[24] = '\0';

    return PAT_RFC3339_LEN;
}


int
ngx_http_auth_pat_utf8_check(const char *s, size_t len, size_t *nchars,
    int reject_controls)
{
    size_t                i, k, need, count;
    uint32_t              cp, min;
    unsigned char         c;
    const unsigned char  *p;

    if (s == NULL && len != 0) {
        return -1;
    }

    p = (const unsigned char *) s;
    count = 0;
    i = 0;

    while (i < len) {
        c = p[i];

        if (c < 0x80) {
            cp = c;
            need = 0;
            min = 0;

        } else if (c >= 0xc2 && c <= 0xdf) {
            /* 0xc0 and 0xc1 could only start overlong sequences */
            cp = c & 0x1f;
            need = 1;
            min = 0x80;

        } else if ((c & 0xf0) == 0xe0) {
            cp = c & 0x0f;
            need = 2;
            min = 0x800;

        } else if (c >= 0xf0 && c <= 0xf4) {
            cp = c & 0x07;
            need = 3;
            min = 0x10000;

        } else {
            /* stray continuation byte, 0xc0, 0xc1, 0xf5..0xff */
            return -1;
        }

        if (len - i - 1 < need) {
            return -1;
        }

        for (k = 1; k <= need; k++) {
            c = p[i + k];

            if ((c & 0xc0) != 0x80) {
                return -1;
            }

            cp = (cp << 6) | (c & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return -1;
        }

        if (reject_controls
            && (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)))
        {
            return -1;
        }

        i += need + 1;
        count++;
    }

    if (nchars != NULL) {
        *nchars = count;
    }

    return 0;
}
